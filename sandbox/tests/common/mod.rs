//! Shared helpers of the sandbox integration tests: a fixture (store, build dir, log), the
//! toolchain closures (a small shell closure and the clang-19 closure), and compiling C
//! test programs with the real clang on the host.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use cmod_sandbox::{Action, Limits, Link, Mode, Outcome, SandboxError};

#[path = "closure.rs"]
mod closure;

/// The input store path every fixture has (`f` inside holds `input!`).
pub const INPUT: &str = "0abcdefghijklmnopqrstuvwxyz01234-input";
/// A store path that exists but is never an input.
pub const SECRET: &str = "1abcdefghijklmnopqrstuvwxyz01234-secret";

/// A scratch area: `store/` with [`INPUT`] and [`SECRET`], an empty `build/`, a log, and
/// a fake project directory and home directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (name, body) in [(INPUT, "input!"), (SECRET, "secret!")] {
            let p = root.join("store").join(name);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("f"), body).unwrap();
            set_mode(&p.join("f"), 0o444);
            set_mode(&p, 0o555);
        }
        std::fs::create_dir_all(root.join("build")).unwrap();
        std::fs::create_dir_all(root.join("project/src")).unwrap();
        std::fs::write(root.join("project/src/main.cpp"), "int main() {}\n").unwrap();
        std::fs::create_dir_all(root.join("home/.ssh")).unwrap();
        std::fs::write(root.join("home/.ssh/id_ed25519"), "PRIVATE KEY\n").unwrap();
        Fixture { dir }
    }

    pub fn root(&self) -> PathBuf {
        std::fs::canonicalize(self.dir.path()).unwrap()
    }
    pub fn build(&self) -> PathBuf {
        self.root().join("build")
    }
    pub fn store(&self) -> PathBuf {
        self.root().join("store")
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root().join("log")).unwrap_or_default()
    }

    /// An action running `program args` with `toolchain`, input [`INPUT`] linked at
    /// `src/f`.
    pub fn action(&self, program: &Path, args: &[String], toolchain: Vec<PathBuf>) -> Action {
        Action {
            program: program.to_path_buf(),
            args: args.to_vec(),
            env: vec![("CMOD_EXTRA".into(), "1".into())],
            build_dir: self.build(),
            store_dir: self.store(),
            inputs: vec![INPUT.into()],
            links: vec![Link {
                at: "src/f".into(),
                store_path: INPUT.into(),
                sub: Some("f".into()),
            }],
            toolchain,
            outputs: vec!["out/result".into()],
            log_path: self.root().join("log"),
            limits: Limits::default(),
            view_slot: None,
        }
    }

    /// Run a `/bin/sh -c script` action with the shell toolchain.
    pub fn sh(&self, mode: Mode, script: &str) -> (Result<Outcome, SandboxError>, String) {
        let a = self.action(
            Path::new("/bin/sh"),
            &["-c".to_string(), script.to_string()],
            shell_toolchain(),
        );
        self.run(mode, &a)
    }

    pub fn run(&self, mode: Mode, action: &Action) -> (Result<Outcome, SandboxError>, String) {
        let r = cmod_sandbox::run(mode, action);
        (r, self.log())
    }

    /// A path as the builder sees it in `mode`: the host path in Landlock mode, the
    /// canonical sandbox path in the full sandbox.
    pub fn seen_input(&self, mode: Mode) -> PathBuf {
        match mode {
            Mode::Full => Path::new(cmod_sandbox::STORE_DIR).join(INPUT),
            _ => self.store().join(INPUT),
        }
    }
    pub fn seen_build(&self, mode: Mode) -> PathBuf {
        match mode {
            Mode::Full => PathBuf::from(cmod_sandbox::BUILD_DIR),
            _ => self.build(),
        }
    }
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `/bin/sh` and coreutils with their libraries.
pub fn shell_toolchain() -> Vec<PathBuf> {
    [
        "/bin/sh",
        "/usr/bin",
        "/lib/x86_64-linux-gnu",
        "/lib64/ld-linux-x86-64.so.2",
        "/etc/ld.so.cache",
    ]
    .iter()
    .map(PathBuf::from)
    .collect()
}

/// The toolchain closure cmod uses for clang-19 (see `closure.rs`).
pub fn clang_closure() -> Vec<PathBuf> {
    static CLOSURE: OnceLock<Vec<PathBuf>> = OnceLock::new();
    CLOSURE.get_or_init(closure::clang_closure).clone()
}

/// Where compiled test programs live: under the target directory (which may itself be
/// under `/tmp`; the full sandbox then binds them inside its private `/tmp`).
fn bin_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cmod-sandbox-test-bins");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Compile a C program with clang-19 on the host (once per source per test binary).
pub fn compile_c(name: &str, source: &str) -> PathBuf {
    static CACHE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = format!("{name}\0{source}");
    if let Some(p) = cache.lock().unwrap().get(&key) {
        return p.clone();
    }
    let hash = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        source.hash(&mut h);
        h.finish()
    };
    let dir = bin_dir();
    let src = dir.join(format!("{name}-{hash:016x}.c"));
    let bin = dir.join(format!("{name}-{hash:016x}"));
    if !bin.exists() {
        std::fs::write(&src, source).unwrap();
        // Unique per call: two test threads may build the same program at once.
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(
            "{name}-{hash:016x}.{}-{call}.tmp",
            std::process::id()
        ));
        let out = Command::new("clang-19")
            .args(["-std=gnu17", "-O1", "-Wall", "-D_GNU_SOURCE", "-o"])
            .arg(&tmp)
            .arg(&src)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "compiling {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&tmp, &bin).unwrap();
    }
    cache.lock().unwrap().insert(key, bin.clone());
    bin
}
