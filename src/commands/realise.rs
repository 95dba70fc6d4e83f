//! `cmod realise` (alias `build`), `cmod run` and `cmod lock`.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;

use cmod_evaluator::derive::Target;
use cmod_evaluator::journal::Recording;
use cmod_sandbox::Mode;
use cmod_schema::lock::Lockfile;
use cmod_schema::{ContentHash, StorePath};
use cmod_store::memo::{Memo, MemoEntry};
use cmod_store::realise;
use cmod_store::roots::KeepList;
use cmod_store::Store;
use serde_json::json;

use crate::cli::{Cli, LockArgs, RealiseArgs, RunArgs};
use crate::commands::build::{
    build_outputs, build_targets, sandbox_mode, with_json_finish, BuildRequest,
};
use crate::commands::compile_commands::{Gate, Refresh};
use crate::commands::journaled;
use crate::commands::memo::{finish_fresh, link_outputs, memo_key, trusted_memo};
use crate::diagnostic::CliError;
use crate::progress::Progress;
use crate::project::{load, Project};

/// A no-op: report the memo's derivations as fresh (the JSON contract still lists them;
/// `fresh_lines` from [`trusted_memo`]) and verify pinned outputs, without emitting or
/// resolving a single derivation. `after` runs before the final message, as in
/// [`build_targets`].
fn report_memo(
    project: &Project,
    memo: &Memo,
    fresh_lines: &crate::progress::Collected,
    pinned: Option<&Lockfile>,
    progress: &Progress,
    after: impl FnOnce() -> Result<(), CliError>,
) -> Result<(), CliError> {
    progress.write_collected(fresh_lines);
    // Most no-ops have no warnings to replay, and need not map paths.
    if memo.derivations.iter().any(|d| d.warnings > 0) {
        progress.set_source_roots(crate::source_paths::of_evaluation(&project.eval));
        crate::warnings::replay_memo(&project.store, memo, progress);
    }
    let pin_check = match pinned {
        Some(lock) => crate::commands::lock::verify_outputs(project, lock, &memo.targets),
        None => Ok(()),
    };
    finish_fresh(&project.store, memo, progress, pin_check, after)
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
            let memo = project.store.latest_memo(slot);
            let warnings = crate::warnings::Warnings::from_memo(memo.as_ref());
            let previous = memo.map(|memo| {
                let outputs = memo.derivations.into_iter().map(|e| (e.drv, e.outputs));
                realise::Previous::checked(&project.store, outputs.collect())
            });
            (previous, warnings)
        });
        let targets = project.targets(names).map_err(CliError::from);
        (join(probe), targets, join(previous))
    });
    let (previous, warnings) = previous;
    let targets = with_json_finish(progress, targets)?;
    let enforced = with_json_finish(progress, enforced)?;
    let request = BuildRequest {
        check: args.check,
        pinned,
        previous: previous.as_ref(),
        enforced: Some(enforced),
        first_step: Some(refresh.first_step()),
        warnings: Some(&warnings),
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
                        warnings: warnings.of(d),
                    })
                    .collect(),
                KeepList::new(
                    &r.closure(derivations)
                        .into_iter()
                        .chain(project.source_trees())
                        .collect(),
                )?,
            );
            link_outputs(&project.store, args, &memo.targets, &memo.keep)?;
            project.store.write_memo(key, &memo)?;
            project.store.set_latest_memo(slot, key)?;
            written = Some(memo);
            Ok(())
        },
    )?;
    written.ok_or_else(|| CliError::Internal("the realisation left no memo".into()))
}

pub fn realise(cli: &Cli, args: &RealiseArgs) -> Result<(), CliError> {
    let store = crate::project::open_store(cli)?;
    let progress = Progress::for_run(&args.run, store.store_dir());
    let select = || {
        let loaded = load(cli, &args.build).and_then(|p| {
            let names = p.select(&args.targets)?;
            Ok((p, names))
        });
        with_json_finish(&progress, loaded)
    };
    if args.dry_run {
        let (project, names) = select()?;
        project_evaluated(&project, &progress);
        return dry_run(&project, &names, args, &progress);
    }
    let memo = realise_journaled(cli, &store, args, &progress, "realise", select)?;
    print_out_paths(&store, &memo, args, &progress);
    Ok(())
}

