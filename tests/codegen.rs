//! Generators that run a program (`[[generate]]` with `run`) with the real clang-19 in the
//! full sandbox: the two-stage build of the shipped example (a `[[bin]]` of the package
//! writes a module interface and a table partition), realised, run, checked bit for bit
//! and no-op; early cutoff when the program writes the same files; what `eval` and
//! `--dry-run` say before it has run; and the error paths (a failing program, an
//! undeclared or missing output, an undeclared input, a non-deterministic program under
//! `--check`, a cycle through a generated module, manifest mistakes).

mod common;

use std::path::PathBuf;

use common::{failure, run, Sandbox};

const RUN_STEP: &str = "palette-0.3.0-run-colours";

#[test]
fn a_generator_program_writes_a_module_and_its_table_partition() {
    let s = Sandbox::new();
    let dir = s.copy_example("codegen");
    let r = s.realise(&dir, &[]).ok();
    let built = r.built();
    for step in [
        "palette-0.3.0-gen-colours",
        RUN_STEP,
        "palette-0.3.0-colours-table.pcm",
        "palette-0.3.0-colours.pcm",
        "palette-0.3.0-paint.pcm",
    ] {
        assert!(built.contains(&step.to_string()), "{step}: {built:?}");
    }
    let shown = run(&r.target("palette"), &[]);
    assert!(
        shown.starts_with("4 colours\nteal     #008080\n"),
        "{shown}"
    );
    assert!(shown.ends_with("mauve    unknown\n"), "{shown}");
    assert!(
        !dir.join("gen").exists(),
        "nothing is written into the package"
    );
    // The compile database names a generated unit where its bytes are (the store).
    let db = std::fs::read_to_string(dir.join("compile_commands.json")).unwrap();
    let db: serde_json::Value = serde_json::from_str(&db).unwrap();
    let table = db
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| {
            e["file"]
                .as_str()
                .filter(|f| f.ends_with("colours-table.cppm"))
        })
        .expect("an entry for the generated partition");
    assert!(std::path::Path::new(table).is_file(), "{table}");
    assert!(table.starts_with(s.store().to_str().unwrap()), "{table}");

    let graph = s.cmod(&dir, &["graph", "--format", "json"]);
    let graph: serde_json::Value = serde_json::from_slice(&graph.stdout).expect("graph JSON");
    let generators = graph["generators"].as_array().expect("generators");
    assert_eq!(generators.len(), 1, "{generators:?}");
    let g = &generators[0];
    assert_eq!(g["run"], "gen-colours");
    assert_eq!(g["ran"], true);
    assert_eq!(g["inputs"], serde_json::json!(["data/colours.txt"]));
    assert_eq!(
        g["outputs"],
        serde_json::json!([
            "gen/colours.cppm",
            "gen/colours-table.cppm",
            "gen/colours.cpp"
        ])
    );
    let written_by: Vec<(&str, &str)> = graph["units"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["generated_by"] == "colours")
        .filter_map(|u| Some((u["path"].as_str()?, u["kind"].as_str()?)))
        .collect();
    assert_eq!(
        written_by,
        [
            ("gen/colours-table.cppm", "ExportedPartition"),
            ("gen/colours.cpp", "Implementation"),
            ("gen/colours.cppm", "PrimaryInterface"),
        ]
    );

    let check = s.realise(&dir, &["--check"]).ok();
    assert_eq!(check.finished()["differing"], 0);
    let checked: Vec<&str> = check
        .messages
        .iter()
        .filter(|m| m["reason"] == "checked")
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(
        checked.contains(&RUN_STEP),
        "the generator is rebuilt too: {checked:?}"
    );
    assert!(s.realise(&dir, &[]).ok().built().is_empty());
    s.assert_store_verifies(&dir);

    // A comment the program skips: it runs again, writes the same files, and nothing
    // downstream is rebuilt.
    let data = dir.join("data/colours.txt");
    let text = std::fs::read_to_string(&data).unwrap();
    std::fs::write(&data, format!("# a comment the generator skips\n{text}")).unwrap();
    let same = s.realise(&dir, &[]).ok();
    assert_eq!(same.built(), [RUN_STEP]);

    // A value it writes: the table partition and everything that reads it.
    std::fs::write(&data, text.replace("teal 0 128 128", "teal 0 129 128")).unwrap();
    let changed = s.realise(&dir, &[]).ok();
    assert!(
        changed
            .built()
            .contains(&"palette-0.3.0-colours-table.pcm".to_string()),
        "{:?}",
        changed.built()
    );
    assert!(run(&changed.target("palette"), &[]).contains("teal     #008180\n"));
}

