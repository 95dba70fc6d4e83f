//! The sharing flags reach every command that builds: `cmod test --substituters URL`
//! substitutes like `cmod realise` does (it was once accepted and ignored).

mod common;
mod servers;

use common::Sandbox;
use servers::{cmod_env, keypair, ok};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `cmod test --substituters URL` takes from the cache what it has and builds only the
/// test's own steps (the flag was once accepted and ignored).
#[test]
fn cmod_test_substitutes_from_the_caches_it_is_given() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    s.realise(&dir, &["--no-link"]).ok();
    let (sk, pk) = keypair(s.dir.path(), "test-cache-1");
    ok(s.cmod(&dir, &["store", "sign", "--key-file", sk.to_str().unwrap()]));
    let url = format!("file://{}", s.dir.path().join("cache").display());
    ok(s.cmod(&dir, &["copy", "--to", &url]));

    // (substituted count, built step names) of a passing `cmod test` in `store`.
    let test_in = |store: &str, extra: &[&str]| {
        let mut args = vec!["test", "--message-format", "json"];
        args.extend_from_slice(extra);
        let out = cmod_env(&dir, &s.dir.path().join(store), &args, &[]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}\n{}", stderr(&out));
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let finished = lines.iter().find(|m| m["reason"] == "finished").unwrap();
        let built: Vec<String> = lines
            .iter()
            .filter(|m| m["reason"] == "built")
            .map(|m| m["name"].to_string())
            .collect();
        assert!(text.contains(r#""passed":1"#), "{text}");
        (finished["substituted"].as_u64().unwrap(), built)
    };
    let (substituted, built) =
        test_in("b", &["--substituters", &url, "--trusted-public-keys", &pk]);
    assert_eq!(substituted, 11);
    assert_eq!(built.len(), 2, "only the test's object and link: {built:?}");
    // The same command without the flag builds everything: the flag made the difference.
    let (substituted, built) = test_in("c", &[]);
    assert_eq!(substituted, 0);
    assert_eq!(built.len(), 13, "{built:?}");
}
