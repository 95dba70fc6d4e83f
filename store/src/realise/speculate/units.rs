//! Unit recipes: a recipe for every compile a realisation builds, so that the first edit
//! of any file (not only of a file edited lately) is built ahead.
//!
//! A recent recipe (see the parent module) carries its step's module closure, thousands
//! of BMIs on a deep graph, so only an edit's few steps keep one. A **unit recipe** is
//! the same recipe without the closure, written for every compile built that reads one
//! source file (a cold build writes one per unit) under `units/`. Two more files of the
//! request make them usable before anything is evaluated:
//! - the **stamp index** (`units.json`): every recorded host file's stamp (modification
//!   time, size, inode) as the realisation that recorded its recipe left it, and the
//!   recipes that read it. The speculation stats every file in it (a few µs each) and
//!   hashes only those whose stamp moved;
//! - the **module table** (`modules.json`): every BMI of the last realisation that built
//!   one, by store path, with the module it provides and the BMIs it was built against
//!   at their stable names. A unit recipe's closure is walked through it from the step's
//!   direct BMIs, as the realiser walks the derivations. A BMI's store path pins the BMIs
//!   it was built against (its references), so an entry never goes stale: at worst a BMI
//!   is missing, and then nothing is built ahead.
//!
//! Both are rewritten at the end of a realisation that changed them (an edit rewrites
//! the index's few moved stamps, and the table only if its BMIs are not the table's, by
//! a digest kept beside it). When more than [`EDITED_UP_TO`] files moved (a checkout,
//! a pull), nothing is built from unit recipes: that is no edit. The realiser
//! takes a run ahead only if its key and the closure it laid out are the step's own, so
//! a table that does not fit costs a wasted compile, never a wrong build.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use cmod_schema::derivation::{Derivation, InputFrom};
use cmod_schema::{ContentHash, StorePath};

use super::{recipe_id, replace, Head, Recipe, RECIPE_VERSION};
use crate::realise::sources::EDITED_UP_TO;
use crate::realise::{DrvLookup, ModuleFile};

/// The format of the stamp index and the module table; another version is not read.
const UNITS_VERSION: u32 = 1;

/// A host file's stamp: it moves when the file is written or replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    sec: i64,
    nsec: i64,
    size: u64,
    ino: u64,
}

fn stamp_of(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        sec: m.mtime(),
        nsec: m.mtime_nsec(),
        size: m.size(),
        ino: m.ino(),
    })
}

/// One recorded host file: its stamp and the ids of the unit recipes that read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Indexed {
    stamp: Stamp,
    recipes: BTreeSet<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    version: u32,
    hosts: BTreeMap<PathBuf, Indexed>,
}

fn units_dir(dir: &Path) -> PathBuf {
    dir.join("units")
}

fn index_file(dir: &Path) -> PathBuf {
    dir.join("units.json")
}

fn table_file(dir: &Path) -> PathBuf {
    dir.join("modules.json")
}

fn read_index(dir: &Path) -> Index {
    std::fs::read(index_file(dir))
        .ok()
        .and_then(|b| serde_json::from_slice::<Index>(&b).ok())
        .filter(|i| i.version == UNITS_VERSION)
        .unwrap_or_default()
}

/// Write `recipe` (whose closure is left out) as a unit recipe of the request in `dir`;
/// its id.
pub(super) fn write(dir: &Path, recipe: &Recipe) -> std::io::Result<String> {
    let units = units_dir(dir);
    std::fs::create_dir_all(&units)?;
    let id = recipe_id(recipe);
    let body = serde_json::to_vec(recipe).map_err(std::io::Error::other)?;
    replace(&units.join(format!("{id}.json")), &body)?;
    Ok(id)
}

/// The unit recipe of the same step as `recipe` (same host file and step name), as its
/// head, if there is one.
pub(super) fn head_of(dir: &Path, recipe: &Recipe) -> Option<Head> {
    let file = units_dir(dir).join(format!("{}.json", recipe_id(recipe)));
    let text = std::fs::read_to_string(&file).ok()?;
    Some(Head { file, text })
}

