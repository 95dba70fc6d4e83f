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
    let rendered = RenderedFlags::of(packages, flags);
    item_with(packages, rel, hash, lead, &rendered, pch)
}

/// A unit's flags rendered as a build step sees them and as they are on the host.
struct RenderedFlags {
    sandbox: Vec<String>,
    host: Vec<String>,
}

impl RenderedFlags {
    fn of(packages: &PackageGraph, flags: &UnitFlags) -> RenderedFlags {
        RenderedFlags {
            sandbox: flags.render(&|at| sandbox_path(packages, at)),
            host: flags.render(&|at| host_path(packages, at)),
        }
    }
}

/// Where a package file is as a build step sees it.
fn sandbox_path(packages: &PackageGraph, at: &PkgPath) -> String {
    format!("src/{}/{}", packages.packages[at.package].name, at.rel)
}

/// Where a package file is on this machine.
fn host_path(packages: &PackageGraph, at: &PkgPath) -> String {
    packages.packages[at.package]
        .root
        .join(&at.rel)
        .to_string_lossy()
        .into_owned()
}

/// [`item`], with the flags already rendered.
fn item_with(
    packages: &PackageGraph,
    rel: &str,
    hash: ContentHash,
    lead: &[&str],
    flags: &RenderedFlags,
    pch: Option<&PkgPath>,
) -> ScanItem {
    let extra = if pch.is_some() { 2 } else { 0 };
    let mut args: Vec<String> = Vec::with_capacity(lead.len() + flags.sandbox.len() + extra);
    let mut host_args: Vec<String> = Vec::with_capacity(lead.len() + flags.host.len() + extra);
    for a in lead {
        args.push(a.to_string());
        host_args.push(a.to_string());
    }
    args.extend(flags.sandbox.iter().cloned());
    host_args.extend(flags.host.iter().cloned());
    if let Some(p) = pch {
        args.extend(["-include".into(), sandbox_path(packages, p)]);
        host_args.extend(["-include".into(), host_path(packages, p)]);
    }
    ScanItem {
        rel: rel.to_string(),
        hash,
        args,
        host_args,
        source: None,
    }
}

/// The distinct scan items of a package, each once (a file listed by two targets with
/// the same flags is scanned once). Items are told apart by a hash first, so an item is
/// neither cloned nor hashed twice to be looked up.
#[derive(Default)]
struct UniqueItems<S = std::collections::hash_map::RandomState> {
    items: Vec<ScanItem>,
    /// Hashes the items.
    hasher: S,
    /// The first item with each hash.
    first: HashMap<u64, usize>,
    /// Later items whose hash an earlier, different item has (rare).
    collided: Vec<(u64, usize)>,
}

impl<S: std::hash::BuildHasher> UniqueItems<S> {
    /// The index of `it` among the distinct items, added if it is new.
    fn add(&mut self, it: ScanItem) -> usize {
        let h = self.hasher.hash_one(&it);
        let next = self.items.len();
        match self.first.entry(h) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(next);
            }
            std::collections::hash_map::Entry::Occupied(e) => {
                let same = std::iter::once(*e.get())
                    .chain(self.collided.iter().filter(|c| c.0 == h).map(|c| c.1))
                    .find(|&i| self.items[i] == it);
                if let Some(i) = same {
                    return i;
                }
                self.collided.push((h, next));
            }
        }
        self.items.push(it);
        next
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
    let mut unique: UniqueItems = UniqueItems::default();
    unique.first.reserve(owned.len());
    // Units of a target share their flags (one `Arc`): rendered once per target. The
    // flags stay alive in `plan.owned`, so an address is never reused meanwhile.
    let mut rendered: HashMap<*const UnitFlags, RenderedFlags> = HashMap::new();
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
        let flags_rendered = rendered
            .entry(Arc::as_ptr(&flags))
            .or_insert_with(|| RenderedFlags::of(packages, &flags));
        let mut it = item_with(packages, &rel, hash, &["-x", x], flags_rendered, pch);
        it.source = plan.generated.get(&rel).map(|g| g.host.clone());
        let i = unique.add(it);
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
                let j = unique.add(item(
                    packages,
                    &at.rel,
                    h,
                    &["-x", "c++-header"],
                    &without,
                    None,
                ));
                plan.pchs.push((at.clone(), without, h, j));
            }
        }
        plan.owned.push((rel, owner, flags, hash));
        plan.index.push(i);
    }
    plan.unique = unique.items;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_item(rel: &str, flag: &str) -> ScanItem {
        ScanItem {
            rel: rel.into(),
            hash: ContentHash::of_file(false, rel.as_bytes()),
            args: vec!["-x".into(), "c++".into(), flag.into()],
            host_args: vec!["-x".into(), "c++".into(), flag.into()],
            source: None,
        }
    }

    /// Hashes every item alike: every lookup after the first goes through collisions.
    #[derive(Default)]
    struct AllCollide;

    impl std::hash::BuildHasher for AllCollide {
        type Hasher = AllCollideHasher;
        fn build_hasher(&self) -> AllCollideHasher {
            AllCollideHasher
        }
    }

    struct AllCollideHasher;

    impl std::hash::Hasher for AllCollideHasher {
        fn finish(&self) -> u64 {
            7
        }
        fn write(&mut self, _: &[u8]) {}
    }

    fn indices<S: std::hash::BuildHasher>(unique: &mut UniqueItems<S>) -> Vec<usize> {
        let items = [
            scan_item("a.cpp", "-DX"),
            scan_item("b.cpp", "-DX"),
            scan_item("a.cpp", "-DX"),
            scan_item("a.cpp", "-DY"),
            scan_item("b.cpp", "-DX"),
            scan_item("a.cpp", "-DY"),
        ];
        items.into_iter().map(|it| unique.add(it)).collect()
    }

    /// Equal items get one index, different ones their own, whatever their hashes.
    #[test]
    fn equal_items_share_an_index_and_different_ones_do_not() {
        let mut hashed: UniqueItems = UniqueItems::default();
        let mut colliding = UniqueItems::<AllCollide>::default();
        for (got, unique) in [
            (indices(&mut hashed), &hashed.items),
            (indices(&mut colliding), &colliding.items),
        ] {
            assert_eq!(got, vec![0, 1, 0, 2, 1, 2]);
            assert_eq!(unique.len(), 3);
            assert_eq!(unique[2], scan_item("a.cpp", "-DY"));
        }
        assert_eq!(colliding.collided.len(), 2);
    }
}
