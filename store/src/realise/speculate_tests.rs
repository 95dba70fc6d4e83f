//! Speculative builds with a builder that writes its outputs in memory's stead: a run
//! ahead is taken only under the step's own key (a failure too), another is discarded,
//! and recipes are read only when their source changed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use cmod_schema::derivation::Derivation;
use cmod_schema::{ContentHash, PathKind, StorePath};

use super::super::executor::{ExecError, Executed, Executor, Job};
use super::super::tests_support::{absent_toolchain, compile_of, test_env, two_jobs};
use super::super::{realise, Event, Realisation, RealiseOptions, Reporter};
use super::*;

/// Writes `<args> built` into every output, or fails; counts its runs.
#[derive(Debug, Default)]
struct Builder {
    runs: AtomicUsize,
    fails: bool,
}

impl Executor for Builder {
    fn execute(&self, job: &Job<'_>) -> Result<Executed, ExecError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        for out in job.resolved.outputs.values() {
            let at = job.build_dir.join(&out.at);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::fs::write(&at, format!("{:?} built", job.resolved.args)).unwrap();
        }
        Ok(Executed {
            failure: self.fails.then(|| "exit code 1".to_string()),
            log: "a.cpp:1: error: nope\n".repeat(self.fails as usize),
            landlock_abi: None,
            warning: None,
        })
    }
}

fn runs(b: &Builder) -> usize {
    b.runs.load(Ordering::SeqCst)
}

/// A builder for a speculation thread, which needs one that lives for ever.
fn leaked(fails: bool) -> &'static Builder {
    Box::leak(Box::new(Builder {
        runs: AtomicUsize::new(0),
        fails,
    }))
}

/// Records each built step's name and whether it was built ahead.
#[derive(Default)]
struct Built(Mutex<Vec<(String, bool)>>);

impl Reporter for Built {
    fn event(&self, e: &Event<'_>) {
        if let Event::Built {
            name, speculative, ..
        } = e
        {
            self.0
                .lock()
                .unwrap()
                .push((name.to_string(), *speculative));
        }
    }
}

/// The user's source `a.cpp` in `dir` with `text` (written unless it has it: a build
/// ahead may be reading it): its content hash and store path.
fn source(dir: &Path, text: &str) -> (std::path::PathBuf, ContentHash, StorePath) {
    let host = dir.join("a.cpp");
    if std::fs::read_to_string(&host).ok().as_deref() != Some(text) {
        std::fs::write(&host, text).unwrap();
    }
    let hash = ContentHash::of_file(false, text.as_bytes());
    let path = StorePath::compute(PathKind::Source, &hash, "a.cpp", []).unwrap();
    (host, hash, path)
}

/// The compile of `source` with `flag`.
fn compile(source: &StorePath, flag: &str) -> Derivation {
    let mut drv = compile_of(source);
    drv.args = vec![flag.into(), "src/a.cpp".into()];
    drv
}

/// A speculation over `w`'s recipes with a counting builder of its own, started and
/// waited for until its runs ended.
fn ran_ahead(w: &World) -> (Arc<Speculation>, &'static Builder) {
    let builder = leaked(false);
    let ahead = Speculation::new(w.recipes.clone());
    ahead.start(&w.store, Default::default(), builder);
    wait_for_runs(&ahead);
    (ahead, builder)
}