/// Before its program has run, `eval` and `--dry-run` show the generator's steps and
/// say which targets wait on it; afterwards the whole graph.
#[test]
fn eval_and_dry_run_show_what_waits_on_a_generator() {
    let s = Sandbox::new();
    let dir = s.copy_example("codegen");
    let eval = s.cmod(&dir, &["eval"]);
    assert!(eval.status.success());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&eval.stdout),
        String::from_utf8_lossy(&eval.stderr),
    );
    assert!(stdout.contains(&format!("{RUN_STEP}.drv")), "{stdout}");
    assert!(!stdout.contains("colours.pcm"), "{stdout}");
    assert!(
        stderr.contains("`palette/colours` have not run")
            && stderr.contains("`palette/libpalette.a`, `palette/palette` are pending"),
        "{stderr}"
    );
    let dry = s.cmod(&dir, &["realise", "--dry-run", "--message-format", "json"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&dry.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let would: Vec<&str> = lines
        .iter()
        .filter(|l| l["reason"] == "would-build")
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert!(would.contains(&RUN_STEP), "{would:?}");
    let pending: Vec<&str> = lines
        .iter()
        .filter(|l| l["reason"] == "pending")
        .filter_map(|l| l["target"].as_str())
        .collect();
    assert_eq!(pending, ["libpalette.a", "palette"]);
    assert_eq!(lines.last().unwrap()["pending"], 2);
    let (code, err) = failure(&s.cmod(&dir, &["eval", "palette"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("target `palette/palette` waits on generators that have not run"),
        "{err}"
    );

    s.realise(&dir, &[]).ok();
    let after = s.cmod(&dir, &["eval"]);
    assert!(String::from_utf8_lossy(&after.stdout).contains("colours.pcm"));
    assert!(!String::from_utf8_lossy(&after.stderr).contains("have not run"));
}

/// A package whose generator is `tools/copy.cpp`: each argument `SRC=DST` copies a
/// declared input to an output (`random=DST` writes a module with a random number,
/// `fail` exits 7). `app` imports module `a`, which the generator writes.
fn copy_project(s: &Sandbox, name: &str, generate: &str, extra: &[(&str, &str)]) -> PathBuf {
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\n\n[lib]\nname = \"{name}\"\nsources = [\"gen/*.cppm\", \"src/*.cppm\"]\n\n[[bin]]\nname = \"copy\"\nmain = \"tools/copy.cpp\"\n\n[[bin]]\nname = \"app\"\nmain = \"main.cpp\"\n\n{generate}"
    );
    let mut files: Vec<(&str, &str)> = vec![
        ("cmod.toml", &manifest),
        ("tools/copy.cpp", COPY_TOOL),
        (
            "in/a.cppm",
            "export module a;\nexport int a() { return 41; }\n",
        ),
        (
            "main.cpp",
            "#include <cstdio>\nimport a;\nint main() { std::printf(\"%d\\n\", a() + 1); }\n",
        ),
    ];
    files.extend_from_slice(extra);
    s.project(name, &files)
}

const COPY_TOOL: &str = r#"#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "fail") {
      std::fprintf(stderr, "copy: failing on purpose\n");
      return 7;
    }
    std::string src = arg.substr(0, arg.find('=')), dst = arg.substr(arg.find('=') + 1);
    std::filesystem::path to(dst);
    if (to.has_parent_path()) std::filesystem::create_directories(to.parent_path());
    if (src == "random") {
      std::random_device rd;
      std::ofstream(to) << "export module r;\nexport int r() { return " << rd() % 1000000 << "; }\n";
      continue;
    }
    std::ifstream in(src);
    if (!in) {
      std::fprintf(stderr, "copy: cannot open %s\n", src.c_str());
      return 3;
    }
    std::ofstream(to) << in.rdbuf();
  }
  return 0;
}
"#;

fn generate(args: &str, inputs: &str, outputs: &str) -> String {
    format!("[[generate]]\nname = \"make-a\"\nrun = \"copy\"\nargs = [{args}]\ninputs = [{inputs}]\noutputs = [{outputs}]\n")
}

