//! Git dependencies end to end, against real repositories published by
//! `examples/with-deps/upstream/publish.sh` into a temporary directory and reached through
//! `CMOD_GIT_REWRITE` (the manifests keep their honest URLs).

mod common;
mod servers;

use std::path::{Path, PathBuf};

use common::upstream::{Upstream, PREFIX};
use common::{cmod_env, failure, git, run, Realised};
use servers::git_http::GitHttp;

fn numbers_app(u: &Upstream, name: &str, req: &str) -> PathBuf {
    u.app(
        name,
        &format!("numbers = {{ git = \"{PREFIX}numbers.git\", version = \"{req}\" }}\n"),
        &["numbers"],
        "std::puts(numbers::version());",
    )
}

#[test]
fn with_deps_example_pins_by_tag_range_and_rev() {
    let u = Upstream::new();
    let dir = u.s.copy_example("with-deps");
    let r = u.realise(&dir, &[]).ok();
    assert_eq!(
        run(&r.target("with-deps"), &[]),
        "hello, deps (greeting 1.0.0)\nnumbers 1.10.0: triangle(10) = 55\ncolors 0.1.0, teal\n"
    );
    let lock = std::fs::read_to_string(dir.join("cmod.lock")).unwrap();
    // The lock keeps the manifest's URLs, the pin and the commit, and the tree's hash.
    assert!(
        lock.contains(&format!("source = \"git+{PREFIX}greeting.git?tag=v1.0.0#")),
        "{lock}"
    );
    assert!(lock.contains(&format!("source = \"git+{PREFIX}colors.git?rev=33a5b8201f3f80f67ea23dafc5fed4e36afa6e30#33a5b8201f3f80f67ea23dafc5fed4e36afa6e30\"")), "{lock}");
    assert_eq!(lock.matches("tree = \"blake3:").count(), 3);
    assert!(
        !lock.contains(&u.repos.display().to_string()),
        "rewritten URLs never reach the lock"
    );
    // The checkout is a content-addressed source path in the store.
    let tree = String::from_utf8_lossy(&u.cmod(&dir, &["tree"]).stdout).into_owned();
    assert!(
        tree.contains("numbers v1.10.0") && tree.contains("version=^1.2"),
        "{tree}"
    );
}

#[test]
fn semver_ranges_select_the_highest_matching_tag() {
    let u = Upstream::new();
    for (name, req, want) in [
        ("caret", "^1.2", "1.10.0"),
        ("tilde", "~1.2", "1.2.3"),
        ("exact", "=1.0.0", "1.0.0"),
        ("major", "^2", "2.0.0"),
    ] {
        let dir = numbers_app(&u, name, req);
        let r = u.realise(&dir, &[]).ok();
        assert_eq!(run(&r.target(name), &[]), format!("{want}\n"), "{req}");
    }
    let dir = numbers_app(&u, "none", "^3");
    let (code, err) = failure(&u.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no tag of `https://git.example.com/cmod-examples/numbers.git` matches `^3`"),
        "{err}"
    );
    assert!(
        err.contains("its tags are: v1.0.0, v1.10.0, v1.2.3, v2.0.0"),
        "{err}"
    );
}

#[test]
fn tag_rev_and_branch_pins() {
    let u = Upstream::new();
    let first = git(
        &u.repos.join("greeting.git"),
        &["rev-list", "--max-parents=0", "HEAD"],
    );
    for (name, pin, want) in [
        ("bytag", "tag = \"v1.1.0\"".to_string(), "1.1.0"),
        ("byrev", format!("rev = \"{}\"", &first[..12]), "1.0.0"),
        ("bybranch", "branch = \"main\"".to_string(), "1.1.0"),
    ] {
        let dir = u.app(
            name,
            &format!("greeting = {{ git = \"{PREFIX}greeting.git\", {pin} }}\n"),
            &["greeting"],
            "std::puts(greeting::hello(\"x\").c_str());",
        );
        let r = u.realise(&dir, &[]).ok();
        assert_eq!(
            run(&r.target(name), &[]),
            format!("hello, x (greeting {want})\n"),
            "{pin}"
        );
    }
    let dir = u.app(
        "badtag",
        &format!("greeting = {{ git = \"{PREFIX}greeting.git\", tag = \"v9\" }}\n"),
        &["greeting"],
        "",
    );
    let (code, err) = failure(&u.cmod(&dir, &["realise"]));
    assert_eq!(code, 2);
    assert!(
        err.contains("has no tag `v9`") && err.contains("cmod.toml:"),
        "{err}"
    );
}