/// Wait until every run of `ahead` has ended (and its planning too).
fn wait_for_runs(ahead: &Speculation) {
    while !ahead.lock().planned
        || ahead
            .lock()
            .runs
            .values()
            .any(|s| matches!(s, Slot::Running))
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A store, the user's directory and the directory of the recipes.
struct World {
    _t: tempfile::TempDir,
    store: Store,
    user: std::path::PathBuf,
    recipes: std::path::PathBuf,
}

fn world() -> World {
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(&t.path().join("store")).unwrap();
    let user = t.path().join("user");
    std::fs::create_dir_all(&user).unwrap();
    let recipes = t.path().join("recipes");
    World {
        _t: t,
        store,
        user,
        recipes,
    }
}

/// Realise `drv` (reading `host` as its source) with `builder` and `ahead`.
fn realise_with(
    w: &World,
    drv: Derivation,
    (host, hash, path): (&Path, &ContentHash, &StorePath),
    builder: &dyn Executor,
    ahead: &Speculation,
) -> (Realisation, Vec<(String, bool)>) {
    let toolchain = absent_toolchain(drv.toolchain);
    let env = BuildEnv {
        speculation: Some(ahead),
        ..test_env(&toolchain, builder)
    };
    let target = drv.drv_path().unwrap();
    let drvs = BTreeMap::from([(target.clone(), drv)]);
    let sources = [(host, path, hash)];
    let opts = RealiseOptions {
        sources: &sources,
        ..two_jobs()
    };
    let built = Built::default();
    let r = realise(&w.store, &drvs, &[target], &env, &opts, &built).unwrap();
    (r, built.0.into_inner().unwrap())
}

/// Build `-O1` of the first text (which records its recipe), then write `second` and
/// start building ahead with `ahead_builder`.
fn edited(w: &World, second: &str, ahead_builder: &'static Builder) -> Arc<Speculation> {
    let (host, hash, path) = source(&w.user, "int a = 1;");
    let first = Builder::default();
    let recorder = Speculation::new(w.recipes.clone());
    let (r, built) = realise_with(
        w,
        compile(&path, "-O1"),
        (&host, &hash, &path),
        &first,
        &recorder,
    );
    assert!(r.success(), "{:?}", r.failures);
    assert_eq!(built, vec![("a.o".to_string(), false)]);
    assert_eq!(runs(&first), 1);
    source(&w.user, second);
    let ahead = Speculation::new(w.recipes.clone());
    ahead.start(&w.store, Default::default(), ahead_builder);
    ahead
}

/// Realise the compile of the edited `a.cpp` (holding `text`) with `flag`, building ahead
/// with `ahead`; what was built, and how many builders the realiser ran itself.
fn realise_edited(
    w: &World,
    ahead: &Speculation,
    text: &str,
    flag: &str,
) -> (Realisation, Vec<(String, bool)>, usize) {
    let (host, hash, path) = source(&w.user, text);
    let realiser = Builder::default();
    let (r, built) = realise_with(
        w,
        compile(&path, flag),
        (&host, &hash, &path),
        &realiser,
        ahead,
    );
    (r, built, runs(&realiser))
}

#[test]
fn a_build_ahead_is_taken_when_its_key_is_the_steps() {
    let w = world();
    let ahead_builder = leaked(false);
    let ahead = edited(&w, "int a = 2;", ahead_builder);
    let (r, built, realiser) = realise_edited(&w, &ahead, "int a = 2;", "-O1");
    assert!(r.success(), "{:?}", r.failures);
    assert_eq!(built, vec![("a.o".to_string(), true)]);
    assert_eq!((runs(ahead_builder), realiser), (1, 0));
    // Registered as the realiser's own build: valid, with the run's contents.
    let out = &r.outputs.values().next().unwrap()["obj"];
    let bytes = std::fs::read(w.store.path_of(out)).unwrap();
    assert_eq!(bytes, br#"["-O1", "src/a.cpp"] built"#);
    let (_, _, path) = source(&w.user, "int a = 2;");
    assert!(w.store.is_valid(&path), "the new source was added");
}

#[test]
fn a_build_ahead_under_another_key_is_discarded() {
    let w = world();
    let ahead_builder = leaked(false);
    let ahead = edited(&w, "int a = 3;", ahead_builder);
    let (_, hash, _) = source(&w.user, "int a = 3;");
    // The run ahead has ended before the realiser looks (it must still not take it).
    wait_for_runs(&ahead);
    assert_eq!(runs(ahead_builder), 1);
    // The edit also changed the flags: the recipe no longer fits.
    let (r, built, realiser) = realise_edited(&w, &ahead, "int a = 3;", "-O2");
    assert!(r.success(), "{:?}", r.failures);
    assert_eq!(built, vec![("a.o".to_string(), false)]);
    assert_eq!(realiser, 1);
    let out = &r.outputs.values().next().unwrap()["obj"];
    let bytes = std::fs::read(w.store.path_of(out)).unwrap();
    assert_eq!(bytes, br#"["-O2", "src/a.cpp"] built"#);
    // The recipe the realiser recorded for the step stays (the one that did not fit is
    // forgotten: see the next test); the run ahead leaves nothing once dropped.
    let head = || {
        let heads = recipe_files(&w.recipes);
        assert_eq!(
            heads.len(),
            3,
            "a head, its body and a unit recipe: {heads:?}"
        );
        let head = heads
            .iter()
            .find(|p| p.extension().is_some_and(|x| x == "head"))
            .unwrap();
        std::fs::read_to_string(head).unwrap()
    };
    assert!(head().starts_with(&hash.to_text()), "{}", head());
    ahead.finish();
    assert!(head().starts_with(&hash.to_text()), "{}", head());
    let builds = |store: &Store| {
        std::fs::read_dir(store.dir("tmp"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("build")
            })
            .count()
    };
    assert_eq!(
        builds(&w.store),
        2,
        "the run ahead's build directory and log"
    );
    drop(ahead);
    assert_eq!(builds(&w.store), 0, "discarded with the speculation");
}

#[test]
fn a_recipe_whose_run_nobody_took_is_forgotten() {
    let w = world();
    let ahead_builder = leaked(false);
    let ahead = edited(&w, "int a = 5;", ahead_builder);
    // The realisation never asks for the step (it left the build, say).
    assert!(ahead
        .take(&ContentHash::of_file(false, b"any"), &[])
        .is_none());
    wait_for_runs(&ahead);
    assert_eq!(runs(ahead_builder), 1);
    assert_eq!(recipe_files(&w.recipes).len(), 3);
    ahead.finish();
    assert_eq!(recipe_files(&w.recipes), Vec::<std::path::PathBuf>::new());
}

/// The recipe files in `dir`: the recent recipes' heads and bodies, and the unit
/// recipes (not the stamp index or the module table).
fn recipe_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let list = |dir: &Path| -> Vec<std::path::PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries.map(|e| e.unwrap().path()).collect()
    };
    let mut files: Vec<_> = list(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "head" || x == "json"))
        .filter(|p| !p.ends_with("units.json") && !p.ends_with("modules.json"))
        .chain(list(&dir.join("units")))
        .collect();
    files.sort();
    files
}

