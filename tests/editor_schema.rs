//! Editors validate manifests: `cmod new` starts `cmod.toml` with a `#:schema` line that
//! the real taplo (the engine of Even Better TOML; `scripts/install-deps` installs its CLI
//! from npm) follows to the copy of the schema cmod keeps under `.cmod/`, and evaluations
//! keep that copy current.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{failure, Sandbox};

const SCHEMA: &str = include_str!("../schema/schemas/manifest.schema.json");

/// `taplo check FILE` run from `cwd` (the directive is relative to the manifest, not to
/// the working directory).
fn taplo_check(cwd: &Path, file: &Path) -> Output {
    Command::new("taplo")
        .arg("check")
        .arg(file)
        .current_dir(cwd)
        .env("RUST_LOG", "error")
        .output()
        .unwrap_or_else(|e| panic!("cannot run taplo ({e}); `scripts/install-deps` installs it"))
}

fn first_line(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().next().unwrap_or_default().to_string()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_new_manifest_is_validated_by_taplo_through_its_schema_line() {
    let s = Sandbox::new();
    let out = s.cmod(s.dir.path(), &["new", "demo"]);
    assert!(out.status.success(), "{}", failure(&out).1);
    let dir = s.dir.path().join("demo");
    let manifest = dir.join("cmod.toml");
    assert_eq!(
        first_line(&manifest),
        "#:schema ./.cmod/manifest.schema.json"
    );
    let copy = std::fs::read_to_string(dir.join(".cmod/manifest.schema.json")).unwrap();
    assert_eq!(copy, SCHEMA);
    let ignored = std::fs::read_to_string(dir.join(".gitignore")).unwrap();
    assert!(ignored.lines().any(|l| l == ".cmod/"), "{ignored}");

    let ok = taplo_check(s.dir.path(), &manifest);
    assert!(ok.status.success(), "{}", text(&ok));

    // An unknown key and a wrong value are errors the editor shows, at their lines.
    let good = std::fs::read_to_string(&manifest).unwrap();
    let bad = good.replace(
        "version = \"0.1.0\"",
        "version = \"0.1.0\"\nedition = \"2021\"",
    );
    std::fs::write(&manifest, &bad).unwrap();
    let out = taplo_check(s.dir.path(), &manifest);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("'edition' was unexpected"),
        "{}",
        text(&out)
    );
    let bad = good.replace("cxx-standard = 20", "cxx-standard = 17");
    std::fs::write(&manifest, &bad).unwrap();
    let out = taplo_check(s.dir.path(), &manifest);
    assert!(!out.status.success(), "C++17 is not a modules dialect");
    assert!(text(&out).contains("cmod.toml:8"), "{}", text(&out));
}

#[test]
fn a_member_points_at_the_workspace_copy_which_evaluation_restores() {
    let s = Sandbox::new();
    let ws = s.project(
        "ws",
        &[("cmod.toml", "[workspace]\nmembers = [\"libs/*\"]\n")],
    );
    std::fs::create_dir_all(ws.join("libs")).unwrap();
    let out = s.cmod(&ws, &["new", "libs/a"]);
    assert!(out.status.success(), "{}", failure(&out).1);
    let member = ws.join("libs/a/cmod.toml");
    assert_eq!(
        first_line(&member),
        "#:schema ../../.cmod/manifest.schema.json"
    );
    let copy = ws.join(".cmod/manifest.schema.json");
    assert!(!ws.join("libs/a/.cmod").exists(), "one copy, at the root");
    let ok = taplo_check(&ws.join("libs"), &member);
    assert!(ok.status.success(), "{}", text(&ok));

    // A fresh clone has no `.cmod/` (it is ignored): the first evaluation writes it, and
    // a stale copy (an older cmod's) is replaced.
    std::fs::remove_dir_all(ws.join(".cmod")).unwrap();
    let out = s.cmod(&ws, &["eval"]);
    assert!(out.status.success(), "{}", failure(&out).1);
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), SCHEMA);
    std::fs::write(&copy, "{}").unwrap();
    let out = s.cmod(&ws, &["eval"]);
    assert!(out.status.success(), "{}", failure(&out).1);
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), SCHEMA);
}

#[test]
fn a_manifest_without_the_line_gets_no_schema_copy() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let out = s.cmod(&dir, &["eval"]);
    assert!(out.status.success(), "{}", failure(&out).1);
    assert!(
        !dir.join(".cmod").exists(),
        "cmod writes into a project only what its manifest asks for"
    );
}
