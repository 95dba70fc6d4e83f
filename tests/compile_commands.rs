//! The compile database (`compile_commands.json`): `cmod realise` writes it at the workspace
//! root and `cmod compile-commands` on demand, with one entry per unit and host paths,
//! and the real clangd-19 (`--experimental-modules-support`) understands every example
//! with it — imports of partitions, of dependencies' modules (path and git) and of `std`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::upstream::Upstream;
use common::{failure, Realised, Sandbox};
use serde_json::Value;

/// The entries of the database at `path`.
fn database(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no compile database at {}: {e}", path.display()));
    match serde_json::from_str(&text) {
        Ok(Value::Array(entries)) => entries,
        other => panic!("{} is not a JSON array: {other:?}", path.display()),
    }
}

fn files(entries: &[Value]) -> Vec<PathBuf> {
    entries
        .iter()
        .map(|e| PathBuf::from(e["file"].as_str().expect("file")))
        .collect()
}

fn arguments(entry: &Value) -> Vec<&str> {
    entry["arguments"]
        .as_array()
        .expect("arguments")
        .iter()
        .map(|a| a.as_str().expect("string argument"))
        .collect()
}

/// The entry for `file`.
fn entry_for<'a>(entries: &'a [Value], file: &Path) -> &'a Value {
    entries
        .iter()
        .find(|e| Path::new(e["file"].as_str().unwrap_or_default()) == file)
        .unwrap_or_else(|| panic!("no entry for {} in {entries:#?}", file.display()))
}

/// Run clangd-19 on `file` with the database in `db_dir`; it must end with no errors.
fn clangd_understands(db_dir: &Path, file: &Path) {
    let out = Command::new("clangd-19")
        .arg("--experimental-modules-support")
        .arg(format!("--compile-commands-dir={}", db_dir.display()))
        .arg(format!("--check={}", file.display()))
        .current_dir(db_dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run clangd-19 ({e}); `scripts/install-deps` installs it")
        });
    let log = String::from_utf8_lossy(&out.stderr);
    let last = log
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        out.status.success() && last.ends_with("All checks completed, 0 errors"),
        "clangd-19 did not understand {} (status {:?}):\n{log}",
        file.display(),
        out.status.code()
    );
}

