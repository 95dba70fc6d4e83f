//! `cmod gc` and `cmod store verify`.

use cmod_store::sign::path_info_fingerprint;

use crate::cli::Cli;
use crate::diagnostic::CliError;
use crate::project::open_store;

/// Options of `cmod gc`.
pub struct GcOpts<'a> {
    pub dry_run: bool,
    pub max_freed: Option<&'a str>,
    pub print_roots: bool,
    pub print_live: bool,
}

/// Parse a size: bytes, or with a K, M, G or T suffix (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, CliError> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => 0,
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    match (num.trim().parse::<u64>(), mult) {
        (Ok(n), m) if m > 0 => Ok(n.saturating_mul(m)),
        _ => Err(CliError::usage(
            format!("`{text}` is not a size"),
            Some("write bytes, or a number with K, M, G or T (e.g. 500M)".into()),
        )),
    }
}

pub fn gc(cli: &Cli, opts: &GcOpts<'_>) -> Result<(), CliError> {
    let store = open_store(cli)?;
    if opts.print_roots {
        for r in store.roots()? {
            outln!(
                "{} -> {}",
                r.link.display(),
                store.path_of(&r.target).display()
            );
        }
        return Ok(());
    }
    if opts.print_live {
        for p in store.live_paths()? {
            outln!("{}", store.path_of(&p).display());
        }
        return Ok(());
    }
    let max_freed = opts.max_freed.map(parse_size).transpose()?;
    let report = store.collect_garbage(opts.dry_run, max_freed)?;
    for (p, _) in &report.dead {
        outln!("{}", store.path_of(p).display());
    }
    for u in &report.unreadable {
        errln!(
            "warning: `{}` cannot be read ({}); its path is kept: `cmod store repair` fixes it",
            u.file.display(),
            u.reason
        );
    }
    if !report.held_back.is_empty() {
        let held: Vec<String> = report
            .held_back
            .iter()
            .map(|p| store.path_of(p).display().to_string())
            .collect();
        return Err(CliError::Integrity {
            message: format!(
                "nothing was collected: the metadata of {} live path(s) cannot be read, so what they refer to is unknown:\n  {}",
                held.len(),
                held.join("\n  ")
            ),
            help: Some("run `cmod store repair` to rebuild or re-substitute them, then `cmod gc` again".into()),
        });
    }
    let verb = if opts.dry_run { "would free" } else { "freed" };
    errln!(
        "{} dead path(s), {verb} {} bytes; {} path(s) alive",
        report.dead.len(),
        report.freed,
        report.alive
    );
    Ok(())
}

pub fn verify(cli: &Cli, no_contents: bool) -> Result<(), CliError> {
    let store = crate::project::open_store_to_read(cli)?;
    let report = store.verify(!no_contents)?;
    for d in &report.damaged {
        errln!("corrupt: {}: {}", d.describe(&store), d.problem);
    }
    if report.damaged.is_empty() {
        errln!("checked {} path(s): all intact", report.checked);
        Ok(())
    } else {
        Err(CliError::Integrity {
            message: format!(
                "{} of {} store path(s) are damaged",
                report.damaged.len(),
                report.checked
            ),
            help: Some(
                "`cmod store repair` rebuilds or re-substitutes them (`cmod store verify --repair` checks and repairs in one go)"
                    .into(),
            ),
        })
    }
}

/// `store verify --check-contents / --sigs-needed N`: Nix's exit bits — 1 if a path is
/// corrupt, 2 if one has fewer than N valid signatures by trusted keys, 4 if a path
/// could not be checked.
pub fn verify_nix(
    cli: &Cli,
    check_contents: bool,
    sigs_needed: usize,
    keys: &[String],
) -> Result<(), CliError> {
    let store = crate::project::open_store_to_read(cli)?;
    let trust = crate::commands::share::trust(cli, keys, false)?;
    let report = store.verify(check_contents)?;
    let mut bits = 0;
    for d in &report.damaged {
        errln!("corrupt: {}: {}", d.describe(&store), d.problem);
        bits |= 1;
    }
    if sigs_needed > 0 {
        for p in store.valid_paths()? {
            match store.path_info(&p) {
                Ok(info) => {
                    let n = trust
                        .keys
                        .count_valid(&path_info_fingerprint(&info), &info.signatures);
                    if n < sigs_needed {
                        errln!(
                            "untrusted: {}: {n} of {sigs_needed} required signature(s) by trusted keys",
                            store.path_of(&p).display()
                        );
                        bits |= 2;
                    }
                }
                Err(e) => {
                    errln!("error: {e}");
                    bits |= 4;
                }
            }
        }
    }
    errln!(
        "checked {} path(s): {}",
        report.checked,
        if bits == 0 {
            "all good"
        } else {
            "problems found"
        }
    );
    if bits != 0 {
        std::process::exit(bits);
    }
    Ok(())
}
