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
    /// The derivation's `.drv` path.
    pub drv: StorePath,
    /// The derivation's name.
    pub name: String,
    /// Its outputs: output name → store path.
    pub outputs: BTreeMap<String, StorePath>,
    /// How many compiler warnings its build printed (replayed while it is fresh); absent
    /// when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warnings: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The record of one successful realisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memo {
    /// Format version of the memo file.
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
    cmod_schema::keys::memo_key(fingerprint, parts)
}

impl Memo {
    /// A memo of the current format version.
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
            .filter(|m| self.memo_outputs_valid(key, m))
    }

    /// The memo under `key` as recorded, its outputs not yet checked: it may be trusted
    /// only once [`Store::memo_outputs_valid`] says so (a caller can prepare its report
    /// meanwhile).
    pub fn memo_unchecked(&self, key: &ContentHash) -> Option<Memo> {
        let bytes = std::fs::read(self.memo_file(key)).ok()?;
        let memo: Memo = serde_json::from_slice(&bytes).ok()?;
        (memo.version == MEMO_VERSION).then_some(memo)
    }

    /// Whether every output the memo under `key` names is still valid.
    ///
    /// Paths are added to and removed from the store only as entries of its metadata and
    /// store directories, and each such change sets those directories' modification and
    /// change times to the current time. So once every output was found valid, it still
    /// is while both directories keep the times they had then: the check records them
    /// (`<key>.valid` beside the memo) and the next no-op compares two `stat`s instead of
    /// looking up thousands of paths. As git does for racily clean files, times within
    /// [`SETTLED`] of the check are not recorded: a removal in the same clock tick could
    /// leave them unchanged.
    pub fn memo_outputs_valid(&self, key: &ContentHash, memo: &Memo) -> bool {
        let stamp = DirStamp::of(self);
        let file = self
            .dir("memo")
            .join(format!("{}.valid", base32::encode(&key.0)));
        if stamp.is_some() && std::fs::read(&file).ok() == stamp.as_ref().map(DirStamp::bytes) {
            return true;
        }
        let valid = self.all_valid(
            memo.targets
                .iter()
                .map(|(_, p)| p)
                .chain(memo.derivations.iter().flat_map(|d| d.outputs.values())),
        );
        if let Some(stamp) = stamp.filter(|s| valid && s.settled()) {
            // Only a shortcut: a stamp that cannot be written is checked in full next time.
            let _ = write_atomic(&file, &stamp.bytes(), false);
        }
        valid
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

/// How long the directories must have been unchanged before their times are recorded
/// (well above the coarse clock tick file times come from).
const SETTLED: std::time::Duration = std::time::Duration::from_millis(50);

/// The modification and change times of the metadata and store directories.
struct DirStamp([i64; 8]);

impl DirStamp {
    fn of(store: &Store) -> Option<DirStamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(store.dir("meta")).ok()?;
        let paths = std::fs::metadata(store.store_dir()).ok()?;
        Some(DirStamp([
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
            paths.mtime(),
            paths.mtime_nsec(),
            paths.ctime(),
            paths.ctime_nsec(),
        ]))
    }

    /// Whether every time is at least [`SETTLED`] in the past.
    fn settled(&self) -> bool {
        let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) else {
            return false;
        };
        let limit = now.saturating_sub(SETTLED);
        self.0.chunks(2).all(|t| {
            u64::try_from(t[0]).is_ok_and(|secs| {
                let nanos = u32::try_from(t[1]).unwrap_or(0);
                std::time::Duration::new(secs, nanos) < limit
            })
        })
    }

    fn bytes(&self) -> Vec<u8> {
        let mut text = String::from("cmod-memo-valid-v1");
        for t in self.0 {
            text.push(' ');
            text.push_str(&t.to_string());
        }
        text.into_bytes()
    }
}

/// The warnings in a builder's output (what a memo entry's `warnings` counts): clang's
/// `file:line:col: warning: ...` lines.
pub fn warning_count(log: &str) -> u32 {
    let n = log.lines().filter(|l| l.contains(": warning: ")).count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmod_schema::PathKind;
    use std::collections::BTreeSet;

    /// A store holding an `app` built from an `app.o`, and the memo (written, under its
    /// key) of that realisation.
    fn realised_app(t: &tempfile::TempDir) -> (Store, StorePath, StorePath, ContentHash, Memo) {
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
                warnings: 0,
            }],
            KeepList::new(&[out.clone(), obj.clone()].into()).unwrap(),
        );
        s.write_memo(&key, &memo).unwrap();
        (s, out, obj, key, memo)
    }

    #[test]
    fn a_memo_is_trusted_only_while_its_outputs_are_valid() {
        let t = tempfile::tempdir().unwrap();
        let (s, _, obj, key, memo) = realised_app(&t);
        assert_eq!(s.memo(&key), Some(memo));
        assert_eq!(s.memo(&ContentHash::of_file(false, b"other")), None);
        s.delete_path(&obj).unwrap();
        assert_eq!(
            s.memo(&key),
            None,
            "an intermediate output is gone: realise for real"
        );
    }

    /// Once the outputs were found valid with the store's directories settled, the
    /// check is the directories' times; removing a path by hand changes them, and the
    /// memo is no longer trusted.
    #[test]
    fn the_recorded_stamp_stands_only_while_nothing_is_removed() {
        let t = tempfile::tempdir().unwrap();
        let (s, out, _, key, memo) = realised_app(&t);
        let stamp = s
            .dir("memo")
            .join(format!("{}.valid", base32::encode(&key.0)));
        // Checked right after the store changed: valid, but not recorded (racy).
        assert!(s.memo_outputs_valid(&key, &memo));
        assert!(!stamp.exists());
        std::thread::sleep(SETTLED * 2);
        assert!(s.memo_outputs_valid(&key, &memo));
        assert!(stamp.exists(), "a settled store is recorded");
        assert!(s.memo_outputs_valid(&key, &memo));
        // Contents removed by hand, metadata left: the directory's times change.
        crate::content::remove(&s.path_of(&out)).unwrap();
        assert!(!s.memo_outputs_valid(&key, &memo));
        assert_eq!(s.memo(&key), None);
    }

    #[test]
    fn warnings_are_clangs_warning_lines() {
        let log = "src/a.cpp:3:9: warning: unused variable 'x' [-Wunused-variable]\n    3 |     int x;\n      |         ^\nIn file included from src/a.cpp:1:\nsrc/a.cpp:4:1: warning: no return [-Wreturn-type]\nsrc/a.cpp:2:1: note: declared here\n2 warnings generated.\n";
        assert_eq!(warning_count(log), 2);
        assert_eq!(
            warning_count("src/a.cpp:1:1: error: expected ';'\n1 error generated.\n"),
            0
        );
        assert_eq!(warning_count(""), 0);
    }
}
