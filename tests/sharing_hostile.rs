//! Hostile and slow binary caches: oversized answers are refused at their documented
//! bound (exit 3, naming the URL and the bound) with the realise's memory bounded while
//! the server offers hundreds of megabytes; an oversized index is ignored; a server that
//! dribbles bytes or never answers is dropped after the timeouts and the build goes on
//! locally; and concurrent substitutions into one store fetch each archive once.

mod common;
mod servers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Realised, Sandbox};
use servers::hostile::{run_measuring_rss, Answer, HostileProxy};
use servers::{cmod_env, keypair, ok, Nginx, TOKEN};

/// What a hostile server offers: 300 MB.
const OFFERED: u64 = 300 << 20;
/// What the realise may hold at its peak while it is offered.
const RSS_BOUND: u64 = 200 << 20;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// hello built, signed and pushed to a fresh nginx cache: (nginx, project dir, public key).
fn cache_with_hello(s: &Sandbox) -> (Nginx, PathBuf, String) {
    let nginx = Nginx::start(&s.dir.path().join("nginx"));
    let dir = s.copy_example("hello");
    s.realise(&dir, &["--no-link"]).ok();
    let (sk, pk) = keypair(s.dir.path(), "good-1");
    ok(s.cmod(&dir, &["store", "sign", "--key-file", sk.to_str().unwrap()]));
    ok(cmod_env(
        &dir,
        &s.store(),
        &["copy", "--to", &nginx.url("c")],
        &[("CMOD_CACHE_TOKEN", TOKEN)],
    ));
    (nginx, dir, pk)
}

/// Realise `dir` into the fresh store `store` substituting from `url`; returns the
/// output, the peak RSS of the cmod process and the time it took.
fn realise_from(
    dir: &Path,
    store: &Path,
    url: &str,
    pk: &str,
    env: &[(&str, &str)],
) -> (Output, u64, Duration) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cmod"));
    c.arg("--store")
        .arg(store)
        .args(["realise", "--message-format", "json", "--no-link"])
        .args(["--substituters", url, "--trusted-public-keys", pk])
        .current_dir(dir)
        .env_remove("CMOD_STORE")
        .env("CMOD_CONFIG", dir.join("no-user-config.toml"));
    for (k, v) in env {
        c.env(k, v);
    }
    let start = Instant::now();
    let (out, peak) = run_measuring_rss(&mut c);
    (out, peak, start.elapsed())
}

/// A proxy in front of nginx that gives `answer` to requests whose path contains
/// `needle` and passes the others through.
fn hostile_on(port: u16, needle: &'static str, answer: Answer) -> HostileProxy {
    HostileProxy::start(port, move |p| {
        if p.contains(needle) {
            answer
        } else {
            Answer::Pass
        }
    })
}

