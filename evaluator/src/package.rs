//! The package graph: the workspace (or single package) and, transitively, its path and
//! git dependencies, each loaded once (by canonical directory) and ordered so dependencies
//! come first (a member's dev-dependencies may follow it). Workspace members'
//! `[dev-dependencies]` (and what they depend on) are part of the graph, so they are
//! resolved and locked whatever is built; those of other packages are not (as in Cargo).
//!
//! Each package name resolves to one package per graph: two versions of a module cannot
//! coexist in one program. Requirements that cannot share one package are an error naming
//! both requirers. Semver requirements on the same git package are satisfied together:
//! when a later requirement rules out the version chosen first, resolution restarts with
//! every requirement known so far and takes the highest tag matching all of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cmod_schema::diag::Location;
use cmod_schema::manifest::{DependencySpec, Spanned};

use crate::deps::{Fetcher, GitPackage, GitRef};
use crate::error::{ErrorKind, EvalError};
use crate::manifest_file::{ManifestFile, MANIFEST_NAME};
use crate::workspace::{self, Workspace};

/// Index of a package in [`PackageGraph::packages`].
pub type PackageId = usize;

/// Where a package comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageSource {
    /// A member of the workspace (or the single package being built).
    Member,
    /// A path dependency outside the workspace.
    Path,
    /// A git dependency, checked out in the store.
    Git(GitPackage),
}

/// One loaded package.
#[derive(Debug, Clone)]
pub struct Package {
    /// Index in [`PackageGraph::packages`].
    pub id: PackageId,
    /// The package name.
    pub name: String,
    /// The package version.
    pub version: semver::Version,
    /// Canonical directory holding `cmod.toml`.
    pub root: PathBuf,
    /// Its manifest.
    pub file: ManifestFile,
    /// Direct (non-dev) dependencies.
    pub deps: Vec<Dependency>,
    /// `[dev-dependencies]`, visible to the package's tests only. Loaded for workspace
    /// members alone: a dependency's dev-dependencies are never part of the graph.
    pub dev_deps: Vec<Dependency>,
    /// System libraries declared in `[dependencies]` (`zlib = { system = "zlib" }`).
    pub system: Vec<SystemDep>,
    /// Those declared in `[dev-dependencies]`, for the package's tests only.
    pub dev_system: Vec<SystemDep>,
    /// Where the package comes from.
    pub source: PackageSource,
}

/// A system library a package depends on, found through pkg-config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemDep {
    /// The dependency's key.
    pub name: String,
    /// The pkg-config module (`zlib`).
    pub module: String,
    /// A requirement on the version pkg-config reports.
    pub version: Option<semver::VersionReq>,
    /// Whether the package's consumers inherit its compile flags.
    pub public: bool,
    /// Where the dependency is declared.
    pub location: Location,
}

impl Package {
    /// `name-version`, the prefix of every store name of this package.
    pub fn ident(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }

    /// Whether `package` is a direct dependency, counting dev-dependencies `for_tests`.
    pub fn depends_on(&self, package: PackageId, for_tests: bool) -> bool {
        self.deps.iter().any(|d| d.package == package)
            || (for_tests && self.dev_deps.iter().any(|d| d.package == package))
    }

    /// Whether `package` is one of the dev-dependencies.
    pub fn dev_depends_on(&self, package: PackageId) -> bool {
        self.dev_deps.iter().any(|d| d.package == package)
    }
}

/// An edge of the package graph.
#[derive(Debug, Clone)]
pub struct Dependency {
    /// The dependency's key in the manifest.
    pub name: String,
    /// The package it resolved to.
    pub package: PackageId,
    /// Where the dependency is declared.
    pub location: Location,
    /// `public = true`: the package's consumers inherit this dependency's usage
    /// requirements (its libraries' public include directories and defines).
    pub public: bool,
}

/// All packages of a build, dependencies before their dependents.
#[derive(Debug, Clone)]
pub struct PackageGraph {
    /// Every package, dependencies before their dependents; indexed by [`PackageId`].
    pub packages: Vec<Package>,
    /// The directory holding the workspace (or single package) manifest and `cmod.lock`.
    pub workspace_root: PathBuf,
    /// That manifest; its `[toolchain]` builds the whole graph.
    pub workspace_file: ManifestFile,
    /// Workspace members (the single package, outside a workspace).
    pub members: Vec<PackageId>,
    /// The members to build: all of them at the workspace root, else the current one.
    pub selected: Vec<PackageId>,
    /// The first selected member.
    pub root: PackageId,
    /// Problems that do not stop the build (e.g. a locked tag that has moved).
    pub warnings: Vec<EvalError>,
}

