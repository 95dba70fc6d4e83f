//! Speculative builds: after an edit, the edited unit's compile starts while the project
//! is still being evaluated.
//!
//! On a large graph, evaluating after a one-line edit (every unit's stamp, the scan
//! results, the module graph, the derivations, the realiser's passes) takes longer than
//! anything else before the compile that edit needs, and that compile is usually of the
//! file edited last time. So when an edit (a realisation of at most
//! [`super::KEEP_VIEWS_UP_TO`] steps to build, or a step reading one of a larger
//! realisation's few edited sources: [`super::sources::EDITED_UP_TO`]) builds a compile
//! step that reads exactly one source file, it records a **recipe** beside the
//! request's input journal: the resolved derivation, which input is the source (and
//! the host file it came from, with its content hash), the module closure, the sandbox
//! mode and the toolchain. The next
//! realisation of the same request, before it evaluates, hashes the recorded host files
//! and, for one that changed, adds it to the store and runs the recipe's builder with
//! the new source in place of the old one, on a thread of its own.
//!
//! Every compile built (a cold build's too) also records a **unit recipe**, without the
//! module closure, which is walked through a table of the request's BMIs instead: the
//! first edit of a file after a large build is built ahead from it (see [`units`]).
//!
//! Nothing a speculative run produces is registered or recorded. When the realiser
//! reaches a step to build, it computes the step's trace key from its own evaluation, as
//! always; only if a speculative run has exactly that key (the same canonical resolved
//! derivation, in the same sandbox mode) and laid out the module closure the realiser
//! lays out does it take that run in place of running the builder, and registers it as
//! its own build. Equal keys mean the same argument vector, inputs, toolchain identity
//! and host files, and with the same closure the run is the build the realiser would
//! have made. A recipe that
//! no longer fits (the edit changed the unit's imports or flags, a BMI it reads was
//! rebuilt, the toolchain changed) gives another key: its run is discarded, and the step
//! is built as usual. A builder that fails is taken too (its key matches: the same
//! compile fails the same way), so an edit that breaks the build reports its error
//! sooner.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use serde::{Deserialize, Serialize};

use cmod_sandbox::{Limits, Mode};
use cmod_schema::derivation::{Derivation, InputFrom, InputRole, StepKind};
use cmod_schema::toolchain::ToolchainInfo;
use cmod_schema::{ContentHash, PathKind, StorePath};

use super::build::{run_builder, BuildEnv, BuildError, Run};
use super::executor::Executor;
use super::modules::ModuleFile;
use super::sources::SourcesAdded;
use super::{DrvLookup, Step};
use crate::layout::Store;

mod units;

/// The format of a recipe; a recipe of another version is not read.
const RECIPE_VERSION: u32 = 1;

/// Recipes kept per request (the most recently recorded).
const KEEP: usize = 16;

/// Speculative builds started per realisation, one after the other on one thread: an
/// edit changes a file or two, and each takes a core the evaluation also wants.
const MOST_AHEAD: usize = 2;

/// What a speculative build of one step needs (see the module documentation).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recipe {
    version: u32,
    /// The source file on the host.
    host: PathBuf,
    /// The content hash of the source when the step was built.
    source_hash: ContentHash,
    /// Where the step reads its source (the input's `at`).
    source_at: String,
    /// The derivation as evaluated (it names the step in logs).
    drv_path: StorePath,
    /// The sandbox mode it was built in.
    sandbox: String,
    /// The derivation with every input resolved.
    resolved: Derivation,
    /// Every BMI it read, at its stable name.
    modules: Vec<ModuleFile>,
    /// The toolchain it was built with.
    toolchain: ToolchainInfo,
}

/// One speculative run, while it runs and once it has ended.
enum Slot {
    Running,
    Ended(Result<Run, BuildError>),
}

