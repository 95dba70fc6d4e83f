//! The toolchain closure of clang-19 as cmod uses it for the sandbox, computed by asking
//! clang itself (search dirs, resource dir, include paths, the `-###` of a link with lld,
//! and `ldd` of the compiler and linker). Shared by the tests and the benchmark example.
//!
//! LEAD: this stands in for `cmod_evaluator::toolchain::discover(..)?.closure` (the
//! sandbox crate does not depend on the evaluator). To run the suites with exactly the
//! evaluator's closure, write it one path per line to a file and set
//! `CMOD_SANDBOX_TEST_CLOSURE=<file>`; to wire it in for good, make `clang_closure` return
//! it (the escape suite, the clang test and `examples/sandbox_cost.rs` only call this).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn output(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().expect("running a toolchain query");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ldd(bin: &Path, into: &mut BTreeSet<PathBuf>) {
    let (stdout, _) = output(Command::new("ldd").arg(bin));
    for line in stdout.lines() {
        for word in line.split_whitespace() {
            if word.starts_with('/') {
                into.insert(PathBuf::from(word));
            }
        }
    }
}

/// The toolchain closure cmod uses for clang-19: read from `$CMOD_SANDBOX_TEST_CLOSURE`
/// (one path per line) if set, else computed by asking clang itself.
pub fn clang_closure() -> Vec<PathBuf> {
    if let Some(file) = std::env::var_os("CMOD_SANDBOX_TEST_CLOSURE") {
        let text = std::fs::read_to_string(&file).expect("reading CMOD_SANDBOX_TEST_CLOSURE");
        return text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| PathBuf::from(l.trim()))
            .collect();
    }
    let cxx = "clang++-19";
    let mut set = BTreeSet::new();
    let (which, _) = output(Command::new("sh").args(["-c", "command -v clang++-19"]));
    let front = PathBuf::from(which.trim());
    let real = std::fs::canonicalize(&front).expect("clang++-19 is installed");
    set.insert(front);
    set.insert(real.clone());
    ldd(&real, &mut set);
    let (dirs, _) = output(Command::new(cxx).arg("-print-search-dirs"));
    for line in dirs.lines() {
        if let Some(rest) = line
            .strip_prefix("programs: =")
            .or_else(|| line.strip_prefix("libraries: ="))
        {
            set.extend(rest.split(':').map(PathBuf::from));
        }
    }
    let (res, _) = output(Command::new(cxx).arg("-print-resource-dir"));
    set.insert(PathBuf::from(res.trim()));
    let (_, inc) = output(Command::new(cxx).args(["-E", "-v", "-x", "c++", "/dev/null"]));
    let mut in_list = false;
    for line in inc.lines() {
        if line.starts_with("#include <...> search starts here:") {
            in_list = true;
        } else if line.starts_with("End of search list.") {
            in_list = false;
        } else if in_list {
            set.insert(PathBuf::from(line.trim()));
        }
    }
    let (_, link) = output(Command::new(cxx).args(["-###", "-fuse-ld=lld", "x.o", "-o", "x"]));
    for word in link.split_whitespace() {
        let w = word.trim_matches('"');
        let w = w.strip_prefix("-L").unwrap_or(w);
        if w.starts_with('/') {
            set.insert(PathBuf::from(w));
        }
    }
    let linker = set
        .iter()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("ld.lld"))
        })
        .cloned();
    if let Some(l) = linker {
        ldd(
            &std::fs::canonicalize(l).expect("the linker exists"),
            &mut set,
        );
    }
    set.insert(PathBuf::from("/etc/ld.so.cache"));
    set.into_iter()
        .filter(|p| p.exists() && p != Path::new("/"))
        .collect()
}
