//! The **content hash** of a store path (format v1, frozen by golden vectors).
//!
//! A path is a tree of regular files, directories and symlinks. Its hash is a Merkle hash
//! with BLAKE3, so every file can be hashed in parallel and a directory only combines its
//! children's digests:
//!
//! ```text
//! file(exec, bytes)  = BLAKE3("cmod-file-v1\0"    || exec:u8 || len:u64le || bytes)
//! symlink(target)    = BLAKE3("cmod-symlink-v1\0" || len:u64le || target)
//! dir(entries)       = BLAKE3("cmod-dir-v1\0"     || count:u64le ||
//!                             for each entry, sorted by name bytes:
//!                               len(name):u64le || name || digest(child))
//! ```
//!
//! Timestamps, owners and permission bits other than "executable" are not part of it.
//! The text form is `blake3:` followed by the 52-character Nix base32 of the 32-byte digest.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::base32;

/// A 256-bit BLAKE3 content digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

const PREFIX: &str = "blake3:";
/// Length of the text form: the prefix and 52 base32 characters.
const TEXT_LEN: usize = PREFIX.len() + base32::encoded_len(32);

impl ContentHash {
    /// The hash of a regular file with the given executable bit and contents.
    pub fn of_file(executable: bool, bytes: &[u8]) -> ContentHash {
        let mut h = FileHasher::new(executable, bytes.len() as u64);
        h.update(bytes);
        h.finish()
    }

    /// The hash of a symlink with the given target (stored verbatim).
    pub fn of_symlink(target: &[u8]) -> ContentHash {
        let mut h = blake3::Hasher::new();
        h.update(b"cmod-symlink-v1\0");
        h.update(&(target.len() as u64).to_le_bytes());
        h.update(target);
        ContentHash(*h.finalize().as_bytes())
    }

    /// The hash of a directory from its entries; they are sorted here, so callers may pass
    /// them in any order. Names must be unique.
    pub fn of_dir<'a>(entries: impl IntoIterator<Item = (&'a [u8], ContentHash)>) -> ContentHash {
        let mut entries: Vec<(&[u8], ContentHash)> = entries.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut h = blake3::Hasher::new();
        h.update(b"cmod-dir-v1\0");
        h.update(&(entries.len() as u64).to_le_bytes());
        for (name, child) in entries {
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name);
            h.update(&child.0);
        }
        ContentHash(*h.finalize().as_bytes())
    }

    /// The hash of the tree formed by `files` (`/`-separated relative paths with their
    /// file hashes), as if they were laid out on disk: equal to hashing that directory.
    pub fn of_files<'a>(files: impl IntoIterator<Item = (&'a str, ContentHash)>) -> ContentHash {
        #[derive(Default)]
        struct Dir<'a> {
            files: Vec<(&'a str, ContentHash)>,
            dirs: std::collections::BTreeMap<&'a str, Dir<'a>>,
        }
        fn hash(d: &Dir<'_>) -> ContentHash {
            let subdirs: Vec<(&[u8], ContentHash)> = d
                .dirs
                .iter()
                .map(|(n, sub)| (n.as_bytes(), hash(sub)))
                .collect();
            ContentHash::of_dir(
                d.files
                    .iter()
                    .map(|(n, h)| (n.as_bytes(), *h))
                    .chain(subdirs),
            )
        }
        let mut root = Dir::default();
        for (path, h) in files {
            let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            let Some(name) = parts.pop() else { continue };
            let mut dir = &mut root;
            for p in parts {
                dir = dir.dirs.entry(p).or_default();
            }
            dir.files.push((name, h));
        }
        hash(&root)
    }

    /// The text form, `blake3:<52 base32 chars>`.
    pub fn to_text(&self) -> String {
        let mut buf = [0u8; TEXT_LEN];
        self.write_text(&mut buf).to_string()
    }

    /// The text form written into `buf` without allocating.
    fn write_text<'b>(&self, buf: &'b mut [u8; TEXT_LEN]) -> &'b str {
        buf[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
        base32::encode_into(&self.0, &mut buf[PREFIX.len()..]);
        // The prefix and the alphabet are ASCII.
        std::str::from_utf8(buf).unwrap_or_default()
    }
}

/// Streaming hasher for large files: feed the contents, then [`FileHasher::finish`].
pub struct FileHasher {
    inner: blake3::Hasher,
    expected: u64,
    seen: u64,
}

impl FileHasher {
    /// `len` is the file's length in bytes; it is part of the encoding, and [`finish`]
    /// panics in debug builds if a different number of bytes was fed.
    ///
    /// [`finish`]: FileHasher::finish
    pub fn new(executable: bool, len: u64) -> FileHasher {
        let mut inner = blake3::Hasher::new();
        inner.update(b"cmod-file-v1\0");
        inner.update(&[executable as u8]);
        inner.update(&len.to_le_bytes());
        FileHasher {
            inner,
            expected: len,
            seen: 0,
        }
    }

