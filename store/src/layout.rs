//! Where things live in a store root. Every format-dependent directory is under `v1/`,
//! so a future format lives beside this one instead of misreading it.
//!
//! ```text
//! <root>/v1/store/<hash>-<name>     contents (read-only, mtime 1)
//! <root>/v1/meta/<hash>.json        path metadata; a path is valid iff this exists and
//!                                   its contents are present
//! <root>/v1/trace/<key>.json        build trace: resolved derivation key → outputs
//! <root>/v1/drv-outputs/<hash>.json latest realisation of a derivation
//! <root>/v1/log/<key>.log           build logs (and <hash>.log links per output)
//! <root>/v1/locks/                  lock files: gc.lock, paths-<c>.lock (32 stripes), key-<hash>.lock
//! <root>/v1/gcroots/                roots: `auto/` for out-links, others by hand
//! <root>/v1/tmp/                    build directories and partial copies
//! <root>/v1/cache/                  the evaluator's caches
//! <root>/v1/memo/                   realisation memos (no-op shortcuts)
//! ```

use std::path::{Path, PathBuf};

use cmod_schema::StorePath;

use crate::error::StoreError;

/// The format directory name.
pub const FORMAT: &str = "v1";

/// An opened store.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    v: PathBuf,
    /// Flush contents and metadata to stable storage before a path becomes valid (the
    /// default). Off only for throwaway stores (`CMOD_FSYNC=0`): a power loss may then
    /// leave registered paths empty or partial.
    durable: bool,
}

impl Store {
    /// Open (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(root).map_err(|e| StoreError::io("creating the store", root, e))?;
        let root = root
            .canonicalize()
            .map_err(|e| StoreError::io("opening the store", root, e))?;
        let v = root.join(FORMAT);
        for dir in [
            "store",
            "meta",
            "trace",
            "scans",
            "drv-outputs",
            "log",
            "locks",
            "gcroots/auto",
            "tmp",
            "cache",
            "memo",
        ] {
            let d = v.join(dir);
            std::fs::create_dir_all(&d).map_err(|e| StoreError::io("creating", &d, e))?;
        }
        Ok(Store {
            root,
            v,
            durable: true,
        })
    }

    /// Whether registrations are flushed to stable storage (see [`Store::set_durable`]).
    pub fn durable(&self) -> bool {
        self.durable
    }

    /// Turn flushing to stable storage on or off (on by default). Without it a
    /// registration costs no `fsync`, and a power loss (not a crash: the kernel still
    /// writes what it was given) may leave registered paths empty or partial, which
    /// `cmod store verify` reports and `cmod store repair` fixes.
    pub fn set_durable(&mut self, durable: bool) {
        self.durable = durable;
    }

    /// The default store root: `$CMOD_STORE`, else `$XDG_DATA_HOME/cmod`, else
    /// `$HOME/.local/share/cmod`; an error when none is set (never a guess such as
    /// `/tmp`, which other users can write to).
    pub fn default_root() -> Result<PathBuf, StoreError> {
        let var = |name: &str| std::env::var_os(name).filter(|s| !s.is_empty());
        if let Some(s) = var("CMOD_STORE") {
            return Ok(PathBuf::from(s));
        }
        if let Some(x) = var("XDG_DATA_HOME") {
            return Ok(PathBuf::from(x).join("cmod"));
        }
        var("HOME")
            .map(|h| PathBuf::from(h).join(".local/share/cmod"))
            .ok_or(StoreError::NoStoreLocation)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory holding store paths.
    pub fn store_dir(&self) -> PathBuf {
        self.v.join("store")
    }

    /// The location of `path` in this store.
    pub fn path_of(&self, path: &StorePath) -> PathBuf {
        self.v.join("store").join(path.to_string())
    }

    pub(crate) fn meta_file(&self, path: &StorePath) -> PathBuf {
        // Built in one allocation: a no-op checks a few hundred of these.
        let v = self.v.as_os_str();
        let mut s = std::ffi::OsString::with_capacity(v.len() + 6 + 32 + 5);
        s.push(v);
        s.push("/meta/");
        s.push(path.hash_part_str(&mut [0; 32]));
        s.push(".json");
        PathBuf::from(s)
    }

    pub(crate) fn dir(&self, name: &str) -> PathBuf {
        self.v.join(name)
    }

    /// The evaluator's cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.v.join("cache")
    }

    /// Parse a user-given store path (basename or full path) that must be in this store.
    pub fn parse_path(&self, text: &str) -> Result<StorePath, StoreError> {
        let p = Path::new(text);
        if p.is_absolute() {
            let resolved = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
            let in_store = resolved
                .strip_prefix(self.store_dir())
                .ok()
                .and_then(|r| r.components().next());
            let Some(first) = in_store else {
                return Err(StoreError::BadPath(
                    text.into(),
                    format!("it is not inside `{}`", self.store_dir().display()),
                ));
            };
            return first.as_os_str().to_string_lossy().parse().map_err(
                |e: cmod_schema::store_path::StorePathError| {
                    StoreError::BadPath(text.into(), e.to_string())
                },
            );
        }
        StorePath::from_path_str(text).map_err(|e| StoreError::BadPath(text.into(), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_versioned_and_location_free() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(&t.path().join("a/b")).unwrap();
        assert!(s.store_dir().ends_with("v1/store"));
        assert!(s.dir("meta").is_dir() && s.dir("gcroots/auto").is_dir());
        let p: StorePath = "0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-x".parse().unwrap();
        assert_eq!(s.parse_path(&s.path_of(&p).to_string_lossy()).unwrap(), p);
        assert_eq!(
            s.parse_path(&format!("{}/sub/file", s.path_of(&p).display()))
                .unwrap(),
            p
        );
        assert!(s.parse_path("/etc/passwd").is_err());
    }
}
