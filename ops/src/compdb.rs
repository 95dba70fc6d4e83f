//! The compile database (`compile_commands.json`) for clangd and other tools: the
//! evaluation it comes from (the whole workspace with its tests), writing it atomically
//! (a temporary file renamed over it, so an editor never reads half of one), and the copy
//! a realisation keeps up to date on a thread of its own. What goes into it is
//! `cmod_evaluator::compdb`'s.

use std::path::{Path, PathBuf};

use cmod_evaluator::compdb;
use cmod_evaluator::git::Rewrites;
use cmod_evaluator::{ErrorKind, EvalError, Evaluation};
use cmod_store::Store;

use crate::display::display_path;
use crate::events::Events;
use crate::project::{evaluate_in, workspace_root, EvalHow, Scope};
use crate::{OpsError, Project};

/// Evaluate the workspace of the package in `dir` (every member, or the `select`ed
/// ones) with the members' `[[test]]` units, which only a database includes among the
/// commands that do not run tests.
pub fn evaluate_workspace(
    store: &Store,
    dir: &Path,
    select: Vec<String>,
    how: &EvalHow,
    git_rewrites: &Rewrites,
) -> Result<Evaluation, OpsError> {
    let root = workspace_root(dir)?;
    let scope = Scope {
        dir: &root,
        select,
        with_tests: true,
        sharing: None,
        git_rewrites,
    };
    evaluate_in(store, &scope, how.clone())
}

/// The compile database a realisation keeps up to date, being refreshed on a thread of
/// its own beside the build (it may need an evaluation of the whole workspace, which the
/// build does not wait for). Its thread runs to the end even when the build fails, so the
/// editor has the database then too.
///
/// Writing a changed database (thousands of entries on a large graph) waits for the
/// `first_step` gate: until the build's first step has started, the cores belong to
/// what leads to it.
pub struct Refresh<'scope> {
    thread: Option<std::thread::ScopedJoinHandle<'scope, Result<(), OpsError>>>,
    first_step: &'scope Gate,
}

impl<'scope> Refresh<'scope> {
    /// The gate the database's writing waits for.
    pub fn first_step(&self) -> &'scope Gate {
        self.first_step
    }

    /// Wait for the database to be written; its error, if any.
    pub fn finish(mut self) -> Result<(), OpsError> {
        self.first_step.open();
        match self.thread.take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => Ok(()),
        }
    }
}

/// A realisation that ends without a first step (an error before it, a refresh never
/// finished) still lets the database be written: the scope the thread runs in waits for
/// it.
impl Drop for Refresh<'_> {
    fn drop(&mut self) {
        self.first_step.open();
    }
}

/// Start bringing the compile database of `project` (evaluated `how`) up to date, unless
/// the workspace manifest turns it off (a setting it refuses is an error now, before
/// anything is built). Warnings go to `events`.
pub fn start_refresh<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    project: &'env Project,
    how: &'env EvalHow,
    first_step: &'env Gate,
    events: &'env dyn Events,
) -> Result<Refresh<'scope>, OpsError> {
    let packages = &project.eval.packages;
    let ignored = compdb::ignored_settings(packages);
    if !ignored.is_empty() {
        events.evaluation_warnings(&ignored.iter().collect::<Vec<_>>());
    }
    let Some(output) = compdb::configured_output(packages) else {
        return Ok(Refresh {
            thread: None,
            first_step,
        });
    };
    let refresh = move || refresh_for_realise(project, how, output, first_step, events);
    Ok(Refresh {
        thread: Some(scope.spawn(refresh)),
        first_step,
    })
}

/// A one-way signal: closed until [`Gate::open`], then open for good.
#[derive(Default)]
pub struct Gate {
    opened: std::sync::Mutex<bool>,
    changed: std::sync::Condvar,
}

impl Gate {
    /// Open the gate, releasing every waiter (now and later).
    pub fn open(&self) {
        if let Ok(mut opened) = self.opened.lock() {
            *opened = true;
            self.changed.notify_all();
        }
    }