/// Note in the stamp index of `dir` the unit recipes `recorded` (host file, id), with
/// each host's stamp now, and drop the host files found `gone`.
pub(super) fn index(
    dir: &Path,
    recorded: &[(PathBuf, String)],
    gone: &[PathBuf],
) -> std::io::Result<()> {
    if recorded.is_empty() {
        return Ok(());
    }
    let mut index = read_index(dir);
    index.version = UNITS_VERSION;
    for host in gone {
        index.hosts.remove(host);
    }
    for (host, id) in recorded {
        match stamp_of(host) {
            Some(stamp) => {
                let entry = index.hosts.entry(host.clone()).or_insert(Indexed {
                    stamp,
                    recipes: BTreeSet::new(),
                });
                entry.stamp = stamp;
                entry.recipes.insert(id.clone());
            }
            None => {
                index.hosts.remove(host);
            }
        }
    }
    let bytes = serde_json::to_vec(&index).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    replace(&index_file(dir), &bytes)
}

/// What the stamp index says changed since the last realisation that recorded.
#[derive(Debug, Default)]
pub(super) struct Changed {
    /// The unit recipes whose host file changed (its stamp moved and its content hash is
    /// another), each with its file (as the head) and the content hash now; none when
    /// more than [`EDITED_UP_TO`] files moved (a checkout, not an edit). Their closures
    /// are not filled in yet (see [`ModuleTable`]).
    pub recipes: Vec<(Head, Recipe, ContentHash)>,
    /// Host files that no longer exist: dropped from the index when it is next written.
    pub gone: Vec<PathBuf>,
}

/// What changed among the host files of `dir`'s stamp index (see [`Changed`]).
pub(super) fn changed(dir: &Path) -> Changed {
    let index = read_index(dir);
    let mut moved = Vec::new();
    let mut gone = Vec::new();
    for (host, entry) in &index.hosts {
        match stamp_of(host) {
            Some(stamp) if stamp == entry.stamp => {}
            Some(_) => moved.push((host, entry)),
            None => gone.push(host.clone()),
        }
    }
    let recipes = if moved.len() <= EDITED_UP_TO {
        changed_recipes(dir, &moved)
    } else {
        Vec::new()
    };
    Changed { recipes, gone }
}

/// The unit recipes of the `moved` host files whose content changed.
fn changed_recipes(dir: &Path, moved: &[(&PathBuf, &Indexed)]) -> Vec<(Head, Recipe, ContentHash)> {
    let units = units_dir(dir);
    let mut out = Vec::new();
    for (host, entry) in moved {
        let Ok(bytes) = std::fs::read(host) else {
            continue;
        };
        let now = ContentHash::of_file(false, &bytes);
        for id in &entry.recipes {
            let file = units.join(format!("{id}.json"));
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let recipe = serde_json::from_str::<Recipe>(&text)
                .ok()
                .filter(|r| r.version == RECIPE_VERSION && r.host == **host)
                .filter(|r| r.source_hash != now && r.modules.is_empty());
            if let Some(recipe) = recipe {
                out.push((Head { file, text }, recipe, now));
            }
        }
    }
    out
}

