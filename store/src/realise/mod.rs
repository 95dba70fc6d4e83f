//! Realisation: the scheduler that turns derivations into valid outputs.
//!
//! For each needed derivation, in dependency order and in parallel (`jobs` workers):
//! 1. **resolve** it: replace each input derivation by the store path of its realised
//!    output;
//! 2. compute the **key** of the resolved derivation (with the sandbox mode);
//! 3. if the build trace has outputs for the key, they are **fresh**: nothing runs;
//! 4. otherwise **build** it (under a per-key lock, so concurrent processes never build
//!    the same thing twice) and record the outputs in the trace.
//!
//! Because outputs are content-addressed, an input rebuilt to identical bytes resolves
//! its consumers to the same keys, and nothing downstream runs (early cutoff).
//! Ready derivations are started longest-remaining-chain first. After the first failure
//! no new build starts; running ones finish, and dependents are reported as skipped.

pub mod background;
mod build;
pub mod events;
mod executor;
mod graph;
mod modules;
mod reuse;
mod schedule;
mod sources;
mod speculate;
mod step_cache;

/// Test helpers shared with the other modules of the store.
#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) use super::tests::{absent_toolchain, compile_of, step, test_env, two_jobs};
}

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use cmod_schema::derivation::Derivation;
use cmod_schema::{ContentHash, PathKind, StorePath};
use rayon::prelude::*;

use build::Realised;
pub use build::{BuildEnv, BuildError, Difference};
pub use events::{Event, Reporter, Silent};
pub use executor::{ExecError, Executed, Executor, Job, LocalSandbox};
pub use graph::Needed;
pub use modules::{module_closure, module_map, ClosureError, ModuleFile};
pub use reuse::{Outputs, Previous};
use sources::SourcesAdded;
pub use speculate::Speculation;
pub use step_cache::{CachedStep, StepCache, StepCacheError, StepCacheUse};

/// Finding a derivation by its path: the evaluator's sorted map, or an [`Index`] of it
/// built once for the passes of one realisation (thousands of lookups each).
pub trait DrvLookup: Sync {
    /// The derivation at `path`, if known.
    fn drv(&self, path: &StorePath) -> Option<&Derivation>;
    /// How many derivations there are (a capacity hint: a realisation usually needs
    /// nearly all of them).
    fn count(&self) -> usize;
}

impl DrvLookup for BTreeMap<StorePath, Derivation> {
    fn drv(&self, path: &StorePath) -> Option<&Derivation> {
        self.get(path)
    }
    fn count(&self) -> usize {
        self.len()
    }
}

/// Derivations by path, hashed by their digests.
pub type Index<'a> = cmod_schema::store_path::PathMap<&'a StorePath, &'a Derivation>;

impl DrvLookup for Index<'_> {
    fn drv(&self, path: &StorePath) -> Option<&Derivation> {
        self.get(path).copied()
    }
    fn count(&self) -> usize {
        self.len()
    }
}

use crate::error::StoreError;
use crate::layout::Store;

/// Options of one realisation.
#[derive(Debug, Clone)]
pub struct RealiseOptions<'a> {
    /// How many builders may run at once.
    pub jobs: usize,
    /// Rebuild derivations whose outputs are already in the store and compare the
    /// results bit for bit (`--check`).
    pub check: bool,
    /// User files to add to the store as source paths before anything is built (host
    /// path, store path, the hash the evaluator saw): see [`Store::add_sources`].
    pub sources: &'a [(&'a Path, &'a StorePath, &'a ContentHash)],
    /// What the previous realisation of the same targets produced, checked: the
    /// derivations it realised are taken as they are (see `reuse`).
    pub previous: Option<&'a Previous>,
    /// Where outputs may be substituted from (never with `check`); `None` substitutes
    /// nothing. Its signing keys are in [`BuildEnv::signing`].
    pub sharing: Option<&'a crate::substitute::Sharing>,
}

