//! Merkle trees of `Directory` messages: an input root built from a directory on disk, and an
//! `ActionResult`'s outputs materialised back to disk.
//!
//! REAPI's canonical form: in each `Directory`, files, directories and symlinks are each sorted
//! by name (byte order of the UTF-8 names), no node properties are set, and the message is
//! encoded in field order (what prost does), so equal trees have equal digests everywhere.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use prost::Message;

use crate::cas::{Blob, BlobSource};
use crate::client::Client;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::proto::build::bazel::remote::execution::v2 as re;

/// A directory tree in REAPI form: the root's digest, every `Directory` by digest, and the
/// files its nodes name.
#[derive(Debug, Clone)]
pub struct MerkleTree {
    root: Digest,
    directories: BTreeMap<Digest, re::Directory>,
    files: BTreeMap<Digest, BlobSource>,
}

impl MerkleTree {
    /// Builds the tree of the directory `dir` (which becomes the root): regular files with their
    /// executable bit (any `x` bit of the mode), subdirectories, and relative symlinks (kept as
    /// symlinks). Absolute symlinks, non-UTF-8 names and special files are refused.
    pub fn from_dir(dir: &Path) -> Result<MerkleTree> {
        let mut tree = MerkleTree::empty();
        tree.root = tree.add_dir(dir)?;
        Ok(tree)
    }

    /// A tree with no directories yet (the assembler fills it).
    pub(crate) fn empty() -> MerkleTree {
        MerkleTree {
            root: Digest::EMPTY,
            directories: BTreeMap::new(),
            files: BTreeMap::new(),
        }
    }

    pub(crate) fn set_root(&mut self, root: Digest) {
        self.root = root;
    }

    pub(crate) fn add_directory(&mut self, digest: Digest, dir: re::Directory) {
        self.directories.insert(digest, dir);
    }

    pub(crate) fn add_file_source(&mut self, digest: Digest, source: BlobSource) {
        self.files.entry(digest).or_insert(source);
    }

    /// The `Directory` with digest `digest`, if it is part of the tree.
    pub(crate) fn directory(&self, digest: &Digest) -> Option<&re::Directory> {
        self.directories.get(digest)
    }

    /// Where the content of the file with digest `digest` is, if the tree names it.
    pub(crate) fn file_source(&self, digest: &Digest) -> Option<BlobSource> {
        self.files.get(digest).cloned()
    }

    /// The digest of the root `Directory`: an Action's `input_root_digest`.
    pub fn root_digest(&self) -> Digest {
        self.root
    }

    /// The root `Directory`.
    pub fn root_directory(&self) -> &re::Directory {
        // Every digest the tree hands out was inserted when it was computed.
        &self.directories[&self.root]
    }

    /// Every blob of the tree (directories encoded, files by path), each once: what to upload.
    pub fn blobs(&self) -> Vec<Blob> {
        let dirs = self.directories.iter().map(|(d, dir)| Blob {
            digest: *d,
            source: BlobSource::Bytes(dir.encode_to_vec()),
        });
        let files = self.files.iter().map(|(d, source)| Blob {
            digest: *d,
            source: source.clone(),
        });
        dirs.chain(files).collect()
    }

    /// The tree as a REAPI `Tree` (root and every other directory once, in digest order): what
    /// an `ActionResult`'s `OutputDirectory` points to.
    pub fn to_tree(&self) -> re::Tree {
        re::Tree {
            root: Some(self.root_directory().clone()),
            children: self
                .directories
                .iter()
                .filter(|(d, _)| **d != self.root)
                .map(|(_, dir)| dir.clone())
                .collect(),
        }
    }

    fn add_dir(&mut self, dir: &Path) -> Result<Digest> {
        let mut node = re::Directory::default();
        let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let path = entry.path();
            let name = entry
                .file_name()
                .into_string()
                .map_err(|_| Error::UnsupportedInput {
                    path: path.clone(),
                    reason: "REAPI names are UTF-8".to_string(),
                })?;
            let meta = fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
            let kind = meta.file_type();
            if kind.is_dir() {
                let digest = self.add_dir(&path)?;
                node.directories.push(re::DirectoryNode {
                    name,
                    digest: Some(digest.to_proto()),
                });
            } else if kind.is_file() {
                let digest = Digest::of_file(&path)?;
                self.files
                    .entry(digest)
                    .or_insert_with(|| BlobSource::File(path.clone()));
                node.files.push(re::FileNode {
                    name,
                    digest: Some(digest.to_proto()),
                    is_executable: meta.permissions().mode() & 0o111 != 0,
                    node_properties: None,
                });
            } else if kind.is_symlink() {
                let target = fs::read_link(&path).map_err(|e| Error::io(&path, e))?;
                let target = symlink_target(&path, &target)?;
                node.symlinks.push(re::SymlinkNode {
                    name,
                    target,
                    node_properties: None,
                });
            } else {
                return Err(Error::UnsupportedInput {
                    path,
                    reason: "not a file, directory or symlink".to_string(),
                });
            }
        }
        sort_directory(&mut node);
        let digest = Digest::of_bytes(&node.encode_to_vec());
        self.directories.insert(digest, node);
        Ok(digest)
    }
}

