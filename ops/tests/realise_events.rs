//! `cmod_ops::realise` as a library: the `hello` example realised with real clang-19 in
//! the real sandbox, its events recorded by a plain [`Events`] implementation (no command
//! line involved): a first realisation that builds, a no-op answered from the input
//! journal without evaluating, a damaged store whose memo is not trusted (the `fresh`
//! lines prepared for it are dropped, never shown), and the errors of a failed compile
//! and of `--locked` against a lockfile that would change.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use cmod_evaluator::{EvalError, Evaluation};
use cmod_ops::build::BuildSettings;
use cmod_ops::journal::JournalKey;
use cmod_ops::project::{Access, EvalHow, LoadOptions};
use cmod_ops::realise::{Events, OutLinks, RealiseRequest, Summary};
use cmod_ops::{OpsError, Project};
use cmod_schema::derivation::Derivation;
use cmod_schema::diag::ExitClass;
use cmod_schema::StorePath;
use cmod_store::realise::{Event, Reporter};

/// What a realisation reported, as lines (`built hello-0.1.0-main.o`, `fresh ...`,
/// `evaluated`, `skipped`, `finished ...`); step events reported while lines are held
/// wait in `held`.
#[derive(Default)]
struct Recorder {
    lines: Mutex<Vec<String>>,
    held: Mutex<Option<Vec<String>>>,
    dropped: AtomicUsize,
}

impl Recorder {
    fn push(&self, line: String) {
        let mut held = self.held.lock().unwrap();
        match held.as_mut() {
            Some(held) => held.push(line),
            None => self.lines.lock().unwrap().push(line),
        }
    }

    /// A line that is never held (held lines are step events').
    fn push_now(&self, line: &str) {
        self.lines.lock().unwrap().push(line.into());
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.lines.lock().unwrap())
    }
}

impl Reporter for Recorder {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::Built { name, .. } => self.push(format!("built {name}")),
            Event::Fresh { name, .. } => self.push(format!("fresh {name}")),
            Event::Failed { name, .. } => self.push(format!("failed {name}")),
            Event::Warning { message } => self.push(format!("warning {message}")),
            _ => {}
        }
    }
}

