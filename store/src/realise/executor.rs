//! Where a resolved step's builder runs: the seam between scheduling and execution.
//!
//! The scheduler decides *what* runs (resolution, trace lookups, per-key locks, output
//! registration and the trace entry stay with it, so every executor's outputs are
//! hashed, registered and signed the same way); an [`Executor`] only runs one builder
//! and leaves its declared outputs in the step's build directory. [`LocalSandbox`] runs
//! it here, in `cmod_sandbox`; a remote executor (REAPI) uploads the inputs, executes the
//! action elsewhere and downloads the outputs into the same directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cmod_sandbox::{Action, Limits, Link, Mode, SandboxError};
use cmod_schema::derivation::{Derivation, InputFrom, Tool, MODULE_MAP};
use cmod_schema::toolchain::ToolchainInfo;
use cmod_schema::StorePath;

use super::modules::{module_map, ModuleFile};
use crate::error::StoreError;
use crate::layout::Store;

/// One builder run an [`Executor`] is asked for.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// The store the inputs are in (valid, with every path the step reads).
    pub store: &'a Store,
    /// The derivation as evaluated (its path names the step in logs and views).
    pub drv_path: &'a StorePath,
    /// The derivation with every input resolved to a store path.
    pub resolved: &'a Derivation,
    /// The step's module closure: every BMI it reads, direct or transitive, at its
    /// stable name.
    pub modules: &'a [ModuleFile],
    /// The (existing, empty) directory the builder runs in and leaves its outputs in.
    pub build_dir: &'a Path,
    /// Where the builder's output goes (a local builder writes it there; otherwise it is
    /// written there from [`Executed::log`]).
    pub log_path: &'a Path,
    /// Keep the step's view of the store between runs (see `KEEP_VIEWS_UP_TO`).
    pub keep_view: bool,
    /// The toolchain the builder runs with (the one the derivation names).
    pub toolchain: &'a ToolchainInfo,
    /// The sandbox mode it runs in (part of the step's trace key).
    pub sandbox: Mode,
    /// Its time and output-size limits.
    pub limits: Limits,
}

/// Why a builder could not be run at all (a builder that ran and failed is an
/// [`Executed`] with a `failure`).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The sandbox could not run the builder, or stopped it at a limit.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// Preparing the step's files failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A remote executor could not run the builder (unreachable server, refused action).
    #[error("{reason}")]
    Remote {
        /// What went wrong.
        reason: String,
        /// How to fix it.
        help: Option<String>,
    },
}

/// How a builder run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// `None` when it succeeded, else how it ended (`exit code 1`, `signal 9`).
    pub failure: Option<String>,
    /// What the builder printed.
    pub log: String,
    /// The Landlock ABI that confined it, if any (recorded in the outputs' metadata).
    pub landlock_abi: Option<u8>,
    /// Something the user should know about how it ran (it was built locally because
    /// the remote executor was unreachable, say); reported as a warning.
    pub warning: Option<String>,
}

