//! Valid paths: reading and writing path metadata, registering new contents atomically,
//! and adding sources.
//!
//! Registration order is what makes a crash safe (invariant 4): contents are completed
//! in `tmp/`, moved to their final name, normalised, flushed to stable storage, and only
//! then is the metadata file written (flushed, then renamed into place, then its directory
//! flushed). A path without metadata is not valid and is replaced on the next
//! registration or deleted by GC.
//!
//! A path is **valid** when its metadata is committed *and* its contents are present (a
//! `stat`). A registered path whose contents went missing (deleted by hand, lost) is
//! treated as absent everywhere — rebuilt, re-substituted, re-imported — and its
//! registration is replaced by the next one; `cmod store verify` reports it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use cmod_schema::path_info::PATH_INFO_VERSION;
use cmod_schema::{ContentHash, PathInfo, PathKind, StorePath};

use rayon::prelude::*;

use crate::content::{self, Candidates};
use crate::error::StoreError;
use crate::layout::Store;
use crate::lock::Lock;

/// A metadata file that cannot be read as the metadata of its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableMetadata {
    /// The metadata file.
    pub file: std::path::PathBuf,
    /// The hash part its name gives.
    pub hash: String,
    /// The store path with that hash, when its contents are in the store.
    pub path: Option<StorePath>,
    /// Why it cannot be read.
    pub reason: String,
}

/// Details of a registration.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    /// What the path holds.
    pub kind: PathKind,
    /// The store path's name (after the hash).
    pub name: &'a str,
    /// The derivation that produced it, for outputs.
    pub deriver: Option<&'a StorePath>,
    /// The sandbox mode that built it, for outputs.
    pub sandbox: Option<&'a str>,
    /// The Landlock ABI enforced while building, if any.
    pub landlock_abi: Option<u8>,
    /// Store paths the contents may refer to.
    pub candidates: &'a Candidates,
}

/// See [`Store::validity_check`].
pub struct ValidityCheck<'a> {
    store: &'a Store,
    /// The open `meta/` and store directories (none if either would not open: then each
    /// check goes by absolute paths).
    dirs: Option<(std::fs::File, std::fs::File)>,
}

impl ValidityCheck<'_> {
    /// Whether `p` is valid: its metadata file and its contents exist.
    pub fn is_valid(&self, p: &StorePath) -> bool {
        let Some((meta, store)) = &self.dirs else {
            return self.store.is_valid(p);
        };
        let mut name = [0u8; cmod_schema::store_path::HASH_CHARS + 5];
        name[cmod_schema::store_path::HASH_CHARS..].copy_from_slice(b".json");
        let mut hash = [0u8; cmod_schema::store_path::HASH_CHARS];
        name[..cmod_schema::store_path::HASH_CHARS]
            .copy_from_slice(p.hash_part_str(&mut hash).as_bytes());
        nix::sys::stat::fstatat(meta, &name[..], nix::fcntl::AtFlags::empty()).is_ok()
            && nix::sys::stat::fstatat(
                store,
                p.to_string().as_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .is_ok()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How strong a sandbox mode is (higher is stronger); unknown modes rank lowest.
fn sandbox_rank(mode: Option<&str>) -> u8 {
    match mode {
        Some("full") => 3,
        Some("landlock") => 2,
        Some("off") => 1,
        _ => 0,
    }
}

/// Write `bytes` to `path` atomically (temporary file in the same directory + rename);
/// `durable`: flushed to stable storage before the rename, and the rename after it.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<(), StoreError> {
    let dir = path.parent().ok_or_else(|| {
        StoreError::io(
            "writing",
            path,
            std::io::Error::other("no parent directory"),
        )
    })?;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".tmp-{}-{n}", std::process::id()));
    let written = if durable {
        std::fs::File::create(&tmp).and_then(|mut f| {
            std::io::Write::write_all(&mut f, bytes)?;
            f.sync_all()
        })
    } else {
        std::fs::write(&tmp, bytes)
    };
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        StoreError::io("writing", &tmp, e)
    })?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        StoreError::io("renaming into place", path, e)
    })?;
    if durable {
        content::sync_dir(dir)?;
    }
    Ok(())
}

