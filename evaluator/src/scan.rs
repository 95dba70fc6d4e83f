//! Scanning translation units: which module each provides, which it requires, and which
//! package headers it includes.
//!
//! All units of a package that are not in the cache are scanned by **one**
//! `clang-scan-deps -format=p1689` call over a compilation database; each entry also asks
//! for a `-MMD` depfile, which gives the unit's exact header list. Results are cached per
//! package, keyed by the toolchain identity, the unit's path, content hash and flags; a
//! cached result is reused only while every header it listed still has the same hash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cmod_schema::content::ContentHash;
use cmod_schema::diag::Location;
use cmod_schema::toolchain::ToolchainInfo;
use serde::{Deserialize, Serialize};

use crate::cache_io::{read_json, write_json_atomic};
use crate::error::{ErrorKind, EvalError};
use crate::file_cache::FileCache;
use crate::lexer::{scan_declarations, Declarations, ImportTarget};
use crate::sources::has_interface_extension;

/// One unit to scan.
#[derive(Debug, Clone)]
pub struct ScanItem {
    /// Package-relative path.
    pub rel: String,
    pub hash: ContentHash,
    /// Preprocessor-relevant flags, with include directories relative to the package root.
    pub args: Vec<String>,
}

/// A header a unit includes, inside its package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderDep {
    pub rel: String,
    pub hash: ContentHash,
}

