//! The targets of a package — its libraries, binaries and tests — with their per-target
//! fields checked and their `uses` resolved.
//!
//! A target may use libraries of its own package: `uses` (private) and, for a library,
//! `public-uses` (its consumers inherit that library's usage requirements too, as with
//! CMake's PUBLIC). What a target's units may **import** from its package's libraries and
//! inherit usage requirements from is its visible libraries: the ones it uses directly
//! and, transitively, their public uses. What its **link** includes is every library it
//! uses, transitively. An executable that names no `uses` uses every library of its
//! package (so a package with one `[lib]` needs no `uses` at all).

use std::collections::BTreeSet;

use cmod_schema::diag::Location;
use cmod_schema::manifest::{Spanned, Target};

use crate::error::{did_you_mean, ErrorKind, EvalError};
use crate::manifest_file::ManifestFile;
use crate::sources::{lib_name, PackageSources};

/// What a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetKind {
    /// A library (`[lib]` or `[[lib]]`): a static archive.
    Lib,
    /// An executable (`[[bin]]`).
    Bin,
    /// A `[[test]]` binary, built and run by `cmod test` only.
    Test,
}

/// Which target of its package a unit belongs to (indices follow the manifest's tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// A `[lib]` / `[[lib]]` (index into the package's libraries).
    Lib(usize),
    /// A `[[bin]]` (index into the package's binaries).
    Bin(usize),
    /// A `[[test]]` binary (index into the package's tests).
    Test(usize),
}

impl Owner {
    /// Whether the owner is a library.
    pub fn is_lib(self) -> bool {
        matches!(self, Owner::Lib(_))
    }

    /// Whether the owner is a `[[test]]` binary.
    pub fn is_test(self) -> bool {
        matches!(self, Owner::Test(_))
    }
}

/// One target, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInfo {
    /// Library, binary or test.
    pub kind: TargetKind,
    /// The target's name.
    pub name: String,
    /// Libraries of the package whose modules and usage requirements this target's units
    /// see (for a library, itself included), in the order they were named.
    pub visible_libs: Vec<usize>,
    /// Libraries of the package this target's link includes (for a library, itself
    /// first), users before what they use.
    pub linked_libs: Vec<usize>,
    /// For a library: the libraries whose usage requirements it passes on (its
    /// `public-uses`, transitively through theirs), itself excluded.
    pub public_libs: Vec<usize>,
    /// A library's public modules as written (`None`: every module is public).
    pub public_modules: Option<Vec<(String, Location)>>,
}

/// Every target of a package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageTargets {
    /// The libraries, in manifest order.
    pub libs: Vec<TargetInfo>,
    /// The `[[bin]]` executables, in manifest order.
    pub bins: Vec<TargetInfo>,
    /// The `[[test]]` binaries, in manifest order.
    pub tests: Vec<TargetInfo>,
}

impl PackageTargets {
    /// The target `owner` names, if it exists.
    pub fn get(&self, owner: Owner) -> Option<&TargetInfo> {
        match owner {
            Owner::Lib(i) => self.libs.get(i),
            Owner::Bin(i) => self.bins.get(i),
            Owner::Test(i) => self.tests.get(i),
        }
    }
}

/// The manifest table of `owner`.
pub fn table(file: &ManifestFile, owner: Owner) -> Option<&Spanned<Target>> {
    let m = &file.manifest;
    match owner {
        Owner::Lib(i) => m.lib.tables.get(i),
        Owner::Bin(i) => m.bin.get(i),
        Owner::Test(i) => m.test.get(i),
    }
}

/// Check every target's fields and resolve their `uses`. `sources` says which tests were
/// evaluated (all tables are checked either way).
pub fn package_targets(
    file: &ManifestFile,
    sources: &PackageSources,
) -> Result<PackageTargets, EvalError> {
    let m = &file.manifest;
    let lib_names: Vec<String> = (0..m.lib.tables.len()).map(|i| lib_name(file, i)).collect();
    let kinds = m
        .lib
        .tables
        .iter()
        .map(|t| (t, TargetKind::Lib))
        .chain(m.bin.iter().map(|t| (t, TargetKind::Bin)))
        .chain(m.test.iter().map(|t| (t, TargetKind::Test)));
    for (t, kind) in kinds {
        check_fields(file, t, kind)?;
        check_pch(file, t)?;
    }
    let uses: Vec<Vec<(usize, bool)>> = m
        .lib
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| resolve_uses(file, t.get_ref(), &lib_names, Some(i)))
        .collect::<Result<_, _>>()?;
    check_cycles(file, &lib_names, &uses)?;

    let libs = (0..m.lib.tables.len())
        .map(|i| {
            let direct = uses[i].clone();
            let t = m.lib.tables[i].get_ref();
            TargetInfo {
                kind: TargetKind::Lib,
                name: lib_names[i].clone(),
                visible_libs: visible(i, &direct, &uses),
                linked_libs: linked(Some(i), &direct, &uses),
                public_libs: {
                    let public: Vec<(usize, bool)> = direct
                        .iter()
                        .filter(|(_, public)| *public)
                        .copied()
                        .collect();
                    visible(usize::MAX, &public, &uses)
                },
                public_modules: t.public_modules.as_ref().map(|list| {
                    list.get_ref()
                        .iter()
                        .map(|s| (s.get_ref().clone(), file.location(s.span())))
                        .collect()
                }),
            }
        })
        .collect();
    let generator_bins = crate::generate::generator_bins(file);
    let executable = |t: &Spanned<Target>, name: &str, kind: TargetKind| {
        let generator = kind == TargetKind::Bin && generator_bins.contains(name);
        match generator {
            true => generator_info(file, t, name),
            false => executable_info(file, t.get_ref(), name, kind, &lib_names, &uses),
        }
    };
    let bins = m
        .bin
        .iter()
        .zip(&sources.bins)
        .map(|(t, s)| executable(t, &s.name, TargetKind::Bin))
        .collect::<Result<_, _>>()?;
    let tests = m
        .test
        .iter()
        .zip(&sources.tests)
        .map(|(t, s)| executable(t, &s.name, TargetKind::Test))
        .collect::<Result<_, _>>()?;
    Ok(PackageTargets { libs, bins, tests })
}

