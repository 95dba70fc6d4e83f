//! Reading the flags a manifest writes (`cxxflags`, `cflags`, `ldflags`, `defines`,
//! `include-dirs`, in `[build]`, profiles, targets and source overrides) into checked
//! pieces, and the compile flags of one unit.
//!
//! Compile flags are split the way BMI compatibility needs:
//! * **dialect** flags must match between a BMI and every consumer (clang rejects a BMI
//!   built with a different `-std`, exceptions, RTTI, char signedness, fast-math,
//!   `char8_t` or target); a consumer whose dialect differs from a module's gets its own
//!   BMI variant of that module;
//! * **codegen** flags (`-O`, `-g`, warnings, ...), defines and include paths belong to the
//!   unit's target and never leak into another target's units, except as usage
//!   requirements (see `settings`).
//!
//! Paths inside a package are kept as [`PkgPath`]s: a build step sees them under
//! `src/<package>/`, the scanner at the package's directory. Flags that cmod itself
//! manages (`-c`, `-o`, `-x`, module-file flags, `-std`, `-stdlib`) or that would reach
//! outside the package (absolute include paths, response files elsewhere) are rejected
//! with a pointer to the manifest line. A response file (`@file`) inside the package is
//! expanded here, so its contents are part of every key like any other flag.

use cmod_schema::diag::Location;
use cmod_schema::manifest::Spanned;

use crate::error::{ErrorKind, EvalError};
use crate::manifest_file::ManifestFile;
use crate::package::PackageId;
use crate::sources::Lang;

/// Which `[profile.*]` a build uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProfileName {
    /// The default profile.
    #[default]
    Dev,
    /// `--release`.
    Release,
}

impl ProfileName {
    /// The profile's name in the manifest (`dev`, `release`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileName::Dev => "dev",
            ProfileName::Release => "release",
        }
    }
}

/// A path inside a package: `src/<package>/<rel>` in a build step, `<root>/<rel>` for
/// the scanner.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PkgPath {
    /// The package.
    pub package: PackageId,
    /// The `/`-separated path relative to the package root.
    pub rel: String,
}

/// A flag that carries a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathArg {
    /// `-I`, `-iquote`, `-isystem` or `-idirafter` with a package directory (joined).
    Dir {
        /// The flag (`-I`).
        flag: &'static str,
        /// The directory.
        at: PkgPath,
    },
    /// `-include` or `-imacros` with a package file (two arguments).
    File {
        /// The flag (`-include`).
        flag: &'static str,
        /// The file.
        at: PkgPath,
    },
    /// A flag that stays as written: a system directory from pkg-config, or a
    /// force-included header found on the include path (`-include`, `vector`).
    Host(Vec<String>),
}

/// One checked flag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Flag {
    /// A flag passed as written.
    Text(String),
    /// A flag with a package path, rewritten for where it is used.
    Path(PathArg),
}

/// The compile flags of one unit (without module files and the step itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnitFlags {
    /// C++ or C.
    pub lang: Lang,
    /// Flags a BMI and all its consumers must agree on (`-std=`, and the like).
    pub dialect: Vec<String>,
    /// Flags of this unit only: optimisation, debug information, warnings.
    pub codegen: Vec<String>,
    /// `-D` arguments, in order.
    pub defines: Vec<String>,
    /// Include paths and force-included files.
    pub paths: Vec<PathArg>,
    /// The target's precompiled header, for units that use it.
    pub pch: Option<PkgPath>,
}

impl UnitFlags {
    /// Codegen flags, defines and path flags, with package paths written by `place`.
    pub fn render_after_dialect(&self, place: &dyn Fn(&PkgPath) -> String) -> Vec<String> {
        let mut out: Vec<String> = self.codegen.clone();
        out.extend(self.defines.iter().cloned());
        for p in &self.paths {
            render_path(p, place, &mut out);
        }
        out
    }

    /// Every flag, dialect first, with package paths written by `place`.
    pub fn render(&self, place: &dyn Fn(&PkgPath) -> String) -> Vec<String> {
        let mut out = self.dialect.clone();
        out.extend(self.render_after_dialect(place));
        out
    }
}

