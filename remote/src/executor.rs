//! [`ReapiExecutor`]: every build step executed through a REAPI Execution service (issue 13
//! §3), on workers that run it in cmod's own sandbox (`cmod worker`, see [`crate::worker`]).
//!
//! The step's Action (see [`crate::action`]) is uploaded (what the server lacks: the input
//! root's directories and files, the Action, the Command), executed with the server's cache
//! lookup skipped (a result from the action cache would be taken unchecked: the cache is
//! checked, signatures and all, by the step cache instead), and its outputs downloaded into
//! the step's build directory, each blob verified. The realiser then registers and signs
//! them like a local build's. A step that fails remotely comes back with its exit code and
//! log like a local failure.
//!
//! An unreachable server fails the step with a remedy, or, with `fallback`, builds it here
//! (with a warning, once).

use std::sync::atomic::{AtomicBool, Ordering};

use cmod_reapi::proto::build::bazel::remote::execution::v2 as re;
use cmod_reapi::{Client, Digest, Endpoint};

use crate::connection::{Connection, Trouble};
use cmod_store::realise::{ExecError, Executed, Executor, Job, LocalSandbox};
use prost::Message;

use crate::action::step_action;
use crate::digests::PathDigests;

/// How many times a step is tried again while the server says it is overloaded.
const BUSY_RETRIES: u32 = 4;

/// The type URL of the `Any` in which a worker reports the Landlock ABI that confined it.
pub const ENFORCEMENT_TYPE_URL: &str = "type.cmod.dev/cmod.LandlockAbi.v1";

/// Runs each step on a REAPI Execution service.
pub struct ReapiExecutor {
    connection: Connection,
    digests: PathDigests,
    /// Build here when the server is unreachable (`--remote-fallback`).
    fallback: bool,
    /// Set once the server was found unreachable (with `fallback`: everything is local).
    gone: AtomicBool,
}

impl std::fmt::Debug for ReapiExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReapiExecutor")
            .field("url", &self.connection.url())
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

impl ReapiExecutor {
    /// An executor on `endpoint` (contacted at the first step); with `fallback`, steps are
    /// built locally once the server is found unreachable.
    pub fn new(endpoint: Endpoint, fallback: bool) -> ReapiExecutor {
        ReapiExecutor {
            connection: Connection::new(endpoint),
            digests: PathDigests::default(),
            fallback,
            gone: AtomicBool::new(false),
        }
    }

    fn client(&self) -> Result<&Client, Trouble> {
        self.connection.client(|caps| {
            if caps.exec_enabled {
                Ok(())
            } else {
                Err("the server does not execute actions (execution is disabled)".into())
            }
        })
    }

    fn run_remotely(&self, job: &Job<'_>) -> Result<Executed, Trouble> {
        let client = self.client()?;
        let action = step_action(job, &self.digests)
            .map_err(|e| Trouble::Bad(format!("its Action: {e}")))?;
        let mut blobs = action.root.blobs();
        blobs.push(cmod_reapi::Blob::from_bytes(action.action.clone()));
        blobs.push(cmod_reapi::Blob::from_bytes(action.command.clone()));
        client.upload(&blobs)?;
        // Never the server's cache: its results carry no signature (see the module docs).
        let response = client.execute(&action.digest, true)?;
        if let Some(status) = response.status.as_ref().filter(|s| s.code != 0) {
            return Err(Trouble::Bad(format!(
                "the server ended the execution with status {}: {}",
                status.code, status.message
            )));
        }
        let result = response
            .result
            .ok_or_else(|| Trouble::Bad("the execution answered without a result".into()))?;
        let log = self.log_of(client, &result)?;
        if result.exit_code != 0 {
            return Ok(Executed {
                failure: Some(format!(
                    "exit code {} (on a remote worker)",
                    result.exit_code
                )),
                log,
                landlock_abi: None,
                warning: None,
            });
        }
        client.materialise_outputs(&result, job.build_dir)?;
        Ok(Executed {
            failure: None,
            log,
            landlock_abi: landlock_abi(&result),
            warning: None,
        })
    }

    /// The builder's output: stdout then stderr, inline or from the CAS.
    fn log_of(&self, client: &Client, result: &re::ActionResult) -> Result<String, Trouble> {
        let mut log = Vec::new();
        for (raw, digest) in [
            (&result.stdout_raw, &result.stdout_digest),
            (&result.stderr_raw, &result.stderr_digest),
        ] {
            if !raw.is_empty() {
                log.extend_from_slice(raw);
            } else if let Some(d) = digest {
                let d = Digest::from_proto(d)?;
                if d.size() > 0 {
                    log.extend_from_slice(&client.read_blob(&d)?);
                }
            }
        }
        Ok(String::from_utf8_lossy(&log).into_owned())
    }
}

/// The Landlock ABI the worker reported, if any.
fn landlock_abi(result: &re::ActionResult) -> Option<u8> {
    let meta = result.execution_metadata.as_ref()?;
    let any = meta
        .auxiliary_metadata
        .iter()
        .find(|a| a.type_url == ENFORCEMENT_TYPE_URL)?;
    u32::decode(any.value.as_slice())
        .ok()
        .and_then(|v| u8::try_from(v).ok())
}

impl Executor for ReapiExecutor {
    fn execute(&self, job: &Job<'_>) -> Result<Executed, ExecError> {
        if self.fallback && self.gone.load(Ordering::SeqCst) {
            return LocalSandbox.execute(job);
        }
        let mut attempt = 0;
        let outcome = loop {
            match self.run_remotely(job) {
                // An overloaded server (BuildGrid refuses calls past its concurrency
                // limit): again, after a pause that grows (0.25 s doubling, 5 attempts).
                Err(Trouble::Busy(_)) if attempt < BUSY_RETRIES => {
                    std::thread::sleep(std::time::Duration::from_millis(250 << attempt));
                    attempt += 1;
                }
                other => break other,
            }
        };
        match outcome {
            Ok(executed) => Ok(executed),
            Err(Trouble::Gone(why) | Trouble::Refused(why)) if self.fallback => {
                let first = !self.gone.swap(true, Ordering::SeqCst);
                let mut executed = LocalSandbox.execute(job)?;
                if first {
                    executed.warning = Some(format!(
                        "remote executor `{}` is unavailable ({why}); building locally instead (--remote-fallback)",
                        self.connection.url()
                    ));
                }
                Ok(executed)
            }
            Err(Trouble::Refused(why)) => Err(ExecError::Remote {
                reason: format!(
                    "remote executor `{}` refused this client ({why})",
                    self.connection.url()
                ),
                help: Some(format!(
                    "give the credentials the server expects in ${} (e.g. `authorization=Bearer TOKEN`), or pass --remote-fallback to build locally",
                    cmod_reapi::HEADERS_ENV
                )),
            }),
            Err(Trouble::Gone(why)) => Err(ExecError::Remote {
                reason: format!(
                    "remote executor `{}` is unavailable ({why})",
                    self.connection.url()
                ),
                help: Some(
                    "start the server (and its workers: `cmod worker --server URL`), or pass --remote-fallback to build locally while it is unavailable".into(),
                ),
            }),
            Err(Trouble::Bad(why) | Trouble::Busy(why)) => Err(ExecError::Remote {
                reason: format!("remote executor `{}`: {why}", self.connection.url()),
                help: None,
            }),
        }
    }
}
