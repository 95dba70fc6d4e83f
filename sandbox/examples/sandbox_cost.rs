//! Micro-benchmark: the per-action cost of running `/bin/true` under each sandbox mode,
//! against a plain `std::process::Command` spawn. Used for `bench/RESULTS.md`.
//!
//! Run: `cargo run --release -p cmod-sandbox --example sandbox_cost -- [ITERATIONS]`
//!
//! Each iteration is one complete `cmod_sandbox::run` (build-dir preparation, log file,
//! mount plan, Landlock ruleset, clone, setup, exec, wait, size check) on a fresh build
//! directory, with the toolchain a compile action would have for `/bin/true`: the binary,
//! the dynamic loader, libc's directory and `/etc/ld.so.cache`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use cmod_sandbox::{probe, run, Action, Limits, Mode};

fn action(root: &std::path::Path, i: usize) -> Action {
    let build = root.join(format!("build-{i}"));
    std::fs::create_dir_all(&build).expect("creating build dir");
    Action {
        program: "/bin/true".into(),
        args: vec![],
        env: vec![],
        build_dir: build,
        store_dir: root.join("store"),
        inputs: vec![],
        links: vec![],
        toolchain: vec![
            PathBuf::from("/bin/true"),
            PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            PathBuf::from("/lib/x86_64-linux-gnu"),
            PathBuf::from("/etc/ld.so.cache"),
        ],
        outputs: vec![],
        log_path: root.join(format!("log-{i}")),
        limits: Limits::default(),
    }
}

/// Median and mean of `n` timed runs of `f` (after 5 warm-up runs).
fn measure(n: usize, mut f: impl FnMut(usize)) -> (Duration, Duration) {
    for i in 0..5 {
        f(1_000_000 + i);
    }
    let mut times: Vec<Duration> = (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect();
    times.sort();
    let mean = times.iter().sum::<Duration>() / n as u32;
    (times[n / 2], mean)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("store")).expect("store");
    let root = dir.path().to_path_buf();

    let (plain_med, plain_mean) = measure(n, |_| {
        let s = Command::new("/bin/true").status().expect("spawn");
        assert!(s.success());
    });
    println!(
        "{:<10} median {:>8.3} ms  mean {:>8.3} ms",
        "plain",
        ms(plain_med),
        ms(plain_mean)
    );
    for mode in [Mode::Off, Mode::Landlock, Mode::Full] {
        if let Err(e) = probe(mode) {
            println!("{mode:<10} unavailable: {e}");
            continue;
        }
        let (med, mean) = measure(n, |i| {
            let out = run(mode, &action(&root, i)).expect("run");
            assert!(out.exit.success());
        });
        println!(
            "{:<10} median {:>8.3} ms  mean {:>8.3} ms  (+{:.3} ms over plain, median)",
            mode.as_str(),
            ms(med),
            ms(mean),
            ms(med) - ms(plain_med)
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
