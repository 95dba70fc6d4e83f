//! The git layer against real repositories (created with the `git` command by the test;
//! cmod itself never runs git).

use std::path::Path;
use std::process::Command;

use cmod_evaluator::git::{self, GitCache};
use cmod_evaluator::hashing::hash_tree;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn repo(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("a.txt"), "one\n").unwrap();
    std::fs::create_dir(dir.join("bin")).unwrap();
    std::fs::write(dir.join("bin/tool"), "#!/bin/sh\n").unwrap();
    git(dir, &["update-index", "--add", "--chmod=+x", "bin/tool"]);
    std::os::unix::fs::symlink("a.txt", dir.join("link")).unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "one"]);
    git(dir, &["tag", "v1.0.0"]);
    git(dir, &["tag", "-a", "v1.2.3", "-m", "annotated"]);
    std::fs::write(dir.join("a.txt"), "two\n").unwrap();
    git(dir, &["commit", "-qam", "two"]);
    git(dir, &["tag", "v2.0.0"]);
}

#[test]
fn local_fetch_mirrors_refs_and_checkout_hashes_like_the_store() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    repo(&src);
    let cache = GitCache::new(t.path().join("cache"));
    let url = format!("file://{}", src.display());
    let r = cache.fetch(&url, t.path()).unwrap();
    let refs = git::refs(&r).unwrap();
    let one = git(&src, &["rev-parse", "v1.0.0"]);
    let two = git(&src, &["rev-parse", "v2.0.0"]);
    assert_eq!(refs.tags["v1.0.0"].to_string(), one);
    assert_eq!(
        refs.tags["v1.2.3"].to_string(),
        one,
        "annotated tags peel to their commit"
    );
    assert_eq!(refs.branches["main"].to_string(), two);
    assert_eq!(git::resolve_rev(&r, &one[..9]).unwrap().to_string(), one);
    assert!(git::resolve_rev(&r, "deadbeef").is_err());
    assert!(git::resolve_rev(&r, "abc").is_err(), "too short");

    // Checkout writes files, executable bits and links, and hashes what it wrote.
    let dest = t.path().join("co");
    let hash = git::checkout(&r, &git::parse_id(&one).unwrap(), &dest).unwrap();
    assert_eq!(
        std::fs::read_to_string(dest.join("a.txt")).unwrap(),
        "one\n"
    );
    assert_eq!(
        std::fs::read_link(dest.join("link")).unwrap(),
        Path::new("a.txt")
    );
    assert_eq!(hash, hash_tree(&dest).unwrap().0);
    assert_eq!(
        git::read_file(&r, &git::parse_id(&two).unwrap(), "a.txt")
            .unwrap()
            .unwrap(),
        b"two\n"
    );
    assert_eq!(
        git::read_file(&r, &git::parse_id(&two).unwrap(), "nope").unwrap(),
        None
    );

    // A force-moved tag moves in the cache; a deleted tag disappears.
    git(&src, &["tag", "-f", "v1.0.0", "v2.0.0"]);
    git(&src, &["tag", "-d", "v1.2.3"]);
    let r = cache.fetch(&url, t.path()).unwrap();
    let refs = git::refs(&r).unwrap();
    assert_eq!(refs.tags["v1.0.0"].to_string(), two);
    assert!(!refs.tags.contains_key("v1.2.3"));

    // Offline, the cache still answers; an unknown URL is not cached.
    assert!(cache.open(&url).is_ok());
    assert!(matches!(
        cache.open("file:///nowhere"),
        Err(git::GitError::NotCached { .. })
    ));
}

#[test]
fn rewrites_and_unsupported_urls() {
    let rewrites = git::Rewrites::parse("https://git.example.com/x/=file:///srv/mirror/;junk;");
    assert_eq!(
        rewrites.apply("https://git.example.com/x/units.git"),
        "file:///srv/mirror/units.git"
    );
    assert_eq!(rewrites.apply("https://other/y"), "https://other/y");
    let cache = GitCache::new("/nonexistent".into()).with_rewrites(rewrites);
    assert_eq!(
        cache.rewrite("https://git.example.com/x/u"),
        "file:///srv/mirror/u"
    );
    let e = git::locate("ssh://host/repo", Path::new("/")).unwrap_err();
    assert!(e.to_string().contains("not a supported git URL"), "{e}");
    assert_eq!(
        git::locate("../r", Path::new("/a/b")).unwrap(),
        git::Location::Local("/a/b/../r".into())
    );
}