impl Events for Recorder {
    fn evaluated(&self, _root: &Path, _scan_time: Duration) {
        self.push_now("evaluated");
    }
    fn evaluation_skipped(&self) {
        self.push_now("skipped");
    }
    fn evaluation_warnings(&self, warnings: &[&EvalError]) {
        for w in warnings {
            self.push(format!("warning {}", w.message));
        }
    }
    fn sources(&self, _eval: &Evaluation) {}
    fn replayed_warnings(&self, _: (&StorePath, &str), _: &Derivation, _: &str, _: u32) {}
    fn hold_lines(&self) {
        *self.held.lock().unwrap() = Some(Vec::new());
    }
    fn release_lines(&self, write: bool) {
        let held = self.held.lock().unwrap().take().unwrap_or_default();
        if write {
            self.lines.lock().unwrap().extend(held);
        } else {
            self.dropped.fetch_add(held.len(), Ordering::Relaxed);
        }
    }
    fn note(&self, _message: &str) {}
    fn finished(&self, s: &Summary) {
        let targets: Vec<&str> = s.targets.iter().map(|(n, _)| n.as_str()).collect();
        self.push(format!(
            "finished success={} built={} fresh={} failed={} targets={targets:?}",
            s.success, s.built, s.fresh, s.failed
        ));
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// A copy of the `hello` example and a store, both in `tmp`.
struct Setup {
    dir: PathBuf,
    store_root: PathBuf,
}

impl Setup {
    fn new(tmp: &Path) -> Setup {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello");
        let dir = tmp.join("hello");
        copy_tree(&example, &dir);
        Setup {
            dir,
            store_root: tmp.join("store"),
        }
    }

    fn load(&self) -> Result<(Project, Vec<(String, String)>), OpsError> {
        let store = cmod_ops::project::open_store(Some(&self.store_root), Access::Write)?;
        let opts = LoadOptions {
            release: false,
            offline: true,
            select: Vec::new(),
            with_tests: false,
            update: cmod_evaluator::deps::Update::Nothing,
            precise: None,
            sharing: None,
            git_rewrites: Default::default(),
        };
        let project = Project::load(store, &self.dir, opts)?;
        let names = project.select(&[])?;
        Ok((project, names))
    }

    fn request<'a>(&'a self, link: &'a Path, locked: bool) -> RealiseRequest<'a> {
        RealiseRequest {
            settings: BuildSettings {
                jobs: Some(2),
                sandbox: "full".into(),
                keep_failed: false,
                accept_outputs_from: Vec::new(),
                action_timeout: Duration::from_secs(600),
                max_output_size: 1 << 30,
            },
            eval: EvalHow {
                release: false,
                offline: true,
                update: cmod_evaluator::deps::Update::Nothing,
                precise: None,
            },
            check: false,
            locked,
            out_links: OutLinks::At(link),
            journal: Some(JournalKey {
                purpose: "realise",
                package_dir: &self.dir,
                manifest_path: None,
                targets: &[],
                release: false,
                offline: true,
                select: &[],
                sandbox: "full",
                accepted: &[],
            }),
        }
    }
}

/// Realise with `request`, counting evaluations; the memo's target paths.
fn realise(
    setup: &Setup,
    request: &RealiseRequest<'_>,
    events: &Recorder,
    evaluations: &AtomicUsize,
) -> Result<Vec<(String, StorePath)>, OpsError> {
    let store = cmod_ops::project::open_store(Some(&setup.store_root), Access::Write)?;
    let load = || {
        evaluations.fetch_add(1, Ordering::Relaxed);
        setup.load().map(|(project, _)| project)
    };
    let pick = |project: &Project| project.select(&[]);
    let memo = cmod_ops::realise::realise(&store, request, events, load, pick)?;
    Ok(memo.targets)
}

/// `lock` (a `cmod.lock`'s text) with one character in the middle of its toolchain
/// identity changed.
fn with_other_toolchain(lock: &str) -> String {
    let start = lock.find("identity = \"").expect("a toolchain identity") + 12;
    let len = lock[start..].find('"').unwrap();
    let at = start + len / 2;
    let other = if &lock[at..=at] == "a" { "b" } else { "a" };
    format!("{}{other}{}", &lock[..at], &lock[at + 1..])
}

/// One test at a time: an evaluation's journal records the reads of every thread of the
/// process, and each test's are its own.
static SERIAL: Mutex<()> = Mutex::new(());

/// A copy of the example whose files are older than the journal's racy window (a stamp
/// taken within 2 s of a change is not trusted).
fn settled_setup(tmp: &Path) -> Setup {
    let setup = Setup::new(tmp);
    std::thread::sleep(Duration::from_millis(2100));
    setup
}

fn count(lines: &[String], prefix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with(prefix)).count()
}

#[test]
fn a_realisation_builds_then_answers_from_its_journal_and_distrusts_a_damaged_store() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let setup = settled_setup(tmp.path());
    let link = tmp.path().join("result");
    let evaluations = AtomicUsize::new(0);

    let first = Recorder::default();
    let targets = realise(&setup, &setup.request(&link, false), &first, &evaluations).unwrap();
    let lines = first.take();
    let built = count(&lines, "built ");
    assert!(built >= 4, "every unit compiled and linked: {lines:?}");
    assert_eq!(lines.first().map(String::as_str), Some("evaluated"));
    assert_eq!(
        lines.last().unwrap(),
        &format!("finished success=true built={built} fresh=0 failed=0 targets=[\"hello\", \"libhello.a\"]")
    );
    assert_eq!(targets[0].0, "hello");
    let out = std::process::Command::new(&link).output().unwrap();
    assert!(out.status.success() && !out.stdout.is_empty(), "{out:?}");
    assert_eq!(evaluations.load(Ordering::Relaxed), 1);

