//! The README's "daily loop", run as a newcomer would: `cmod new`, an edit that leaves a
//! warning, `realise`, `run`, a `[[test]]`, `test`, and `realise --timings`; each step
//! shows what the README says it shows.

mod common;

use std::path::Path;
use std::process::Output;

use common::{failure, Sandbox};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", failure(&out).1);
    out
}

const EDITED: &str = "module;
#include <string>
module hello;

namespace hello {
std::string greeting() {
    int unused = 0;
    return \"Hello, modules!\";
}
}
";

const TEST: &str = "#include <string>
import hello;

int main() { return hello::greeting() == \"Hello, modules!\" ? 0 : 1; }
";

const WARNING: &str = "src/hello.cpp:7:9: warning: unused variable 'unused' [-Wunused-variable]";

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn the_readme_daily_loop_shows_what_it_says() {
    let s = Sandbox::new();
    ok(s.cmod(s.dir.path(), &["new", "hello"]));
    let dir = s.dir.path().join("hello");
    ok(s.cmod(&dir, &["realise"]));

    write(&dir, "src/hello.cpp", EDITED);
    let built = stderr(&ok(s.cmod(&dir, &["realise"])));
    assert!(built.contains(WARNING), "{built}");
    assert!(
        built.contains("Finished 6 derivations (3 built, 3 fresh, 0 failed; 1 warning)"),
        "{built}"
    );

    let run = ok(s.cmod(&dir, &["run"]));
    assert_eq!(String::from_utf8_lossy(&run.stdout), "Hello, modules!\n");
    let run_err = stderr(&run);
    assert!(
        run_err.contains(WARNING),
        "a fresh step's warning is shown again: {run_err}"
    );
    assert!(run_err.contains("     Running `"), "{run_err}");

    write(&dir, "tests/greeting.cpp", TEST);
    let manifest = dir.join("cmod.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[[test]]\nname = \"greeting\"\nmain = \"tests/greeting.cpp\"\n");
    std::fs::write(&manifest, text).unwrap();
    let tested = ok(s.cmod(&dir, &["test"]));
    let report = String::from_utf8_lossy(&tested.stdout);
    assert!(report.contains("test greeting ... ok"), "{report}");
    assert!(
        report.contains("test result: ok. 1 passed; 0 failed"),
        "{report}"
    );

    // Fix the warning, and see where the rebuild's time went.
    write(
        &dir,
        "src/hello.cpp",
        &EDITED.replace("    int unused = 0;\n", ""),
    );
    let timed = stderr(&ok(s.cmod(&dir, &["realise", "--timings"])));
    assert!(!timed.contains("warning"), "{timed}");
    let saved = timed
        .lines()
        .find_map(|l| l.trim().strip_prefix("Timing report saved to "))
        .unwrap_or_else(|| panic!("no report path in {timed}"));
    let html = std::fs::read_to_string(saved).unwrap();
    for step in ["hello-0.1.0-src-hello.cpp.o", "hello-0.1.0-hello"] {
        assert!(html.contains(step), "the report names the rebuilt `{step}`");
    }
    assert!(dir.join(".cmod/timings/cmod-timing.html").is_file());
}
