use super::*;

fn project(files: &[&str], manifest: &str) -> (tempfile::TempDir, ManifestFile) {
    let t = tempfile::tempdir().unwrap();
    for f in files {
        let p = t.path().join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "").unwrap();
    }
    let text = format!("[package]\nname = \"p\"\nversion = \"1.0.0\"\n{manifest}");
    std::fs::write(t.path().join("cmod.toml"), &text).unwrap();
    let mf = ManifestFile::load(&t.path().join("cmod.toml")).unwrap();
    (t, mf)
}

fn reload(t: &tempfile::TempDir) -> ManifestFile {
    ManifestFile::load(&t.path().join("cmod.toml")).unwrap()
}

#[test]
fn lib_excludes_bin_files_and_headers() {
    let (_t, mf) = project(
        &["src/a.cppm", "src/b.cpp", "src/main.cpp", "src/x.h", "src/sub/c.cppm", ".hidden/d.cpp", "nested/cmod.toml", "nested/e.cpp"],
        "[lib]\nsources = [\"**/*.cpp*\", \"**/*.h\"]\n[[bin]]\nname = \"app\"\nmain = \"src/main.cpp\"\n",
    );
    let s = find_sources(&mf, false).unwrap();
    assert_eq!(
        s.libs[0].units,
        ["src/a.cppm", "src/b.cpp", "src/sub/c.cppm"]
    );
    assert_eq!(s.libs[0].name, "p");
    assert_eq!(s.bins[0].units, ["src/main.cpp"]);
}

#[test]
fn c_files_are_units_and_default_lib_globs_include_them() {
    let (_t, mf) = project(
        &["src/a.cppm", "src/crc.c", "src/x.h", "src/impl.cc"],
        "[lib]\n",
    );
    let s = find_sources(&mf, false).unwrap();
    assert_eq!(s.libs[0].units, ["src/a.cppm", "src/crc.c"]);
    assert_eq!(language("src/crc.c"), Some(Lang::C));
    assert_eq!(language("src/a.cppm"), Some(Lang::Cxx));
    assert_eq!(language("include/a.h"), None);
    let (_t, mf) = project(
        &["src/crc.c", "src/impl.cc"],
        "[lib]\nsources = [\"src/*\"]\n",
    );
    assert_eq!(
        find_sources(&mf, false).unwrap().libs[0].units,
        ["src/crc.c", "src/impl.cc"]
    );
}

#[test]
fn a_file_named_explicitly_must_be_a_unit_that_exists() {
    let (_t, mf) = project(
        &["src/a.cpp", "src/gen.rs", "include/a.h"],
        "[lib]\nsources = [\n  \"src/a.cpp\",\n  \"src/gen.rs\",\n]\n",
    );
    let e = find_sources(&mf, false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ManifestInvalid);
    assert!(
        e.message
            .contains("`src/gen.rs` is named in `sources`, but cmod does not compile `.rs` files"),
        "{e}"
    );
    assert_eq!(e.location.unwrap().line, 7);
    assert!(e.help.unwrap().contains(".c"));

    let (_t, mf) = project(
        &["src/a.cpp"],
        "[lib]\nsources = [\"src/a.cpp\", \"src/missing.cpp\"]\n",
    );
    let e = find_sources(&mf, false).unwrap_err();
    assert!(
        e.message.contains("`src/missing.cpp` does not exist"),
        "{e}"
    );
    assert_eq!(e.location.unwrap().line, 5);

    let (_t, mf) = project(
        &["src/a.cpp", ".gen/x.cpp"],
        "[lib]\nsources = [\"src/a.cpp\", \".gen/x.cpp\"]\n",
    );
    let e = find_sources(&mf, false).unwrap_err();
    assert!(
        e.message.contains("hidden directory or a nested package"),
        "{e}"
    );
    // A glob that happens to match a header is fine: globs pick units only.
    let (_t, mf) = project(
        &["src/a.cpp", "src/a.h"],
        "[lib]\nsources = [\"src/a.*\"]\n",
    );
    assert_eq!(
        find_sources(&mf, false).unwrap().libs[0].units,
        ["src/a.cpp"]
    );
}

#[test]
fn symlinked_sources_are_followed_inside_the_package_and_rejected_outside() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("far.cpp"), "").unwrap();
    let (t, _) = project(
        &["shared/real.cpp", "src/a.cpp"],
        "[lib]\nsources = [\"src/*.cpp\"]\n",
    );
    std::os::unix::fs::symlink("../shared/real.cpp", t.path().join("src/link.cpp")).unwrap();
    let s = find_sources(&reload(&t), false).unwrap();
    assert_eq!(s.libs[0].units, ["src/a.cpp", "src/link.cpp"]);

    std::os::unix::fs::symlink(outside.path().join("far.cpp"), t.path().join("src/far.cpp"))
        .unwrap();
    let e = find_sources(&reload(&t), false).unwrap_err();
    assert!(
        e.message.contains("source `src/far.cpp` is a symlink to"),
        "{e}"
    );
    assert!(e.message.contains("outside the package"), "{e}");
    assert_eq!(e.location.unwrap().line, 5);
    // A link leaving the package that no pattern selects is no concern.
    let (t, _) = project(&["src/a.cpp"], "[lib]\nsources = [\"src/*.cpp\"]\n");
    std::os::unix::fs::symlink(outside.path().join("far.cpp"), t.path().join("far.cpp")).unwrap();
    std::os::unix::fs::symlink(outside.path(), t.path().join("result")).unwrap();
    assert_eq!(
        find_sources(&reload(&t), false).unwrap().libs[0].units,
        ["src/a.cpp"]
    );
}

