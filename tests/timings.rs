//! `--timings`: a realisation writes a self-contained HTML report under
//! `.cmod/timings/` whose content matches the run: every built step, the counts of the
//! `finished` message, a critical path that is a chain of inputs ending at a target's
//! step, and no more worker lanes than jobs. A no-op writes one too, saying 0 built.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{Realised, Sandbox};
use serde_json::Value;

/// The report's embedded data (`<script type="application/json" id="cmod-timings">`).
fn data(html: &str) -> Value {
    let open = "<script type=\"application/json\" id=\"cmod-timings\">";
    let start = html.find(open).expect("the data element") + open.len();
    let len = html[start..].find("</script>").expect("its end");
    serde_json::from_str(&html[start..start + len]).expect("the data is JSON")
}

/// The number the summary shows under `id`.
fn shown(html: &str, id: &str) -> String {
    let open = format!("id=\"{id}\">");
    let start = html
        .find(&open)
        .unwrap_or_else(|| panic!("no {id} in the report"))
        + open.len();
    let len = html[start..].find('<').expect("the cell's end");
    html[start..start + len].to_string()
}

/// The path of the `timing-report` JSON line, checked to be under `<root>/.cmod/timings`
/// with a UTC timestamp in its name, and the latest copy beside it.
fn report_of(run: &Realised, root: &Path) -> (PathBuf, String) {
    let lines: Vec<&Value> = run
        .messages
        .iter()
        .filter(|m| m["reason"] == "timing-report")
        .collect();
    assert_eq!(lines.len(), 1, "one timing-report line: {:?}", run.messages);
    let path = PathBuf::from(lines[0]["path"].as_str().expect("a path"));
    assert_eq!(path.parent(), Some(root.join(".cmod/timings").as_path()));
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let stamp = name
        .strip_prefix("cmod-timing-")
        .and_then(|n| n.strip_suffix("Z.html"))
        .unwrap_or_else(|| panic!("a timestamped name: {name}"));
    // `20261205T144015.123Z`: UTC, to the millisecond.
    let digits = stamp.replace(['T', '.'], "");
    assert!(
        stamp.len() == 19
            && stamp.chars().nth(8) == Some('T')
            && stamp.chars().nth(15) == Some('.')
            && digits.len() == 17
            && digits.chars().all(|c| c.is_ascii_digit()),
        "{name}"
    );
    let html = std::fs::read_to_string(&path).expect("the report");
    let latest = std::fs::read_to_string(root.join(".cmod/timings/cmod-timing.html"));
    assert_eq!(
        latest.ok().as_deref(),
        Some(html.as_str()),
        "the latest copy"
    );
    (path, html)
}

/// Nothing is fetched: no scripts, styles or images from elsewhere.
fn assert_self_contained(html: &str) {
    for bad in ["<link", "src=", "@import", "url("] {
        assert!(!html.contains(bad), "the report loads `{bad}`");
    }
}