#[test]
fn a_diamond_resolves_to_one_version_and_conflicts_name_both_requirers() {
    let u = Upstream::new();
    let lib = |name: &str, req: &str| {
        u.s.project(
            name,
            &[
                ("cmod.toml", &format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\n[lib]\nsources = [\"*.cppm\"]\n[dependencies]\nnumbers = {{ git = \"{PREFIX}numbers.git\", version = \"{req}\" }}\n")),
                (&format!("{name}.cppm"), &format!("export module {name};\nimport numbers;\nexport inline const char* {name}_numbers() {{ return numbers::version(); }}\n")),
            ],
        )
    };
    lib("left", "^1.2");
    lib("right", ">=1.2.3, <1.5");
    let dir = u.app(
        "top",
        "left = { path = \"../left\" }\nright = { path = \"../right\" }\n",
        &["left", "right"],
        "std::printf(\"%s %s\\n\", left_numbers(), right_numbers());",
    );
    let r = u.realise(&dir, &[]).ok();
    // `left` alone would take 1.10.0; together only 1.2.3 satisfies both.
    assert_eq!(run(&r.target("top"), &[]), "1.2.3 1.2.3\n");
    let lock = std::fs::read_to_string(dir.join("cmod.lock")).unwrap();
    assert_eq!(lock.matches("name = \"numbers\"").count(), 1);
    // `tree --duplicates` lists the shared package once, with both requirers.
    let out = u.cmod(&dir, &["tree", "--duplicates"]);
    let dups = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dups.starts_with(&format!("numbers v1.2.3 ({PREFIX}numbers.git version=")),
        "{dups}"
    );
    assert!(dups.contains("\n  required by left, right\n"), "{dups}");
    assert_eq!(dups.lines().count(), 2, "only numbers is shared: {dups}");

    lib("right", "^2");
    let (code, err) = failure(&u.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("package `numbers` is required as `version=^1.2`"),
        "{err}"
    );
    assert!(
        err.contains("by `left`") && err.contains("as `version=^2`") && err.contains("by `right`"),
        "{err}"
    );
    assert!(err.contains("no single version satisfies both"), "{err}");
}