#[derive(Default)]
struct State {
    /// Whether every speculative run has been announced (its key is in `runs`).
    planned: bool,
    /// The speculative runs, by trace key.
    runs: HashMap<ContentHash, Slot>,
    /// The recipes each run was made from (their head files, as read), by trace key,
    /// until the run is taken.
    heads: HashMap<ContentHash, Vec<Head>>,
    /// The sources the runs added to the store (new to it: edited files, which the
    /// realisation then finds there already).
    added: Vec<StorePath>,
    /// The closure each run laid out, by trace key: a run is taken only with the
    /// step's own.
    closures: HashMap<ContentHash, Vec<ModuleFile>>,
    /// The unit recipes recorded in this realisation (host file, id), for the stamp
    /// index.
    recorded: Vec<(PathBuf, String)>,
    /// The stamp index's host files found gone (see `units::Changed`).
    gone: Vec<PathBuf>,
}

/// The speculative builds of one realisation, and where its recipes are recorded.
pub struct Speculation {
    /// The request's recipes.
    dir: PathBuf,
    state: Mutex<State>,
    changed: Condvar,
    /// The realisation's sources by store path (host file, content hash), indexed at
    /// the first recording.
    hosts: OnceLock<HashMap<StorePath, (PathBuf, ContentHash)>>,
}

