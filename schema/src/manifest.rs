//! `cmod.toml`, manifest format v1: the serde types.
//!
//! Every table denies unknown fields, and every value that has rules (a semantic version,
//! a package name, a C++ standard) is checked while it is deserialised, so a mistake is
//! reported by the TOML parser with its exact line and column. Cross-field rules (a
//! dependency that names both `git` and `path`, a missing `main`) are checked by the
//! evaluator, using the spans kept here in [`Spanned`] fields.
//!
//! The JSON Schema `schemas/manifest.schema.json` describes the same format; a test keeps
//! the two in agreement.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
pub use toml::Spanned;

mod generate;
mod target;
pub use generate::Generate;
pub use target::{CStandard, LibKind, Libs, SourceOverride, Target};

/// The whole manifest.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// `[package]`: name, version and description; absent in a virtual workspace root.
    pub package: Option<Package>,
    /// `[toolchain]`: the compiler, standards and standard library.
    #[serde(default)]
    pub toolchain: ToolchainSpec,
    /// `[lib]`, or several `[[lib]]`.
    #[serde(default, skip_serializing_if = "Libs::is_empty")]
    pub lib: Libs,
    /// `[[bin]]`: executables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bin: Vec<Spanned<Target>>,
    /// `[[test]]`: test binaries, built and run by `cmod test`; they alone may import the
    /// modules of `[dev-dependencies]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<Spanned<Target>>,
    /// `[[generate]]`: files the build writes from templates before compiling them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generate: Vec<Spanned<Generate>>,
    /// `[build]`: flags, defines and include directories for every unit of the package.
    #[serde(default)]
    pub build: BuildSettings,
    /// `[profile.dev]` and `[profile.release]`.
    #[serde(default)]
    pub profile: Profiles,
    /// `[dependencies]`: packages and system libraries the package uses.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependencies: BTreeMap<String, Spanned<DependencySpec>>,
    /// `[dev-dependencies]`: packages only `[[test]]` targets may use.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dev_dependencies: BTreeMap<String, Spanned<DependencySpec>>,
    /// Present in the root manifest of a workspace (which may then omit `[package]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Spanned<WorkspaceSpec>>,
    /// `[cache]`: where to substitute from and whom to trust, for builds of this package
    /// (read from the root package only; the user configuration adds to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<ManifestCache>,
}

/// `[cache]` in `cmod.toml`. Secret keys are deliberately absent: a manifest is
/// committed and shared, so signing keys belong in the user configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ManifestCache {
    /// Binary caches or remote stores to substitute from (`file://`, `http(s)://`, `ssh://`).
    #[serde(default)]
    pub substituters: Vec<String>,
    /// `name:base64` ed25519 public keys whose signatures are trusted.
    #[serde(default)]
    pub trusted_public_keys: Vec<String>,
    /// Require a trusted signature on everything received (default: true). A manifest
    /// may only say `true`: it is shared, so it must not switch the check off for
    /// whoever builds it (that belongs to the user configuration or `--no-require-sigs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_sigs: Option<Spanned<bool>>,
}

/// `[workspace]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WorkspaceSpec {
    /// Globs of member directories, relative to the workspace root.
    #[serde(default)]
    pub members: Vec<Spanned<String>>,
    /// Globs of directories that are not members, nor is anything below them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<Spanned<String>>,
    /// Dependencies members inherit with `name = { workspace = true }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependencies: BTreeMap<String, Spanned<DependencySpec>>,
}

/// `[package]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Package {
    /// The package name.
    pub name: Spanned<PackageName>,
    /// The package version (semver).
    pub version: Spanned<SemverVersion>,
    /// A one-line summary; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An SPDX license expression; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
}

/// A package name: a lowercase ASCII letter, then lowercase letters, digits, `-` or `_`;
/// at most 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageName(String);