/// What a realisation produced.
#[derive(Debug, Default)]
pub struct Realisation {
    /// Outputs of every needed derivation.
    pub outputs: BTreeMap<StorePath, BTreeMap<String, StorePath>>,
    /// Derivations built in this run.
    pub built: Vec<StorePath>,
    /// Derivations found fresh.
    pub fresh: usize,
    /// Derivations whose outputs were substituted.
    pub substituted: Vec<StorePath>,
    /// Derivations rebuilt and compared (`--check`).
    pub checked: usize,
    /// Outputs whose rebuild differed from the stored copy.
    pub differences: Vec<(StorePath, Difference)>,
    /// Failures (empty on success).
    pub failures: Vec<(StorePath, BuildError)>,
    /// Derivations not attempted because an input failed.
    pub skipped: Vec<StorePath>,
}

impl Realisation {
    /// Whether no derivation failed.
    pub fn success(&self) -> bool {
        self.failures.is_empty()
    }

    /// Every store path the realisation used or produced: outputs and the `.drv` files
    /// and source paths of every needed derivation (the keep list of its out-link).
    pub fn closure(&self, drvs: &BTreeMap<StorePath, Derivation>) -> BTreeSet<StorePath> {
        let mut out = BTreeSet::new();
        for (d, outs) in &self.outputs {
            out.insert(d.clone());
            out.extend(outs.values().cloned());
            if let Some(drv) = drvs.get(d) {
                out.extend(drv.input_paths().into_iter().cloned());
            }
        }
        out
    }
}

/// Errors that stop a realisation before it starts.
#[derive(Debug, thiserror::Error)]
pub enum RealiseError {
    /// A derivation needed by another one is not among those given.
    #[error("derivation `{0}` is needed but was not provided")]
    MissingDerivation(StorePath),
    /// A derivation reads itself, through its inputs.
    #[error("derivation `{0}` depends on itself")]
    Cycle(StorePath),
    /// A `.drv` path does not match its derivation's contents.
    #[error("derivation `{drv}` is not canonical: its contents hash to `{found}`")]
    DrvMismatch {
        /// The `.drv` path it was given under.
        drv: StorePath,
        /// The path its contents hash to.
        found: StorePath,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A substituter offered something that failed verification.
    #[error(transparent)]
    Substitution(#[from] crate::transfer::CopyError),
}

/// Reports a substitution walk through the realisation's reporter.
struct Observe<'a>(&'a dyn Reporter);

impl crate::substitute::Observer for Observe<'_> {
    fn warn(&self, message: &str) {
        self.0.event(&Event::Warning { message });
    }
    fn substituted(&self, s: &crate::substitute::Substituted<'_>) {
        self.0.event(&Event::Substituted {
            drv: s.drv,
            name: s.name,
            outputs: s.outputs,
            from: s.from,
        });
    }
}

/// The derivations needed for `targets`, in topological order (inputs first).
pub fn needed(
    drvs: &impl DrvLookup,
    targets: &[StorePath],
) -> Result<Vec<StorePath>, RealiseError> {
    Ok(Needed::of(drvs, targets)?.order)
}

