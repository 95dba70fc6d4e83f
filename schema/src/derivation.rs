//! Derivations (format version 2, [`DERIVATION_VERSION`]): the immutable recipe for one
//! build step. The byte layout is specified in `docs/FORMATS.md`.
//!
//! A derivation names a toolchain (by identity), a tool of it, an argument vector, a
//! fixed environment, its inputs and its outputs. Every path in it is relative to the
//! build directory, so a derivation never mentions where the store or the build lives.
//!
//! Inputs appear in the build directory at stable names (`at`): a source at
//! `src/<package>/<path>`, a BMI at `bmi/<module>.pcm`. An input comes *from* either a
//! store path (sources, and every input of a resolved derivation) or an output of another
//! derivation. **Resolution** replaces the latter by the realised output's store path;
//! the hash of the resolved derivation (plus the sandbox mode) is the key under which
//! outputs are found or built, which gives early cutoff: an input rebuilt to identical
//! bytes has the same content-addressed store path, so consumers resolve to the same key.
//!
//! **Module closures (version 2).** A compile lists only the BMIs it imports *directly*
//! (role `bmi`, at `bmi/<file>`); each brings along, transitively, the BMIs its own
//! derivation read. The realiser lays the whole closure out at each BMI's stable name and
//! writes [`MODULE_MAP`] into the build directory: one `-fmodule-file=<module>=<at>` per
//! BMI of the closure, sorted by module, which the step's arguments name as
//! `@modules.rsp`. A BMI output names its module (`module`) and is registered with
//! references to the BMI paths it was built against, so its store path pins its whole
//! closure (store paths hash their references): the resolved direct inputs of a step
//! determine everything it sees, and derivations stay linear in the size of the graph
//! (version 1 listed every compile's whole transitive closure, quadratic on deep graphs).
//! A laid-out BMI's name and module flag are both functions of its module name
//! (`bmi/<`[`bmi_file`]`>`), which the BMI itself records.
//!
//! The encoding is canonical JSON ([`crate::canonical`]); the `.drv` store path is computed
//! from it and frozen by golden vectors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use crate::canonical::CanonicalError;
use crate::content::ContentHash;
use crate::store_path::{PathKind, StorePath, StorePathError};

/// The version written into, and required of, every derivation. Version 2: compiles list
/// their direct BMIs only, and BMI outputs name their module (see the module docs).
pub const DERIVATION_VERSION: u32 = 2;

/// The response file the realiser writes into the build directory of every step with
/// BMI inputs: `-fmodule-file=<module>=<at>` for each BMI of its module closure.
pub const MODULE_MAP: &str = "modules.rsp";

/// The argument that makes the compiler read [`MODULE_MAP`].
pub const MODULE_MAP_ARG: &str = "@modules.rsp";

/// Whether a BMI output's `module` names a header unit: its header as spelled (`<vector>`,
/// `"cfg.h"`), then `@` and a digest of how it is built. Module names never start with
/// `<` or `"`. The module map names a header unit's BMI by its path alone
/// (`-fmodule-file=<at>`: the compiler matches it to the header it was built from).
pub fn is_header_unit(module: &str) -> bool {
    module.starts_with('<') || module.starts_with('"')
}

/// The stable file name of a module's BMI (`m:p` → `m-p.pcm`): outputs are written at
/// `out/<file>` and read at `bmi/<file>`. A header unit's (see [`is_header_unit`]) is
/// `hu-<header>-<digest>.pcm` (`<bits/vector.h>@1f2e…` → `hu-bits-vector.h-1f2e….pcm`).
pub fn bmi_file(module: &str) -> String {
    if is_header_unit(module) {
        let (header, digest) = module.rsplit_once('@').unwrap_or((module, ""));
        let name = header.trim_matches(|c| c == '<' || c == '>' || c == '"');
        let name = name.trim_start_matches(['.', '/']).replace('/', "-");
        return format!(
            "hu-{}-{}.pcm",
            crate::store_path::sanitize_name(&name),
            crate::store_path::sanitize_name(digest)
        );
    }
    format!(
        "{}.pcm",
        crate::store_path::sanitize_name(&module.replace(':', "-"))
    )
}

