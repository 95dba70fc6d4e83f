//! The realisation memo: its key and slot, whether it can be trusted (its steps reported
//! fresh), the end of a no-op (from the memo, or from the input journal without
//! evaluating), and the memo a realisation that built writes.

use std::path::Path;
use std::time::Duration;

use cmod_sandbox::Mode;
use cmod_schema::lock::Lockfile;
use cmod_schema::ContentHash;
use cmod_store::memo::{Memo, MemoEntry};
use cmod_store::realise::{self, Speculation};
use cmod_store::roots::KeepList;
use cmod_store::Store;

use super::warnings::Warnings;
use super::{link_outputs, probe_sandbox, BuildRequest, Events, RealiseRequest, Summary};
use crate::build::BuildSettings;
use crate::compdb::Refresh;
use crate::{OpsError, Project};

/// The sandbox mode `settings` ask for.
fn mode(settings: &BuildSettings) -> Result<Mode, OpsError> {
    settings
        .sandbox
        .parse()
        .map_err(|e: String| OpsError::usage(e, None))
}

/// The key of the memo of `names` realised with `settings` (see
/// [`crate::build::memo_key`]).
pub(super) fn memo_key(
    project: &Project,
    settings: &BuildSettings,
    names: &[(String, String)],
) -> Result<ContentHash, OpsError> {
    keyed(crate::build::memo_key, project, settings, names)
}

/// The slot whose latest memo holds what the last realisation of `names` built (see
/// [`crate::build::memo_slot`]).
pub(super) fn memo_slot(
    project: &Project,
    settings: &BuildSettings,
    names: &[(String, String)],
) -> Result<ContentHash, OpsError> {
    keyed(crate::build::memo_slot, project, settings, names)
}

/// `key` of the evaluation, the sandbox mode, the accepted modes and the targets as
/// shown.
fn keyed(
    key: fn(&cmod_evaluator::Evaluation, Mode, &[String], &[String]) -> ContentHash,
    project: &Project,
    settings: &BuildSettings,
    names: &[(String, String)],
) -> Result<ContentHash, OpsError> {
    let shown = Project::display_names(names);
    let accepted = &settings.accept_outputs_from;
    Ok(key(&project.eval, mode(settings)?, accepted, &shown))
}

/// Lines held back by [`Events::hold_lines`]: written by [`HeldLines::write`], dropped
/// if this is dropped first.
pub(super) struct HeldLines<'a> {
    events: Option<&'a dyn Events>,
}

impl<'a> HeldLines<'a> {
    fn hold(events: &'a dyn Events) -> HeldLines<'a> {
        events.hold_lines();
        HeldLines {
            events: Some(events),
        }
    }

    /// Write the held lines.
    pub(super) fn write(mut self) {
        if let Some(events) = self.events.take() {
            events.release_lines(true);
        }
    }
}

impl Drop for HeldLines<'_> {
    fn drop(&mut self) {
        if let Some(events) = self.events.take() {
            events.release_lines(false);
        }
    }
}

/// The memo under `key` if it can be trusted (every output it names is still valid),
/// with its derivations' `fresh` lines already reported but held: they are prepared
/// while a second thread checks the outputs, and written only if the memo holds.
pub(super) fn trusted_memo<'a>(
    store: &Store,
    key: &ContentHash,
    events: &'a dyn Events,
) -> Option<(Memo, HeldLines<'a>)> {
    let memo = store.memo_unchecked(key)?;
    let (valid, held) = std::thread::scope(|s| {
        // Beside the check, what killed runs left in the store's `tmp/` (a listing,
        // usually of an empty directory) is cleaned, as a full realisation does.
        let check = || {
            let _ = store.clean_temporaries();
            store.memo_outputs_valid(key, &memo)
        };
        let spawned = std::thread::Builder::new().spawn_scoped(s, check).ok();
        let held = HeldLines::hold(events);
        for d in &memo.derivations {
            events.event(&realise::Event::Fresh {
                drv: &d.drv,
                name: &d.name,
                outputs: &d.outputs,
            });
        }
        let valid = match spawned {
            Some(thread) => thread.join().unwrap_or(false),
            None => check(),
        };
        (valid, held)
    });
    valid.then_some((memo, held))
}

/// A no-op: the memo's derivations reported fresh (`held`, from [`trusted_memo`]), their
/// warnings replayed and pinned outputs verified, without emitting or resolving a single
/// derivation. `after` runs before the final message.
pub(super) fn report_memo(
    project: &Project,
    memo: &Memo,
    held: HeldLines<'_>,
    pinned: Option<&Lockfile>,
    events: &dyn Events,
    after: impl FnOnce() -> Result<(), OpsError>,
) -> Result<(), OpsError> {
    held.write();
    // Most no-ops have no warnings to replay, and need not map paths.
    if memo.derivations.iter().any(|d| d.warnings > 0) {
        events.sources(&project.eval);
        super::warnings::replay_memo(&project.store, memo, events);
    }
    let pin_check = match pinned {
        Some(lock) => {
            crate::lock::verify_outputs(project, lock, &memo.targets, &|w| super::warn(events, w))
        }
        None => Ok(()),
    };
    finish_fresh(&project.store, memo, events, pin_check, after)
}

