//! The input journal: what it records, when it holds, and when it is never written.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cmod_evaluator::hashing::Stamp;
use cmod_evaluator::journal::*;

/// Recordings see every thread's reads (of this test process), so the tests that record
/// run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A recording whose stamps are trusted at once (the files here were just written).
fn settled() -> Recording {
    Recording::start().with_racy_window(0)
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    journal: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::write(root.join("unit.cpp"), "int f();\n").unwrap();
    std::fs::write(root.join("cmod.toml"), "[package]\n").unwrap();
    std::os::unix::fs::symlink("unit.cpp", root.join("link.cpp")).unwrap();
    Fixture {
        journal: root.join("cache").join("journal.bin"),
        root,
        _dir: dir,
    }
}

/// Read the fixture as an evaluation would, and journal it with payload `b"memo"`.
fn record(f: &Fixture) -> Recorded {
    let recording = settled();
    Stamp::read(&f.root.join("unit.cpp")).unwrap();
    read_to_string(&f.root.join("cmod.toml")).unwrap();
    assert!(!is_file(&f.root.join("parent").join("cmod.toml")));
    canonicalize(&f.root.join("link.cpp")).unwrap();
    var_os("CMOD_JOURNAL_TEST_VARIABLE");
    let recorded = recording.finish();
    recorded.save(&f.journal, b"memo").unwrap();
    recorded
}

#[test]
fn a_journal_holds_until_any_input_changes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    type Change = fn(&Path);
    let changes: [(&str, Change); 6] = [
        ("an edited unit", |r| {
            std::fs::write(r.join("unit.cpp"), "int g();\n").unwrap()
        }),
        ("a deleted unit", |r| {
            std::fs::remove_file(r.join("unit.cpp")).unwrap()
        }),
        ("an edited manifest of equal size", |r| {
            std::fs::write(r.join("cmod.toml"), "[packagE]\n").unwrap()
        }),
        ("a file where none was", |r| {
            std::fs::create_dir(r.join("parent")).unwrap();
            std::fs::write(r.join("parent").join("cmod.toml"), "").unwrap();
        }),
        ("a retargeted link", |r| {
            std::fs::write(r.join("other.cpp"), "").unwrap();
            std::fs::remove_file(r.join("link.cpp")).unwrap();
            std::os::unix::fs::symlink("other.cpp", r.join("link.cpp")).unwrap();
        }),
        ("a new environment", |_| {
            // SAFETY: the variable is this test's own, and the tests that read it hold
            // SERIAL.
            unsafe { std::env::set_var("CMOD_JOURNAL_TEST_VARIABLE", "1") }
        }),
    ];
    for (what, change) in changes {
        let f = fixture();
        let recorded = record(&f);
        assert_eq!(recorded.problem(), None);
        assert_eq!(recorded.len(), 5, "{recorded:?}");
        assert_eq!(recall(&f.journal).as_deref(), Some(&b"memo"[..]), "{what}");
        change(&f.root);
        assert_eq!(recall(&f.journal), None, "{what} left the journal standing");
        // SAFETY: as above.
        unsafe { std::env::remove_var("CMOD_JOURNAL_TEST_VARIABLE") }
    }
}

#[test]
fn untracked_racy_and_changing_reads_are_never_journaled() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let f = fixture();
    record(&f);
    assert!(recall(&f.journal).is_some());

    let recording = settled();
    Stamp::read(&f.root.join("unit.cpp")).unwrap();
    note(|| Input::Untracked("pkg-config was run".into()));
    let recorded = recording.finish();
    assert_eq!(recorded.problem(), Some("pkg-config was run"));
    assert!(recorded.save(&f.journal, b"memo").is_err());
    assert!(
        !f.journal.exists(),
        "an older journal was left to be taken for this one"
    );

    // Just written, with the real racy window: not trusted.
    let recording = Recording::start();
    Stamp::read(&f.root.join("unit.cpp")).unwrap();
    let problem = recording.finish().problem().map(str::to_string);
    assert!(problem.is_some_and(|p| p.contains("too recently")));

    // The same file found two ways during one evaluation.
    let recording = settled();
    let unit = f.root.join("unit.cpp");
    Stamp::read(&unit).unwrap();
    std::fs::write(&unit, "changed meanwhile, and longer\n").unwrap();
    Stamp::read(&unit).unwrap();
    let problem = recording.finish().problem().map(str::to_string);
    assert!(problem.is_some_and(|p| p.contains("changed while it was read")));
}

#[test]
fn reads_outside_a_recording_are_not_noted_and_damage_is_a_miss() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let f = fixture();
    Stamp::read(&f.root.join("unit.cpp")).unwrap();
    let recording = settled();
    assert!(
        recording.finish().is_empty(),
        "a read before the recording was noted"
    );

    record(&f);
    let mut bytes = std::fs::read(&f.journal).unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&f.journal, &bytes).unwrap();
    assert_eq!(recall(&f.journal), None, "a truncated journal was read");
    std::fs::write(&f.journal, b"cmod-journal-v1\ngarbage").unwrap();
    assert_eq!(recall(&f.journal), None);
}
