//! The `cmod` command line: parses arguments, dispatches to a command, and turns errors
//! into rendered diagnostics and exit codes. All real work is in the library crates.

mod cli;
mod commands;
mod diagnostic;
mod progress;
mod project;

use clap::Parser;

use crate::cli::{Cli, Command, StoreCommand};
use crate::diagnostic::CliError;

fn dispatch(cli: &Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::New { path, name } => commands::new::create(path, name.as_deref()),
        Command::Init { name } => commands::new::create(std::path::Path::new("."), name.as_deref()),
        Command::Realise(args) => commands::realise::realise(cli, args),
        Command::Run(args) => commands::realise::run(cli, args),
        Command::Lock(args) => commands::lock::lock(cli, args),
        Command::Eval(args) => commands::inspect::eval(cli, args),
        Command::ShowDerivation { what, build } => {
            commands::inspect::show_derivation(cli, what, build)
        }
        Command::Graph { format, build } => commands::inspect::graph(cli, *format, build),
        Command::PathInfo(args) => commands::inspect::path_info(cli, args),
        Command::Log { what, build } => commands::inspect::log(cli, what, build),
        Command::Gc {
            dry_run,
            max_freed,
            print_roots,
            print_live,
        } => commands::maintenance::gc(cli, *dry_run, *max_freed, *print_roots, *print_live),
        Command::Store {
            command: StoreCommand::Verify { no_contents },
        } => commands::maintenance::verify(cli, *no_contents),
        Command::SandboxExec {
            sandbox,
            build,
            command,
        } => commands::debug::sandbox_exec(cli, sandbox, command, build),
        Command::Toolchain { json, build } => commands::inspect::toolchain(cli, *json, build),
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = dispatch(&cli) {
        eprint!("{}", e.render());
        std::process::exit(e.exit_class().code());
    }
}
