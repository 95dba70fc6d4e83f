//! The REAPI Action of a resolved build step.
//!
//! - **Command**: the builder's program and argument vector exactly as the local sandbox runs
//!   them, the derivation's own environment, the declared outputs (`output_paths`, sorted)
//!   and the platform properties a worker must match: OS, architecture, the toolchain's
//!   identity and the sandbox mode.
//! - **Input root**: what the step reads, as a worker needs it to lay out exactly the build
//!   directory a local step gets: every store path it reads at `store/<name>` (direct inputs
//!   and the whole module closure), `.cmod/modules.json` (the closure: module, stable name,
//!   store path) and `.cmod/derivation.json` (the resolved derivation's canonical bytes,
//!   which pin everything else: stable names, host files, toolchain, flags).
//!
//! Equal steps give equal Actions on every machine (nothing host-specific but the
//! toolchain's paths, which its identity pins too), so the Action's digest is the key under
//! which results are shared. It is a pure function of the step's trace key plus the inputs'
//! contents (which the key pins), so it is remembered per trace key (see [`ActionMemo`]).

use std::path::PathBuf;

use cmod_reapi::proto::build::bazel::remote::execution::v2 as re;
use cmod_reapi::{Digest, MerkleTree, RootBuilder};
use cmod_schema::derivation::{Derivation, InputFrom, Tool};
use cmod_schema::toolchain::ToolchainInfo;
use cmod_schema::ContentHash;
use cmod_store::realise::Job;
use prost::Message;

use crate::digests::PathDigests;

/// Where the resolved derivation is in a step's input root.
pub const DERIVATION_FILE: &str = ".cmod/derivation.json";
/// Where the step's module closure is (`[{"module","at","path"}]`, in closure order).
pub const MODULES_FILE: &str = ".cmod/modules.json";
/// Where the store paths the step reads are, each under its name.
pub const STORE_DIR: &str = "store";

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

/// The platform properties of steps built by toolchain `toolchain` in sandbox mode
/// `sandbox`, sorted.
pub fn platform(toolchain: &ContentHash, sandbox: &str) -> re::Platform {
    let property = |name: &str, value: String| re::platform::Property {
        name: name.to_string(),
        value,
    };
    let mut properties = vec![
        property("ISA", std::env::consts::ARCH.to_string()),
        property("OSFamily", std::env::consts::OS.to_string()),
        property(SANDBOX_PROPERTY, sandbox.to_string()),
        property(TOOLCHAIN_PROPERTY, toolchain.to_text()),
    ];
    properties.sort_by(|a, b| (&a.name, &a.value).cmp(&(&b.name, &b.value)));
    re::Platform { properties }
}

/// The Command that runs `resolved` with `toolchain` in sandbox mode `sandbox`.
pub fn command_of(resolved: &Derivation, toolchain: &ToolchainInfo, sandbox: &str) -> re::Command {
    // A generator's program is one of its inputs, run from the working directory.
    let program = match resolved.tool {
        Tool::Cxx => toolchain.cxx.to_string_lossy().into_owned(),
        Tool::Ar => toolchain.ar.to_string_lossy().into_owned(),
        Tool::Program => format!("./{}", resolved.program_input().unwrap_or_default()),
    };
    let mut arguments = vec![program];
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
        platform: Some(platform(&toolchain.identity, sandbox)),
        ..Default::default()
    }
}

/// The input root of `job`'s step: every store path it reads under `store/<name>` (the
/// direct inputs and its module closure), its resolved derivation and its module closure
/// (`.cmod/`). A worker rebuilds from it exactly the view of the store a local step gets:
/// clang records an imported BMI's resolved path in the importer's signature, so a worker
/// must present inputs as the same store paths, not as plain files at their stable names.
pub fn input_root(job: &Job<'_>, digests: &PathDigests) -> Result<MerkleTree, ActionError> {
    let resolved = job.resolved;
    let mut root = RootBuilder::new();
    let mut paths = std::collections::BTreeSet::new();
    for input in &resolved.inputs {
        let InputFrom::Path { path, .. } = &input.from else {
            return Err(ActionError::Derivation(format!(
                "{}: input `{}` is not resolved",
                resolved.name, input.at
            )));
        };
        paths.insert(path);
    }
    paths.extend(job.modules.iter().map(|m| &m.path));
    for path in paths {
        digests
            .get(job.store, path)?
            .add_to(&mut root, &format!("{STORE_DIR}/{path}"))?;
    }
    let modules: Vec<serde_json::Value> = job
        .modules
        .iter()
        .map(|m| serde_json::json!({"module": m.module, "at": m.at, "path": m.path.to_string()}))
        .collect();
    root.add_bytes(
        MODULES_FILE,
        serde_json::Value::Array(modules).to_string().into_bytes(),
        false,
    )?;
    let drv = resolved
        .canonical_bytes()
        .map_err(|e| ActionError::Derivation(e.to_string()))?;
    root.add_bytes(DERIVATION_FILE, drv, false)?;
    Ok(root.finish())
}

