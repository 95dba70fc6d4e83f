//! The module graph: every translation unit, what it provides, what it imports, and the
//! checks that make a module program well-formed.
//!
//! Nodes are units, not modules: a module has one primary interface and any number of
//! partitions and implementation units, all distinct nodes. An import resolves **within
//! the importer's scope**: its own target's modules, the modules of the libraries of its
//! package that its target uses, the public modules of its package's direct dependencies
//! (for a test's units, its dev-dependencies too), and the toolchain's `std`. So module
//! names need to be unique only within what one link sees: two tests of a package may
//! each build a module `cfg` from the same source with different defines, while two
//! modules of one name in one link closure (a target, the libraries it links and its
//! packages' libraries) are an error naming both. Partitions are importable only from
//! within their module; a library's private modules only from its own package.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use cmod_schema::content::ContentHash;
use cmod_schema::diag::Location;

use crate::error::EvalError;
use crate::flags::UnitFlags;
use crate::package::{PackageGraph, PackageId};
use crate::scan::{HeaderDep, Scanned, SystemHeader};
use crate::targets::PackageTargets;

mod checks;
mod errors;

pub use crate::targets::Owner;

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

    /// The kind as a phrase for messages (`exported partition`).
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

/// Where a unit's source comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// A package's source, owned by one of its targets.
    Package(PackageId, Owner),
    /// The toolchain's standard library module sources (`std.cppm`, `std.compat.cppm`).
    Toolchain,
}

/// An import, fully qualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The module or partition imported, fully qualified (`m:part`).
    pub name: String,
    /// The line of the import declaration.
    pub line: u32,
    /// `export import`.
    pub exported: bool,
    /// The unit it resolved to.
    pub provider: Option<UnitId>,
}

/// One translation unit.
#[derive(Debug, Clone)]
pub struct Unit {
    /// Which package and target the unit belongs to, or the toolchain.
    pub origin: Origin,
    /// Path relative to the package root (or to the toolchain's module directory).
    pub rel: String,
    /// Absolute host path.
    pub abs: PathBuf,
    /// The content hash of the source.
    pub hash: ContentHash,
    /// Interface, partition, implementation or plain unit.
    pub kind: UnitKind,
    /// The module provided (importable units) or implemented (implementation units).
    pub module: Option<String>,
    /// The line of the module declaration (1 if there is none).
    pub module_line: u32,
    /// Its imports, in source order.
    pub imports: Vec<Import>,
    /// Package headers it includes.
    pub headers: Vec<HeaderDep>,
    /// Headers of the system it includes, tracked by path and hash.
    pub system: Vec<SystemHeader>,
    /// How it is compiled.
    pub flags: Arc<UnitFlags>,
}

impl Unit {
    fn location(&self, line: u32) -> Location {
        Location {
            file: self.abs.clone(),
            line,
            column: 1,
        }
    }

    /// The package the unit belongs to (`None` for the toolchain's units).
    pub fn package(&self) -> Option<PackageId> {
        match self.origin {
            Origin::Package(p, _) => Some(p),
            Origin::Toolchain => None,
        }
    }

    /// The target the unit belongs to (`None` for the toolchain's units).
    pub fn owner(&self) -> Option<Owner> {
        match self.origin {
            Origin::Package(_, o) => Some(o),
            Origin::Toolchain => None,
        }
    }
}

/// A checked module graph.
#[derive(Debug, Clone)]
pub struct ModuleGraph {
    /// Every unit, indexed by [`UnitId`].
    pub units: Vec<Unit>,
    /// For every unit, the providers of its imports (resolved).
    pub edges: Vec<Vec<UnitId>>,
    /// Problems that do not stop the build.
    pub warnings: Vec<EvalError>,
}

