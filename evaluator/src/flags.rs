//! Compile flags of a package under a profile, split the way BMI compatibility needs:
//!
//! * **dialect** flags must match between a BMI and every consumer (clang rejects a BMI
//!   built with a different `-std`, exceptions, RTTI, char signedness, fast-math,
//!   `char8_t` or target); a consumer whose dialect differs from a module's gets its own
//!   BMI variant of that module;
//! * **codegen** flags (`-O`, `-g`, warnings, ...), defines and include directories belong
//!   to the package that owns a unit and never leak into another package's units.
//!
//! Flags that cmod itself manages (`-c`, `-o`, `-x`, module-file flags, `-std`,
//! `-stdlib`) or that would reach outside the package (absolute include paths) are
//! rejected with a pointer to the manifest line.

use cmod_schema::manifest::{CxxStandard, OptLevel, Profile, Spanned, Stdlib};

use crate::error::{ErrorKind, EvalError};
use crate::manifest_file::ManifestFile;

/// Which `[profile.*]` a build uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProfileName {
    #[default]
    Dev,
    Release,
}

impl ProfileName {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileName::Dev => "dev",
            ProfileName::Release => "release",
        }
    }
}

/// The flags of one package.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackageFlags {
    pub dialect: Vec<String>,
    pub codegen: Vec<String>,
    /// `-D` arguments, in order.
    pub defines: Vec<String>,
    /// Include directories relative to the package root, in order.
    pub include_dirs: Vec<String>,
    pub ldflags: Vec<String>,
    pub debug: bool,
}

