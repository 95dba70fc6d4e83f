//! Whole-graph checks: import cycles, one provider per module name in every link
//! closure, public modules that need private ones, and exported partitions the primary
//! interface does not re-export (a warning).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::error::{did_you_mean, ErrorKind, EvalError};
use crate::package::PackageId;

use super::errors::{self, target_name};
use super::{is_public, module_of, GraphInput, ModuleGraph, Origin, Owner, UnitId, UnitKind};

pub(super) fn check_cycles(g: &ModuleGraph) -> Result<(), EvalError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    // Depth-first with an explicit stack of (unit, next edge): an import chain of
    // thousands of units must not exhaust a thread's stack.
    let mut mark = vec![Mark::New; g.units.len()];
    for root in 0..g.units.len() {
        if mark[root] != Mark::New {
            continue;
        }
        mark[root] = Mark::Active;
        let mut stack: Vec<(UnitId, usize)> = vec![(root, 0)];
        while let Some(top) = stack.last_mut() {
            let (u, next) = *top;
            top.1 += 1;
            let Some(&v) = g.edges[u].get(next) else {
                mark[u] = Mark::Done;
                stack.pop();
                continue;
            };
            match mark[v] {
                Mark::Done => {}
                Mark::New => {
                    mark[v] = Mark::Active;
                    stack.push((v, 0));
                }
                Mark::Active => {
                    let path: Vec<UnitId> = stack.iter().map(|&(w, _)| w).collect();
                    let start = path.iter().position(|&s| s == v).unwrap_or(0);
                    return Err(errors::cycle(g, &path[start..]));
                }
            }
        }
    }
    Ok(())
}

/// Every target's link closure (its units, the libraries of its package it links, every
/// library of the packages it depends on, and the toolchain's modules) provides each
/// module name once.
pub(super) fn check_link_closures(
    g: &ModuleGraph,
    input: &GraphInput<'_>,
) -> Result<(), EvalError> {
    let mut by_target: BTreeMap<(usize, Owner), Vec<UnitId>> = BTreeMap::new();
    let mut toolchain: Vec<UnitId> = Vec::new();
    for (i, u) in g.units.iter().enumerate() {
        if !u.kind.is_importable() {
            continue;
        }
        match u.origin {
            Origin::Package(p, o) => by_target.entry((p, o)).or_default().push(i),
            Origin::Toolchain => toolchain.push(i),
        }
    }
    let targets: BTreeSet<(usize, Owner)> = g
        .units
        .iter()
        .filter_map(|u| match u.origin {
            Origin::Package(p, o) => Some((p, o)),
            Origin::Toolchain => None,
        })
        .collect();
    for (p, owner) in targets {
        let mut scope: Vec<UnitId> = by_target.get(&(p, owner)).cloned().unwrap_or_default();
        if let Some(info) = input.targets[p].get(owner) {
            for &l in &info.linked_libs {
                if Owner::Lib(l) != owner {
                    scope.extend(by_target.get(&(p, Owner::Lib(l))).into_iter().flatten());
                }
            }
        }
        let deps = if owner.is_test() {
            input.packages.test_deps(p)
        } else {
            input.packages.transitive_deps(p)
        };
        for q in deps {
            for ((tp, to), units) in by_target.range((q, Owner::Lib(0))..) {
                if *tp != q || !to.is_lib() {
                    break;
                }
                scope.extend(units);
            }
        }
        scope.extend(&toolchain);
        // Units in evaluation order: the first declared is reported as the first.
        scope.sort_unstable();
        scope.dedup();
        let mut seen: BTreeMap<&str, UnitId> = BTreeMap::new();
        for u in scope {
            let Some(name) = g.units[u].module.as_deref() else {
                continue;
            };
            if let Some(&first) = seen.get(name) {
                if first != u {
                    let who = g
                        .units
                        .iter()
                        .find(|x| x.origin == Origin::Package(p, owner))
                        .map(|x| target_name(input, x))
                        .unwrap_or_default();
                    return Err(errors::duplicate(g, input, first, u, Some(&who)));
                }
            } else {
                seen.insert(name, u);
            }
        }
    }
    Ok(())
}

