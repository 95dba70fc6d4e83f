//! Toolchain discovery and identity.
//!
//! [`discover`] finds the C++ driver (default `clang++-19`) and its tools, computes an
//! **identity** hash over everything that can change a build's output — the compiler,
//! linker, archiver and scanner binaries and the shared libraries they load, the exact
//! `--version` text, the resource directory, the standard library headers and the
//! libraries a link pulls in — and the **closure** of host paths a sandboxed step needs.
//! Apart from both, it records the **runtime** closure: what the dynamic loader opens to
//! start a program the toolchain links (see `runtime.rs`), which only running tests need.
//!
//! The result is cached by file metadata: the stamps of every hashed file and of every
//! directory of every hashed tree. Package managers replace files by renaming, which
//! changes the parent directory's stamp, so a re-check is one `stat` per directory and
//! file (about a thousand on Debian: a millisecond or two) and runs no process.

mod probe;
mod runtime;

use std::path::{Path, PathBuf};

use cmod_schema::content::ContentHash;
use cmod_schema::diag::Location;
use cmod_schema::manifest::Stdlib;
use cmod_schema::toolchain::ToolchainInfo;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cache_io::{read_json, write_json_atomic};
use crate::error::{ErrorKind, EvalError};
use crate::hashing::{hash_file_with, hash_tree, Stamp};

pub use probe::{parse_clang_version, resolve_lib};
pub use runtime::{loaded_files, runtime_closure};

/// The compiler used when the manifest names none.
pub const DEFAULT_COMPILER: &str = "clang++-19";
/// How to install everything cmod needs on Debian and Ubuntu.
pub const INSTALL_HINT: &str =
    "apt-get install clang-19 clang-tools-19 lld-19 llvm-19 libc++-19-dev libc++abi-19-dev";

/// What the manifest asks for.
#[derive(Debug, Clone, Default)]
pub struct ToolchainRequest {
    /// The compiler driver named in `[toolchain]` (else [`DEFAULT_COMPILER`]).
    pub compiler: Option<String>,
    /// A requirement on the compiler's version.
    pub version: Option<semver::VersionReq>,
    /// The standard library to build against.
    pub stdlib: Stdlib,
    /// Where `[toolchain]` is written, for errors.
    pub location: Option<Location>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheEntry {
    version: u32,
    info: ToolchainInfo,
    stamps: Vec<(PathBuf, Stamp)>,
    link_stamps: Vec<(PathBuf, Stamp)>,
}

/// Bumped whenever the cached description changes shape (7: `runtime`; 8: system
/// include directories out of the identity, `hashed_dirs`, `lib_dirs`).
const CACHE_VERSION: u32 = 8;

/// Find the toolchain, from the cache in `cache_dir` when it is still valid.
pub fn discover(
    req: &ToolchainRequest,
    cache_dir: Option<&Path>,
) -> Result<ToolchainInfo, EvalError> {
    match lookup(req, cache_dir)? {
        Lookup::Cached(info) => Ok(*info),
        Lookup::Missing(pending) => pending.identify(),
    }
}

/// The result of [`lookup`].
#[derive(Debug)]
pub enum Lookup {
    /// The cached description is still valid (its version requirement checked).
    Cached(Box<ToolchainInfo>),
    /// The toolchain must be probed and hashed: [`Pending::identify`].
    Missing(Pending),
}

/// A toolchain found on disk whose identity is not cached yet.
#[derive(Debug)]
pub struct Pending {
    req: ToolchainRequest,
    cxx: PathBuf,
    cache_file: Option<PathBuf>,
}

impl Pending {
    /// The driver that will be identified.
    pub fn driver(&self) -> &Path {
        &self.cxx
    }

    /// The scanner identification will most likely pick: `clang-scan-deps` next to the
    /// real driver binary. Callers may start work with it early, and must check the
    /// identified toolchain's `scan_deps` before trusting that work.
    pub fn likely_scanner(&self) -> Option<PathBuf> {
        let dir = self.cxx.canonicalize().ok()?.parent()?.to_path_buf();
        let s = dir.join("clang-scan-deps");
        is_executable(&s).then_some(s)
    }

