//! The escape suite: hostile builders trying to get out of the sandbox.
//!
//! Every attempt is a small C program, compiled on the host with the real `clang-19`, and
//! run as the builder through `cmod_sandbox::run` with the toolchain closure cmod uses for
//! clang (`common::clang_closure`, plus the program itself). Each program prints one line
//! per attempted operation, `label: ok` or `label: <ERRNO NAME>`, and each test asserts
//! the *specific* denial. The whole suite runs twice, in the `full` sandbox (module
//! `full`) and in the Landlock-only sandbox (module `landlock`).
//!
//! Expected differences between the modes (also in docs/SANDBOX.md):
//! * Hidden vs denied: in `full` a host path outside the sandbox simply does not exist
//!   (`ENOENT`); in `landlock` it exists but Landlock refuses it (`EACCES`).
//! * Read-only mounts vs Landlock: writes to the toolchain and to the sandbox root fail
//!   with `EROFS` in `full` (the mount refuses before Landlock is asked) and `EACCES` in
//!   `landlock`.
//! * `/tmp`: in `full` it is the build directory's private `.tmp` (the write succeeds and
//!   lands there); in `landlock` the host `/tmp` is denied.
//! * Host processes: in `full` they are not in the pid namespace (`ESRCH`/`ENOENT`); in
//!   `landlock` they are visible to the kernel but ptrace, signals (scoped, ABI >= 6) and
//!   `/proc` are denied (`EPERM`/`EACCES`).
//! * Landlock mode runs as the calling user (root here), so `chmod u+s`, `mknod` and
//!   `mount` are refused by Landlock itself (`EACCES`/`EPERM`), not by missing privileges.
//! * Known gaps of Landlock ABI < 9/10 that only the namespaces close: UDP to host
//!   sockets and `connect` to pathname unix sockets are not restricted; the
//!   `udp_to_host_socket` and `pathname_unix_socket` tests assert exactly that (and flip to
//!   denials on kernels with ABI >= 10/9).
//!
//! The time and output-size limits are in `escape_limits.rs`, name resolution in
//! `escape_dns.rs`; the harness they share is `escape/harness.rs`.

mod common;

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cmod_sandbox::{Mode, SandboxError, STORE_DIR};
use common::{Fixture, INPUT, SECRET};

#[path = "escape/harness.rs"]
#[macro_use]
mod harness;
use harness::*;

#[path = "escape/programs.rs"]
mod programs;
use programs::*;

escape_suite!(
    read_home_ssh,
    read_etc_shadow,
    read_project_dir,
    read_non_input_store_path,
    list_the_store,
    write_to_an_input,
    write_to_the_toolchain,
    write_to_host_tmp,
    write_outside_the_build_dir,
    tcp_connect_to_host_listener,
    tcp_bind,
    udp_to_host_socket,
    see_host_processes,
    read_secret_env_var,
    ptrace_the_parent,
    signal_a_host_process,
    abstract_unix_socket,
    pathname_unix_socket,
    create_a_setuid_file,
    mknod_a_device,
    mount_a_file_system,
    escape_through_dotdot,
    escape_through_a_symlink,
    leave_an_output_symlink_outside_the_store,
    hard_link_a_host_file,
    open_by_handle,
    tamper_with_a_file_input,
);

fn read_home_ssh(mode: Mode) {
    let fx = Fixture::new();
    let key = fx.root().join("home/.ssh/id_ed25519");
    let a = attempt(&fx, mode, "read_paths", READ_PATHS, &[s(&key)], |_| {});
    a.succeeded();
    a.expect("read1", pick(mode, "ENOENT", "EACCES"));
    assert!(!a.log.contains("PRIVATE KEY"));
    let l = attempt(
        &fx,
        mode,
        "list_dirs",
        LIST_DIRS,
        &[s(key.parent().unwrap())],
        |a| {
            a.build_dir = fx.root().join("build2");
            std::fs::create_dir_all(&a.build_dir).unwrap();
        },
    );
    l.expect("list1", pick(mode, "ENOENT", "EACCES"));
}

