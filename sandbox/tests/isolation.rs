//! Integration tests of the Linux `full` and `landlock` sandboxes with real processes:
//! environment, identity, visibility of inputs and the store, writes, limits, exit codes,
//! the probe, and concurrent use from many threads.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use cmod_sandbox::{probe, ExitKind, Limits, Mode, SandboxError};
use common::{Fixture, INPUT, SECRET};

fn ok_log(r: (Result<cmod_sandbox::Outcome, SandboxError>, String)) -> String {
    let (res, log) = r;
    let outcome = res.unwrap_or_else(|e| panic!("run failed: {e}\nlog:\n{log}"));
    assert_eq!(outcome.exit, ExitKind::Code(0), "log:\n{log}");
    log
}

/// Tests that hold in both Linux modes, generated once per mode.
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        mod full {
            $( #[test] fn $name() { super::$name(cmod_sandbox::Mode::Full) } )*
        }
        mod landlock {
            $( #[test] fn $name() { super::$name(cmod_sandbox::Mode::Landlock) } )*
        }
    };
}

both_modes!(
    probe_reports_the_enforced_abi,
    environment_is_cleared_and_fixed,
    inputs_are_readable_through_stable_links,
    non_input_store_path_is_denied,
    writes_outside_the_build_dir_fail,
    toolchain_under_tmp_is_visible_and_tmp_stays_private,
    failing_builder_is_an_outcome,
    timeout_is_enforced,
    leftover_processes_die_with_the_builder,
    output_limit_is_enforced,
    builddir_placeholder_is_substituted,
    umask_and_no_new_privs_are_set,
    device_nodes_work,
    missing_program_is_a_setup_error,
    concurrent_runs_are_isolated,
);

fn probe_reports_the_enforced_abi(mode: Mode) {
    let e = probe(mode).expect("this machine supports the mode");
    assert_eq!(e.mode, mode);
    let abi = e.landlock_abi.expect("Landlock is available here");
    assert!(abi >= 4, "this machine has Landlock ABI 7, got {abi}");
    let fx = Fixture::new();
    let (res, log) = fx.sh(mode, "true");
    let outcome = res.unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert_eq!(outcome.enforcement, e, "run enforces what probe reported");
}

fn environment_is_cleared_and_fixed(mode: Mode) {
    std::env::set_var("CMOD_TEST_SECRET", "hunter2");
    let fx = Fixture::new();
    ok_log(fx.sh(
        mode,
        "env | sort > out/result; pwd >> out/result; \
         if [ -e \"$HOME\" ]; then echo home-exists; else echo no-home; fi > out/home",
    ));
    let env = std::fs::read_to_string(fx.build().join("out/result")).unwrap();
    // HOME names a directory that does not exist (on the host either, for `landlock`).
    assert!(!Path::new("/homeless-shelter").exists());
    assert_eq!(
        std::fs::read_to_string(fx.build().join("out/home")).unwrap(),
        "no-home\n"
    );
    assert!(
        !env.contains("hunter2") && !env.contains("CMOD_TEST_SECRET"),
        "{env}"
    );
    for want in [
        "TZ=UTC",
        "LC_ALL=C",
        "SOURCE_DATE_EPOCH=1",
        "HOME=/homeless-shelter",
        "PATH=/usr/bin:/bin",
        "CMOD_EXTRA=1",
    ] {
        assert!(env.lines().any(|l| l == want), "missing {want}: {env}");
    }
    let build = fx.seen_build(mode);
    assert!(
        env.lines()
            .any(|l| l == format!("TMPDIR={}/.tmp", build.display())),
        "{env}"
    );
    assert_eq!(
        env.lines().last().unwrap(),
        build.to_str().unwrap(),
        "cwd: {env}"
    );
    // Nothing else: PWD and SHLVL and `_` are added by the shell itself.
    let names: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('=').map(|p| p.0))
        .collect();
    for n in names {
        assert!(
            [
                "CMOD_EXTRA",
                "HOME",
                "LC_ALL",
                "PATH",
                "PWD",
                "SOURCE_DATE_EPOCH",
                "TMPDIR",
                "TZ",
                "OLDPWD",
                "SHLVL",
                "_"
            ]
            .contains(&n),
            "unexpected variable {n}: {env}"
        );
    }
}

