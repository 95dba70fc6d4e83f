//! Fault injection: `cmod` killed with SIGKILL at random points of realise, gc, copy,
//! substitution and the rewriting of cmod.toml and cmod.lock, and realise, gc and copy
//! running at once on one store. After every
//! kill the store verifies clean (re-hashing every path), and the next run succeeds and
//! produces the right program.
//!
//! CI runs a few iterations per operation; `scripts/crash-long` sets
//! `CMOD_CRASH_ITERATIONS` (≥ 500 kills in all) and reports the figures that
//! docs/RELIABILITY.md records.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{cmod_env, run, Sandbox};

/// Iterations per operation: `CMOD_CRASH_ITERATIONS`, else a few for CI.
fn iterations() -> usize {
    std::env::var("CMOD_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

/// A small deterministic generator (xorshift), so a failing iteration can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// What one kill found.
#[derive(Default, Debug)]
struct Tally {
    kills: usize,
    finished_before_kill: usize,
    damaged_found: usize,
    recoveries: usize,
}

/// Run `cmod --store <store> args` in `dir` and SIGKILL it after `after`; whether it was
/// still running when killed.
fn kill_after(
    dir: &Path,
    store: &Path,
    args: &[&str],
    env: &[(&str, String)],
    after: Duration,
) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cmod"))
        .arg("--store")
        .arg(store)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run cmod");
    let start = Instant::now();
    while start.elapsed() < after {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let running = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    running
}

/// Run `cmod --store <store> args` in `dir` to completion (it must succeed); how long it
/// took. Kills are then drawn within that time, so they land inside the command whether
/// it is a debug or a release build.
fn timed_run(dir: &Path, store: &Path, args: &[&str], env: &[(&str, String)]) -> Duration {
    let start = Instant::now();
    let out = cmod_env(dir, store, args, env);
    assert!(
        out.status.success(),
        "`cmod {}`: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A delay drawn uniformly below `window`.
fn within(rng: &mut Rng, window: Duration) -> Duration {
    Duration::from_micros(rng.below(window.as_micros() as u64))
}

/// The store must verify clean after a kill: a crash leaves a valid path or nothing.
fn assert_store_intact(dir: &Path, store: &Path, tally: &mut Tally, what: &str) {
    let v = cmod_env(dir, store, &["store", "verify", "--check-contents"], &[]);
    if !v.status.success() {
        tally.damaged_found += 1;
        panic!(
            "after a kill during {what} the store does not verify:\n{}",
            String::from_utf8_lossy(&v.stderr)
        );
    }
}

/// Realise to completion and check the program.
fn recover(dir: &Path, store: &Path, env: &[(&str, String)], tally: &mut Tally) {
    let out = cmod_env(dir, store, &["realise"], env);
    assert!(
        out.status.success(),
        "the run after a kill failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(run(&dir.join("result"), &[]), "Hello, modules!\n");
    tally.recoveries += 1;
}

fn report(what: &str, t: &Tally) {
    eprintln!(
        "crash[{what}]: {} kills ({} runs finished before their kill), {} damaged stores, {} recoveries",
        t.kills, t.finished_before_kill, t.damaged_found, t.recoveries
    );
}

#[test]
fn killed_realisations_leave_a_consistent_store() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let store = s.store();
    let mut rng = Rng(0x5eed_0001);
    let mut tally = Tally::default();
    let cold = timed_run(&dir, &store, &["realise"], &[]);
    touch_sources(&dir, usize::MAX);
    let edit = timed_run(&dir, &store, &["realise"], &[]);
    for i in 0..iterations() {
        // A fresh store now and then, so kills land in toolchain identification and
        // scanning as well as in builds and registration.
        if i % 3 == 0 {
            let _ = std::fs::remove_dir_all(&store);
        } else {
            touch_sources(&dir, i);
        }
        let after = within(&mut rng, if i % 3 == 0 { cold } else { edit });
        if kill_after(&dir, &store, &["realise"], &[], after) {
            tally.kills += 1;
        } else {
            tally.finished_before_kill += 1;
        }
        assert_store_intact(&dir, &store, &mut tally, "realise");
        recover(&dir, &store, &[], &mut tally);
    }
    report("realise", &tally);
    assert!(tally.kills > 0, "no run was killed: {tally:?}");
}

/// Change a unit so the next realise has something to build.
fn touch_sources(dir: &Path, i: usize) {
    let f = dir.join("src/hello.cpp");
    let text = std::fs::read_to_string(&f).unwrap();
    let base = text.split("\n// edit ").next().unwrap_or(&text).to_string();
    std::fs::write(&f, format!("{base}\n// edit {i}\n")).unwrap();
}

#[test]
fn killed_garbage_collections_leave_a_consistent_store() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let store = s.store();
    let mut rng = Rng(0x5eed_0002);
    let mut tally = Tally::default();
    // Garbage: the previous build's outputs once the source changes.
    let make_garbage = |i: usize, tally: &mut Tally| {
        touch_sources(&dir, i);
        recover(&dir, &store, &[], tally);
        let _ = std::fs::remove_file(dir.join("result"));
    };
    make_garbage(usize::MAX, &mut tally);
    let window = timed_run(&dir, &store, &["gc"], &[]);
    for i in 0..iterations() {
        make_garbage(i, &mut tally);
        let after = within(&mut rng, window);
        if kill_after(&dir, &store, &["gc"], &[], after) {
            tally.kills += 1;
        } else {
            tally.finished_before_kill += 1;
        }
        assert_store_intact(&dir, &store, &mut tally, "gc");
        recover(&dir, &store, &[], &mut tally);
    }
    report("gc", &tally);
}

fn keypair(dir: &Path) -> (PathBuf, String) {
    let (sk, pk) = (dir.join("key.sec"), dir.join("key.pub"));
    let out = cmod_env(
        dir,
        &dir.join("unused-store"),
        &[
            "key",
            "generate",
            "crash-test-1",
            "--secret-key",
            sk.to_str().unwrap(),
            "--public-key",
            pk.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (sk, std::fs::read_to_string(pk).unwrap().trim().to_string())
}

#[test]
fn killed_copies_and_substitutions_leave_consistent_stores() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let built = s.dir.path().join("built");
    let (sk, pk) = keypair(s.dir.path());
    timed_run(&dir, &built, &["realise"], &[]);
    let key = sk.to_str().unwrap();
    timed_run(&dir, &built, &["store", "sign", "--key-file", key], &[]);
    let substitute = |url: &str| -> Vec<String> {
        [
            "realise",
            "--substituters",
            url,
            "--trusted-public-keys",
            &pk,
        ]
        .map(String::from)
        .to_vec()
    };
    // How long a whole copy and a whole substitution take.
    let warm = s.dir.path().join("warm-cache");
    let warm_url = format!("file://{}", warm.display());
    let copy_window = timed_run(&dir, &built, &["copy", "--to", &warm_url], &[]);
    let args = substitute(&warm_url);
    let fresh = s.dir.path().join("warm-store");
    let substitution_window = timed_run(&dir, &fresh, &as_strs(&args), &[]);
    let mut rng = Rng(0x5eed_0003);
    let mut copies = Tally::default();
    let mut substitutions = Tally::default();
    for i in 0..iterations() {
        let cache = s.dir.path().join(format!("cache-{i}"));
        let url = format!("file://{}", cache.display());
        let after = within(&mut rng, copy_window);
        if kill_after(&dir, &built, &["copy", "--to", &url], &[], after) {
            copies.kills += 1;
        } else {
            copies.finished_before_kill += 1;
        }
        assert_store_intact(&dir, &built, &mut copies, "copy");
        timed_run(&dir, &built, &["copy", "--to", &url], &[]);
        copies.recoveries += 1;
        // Substitution from the finished cache into a fresh store, killed part way.
        let fresh = s.dir.path().join(format!("fresh-{i}"));
        let args = substitute(&url);
        let args = as_strs(&args);
        let after = within(&mut rng, substitution_window);
        if kill_after(&dir, &fresh, &args, &[], after) {
            substitutions.kills += 1;
        } else {
            substitutions.finished_before_kill += 1;
        }
        assert_store_intact(&dir, &fresh, &mut substitutions, "substitution");
        timed_run(&dir, &fresh, &args, &[]);
        assert_eq!(run(&dir.join("result"), &[]), "Hello, modules!\n");
        substitutions.recoveries += 1;
        let _ = std::fs::remove_dir_all(&fresh);
        let _ = std::fs::remove_dir_all(&cache);
    }
    report("copy", &copies);
    report("substitution", &substitutions);
}

#[test]
fn realise_gc_and_copy_at_once_on_one_store() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let store = s.store();
    let rounds = (iterations() / 2).max(2);
    let first = cmod_env(&dir, &store, &["realise"], &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    for round in 0..rounds {
        // The previous build (rooted by `result`) is copied while the next one builds
        // and garbage is collected.
        let previous = std::fs::read_link(dir.join("result")).unwrap();
        touch_sources(&dir, round);
        let cache = s.dir.path().join(format!("cc-{round}"));
        let url = format!("file://{}", cache.display());
        let spawn = |args: Vec<String>| {
            let dir = dir.clone();
            let store = store.clone();
            std::thread::spawn(move || {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                cmod_env(&dir, &store, &a, &[])
            })
        };
        let handles = vec![
            spawn(vec![
                "realise".into(),
                "--message-format".into(),
                "json".into(),
                "--no-link".into(),
            ]),
            spawn(vec![
                "realise".into(),
                "--message-format".into(),
                "json".into(),
                "--no-link".into(),
            ]),
            spawn(vec!["gc".into()]),
            spawn(vec![
                "copy".into(),
                "--to".into(),
                url.clone(),
                previous.display().to_string(),
            ]),
            spawn(vec!["gc".into()]),
        ];
        let mut built = 0;
        for h in handles {
            let out = h.join().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            built += String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("\"reason\":\"built\""))
                .count();
        }
        // An implementation unit's edit rebuilds its object, the archive and the link:
        // each once, whichever of the two realisations takes it.
        assert!(
            built <= 3,
            "round {round}: {built} steps built by two concurrent realises"
        );
        let out = cmod_env(&dir, &store, &["realise"], &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(run(&dir.join("result"), &[]), "Hello, modules!\n");
        let v = cmod_env(&dir, &store, &["store", "verify", "--check-contents"], &[]);
        assert!(
            v.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&v.stderr)
        );
    }
}

/// The user's own files: `cmod remove`/`add` rewriting cmod.toml and `cmod lock`
/// rewriting cmod.lock, killed at random points, leave each file either as it was or as
/// the finished command writes it, never truncated or mixed.
#[test]
fn killed_manifest_and_lock_writes_leave_the_old_file_or_the_new_one() {
    let s = Sandbox::new();
    let dir = s.copy_example("path-deps").join("app");
    // A package the program does not import, so the project evaluates with or without it.
    s.project(
        "path-deps/spare",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"spare\"\nversion = \"0.1.0\"\n\n[lib]\nsources = [\"src/*.cppm\"]\n",
            ),
            ("src/spare.cppm", "export module spare;\nexport int spare() { return 1; }\n"),
        ],
    );
    let store = s.store();
    let steps: [&[&str]; 4] = [
        &["add", "spare", "--path", "../spare"],
        &["lock"],
        &["remove", "spare"],
        &["lock"],
    ];
    let state = || {
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        (read("cmod.toml"), read("cmod.lock"))
    };
    // A first cycle writes cmod.lock; the second records what each finished step leaves.
    for step in &steps[..] {
        finish(&dir, &store, step);
    }
    let mut states = vec![state()];
    let mut longest = Duration::ZERO;
    for step in &steps[..] {
        let start = Instant::now();
        finish(&dir, &store, step);
        longest = longest.max(start.elapsed());
        states.push(state());
    }
    // The two files are written one after the other, so each on its own is old or new.
    let known = |(toml, lock): &(String, String)| {
        states.iter().any(|s| &s.0 == toml) && states.iter().any(|s| &s.1 == lock)
    };
    let mut rng = Rng(0x5eed_0004);
    let mut tally = Tally::default();
    for i in 0..iterations() * 4 {
        let step = steps[i % steps.len()];
        let after = Duration::from_micros(rng.below(longest.as_micros() as u64));
        if kill_after(&dir, &store, step, &[], after) {
            tally.kills += 1;
        } else {
            tally.finished_before_kill += 1;
        }
        let now = state();
        assert!(
            known(&now),
            "after a kill during `cmod {}` the files are neither old nor new:\n{now:?}",
            step.join(" ")
        );
        let target = &states[i % steps.len() + 1];
        // `remove` refuses a dependency that is already gone: then only the lock is left.
        if now.0 != target.0 {
            finish(&dir, &store, step);
        } else if now.1 != target.1 {
            finish(&dir, &store, &["lock"]);
        }
        assert_eq!(&state(), target, "`cmod {}` finished", step.join(" "));
        tally.recoveries += 1;
    }
    report("manifest and lock writes", &tally);
}

/// Run `cmod step` to completion.
fn finish(dir: &Path, store: &Path, step: &[&str]) {
    let out = cmod_env(dir, store, step, &[]);
    assert!(
        out.status.success(),
        "`cmod {}`: {}",
        step.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
