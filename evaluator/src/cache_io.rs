//! Small helpers for the evaluator's on-disk caches: atomic JSON writes and reads that
//! treat any damage as a cache miss.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Write `value` as JSON to `path` atomically (temporary file + rename). Errors are
/// ignored: losing a cache entry only costs time.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let Ok(bytes) = serde_json::to_vec(value) else {
        return;
    };
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Read JSON from `path`; a missing or malformed file is `None`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}
