//! Realising a package's targets, as `cmod realise` and `cmod run` do: from the input
//! journal when nothing the last evaluation read changed, else by evaluating; then from
//! the memo of an identical evaluation when its outputs are still valid (a no-op), else by
//! building, reusing what the last realisation of the same targets built; with the
//! lockfile kept current (and verified under `--locked`), the compile database refreshed
//! beside the build, out-links written and the memo recorded. Everything is reported
//! through [`Events`], which the command line renders; nothing here prints.

mod links;
mod memo;
mod steps;
mod verdict;
pub mod warnings;

use cmod_evaluator::journal::Recording;
use cmod_schema::lock::Lockfile;
use cmod_schema::StorePath;
use cmod_store::memo::Memo;
use cmod_store::realise::{self, Speculation};
use cmod_store::Store;
use std::path::Path;
use std::sync::Arc;

use crate::build::BuildSettings;
use crate::compdb::{Gate, Refresh};
use crate::journal::JournalKey;
use crate::project::EvalHow;
use crate::{OpsError, Project};

pub(crate) use crate::events::warn;
pub use crate::events::{Events, Summary};
pub use links::{link_outputs, OutLinks};
pub use steps::{build_outputs, build_targets, probe_sandbox, run_generators, BuildRequest};
pub use verdict::describe_difference;

/// How to realise: the build settings, the profile and network (which the compile
/// database's evaluation of the whole workspace shares), `--check`, `--locked`, the
/// out-links, and the input journal to answer from and keep.
pub struct RealiseRequest<'a> {
    /// How steps are built.
    pub settings: BuildSettings,
    /// How the package was evaluated (profile and network).
    pub eval: EvalHow,
    /// Rebuild every step and compare with the stored outputs.
    pub check: bool,
    /// The lockfile must not change, and pinned outputs are verified.
    pub locked: bool,
    /// Where the targets' out-links go.
    pub out_links: OutLinks<'a>,
    /// The journal of this realisation's evaluation, when it may be answered from one
    /// (never with `--check` or `--locked`, which must evaluate).
    pub journal: Option<JournalKey<'a>>,
}

/// Realise the targets `pick` chooses (package, name) of the project `load` evaluates:
/// from the input journal while it holds, else by evaluating (every read recorded, the
/// generators that run a program built and run first: see [`load_with_generators`]),
/// realising (see [`realise_selected`]), and journaling those reads. The memo of the
/// realisation.
pub fn realise<E: From<OpsError>>(
    store: &Store,
    request: &RealiseRequest<'_>,
    events: &dyn Events,
    load: impl Fn() -> Result<Project, E>,
    pick: impl FnOnce(&Project) -> Result<Vec<(String, String)>, E>,
) -> Result<Memo, E> {
    let journal = request
        .journal
        .as_ref()
        .filter(|_| !request.check && !request.locked)
        .and_then(|key| crate::journal::journal_file(store, key));
    let ahead = journal
        .as_deref()
        .map(|file| speculation(store, file, &request.settings));
    if let Some(file) = &journal {
        if let Some(memo) = memo::realise_from_journal(store, file, request, events)? {
            return Ok(memo);
        }
    }
    let recording = Recording::start();
    let selected = load_with_generators(&request.settings, request.check, events, load)
        .and_then(|project| pick(&project).map(|names| (project, names)));
    let recorded = recording.finish();
    let (project, names) = selected?;
    events.evaluated(
        &project.eval.packages.workspace_root,
        project.eval.stats.scan_time,
    );
    let memo = realise_selected(&project, &names, request, ahead.as_deref(), events)?;
    if let Some(ahead) = &ahead {
        ahead.finish();
    }
    if let Some(file) = &journal {
        let saved = memo::memo_key(&project, &request.settings, &names)
            .map_err(|e| e.summary())
            .and_then(|key| crate::journal::save(file, recorded, &project, &key, &memo));
        if let Err(why) = saved {
            let _ = std::fs::remove_file(file);
            events.note(&format!("the evaluation was not journaled: {why}"));
        }
    }
    Ok(memo)
}

/// The speculative builds of the request journaled in `journal` (its recipes are kept
/// beside it): started, unless `-j1` (a build ahead takes a core of its own) or
/// `--keep-failed` (a failed build ahead keeps nothing) asks otherwise; the steps built
/// are recorded either way.
fn speculation(store: &Store, journal: &Path, settings: &BuildSettings) -> Arc<Speculation> {
    let name = journal.file_stem().unwrap_or_default();
    let ahead = Speculation::new(store.cache_dir().join("ahead-v1").join(name));
    if settings.jobs() > 1 && !settings.keep_failed {
        ahead.start(store, settings.limits(), &realise::LocalSandbox);
    }
    ahead
}