#[test]
fn a_timings_report_shows_every_step_the_counts_and_the_critical_path() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let run = s.realise(&dir, &["--timings", "-j2"]);
    assert!(run.success(), "{}", run.stderr());
    let finished = run.finished().clone();
    let (_, html) = report_of(&run, &dir);
    assert_self_contained(&html);
    let d = data(&html);

    // Every built step, in the data and in the visible table of steps.
    let built = run.built();
    assert!(built.len() >= 10, "{built:?}");
    let steps = d["steps"].as_array().expect("steps");
    let names: Vec<String> = steps
        .iter()
        .filter(|s| s["outcome"] == "built")
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names.iter().cloned().collect::<BTreeSet<_>>().len(),
        built.len()
    );
    assert_eq!(
        names.iter().cloned().collect::<BTreeSet<_>>(),
        built.iter().cloned().collect()
    );
    for name in &built {
        assert!(html.contains(&format!("<td>{name}</td>")), "{name} listed");
        assert!(
            html.contains(&format!("<title>{name}: ")),
            "{name} on the timeline"
        );
    }

    // The counts are the finished line's.
    for key in ["built", "fresh", "substituted", "failed"] {
        assert_eq!(shown(&html, key), finished[key].to_string(), "{key}");
        assert_eq!(d[key], finished[key], "{key}");
    }
    assert_eq!(shown(&html, "jobs"), "2");
    assert_eq!(shown(&html, "scanned"), finished["scanned"].to_string());
    assert!(d["evaluation_secs"].as_f64().unwrap() > 0.0);
    assert!(d["first_step_secs"].as_f64() >= d["evaluation_secs"].as_f64());
    // This first build scanned every unit: a part of evaluation, shown on its own.
    assert!(finished["scanned"].as_u64().unwrap() > 0);
    let scan = d["scan_secs"].as_f64().unwrap();
    assert!(
        scan > 0.0 && scan <= d["evaluation_secs"].as_f64().unwrap(),
        "{scan}"
    );
    assert!(shown(&html, "scan-time").ends_with('s'));

    // No more lanes than jobs, and the steps of a lane never overlap.
    let mut by_lane: Vec<Vec<(f64, f64)>> = vec![Vec::new(); 2];
    for s in steps {
        let lane = s["lane"].as_u64().expect("a lane") as usize;
        assert!(lane < 2, "lane {lane} at -j2");
        let start = s["start_secs"].as_f64().unwrap();
        by_lane[lane].push((start, start + s["elapsed_secs"].as_f64().unwrap()));
    }
    for lane in &mut by_lane {
        lane.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in lane.windows(2) {
            assert!(
                w[1].0 + 1e-3 >= w[0].1,
                "overlapping steps in a lane: {w:?}"
            );
        }
    }
    assert!(shown(&html, "lanes").parse::<usize>().unwrap() <= 2);

    // The critical path: each step uses the previous one's output, and it ends at a
    // target's step (the link).
    let critical: Vec<&str> = d["critical_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(critical.len() >= 3, "{critical:?}");
    let step = |name: &str| steps.iter().find(|s| s["name"] == name).unwrap();
    for w in critical.windows(2) {
        let (from, to) = (step(w[0]), step(w[1]));
        let inputs = to["inputs"].as_array().unwrap();
        assert!(
            inputs.contains(&from["drv"]),
            "{} is an input of {}",
            w[0],
            w[1]
        );
    }
    let last = critical.last().unwrap();
    let target_steps: Vec<&Value> = run
        .messages
        .iter()
        .filter(|m| m["reason"] == "built")
        .filter(|m| {
            m["outputs"]
                .as_object()
                .unwrap()
                .values()
                .any(|o| finished["out_paths"].as_array().unwrap().contains(o))
        })
        .collect();
    assert!(
        target_steps.iter().any(|m| m["name"] == *last),
        "the critical path ends at a target's step, not {last}"
    );
    assert!(html.contains(&format!("<li data-name=\"{last}\">")));
}

#[test]
fn a_no_op_with_timings_reports_nothing_built() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let first = s.realise(&dir, &[]);
    assert!(first.success(), "{}", first.stderr());
    assert!(
        !dir.join(".cmod/timings").exists(),
        "no report without --timings"
    );

    let again = s.realise(&dir, &["--timings"]);
    assert!(again.success(), "{}", again.stderr());
    let (_, html) = report_of(&again, &dir);
    let fresh = again.finished()["fresh"].clone();
    assert!(fresh.as_u64().unwrap() >= 4);
    assert_eq!(shown(&html, "built"), "0");
    assert_eq!(shown(&html, "fresh"), fresh.to_string());
    let d = data(&html);
    assert!(d["steps"].as_array().unwrap().is_empty());
    assert!(d["critical_path"].as_array().unwrap().is_empty());

    // Human messages: the path after the Finished line, as Cargo says it.
    let human = s.cmod(&dir, &["realise", "--timings"]);
    let err = String::from_utf8_lossy(&human.stderr);
    assert!(human.status.success(), "{err}");
    let said = err
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("      Timing report saved to "))
        .unwrap_or_else(|| panic!("the path is said last: {err}"));
    assert!(Path::new(said).is_file(), "{said}");
    assert!(said.starts_with(&*dir.join(".cmod/timings").to_string_lossy()));
}