#[test]
fn a_failed_build_ahead_is_the_steps_failure() {
    let w = world();
    let ahead_builder = leaked(true);
    let ahead = edited(&w, "int a = ;", ahead_builder);
    let (r, built, realiser) = realise_edited(&w, &ahead, "int a = ;", "-O1");
    assert!(built.is_empty());
    assert_eq!((runs(ahead_builder), realiser), (1, 0));
    match &r.failures[..] {
        [(_, BuildError::Failed { log, exit, .. })] => {
            assert_eq!(exit, "exit code 1");
            assert!(log.contains("error: nope"), "{log}");
        }
        other => panic!("expected the failure of the run ahead, got {other:?}"),
    }
}

#[test]
fn nothing_is_built_ahead_while_the_source_is_unchanged_or_the_recipe_damaged() {
    let w = world();
    let ahead_builder = leaked(false);
    // Unchanged: the recipe's source hashes as recorded.
    let ahead = edited(&w, "int a = 1;", ahead_builder);
    assert!(ahead
        .take(&ContentHash::of_file(false, b"any"), &[])
        .is_none());
    drop(ahead);
    // Damaged: changed source, unreadable recipe.
    source(&w.user, "int a = 4;");
    for e in std::fs::read_dir(&w.recipes).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            std::fs::write(&p, "{ not json").unwrap();
        }
    }
    let ahead = Speculation::new(w.recipes.clone());
    ahead.start(&w.store, Default::default(), ahead_builder);
    assert!(ahead
        .take(&ContentHash::of_file(false, b"any"), &[])
        .is_none());
    assert_eq!(runs(ahead_builder), 0);
}

fn no_head() -> Head {
    Head {
        file: std::path::PathBuf::new(),
        text: String::new(),
    }
}

/// The recipe of `recorded`, which read `host` (hashing `hash`) at `src/a.cpp`.
fn recipe_of(host: &Path, hash: ContentHash, recorded: &Derivation) -> Recipe {
    Recipe {
        version: RECIPE_VERSION,
        host: host.to_path_buf(),
        source_hash: hash,
        source_at: "src/a.cpp".into(),
        drv_path: recorded.drv_path().unwrap(),
        sandbox: "off".into(),
        resolved: recorded.clone(),
        modules: Vec::new(),
        toolchain: absent_toolchain(recorded.toolchain),
    }
}