#[test]
fn oversized_answers_are_refused_at_their_bound_with_memory_bounded() {
    let s = Sandbox::new();
    let (nginx, dir, pk) = cache_with_hello(&s);
    // (what the proxy attacks, how, what the error must say)
    let cases: [(&str, Answer, &str); 4] = [
        (
            "/info/",
            Answer::Huge {
                len: OFFERED,
                announce: false,
            },
            "is larger than 1 MiB (1048576 bytes), the bound for a path's metadata",
        ),
        (
            "/trace/",
            Answer::Huge {
                len: OFFERED,
                announce: true,
            },
            "is larger than 1 MiB (1048576 bytes), the bound for a build-trace entry",
        ),
        (
            "/scan/",
            Answer::Huge {
                len: OFFERED,
                announce: false,
            },
            "is larger than 1 MiB (1048576 bytes), the bound for a scan entry",
        ),
        (
            "/nar/",
            Answer::Trailing { len: OFFERED },
            "its archive is longer than the",
        ),
    ];
    for (i, (needle, answer, message)) in cases.into_iter().enumerate() {
        let proxy = hostile_on(nginx.port, needle, answer);
        let url = proxy.url("c");
        let store = s.dir.path().join(format!("fresh-{i}"));
        let (out, peak, took) = realise_from(&dir, &store, &url, &pk, &[]);
        let err = stderr(&out);
        assert!(!proxy.hostile().is_empty(), "{needle}: never asked: {err}");
        assert!(
            peak < RSS_BOUND,
            "{needle}: peak RSS {} MiB while {} MiB were offered",
            peak >> 20,
            OFFERED >> 20
        );
        assert_eq!(out.status.code(), Some(3), "{needle}: {err}");
        assert!(err.contains(message), "{needle}: {err}");
        assert!(
            err.contains(&format!("from `{url}` was refused")),
            "{needle}: {err}"
        );
        if needle != "/nar/" {
            // The full URL of the oversized file is named.
            assert!(err.contains(&format!("`{url}{needle}")), "{needle}: {err}");
        }
        let sent = proxy.sent.load(Ordering::Relaxed);
        assert!(
            sent < OFFERED / 4,
            "{needle}: the client read on ({} MiB sent)",
            sent >> 20
        );
        eprintln!(
            "{needle}: exit 3 after {took:?}, peak RSS {} MiB, {} MiB sent of {} MiB offered",
            peak >> 20,
            sent >> 20,
            OFFERED >> 20
        );
    }
}

#[test]
fn an_oversized_index_is_ignored() {
    let s = Sandbox::new();
    let (nginx, dir, pk) = cache_with_hello(&s);
    // The index is only a hint: ignored, and everything is still substituted (the scan
    // entries asked for one by one).
    let proxy = HostileProxy::start(nginx.port, |p| {
        if p.ends_with("/cmod-cache-index") {
            Answer::Huge {
                len: OFFERED,
                announce: false,
            }
        } else {
            Answer::Pass
        }
    });
    let store = s.dir.path().join("fresh-index");
    let (out, peak, _) = realise_from(&dir, &store, &proxy.url("c"), &pk, &[]);
    assert!(!proxy.hostile().is_empty());
    let r = Realised::parse(out).ok();
    assert!(r.built().is_empty(), "{:?}", r.built());
    assert_eq!(r.finished()["substituted"], 6);
    assert_eq!(r.finished()["scans_substituted"], 3);
    assert!(peak < RSS_BOUND, "peak RSS {} MiB", peak >> 20);
}

#[test]
fn slow_caches_time_out_and_the_build_goes_on_locally() {
    let s = Sandbox::new();
    let (nginx, dir, pk) = cache_with_hello(&s);
    let timeouts = [("CMOD_HTTP_TIMEOUT", "3"), ("CMOD_HTTP_READ_TIMEOUT", "1")];
    // (what the proxy slows down, how, what the warning says)
    let cases: [(&str, Answer, &str); 3] = [
        // Within the read timeout every time, but never done: the whole-response budget.
        (
            "/info/",
            Answer::Dribble {
                len: 10_000,
                every: Duration::from_millis(200),
            },
            "did not complete within 3 s (CMOD_HTTP_TIMEOUT)",
        ),
        // Headers never come: timed out after every retry.
        ("/trace/", Answer::Stall, "(after 4 attempts)"),
        // An archive's body stops: the read timeout, not retried.
        (
            "/nar/",
            Answer::Dribble {
                len: 10_000,
                every: Duration::from_secs(5),
            },
            "the server sent nothing for the read timeout (CMOD_HTTP_READ_TIMEOUT)",
        ),
    ];
    for (i, (needle, answer, message)) in cases.into_iter().enumerate() {
        let proxy = hostile_on(nginx.port, needle, answer);
        let url = proxy.url("c");
        let store = s.dir.path().join(format!("slow-{i}"));
        let (out, _, took) = realise_from(&dir, &store, &url, &pk, &timeouts);
        let r = Realised::parse(out);
        let err = r.stderr();
        assert!(!proxy.hostile().is_empty(), "{needle}: never asked: {err}");
        let r = r.ok();
        assert!(!r.built().is_empty(), "{needle}: built locally: {err}");
        assert!(
            err.contains(&format!("substituter `{url}` is unavailable"))
                && err.contains("building locally instead")
                && err.contains(message),
            "{needle}: {err}"
        );
        assert!(took < Duration::from_secs(60), "{needle}: took {took:?}");
        eprintln!("{needle}: built locally after {took:?}");
    }
}

