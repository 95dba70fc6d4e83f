//! The command line's side of loading a project: the global options and a command's
//! build options made into [`cmod_ops`]'s typed ones, and evaluation warnings printed.
//! What loading does is in `cmod_ops::project`.

use std::path::PathBuf;
use std::sync::Arc;

use cmod_evaluator::deps::Update;
use cmod_ops::project::{self as ops, Access, LoadOptions};
use cmod_store::substitute::Sharing;
use cmod_store::Store;

pub use cmod_ops::Project;

use crate::cli::{BuildOpts, Cli};
use crate::diagnostic::{render_diagnostic, CliError};

/// The directory of the package: `--manifest-path`'s, or the nearest one upwards that
/// has a `cmod.toml`.
pub fn package_dir(cli: &Cli) -> Result<PathBuf, CliError> {
    Ok(ops::package_dir(cli.manifest_path.as_deref())?)
}

/// [`package_dir`], or `None` outside any package (and without --manifest-path).
pub fn find_package_dir(cli: &Cli) -> Result<Option<PathBuf>, CliError> {
    Ok(ops::find_package_dir(cli.manifest_path.as_deref())?)
}

/// Open the store for a command that writes to it: one that cannot be written here is
/// an error (exit 2) naming the directory and the remedy.
pub fn open_store(cli: &Cli) -> Result<Store, CliError> {
    Ok(ops::open_store(cli.store.as_deref(), Access::Write)?)
}

/// Open the store for a command that only reads it (read-only stores are fine).
pub fn open_store_to_read(cli: &Cli) -> Result<Store, CliError> {
    Ok(ops::open_store(cli.store.as_deref(), Access::Read)?)
}

/// Evaluate the package, printing warnings to stderr.
pub fn load(cli: &Cli, build: &BuildOpts) -> Result<Project, CliError> {
    load_with(cli, build, Update::Nothing, None)
}

/// [`load`] with `sharing` instead of the command line's (`copy` substitutes from the
/// cache it names).
pub fn load_sharing(
    cli: &Cli,
    build: &BuildOpts,
    sharing: Arc<Sharing>,
) -> Result<Project, CliError> {
    let opts = LoadOptions {
        sharing: Some(sharing),
        ..load_options(cli, build)
    };
    load_project(cli, Access::Write, opts)
}

/// [`load`] for a command that only reads the store ([`open_store_to_read`]).
pub fn load_to_read(cli: &Cli, build: &BuildOpts) -> Result<Project, CliError> {
    load_project(cli, Access::Read, load_options(cli, build))
}

/// Evaluate the package with its members' `[[test]]` binaries (for `cmod test`).
pub fn load_with_tests(cli: &Cli, build: &BuildOpts) -> Result<Project, CliError> {
    let opts = LoadOptions {
        with_tests: true,
        ..load_options(cli, build)
    };
    load_project(cli, Access::Write, opts)
}

/// Evaluate, releasing the locked versions of the packages `update` names (for
/// `cmod update`), optionally pinning one to a `precise` version or revision.
pub fn load_with(
    cli: &Cli,
    build: &BuildOpts,
    update: Update,
    precise: Option<(String, String)>,
) -> Result<Project, CliError> {
    let opts = LoadOptions {
        update,
        precise,
        ..load_options(cli, build)
    };
    load_project(cli, Access::Write, opts)
}

/// The typed options of the command line's evaluation: nothing updated, no tests, the
/// command line's sharing.
fn load_options(cli: &Cli, build: &BuildOpts) -> LoadOptions {
    LoadOptions {
        release: build.release,
        offline: build.offline(),
        select: build.package.clone(),
        with_tests: false,
        update: Update::Nothing,
        precise: None,
        sharing: cli.sharing.clone(),
        git_rewrites: cli.git_rewrites.clone(),
    }
}

fn load_project(cli: &Cli, access: Access, opts: LoadOptions) -> Result<Project, CliError> {
    let store = ops::open_store(cli.store.as_deref(), access)?;
    let dir = package_dir(cli)?;
    let project = Project::load(store, &dir, opts)?;
    print_warnings(&project.eval.warnings);
    crate::editor_schema::refresh(&project.eval.packages);
    Ok(project)
}

/// Print evaluation warnings to stderr.
pub fn print_warnings<'a>(warnings: impl IntoIterator<Item = &'a cmod_evaluator::EvalError>) {
    for w in warnings {
        err!(
            "{}",
            render_diagnostic(
                "warning",
                &w.message,
                w.location.as_ref(),
                w.help.as_deref()
            )
        );
    }
}
