//! What each package asks of the scanner: one scan item per unit and set of flags (a file
//! listed by two targets with the same flags is scanned once; with different flags, once
//! per set), and one per precompiled header and set of flags of the units that use it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use cmod_schema::toolchain::ToolchainInfo;
use cmod_schema::ContentHash;

use crate::derive::PchScan;
use crate::error::{ErrorKind, EvalError};
use crate::file_cache::FileCache;
use crate::flags::{PkgPath, UnitFlags};
use crate::graph::{Origin, Owner, RawUnit};
use crate::package::{Package, PackageGraph};
use crate::scan::{scan_package, HeaderScope, ScanCache, ScanItem, ScanSource};
use crate::scanner::Prescan;
use crate::settings::Settings;
use crate::sources::{has_interface_extension, language, Lang, PackageSources};
use crate::targets::PackageTargets;

/// What can be known about a package's units before the toolchain is: its sources and
/// targets, its units with their owners, their content hashes and its scan cache.
pub(super) struct Prepared {
    sources: PackageSources,
    pub(super) targets: PackageTargets,
    owned: Vec<(String, Owner)>,
    /// Failing here is reported after the settings are checked, as in a sequential run.
    hashes: Result<Vec<ContentHash>, EvalError>,
    cache: ScanCache,
}

impl Prepared {
    pub(super) fn new(
        pkg: &Package,
        sources: PackageSources,
        targets: PackageTargets,
        files: &FileCache,
        cache_dir: Option<&Path>,
    ) -> Prepared {
        let mut owned: Vec<(String, Owner)> = Vec::new();
        for (l, lib) in sources.libs.iter().enumerate() {
            owned.extend(lib.units.iter().map(|r| (r.clone(), Owner::Lib(l))));
        }
        for (b, bin) in sources.bins.iter().enumerate() {
            owned.extend(bin.units.iter().map(|r| (r.clone(), Owner::Bin(b))));
        }
        for (t, test) in sources.tests.iter().enumerate() {
            owned.extend(test.units.iter().map(|r| (r.clone(), Owner::Test(t))));
        }
        // The scan cache (a parse of up to a few megabytes) loads beside the hashing (a
        // `stat` per unit).
        let (hashes, cache) = std::thread::scope(|s| {
            let load = || ScanCache::load(&pkg.root, cache_dir);
            let loader = std::thread::Builder::new().spawn_scoped(s, load).ok();
            let hashes = owned
                .iter()
                .map(|(rel, _)| {
                    let abs = sources.host_path(&pkg.root, rel);
                    files.hash(&abs).map_err(|e| EvalError::io(&abs, "read", e))
                })
                .collect();
            let cache = loader.and_then(|t| t.join().ok()).unwrap_or_else(load);
            (hashes, cache)
        });
        Prepared {
            sources,
            targets,
            owned,
            hashes,
            cache,
        }
    }
}

/// A package's units and precompiled headers, ready to scan.
pub(super) struct ScanPlan {
    /// Every unit with its target and flags.
    owned: Vec<(String, Owner, Arc<UnitFlags>, ContentHash)>,
    /// For each owned unit, its index in `unique`.
    index: Vec<usize>,
    /// The distinct items, as scanned.
    pub(super) unique: Vec<ScanItem>,
    /// Each precompiled header: where it is, the flags of its users, its hash and its
    /// index in `unique`.
    pchs: Vec<(PkgPath, Arc<UnitFlags>, ContentHash, usize)>,
    cache: ScanCache,
    /// The package's generated units (their bytes are not in the package).
    generated: crate::generate::Generated,
}

/// What scanning one package produced.
pub(super) struct Scanned {
    pub units: Vec<RawUnit>,
    pub pchs: Vec<PchScan>,
    pub rescanned: Vec<String>,
    pub prescanned: Option<String>,
    pub substituted: Vec<String>,
    pub keys: Vec<(std::path::PathBuf, String, ContentHash)>,
    pub warnings: Vec<String>,
}

fn language_flag(rel: &str, lang: Lang) -> &'static str {
    match lang {
        Lang::C => "c",
        Lang::Cxx if has_interface_extension(rel) => "c++-module",
        Lang::Cxx => "c++",
    }
}

/// The scan item of `rel` compiled with `flags` (and force-including `pch`, for the
/// units that will use the precompiled header): its flags as a build step sees them
/// (the key) and on the host.
/// `lead` is what comes before the flags: `-x <language>`, or how a header unit is
/// compiled (`-fmodule-header=user -xc++-user-header`).
pub(super) fn item(
    packages: &PackageGraph,
    rel: &str,
    hash: ContentHash,
    lead: &[&str],
    flags: &UnitFlags,
    pch: Option<&PkgPath>,
) -> ScanItem {
    let sandbox = |at: &PkgPath| format!("src/{}/{}", packages.packages[at.package].name, at.rel);
    let host = |at: &PkgPath| {
        packages.packages[at.package]
            .root
            .join(&at.rel)
            .to_string_lossy()
            .into_owned()
    };
    let mut args: Vec<String> = lead.iter().map(|a| a.to_string()).collect();
    let mut host_args = args.clone();
    args.extend(flags.render(&sandbox));
    host_args.extend(flags.render(&host));
    if let Some(p) = pch {
        args.extend(["-include".into(), sandbox(p)]);
        host_args.extend(["-include".into(), host(p)]);
    }
    ScanItem {
        rel: rel.to_string(),
        hash,
        args,
        host_args,
        source: None,
    }
}