#[test]
fn a_program_generator_builds_and_runs_before_its_consumers() {
    let s = Sandbox::new();
    let g = generate(
        "\"in/a.cppm=gen/a.cppm\"",
        "\"in/*.cppm\"",
        "\"gen/a.cppm\"",
    );
    let test = "[[test]]\nname = \"t\"\nmain = \"tests/t.cpp\"\n\n";
    let dir = copy_project(
        &s,
        "copier",
        &format!("{test}{g}"),
        &[(
            "tests/t.cpp",
            "import a;\nint main() { return a() == 41 ? 0 : 1; }\n",
        )],
    );
    // `cmod test` runs the generator first (its test imports the generated module).
    let tested = s.cmod(&dir, &["test"]);
    let out = String::from_utf8_lossy(&tested.stdout);
    assert!(
        tested.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&tested.stderr)
    );
    assert!(out.contains("1 passed"), "{out}");
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(run(&r.target("app"), &[]), "42\n");
    assert!(s.realise(&dir, &[]).ok().built().is_empty());
    // So does `cmod lock --outputs`, which pins every target's output.
    let a = "export module a;\nexport int a() { return 9; }\n";
    std::fs::write(dir.join("in/a.cppm"), a).unwrap();
    let lock = s.cmod(&dir, &["lock", "--outputs"]);
    assert!(
        lock.status.success(),
        "{}",
        String::from_utf8_lossy(&lock.stderr)
    );
    let pins = std::fs::read_to_string(dir.join("cmod.lock")).unwrap();
    assert!(
        pins.contains("libcopier.a") && pins.contains("app"),
        "{pins}"
    );
}