/// The memo of the targets `select` evaluates and picks: from the journal of `purpose`
/// (`realise`, or `run` and its binary) while it holds, else by evaluating (every read
/// recorded), realising, and journaling those reads.
fn realise_journaled(
    cli: &Cli,
    store: &Store,
    args: &RealiseArgs,
    progress: &Progress,
    purpose: &str,
    select: impl FnOnce() -> Result<(Project, Vec<(String, String)>), CliError>,
) -> Result<Memo, CliError> {
    let journal = journaled::journal_file(cli, args, store, purpose);
    if let Some(file) = &journal {
        if let Some(memo) = journaled::realise_from(store, file, args, progress)? {
            return Ok(memo);
        }
    }
    let recording = Recording::start();
    let selected = select();
    let recorded = recording.finish();
    let (project, names) = selected?;
    project_evaluated(&project, progress);
    let memo = realise_selected(&project, &names, args, progress)?;
    if let Some(file) = &journal {
        journaled::save(file, recorded, &project, &names, args, &memo);
    }
    Ok(memo)
}

/// Tell `progress` the evaluation is done (its root and scan time, for `--timings`).
fn project_evaluated(project: &Project, progress: &Progress) {
    progress.evaluated(
        &project.eval.packages.workspace_root,
        project.eval.stats.scan_time,
    );
}

/// `--print-out-paths`: the targets' outputs on stdout. With JSON messages the paths are
/// in the `finished` line (`out_paths`); stdout carries nothing but JSON.
fn print_out_paths(store: &Store, memo: &Memo, args: &RealiseArgs, progress: &Progress) {
    if args.print_out_paths && !progress.is_json() {
        for (_, p) in &memo.targets {
            outln!("{}", store.path_of(p).display());
        }
    }
}

/// Realise `names` of a loaded project as `realise` does (`run` too): out-links checked
/// first, under the shared GC lock until they are roots, with the lockfile verified and
/// the compile database refreshed.
fn realise_selected(
    project: &Project,
    names: &[(String, String)],
    args: &RealiseArgs,
    progress: &Progress,
) -> Result<Memo, CliError> {
    // An out-link's directory is never created: a missing one is the user's to fix, and
    // is better said before building than after.
    if !args.no_link {
        with_json_finish(
            progress,
            cmod_store::roots::check_out_link_dir(&args.out_link).map_err(CliError::from),
        )?;
    }
    // Hold the GC lock (shared) until the out-links are registered as roots: between a
    // realisation finishing and its roots existing, a concurrent GC must not run.
    let _gc = project.store.gc_guard()?;
    let lock = with_json_finish(
        progress,
        crate::commands::lock::prepare(project, args.build.locked()),
    )?;
    let pinned = Some(&lock).filter(|_| args.build.locked());
    let first_step = Gate::default();
    std::thread::scope(|scope| {
        let refresh = with_json_finish(
            progress,
            crate::commands::compile_commands::start_refresh(
                scope,
                project,
                &args.build,
                &first_step,
            ),
        )?;
        realise_loaded(project, names, args, pinned, refresh, progress)
    })
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
        trusted_memo(&project.store, &key, progress)
    };
    match hit {
        Some((memo, fresh_lines)) => {
            report_memo(project, &memo, &fresh_lines, pinned, progress, || {
                refresh.finish()?;
                link_outputs(&project.store, args, &memo.targets, &memo.keep)
            })?;
            Ok(memo)
        }
        None => {
            let slot = cmod_ops::build::memo_slot(
                &project.eval,
                mode,
                &args.run.accept_outputs_from,
                &shown,
            );
            let memos = (&key, &slot);
            realise_and_memo(project, args, names, memos, (pinned, refresh), progress)
        }
    }
}