    // A no-op once the outputs have settled: evaluated (the build's evaluation scanned
    // units and identified the toolchain, which is not journaled), answered from the
    // memo, and journaled.
    std::thread::sleep(Duration::from_millis(2100));
    let second = Recorder::default();
    let again = realise(&setup, &setup.request(&link, false), &second, &evaluations).unwrap();
    let lines = second.take();
    assert_eq!(again, targets);
    assert_eq!(evaluations.load(Ordering::Relaxed), 2, "{lines:?}");
    assert_eq!(count(&lines, "fresh "), built, "{lines:?}");
    assert_eq!(count(&lines, "skipped"), 0, "{lines:?}");

    // The next no-op: from the journal, not evaluated; every step fresh, nothing built.
    let third = Recorder::default();
    let again = realise(&setup, &setup.request(&link, false), &third, &evaluations).unwrap();
    let lines = third.take();
    assert_eq!(again, targets);
    assert_eq!(evaluations.load(Ordering::Relaxed), 2, "{lines:?}");
    assert_eq!(&lines[..2], ["evaluated", "skipped"]);
    assert_eq!(count(&lines, "fresh "), built);
    assert_eq!(count(&lines, "built "), 0);
    assert!(lines
        .last()
        .unwrap()
        .contains(&format!("built=0 fresh={built} ")));

    // The binary is gone from the store: neither the journal's memo nor the evaluation's
    // is trusted, the lines prepared for them are dropped, and the binary is relinked.
    let binary = tmp
        .path()
        .join("store/v1/store")
        .join(targets[0].1.to_string());
    let _ = std::fs::remove_file(&binary).or_else(|_| std::fs::remove_dir_all(&binary));
    assert!(!binary.exists());
    let fourth = Recorder::default();
    realise(&setup, &setup.request(&link, false), &fourth, &evaluations).unwrap();
    let lines = fourth.take();
    assert_eq!(evaluations.load(Ordering::Relaxed), 3, "{lines:?}");
    assert_eq!(
        fourth.dropped.load(Ordering::Relaxed),
        2 * built,
        "{lines:?}"
    );
    assert_eq!(count(&lines, "skipped"), 0);
    let rebuilt = count(&lines, "built ");
    assert!(rebuilt >= 1, "{lines:?}");
    assert_eq!(count(&lines, "fresh ") + rebuilt, built, "{lines:?}");
    assert!(binary.exists());
}

#[test]
fn a_failed_compile_and_a_changed_lock_under_locked_are_typed_errors() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let setup = settled_setup(tmp.path());
    let link = tmp.path().join("result");
    let evaluations = AtomicUsize::new(0);
    std::fs::write(
        setup.dir.join("src/hello.cpp"),
        "module hello;\nnamespace hello { int broken( }\n",
    )
    .unwrap();
    let events = Recorder::default();
    let err = realise(&setup, &setup.request(&link, false), &events, &evaluations).unwrap_err();
    assert_eq!(err.exit_class(), ExitClass::Build, "{err}");
    assert!(err.to_string().contains("could not build `hello"), "{err}");
    let lines = events.take();
    assert_eq!(count(&lines, "failed "), 1, "{lines:?}");
    assert!(lines.last().unwrap().starts_with("finished success=false"));
    assert!(!link.exists(), "no out-link for a failed realisation");

    // Under --locked, a lockfile that would change is refused before anything is built.
    let lock = setup.dir.join("cmod.lock");
    let text = std::fs::read_to_string(&lock).unwrap();
    std::fs::write(&lock, with_other_toolchain(&text)).unwrap();
    let events = Recorder::default();
    let err = realise(&setup, &setup.request(&link, true), &events, &evaluations).unwrap_err();
    assert_eq!(err.exit_class(), ExitClass::Usage, "{err}");
    assert!(err.to_string().contains("--locked was given but"), "{err}");
    let lines = events.take();
    assert_eq!(count(&lines, "finished"), 0, "{lines:?}");
    assert_eq!(count(&lines, "built "), 0, "{lines:?}");
}
