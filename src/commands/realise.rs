//! `cmod realise` (alias `build`) and `cmod run`.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use cmod_evaluator::derive::Target;
use cmod_sandbox::{Enforcement, Limits, Mode};
use cmod_schema::lock::Lockfile;
use cmod_schema::{ContentHash, StorePath};
use cmod_store::memo::{Memo, MemoEntry};
use cmod_store::realise::Reporter;
use cmod_store::realise::{self, BuildEnv, RealiseOptions};
use cmod_store::roots::KeepList;
use serde_json::json;

use crate::cli::{Cli, RealiseArgs, RunArgs, RunOpts};
use crate::commands::compile_commands::{Gate, Refresh};
use crate::diagnostic::CliError;
use crate::progress::{Progress, Summary};
use crate::project::{load, Project};

/// Parse and probe the requested sandbox mode: what it will enforce, or exit 2 with the
/// remedy. A full sandbox without Landlock (a kernel without it) still isolates with its
/// namespaces, but loses the second layer: that is worth a warning.
pub(crate) fn sandbox_mode(run: &RunOpts) -> Result<Enforcement, CliError> {
    let mode: Mode = run
        .sandbox
        .parse()
        .map_err(|e: String| CliError::usage(e, None))?;
    let enforced = cmod_sandbox::probe(mode).map_err(|e| CliError::Sandbox {
        message: e.to_string(),
        help: e.remedy().map(str::to_string),
    })?;
    if let Some(warning) = missing_landlock_warning(&enforced) {
        errln!("{warning}");
    }
    Ok(enforced)
}

/// The warning for a full sandbox that runs without Landlock, if that is the case.
fn missing_landlock_warning(enforced: &Enforcement) -> Option<String> {
    (enforced.mode == Mode::Full && enforced.landlock_abi.is_none()).then(|| {
        "warning: this kernel has no Landlock, so the full sandbox runs with its namespaces only \
         (no second layer restricting files and TCP); enable Landlock (CONFIG_SECURITY_LANDLOCK, \
         `lsm=landlock,...` on the kernel command line) to restore it"
            .to_string()
    })
}

fn jobs(run: &RunOpts) -> usize {
    run.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// Realise `targets` plainly (no `--check`, no pins, nothing to do after): each
/// target's output path.
pub(crate) fn build_outputs(
    project: &Project,
    targets: &[Target],
    run: &RunOpts,
    progress: &Progress,
) -> Result<Vec<StorePath>, CliError> {
    let request = BuildRequest::default();
    build_targets(project, targets, run, &request, progress, |_, _| Ok(())).map(|(o, _)| o)
}

/// How [`build_targets`] realises: `--check`, the outputs `--locked` pins, and the
/// previous realisation of the same targets (whose unchanged steps are reused).
#[derive(Default)]
pub(crate) struct BuildRequest<'a> {
    pub check: bool,
    pub pinned: Option<&'a Lockfile>,
    pub previous: Option<&'a realise::Previous>,
    /// The sandbox, already probed (else [`build_targets`] probes it).
    pub enforced: Option<Enforcement>,
    /// Opened when the first step starts (or the realisation ends without one).
    pub first_step: Option<&'a Gate>,
}

/// Reports through `inner`, opening `gate` at the first step's start.
struct OpensAtFirstStep<'a> {
    inner: &'a Progress,
    gate: &'a Gate,
}

impl realise::Reporter for OpensAtFirstStep<'_> {
    fn event(&self, event: &realise::Event<'_>) {
        self.inner.event(event);
        if let realise::Event::Started { .. } = event {
            self.gate.open();
        }
    }
}

