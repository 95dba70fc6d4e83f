//! Incremental emission: taking the derivations of units that did not change from the
//! previous emission instead of making them again.
//!
//! A unit's BMI and object steps are a function of a few things the emitter reads: the
//! unit (its path, content hash, kind, module, headers and system headers), its flags,
//! the BMI derivations of the units it imports, and a context shared by every step (the
//! toolchain and the packages' names, versions and roots). A hash of those, the
//! **recipe key**, is cheap to compute, far cheaper than making the step (its argument
//! strings, its inputs), checking it and finding its path. Each emission records, per
//! recipe key, the derivation's path, its body in a compact binary form and the source
//! files it reads (`body_codec.rs`); the next one decodes the body of every step whose
//! key it finds there. After a one-line edit of an implementation unit, all steps but
//! the edited unit's are found, so emission costs what decoding does.
//!
//! Only units of packages without header-unit imports (their own or their imports') and
//! without a precompiled header take part; the others are made as before. The record is
//! a cache: a missing or damaged one only costs the making, and one written by another
//! build of cmod is not read (its identity is in the header). `tests/emission_cache.rs`
//! compares emission with and without the records after edits of a body, an interface,
//! the imports, the included headers and the flags (leaving the unit's content hash or
//! the BMIs it reads out of the key fails it), and shows that bodies are taken from the
//! record.

use std::collections::HashMap;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;

use cmod_schema::derivation::{Derivation, InputFrom, StepKind};
use cmod_schema::store_path::StorePath;

use super::emission_cache::{kind_tag, Feed};
use super::{body_codec, Emitter, SourceFile};
use crate::error::EvalError;
use crate::flags::UnitFlags;
use crate::graph::{Origin, UnitId};
use crate::targets::Owner;

/// The hash of what a step is made from (see the module documentation).
pub(super) type RecipeKey = [u8; 32];

const MAGIC: &[u8] = b"cmod-recipes-v1\n";

/// Where an entry's encoding is: in the previous record, or made by this emission.
#[derive(Debug, Clone)]
enum Slot {
    Old(Range<usize>),
    Fresh(Range<usize>),
}

/// The previous emission's recipes and this one's.
#[derive(Debug, Default)]
pub(super) struct Recipes {
    file: Option<PathBuf>,
    /// What every recipe key is hashed with: the toolchain and the packages.
    context: [u8; 32],
    old: Vec<u8>,
    known: HashMap<RecipeKey, Range<usize>>,
    fresh: Vec<u8>,
    current: Vec<(RecipeKey, Slot)>,
    /// The entries taken, whose bodies are decoded at the end, in parallel.
    taken: Vec<Range<usize>>,
    /// Digests of the unit flags seen so far, by address (units of a target share one).
    flag_digests: HashMap<*const UnitFlags, [u8; 32]>,
}

impl Recipes {
    /// The record in `file` (none: nothing is reused or saved), for steps made in
    /// `context`; with `read` false, the record is not read, only replaced.
    pub(super) fn load(file: Option<PathBuf>, read: bool, context: [u8; 32]) -> Recipes {
        let old = file
            .as_deref()
            .filter(|_| read)
            .and_then(|f| std::fs::read(f).ok())
            .unwrap_or_default();
        let known = index(&old).unwrap_or_default();
        Recipes {
            file,
            context,
            old,
            known,
            ..Recipes::default()
        }
    }

    /// The path of the step recorded under `key`; its body is decoded by [`Self::bodies`].
    fn take(&mut self, key: &RecipeKey) -> Option<StorePath> {
        let range = self.known.get(key)?.clone();
        let path = body_codec::decode_path(&self.old[range.clone()])?;
        self.current.push((*key, Slot::Old(range.clone())));
        self.taken.push(range);
        Some(path)
    }

    /// The steps taken (their paths, derivations and the source files they read), decoded
    /// in parallel; `None` if any is damaged.
    fn bodies(&self) -> Option<Vec<(StorePath, Derivation, Vec<SourceFile>)>> {
        let old = &self.old;
        self.taken
            .par_iter()
            .map(|r| body_codec::decode(&old[r.clone()]))
            .collect()
    }

    /// Record that this emission made the step `key` as `drv` at `path`, reading `sources`.
    fn note(&mut self, key: RecipeKey, path: &StorePath, drv: &Derivation, sources: &[SourceFile]) {
        let start = self.fresh.len();
        body_codec::encode(path, drv, sources, &mut self.fresh);
        self.current
            .push((key, Slot::Fresh(start..self.fresh.len())));
    }

    /// Replace the record with this emission's entries, on a thread of its own (see
    /// `cache_io::write_later`), unless they are the ones it holds.
    pub(super) fn save(self) {
        let Some(file) = self.file else {
            return;
        };
        let unchanged = self.fresh.is_empty() && self.current.len() == self.known.len();
        if unchanged {
            return;
        }
        let (old, fresh, current) = (self.old, self.fresh, self.current);
        crate::cache_io::write_later(file, move || {
            let capacity = old.len() + fresh.len();
            let mut out = crate::cache_io::record_header(MAGIC, current.len(), capacity);
            for (key, slot) in &current {
                let bytes = match slot {
                    Slot::Old(r) => &old[r.clone()],
                    Slot::Fresh(r) => &fresh[r.clone()],
                };
                out.extend_from_slice(key);
                out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            out
        });
    }
}

/// Where each entry's encoding is in a record, or `None` if it is damaged or another
/// binary's.
fn index(bytes: &[u8]) -> Option<HashMap<RecipeKey, Range<usize>>> {
    let (count, mut rest) = crate::cache_io::record_entries(bytes, MAGIC)?;
    let mut out = HashMap::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let (key, after) = rest.split_at_checked(32)?;
        let (len, after) = after.split_at_checked(4)?;
        let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
        let start = bytes.len() - after.len();
        after.get(..len)?;
        out.insert(key.try_into().ok()?, start..start + len);
        rest = &after[len..];
    }
    rest.is_empty().then_some(out)
}