/// Runs builders. Implementations must run the builder exactly as the local sandbox
/// would (same argument vector, stable names, environment and sandbox mode), so that
/// outputs are bit-identical whichever executor made them.
pub trait Executor: Sync + std::fmt::Debug {
    /// Run `job`'s builder; on success its declared outputs are in `job.build_dir`. An
    /// `Err` means the builder could not be run at all (not that it failed).
    fn execute(&self, job: &Job<'_>) -> Result<Executed, ExecError>;
}

/// Runs each builder on this machine in `cmod_sandbox`, in the job's mode.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalSandbox;

impl Executor for LocalSandbox {
    fn execute(&self, job: &Job<'_>) -> Result<Executed, ExecError> {
        let resolved = job.resolved;
        if resolved.bmi_inputs().next().is_some() {
            let map = job.build_dir.join(MODULE_MAP);
            std::fs::write(&map, module_map(job.modules))
                .map_err(|e| StoreError::io("writing", &map, e))?;
        }
        let mut action = action_for(job);
        // One kept view per step identity (the derivation's name: the same unit, edit
        // after edit), under the store's `views/`, which GC and repair retire.
        if job.keep_view {
            action.view_slot = Some(job.store.dir("views").join(&resolved.name));
        }
        let outcome = cmod_sandbox::run(job.sandbox, &action)?;
        let log = std::fs::read(job.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Ok(Executed {
            failure: (!outcome.exit.success()).then(|| outcome.exit.to_string()),
            log,
            landlock_abi: outcome.enforcement.landlock_abi,
            warning: None,
        })
    }
}

/// Runs at most `slots` builders of `inner` at once, whoever asks: the scheduler runs more
/// workers than `-j` when they mostly wait on a remote cache, and builds stay at `-j`.
#[derive(Debug)]
pub(crate) struct Throttled<'a> {
    inner: &'a dyn Executor,
    free: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
}

impl<'a> Throttled<'a> {
    pub(crate) fn new(inner: &'a dyn Executor, slots: usize) -> Throttled<'a> {
        Throttled {
            inner,
            free: std::sync::Mutex::new(slots.max(1)),
            freed: std::sync::Condvar::new(),
        }
    }
}

impl Executor for Throttled<'_> {
    fn execute(&self, job: &Job<'_>) -> Result<Executed, ExecError> {
        {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            while *free == 0 {
                free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
            }
            *free -= 1;
        }
        // Given back however the builder ends, a panic included (the scheduler turns a
        // panic into the step's failure and goes on; a lost slot would stall the rest).
        let _slot = Slot(self);
        self.inner.execute(job)
    }
}

/// A builder slot of a [`Throttled`] executor, given back when dropped.
struct Slot<'t, 'a>(&'t Throttled<'a>);

impl Drop for Slot<'_, '_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

/// The sandbox action that runs `job`'s builder in its build directory.
fn action_for(job: &Job<'_>) -> Action {
    let resolved = job.resolved;
    let mut links: Vec<Link> = resolved
        .inputs
        .iter()
        .filter_map(|i| match &i.from {
            InputFrom::Path { path, sub } => Some(Link {
                at: i.at.clone().into(),
                store_path: path.to_string(),
                sub: sub.as_ref().map(PathBuf::from),
            }),
            InputFrom::Drv { .. } => None,
        })
        .collect();
    // The BMIs of the module closure that are not direct inputs.
    let direct: BTreeSet<&str> = resolved.inputs.iter().map(|i| i.at.as_str()).collect();
    let transitive: Vec<&ModuleFile> = job
        .modules
        .iter()
        .filter(|m| !direct.contains(m.at.as_str()))
        .collect();
    links.extend(transitive.iter().map(|m| Link {
        at: m.at.clone().into(),
        store_path: m.path.to_string(),
        sub: None,
    }));
    let mut inputs: BTreeSet<String> = resolved
        .input_paths()
        .iter()
        .map(|p| p.to_string())
        .collect();
    inputs.extend(transitive.iter().map(|m| m.path.to_string()));
    let program = match resolved.tool {
        Tool::Cxx => job.toolchain.cxx.clone(),
        Tool::Ar => job.toolchain.ar.clone(),
        // A generator: its program is an input, run from its place in the build directory.
        Tool::Program => Path::new(cmod_sandbox::BUILD_DIR_PLACEHOLDER)
            .join(resolved.program_input().unwrap_or_default()),
    };
    Action {
        program,
        args: resolved.args.clone(),
        env: resolved
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        build_dir: job.build_dir.to_path_buf(),
        store_dir: job.store.store_dir(),
        inputs: inputs.into_iter().collect(),
        links,
        toolchain: closure_with_host_files(&job.toolchain.closure, resolved),
        outputs: resolved
            .outputs
            .values()
            .map(|o| PathBuf::from(&o.at))
            .collect(),
        log_path: job.log_path.to_path_buf(),
        limits: job.limits,
        view_slot: None,
    }
}

/// The host paths a step may see: the toolchain's closure plus the derivation's host
/// files (system libraries, headers outside the toolchain's directories) that the
/// closure does not already cover.
fn closure_with_host_files(closure: &[PathBuf], drv: &Derivation) -> Vec<PathBuf> {
    let mut out = closure.to_vec();
    for path in drv.host.keys() {
        let p = PathBuf::from(path);
        if !closure.iter().any(|c| p.starts_with(c)) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::super::tests_support::{absent_toolchain, step, test_env, two_jobs};
    use super::super::{realise, BuildError, Silent};
    use super::*;

    /// Writes `<name> built` into every declared output, or fails the builder of the
    /// step named `fails`, or cannot run the one named `unreachable` at all, and
    /// records the jobs it was given.
    #[derive(Debug, Default)]
    struct Recording {
        fails: Option<&'static str>,
        unreachable: Option<&'static str>,
        ran: Mutex<Vec<String>>,
    }

    impl Executor for Recording {
        fn execute(&self, job: &Job<'_>) -> Result<Executed, ExecError> {
            let name = job.resolved.name.clone();
            self.ran.lock().unwrap().push(name.clone());
            if self.unreachable == Some(name.as_str()) {
                let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
                return Err(
                    StoreError::io("uploading the inputs to", job.build_dir, refused).into(),
                );
            }
            if self.fails == Some(name.as_str()) {
                return Ok(Executed {
                    failure: Some("exit code 3".into()),
                    log: "error: remote builder says no\n".into(),
                    landlock_abi: None,
                    warning: None,
                });
            }
            for out in job.resolved.outputs.values() {
                let at = job.build_dir.join(&out.at);
                std::fs::create_dir_all(at.parent().unwrap()).unwrap();
                std::fs::write(&at, format!("{name} built")).unwrap();
            }
            Ok(Executed {
                failure: None,
                log: format!("{name}: warning: from afar\n"),
                landlock_abi: Some(7),
                warning: None,
            })
        }
    }

    /// Every step the scheduler builds goes through the configured executor (none runs
    /// in the local sandbox, whose clang does not exist here); what it leaves in the
    /// build directory is registered and recorded like a local build's, so the next
    /// realisation finds it fresh without asking the executor again. A builder that
    /// fails there fails the step with its log, and its dependents are skipped.
    #[test]
    fn steps_run_through_the_configured_executor() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let a = step("a", &[]);
        let pa = a.drv_path().unwrap();
        let b = step("b", &[&pa]);
        let pb = b.drv_path().unwrap();
        let tc = absent_toolchain(a.toolchain);
        let drvs = BTreeMap::from([(pa.clone(), a), (pb.clone(), b)]);
        let opts = two_jobs();
        let run = |executor: &Recording| {
            let env = test_env(&tc, executor);
            realise(
                &store,
                &drvs,
                std::slice::from_ref(&pb),
                &env,
                &opts,
                &Silent,
            )
            .unwrap()
        };

        let failing = Recording {
            fails: Some("a.o"),
            ..Default::default()
        };
        let r = run(&failing);
        assert_eq!(*failing.ran.lock().unwrap(), ["a.o"]);
        assert_eq!(r.skipped, std::slice::from_ref(&pb));
        match &r.failures[..] {
            [(d, BuildError::Failed { exit, log, .. })] => {
                assert_eq!(d, &pa);
                assert_eq!(exit, "exit code 3");
                assert!(log.contains("remote builder says no"), "{log}");
            }
            other => panic!("unexpected failures {other:?}"),
        }

        let unreachable = Recording {
            unreachable: Some("a.o"),
            ..Default::default()
        };
        let r = run(&unreachable);
        match &r.failures[..] {
            [(d, e @ BuildError::Store { name, .. })] => {
                assert_eq!((d, name.as_str()), (&pa, "a.o"));
                assert!(e.to_string().contains("uploading the inputs to"), "{e}");
            }
            other => panic!("unexpected failures {other:?}"),
        }
        // Its build directory is not left behind.
        let tmp = std::fs::read_dir(store.dir("tmp")).unwrap();
        let left: Vec<_> = tmp.flatten().map(|e| e.file_name()).collect();
        assert!(
            left.iter()
                .all(|n| !n.to_string_lossy().starts_with("build")),
            "{left:?}"
        );

        let remote = Recording::default();
        let r = run(&remote);
        assert!(r.success(), "{:?}", r.failures);
        assert_eq!(*remote.ran.lock().unwrap(), ["a.o", "b.o"]);
        let obj = &r.outputs[&pb]["obj"];
        assert_eq!(
            std::fs::read_to_string(store.path_of(obj)).unwrap(),
            "b.o built"
        );
        let info = store.path_info(obj).unwrap();
        assert_eq!(info.landlock_abi, Some(7));

        let again = Recording::default();
        let r = run(&again);
        assert!(again.ran.lock().unwrap().is_empty());
        assert_eq!(r.fresh, 2);
    }
}
