//! `cmod compile-commands`, and the compile database `cmod realise` keeps up to date.
//!
//! The database comes from `cmod_evaluator::compdb`; here it is decided what to evaluate
//! (the whole workspace with its tests) and where the file goes, and it is written
//! atomically (a temporary file renamed over it), so an editor never reads half of one.

use std::path::{Path, PathBuf};

use cmod_evaluator::compdb;
use cmod_evaluator::git::Rewrites;
use cmod_evaluator::Evaluation;
use cmod_store::Store;

use crate::cli::{BuildOpts, Cli, CompileCommandsArgs};
use crate::diagnostic::{display_path, render_diagnostic, CliError};
use crate::project::{evaluate_in, package_dir, print_warnings, workspace_root, Project, Scope};

/// Evaluate the workspace of the current package (every member, or the `-p` ones) with
/// the members' `[[test]]` units, which only a database includes among the commands that
/// do not run tests.
fn evaluate_workspace(
    store: &Store,
    build: &BuildOpts,
    dir: &Path,
    git_rewrites: &Rewrites,
) -> Result<Evaluation, CliError> {
    let root = workspace_root(dir)?;
    let scope = Scope {
        dir: &root,
        select: build.package.clone(),
        with_tests: true,
        sharing: None,
        git_rewrites,
    };
    evaluate_in(store, &scope, build)
}

/// `cmod compile-commands [-o FILE]`.
pub fn write(cli: &Cli, args: &CompileCommandsArgs) -> Result<(), CliError> {
    let store = crate::project::open_store_to_read(cli)?;
    let eval = evaluate_workspace(&store, &args.build, &package_dir(cli)?, &cli.git_rewrites)?;
    print_warnings(&eval.warnings);
    print_warnings(&compdb::ignored_settings(&eval.packages));
    let commands = compdb::of_evaluation(&eval)?;
    let bytes = compdb::to_json(&commands)?;
    let output = match &args.output {
        Some(path) if path.as_os_str() == "-" => {
            crate::output::stdout_bytes(&bytes);
            return Ok(());
        }
        Some(path) => path.clone(),
        None => {
            let configured = compdb::configured_output(&eval.packages);
            let output =
                configured.unwrap_or_else(|| eval.packages.workspace_root.join(compdb::FILE_NAME));
            create_parent(&output)?;
            output
        }
    };
    let output = absolute(&output)?;
    write_atomically(&output, &bytes)?;
    compdb::remember(&store.cache_dir(), &output, &eval.fingerprint(), &bytes);
    status!(
        "{:>12} {} ({} units)",
        "Wrote",
        display_path(&output),
        commands.len()
    );
    Ok(())
}

/// The compile database `cmod realise` keeps up to date, being refreshed on a thread of
/// its own beside the build (it may need an evaluation of the whole workspace, which the
/// build does not wait for). Its thread runs to the end even when the build fails, so the
/// editor has the database then too.
///
/// Writing a changed database (thousands of entries on a large graph) waits for the
/// `first_step` gate: until the build's first step has started, the cores belong to
/// what leads to it.
pub struct Refresh<'scope> {
    thread: Option<std::thread::ScopedJoinHandle<'scope, Result<(), CliError>>>,
    first_step: &'scope Gate,
}

impl<'scope> Refresh<'scope> {
    /// The gate the database's writing waits for.
    pub fn first_step(&self) -> &'scope Gate {
        self.first_step
    }

    /// Wait for the database to be written; its error, if any.
    pub fn finish(mut self) -> Result<(), CliError> {
        self.first_step.open();
        match self.thread.take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => Ok(()),
        }
    }
}

/// Start bringing the compile database up to date, unless the workspace manifest turns it
/// off (a setting it refuses is an error now, before anything is built).
pub fn start_refresh<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    project: &'env Project,
    build: &'env BuildOpts,
    first_step: &'env Gate,
) -> Result<Refresh<'scope>, CliError> {
    let packages = &project.eval.packages;
    print_warnings(&compdb::ignored_settings(packages));
    let Some(output) = compdb::configured_output(packages) else {
        return Ok(Refresh {
            thread: None,
            first_step,
        });
    };
    Ok(Refresh {
        thread: Some(scope.spawn(move || refresh_for_realise(project, build, output, first_step))),
        first_step,
    })
}

/// A realisation that ends without a first step (an error before it, a refresh never
/// finished) still lets the database be written: the scope the thread runs in waits for
/// it.
impl Drop for Refresh<'_> {
    fn drop(&mut self) {
        self.first_step.open();
    }
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
    build: &BuildOpts,
    output: PathBuf,
    first_step: &Gate,
) -> Result<(), CliError> {
    let workspace = workspace_evaluation(project, build);
    let eval = workspace.as_ref().unwrap_or(&project.eval);
    let cache = project.store.cache_dir();
    let fingerprint = eval.fingerprint();
    if compdb::is_current(&cache, &output, &fingerprint) {
        return Ok(());
    }
    first_step.wait();
    let bytes = compdb::to_json(&compdb::of_evaluation(eval)?)?;
    create_parent(&output)?;
    write_atomically(&output, &bytes)?;
    compdb::remember(&cache, &output, &fingerprint, &bytes);
    Ok(())
}

/// The evaluation the database of a `realise` comes from, when the realisation's own is
/// not it: the whole workspace with its tests, whatever `realise` builds. When that does
/// not evaluate (a broken test), `None` with a warning, and the database is written from
/// the realisation's own units: a broken test never fails `realise`.
fn workspace_evaluation(project: &Project, build: &BuildOpts) -> Option<Evaluation> {
    if compdb::covers_workspace_with_tests(&project.eval) {
        return None;
    }
    let whole = BuildOpts {
        package: Vec::new(),
        ..build.clone()
    };
    match evaluate_workspace(
        &project.store,
        &whole,
        &project.eval.packages.workspace_root,
        &project.git_rewrites,
    ) {
        Ok(eval) => {
            let new_warnings = eval
                .warnings
                .iter()
                .filter(|w| !project.eval.warnings.contains(w));
            print_warnings(new_warnings);
            Some(eval)
        }
        Err(e) => {
            let message = format!(
                "{} lists only the units of this build: the whole workspace with its tests does not evaluate: {}",
                compdb::FILE_NAME,
                e.summary()
            );
            let help = "`cmod compile-commands` reports the error in full";
            err!(
                "{}",
                render_diagnostic("warning", &message, None, Some(help))
            );
            None
        }
    }
}

fn absolute(path: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(path)
        .map_err(|e| CliError::usage(format!("cannot resolve `{}`: {e}", path.display()), None))
}

/// Create the directories the manifest's `compile-commands` path names (a fresh checkout
/// may lack a `build/` directory the project writes it to).
fn create_parent(output: &Path) -> Result<(), CliError> {
    match output.parent() {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|e| {
            CliError::usage(
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
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let shown = display_path(path);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(CliError::usage(
            format!("`{shown}` is not a file name"),
            None,
        ));
    };
    if !dir.is_dir() {
        return Err(CliError::usage(
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
            CliError::usage(
                format!("cannot write the compile database `{shown}`: {e}"),
                None,
            )
        })
}