fn render_path(p: &PathArg, place: &dyn Fn(&PkgPath) -> String, out: &mut Vec<String>) {
    match p {
        PathArg::Dir { flag, at } => out.push(format!("{flag}{}", place(at))),
        PathArg::File { flag, at } => {
            out.push(flag.to_string());
            out.push(place(at));
        }
        PathArg::Host(words) => out.extend(words.iter().cloned()),
    }
}

/// Flags that change the dialect of a BMI (see the module documentation).
pub fn is_dialect_flag(f: &str) -> bool {
    const EXACT: &[&str] = &[
        "-fexceptions",
        "-fno-exceptions",
        "-fcxx-exceptions",
        "-fno-cxx-exceptions",
        "-frtti",
        "-fno-rtti",
        "-fsigned-char",
        "-funsigned-char",
        "-fno-signed-char",
        "-fno-unsigned-char",
        "-ffast-math",
        "-fno-fast-math",
        "-fchar8_t",
        "-fno-char8_t",
        "-fms-extensions",
        "-fno-ms-extensions",
        "-fgnu-keywords",
        "-fno-gnu-keywords",
        "-fsized-deallocation",
        "-fno-sized-deallocation",
        "-faligned-allocation",
        "-fno-aligned-allocation",
        "-fthreadsafe-statics",
        "-fno-threadsafe-statics",
        "-m32",
        "-m64",
        "-fwrapv",
        "-fno-wrapv",
        "-ffreestanding",
    ];
    EXACT.contains(&f) || f.starts_with("--target=") || f.starts_with("-fno-builtin")
}

/// Flags cmod manages, as (prefix, why) and (exact flag, why).
const MANAGED_PREFIXES: &[(&str, &str)] = &[
    (
        "-std=",
        "set [toolchain] cxx-standard or c-standard instead",
    ),
    ("-stdlib=", "set [toolchain] stdlib instead"),
    ("-fmodule-file", "cmod passes every module file itself"),
    (
        "-fprebuilt-module-path",
        "cmod passes every module file itself",
    ),
    ("-fmodules-cache-path", "cmod does not use implicit modules"),
    ("--precompile", "cmod decides which units are precompiled"),
    ("-fmodule-output", "cmod decides where module files go"),
    ("-include-pch", "set `pch` on the target instead"),
    ("-MD", "cmod tracks headers itself"),
    ("-MMD", "cmod tracks headers itself"),
    ("-MF", "cmod tracks headers itself"),
];
const MANAGED_EXACT: &[(&str, &str)] = &[
    ("-c", "cmod decides what each step produces"),
    ("-o", "cmod decides where outputs go"),
    ("-x", "cmod chooses the language of each unit"),
    ("-E", "cmod decides what each step produces"),
    ("-S", "cmod decides what each step produces"),
    ("-target", "write `--target=<triple>` as one argument"),
];
const DIR_FLAGS: &[&str] = &["-isystem", "-iquote", "-idirafter", "-I"];
const FILE_FLAGS: &[&str] = &["-include", "-imacros"];
/// How deep response files may name further response files.
const MAX_RESPONSE_DEPTH: usize = 8;

/// Where flags are read: the manifest, the package they belong to, and the table they
/// come from (for messages).
pub struct FlagSource<'a> {
    /// The manifest the flags are written in.
    pub file: &'a ManifestFile,
    /// The package that manifest belongs to.
    pub package: PackageId,
    /// The table they come from (`build`, `lib`), for messages.
    pub table: &'a str,
}

