//! `cmod realise` (alias `build`), `cmod run` and `cmod lock`: their options made into a
//! [`RealiseRequest`], and what they print. What realising does is in
//! `cmod_ops::realise`.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;

use cmod_evaluator::derive::Target;
use cmod_ops::journal::JournalKey;
use cmod_ops::project::EvalHow;
use cmod_ops::realise::{OutLinks, RealiseRequest};
use cmod_schema::StorePath;
use cmod_store::memo::Memo;
use cmod_store::Store;
use serde_json::json;

use crate::cli::{Cli, LockArgs, RealiseArgs, RunArgs};
use crate::commands::build::{build_outputs, with_json_finish};
use crate::diagnostic::CliError;
use crate::progress::Progress;
use crate::project::{load, Project};

/// `--dry-run`: list what would be built (JSON lines with `--message-format json`).
fn dry_run(
    project: &Project,
    names: &[(String, String)],
    args: &RealiseArgs,
    progress: &Progress,
) -> Result<(), CliError> {
    let plan = cmod_ops::realise::dry_run(project, names, &args.run.settings(), progress);
    let plan = with_json_finish(progress, plan.map_err(CliError::from))?;
    let derivations = &project.derived()?.derivations;
    if progress.is_json() {
        for d in &plan.to_build {
            progress.json_line(json!({
                "reason": "would-build",
                "drv": project.store.path_of(d),
                "name": derivations[d].name,
            }));
        }
        for (package, target) in &project.eval.pending.targets {
            progress.json_line(json!({
                "reason": "pending",
                "package": package,
                "target": target,
                "generators": project.eval.pending.generators.iter()
                    .map(|(p, g)| format!("{p}/{g}")).collect::<Vec<_>>(),
            }));
        }
        progress.json_line(json!({
            "reason": "finished",
            "success": true,
            "dry_run": true,
            "would_build": plan.to_build.len(),
            "fresh": plan.fresh,
            "pending": project.eval.pending.targets.len(),
        }));
        return Ok(());
    }
    if let Some(note) = project.pending_note() {
        errln!("note: {note}");
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

/// The realisation `args` ask for; its input journal is `purpose`'s (`realise`, or `run`
/// and its binary) for the package in `package_dir`, unless `--timings` wants the
/// evaluation timed.
fn request<'a>(
    cli: &'a Cli,
    args: &'a RealiseArgs,
    purpose: &'a str,
    package_dir: Option<&'a Path>,
) -> RealiseRequest<'a> {
    let journal = package_dir
        .filter(|_| !args.run.timings)
        .map(|package_dir| JournalKey {
            purpose,
            package_dir,
            manifest_path: cli.manifest_path.as_deref(),
            targets: &args.targets,
            release: args.build.release,
            offline: args.build.offline(),
            select: &args.build.package,
            sandbox: &args.run.sandbox,
            accepted: &args.run.accept_outputs_from,
        });
    RealiseRequest {
        settings: args.run.settings(),
        eval: EvalHow {
            release: args.build.release,
            offline: args.build.offline(),
            update: cmod_evaluator::deps::Update::Nothing,
            precise: None,
        },
        check: args.check,
        locked: args.build.locked(),
        out_links: match args.no_link {
            true => OutLinks::None,
            false => OutLinks::At(&args.out_link),
        },
        journal,
    }
}

pub fn realise(cli: &Cli, args: &RealiseArgs) -> Result<(), CliError> {
    let store = crate::project::open_store(cli)?;
    let progress = Progress::for_run(&args.run, store.store_dir());
    let load = || load(cli, &args.build);
    let pick = |project: &Project| Ok(project.select(&args.targets)?);
    if args.dry_run {
        let selected = load().and_then(|project| pick(&project).map(|names| (project, names)));
        let (project, names) = with_json_finish(&progress, selected)?;
        project_evaluated(&project, &progress);
        return dry_run(&project, &names, args, &progress);
    }
    let dir = crate::project::package_dir(cli).ok();
    let request = request(cli, args, "realise", dir.as_deref());
    let memo = cmod_ops::realise::realise(&store, &request, &progress, load, pick);
    let memo = with_json_finish(&progress, memo)?;
    print_out_paths(&store, &memo, args, &progress);
    Ok(())
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
    let load = || load(cli, &args.build);
    let pick = |project: &Project| Ok(vec![pick_binary(project, args.bin.as_deref())?]);
    let dir = crate::project::package_dir(cli).ok();
    let request = request(cli, &as_realise, &purpose, dir.as_deref());
    let memo = cmod_ops::realise::realise(&store, &request, &progress, load, pick);
    let memo = with_json_finish(&progress, memo)?;
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

/// `cmod lock [--outputs]`.
pub fn lock(cli: &Cli, args: &LockArgs) -> Result<(), CliError> {
    if args.outputs {
        return lock_outputs(cli, args);
    }
    let project = load(cli, &args.build)?;
    let lock = prepare_lock(&project, false)?;
    status!(
        "{:>12} toolchain and {} package(s) in cmod.lock",
        "Locked",
        lock.packages.len()
    );
    Ok(())
}

/// `cmod lock --outputs`: build every target (generators first) and pin its output.
fn lock_outputs(cli: &Cli, args: &LockArgs) -> Result<(), CliError> {
    let store = crate::project::open_store(cli)?;
    let progress = Progress::for_run(&args.run, store.store_dir());
    let settings = args.run.settings();
    let load = || load(cli, &args.build);
    let project = cmod_ops::realise::load_with_generators(&settings, false, &progress, load)?;
    let mut lock = prepare_lock(&project, false)?;
    let targets = project.targets_named(&[])?;
    project_evaluated(&project, &progress);
    let outputs = build_outputs(&project, &targets, &args.run, &progress)?;
    let pins = lock
        .outputs
        .entry(cmod_ops::lock::profile(&project).to_string())
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
    cmod_ops::lock::write(&project, &lock)?;
    status!(
        "{:>12} {} output(s) of the `{}` profile in cmod.lock",
        "Pinned",
        outputs.len(),
        cmod_ops::lock::profile(&project)
    );
    Ok(())
}

/// The lock a command works under (see `cmod_ops::lock::prepare`), its warning shown.
pub(crate) fn prepare_lock(
    project: &Project,
    locked: bool,
) -> Result<cmod_schema::lock::Lockfile, CliError> {
    let prepared = cmod_ops::lock::prepare(project, locked)?;
    if let Some(warning) = prepared.warning {
        errln!("warning: {warning}");
    }
    Ok(prepared.lock)
}
