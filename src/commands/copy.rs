//! `cmod copy --to URL | --from URL [targets|paths]`: push a closure (with its signed
//! build trace and scan results) to another store or binary cache, or pull one in.
//!
//! With `--to`, what the targets' builds (or the named paths) lack locally is first
//! substituted, verified, from the substituters (`--substituters`, else the configured
//! ones), so a machine can relay a cache's contents without building them.

use std::sync::Arc;
use std::time::Instant;

use cmod_schema::StorePath;
use cmod_store::copy::{copy_from, copy_to, Remote};
use cmod_store::substitute::{self, Sharing};
use cmod_store::transfer::Trust;
use cmod_store::Store;

use crate::cli::{Cli, CopyArgs};
use crate::commands::share::{
    built, chosen_substituters, looks_like_path, realisation, selected_targets, settings, trust,
    Built,
};
use crate::diagnostic::CliError;
use crate::project::{load_sharing, open_store, Project};

/// Receives the substitution walk's warnings: kept for `--from` (where the source not
/// answering is the failure), printed for `--to` (where the local store may suffice).
struct Warnings {
    keep: bool,
    kept: std::sync::Mutex<Vec<String>>,
}

impl substitute::Observer for Warnings {
    fn warn(&self, m: &str) {
        if !self.keep {
            errln!("warning: {m}");
        } else if let Ok(mut v) = self.kept.lock() {
            v.push(m.to_string());
        }
    }
    fn substituted(&self, _: &substitute::Substituted<'_>) {}
}

pub fn copy(cli: &Cli, args: &CopyArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let paths_given = !args.what.is_empty() && args.what.iter().all(|w| looks_like_path(w));
    if paths_given && args.sandbox.is_some() {
        return Err(CliError::usage(
            "--sandbox selects whose build trace to fetch for targets; store paths are \
             copied as they are",
            Some("drop --sandbox, or name targets instead of store paths".into()),
        ));
    }
    let mode: cmod_sandbox::Mode = args
        .sandbox
        .as_deref()
        .unwrap_or("full")
        .parse()
        .map_err(|e: String| CliError::usage(e, None))?;
    let trust = trust(cli, &args.trusted_public_keys, args.no_require_sigs)?;
    let plan = Plan {
        paths_given,
        mode,
        trust,
        jobs: args.jobs.unwrap_or(4).max(1),
        started,
    };
    match (&args.to, &args.from) {
        (Some(url), _) => push(cli, args, url, plan),
        (None, Some(url)) => pull(cli, args, url, plan),
        (None, None) => Err(CliError::usage("pass --to URL or --from URL", None)),
    }
}

/// What `copy` decided from its arguments, for either direction.
struct Plan {
    /// `what` names store paths (else targets).
    paths_given: bool,
    /// Whose build trace to look up for targets.
    mode: cmod_sandbox::Mode,
    /// What received paths and entries need.
    trust: Trust,
    jobs: usize,
    started: Instant,
}

/// `copy --to`: substitute what is missing locally, then push.
fn push(cli: &Cli, args: &CopyArgs, url: &str, plan: Plan) -> Result<(), CliError> {
    let Plan {
        paths_given,
        mode,
        trust,
        jobs,
        started,
    } = plan;
    let substituters = if args.no_substitute || args.build.offline() {
        Vec::new() // without reading the configuration
    } else {
        chosen_substituters(&args.substituters, false, &settings(cli)?)
    };
    let cfg = Arc::new(Sharing {
        substituters,
        trust,
        jobs,
        signing: Vec::new(),
        connect: cli.connect.clone(),
        unavailable: Default::default(),
        remote_cache: None,
        remote_executor: None,
        remote_fallback: false,
    });
    // One shared GC lock from the first substituted path to the end of the push.
    let (_gc, built) = if paths_given {
        let store = open_store(cli)?;
        let gc = store.gc_guard()?;
        substitute_paths(&store, &args.what, &cfg)?;
        (gc, Built::paths(cli, &args.what)?)
    } else {
        let project = load_sharing(cli, &args.build, cfg.clone())?;
        let gc = project.store.gc_guard()?;
        substitute_targets(&project, &args.what, mode, &cfg, false)?;
        if !cfg.substituters.is_empty() {
            for w in cmod_ops::scan_entries::fetch_signed(&project, args.build.offline())? {
                errln!("warning: {w}");
            }
        }
        let help = "run `cmod realise` first, or name a cache that has it with \
                    `--substituters URL`";
        (gc, built(project, &args.what, help)?)
    };
    let Built {
        store,
        paths: roots,
        traces,
        scans,
    } = built;
    let remote = Remote::open(url, &cli.connect)?;
    let r = copy_to(&store, remote.dest(), &roots, &traces, jobs)?;
    // Scan results after the build they belong to (a reader that finds a scan can
    // find the trace and paths too).
    let scans_sent = remote.dest().send_scans(&scans)?;
    status!(
        "{:>12} {} of {} path(s) and {} build-trace entr{} to {url} ({scans_sent} scan entr{}) in {:.2}s",
        "Copied",
        r.copied,
        r.closure,
        r.traces,
        if r.traces == 1 { "y" } else { "ies" },
        if scans_sent == 1 { "y" } else { "ies" },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `copy --from`: paths with their closures, or the targets' builds walked like a
/// substituting realise, without building.
fn pull(cli: &Cli, args: &CopyArgs, url: &str, plan: Plan) -> Result<(), CliError> {
    let Plan {
        paths_given,
        mode,
        trust,
        jobs,
        started,
    } = plan;
    if paths_given {
        let store = open_store(cli)?;
        let roots: Vec<StorePath> = args
            .what
            .iter()
            .map(|p| StorePath::from_path_str(p).map_err(|e| CliError::usage(e.to_string(), None)))
            .collect::<Result<_, _>>()?;
        let _gc = store.gc_guard()?;
        let remote = Remote::open(url, &cli.connect)?;
        let r = copy_from(&store, remote.source(), &roots, &trust, jobs)?;
        status!(
            "{:>12} {} of {} path(s) from {url} in {:.2}s",
            "Copied",
            r.copied,
            r.closure,
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let cfg = Arc::new(Sharing {
        substituters: vec![url.to_string()],
        trust,
        jobs,
        signing: Vec::new(),
        connect: cli.connect.clone(),
        unavailable: Default::default(),
        remote_cache: None,
        remote_executor: None,
        remote_fallback: false,
    });
    let project = load_sharing(cli, &args.build, cfg.clone())?;
    let _gc = project.store.gc_guard()?;
    let (got, of) = substitute_targets(&project, &args.what, mode, &cfg, true)?;
    status!(
        "{:>12} the outputs of {got} of {of} derivation(s) from {url} (the rest were already here or not in the cache) in {:.2}s",
        "Copied",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Substitute from `cfg`'s substituters the outputs of the targets' derivations that
/// the store lacks (as a substituting `realise --sandbox mode` would, without
/// building). Returns (derivations substituted, derivations needed). With `strict`, a
/// substituter that does not answer is an error; otherwise a warning.
fn substitute_targets(
    project: &Project,
    names: &[String],
    mode: cmod_sandbox::Mode,
    cfg: &Sharing,
    strict: bool,
) -> Result<(usize, usize), CliError> {
    let roots = selected_targets(project, names)?;
    let derived = project.derived()?;
    let order = cmod_store::realise::needed(&derived.derivations, &roots)?;
    let store = &project.store;
    if cfg.substituters.is_empty()
        || (!strict && order.iter().all(|d| realisation(store, d).is_some()))
    {
        return Ok((0, order.len()));
    }
    cmod_store::realise::write_derivations(store, &derived.derivations, &order)?;
    let obs = Warnings {
        keep: strict,
        kept: Default::default(),
    };
    let got = substitute::walk(
        store,
        &derived.derivations,
        &order,
        Default::default(),
        mode.as_str(),
        cfg,
        &obs,
    )?;
    if let Some(w) = obs.kept.lock().ok().and_then(|v| v.first().cloned()) {
        return Err(CliError::BuildFailed { message: w });
    }
    Ok((got.len(), order.len()))
}

/// Fetch the named store paths the store lacks (with their closures) from the first of
/// `cfg`'s substituters that has them; one that does not answer or lacks them is
/// warned about and the next one asked.
fn substitute_paths(store: &Store, what: &[String], cfg: &Sharing) -> Result<(), CliError> {
    let mut missing: Vec<StorePath> = what
        .iter()
        .map(|p| store.parse_path(p).map_err(CliError::from))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|p| !store.is_valid(p))
        .collect();
    for url in &cfg.substituters {
        if missing.is_empty() {
            break;
        }
        let got = Remote::open(url, &cfg.connect)
            .and_then(|remote| copy_from(store, remote.source(), &missing, &cfg.trust, cfg.jobs));
        match got {
            Ok(_) => {}
            Err(e) if e.is_unavailable_source() => {
                errln!("warning: substituter {url}: {e}; trying the next")
            }
            Err(e) => return Err(e.into()),
        }
        missing.retain(|p| !store.is_valid(p));
    }
    Ok(())
}
