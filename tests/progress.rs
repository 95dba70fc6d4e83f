//! Human progress on stderr: `-q` leaves only warnings and errors, `-v` adds the fresh
//! steps and each built step's time, and on a terminal the running steps are shown with
//! their time while the `Compiling` lines stay on screen.

mod common;

use std::path::Path;
use std::process::Command;

use common::Sandbox;

fn stderr(s: &Sandbox, dir: &Path, args: &[&str]) -> String {
    let out = s.cmod(dir, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {err}");
    err
}

/// `examples/hello` with a `#warning` in its implementation unit.
fn warned_hello(s: &Sandbox) -> std::path::PathBuf {
    let dir = s.copy_example("hello");
    let file = dir.join("src/hello.cpp");
    let text = std::fs::read_to_string(&file).unwrap();
    let warned = text.replace(
        "    std::string out = \"Hello, \";\n",
        "#warning \"greet is slow\"\n    std::string out = \"Hello, \";\n",
    );
    assert_ne!(text, warned);
    std::fs::write(&file, warned).unwrap();
    dir
}

#[test]
fn quiet_shows_only_warnings() {
    let s = Sandbox::new();
    let dir = warned_hello(&s);
    let err = stderr(&s, &dir, &["-q", "realise", "-j1"]);
    assert!(
        err.contains("warning: \"greet is slow\""),
        "a compiler's warning stays: {err}"
    );
    for status in ["Compiling", "Finished", "derivations"] {
        assert!(!err.contains(status), "-q hides `{status}`: {err}");
    }
    assert!(dir.join("result").exists(), "it still built");

    // The same build without -q says what it did.
    std::fs::remove_file(dir.join("result")).unwrap();
    let loud = stderr(&s, &dir, &["realise", "--quiet"]);
    assert!(!loud.contains("Finished"), "{loud}");
    let normal = stderr(&s, &dir, &["realise"]);
    assert!(normal.contains("Finished"), "{normal}");
}

#[test]
fn verbose_lists_fresh_steps_and_built_times() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let built = stderr(&s, &dir, &["realise", "-v", "-j1"]);
    let names: Vec<String> = built
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Compiling "))
        .map(str::to_string)
        .collect();
    assert!(names.len() >= 4, "{built}");
    // Each step's command line, as Cargo's -v shows rustc's.
    let commands: Vec<&str> = built
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Running `"))
        .collect();
    assert_eq!(commands.len(), names.len(), "{built}");
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("c++ ") && c.contains(" -c ")),
        "{built}"
    );
    assert!(commands.iter().any(|c| c.starts_with("ar ")), "{built}");
    for name in &names {
        let timed = built.lines().any(|l| {
            l.trim_start()
                .strip_prefix(&format!("Built {name} in "))
                .is_some_and(|t| t.ends_with('s') && t[..t.len() - 1].parse::<f64>().is_ok())
        });
        assert!(timed, "`Built {name} in <secs>s`: {built}");
    }

    // A no-op lists each step as fresh; without -v it does not.
    let again = stderr(&s, &dir, &["--verbose", "realise"]);
    for name in &names {
        assert!(
            again
                .lines()
                .any(|l| l.trim_start() == format!("Fresh {name}")),
            "`Fresh {name}`: {again}"
        );
    }
    let plain = stderr(&s, &dir, &["realise"]);
    assert!(!plain.contains("Fresh"), "{plain}");
}

#[test]
fn quiet_and_verbose_conflict() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let out = s.cmod(&dir, &["-q", "-v", "realise"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

/// On a terminal (`script` gives cmod a pseudo-terminal): a line per running step with
/// its elapsed time under the bar, and every `Compiling` line kept.
#[test]
fn a_terminal_shows_running_steps_with_their_time_and_keeps_the_built_list() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let log = s.dir.path().join("tty.log");
    // `script` runs the line with a shell: quote the paths (a checkout may be anywhere,
    // spaces included).
    let quote = |p: &str| format!("'{}'", p.replace('\'', "'\\''"));
    let command = format!(
        "{} --store {} --color never realise -j2",
        quote(env!("CARGO_BIN_EXE_cmod")),
        quote(&s.store().display().to_string())
    );
    let out = Command::new("script")
        .args(["-qec", &command])
        .arg(&log)
        .current_dir(&dir)
        .env("TERM", "xterm")
        .output()
        .expect("run `script` (util-linux's bsdutils, on every Debian system)");
    let screen = std::fs::read_to_string(&log).expect("the terminal's output");
    assert!(out.status.success(), "{screen}");
    // The run's steps, from a second (JSON) look at the same build: all fresh now.
    let fresh = s.realise(&dir, &[]);
    let names: Vec<String> = fresh
        .messages
        .iter()
        .filter(|m| m["reason"] == "fresh")
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        // Padded to the terminal's width or ended (the name is not a prefix of another).
        let line = format!("Compiling {name}");
        let kept = screen
            .split(line.as_str())
            .skip(1)
            .any(|after| after.starts_with([' ', '\r', '\n']));
        assert!(kept, "a permanent `Compiling {name}` line: {screen}");
    }
    // A running step's line: its name, then its time in tenths of a second.
    let running = names.iter().any(|name| {
        screen.split(name.as_str()).skip(1).any(|after| {
            let t = after.trim_start();
            let digits = t.split('s').next().unwrap_or("");
            t.contains('s') && digits.contains('.') && digits.parse::<f64>().is_ok()
        })
    });
    assert!(running, "a running step with its time: {screen}");
    assert!(screen.contains("Building ["), "the bar: {screen}");
    assert!(screen.contains("Finished"), "{screen}");
}