impl PackageName {
    /// Check `s` against the naming rule; the error says why and suggests a valid name.
    pub fn new(s: &str) -> Result<PackageName, String> {
        let ok_first = s.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        let ok_rest = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok_first && ok_rest && s.len() <= 64 {
            Ok(PackageName(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not a valid package name; use a lowercase letter followed by lowercase \
                 letters, digits, `-` or `_` (at most 64 characters), e.g. `{}`",
                suggest_package_name(s)
            ))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn suggest_package_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.starts_with(|c: char| !c.is_ascii_lowercase()) && !out.is_empty() {
        out.remove(0);
    }
    if out.is_empty() {
        "my-package".into()
    } else {
        out.truncate(64);
        out
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PackageName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PackageName::new(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for PackageName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A semantic version, with an error message that says how to write one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SemverVersion(pub semver::Version);

impl<'de> Deserialize<'de> for SemverVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<semver::Version>()
            .map(SemverVersion)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{s}` is not a semantic version ({e}); write MAJOR.MINOR.PATCH, e.g. `{}`",
                    suggest_version(&s)
                ))
            })
    }
}

fn suggest_version(s: &str) -> String {
    let nums: Vec<u64> = s
        .trim_start_matches('v')
        .split('.')
        .map_while(|p| p.parse().ok())
        .collect();
    match nums.as_slice() {
        [] => "0.1.0".into(),
        [a] => format!("{a}.0.0"),
        [a, b] => format!("{a}.{b}.0"),
        [a, b, c, ..] => format!("{a}.{b}.{c}"),
    }
}

impl Serialize for SemverVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// A semantic version requirement such as `^19` or `>=19, <20`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemverReq(pub semver::VersionReq);

impl<'de> Deserialize<'de> for SemverReq {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<semver::VersionReq>().map(SemverReq).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{s}` is not a version requirement ({e}); write e.g. `^19`, `~1.2` or `>=19, <20`"
            ))
        })
    }
}

impl Serialize for SemverReq {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// `[toolchain]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ToolchainSpec {
    /// The C++ compiler driver: a name on `PATH` or an absolute path. Default `clang++-19`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiler: Option<Spanned<String>>,
    /// A requirement on the compiler's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Spanned<SemverReq>>,
    /// The C++ standard of every C++ unit (default 20).
    #[serde(default)]
    pub cxx_standard: CxxStandard,
    /// The C standard of `.c` units (default 17).
    #[serde(default)]
    pub c_standard: CStandard,
    /// The standard library; unset means the build's (the workspace manifest's, else
    /// libstdc++).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdlib: Option<Stdlib>,
}

/// A value written either as an integer or as a string (`cxx-standard = 20` or `"20"`),
/// as text.
pub(crate) fn int_or_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Text(String),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::Int(i) => i.to_string(),
        Raw::Text(s) => s,
    })
}

/// The C++ standard. Named modules need C++20 or later.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CxxStandard {
    /// C++20 (`-std=c++20`).
    #[default]
    Cxx20,
    /// C++23 (`-std=c++23`).
    Cxx23,
    /// C++26 (`-std=c++2c`).
    Cxx26,
}

impl CxxStandard {
    /// The `-std=` value.
    pub fn flag(self) -> &'static str {
        match self {
            CxxStandard::Cxx20 => "-std=c++20",
            CxxStandard::Cxx23 => "-std=c++23",
            CxxStandard::Cxx26 => "-std=c++2c",
        }
    }

    /// The two-digit year (`20`, `23`, `26`), as written in the manifest.
    pub fn year(self) -> u32 {
        match self {
            CxxStandard::Cxx20 => 20,
            CxxStandard::Cxx23 => 23,
            CxxStandard::Cxx26 => 26,
        }
    }

    fn parse(s: &str) -> Result<CxxStandard, String> {
        match s.trim_start_matches("c++") {
            "20" => Ok(CxxStandard::Cxx20),
            "23" => Ok(CxxStandard::Cxx23),
            "26" => Ok(CxxStandard::Cxx26),
            _ => Err(format!(
                "unsupported C++ standard `{s}`: named modules need `20`, `23` or `26`"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for CxxStandard {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = int_or_text(d)?;
        CxxStandard::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for CxxStandard {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.year().to_string())
    }
}

/// The C++ standard library.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize,
)]
pub enum Stdlib {
    /// GNU libstdc++, the default of Debian's clang.
    #[default]
    #[serde(rename = "libstdc++")]
    Libstdcxx,
    /// LLVM libc++; the only one that ships `import std;` with clang 19.
    #[serde(rename = "libc++")]
    Libcxx,
}

impl Stdlib {
    /// The name as written in the manifest (`libstdc++`, `libc++`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stdlib::Libstdcxx => "libstdc++",
            Stdlib::Libcxx => "libc++",
        }
    }
}

