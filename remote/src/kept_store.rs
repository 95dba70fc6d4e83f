//! The store a worker keeps between actions. An action ships every store path its step
//! reads (`store/<name>` in its input root); on a deep module graph that is the whole
//! transitive set of BMIs, mostly the same from one action to the next. The worker keeps
//! what it received, remembering the digest each path arrived with, and materialises only
//! the paths it does not have with that exact digest: the rest of the input root is not
//! fetched at all. The kept store is private to one worker process (emptied when it
//! starts, and whenever it grows past its size limit) and is only ever read by builders.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cmod_reapi::merkle::Present;
use cmod_reapi::proto::build::bazel::remote::execution::v2 as re;
use cmod_reapi::{Client, Digest};
use cmod_schema::StorePath;
use cmod_store::content::{normalise, remove};
use cmod_store::Store;
use prost::Message;

use crate::action::STORE_DIR;

/// A worker's store of the paths earlier actions shipped.
pub(crate) struct KeptStore {
    dir: PathBuf,
    store: Store,
    /// Each kept path (by name) and the digest it arrived with.
    kept: HashMap<String, Present>,
    /// Bytes kept (as the digests count them).
    bytes: u64,
    /// Past this many bytes the store is emptied before the next action.
    limit: u64,
}

impl KeptStore {
    /// An empty kept store in `dir` (whatever was there is removed: a worker trusts only
    /// what it received itself) holding at most about `limit` bytes; `0` keeps nothing
    /// between actions.
    pub(crate) fn open(dir: &Path, limit: u64) -> Result<KeptStore, String> {
        remove_tree(dir);
        let store = Store::open(dir).map_err(|e| e.to_string())?;
        Ok(KeptStore {
            dir: dir.to_path_buf(),
            store,
            kept: HashMap::new(),
            bytes: 0,
            limit,
        })
    }

    /// The store the builders read.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Empty the store if it has grown past its limit (before an action, so the paths of
    /// the action just run are not removed under it).
    pub(crate) fn trim(&mut self) -> Result<(), String> {
        if self.bytes > self.limit || (self.limit == 0 && !self.kept.is_empty()) {
            *self = KeptStore::open(&self.dir, self.limit)?;
        }
        Ok(())
    }

    /// Whether the input root's entry at `rel` is a kept store path with this digest.
    pub(crate) fn has(&self, rel: &Path, entry: Present) -> bool {
        let mut parts = rel.iter();
        let (Some(top), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        let name = name.to_string_lossy();
        top == STORE_DIR
            && self.kept.get(name.as_ref()) == Some(&entry)
            && StorePath::from_path_str(&name)
                .is_ok_and(|p| self.store.path_of(&p).symlink_metadata().is_ok())
    }

    /// Move the store paths materialised under `shipped` (those not kept already) into the
    /// store, read-only, remembering each one's digest from `listing`.
    pub(crate) fn take(
        &mut self,
        shipped: &Path,
        listing: &HashMap<String, Present>,
    ) -> Result<(), (cmod_reapi::Code, String)> {
        let internal = |why: String| (cmod_reapi::Code::Internal, why);
        let Ok(entries) = std::fs::read_dir(shipped) else {
            return Ok(());
        };
        for entry in entries {
            let entry = entry.map_err(|e| internal(e.to_string()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = StorePath::from_path_str(&name).map_err(|e| {
                (
                    cmod_reapi::Code::InvalidArgument,
                    format!("`{STORE_DIR}/{name}`: {e}"),
                )
            })?;
            let dest = self.store.path_of(&path);
            remove_tree(&dest);
            std::fs::rename(entry.path(), &dest).map_err(|e| internal(e.to_string()))?;
            normalise(&dest).map_err(|e| internal(e.to_string()))?;
            if let Some(present) = listing.get(&name) {
                self.bytes += size_of(present);
                self.kept.insert(name, *present);
            }
        }
        Ok(())
    }
}

/// The entries of the input root's `store/` directory: each store path's name and digest.
pub(crate) fn shipped_paths(
    client: &Client,
    root: &Digest,
) -> Result<HashMap<String, Present>, cmod_reapi::Error> {
    let directory = |d: &Digest| -> Result<re::Directory, cmod_reapi::Error> {
        let bytes = client.read_blob(d)?;
        re::Directory::decode(bytes.as_slice())
            .map_err(|e| client.protocol_error(format!("undecodable Directory {d}: {e}")))
    };
    let digest = |d: &Option<re::Digest>| -> Result<Digest, cmod_reapi::Error> {
        let d = d
            .as_ref()
            .ok_or_else(|| client.protocol_error("a `store/` entry without a digest"))?;
        Digest::from_proto(d)
    };
    let top = directory(root)?;
    let Some(store) = top.directories.iter().find(|d| d.name == STORE_DIR) else {
        return Ok(HashMap::new());
    };
    let store = directory(&digest(&store.digest)?)?;
    let mut listing = HashMap::new();
    for f in &store.files {
        let present = Present::File {
            digest: digest(&f.digest)?,
            executable: f.is_executable,
        };
        listing.insert(f.name.clone(), present);
    }
    for d in &store.directories {
        listing.insert(d.name.clone(), Present::Directory(digest(&d.digest)?));
    }
    Ok(listing)
}

/// What a kept entry counts against the limit: a file's size; a directory's `Directory`
/// message (its files are not listed here, so a directory counts at least a megabyte).
fn size_of(present: &Present) -> u64 {
    match present {
        Present::File { digest, .. } => digest.size(),
        Present::Directory(digest) => digest.size().max(1 << 20),
    }
}

/// Remove `path` and everything under it, read-only directories included (nothing if it
/// is not there; a failure shows when the path is written again).
fn remove_tree(path: &Path) {
    if path.symlink_metadata().is_ok() {
        let _ = remove(path);
    }
}
