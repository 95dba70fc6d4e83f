//! A cache of source-file content hashes keyed by file metadata, so a no-op evaluation
//! reads no file contents: an entry is reused only while the file's size, mtime, ctime,
//! inode and device are unchanged and the entry was not "racy" (written within two
//! seconds of the file's last change) when recorded.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cmod_schema::content::ContentHash;
use serde::{Deserialize, Serialize};

use crate::hashing::{hash_file, now_ns, Stamp};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    stamp: Stamp,
    hash: ContentHash,
}

/// The table as loaded: hashed for lookups (ordered path comparisons showed in no-op
/// profiles); written sorted, through [`SortedTable`].
#[derive(Debug, Default, Deserialize)]
struct Table {
    version: u32,
    entries: HashMap<PathBuf, Entry>,
}

#[derive(Serialize)]
struct SortedTable<'a> {
    version: u32,
    entries: BTreeMap<&'a PathBuf, &'a Entry>,
}

/// A table handed to another thread to be written sorted, as [`SortedTable`].
struct Sorted(Table);

impl Serialize for Sorted {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SortedTable {
            version: self.0.version,
            entries: self.0.entries.iter().collect(),
        }
        .serialize(s)
    }
}

const VERSION: u32 = 2;
/// The cache's file name in the cache directory (its format version in the name, so
/// cmod versions using different formats keep separate files).
pub const FILE_NAME: &str = "files-v2.json";
/// Files changed less than this long ago may still change within the same timestamp
/// tick, so their hashes are not cached (nor, for directories, their listings).
pub(crate) const RACY_WINDOW_NS: i128 = 2_000_000_000;

/// The cache; safe to share between threads. Persisted with [`FileCache::save_later`].
#[derive(Debug)]
pub struct FileCache {
    file: Option<PathBuf>,
    /// Entries for files changed this recently (ns) are not recorded.
    racy_window_ns: i128,
    table: Mutex<Table>,
    dirty: Mutex<bool>,
    /// Hashes already checked by this instance (one evaluation): a system header that a
    /// hundred units include is stamped once.
    checked: Mutex<HashMap<PathBuf, ContentHash>>,
}

impl FileCache {
    /// A cache that is never persisted.
    pub fn in_memory() -> FileCache {
        FileCache {
            file: None,
            racy_window_ns: RACY_WINDOW_NS,
            table: Mutex::new(Table {
                version: VERSION,
                entries: HashMap::new(),
            }),
            dirty: Mutex::new(false),
            checked: Mutex::new(HashMap::new()),
        }
    }

    /// Load the cache from `file` (a missing or unreadable cache is simply empty).
    pub fn load(file: PathBuf) -> FileCache {
        let table = crate::cache_io::read_json::<Table>(&file)
            .filter(|t| t.version == VERSION)
            .unwrap_or(Table {
                version: VERSION,
                entries: HashMap::new(),
            });
        FileCache {
            file: Some(file),
            racy_window_ns: RACY_WINDOW_NS,
            table: Mutex::new(table),
            dirty: Mutex::new(false),
            checked: Mutex::new(HashMap::new()),
        }
    }

    /// The content hash of `path` (absolute), from the cache when its stamp still matches.
    /// Within one instance, a path is stamped and hashed at most once.
    pub fn hash(&self, path: &Path) -> std::io::Result<ContentHash> {
        if let Some(h) = self.checked.lock().ok().and_then(|c| c.get(path).copied()) {
            return Ok(h);
        }
        let hash = self.hash_now(path)?;
        if let Ok(mut c) = self.checked.lock() {
            c.insert(path.to_path_buf(), hash);
        }
        Ok(hash)
    }

    fn hash_now(&self, path: &Path) -> std::io::Result<ContentHash> {
        let stamp = Stamp::read(path)?;
        if let Ok(table) = self.table.lock() {
            if let Some(e) = table.entries.get(path) {
                if e.stamp == stamp {
                    return Ok(e.hash);
                }
            }
        }
        let (hash, _) = hash_file(path)?;
        // Re-stat: if the file changed while we read it, do not record anything.
        let after = Stamp::read(path)?;
        if after == stamp && !stamp.is_racy(now_ns(), self.racy_window_ns) {
            if let (Ok(mut table), Ok(mut dirty)) = (self.table.lock(), self.dirty.lock()) {
                table
                    .entries
                    .insert(path.to_path_buf(), Entry { stamp, hash });
                *dirty = true;
            }
        }
        Ok(hash)
    }

    /// Write the cache back if it changed, on a thread of its own (see
    /// `cache_io::write_json_later`; failures are ignored: it is a cache).
    pub fn save_later(self) {
        let Some(file) = self.file else { return };
        if !self.dirty.into_inner().unwrap_or(false) {
            return;
        }
        if let Ok(table) = self.table.into_inner() {
            crate::cache_io::write_json_later(file, Sorted(table));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_name_carries_the_format_version() {
        assert!(
            FILE_NAME.ends_with(&format!("-v{VERSION}.json")),
            "{FILE_NAME}"
        );
    }

    #[test]
    fn reuses_and_invalidates() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.cpp");
        std::fs::write(&p, "int x;").unwrap();
        let cache_file = t.path().join("cache.json");
        let mut c = FileCache::load(cache_file.clone());
        c.racy_window_ns = 0;
        let h1 = c.hash(&p).unwrap();
        c.save_later();
        crate::cache_io::finish_writes();
        let c = FileCache::load(cache_file.clone());
        assert_eq!(c.table.lock().unwrap().entries.len(), 1, "entry persisted");
        assert_eq!(c.hash(&p).unwrap(), h1);
        std::fs::write(&p, "int y;").unwrap();
        assert_eq!(
            c.hash(&p).unwrap(),
            h1,
            "one instance (one evaluation) checks a file once"
        );
        let c = FileCache::load(cache_file);
        let h2 = c.hash(&p).unwrap();
        assert_ne!(h1, h2, "a rewrite must be noticed by the next evaluation");
        assert_eq!(h2, ContentHash::of_file(false, b"int y;"));
    }

    #[test]
    fn racy_entries_are_not_recorded() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.cpp");
        std::fs::write(&p, "fresh").unwrap();
        let c = FileCache::in_memory();
        c.hash(&p).unwrap();
        assert!(c.table.lock().unwrap().entries.is_empty());
    }
}