/// Sorts a `Directory`'s nodes by name, as REAPI requires (byte order of UTF-8 names).
pub fn sort_directory(dir: &mut re::Directory) {
    dir.files.sort_by(|a, b| a.name.cmp(&b.name));
    dir.directories.sort_by(|a, b| a.name.cmp(&b.name));
    dir.symlinks.sort_by(|a, b| a.name.cmp(&b.name));
}

fn symlink_target(path: &Path, target: &Path) -> Result<String> {
    let unsupported = |reason: &str| Error::UnsupportedInput {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if target.is_absolute() {
        return Err(unsupported(
            "absolute symlinks are not portable to other machines",
        ));
    }
    target
        .to_str()
        .map(str::to_string)
        .ok_or_else(|| unsupported("the symlink's target is not UTF-8"))
}

/// A file to write while materialising: where, from which blob, executable or not.
struct FileToWrite {
    path: PathBuf,
    digest: Digest,
    executable: bool,
}

/// An entry of an input root that the one materialising it may already have in place
/// (see [`Client::materialise_root_except`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Present {
    /// A file with this content and executable bit.
    File {
        /// Its content's digest.
        digest: Digest,
        /// Whether it is executable.
        executable: bool,
    },
    /// A directory with this `Directory` digest.
    Directory(Digest),
}

/// Whether the entry at a path (relative to the root) is already in place as described:
/// then it is neither fetched nor written.
pub type Have<'a> = &'a dyn Fn(&Path, Present) -> bool;

/// What materialising lists before writing: files, symlinks, and what to leave out.
struct Plan<'a> {
    files: Vec<FileToWrite>,
    symlinks: Vec<(PathBuf, String)>,
    /// The root the paths `have` is asked about are relative to.
    root: &'a Path,
    have: Have<'a>,
}

impl Plan<'_> {
    fn has(&self, at: &Path, entry: Present) -> bool {
        at.strip_prefix(self.root)
            .is_ok_and(|rel| (self.have)(rel, entry))
    }
}

impl Client {
    /// Writes `result`'s output files, directories and symlinks under `dest` (created if
    /// needed), every blob verified against its digest. Output paths must be relative and stay
    /// inside `dest`; symlinks are created last, so nothing is written through them.
    pub fn materialise_outputs(&self, result: &re::ActionResult, dest: &Path) -> Result<()> {
        fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
        let mut plan = Plan {
            files: Vec::new(),
            symlinks: Vec::new(),
            root: dest,
            have: &|_, _| false,
        };
        for f in &result.output_files {
            plan.files.push(FileToWrite {
                path: self.output_path(dest, &f.path)?,
                digest: self.node_digest(&f.digest, &f.path)?,
                executable: f.is_executable,
            });
        }
        for d in &result.output_directories {
            let root = self.output_path(dest, &d.path)?;
            let tree_digest = self.node_digest(&d.tree_digest, &d.path)?;
            let tree = re::Tree::decode(self.read_blob(&tree_digest)?.as_slice())
                .map_err(|e| self.protocol_error(format!("undecodable Tree {tree_digest}: {e}")))?;
            let children: BTreeMap<Digest, &re::Directory> = tree
                .children
                .iter()
                .map(|c| (Digest::of_bytes(&c.encode_to_vec()), c))
                .collect();
            let top = tree
                .root
                .as_ref()
                .ok_or_else(|| self.protocol_error(format!("Tree {tree_digest} has no root")))?;
            self.plan_directory(top, &root, &children, &mut plan)?;
        }
        // The deprecated lists are what older servers fill; a link in both is made twice, harmlessly.
        #[allow(deprecated)]
        let deprecated_links = result
            .output_file_symlinks
            .iter()
            .chain(&result.output_directory_symlinks);
        for s in result.output_symlinks.iter().chain(deprecated_links) {
            plan.symlinks
                .push((self.output_path(dest, &s.path)?, s.target.clone()));
        }
        self.write_files(&plan.files)?;
        make_symlinks(plan.symlinks)
    }

