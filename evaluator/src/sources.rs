//! Finding a package's translation units: each library's `sources`, each `[[bin]]`'s and
//! `[[test]]`'s `main` and `sources`. A bin's or test's files never belong to a library,
//! and a file belongs to at most one library.
//!
//! Units are C++ (`.cppm .ixx .mpp .cxxm .c++m .ccm` interfaces, `.cpp .cc .cxx .c++`) or C
//! (`.c`). A glob ignores other files (headers reach builds through the scanner's
//! dependency lists instead); a file named explicitly (no glob characters) that cmod does
//! not compile is an error at its line. The walk follows a symlinked file that stays
//! inside the package; one that leaves it is an error when a source pattern matches it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cmod_schema::manifest::{Spanned, Target};
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{ErrorKind, EvalError};
use crate::manifest_file::ManifestFile;

pub(crate) mod listing_cache;
mod walk;

pub use listing_cache::ListingCache;

use walk::{package_files, Walk};

/// Extensions of module interface units (compiled with `-x c++-module`).
pub const INTERFACE_EXTENSIONS: &[&str] = &["cppm", "ixx", "mpp", "cxxm", "c++m", "ccm"];
/// Extensions of other C++ translation units.
pub const SOURCE_EXTENSIONS: &[&str] = &["cpp", "cc", "cxx", "c++"];
/// Extensions of C translation units.
pub const C_EXTENSIONS: &[&str] = &["c"];
/// A library's sources when it names none.
pub const DEFAULT_LIB_SOURCES: &[&str] = &["src/**/*.cppm", "src/**/*.cpp", "src/**/*.c"];

/// The language a unit is compiled as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    /// C++ (`.cppm`, `.cpp` and the like).
    Cxx,
    /// C (`.c`).
    C,
}

fn extension(rel: &str) -> &str {
    let base = rel.rsplit('/').next().unwrap_or(rel);
    base.rsplit_once('.').map(|(_, e)| e).unwrap_or("")
}

/// The language of `rel`, if it names a translation unit.
pub fn language(rel: &str) -> Option<Lang> {
    let ext = extension(rel);
    if INTERFACE_EXTENSIONS.contains(&ext) || SOURCE_EXTENSIONS.contains(&ext) {
        Some(Lang::Cxx)
    } else if C_EXTENSIONS.contains(&ext) {
        Some(Lang::C)
    } else {
        None
    }
}

/// Whether `rel` names a translation unit.
pub fn is_unit(rel: &str) -> bool {
    language(rel).is_some()
}

/// Whether `rel`'s extension marks a module interface.
pub fn has_interface_extension(rel: &str) -> bool {
    INTERFACE_EXTENSIONS.contains(&extension(rel))
}

fn all_extensions() -> String {
    INTERFACE_EXTENSIONS
        .iter()
        .chain(SOURCE_EXTENSIONS)
        .chain(C_EXTENSIONS)
        .map(|e| format!(".{e}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Units of one target: a library, a `[[bin]]` or a `[[test]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSources {
    /// The target's name.
    pub name: String,
    /// An executable's `main` (its first unit).
    pub main: Option<String>,
    /// `main` first, then the other sources, sorted.
    pub units: Vec<String>,
}

/// All units of a package, as package-relative `/`-separated paths; each list is in the
/// order of the manifest's tables.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackageSources {
    /// The libraries, in manifest order.
    pub libs: Vec<TargetSources>,
    /// The `[[bin]]` executables, in manifest order.
    pub bins: Vec<TargetSources>,
    /// The `[[test]]` binaries, when they were asked for (see [`find_sources`]).
    pub tests: Vec<TargetSources>,
    /// The package's generated files (`[[generate]]`), by their declared paths: units
    /// like its own files, whose bytes are elsewhere.
    pub generated: crate::generate::Generated,
    /// The package's generators that run a program, their inputs expanded.
    pub programs: Vec<crate::generate::ProgramGenerator>,
}

impl PackageSources {
    /// Where the bytes of unit `rel` of the package rooted at `root` are on this machine.
    pub fn host_path(&self, root: &Path, rel: &str) -> std::path::PathBuf {
        match self.generated.get(rel) {
            Some(g) => g.host.clone(),
            None => root.join(rel),
        }
    }
}

/// The name of library `index` of the package: its `name`, else (a lone library) the
/// package's name with `-` written `_`.
pub fn lib_name(file: &ManifestFile, index: usize) -> String {
    let lib = file.manifest.lib.tables.get(index).map(Spanned::get_ref);
    match lib.and_then(|l| l.name.as_ref()) {
        Some(n) => n.get_ref().clone(),
        None => file
            .manifest
            .package
            .as_ref()
            .map(|p| p.name.get_ref().as_str().replace('-', "_"))
            .unwrap_or_default(),
    }
}

fn has_glob_characters(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

fn build_set(file: &ManifestFile, globs: &[&Spanned<String>]) -> Result<GlobSet, EvalError> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = Glob::new(g.get_ref()).map_err(|e| {
            EvalError::new(
                ErrorKind::ManifestInvalid,
                format!("`{}` is not a valid glob: {e}", g.get_ref()),
            )
            .at(file.location_or_file(g.span()))
            .help("use `*` within a directory and `**` across directories, e.g. `src/**/*.cppm`")
        })?;
        b.add(glob);
    }
    b.build()
        .map_err(|e| EvalError::new(ErrorKind::ManifestInvalid, format!("invalid globs: {e}")))
}

