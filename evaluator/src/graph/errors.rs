//! The module graph's errors: each names the file and line, says what is wrong and how
//! to fix it.

use std::collections::BTreeMap;

use crate::deps::GitRef;
use crate::error::{did_you_mean, ErrorKind, EvalError};
use crate::package::{PackageGraph, PackageId, PackageSource};

use super::{module_of, GraphInput, Hidden, Import, ModuleGraph, Owner, Unit, UnitId, UnitKind};

/// How a unit's target is called in messages.
pub(crate) fn target_name(input: &GraphInput<'_>, u: &Unit) -> String {
    let (Some(p), Some(owner)) = (u.package(), u.owner()) else {
        return "the toolchain".into();
    };
    let pkg = &input.packages.packages[p].name;
    let t = input.targets[p]
        .get(owner)
        .map(|t| t.name.clone())
        .unwrap_or_default();
    match owner {
        Owner::Lib(_) => format!("library `{t}` of package `{pkg}`"),
        Owner::Bin(_) => format!("binary `{t}` of package `{pkg}`"),
        Owner::Test(_) => format!("test `{t}` of package `{pkg}`"),
    }
}

/// Two units provide the same module where one link (or one importer) sees both.
pub(crate) fn duplicate(
    g: &ModuleGraph,
    input: &GraphInput<'_>,
    first: UnitId,
    second: UnitId,
    seen_by: Option<&str>,
) -> EvalError {
    let (f, s) = (&g.units[first], &g.units[second]);
    let name = s.module.clone().unwrap_or_default();
    let what = if name.contains(':') {
        "partition"
    } else {
        "module"
    };
    let message = if f.origin == s.origin {
        format!(
            "{what} `{name}` is declared twice in {}",
            target_name(input, s)
        )
    } else {
        let place = match seen_by {
            Some(t) => format!(" in what {t} links"),
            None => String::new(),
        };
        format!(
            "{what} `{name}` is declared twice{place}: by {} and by {}",
            target_name(input, f),
            target_name(input, s)
        )
    };
    EvalError::new(ErrorKind::DuplicateModule, message)
    .at(s.location(s.module_line))
    .note(Some(f.location(f.module_line)), "first declared here")
    .help(format!(
        "rename one of them: a {what} name must be unique within one link (implementation units use `module {};` without `export`)",
        module_of(&name)
    ))
}

/// A partition or implementation unit whose primary interface is missing.
pub(crate) fn without_primary(u: &Unit, name: &str, wanted: &str) -> EvalError {
    if u.kind == UnitKind::Implementation {
        return EvalError::new(
            ErrorKind::ImplementationWithoutInterface,
            format!("implementation unit of module `{name}` has no interface `export module {name};` in this package"),
        )
        .at(u.location(u.module_line))
        .help(format!("add the interface unit (`export module {name};`) to the package's sources, or fix the module name"));
    }
    EvalError::new(
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
    ))
}

/// An import of another module's partition.
pub(crate) fn foreign_partition(unit: &Unit, imp: &Import) -> EvalError {
    EvalError::new(
        ErrorKind::UnknownImport,
        format!(
            "partition `{}` can only be imported by units of module `{}`",
            imp.name,
            module_of(&imp.name)
        ),
    )
    .at(unit.location(imp.line))
    .help(format!(
        "import the module instead: `import {};`",
        module_of(&imp.name)
    ))
}

/// No provider of `name` is visible from unit `u`: explain the most relevant reason.
pub(crate) fn not_visible(
    g: &ModuleGraph,
    input: &GraphInput<'_>,
    by_name: &BTreeMap<String, Vec<UnitId>>,
    u: UnitId,
    name: &str,
    line: u32,
) -> EvalError {
    let unit = &g.units[u];
    let candidates = by_name.get(name).map(Vec::as_slice).unwrap_or(&[]);
    // Prefer a provider of the importer's own package, then any.
    let best = candidates
        .iter()
        .copied()
        .min_by_key(|&c| (g.units[c].package() != unit.package(), c));
    match best {
        None => unknown_import(input.packages, by_name, unit, name, line),
        Some(c) => {
            let provider = &g.units[c];
            let why = g
                .scope(input, unit, provider)
                .err()
                .unwrap_or(Hidden::NotDependency);
            invisible_import(input, unit, provider, name, line, why)
        }
    }
}