    /// Writes the input root `root` (a `Directory` digest) under `dest` (created if needed):
    /// every `Directory` fetched level by level, every blob verified against its digest;
    /// symlinks are created last. What a worker does before running an action.
    pub fn materialise_root(&self, root: &Digest, dest: &Path) -> Result<()> {
        self.materialise_root_except(root, dest, &|_, _| false)
    }

    /// [`Client::materialise_root`], leaving out every entry that `have` says is already
    /// in place at its path (a worker's store paths kept from earlier actions): neither
    /// its blobs nor, for a directory, its `Directory` messages are fetched.
    pub fn materialise_root_except(
        &self,
        root: &Digest,
        dest: &Path,
        have: Have<'_>,
    ) -> Result<()> {
        fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
        let mut directories: BTreeMap<Digest, re::Directory> = BTreeMap::new();
        let mut wanted = vec![(*root, PathBuf::new())];
        while !wanted.is_empty() {
            let digests: Vec<Digest> = wanted.iter().map(|(d, _)| *d).collect();
            let fetched = self.download(&digests)?;
            let mut next: Vec<(Digest, PathBuf)> = Vec::new();
            for (digest, rel) in &wanted {
                let bytes = fetched.get(digest).ok_or_else(|| {
                    self.protocol_error(format!("directory {digest} is not in the CAS"))
                })?;
                let dir = re::Directory::decode(bytes.as_slice()).map_err(|e| {
                    self.protocol_error(format!("undecodable Directory {digest}: {e}"))
                })?;
                for child in &dir.directories {
                    let d = self.node_digest(&child.digest, &child.name)?;
                    let at = rel.join(self.node_name(&child.name)?);
                    let known = directories.contains_key(&d) || next.iter().any(|(n, _)| *n == d);
                    if !known && !have(&at, Present::Directory(d)) {
                        next.push((d, at));
                    }
                }
                directories.insert(*digest, dir);
            }
            next.retain(|(d, _)| !directories.contains_key(d));
            wanted = next;
        }
        let children: BTreeMap<Digest, &re::Directory> =
            directories.iter().map(|(d, dir)| (*d, dir)).collect();
        let mut plan = Plan {
            files: Vec::new(),
            symlinks: Vec::new(),
            root: dest,
            have,
        };
        self.plan_directory(children[root], dest, &children, &mut plan)?;
        self.write_files(&plan.files)?;
        make_symlinks(plan.symlinks)
    }

    /// Creates the directory `dir` of a `Tree` at `at` and lists its files and symlinks,
    /// leaving out what the plan already has.
    fn plan_directory(
        &self,
        dir: &re::Directory,
        at: &Path,
        children: &BTreeMap<Digest, &re::Directory>,
        plan: &mut Plan<'_>,
    ) -> Result<()> {
        fs::create_dir_all(at).map_err(|e| Error::io(at, e))?;
        for f in &dir.files {
            let path = at.join(self.node_name(&f.name)?);
            let digest = self.node_digest(&f.digest, &f.name)?;
            let executable = f.is_executable;
            if !plan.has(&path, Present::File { digest, executable }) {
                plan.files.push(FileToWrite {
                    path,
                    digest,
                    executable,
                });
            }
        }
        for s in &dir.symlinks {
            plan.symlinks
                .push((at.join(self.node_name(&s.name)?), s.target.clone()));
        }
        for d in &dir.directories {
            let digest = self.node_digest(&d.digest, &d.name)?;
            let path = at.join(self.node_name(&d.name)?);
            if plan.has(&path, Present::Directory(digest)) {
                continue;
            }
            let child = children.get(&digest).ok_or_else(|| {
                self.protocol_error(format!(
                    "directory {} ({digest}) is not in its Tree",
                    d.name
                ))
            })?;
            self.plan_directory(child, &path, children, plan)?;
        }
        Ok(())
    }

    /// Downloads and writes `files`: small blobs fetched together, large ones streamed.
    fn write_files(&self, files: &[FileToWrite]) -> Result<()> {
        let limit = self.batch_limit()?;
        // Blobs that fit a batch are fetched together; larger ones stream to their file.
        let small: Vec<Digest> = files
            .iter()
            .map(|f| f.digest)
            .filter(|d| d.size() + crate::cas::PER_BLOB_OVERHEAD <= limit)
            .collect();
        let fetched = self.download(&small)?;
        for f in files {
            create_parent(&f.path)?;
            match fetched.get(&f.digest) {
                Some(bytes) => crate::cas::write_file_atomically(&f.path, f.executable, |file| {
                    std::io::Write::write_all(file, bytes).map_err(|e| Error::io(&f.path, e))
                })?,
                None => self.download_to_file(&f.digest, &f.path, f.executable)?,
            }
        }
        Ok(())
    }

