//! Generated sources (`[[generate]]` with a template) with the real clang-19 in the full
//! sandbox: the shipped example realised, run, rebuilt bit for bit and no-op; an edit of
//! the generator's values that leaves its output as it was rebuilds nothing (early cutoff
//! by content) and one that changes it rebuilds the unit; the error paths name the file,
//! the line and the fix, and leave the package as it was.

mod common;

use common::{failure, run, Sandbox};

#[test]
fn a_template_becomes_a_module_partition() {
    let s = Sandbox::new();
    let dir = s.copy_example("generated");
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(run(&r.target("stamped"), &[]), "stamped 2.4.1 (quartz)\n");
    assert!(
        r.built()
            .contains(&"stamped-2.4.1-stamped-version.pcm".to_string()),
        "{:?}",
        r.built()
    );
    assert!(
        !dir.join("gen").exists(),
        "nothing is written into the package"
    );
    let graph = s.cmod(&dir, &["graph", "--format", "json"]);
    let graph: serde_json::Value = serde_json::from_slice(&graph.stdout).expect("graph JSON");
    let units = graph["units"].as_array().unwrap();
    let generated: Vec<(&str, &str)> = units
        .iter()
        .filter_map(|u| Some((u["path"].as_str()?, u["generated_by"].as_str()?)))
        .collect();
    assert_eq!(generated, [("gen/version.cppm", "version")]);
    let check = s.realise(&dir, &["--check"]).ok();
    assert_eq!(check.finished()["differing"], 0);
    assert!(s.realise(&dir, &[]).ok().built().is_empty());

    // A value the template does not use: the output is the same, nothing is rebuilt.
    let manifest = dir.join("cmod.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "vars = { CODENAME = \"quartz\" }",
            "vars = { CODENAME = \"quartz\", UNUSED = \"x\" }",
        ),
    )
    .unwrap();
    let same = s.realise(&dir, &[]).ok();
    assert!(same.built().is_empty(), "{:?}", same.built());

    // A value it does use: the partition and what depends on it are rebuilt.
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"quartz\"", "\"basalt\"")).unwrap();
    let changed = s.realise(&dir, &[]).ok();
    assert!(
        changed
            .built()
            .contains(&"stamped-2.4.1-stamped-version.pcm".to_string()),
        "{:?}",
        changed.built()
    );
    assert_eq!(
        run(&changed.target("stamped"), &[]),
        "stamped 2.4.1 (basalt)\n"
    );
}

fn generator_project(s: &Sandbox, generate: &str, template: &str) -> std::path::PathBuf {
    s.project(
        "g",
        &[
            (
                "cmod.toml",
                &format!("[package]\nname = \"g\"\nversion = \"0.1.0\"\n\n[lib]\nname = \"g\"\nsources = [\"gen/*.cppm\"]\n\n{generate}"),
            ),
            ("src/g.cppm.in", template),
        ],
    )
}

#[test]
fn a_placeholder_without_a_value_is_named_at_its_line() {
    let s = Sandbox::new();
    let dir = generator_project(
        &s,
        "[[generate]]\nname = \"g\"\ntemplate = \"src/g.cppm.in\"\noutput = \"gen/g.cppm\"\nvars = { A = \"1\" }\n",
        "export module g;\nexport int a() { return @A@; }\nexport int b() { return ${B}; }\n",
    );
    let out = s.cmod(&dir, &["realise"]);
    let (code, err) = failure(&out);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("template `src/g.cppm.in` uses `B`, which generator `g` gives no value"),
        "{err}"
    );
    assert!(err.contains("src/g.cppm.in:3:25"), "{err}");
    assert!(
        err.contains("help: add `B = \"...\"` to the `vars` of [[generate]] `g`"),
        "{err}"
    );
}