/// The project `load` evaluates once every generator that runs a program has run: while
/// the evaluation leaves some pending, those it can build are built and run (see
/// [`run_generators`]; with `check`, rebuilt and compared) and it is evaluated again,
/// which finds their outputs. Each round runs at least one generator, so this ends; a
/// round that can run none is an error.
pub fn load_with_generators<E: From<OpsError>>(
    settings: &BuildSettings,
    check: bool,
    events: &dyn Events,
    load: impl Fn() -> Result<Project, E>,
) -> Result<Project, E> {
    let mut ran_before: std::collections::BTreeSet<StorePath> = Default::default();
    loop {
        let project = load()?;
        if project.eval.pending.is_empty() {
            if check {
                // The evaluation took the generators' recorded outputs: rebuild them too.
                let runs = &project.derived()?.generators;
                run_generators(&project, runs, settings, true, events)?;
            }
            return Ok(project);
        }
        let runs = crate::project::pending_runs(&project.eval)?;
        // A generator run again is one whose outputs the evaluation did not take: a bug,
        // which must not loop.
        if runs.iter().any(|r| !ran_before.insert(r.drv.clone())) {
            return Err(OpsError::Internal(
                "a generator's outputs were not found after it ran".into(),
            )
            .into());
        }
        let ran = run_generators(&project, &runs, settings, check, events)?;
        if ran == 0 {
            let waiting: Vec<String> = project
                .eval
                .pending
                .generators
                .iter()
                .map(|(p, g)| format!("`{g}` of `{p}`"))
                .collect();
            return Err(OpsError::usage(
                format!("generators {} cannot run: their programs wait on generated files", waiting.join(", ")),
                Some("a generator's program cannot use its own package's generated files, nor a library that needs them".into()),
            )
            .into());
        }
    }
}

/// Realise `names` of a loaded project: out-links checked first, under the shared GC lock
/// until they are roots, with the lockfile prepared (verified under `--locked`) and the
/// compile database refreshed beside the build; builds started `ahead` are taken where
/// they fit.
pub fn realise_selected(
    project: &Project,
    names: &[(String, String)],
    request: &RealiseRequest<'_>,
    ahead: Option<&Speculation>,
    events: &dyn Events,
) -> Result<Memo, OpsError> {
    // An out-link's directory is never created: a missing one is the user's to fix, and
    // is better said before building than after.
    if let OutLinks::At(base) = request.out_links {
        cmod_store::roots::check_out_link_dir(base)?;
    }
    // Hold the GC lock (shared) until the out-links are registered as roots: between a
    // realisation finishing and its roots existing, a concurrent GC must not run.
    let _gc = project.store.gc_guard()?;
    let prepared = crate::lock::prepare(project, request.locked)?;
    if let Some(warning) = &prepared.warning {
        warn(events, warning);
    }
    let pinned = Some(&prepared.lock).filter(|_| request.locked);
    let first_step = Gate::default();
    std::thread::scope(|scope| {
        let refresh =
            crate::compdb::start_refresh(scope, project, &request.eval, &first_step, events)?;
        realise_loaded(project, names, request, (pinned, refresh, ahead), events)
    })
}

/// Realise `names` of a loaded project: from the memo of an identical evaluation if it
/// holds, else reusing what the last realisation of the same targets built. The compile
/// database (`refresh`) is waited for before the final message.
fn realise_loaded(
    project: &Project,
    names: &[(String, String)],
    request: &RealiseRequest<'_>,
    (pinned, refresh, ahead): (Option<&Lockfile>, Refresh<'_>, Option<&Speculation>),
    events: &dyn Events,
) -> Result<Memo, OpsError> {
    let key = memo::memo_key(project, &request.settings, names)?;
    let hit = match request.check {
        true => None,
        false => memo::trusted_memo(&project.store, &key, events),
    };
    match hit {
        Some((memo, held)) => {
            memo::report_memo(project, &memo, held, pinned, events, || {
                refresh.finish()?;
                link_outputs(&project.store, request.out_links, &memo.targets, &memo.keep)
            })?;
            Ok(memo)
        }
        None => {
            let memos = (&key, &memo::memo_slot(project, &request.settings, names)?);
            let with = (pinned, refresh, ahead);
            memo::realise_and_memo(project, request, names, memos, with, events)
        }
    }
}

/// What `--dry-run` reports: the steps that would be built.
pub fn dry_run(
    project: &Project,
    names: &[(String, String)],
    settings: &BuildSettings,
    events: &dyn Events,
) -> Result<realise::Plan, OpsError> {
    let mode = probe_sandbox(settings, events)?.mode;
    let targets = project.targets(names)?;
    let mut drvs: Vec<StorePath> = targets.iter().map(|t| t.drv.clone()).collect();
    // Generators that have not run would run first; what waits on them is pending.
    drvs.extend(
        crate::project::pending_runs(&project.eval)?
            .into_iter()
            .map(|r| r.drv),
    );
    Ok(realise::dry_run(
        &project.store,
        &project.derived()?.derivations,
        &drvs,
        mode.as_str(),
    )?)
}