/// Every entry names existing host files and nothing of a build directory.
fn assert_host_paths(entries: &[Value]) {
    assert!(!entries.is_empty());
    for e in entries {
        let file = Path::new(e["file"].as_str().unwrap());
        let dir = Path::new(e["directory"].as_str().unwrap());
        assert!(file.is_absolute() && file.is_file(), "{e}");
        assert!(dir.is_absolute() && dir.is_dir(), "{e}");
        let args = arguments(e);
        let compiler = Path::new(args[0]);
        assert!(
            compiler.is_absolute() && compiler.is_file() && args[0].contains("clang++"),
            "{e}"
        );
        assert!(args.contains(&file.to_str().unwrap()), "{e}");
        for a in &args[1..] {
            let sandbox_path = ["src/", "bmi/", "out/", "obj/", "toolchain/"]
                .iter()
                .any(|p| {
                    a.starts_with(p) || a.strip_prefix("-I").is_some_and(|v| v.starts_with(p))
                });
            assert!(
                !sandbox_path
                    && !a.starts_with("-fmodule-file")
                    && !a.contains("@builddir@")
                    && *a != "-o",
                "`{a}` in {e}"
            );
        }
    }
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn hello_is_understood_by_clangd() {
    let s = Sandbox::new();
    let dir = canonical(&s.copy_example("hello"));
    s.realise(&dir, &[]).ok();
    let entries = database(&dir.join("compile_commands.json"));
    assert_host_paths(&entries);
    assert_eq!(files(&entries).len(), 3, "{entries:#?}");
    for f in ["src/main.cpp", "src/hello.cpp", "src/hello.cppm"] {
        clangd_understands(&dir, &dir.join(f));
    }
}

#[test]
fn library_has_an_entry_per_unit_and_clangd_understands_its_partitions() {
    let s = Sandbox::new();
    let dir = canonical(&s.copy_example("library"));
    s.realise(&dir, &[]).ok();
    let entries = database(&dir.join("compile_commands.json"));
    assert_host_paths(&entries);
    // Every unit once, the test's too (realise does not build it, the editor opens it).
    let mut want: Vec<PathBuf> = [
        "app/main.cpp",
        "app/table.cpp",
        "src/area.cpp",
        "src/describe.cpp",
        "src/detail.cppm",
        "src/format.cppm",
        "src/geometry.cppm",
        "src/shapes.cppm",
        "tests/checks.cpp",
    ]
    .iter()
    .map(|f| dir.join(f))
    .collect();
    want.sort();
    assert_eq!(files(&entries), want);
    for e in &entries {
        assert_eq!(Path::new(e["directory"].as_str().unwrap()), dir, "{e}");
        let args = arguments(e);
        // The flags the build uses: dialect, the manifest's warnings and define.
        for flag in [
            "-std=c++20",
            "-stdlib=libstdc++",
            "-Wall",
            "-DGEOMETRY_UNITS=\"cm\"",
        ] {
            assert!(args.contains(&flag), "{flag} missing: {e}");
        }
        let interface = e["file"].as_str().unwrap().ends_with(".cppm");
        let language = if interface { "c++-module" } else { "c++" };
        assert!(
            args.windows(2).any(|w| w == ["-x", language]),
            "{language}: {e}"
        );
    }
    // format.cppm imports a partition; describe.cpp implements what the :format partition
    // declares and imports the internal partition; the test imports the module.
    for f in [
        "src/format.cppm",
        "src/describe.cpp",
        "src/detail.cppm",
        "app/main.cpp",
        "tests/checks.cpp",
    ] {
        clangd_understands(&dir, &dir.join(f));
    }
}

#[test]
fn path_dependencies_are_listed_at_their_directories() {
    let s = Sandbox::new();
    s.copy_example("path-deps");
    let root = canonical(&s.dir.path().join("path-deps"));
    let app = root.join("app");
    s.realise(&app, &[]).ok();
    let entries = database(&app.join("compile_commands.json"));
    assert_host_paths(&entries);
    let report = root.join("report/src/report.cppm");
    assert_eq!(
        Path::new(entry_for(&entries, &report)["directory"].as_str().unwrap()),
        root.join("report")
    );
    entry_for(&entries, &root.join("units/src/units.cpp"));
    // report imports units, a dependency of its own; app imports both.
    for f in [
        &app.join("src/main.cpp"),
        &report,
        &root.join("units/src/units.cpp"),
    ] {
        clangd_understands(&app, f);
    }
}

#[test]
fn git_dependencies_are_listed_at_their_checkouts_in_the_store() {
    let u = Upstream::new();
    let dir = canonical(&u.s.copy_example("with-deps"));
    u.realise(&dir, &[]).ok();
    let entries = database(&dir.join("compile_commands.json"));
    assert_host_paths(&entries);
    let store = canonical(&u.s.store());
    let checkouts: Vec<PathBuf> = files(&entries)
        .into_iter()
        .filter(|f| f.starts_with(&store))
        .collect();
    let module_of = |name: &str| {
        checkouts
            .iter()
            .find(|f| f.ends_with(format!("src/{name}.cppm")))
            .unwrap_or_else(|| panic!("no {name} module in the store: {entries:#?}"))
    };
    for name in ["greeting", "colors"] {
        module_of(name);
    }
    clangd_understands(&dir, &dir.join("src/main.cpp"));
    clangd_understands(&dir, module_of("numbers"));
}

#[test]
fn a_workspace_gets_one_database_at_its_root_whatever_is_built() {
    let s = Sandbox::new();
    let root = canonical(&s.copy_example("workspace"));
    let app = root.join("app");
    // Realised in a member's directory, for that member only.
    s.realise(&app, &[]).ok();
    assert!(!app.join("compile_commands.json").exists());
    let entries = database(&root.join("compile_commands.json"));
    assert_host_paths(&entries);
    for member in ["app", "text", "core"] {
        assert!(
            files(&entries)
                .iter()
                .any(|f| f.starts_with(root.join(member))),
            "no entry of {member}: {entries:#?}"
        );
    }
    clangd_understands(&root, &app.join("src/main.cpp"));
    clangd_understands(&root, &root.join("text/src/fraction.cppm"));

    // Only the workspace root's manifest decides; a member's setting is warned about.
    let member = app.join("cmod.toml");
    let text = std::fs::read_to_string(&member).unwrap();
    std::fs::write(
        &member,
        format!("{text}\n[build]\ncompile-commands = false\n"),
    )
    .unwrap();
    std::fs::remove_file(root.join("compile_commands.json")).unwrap();
    let r = s.realise(&app, &[]);
    let stderr = r.stderr();
    r.ok();
    assert!(
        stderr.contains("warning: `compile-commands` of member `app` is ignored")
            && stderr.contains("--> cmod.toml:"),
        "{stderr}"
    );
    assert_eq!(database(&root.join("compile_commands.json")), entries);
}

#[test]
fn include_directories_defines_and_import_std_reach_clangd() {
    let s = Sandbox::new();
    let dir = canonical(&s.project(
        "greeter",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"greeter\"\nversion = \"0.1.0\"\n\n[toolchain]\ncxx-standard = 23\nstdlib = \"libc++\"\n\n[lib]\n\n[[bin]]\nname = \"greeter\"\nmain = \"src/main.cpp\"\n\n[build]\ninclude-dirs = [\"include\"]\ndefines = [\"GREETING=\\\"hi\\\"\"]\n",
            ),
            ("include/greeter/config.h", "#pragma once\n#define GREETER_TIMES 2\n"),
            (
                "src/greet.cppm",
                "module;\n#include <greeter/config.h>\nexport module greet;\nimport std;\nexport std::string greet() {\n    std::string s;\n    for (int i = 0; i < GREETER_TIMES; ++i) s += GREETING;\n    return s;\n}\n",
            ),
            (
                "src/main.cpp",
                "import std;\nimport greet;\nint main() { std::println(\"{}\", greet()); }\n",
            ),
        ],
    ));
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(common::run(&r.target("greeter"), &[]), "hihi\n");
    let entries = database(&dir.join("compile_commands.json"));
    assert_host_paths(&entries);
    let module = entry_for(&entries, &dir.join("src/greet.cppm"));
    let include = format!("-I{}", dir.join("include").display());
    let args = arguments(module);
    for flag in [
        include.as_str(),
        "-DGREETING=\"hi\"",
        "-std=c++23",
        "-stdlib=libc++",
    ] {
        assert!(args.contains(&flag), "{flag} missing: {module}");
    }
    // The standard library module, at the toolchain's sources.
    let std_entry = entries
        .iter()
        .find(|e| e["file"].as_str().unwrap().ends_with("/std.cppm"))
        .unwrap_or_else(|| panic!("no std module entry: {entries:#?}"));
    let std_dir = Path::new(std_entry["directory"].as_str().unwrap());
    assert!(
        arguments(std_entry).contains(&format!("-isystem{}", std_dir.display()).as_str()),
        "{std_entry}"
    );
    clangd_understands(&dir, &dir.join("src/main.cpp"));
    clangd_understands(&dir, &dir.join("src/greet.cppm"));
}