#[test]
fn generator_mistakes_in_the_manifest_are_named_at_their_line() {
    let s = Sandbox::new();
    let unit = "export module g;\n";
    for (generate, message, line) in [
        (
            "[[generate]]\nname = \"g\"\ntemplate = \"src/missing.in\"\noutput = \"gen/g.cppm\"\n",
            "generator `g` cannot read its template `src/missing.in`",
            "cmod.toml:11:",
        ),
        (
            "[[generate]]\nname = \"g\"\ntemplate = \"src/g.cppm.in\"\noutput = \"gen/g.h\"\n",
            "generator `g` writes `gen/g.h`, which is not a translation unit",
            "cmod.toml:12:",
        ),
        (
            "[[generate]]\nname = \"g\"\ntemplate = \"src/g.cppm.in\"\noutput = \"../g.cppm\"\n",
            "output `../g.cppm` is outside the package",
            "cmod.toml:12:",
        ),
        (
            "[[generate]]\nname = \"g\"\ntemplate = \"src/g.cppm.in\"\noutput = \"src/g.cppm.in.cppm\"\n\n[[generate]]\nname = \"g\"\ntemplate = \"src/g.cppm.in\"\noutput = \"gen/h.cppm\"\n",
            "two generators are named `g`",
            "cmod.toml:15:",
        ),
    ] {
        let dir = generator_project(&s, generate, unit);
        let before = std::fs::read_to_string(dir.join("cmod.toml")).unwrap();
        let (code, err) = failure(&s.cmod(&dir, &["realise"]));
        assert_eq!(code, 2, "{generate}: {err}");
        assert!(err.contains(message), "{generate}: {err}");
        assert!(err.contains(line), "{generate}: {err}");
        assert_eq!(std::fs::read_to_string(dir.join("cmod.toml")).unwrap(), before);
        assert!(!dir.join("gen").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// A graph error that involves a generated unit names the generator and the path the
/// manifest declares.
#[test]
fn an_import_cycle_through_a_generated_module_names_the_generator() {
    let s = Sandbox::new();
    let dir = s.project(
        "cycle",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"cycle\"\nversion = \"0.1.0\"\n\n[lib]\nname = \"cycle\"\nsources = [\"src/*.cppm\", \"gen/a.cppm\"]\n\n[[generate]]\nname = \"make-a\"\ntemplate = \"src/a.cppm.in\"\noutput = \"gen/a.cppm\"\n",
            ),
            ("src/a.cppm.in", "export module a;\nimport b;\n"),
            ("src/b.cppm", "export module b;\nimport a;\n"),
        ],
    );
    let (code, err) = failure(&s.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cycle"), "{err}");
    assert!(
        err.contains("is `gen/a.cppm`, written by [[generate]] `make-a`"),
        "{err}"
    );
}

/// A binary's `main` and a module can both be generated; built-in values fill in.
#[test]
fn a_generated_main_imports_a_generated_module() {
    let s = Sandbox::new();
    let dir = s.project(
        "genme",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"genme\"\nversion = \"3.1.0\"\n\n[[bin]]\nname = \"genme\"\nmain = \"gen/main.cpp\"\nsources = [\"gen/*.cppm\"]\n\n[[generate]]\nname = \"main\"\ntemplate = \"tpl/main.cpp.in\"\noutput = \"gen/main.cpp\"\nvars = { GREETING = \"hi there\" }\n\n[[generate]]\nname = \"answer\"\ntemplate = \"tpl/answer.cppm.in\"\noutput = \"gen/answer.cppm\"\nvars = { ANSWER = \"42\" }\n",
            ),
            (
                "tpl/main.cpp.in",
                "import answer;\n#include <cstdio>\nint main() { std::printf(\"@GREETING@ from @PACKAGE_NAME@ @PACKAGE_VERSION@: %d\\n\", answer()); }\n",
            ),
            ("tpl/answer.cppm.in", "export module answer;\nexport int answer() { return ${ANSWER}; }\n"),
        ],
    );
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(
        run(&r.target("genme"), &[]),
        "hi there from genme 3.1.0: 42\n"
    );
    assert!(s.realise(&dir, &[]).ok().built().is_empty());
}
