//! The toolchain closure of clang-19, exactly as cmod computes it for every build step:
//! `cmod_evaluator::toolchain::discover`. Shared by the escape suite, the clang test and
//! the benchmark example, so they run in precisely the sandbox configuration clang gets.

use std::path::PathBuf;

use cmod_evaluator::toolchain::{discover, ToolchainRequest};

/// The closure cmod mounts for the default toolchain (clang++-19, libstdc++).
pub fn clang_closure() -> Vec<PathBuf> {
    discover(&ToolchainRequest::default(), None)
        .expect("clang-19 is installed (scripts/install-deps)")
        .closure
}