/// `[build]`: settings for every translation unit of the package.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BuildSettings {
    /// Extra flags for every C++ unit of the package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cxxflags: Vec<Spanned<String>>,
    /// Extra flags for every C unit of the package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cflags: Vec<Spanned<String>>,
    /// `NAME` or `NAME=VALUE` for every unit of the package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defines: Vec<Spanned<String>>,
    /// Package-relative include directories for every unit of the package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_dirs: Vec<Spanned<String>>,
    /// Extra flags for every link of the package's executables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ldflags: Vec<Spanned<String>>,
    /// System libraries every link of the package's executables gets (`pthread`, `m`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Spanned<String>>,
    /// Where `cmod realise` writes the compile database for editors (read from the
    /// workspace root's manifest only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile_commands: Option<Spanned<CompileCommandsSetting>>,
}

/// `[build] compile-commands`: `true` (the default) writes `compile_commands.json` at the
/// workspace root, `false` writes none, and a path (relative to the workspace root) writes
/// it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileCommandsSetting {
    /// `true`: `compile_commands.json` at the workspace root.
    Default,
    /// `false`: no compile database.
    Off,
    /// Relative to the workspace root; never empty or absolute.
    Path(String),
}

impl CompileCommandsSetting {
    fn parse_path(s: &str) -> Result<CompileCommandsSetting, String> {
        if s.is_empty() || s.starts_with('/') {
            return Err(format!(
                "`compile-commands = \"{s}\"` is not a path relative to the workspace root; \
                 write e.g. `\"compile_commands.json\"`, `\"build/compile_commands.json\"`, \
                 or `true` / `false`"
            ));
        }
        Ok(CompileCommandsSetting::Path(s.to_string()))
    }
}

impl<'de> Deserialize<'de> for CompileCommandsSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = CompileCommandsSetting;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`true`, `false` or a path relative to the workspace root")
            }

            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<Self::Value, E> {
                Ok(if on {
                    CompileCommandsSetting::Default
                } else {
                    CompileCommandsSetting::Off
                })
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
                CompileCommandsSetting::parse_path(s).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Serialize for CompileCommandsSetting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CompileCommandsSetting::Default => s.serialize_bool(true),
            CompileCommandsSetting::Off => s.serialize_bool(false),
            CompileCommandsSetting::Path(p) => s.serialize_str(p),
        }
    }
}

/// `[profile.*]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Profiles {
    /// `[profile.dev]`, the default profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<Profile>,
    /// `[profile.release]`, selected with `--release`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Profile>,
}

/// One profile; unset fields take the profile's built-in default.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Profile {
    /// The optimisation level (`-O`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_level: Option<OptLevel>,
    /// Whether to emit debug information (`-g`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
    /// Extra flags for every C++ unit built with this profile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cxxflags: Vec<Spanned<String>>,
    /// Extra flags for every C unit built with this profile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cflags: Vec<Spanned<String>>,
    /// `NAME` or `NAME=VALUE` for every unit built with this profile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defines: Vec<Spanned<String>>,
}

/// An optimisation level: `0`–`3`, `"s"` or `"z"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptLevel {
    /// No optimisation.
    O0,
    /// Light optimisation.
    O1,
    /// Most optimisations.
    O2,
    /// Aggressive optimisation.
    O3,
    /// Optimise for size.
    Os,
    /// Optimise for size aggressively.
    Oz,
}

