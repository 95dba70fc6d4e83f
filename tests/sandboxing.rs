//! How realisation uses the sandbox: recorded modes, limits, and no silent fallback.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{failure, Sandbox};
use serde_json::Value;

#[test]
fn outputs_record_the_sandbox_and_modes_do_not_share_outputs() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let full = s.realise(&dir, &["--no-link"]).ok();
    let info: Value = serde_json::from_slice(
        &s.cmod(
            &dir,
            &[
                "path-info",
                "--json",
                full.target("hello").to_str().unwrap(),
            ],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(info[0]["sandbox"], "full");
    assert!(info[0]["landlock_abi"].as_u64().unwrap() >= 1);
    // A weaker mode never reuses the full sandbox's outputs: everything is built again.
    let off = s.realise(&dir, &["--no-link", "--sandbox", "off"]).ok();
    assert_eq!(off.built().len(), 6);
    let sandbox_of = |built: &common::Realised, name: &str| -> Value {
        let m = built
            .messages
            .iter()
            .find(|m| m["reason"] == "built" && m["name"] == name)
            .unwrap();
        let out = m["outputs"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        let info: Value =
            serde_json::from_slice(&s.cmod(&dir, &["path-info", "--json", &out]).stdout).unwrap();
        info[0]["sandbox"].clone()
    };
    // Outside the sandbox the BMI records host paths, so it is a different path, marked `off`.
    assert_eq!(sandbox_of(&off, "hello-0.1.0-hello.pcm"), "off");
    // The binary came out byte-identical to the full sandbox's: the same path, whose
    // metadata keeps the strongest sandbox that produced those bytes.
    assert_eq!(off.target("hello"), full.target("hello"));
    assert_eq!(sandbox_of(&off, "hello-0.1.0-hello"), "full");
    // The weaker run left the full sandbox's own outputs in place. (That full never reuses
    // weaker outputs needs them to exist first: `full_never_reuses_weaker_outputs_unless_asked`.)
    let again = s.realise(&dir, &["--no-link"]).ok();
    assert!(
        again.built().is_empty(),
        "full-sandbox outputs are still there: {:?}",
        again.built()
    );
    let landlock = s
        .realise(&dir, &["--no-link", "--sandbox", "landlock"])
        .ok();
    assert_eq!(landlock.built().len(), 6);
}

/// The sandbox mode recorded in the metadata of the output of the derivation `name` built
/// or found in `r`.
fn sandbox_of(s: &Sandbox, dir: &std::path::Path, r: &common::Realised, name: &str) -> Value {
    let m = r
        .messages
        .iter()
        .find(|m| (m["reason"] == "built" || m["reason"] == "fresh") && m["name"] == name)
        .unwrap_or_else(|| panic!("no message for {name}: {:?}", r.messages));
    let out = m["outputs"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let info: Value =
        serde_json::from_slice(&s.cmod(dir, &["path-info", "--json", &out]).stdout).unwrap();
    info[0]["sandbox"].clone()
}

/// The reverse of the test above, in fresh stores: outputs of a weaker mode exist first,
/// and the full sandbox must not reuse them unless asked to.
#[test]
fn full_never_reuses_weaker_outputs_unless_asked() {
    for weaker in ["off", "landlock"] {
        let s = Sandbox::new();
        let dir = s.copy_example("hello");
        let first = s.realise(&dir, &["--no-link", "--sandbox", weaker]).ok();
        assert_eq!(first.built().len(), 6, "{weaker}: {:?}", first.built());
        assert_eq!(
            sandbox_of(&s, &dir, &first, "hello-0.1.0-hello.pcm"),
            weaker
        );

        // Asked to, full takes the weaker outputs: nothing is built.
        let reused = s
            .realise(&dir, &["--no-link", "--accept-outputs-from", weaker])
            .ok();
        assert!(reused.built().is_empty(), "{weaker}: {:?}", reused.built());
        assert_eq!(reused.finished()["fresh"], 6, "{weaker}");
        assert_eq!(
            sandbox_of(&s, &dir, &reused, "hello-0.1.0-hello.pcm"),
            weaker,
            "a reused output keeps the mode that built it"
        );

        // Not asked (and after the request above), full builds every step itself.
        let full = s.realise(&dir, &["--no-link"]).ok();
        assert_eq!(
            full.built().len(),
            6,
            "full reused {weaker} outputs: built only {:?}",
            full.built()
        );
        assert_eq!(sandbox_of(&s, &dir, &full, "hello-0.1.0-hello.pcm"), "full");
        // The binary is byte-identical, so it is the same path; its metadata now records
        // the strongest sandbox that produced those bytes.
        assert_eq!(full.target("hello"), first.target("hello"), "{weaker}");
        assert_eq!(sandbox_of(&s, &dir, &full, "hello-0.1.0-hello"), "full");
    }
}

#[test]
fn outputs_of_another_mode_are_reused_only_on_request() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    s.realise(&dir, &["--no-link"]).ok();
    // Asked to, a weaker mode takes the full sandbox's outputs instead of building.
    let reused = s
        .realise(
            &dir,
            &[
                "--no-link",
                "--sandbox",
                "off",
                "--accept-outputs-from",
                "full",
            ],
        )
        .ok();
    assert!(reused.built().is_empty(), "{:?}", reused.built());
    assert_eq!(reused.finished()["fresh"], 6);
    // Without the request, it still builds everything itself.
    let own = s.realise(&dir, &["--no-link", "--sandbox", "off"]).ok();
    assert_eq!(own.built().len(), 6);
    let (code, err) = failure(&s.cmod(&dir, &["realise", "--accept-outputs-from", "sometimes"]));
    assert_eq!(code, 2);
    assert!(err.contains("unknown sandbox mode `sometimes`"), "{err}");
}

/// `realise` names the isolation it enforced once, in its last line (human) or the
/// `finished` message (JSON), with the Landlock ABI the outputs' metadata records.
#[test]
fn realise_reports_the_enforced_landlock_abi() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let json = s.realise(&dir, &["--no-link"]).ok();
    let sandbox = &json.finished()["sandbox"];
    assert_eq!(sandbox["mode"], "full", "{sandbox}");
    let abi = sandbox["landlock_abi"]
        .as_u64()
        .expect("Landlock on this machine");
    let info: Value = serde_json::from_slice(
        &s.cmod(
            &dir,
            &[
                "path-info",
                "--json",
                json.target("hello").to_str().unwrap(),
            ],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(info[0]["landlock_abi"].as_u64(), Some(abi));
    for (mode, want) in [
        ("full", format!("; sandbox full, Landlock ABI {abi}")),
        (
            "landlock",
            format!("; sandbox landlock, Landlock ABI {abi}"),
        ),
        ("off", "; sandbox off".to_string()),
    ] {
        // --check runs the builds (the no-op path runs no sandbox and names none).
        let out = s.cmod(
            &dir,
            &["realise", "--no-link", "--check", "--sandbox", mode],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        let finished: Vec<&str> = err.lines().filter(|l| l.contains("Finished")).collect();
        assert_eq!(finished.len(), 1, "{err}");
        assert!(finished[0].ends_with(&want), "{mode}: {err}");
        assert_eq!(
            err.matches("Landlock ABI").count(),
            usize::from(mode != "off"),
            "once: {err}"
        );
        assert!(
            !err.contains("no Landlock"),
            "this kernel has Landlock: {err}"
        );
    }
}

#[test]
fn time_and_size_limits_give_clear_errors() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let r = s.realise(&dir, &["--action-timeout", "0"]);
    assert_eq!(r.output.status.code(), Some(1), "{}", r.stderr());
    assert!(
        r.stderr().contains("exceeded its time limit of 0s"),
        "{}",
        r.stderr()
    );
    let r = s.realise(&dir, &["--max-output-size", "2000"]);
    assert_eq!(r.output.status.code(), Some(1), "{}", r.stderr());
    assert!(
        r.stderr().contains("wrote more than 2000 bytes"),
        "{}",
        r.stderr()
    );
    s.assert_store_verifies(&dir);
}

#[test]
fn unknown_sandbox_mode_is_a_usage_error() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let (code, err) = failure(&s.cmod(&dir, &["realise", "--sandbox", "partial"]));
    assert_eq!(code, 2);
    assert!(err.contains("unknown sandbox mode `partial`"), "{err}");
}

/// Inside a user namespace whose limit forbids nested user namespaces (as in many
/// containers), the full sandbox cannot be set up: realise must refuse with exit 2 and a
/// remedy, and `--sandbox=landlock` must still work.
#[test]
fn no_silent_fallback_without_user_namespaces() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let script = "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\"";
    let run = |mode: &str| {
        std::process::Command::new("unshare")
            .args([
                "--user",
                "--map-root-user",
                "sh",
                "-c",
                script,
                "sh",
                env!("CARGO_BIN_EXE_cmod"),
                "--store",
            ])
            .arg(s.store())
            .args(["realise", "--no-link", "--sandbox", mode])
            .current_dir(&dir)
            .output()
            .expect("unshare")
    };
    let out = run("full");
    let (code, err) = failure(&out);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the `full` sandbox cannot be set up"), "{err}");
    assert!(
        err.contains("--sandbox=landlock"),
        "the remedy names the weaker mode: {err}"
    );
    assert!(
        !std::fs::read_dir(s.store().join("v1/meta"))
            .map(|d| d.count() > 0)
            .unwrap_or(false),
        "nothing was built"
    );
    let out = run("landlock");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A seccomp filter (classic BPF) that fails the three Landlock system calls with
/// `ENOSYS`, as a kernel built without Landlock does, and allows every other call.
/// 444–446 are their numbers on every architecture.
fn no_landlock_filter() -> [libc::sock_filter; 6] {
    let op = |code: u32| code as u16;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: op(code),
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |nr: u32, jt: u8, jf: u8| libc::sock_filter {
        code: op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K),
        jt,
        jf,
        k: nr,
    };
    [
        // The system call number (`seccomp_data.nr`, at offset 0).
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        jeq(444, 2, 0), // landlock_create_ruleset
        jeq(445, 1, 0), // landlock_add_rule
        jeq(446, 0, 1), // landlock_restrict_self
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Run `cmod --store <store> <args>` in `dir` as on a kernel without Landlock: the
/// filter is installed before cmod starts and is inherited by everything it starts.
fn cmod_without_landlock(s: &Sandbox, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cmod"));
    cmd.arg("--store")
        .arg(s.store())
        .args(args)
        .current_dir(dir);
    let install = || {
        let mut filter = no_landlock_filter();
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_mut_ptr(),
        };
        // SAFETY: `prctl` with integer arguments and a pointer to `prog`, which lives on
        // this stack for the call (the kernel copies the filter).
        let ok = unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
                && libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) == 0
        };
        if ok {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: `install` runs in the forked child before exec and only builds an array on
    // its stack and makes two `prctl` calls: no allocation, no locks.
    unsafe { cmd.pre_exec(install) };
    cmd.output().expect("run cmod")
}

/// On a kernel without Landlock the full sandbox still builds, with its namespaces only,
/// and says so once with what to enable; the Landlock-only mode is refused (exit 2) rather
/// than run unconfined; `--sandbox off` has no Landlock to miss and warns of nothing.
#[test]
fn without_landlock_full_warns_landlock_refuses_and_off_is_quiet() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let out = cmod_without_landlock(&s, &dir, &["realise", "--no-link"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.matches("warning: this kernel has no Landlock").count(),
        1,
        "{err}"
    );
    assert!(err.contains("namespaces only"), "{err}");
    assert!(
        err.contains("CONFIG_SECURITY_LANDLOCK"),
        "the remedy: {err}"
    );
    let finished: Vec<&str> = err.lines().filter(|l| l.contains("Finished")).collect();
    assert_eq!(finished.len(), 1, "{err}");
    assert!(
        finished[0].ends_with("; sandbox full, no Landlock"),
        "{err}"
    );

    let out = cmod_without_landlock(&s, &dir, &["realise", "--no-link", "--sandbox", "landlock"]);
    let (code, err) = failure(&out);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the `landlock` sandbox cannot be set up"),
        "{err}"
    );
    assert!(
        !err.contains("warning: this kernel has no Landlock"),
        "{err}"
    );

    let out = cmod_without_landlock(&s, &dir, &["realise", "--no-link", "--sandbox", "off"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Finished"), "it built: {err}");
    assert!(!err.contains("no Landlock"), "{err}");
}
