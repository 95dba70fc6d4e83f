//! Registering a tree that arrived from elsewhere (a binary cache, a remote store) under
//! the metadata that came with it — after checking that the metadata tells the truth.
//!
//! The tree is unpacked into a private temporary directory first. Here its references
//! must already be valid (paths arrive in topological order, so a reader never sees a
//! path whose references are missing), its contents must hash to the announced content
//! hash and size, and the store path must be exactly what the kind, content hash, name
//! and references give. Only then is it moved into place, normalised, and its metadata
//! written last, atomically: a crash at any instant leaves a valid path or nothing.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use cmod_schema::cache::NarInfo;
use cmod_schema::{PathInfo, StorePath};

use crate::content::{self, Candidates};
use crate::error::StoreError;
use crate::layout::Store;

/// Why a received tree was not registered.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The bytes or metadata do not match: an integrity violation.
    #[error("{0}")]
    Mismatch(String),
    /// The store failed while registering.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Check the unpacked tree at `tree` against `info` and register it. `tree` is
    /// consumed (moved into the store or deleted), on success and on failure alike.
    pub fn import_tree(&self, tree: &Path, info: &NarInfo) -> Result<PathInfo, ImportError> {
        self.import_tree_as(tree, &info.path_info(0))
    }

    /// [`Store::import_tree`] for metadata in the store's own form (its `registered` time
    /// is replaced by now).
    pub fn import_tree_as(&self, tree: &Path, info: &PathInfo) -> Result<PathInfo, ImportError> {
        let r = self.import_checked(tree, info);
        if r.is_err() {
            let _ = content::remove(tree);
        }
        r
    }

    fn import_checked(&self, tree: &Path, info: &PathInfo) -> Result<PathInfo, ImportError> {
        let shown = info.path.to_string();
        if let Some(missing) = info.references.iter().find(|r| !self.is_valid(r)) {
            return Err(ImportError::Mismatch(format!(
                "`{shown}` refers to `{missing}`, which is not in the store; references must arrive first"
            )));
        }
        content::check_output(tree, &shown).map_err(|e| ImportError::Mismatch(e.to_string()))?;
        let got = content::hash_path(tree, &Candidates::new())?;
        if got.hash != info.content_hash || got.size != info.size {
            return Err(ImportError::Mismatch(format!(
                "the contents of `{shown}` hash to {} ({} bytes), but its metadata says {} ({} bytes)",
                got.hash, got.size, info.content_hash, info.size
            )));
        }
        let computed = StorePath::compute(
            info.kind,
            &info.content_hash,
            info.path.name(),
            &info.references,
        )
        .map_err(|e| ImportError::Mismatch(e.to_string()))?;
        if computed != info.path {
            return Err(ImportError::Mismatch(format!(
                "the metadata names `{shown}`, but its kind, contents, name and references give `{computed}`"
            )));
        }
        if self.is_valid(&info.path) {
            content::remove(tree)?;
            return Ok(self.path_info(&info.path)?);
        }
        // Made read-only and flushed while private, before the lock (see
        // `Store::register`): a power loss must not leave the path valid but empty.
        content::prepare(tree, self.durable())?;
        let _lock = self.lock_for(&info.path)?;
        if self.is_valid(&info.path) {
            content::remove(tree)?;
            return Ok(self.path_info(&info.path)?);
        }
        let dest = self.path_of(&info.path);
        content::remove(&dest)?;
        std::fs::rename(tree, &dest)
            .map_err(|e| StoreError::io("moving into the store", &dest, e))?;
        content::seal(&dest, self.durable())?;
        if self.durable() {
            content::sync_dir(&self.store_dir())?;
        }
        let registered = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let meta = PathInfo {
            registered,
            ..info.clone()
        };
        self.write_path_info(&meta)?;
        Ok(meta)
    }
}
