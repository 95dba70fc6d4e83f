//! Locks on lock files (`flock`), so two processes never build or register the same path
//! at once and GC never runs beside a build. Locks are released when the guard drops or
//! the process dies (however it dies: the kernel drops `flock`s with the last fd).
//!
//! **Waiting is never silent.** An acquisition that finds the lock taken blocks as
//! before, but if it is still waiting after [`NOTICE_AFTER`], the observer installed with
//! [`on_wait`] is told what is waited for ([`Waiting`]: the lock file, what it protects,
//! and the processes holding it, from `/proc/locks`) — once per wait. The CLI prints
//! `Blocking waiting for file lock on ...`, as Cargo does. Only a contended acquisition
//! pays for this (one short-lived timer thread); a free lock costs what it always did.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::StoreError;

/// How long an acquisition waits before the observer hears about it.
pub const NOTICE_AFTER: Duration = Duration::from_secs(1);

/// A held lock.
#[derive(Debug)]
pub struct Lock {
    _flock: Flock<File>,
    path: PathBuf,
    /// The lock file is removed on release ([`Lock::acquire_ephemeral`]).
    ephemeral: bool,
}

impl Drop for Lock {
    /// An ephemeral lock's file is removed while the lock is still held (the fields,
    /// and so the `flock`, drop after this): a process waiting on it then finds that the
    /// file it locked is no longer the one at its path, and tries again on a new one.
    fn drop(&mut self) {
        if self.ephemeral {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether the open `file` is the file at `path` now (not one removed, or replaced, while
/// its lock was waited for).
pub(crate) fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A lock acquisition that has been blocked for [`NOTICE_AFTER`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The lock file.
    pub path: PathBuf,
    /// What the lock protects, for people ("the store's GC lock").
    pub what: String,
    /// The processes holding it now, as far as `/proc/locks` tells (not this one).
    pub holders: Vec<Holder>,
}

/// A process holding a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its process id.
    pub pid: i32,
    /// Its command line (shortened), or its name.
    pub command: String,
}

type Observer = Arc<dyn Fn(&Waiting) + Send + Sync>;
static OBSERVER: RwLock<Option<Observer>> = RwLock::new(None);

/// Install the process-wide observer of long lock waits (replacing any earlier one).
pub fn on_wait(observer: impl Fn(&Waiting) + Send + Sync + 'static) {
    if let Ok(mut slot) = OBSERVER.write() {
        *slot = Some(Arc::new(observer));
    }
}

/// Open the lock file at `path`, creating it if needed. An existing one is opened
/// read-only: `flock` needs no write access, so a lock file another user created (in a
/// shared store) or one on a read-only mount can still be locked.
pub(crate) fn open(path: &Path) -> Result<File, StoreError> {
    match File::open(path) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| StoreError::io("creating lock", path, e)),
        Err(e) => Err(StoreError::io("opening lock", path, e)),
    }
}

/// What a lock file protects, from its name (see layout.rs).
fn describe(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name == "gc.lock" {
        "the store's GC lock".into()
    } else if let Some(stripe) = name
        .strip_prefix("paths-")
        .and_then(|s| s.strip_suffix(".lock"))
    {
        format!("the store's registration lock for paths starting with `{stripe}`")
    } else if name.starts_with("key-") {
        "a build lock".into()
    } else {
        format!("`{name}`")
    }
}

/// Take `file`'s lock (`kind` is shared or exclusive), blocking, and reporting a long
/// wait for `what`.
fn lock(file: File, path: &Path, kind: FlockArg, what: &str) -> Result<Flock<File>, StoreError> {
    let nonblock = match kind {
        FlockArg::LockShared => FlockArg::LockSharedNonblock,
        _ => FlockArg::LockExclusiveNonblock,
    };
    let file = match Flock::lock(file, nonblock) {
        Ok(held) => return Ok(held),
        Err((file, Errno::EWOULDBLOCK)) => file,
        Err((_, e)) => return Err(StoreError::io("locking", path, e.into())),
    };
    let _notice = Notice::start(&file, path, what);
    let mut file = file;
    loop {
        match Flock::lock(file, kind) {
            Ok(held) => return Ok(held),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, e)) => return Err(StoreError::io("locking", path, e.into())),
        }
    }
}

/// Hold the lock at `path` shared (the GC lock, for a realisation).
pub(crate) fn shared(path: &Path, what: &str) -> Result<Flock<File>, StoreError> {
    lock(open(path)?, path, FlockArg::LockShared, what)
}

impl Lock {
    /// Block until the lock at `path` is held (a long wait is reported, see the module
    /// documentation).
    pub fn acquire(path: &Path) -> Result<Lock, StoreError> {
        Lock::acquire_for(path, &describe(path))
    }

