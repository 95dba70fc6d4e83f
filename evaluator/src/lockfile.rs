//! `cmod.lock` for an evaluation: what the lock *should* say now (toolchain and dependency
//! trees), reading the existing one with located errors, and a readable description of
//! how the two differ (what `--locked` reports).

use std::path::{Path, PathBuf};

use cmod_schema::diag::Location;
use cmod_schema::lock::{
    LockError, LockedPackage, LockedSystem, LockedToolchain, Lockfile, LOCK_VERSION,
};
use cmod_schema::ContentHash;

use crate::error::{ErrorKind, EvalError};
use crate::graph::Origin;
use crate::package::PackageSource;
use crate::Evaluation;

/// The lockfile's name, next to the root manifest.
pub const LOCK_NAME: &str = "cmod.lock";

/// Where the lockfile of `eval` lives: at the workspace root.
pub fn lock_path(eval: &Evaluation) -> PathBuf {
    eval.packages.workspace_root.join(LOCK_NAME)
}

/// Read the lockfile at `path`; `Ok(None)` if there is none.
pub fn read(path: &Path) -> Result<Option<Lockfile>, EvalError> {
    let text = match crate::journal::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EvalError::io(path, "read", e)),
    };
    match Lockfile::parse(&text) {
        Ok(lock) => Ok(Some(lock)),
        Err(LockError::Syntax { message, span }) => Err(EvalError::new(
            ErrorKind::Lock,
            format!("`{}` is malformed: {message}", path.display()),
        )
        .at(Location::at_offset(
            path,
            &text,
            span.map_or(0, |s| s.start),
        ))
        .help("cmod.lock is generated: delete it and run `cmod lock` to write a fresh one")),
        Err(e @ LockError::Version(_)) => Err(EvalError::new(ErrorKind::Lock, e.to_string())
            .at(Location::at_offset(path, &text, 0))
            .help("regenerate it with this cmod: `cmod lock`")),
    }
}

/// The lock state of `eval` now: toolchain and dependency packages, no outputs.
pub fn current(eval: &Evaluation) -> Lockfile {
    let t = &eval.toolchain;
    let graph = &eval.packages;
    let mut packages: Vec<LockedPackage> = graph
        .packages
        .iter()
        .filter(|p| !graph.is_member(p.id))
        .map(|p| {
            let (source, tree) = match &p.source {
                PackageSource::Git(g) => (g.source(), g.tree),
                PackageSource::Path | PackageSource::Member => (
                    format!(
                        "path+{}",
                        crate::paths::relative(&graph.workspace_root, &p.root)
                    ),
                    files_hash(eval, p.id),
                ),
            };
            LockedPackage {
                name: p.name.clone(),
                version: p.version.to_string(),
                source,
                tree,
                dependencies: p.deps.iter().map(|d| d.name.clone()).collect(),
            }
        })
        .collect();
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    let mut system: Vec<LockedSystem> = Vec::new();
    for lib in eval.settings.all_system_libs() {
        let entry = LockedSystem {
            name: lib.name.clone(),
            pkg_config: lib.pkg_config.clone(),
            version: lib.version.clone(),
            files: lib
                .files
                .iter()
                .chain(lib.pc_file.as_ref().map(|(p, h)| (p, h)))
                .map(|(p, h)| (p.clone(), *h))
                .collect(),
        };
        match system.iter_mut().find(|s| s.name == entry.name) {
            Some(existing) => existing.files.extend(entry.files),
            None => system.push(entry),
        }
    }
    system.sort_by(|a, b| a.name.cmp(&b.name));
    Lockfile {
        version: LOCK_VERSION,
        toolchain: LockedToolchain {
            identity: t.identity,
            compiler: t.cxx.display().to_string(),
            version: t.version.clone(),
            stdlib: t.stdlib.as_str().into(),
        },
        packages,
        system,
        outputs: Default::default(),
    }
}

