//! The REAPI (SHA-256) form of store paths, computed once per path and process. Store paths
//! are immutable and named by their content, so an answer never goes stale.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cmod_reapi::{BlobSource, Digest, MerkleTree, RootBuilder};
use cmod_schema::StorePath;
use cmod_store::Store;

/// A store path (or a file inside one) in REAPI form.
#[derive(Debug, Clone)]
pub enum Placed {
    /// A regular file.
    File {
        /// Its content's digest.
        digest: Digest,
        /// Whether it is executable.
        executable: bool,
        /// Where it is on disk.
        path: PathBuf,
    },
    /// A directory.
    Tree(Arc<MerkleTree>),
}

impl Placed {
    /// Place it at `at` in `root`.
    pub fn add_to(&self, root: &mut RootBuilder, at: &str) -> cmod_reapi::Result<()> {
        match self {
            Placed::File {
                digest,
                executable,
                path,
            } => root.add_file(at, *digest, *executable, BlobSource::File(path.clone())),
            Placed::Tree(tree) => root.add_tree(at, tree),
        }
    }

    /// Of the file or directory at `path`.
    pub fn of(path: &Path) -> cmod_reapi::Result<Placed> {
        let meta = std::fs::metadata(path).map_err(|e| cmod_reapi::Error::io(path, e))?;
        if meta.is_dir() {
            return Ok(Placed::Tree(Arc::new(MerkleTree::from_dir(path)?)));
        }
        Ok(Placed::File {
            digest: Digest::of_file(path)?,
            executable: meta.permissions().mode() & 0o111 != 0,
            path: path.to_path_buf(),
        })
    }
}

/// Digests of store paths (or of files inside them, `sub`), remembered.
#[derive(Debug, Default)]
pub struct PathDigests {
    known: Mutex<HashMap<(StorePath, Option<String>), Placed>>,
}

impl PathDigests {
    /// The REAPI form of `path` (or of `sub` inside it) in `store`.
    pub fn get(
        &self,
        store: &Store,
        path: &StorePath,
        sub: Option<&str>,
    ) -> cmod_reapi::Result<Placed> {
        let key = (path.clone(), sub.map(str::to_string));
        if let Some(p) = self.lock().get(&key) {
            return Ok(p.clone());
        }
        let mut on_disk = store.path_of(path);
        if let Some(sub) = sub {
            on_disk = on_disk.join(sub);
        }
        let placed = Placed::of(&on_disk)?;
        self.lock().insert(key, placed.clone());
        Ok(placed)
    }

    /// Remember that `path` has the REAPI form `placed` (computed from its contents).
    pub fn remember(&self, path: &StorePath, placed: Placed) {
        self.lock().insert((path.clone(), None), placed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(StorePath, Option<String>), Placed>> {
        // A panic while holding the map leaves it consistent (inserts are single calls).
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
