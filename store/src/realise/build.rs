//! Building one resolved derivation in the sandbox and registering its outputs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cmod_sandbox::{Limits, Mode, SandboxError};
use cmod_schema::derivation::{Derivation, InputFrom, StepKind};
use cmod_schema::toolchain::ToolchainInfo;
use cmod_schema::{ContentHash, PathKind, StorePath};

use crate::content::{self, candidates};
use crate::error::StoreError;
use crate::layout::Store;
use crate::lock::Lock;
use crate::registry::Registration;
use crate::trace::{TraceEntry, TRACE_VERSION};

use super::events::{Event, Reporter};
use super::executor::{ExecError, Executor, Job};
use super::speculate::Speculation;
use super::step_cache::{self, StepCacheError, StepCacheUse};
use super::Step;

/// How builds run.
#[derive(Debug, Clone)]
pub struct BuildEnv<'a> {
    /// The toolchain every step must have been derived with.
    pub toolchain: &'a ToolchainInfo,
    /// The sandbox mode builders run in.
    pub sandbox: Mode,
    /// Time and output-size limits of each builder.
    pub limits: Limits,
    /// Keep the build directory of a failed build.
    pub keep_failed: bool,
    /// Other sandbox modes whose outputs may be reused when the current mode has none
    /// (`--accept-outputs-from`); empty by default, so modes never share outputs.
    pub accept_from: Vec<Mode>,
    /// Keys that sign every path and trace entry built.
    pub signing: &'a [crate::sign::SecretKey],
    /// Where builders run ([`LocalSandbox`](super::LocalSandbox) here, or remotely).
    pub executor: &'a dyn Executor,
    /// A per-step cache asked before each build and told about each (a REAPI action
    /// cache), with the trust its answers need; `None` for none.
    pub step_cache: Option<StepCacheUse<'a>>,
    /// Builds started ahead of the evaluation, taken in place of running a builder when
    /// their key is the step's, and where the recipes of steps built are recorded; `None`
    /// for none (see [`Speculation`]).
    pub speculation: Option<&'a Speculation>,
}

impl<'a> BuildEnv<'a> {
    /// Builds by `executor` in `sandbox` with `toolchain` and `limits`, and nothing else:
    /// no failed build kept, no other mode's outputs, nothing signed, no step cache, no
    /// builds ahead.
    pub fn plain(
        toolchain: &'a ToolchainInfo,
        sandbox: Mode,
        limits: Limits,
        executor: &'a dyn Executor,
    ) -> BuildEnv<'a> {
        BuildEnv {
            toolchain,
            sandbox,
            limits,
            keep_failed: false,
            accept_from: Vec::new(),
            signing: &[],
            executor,
            step_cache: None,
            speculation: None,
        }
    }
}

