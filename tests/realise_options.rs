//! `cmod realise` options end to end: the `build` alias, out-link names, `--release`,
//! `-j 1`, `--dry-run`, and the JSON contract of `--dry-run` and `--print-out-paths`.

mod common;

use std::path::Path;

use common::{failure, run, Realised, Sandbox};
use serde_json::Value;

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "`{from}` not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Every stdout line parsed as JSON (panics on a line that is not).
fn json_lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// The names `--dry-run --message-format json` says would be built, sorted, and its
/// `finished` line.
fn dry_run(s: &Sandbox, dir: &Path) -> (Vec<String>, Value) {
    let out = s.cmod(dir, &["realise", "--dry-run", "--message-format", "json"]);
    assert!(out.status.success(), "{}", failure(&out).1);
    let lines = json_lines(&out);
    let (last, planned) = lines.split_last().expect("at least the finished line");
    assert_eq!(last["reason"], "finished", "{last}");
    let mut names: Vec<String> = planned
        .iter()
        .map(|m| {
            assert_eq!(m["reason"], "would-build", "{m}");
            assert!(
                m["drv"].as_str().unwrap().ends_with(".drv"),
                "{m}: names its derivation"
            );
            m["name"].as_str().unwrap().to_string()
        })
        .collect();
    names.sort();
    assert_eq!(last["would_build"], names.len());
    (names, last.clone())
}

#[test]
fn build_is_an_alias_of_realise() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let r = Realised::parse(s.cmod(&dir, &["build", "--message-format", "json"])).ok();
    assert_eq!(r.built().len(), 6, "{:?}", r.built());
    assert_eq!(run(&dir.join("result"), &[]), "Hello, modules!\n");
    // The same realisation: `realise` finds everything fresh.
    let again = s.realise(&dir, &[]).ok();
    assert!(again.built().is_empty(), "{:?}", again.built());
}

#[test]
fn a_custom_out_link_names_every_target_and_is_a_gc_root() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    std::fs::create_dir(dir.join("out")).unwrap();
    let r = s.realise(&dir, &["--out-link", "out/geo"]).ok();
    assert!(!dir.join("result").exists(), "no default link with -o");
    let bin = std::fs::read_link(dir.join("out/geo")).unwrap();
    assert_eq!(bin, r.target("shapes"));
    let lib = std::fs::read_link(dir.join("out/geo-libgeometry.a")).unwrap();
    assert_eq!(lib, r.target("libgeometry.a"));
    // GC keeps what the custom link roots: nothing needs rebuilding afterwards.
    let gc = s.cmod(&dir, &["gc"]);
    assert!(gc.status.success(), "{}", failure(&gc).1);
    assert!(run(&dir.join("out/geo"), &[]).contains("total"));
    let again = s.realise(&dir, &["--out-link", "out/geo"]).ok();
    assert!(again.built().is_empty(), "{:?}", again.built());
}

#[test]
fn release_builds_different_derivations_that_run() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let eval = |extra: &[&str]| -> serde_json::Map<String, Value> {
        let mut args = vec!["eval", "--json"];
        args.extend_from_slice(extra);
        let out = s.cmod(&dir, &args);
        assert!(out.status.success(), "{}", failure(&out).1);
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_object()
            .unwrap()
            .clone()
    };
    let (dev, release) = (eval(&[]), eval(&["--release"]));
    assert_eq!(dev.len(), release.len());
    assert!(
        dev.keys().all(|k| !release.contains_key(k)),
        "every derivation changes with the profile"
    );
    let has_arg = |drvs: &serde_json::Map<String, Value>, arg: &str| {
        drvs.values()
            .filter(|d| d["kind"] == "object")
            .all(|d| d["args"].as_array().unwrap().iter().any(|a| a == arg))
    };
    assert!(has_arg(&release, "-O2") && has_arg(&release, "-DNDEBUG"));
    assert!(has_arg(&dev, "-O0") && !has_arg(&dev, "-DNDEBUG"));

    let d = s.realise(&dir, &["--no-link"]).ok();
    let r = s.realise(&dir, &["--no-link", "--release"]).ok();
    assert_eq!(r.built().len(), 14, "nothing of the dev build is reused");
    assert_ne!(r.target("shapes"), d.target("shapes"));
    assert_eq!(run(&r.target("shapes"), &[]), run(&d.target("shapes"), &[]));
    assert!(run(&r.target("shapes"), &[]).contains("total"));
}

