//! The package graph: the root package and, transitively, its path dependencies, each
//! loaded once (by canonical directory) and ordered so dependencies come first.
//!
//! Each package name must be unique in a graph: two versions of a module cannot coexist
//! in one program, so two different packages with one name is an error naming both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cmod_schema::diag::Location;
use cmod_schema::manifest::{DependencySpec, Spanned};

use crate::error::{ErrorKind, EvalError};
use crate::manifest_file::{ManifestFile, MANIFEST_NAME};

/// Index of a package in [`PackageGraph::packages`].
pub type PackageId = usize;

/// One loaded package.
#[derive(Debug, Clone)]
pub struct Package {
    pub id: PackageId,
    pub name: String,
    pub version: semver::Version,
    /// Canonical directory holding `cmod.toml`.
    pub root: PathBuf,
    pub file: ManifestFile,
    /// Direct (non-dev) dependencies.
    pub deps: Vec<Dependency>,
}

impl Package {
    /// `name-version`, the prefix of every store name of this package.
    pub fn ident(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
}

/// An edge of the package graph.
#[derive(Debug, Clone)]
pub struct Dependency {
    pub name: String,
    pub package: PackageId,
    /// Where the dependency is declared.
    pub location: Location,
}

/// All packages of a build, dependencies before their dependents.
#[derive(Debug, Clone)]
pub struct PackageGraph {
    pub packages: Vec<Package>,
    pub root: PackageId,
}

impl PackageGraph {
    /// Load the package in `dir` and all its path dependencies.
    pub fn load(dir: &Path) -> Result<PackageGraph, EvalError> {
        let mut loader = Loader::default();
        let root_dir = canonical(dir)?;
        let root = loader.visit(&root_dir, None)?;
        Ok(PackageGraph {
            packages: loader.done,
            root,
        })
    }

    pub fn root(&self) -> &Package {
        &self.packages[self.root]
    }