fn inputs_are_readable_through_stable_links(mode: Mode) {
    let fx = Fixture::new();
    let input = fx.seen_input(mode).join("f");
    let log = ok_log(fx.sh(
        mode,
        &format!(
            "cat src/f; echo; cat {i}; echo; readlink src/f; if echo x > {i}; then echo WROTE; fi",
            i = input.display()
        ),
    ));
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        &lines[..3],
        &["input!", "input!", input.to_str().unwrap()],
        "{log}"
    );
    assert!(!log.contains("WROTE"), "{log}");
    // Full: the read-only bind mount refuses the O_TRUNC open. Landlock mode: Landlock
    // refuses it (even for root, who would pass the 0444 mode).
    let denied = match mode {
        Mode::Full => "Read-only file system",
        _ => "Permission denied",
    };
    assert!(log.contains(denied), "{log}");
    assert_eq!(
        std::fs::read_to_string(fx.store().join(INPUT).join("f")).unwrap(),
        "input!"
    );
}

fn non_input_store_path_is_denied(mode: Mode) {
    let fx = Fixture::new();
    let (secret, expect) = match mode {
        Mode::Full => (
            Path::new(cmod_sandbox::STORE_DIR).join(SECRET).join("f"),
            "No such file or directory",
        ),
        _ => (fx.store().join(SECRET).join("f"), "Permission denied"),
    };
    let log = ok_log(fx.sh(mode, &format!("cat {} 2>&1 || true", secret.display())));
    assert!(!log.contains("secret!"), "{log}");
    assert!(log.contains(expect), "{log}");
}

fn writes_outside_the_build_dir_fail(mode: Mode) {
    let fx = Fixture::new();
    let marker = format!("cmod-sandbox-test-{}-{}", std::process::id(), line!());
    let log = ok_log(fx.sh(
        mode,
        &format!(
            "for p in /x /usr/x /etc/x /tmp/{marker} {b}/ok; do if touch $p 2>/dev/null; then echo ok $p; else echo denied $p; fi; done",
            b = fx.seen_build(mode).display()
        ),
    ));
    assert!(
        log.contains("denied /x") && log.contains("denied /usr/x"),
        "{log}"
    );
    assert!(log.contains("denied /etc/x"), "{log}");
    assert!(
        log.contains(&format!("ok {}/ok", fx.seen_build(mode).display())),
        "{log}"
    );
    assert!(fx.build().join("ok").exists());
    // The host's /tmp is never written: in the full sandbox /tmp is the private
    // build-dir temp (the touch succeeds there), in Landlock mode it is denied.
    assert!(!Path::new("/tmp").join(&marker).exists());
    match mode {
        Mode::Full => {
            assert!(log.contains(&format!("ok /tmp/{marker}")), "{log}");
            assert!(fx.build().join(".tmp").join(&marker).exists());
        }
        _ => assert!(log.contains(&format!("denied /tmp/{marker}")), "{log}"),
    }
}

/// A toolchain path under the host's `/tmp` (a package or test helper in a temporary
/// directory, here with a space in its name) is readable but not writable inside; in the
/// full sandbox `/tmp` stays the private build-dir temp all the same, and the rest of the
/// host's `/tmp` stays out of sight.
fn toolchain_under_tmp_is_visible_and_tmp_stays_private(mode: Mode) {
    let fx = Fixture::new();
    let tmp = |prefix: &str| {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .unwrap()
    };
    let (tool, sibling) = (tmp("cmod tool "), tmp("cmod-sibling-"));
    let tool_dir = std::fs::canonicalize(tool.path()).unwrap();
    std::fs::write(tool_dir.join("data"), "tool data\n").unwrap();
    std::fs::write(sibling.path().join("secret"), "host secret\n").unwrap();
    let marker = format!("cmod-private-{}-{}", std::process::id(), line!());
    let script = format!(
        "cat '{t}/data'; touch '{t}/new' 2>&1; cat '{s}/secret' 2>&1; \
         if {{ echo mine > /tmp/{marker}; }} 2>/dev/null; then cat /tmp/{marker}; else echo denied; fi; \
         ls -A /tmp 2>&1 || true",
        t = tool_dir.display(),
        s = sibling.path().display(),
    );
    let mut toolchain = common::shell_toolchain();
    toolchain.push(tool_dir.clone());
    let a = fx.action(Path::new("/bin/sh"), &["-c".to_string(), script], toolchain);
    let log = ok_log(fx.run(mode, &a));
    assert!(log.starts_with("tool data\n"), "{log}");
    assert!(!tool_dir.join("new").exists());
    assert!(
        !Path::new("/tmp").join(&marker).exists(),
        "host /tmp written"
    );
    assert!(!log.contains("host secret"), "{log}");
    let top = tool_dir.strip_prefix("/tmp").unwrap();
    match mode {
        Mode::Full => {
            assert!(log.contains("Read-only file system"), "{log}");
            assert!(log.contains("No such file or directory"), "{log}");
            assert!(log.contains("\nmine\n"), "{log}");
            assert!(fx.build().join(".tmp").join(&marker).exists());
            // /tmp lists the step's own file and the way to the toolchain path, nothing
            // else of the host's /tmp.
            let listing: Vec<&str> = log.lines().skip(4).collect();
            let mut want = vec![marker.as_str(), top.to_str().unwrap()];
            want.sort();
            assert_eq!(listing, want, "{log}");
        }
        _ => {
            assert_eq!(log.matches("Permission denied").count(), 3, "{log}");
            assert!(log.contains("\ndenied\n"), "{log}");
        }
    }
}

