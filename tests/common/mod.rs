//! Helpers for end-to-end tests: a scratch copy of an example, a private store, and the
//! real `cmod` binary with its JSON message contract parsed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod upstream;

/// The repository's `examples/` directory.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// A temporary workspace holding a project copy and a store.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Copy `examples/<name>` (recursively) to `<tmp>/<name>` and return that path.
    pub fn copy_example(&self, name: &str) -> PathBuf {
        let src = examples().join(name);
        let dst = self.dir.path().join(name);
        copy_dir(&src, &dst);
        dst
    }

    /// Write `files` (relative path, contents) under `<tmp>/<rel>`.
    pub fn project(&self, rel: &str, files: &[(&str, &str)]) -> PathBuf {
        let root = self.dir.path().join(rel);
        for (f, text) in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        root
    }

    /// Run `cmod --store <store> <args>` in `cwd`.
    pub fn cmod(&self, cwd: &Path, args: &[&str]) -> Output {
        cmod_in(cwd, &self.store(), args)
    }

    /// Assert that `cmod store verify` (from `cwd`) finds the store intact.
    pub fn assert_store_verifies(&self, cwd: &Path) {
        let verify = self.cmod(cwd, &["store", "verify"]);
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }

    /// The derivations `cmod eval --json` prints in `dir` (with extra environment).
    pub fn derivations(&self, dir: &Path, env: &[(&str, String)]) -> Vec<Value> {
        let out = cmod_env(dir, &self.store(), &["eval", "--json"], env);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let all: Value = serde_json::from_slice(&out.stdout).expect("eval --json");
        all.as_object()
            .expect("derivations by path")
            .values()
            .cloned()
            .collect()
    }

    /// `cmod realise --message-format json` in `cwd`, returning the parsed messages.
    pub fn realise(&self, cwd: &Path, extra: &[&str]) -> Realised {
        let mut args = vec!["realise", "--message-format", "json"];
        args.extend_from_slice(extra);
        let out = self.cmod(cwd, &args);
        Realised::parse(out)
    }
}

pub fn cmod_in(cwd: &Path, store: &Path, args: &[&str]) -> Output {
    cmod_env(cwd, store, args, &[])
}

/// `cmod_in` with extra environment variables.
pub fn cmod_env(cwd: &Path, store: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cmod"));
    cmd.arg("--store")
        .arg(store)
        .args(args)
        .current_dir(cwd)
        .env_remove("CMOD_STORE")
        .env_remove("CMOD_GIT_REWRITE")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run cmod")
}

/// Run `git` in `dir` (tests create and change upstream repositories with it; cmod
/// itself never runs git).
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@cmod.invalid")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@cmod.invalid")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Replace the first `from` in the file at `path` with `to` (which must be there).
pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "`{from}` not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name.to_string_lossy().starts_with("result") {
            continue;
        }
        let (s, d) = (e.path(), dst.join(&name));
        if e.file_type().unwrap().is_dir() {
            copy_dir(&s, &d);
        } else {
            std::fs::copy(&s, &d).unwrap();
        }
    }
}

/// The outcome of one `realise --message-format json`.
#[derive(Debug)]
pub struct Realised {
    pub output: Output,
    pub messages: Vec<Value>,
}

impl Realised {
    pub fn parse(output: Output) -> Realised {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let messages = stdout
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect();
        Realised { output, messages }
    }

    /// Names of the derivations built in this run, sorted.
    pub fn built(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .messages
            .iter()
            .filter(|m| m["reason"] == "built")
            .map(|m| m["name"].as_str().unwrap_or_default().to_string())
            .collect();
        v.sort();
        v
    }

    pub fn finished(&self) -> &Value {
        let last = self
            .messages
            .last()
            .unwrap_or_else(|| panic!("no messages; stderr:\n{}", self.stderr()));
        assert_eq!(
            last["reason"], "finished",
            "the last line must be `finished`: {last}"
        );
        last
    }

    pub fn success(&self) -> bool {
        self.finished()["success"] == true && self.output.status.success()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Panic with the diagnostics unless the realisation succeeded.
    pub fn ok(self) -> Realised {
        assert!(self.success(), "realise failed:\n{}", self.stderr());
        self
    }

    /// The output path of target `name`.
    pub fn target(&self, name: &str) -> PathBuf {
        PathBuf::from(
            self.finished()["targets"][name]
                .as_str()
                .unwrap_or_else(|| panic!("no target {name}: {}", self.finished())),
        )
    }
}

/// The derivation named `name` among `drvs`.
pub fn derivation<'a>(drvs: &'a [Value], name: &str) -> &'a Value {
    drvs.iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no derivation {name}"))
}

/// A derivation's argument vector.
pub fn drv_args(drv: &Value) -> Vec<&str> {
    drv["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string argument"))
        .collect()
}

/// Run a built program and return its stdout.
pub fn run(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .expect("run program");
    assert!(
        out.status.success(),
        "{} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The exit code and stderr of a finished command.
pub fn failure(out: &Output) -> (i32, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `grpc://` URL on loopback where nothing listens (the port was free a moment ago).
pub fn unreachable_grpc_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port");
    format!("grpc://127.0.0.1:{port}")
}
