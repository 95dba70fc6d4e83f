//! [`ReapiCache`]: a REAPI action cache (and its CAS) as cmod's step cache.
//!
//! - **Lookup**: the step's Action digest (remembered per trace key, else computed) →
//!   `GetActionResult` → the cmod record it carries → the outputs, downloaded into the
//!   step's build directory with every blob verified against its SHA-256 digest. The
//!   realiser then checks the record's signatures and the outputs' BLAKE3 content hashes
//!   before anything is registered (`cmod_store::realise::StepCache`).
//! - **Publish**: after a step is built and signed here (the realiser shares nothing
//!   unsigned): its outputs, its log, its Action and Command are
//!   uploaded (only what the server lacks), then
//!   `UpdateActionResult` with the record inside. The input root's blobs are not: a cache needs only the key, and
//!   they are other steps' outputs or sources.
//! - **Unreachable**: the first failure to reach the server is reported (the realiser warns
//!   and builds locally); the cache is then off for the rest of the run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use cmod_reapi::proto::build::bazel::remote::execution::v2 as re;
use cmod_reapi::{Blob, Client, Digest, Endpoint};
use cmod_schema::ContentHash;
use cmod_store::realise::{CachedStep, Job, StepCache, StepCacheError};
use cmod_store::trace::TraceEntry;
use cmod_store::Store;

use crate::action::{step_action, ActionMemo};
use crate::connection::{Connection, Trouble};
use crate::digests::PathDigests;
use crate::record::{self, TraceRecord};

/// A REAPI action cache used as cmod's step cache.
pub struct ReapiCache {
    connection: Connection,
    digests: PathDigests,
    memo: ActionMemo,
    /// The encoded Action and Command of each step looked up and missed, by trace key,
    /// until it is built and published: a miss then costs one assembly of the input root,
    /// not two.
    missed: Mutex<HashMap<ContentHash, Encoded>>,
    /// Set once the server was found unreachable: the cache is off from then on.
    off: AtomicBool,
}

/// A step's Action, encoded, with its Command: what publishing uploads.
struct Encoded {
    digest: Digest,
    action: Vec<u8>,
    command: Vec<u8>,
}

impl Encoded {
    fn of(job: &Job<'_>, digests: &PathDigests) -> Result<Encoded, Trouble> {
        let action = step_action(job, digests)
            .map_err(|e| Trouble::Bad(format!("{}: {e}", job.resolved.name)))?;
        Ok(Encoded {
            digest: action.digest,
            action: action.action,
            command: action.command,
        })
    }
}

impl std::fmt::Debug for ReapiCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReapiCache")
            .field("url", &self.connection.url())
            .field("off", &self.off)
            .finish_non_exhaustive()
    }
}

impl ReapiCache {
    /// A cache at `endpoint` for `store` (nothing is contacted until the first lookup).
    pub fn new(endpoint: Endpoint, store: &Store) -> ReapiCache {
        ReapiCache {
            connection: Connection::new(endpoint),
            digests: PathDigests::default(),
            memo: ActionMemo::new(store.remote_dir().join("actions")),
            missed: Mutex::default(),
            off: AtomicBool::new(false),
        }
    }

    fn client(&self) -> Result<&Client, Trouble> {
        self.connection.client(|caps| {
            if caps.supports_sha256() {
                Ok(())
            } else {
                Err(format!(
                    "the server hashes with {:?}; cmod speaks SHA256 only",
                    caps.digest_functions
                ))
            }
        })
    }

    fn url(&self) -> String {
        self.connection.url().to_string()
    }

    /// The step-cache error for `trouble`, switching the cache off if the server is gone;
    /// `None` if it was off already (the first caller reported it).
    fn failed(&self, trouble: Trouble) -> Option<StepCacheError> {
        match trouble {
            Trouble::Gone(reason) => {
                (!self.off.swap(true, Ordering::SeqCst)).then(|| StepCacheError::Unreachable {
                    url: self.url(),
                    reason,
                })
            }
            Trouble::Refused(reason) => {
                (!self.off.swap(true, Ordering::SeqCst)).then(|| StepCacheError::Refused {
                    url: self.url(),
                    reason,
                })
            }
            Trouble::Bad(reason) | Trouble::Busy(reason) => Some(StepCacheError::Failed {
                url: self.url(),
                reason,
            }),
        }
    }