/// Why one derivation could not be realised.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The builder ran and exited unsuccessfully.
    #[error("{name}: the builder failed with {exit}{}", no_space_note(.no_space.as_deref()))]
    Failed {
        /// The derivation's name.
        name: String,
        /// How it ended (`exit code 1`, `signal 9`).
        exit: String,
        /// The builder's output.
        log: String,
        /// Where the build directory was kept (`--keep-failed`).
        kept: Option<PathBuf>,
        /// The builder ran out of space (`ENOSPC`, `EDQUOT`) in this directory (the store's
        /// `tmp/`, which holds build directories); see [`out_of_space`].
        no_space: Option<PathBuf>,
    },
    /// The sandbox could not run the builder, or stopped it at a limit.
    #[error("{name}: {source}")]
    Sandbox {
        /// The derivation's name.
        name: String,
        /// The sandbox's error.
        #[source]
        source: SandboxError,
    },
    /// The store failed while preparing the build or registering its outputs.
    #[error("{name}: {source}")]
    Store {
        /// The derivation's name.
        name: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The builder succeeded but left an output unwritten.
    #[error("{name}: the builder exited successfully but did not write output `{at}`")]
    MissingOutput {
        /// The derivation's name.
        name: String,
        /// The missing output, relative to the build directory.
        at: String,
        /// The builder's output.
        log: String,
    },
    /// A generator wrote a file under `out/` that is not one of its declared outputs.
    #[error("{name}: the program wrote `{at}`, which is not one of its declared outputs")]
    UndeclaredOutput {
        /// The derivation's name.
        name: String,
        /// The undeclared file, relative to the build directory.
        at: String,
        /// The builder's output.
        log: String,
    },
    /// The derivation was made for another toolchain than the current one.
    #[error("{name}: it needs toolchain {wanted}, but the current toolchain is {have}")]
    Toolchain {
        /// The derivation's name.
        name: String,
        /// The toolchain identity the derivation names.
        wanted: ContentHash,
        /// The identity of the current toolchain.
        have: ContentHash,
    },
    /// A remote executor could not run the builder.
    #[error("{name}: the remote executor could not run it: {reason}")]
    Remote {
        /// The derivation's name.
        name: String,
        /// What went wrong.
        reason: String,
        /// How to fix it.
        help: Option<String>,
    },
    /// The sources the step reads could not be added to the store (the realisation
    /// reports why).
    #[error("{name}: the sources it reads could not be added to the store")]
    SourcesUnavailable {
        /// The derivation's name.
        name: String,
    },
    /// A bug: realising the step panicked. The other steps stop as after a failure.
    #[error("{name}: internal error while realising it ({message}); please report it")]
    Panicked {
        /// The derivation's name.
        name: String,
        /// The panic's message.
        message: String,
    },
}

impl BuildError {
    /// The error for a step whose realisation panicked with `payload`.
    pub fn from_panic(name: &str, payload: &(dyn std::any::Any + Send)) -> BuildError {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        BuildError::Panicked {
            name: name.to_string(),
            message,
        }
    }
}

fn no_space_note(dir: Option<&std::path::Path>) -> String {
    dir.map(|d| {
        format!(
            ": it ran out of space (No space left on device) in `{}`",
            d.display()
        )
    })
    .unwrap_or_default()
}

/// Whether a failed builder ran out of space: its log says so (the sandbox keeps room in
/// the log for that last message), or the log is empty and the file system of its build
/// directory is (nearly) full now.
fn out_of_space(log: &str, build_dir: &std::path::Path) -> bool {
    const SAID: [&str; 2] = ["No space left on device", "Disk quota exceeded"];
    if SAID.iter().any(|s| log.contains(s)) {
        return true;
    }
    if !log.trim().is_empty() {
        return false;
    }
    nix::sys::statvfs::statvfs(build_dir).is_ok_and(|s| {
        // fsblkcnt_t and c_ulong are not u64 on every target.
        #[allow(clippy::unnecessary_cast)]
        let free = (s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64);
        free < 1 << 20 || (s.files() > 0 && s.files_available() == 0)
    })
}

/// The result of realising one derivation.
pub(crate) enum Realised {
    /// Built here; `log` is what the builder printed (its warnings); `speculative` when
    /// its builder was started ahead of the evaluation (see [`Speculation`]).
    Built {
        outputs: BTreeMap<String, StorePath>,
        log: String,
        speculative: bool,
    },
    Fresh(BTreeMap<String, StorePath>),
    /// Fetched from the step cache at `from` (checked and imported).
    Substituted {
        outputs: BTreeMap<String, StorePath>,
        from: String,
    },
    /// Rebuilt for `--check` and compared with the stored outputs (which stay in use).
    Checked {
        outputs: BTreeMap<String, StorePath>,
        differences: Vec<Difference>,
    },
}

/// One way a rebuilt output differs from the stored one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The output name (`obj`, `bmi`, ...).
    pub output: String,
    /// The stored path it was compared with.
    pub stored: StorePath,
    /// The differing file, relative to the output (empty for a single-file output).
    pub file: String,
    /// Size of the stored file (`None` if absent or not a regular file).
    pub stored_size: Option<u64>,
    /// Size of the rebuilt file (`None` if absent or not a regular file).
    pub rebuilt_size: Option<u64>,
    /// The first byte offset at which the contents differ, when both are files.
    pub first_difference: Option<u64>,
    /// Where the rebuilt copy was kept (`--keep-failed`).
    pub kept: Option<PathBuf>,
    /// The stored copy no longer hashes to what was recorded when it was registered: it
    /// is corrupt (damaged on disk), which says nothing about the build's reproducibility.
    pub stored_corrupt: bool,
}