/// Flags that change the dialect of a BMI (see the module documentation).
fn is_dialect_flag(f: &str) -> bool {
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

/// Reject flags cmod owns or that break hermeticity; `Ok(())` otherwise.
fn check_flag(file: &ManifestFile, flag: &Spanned<String>, table: &str) -> Result<(), EvalError> {
    let f = flag.get_ref().as_str();
    let managed: &[(&str, &str)] = &[
        ("-std=", "set [toolchain] cxx-standard instead"),
        ("-stdlib=", "set [toolchain] stdlib instead"),
        ("-fmodule-file", "cmod passes every module file itself"),
        (
            "-fprebuilt-module-path",
            "cmod passes every module file itself",
        ),
        ("-fmodules-cache-path", "cmod does not use implicit modules"),
        ("--precompile", "cmod decides which units are precompiled"),
        ("-fmodule-output", "cmod decides where module files go"),
        ("-MD", "cmod tracks headers itself"),
        ("-MMD", "cmod tracks headers itself"),
        ("-MF", "cmod tracks headers itself"),
    ];
    let exact: &[(&str, &str)] = &[
        ("-c", "cmod decides what each step produces"),
        ("-o", "cmod decides where outputs go"),
        ("-x", "cmod chooses the language of each unit"),
        ("-E", "cmod decides what each step produces"),
        ("-S", "cmod decides what each step produces"),
        ("-target", "write `--target=<triple>` as one argument"),
    ];
    let reason = managed
        .iter()
        .find(|(p, _)| f.starts_with(p))
        .or_else(|| exact.iter().find(|(p, _)| f == *p))
        .map(|(_, r)| *r);
    if let Some(reason) = reason {
        return Err(EvalError::new(
            ErrorKind::ManifestInvalid,
            format!("`{f}` is not allowed in {table}: {reason}"),
        )
        .at(file.location_or_file(flag.span()))
        .help(format!("remove `{f}`")));
    }
    for prefix in ["-I", "-isystem", "-iquote", "-idirafter", "-include", "-L"] {
        if let Some(rest) = f.strip_prefix(prefix) {
            if rest.starts_with('/') || rest.is_empty() {
                return Err(EvalError::new(
                    ErrorKind::ManifestInvalid,
                    format!("`{f}` in {table} reaches outside the package, which a hermetic build cannot see"),
                )
                .at(file.location_or_file(flag.span()))
                .help("list package directories in [build] include-dirs; system headers come from the toolchain"));
            }
        }
    }
    Ok(())
}

fn check_dir(file: &ManifestFile, dir: &Spanned<String>) -> Result<String, EvalError> {
    let d = dir.get_ref().trim_end_matches('/');
    let d = d.strip_prefix("./").unwrap_or(d);
    let escapes = d.starts_with('/') || d.split('/').any(|c| c == "..");
    if escapes || d.is_empty() {
        return Err(EvalError::new(
            ErrorKind::ManifestInvalid,
            format!("include directory `{}` is not inside the package", dir.get_ref()),
        )
        .at(file.location_or_file(dir.span()))
        .help("use a path relative to the package root, without `..`; share headers between packages through modules"));
    }
    Ok(d.to_string())
}

/// The flags of the package whose manifest is `file`.
pub fn package_flags(
    file: &ManifestFile,
    profile: ProfileName,
    standard: CxxStandard,
    stdlib: Stdlib,
) -> Result<PackageFlags, EvalError> {
    let m = &file.manifest;
    let chosen: Option<&Profile> = match profile {
        ProfileName::Dev => m.profile.dev.as_ref(),
        ProfileName::Release => m.profile.release.as_ref(),
    };
    let (default_opt, default_debug, default_defines): (OptLevel, bool, &[&str]) = match profile {
        ProfileName::Dev => (OptLevel::O0, true, &[]),
        ProfileName::Release => (OptLevel::O3, false, &["NDEBUG"]),
    };
    let opt = chosen.and_then(|p| p.opt_level).unwrap_or(default_opt);
    let debug = chosen.and_then(|p| p.debug).unwrap_or(default_debug);

    let mut dialect = vec![
        standard.flag().to_string(),
        format!("-stdlib={}", stdlib.as_str()),
    ];
    let mut codegen = vec![opt.flag().to_string()];
    if debug {
        codegen.push("-g".into());
    }
    let profile_flags = chosen.map(|p| p.cxxflags.as_slice()).unwrap_or(&[]);
    for (flag, table) in m
        .build
        .cxxflags
        .iter()
        .map(|f| (f, "[build] cxxflags"))
        .chain(profile_flags.iter().map(|f| (f, "the profile's cxxflags")))
    {
        check_flag(file, flag, table)?;
        let f = flag.get_ref().clone();
        if is_dialect_flag(&f) {
            dialect.push(f);
        } else {
            codegen.push(f);
        }
    }
    let mut defines: Vec<String> = m.build.defines.iter().map(|d| format!("-D{d}")).collect();
    match chosen {
        Some(p) if !p.defines.is_empty() => {
            defines.extend(p.defines.iter().map(|d| format!("-D{d}")))
        }
        Some(_) | None => defines.extend(default_defines.iter().map(|d| format!("-D{d}"))),
    }
    let include_dirs = m
        .build
        .include_dirs
        .iter()
        .map(|d| check_dir(file, d))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ldflags = Vec::new();
    for flag in &m.build.ldflags {
        check_flag(file, flag, "[build] ldflags")?;
        ldflags.push(flag.get_ref().clone());
    }
    Ok(PackageFlags {
        dialect,
        codegen,
        defines,
        include_dirs,
        ldflags,
        debug,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn flags(extra: &str, profile: ProfileName) -> Result<PackageFlags, EvalError> {
        let text = format!("[package]\nname = \"p\"\nversion = \"1.0.0\"\n{extra}");
        let mf = ManifestFile::parse(Path::new("cmod.toml"), text).unwrap();
        package_flags(&mf, profile, CxxStandard::Cxx20, Stdlib::Libstdcxx)
    }

    #[test]
    fn profiles_and_split() {
        let f = flags(
            "[build]\ncxxflags = [\"-Wall\", \"-fno-exceptions\"]\ndefines = [\"A=1\"]\ninclude-dirs = [\"./include/\"]\n",
            ProfileName::Dev,
        )
        .unwrap();
        assert_eq!(
            f.dialect,
            ["-std=c++20", "-stdlib=libstdc++", "-fno-exceptions"]
        );
        assert_eq!(f.codegen, ["-O0", "-g", "-Wall"]);
        assert_eq!(f.defines, ["-DA=1"]);
        assert_eq!(f.include_dirs, ["include"]);
        let r = flags("", ProfileName::Release).unwrap();
        assert_eq!(r.codegen, ["-O3"]);
        assert_eq!(r.defines, ["-DNDEBUG"]);
        let custom = flags(
            "[profile.dev]\nopt-level = 2\ndebug = false\ndefines = [\"X\"]\n",
            ProfileName::Dev,
        )
        .unwrap();
        assert_eq!(custom.codegen, ["-O2"]);
        assert_eq!(custom.defines, ["-DX"]);
    }

    #[test]
    fn managed_and_escaping_flags_are_rejected_at_their_line() {
        let e = flags(
            "[build]\ncxxflags = [\n  \"-Wall\",\n  \"-std=c++17\",\n]\n",
            ProfileName::Dev,
        )
        .unwrap_err();
        assert!(e.message.contains("`-std=c++17` is not allowed"), "{e}");
        assert_eq!(e.help.as_deref(), Some("remove `-std=c++17`"));
        assert_eq!(e.location.unwrap().line, 7);
        let e = flags(
            "[build]\ncxxflags = [\"-I/usr/local/include\"]\n",
            ProfileName::Dev,
        )
        .unwrap_err();
        assert!(e.message.contains("reaches outside the package"), "{e}");
        let e = flags(
            "[build]\ninclude-dirs = [\"../shared\"]\n",
            ProfileName::Dev,
        )
        .unwrap_err();
        assert!(e.message.contains("not inside the package"), "{e}");
        let e = flags("[profile.dev]\ncxxflags = [\"-c\"]\n", ProfileName::Dev).unwrap_err();
        assert!(
            e.message.contains("not allowed in the profile's cxxflags"),
            "{e}"
        );
    }
}