/// The sources among `all` that the derivations of `order` read.
fn sources_read<'a>(
    drvs: &BTreeMap<StorePath, Derivation>,
    order: &[StorePath],
    all: &[(&'a Path, &'a StorePath, &'a ContentHash)],
) -> Vec<(&'a Path, &'a StorePath, &'a ContentHash)> {
    let read: HashSet<&StorePath> = order.iter().flat_map(|d| drvs[d].input_paths()).collect();
    all.iter()
        .filter(|(_, p, _)| read.contains(p))
        .copied()
        .collect()
}

/// Write the `.drv` files of `order` (topologically sorted) into the store, skipping
/// those already valid (found in one pass on this thread, which runs beside the build
/// and must not take the cores the first steps need: a valid path's references are valid
/// too). The others are written level by level, in parallel within a level, so a
/// derivation becomes valid only after every derivation it references.
pub fn write_derivations(
    store: &Store,
    drvs: &BTreeMap<StorePath, Derivation>,
    order: &[StorePath],
) -> Result<(), RealiseError> {
    let check = store.validity_check();
    let valid: Vec<bool> = order.iter().map(|d| check.is_valid(d)).collect();
    let missing = order.iter().zip(valid).filter(|(_, v)| !v).map(|(d, _)| d);
    let mut depth: HashMap<&StorePath, usize> = HashMap::new();
    let mut levels: Vec<Vec<&StorePath>> = Vec::new();
    for d in missing {
        let level = drvs[d]
            .input_drvs()
            .iter()
            .filter_map(|i| depth.get(*i))
            .map(|l| l + 1)
            .max()
            .unwrap_or(0);
        depth.insert(d, level);
        if levels.len() <= level {
            levels.resize_with(level + 1, Vec::new);
        }
        levels[level].push(d);
    }
    for level in levels {
        level
            .par_iter()
            .try_for_each(|d| write_derivation(store, d, &drvs[*d]))?;
    }
    Ok(())
}

fn write_derivation(store: &Store, d: &StorePath, drv: &Derivation) -> Result<(), RealiseError> {
    if store.is_valid(d) {
        return Ok(());
    }
    let bytes = drv
        .canonical_bytes()
        .map_err(|e| StoreError::CorruptMetadata {
            path: d.to_string(),
            reason: e.to_string(),
        })?;
    let refs: BTreeSet<StorePath> = drv
        .input_drvs()
        .into_iter()
        .chain(drv.input_paths())
        .cloned()
        .collect();
    let written = store.add_bytes(PathKind::Drv, d.name(), &bytes, &refs)?;
    if written != *d {
        return Err(RealiseError::DrvMismatch {
            drv: d.clone(),
            found: written,
        });
    }
    Ok(())
}

/// What [`dry_run`] predicts.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Derivations that will be built (an upper bound: early cutoff may skip some).
    pub to_build: Vec<StorePath>,
    /// How many derivations already have their outputs in the store.
    pub fresh: usize,
}

/// Predict a realisation without building anything.
pub fn dry_run(
    store: &Store,
    drvs: &BTreeMap<StorePath, Derivation>,
    targets: &[StorePath],
    sandbox: &str,
) -> Result<Plan, RealiseError> {
    let order = needed(drvs, targets)?;
    let mut known: HashMap<StorePath, BTreeMap<String, StorePath>> = HashMap::new();
    let mut plan = Plan::default();
    for d in order {
        let drv = &drvs[&d];
        let resolved = drv.resolve(|i, o| known.get(i).and_then(|m| m.get(o)).cloned());
        let hit = resolved
            .ok()
            .and_then(|r| r.trace_key(sandbox).ok())
            .and_then(|k| store.trace_lookup(&k));
        match hit {
            Some(entry) => {
                plan.fresh += 1;
                known.insert(d, entry.outputs);
            }
            None => plan.to_build.push(d),
        }
    }
    Ok(plan)
}