    /// Every package `id` depends on, transitively, dependencies first (excluding `id`).
    pub fn transitive_deps(&self, id: PackageId) -> Vec<PackageId> {
        let mut seen = vec![false; self.packages.len()];
        let mut order = Vec::new();
        fn walk(g: &PackageGraph, id: PackageId, seen: &mut [bool], order: &mut Vec<PackageId>) {
            for d in &g.packages[id].deps {
                if !seen[d.package] {
                    seen[d.package] = true;
                    walk(g, d.package, seen, order);
                    order.push(d.package);
                }
            }
        }
        walk(self, id, &mut seen, &mut order);
        order
    }
}

fn canonical(dir: &Path) -> Result<PathBuf, EvalError> {
    dir.canonicalize()
        .map_err(|e| EvalError::io(dir, "open the directory", e))
}

#[derive(Default)]
struct Loader {
    done: Vec<Package>,
    by_dir: BTreeMap<PathBuf, PackageId>,
    by_name: BTreeMap<String, PackageId>,
    /// Packages being loaded, for cycle detection: (dir, name, where it was required).
    stack: Vec<(PathBuf, String, Option<Location>)>,
}

impl Loader {
    fn visit(&mut self, dir: &Path, required_at: Option<Location>) -> Result<PackageId, EvalError> {
        if let Some(&id) = self.by_dir.get(dir) {
            return Ok(id);
        }
        if let Some(pos) = self.stack.iter().position(|(d, _, _)| d == dir) {
            let mut cycle: Vec<String> = self.stack[pos..]
                .iter()
                .map(|(_, n, _)| n.clone())
                .collect();
            cycle.push(self.stack[pos].1.clone());
            return Err(EvalError::new(
                ErrorKind::Dependency,
                format!(
                    "packages depend on each other in a cycle: {}",
                    cycle.join(" → ")
                ),
            )
            .at_opt(required_at)
            .help("remove one of these dependencies; a package graph must be acyclic"));
        }
        let file = ManifestFile::load(&dir.join(MANIFEST_NAME)).map_err(|e| {
            match (&required_at, e.kind) {
                (Some(at), ErrorKind::ManifestMissing) => EvalError::new(
                    ErrorKind::Dependency,
                    format!(
                        "dependency directory `{}` has no `{MANIFEST_NAME}`",
                        dir.display()
                    ),
                )
                .at(at.clone())
                .help("point `path` at a directory that contains a cmod package"),
                _ => e,
            }
        })?;
        let Some(package) = file.manifest.package.clone() else {
            return Err(EvalError::new(
                ErrorKind::ManifestInvalid,
                format!("`{}` has no [package] table", file.path.display()),
            )
            .at(file.location_or_file(0..0))
            .help("add\n\n[package]\nname = \"my-package\"\nversion = \"0.1.0\"\n"));
        };
        let name = package.name.get_ref().as_str().to_string();
        let version = package.version.get_ref().0.clone();
        self.stack
            .push((dir.to_path_buf(), name.clone(), required_at.clone()));

        let mut deps = Vec::new();
        for (dep_name, spec) in &file.manifest.dependencies {
            let location = file.location(spec.span());
            let dep_dir = dependency_dir(&file, dep_name, spec)?;
            let id = self.visit(&dep_dir, Some(location.clone()))?;
            let found = &self.done[id].name;
            if found != dep_name {
                return Err(EvalError::new(
                    ErrorKind::Dependency,
                    format!(
                        "dependency `{dep_name}` points at `{}`, whose package is named `{found}`",
                        dep_dir.display()
                    ),
                )
                .at(location)
                .help(format!("rename the dependency key to `{found}`")));
            }
            deps.push(Dependency {
                name: dep_name.clone(),
                package: id,
                location,
            });
        }
        self.stack.pop();

        if let Some(&other) = self.by_name.get(&name) {
            let other = &self.done[other];
            return Err(EvalError::new(
                ErrorKind::Dependency,
                format!(
                    "two different packages are named `{name}`: `{}` and `{}`",
                    other.root.display(),
                    dir.display()
                ),
            )
            .at_opt(required_at)
            .help("one program can hold only one package of a name; depend on the same directory from both places"));
        }
        let id = self.done.len();
        self.by_dir.insert(dir.to_path_buf(), id);
        self.by_name.insert(name.clone(), id);
        self.done.push(Package {
            id,
            name,
            version,
            root: dir.to_path_buf(),
            file,
            deps,
        });
        Ok(id)
    }
}

/// Check the dependency spec's shape and return its directory.
fn dependency_dir(
    file: &ManifestFile,
    name: &str,
    spec: &Spanned<DependencySpec>,
) -> Result<PathBuf, EvalError> {
    let location = file.location(spec.span());
    let s = spec.get_ref();
    let pins: Vec<&str> = [
        ("tag", s.tag.is_some()),
        ("rev", s.rev.is_some()),
        ("branch", s.branch.is_some()),
        ("version", s.version.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(n, _)| *n)
    .collect();
    let invalid = |msg: String, help: &str| {
        Err(EvalError::new(ErrorKind::ManifestInvalid, msg)
            .at(location.clone())
            .help(help.to_string()))
    };
    match (&s.path, &s.git) {
        (Some(_), Some(_)) => invalid(
            format!("dependency `{name}` gives both `path` and `git`"),
            "keep exactly one source: `path = \"...\"` or `git = \"...\"`",
        ),
        (None, None) => invalid(
            format!("dependency `{name}` has no source"),
            "add `path = \"../dir\"` or `git = \"https://...\"`",
        ),
        (Some(_), None) if !pins.is_empty() => invalid(
            format!("dependency `{name}` is a path dependency but sets `{}`", pins.join("`, `")),
            "`tag`, `rev`, `branch` and `version` only apply to `git` dependencies",
        ),
        (None, Some(_)) if pins.len() > 1 => invalid(
            format!("dependency `{name}` sets `{}` together", pins.join("` and `")),
            "pin a git dependency with exactly one of `tag`, `rev`, `branch` or `version`",
        ),
        (None, Some(url)) => Err(EvalError::new(
            ErrorKind::Unsupported,
            format!("dependency `{name}` comes from git (`{url}`), which this version of cmod cannot fetch yet"),
        )
        .at(location.clone())
        .help("vendor the package and use `path = \"...\"` until git dependencies land")),
        (Some(path), None) => {
            let dir = file.dir().join(path);
            dir.canonicalize().map_err(|e| {
                EvalError::new(
                    ErrorKind::Dependency,
                    format!("dependency `{name}`: cannot open `{}`: {e}", dir.display()),
                )
                .at(location.clone())
                .help("fix `path`; it is relative to the directory of this cmod.toml")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn pkg(name: &str, deps: &str) -> String {
        format!("[package]\nname = \"{name}\"\nversion = \"1.0.0\"\n[dependencies]\n{deps}")
    }

    #[test]
    fn diamond_loads_each_package_once_in_order() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "a/cmod.toml",
            &pkg("a", "b = { path = \"../b\" }\nc = { path = \"../c\" }\n"),
        );
        write(
            t.path(),
            "b/cmod.toml",
            &pkg("b", "d = { path = \"../d\" }\n"),
        );
        write(
            t.path(),
            "c/cmod.toml",
            &pkg("c", "d = { path = \"../d\" }\n"),
        );
        write(t.path(), "d/cmod.toml", &pkg("d", ""));
        let g = PackageGraph::load(&t.path().join("a")).unwrap();
        let names: Vec<&str> = g.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["d", "b", "c", "a"]);
        assert_eq!(g.root().name, "a");
        let deps: Vec<&str> = g
            .transitive_deps(g.root)
            .iter()
            .map(|&i| g.packages[i].name.as_str())
            .collect();
        assert_eq!(deps, ["d", "b", "c"]);
    }

    #[test]
    fn cycle_is_reported_with_its_members() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "a/cmod.toml",
            &pkg("a", "b = { path = \"../b\" }\n"),
        );
        write(
            t.path(),
            "b/cmod.toml",
            &pkg("b", "a = { path = \"../a\" }\n"),
        );
        let e = PackageGraph::load(&t.path().join("a")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Dependency);
        assert!(e.message.contains("a → b → a"), "{e}");
        assert!(e.location.unwrap().file.ends_with("b/cmod.toml"));
    }

    #[test]
    fn wrong_name_and_missing_dir() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "a/cmod.toml",
            &pkg("a", "x = { path = \"../b\" }\n"),
        );
        write(t.path(), "b/cmod.toml", &pkg("b", ""));
        let e = PackageGraph::load(&t.path().join("a")).unwrap_err();
        assert!(e.message.contains("whose package is named `b`"), "{e}");
        assert_eq!(e.help.as_deref(), Some("rename the dependency key to `b`"));

