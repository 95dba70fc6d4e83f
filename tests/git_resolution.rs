//! Git resolution beyond one level: a git package that depends on another git package
//! (and on a path package inside its own repository), the help an undeclared import of a
//! git package gets, and offline builds whose locked commit was never fetched.

mod common;

use std::path::Path;

use common::upstream::{Upstream, PREFIX};
use common::{cmod_env, failure, git, run};

/// The content hash the store records for the checkout named `*-<name>-src`.
fn tree_in_store(u: &Upstream, dir: &Path, name: &str) -> String {
    let suffix = format!("-{name}-src");
    let path = std::fs::read_dir(u.s.store().join("v1/store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(&suffix))
        .unwrap_or_else(|| panic!("no checkout of {name} in the store"));
    let out = u.cmod(dir, &["path-info", "--json", &path]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    info[0]["content_hash"].as_str().unwrap().to_string()
}

/// `lowlevel` (git) ← `midlevel` (git, with the path package `midutil` inside its
/// repository) ← the root package.
fn publish_chain(u: &Upstream) -> (String, String) {
    let low = u.publish(
        "lowlevel",
        &[
            ("cmod.toml", "[package]\nname = \"lowlevel\"\nversion = \"0.1.0\"\n\n[lib]\nsources = [\"src/*.cppm\"]\n"),
            ("src/lowlevel.cppm", "export module lowlevel;\nexport int low() { return 7; }\n"),
        ],
        "v0.1.0",
    );
    let mid = u.publish(
        "midlevel",
        &[
            ("cmod.toml", &format!("[package]\nname = \"midlevel\"\nversion = \"0.2.0\"\n\n[lib]\nsources = [\"src/*.cppm\"]\n\n[dependencies]\nlowlevel = {{ git = \"{PREFIX}lowlevel.git\", tag = \"v0.1.0\" }}\nmidutil = {{ path = \"util\" }}\n")),
            ("src/midlevel.cppm", "export module midlevel;\nimport lowlevel;\nimport midutil;\nexport int mid() { return low() * factor(); }\n"),
            ("util/cmod.toml", "[package]\nname = \"midutil\"\nversion = \"0.2.0\"\n\n[lib]\nsources = [\"src/*.cppm\"]\n"),
            ("util/src/midutil.cppm", "export module midutil;\nexport int factor() { return 6; }\n"),
        ],
        "v0.2.0",
    );
    (low, mid)
}

#[test]
fn a_git_package_depending_on_a_git_package_is_built_and_both_are_locked() {
    let u = Upstream::new();
    let (low, mid) = publish_chain(&u);
    let dir = u.app(
        "chain",
        &format!("midlevel = {{ git = \"{PREFIX}midlevel.git\", tag = \"v0.2.0\" }}\n"),
        &["midlevel"],
        "std::printf(\"%d\\n\", mid());",
    );
    let r = u.realise(&dir, &[]).ok();
    assert_eq!(run(&r.target("chain"), &[]), "42\n");

    let lock = cmod_schema::lock::Lockfile::parse(&u.lock(&dir)).unwrap();
    let entry = |name: &str| {
        lock.packages
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name} is not locked: {lock:?}"))
    };
    let (lowlevel, midlevel) = (entry("lowlevel"), entry("midlevel"));
    assert_eq!(
        lowlevel.source,
        format!("git+{PREFIX}lowlevel.git?tag=v0.1.0#{low}")
    );
    assert_eq!(
        midlevel.source,
        format!("git+{PREFIX}midlevel.git?tag=v0.2.0#{mid}")
    );
    assert_eq!(midlevel.dependencies, ["lowlevel", "midutil"]);
    // Each tree hash is the content hash of that package's checkout in the store.
    assert_eq!(
        lowlevel.tree.to_string(),
        tree_in_store(&u, &dir, "lowlevel-0.1.0")
    );
    assert_eq!(
        midlevel.tree.to_string(),
        tree_in_store(&u, &dir, "midlevel-0.2.0")
    );
    assert_ne!(lowlevel.tree, midlevel.tree);
    // The in-repository path package is pinned by its repository's commit and tree.
    let midutil = entry("midutil");
    assert_eq!(midutil.source, midlevel.source);
    assert_eq!(midutil.tree, midlevel.tree);
    // A locked rebuild with the remotes gone needs nothing but the store.
    std::fs::rename(&u.repos, u.s.dir.path().join("gone")).unwrap();
    assert!(u.realise(&dir, &["--frozen"]).ok().built().is_empty());
}

#[test]
fn importing_an_undeclared_git_package_suggests_its_git_spec() {
    let u = Upstream::new();
    publish_chain(&u);
    // The root imports `lowlevel`, which it only reaches through `midlevel`.
    let dir = u.app(
        "reach",
        &format!("midlevel = {{ git = \"{PREFIX}midlevel.git\", tag = \"v0.2.0\" }}\n"),
        &["midlevel", "lowlevel"],
        "std::printf(\"%d\\n\", mid() + low());",
    );
    let (code, err) = failure(&u.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "module `lowlevel` is provided by package `lowlevel`, which `reach` does not depend on"
        ),
        "{err}"
    );
    assert!(err.contains("main.cpp:3:1"), "{err}");
    assert!(
        err.contains(&format!(
            "add `lowlevel = {{ git = \"{PREFIX}lowlevel.git\", tag = \"v0.1.0\" }}` to [dependencies]"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "cmod add lowlevel --git {PREFIX}lowlevel.git --tag 'v0.1.0'"
        )),
        "{err}"
    );
    assert!(!err.contains("path ="), "no store path is suggested: {err}");
    // A package inside another package's repository cannot be declared on its own.
    std::fs::write(
        dir.join("main.cpp"),
        "#include <cstdio>\nimport midlevel;\nimport midutil;\nint main() { std::printf(\"%d\\n\", factor()); }\n",
    )
    .unwrap();
    let (code, err) = failure(&u.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`midutil` lives inside the git repository of another package"),
        "{err}"
    );
}

#[test]
fn offline_without_the_locked_commit_in_the_cache_says_so_and_suggests_fetch() {
    let u = Upstream::new();
    let other = u.s.dir.path().join("other-store");
    // `other` caches greeting as it is now (v1.0.0 and v1.1.0)...
    let first = u.app(
        "first",
        &format!("greeting = {{ git = \"{PREFIX}greeting.git\", tag = \"v1.0.0\" }}\n"),
        &["greeting"],
        "std::puts(greeting::hello(\"a\").c_str());",
    );
    let out = cmod_env(&first, &other, &["fetch"], &u.env());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...then upstream publishes v1.2.0, and a project locks it with the default store.
    let repo = u.repos.join("greeting.git");
    std::fs::write(repo.join("NEWS"), "1.2.0: news\n").unwrap();
    git(&repo, &["add", "NEWS"]);
    git(&repo, &["commit", "-q", "-m", "greeting 1.2.0"]);
    git(&repo, &["tag", "v1.2.0"]);
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    let second = u.app(
        "second",
        &format!("greeting = {{ git = \"{PREFIX}greeting.git\", tag = \"v1.2.0\" }}\n"),
        &["greeting"],
        "std::puts(greeting::hello(\"b\").c_str());",
    );
    u.realise(&second, &[]).ok();
    // Offline, `other` has neither the commit nor its tree.
    let (code, err) = failure(&cmod_env(
        &second,
        &other,
        &["realise", "--offline"],
        &u.env(),
    ));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "package `greeting` is pinned to commit {commit}, which is not in the local git cache of `{PREFIX}greeting.git`"
        )),
        "{err}"
    );
    assert!(err.contains("run `cmod fetch` without --offline"), "{err}");
    assert!(
        !err.contains("rewritten") && !err.contains("cmod update"),
        "{err}"
    );
    // Following the advice works.
    let out = cmod_env(&second, &other, &["fetch"], &u.env());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cmod_env(
        &second,
        &other,
        &["realise", "--offline", "--no-link", "--print-out-paths"],
        &u.env(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(run(Path::new(&exe), &[]), "hello, b (greeting 1.1.0)\n");
}
