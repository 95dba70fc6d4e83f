//! Upstream git repositories for dependency tests: the with-deps example's packages,
//! published by `examples/with-deps/upstream/publish.sh` into a temporary directory and
//! reached through `CMOD_GIT_REWRITE` (manifests keep their honest URLs), plus
//! repositories a test makes up on the spot.

use std::path::{Path, PathBuf};
use std::process::Output;

use super::{cmod_env, examples, git, Realised, Sandbox};

/// The URL prefix the example manifests use; rewritten to the local repositories.
pub const PREFIX: &str = "https://git.example.com/cmod-examples/";

pub struct Upstream {
    pub s: Sandbox,
    pub repos: PathBuf,
}

/// Publish the with-deps example's upstream repositories into `<sandbox>/upstream`.
pub fn publish(s: &Sandbox) -> PathBuf {
    let repos = s.dir.path().join("upstream");
    let out = std::process::Command::new(examples().join("with-deps/upstream/publish.sh"))
        .arg(&repos)
        .output()
        .expect("publish.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    repos
}

impl Upstream {
    pub fn new() -> Upstream {
        let s = Sandbox::new();
        let repos = publish(&s);
        Upstream { s, repos }
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![(
            "CMOD_GIT_REWRITE",
            format!("{PREFIX}=file://{}/", self.repos.display()),
        )]
    }

    pub fn cmod(&self, dir: &Path, args: &[&str]) -> Output {
        cmod_env(dir, &self.s.store(), args, &self.env())
    }

    pub fn realise(&self, dir: &Path, extra: &[&str]) -> Realised {
        let mut args = vec!["realise", "--message-format", "json"];
        args.extend_from_slice(extra);
        Realised::parse(self.cmod(dir, &args))
    }

    /// A binary package `name` depending on `deps` (TOML lines) whose main prints `body`.
    pub fn app(&self, name: &str, deps: &str, imports: &[&str], body: &str) -> PathBuf {
        let imports: String = imports.iter().map(|m| format!("import {m};\n")).collect();
        self.s.project(
            name,
            &[
                ("cmod.toml", &format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\n\n[[bin]]\nname = \"{name}\"\nmain = \"main.cpp\"\n\n[dependencies]\n{deps}")),
                ("main.cpp", &format!("#include <cstdio>\n{imports}int main() {{ {body} }}\n")),
            ],
        )
    }

    /// Publish `files` as a new repository `<name>.git` (reached as `{PREFIX}<name>.git`)
    /// with one commit tagged `tag`; returns the commit id.
    pub fn publish(&self, name: &str, files: &[(&str, &str)], tag: &str) -> String {
        let repo = self.repos.join(format!("{name}.git"));
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        for (rel, text) in files {
            let p = repo.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", &format!("{name} {tag}")]);
        git(&repo, &["tag", tag]);
        git(&repo, &["rev-parse", "HEAD"])
    }

    /// The lockfile of the project in `dir`.
    pub fn lock(&self, dir: &Path) -> String {
        std::fs::read_to_string(dir.join("cmod.lock")).expect("cmod.lock")
    }
}
