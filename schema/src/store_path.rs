//! Store paths: `<hash>-<name>`, where `<hash>` is 160 bits of BLAKE3 in 32 Nix-base32
//! characters (format v1, frozen by golden vectors).
//!
//! The hash never includes the store directory, so the same path has the same name in
//! every store on every machine (invariant 1). It is computed from a *fingerprint*:
//!
//! ```text
//! BLAKE3("cmod-store-path-v1\0" || kind || "\0" || content-hash text || "\0" || name
//!        || for each reference, sorted: "\0" || reference)[..20]
//! ```
//!
//! `kind` is `source` (a file or tree copied in from the user's project or a fetched
//! dependency), `output` (something a derivation produced) or `drv` (a derivation file).
//! Paths are content-addressed: identical contents under the same name are one path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::base32;
use crate::content::ContentHash;

/// Bytes of the store-path hash.
pub const HASH_BYTES: usize = 20;
/// Characters of the store-path hash.
pub const HASH_CHARS: usize = 32;
/// Longest permitted name.
pub const MAX_NAME_LEN: usize = 211;

/// What a store path holds; part of its fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathKind {
    /// Files added from outside the store (package sources).
    Source,
    /// What a build step produced.
    Output,
    /// A derivation (`.drv`).
    Drv,
}

impl PathKind {
    /// The name used in fingerprints and metadata (`source`, `output`, `drv`).
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Source => "source",
            PathKind::Output => "output",
            PathKind::Drv => "drv",
        }
    }
}

/// A store path, identified by its basename `<hash>-<name>` (never by its location).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StorePath {
    hash: [u8; HASH_BYTES],
    name: String,
}

/// Hashed by its digest alone: equal paths have equal digests, and the digest is already
/// uniformly distributed (see [`PathHasher`]).
impl std::hash::Hash for StorePath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(&self.hash);
    }
}

/// A hasher for keys that are store paths: their digest is a BLAKE3 output, so its first
/// eight bytes are already a good hash, and maps of thousands of derivations need no
/// SipHash rounds to look one up. (Anything else written folds in the same way: still a
/// valid hasher, just not a strong one; use it only for store-path keys.)
#[derive(Default, Clone, Copy)]
pub struct PathHasher(u64);

impl std::hash::Hasher for PathHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

/// A hash map keyed by store paths (or references to them), hashed with [`PathHasher`].
pub type PathMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<PathHasher>>;

/// A hash set of store paths (or references to them), hashed with [`PathHasher`].
pub type PathSet<K> = std::collections::HashSet<K, std::hash::BuildHasherDefault<PathHasher>>;

/// Why a string is not a store path or a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorePathError {
    /// The text is not `<hash>-<name>` (shown as given).
    #[error("`{0}` is not a store path (expected `<32 base32 chars>-<name>`)")]
    Malformed(String),
    /// The name part breaks a naming rule.
    #[error("`{name}` is not a valid store path name: {reason}")]
    BadName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
}

