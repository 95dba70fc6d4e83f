//! `cmod gc` and `cmod store verify`.

use crate::cli::Cli;
use crate::diagnostic::CliError;
use crate::project::open_store;

pub fn gc(
    cli: &Cli,
    dry_run: bool,
    max_freed: Option<u64>,
    print_roots: bool,
    print_live: bool,
) -> Result<(), CliError> {
    let store = open_store(cli)?;
    if print_roots {
        for r in store.roots()? {
            println!(
                "{} -> {}",
                r.link.display(),
                store.path_of(&r.target).display()
            );
        }
        return Ok(());
    }
    if print_live {
        for p in store.live_paths()? {
            println!("{}", store.path_of(&p).display());
        }
        return Ok(());
    }
    let report = store.collect_garbage(dry_run, max_freed)?;
    for (p, _) in &report.dead {
        println!("{}", store.path_of(p).display());
    }
    let verb = if dry_run { "would free" } else { "freed" };
    eprintln!(
        "{} dead path(s), {verb} {} bytes; {} path(s) alive",
        report.dead.len(),
        report.freed,
        report.alive
    );
    Ok(())
}

pub fn verify(cli: &Cli, no_contents: bool) -> Result<(), CliError> {
    let store = open_store(cli)?;
    let report = store.verify(!no_contents)?;
    for c in &report.corrupt {
        eprintln!(
            "corrupt: {}: {}",
            store.path_of(&c.path).display(),
            c.problem
        );
    }
    if report.corrupt.is_empty() {
        eprintln!("checked {} path(s): all intact", report.checked);
        Ok(())
    } else {
        Err(CliError::Integrity {
            message: format!(
                "{} of {} store path(s) are corrupt",
                report.corrupt.len(),
                report.checked
            ),
            help: Some(
                "delete the damaged paths with `cmod gc` after removing their roots, then rebuild"
                    .into(),
            ),
        })
    }
}
