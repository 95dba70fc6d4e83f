//! Finding a package's translation units: `[lib] sources` globs, each `[[bin]]`'s and
//! `[[test]]`'s `main` and `sources`. A bin's or test's files never belong to the library.
//! Only files with a C++ translation-unit extension are units; headers matched by a glob are ignored (headers
//! reach builds through the scanner's dependency lists instead).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cmod_schema::manifest::Spanned;
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{ErrorKind, EvalError};
use crate::manifest_file::ManifestFile;

/// Extensions of module interface units (compiled with `-x c++-module`).
pub const INTERFACE_EXTENSIONS: &[&str] = &["cppm", "ixx", "mpp", "cxxm", "c++m", "ccm"];
/// Extensions of other translation units.
pub const SOURCE_EXTENSIONS: &[&str] = &["cpp", "cc", "cxx", "c++"];

/// Whether `rel` names a translation unit.
pub fn is_unit(rel: &str) -> bool {
    let ext = rel.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    INTERFACE_EXTENSIONS.contains(&ext) || SOURCE_EXTENSIONS.contains(&ext)
}

/// Whether `rel`'s extension marks a module interface.
pub fn has_interface_extension(rel: &str) -> bool {
    let ext = rel.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    INTERFACE_EXTENSIONS.contains(&ext)
}

/// Units of one executable: a `[[bin]]` or a `[[test]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutableSources {
    pub name: String,
    pub main: String,
    /// `main` first, then the extra sources, sorted.
    pub units: Vec<String>,
}

/// All units of a package, as package-relative `/`-separated paths.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackageSources {
    pub lib: Vec<String>,
    pub bins: Vec<ExecutableSources>,
    /// The `[[test]]` binaries, when they were asked for (see [`find_sources`]).
    pub tests: Vec<ExecutableSources>,
}

fn build_set(file: &ManifestFile, globs: &[Spanned<String>]) -> Result<GlobSet, EvalError> {
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

/// Every file under `root` as a relative path, in sorted depth-first order, skipping
/// hidden entries, symlinks (never followed, so `result*` out-links are not entered) and
/// nested packages (directories with their own `cmod.toml`).
fn package_files(root: &Path) -> Result<Vec<String>, EvalError> {
    let mut files = Vec::new();
    walk(root, "", false, &mut files)?;
    Ok(files)
}

/// Add the files under `dir` (package-relative `rel`) to `files`; with `skip_package`,
/// nothing when `dir` holds a `cmod.toml`. The nested-package check reads the listing
/// the walk needs anyway, instead of a `stat` per directory.
fn walk(
    dir: &Path,
    rel: &str,
    skip_package: bool,
    files: &mut Vec<String>,
) -> Result<(), EvalError> {
    let list_error = |e: std::io::Error| {
        EvalError::new(
            ErrorKind::Io,
            format!("cannot list `{}`: {e}", dir.display()),
        )
    };
    let mut entries: Vec<(std::ffi::OsString, std::fs::FileType)> = std::fs::read_dir(dir)
        .map_err(list_error)?
        .map(|e| e.and_then(|e| Ok((e.file_name(), e.file_type()?))))
        .collect::<Result<_, _>>()
        .map_err(list_error)?;
    if skip_package
        && entries
            .iter()
            .any(|(n, _)| n == crate::manifest_file::MANIFEST_NAME)
        && dir.join(crate::manifest_file::MANIFEST_NAME).exists()
    {
        return Ok(());
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, kind) in entries {
        let name_text = name.to_string_lossy();
        if name_text.starts_with('.') {
            continue;
        }
        let child_rel = if rel.is_empty() {
            name_text.replace('\\', "/")
        } else {
            format!("{rel}/{}", name_text.replace('\\', "/"))
        };
        if kind.is_file() {
            files.push(child_rel);
        } else if kind.is_dir() {
            walk(&dir.join(&name), &child_rel, true, files)?;
        }
    }
    Ok(())
}

/// One `[[bin]]` or `[[test]]` entry, as written.
struct ExecutableEntry<'m> {
    /// `[[bin]]` or `[[test]]`, for messages.
    table: &'static str,
    name: &'m Spanned<String>,
    main: &'m Spanned<String>,
    sources: &'m [Spanned<String>],
}

