//! cmod's process lifecycle, with real processes: builders die with a killed cmod, a
//! closed output ends cmod at once and quietly, and waiting for a lock is never silent.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Realised, Sandbox};

/// A marker no other process has: the name of the slow unit (`slow_<marker>.cpp`) is
/// on the compiler's command line, and on no other process's (the project's directory
/// is, through `-fdebug-compilation-dir` of the toolchain probes: no marker there).
fn marker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("slow_m{}x{nanos}.cpp", std::process::id())
}

/// A package whose one unit, `src/<marker>`, takes long to compile: a
/// `static_assert` on a constexpr loop of `iterations` steps (20 M: about 40 s here).
fn slow_project(s: &Sandbox, marker: &str, iterations: u64) -> PathBuf {
    let main = format!("src/{marker}");
    let manifest = format!(
        "[package]\nname = \"slow\"\nversion = \"0.1.0\"\n\n[toolchain]\ncompiler = \"clang++-19\"\n\
         cxx-standard = 20\n\n[build]\ncxxflags = [\"-fconstexpr-steps=2147483647\"]\n\n\
         [[bin]]\nname = \"slow\"\nmain = \"{main}\"\n"
    );
    let source = format!(
        "constexpr unsigned long long spin(unsigned long long n) {{\n\
         \x20 unsigned long long x = 0;\n\
         \x20 for (unsigned long long i = 0; i < n; ++i) x = x * 6364136223846793005ULL + i;\n\
         \x20 return x;\n}}\n\
         static_assert(spin({iterations}ULL) != 1);\n\
         int main() {{ return 0; }}\n"
    );
    s.project("slow", &[("cmod.toml", &manifest), (&main, &source)])
}

/// `cmod --store <store> <args>` in `dir`, with stdout and stderr piped.
fn spawn(s: &Sandbox, dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cmod"))
        .arg("--store")
        .arg(s.store())
        .args(args)
        .current_dir(dir)
        .env_remove("CMOD_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cmod")
}

/// Pids and command lines of the processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
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

/// Poll `f` every 20 ms until it returns `Some`, at most `limit`.
fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills what a test started if it fails half-way: its cmod processes and every
/// process carrying its marker.
struct Cleanup {
    children: Vec<Child>,
    marker: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for (pid, _) in processes_with(&self.marker) {
            // SAFETY: a plain kill of a process this test started (it carries the marker).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Start `cmod realise` on a 40 s compile, `kill -9` cmod once the compiler runs, and
/// expect no process of the build to be left 2 s later.
fn builders_die_with_a_killed_cmod(mode: &str) {
    let s = Sandbox::new();
    let m = marker();
    let dir = slow_project(&s, &m, 20_000_000);
    let cmod = spawn(&s, &dir, &["realise", "--no-link", "--sandbox", mode]);
    let mut cleanup = Cleanup {
        children: vec![cmod],
        marker: m.clone(),
    };
    let compiling = poll(Duration::from_secs(120), || {
        Some(processes_with(&m)).filter(|p| !p.is_empty())
    });
    assert!(compiling.is_some(), "the compiler never started");
    let cmod = &mut cleanup.children[0];
    cmod.kill().unwrap();
    cmod.wait().unwrap();
    let gone = poll(Duration::from_secs(2), || {
        Some(()).filter(|()| processes_with(&m).is_empty())
    });
    assert!(
        gone.is_some(),
        "processes of the {mode} sandbox outlived the killed cmod: {:?}",
        processes_with(&m)
    );
    drop(cleanup);
    s.assert_store_verifies(&dir);
}

#[test]
fn builders_die_with_a_killed_cmod_full() {
    builders_die_with_a_killed_cmod("full");
}

#[test]
fn builders_die_with_a_killed_cmod_landlock() {
    builders_die_with_a_killed_cmod("landlock");
}

/// Read the first line of `out`, then close it, and expect `child` to end within 20 s,
/// killed by `SIGPIPE` (as `yes | head -1` ends `yes`).
fn close_after_first_line(mut child: Child, out: impl Read) {
    let mut first = String::new();
    let mut reader = BufReader::new(out);
    reader.read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "cmod printed nothing");
    drop(reader);
    let status = poll(Duration::from_secs(20), || child.try_wait().unwrap());
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("cmod did not end within 20 s of its output being closed");
    };
    assert_eq!(
        status.signal(),
        Some(libc::SIGPIPE),
        "cmod must end quietly by SIGPIPE when its output is closed, not {status:?} \
         (101 is a panic)"
    );
}

