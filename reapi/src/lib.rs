//! `cmod-reapi` has one job: speak the Remote Execution API v2 (Capabilities, CAS, ByteStream,
//! ActionCache, Execution) and the Bots API (`google.devtools.remoteworkers.v1test2`, which
//! BuildGrid 0.4.4 uses for its workers) to a remote server, behind a **blocking** API.
//!
//! cmod is synchronous (threads and rayon); this crate owns a small tokio runtime and runs every
//! call on it, so callers never see async code. Digests are REAPI's SHA-256 digests; everything
//! downloaded is verified against its digest before it is returned or written.
//!
//! - [`Endpoint`]: `grpc://host:port` / `grpcs://host:port`, instance name, headers.
//! - [`Client`]: the connection; capabilities, CAS, action cache, execution, Bots sessions.
//! - [`Digest`]: a blob's SHA-256 hash and size.
//! - [`merkle`]: input roots from a directory on disk, and outputs materialised back to disk.
//! - [`assemble`]: input roots put together from files, blobs and trees placed at paths.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod action_cache;
pub mod assemble;
pub mod bots;
pub mod cas;
pub mod client;
pub mod digest;
pub mod endpoint;
pub mod error;
mod execution;
pub mod merkle;
pub mod proto;

pub use assemble::RootBuilder;
pub use bots::{Bot, LeaseAssignment, LeaseWork};
pub use cas::{Blob, BlobSource, UploadStats};
pub use client::{Capabilities, Client};
pub use digest::{Digest, DigestBuilder};
pub use endpoint::{Endpoint, HEADERS_ENV};
pub use error::{Error, Result};
pub use merkle::{MerkleTree, Present};
/// gRPC status codes (a bot fails a lease with one).
pub use tonic::Code;
