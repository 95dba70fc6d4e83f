//! `--remote-cache`: a real BuildGrid (with PostgreSQL) on loopback as a REAPI action cache
//! between fresh stores: a signed hit builds nothing and is bit-identical, an untrusted or
//! forged result is refused with a warning and built here (never registered), and an
//! unreachable server is one warning and a local build.

mod common;
mod servers;

#[allow(dead_code)]
#[path = "../reapi/tests/support/buildgrid.rs"]
mod buildgrid;

use std::path::{Path, PathBuf};
use std::process::Output;

use buildgrid::BuildGrid;
use cmod_reapi::proto::build::bazel::remote::execution::v2 as re;
use cmod_reapi::Digest;
use common::{run, Realised, Sandbox};
use servers::{cmod_env, keypair};

/// `examples/hello` with a signing key (user configuration) and a shared BuildGrid.
struct Setup {
    s: Sandbox,
    dir: PathBuf,
    grid: BuildGrid,
    /// The user configuration that signs with the key.
    signing_config: PathBuf,
    pk: String,
}

impl Setup {
    fn new() -> Setup {
        let s = Sandbox::new();
        let dir = s.copy_example("hello");
        let (sk, pk) = keypair(s.dir.path(), "remote-test-1");
        let signing_config = s.dir.path().join("signing.toml");
        std::fs::write(
            &signing_config,
            format!("[cache]\nsecret-key-files = [{:?}]\n", sk.to_str().unwrap()),
        )
        .unwrap();
        Setup {
            s,
            dir,
            // Each test has its own server: results published by one must not be read
            // (or forged) by another.
            grid: BuildGrid::start(),
            signing_config,
            pk,
        }
    }

    fn store(&self, name: &str) -> PathBuf {
        self.s.dir.path().join(name)
    }

    /// `cmod realise --message-format json --remote-cache <grid>` in a store, with `extra`.
    fn realise(&self, store: &Path, config: Option<&Path>, extra: &[&str]) -> Realised {
        let mut args = vec![
            "realise",
            "--message-format",
            "json",
            "--no-link",
            "--remote-cache",
            self.grid.url(),
        ];
        args.extend_from_slice(extra);
        let config = config.map(|c| c.to_str().unwrap().to_string());
        let env: Vec<(&str, &str)> = config.iter().map(|c| ("CMOD_CONFIG", c.as_str())).collect();
        Realised::parse(cmod_env(&self.dir, store, &args, &env))
    }

    /// Build everything in `store` with the signing key (publishing every step).
    fn publish(&self, store: &Path) -> Realised {
        let r = self.realise(store, Some(&self.signing_config), &[]).ok();
        assert_eq!(r.built().len(), 6, "{}", r.stderr());
        assert!(!r.stderr().contains("not shared"), "{}", r.stderr());
        r
    }
}

