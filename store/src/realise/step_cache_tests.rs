//! The step-cache seam with an in-memory cache: what one store publishes another takes,
//! only with a trusted signature and matching contents; builds stay at `-j` while more
//! workers wait on the cache.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use cmod_schema::derivation::Derivation;
use cmod_schema::{ContentHash, StorePath};

use super::super::executor::{ExecError, Executed, Executor, Job};
use super::super::tests_support::{absent_toolchain, step, test_env, two_jobs};
use super::super::{realise, BuildEnv, Event, Realisation, Reporter};
use super::*;
use crate::sign::{SecretKey, TrustedKeys};

/// How many run at once now, and the most that ever did.
#[derive(Debug, Default)]
struct Gauge {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Gauge {
    fn during<T>(&self, f: impl FnOnce() -> T) -> T {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(n, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(40));
        let out = f();
        self.now.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

/// Writes `<name> built` into every output; counts its concurrent runs.
#[derive(Debug, Default)]
struct Builder {
    runs: AtomicUsize,
    gauge: Gauge,
}

impl Executor for Builder {
    fn execute(&self, job: &Job<'_>) -> Result<Executed, ExecError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.gauge.during(|| {
            for out in job.resolved.outputs.values() {
                let at = job.build_dir.join(&out.at);
                std::fs::create_dir_all(at.parent().unwrap()).unwrap();
                std::fs::write(&at, format!("{} built", job.resolved.name)).unwrap();
            }
        });
        Ok(Executed {
            failure: None,
            log: format!("{}: warning: unused\n", job.resolved.name),
            landlock_abi: None,
            warning: None,
        })
    }
}

/// A step as a cache holds it: record and output bytes by place.
type Shelved = (CachedStep, BTreeMap<String, Vec<u8>>);

/// An in-memory step cache.
#[derive(Debug, Default)]
struct Shelf {
    steps: Mutex<HashMap<ContentHash, Shelved>>,
    /// The builder's log each publication came with.
    logs: Mutex<Vec<String>>,
    fetches: Gauge,
}

impl StepCache for Shelf {
    fn url(&self) -> String {
        "mem://shelf".into()
    }

    fn fetch(
        &self,
        job: &Job<'_>,
        key: &ContentHash,
    ) -> Result<Option<CachedStep>, StepCacheError> {
        self.fetches.during(|| {
            let steps = self.steps.lock().unwrap();
            let Some((cached, files)) = steps.get(key) else {
                return Ok(None);
            };
            for (at, bytes) in files {
                let p = job.build_dir.join(at);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, bytes).unwrap();
            }
            Ok(Some(cached.clone()))
        })
    }

    fn publish(&self, job: &Job<'_>, entry: &TraceEntry) -> Result<(), StepCacheError> {
        let mut files = BTreeMap::new();
        let mut paths = Vec::new();
        for (name, out) in &job.resolved.outputs {
            let path = &entry.outputs[name];
            files.insert(
                out.at.clone(),
                std::fs::read(job.store.path_of(path)).unwrap(),
            );
            paths.push(job.store.path_info(path).unwrap());
        }
        let log = std::fs::read_to_string(job.log_path).unwrap_or_default();
        self.logs.lock().unwrap().push(log);
        let cached = CachedStep {
            entry: entry.clone(),
            paths,
        };
        self.steps
            .lock()
            .unwrap()
            .insert(entry.key, (cached, files));
        Ok(())
    }
}

#[derive(Default)]
struct Warnings(Mutex<Vec<String>>);

impl Reporter for Warnings {
    fn event(&self, e: &Event<'_>) {
        if let Event::Warning { message } = e {
            self.0.lock().unwrap().push(message.to_string());
        }
    }
}

/// Six independent steps.
fn six() -> BTreeMap<StorePath, Derivation> {
    (0..6)
        .map(|i| {
            let d = step(&format!("s{i}"), &[]);
            (d.drv_path().unwrap(), d)
        })
        .collect()
}

struct Run<'a> {
    drvs: &'a BTreeMap<StorePath, Derivation>,
    shelf: &'a Shelf,
    signing: &'a [SecretKey],
    trust: Trust,
}

impl Run<'_> {
    fn realise(&self, builder: &Builder) -> (Realisation, Vec<String>) {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let first = self.drvs.values().next().unwrap();
        let tc = absent_toolchain(first.toolchain);
        let env = BuildEnv {
            signing: self.signing,
            step_cache: Some(StepCacheUse {
                cache: self.shelf,
                trust: &self.trust,
            }),
            ..test_env(&tc, builder)
        };
        let targets: Vec<StorePath> = self.drvs.keys().cloned().collect();
        let warnings = Warnings::default();
        let r = realise(&store, self.drvs, &targets, &env, &two_jobs(), &warnings).unwrap();
        assert!(r.success(), "{:?}", r.failures);
        (r, warnings.0.into_inner().unwrap())
    }
}

