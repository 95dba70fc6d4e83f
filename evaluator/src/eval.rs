//! The whole evaluation pipeline: manifest → packages → targets and settings →
//! toolchain → sources → scan → module graph → derivations.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cmod_schema::toolchain::ToolchainInfo;
use cmod_schema::ContentHash;
use rayon::prelude::*;

use crate::deps::Fetcher;
use crate::derive::{archive_files, derive, DeriveInput, Derived, PchScan, TargetKind};
use crate::error::{ErrorKind, EvalError};
use crate::file_cache::FileCache;
use crate::flags::ProfileName;
use crate::graph::{GraphInput, ModuleGraph, RawUnit};
use crate::package::{LoadOptions, Package, PackageGraph};
use crate::scan::{HeaderScope, ScanCache, ScanSource};
use crate::scanner::Prescan;
use crate::settings::Settings;
use crate::sources::{find_sources_with, ListingCache, PackageSources};
use crate::targets::{package_targets, PackageTargets};
use crate::toolchain::{Lookup, ToolchainRequest};

mod fingerprint;
pub mod header_units;
mod plan;
pub mod staged;
mod std_units;

use plan::{scan_plan, Prepared, ScanPlan};

/// How to evaluate.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// The profile whose settings apply (`dev` or `release`).
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
    /// The outputs of the generators that run a program and have run; the others are
    /// pending, and what could read their outputs is left out (see `eval/staged.rs`).
    pub programs_ran: crate::generate::ProgramOutputs,
}

/// The result of evaluating a package directory. Derivations are emitted on first use
/// ([`Evaluation::derived`]); everything they depend on is summarised, cheaply, by
/// [`Evaluation::fingerprint`], so a caller can tell a no-op without emitting them.
#[derive(Debug)]
pub struct Evaluation {
    /// The loaded packages and their dependency graph.
    pub packages: PackageGraph,
    /// The toolchain, identified.
    pub toolchain: ToolchainInfo,
    /// The checked module graph of every unit.
    pub graph: ModuleGraph,
    /// Each package's checked targets.
    pub targets: Vec<PackageTargets>,
    /// Compile and link settings of every package and target.
    pub settings: Settings,
    /// Each package's units, per target.
    pub sources: Vec<PackageSources>,
    /// Every precompiled header, per set of flags, as scanned.
    pub pchs: Vec<PchScan>,
    /// Every header unit, and which units import which.
    pub header_units: header_units::HeaderUnits,
    /// What was left out because generators that run a program have not run.
    pub pending: staged::Pending,
    /// The profile evaluated.
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
    fingerprint: OnceLock<ContentHash>,
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
    /// Time spent scanning (cache look-ups, the scanner, and its runs that overlapped
    /// toolchain identification when their results were used).
    pub scan_time: Duration,
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
                    targets: &self.targets,
                    graph: &self.graph,
                    sources: &self.sources,
                    settings: &self.settings,
                    pchs: &self.pchs,
                    header_units: &self.header_units,
                    toolchain: &self.toolchain,
                    emission_record: self.emission_record(),
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Where this workspace's emissions for the same profile and targets record their
    /// derivations' paths (one record per such evaluation, so building the tests does
    /// not evict what building the binaries recorded).
    fn emission_record(&self) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let mut h = blake3::Hasher::new();
        h.update(self.packages.workspace_root.as_os_str().as_encoded_bytes());
        h.update(&[0]);
        h.update(format!("{:?}", self.profile).as_bytes());
        for (package, name, kind) in self.target_names() {
            for part in [package.as_str(), name.as_str(), &format!("{kind:?}")] {
                h.update(&[0]);
                h.update(part.as_bytes());
            }
        }
        let name = format!("{}.bin", &h.finalize().to_hex()[..32]);
        Some(dir.join("emission-v1").join(name))
    }

    /// A hash of everything derivation emission reads (see `eval/fingerprint.rs`). Equal
    /// fingerprints mean identical derivations.
    pub fn fingerprint(&self) -> ContentHash {
        *self.fingerprint.get_or_init(|| fingerprint::of(self))
    }

    /// The selected members' targets as (package, name, kind), each member's binaries
    /// before its libraries — the same names the derivations' targets carry, known without
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
            out.extend(
                archive_files(&self.sources[p])
                    .into_iter()
                    .map(|a| (pkg.name.clone(), a, TargetKind::Lib)),
            );
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
///
/// The phases, in order: load the package graph (manifests, dependencies); **plan**
/// (sources, targets, flags and the scan plan of every package, beside the toolchain
/// check); **identify** the toolchain (probing it on an empty cache, with a likely
/// prescan meanwhile); **scan** every unit (cached by content, the standard library's
/// modules too); build the module **graph**. Derivations are emitted later, on demand
/// ([`Evaluation::derived`]).
///
/// The caches it updates (directory listings, scan results, file hashes) are written on
/// threads of their own, beside the phases that follow, and all written when it returns,
/// however it ends.
pub fn evaluate(
    dir: &Path,
    opts: &EvalOptions,
    fetcher: Option<&Fetcher<'_>>,
) -> Result<Evaluation, EvalError> {
    let evaluation = evaluate_phases(dir, opts, fetcher);
    crate::cache_io::finish_writes();
    evaluation
}