fn failing_builder_is_an_outcome(mode: Mode) {
    let fx = Fixture::new();
    let (res, log) = fx.sh(mode, "echo boom >&2; exit 7");
    assert_eq!(res.unwrap().exit, ExitKind::Code(7));
    assert_eq!(log, "boom\n");
    // A builder that crashes is reported with its signal. (The builder is pid 1 of the
    // full sandbox, like in Nix, so signals it sends *itself* with the default action
    // are ignored there, as for any init; faults are always delivered.)
    let fx = Fixture::new();
    let crash = common::compile_c(
        "crash",
        "int main(void) { *(volatile int *)0 = 1; return 0; }\n",
    );
    let mut toolchain = common::shell_toolchain();
    toolchain.push(crash.clone());
    let a = fx.action(&crash, &[], toolchain);
    assert_eq!(
        fx.run(mode, &a).0.unwrap().exit,
        ExitKind::Signal(libc::SIGSEGV)
    );
}

fn timeout_is_enforced(mode: Mode) {
    let fx = Fixture::new();
    let b = fx.seen_build(mode);
    let mut a = fx.action(
        Path::new("/bin/sh"),
        &[
            "-c".into(),
            // A background process that leaves the process group and keeps writing a
            // heartbeat (atomically), plus a long sleep in the foreground once it runs.
            format!(
                "setsid sh -c 'while :; do date +%s%N > {b}/hb.new; mv {b}/hb.new {b}/hb; sleep 0.05; done' & \
                 while [ ! -s {b}/hb ]; do sleep 0.01; done; sleep 30",
                b = b.display()
            ),
        ],
        common::shell_toolchain(),
    );
    a.limits = Limits {
        timeout: Duration::from_millis(1500),
        ..Limits::default()
    };
    let start = Instant::now();
    let err = fx.run(mode, &a).0.unwrap_err();
    assert!(matches!(err, SandboxError::TimeLimit { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
    // The process that left the group died too: full kills pid 1 of the sandbox's pid
    // namespace, landlock's subreaper kills every descendant.
    let before = std::fs::read_to_string(fx.build().join("hb")).unwrap_or_default();
    assert!(!before.is_empty(), "the heartbeat never started");
    std::thread::sleep(Duration::from_millis(400));
    let after = std::fs::read_to_string(fx.build().join("hb")).unwrap_or_default();
    assert_eq!(before, after, "a process survived the sandbox");
}

fn leftover_processes_die_with_the_builder(mode: Mode) {
    let fx = Fixture::new();
    let b = fx.seen_build(mode);
    let (res, log) = fx.sh(
        mode,
        &format!(
            "setsid sh -c 'while :; do date +%s%N > {b}/hb.new; mv {b}/hb.new {b}/hb; sleep 0.05; done' & \
             while [ ! -s {b}/hb ]; do sleep 0.01; done; exit 3",
            b = b.display()
        ),
    );
    assert_eq!(res.unwrap().exit, ExitKind::Code(3), "{log}");
    let before = std::fs::read_to_string(fx.build().join("hb")).unwrap_or_default();
    assert!(!before.is_empty(), "the daemon never started: {log}");
    std::thread::sleep(Duration::from_millis(300));
    let after = std::fs::read_to_string(fx.build().join("hb")).unwrap_or_default();
    assert_eq!(before, after, "a daemonised process outlived its builder");
}

fn output_limit_is_enforced(mode: Mode) {
    let fx = Fixture::new();
    let mut a = fx.action(
        Path::new("/bin/sh"),
        &["-c".into(), "head -c 100000 /dev/zero > out/result".into()],
        common::shell_toolchain(),
    );
    a.limits.max_output_bytes = 4096;
    let err = fx.run(mode, &a).0.unwrap_err();
    assert!(
        matches!(err, SandboxError::OutputLimit { limit: 4096, .. }),
        "{err}"
    );
}

fn builddir_placeholder_is_substituted(mode: Mode) {
    let fx = Fixture::new();
    let a = fx.action(
        Path::new("/bin/sh"),
        &[
            "-c".into(),
            "echo \"$0\"".into(),
            "-ffile-prefix-map=@builddir@=/build".into(),
        ],
        common::shell_toolchain(),
    );
    let log = ok_log(fx.run(mode, &a));
    assert_eq!(
        log.trim(),
        format!("-ffile-prefix-map={}=/build", fx.seen_build(mode).display())
    );
}

fn umask_and_no_new_privs_are_set(mode: Mode) {
    let fx = Fixture::new();
    let log = ok_log(fx.sh(
        mode,
        "umask; grep NoNewPrivs /proc/self/status || echo no-proc",
    ));
    assert!(log.starts_with("0022\n"), "{log}");
    match mode {
        Mode::Full => assert!(log.contains("NoNewPrivs:\t1"), "{log}"),
        // Landlock mode does not grant /proc at all.
        _ => assert!(log.contains("no-proc"), "{log}"),
    }
    // Asked directly (no /proc needed), in both modes.
    let bin = common::compile_c(
        "no_new_privs",
        "#include <stdio.h>\n#include <sys/prctl.h>\n\
         int main(void) { printf(\"no_new_privs: %d\\n\", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)); return 0; }\n",
    );
    let mut toolchain = common::shell_toolchain();
    toolchain.push(bin.clone());
    let fx = Fixture::new();
    let log = ok_log(fx.run(mode, &fx.action(&bin, &[], toolchain)));
    assert_eq!(log, "no_new_privs: 1\n");
}

fn device_nodes_work(mode: Mode) {
    let fx = Fixture::new();
    let log = ok_log(fx.sh(
        mode,
        "echo discard > /dev/null && echo null-ok; head -c 7 /dev/urandom | wc -c; \
         head -c 3 /dev/zero | wc -c; head -c 5 /dev/random | wc -c; \
         if echo x > /dev/full; then echo full-wrote; fi",
    ));
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(&lines[..4], &["null-ok", "7", "3", "5"], "{log}");
    // dash reports the ENOSPC of /dev/full as an I/O error.
    assert!(!log.contains("full-wrote") && lines.len() == 5, "{log}");
}

fn missing_program_is_a_setup_error(mode: Mode) {
    let fx = Fixture::new();
    let a = fx.action(
        Path::new("/usr/bin/cmod-no-such-program"),
        &[],
        common::shell_toolchain(),
    );
    let err = fx.run(mode, &a).0.unwrap_err();
    assert!(matches!(err, SandboxError::Setup { .. }), "{err}");
    assert!(err.to_string().contains("cmod-no-such-program"), "{err}");
}

fn concurrent_runs_are_isolated(mode: Mode) {
    let handles: Vec<_> = (0..12)
        .map(|i| {
            std::thread::spawn(move || {
                for round in 0..3 {
                    let fx = Fixture::new();
                    let log = ok_log(fx.sh(
                        mode,
                        &format!("echo {i}-{round} > out/result; cat out/result"),
                    ));
                    assert_eq!(log, format!("{i}-{round}\n"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

// ---- full sandbox only ----

#[test]
fn full_identity_and_hostname_are_fixed() {
    let fx = Fixture::new();
    let log = ok_log(fx.sh(
        Mode::Full,
        "id -u; id -g; id -G; hostname; cat /proc/sys/kernel/hostname",
    ));
    assert_eq!(log, "1000\n100\n100\ncmod\ncmod\n");
}

#[test]
fn full_has_only_loopback() {
    let fx = Fixture::new();
    let log = ok_log(fx.sh(
        Mode::Full,
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; ls /sys/class/net 2>&1 || true",
    ));
    let mut lines = log.lines();
    assert_eq!(lines.next(), Some("lo"), "{log}");
    // /sys is not mounted at all.
    assert!(lines.next().unwrap_or("").contains("No such file"), "{log}");
}

#[test]
fn full_proc_shows_only_sandbox_processes() {
    let fx = Fixture::new();
    let log = ok_log(fx.sh(
        Mode::Full,
        "cd /proc && for p in [0-9]*; do echo $p; done; readlink /proc/1/exe",
    ));
    let pids: Vec<u32> = log.lines().filter_map(|l| l.parse().ok()).collect();
    assert!(pids.contains(&1), "{log}");
    assert!(pids.len() <= 4 && pids.iter().all(|p| *p < 16), "{log}");
    assert!(log.contains("/usr/bin/dash"), "sh is pid 1: {log}");
}

#[test]
fn full_root_is_a_minimal_read_only_tree() {
    let fx = Fixture::new();
    let log = ok_log(fx.sh(
        Mode::Full,
        "for p in /etc/passwd /root /home /var /sys /etc/ld.so.cache /lib64/ld-linux-x86-64.so.2 /build /cmod/store; do \
           if [ -e $p ]; then echo present $p; else echo absent $p; fi; done; \
           mkdir /newdir 2>&1 || true",
    ));
    for absent in ["/etc/passwd", "/root", "/home", "/var", "/sys"] {
        assert!(log.contains(&format!("absent {absent}\n")), "{log}");
    }
    for present in [
        "/etc/ld.so.cache",
        "/lib64/ld-linux-x86-64.so.2",
        "/build",
        "/cmod/store",
    ] {
        assert!(log.contains(&format!("present {present}\n")), "{log}");
    }
    assert!(log.contains("Read-only file system"), "{log}");
}

/// The full sandbox lays out directories of stable-name links (here `src/` and
/// `bmi/deep/`) on a sealed tmpfs of its own: the builder sees the same links, with the
/// same pinned times as the host layout, cannot change them, and the host build
/// directory never holds them. A directory that also holds an output stays on the host.
#[test]
fn full_links_live_on_a_sealed_tmpfs_inside() {
    let fx = Fixture::new();
    let mut a = fx.action(
        Path::new("/bin/sh"),
        &[
            "-c".to_string(),
            "cat bmi/deep/m.pcm; echo; readlink out/in.txt; \
             stat -c '%n %Y' src/f src bmi/deep/m.pcm bmi/deep bmi; \
             touch bmi/new 2>&1; rm src/f 2>&1; echo done > out/result"
                .to_string(),
        ],
        common::shell_toolchain(),
    );
    for at in ["bmi/deep/m.pcm", "out/in.txt"] {
        a.links.push(cmod_sandbox::Link {
            at: at.into(),
            store_path: INPUT.into(),
            sub: Some("f".into()),
        });
    }
    let log = ok_log(fx.run(Mode::Full, &a));
    let seen = fx.seen_input(Mode::Full).join("f");
    assert!(
        log.starts_with(&format!("input!\n{}\n", seen.display())),
        "{log}"
    );
    for n in ["src/f", "src", "bmi/deep/m.pcm", "bmi/deep", "bmi"] {
        assert!(log.contains(&format!("\n{n} 1\n")), "mtime of {n}: {log}");
    }
    assert_eq!(log.matches("Read-only file system").count(), 2, "{log}");
    // On the host: empty mount points for the tmpfs roots; the `out/` link is real.
    for d in ["src", "bmi"] {
        let entries = std::fs::read_dir(fx.build().join(d)).unwrap().count();
        assert_eq!(entries, 0, "host `{d}` holds links");
    }
    assert!(std::fs::symlink_metadata(fx.build().join("out/in.txt"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(fx.build().join("out/result")).unwrap(),
        "done\n"
    );
}

#[test]
fn landlock_runs_in_the_host_build_dir_as_the_caller() {
    let fx = Fixture::new();
    let log = ok_log(fx.sh(Mode::Landlock, "pwd; id -u"));
    // SAFETY: plain getter.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(log, format!("{}\n{uid}\n", fx.build().display()));
}

#[test]
fn unsafe_output_is_rejected_after_a_successful_build() {
    for mode in [Mode::Full, Mode::Landlock, Mode::Off] {
        let fx = Fixture::new();
        let (res, _) = fx.sh(mode, "ln -s /etc/passwd out/result");
        let err = res.unwrap_err();
        assert!(
            matches!(err, SandboxError::UnsafeOutput { .. }),
            "{mode}: {err}"
        );
    }
}
