//! The journaled no-op: a `realise` whose inputs are all as the input journal recorded
//! them (every manifest, source, header, directory listing, toolchain file and variable
//! the last evaluation read, and the lockfile) reports its memo without evaluating. See
//! `cmod_evaluator::journal` for what is recorded, and docs/ARCHITECTURE.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cmod_evaluator::journal::{self, Recorded};
use cmod_evaluator::lockfile::lock_path;
use cmod_sandbox::Mode;
use cmod_schema::ContentHash;
use cmod_store::memo::Memo;
use cmod_store::Store;

use crate::cli::{Cli, RealiseArgs};
use crate::commands::memo::{finish_fresh, link_outputs, memo_key, trusted_memo};
use crate::diagnostic::CliError;
use crate::progress::Progress;
use crate::project::Project;

/// Where the journal of this command's evaluation lives: one per command (`purpose`:
/// `realise`, or `run` and its binary), package directory, store, options that select
/// and evaluate targets, and sandbox mode. `None` when the command is not a plain
/// realisation (a dry run, `--check`, `--locked`, `--timings`), or outside a package
/// (the full path reports that).
pub fn journal_file(
    cli: &Cli,
    args: &RealiseArgs,
    store: &Store,
    purpose: &str,
) -> Option<PathBuf> {
    if args.dry_run || args.check || args.build.locked() || args.run.timings {
        return None;
    }
    // Absolute, so each package keeps its own journal: `--manifest-path` may be relative,
    // and one store serves every package. (A relative one is safe anyway: the evaluation
    // resolved it, and the journal records what it resolved to.)
    let dir = crate::project::package_dir(cli).ok()?.canonicalize().ok()?;
    let mut accepted = args.run.accept_outputs_from.clone();
    accepted.sort();
    let parts = [
        "cmod-realise-journal-v1".to_string(),
        purpose.to_string(),
        dir.display().to_string(),
        store.store_dir().display().to_string(),
        format!("{:?}", cli.manifest_path),
        format!("{:?}", args.targets),
        format!("{:?}", args.build),
        args.run.sandbox.clone(),
        accepted.join(","),
    ];
    Some(journal::file_for(&store.cache_dir(), &parts))
}

/// Realise from the journal in `file` if it holds and its memo is trusted: the same
/// messages and out-links as a no-op through the memo. `None` when the full path must run
/// (nothing has been printed then).
pub fn realise_from(
    store: &Store,
    file: &Path,
    args: &RealiseArgs,
    progress: &Progress,
) -> Result<Option<Memo>, CliError> {
    let Some((key, workspace_root)) = journal::recall(file).as_deref().and_then(decode) else {
        return Ok(None);
    };
    if !args.no_link && cmod_store::roots::check_out_link_dir(&args.out_link).is_err() {
        return Ok(None);
    }
    // As in a full realisation: the GC lock (shared) until the out-links are roots.
    let _gc = store.gc_guard()?;
    let Some((memo, fresh_lines)) = trusted_memo(store, &key, progress) else {
        return Ok(None);
    };
    if memo.derivations.iter().any(|d| d.warnings > 0) {
        return Ok(None);
    }
    progress.evaluated(&workspace_root, Duration::ZERO);
    progress.evaluation_skipped();
    progress.write_collected(&fresh_lines);
    finish_fresh(store, &memo, progress, Ok(()), || {
        link_outputs(store, args, &memo.targets, &memo.keep)
    })?;
    Ok(Some(memo))
}

/// After a realisation that evaluated: journal what the evaluation read (`recorded`),
/// with the lockfile, compile database and editor-schema copy as they are now, unless the
/// no-op could not be answered from the memo alone (evaluation warnings to show again,
/// compiler warnings to replay) or the reads cannot be journaled.
/// A journal that cannot be written is removed, so it is never taken for this one.
pub fn save(
    file: &Path,
    mut recorded: Recorded,
    project: &Project,
    names: &[(String, String)],
    args: &RealiseArgs,
    memo: &Memo,
) {
    let packages = &project.eval.packages;
    let answerable = project.eval.warnings.is_empty()
        && cmod_evaluator::compdb::ignored_settings(packages).is_empty()
        && memo.derivations.iter().all(|d| d.warnings == 0);
    let mode: Option<Mode> = args.run.sandbox.parse().ok();
    let (true, Some(mode)) = (answerable, mode) else {
        let _ = std::fs::remove_file(file);
        return;
    };
    let key = memo_key(project, mode, &args.run, &Project::display_names(names));
    recorded.add(journal::content_of(&lock_path(&project.eval)));
    // The compile database this realisation refreshed (from the evaluation alone, so
    // while the journal holds it stays as written, unless someone else changes it).
    if let Some(compdb) = cmod_evaluator::compdb::configured_output(packages) {
        recorded.add(journal::content_of(&compdb));
    }
    recorded.add(journal::content_of(
        &packages
            .workspace_root
            .join(cmod_schema::MANIFEST_SCHEMA_FILE),
    ));
    if let Err(why) = recorded.save(file, &encode(&key, &packages.workspace_root)) {
        if crate::output::verbose() {
            status!("{:>12} the evaluation was not journaled: {why}", "Note");
        }
    }
}

/// The payload: the memo's key, then the workspace root.
fn encode(key: &ContentHash, workspace_root: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = key.0.to_vec();
    out.extend_from_slice(workspace_root.as_os_str().as_bytes());
    out
}

fn decode(payload: &[u8]) -> Option<(ContentHash, PathBuf)> {
    use std::os::unix::ffi::OsStrExt;
    let (key, root) = payload.split_at_checked(32)?;
    let root = PathBuf::from(std::ffi::OsStr::from_bytes(root));
    Some((ContentHash(key.try_into().ok()?), root))
}