/// The units `patterns` select in the walked package. Globs pick the files with a unit
/// extension; a pattern without glob characters names one file, which must exist and be
/// a unit. A symlink leaving the package that a pattern selects is an error.
fn match_sources(
    file: &ManifestFile,
    walk: &Walk,
    patterns: &[Spanned<String>],
) -> Result<BTreeSet<String>, EvalError> {
    let mut out = BTreeSet::new();
    let (explicit, globs): (Vec<&Spanned<String>>, Vec<&Spanned<String>>) = patterns
        .iter()
        .partition(|p| !has_glob_characters(p.get_ref()));
    for p in explicit {
        let rel = p.get_ref().trim_start_matches("./").to_string();
        let at = file.location_or_file(p.span());
        walk.check_named(file.dir(), &rel, &at)?;
        if !is_unit(&rel) {
            return Err(EvalError::new(
                ErrorKind::ManifestInvalid,
                format!("`{rel}` is named in `sources`, but cmod does not compile `.{}` files", extension(&rel)),
            )
            .at(at)
            .help(format!(
                "remove it: translation units have one of the extensions {}; headers reach the build through #include",
                all_extensions()
            )));
        }
        out.insert(rel);
    }
    if globs.is_empty() {
        return Ok(out);
    }
    let set = build_set(file, &globs)?;
    for (rel, target) in &walk.escaping {
        if set.is_match(rel.as_str()) && is_unit(rel) {
            let at = globs
                .iter()
                .find(|g| Glob::new(g.get_ref()).is_ok_and(|g| g.compile_matcher().is_match(rel)))
                .map_or_else(
                    || file.location_or_file(0..0),
                    |g| file.location_or_file(g.span()),
                );
            return Err(escaping_link(rel, target, at));
        }
    }
    out.extend(
        walk.files
            .iter()
            .filter(|f| set.is_match(f.as_str()) && is_unit(f))
            .cloned(),
    );
    Ok(out)
}

fn escaping_link(rel: &str, target: &Path, at: cmod_schema::diag::Location) -> EvalError {
    EvalError::new(
        ErrorKind::ManifestInvalid,
        format!(
            "source `{rel}` is a symlink to `{}`, which is outside the package",
            target.display()
        ),
    )
    .at(at)
    .help("a build sees only its package's files: copy the file into the package, or share it as a module of a dependency")
}

/// One `[[bin]]` or `[[test]]` table, as written.
struct ExecutableEntry<'m> {
    /// `[[bin]]` or `[[test]]`, for messages.
    table: &'static str,
    spanned: &'m Spanned<Target>,
}

impl ExecutableEntry<'_> {
    fn what(&self) -> &'static str {
        if self.table == "[[test]]" {
            "test"
        } else {
            "binary"
        }
    }
}

/// Expand the package's source patterns. The `[[test]]` entries are always checked (and
/// their files never belong to a library), but their units are returned only `with_tests`.
pub fn find_sources(file: &ManifestFile, with_tests: bool) -> Result<PackageSources, EvalError> {
    find_sources_with(
        file,
        with_tests,
        &ListingCache::in_memory(),
        Default::default(),
    )
}

/// A package with no targets left but generators that run a dependency's program (see
/// `eval/staged.rs`): only those generators, their inputs expanded.
pub fn generator_inputs(
    file: &ManifestFile,
    listings: &ListingCache,
    generators: crate::generate::Generators,
) -> Result<PackageSources, EvalError> {
    let walk = package_files(file.dir(), listings)?;
    let mut programs = generators.programs;
    for program in &mut programs {
        program.inputs = crate::generate::program::expand_inputs(program, &walk.files)?;
    }
    Ok(PackageSources {
        programs,
        ..PackageSources::default()
    })
}