impl std::fmt::Debug for Speculation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speculation")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Speculation {
    /// Speculation for the request whose recipes are kept in `dir`. It builds nothing
    /// until [`Speculation::start`]; the steps it is given to record are recorded.
    pub fn new(dir: PathBuf) -> Arc<Speculation> {
        Arc::new(Speculation {
            dir,
            state: Mutex::new(State {
                planned: true,
                ..State::default()
            }),
            changed: Condvar::new(),
            hosts: OnceLock::new(),
        })
    }

    /// Build ahead, on a thread of its own, every recorded step whose source changed
    /// (at most [`MOST_AHEAD`]), with `limits`, by `executor` (the one the realisation
    /// will use: [`LocalSandbox`](super::LocalSandbox)).
    pub fn start(self: &Arc<Self>, store: &Store, limits: Limits, executor: &'static dyn Executor) {
        self.lock().planned = false;
        let (me, store) = (Arc::clone(self), store.clone());
        let spawned = std::thread::Builder::new()
            .name("cmod-speculate".into())
            .spawn(move || me.run(&store, limits, executor));
        if spawned.is_err() {
            self.end_planning(&mut self.lock());
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The thread: announce every run, then build them one after the other. Whatever
    /// happens (a panic included), planning ends and no run stays `Running`.
    fn run(&self, store: &Store, limits: Limits, executor: &dyn Executor) {
        struct Ended<'a>(&'a Speculation);
        impl Drop for Ended<'_> {
            fn drop(&mut self) {
                let mut st = self.0.lock();
                st.runs.retain(|_, slot| !matches!(slot, Slot::Running));
                self.0.end_planning(&mut st);
            }
        }
        let _ended = Ended(self);
        // Held while building: GC must not delete the inputs a run reads.
        let Ok(_gc) = store.gc_guard() else {
            return;
        };
        let ahead = self.plan(store);
        {
            let mut st = self.lock();
            for a in &ahead {
                st.runs.insert(a.key, Slot::Running);
                let heads = std::iter::once(&a.head).chain(&a.also).cloned();
                st.heads.insert(a.key, heads.collect());
                st.closures.insert(a.key, a.recipe.modules.clone());
            }
            self.end_planning(&mut st);
        }
        for a in ahead {
            let (path, hash) = &a.source;
            // Under the lock, so a realiser that finds the source in the store already
            // (and records after its build) sees it among `added`.
            let added = {
                let mut st = self.lock();
                let added = store.add_source(&a.recipe.host, path, hash);
                if let Ok(true) = added {
                    st.added.push(path.clone());
                }
                added
            };
            let ended = added.ok().and_then(|_| a.build(store, limits, executor));
            let mut st = self.lock();
            match ended {
                Some(result) => st.runs.insert(a.key, Slot::Ended(result)),
                None => st.runs.remove(&a.key),
            };
            self.changed.notify_all();
        }
    }

    /// The steps to build ahead: those of the recent recipes whose source changed, or
    /// else (the first edit of a file since its step was built) those of the unit
    /// recipes, their closures walked through the module table; each step once and none
    /// whose key the store already has; at most [`MOST_AHEAD`]. The edit loop (a file
    /// edited again) reads no more than its few recent recipes.
    fn plan(&self, store: &Store) -> Vec<Ahead> {
        let mut ahead: Vec<Ahead> = Vec::new();
        let mut table: Option<Option<units::ModuleTable>> = None;
        let recent = changed_recipes(&self.dir);
        let changed = match recent.is_empty() {
            true => units::changed(&self.dir),
            false => units::Changed::default(),
        };
        self.lock().gone = changed.gone;
        let recent = recent.into_iter().map(|c| (c, false));
        let unit = changed.recipes.into_iter().map(|c| (c, true));
        for ((head, mut recipe, hash), unit) in recent.chain(unit) {
            if ahead.len() == MOST_AHEAD {
                break;
            }
            if unit {
                let table = table.get_or_insert_with(|| units::ModuleTable::load(&self.dir));
                let Some(modules) = table.as_ref().and_then(|t| t.closure(&recipe.resolved)) else {
                    continue;
                };
                recipe.modules = modules;
            }
            let twin = (!unit)
                .then(|| units::head_of(&self.dir, &recipe))
                .flatten();
            let Some(mut a) = Ahead::of(head, recipe, hash) else {
                continue;
            };
            // The step's unit recipe goes with its recent one if the run is not taken.
            a.also.extend(twin);
            match ahead.iter_mut().find(|b| b.key == a.key) {
                // Forgotten with it if its run is not taken.
                Some(b) => b.also.push(a.head),
                None if store.trace_lookup(&a.key).is_none() => ahead.push(a),
                None => {}
            }
        }
        ahead
    }

    fn end_planning(&self, st: &mut State) {
        st.planned = true;
        self.changed.notify_all();
    }

    /// The speculative run of the step keyed `key` that laid out `modules` (the step's
    /// closure), once it has ended (waited for), if there is one. A run under the key
    /// with another closure (a module table that did not fit) is discarded.
    pub(crate) fn take(
        &self,
        key: &ContentHash,
        modules: &[ModuleFile],
    ) -> Option<Result<Run, BuildError>> {
        let st = self.lock();
        let mut st = self
            .changed
            .wait_while(st, |s| {
                !s.planned || matches!(s.runs.get(key), Some(Slot::Running))
            })
            .unwrap_or_else(|e| e.into_inner());
        let slot = st.runs.remove(key)?;
        st.heads.remove(key);
        let fits = st.closures.remove(key).is_some_and(|c| c == modules);
        match slot {
            Slot::Ended(Ok(run)) if !fits => {
                run.discard();
                None
            }
            Slot::Ended(result) if fits => Some(result),
            Slot::Ended(_) | Slot::Running => None,
        }
    }

    /// After a realisation that succeeded: the recipes whose runs it did not take (or
    /// that could not run) no longer fit their step, and would be built ahead again at
    /// every realisation, so they are forgotten; the step's next build records a new one.
    pub fn finish(&self) {
        let st = self.lock();
        for head in st.heads.values().flatten() {
            // Unless the step was built meanwhile, and its recipe recorded again.
            if std::fs::read_to_string(&head.file).is_ok_and(|t| t == head.text) {
                let _ = std::fs::remove_file(&head.file);
                let _ = std::fs::remove_file(head.file.with_extension("json"));
            }
        }
    }

    /// Record the recipe of `step`, just built as `resolved` in `env` (`ahead`: by a
    /// speculative run), if it is a compile that reads exactly one source file (found in
    /// `sources`: host file, store path, content hash) and its realisation is an edit:
    /// it builds few steps ([`KEEP_VIEWS_UP_TO`](super::KEEP_VIEWS_UP_TO)), or the file
    /// is one of its few edited sources (an edited interface rebuilds much; a file a
    /// run ahead added counts), or it was built ahead. Best effort: a recipe that
    /// cannot be written is not needed.
    pub(crate) fn record(
        &self,
        step: &Step<'_>,
        resolved: &Derivation,
        env: &BuildEnv<'_>,
        sources: &[(&Path, &StorePath, &ContentHash)],
        ahead: bool,
    ) {
        if !matches!(resolved.kind, StepKind::Bmi | StepKind::Object) {
            return;
        }
        let mut read = resolved
            .inputs
            .iter()
            .filter(|i| i.role == InputRole::Source);
        let (Some(input), None) = (read.next(), read.next()) else {
            return;
        };
        let InputFrom::Path { path, sub: None } = &input.from else {
            return;
        };
        let Some((host, hash)) = self.host_of(sources, path) else {
            return;
        };
        let mut recipe = Recipe {
            version: RECIPE_VERSION,
            host,
            source_hash: hash,
            source_at: input.at.clone(),
            drv_path: step.drv_path.clone(),
            sandbox: env.sandbox.as_str().into(),
            resolved: resolved.clone(),
            modules: Vec::new(),
            toolchain: env.toolchain.clone(),
        };
        if let Ok(id) = units::write(&self.dir, &recipe) {
            self.lock().recorded.push((recipe.host.clone(), id));
        }
        let edited = || step.sources.is_edited(path) || self.lock().added.contains(path);
        if step.keep_view || ahead || edited() {
            recipe.modules = step.modules.to_vec();
            let _ = write_recipe(&self.dir, &recipe);
        }
    }

    /// The host file and content hash of the source at `path`, found among `sources`
    /// (the realisation's, the same at every call: indexed at the first).
    fn host_of(
        &self,
        sources: &[(&Path, &StorePath, &ContentHash)],
        path: &StorePath,
    ) -> Option<(PathBuf, ContentHash)> {
        let hosts = self.hosts.get_or_init(|| {
            sources
                .iter()
                .map(|(h, p, c)| ((*p).clone(), (h.to_path_buf(), **c)))
                .collect()
        });
        hosts.get(path).cloned()
    }

    /// After a realisation (its derivations `drvs` and the `outputs` of every step it
    /// realised): note the unit recipes it recorded in the stamp index, and rewrite the
    /// module table if its BMIs are others (see `units`). Best effort, as recording.
    pub(crate) fn remember(
        &self,
        drvs: &impl DrvLookup,
        outputs: &BTreeMap<StorePath, BTreeMap<String, StorePath>>,
    ) {
        let (recorded, gone) = {
            let mut st = self.lock();
            (
                std::mem::take(&mut st.recorded),
                std::mem::take(&mut st.gone),
            )
        };
        let _ = units::index(&self.dir, &recorded, &gone);
        let _ = units::write_table(&self.dir, drvs, outputs);
    }
}

