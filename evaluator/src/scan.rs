//! Scanning translation units: which module each provides, which it requires, and which
//! headers it includes.
//!
//! All units of a package that are not in the cache are scanned by **one**
//! `clang-scan-deps -format=p1689` call over a compilation database; each entry also asks
//! for a depfile, which gives the unit's exact header list. Headers are sorted into
//! package headers (of the unit's own package or of another package of the graph, through
//! a usage requirement's include directory), system headers (from `/usr/include` and the
//! like, tracked one by one with their content hash, since the toolchain identity does not
//! cover them) and toolchain headers (the C++ standard library, the resource directory:
//! covered by the identity, dropped). Results are cached per package, keyed by the
//! toolchain identity, the unit's path, content hash and flags (as a build step sees
//! them, so the key is the same on every machine); a cached result is reused only while
//! every header it listed still has the same hash.
//! Misses are first asked of a [`ScanSource`] (a binary cache's signed scan entries),
//! under the same header rule; running the scanner itself is in [`crate::scanner`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cmod_schema::content::ContentHash;
use cmod_schema::diag::Location;
use cmod_schema::toolchain::ToolchainInfo;
use serde::{Deserialize, Serialize};

use crate::cache_io::read_json;
use crate::error::{ErrorKind, EvalError};
use crate::file_cache::FileCache;
use crate::lexer::{scan_declarations, Declarations};
pub use crate::scanner::ScanItem;
use crate::scanner::{run_scanner, Prescan, RawRule};

pub mod header_imports;
mod shape;

/// A header a unit includes, inside a package of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderDep {
    /// The package holding it, when that is not the unit's own package (a header found
    /// through another package's public include directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Path relative to that package's root.
    pub rel: String,
    /// The header's content hash.
    pub hash: ContentHash,
}

/// A header a unit includes from the system (outside every package and outside the
/// directories the toolchain identity covers), by absolute path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemHeader {
    /// Absolute path on the host.
    pub path: String,
    /// The header's content hash.
    pub hash: ContentHash,
}

/// Where a package's headers may come from, for sorting a unit's dependencies.
#[derive(Debug, Clone, Default)]
pub struct HeaderScope {
    /// The unit's package.
    pub root: PathBuf,
    /// Every other package of the graph: (name, canonical root).
    pub packages: Vec<(String, PathBuf)>,
    /// Directories whose headers are tracked as system headers: the toolchain's system
    /// include directories and those of system dependencies.
    pub system_dirs: Vec<PathBuf>,
}

impl HeaderScope {
    /// The host file of a package header.
    pub fn host_path(&self, h: &HeaderDep) -> Option<PathBuf> {
        match &h.package {
            None => Some(self.root.join(&h.rel)),
            Some(name) => self
                .packages
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, root)| root.join(&h.rel)),
        }
    }
}

/// What scanning found in one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scanned {
    /// Module provided and whether it is an interface (`export module`).
    pub provides: Option<(String, bool)>,
    /// Modules required, fully qualified, as the scanner reports them.
    pub requires: Vec<String>,
    /// Package headers it includes.
    pub headers: Vec<HeaderDep>,
    /// System headers it includes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemHeader>,
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
    /// The unit's path, so entries of units that no longer exist can be dropped.
    rel: String,
    result: Scanned,
    /// The unit's shape key (see `shape`): a later text of the same shape reuses the
    /// result. Absent in entries from older caches and from scan sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shape: Option<String>,
}

/// Version 2: entries are filed under their scan key (one unit may be scanned with
/// several sets of flags), and results list system headers.
const CACHE_VERSION: u32 = 2;

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
    /// Scan results by scan key, as the entries hold them.
    pub found: BTreeMap<ContentHash, serde_json::Value>,
    /// Why some entries were not used.
    pub warnings: Vec<String>,
}

/// The scan-cache key of `item` (`identity` is the toolchain identity's text form): the
/// content hash that names its scan entry; the local cache stores it in hex.
pub fn scan_key(identity: &str, item: &ScanItem) -> ContentHash {
    cmod_schema::keys::scan_key(identity, &item.rel, &item.hash, &item.args)
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
            d.join(format!(
                "scan-v{CACHE_VERSION}-{}.json",
                &key.to_hex()[..32]
            ))
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
        let e = self.table.entries.get(&hex_key(key))?;
        (e.rel == rel)
            .then(|| serde_json::to_value(&e.result).ok())
            .flatten()
    }
}