/// [`find_sources`], reading directory listings through `listings`; the `generated` files
/// are found by `sources` patterns as the package's own are, and the inputs of the
/// generators that run a program are expanded against the package's files.
pub fn find_sources_with(
    file: &ManifestFile,
    with_tests: bool,
    listings: &ListingCache,
    generators: crate::generate::Generators,
) -> Result<PackageSources, EvalError> {
    let crate::generate::Generators {
        files: generated,
        mut programs,
    } = generators;
    let m = &file.manifest;
    let entries: Vec<ExecutableEntry<'_>> = m
        .bin
        .iter()
        .map(|spanned| ExecutableEntry {
            table: "[[bin]]",
            spanned,
        })
        .chain(m.test.iter().map(|spanned| ExecutableEntry {
            table: "[[test]]",
            spanned,
        }))
        .collect();
    if m.lib.is_empty() && m.bin.is_empty() {
        return Err(EvalError::new(
            ErrorKind::ManifestInvalid,
            format!(
                "package `{}` has neither [lib] nor [[bin]]",
                file.path.display()
            ),
        )
        .at(file.location_or_file(0..0))
        .help("add a [lib] table with `sources`, or a [[bin]] with `name` and `main`"));
    }
    let mut walk = package_files(file.dir(), listings)?;
    for program in &mut programs {
        program.inputs = crate::generate::program::expand_inputs(program, &walk.files)?;
    }
    walk.files.extend(generated.keys().cloned());
    let mut bins = Vec::new();
    let mut tests = Vec::new();
    let mut executable_files = BTreeSet::new();
    let mut names: BTreeMap<String, &'static str> = BTreeMap::new();
    for entry in &entries {
        let sources = executable_sources(file, &walk, entry, &mut names)?;
        executable_files.extend(sources.units.iter().cloned());
        if entry.table == "[[test]]" {
            if with_tests {
                tests.push(sources);
            }
        } else {
            bins.push(sources);
        }
    }
    let libs = lib_sources(file, &walk, &executable_files)?;
    Ok(PackageSources {
        libs,
        bins,
        tests,
        generated,
        programs,
    })
}

/// An executable's name is unique among the package's binaries and tests and is a plain
/// file name.
fn check_executable_name(
    file: &ManifestFile,
    entry: &ExecutableEntry<'_>,
    name_field: &Spanned<String>,
    names: &mut BTreeMap<String, &'static str>,
) -> Result<(), EvalError> {
    let name = name_field.get_ref().clone();
    if let Some(first) = names.insert(name.clone(), entry.table) {
        let message = if first == entry.table {
            format!("two {first} targets are named `{name}`")
        } else {
            format!("a {first} and a {} are both named `{name}`", entry.table)
        };
        return Err(EvalError::new(ErrorKind::ManifestInvalid, message)
            .at(file.location(name_field.span()))
            .help("give every binary and test a distinct name"));
    }
    if crate::manifest_file::MANIFEST_NAME == name || name.contains('/') || name.is_empty() {
        return Err(EvalError::new(
            ErrorKind::ManifestInvalid,
            format!("`{name}` is not a valid {} name", entry.table),
        )
        .at(file.location(name_field.span()))
        .help("use a plain file name, e.g. `name = \"app\"`"));
    }
    Ok(())
}

/// The units of one executable, after checking its name and `main`.
fn executable_sources(
    file: &ManifestFile,
    walk: &Walk,
    entry: &ExecutableEntry<'_>,
    names: &mut BTreeMap<String, &'static str>,
) -> Result<TargetSources, EvalError> {
    let t = entry.spanned.get_ref();
    let table_at = file.location_or_file(entry.spanned.span());
    let Some(name_field) = &t.name else {
        return Err(EvalError::new(
            ErrorKind::ManifestInvalid,
            format!("a {} table has no `name`", entry.table),
        )
        .at(table_at)
        .help("add `name = \"...\"`: the executable's file name"));
    };
    let name = name_field.get_ref().clone();
    check_executable_name(file, entry, name_field, names)?;
    let Some(main_field) = &t.main else {
        return Err(EvalError::new(
            ErrorKind::ManifestInvalid,
            format!("{} `{name}` has no `main`", entry.what()),
        )
        .at(table_at)
        .help("add `main = \"src/main.cpp\"`: the unit that defines main()"));
    };
    let main = main_field.get_ref().trim_start_matches("./").to_string();
    let main_at = file.location(main_field.span());
    // A file the walk listed (or a generated one, listed with them) exists.
    let listed = walk.files.contains(&main);
    if !listed && !crate::journal::is_file(&file.dir().join(&main)) {
        return Err(EvalError::new(
            ErrorKind::ManifestInvalid,
            format!(
                "{} `{name}`: main file `{main}` does not exist",
                entry.what()
            ),
        )
        .at(main_at)
        .help(format!(
            "create `{main}` or point `main` at the file that defines main()"
        )));
    }
    walk.check_named(file.dir(), &main, &main_at)?;
    if !is_unit(&main) {
        return Err(EvalError::new(
            ErrorKind::ManifestInvalid,
            format!(
                "{} `{name}`: main file `{main}` is not a translation unit",
                entry.what()
            ),
        )
        .at(main_at)
        .help(format!(
            "translation units have one of the extensions {}",
            all_extensions()
        )));
    }
    let mut units: Vec<String> = match &t.sources {
        Some(patterns) => match_sources(file, walk, patterns)?
            .into_iter()
            .filter(|f| *f != main)
            .collect(),
        None => Vec::new(),
    };
    units.insert(0, main.clone());
    Ok(TargetSources {
        name,
        main: Some(main),
        units,
    })
}

