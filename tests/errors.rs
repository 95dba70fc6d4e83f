//! Bad input gets a clear error naming the file and line, with its own exit code, and
//! leaves the store valid. Every case runs the real `cmod` binary.

mod common;

use common::{failure, Sandbox};

const PKG: &str = "[package]\nname = \"bad\"\nversion = \"0.1.0\"\n\n[lib]\nsources = [\"src/*.cppm\", \"src/*.cpp\"]\n";

fn project(s: &Sandbox, files: &[(&str, &str)]) -> std::path::PathBuf {
    let mut all = vec![("cmod.toml", PKG)];
    all.extend_from_slice(files);
    s.project("p", &all)
}

/// Realise and expect failure with `code`; returns stderr.
fn fails(s: &Sandbox, dir: &std::path::Path, code: i32) -> String {
    let out = s.cmod(dir, &["realise"]);
    let (got, stderr) = failure(&out);
    assert_eq!(got, code, "exit code; stderr:\n{stderr}");
    stderr
}

#[test]
fn duplicate_module_name() {
    let s = Sandbox::new();
    let dir = project(
        &s,
        &[
            ("src/a.cppm", "export module dup;\n"),
            ("src/b.cppm", "// second\nexport module dup;\n"),
        ],
    );
    let err = fails(&s, &dir, 2);
    assert!(
        err.contains("error: module `dup` is declared twice"),
        "{err}"
    );
    assert!(err.contains("src/b.cppm:2:1"), "{err}");
    assert!(
        err.contains("note: first declared here") && err.contains("src/a.cppm:1:1"),
        "{err}"
    );
}

#[test]
fn unknown_import_names_the_importing_file_and_line() {
    let s = Sandbox::new();
    let dir = project(
        &s,
        &[
            ("src/a.cppm", "export module alpha;\n"),
            (
                "src/use.cpp",
                "#include <cstdio>\nimport alpha;\nimport alhpa_extra;\n",
            ),
        ],
    );
    let err = fails(&s, &dir, 2);
    assert!(
        err.contains("error: `src/use.cpp` imports module `alhpa_extra`, which no unit provides"),
        "{err}"
    );
    assert!(err.contains("src/use.cpp:3:1"), "{err}");
    assert!(err.contains(" 3 | import alhpa_extra;"), "{err}");
}

#[test]
fn import_cycle_lists_the_cycle() {
    let s = Sandbox::new();
    let dir = project(
        &s,
        &[
            ("src/a.cppm", "export module ca;\nimport cb;\n"),
            ("src/b.cppm", "export module cb;\nimport ca;\n"),
        ],
    );
    let err = fails(&s, &dir, 2);
    assert!(
        err.contains("modules import each other in a cycle: ca → cb → ca"),
        "{err}"
    );
    assert!(
        err.contains("`ca` imports `cb` here") && err.contains("`cb` imports `ca` here"),
        "{err}"
    );
    assert!(
        err.contains("src/a.cppm:2:1") && err.contains("src/b.cppm:2:1"),
        "{err}"
    );
}

#[test]
fn partition_without_primary_interface() {
    let s = Sandbox::new();
    let dir = project(
        &s,
        &[(
            "src/p.cppm",
            "export module lonely:part;\nexport int f();\n",
        )],
    );
    let err = fails(&s, &dir, 2);
    assert!(err.contains("exported partition `lonely:part` belongs to module `lonely`, which has no primary interface in this package"), "{err}");
    assert!(err.contains("src/p.cppm:1:1"), "{err}");
}

#[test]
fn implementation_unit_without_interface() {
    let s = Sandbox::new();
    let dir = project(
        &s,
        &[(
            "src/impl.cpp",
            "// implementation\nmodule ghost;\nint f() { return 1; }\n",
        )],
    );
    let err = fails(&s, &dir, 2);
    assert!(err.contains("implementation unit of module `ghost` has no interface `export module ghost;` in this package"), "{err}");
    assert!(err.contains("src/impl.cpp:2:1"), "{err}");
}