#[test]
fn several_libraries_are_named_and_never_share_a_unit() {
    let (_t, mf) = project(
        &["core/a.cppm", "core/b.c", "util/u.cppm"],
        "[[lib]]\nname = \"core\"\nsources = [\"core/*\"]\n[[lib]]\nname = \"util\"\nsources = [\"util/*\"]\n",
    );
    let s = find_sources(&mf, false).unwrap();
    assert_eq!(s.libs.len(), 2);
    assert_eq!(
        (s.libs[0].name.as_str(), s.libs[0].units.as_slice()),
        (
            "core",
            &["core/a.cppm".to_string(), "core/b.c".to_string()][..]
        )
    );
    assert_eq!(s.libs[1].units, ["util/u.cppm"]);

    let (_t, mf) = project(
        &["core/a.cppm"],
        "[[lib]]\nname = \"core\"\nsources = [\"core/*\"]\n[[lib]]\nname = \"all\"\nsources = [\"**/*.cppm\"]\n",
    );
    let e = find_sources(&mf, false).unwrap_err();
    assert!(
        e.message.contains(
            "`core/a.cppm` is selected by the sources of two libraries, `core` and `all`"
        ),
        "{e}"
    );
    assert_eq!(e.location.unwrap().line, 9);

    let (_t, mf) = project(
        &["a/a.cppm", "b/b.cppm"],
        "[[lib]]\nname = \"a\"\nsources = [\"a/*\"]\n[[lib]]\nsources = [\"b/*\"]\n",
    );
    let e = find_sources(&mf, false).unwrap_err();
    assert!(e.message.contains("must name each of them"), "{e}");
    assert_eq!(e.location.unwrap().line, 7);

    let (_t, mf) = project(
        &["a/a.cppm", "b/b.cppm"],
        "[[lib]]\nname = \"a\"\nsources = [\"a/*\"]\n[[lib]]\nname = \"a\"\nsources = [\"b/*\"]\n",
    );
    let e = find_sources(&mf, false).unwrap_err();
    assert!(e.message.contains("two libraries are named `a`"), "{e}");
    let (_t, mf) = project(
        &["a/a.cppm"],
        "[[lib]]\nname = \"a/b\"\nsources = [\"a/*\"]\n",
    );
    assert!(find_sources(&mf, false)
        .unwrap_err()
        .message
        .contains("not a valid library name"));
}

#[test]
fn missing_main_points_at_the_line() {
    let (_t, mf) = project(&[], "[[bin]]\nname = \"app\"\nmain = \"src/nope.cpp\"\n");
    let e = find_sources(&mf, false).unwrap_err();
    assert!(e.message.contains("`src/nope.cpp` does not exist"), "{e}");
    let loc = e.location.unwrap();
    assert_eq!((loc.line, loc.column), (6, 8));
    let (_t, mf) = project(&[], "[[bin]]\nname = \"app\"\n");
    let e = find_sources(&mf, false).unwrap_err();
    assert!(e.message.contains("binary `app` has no `main`"), "{e}");
    assert_eq!(e.location.unwrap().line, 4);
    let (_t, mf) = project(
        &["m.cpp"],
        "[[bin]]\nname = \"a\"\nmain = \"m.cpp\"\n[[test]]\nmain = \"m.cpp\"\n",
    );
    let e = find_sources(&mf, false).unwrap_err();
    assert!(e.message.contains("a [[test]] table has no `name`"), "{e}");
}

#[test]
fn empty_lib_and_duplicate_bins() {
    let (_t, mf) = project(&["src/x.h"], "[lib]\nsources = [\"src/*\"]\n");
    let e = find_sources(&mf, false).unwrap_err();
    assert!(e.message.contains("match no translation units"), "{e}");
    assert_eq!(e.location.unwrap().line, 5);

    let (_t, mf) = project(
        &["m.cpp"],
        "[[bin]]\nname = \"a\"\nmain = \"m.cpp\"\n[[bin]]\nname = \"a\"\nmain = \"m.cpp\"\n",
    );
    let e = find_sources(&mf, false).unwrap_err();
    assert!(
        e.message.contains("two [[bin]] targets are named `a`"),
        "{e}"
    );
}