/// A `[[bin]]` a generator runs: it uses no library of its package, whose units may be
/// what it generates (it is built before they exist; see `eval/staged.rs`).
fn generator_info(
    file: &ManifestFile,
    t: &Spanned<Target>,
    name: &str,
) -> Result<TargetInfo, EvalError> {
    if let Some(first) = t.get_ref().uses.first() {
        return Err(EvalError::new(
            ErrorKind::ManifestInvalid,
            format!("`{name}` is a generator's program, which cannot use the package's libraries"),
        )
        .at(file.location_or_file(first.span()))
        .help("a generator's program is built before the files it generates exist: remove `uses`, and move what it shares with the package into a dependency"));
    }
    Ok(TargetInfo {
        kind: TargetKind::Bin,
        name: name.to_string(),
        visible_libs: Vec::new(),
        linked_libs: Vec::new(),
        public_libs: Vec::new(),
        public_modules: None,
    })
}

/// An executable's target: the libraries it uses (all of them when it names none).
fn executable_info(
    file: &ManifestFile,
    t: &Target,
    name: &str,
    kind: TargetKind,
    lib_names: &[String],
    uses: &[Vec<(usize, bool)>],
) -> Result<TargetInfo, EvalError> {
    let direct = if t.uses.is_empty() {
        (0..lib_names.len()).map(|l| (l, false)).collect()
    } else {
        resolve_uses(file, t, lib_names, None)?
    };
    Ok(TargetInfo {
        kind,
        name: name.to_string(),
        visible_libs: visible(usize::MAX, &direct, uses),
        linked_libs: linked(None, &direct, uses),
        public_libs: Vec::new(),
        public_modules: None,
    })
}

/// Fields that do not apply to a kind of target are errors at their line.
fn check_fields(
    file: &ManifestFile,
    t: &Spanned<Target>,
    kind: TargetKind,
) -> Result<(), EvalError> {
    let t = t.get_ref();
    let wrong = |field: &str, span: std::ops::Range<usize>, help: &str| {
        let table = match kind {
            TargetKind::Lib => "a library",
            TargetKind::Bin => "a [[bin]]",
            TargetKind::Test => "a [[test]]",
        };
        Err(EvalError::new(
            ErrorKind::ManifestInvalid,
            format!("`{field}` does not apply to {table}"),
        )
        .at(file.location_or_file(span))
        .help(help.to_string()))
    };
    if kind == TargetKind::Lib {
        if let Some(main) = &t.main {
            return wrong(
                "main",
                main.span(),
                "a library has no main(); put it in a [[bin]] with `main = \"...\"`",
            );
        }
        return Ok(());
    }
    let executable_help =
        "an executable has no consumers: use `defines`, `include-dirs` and `uses` instead";
    if let Some(k) = &t.kind {
        return wrong("kind", k.span(), "`kind` is the kind of library; remove it");
    }
    if let Some(s) = t.public_uses.first() {
        return wrong("public-uses", s.span(), executable_help);
    }
    if let Some(s) = t.public_defines.first() {
        return wrong("public-defines", s.span(), executable_help);
    }
    if let Some(s) = t.public_include_dirs.first() {
        return wrong("public-include-dirs", s.span(), executable_help);
    }
    if let Some(s) = &t.public_modules {
        return wrong(
            "public-modules",
            s.span(),
            "only a library's modules can be imported by other packages; remove it",
        );
    }
    Ok(())
}

