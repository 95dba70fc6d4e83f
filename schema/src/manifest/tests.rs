//! Tests of the manifest types: parsing, defaults, and the rules serde enforces.

use super::*;

fn parse(text: &str) -> Result<Manifest, toml::de::Error> {
    toml::from_str(text)
}

#[test]
fn full_manifest_parses() {
    let m = parse(
        r#"
        [package]
        name = "hello"
        version = "0.1.0"
        [toolchain]
        compiler = "clang++-19"
        version = "^19"
        cxx-standard = 23
        stdlib = "libc++"
        [lib]
        sources = ["src/**/*.cppm"]
        [[bin]]
        name = "hello"
        main = "src/main.cpp"
        [[test]]
        name = "checks"
        main = "tests/checks.cpp"
        sources = ["tests/util/*.cpp"]
        [build]
        defines = ["X=1"]
        [profile.release]
        opt-level = "s"
        [dependencies]
        util = { path = "../util" }
        "#,
    )
    .unwrap();
    let p = m.package.unwrap();
    assert_eq!(p.name.get_ref().as_str(), "hello");
    assert_eq!(m.toolchain.cxx_standard, CxxStandard::Cxx23);
    assert_eq!(m.toolchain.stdlib, Some(Stdlib::Libcxx));
    assert_eq!(m.profile.release.unwrap().opt_level, Some(OptLevel::Os));
    assert_eq!(m.bin.len(), 1);
    let test = m.test[0].get_ref();
    assert_eq!(test.name.as_ref().unwrap().get_ref(), "checks");
    assert_eq!(test.main.as_ref().unwrap().get_ref(), "tests/checks.cpp");
    assert_eq!(test.sources.as_ref().unwrap().len(), 1);
    assert_eq!(
        m.dependencies["util"].get_ref().path.as_deref(),
        Some("../util")
    );
}

#[test]
fn defaults() {
    let m = parse("[package]\nname = \"a\"\nversion = \"1.0.0\"\n[lib]\n").unwrap();
    assert_eq!(m.lib.tables.len(), 1);
    assert!(
        m.lib.tables[0].get_ref().sources.is_none(),
        "the evaluator fills in the default globs"
    );
    assert_eq!(m.toolchain.cxx_standard, CxxStandard::Cxx20);
    assert_eq!(m.toolchain.c_standard, CStandard::default());
    assert_eq!(m.toolchain.stdlib, None);
}

#[test]
fn errors_carry_spans_and_fixes() {
    let text = "[package]\nname = \"a\"\nversion = \"1.0\"\n";
    let err = parse(text).unwrap_err();
    assert!(
        err.message()
            .contains("write MAJOR.MINOR.PATCH, e.g. `1.0.0`"),
        "{err}"
    );
    let span = err.span().unwrap();
    assert_eq!(&text[span], "\"1.0\"");

    let err = parse("[package]\nname = \"Hello World\"\nversion = \"1.0.0\"\n").unwrap_err();
    assert!(err.message().contains("e.g. `hello-world`"), "{err}");

    let err = parse("[toolchain]\ncxx-standard = 17\n").unwrap_err();
    assert!(err.message().contains("named modules need"), "{err}");

    let err = parse("[lib]\nsoruces = []\n").unwrap_err();
    assert!(err.message().contains("unknown field `soruces`"), "{err}");

    let err = parse("[[test]]\nname = \"t\"\nmian = \"x.cpp\"\n").unwrap_err();
    assert!(err.message().contains("unknown field `mian`"), "{err}");

    let err = parse("[toolchain]\nc-standard = 14\n").unwrap_err();
    assert!(err.message().contains("unsupported C standard"), "{err}");

    let err = parse("[toolchain]\nstdlib = \"msvc\"\n").unwrap_err();
    assert!(err.message().contains("libstdc++"), "{err}");

    let err = parse("[profile.dev]\nopt-level = 4\n").unwrap_err();
    assert!(err.message().contains("not an optimisation level"), "{err}");
}

#[test]
fn compile_commands_is_a_switch_or_a_relative_path() {
    let setting = |text: &str| {
        parse(&format!("[build]\ncompile-commands = {text}\n"))
            .map(|m| m.build.compile_commands.map(|s| s.into_inner()))
    };
    assert_eq!(parse("").unwrap().build.compile_commands, None);
    assert_eq!(
        setting("true").unwrap(),
        Some(CompileCommandsSetting::Default)
    );
    assert_eq!(setting("false").unwrap(), Some(CompileCommandsSetting::Off));
    assert_eq!(
        setting("\"build/compile_commands.json\"").unwrap(),
        Some(CompileCommandsSetting::Path(
            "build/compile_commands.json".into()
        ))
    );
    for bad in ["\"\"", "\"/tmp/compile_commands.json\""] {
        let err = setting(bad).unwrap_err();
        assert!(
            err.message()
                .contains("is not a path relative to the workspace root"),
            "{bad}: {err}"
        );
    }
    let err = setting("1").unwrap_err();
    assert!(
        err.message()
            .contains("`true`, `false` or a path relative to the workspace root"),
        "{err}"
    );
    // Written back as it was read.
    let m = parse("[build]\ncompile-commands = \"cc/compile_commands.json\"\n").unwrap();
    let text = toml::to_string(&m).unwrap();
    assert!(
        text.contains("compile-commands = \"cc/compile_commands.json\""),
        "{text}"
    );
}

/// Parse `text`, which puts the unknown field `not-a-field` in one table, and return
/// the line of the error that names it.
fn unknown_field_error(text: &str) -> String {
    let e = parse(text)
        .expect_err("an unknown field is rejected")
        .to_string();
    e.lines()
        .find(|l| l.starts_with("unknown field `not-a-field`"))
        .unwrap_or_else(|| panic!("the error does not name the field: {e}"))
        .to_string()
}

/// The names serde says it expects, from an `unknown field` error line.
fn expected_fields(line: &str) -> std::collections::BTreeSet<String> {
    let (_, expected) = line.split_once("expected").unwrap_or(("", ""));
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

#[test]
fn known_fields_match_serde() {
    // Each table rejects a made-up field, naming it, and what serde expects instead
    // is exactly what `known_fields` suggests from.
    let cases = [
        ("", "not-a-field = 1\n"),
        (
            "package",
            "[package]\nname = \"a\"\nversion = \"1.0.0\"\nnot-a-field = 1\n",
        ),
        ("toolchain", "[toolchain]\nnot-a-field = 1\n"),
        ("lib", "[lib]\nnot-a-field = 1\n"),
        ("bin", "[[bin]]\nnot-a-field = 1\n"),
        ("test", "[[test]]\nnot-a-field = 1\n"),
        ("generate", "[[generate]]\nnot-a-field = 1\n"),
        ("overrides", "[[lib.overrides]]\nnot-a-field = 1\n"),
        ("build", "[build]\nnot-a-field = 1\n"),
        ("profile", "[profile.not-a-field]\n"),
        ("profile.dev", "[profile.dev]\nnot-a-field = 1\n"),
        ("profile.release", "[profile.release]\nnot-a-field = 1\n"),
        ("dependency", "[dependencies]\nx = { not-a-field = 1 }\n"),
        ("workspace", "[workspace]\nnot-a-field = 1\n"),
        ("cache", "[cache]\nnot-a-field = 1\n"),
    ];
    for (table, text) in cases {
        let line = unknown_field_error(text);
        let known: std::collections::BTreeSet<String> =
            known_fields(table).iter().map(|f| f.to_string()).collect();
        assert_eq!(expected_fields(&line), known, "[{table}]: {line}");
    }
}
