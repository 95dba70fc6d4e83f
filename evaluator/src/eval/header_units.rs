//! Header units: which header each `import <h>;` / `import "h";` names, and what each
//! header unit includes.
//!
//! A header-unit import is resolved as the preprocessor would resolve the `#include` of
//! the same spelling, among the packages of the graph: a quoted name beside the importing
//! unit, then along its `-iquote`, `-I`, `-isystem` and `-idirafter` directories (a
//! dependency's public include directories among them); an angled name along the same
//! directories but `-iquote`. Found in a package, it is a **user header unit** (that
//! package's file, compiled with `-fmodule-header=user`); not found there, a **system
//! header unit** (`-fmodule-header=system`, found by the compiler on its own include
//! path: the standard library, `/usr/include`).
//!
//! Each header unit is one derivation per header and set of flags (the importing unit's:
//! dialect, defines and include paths decide what the header means), shared by every
//! unit that imports it with those flags. What it includes is scanned like a unit (one
//! extra scanner run per package, only for header units that miss the cache, in a cache
//! of its own beside the package's), so the header unit is keyed by the header's content
//! and everything it includes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use cmod_schema::toolchain::ToolchainInfo;
use cmod_schema::ContentHash;

use crate::error::{ErrorKind, EvalError};
use crate::file_cache::FileCache;
use crate::flags::{PathArg, PkgPath, UnitFlags};
use crate::graph::{Origin, RawUnit};
use crate::package::{PackageGraph, PackageId};
use crate::scan::header_imports::{header_imports, HeaderImport};
use crate::scan::{scan_package, HeaderDep, HeaderScope, ScanCache, ScanItem, SystemHeader};

/// Where a header unit's header is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HeaderSource {
    /// Found by the compiler on its own include path (`vector`).
    System(String),
    /// A package's file.
    Package(PkgPath),
}

impl HeaderSource {
    /// The header as a header unit's BMI names it: `<vector>`, or a user header by its
    /// package path, `"include/cfg.h"`.
    pub fn written(&self) -> String {
        match self {
            HeaderSource::System(name) => format!("<{name}>"),
            HeaderSource::Package(at) => format!("\"{}\"", at.rel),
        }
    }
}

/// One header unit: its header, the flags it is compiled with and what it includes.
#[derive(Debug, Clone)]
pub struct HeaderUnitScan {
    /// The header.
    pub source: HeaderSource,
    /// How the first importer spelled it (`<vector>`), for names and messages.
    pub spelling: String,
    /// The flags of its importers.
    pub flags: Arc<UnitFlags>,
    /// The package whose units import it (whose name its derivation carries).
    pub importer: PackageId,
    /// The header's content hash (of its name, for a system header: the toolchain
    /// identity or the system headers below cover its content).
    pub hash: ContentHash,
    /// Package headers it includes (not itself).
    pub headers: Vec<HeaderDep>,
    /// System headers it includes.
    pub system: Vec<SystemHeader>,
}

/// A unit's import of a header unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderUnitUse {
    /// Index into [`HeaderUnits::scans`].
    pub index: usize,
    /// The line of the import.
    pub line: u32,
    /// `export import`.
    pub exported: bool,
}

/// Every header unit of an evaluation, and which units import which.
#[derive(Debug, Clone, Default)]
pub struct HeaderUnits {
    /// Each header unit once per header and set of flags.
    pub scans: Vec<HeaderUnitScan>,
    /// Per unit (by position in the graph), its header-unit imports.
    pub uses: Vec<Vec<HeaderUnitUse>>,
}

impl HeaderUnits {
    /// The header-unit imports of unit `u`.
    pub fn of(&self, u: usize) -> &[HeaderUnitUse] {
        self.uses.get(u).map_or(&[], Vec::as_slice)
    }
}

/// What resolving every unit's header-unit imports asks of the scanner.
struct Wanted {
    scans: Vec<(HeaderSource, String, Arc<UnitFlags>, PackageId)>,
    index: HashMap<(HeaderSource, Arc<UnitFlags>), usize>,
}

/// Resolve the header-unit imports of `raw` and scan each header unit.
pub(super) fn header_units(
    packages: &PackageGraph,
    raw: &[RawUnit],
    toolchain: &ToolchainInfo,
    scopes: &[HeaderScope],
    files: &FileCache,
    cache_dir: Option<&Path>,
) -> Result<HeaderUnits, EvalError> {
    let mut wanted = Wanted {
        scans: Vec::new(),
        index: HashMap::new(),
    };
    let mut uses = Vec::with_capacity(raw.len());
    for unit in raw {
        let imports = match unit.origin {
            Origin::Package(..) => header_imports(&unit.scanned.decls),
            Origin::Toolchain => Vec::new(),
        };
        let mut mine = Vec::with_capacity(imports.len());
        for import in imports {
            mine.push(want(packages, unit, &import, &mut wanted)?);
        }
        uses.push(mine);
    }
    if wanted.scans.is_empty() {
        return Ok(HeaderUnits::default());
    }
    let scans = scan_all(packages, toolchain, scopes, files, cache_dir, wanted.scans)?;
    Ok(HeaderUnits { scans, uses })
}