    /// Feed the next bytes of the file's contents.
    pub fn update(&mut self, bytes: &[u8]) {
        self.seen += bytes.len() as u64;
        if bytes.len() >= 128 * 1024 {
            self.inner.update_rayon(bytes);
        } else {
            self.inner.update(bytes);
        }
    }

    /// Bytes fed so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Whether exactly the announced length was fed.
    pub fn complete(&self) -> bool {
        self.seen == self.expected
    }

    /// The file's content hash. Debug builds panic if fewer or more bytes than announced were fed.
    pub fn finish(self) -> ContentHash {
        debug_assert!(self.complete(), "file length changed while hashing");
        ContentHash(*self.inner.finalize().as_bytes())
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; TEXT_LEN];
        f.write_str(self.write_text(&mut buf))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

/// Why a content-hash string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a content hash (expected `blake3:` and 52 base32 characters)")]
pub struct ParseContentHashError(pub String);

impl FromStr for ContentHash {
    type Err = ParseContentHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseContentHashError(s.to_string());
        let rest = s.strip_prefix(PREFIX).ok_or_else(bad)?;
        let mut out = [0u8; 32];
        if !base32::decode_into(rest.as_bytes(), &mut out) {
            return Err(bad());
        }
        Ok(ContentHash(out))
    }
}

impl Serialize for ContentHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; TEXT_LEN];
        s.serialize_str(self.write_text(&mut buf))
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ContentHash;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a content hash `blake3:<52 base32 characters>`")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ContentHash, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    include!("../golden/golden.rs");

    /// Golden vectors (`schema/golden/vectors.txt`): changing any of these is a format
    /// change (bump `cmod-*-v1`). `schema/golden/reference.py` re-derives them
    /// independently from the spec.
    #[test]
    fn golden_vectors() {
        let tree = ContentHash::of_dir([
            (&b"b.txt"[..], ContentHash::of_file(false, b"hello\n")),
            (&b"a"[..], ContentHash::of_dir([])),
            (&b"link"[..], ContentHash::of_symlink(b"b.txt")),
        ]);
        assert_golden(&[
            (
                "content.file.empty",
                ContentHash::of_file(false, b"").to_text(),
            ),
            (
                "content.file.hello",
                ContentHash::of_file(false, b"hello\n").to_text(),
            ),
            (
                "content.file.hello_exec",
                ContentHash::of_file(true, b"hello\n").to_text(),
            ),
            (
                "content.symlink",
                ContentHash::of_symlink(b"../x").to_text(),
            ),
            ("content.tree", tree.to_text()),
        ]);
    }

    #[test]
    fn virtual_trees_hash_like_directories() {
        let hello = ContentHash::of_file(false, b"hello\n");
        let nested = ContentHash::of_files([
            ("src/a.cpp", hello),
            ("src/sub/b.h", hello),
            ("cmod.toml", hello),
        ]);
        let by_hand = ContentHash::of_dir([
            (&b"cmod.toml"[..], hello),
            (
                &b"src"[..],
                ContentHash::of_dir([
                    (&b"a.cpp"[..], hello),
                    (&b"sub"[..], ContentHash::of_dir([(&b"b.h"[..], hello)])),
                ]),
            ),
        ]);
        assert_eq!(nested, by_hand);
    }

    #[test]
    fn exec_bit_and_entry_order_matter_correctly() {
        assert_ne!(
            ContentHash::of_file(false, b"x"),
            ContentHash::of_file(true, b"x")
        );
        let a = ContentHash::of_dir([
            (&b"x"[..], ContentHash::of_file(false, b"1")),
            (&b"y"[..], ContentHash::of_file(false, b"2")),
        ]);
        let b = ContentHash::of_dir([
            (&b"y"[..], ContentHash::of_file(false, b"2")),
            (&b"x"[..], ContentHash::of_file(false, b"1")),
        ]);
        assert_eq!(a, b, "input order must not matter");
        let c = ContentHash::of_dir([
            (&b"x"[..], ContentHash::of_file(false, b"2")),
            (&b"y"[..], ContentHash::of_file(false, b"1")),
        ]);
        assert_ne!(a, c, "swapping contents between names must change the hash");
    }

    #[test]
    fn streaming_equals_one_shot() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut h = FileHasher::new(false, data.len() as u64);
        for chunk in data.chunks(70_000) {
            h.update(chunk);
        }
        assert_eq!(h.finish(), ContentHash::of_file(false, &data));
    }

    #[test]
    fn text_round_trip_and_errors() {
        let h = ContentHash::of_file(false, b"abc");
        assert_eq!(h.to_text().parse::<ContentHash>().unwrap(), h);
        assert!("sha256:abc".parse::<ContentHash>().is_err());
        assert!("blake3:abc".parse::<ContentHash>().is_err());
    }
}
