//! Where things live in a store root. Every format-dependent directory is under `v1/`,
//! so a future format lives beside this one instead of misreading it.
//!
//! ```text
//! <root>/v1/store/<hash>-<name>     contents (read-only, mtime 1)
//! <root>/v1/meta/<hash>.json        path metadata; a path is valid iff this exists and
//!                                   its contents are present
//! <root>/v1/trace/<key>.json        build trace: resolved derivation key → outputs
//! <root>/v1/drv-outputs/<hash>.json latest realisation of a derivation
//! <root>/v1/scans/<key>.json        signed scan entries this store vouches for
//! <root>/v1/log/<key>.log           build logs (and <hash>.log links per output)
//! <root>/v1/locks/                  lock files: gc.lock, paths-<c>.lock (32 stripes),
//!                                   key-<key>.lock, fetch-<hash>.lock
//! <root>/v1/gcroots/                roots: `auto/` for out-links, others by hand
//! <root>/v1/tmp/                    build directories and partial copies
//! <root>/v1/views/                  the full sandbox's kept views of the store, one per step
//! <root>/v1/cache/                  the evaluator's caches
//! <root>/v1/memo/                   realisation memos (no-op shortcuts), their `.valid` stamps
//!                                   and each slot's `latest-<slot>`
//! ```
//!
//! The byte formats of all of these are specified in `docs/FORMATS.md`.

use std::path::{Path, PathBuf};

use cmod_schema::StorePath;

use nix::fcntl::{AtFlags, AT_FDCWD};
use nix::unistd::{faccessat, AccessFlags};

use crate::error::{NotWritable, StoreError};

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

/// The directories under `v1/`, created by [`Store::open`].
const DIRS: [&str; 12] = [
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
    "views",
];

/// Whether an I/O error means "this may not be written here" (a read-only file system,
/// missing permissions) rather than a fault.
pub(crate) fn is_unwritable(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EROFS | libc::EACCES | libc::EPERM)
    )
}

/// The name and first line of a cache directory tag (bford.info/cachedir): backup tools
/// skip a directory holding one, and so does cmod's own source walk, so a store kept
/// inside a package (`--store ./store`) is never searched for sources.
pub const CACHEDIR_TAG: (&str, &str) = (
    "CACHEDIR.TAG",
    "Signature: 8a477f597d28d172789f06886806bc55\n# This is a cmod store (https://bford.info/cachedir).\n",
);

/// Tag `root` as a cache directory unless it is (one `open` when it is). Failing costs
/// only the tag, so it is not an error.
fn tag_as_cache(root: &Path) {
    let (name, text) = CACHEDIR_TAG;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(root.join(name))
    {
        let _ = std::io::Write::write_all(&mut f, text.as_bytes());
    }
}

impl Store {
    /// Open (creating if needed) the store at `root` for reading and writing. A store
    /// that cannot be written here (a read-only mount, another user's store) is
    /// [`StoreError::NotWritable`], naming the directory and the remedy, before anything
    /// else is tried.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let unwritable = |dir: &Path, e: std::io::Error| not_writable(root, dir, e);
        std::fs::create_dir_all(root).map_err(|e| match is_unwritable(&e) {
            true => unwritable(root, e),
            false => StoreError::io("creating the store", root, e),
        })?;
        let root = root
            .canonicalize()
            .map_err(|e| StoreError::io("opening the store", root, e))?;
        let v = root.join(FORMAT);
        for dir in std::iter::once(v.clone()).chain(DIRS.iter().map(|d| v.join(d))) {
            std::fs::create_dir_all(&dir).map_err(|e| match is_unwritable(&e) {
                true => not_writable(&root, &dir, e),
                false => StoreError::io("creating", &dir, e),
            })?;
            // Existing directories are not created again: ask whether they can be
            // written (one syscall each; it sees read-only mounts, modes and owners).
            let mode = AccessFlags::W_OK | AccessFlags::X_OK;
            if let Err(e) = faccessat(AT_FDCWD, &dir, mode, AtFlags::AT_EACCESS) {
                return Err(not_writable(&root, &dir, e.into()));
            }
        }
        tag_as_cache(&root);
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

