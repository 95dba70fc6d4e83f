//! Header units (`import <vector>;`, `import "cfg.h";`, `export import <string>;`) with the
//! real clang-19 in the full sandbox: the shipped examples under libstdc++ and libc++
//! (realised, run, rebuilt bit for bit with `--check`, no-op), one header unit shared by
//! every importer with the same flags, a header edit reaching its importers, and a macro
//! of a header unit deciding what a later `#if` imports.

mod common;

use common::{run, Sandbox};

/// The built derivations whose names contain `part`.
fn named<'a>(built: &'a [String], part: &str) -> Vec<&'a String> {
    built.iter().filter(|n| n.contains(part)).collect()
}

#[test]
fn system_and_user_header_units_under_libstdcxx() {
    let s = Sandbox::new();
    s.copy_example("header-units");
    let app = s.dir.path().join("header-units/app");
    let r = s.realise(&app, &[]).ok();
    let built = r.built();
    // One header unit per header: banner's module, text and count (same flags) and
    // main.cpp all import `<banner/style.h>`; `<vector>` is imported by two modules.
    assert_eq!(
        named(&built, "-hu-include-banner-style.h-").len(),
        1,
        "{built:?}"
    );
    assert_eq!(named(&built, "-hu-vector-").len(), 1, "{built:?}");
    assert_eq!(named(&built, "-hu-string-").len(), 1, "{built:?}");
    assert_eq!(named(&built, "-hu-cstdio-").len(), 1, "{built:?}");
    assert_eq!(built.len(), 15, "{built:?}");
    assert_eq!(run(&r.target("app"), &[]), "hi!hi! 2 ok!ok! loud 10\n");
    // `cmod graph` shows each header unit once, and who imports it.
    let graph = s.cmod(&app, &["graph", "--format", "json"]);
    let graph: serde_json::Value = serde_json::from_slice(&graph.stdout).expect("graph JSON");
    let style = "header unit \"banner/include/banner/style.h\"";
    let hus: Vec<&str> = graph["header_units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(hus.iter().filter(|h| **h == style).count(), 1, "{hus:?}");
    assert!(hus.contains(&"header unit <vector>"), "{hus:?}");
    let main = graph["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["path"] == "main.cpp")
        .unwrap();
    assert_eq!(main["header_units"][1]["id"], style, "{main}");
    assert_eq!(main["header_units"][1]["line"], 5, "{main}");
    let check = s.realise(&app, &["--check"]).ok();
    assert_eq!(check.finished()["checked"], 15);
    assert_eq!(check.finished()["differing"], 0);
    let again = s.realise(&app, &[]).ok();
    assert!(again.built().is_empty(), "{:?}", again.built());

    // The header changes: its header unit and everything that imports it is rebuilt.
    let style = s
        .dir
        .path()
        .join("header-units/banner/include/banner/style.h");
    let text = std::fs::read_to_string(&style).unwrap();
    std::fs::write(&style, text.replace("BANNER_REPEAT 2", "BANNER_REPEAT 3")).unwrap();
    let edited = s.realise(&app, &[]).ok();
    let rebuilt = edited.built();
    assert_eq!(
        named(&rebuilt, "-hu-include-banner-style.h-").len(),
        1,
        "{rebuilt:?}"
    );
    assert!(named(&rebuilt, "-hu-vector-").is_empty(), "{rebuilt:?}");
    assert_eq!(
        run(&edited.target("app"), &[]),
        "hi!hi!hi! 3 ok!ok!ok! loud 10\n"
    );
}

#[test]
fn system_and_user_header_units_under_libcxx() {
    let s = Sandbox::new();
    let dir = s.copy_example("header-units-libcxx");
    let r = s.realise(&dir, &[]).ok();
    let built = r.built();
    for part in [
        "-hu-vector-",
        "-hu-algorithm-",
        "-hu-cstdio-",
        "-hu-src-settings.h-",
    ] {
        assert_eq!(named(&built, part).len(), 1, "{part}: {built:?}");
    }
    assert_eq!(run(&r.target("sorted"), &[]), "3 2 1 (libc++)\n");
    let check = s.realise(&dir, &["--check"]).ok();
    assert_eq!(check.finished()["differing"], 0);
    assert_eq!(check.finished()["checked"], built.len());
    assert!(s.realise(&dir, &[]).ok().built().is_empty());
}

/// The scanner sees a header unit's macros as the compile will: a `#if` on one decides
/// whether a module is imported, and so which modules are built and linked.
#[test]
fn a_header_units_macro_decides_a_later_import() {
    let s = Sandbox::new();
    let dir = s.project(
        "macros",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"macros\"\nversion = \"0.1.0\"\n\n[toolchain]\ncompiler = \"clang++-19\"\ncxx-standard = 20\n\n[lib]\nname = \"macros\"\nsources = [\"src/*.cppm\"]\n\n[[bin]]\nname = \"macros\"\nmain = \"main.cpp\"\n",
            ),
            ("src/feature.h", "#define USE_FANCY 1\n"),
            ("src/fancy.cppm", "export module fancy;\nexport int fancy() { return 7; }\n"),
            ("src/plain.cppm", "export module plain;\nexport int plain() { return 1; }\n"),
            (
                "main.cpp",
                "import \"src/feature.h\";\n#if USE_FANCY\nimport fancy;\nint value() { return fancy(); }\n#else\nimport plain;\nint value() { return plain(); }\n#endif\nimport <cstdio>;\nint main() { std::printf(\"%d\\n\", value()); }\n",
            ),
        ],
    );
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(run(&r.target("macros"), &[]), "7\n");
    std::fs::write(dir.join("src/feature.h"), "#define USE_FANCY 0\n").unwrap();
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(run(&r.target("macros"), &[]), "1\n");
}