/// `public-modules` lists modules its library provides, and no public module's interface
/// needs (imports, directly or through its partitions and imports) a private module of
/// its package: importers would need that module's BMI.
pub(super) fn check_public_modules(
    g: &ModuleGraph,
    input: &GraphInput<'_>,
) -> Result<(), EvalError> {
    for (p, targets) in input.targets.iter().enumerate() {
        for (l, lib) in targets.libs.iter().enumerate() {
            let Some(list) = &lib.public_modules else {
                continue;
            };
            let mut provided: Vec<&str> = g
                .units
                .iter()
                .filter(|u| {
                    u.origin == Origin::Package(p, Owner::Lib(l))
                        && u.kind == UnitKind::PrimaryInterface
                })
                .filter_map(|u| u.module.as_deref())
                .collect();
            provided.sort_unstable();
            for (name, at) in list {
                if !provided.contains(&name.as_str()) {
                    let known = if provided.is_empty() {
                        "none".to_string()
                    } else {
                        provided.join(", ")
                    };
                    let help = match did_you_mean(name, provided.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`? its modules are: {known}"),
                        None => format!("its modules are: {known}"),
                    };
                    return Err(EvalError::new(
                        ErrorKind::ManifestInvalid,
                        format!("`public-modules` of library `{}` lists `{name}`, which the library does not provide", lib.name),
                    )
                    .at(at.clone())
                    .help(help));
                }
            }
        }
    }
    check_public_needs_only_public(g, input)
}

/// No public module's interface needs a private module of its package.
fn check_public_needs_only_public(
    g: &ModuleGraph,
    input: &GraphInput<'_>,
) -> Result<(), EvalError> {
    // Only packages with private modules can break the rule. Units explored from one
    // public interface (without finding a private module) need not be explored again
    // from another of the same package: one walk per package, linear in the graph.
    let restricted = |p: PackageId| {
        input.targets[p]
            .libs
            .iter()
            .any(|l| l.public_modules.is_some())
    };
    let mut seen: BTreeMap<PackageId, BTreeSet<UnitId>> = BTreeMap::new();
    for (root, u) in g.units.iter().enumerate() {
        let Origin::Package(p, Owner::Lib(l)) = u.origin else {
            continue;
        };
        if u.kind != UnitKind::PrimaryInterface || !restricted(p) || !is_public(input, p, l, u) {
            continue;
        }
        let seen = seen.entry(p).or_default();
        if !seen.insert(root) {
            continue;
        }
        let mut todo = vec![root];
        while let Some(v) = todo.pop() {
            for imp in &g.units[v].imports {
                let Some(w) = imp.provider else { continue };
                let target = &g.units[w];
                if let Origin::Package(wp, Owner::Lib(wl)) = target.origin {
                    if wp == p
                        && target.kind == UnitKind::PrimaryInterface
                        && !is_public(input, wp, wl, target)
                    {
                        let m = u.module.clone().unwrap_or_default();
                        let private = target.module.clone().unwrap_or_default();
                        return Err(EvalError::new(
                            ErrorKind::PrivateModule,
                            format!("public module `{m}` needs private module `{private}`: every importer of `{m}` would need it too"),
                        )
                        .at(g.units[v].location(imp.line))
                        .help(format!("make `{private}` public (add it to `public-modules`), or import it only from implementation units (`module {m};`) and internal code that is not part of the interface")));
                    }
                }
                if target.kind.is_importable() && seen.insert(w) {
                    todo.push(w);
                }
            }
        }
    }
    Ok(())
}

/// Exported partitions must be re-exported by the primary interface, directly or
/// through other exported partitions ([module.unit]/3; no diagnostic required).
pub(super) fn unexported_partitions(g: &ModuleGraph) -> Vec<EvalError> {
    let mut warnings = Vec::new();
    let primaries: HashMap<(&str, Origin), UnitId> = g
        .units
        .iter()
        .enumerate()
        .filter(|(_, x)| x.kind == UnitKind::PrimaryInterface)
        .filter_map(|(i, x)| Some(((x.module.as_deref()?, x.origin), i)))
        .collect();
    for (p, unit) in g.units.iter().enumerate() {
        if unit.kind != UnitKind::ExportedPartition {
            continue;
        }
        let Some(name) = &unit.module else { continue };
        let module = module_of(name);
        let Some(&primary) = primaries.get(&(module, unit.origin)) else {
            continue;
        };
        let mut reached = BTreeSet::new();
        let mut todo = vec![primary];
        while let Some(u) = todo.pop() {
            for imp in g.units[u].imports.iter().filter(|i| i.exported) {
                if let Some(t) = imp.provider {
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
                    g.units[primary].rel
                )),
            );
        }
    }
    warnings
}
