//! Speculative builds with real clang in the real sandbox, on a copy of
//! `examples/library` (14 steps: its cold build is small enough to record a recipe for
//! every compile). After an edit, the edited unit's compile starts before the
//! evaluation ends; it is taken only when it is the build the evaluation asks for.

mod common;

use std::path::PathBuf;

use common::{edit, failure, run, Realised, Sandbox};

fn names(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|n| format!("geometry-1.2.0-{n}")).collect();
    v.sort();
    v
}

/// The steps built ahead of the evaluation, sorted.
fn ahead(r: &Realised) -> Vec<String> {
    let mut v: Vec<String> = r
        .messages
        .iter()
        .filter(|m| m["reason"] == "built" && m["speculative"] == true)
        .map(|m| m["name"].as_str().unwrap_or_default().to_string())
        .collect();
    v.sort();
    v
}

/// The output `out` of the step `name` built in `r`.
fn built_output(r: &Realised, name: &str, out: &str) -> PathBuf {
    let m = r
        .messages
        .iter()
        .find(|m| m["reason"] == "built" && m["name"] == name)
        .unwrap_or_else(|| panic!("{name} was not built: {:?}", r.built()));
    PathBuf::from(m["outputs"][out].as_str().unwrap())
}

const AREA: &str = "src/area.cpp";
const AREA_O: &str = "geometry-1.2.0-src-area.cpp.o";

#[test]
fn an_edited_unit_is_built_ahead_and_matches_a_build_without_it() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    s.realise(&dir, &[]).ok();
    edit(
        &dir.join(AREA),
        "return 0.5 * s.a * s.b;",
        "return s.a * s.b / 2.0 + 0.0 * s.a;",
    );
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(
        r.built(),
        names(&["src-area.cpp.o", "libgeometry.a", "shapes"])
    );
    assert_eq!(ahead(&r), vec![AREA_O.to_string()]);
    assert!(run(&r.target("shapes"), &[]).contains("total 19.14"));

    // The same sources built from scratch in another store, one job (nothing ahead):
    // the same object, byte for byte, under the same content-addressed name.
    let other = Sandbox::new();
    let copy = other.dir.path().join("library");
    common::copy_dir(&dir, &copy);
    let fresh = other.realise(&copy, &["-j1"]).ok();
    assert!(ahead(&fresh).is_empty());
    let (a, b) = (
        built_output(&r, AREA_O, "obj"),
        built_output(&fresh, AREA_O, "obj"),
    );
    assert_eq!(a.file_name(), b.file_name());
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    s.assert_store_verifies(&dir);
}

#[test]
fn an_edit_that_changes_the_units_imports_is_built_by_the_realiser() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    s.realise(&dir, &[]).ok();
    // The recipe reads `geometry:detail`; the edited unit no longer does, so its step
    // has other inputs and the run ahead (with the old ones) is not the step's build.
    edit(&dir.join(AREA), "import :detail;\n", "");
    edit(&dir.join(AREA), "detail::pi", "3.14159265358979323846");
    let r = s.realise(&dir, &[]).ok();
    // (The object comes out as before: early cutoff spares the archive and the link.)
    assert_eq!(r.built(), vec![AREA_O.to_string()]);
    assert!(ahead(&r).is_empty(), "{:?}", ahead(&r));
    assert!(run(&r.target("shapes"), &[]).contains("total 19.14"));
    s.assert_store_verifies(&dir);
}

#[test]
fn a_broken_edit_fails_once_and_its_fix_is_built_ahead() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    s.realise(&dir, &[]).ok();
    edit(&dir.join(AREA), "return s.a * s.b;", "return s.a * ;");
    let out = s.cmod(&dir, &["realise"]);
    let (code, err) = failure(&out);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err.matches("error: expected expression").count(),
        1,
        "{err}"
    );
    assert!(err.contains("src/area.cpp:11:"), "{err}");
    edit(&dir.join(AREA), "return s.a * ;", "return s.a * s.b;");
    edit(
        &dir.join(AREA),
        "return 0.5 * s.a * s.b;",
        "return s.b * s.a * 0.5;",
    );
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(ahead(&r), vec![AREA_O.to_string()]);
    assert!(run(&r.target("shapes"), &[]).contains("total 19.14"));
}

#[test]
fn one_job_builds_nothing_ahead() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    s.realise(&dir, &[]).ok();
    edit(&dir.join(AREA), "return s.a * s.b;", "return s.b * s.a;");
    let r = s.realise(&dir, &["-j1"]).ok();
    assert_eq!(
        r.built(),
        names(&["src-area.cpp.o", "libgeometry.a", "shapes"])
    );
    assert!(ahead(&r).is_empty());
    // The recipes were still recorded: the next edit with two jobs is built ahead.
    edit(
        &dir.join(AREA),
        "return s.b * s.a;",
        "return s.a * s.b * 1.0;",
    );
    let r = s.realise(&dir, &["-j2"]).ok();
    assert_eq!(ahead(&r), vec![AREA_O.to_string()]);
}