#[test]
fn concurrent_substitutions_into_one_store_fetch_each_archive_once() {
    let s = Sandbox::new();
    let (nginx, dir, pk) = cache_with_hello(&s);
    let before = nginx.requests().len();
    let store = s.dir.path().join("shared");
    let url = nginx.url("c");
    let runs: Vec<std::thread::JoinHandle<Output>> = (0..4)
        .map(|_| {
            let (dir, store, url, pk) = (dir.clone(), store.clone(), url.clone(), pk.clone());
            std::thread::spawn(move || {
                cmod_env(
                    &dir,
                    &store,
                    &[
                        "realise",
                        "--message-format",
                        "json",
                        "--no-link",
                        "--substituters",
                        &url,
                        "--trusted-public-keys",
                        &pk,
                    ],
                    &[],
                )
            })
        })
        .collect();
    for r in runs {
        let r = Realised::parse(r.join().unwrap()).ok();
        assert!(r.built().is_empty(), "{:?}", r.built());
    }
    let requests = nginx.requests();
    let mut per_archive: std::collections::BTreeMap<String, usize> = Default::default();
    for r in &requests[before..] {
        if let Some(path) = r.strip_prefix("GET ").filter(|p| p.contains("/nar/")) {
            *per_archive.entry(path.to_string()).or_default() += 1;
        }
    }
    let archives = std::fs::read_dir(nginx.root.join("c/nar")).unwrap().count();
    assert_eq!(per_archive.len(), archives, "{per_archive:?}");
    assert!(
        per_archive.values().all(|&n| n == 1),
        "each archive fetched once: {per_archive:?}"
    );
    ok(cmod_env(&dir, &store, &["store", "verify"], &[]));
}

/// An `ssh://` peer that keeps its connection open but never answers is given up after
/// `$CMOD_SSH_READ_TIMEOUT`: a warning, and the build goes on locally.
#[test]
fn a_silent_ssh_peer_times_out_and_the_build_goes_on_locally() {
    use std::os::unix::fs::PermissionsExt;
    let s = Sandbox::new();
    let sshd = servers::Sshd::start(&s.dir.path().join("sshd"));
    let dir = s.copy_example("hello");
    let (_, pk) = keypair(s.dir.path(), "good-1");
    // Reads what cmod sends and never says a word; ends when the connection closes.
    let silent = s.dir.path().join("silent-cmod");
    std::fs::write(&silent, "#!/bin/sh\nexec cat >/dev/null\n").unwrap();
    std::fs::set_permissions(&silent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let url = format!(
        "ssh://cmodtest?remote-program={}",
        silent
            .display()
            .to_string()
            .replace('%', "%25")
            .replace(' ', "%20")
    );
    let opts = sshd.ssh_opts();
    let env = [
        ("CMOD_SSHOPTS", opts.as_str()),
        ("CMOD_SSH_READ_TIMEOUT", "2"),
    ];
    let store = s.dir.path().join("fresh");
    let (out, _, took) = realise_from(&dir, &store, &url, &pk, &env);
    let r = Realised::parse(out).ok();
    let err = r.stderr();
    assert_eq!(r.built().len(), 6, "built locally: {err}");
    assert!(
        err.contains("substituter `ssh://cmodtest")
            && err.contains("the remote sent nothing for 2 s ($CMOD_SSH_READ_TIMEOUT)"),
        "{err}"
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
}