/// Realise `targets`, reporting through `progress`. Returns each target's output path.
/// On success `after` runs (with the outputs) before the final message, so a failure
/// there (writing out-links, say) is reported by that message too.
pub(crate) fn build_targets(
    project: &Project,
    targets: &[Target],
    run: &RunOpts,
    request: &BuildRequest<'_>,
    progress: &Progress,
    after: impl FnOnce(&[StorePath], &realise::Realisation) -> Result<(), CliError>,
) -> Result<(Vec<StorePath>, realise::Realisation), CliError> {
    progress.set_source_roots(crate::source_paths::of_evaluation(&project.eval));
    // Until the realisation reports its own summary, errors still owe the JSON stream
    // its `finished` line.
    let (r, enforced) = with_json_finish(
        progress,
        realise_targets(project, targets, run, request, progress),
    )?;
    let outputs: Vec<StorePath> = targets
        .iter()
        .filter_map(|t| {
            r.outputs
                .get(&t.drv)
                .and_then(|o| o.get(&t.output))
                .cloned()
        })
        .collect();
    let shown = Project::shown(targets);
    let target_json: serde_json::Map<String, serde_json::Value> = shown
        .iter()
        .zip(outputs.iter())
        .map(|(n, p)| (n.clone(), json!(project.store.path_of(p))))
        .collect();
    // Pinned outputs are verified before the final message, so it tells the whole truth.
    let pin_check = match (request.pinned, r.success()) {
        (Some(lock), true) => {
            let named: Vec<(String, StorePath)> =
                shown.iter().cloned().zip(outputs.iter().cloned()).collect();
            crate::commands::lock::verify_outputs(project, lock, &named)
        }
        _ => Ok(()),
    };
    let differing: std::collections::BTreeSet<&StorePath> =
        r.differences.iter().map(|(d, _)| d).collect();
    let built_ok = r.success() && differing.is_empty() && pin_check.is_ok();
    let after_result = if built_ok {
        after(&outputs, &r)
    } else {
        Ok(())
    };
    progress.finish(&Summary {
        success: built_ok && after_result.is_ok(),
        built: r.built.len(),
        fresh: r.fresh,
        checked: r.checked,
        differing: differing.len(),
        failed: r.failures.len(),
        targets: serde_json::Value::Object(target_json),
        out_paths: outputs.iter().map(|p| project.store.path_of(p)).collect(),
        error: after_result.as_ref().err().map(CliError::summary),
        sandbox: Some(enforced),
        scanned: project.eval.stats.scanned.len(),
        scans_substituted: project.eval.stats.scans_substituted.len(),
    });
    after_result?;
    if !r.success() {
        return Err(failure_error(project, &r));
    }
    pin_check?;
    check_differences(&r, &differing, progress)?;
    Ok((outputs, r))
}

/// Run the realiser for `targets` in the probed (or given) sandbox.
fn realise_targets(
    project: &Project,
    targets: &[Target],
    run: &RunOpts,
    request: &BuildRequest<'_>,
    progress: &Progress,
) -> Result<(realise::Realisation, Enforcement), CliError> {
    let enforced = match request.enforced {
        Some(e) => e,
        None => sandbox_mode(run)?,
    };
    crate::scan_entries::sign_as_built(project)?;
    let sources = project.sources()?;
    let env = BuildEnv {
        toolchain: &project.eval.toolchain,
        sandbox: enforced.mode,
        limits: Limits {
            timeout: Duration::from_secs(run.action_timeout),
            max_output_bytes: run.max_output_size,
        },
        keep_failed: run.keep_failed,
        accept_from: run
            .accept_outputs_from
            .iter()
            .map(|m| m.parse::<Mode>().map_err(|e| CliError::usage(e, None)))
            .collect::<Result<_, _>>()?,
        signing: project.sharing.as_deref().map_or(&[], |s| &s.signing),
    };
    let drvs: Vec<StorePath> = targets.iter().map(|t| t.drv.clone()).collect();
    let options = RealiseOptions {
        jobs: jobs(run),
        check: request.check,
        sources: &sources,
        previous: request.previous,
        sharing: project.sharing.as_deref(),
    };
    let derivations = &project.derived()?.derivations;
    let r = match request.first_step {
        Some(gate) => {
            let reporter = OpensAtFirstStep {
                inner: progress,
                gate,
            };
            // Without a first step, the refresh's `finish` (or drop) opens the gate.
            realise::realise(
                &project.store,
                derivations,
                &drvs,
                &env,
                &options,
                &reporter,
            )
        }
        None => realise::realise(&project.store, derivations, &drvs, &env, &options, progress),
    }?;
    Ok((r, enforced))
}