#[test]
fn unexported_partition_is_a_warning_not_an_error() {
    let s = Sandbox::new();
    let dir = project(
        &s,
        &[
            ("src/m.cppm", "export module wm;\nimport :p;\n"),
            (
                "src/p.cppm",
                "export module wm:p;\nexport int f() { return 1; }\n",
            ),
        ],
    );
    let out = s.cmod(&dir, &["realise"]);
    let (code, err) = failure(&out);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning: exported partition `wm:p` is not re-exported by the primary interface of `wm`"), "{err}");
    assert!(
        err.contains("help: add `export import :p;` to `src/m.cppm`"),
        "{err}"
    );
}

#[test]
fn a_header_unit_that_does_not_exist_is_named_at_its_import() {
    let s = Sandbox::new();
    let dir = project(
        &s,
        &[(
            "src/a.cppm",
            "export module hu;\n// the next line names no header\nimport <no_such_header.h>;\nimport \"nor_this.h\";\n",
        )],
    );
    let err = fails(&s, &dir, 2);
    assert!(
        err.contains("header unit `<no_such_header.h>` does not exist"),
        "{err}"
    );
    assert!(err.contains("src/a.cppm:3:1"), "{err}");
    assert!(err.contains("help: check the header's name"), "{err}");
}

#[test]
fn manifest_errors_show_file_line_column_and_a_fix() {
    let s = Sandbox::new();
    let dir = s.project(
        "m",
        &[(
            "cmod.toml",
            "[package]\nname = \"m\"\nversion = \"0.1.0\"\n\n[lib]\nsoruces = [\"src/*.cppm\"]\n",
        )],
    );
    let err = fails(&s, &dir, 2);
    assert!(err.contains("unknown field `soruces`"), "{err}");
    assert!(err.contains("cmod.toml:6:1"), "{err}");
    assert!(err.contains("help: did you mean `sources`?"), "{err}");

    std::fs::write(
        dir.join("cmod.toml"),
        "[package]\nname = \"m\"\nversion = \"1.2\"\n",
    )
    .unwrap();
    let err = fails(&s, &dir, 2);
    assert!(err.contains("`1.2` is not a semantic version"), "{err}");
    assert!(err.contains("cmod.toml:3:11"), "{err}");
    assert!(err.contains("e.g. `1.2.0`"), "{err}");
}

#[test]
fn missing_compiler_gives_the_install_command() {
    let s = Sandbox::new();
    let dir = s.project("c", &[("cmod.toml", "[package]\nname = \"c\"\nversion = \"0.1.0\"\n[toolchain]\ncompiler = \"clang++-404\"\n[[bin]]\nname = \"c\"\nmain = \"m.cpp\"\n"), ("m.cpp", "int main() {}\n")]);
    let err = fails(&s, &dir, 2);
    assert!(
        err.contains("C++ compiler `clang++-404` was not found on PATH"),
        "{err}"
    );
    assert!(err.contains("cmod.toml:5:12"), "{err}");
    assert!(
        err.contains("apt-get install clang-19 clang-tools-19 lld-19"),
        "{err}"
    );
}