fn read_etc_shadow(mode: Mode) {
    let fx = Fixture::new();
    let a = attempt(
        &fx,
        mode,
        "read_paths",
        READ_PATHS,
        &["/etc/shadow".into(), "/etc/passwd".into()],
        |_| {},
    );
    a.succeeded();
    a.expect("read1", pick(mode, "ENOENT", "EACCES"));
    a.expect("read2", pick(mode, "ENOENT", "EACCES"));
}

fn read_project_dir(mode: Mode) {
    let fx = Fixture::new();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let a = attempt(
        &fx,
        mode,
        "read_paths",
        READ_PATHS,
        &[s(fx.root().join("project/src/main.cpp")), s(&workspace)],
        |_| {},
    );
    a.succeeded();
    a.expect("read1", pick(mode, "ENOENT", "EACCES"));
    a.expect("read2", pick(mode, "ENOENT", "EACCES"));
}

fn read_non_input_store_path(mode: Mode) {
    let fx = Fixture::new();
    let paths = vec![
        s(Path::new(STORE_DIR).join(SECRET).join("f")),
        s(fx.store().join(SECRET).join("f")),
        s(fx.seen_input(mode).join("f")),
    ];
    let a = attempt(&fx, mode, "read_paths", READ_PATHS, &paths, |_| {});
    a.succeeded();
    // /cmod/store exists only inside the full sandbox; the host store only outside it.
    a.expect("read1", "ENOENT");
    a.expect("read2", pick(mode, "ENOENT", "EACCES"));
    a.expect("read3", "ok");
}

fn list_the_store(mode: Mode) {
    let fx = Fixture::new();
    let store = pick(mode, STORE_DIR, "").to_string();
    let store = if store.is_empty() {
        s(fx.store())
    } else {
        store
    };
    let a = attempt(&fx, mode, "list_dirs", LIST_DIRS, &[store], |_| {});
    a.succeeded();
    // Inside the full sandbox /cmod/store is the step's view of the store, which holds
    // exactly its inputs (listing it shows nothing else); the host store is not readable
    // in Landlock mode. Only the named inputs can be opened.
    a.expect("list1", pick(mode, "ok", "EACCES"));
}

fn write_to_an_input(mode: Mode) {
    let fx = Fixture::new();
    let input = fx.seen_input(mode);
    let a = attempt(
        &fx,
        mode,
        "write_paths",
        WRITE_PATHS,
        &[
            format!("a:{}", s(input.join("f"))),
            format!("c:{}", s(input.join("new"))),
        ],
        |_| {},
    );
    a.succeeded();
    // full: the 0444 store file refuses uid 1000 (no capabilities after exec) before
    // the read-only bind is asked; creating needs the mount writable first (EROFS).
    // landlock: Landlock refuses both, even to root.
    a.expect("write1", "EACCES");
    a.expect("write2", pick(mode, "EROFS", "EACCES"));
    assert_eq!(
        std::fs::read_to_string(fx.store().join(INPUT).join("f")).unwrap(),
        "input!"
    );
}

