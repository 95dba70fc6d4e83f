//! The journaled no-op: a `realise` whose inputs are all as the input journal recorded
//! them (every manifest, source, header, directory listing, toolchain file and variable
//! the last evaluation read, and the lockfile) reports its memo without evaluating. See
//! `cmod_evaluator::journal` for what is recorded, `cmod_ops::journal` for the journal's
//! key and contents, and docs/ARCHITECTURE.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cmod_evaluator::journal::Recorded;
use cmod_ops::journal::{self, JournalKey};
use cmod_sandbox::Mode;
use cmod_store::memo::Memo;
use cmod_store::Store;

use crate::cli::{Cli, RealiseArgs};
use crate::commands::memo::{finish_fresh, link_outputs, memo_key, trusted_memo};
use crate::diagnostic::CliError;
use crate::progress::Progress;
use crate::project::Project;

/// Where the journal of this command's evaluation lives (see [`JournalKey`]; `purpose`:
/// `realise`, or `run` and its binary). `None` when the command is not a plain
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
    let dir = crate::project::package_dir(cli).ok()?;
    let key = JournalKey {
        purpose,
        package_dir: &dir,
        manifest_path: cli.manifest_path.as_deref(),
        targets: &args.targets,
        release: args.build.release,
        offline: args.build.offline(),
        select: &args.build.package,
        sandbox: &args.run.sandbox,
        accepted: &args.run.accept_outputs_from,
    };
    journal::journal_file(store, &key)
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
    let Some((key, workspace_root)) = journal::recall(file) else {
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

/// After a realisation that evaluated: journal what the evaluation read (`recorded`)
/// under the memo it wrote (see `cmod_ops::journal::save`); with `-v`, say why not when
/// the reads cannot be journaled.
pub fn save(
    file: &Path,
    recorded: Recorded,
    project: &Project,
    names: &[(String, String)],
    args: &RealiseArgs,
    memo: &Memo,
) {
    let Ok(mode) = args.run.sandbox.parse::<Mode>() else {
        let _ = std::fs::remove_file(file);
        return;
    };
    let key = memo_key(project, mode, &args.run, &Project::display_names(names));
    if let Err(why) = journal::save(file, recorded, project, &key, memo) {
        if crate::output::verbose() {
            status!("{:>12} the evaluation was not journaled: {why}", "Note");
        }
    }
}
