//! Sharing a store: round trips in both directions over file://, ssh:// (a real OpenSSH
//! sshd on loopback) and http:// (a real nginx with WebDAV PUT), and fresh stores that
//! substitute a whole example from each kind of cache and build nothing.

mod common;
mod servers;

use std::path::{Path, PathBuf};

use common::{run, Realised, Sandbox};
use servers::{cmod_env, keypair, ok, valid_paths, Nginx, Sshd, TOKEN};

/// `examples/hello` realised in store `a` and signed with a fresh key.
struct Signed {
    s: Sandbox,
    dir: PathBuf,
    pk: String,
}

impl Signed {
    fn new() -> Signed {
        let s = Sandbox::new();
        let dir = s.copy_example("hello");
        let r = s.realise(&dir, &["--no-link"]).ok();
        assert_eq!(r.built().len(), 6);
        let (sk, pk) = keypair(s.dir.path(), "test-cache-1");
        let signed = ok(s
            .cmod(&dir, &["store", "sign", "--key-file", sk.to_str().unwrap()])
            .clone());
        assert!(signed.is_empty());
        Signed { s, dir, pk }
    }

    fn store(&self, name: &str) -> PathBuf {
        self.s.dir.path().join(name)
    }

    fn cmod(&self, store: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        cmod_env(&self.dir, store, args, env)
    }

    /// Realise in a fresh `store` substituting from `url`; it must build nothing.
    fn substitute(&self, store: &Path, url: &str, env: &[(&str, &str)]) -> Realised {
        let out = self.cmod(
            store,
            &[
                "realise",
                "--message-format",
                "json",
                "--no-link",
                "--substituters",
                url,
                "--trusted-public-keys",
                &self.pk,
            ],
            env,
        );
        let r = Realised::parse(out).ok();
        assert!(
            r.built().is_empty(),
            "nothing may be built: {:?}",
            r.built()
        );
        let subs: Vec<&serde_json::Value> = r
            .messages
            .iter()
            .filter(|m| m["reason"] == "substituted")
            .collect();
        assert_eq!(subs.len(), 6, "{:?}", r.messages);
        assert!(subs.iter().all(|m| m["from"] == url), "{subs:?}");
        assert_eq!(r.finished()["substituted"], 6);
        // Binary caches serve the signed scan results too, so nothing is scanned here;
        // ssh:// stores do not, so the three units are scanned locally.
        let (scanned, from_cache) = if url.starts_with("ssh://") {
            (3, 0)
        } else {
            (0, 3)
        };
        assert_eq!(r.finished()["scanned"], scanned, "{:?}", r.finished());
        assert_eq!(r.finished()["scans_substituted"], from_cache);
        assert_eq!(run(&r.target("hello"), &[]), "Hello, modules!\n");
        r
    }