fn substituted(r: &Realised) -> Vec<String> {
    let mut v: Vec<String> = r
        .messages
        .iter()
        .filter(|m| m["reason"] == "substituted")
        .map(|m| m["name"].as_str().unwrap_or_default().to_string())
        .collect();
    v.sort();
    v
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_fresh_store_takes_every_signed_step_from_the_remote_cache_bit_identically() {
    let t = Setup::new();
    let a = t.store("a");
    let built = t.publish(&a);
    // Every step recorded the Action digest it was shared under.
    let actions = std::fs::read_dir(a.join("v1/remote/actions"))
        .unwrap()
        .count();
    assert_eq!(actions, 6);

    let b = t.store("b");
    let r = t.realise(&b, None, &["--trusted-public-keys", &t.pk]).ok();
    assert!(
        r.built().is_empty(),
        "built {:?}\n{}",
        r.built(),
        r.stderr()
    );
    assert_eq!(substituted(&r), built.built());
    assert_eq!(r.finished()["substituted"], 6);
    for m in r.messages.iter().filter(|m| m["reason"] == "substituted") {
        assert_eq!(m["from"], t.grid.url(), "{m}");
    }
    // The same bytes as the store that built them, and they run.
    assert_eq!(
        std::fs::read(r.target("hello")).unwrap(),
        std::fs::read(built.target("hello")).unwrap()
    );
    assert_eq!(run(&r.target("hello"), &[]).trim(), "Hello, modules!");
    // On a terminal-less stderr, a fetched step is `Substituted`, never `Compiling`.
    let human = cmod_env(
        &t.dir,
        &t.store("b2"),
        &[
            "realise",
            "--no-link",
            "--remote-cache",
            t.grid.url(),
            "--trusted-public-keys",
            &t.pk,
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&human.stderr);
    assert!(human.status.success(), "{err}");
    assert_eq!(err.matches("Substituted").count(), 6, "{err}");
    assert!(!err.contains("Compiling"), "{err}");
    // Rebuilding here gives the same bits, and the store verifies.
    let check = t
        .realise(&b, None, &["--check", "--trusted-public-keys", &t.pk])
        .ok();
    assert_eq!(check.finished()["checked"], 6, "{}", check.stderr());
    stdout(&cmod_env(&t.dir, &b, &["store", "verify"], &[]));
}

#[test]
fn results_signed_by_an_untrusted_key_are_built_here_with_a_warning() {
    let t = Setup::new();
    t.publish(&t.store("a"));
    let (_, other) = keypair(t.s.dir.path(), "someone-else-1");
    let c = t.store("c");
    let r = t.realise(&c, None, &["--trusted-public-keys", &other]).ok();
    assert_eq!(r.built().len(), 6, "{}", r.stderr());
    assert!(substituted(&r).is_empty());
    let err = r.stderr();
    assert!(
        err.contains("was refused: its build-trace entry is not trusted"),
        "{err}"
    );
    assert!(err.contains("building it here"), "{err}");
}

/// The Action digests store `store` recorded, with the results the server has for them.
fn published(t: &Setup, store: &Path) -> Vec<(Digest, re::ActionResult)> {
    let client = t.grid.client();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(store.join("v1/remote/actions")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let (hash, size) = text.trim().split_once('/').unwrap();
        let action = Digest::from_hex(hash, size.parse().unwrap()).unwrap();
        let result = client.get_action_result(&action).unwrap().unwrap();
        out.push((action, result));
    }
    out.sort_by_key(|(d, _)| *d);
    out
}

/// No file anywhere under `store`'s paths holds `bytes`.
fn assert_nowhere_in(store: &Path, bytes: &[u8]) {
    let mut stack = vec![store.join("v1/store")];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if meta.is_file() {
            assert_ne!(std::fs::read(&p).unwrap(), bytes, "{}", p.display());
        }
    }
}

#[test]
fn forged_action_results_are_refused_and_never_registered() {
    let t = Setup::new();
    let a = t.store("a");
    t.publish(&a);
    let originals = published(&t, &a);
    assert_eq!(originals.len(), 6);
    let client = t.grid.client();

    // An attacker with write access to the action cache points every result's output at
    // their own bytes (the signed record stays as it was).
    let evil = b"int main() { return 66; } /* forged by the test */".to_vec();
    let evil_digest = client.upload_bytes(evil.clone()).unwrap();
    for (action, result) in &originals {
        let mut forged = result.clone();
        for f in &mut forged.output_files {
            f.digest = Some(evil_digest.to_proto());
        }
        client.update_action_result(action, forged).unwrap();
    }
    let d = t.store("d");
    let r = t.realise(&d, None, &["--trusted-public-keys", &t.pk]).ok();
    assert_eq!(r.built().len(), 6, "{}", r.stderr());
    assert!(substituted(&r).is_empty());
    let err = r.stderr();
    assert_eq!(
        err.matches("but its signed metadata says").count(),
        6,
        "{err}"
    );
    assert_eq!(run(&r.target("hello"), &[]).trim(), "Hello, modules!");
    assert_nowhere_in(&d, &evil);
    stdout(&cmod_env(&t.dir, &d, &["store", "verify"], &[]));

    // A genuine, signed result replayed under another step's Action.
    for (i, (action, _)) in originals.iter().enumerate() {
        let other = originals[(i + 1) % originals.len()].1.clone();
        client.update_action_result(action, other).unwrap();
    }
    let e = t.store("e");
    let r = t.realise(&e, None, &["--trusted-public-keys", &t.pk]).ok();
    assert_eq!(r.built().len(), 6, "{}", r.stderr());
    assert!(substituted(&r).is_empty());
    let err = r.stderr();
    assert_eq!(err.matches("is for another step").count(), 6, "{err}");
    // Nothing was published by these readers (they do not sign): the replayed results
    // are still what the server has.
    let after: Vec<re::ActionResult> = published(&t, &a).into_iter().map(|(_, r)| r).collect();
    let replayed: Vec<re::ActionResult> = (0..originals.len())
        .map(|i| originals[(i + 1) % originals.len()].1.clone())
        .collect();
    assert_eq!(after, replayed);
}

#[test]
fn an_unreachable_remote_cache_is_one_warning_and_a_local_build() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    // A port nothing listens on.
    let url = common::unreachable_grpc_url();
    let out = cmod_env(
        &dir,
        &s.store(),
        &[
            "realise",
            "--message-format",
            "json",
            "--no-link",
            "--remote-cache",
            &url,
        ],
        &[],
    );
    let r = Realised::parse(out).ok();
    assert_eq!(r.built().len(), 6);
    let err = r.stderr();
    let warning = format!("remote cache `{url}` is unavailable (");
    assert_eq!(err.matches(&warning).count(), 1, "{err}");
    assert!(err.contains("building locally instead"), "{err}");
}

#[test]
fn a_malformed_remote_cache_address_is_a_usage_error_before_anything_runs() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let out = cmod_env(
        &dir,
        &s.store(),
        &[
            "realise",
            "--no-link",
            "--remote-cache",
            "http://127.0.0.1:1",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsupported scheme `http`"), "{err}");
    assert!(err.contains("grpc://HOST:PORT"), "{err}");
    assert!(
        !s.store().join("v1/store").exists()
            || std::fs::read_dir(s.store().join("v1/store"))
                .unwrap()
                .count()
                == 0
    );
}