/// A store path that is a single file (a BMI, say): in the full sandbox it reaches
/// `/cmod/store` as a hard link in the step's read-only view, so nothing about the shared
/// inode may change from inside; the host file is untouched and unlinked from the view
/// afterwards.
fn tamper_with_a_file_input(mode: Mode) {
    let fx = Fixture::new();
    let name = "2abcdefghijklmnopqrstuvwxyz01234-m.pcm";
    let host = fx.store().join(name);
    std::fs::write(&host, "bmi").unwrap();
    common::set_mode(&host, 0o444);
    let seen = match mode {
        Mode::Full => Path::new(STORE_DIR).join(name),
        _ => host.clone(),
    };
    let a = attempt(&fx, mode, "tamper", TAMPER, &[s(&seen)], |action| {
        action.inputs.push(name.into());
    });
    a.succeeded();
    // full: the read-only view refuses every change (EROFS; truncating the 0444 file is
    // refused to uid 1000 first) and links or moves across mounts (EXDEV).
    // landlock: Landlock refuses writes, links and moves, but has no right covering
    // metadata: a builder running as the file's owner can chmod and touch an input (a
    // known gap of that mode, docs/SANDBOX.md; only `full` closes it).
    let expected = match mode {
        Mode::Full => [
            ("chmod", "EROFS"),
            ("utimes", "EROFS"),
            ("truncate", "EACCES"),
            ("link", "EXDEV"),
            ("rename", "EXDEV"),
            ("unlink", "EROFS"),
        ],
        _ => [
            ("chmod", "ok"),
            ("utimes", "ok"),
            ("truncate", "EACCES"),
            ("link", "EXDEV"),
            ("rename", "EACCES"),
            ("unlink", "EACCES"),
        ],
    };
    for (label, errno) in expected {
        a.expect(label, errno);
    }
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&host).unwrap();
    assert_eq!(std::fs::read_to_string(&host).unwrap(), "bmi");
    if mode == Mode::Full {
        assert_eq!(meta.mode() & 0o7777, 0o444);
    }
    assert_eq!(meta.nlink(), 1, "the view's link is gone");
    assert!(!fx.build().join("stolen").exists() && !fx.build().join("moved").exists());
}

fn write_to_the_toolchain(mode: Mode) {
    let fx = Fixture::new();
    // A header of the toolchain (not a binary: writing a binary that another test is
    // executing at that moment would fail with ETXTBSY first).
    let header = PathBuf::from("/usr/lib/llvm-19/lib/clang/19/include/stddef.h");
    let a = attempt(
        &fx,
        mode,
        "write_paths",
        WRITE_PATHS,
        &[
            format!("a:{}", s(&header)),
            "c:/usr/lib/llvm-19/bin/evil".into(),
            "a:/etc/ld.so.cache".into(),
        ],
        |_| {},
    );
    a.succeeded();
    for label in ["write1", "write2", "write3"] {
        a.expect(label, pick(mode, "EROFS", "EACCES"));
    }
    assert!(!Path::new("/usr/lib/llvm-19/bin/evil").exists());
}

fn write_to_host_tmp(mode: Mode) {
    let fx = Fixture::new();
    let marker = format!("cmod-escape-{}-{}", std::process::id(), fastrand());
    let a = attempt(
        &fx,
        mode,
        "write_paths",
        WRITE_PATHS,
        &[format!("c:/tmp/{marker}")],
        |_| {},
    );
    a.succeeded();
    assert!(
        !Path::new("/tmp").join(&marker).exists(),
        "host /tmp written"
    );
    match mode {
        // /tmp inside is the build directory's private .tmp.
        Mode::Full => {
            a.expect("write1", "ok");
            assert!(fx.build().join(".tmp").join(&marker).exists());
        }
        _ => a.expect("write1", "EACCES"),
    }
}

fn write_outside_the_build_dir(mode: Mode) {
    let fx = Fixture::new();
    let a = attempt(
        &fx,
        mode,
        "write_paths",
        WRITE_PATHS,
        &[
            "c:/evil".into(),
            "c:/dev/evil".into(),
            format!("c:{}", s(fx.root().join("project/evil"))),
            format!("c:{}", s(fx.seen_build(mode).join("fine"))),
        ],
        |_| {},
    );
    a.succeeded();
    a.expect("write1", pick(mode, "EROFS", "EACCES"));
    a.expect("write2", pick(mode, "EROFS", "EACCES"));
    a.expect("write3", pick(mode, "ENOENT", "EACCES"));
    a.expect("write4", "ok");
    assert!(!fx.root().join("project/evil").exists());
    assert!(fx.build().join("fine").exists());
}