#[test]
fn a_store_takes_what_another_published_only_when_it_is_trusted_and_intact() {
    let drvs = six();
    let shelf = Shelf::default();
    let key = SecretKey::from_seed("k-1", [1; 32]).unwrap();
    let trusted = Trust {
        keys: TrustedKeys::new(vec![key.public()]),
        require_sigs: true,
    };
    let publisher = Run {
        drvs: &drvs,
        shelf: &shelf,
        signing: std::slice::from_ref(&key),
        trust: trusted.clone(),
    };
    let builder = Builder::default();
    let (r, _) = publisher.realise(&builder);
    assert_eq!(r.built.len(), 6);
    // Builds stay at -j 2 while more workers asked the cache at once.
    assert_eq!(builder.gauge.most.load(Ordering::SeqCst), 2);
    assert!(shelf.fetches.most.load(Ordering::SeqCst) > 2);
    assert_eq!(shelf.steps.lock().unwrap().len(), 6);
    // Each publication carries the builder's log (kept where `cmod log` finds it).
    let logs = shelf.logs.lock().unwrap().clone();
    assert_eq!(logs.len(), 6);
    assert!(
        logs.iter().all(|l| l.contains(": warning: unused")),
        "{logs:?}"
    );

    // A store that trusts the key builds nothing.
    let reader = Run {
        signing: &[],
        ..publisher
    };
    let builder = Builder::default();
    let (r, warnings) = reader.realise(&builder);
    assert_eq!((r.built.len(), r.substituted.len()), (0, 6), "{warnings:?}");
    assert_eq!(builder.runs.load(Ordering::SeqCst), 0);

    // One that trusts another key builds everything, saying why.
    let other = SecretKey::from_seed("k-2", [2; 32]).unwrap();
    let stranger = Run {
        trust: Trust {
            keys: TrustedKeys::new(vec![other.public()]),
            require_sigs: true,
        },
        ..reader
    };
    let (r, warnings) = stranger.realise(&Builder::default());
    assert_eq!((r.built.len(), r.substituted.len()), (6, 0));
    assert_eq!(warnings.len(), 6, "{warnings:?}");
    assert!(
        warnings.iter().all(|w| w.contains("not trusted")),
        "{warnings:?}"
    );

    // Altered bytes under an intact record: that step is built here, nothing of the
    // altered bytes is registered, the others are taken.
    let victim = {
        let mut steps = shelf.steps.lock().unwrap();
        let (key, (_, files)) = steps.iter_mut().next().unwrap();
        for bytes in files.values_mut() {
            *bytes = b"forged".to_vec();
        }
        *key
    };
    let (r, warnings) = reader.realise(&Builder::default());
    assert_eq!((r.built.len(), r.substituted.len()), (1, 5), "{warnings:?}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("signed metadata says"), "{warnings:?}");
    let entry = shelf.steps.lock().unwrap()[&victim].0.entry.clone();
    assert_eq!(r.outputs[&entry.drv], entry.outputs);

    // A genuine record filed under another step's key is refused.
    {
        let mut steps = shelf.steps.lock().unwrap();
        let keys: Vec<ContentHash> = steps.keys().copied().collect();
        let moved = steps.remove(&keys[1]).unwrap();
        steps.insert(keys[2], moved);
    }
    let (r, warnings) = reader.realise(&Builder::default());
    assert_eq!((r.built.len(), r.substituted.len()), (3, 3), "{warnings:?}");
    assert!(
        warnings.iter().any(|w| w.contains("is for another step")),
        "{warnings:?}"
    );
}

/// Panics in the builder of the steps named `s0.o` and `s1.o`, builds the others.
#[derive(Debug, Default)]
struct Panicky(Builder);

impl Executor for Panicky {
    fn execute(&self, job: &Job<'_>) -> Result<Executed, ExecError> {
        if ["s0.o", "s1.o"].contains(&job.resolved.name.as_str()) {
            std::thread::sleep(Duration::from_millis(20));
            panic!("builder bug in {}", job.resolved.name);
        }
        self.0.execute(job)
    }
}

/// With a step cache, builders that panic give their slot back: the steps waiting for one
/// go on (a lost slot per panic would leave them waiting for ever at `-j 2`).
#[test]
fn a_panicking_builder_gives_its_slot_back() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let drvs = six();
        let shelf = Shelf::default();
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let tc = absent_toolchain(drvs.values().next().unwrap().toolchain);
        let builder = Panicky::default();
        let trust = Trust::default();
        let env = BuildEnv {
            step_cache: Some(StepCacheUse {
                cache: &shelf,
                trust: &trust,
            }),
            ..test_env(&tc, &builder)
        };
        let targets: Vec<StorePath> = drvs.keys().cloned().collect();
        let r = realise(
            &store,
            &drvs,
            &targets,
            &env,
            &two_jobs(),
            &Warnings::default(),
        );
        let _ = done.send(r.map(|r| (r.failures.len(), r.built.len())));
    });
    let (failures, built) = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the realisation hung: a panicking builder kept its slot")
        .unwrap();
    assert_eq!(failures, 2);
    assert_eq!(built, 4);
}