#[test]
fn a_failing_generator_shows_its_output_and_fails_the_build() {
    let s = Sandbox::new();
    for (args, inputs, outputs, words) in [
        ("\"fail\"", "\"in/a.cppm\"", "\"gen/a.cppm\"", "copy: failing on purpose"),
        // A package file it does not declare is not there to read.
        ("\"main.cpp=gen/a.cppm\"", "\"in/a.cppm\"", "\"gen/a.cppm\"", "copy: cannot open main.cpp"),
        (
            "\"in/a.cppm=gen/a.cppm\", \"in/a.cppm=gen/stray.cppm\"",
            "\"in/a.cppm\"",
            "\"gen/a.cppm\"",
            "generator `make-a` of `broken` wrote `gen/stray.cppm`, which its `outputs` do not list",
        ),
        (
            "\"in/a.cppm=gen/a.cppm\"",
            "\"in/a.cppm\"",
            "\"gen/a.cppm\", \"gen/b.cppm\"",
            "generator `make-a` of `broken` did not write `gen/b.cppm`, which its `outputs` list",
        ),
    ] {
        let dir = copy_project(&s, "broken", &generate(args, inputs, outputs), &[]);
        let before = std::fs::read_to_string(dir.join("cmod.toml")).unwrap();
        let (code, err) = failure(&s.cmod(&dir, &["realise"]));
        assert_eq!(code, 1, "{args}: {err}");
        assert!(err.contains(words), "{args}: {err}");
        assert!(err.contains("broken-0.1.0-run-make-a"), "{args}: {err}");
        assert_eq!(std::fs::read_to_string(dir.join("cmod.toml")).unwrap(), before);
        assert!(!dir.join("gen").exists());
        s.assert_store_verifies(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// A program whose output depends on something it does not declare (here, randomness)
/// builds, and `--check` catches it: the rebuilt generator's output differs.
#[test]
fn check_catches_a_generator_that_depends_on_something_undeclared() {
    let s = Sandbox::new();
    let g = generate(
        "\"in/a.cppm=gen/a.cppm\", \"random=gen/r.cppm\"",
        "\"in/a.cppm\"",
        "\"gen/a.cppm\", \"gen/r.cppm\"",
    );
    let dir = copy_project(&s, "dice", &g, &[]);
    s.realise(&dir, &[]).ok();
    let check = s.realise(&dir, &["--check"]);
    assert!(!check.success(), "{}", check.stderr());
    let err = check.stderr();
    assert!(err.contains("dice-0.1.0-gen-r.cppm"), "{err}");
    assert!(err.contains("the build is not reproducible"), "{err}");
    assert!(
        err.contains("generator `make-a` of `dice` wrote different files when run again"),
        "{err}"
    );
    assert_eq!(check.output.status.code(), Some(3), "{err}");
}

#[test]
fn an_import_cycle_through_a_program_generated_module_names_the_generator() {
    let s = Sandbox::new();
    let g = generate(
        "\"in/a.cppm=gen/a.cppm\"",
        "\"in/a.cppm\"",
        "\"gen/a.cppm\"",
    );
    let dir = copy_project(
        &s,
        "loop",
        &g,
        &[
            (
                "in/a.cppm",
                "export module a;\nimport b;\nexport int a() { return 1; }\n",
            ),
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

#[test]
fn program_generator_mistakes_in_the_manifest_are_named_at_their_line() {
    let s = Sandbox::new();
    for (generate, message, line) in [
        (
            "[[generate]]\nname = \"make-a\"\nrun = \"nope\"\noutputs = [\"gen/a.cppm\"]\n",
            "generator `make-a` runs `nope`, which is not a [[bin]] of this package",
            "cmod.toml:19:",
        ),
        (
            "[[generate]]\nname = \"make-a\"\nrun = \"copy\"\ntemplate = \"in/a.cppm\"\noutputs = [\"gen/a.cppm\"]\n",
            "generator `make-a` has both `template` and `run`",
            "cmod.toml:19:",
        ),
        (
            "[[generate]]\nname = \"make-a\"\nrun = \"copy\"\ninputs = [\"data/*.txt\"]\noutputs = [\"gen/a.cppm\"]\n",
            "input `data/*.txt` of generator `make-a` names no file of the package",
            "cmod.toml:20:",
        ),
        (
            "[[generate]]\nname = \"make-a\"\nrun = \"copy\"\noutputs = [\"gen/a.h\"]\n",
            "generator `make-a` writes `gen/a.h`, which is not a translation unit",
            "cmod.toml:20:",
        ),
    ] {
        let dir = copy_project(&s, "wrong", generate, &[]);
        let (code, err) = failure(&s.cmod(&dir, &["realise"]));
        assert_eq!(code, 2, "{generate}: {err}");
        assert!(err.contains(message), "{generate}: {err}");
        assert!(err.contains(line), "{generate}: {err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // A generator's program is built before the package's libraries can be.
    let dir = s.project(
        "uses",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"uses\"\nversion = \"0.1.0\"\n\n[lib]\nname = \"uses\"\nsources = [\"gen/*.cppm\"]\n\n[[bin]]\nname = \"copy\"\nmain = \"tools/copy.cpp\"\nuses = [\"uses\"]\n\n[[generate]]\nname = \"make-a\"\nrun = \"copy\"\noutputs = [\"gen/a.cppm\"]\n",
            ),
            ("tools/copy.cpp", COPY_TOOL),
        ],
    );
    let (code, err) = failure(&s.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`copy` is a generator's program, which cannot use the package's libraries"),
        "{err}"
    );
    assert!(err.contains("cmod.toml:12:"), "{err}");
}

/// A generator may run a `[[bin]]` of a dependency (`run = "<dependency>/<bin>"`): the
/// dependency's program is built (with its own library) and run like a local one.
#[test]
fn a_generator_runs_a_binary_of_a_dependency() {
    let s = Sandbox::new();
    s.project(
        "ws/tools",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"tools\"\nversion = \"1.2.0\"\n\n[lib]\nname = \"tools\"\nsources = [\"src/*.cppm\"]\n\n[[bin]]\nname = \"copy\"\nmain = \"copy.cpp\"\n",
            ),
            ("copy.cpp", COPY_TOOL),
            ("src/tools.cppm", "export module tools;\nexport int version() { return 12; }\n"),
        ],
    );
    let app = s.project(
        "ws/app",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n[[bin]]\nname = \"app\"\nmain = \"main.cpp\"\nsources = [\"gen/*.cppm\"]\n\n[dependencies]\ntools = { path = \"../tools\" }\n\n[[generate]]\nname = \"make-a\"\nrun = \"tools/copy\"\nargs = [\"in/a.cppm=gen/a.cppm\"]\ninputs = [\"in/a.cppm\"]\noutputs = [\"gen/a.cppm\"]\n",
            ),
            ("in/a.cppm", "export module a;\nexport int a() { return 30; }\n"),
            (
                "main.cpp",
                "#include <cstdio>\nimport a;\nimport tools;\nint main() { std::printf(\"%d\\n\", a() + version()); }\n",
            ),
        ],
    );
    let r = s.realise(&app, &[]).ok();
    assert!(
        r.built().contains(&"app-0.1.0-run-make-a".to_string()),
        "{:?}",
        r.built()
    );
    assert_eq!(run(&r.target("app"), &[]), "42\n");
    assert!(s.realise(&app, &[]).ok().built().is_empty());

    // A binary the dependency does not have, and a dependency the package does not have.
    let manifest = app.join("cmod.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    for (run_as, message) in [
        (
            "tools/nope",
            "generator `make-a` runs `tools/nope`, but package `tools` has no [[bin]] `nope`",
        ),
        (
            "other/copy",
            "generator `make-a` runs `other/copy`, but `other` is not a dependency of this package",
        ),
    ] {
        std::fs::write(&manifest, text.replace("tools/copy", run_as)).unwrap();
        let (code, err) = failure(&s.cmod(&app, &["realise"]));
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(message), "{err}");
        assert!(err.contains("cmod.toml:15:"), "{err}");
    }
}
