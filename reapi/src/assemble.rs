//! Input roots assembled from pieces: files known by digest, blobs in memory and whole trees,
//! each placed at a relative path. A build step's inputs live in many places (store paths,
//! generated files), so its input root is put together rather than read from one directory;
//! the result is the same [`MerkleTree`] (same canonical form, same digest) that
//! [`MerkleTree::from_dir`] gives for a directory holding those files.

use std::collections::BTreeMap;

use prost::Message;

use crate::cas::BlobSource;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::merkle::{sort_directory, MerkleTree};
use crate::proto::build::bazel::remote::execution::v2 as re;

/// One entry of a directory being assembled.
#[derive(Debug, Clone)]
enum Entry {
    File {
        digest: Digest,
        executable: bool,
        source: BlobSource,
    },
    Symlink(String),
    Dir(BTreeMap<String, Entry>),
}

/// Builds an input root piece by piece; [`RootBuilder::finish`] gives its [`MerkleTree`].
#[derive(Debug, Clone, Default)]
pub struct RootBuilder {
    root: BTreeMap<String, Entry>,
}

impl RootBuilder {
    /// An empty root.
    pub fn new() -> RootBuilder {
        RootBuilder::default()
    }

    /// Places a file with content `digest` (read from `source` when uploaded) at `at`.
    pub fn add_file(
        &mut self,
        at: &str,
        digest: Digest,
        executable: bool,
        source: BlobSource,
    ) -> Result<()> {
        let entry = Entry::File {
            digest,
            executable,
            source,
        };
        self.place(at, entry)
    }

    /// Places a file holding `bytes` at `at`.
    pub fn add_bytes(&mut self, at: &str, bytes: Vec<u8>, executable: bool) -> Result<()> {
        let digest = Digest::of_bytes(&bytes);
        self.add_file(at, digest, executable, BlobSource::Bytes(bytes))
    }

    /// Places the whole of `tree` as the directory `at` (merged with whatever else is placed
    /// under `at`; a file placed twice must be the same file).
    pub fn add_tree(&mut self, at: &str, tree: &MerkleTree) -> Result<()> {
        let entry = tree_entry(tree, tree.root_directory())?;
        self.place(at, entry)
    }

    /// The assembled root.
    pub fn finish(self) -> MerkleTree {
        let mut tree = MerkleTree::empty();
        let root = seal(self.root, &mut tree);
        tree.set_root(root);
        tree
    }

    fn place(&mut self, at: &str, entry: Entry) -> Result<()> {
        let parts: Vec<&str> = at
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        let bad = |reason: &str| Error::UnsupportedInput {
            path: at.into(),
            reason: reason.to_string(),
        };
        let Some((last, dirs)) = parts.split_last() else {
            return Err(bad("an input needs a relative path inside the root"));
        };
        if parts.contains(&"..") {
            return Err(bad("`..` would leave the input root"));
        }
        let mut here = &mut self.root;
        for part in dirs {
            let next = here
                .entry((*part).to_string())
                .or_insert_with(|| Entry::Dir(BTreeMap::new()));
            here = match next {
                Entry::Dir(children) => children,
                _ => return Err(bad("a parent directory is already a file")),
            };
        }
        merge(here, last, entry).map_err(|why| bad(&why))
    }
}

/// Puts `entry` at `name` in `dir`: directories merge, equal files are the same file.
fn merge(
    dir: &mut BTreeMap<String, Entry>,
    name: &str,
    entry: Entry,
) -> std::result::Result<(), String> {
    let Some(existing) = dir.get_mut(name) else {
        dir.insert(name.to_string(), entry);
        return Ok(());
    };
    match (existing, entry) {
        (Entry::Dir(have), Entry::Dir(new)) => {
            for (n, e) in new {
                merge(have, &n, e)?;
            }
            Ok(())
        }
        (
            Entry::File {
                digest, executable, ..
            },
            Entry::File {
                digest: d,
                executable: x,
                ..
            },
        ) if *digest == d && *executable == x => Ok(()),
        (Entry::Symlink(a), Entry::Symlink(b)) if *a == b => Ok(()),
        _ => Err(format!("two different inputs are placed at `{name}`")),
    }
}