#[test]
fn realise_keeps_it_current_and_the_manifest_moves_it_or_turns_it_off() {
    let s = Sandbox::new();
    let dir = canonical(&s.copy_example("hello"));
    let db = dir.join("compile_commands.json");
    let r = s.realise(&dir, &[]).ok();
    // The JSON messages are the usual ones: nothing about the database.
    assert!(
        r.messages
            .iter()
            .all(|m| ["built", "finished"].contains(&m["reason"].as_str().unwrap())),
        "{:?}",
        r.messages
    );
    let written = std::fs::read(&db).unwrap();
    // Deleted or edited, it is written again by the next (no-op) realise.
    std::fs::remove_file(&db).unwrap();
    s.realise(&dir, &[]).ok();
    assert_eq!(std::fs::read(&db).unwrap(), written);
    std::fs::write(&db, "[]").unwrap();
    s.realise(&dir, &[]).ok();
    assert_eq!(std::fs::read(&db).unwrap(), written);
    // A new unit is in it after the next realise.
    std::fs::write(dir.join("src/extra.cpp"), "int extra() { return 1; }\n").unwrap();
    s.realise(&dir, &[]).ok();
    entry_for(&database(&db), &dir.join("src/extra.cpp"));

    let manifest = std::fs::read_to_string(dir.join("cmod.toml")).unwrap();
    let with_build = |setting: &str| {
        std::fs::write(
            dir.join("cmod.toml"),
            format!("{manifest}\n[build]\ncompile-commands = {setting}\n"),
        )
        .unwrap();
    };
    std::fs::remove_file(&db).unwrap();
    with_build("false");
    s.realise(&dir, &[]).ok();
    assert!(!db.exists(), "turned off, yet written");
    // A path relative to the workspace root; its directory is created.
    with_build("\"build/compile_commands.json\"");
    s.realise(&dir, &[]).ok();
    assert!(!db.exists());
    let moved = database(&dir.join("build/compile_commands.json"));
    assert_eq!(files(&moved).len(), 4, "{moved:#?}");
    // An absolute path is refused at its line.
    with_build("\"/tmp/compile_commands.json\"");
    let (code, err) = failure(&s.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is not a path relative to the workspace root") && err.contains("cmod.toml:"),
        "{err}"
    );
}