/// The end of a no-op: `after` (unless the pinned outputs' check failed), then the final
/// message, which lists the memo's targets.
fn finish_fresh(
    store: &Store,
    memo: &Memo,
    events: &dyn Events,
    pin_check: Result<(), OpsError>,
    after: impl FnOnce() -> Result<(), OpsError>,
) -> Result<(), OpsError> {
    let after_result = if pin_check.is_ok() { after() } else { Ok(()) };
    events.finished(&Summary {
        success: pin_check.is_ok() && after_result.is_ok(),
        fresh: memo.derivations.len(),
        targets: memo
            .targets
            .iter()
            .map(|(n, p)| (n.clone(), store.path_of(p)))
            .collect(),
        error: after_result.as_ref().err().map(OpsError::summary),
        ..Summary::default()
    });
    pin_check.and(after_result)
}

/// Realise from the journal in `file` if it holds and its memo is trusted: the same
/// events and out-links as a no-op through the memo. `None` when the full path must run
/// (nothing has been reported then).
pub(super) fn realise_from_journal(
    store: &Store,
    file: &Path,
    request: &RealiseRequest<'_>,
    events: &dyn Events,
) -> Result<Option<Memo>, OpsError> {
    let Some((key, workspace_root)) = crate::journal::recall(file) else {
        return Ok(None);
    };
    if let super::OutLinks::At(base) = request.out_links {
        if cmod_store::roots::check_out_link_dir(base).is_err() {
            return Ok(None);
        }
    }
    // As in a full realisation: the GC lock (shared) until the out-links are roots.
    let _gc = store.gc_guard()?;
    let Some((memo, held)) = trusted_memo(store, &key, events) else {
        return Ok(None);
    };
    if memo.derivations.iter().any(|d| d.warnings > 0) {
        return Ok(None);
    }
    events.evaluated(&workspace_root, Duration::ZERO);
    events.evaluation_skipped();
    held.write();
    finish_fresh(store, &memo, events, Ok(()), || {
        link_outputs(store, request.out_links, &memo.targets, &memo.keep)
    })?;
    Ok(Some(memo))
}

/// Realise `names` (reusing what the slot's latest memo realised), link the outputs and
/// write the memo under `memos.0`, as the slot's (`memos.1`) latest, once the compile
/// database is written.
pub(super) fn realise_and_memo(
    project: &Project,
    request: &RealiseRequest<'_>,
    names: &[(String, String)],
    (key, slot): (&ContentHash, &ContentHash),
    (pinned, refresh, ahead): (Option<&Lockfile>, Refresh<'_>, Option<&Speculation>),
    events: &dyn Events,
) -> Result<Memo, OpsError> {
    // While the derivations are emitted: the sandbox is probed (a few milliseconds), and
    // what the slot's latest memo realised is checked for validity (a few `stat`s per
    // path, thousands of paths on a large graph).
    let (enforced, targets, (previous, warnings)) = std::thread::scope(|s| {
        let probe = s.spawn(|| probe_sandbox(&request.settings, events));
        let previous = s.spawn(|| {
            let memo = project.store.latest_memo(slot);
            let warnings = Warnings::from_memo(memo.as_ref());
            let previous = memo.map(|memo| {
                let outputs = memo.derivations.into_iter().map(|e| (e.drv, e.outputs));
                realise::Previous::checked(&project.store, outputs.collect())
            });
            (previous, warnings)
        });
        let targets = project.targets(names);
        (join(probe), targets, join(previous))
    });
    let targets = targets?;
    let build = BuildRequest {
        check: request.check,
        pinned,
        previous: previous.as_ref(),
        enforced: Some(enforced?),
        first_step: Some(refresh.first_step()),
        warnings: Some(&warnings),
        speculation: ahead,
    };
    let shown = Project::display_names(names);
    let mut written = None;
    super::build_targets(
        project,
        &targets,
        &request.settings,
        &build,
        events,
        |outputs, r| {
            refresh.finish()?;
            let derivations = &project.derived()?.derivations;
            let entry = |(d, o): (&cmod_schema::StorePath, &_)| MemoEntry {
                drv: d.clone(),
                name: derivations[d].name.clone(),
                outputs: std::collections::BTreeMap::clone(o),
                warnings: warnings.of(d),
            };
            let keep = r.closure(derivations).into_iter();
            let memo = Memo::new(
                shown.iter().cloned().zip(outputs.iter().cloned()).collect(),
                r.outputs.iter().map(entry).collect(),
                KeepList::new(&keep.chain(project.source_trees()).collect())?,
            );
            link_outputs(&project.store, request.out_links, &memo.targets, &memo.keep)?;
            project.store.write_memo(key, &memo)?;
            project.store.set_latest_memo(slot, key)?;
            written = Some(memo);
            Ok(())
        },
    )?;
    written.ok_or_else(|| OpsError::Internal("the realisation left no memo".into()))
}

/// The result of a scoped thread (its panic, if any, continues on this thread).
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
