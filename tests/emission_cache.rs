//! The emission cache (evaluator/src/derive/emission_cache.rs) takes the `.drv` paths of
//! unchanged steps from the previous emission: whatever it holds, the derivations
//! emitted with it are exactly those emitted without it, after source edits, flag edits,
//! and with a damaged record.

mod common;

use std::path::{Path, PathBuf};

use common::{failure, Sandbox};
use serde_json::Value;

/// `cmod eval --json`: every derivation, by `.drv` path.
fn derivations(s: &Sandbox, dir: &Path) -> Value {
    let out = s.cmod(dir, &["eval", "--json"]);
    assert!(out.status.success(), "{}", failure(&out).1);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The records in the store's cache.
fn records(s: &Sandbox) -> Vec<PathBuf> {
    let dir = s.store().join("v1/cache/emission-v1");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    found.sort();
    found
}

/// The derivations without any record (none is left behind to read).
fn uncached(s: &Sandbox, dir: &Path) -> Value {
    for r in records(s) {
        std::fs::remove_file(r).unwrap();
    }
    derivations(s, dir)
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "`{from}` not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn emitting_from_the_record_gives_the_derivations_emitting_afresh_gives() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let first = derivations(&s, &dir);
    assert_eq!(records(&s).len(), 1, "the emission recorded its paths");
    assert!(first.as_object().unwrap().len() >= 10);
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let record = records(&s).pop().unwrap();
    let before = inode(&record);
    assert_eq!(derivations(&s, &dir), first, "all taken from the record");
    assert_eq!(
        inode(&record),
        before,
        "every path was found in the record, so it was not written again"
    );

    // A source edit: the changed unit's steps and everything downstream get new paths,
    // the record serves the rest, and the whole equals a fresh emission.
    edit(&dir.join("src/area.cpp"), "{", "{ /* edited */");
    let edited = derivations(&s, &dir);
    assert_ne!(edited, first);
    let kept = edited
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| first.get(k.as_str()).is_some())
        .count();
    assert!(kept >= 5, "unchanged steps keep their paths ({kept})");
    assert_eq!(edited, uncached(&s, &dir));

    // A flag edit changes the arguments of every step of the package.
    derivations(&s, &dir);
    edit(
        &dir.join("cmod.toml"),
        "kind = \"static\"",
        "kind = \"static\"\ndefines = [\"EMISSION_TEST=1\"]",
    );
    let flagged = derivations(&s, &dir);
    assert_eq!(flagged, uncached(&s, &dir));
    assert!(flagged.to_string().contains("EMISSION_TEST=1"));
}

#[test]
fn a_damaged_record_is_ignored_and_replaced() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let first = derivations(&s, &dir);
    let record = records(&s).pop().unwrap();
    let mut bytes = std::fs::read(&record).unwrap();
    // Keep the header, damage the pairs: a shorter record is rejected whole.
    bytes.truncate(bytes.len() - 7);
    std::fs::write(&record, &bytes).unwrap();
    assert_eq!(derivations(&s, &dir), first);
    assert!(
        std::fs::read(&record).unwrap().len() > bytes.len(),
        "the record was written again"
    );
    std::fs::write(&record, b"not a record").unwrap();
    assert_eq!(derivations(&s, &dir), first);
}
