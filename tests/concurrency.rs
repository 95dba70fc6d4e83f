//! Two `cmod realise` processes at once on one project and one store: per-key build
//! locks make every derivation build exactly once in total, and both see the same result.

mod common;

use std::process::{Command, Stdio};

use common::{run, Realised, Sandbox};

#[test]
fn two_concurrent_realisations_build_each_derivation_once() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let spawn = |link: &str| {
        Command::new(env!("CARGO_BIN_EXE_cmod"))
            .arg("--store")
            .arg(s.store())
            .args(["realise", "--message-format", "json", "-o", link])
            .current_dir(&dir)
            .env_remove("CMOD_STORE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cmod")
    };
    let (a, b) = (spawn("result-a"), spawn("result-b"));
    let a = Realised::parse(a.wait_with_output().unwrap()).ok();
    let b = Realised::parse(b.wait_with_output().unwrap()).ok();
    let built = |r: &Realised| r.finished()["built"].as_u64().unwrap();
    let fresh = |r: &Realised| r.finished()["fresh"].as_u64().unwrap();
    assert_eq!(
        built(&a) + built(&b),
        14,
        "each of the 14 derivations is built by exactly one process: {:?} / {:?}",
        a.built(),
        b.built()
    );
    assert_eq!(built(&a) + fresh(&a), 14);
    assert_eq!(built(&b) + fresh(&b), 14);
    eprintln!("built: {} by one, {} by the other", built(&a), built(&b));
    let mut all = a.built();
    all.extend(b.built());
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 14, "no derivation was built twice: {all:?}");
    // Both report, and link, the same outputs.
    assert_eq!(a.finished()["targets"], b.finished()["targets"]);
    assert_eq!(
        std::fs::read_link(dir.join("result-a")).unwrap(),
        std::fs::read_link(dir.join("result-b")).unwrap()
    );
    assert!(run(&dir.join("result-a"), &[]).contains("total"));
    s.assert_store_verifies(&dir);
}