fn unknown_import(
    packages: &PackageGraph,
    by_name: &BTreeMap<String, Vec<UnitId>>,
    unit: &Unit,
    name: &str,
    line: u32,
) -> EvalError {
    let at = unit.location(line);
    if name == "std" || name == "std.compat" {
        return EvalError::new(
            ErrorKind::UnknownImport,
            format!("`import {name};` needs a standard library that ships the `{name}` module"),
        )
        .at(at)
        .help("set [toolchain] stdlib = \"libc++\" (libstdc++ 12 has no std module), or #include the headers you need");
    }
    let candidates: Vec<&str> = by_name.keys().map(String::as_str).collect();
    let e = EvalError::new(
        ErrorKind::UnknownImport,
        format!(
            "`{}` imports module `{name}`, which no unit provides",
            unit.rel
        ),
    )
    .at(at);
    match did_you_mean(name, candidates) {
        Some(s) => e.help(format!("did you mean `{s}`?")),
        None => e.help(match unit.package() {
            Some(p) => format!(
                "add the package that provides `{name}` to [dependencies] of `{}`, or add a unit with `export module {name};`",
                packages.packages[p].file.path.display(),
            ),
            None => "this module is not part of the toolchain".into(),
        }),
    }
}

fn invisible_import(
    input: &GraphInput<'_>,
    unit: &Unit,
    provider: &Unit,
    name: &str,
    line: u32,
    why: Hidden,
) -> EvalError {
    let at = unit.location(line);
    let packages = input.packages;
    let (Some(ip), Some(pp)) = (unit.package(), provider.package()) else {
        return EvalError::new(
            ErrorKind::UnknownImport,
            format!("module `{name}` is not visible here"),
        )
        .at(at);
    };
    let importer = &packages.packages[ip];
    let owner = &packages.packages[pp];
    let declared = |e: EvalError| {
        e.note(
            Some(provider.location(provider.module_line)),
            format!("`{name}` is declared here"),
        )
    };
    match why {
        Hidden::OtherTarget if ip == pp => EvalError::new(
            ErrorKind::UnknownImport,
            format!("module `{name}` belongs to another binary or test of package `{}`", owner.name),
        )
        .at(at)
        .help("move the module into a library's sources to share it between targets"),
        Hidden::UnusedLib(l) => {
            let lib = input.targets[pp].libs.get(l).map(|t| t.name.clone()).unwrap_or_default();
            declared(
                EvalError::new(
                    ErrorKind::UndeclaredDependency,
                    format!("module `{name}` belongs to library `{lib}`, which {} does not use", target_name(input, unit)),
                )
                .at(at)
                .help(format!("add `uses = [\"{lib}\"]` to that target in `{}`", importer.file.path.display())),
            )
        }
        Hidden::Partition => EvalError::new(
            ErrorKind::UnknownImport,
            format!("`{name}` is a partition of package `{}` and cannot be imported from another package", owner.name),
        )
        .at(at)
        .help(format!("import the module instead: `import {};`", module_of(name))),
        Hidden::Private => declared(
            EvalError::new(
                ErrorKind::PrivateModule,
                format!(
                    "module `{name}` is private to package `{}`: its library does not list it in `public-modules`",
                    owner.name
                ),
            )
            .at(at)
            .help(format!(
                "import one of the library's public modules instead, or add `{name}` to `public-modules` in `{}`",
                owner.file.path.display()
            )),
        ),
        Hidden::OtherTarget | Hidden::NotDependency | Hidden::FromToolchain => {
            declared(undeclared(packages, unit, ip, pp, name, at))
        }
    }
}

fn undeclared(
    packages: &PackageGraph,
    unit: &Unit,
    ip: PackageId,
    pp: PackageId,
    name: &str,
    at: cmod_schema::diag::Location,
) -> EvalError {
    let importer = &packages.packages[ip];
    let owner = &packages.packages[pp];
    let for_test = unit.owner().is_some_and(Owner::is_test);
    if importer.dev_depends_on(pp) && !for_test {
        return EvalError::new(
            ErrorKind::UndeclaredDependency,
            format!(
                "module `{name}` is provided by package `{}`, which is only a dev-dependency of `{}`: only its [[test]] targets may import it",
                owner.name, importer.name
            ),
        )
        .at(at)
        .help(format!(
            "move `{}` from [dev-dependencies] to [dependencies] in `{}`, or import `{name}` from a test only",
            owner.name,
            importer.file.path.display(),
        ));
    }
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
            "module `{name}` is provided by package `{}`, which `{}` does not depend on",
            owner.name, importer.name
        ),
    )
    .at(at)
    .help(help)
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

/// Modules importing each other in a cycle, every edge with its line.
pub(crate) fn cycle(g: &ModuleGraph, cycle: &[UnitId]) -> EvalError {
    let name = |u: UnitId| {
        g.units[u]
            .module
            .clone()
            .unwrap_or_else(|| g.units[u].rel.clone())
    };
    let mut path: Vec<String> = cycle.iter().map(|&u| name(u)).collect();
    path.push(name(cycle[0]));
    let first = &g.units[cycle[0]];
    let next = cycle.get(1).copied().unwrap_or(cycle[0]);
    let line_of = |from: UnitId, to: UnitId| {
        g.units[from]
            .imports
            .iter()
            .find(|i| i.provider == Some(to))
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
            Some(g.units[u].location(line_of(u, to))),
            format!("`{}` imports `{}` here", name(u), name(to)),
        );
    }
    e.help("break the cycle: move the shared declarations into a module both can import")
}