/// Plan the scan of `pkg`: every unit's flags and scan item.
pub(super) fn scan_plan(
    packages: &PackageGraph,
    targets: &[PackageTargets],
    settings: &mut Settings,
    pkg: &Package,
    prepared: Prepared,
    files: &FileCache,
) -> Result<(PackageSources, ScanPlan), EvalError> {
    let Prepared {
        sources,
        owned,
        hashes,
        cache,
        ..
    } = prepared;
    let hashes = hashes?;
    let mut plan = ScanPlan {
        owned: Vec::with_capacity(owned.len()),
        index: Vec::with_capacity(owned.len()),
        unique: Vec::new(),
        pchs: Vec::new(),
        cache,
        generated: sources.generated.clone(),
    };
    let mut seen: HashMap<ScanItem, usize> = HashMap::new();
    let mut add = |plan: &mut ScanPlan, it: ScanItem| -> usize {
        *seen.entry(it.clone()).or_insert_with(|| {
            plan.unique.push(it);
            plan.unique.len() - 1
        })
    };
    for ((rel, owner), hash) in owned.into_iter().zip(hashes) {
        let lang = language(&rel).ok_or_else(|| {
            EvalError::new(
                ErrorKind::Internal,
                format!("`{rel}` is not a translation unit"),
            )
        })?;
        let flags = settings.unit_flags(packages, targets, pkg.id, owner, &rel, lang);
        let x = language_flag(&rel, lang);
        let pch = flags
            .pch
            .as_ref()
            .filter(|_| lang == Lang::Cxx && x == "c++");
        let mut it = item(packages, &rel, hash, &["-x", x], &flags, pch);
        it.source = plan.generated.get(&rel).map(|g| g.host.clone());
        let i = add(&mut plan, it);
        if let Some(at) = pch {
            let without = Arc::new(UnitFlags {
                pch: None,
                ..(*flags).clone()
            });
            if !plan
                .pchs
                .iter()
                .any(|(a, f, _, _)| a == at && **f == *without)
            {
                let abs = pkg.root.join(&at.rel);
                let h = files
                    .hash(&abs)
                    .map_err(|e| EvalError::io(&abs, "read", e))?;
                let j = add(
                    &mut plan,
                    item(packages, &at.rel, h, &["-x", "c++-header"], &without, None),
                );
                plan.pchs.push((at.clone(), without, h, j));
            }
        }
        plan.owned.push((rel, owner, flags, hash));
        plan.index.push(i);
    }
    Ok((sources, plan))
}

impl ScanPlan {
    /// Scan the package's items (one scanner process for the cache misses) and turn the
    /// results into units and precompiled headers.
    pub(super) fn scan(
        self,
        toolchain: &ToolchainInfo,
        pkg: &Package,
        scope: &HeaderScope,
        files: &FileCache,
        prescan: Option<&Prescan>,
        source: Option<&dyn ScanSource>,
    ) -> Result<Scanned, EvalError> {
        let ScanPlan {
            owned,
            index,
            unique,
            pchs,
            cache,
            generated,
        } = self;
        let scan = scan_package(toolchain, scope, &unique, files, cache, prescan, source)?;
        let p = pkg.id;
        let name = |rel: &String| format!("{}/{rel}", pkg.name);
        let units = owned
            .into_iter()
            .zip(index)
            .map(|((rel, owner, flags, hash), i)| {
                let scanned =
                    scan.results.get(i).cloned().ok_or_else(|| {
                        EvalError::new(ErrorKind::Internal, "a unit lost its scan")
                    })?;
                Ok(RawUnit {
                    origin: Origin::Package(p, owner),
                    abs: generated
                        .get(&rel)
                        .map_or_else(|| pkg.root.join(&rel), |g| g.host.clone()),
                    rel,
                    hash,
                    scanned,
                    flags,
                })
            })
            .collect::<Result<_, EvalError>>()?;
        let pchs = pchs
            .into_iter()
            .map(|(at, flags, hash, i)| {
                let s = scan.results.get(i).cloned().ok_or_else(|| {
                    EvalError::new(ErrorKind::Internal, "a precompiled header lost its scan")
                })?;
                Ok(PchScan {
                    at,
                    flags,
                    hash,
                    headers: s.headers,
                    system: s.system,
                })
            })
            .collect::<Result<_, EvalError>>()?;
        Ok(Scanned {
            units,
            pchs,
            rescanned: scan.rescanned.iter().map(name).collect(),
            prescanned: scan.prescanned.then(|| pkg.name.clone()),
            substituted: scan.substituted.iter().map(name).collect(),
            keys: unique
                .iter()
                .zip(&scan.keys)
                .map(|(it, k)| (pkg.root.clone(), it.rel.clone(), *k))
                .collect(),
            warnings: scan.warnings,
        })
    }
}