impl OptLevel {
    /// The compiler flag (`-O2`).
    pub fn flag(self) -> &'static str {
        match self {
            OptLevel::O0 => "-O0",
            OptLevel::O1 => "-O1",
            OptLevel::O2 => "-O2",
            OptLevel::O3 => "-O3",
            OptLevel::Os => "-Os",
            OptLevel::Oz => "-Oz",
        }
    }

    fn parse(s: &str) -> Result<OptLevel, String> {
        Ok(match s {
            "0" => OptLevel::O0,
            "1" => OptLevel::O1,
            "2" => OptLevel::O2,
            "3" => OptLevel::O3,
            "s" => OptLevel::Os,
            "z" => OptLevel::Oz,
            _ => {
                return Err(format!(
                    "`{s}` is not an optimisation level; use 0, 1, 2, 3, \"s\" or \"z\""
                ))
            }
        })
    }
}

impl<'de> Deserialize<'de> for OptLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = int_or_text(d)?;
        OptLevel::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for OptLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            OptLevel::O0 => s.serialize_u8(0),
            OptLevel::O1 => s.serialize_u8(1),
            OptLevel::O2 => s.serialize_u8(2),
            OptLevel::O3 => s.serialize_u8(3),
            OptLevel::Os => s.serialize_str("s"),
            OptLevel::Oz => s.serialize_str("z"),
        }
    }
}

/// A dependency. Exactly one source (`path`, `git` or `system`) must be given — or
/// `workspace = true` to inherit the workspace's entry of the same name; with `git`, at
/// most one of `tag`, `rev`, `branch` and `version`. `system` names a pkg-config package
/// of the host (`zlib`), optionally with a `version` requirement. The evaluator checks
/// these rules so it can point at the
/// offending line.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DependencySpec {
    /// A local package, by path relative to this manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A git repository URL (or local path) holding the package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<String>,
    /// With `git`: the tag to check out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// With `git`: the commit to check out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
    /// With `git`: the branch whose tip to check out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// A semver requirement: with `git`, the highest matching tag; with `system`, on the
    /// pkg-config version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<SemverReq>,
    /// `true`: inherit the workspace's `[workspace.dependencies]` entry of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<bool>,
    /// A system library found through pkg-config: its module name (`zlib`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Consumers of this package inherit this dependency's usage requirements (public
    /// include directories and defines), as with CMake's PUBLIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
}

/// The field names of each table, for "did you mean" suggestions.
pub fn known_fields(table: &str) -> &'static [&'static str] {
    match table {
        "" => &[
            "package",
            "toolchain",
            "lib",
            "bin",
            "test",
            "generate",
            "build",
            "profile",
            "dependencies",
            "dev-dependencies",
            "workspace",
            "cache",
        ],
        "generate" => &[
            "name", "template", "output", "vars", "run", "args", "inputs", "outputs",
        ],
        "package" => &["name", "version", "description", "license"],
        "toolchain" => &[
            "compiler",
            "version",
            "cxx-standard",
            "c-standard",
            "stdlib",
        ],
        "lib" | "bin" | "test" => &[
            "name",
            "main",
            "sources",
            "kind",
            "uses",
            "public-uses",
            "defines",
            "public-defines",
            "include-dirs",
            "public-include-dirs",
            "cxxflags",
            "cflags",
            "ldflags",
            "links",
            "public-modules",
            "pch",
            "overrides",
        ],
        "overrides" => &["files", "defines", "include-dirs", "cxxflags", "cflags"],
        "build" => &[
            "cxxflags",
            "cflags",
            "defines",
            "include-dirs",
            "ldflags",
            "links",
            "compile-commands",
        ],
        "profile" => &["dev", "release"],
        "profile.dev" | "profile.release" => {
            &["opt-level", "debug", "cxxflags", "cflags", "defines"]
        }
        "dependency" => &[
            "path",
            "git",
            "tag",
            "rev",
            "branch",
            "version",
            "workspace",
            "system",
            "public",
        ],
        "workspace" => &["members", "exclude", "dependencies"],
        "cache" => &["substituters", "trusted-public-keys", "require-sigs"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests;
