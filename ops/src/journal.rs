//! The input journal of a realisation (see `cmod_evaluator::journal`): which journal a
//! request answers from, what is saved in it after a realisation that evaluated, and
//! what a journal that holds answers with (the memo's key and the workspace root).

use std::path::{Path, PathBuf};

use cmod_evaluator::journal::{self, Recorded};
use cmod_evaluator::lockfile::lock_path;
use cmod_schema::ContentHash;
use cmod_store::memo::Memo;
use cmod_store::Store;

use crate::project::Project;

/// Everything that selects and evaluates the targets of a realisation, which its journal
/// is keyed by: the same request finds the same journal, any other request another one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalKey<'a> {
    /// What the command does with the targets: `realise`, or `run` and its binary.
    pub purpose: &'a str,
    /// The package directory (made absolute here: one store serves every package).
    pub package_dir: &'a Path,
    /// The manifest path as given, if one was.
    pub manifest_path: Option<&'a Path>,
    /// The targets as given.
    pub targets: &'a [String],
    /// The release profile.
    pub release: bool,
    /// No network.
    pub offline: bool,
    /// The workspace members selected.
    pub select: &'a [String],
    /// The sandbox mode, as given.
    pub sandbox: &'a str,
    /// The other sandbox modes whose outputs are accepted, as given.
    pub accepted: &'a [String],
}

/// Where the journal of `key` lives in `store`; `None` when the package directory
/// cannot be resolved (the full path then reports why).
pub fn journal_file(store: &Store, key: &JournalKey<'_>) -> Option<PathBuf> {
    // Absolute, so each package keeps its own journal: the directory may be relative. (A
    // relative one is safe anyway: the evaluation resolved it, and the journal records
    // what it resolved to.)
    let dir = key.package_dir.canonicalize().ok()?;
    let mut accepted = key.accepted.to_vec();
    accepted.sort();
    let parts = [
        "cmod-realise-journal-v2".to_string(),
        key.purpose.to_string(),
        dir.display().to_string(),
        store.store_dir().display().to_string(),
        format!("{:?}", key.manifest_path),
        format!("{:?}", key.targets),
        format!(
            "release={} offline={} select={:?}",
            key.release, key.offline, key.select
        ),
        key.sandbox.to_string(),
        accepted.join(","),
    ];
    Some(journal::file_for(&store.cache_dir(), &parts))
}

/// What a journal that holds answers with: the key of the memo its realisation wrote,
/// and the workspace root it evaluated.
pub fn recall(file: &Path) -> Option<(ContentHash, PathBuf)> {
    journal::recall(file).as_deref().and_then(decode)
}

/// After a realisation that evaluated (with `memo_key` and `memo`): journal what the
/// evaluation read (`recorded`), with the lockfile, compile database and editor-schema
/// copy as they are now, unless the no-op could not be answered from the memo alone
/// (evaluation warnings to show again, ignored compile-database settings to warn about,
/// compiler warnings to replay): then any journal in `file` is removed (so it is never
/// taken for this realisation), and the result is `Ok(false)`. `Err` says why the reads
/// could not be journaled (the journal is removed then too).
pub fn save(
    file: &Path,
    mut recorded: Recorded,
    project: &Project,
    memo_key: &ContentHash,
    memo: &Memo,
) -> Result<bool, String> {
    let packages = &project.eval.packages;
    let answerable = project.eval.warnings.is_empty()
        && cmod_evaluator::compdb::ignored_settings(packages).is_empty()
        && memo.derivations.iter().all(|d| d.warnings == 0);
    if !answerable {
        let _ = std::fs::remove_file(file);
        return Ok(false);
    }
    recorded.add(journal::content_of(&lock_path(&project.eval)));
    // The compile database this realisation refreshed (from the evaluation alone, so
    // while the journal holds it stays as written, unless someone else changes it).
    if let Some(compdb) = cmod_evaluator::compdb::configured_output(packages) {
        recorded.add(journal::content_of(&compdb));
    }
    recorded.add(journal::content_of(
        &packages
            .workspace_root
            .join(cmod_schema::MANIFEST_SCHEMA_FILE),
    ));
    recorded.save(file, &encode(memo_key, &packages.workspace_root))?;
    Ok(true)
}

/// The payload: the memo's key, then the workspace root.
fn encode(key: &ContentHash, workspace_root: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = key.0.to_vec();
    out.extend_from_slice(workspace_root.as_os_str().as_bytes());
    out
}

fn decode(payload: &[u8]) -> Option<(ContentHash, PathBuf)> {
    use std::os::unix::ffi::OsStrExt;
    let (key, root) = payload.split_at_checked(32)?;
    let root = PathBuf::from(std::ffi::OsStr::from_bytes(root));
    Some((ContentHash(key.try_into().ok()?), root))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload keeps the memo key and the root, whatever bytes the root has; a
    /// payload too short for a key is no answer.
    #[test]
    fn the_payload_round_trips() {
        let key = ContentHash::of_file(false, b"memo");
        let root = Path::new("/work/a b/\u{e9}t\u{e9}");
        assert_eq!(decode(&encode(&key, root)), Some((key, root.to_path_buf())));
        assert_eq!(decode(&[0; 31]), None);
    }

    /// Every part of the request selects its own journal; the order of the accepted
    /// modes does not.
    #[test]
    fn each_part_of_the_request_has_its_own_journal() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("store")).unwrap();
        let pkg = t.path().join("pkg");
        let other = t.path().join("other");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        let (targets, select) = (vec!["app".to_string()], vec!["core".to_string()]);
        let accepted = vec!["off".to_string(), "landlock".to_string()];
        let base = JournalKey {
            purpose: "realise",
            package_dir: &pkg,
            manifest_path: None,
            targets: &[],
            release: false,
            offline: false,
            select: &[],
            sandbox: "full",
            accepted: &[],
        };
        let file = |k: &JournalKey<'_>| journal_file(&store, k).unwrap();
        let reordered: Vec<String> = accepted.iter().rev().cloned().collect();
        let variants = [
            JournalKey {
                purpose: "run app",
                ..base.clone()
            },
            JournalKey {
                package_dir: &other,
                ..base.clone()
            },
            JournalKey {
                manifest_path: Some(Path::new("pkg")),
                ..base.clone()
            },
            JournalKey {
                targets: &targets,
                ..base.clone()
            },
            JournalKey {
                release: true,
                ..base.clone()
            },
            JournalKey {
                offline: true,
                ..base.clone()
            },
            JournalKey {
                select: &select,
                ..base.clone()
            },
            JournalKey {
                sandbox: "landlock",
                ..base.clone()
            },
            JournalKey {
                accepted: &accepted,
                ..base.clone()
            },
        ];
        let mut seen = std::collections::BTreeSet::from([file(&base)]);
        for v in &variants {
            assert!(seen.insert(file(v)), "{v:?} shares a journal");
        }
        let same = JournalKey {
            accepted: &reordered,
            ..base.clone()
        };
        assert_eq!(
            file(&same),
            file(&JournalKey {
                accepted: &accepted,
                ..base.clone()
            })
        );
        // A package directory that does not exist has no journal.
        let missing = JournalKey {
            package_dir: &t.path().join("nowhere"),
            ..base
        };
        assert_eq!(journal_file(&store, &missing), None);
    }
}
