//! `cmod test` end to end with real clang: `[[test]]` binaries are realised and run in the
//! sandbox, reported per test, and fail the command (exit 1) when any fails;
//! `[dev-dependencies]` are resolved, fetched and locked, and importable by tests only.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::upstream::{Upstream, PREFIX};
use common::{cmod_env, failure, git, Sandbox};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn succeeded(out: Output) -> Output {
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

#[test]
fn the_library_examples_test_passes_and_realise_does_not_build_it() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let r = s.realise(&dir, &[]).ok();
    assert!(
        !r.built().iter().any(|n| n.contains("test-checks")),
        "{:?}",
        r.built()
    );
    assert!(r.finished()["targets"].get("checks").is_none());
    let out = succeeded(s.cmod(&dir, &["test"]));
    let text = stdout(&out);
    assert!(
        text.contains("running 1 test\ntest checks ... ok\n"),
        "{text}"
    );
    assert!(
        text.contains("test result: ok. 1 passed; 0 failed"),
        "{text}"
    );
    // Only the test's own object and link were left to build.
    assert!(
        stderr(&out).contains("(2 built, 11 fresh, 0 failed)"),
        "{}",
        stderr(&out)
    );
}

/// A package `calc` with a library and two tests: `sums` (which checks the sandbox it
/// runs in and the arguments it gets) and `broken` (which fails).
fn calc(s: &Sandbox) -> PathBuf {
    s.project(
        "calc",
        &[
            ("cmod.toml", "[package]\nname = \"calc\"\nversion = \"0.1.0\"\n\n[lib]\nsources = [\"src/*.cppm\"]\n\n[[test]]\nname = \"sums\"\nmain = \"tests/sums.cpp\"\n\n[[test]]\nname = \"broken\"\nmain = \"tests/broken.cpp\"\n"),
            ("src/calc.cppm", "export module calc;\nexport int add(int a, int b) { return a + b; }\n"),
            ("tests/data.txt", "fixture\n"),
            ("tests/sums.cpp", r#"#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
import calc;

int main(int argc, char** argv) {
    if (argc != 2 || std::strcmp(argv[1], "--fast") != 0) { std::puts("expected --fast"); return 2; }
    if (add(2, 3) != 5) return 1;
    // A cleared environment; the package directory readable but not writable; a
    // private, writable working directory.
    const char* home = std::getenv("HOME");
    if (!home || std::string(home) != "/homeless-shelter") { std::puts("HOME leaked"); return 3; }
    if (std::getenv("CMOD_LEAK")) { std::puts("CMOD_LEAK leaked"); return 4; }
    std::string dir = std::getenv("CMOD_PACKAGE_DIR");
    std::ifstream fixture(dir + "/tests/data.txt");
    std::string word;
    fixture >> word;
    if (word != "fixture") { std::puts("no fixture"); return 5; }
    if (std::fopen((dir + "/written-by-test").c_str(), "w")) { std::puts("package dir writable"); return 6; }
    if (!std::fopen("scratch.txt", "w")) { std::puts("working directory not writable"); return 7; }
    std::puts("sums ok");
    return 0;
}
"#),
            ("tests/broken.cpp", "#include <cstdio>\nimport calc;\nint main() {\n    std::printf(\"add(2, 2) = %d, expected 5\\n\", add(2, 2));\n    return add(2, 2) == 5 ? 0 : 1;\n}\n"),
        ],
    )
}

#[test]
fn a_failing_test_exits_1_names_it_and_shows_its_output() {
    let s = Sandbox::new();
    let dir = calc(&s);
    let leak = [("CMOD_LEAK", "1".to_string())];
    let out = cmod_env(&dir, &s.store(), &["test", "--", "--fast"], &leak);
    let (code, err) = failure(&out);
    let text = stdout(&out);
    assert_eq!(code, 1, "stdout:\n{text}\nstderr:\n{err}");
    assert!(text.contains("running 2 tests\n"), "{text}");
    assert!(text.contains("test sums ... ok\n"), "{text}");
    assert!(
        text.contains("test broken ... FAILED (exit code 1)\n"),
        "{text}"
    );
    assert!(
        text.contains("---- broken output ----\nadd(2, 2) = 4, expected 5\n"),
        "{text}"
    );
    assert!(
        !text.contains("sums ok"),
        "a passing test's output is not shown: {text}"
    );
    assert!(
        text.contains("test result: FAILED. 1 passed; 1 failed"),
        "{text}"
    );
    assert!(err.contains("error: 1 of 2 tests failed: broken"), "{err}");
    assert!(
        !dir.join("written-by-test").exists(),
        "the package directory is read-only to tests"
    );

    // Picking the passing test (by name or member/name) succeeds, and shows its output on
    // request.
    let out = succeeded(s.cmod(
        &dir,
        &["test", "calc/sums", "--show-output", "--", "--fast"],
    ));
    let text = stdout(&out);
    assert!(
        text.contains("running 1 test\ntest sums ... ok\n---- sums output ----\nsums ok\n"),
        "{text}"
    );
    assert!(!text.contains("broken"), "{text}");
    // Without the argument it needs, the same test fails with its own exit code.
    let (code, _) = failure(&s.cmod(&dir, &["test", "sums"]));
    assert_eq!(code, 1);
    let (code, err) = failure(&s.cmod(&dir, &["test", "nope"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no test named `nope`")
            && err.contains("the tests are: calc/sums, calc/broken"),
        "{err}"
    );
}

/// `checker`, an assertion library that only tests use.
fn checker(s: &Sandbox) {
    s.project(
        "checker",
        &[
            ("cmod.toml", "[package]\nname = \"checker\"\nversion = \"0.3.0\"\n\n[lib]\nsources = [\"src/*.cppm\"]\n"),
            ("src/checker.cppm", "module;\n#include <cstdio>\nexport module checker;\nexport namespace checker {\ninline int failures = 0;\ninline void expect(bool ok, const char* what) {\n    std::printf(\"%s: %s\\n\", ok ? \"ok\" : \"FAILED\", what);\n    if (!ok) ++failures;\n}\ninline int result() { return failures == 0 ? 0 : 1; }\n}\n"),
        ],
    );
}

const METER_MANIFEST: &str = "[package]\nname = \"meter\"\nversion = \"0.1.0\"\n\n[lib]\nsources = [\"src/*.cppm\"]\n\n[[test]]\nname = \"checked\"\nmain = \"tests/checked.cpp\"\n\n[dependencies]\nbase = { path = \"../base\" }\n\n[dev-dependencies]\nchecker = { path = \"../checker\" }\n";

#[test]
fn a_dev_dependency_is_locked_and_importable_by_tests_only() {
    let s = Sandbox::new();
    checker(&s);
    // `base` is a dependency; its own dev-dependency points nowhere, and is never loaded.
    s.project(
        "base",
        &[
            ("cmod.toml", "[package]\nname = \"base\"\nversion = \"1.0.0\"\n\n[lib]\nsources = [\"src/*.cppm\"]\n\n[dev-dependencies]\nmissing = { path = \"../nowhere\" }\n"),
            ("src/base.cppm", "export module base;\nexport int offset() { return 40; }\n"),
        ],
    );
    let dir = s.project(
        "meter",
        &[
            ("cmod.toml", METER_MANIFEST),
            ("src/meter.cppm", "export module meter;\nimport base;\nexport int reading() { return offset() + 2; }\n"),
            ("tests/checked.cpp", "import checker;\nimport meter;\nint main() {\n    checker::expect(reading() == 42, \"the reading is 42\");\n    return checker::result();\n}\n"),
        ],
    );
    let out = succeeded(s.cmod(&dir, &["test"]));
    assert!(
        stdout(&out).contains("test checked ... ok"),
        "{}",
        stdout(&out)
    );
    let lock = std::fs::read_to_string(dir.join("cmod.lock")).unwrap();
    let parsed = cmod_schema::lock::Lockfile::parse(&lock).unwrap();
    let names: Vec<&str> = parsed.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["base", "checker"], "{lock}");
    assert_eq!(parsed.packages[1].source, "path+../checker");
    // The lock is the same whatever is built: a locked realise accepts it, and builds
    // nothing of the dev-dependency.
    let r = s.realise(&dir, &["--locked"]).ok();
    assert!(
        !r.built().iter().any(|n| n.starts_with("checker-")),
        "{:?}",
        r.built()
    );
    let tree = stdout(&succeeded(s.cmod(&dir, &["tree"])));
    assert!(
        tree.contains("└── base v1.0.0") && tree.contains("[dev-dependencies]\n└── checker v0.3.0"),
        "{tree}"
    );

    // The library importing the dev-dependency is the undeclared-package error.
    std::fs::write(
        dir.join("src/meter.cppm"),
        "export module meter;\nimport base;\nimport checker;\nexport int reading() { return offset() + 2; }\n",
    )
    .unwrap();
    let (code, err) = failure(&s.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("module `checker` is provided by package `checker`, which is only a dev-dependency of `meter`"),
        "{err}"
    );
    assert!(err.contains("src/meter.cppm:3:1"), "{err}");
    assert!(
        err.contains("move `checker` from [dev-dependencies] to [dependencies]"),
        "{err}"
    );

    // A dev-dependency's shape is checked like a dependency's, at its line.
    std::fs::write(
        dir.join("cmod.toml"),
        METER_MANIFEST.replace(
            "checker = { path = \"../checker\" }",
            "checker = { path = \"../checker\", git = \"file:///elsewhere\" }",
        ),
    )
    .unwrap();
    let (code, err) = failure(&s.cmod(&dir, &["test"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("dependency `checker` gives both `path` and `git`")
            && err.contains("cmod.toml:16:11"),
        "{err}"
    );
}

#[test]
fn a_git_dev_dependency_added_with_cmod_add_dev_is_fetched_and_locked() {
    let u = Upstream::new();
    let original = "[package]\nname = \"greeter\"\nversion = \"0.1.0\"\n\n[[bin]]\nname = \"greeter\"\nmain = \"main.cpp\"\n\n[[test]]\nname = \"greets\"\nmain = \"tests/greets.cpp\"\n";
    let dir = u.s.project(
        "greeter",
        &[
            ("cmod.toml", original),
            ("main.cpp", "int main() { return 0; }\n"),
            ("tests/greets.cpp", "#include <string>\nimport greeting;\nint main() { return greeting::hello(\"t\") == \"hello, t (greeting 1.0.0)\" ? 0 : 1; }\n"),
        ],
    );
    let url = format!("{PREFIX}greeting.git");
    succeeded(u.cmod(
        &dir,
        &["add", "greeting", "--dev", "--git", &url, "--tag", "v1.0.0"],
    ));
    let manifest = std::fs::read_to_string(dir.join("cmod.toml")).unwrap();
    assert_eq!(
        manifest,
        format!(
            "{original}\n[dev-dependencies]\ngreeting = {{ git = \"{url}\", tag = \"v1.0.0\" }}\n"
        )
    );
    let out = succeeded(u.cmod(&dir, &["test"]));
    assert!(
        stdout(&out).contains("test greets ... ok"),
        "{}",
        stdout(&out)
    );
    let commit = git(
        &u.repos.join("greeting.git"),
        &["rev-parse", "v1.0.0^{commit}"],
    );
    let lock = std::fs::read_to_string(dir.join("cmod.lock")).unwrap();
    assert!(
        lock.contains(&format!("source = \"git+{url}?tag=v1.0.0#{commit}\"")),
        "{lock}"
    );
    // Fetched into the store: the test runs again with neither network nor lock changes.
    std::fs::rename(&u.repos, u.s.dir.path().join("gone")).unwrap();
    let out = succeeded(u.cmod(&dir, &["test", "--frozen"]));
    assert!(
        stdout(&out).contains("1 passed; 0 failed"),
        "{}",
        stdout(&out)
    );
    // Removing the last dev-dependency takes the empty table along: the manifest is
    // as it was before `cmod add`.
    succeeded(u.cmod(&dir, &["remove", "--dev", "greeting"]));
    assert_eq!(
        std::fs::read_to_string(dir.join("cmod.toml")).unwrap(),
        original
    );
}

/// With `stdlib = "libc++"` a test binary loads libc++, libc++abi and libunwind at run
/// time, through soname links the build closure lacks; `cmod test` shows it the
/// toolchain's runtime too. In the full sandbox the passing test passes, and a failing
/// assertion (an exception thrown, caught and reported) is a failed test with its own
/// message, not a loader error.
#[test]
fn a_libcxx_test_runs_in_the_full_sandbox_and_a_failed_assertion_fails_it() {
    let s = Sandbox::new();
    let check = |name: &str, sum: i32| {
        format!(
            r#"import std;
import tally;

void expect(bool ok, const char* what) {{
    if (!ok) throw std::runtime_error(what);
}}

int main() {{
    try {{
        expect(tally::sum({{1, 2, 3}}) == {sum}, "sum of 1, 2, 3 is {sum}");
    }} catch (const std::exception& e) {{
        std::cout << "assertion failed: " << e.what() << '\n';
        return 1;
    }}
    std::cout << "{name} ok\n";
    return 0;
}}
"#
        )
    };
    let (good, bad) = (check("adds", 6), check("miscounts", 7));
    let dir = s.project(
        "tally",
        &[
            ("cmod.toml", "[package]\nname = \"tally\"\nversion = \"0.1.0\"\n\n[toolchain]\nstdlib = \"libc++\"\n\n[lib]\nsources = [\"src/*.cppm\"]\n\n[[test]]\nname = \"adds\"\nmain = \"tests/adds.cpp\"\n\n[[test]]\nname = \"miscounts\"\nmain = \"tests/miscounts.cpp\"\n"),
            ("src/tally.cppm", "export module tally;\nimport std;\nexport namespace tally {\nint sum(std::vector<int> v) { return std::accumulate(v.begin(), v.end(), 0); }\n}\n"),
            ("tests/adds.cpp", &good),
            ("tests/miscounts.cpp", &bad),
        ],
    );
    let out = succeeded(s.cmod(&dir, &["test", "adds", "--show-output"]));
    let text = stdout(&out);
    assert!(
        text.contains("test adds ... ok\n---- adds output ----\nadds ok\n"),
        "{text}"
    );

    let out = s.cmod(&dir, &["test", "--sandbox", "full"]);
    let (code, err) = failure(&out);
    let text = stdout(&out);
    assert_eq!(code, 1, "stdout:\n{text}\nstderr:\n{err}");
    assert!(
        !text.contains("cannot open shared object file"),
        "the loader failed: {text}"
    );
    assert!(text.contains("test adds ... ok\n"), "{text}");
    assert!(
        text.contains("test miscounts ... FAILED (exit code 1)\n"),
        "{text}"
    );
    assert!(
        text.contains("---- miscounts output ----\nassertion failed: sum of 1, 2, 3 is 7\n"),
        "{text}"
    );
    assert!(
        err.contains("error: 1 of 2 tests failed: miscounts"),
        "{err}"
    );
}

/// A package that lives under the host's `/tmp` (created there explicitly, with a space in
/// the path): its test still gets a private, writable `/tmp`, while the package directory
/// stays readable (and read-only) at its own path under `/tmp`.
#[test]
fn a_package_under_tmp_gets_a_private_writable_tmp_in_its_tests() {
    let s = Sandbox {
        dir: tempfile::Builder::new()
            .prefix("cmod tmp-package ")
            .tempdir_in("/tmp")
            .expect("temp dir in /tmp"),
    };
    let marker = format!("cmod-test-scratch-{}", std::process::id());
    let source = format!(
        r#"#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
import scratch;

int main() {{
    if (answer() != 42) return 1;
    {{
        std::ofstream out("/tmp/{marker}");
        out << "scratch\n";
        if (!out.flush()) {{ std::perror("writing /tmp/{marker}"); return 2; }}
    }}
    std::ifstream in("/tmp/{marker}");
    std::string word;
    in >> word;
    if (word != "scratch") {{ std::puts("read back nothing"); return 3; }}
    std::string dir = std::getenv("CMOD_PACKAGE_DIR");
    std::ifstream fixture(dir + "/data.txt");
    fixture >> word;
    if (word != "fixture") {{ std::puts("no fixture"); return 4; }}
    if (std::fopen((dir + "/written-by-test").c_str(), "w")) {{ std::puts("package dir writable"); return 5; }}
    std::puts("tmp ok");
    return 0;
}}
"#
    );
    let dir = s.project(
        "scratch pad",
        &[
            ("cmod.toml", "[package]\nname = \"scratch\"\nversion = \"0.1.0\"\n\n[lib]\nsources = [\"src/*.cppm\"]\n\n[[test]]\nname = \"uses-tmp\"\nmain = \"tests/uses_tmp.cpp\"\n"),
            ("src/scratch.cppm", "export module scratch;\nexport int answer() { return 42; }\n"),
            ("data.txt", "fixture\n"),
            ("tests/uses_tmp.cpp", &source),
        ],
    );
    assert!(dir.starts_with("/tmp"), "{}", dir.display());
    let out = succeeded(s.cmod(&dir, &["test", "--show-output"]));
    let text = stdout(&out);
    assert!(
        text.contains("test uses-tmp ... ok\n---- uses-tmp output ----\ntmp ok\n"),
        "{text}"
    );
    assert!(
        !std::path::Path::new("/tmp").join(&marker).exists(),
        "the test wrote the host's /tmp"
    );
    assert!(!dir.join("written-by-test").exists());
}

/// A package without tests: `cmod test` succeeds with a note saying why nothing ran and
/// how to add a test, and the usual summary (0 passed) in either message format.
#[test]
fn no_tests_is_a_clear_success() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let out = succeeded(s.cmod(&dir, &["test"]));
    assert!(
        stdout(&out).contains("test result: ok. 0 passed; 0 failed"),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("note: the selected package(s) have no [[test]] targets"),
        "{err}"
    );
    assert!(err.contains("[[test]]` table"), "{err}");
    let json = succeeded(s.cmod(&dir, &["test", "--message-format", "json"]));
    let summary: serde_json::Value = serde_json::from_str(stdout(&json).trim()).unwrap();
    assert_eq!(summary["reason"], "test-summary");
    assert_eq!(summary["success"], true);
    assert_eq!(summary["passed"], 0);
}
