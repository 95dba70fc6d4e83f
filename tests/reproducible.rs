//! Bit-identical outputs (every example, store roots of different lengths, -j1 and -jN,
//! different build orders), the flags that make them so, and `realise --check`. Pinned
//! outputs under `--locked` are in `locked.rs`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{cmod_env, cmod_in, Sandbox};

/// The prefix of `examples/with-deps`' git URLs.
const GIT_PREFIX: &str = "https://git.example.com/cmod-examples/";

/// Output name → content hashes of every output path in `store` (read from metadata, then
/// re-hashed by `store verify`). A name can have several outputs (e.g. BMI variants), so
/// each maps to the sorted list of its hashes.
fn output_hashes(store: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in std::fs::read_dir(store.join("v1/meta")).unwrap() {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
        if v["kind"] == "output" {
            let path = v["path"].as_str().unwrap();
            out.entry(path[33..].to_string())
                .or_default()
                .push(v["content_hash"].as_str().unwrap().to_string());
        }
    }
    for hashes in out.values_mut() {
        hashes.sort();
    }
    out
}

/// Every example, copied into one scratch directory, with `with-deps`' git dependencies
/// published locally and reached through `CMOD_GIT_REWRITE`.
struct AllExamples {
    s: Sandbox,
    rewrite: Vec<(&'static str, String)>,
}

/// How a store is filled: every example as a whole, in the listed order; or piece by piece
/// (libraries and dependencies before what uses them) in the reverse order.
#[derive(Clone, Copy)]
enum Order {
    Whole,
    PiecesReversed,
}

impl AllExamples {
    fn new() -> AllExamples {
        let s = Sandbox::new();
        for ex in ["hello", "library", "path-deps", "workspace", "with-deps"] {
            s.copy_example(ex);
        }
        let repos = common::upstream::publish(&s);
        let rewrite = vec![(
            "CMOD_GIT_REWRITE",
            format!("{GIT_PREFIX}=file://{}/", repos.display()),
        )];
        AllExamples { s, rewrite }
    }

