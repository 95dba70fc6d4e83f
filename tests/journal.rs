//! The journaled no-op: a `realise` whose inputs are all as its input journal recorded
//! them skips evaluation (`-v` says `Fresh evaluation`), answers exactly as a no-op
//! through the memo does, and never once an input changed: each test changes one kind
//! of input and checks that the evaluation ran and the result follows the change.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{run, Realised, Sandbox};
use serde_json::Value;

const SKIPPED: &str = "Fresh evaluation";

/// A module, its implementation (which includes a header), and a main.
fn project(s: &Sandbox) -> PathBuf {
    s.project(
        "greet",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"greet\"\nversion = \"0.1.0\"\n\n[toolchain]\ncompiler = \"clang++-19\"\ncxx-standard = 20\n\n[lib]\nsources = [\"src/**/*.cppm\", \"src/**/*.cpp\"]\n\n[[bin]]\nname = \"greet\"\nmain = \"main.cpp\"\n",
            ),
            ("src/greet.cppm", "export module greet;\nexport int answer();\n"),
            (
                "src/greet.cpp",
                "module;\n#include \"value.h\"\nmodule greet;\nint answer() { return VALUE; }\n",
            ),
            ("src/value.h", "#define VALUE 42\n"),
            (
                "main.cpp",
                "#include <cstdio>\nimport greet;\nint main() { std::printf(\"%d\\n\", answer()); }\n",
            ),
        ],
    )
}

/// Stamps younger than two seconds are never journaled (a second change could share
/// their timestamp tick): let what was just written settle.
fn settle() {
    std::thread::sleep(Duration::from_millis(2100));
}

/// `realise -v` with JSON messages (the human `-v` lines go to stderr).
fn realise(s: &Sandbox, dir: &Path, extra: &[&str]) -> Realised {
    let mut args = vec!["-v"];
    args.extend_from_slice(extra);
    s.realise(dir, &args).ok()
}

fn skipped(r: &Realised) -> bool {
    r.stderr().contains(SKIPPED)
}

/// Build, then a no-op that takes the journal. The build journals nothing (it scanned
/// the units and identified the toolchain, which the journal cannot record); the first
/// no-op once the build's out-links have settled evaluates from the caches and journals
/// that.
fn built_and_journaled(s: &Sandbox, dir: &Path) -> Realised {
    let first = realise(s, dir, &[]);
    assert!(!skipped(&first), "the first build skipped its evaluation");
    let early = realise(s, dir, &[]);
    assert!(!skipped(&early), "a build's reads were journaled");
    assert!(
        early.stderr().contains("changed too recently"),
        "{}",
        early.stderr()
    );
    settle();
    assert!(!skipped(&realise(s, dir, &[])));
    let again = realise(s, dir, &[]);
    assert!(skipped(&again), "no journal was taken:\n{}", again.stderr());
    assert!(again.built().is_empty());
    again
}

fn printed(r: &Realised) -> String {
    run(&r.target("greet"), &[]).trim().to_string()
}

/// The messages without their timings.
fn contract(r: &Realised) -> Vec<Value> {
    r.messages
        .iter()
        .map(|m| {
            let mut m = m.clone();
            if let Some(o) = m.as_object_mut() {
                o.remove("elapsed_secs");
            }
            m
        })
        .collect()
}

#[test]
fn a_journaled_no_op_answers_as_the_memo_does() {
    let s = Sandbox::new();
    let dir = project(&s);
    let journaled = built_and_journaled(&s, &dir);
    assert_eq!(printed(&journaled), "42");
    // The same no-op through the memo, after a full evaluation.
    let journals = s.store().join("v1/cache/journal-v1");
    std::fs::remove_dir_all(&journals).unwrap();
    let evaluated = realise(&s, &dir, &[]);
    assert!(!skipped(&evaluated));
    assert_eq!(contract(&journaled), contract(&evaluated));
    assert_eq!(journaled.finished()["fresh"], 6, "{}", journaled.finished());
    // A removed out-link changes the package root's listing: evaluated, and made again.
    std::fs::remove_file(dir.join("result")).unwrap();
    let relinked = realise(&s, &dir, &[]);
    assert!(!skipped(&relinked));
    assert_eq!(run(&dir.join("result"), &[]).trim(), "42");
    // A damaged journal is a miss, and is written again.
    settle();
    realise(&s, &dir, &[]);
    assert!(skipped(&realise(&s, &dir, &[])));
    let mut damaged = 0;
    for f in std::fs::read_dir(&journals).unwrap() {
        std::fs::write(f.unwrap().path(), b"cmod-journal-v1\n\0\0").unwrap();
        damaged += 1;
    }
    assert_eq!(damaged, 1);
    assert!(!skipped(&realise(&s, &dir, &[])));
    assert!(skipped(&realise(&s, &dir, &[])));
}