/// `cmod run`: realise the binary as `realise` would (its out-link, a GC root, is
/// `result` unless told otherwise; a no-op is as fast), then replace this process with it.
pub fn run(cli: &Cli, args: &RunArgs) -> Result<(), CliError> {
    let store = crate::project::open_store(cli)?;
    let progress = Progress::for_run(&args.run, store.store_dir());
    let as_realise = RealiseArgs {
        targets: Vec::new(),
        build: args.build.clone(),
        run: args.run.clone(),
        out_link: args.out_link.clone(),
        no_link: args.no_link,
        print_out_paths: false,
        dry_run: false,
        check: false,
    };
    // The binary asked for (or the default one) selects the journal.
    let purpose = format!("run {:?}", args.bin);
    let select = || {
        let project = load(cli, &args.build)?;
        let bin = pick_binary(&project, args.bin.as_deref())?;
        Ok((project, vec![bin]))
    };
    let memo = realise_journaled(cli, &store, &as_realise, &progress, &purpose, select)?;
    let exe = memo
        .targets
        .first()
        .map(|(_, p)| store.path_of(p))
        .ok_or_else(|| CliError::Internal("no output for the binary".into()))?;
    if !progress.is_json() {
        let mut shown = vec![exe.display().to_string()];
        shown.extend(args.args.iter().cloned());
        status!("{:>12} `{}`", "Running", shown.join(" "));
    }
    let err = std::process::Command::new(&exe).args(&args.args).exec();
    Err(CliError::Internal(format!(
        "cannot run `{}`: {err}",
        exe.display()
    )))
}

/// The binary `cmod run` runs, as (package, name): the one named, else the only one of
/// the selected members. Known from the evaluation, without emitting derivations.
fn pick_binary(project: &Project, name: Option<&str>) -> Result<(String, String), CliError> {
    let bins: Vec<(String, String)> = project
        .eval
        .target_names()
        .into_iter()
        .filter(|(_, _, kind)| *kind == cmod_evaluator::derive::TargetKind::Bin)
        .map(|(p, n, _)| (p, n))
        .collect();
    let listed = || {
        bins.iter()
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(name) => bins
            .iter()
            .find(|(_, n)| n == name)
            .cloned()
            .ok_or_else(|| {
                CliError::usage(
                    format!("no binary named `{name}`"),
                    Some(format!("binaries: {}", listed())),
                )
            }),
        None => match bins.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(CliError::usage(
                "the package has no [[bin]] to run",
                Some("add a [[bin]] table with `name` and `main`".into()),
            )),
            _ => Err(CliError::usage(
                "the package has several binaries",
                Some(format!("pick one with --bin: {}", listed())),
            )),
        },
    }
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

/// `cmod lock [--outputs]`.
pub fn lock(cli: &Cli, args: &LockArgs) -> Result<(), CliError> {
    let project = load(cli, &args.build)?;
    let mut lock = crate::commands::lock::prepare(&project, false)?;
    if args.outputs {
        let targets = project.targets_named(&[])?;
        let progress = Progress::for_run(&args.run, project.store.store_dir());
        progress.evaluated(
            &project.eval.packages.workspace_root,
            project.eval.stats.scan_time,
        );
        let outputs = build_outputs(&project, &targets, &args.run, &progress)?;
        let pins = lock
            .outputs
            .entry(crate::commands::lock::profile(&project).to_string())
            .or_default();
        pins.clear();
        for (name, p) in Project::shown(&targets).into_iter().zip(&outputs) {
            let info = project.store.path_info(p)?;
            pins.insert(
                name,
                cmod_schema::lock::LockedOutput {
                    path: p.clone(),
                    content_hash: info.content_hash,
                },
            );
        }
        crate::commands::lock::write(&project, &lock)?;
        status!(
            "{:>12} {} output(s) of the `{}` profile in cmod.lock",
            "Pinned",
            outputs.len(),
            crate::commands::lock::profile(&project)
        );
    } else {
        status!(
            "{:>12} toolchain and {} package(s) in cmod.lock",
            "Locked",
            lock.packages.len()
        );
    }
    Ok(())
}