    /// Block until the gate is open.
    fn wait(&self) {
        let Ok(mut opened) = self.opened.lock() else {
            return;
        };
        while !*opened {
            match self.changed.wait(opened) {
                Ok(guard) => opened = guard,
                Err(_) => return,
            }
        }
    }
}

/// Rewrite the database at `output`, only when the evaluation it comes from changed (or
/// the file did).
fn refresh_for_realise(
    project: &Project,
    how: &EvalHow,
    output: PathBuf,
    first_step: &Gate,
    events: &dyn Events,
) -> Result<(), OpsError> {
    let workspace = workspace_evaluation(project, how, events);
    let eval = workspace.as_ref().unwrap_or(&project.eval);
    let cache = project.store.cache_dir();
    let fingerprint = eval.fingerprint();
    if compdb::is_current(&cache, &output, &fingerprint) {
        return Ok(());
    }
    first_step.wait();
    // From here on it runs beside the build's steps, which come first.
    cmod_store::realise::background::lower_this_threads_priority();
    let bytes = compdb::to_json(&compdb::of_evaluation(eval)?)?;
    create_parent(&output)?;
    write_atomically(&output, &bytes)?;
    compdb::remember(&cache, &output, &fingerprint, &bytes);
    Ok(())
}

/// The evaluation the database of a realisation comes from, when the realisation's own
/// is not it: the whole workspace with its tests, whatever is built. When that does not
/// evaluate (a broken test), `None` with a warning, and the database is written from the
/// realisation's own units: a broken test never fails a realisation.
fn workspace_evaluation(
    project: &Project,
    how: &EvalHow,
    events: &dyn Events,
) -> Option<Evaluation> {
    if compdb::covers_workspace_with_tests(&project.eval) {
        return None;
    }
    let root = &project.eval.packages.workspace_root;
    match evaluate_workspace(&project.store, root, Vec::new(), how, &project.git_rewrites) {
        Ok(eval) => {
            let new_warnings: Vec<&EvalError> = eval
                .warnings
                .iter()
                .filter(|w| !project.eval.warnings.contains(w))
                .collect();
            if !new_warnings.is_empty() {
                events.evaluation_warnings(&new_warnings);
            }
            Some(eval)
        }
        Err(e) => {
            let message = format!(
                "{} lists only the units of this build: the whole workspace with its tests does not evaluate: {}",
                compdb::FILE_NAME,
                e.summary()
            );
            let warning = EvalError::new(ErrorKind::ManifestInvalid, message)
                .help("`cmod compile-commands` reports the error in full");
            events.evaluation_warnings(&[&warning]);
            None
        }
    }
}

/// Create the directories the manifest's `compile-commands` path names (a fresh checkout
/// may lack a `build/` directory the project writes it to).
pub fn create_parent(output: &Path) -> Result<(), OpsError> {
    match output.parent() {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|e| {
            OpsError::usage(
                format!(
                    "cannot create `{}` for the compile database: {e}",
                    display_path(dir)
                ),
                Some("set [build] compile-commands of the workspace manifest to a writable place, or to false".into()),
            )
        }),
        None => Ok(()),
    }
}

/// Write `bytes` to `path` through a temporary file in the same directory, renamed over
/// it. The directory must exist: a missing one is most likely a mistyped path.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OpsError> {
    let shown = display_path(path);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(OpsError::usage(
            format!("`{shown}` is not a file name"),
            None,
        ));
    };
    if !dir.is_dir() {
        return Err(OpsError::usage(
            format!(
                "cannot write the compile database `{shown}`: the directory `{}` does not exist",
                display_path(dir)
            ),
            Some("create the directory first, or write elsewhere with -o FILE".into()),
        ));
    }
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            OpsError::usage(
                format!("cannot write the compile database `{shown}`: {e}"),
                None,
            )
        })
}
