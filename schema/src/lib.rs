//! `cmod-schema` owns cmod's **formats**: the types of `cmod.toml`, derivations, path
//! metadata and toolchain descriptions; their JSON Schemas (in `schemas/`); the canonical
//! JSON encoding; Nix-style base32; and the hashes over all of them — the content hash of
//! a file tree, the store-path hash and the derivation hash.
//!
//! Each hash is frozen by golden-vector tests. Changing one is a versioned format
//! decision (the `-v1` in every domain-separation string), never a refactor.
//!
//! This crate does no I/O beyond what serde does; the store, the evaluator and the CLI
//! all build on it.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod base32;
pub mod cache;
pub mod canonical;
pub mod content;
pub mod derivation;
pub mod diag;
pub mod keys;
pub mod lock;
pub mod manifest;
pub mod path_info;
pub mod scan_entry;
pub mod signature;
pub mod store_path;
pub mod toolchain;

pub use content::ContentHash;
pub use derivation::Derivation;
pub use path_info::PathInfo;
pub use store_path::{PathKind, StorePath};

/// Where the JSON Schemas live, relative to this crate's manifest directory.
pub const SCHEMA_DIR: &str = "schemas";

/// The JSON Schema of `cmod.toml` (draft 2020-12, with a description of every key), as
/// `cmod new` installs it for editors (see [`MANIFEST_SCHEMA_FILE`]).
pub const MANIFEST_SCHEMA: &str = include_str!("../schemas/manifest.schema.json");

/// Where a project keeps its copy of [`MANIFEST_SCHEMA`], relative to the workspace root:
/// the `#:schema` line `cmod new` writes at the top of a manifest points there, so taplo
/// (Even Better TOML) validates the manifest and shows each key's description, offline.
pub const MANIFEST_SCHEMA_FILE: &str = ".cmod/manifest.schema.json";
