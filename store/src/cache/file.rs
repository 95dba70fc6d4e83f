//! A binary cache in a local directory (`file:///dir`). Every file is written to a
//! temporary name in its directory and renamed into place, so readers never see a
//! partial file.
//!
//! Whoever else writes the directory may be hostile: files are opened without blocking
//! (a FIFO would otherwise hang the open), must be regular files, and are read with the
//! same bounds as over HTTP (counted while reading: `/dev/zero` behind a symlink has
//! size 0).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Backend, BackendError};
use crate::limits::{read_bounded, BoundedError};
use crate::transfer::CopyError;

/// A binary cache in a local directory (`file://`).
pub struct FileBackend {
    root: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl FileBackend {
    /// The cache at directory `root` (not created here).
    pub fn new(root: &Path) -> FileBackend {
        FileBackend {
            root: root.to_path_buf(),
        }
    }

    fn tmp_beside(&self, dest: &Path) -> Result<PathBuf, BackendError> {
        let dir = dest
            .parent()
            .ok_or_else(|| BackendError::Failed(format!("`{}` has no parent", dest.display())))?;
        std::fs::create_dir_all(dir)
            .map_err(|e| BackendError::Failed(format!("creating `{}`: {e}", dir.display())))?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Ok(dir.join(format!(".tmp-{}-{n}", std::process::id())))
    }

    /// Open `p` for reading if it exists: without blocking, and only a regular file.
    fn open(&self, p: &Path) -> Result<Option<std::fs::File>, BackendError> {
        use std::os::unix::fs::OpenOptionsExt;
        let failed =
            |e: std::io::Error| BackendError::Failed(format!("reading `{}`: {e}", p.display()));
        let f = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(p)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.root.is_dir() {
                    return Err(BackendError::Unreachable(format!(
                        "the directory `{}` does not exist",
                        self.root.display()
                    )));
                }
                return Ok(None);
            }
            Err(e) => return Err(failed(e)),
        };
        if !f.metadata().map_err(failed)?.is_file() {
            return Err(BackendError::Failed(format!(
                "`{}` is not a regular file",
                p.display()
            )));
        }
        Ok(Some(f))
    }

    fn commit(&self, tmp: &Path, dest: &Path) -> Result<(), BackendError> {
        std::fs::rename(tmp, dest).map_err(|e| {
            let _ = std::fs::remove_file(tmp);
            BackendError::Failed(format!("renaming into `{}`: {e}", dest.display()))
        })
    }
}

impl Backend for FileBackend {
    fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn get(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>, BackendError> {
        let p = self.root.join(rel);
        let Some(mut f) = self.open(&p)? else {
            return Ok(None);
        };
        let hint = f.metadata().ok().map(|m| m.len());
        match read_bounded(&mut f, limit, hint) {
            Ok(b) => Ok(Some(b)),
            Err(BoundedError::TooLarge(n)) => Err(BackendError::TooLarge(n)),
            Err(BoundedError::Io(e)) => Err(BackendError::Failed(format!(
                "reading `{}`: {e}",
                p.display()
            ))),
        }
    }

    fn read(
        &self,
        rel: &str,
        _size: u64,
        each: &mut dyn FnMut(&mut dyn Read) -> Result<(), CopyError>,
    ) -> Result<bool, CopyError> {
        let p = self.root.join(rel);
        let transport = |reason: String| CopyError::Transport {
            url: self.url(),
            reason,
        };
        let f = match self.open(&p) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(false),
            Err(BackendError::Unreachable(r) | BackendError::Failed(r)) => {
                return Err(transport(r))
            }
            Err(BackendError::TooLarge(_)) => return Err(transport("too large".into())),
        };
        let mut r = std::io::BufReader::with_capacity(1 << 20, f);
        each(&mut r)?;
        Ok(true)
    }

    fn put_bytes(&self, rel: &str, bytes: &[u8]) -> Result<(), BackendError> {
        let dest = self.root.join(rel);
        let tmp = self.tmp_beside(&dest)?;
        std::fs::write(&tmp, bytes)
            .map_err(|e| BackendError::Failed(format!("writing `{}`: {e}", tmp.display())))?;
        self.commit(&tmp, &dest)
    }

    fn put_file(&self, rel: &str, src: &Path) -> Result<(), BackendError> {
        let dest = self.root.join(rel);
        let tmp = self.tmp_beside(&dest)?;
        // `src` is a temporary the caller gives up: on the same file system it is moved
        // (nothing to delete afterwards); otherwise copied (copy_file_range).
        if std::fs::rename(src, &tmp).is_err() {
            std::fs::copy(src, &tmp).map_err(|e| {
                BackendError::Failed(format!("copying to `{}`: {e}", tmp.display()))
            })?;
        }
        self.commit(&tmp, &dest)
    }

    fn listable(&self) -> bool {
        true
    }

    fn exist(&self, dir: &str, names: &[String], _jobs: usize) -> Result<Vec<bool>, BackendError> {
        let d = self.root.join(dir);
        let present: BTreeSet<String> = match std::fs::read_dir(&d) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => {
                return Err(BackendError::Failed(format!(
                    "listing `{}`: {e}",
                    d.display()
                )))
            }
        };
        Ok(names.iter().map(|n| present.contains(n)).collect())
    }
}
