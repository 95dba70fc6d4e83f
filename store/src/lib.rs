//! `cmod-store` is the content-addressed store: where paths live, what is known about
//! them, how new contents become valid paths atomically, how derivations are realised
//! (the scheduler that resolves, looks up and builds), and how the store is kept healthy
//! (garbage collection, verification).
//!
//! It knows formats only through `cmod-schema` and runs builders only through
//! `cmod-sandbox`; it never reads manifests.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod archive;
pub mod cache;
pub mod connect;
pub mod content;
pub mod copy;
pub mod error;
pub mod fetch_lock;
pub mod gc;
pub mod import;
pub mod layout;
pub mod limits;
pub mod lock;
pub mod memo;
pub mod realise;
pub mod registry;
pub mod roots;
pub mod scans;
pub mod serve;
pub mod sign;
pub mod ssh;
pub mod substitute;
pub mod symlinks;
pub mod trace;
pub mod transfer;
pub mod verify;

pub use error::StoreError;
pub use layout::Store;