/// A finished, successful builder run whose outputs are still in its build directory.
pub(crate) struct Run {
    build_dir: PathBuf,
    log_path: PathBuf,
    landlock_abi: Option<u8>,
    /// What the builder printed (warnings, for a successful build).
    log: String,
    /// What the executor wants the user to know (see [`super::Executed::warning`]).
    warning: Option<String>,
}

impl Run {
    pub(crate) fn discard(&self) {
        let _ = content::remove(&self.build_dir);
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// A new, empty build directory under the store's `tmp/`.
fn fresh_build_dir(store: &Store) -> Result<PathBuf, StoreError> {
    let build_dir = store.temp_path("build");
    std::fs::create_dir_all(&build_dir).map_err(|e| StoreError::io("creating", &build_dir, e))?;
    Ok(build_dir)
}

/// The job that runs `resolved`'s builder for `step` in `build_dir`.
fn job_for<'a>(
    store: &'a Store,
    step: &'a Step<'_>,
    resolved: &'a Derivation,
    env: &'a BuildEnv<'_>,
    build_dir: &'a std::path::Path,
    log_path: &'a std::path::Path,
) -> Job<'a> {
    Job {
        store,
        drv_path: step.drv_path,
        resolved,
        modules: step.modules,
        build_dir,
        log_path,
        keep_view: step.keep_view,
        toolchain: env.toolchain,
        sandbox: env.sandbox,
        limits: env.limits,
    }
}

fn per_key_lock(store: &Store, key: &ContentHash, name: &str) -> Result<Lock, StoreError> {
    Lock::acquire_ephemeral(
        &store
            .dir("locks")
            .join(format!("key-{}.lock", &key.to_text()[7..39])),
        &format!("the build of {name} (another process is building it)"),
    )
}

/// Run the builder of `resolved` in a fresh build directory and check that it produced
/// every declared output safely.
pub(super) fn run_builder(
    store: &Store,
    resolved: &Derivation,
    step: &Step<'_>,
    env: &BuildEnv<'_>,
) -> Result<Run, BuildError> {
    let name = resolved.name.clone();
    let st = |source: StoreError| BuildError::Store {
        name: name.clone(),
        source,
    };
    if resolved.toolchain != env.toolchain.identity {
        return Err(BuildError::Toolchain {
            name,
            wanted: resolved.toolchain,
            have: env.toolchain.identity,
        });
    }
    let build_dir = fresh_build_dir(store).map_err(st)?;
    let log_path = build_dir.with_extension("log");
    let run = Run {
        build_dir: build_dir.clone(),
        log_path: log_path.clone(),
        landlock_abi: None,
        log: String::new(),
        warning: None,
    };
    // On failure the build directory is kept only with --keep-failed.
    let fail = |run: &Run| -> Option<PathBuf> {
        if env.keep_failed {
            Some(run.build_dir.clone())
        } else {
            run.discard();
            None
        }
    };
    let job = job_for(store, step, resolved, env, &build_dir, &log_path);
    let executed = match env.executor.execute(&job) {
        Ok(executed) => executed,
        Err(e) => {
            fail(&run);
            return Err(match e {
                ExecError::Sandbox(source) => BuildError::Sandbox { name, source },
                ExecError::Store(source) => BuildError::Store { name, source },
                ExecError::Remote { reason, help } => BuildError::Remote { name, reason, help },
            });
        }
    };
    // An executor that ran elsewhere returns the log without leaving it here.
    if !log_path.exists() {
        std::fs::write(&log_path, &executed.log)
            .map_err(|e| st(StoreError::io("writing", &log_path, e)))?;
    }
    if let Some(exit) = executed.failure {
        let no_space = out_of_space(&executed.log, &build_dir).then(|| store.dir("tmp"));
        let kept = fail(&run);
        return Err(BuildError::Failed {
            name,
            exit,
            log: executed.log,
            kept,
            no_space,
        });
    }
    if let Err(e) = check_outputs(resolved, &build_dir, &executed.log) {
        fail(&run);
        return Err(e);
    }
    Ok(Run {
        landlock_abi: executed.landlock_abi,
        log: executed.log,
        warning: executed.warning,
        ..run
    })
}