fn tcp_connect_to_host_listener(mode: Mode) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let fx = Fixture::new();
    let a = attempt(
        &fx,
        mode,
        "tcp_connect",
        TCP_CONNECT,
        &[port.to_string()],
        |_| {},
    );
    a.succeeded();
    a.expect("socket", "ok");
    // Landlock (ABI >= 4) denies the connect in both modes; without it the full
    // sandbox's own network namespace would answer ECONNREFUSED.
    a.expect("connect", "EACCES");
    assert!(
        listener.accept().is_err(),
        "the host listener got a connection"
    );
}

fn tcp_bind(mode: Mode) {
    let fx = Fixture::new();
    let a = attempt(&fx, mode, "tcp_bind", TCP_BIND, &[], |_| {});
    a.succeeded();
    a.expect("bind", "EACCES");
}

fn udp_to_host_socket(mode: Mode) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let fx = Fixture::new();
    let a = attempt(&fx, mode, "udp_send", UDP_SEND, &[port.to_string()], |_| {});
    a.succeeded();
    let mut buf = [0u8; 16];
    let received = sock.recv(&mut buf).is_ok();
    match mode {
        // The datagram goes to the sandbox's own loopback; the host never sees it.
        Mode::Full => {
            a.expect("sendto", "ok");
            assert!(!received, "the host socket received a datagram");
        }
        // Known gap: Landlock restricts UDP only from ABI 10 on.
        _ if landlock_abi() >= 10 => {
            a.expect("sendto", "EACCES");
            assert!(!received);
        }
        _ => {
            a.expect("sendto", "ok");
            assert!(
                received,
                "documented Landlock < 10 gap changed; update the docs"
            );
        }
    }
}

fn see_host_processes(mode: Mode) {
    let fx = Fixture::new();
    let a = attempt(&fx, mode, "proc_scan", PROC_SCAN, &[my_pid()], |_| {});
    a.succeeded();
    match mode {
        Mode::Full => {
            // Only the builder itself (pid 1) is there.
            assert_eq!(a.line("list_proc"), "ok 1 1", "{}", a.log);
        }
        _ => a.expect("list_proc", "EACCES"),
    }
    a.expect("host_cmdline", pick(mode, "ENOENT", "EACCES"));
    a.expect("host_environ", pick(mode, "ENOENT", "EACCES"));
}

fn read_secret_env_var(mode: Mode) {
    std::env::set_var("CMOD_ESCAPE_SECRET", "correct horse battery staple");
    let fx = Fixture::new();
    let a = attempt(
        &fx,
        mode,
        "getenv",
        GETENV,
        &["CMOD_ESCAPE_SECRET".into()],
        |_| {},
    );
    a.succeeded();
    assert_eq!(a.line("getenv"), "absent");
    // And not through the caller's /proc/<pid>/environ either.
    let p = attempt(&fx, mode, "proc_scan", PROC_SCAN, &[my_pid()], |a| {
        a.build_dir = fx.root().join("build2");
        std::fs::create_dir_all(&a.build_dir).unwrap();
    });
    p.expect("host_environ", pick(mode, "ENOENT", "EACCES"));
    assert!(!p.log.contains("battery"));
}

fn ptrace_the_parent(mode: Mode) {
    let fx = Fixture::new();
    let a = attempt(&fx, mode, "ptrace", PTRACE, &[my_pid()], |_| {});
    a.succeeded();
    // full: the caller is outside the pid namespace (and getppid() is 0 for pid 1).
    // landlock: a Landlock domain may not trace processes outside it.
    a.expect("attach_host", pick(mode, "ESRCH", "EPERM"));
    a.expect("attach_parent", pick(mode, "ESRCH", "EPERM"));
    a.expect("seize_parent", pick(mode, "ESRCH", "EPERM"));
}

