//! The module graph: every translation unit, what it provides, what it imports, and the
//! checks that make a module program well-formed.
//!
//! Nodes are units, not modules: a module has one primary interface and any number of
//! partitions and implementation units, all distinct nodes. Module names are unique
//! across a build graph. A unit may import modules of its own package, of its own binary
//! or test (for their units), and of its package's **direct** dependencies — for a test's
//! units, its dev-dependencies too; partitions are importable only from within their
//! module. The standard library module `std` (and
//! `std.compat`) comes from the toolchain when it ships one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cmod_schema::content::ContentHash;
use cmod_schema::diag::Location;

use crate::deps::GitRef;
use crate::error::{did_you_mean, ErrorKind, EvalError};
use crate::package::{PackageGraph, PackageId, PackageSource};
use crate::scan::{HeaderDep, Scanned};

/// Index into [`ModuleGraph::units`].
pub type UnitId = usize;

/// The five kinds of translation unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnitKind {
    /// `export module m;`
    PrimaryInterface,
    /// `export module m:p;`
    ExportedPartition,
    /// `module m:p;`
    InternalPartition,
    /// `module m;`
    Implementation,
    /// No module declaration.
    Plain,
}

impl UnitKind {
    /// Units that produce a BMI.
    pub fn is_importable(self) -> bool {
        matches!(
            self,
            UnitKind::PrimaryInterface | UnitKind::ExportedPartition | UnitKind::InternalPartition
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            UnitKind::PrimaryInterface => "primary module interface",
            UnitKind::ExportedPartition => "exported partition",
            UnitKind::InternalPartition => "internal partition",
            UnitKind::Implementation => "module implementation unit",
            UnitKind::Plain => "plain translation unit",
        }
    }
}

/// Which target of its package a unit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    Lib,
    Bin(usize),
    /// A `[[test]]` binary (index into the package's tests).
    Test(usize),
}

/// Where a unit's source comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Package(PackageId, Owner),
    /// The toolchain's standard library module sources (`std.cppm`, `std.compat.cppm`).
    Toolchain,
}

/// An import, fully qualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub name: String,
    pub line: u32,
    pub exported: bool,
}

/// One translation unit.
#[derive(Debug, Clone)]
pub struct Unit {
    pub origin: Origin,
    /// Path relative to the package root (or to the toolchain's module directory).
    pub rel: String,
    /// Absolute host path.
    pub abs: PathBuf,
    pub hash: ContentHash,
    pub kind: UnitKind,
    /// The module provided (importable units) or implemented (implementation units).
    pub module: Option<String>,
    pub module_line: u32,
    pub imports: Vec<Import>,
    pub headers: Vec<HeaderDep>,
}

impl Unit {
    fn location(&self, line: u32) -> Location {
        Location {
            file: self.abs.clone(),
            line,
            column: 1,
        }
    }

    pub fn package(&self) -> Option<PackageId> {
        match self.origin {
            Origin::Package(p, _) => Some(p),
            Origin::Toolchain => None,
        }
    }
}

/// A checked module graph.
#[derive(Debug, Clone)]
pub struct ModuleGraph {
    pub units: Vec<Unit>,
    /// Module name → the unit providing it.
    pub providers: BTreeMap<String, UnitId>,
    /// For every unit, the providers of its imports (resolved).
    pub edges: Vec<Vec<UnitId>>,
    /// Problems that do not stop the build.
    pub warnings: Vec<EvalError>,
}

/// A unit as handed to [`ModuleGraph::build`]: scanned, not yet classified.
#[derive(Debug, Clone)]
pub struct RawUnit {
    pub origin: Origin,
    pub rel: String,
    pub abs: PathBuf,
    pub hash: ContentHash,
    pub scanned: Scanned,
}