/// Scan the units of the package `scope.root`, using and updating its `cache`. The
/// updated cache is written on a thread of its own: `cache_io::finish_writes` waits for
/// it (as [`crate::evaluate`] does before it returns).
pub fn scan_package(
    toolchain: &ToolchainInfo,
    scope: &HeaderScope,
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
    let mut results = cached_results(&table, scope, files, items, &keys);
    let mut misses: Vec<usize> = (0..items.len()).filter(|&i| results[i].is_none()).collect();
    if !misses.is_empty() {
        // What the scanner reads (headers found along include paths) is not journaled;
        // the next evaluation finds these results cached, and is.
        crate::journal::note(|| crate::journal::Input::Untracked("units were scanned".into()));
    }
    // Trusted results from elsewhere, each used only if its headers match the files here.
    let (substituted, warnings) = match source {
        Some(src) if !misses.is_empty() => {
            let keyed = Keyed {
                items,
                scan_keys: &scan_keys,
                keys: &keys,
            };
            substitute(
                src,
                scope,
                files,
                &keyed,
                &mut misses,
                &mut results,
                &mut table,
            )?
        }
        _ => (Vec::new(), Vec::new()),
    };
    let shapes = shapes_of(&identity, scope, items, &misses);
    let reshaped = reuse_by_shape(
        scope,
        items,
        &shapes,
        files,
        &mut misses,
        &mut results,
        &table,
    );
    let prescan = prescan.filter(|p| !misses.is_empty() && p.applies_to(toolchain, items));
    if !misses.is_empty() || !substituted.is_empty() || !reshaped.is_empty() {
        let fresh = scan_misses(toolchain, scope, items, &misses, files, prescan)?;
        for (&i, s) in misses.iter().zip(fresh) {
            results[i] = Some(s);
        }
        let new: Vec<usize> = misses.iter().chain(&reshaped).copied().collect();
        let fresh = Fresh {
            keys: &keys,
            shapes: &shapes,
            new: &new,
        };
        update_cache(&mut table, items, &results, &fresh);
        if let Some(file) = cache_file {
            crate::cache_io::write_json_later(file, table);
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

/// Each item's result in `table` under its key (hex), if the entry is for the same unit
/// and the headers it recorded are unchanged.
fn cached_results(
    table: &CacheTable,
    scope: &HeaderScope,
    files: &FileCache,
    items: &[ScanItem],
    keys: &[String],
) -> Vec<Option<Scanned>> {
    items
        .iter()
        .zip(keys)
        .map(|(item, key)| {
            let e = table.entries.get(key)?;
            (e.rel == item.rel && headers_unchanged(scope, &e.result, files))
                .then(|| e.result.clone())
        })
        .collect()
}

/// What a scan found anew: the items' keys, the shape keys of its misses, and which items
/// were scanned or reshaped.
struct Fresh<'a> {
    keys: &'a [String],
    shapes: &'a Shapes,
    new: &'a [usize],
}

/// File the `fresh` results in `table`, and forget entries no unit uses any more.
fn update_cache(
    table: &mut CacheTable,
    items: &[ScanItem],
    results: &[Option<Scanned>],
    fresh: &Fresh<'_>,
) {
    for &i in fresh.new {
        let Some(result) = results[i].clone() else {
            continue;
        };
        let entry = CacheEntry {
            rel: items[i].rel.clone(),
            result,
            shape: fresh.shapes.get(&i).map(|(shape, _)| shape.clone()),
        };
        table.entries.insert(fresh.keys[i].clone(), entry);
    }
    let live: std::collections::BTreeSet<&str> = fresh.keys.iter().map(String::as_str).collect();
    table.entries.retain(|k, _| live.contains(k.as_str()));
}

/// The shape keys of the `misses` whose sources can be read (one that cannot is scanned,
/// which reports the error).
fn shapes_of(identity: &str, scope: &HeaderScope, items: &[ScanItem], misses: &[usize]) -> Shapes {
    misses
        .iter()
        .filter_map(|&i| {
            let text = std::fs::read(items[i].host_file(&scope.root)).ok()?;
            let shape = shape::shape_key(identity, &items[i], &text);
            Some((i, (shape, scan_declarations(&text))))
        })
        .collect()
}

/// Per missed item: its shape key and the declarations the lexer sees in its text.
type Shapes = std::collections::HashMap<usize, (String, Declarations)>;

/// Take the cached result of a unit's earlier text for the `misses` whose shape it
/// shares, if its headers are unchanged and the lexer sees the same declarations in the
/// new text; those leave `misses`. Returns them.
fn reuse_by_shape(
    scope: &HeaderScope,
    items: &[ScanItem],
    shapes: &Shapes,
    files: &FileCache,
    misses: &mut Vec<usize>,
    results: &mut [Option<Scanned>],
    table: &CacheTable,
) -> Vec<usize> {
    let mut reused = Vec::new();
    for &i in misses.iter() {
        let Some((shape, decls)) = shapes.get(&i) else {
            continue;
        };
        let earlier = table.entries.values().find(|e| {
            e.rel == items[i].rel
                && e.shape.as_ref() == Some(shape)
                && headers_unchanged(scope, &e.result, files)
        });
        let Some(earlier) = earlier else {
            continue;
        };
        if *decls == earlier.result.decls {
            results[i] = Some(earlier.result.clone());
            reused.push(i);
        }
    }
    misses.retain(|i| !reused.contains(i));
    reused
}

/// Run the lexer and the scanner (or take a prescan's findings) for the `misses`.
fn scan_misses(
    toolchain: &ToolchainInfo,
    scope: &HeaderScope,
    items: &[ScanItem],
    misses: &[usize],
    files: &FileCache,
    prescan: Option<&Prescan>,
) -> Result<Vec<Scanned>, EvalError> {
    let root = scope.root.as_path();
    let mut decls = Vec::with_capacity(misses.len());
    let mut rewrites = Vec::with_capacity(misses.len());
    for &i in misses {
        if header_imports::is_system_header_item(&items[i]) {
            rewrites.push(None);
            decls.push(Declarations::default());
            continue;
        }
        let path = items[i].host_file(root);
        let text = std::fs::read(&path).map_err(|e| EvalError::io(&path, "read", e))?;
        let d = scan_declarations(&text);
        rewrites.push(header_imports::rewrite_for_scanner(&text, &d));
        decls.push(d);
    }
    // The scanner's findings: from a prescan run with these very tools and items while
    // the toolchain was being identified, else from running it now.
    let raw: Vec<RawRule> = match prescan {
        _ if misses.is_empty() => Vec::new(),
        Some(p) => misses.iter().map(|&i| p.rules[i].clone()).collect(),
        None => {
            let batch: Vec<&ScanItem> = misses.iter().map(|&i| &items[i]).collect();
            run_scanner(
                &toolchain.cxx,
                &toolchain.scan_deps,
                root,
                &batch,
                &rewrites,
            )
            .map_err(|e| {
                let units: Vec<_> = misses
                    .iter()
                    .zip(&decls)
                    .map(|(&i, d)| (root.join(&items[i].rel), d))
                    .collect();
                header_imports::missing_header_unit(e, &units)
            })?
        }
    };
    let mut out = Vec::with_capacity(raw.len());
    for ((&i, rule), d) in misses.iter().zip(raw).zip(decls) {
        let (headers, system) = sort_headers(toolchain, scope, &items[i].rel, &rule.deps, files)?;
        out.push(Scanned {
            provides: rule.provides,
            requires: rule.requires,
            headers,
            system,
            decls: d,
        });
    }
    Ok(out)
}

/// The items of a package with their scan keys (and the keys' hex form).
struct Keyed<'a> {
    items: &'a [ScanItem],
    scan_keys: &'a [ContentHash],
    keys: &'a [String],
}

/// Ask `src` for the results of the `misses`; those whose headers match the files here
/// are used (and cached), and leave `misses`. Returns the substituted units' paths and
/// the source's warnings.
fn substitute(
    src: &dyn ScanSource,
    scope: &HeaderScope,
    files: &FileCache,
    keyed: &Keyed<'_>,
    misses: &mut Vec<usize>,
    results: &mut [Option<Scanned>],
    table: &mut CacheTable,
) -> Result<(Vec<String>, Vec<String>), EvalError> {
    let wanted: Vec<ContentHash> = misses.iter().map(|&i| keyed.scan_keys[i]).collect();
    let got = src.fetch(&wanted)?;
    let mut substituted = Vec::new();
    for &i in misses.iter() {
        let Some(value) = got.found.get(&keyed.scan_keys[i]) else {
            continue;
        };
        let Ok(s) = serde_json::from_value::<Scanned>(value.clone()) else {
            continue;
        };
        if headers_unchanged(scope, &s, files) {
            table.entries.insert(
                keyed.keys[i].clone(),
                CacheEntry {
                    rel: keyed.items[i].rel.clone(),
                    result: s.clone(),
                    shape: None,
                },
            );
            results[i] = Some(s);
            substituted.push(keyed.items[i].rel.clone());
        }
    }
    misses.retain(|&i| results[i].is_none());
    Ok((substituted, got.warnings))
}

fn headers_unchanged(scope: &HeaderScope, s: &Scanned, files: &FileCache) -> bool {
    s.headers.iter().all(|h| {
        scope
            .host_path(h)
            .is_some_and(|p| files.hash(&p).is_ok_and(|now| now == h.hash))
    }) && s.system.iter().all(|h| {
        files
            .hash(Path::new(&h.path))
            .is_ok_and(|now| now == h.hash)
    })
}

/// What one dependency of a unit is.
enum HeaderKind {
    /// In a package: (its name, `None` for the unit's own), path inside it.
    Package(Option<String>, String),
    /// Tracked by absolute (canonical) path.
    System(PathBuf),
    /// Covered by the toolchain's identity.
    Toolchain,
}

fn classify(
    toolchain: &ToolchainInfo,
    scope: &HeaderScope,
    abs: &Path,
    canonical: &Path,
) -> Option<HeaderKind> {
    let rel_in = |root: &Path| {
        canonical
            .strip_prefix(root)
            .ok()
            .map(|r| r.to_string_lossy().replace('\\', "/"))
    };
    if let Some(rel) = rel_in(&scope.root) {
        return Some(HeaderKind::Package(None, rel));
    }
    let owner = scope
        .packages
        .iter()
        .filter(|(_, root)| canonical.starts_with(root))
        .max_by_key(|(_, root)| root.as_os_str().len());
    if let Some((name, root)) = owner {
        return rel_in(root).map(|rel| HeaderKind::Package(Some(name.clone()), rel));
    }
    let under = |dirs: &[PathBuf]| {
        dirs.iter()
            .any(|d| abs.starts_with(d) || canonical.starts_with(d))
    };
    if under(&toolchain.hashed_dirs) {
        return Some(HeaderKind::Toolchain);
    }
    if under(&scope.system_dirs)
        || under(&toolchain.system_include_dirs)
        || under(&toolchain.closure)
    {
        return Some(HeaderKind::System(canonical.to_path_buf()));
    }
    None
}

/// Sort a unit's dependencies into package headers and system headers (see the module
/// documentation); anything outside packages and the system's include directories is an
/// error, since a hermetic build could not see it.
fn sort_headers(
    toolchain: &ToolchainInfo,
    scope: &HeaderScope,
    unit: &str,
    deps: &[String],
    files: &FileCache,
) -> Result<(Vec<HeaderDep>, Vec<SystemHeader>), EvalError> {
    let root = scope.root.as_path();
    let mut headers: Vec<HeaderDep> = Vec::new();
    let mut system: Vec<SystemHeader> = Vec::new();
    for d in deps {
        if d == unit {
            // The unit itself (a generated one exists only where it was written).
            continue;
        }
        let abs = if Path::new(d).is_absolute() {
            PathBuf::from(d)
        } else {
            root.join(d)
        };
        let canonical = crate::journal::canonicalize(&abs)
            .map_err(|e| EvalError::io(&abs, "open header", e))?;
        let hash = || {
            files
                .hash(&canonical)
                .map_err(|e| EvalError::io(&canonical, "hash", e))
        };
        match classify(toolchain, scope, &abs, &canonical) {
            Some(HeaderKind::Toolchain) => {}
            Some(HeaderKind::Package(package, rel)) => {
                if (package.is_none() && rel == unit)
                    || headers.iter().any(|h| h.rel == rel && h.package == package)
                {
                    continue;
                }
                headers.push(HeaderDep {
                    package,
                    rel,
                    hash: hash()?,
                });
            }
            Some(HeaderKind::System(path)) => {
                let path = path.to_string_lossy().into_owned();
                if !system.iter().any(|h| h.path == path) {
                    system.push(SystemHeader {
                        path,
                        hash: hash()?,
                    });
                }
            }
            None => {
                return Err(EvalError::new(
                    ErrorKind::ManifestInvalid,
                    format!("`{unit}` includes `{}`, which is outside its package", canonical.display()),
                )
                .at(Location { file: root.join(unit), line: 1, column: 1 })
                .help("a build only sees packages and the system's include directories: move the header into the package, export it from a dependency's `public-include-dirs`, or declare the library it belongs to as a `system` dependency"));
            }
        }
    }
    headers.sort_by(|a, b| (&a.package, &a.rel).cmp(&(&b.package, &b.rel)));
    system.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((headers, system))
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