/// `job`'s step as an Action.
pub fn step_action(job: &Job<'_>, digests: &PathDigests) -> Result<StepAction, ActionError> {
    let root = input_root(job, digests)?;
    let sandbox = job.sandbox.as_str();
    let command = command_of(job.resolved, job.toolchain, sandbox).encode_to_vec();
    let action = re::Action {
        command_digest: Some(Digest::of_bytes(&command).to_proto()),
        input_root_digest: Some(root.root_digest().to_proto()),
        platform: Some(platform(&job.toolchain.identity, sandbox)),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use cmod_sandbox::Mode;
    use cmod_schema::derivation::Derivation;
    use cmod_schema::toolchain::ToolchainInfo;
    use cmod_schema::PathKind;
    use cmod_store::realise::Job;
    use cmod_store::Store;

    use super::*;

    /// The step of `reapi/tests/action_golden.py`: one source compiled into an object.
    const GOLDEN_DERIVATION: &str = r#"{"args":["-c","src/m.cpp","-o","out/m.o"],"env":{"LANG":"C"},"inputs":[{"at":"src/m.cpp","from":{"path":"SOURCE"},"role":"source"}],"kind":"object","name":"m.o","outputs":{"obj":{"at":"out/m.o","name":"m.o"}},"tool":"c++","toolchain":"TOOLCHAIN","version":2}"#;

    fn toolchain() -> ToolchainInfo {
        serde_json::from_value(serde_json::json!({
            "identity": ContentHash([0; 32]),
            "version": "19.1.7",
            "version_text": "clang version 19.1.7",
            "stdlib": "libstdc++",
            "cxx": "/usr/bin/clang++-19",
            "scan_deps": "/usr/bin/clang-scan-deps-19",
            "ar": "/usr/bin/llvm-ar-19",
            "resource_dir": "/usr/lib/llvm-19/lib/clang/19",
            "closure": [],
        }))
        .unwrap()
    }

    /// The golden step in a store at `root`: its resolved derivation.
    fn golden_step(store: &Store) -> Derivation {
        let source = store
            .add_bytes(
                PathKind::Source,
                "m.cpp",
                b"int f() { return 1; }\n",
                &BTreeSet::new(),
            )
            .unwrap();
        let text = GOLDEN_DERIVATION
            .replace("SOURCE", &source.to_string())
            .replace("TOOLCHAIN", &ContentHash([0; 32]).to_text());
        serde_json::from_str(&text).unwrap()
    }

    fn digest_in(store: &Store, drv: &Derivation, sandbox: Mode) -> Digest {
        let tc = toolchain();
        let job = Job {
            store,
            drv_path: &drv.drv_path().unwrap(),
            resolved: drv,
            modules: &[],
            build_dir: std::path::Path::new("/nonexistent"),
            log_path: std::path::Path::new("/nonexistent.log"),
            keep_view: false,
            toolchain: &tc,
            sandbox,
            limits: Default::default(),
        };
        step_action(&job, &PathDigests::default()).unwrap().digest
    }

    #[test]
    fn the_action_of_a_step_is_frozen_and_independent_of_where_the_store_is() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::Builder::new()
            .prefix("another place ")
            .tempdir()
            .unwrap();
        let (sa, sb) = (
            Store::open(a.path()).unwrap(),
            Store::open(b.path()).unwrap(),
        );
        let (da, db) = (golden_step(&sa), golden_step(&sb));
        let source = match &da.inputs[0].from {
            InputFrom::Path { path, .. } => path.to_string(),
            InputFrom::Drv { .. } => unreachable!(),
        };
        // The values reapi/tests/action_golden.py derives the digest from.
        assert_eq!(source, "bvq1lkah43wi9g2l0bj0l7ynx2sa0jqc-m.cpp");
        assert_eq!(
            String::from_utf8(da.canonical_bytes().unwrap()).unwrap(),
            GOLDEN_DERIVATION
                .replace("SOURCE", &source)
                .replace("TOOLCHAIN", &ContentHash([0; 32]).to_text())
        );
        let digest = digest_in(&sa, &da, Mode::Full);
        assert_eq!(digest, digest_in(&sb, &db, Mode::Full));
        // Derived independently by remote/tests/action_golden.py (for x86_64 Linux, which
        // the platform properties name).
        if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
            assert_eq!(
                digest.to_string(),
                "467832ae7a7e4b0e096663fd24d5a39604434103ddbdaff18a73bf899dc16c93/280"
            );
        }
        // Everything the step depends on changes it.
        assert_ne!(digest, digest_in(&sa, &da, Mode::Off));
        let mut flags = da.clone();
        flags.args.push("-O2".into());
        assert_ne!(digest, digest_in(&sa, &flags, Mode::Full));
        let edited = sa
            .add_bytes(
                PathKind::Source,
                "m.cpp",
                b"int f() { return 2; }\n",
                &BTreeSet::new(),
            )
            .unwrap();
        let mut other_source = da.clone();
        other_source.inputs[0].from = InputFrom::Path {
            path: edited,
            sub: None,
        };
        assert_ne!(digest, digest_in(&sa, &other_source, Mode::Full));
    }
}
