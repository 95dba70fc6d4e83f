//! Generates `sandbox-exec` profiles (SBPL, Apple's Scheme-like sandbox language) for the
//! macOS fallback. Plain string generation with no platform calls, so it is unit-tested on
//! every OS; `macos.rs` runs the result with `/usr/bin/sandbox-exec -p`.
//!
//! The profile denies everything by default and then allows:
//! * read, `mmap(PROT_EXEC)` and exec of the toolchain paths and of the macOS runtime the
//!   dynamic loader needs ([`DARWIN_RUNTIME`]);
//! * read of each *input* store path (never the store directory as a whole);
//! * read, write and exec inside the build directory;
//! * read/write of `/dev/null`, `/dev/zero`, `/dev/full` (where it exists), read of
//!   `/dev/random` and `/dev/urandom`;
//! * metadata reads (`stat`, `realpath`) of the ancestors of those paths, which path
//!   resolution needs, but not their contents;
//! * `fork`, signals within the sandbox and `sysctl` reads (libSystem's initialiser).
//!
//! Networking is denied, and a final `(deny network*)` keeps it denied whatever precedes
//! it. SBPL matches resolved paths (`/tmp` is `/private/tmp`), so callers must pass
//! canonical paths; `macos.rs` does.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::{Action, SandboxError};

/// Paths every macOS process needs to start: the dynamic loader, the system libraries and
/// the dyld shared cache (its location moved in macOS 13).
pub const DARWIN_RUNTIME: &[&str] = &[
    "/usr/lib",
    "/System/Library/Frameworks",
    "/System/Library/PrivateFrameworks",
    "/System/Library/dyld",
    "/System/Volumes/Preboot/Cryptexes/OS",
    "/private/var/db/dyld",
];

/// Device nodes the builder may read and write.
const RW_DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/dtracehelper"];
/// Device nodes the builder may read.
const RO_DEVICES: &[&str] = &["/dev/random", "/dev/urandom"];

