//! The compile database (`compile_commands.json`) that editors and clangd read: one entry
//! per translation unit, with the user's files and the flags the build uses.
//!
//! It is derived from the **emitted derivations**, not from the flag computation, so it
//! says exactly what the build does. A compile step's arguments name files as the step
//! sees them in its build directory; here they become host paths:
//!
//! * `src/<package>/<path>` → the package's directory (a path dependency's directory, a
//!   git dependency's checkout in the store), in the file compiled and in `-I`-style
//!   flags;
//! * `toolchain/std/...` → the toolchain's standard library module sources.
//!
//! A BMI step (`--precompile -x c++-module <src>`) becomes the command for its source with
//! `-c`; an importable unit's object step, which compiles the BMI, stands for the same
//! source, so it yields the BMI step's command (in the unit's own dialect). What only makes
//! sense inside a build directory is dropped: `-o out/...`, `@modules.rsp` (clangd
//! 19's `--experimental-modules-support` builds the BMIs it needs from the database's own
//! entries for module interfaces; the store's BMIs may not exist yet and embed sandbox
//! paths), `-Xclang -fmodules-embed-all-files` and the build-directory prefix map.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cmod_schema::derivation::{Derivation, InputFrom, InputRole, StepKind, Tool};
use cmod_schema::manifest::CompileCommandsSetting;
use cmod_schema::{ContentHash, StorePath};
use serde::{Deserialize, Serialize};

use crate::derive::{Derived, STD_MODULE_DIR};
use crate::error::{ErrorKind, EvalError};
use crate::package::PackageGraph;
use crate::Evaluation;

/// The file name clangd looks for (`--compile-commands-dir`, or a parent directory of
/// the file it opens).
pub const FILE_NAME: &str = "compile_commands.json";

/// What a derivation writes for the build directory's path (see `cmod_sandbox`); any
/// argument mentioning it maps paths of the build directory, which a host command lacks.
const BUILD_DIR_PLACEHOLDER: &str = "@builddir@";

/// Flags whose value may be a build-directory path written in the same argument
/// (`-Isrc/p/include`); a value in an argument of its own is translated by itself.
const PATH_FLAGS: &[&str] = &["-idirafter", "-isystem", "-include", "-iquote", "-I"];

/// One entry of `compile_commands.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompileCommand {
    /// The working directory of the command: the unit's package directory.
    pub directory: String,
    /// The unit's source file, absolute.
    pub file: String,
    /// The compiler and its arguments, with host paths.
    pub arguments: Vec<String>,
}

/// Why a compile database cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum CompdbError {
    /// Evaluating the project failed.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// A path that must go into the database is not UTF-8.
    #[error("the path `{}` is not valid UTF-8, which a compile database (JSON) cannot hold", .0.display())]
    NotUtf8(PathBuf),
    /// A compile step's source is in no package this database knows (a cmod bug).
    #[error("derivation `{name}` compiles `{at}`, which is not below any package's sources")]
    UnknownSource {
        /// The compile step's derivation name.
        name: String,
        /// Where the step reads its source, in its build directory.
        at: String,
    },
    /// A compile step has neither a source nor a BMI input (a cmod bug).
    #[error("derivation `{name}` compiles neither a source nor the BMI of another derivation")]
    NoCompiledInput {
        /// The compile step's derivation name.
        name: String,
    },
    /// A compile step reads the BMI of a derivation that was not emitted (a cmod bug).
    #[error("derivation `{name}` compiles `{at}` from `{drv}`, which was not emitted")]
    MissingDerivation {
        /// The compile step's derivation name.
        name: String,
        /// Where the step reads the BMI, in its build directory.
        at: String,
        /// The missing BMI derivation.
        drv: StorePath,
    },
    /// The database could not be encoded as JSON.
    #[error("cannot encode the compile database: {0}")]
    Encoding(#[from] serde_json::Error),
}

impl CompdbError {
    /// Whether the error is cmod's fault (a derivation shape this module does not know)
    /// rather than the user's (an evaluation error, a path JSON cannot hold).
    pub fn is_internal(&self) -> bool {
        match self {
            CompdbError::Eval(e) => e.kind == ErrorKind::Internal,
            CompdbError::NotUtf8(_) => false,
            _ => true,
        }
    }
}

