//! `--remote-cache grpcs://…` against a BuildGrid that serves TLS only (a certificate from a
//! test CA, trusted through `SSL_CERT_FILE`), checks a JWT on every call, and serves only a
//! named instance: a signed hit through all three, then each of them wrong (an expired
//! token, an untrusted certificate, another instance name) is one warning naming the
//! server's answer, and a local build.

mod common;
mod servers;

#[allow(dead_code)]
#[path = "../reapi/tests/support/buildgrid.rs"]
mod buildgrid;

use std::path::Path;

use buildgrid::{jwt, BuildGrid, Secured};
use common::{Realised, Sandbox};
use servers::{cmod_env, keypair, make_certificates};

const INSTANCE: &str = "ci/main";

/// A wrong setting: what it is, the environment and instance name it runs with, and what
/// its one warning must say.
type WrongCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, &'a [&'a str]);

/// `realise --remote-cache <url> --remote-instance-name <instance>` of `dir` in `store`,
/// with `env`.
fn realise(dir: &Path, store: &Path, url: &str, instance: &str, env: &[(&str, &str)]) -> Realised {
    let args = [
        "realise",
        "--message-format",
        "json",
        "--no-link",
        "--remote-cache",
        url,
        "--remote-instance-name",
        instance,
    ];
    Realised::parse(cmod_env(dir, store, &args, env))
}

/// The warnings of a realisation about the remote cache.
fn remote_warnings(r: &Realised) -> Vec<String> {
    r.stderr()
        .lines()
        .filter(|l| l.starts_with("warning:") && l.contains("remote cache"))
        .filter(|l| !l.contains("not shared with the remote cache"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_tls_server_with_jwt_auth_and_a_named_instance_serves_the_cache_and_refuses_what_is_wrong() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let certs = s.dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (ca, cert, key) = make_certificates(&certs);
    let secret = "a secret shared with the server";
    let secret_file = certs.join("jwt.secret");
    std::fs::write(&secret_file, secret).unwrap();
    let token = format!("authorization=Bearer {}", jwt(secret, 3600));
    let expired = format!("authorization=Bearer {}", jwt(secret, -60));
    // The harness's own client must trust the test CA too.
    std::env::set_var("SSL_CERT_FILE", &ca);
    let grid = BuildGrid::start_with(Secured {
        tls: Some((cert, key)),
        jwt_secret: Some(secret_file),
        authorization: Some(token["authorization=".len()..].to_string()),
        instance: INSTANCE.to_string(),
    });
    let url = grid.url().to_string();
    assert!(url.starts_with("grpcs://localhost:"), "{url}");

    let (sk, pk) = keypair(s.dir.path(), "secure-test-1");
    let signing = s.dir.path().join("signing.toml");
    let signing_line = format!("[cache]\nsecret-key-files = [{:?}]\n", sk.to_str().unwrap());
    std::fs::write(&signing, signing_line).unwrap();
    let ca_text = ca.to_str().unwrap();
    let signing_text = signing.to_str().unwrap();

    // Published through TLS, the token and the instance: no warning, every step built.
    let published = realise(
        &dir,
        &s.dir.path().join("a"),
        &url,
        INSTANCE,
        &[
            ("SSL_CERT_FILE", ca_text),
            ("CMOD_REMOTE_HEADERS", &token),
            ("CMOD_CONFIG", signing_text),
        ],
    )
    .ok();
    assert_eq!(published.built().len(), 6, "{}", published.stderr());
    assert!(
        remote_warnings(&published).is_empty(),
        "{}",
        published.stderr()
    );

    // A fresh store that trusts the key takes every step from the server, its token from
    // `remote-headers` in the user configuration this time.
    let with_token = s.dir.path().join("token.toml");
    std::fs::write(
        &with_token,
        format!("[cache]\nremote-headers = [{token:?}]\n"),
    )
    .unwrap();
    let hit = Realised::parse(cmod_env(
        &dir,
        &s.dir.path().join("b"),
        &[
            "realise",
            "--message-format",
            "json",
            "--no-link",
            "--remote-cache",
            &url,
            "--remote-instance-name",
            INSTANCE,
            "--trusted-public-keys",
            &pk,
        ],
        &[
            ("SSL_CERT_FILE", ca_text),
            ("CMOD_CONFIG", with_token.to_str().unwrap()),
        ],
    ))
    .ok();
    assert_eq!(hit.built().len(), 0, "{}", hit.stderr());
    assert_eq!(hit.finished()["substituted"], 6, "{}", hit.stderr());

    // Each thing wrong: one warning naming the server's answer, and a local build.
    let cases: [WrongCase<'_>; 3] = [
        (
            "expired token",
            vec![
                ("SSL_CERT_FILE", ca_text),
                ("CMOD_REMOTE_HEADERS", &expired),
            ],
            INSTANCE,
            &[
                "refused this client (",
                "Unauthenticated",
                "CMOD_REMOTE_HEADERS",
            ],
        ),
        (
            // The system's roots (Debian's bundle), which do not include the test CA.
            "untrusted certificate",
            vec![
                ("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"),
                ("CMOD_REMOTE_HEADERS", &token),
            ],
            INSTANCE,
            &["is unavailable", "certificate"],
        ),
        (
            "another instance",
            vec![("SSL_CERT_FILE", ca_text), ("CMOD_REMOTE_HEADERS", &token)],
            "ci/other",
            &["ci/other"],
        ),
    ];
    // An executor that refuses the client's credentials: exit 2, with the remedy.
    let out = cmod_env(
        &dir,
        &s.dir.path().join("exec"),
        &[
            "realise",
            "--no-link",
            "--remote-executor",
            &url,
            "--remote-instance-name",
            INSTANCE,
        ],
        &[
            ("SSL_CERT_FILE", ca_text),
            ("CMOD_REMOTE_HEADERS", &expired),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("refused this client"), "{err}");
    assert!(
        err.contains("$CMOD_REMOTE_HEADERS (e.g. `authorization=Bearer"),
        "{err}"
    );
    for (i, (what, env, instance, said)) in cases.iter().enumerate() {
        let store = s.dir.path().join(format!("wrong-{i}"));
        let r = realise(&dir, &store, &url, instance, env).ok();
        assert_eq!(r.built().len(), 6, "{what}: {}", r.stderr());
        let warnings = remote_warnings(&r);
        assert_eq!(warnings.len(), 1, "{what}: {}", r.stderr());
        eprintln!("{what}: {}", warnings[0]);
        assert!(
            said.iter().all(|w| warnings[0].contains(w)),
            "{what}: {}",
            warnings[0]
        );
    }
}