#[test]
fn test_files_never_join_the_lib_and_are_listed_only_on_request() {
    let manifest = "[lib]\nsources = [\"**/*.cpp*\"]\n[[test]]\nname = \"checks\"\nmain = \"tests/checks.cpp\"\nsources = [\"tests/util/*.cpp\"]\n";
    let (_t, mf) = project(
        &[
            "src/a.cppm",
            "tests/checks.cpp",
            "tests/util/u.cpp",
            "tests/other.cpp",
        ],
        manifest,
    );
    let without = find_sources(&mf, false).unwrap();
    assert_eq!(without.libs[0].units, ["src/a.cppm", "tests/other.cpp"]);
    assert!(without.tests.is_empty());
    let with = find_sources(&mf, true).unwrap();
    assert_eq!(
        with.libs, without.libs,
        "the library does not depend on the request"
    );
    assert_eq!(with.tests.len(), 1);
    assert_eq!(with.tests[0].name, "checks");
    assert_eq!(
        with.tests[0].units,
        ["tests/checks.cpp", "tests/util/u.cpp"]
    );
}

#[test]
fn two_tests_may_share_a_source() {
    let manifest = "[[test]]\nname = \"a\"\nmain = \"tests/a.cpp\"\nsources = [\"tests/cfg.cppm\"]\n[[test]]\nname = \"b\"\nmain = \"tests/b.cpp\"\nsources = [\"tests/cfg.cppm\"]\n[[bin]]\nname = \"x\"\nmain = \"m.cpp\"\n";
    let (_t, mf) = project(
        &["tests/a.cpp", "tests/b.cpp", "tests/cfg.cppm", "m.cpp"],
        manifest,
    );
    let s = find_sources(&mf, true).unwrap();
    assert_eq!(s.tests[0].units, ["tests/a.cpp", "tests/cfg.cppm"]);
    assert_eq!(s.tests[1].units, ["tests/b.cpp", "tests/cfg.cppm"]);
}

#[test]
fn test_entries_are_checked_at_their_line() {
    let (_t, mf) = project(
        &["m.cpp"],
        "[[bin]]\nname = \"a\"\nmain = \"m.cpp\"\n[[test]]\nname = \"a\"\nmain = \"m.cpp\"\n",
    );
    let e = find_sources(&mf, false).unwrap_err();
    assert!(
        e.message
            .contains("a [[bin]] and a [[test]] are both named `a`"),
        "{e}"
    );
    assert_eq!(e.location.unwrap().line, 8);

    let (_t, mf) = project(
        &["m.cpp"],
        "[[bin]]\nname = \"a\"\nmain = \"m.cpp\"\n[[test]]\nname = \"t\"\nmain = \"tests/t.cpp\"\n",
    );
    let e = find_sources(&mf, false).unwrap_err();
    assert!(
        e.message
            .contains("test `t`: main file `tests/t.cpp` does not exist"),
        "{e}"
    );
    assert_eq!(e.location.unwrap().line, 9);
}

#[test]
fn the_walk_is_sorted_and_skips_hidden_entries_linked_dirs_and_nested_packages() {
    let (t, _mf) = project(
        &[
            "b/z.cpp",
            "b/a.cpp",
            "a.cpp",
            "c/.d/x.cpp",
            "pkg/cmod.toml",
            "pkg/y.cpp",
            "real/r.cpp",
        ],
        "[lib]\n",
    );
    std::os::unix::fs::symlink(t.path().join("real"), t.path().join("result")).unwrap();
    std::os::unix::fs::symlink(t.path().join("a.cpp"), t.path().join("link.cpp")).unwrap();
    // A dangling `cmod.toml` link does not make a package.
    std::fs::create_dir(t.path().join("dangling")).unwrap();
    std::os::unix::fs::symlink("missing", t.path().join("dangling/cmod.toml")).unwrap();
    std::fs::write(t.path().join("dangling/w.cpp"), "").unwrap();
    let walk = package_files(t.path(), &ListingCache::in_memory()).unwrap();
    assert_eq!(
        walk.files,
        [
            "a.cpp",
            "b/a.cpp",
            "b/z.cpp",
            "cmod.toml",
            "dangling/w.cpp",
            "link.cpp",
            "real/r.cpp"
        ]
    );
    assert_eq!(
        walk.escaping.keys().collect::<Vec<_>>(),
        ["dangling/cmod.toml"]
    );
}

#[test]
fn bad_glob() {
    let (_t, mf) = project(&["a.cpp"], "[lib]\nsources = [\"src/[.cpp\"]\n");
    let e = find_sources(&mf, false).unwrap_err();
    assert!(e.message.contains("not a valid glob"), "{e}");
}

#[test]
fn nothing_to_build() {
    let (_t, mf) = project(&[], "");
    let e = find_sources(&mf, false).unwrap_err();
    assert!(e.message.contains("neither [lib] nor [[bin]]"), "{e}");
}
