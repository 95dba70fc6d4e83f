//! A step cache: a remote service asked for one step's outputs right before the step would
//! be built here, and told about every step built here (a REAPI action cache, see the
//! `cmod-remote` crate). It is the per-step counterpart of substitution, which asks binary
//! caches for whole levels of the graph before building starts.
//!
//! What comes back from a step cache is untrusted: the realiser takes it only through
//! [`accept`], which holds it to cmod's trust model exactly as for a binary cache (a
//! build-trace entry signed by a trusted key, for this step's key and sandbox mode, naming
//! outputs whose metadata is signed too and whose downloaded contents hash to what that
//! metadata says). Anything less is refused with a warning and the step is built here;
//! nothing refused is ever registered.

use std::collections::BTreeMap;

use cmod_schema::derivation::Derivation;
use cmod_schema::{ContentHash, PathInfo, StorePath};

use super::executor::Job;
use crate::layout::Store;
use crate::sign::path_info_fingerprint;
use crate::trace::TraceEntry;
use crate::transfer::Trust;

/// Why a step cache could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StepCacheError {
    /// The service could not be reached (or stopped answering); it is not asked again
    /// in this run.
    #[error("remote cache `{url}` is unavailable ({reason})")]
    Unreachable {
        /// The service's URL.
        url: String,
        /// The transport's error.
        reason: String,
    },
    /// The service refused this client (its credentials); it is not asked again in this
    /// run.
    #[error("remote cache `{url}` refused this client ({reason})")]
    Refused {
        /// The service's URL.
        url: String,
        /// The service's answer.
        reason: String,
    },
    /// The service answered, but not with something usable.
    #[error("remote cache `{url}`: {reason}")]
    Failed {
        /// The service's URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

/// What a step cache holds for one step: the signed trace entry and the metadata of each
/// output it names (the outputs themselves were written into the job's build directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedStep {
    /// The build-trace entry recorded where the step was built.
    pub entry: TraceEntry,
    /// The metadata of every output the entry names.
    pub paths: Vec<PathInfo>,
}

/// A per-step cache of build results.
pub trait StepCache: Sync + std::fmt::Debug {
    /// The service's URL, for messages.
    fn url(&self) -> String;

    /// Look up the step `job` describes (keyed `key` in the build trace). On a hit, every
    /// output is written into `job.build_dir` at its place (`at`) and the record returned.
    fn fetch(&self, job: &Job<'_>, key: &ContentHash)
        -> Result<Option<CachedStep>, StepCacheError>;

    /// Share the step `job` describes, just built here and recorded as `entry`, signed
    /// with the realisation's keys (a realisation without keys shares nothing); its
    /// outputs are valid in `job.store`.
    fn publish(&self, job: &Job<'_>, entry: &TraceEntry) -> Result<(), StepCacheError>;
}

/// A step cache and the trust its answers are held to.
#[derive(Debug, Clone, Copy)]
pub struct StepCacheUse<'a> {
    /// The cache.
    pub cache: &'a dyn StepCache,
    /// Which signatures its answers need.
    pub trust: &'a Trust,
}

/// Check `cached` (fetched for `resolved`, keyed `key`, built in sandbox mode `sandbox`)
/// against `trust` and import its outputs from `job.build_dir`. `Err` says why it was
/// refused (nothing was registered then).
pub(crate) fn accept(
    job: &Job<'_>,
    resolved: &Derivation,
    key: &ContentHash,
    cached: &CachedStep,
    use_: &StepCacheUse<'_>,
) -> Result<BTreeMap<String, StorePath>, String> {
    let url = use_.cache.url();
    let entry = &cached.entry;
    if entry.key != *key || entry.sandbox != job.sandbox.as_str() {
        return Err(format!(
            "its build-trace entry is for another step (key {}, sandbox `{}`)",
            entry.key, entry.sandbox
        ));
    }
    match use_.trust.trace_verdict(&url, entry) {
        Ok(None) => {}
        Ok(Some(why)) => return Err(format!("its build-trace entry is not trusted: {why}")),
        Err(e) => return Err(e.to_string()),
    }
    let wanted: Vec<&String> = resolved.outputs.keys().collect();
    let named: Vec<&String> = entry.outputs.keys().collect();
    if wanted != named {
        return Err(format!(
            "its build-trace entry names the outputs {named:?}, the step has {wanted:?}"
        ));
    }
    let mut infos = Vec::new();
    for (name, path) in &entry.outputs {
        let info = cached
            .paths
            .iter()
            .find(|i| &i.path == path)
            .ok_or_else(|| format!("no metadata came for its output `{path}`"))?;
        check_path_signature(use_.trust, info)?;
        infos.push((name, info));
    }
    import_outputs(job.store, job, resolved, &infos)
}

fn check_path_signature(trust: &Trust, info: &PathInfo) -> Result<(), String> {
    if !trust.require_sigs {
        return Ok(());
    }
    trust
        .keys
        .check(&path_info_fingerprint(info), &info.signatures)
        .map_err(|e| format!("the metadata of `{}` is not trusted: {e}", info.path))
}

/// Import every output (name, metadata) from the build directory. All of them are
/// checked against their metadata (contents, size) before the first is imported, and the
/// import checks each again with its store path: a refused answer registers nothing.
fn import_outputs(
    store: &Store,
    job: &Job<'_>,
    resolved: &Derivation,
    infos: &[(&String, &PathInfo)],
) -> Result<BTreeMap<String, StorePath>, String> {
    let mut staged = Vec::new();
    for (name, info) in infos {
        let out = &resolved.outputs[name.as_str()];
        let produced = job.build_dir.join(&out.at);
        let got = crate::content::hash_path(&produced, &crate::content::Candidates::new())
            .map_err(|e| format!("its output `{}` did not arrive ({e})", out.at))?;
        if got.hash != info.content_hash || got.size != info.size {
            return Err(format!(
                "its output `{}` hashes to {} ({} bytes), but its signed metadata says {} ({} bytes)",
                out.at, got.hash, got.size, info.content_hash, info.size
            ));
        }
        staged.push((name, info, produced));
    }
    let mut outputs = BTreeMap::new();
    for (name, info, produced) in staged {
        let tree = store.temp_path("out");
        std::fs::rename(&produced, &tree)
            .map_err(|e| format!("its output `{}` could not be staged ({e})", info.path))?;
        store
            .import_tree_as(&tree, info)
            .map_err(|e| format!("its output `{}` was refused: {e}", info.path))?;
        outputs.insert((*name).clone(), info.path.clone());
    }
    Ok(outputs)
}

#[cfg(test)]
#[path = "step_cache_tests.rs"]
mod tests;