fn evaluate_phases(
    dir: &Path,
    opts: &EvalOptions,
    fetcher: Option<&Fetcher<'_>>,
) -> Result<Evaluation, EvalError> {
    let mut packages = PackageGraph::load(
        dir,
        &LoadOptions {
            fetcher,
            select: opts.select.clone(),
        },
    )?;
    let pending = staged::leave_out_pending(&mut packages, &opts.programs_ran)?;
    let Planned {
        lookup,
        files,
        targets,
        mut settings,
        sources,
        plans,
    } = plan(&packages, opts, &pending)?;
    // The toolchain's identity keys the scan cache. On an empty cache it takes a few
    // hundred milliseconds to probe and hash, and so does the scan: run the scanner with
    // the tools identification will most likely find, meanwhile (its results are used
    // only if it does find them). With a scan source the results will most likely come
    // from there instead, so identification gets the cores to itself.
    let (toolchain, prescans, prescan_time) = identify(lookup, &packages, &plans, opts)?;
    check_package_toolchains(&packages, &toolchain)?;
    settings.find_library_files(&toolchain, &files)?;
    let scan_started = Instant::now();
    let mut scanned = scan_phase(
        &packages, plans, &toolchain, &settings, &files, &prescans, opts,
    )?;
    let prescans_used = !scanned.stats.prescanned.is_empty();
    scanned.stats.scan_time = scan_started.elapsed()
        + if prescans_used {
            prescan_time
        } else {
            Duration::ZERO
        };
    let graph = ModuleGraph::build(
        &GraphInput {
            packages: &packages,
            targets: &targets,
        },
        scanned.raw,
    )
    .map_err(|e| crate::generate::name_generators(e, &sources))?;
    files.save_later();
    let mut warnings = packages.warnings.clone();
    warnings.extend(member_toolchain_warnings(&packages, &toolchain));
    warnings.extend(graph.warnings.iter().cloned());
    warnings.extend(
        scanned
            .warnings
            .into_iter()
            .map(|w| EvalError::new(ErrorKind::Integrity, w)),
    );
    Ok(Evaluation {
        packages,
        toolchain,
        graph,
        targets,
        settings,
        sources,
        pchs: scanned.pchs,
        header_units: scanned.header_units,
        pending,
        profile: opts.profile,
        warnings,
        stats: scanned.stats,
        scan_keys: scanned.scan_keys,
        cache_dir: opts.cache_dir.clone(),
        derived: OnceLock::new(),
        fingerprint: OnceLock::new(),
    })
}

/// Cache writes started on behalf of the evaluation (the recipe record, written after
/// derivations are emitted) are finished before it goes.
impl Drop for Evaluation {
    fn drop(&mut self) {
        crate::cache_io::finish_writes();
    }
}

/// What the planning phase found: the toolchain check's result, the file-hash cache,
/// and every package's targets, flags, sources and scan plan.
struct Planned {
    lookup: Lookup,
    files: FileCache,
    targets: Vec<PackageTargets>,
    settings: Settings,
    sources: Vec<PackageSources>,
    plans: Vec<ScanPlan>,
}

/// The planning phase: sources and targets (beside the toolchain check), the settings,
/// and a scan plan per package.
fn plan(
    packages: &PackageGraph,
    opts: &EvalOptions,
    pending: &staged::Pending,
) -> Result<Planned, EvalError> {
    let request = toolchain_request(packages);
    let (lookup, files, prepared) = prepare(packages, &request, opts, pending);
    let lookup = lookup?;
    let prepared: Vec<Prepared> = prepared.into_iter().collect::<Result<_, _>>()?;
    let targets: Vec<PackageTargets> = prepared.iter().map(|p| p.targets.clone()).collect();
    let mut settings = Settings::new(packages, &targets, opts.profile, request.stdlib, &files)?;
    let mut sources: Vec<PackageSources> = Vec::with_capacity(prepared.len());
    let mut plans: Vec<ScanPlan> = Vec::with_capacity(prepared.len());
    for (pkg, prepared) in packages.packages.iter().zip(prepared) {
        let (pkg_sources, plan) =
            scan_plan(packages, &targets, &mut settings, pkg, prepared, &files)?;
        sources.push(pkg_sources);
        plans.push(plan);
    }
    Ok(Planned {
        lookup,
        files,
        targets,
        settings,
        sources,
        plans,
    })
}