#[test]
fn a_recipe_replaces_only_its_source() {
    let w = world();
    let (host, hash, path) = source(&w.user, "int a = 1;");
    let recorded = compile(&path, "-O1");
    let (_, new_hash, new_path) = source(&w.user, "int a = 2;");
    let a = Ahead::of(no_head(), recipe_of(&host, hash, &recorded), new_hash).unwrap();
    assert_eq!(a.source, (new_path.clone(), new_hash));
    assert_eq!(a.resolved, compile(&new_path, "-O1"));
    assert_eq!(a.key, compile(&new_path, "-O1").trace_key("off").unwrap());
    assert_ne!(a.key, recorded.trace_key("off").unwrap());
    // A recipe whose source input is not where it says, or whose mode is unknown, does
    // not fit.
    let misplaced = Recipe {
        source_at: "src/b.cpp".into(),
        ..recipe_of(&host, hash, &recorded)
    };
    assert!(Ahead::of(no_head(), misplaced, new_hash).is_none());
    let unknown = Recipe {
        sandbox: "sideways".into(),
        ..recipe_of(&host, hash, &recorded)
    };
    assert!(Ahead::of(no_head(), unknown, new_hash).is_none());
}

#[test]
fn only_the_newest_recipes_are_kept() {
    let w = world();
    let (host, hash, path) = source(&w.user, "int a = 1;");
    let mut recipe = recipe_of(&host, hash, &compile(&path, "-O1"));
    for i in 0..KEEP + 3 {
        recipe.host = w.user.join(format!("f{i}.cpp"));
        write_recipe(&w.recipes, &recipe).unwrap();
        let head = std::fs::read_dir(&w.recipes)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.ends_with(&format!("/f{i}.cpp"))))
            .unwrap();
        let at =
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64);
        std::fs::File::options()
            .write(true)
            .open(&head)
            .unwrap()
            .set_modified(at)
            .unwrap();
    }
    let files = |ext: &str| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&w.recipes)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == ext))
            .collect()
    };
    let mut kept: Vec<String> = files("head")
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    kept.sort();
    let mut want: Vec<String> = (3..KEEP + 3).map(|i| format!("f{i}.cpp")).collect();
    want.sort();
    assert_eq!(kept, want);
    assert_eq!(files("json").len(), KEEP);
}

/// The head files of the recipes recorded in `dir` (none if it does not exist).
fn head_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "head"))
        .collect()
}

/// The hosts of the recipes recorded in `dir`, sorted.
fn recorded_hosts(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut hosts: Vec<_> = head_files(dir)
        .into_iter()
        .map(|p| parse_head(&std::fs::read_to_string(p).unwrap()).unwrap().1)
        .collect();
    hosts.sort();
    hosts
}

/// Realise the compiles of every `u<i>.cpp` in the user's directory with `flag`, with
/// `ahead`; how many builders ran.
fn realise_units(w: &World, units: usize, flag: &str, ahead: &Speculation) -> usize {
    let files: Vec<(std::path::PathBuf, ContentHash, StorePath)> = (0..units)
        .map(|i| {
            let (name, host) = (format!("u{i}.cpp"), w.user.join(format!("u{i}.cpp")));
            let hash = ContentHash::of_file(false, &std::fs::read(&host).unwrap());
            let path = StorePath::compute(PathKind::Source, &hash, &name, []).unwrap();
            (host, hash, path)
        })
        .collect();
    let drvs: BTreeMap<StorePath, Derivation> = files
        .iter()
        .map(|(_, _, path)| {
            let drv = compile(path, flag);
            (drv.drv_path().unwrap(), drv)
        })
        .collect();
    let sources: Vec<(&Path, &StorePath, &ContentHash)> =
        files.iter().map(|(h, c, p)| (h.as_path(), p, c)).collect();
    let opts = RealiseOptions {
        sources: &sources,
        ..two_jobs()
    };
    let builder = Builder::default();
    let toolchain = absent_toolchain(compile_of(&files[0].2).toolchain);
    let env = BuildEnv {
        speculation: Some(ahead),
        ..test_env(&toolchain, &builder)
    };
    let targets: Vec<StorePath> = drvs.keys().cloned().collect();
    let r = realise(&w.store, &drvs, &targets, &env, &opts, &Built::default()).unwrap();
    assert!(r.success(), "{:?}", r.failures);
    runs(&builder)
}

/// Write more units `u<i>.cpp` than an edit builds, and build them all with `-O1` (a
/// cold build); how many.
fn cold_units(w: &World) -> usize {
    let units = super::super::KEEP_VIEWS_UP_TO + 2;
    for i in 0..units {
        std::fs::write(w.user.join(format!("u{i}.cpp")), format!("int u{i};")).unwrap();
    }
    let recorder = Speculation::new(w.recipes.clone());
    assert_eq!(realise_units(w, units, "-O1", &recorder), units);
    units
}