/// Where the build-directory paths of sources point on the host.
#[derive(Debug, Clone, Default)]
pub struct HostRoots {
    /// Package name → its directory.
    packages: BTreeMap<String, PathBuf>,
    /// The standard library's module sources (`toolchain/std`).
    std_modules: Option<PathBuf>,
    /// Generated units (`src/<package>/<path>` → where they were written): they are not
    /// in their package's directory.
    generated: BTreeMap<String, PathBuf>,
}

impl HostRoots {
    /// Roots from `(package name, directory)` pairs and the standard library's module sources.
    pub fn new(
        packages: impl IntoIterator<Item = (String, PathBuf)>,
        std_modules: Option<PathBuf>,
    ) -> HostRoots {
        HostRoots {
            packages: packages.into_iter().collect(),
            std_modules,
            generated: BTreeMap::new(),
        }
    }

    /// Every package's directory, its generated units and the toolchain's module sources
    /// of `eval`.
    pub fn of(eval: &Evaluation) -> HostRoots {
        let mut roots = HostRoots::new(
            eval.packages
                .packages
                .iter()
                .map(|p| (p.name.clone(), p.root.clone())),
            eval.toolchain.std_module_dir.clone(),
        );
        for (pkg, sources) in eval.packages.packages.iter().zip(&eval.sources) {
            for (rel, file) in &sources.generated {
                let at = format!("src/{}/{rel}", pkg.name);
                roots.generated.insert(at, file.host.clone());
            }
        }
        roots
    }

    /// The host directory `at` lies in (a package's, or the standard library modules')
    /// and `at`'s path below it.
    fn split<'a>(&self, at: &'a str) -> Option<(&Path, &'a str)> {
        if let Some(rest) = at.strip_prefix(STD_MODULE_DIR) {
            let rest = if rest.is_empty() {
                rest
            } else {
                rest.strip_prefix('/')?
            };
            return Some((self.std_modules.as_deref()?, rest));
        }
        let in_packages = at.strip_prefix("src/")?;
        let (name, rest) = in_packages.split_once('/').unwrap_or((in_packages, ""));
        Some((self.packages.get(name)?.as_path(), rest))
    }

    /// The host path that the build-directory path `at` stands for, if it is a source.
    pub fn host_path(&self, at: &str) -> Option<PathBuf> {
        if let Some(written) = self.generated.get(at) {
            return Some(written.clone());
        }
        let (root, rest) = self.split(at)?;
        Some(if rest.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rest)
        })
    }
}

fn utf8(path: &Path) -> Result<String, CompdbError> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| CompdbError::NotUtf8(path.to_path_buf()))
}

/// Where a step's translation unit is among its arguments.
enum Compiled {
    /// `args[index]` is the unit's source.
    Source(usize),
    /// The step compiles the BMI another derivation produces (an importable unit's
    /// object step).
    Bmi { at: String, drv: StorePath },
}

