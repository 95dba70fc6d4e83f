//! GC roots. An out-link (`result`) is a symlink in the user's directory to a store
//! path; the store remembers it under `gcroots/auto/` together with the list of paths
//! its build used (the *keep list*), so collecting garbage never forces a rebuild of a
//! rooted target. Symlinks placed directly in `gcroots/` are roots too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cmod_schema::StorePath;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::layout::Store;
use crate::registry::write_atomic;

/// A live root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The symlink that roots it.
    pub link: PathBuf,
    pub target: StorePath,
    /// Paths kept alive alongside (the build closure of the target).
    pub keep: Vec<StorePath>,
}

#[derive(Serialize, Deserialize)]
struct KeepList {
    link: PathBuf,
    keep: Vec<StorePath>,
}

impl Store {
    /// Create or replace the symlink `link` → `target` and register it as a root that
    /// also keeps `keep` alive.
    pub fn add_out_link(
        &self,
        link: &Path,
        target: &StorePath,
        keep: &BTreeSet<StorePath>,
    ) -> Result<(), StoreError> {
        let link = if link.is_absolute() {
            link.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| StoreError::io("reading the working directory", ".", e))?
                .join(link)
        };
        if let Ok(meta) = std::fs::symlink_metadata(&link) {
            if !meta.file_type().is_symlink() {
                return Err(StoreError::OutLinkInTheWay { link });
            }
        }
        let id = blake3::hash(link.as_os_str().as_encoded_bytes()).to_hex()[..32].to_string();
        let auto = self.dir("gcroots/auto");
        let root_link = auto.join(&id);
        let keep_file = auto.join(format!("{id}.keep.json"));
        let list = KeepList {
            link: link.clone(),
            keep: keep.iter().cloned().collect(),
        };
        let bytes = serde_json::to_vec(&list).map_err(|e| {
            StoreError::io("writing the keep list", &auto, std::io::Error::other(e))
        })?;
        let target_path = self.path_of(target);
        // Nothing to do when the link, its root and its keep list are already as wanted
        // (the common case of a no-op build): no file is rewritten.
        let unchanged = std::fs::read_link(&link).is_ok_and(|t| t == target_path)
            && std::fs::read_link(&root_link).is_ok_and(|t| t == link)
            && std::fs::read(&keep_file).is_ok_and(|old| old == bytes);
        if unchanged {
            return Ok(());
        }
        let tmp = link.with_file_name(format!(
            ".{}.cmod-tmp-{}",
            link.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target_path, &tmp)
            .map_err(|e| StoreError::io("creating the out-link", &tmp, e))?;
        std::fs::rename(&tmp, &link)
            .map_err(|e| StoreError::io("creating the out-link", &link, e))?;
        let _ = std::fs::remove_file(&root_link);
        std::os::unix::fs::symlink(&link, &root_link)
            .map_err(|e| StoreError::io("registering the root", &root_link, e))?;
        write_atomic(&keep_file, &bytes)
    }

    /// All live roots; stale auto roots (links deleted or pointing elsewhere) are removed.
    pub fn roots(&self) -> Result<Vec<Root>, StoreError> {
        let mut roots = Vec::new();
        let auto = self.dir("gcroots/auto");
        for e in std::fs::read_dir(&auto).map_err(|e| StoreError::io("listing", &auto, e))? {
            let e = e.map_err(|e| StoreError::io("listing", &auto, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".keep.json") || name.starts_with('.') {
                continue;
            }
            let keep_file = auto.join(format!("{name}.keep.json"));
            let live = std::fs::read_link(e.path()).ok().and_then(|link| {
                let target = std::fs::read_link(&link).ok()?;
                let path = self.parse_path(&target.to_string_lossy()).ok()?;
                let keep = std::fs::read(&keep_file)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<KeepList>(&b).ok())
                    .map(|k| k.keep)
                    .unwrap_or_default();
                Some(Root {
                    link,
                    target: path,
                    keep,
                })
            });
            match live {
                Some(r) => roots.push(r),
                None => {
                    let _ = std::fs::remove_file(e.path());
                    let _ = std::fs::remove_file(&keep_file);
                }
            }
        }
        let manual = self.dir("gcroots");
        for e in std::fs::read_dir(&manual).map_err(|e| StoreError::io("listing", &manual, e))? {
            let e = e.map_err(|e| StoreError::io("listing", &manual, e))?;
            if e.file_name() == "auto" {
                continue;
            }
            if let Ok(target) = std::fs::read_link(e.path()) {
                if let Ok(path) = self.parse_path(&target.to_string_lossy()) {
                    roots.push(Root {
                        link: e.path(),
                        target: path,
                        keep: Vec::new(),
                    });
                }
            }
        }
        roots.sort_by(|a, b| a.link.cmp(&b.link));
        Ok(roots)
    }
}
