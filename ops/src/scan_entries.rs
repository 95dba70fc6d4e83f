//! Sharing a project's scan results (`cmod_schema::scan_entry`; where evaluation takes them
//! from is `scan_source`): builds with `secret-key-files` sign the evaluation's scans into
//! the store, `cmod store sign` does on request, and `cmod copy --to` publishes them.

use cmod_schema::scan_entry::ScanEntry;
use cmod_schema::ContentHash;
use cmod_store::sign::SecretKey;

use crate::{OpsError, Project};

/// Before publishing: take from the configured substituters the signed entries of the
/// evaluation's scans that the store holds unsigned (scanned here, or taken from a cache
/// before caches' signatures were kept), so a relay passes them on signed. A cache that
/// does not answer is skipped (its warning returned); a forged signature is an integrity
/// error. Nothing is fetched `offline`.
pub fn fetch_signed(project: &Project, offline: bool) -> Result<Vec<String>, OpsError> {
    let Some(cfg) = project.sharing.as_ref().filter(|_| !offline) else {
        return Ok(Vec::new());
    };
    let keys: Vec<ContentHash> = project
        .eval
        .scan_entries()
        .into_iter()
        .filter(|(key, _)| project.store.scan_lookup(key).is_none())
        .map(|(key, _)| key)
        .collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let got = cmod_store::scans::substitute_scans(&project.store, cfg, &keys)?;
    Ok(got.warnings)
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
pub fn sign(project: &Project, keys: &[SecretKey]) -> Result<usize, OpsError> {
    let mut written = 0;
    if keys.is_empty() {
        return Ok(written);
    }
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
pub fn sign_as_built(project: &Project) -> Result<(), OpsError> {
    let Some(cfg) = &project.sharing else {
        return Ok(());
    };
    sign(project, &cfg.signing).map(|_| ())
}