    /// After copying the targets in, a realise finds everything fresh.
    fn all_fresh(&self, store: &Path) {
        let out = self.cmod(
            store,
            &["realise", "--message-format", "json", "--no-link"],
            &[],
        );
        let r = Realised::parse(out).ok();
        assert!(r.built().is_empty(), "{:?}", r.built());
        assert_eq!(r.finished()["fresh"], 6);
        assert_eq!(run(&r.target("hello"), &[]), "Hello, modules!\n");
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn file_cache_round_trip_and_substitution() {
    let t = Signed::new();
    let a = t.s.store();
    let cache = t.s.dir.path().join("cache");
    let url = format!("file://{}", cache.display());
    let out = t.cmod(&a, &["copy", "--to", &url], &[]);
    let err = stderr(&out);
    ok(out);
    assert!(
        err.contains("Copied 6 of 6 path(s) and 6 build-trace entries"),
        "{err}"
    );
    for f in ["cmod-cache-info", "info", "nar", "trace"] {
        assert!(cache.join(f).exists(), "{f}");
    }
    // Nothing left to send: one batched query, no upload.
    let err = stderr(&t.cmod(&a, &["copy", "--to", &url], &[]));
    assert!(err.contains("Copied 0 of 6 path(s)"), "{err}");

    // From the cache, by target: every output and trace entry arrives, so nothing builds.
    let b = t.store("b");
    ok(t.cmod(
        &b,
        &["copy", "--from", &url, "--trusted-public-keys", &t.pk],
        &[],
    ));
    t.all_fresh(&b);
    ok(t.cmod(&b, &["store", "verify", "--check-contents"], &[]));
    // The outputs came signed; the sources and derivations written locally are not:
    // an integrity failure (exit 3), each unsigned path listed as `untrusted:`.
    let out = t.cmod(
        &b,
        &[
            "store",
            "verify",
            "--sigs-needed",
            "1",
            "--trusted-public-keys",
            &t.pk,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("0 corrupt"), "{err}");
    assert!(
        err.contains("main.cpp: 0 of 1 required signature(s)"),
        "{err}"
    );
    assert!(
        !err.contains("-hello-0.1.0-hello: 0 of"),
        "the substituted outputs are signed: {err}"
    );

    // From the cache, by path.
    let exe = std::fs::read_link(t.dir.join("result")).ok();
    assert!(exe.is_none(), "realised with --no-link");
    let info: serde_json::Value =
        serde_json::from_str(&ok(t.cmod(&a, &["path-info", "--json", "hello"], &[]))).unwrap();
    let exe = info[0]["location"].as_str().unwrap().to_string();
    let name = Path::new(&exe)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let c = t.store("c");
    ok(t.cmod(
        &c,
        &[
            "copy",
            "--from",
            &url,
            "--trusted-public-keys",
            &t.pk,
            &name,
        ],
        &[],
    ));
    assert_eq!(valid_paths(&c).len(), 1);

    // Substitution, with flags and with the user configuration file.
    t.substitute(&t.store("d"), &url, &[]);
    let cfg = t.s.dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[cache]\nsubstituters = [\"{url}\"]\ntrusted-public-keys = [\"{}\"]\n",
            t.pk
        ),
    )
    .unwrap();
    let e = t.store("e");
    let out = t.cmod(
        &e,
        &["realise", "--message-format", "json", "--no-link"],
        &[("CMOD_CONFIG", cfg.to_str().unwrap())],
    );
    let r = Realised::parse(out).ok();
    assert!(r.built().is_empty());
    assert_eq!(r.finished()["substituted"], 6);

    // And with `[cache]` in the package's own cmod.toml (no flags, no user configuration).
    let manifest = t.dir.join("cmod.toml");
    let original = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        format!(
            "{original}\n[cache]\nsubstituters = [\"{url}\"]\ntrusted-public-keys = [\"{}\"]\n",
            t.pk
        ),
    )
    .unwrap();
    let out = t.cmod(
        &t.store("f"),
        &["realise", "--message-format", "json", "--no-link"],
        &[],
    );
    let r = Realised::parse(out).ok();
    assert!(r.built().is_empty(), "{:?}", r.built());
    assert_eq!(r.finished()["substituted"], 6);

    // A signing key in a shared manifest is refused, pointing at the user configuration.
    std::fs::write(
        &manifest,
        format!("{original}\n[cache]\nsecret-key-files = [\"sk\"]\n"),
    )
    .unwrap();
    let out = t.cmod(&t.store("g"), &["realise", "--no-link"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("secret-key-files") && err.contains("cmod.toml"),
        "{err}"
    );
    assert!(
        valid_paths(&t.store("g")).is_empty(),
        "nothing may be built: {err}"
    );

    // Nor may a shared manifest switch signature checks off: a clone naming its own cache
    // with `require-sigs = false` is refused at the line, and nothing is substituted.
    let line = original.lines().count() + 4;
    std::fs::write(
        &manifest,
        format!("{original}\n[cache]\nsubstituters = [\"{url}\"]\nrequire-sigs = false\n"),
    )
    .unwrap();
    let out = t.cmod(&t.store("h"), &["realise", "--no-link"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cmod.toml:{line}:16:"))
            && err.contains("`require-sigs = false` is not allowed in cmod.toml"),
        "{err}"
    );
    assert!(valid_paths(&t.store("h")).is_empty(), "{err}");
}

#[test]
fn ssh_round_trip_and_substitution() {
    let t = Signed::new();
    let sshd = Sshd::start(&t.s.dir.path().join("sshd"));
    let opts = sshd.ssh_opts();
    let env = [("CMOD_SSHOPTS", opts.as_str())];
    let remote = t.s.dir.path().join("remote-store");
    let url = sshd.url(&remote);
    let out = t.cmod(&t.s.store(), &["copy", "--to", &url], &env);
    let err = stderr(&out);
    ok(out);
    assert!(
        err.contains("Copied 6 of 6 path(s) and 6 build-trace entries"),
        "{err}"
    );
    assert_eq!(valid_paths(&remote).len(), 6);
    ok(cmod_env(&t.dir, &remote, &["store", "verify"], &[]));
    let err = stderr(&t.cmod(&t.s.store(), &["copy", "--to", &url], &env));
    assert!(err.contains("Copied 0 of 6 path(s)"), "{err}");

    let b = t.store("b");
    ok(t.cmod(
        &b,
        &["copy", "--from", &url, "--trusted-public-keys", &t.pk],
        &env,
    ));
    t.all_fresh(&b);
    t.substitute(&t.store("c"), &url, &env);

    // A remote that cannot be reached is a warning, and the build happens locally.
    let dead = format!("ssh://cmodtest:1?remote-store={}", remote.display());
    let out = t.cmod(
        &t.store("d"),
        &[
            "realise",
            "--message-format",
            "json",
            "--no-link",
            "--substituters",
            &dead,
            "--trusted-public-keys",
            &t.pk,
        ],
        &env,
    );
    let r = Realised::parse(out).ok();
    assert_eq!(r.built().len(), 6);
    assert!(
        r.stderr()
            .contains("warning: substituter `ssh://cmodtest:1"),
        "{}",
        r.stderr()
    );
}

#[test]
fn http_round_trip_and_substitution() {
    let t = Signed::new();
    let nginx = Nginx::start(&t.s.dir.path().join("nginx"));
    let url = nginx.url("cache");
    // PUT needs the bearer token.
    let out = t.cmod(&t.s.store(), &["copy", "--to", &url], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("HTTP 401"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("CMOD_CACHE_TOKEN"),
        "{}",
        stderr(&out)
    );
    let env = [("CMOD_CACHE_TOKEN", TOKEN)];
    let out = t.cmod(&t.s.store(), &["copy", "--to", &url, "-j", "8"], &env);
    let err = stderr(&out);
    ok(out);
    assert!(
        err.contains("Copied 6 of 6 path(s) and 6 build-trace entries"),
        "{err}"
    );
    assert!(nginx.root.join("cache/cmod-cache-info").is_file());
    assert!(nginx.root.join("cache/cmod-cache-index").is_file());
    // The no-op copy asks once: one GET of the index, no request per path.
    let before = nginx.requests().len();
    let err = stderr(&t.cmod(&t.s.store(), &["copy", "--to", &url], &env));
    assert!(err.contains("Copied 0 of 6 path(s)"), "{err}");
    let asked: Vec<String> = nginx.requests()[before..].to_vec();
    assert_eq!(
        asked,
        vec!["GET /cache/cmod-cache-index".to_string()],
        "{asked:?}"
    );

    // Reading needs no token.
    let b = t.store("b");
    ok(t.cmod(
        &b,
        &["copy", "--from", &url, "--trusted-public-keys", &t.pk],
        &[],
    ));
    t.all_fresh(&b);
    t.substitute(&t.store("c"), &url, &[]);

    // Connections that break half-way through a download are retried: everything is
    // still substituted (a proxy in front of nginx cuts the first two archive bodies).
    let flaky = servers::FlakyProxy::start(nginx.port, 2);
    t.substitute(&t.store("c2"), &flaky.url("cache"), &[]);
    assert!(
        flaky.cuts_left.load(std::sync::atomic::Ordering::SeqCst) <= 0,
        "no download was cut"
    );
    // A download that breaks every time is a transport failure, not an integrity one:
    // a warning naming it, and a local build.
    let broken = servers::FlakyProxy::start(nginx.port, i64::MAX);
    let out = t.cmod(
        &t.store("c3"),
        &[
            "realise",
            "--message-format",
            "json",
            "--no-link",
            "--substituters",
            &broken.url("cache"),
            "--trusted-public-keys",
            &t.pk,
        ],
        &[],
    );
    let r = Realised::parse(out).ok();
    assert_eq!(r.built().len(), 6);
    assert!(
        r.stderr()
            .contains("the connection broke during the download"),
        "{}",
        r.stderr()
    );

    // Nothing listens here: a warning and a local build.
    let dead = format!("http://127.0.0.1:{}/cache", servers::free_port());
    let out = t.cmod(
        &t.store("d"),
        &[
            "realise",
            "--message-format",
            "json",
            "--no-link",
            "--substituters",
            &dead,
        ],
        &[],
    );
    let r = Realised::parse(out).ok();
    assert_eq!(r.built().len(), 6);
    assert!(r.stderr().contains("is unavailable"), "{}", r.stderr());

    // A server that drops every connection: asked once (for the scan entries), reported
    // once, and not asked again by the substitution walk.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    let dropping = format!("http://127.0.0.1:{port}/cache");
    let out = t.cmod(
        &t.store("e"),
        &[
            "realise",
            "--message-format",
            "json",
            "--no-link",
            "--substituters",
            &dropping,
        ],
        &[],
    );
    let r = Realised::parse(out).ok();
    assert_eq!(r.built().len(), 6);
    assert_eq!(
        r.stderr().matches("is unavailable").count(),
        1,
        "{}",
        r.stderr()
    );
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// HTTPS through reqwest + rustls against nginx with a certificate from a CA made by the
/// test: refused (and nothing written) until the CA is trusted through `SSL_CERT_FILE`,
/// then a round trip and a substitution that builds nothing.
#[test]
fn https_round_trip_trusts_only_configured_certificates() {
    let t = Signed::new();
    let nginx = Nginx::start_tls(&t.s.dir.path().join("nginx-tls"));
    let url = nginx.url("cache");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let out = t.cmod(
        &t.s.store(),
        &["copy", "--to", &url],
        &[("CMOD_CACHE_TOKEN", TOKEN)],
    );
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("certificate"), "{err}");
    assert!(
        err.contains("SSL_CERT_FILE"),
        "the error names the fix: {err}"
    );
    assert!(!err.contains("after 4 attempts"), "not retried: {err}");
    assert!(!nginx.root.join("cache").exists(), "something was written");

    let ca = nginx.ca.clone().unwrap();
    let env = [
        ("CMOD_CACHE_TOKEN", TOKEN),
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
    ];
    let err = stderr(&t.cmod(&t.s.store(), &["copy", "--to", &url, "-j", "4"], &env));
    assert!(
        err.contains("Copied 6 of 6 path(s) and 6 build-trace entries"),
        "{err}"
    );
    assert!(nginx.root.join("cache/cmod-cache-info").is_file());
    t.substitute(&t.store("tls"), &url, &env[1..]);
}

#[test]
fn builds_are_signed_as_they_are_built_with_configured_secret_keys() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let (sk, pk) = keypair(s.dir.path(), "ci-1");
    let cfg = s.dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!("[cache]\nsecret-key-files = [\"{}\"]\n", sk.display()),
    )
    .unwrap();
    let env = [("CMOD_CONFIG", cfg.to_str().unwrap())];
    let a = s.store();
    let out = cmod_env(
        &dir,
        &a,
        &["realise", "--message-format", "json", "--no-link"],
        &env,
    );
    let r = Realised::parse(out).ok();
    assert_eq!(r.built().len(), 6);
    let info: serde_json::Value = serde_json::from_str(&ok(cmod_env(
        &dir,
        &a,
        &["path-info", "--json", "hello"],
        &env,
    )))
    .unwrap();
    let sigs = info[0]["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 1, "{info}");
    assert!(sigs[0].as_str().unwrap().starts_with("ci-1:"));
    // No `store sign` needed: the cache is usable as it is.
    let url = format!("file://{}", s.dir.path().join("cache").display());
    ok(cmod_env(&dir, &a, &["copy", "--to", &url], &env));
    let fresh = s.dir.path().join("fresh");
    let out = cmod_env(
        &dir,
        &fresh,
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
    );
    let r = Realised::parse(out).ok();
    assert!(r.built().is_empty());
    assert_eq!(r.finished()["substituted"], 6);
    // The scans were signed as they were made too, so the fresh store scanned nothing.
    assert_eq!(r.finished()["scans_substituted"], 3, "{:?}", r.finished());
    assert_eq!(r.finished()["scanned"], 0);
    assert_eq!(std::fs::read_dir(a.join("v1/scans")).unwrap().count(), 3);
    // A missing key file is a usage error that names it.
    std::fs::write(&cfg, "[cache]\nsecret-key-files = [\"/nonexistent/key\"]\n").unwrap();
    let out = cmod_env(&dir, &a, &["realise", "--no-link"], &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn copy_from_targets_fetches_the_build_trace_of_the_chosen_sandbox_mode() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let r = s.realise(&dir, &["--no-link", "--sandbox", "off"]).ok();
    assert_eq!(r.built().len(), 6);
    let (sk, pk) = keypair(s.dir.path(), "test-cache-1");
    ok(
        s.cmod(&dir, &["store", "sign", "--key-file", sk.to_str().unwrap()])
            .clone(),
    );
    let cache = s.dir.path().join("cache");
    let url = format!("file://{}", cache.display());
    ok(cmod_env(&dir, &s.store(), &["copy", "--to", &url], &[]));

    // The cache holds outputs built without the sandbox; a full-sandbox copy finds none.
    let b = s.dir.path().join("b");
    let from = |mode: &str| {
        let out = cmod_env(
            &dir,
            &b,
            &[
                "copy",
                "--from",
                &url,
                "--trusted-public-keys",
                &pk,
                "--sandbox",
                mode,
            ],
            &[],
        );
        let err = stderr(&out);
        ok(out);
        err
    };
    let err = from("full");
    assert!(err.contains("the outputs of 0 of 6 derivation(s)"), "{err}");
    let err = from("off");
    assert!(err.contains("the outputs of 6 of 6 derivation(s)"), "{err}");
    let out = cmod_env(
        &dir,
        &b,
        &[
            "realise",
            "--message-format",
            "json",
            "--no-link",
            "--sandbox",
            "off",
        ],
        &[],
    );
    let r = Realised::parse(out).ok();
    assert!(r.built().is_empty(), "{:?}", r.built());
    assert_eq!(run(&r.target("hello"), &[]), "Hello, modules!\n");
    let out = cmod_env(
        &dir,
        &b,
        &["copy", "--from", &url, "--sandbox", "none"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown sandbox mode `none`"),
        "{}",
        stderr(&out)
    );
    // A target that does not exist is named, with the ones that do.
    let out = cmod_env(&dir, &b, &["copy", "--from", &url, "nosuch"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("no target `nosuch`")
            && err.contains("the targets are: hello/hello, hello/libhello.a"),
        "{err}"
    );
}

#[test]
fn store_sign_signs_the_named_paths_and_with_r_their_closure() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    s.realise(&dir, &["--no-link"]).ok();
    let (sk, pk) = keypair(s.dir.path(), "signer-1");
    let drvs: serde_json::Value =
        serde_json::from_str(&ok(s.cmod(&dir, &["eval", "--json"]).clone())).unwrap();
    let link_drv = drvs
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.ends_with("-hello-0.1.0-hello.drv"))
        .unwrap()
        .clone();
    let sign = |extra: &[&str]| {
        let mut args = vec!["store", "sign", "--key-file", sk.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(&link_drv);
        let out = s.cmod(&dir, &args);
        let err = stderr(&out);
        ok(out);
        err
    };
    let unsigned = || {
        let out = s.cmod(
            &dir,
            &[
                "store",
                "verify",
                "--sigs-needed",
                "1",
                "--trusted-public-keys",
                &pk,
            ],
        );
        stderr(&out)
    };
    let err = sign(&[]);
    assert!(err.contains("Signed 1 path(s) with `signer-1`"), "{err}");
    let report = unsigned();
    assert!(!report.contains("-hello-0.1.0-hello.drv: 0 of"), "{report}");
    assert!(
        report.contains("main.cpp: 0 of 1 required signature(s)"),
        "{report}"
    );
    let err = sign(&["-r"]);
    let n: usize = err
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(n > 5, "the link derivation's closure: {err}");
    let report = unsigned();
    assert!(!report.contains("main.cpp: 0 of"), "{report}");
}

#[test]
fn copy_to_relays_a_cache_without_building_and_offline_asks_no_substituter() {
    let t = Signed::new();
    let cache_a = t.s.dir.path().join("cache-a");
    let url_a = format!("file://{}", cache_a.display());
    ok(t.cmod(&t.s.store(), &["copy", "--to", &url_a], &[]));

    // A fresh store has nothing to push, and says where to get it from.
    let b = t.store("b");
    let cache_b = t.s.dir.path().join("cache-b");
    let url_b = format!("file://{}", cache_b.display());
    let out = t.cmod(&b, &["copy", "--to", &url_b], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("has not been realised with the current sources")
            && err.contains("--substituters URL"),
        "{err}"
    );
    assert!(!cache_b.exists(), "nothing may be written: {err}");

    // Trusting the wrong key: the cache's trace entries are not used (a warning, as Nix
    // ignores unsigned substitutes), so what is missing stays missing (exit 2), and
    // nothing is registered or pushed.
    let (_, other) = keypair(t.s.dir.path(), "other-1");
    let out = t.cmod(
        &b,
        &[
            "copy",
            "--to",
            &url_b,
            "--substituters",
            &url_a,
            "--trusted-public-keys",
            &other,
        ],
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("from `{url_a}` was not used"))
            && err.contains("no signature by a trusted key (signed by: test-cache-1)")
            && err.contains("has not been realised with the current sources"),
        "{err}"
    );
    assert!(!cache_b.exists(), "{err}");
    // Registered build outputs (sources and derivations are written by evaluation).
    let outputs = |store: &Path| {
        valid_paths(store)
            .into_iter()
            .filter(|n| {
                let meta = std::fs::read_to_string(store.join("v1/meta").join(n)).unwrap();
                serde_json::from_str::<serde_json::Value>(&meta).unwrap()["kind"] == "output"
            })
            .count()
    };
    assert_eq!(outputs(&b), 0, "{:?}", valid_paths(&b));

    // An unreachable substituter is a warning; what is missing is then still missing.
    let gone = format!("file://{}", t.s.dir.path().join("no-such-cache").display());
    let out = t.cmod(&b, &["copy", "--to", &url_b, "--substituters", &gone], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("warning:") && err.contains(&gone), "{err}");
    assert!(!cache_b.exists(), "{err}");

    // Relayed: substituted from cache a (verified), pushed to cache b, nothing built.
    let out = t.cmod(
        &b,
        &[
            "copy",
            "--to",
            &url_b,
            "--substituters",
            &url_a,
            "--trusted-public-keys",
            &t.pk,
        ],
        &[],
    );
    let err = stderr(&out);
    ok(out);
    assert!(
        err.contains("Copied 6 of 6 path(s) and 6 build-trace entries"),
        "{err}"
    );
    t.all_fresh(&b);
    // The relay keeps the builder's signatures: a third store substitutes from cache b.
    t.substitute(&t.store("c"), &url_b, &[]);

    // By store path too: the missing path is fetched, then pushed.
    let info: serde_json::Value = serde_json::from_str(&ok(t.cmod(
        &t.s.store(),
        &["path-info", "--json", "hello"],
        &[],
    )))
    .unwrap();
    let exe = info[0]["location"].as_str().unwrap();
    let name = Path::new(exe).file_name().unwrap().to_str().unwrap();
    let d = t.store("d");
    let cache_d = t.s.dir.path().join("cache-d");
    let url_d = format!("file://{}", cache_d.display());
    let out = t.cmod(
        &d,
        &[
            "copy",
            "--to",
            &url_d,
            "--substituters",
            &url_a,
            "--trusted-public-keys",
            &t.pk,
            name,
        ],
        &[],
    );
    let err = stderr(&out);
    ok(out);
    assert!(err.contains("Copied 1 of 1 path(s)"), "{err}");
    assert_eq!(outputs(&d), 1, "{:?}", valid_paths(&d));

    // `--offline` fetches nothing: a realise builds everything itself.
    let out = t.cmod(
        &t.store("e"),
        &[
            "realise",
            "--offline",
            "--message-format",
            "json",
            "--no-link",
            "--substituters",
            &url_a,
            "--trusted-public-keys",
            &t.pk,
        ],
        &[],
    );
    let r = Realised::parse(out).ok();
    assert_eq!(r.built().len(), 6, "{:?}", r.messages);
    assert_eq!(r.finished()["substituted"], 0);
}
