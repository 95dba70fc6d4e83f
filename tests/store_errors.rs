//! A store cmod cannot write, or a disk that fills up, is the machine's problem, not a
//! bug: each is reported (exit 2) with the directory and the remedy, never as an
//! "internal error" (101) or against the user's files, read-only commands keep working,
//! and the store stays consistent.
//!
//! The read-only mounts and the small file system are made in a private mount namespace
//! (`unshare --user --map-root-user --mount`), so nothing on the host changes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{failure, Sandbox};

/// Run `cmod --store <store> <args>` in `dir` after `setup` (a shell snippet that may
/// use `$S`, the store) in a private mount namespace.
fn in_namespace(s: &Sandbox, dir: &Path, setup: &str, args: &[&str]) -> Output {
    let script = format!("S=\"$1\"; shift; {setup} && exec \"$0\" --store \"$S\" \"$@\"");
    Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .arg(env!("CARGO_BIN_EXE_cmod"))
        .arg(s.store())
        .args(args)
        .current_dir(dir)
        .env_remove("CMOD_STORE")
        .output()
        .expect("unshare")
}

const READ_ONLY: &str = "mount --bind \"$S\" \"$S\" && mount -o remount,bind,ro \"$S\"";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Build `hello` into a fresh store.
fn built_hello(s: &Sandbox) -> std::path::PathBuf {
    let dir = s.copy_example("hello");
    s.realise(&dir, &["--no-link"]).ok();
    dir
}

#[test]
fn a_read_only_store_is_named_with_a_remedy_and_can_still_be_read() {
    let s = Sandbox::new();
    let dir = built_hello(&s);
    // Everything is built, but realise must write (locks, logs, roots): exit 2, not 101.
    let (code, err) = failure(&in_namespace(&s, &dir, READ_ONLY, &["realise"]));
    assert_eq!(code, 2, "{err}");
    let store = s.store().canonicalize().unwrap();
    assert!(
        err.contains(&format!(
            "the store `{}` cannot be written",
            store.display()
        )),
        "{err}"
    );
    assert!(err.contains("read-only file system"), "{err}");
    assert!(err.contains("--store DIR"), "the remedy: {err}");
    let (code, err) = failure(&in_namespace(&s, &dir, READ_ONLY, &["gc"]));
    assert_eq!(code, 2, "{err}");
    // What only reads works.
    for args in [
        &["path-info", "hello"][..],
        &["log", "hello"],
        &["store", "verify"],
        &["eval"],
        &["show-derivation", "hello"],
    ] {
        let out = in_namespace(&s, &dir, READ_ONLY, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        // (The link step's log is empty and `store verify` reports on stderr.)
        if !matches!(args[0], "log" | "store") {
            assert!(!out.stdout.is_empty(), "{args:?} printed nothing");
        }
    }
}

#[test]
fn an_unwritable_tmp_is_reported_against_the_store_not_the_source() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let tmp_read_only = "mkdir -p \"$S/v1/tmp\" && mount --bind \"$S/v1/tmp\" \"$S/v1/tmp\" \
                         && mount -o remount,bind,ro \"$S/v1/tmp\"";
    let (code, err) = failure(&in_namespace(&s, &dir, tmp_read_only, &["realise"]));
    assert_eq!(code, 2, "{err}");
    let tmp = s.store().canonicalize().unwrap().join("v1/tmp");
    assert!(err.contains(&format!("`{}`", tmp.display())), "{err}");
    assert!(
        !err.contains("hello.cppm") && !err.contains("main.cpp"),
        "the user's files are not the problem: {err}"
    );
}

