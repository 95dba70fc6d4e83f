//! A cache of directory listings keyed by the directory's stamp, so the source walk of a
//! no-op or an edit reads no directory: a `stat` per directory instead of a listing.
//!
//! Adding, removing or renaming an entry changes its directory's modification and change
//! times (and usually its size), so a listing recorded under the directory's stamp holds
//! while that stamp does. A listing is recorded only when the directory changed more than
//! the racy window before it was read (as the file-hash cache does): a change within the
//! same timestamp tick could otherwise leave the stamp as it was. Symlinks are listed as
//! symlinks; where they lead is resolved afresh by the walk every time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::file_cache::RACY_WINDOW_NS;
use crate::hashing::{now_ns, Stamp};

/// What a directory entry is, as the walk distinguishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    #[serde(rename = "f")]
    File,
    #[serde(rename = "d")]
    Dir,
    #[serde(rename = "l")]
    Symlink,
    #[serde(rename = "o")]
    Other,
}

impl Kind {
    fn of(t: std::fs::FileType) -> Kind {
        if t.is_file() {
            Kind::File
        } else if t.is_dir() {
            Kind::Dir
        } else if t.is_symlink() {
            Kind::Symlink
        } else {
            Kind::Other
        }
    }
}

/// One directory's entries (names as UTF-8; a directory with another name is never
/// recorded), sorted by name.
pub(crate) type Listing = Vec<(String, Kind)>;

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    stamp: Stamp,
    entries: Listing,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Table {
    version: u32,
    dirs: HashMap<PathBuf, Entry>,
}

const VERSION: u32 = 1;
/// The cache's file name in the cache directory (its format version in the name).
pub const FILE_NAME: &str = "listings-v1.json";

/// The cache; shareable by threads. Persisted with [`ListingCache::save_later`].
#[derive(Debug)]
pub struct ListingCache {
    file: Option<PathBuf>,
    /// Directories changed this recently (ns) are not recorded.
    racy_window_ns: i128,
    table: Mutex<Table>,
    dirty: Mutex<bool>,
}

/// What [`ListingCache::list`] returns: the sorted entries, names as the OS gave them.
pub(crate) type Entries = Vec<(std::ffi::OsString, Kind)>;

impl ListingCache {
    /// A cache that is never persisted (every listing is read).
    pub fn in_memory() -> ListingCache {
        ListingCache {
            file: None,
            racy_window_ns: RACY_WINDOW_NS,
            table: Mutex::default(),
            dirty: Mutex::default(),
        }
    }

    /// Load the cache from `file` (missing, damaged or of another version: empty).
    pub fn load(file: PathBuf) -> ListingCache {
        let table = crate::cache_io::read_json::<Table>(&file)
            .filter(|t| t.version == VERSION)
            .unwrap_or(Table {
                version: VERSION,
                dirs: HashMap::new(),
            });
        ListingCache {
            file: Some(file),
            racy_window_ns: RACY_WINDOW_NS,
            table: Mutex::new(table),
            dirty: Mutex::new(false),
        }
    }

    /// The entries of `dir`, sorted by name: from the cache while its stamp holds, else
    /// read (and recorded when the directory has settled and is persisted at all).
    pub(crate) fn list(&self, dir: &Path) -> std::io::Result<Entries> {
        let stamp = Stamp::read(dir)?;
        if let Ok(table) = self.table.lock() {
            if let Some(e) = table.dirs.get(dir).filter(|e| e.stamp == stamp) {
                return Ok(e.entries.iter().map(|(n, k)| (n.into(), *k)).collect());
            }
        }
        let mut entries: Entries = std::fs::read_dir(dir)?
            .map(|e| e.and_then(|e| Ok((e.file_name(), Kind::of(e.file_type()?)))))
            .collect::<Result<_, _>>()?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let recordable = self.file.is_some()
            && !stamp.is_racy(now_ns(), self.racy_window_ns)
            && Stamp::read(dir).is_ok_and(|after| after == stamp);
        let listing: Option<Listing> = entries
            .iter()
            .map(|(n, k)| n.to_str().map(|n| (n.to_string(), *k)))
            .collect();
        if let (true, Some(listing)) = (recordable, listing) {
            if let (Ok(mut table), Ok(mut dirty)) = (self.table.lock(), self.dirty.lock()) {
                let entry = Entry {
                    stamp,
                    entries: listing,
                };
                table.dirs.insert(dir.to_path_buf(), entry);
                *dirty = true;
            }
        }
        Ok(entries)
    }

    /// Write the cache back if it changed, on a thread of its own (see
    /// `cache_io::write_json_later`; failures are ignored: it is a cache).
    pub fn save_later(self) {
        let Some(file) = self.file else { return };
        if !self.dirty.into_inner().unwrap_or(false) {
            return;
        }
        if let Ok(table) = self.table.into_inner() {
            crate::cache_io::write_json_later(file, table);
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
    fn a_listing_holds_while_the_directory_is_unchanged() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("src");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("b.cpp"), "").unwrap();
        std::fs::create_dir(dir.join("a")).unwrap();
        let file = t.path().join("listings.json");
        // Just changed: read, not recorded.
        let cache = ListingCache::load(file.clone());
        assert_eq!(cache.list(&dir).unwrap().len(), 2);
        cache.save_later();
        crate::cache_io::finish_writes();
        assert!(!file.exists(), "a racy listing was recorded");
        // Settled (no racy window here): recorded, and used by the next evaluation.
        let mut cache = ListingCache::load(file.clone());
        cache.racy_window_ns = 0;
        let listed = cache.list(&dir).unwrap();
        assert_eq!(
            listed,
            vec![("a".into(), Kind::Dir), ("b.cpp".into(), Kind::File)]
        );
        cache.save_later();
        crate::cache_io::finish_writes();
        let again = ListingCache::load(file.clone());
        assert!(again.table.lock().unwrap().dirs.contains_key(&dir));
        // The recorded listing is what is returned, not a new read: doctor it to see.
        again
            .table
            .lock()
            .unwrap()
            .dirs
            .get_mut(&dir)
            .unwrap()
            .entries[0]
            .0 = "z".into();
        assert_eq!(again.list(&dir).unwrap()[0].0, "z");
        // A new entry changes the directory's stamp: listed afresh.
        std::fs::write(dir.join("c.cpp"), "").unwrap();
        let names: Vec<_> = again.list(&dir).unwrap().into_iter().map(|e| e.0).collect();
        assert_eq!(names, vec!["a", "b.cpp", "c.cpp"]);
        // So does a removal (recorded again first, so the old listing is a real one).
        let mut cache = ListingCache::load(file.clone());
        cache.racy_window_ns = 0;
        cache.list(&dir).unwrap();
        std::fs::remove_file(dir.join("b.cpp")).unwrap();
        let names: Vec<_> = cache.list(&dir).unwrap().into_iter().map(|e| e.0).collect();
        assert_eq!(names, vec!["a", "c.cpp"]);
    }
}
