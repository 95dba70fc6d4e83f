//! Micro-benchmark: the per-action cost of running a do-nothing builder under each sandbox
//! mode, against a plain `std::process::Command` spawn. Used for `bench/RESULTS.md`.
//!
//! Run: `cargo run --release -p cmod-sandbox --example sandbox_cost -- [ITERATIONS]
//! [BALLAST_MIB]` (or
//! `bench/sandbox_cost.sh`). Variants are interleaved iteration by iteration so that load
//! from other processes on the machine affects them alike; `+off` is the cost of the
//! isolation itself (same build-dir, log and output work as the `off` mode).
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
        view_slot: None,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One measured configuration.
struct Variant {
    label: String,
    mode: Option<Mode>,
    toolchain: Vec<PathBuf>,
    root: Option<tempfile::TempDir>,
    samples: Vec<Duration>,
}

impl Variant {
    fn run_once(&mut self, i: usize) {
        let t = Instant::now();
        match (self.mode, &self.root) {
            (Some(mode), Some(root)) => {
                let out = run(mode, &action(root.path(), i, &self.toolchain)).expect("run");
                assert!(out.exit.success());
            }
            _ => {
                let s = Command::new("/bin/true").status().expect("spawn");
                assert!(s.success());
            }
        }
        self.samples.push(t.elapsed());
    }

    fn quantile(&self, q: f64) -> Duration {
        let mut v = self.samples.clone();
        v.sort();
        v[((v.len() - 1) as f64 * q) as usize]
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    // Optional: make the caller a large process (MiB resident), like a realiser holding a
    // big build graph, to show what `fork` page-table copying costs.
    let ballast_mb: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut ballast = vec![0u8; ballast_mb << 20];
    for (i, b) in ballast.iter_mut().enumerate().step_by(4096) {
        *b = i as u8;
    }
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

    let mut variants = variants(&minimal, &clang);
    // Interleave the variants, so that load from other processes hits all of them alike.
    for i in 0..n + 10 {
        for v in &mut variants {
            v.run_once(i);
            if i < 10 {
                v.samples.clear();
            }
        }
    }
    report(&variants, n, ballast_mb, minimal.len());
    std::hint::black_box(&ballast);
}

/// The variants measured: a plain spawn, then each available mode with the minimal and
/// the clang closure (each with a fresh root: build directories must start empty).
fn variants(minimal: &[PathBuf], clang: &[PathBuf]) -> Vec<Variant> {
    let mut variants = vec![Variant {
        label: "plain spawn".into(),
        mode: None,
        toolchain: vec![],
        root: None,
        samples: vec![],
    }];
    for (label, toolchain) in [("true closure", minimal), ("clang closure", clang)] {
        for mode in [Mode::Off, Mode::Landlock, Mode::Full] {
            if let Err(e) = probe(mode) {
                println!("{mode} unavailable: {e}");
                continue;
            }
            // A fresh root per variant: build directories must start empty.
            let dir = tempfile::tempdir().expect("tempdir");
            let input = dir.path().join("store").join(INPUT);
            std::fs::create_dir_all(&input).expect("store");
            std::fs::write(input.join("main.cpp"), "int main(){}\n").expect("input");
            variants.push(Variant {
                label: format!("{mode} ({label} {})", toolchain.len()),
                mode: Some(mode),
                toolchain: toolchain.to_vec(),
                root: Some(dir),
                samples: vec![],
            });
        }
    }
    variants
}

/// Print each variant's quantiles and its cost over a plain spawn and over `off` with
/// the same closure.
fn report(variants: &[Variant], n: usize, ballast_mb: usize, minimal_len: usize) {
    let plain = variants[0].quantile(0.5);
    let off: Vec<Duration> = variants
        .iter()
        .filter(|v| v.mode == Some(Mode::Off))
        .map(|v| v.quantile(0.5))
        .collect();
    println!(
        "iterations per variant: {n} (interleaved); caller resident ballast: {ballast_mb} MiB"
    );
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>12} {:>12}",
        "variant", "p10 ms", "median", "p90", "+plain", "+off"
    );
    for v in variants {
        let med = v.quantile(0.5);
        let off_ref = match v.toolchain.len() {
            0 => None,
            l if l == minimal_len => off.first(),
            _ => off.get(1),
        };
        println!(
            "{:<28} {:>9.3} {:>9.3} {:>9.3} {:>12} {:>12}",
            v.label,
            ms(v.quantile(0.1)),
            ms(med),
            ms(v.quantile(0.9)),
            format!("{:+.3}", ms(med) - ms(plain)),
            off_ref.map_or("".into(), |o| format!("{:+.3}", ms(med) - ms(*o))),
        );
    }
}