/// What a build step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// Precompile a module interface or partition into a BMI (`--precompile`).
    Bmi,
    /// Precompile a header (`-x c++-header`) for a target's units (`-include-pch`).
    Pch,
    /// Precompile a header unit (`-fmodule-header`) for the units that import it.
    HeaderUnit,
    /// Compile a BMI or a source file into an object.
    Object,
    /// Collect objects into a static archive.
    Archive,
    /// Link objects and archives into an executable.
    Link,
    /// Run a package's generator program (`[[generate]]` with `run`), which writes
    /// source files; its outputs are `out/<path>` for each declared file, and nothing
    /// else may be written under `out/`.
    Generate,
}

/// Which program of the toolchain runs the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// The C++ compiler driver (also used to link, with lld).
    #[serde(rename = "c++")]
    Cxx,
    /// The archiver.
    Ar,
    /// The program that is the derivation's input of role [`InputRole::Program`] (a
    /// binary built by an earlier step), run from its place in the build directory.
    Program,
}

/// Why an input is there; informational, but part of the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputRole {
    /// A source file or directory of a package.
    Source,
    /// A directory of headers the step may include.
    Headers,
    /// A module's BMI (built module interface).
    Bmi,
    /// An object file, for an archive or a link.
    Object,
    /// A static archive, for a link.
    Archive,
    /// A precompiled header.
    Pch,
    /// The program a [`Tool::Program`] step runs.
    Program,
}

/// Where an input comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InputFrom {
    /// An output of another derivation (only in unresolved derivations).
    Drv {
        /// The `.drv` store path of the other derivation.
        drv: StorePath,
        /// The name of its output.
        output: String,
    },
    /// A store path, or the file or directory `sub` inside it.
    Path {
        /// The store path the input comes from.
        path: StorePath,
        /// A relative path inside `path`; `None` means the whole path.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sub: Option<String>,
    },
}

/// One input, visible to the builder at `at` (relative to the build directory).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Where the builder sees the input, relative to the build directory.
    pub at: String,
    /// The store path or derivation output it comes from.
    pub from: InputFrom,
    /// What kind of input it is.
    pub role: InputRole,
}

/// One output: the builder writes it at `at`; it is registered under store name `name`.
/// A BMI names the module it provides (`module`); its `at` is then `out/<`[`bmi_file`]`>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// Where the builder writes it, relative to the build directory.
    pub at: String,
    /// For a BMI: the module it provides (`m` or `m:part`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// The name of the store path it is registered under.
    pub name: String,
}

/// A build step. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
///
/// Fields are declared in alphabetical order, as in every struct a derivation contains,
/// so serde's compact output already *is* the canonical encoding (see
/// [`Derivation::canonical_bytes`]).
pub struct Derivation {
    /// The tool's arguments after argv[0]; `@builddir@` stands for the build directory.
    pub args: Vec<String>,
    /// Environment variables set for the tool, on top of the sandbox's fixed environment.
    pub env: BTreeMap<String, String>,
    /// Files of the host, outside the store, that the step reads (system headers and
    /// libraries), by absolute path, with their content hashes: the builder sees them at
    /// the same path, and their hashes make them part of the key. Omitted when empty, so
    /// derivations without host files encode exactly as before the field existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host: BTreeMap<String, ContentHash>,
    /// Sorted by `at`; `at` values are unique.
    pub inputs: Vec<Input>,
    /// What the step does.
    pub kind: StepKind,
    /// Human-readable name; the `.drv` path is `<hash>-<name>.drv`.
    pub name: String,
    /// The step's outputs, by output name.
    pub outputs: BTreeMap<String, Output>,
    /// Which program of the toolchain runs the step.
    pub tool: Tool,
    /// Identity of the toolchain (see `cmod toolchain`).
    pub toolchain: ContentHash,
    /// Format version ([`DERIVATION_VERSION`]).
    pub version: u32,
}

