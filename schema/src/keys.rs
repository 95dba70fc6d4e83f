//! The keys that name cmod's records beyond store paths and derivations: the scan key
//! (shared between machines in signed scan entries), the scan shape key, the toolchain
//! identity and the realisation memo key. Each starts with its own version tag; the
//! byte layouts are written in docs/FORMATS.md and frozen by golden vectors that
//! `schema/golden/reference.py` re-derives.

use std::path::PathBuf;

use crate::content::ContentHash;

/// The scan key (`cmod-scan-v1`) of the unit at package-relative `rel` with content
/// hash `hash`, scanned with `args` by the toolchain whose identity's text form is
/// `identity`: the name of its scan entry.
pub fn scan_key(identity: &str, rel: &str, hash: &ContentHash, args: &[String]) -> ContentHash {
    let mut h = blake3::Hasher::new();
    h.update(b"cmod-scan-v1\0");
    h.update(identity.as_bytes());
    h.update(b"\0");
    h.update(rel.as_bytes());
    h.update(b"\0");
    h.update(hash.to_text().as_bytes());
    for a in args {
        h.update(b"\0");
        h.update(a.as_bytes());
    }
    ContentHash(*h.finalize().as_bytes())
}

/// Whether a source line can matter to a dependency scan: a preprocessor line (or a
/// digraph or trigraph one) or one mentioning `import` or `module`.
fn relevant(line: &[u8]) -> bool {
    let has = |needle: &[u8]| line.windows(needle.len()).any(|w| w == needle);
    line.contains(&b'#') || has(b"%:") || has(b"??=") || has(b"import") || has(b"module")
}

/// The scan shape key (`cmod-scan-shape-v1`, 64 hex digits) of the unit at `rel` with
/// source `text`, scanned with `args` by toolchain `identity`: its relevant lines (and
/// the lines continuing them) with their numbers, and its line count. Equal keys mean
/// the scanner would find the same things (given the same headers).
pub fn scan_shape_key(identity: &str, rel: &str, args: &[String], text: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"cmod-scan-shape-v1\0");
    h.update(identity.as_bytes());
    h.update(b"\0");
    h.update(rel.as_bytes());
    for a in args {
        h.update(b"\0");
        h.update(a.as_bytes());
    }
    let mut continued = false;
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let continues = line.ends_with(b"\\");
        if continued || continues || relevant(line) {
            h.update(b"\n");
            h.update(&(n as u64).to_le_bytes());
            h.update(line);
        }
        continued = continues;
    }
    // Units differing only in trailing text still differ in length of the line list.
    h.update(&(text.split(|&b| b == b'\n').count() as u64).to_le_bytes());
    h.finalize().to_hex().to_string()
}

/// What a toolchain identity covers: the driver's `--version` output, the standard
/// library, every hashed file and tree (path and content hash), and the directories
/// a build step may see.
pub struct ToolchainParts<'a> {
    /// `clang++ --version`, verbatim.
    pub version_output: &'a str,
    /// `libc++` or `libstdc++`.
    pub stdlib: &'a str,
    /// Hashed files, in order.
    pub files: &'a [(PathBuf, ContentHash)],
    /// Hashed trees, in order.
    pub trees: &'a [(PathBuf, ContentHash)],
    /// The closure a build step sees, in order.
    pub closure: &'a [PathBuf],
}

/// The toolchain identity (`cmod-toolchain-v1`) of `parts`.
pub fn toolchain_identity(parts: &ToolchainParts<'_>) -> ContentHash {
    let mut h = blake3::Hasher::new();
    h.update(b"cmod-toolchain-v1\0");
    h.update(parts.version_output.as_bytes());
    h.update(b"\0");
    h.update(parts.stdlib.as_bytes());
    for (label, list) in [("file", parts.files), ("tree", parts.trees)] {
        for (path, hash) in list {
            h.update(format!("\0{label}\0{}\0{}", path.display(), hash).as_bytes());
        }
    }
    for c in parts.closure {
        h.update(format!("\0closure\0{}", c.display()).as_bytes());
    }
    ContentHash(*h.finalize().as_bytes())
}

/// The realisation memo key (`cmod-realise-memo-v1`): the evaluation `fingerprint` and
/// whatever else selects the realisation (sandbox mode, target names), each
/// length-prefixed.
pub fn memo_key(fingerprint: &ContentHash, parts: &[&str]) -> ContentHash {
    let mut h = blake3::Hasher::new();
    h.update(b"cmod-realise-memo-v1\0");
    h.update(&fingerprint.0);
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    ContentHash(*h.finalize().as_bytes())
}