/// A `pch` names a header inside the package.
fn check_pch(file: &ManifestFile, t: &Spanned<Target>) -> Result<(), EvalError> {
    let Some(pch) = &t.get_ref().pch else {
        return Ok(());
    };
    let rel = pch.get_ref().trim_start_matches("./");
    let inside = !rel.starts_with('/') && !rel.split('/').any(|c| c == "..") && !rel.is_empty();
    if !inside || !crate::journal::is_file(&file.dir().join(rel)) {
        return Err(EvalError::new(
            ErrorKind::ManifestInvalid,
            format!(
                "precompiled header `{}` is not a file of the package",
                pch.get_ref()
            ),
        )
        .at(file.location(pch.span()))
        .help("name a header relative to the package root, e.g. `pch = \"src/pch.h\"`"));
    }
    if crate::sources::is_unit(rel) {
        return Err(EvalError::new(
            ErrorKind::ManifestInvalid,
            format!("`pch` names `{rel}`, a translation unit, not a header"),
        )
        .at(file.location(pch.span()))
        .help("point `pch` at a header (e.g. `src/pch.h`) that includes what the units share"));
    }
    Ok(())
}

/// The libraries `t` (library `own`, if it is one) names in `uses` and `public-uses`, as
/// (index, public).
fn resolve_uses(
    file: &ManifestFile,
    t: &Target,
    lib_names: &[String],
    own: Option<usize>,
) -> Result<Vec<(usize, bool)>, EvalError> {
    let mut out: Vec<(usize, bool)> = Vec::new();
    for (list, public) in [(&t.uses, false), (&t.public_uses, true)] {
        for name in list {
            let Some(i) = lib_names.iter().position(|n| n == name.get_ref()) else {
                let help = match did_you_mean(name.get_ref(), lib_names.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if lib_names.is_empty() => "this package has no library; `uses` names [[lib]] tables of the package (dependencies are declared in [dependencies])".to_string(),
                    None => format!("the package's libraries are: {}", lib_names.join(", ")),
                };
                return Err(EvalError::new(
                    ErrorKind::ManifestInvalid,
                    format!("`{}` is not a library of this package", name.get_ref()),
                )
                .at(file.location(name.span()))
                .help(help));
            };
            if own == Some(i) {
                return Err(EvalError::new(
                    ErrorKind::ManifestInvalid,
                    format!("library `{}` uses itself", name.get_ref()),
                )
                .at(file.location(name.span()))
                .help("remove it from `uses`"));
            }
            match out.iter_mut().find(|(l, _)| *l == i) {
                Some(existing) => existing.1 |= public,
                None => out.push((i, public)),
            }
        }
    }
    Ok(out)
}

/// Libraries using each other in a cycle are an error naming the cycle.
fn check_cycles(
    file: &ManifestFile,
    lib_names: &[String],
    uses: &[Vec<(usize, bool)>],
) -> Result<(), EvalError> {
    fn visit(
        l: usize,
        uses: &[Vec<(usize, bool)>],
        stack: &mut Vec<usize>,
        done: &mut BTreeSet<usize>,
    ) -> Option<Vec<usize>> {
        if let Some(pos) = stack.iter().position(|&s| s == l) {
            return Some(stack[pos..].to_vec());
        }
        if !done.insert(l) {
            return None;
        }
        stack.push(l);
        for &(next, _) in &uses[l] {
            if let Some(cycle) = visit(next, uses, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for l in 0..uses.len() {
        let mut stack = Vec::new();
        if let Some(cycle) = visit(l, uses, &mut stack, &mut done) {
            let mut names: Vec<&str> = cycle.iter().map(|&c| lib_names[c].as_str()).collect();
            names.push(&lib_names[cycle[0]]);
            let table = &file.manifest.lib.tables[cycle[0]];
            return Err(EvalError::new(
                ErrorKind::ManifestInvalid,
                format!("libraries use each other in a cycle: {}", names.join(" → ")),
            )
            .at(file.location_or_file(table.span()))
            .help(
                "libraries must form a hierarchy: move what they share into a library both use",
            ));
        }
    }
    Ok(())
}

/// The libraries visible to a target using `direct`: those, and transitively their
/// public uses (`own` first for a library).
fn visible(own: usize, direct: &[(usize, bool)], uses: &[Vec<(usize, bool)>]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    if own != usize::MAX {
        out.push(own);
    }
    let mut todo: Vec<usize> = direct.iter().map(|&(l, _)| l).collect();
    todo.reverse();
    while let Some(l) = todo.pop() {
        if out.contains(&l) {
            continue;
        }
        out.push(l);
        for &(next, public) in uses[l].iter().rev() {
            if public {
                todo.push(next);
            }
        }
    }
    out
}

/// Every library a link through `direct` includes, users before what they use.
fn linked(own: Option<usize>, direct: &[(usize, bool)], uses: &[Vec<(usize, bool)>]) -> Vec<usize> {
    fn post(
        l: usize,
        uses: &[Vec<(usize, bool)>],
        seen: &mut BTreeSet<usize>,
        order: &mut Vec<usize>,
    ) {
        if !seen.insert(l) {
            return;
        }
        for &(next, _) in &uses[l] {
            post(next, uses, seen, order);
        }
        order.push(l);
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    match own {
        Some(l) => post(l, uses, &mut seen, &mut order),
        None => {
            for &(l, _) in direct {
                post(l, uses, &mut seen, &mut order);
            }
        }
    }
    order.reverse();
    order
}

#[cfg(test)]
mod tests;
