//! `cmod worker`: a REAPI bot that runs each leased action in cmod's own sandbox.
//!
//! It holds a session with the server's Bots API (BuildGrid's
//! `google.devtools.remoteworkers.v1test2`), advertising what it can run identically as
//! platform properties: `OSFamily`, `ISA`, every toolchain identity it has (`cmod-toolchain`)
//! and its sandbox mode (`cmod-sandbox`). For each lease it materialises the input root,
//! reads the step's resolved derivation and module closure from it (`.cmod/`), refuses the
//! lease (`FAILED_PRECONDITION`) unless it has that toolchain and mode and the Command is
//! exactly the one the derivation gives, lays the shipped store paths out in a private store
//! and runs the builder through the same [`LocalSandbox`] a local build uses (so it sees
//! the same view of the store and writes bit-identical outputs), uploads the declared
//! outputs and its log, and completes the lease with the result.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cmod_reapi::bots::{Bot, LeaseWork};
use cmod_reapi::proto::build::bazel::remote::execution::v2 as re;
use cmod_reapi::{Blob, Client, Code, Digest, Endpoint};

use cmod_sandbox::{Limits, Mode};
use cmod_schema::derivation::Derivation;
use cmod_schema::toolchain::ToolchainInfo;
use cmod_schema::{ContentHash, StorePath};
use cmod_store::realise::{Executed, Executor, Job, LocalSandbox, ModuleFile};
use cmod_store::Store;
use prost::Message;

use crate::action::{
    command_of, DERIVATION_FILE, MODULES_FILE, SANDBOX_PROPERTY, STORE_DIR, TOOLCHAIN_PROPERTY,
};
use crate::digests::Placed;
use crate::executor::ENFORCEMENT_TYPE_URL;
use crate::kept_store::{shipped_paths, KeptStore};

/// How long one `UpdateBotSession` may wait for work.
const POLL: Duration = Duration::from_secs(10);
/// How often a busy worker tells the server it is alive.
const KEEPALIVE: Duration = Duration::from_secs(3);

/// What a worker is and has.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The server.
    pub endpoint: Endpoint,
    /// This bot's id (unique among the server's bots).
    pub bot_id: String,
    /// The toolchains it can build with.
    pub toolchains: Vec<ToolchainInfo>,
    /// The sandbox mode it runs builders in.
    pub sandbox: Mode,
    /// Each builder's limits.
    pub limits: Limits,
    /// Where it lays out each action (emptied before and after each), and keeps the store
    /// paths actions shipped (`store/`, emptied when it starts).
    pub work_dir: PathBuf,
    /// How many bytes of shipped store paths it keeps between actions (about; `0` keeps
    /// none).
    pub keep_bytes: u64,
}

/// What a worker reports as it goes.
#[derive(Debug)]
pub enum WorkerEvent<'a> {
    /// Its session is open; it waits for work.
    Ready {
        /// The properties it advertises.
        properties: &'a [(String, String)],
    },
    /// It ran a step.
    Ran {
        /// The step's name.
        name: &'a str,
        /// The store paths the action shipped, and how many of them were kept here from
        /// earlier actions (not fetched again).
        inputs: (usize, usize),
        /// How it ended, when it failed.
        failure: Option<&'a str>,
        /// How long the lease took here.
        elapsed: Duration,
    },
    /// It refused a lease.
    Refused {
        /// Why.
        why: &'a str,
    },
    /// The server went away; it reconnects.
    Reconnecting {
        /// Why.
        why: &'a str,
    },
}

/// Why a worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The server could not be reached at start.
    #[error("{0}")]
    Server(#[from] cmod_reapi::Error),
    /// Its work directory could not be prepared.
    #[error("{}: {source}", path.display())]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl WorkerConfig {
    /// The platform properties it advertises.
    pub fn properties(&self) -> Vec<(String, String)> {
        let mut p = vec![
            ("ISA".to_string(), std::env::consts::ARCH.to_string()),
            ("OSFamily".to_string(), std::env::consts::OS.to_string()),
            (
                SANDBOX_PROPERTY.to_string(),
                self.sandbox.as_str().to_string(),
            ),
        ];
        for t in &self.toolchains {
            p.push((TOOLCHAIN_PROPERTY.to_string(), t.identity.to_text()));
        }
        p.sort();
        p.dedup();
        p
    }
}