/// What scanning found in one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scanned {
    /// Module provided and whether it is an interface (`export module`).
    pub provides: Option<(String, bool)>,
    /// Modules required, fully qualified, as the scanner reports them.
    pub requires: Vec<String>,
    pub headers: Vec<HeaderDep>,
    /// The lexer's view: declaration lines and kinds.
    #[serde(with = "decls_serde")]
    pub decls: Declarations,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheTable {
    version: u32,
    entries: BTreeMap<String, CacheEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheEntry {
    key: String,
    result: Scanned,
}

const CACHE_VERSION: u32 = 1;

/// `identity` is the toolchain identity's text form.
fn cache_key(identity: &str, item: &ScanItem) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"cmod-scan-v1\0");
    h.update(identity.as_bytes());
    h.update(b"\0");
    h.update(item.rel.as_bytes());
    h.update(b"\0");
    h.update(item.hash.to_text().as_bytes());
    for a in &item.args {
        h.update(b"\0");
        h.update(a.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// The scan of one package.
#[derive(Debug, Clone)]
pub struct PackageScan {
    /// One result per item, in order.
    pub results: Vec<Scanned>,
    /// The items (package-relative paths) that missed the cache and went through the
    /// scanner in this call.
    pub rescanned: Vec<String>,
}

/// A package's scan cache, loaded (it does not depend on the toolchain, so it can be
/// read while the toolchain is checked).
#[derive(Debug)]
pub struct ScanCache {
    file: Option<PathBuf>,
    table: CacheTable,
}

impl ScanCache {
    /// The cache of the package rooted at `root` in `cache_dir` (empty if none).
    pub fn load(root: &Path, cache_dir: Option<&Path>) -> ScanCache {
        let file = cache_dir.map(|d| {
            let key = blake3::hash(root.as_os_str().as_encoded_bytes());
            d.join(format!("scan-{}.json", &key.to_hex()[..32]))
        });
        let mut table: CacheTable = file
            .as_deref()
            .and_then(read_json)
            .filter(|t: &CacheTable| t.version == CACHE_VERSION)
            .unwrap_or_default();
        table.version = CACHE_VERSION;
        ScanCache { file, table }
    }
}

/// Scan the units of the package rooted at `root`, using and updating its `cache`.
pub fn scan_package(
    toolchain: &ToolchainInfo,
    root: &Path,
    items: &[ScanItem],
    files: &FileCache,
    cache: ScanCache,
) -> Result<PackageScan, EvalError> {
    let ScanCache {
        file: cache_file,
        mut table,
    } = cache;

    let identity = toolchain.identity.to_text();
    let keys: Vec<String> = items.iter().map(|i| cache_key(&identity, i)).collect();
    let hits: Vec<bool> = items
        .iter()
        .zip(&keys)
        .map(|(item, key)| {
            table
                .entries
                .get(&item.rel)
                .is_some_and(|e| e.key == *key && headers_unchanged(root, &e.result.headers, files))
        })
        .collect();
    let misses: Vec<usize> = (0..items.len()).filter(|&i| !hits[i]).collect();
    // Hits are taken from the table; only a table that will be written back keeps them.
    let mut results: Vec<Option<Scanned>> = items
        .iter()
        .zip(&hits)
        .map(|(item, &hit)| {
            if !hit {
                None
            } else if misses.is_empty() {
                table.entries.remove(&item.rel).map(|e| e.result)
            } else {
                table.entries.get(&item.rel).map(|e| e.result.clone())
            }
        })
        .collect();
    if !misses.is_empty() {
        let mut decls = Vec::with_capacity(misses.len());
        for &i in &misses {
            let path = root.join(&items[i].rel);
            let text = std::fs::read(&path).map_err(|e| EvalError::io(&path, "read", e))?;
            let d = scan_declarations(&text);
            reject_header_units(&path, &d)?;
            decls.push(d);
        }
        let batch: Vec<&ScanItem> = misses.iter().map(|&i| &items[i]).collect();
        let scanned = run_scanner(toolchain, root, &batch, files)?;
        for ((&i, d), (provides, requires, headers)) in misses.iter().zip(decls).zip(scanned) {
            let s = Scanned {
                provides,
                requires,
                headers,
                decls: d,
            };
            table.entries.insert(
                items[i].rel.clone(),
                CacheEntry {
                    key: keys[i].clone(),
                    result: s.clone(),
                },
            );
            results[i] = Some(s);
        }
        // Forget units that no longer exist.
        let live: std::collections::BTreeSet<&str> = items.iter().map(|i| i.rel.as_str()).collect();
        table.entries.retain(|k, _| live.contains(k.as_str()));
        if let Some(f) = &cache_file {
            write_json_atomic(f, &table);
        }
    }
    let results = results
        .into_iter()
        .map(|r| r.ok_or_else(|| EvalError::new(ErrorKind::Internal, "a unit was not scanned")))
        .collect::<Result<_, _>>()?;
    Ok(PackageScan {
        results,
        rescanned: misses.iter().map(|&i| items[i].rel.clone()).collect(),
    })
}

fn headers_unchanged(root: &Path, headers: &[HeaderDep], files: &FileCache) -> bool {
    headers.iter().all(|h| {
        files
            .hash(&root.join(&h.rel))
            .is_ok_and(|now| now == h.hash)
    })
}

fn reject_header_units(path: &Path, d: &Declarations) -> Result<(), EvalError> {
    let text = || std::fs::read_to_string(path).unwrap_or_default();
    for imp in &d.imports {
        if let ImportTarget::Header(h) = &imp.target {
            let column = text()
                .lines()
                .nth(imp.line as usize - 1)
                .and_then(|l| l.find("import"))
                .map_or(1, |c| c as u32 + 1);
            return Err(EvalError::new(
                ErrorKind::Unsupported,
                format!("header units are not supported yet: `import {h};`"),
            )
            .at(Location {
                file: path.to_path_buf(),
                line: imp.line,
                column,
            })
            .help(format!(
                "include the header in the global module fragment instead: `module;` then `#include {h}` before the module declaration"
            )));
        }
    }
    Ok(())
}

type RawScan = (Option<(String, bool)>, Vec<String>, Vec<HeaderDep>);

fn run_scanner(
    toolchain: &ToolchainInfo,
    root: &Path,
    batch: &[&ScanItem],
    files: &FileCache,
) -> Result<Vec<RawScan>, EvalError> {
    let work = tempdir_for_scan()?;
    let mut db = Vec::with_capacity(batch.len());
    for (n, item) in batch.iter().enumerate() {
        let lang = if has_interface_extension(&item.rel) {
            "c++-module"
        } else {
            "c++"
        };
        let mut args = vec![toolchain.cxx.to_string_lossy().into_owned()];
        args.extend(item.args.iter().cloned());
        let dep = work.path.join(format!("{n}.d"));
        args.extend([
            "-x".into(),
            lang.into(),
            "-c".into(),
            item.rel.clone(),
            "-o".into(),
            format!("{n}.o"),
            "-MMD".into(),
            "-MF".into(),
            dep.to_string_lossy().into_owned(),
            "-MT".into(),
            format!("{n}.o"),
        ]);
        db.push(serde_json::json!({
            "directory": root,
            "file": item.rel,
            "output": format!("{n}.o"),
            "arguments": args,
        }));
    }
    let db_path = work.path.join("compile_commands.json");
    std::fs::write(&db_path, serde_json::to_vec(&db).unwrap_or_default())
        .map_err(|e| EvalError::io(&db_path, "write", e))?;
    let out = Command::new(&toolchain.scan_deps)
        .arg("-format=p1689")
        .arg("-compilation-database")
        .arg(&db_path)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| {
            EvalError::new(
                ErrorKind::Toolchain,
                format!("cannot run `{}`: {e}", toolchain.scan_deps.display()),
            )
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(scan_failure(root, &stderr));
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        EvalError::new(
            ErrorKind::Internal,
            format!("clang-scan-deps printed invalid JSON: {e}"),
        )
    })?;
    let mut by_output: BTreeMap<String, &serde_json::Value> = BTreeMap::new();
    for rule in json["rules"].as_array().into_iter().flatten() {
        if let Some(o) = rule["primary-output"].as_str() {
            by_output.insert(o.to_string(), rule);
        }
    }
    let mut results = Vec::with_capacity(batch.len());
    for (n, item) in batch.iter().enumerate() {
        let rule = by_output.get(&format!("{n}.o")).ok_or_else(|| {
            EvalError::new(
                ErrorKind::Internal,
                format!("clang-scan-deps reported nothing for `{}`", item.rel),
            )
        })?;
        let provides = rule["provides"]
            .as_array()
            .and_then(|p| p.first())
            .and_then(|p| {
                Some((
                    p["logical-name"].as_str()?.to_string(),
                    p["is-interface"].as_bool().unwrap_or(true),
                ))
            });
        let requires = rule["requires"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["logical-name"].as_str().map(str::to_string))
            .collect();
        let depfile = work.path.join(format!("{n}.d"));
        let deps = read_depfile(&toolchain.scan_deps, root, &item.rel, &depfile)?;
        let headers = package_headers(toolchain, root, &item.rel, &deps, files)?;
        results.push((provides, requires, headers));
    }
    Ok(results)
}

/// The prerequisites the scanner wrote for `unit` to `depfile`. Without them the unit's
/// headers would silently go untracked (an edit to one would not rebuild it), so a
/// missing or empty depfile is an error.
fn read_depfile(
    scanner: &Path,
    root: &Path,
    unit: &str,
    depfile: &Path,
) -> Result<Vec<String>, EvalError> {
    let text = std::fs::read_to_string(depfile).unwrap_or_default();
    let deps = parse_depfile(&text);
    if deps.is_empty() {
        return Err(EvalError::new(
            ErrorKind::Scan,
            format!(
                "`{}` wrote no dependency list for `{unit}`, so the headers it includes cannot be tracked",
                scanner.display()
            ),
        )
        .at(Location {
            file: root.join(unit),
            line: 1,
            column: 1,
        })
        .help(format!(
            "cmod needs a clang-scan-deps that honours `-MF` in a compilation database (clang-tools-19); install it with `{}`",
            crate::toolchain::INSTALL_HINT
        )));
    }
    Ok(deps)
}

/// Keep the dependencies inside the package; headers inside the toolchain's closure are
/// covered by its identity (clang-scan-deps lists system headers even with `-MMD`).
/// Anything else outside the package is an error, since a hermetic build could not see it.
fn package_headers(
    toolchain: &ToolchainInfo,
    root: &Path,
    unit: &str,
    deps: &[String],
    files: &FileCache,
) -> Result<Vec<HeaderDep>, EvalError> {
    let mut out = Vec::new();
    for d in deps {
        let abs = if Path::new(d).is_absolute() {
            PathBuf::from(d)
        } else {
            root.join(d)
        };
        let canonical = abs
            .canonicalize()
            .map_err(|e| EvalError::io(&abs, "open header", e))?;
        let in_toolchain = |p: &Path| toolchain.closure.iter().any(|c| p.starts_with(c));
        if !canonical.starts_with(root) && (in_toolchain(&abs) || in_toolchain(&canonical)) {
            continue;
        }
        let Ok(rel) = canonical.strip_prefix(root) else {
            return Err(EvalError::new(
                ErrorKind::ManifestInvalid,
                format!("`{unit}` includes `{}`, which is outside its package", canonical.display()),
            )
            .at(Location { file: root.join(unit), line: 1, column: 1 })
            .help("a build only sees its package's files and the toolchain; move the header into the package or share the code as a module"));
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        if rel == unit || out.iter().any(|h: &HeaderDep| h.rel == rel) {
            continue;
        }
        let hash = files
            .hash(&canonical)
            .map_err(|e| EvalError::io(&canonical, "hash", e))?;
        out.push(HeaderDep { rel, hash });
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// The prerequisites of a Makefile-style depfile.
pub fn parse_depfile(text: &str) -> Vec<String> {
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    let Some((_, rest)) = joined.split_once(": ") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                cur.push(' ');
                chars.next();
            }
            '$' if chars.peek() == Some(&'$') => {
                cur.push('$');
                chars.next();
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Turn clang-scan-deps' stderr into an error at the first diagnostic's location.
fn scan_failure(root: &Path, stderr: &str) -> EvalError {
    let diag = stderr.lines().find_map(|l| {
        let (loc, msg) = l
            .split_once(": fatal error: ")
            .or_else(|| l.split_once(": error: "))?;
        let mut parts = loc.rsplitn(3, ':');
        let column: u32 = parts.next()?.parse().ok()?;
        let line: u32 = parts.next()?.parse().ok()?;
        let file = parts.next()?;
        Some((root.join(file), line, column, msg.to_string()))
    });
    let details: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("Error while scanning dependencies for"))
        .collect();
    match diag {
        Some((file, line, column, msg)) => EvalError::new(ErrorKind::Scan, msg)
            .at(Location { file, line, column })
            .note(
                None,
                format!("clang-scan-deps said:\n{}", details.join("\n")),
            )
            .help("fix the error; every unit is scanned before anything is built"),
        None => EvalError::new(
            ErrorKind::Scan,
            format!("scanning module dependencies failed:\n{}", stderr.trim()),
        ),
    }
}

struct ScanDir {
    path: PathBuf,
}

impl Drop for ScanDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn tempdir_for_scan() -> Result<ScanDir, EvalError> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("cmod-scan-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&path).map_err(|e| EvalError::io(&path, "create", e))?;
    Ok(ScanDir { path })
}

/// Serde for the lexer's declarations (kept out of the lexer, which has no serde).
mod decls_serde {
    use crate::lexer::{Declarations, ImportDecl, ImportTarget, ModuleDecl};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct D {
        gmf: bool,
        module: Option<(String, bool, u32)>,
        imports: Vec<(u8, String, bool, u32)>,
    }

    pub fn serialize<S: Serializer>(d: &Declarations, s: S) -> Result<S::Ok, S::Error> {
        D {
            gmf: d.global_fragment,
            module: d
                .module
                .as_ref()
                .map(|m| (m.name.clone(), m.exported, m.line)),
            imports: d
                .imports
                .iter()
                .map(|i| {
                    let (k, n) = match &i.target {
                        ImportTarget::Module(n) => (0, n.clone()),
                        ImportTarget::Partition(n) => (1, n.clone()),
                        ImportTarget::Header(n) => (2, n.clone()),
                    };
                    (k, n, i.exported, i.line)
                })
                .collect(),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, De: Deserializer<'de>>(d: De) -> Result<Declarations, De::Error> {
        let d = D::deserialize(d)?;
        Ok(Declarations {
            global_fragment: d.gmf,
            module: d.module.map(|(name, exported, line)| ModuleDecl {
                name,
                exported,
                line,
            }),
            imports: d
                .imports
                .into_iter()
                .map(|(k, n, exported, line)| ImportDecl {
                    target: match k {
                        0 => ImportTarget::Module(n),
                        1 => ImportTarget::Partition(n),
                        _ => ImportTarget::Header(n),
                    },
                    exported,
                    line,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depfile_parsing() {
        let text = "0.o: src/a.cpp include/x.h \\\n  include/with\\ space.h \\\n  inc/$$dollar.h\n";
        assert_eq!(
            parse_depfile(text),
            [
                "src/a.cpp",
                "include/x.h",
                "include/with space.h",
                "inc/$dollar.h"
            ]
        );
        assert!(parse_depfile("").is_empty());
    }

    #[test]
    fn a_missing_or_empty_depfile_is_an_error_at_the_unit() {
        let t = tempfile::tempdir().unwrap();
        let scanner = Path::new("/usr/bin/clang-scan-deps-19");
        let missing = t.path().join("0.d");
        let e = read_depfile(scanner, Path::new("/p"), "src/a.cpp", &missing).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Scan);
        assert!(
            e.message
                .contains("wrote no dependency list for `src/a.cpp`"),
            "{e}"
        );
        let loc = e.location.clone().unwrap();
        assert_eq!(
            (loc.file.as_path(), loc.line),
            (Path::new("/p/src/a.cpp"), 1)
        );
        assert!(e.help.unwrap().contains("clang-tools-19"));
        std::fs::write(&missing, "").unwrap();
        assert!(read_depfile(scanner, Path::new("/p"), "src/a.cpp", &missing).is_err());
        std::fs::write(&missing, "0.o: src/a.cpp inc/x.h\n").unwrap();
        assert_eq!(
            read_depfile(scanner, Path::new("/p"), "src/a.cpp", &missing).unwrap(),
            ["src/a.cpp", "inc/x.h"]
        );
    }

    #[test]
    fn scan_failure_points_at_the_diagnostic() {
        let stderr = "Error while scanning dependencies for src/a.cpp:\nsrc/a.cpp:3:10: fatal error: 'nope.h' file not found\nsrc/b.cpp:7:2: error: unterminated conditional directive\n";
        let e = scan_failure(Path::new("/p"), stderr);
        assert_eq!(e.kind, ErrorKind::Scan);
        let loc = e.location.clone().unwrap();
        assert_eq!(
            (loc.file.as_path(), loc.line, loc.column),
            (Path::new("/p/src/a.cpp"), 3, 10)
        );
        assert_eq!(e.message, "'nope.h' file not found");
        assert!(e.notes[0]
            .message
            .contains("unterminated conditional directive"));
    }
}