    fn realise(&self, dir: &str, store: &Path, args: &[&str]) {
        let mut all = vec!["realise", "--no-link"];
        all.extend_from_slice(args);
        let out = cmod_env(&self.s.dir.path().join(dir), store, &all, &self.rewrite);
        assert!(
            out.status.success(),
            "realise {args:?} in {dir}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Realise every example into the store at `store` with `-j<jobs>` in `order`, and
    /// return the hashes of every output in it (after `store verify` re-hashed them all).
    fn build(&self, store: &Path, jobs: &str, order: Order) -> BTreeMap<String, Vec<String>> {
        let j = format!("-j{jobs}");
        let j = j.as_str();
        match order {
            Order::Whole => {
                for ex in [
                    "hello",
                    "library",
                    "path-deps/app",
                    "workspace",
                    "with-deps",
                ] {
                    self.realise(ex, store, &[j]);
                }
            }
            Order::PiecesReversed => {
                self.realise("with-deps", store, &[j]);
                self.realise("workspace", store, &[j, "-p", "core"]);
                self.realise("workspace", store, &[j, "-p", "text"]);
                self.realise("workspace", store, &[j]);
                self.realise("path-deps/units", store, &[j]);
                self.realise("path-deps/report", store, &[j]);
                self.realise("path-deps/app", store, &[j]);
                self.realise("library", store, &[j, "geometry"]);
                self.realise("library", store, &[j, "shapes"]);
                self.realise("hello", store, &[j, "hello"]);
                self.realise("hello", store, &[j]);
            }
        }
        let v = cmod_in(self.s.dir.path(), store, &["store", "verify"]);
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
        output_hashes(store)
    }
}

/// Assert two stores hold the same outputs with the same bytes, naming `dimension` (what
/// differed between the two builds) and every output that differs.
#[track_caller]
fn assert_identical(
    dimension: &str,
    baseline: &BTreeMap<String, Vec<String>>,
    other: &BTreeMap<String, Vec<String>>,
) {
    let mut problems = Vec::new();
    for (name, hashes) in baseline {
        match other.get(name) {
            None => problems.push(format!("{name}: missing")),
            Some(h) if h != hashes => problems.push(format!("{name}: {hashes:?} vs {h:?}")),
            Some(_) => {}
        }
    }
    for name in other.keys().filter(|n| !baseline.contains_key(*n)) {
        problems.push(format!("{name}: only in the {dimension} build"));
    }
    assert!(
        problems.is_empty(),
        "outputs differ when only the {dimension} changes:\n  {}",
        problems.join("\n  ")
    );
}

/// Every `.pcm`, `.o`, archive and binary of every example has the same content hash when
/// only the store root (of a different length), only `-j`, or only the build order
/// changes: three separate comparisons against one baseline, so a failure names the
/// dimension that broke.
#[test]
fn every_example_is_bit_identical_across_store_roots_jobs_and_orders() {
    let all = AllExamples::new();
    let root = all.s.dir.path();
    // Same-length roots for the comparisons that vary something else.
    let baseline = all.build(&root.join("sa"), "2", Order::Whole);

    // What the baseline holds: every kind of output of every example.
    for name in [
        "hello-0.1.0-hello.pcm",
        "hello-0.1.0-src-main.cpp.o",
        "hello-0.1.0-hello",
        "geometry-1.2.0-geometry-shapes.pcm",
        "geometry-1.2.0-libgeometry.a",
        "geometry-1.2.0-shapes",
        "units-0.3.1-libunits.a",
        "report-0.2.0-libreport.a",
        "app-1.0.0-fractions",
        "with-deps-0.1.0-with-deps",
    ] {
        assert!(baseline.contains_key(name), "{name} missing: {baseline:#?}");
    }
    for (what, ext) in [("BMIs", ".pcm"), ("objects", ".o"), ("archives", ".a")] {
        let n = baseline.keys().filter(|k| k.ends_with(ext)).count();
        assert!(n >= 5, "only {n} {what}: {baseline:#?}");
    }
    // Each of the five examples' git and workspace packages contributes outputs.
    for package in ["core-", "text-", "greeting-", "numbers-", "colors-"] {
        assert!(
            baseline.keys().any(|k| k.starts_with(package)),
            "no outputs of {package}: {baseline:#?}"
        );
    }

    let long = root.join("a/much/longer/store/root/than/the/other/one");
    assert_identical(
        "store root",
        &baseline,
        &all.build(&long, "2", Order::Whole),
    );
    assert_identical(
        "job count (-j1)",
        &baseline,
        &all.build(&root.join("sb"), "1", Order::Whole),
    );
    assert_identical(
        "build order",
        &baseline,
        &all.build(&root.join("sc"), "2", Order::PiecesReversed),
    );
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

/// The flags that make outputs independent of where they were built are in every
/// derivation as evaluated (`cmod eval --json`), in both profiles: `-ffile-prefix-map`
/// on every compile, `-Xclang -fmodules-embed-all-files` on every BMI step, `D`
/// (deterministic: zero timestamps, uids, modes) in every archive's `llvm-ar` operation,
/// and lld (content-derived build id) on every link.
#[test]
fn path_independence_flags_are_in_every_derivation() {
    let s = Sandbox::new();
    s.copy_example("library");
    s.copy_example("path-deps");
    let mut seen = BTreeMap::<String, usize>::new();
    for (dir, profile) in [
        ("library", None),
        ("library", Some("--release")),
        ("path-deps/app", None),
    ] {
        let mut args = vec!["eval", "--json"];
        args.extend(profile);
        let out = s.cmod(&s.dir.path().join(dir), &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let drvs: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(&out.stdout).unwrap();
        for (path, drv) in &drvs {
            let kind = drv["kind"].as_str().unwrap().to_string();
            let args: Vec<&str> = drv["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            let has = |flag: &str| args.contains(&flag);
            match kind.as_str() {
                "bmi" | "object" => {
                    assert_eq!(drv["tool"], "c++", "{path}");
                    assert!(
                        has("-ffile-prefix-map=@builddir@=/build"),
                        "{path}: no -ffile-prefix-map in {args:?}"
                    );
                    if kind == "bmi" {
                        assert!(
                            args.windows(2)
                                .any(|w| w == ["-Xclang", "-fmodules-embed-all-files"]),
                            "{path}: no `-Xclang -fmodules-embed-all-files` in {args:?}"
                        );
                        assert!(has("--precompile"), "{path}: {args:?}");
                    }
                }
                "archive" => {
                    assert_eq!(drv["tool"], "ar", "{path}");
                    let op = args[0];
                    assert!(
                        op.contains('D') && !op.contains('U'),
                        "{path}: llvm-ar operation `{op}` is not deterministic"
                    );
                }
                "link" => {
                    assert!(has("-fuse-ld=lld"), "{path}: {args:?}");
                    assert!(
                        !args.iter().any(|a| a.contains("build-id=uuid")),
                        "{path}: {args:?}"
                    );
                }
                other => panic!("{path}: unexpected derivation kind `{other}`"),
            }
            *seen.entry(kind).or_default() += 1;
        }
    }
    // Every kind was inspected: 2 × library (4 BMIs, 8 objects, 1 archive, 1 link) and
    // path-deps (2 archives at least, 1 link).
    for (kind, at_least) in [("bmi", 8), ("object", 16), ("archive", 4), ("link", 3)] {
        let n = seen.get(kind).copied().unwrap_or(0);
        assert!(n >= at_least, "only {n} `{kind}` derivations: {seen:?}");
    }
}