/// `--check`'s verdict: stored outputs found corrupt, or rebuilt outputs that differ.
fn check_differences(
    r: &realise::Realisation,
    differing: &std::collections::BTreeSet<&StorePath>,
    progress: &Progress,
) -> Result<(), CliError> {
    let corrupt: Vec<&cmod_store::realise::Difference> = r
        .differences
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d.stored_corrupt)
        .collect();
    if !corrupt.is_empty() {
        let mut message = format!(
            "{} stored output(s) are corrupt: their contents no longer hash to what was recorded when they were registered (damage on disk, not a sign that the build is not reproducible)",
            corrupt.len()
        );
        let mut paths = Vec::new();
        for d in &corrupt {
            message.push_str("\n  ");
            message.push_str(&progress.describe_difference(d));
            paths.push(d.stored.to_string());
        }
        paths.dedup();
        return Err(CliError::Integrity {
            message,
            help: Some(format!(
                "repair them: `cmod store repair {}`",
                paths.join(" ")
            )),
        });
    }
    if !r.differences.is_empty() {
        let mut message = format!(
            "{} output file(s) of {} derivation(s) differ from the stored copies: the build is not reproducible",
            r.differences.len(),
            differing.len()
        );
        for (_, d) in &r.differences {
            message.push_str("\n  ");
            message.push_str(&progress.describe_difference(d));
        }
        let kept = r.differences.iter().any(|(_, d)| d.kept.is_some());
        return Err(CliError::Integrity {
            message,
            help: (!kept).then(|| {
                "pass --keep-failed to keep each rebuilt copy beside the original (`<path>.check`) for diffing".into()
            }),
        });
    }
    Ok(())
}

/// The error for a realisation whose steps failed: every failure with its log hint; a
/// security violation (exit 3) if a step left an unsafe output; an environment problem
/// (exit 2: a full disk, an unwritable store) if that is what stopped a step; else a
/// build failure (exit 1).
fn failure_error(project: &Project, r: &realise::Realisation) -> CliError {
    let mut message = String::new();
    for (drv, e) in &r.failures {
        message.push_str(&e.to_string());
        if let realise::BuildError::Failed { kept, .. } = e {
            if let Some(dir) = kept {
                message.push_str(&format!(" (build directory kept at {})", dir.display()));
            }
            message.push_str(&format!(
                "\n  the log is kept: `cmod log {}`",
                project.store.path_of(drv).display()
            ));
        }
        message.push('\n');
    }
    if !r.skipped.is_empty() {
        message.push_str(&format!(
            "{} dependent step(s) were not attempted",
            r.skipped.len()
        ));
    }
    let message = message.trim_end().to_string();
    // A builder that tried to leave an escaping link, a hard link, a device or a
    // setuid file behind is a security violation, not an ordinary build failure.
    let violation = r.failures.iter().any(|(_, e)| {
        matches!(
            e,
            realise::BuildError::Sandbox {
                source: cmod_sandbox::SandboxError::UnsafeOutput { .. },
                ..
            } | realise::BuildError::Store {
                source: cmod_store::StoreError::BadOutput { .. },
                ..
            }
        )
    });
    if violation {
        return CliError::Integrity {
            message,
            help: Some(
                "a build step left an output that could escape the store; nothing was registered"
                    .into(),
            ),
        };
    }
    if r.failures
        .iter()
        .any(|(_, e)| matches!(e, realise::BuildError::Panicked { .. }))
    {
        return CliError::Internal(message);
    }
    if let Some(help) = r.failures.iter().find_map(|(_, e)| environment_remedy(e)) {
        return CliError::usage(message, Some(help));
    }
    CliError::BuildFailed { message }
}

