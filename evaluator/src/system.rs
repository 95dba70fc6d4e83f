//! System libraries: `[dependencies] zlib = { system = "zlib" }`, resolved through
//! pkg-config at evaluation time, and plain `links = ["pthread", "m"]`, found on the
//! toolchain's library path.
//!
//! Each becomes a [`SystemLib`]: its compile flags (include directories and defines for
//! the units of the packages that declare it, and of their consumers when it is public),
//! its link words, and the **host files** a link reads — the library files, followed
//! through symlinks and GNU linker scripts, and the `.pc` file — with their content
//! hashes. Those files are mounted into the link steps that need them and hashed into
//! their keys and into `cmod.lock`, so a changed system library rebuilds exactly the
//! links that use it and is a lock change. Headers are not listed here: every unit's
//! headers outside packages are tracked one by one (see `scan`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cmod_schema::diag::Location;
use cmod_schema::manifest::Spanned;
use cmod_schema::toolchain::ToolchainInfo;
use cmod_schema::ContentHash;

use crate::error::{ErrorKind, EvalError};
use crate::file_cache::FileCache;
use crate::flags::split_response_file;
use crate::manifest_file::ManifestFile;
use crate::package::SystemDep;
use crate::toolchain::resolve_lib;

/// A resolved system library. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SystemLib {
    /// The dependency's key, or the name in `links`.
    pub name: String,
    /// The pkg-config module, for a system dependency.
    pub pkg_config: Option<String>,
    /// The version pkg-config reports.
    pub version: Option<String>,
    /// Compile flags (`pkg-config --cflags`): `-I` of absolute directories, `-D`, others.
    pub cflags: Vec<String>,
    /// Link words: `-L` directories, `-l` names and other flags (`-pthread`).
    pub libs: Vec<String>,
    /// Absolute path → content hash of every file a link reads of it.
    pub files: BTreeMap<String, ContentHash>,
    /// The `.pc` file it was found through (recorded in the lock, not read by builds).
    pub pc_file: Option<(String, ContentHash)>,
    /// Whether consumers of the declaring package inherit the compile flags.
    pub public: bool,
    /// Where the dependency (or `links` entry) is declared.
    pub location: Location,
}

impl SystemLib {
    /// The absolute directories of its `-I` flags.
    pub fn include_dirs(&self) -> Vec<PathBuf> {
        self.cflags
            .iter()
            .filter_map(|f| f.strip_prefix("-I"))
            .map(PathBuf::from)
            .collect()
    }
}

/// A few pkg-config names whose Debian development package is not `lib<name>-dev`.
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("zlib", "zlib1g-dev"),
    ("openssl", "libssl-dev"),
    ("libssl", "libssl-dev"),
    ("libcrypto", "libssl-dev"),
    ("libcurl", "libcurl4-openssl-dev"),
    ("sqlite3", "libsqlite3-dev"),
    ("libpng", "libpng-dev"),
    ("libzstd", "libzstd-dev"),
    ("liblzma", "liblzma-dev"),
    ("bzip2", "libbz2-dev"),
    ("libxml-2.0", "libxml2-dev"),
    ("fmt", "libfmt-dev"),
    ("gtest", "libgtest-dev"),
    ("gmock", "libgmock-dev"),
    ("libffi", "libffi-dev"),
    ("expat", "libexpat1-dev"),
    ("uuid", "uuid-dev"),
    ("libuv", "libuv1-dev"),
];

fn install_hint(module: &str) -> String {
    match DEBIAN_PACKAGES.iter().find(|(m, _)| *m == module) {
        Some((_, deb)) => format!(
            "install its development files: `apt-get install {deb}` (Debian/Ubuntu), which ships `{module}.pc`"
        ),
        None => format!(
            "install the development package that ships `{module}.pc` (on Debian: `apt-file search /{module}.pc`, usually `lib{}-dev`), or fix the name (`pkg-config --list-all` lists what is installed)",
            module.trim_start_matches("lib")
        ),
    }
}

