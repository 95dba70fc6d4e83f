//! Signed fingerprints (format v1, frozen by golden vectors).
//!
//! A signature is an ed25519 signature over a *fingerprint*: a short text that names
//! exactly what is vouched for. Keys and signatures are written Nix-style as
//! `<key name>:<base64>`. Two things are signed:
//!
//! ```text
//! path:  "cmod-path-sig-v1;" store path ";" content hash ";" size ";" refs joined by ","
//! trace: "cmod-trace-sig-v1;" key ";" sandbox ";" drv ";" name "=" path, sorted, joined by ","
//! ```
//!
//! The store path itself already commits to the kind, name and references; the
//! fingerprint adds the content hash and size, so a signature also vouches for the bytes.
//! A trace fingerprint vouches that the resolved derivation with `key`, built in
//! `sandbox` mode, produced those outputs, which makes content-keyed (early-cutoff)
//! lookups safe to substitute. This crate only defines the texts; signing lives in the
//! store.

use std::collections::{BTreeMap, BTreeSet};

use crate::base32;
use crate::content::ContentHash;
use crate::store_path::StorePath;

/// The version tag of path fingerprints.
pub const PATH_SIG_TAG: &str = "cmod-path-sig-v1";
/// The version tag of build-trace fingerprints.
pub const TRACE_SIG_TAG: &str = "cmod-trace-sig-v1";

/// The fingerprint a path signature covers.
pub fn path_fingerprint(
    path: &StorePath,
    content_hash: &ContentHash,
    size: u64,
    references: &BTreeSet<StorePath>,
) -> String {
    let refs: Vec<String> = references.iter().map(|r| r.to_string()).collect();
    format!(
        "{PATH_SIG_TAG};{path};{};{size};{}",
        content_hash.to_text(),
        refs.join(",")
    )
}

/// The fingerprint a build-trace signature covers. The key is written in base32 (as in
/// trace file names).
pub fn trace_fingerprint(
    key: &ContentHash,
    sandbox: &str,
    drv: &StorePath,
    outputs: &BTreeMap<String, StorePath>,
) -> String {
    let outs: Vec<String> = outputs.iter().map(|(n, p)| format!("{n}={p}")).collect();
    format!(
        "{TRACE_SIG_TAG};{};{sandbox};{drv};{}",
        base32::encode(&key.0),
        outs.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store_path::PathKind;

    include!("../golden/golden.rs");

    /// Golden vectors (`schema/golden/vectors.txt`): changing either text is a format
    /// change (bump the tag). `schema/golden/reference.py` re-derives them.
    #[test]
    fn golden_fingerprints() {
        let hello = ContentHash::of_file(false, b"hello\n");
        let src = StorePath::compute(PathKind::Source, &hello, "main.cpp", []).unwrap();
        let out =
            StorePath::compute(PathKind::Output, &hello, "hello-0.1.0-main.o", [&src]).unwrap();
        let key = ContentHash::of_file(false, b"key");
        let drv = StorePath::compute(PathKind::Drv, &hello, "main.o.drv", []).unwrap();
        let outputs = BTreeMap::from([("obj".to_string(), out.clone())]);
        assert_golden(&[
            (
                "signature.path",
                path_fingerprint(&out, &hello, 6, &BTreeSet::from([src.clone()])),
            ),
            (
                "signature.path.source",
                path_fingerprint(&src, &hello, 6, &BTreeSet::new()),
            ),
            (
                "signature.trace",
                trace_fingerprint(&key, "full", &drv, &outputs),
            ),
        ]);
    }

    #[test]
    fn references_are_sorted_and_everything_counts() {
        let h = ContentHash::of_file(false, b"x");
        let a = StorePath::compute(PathKind::Source, &h, "a", []).unwrap();
        let b = StorePath::compute(PathKind::Source, &h, "b", []).unwrap();
        let p = StorePath::compute(PathKind::Output, &h, "p", [&a, &b]).unwrap();
        let both = BTreeSet::from([b.clone(), a.clone()]);
        let f = path_fingerprint(&p, &h, 1, &both);
        assert!(
            f.ends_with(&format!(";{},{}", a.clone().min(b.clone()), a.max(b))),
            "{f}"
        );
        assert_ne!(f, path_fingerprint(&p, &h, 2, &both), "size counts");
        assert_ne!(
            f,
            path_fingerprint(&p, &ContentHash::of_file(true, b"x"), 1, &both),
            "content hash counts"
        );
    }
}
