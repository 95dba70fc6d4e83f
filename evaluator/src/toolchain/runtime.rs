//! The **runtime closure**: the host files the dynamic loader opens to start a program
//! that the toolchain links, which a sandbox running such a program must show.
//!
//! Build steps never run what they link, so none of this is part of the toolchain's
//! build closure or identity. `cmod test` runs the test binaries, and they load the
//! standard library at run time: with `stdlib = "libc++"` that is `libc++.so.1`,
//! `libc++abi.so.1` and `libunwind.so.1`, which the loader finds through
//! `/lib/x86_64-linux-gnu/libc++.so.1 -> … -> /usr/lib/llvm-19/lib/libc++.so.1.0` on
//! Debian — links the build closure does not contain.
//!
//! # How: the real linker and the real loader, nothing emulated
//!
//! [`runtime_closure`] links a trivial program with the toolchain's own driver (the
//! selected `-stdlib`, lld, the given libraries, and `--no-as-needed`, so every library
//! on the link line is recorded even though the program uses none), then asks the
//! dynamic loader which files it would map for it ([`loaded_files`]: `ldd`, run with
//! the sandbox's cleared environment, so no `LD_LIBRARY_PATH` or `LD_PRELOAD` of the
//! caller leaks in). Each path the loader resolved is kept together with its canonical
//! target. Sandboxes that recreate symlinks (the namespace sandbox does) need only the
//! first, rule-based ones (Landlock, which follows links) only the second; keeping both
//! is cheap (a bind of a path already bound is dropped).
//!
//! We preferred this to reading `DT_NEEDED`/`DT_SONAME` ourselves and searching for each
//! name: the search order (`RPATH`, `RUNPATH`, `/etc/ld.so.cache`, the `glibc-hwcaps`
//! subdirectories, the default directories, `$ORIGIN`) belongs to the loader, and the
//! names a link records come from the linker (through scripts such as libc++'s
//! `libc++.so`: `INPUT(libc++.so.1 -lc++abi)`); asking both is exact by construction and
//! costs one compile, one link and one `ldd` — about 0.1 s, on a toolchain cache miss
//! only, overlapped with hashing.
//!
//! A test that links system libraries gets theirs too: [`runtime_closure`] links the
//! trivial program with the same link words (`-L`, `-l`, `-Wl,-rpath`, or files), so the
//! loader resolves them exactly as it will for the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use cmod_schema::manifest::Stdlib;

use crate::error::{ErrorKind, EvalError};

/// The environment the loader is asked in: the variables the sandbox sets that matter
/// to it (none of `LD_*`), so it resolves exactly as it will inside.
const LOADER_ENV: [(&str, &str); 2] = [("PATH", "/usr/bin:/bin"), ("LC_ALL", "C")];

/// The trivial program linked to learn the runtime.
const PROGRAM: &str = "int main() { return 0; }\n";

