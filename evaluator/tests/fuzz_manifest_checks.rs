//! Property tests for what the evaluator does with a manifest after TOML parsing: the
//! syntax-error diagnostics of `ManifestFile::parse` (spans, "did you mean" help), the
//! package graph (workspace members, path dependencies, versions), source discovery,
//! the targets' cross-field checks (`uses`, overrides, precompiled headers) and the
//! settings (flags, defines, system dependencies through pkg-config). The inputs are the
//! schema fuzzer's hostile manifests, written as `cmod.toml` into a tree holding the
//! examples' sources. Each must evaluate to a value or an error whose location is inside
//! the manifest — never a panic.
//!
//! `CMOD_FUZZ_CASES=N` sets the inputs (default 2,000); `scripts/fuzz-parsers` runs a
//! million.

#[path = "../../schema/tests/fuzz/mod.rs"]
mod fuzz;

use std::path::{Path, PathBuf};

use cmod_evaluator::file_cache::FileCache;
use cmod_evaluator::flags::ProfileName;
use cmod_evaluator::manifest_file::ManifestFile;
use cmod_evaluator::package::{LoadOptions, PackageGraph};
use cmod_evaluator::settings::Settings;
use cmod_evaluator::sources::find_sources;
use cmod_evaluator::targets::{package_targets, PackageTargets};
use cmod_evaluator::EvalError;
use cmod_schema::manifest::Stdlib;
use fuzz::{hostile, seeds_ending, TOML_CLOSE, TOML_OPEN, TOML_TOKENS};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Copy every file but `cmod.toml` of the examples into `dst`, so the seeds' source
/// globs, include directories and headers find something.
fn copy_sources(src: &Path, dst: &Path) {
    for entry in std::fs::read_dir(src).expect("an example directory") {
        let entry = entry.expect("an entry");
        let to = dst.join(entry.file_name());
        let kind = entry.file_type().expect("a file type");
        if kind.is_dir() {
            std::fs::create_dir_all(&to).expect("a directory");
            copy_sources(&entry.path(), &to);
        } else if kind.is_file() && entry.file_name() != "cmod.toml" {
            std::fs::copy(entry.path(), &to).expect("a copy");
        }
    }
}

/// Everything the evaluator checks before it needs the toolchain.
fn check_project(dir: &Path) -> Result<(), EvalError> {
    let packages = PackageGraph::load(
        dir,
        &LoadOptions {
            fetcher: None,
            select: Vec::new(),
        },
    )?;
    let mut targets: Vec<PackageTargets> = Vec::new();
    for pkg in &packages.packages {
        let sources = find_sources(&pkg.file, true)?;
        targets.push(package_targets(&pkg.file, &sources)?);
    }
    let files = FileCache::in_memory();
    Settings::new(
        &packages,
        &targets,
        ProfileName::Dev,
        Stdlib::default(),
        &files,
    )?;
    Ok(())
}

/// An error must say something, and a location in the manifest must be inside it.
fn check_error(e: &EvalError, manifest: &Path, text: &str) {
    assert!(!e.message.trim().is_empty(), "an empty message: {e:?}");
    if let Some(at) = &e.location {
        assert!(
            at.line >= 1 && at.column >= 1,
            "a location before the file: {e:?}"
        );
        if at.file == manifest {
            let lines = text.split('\n').count() as u32;
            assert!(at.line <= lines, "line {} of {lines}: {e:?}", at.line);
        }
    }
}

#[test]
fn manifests_evaluate_or_fail_with_a_located_error() {
    let tree = tempfile::tempdir().expect("a temporary directory");
    let dir = tree.path().join("pkg");
    std::fs::create_dir_all(&dir).expect("the package directory");
    for example in [
        "hello",
        "library",
        "multi-lib",
        "pch",
        "zlib",
        "c-mix",
        "visibility",
    ] {
        copy_sources(&repo().join("examples").join(example), &dir);
    }
    let manifest = dir.canonicalize().expect("canonical").join("cmod.toml");
    let inputs = hostile(seeds_ending(".toml"), TOML_TOKENS, TOML_OPEN, TOML_CLOSE);
    fuzz::run("manifest checks (evaluator)", inputs, |bytes| {
        let text = String::from_utf8_lossy(bytes).into_owned();
        if let Err(e) = ManifestFile::parse(&manifest, text.clone()) {
            check_error(&e, &manifest, &text);
            return;
        }
        std::fs::write(&manifest, &text).expect("write cmod.toml");
        if let Err(e) = check_project(&dir) {
            check_error(&e, &manifest, &text);
        }
    });
}