        write(
            t.path(),
            "c/cmod.toml",
            &pkg("c", "nope = { path = \"../nope\" }\n"),
        );
        let e = PackageGraph::load(&t.path().join("c")).unwrap_err();
        assert!(e.message.contains("cannot open"), "{e}");
        assert_eq!(e.location.unwrap().line, 5);
    }

    #[test]
    fn conflicting_sources_are_rejected_at_the_line() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "a/cmod.toml",
            &pkg("a", "b = { path = \"../b\", git = \"file:///x\" }\n"),
        );
        let e = PackageGraph::load(&t.path().join("a")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ManifestInvalid);
        assert!(e.message.contains("both `path` and `git`"), "{e}");
        assert_eq!(e.location.unwrap().line, 5);

        write(
            t.path(),
            "d/cmod.toml",
            &pkg(
                "d",
                "b = { git = \"file:///x\", tag = \"v1\", rev = \"abc\" }\n",
            ),
        );
        let e = PackageGraph::load(&t.path().join("d")).unwrap_err();
        assert!(e.message.contains("sets `tag` and `rev` together"), "{e}");
    }

    #[test]
    fn missing_package_table() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "a/cmod.toml", "[lib]\n");
        let e = PackageGraph::load(&t.path().join("a")).unwrap_err();
        assert!(e.message.contains("no [package] table"), "{e}");
    }
}
