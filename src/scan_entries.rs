//! The CLI's side of sharing scan results (`cmod_schema::scan_entry`; the evaluator's
//! source of them is `cmod_ops`' `scan_source`): `cmod store sign` and builds
//! with `secret-key-files` sign the evaluation's scans into the store; `cmod copy --to`
//! publishes them.

use cmod_schema::scan_entry::ScanEntry;
use cmod_schema::ContentHash;
use cmod_store::sign::SecretKey;

use crate::cli::BuildOpts;
use crate::diagnostic::CliError;
use crate::project::Project;

/// Before publishing: take from the configured substituters the signed entries of the
/// evaluation's scans that the store holds unsigned (scanned here, or taken from a cache
/// before caches' signatures were kept), so a relay passes them on signed. A cache that
/// does not answer is skipped; a forged signature is an integrity error.
pub fn fetch_signed(project: &Project, build: &BuildOpts) -> Result<(), CliError> {
    let Some(cfg) = project.sharing.as_ref().filter(|_| !build.offline()) else {
        return Ok(());
    };
    let keys: Vec<ContentHash> = project
        .eval
        .scan_entries()
        .into_iter()
        .filter(|(key, _)| project.store.scan_lookup(key).is_none())
        .map(|(key, _)| key)
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let got = cmod_store::scans::substitute_scans(&project.store, cfg, &keys)?;
    for w in got.warnings {
        errln!("warning: {w}");
    }
    Ok(())
}

/// The evaluation's scan entries: as signed in the store where they are, else unsigned.
pub fn entries(project: &Project) -> Vec<ScanEntry> {
    project
        .eval
        .scan_entries()
        .into_iter()
        .map(|(key, result)| match project.store.scan_lookup(&key) {
            Some(e) if e.result == result => e,
            _ => ScanEntry::new(key, result),
        })
        .collect()
}

/// Sign the evaluation's scan entries with `keys` and record them in the store (only
/// those not yet signed by every key). Returns how many were (re)written.
pub fn sign(project: &Project, keys: &[SecretKey]) -> Result<usize, CliError> {
    if keys.is_empty() {
        return Ok(0);
    }
    let mut written = 0;
    for mut e in entries(project) {
        let before = e.signatures.clone();
        for k in keys {
            k.sign_scan(&mut e);
        }
        if e.signatures != before {
            project.store.scan_record(&e)?;
            written += 1;
        }
    }
    Ok(written)
}

/// With `secret-key-files` configured, sign what this evaluation scanned, as builds are
/// signed when they happen.
pub fn sign_as_built(project: &Project) -> Result<(), CliError> {
    let Some(cfg) = &project.sharing else {
        return Ok(());
    };
    sign(project, &cfg.signing).map(|_| ())
}
