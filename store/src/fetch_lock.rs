//! Per-path fetch locks, so that processes substituting the same paths into one store
//! download each path once: the first takes the path's fetch lock and downloads; the
//! others wait for it and then find the path valid.
//!
//! A fetch lock is `locks/fetch-<hash part>.lock`, held with `flock` for the download and
//! deleted by its holder before release (so the store does not keep an inode per path it
//! ever fetched). A waiter that wakes on a deleted file sees that the name now leads to
//! another file (or none) and tries again, so two holders never overlap.
//!
//! Deadlocks are impossible: a process takes the locks it blocks on in sorted order,
//! holding only locks taken earlier in that same order, and waits for nothing else
//! while it holds them.

use std::fs::File;
use std::path::PathBuf;

use cmod_schema::StorePath;
use nix::fcntl::{Flock, FlockArg};

use crate::error::StoreError;
use crate::layout::Store;

/// A held fetch lock; released (and its file deleted) on drop.
#[derive(Debug)]
pub struct FetchLock {
    flock: Option<Flock<File>>,
    path: PathBuf,
}

impl Drop for FetchLock {
    fn drop(&mut self) {
        // Delete while still holding, so a newcomer creates a fresh file and a waiter on
        // this one notices the name no longer leads to it.
        let _ = std::fs::remove_file(&self.path);
        drop(self.flock.take());
    }
}

fn lock_file(store: &Store, p: &StorePath) -> PathBuf {
    store
        .dir("locks")
        .join(format!("fetch-{}.lock", p.hash_part()))
}

/// Take the fetch lock of `p`: blocking (`wait`), or only if it is free (`None` if
/// another process holds it).
pub fn lock(store: &Store, p: &StorePath, wait: bool) -> Result<Option<FetchLock>, StoreError> {
    let path = lock_file(store, p);
    let arg = if wait {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockExclusiveNonblock
    };
    loop {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io("opening lock", &path, e))?;
        let flock = match Flock::lock(file, arg) {
            Ok(f) => f,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) if !wait => return Ok(None),
            Err((_, e)) => return Err(StoreError::io("locking", &path, e.into())),
        };
        if crate::lock::same_file(&flock, &path) {
            return Ok(Some(FetchLock {
                flock: Some(flock),
                path,
            }));
        }
        // The holder deleted it on release: lock the file now at that name.
    }
}

