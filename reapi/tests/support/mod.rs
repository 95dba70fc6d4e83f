//! Test support: a private BuildGrid server on loopback.

pub mod buildgrid;
