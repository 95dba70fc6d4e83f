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
        "{} dead path(s), {verb} {}; {} path(s) alive",
        report.dead.len(),
        crate::output::human_size(report.freed),
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

/// `store verify --check-contents / --sigs-needed N`: every path's problems are listed
/// (`corrupt:` damaged, `untrusted:` fewer than N valid signatures by trusted keys);
/// any of them is an integrity error (exit 3), as for plain `store verify`. (Nix's exit
/// bits are not used: its bit 2 would read as cmod's usage error.) Metadata that cannot
/// be read for the signature check fails with its own class after the listing.
pub fn verify_nix(
    cli: &Cli,
    check_contents: bool,
    sigs_needed: usize,
    keys: &[String],
) -> Result<(), CliError> {
    let store = crate::project::open_store_to_read(cli)?;
    let trust = crate::commands::share::trust(cli, keys, false)?;
    let report = store.verify(check_contents)?;
    for d in &report.damaged {
        errln!("corrupt: {}: {}", d.describe(&store), d.problem);
    }
    let (untrusted, unreadable) = if sigs_needed > 0 {
        under_signed(&store, &trust.keys, sigs_needed)?
    } else {
        (0, None)
    };
    let corrupt = report.damaged.len();
    let problems = corrupt + untrusted;
    errln!(
        "checked {} path(s): {}",
        report.checked,
        if problems == 0 && unreadable.is_none() {
            "all good".to_string()
        } else {
            format!("{corrupt} corrupt, {untrusted} untrusted")
        }
    );
    if problems > 0 {
        return Err(CliError::Integrity {
            message: format!(
                "{problems} problem(s) in {} store path(s): {corrupt} corrupt, {untrusted} with fewer than {sigs_needed} trusted signature(s)",
                report.checked
            ),
            help: Some(
                "`cmod store repair` rebuilds or re-substitutes corrupt paths; `cmod store sign` or a trusted cache's copy signs the others"
                    .into(),
            ),
        });
    }
    unreadable.map_or(Ok(()), |e| Err(e.into()))
}

/// How many valid paths have fewer than `needed` valid signatures by `keys` (each listed
/// as `untrusted:`), and the first metadata that could not be read (each listed).
fn under_signed(
    store: &cmod_store::Store,
    keys: &cmod_store::sign::TrustedKeys,
    needed: usize,
) -> Result<(usize, Option<cmod_store::StoreError>), CliError> {
    let mut untrusted = 0;
    let mut unreadable = None;
    for p in store.valid_paths()? {
        match store.path_info(&p) {
            Ok(info) => {
                let n = keys.count_valid(&path_info_fingerprint(&info), &info.signatures);
                if n < needed {
                    errln!(
                        "untrusted: {}: {n} of {needed} required signature(s) by trusted keys",
                        store.path_of(&p).display()
                    );
                    untrusted += 1;
                }
            }
            Err(e) => {
                errln!("error: {e}");
                unreadable.get_or_insert(e);
            }
        }
    }
    Ok((untrusted, unreadable))
}
