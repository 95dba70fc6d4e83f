//! Package-graph loading of path dependencies and workspaces (git dependencies are tested
//! end to end with real repositories in `tests/git_deps.rs`).

use super::*;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn pkg(name: &str, deps: &str) -> String {
    format!("[package]\nname = \"{name}\"\nversion = \"1.0.0\"\n[dependencies]\n{deps}")
}

fn load(dir: &Path) -> Result<PackageGraph, EvalError> {
    PackageGraph::load(dir, &LoadOptions::default())
}

#[test]
fn diamond_loads_each_package_once_in_order() {
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        "a/cmod.toml",
        &pkg("a", "b = { path = \"../b\" }\nc = { path = \"../c\" }\n"),
    );
    write(
        t.path(),
        "b/cmod.toml",
        &pkg("b", "d = { path = \"../d\" }\n"),
    );
    write(
        t.path(),
        "c/cmod.toml",
        &pkg("c", "d = { path = \"../d\" }\n"),
    );
    write(t.path(), "d/cmod.toml", &pkg("d", ""));
    let g = load(&t.path().join("a")).unwrap();
    let names: Vec<&str> = g.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["d", "b", "c", "a"]);
    assert_eq!(g.root().name, "a");
    assert_eq!(g.members, vec![g.root]);
    assert_eq!(g.packages[0].source, PackageSource::Path);
    let deps: Vec<&str> = g
        .transitive_deps(g.root)
        .iter()
        .map(|&i| g.packages[i].name.as_str())
        .collect();
    assert_eq!(deps, ["d", "b", "c"]);
}

#[test]
fn cycle_is_reported_with_its_members() {
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        "a/cmod.toml",
        &pkg("a", "b = { path = \"../b\" }\n"),
    );
    write(
        t.path(),
        "b/cmod.toml",
        &pkg("b", "a = { path = \"../a\" }\n"),
    );
    let e = load(&t.path().join("a")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Dependency);
    assert!(e.message.contains("a → b → a"), "{e}");
    assert!(e.location.unwrap().file.ends_with("b/cmod.toml"));
}

#[test]
fn wrong_name_and_missing_dir() {
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        "a/cmod.toml",
        &pkg("a", "x = { path = \"../b\" }\n"),
    );
    write(t.path(), "b/cmod.toml", &pkg("b", ""));
    let e = load(&t.path().join("a")).unwrap_err();
    assert!(e.message.contains("points at package `b`"), "{e}");
    assert_eq!(e.help.as_deref(), Some("rename the dependency key to `b`"));

    write(
        t.path(),
        "c/cmod.toml",
        &pkg("c", "nope = { path = \"../nope\" }\n"),
    );
    let e = load(&t.path().join("c")).unwrap_err();
    assert!(e.message.contains("cannot open"), "{e}");
    assert_eq!(e.location.unwrap().line, 5);
}

#[test]
fn conflicting_sources_are_rejected_at_the_line() {
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        "a/cmod.toml",
        &pkg("a", "b = { path = \"../b\", git = \"file:///x\" }\n"),
    );
    let e = load(&t.path().join("a")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ManifestInvalid);
    assert!(e.message.contains("both `path` and `git`"), "{e}");
    assert_eq!(e.location.unwrap().line, 5);

    write(
        t.path(),
        "d/cmod.toml",
        &pkg(
            "d",
            "b = { git = \"file:///x\", tag = \"v1\", rev = \"abc\" }\n",
        ),
    );
    let e = load(&t.path().join("d")).unwrap_err();
    assert!(e.message.contains("sets `tag` and `rev` together"), "{e}");
    assert_eq!(e.kind, ErrorKind::ManifestInvalid);
    let at = e.location.unwrap();
    assert!(at.file.ends_with("d/cmod.toml"), "{}", at.file.display());
    assert_eq!(
        (at.line, at.column),
        (5, 5),
        "the dependency's value on line 5"
    );

    write(
        t.path(),
        "e/cmod.toml",
        &pkg("e", "b = { git = \"file:///x\" }\n"),
    );
    let e = load(&t.path().join("e")).unwrap_err();
    assert!(e.message.contains("is not pinned"), "{e}");
}