fn classify(s: &Scanned) -> (UnitKind, Option<String>) {
    match &s.provides {
        Some((name, true)) if name.contains(':') => {
            (UnitKind::ExportedPartition, Some(name.clone()))
        }
        Some((name, false)) if name.contains(':') => {
            (UnitKind::InternalPartition, Some(name.clone()))
        }
        Some((name, _)) => (UnitKind::PrimaryInterface, Some(name.clone())),
        None => match &s.decls.module {
            Some(m) if !m.exported && !m.name.contains(':') => {
                (UnitKind::Implementation, Some(m.name.clone()))
            }
            _ => (UnitKind::Plain, None),
        },
    }
}

fn module_of(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

impl ModuleGraph {
    /// Classify, resolve and check `raw` units of `packages`.
    pub fn build(packages: &PackageGraph, raw: Vec<RawUnit>) -> Result<ModuleGraph, EvalError> {
        let mut units = Vec::with_capacity(raw.len());
        for r in raw {
            let (kind, module) = classify(&r.scanned);
            let module_line = r.scanned.decls.module.as_ref().map_or(1, |m| m.line);
            let imports = r
                .scanned
                .requires
                .iter()
                .map(|name| {
                    let decl = r
                        .scanned
                        .decls
                        .imports
                        .iter()
                        .find(|i| r.scanned.decls.refers_to(&i.target, name));
                    Import {
                        name: name.clone(),
                        line: decl.map_or(module_line, |d| d.line),
                        exported: decl.is_some_and(|d| d.exported),
                    }
                })
                .collect();
            units.push(Unit {
                origin: r.origin,
                rel: r.rel,
                abs: r.abs,
                hash: r.hash,
                kind,
                module,
                module_line,
                imports,
                headers: r.scanned.headers,
            });
        }

        let providers = providers(&units)?;
        let mut graph = ModuleGraph {
            units,
            providers,
            edges: Vec::new(),
            warnings: Vec::new(),
        };
        graph.check_owners()?;
        graph.edges = (0..graph.units.len())
            .map(|u| graph.resolve_imports(packages, u))
            .collect::<Result<_, _>>()?;
        graph.check_cycles()?;
        graph.warn_unexported_partitions();
        Ok(graph)
    }

    /// Partitions and implementation units need their module's primary interface in the
    /// same package.
    fn check_owners(&self) -> Result<(), EvalError> {
        for u in &self.units {
            let Some(name) = &u.module else { continue };
            let wanted = module_of(name);
            let primary = self
                .providers
                .get(wanted)
                .map(|&p| &self.units[p])
                .filter(|p| p.kind == UnitKind::PrimaryInterface);
            let same_package = primary.is_some_and(|p| p.package() == u.package());
            match u.kind {
                UnitKind::ExportedPartition | UnitKind::InternalPartition if !same_package => {
                    return Err(EvalError::new(
                        ErrorKind::PartitionWithoutPrimary,
                        format!(
                            "{} `{name}` belongs to module `{wanted}`, which has no primary interface in this package",
                            u.kind.describe()
                        ),
                    )
                    .at(u.location(u.module_line))
                    .help(format!(
                        "add a unit with `export module {wanted};` (and `export import :{};` for exported partitions) to the package's sources",
                        name.split(':').nth(1).unwrap_or("")
                    )));
                }
                UnitKind::Implementation if !same_package => {
                    return Err(EvalError::new(
                        ErrorKind::ImplementationWithoutInterface,
                        format!("implementation unit of module `{name}` has no interface `export module {name};` in this package"),
                    )
                    .at(u.location(u.module_line))
                    .help(format!("add the interface unit (`export module {name};`) to the package's sources, or fix the module name")));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn visible(&self, packages: &PackageGraph, importer: &Unit, provider: &Unit) -> bool {
        match (importer.origin, provider.origin) {
            (_, Origin::Toolchain) => true,
            (Origin::Toolchain, Origin::Package(..)) => false,
            (Origin::Package(ip, io), Origin::Package(pp, po)) => {
                if ip == pp {
                    po == Owner::Lib || po == io
                } else {
                    po == Owner::Lib
                        && provider.kind == UnitKind::PrimaryInterface
                        && packages.packages[ip].depends_on(pp, matches!(io, Owner::Test(_)))
                }
            }
        }
    }

    fn resolve_imports(
        &self,
        packages: &PackageGraph,
        u: UnitId,
    ) -> Result<Vec<UnitId>, EvalError> {
        let unit = &self.units[u];
        let mut out = Vec::new();
        for imp in &unit.imports {
            let at = unit.location(imp.line);
            let Some(&p) = self.providers.get(&imp.name) else {
                return Err(self.unknown_import(packages, unit, imp, at));
            };
            let provider = &self.units[p];
            if imp.name.contains(':')
                && unit.module.as_deref().map(module_of) != Some(module_of(&imp.name))
            {
                return Err(EvalError::new(
                    ErrorKind::UnknownImport,
                    format!(
                        "partition `{}` can only be imported by units of module `{}`",
                        imp.name,
                        module_of(&imp.name)
                    ),
                )
                .at(at)
                .help(format!(
                    "import the module instead: `import {};`",
                    module_of(&imp.name)
                )));
            }
            if !self.visible(packages, unit, provider) {
                return Err(self.invisible_import(packages, unit, provider, imp, at));
            }
            if p != u && !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(out)
    }

    fn unknown_import(
        &self,
        packages: &PackageGraph,
        unit: &Unit,
        imp: &Import,
        at: Location,
    ) -> EvalError {
        if imp.name == "std" || imp.name == "std.compat" {
            return EvalError::new(
                ErrorKind::UnknownImport,
                format!("`import {};` needs a standard library that ships the `{}` module", imp.name, imp.name),
            )
            .at(at)
            .help("set [toolchain] stdlib = \"libc++\" (libstdc++ 12 has no std module), or #include the headers you need");
        }
        let candidates: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        let mut e = EvalError::new(
            ErrorKind::UnknownImport,
            format!(
                "`{}` imports module `{}`, which no unit provides",
                unit.rel, imp.name
            ),
        )
        .at(at);
        e = match did_you_mean(&imp.name, candidates) {
            Some(s) => e.help(format!("did you mean `{s}`?")),
            None => e.help(match unit.package() {
                Some(p) => format!(
                    "add the package that provides `{}` to [dependencies] of `{}`, or add a unit with `export module {};`",
                    imp.name,
                    packages.packages[p].file.path.display(),
                    imp.name
                ),
                None => "this module is not part of the toolchain".into(),
            }),
        };
        e
    }

    fn invisible_import(
        &self,
        packages: &PackageGraph,
        unit: &Unit,
        provider: &Unit,
        imp: &Import,
        at: Location,
    ) -> EvalError {
        let (Some(ip), Some(pp)) = (unit.package(), provider.package()) else {
            return EvalError::new(
                ErrorKind::UnknownImport,
                format!("module `{}` is not visible here", imp.name),
            )
            .at(at);
        };
        let importer = &packages.packages[ip];
        let owner = &packages.packages[pp];
        if ip == pp {
            return EvalError::new(
                ErrorKind::UnknownImport,
                format!(
                    "module `{}` belongs to another binary or test of package `{}`",
                    imp.name, owner.name
                ),
            )
            .at(at)
            .help("move the module into [lib] sources to share it between targets");
        }
        if provider.kind != UnitKind::PrimaryInterface {
            return EvalError::new(
                ErrorKind::UnknownImport,
                format!("`{}` is a partition of package `{}` and cannot be imported from another package", imp.name, owner.name),
            )
            .at(at)
            .help(format!("import the module instead: `import {};`", module_of(&imp.name)));
        }
        let for_test = matches!(unit.origin, Origin::Package(_, Owner::Test(_)));
        let e = if importer.dev_depends_on(pp) {
            EvalError::new(
                ErrorKind::UndeclaredDependency,
                format!(
                    "module `{}` is provided by package `{}`, which is only a dev-dependency of `{}`: only its [[test]] targets may import it",
                    imp.name, owner.name, importer.name
                ),
            )
            .at(at)
            .help(format!(
                "move `{}` from [dev-dependencies] to [dependencies] in `{}`, or import `{}` from a test only",
                owner.name,
                importer.file.path.display(),
                imp.name
            ))
        } else {
            let table = if for_test {
                "[dev-dependencies]"
            } else {
                "[dependencies]"
            };
            let dev = if for_test { " --dev" } else { "" };
            let help = match suggested_dependency(packages, ip, pp) {
                Some((spec, add)) => format!(
                    "add `{} = {spec}` to {table} in `{}`{}",
                    owner.name,
                    importer.file.path.display(),
                    add.map(|a| format!(" (or run `cmod add {}{dev} {a}`)", owner.name))
                        .unwrap_or_default()
                ),
                None => format!(
                    "`{}` lives inside the git repository of another package and cannot be declared on its own; depend on that repository's package, or copy `{}` into a path dependency",
                    owner.name, owner.name
                ),
            };
            EvalError::new(
                ErrorKind::UndeclaredDependency,
                format!(
                    "module `{}` is provided by package `{}`, which `{}` does not depend on",
                    imp.name, owner.name, importer.name
                ),
            )
            .at(at)
            .help(help)
        };
        e.note(
            Some(provider.location(provider.module_line)),
            format!("`{}` is declared here", imp.name),
        )
    }

    fn check_cycles(&self) -> Result<(), EvalError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut mark = vec![Mark::New; self.units.len()];
        let mut stack: Vec<UnitId> = Vec::new();
        fn visit(
            g: &ModuleGraph,
            u: UnitId,
            mark: &mut [Mark],
            stack: &mut Vec<UnitId>,
        ) -> Result<(), EvalError> {
            mark[u] = Mark::Active;
            stack.push(u);
            for &v in &g.edges[u] {
                match mark[v] {
                    Mark::Done => {}
                    Mark::New => visit(g, v, mark, stack)?,
                    Mark::Active => {
                        let start = stack.iter().position(|&s| s == v).unwrap_or(0);
                        let cycle = &stack[start..];
                        return Err(g.cycle_error(cycle));
                    }
                }
            }
            stack.pop();
            mark[u] = Mark::Done;
            Ok(())
        }
        for u in 0..self.units.len() {
            if mark[u] == Mark::New {
                visit(self, u, &mut mark, &mut stack)?;
            }
        }
        Ok(())
    }

    fn cycle_error(&self, cycle: &[UnitId]) -> EvalError {
        let name = |u: UnitId| {
            self.units[u]
                .module
                .clone()
                .unwrap_or_else(|| self.units[u].rel.clone())
        };
        let mut path: Vec<String> = cycle.iter().map(|&u| name(u)).collect();
        path.push(name(cycle[0]));
        let first = &self.units[cycle[0]];
        let next = cycle.get(1).copied().unwrap_or(cycle[0]);
        let line_of = |from: UnitId, to: UnitId| {
            let to_name = name(to);
            self.units[from]
                .imports
                .iter()
                .find(|i| i.name == to_name)
                .map_or(1, |i| i.line)
        };
        let mut e = EvalError::new(
            ErrorKind::ImportCycle,
            format!("modules import each other in a cycle: {}", path.join(" → ")),
        )
        .at(first.location(line_of(cycle[0], next)));
        for (i, &u) in cycle.iter().enumerate() {
            let to = cycle[(i + 1) % cycle.len()];
            e = e.note(
                Some(self.units[u].location(line_of(u, to))),
                format!("`{}` imports `{}` here", name(u), name(to)),
            );
        }
        e.help("break the cycle: move the shared declarations into a module both can import")
    }

    /// Exported partitions must be re-exported by the primary interface, directly or
    /// through other exported partitions ([module.unit]/3; no diagnostic required).
    fn warn_unexported_partitions(&mut self) {
        let mut warnings = Vec::new();
        for (name, &p) in &self.providers {
            let unit = &self.units[p];
            if unit.kind != UnitKind::ExportedPartition {
                continue;
            }
            let module = module_of(name);
            let Some(&primary) = self.providers.get(module) else {
                continue;
            };
            let mut reached = BTreeSet::new();
            let mut todo = vec![primary];
            while let Some(u) = todo.pop() {
                for imp in self.units[u].imports.iter().filter(|i| i.exported) {
                    if let Some(&t) = self.providers.get(&imp.name) {
                        if reached.insert(t) {
                            todo.push(t);
                        }
                    }
                }
            }
            if !reached.contains(&p) {
                let part = name.split(':').nth(1).unwrap_or("");
                warnings.push(
                    EvalError::new(
                        ErrorKind::ManifestInvalid,
                        format!("exported partition `{name}` is not re-exported by the primary interface of `{module}`"),
                    )
                    .at(unit.location(unit.module_line))
                    .help(format!(
                        "add `export import :{part};` to `{}`, or make the partition internal (`module {name};`)",
                        self.units[primary].rel
                    )),
                );
            }
        }
        self.warnings = warnings;
    }

    /// Every importable unit `u` depends on, transitively (excluding `u`), sorted by module
    /// name: exactly the `-fmodule-file=` list of its compile.
    pub fn closure(&self, u: UnitId) -> Vec<UnitId> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<UnitId> = self.edges[u].clone();
        while let Some(v) = todo.pop() {
            if v != u && seen.insert(v) {
                todo.extend(self.edges[v].iter().copied());
            }
        }
        let mut out: Vec<UnitId> = seen.into_iter().collect();
        out.sort_by(|&a, &b| self.units[a].module.cmp(&self.units[b].module));
        out
    }
}

/// How package `importer` can declare a dependency on `owner`: the inline table to add
/// and, where `cmod add` can write it, that command's arguments. A git package is
/// suggested with its URL and the pin it was resolved with; a package the workspace
/// declares in [workspace.dependencies] with `workspace = true`; anything else by path.
/// `None` for a package inside another package's git repository, which cannot be
/// declared on its own.
fn suggested_dependency(
    packages: &PackageGraph,
    importer: PackageId,
    owner: PackageId,
) -> Option<(String, Option<String>)> {
    let imp = &packages.packages[importer];
    let own = &packages.packages[owner];
    let inherited = packages.is_member(importer)
        && packages
            .workspace_file
            .manifest
            .workspace
            .as_ref()
            .is_some_and(|w| w.get_ref().dependencies.contains_key(&own.name));
    if inherited {
        return Some(("{ workspace = true }".into(), None));
    }
    if let PackageSource::Git(g) = &own.source {
        if own.root != g.dir {
            return None;
        }
        let (key, value) = match &g.reference {
            GitRef::Tag(t) => ("tag", t.clone()),
            GitRef::Rev(r) => ("rev", r.clone()),
            GitRef::Branch(b) => ("branch", b.clone()),
            GitRef::Version(v) => ("version", v.to_string()),
        };
        return Some((
            format!("{{ git = \"{}\", {key} = \"{value}\" }}", g.url),
            Some(format!("--git {} --{key} '{value}'", g.url)),
        ));
    }
    let rel = crate::paths::relative(&imp.root, &own.root);
    Some((
        format!("{{ path = \"{rel}\" }}"),
        Some(format!("--path {rel}")),
    ))
}

fn providers(units: &[Unit]) -> Result<BTreeMap<String, UnitId>, EvalError> {
    let mut providers: BTreeMap<String, UnitId> = BTreeMap::new();
    for (i, u) in units.iter().enumerate() {
        if !u.kind.is_importable() {
            continue;
        }
        let Some(name) = &u.module else { continue };
        if let Some(&first) = providers.get(name) {
            let f = &units[first];
            let what = if name.contains(':') {
                "partition"
            } else {
                "module"
            };
            return Err(EvalError::new(
                ErrorKind::DuplicateModule,
                format!("{what} `{name}` is declared twice"),
            )
            .at(u.location(u.module_line))
            .note(Some(f.location(f.module_line)), "first declared here")
            .help(format!(
                "rename one of them; a {what} name must be unique in the whole build (implementation units use `module {};` without `export`)",
                module_of(name)
            )));
        }
        providers.insert(name.clone(), i);
    }
    Ok(providers)
}

#[cfg(test)]
mod tests;
