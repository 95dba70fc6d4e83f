//! The realisation memo as the commands use it: its key, whether it can be trusted
//! (reporting its steps fresh), the end of a no-op, and the out-links to its targets.
//! Shared by `realise`/`run` and the journal, which both answer from a memo.

use cmod_sandbox::Mode;
use cmod_schema::{ContentHash, StorePath};
use cmod_store::memo::Memo;
use cmod_store::realise;
use cmod_store::realise::Reporter;
use cmod_store::roots::KeepList;
use cmod_store::Store;
use serde_json::json;

use crate::cli::{RealiseArgs, RunOpts};
use crate::diagnostic::CliError;
use crate::progress::{Progress, Summary};
use crate::project::Project;

/// The key of a realisation memo (see `cmod_ops::build::memo_key`).
pub(crate) fn memo_key(
    project: &Project,
    mode: Mode,
    run: &RunOpts,
    names: &[String],
) -> ContentHash {
    cmod_ops::build::memo_key(&project.eval, mode, &run.accept_outputs_from, names)
}

/// The memo under `key` if it can be trusted (every output it names is still valid),
/// with its derivations' `fresh` lines already prepared: they are collected while a
/// second thread checks the outputs, and written only if the memo holds.
pub(crate) fn trusted_memo(
    store: &Store,
    key: &ContentHash,
    progress: &Progress,
) -> Option<(Memo, crate::progress::Collected)> {
    let memo = store.memo_unchecked(key)?;
    let (valid, fresh_lines) = std::thread::scope(|s| {
        // Beside the check, what killed runs left in the store's `tmp/` (a listing,
        // usually of an empty directory) is cleaned, as a full realisation does.
        let check = || {
            let _ = store.clean_temporaries();
            store.memo_outputs_valid(key, &memo)
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

/// The end of a no-op: `after` (unless the pinned outputs' check failed), then the final
/// message, which lists the memo's targets.
pub(crate) fn finish_fresh(
    store: &Store,
    memo: &Memo,
    progress: &Progress,
    pin_check: Result<(), CliError>,
    after: impl FnOnce() -> Result<(), CliError>,
) -> Result<(), CliError> {
    let after_result = if pin_check.is_ok() { after() } else { Ok(()) };
    progress.finish(&Summary {
        success: pin_check.is_ok() && after_result.is_ok(),
        fresh: memo.derivations.len(),
        targets: serde_json::Value::Object(
            memo.targets
                .iter()
                .map(|(n, p)| (n.clone(), json!(store.path_of(p))))
                .collect(),
        ),
        out_paths: memo.targets.iter().map(|(_, p)| store.path_of(p)).collect(),
        error: after_result.as_ref().err().map(CliError::summary),
        ..Summary::default()
    });
    pin_check.and(after_result)
}

/// The out-links `args` ask for.
pub(crate) fn out_links(args: &RealiseArgs) -> cmod_ops::realise::OutLinks<'_> {
    if args.no_link {
        cmod_ops::realise::OutLinks::None
    } else {
        cmod_ops::realise::OutLinks::At(&args.out_link)
    }
}

/// Point the out-links `args` ask for at the targets' outputs (each a GC root keeping
/// `keep` alive).
pub(crate) fn link_outputs(
    store: &Store,
    args: &RealiseArgs,
    targets: &[(String, StorePath)],
    keep: &KeepList,
) -> Result<(), CliError> {
    Ok(cmod_ops::realise::link_outputs(
        store,
        out_links(args),
        targets,
        keep,
    )?)
}
