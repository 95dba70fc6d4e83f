//! Test support: a private BuildGrid server on loopback.

// Shared with the cmod crate's tests (`#[path]`), which use parts these tests do not
// (the secured server, JWTs).
#[allow(dead_code)]
pub mod buildgrid;