/// Every declared output of `resolved` exists in `build_dir` and is safe to register
/// (`log` goes into the error naming a missing one).
fn check_outputs(
    resolved: &Derivation,
    build_dir: &std::path::Path,
    log: &str,
) -> Result<(), BuildError> {
    for out in resolved.outputs.values() {
        let produced = build_dir.join(&out.at);
        if std::fs::symlink_metadata(&produced).is_err() {
            return Err(BuildError::MissingOutput {
                name: resolved.name.clone(),
                at: out.at.clone(),
                log: log.to_string(),
            });
        }
        content::check_output(&produced, &out.at).map_err(|source| BuildError::Store {
            name: resolved.name.clone(),
            source,
        })?;
    }
    if resolved.kind == StepKind::Generate {
        if let Some(at) = undeclared_output(resolved, build_dir) {
            return Err(BuildError::UndeclaredOutput {
                name: resolved.name.clone(),
                at,
                log: log.to_string(),
            });
        }
    }
    Ok(())
}

/// The first file in a generator's build directory that is neither one of its inputs
/// nor one of its declared outputs (a generator writes exactly the files it declares, so
/// every consumer knows what it reads). The sandbox's private `/tmp` (`.tmp`) is not
/// looked at.
fn undeclared_output(resolved: &Derivation, build_dir: &std::path::Path) -> Option<String> {
    let known: BTreeSet<&str> = resolved
        .outputs
        .values()
        .map(|o| o.at.as_str())
        .chain(resolved.inputs.iter().map(|i| i.at.as_str()))
        .collect();
    let mut stack = vec![build_dir.to_path_buf()];
    let mut found: Vec<String> = Vec::new();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(build_dir)
                .ok()?
                .to_string_lossy()
                .into_owned();
            if rel == ".tmp" || known.contains(rel.as_str()) {
                continue;
            }
            match entry.file_type().is_ok_and(|t| t.is_dir()) {
                true => stack.push(path),
                false => found.push(rel),
            }
        }
    }
    found.sort();
    found.into_iter().next()
}

/// Keep the log of a failed attempt to build `drv_path` (under `key`) in the store, so
/// `cmod log` shows it. If it cannot be kept, the log the user sees says so.
fn keep_failure_log(
    store: &Store,
    drv_path: &StorePath,
    key: &ContentHash,
    mut error: BuildError,
) -> BuildError {
    if let BuildError::Failed { log, .. }
    | BuildError::MissingOutput { log, .. }
    | BuildError::UndeclaredOutput { log, .. } = &mut error
    {
        if let Err(e) = store.keep_failed_log(key, drv_path, log.as_bytes()) {
            log.push_str(&format!(
                "\nnote: this log could not be kept in the store: {e}\n"
            ));
        }
    }
    error
}