#[test]
fn compile_error_names_the_unit_exits_1_and_keeps_the_store_valid() {
    let s = Sandbox::new();
    let dir = project(
        &s,
        &[
            (
                "src/ok.cppm",
                "export module okm;\nexport int ok() { return 1; }\n",
            ),
            (
                "src/broken.cpp",
                "import okm;\nint broken() { return ok() + ; }\n",
            ),
        ],
    );
    let r = s.realise(&dir, &[]);
    assert_eq!(r.output.status.code(), Some(1), "{}", r.stderr());
    assert_eq!(r.finished()["success"], false);
    let failed: Vec<&serde_json::Value> = r
        .messages
        .iter()
        .filter(|m| m["reason"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["name"], "bad-0.1.0-src-broken.cpp.o");
    // Diagnostics name the user's file (relative to the current directory), not the
    // path the compiler saw in its build directory.
    let log = failed[0]["log"].as_str().unwrap();
    assert!(
        log.lines()
            .any(|l| l.starts_with("src/broken.cpp:2:30: error: expected expression")),
        "{log}"
    );
    assert!(!log.contains("src/bad/src/broken.cpp"), "{log}");
    let stderr = r.stderr();
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("src/broken.cpp:2:30: error: expected expression")),
        "{stderr}"
    );
    assert!(!stderr.contains("src/bad/"), "{stderr}");
    // Each diagnostic is shown once; the final error names the step instead of
    // repeating them.
    assert_eq!(
        stderr.matches("error: expected expression").count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("the builder failed with").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("could not build `bad-0.1.0-src-broken.cpp.o` (the builder ended with exit code 1; its output is above)"),
        "{stderr}"
    );
    // Nothing partial was registered, and everything that was is intact.
    s.assert_store_verifies(&dir);
    // The log stays available, as the compiler wrote it, by derivation and by target.
    let drv = failed[0]["drv"].as_str().unwrap();
    assert!(
        stderr.contains(&format!("the log is kept: `cmod log {drv}`")),
        "{stderr}"
    );
    let by_drv = s.cmod(&dir, &["log", drv]);
    assert!(by_drv.status.success(), "{}", failure(&by_drv).1);
    let text = String::from_utf8_lossy(&by_drv.stdout);
    assert!(
        text.contains("src/bad/src/broken.cpp:2:30: error: expected expression"),
        "{text}"
    );
    // The command as printed, without `--store`, finds the store from the path (the
    // default store of this environment is elsewhere).
    let home = s.dir.path().join("home");
    let as_printed = std::process::Command::new(env!("CARGO_BIN_EXE_cmod"))
        .args(["log", drv])
        .current_dir(&dir)
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env_remove("CMOD_STORE")
        .output()
        .unwrap();
    assert!(as_printed.status.success(), "{}", failure(&as_printed).1);
    assert_eq!(as_printed.stdout, by_drv.stdout);
    let by_target = s.cmod(&dir, &["log", "libbad.a"]);
    let (code, note) = failure(&by_target);
    assert_eq!(code, 0, "{note}");
    assert!(
        note.contains("`libbad.a` was not built; this is the log of `bad-0.1.0-src-broken.cpp.o`"),
        "{note}"
    );
    assert_eq!(String::from_utf8_lossy(&by_target.stdout), text);

    // After the fix the target's own step ran: its log is shown, without the note.
    std::fs::write(
        dir.join("src/broken.cpp"),
        "import okm;\nint broken() { return ok() + 1; }\n",
    )
    .unwrap();
    s.realise(&dir, &[]).ok();
    let fixed = s.cmod(&dir, &["log", "libbad.a"]);
    let (code, note) = failure(&fixed);
    assert_eq!(code, 0, "{note}");
    assert!(!note.contains("was not built"), "{note}");
    assert!(
        !String::from_utf8_lossy(&fixed.stdout).contains("expected expression"),
        "{}",
        String::from_utf8_lossy(&fixed.stdout)
    );
}

/// A log is recorded only for derivations this store built or attempted.
#[test]
fn log_of_an_unknown_path_says_how_to_get_one() {
    let s = Sandbox::new();
    let dir = project(&s, &[("src/ok.cppm", "export module okm;\n")]);
    let out = s.cmod(&dir, &["log", "0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-x.drv"]);
    let (code, err) = failure(&out);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no build log is recorded for `0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-x.drv`"),
        "{err}"
    );
    assert!(err.contains("run `cmod realise` first"), "{err}");
}

#[test]
fn json_contract_reports_errors_before_building_too() {
    let s = Sandbox::new();
    let dir = project(&s, &[("src/impl.cpp", "module ghost;\n")]);
    let r = s.realise(&dir, &[]);
    assert_eq!(r.output.status.code(), Some(2));
    let errors: Vec<&serde_json::Value> = r
        .messages
        .iter()
        .filter(|m| m["reason"] == "error")
        .collect();
    assert_eq!(errors.len(), 1);
    assert!(errors[0]["message"]
        .as_str()
        .unwrap()
        .contains("has no interface"));
    // The error line carries what the human rendering says: where, and how to fix it.
    let e = errors[0];
    assert!(e["help"].as_str().is_some_and(|h| !h.is_empty()), "{e}");
    assert!(
        e["location"]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("src/impl.cpp")),
        "{e}"
    );
    assert_eq!(e["location"]["line"], 1, "{e}");
    assert_eq!(e["exit_code"], 2, "{e}");
    assert!(
        e["rendered"]
            .as_str()
            .is_some_and(|t| t.starts_with("error: ") && t.contains("help")),
        "{e}"
    );
    assert_eq!(r.finished()["success"], false);
    // `finished` says why too.
    assert!(
        r.finished()["error"]
            .as_str()
            .is_some_and(|m| m.contains("has no interface")),
        "{}",
        r.finished()
    );
}
