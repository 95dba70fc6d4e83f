//! Scan entries in the store and in binary caches (see `cmod_schema::scan_entry`).
//!
//! The store keeps the *signed* scan entries it vouches for under `scans/<key>.json`
//! (written by `cmod store sign` and by builds with `secret-key-files`); `cmod copy --to`
//! publishes them to binary caches next to the build trace; a realisation with
//! substituters asks the caches for the entries of the units its local scan cache lacks,
//! before running `clang-scan-deps`. Scan entries are an optimisation, never a source of
//! truth: an entry without a trusted signature is ignored (the unit is scanned locally,
//! with a warning); one whose trusted signature does not verify is an integrity error,
//! like a forged build-trace entry. `ssh://` stores do not serve scan entries.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cmod_schema::base32;
use cmod_schema::scan_entry::{ScanEntry, SCAN_ENTRY_VERSION};
use cmod_schema::ContentHash;

use crate::copy::Remote;
use crate::error::StoreError;
use crate::layout::Store;
use crate::registry::write_atomic;
use crate::sign::SigError;
use crate::transfer::CopyError;

pub use crate::cache::scan_rel;

impl Store {
    fn scan_file(&self, key: &ContentHash) -> PathBuf {
        self.dir("scans")
            .join(format!("{}.json", base32::encode(&key.0)))
    }

    /// The signed scan entry recorded for `key`, if any.
    pub fn scan_lookup(&self, key: &ContentHash) -> Option<ScanEntry> {
        let bytes = std::fs::read(self.scan_file(key)).ok()?;
        let entry: ScanEntry = serde_json::from_slice(&bytes).ok()?;
        (entry.version == SCAN_ENTRY_VERSION && entry.key == *key).then_some(entry)
    }

    /// Record a scan entry (replacing any previous one for its key).
    pub fn scan_record(&self, entry: &ScanEntry) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(entry).map_err(|e| StoreError::CorruptMetadata {
            path: scan_rel(&entry.key),
            reason: e.to_string(),
        })?;
        write_atomic(&self.scan_file(&entry.key), &bytes, false)
    }
}

/// What asking the substituters for scan entries gave.
#[derive(Debug, Default)]
pub struct ScanSubstitution {
    /// Trusted results by key.
    pub found: BTreeMap<ContentHash, serde_json::Value>,
    /// Why some offered entries were not used (one line per substituter).
    pub warnings: Vec<String>,
}

/// Ask the configured substituters (binary caches only, in order) for the scan entries
/// of `keys`. Untrusted entries are skipped with a warning; an unreachable cache is
/// skipped, and remembered so that the realisation that follows reports it once and does
/// not wait for it again; a trusted signature that does not verify is an error. Entries
/// whose signatures were verified are recorded in `store` as received, so that a copy
/// from this store passes them on signed.
pub fn substitute_scans(
    store: &Store,
    cfg: &crate::substitute::Sharing,
    keys: &[ContentHash],
) -> Result<ScanSubstitution, CopyError> {
    let mut out = ScanSubstitution::default();
    let mut want: Vec<ContentHash> = keys.to_vec();
    for url in &cfg.substituters {
        if want.is_empty() {
            break;
        }
        if url.starts_with("ssh://") {
            continue;
        }
        let Ok(remote) = Remote::open(url, &cfg.connect) else {
            continue;
        };
        let entries = match remote.source().scans(&want) {
            Ok(e) => e,
            Err(e @ (CopyError::Unreachable { .. } | CopyError::Transport { .. })) => {
                // Reported (once) by the substitution walk, which will not ask again.
                cfg.unavailable.mark(url, &e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut refused = 0usize;
        let mut reason = String::new();
        for (key, entry) in entries {
            if cfg.trust.require_sigs {
                let fingerprint = entry.fingerprint().unwrap_or_default();
                match cfg.trust.keys.check(&fingerprint, &entry.signatures) {
                    Ok(()) => store.scan_record(&entry)?,
                    Err(SigError::Invalid(why)) => {
                        return Err(CopyError::Untrusted {
                            url: url.clone(),
                            path: scan_rel(&key),
                            reason: format!("the scan entry's signature is invalid: {why}"),
                        })
                    }
                    Err(e) => {
                        refused += 1;
                        reason = e.to_string();
                        continue;
                    }
                }
            }
            out.found.insert(key, entry.result);
        }
        if refused > 0 {
            out.warnings.push(format!(
                "{refused} scan result(s) from `{url}` were not used ({reason}); those units are scanned here"
            ));
        }
        want.retain(|k| !out.found.contains_key(k));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_entries_are_found_by_key_only() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let key = ContentHash::of_file(false, b"k");
        let other = ContentHash::of_file(false, b"other");
        assert!(s.scan_lookup(&key).is_none());
        let e = ScanEntry::new(key, serde_json::json!({"requires": ["m"]}));
        s.scan_record(&e).unwrap();
        assert_eq!(s.scan_lookup(&key), Some(e.clone()));
        assert!(s.scan_lookup(&other).is_none());
        // An entry filed under the wrong key is not believed.
        std::fs::copy(s.scan_file(&key), s.scan_file(&other)).unwrap();
        assert!(s.scan_lookup(&other).is_none());
        assert!(scan_rel(&key).starts_with("scan/") && scan_rel(&key).ends_with(".json"));
    }
}