/// One BMI of the module table: its store path, the module it provides, and the BMIs it
/// was built against (stable name, index in the table), or `None` if one of them was not
/// known when the table was written.
#[derive(Debug, Serialize, Deserialize)]
struct Bmi {
    path: StorePath,
    module: String,
    reads: Option<Vec<(String, u32)>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Table {
    version: u32,
    bmis: Vec<Bmi>,
}

/// The BMIs of a realisation (its derivations' module outputs, as realised), hashed: the
/// module table is rewritten only when they differ from the table's.
fn bmis_digest(
    drvs: &impl DrvLookup,
    outputs: &BTreeMap<StorePath, BTreeMap<String, StorePath>>,
) -> String {
    let mut h = blake3::Hasher::new();
    for (d, outs) in outputs {
        let Some(drv) = drvs.drv(d) else { continue };
        for (name, _) in drv.outputs.iter().filter(|(_, o)| o.module.is_some()) {
            if let Some(path) = outs.get(name) {
                h.update(path.to_string().as_bytes());
                h.update(b"\n");
            }
        }
    }
    h.finalize().to_hex()[..32].to_string()
}

/// Write the module table of `dir` from a realisation's derivations and outputs, unless
/// the table there already holds these BMIs (the digest beside it says so).
pub(super) fn write_table(
    dir: &Path,
    drvs: &impl DrvLookup,
    outputs: &BTreeMap<StorePath, BTreeMap<String, StorePath>>,
) -> std::io::Result<()> {
    let digest = bmis_digest(drvs, outputs);
    let digest_file = dir.join("modules.digest");
    if std::fs::read_to_string(&digest_file).is_ok_and(|d| d == digest) {
        return Ok(());
    }
    let mut bmis = Vec::new();
    let mut readers: Vec<&Derivation> = Vec::new();
    let mut by_path: HashMap<&StorePath, u32> = HashMap::new();
    for (d, outs) in outputs {
        let Some(drv) = drvs.drv(d) else { continue };
        for (name, out) in &drv.outputs {
            let (Some(module), Some(path)) = (&out.module, outs.get(name)) else {
                continue;
            };
            by_path.entry(path).or_insert(bmis.len() as u32);
            bmis.push(Bmi {
                path: path.clone(),
                module: module.clone(),
                reads: None,
            });
            readers.push(drv);
        }
    }
    for (bmi, drv) in bmis.iter_mut().zip(readers) {
        bmi.reads = drv
            .bmi_inputs()
            .map(|input| match &input.from {
                InputFrom::Drv { drv, output } => {
                    let path = outputs.get(drv)?.get(output)?;
                    Some((input.at.clone(), *by_path.get(path)?))
                }
                InputFrom::Path { .. } => None,
            })
            .collect();
    }
    let table = Table {
        version: UNITS_VERSION,
        bmis,
    };
    let bytes = serde_json::to_vec(&table).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    // The table first: a digest never names a table that was not written.
    replace(&table_file(dir), &bytes)?;
    replace(&digest_file, digest.as_bytes())
}

/// The module table of a request, read to walk unit recipes' closures.
pub(super) struct ModuleTable {
    bmis: Vec<Bmi>,
    by_path: HashMap<StorePath, u32>,
}

impl ModuleTable {
    /// The table of `dir`, if there is one of this version.
    pub(super) fn load(dir: &Path) -> Option<ModuleTable> {
        let bytes = std::fs::read(table_file(dir)).ok()?;
        let table = serde_json::from_slice::<Table>(&bytes).ok()?;
        if table.version != UNITS_VERSION {
            return None;
        }
        let mut by_path = HashMap::with_capacity(table.bmis.len());
        for (i, bmi) in table.bmis.iter().enumerate() {
            by_path.entry(bmi.path.clone()).or_insert(i as u32);
        }
        Some(ModuleTable {
            bmis: table.bmis,
            by_path,
        })
    }

    /// Every BMI `resolved` sees, sorted by module as the realiser's closure is; `None`
    /// if a BMI it reaches is not in the table, or two BMIs have one stable name.
    pub(super) fn closure(&self, resolved: &Derivation) -> Option<Vec<ModuleFile>> {
        let mut todo: Vec<(&str, u32)> = Vec::new();
        for input in resolved.bmi_inputs() {
            let InputFrom::Path { path, sub: None } = &input.from else {
                return None;
            };
            todo.push((input.at.as_str(), *self.by_path.get(path)?));
        }
        let mut seen: HashSet<u32> = HashSet::new();
        let mut by_at: HashMap<&str, u32> = HashMap::new();
        let mut out = Vec::new();
        while let Some((at, i)) = todo.pop() {
            if !seen.insert(i) {
                continue;
            }
            let bmi = self.bmis.get(i as usize)?;
            match by_at.get(at) {
                Some(&j) if self.bmis.get(j as usize)?.path != bmi.path => return None,
                Some(_) => {}
                None => {
                    by_at.insert(at, i);
                    out.push(ModuleFile {
                        module: bmi.module.clone(),
                        at: at.into(),
                        path: bmi.path.clone(),
                    });
                }
            }
            for (at, j) in bmi.reads.as_ref()? {
                todo.push((at.as_str(), *j));
            }
        }
        out.sort_by(|a, b| a.module.cmp(&b.module).then_with(|| a.at.cmp(&b.at)));
        Some(out)
    }
}

#[cfg(test)]
#[path = "units_tests.rs"]
mod tests;