/// A project whose interface `core` is read by `UNITS` implementation units: an edit of
/// the interface rebuilds more steps than an edit's recipes are recorded for.
const UNITS: usize = 18;

fn fan_out_project(s: &Sandbox) -> PathBuf {
    let decls: String = (0..UNITS)
        .map(|i| format!("export int f{i}();\n"))
        .collect();
    let calls: String = (0..UNITS).map(|i| format!(" + f{i}()")).collect();
    let mut files = vec![
        (
            "cmod.toml".to_string(),
            "[package]\nname = \"fan\"\nversion = \"0.1.0\"\n\n[toolchain]\ncompiler = \"clang++-19\"\ncxx-standard = 20\n\n[lib]\nsources = [\"src/**/*.cppm\", \"src/**/*.cpp\"]\n\n[[bin]]\nname = \"fan\"\nmain = \"main.cpp\"\n".to_string(),
        ),
        ("src/base.cppm".into(), "export module base;\nexport int base() { return 0; }\n".into()),
        ("src/core.cppm".into(), format!("export module core;\nimport base;\n{decls}// edits\n")),
        (
            "main.cpp".into(),
            format!("#include <cstdio>\nimport core;\nint main() {{ std::printf(\"sum %d\\n\", 0{calls}); }}\n"),
        ),
    ];
    for i in 0..UNITS {
        files.push((
            format!("src/f{i}.cpp"),
            format!("module core;\nint f{i}() {{ return {i} + base(); }}\n"),
        ));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    s.project("fan", &files)
}

/// The sum the fan-out project's binary prints.
fn fan_sum() -> String {
    format!("sum {}", (0..UNITS).sum::<usize>())
}

#[test]
fn an_edited_interface_that_rebuilds_much_is_built_ahead_at_every_edit() {
    let s = Sandbox::new();
    let dir = fan_out_project(&s);
    let cold = s.realise(&dir, &[]).ok();
    assert!(cold.built().len() > UNITS, "{:?}", cold.built());
    let core = dir.join("src/core.cppm");
    // Each edit changes the interface: its BMI, and every unit reading it, are rebuilt.
    // The first is built ahead from the cold build's unit recipe, through the module
    // table (core imports base); the second from the recipe the first recorded.
    edit(&core, "// edits\n", "export int g1();\n// edits\n");
    let first = s.realise(&dir, &[]).ok();
    assert!(first.built().len() > UNITS, "{:?}", first.built());
    assert_eq!(ahead(&first), vec!["fan-0.1.0-core.pcm".to_string()]);
    assert!(run(&first.target("fan"), &[]).contains(&fan_sum()));
    edit(&core, "// edits\n", "export int g2();\n// edits\n");
    let second = s.realise(&dir, &[]).ok();
    assert!(second.built().len() > UNITS, "{:?}", second.built());
    assert_eq!(ahead(&second), vec!["fan-0.1.0-core.pcm".to_string()]);
    assert!(run(&second.target("fan"), &[]).contains(&fan_sum()));
    s.assert_store_verifies(&dir);
}

/// After a cold build (too large to record recent recipes), the first edit of an
/// implementation unit is built ahead: its unit recipe, with the closure (core, base)
/// walked through the module table. The object is the one a build from scratch makes.
#[test]
fn the_first_edit_of_a_unit_after_a_cold_build_is_built_ahead() {
    let s = Sandbox::new();
    let dir = fan_out_project(&s);
    s.realise(&dir, &[]).ok();
    edit(&dir.join("src/f7.cpp"), "return 7 +", "return 3 + 4 +");
    let r = s.realise(&dir, &[]).ok();
    const F7: &str = "fan-0.1.0-src-f7.cpp.o";
    assert!(r.built().contains(&F7.to_string()), "{:?}", r.built());
    assert_eq!(ahead(&r), vec![F7.to_string()]);
    assert!(run(&r.target("fan"), &[]).contains(&fan_sum()));
    let other = Sandbox::new();
    let copy = other.dir.path().join("fan");
    common::copy_dir(&dir, &copy);
    let fresh = other.realise(&copy, &["-j1"]).ok();
    let (a, b) = (built_output(&r, F7, "obj"), built_output(&fresh, F7, "obj"));
    assert_eq!(a.file_name(), b.file_name());
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    s.assert_store_verifies(&dir);
}
