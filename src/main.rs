//! The `cmod` command line: parses arguments, dispatches to a command, and turns errors
//! into rendered diagnostics and exit codes. All real work is in the library crates.

#[macro_use]
mod output;

mod cli;
mod colour;
mod commands;
mod diagnostic;
mod editor_schema;
mod progress;
mod project;
mod source_paths;
mod timings;

use clap::Parser;

use crate::cli::{Cli, Command, StoreCommand};
use crate::diagnostic::CliError;

fn dispatch(cli: &Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::New { path, name } => commands::new::create(path, name.as_deref()),
        Command::Init { name } => commands::new::create(std::path::Path::new("."), name.as_deref()),
        Command::Realise(args) => commands::realise::realise(cli, args),
        Command::Run(args) => commands::realise::run(cli, args),
        Command::Test(args) => commands::test::test(cli, args),
        Command::Lock(args) => commands::realise::lock(cli, args),
        Command::Eval(args) => commands::inspect::eval(cli, args),
        Command::ShowDerivation { what, build } => {
            commands::inspect::show_derivation(cli, what, build)
        }
        Command::Graph { format, build } => commands::inspect::graph(cli, *format, build),
        Command::PathInfo(args) if args.closure_size => commands::why::path_info(cli, args),
        Command::PathInfo(args) => commands::inspect::path_info(cli, args),
        Command::Log { what, build } => commands::inspect::log(cli, what, build),
        Command::Gc {
            dry_run,
            max_freed,
            print_roots,
            print_live,
            print_dead,
        } => commands::maintenance::gc(
            cli,
            &commands::maintenance::GcOpts {
                dry_run: *dry_run || *print_dead,
                max_freed: max_freed.as_deref(),
                print_roots: *print_roots,
                print_live: *print_live,
            },
        ),
        Command::Store { command } => dispatch_store(cli, command),
        Command::Copy(args) => commands::copy::copy(cli, args),
        Command::Key { command } => commands::share::key(command),
        Command::WhyDepends { a, b, build } => commands::why::why_depends(cli, a, b, build),
        Command::SandboxExec {
            sandbox,
            build,
            command,
        } => commands::debug::sandbox_exec(cli, sandbox, command, build),
        Command::Update(args) => commands::deps::update(cli, args),
        Command::Add(args) => commands::deps::add(cli, args),
        Command::Remove(args) => commands::deps::remove(cli, args),
        Command::Tree(args) => commands::deps::tree(cli, args),
        Command::Fetch { build } => commands::deps::fetch(cli, build),
        Command::CompileCommands(args) => commands::compile_commands::write(cli, args),
        Command::Toolchain { json, build } => commands::inspect::toolchain(cli, *json, build),
        Command::Worker(args) => commands::worker::worker(args),
        Command::Completions { shell } => commands::manual::completions(*shell),
        Command::Man { command } => commands::manual::man(command),
    }
}

/// `cmod store ...`.
fn dispatch_store(cli: &Cli, command: &StoreCommand) -> Result<(), CliError> {
    match command {
        StoreCommand::Verify {
            no_contents,
            check_contents,
            sigs_needed,
            repair,
            run,
        } => {
            if *repair {
                commands::repair::verify_and_repair(cli, *no_contents, run)
            } else if *check_contents || sigs_needed.is_some() {
                commands::maintenance::verify_nix(
                    cli,
                    *check_contents,
                    sigs_needed.unwrap_or(0),
                    &run.sharing.trusted_public_keys,
                )
            } else {
                commands::maintenance::verify(cli, *no_contents)
            }
        }
        StoreCommand::Repair(args) => commands::repair::repair(cli, args),
        StoreCommand::Sign(args) => commands::share::sign(cli, args),
        StoreCommand::Serve(args) => commands::share::serve(cli, args),
        StoreCommand::Add { path, name } => commands::share::add(cli, path, name.as_deref()),
    }
}

/// The `--message-format` of commands that have one.
fn message_format(command: &Command) -> cli::MessageFormat {
    match command {
        Command::Realise(a) => a.run.message_format,
        Command::Run(a) => a.run.message_format,
        Command::Test(a) => a.run.message_format,
        Command::Lock(a) => a.run.message_format,
        _ => cli::MessageFormat::Human,
    }
}

/// The allocator: evaluation and scheduling on a large graph allocate and free millions of
/// small strings and maps, which glibc's allocator makes a quarter of their time. Built
/// without transparent huge pages (`no_thp`): a short-lived process touching a few tens
/// of MB paid for zeroing each 2 MB page it faulted in, up to a quarter of an edit's
/// evaluation in profiles on this machine kind.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    output::process_start();
    output::install_panic_hook();
    let mut cli = Cli::parse();
    output::init(cli.verbosity());
    colour::init(cli.color);
    cli.connect = cmod_store::connect::Connect::from_env();
    cli.git_rewrites = cmod_evaluator::git::Rewrites::from_env();
    progress::report_lock_waits(message_format(&cli.command) == cli::MessageFormat::Json);
    match commands::share::sharing_for(&cli) {
        Ok(sharing) => cli.sharing = sharing,
        Err(e) => {
            err!("{}", e.render());
            std::process::exit(e.exit_class().code());
        }
    }
    if let Err(e) = dispatch(&cli) {
        err!("{}", e.render());
        std::process::exit(e.exit_class().code());
    }
}