/// Expand the package's source globs. The `[[test]]` entries are always checked (and their
/// files never belong to the library), but their units are returned only `with_tests`.
pub fn find_sources(file: &ManifestFile, with_tests: bool) -> Result<PackageSources, EvalError> {
    let root = file.dir();
    let m = &file.manifest;
    let entries: Vec<ExecutableEntry<'_>> = m
        .bin
        .iter()
        .map(|b| {
            let b = b.get_ref();
            ExecutableEntry {
                table: "[[bin]]",
                name: &b.name,
                main: &b.main,
                sources: &b.sources,
            }
        })
        .chain(m.test.iter().map(|t| {
            let t = t.get_ref();
            ExecutableEntry {
                table: "[[test]]",
                name: &t.name,
                main: &t.main,
                sources: &t.sources,
            }
        }))
        .collect();
    let needs_walk = m.lib.is_some() || entries.iter().any(|e| !e.sources.is_empty());
    let all = if needs_walk {
        package_files(root)?
    } else {
        Vec::new()
    };

    let mut bins = Vec::new();
    let mut tests = Vec::new();
    let mut executable_files = BTreeSet::new();
    let mut names: BTreeMap<String, &'static str> = BTreeMap::new();
    for entry in &entries {
        let name = entry.name.get_ref().clone();
        if let Some(first) = names.insert(name.clone(), entry.table) {
            let message = if first == entry.table {
                format!("two {first} targets are named `{name}`")
            } else {
                format!("a {first} and a {} are both named `{name}`", entry.table)
            };
            return Err(EvalError::new(ErrorKind::ManifestInvalid, message)
                .at(file.location(entry.name.span()))
                .help("give every binary and test a distinct name"));
        }
        if crate::manifest_file::MANIFEST_NAME == name || name.contains('/') || name.is_empty() {
            return Err(EvalError::new(
                ErrorKind::ManifestInvalid,
                format!("`{name}` is not a valid {} name", entry.table),
            )
            .at(file.location(entry.name.span()))
            .help("use a plain file name, e.g. `name = \"app\"`"));
        }
        let main = entry.main.get_ref().trim_start_matches("./").to_string();
        if !root.join(&main).is_file() {
            let what = if entry.table == "[[test]]" {
                "test"
            } else {
                "binary"
            };
            return Err(EvalError::new(
                ErrorKind::ManifestInvalid,
                format!("{what} `{name}`: main file `{main}` does not exist"),
            )
            .at(file.location(entry.main.span()))
            .help(format!(
                "create `{main}` or point `main` at the file that defines main()"
            )));
        }
        let set = build_set(file, entry.sources)?;
        let mut units: Vec<String> = all
            .iter()
            .filter(|f| set.is_match(f.as_str()) && is_unit(f) && **f != main)
            .cloned()
            .collect();
        units.insert(0, main.clone());
        executable_files.extend(units.iter().cloned());
        let sources = ExecutableSources { name, main, units };
        if entry.table == "[[test]]" {
            if with_tests {
                tests.push(sources);
            }
        } else {
            bins.push(sources);
        }
    }

    let mut lib = Vec::new();
    if let Some(l) = &m.lib {
        let set = build_set(file, &l.sources)?;
        lib = all
            .iter()
            .filter(|f| set.is_match(f.as_str()) && is_unit(f) && !executable_files.contains(*f))
            .cloned()
            .collect();
        if lib.is_empty() {
            let span = l.sources.first().map(|s| s.span()).unwrap_or(0..0);
            let globs: Vec<&str> = l.sources.iter().map(|s| s.get_ref().as_str()).collect();
            return Err(EvalError::new(
                ErrorKind::ManifestInvalid,
                format!("[lib] sources {globs:?} match no translation units"),
            )
            .at(file.location_or_file(span))
            .help(format!(
                "add .cppm/.cpp files under the globs, fix the globs, or remove [lib]; units have one of the extensions {}",
                INTERFACE_EXTENSIONS.iter().chain(SOURCE_EXTENSIONS).map(|e| format!(".{e}")).collect::<Vec<_>>().join(" ")
            )));
        }
    }
    if m.lib.is_none() && m.bin.is_empty() {
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
    Ok(PackageSources { lib, bins, tests })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[&str], manifest: &str) -> (tempfile::TempDir, ManifestFile) {
        let t = tempfile::tempdir().unwrap();
        for f in files {
            let p = t.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let text = format!("[package]\nname = \"p\"\nversion = \"1.0.0\"\n{manifest}");
        std::fs::write(t.path().join("cmod.toml"), &text).unwrap();
        let mf = ManifestFile::load(&t.path().join("cmod.toml")).unwrap();
        (t, mf)
    }

    #[test]
    fn lib_excludes_bin_files_and_headers() {
        let (_t, mf) = project(
            &["src/a.cppm", "src/b.cpp", "src/main.cpp", "src/x.h", "src/sub/c.cppm", ".hidden/d.cpp", "nested/cmod.toml", "nested/e.cpp"],
            "[lib]\nsources = [\"**/*.cpp*\", \"**/*.h\"]\n[[bin]]\nname = \"app\"\nmain = \"src/main.cpp\"\n",
        );
        let s = find_sources(&mf, false).unwrap();
        assert_eq!(s.lib, ["src/a.cppm", "src/b.cpp", "src/sub/c.cppm"]);
        assert_eq!(s.bins[0].units, ["src/main.cpp"]);
    }

    #[test]
    fn the_walk_is_sorted_and_skips_links_hidden_entries_and_nested_packages() {
        let (t, _mf) = project(
            &[
                "b/z.cpp",
                "b/a.cpp",
                "a.cpp",
                "c/.d/x.cpp",
                "pkg/cmod.toml",
                "pkg/y.cpp",
                "real/r.cpp",
            ],
            "",
        );
        std::os::unix::fs::symlink(t.path().join("real"), t.path().join("result")).unwrap();
        std::os::unix::fs::symlink(t.path().join("a.cpp"), t.path().join("link.cpp")).unwrap();
        // A dangling `cmod.toml` link does not make a package.
        std::fs::create_dir(t.path().join("dangling")).unwrap();
        std::os::unix::fs::symlink("missing", t.path().join("dangling/cmod.toml")).unwrap();
        std::fs::write(t.path().join("dangling/w.cpp"), "").unwrap();
        assert_eq!(
            package_files(t.path()).unwrap(),
            [
                "a.cpp",
                "b/a.cpp",
                "b/z.cpp",
                "cmod.toml",
                "dangling/w.cpp",
                "real/r.cpp"
            ]
        );
    }

    #[test]
    fn missing_main_points_at_the_line() {
        let (_t, mf) = project(&[], "[[bin]]\nname = \"app\"\nmain = \"src/nope.cpp\"\n");
        let e = find_sources(&mf, false).unwrap_err();
        assert!(e.message.contains("`src/nope.cpp` does not exist"), "{e}");
        let loc = e.location.unwrap();
        assert_eq!((loc.line, loc.column), (6, 8));
    }

    #[test]
    fn empty_lib_and_duplicate_bins() {
        let (_t, mf) = project(&["src/x.h"], "[lib]\nsources = [\"src/*\"]\n");
        let e = find_sources(&mf, false).unwrap_err();
        assert!(e.message.contains("match no translation units"), "{e}");
        assert_eq!(e.location.unwrap().line, 5);

        let (_t, mf) = project(
            &["m.cpp"],
            "[[bin]]\nname = \"a\"\nmain = \"m.cpp\"\n[[bin]]\nname = \"a\"\nmain = \"m.cpp\"\n",
        );
        let e = find_sources(&mf, false).unwrap_err();
        assert!(
            e.message.contains("two [[bin]] targets are named `a`"),
            "{e}"
        );
    }

    #[test]
    fn test_files_never_join_the_lib_and_are_listed_only_on_request() {
        let manifest = "[lib]\nsources = [\"**/*.cpp*\"]\n[[test]]\nname = \"checks\"\nmain = \"tests/checks.cpp\"\nsources = [\"tests/util/*.cpp\"]\n";
        let (_t, mf) = project(
            &[
                "src/a.cppm",
                "tests/checks.cpp",
                "tests/util/u.cpp",
                "tests/other.cpp",
            ],
            manifest,
        );
        let without = find_sources(&mf, false).unwrap();
        assert_eq!(without.lib, ["src/a.cppm", "tests/other.cpp"]);
        assert!(without.tests.is_empty());
        let with = find_sources(&mf, true).unwrap();
        assert_eq!(
            with.lib, without.lib,
            "the library does not depend on the request"
        );
        assert_eq!(with.tests.len(), 1);
        assert_eq!(with.tests[0].name, "checks");
        assert_eq!(
            with.tests[0].units,
            ["tests/checks.cpp", "tests/util/u.cpp"]
        );
    }

    #[test]
    fn test_entries_are_checked_at_their_line() {
        let (_t, mf) = project(
            &["m.cpp"],
            "[[bin]]\nname = \"a\"\nmain = \"m.cpp\"\n[[test]]\nname = \"a\"\nmain = \"m.cpp\"\n",
        );
        let e = find_sources(&mf, false).unwrap_err();
        assert!(
            e.message
                .contains("a [[bin]] and a [[test]] are both named `a`"),
            "{e}"
        );
        assert_eq!(e.location.unwrap().line, 8);

        let (_t, mf) = project(
            &["m.cpp"],
            "[[bin]]\nname = \"a\"\nmain = \"m.cpp\"\n[[test]]\nname = \"t\"\nmain = \"tests/t.cpp\"\n",
        );
        let e = find_sources(&mf, false).unwrap_err();
        assert!(
            e.message
                .contains("test `t`: main file `tests/t.cpp` does not exist"),
            "{e}"
        );
        assert_eq!(e.location.unwrap().line, 9);
    }

    #[test]
    fn bad_glob() {
        let (_t, mf) = project(&["a.cpp"], "[lib]\nsources = [\"src/[.cpp\"]\n");
        let e = find_sources(&mf, false).unwrap_err();
        assert!(e.message.contains("not a valid glob"), "{e}");
    }

    #[test]
    fn nothing_to_build() {
        let (_t, mf) = project(&[], "");
        let e = find_sources(&mf, false).unwrap_err();
        assert!(e.message.contains("neither [lib] nor [[bin]]"), "{e}");
    }
}