/// `cmod realise 2>&1 | head -1` and `cmod realise --message-format json | head -1`.
#[test]
fn a_closed_output_ends_cmod_at_once_and_quietly() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    // Human progress on stderr, which goes into the same pipe as stdout.
    let mut human = Command::new("sh")
        .args(["-c", "exec \"$0\" \"$@\" 2>&1"])
        .arg(env!("CARGO_BIN_EXE_cmod"))
        .arg("--store")
        .arg(s.store())
        .args(["realise", "--no-link"])
        .current_dir(&dir)
        .env_remove("CMOD_STORE")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = human.stdout.take().unwrap();
    close_after_first_line(human, out);
    // JSON messages on stdout.
    let mut json = spawn(
        &s,
        &dir,
        &["realise", "--no-link", "--message-format", "json"],
    );
    let out = json.stdout.take().unwrap();
    close_after_first_line(json, out);
    // Nothing was left half-registered or locked: the store verifies and the next build
    // runs to the end.
    s.assert_store_verifies(&dir);
    s.realise(&dir, &["--no-link"]).ok();
}

/// Collect `child`'s stderr lines on a thread.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Wait up to `limit` for a line containing `needle`; every line seen is in `seen`.
fn line_with(
    rx: &mpsc::Receiver<String>,
    needle: &str,
    limit: Duration,
    seen: &mut Vec<String>,
) -> Option<String> {
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => {
                seen.push(l.clone());
                if l.contains(needle) {
                    return Some(l);
                }
            }
            Err(_) => return None,
        }
    }
    None
}

const BLOCKING: &str = "Blocking waiting for file lock on";

/// While another process holds the GC lock, `realise` says it waits, naming the lock and
/// the holder (on stderr, and as a JSON message), and goes on once it is released.
#[test]
fn realise_says_what_lock_it_waits_for() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let locks = s.store().join("v1/locks");
    std::fs::create_dir_all(&locks).unwrap();
    let gc_lock = std::fs::File::create(locks.join("gc.lock")).unwrap();
    // SAFETY: flock on a file this test owns.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&gc_lock), libc::LOCK_EX) },
        0
    );
    let mut cmod = spawn(
        &s,
        &dir,
        &["realise", "--no-link", "--message-format", "json"],
    );
    let rx = stderr_lines(&mut cmod);
    let mut seen = Vec::new();
    let line = line_with(&rx, BLOCKING, Duration::from_secs(60), &mut seen);
    drop(gc_lock);
    let line = line.unwrap_or_else(|| panic!("no lock notice; stderr: {seen:#?}"));
    assert!(line.contains("the store's GC lock"), "{line}");
    assert!(line.contains("gc.lock"), "{line}");
    assert!(
        line.contains(&format!("held by process {}", std::process::id())),
        "the holder is named: {line}"
    );
    let done = Realised::parse(cmod.wait_with_output().unwrap()).ok();
    let wait = done
        .messages
        .iter()
        .find(|m| m["reason"] == "waiting-for-lock")
        .expect("a waiting-for-lock message");
    assert_eq!(wait["what"], "the store's GC lock");
    assert_eq!(wait["holders"][0]["pid"], std::process::id());
    assert!(wait["lock"].as_str().unwrap().ends_with("v1/locks/gc.lock"));
}

/// `gc` waits for a running build and says so; a second `realise` of the same step
/// waits for the first one's build of it and says which step.
#[test]
fn gc_and_a_second_build_say_whom_they_wait_for() {
    let s = Sandbox::new();
    let m = marker();
    // About 5 s of compiling.
    let dir = slow_project(&s, &m, 2_500_000);
    let first = spawn(&s, &dir, &["realise", "--no-link"]);
    let first_pid = first.id();
    let mut cleanup = Cleanup {
        children: vec![first],
        marker: m.clone(),
    };
    let compiling = poll(Duration::from_secs(120), || {
        Some(processes_with(&m)).filter(|p| !p.is_empty())
    });
    assert!(compiling.is_some(), "the compiler never started");
    let mut gc = spawn(&s, &dir, &["gc"]);
    let mut second = spawn(&s, &dir, &["realise", "--no-link"]);
    let (gc_rx, second_rx) = (stderr_lines(&mut gc), stderr_lines(&mut second));
    let mut seen = Vec::new();
    let gc_line = line_with(&gc_rx, BLOCKING, Duration::from_secs(30), &mut seen)
        .unwrap_or_else(|| panic!("gc never said it waits: {seen:#?}"));
    assert!(gc_line.contains("the store's GC lock"), "{gc_line}");
    assert!(
        gc_line.contains(&format!("process {first_pid} (")),
        "the running build is named: {gc_line}"
    );
    let mut seen = Vec::new();
    let build_line = line_with(&second_rx, BLOCKING, Duration::from_secs(30), &mut seen)
        .unwrap_or_else(|| panic!("the second realise never said it waits: {seen:#?}"));
    assert!(
        build_line.contains(&format!("the build of slow-0.1.0-src-{m}.o")),
        "{build_line}"
    );
    assert!(
        build_line.contains(&format!("held by process {first_pid} (")),
        "{build_line}"
    );
    cleanup.children.push(gc);
    cleanup.children.push(second);
    for c in &mut cleanup.children {
        let status = poll(Duration::from_secs(120), || c.try_wait().unwrap());
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
    }
}