#[test]
fn a_path_dependency_may_require_a_version_of_what_it_finds() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "b/cmod.toml", &pkg("b", ""));
    for req in ["1.0.0", "^1", "~1.0", ">=0.9, <2", "*"] {
        write(
            t.path(),
            "a/cmod.toml",
            &pkg(
                "a",
                &format!("b = {{ path = \"../b\", version = \"{req}\" }}\n"),
            ),
        );
        let g = load(&t.path().join("a")).unwrap_or_else(|e| panic!("{req}: {e}"));
        assert_eq!(g.packages[0].name, "b");
    }

    write(
        t.path(),
        "a/cmod.toml",
        &pkg("a", "b = { path = \"../b\", version = \"^2.1\" }\n"),
    );
    let e = load(&t.path().join("a")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Dependency);
    assert!(
        e.message
            .contains("requires version `^2.1`, but the package at `../b` is `b` 1.0.0"),
        "{e}"
    );
    let at = e.location.clone().unwrap();
    assert!(at.file.ends_with("a/cmod.toml"), "{}", at.file.display());
    assert_eq!(at.line, 5);
    let declared = e.notes[0].location.clone().unwrap();
    assert!(declared.file.ends_with("b/cmod.toml"));
    assert_eq!(declared.line, 3, "the note points at b's `version`");

    // Pre-releases match only requirements that name one, as in Cargo.
    write(
        t.path(),
        "p/cmod.toml",
        "[package]\nname = \"p\"\nversion = \"2.0.0-rc.1\"\n",
    );
    write(
        t.path(),
        "a/cmod.toml",
        &pkg("a", "p = { path = \"../p\", version = \"^2\" }\n"),
    );
    let e = load(&t.path().join("a")).unwrap_err();
    assert!(e.message.contains("`p` 2.0.0-rc.1"), "{e}");
    write(
        t.path(),
        "a/cmod.toml",
        &pkg("a", "p = { path = \"../p\", version = \"^2.0.0-rc.1\" }\n"),
    );
    load(&t.path().join("a")).unwrap();

    // Git pins still do not apply to path dependencies.
    write(
        t.path(),
        "a/cmod.toml",
        &pkg(
            "a",
            "b = { path = \"../b\", version = \"^1\", tag = \"v1\" }\n",
        ),
    );
    let e = load(&t.path().join("a")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ManifestInvalid);
    assert!(
        e.message.contains("is a path dependency but sets `tag`"),
        "{e}"
    );
}

#[test]
fn an_inherited_path_and_version_is_checked_at_the_workspace_entry() {
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        "cmod.toml",
        "[workspace]\nmembers = [\"app\"]\n\n[workspace.dependencies]\ncore = { path = \"libs/core\", version = \"^3\" }\n",
    );
    write(t.path(), "libs/core/cmod.toml", &pkg("core", ""));
    write(
        t.path(),
        "app/cmod.toml",
        &pkg("app", "core = { workspace = true }\n"),
    );
    let e = load(&t.path().canonicalize().unwrap()).unwrap_err();
    assert!(
        e.message
            .contains("requires version `^3`, but the package at `libs/core` is `core` 1.0.0"),
        "{e}"
    );
    let at = e.location.unwrap();
    assert!(!at.file.ends_with("app/cmod.toml"), "{}", at.file.display());
    assert_eq!(at.line, 5);
}

#[test]
fn missing_package_table() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "a/cmod.toml", "[lib]\n");
    let e = load(&t.path().join("a")).unwrap_err();
    assert!(e.message.contains("no [package] table"), "{e}");
}

