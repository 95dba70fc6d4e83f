//! The REAPI Action of a resolved build step.
//!
//! - **Command**: the builder's program and argument vector exactly as the local sandbox runs
//!   them, the derivation's own environment, the declared outputs (`output_paths`, sorted)
//!   and the platform properties a worker must match: OS, architecture, the toolchain's
//!   identity and the sandbox mode.
//! - **Input root**: the step's build directory as the builder sees it: every input at its
//!   stable name, the transitive BMIs, the module map, and `.cmod/derivation.json` (the
//!   resolved derivation's canonical bytes, which pin everything else the step depends on:
//!   host files, toolchain, flags) for the worker that runs it.
//!
//! Equal steps give equal Actions on every machine (nothing host-specific but the
//! toolchain's paths, which its identity pins too), so the Action's digest is the key under
//! which results are shared. It is a pure function of the step's trace key plus the inputs'
//! contents (which the key pins), so it is remembered per trace key (see [`ActionMemo`]).

use std::path::PathBuf;

use cmod_reapi::proto::build::bazel::remote::execution::v2 as re;
use cmod_reapi::{Digest, MerkleTree, RootBuilder};
use cmod_schema::derivation::{InputFrom, Tool, MODULE_MAP};
use cmod_schema::ContentHash;
use cmod_store::realise::{module_map, Job};
use prost::Message;

use crate::digests::PathDigests;

/// Where the resolved derivation is in a step's input root.
pub const DERIVATION_FILE: &str = ".cmod/derivation.json";

/// Platform property names (besides REAPI's `OSFamily` and `ISA`).
pub const TOOLCHAIN_PROPERTY: &str = "cmod-toolchain";
/// The sandbox mode the step runs in.
pub const SANDBOX_PROPERTY: &str = "cmod-sandbox";

/// A step as a REAPI Action, with everything needed to upload it.
#[derive(Debug, Clone)]
pub struct StepAction {
    /// The Action's digest: its key in the action cache.
    pub digest: Digest,
    /// The encoded Action.
    pub action: Vec<u8>,
    /// The encoded Command.
    pub command: Vec<u8>,
    /// The input root.
    pub root: MerkleTree,
}

/// Why a step has no Action.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// An input could not be read or hashed.
    #[error("{0}")]
    Input(#[from] cmod_reapi::Error),
    /// The derivation could not be encoded, or names an unresolved input.
    #[error("{0}")]
    Derivation(String),
}

/// The platform properties of steps built by `job`'s toolchain in its sandbox mode, sorted.
pub fn platform(job: &Job<'_>) -> re::Platform {
    let property = |name: &str, value: String| re::platform::Property {
        name: name.to_string(),
        value,
    };
    let mut properties = vec![
        property("ISA", std::env::consts::ARCH.to_string()),
        property("OSFamily", std::env::consts::OS.to_string()),
        property(SANDBOX_PROPERTY, job.sandbox.as_str().to_string()),
        property(TOOLCHAIN_PROPERTY, job.toolchain.identity.to_text()),
    ];
    properties.sort_by(|a, b| (&a.name, &a.value).cmp(&(&b.name, &b.value)));
    re::Platform { properties }
}

/// The Command of `job`'s step.
pub fn command(job: &Job<'_>) -> re::Command {
    let resolved = job.resolved;
    let program = match resolved.tool {
        Tool::Cxx => &job.toolchain.cxx,
        Tool::Ar => &job.toolchain.ar,
    };
    let mut arguments = vec![program.to_string_lossy().into_owned()];
    arguments.extend(resolved.args.iter().cloned());
    let mut output_paths: Vec<String> = resolved.outputs.values().map(|o| o.at.clone()).collect();
    output_paths.sort();
    #[allow(deprecated)]
    re::Command {
        arguments,
        // A BTreeMap: sorted by name, as REAPI requires.
        environment_variables: resolved
            .env
            .iter()
            .map(|(name, value)| re::command::EnvironmentVariable {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        output_paths,
        platform: Some(platform(job)),
        ..Default::default()
    }
}

/// The input root of `job`'s step.
pub fn input_root(job: &Job<'_>, digests: &PathDigests) -> Result<MerkleTree, ActionError> {
    let resolved = job.resolved;
    let mut root = RootBuilder::new();
    for input in &resolved.inputs {
        let InputFrom::Path { path, sub } = &input.from else {
            return Err(ActionError::Derivation(format!(
                "{}: input `{}` is not resolved",
                resolved.name, input.at
            )));
        };
        digests
            .get(job.store, path, sub.as_deref())?
            .add_to(&mut root, &input.at)?;
    }
    let direct: std::collections::BTreeSet<&str> =
        resolved.inputs.iter().map(|i| i.at.as_str()).collect();
    for m in job
        .modules
        .iter()
        .filter(|m| !direct.contains(m.at.as_str()))
    {
        digests
            .get(job.store, &m.path, None)?
            .add_to(&mut root, &m.at)?;
    }
    if resolved.bmi_inputs().next().is_some() {
        root.add_bytes(MODULE_MAP, module_map(job.modules).into_bytes(), false)?;
    }
    let drv = resolved
        .canonical_bytes()
        .map_err(|e| ActionError::Derivation(e.to_string()))?;
    root.add_bytes(DERIVATION_FILE, drv, false)?;
    Ok(root.finish())
}

/// `job`'s step as an Action.
pub fn step_action(job: &Job<'_>, digests: &PathDigests) -> Result<StepAction, ActionError> {
    let root = input_root(job, digests)?;
    let command = command(job).encode_to_vec();
    let action = re::Action {
        command_digest: Some(Digest::of_bytes(&command).to_proto()),
        input_root_digest: Some(root.root_digest().to_proto()),
        platform: Some(platform(job)),
        ..Default::default()
    }
    .encode_to_vec();
    Ok(StepAction {
        digest: Digest::of_bytes(&action),
        action,
        command,
        root,
    })
}

/// Action digests remembered per trace key, in a directory of the store
/// (`<key>` → `<sha256 hex>/<size>`): looking a step up again (on a later run, or after
/// building it) then needs no hashing of its inputs.
#[derive(Debug, Clone)]
pub struct ActionMemo {
    dir: PathBuf,
}

impl ActionMemo {
    /// The memo kept in `dir`.
    pub fn new(dir: PathBuf) -> ActionMemo {
        ActionMemo { dir }
    }

    /// The remembered digest of the Action of the step keyed `key`.
    pub fn get(&self, key: &ContentHash) -> Option<Digest> {
        let text = std::fs::read_to_string(self.file(key)).ok()?;
        let (hash, size) = text.trim().split_once('/')?;
        Digest::from_hex(hash, size.parse().ok()?).ok()
    }

    /// Remember `digest` for `key` (best effort: the memo only saves work).
    pub fn put(&self, key: &ContentHash, digest: &Digest) {
        let file = self.file(key);
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::create_dir_all(&self.dir)
            .and_then(|()| {
                std::fs::write(&tmp, format!("{}/{}\n", digest.hash_hex(), digest.size()))
            })
            .and_then(|()| std::fs::rename(&tmp, &file));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    fn file(&self, key: &ContentHash) -> PathBuf {
        self.dir.join(&key.to_text()[7..])
    }
}
