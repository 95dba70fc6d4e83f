use super::*;
use crate::sources::find_sources;

fn package(files: &[&str], extra: &str) -> (tempfile::TempDir, ManifestFile) {
    let t = tempfile::tempdir().unwrap();
    for f in files {
        let p = t.path().join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "").unwrap();
    }
    let text = format!("[package]\nname = \"p\"\nversion = \"1.0.0\"\n{extra}");
    std::fs::write(t.path().join("cmod.toml"), &text).unwrap();
    let mf = ManifestFile::load(&t.path().join("cmod.toml")).unwrap();
    (t, mf)
}

fn targets(mf: &ManifestFile) -> Result<PackageTargets, EvalError> {
    package_targets(mf, &find_sources(mf, true).unwrap())
}

const FOUR: &[&str] = &[
    "a/a.cppm", "b/b.cppm", "c/c.cppm", "d/d.cppm", "m.cpp", "t.cpp",
];

fn lib(name: &str, extra: &str) -> String {
    format!("[[lib]]\nname = \"{name}\"\nsources = [\"{name}/*\"]\n{extra}")
}

#[test]
fn uses_resolve_to_visible_and_linked_libraries() {
    // a uses b privately; b uses c publicly; c uses d privately.
    let manifest = [
        lib("a", "uses = [\"b\"]\n"),
        lib("b", "public-uses = [\"c\"]\n"),
        lib("c", "uses = [\"d\"]\n"),
        lib("d", ""),
        "[[bin]]\nname = \"app\"\nmain = \"m.cpp\"\nuses = [\"a\"]\n".into(),
        "[[test]]\nname = \"t\"\nmain = \"t.cpp\"\n".into(),
    ]
    .concat();
    let (_t, mf) = package(FOUR, &manifest);
    let t = targets(&mf).unwrap();
    let names: Vec<&str> = t.libs.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d"]);
    // a sees itself, b, and (through b's public use) c, but not d.
    assert_eq!(t.libs[0].visible_libs, [0, 1, 2]);
    // a's link has everything, users before what they use.
    assert_eq!(t.libs[0].linked_libs, [0, 1, 2, 3]);
    assert_eq!(t.libs[1].public_libs, [2]);
    assert!(t.libs[0].public_libs.is_empty());
    assert_eq!(t.bins[0].visible_libs, [0]);
    assert_eq!(t.bins[0].linked_libs, [0, 1, 2, 3]);
    // An executable naming no `uses` uses every library.
    assert_eq!(t.tests[0].visible_libs, [0, 1, 2, 3]);
}

#[test]
fn unknown_self_and_cyclic_uses_are_errors_at_their_line() {
    let (_t, mf) = package(
        FOUR,
        &[lib("a", "uses = [\"bb\"]\n"), lib("b", "")].concat(),
    );
    let e = targets(&mf).unwrap_err();
    assert_eq!(e.message, "`bb` is not a library of this package");
    assert_eq!(e.help.as_deref(), Some("did you mean `b`?"));
    assert_eq!(e.location.unwrap().line, 7);

    let (_t, mf) = package(FOUR, &lib("a", "uses = [\"a\"]\n"));
    assert!(targets(&mf)
        .unwrap_err()
        .message
        .contains("library `a` uses itself"));

    let (_t, mf) = package(
        FOUR,
        &[
            lib("a", "uses = [\"b\"]\n"),
            lib("b", "public-uses = [\"a\"]\n"),
        ]
        .concat(),
    );
    let e = targets(&mf).unwrap_err();
    assert_eq!(e.message, "libraries use each other in a cycle: a → b → a");
    assert_eq!(e.location.unwrap().line, 4);

    let (_t, mf) = package(
        &["m.cpp"],
        "[[bin]]\nname = \"x\"\nmain = \"m.cpp\"\nuses = [\"core\"]\n",
    );
    let e = targets(&mf).unwrap_err();
    assert!(
        e.help.unwrap().contains("this package has no library"),
        "{}",
        e.message
    );
}

#[test]
fn fields_that_do_not_apply_are_errors_at_their_line() {
    let cases = [
        (
            "[lib]\nmain = \"m.cpp\"\n",
            "`main` does not apply to a library",
            5,
        ),
        (
            "[lib]\n[[bin]]\nname = \"x\"\nmain = \"m.cpp\"\npublic-defines = [\"X\"]\n",
            "`public-defines` does not apply to a [[bin]]",
            8,
        ),
        (
            "[lib]\n[[test]]\nname = \"x\"\nmain = \"m.cpp\"\nkind = \"static\"\n",
            "`kind` does not apply to a [[test]]",
            8,
        ),
        (
            "[lib]\n[[bin]]\nname = \"x\"\nmain = \"m.cpp\"\npublic-modules = [\"m\"]\n",
            "`public-modules` does not apply to a [[bin]]",
            8,
        ),
        (
            "[lib]\n[[bin]]\nname = \"x\"\nmain = \"m.cpp\"\npublic-include-dirs = [\"i\"]\n",
            "`public-include-dirs` does not apply",
            8,
        ),
    ];
    for (extra, want, line) in cases {
        let (_t, mf) = package(&["src/a.cppm", "m.cpp"], extra);
        let e = targets(&mf).unwrap_err();
        assert!(e.message.contains(want), "{extra}: {e}");
        assert_eq!(e.location.unwrap().line, line, "{extra}");
    }
}

#[test]
fn a_pch_is_a_header_of_the_package() {
    let (_t, mf) = package(&["src/a.cpp", "src/pch.h"], "[lib]\npch = \"src/pch.h\"\n");
    assert!(targets(&mf).is_ok());
    for (pch, want) in [
        ("src/missing.h", "is not a file of the package"),
        ("../outside.h", "is not a file of the package"),
        ("src/a.cpp", "a translation unit, not a header"),
    ] {
        let (_t, mf) = package(
            &["src/a.cpp", "src/pch.h"],
            &format!("[lib]\npch = \"{pch}\"\n"),
        );
        let e = targets(&mf).unwrap_err();
        assert!(e.message.contains(want), "{pch}: {e}");
        assert_eq!(e.location.unwrap().line, 5);
    }
}

#[test]
fn public_modules_are_kept_with_their_lines() {
    let (_t, mf) = package(
        &["src/a.cppm"],
        "[lib]\npublic-modules = [\"a\", \"a.extra\"]\n",
    );
    let t = targets(&mf).unwrap();
    let list = t.libs[0].public_modules.clone().unwrap();
    assert_eq!(
        list.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
        ["a", "a.extra"]
    );
    assert_eq!(list[1].1.line, 5);
    let (_t, mf) = package(&["src/a.cppm"], "[lib]\n");
    assert!(
        targets(&mf).unwrap().libs[0].public_modules.is_none(),
        "default: all public"
    );
}