/// The digest of what every step's recipe shares: the toolchain, and each package's
/// name, identity and root (package paths are written with the names, sources found under
/// the roots).
pub(super) fn context(e: &Emitter<'_>) -> [u8; 32] {
    let mut f = Feed(blake3::Hasher::new());
    f.0.update(b"cmod-recipe-context-v1\0");
    f.hash(&e.input.toolchain.identity);
    f.str(&e.input.toolchain.version);
    for p in &e.input.packages.packages {
        f.str(&p.name);
        f.str(&p.ident());
        f.bytes(p.root.as_os_str().as_bytes());
    }
    *f.0.finalize().as_bytes()
}

impl Emitter<'_> {
    /// The recipe key of unit `u`'s step of `kind` (a BMI in `dialect`, or its object), or
    /// `None` if the unit does not take part (see the module documentation). Emits the
    /// BMIs the step reads first, as making the step would.
    pub(super) fn recipe_key(
        &mut self,
        kind: StepKind,
        u: UnitId,
        dialect: &[String],
    ) -> Result<Option<RecipeKey>, EvalError> {
        let graph = self.input.graph;
        let unit = &graph.units[u];
        let Origin::Package(package, owner) = unit.origin else {
            return Ok(None);
        };
        if unit.flags.pch.is_some() || !self.input.header_units.of(u).is_empty() {
            return Ok(None);
        }
        let mut read = Vec::with_capacity(graph.edges[u].len() + 1);
        if kind == StepKind::Object && unit.kind.is_importable() {
            read.push(self.bmi(u, dialect)?);
        } else {
            for &v in &graph.edges[u] {
                read.push(self.bmi(v, dialect)?);
            }
        }
        if read
            .iter()
            .any(|d| self.header_unit_closures.contains_key(d))
        {
            return Ok(None);
        }
        let flags = self.flags_digest(&unit.flags);
        let mut f = Feed(blake3::Hasher::new());
        f.bytes(&self.recipes.context);
        f.tag(kind_tag(kind));
        f.0.update(&(dialect.len() as u64).to_le_bytes());
        dialect.iter().for_each(|d| f.str(d));
        f.bytes(&flags);
        let (owner_tag, owner_index) = match owner {
            Owner::Lib(i) => (0, i),
            Owner::Bin(i) => (1, i),
            Owner::Test(i) => (2, i),
        };
        for n in [package, owner_index] {
            f.0.update(&(n as u64).to_le_bytes());
        }
        f.tag(owner_tag);
        f.tag(unit.kind as u8);
        f.str(&unit.rel);
        f.bytes(unit.abs.as_os_str().as_bytes());
        f.hash(&unit.hash);
        f.str(unit.module.as_deref().unwrap_or("\0"));
        f.0.update(&(unit.headers.len() as u64).to_le_bytes());
        for h in &unit.headers {
            f.str(h.package.as_deref().unwrap_or("\0"));
            f.str(&h.rel);
            f.hash(&h.hash);
        }
        f.0.update(&(unit.system.len() as u64).to_le_bytes());
        for h in &unit.system {
            f.str(&h.path);
            f.hash(&h.hash);
        }
        f.0.update(&(read.len() as u64).to_le_bytes());
        for d in &read {
            f.path(d);
        }
        for &v in &graph.edges[u] {
            f.str(graph.units[v].module.as_deref().unwrap_or("\0"));
        }
        Ok(Some(*f.0.finalize().as_bytes()))
    }

    /// The digest of `flags`, everything in them (computed once per set of flags).
    fn flags_digest(&mut self, flags: &Arc<UnitFlags>) -> [u8; 32] {
        *self
            .recipes
            .flag_digests
            .entry(Arc::as_ptr(flags))
            .or_insert_with(|| *blake3::hash(format!("{flags:?}").as_bytes()).as_bytes())
    }

    /// The path of the step recorded under `key` (if any); its derivation and the sources
    /// it reads join this emission in [`Self::add_reused_bodies`].
    pub(super) fn reuse_recipe(&mut self, key: Option<RecipeKey>) -> Option<StorePath> {
        self.recipes.take(&key?)
    }

    /// Add the derivations and sources of every step taken from the record; `false` if
    /// the record is damaged (the emission must then be made without it).
    pub(super) fn add_reused_bodies(&mut self) -> bool {
        let Some(bodies) = self.recipes.bodies() else {
            return false;
        };
        for (path, drv, sources) in bodies {
            for s in sources {
                self.register_source(s);
            }
            self.out.derivations.insert(path, drv);
        }
        true
    }

    /// Record the step just made at `path` under `key` (if any).
    pub(super) fn remember_recipe(&mut self, key: Option<RecipeKey>, path: &StorePath) {
        let (Some(key), Some(drv)) = (key, self.out.derivations.get(path)) else {
            return;
        };
        let sources: Vec<SourceFile> = drv
            .inputs
            .iter()
            .filter_map(|i| match &i.from {
                InputFrom::Path { path, .. } => self.source_index.get(path),
                InputFrom::Drv { .. } => None,
            })
            .map(|&n| self.out.sources[n].clone())
            .collect();
        self.recipes.note(key, path, drv, &sources);
    }

    /// Add `source` to the files to put in the store, unless it is there already.
    pub(super) fn register_source(&mut self, source: SourceFile) {
        if !self.source_index.contains_key(&source.path) {
            self.source_index
                .insert(source.path.clone(), self.out.sources.len());
            self.out.sources.push(source);
        }
    }
}