/// The remedy when a step failed because of the machine rather than the code: it ran out
/// of space, or the store could not be written.
fn environment_remedy(e: &realise::BuildError) -> Option<String> {
    match e {
        realise::BuildError::Failed {
            no_space: Some(dir),
            ..
        } => Some(cmod_store::error::no_space_remedy(dir)),
        realise::BuildError::Store { source, .. }
            if source.exit_class() == cmod_schema::diag::ExitClass::Usage =>
        {
            source.remedy()
        }
        _ => None,
    }
}

/// Report an error that happened before building in the JSON contract too.
fn with_json_finish<T>(progress: &Progress, r: Result<T, CliError>) -> Result<T, CliError> {
    if let Err(e) = &r {
        if progress.is_json() {
            progress.json_line(json!({"reason": "error", "message": e.summary()}));
            progress.finish(&Summary {
                targets: json!({}),
                ..Summary::default()
            });
        }
    }
    r
}

/// The key of a realisation memo: the evaluation's fingerprint (everything the
/// derivations are computed from), the sandbox mode, the modes whose outputs were accepted
/// too, and the selected targets.
fn memo_key(project: &Project, mode: Mode, run: &RunOpts, names: &[String]) -> ContentHash {
    let mut accepted: Vec<&str> = run.accept_outputs_from.iter().map(String::as_str).collect();
    accepted.sort();
    accepted.dedup();
    let accepted = format!("accept:{}", accepted.join(","));
    let mut parts = vec![mode.as_str(), accepted.as_str()];
    parts.extend(names.iter().map(String::as_str));
    cmod_store::memo::memo_key(&project.eval.fingerprint(), &parts)
}

/// The memo under `key` if it can be trusted (every output it names is still valid),
/// with its derivations' `fresh` lines already prepared: they are collected while a
/// second thread checks the outputs, and written only if the memo holds.
fn trusted_memo(
    project: &Project,
    key: &ContentHash,
    progress: &Progress,
) -> Option<(Memo, Vec<u8>)> {
    let memo = project.store.memo_unchecked(key)?;
    let (valid, fresh_lines) = std::thread::scope(|s| {
        // Beside the check, what killed runs left in the store's `tmp/` (a listing,
        // usually of an empty directory) is cleaned, as a full realisation does.
        let check = || {
            let _ = project.store.clean_temporaries();
            project.store.memo_outputs_valid(key, &memo)
        };
        let spawned = std::thread::Builder::new().spawn_scoped(s, check).ok();
        let lines = progress.collected(|| {
            for d in &memo.derivations {
                progress.event(&realise::Event::Fresh {
                    drv: &d.drv,
                    name: &d.name,
                    outputs: &d.outputs,
                });
            }
        });
        let valid = match spawned {
            Some(thread) => thread.join().unwrap_or(false),
            None => check(),
        };
        (valid, lines)
    });
    valid.then_some((memo, fresh_lines))
}

/// A no-op: report the memo's derivations as fresh (the JSON contract still lists them;
/// `fresh_lines` from [`trusted_memo`]) and verify pinned outputs, without emitting or
/// resolving a single derivation. `after` runs before the final message, as in
/// [`build_targets`].
fn report_memo(
    project: &Project,
    memo: &Memo,
    fresh_lines: &[u8],
    pinned: Option<&Lockfile>,
    progress: &Progress,
    after: impl FnOnce() -> Result<(), CliError>,
) -> Result<(), CliError> {
    progress.write_collected(fresh_lines);
    let pin_check = match pinned {
        Some(lock) => crate::commands::lock::verify_outputs(project, lock, &memo.targets),
        None => Ok(()),
    };
    let after_result = if pin_check.is_ok() { after() } else { Ok(()) };
    progress.finish(&Summary {
        success: pin_check.is_ok() && after_result.is_ok(),
        fresh: memo.derivations.len(),
        targets: serde_json::Value::Object(
            memo.targets
                .iter()
                .map(|(n, p)| (n.clone(), json!(project.store.path_of(p))))
                .collect(),
        ),
        out_paths: memo
            .targets
            .iter()
            .map(|(_, p)| project.store.path_of(p))
            .collect(),
        error: after_result.as_ref().err().map(CliError::summary),
        ..Summary::default()
    });
    pin_check.and(after_result)
}