/// The scanning phase: every package's units, then the standard library's modules.
fn scan_phase(
    packages: &PackageGraph,
    plans: Vec<ScanPlan>,
    toolchain: &ToolchainInfo,
    settings: &Settings,
    files: &FileCache,
    prescans: &[Option<Prescan>],
    opts: &EvalOptions,
) -> Result<Collected, EvalError> {
    let scopes = header_scopes(packages, settings);
    let mut scanned = scan_all(packages, plans, toolchain, &scopes, files, prescans, opts)?;
    let std_scan = std_units::add(
        toolchain,
        settings,
        packages,
        files,
        opts.cache_dir.as_deref(),
        &mut scanned.raw,
    )?;
    scanned.stats.scanned.extend(std_scan);
    scanned.stats.scanned.sort();
    scanned.header_units = header_units::header_units(
        packages,
        &scanned.raw,
        toolchain,
        &scopes,
        files,
        opts.cache_dir.as_deref(),
    )?;
    Ok(scanned)
}

/// The packages' sources, targets and unit hashes, with the toolchain check beside them.
///
/// The check (a cache read and about a thousand `stat`s) runs beside what does not depend
/// on it: loading the file-hash cache, expanding the source globs, hashing the units
/// (from the cache) and reading the scan caches. Errors are reported in the order a
/// sequential evaluation would meet them. (Without a thread, the check simply runs after
/// the rest.)
fn prepare(
    packages: &PackageGraph,
    request: &ToolchainRequest,
    opts: &EvalOptions,
    pending: &staged::Pending,
) -> (
    Result<Lookup, EvalError>,
    FileCache,
    Vec<Result<Prepared, EvalError>>,
) {
    std::thread::scope(|s| {
        let check = || crate::toolchain::lookup(request, opts.cache_dir.as_deref());
        let spawned = std::thread::Builder::new().spawn_scoped(s, check).ok();
        let (files, listings) = match &opts.cache_dir {
            Some(d) => (
                FileCache::load(d.join(crate::file_cache::FILE_NAME)),
                ListingCache::load(d.join(crate::sources::listing_cache::FILE_NAME)),
            ),
            None => (FileCache::in_memory(), ListingCache::in_memory()),
        };
        let prepared: Vec<Result<Prepared, EvalError>> = packages
            .packages
            .iter()
            .map(|pkg| {
                let tests = opts.with_tests && packages.selected.contains(&pkg.id);
                let cache = opts.cache_dir.as_deref();
                let m = &pkg.file.manifest;
                let nothing_left = pending.cut[pkg.id] && m.lib.is_empty() && m.bin.is_empty();
                if nothing_left && !pending.runnable[pkg.id] {
                    // Everything of it waits on a generator (see `eval/staged.rs`).
                    let (sources, targets) = Default::default();
                    return Ok(Prepared::new(pkg, sources, targets, &files, cache));
                }
                let generated = crate::generate::generate(&pkg.file, cache, &opts.programs_ran)?;
                let mut sources = match nothing_left {
                    // Only its generators remain, running dependencies' programs.
                    true => crate::sources::generator_inputs(&pkg.file, &listings, generated)?,
                    false => find_sources_with(&pkg.file, tests, &listings, generated)?,
                };
                crate::generate::program::hash_inputs(&pkg.root, &mut sources.programs, &files)?;
                let targets = package_targets(&pkg.file, &sources)?;
                Ok(Prepared::new(pkg, sources, targets, &files, cache))
            })
            .collect();
        listings.save_later();
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
    })
}

/// What scanning every package produced, gathered.
#[derive(Default)]
struct Collected {
    raw: Vec<RawUnit>,
    pchs: Vec<PchScan>,
    header_units: header_units::HeaderUnits,
    stats: EvalStats,
    scan_keys: Vec<(PathBuf, String, ContentHash)>,
    warnings: Vec<String>,
}

