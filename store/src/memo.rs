//! Realisation memos: what a whole `realise` produced, keyed by a fingerprint of
//! everything its derivations were computed from (the caller's choice of key).
//!
//! A memo is only a shortcut. It is trusted exactly while every output it names is still
//! valid: then realising the same derivations again could only find them all fresh, so
//! a no-op needs neither to emit derivations nor to resolve them. Anything else (a
//! missing output, a different key) falls back to the full realisation.

use std::collections::BTreeMap;

use cmod_schema::{base32, ContentHash, StorePath};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::layout::Store;
use crate::registry::write_atomic;
use crate::roots::KeepList;

const MEMO_VERSION: u32 = 2;

/// One realised derivation, as the memo remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoEntry {
    pub drv: StorePath,
    pub name: String,
    pub outputs: BTreeMap<String, StorePath>,
}

/// The record of one successful realisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memo {
    pub version: u32,
    /// Target name → output path, in the order the targets were requested.
    pub targets: Vec<(String, StorePath)>,
    /// Every derivation of the realisation.
    pub derivations: Vec<MemoEntry>,
    /// What the targets' out-links keep alive.
    pub keep: KeepList,
}

/// The key of a memo: a fingerprint of everything the derivations were computed from,
/// plus whatever else selects the realisation (sandbox mode, target names).
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

impl Memo {
    pub fn new(
        targets: Vec<(String, StorePath)>,
        derivations: Vec<MemoEntry>,
        keep: KeepList,
    ) -> Memo {
        Memo {
            version: MEMO_VERSION,
            targets,
            derivations,
            keep,
        }
    }
}

impl Store {
    fn memo_file(&self, key: &ContentHash) -> std::path::PathBuf {
        self.dir("memo")
            .join(format!("{}.json", base32::encode(&key.0)))
    }

    /// The memo under `key`, if there is one and every output it names is still valid.
    pub fn memo(&self, key: &ContentHash) -> Option<Memo> {
        self.memo_unchecked(key)
            .filter(|m| self.memo_outputs_valid(m))
    }

    /// The memo under `key` as recorded, its outputs not yet checked: it may be trusted
    /// only once [`Store::memo_outputs_valid`] says so (a caller can prepare its report
    /// meanwhile).
    pub fn memo_unchecked(&self, key: &ContentHash) -> Option<Memo> {
        let bytes = std::fs::read(self.memo_file(key)).ok()?;
        let memo: Memo = serde_json::from_slice(&bytes).ok()?;
        (memo.version == MEMO_VERSION).then_some(memo)
    }

    /// Whether every output `memo` names is still valid.
    pub fn memo_outputs_valid(&self, memo: &Memo) -> bool {
        self.all_valid(
            memo.targets
                .iter()
                .map(|(_, p)| p)
                .chain(memo.derivations.iter().flat_map(|d| d.outputs.values())),
        )
    }

    fn latest_file(&self, slot: &ContentHash) -> std::path::PathBuf {
        self.dir("memo")
            .join(format!("latest-{}", base32::encode(&slot.0)))
    }

    /// The memo last recorded for `slot` (one project's realisation of some targets in
    /// one mode; see [`Store::set_latest_memo`]), unchecked. Its derivations are what a
    /// realisation after an edit can reuse.
    pub fn latest_memo(&self, slot: &ContentHash) -> Option<Memo> {
        let text = std::fs::read_to_string(self.latest_file(slot)).ok()?;
        let key: ContentHash = text.trim().parse().ok()?;
        self.memo_unchecked(&key)
    }

    /// Remember that the memo under `key` is the latest one of `slot`.
    pub fn set_latest_memo(&self, slot: &ContentHash, key: &ContentHash) -> Result<(), StoreError> {
        let file = self.latest_file(slot);
        let text = key.to_text();
        if std::fs::read_to_string(&file).is_ok_and(|old| old == text) {
            return Ok(());
        }
        write_atomic(&file, text.as_bytes(), false)
    }

    /// Record `memo` under `key`.
    pub fn write_memo(&self, key: &ContentHash, memo: &Memo) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(memo).map_err(|e| StoreError::CorruptMetadata {
            path: "memo".into(),
            reason: e.to_string(),
        })?;
        write_atomic(&self.memo_file(key), &bytes, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmod_schema::PathKind;
    use std::collections::BTreeSet;

    #[test]
    fn a_memo_is_trusted_only_while_its_outputs_are_valid() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let none = BTreeSet::new();
        let out = s
            .add_bytes(PathKind::Output, "app", b"binary", &none)
            .unwrap();
        let obj = s
            .add_bytes(PathKind::Output, "app.o", b"object", &none)
            .unwrap();
        let drv = s.add_bytes(PathKind::Drv, "app.drv", b"{}", &none).unwrap();
        let key = ContentHash::of_file(false, b"fingerprint");
        let memo = Memo::new(
            vec![("app".into(), out.clone())],
            vec![MemoEntry {
                drv,
                name: "app".into(),
                outputs: BTreeMap::from([("obj".into(), obj.clone())]),
            }],
            KeepList::new(&[out.clone(), obj.clone()].into()).unwrap(),
        );
        s.write_memo(&key, &memo).unwrap();
        assert_eq!(s.memo(&key), Some(memo));
        assert_eq!(s.memo(&ContentHash::of_file(false, b"other")), None);
        s.delete_path(&obj).unwrap();
        assert_eq!(
            s.memo(&key),
            None,
            "an intermediate output is gone: realise for real"
        );
    }
}
