//! Several libraries in one package, per-target and per-source settings, usage
//! requirements across libraries and packages, and module names unique per link.

mod common;

use common::{failure, run, Sandbox};

#[test]
fn multi_lib_builds_runs_tests_both_module_variants_and_rebuilds_bit_identically() {
    let s = Sandbox::new();
    let dir = s.copy_example("multi-lib");
    let r = s.realise(&dir, &[]).ok();
    let built = r.built();
    for name in [
        "toolkit-0.2.0-libcore.a",
        "toolkit-0.2.0-libtext.a",
        "toolkit-0.2.0-toolkit",
    ] {
        assert!(built.contains(&name.to_string()), "{name} in {built:?}");
    }
    assert_eq!(
        run(&r.target("toolkit"), &[]),
        "== TOOLKIT ==\no  l  d\nbuilt with core 0.2.0\n"
    );
    assert!(
        r.finished()["targets"]["libcore.a"].is_string(),
        "{}",
        r.finished()
    );
    assert!(
        r.finished()["targets"]["libtext.a"].is_string(),
        "{}",
        r.finished()
    );
    // One module source, two tests, two defines: two BMIs of `settings`.
    let test = s.cmod(&dir, &["test", "--message-format", "json"]);
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );
    let stdout = String::from_utf8_lossy(&test.stdout);
    let settings_bmis = stdout
        .lines()
        .filter(|l| l.contains("\"reason\":\"built\"") && l.contains("toolkit-0.2.0-settings.pcm"))
        .count();
    assert_eq!(settings_bmis, 2, "{stdout}");
    assert!(stdout.contains("\"passed\":2"), "{stdout}");
    let check = s.realise(&dir, &["--check"]).ok();
    assert_eq!(check.finished()["differing"], 0, "{}", check.finished());
    assert!(s.realise(&dir, &[]).ok().built().is_empty());
}