/// Quote `p` as an SBPL string literal. Control characters are refused rather than
/// escaped: no legitimate store or toolchain path contains them.
pub fn quote(p: &Path) -> Result<String, SandboxError> {
    let s = p.to_str().ok_or_else(|| {
        SandboxError::InvalidAction(format!(
            "path `{}` is not valid UTF-8 and cannot be written into a sandbox profile",
            p.display()
        ))
    })?;
    if !p.is_absolute() {
        return Err(SandboxError::InvalidAction(format!(
            "sandbox profile paths must be absolute, got `{s}`"
        )));
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                return Err(SandboxError::InvalidAction(format!(
                    "path {s:?} contains a control character and cannot be written into a sandbox profile"
                )))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

fn filters(kind: &str, paths: &[PathBuf]) -> Result<String, SandboxError> {
    let mut out = String::new();
    for p in paths {
        let _ = write!(out, "\n    ({kind} {})", quote(p)?);
    }
    Ok(out)
}

fn rule(out: &mut String, ops: &str, kind: &str, paths: &[PathBuf]) -> Result<(), SandboxError> {
    if !paths.is_empty() {
        let _ = writeln!(out, "(allow {ops}{})", filters(kind, paths)?);
    }
    Ok(())
}

/// The profile for `action`, with `runtime` as the system paths every process needs
/// (normally [`DARWIN_RUNTIME`]). All paths should be canonical.
pub fn generate_with_runtime(action: &Action, runtime: &[&str]) -> Result<String, SandboxError> {
    let exec: Vec<PathBuf> = action
        .toolchain
        .iter()
        .cloned()
        .chain(std::iter::once(action.program.clone()))
        .chain(runtime.iter().map(PathBuf::from))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let inputs: Vec<PathBuf> = action
        .inputs
        .iter()
        .map(|i| {
            if i.is_empty() || i.contains('/') || i.starts_with('.') {
                Err(SandboxError::InvalidAction(format!(
                    "input `{i}` is not a store path basename"
                )))
            } else {
                Ok(action.store_dir.join(i))
            }
        })
        .collect::<Result<_, _>>()?;
    let build = vec![action.build_dir.clone()];
    let rw_dev: Vec<PathBuf> = RW_DEVICES.iter().map(PathBuf::from).collect();
    let ro_dev: Vec<PathBuf> = RO_DEVICES.iter().map(PathBuf::from).collect();

    // Metadata (not contents) of every ancestor, for path resolution and getcwd.
    let mut ancestors = BTreeSet::new();
    for p in exec.iter().chain(&inputs).chain(&build).chain(&rw_dev) {
        for a in p.ancestors().skip(1) {
            if !a.as_os_str().is_empty() {
                ancestors.insert(a.to_path_buf());
            }
        }
    }
    let ancestors: Vec<PathBuf> = ancestors.into_iter().collect();

    let mut out = String::new();
    out.push_str(";; cmod builder sandbox (generated; see cmod-sandbox/src/macos_profile.rs)\n");
    out.push_str("(version 1)\n(deny default)\n");
    out.push_str(
        "(allow process-fork)\n(allow signal (target same-sandbox))\n(allow sysctl-read)\n",
    );
    rule(&mut out, "file-read-metadata", "literal", &ancestors)?;
    rule(
        &mut out,
        "file-read* file-map-executable process-exec",
        "subpath",
        &exec,
    )?;
    rule(&mut out, "file-read*", "subpath", &inputs)?;
    rule(
        &mut out,
        "file-read* file-write* file-map-executable process-exec",
        "subpath",
        &build,
    )?;
    rule(
        &mut out,
        "file-read* file-write-data file-ioctl",
        "literal",
        &rw_dev,
    )?;
    rule(&mut out, "file-read*", "literal", &ro_dev)?;
    out.push_str("(deny network*)\n");
    Ok(out)
}

/// The profile for `action` with the standard macOS runtime paths.
pub fn generate(action: &Action) -> Result<String, SandboxError> {
    generate_with_runtime(action, DARWIN_RUNTIME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn action() -> Action {
        Action {
            program: "/opt/llvm/bin/clang++".into(),
            args: vec![],
            env: vec![],
            build_dir: "/private/tmp/cmod/build-1".into(),
            store_dir: "/Users/me/.cmod/v1/store".into(),
            inputs: vec!["aaaa-hello.cppm".into(), "bbbb-hello.pcm".into()],
            links: vec![],
            toolchain: vec![
                "/opt/llvm".into(),
                "/Library/Developer/CommandLineTools/SDKs/MacOSX.sdk".into(),
            ],
            outputs: vec!["out/hello.o".into()],
            log_path: "/private/tmp/cmod/log".into(),
            limits: Limits::default(),
            view_slot: None,
        }
    }

    /// The text of every `(allow ...)` form whose operations include `op`.
    fn allows<'a>(profile: &'a str, op: &str) -> Vec<&'a str> {
        profile
            .split("(allow ")
            .skip(1)
            .filter(|form| {
                form.lines()
                    .next()
                    .is_some_and(|ops| ops.split_whitespace().any(|o| o == op))
            })
            .collect()
    }

    #[test]
    fn denies_by_default_and_denies_network_last() {
        let p = generate(&action()).unwrap();
        assert!(p.contains("(version 1)\n(deny default)\n"), "{p}");
        assert!(p.trim_end().ends_with("(deny network*)"), "{p}");
        assert!(!p.contains("(allow network"), "{p}");
        assert!(!p.contains("(allow default"), "{p}");
        assert!(!p.contains("mach-lookup"), "{p}");
    }

    #[test]
    fn only_inputs_of_the_store_are_readable() {
        let p = generate(&action()).unwrap();
        assert!(
            p.contains("(subpath \"/Users/me/.cmod/v1/store/aaaa-hello.cppm\")"),
            "{p}"
        );
        assert!(
            p.contains("(subpath \"/Users/me/.cmod/v1/store/bbbb-hello.pcm\")"),
            "{p}"
        );
        // The store directory itself appears only as a metadata literal, never as a subpath.
        assert!(!p.contains("(subpath \"/Users/me/.cmod/v1/store\")"), "{p}");
        assert!(p.contains("(literal \"/Users/me/.cmod/v1/store\")"), "{p}");
        // Every readable subpath under the store is one of the inputs.
        let store = "(subpath \"/Users/me/.cmod/v1/store";
        let under_store: Vec<&str> = p.lines().filter(|l| l.contains(store)).collect();
        assert_eq!(under_store.len(), 2, "{p}");
        assert!(under_store
            .iter()
            .all(|l| l.contains("/aaaa-hello.cppm\")") || l.contains("/bbbb-hello.pcm\")")));
    }

    #[test]
    fn writes_are_confined_to_the_build_dir_and_devices() {
        let p = generate(&action()).unwrap();
        let writes = allows(&p, "file-write*");
        assert_eq!(writes.len(), 1, "{p}");
        assert!(writes[0].contains("(subpath \"/private/tmp/cmod/build-1\")"));
        assert!(!writes[0].contains("/opt/llvm"), "{p}");
        assert!(!writes[0].contains("store"), "{p}");
        let data = allows(&p, "file-write-data");
        assert!(
            data.iter().all(|f| f.contains("(literal \"/dev/null\")")),
            "{p}"
        );
        assert!(!data.iter().any(|f| f.contains("/dev/urandom")), "{p}");
    }

    #[test]
    fn toolchain_and_program_are_executable_inputs_are_not() {
        let p = generate(&action()).unwrap();
        let exec = allows(&p, "process-exec");
        assert!(
            exec.iter().any(|f| f.contains("(subpath \"/opt/llvm\")")),
            "{p}"
        );
        assert!(exec
            .iter()
            .any(|f| f.contains("(subpath \"/opt/llvm/bin/clang++\")")));
        assert!(exec.iter().any(|f| f.contains("(subpath \"/usr/lib\")")));
        assert!(!exec.iter().any(|f| f.contains("aaaa-hello.cppm")), "{p}");
    }

    #[test]
    fn ancestors_get_metadata_only() {
        let p = generate(&action()).unwrap();
        let meta = allows(&p, "file-read-metadata");
        assert_eq!(meta.len(), 1, "{p}");
        for a in ["/", "/opt", "/private/tmp/cmod", "/Users/me/.cmod/v1"] {
            assert!(meta[0].contains(&format!("(literal \"{a}\")")), "{a}: {p}");
        }
        assert!(!allows(&p, "file-read*")
            .iter()
            .any(|f| f.contains("(subpath \"/\")") || f.contains("(subpath \"/Users\")")));
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        let mut a = action();
        a.build_dir = PathBuf::from(r#"/private/tmp/we"ird\dir) (allow default"#);
        let p = generate(&a).unwrap();
        assert!(
            p.contains(r#"(subpath "/private/tmp/we\"ird\\dir) (allow default")"#),
            "{p}"
        );
        // The injected text stays inside a string literal.
        assert!(!p.contains("(allow default\n"), "{p}");
        assert_eq!(quote(Path::new("/a b")).unwrap(), "\"/a b\"");
    }

    #[test]
    fn control_characters_relative_paths_and_bad_inputs_are_refused() {
        let mut a = action();
        a.build_dir = PathBuf::from("/tmp/a\nb");
        assert!(matches!(generate(&a), Err(SandboxError::InvalidAction(_))));
        let mut a = action();
        a.toolchain.push("relative/dir".into());
        assert!(matches!(generate(&a), Err(SandboxError::InvalidAction(_))));
        let mut a = action();
        a.inputs.push("../../etc".into());
        assert!(matches!(generate(&a), Err(SandboxError::InvalidAction(_))));
    }

    #[test]
    fn profile_is_deterministic() {
        let mut a = action();
        let p1 = generate(&a).unwrap();
        a.toolchain.reverse();
        assert_eq!(p1, generate(&a).unwrap());
    }
}