    fn node_digest(&self, digest: &Option<re::Digest>, name: &str) -> Result<Digest> {
        let d = digest
            .as_ref()
            .ok_or_else(|| self.protocol_error(format!("output `{name}` has no digest")))?;
        Digest::from_proto(d)
    }

    /// A single path component from a `Directory` node.
    fn node_name<'a>(&self, name: &'a str) -> Result<&'a str> {
        let mut parts = Path::new(name).components();
        match (parts.next(), parts.next()) {
            (Some(Component::Normal(_)), None) if !name.contains('/') => Ok(name),
            _ => Err(self.protocol_error(format!("unsafe name `{name}` in a Directory"))),
        }
    }

    /// `dest` joined with an output path, which must be relative and not climb out.
    fn output_path(&self, dest: &Path, path: &str) -> Result<PathBuf> {
        let p = Path::new(path);
        let safe = !path.is_empty()
            && p.components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !safe {
            return Err(self.protocol_error(format!("unsafe output path `{path}`")));
        }
        Ok(dest.join(p))
    }
}

/// Creates `symlinks` (path, target), replacing what is there: the last step of
/// materialising, so nothing is written through them.
fn make_symlinks(symlinks: Vec<(PathBuf, String)>) -> Result<()> {
    for (path, target) in symlinks {
        create_parent(&path)?;
        let _ = fs::remove_file(&path);
        std::os::unix::fs::symlink(&target, &path).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent).map_err(|e| Error::io(parent, e)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, content: &[u8], mode: u32) {
        fs::write(path, content).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// The tree of `reapi/tests/merkle_golden.py`, which derives its digests independently
    /// (hashlib and a hand-written protobuf encoder).
    fn golden_tree(root: &Path) {
        write(&root.join("b.txt"), b"bee\n", 0o644);
        write(&root.join("a.sh"), b"#!/bin/sh\necho a\n", 0o755);
        write(&root.join("B"), b"", 0o600);
        fs::create_dir(root.join("sub")).unwrap();
        fs::create_dir(root.join("empty")).unwrap();
        write(&root.join("sub/z"), b"z", 0o644);
        write(&root.join("sub/C"), b"upper", 0o644);
        write(&root.join("sub/\u{e9}t\u{e9}"), b"summer", 0o644);
        std::os::unix::fs::symlink("b.txt", root.join("link")).unwrap();
    }

    #[test]
    fn root_digest_matches_the_independent_derivation() {
        let dir = tempfile::tempdir().unwrap();
        golden_tree(dir.path());
        let tree = MerkleTree::from_dir(dir.path()).unwrap();
        assert_eq!(
            tree.root_digest().to_string(),
            "4eaba6a6af52b2302594c4394f9f931cfbb28d5e2963844cb799add5fcc1f332/402"
        );
        let root = tree.root_directory();
        let names: Vec<&str> = root.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["B", "a.sh", "b.txt"]);
        assert!(root.files[1].is_executable && !root.files[2].is_executable);
        let sub = root.directories.iter().find(|d| d.name == "sub").unwrap();
        assert_eq!(
            Digest::from_proto(sub.digest.as_ref().unwrap())
                .unwrap()
                .to_string(),
            "b3a16398044dc6978190b1cf9198555e09d26d6511f7ddcd6f23e0835923d0c1/229"
        );
        // The empty directory is the empty blob.
        let empty = root.directories.iter().find(|d| d.name == "empty").unwrap();
        assert_eq!(
            Digest::from_proto(empty.digest.as_ref().unwrap()).unwrap(),
            Digest::EMPTY
        );
        // Blobs: 3 directories (root, sub, empty) + 6 distinct file contents (B is empty).
        assert_eq!(tree.blobs().len(), 3 + 6);
        assert_eq!(tree.to_tree().children.len(), 2);
    }

    #[test]
    fn the_digest_depends_on_content_and_executable_bit_only() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        golden_tree(a.path());
        golden_tree(b.path());
        let digest = |p: &Path| MerkleTree::from_dir(p).unwrap().root_digest();
        assert_eq!(digest(a.path()), digest(b.path()));
        fs::set_permissions(b.path().join("b.txt"), fs::Permissions::from_mode(0o744)).unwrap();
        assert_ne!(digest(a.path()), digest(b.path()));
    }

    #[test]
    fn absolute_symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("abs")).unwrap();
        let err = MerkleTree::from_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("absolute symlinks"), "{err}");
    }
}