/// How to load.
#[derive(Default)]
pub struct LoadOptions<'a> {
    /// Resolves git dependencies; without one they are an error.
    pub fetcher: Option<&'a Fetcher<'a>>,
    /// Member names to select (`-p`); empty for the default.
    pub select: Vec<String>,
}

impl PackageGraph {
    /// Load the package or workspace in `dir` with its dependencies.
    pub fn load(dir: &Path, opts: &LoadOptions<'_>) -> Result<PackageGraph, EvalError> {
        let dir = crate::journal::canonicalize(dir)
            .map_err(|e| EvalError::io(dir, "open the directory", e))?;
        let ws = workspace::find(&dir)?;
        let mut extra: BTreeMap<String, Vec<semver::VersionReq>> = BTreeMap::new();
        for _ in 0..16 {
            match Loader::new(opts, ws.clone(), extra.clone()).run(&dir) {
                Ok(g) => return Ok(g),
                Err(Stop::Error(e)) => return Err(e),
                Err(Stop::Restart(name, reqs)) => {
                    let all = extra.entry(name).or_default();
                    for r in reqs {
                        if !all.contains(&r) {
                            all.push(r);
                        }
                    }
                }
            }
        }
        Err(EvalError::new(
            ErrorKind::Dependency,
            "dependency resolution did not settle after 16 rounds",
        ))
    }

    /// The first selected member.
    pub fn root(&self) -> &Package {
        &self.packages[self.root]
    }

    /// Every package `id` depends on, transitively, dependencies first (excluding `id`).
    pub fn transitive_deps(&self, id: PackageId) -> Vec<PackageId> {
        self.closure(id, false)
    }

    /// What the tests of `id` link: its dependencies and dev-dependencies, and theirs
    /// (not their dev-dependencies), transitively, dependencies first (excluding `id`,
    /// even when a dev-dependency depends on it).
    pub fn test_deps(&self, id: PackageId) -> Vec<PackageId> {
        self.closure(id, true)
    }

    fn closure(&self, id: PackageId, with_dev: bool) -> Vec<PackageId> {
        let mut seen = vec![false; self.packages.len()];
        seen[id] = true;
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
        let first: Vec<PackageId> = if with_dev {
            let p = &self.packages[id];
            p.deps
                .iter()
                .chain(&p.dev_deps)
                .map(|d| d.package)
                .collect()
        } else {
            self.packages[id].deps.iter().map(|d| d.package).collect()
        };
        for d in first {
            if !seen[d] {
                seen[d] = true;
                walk(self, d, &mut seen, &mut order);
                order.push(d);
            }
        }
        order
    }

    /// Whether `id` is a workspace member.
    pub fn is_member(&self, id: PackageId) -> bool {
        self.members.contains(&id)
    }
}

enum Stop {
    Error(EvalError),
    /// Re-resolve with these extra version requirements on a package.
    Restart(String, Vec<semver::VersionReq>),
}

impl From<EvalError> for Stop {
    fn from(e: EvalError) -> Self {
        Stop::Error(e)
    }
}

/// A requirement on a git package, remembered for conflict messages.
struct Requirement {
    requirer: String,
    reference: GitRef,
    location: Location,
}

struct Loader<'a> {
    opts: &'a LoadOptions<'a>,
    ws: Option<Workspace>,
    extra: BTreeMap<String, Vec<semver::VersionReq>>,
    done: Vec<Package>,
    by_dir: BTreeMap<PathBuf, PackageId>,
    by_name: BTreeMap<String, PackageId>,
    git: BTreeMap<String, (GitPackage, Vec<Requirement>)>,
    /// Packages being loaded, for cycle detection: (dir, name).
    stack: Vec<(PathBuf, String)>,
    warnings: Vec<EvalError>,
}

fn canonical(dir: &Path, at: &Location) -> Result<PathBuf, EvalError> {
    crate::journal::canonicalize(dir).map_err(|e| {
        EvalError::new(
            ErrorKind::Dependency,
            format!("cannot open `{}`: {e}", dir.display()),
        )
        .at(at.clone())
        .help("fix `path`; it is relative to the directory of the manifest that declares it")
    })
}