/// Point the out-links at the targets' outputs (each a GC root keeping `keep` alive).
fn link_outputs(
    project: &Project,
    args: &RealiseArgs,
    targets: &[(String, StorePath)],
    keep: &KeepList,
) -> Result<(), CliError> {
    if args.no_link {
        return Ok(());
    }
    for (i, (name, p)) in targets.iter().enumerate() {
        let link = if i == 0 {
            args.out_link.clone()
        } else {
            PathBuf::from(format!(
                "{}-{}",
                args.out_link.display(),
                name.replace('/', "-")
            ))
        };
        project.store.add_out_link(&link, p, keep)?;
    }
    Ok(())
}

/// `--dry-run`: list what would be built (JSON lines with `--message-format json`).
fn dry_run(
    project: &Project,
    names: &[(String, String)],
    args: &RealiseArgs,
    progress: &Progress,
) -> Result<(), CliError> {
    let plan = with_json_finish(
        progress,
        (|| {
            let mode = sandbox_mode(&args.run)?.mode;
            let targets = project.targets(names)?;
            let drvs: Vec<StorePath> = targets.iter().map(|t| t.drv.clone()).collect();
            Ok(realise::dry_run(
                &project.store,
                &project.derived()?.derivations,
                &drvs,
                mode.as_str(),
            )?)
        })(),
    )?;
    let derivations = &project.derived()?.derivations;
    if progress.is_json() {
        for d in &plan.to_build {
            progress.json_line(json!({
                "reason": "would-build",
                "drv": project.store.path_of(d),
                "name": derivations[d].name,
            }));
        }
        progress.json_line(json!({
            "reason": "finished",
            "success": true,
            "dry_run": true,
            "would_build": plan.to_build.len(),
            "fresh": plan.fresh,
        }));
        return Ok(());
    }
    errln!(
        "{} derivation(s) would be built, {} are fresh:",
        plan.to_build.len(),
        plan.fresh
    );
    for d in &plan.to_build {
        outln!("{}", project.store.path_of(d).display());
    }
    Ok(())
}

/// The slot of the memos of `names` realised in `mode` from this package: the memo
/// last written in it holds the derivations an edit can reuse (see
/// `cmod_store::realise::RealiseOptions::previous`).
fn memo_slot(project: &Project, mode: Mode, run: &RunOpts, names: &[String]) -> ContentHash {
    let root = project
        .eval
        .packages
        .root()
        .root
        .to_string_lossy()
        .into_owned();
    let anchor = ContentHash::of_file(false, root.as_bytes());
    let mut parts = vec!["latest", mode.as_str()];
    parts.extend(run.accept_outputs_from.iter().map(String::as_str));
    parts.extend(names.iter().map(String::as_str));
    cmod_store::memo::memo_key(&anchor, &parts)
}