/// Build `resolved` (the resolution of `drv`, keyed `key`) unless another process did
/// meanwhile, and register its outputs. Holds the per-key lock for the whole build.
pub(crate) fn build(
    store: &Store,
    step: &Step<'_>,
    resolved: &Derivation,
    key: &ContentHash,
    env: &BuildEnv<'_>,
    reporter: &dyn Reporter,
) -> Result<Realised, BuildError> {
    let drv_path = step.drv_path;
    let name = resolved.name.clone();
    let st = |source: StoreError| BuildError::Store {
        name: name.clone(),
        source,
    };
    let _lock = per_key_lock(store, key, &name).map_err(st)?;
    if let Some(entry) = store.trace_lookup(key) {
        return Ok(Realised::Fresh(entry.outputs));
    }
    if let Some(cache) = env.step_cache {
        if let Some(fetched) = from_step_cache(store, step, resolved, key, env, cache, reporter) {
            return Ok(fetched);
        }
    }
    reporter.event(&Event::Started {
        drv: drv_path,
        name: &step.drv.name,
        derivation: step.drv,
    });
    let ahead = env.speculation.and_then(|s| s.take(key, step.modules));
    let speculative = ahead.is_some();
    let run = ahead
        .unwrap_or_else(|| run_builder(store, resolved, step, env))
        .map_err(|e| keep_failure_log(store, drv_path, key, e))?;
    if let Some(message) = &run.warning {
        reporter.event(&Event::Warning { message });
    }
    let cands = candidates(resolved.input_paths());
    // A BMI references the BMIs it was built against: its store path then pins its
    // whole module closure (see `cmod_schema::derivation`).
    let bmi_inputs: BTreeSet<StorePath> = resolved
        .bmi_inputs()
        .filter_map(|i| match &i.from {
            InputFrom::Path { path, .. } => Some(path.clone()),
            InputFrom::Drv { .. } => None,
        })
        .collect();
    let none = BTreeSet::new();
    let mut outputs = BTreeMap::new();
    for (key_name, out) in &resolved.outputs {
        let produced = run.build_dir.join(&out.at);
        // Move the output out of the build directory before registering it.
        let staged = store.temp_path("out");
        std::fs::rename(&produced, &staged)
            .map_err(|e| st(StoreError::io("staging output", &produced, e)))?;
        let reg = Registration {
            kind: PathKind::Output,
            name: &out.name,
            deriver: Some(drv_path),
            sandbox: Some(env.sandbox.as_str()),
            landlock_abi: run.landlock_abi,
            candidates: &cands,
        };
        let extra = if out.module.is_some() {
            &bmi_inputs
        } else {
            &none
        };
        let info = store
            .register_referencing(&staged, &reg, extra)
            .map_err(st)?;
        outputs.insert(key_name.clone(), info.path);
    }
    store
        .keep_log(key, drv_path, &run.log_path, &outputs)
        .map_err(st)?;
    let mut entry = TraceEntry {
        version: TRACE_VERSION,
        key: *key,
        drv: drv_path.clone(),
        sandbox: env.sandbox.as_str().into(),
        outputs: outputs.clone(),
        signatures: BTreeSet::new(),
    };
    crate::substitute::sign_built(store, env.signing, &mut entry).map_err(st)?;
    store.trace_record(&entry).map_err(st)?;
    // Only what is signed is shared: an unsigned result would be refused by every reader
    // that requires signatures (the default), and would replace a signed one.
    if let Some(cache) = env.step_cache.filter(|_| !entry.signatures.is_empty()) {
        // The log has moved to where `cmod log` finds it.
        let kept_log = store.log_file(key);
        let job = job_for(store, step, resolved, env, &run.build_dir, &kept_log);
        if let Err(e) = cache.cache.publish(&job, &entry) {
            let message = match e {
                StepCacheError::Unreachable { .. } | StepCacheError::Refused { .. } => {
                    format!("{e}; not sharing what is built")
                }
                StepCacheError::Failed { .. } => format!("{e}; {name} was built but not shared"),
            };
            reporter.event(&Event::Warning { message: &message });
        }
    }
    run.discard();
    Ok(Realised::Built {
        outputs,
        log: run.log,
        speculative,
    })
}