/// The files the dynamic loader needs to start a program that `cxx` links with
/// `-stdlib=<stdlib>` and the link arguments `libraries` (library files as a link names
/// them — `libz.so`, a linker script, a versioned file — or link words: `-L<dir>`,
/// `-l<name>`, `-Wl,-rpath,<dir>`): for each library it loads,
/// transitively, the path it finds it at (the soname link) and that path's canonical
/// file; plus the loader itself and `/etc/ld.so.cache`, through which it searches.
/// Sorted, without duplicates.
pub fn runtime_closure(
    cxx: &Path,
    stdlib: Stdlib,
    libraries: &[String],
) -> Result<Vec<PathBuf>, EvalError> {
    let scratch = Scratch::new()?;
    let main = scratch.0.join("main.cpp");
    std::fs::write(&main, PROGRAM).map_err(|e| EvalError::io(&main, "write", e))?;
    let program = scratch.0.join("runtime-probe");
    let out = Command::new(cxx)
        .arg(format!("-stdlib={}", stdlib.as_str()))
        .args(["-fuse-ld=lld", "-Wl,--no-as-needed"])
        .arg(&main)
        .args(libraries)
        .arg("-o")
        .arg(&program)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| {
            EvalError::new(
                ErrorKind::Toolchain,
                format!("cannot run the compiler `{}`: {e}", cxx.display()),
            )
        })?;
    if !out.status.success() {
        return Err(EvalError::new(
            ErrorKind::Toolchain,
            format!(
                "`{} -stdlib={}` cannot link a trivial program, so it cannot link tests or \
                 binaries either:\n{}",
                cxx.display(),
                stdlib.as_str(),
                String::from_utf8_lossy(&out.stderr).trim_end()
            ),
        )
        .help(format!(
            "install the standard library's runtime and lld: `{}`",
            super::INSTALL_HINT
        )));
    }
    let mut files = loaded_files(&program)?;
    files.retain(|f| !f.starts_with(&scratch.0));
    let cache = Path::new("/etc/ld.so.cache");
    if !files.is_empty() && cache.exists() {
        files.push(cache.to_path_buf());
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// The files the dynamic loader maps to run (or load) the ELF file `object`, as `ldd`
/// reports them with the sandbox's environment: each resolved path, and its canonical
/// file when that differs. Empty for a statically linked program. A library the loader
/// does not find is an error naming it.
pub fn loaded_files(object: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let out = Command::new("ldd")
        .arg(object)
        .env_clear()
        .envs(LOADER_ENV)
        .output()
        .map_err(|e| {
            EvalError::new(
                ErrorKind::Toolchain,
                format!(
                    "cannot run `ldd` to list what `{}` loads: {e}",
                    object.display()
                ),
            )
            .help("`ldd` comes with the C library's tools: `apt-get install libc-bin`")
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if [&stdout, &stderr]
        .iter()
        .any(|t| t.contains("not a dynamic executable") || t.contains("statically linked"))
    {
        return Ok(Vec::new());
    }
    if !out.status.success() {
        return Err(EvalError::new(
            ErrorKind::Toolchain,
            format!("`ldd {}` failed: {}", object.display(), stderr.trim_end()),
        ));
    }
    let listed = parse_ldd(&stdout);
    if let Some(name) = listed.missing.first() {
        return Err(EvalError::new(
            ErrorKind::Toolchain,
            format!(
                "`{}` needs `{name}`, which the dynamic loader does not find",
                object.display()
            ),
        )
        .help("install the package that provides it (or run `ldconfig` if it is installed)"));
    }
    let mut files = Vec::new();
    for path in listed.found {
        if let Ok(canonical) = path.canonicalize() {
            if canonical != path {
                files.push(canonical);
            }
        }
        files.push(path);
    }
    Ok(files)
}

/// What one `ldd` listing says.
#[derive(Debug, Default, PartialEq, Eq)]
struct Listing {
    /// Absolute paths the loader resolved, in order.
    found: Vec<PathBuf>,
    /// Names it did not find.
    missing: Vec<String>,
}

/// Parse glibc `ldd` output: `name => /path (0xaddr)`, `/path (0xaddr)` (the loader),
/// `name (0xaddr)` (the vDSO: no file), `name => not found`. Paths may contain spaces.
fn parse_ldd(text: &str) -> Listing {
    let mut listing = Listing::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, rest) = match line.split_once(" => ") {
            Some((name, rhs)) => (name.trim(), rhs.trim()),
            None => ("", line),
        };
        if rest == "not found" {
            listing.missing.push(name.to_string());
            continue;
        }
        let path = match rest.rfind(" (0x") {
            Some(i) => &rest[..i],
            None => rest,
        };
        if path.starts_with('/') {
            listing.found.push(PathBuf::from(path));
        }
    }
    listing
}

/// A private scratch directory under the system temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, EvalError> {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = base.join(format!("cmod-runtime-{}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Scratch(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(EvalError::io(&dir, "create directory", e)),
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_is_parsed() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd1e5f1000)\n\
                    \tlibc++.so.1 => /lib/x86_64-linux-gnu/libc++.so.1 (0x00007f2d139ec000)\n\
                    \tlibodd.so.2 => /opt/with space/libodd.so.2 (0x00007f2d139b1000)\n\
                    \tlibgone.so.3 => not found\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f2d13b0a000)\n";
        assert_eq!(
            parse_ldd(text),
            Listing {
                found: vec![
                    "/lib/x86_64-linux-gnu/libc++.so.1".into(),
                    "/opt/with space/libodd.so.2".into(),
                    "/lib64/ld-linux-x86-64.so.2".into(),
                ],
                missing: vec!["libgone.so.3".into()],
            }
        );
    }

    #[test]
    fn a_static_program_loads_nothing() {
        // A shell script is not a dynamic executable either.
        let t = std::env::temp_dir().join(format!("cmod-ldd-test-{}", std::process::id()));
        std::fs::write(&t, "#!/bin/sh\n").unwrap();
        let files = loaded_files(&t);
        std::fs::remove_file(&t).unwrap();
        assert_eq!(files.unwrap(), Vec::<PathBuf>::new());
    }

    #[test]
    fn an_ldd_failure_names_the_file() {
        let err = loaded_files(Path::new("/nonexistent/cmod/prog")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Toolchain);
        assert!(
            err.message.contains("`ldd /nonexistent/cmod/prog` failed"),
            "{err}"
        );
    }

    #[test]
    fn scratch_directories_are_distinct_and_removed() {
        let (a, b) = (Scratch::new().unwrap(), Scratch::new().unwrap());
        assert_ne!(a.0, b.0);
        std::fs::write(a.0.join("f"), b"x").unwrap();
        let dir = a.0.clone();
        drop(a);
        assert!(!dir.exists());
        assert!(b.0.is_dir());
    }
}
