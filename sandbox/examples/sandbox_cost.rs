//! Micro-benchmark: the per-action cost of running a do-nothing builder under each sandbox
//! mode, against a plain `std::process::Command` spawn. Used for `bench/RESULTS.md`.
//!
//! Run: `cargo run --release -p cmod-sandbox --example sandbox_cost -- [ITERATIONS]`
//!
//! Each iteration is one complete `cmod_sandbox::run` (build-dir preparation, log file,
//! mount plan, Landlock ruleset, clone, setup, exec, wait, size and output checks) on a
//! fresh build directory, with one input store path linked in. Two toolchains are
//! measured: the minimal closure of `/bin/true` (binary, loader, libc directory,
//! `ld.so.cache`) and the full clang-19 closure a compile action gets (about 40 paths,
//! 20 bind mounts), so the second row is the real per-compile overhead.

#[path = "../tests/common/closure.rs"]
mod closure;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cmod_sandbox::{probe, run, Action, Limits, Link, Mode};

const INPUT: &str = "0abcdefghijklmnopqrstuvwxyz01234-src";

fn action(root: &Path, i: usize, toolchain: &[PathBuf]) -> Action {
    let build = root.join(format!("build-{i}"));
    std::fs::create_dir_all(&build).expect("creating build dir");
    Action {
        program: "/bin/true".into(),
        args: vec![],
        env: vec![],
        build_dir: build,
        store_dir: root.join("store"),
        inputs: vec![INPUT.into()],
        links: vec![Link {
            at: "src/main.cpp".into(),
            store_path: INPUT.into(),
            sub: Some("main.cpp".into()),
        }],
        toolchain: toolchain.to_vec(),
        outputs: vec![],
        log_path: root.join(format!("log-{i}")),
        limits: Limits::default(),
    }
}

/// Median and mean of `n` timed runs of `f` (after 10 warm-up runs).
fn measure(n: usize, mut f: impl FnMut(usize)) -> (Duration, Duration) {
    for i in 0..10 {
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let minimal: Vec<PathBuf> = [
        "/bin/true",
        "/lib64/ld-linux-x86-64.so.2",
        "/lib/x86_64-linux-gnu",
        "/etc/ld.so.cache",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    let mut clang = closure::clang_closure();
    clang.push(PathBuf::from("/bin/true"));

    let (plain_med, plain_mean) = measure(n, |_| {
        let s = Command::new("/bin/true").status().expect("spawn");
        assert!(s.success());
    });
    println!("iterations per row: {n}");
    println!(
        "{:<26} median {:>7.3} ms  mean {:>7.3} ms",
        "plain spawn",
        ms(plain_med),
        ms(plain_mean)
    );
    for (label, toolchain) in [("true closure", &minimal), ("clang closure", &clang)] {
        for mode in [Mode::Off, Mode::Landlock, Mode::Full] {
            // A fresh root per row: build directories must start empty.
            let dir = tempfile::tempdir().expect("tempdir");
            let root = dir.path().to_path_buf();
            let input = root.join("store").join(INPUT);
            std::fs::create_dir_all(&input).expect("store");
            std::fs::write(input.join("main.cpp"), "int main(){}\n").expect("input");
            let row = format!("{mode} ({label})");
            match probe(mode) {
                Err(e) => println!("{row:<26} unavailable: {e}"),
                Ok(_) => {
                    let (med, mean) = measure(n, |i| {
                        let out = run(mode, &action(&root, i, toolchain)).expect("run");
                        assert!(out.exit.success());
                    });
                    println!(
                        "{row:<26} median {:>7.3} ms  mean {:>7.3} ms  (+{:.3} ms over plain spawn)",
                        ms(med),
                        ms(mean),
                        ms(med) - ms(plain_med)
                    );
                }
            }
        }
    }
}