/// Check a store path name: 1..=211 characters of `A-Za-z0-9+-._?=`, not starting with `.`.
pub fn validate_name(name: &str) -> Result<(), StorePathError> {
    let bad = |reason| StorePathError::BadName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad("it is longer than 211 characters"));
    }
    if name.starts_with('.') {
        return Err(bad("it starts with `.`"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+-._?=".contains(&b))
    {
        return Err(bad("only A-Z a-z 0-9 + - . _ ? = are allowed"));
    }
    Ok(())
}

/// Turn arbitrary text (a module name, a relative path) into a valid name fragment by
/// replacing every other character with `-`.
pub fn sanitize_name(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+-._=".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_start_matches('.');
    let mut s = if s.is_empty() {
        "_".to_string()
    } else {
        s.to_string()
    };
    s.truncate(MAX_NAME_LEN);
    s
}

impl StorePath {
    /// Compute the path for content `hash` of `kind` under `name` with `references`.
    pub fn compute<'a>(
        kind: PathKind,
        hash: &ContentHash,
        name: &str,
        references: impl IntoIterator<Item = &'a StorePath>,
    ) -> Result<StorePath, StorePathError> {
        validate_name(name)?;
        let mut refs: Vec<String> = references.into_iter().map(|r| r.to_string()).collect();
        refs.sort();
        refs.dedup();
        let mut h = blake3::Hasher::new();
        h.update(b"cmod-store-path-v1\0");
        h.update(kind.as_str().as_bytes());
        h.update(b"\0");
        h.update(hash.to_text().as_bytes());
        h.update(b"\0");
        h.update(name.as_bytes());
        for r in &refs {
            h.update(b"\0");
            h.update(r.as_bytes());
        }
        let mut digest = [0u8; HASH_BYTES];
        digest.copy_from_slice(&h.finalize().as_bytes()[..HASH_BYTES]);
        Ok(StorePath {
            hash: digest,
            name: name.to_string(),
        })
    }

    /// The 32-character hash part.
    pub fn hash_part(&self) -> String {
        self.hash_part_str(&mut [0; HASH_CHARS]).to_string()
    }

    /// The hash part written into `buf`, without allocating.
    pub fn hash_part_str<'b>(&self, buf: &'b mut [u8; HASH_CHARS]) -> &'b str {
        base32::encode_into(&self.hash, buf);
        // The alphabet is ASCII.
        std::str::from_utf8(buf).unwrap_or_default()
    }

    /// Append `<hash>-<name>` to `out` (no temporary string, no formatting machinery).
    pub fn append_to(&self, out: &mut String) {
        let mut buf = [0u8; HASH_CHARS + 1 + MAX_NAME_LEN];
        out.push_str(self.write_to(&mut buf));
    }

    /// The decoded hash part.
    pub fn hash_bytes(&self) -> &[u8; HASH_BYTES] {
        &self.hash
    }

    /// The name part (after `<hash>-`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path with decoded hash part `hash` and name `name` (what [`Self::hash_bytes`]
    /// and [`Self::name`] return), for compact binary records of paths.
    pub fn from_parts(hash: [u8; HASH_BYTES], name: &str) -> Result<StorePath, StorePathError> {
        validate_name(name)?;
        Ok(StorePath {
            hash,
            name: name.to_string(),
        })
    }

    /// Parse either a basename or a full path whose last component is one.
    pub fn from_path_str(s: &str) -> Result<StorePath, StorePathError> {
        let base = s.trim_end_matches('/').rsplit('/').next().unwrap_or(s);
        base.parse()
    }
}

impl StorePath {
    /// `<hash>-<name>` written into `buf` without allocating.
    fn write_to<'b>(&self, buf: &'b mut [u8; HASH_CHARS + 1 + MAX_NAME_LEN]) -> &'b str {
        base32::encode_into(&self.hash, &mut buf[..HASH_CHARS]);
        buf[HASH_CHARS] = b'-';
        // Names are validated on construction (at most MAX_NAME_LEN bytes), but stay
        // within the buffer whatever happens.
        let name = &self.name.as_bytes()[..self.name.len().min(MAX_NAME_LEN)];
        let end = HASH_CHARS + 1 + name.len();
        buf[HASH_CHARS + 1..end].copy_from_slice(name);
        // The alphabet is ASCII and the name is a `str`'s prefix of ASCII characters.
        std::str::from_utf8(&buf[..end]).unwrap_or_default()
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; HASH_CHARS + 1 + MAX_NAME_LEN];
        f.write_str(self.write_to(&mut buf))
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorePath({self})")
    }
}