    /// Probe and hash the toolchain, and cache the result.
    pub fn identify(self) -> Result<ToolchainInfo, EvalError> {
        // The probe runs the compiler and `ldd`; the next evaluation finds the cached
        // identity (its stamps are journaled) instead.
        crate::journal::note(|| {
            crate::journal::Input::Untracked("the toolchain was identified".into())
        });
        let (info, stamps, link_stamps) = compute(&self.cxx, self.req.stdlib)?;
        if let Some(file) = &self.cache_file {
            write_json_atomic(
                file,
                &CacheEntry {
                    version: CACHE_VERSION,
                    info: info.clone(),
                    stamps,
                    link_stamps,
                },
            );
        }
        check_version(&self.req, &info)?;
        Ok(info)
    }
}

/// Find the driver, and its description in the cache in `cache_dir` if that is still
/// valid (a stat per hashed file and directory; no process runs).
pub fn lookup(req: &ToolchainRequest, cache_dir: Option<&Path>) -> Result<Lookup, EvalError> {
    let name = req.compiler.as_deref().unwrap_or(DEFAULT_COMPILER);
    let cxx = find_program(name).ok_or_else(|| {
        EvalError::new(
            ErrorKind::Toolchain,
            format!("C++ compiler `{name}` was not found on PATH"),
        )
        .at_opt(req.location.clone())
        .help(format!(
            "install it with `{INSTALL_HINT}`, or set [toolchain] compiler to the path of clang++"
        ))
    })?;
    let cache_file = cache_dir.map(|d| {
        let key = blake3::hash(
            format!(
                "cmod-toolchain-cache-v1\0{}\0{}",
                cxx.display(),
                req.stdlib.as_str()
            )
            .as_bytes(),
        );
        d.join(format!(
            "toolchain-v{CACHE_VERSION}-{}.json",
            &key.to_hex()[..32]
        ))
    });
    let cached = cache_file
        .as_deref()
        .and_then(read_json::<CacheEntry>)
        .filter(|c| c.version == CACHE_VERSION && stamps_match(c));
    match cached {
        Some(c) => {
            check_version(req, &c.info)?;
            Ok(Lookup::Cached(Box::new(c.info)))
        }
        None => Ok(Lookup::Missing(Pending {
            req: req.clone(),
            cxx,
            cache_file,
        })),
    }
}

fn stamps_match(c: &CacheEntry) -> bool {
    c.stamps
        .iter()
        .all(|(p, s)| Stamp::read(p).is_ok_and(|now| now == *s))
        && c.link_stamps
            .iter()
            .all(|(p, s)| Stamp::read_link(p).is_ok_and(|now| now == *s))
}

fn check_version(req: &ToolchainRequest, info: &ToolchainInfo) -> Result<(), EvalError> {
    let Some(wanted) = &req.version else {
        return Ok(());
    };
    let found = semver::Version::parse(&info.version).map_err(|e| {
        EvalError::new(
            ErrorKind::Internal,
            format!("cached toolchain version is corrupt: {e}"),
        )
    })?;
    if wanted.matches(&found) {
        return Ok(());
    }
    Err(EvalError::new(
        ErrorKind::Toolchain,
        format!(
            "`{}` is clang {found}, which does not satisfy the requirement `{wanted}`",
            info.cxx.display()
        ),
    )
    .at_opt(req.location.clone())
    .help(
        "install a matching clang and set [toolchain] compiler to it, or relax [toolchain] version",
    ))
}

/// Look `name` up on `PATH` (or take it as a path if it contains `/`). What it looked
/// at (the variable, each candidate's stamp or absence) is noted in the input journal.
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    let path = crate::journal::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    crate::journal::metadata(p, true)
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn missing_tool(what: &str, looked: &Path, package: &str) -> EvalError {
    EvalError::new(
        ErrorKind::Toolchain,
        format!("{what} was not found (looked for `{}`)", looked.display()),
    )
    .help(format!("install it with `apt-get install {package}`"))
}

/// Cache stamps: (path, stamp) pairs.
type Stamps = Vec<(PathBuf, Stamp)>;
type Computed = (ToolchainInfo, Stamps, Stamps);

/// The tools found next to the driver.
struct Tools {
    scan_deps: PathBuf,
    ar: PathBuf,
    std_module_dir: Option<PathBuf>,
}

fn compute(cxx: &Path, stdlib: Stdlib) -> Result<Computed, EvalError> {
    let p = probe::probe(cxx, stdlib)?;
    let tools = find_tools(cxx, stdlib, &p)?;
    let (files, trees, system_include_dirs) = identity_inputs(cxx, &tools, &p);

    // Files and trees hash at the same time (on the rayon pool): the big shared libraries
    // and the thousands of small headers keep both cores busy. The runtime probe (a
    // compile, a link and `ldd`: mostly waiting on processes) runs beside them.
    let (runtime, hashed) = std::thread::scope(|s| {
        let runtime = s.spawn(|| runtime::runtime_closure(cxx, stdlib, &[]));
        let hashed = hash_all(&files, &trees);
        let runtime = runtime.join().unwrap_or_else(|_| {
            Err(EvalError::new(
                ErrorKind::Internal,
                "the toolchain runtime probe panicked",
            ))
        });
        (runtime, hashed)
    });
    let (file_hashes, hashed_trees) = hashed?;
    let runtime = runtime?;

    let mut tree_hashes = Vec::new();
    let mut walked = Vec::new();
    for (t, (h, dirs)) in trees.iter().zip(hashed_trees) {
        tree_hashes.push((t.clone(), h));
        walked.extend(dirs);
    }
    let (stamps, link_stamps) = cache_stamps(cxx, walked, &files, &runtime);

    let closure = build_closure(cxx, &tools, &p, &trees, &system_include_dirs, &files);
    let identity = identity(&p, stdlib, &file_hashes, &tree_hashes, &closure);
    let std_module_hash = tools.std_module_dir.as_ref().and_then(|d| {
        let d = d.canonicalize().ok()?;
        match tree_hashes.iter().find(|(t, _)| *t == d) {
            Some((_, h)) => Some(*h),
            None => hash_tree(&d).ok().map(|(h, _)| h),
        }
    });
    let info = ToolchainInfo {
        identity,
        version: p.version.to_string(),
        version_text: p.version_text,
        stdlib,
        cxx: cxx.to_path_buf(),
        scan_deps: tools.scan_deps,
        ar: tools.ar,
        resource_dir: p.resource_dir,
        std_module_dir: tools.std_module_dir,
        std_module_hash,
        closure,
        runtime,
        hashed_dirs: trees,
        system_include_dirs,
        lib_dirs: p
            .lib_dirs
            .iter()
            .map(|d| d.canonicalize().unwrap_or_else(|_| d.clone()))
            .collect(),
    };
    Ok((info, stamps, link_stamps))
}

/// What the cached description is checked against: the stamps of every directory the
/// tree hashes walked, of every hashed file and of the runtime's files, and (as links) of
/// the driver, which may be a symlink to another version, and of the runtime's soname
/// links. `ld.so.cache` is left out: every library installation rewrites it, and a
/// changed resolution of ours changes a link.
fn cache_stamps(
    cxx: &Path,
    dirs: Vec<PathBuf>,
    files: &[PathBuf],
    runtime: &[PathBuf],
) -> (Stamps, Stamps) {
    let mut stamps = Vec::new();
    for d in dirs {
        if let Ok(s) = Stamp::read(&d) {
            stamps.push((d, s));
        }
    }
    for f in files {
        if let Ok(s) = Stamp::read(f) {
            stamps.push((f.clone(), s));
        }
    }
    let mut link_stamps: Stamps = Stamp::read_link(cxx)
        .map(|s| vec![(cxx.to_path_buf(), s)])
        .unwrap_or_default();
    for r in runtime.iter().filter(|r| !r.ends_with("ld.so.cache")) {
        if let Ok(meta) = std::fs::symlink_metadata(r) {
            let list = if meta.file_type().is_symlink() {
                &mut link_stamps
            } else {
                &mut stamps
            };
            list.push((r.clone(), Stamp::of(&meta)));
        }
    }
    (stamps, link_stamps)
}

/// The scanner, archiver and linker the driver comes with (each must exist), libc++'s
/// headers when it is asked for, and the directory of its `std` module.
fn find_tools(cxx: &Path, stdlib: Stdlib, p: &probe::Probe) -> Result<Tools, EvalError> {
    let major = p.version.major;
    let scan_deps = [
        p.installed_dir.join("clang-scan-deps"),
        PathBuf::from(format!("clang-scan-deps-{major}")),
    ]
    .into_iter()
    .find_map(|c| find_program(&c.to_string_lossy()))
    .ok_or_else(|| {
        missing_tool(
            "clang-scan-deps (needed to scan module dependencies)",
            &p.installed_dir.join("clang-scan-deps"),
            &format!("clang-tools-{major}"),
        )
    })?;
    let ar = p.installed_dir.join("llvm-ar");
    if !is_executable(&ar) {
        return Err(missing_tool("llvm-ar", &ar, &format!("llvm-{major}")));
    }
    if !is_executable(&p.linker) {
        return Err(missing_tool(
            "the lld linker",
            &p.linker,
            &format!("lld-{major}"),
        ));
    }
    if stdlib == Stdlib::Libcxx && !p.include_dirs.iter().any(|d| d.ends_with("c++/v1")) {
        return Err(EvalError::new(
            ErrorKind::Toolchain,
            "stdlib = \"libc++\" was requested but libc++'s headers are not installed",
        )
        .help(format!(
            "install them with `apt-get install libc++-{major}-dev libc++abi-{major}-dev`"
        )));
    }
    let std_module_dir = match stdlib {
        Stdlib::Libcxx => std_module_dir(cxx),
        Stdlib::Libstdcxx => None,
    };
    Ok(Tools {
        scan_deps,
        ar,
        std_module_dir,
    })
}

/// Files, hashed trees and system include directories of a toolchain.
type IdentityInputs = (Vec<PathBuf>, Vec<PathBuf>, Vec<PathBuf>);

/// The files and the directory trees whose contents are part of the identity: the
/// binaries and the shared libraries they load, the crt objects, the dynamic linker and
/// the libraries a link pulls in; the C++ standard library's include directories, the
/// resource directory and the `std` module's directory. Third, the rest of the include
/// path (`/usr/include`, ...): it is shared with every `-dev` package of the system, so it
/// is not part of the identity; each unit's headers from there are tracked one by one.
fn identity_inputs(cxx: &Path, tools: &Tools, p: &probe::Probe) -> IdentityInputs {
    let binaries: Vec<PathBuf> = [cxx, &tools.scan_deps, &tools.ar, &p.linker]
        .iter()
        .filter_map(|b| b.canonicalize().ok())
        .collect();
    let mut files: Vec<PathBuf> = binaries.clone();
    files.extend(
        binaries
            .par_iter()
            .flat_map_iter(|b| probe::shared_libraries(b))
            .collect::<Vec<_>>(),
    );
    files.extend(p.link_objects.iter().cloned());
    files.extend(p.dynamic_linker.iter().cloned());
    let mut libs = Vec::new();
    for lib in &p.libs {
        probe::resolve_lib(lib, &p.lib_dirs, &mut libs);
    }
    files.extend(libs);
    files.sort();
    files.dedup();

    let (stdlib_dirs, system_dirs): (Vec<&PathBuf>, Vec<&PathBuf>) = p
        .include_dirs
        .iter()
        .partition(|d| is_stdlib_include_dir(d));
    let mut trees: Vec<PathBuf> = stdlib_dirs
        .into_iter()
        .chain(std::iter::once(&p.resource_dir))
        .chain(tools.std_module_dir.iter())
        .filter_map(|d| d.canonicalize().ok())
        .collect();
    minimise_dirs(&mut trees);
    let system_include_dirs: Vec<PathBuf> = system_dirs
        .into_iter()
        .filter_map(|d| d.canonicalize().ok())
        .filter(|d| !trees.iter().any(|t| d.starts_with(t)))
        .collect();
    (files, trees, system_include_dirs)
}

/// Whether an include directory belongs to the C++ standard library (libstdc++'s
/// `include/c++/12`, its target directory `x86_64-linux-gnu/c++/12`, libc++'s
/// `include/c++/v1`): a path with a `c++` component.
fn is_stdlib_include_dir(dir: &Path) -> bool {
    dir.components().any(|c| c.as_os_str() == "c++")
}

type FileHashes = Vec<(PathBuf, ContentHash)>;
type TreeHashes = Vec<(ContentHash, Vec<PathBuf>)>;

/// Hash the files and the trees (each tree with the directories it walked), in parallel.
fn hash_all(files: &[PathBuf], trees: &[PathBuf]) -> Result<(FileHashes, TreeHashes), EvalError> {
    let (file_hashes, tree_hashes) = rayon::join(
        || {
            files
                .par_iter()
                .map(|f| {
                    hash_file_with(f, true)
                        .map(|(h, _)| (f.clone(), h))
                        .map_err(|e| EvalError::io(f, "hash toolchain file", e))
                })
                .collect::<Result<FileHashes, _>>()
        },
        || {
            trees
                .par_iter()
                .map(|t| hash_tree(t).map_err(|e| EvalError::io(t, "hash toolchain directory", e)))
                .collect::<Result<TreeHashes, _>>()
        },
    );
    Ok((file_hashes?, tree_hashes?))
}

/// The host paths a sandboxed build step may see: the tools as invoked, the driver's
/// installation root, the hashed trees, the system include directories and the files
/// (with their canonical paths), the GCC installation directory and `ld.so.cache`;
/// minimal (nothing inside a listed directory).
fn build_closure(
    cxx: &Path,
    tools: &Tools,
    p: &probe::Probe,
    trees: &[PathBuf],
    system_include_dirs: &[PathBuf],
    files: &[PathBuf],
) -> Vec<PathBuf> {
    let mut closure: Vec<PathBuf> = vec![
        cxx.to_path_buf(),
        tools.scan_deps.clone(),
        tools.ar.clone(),
        p.linker.clone(),
        PathBuf::from("/etc/ld.so.cache"),
    ];
    if let Some(root) = p.installed_dir.parent().and_then(|r| r.canonicalize().ok()) {
        closure.push(root);
    }
    closure.extend(trees.iter().cloned());
    closure.extend(system_include_dirs.iter().cloned());
    // The driver finds libstdc++ by listing the directory that holds GCC installations
    // (one subdirectory per version) and picking one; expose exactly that directory.
    closure.extend(
        p.gcc_install
            .iter()
            .filter_map(|d| d.canonicalize().ok()?.parent().map(Path::to_path_buf)),
    );
    for f in files.iter().chain(p.dynamic_linker.iter()) {
        closure.push(f.clone());
        if let Ok(c) = f.canonicalize() {
            closure.push(c);
        }
    }
    closure.retain(|c| c.exists());
    closure.sort();
    closure.dedup();
    let dirs: Vec<PathBuf> = closure.iter().filter(|c| c.is_dir()).cloned().collect();
    closure.retain(|c| {
        c.is_dir()
            || !dirs.iter().any(|d| c.starts_with(d))
            || c.canonicalize().map_or(true, |canon| &canon != c)
    });
    minimise_dirs(&mut closure);
    closure
}

/// The identity: the driver's `--version`, the stdlib, every hashed file and tree, and the
/// closure — what a sandboxed step can see shapes its output (clang records its header
/// search paths in every BMI). The runtime closure is not part of it: no build step runs
/// what it links.
fn identity(
    p: &probe::Probe,
    stdlib: Stdlib,
    files: &[(PathBuf, ContentHash)],
    trees: &[(PathBuf, ContentHash)],
    closure: &[PathBuf],
) -> ContentHash {
    cmod_schema::keys::toolchain_identity(&cmod_schema::keys::ToolchainParts {
        version_output: &p.version_output,
        stdlib: stdlib.as_str(),
        files,
        trees,
        closure,
    })
}

/// Drop directories nested inside other listed directories (files are kept).
fn minimise_dirs(paths: &mut Vec<PathBuf>) {
    paths.sort();
    paths.dedup();
    let dirs: Vec<PathBuf> = paths.iter().filter(|p| p.is_dir()).cloned().collect();
    paths.retain(|p| !p.is_dir() || !dirs.iter().any(|d| d != p && p.starts_with(d)));
}

/// The directory of libc++'s `std.cppm`, from `libc++.modules.json`.
fn std_module_dir(cxx: &Path) -> Option<PathBuf> {
    let out = std::process::Command::new(cxx)
        .arg("-print-file-name=libc++.modules.json")
        .output()
        .ok()?;
    let manifest = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).ok()?).ok()?;
    let rel = json["modules"]
        .as_array()?
        .iter()
        .find(|m| m["logical-name"] == "std")?["source-path"]
        .as_str()?
        .to_string();
    let std_cppm = manifest.parent()?.join(rel).canonicalize().ok()?;
    std_cppm.parent().map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    include!("../../../schema/golden/golden.rs");

    /// Golden vector (`schema/golden/vectors.txt`, re-derived by `reference.py`): the
    /// identity of a made-up toolchain, from its `--version` text, stdlib, hashed files and
    /// trees and its closure.
    #[test]
    fn golden_identity() {
        let p = probe::Probe {
            version_output: "Debian clang version 19.1.7 (3)\nTarget: x86_64-pc-linux-gnu\n\
                             Thread model: posix\nInstalledDir: /usr/lib/llvm-19/bin\n"
                .into(),
            version_text: String::new(),
            version: semver::Version::new(19, 1, 7),
            installed_dir: PathBuf::new(),
            resource_dir: PathBuf::new(),
            include_dirs: vec![],
            gcc_install: None,
            linker: PathBuf::new(),
            dynamic_linker: None,
            link_objects: vec![],
            lib_dirs: vec![],
            libs: vec![],
        };
        let files = [
            (
                "/usr/lib/llvm-19/bin/clang",
                ContentHash::of_file(true, b"clang"),
            ),
            (
                "/usr/lib/llvm-19/bin/ld.lld",
                ContentHash::of_file(true, b"lld"),
            ),
        ]
        .map(|(p, h)| (PathBuf::from(p), h));
        let vector = ContentHash::of_file(false, b"#pragma once\n");
        let trees = [
            (
                "/usr/lib/llvm-19/include/c++/v1",
                ContentHash::of_dir([(&b"vector"[..], vector)]),
            ),
            ("/usr/lib/llvm-19/lib/clang/19", ContentHash::of_dir([])),
        ]
        .map(|(p, h)| (PathBuf::from(p), h));
        let closure = ["/etc/ld.so.cache", "/usr/lib/llvm-19"].map(PathBuf::from);
        let id = identity(&p, Stdlib::Libcxx, &files, &trees, &closure);
        assert_golden(&[("toolchain.identity", id.to_text())]);
    }

    #[test]
    fn minimise_keeps_outermost_dirs() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        let b = a.join("b");
        std::fs::create_dir_all(&b).unwrap();
        let mut v = vec![b.clone(), a.clone(), a.clone()];
        minimise_dirs(&mut v);
        assert_eq!(v, vec![a]);
    }

    #[test]
    fn missing_compiler_names_the_install_command() {
        let req = ToolchainRequest {
            compiler: Some("clang++-does-not-exist".into()),
            ..Default::default()
        };
        let e = discover(&req, None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Toolchain);
        assert!(
            e.message.contains("`clang++-does-not-exist` was not found"),
            "{e}"
        );
        assert!(e.help.unwrap().contains("apt-get install clang-19"));
    }

    #[test]
    fn not_clang_is_rejected() {
        let req = ToolchainRequest {
            compiler: Some("/bin/true".into()),
            ..Default::default()
        };
        let e = discover(&req, None).unwrap_err();
        assert!(e.message.contains("is not clang"), "{e}");
    }
}