/// A derivation that is structurally wrong.
#[derive(Debug, thiserror::Error)]
pub enum DerivationError {
    /// The derivation has a format version this cmod does not read.
    #[error("derivation version {found} is not supported (this cmod reads version {DERIVATION_VERSION})")]
    Version {
        /// The version the derivation has.
        found: u32,
    },
    /// A derivation breaks a structural rule.
    #[error("derivation `{name}`: {problem}")]
    Invalid {
        /// The derivation's name.
        name: String,
        /// Which rule it breaks, and where.
        problem: String,
    },
    /// A store path in it is malformed.
    #[error(transparent)]
    Name(#[from] StorePathError),
    /// It has no canonical encoding.
    #[error(transparent)]
    Encoding(#[from] CanonicalError),
    /// Resolution needs an output of another derivation that is not in the store yet.
    #[error("derivation `{name}` needs output `{output}` of `{drv}`, which has not been realised")]
    Unrealised {
        /// The derivation being resolved.
        name: String,
        /// The derivation whose output is missing.
        drv: StorePath,
        /// The missing output's name.
        output: String,
    },
}

fn is_clean_relative(p: &str) -> bool {
    !p.is_empty()
        && !p.contains('\0')
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

impl Derivation {
    /// Check the structural rules: version, names, relative paths, unique and sorted
    /// inputs, at least one output.
    pub fn validate(&self) -> Result<(), DerivationError> {
        if self.version != DERIVATION_VERSION {
            return Err(DerivationError::Version {
                found: self.version,
            });
        }
        let invalid = |problem: String| DerivationError::Invalid {
            name: self.name.clone(),
            problem,
        };
        crate::store_path::validate_name(&format!("{}.drv", self.name))?;
        if self.outputs.is_empty() {
            return Err(invalid("it has no outputs".into()));
        }
        let mut seen = BTreeSet::new();
        for w in self.inputs.windows(2) {
            if w[0].at >= w[1].at {
                return Err(invalid(format!(
                    "inputs are not sorted by `at` or repeat `{}`",
                    w[1].at
                )));
            }
        }
        for input in &self.inputs {
            if !is_clean_relative(&input.at) {
                return Err(invalid(format!(
                    "input path `{}` is not relative",
                    input.at
                )));
            }
            if let InputFrom::Path { sub: Some(sub), .. } = &input.from {
                if !is_clean_relative(sub) {
                    return Err(invalid(format!("input sub-path `{sub}` is not relative")));
                }
            }
            seen.insert(input.at.as_str());
        }
        self.validate_modules()?;
        let programs = self
            .inputs
            .iter()
            .filter(|i| i.role == InputRole::Program)
            .count();
        if (self.tool == Tool::Program) != (programs == 1) {
            return Err(invalid(format!(
                "a `program` step has exactly one program input, other steps none ({programs} here)"
            )));
        }
        for path in self.host.keys() {
            let clean = path
                .strip_prefix('/')
                .is_some_and(|rest| is_clean_relative(rest) && !rest.ends_with('/'));
            if !clean {
                return Err(invalid(format!(
                    "host file `{path}` is not a clean absolute path"
                )));
            }
        }
        for (key, out) in &self.outputs {
            if !is_clean_relative(&out.at) {
                return Err(invalid(format!(
                    "output `{key}` path `{}` is not relative",
                    out.at
                )));
            }
            if seen.contains(out.at.as_str()) {
                return Err(invalid(format!(
                    "output `{key}` overlaps an input at `{}`",
                    out.at
                )));
            }
            crate::store_path::validate_name(&out.name)?;
        }
        Ok(())
    }

    /// The module-closure rules of version 2: BMI inputs at `bmi/<file>` and read through
    /// [`MODULE_MAP_ARG`], BMI outputs at `out/<`[`bmi_file`]`(module)>`, nothing at
    /// [`MODULE_MAP`] but the map.
    fn validate_modules(&self) -> Result<(), DerivationError> {
        let invalid = |problem: String| DerivationError::Invalid {
            name: self.name.clone(),
            problem,
        };
        let mut bmis = 0;
        for input in &self.inputs {
            if input.at == MODULE_MAP {
                return Err(invalid(format!(
                    "an input is at `{MODULE_MAP}`, which the realiser writes"
                )));
            }
            if input.role == InputRole::Bmi {
                bmis += 1;
                let file = input.at.strip_prefix("bmi/").unwrap_or("");
                if file.is_empty() || file.contains('/') || !file.ends_with(".pcm") {
                    return Err(invalid(format!(
                        "BMI input `{}` is not at `bmi/<file>.pcm`",
                        input.at
                    )));
                }
            }
        }
        if bmis > 0 && !self.args.iter().any(|a| a == MODULE_MAP_ARG) {
            return Err(invalid(format!(
                "it has BMI inputs but its arguments do not read `{MODULE_MAP_ARG}`"
            )));
        }
        for (key, out) in &self.outputs {
            if let Some(module) = &out.module {
                let want = format!("out/{}", bmi_file(module));
                if module.is_empty() || out.at != want {
                    return Err(invalid(format!(
                        "output `{key}` provides module `{module}` but is at `{}`, not `{want}`",
                        out.at
                    )));
                }
            }
        }
        Ok(())
    }

    /// Where the program of a [`Tool::Program`] step is, relative to the build directory:
    /// its input of role [`InputRole::Program`].
    pub fn program_input(&self) -> Option<&str> {
        self.inputs
            .iter()
            .find(|i| i.role == InputRole::Program)
            .map(|i| i.at.as_str())
    }

    /// The BMI inputs (the modules this step imports directly).
    pub fn bmi_inputs(&self) -> impl Iterator<Item = &Input> {
        self.inputs.iter().filter(|i| i.role == InputRole::Bmi)
    }

    /// The canonical encoding that is hashed. Because every struct involved declares its
    /// fields alphabetically and every map is a `BTreeMap`, serde's compact output is
    /// already canonical; a test holds it equal to [`crate::canonical::to_vec`], which sorts
    /// explicitly, and the golden vectors freeze the bytes.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, DerivationError> {
        // Most derivations encode to a few kilobytes, an archive or link step's a few
        // hundred bytes per input: one allocation instead of a doubling series of copies
        // (each faulting in fresh pages, for a step with thousands of inputs).
        let mut bytes = Vec::with_capacity(4096 + 256 * self.inputs.len());
        serde_json::to_writer(&mut bytes, self)
            .map_err(|e| DerivationError::Encoding(CanonicalError::Serialize(e)))?;
        Ok(bytes)
    }

    /// The derivations whose outputs this one consumes, deduplicated.
    pub fn input_drvs(&self) -> BTreeSet<&StorePath> {
        self.inputs
            .iter()
            .filter_map(|i| match &i.from {
                InputFrom::Drv { drv, .. } => Some(drv),
                InputFrom::Path { .. } => None,
            })
            .collect()
    }

    /// The store paths this derivation reads directly, deduplicated.
    pub fn input_paths(&self) -> BTreeSet<&StorePath> {
        self.inputs
            .iter()
            .filter_map(|i| match &i.from {
                InputFrom::Path { path, .. } => Some(path),
                InputFrom::Drv { .. } => None,
            })
            .collect()
    }

    /// Whether every input is a store path.
    pub fn is_resolved(&self) -> bool {
        self.input_drvs().is_empty()
    }

    /// The `.drv` store path. Its references are the input derivations and store paths,
    /// so a derivation's closure can be walked from metadata alone.
    pub fn drv_path(&self) -> Result<StorePath, DerivationError> {
        let bytes = self.canonical_bytes()?;
        let refs: Vec<&StorePath> = self
            .input_drvs()
            .into_iter()
            .chain(self.input_paths())
            .collect();
        Ok(StorePath::compute(
            PathKind::Drv,
            &ContentHash::of_file(false, &bytes),
            &format!("{}.drv", self.name),
            refs,
        )?)
    }

    /// Replace every derivation input by the store path of the realised output, as given
    /// by `realised(drv, output)`.
    pub fn resolve(
        &self,
        mut realised: impl FnMut(&StorePath, &str) -> Option<StorePath>,
    ) -> Result<Derivation, DerivationError> {
        let mut out = self.clone();
        for input in &mut out.inputs {
            if let InputFrom::Drv { drv, output } = &input.from {
                let path = realised(drv, output).ok_or_else(|| DerivationError::Unrealised {
                    name: self.name.clone(),
                    drv: drv.clone(),
                    output: output.clone(),
                })?;
                input.from = InputFrom::Path { path, sub: None };
            }
        }
        Ok(out)
    }

    /// The key of a **resolved** derivation built under `sandbox` (`full`, `landlock` or
    /// `off`): outputs are looked up and recorded under it in the build trace. Modes are
    /// part of the key so a weaker mode never reuses, or is reused by, stronger outputs.
    pub fn trace_key(&self, sandbox: &str) -> Result<ContentHash, DerivationError> {
        debug_assert!(
            self.is_resolved(),
            "trace keys are for resolved derivations"
        );
        let bytes = self.canonical_bytes()?;
        let mut h = blake3::Hasher::new();
        h.update(b"cmod-trace-v1\0");
        h.update(sandbox.as_bytes());
        h.update(b"\0");
        h.update(&bytes);
        Ok(ContentHash(*h.finalize().as_bytes()))
    }
}

#[cfg(test)]
mod tests;