fn two_libraries(s: &Sandbox, name: &str, main: &str, bin_uses: &str) -> std::path::PathBuf {
    s.project(
        name,
        &[
            (
                "cmod.toml",
                &format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\n\n[[lib]]\nname = \"one\"\nsources = [\"b1/*.cppm\"]\ndefines = [\"FLAVOUR=1\"]\n\n[[lib]]\nname = \"two\"\nsources = [\"b2/*.cppm\"]\ndefines = [\"FLAVOUR=2\"]\nuses = [\"one\"]\n\n[[bin]]\nname = \"{name}\"\nmain = \"main.cpp\"\nuses = [{bin_uses}]\n"),
            ),
            ("b1/one.cppm", "export module one;\nimport <vector>;\nexport int one() { return static_cast<int>(std::vector<int>(1).size()); }\n"),
            ("b2/two.cppm", "export module two;\nimport <vector>;\nexport int two() { return static_cast<int>(std::vector<int>(2).size()); }\n"),
            ("main.cpp", main),
        ],
    )
}

/// Libraries with different defines import `<vector>`: an importer of a module takes the
/// header unit that module was built against (clang accepts one per header), so one
/// header unit serves both; two modules built against two different ones cannot meet in
/// one unit, which is an error at the second import.
#[test]
fn one_header_unit_per_header_in_a_translation_unit() {
    let s = Sandbox::new();
    // `two` uses `one` but does not import it: each library builds its own `<vector>`.
    let dir = two_libraries(
        &s,
        "apart",
        "import one;\n// two comes next\nimport two;\nint main() { return one() + two() - 3; }\n",
        "\"one\", \"two\"",
    );
    let (code, err) = common::failure(&s.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("header unit `<vector>` reaches `main.cpp` built two ways, through `one` and through `two`"),
        "{err}"
    );
    assert!(err.contains("main.cpp:3:1"), "{err}");
    assert!(
        err.contains("help: give the targets whose units import `<vector>` the same defines"),
        "{err}"
    );

    // Through one module only, the other library's flags do not matter.
    let dir = two_libraries(
        &s,
        "through",
        "import two;\nint main() { return two() - 2; }\n",
        "\"two\"",
    );
    let mut files = std::fs::read_to_string(dir.join("b2/two.cppm")).unwrap();
    files = files.replace("import <vector>;\n", "import <vector>;\nimport one;\n");
    std::fs::write(dir.join("b2/two.cppm"), files).unwrap();
    let r = s.realise(&dir, &[]).ok();
    let built = r.built();
    assert_eq!(named(&built, "-hu-vector-").len(), 1, "{built:?}");
    assert!(s.realise(&dir, &["--check"]).ok().finished()["differing"] == 0);
}
