//! Building one resolved derivation in the sandbox and registering its outputs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cmod_sandbox::{Action, Limits, Link, Mode, SandboxError};
use cmod_schema::derivation::{Derivation, InputFrom, Tool};
use cmod_schema::toolchain::ToolchainInfo;
use cmod_schema::{ContentHash, PathKind, StorePath};

use crate::content::{self, candidates};
use crate::error::StoreError;
use crate::layout::Store;
use crate::lock::Lock;
use crate::registry::Registration;
use crate::trace::{TraceEntry, TRACE_VERSION};

/// How builds run.
#[derive(Debug, Clone)]
pub struct BuildEnv<'a> {
    pub toolchain: &'a ToolchainInfo,
    pub sandbox: Mode,
    pub limits: Limits,
    /// Keep the build directory of a failed build.
    pub keep_failed: bool,
}

/// Why one derivation could not be realised.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{name}: the builder failed with {exit}")]
    Failed {
        name: String,
        exit: String,
        log: String,
        kept: Option<PathBuf>,
    },
    #[error("{name}: {source}")]
    Sandbox {
        name: String,
        #[source]
        source: SandboxError,
    },
    #[error("{name}: {source}")]
    Store {
        name: String,
        #[source]
        source: StoreError,
    },
    #[error("{name}: the builder exited successfully but did not write output `{at}`")]
    MissingOutput {
        name: String,
        at: String,
        log: String,
    },
    #[error("{name}: it needs toolchain {wanted}, but the current toolchain is {have}")]
    Toolchain {
        name: String,
        wanted: ContentHash,
        have: ContentHash,
    },
}

/// The result of realising one derivation.
pub(crate) enum Realised {
    Built(BTreeMap<String, StorePath>),
    Fresh(BTreeMap<String, StorePath>),
}

/// Build `resolved` (the resolution of `drv`, keyed `key`) unless another process did
/// meanwhile. Holds the per-key lock for the whole build.
pub(crate) fn build(
    store: &Store,
    drv_path: &StorePath,
    resolved: &Derivation,
    key: &ContentHash,
    env: &BuildEnv<'_>,
) -> Result<Realised, BuildError> {
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
    let lock_file = store
        .dir("locks")
        .join(format!("key-{}.lock", &key.to_text()[7..39]));
    let _lock = Lock::acquire(&lock_file).map_err(st)?;
    if let Some(entry) = store.trace_lookup(key) {
        return Ok(Realised::Fresh(entry.outputs));
    }

    let build_dir = store.temp_path("build");
    std::fs::create_dir_all(&build_dir)
        .map_err(|e| st(StoreError::io("creating", &build_dir, e)))?;
    let log_path = build_dir.with_extension("log");
    let inputs: BTreeSet<&StorePath> = resolved.input_paths();
    let links = resolved
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
    let program = match resolved.tool {
        Tool::Cxx => env.toolchain.cxx.clone(),
        Tool::Ar => env.toolchain.ar.clone(),
    };
    let action = Action {
        program,
        args: resolved.args.clone(),
        env: resolved
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        build_dir: build_dir.clone(),
        store_dir: store.store_dir(),
        inputs: inputs.iter().map(|p| p.to_string()).collect(),
        links,
        toolchain: env.toolchain.closure.clone(),
        outputs: resolved
            .outputs
            .values()
            .map(|o| PathBuf::from(&o.at))
            .collect(),
        log_path: log_path.clone(),
        limits: env.limits,
    };
    let cleanup = |keep: bool| -> Option<PathBuf> {
        if keep {
            Some(build_dir.clone())
        } else {
            let _ = content::remove(&build_dir);
            let _ = std::fs::remove_file(&log_path);
            None
        }
    };
    let outcome = match cmod_sandbox::run(env.sandbox, &action) {
        Ok(o) => o,
        Err(source) => {
            cleanup(env.keep_failed);
            return Err(BuildError::Sandbox { name, source });
        }
    };
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    if !outcome.exit.success() {
        let kept = cleanup(env.keep_failed);
        return Err(BuildError::Failed {
            name,
            exit: outcome.exit.to_string(),
            log,
            kept,
        });
    }

    let cands = candidates(inputs.iter().copied());
    let mut outputs = BTreeMap::new();
    for (key_name, out) in &resolved.outputs {
        let produced = build_dir.join(&out.at);
        if std::fs::symlink_metadata(&produced).is_err() {
            cleanup(env.keep_failed);
            return Err(BuildError::MissingOutput {
                name,
                at: out.at.clone(),
                log,
            });
        }
        if let Err(e) = content::check_output(&produced, &out.at) {
            cleanup(env.keep_failed);
            return Err(st(e));
        }
        // Move the output out of the build directory before registering it.
        let staged = store.temp_path("out");
        std::fs::rename(&produced, &staged)
            .map_err(|e| st(StoreError::io("staging output", &produced, e)))?;
        let reg = Registration {
            kind: PathKind::Output,
            name: &out.name,
            deriver: Some(drv_path),
            sandbox: Some(env.sandbox.as_str()),
            landlock_abi: outcome.enforcement.landlock_abi,
            candidates: &cands,
        };
        let info = store.register(&staged, &reg).map_err(st)?;
        outputs.insert(key_name.clone(), info.path);
    }
    store.keep_log(key, &log_path, &outputs).map_err(st)?;
    store
        .trace_record(&TraceEntry {
            version: TRACE_VERSION,
            key: *key,
            drv: drv_path.clone(),
            sandbox: env.sandbox.as_str().into(),
            outputs: outputs.clone(),
            signatures: BTreeSet::new(),
        })
        .map_err(st)?;
    cleanup(false);
    Ok(Realised::Built(outputs))
}