impl Store {
    /// Whether `path` is valid: its metadata is committed and its contents are present.
    pub fn is_valid(&self, path: &StorePath) -> bool {
        self.is_registered(path) && std::fs::symlink_metadata(self.path_of(path)).is_ok()
    }

    /// Whether `path`'s metadata file exists (readable or not, its contents present or
    /// not): what GC and verification go by.
    pub fn is_registered(&self, path: &StorePath) -> bool {
        self.meta_file(path).exists()
    }

    /// Whether `path` is registered but its contents are missing: damaged, treated as
    /// absent until it is registered again.
    pub fn is_damaged(&self, path: &StorePath) -> bool {
        self.is_registered(path) && std::fs::symlink_metadata(self.path_of(path)).is_err()
    }

    /// Whether every one of `paths` is valid: see [`Store::validity_check`].
    pub fn all_valid<'a>(&self, paths: impl IntoIterator<Item = &'a StorePath>) -> bool {
        let check = self.validity_check();
        paths.into_iter().all(|p| check.is_valid(p))
    }

    /// A checker of [`Store::is_valid`] that looks paths up relative to the metadata and
    /// store directories, opened once (one path component per check instead of the whole
    /// absolute path; a no-op checks hundreds, an edit thousands). Shareable by threads.
    pub fn validity_check(&self) -> ValidityCheck<'_> {
        let dirs = std::fs::File::open(self.dir("meta"))
            .and_then(|meta| Ok((meta, std::fs::File::open(self.store_dir())?)))
            .ok();
        ValidityCheck { store: self, dirs }
    }

    /// The metadata of a valid path.
    pub fn path_info(&self, path: &StorePath) -> Result<PathInfo, StoreError> {
        let file = self.meta_file(path);
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotValid(path.clone()))
            }
            Err(e) => return Err(StoreError::io("reading metadata", &file, e)),
        };
        let info: PathInfo =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::CorruptMetadata {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
        if info.version != PATH_INFO_VERSION || info.path != *path {
            return Err(StoreError::CorruptMetadata {
                path: path.to_string(),
                reason: format!("it describes `{}` (format {})", info.path, info.version),
            });
        }
        Ok(info)
    }

    /// Replace the metadata of a path (e.g. to add signatures).
    pub fn write_path_info(&self, info: &PathInfo) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(info).map_err(|e| StoreError::CorruptMetadata {
            path: info.path.to_string(),
            reason: e.to_string(),
        })?;
        write_atomic(&self.meta_file(&info.path), &bytes, self.durable())
    }

    /// Every valid path (metadata readable, contents present).
    pub fn valid_paths(&self) -> Result<Vec<StorePath>, StoreError> {
        let (registered, _) = self.registered()?;
        Ok(registered
            .into_iter()
            .filter(|p| self.is_valid(p))
            .collect())
    }

    /// Every registered path whose metadata is readable (contents present or not), and
    /// every metadata file that cannot be read (truncated, not JSON, describing another
    /// path): what verification and GC go through without stopping at the first problem.
    pub fn registered(&self) -> Result<(Vec<StorePath>, Vec<UnreadableMetadata>), StoreError> {
        let dir = self.dir("meta");
        let mut out = Vec::new();
        let mut unreadable = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| StoreError::io("listing", &dir, e))? {
            let e = e.map_err(|e| StoreError::io("listing", &dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(hash) = name
                .strip_suffix(".json")
                .filter(|_| !name.starts_with('.'))
            else {
                continue;
            };
            let problem = match std::fs::read(e.path()) {
                Err(er) => Some(er.to_string()),
                Ok(bytes) => match serde_json::from_slice::<PathInfo>(&bytes) {
                    Ok(info)
                        if info.path.hash_part() == hash && info.version == PATH_INFO_VERSION =>
                    {
                        out.push(info.path);
                        None
                    }
                    Ok(info) => Some(format!(
                        "it describes `{}` (format {})",
                        info.path, info.version
                    )),
                    Err(err) if bytes.is_empty() => Some(format!("it is empty ({err})")),
                    Err(err) => Some(err.to_string()),
                },
            };
            if let Some(reason) = problem {
                unreadable.push(UnreadableMetadata {
                    file: e.path(),
                    hash: hash.to_string(),
                    path: None,
                    reason,
                });
            }
        }
        if !unreadable.is_empty() {
            self.name_unreadable(&mut unreadable);
        }
        out.sort();
        unreadable.sort_by(|a, b| a.hash.cmp(&b.hash));
        Ok((out, unreadable))
    }

    /// Find the store path of each unreadable metadata file by its hash among the store's
    /// entries (when its contents are there).
    fn name_unreadable(&self, unreadable: &mut [UnreadableMetadata]) {
        let Ok(entries) = std::fs::read_dir(self.store_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(path) = name.parse::<StorePath>() else {
                continue;
            };
            if let Some(u) = unreadable.iter_mut().find(|u| u.hash == path.hash_part()) {
                u.path = Some(path);
            }
        }
    }

    /// Forget a damaged path: its metadata and whatever contents are left, under its lock,
    /// so the next registration (a rebuild, a substitution) starts clean.
    pub fn invalidate(&self, hash: &str, path: Option<&StorePath>) -> Result<(), StoreError> {
        let meta = self.dir("meta").join(format!("{hash}.json"));
        let stripe = hash.chars().next().unwrap_or('0');
        let _lock = Lock::acquire(&self.dir("locks").join(format!("paths-{stripe}.lock")))?;
        match std::fs::remove_file(&meta) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("deleting", &meta, e)),
        }
        if let Some(p) = path {
            content::remove(&self.path_of(p))?;
        }
        // A kept view may still link the damaged contents.
        self.clear_views()
    }

    /// A fresh temporary location under `tmp/` (not created).
    pub fn temp_path(&self, label: &str) -> std::path::PathBuf {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.dir("tmp")
            .join(format!("{label}-{}-{n}", std::process::id()))
    }

    /// The lock that serialises registering and deleting `path`. Paths share 32 lock
    /// files by the first character of their hash: the critical sections are short and
    /// never nested, and one lock file per path would cost an inode for every path the
    /// store ever held (measurable when a substitution registers hundreds at once).
    pub(crate) fn lock_for(&self, path: &StorePath) -> Result<Lock, StoreError> {
        let stripe = path.hash_part().chars().next().unwrap_or('0');
        Lock::acquire(&self.dir("locks").join(format!("paths-{stripe}.lock")))
    }

    /// Register the tree at `tmp` (which this call consumes) as a new store path.
    /// If the same contents are already valid under the same name, `tmp` is discarded
    /// and the existing path returned.
    pub fn register(&self, tmp: &Path, reg: &Registration<'_>) -> Result<PathInfo, StoreError> {
        self.register_referencing(tmp, reg, &BTreeSet::new())
    }

    /// [`Store::register`] with `extra` references beside those found in the contents:
    /// a BMI references the BMIs it was built against, so its store path pins them.
    pub fn register_referencing(
        &self,
        tmp: &Path,
        reg: &Registration<'_>,
        extra: &BTreeSet<StorePath>,
    ) -> Result<PathInfo, StoreError> {
        let mut tree = content::hash_path(tmp, reg.candidates)?;
        tree.references.extend(extra.iter().cloned());
        self.register_hashed(tmp, reg, tree.hash, tree.size, tree.references)
    }

    fn register_hashed(
        &self,
        tmp: &Path,
        reg: &Registration<'_>,
        hash: ContentHash,
        size: u64,
        references: BTreeSet<StorePath>,
    ) -> Result<PathInfo, StoreError> {
        let path = StorePath::compute(reg.kind, &hash, reg.name, &references)
            .map_err(|e| StoreError::BadPath(reg.name.into(), e.to_string()))?;
        // The slow part (normalising and flushing the tree, on a thread pool) is done
        // while the tree is still private, before the path's lock: a thread waiting for a
        // pool while holding a lock may be asked to run another registration meanwhile,
        // which waits for that same lock (a deadlock seen with sources and derivations
        // registered at once).
        let mut prepared = false;
        let _lock = loop {
            if !prepared && !self.is_valid(&path) {
                content::prepare(tmp, self.durable())?;
                prepared = true;
            }
            let lock = self.lock_for(&path)?;
            if prepared || self.is_valid(&path) {
                break lock;
            }
            // Valid a moment ago, gone now (collected): prepare ours after all.
        };
        if self.is_valid(&path) {
            content::remove(tmp)?;
            let mut info = self.path_info(&path)?;
            // The same bytes were produced again. Record the strongest sandbox that has
            // produced them, so the metadata never understates how they were built.
            if sandbox_rank(reg.sandbox) > sandbox_rank(info.sandbox.as_deref()) {
                info.sandbox = reg.sandbox.map(str::to_string);
                info.landlock_abi = reg.landlock_abi;
                self.write_path_info(&info)?;
            }
            return Ok(info);
        }
        let dest = self.path_of(&path);
        // Left over by a crash before its metadata was written: not valid, replace it.
        content::remove(&dest)?;
        std::fs::rename(tmp, &dest)
            .map_err(|e| StoreError::io("moving into the store", &dest, e))?;
        content::seal(&dest, self.durable())?;
        if self.durable() {
            // Their name in the store, before the metadata that makes them valid.
            content::sync_dir(&self.store_dir())?;
        }
        let info = PathInfo {
            version: PATH_INFO_VERSION,
            path,
            kind: reg.kind,
            content_hash: hash,
            size,
            references,
            deriver: reg.deriver.cloned(),
            registered: now(),
            sandbox: reg.sandbox.map(str::to_string),
            landlock_abi: reg.landlock_abi,
            signatures: BTreeSet::new(),
        };
        self.write_path_info(&info)?;
        Ok(info)
    }

    /// [`add_source`](Store::add_source) for many `(host, path, expected)` at once, in
    /// parallel (sources reference nothing, so their order does not matter). Returns the
    /// paths added now: the contents the store did not hold yet (an edited file's).
    pub fn add_sources(
        &self,
        sources: &[(&Path, &StorePath, &ContentHash)],
    ) -> Result<Vec<StorePath>, StoreError> {
        let added: Vec<Option<&StorePath>> = sources
            .par_iter()
            .map(|(host, path, expected)| {
                let now = self.add_source(host, path, expected)?;
                Ok::<_, StoreError>(now.then_some(*path))
            })
            .collect::<Result<_, _>>()?;
        Ok(added.into_iter().flatten().cloned().collect())
    }

    /// Add a user file (or tree) that the evaluator hashed as `expected` under store path
    /// `path`. The copy is re-hashed; if the file changed meanwhile, nothing is added.
    /// Returns whether it was added now (`false`: the store held it already).
    pub fn add_source(
        &self,
        host: &Path,
        path: &StorePath,
        expected: &ContentHash,
    ) -> Result<bool, StoreError> {
        if self.is_valid(path) {
            return Ok(false);
        }
        let tmp = self.temp_path("source");
        content::copy_in(host, &tmp, true)?;
        let tree = content::hash_path(&tmp, &Candidates::new())?;
        if tree.hash != *expected {
            content::remove(&tmp)?;
            return Err(StoreError::SourceChanged {
                host: host.to_path_buf(),
                expected: expected.to_text(),
                found: tree.hash.to_text(),
            });
        }
        let reg = Registration {
            kind: PathKind::Source,
            name: path.name(),
            deriver: None,
            sandbox: None,
            landlock_abi: None,
            candidates: &Candidates::new(),
        };
        let info = self.register_hashed(&tmp, &reg, tree.hash, tree.size, BTreeSet::new())?;
        if info.path != *path {
            return Err(StoreError::CorruptMetadata {
                path: path.to_string(),
                reason: format!("registered as `{}`", info.path),
            });
        }
        Ok(true)
    }

    /// Add bytes as a file store path of `kind` (used for `.drv` files).
    pub fn add_bytes(
        &self,
        kind: PathKind,
        name: &str,
        bytes: &[u8],
        references: &BTreeSet<StorePath>,
    ) -> Result<StorePath, StoreError> {
        let hash = ContentHash::of_file(false, bytes);
        let path = StorePath::compute(kind, &hash, name, references)
            .map_err(|e| StoreError::BadPath(name.into(), e.to_string()))?;
        if self.is_valid(&path) {
            return Ok(path);
        }
        let tmp = self.temp_path("bytes");
        std::fs::write(&tmp, bytes).map_err(|e| StoreError::io("writing", &tmp, e))?;
        let reg = Registration {
            kind,
            name,
            deriver: None,
            sandbox: None,
            landlock_abi: None,
            candidates: &Candidates::new(),
        };
        let info =
            self.register_hashed(&tmp, &reg, hash, bytes.len() as u64, references.clone())?;
        Ok(info.path)
    }

    /// Remove a path: metadata first (so it stops being valid), then contents.
    pub(crate) fn delete_path(&self, path: &StorePath) -> Result<(), StoreError> {
        let _lock = self.lock_for(path)?;
        let meta = self.meta_file(path);
        match std::fs::remove_file(&meta) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("deleting", &meta, e)),
        }
        content::remove(&self.path_of(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(&t.path().join("store")).unwrap();
        (t, s)
    }

    #[test]
    fn register_is_content_addressed_and_deduplicated() {
        let (_t, s) = store();
        let reg = Registration {
            kind: PathKind::Output,
            name: "x.o",
            deriver: None,
            sandbox: Some("off"),
            landlock_abi: None,
            candidates: &Candidates::new(),
        };
        let a = s.temp_path("a");
        std::fs::write(&a, "object").unwrap();
        let ia = s.register(&a, &reg).unwrap();
        assert!(s.is_valid(&ia.path));
        assert_eq!(std::fs::read(s.path_of(&ia.path)).unwrap(), b"object");
        let b = s.temp_path("b");
        std::fs::write(&b, "object").unwrap();
        let ib = s.register(&b, &reg).unwrap();
        assert_eq!(ia.path, ib.path);
        assert!(!b.exists(), "duplicate contents are discarded");
        assert_eq!(s.path_info(&ia.path).unwrap(), ia);
        assert_eq!(s.valid_paths().unwrap(), vec![ia.path.clone()]);
    }

    #[test]
    fn metadata_records_the_strongest_sandbox_that_produced_the_bytes() {
        let (_t, s) = store();
        let reg = |mode: &'static str, abi: Option<u8>| Registration {
            kind: PathKind::Output,
            name: "same.o",
            deriver: None,
            sandbox: Some(mode),
            landlock_abi: abi,
            candidates: &EMPTY,
        };
        static EMPTY: std::sync::LazyLock<Candidates> = std::sync::LazyLock::new(Candidates::new);
        let put = |r: &Registration<'_>| {
            let tmp = s.temp_path("x");
            std::fs::write(&tmp, "identical bytes").unwrap();
            s.register(&tmp, r).unwrap()
        };
        let first = put(&reg("off", None));
        assert_eq!(first.sandbox.as_deref(), Some("off"));
        let upgraded = put(&reg("full", Some(7)));
        assert_eq!(upgraded.path, first.path);
        assert_eq!(
            (upgraded.sandbox.as_deref(), upgraded.landlock_abi),
            (Some("full"), Some(7))
        );
        let kept = put(&reg("landlock", Some(7)));
        assert_eq!(
            kept.sandbox.as_deref(),
            Some("full"),
            "a weaker rebuild never downgrades"
        );
        assert_eq!(
            s.path_info(&first.path).unwrap().sandbox.as_deref(),
            Some("full")
        );
    }

    #[test]
    fn leftover_without_metadata_is_replaced() {
        let (_t, s) = store();
        let reg = Registration {
            kind: PathKind::Output,
            name: "y",
            deriver: None,
            sandbox: None,
            landlock_abi: None,
            candidates: &Candidates::new(),
        };
        let a = s.temp_path("a");
        std::fs::write(&a, "good").unwrap();
        let info = s.register(&a, &reg).unwrap();
        // Simulate a crash after the move but before the metadata: garbage, no metadata.
        std::fs::remove_file(s.meta_file(&info.path)).unwrap();
        content::remove(&s.path_of(&info.path)).unwrap();
        std::fs::write(s.path_of(&info.path), "partial").unwrap();
        assert!(!s.is_valid(&info.path));
        let b = s.temp_path("b");
        std::fs::write(&b, "good").unwrap();
        let again = s.register(&b, &reg).unwrap();
        assert_eq!(std::fs::read(s.path_of(&again.path)).unwrap(), b"good");
    }

    #[test]
    fn add_source_detects_a_change_during_the_copy() {
        let (t, s) = store();
        let host = t.path().join("main.cpp");
        std::fs::write(&host, "int main() {}").unwrap();
        let good = ContentHash::of_file(false, b"int main() {}");
        let path = StorePath::compute(PathKind::Source, &good, "main.cpp", []).unwrap();
        assert!(s.add_source(&host, &path, &good).unwrap(), "added now");
        assert!(s.is_valid(&path));
        assert!(!s.add_source(&host, &path, &good).unwrap(), "held already");
        let stale = ContentHash::of_file(false, b"old contents");
        let p2 = StorePath::compute(PathKind::Source, &stale, "main.cpp", []).unwrap();
        let e = s.add_source(&host, &p2, &stale).unwrap_err();
        assert!(matches!(e, StoreError::SourceChanged { .. }), "{e}");
        assert!(!s.is_valid(&p2));
    }

    /// `add_sources` returns the contents the store did not hold (an edited file's).
    #[test]
    fn add_sources_returns_what_it_added_now() {
        let (t, s) = store();
        let source = |name: &str, text: &str| {
            let host = t.path().join(name);
            std::fs::write(&host, text).unwrap();
            let hash = ContentHash::of_file(false, text.as_bytes());
            let path = StorePath::compute(PathKind::Source, &hash, name, []).unwrap();
            (host, path, hash)
        };
        let (a, b) = (source("a.cpp", "int a;"), source("b.cpp", "int b;"));
        let first = s.add_sources(&[(&a.0, &a.1, &a.2)]).unwrap();
        assert_eq!(first, vec![a.1.clone()]);
        let then = s
            .add_sources(&[(&a.0, &a.1, &a.2), (&b.0, &b.1, &b.2)])
            .unwrap();
        assert_eq!(then, vec![b.1.clone()]);
    }

    #[test]
    fn delete_invalidates_first() {
        let (_t, s) = store();
        let p = s
            .add_bytes(PathKind::Drv, "a.drv", b"{}", &BTreeSet::new())
            .unwrap();
        s.delete_path(&p).unwrap();
        assert!(!s.is_valid(&p));
        assert!(!s.path_of(&p).exists());
    }

    #[test]
    fn corrupt_metadata_is_reported() {
        let (_t, s) = store();
        let p = s
            .add_bytes(PathKind::Drv, "a.drv", b"{}", &BTreeSet::new())
            .unwrap();
        std::fs::write(s.meta_file(&p), "{ not json").unwrap();
        assert!(matches!(
            s.path_info(&p),
            Err(StoreError::CorruptMetadata { .. })
        ));
    }
}