    /// [`Lock::acquire`], saying `what` the lock protects if the wait is reported.
    pub fn acquire_for(path: &Path, what: &str) -> Result<Lock, StoreError> {
        let flock = lock(open(path)?, path, FlockArg::LockExclusive, what)?;
        Ok(Lock {
            _flock: flock,
            path: path.to_path_buf(),
            ephemeral: false,
        })
    }

    /// [`Lock::acquire_for`] for a lock file that exists only while someone holds or
    /// waits for it (a per-key build lock): it is removed on release, and an acquisition
    /// that finds its file was removed (or replaced) meanwhile tries again, so two holders
    /// never hold different files of one path. Lock files of that kind left by a killed
    /// process are swept ([`crate::fetch_lock::sweep`]).
    pub fn acquire_ephemeral(path: &Path, what: &str) -> Result<Lock, StoreError> {
        loop {
            let flock = lock(open(path)?, path, FlockArg::LockExclusive, what)?;
            if same_file(&flock, path) {
                return Ok(Lock {
                    _flock: flock,
                    path: path.to_path_buf(),
                    ephemeral: true,
                });
            }
        }
    }

    /// Take the lock only if it is free.
    pub fn try_acquire(path: &Path) -> Result<Option<Lock>, StoreError> {
        let file = open(path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(flock) => Ok(Some(Lock {
                _flock: flock,
                path: path.to_path_buf(),
                ephemeral: false,
            })),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(StoreError::io("locking", path, e.into())),
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The timer of one blocked acquisition: reports it after [`NOTICE_AFTER`] unless
/// dropped first. Dropping waits for a report in progress, so a report never comes
/// after the lock was taken and the caller went on.
struct Notice {
    done: Arc<(Mutex<bool>, Condvar)>,
}

impl Notice {
    fn start(file: &File, path: &Path, what: &str) -> Option<Notice> {
        let observer = OBSERVER.read().ok()?.clone()?;
        let id = file.metadata().ok().map(|m| (m.dev(), m.ino()));
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let timer = Arc::clone(&done);
        let (path, what) = (path.to_path_buf(), what.to_string());
        std::thread::Builder::new()
            .name("lock-notice".into())
            .spawn(move || {
                let (flag, cv) = &*timer;
                let Ok(guard) = flag.lock() else { return };
                let Ok((guard, _)) = cv.wait_timeout_while(guard, NOTICE_AFTER, |d| !*d) else {
                    return;
                };
                if !*guard {
                    let holders = id.map(|(dev, ino)| holders(dev, ino)).unwrap_or_default();
                    observer(&Waiting {
                        path,
                        what,
                        holders,
                    });
                }
            })
            .ok()?;
        Some(Notice { done })
    }
}

impl Drop for Notice {
    fn drop(&mut self) {
        let (flag, cv) = &*self.done;
        if let Ok(mut done) = flag.lock() {
            *done = true;
        }
        cv.notify_all();
    }
}

/// The processes (other than this one) holding a lock on the file `dev`/`ino`, from
/// `/proc/locks`. Best effort: empty when it cannot be read.
fn holders(dev: u64, ino: u64) -> Vec<Holder> {
    let Ok(text) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    let mut pids = holder_pids(&text, dev, ino);
    pids.retain(|&p| p != me);
    pids.into_iter()
        .map(|pid| Holder {
            pid,
            command: command_of(pid),
        })
        .collect()
}

/// The pids `/proc/locks` lists as holding (not waiting for) a lock on `dev`/`ino`.
/// Lines look like `1: FLOCK  ADVISORY  WRITE 4242 fd:01:131090 0 EOF`, waiters like
/// `1: -> FLOCK ...`.
fn holder_pids(locks: &str, dev: u64, ino: u64) -> Vec<i32> {
    let id = format!("{:02x}:{:02x}:{ino}", libc::major(dev), libc::minor(dev));
    let mut pids = Vec::new();
    for line in locks.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.get(1) == Some(&"->") {
            continue;
        }
        let Some(at) = words.iter().position(|w| *w == id) else {
            continue;
        };
        if let Some(pid) = at
            .checked_sub(1)
            .and_then(|i| words.get(i))
            .and_then(|w| w.parse::<i32>().ok())
        {
            if pid > 0 && !pids.contains(&pid) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// A process's command line, shortened for a one-line message.
fn command_of(pid: i32) -> String {
    const MAX: usize = 100;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut text = String::from_utf8_lossy(&cmdline)
        .split('\0')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if text.is_empty() {
        text = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_else(|_| "?".into());
    }
    if text.chars().count() > MAX {
        text = text.chars().take(MAX - 1).collect::<String>() + "…";
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Every wait reported in this test process (the observer is process-wide).
    static SEEN: Mutex<Vec<Waiting>> = Mutex::new(Vec::new());

    fn observe() {
        on_wait(|w| SEEN.lock().unwrap().push(w.clone()));
    }

    /// The reported waits for lock files under `dir` (other tests lock too).
    fn seen_under(dir: &Path) -> Vec<Waiting> {
        let seen = SEEN.lock().unwrap();
        seen.iter()
            .filter(|w| w.path.starts_with(dir))
            .cloned()
            .collect()
    }

    #[test]
    fn second_holder_waits() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x.lock");
        let held = Lock::acquire(&p).unwrap();
        assert!(Lock::try_acquire(&p).unwrap().is_none());
        drop(held);
        assert!(Lock::try_acquire(&p).unwrap().is_some());
    }

    #[test]
    fn a_long_wait_is_reported_once_naming_the_holder() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("gc.lock");
        observe();
        // Another process holds the lock for 2 s.
        let mut holder = std::process::Command::new("flock")
            .arg("-x")
            .arg(&p)
            .args(["sleep", "2"])
            .spawn()
            .unwrap();
        let start = Instant::now();
        while Lock::try_acquire(&p).unwrap().is_some() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "flock never took the lock"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let waited = Instant::now();
        let lock = Lock::acquire(&p).unwrap();
        assert!(waited.elapsed() > NOTICE_AFTER, "{:?}", waited.elapsed());
        holder.wait().unwrap();
        drop(lock);
        let seen = seen_under(t.path());
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].what, "the store's GC lock");
        assert_eq!(seen[0].path, p);
        assert_eq!(
            seen[0].holders.iter().map(|h| h.pid).collect::<Vec<_>>(),
            vec![holder.id() as i32],
            "{seen:?}"
        );
        assert!(
            seen[0].holders[0].command.starts_with("flock -x"),
            "{seen:?}"
        );
    }

    #[test]
    fn a_short_wait_is_not_reported_and_shared_waits_for_exclusive() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("key-x.lock");
        observe();
        let held = Lock::acquire(&p).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let q = p.clone();
        let waiter = std::thread::spawn(move || {
            let g = shared(&q, "test").unwrap();
            tx.send(Instant::now()).unwrap();
            g
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            rx.try_recv().is_err(),
            "a shared lock was granted beside an exclusive one"
        );
        let released = Instant::now();
        drop(held);
        let got = rx.recv().unwrap();
        assert!(got >= released);
        drop(waiter.join().unwrap());
        std::thread::sleep(NOTICE_AFTER + Duration::from_millis(200));
        assert_eq!(seen_under(t.path()), vec![]);
    }

    #[test]
    fn proc_locks_lines_are_parsed() {
        let dev = libc::makedev(0xfd, 1);
        let text = "1: FLOCK  ADVISORY  WRITE 4242 fd:01:131090 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 77 fd:01:131090 0 EOF\n\
                    2: FLOCK  ADVISORY  READ 99 fd:01:131090 0 EOF\n\
                    3: POSIX  ADVISORY  WRITE 5 fd:01:7 0 EOF\n";
        assert_eq!(holder_pids(text, dev, 131090), vec![4242, 99]);
        assert_eq!(holder_pids(text, dev, 7), vec![5]);
        assert!(holder_pids(text, dev, 8).is_empty());
    }

    #[test]
    fn lock_files_are_described_by_name() {
        assert_eq!(
            describe(Path::new("/s/v1/locks/gc.lock")),
            "the store's GC lock"
        );
        assert!(describe(Path::new("/s/v1/locks/paths-a.lock")).contains("`a`"));
        assert_eq!(
            describe(Path::new("/s/v1/locks/key-abc.lock")),
            "a build lock"
        );
    }

    #[test]
    fn an_ephemeral_lock_excludes_while_its_file_comes_and_goes() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("key-x.lock");
        let inside = AtomicBool::new(false);
        let entered = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..25 {
                        let held = Lock::acquire_ephemeral(&path, "a test").unwrap();
                        assert!(path.is_file(), "held, but its file is gone");
                        assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                        std::thread::sleep(Duration::from_micros(200));
                        inside.store(false, Ordering::SeqCst);
                        entered.fetch_add(1, Ordering::SeqCst);
                        drop(held);
                    }
                });
            }
        });
        assert_eq!(entered.load(Ordering::SeqCst), 100);
        assert!(!path.exists(), "the lock file outlived its last holder");
        // An ordinary lock keeps its file.
        drop(Lock::acquire(&t.path().join("gc.lock")).unwrap());
        assert!(t.path().join("gc.lock").exists());
    }
}