/// A unit as handed to [`ModuleGraph::build`]: scanned, not yet classified.
#[derive(Debug, Clone)]
pub struct RawUnit {
    /// Which package and target the unit belongs to, or the toolchain.
    pub origin: Origin,
    /// Path relative to the package root (or the toolchain's module directory).
    pub rel: String,
    /// Absolute host path.
    pub abs: PathBuf,
    /// The content hash of the source.
    pub hash: ContentHash,
    /// What the scanner and lexer found.
    pub scanned: Scanned,
    /// How it is compiled.
    pub flags: Arc<UnitFlags>,
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

pub(crate) fn module_of(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

/// Why a provider is not visible from an importer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hidden {
    /// Same package, another binary or test.
    OtherTarget,
    /// Same package, a library the importer's target does not use.
    UnusedLib(usize),
    /// Another package's partition.
    Partition,
    /// Another package's module its library keeps private.
    Private,
    /// Another package the importer's package does not depend on.
    NotDependency,
    /// The toolchain's modules cannot import packages.
    FromToolchain,
}

/// What a graph is built from.
pub struct GraphInput<'a> {
    /// The loaded packages.
    pub packages: &'a PackageGraph,
    /// Each package's checked targets, for visibility rules.
    pub targets: &'a [PackageTargets],
}

impl ModuleGraph {
    /// Classify, resolve and check `raw` units.
    pub fn build(input: &GraphInput<'_>, raw: Vec<RawUnit>) -> Result<ModuleGraph, EvalError> {
        let units: Vec<Unit> = raw.into_iter().map(unit_of).collect();
        let mut by_name: BTreeMap<String, Vec<UnitId>> = BTreeMap::new();
        for (i, u) in units.iter().enumerate() {
            if let (true, Some(name)) = (u.kind.is_importable(), &u.module) {
                by_name.entry(name.clone()).or_default().push(i);
            }
        }
        let mut graph = ModuleGraph {
            units,
            edges: Vec::new(),
            warnings: Vec::new(),
        };
        graph.check_owners(input, &by_name)?;
        let mut edges = Vec::with_capacity(graph.units.len());
        for u in 0..graph.units.len() {
            let resolved = graph.resolve_imports(input, &by_name, u)?;
            edges.push(
                resolved
                    .iter()
                    .map(|(_, p)| *p)
                    .fold(Vec::new(), |mut acc, p| {
                        if p != u && !acc.contains(&p) {
                            acc.push(p);
                        }
                        acc
                    }),
            );
            for (i, p) in resolved {
                graph.units[u].imports[i].provider = Some(p);
            }
        }
        graph.edges = edges;
        checks::check_cycles(&graph)?;
        checks::check_link_closures(&graph, input)?;
        checks::check_public_modules(&graph, input)?;
        graph.warnings = checks::unexported_partitions(&graph);
        Ok(graph)
    }

    /// Whether `provider` is importable from `importer`.
    pub(crate) fn scope(
        &self,
        input: &GraphInput<'_>,
        importer: &Unit,
        provider: &Unit,
    ) -> Result<(), Hidden> {
        let (ip, io, pp, po) = match (importer.origin, provider.origin) {
            (_, Origin::Toolchain) => return Ok(()),
            (Origin::Toolchain, Origin::Package(..)) => return Err(Hidden::FromToolchain),
            (Origin::Package(ip, io), Origin::Package(pp, po)) => (ip, io, pp, po),
        };
        if ip == pp {
            if po == io {
                return Ok(());
            }
            let Owner::Lib(l) = po else {
                return Err(Hidden::OtherTarget);
            };
            let visible = input.targets[ip]
                .get(io)
                .is_some_and(|t| t.visible_libs.contains(&l));
            return if visible {
                Ok(())
            } else {
                Err(Hidden::UnusedLib(l))
            };
        }
        let Owner::Lib(l) = po else {
            return Err(Hidden::OtherTarget);
        };
        if provider.kind != UnitKind::PrimaryInterface {
            return Err(Hidden::Partition);
        }
        if !input.packages.packages[ip].depends_on(pp, io.is_test()) {
            return Err(Hidden::NotDependency);
        }
        if !is_public(input, pp, l, provider) {
            return Err(Hidden::Private);
        }
        Ok(())
    }