#[test]
fn a_broken_test_does_not_fail_realise_but_fails_compile_commands() {
    let s = Sandbox::new();
    let dir = canonical(&s.copy_example("hello"));
    let manifest = std::fs::read_to_string(dir.join("cmod.toml")).unwrap();
    std::fs::write(
        dir.join("cmod.toml"),
        format!("{manifest}\n[[test]]\nname = \"t\"\nmain = \"tests/t.cpp\"\n"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join("tests/t.cpp"), "import nowhere;\nint main() {}\n").unwrap();
    let r = Realised::parse(s.cmod(&dir, &["realise", "--message-format", "json"]));
    let stderr = r.stderr();
    let r = r.ok();
    assert!(r.success());
    assert!(
        stderr.contains("warning: compile_commands.json lists only the units of this build")
            && stderr.contains("nowhere"),
        "{stderr}"
    );
    // Written without the test's unit.
    let entries = database(&dir.join("compile_commands.json"));
    assert_eq!(files(&entries).len(), 3, "{entries:#?}");
    let (code, err) = failure(&s.cmod(&dir, &["compile-commands"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nowhere") && err.contains("tests/t.cpp"),
        "{err}"
    );
}

#[test]
fn compile_commands_writes_on_demand_where_asked() {
    let s = Sandbox::new();
    let dir = canonical(&s.copy_example("library"));
    // No build needed: it only evaluates.
    let out = s.cmod(&dir, &["compile-commands"]);
    assert!(out.status.success(), "{}", failure(&out).1);
    let at_root = database(&dir.join("compile_commands.json"));
    assert_eq!(files(&at_root).len(), 9);
    assert_host_paths(&at_root);

    // `-o FILE` is relative to the current directory; `-o -` is stdout.
    let out = s.cmod(&dir.join("src"), &["compile-commands", "-o", "db.json"]);
    assert!(out.status.success(), "{}", failure(&out).1);
    assert_eq!(database(&dir.join("src/db.json")), at_root);
    let out = s.cmod(&dir, &["compile-commands", "-o", "-"]);
    assert!(out.status.success(), "{}", failure(&out).1);
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, Value::Array(at_root.clone()));

    // A missing directory is an error, and nothing is written.
    let listing = || {
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    let (code, err) = failure(&s.cmod(&dir, &["compile-commands", "-o", "missing/cc.json"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot write the compile database `missing/cc.json`: the directory `missing` does not exist"),
        "{err}"
    );
    assert!(!dir.join("missing").exists());
    assert_eq!(listing(), before);
}

#[test]
fn c_units_several_libraries_private_modules_and_pch_users_are_understood() {
    let s = Sandbox::new();
    // C units: `-x c` and the C standard; a C test's main too.
    let dir = canonical(&s.copy_example("c-mix"));
    s.realise(&dir, &[]).ok();
    let entries = database(&dir.join("compile_commands.json"));
    assert_host_paths(&entries);
    let crc = arguments(entry_for(&entries, &dir.join("src/crc32.c"))).join(" ");
    assert!(crc.contains("-std=c17") && crc.contains("-x c "), "{crc}");
    for f in [
        "src/crc32.c",
        "src/checksum.cppm",
        "app/main.cpp",
        "tests/known.c",
    ] {
        clangd_understands(&dir, &dir.join(f));
    }
    // Usage requirements and a module source built by two tests.
    let dir = canonical(&s.copy_example("multi-lib"));
    s.realise(&dir, &[]).ok();
    let entries = database(&dir.join("compile_commands.json"));
    assert_host_paths(&entries);
    let main = arguments(entry_for(&entries, &dir.join("app/main.cpp"))).join(" ");
    assert!(
        main.contains(&format!("-I{}", dir.join("core/include").display())),
        "{main}"
    );
    assert!(
        main.contains("-DTOOLKIT_CORE=1") && !main.contains("-DCORE_BUILDING"),
        "{main}"
    );
    for f in [
        "app/main.cpp",
        "text/src/legacy.cpp",
        "core/src/strings.cpp",
        "tests/check.cpp",
    ] {
        clangd_understands(&dir, &dir.join(f));
    }
    // PCH users see the header itself.
    let dir = canonical(&s.copy_example("pch"));
    s.realise(&dir, &[]).ok();
    let entries = database(&dir.join("compile_commands.json"));
    assert_host_paths(&entries);
    let words = arguments(entry_for(&entries, &dir.join("src/words.cpp")));
    let include = words
        .iter()
        .position(|a| *a == "-include")
        .expect("-include");
    assert_eq!(Path::new(words[include + 1]), dir.join("src/pch.h"));
    assert!(!words.contains(&"-include-pch"), "{words:?}");
    clangd_understands(&dir, &dir.join("src/words.cpp"));
    // A consumer of a library with private modules.
    s.copy_example("visibility");
    let game = canonical(&s.dir.path().join("visibility/game"));
    s.realise(&game, &[]).ok();
    clangd_understands(&game, &game.join("src/main.cpp"));
}

/// Generated units (a program's and a template's) are named where their bytes are, and
/// clangd understands the units that import them, and the generated units themselves.
#[test]
fn generated_units_are_understood_by_clangd() {
    let s = Sandbox::new();
    for (example, importers) in [
        ("codegen", &["main.cpp", "src/paint.cppm"][..]),
        ("generated", &["main.cpp", "src/stamped.cppm"][..]),
    ] {
        let dir = canonical(&s.copy_example(example));
        s.realise(&dir, &[]).ok();
        let entries = database(&dir.join("compile_commands.json"));
        assert_host_paths(&entries);
        for f in importers {
            clangd_understands(&dir, &dir.join(f));
        }
        let generated: Vec<PathBuf> = files(&entries)
            .into_iter()
            .filter(|f| !f.starts_with(&dir))
            .collect();
        assert!(!generated.is_empty(), "{entries:#?}");
        for f in generated {
            clangd_understands(&dir, &f);
        }
    }
}
