//! The whole evaluation pipeline: manifest → packages → toolchain → sources → scan →
//! module graph → derivations.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cmod_schema::manifest::Stdlib;
use cmod_schema::toolchain::ToolchainInfo;
use cmod_schema::ContentHash;
use rayon::prelude::*;

use crate::deps::Fetcher;
use crate::derive::{archive_file, derive, DeriveInput, Derived, TargetKind};
use crate::error::{ErrorKind, EvalError};
use crate::file_cache::FileCache;
use crate::flags::{package_flags, PackageFlags, ProfileName};
use crate::graph::{ModuleGraph, Origin, Owner, RawUnit};
use crate::lexer::Declarations;
use crate::package::{LoadOptions, Package, PackageGraph};
use crate::scan::{scan_package, ScanCache, ScanItem, ScanSource, Scanned};
use crate::scanner::Prescan;
use crate::sources::{find_sources, PackageSources};
use crate::toolchain::{Lookup, ToolchainRequest};

/// How to evaluate.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    pub profile: ProfileName,
    /// Where the evaluator keeps its caches (toolchain, file hashes, scans); none if unset.
    pub cache_dir: Option<PathBuf>,
    /// Workspace members to select (`-p`); empty for the default.
    pub select: Vec<String>,
    /// Include the selected members' `[[test]]` binaries (for `cmod test`).
    pub with_tests: bool,
    /// Where to look for scan results the local cache lacks before running the scanner
    /// (the substituters' scan entries).
    pub scan_source: Option<std::sync::Arc<dyn ScanSource>>,
}

/// The result of evaluating a package directory. Derivations are emitted on first use
/// ([`Evaluation::derived`]); everything they depend on is summarised, cheaply, by
/// [`Evaluation::fingerprint`], so a caller can tell a no-op without emitting them.
#[derive(Debug)]
pub struct Evaluation {
    pub packages: PackageGraph,
    pub toolchain: ToolchainInfo,
    pub graph: ModuleGraph,
    pub flags: Vec<PackageFlags>,
    pub sources: Vec<PackageSources>,
    pub profile: ProfileName,
    /// Problems that do not stop the build.
    pub warnings: Vec<EvalError>,
    /// What this evaluation had to compute rather than take from its caches.
    pub stats: EvalStats,
    /// Every scanned unit's package root, path and scan key (what its scan entry is
    /// filed under); the results themselves stay in the scan caches.
    scan_keys: Vec<(PathBuf, String, ContentHash)>,
    cache_dir: Option<PathBuf>,
    derived: OnceLock<Result<Derived, EvalError>>,
}

/// The work an evaluation did beyond reading its caches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvalStats {
    /// Units that went through clang-scan-deps (`<package>/<path>`, sorted); empty when
    /// every scan result came from the cache.
    pub scanned: Vec<String>,
    /// Packages whose scanner run overlapped toolchain identification (an empty
    /// toolchain cache) and was used.
    pub prescanned: Vec<String>,
    /// Units whose scan came from the [`EvalOptions::scan_source`] (`<package>/<path>`).
    pub scans_substituted: Vec<String>,
}

impl Evaluation {
    /// Every scanned unit's scan entry content: its key and result as JSON (what
    /// `cmod store sign` signs and `cmod copy --to` publishes), read back from the scan
    /// caches this evaluation used (none without a cache directory).
    pub fn scan_entries(&self) -> Vec<(ContentHash, serde_json::Value)> {
        let mut by_root: std::collections::BTreeMap<&Path, Vec<(&str, &ContentHash)>> =
            std::collections::BTreeMap::new();
        for (root, rel, key) in &self.scan_keys {
            by_root.entry(root).or_default().push((rel, key));
        }
        let mut out = Vec::new();
        for (root, units) in by_root {
            let cache = ScanCache::load(root, self.cache_dir.as_deref());
            for (rel, key) in units {
                if let Some(result) = cache.result_for(rel, key) {
                    out.push((*key, result));
                }
            }
        }
        out.sort_by_key(|e| e.0);
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }

