//! Scanning translation units: which module each provides, which it requires, and which
//! package headers it includes.
//!
//! All units of a package that are not in the cache are scanned by **one**
//! `clang-scan-deps -format=p1689` call over a compilation database; each entry also asks
//! for a `-MMD` depfile, which gives the unit's exact header list. Results are cached per
//! package, keyed by the toolchain identity, the unit's path, content hash and flags; a
//! cached result is reused only while every header it listed still has the same hash.
//! Misses are first asked of a [`ScanSource`] (a binary cache's signed scan entries),
//! under the same header rule; running the scanner itself is in [`crate::scanner`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cmod_schema::content::ContentHash;
use cmod_schema::diag::Location;
use cmod_schema::toolchain::ToolchainInfo;
use serde::{Deserialize, Serialize};

use crate::cache_io::{read_json, write_json_atomic};
use crate::error::{ErrorKind, EvalError};
use crate::file_cache::FileCache;
use crate::lexer::{scan_declarations, Declarations, ImportTarget};
use crate::scanner::{run_scanner, Prescan, RawRule};

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

/// Where scan results can come from besides the local cache and `clang-scan-deps`: the
/// scan entries of a binary cache (see `cmod_schema::scan_entry`). Implementations
/// check signatures; the evaluator still checks every listed header against the local
/// files before using a result.
pub trait ScanSource: Send + Sync + std::fmt::Debug {
    /// Trusted results for those of `keys` the source has, and warnings about entries
    /// it would not trust.
    fn fetch(&self, keys: &[ContentHash]) -> Result<SubstitutedScans, EvalError>;
}

/// What a [`ScanSource`] found.
#[derive(Debug, Default)]
pub struct SubstitutedScans {
    pub found: BTreeMap<ContentHash, serde_json::Value>,
    pub warnings: Vec<String>,
}

/// The scan-cache key of `item` (`identity` is the toolchain identity's text form): the
/// content hash that names its scan entry; the local cache stores it in hex.
pub fn scan_key(identity: &str, item: &ScanItem) -> ContentHash {
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
    ContentHash(*h.finalize().as_bytes())
}

fn hex_key(key: &ContentHash) -> String {
    blake3::Hash::from(key.0).to_hex().to_string()
}

/// The scan of one package.
#[derive(Debug, Clone)]
pub struct PackageScan {
    /// One result per item, in order.
    pub results: Vec<Scanned>,
    /// The items (package-relative paths) that missed the cache and went through the
    /// scanner in this call.
    pub rescanned: Vec<String>,
    /// Whether the misses' results came from a [`Prescan`].
    pub prescanned: bool,
    /// The items whose results came from a [`ScanSource`].
    pub substituted: Vec<String>,
    /// Every item's scan key, in order (what its scan entry is filed under).
    pub keys: Vec<ContentHash>,
    /// Warnings from the [`ScanSource`].
    pub warnings: Vec<String>,
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

    /// The cached result for the unit `rel` under scan key `key`, as JSON.
    pub fn result_for(&self, rel: &str, key: &ContentHash) -> Option<serde_json::Value> {
        let e = self.table.entries.get(rel)?;
        (e.key == hex_key(key))
            .then(|| serde_json::to_value(&e.result).ok())
            .flatten()
    }
}

/// Scan the units of the package rooted at `root`, using and updating its `cache`.
pub fn scan_package(
    toolchain: &ToolchainInfo,
    root: &Path,
    items: &[ScanItem],
    files: &FileCache,
    cache: ScanCache,
    prescan: Option<&Prescan>,
    source: Option<&dyn ScanSource>,
) -> Result<PackageScan, EvalError> {
    let ScanCache {
        file: cache_file,
        mut table,
    } = cache;

    let identity = toolchain.identity.to_text();
    let scan_keys: Vec<ContentHash> = items.iter().map(|i| scan_key(&identity, i)).collect();
    let keys: Vec<String> = scan_keys.iter().map(hex_key).collect();
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
    let mut misses: Vec<usize> = (0..items.len()).filter(|&i| !hits[i]).collect();
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
    // Trusted results from elsewhere, each used only if its headers match the files here.
    let mut substituted = Vec::new();
    let mut warnings = Vec::new();
    if let (Some(src), false) = (source, misses.is_empty()) {
        let wanted: Vec<ContentHash> = misses.iter().map(|&i| scan_keys[i]).collect();
        let got = src.fetch(&wanted)?;
        warnings = got.warnings;
        for &i in &misses {
            let Some(value) = got.found.get(&scan_keys[i]) else {
                continue;
            };
            let Ok(s) = serde_json::from_value::<Scanned>(value.clone()) else {
                continue;
            };
            if headers_unchanged(root, &s.headers, files) {
                table.entries.insert(
                    items[i].rel.clone(),
                    CacheEntry {
                        key: keys[i].clone(),
                        result: s.clone(),
                    },
                );
                results[i] = Some(s);
                substituted.push(items[i].rel.clone());
            }
        }
        misses.retain(|&i| results[i].is_none());
    }
    let prescan = prescan.filter(|p| !misses.is_empty() && p.applies_to(toolchain, items));
    if !misses.is_empty() || !substituted.is_empty() {
        let mut decls = Vec::with_capacity(misses.len());
        for &i in &misses {
            let path = root.join(&items[i].rel);
            let text = std::fs::read(&path).map_err(|e| EvalError::io(&path, "read", e))?;
            let d = scan_declarations(&text);
            reject_header_units(&path, &d)?;
            decls.push(d);
        }
        // The scanner's findings: from a prescan run with these very tools and items
        // while the toolchain was being identified, else from running it now.
        let raw: Vec<RawRule> = match prescan {
            _ if misses.is_empty() => Vec::new(),
            Some(p) => misses.iter().map(|&i| p.rules[i].clone()).collect(),
            None => {
                let batch: Vec<&ScanItem> = misses.iter().map(|&i| &items[i]).collect();
                run_scanner(&toolchain.cxx, &toolchain.scan_deps, root, &batch)?
            }
        };
        let mut scanned = Vec::with_capacity(raw.len());
        for (&i, rule) in misses.iter().zip(raw) {
            let headers = package_headers(toolchain, root, &items[i].rel, &rule.deps, files)?;
            scanned.push((rule.provides, rule.requires, headers));
        }
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
        prescanned: prescan.is_some(),
        substituted,
        keys: scan_keys,
        warnings,
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
