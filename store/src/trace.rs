//! The build trace and logs.
//!
//! The trace maps the key of a *resolved* derivation (its hash plus sandbox mode) to the
//! outputs it produced. It is what makes early cutoff work: a derivation whose inputs
//! resolve to the same content-addressed paths as before has the same key, and its
//! outputs are found here without building. A second index records the latest
//! realisation of each *unresolved* derivation, for `cmod log` and `path-info`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cmod_schema::{base32, ContentHash, StorePath};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::layout::Store;
use crate::registry::write_atomic;

/// Format version of trace entries.
pub const TRACE_VERSION: u32 = 1;

/// One build-trace entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceEntry {
    /// Format version ([`TRACE_VERSION`]).
    pub version: u32,
    /// The key: the resolved derivation's hash with the sandbox mode.
    pub key: ContentHash,
    /// The (unresolved) derivation whose realisation recorded this entry.
    pub drv: StorePath,
    /// The sandbox mode the outputs were built in.
    pub sandbox: String,
    /// The outputs it produced: output name → store path.
    pub outputs: BTreeMap<String, StorePath>,
    /// Detached signatures `keyname:base64` over the entry's fingerprint.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub signatures: BTreeSet<String>,
}

/// The latest realisation of an unresolved derivation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrvOutputs {
    /// The key of its latest realisation (see [`TraceEntry::key`]).
    pub key: ContentHash,
    /// The outputs it produced then.
    pub outputs: BTreeMap<String, StorePath>,
}

fn key_name(key: &ContentHash) -> String {
    base32::encode(&key.0)
}

impl Store {
    fn trace_file(&self, key: &ContentHash) -> PathBuf {
        self.dir("trace").join(format!("{}.json", key_name(key)))
    }

    /// The outputs recorded under `key`, if every one of them is still valid.
    pub fn trace_lookup(&self, key: &ContentHash) -> Option<TraceEntry> {
        self.trace_entry(key)
            .filter(|entry| entry.outputs.values().all(|p| self.is_valid(p)))
    }

    /// The entry recorded under `key`, whether its outputs are still valid or not.
    pub fn trace_entry(&self, key: &ContentHash) -> Option<TraceEntry> {
        let bytes = std::fs::read(self.trace_file(key)).ok()?;
        let entry: TraceEntry = serde_json::from_slice(&bytes).ok()?;
        (entry.version == TRACE_VERSION && entry.key == *key).then_some(entry)
    }