impl FlagSource<'_> {
    fn error(&self, at: &Location, message: String, help: String) -> EvalError {
        EvalError::new(ErrorKind::ManifestInvalid, message)
            .at(at.clone())
            .help(help)
    }

    /// Check a package-relative directory.
    pub fn dir(&self, raw: &str, at: &Location) -> Result<PkgPath, EvalError> {
        let rel = clean_relative(raw).ok_or_else(|| {
            self.error(
                at,
                format!("include directory `{raw}` in {} is not inside the package", self.table),
                "use a path relative to the package root, without `..`; system headers come from the toolchain or a `system` dependency, and other packages' headers from their `public-include-dirs`".into(),
            )
        })?;
        Ok(PkgPath {
            package: self.package,
            rel,
        })
    }

    /// The checked flags of `list`, response files expanded.
    pub fn flags(&self, list: &[Spanned<String>]) -> Result<Vec<Flag>, EvalError> {
        let words: Vec<(String, Location)> = list
            .iter()
            .map(|f| (f.get_ref().clone(), self.file.location_or_file(f.span())))
            .collect();
        let mut out = Vec::new();
        self.parse(&words, 0, &mut out)?;
        Ok(out)
    }

    /// The checked defines of `list`, as `-D` arguments.
    pub fn defines(&self, list: &[Spanned<String>]) -> Result<Vec<String>, EvalError> {
        list.iter()
            .map(|d| {
                let text = d.get_ref();
                if text.is_empty() || text.starts_with('-') || text.starts_with('=') {
                    let at = self.file.location_or_file(d.span());
                    return Err(self.error(
                        &at,
                        format!("`{text}` in {} is not a define", self.table),
                        format!(
                            "write `NAME` or `NAME=VALUE`{}",
                            text.strip_prefix("-D")
                                .map(|d| format!(", e.g. `{d}`"))
                                .unwrap_or_default()
                        ),
                    ));
                }
                Ok(format!("-D{text}"))
            })
            .collect()
    }

    /// Checked package directories.
    pub fn dirs(&self, list: &[Spanned<String>]) -> Result<Vec<PkgPath>, EvalError> {
        list.iter()
            .map(|d| self.dir(d.get_ref(), &self.file.location_or_file(d.span())))
            .collect()
    }

    /// Checked link flags (no paths: libraries come from `links` and system dependencies).
    pub fn ldflags(&self, list: &[Spanned<String>]) -> Result<Vec<String>, EvalError> {
        let mut out = Vec::new();
        for f in list {
            let text = f.get_ref();
            let at = self.file.location_or_file(f.span());
            self.check_managed(text, &at)?;
            if text.starts_with("-L") || text.starts_with('@') || text.starts_with("-l") {
                return Err(self.error(
                    &at,
                    format!("`{text}` is not allowed in {}", self.table),
                    "name system libraries in `links = [\"pthread\"]` or declare them as dependencies (`zlib = { system = \"zlib\" }`), so they are found, hashed and locked".into(),
                ));
            }
            out.push(text.clone());
        }
        Ok(out)
    }

    fn check_managed(&self, f: &str, at: &Location) -> Result<(), EvalError> {
        let reason = MANAGED_PREFIXES
            .iter()
            .find(|(p, _)| f.starts_with(p))
            .or_else(|| MANAGED_EXACT.iter().find(|(p, _)| f == *p))
            .map(|(_, r)| *r);
        match reason {
            Some(reason) => Err(self.error(
                at,
                format!("`{f}` is not allowed in {}: {reason}", self.table),
                format!("remove `{f}`"),
            )),
            None => Ok(()),
        }
    }

    fn parse(
        &self,
        words: &[(String, Location)],
        depth: usize,
        out: &mut Vec<Flag>,
    ) -> Result<(), EvalError> {
        let mut it = words.iter();
        while let Some((word, at)) = it.next() {
            if let Some(rel) = word.strip_prefix('@') {
                let expanded = self.response_file(rel, at, depth)?;
                self.parse(&expanded, depth + 1, out)?;
                continue;
            }
            self.check_managed(word, at)?;
            if let Some(flag) = FILE_FLAGS.iter().find(|f| word.starts_with(**f)) {
                let joined = &word[flag.len()..];
                let value = if joined.is_empty() {
                    let Some((next, _)) = it.next() else {
                        return Err(self.error(
                            at,
                            format!("`{word}` in {} needs a file after it", self.table),
                            format!("write `\"{word}\", \"config.h\"`"),
                        ));
                    };
                    next.clone()
                } else {
                    joined.to_string()
                };
                out.push(Flag::Path(self.force_include(flag, &value, at)?));
                continue;
            }
            if let Some(flag) = DIR_FLAGS.iter().find(|f| word.starts_with(**f)) {
                let joined = &word[flag.len()..];
                let value = if joined.is_empty() {
                    let Some((next, _)) = it.next() else {
                        return Err(self.error(
                            at,
                            format!("`{word}` in {} needs a directory after it", self.table),
                            format!("write `\"{word}include\"`"),
                        ));
                    };
                    next.clone()
                } else {
                    joined.to_string()
                };
                let dir = self.dir(&value, at)?;
                out.push(Flag::Path(PathArg::Dir { flag, at: dir }));
                continue;
            }
            if word.starts_with("-L") {
                return Err(self.error(at, format!("`{word}` in {} reaches outside the package, which a hermetic build cannot see", self.table), "link system libraries with `links` or a `system` dependency".into()));
            }
            out.push(Flag::Text(word.clone()));
        }
        Ok(())
    }

    /// `-include x`: a package file becomes a tracked path; a bare name found on the
    /// include path stays as written; an absolute path is outside the package.
    fn force_include(
        &self,
        flag: &'static str,
        value: &str,
        at: &Location,
    ) -> Result<PathArg, EvalError> {
        if let Some(rel) = clean_relative(value) {
            if crate::journal::is_file(&self.file.dir().join(&rel)) {
                return Ok(PathArg::File {
                    flag,
                    at: PkgPath {
                        package: self.package,
                        rel,
                    },
                });
            }
            return Ok(PathArg::Host(vec![flag.to_string(), value.to_string()]));
        }
        Err(self.error(
            at,
            format!("`{flag} {value}` in {} names a file outside the package", self.table),
            "force-include a header of the package (relative to its root), or a header on the include path by its name".into(),
        ))
    }

    /// The words of response file `rel` (relative to the package root, inside it).
    fn response_file(
        &self,
        rel: &str,
        at: &Location,
        depth: usize,
    ) -> Result<Vec<(String, Location)>, EvalError> {
        if depth >= MAX_RESPONSE_DEPTH {
            return Err(self.error(
                at,
                format!("response file `@{rel}` nests more than {MAX_RESPONSE_DEPTH} levels deep"),
                "flatten the response files".into(),
            ));
        }
        let clean = clean_relative(rel).ok_or_else(|| {
            self.error(
                at,
                format!("response file `@{rel}` in {} is outside the package", self.table),
                "a hermetic build reads only the package's files: move the response file into the package and name it relative to the package root".into(),
            )
        })?;
        let path = self.file.dir().join(&clean);
        let canonical_root = crate::journal::canonicalize(self.file.dir())
            .unwrap_or_else(|_| self.file.dir().to_path_buf());
        let inside =
            crate::journal::canonicalize(&path).is_ok_and(|c| c.starts_with(&canonical_root));
        let text = match crate::journal::read_to_string(&path) {
            Ok(t) if inside => t,
            Ok(_) => {
                return Err(self.error(
                    at,
                    format!("response file `@{rel}` leads outside the package"),
                    "response files must live inside the package".into(),
                ))
            }
            Err(e) => {
                return Err(self.error(
                    at,
                    format!("cannot read response file `@{rel}`: {e}"),
                    "create it, or fix the path (relative to the package root)".into(),
                ))
            }
        };
        let location = Location {
            file: path.clone(),
            line: 1,
            column: 1,
        };
        Ok(split_response_file(&text)
            .into_iter()
            .map(|w| (w, location.clone()))
            .collect())
    }
}

/// `rel` without `./` and a trailing `/`, if it is relative and never goes up.
fn clean_relative(raw: &str) -> Option<String> {
    let d = raw.trim_end_matches('/');
    let d = d.strip_prefix("./").unwrap_or(d);
    let escapes = d.starts_with('/') || d.split('/').any(|c| c == "..");
    (!escapes && !d.is_empty()).then(|| d.to_string())
}

/// Split a response file the way GNU tools do: whitespace separates words; single and
/// double quotes group; a backslash escapes the next character.
pub fn split_response_file(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests;