/// The entries of `dir` (a directory of `tree`), recursively.
fn tree_entry(tree: &MerkleTree, dir: &re::Directory) -> Result<Entry> {
    let mut out = BTreeMap::new();
    for f in &dir.files {
        let digest = proto_digest(&f.digest, &f.name)?;
        let source = tree.file_source(&digest).ok_or_else(|| missing(&f.name))?;
        out.insert(
            f.name.clone(),
            Entry::File {
                digest,
                executable: f.is_executable,
                source,
            },
        );
    }
    for s in &dir.symlinks {
        out.insert(s.name.clone(), Entry::Symlink(s.target.clone()));
    }
    for d in &dir.directories {
        let digest = proto_digest(&d.digest, &d.name)?;
        let child = tree.directory(&digest).ok_or_else(|| missing(&d.name))?;
        out.insert(d.name.clone(), tree_entry(tree, child)?);
    }
    Ok(Entry::Dir(out))
}

fn proto_digest(d: &Option<re::Digest>, name: &str) -> Result<Digest> {
    Digest::from_proto(d.as_ref().ok_or_else(|| missing(name))?)
}

fn missing(name: &str) -> Error {
    Error::UnsupportedInput {
        path: name.into(),
        reason: "not found in the tree it belongs to".to_string(),
    }
}

/// Encodes `entries` (and everything below) into `tree`; the digest of their `Directory`.
fn seal(entries: BTreeMap<String, Entry>, tree: &mut MerkleTree) -> Digest {
    let mut node = re::Directory::default();
    for (name, entry) in entries {
        match entry {
            Entry::File {
                digest,
                executable,
                source,
            } => {
                tree.add_file_source(digest, source);
                node.files.push(re::FileNode {
                    name,
                    digest: Some(digest.to_proto()),
                    is_executable: executable,
                    node_properties: None,
                });
            }
            Entry::Symlink(target) => node.symlinks.push(re::SymlinkNode {
                name,
                target,
                node_properties: None,
            }),
            Entry::Dir(children) => {
                let digest = seal(children, tree);
                node.directories.push(re::DirectoryNode {
                    name,
                    digest: Some(digest.to_proto()),
                });
            }
        }
    }
    sort_directory(&mut node);
    let digest = Digest::of_bytes(&node.encode_to_vec());
    tree.add_directory(digest, node);
    digest
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn an_assembled_root_has_the_digest_of_the_same_files_on_disk() {
        let disk = tempfile::tempdir().unwrap();
        let root = disk.path();
        fs::create_dir_all(root.join("src/m")).unwrap();
        fs::create_dir_all(root.join("inc/sub")).unwrap();
        fs::write(root.join("src/m/a.cppm"), b"export module a;\n").unwrap();
        fs::write(root.join("inc/x.h"), b"#pragma once\n").unwrap();
        fs::write(root.join("inc/sub/y.h"), b"int y;\n").unwrap();
        fs::write(root.join("run"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(root.join("run"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(root.join("map"), b"-fmodule-file=a=a.pcm\n").unwrap();
        let expected = MerkleTree::from_dir(root).unwrap();

        let mut b = RootBuilder::new();
        let a = root.join("src/m/a.cppm");
        b.add_file(
            "src/m/a.cppm",
            Digest::of_file(&a).unwrap(),
            false,
            BlobSource::File(a),
        )
        .unwrap();
        b.add_tree("inc", &MerkleTree::from_dir(&root.join("inc")).unwrap())
            .unwrap();
        b.add_bytes("run", b"#!/bin/sh\n".to_vec(), true).unwrap();
        b.add_bytes("./map", b"-fmodule-file=a=a.pcm\n".to_vec(), false)
            .unwrap();
        // The same file placed twice (a header reached through two inputs) is one file.
        b.add_bytes("inc/sub/y.h", b"int y;\n".to_vec(), false)
            .unwrap();
        let built = b.finish();
        assert_eq!(built.root_digest(), expected.root_digest());
        assert_eq!(built.blobs().len(), expected.blobs().len());
    }

    #[test]
    fn conflicting_or_escaping_placements_are_refused() {
        let mut b = RootBuilder::new();
        b.add_bytes("a/b", b"one".to_vec(), false).unwrap();
        let two = b.add_bytes("a/b", b"two".to_vec(), false).unwrap_err();
        assert!(two.to_string().contains("two different inputs"), "{two}");
        let under_file = b.add_bytes("a/b/c", b"x".to_vec(), false).unwrap_err();
        assert!(
            under_file.to_string().contains("already a file"),
            "{under_file}"
        );
        let up = b.add_bytes("../x", b"x".to_vec(), false).unwrap_err();
        assert!(up.to_string().contains("leave the input root"), "{up}");
        assert!(b.add_bytes("", b"x".to_vec(), false).is_err());
    }
}