/// The `[started, started + elapsed]` interval of every built step, in seconds since the
/// run started, sorted by start; each lies within the whole run.
fn built_intervals(r: &Realised) -> Vec<(f64, f64, String)> {
    let total = r.finished()["elapsed_secs"].as_f64().unwrap();
    let mut v: Vec<(f64, f64, String)> = r
        .messages
        .iter()
        .filter(|m| m["reason"] == "built")
        .map(|m| {
            let start = m["started_secs"].as_f64().unwrap_or_else(|| panic!("{m}"));
            let end = start + m["elapsed_secs"].as_f64().unwrap_or_else(|| panic!("{m}"));
            assert!(
                0.0 <= start && start <= end && end <= total,
                "{m} in {total}"
            );
            (start, end, m["name"].as_str().unwrap().to_string())
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// Pairs of built steps that ran at the same time.
fn overlapping(intervals: &[(f64, f64, String)]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (i, a) in intervals.iter().enumerate() {
        for b in &intervals[i + 1..] {
            if b.0 < a.1 {
                pairs.push((a.2.clone(), b.2.clone()));
            }
        }
    }
    pairs
}

#[test]
fn one_job_builds_everything_in_order() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let r = s.realise(&dir, &["-j", "1"]).ok();
    assert_eq!(r.built().len(), 14);
    assert_eq!(r.finished()["built"], 14);
    // With one worker, each step starts only after the previous one finished.
    let intervals = built_intervals(&r);
    assert_eq!(intervals.len(), 14);
    assert_eq!(overlapping(&intervals), vec![], "{intervals:?}");
    assert!(run(&dir.join("result"), &[]).contains("total"));
}

/// The counterpart of [`one_job_builds_everything_in_order`]: with two jobs and
/// independent units (each a compile of well over the time a worker takes to start),
/// steps do run at the same time, so the interval check above is not vacuous.
#[test]
fn two_jobs_run_independent_steps_at_the_same_time() {
    let s = Sandbox::new();
    let unit = |n: usize| {
        format!(
            "#include <map>\n#include <string>\n#include <vector>\n\
             std::string f{n}() {{ std::map<int, std::vector<std::string>> m; m[{n}].push_back(\"{n}\"); return m[{n}][0]; }}\n"
        )
    };
    let units: Vec<(String, String)> = (0..4).map(|n| (format!("src/u{n}.cpp"), unit(n))).collect();
    let mut files: Vec<(&str, &str)> = units
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let main = "#include <cstdio>\n#include <string>\nstd::string f0(); std::string f1(); std::string f2(); std::string f3();\n\
                int main() { std::printf(\"%s\\n\", (f0() + f1() + f2() + f3()).c_str()); }\n";
    files.push(("src/main.cpp", main));
    files.push((
        "cmod.toml",
        "[package]\nname = \"par\"\nversion = \"0.1.0\"\n[[bin]]\nname = \"par\"\nmain = \"src/main.cpp\"\nsources = [\"src/u*.cpp\"]\n",
    ));
    let dir = s.project("par", &files);
    let r = s.realise(&dir, &["-j", "2"]).ok();
    assert_eq!(r.built().len(), 6, "{:?}", r.built());
    let intervals = built_intervals(&r);
    assert!(!overlapping(&intervals).is_empty(), "{intervals:?}");
    assert_eq!(run(&dir.join("result"), &[]), "0123\n");
}

#[test]
fn dry_run_lists_nothing_after_a_build_and_exactly_the_affected_after_an_edit() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let (cold, finished) = dry_run(&s, &dir);
    assert_eq!(cold.len(), 6, "{cold:?}");
    assert_eq!(finished["success"], true);
    assert_eq!(finished["dry_run"], true);
    assert!(!dir.join("result").exists(), "a dry run links nothing");
    assert!(
        !s.store().join("v1/memo").read_dir().unwrap().any(|_| true),
        "a dry run realises nothing"
    );

    s.realise(&dir, &[]).ok();
    let (after_build, finished) = dry_run(&s, &dir);
    assert!(after_build.is_empty(), "{after_build:?}");
    assert_eq!(finished["fresh"], 6);

    edit(&dir.join("src/hello.cpp"), "\"Hello, \"", "\"Hi, \"");
    let (after_edit, _) = dry_run(&s, &dir);
    assert_eq!(
        after_edit,
        [
            "hello-0.1.0-hello",
            "hello-0.1.0-libhello.a",
            "hello-0.1.0-src-hello.cpp.o",
        ]
    );
    // The prediction is what the build does.
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(r.built(), after_edit);
    assert_eq!(run(&dir.join("result"), &[]), "Hi, modules!\n");
}

#[test]
fn print_out_paths_with_json_messages_keeps_stdout_json() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let args = [
        "realise",
        "--message-format",
        "json",
        "--print-out-paths",
        "--no-link",
    ];
    for round in ["built", "no-op"] {
        let out = s.cmod(&dir, &args);
        assert!(out.status.success(), "{round}: {}", failure(&out).1);
        let lines = json_lines(&out);
        let last = lines.last().unwrap();
        assert_eq!(last["reason"], "finished", "{round}");
        let paths = last["out_paths"].as_array().unwrap();
        assert_eq!(paths.len(), 2, "{round}: the binary and the library");
        let exe = paths
            .iter()
            .map(|p| Path::new(p.as_str().unwrap()))
            .find(|p| p.to_string_lossy().ends_with("-hello-0.1.0-hello"))
            .unwrap_or_else(|| panic!("{round}: {last}"));
        assert_eq!(run(exe, &[]), "Hello, modules!\n");
    }
    // Without JSON the paths are plain lines, in the same order.
    let out = s.cmod(&dir, &["realise", "--print-out-paths", "--no-link"]);
    let plain: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let last = json_lines(&s.cmod(&dir, &args)).pop().unwrap();
    let listed: Vec<String> = last["out_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert_eq!(plain, listed);
}

/// An out-link that cannot be written fails the realisation, and the `finished` line
/// says so — on a fresh build and on a no-op alike.
#[test]
fn an_out_link_in_the_way_fails_and_finished_says_so() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    std::fs::write(dir.join("result"), "my notes").unwrap();
    for round in ["building", "no-op"] {
        if round == "no-op" {
            // Realised (and memoised) without a link: the next run is a no-op.
            s.realise(&dir, &["--no-link"]).ok();
        }
        let r = s.realise(&dir, &[]);
        let (code, err) = failure(&r.output);
        assert_eq!(code, 2, "{round}: {err}");
        assert!(
            err.contains("a file that is not a symlink is there; remove it, or pass --out-link with another name"),
            "{round}: {err}"
        );
        let finished = r.finished();
        assert_eq!(finished["success"], false, "{round}: {finished}");
        assert!(
            finished["error"]
                .as_str()
                .unwrap()
                .contains("cannot create the out-link"),
            "{round}: {finished}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("result")).unwrap(),
            "my notes"
        );
    }
    std::fs::remove_file(dir.join("result")).unwrap();
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(r.finished()["error"], Value::Null);
    assert_eq!(run(&dir.join("result"), &[]), "Hello, modules!\n");
}