#[test]
fn edited_units_headers_and_new_files_are_evaluated() {
    let s = Sandbox::new();
    let dir = project(&s);
    built_and_journaled(&s, &dir);

    std::fs::write(dir.join("src/value.h"), "#define VALUE 43\n").unwrap();
    let r = realise(&s, &dir, &[]);
    assert!(!skipped(&r), "a header edit skipped the evaluation");
    assert_eq!(printed(&r), "43");

    std::fs::write(
        dir.join("src/greet.cpp"),
        "module;\n#include \"value.h\"\nmodule greet;\nint answer() { return VALUE + 1; }\n",
    )
    .unwrap();
    let r = realise(&s, &dir, &[]);
    assert!(!skipped(&r), "a unit edit skipped the evaluation");
    assert_eq!(printed(&r), "44");

    // A new file the glob picks up: its directory's listing changed.
    std::fs::write(
        dir.join("src/extra.cpp"),
        "module greet;\nint unused() { return 0; }\n",
    )
    .unwrap();
    let r = realise(&s, &dir, &[]);
    assert!(!skipped(&r), "a new source skipped the evaluation");
    assert!(
        r.built().iter().any(|n| n.contains("extra.cpp")),
        "{:?}",
        r.built()
    );
}

#[test]
fn manifest_lockfile_and_compile_database_changes_are_evaluated() {
    let s = Sandbox::new();
    let dir = project(&s);
    built_and_journaled(&s, &dir);

    let manifest = dir.join("cmod.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("[[bin]]", "[build]\ndefines = [\"UNUSED=1\"]\n\n[[bin]]"),
    )
    .unwrap();
    let r = realise(&s, &dir, &[]);
    assert!(!skipped(&r), "a manifest edit skipped the evaluation");
    assert!(!r.built().is_empty(), "a new define rebuilt nothing");

    settle();
    assert!(!skipped(&realise(&s, &dir, &[])), "re-journaled too early");
    assert!(skipped(&realise(&s, &dir, &[])));
    std::fs::remove_file(dir.join("cmod.lock")).unwrap();
    let r = realise(&s, &dir, &[]);
    assert!(!skipped(&r), "a deleted lockfile skipped the evaluation");
    assert!(
        dir.join("cmod.lock").is_file(),
        "the lockfile was not written again"
    );

    settle();
    realise(&s, &dir, &[]);
    assert!(skipped(&realise(&s, &dir, &[])));
    std::fs::remove_file(dir.join("compile_commands.json")).unwrap();
    let r = realise(&s, &dir, &[]);
    assert!(
        !skipped(&r),
        "a deleted compile database skipped the evaluation"
    );
    assert!(dir.join("compile_commands.json").is_file());
}

#[test]
fn environment_options_and_an_enclosing_workspace_are_evaluated() {
    let s = Sandbox::new();
    let dir = project(&s);
    built_and_journaled(&s, &dir);

    // Another PATH may find another compiler.
    let path = format!("/nonexistent-cmod-dir:{}", std::env::var("PATH").unwrap());
    let out = common::cmod_env(
        &dir,
        &s.store(),
        &["-v", "realise", "--message-format", "json"],
        &[("PATH", path)],
    );
    let r = Realised::parse(out).ok();
    assert!(!skipped(&r), "a new PATH skipped the evaluation");

    // Other options are another evaluation (and journal).
    assert!(!skipped(&realise(&s, &dir, &["--release", "--no-link"])));

    // A workspace appears above the package and takes it in.
    std::fs::write(
        dir.parent().unwrap().join("cmod.toml"),
        "[workspace]\nmembers = [\"greet\"]\n",
    )
    .unwrap();
    let r = realise(&s, &dir, &[]);
    assert!(
        !skipped(&r),
        "a new enclosing workspace skipped the evaluation"
    );
    assert!(
        dir.parent().unwrap().join("cmod.lock").is_file(),
        "the workspace's lockfile was not written at its root"
    );
}

#[test]
fn cmod_run_takes_the_journal_and_follows_an_edit() {
    let s = Sandbox::new();
    let dir = project(&s);
    let run_it = || {
        let out = s.cmod(&dir, &["-v", "run"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (stdout, stderr.contains(SKIPPED))
    };
    assert_eq!(run_it(), ("42".to_string(), false));
    settle();
    assert_eq!(
        run_it(),
        ("42".to_string(), false),
        "journaled a build's reads"
    );
    assert_eq!(run_it(), ("42".to_string(), true), "no journal was taken");
    // `realise` has its own journal: `run`'s does not answer for it.
    assert!(!skipped(&realise(&s, &dir, &["--no-link"])));
    std::fs::write(dir.join("src/value.h"), "#define VALUE 7\n").unwrap();
    assert_eq!(run_it(), ("7".to_string(), false));
}

#[test]
fn a_relative_manifest_path_from_another_directory_is_another_package() {
    let s = Sandbox::new();
    let a = project(&s);
    let b = s.dir.path().join("elsewhere").join("greet");
    common::copy_dir(&a, &b);
    std::fs::write(b.join("src/value.h"), "#define VALUE 5\n").unwrap();
    let realise_from = |cwd: &Path| {
        let out = common::cmod_env(
            cwd,
            &s.store(),
            &[
                "-v",
                "--manifest-path",
                "greet/cmod.toml",
                "realise",
                "--message-format",
                "json",
            ],
            &[],
        );
        Realised::parse(out).ok()
    };
    let (a_parent, b_parent) = (a.parent().unwrap(), b.parent().unwrap());
    realise_from(a_parent);
    settle();
    realise_from(a_parent);
    assert!(skipped(&realise_from(a_parent)), "no journal was taken");
    let other = realise_from(b_parent);
    assert!(!skipped(&other), "another package took this one's journal");
    assert_eq!(printed(&other), "5");
}
