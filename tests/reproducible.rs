//! Bit-identical outputs (every example, store roots of different lengths, -j1 and -jN,
//! different build orders), `realise --check`, and lockfile pinning with `--locked`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{cmod_in, failure, Sandbox};

/// Output name → content hash of every output path in `store` (read from metadata, then
/// re-hashed by `store verify`).
fn output_hashes(store: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(store.join("v1/meta")).unwrap() {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
        if v["kind"] == "output" {
            let path = v["path"].as_str().unwrap();
            out.insert(
                path[33..].to_string(),
                v["content_hash"].as_str().unwrap().to_string(),
            );
        }
    }
    out
}

fn realise(dir: &Path, store: &Path, args: &[&str]) {
    let mut all = vec!["realise", "--no-link"];
    all.extend_from_slice(args);
    let out = cmod_in(dir, store, &all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_example_is_bit_identical_across_store_roots_jobs_and_orders() {
    let s = Sandbox::new();
    s.copy_example("hello");
    s.copy_example("library");
    s.copy_example("path-deps");
    let root = s.dir.path();
    let short = root.join("s");
    let long = root.join("a/much/longer/store/root/than/the/other/one");

    // Store 1: -j1, whole targets.
    for ex in ["hello", "library", "path-deps/app"] {
        realise(&root.join(ex), &short, &["-j1"]);
    }
    // Store 2: -j4 and another order: libraries before binaries, dependencies first.
    realise(&root.join("library"), &long, &["-j4", "geometry"]);
    realise(&root.join("library"), &long, &["-j4", "shapes"]);
    realise(&root.join("path-deps/units"), &long, &["-j4"]);
    realise(&root.join("path-deps/report"), &long, &["-j4"]);
    realise(&root.join("path-deps/app"), &long, &["-j4"]);
    realise(&root.join("hello"), &long, &["-j4", "hello"]);
    realise(&root.join("hello"), &long, &["-j4"]);

    let (a, b) = (output_hashes(&short), output_hashes(&long));
    // Every .pcm, .o, archive and binary, by name, with its content hash.
    assert!(a.keys().any(|k| k.ends_with(".pcm")) && a.keys().any(|k| k.ends_with(".a")));
    assert_eq!(a.len(), 6 + 14 + 9, "{a:#?}");
    assert_eq!(
        a, b,
        "outputs must be bit-identical whatever the store root, -j or order"
    );
    for store in [&short, &long] {
        let v = cmod_in(root, store, &["store", "verify"]);
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    }
}

#[test]
fn check_rebuilds_everything_and_passes_for_a_reproducible_build() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    s.realise(&dir, &[]).ok();
    let r = s.realise(&dir, &["--check"]).ok();
    assert!(r.built().is_empty());
    assert_eq!(r.finished()["checked"], 14);
    assert_eq!(r.finished()["differing"], 0);
    let checked: Vec<&serde_json::Value> = r
        .messages
        .iter()
        .filter(|m| m["reason"] == "checked")
        .collect();
    assert_eq!(checked.len(), 14);
    assert!(checked.iter().all(|m| m["identical"] == true));
}

#[test]
fn check_catches_a_nondeterministic_builder() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    // lld's random build id embeds fresh random bytes into every link.
    let manifest = std::fs::read_to_string(dir.join("cmod.toml")).unwrap();
    std::fs::write(
        dir.join("cmod.toml"),
        format!("{manifest}\n[build]\nldflags = [\"-Wl,--build-id=uuid\"]\n"),
    )
    .unwrap();
    let first = s.realise(&dir, &[]).ok();
    let exe = first.target("hello");
    let r = s.realise(&dir, &["--check", "--keep-failed"]);
    assert_eq!(r.output.status.code(), Some(3), "{}", r.stderr());
    assert_eq!(r.finished()["success"], false);
    assert_eq!(r.finished()["differing"], 1);
    let bad: Vec<&serde_json::Value> = r
        .messages
        .iter()
        .filter(|m| m["reason"] == "checked" && m["identical"] == false)
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0]["name"], "hello-0.1.0-hello");
    let d = &bad[0]["differences"][0];
    assert_eq!(d["stored"], exe.to_str().unwrap());
    assert_eq!(d["stored_size"], d["rebuilt_size"]);
    assert!(d["first_difference"].as_u64().unwrap() > 0);
    let kept = format!("{}.check", exe.display());
    assert_eq!(d["kept"], kept.as_str());
    assert!(
        Path::new(&kept).exists(),
        "--keep-failed keeps the rebuilt copy beside the original"
    );
    let err = r.stderr();
    assert!(err.contains("the build is not reproducible"), "{err}");
    assert!(
        err.contains(&format!("{}: stored ", exe.display()))
            && err.contains("first difference at byte"),
        "{err}"
    );
    // The stored output is still the one in use.
    assert!(exe.exists());
}

#[test]
fn locked_outputs_and_dependencies_are_verified() {
    let s = Sandbox::new();
    s.copy_example("path-deps");
    let app = s.dir.path().join("path-deps/app");

    // No lock yet: --locked refuses to invent one.
    let (code, err) = failure(&s.cmod(&app, &["realise", "--locked"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not exist"), "{err}");

    let out = s.cmod(&app, &["lock", "--outputs"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lock = std::fs::read_to_string(app.join("cmod.lock")).unwrap();
    assert!(lock.starts_with("# @generated by cmod."), "{lock}");
    assert!(
        lock.contains("[outputs.dev.app]") && lock.contains("source = \"path+../units\""),
        "{lock}"
    );
    let ok = s.realise(&app, &["--locked"]).ok();
    assert!(ok.built().is_empty());

    // A tampered pin is an integrity error, even though nothing was rebuilt.
    let pinned = lock
        .lines()
        .find(|l| l.starts_with("content-hash"))
        .unwrap()
        .to_string();
    let tampered = pinned.replacen("blake3:", "blake3:0", 1).replacen(
        &pinned[pinned.len() - 2..pinned.len() - 1],
        "",
        1,
    );
    assert_ne!(tampered, pinned);
    std::fs::write(app.join("cmod.lock"), lock.replace(&pinned, &tampered)).unwrap();
    let r = s.realise(&app, &["--locked"]);
    assert_eq!(r.output.status.code(), Some(3), "{}", r.stderr());
    assert_eq!(r.finished()["success"], false);
    assert!(
        r.stderr().contains("differ from those pinned in cmod.lock"),
        "{}",
        r.stderr()
    );

    // A path dependency edited after locking: the lock would change (exit 2).
    std::fs::write(app.join("cmod.lock"), &lock).unwrap();
    let units = s.dir.path().join("path-deps/units/src/units.cpp");
    std::fs::write(
        &units,
        std::fs::read_to_string(&units).unwrap() + "// edited\n",
    )
    .unwrap();
    let (code, err) = failure(&s.cmod(&app, &["realise", "--locked"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("package `units` changed after locking"),
        "{err}"
    );
    // Without --locked the lock is updated, and the stale pins are dropped with a warning.
    let r = s.realise(&app, &[]).ok();
    assert!(
        r.stderr().contains("pinned outputs dropped"),
        "{}",
        r.stderr()
    );
    assert!(!std::fs::read_to_string(app.join("cmod.lock"))
        .unwrap()
        .contains("[outputs"));

    // A malformed lock names its line.
    std::fs::write(
        app.join("cmod.lock"),
        "version = 1\n[toolchain]\nidentity = 42\n",
    )
    .unwrap();
    let (code, err) = failure(&s.cmod(&app, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cmod.lock:3:"), "{err}");
}
