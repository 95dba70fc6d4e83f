//! Every shipped example is realised with the real clang-19 in the full sandbox, and its
//! binary's output is checked. Together they cover all five unit kinds.

mod common;

use common::{failure, run, Sandbox};

#[test]
fn hello_builds_runs_and_links_result() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(r.built().len(), 6, "{:?}", r.built());
    assert_eq!(run(&r.target("hello"), &[]), "Hello, modules!\n");
    assert_eq!(run(&dir.join("result"), &["cmod"]), "Hello, cmod!\n");
    let link = std::fs::read_link(dir.join("result")).unwrap();
    assert!(
        link.starts_with(s.store().canonicalize().unwrap().join("v1/store")),
        "{}",
        link.display()
    );
}

#[test]
fn library_covers_every_unit_kind() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let r = s.realise(&dir, &[]).ok();
    let built = r.built();
    // 4 BMIs (primary, 2 exported partitions, internal partition), 8 objects, archive, link.
    for name in [
        "geometry-1.2.0-geometry.pcm",
        "geometry-1.2.0-geometry-shapes.pcm",
        "geometry-1.2.0-geometry-format.pcm",
        "geometry-1.2.0-geometry-detail.pcm",
        "geometry-1.2.0-src-area.cpp.o",
        "geometry-1.2.0-src-describe.cpp.o",
        "geometry-1.2.0-src-detail.cppm.o",
        "geometry-1.2.0-app-table.cpp.o",
        "geometry-1.2.0-libgeometry.a",
        "geometry-1.2.0-shapes",
    ] {
        assert!(
            built.contains(&name.to_string()),
            "{name} missing from {built:?}"
        );
    }
    assert_eq!(built.len(), 14);
    assert_eq!(
        run(&r.target("shapes"), &[]),
        "0: circle of area 3.14 cm^2\n1: rectangle of area 6.00 cm^2\n2: triangle of area 10.00 cm^2\ntotal 19.14 (geometry 1.2.0)\n"
    );
}

#[test]
fn path_dependencies_one_importing_the_other() {
    let s = Sandbox::new();
    s.copy_example("path-deps");
    let app = s.dir.path().join("path-deps/app");
    let r = s.realise(&app, &[]).ok();
    assert_eq!(run(&r.target("app"), &[]), "ten feet: 3.048 m\n");
    // `report` imports `units`; both libraries are archived and linked.
    let built = r.built();
    assert!(
        built.contains(&"report-0.2.0-libreport.a".to_string()),
        "{built:?}"
    );
    assert!(
        built.contains(&"units-0.3.1-libunits.a".to_string()),
        "{built:?}"
    );
}

/// `{ path, version }`, written by `cmod add --path --version`: the package found at the
/// path must satisfy the requirement, or the build stops at the dependency's line.
#[test]
fn a_path_dependency_with_a_version_requirement_is_checked() {
    let s = Sandbox::new();
    s.copy_example("path-deps");
    let app = s.dir.path().join("path-deps/app");
    let add = |req: &str| {
        let out = s.cmod(
            &app,
            &["add", "units", "--path", "../units", "--version", req],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    add("^1");
    let manifest = std::fs::read_to_string(app.join("cmod.toml")).unwrap();
    assert!(
        manifest.contains("units = { path = \"../units\", version = \"^1\" }"),
        "{manifest}"
    );
    let (code, err) = failure(&s.cmod(&app, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "dependency `units` requires version `^1`, but the package at `../units` is `units` 0.3.1"
        ),
        "{err}"
    );
    assert!(
        err.contains("cmod.toml:12:"),
        "the dependency's line: {err}"
    );
    assert!(!app.join("cmod.lock").exists(), "nothing is locked");

    add("~0.3");
    let r = s.realise(&app, &[]).ok();
    assert_eq!(run(&r.target("app"), &[]), "ten feet: 3.048 m\n");
}

#[test]
fn cmod_run_passes_arguments() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let out = s.cmod(&dir, &["run", "--", "tests"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, tests!\n");
    // Like realise: a `Running` line, and the binary behind `result`, a GC root.
    let err = String::from_utf8_lossy(&out.stderr);
    let exe = std::fs::read_link(dir.join("result")).expect("`cmod run` writes ./result");
    let running = format!("Running `{} tests`", exe.display());
    assert!(err.contains(&running), "{running} in: {err}");
    let gc = s.cmod(&dir, &["gc"]);
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    assert_eq!(run(&dir.join("result"), &["again"]), "Hello, again!\n");
    // A second run is a no-op through the same memo as realise; --no-link leaves no link.
    std::fs::remove_file(dir.join("result")).unwrap();
    let out = s.cmod(&dir, &["run", "--no-link", "-j1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.join("result").exists(), "--no-link");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Finished"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
