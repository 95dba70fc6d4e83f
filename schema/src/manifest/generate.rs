//! `[[generate]]`: files a package's build writes before compiling them. A generator
//! names the file it writes (`output`, package-relative: where the build sees it, and how
//! targets' `sources` name it) and how it is made: `template`, a package file in which
//! `@VAR@` and `${VAR}` are replaced by the values of `vars` (and the built-in
//! `PACKAGE_NAME` and `PACKAGE_VERSION`), the most common generator of real projects (a
//! `version.cppm.in` becoming a module).

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
    pub template: Spanned<String>,
    /// The file it writes, relative to the package root (it need not exist there).
    pub output: Spanned<String>,
    /// The values of `@NAME@` and `${NAME}` in the template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, Spanned<String>>,
}
