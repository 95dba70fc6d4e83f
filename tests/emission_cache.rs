//! The emission cache (evaluator/src/derive/emission_cache.rs) takes the `.drv` paths of
//! unchanged steps from the previous emission, and the recipe record
//! (evaluator/src/derive/recipe.rs) the whole derivations of unchanged units: whatever
//! they hold, the derivations emitted with them are exactly those emitted without them,
//! after edits of bodies, interfaces, imports, headers and flags, and with a damaged
//! record.

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

/// The records in the store's cache: the paths (`.bin`) and the recipes (`.recipes`).
fn all_records(s: &Sandbox) -> Vec<PathBuf> {
    let dir = s.store().join("v1/cache/emission-v1");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    found.sort();
    found
}

/// The records of one kind (`bin` or `recipes`).
fn records_of(s: &Sandbox, extension: &str) -> Vec<PathBuf> {
    all_records(s)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect()
}

fn records(s: &Sandbox) -> Vec<PathBuf> {
    records_of(s, "bin")
}

/// The derivations without any record (none is left behind to read).
fn uncached(s: &Sandbox, dir: &Path) -> Value {
    for r in all_records(s) {
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
    assert_eq!(records_of(&s, "recipes").len(), 1, "and its recipes");
    assert!(first.as_object().unwrap().len() >= 10);
    // The second emission takes the units' steps from the recipes, so the paths record
    // keeps only the others (archives, links): written once more.
    assert_eq!(derivations(&s, &dir), first, "all taken from the records");
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before: Vec<u64> = all_records(&s).iter().map(|r| inode(r)).collect();
    assert_eq!(derivations(&s, &dir), first, "all taken from the records");
    assert_eq!(
        all_records(&s).iter().map(|r| inode(r)).collect::<Vec<_>>(),
        before,
        "every step was found in the records, so neither was written again"
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

    // An interface edit (the BMI's source, so every importer reads a new BMI), an import
    // added to an implementation unit, and a system header included: each emission from
    // the records equals a fresh one.
    for (file, from, to) in [
        (
            "src/shapes.cppm",
            "export module",
            "// edited\nexport module",
        ),
        (
            "src/area.cpp",
            "import :detail;",
            "import :detail;\nimport :shapes;",
        ),
        (
            "src/area.cpp",
            "module geometry;",
            "module;\n#include <cmath>\nmodule geometry;",
        ),
    ] {
        derivations(&s, &dir);
        edit(&dir.join(file), from, to);
        let from_records = derivations(&s, &dir);
        assert_eq!(
            from_records,
            uncached(&s, &dir),
            "after editing {file}: {to}"
        );
    }

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
    for kind in ["recipes", "bin"] {
        let record = records_of(&s, kind).pop().unwrap();
        let mut bytes = std::fs::read(&record).unwrap();
        // Keep the header, damage the entries: a shorter record is rejected whole.
        bytes.truncate(bytes.len() - 7);
        std::fs::write(&record, &bytes).unwrap();
        assert_eq!(derivations(&s, &dir), first, "{kind}");
        assert_ne!(
            std::fs::read(&record).unwrap(),
            bytes,
            "the {kind} record was written again"
        );
        std::fs::write(&record, b"not a record").unwrap();
        assert_eq!(derivations(&s, &dir), first, "{kind}");
    }
}

/// The recipe record is what the emission reads: a body changed in the record (a flag,
/// same length, so the record stays well-formed) comes out in the derivation as
/// recorded. (A cache is trusted as the store's other caches are; this shows that the
/// units' steps are taken from it rather than made again.)
#[test]
fn unchanged_units_are_taken_from_the_recipe_record() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let first = derivations(&s, &dir);
    assert!(first.to_string().contains("-Wextra"));
    let record = records_of(&s, "recipes").pop().unwrap();
    let bytes = std::fs::read(&record).unwrap();
    let needle = b"-Wextra";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the record holds the flags");
    let mut changed = bytes.clone();
    changed[at..at + needle.len()].copy_from_slice(b"-Wzzzzz");
    std::fs::write(&record, &changed).unwrap();
    let taken = derivations(&s, &dir);
    assert!(
        taken.to_string().contains("-Wzzzzz"),
        "one step's body came from the record"
    );
    // Without the records, everything is made again, as it was.
    assert_eq!(uncached(&s, &dir), first);
}
