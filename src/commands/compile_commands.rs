//! `cmod compile-commands`: where the database goes and what is printed. Evaluating the
//! workspace for it and writing it are `cmod_ops::compdb`'s; what goes into it is
//! `cmod_evaluator::compdb`'s.

use std::path::{Path, PathBuf};

use cmod_evaluator::compdb;
use cmod_ops::compdb::{create_parent, evaluate_workspace, write_atomically};
use cmod_ops::project::EvalHow;

use crate::cli::{Cli, CompileCommandsArgs};
use crate::diagnostic::{display_path, CliError};
use crate::project::{package_dir, print_warnings};

/// `cmod compile-commands [-o FILE]`.
pub fn write(cli: &Cli, args: &CompileCommandsArgs) -> Result<(), CliError> {
    let store = crate::project::open_store_to_read(cli)?;
    let how = EvalHow {
        release: args.build.release,
        offline: args.build.offline(),
        update: cmod_evaluator::deps::Update::Nothing,
        precise: None,
    };
    let select = args.build.package.clone();
    let dir = package_dir(cli)?;
    let eval = evaluate_workspace(&store, &dir, select, &how, &cli.git_rewrites)?;
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

fn absolute(path: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(path)
        .map_err(|e| CliError::usage(format!("cannot resolve `{}`: {e}", path.display()), None))
}