    /// The derivations, emitted on first call.
    pub fn derived(&self) -> Result<&Derived, EvalError> {
        self.derived
            .get_or_init(|| {
                derive(&DeriveInput {
                    packages: &self.packages,
                    graph: &self.graph,
                    flags: &self.flags,
                    sources: &self.sources,
                    toolchain: &self.toolchain,
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A hash of everything derivation emission reads: the evaluator's version, the
    /// profile, the toolchain identity, every package's location, manifest and flags, and
    /// every unit with its content hash, scan result and headers. Equal fingerprints mean
    /// identical derivations.
    pub fn fingerprint(&self) -> ContentHash {
        /// Length-prefixed fields, and lists prefixed by their length, so no two
        /// different evaluations feed the same bytes.
        struct Fields(blake3::Hasher);
        impl Fields {
            fn put(&mut self, s: &str) {
                self.0.update(&(s.len() as u64).to_le_bytes());
                self.0.update(s.as_bytes());
            }
            fn count(&mut self, n: usize) {
                self.0.update(&(n as u64).to_le_bytes());
            }
            fn list<'a>(&mut self, items: impl ExactSizeIterator<Item = &'a String>) {
                self.count(items.len());
                items.for_each(|x| self.put(x));
            }
            fn hash(&mut self, h: &ContentHash) {
                self.0.update(&h.0);
            }
        }
        let mut h = Fields(blake3::Hasher::new());
        h.put(concat!(
            "cmod-eval-fingerprint-v2 ",
            env!("CARGO_PKG_VERSION")
        ));
        h.put(self.profile.as_str());
        h.hash(&self.toolchain.identity);
        h.count(self.packages.packages.len());
        for (p, pkg) in self.packages.packages.iter().enumerate() {
            h.put(&pkg.root.to_string_lossy());
            h.put(&pkg.file.text);
            let f = &self.flags[p];
            for list in [
                &f.dialect,
                &f.codegen,
                &f.defines,
                &f.include_dirs,
                &f.ldflags,
            ] {
                h.list(list.iter());
            }
            for deps in [&pkg.deps, &pkg.dev_deps] {
                h.count(deps.len());
                for d in deps {
                    h.put(&d.name);
                    h.put(&d.package.to_string());
                }
            }
            let s = &self.sources[p];
            h.list(s.lib.iter());
            for list in [&s.bins, &s.tests] {
                h.count(list.len());
                for b in list {
                    h.put(&b.name);
                    h.list(b.units.iter());
                }
            }
        }
        h.count(self.graph.units.len());
        for u in &self.graph.units {
            h.put(&format!("{:?} {:?} {:?}", u.origin, u.kind, u.module));
            h.put(&u.rel);
            h.hash(&u.hash);
            h.list(u.imports.iter().map(|i| &i.name));
            h.count(u.headers.len());
            for hd in &u.headers {
                h.put(&hd.rel);
                h.hash(&hd.hash);
            }
        }
        ContentHash(*h.0.finalize().as_bytes())
    }

    /// The selected members' targets as (package, name, kind), each member's binaries
    /// before its library — the same names the derivations' targets carry, known without
    /// emitting them.
    pub fn target_names(&self) -> Vec<(String, String, TargetKind)> {
        let mut out = Vec::new();
        for &p in &self.packages.selected {
            let pkg = &self.packages.packages[p];
            out.extend(
                self.sources[p]
                    .bins
                    .iter()
                    .map(|b| (pkg.name.clone(), b.name.clone(), TargetKind::Bin)),
            );
            out.extend(archive_file(pkg).map(|a| (pkg.name.clone(), a, TargetKind::Lib)));
        }
        out
    }

    /// The selected members' tests as (package, test name); empty unless evaluated
    /// [`EvalOptions::with_tests`].
    pub fn test_names(&self) -> Vec<(String, String)> {
        self.packages
            .selected
            .iter()
            .flat_map(|&p| {
                let pkg = &self.packages.packages[p];
                self.sources[p]
                    .tests
                    .iter()
                    .map(|t| (pkg.name.clone(), t.name.clone()))
            })
            .collect()
    }
}

/// Evaluate the package or workspace in `dir`. Git dependencies are resolved through
/// `fetcher` (an error without one).
pub fn evaluate(
    dir: &Path,
    opts: &EvalOptions,
    fetcher: Option<&Fetcher<'_>>,
) -> Result<Evaluation, EvalError> {
    let packages = PackageGraph::load(
        dir,
        &LoadOptions {
            fetcher,
            select: opts.select.clone(),
        },
    )?;
    // The toolchain check (a cache read and about a thousand `stat`s) runs beside what
    // does not depend on it: loading the file-hash cache, expanding the source globs,
    // hashing the units (from the cache) and reading the scan caches. Errors are
    // reported in the order a sequential evaluation would meet them. (Without a thread,
    // the check simply runs after the rest.)
    let request = toolchain_request(&packages);
    let (lookup, files, prepared) = std::thread::scope(|s| {
        let check = || crate::toolchain::lookup(&request, opts.cache_dir.as_deref());
        let spawned = std::thread::Builder::new().spawn_scoped(s, check).ok();
        let files = match &opts.cache_dir {
            Some(d) => FileCache::load(d.join("files.json")),
            None => FileCache::in_memory(),
        };
        let prepared: Vec<Result<Prepared, EvalError>> = packages
            .packages
            .iter()
            .map(|pkg| {
                let tests = opts.with_tests && packages.selected.contains(&pkg.id);
                let sources = find_sources(&pkg.file, tests)?;
                Ok(prepare(pkg, sources, &files, opts.cache_dir.as_deref()))
            })
            .collect();
        let lookup = match spawned {
            Some(thread) => thread.join().unwrap_or_else(|_| {
                Err(EvalError::new(
                    ErrorKind::Internal,
                    "the toolchain check panicked",
                ))
            }),
            None => check(),
        };
        (lookup, files, prepared)
    });
    let lookup = lookup?;

    let mut all_sources: Vec<PackageSources> = Vec::new();
    let mut all_flags: Vec<PackageFlags> = Vec::new();
    let mut all_prepared: Vec<Prepared> = Vec::new();
    for (pkg, prepared) in packages.packages.iter().zip(prepared) {
        let tc = &pkg.file.manifest.toolchain;
        let mut prepared = prepared?;
        all_sources.push(std::mem::take(&mut prepared.sources));
        all_prepared.push(prepared);
        all_flags.push(package_flags(
            &pkg.file,
            opts.profile,
            tc.cxx_standard,
            request.stdlib,
        )?);
    }

    // Each package's scan items (a file listed by two binaries or tests is scanned once).
    let mut plans: Vec<ScanPlan> = Vec::with_capacity(all_prepared.len());
    for (pkg, prepared) in packages.packages.iter().zip(all_prepared) {
        let Prepared {
            owned,
            hashes,
            cache,
            ..
        } = prepared;
        let f = &all_flags[pkg.id];
        let args: Vec<String> = f
            .dialect
            .iter()
            .chain(&f.codegen)
            .chain(&f.defines)
            .cloned()
            .chain(f.include_dirs.iter().map(|d| format!("-I{d}")))
            .collect();
        let items: Vec<ScanItem> = owned
            .iter()
            .zip(hashes?)
            .map(|((rel, _), hash)| ScanItem {
                rel: rel.clone(),
                hash,
                args: args.clone(),
            })
            .collect();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut unique: Vec<ScanItem> = Vec::new();
        for it in &items {
            index.entry(it.rel.clone()).or_insert_with(|| {
                unique.push(it.clone());
                unique.len() - 1
            });
        }
        plans.push(ScanPlan {
            owned,
            items,
            index,
            unique,
            cache,
        });
    }

    // The toolchain's identity keys the scan cache. On an empty cache it takes a few
    // hundred milliseconds to probe and hash, and so does the scan: run the scanner with
    // the tools identification will most likely find, meanwhile (its results are used
    // only if it does find them). With a scan source the results will most likely come
    // from there instead, so identification gets the cores to itself.
    let (toolchain, prescans) = match lookup {
        Lookup::Cached(info) => (info, Vec::new()),
        Lookup::Missing(pending) => {
            let tools = pending
                .likely_scanner()
                .filter(|_| opts.scan_source.is_none())
                .map(|s| (pending.driver().to_path_buf(), s));
            std::thread::scope(|scope| {
                let pre = scope.spawn(|| {
                    let Some((cxx, scanner)) = &tools else {
                        return Vec::new();
                    };
                    packages
                        .packages
                        .iter()
                        .zip(&plans)
                        .map(|(pkg, plan)| Prescan::run(cxx, scanner, &pkg.root, &plan.unique))
                        .collect()
                });
                let info = pending.identify();
                let pre: Vec<Option<Prescan>> = pre.join().unwrap_or_default();
                info.map(|i| (i, pre))
            })?
        }
    };
    check_package_toolchains(&packages, &toolchain)?;

    // Scan each package (one scanner process per package with cache misses).
    let scan_one = |(pkg, plan): (&Package, ScanPlan)| {
        let p = pkg.id;
        let ScanPlan {
            owned,
            items,
            index,
            unique,
            cache,
        } = plan;
        let scan = scan_package(
            &toolchain,
            &pkg.root,
            &unique,
            &files,
            cache,
            prescans.get(p).and_then(Option::as_ref),
            opts.scan_source.as_deref(),
        )?;
        let extra = ScanExtras {
            prescanned: scan.prescanned.then(|| pkg.name.clone()),
            substituted: scan
                .substituted
                .iter()
                .map(|rel| format!("{}/{rel}", pkg.name))
                .collect(),
            keys: unique
                .iter()
                .zip(&scan.keys)
                .map(|(it, k)| (pkg.root.clone(), it.rel.clone(), *k))
                .collect(),
            warnings: scan.warnings,
        };
        // Each result is moved to the last unit that uses it, cloned for the others.
        let mut uses = vec![0usize; scan.results.len()];
        for (rel, _) in &owned {
            if let Some(&i) = index.get(rel.as_str()) {
                uses[i] += 1;
            }
        }
        let mut results: Vec<Option<Scanned>> = scan.results.into_iter().map(Some).collect();
        let rescanned = scan
            .rescanned
            .iter()
            .map(|rel| format!("{}/{rel}", pkg.name))
            .collect();
        let units = owned
            .into_iter()
            .zip(items)
            .map(|((rel, owner), item)| {
                let idx = index.get(rel.as_str()).copied().unwrap_or(0);
                uses[idx] = uses[idx].saturating_sub(1);
                let scanned = if uses[idx] == 0 {
                    results[idx].take()
                } else {
                    results[idx].clone()
                };
                scanned
                    .map(|scanned| RawUnit {
                        origin: Origin::Package(p, owner),
                        abs: pkg.root.join(&rel),
                        rel,
                        hash: item.hash,
                        scanned,
                    })
                    .ok_or_else(|| EvalError::new(ErrorKind::Internal, "a unit lost its scan"))
            })
            .collect::<Result<_, _>>()?;
        Ok((units, rescanned, extra))
    };
    // One package (the common case, and every no-op of one) is scanned on this thread:
    // starting the thread pool costs more than a cached scan.
    let scanned: Vec<(Vec<RawUnit>, Vec<String>, ScanExtras)> = if packages.packages.len() > 1 {
        packages
            .packages
            .par_iter()
            .zip(plans)
            .map(scan_one)
            .collect::<Result<_, EvalError>>()?
    } else {
        packages
            .packages
            .iter()
            .zip(plans)
            .map(scan_one)
            .collect::<Result<_, EvalError>>()?
    };
    let mut stats = EvalStats::default();
    let mut raw: Vec<RawUnit> = Vec::new();
    let mut scan_keys = Vec::new();
    let mut scan_warnings: Vec<String> = Vec::new();
    for (units, rescanned, extra) in scanned {
        raw.extend(units);
        stats.scanned.extend(rescanned);
        stats.prescanned.extend(extra.prescanned);
        stats.scans_substituted.extend(extra.substituted);
        scan_keys.extend(extra.keys);
        scan_warnings.extend(extra.warnings);
    }
    scan_warnings.dedup();
    stats.scanned.sort();
    add_std_units(&toolchain, &mut raw)?;

    let graph = ModuleGraph::build(&packages, raw)?;
    files.save();
    let mut warnings = packages.warnings.clone();
    warnings.extend(graph.warnings.iter().cloned());
    warnings.extend(
        scan_warnings
            .into_iter()
            .map(|w| EvalError::new(ErrorKind::Integrity, w)),
    );
    Ok(Evaluation {
        packages,
        toolchain,
        graph,
        flags: all_flags,
        sources: all_sources,
        profile: opts.profile,
        warnings,
        stats,
        scan_keys,
        cache_dir: opts.cache_dir.clone(),
        derived: OnceLock::new(),
    })
}

/// A package's units, ready to scan.
struct ScanPlan {
    /// Every unit with the target that owns it.
    owned: Vec<(String, Owner)>,
    /// One scan item per owned unit.
    items: Vec<ScanItem>,
    /// Unit path → its index in `unique`.
    index: HashMap<String, usize>,
    /// The distinct units, as scanned.
    unique: Vec<ScanItem>,
    cache: ScanCache,
}

/// What a package's scan adds besides its units.
struct ScanExtras {
    prescanned: Option<String>,
    substituted: Vec<String>,
    keys: Vec<(PathBuf, String, ContentHash)>,
    warnings: Vec<String>,
}

/// What can be known about a package's units before the toolchain is: its sources, its
/// units with their owners, their content hashes and its scan cache.
struct Prepared {
    sources: PackageSources,
    owned: Vec<(String, Owner)>,
    /// Failing here is reported after the flags are checked, as in a sequential run.
    hashes: Result<Vec<ContentHash>, EvalError>,
    cache: ScanCache,
}

fn prepare(
    pkg: &Package,
    sources: PackageSources,
    files: &FileCache,
    cache_dir: Option<&Path>,
) -> Prepared {
    let owned: Vec<(String, Owner)> =
        sources
            .lib
            .iter()
            .map(|r| (r.clone(), Owner::Lib))
            .chain(
                sources
                    .bins
                    .iter()
                    .enumerate()
                    .flat_map(|(b, bin)| bin.units.iter().map(move |r| (r.clone(), Owner::Bin(b)))),
            )
            .chain(
                sources.tests.iter().enumerate().flat_map(|(t, test)| {
                    test.units.iter().map(move |r| (r.clone(), Owner::Test(t)))
                }),
            )
            .collect();
    let hashes = owned
        .iter()
        .map(|(rel, _)| {
            let abs = pkg.root.join(rel);
            files.hash(&abs).map_err(|e| EvalError::io(&abs, "read", e))
        })
        .collect();
    Prepared {
        sources,
        owned,
        hashes,
        cache: ScanCache::load(&pkg.root, cache_dir),
    }
}

/// What the root package asks of the toolchain (the workspace manifest's toolchain
/// builds the whole graph).
fn toolchain_request(packages: &PackageGraph) -> ToolchainRequest {
    let root_file = &packages.workspace_file;
    let spec = &root_file.manifest.toolchain;
    let location = |file: &crate::manifest_file::ManifestFile,
                    span: Option<std::ops::Range<usize>>| {
        span.map(|s| file.location(s))
            .or_else(|| Some(file.location_or_file(0..0)))
    };
    ToolchainRequest {
        compiler: spec.compiler.as_ref().map(|c| c.get_ref().clone()),
        version: spec.version.as_ref().map(|v| v.get_ref().0.clone()),
        stdlib: spec.stdlib.unwrap_or_default(),
        location: location(root_file, spec.compiler.as_ref().map(|c| c.span())),
    }
}

/// Every package must agree on the standard library, and every version requirement
/// must hold.
fn check_package_toolchains(
    packages: &PackageGraph,
    info: &ToolchainInfo,
) -> Result<(), EvalError> {
    for pkg in &packages.packages {
        let t = &pkg.file.manifest.toolchain;
        if let Some(stdlib) = t.stdlib.filter(|s| *s != info.stdlib) {
            return Err(EvalError::new(
                ErrorKind::Toolchain,
                format!("package `{}` uses stdlib {}, but the build uses {}", pkg.name, stdlib.as_str(), info.stdlib.as_str()),
            )
            .at(pkg.file.location_or_file(0..0))
            .help("one program links one C++ standard library; set the same [toolchain] stdlib in every package"));
        }
        if let Some(v) = &t.version {
            let found = semver::Version::parse(&info.version)
                .map_err(|e| EvalError::new(ErrorKind::Internal, e.to_string()))?;
            if !v.get_ref().0.matches(&found) {
                return Err(EvalError::new(
                    ErrorKind::Toolchain,
                    format!(
                        "package `{}` needs clang `{}`, but the build uses clang {found}",
                        pkg.name,
                        v.get_ref().0
                    ),
                )
                .at(pkg.file.location(v.span()))
                .help("use a compiler that satisfies every package's [toolchain] version"));
            }
        }
    }
    Ok(())
}

/// Add `std` and `std.compat` when a unit imports them and the toolchain ships them.
/// A module source the toolchain lists but that cannot be read is an error naming it.
fn add_std_units(toolchain: &ToolchainInfo, raw: &mut Vec<RawUnit>) -> Result<(), EvalError> {
    let (Some(dir), Some(_)) = (&toolchain.std_module_dir, toolchain.std_module_hash) else {
        return Ok(());
    };
    if toolchain.stdlib != Stdlib::Libcxx {
        return Ok(());
    }
    let wants = |name: &str| {
        raw.iter()
            .any(|u| u.scanned.requires.iter().any(|r| r == name))
    };
    let compat = wants("std.compat");
    if !(compat || wants("std")) {
        return Ok(());
    }
    let mut add = |file: &str, module: &str, requires: Vec<String>| {
        let abs = dir.join(file);
        let hash = std_module_hash(&abs)?;
        raw.push(RawUnit {
            origin: Origin::Toolchain,
            rel: file.to_string(),
            abs,
            hash,
            scanned: Scanned {
                provides: Some((module.to_string(), true)),
                requires,
                headers: vec![],
                decls: Declarations::default(),
            },
        });
        Ok::<(), EvalError>(())
    };
    add("std.cppm", "std", vec![])?;
    if compat {
        add("std.compat.cppm", "std.compat", vec!["std".into()])?;
    }
    Ok(())
}

/// The content hash of one of the toolchain's standard library module sources.
fn std_module_hash(path: &Path) -> Result<ContentHash, EvalError> {
    crate::hashing::hash_file(path)
        .map(|(h, _)| h)
        .map_err(|e| {
            EvalError::new(
                ErrorKind::Toolchain,
                format!(
                    "cannot read the standard library module source `{}`: {e}",
                    path.display()
                ),
            )
            .help("`import std;` needs libc++'s module sources; reinstall them with `apt-get install --reinstall libc++-19-dev`, or use stdlib = \"libstdc++\" without `import std;`")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_std_module_source_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let missing = t.path().join("std.cppm");
        let e = std_module_hash(&missing).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Toolchain);
        assert!(
            e.message.contains(&format!(
                "cannot read the standard library module source `{}`",
                missing.display()
            )),
            "{e}"
        );
        assert!(e.help.unwrap().contains("libc++-19-dev"));
        std::fs::write(&missing, "export module std;\n").unwrap();
        assert_eq!(
            std_module_hash(&missing).unwrap(),
            crate::hashing::hash_file(&missing).unwrap().0
        );
    }
}
