//! The REAPI (SHA-256) form of store paths, computed once per path and process. Store paths
//! are immutable and named by their content, so an answer never goes stale.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cmod_reapi::proto::build::bazel::remote::execution::v2 as re;
use cmod_reapi::{Blob, BlobSource, Digest, MerkleTree, RootBuilder};
use cmod_schema::StorePath;
use cmod_store::Store;
use prost::Message;

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

    /// Describe it as the output placed at `at` in `result`, and queue its blobs (for a
    /// directory, its `Tree` too) in `blobs`.
    pub fn add_output(&self, at: &str, result: &mut re::ActionResult, blobs: &mut Vec<Blob>) {
        match self {
            Placed::File {
                digest,
                executable,
                path,
            } => {
                blobs.push(Blob {
                    digest: *digest,
                    source: BlobSource::File(path.clone()),
                });
                result.output_files.push(re::OutputFile {
                    path: at.to_string(),
                    digest: Some(digest.to_proto()),
                    is_executable: *executable,
                    ..Default::default()
                });
            }
            Placed::Tree(tree) => {
                let tree_blob = Blob::from_bytes(tree.to_tree().encode_to_vec());
                result.output_directories.push(re::OutputDirectory {
                    path: at.to_string(),
                    tree_digest: Some(tree_blob.digest.to_proto()),
                    ..Default::default()
                });
                blobs.extend(tree.blobs());
                blobs.push(tree_blob);
            }
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

/// Digests of store paths, remembered.
#[derive(Debug, Default)]
pub struct PathDigests {
    known: Mutex<HashMap<StorePath, Placed>>,
}

impl PathDigests {
    /// The REAPI form of `path` in `store`.
    pub fn get(&self, store: &Store, path: &StorePath) -> cmod_reapi::Result<Placed> {
        if let Some(p) = self.lock().get(path) {
            return Ok(p.clone());
        }
        let placed = Placed::of(&store.path_of(path))?;
        self.lock().insert(path.clone(), placed.clone());
        Ok(placed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StorePath, Placed>> {
        // A panic while holding the map leaves it consistent (inserts are single calls).
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
