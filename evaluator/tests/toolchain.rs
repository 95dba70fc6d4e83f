//! Toolchain discovery against the real clang-19 of this machine.

use cmod_evaluator::toolchain::{discover, ToolchainRequest};
use cmod_schema::manifest::Stdlib;
use std::path::Path;

#[test]
fn discovers_clang_19_with_a_stable_cached_identity() {
    let cache = tempfile::tempdir().unwrap();
    let req = ToolchainRequest::default();
    let a = discover(&req, Some(cache.path())).unwrap();
    assert!(a.version.starts_with("19."), "{}", a.version);
    assert!(a.version_text.contains("clang version 19"));
    assert!(a.scan_deps.to_string_lossy().contains("clang-scan-deps"));
    assert!(
        a.closure.iter().any(|p| p == Path::new("/usr/lib/llvm-19")),
        "{:?}",
        a.closure
    );
    assert!(
        a.closure.iter().any(|p| p.starts_with("/usr/include")),
        "{:?}",
        a.closure
    );
    // A cache file was written (whether it is used is the next test's business).
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
    // Without a cache the identity is recomputed to the same value.
    let c = discover(&req, None).unwrap();
    assert_eq!(a.identity, c.identity);
}

/// A compiler that is the real clang-19 behind a script counting its runs.
struct CountingCompiler {
    dir: tempfile::TempDir,
}

impl CountingCompiler {
    const SCRIPT: &'static str =
        "#!/bin/sh\necho run >> \"$(dirname \"$0\")/runs\"\nexec clang++-19 \"$@\"\n";

    fn new() -> CountingCompiler {
        let dir = tempfile::tempdir().unwrap();
        let c = CountingCompiler { dir };
        c.write_script();
        c
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("clang++")
    }

    /// Write the script again: the same bytes, new metadata (mtime, ctime, inode).
    fn write_script(&self) {
        use std::os::unix::fs::PermissionsExt;
        let tmp = self.dir.path().join("clang++.new");
        std::fs::write(&tmp, Self::SCRIPT).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, self.path()).unwrap();
    }

    fn runs(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("runs"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

#[test]
fn a_cached_identity_runs_no_compiler_until_a_stamp_changes() {
    let cc = CountingCompiler::new();
    let cache = tempfile::tempdir().unwrap();
    let req = ToolchainRequest {
        compiler: Some(cc.path().to_string_lossy().into_owned()),
        ..Default::default()
    };
    let first = discover(&req, Some(cache.path())).unwrap();
    let probed = cc.runs();
    assert!(
        probed >= 3,
        "the first discovery probes the compiler: {probed} runs"
    );
    assert!(
        first.closure.iter().any(|p| p == &cc.path()),
        "{:?}",
        first.closure
    );

    // From the cache: the same description, and not one compiler run.
    let cached = discover(&req, Some(cache.path())).unwrap();
    assert_eq!(cached, first);
    assert_eq!(cc.runs(), probed, "a cache hit runs no process");

    // New metadata on a hashed file (same bytes) invalidates the entry: it is probed and
    // hashed again, to the same identity.
    std::thread::sleep(std::time::Duration::from_millis(20));
    cc.write_script();
    let reprobed = discover(&req, Some(cache.path())).unwrap();
    assert!(cc.runs() > probed, "a changed stamp re-probes");
    assert_eq!(reprobed.identity, first.identity);
    let after = cc.runs();
    discover(&req, Some(cache.path())).unwrap();
    assert_eq!(cc.runs(), after, "and the new entry is used again");

    // Without a cache every discovery probes.
    discover(&req, None).unwrap();
    assert!(cc.runs() > after);
}

#[test]
fn stdlib_is_part_of_the_identity() {
    let gnu = discover(&ToolchainRequest::default(), None).unwrap();
    let llvm = discover(
        &ToolchainRequest {
            stdlib: Stdlib::Libcxx,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    assert_ne!(gnu.identity, llvm.identity);
    let std_dir = llvm.std_module_dir.expect("libc++ ships std.cppm");
    assert!(std_dir.join("std.cppm").is_file());
    assert!(gnu.std_module_dir.is_none());
}

#[test]
fn version_requirement_is_enforced() {
    let req = ToolchainRequest {
        version: Some("^18".parse().unwrap()),
        ..Default::default()
    };
    let e = discover(&req, None).unwrap_err();
    assert!(
        e.message.contains("does not satisfy the requirement `^18`"),
        "{e}"
    );
}