/// Realise `names` (reusing what the slot's latest memo realised), link the outputs and
/// write the memo under `memos.0`, as the slot's (`memos.1`) latest, once the compile
/// database is written.
fn realise_and_memo(
    project: &Project,
    args: &RealiseArgs,
    names: &[(String, String)],
    memos: (&ContentHash, &ContentHash),
    (pinned, refresh): (Option<&Lockfile>, Refresh<'_>),
    progress: &Progress,
) -> Result<Memo, CliError> {
    let (key, slot) = memos;
    // While the derivations are emitted: the sandbox is probed (a few milliseconds), and
    // what the slot's latest memo realised is checked for validity (a few `stat`s per
    // path, thousands of paths on a large graph).
    let (enforced, targets, previous) = std::thread::scope(|s| {
        let probe = s.spawn(|| sandbox_mode(&args.run));
        let previous = s.spawn(|| {
            let memo = project.store.latest_memo(slot)?;
            let outputs = memo.derivations.into_iter().map(|e| (e.drv, e.outputs));
            Some(realise::Previous::checked(
                &project.store,
                outputs.collect(),
            ))
        });
        let targets = project.targets(names);
        (join(probe), targets, join(previous))
    });
    let targets = with_json_finish(progress, targets)?;
    let enforced = with_json_finish(progress, enforced)?;
    let request = BuildRequest {
        check: args.check,
        pinned,
        previous: previous.as_ref(),
        enforced: Some(enforced),
        first_step: Some(refresh.first_step()),
    };
    let shown = Project::display_names(names);
    let mut written = None;
    build_targets(
        project,
        &targets,
        &args.run,
        &request,
        progress,
        |outputs, r| {
            refresh.finish()?;
            let derivations = &project.derived()?.derivations;
            let memo = Memo::new(
                shown.iter().cloned().zip(outputs.iter().cloned()).collect(),
                r.outputs
                    .iter()
                    .map(|(d, o)| MemoEntry {
                        drv: d.clone(),
                        name: derivations[d].name.clone(),
                        outputs: o.clone(),
                    })
                    .collect(),
                KeepList::new(
                    &r.closure(derivations)
                        .into_iter()
                        .chain(project.source_trees())
                        .collect(),
                )?,
            );
            link_outputs(project, args, &memo.targets, &memo.keep)?;
            project.store.write_memo(key, &memo)?;
            project.store.set_latest_memo(slot, key)?;
            written = Some(memo);
            Ok(())
        },
    )?;
    written.ok_or_else(|| CliError::Internal("the realisation left no memo".into()))
}

pub fn realise(cli: &Cli, args: &RealiseArgs) -> Result<(), CliError> {
    let store_dir = crate::project::open_store(cli)?.store_dir();
    let progress = Progress::new(args.run.message_format, store_dir);
    let (project, names) = with_json_finish(
        &progress,
        load(cli, &args.build).and_then(|p| {
            let names = p.select(&args.targets)?;
            Ok((p, names))
        }),
    )?;
    if args.dry_run {
        return dry_run(&project, &names, args, &progress);
    }
    // An out-link's directory is never created: a missing one is the user's to fix, and
    // is better said before building than after.
    if !args.no_link {
        with_json_finish(
            &progress,
            cmod_store::roots::check_out_link_dir(&args.out_link).map_err(CliError::from),
        )?;
    }
    // Hold the GC lock (shared) until the out-links are registered as roots: between a
    // realisation finishing and its roots existing, a concurrent GC must not run.
    let _gc = project.store.gc_guard()?;
    let lock = with_json_finish(
        &progress,
        crate::commands::lock::prepare(&project, args.build.locked()),
    )?;
    let pinned = Some(&lock).filter(|_| args.build.locked());
    let first_step = Gate::default();
    let memo = std::thread::scope(|scope| {
        let refresh = with_json_finish(
            &progress,
            crate::commands::compile_commands::start_refresh(
                scope,
                &project,
                &args.build,
                &first_step,
            ),
        )?;
        realise_loaded(&project, &names, args, pinned, refresh, &progress)
    })?;
    // With JSON messages the paths are in the `finished` line (`out_paths`); stdout
    // carries nothing but JSON.
    if args.print_out_paths && !progress.is_json() {
        for (_, p) in &memo.targets {
            outln!("{}", project.store.path_of(p).display());
        }
    }
    Ok(())
}

/// Realise `names` of a loaded project: from the memo of an identical evaluation if it
/// holds, else reusing what the last realisation of the same targets built. The compile
/// database (`refresh`) is waited for before the final message.
fn realise_loaded(
    project: &Project,
    names: &[(String, String)],
    args: &RealiseArgs,
    pinned: Option<&Lockfile>,
    refresh: Refresh<'_>,
    progress: &Progress,
) -> Result<Memo, CliError> {
    let mode: Mode = with_json_finish(
        progress,
        args.run
            .sandbox
            .parse()
            .map_err(|e: String| CliError::usage(e, None)),
    )?;
    let shown = Project::display_names(names);
    let key = memo_key(project, mode, &args.run, &shown);
    let hit = if args.check {
        None
    } else {
        trusted_memo(project, &key, progress)
    };
    match hit {
        Some((memo, fresh_lines)) => {
            report_memo(project, &memo, &fresh_lines, pinned, progress, || {
                refresh.finish()?;
                link_outputs(project, args, &memo.targets, &memo.keep)
            })?;
            Ok(memo)
        }
        None => {
            let slot = memo_slot(project, mode, &args.run, &shown);
            let memos = (&key, &slot);
            realise_and_memo(project, args, names, memos, (pinned, refresh), progress)
        }
    }
}

pub fn run(cli: &Cli, args: &RunArgs) -> Result<(), CliError> {
    let project = load(cli, &args.build)?;
    let bins: Vec<Target> = project
        .targets_named(&[])?
        .into_iter()
        .filter(|t| t.kind == cmod_evaluator::derive::TargetKind::Bin)
        .collect();
    let target = match &args.bin {
        Some(name) => bins
            .iter()
            .find(|t| &t.name == name)
            .cloned()
            .ok_or_else(|| {
                CliError::usage(
                    format!("no binary named `{name}`"),
                    Some(format!(
                        "binaries: {}",
                        bins.iter()
                            .map(|t| t.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                )
            })?,
        None => match bins.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(CliError::usage(
                    "the package has no [[bin]] to run",
                    Some("add a [[bin]] table with `name` and `main`".into()),
                ))
            }
            many => {
                return Err(CliError::usage(
                    "the package has several binaries",
                    Some(format!(
                        "pick one with --bin: {}",
                        many.iter()
                            .map(|t| t.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                ))
            }
        },
    };
    let progress = Progress::new(args.run.message_format, project.store.store_dir());
    let outputs = build_outputs(
        &project,
        std::slice::from_ref(&target),
        &args.run,
        &progress,
    )?;
    let exe = outputs
        .first()
        .map(|p| project.store.path_of(p))
        .ok_or_else(|| CliError::Internal("no output for the binary".into()))?;
    let err = std::process::Command::new(&exe).args(&args.args).exec();
    Err(CliError::Internal(format!(
        "cannot run `{}`: {err}",
        exe.display()
    )))
}

/// Realised outputs of targets, for other commands.
pub fn outputs_of(
    project: &Project,
    targets: &[Target],
) -> Result<BTreeMap<String, StorePath>, CliError> {
    targets
        .iter()
        .map(|t| {
            project
                .realised_output(t)
                .map(|p| (t.name.clone(), p))
                .ok_or_else(|| {
                    CliError::usage(
                        format!(
                            "target `{}` has not been realised with the current sources",
                            t.name
                        ),
                        Some("run `cmod realise` first".into()),
                    )
                })
        })
        .collect()
}

/// The result of a scoped thread (its panic, if any, continues on this thread).
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_sandbox_without_landlock_is_warned_about() {
        let full = |abi| Enforcement {
            mode: Mode::Full,
            landlock_abi: abi,
        };
        let warning = missing_landlock_warning(&full(None)).unwrap();
        assert!(
            warning.starts_with("warning: this kernel has no Landlock")
                && warning.contains("namespaces only")
                && warning.contains("CONFIG_SECURITY_LANDLOCK"),
            "{warning}"
        );
        assert_eq!(missing_landlock_warning(&full(Some(7))), None);
        for mode in [Mode::Off, Mode::Landlock] {
            let e = Enforcement {
                mode,
                landlock_abi: None,
            };
            assert_eq!(missing_landlock_warning(&e), None, "{mode}");
        }
    }
}
