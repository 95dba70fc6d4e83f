//! Compiler warnings of successful steps: shown with the user's paths when the step is
//! built, counted in the Finished line and in JSON, and replayed while the step is fresh
//! (a no-op too), as Cargo replays cached warnings.

mod common;

use common::{run, Sandbox};

const WARNED: &str = "src/hello.cpp";

/// `examples/hello` with a `#warning` in its implementation unit.
fn warned_hello(s: &Sandbox) -> std::path::PathBuf {
    let dir = s.copy_example("hello");
    let text = std::fs::read_to_string(dir.join(WARNED)).unwrap();
    std::fs::write(
        dir.join(WARNED),
        text.replace(
            "    std::string out = \"Hello, \";\n",
            "#warning \"greet is slow\"\n    std::string out = \"Hello, \";\n",
        ),
    )
    .unwrap();
    dir
}

fn human(s: &Sandbox, dir: &std::path::Path) -> String {
    let out = s.cmod(dir, &["realise", "-j1"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

#[test]
fn warnings_are_shown_counted_and_replayed_while_fresh() {
    let s = Sandbox::new();
    let dir = warned_hello(&s);
    let warning = "src/hello.cpp:9:2: warning: \"greet is slow\" [-W#warnings]";

    // Built: the warning with the user's path (not the build directory's), once.
    let err = human(&s, &dir);
    assert_eq!(err.matches(warning).count(), 1, "{err}");
    assert!(
        !err.contains("src/hello/src/hello.cpp"),
        "the sandbox path is mapped: {err}"
    );
    assert!(
        err.contains("warning: `hello-0.1.0-src-hello.cpp.o` generated 1 warning\n"),
        "{err}"
    );
    assert!(
        err.contains("failed; 1 warning)"),
        "the Finished line counts it: {err}"
    );
    assert_eq!(run(&dir.join("result"), &[]), "Hello, modules!\n");

    // A no-op (the memo) replays it.
    let again = human(&s, &dir);
    assert!(again.contains("0 built"), "{again}");
    assert_eq!(again.matches(warning).count(), 1, "replayed: {again}");
    assert!(again.contains("failed; 1 warning)"), "{again}");

    // An edit elsewhere: the warned unit is fresh (reused), its warning replayed as a
    // JSON `warnings` line; `finished` counts it.
    let main = dir.join("src/main.cpp");
    std::fs::write(
        &main,
        std::fs::read_to_string(&main).unwrap() + "// edited\n",
    )
    .unwrap();
    let r = s.realise(&dir, &["-j1"]).ok();
    let replayed: Vec<&serde_json::Value> = r
        .messages
        .iter()
        .filter(|m| m["reason"] == "warnings")
        .collect();
    assert_eq!(replayed.len(), 1, "{:?}", r.messages);
    assert_eq!(replayed[0]["name"], "hello-0.1.0-src-hello.cpp.o");
    assert_eq!(replayed[0]["warnings"], 1);
    assert_eq!(replayed[0]["fresh"], true);
    assert!(
        replayed[0]["log"].as_str().unwrap().contains(warning),
        "{}",
        replayed[0]
    );
    assert_eq!(r.finished()["warnings"], 1, "{}", r.finished());
    let built_main = r
        .messages
        .iter()
        .find(|m| m["reason"] == "built" && m["name"] == "hello-0.1.0-src-main.cpp.o")
        .expect("main.cpp was rebuilt");
    assert_eq!(built_main["warnings"], 0, "{built_main}");

    // Fixed: no warning is shown or replayed any more.
    let text = std::fs::read_to_string(dir.join(WARNED)).unwrap();
    std::fs::write(
        dir.join(WARNED),
        text.replace("#warning \"greet is slow\"\n", ""),
    )
    .unwrap();
    let fixed = human(&s, &dir);
    assert!(!fixed.contains("warning"), "{fixed}");
    assert!(!human(&s, &dir).contains("warning"), "nothing to replay");
}

/// A clean build in JSON: the built step's message carries its warnings and log.
#[test]
fn a_built_steps_json_message_carries_its_warnings() {
    let s = Sandbox::new();
    let dir = warned_hello(&s);
    let r = s.realise(&dir, &["-j1", "--no-link"]).ok();
    let built = r
        .messages
        .iter()
        .find(|m| m["reason"] == "built" && m["name"] == "hello-0.1.0-src-hello.cpp.o")
        .expect("the implementation unit was built");
    assert_eq!(built["warnings"], 1, "{built}");
    let log = built["log"].as_str().unwrap_or_default();
    assert!(
        log.contains("src/hello.cpp:9:2: warning: \"greet is slow\""),
        "{built}"
    );
    assert_eq!(r.finished()["warnings"], 1, "{}", r.finished());
    // A step found in the build trace but not in any memo (another store's realisation
    // of the same package, here a fresh checkout) still replays its warning.
    let other = s.dir.path().join("elsewhere");
    common::copy_dir(&dir, &other);
    let r = s.realise(&other, &["-j1", "--no-link"]).ok();
    assert!(r.built().is_empty(), "{:?}", r.built());
    assert_eq!(r.finished()["warnings"], 1, "{}", r.finished());
}