#[test]
fn offline_builds_after_fetch_and_a_clear_error_without() {
    let u = Upstream::new();
    let dir = u.s.copy_example("with-deps");
    let out = u.cmod(&dir, &["fetch"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The remotes go away; the store (and the git cache) are enough.
    std::fs::rename(&u.repos, u.s.dir.path().join("gone")).unwrap();
    let r = u.realise(&dir, &["--offline"]).ok();
    assert!(run(&r.target("with-deps"), &[]).contains("numbers 1.10.0"));
    let r = u.realise(&dir, &["--frozen"]).ok();
    assert!(r.built().is_empty());
    // A dependency never fetched cannot be built offline.
    let dir = numbers_app(&u, "unfetched", "=1.0.0");
    let fresh = u.s.dir.path().join("fresh-store");
    let (code, err) = failure(&cmod_env(&dir, &fresh, &["realise", "--offline"], &u.env()));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is not in the git cache") && err.contains("cmod fetch"),
        "{err}"
    );
}

#[test]
fn locked_refuses_a_stale_lock() {
    let u = Upstream::new();
    let dir = u.s.copy_example("with-deps");
    u.realise(&dir, &[]).ok();
    assert!(u.realise(&dir, &["--locked"]).ok().built().is_empty());
    let manifest = std::fs::read_to_string(dir.join("cmod.toml")).unwrap();
    std::fs::write(
        dir.join("cmod.toml"),
        manifest.replace("tag = \"v1.0.0\"", "tag = \"v1.1.0\""),
    )
    .unwrap();
    let (code, err) = failure(&u.cmod(&dir, &["realise", "--locked"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cmod.lock` would change") && err.contains("package `greeting`"),
        "{err}"
    );
}

#[test]
fn a_moved_tag_keeps_the_locked_commit_until_update() {
    let u = Upstream::new();
    let dir = u.app(
        "mover",
        &format!("greeting = {{ git = \"{PREFIX}greeting.git\", tag = \"v1.0.0\" }}\n"),
        &["greeting"],
        "std::puts(greeting::hello(\"m\").c_str());",
    );
    let r = u.realise(&dir, &[]).ok();
    assert_eq!(run(&r.target("mover"), &[]), "hello, m (greeting 1.0.0)\n");
    let repo = u.repos.join("greeting.git");
    git(&repo, &["tag", "-f", "v1.0.0", "v1.1.0"]);
    let r = u.realise(&dir, &["--locked"]).ok();
    assert_eq!(
        run(&r.target("mover"), &[]),
        "hello, m (greeting 1.0.0)\n",
        "the lock is the truth"
    );
    assert!(
        r.stderr()
            .contains("tag `v1.0.0` of `greeting` now points to"),
        "{}",
        r.stderr()
    );
    assert!(
        r.stderr().contains("cmod update greeting"),
        "{}",
        r.stderr()
    );
    let out = u.cmod(&dir, &["update", "greeting"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Updating greeting"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = u.realise(&dir, &[]).ok();
    assert_eq!(run(&r.target("mover"), &[]), "hello, m (greeting 1.1.0)\n");
}

#[test]
fn update_precise_pins_a_version() {
    let u = Upstream::new();
    let dir = numbers_app(&u, "precise", "^1.0");
    assert_eq!(
        run(&u.realise(&dir, &[]).ok().target("precise"), &[]),
        "1.10.0\n"
    );
    let out = u.cmod(&dir, &["update", "numbers", "--precise", "1.2.3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        run(&u.realise(&dir, &[]).ok().target("precise"), &[]),
        "1.2.3\n"
    );
    let (code, err) = failure(&u.cmod(&dir, &["update", "numbers", "--precise", "2.0.0"]));
    assert_eq!(code, 2);
    assert!(
        err.contains("does not satisfy the requirement `^1.0`"),
        "{err}"
    );
}

#[test]
fn update_precise_pins_a_revision() {
    let u = Upstream::new();
    let repo = u.repos.join("greeting.git");
    let first = git(&repo, &["rev-list", "--max-parents=0", "HEAD"]);
    let dir = u.app(
        "precise-rev",
        &format!("greeting = {{ git = \"{PREFIX}greeting.git\", branch = \"main\" }}\n"),
        &["greeting"],
        "std::puts(greeting::hello(\"p\").c_str());",
    );
    let r = u.realise(&dir, &[]).ok();
    assert_eq!(
        run(&r.target("precise-rev"), &[]),
        "hello, p (greeting 1.1.0)\n"
    );
    // An abbreviated revision is resolved to the full commit and pinned.
    let out = u.cmod(&dir, &["update", "greeting", "--precise", &first[..10]]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Updating greeting"), "{err}");
    assert!(
        u.lock(&dir).contains(&format!(
            "source = \"git+{PREFIX}greeting.git?branch=main#{first}\""
        )),
        "{}",
        u.lock(&dir)
    );
    // The lock is the truth: the branch still points at 1.1.0, the build stays at the pin.
    let r = u.realise(&dir, &["--locked"]).ok();
    assert_eq!(
        run(&r.target("precise-rev"), &[]),
        "hello, p (greeting 1.0.0)\n"
    );
    let (code, err) = failure(&u.cmod(
        &dir,
        &["update", "greeting", "--precise", "0123456789abcdef"],
    ));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--precise for `greeting`") && err.contains("0123456789abcdef"),
        "{err}"
    );
    assert!(
        u.lock(&dir).contains(&format!("#{first}\"")),
        "a failed update leaves the lock alone"
    );
}

#[test]
fn rewritten_upstream_history_is_a_clear_error() {
    let u = Upstream::new();
    let dir = u.app(
        "rewritten",
        &format!("colors = {{ git = \"{PREFIX}colors.git\", tag = \"v0.2.0\" }}\n"),
        &["colors"],
        "std::puts(colors::release());",
    );
    u.realise(&dir, &[]).ok();
    let locked = std::fs::read_to_string(dir.join("cmod.lock")).unwrap();
    let commit = locked.split("colors.git?tag=v0.2.0#").nth(1).unwrap()[..40].to_string();
    // Upstream rewrites history: the locked commit no longer exists there.
    let repo = u.repos.join("colors.git");
    git(&repo, &["checkout", "-q", "--orphan", "rewritten"]);
    git(&repo, &["commit", "-q", "-m", "rewritten", "--allow-empty"]);
    git(&repo, &["branch", "-D", "main"]);
    git(&repo, &["tag", "-f", "v0.2.0"]);
    git(&repo, &["tag", "-d", "v0.1.0"]);
    git(&repo, &["reflog", "expire", "--expire=now", "--all"]);
    git(&repo, &["gc", "-q", "--prune=now"]);
    // A machine that has neither the tree nor the commit cached.
    let fresh = u.s.dir.path().join("fresh-store");
    let (code, err) = failure(&cmod_env(&dir, &fresh, &["realise"], &u.env()));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "package `colors` is pinned to commit {commit}, which"
        )),
        "{err}"
    );
    assert!(
        err.contains("no longer has") && err.contains("cmod update colors"),
        "{err}"
    );
}

#[test]
fn a_tampered_git_cache_is_an_integrity_error() {
    let u = Upstream::new();
    let dir = u.app(
        "tamper",
        &format!("greeting = {{ git = \"{PREFIX}greeting.git\", tag = \"v1.0.0\" }}\n"),
        &["greeting"],
        "std::puts(greeting::hello(\"t\").c_str());",
    );
    u.realise(&dir, &[]).ok();
    // Another machine receives this cache (and the lock), but the cache was tampered with:
    // one blob is replaced by different, well-formed contents.
    let store2 = u.s.dir.path().join("store2");
    std::fs::create_dir_all(store2.join("v1/cache")).unwrap();
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(u.s.store().join("v1/cache/git"))
        .arg(store2.join("v1/cache/git"))
        .status()
        .unwrap();
    assert!(copy.success());
    let cache = std::fs::read_dir(store2.join("v1/cache/git"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-greeting"))
        .unwrap();
    let blob = git(&cache, &["rev-parse", "v1.0.0:src/greeting.cppm"]);
    let object = cache.join("objects").join(&blob[..2]).join(&blob[2..]);
    let written = std::process::Command::new("sh")
        .arg("-c")
        .arg("printf 'export module greeting; // evil\\n' | git hash-object -w --stdin")
        .current_dir(&cache)
        .output()
        .unwrap();
    assert!(written.status.success());
    let evil_id = String::from_utf8_lossy(&written.stdout).trim().to_string();
    let evil_object = cache
        .join("objects")
        .join(&evil_id[..2])
        .join(&evil_id[2..]);
    std::fs::set_permissions(&object, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::copy(&evil_object, &object).unwrap();
    // The upstream is gone, so nothing can repair the cache.
    std::fs::rename(&u.repos, u.s.dir.path().join("gone")).unwrap();
    let (code, err) = failure(&cmod_env(
        &dir,
        &store2,
        &["realise", "--offline"],
        &u.env(),
    ));
    assert_eq!(code, 3, "{err}");
    // The message names both hashes: the locked one, and the one the tampered tree has
    // (computed independently: git's own checkout of the tampered cache, added to a store).
    let locked = u.lock(&dir);
    let expected = locked
        .lines()
        .find_map(|l| l.strip_prefix("tree = \""))
        .map(|t| t.trim_end_matches('"').to_string())
        .unwrap();
    let tree = u.s.dir.path().join("tampered-tree");
    std::fs::create_dir_all(&tree).unwrap();
    let extracted = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "git archive v1.0.0 | tar -x -C '{}'",
            tree.display()
        ))
        .current_dir(&cache)
        .status()
        .unwrap();
    assert!(extracted.success());
    assert!(std::fs::read_to_string(tree.join("src/greeting.cppm"))
        .unwrap()
        .contains("evil"));
    let scratch = u.s.dir.path().join("scratch-store");
    let added = cmod_env(
        &dir,
        &scratch,
        &["store", "add", &tree.to_string_lossy()],
        &[],
    );
    let added_path = String::from_utf8_lossy(&added.stdout).trim().to_string();
    let info: serde_json::Value = serde_json::from_slice(
        &cmod_env(&dir, &scratch, &["path-info", "--json", &added_path], &[]).stdout,
    )
    .unwrap();
    let actual = info[0]["content_hash"].as_str().unwrap().to_string();
    assert_ne!(actual, expected);
    assert!(
        err.contains(&format!(
            "package `greeting`: commit {} checks out to tree {actual}, but cmod.lock pins tree {expected}",
            git(&cache, &["rev-parse", "v1.0.0^{commit}"])
        )),
        "{err}"
    );
}

#[test]
fn add_and_remove_keep_comments_and_formatting() {
    let u = Upstream::new();
    let original = "# My app.\n[package]\nname = \"edits\"   # the name\nversion = \"0.1.0\"\n\n[[bin]]\nname = \"edits\"\nmain = \"main.cpp\"\n\n# Dependencies go here.\n[dependencies]\n# keep me\n";
    let dir = u.s.project(
        "edits",
        &[("cmod.toml", original), ("main.cpp", "int main() {}\n")],
    );
    let out = u.cmod(
        &dir,
        &[
            "add",
            "numbers",
            "--git",
            &format!("{PREFIX}numbers.git"),
            "--version",
            "^1.2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let edited = std::fs::read_to_string(dir.join("cmod.toml")).unwrap();
    // Every original line, comments included, is still there and in order.
    let mut rest = edited.as_str();
    for line in original.lines() {
        let at = rest
            .find(line)
            .unwrap_or_else(|| panic!("`{line}` lost:\n{edited}"));
        rest = &rest[at + line.len()..];
    }
    assert!(
        edited.contains(&format!(
            "numbers = {{ git = \"{PREFIX}numbers.git\", version = \"^1.2\" }}"
        )),
        "{edited}"
    );
    let r = u.realise(&dir, &[]).ok();
    assert!(!r.built().is_empty());
    let out = u.cmod(&dir, &["add", "units", "--path", "../units", "--tag", "v1"]);
    assert_eq!(failure(&out).0, 2);
    let out = u.cmod(&dir, &["remove", "numbers"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("cmod.toml")).unwrap(),
        original
    );
    let (code, err) = failure(&u.cmod(&dir, &["remove", "numbers"]));
    assert_eq!(code, 2);
    assert!(err.contains("`numbers` is not in [dependencies]"), "{err}");
}

#[test]
fn git_over_http_with_gix_transport() {
    let u = Upstream::new();
    let server = GitHttp::start(&u.s.dir.path().join("git-http"), &u.repos);
    let env = vec![("CMOD_GIT_REWRITE", format!("{PREFIX}={}", server.prefix()))];
    let dir = u.s.copy_example("with-deps");
    let r = Realised::parse(cmod_env(
        &dir,
        &u.s.store(),
        &["realise", "--message-format", "json"],
        &env,
    ))
    .ok();
    assert!(run(&r.target("with-deps"), &[]).contains("numbers 1.10.0"));
    // Locked and in the store: the server is not needed any more.
    drop(server);
    let r = Realised::parse(cmod_env(
        &dir,
        &u.s.store(),
        &["realise", "--message-format", "json", "--frozen"],
        &env,
    ))
    .ok();
    assert!(r.built().is_empty());
}

/// `https://` through gix's reqwest + rustls transport, against nginx with a certificate
/// from a CA made by the test (git http-backend behind it): refused with the remedy
/// until the CA is trusted through `SSL_CERT_FILE`, then built, run and locked with the
/// https URL and the commit.
#[test]
fn git_over_https_trusts_only_configured_certificates() {
    let u = Upstream::new();
    let server = GitHttp::start_tls(&u.s.dir.path().join("git-https"), &u.repos);
    let url = server.url("numbers.git");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let dir = u.app(
        "over-https",
        &format!("numbers = {{ git = \"{url}\", version = \"^1.2\" }}\n"),
        &["numbers"],
        "std::puts(numbers::version());",
    );
    let realise = ["realise", "--message-format", "json"];
    let (code, err) = failure(&u.cmod(&dir, &realise));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("fetching `{url}` failed")), "{err}");
    assert!(err.contains("certificate"), "{err}");
    assert!(
        err.contains("SSL_CERT_FILE"),
        "the error names the fix: {err}"
    );
    assert!(!dir.join("cmod.lock").exists(), "nothing is locked");
    let cached = std::fs::read_dir(u.s.store().join("v1/cache/git"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(cached, 0, "no half-made clone is left in the git cache");

    let ca = server.ca().unwrap().to_str().unwrap().to_string();
    let mut env = u.env();
    env.push(("SSL_CERT_FILE", ca));
    let r = Realised::parse(cmod_env(&dir, &u.s.store(), &realise, &env)).ok();
    assert_eq!(run(&r.target("over-https"), &[]), "1.10.0\n");
    let commit = git(
        &u.repos.join("numbers.git"),
        &["rev-parse", "v1.10.0^{commit}"],
    );
    let lock = u.lock(&dir);
    assert!(
        lock.contains(&format!("source = \"git+{url}?version=^1.2#{commit}\"")),
        "{lock}"
    );
}

#[test]
fn the_same_tree_from_two_urls_is_one_store_path() {
    let u = Upstream::new();
    let mirror = u.s.dir.path().join("mirror/numbers.git");
    std::fs::create_dir_all(mirror.parent().unwrap()).unwrap();
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(u.repos.join("numbers.git"))
        .arg(&mirror)
        .status()
        .unwrap();
    assert!(copy.success());
    let a = numbers_app(&u, "via-upstream", "=1.2.3");
    let b = u.app(
        "via-mirror",
        &format!(
            "numbers = {{ git = \"file://{}\", tag = \"v1.2.3\" }}\n",
            mirror.display()
        ),
        &["numbers"],
        "std::puts(numbers::version());",
    );
    for dir in [&a, &b] {
        u.realise(dir, &[]).ok();
    }
    let tree_of = |dir: &Path| {
        let lock = std::fs::read_to_string(dir.join("cmod.lock")).unwrap();
        lock.lines()
            .find(|l| l.starts_with("tree = "))
            .unwrap()
            .to_string()
    };
    assert_eq!(tree_of(&a), tree_of(&b));
    let checkouts: Vec<String> = std::fs::read_dir(u.s.store().join("v1/store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-numbers-1.2.3-src"))
        .collect();
    assert_eq!(checkouts.len(), 1, "{checkouts:?}");
}