#[test]
fn a_failed_build_reports_its_failed_step() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let file = dir.join("src/hello.cpp");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}\nint broken( {{\n")).unwrap();
    let run = s.realise(&dir, &["--timings", "-j1"]);
    assert!(!run.success());
    let finished = run.finished().clone();
    assert_eq!(finished["failed"], 1, "{}", run.stderr());
    let failed: Vec<&Value> = run
        .messages
        .iter()
        .filter(|m| m["reason"] == "failed")
        .collect();
    let (_, html) = report_of(&run, &dir);
    assert_eq!(shown(&html, "result"), "failed");
    assert_eq!(shown(&html, "failed"), "1");
    assert_eq!(shown(&html, "built"), finished["built"].to_string());
    let d = data(&html);
    let on_timeline: Vec<&Value> = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["outcome"] == "failed")
        .collect();
    assert_eq!(on_timeline.len(), 1);
    assert_eq!(on_timeline[0]["name"], failed[0]["name"]);
    assert!(on_timeline[0]["elapsed_secs"].as_f64().unwrap() > 0.0);
    assert!(html.contains("<rect class=\"failed"), "drawn as failed");
}

#[test]
fn a_check_run_reports_its_rebuilt_steps_and_their_critical_path() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    assert!(s.realise(&dir, &[]).success());
    let check = s.realise(&dir, &["--check", "--timings"]);
    assert!(check.success(), "{}", check.stderr());
    let checked = check.finished()["checked"].clone();
    assert!(checked.as_u64().unwrap() >= 4, "{checked}");
    let (_, html) = report_of(&check, &dir);
    assert_eq!(shown(&html, "checked"), checked.to_string());
    let d = data(&html);
    let steps = d["steps"].as_array().unwrap();
    assert_eq!(steps.len() as u64, checked.as_u64().unwrap());
    assert!(steps.iter().all(|s| s["outcome"] == "checked"));
    // Compile, archive or link: a chain of at least two steps, each an input of the next.
    let critical = d["critical_path"].as_array().unwrap();
    assert!(critical.len() >= 2, "{critical:?}");
    let step = |name: &Value| steps.iter().find(|s| &s["name"] == name).unwrap();
    for w in critical.windows(2) {
        let inputs = step(&w[1])["inputs"].as_array().unwrap();
        assert!(inputs.contains(&step(&w[0])["drv"]), "{w:?}");
    }
}

#[test]
fn substituted_steps_are_counted_and_listed_with_their_cache() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    assert!(s.realise(&dir, &["--no-link"]).success());
    let (sk, pk) = (s.dir.path().join("k.sec"), s.dir.path().join("k.pub"));
    let key = |args: &[&str]| {
        let out = s.cmod(&dir, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (sk_arg, pk_arg) = (sk.to_str().unwrap(), pk.to_str().unwrap());
    key(&[
        "key",
        "generate",
        "t-1",
        "--secret-key",
        sk_arg,
        "--public-key",
        pk_arg,
    ]);
    key(&["store", "sign", "--key-file", sk_arg]);
    let url = format!("file://{}", s.dir.path().join("cache").display());
    key(&["copy", "--to", &url]);

    let public = std::fs::read_to_string(&pk).unwrap();
    let other = s.dir.path().join("other-store");
    let out = common::cmod_in(
        &dir,
        &other,
        &[
            "realise",
            "--message-format",
            "json",
            "--no-link",
            "--timings",
            "--substituters",
            &url,
            "--trusted-public-keys",
            public.trim(),
        ],
    );
    let run = Realised::parse(out);
    assert!(run.success(), "{}", run.stderr());
    let names: BTreeSet<String> = run
        .messages
        .iter()
        .filter(|m| m["reason"] == "substituted")
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.len() >= 4, "{:?}", run.messages);
    let (_, html) = report_of(&run, &dir);
    assert_eq!(shown(&html, "substituted"), names.len().to_string());
    assert_eq!(shown(&html, "built"), "0");
    let listed: BTreeSet<String> = data(&html)["substituted_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["from"], url.as_str());
            s["name"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(listed, names);
    for name in &names {
        assert!(html.contains(&format!("<tr><td>{name}</td><td>{url}</td></tr>")));
    }
}