fn pkg_config(args: &[&str], at: &Location) -> Result<Result<String, String>, EvalError> {
    // What pkg-config reads (its search path, `.pc` files and their `Requires`) is not
    // journaled: an evaluation with system libraries always runs.
    crate::journal::note(|| crate::journal::Input::Untracked("pkg-config was run".into()));
    let out = Command::new("pkg-config")
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| {
            EvalError::new(
                ErrorKind::SystemLibrary,
                format!("cannot run `pkg-config`, needed to find system dependencies: {e}"),
            )
            .at(at.clone())
            .help("install it: `apt-get install pkg-config`")
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(Ok(stdout))
    } else {
        Ok(Err(String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

/// The version pkg-config reports as a semantic version (missing parts are zero).
fn lenient_version(text: &str) -> Option<semver::Version> {
    let nums: Vec<u64> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .take(3)
        .map_while(|p| p.parse().ok())
        .collect();
    let get = |i: usize| nums.get(i).copied().unwrap_or(0);
    (!nums.is_empty()).then(|| semver::Version::new(get(0), get(1), get(2)))
}

/// Resolve a `system` dependency through pkg-config: its version, flags and `.pc` file.
/// Its library files are found later, once the toolchain's library path is known
/// ([`SystemLib::find_files`]).
pub fn resolve_dependency(dep: &SystemDep, files: &FileCache) -> Result<SystemLib, EvalError> {
    let at = &dep.location;
    let module = dep.module.as_str();
    let version = match pkg_config(&["--modversion", module], at)? {
        Ok(v) => v,
        Err(why) => {
            return Err(EvalError::new(
                ErrorKind::SystemLibrary,
                format!(
                    "system dependency `{}`: pkg-config package `{module}` was not found",
                    dep.name
                ),
            )
            .at(at.clone())
            .note(None, format!("pkg-config said: {why}"))
            .help(install_hint(module)))
        }
    };
    if let Some(req) = &dep.version {
        let found = lenient_version(&version);
        if !found.as_ref().is_some_and(|v| req.matches(v)) {
            return Err(EvalError::new(
                ErrorKind::SystemLibrary,
                format!("system dependency `{}` requires version `{req}`, but pkg-config reports `{module}` {version}", dep.name),
            )
            .at(at.clone())
            .help("install a matching version, or relax the `version` requirement"));
        }
    }
    let query = |what: &str| -> Result<String, EvalError> {
        pkg_config(&[what, module], at)?.map_err(|why| {
            EvalError::new(
                ErrorKind::SystemLibrary,
                format!("`pkg-config {what} {module}` failed: {why}"),
            )
            .at(at.clone())
            .help("check the package's .pc file")
        })
    };
    let cflags = split_response_file(&query("--cflags")?);
    let libs = split_response_file(&query("--libs")?);
    let pc_dir = query("--variable=pcfiledir")?;
    let mut lib = SystemLib {
        name: dep.name.clone(),
        pkg_config: Some(module.to_string()),
        version: Some(version),
        cflags: check_cflags(&dep.name, cflags, at)?,
        libs: Vec::new(),
        files: BTreeMap::new(),
        pc_file: None,
        public: dep.public,
        location: at.clone(),
    };
    let pc = Path::new(&pc_dir).join(format!("{module}.pc"));
    let mut pc_file = BTreeMap::new();
    add_file(&mut pc_file, &pc, files, at)?;
    lib.pc_file = pc_file.into_iter().next();
    lib.libs = libs;
    Ok(lib)
}

impl SystemLib {
    /// Find the files its link words make the linker read, on the toolchain's library path
    /// (after any `-L` of its own), and add them with their hashes.
    pub fn find_files(
        &mut self,
        toolchain: &ToolchainInfo,
        files: &FileCache,
    ) -> Result<(), EvalError> {
        let words = std::mem::take(&mut self.libs);
        self.libs = link_files(
            &self.name,
            words,
            toolchain,
            files,
            &mut self.files,
            &self.location,
        )?;
        Ok(())
    }
}

/// Compile flags from pkg-config: absolute existing `-I` directories, `-D`, and flags
/// cmod does not manage.
fn check_cflags(name: &str, words: Vec<String>, at: &Location) -> Result<Vec<String>, EvalError> {
    let mut out = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        let w = if w == "-I" || w == "-isystem" {
            format!("-I{}", it.next().unwrap_or_default())
        } else {
            w
        };
        if let Some(dir) = w.strip_prefix("-I").or_else(|| w.strip_prefix("-isystem")) {
            if !Path::new(dir).is_absolute() || !Path::new(dir).is_dir() {
                return Err(EvalError::new(
                    ErrorKind::SystemLibrary,
                    format!("system dependency `{name}`: pkg-config names the include directory `{dir}`, which does not exist"),
                )
                .at(at.clone())
                .help("reinstall the library's development package"));
            }
            out.push(format!("-I{dir}"));
        } else if w.starts_with("-std=") || w == "-c" || w == "-o" {
            continue;
        } else {
            out.push(w);
        }
    }
    Ok(out)
}

/// Resolve link words: every `-l` (and absolute library path) to its files, which are
/// added to `out`. Returns the words to pass to the linker.
fn link_files(
    name: &str,
    words: Vec<String>,
    toolchain: &ToolchainInfo,
    files: &FileCache,
    out: &mut BTreeMap<String, ContentHash>,
    at: &Location,
) -> Result<Vec<String>, EvalError> {
    let mut dirs: Vec<PathBuf> = words
        .iter()
        .filter_map(|w| w.strip_prefix("-L"))
        .map(PathBuf::from)
        .collect();
    for d in &toolchain.lib_dirs {
        if !dirs.contains(d) {
            dirs.push(d.clone());
        }
    }
    let mut link = Vec::new();
    for w in words {
        if let Some(lib) = w.strip_prefix("-l") {
            let found = find_library(lib, &dirs).ok_or_else(|| {
                EvalError::new(
                    ErrorKind::SystemLibrary,
                    if name == lib {
                        format!("library `{lib}` was not found: neither lib{lib}.so nor lib{lib}.a is on the toolchain's library path")
                    } else {
                        format!("system library `{name}` needs `-l{lib}`, but neither lib{lib}.so nor lib{lib}.a is on the library path")
                    },
                )
                .at(at.clone())
                .note(None, format!("searched: {}", dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")))
                .help(if name == lib {
                    format!("install the development package that ships lib{lib}.so or lib{lib}.a (on Debian: `apt-file search /lib{lib}.so`), fix the name, or declare the library as a pkg-config dependency (`{lib} = {{ system = \"...\" }}`)")
                } else {
                    install_hint(name)
                })
            })?;
            for f in found {
                add_file(out, &f, files, at)?;
            }
        } else if Path::new(&w).is_absolute() && Path::new(&w).is_file() {
            add_file(out, Path::new(&w), files, at)?;
        }
        link.push(w);
    }
    Ok(link)
}

/// The files `-l<name>` makes the linker read in `dirs`.
fn find_library(name: &str, dirs: &[PathBuf]) -> Option<Vec<PathBuf>> {
    let mut found = Vec::new();
    resolve_lib(name, dirs, &mut found);
    (!found.is_empty()).then_some(found)
}

fn add_file(
    out: &mut BTreeMap<String, ContentHash>,
    path: &Path,
    files: &FileCache,
    at: &Location,
) -> Result<(), EvalError> {
    let hash = files
        .hash(path)
        .map_err(|e| EvalError::io(path, "hash system library file", e).at(at.clone()))?;
    out.insert(path.to_string_lossy().into_owned(), hash);
    Ok(())
}

/// The libraries of a `links` list (of the manifest `file`), checked; their files are
/// found by [`SystemLib::find_files`].
pub fn links(names: &[Spanned<String>], file: &ManifestFile) -> Result<Vec<SystemLib>, EvalError> {
    let mut out = Vec::new();
    for n in names {
        let name = n.get_ref().trim_start_matches("-l");
        let at = file.location_or_file(n.span());
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'));
        if !valid {
            return Err(EvalError::new(
                ErrorKind::ManifestInvalid,
                format!("`{}` in `links` is not a library name", n.get_ref()),
            )
            .at(at)
            .help(
                "write the name without `lib` and extension, e.g. `links = [\"pthread\", \"m\"]`",
            ));
        }
        out.push(SystemLib {
            name: name.to_string(),
            pkg_config: None,
            version: None,
            cflags: Vec::new(),
            libs: vec![format!("-l{name}")],
            files: BTreeMap::new(),
            pc_file: None,
            public: false,
            location: at,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_leniently() {
        assert_eq!(
            lenient_version("1.2.13"),
            Some(semver::Version::new(1, 2, 13))
        );
        assert_eq!(lenient_version("2.4"), Some(semver::Version::new(2, 4, 0)));
        assert_eq!(
            lenient_version("1.2.13.1-rc"),
            Some(semver::Version::new(1, 2, 13))
        );
        assert_eq!(lenient_version("none"), None);
    }

    #[test]
    fn install_hints_name_the_debian_package() {
        assert!(install_hint("zlib").contains("apt-get install zlib1g-dev"));
        assert!(
            install_hint("libfoo").contains("`foo.pc`")
                || install_hint("libfoo").contains("libfoo.pc")
        );
    }

    #[test]
    fn cflags_keep_existing_absolute_dirs_and_drop_managed_flags() {
        let at = Location {
            file: "cmod.toml".into(),
            line: 1,
            column: 1,
        };
        let words = vec![
            "-I/usr/include".into(),
            "-DX=1".into(),
            "-std=c99".into(),
            "-pthread".into(),
        ];
        assert_eq!(
            check_cflags("x", words, &at).unwrap(),
            ["-I/usr/include", "-DX=1", "-pthread"]
        );
        let e = check_cflags("x", vec!["-I/does/not/exist".into()], &at).unwrap_err();
        assert!(e.message.contains("does not exist"), "{e}");
    }
}