fn signal_a_host_process(mode: Mode) {
    let fx = Fixture::new();
    let a = attempt(&fx, mode, "signal", SIGNAL, &[my_pid()], |_| {});
    a.succeeded();
    // full: the caller is not in the pid namespace, and the builder (pid 1) has no
    // visible parent. landlock: signals are scoped to the Landlock domain (ABI >= 6).
    a.expect("kill0", pick(mode, "ESRCH", "EPERM"));
    match mode {
        Mode::Full => assert_eq!(a.line("ppid"), "0"),
        _ => a.expect("killparent", "EPERM"),
    }
}

fn abstract_unix_socket(mode: Mode) {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("cmod-escape-{}-{}", std::process::id(), fastrand());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let fx = Fixture::new();
    let a = attempt(
        &fx,
        mode,
        "unix_connect",
        UNIX_CONNECT,
        &[format!("@{name}")],
        |_| {},
    );
    a.succeeded();
    // full: abstract socket names are per network namespace, so the name does not even
    // exist inside. landlock: connecting out of the domain is scoped (ABI >= 6).
    a.expect("connect", pick(mode, "ECONNREFUSED", "EPERM"));
    assert!(listener.accept().is_err());
}

fn pathname_unix_socket(mode: Mode) {
    let fx = Fixture::new();
    let path = fx.root().join("project/agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let a = attempt(&fx, mode, "unix_connect", UNIX_CONNECT, &[s(&path)], |_| {});
    a.succeeded();
    match mode {
        Mode::Full => {
            a.expect("connect", "ENOENT");
            assert!(listener.accept().is_err());
        }
        _ if landlock_abi() >= 9 => a.expect("connect", "EACCES"),
        // Known gap: before ABI 9 Landlock does not restrict connecting to pathname
        // sockets, so a socket the caller can reach is reachable (docs/SANDBOX.md).
        _ => {
            a.expect("connect", "ok");
            assert!(listener.accept().is_ok(), "documented gap changed");
        }
    }
}

fn create_a_setuid_file(mode: Mode) {
    let fx = Fixture::new();
    let out = s(fx.seen_build(mode).join("out/result"));
    let a = attempt(&fx, mode, "setuid", SETUID, &[out], |_| {});
    a.expect("create", "ok");
    // Allowed on one's own file, but never effective: the build dir is mounted nosuid
    // (full), no_new_privs is set (both), and the output check refuses it.
    a.expect("chmod", "ok");
    assert_eq!(a.line("mode"), "4755");
    match &a.result {
        Err(SandboxError::UnsafeOutput { reason, .. }) => assert!(reason.contains("setuid")),
        other => panic!("expected an unsafe-output error, got {other:?}\n{}", a.log),
    }
}

fn mknod_a_device(mode: Mode) {
    let fx = Fixture::new();
    let b = fx.seen_build(mode);
    let a = attempt(
        &fx,
        mode,
        "mknod",
        MKNOD,
        &[s(b.join("null")), s(b.join("disk"))],
        |_| {},
    );
    a.succeeded();
    // The build dir rule excludes MAKE_CHAR/MAKE_BLOCK, and Landlock is asked before the
    // capability check, so both modes say EACCES (full would otherwise fail with EPERM:
    // no CAP_MKNOD, and never device nodes in a user namespace).
    a.expect("mknod_char", "EACCES");
    a.expect("mknod_block", "EACCES");
    assert!(!fx.build().join("null").exists());
}

fn mount_a_file_system(mode: Mode) {
    let fx = Fixture::new();
    let target = s(fx.seen_build(mode).join(".tmp"));
    let a = attempt(&fx, mode, "mount", MOUNT, &[target], |_| {});
    a.succeeded();
    a.expect("mount", "EPERM");
    a.expect("bind", "EPERM");
    // A nested user namespace gives capabilities, but a Landlock domain may never
    // change its mount topology.
    a.expect("unshare", "ok");
    a.expect("mount_in_userns", "EPERM");
    // chroot into the build dir is permitted inside the nested user namespace (full) or
    // to root (landlock), and is harmless: it only narrows the view further.
    a.expect("chroot", "ok");
}

fn escape_through_dotdot(mode: Mode) {
    let fx = Fixture::new();
    let b = fx.seen_build(mode);
    let a = attempt(
        &fx,
        mode,
        "dotdot",
        DOTDOT,
        &[
            s(b.join("../../../../../../etc/passwd")),
            "../../../../../../etc/shadow".into(),
            s(b.join("../project/src/main.cpp")),
        ],
        |_| {},
    );
    a.succeeded();
    a.expect("read1", pick(mode, "ENOENT", "EACCES"));
    a.expect("read2", pick(mode, "ENOENT", "EACCES"));
    a.expect("read3", pick(mode, "ENOENT", "EACCES"));
    assert_eq!(a.line("cwd"), "/");
    // The top is the sandbox's own root (full) or the host root (landlock); neither can
    // be listed.
    a.expect("list_top", "EACCES");
}

fn escape_through_a_symlink(mode: Mode) {
    let fx = Fixture::new();
    let a = attempt(
        &fx,
        mode,
        "symlink",
        SYMLINK,
        &[
            s(fx.root().join("project/src/main.cpp")),
            s(fx.seen_build(mode).join("sneaky")),
        ],
        |_| {},
    );
    a.succeeded();
    a.expect("symlink", "ok");
    a.expect("read_through", pick(mode, "ENOENT", "EACCES"));
}

fn leave_an_output_symlink_outside_the_store(mode: Mode) {
    let fx = Fixture::new();
    let a = attempt(
        &fx,
        mode,
        "symlink",
        SYMLINK,
        &[
            "/etc/passwd".into(),
            s(fx.seen_build(mode).join("out/result")),
        ],
        |_| {},
    );
    a.expect("symlink", "ok");
    // The builder may create it, but `run` (check_outputs) refuses to hand it to the
    // realiser: the sandbox/realiser contract is enforced by the sandbox crate.
    match &a.result {
        Err(SandboxError::UnsafeOutput { path, reason }) => {
            assert!(
                path.ends_with("out/result") && reason.contains("symlink"),
                "{reason}"
            )
        }
        other => panic!("expected an unsafe-output error, got {other:?}\n{}", a.log),
    }
}

fn hard_link_a_host_file(mode: Mode) {
    let fx = Fixture::new();
    let b = fx.seen_build(mode);
    let a = attempt(
        &fx,
        mode,
        "hardlink",
        HARDLINK,
        &[
            s(fx.root().join("project/src/main.cpp")),
            s(b.join("out/result")),
            "/usr/lib/llvm-19/bin/clang".into(),
            s(b.join("clang")),
        ],
        |_| {},
    );
    a.succeeded();
    // full: the host file does not exist inside; the toolchain is another mount.
    // landlock: linking needs the source's rights to cover the destination's (EXDEV).
    a.expect("link_host_file", pick(mode, "ENOENT", "EXDEV"));
    a.expect("link_toolchain", "EXDEV");
    assert!(!fx.build().join("out/result").exists());
}

fn open_by_handle(mode: Mode) {
    let fx = Fixture::new();
    let b = fx.seen_build(mode);
    std::fs::write(fx.build().join("mine"), "x").unwrap();
    // full: a handle to its own file; landlock: a handle to a host file outside every
    // rule (the caller is root there, so the capability check alone would pass).
    let target = match mode {
        Mode::Full => b.join("mine"),
        _ => fx.root().join("project/src/main.cpp"),
    };
    let a = attempt(&fx, mode, "handle", HANDLE, &[s(&target), s(&b)], |_| {});
    a.succeeded();
    // Re-opening by file handle (the "shocker" container escape) needs
    // CAP_DAC_READ_SEARCH in the initial user namespace, which the full sandbox never
    // has; in landlock mode Landlock checks the opened file's path like any open.
    a.expect("name_to_handle", "ok");
    a.expect("open_by_handle", pick(mode, "EPERM", "EACCES"));
}