/// A library needs a `name` when the package has several; names are unique and usable
/// as file names (`lib<name>.a`).
fn check_lib_name(
    file: &ManifestFile,
    spanned: &Spanned<Target>,
    name: &str,
    count: usize,
    earlier: &[TargetSources],
) -> Result<(), EvalError> {
    let lib = spanned.get_ref();
    let Some(field) = &lib.name else {
        if count > 1 {
            return Err(EvalError::new(
                ErrorKind::ManifestInvalid,
                "a package with several [[lib]] tables must name each of them",
            )
            .at(file.location_or_file(spanned.span()))
            .help("add `name = \"...\"` to this [[lib]]; its archive is `lib<name>.a`"));
        }
        return Ok(());
    };
    let at = file.location(field.span());
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !name.starts_with('.');
    if !valid {
        return Err(EvalError::new(
            ErrorKind::ManifestInvalid,
            format!("`{name}` is not a valid library name"),
        )
        .at(at)
        .help("use letters, digits, `_`, `-` and `.`, e.g. `name = \"geometry\"`"));
    }
    if earlier.iter().any(|l| l.name == name) {
        return Err(EvalError::new(
            ErrorKind::ManifestInvalid,
            format!("two libraries are named `{name}`"),
        )
        .at(at)
        .help("give every [[lib]] a distinct name"));
    }
    Ok(())
}

/// The units of every library: each library's patterns (default [`DEFAULT_LIB_SOURCES`]),
/// minus the executables' files. A file selected by two libraries is an error.
fn lib_sources(
    file: &ManifestFile,
    walk: &Walk,
    executable_files: &BTreeSet<String>,
) -> Result<Vec<TargetSources>, EvalError> {
    let tables = &file.manifest.lib.tables;
    let default_patterns: Vec<Spanned<String>> = DEFAULT_LIB_SOURCES
        .iter()
        .map(|s| Spanned::new(0..0, s.to_string()))
        .collect();
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    let mut libs: Vec<TargetSources> = Vec::new();
    for (index, spanned) in tables.iter().enumerate() {
        let lib = spanned.get_ref();
        let name = lib_name(file, index);
        check_lib_name(file, spanned, &name, tables.len(), &libs)?;
        let patterns = lib.sources.as_ref().unwrap_or(&default_patterns);
        let units: Vec<String> = match_sources(file, walk, patterns)?
            .into_iter()
            .filter(|f| !executable_files.contains(f))
            .collect();
        if units.is_empty() {
            let span = patterns
                .first()
                .map(|s| s.span())
                .filter(|s| !s.is_empty())
                .unwrap_or(spanned.span());
            let globs: Vec<&str> = patterns.iter().map(|s| s.get_ref().as_str()).collect();
            return Err(EvalError::new(
                ErrorKind::ManifestInvalid,
                format!("the sources {globs:?} of library `{name}` match no translation units"),
            )
            .at(file.location_or_file(span))
            .help(format!(
                "add units under the globs, fix the globs, or remove the library; units have one of the extensions {}",
                all_extensions()
            )));
        }
        for u in &units {
            if let Some(first) = owner.insert(u.clone(), name.clone()) {
                return Err(EvalError::new(
                    ErrorKind::ManifestInvalid,
                    format!(
                        "`{u}` is selected by the sources of two libraries, `{first}` and `{name}`"
                    ),
                )
                .at(file.location_or_file(patterns.first().map_or(spanned.span(), |s| s.span())))
                .help("a unit belongs to one library: narrow the `sources` of one of them"));
            }
        }
        libs.push(TargetSources {
            name,
            main: None,
            units,
        });
    }
    Ok(libs)
}

#[cfg(test)]
mod tests;