#[test]
fn workspace_members_inherit_dependencies_and_select() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    write(root, "cmod.toml", "[workspace]\nmembers = [\"members/*\"]\n\n[workspace.dependencies]\nc = { path = \"members/c\" }\nextern = { path = \"vendor/extern\" }\n");
    write(
        root,
        "members/a/cmod.toml",
        &pkg("a", "b = { path = \"../b\" }\n"),
    );
    write(
        root,
        "members/b/cmod.toml",
        &pkg(
            "b",
            "c = { workspace = true }\nextern = { workspace = true }\n",
        ),
    );
    write(root, "members/c/cmod.toml", &pkg("c", ""));
    write(root, "vendor/extern/cmod.toml", &pkg("extern", ""));
    let g = load(root).unwrap();
    let name = |i: PackageId| g.packages[i].name.as_str();
    let mut members: Vec<&str> = g.members.iter().map(|&m| name(m)).collect();
    members.sort();
    assert_eq!(members, ["a", "b", "c"]);
    assert_eq!(g.selected.len(), 3, "at the root every member is selected");
    assert_eq!(g.workspace_root, root.canonicalize().unwrap());
    let ext = g.packages.iter().find(|p| p.name == "extern").unwrap();
    assert_eq!(
        ext.source,
        PackageSource::Path,
        "a path outside the workspace is not a member"
    );
    // From a member's directory, only that member is selected; the workspace is found.
    let g = load(&root.join("members/b")).unwrap();
    assert_eq!(
        g.selected
            .iter()
            .map(|&s| g.packages[s].name.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    // `-p` selects by name; unknown names are an error.
    let g = PackageGraph::load(
        root,
        &LoadOptions {
            fetcher: None,
            select: vec!["c".into()],
        },
    )
    .unwrap();
    assert_eq!(g.root().name, "c");
    let e = PackageGraph::load(
        root,
        &LoadOptions {
            fetcher: None,
            select: vec!["zz".into()],
        },
    )
    .unwrap_err();
    assert!(e.message.contains("`zz` is not a member"), "{e}");
}

#[test]
fn workspace_inheritance_errors() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    write(root, "cmod.toml", "[workspace]\nmembers = [\"m\"]\n");
    write(root, "m/cmod.toml", &pkg("m", "x = { workspace = true }\n"));
    let e = load(root).unwrap_err();
    assert!(
        e.message.contains("[workspace.dependencies] has no `x`"),
        "{e}"
    );
    write(
        root,
        "m/cmod.toml",
        &pkg("m", "x = { workspace = true, path = \"../x\" }\n"),
    );
    let e = load(root).unwrap_err();
    assert!(e.message.contains("also its own source"), "{e}");
    write(
        root,
        "solo/cmod.toml",
        &pkg("solo", "x = { workspace = true }\n"),
    );
    let e = load(&root.join("solo")).unwrap_err();
    assert!(e.message.contains("not in a workspace"), "{e}");
}

#[test]
fn dev_dependencies_of_members_are_loaded_apart_and_checked_at_their_line() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    // `app` has a dev-dependency `check`, which itself depends on `app` (a test helper
    // built on the library under test). `lib`'s own dev-dependency points nowhere: it is
    // never loaded, because `lib` is a dependency, not a member.
    write(
        root,
        "app/cmod.toml",
        &format!(
            "{}[dev-dependencies]\ncheck = {{ path = \"../check\" }}\n",
            pkg("app", "lib = { path = \"../lib\" }\n")
        ),
    );
    write(
        root,
        "check/cmod.toml",
        &pkg("check", "app = { path = \"../app\" }\n"),
    );
    write(
        root,
        "lib/cmod.toml",
        &format!(
            "{}[dev-dependencies]\nmissing = {{ path = \"../does-not-exist\" }}\n",
            pkg("lib", "")
        ),
    );
    let g = load(&root.join("app")).unwrap();
    let id = |n: &str| g.packages.iter().position(|p| p.name == n).unwrap();
    let app = &g.packages[id("app")];
    let names = |deps: &[Dependency]| deps.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&app.deps), ["lib"]);
    assert_eq!(names(&app.dev_deps), ["check"]);
    assert!(app.depends_on(id("check"), true) && !app.depends_on(id("check"), false));
    assert!(g.packages[id("lib")].dev_deps.is_empty());
    assert!(!g.packages.iter().any(|p| p.name == "missing"));
    // Binaries link `lib`; tests link `lib` and `check`, never `app` twice.
    assert_eq!(g.transitive_deps(id("app")), [id("lib")]);
    assert_eq!(g.test_deps(id("app")), [id("lib"), id("check")]);

    // A dev-dependency's shape is checked like any other, at its line.
    write(
        root,
        "app/cmod.toml",
        &format!(
            "{}[dev-dependencies]\ncheck = {{ path = \"../check\", git = \"file:///x\" }}\n",
            pkg("app", "")
        ),
    );
    let e = load(&root.join("app")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ManifestInvalid);
    assert!(
        e.message
            .contains("dependency `check` gives both `path` and `git`"),
        "{e}"
    );
    let at = e.location.unwrap();
    assert!(at.file.ends_with("app/cmod.toml"));
    assert_eq!(at.line, 6);
}
