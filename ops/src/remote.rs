//! The remote services a build uses: a REAPI action cache asked before, and told after,
//! each step, held to the command's trust policy; a REAPI executor that runs every step;
//! and what a `cmod worker` serving such an executor is (see `cmod_remote`).

use std::path::PathBuf;
use std::time::Duration;

use cmod_evaluator::toolchain::{discover, ToolchainRequest};
use cmod_reapi::{Endpoint, HEADERS_ENV};
use cmod_remote::{ReapiCache, ReapiExecutor, WorkerConfig};
use cmod_sandbox::Limits;
use cmod_schema::manifest::Stdlib;
use cmod_store::realise::StepCacheUse;
use cmod_store::substitute::{RemoteSetting, Sharing};
use cmod_store::transfer::Trust;
use cmod_store::Store;

use crate::OpsError;

/// A build's remote cache and the trust its answers are held to.
#[derive(Debug)]
pub struct RemoteCache {
    cache: ReapiCache,
    trust: Trust,
    url: String,
    signs: bool,
}

impl RemoteCache {
    /// What the realiser takes.
    pub fn step_cache(&self) -> StepCacheUse<'_> {
        StepCacheUse {
            cache: &self.cache,
            trust: &self.trust,
        }
    }

    /// What to tell the user before building: a machine that signs nothing shares
    /// nothing (the realiser publishes only signed results).
    pub fn unshared_note(&self) -> Option<String> {
        (!self.signs).then(|| {
            format!(
                "steps built here are not shared with the remote cache `{}`: this machine signs nothing (add `secret-key-files` under [cache] in the user configuration to share them)",
                self.url
            )
        })
    }
}

/// The remote cache `sharing` names, if any, for building into `store`. A malformed URL
/// or header (in `$CMOD_REMOTE_HEADERS`) is a usage error; an unreachable server is not
/// (the build warns and goes on locally).
pub fn remote_cache(
    sharing: Option<&Sharing>,
    store: &Store,
) -> Result<Option<RemoteCache>, OpsError> {
    let Some((setting, sharing)) = sharing.and_then(|s| Some((s.remote_cache.as_ref()?, s))) else {
        return Ok(None);
    };
    let endpoint = endpoint(setting, "--remote-cache")?;
    Ok(Some(RemoteCache {
        cache: ReapiCache::new(endpoint, store),
        trust: sharing.trust.clone(),
        url: setting.url.clone(),
        signs: !sharing.signing.is_empty(),
    }))
}

/// The remote executor `sharing` names, if any (with `--remote-fallback`, steps are built
/// locally while it is unreachable).
pub fn remote_executor(sharing: Option<&Sharing>) -> Result<Option<ReapiExecutor>, OpsError> {
    let Some((setting, sharing)) = sharing.and_then(|s| Some((s.remote_executor.as_ref()?, s)))
    else {
        return Ok(None);
    };
    let endpoint = endpoint(setting, "--remote-executor")?;
    Ok(Some(ReapiExecutor::new(endpoint, sharing.remote_fallback)))
}

/// What `cmod worker` is asked for.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The server's URL.
    pub server: String,
    /// The REAPI instance name.
    pub instance_name: String,
    /// The bot id (default: `cmod-<hostname>-<pid>`).
    pub id: Option<String>,
    /// The sandbox mode, as given.
    pub sandbox: String,
    /// The work directory (default: under the system's temp dir).
    pub work_dir: Option<PathBuf>,
    /// Each builder's time limit.
    pub action_timeout: Duration,
    /// How many bytes of shipped store paths to keep between actions.
    pub keep_bytes: u64,
}

/// The worker `opts` describe: its toolchains (the default compiler with each standard
/// library it has), its probed sandbox mode, its directories.
pub fn worker_config(opts: &WorkerOptions) -> Result<WorkerConfig, OpsError> {
    let endpoint = endpoint(
        &RemoteSetting {
            url: opts.server.clone(),
            instance_name: opts.instance_name.clone(),
            headers: Vec::new(),
        },
        "--server",
    )?;
    let settings = crate::build::BuildSettings {
        jobs: None,
        sandbox: opts.sandbox.clone(),
        keep_failed: false,
        accept_outputs_from: Vec::new(),
        action_timeout: opts.action_timeout,
        max_output_size: Limits::default().max_output_bytes,
    };
    let sandbox = settings.probe_sandbox()?.mode;
    let mut toolchains = Vec::new();
    for stdlib in [Stdlib::Libstdcxx, Stdlib::Libcxx] {
        let req = ToolchainRequest {
            stdlib,
            ..ToolchainRequest::default()
        };
        match discover(&req, None) {
            Ok(t) => toolchains.push(t),
            Err(e) if toolchains.is_empty() && stdlib == Stdlib::Libcxx => return Err(e.into()),
            Err(_) => {}
        }
    }
    let id = opts.id.clone().unwrap_or_else(|| {
        let host = nix_hostname().unwrap_or_else(|| "host".into());
        format!("cmod-{host}-{}", std::process::id())
    });
    let work_dir = opts
        .work_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("cmod-worker-{id}")));
    Ok(WorkerConfig {
        endpoint,
        bot_id: id,
        toolchains,
        sandbox,
        limits: settings.limits(),
        work_dir,
        keep_bytes: opts.keep_bytes,
    })
}

fn nix_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

fn endpoint(setting: &RemoteSetting, flag: &str) -> Result<Endpoint, OpsError> {
    let help = || {
        Some(format!(
            "give {flag} grpc://HOST:PORT (or grpcs://HOST[:PORT]) and headers as `name=value` pairs in ${HEADERS_ENV} or `remote-headers` under [cache] in the user configuration"
        ))
    };
    let configured = |mut e: Endpoint| {
        // One header per entry: a value may hold commas.
        for entry in &setting.headers {
            let Some((name, value)) = entry.split_once('=') else {
                // Keep the entry out of the message: it may be a bare secret.
                return Err(cmod_reapi::Error::InvalidHeader {
                    header: "(a `remote-headers` entry without `=`)".to_string(),
                    reason: "entries are name=value".to_string(),
                });
            };
            e = e.with_header(name.trim(), value.trim())?;
        }
        Ok(e)
    };
    Endpoint::parse(&setting.url)
        .and_then(configured)
        .and_then(|e| e.with_headers_from_env(HEADERS_ENV))
        .map(|e| e.with_instance_name(setting.instance_name.clone()))
        .map_err(|e| OpsError::usage(format!("{flag}: {e}"), help()))
}