/// A realisation that builds more steps than an edit's keeps no recipes, except for the
/// steps that read one of its few edited sources: an edited interface rebuilds much, and
/// its next edit is built ahead all the same. A cold build (every source new) records
/// none.
#[test]
fn a_large_realisation_records_the_recipes_of_its_edited_sources_only() {
    let w = world();
    let units = cold_units(&w);
    let recorder = || Speculation::new(w.recipes.clone());
    assert_eq!(recorded_hosts(&w.recipes), Vec::<std::path::PathBuf>::new());
    // One file edited, and a flag every step reads: every step is rebuilt.
    std::fs::write(w.user.join("u3.cpp"), "int u3 = 1;").unwrap();
    assert_eq!(realise_units(&w, units, "-O2", &recorder()), units);
    assert_eq!(recorded_hosts(&w.recipes), vec![w.user.join("u3.cpp")]);
}

/// The head of the only recipe in `dir`.
fn only_head(dir: &Path) -> String {
    let heads = head_files(dir);
    assert_eq!(heads.len(), 1, "{heads:?}");
    std::fs::read_to_string(&heads[0]).unwrap()
}

/// When a run ahead added the edited source (so the realisation finds it in the store
/// already) and was not taken, the large realisation still records the step's recipe
/// anew: the next edit is built ahead from it, and `finish` keeps it.
#[test]
fn a_source_a_run_ahead_added_counts_as_edited() {
    let w = world();
    let units = cold_units(&w);
    let recorder = || Speculation::new(w.recipes.clone());
    // A small edit records the recipe of u3's step.
    std::fs::write(w.user.join("u3.cpp"), "int u3 = 1;").unwrap();
    assert_eq!(realise_units(&w, units, "-O1", &recorder()), 1);
    assert_eq!(recorded_hosts(&w.recipes), vec![w.user.join("u3.cpp")]);
    // Edited again: built ahead with -O1, but every step now has -O2 (not taken).
    std::fs::write(w.user.join("u3.cpp"), "int u3 = 2;").unwrap();
    let (ahead, ahead_builder) = ran_ahead(&w);
    assert_eq!(runs(ahead_builder), 1);
    assert_eq!(realise_units(&w, units, "-O2", &ahead), units);
    ahead.finish();
    let now = ContentHash::of_file(false, b"int u3 = 2;");
    assert!(
        only_head(&w.recipes).starts_with(&now.to_text()),
        "{}",
        only_head(&w.recipes)
    );
}

/// A cold build records no recent recipe but a unit recipe for every compile: the first
/// edit of any of its files is built ahead (and only that file's step), and taken.
#[test]
fn the_first_edit_after_a_cold_build_is_built_ahead_from_its_unit_recipe() {
    let w = world();
    let units = cold_units(&w);
    assert_eq!(recorded_hosts(&w.recipes), Vec::<std::path::PathBuf>::new());
    assert_eq!(recipe_files(&w.recipes).len(), units);
    std::fs::write(w.user.join("u7.cpp"), "int u7 = 1;").unwrap();
    let (ahead, ahead_builder) = ran_ahead(&w);
    assert_eq!(runs(ahead_builder), 1);
    // The realiser builds nothing itself: the edited step's run ahead is taken.
    assert_eq!(realise_units(&w, units, "-O1", &ahead), 0);
    ahead.finish();
    // Recorded again after its build: the next realisation builds nothing ahead.
    let (_next, again) = ran_ahead(&w);
    assert_eq!(runs(again), 0);
}

/// A run ahead under the step's key whose module closure is not the one the realiser
/// lays out (a module table that did not fit) is discarded, and the step is built.
#[test]
fn a_build_ahead_that_laid_out_another_closure_is_discarded() {
    let w = world();
    let ahead_builder = leaked(false);
    let ahead = edited(&w, "int a = 6;", ahead_builder);
    wait_for_runs(&ahead);
    assert_eq!(runs(ahead_builder), 1);
    let other = ModuleFile {
        module: "m".into(),
        at: "bmi/m.pcm".into(),
        path: super::super::modules::tests::out_path("m"),
    };
    for closure in ahead.lock().closures.values_mut() {
        closure.push(other.clone());
    }
    let (r, built, realiser) = realise_edited(&w, &ahead, "int a = 6;", "-O1");
    assert!(r.success(), "{:?}", r.failures);
    assert_eq!(built, vec![("a.o".to_string(), false)]);
    assert_eq!(realiser, 1);
}