impl<'a> Loader<'a> {
    fn new(
        opts: &'a LoadOptions<'a>,
        ws: Option<Workspace>,
        extra: BTreeMap<String, Vec<semver::VersionReq>>,
    ) -> Self {
        Loader {
            opts,
            ws,
            extra,
            done: Vec::new(),
            by_dir: BTreeMap::new(),
            by_name: BTreeMap::new(),
            git: BTreeMap::new(),
            stack: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn run(mut self, dir: &Path) -> Result<PackageGraph, Stop> {
        let (root_dir, member_dirs, file) = match &self.ws {
            Some(ws) => (ws.root.clone(), ws.members.clone(), ws.file.clone()),
            None => (
                dir.to_path_buf(),
                vec![dir.to_path_buf()],
                ManifestFile::load(&dir.join(MANIFEST_NAME))?,
            ),
        };
        let mut members = Vec::new();
        for m in &member_dirs {
            members.push(self.visit(m, None, PackageSource::Member)?);
        }
        let selected: Vec<PackageId> = if !self.opts.select.is_empty() {
            self.opts
                .select
                .iter()
                .map(|n| {
                    members
                        .iter()
                        .copied()
                        .find(|&m| self.done[m].name == *n)
                        .ok_or_else(|| {
                            let names: Vec<&str> = members
                                .iter()
                                .map(|&m| self.done[m].name.as_str())
                                .collect();
                            EvalError::new(
                                ErrorKind::ManifestInvalid,
                                format!("`{n}` is not a member of this workspace"),
                            )
                            .help(format!("members: {}", names.join(", ")))
                        })
                })
                .collect::<Result<_, _>>()?
        } else if dir == root_dir {
            members.clone()
        } else {
            members
                .iter()
                .copied()
                .filter(|&m| self.done[m].root == dir)
                .collect()
        };
        let Some(&root) = selected.first() else {
            return Err(EvalError::new(
                ErrorKind::ManifestInvalid,
                format!("the workspace at `{}` has no members", root_dir.display()),
            )
            .at(file.location_or_file(0..0))
            .help("list member directories in [workspace] members")
            .into());
        };
        Ok(PackageGraph {
            packages: self.done,
            workspace_root: root_dir,
            workspace_file: file,
            members,
            selected,
            root,
            warnings: self.warnings,
        })
    }

    fn visit(
        &mut self,
        dir: &Path,
        required_at: Option<Location>,
        source: PackageSource,
    ) -> Result<PackageId, Stop> {
        if let Some(&id) = self.by_dir.get(dir) {
            return Ok(id);
        }
        self.check_not_in_cycle(dir, &required_at)?;
        let file = load_manifest(dir, &required_at)?;
        let Some(package) = file.manifest.package.clone() else {
            return Err(EvalError::new(
                ErrorKind::ManifestInvalid,
                format!("`{}` has no [package] table", file.path.display()),
            )
            .at(file.location_or_file(0..0))
            .help("add\n\n[package]\nname = \"my-package\"\nversion = \"0.1.0\"\n")
            .into());
        };
        let name = package.name.get_ref().as_str().to_string();
        let version = package.version.get_ref().0.clone();
        self.stack.push((dir.to_path_buf(), name.clone()));

        let deps = self.load_deps(&file, &name, &file.manifest.dependencies, &source)?;
        let system = self.system_deps(&file, &file.manifest.dependencies)?;
        self.stack.pop();

        if let Some(&other) = self.by_name.get(&name) {
            let other = &self.done[other];
            return Err(EvalError::new(ErrorKind::Dependency, format!("two different packages are named `{name}`: `{}` and `{}`", other.root.display(), dir.display()))
                .at_opt(required_at)
                .help("one program can hold only one package of a name; depend on the same source from both places")
                .into());
        }
        let id = self.done.len();
        self.by_dir.insert(dir.to_path_buf(), id);
        self.by_name.insert(name.clone(), id);
        let is_member = source == PackageSource::Member;
        self.done.push(Package {
            id,
            name: name.clone(),
            version,
            root: dir.to_path_buf(),
            file: file.clone(),
            deps,
            dev_deps: Vec::new(),
            system,
            dev_system: Vec::new(),
            source: source.clone(),
        });
        // Dev-dependencies are loaded after the package is registered, so one of them may
        // depend on the package itself (a test helper built on the library), as in Cargo.
        if is_member {
            let dev = self.load_deps(&file, &name, &file.manifest.dev_dependencies, &source)?;
            self.done[id].dev_deps = dev;
            self.done[id].dev_system = self.system_deps(&file, &file.manifest.dev_dependencies)?;
        }
        Ok(id)
    }

    /// An error when `dir` is already being loaded further up: its packages depend on
    /// each other in a cycle.
    fn check_not_in_cycle(&self, dir: &Path, required_at: &Option<Location>) -> Result<(), Stop> {
        let Some(pos) = self.stack.iter().position(|(d, _)| d == dir) else {
            return Ok(());
        };
        let mut cycle: Vec<String> = self.stack[pos..].iter().map(|(_, n)| n.clone()).collect();
        cycle.push(self.stack[pos].1.clone());
        Err(EvalError::new(
            ErrorKind::Dependency,
            format!(
                "packages depend on each other in a cycle: {}",
                cycle.join(" → ")
            ),
        )
        .at_opt(required_at.clone())
        .help("remove one of these dependencies; a package graph must be acyclic")
        .into())
    }

    /// Load the dependencies of one table (`[dependencies]` or `[dev-dependencies]`) of
    /// package `requirer`, checking that each key names the package it points at.
    fn load_deps(
        &mut self,
        file: &ManifestFile,
        requirer: &str,
        table: &BTreeMap<String, Spanned<DependencySpec>>,
        source: &PackageSource,
    ) -> Result<Vec<Dependency>, Stop> {
        let mut deps = Vec::new();
        for (dep_name, spec) in table {
            let location = file.location(spec.span());
            let inherited = self.inherit(file, dep_name, spec, &location)?.0;
            if inherited.system.is_some() {
                continue;
            }
            let public = inherited.public == Some(true) || spec.get_ref().public == Some(true);
            let id = self.dependency(file, requirer, dep_name, spec, &location, source)?;
            let found = &self.done[id].name;
            if found != dep_name {
                return Err(EvalError::new(
                    ErrorKind::Dependency,
                    format!(
                        "dependency `{dep_name}` points at package `{found}` (in `{}`)",
                        self.done[id].root.display()
                    ),
                )
                .at(location)
                .help(format!("rename the dependency key to `{found}`"))
                .into());
            }
            deps.push(Dependency {
                name: dep_name.clone(),
                package: id,
                location,
                public,
            });
        }
        Ok(deps)
    }

    /// As in Cargo, `{ path = "...", version = "..." }` requires the package found at the
    /// path to satisfy the requirement. (A key naming another package is reported by the
    /// caller instead.)
    fn check_path_version(
        &self,
        id: PackageId,
        dep_name: &str,
        req: &semver::VersionReq,
        path: &str,
        location: &Location,
    ) -> Result<(), EvalError> {
        let found = &self.done[id];
        if found.name != dep_name || req.matches(&found.version) {
            return Ok(());
        }
        Err(EvalError::new(
            ErrorKind::Dependency,
            format!(
                "dependency `{dep_name}` requires version `{req}`, but the package at `{path}` is `{dep_name}` {}",
                found.version
            ),
        )
        .at(location.clone())
        .note(
            Some(found.file.location_or_file(found.file.manifest.package.as_ref().map_or(0..0, |p| p.version.span()))),
            format!("`{dep_name}` {} is declared here", found.version),
        )
        .help(format!(
            "change the requirement to one that {} satisfies, or point `path` at a matching `{dep_name}`",
            found.version
        )))
    }

    /// The `system` dependencies of one table, checked.
    fn system_deps(
        &self,
        file: &ManifestFile,
        table: &BTreeMap<String, Spanned<DependencySpec>>,
    ) -> Result<Vec<SystemDep>, EvalError> {
        let mut out = Vec::new();
        for (name, spec) in table {
            let (s, _, location) = self.inherit(file, name, spec, &file.location(spec.span()))?;
            let Some(module) = &s.system else { continue };
            check_shape(&s, name, &location)?;
            if module.is_empty() || module.contains(char::is_whitespace) {
                return Err(EvalError::new(
                    ErrorKind::ManifestInvalid,
                    format!("`{module}` is not a pkg-config package name"),
                )
                .at(location)
                .help("write the name `pkg-config --list-all` shows, e.g. `system = \"zlib\"`"));
            }
            out.push(SystemDep {
                name: name.clone(),
                module: module.clone(),
                version: s.version.as_ref().map(|v| v.0.clone()),
                public: s.public == Some(true) || spec.get_ref().public == Some(true),
                location,
            });
        }
        Ok(out)
    }

    /// Resolve `{ workspace = true }` to the workspace's entry (paths relative to the
    /// workspace root); other specs are returned as they are, relative to `file`.
    fn inherit(
        &self,
        file: &ManifestFile,
        name: &str,
        spec: &Spanned<DependencySpec>,
        location: &Location,
    ) -> Result<(DependencySpec, PathBuf, Location), EvalError> {
        let s = spec.get_ref();
        if s.workspace != Some(true) {
            return Ok((s.clone(), file.dir().to_path_buf(), location.clone()));
        }
        let others = s.path.is_some()
            || s.system.is_some()
            || s.git.is_some()
            || s.tag.is_some()
            || s.rev.is_some()
            || s.branch.is_some()
            || s.version.is_some();
        if others {
            return Err(EvalError::new(ErrorKind::ManifestInvalid, format!("dependency `{name}` sets `workspace = true` and also its own source"))
                .at(location.clone())
                .help("with `workspace = true` the source comes from [workspace.dependencies]; remove the other keys"));
        }
        let Some(ws) = &self.ws else {
            return Err(EvalError::new(ErrorKind::ManifestInvalid, format!("dependency `{name}` uses `workspace = true`, but this package is not in a workspace"))
                .at(location.clone())
                .help("declare its source here, or add this package to a workspace's members"));
        };
        let entry = ws.file.manifest.workspace.as_ref().and_then(|w| w.get_ref().dependencies.get(name)).ok_or_else(|| {
            EvalError::new(ErrorKind::ManifestInvalid, format!("dependency `{name}` uses `workspace = true`, but [workspace.dependencies] has no `{name}`"))
                .at(location.clone())
                .help(format!("add `{name} = {{ ... }}` to [workspace.dependencies] in `{}`", ws.file.path.display()))
        })?;
        Ok((
            entry.get_ref().clone(),
            ws.root.clone(),
            ws.file.location(entry.span()),
        ))
    }
}

/// The manifest of the package in `dir`; a dependency pointing at a directory without
/// one is reported where it is required.
fn load_manifest(dir: &Path, required_at: &Option<Location>) -> Result<ManifestFile, EvalError> {
    ManifestFile::load(&dir.join(MANIFEST_NAME)).map_err(|e| match (required_at, e.kind) {
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
    })
}

/// Check the dependency spec's shape: one source, at most one git pin.
fn check_shape(s: &DependencySpec, name: &str, location: &Location) -> Result<(), EvalError> {
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
    if s.system.is_some() {
        let others: Vec<&str> = [
            ("path", s.path.is_some()),
            ("git", s.git.is_some()),
            ("tag", s.tag.is_some()),
            ("rev", s.rev.is_some()),
            ("branch", s.branch.is_some()),
            ("workspace", s.workspace.is_some()),
        ]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(n, _)| *n)
        .collect();
        if !others.is_empty() {
            return invalid(
                format!(
                    "dependency `{name}` is a system library but also sets `{}`",
                    others.join("`, `")
                ),
                "a `system` dependency is found through pkg-config; it may only add `version` and `public`",
            );
        }
        return Ok(());
    }
    match (&s.path, &s.git) {
        (Some(_), Some(_)) => invalid(
            format!("dependency `{name}` gives both `path` and `git`"),
            "keep exactly one source: `path = \"...\"` or `git = \"...\"`",
        ),
        (None, None) => invalid(
            format!("dependency `{name}` has no source"),
            "add `path = \"../dir\"`, `git = \"https://...\"` or, for a library of the system, `system = \"<pkg-config name>\"`",
        ),
        (Some(_), None) if pins.iter().any(|p| *p != "version") => invalid(
            format!(
                "dependency `{name}` is a path dependency but sets `{}`",
                pins.iter()
                    .filter(|p| **p != "version")
                    .copied()
                    .collect::<Vec<_>>()
                    .join("`, `")
            ),
            "`tag`, `rev` and `branch` only apply to `git` dependencies \
             (a path dependency may state a `version` requirement)",
        ),
        (None, Some(_)) if pins.len() > 1 => invalid(
            format!(
                "dependency `{name}` sets `{}` together",
                pins.join("` and `")
            ),
            "pin a git dependency with exactly one of `tag`, `rev`, `branch` or `version`",
        ),
        _ => Ok(()),
    }
}

mod dependency;

#[cfg(test)]
mod tests;