#[test]
fn each_library_is_a_target_and_a_private_define_edit_rebuilds_its_library_only() {
    let s = Sandbox::new();
    let dir = s.copy_example("multi-lib");
    s.realise(&dir, &[]).ok();
    let r = s.realise(&dir, &["libcore.a", "--no-link"]).ok();
    assert!(r.built().is_empty());
    // A define private to `text` changes text's units only; core is untouched.
    let manifest = std::fs::read_to_string(dir.join("cmod.toml")).unwrap();
    std::fs::write(
        dir.join("cmod.toml"),
        manifest.replace(
            "defines = [\"TEXT_BUILDING\"]",
            "defines = [\"TEXT_BUILDING\", \"EXTRA=1\"]",
        ),
    )
    .unwrap();
    let r = s.realise(&dir, &[]).ok();
    let built = r.built();
    assert!(built.iter().all(|b| !b.contains("core")), "{built:?}");
    assert!(
        built.contains(&"toolkit-0.2.0-text.pcm".to_string()),
        "{built:?}"
    );
    // The `lib` alias is ambiguous with two libraries.
    let (code, err) = failure(&s.cmod(&dir, &["realise", "lib"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`lib` names several targets"), "{err}");
}

fn project(s: &Sandbox, manifest: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let mut all = vec![("cmod.toml", manifest)];
    all.extend_from_slice(files);
    s.project("p", &all)
}

const HEAD: &str = "[package]\nname = \"p\"\nversion = \"0.1.0\"\n";

#[test]
fn two_modules_of_one_name_in_one_link_are_an_error_naming_both() {
    let s = Sandbox::new();
    let manifest = format!(
        "{HEAD}[[lib]]\nname = \"a\"\nsources = [\"a/*\"]\n[[lib]]\nname = \"b\"\nsources = [\"b/*\"]\n[[bin]]\nname = \"app\"\nmain = \"main.cpp\"\n"
    );
    let dir = project(
        &s,
        &manifest,
        &[
            (
                "a/util.cppm",
                "export module util;\nexport int a() { return 1; }\n",
            ),
            (
                "b/util.cppm",
                "// b's own\nexport module util;\nexport int b() { return 2; }\n",
            ),
            ("main.cpp", "int main() {}\n"),
        ],
    );
    let (code, err) = failure(&s.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("module `util` is declared twice in what binary `app` of package `p` links: by library `a` of package `p` and by library `b` of package `p`"),
        "{err}"
    );
    assert!(err.contains("b/util.cppm:2:1"), "{err}");
    assert!(
        err.contains("a/util.cppm:1:1"),
        "the other one is named: {err}"
    );
    // Each library alone is fine: a binary that uses only `a` links one `util`.
    std::fs::write(dir.join("cmod.toml"), format!("{manifest}uses = [\"a\"]\n")).unwrap();
    let r = s.realise(&dir, &[]).ok();
    assert!(r.success());
}

#[test]
fn importing_a_module_of_a_library_the_target_does_not_use_says_what_to_add() {
    let s = Sandbox::new();
    let manifest = format!(
        "{HEAD}[[lib]]\nname = \"core\"\nsources = [\"core/*\"]\n[[lib]]\nname = \"io\"\nsources = [\"io/*\"]\n"
    );
    let dir = project(
        &s,
        &manifest,
        &[
            (
                "core/core.cppm",
                "export module core;\nexport int one() { return 1; }\n",
            ),
            (
                "io/io.cppm",
                "export module io;\nimport core;\nexport int two() { return one() + 1; }\n",
            ),
        ],
    );
    let (code, err) = failure(&s.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("module `core` belongs to library `core`, which library `io` of package `p` does not use"), "{err}");
    assert!(err.contains("io/io.cppm:2:1"), "{err}");
    assert!(err.contains("add `uses = [\"core\"]`"), "{err}");
    std::fs::write(
        dir.join("cmod.toml"),
        format!("{manifest}uses = [\"core\"]\n"),
    )
    .unwrap();
    assert!(s.realise(&dir, &[]).ok().success());
}

#[test]
fn target_errors_point_at_their_lines() {
    let s = Sandbox::new();
    let cases: &[(&str, &str, &str)] = &[
        (
            "[lib]\nuses = [\"nope\"]\n",
            "`nope` is not a library of this package",
            "cmod.toml:5:9",
        ),
        (
            "[[lib]]\nname = \"a\"\n[[lib]]\nsources = [\"src/*\"]\n",
            "must name each of them",
            "cmod.toml:6:1",
        ),
        (
            "[lib]\n[[bin]]\nname = \"x\"\nmain = \"m.cpp\"\npublic-defines = [\"X\"]\n",
            "`public-defines` does not apply to a [[bin]]",
            "cmod.toml:8:19",
        ),
        (
            "[lib]\nsources = [\"lib/*.cpp\"]\n",
            "match no translation units",
            "cmod.toml:5:12",
        ),
        (
            "[lib]\ndefines = [\"-DX\"]\n",
            "`-DX` in the target is not a define",
            "cmod.toml:5:12",
        ),
        (
            "[lib]\ncxxflags = [\"-I/opt/include\"]\n",
            "is not inside the package",
            "cmod.toml:5:13",
        ),
        (
            "[lib]\n[[lib.overrides]]\nfiles = [\"src/[\"]\n",
            "is not a valid glob",
            "cmod.toml:6:10",
        ),
    ];
    for (body, want, at) in cases {
        let dir = project(
            &s,
            &format!("{HEAD}{body}"),
            &[
                ("src/a.cpp", "int a() { return 0; }\n"),
                ("m.cpp", "int main() {}\n"),
            ],
        );
        let (code, err) = failure(&s.cmod(&dir, &["realise"]));
        assert_eq!(code, 2, "{body}: {err}");
        assert!(err.contains(want), "{body}: {err}");
        assert!(err.contains(at), "{body}: {at} in {err}");
    }
}

#[test]
fn public_include_dirs_reach_dependents_and_private_ones_do_not() {
    let s = Sandbox::new();
    let base = s.project(
        "base",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"base\"\nversion = \"1.0.0\"\n[lib]\npublic-include-dirs = [\"include\"]\ninclude-dirs = [\"private\"]\n",
            ),
            ("include/base/api.h", "#pragma once\n#define BASE_ANSWER 42\n"),
            ("private/secret.h", "#pragma once\n#define SECRET 1\n"),
            ("src/base.cppm", "module;\n#include <base/api.h>\n#include <secret.h>\nexport module base;\nexport int answer() { return BASE_ANSWER + SECRET - 1; }\n"),
        ],
    );
    let app = s.project(
        "app",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"app\"\nversion = \"1.0.0\"\n[[bin]]\nname = \"app\"\nmain = \"main.cpp\"\n[dependencies]\nbase = { path = \"../base\" }\n",
            ),
            ("main.cpp", "#include <cstdio>\n#include <base/api.h>\nimport base;\nint main() { std::printf(\"%d %d\\n\", answer(), BASE_ANSWER); }\n"),
        ],
    );
    let r = s.realise(&app, &[]).ok();
    assert_eq!(run(&r.target("app"), &[]), "42 42\n");
    // The dependency's header is an input like any header: editing it rebuilds its users.
    std::fs::write(
        base.join("include/base/api.h"),
        "#pragma once\n#define BASE_ANSWER 43\n",
    )
    .unwrap();
    let r = s.realise(&app, &[]).ok();
    assert!(
        r.built().contains(&"app-1.0.0-main.cpp.o".to_string()),
        "{:?}",
        r.built()
    );
    assert_eq!(run(&r.target("app"), &[]), "43 43\n");
    // A private include directory does not reach the dependent.
    std::fs::write(
        app.join("main.cpp"),
        "#include <secret.h>\nint main() { return SECRET - 1; }\n",
    )
    .unwrap();
    let (code, err) = failure(&s.cmod(&app, &["realise"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("main.cpp:1:10: fatal error: 'secret.h' file not found")
            || err.contains("'secret.h' file not found"),
        "{err}"
    );
    assert!(err.contains("main.cpp:1:10"), "{err}");
}

#[test]
fn libraries_of_one_name_in_two_packages_link_into_one_binary() {
    let s = Sandbox::new();
    let lib = |pkg: &str, module: &str, value: i32| {
        s.project(
            pkg,
            &[
                (
                    "cmod.toml",
                    &format!("[package]\nname = \"{pkg}\"\nversion = \"1.0.0\"\n[lib]\nname = \"core\"\n"),
                ),
                ("src/m.cppm", &format!("export module {module};\nexport int {module}_value() {{ return {value}; }}\n")),
            ],
        )
    };
    lib("left", "lhs", 1);
    lib("right", "rhs", 2);
    let app = s.project(
        "app",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"app\"\nversion = \"1.0.0\"\n[[bin]]\nname = \"app\"\nmain = \"main.cpp\"\n[dependencies]\nleft = { path = \"../left\" }\nright = { path = \"../right\" }\n",
            ),
            ("main.cpp", "#include <cstdio>\nimport lhs;\nimport rhs;\nint main() { std::printf(\"%d\\n\", lhs_value() + rhs_value()); }\n"),
        ],
    );
    let r = s.realise(&app, &[]).ok();
    assert_eq!(run(&r.target("app"), &[]), "3\n");
}

