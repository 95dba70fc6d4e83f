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
    // A cache file was written, and a second discovery reuses it with the same identity.
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
    let b = discover(&req, Some(cache.path())).unwrap();
    assert_eq!(a, b);
    // Without a cache the identity is recomputed to the same value.
    let c = discover(&req, None).unwrap();
    assert_eq!(a.identity, c.identity);
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