/// The store belongs to root; another user may read it but not build in it.
#[test]
fn another_users_store_is_named_with_its_owner_and_can_still_be_read() {
    // SAFETY: geteuid has no preconditions.
    assert!(
        unsafe { libc::geteuid() } == 0,
        "this test runs cmod as another user (setpriv) and must run as root (as CI does)"
    );
    let s = Sandbox::new();
    let dir = built_hello(&s);
    for p in [s.dir.path(), dir.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_cmod"))
            .arg("--store")
            .arg(s.store())
            .args(args)
            .current_dir(&dir)
            .env("HOME", "/nonexistent")
            .env_remove("CMOD_STORE")
            .env_remove("XDG_DATA_HOME")
            .output()
            .expect("setpriv")
    };
    let (code, err) = failure(&as_nobody(&["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is not writable by you (uid 65534); it belongs to uid 0"),
        "{err}"
    );
    assert!(
        err.contains("run cmod as the store's owner (uid 0)"),
        "{err}"
    );
    for args in [
        &["path-info", "hello"][..],
        &["store", "verify"],
        &["log", "hello"],
    ] {
        let out = as_nobody(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
}

/// A 2 MB store fills up during the first BMI (several MB with `-g`); a 64 kB one
/// already while cmod copies the sources in.
#[test]
fn a_full_disk_is_named_with_the_path_and_the_store_stays_consistent() {
    for (size, builder) in [("2m", true), ("64k", false)] {
        let s = Sandbox::new();
        let dir = s.copy_example("hello");
        std::fs::create_dir_all(s.store()).unwrap();
        let small = format!("mount -t tmpfs -o size={size} tmpfs \"$S\"");
        // Build, then verify in the same namespace (the tmpfs ends with it).
        let script = format!(
            "{small} && \"$0\" --store \"$S\" realise --no-link; echo \"rc=$?\" >&2; \
             exec \"$0\" --store \"$S\" store verify"
        );
        let out = Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg(format!("S=\"$1\"; {script}"))
            .arg(env!("CARGO_BIN_EXE_cmod"))
            .arg(s.store())
            .current_dir(&dir)
            .env_remove("CMOD_STORE")
            .output()
            .expect("unshare");
        let err = stderr(&out);
        assert!(err.contains("rc=2\n"), "{size}: exit 2 expected: {err}");
        assert!(err.contains("No space left on device"), "{size}: {err}");
        let store = s.store().canonicalize().unwrap();
        if builder {
            assert!(
                err.contains(&format!(
                    "it ran out of space (No space left on device) in `{}/v1/tmp`",
                    store.display()
                )),
                "{err}"
            );
        } else {
            assert!(err.contains(&format!("`{}/v1/", store.display())), "{err}");
        }
        assert!(err.contains("is full"), "the remedy: {err}");
        assert!(!err.contains("internal error"), "{err}");
        assert!(
            out.status.success() && err.contains("all intact"),
            "{size}: the store verifies after the failure: {err}"
        );
    }
}

/// `cmod store serve --stdio` whose client vanishes mid-request or sends what is not the
/// protocol ends with exit 2 saying so, not an internal error; a clean hang-up is exit 0.
#[test]
fn a_vanished_or_confused_serve_client_is_not_an_internal_error() {
    use std::io::Write;
    let s = Sandbox::new();
    let store = s.store();
    let serve = |input: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cmod"))
            .arg("--store")
            .arg(&store)
            .args(["store", "serve", "--stdio"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    let frame = |msg: &str| {
        let mut f = (msg.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(msg.as_bytes());
        f
    };
    let hello = frame(r#"{"op":"hello","protocol":1}"#);
    assert!(serve(&hello).status.success(), "a clean hang-up");
    // Announces 100 bytes, sends 3, hangs up.
    let mut cut = hello.clone();
    cut.extend_from_slice(&100u32.to_le_bytes());
    cut.extend_from_slice(b"{\"o");
    let (code, err) = failure(&serve(&cut));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the client went away in the middle of a request"),
        "{err}"
    );
    let mut garbage = hello.clone();
    garbage.extend(frame("not json"));
    let (code, err) = failure(&serve(&garbage));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not the protocol") && err.contains("not JSON"),
        "{err}"
    );
}
