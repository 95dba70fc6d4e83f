//! `cmod-evaluator` turns a `cmod.toml` into **derivations**: it loads manifests and the
//! package graph, discovers and identifies the toolchain, finds and scans translation
//! units, builds and checks the module graph, and emits one derivation per BMI, object,
//! archive and link step.
//!
//! It reads the user's files and runs the compiler's scanner, but never writes to the
//! store: sources it wants in the store are returned as [`derive::SourceFile`]s for the
//! caller to add. Everything it computes from file contents is cached by file metadata,
//! so re-evaluating an unchanged project reads no sources and runs no process.
//!
//! The entry point is [`evaluate`].

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod cache_io;
pub mod compdb;
pub mod deps;
pub mod derive;
pub mod error;
mod eval;
pub mod file_cache;
pub mod flags;
pub mod generate;
pub mod git;
pub mod graph;
pub mod hashing;
pub mod journal;
pub mod lexer;
pub mod lockfile;
pub mod manifest_file;
pub mod package;
pub mod paths;
pub mod scan;
pub mod scanner;
pub mod settings;
pub mod sources;
pub mod system;
pub mod targets;
pub mod toolchain;
pub mod workspace;

pub use error::{ErrorKind, EvalError};
pub use eval::header_units;
pub use eval::staged;
pub use eval::{evaluate, EvalOptions, EvalStats, Evaluation};