/// Serve leases until `stop` is set. An unreachable server at start is an error; later
/// it is waited for (the session is opened again).
pub fn run(
    cfg: &WorkerConfig,
    stop: &AtomicBool,
    report: &dyn Fn(&WorkerEvent<'_>),
) -> Result<(), WorkerError> {
    let client = Client::connect(cfg.endpoint.clone())?;
    client.capabilities()?;
    let properties = cfg.properties();
    let pairs: Vec<(&str, &str)> = properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let store_dir = cfg.work_dir.join("store");
    let mut kept =
        KeptStore::open(&store_dir, cfg.keep_bytes).map_err(|e| WorkerError::WorkDir {
            path: store_dir.clone(),
            source: std::io::Error::other(e),
        })?;
    let mut bot = Bot::create(&client, &cfg.bot_id, &pairs, POLL)?;
    report(&WorkerEvent::Ready {
        properties: &properties,
    });
    while !stop.load(Ordering::SeqCst) {
        let leases = match bot.poll() {
            Ok(l) => l,
            Err(e) => {
                report(&WorkerEvent::Reconnecting {
                    why: &e.to_string(),
                });
                std::thread::sleep(Duration::from_secs(1));
                if let Ok(b) = Bot::create(&client, &cfg.bot_id, &pairs, POLL) {
                    bot = b;
                }
                continue;
            }
        };
        for lease in leases {
            let started = Instant::now();
            let served = serve_alive(cfg, &client, &lease.work, &mut bot, &mut kept);
            let reported = match served {
                Ok(Served {
                    name,
                    result,
                    inputs,
                }) => {
                    let failure =
                        (result.exit_code != 0).then(|| format!("exit code {}", result.exit_code));
                    report(&WorkerEvent::Ran {
                        name: &name,
                        inputs,
                        failure: failure.as_deref(),
                        elapsed: started.elapsed(),
                    });
                    bot.complete(&lease.id, &result)
                }
                Err((code, why)) => {
                    report(&WorkerEvent::Refused { why: &why });
                    bot.fail(&lease.id, code, &why)
                }
            };
            // A result the server did not take is not lost for the build: the server
            // gives the lease to another worker once this session expires.
            if let Err(e) = reported {
                report(&WorkerEvent::Reconnecting {
                    why: &e.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// [`serve`] on a thread while this one keeps the bot's session alive (a step may take
/// longer than the server's keepalive timeout).
fn serve_alive(
    cfg: &WorkerConfig,
    client: &Client,
    work: &LeaseWork,
    bot: &mut Bot<'_>,
    kept: &mut KeptStore,
) -> Result<Served, Refusal> {
    std::thread::scope(|s| {
        let running = s.spawn(|| serve(cfg, client, work, kept));
        let mut last = Instant::now();
        while !running.is_finished() {
            std::thread::sleep(Duration::from_millis(50));
            if last.elapsed() >= KEEPALIVE {
                // A missed keepalive is retried at the next one.
                let _ = bot.keep_alive(Duration::from_secs(1));
                last = Instant::now();
            }
        }
        running
            .join()
            .unwrap_or_else(|_| Err((Code::Internal, "the worker panicked running it".into())))
    })
}

/// A lease served: the step's name, its result, and the store paths it shipped and
/// those of them this worker had kept.
struct Served {
    name: String,
    result: re::ActionResult,
    inputs: (usize, usize),
}

/// Why a lease was refused: the gRPC code the lease fails with (BuildGrid retries the job
/// elsewhere for `UNAVAILABLE` and `INTERNAL`) and the message.
type Refusal = (Code, String);

/// Run one leased action; its step's name and result, or why it was refused.
fn serve(
    cfg: &WorkerConfig,
    client: &Client,
    work: &LeaseWork,
    kept: &mut KeptStore,
) -> Result<Served, Refusal> {
    let unavailable = |e: cmod_reapi::Error| (Code::Unavailable, e.to_string());
    let invalid = |why: String| (Code::InvalidArgument, why);
    let action = match work {
        LeaseWork::Action(a) => a.clone(),
        LeaseWork::ActionDigest(d) => {
            let bytes = client.read_blob(d).map_err(unavailable)?;
            re::Action::decode(bytes.as_slice())
                .map_err(|e| invalid(format!("undecodable Action: {e}")))?
        }
    };
    let digest_of = |d: &Option<re::Digest>, what: &str| {
        let d = d
            .as_ref()
            .ok_or_else(|| invalid(format!("the Action has no {what}")))?;
        Digest::from_proto(d).map_err(|e| invalid(e.to_string()))
    };
    let command_digest = digest_of(&action.command_digest, "Command")?;
    let root_digest = digest_of(&action.input_root_digest, "input root")?;
    let bytes = client.read_blob(&command_digest).map_err(unavailable)?;
    let command = re::Command::decode(bytes.as_slice())
        .map_err(|e| invalid(format!("undecodable Command: {e}")))?;
    let dir = fresh_dir(&cfg.work_dir).map_err(|e| (Code::Internal, e))?;
    kept.trim().map_err(|e| (Code::Internal, e))?;
    let outcome = (|| {
        let root = dir.join("root");
        let listing = shipped_paths(client, &root_digest).map_err(unavailable)?;
        let shipped = Path::new(STORE_DIR);
        let reused = listing
            .iter()
            .filter(|(name, entry)| kept.has(&shipped.join(name), **entry))
            .count();
        client
            .materialise_root_except(&root_digest, &root, &|rel, entry| kept.has(rel, entry))
            .map_err(unavailable)?;
        let step = step_of(cfg, &root, &command)?;
        kept.take(&root.join(STORE_DIR), &listing)?;
        let (executed, build) = run_step(&step, cfg, kept.store(), &dir)?;
        let result = result_of(cfg, client, &command, &build, &executed).map_err(unavailable)?;
        Ok(Served {
            name: step.drv.name,
            result,
            inputs: (listing.len(), reused),
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// A leased step, read from its input root and checked against this worker.
struct LeasedStep<'c> {
    drv: Derivation,
    modules: Vec<ModuleFile>,
    toolchain: &'c ToolchainInfo,
}

/// Run the step's builder on the worker's store (holding every store path the action
/// shipped) exactly as a local step runs ([`LocalSandbox`]): the same view of the store,
/// the same stable names, the same sandbox. The result and the build directory (under
/// `dir`) holding the outputs.
fn run_step(
    step: &LeasedStep<'_>,
    cfg: &WorkerConfig,
    store: &Store,
    dir: &Path,
) -> Result<(Executed, PathBuf), Refusal> {
    let internal = |why: String| (Code::Internal, why);
    let build = dir.join("build");
    std::fs::create_dir_all(&build).map_err(|e| internal(e.to_string()))?;
    let log = dir.join("build.log");
    let drv_path = step.drv.drv_path().map_err(|e| internal(e.to_string()))?;
    let job = Job {
        store,
        drv_path: &drv_path,
        resolved: &step.drv,
        modules: &step.modules,
        build_dir: &build,
        log_path: &log,
        keep_view: false,
        toolchain: step.toolchain,
        sandbox: cfg.sandbox,
        limits: cfg.limits,
    };
    let executed = LocalSandbox
        .execute(&job)
        .map_err(|e| internal(format!("{}: {e}", step.drv.name)))?;
    Ok((executed, build))
}

/// The step's resolved derivation and module closure, and the toolchain it needs, checked
/// against the Command and this worker.
fn step_of<'c>(
    cfg: &'c WorkerConfig,
    root: &Path,
    command: &re::Command,
) -> Result<LeasedStep<'c>, Refusal> {
    let invalid = |why: String| (Code::InvalidArgument, why);
    let read = |rel: &str| {
        std::fs::read(root.join(rel)).map_err(|e| {
            invalid(format!(
                "the input root has no readable {rel} ({e}): not a cmod action"
            ))
        })
    };
    let drv: Derivation = serde_json::from_slice(&read(DERIVATION_FILE)?)
        .map_err(|e| invalid(format!("{DERIVATION_FILE} is not a derivation: {e}")))?;
    let modules: Vec<ModuleEntry> = serde_json::from_slice(&read(MODULES_FILE)?)
        .map_err(|e| invalid(format!("{MODULES_FILE}: {e}")))?;
    let toolchain = cfg
        .toolchains
        .iter()
        .find(|t| t.identity == drv.toolchain)
        .ok_or_else(|| {
            (
                Code::FailedPrecondition,
                format!(
                    "{}: this worker has no toolchain {}",
                    drv.name, drv.toolchain
                ),
            )
        })?;
    // Host files (system headers and libraries) are the client's, by hash: a worker whose
    // copy differs would build something else under the same key.
    for (path, wanted) in &drv.host {
        let have = std::fs::read(path).map(|bytes| ContentHash::of_file(false, &bytes));
        if have.as_ref().ok() != Some(wanted) {
            return Err((
                Code::FailedPrecondition,
                format!(
                    "{}: this worker's `{path}` is not the client's (hash {wanted})",
                    drv.name
                ),
            ));
        }
    }
    let expected = command_of(&drv, toolchain, cfg.sandbox.as_str());
    if &expected != command {
        return Err((
            Code::FailedPrecondition,
            format!(
                "{}: the Command is not the one its derivation gives with this worker's toolchain and sandbox mode `{}`",
                drv.name,
                cfg.sandbox.as_str()
            ),
        ));
    }
    let modules = modules
        .into_iter()
        .map(|m| ModuleFile {
            module: m.module,
            at: m.at,
            path: m.path,
        })
        .collect();
    Ok(LeasedStep {
        drv,
        modules,
        toolchain,
    })
}

/// One entry of [`MODULES_FILE`].
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleEntry {
    module: String,
    at: String,
    path: StorePath,
}

/// Upload what the builder left and describe it.
fn result_of(
    cfg: &WorkerConfig,
    client: &Client,
    command: &re::Command,
    build: &Path,
    executed: &Executed,
) -> Result<re::ActionResult, cmod_reapi::Error> {
    let mut result = re::ActionResult {
        exit_code: exit_code(executed.failure.as_deref()),
        ..Default::default()
    };
    let mut blobs = Vec::new();
    if executed.failure.is_none() {
        for at in &command.output_paths {
            let path = build.join(at);
            if std::fs::symlink_metadata(&path).is_ok() {
                Placed::of(&path)?.add_output(at, &mut result, &mut blobs);
            }
        }
    }
    let mut text = executed.log.clone().into_bytes();
    if let Some(failure) = &executed.failure {
        text.extend_from_slice(format!("\n(the builder ended with {failure})\n").as_bytes());
    }
    let stdout = Blob::from_bytes(text);
    result.stdout_digest = Some(stdout.digest.to_proto());
    blobs.push(stdout);
    client.upload(&blobs)?;
    let mut meta = re::ExecutedActionMetadata {
        worker: cfg.bot_id.clone(),
        ..Default::default()
    };
    if let Some(abi) = executed.landlock_abi {
        meta.auxiliary_metadata.push(prost_types::Any {
            type_url: ENFORCEMENT_TYPE_URL.to_string(),
            value: u32::from(abi).encode_to_vec(),
        });
    }
    result.execution_metadata = Some(meta);
    Ok(result)
}

/// The exit code of a builder that ended as `failure` says (`exit code 3`, `signal 9`).
fn exit_code(failure: Option<&str>) -> i32 {
    let Some(f) = failure else { return 0 };
    let number = |prefix: &str| {
        f.strip_prefix(prefix)
            .and_then(|n| n.trim().parse::<i32>().ok())
    };
    number("exit code ")
        .or_else(|| number("signal ").map(|s| 128 + s))
        .unwrap_or(1)
}

/// A new, empty directory under `work`.
fn fresh_dir(work: &Path) -> Result<PathBuf, String> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = work.join(format!("lease-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}