/// Resolve `import` of `unit` and note the header unit it needs.
fn want(
    packages: &PackageGraph,
    unit: &RawUnit,
    import: &HeaderImport,
    wanted: &mut Wanted,
) -> Result<HeaderUnitUse, EvalError> {
    let Origin::Package(p, _) = unit.origin else {
        return Err(EvalError::new(
            ErrorKind::Internal,
            "a toolchain unit imports a header unit",
        ));
    };
    let source = resolve(packages, p, &unit.rel, &unit.flags, import);
    let key = (source.clone(), unit.flags.clone());
    let index = *wanted.index.entry(key).or_insert_with(|| {
        wanted
            .scans
            .push((source, import.spelling.clone(), unit.flags.clone(), p));
        wanted.scans.len() - 1
    });
    Ok(HeaderUnitUse {
        index,
        line: import.line,
        exported: import.exported,
    })
}

/// The header `import` of unit `rel` of package `p` names. One found in no package is
/// the system's (as `#include "h"` falls back to the system's directories); one that
/// does not exist at all has already failed the importer's scan, at the import's line.
fn resolve(
    packages: &PackageGraph,
    p: PackageId,
    rel: &str,
    flags: &UnitFlags,
    import: &HeaderImport,
) -> HeaderSource {
    let name = import.name();
    let mut dirs: Vec<PkgPath> = Vec::new();
    if !import.is_angled() {
        let dir = rel.rsplit_once('/').map_or("", |(d, _)| d);
        dirs.push(PkgPath {
            package: p,
            rel: dir.to_string(),
        });
    }
    let order: &[&str] = if import.is_angled() {
        &["-I", "-isystem", "-idirafter"]
    } else {
        &["-iquote", "-I", "-isystem", "-idirafter"]
    };
    for wanted_flag in order {
        for arg in &flags.paths {
            if let PathArg::Dir { flag, at } = arg {
                if flag == wanted_flag {
                    dirs.push(at.clone());
                }
            }
        }
    }
    for dir in dirs {
        let joined = if dir.rel.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", dir.rel)
        };
        let Some(rel) = crate::paths::normalize_relative(&joined) else {
            continue;
        };
        let abs = packages.packages[dir.package].root.join(&rel);
        if crate::journal::is_file(&abs) {
            return HeaderSource::Package(PkgPath {
                package: dir.package,
                rel,
            });
        }
    }
    HeaderSource::System(name.to_string())
}

/// Scan every wanted header unit, one scanner run per package that imports some.
fn scan_all(
    packages: &PackageGraph,
    toolchain: &ToolchainInfo,
    scopes: &[HeaderScope],
    files: &FileCache,
    cache_dir: Option<&Path>,
    wanted: Vec<(HeaderSource, String, Arc<UnitFlags>, PackageId)>,
) -> Result<Vec<HeaderUnitScan>, EvalError> {
    let mut by_package: HashMap<PackageId, Vec<usize>> = HashMap::new();
    for (i, w) in wanted.iter().enumerate() {
        by_package.entry(owner(w)).or_default().push(i);
    }
    let mut found: Vec<Option<HeaderUnitScan>> = vec![None; wanted.len()];
    let mut order: Vec<_> = by_package.into_iter().collect();
    order.sort();
    for (p, indices) in order {
        let pkg = &packages.packages[p];
        let items = indices
            .iter()
            .map(|&i| item(packages, files, &wanted[i]))
            .collect::<Result<Vec<_>, _>>()?;
        let cache = ScanCache::load(&pkg.root.join(".cmod-header-units"), cache_dir);
        let scan = scan_package(toolchain, &scopes[p], &items, files, cache, None, None)?;
        for ((&i, result), it) in indices.iter().zip(scan.results).zip(&items) {
            let (source, spelling, flags, importer) = wanted[i].clone();
            let own = match &source {
                HeaderSource::Package(at) if at.package == p => Some(at.rel.clone()),
                _ => None,
            };
            found[i] = Some(HeaderUnitScan {
                source,
                spelling,
                flags,
                importer,
                hash: it.hash,
                headers: result
                    .headers
                    .into_iter()
                    .filter(|h| !(h.package.is_none() && Some(&h.rel) == own.as_ref()))
                    .collect(),
                system: result.system,
            });
        }
    }
    found
        .into_iter()
        .map(|f| {
            f.ok_or_else(|| EvalError::new(ErrorKind::Internal, "a header unit was not scanned"))
        })
        .collect()
}

/// The package whose scan a header unit belongs to: the header's own (its includes are
/// sorted relative to it), or the importer's for a system header.
fn owner(w: &(HeaderSource, String, Arc<UnitFlags>, PackageId)) -> PackageId {
    match &w.0 {
        HeaderSource::Package(at) => at.package,
        HeaderSource::System(_) => w.3,
    }
}

/// The scan item of one header unit.
fn item(
    packages: &PackageGraph,
    files: &FileCache,
    w: &(HeaderSource, String, Arc<UnitFlags>, PackageId),
) -> Result<ScanItem, EvalError> {
    let (source, _, flags, _) = w;
    let (lead, rel, hash) = match source {
        HeaderSource::System(name) => (
            ["-fmodule-header=system", "-xc++-system-header"],
            name.clone(),
            ContentHash::of_file(false, name.as_bytes()),
        ),
        HeaderSource::Package(at) => {
            let abs = packages.packages[at.package].root.join(&at.rel);
            let hash = files
                .hash(&abs)
                .map_err(|e| EvalError::io(&abs, "read", e))?;
            (
                ["-fmodule-header=user", "-xc++-user-header"],
                at.rel.clone(),
                hash,
            )
        }
    };
    Ok(super::plan::item(packages, &rel, hash, &lead, flags, None))
}