/// Ask the step cache for `resolved` (keyed `key`); the outputs it had, checked and
/// imported, or `None` (a miss, or an answer refused with a warning: the step is then
/// built here).
fn from_step_cache(
    store: &Store,
    step: &Step<'_>,
    resolved: &Derivation,
    key: &ContentHash,
    env: &BuildEnv<'_>,
    cache: StepCacheUse<'_>,
    reporter: &dyn Reporter,
) -> Option<Realised> {
    let warn = |message: String| reporter.event(&Event::Warning { message: &message });
    let url = cache.cache.url();
    let build_dir = match fresh_build_dir(store) {
        Ok(dir) => dir,
        Err(e) => {
            warn(format!(
                "remote cache `{url}` not asked for {}: {e}",
                resolved.name
            ));
            return None;
        }
    };
    let log_path = build_dir.with_extension("log");
    let job = job_for(store, step, resolved, env, &build_dir, &log_path);
    let taken = match cache.cache.fetch(&job, key) {
        Ok(None) => None,
        Err(e @ (StepCacheError::Unreachable { .. } | StepCacheError::Refused { .. })) => {
            warn(format!("{e}; building locally instead"));
            None
        }
        Err(e) => {
            warn(format!("{e}; building {} here", resolved.name));
            None
        }
        Ok(Some(cached)) => match step_cache::accept(&job, resolved, key, &cached, &cache) {
            Ok(outputs) => match store.trace_record(&cached.entry) {
                Ok(()) => Some(Realised::Substituted {
                    outputs,
                    from: url.clone(),
                }),
                Err(e) => {
                    warn(format!(
                        "remote cache `{url}`: {e}; building {} here",
                        resolved.name
                    ));
                    None
                }
            },
            Err(why) => {
                warn(format!(
                    "remote cache `{url}` has a result for {} that was refused: {why}; building it here",
                    resolved.name
                ));
                None
            }
        },
    };
    let _ = content::remove(&build_dir);
    taken
}

/// Rebuild `resolved` and compare every output with `stored` bit for bit. The stored
/// outputs stay the ones in use; with `keep_failed`, a differing rebuilt output is kept
/// beside the original as `<path>.check`.
pub(crate) fn check(
    store: &Store,
    step: &Step<'_>,
    resolved: &Derivation,
    key: &ContentHash,
    stored: BTreeMap<String, StorePath>,
    env: &BuildEnv<'_>,
) -> Result<Realised, BuildError> {
    let name = resolved.name.clone();
    let st = |source: StoreError| BuildError::Store {
        name: name.clone(),
        source,
    };
    let _lock = per_key_lock(store, key, &name).map_err(st)?;
    let run = run_builder(store, resolved, step, env)
        .map_err(|e| keep_failure_log(store, step.drv_path, key, e))?;
    let mut differences = Vec::new();
    for (key_name, out) in &resolved.outputs {
        let Some(path) = stored.get(key_name) else {
            continue;
        };
        let rebuilt = run.build_dir.join(&out.at);
        let original = store.path_of(path);
        let diffs = content::diff_trees(&original, &rebuilt).map_err(st)?;
        if diffs.is_empty() {
            continue;
        }
        let stored_corrupt = store.damage_of(path, true).is_some();
        let kept = if env.keep_failed {
            let dest = PathBuf::from(format!("{}.check", original.display()));
            let _ = content::remove(&dest);
            std::fs::rename(&rebuilt, &dest)
                .map_err(|e| st(StoreError::io("keeping the rebuilt output", &dest, e)))?;
            Some(dest)
        } else {
            None
        };
        for d in diffs {
            differences.push(Difference {
                output: key_name.clone(),
                stored: path.clone(),
                file: d.file,
                stored_size: d.left_size,
                rebuilt_size: d.right_size,
                first_difference: d.first_difference,
                kept: kept.clone(),
                stored_corrupt,
            });
        }
    }
    run.discard();
    Ok(Realised::Checked {
        outputs: stored,
        differences,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_builder_that_said_it_ran_out_of_space_did() {
        let t = tempfile::tempdir().unwrap();
        let said =
            "fatal error: error in backend: IO failure on output stream: No space left on device\n";
        assert!(out_of_space(said, t.path()));
        assert!(out_of_space(
            "ld.lld: error: Disk quota exceeded\n",
            t.path()
        ));
        // An ordinary failure, or silence on a file system with room, is not.
        assert!(!out_of_space("error: expected ';'\n", t.path()));
        assert!(!out_of_space("", t.path()));
        let e = BuildError::Failed {
            name: "x.o".into(),
            exit: "exit code 1".into(),
            log: said.into(),
            kept: None,
            no_space: Some("/s/v1/tmp".into()),
        };
        assert_eq!(
            e.to_string(),
            "x.o: the builder failed with exit code 1: it ran out of space (No space left on device) in `/s/v1/tmp`"
        );
    }
}
