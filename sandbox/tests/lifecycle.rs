//! A sandbox dies with its caller: when the process that called `cmod_sandbox::run` is
//! killed with `SIGKILL` (no cleanup of its own can run), every process of the sandbox
//! is gone within moments, instead of running on re-parented to the host's init.
//!
//! Each test starts this test binary again as the caller (`helper_caller`, which runs a
//! builder from a worker thread, as the realiser does), waits until the builder's
//! processes exist, kills the caller and scans `/proc` for survivors. The builders carry
//! a unique marker in their arguments so the scan finds exactly them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cmod_sandbox::{Action, Limits, Mode};

const HELPER_ENV: &str = "CMOD_SANDBOX_LIFECYCLE_HELPER";

/// The caller process the tests kill: runs `sh -c <script>` in `<mode>` from a worker
/// thread in the fixture at `<root>` (`HELPER_ENV` = `<mode>\n<root>\n<script>`).
#[test]
#[ignore = "the caller process of builders_die_with_their_caller_*, started by them"]
fn helper_caller() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, '\n');
    let (Some(mode), Some(root), Some(script)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("bad {HELPER_ENV}: {spec:?}");
    };
    let mode: Mode = mode.parse().unwrap();
    let root = PathBuf::from(root);
    let action = Action {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        env: vec![],
        build_dir: root.join("build"),
        store_dir: root.join("store"),
        inputs: vec![],
        links: vec![],
        toolchain: common::shell_toolchain(),
        outputs: vec![],
        log_path: root.join("log"),
        limits: Limits::default(),
        view_slot: None,
    };
    let worker = std::thread::spawn(move || cmod_sandbox::run(mode, &action));
    let r = worker.join().unwrap();
    panic!("the builder was expected to run until this process is killed: {r:?}");
}

/// Pids of the processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(marker) {
            found.push((pid, text));
        }
    }
    found
}

/// Wait until `n` processes carry `marker` (the builder started), at most `limit`.
fn wait_for(marker: &str, n: usize, limit: Duration) -> Vec<(i32, String)> {
    let start = Instant::now();
    loop {
        let found = processes_with(marker);
        if found.len() >= n || start.elapsed() > limit {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A marker no other process has: a fractional sleep duration.
fn marker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}{:09}", std::process::id(), nanos)
}

fn fixture_root(dir: &Path) -> PathBuf {
    let root = std::fs::canonicalize(dir).unwrap();
    std::fs::create_dir_all(root.join("build")).unwrap();
    std::fs::create_dir_all(root.join("store")).unwrap();
    root
}

/// Kills what a test started if it fails half-way: the caller and every marked process.
struct Cleanup<'a> {
    caller: std::process::Child,
    marker: &'a str,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.caller.kill();
        let _ = self.caller.wait();
        for (pid, _) in processes_with(self.marker) {
            // SAFETY: a plain kill of a process this test started (it carries the marker).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Start the caller with `script` in `mode`, wait for `n` marked processes, `SIGKILL`
/// the caller, and return whatever marked processes are left 2 s later.
fn survivors_of_killed_caller(mode: Mode, script: &str, marker: &str, n: usize) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let root = fixture_root(dir.path());
    let caller = Command::new(std::env::current_exe().unwrap())
        .args(["helper_caller", "--exact", "--ignored", "--nocapture"])
        .env(HELPER_ENV, format!("{mode}\n{}\n{script}", root.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut cleanup = Cleanup { caller, marker };
    let started = wait_for(marker, n, Duration::from_secs(30));
    assert!(
        started.len() >= n,
        "the builder's processes never all started: {started:?}; log: {}",
        std::fs::read_to_string(root.join("log")).unwrap_or_default()
    );
    cleanup.caller.kill().unwrap();
    cleanup.caller.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut left = processes_with(marker);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        left = processes_with(marker);
    }
    left.into_iter()
        .map(|(pid, cmd)| format!("{pid}: {cmd}"))
        .collect()
}

/// A builder with a background child, both sleeping far past the test.
fn builder_with_a_child(mode: Mode) {
    let m = marker();
    let script = format!("sleep 1000.{m} & sleep 1001.{m}; wait");
    // The shell and its two sleeps.
    let left = survivors_of_killed_caller(mode, &script, &m, 3);
    assert!(
        left.is_empty(),
        "processes of the {mode} sandbox outlived their killed caller: {left:?}"
    );
}

#[test]
fn builders_die_with_their_caller_full() {
    builder_with_a_child(Mode::Full);
}

#[test]
fn builders_die_with_their_caller_landlock() {
    builder_with_a_child(Mode::Landlock);
}

/// Without a sandbox only the builder process itself is tied to the caller (what it
/// starts is not contained in `off` mode at all).
#[test]
fn builders_die_with_their_caller_off() {
    let m = marker();
    let left = survivors_of_killed_caller(Mode::Off, &format!("exec sleep 1000.{m}"), &m, 1);
    assert!(
        left.is_empty(),
        "the off-mode builder outlived its killed caller: {left:?}"
    );
}
