//! `cmod worker`: serve a REAPI server's build steps until killed (see `cmod_remote::worker`).

use std::sync::atomic::AtomicBool;

use cmod_ops::remote::{worker_config, WorkerOptions};
use cmod_remote::WorkerEvent;

use crate::cli::WorkerArgs;
use crate::diagnostic::CliError;

/// Run the worker `args` describe, printing what it does to stderr.
pub fn worker(args: &WorkerArgs) -> Result<(), CliError> {
    let cfg = worker_config(&WorkerOptions {
        server: args.server.clone(),
        instance_name: args.instance_name.clone(),
        id: args.id.clone(),
        sandbox: args.sandbox.clone(),
        work_dir: args.work_dir.clone(),
        action_timeout: std::time::Duration::from_secs(args.action_timeout),
        keep_bytes: args.keep_store_mib.saturating_mul(1 << 20),
    })?;
    let stop = AtomicBool::new(false);
    let report = |e: &WorkerEvent<'_>| match e {
        WorkerEvent::Ready { properties } => {
            let shown: Vec<String> = properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
            errln!(
                "worker `{}` serving {} ({})",
                cfg.bot_id,
                cfg.endpoint.url(),
                shown.join(", ")
            );
        }
        WorkerEvent::Ran {
            name,
            inputs: (shipped, kept),
            failure,
            elapsed,
        } => match failure {
            None => errln!(
                "{:>12} {name} in {:.2}s ({kept} of {shipped} input paths kept)",
                "Built",
                elapsed.as_secs_f64()
            ),
            Some(f) => errln!("{:>12} {name}: {f}", "Failed"),
        },
        WorkerEvent::Refused { why } => errln!("{:>12} a lease: {why}", "Refused"),
        WorkerEvent::Reconnecting { why } => {
            errln!("warning: lost the server ({why}); reconnecting")
        }
    };
    cmod_remote::worker::run(&cfg, &stop, &report).map_err(|e| CliError::usage(e.to_string(), None))
}