impl FromStr for StorePath {
    type Err = StorePathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || StorePathError::Malformed(s.to_string());
        if s.len() < HASH_CHARS + 2 || s.as_bytes()[HASH_CHARS] != b'-' {
            return Err(malformed());
        }
        let (hash, name) = (&s.as_bytes()[..HASH_CHARS], &s[HASH_CHARS + 1..]);
        let mut digest = [0u8; HASH_BYTES];
        if !base32::decode_into(hash, &mut digest) {
            return Err(malformed());
        }
        validate_name(name)?;
        Ok(StorePath {
            hash: digest,
            name: name.to_string(),
        })
    }
}

impl Serialize for StorePath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; HASH_CHARS + 1 + MAX_NAME_LEN];
        s.serialize_str(self.write_to(&mut buf))
    }
}

impl<'de> Deserialize<'de> for StorePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = StorePath;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a store path `<hash>-<name>`")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<StorePath, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> ContentHash {
        ContentHash::of_file(false, b"hello\n")
    }

    include!("../golden/golden.rs");

    /// Golden vectors (`schema/golden/vectors.txt`): changing any of these is a format
    /// change. `schema/golden/reference.py` re-derives them.
    #[test]
    fn golden_vectors() {
        let src = StorePath::compute(PathKind::Source, &hello(), "main.cpp", []).unwrap();
        let out =
            StorePath::compute(PathKind::Output, &hello(), "hello-0.1.0-main.o", [&src]).unwrap();
        let drv = StorePath::compute(PathKind::Drv, &hello(), "main.o.drv", []).unwrap();
        assert_golden(&[
            ("store_path.source", src.to_string()),
            ("store_path.output_with_ref", out.to_string()),
            ("store_path.drv", drv.to_string()),
        ]);
        for name in [
            "store_path.source",
            "store_path.output_with_ref",
            "store_path.drv",
        ] {
            let parsed: StorePath = golden(name).parse().unwrap();
            assert_eq!(parsed.to_string(), golden(name), "{name} parses back");
        }
    }

    #[test]
    fn kind_name_and_refs_all_matter() {
        let a = StorePath::compute(PathKind::Source, &hello(), "x", []).unwrap();
        let b = StorePath::compute(PathKind::Output, &hello(), "x", []).unwrap();
        let c = StorePath::compute(PathKind::Source, &hello(), "y", []).unwrap();
        let d = StorePath::compute(PathKind::Source, &hello(), "x", [&c]).unwrap();
        assert_ne!(a.hash_part(), b.hash_part());
        assert_ne!(a.hash_part(), c.hash_part());
        assert_ne!(a.hash_part(), d.hash_part());
        let e = StorePath::compute(PathKind::Source, &hello(), "x", [&c, &c]).unwrap();
        assert_eq!(d, e, "duplicate references collapse");
    }

    #[test]
    fn parse_round_trip() {
        let p = StorePath::compute(PathKind::Source, &hello(), "greet.cppm", []).unwrap();
        let s = p.to_string();
        assert_eq!(s.len(), 32 + 1 + "greet.cppm".len());
        assert_eq!(s.parse::<StorePath>().unwrap(), p);
        assert_eq!(
            StorePath::from_path_str(&format!("/some/store/{s}/")).unwrap(),
            p
        );
    }

    #[test]
    fn invalid_names_and_paths() {
        assert!(validate_name("").is_err());
        assert!(validate_name(".hidden").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("m:p").is_err());
        assert!(validate_name(&"x".repeat(212)).is_err());
        assert!(validate_name("hello-0.1.0-m.p.pcm").is_ok());
        assert!("short-x".parse::<StorePath>().is_err());
        assert!("eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x"
            .parse::<StorePath>()
            .is_err());
    }

    #[test]
    fn sanitize_makes_valid_names() {
        assert_eq!(sanitize_name("m:part"), "m-part");
        assert_eq!(sanitize_name("src/a b.cpp"), "src-a-b.cpp");
        assert_eq!(sanitize_name("..x"), "x");
        assert!(validate_name(&sanitize_name("::")).is_ok());
    }
}