    /// The providers of `name` visible from unit `u`: exactly one, or an error.
    fn provider(
        &self,
        input: &GraphInput<'_>,
        by_name: &BTreeMap<String, Vec<UnitId>>,
        u: UnitId,
        name: &str,
        line: u32,
    ) -> Result<UnitId, EvalError> {
        let unit = &self.units[u];
        let candidates = by_name.get(name).map(Vec::as_slice).unwrap_or(&[]);
        let visible: Vec<UnitId> = candidates
            .iter()
            .copied()
            .filter(|&c| self.scope(input, unit, &self.units[c]).is_ok())
            .collect();
        match visible.as_slice() {
            [one] => Ok(*one),
            [first, second, ..] => Err(errors::duplicate(self, input, *first, *second, None)),
            [] => Err(errors::not_visible(self, input, by_name, u, name, line)),
        }
    }

    /// Partitions and implementation units need their module's primary interface in their
    /// own package, visible from them.
    fn check_owners(
        &self,
        input: &GraphInput<'_>,
        by_name: &BTreeMap<String, Vec<UnitId>>,
    ) -> Result<(), EvalError> {
        for u in &self.units {
            let Some(name) = &u.module else { continue };
            if !matches!(
                u.kind,
                UnitKind::ExportedPartition
                    | UnitKind::InternalPartition
                    | UnitKind::Implementation
            ) {
                continue;
            }
            let wanted = module_of(name);
            let primary = by_name
                .get(wanted)
                .into_iter()
                .flatten()
                .copied()
                .find(|&p| {
                    let p = &self.units[p];
                    p.kind == UnitKind::PrimaryInterface
                        && p.package() == u.package()
                        && self.scope(input, u, p).is_ok()
                });
            if primary.is_none() {
                return Err(errors::without_primary(u, name, wanted));
            }
        }
        Ok(())
    }

    /// Resolve every import of unit `u` as (import index, provider).
    fn resolve_imports(
        &self,
        input: &GraphInput<'_>,
        by_name: &BTreeMap<String, Vec<UnitId>>,
        u: UnitId,
    ) -> Result<Vec<(usize, UnitId)>, EvalError> {
        let unit = &self.units[u];
        let mut out = Vec::new();
        for (i, imp) in unit.imports.iter().enumerate() {
            if imp.name.contains(':')
                && unit.module.as_deref().map(module_of) != Some(module_of(&imp.name))
                && by_name.contains_key(&imp.name)
            {
                return Err(errors::foreign_partition(unit, imp));
            }
            let p = self.provider(input, by_name, u, &imp.name, imp.line)?;
            out.push((i, p));
        }
        Ok(out)
    }

    /// Every importable unit `u` depends on, transitively (excluding `u`), sorted by module
    /// name: exactly the `-fmodule-file=` list of its compile.
    pub fn closure(&self, u: UnitId) -> Vec<UnitId> {
        let mut seen = std::collections::BTreeSet::new();
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

/// Whether `provider`, a primary interface of library `l` of package `p`, is public.
pub(crate) fn is_public(input: &GraphInput<'_>, p: PackageId, l: usize, provider: &Unit) -> bool {
    let Some(lib) = input.targets[p].libs.get(l) else {
        return true;
    };
    match (&lib.public_modules, &provider.module) {
        (None, _) => true,
        (Some(list), Some(name)) => list.iter().any(|(m, _)| m == module_of(name)),
        (Some(_), None) => false,
    }
}

fn unit_of(r: RawUnit) -> Unit {
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
                provider: None,
            }
        })
        .collect();
    Unit {
        origin: r.origin,
        rel: r.rel,
        abs: r.abs,
        hash: r.hash,
        kind,
        module,
        module_line,
        imports,
        headers: r.scanned.headers,
        system: r.scanned.system,
        flags: r.flags,
    }
}

#[cfg(test)]
mod tests;
