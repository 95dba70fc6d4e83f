//! `cmod-remote` has one job: put cmod's build steps on REAPI. It maps a resolved step to a
//! REAPI Action (Command + input root, in the server's SHA-256 digests; cmod's own BLAKE3
//! hashes stay as they are and the mapping is cached), and implements cmod's
//! [`StepCache`](cmod_store::realise::StepCache) on a REAPI action cache: a hit's outputs
//! are downloaded into the step's build directory together with the signed cmod
//! build-trace record stored beside the result in the CAS, which the realiser checks
//! exactly as it checks a binary cache's answer.
//!
//! - [`action`]: the Action of a step.
//! - [`digests`]: the SHA-256 digests of store paths, computed once per path.
//! - [`record`]: the signed record stored beside an action result.
//! - [`cache`]: [`ReapiCache`], the step cache.
//! - [`executor`]: [`ReapiExecutor`], steps executed on a REAPI Execution service.
//! - [`worker`]: `cmod worker`, a Bots API worker that runs actions in cmod's sandbox.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod action;
pub mod cache;
mod connection;
pub mod digests;
pub mod executor;
mod kept_store;
pub mod record;
pub mod worker;

pub use cache::ReapiCache;
pub use executor::ReapiExecutor;
pub use worker::{WorkerConfig, WorkerError, WorkerEvent};