/// The content hash of what a path package's build reads: its manifest, units and the
/// headers they include.
fn files_hash(eval: &Evaluation, id: usize) -> ContentHash {
    let p = &eval.packages.packages[id];
    let mut files: Vec<(String, ContentHash)> = vec![(
        "cmod.toml".into(),
        ContentHash::of_file(false, p.file.text.as_bytes()),
    )];
    for u in &eval.graph.units {
        if let Origin::Package(pid, _) = u.origin {
            if pid == id {
                files.push((u.rel.clone(), u.hash));
                files.extend(
                    u.headers
                        .iter()
                        .filter(|h| h.package.is_none())
                        .map(|h| (h.rel.clone(), h.hash)),
                );
            }
        }
    }
    files.sort();
    files.dedup();
    ContentHash::of_files(files.iter().map(|(f, h)| (f.as_str(), *h)))
}

/// How `old` differs from `new` (outputs aside), one sentence per change.
pub fn changes(old: &Lockfile, new: &Lockfile) -> Vec<String> {
    let mut out = Vec::new();
    if old.toolchain.identity != new.toolchain.identity {
        out.push(format!(
            "the toolchain changed: locked {} ({} {}), now {} ({} {})",
            old.toolchain.identity,
            old.toolchain.compiler,
            old.toolchain.version,
            new.toolchain.identity,
            new.toolchain.compiler,
            new.toolchain.version
        ));
    }
    for p in &new.packages {
        match old.packages.iter().find(|o| o.name == p.name) {
            None => out.push(format!("package `{}` is not in the lock", p.name)),
            Some(o) if o.tree != p.tree => out.push(format!(
                "package `{}` changed after locking: its tree was {}, now {}",
                p.name, o.tree, p.tree
            )),
            Some(o)
                if o.version != p.version
                    || o.source != p.source
                    || o.dependencies != p.dependencies =>
            {
                out.push(format!(
                    "package `{}` is locked as {} from {}, but is now {} from {}",
                    p.name, o.version, o.source, p.version, p.source
                ))
            }
            Some(_) => {}
        }
    }
    for o in &old.packages {
        if !new.packages.iter().any(|p| p.name == o.name) {
            out.push(format!("package `{}` is locked but no longer used", o.name));
        }
    }
    out.extend(system_changes(old, new));
    out
}

/// How the system libraries differ, one sentence per library.
fn system_changes(old: &Lockfile, new: &Lockfile) -> Vec<String> {
    let mut out = Vec::new();
    for s in &new.system {
        let Some(o) = old.system.iter().find(|o| o.name == s.name) else {
            out.push(format!("system library `{}` is not in the lock", s.name));
            continue;
        };
        if o.version != s.version {
            out.push(format!(
                "system library `{}` is locked at version {}, but the system has {}",
                s.name,
                o.version.as_deref().unwrap_or("(none)"),
                s.version.as_deref().unwrap_or("(none)")
            ));
            continue;
        }
        let changed: Vec<String> = s
            .files
            .iter()
            .filter(|(path, hash)| o.files.get(*path) != Some(*hash))
            .map(|(path, _)| path.clone())
            .chain(
                o.files
                    .keys()
                    .filter(|p| !s.files.contains_key(*p))
                    .cloned(),
            )
            .collect();
        if !changed.is_empty() {
            out.push(format!(
                "system library `{}` changed after locking: {}",
                s.name,
                changed.join(", ")
            ));
        }
    }
    for o in &old.system {
        if !new.system.iter().any(|s| s.name == o.name) {
            out.push(format!(
                "system library `{}` is locked but no longer used",
                o.name
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_lock_points_at_the_line() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join(LOCK_NAME);
        std::fs::write(&p, "version = 1\n\n[toolchain]\nidentity = 5\n").unwrap();
        let e = read(&p).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Lock);
        assert_eq!(e.location.unwrap().line, 4, "{}", e.message);
        assert!(e.help.unwrap().contains("cmod lock"));
        assert!(read(&t.path().join("none.lock")).unwrap().is_none());
    }
}