    /// Open the existing store at `root` without writing anything: for commands that
    /// only read (`path-info`, `log`, `store verify`, `eval`, `show-derivation`), on a
    /// store that may be read-only or another user's.
    pub fn open_read_only(root: &Path) -> Result<Store, StoreError> {
        let root = root
            .canonicalize()
            .map_err(|e| StoreError::io("opening the store", root, e))?;
        let v = root.join(FORMAT);
        if !v.is_dir() {
            return Err(StoreError::io(
                "opening the store",
                &v,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        Ok(Store {
            root,
            v,
            durable: true,
        })
    }

    /// [`Store::open`], or, when the store exists but cannot be written here,
    /// [`Store::open_read_only`]: for commands that write only caches.
    pub fn open_for_queries(root: &Path) -> Result<Store, StoreError> {
        match Store::open(root) {
            Err(e @ StoreError::NotWritable { .. }) => Store::open_read_only(root).map_err(|_| e),
            other => other,
        }
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

    /// The store's root directory (the one holding `v1/`).
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

    /// What remote services (REAPI) keep in the store: the Action digests of steps.
    pub fn remote_dir(&self) -> PathBuf {
        self.v.join("remote")
    }

    /// The evaluator's cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.v.join("cache")
    }

    /// Parse a user-given store path (basename or full path) that must be in this store.
    pub fn parse_path(&self, text: &str) -> Result<StorePath, StoreError> {
        let p = Path::new(text);
        // A file-system path (absolute, with a `/`, or an out-link such as `result` in
        // this directory) is followed to the store path it is or points into.
        let on_disk = p.is_absolute()
            || text.contains('/')
            || (StorePath::from_path_str(text).is_err() && p.symlink_metadata().is_ok());
        if on_disk {
            // A path that no longer exists (collected, or a dangling out-link) still
            // names a store path: the link's target, or the path as given.
            let resolved = p
                .canonicalize()
                .or_else(|_| std::fs::read_link(p))
                .unwrap_or_else(|_| p.to_path_buf());
            let in_store = resolved
                .strip_prefix(self.store_dir())
                .ok()
                .and_then(|r| r.components().next());
            let Some(first) = in_store else {
                let problem = if p.symlink_metadata().is_err() {
                    "no such file or directory".to_string()
                } else {
                    format!("it is not inside `{}`", self.store_dir().display())
                };
                return Err(StoreError::BadPath(text.into(), problem));
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

/// The error for a store directory `dir` that cannot be written (`e`).
fn not_writable(root: &Path, dir: &Path, e: std::io::Error) -> StoreError {
    use std::os::unix::fs::MetadataExt;
    let why = if e.raw_os_error() == Some(libc::EROFS) {
        NotWritable::ReadOnly
    } else {
        NotWritable::Permission {
            // SAFETY: a plain getter.
            uid: unsafe { libc::geteuid() },
            owner: std::fs::metadata(dir).ok().map(|m| m.uid()),
        }
    };
    StoreError::NotWritable {
        root: root.to_path_buf(),
        dir: dir.to_path_buf(),
        why,
        source: e,
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

    #[test]
    fn reading_never_creates_a_store() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("s");
        assert!(Store::open_read_only(&root).is_err());
        std::fs::create_dir(&root).unwrap();
        assert!(Store::open_read_only(&root).is_err(), "no v1/");
        assert!(!root.join(FORMAT).exists());
        // Writable: queries open it normally (creating what is missing).
        let s = Store::open_for_queries(&root).unwrap();
        assert!(s.dir("tmp").is_dir());
        assert_eq!(Store::open_read_only(&root).unwrap().root(), s.root());
    }

    #[test]
    fn an_unwritable_directory_names_the_store_the_directory_and_the_owner() {
        let e = not_writable(
            Path::new("/s"),
            Path::new("/s/v1/tmp"),
            std::io::Error::from_raw_os_error(libc::EROFS),
        );
        assert_eq!(e.exit_class(), cmod_schema::diag::ExitClass::Usage);
        let text = e.to_string();
        assert_eq!(
            text,
            "the store `/s` cannot be written here: `/s/v1/tmp` is on a read-only file system"
        );
        assert!(e.remedy().unwrap().contains("remount it read-write"));
        let e = StoreError::NotWritable {
            root: "/s".into(),
            dir: "/s/v1".into(),
            why: NotWritable::Permission {
                uid: 1000,
                owner: Some(0),
            },
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        };
        assert!(e
            .to_string()
            .ends_with("is not writable by you (uid 1000); it belongs to uid 0"));
        assert!(e.remedy().unwrap().contains("store's owner (uid 0)"));
        assert!(e.remedy().unwrap().contains("`path-info`"));
    }
}
