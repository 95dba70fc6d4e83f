//! Exclusive locks on lock files (`flock`), so two processes never build or register the
//! same path at once. Locks are released when the guard drops or the process dies.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::StoreError;

/// A held lock.
#[derive(Debug)]
pub struct Lock {
    _flock: Flock<File>,
    path: PathBuf,
}

/// Open (creating) the lock file at `path`.
pub(crate) fn open(path: &Path) -> Result<File, StoreError> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io("opening lock", path, e))
}

impl Lock {
    /// Block until the lock at `path` is held.
    pub fn acquire(path: &Path) -> Result<Lock, StoreError> {
        let file = open(path)?;
        let flock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| StoreError::io("locking", path, e.into()))?;
        Ok(Lock {
            _flock: flock,
            path: path.to_path_buf(),
        })
    }

    /// Take the lock only if it is free.
    pub fn try_acquire(path: &Path) -> Result<Option<Lock>, StoreError> {
        let file = open(path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(flock) => Ok(Some(Lock {
                _flock: flock,
                path: path.to_path_buf(),
            })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(StoreError::io("locking", path, e.into())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_waits() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x.lock");
        let held = Lock::acquire(&p).unwrap();
        assert!(Lock::try_acquire(&p).unwrap().is_none());
        drop(held);
        assert!(Lock::try_acquire(&p).unwrap().is_some());
    }
}