    /// Record a trace entry (replacing any previous one for its key).
    pub fn trace_record(&self, entry: &TraceEntry) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(entry).map_err(|e| StoreError::CorruptMetadata {
            path: entry.drv.to_string(),
            reason: e.to_string(),
        })?;
        write_atomic(&self.trace_file(&entry.key), &bytes, false)
    }

    /// Record that `drv` was last realised under `key` with `outputs`.
    pub fn record_drv_outputs(
        &self,
        drv: &StorePath,
        key: &ContentHash,
        outputs: &BTreeMap<String, StorePath>,
    ) -> Result<(), StoreError> {
        let rec = DrvOutputs {
            key: *key,
            outputs: outputs.clone(),
        };
        let bytes = serde_json::to_vec(&rec).map_err(|e| StoreError::CorruptMetadata {
            path: drv.to_string(),
            reason: e.to_string(),
        })?;
        let file = self
            .dir("drv-outputs")
            .join(format!("{}.json", drv.hash_part()));
        // Skip the write when nothing changed: no-op builds touch no files.
        if std::fs::read(&file).is_ok_and(|old| old == bytes) {
            return Ok(());
        }
        write_atomic(&file, &bytes, false)
    }

    /// The latest realisation of `drv`, if any.
    pub fn drv_outputs(&self, drv: &StorePath) -> Option<DrvOutputs> {
        let bytes = std::fs::read(
            self.dir("drv-outputs")
                .join(format!("{}.json", drv.hash_part())),
        )
        .ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Where the log of the build under `key` is kept.
    pub fn log_file(&self, key: &ContentHash) -> PathBuf {
        self.dir("log").join(format!("{}.log", key_name(key)))
    }

    /// Keep the log at `from` as the log of the successful build of `drv` under `key`:
    /// findable from each output, and from `drv` as its latest attempt (replacing the log
    /// of an earlier, failed attempt).
    pub fn keep_log(
        &self,
        key: &ContentHash,
        drv: &StorePath,
        from: &Path,
        outputs: &BTreeMap<String, StorePath>,
    ) -> Result<(), StoreError> {
        let dest = self.log_file(key);
        std::fs::rename(from, &dest)
            .or_else(|_| std::fs::copy(from, &dest).map(|_| ()))
            .map_err(|e| StoreError::io("keeping the log", &dest, e))?;
        for path in outputs.values().chain(std::iter::once(drv)) {
            self.link_log(key, path)?;
        }
        Ok(())
    }

    /// Keep `text`, the log of a failed build of `drv` under `key`, as the latest attempt
    /// of `drv` (`cmod log <drv>` shows it until a later attempt replaces it).
    pub fn keep_failed_log(
        &self,
        key: &ContentHash,
        drv: &StorePath,
        text: &[u8],
    ) -> Result<(), StoreError> {
        write_atomic(&self.log_file(key), text, false)?;
        self.link_log(key, drv)
    }

    /// Point `log/<hash of path>.log` at the log of `key`, atomically.
    fn link_log(&self, key: &ContentHash, path: &StorePath) -> Result<(), StoreError> {
        let link = self.dir("log").join(format!("{}.log", path.hash_part()));
        let tmp = self.temp_path("log-link");
        std::os::unix::fs::symlink(format!("{}.log", key_name(key)), &tmp)
            .map_err(|e| StoreError::io("linking the log", &tmp, e))?;
        std::fs::rename(&tmp, &link).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            StoreError::io("linking the log", &link, e)
        })
    }

    /// The log of the build that produced output `path`, or of the latest build attempt
    /// of the derivation `path` (failed or not).
    pub fn log_for(&self, path: &StorePath) -> Option<String> {
        let by_path = self.dir("log").join(format!("{}.log", path.hash_part()));
        if let Ok(bytes) = std::fs::read(&by_path) {
            return Some(String::from_utf8_lossy(&bytes).into_owned());
        }
        let rec = self.drv_outputs(path)?;
        let bytes = std::fs::read(self.log_file(&rec.key)).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmod_schema::PathKind;

    #[test]
    fn lookup_requires_valid_outputs() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let out = s
            .add_bytes(PathKind::Output, "x.o", b"obj", &BTreeSet::new())
            .unwrap();
        let drv = s
            .add_bytes(PathKind::Drv, "x.o.drv", b"{}", &BTreeSet::new())
            .unwrap();
        let key = ContentHash::of_file(false, b"key");
        let entry = TraceEntry {
            version: TRACE_VERSION,
            key,
            drv: drv.clone(),
            sandbox: "off".into(),
            outputs: BTreeMap::from([("obj".into(), out.clone())]),
            signatures: BTreeSet::new(),
        };
        s.trace_record(&entry).unwrap();
        assert_eq!(s.trace_lookup(&key), Some(entry));
        s.delete_path(&out).unwrap();
        assert_eq!(
            s.trace_lookup(&key),
            None,
            "an entry with a missing output is a miss"
        );
    }

    #[test]
    fn logs_are_found_from_outputs_and_derivations() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let out = s
            .add_bytes(PathKind::Output, "x.o", b"obj", &BTreeSet::new())
            .unwrap();
        let drv = s
            .add_bytes(PathKind::Drv, "x.o.drv", b"{}", &BTreeSet::new())
            .unwrap();
        let key = ContentHash::of_file(false, b"key");
        let log = t.path().join("l");
        std::fs::write(&log, "warning: x\n").unwrap();
        let outputs = BTreeMap::from([("obj".to_string(), out.clone())]);
        s.keep_log(&key, &drv, &log, &outputs).unwrap();
        assert_eq!(s.log_for(&out).as_deref(), Some("warning: x\n"));
        assert_eq!(s.log_for(&drv).as_deref(), Some("warning: x\n"));
    }

    /// A failed attempt's log is the derivation's latest log; a later successful attempt
    /// (under another key) replaces it, and the failed one never shows for the output.
    #[test]
    fn failed_logs_are_kept_until_a_later_success() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let drv = s
            .add_bytes(PathKind::Drv, "x.o.drv", b"{}", &BTreeSet::new())
            .unwrap();
        assert_eq!(s.log_for(&drv), None);
        let failed_key = ContentHash::of_file(false, b"first");
        s.keep_failed_log(&failed_key, &drv, b"x.cpp:1:1: error: nope\n")
            .unwrap();
        assert_eq!(s.log_for(&drv).as_deref(), Some("x.cpp:1:1: error: nope\n"));
        let out = s
            .add_bytes(PathKind::Output, "x.o", b"obj", &BTreeSet::new())
            .unwrap();
        let key = ContentHash::of_file(false, b"second");
        let log = t.path().join("l");
        std::fs::write(&log, "ok\n").unwrap();
        let outputs = BTreeMap::from([("obj".to_string(), out.clone())]);
        s.keep_log(&key, &drv, &log, &outputs).unwrap();
        assert_eq!(s.log_for(&drv).as_deref(), Some("ok\n"));
        assert_eq!(s.log_for(&out).as_deref(), Some("ok\n"));
    }
}
