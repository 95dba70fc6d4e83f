//! The operations behind cmod's commands, below the command line (Cargo's `ops` over
//! its core): finding and evaluating a package against a store, choosing its targets,
//! how its steps are built (settings, sandbox probe, memo keys), and the input journal
//! a realisation answers from. Every function here takes typed options, never argument-parser structs, and
//! returns typed results and errors ([`OpsError`]); printing them is the command line's
//! job. Dependencies point one way: `ops` uses the evaluator and the store, and only the
//! `cmod` binary uses `ops`.

pub mod build;
pub mod compdb;
pub mod display;
pub mod error;
pub mod events;
pub mod journal;
pub mod lock;
pub mod project;
pub mod realise;
pub mod remote;
pub mod scan_entries;
mod scan_source;
pub mod test;

pub use error::OpsError;
pub use project::{Access, LoadOptions, Project, Scope};