/// What `drv` compiles: an argument naming one of its source inputs (or a file inside a
/// source directory input, as for the standard library modules), else an argument
/// naming one of its BMI inputs as a whole (imports are passed as `-fmodule-file=`).
fn compiled(drv: &Derivation) -> Option<Compiled> {
    let sources: Vec<&str> = drv
        .inputs
        .iter()
        .filter(|i| i.role == InputRole::Source)
        .map(|i| i.at.as_str())
        .collect();
    let is_source = |arg: &str| {
        sources.iter().any(|s| {
            arg.strip_prefix(s)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    };
    if let Some(index) = drv.args.iter().position(|a| is_source(a)) {
        return Some(Compiled::Source(index));
    }
    drv.inputs
        .iter()
        .filter(|i| i.role == InputRole::Bmi && drv.args.contains(&i.at))
        .find_map(|i| match &i.from {
            InputFrom::Drv { drv, .. } => Some(Compiled::Bmi {
                at: i.at.clone(),
                drv: drv.clone(),
            }),
            InputFrom::Path { .. } => None,
        })
}

/// `arg` with a build-directory source path in it (alone or after a [`PATH_FLAGS`]
/// flag) replaced by the host path.
fn host_argument(arg: &str, roots: &HostRoots) -> Result<String, CompdbError> {
    for flag in PATH_FLAGS.iter().copied().chain([""]) {
        let Some(value) = arg.strip_prefix(flag) else {
            continue;
        };
        if let Some(host) = roots.host_path(value) {
            return Ok(format!("{flag}{}", utf8(&host)?));
        }
    }
    Ok(arg.to_string())
}

/// The header a step's `-include-pch <at>` was precompiled from, as a host path: clangd
/// cannot use the build's precompiled header, so it gets the header itself.
fn pch_header(step: &Derivation, at: &str, derived: &Derived, roots: &HostRoots) -> Option<String> {
    let input = step
        .inputs
        .iter()
        .find(|i| i.at == at && i.role == InputRole::Pch)?;
    let InputFrom::Drv { drv, .. } = &input.from else {
        return None;
    };
    let pch = derived.derivations.get(drv)?;
    let source = pch.inputs.iter().find(|i| i.role == InputRole::Source)?;
    roots.host_path(&source.at).and_then(|p| utf8(&p).ok())
}

/// The entry for the unit that `step` compiles from its source at `args[source]`.
fn entry(
    step: &Derivation,
    source: usize,
    roots: &HostRoots,
    compiler: &str,
    derived: &Derived,
) -> Result<CompileCommand, CompdbError> {
    let at = &step.args[source];
    let unknown = || CompdbError::UnknownSource {
        name: step.name.clone(),
        at: at.clone(),
    };
    let (root, _) = roots.split(at).ok_or_else(unknown)?;
    let file = utf8(&roots.host_path(at).ok_or_else(unknown)?)?;
    let mut arguments = vec![compiler.to_string()];
    let mut args = step.args.iter().enumerate().peekable();
    while let Some((i, arg)) = args.next() {
        match arg.as_str() {
            _ if i == source => arguments.push(file.clone()),
            "-o" => {
                args.next();
            }
            "--precompile" => arguments.push("-c".into()),
            "-include-pch" => {
                if let Some(header) = args
                    .next()
                    .and_then(|(_, at)| pch_header(step, at, derived, roots))
                {
                    arguments.extend(["-include".to_string(), header]);
                }
            }
            "-Xclang"
                if args
                    .peek()
                    .is_some_and(|(_, a)| *a == "-fmodules-embed-all-files") =>
            {
                args.next();
            }
            a if a.starts_with("-fmodule-file=")
                || a == cmod_schema::derivation::MODULE_MAP_ARG
                || a.contains(BUILD_DIR_PLACEHOLDER) => {}
            a => arguments.push(host_argument(a, roots)?),
        }
    }
    Ok(CompileCommand {
        directory: utf8(root)?,
        file,
        arguments,
    })
}

/// The compile database of `derived`: one entry per translation unit, sorted by file.
///
/// A unit compiled by several steps (an importable unit's BMI and object; BMI variants in
/// consumers' dialects) gets the entry of its object step, which is in its own dialect.
pub fn compile_commands(
    derived: &Derived,
    roots: &HostRoots,
    compiler: &Path,
) -> Result<Vec<CompileCommand>, CompdbError> {
    let compiler = utf8(compiler)?;
    // File → (whether it came from an object step, entry).
    let mut by_file: BTreeMap<String, (bool, CompileCommand)> = BTreeMap::new();
    for drv in derived.derivations.values() {
        if drv.tool != Tool::Cxx || !matches!(drv.kind, StepKind::Bmi | StepKind::Object) {
            continue;
        }
        let no_input = || CompdbError::NoCompiledInput {
            name: drv.name.clone(),
        };
        let (step, source) = match compiled(drv).ok_or_else(no_input)? {
            Compiled::Source(index) => (drv, index),
            Compiled::Bmi { at, drv: bmi } => {
                let step = derived.derivations.get(&bmi).ok_or_else(|| {
                    CompdbError::MissingDerivation {
                        name: drv.name.clone(),
                        at: at.clone(),
                        drv: bmi.clone(),
                    }
                })?;
                match compiled(step) {
                    Some(Compiled::Source(index)) => (step, index),
                    _ => return Err(no_input()),
                }
            }
        };
        let from_object = drv.kind == StepKind::Object;
        let command = entry(step, source, roots, &compiler, derived)?;
        let keep_existing = by_file
            .get(&command.file)
            .is_some_and(|(existing_from_object, _)| *existing_from_object || !from_object);
        if !keep_existing {
            by_file.insert(command.file.clone(), (from_object, command));
        }
    }
    Ok(by_file.into_values().map(|(_, c)| c).collect())
}

/// [`compile_commands`] of an evaluation (emitting its derivations if need be).
pub fn of_evaluation(eval: &Evaluation) -> Result<Vec<CompileCommand>, CompdbError> {
    compile_commands(eval.derived()?, &HostRoots::of(eval), &eval.toolchain.cxx)
}

/// The database as written to `compile_commands.json`.
pub fn to_json(commands: &[CompileCommand]) -> Result<Vec<u8>, CompdbError> {
    let mut bytes = serde_json::to_vec_pretty(commands)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Whether `eval` already is what the compile database describes — every workspace
/// member with its `[[test]]` units — because it selected every member and none has
/// tests; otherwise the database needs an evaluation of its own.
pub fn covers_workspace_with_tests(eval: &Evaluation) -> bool {
    let packages = &eval.packages;
    packages
        .members
        .iter()
        .all(|m| packages.selected.contains(m))
        && packages
            .members
            .iter()
            .all(|&m| packages.packages[m].file.manifest.test.is_empty())
}

/// Where `cmod realise` writes the compile database: the workspace root manifest's
/// `[build] compile-commands` (relative to the workspace root), by default
/// `compile_commands.json` there; `None` when it is `false`.
pub fn configured_output(packages: &PackageGraph) -> Option<PathBuf> {
    let setting = packages
        .workspace_file
        .manifest
        .build
        .compile_commands
        .as_ref();
    match setting.map(|s| s.get_ref()) {
        None | Some(CompileCommandsSetting::Default) => {
            Some(packages.workspace_root.join(FILE_NAME))
        }
        Some(CompileCommandsSetting::Off) => None,
        Some(CompileCommandsSetting::Path(p)) => Some(packages.workspace_root.join(p)),
    }
}

/// A warning for every workspace member other than the root that sets
/// `[build] compile-commands`, which only the workspace root's manifest decides.
pub fn ignored_settings(packages: &PackageGraph) -> Vec<EvalError> {
    packages
        .members
        .iter()
        .map(|&m| &packages.packages[m])
        .filter(|pkg| pkg.root != packages.workspace_root)
        .filter_map(|pkg| {
            let setting = pkg.file.manifest.build.compile_commands.as_ref()?;
            Some(
                EvalError::new(
                    ErrorKind::ManifestInvalid,
                    format!(
                        "`compile-commands` of member `{}` is ignored: the workspace root's manifest decides where the compile database goes",
                        pkg.name
                    ),
                )
                .at(pkg.file.location_or_file(setting.span()))
                .help(format!(
                    "move it to [build] of `{}`",
                    packages.workspace_root.join("cmod.toml").display()
                )),
            )
        })
        .collect()
}

/// What [`is_current`] compares: the evaluation's fingerprint and where the file goes,
/// under this module's format version.
fn stamp_key(fingerprint: &ContentHash, output: &Path) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"cmod-compile-commands-v1\0");
    h.update(&fingerprint.0);
    h.update(b"\0");
    h.update(output.as_os_str().as_encoded_bytes());
    h.finalize().to_hex().to_string()
}

/// A record of the last database written to a path.
#[derive(Debug, Serialize, Deserialize)]
struct Stamp {
    key: String,
    /// BLAKE3 of the bytes written, so an edited or replaced file is rewritten.
    contents: String,
}

fn stamp_file(cache_dir: &Path, output: &Path) -> PathBuf {
    let name = blake3::hash(output.as_os_str().as_encoded_bytes()).to_hex();
    cache_dir
        .join("compile-commands-v1")
        .join(format!("{}.json", &name[..32]))
}

/// Whether `output` still holds the database [`remember`]ed for an evaluation with this
/// `fingerprint` (equal fingerprints mean identical derivations, hence an identical
/// database), so writing it again can be skipped.
pub fn is_current(cache_dir: &Path, output: &Path, fingerprint: &ContentHash) -> bool {
    let Some(stamp) = crate::cache_io::read_json::<Stamp>(&stamp_file(cache_dir, output)) else {
        return false;
    };
    stamp.key == stamp_key(fingerprint, output)
        && std::fs::read(output)
            .is_ok_and(|bytes| blake3::hash(&bytes).to_hex().as_str() == stamp.contents)
}

/// Record that `bytes` were written to `output` for an evaluation with `fingerprint`
/// (a lost record only costs a rewrite).
pub fn remember(cache_dir: &Path, output: &Path, fingerprint: &ContentHash, bytes: &[u8]) {
    crate::cache_io::write_json_atomic(
        &stamp_file(cache_dir, output),
        &Stamp {
            key: stamp_key(fingerprint, output),
            contents: blake3::hash(bytes).to_hex().to_string(),
        },
    );
}

#[cfg(test)]
mod tests;
