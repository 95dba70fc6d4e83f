//! Toolchain discovery against the real clang-19 of this machine.

use cmod_evaluator::toolchain::{discover, find_program, runtime_closure, ToolchainRequest};
use cmod_evaluator::ErrorKind;
use cmod_schema::manifest::Stdlib;
use std::path::{Path, PathBuf};

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

fn libcxx() -> ToolchainRequest {
    ToolchainRequest {
        stdlib: Stdlib::Libcxx,
        ..Default::default()
    }
}

fn named<'a>(paths: &'a [PathBuf], name: &str) -> &'a Path {
    paths
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == name))
        .unwrap_or_else(|| panic!("no `{name}` in {paths:#?}"))
}

/// A libc++ program loads libc++, libc++abi and libunwind through soname links in
/// `/lib/x86_64-linux-gnu` that point into `/usr/lib/llvm-19/lib`. The runtime has both
/// the links and the files, and is cached with the rest of the description.
#[test]
fn the_libcxx_runtime_has_the_loaders_paths_and_their_files() {
    let cache = tempfile::tempdir().unwrap();
    let info = discover(&libcxx(), Some(cache.path())).unwrap();
    for soname in ["libc++.so.1", "libc++abi.so.1", "libunwind.so.1"] {
        let link = named(&info.runtime, soname);
        let file = link.canonicalize().unwrap();
        assert_ne!(file, link, "{soname} is found through a link on Debian");
        assert!(
            info.runtime.contains(&file),
            "{file:?}: {:#?}",
            info.runtime
        );
    }
    // The build closure has `libc++.so.1` (named by the `libc++.so` linker script), but
    // not what it needs in turn: the loader error of a test before the runtime existed.
    for soname in ["libc++abi.so.1", "libunwind.so.1"] {
        let link = named(&info.runtime, soname);
        assert!(
            !info.closure.iter().any(|c| link.starts_with(c)),
            "the build closure holds {link:?}"
        );
    }
    assert!(info.runtime.contains(&PathBuf::from("/etc/ld.so.cache")));
    named(&info.runtime, "ld-linux-x86-64.so.2");
    assert!(
        !info
            .runtime
            .iter()
            .any(|p| p.starts_with(std::env::temp_dir())),
        "the probe program is not part of it: {:#?}",
        info.runtime
    );
    let cached = discover(&libcxx(), Some(cache.path())).unwrap();
    assert_eq!(cached.runtime, info.runtime);

    // libstdc++ programs load libstdc++ and nothing of libc++.
    let gnu = discover(&ToolchainRequest::default(), None).unwrap();
    named(&gnu.runtime, "libstdc++.so.6");
    assert!(
        !gnu.runtime
            .iter()
            .any(|p| p.to_string_lossy().contains("libc++")),
        "{:#?}",
        gnu.runtime
    );
}

/// Given shared-library files, the runtime closure has the path the loader finds each one
/// at and what each needs in turn; a library the loader cannot find, or one that cannot be
/// linked, is an error that says so.
#[test]
fn the_runtime_closure_of_given_libraries() {
    let cxx = find_program("clang++-19").expect("clang++-19 is installed");
    // libc++ as a plain library of a libstdc++ program: libc++abi and libunwind come
    // along as its own needs.
    let libcxx = PathBuf::from("/usr/lib/llvm-19/lib/libc++.so.1");
    let rt = runtime_closure(&cxx, Stdlib::Libstdcxx, &[libcxx.display().to_string()]).unwrap();
    for name in [
        "libc++.so.1",
        "libc++abi.so.1",
        "libunwind.so.1",
        "libstdc++.so.6",
    ] {
        named(&rt, name);
    }

    // A library of our own, with a soname the loader has no way to find.
    let t = tempfile::tempdir().unwrap();
    let (src, lib) = (t.path().join("nowhere.cpp"), t.path().join("libnowhere.so"));
    std::fs::write(&src, "int nowhere() { return 1; }\n").unwrap();
    let out = std::process::Command::new(&cxx)
        .args(["-shared", "-fPIC", "-Wl,-soname,libcmodnowhere.so.1", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = runtime_closure(&cxx, Stdlib::Libstdcxx, &[lib.display().to_string()]).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Toolchain);
    assert!(
        err.message
            .contains("needs `libcmodnowhere.so.1`, which the dynamic loader does not find"),
        "{err}"
    );

    let err = runtime_closure(
        &cxx,
        Stdlib::Libstdcxx,
        &[t.path().join("missing.so").display().to_string()],
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Toolchain);
    assert!(
        err.message.contains("cannot link a trivial program"),
        "{err}"
    );
    assert!(err.message.contains("missing.so"), "{err}");
}