/// Realise `targets` (derivation paths present in `drvs`).
pub fn realise(
    store: &Store,
    drvs: &BTreeMap<StorePath, Derivation>,
    targets: &[StorePath],
    env: &BuildEnv<'_>,
    opts: &RealiseOptions,
    reporter: &dyn Reporter,
) -> Result<Realisation, RealiseError> {
    let _gc = store.gc_guard()?;
    // With a step cache, more workers than -j wait on it; builders still run -j at once.
    let throttled = env
        .step_cache
        .map(|_| executor::Throttled::new(env.executor, opts.jobs));
    let fetching_env;
    let env = match &throttled {
        Some(t) => {
            fetching_env = BuildEnv {
                executor: t,
                ..env.clone()
            };
            &fetching_env
        }
        None => env,
    };
    // Build directories and logs of killed runs (their processes are gone).
    store.clean_temporaries()?;
    let index: Index<'_> = drvs.iter().collect();
    let needed = Needed::of(&index, targets)?;
    let order = &needed.order;
    reporter.event(&Event::Planned { total: order.len() });
    let reused = match opts.previous.filter(|_| !opts.check) {
        Some(previous) => reuse::reusable(&needed, previous),
        None => Outputs::new(),
    };

    // Sources are added while substituters are asked for the outputs (substitution
    // works from the derivations in memory) and while the first steps are prepared (a
    // builder runs only once they are in: `SourcesAdded`). The `.drv` files are written
    // beside the whole build (nothing a step does needs them) and waited for at the end:
    // an edit's first compile waits for neither write.
    let fresh_order: Vec<StorePath> = order
        .iter()
        .filter(|d| !reused.contains_key(*d))
        .cloned()
        .collect();
    let sources = SourcesAdded::default();
    std::thread::scope(|scope| {
        // All of them: a reused step's `.drv` was not checked (see `reuse::Previous`).
        let drv_writer = scope.spawn(|| {
            background::lower_this_threads_priority();
            write_derivations(store, drvs, order)
        });
        let sources_writer = scope.spawn(|| -> Result<(), RealiseError> {
            // Reused derivations are valid, and so are their references (sources).
            let read = sources_read(drvs, &fresh_order, opts.sources);
            Ok(sources.add(|| store.add_sources(&read))?)
        });
        // Substitute what the configured substituters have (never for --check; with
        // none, without copying the reused steps' outputs for the walk).
        let asked = opts
            .sharing
            .filter(|cfg| !opts.check && !cfg.substituters.is_empty());
        let substituted = match asked {
            Some(cfg) => crate::substitute::walk(
                store,
                drvs,
                order,
                reused.clone(),
                env.sandbox.as_str(),
                cfg,
                &Observe(reporter),
            )
            .map_err(RealiseError::from),
            None => Ok(HashMap::new()),
        };
        let join = |h: std::thread::ScopedJoinHandle<'_, Result<(), RealiseError>>| {
            h.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        };
        let realisation = substituted.and_then(|substituted| {
            let known = Known {
                reused,
                substituted,
            };
            let scheduler = schedule::Scheduler {
                store,
                drvs: &index,
                env,
                opts,
                reporter,
                keep_views: fresh_order.len() <= KEEP_VIEWS_UP_TO,
                sources: &sources,
            };
            scheduler.run(&needed, known)
        });
        // The sources and derivations are written whatever happened. A failure to add
        // the sources comes first (the steps that waited for them failed of it); a
        // failure to write the derivations fails the realisation (its out-links would
        // keep them).
        let added = join(sources_writer);
        let written = join(drv_writer);
        added?;
        let realisation = realisation?;
        written?;
        if let Some(speculation) = env.speculation {
            speculation.remember(&index, &realisation.outputs);
        }
        Ok(realisation)
    })
}

/// Outputs known before scheduling: reused from the previous realisation, and
/// substituted.
struct Known {
    reused: Outputs,
    substituted: Outputs,
}

/// Outputs recorded under `key` that are registered but whose contents are gone (deleted
/// by hand, lost): say so, since they are rebuilt rather than found fresh.
fn warn_damaged_outputs(store: &Store, key: &ContentHash, reporter: &dyn Reporter) {
    let Some(entry) = store.trace_entry(key) else {
        return;
    };
    for p in entry.outputs.values().filter(|p| store.is_damaged(p)) {
        let message = format!(
            "`{}` is registered but its contents are missing: rebuilding it (`cmod store verify` checks the rest of the store)",
            store.path_of(p).display()
        );
        reporter.event(&Event::Warning { message: &message });
    }
}

/// One step to realise: its derivation and the module closure its build lays out.
pub(crate) struct Step<'a> {
    pub drv_path: &'a StorePath,
    pub drv: &'a Derivation,
    pub modules: &'a [ModuleFile],
    /// Whether the realisation's sources are in the store, waited for before a builder
    /// runs.
    pub sources: &'a SourcesAdded,
    /// Keep the step's sandbox view between runs (see [`KEEP_VIEWS_UP_TO`]).
    pub keep_view: bool,
}

/// A realisation that builds at most this many steps keeps their sandbox views of the
/// store (`views/`, see `cmod_sandbox`'s kept views): an edit, whose few steps are then
/// laid out by difference next time. A larger one (a cold build) does not: a view holds
/// an entry per input, and keeping every step's on a deep graph would store a number of
/// entries that grows with steps × closure (millions at 3,001 units).
pub const KEEP_VIEWS_UP_TO: usize = 16;

