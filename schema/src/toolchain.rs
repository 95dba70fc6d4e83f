//! The description of a discovered toolchain, as cached and as handed to the realiser.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::content::ContentHash;
use crate::manifest::Stdlib;

/// A discovered C++ toolchain. `identity` covers everything that can change its output:
/// the compiler and tool binaries, the exact version string, the resource directory, the
/// standard library headers and libraries, and the sysroot directories it searches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolchainInfo {
    /// Hash of everything that can change the toolchain's output (see the type's docs).
    pub identity: ContentHash,
    /// The semantic version parsed from `--version`, e.g. `19.1.7`.
    pub version: String,
    /// The first line of `--version`, verbatim.
    pub version_text: String,
    /// The C++ standard library it builds against.
    pub stdlib: Stdlib,
    /// The C++ driver, as invoked (its name selects the driver mode).
    pub cxx: PathBuf,
    /// `clang-scan-deps`, which reports each unit's module dependencies (P1689).
    pub scan_deps: PathBuf,
    /// The archiver (`llvm-ar`).
    pub ar: PathBuf,
    /// The compiler's resource directory (builtin headers, runtime libraries).
    pub resource_dir: PathBuf,
    /// The directory holding libc++'s `std.cppm`, when the stdlib ships one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std_module_dir: Option<PathBuf>,
    /// The content hash of that directory (it becomes a source path when used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std_module_hash: Option<ContentHash>,
    /// Host files and directories a sandboxed build step may read and execute.
    pub closure: Vec<PathBuf>,
    /// Directories whose whole contents the identity covers: the C++ standard library's
    /// headers, the resource directory, the std module sources. Headers found there are
    /// not tracked per unit.
    #[serde(default)]
    pub hashed_dirs: Vec<PathBuf>,
    /// The other directories of the `#include <...>` search path (`/usr/include`, ...):
    /// visible to builds, but not part of the identity, so installing an unrelated
    /// `-dev` package changes nothing. Every header a unit includes from them is tracked
    /// with its content hash.
    #[serde(default)]
    pub system_include_dirs: Vec<PathBuf>,
    /// The linker's library search path, in order (for `links` and system dependencies).
    #[serde(default)]
    pub lib_dirs: Vec<PathBuf>,
    /// The **runtime closure**: what the dynamic loader opens to start a program this
    /// toolchain links (the standard library's shared libraries at the paths the loader
    /// finds them, their canonical files, the loader and `ld.so.cache`). A sandbox that
    /// runs such a program (`cmod test`) shows these besides `closure`. Part of neither
    /// `closure` nor `identity`: no build step runs what it links.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime: Vec<PathBuf>,
}