/// Scan every package (one scanner process per package with cache misses).
fn scan_all(
    packages: &PackageGraph,
    plans: Vec<ScanPlan>,
    toolchain: &ToolchainInfo,
    scopes: &[HeaderScope],
    files: &FileCache,
    prescans: &[Option<Prescan>],
    opts: &EvalOptions,
) -> Result<Collected, EvalError> {
    let scan_one = |(pkg, plan): (&Package, ScanPlan)| {
        plan.scan(
            toolchain,
            pkg,
            &scopes[pkg.id],
            files,
            prescans.get(pkg.id).and_then(Option::as_ref),
            opts.scan_source.as_deref(),
        )
    };
    // One package (the common case, and every no-op of one) is scanned on this thread:
    // starting the thread pool costs more than a cached scan.
    let scanned: Vec<plan::Scanned> = if packages.packages.len() > 1 {
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
    let mut out = Collected::default();
    for s in scanned {
        out.raw.extend(s.units);
        out.pchs.extend(s.pchs);
        out.stats.scanned.extend(s.rescanned);
        out.stats.prescanned.extend(s.prescanned);
        out.stats.scans_substituted.extend(s.substituted);
        out.scan_keys.extend(s.keys);
        out.warnings.extend(s.warnings);
    }
    out.warnings.dedup();
    Ok(out)
}

/// The toolchain, identified now if its description was not cached (with the prescans
/// that overlapped identification).
/// Also returns how long the overlapping scanner runs took (zero without them).
fn identify(
    lookup: Lookup,
    packages: &PackageGraph,
    plans: &[ScanPlan],
    opts: &EvalOptions,
) -> Result<(ToolchainInfo, Vec<Option<Prescan>>, Duration), EvalError> {
    match lookup {
        Lookup::Cached(info) => Ok((*info, Vec::new(), Duration::ZERO)),
        Lookup::Missing(pending) => {
            let tools = pending
                .likely_scanner()
                .filter(|_| opts.scan_source.is_none())
                .map(|s| (pending.driver().to_path_buf(), s));
            std::thread::scope(|scope| {
                let pre = scope.spawn(|| {
                    let Some((cxx, scanner)) = &tools else {
                        return (Vec::new(), Duration::ZERO);
                    };
                    let started = Instant::now();
                    let pre = packages
                        .packages
                        .iter()
                        .zip(plans)
                        .map(|(pkg, plan)| Prescan::run(cxx, scanner, &pkg.root, &plan.unique))
                        .collect();
                    (pre, started.elapsed())
                });
                let info = pending.identify();
                let (pre, took) = pre.join().unwrap_or_default();
                info.map(|i| (i, pre, took))
            })
        }
    }
}

/// Where each package's headers may come from.
fn header_scopes(packages: &PackageGraph, settings: &Settings) -> Vec<HeaderScope> {
    let all: Vec<(String, PathBuf)> = packages
        .packages
        .iter()
        .map(|p| (p.name.clone(), p.root.clone()))
        .collect();
    packages
        .packages
        .iter()
        .map(|pkg| {
            let mut system_dirs: Vec<PathBuf> = Vec::new();
            for lib in settings.all_system_libs() {
                for d in lib.include_dirs() {
                    if !system_dirs.contains(&d) {
                        system_dirs.push(d);
                    }
                }
            }
            HeaderScope {
                root: pkg.root.clone(),
                packages: all
                    .iter()
                    .filter(|(n, _)| *n != pkg.name)
                    .cloned()
                    .collect(),
                system_dirs,
            }
        })
        .collect()
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

/// A workspace member's `[toolchain] compiler` is not used (the workspace root's
/// toolchain builds every member): say so where it differs from what the build uses.
fn member_toolchain_warnings(packages: &PackageGraph, info: &ToolchainInfo) -> Vec<EvalError> {
    let root = &packages.workspace_file;
    let root_compiler = root
        .manifest
        .toolchain
        .compiler
        .as_ref()
        .map(|c| c.get_ref());
    packages
        .members
        .iter()
        .map(|&m| &packages.packages[m])
        .filter(|pkg| pkg.file.path != root.path)
        .filter_map(|pkg| {
            let compiler = pkg.file.manifest.toolchain.compiler.as_ref()?;
            if Some(compiler.get_ref()) == root_compiler {
                return None;
            }
            let used = root_compiler.map_or_else(
                || format!("the default `{}`", info.cxx.display()),
                |c| format!("`{c}` from `{}`", root.path.display()),
            );
            Some(
                EvalError::new(
                    ErrorKind::ManifestInvalid,
                    format!(
                        "member `{}` sets [toolchain] compiler = `{}`, which is ignored: one toolchain builds the whole workspace, {used}",
                        pkg.name,
                        compiler.get_ref()
                    ),
                )
                .at(pkg.file.location(compiler.span()))
                .help("set the compiler in the workspace root's cmod.toml, and remove it from the member's"),
            )
        })
        .collect()
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