fn realise_one(
    store: &Store,
    step: &Step<'_>,
    inputs: &HashMap<StorePath, BTreeMap<String, StorePath>>,
    env: &BuildEnv<'_>,
    opts: &RealiseOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<(Realised, ContentHash), BuildError> {
    let (drv_path, drv, check) = (step.drv_path, step.drv, opts.check);
    let name = drv.name.clone();
    let st = |e: cmod_schema::derivation::DerivationError| BuildError::Store {
        name: name.clone(),
        source: StoreError::CorruptMetadata {
            path: drv_path.to_string(),
            reason: e.to_string(),
        },
    };
    let resolved = drv
        .resolve(|d, o| inputs.get(d).and_then(|m| m.get(o)).cloned())
        .map_err(st)?;
    let key = resolved.trace_key(env.sandbox.as_str()).map_err(st)?;
    let found = store.trace_lookup(&key);
    if found.is_none() {
        warn_damaged_outputs(store, &key, reporter);
    }
    if let (Some(entry), false) = (&found, check) {
        return Ok((Realised::Fresh(entry.outputs.clone()), key));
    }
    if found.is_none() && !check {
        // Only on explicit request: outputs another sandbox mode built.
        for mode in &env.accept_from {
            let other = resolved.trace_key(mode.as_str()).map_err(st)?;
            if let Some(entry) = store.trace_lookup(&other) {
                return Ok((Realised::Fresh(entry.outputs), other));
            }
        }
    }
    if !step.sources.wait() {
        return Err(BuildError::SourcesUnavailable { name });
    }
    // A build reports its start itself, once it knows it builds (not found meanwhile,
    // nor taken from a step cache).
    let realised = match found {
        Some(entry) => {
            reporter.event(&Event::Started {
                drv: drv_path,
                name: &drv.name,
                derivation: drv,
            });
            build::check(store, step, &resolved, &key, entry.outputs, env)?
        }
        None => build::build(store, step, &resolved, &key, env, reporter)?,
    };
    // The next edit of the same file can start this step's build ahead.
    if let (Realised::Built { speculative, .. }, Some(s)) = (&realised, env.speculation) {
        s.record(step, &resolved, env, opts.sources, *speculative);
    }
    Ok((realised, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmod_sandbox::Mode;
    use cmod_schema::derivation::{
        Input, InputFrom, InputRole, Output, StepKind, Tool, DERIVATION_VERSION,
    };
    use cmod_schema::toolchain::ToolchainInfo;

    /// An object step reading the objects of `deps` (shared with the other tests of
    /// the realiser).
    pub(crate) fn step(name: &str, deps: &[&StorePath]) -> Derivation {
        let mut inputs: Vec<Input> = deps
            .iter()
            .enumerate()
            .map(|(i, d)| Input {
                at: format!("in/{i}.o"),
                from: InputFrom::Drv {
                    drv: (*d).clone(),
                    output: "obj".into(),
                },
                role: InputRole::Object,
            })
            .collect();
        inputs.sort();
        Derivation {
            args: vec![name.into()],
            env: BTreeMap::new(),
            host: BTreeMap::new(),
            inputs,
            kind: StepKind::Object,
            name: format!("{name}.o"),
            outputs: BTreeMap::from([(
                "obj".to_string(),
                Output {
                    at: "out/x.o".into(),
                    module: None,
                    name: format!("{name}.o"),
                },
            )]),
            tool: Tool::Cxx,
            toolchain: ContentHash::of_file(false, b"toolchain"),
            version: DERIVATION_VERSION,
        }
    }

    /// Step `a` compiling the source store path `source`, which it reads at `src/a.cpp`.
    pub(crate) fn compile_of(source: &StorePath) -> Derivation {
        let mut drv = step("a", &[]);
        drv.inputs.push(Input {
            at: "src/a.cpp".into(),
            from: InputFrom::Path {
                path: source.clone(),
                sub: None,
            },
            role: InputRole::Source,
        });
        drv.inputs.sort();
        drv
    }

    /// Two workers; nothing checked, added, reused or substituted.
    pub(crate) fn two_jobs() -> RealiseOptions<'static> {
        RealiseOptions {
            jobs: 2,
            check: false,
            sources: &[],
            previous: None,
            sharing: None,
        }
    }

    /// The environment of a test realisation: `toolchain`, no sandbox, default limits,
    /// outputs of no other mode accepted, nothing signed, `executor`, no step cache.
    pub(crate) fn test_env<'a>(
        toolchain: &'a ToolchainInfo,
        executor: &'a dyn Executor,
    ) -> BuildEnv<'a> {
        BuildEnv::plain(toolchain, Mode::Off, Default::default(), executor)
    }

    /// A toolchain description with `identity` whose tools do not exist (nothing may run
    /// it locally).
    pub(crate) fn absent_toolchain(identity: ContentHash) -> ToolchainInfo {
        serde_json::from_value(serde_json::json!({
            "identity": identity,
            "version": "19.1.7",
            "version_text": "clang version 19.1.7",
            "stdlib": "libstdc++",
            "cxx": "/nonexistent/clang++",
            "scan_deps": "/nonexistent/clang-scan-deps",
            "ar": "/nonexistent/llvm-ar",
            "resource_dir": "/nonexistent",
            "closure": [],
        }))
        .unwrap()
    }

    /// A diamond plus a chain, written level by level: every `.drv` is valid afterwards,
    /// records its input derivations as references, and a second write is a no-op.
    #[test]
    fn derivations_are_written_with_their_references() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let mut drvs = BTreeMap::new();
        let mut add = |d: Derivation| {
            let p = d.drv_path().unwrap();
            drvs.insert(p.clone(), d);
            p
        };
        let a = add(step("a", &[]));
        let b = add(step("b", &[&a]));
        let c = add(step("c", &[&a]));
        let d = add(step("d", &[&b, &c]));
        let e = add(step("e", &[&d, &a]));
        let order = needed(&drvs, std::slice::from_ref(&e)).unwrap();
        assert_eq!(order.len(), 5);
        write_derivations(&store, &drvs, &order).unwrap();
        for p in &order {
            assert!(store.is_valid(p), "{p} was not written");
            let info = store.path_info(p).unwrap();
            let want: BTreeSet<StorePath> = drvs[p].input_drvs().into_iter().cloned().collect();
            assert_eq!(info.references, want, "references of {p}");
            assert_eq!(
                std::fs::read(store.path_of(p)).unwrap(),
                drvs[p].canonical_bytes().unwrap()
            );
        }
        write_derivations(&store, &drvs, &order).unwrap();
        assert_eq!(store.path_info(&e).unwrap().references.len(), 2);
    }

    /// Panics at the first step it sees start.
    struct PanickingReporter;

    impl Reporter for PanickingReporter {
        fn event(&self, e: &Event<'_>) {
            if let Event::Started { name, .. } = e {
                panic!("reporter bug while starting {name}");
            }
        }
    }

    /// A panic while realising one step is that step's failure: the realisation ends
    /// (with two workers, so the other one must not wait for it for ever).
    #[test]
    fn a_panicking_step_fails_the_realisation_instead_of_hanging_it() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let a = step("a", &[]);
        let b = step("b", &[]);
        let toolchain = absent_toolchain(a.toolchain);
        let env = test_env(&toolchain, &LocalSandbox);
        let targets = vec![a.drv_path().unwrap(), b.drv_path().unwrap()];
        let drvs: BTreeMap<StorePath, Derivation> = targets.iter().cloned().zip([a, b]).collect();
        let opts = two_jobs();
        let r = realise(&store, &drvs, &targets, &env, &opts, &PanickingReporter).unwrap();
        assert!(!r.failures.is_empty());
        for (_, e) in &r.failures {
            assert!(
                matches!(e, BuildError::Panicked { message, .. } if message.contains("reporter bug")),
                "{e}"
            );
        }
    }
}
