//! `[[generate]]`: files a package's build writes before compiling them. A generator
//! names the files it writes (package-relative: where the build sees them, and how
//! targets' `sources` name them) and how they are made, one of:
//! * `template` (with `output`): a package file in which `@VAR@` and `${VAR}` are
//!   replaced by the values of `vars` (and the built-in `PACKAGE_NAME` and
//!   `PACKAGE_VERSION`), the most common generator of real projects (a `version.cppm.in`
//!   becoming a module);
//! * `run` (with `outputs`): a `[[bin]]` of the package (or `<dependency>/<bin>`), built
//!   first and run in the sandbox with `args`, seeing only its declared `inputs` (at
//!   their package paths in its working directory), where it writes each of `outputs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// One `[[generate]]` table. See the module documentation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Generate {
    /// The generator's name, unique in the package (for messages and `cmod graph`).
    pub name: Spanned<String>,
    /// The template file, relative to the package root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Spanned<String>>,
    /// The file a template generator writes, relative to the package root (it need not
    /// exist there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Spanned<String>>,
    /// The values of `@NAME@` and `${NAME}` in the template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, Spanned<String>>,
    /// The program that writes the files: a `[[bin]]` of the package, or
    /// `<dependency>/<bin>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Spanned<String>>,
    /// The program's arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Spanned<String>>,
    /// The package files the program reads (paths or globs, package-relative): all it
    /// sees of the package, at their paths in its working directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Spanned<String>>,
    /// The files the program writes, package-relative; it writes each at that path in its
    /// working directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<Spanned<String>>,
}
