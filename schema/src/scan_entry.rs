//! Scan entries (format v1): what scanning found in one translation unit, shared through
//! binary caches like build-trace entries.
//!
//! Scanning a unit (which module it provides, which it imports, which package headers it
//! includes) is a pure function of the toolchain identity, the unit's package-relative
//! path, its content hash and its preprocessor flags: the evaluator's scan-cache key
//! hashes exactly those. A scan entry maps that key to the result, so a machine with an
//! empty store can take a trusted machine's scan instead of running `clang-scan-deps`
//! (the result is used only if every header it lists has the same hash locally, the rule
//! the local scan cache follows too). The signed fingerprint is
//!
//! ```text
//! "cmod-scan-sig-v1;" key ";" blake3 of the result's canonical JSON
//! ```
//!
//! with the key and the result hash in `blake3:` + base32 form. The result is kept as
//! JSON: its shape belongs to the evaluator, and this crate only needs its bytes.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::canonical;
use crate::content::ContentHash;

/// The format version of scan entries.
pub const SCAN_ENTRY_VERSION: u32 = 1;
/// The version tag of scan-entry fingerprints.
pub const SCAN_SIG_TAG: &str = "cmod-scan-sig-v1";

/// One scan entry (`scan/<key>.json` in a binary cache).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanEntry {
    /// Format version ([`SCAN_ENTRY_VERSION`]).
    pub version: u32,
    /// The scan-cache key: toolchain identity, unit path, content hash and flags.
    pub key: ContentHash,
    /// What the scan found, as the evaluator writes it.
    pub result: serde_json::Value,
    /// Detached signatures `keyname:base64` over [`ScanEntry::fingerprint`].
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub signatures: BTreeSet<String>,
}

impl ScanEntry {
    /// A new, unsigned entry.
    pub fn new(key: ContentHash, result: serde_json::Value) -> ScanEntry {
        ScanEntry {
            version: SCAN_ENTRY_VERSION,
            key,
            result,
            signatures: BTreeSet::new(),
        }
    }

    /// The fingerprint its signatures cover (`None` if the result has no canonical
    /// encoding, e.g. a float).
    pub fn fingerprint(&self) -> Option<String> {
        let bytes = canonical::to_vec(&self.result).ok()?;
        let result = ContentHash(*blake3::hash(&bytes).as_bytes());
        Some(scan_fingerprint(&self.key, &result))
    }
}

/// The fingerprint a scan-entry signature covers.
pub fn scan_fingerprint(key: &ContentHash, result_hash: &ContentHash) -> String {
    format!("{SCAN_SIG_TAG};{};{}", key.to_text(), result_hash.to_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    include!("../golden/golden.rs");

    /// Golden vector (`schema/golden/vectors.txt`): changing the text is a format change
    /// (bump the tag). `schema/golden/reference.py` re-derives it.
    #[test]
    fn golden_fingerprint() {
        let key = ContentHash::of_file(false, b"key");
        let e = ScanEntry::new(
            key,
            serde_json::json!({"requires": ["b", "a"], "provides": ["m", true]}),
        );
        assert_golden(&[("signature.scan", e.fingerprint().unwrap())]);
        // Key order in the result does not matter (canonical JSON); values do.
        let same = ScanEntry::new(
            key,
            serde_json::from_str(r#"{"provides":["m",true],"requires":["b","a"]}"#).unwrap(),
        );
        assert_eq!(same.fingerprint(), e.fingerprint());
        let other = ScanEntry::new(key, serde_json::json!({"requires": ["a", "b"]}));
        assert_ne!(other.fingerprint(), e.fingerprint());
        let floats = ScanEntry::new(key, serde_json::json!({"x": 1.5}));
        assert_eq!(floats.fingerprint(), None);
    }

    #[test]
    fn entries_are_strict() {
        let text = r#"{"version":1,"key":"blake3:16k052fq0x2lp2h45kdyzrdzp57j6qa7m3gv632ipafblhbc1131","result":{}}"#;
        let e: ScanEntry = serde_json::from_str(text).unwrap();
        assert!(e.signatures.is_empty());
        assert!(serde_json::from_str::<ScanEntry>(&text.replace("}}", "},\"mirror\":1}")).is_err());
    }
}