/// An out-link whose directory does not exist is a usage error (exit 2) that names the
/// path and says to create the directory — before anything is built, and on a no-op.
#[test]
fn an_out_link_in_a_missing_directory_is_a_usage_error() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    std::fs::write(dir.join("notes"), "a file, not a directory").unwrap();
    for round in ["building", "no-op"] {
        if round == "no-op" {
            s.realise(&dir, &["--no-link"]).ok();
        }
        for (link, shown, problem) in [
            ("missing/sub/app", "missing/sub", "does not exist"),
            ("notes/app", "notes", "is not a directory"),
        ] {
            let r = s.realise(&dir, &["--out-link", link]);
            let (code, err) = failure(&r.output);
            assert_eq!(code, 2, "{round} {link}: {err}");
            assert!(
                err.contains(&format!(
                    "cannot create the out-link `{link}`: the directory `{shown}` {problem}; create it first (`mkdir -p {shown}`)"
                )),
                "{round} {link}: {err}"
            );
            // Reported as errors before building are: an `error` line, then `finished`.
            assert_eq!(r.finished()["success"], false, "{round}");
            let errors: Vec<&Value> = r
                .messages
                .iter()
                .filter(|m| m["reason"] == "error")
                .collect();
            assert_eq!(errors.len(), 1, "{round}: {:?}", r.messages);
            assert!(
                errors[0]["message"].as_str().unwrap().contains(link),
                "{round}: {}",
                errors[0]
            );
            assert!(r.built().is_empty(), "{round}: checked before building");
        }
        assert!(!dir.join("missing").exists(), "no directory is created");
    }
    std::fs::create_dir_all(dir.join("missing/sub")).unwrap();
    s.realise(&dir, &["--out-link", "missing/sub/app"]).ok();
    assert_eq!(run(&dir.join("missing/sub/app"), &[]), "Hello, modules!\n");
}