/// Delete the fetch-lock and build-lock (`key-*`, [`Lock::acquire_ephemeral`]) files
/// nobody holds: left by a killed process, or by cmod before 2026-12-05, which kept one
/// build lock per step for good. Each is taken without waiting and deleted while held,
/// as a holder does on release, so a process waiting on it tries again on a fresh file.
/// Returns how many went.
///
/// [`Lock::acquire_ephemeral`]: crate::lock::Lock::acquire_ephemeral
pub fn sweep(store: &Store) -> Result<usize, StoreError> {
    let dir = store.dir("locks");
    let entries = std::fs::read_dir(&dir).map_err(|e| StoreError::io("listing", &dir, e))?;
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !((name.starts_with("fetch-") || name.starts_with("key-")) && name.ends_with(".lock")) {
            continue;
        }
        let path = e.path();
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let Ok(flock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        if crate::lock::same_file(&flock, &path) && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The outcome of [`claim`].
#[derive(Debug, Default)]
pub struct Claim {
    /// The fetch locks of `mine`.
    pub locks: Vec<FetchLock>,
    /// Paths to fetch now.
    pub mine: Vec<StorePath>,
    /// Paths another process is fetching.
    pub theirs: Vec<StorePath>,
}

/// Which of `paths` (not valid yet) this process should fetch now: those whose fetch
/// locks are free (taken without waiting) and that are still not valid. The caller
/// fetches them, releases the locks, then calls [`wait_for_others`] with the rest.
pub fn claim(store: &Store, paths: &[StorePath]) -> Result<Claim, StoreError> {
    let Claim {
        mut locks,
        mut mine,
        mut theirs,
    } = Claim::default();
    for p in paths {
        match lock(store, p, false)? {
            Some(l) => {
                // Another process may have finished it just before we took the lock.
                if !store.is_valid(p) {
                    mine.push(p.clone());
                    locks.push(l);
                }
            }
            None => theirs.push(p.clone()),
        }
    }
    Ok(Claim {
        locks,
        mine,
        theirs,
    })
}

/// Wait for the processes fetching `paths` to finish, in sorted order, and return the
/// locks and names of those still not valid afterwards (their fetch failed or was
/// abandoned): the caller fetches those itself while holding the locks.
pub fn wait_for_others(
    store: &Store,
    paths: &[StorePath],
) -> Result<(Vec<FetchLock>, Vec<StorePath>), StoreError> {
    let mut sorted: Vec<&StorePath> = paths.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut locks = Vec::new();
    let mut left = Vec::new();
    for p in sorted {
        if store.is_valid(p) {
            continue;
        }
        let Some(l) = lock(store, p, true)? else {
            continue;
        };
        if !store.is_valid(p) {
            left.push(p.clone());
            locks.push(l);
        }
    }
    Ok((locks, left))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmod_schema::{ContentHash, PathKind};

    fn path(name: &str) -> StorePath {
        let h = ContentHash::of_file(false, name.as_bytes());
        StorePath::compute(PathKind::Output, &h, name, []).unwrap()
    }

    #[test]
    fn a_held_fetch_lock_is_not_taken_twice_and_its_file_goes_away() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let (a, b) = (path("a"), path("b"));
        let held = lock(&s, &a, false).unwrap().expect("free");
        assert!(lock(&s, &a, false).unwrap().is_none(), "held elsewhere");
        let c = claim(&s, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(c.mine, vec![b.clone()]);
        assert_eq!(c.theirs, vec![a.clone()]);
        assert_eq!(c.locks.len(), 1);
        drop(c);
        // A waiter blocks until the holder releases, then gets the lock itself.
        let waiter = {
            let root = t.path().to_path_buf();
            let a = a.clone();
            std::thread::spawn(move || {
                let s = Store::open(&root).unwrap();
                let start = std::time::Instant::now();
                let (locks, left) = wait_for_others(&s, std::slice::from_ref(&a)).unwrap();
                (start.elapsed(), locks.len(), left)
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(held);
        let (waited, n, left) = waiter.join().unwrap();
        assert!(
            waited >= std::time::Duration::from_millis(150),
            "{waited:?}"
        );
        assert_eq!((n, left), (1, vec![a.clone()]), "still not valid: its turn");
        assert!(
            !lock_file(&s, &a).exists() && !lock_file(&s, &b).exists(),
            "lock files are deleted on release"
        );
    }

    #[test]
    fn sweeping_removes_fetch_locks_nobody_holds_and_keeps_held_ones() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let (a, b) = (path("a"), path("b"));
        // What a killed holder leaves: the file, unlocked.
        std::fs::write(lock_file(&s, &a), "").unwrap();
        let held = lock(&s, &b, false).unwrap().expect("free");
        assert_eq!(sweep(&s).unwrap(), 1);
        assert!(!lock_file(&s, &a).exists());
        assert!(lock_file(&s, &b).exists(), "a held lock stays");
        drop(held);
        assert!(!lock_file(&s, &b).exists());
        // Build locks too: one left unheld goes, a held one stays; other locks stay.
        let locks = s.dir("locks");
        std::fs::write(locks.join("key-left.lock"), "").unwrap();
        std::fs::write(locks.join("paths-0.lock"), "").unwrap();
        let held =
            crate::lock::Lock::acquire_ephemeral(&locks.join("key-held.lock"), "a build").unwrap();
        assert_eq!(sweep(&s).unwrap(), 1);
        assert!(!locks.join("key-left.lock").exists());
        assert!(locks.join("key-held.lock").exists());
        assert!(
            locks.join("paths-0.lock").exists(),
            "a registration lock was swept"
        );
        drop(held);
        assert!(!locks.join("key-held.lock").exists());
    }
}
