//! A binary cache in a local directory (`file:///dir`). Every file is written to a
//! temporary name in its directory and renamed into place, so readers never see a
//! partial file.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Backend, BackendError};
use crate::transfer::CopyError;

pub struct FileBackend {
    root: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl FileBackend {
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

    fn get(&self, rel: &str) -> Result<Option<Vec<u8>>, BackendError> {
        let p = self.root.join(rel);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.root.is_dir() {
                    return Err(BackendError::Unreachable(format!(
                        "the directory `{}` does not exist",
                        self.root.display()
                    )));
                }
                Ok(None)
            }
            Err(e) => Err(BackendError::Failed(format!(
                "reading `{}`: {e}",
                p.display()
            ))),
        }
    }

    fn read(
        &self,
        rel: &str,
        each: &mut dyn FnMut(&mut dyn Read) -> Result<(), CopyError>,
    ) -> Result<bool, CopyError> {
        let p = self.root.join(rel);
        match std::fs::File::open(&p) {
            Ok(f) => {
                let mut r = std::io::BufReader::with_capacity(1 << 20, f);
                each(&mut r)?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(CopyError::Transport {
                url: self.url(),
                reason: format!("reading `{}`: {e}", p.display()),
            }),
        }
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
