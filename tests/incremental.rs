//! Incremental rebuilds, counted from the `--message-format json` contract, on a copy of
//! `examples/library` (built without `-g`).

mod common;

use common::{edit, run, Sandbox};

fn names(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|n| format!("geometry-1.2.0-{n}")).collect();
    v.sort();
    v
}

#[test]
fn no_op_builds_nothing() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    s.realise(&dir, &[]).ok();
    let again = s.realise(&dir, &[]).ok();
    assert!(again.built().is_empty(), "{:?}", again.built());
    assert_eq!(again.finished()["fresh"], 14);
}

#[test]
fn implementation_body_edit_rebuilds_its_object_archive_and_link() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let first = s.realise(&dir, &[]).ok();
    edit(
        &dir.join("src/area.cpp"),
        "return 0.5 * s.a * s.b;",
        "return s.a * s.b / 2.0 + 0.0 * s.a;",
    );
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(
        r.built(),
        names(&["src-area.cpp.o", "libgeometry.a", "shapes"])
    );
    assert_ne!(r.target("shapes"), first.target("shapes"));
    assert!(run(&r.target("shapes"), &[]).contains("total 19.14"));
}

#[test]
fn exported_partition_signature_edit_rebuilds_it_and_its_importers() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    s.realise(&dir, &[]).ok();
    edit(
        &dir.join("src/shapes.cppm"),
        "double area(const Shape& s);",
        "double area(const Shape& s) noexcept;",
    );
    edit(
        &dir.join("src/area.cpp"),
        "double area(const Shape& s) {",
        "double area(const Shape& s) noexcept {",
    );
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(
        r.built(),
        names(&[
            // The partition's BMI and object, and every BMI that imports it.
            "geometry-shapes.pcm",
            "src-shapes.cppm.o",
            "geometry-format.pcm",
            "src-format.cppm.o",
            "geometry.pcm",
            "src-geometry.cppm.o",
            // Every unit whose closure contains it.
            "src-area.cpp.o",
            "src-describe.cpp.o",
            "app-table.cpp.o",
            "app-main.cpp.o",
            "libgeometry.a",
            "shapes",
        ])
    );
    // The internal partition does not import `:shapes`: its BMI and object are fresh.
    assert!(
        !r.built().iter().any(|n| n.contains("detail")),
        "{:?}",
        r.built()
    );
    assert!(run(&r.target("shapes"), &[]).contains("total 19.14"));
}

#[test]
fn comment_edit_in_a_plain_unit_is_cut_off_before_the_link() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let first = s.realise(&dir, &[]).ok();
    edit(
        &dir.join("app/table.cpp"),
        "// A plain translation unit of the binary.",
        "// A plain translation unit of the binary (edited comment).",
    );
    let r = s.realise(&dir, &[]).ok();
    // The object is rebuilt, comes out byte-identical, and nothing downstream runs.
    assert_eq!(r.built(), names(&["app-table.cpp.o"]));
    assert_eq!(r.target("shapes"), first.target("shapes"));
}

#[test]
fn header_edit_rebuilds_only_the_units_that_include_it() {
    let s = Sandbox::new();
    let dir = s.project(
        "hdr",
        &[
            ("cmod.toml", "[package]\nname = \"hdr\"\nversion = \"0.1.0\"\n[build]\ninclude-dirs = [\"include\"]\n[profile.dev]\ndebug = false\n[[bin]]\nname = \"hdr\"\nmain = \"src/main.cpp\"\nsources = [\"src/other.cpp\"]\n"),
            ("include/config.h", "#pragma once\n#define ANSWER 41\n"),
            ("src/main.cpp", "#include <cstdio>\n#include \"config.h\"\nint other();\nint main() { std::printf(\"%d %d\\n\", ANSWER, other()); }\n"),
            ("src/other.cpp", "int other() { return 7; }\n"),
        ],
    );
    let first = s.realise(&dir, &[]).ok();
    assert_eq!(run(&first.target("hdr"), &[]), "41 7\n");
    assert!(s.realise(&dir, &[]).ok().built().is_empty());
    std::fs::write(
        dir.join("include/config.h"),
        "#pragma once\n#define ANSWER 42\n",
    )
    .unwrap();
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(r.built(), ["hdr-0.1.0-hdr", "hdr-0.1.0-src-main.cpp.o"]);
    assert_eq!(run(&r.target("hdr"), &[]), "42 7\n");
}

/// The no-op path keys its caches on file metadata and directory listings; a unit added
/// to a globbed directory, and a changed flag in the manifest, must still be noticed.
#[test]
fn a_no_op_notices_a_new_unit_and_a_changed_define() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let first = s.realise(&dir, &[]).ok();
    assert!(s.realise(&dir, &[]).ok().built().is_empty());

    std::fs::write(
        dir.join("src/extra.cpp"),
        "module geometry;\nnamespace geometry { int extra_unit() { return 1; } }\n",
    )
    .unwrap();
    let added = s.realise(&dir, &[]).ok();
    assert_eq!(
        added.built(),
        names(&["src-extra.cpp.o", "libgeometry.a", "shapes"])
    );
    assert!(s.realise(&dir, &[]).ok().built().is_empty());

    edit(
        &dir.join("cmod.toml"),
        "defines = [\"GEOMETRY_UNITS=\\\"cm\\\"\"]",
        "defines = [\"GEOMETRY_UNITS=\\\"mm\\\"\"]",
    );
    let redefined = s.realise(&dir, &[]).ok();
    // Every compile step has the define in its arguments, so every one runs again.
    let compiles: Vec<String> = added
        .messages
        .iter()
        .filter(|m| m["reason"] == "built" || m["reason"] == "fresh")
        .filter_map(|m| m["name"].as_str())
        .filter(|n| n.ends_with(".o") || n.ends_with(".pcm"))
        .map(str::to_string)
        .collect();
    let built = redefined.built();
    assert!(!compiles.is_empty());
    for c in &compiles {
        assert!(built.contains(c), "{c} was not rebuilt: {built:?}");
    }
    assert_ne!(redefined.target("shapes"), first.target("shapes"));
    assert!(run(&redefined.target("shapes"), &[]).contains("mm"));
}

/// The no-op shortcut is trusted only while every output it lists is valid: with one
/// intermediate object gone from the store, the next realise rebuilds exactly that one.
#[test]
fn a_no_op_rebuilds_an_intermediate_output_that_left_the_store() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let first = s.realise(&dir, &[]).ok();
    let no_op = s.realise(&dir, &[]).ok();
    assert!(no_op.built().is_empty());
    let object = no_op
        .messages
        .iter()
        .find(|m| m["reason"] == "fresh" && m["name"] == "geometry-1.2.0-src-area.cpp.o")
        .unwrap_or_else(|| panic!("{:?}", no_op.messages));
    let path = object["outputs"]["obj"].as_str().unwrap();
    let hash = &std::path::Path::new(path)
        .file_name()
        .unwrap()
        .to_string_lossy()[..32];
    // Unregistered (as a damaged path would be): the path is no longer valid.
    std::fs::remove_file(s.store().join(format!("v1/meta/{hash}.json"))).unwrap();
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(r.built(), names(&["src-area.cpp.o"]));
    assert_eq!(r.target("shapes"), first.target("shapes"));
    assert!(s.realise(&dir, &[]).ok().built().is_empty());
}