    fn action_digest(&self, job: &Job<'_>, key: &ContentHash) -> Result<Digest, Trouble> {
        if let Some(d) = self.memo.get(key) {
            return Ok(d);
        }
        let encoded = Encoded::of(job, &self.digests)?;
        let digest = encoded.digest;
        self.memo.put(key, &digest);
        if let Ok(mut missed) = self.missed.lock() {
            missed.insert(*key, encoded);
        }
        Ok(digest)
    }

    fn lookup(&self, job: &Job<'_>, key: &ContentHash) -> Result<Option<CachedStep>, Trouble> {
        let client = self.client()?;
        let digest = self.action_digest(job, key)?;
        let Some(result) = client.get_action_result(&digest)? else {
            return Ok(None);
        };
        if result.exit_code != 0 {
            return Ok(None);
        }
        // Bounded like a build's outputs: a hostile cache cannot fill the disk.
        let announced: u64 = result
            .output_files
            .iter()
            .filter_map(|f| f.digest.as_ref())
            .map(|d| u64::try_from(d.size_bytes).unwrap_or(u64::MAX))
            .fold(0, u64::saturating_add);
        if announced > job.limits.max_output_bytes {
            return Err(Trouble::Bad(format!(
                "the result of {} announces {announced} bytes of outputs, more than a step may write ({})",
                job.resolved.name, job.limits.max_output_bytes
            )));
        }
        let record = record::unpacked(&result)
            .map_err(Trouble::Bad)?
            .ok_or_else(|| {
                Trouble::Bad(format!(
                    "the result of {} carries no signed cmod record (written by another client?)",
                    job.resolved.name
                ))
            })?;
        client.materialise_outputs(&result, job.build_dir)?;
        Ok(Some(CachedStep {
            entry: record.entry,
            paths: record.paths,
        }))
    }

    fn share(&self, job: &Job<'_>, entry: &TraceEntry) -> Result<(), Trouble> {
        let client = self.client()?;
        let assembled = self
            .missed
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&entry.key));
        let action = match assembled {
            Some(encoded) => encoded,
            None => Encoded::of(job, &self.digests)?,
        };
        self.memo.put(&entry.key, &action.digest);
        let mut blobs = vec![
            Blob::from_bytes(action.action),
            Blob::from_bytes(action.command),
        ];
        let mut result = re::ActionResult::default();
        let mut paths = Vec::new();
        for (name, out) in &job.resolved.outputs {
            let Some(path) = entry.outputs.get(name) else {
                continue;
            };
            let info = job.store.path_info(path);
            paths.push(info.map_err(|e| Trouble::Bad(format!("the metadata of `{path}`: {e}")))?);
            self.digests
                .get(job.store, path)?
                .add_output(&out.at, &mut result, &mut blobs);
        }
        let log = std::fs::read(job.log_path).unwrap_or_default();
        if !log.is_empty() {
            let blob = Blob::from_bytes(log);
            result.stdout_digest = Some(blob.digest.to_proto());
            blobs.push(blob);
        }
        let record = TraceRecord {
            version: record::RECORD_VERSION,
            entry: entry.clone(),
            paths,
        };
        result.execution_metadata = Some(re::ExecutedActionMetadata {
            worker: "cmod".to_string(),
            auxiliary_metadata: vec![record::packed(&record)],
            ..Default::default()
        });
        // `upload` asks the server which blobs it lacks and sends only those.
        client.upload(&blobs)?;
        client.update_action_result(&action.digest, result)?;
        Ok(())
    }
}

impl StepCache for ReapiCache {
    fn url(&self) -> String {
        ReapiCache::url(self)
    }

    fn fetch(
        &self,
        job: &Job<'_>,
        key: &ContentHash,
    ) -> Result<Option<CachedStep>, StepCacheError> {
        if self.off.load(Ordering::SeqCst) {
            return Ok(None);
        }
        match self.lookup(job, key) {
            Ok(found) => Ok(found),
            Err(e) => self.failed(e).map_or(Ok(None), Err),
        }
    }

    fn publish(&self, job: &Job<'_>, entry: &TraceEntry) -> Result<(), StepCacheError> {
        if self.off.load(Ordering::SeqCst) {
            return Ok(());
        }
        match self.share(job, entry) {
            Ok(()) => Ok(()),
            Err(e) => self.failed(e).map_or(Ok(()), Err),
        }
    }
}