impl Drop for Speculation {
    /// Runs nobody took are discarded with their build directories.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for slot in st.runs.values() {
            if let Slot::Ended(Ok(run)) = slot {
                run.discard();
            }
        }
    }
}

/// A recipe's head file (its source's content hash and host file) and what it held.
#[derive(Debug, Clone)]
struct Head {
    file: PathBuf,
    text: String,
}

/// A step to build ahead: its recipe with the new source in place.
struct Ahead {
    head: Head,
    /// Other recipes of the same step that gave the same run.
    also: Vec<Head>,
    recipe: Recipe,
    mode: Mode,
    resolved: Derivation,
    /// The new source: its store path and content hash.
    source: (StorePath, ContentHash),
    key: ContentHash,
}

impl Ahead {
    /// `recipe` (whose head is `head`) with its source now hashing to `hash`; `None` if
    /// the recipe does not fit together.
    fn of(head: Head, recipe: Recipe, hash: ContentHash) -> Option<Ahead> {
        let mode: Mode = recipe.sandbox.parse().ok()?;
        let mut resolved = recipe.resolved.clone();
        let input = resolved
            .inputs
            .iter_mut()
            .find(|i| i.at == recipe.source_at && i.role == InputRole::Source)?;
        let InputFrom::Path { path, sub: None } = &input.from else {
            return None;
        };
        let new = StorePath::compute(PathKind::Source, &hash, path.name(), []).ok()?;
        input.from = InputFrom::Path {
            path: new.clone(),
            sub: None,
        };
        let key = resolved.trace_key(mode.as_str()).ok()?;
        Some(Ahead {
            head,
            also: Vec::new(),
            recipe,
            mode,
            resolved,
            source: (new, hash),
            key,
        })
    }

