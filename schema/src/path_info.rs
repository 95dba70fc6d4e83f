//! Path metadata (format v1): what the store knows about one valid store path.
//!
//! A store path is valid exactly when its metadata file exists; the metadata is written
//! last, atomically, after the contents are complete and normalised.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::content::ContentHash;
use crate::store_path::{PathKind, StorePath};

/// The version written into, and required of, path metadata.
pub const PATH_INFO_VERSION: u32 = 1;

/// Metadata of one store path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathInfo {
    /// Format version ([`PATH_INFO_VERSION`]).
    pub version: u32,
    /// The store path described.
    pub path: StorePath,
    /// What the path holds (a source, an output or a derivation).
    pub kind: PathKind,
    /// Content hash of the path's tree, which `verify` recomputes.
    pub content_hash: ContentHash,
    /// Total bytes of regular-file contents.
    pub size: u64,
    /// Other store paths whose hashes occur in the contents (runtime references).
    pub references: BTreeSet<StorePath>,
    /// The derivation that produced it, for outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deriver: Option<StorePath>,
    /// Seconds since the Unix epoch when it was registered.
    pub registered: u64,
    /// The sandbox mode that built it (`full`, `landlock`, `off`), for outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// The Landlock ABI level that was enforced while building it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock_abi: Option<u8>,
    /// Detached signatures `keyname:base64`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub signatures: BTreeSet<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let h = ContentHash::of_file(false, b"x");
        let p = StorePath::compute(PathKind::Output, &h, "x.o", []).unwrap();
        let info = PathInfo {
            version: PATH_INFO_VERSION,
            path: p.clone(),
            kind: PathKind::Output,
            content_hash: h,
            size: 1,
            references: BTreeSet::new(),
            deriver: None,
            registered: 0,
            sandbox: Some("full".into()),
            landlock_abi: Some(7),
            signatures: BTreeSet::new(),
        };
        let text = serde_json::to_string(&info).unwrap();
        assert!(!text.contains("signatures"), "{text}");
        let back: PathInfo = serde_json::from_str(&text).unwrap();
        assert_eq!(back, info);
        let mut v = serde_json::to_value(&info).unwrap();
        v["extra"] = serde_json::json!(true);
        assert!(serde_json::from_value::<PathInfo>(v).is_err());
    }
}