/// A store kept inside the package (`--store ./store`) is never searched for sources: it
/// holds copies of the units (`<hash>-m.cppm`), which a `**` glob would otherwise pick up
/// as a second provider of every module on the next build.
#[test]
fn a_store_inside_the_package_is_not_searched_for_sources() {
    let s = Sandbox::new();
    let dir = project(
        &s,
        &format!("{HEAD}\n[lib]\nname = \"m\"\nsources = [\"**/*.cppm\"]\n\n[[bin]]\nname = \"p\"\nmain = \"main.cpp\"\n"),
        &[
            ("src/m.cppm", "export module m;\nexport int f() { return 4; }\n"),
            ("main.cpp", "import m;\nint main() { return f() == 4 ? 0 : 1; }\n"),
        ],
    );
    let inside = dir.join("store");
    let realise = || common::cmod_in(&dir, &inside, &["realise", "--message-format", "json"]);
    let first = common::Realised::parse(realise()).ok();
    assert!(!first.built().is_empty());
    assert!(inside.join("CACHEDIR.TAG").is_file());
    let copies = std::fs::read_dir(inside.join("v1/store"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("-m.cppm")
        })
        .count();
    assert_eq!(copies, 1, "the unit's source is in the store");
    let again = common::Realised::parse(realise()).ok();
    assert!(again.built().is_empty(), "{:?}", again.built());
}