    /// Run the builder (the new source is in the store): `None` if it could not run (a
    /// failed builder is a result; a sandbox that could not start is not).
    fn build(
        &self,
        store: &Store,
        limits: Limits,
        executor: &dyn Executor,
    ) -> Option<Result<Run, BuildError>> {
        let sources = SourcesAdded::default();
        sources.add(|| Ok::<_, ()>(Vec::new())).ok()?;
        let step = Step {
            drv_path: &self.recipe.drv_path,
            drv: &self.resolved,
            modules: &self.recipe.modules,
            sources: &sources,
            keep_view: true,
        };
        let env = BuildEnv::plain(&self.recipe.toolchain, self.mode, limits, executor);
        match run_builder(store, &self.resolved, &step, &env) {
            Ok(run) => Some(Ok(run)),
            Err(e @ BuildError::Failed { .. }) => Some(Err(e)),
            Err(_) => None,
        }
    }
}

/// The recipes in `dir` whose host file no longer hashes as recorded (each with its head
/// file and the hash now).
fn changed_recipes(dir: &Path) -> Vec<(Head, Recipe, ContentHash)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let file = entry.path();
        if file.extension().is_none_or(|e| e != "head") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Some((recorded, host)) = parse_head(&text) else {
            continue;
        };
        let Ok(bytes) = std::fs::read(&host) else {
            continue;
        };
        let now = ContentHash::of_file(false, &bytes);
        if now == recorded {
            continue;
        }
        let recipe = std::fs::read(file.with_extension("json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Recipe>(&b).ok())
            .filter(|r| r.version == RECIPE_VERSION && r.host == host);
        if let Some(recipe) = recipe {
            out.push((Head { file, text }, recipe, now));
        }
    }
    out
}

/// A recipe's head: the source's recorded content hash and its host file.
fn parse_head(text: &str) -> Option<(ContentHash, PathBuf)> {
    let (hash, host) = text.split_once('\n')?;
    Some((hash.parse().ok()?, PathBuf::from(host)))
}

/// Write `recipe` (its body, then its head, each replaced atomically) and drop the
/// oldest recipes beyond [`KEEP`].
fn write_recipe(dir: &Path, recipe: &Recipe) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let id = recipe_id(recipe);
    let body = serde_json::to_vec(recipe).map_err(std::io::Error::other)?;
    let head = format!(
        "{}\n{}",
        recipe.source_hash.to_text(),
        recipe.host.display()
    );
    replace(&dir.join(format!("{id}.json")), &body)?;
    replace(&dir.join(format!("{id}.head")), head.as_bytes())?;
    forget_oldest(dir)
}

/// A recipe's file name: its host file and step name, hashed.
fn recipe_id(recipe: &Recipe) -> String {
    let mut id = blake3::Hasher::new();
    id.update(recipe.host.as_os_str().as_encoded_bytes());
    id.update(b"\0");
    id.update(recipe.resolved.name.as_bytes());
    id.finalize().to_hex()[..32].to_string()
}

/// Write `path` through a temporary file beside it.
fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Remove the oldest recipes (by their head's time) beyond [`KEEP`].
fn forget_oldest(dir: &Path) -> std::io::Result<()> {
    let mut heads: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "head"))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    if heads.len() <= KEEP {
        return Ok(());
    }
    heads.sort();
    for (_, head) in &heads[..heads.len() - KEEP] {
        std::fs::remove_file(head)?;
        let _ = std::fs::remove_file(head.with_extension("json"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "speculate_tests.rs"]
mod tests;
