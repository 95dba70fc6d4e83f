//! Property tests over every parser of untrusted bytes in `cmod-schema`: manifests,
//! lockfiles, derivations, path metadata, cache descriptions, transfer metadata, scan
//! entries and the sharing settings. Inputs are random bytes, mutated valid documents and
//! deep nesting (see `fuzz/mod.rs`). Each must give a value or its typed error — never a
//! panic — and what it accepts must survive its own round trip; error positions must lie
//! inside the text (they become `file:line:column`).
//!
//! `CMOD_FUZZ_CASES=N` sets the inputs per parser (default 2,000); `scripts/fuzz-parsers`
//! runs a million each.

mod fuzz;

use cmod_schema::cache::{parse_versioned, CacheInfo, FormatError, NarInfo, UserConfig};
use cmod_schema::diag::Location;
use cmod_schema::lock::{LockError, Lockfile};
use cmod_schema::manifest::Manifest;
use cmod_schema::scan_entry::ScanEntry;
use cmod_schema::{Derivation, PathInfo};
use fuzz::{
    hostile, seeds, JSON_CLOSE, JSON_OPEN, JSON_TOKENS, TOML_CLOSE, TOML_OPEN, TOML_TOKENS,
};

fn json(prefix: &str) -> proptest::strategy::BoxedStrategy<Vec<u8>> {
    hostile(seeds(prefix), JSON_TOKENS, JSON_OPEN, JSON_CLOSE)
}

fn toml_inputs(seeds: Vec<Vec<u8>>) -> proptest::strategy::BoxedStrategy<Vec<u8>> {
    hostile(seeds, TOML_TOKENS, TOML_OPEN, TOML_CLOSE)
}

/// The position of a TOML error, as the CLI shows it.
fn locate(text: &str, span: Option<std::ops::Range<usize>>) {
    if let Some(span) = span {
        assert!(span.start <= text.len(), "span {span:?} past the end");
        let _ = Location::at_offset("cmod.toml", text, span.start);
    }
}

/// A strict versioned document: the error is one of the typed refusals, and an accepted
/// one serialises back to what parses equal.
fn versioned<T>(bytes: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    match parse_versioned::<T>(bytes) {
        Ok(v) => {
            let again = serde_json::to_vec(&v).expect("serialises");
            assert_eq!(parse_versioned::<T>(&again).expect("re-parses"), v);
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            let _: &FormatError = &e;
        }
    }
}

#[test]
fn manifests() {
    let mut s = seeds("hello.toml");
    for name in [
        "library",
        "workspace",
        "with-deps",
        "pch",
        "zlib",
        "multi-lib",
    ] {
        s.extend(seeds(&format!("{name}.toml")));
    }
    fuzz::run("manifest (toml -> Manifest)", toml_inputs(s), |bytes| {
        let text = String::from_utf8_lossy(bytes);
        match toml::from_str::<Manifest>(&text) {
            Ok(m) => {
                let again = toml::to_string(&m).expect("serialises");
                toml::from_str::<Manifest>(&again).expect("re-parses");
            }
            Err(e) => locate(&text, e.span()),
        }
        // The `[cache]` reader and the user configuration read the same kind of text.
        let _ = cmod_schema::cache::manifest_cache_section(&text);
        let _ = UserConfig::parse(&text);
    });
}

#[test]
fn lockfiles() {
    let mut s = seeds("hello.lock");
    s.extend(seeds("full.lock"));
    fuzz::run("lock (Lockfile::parse)", toml_inputs(s), |bytes| {
        let text = String::from_utf8_lossy(bytes);
        match Lockfile::parse(&text) {
            Ok(lock) => {
                let again = Lockfile::parse(&lock.render()).expect("a rendered lock parses");
                assert_eq!(again.render(), lock.render());
            }
            Err(LockError::Syntax { span, message }) => {
                assert!(!message.is_empty());
                locate(&text, span);
            }
            Err(LockError::Version(v)) => assert_ne!(v, cmod_schema::lock::LOCK_VERSION),
        }
    });
}

#[test]
fn derivations() {
    fuzz::run(
        "derivation (json -> Derivation + validate)",
        json("drv-"),
        |bytes| {
            let Ok(d) = serde_json::from_slice::<Derivation>(bytes) else {
                return;
            };
            if d.validate().is_err() {
                return;
            }
            let canonical = d.canonical_bytes().expect("a valid derivation serialises");
            let back: Derivation = serde_json::from_slice(&canonical).expect("re-parses");
            assert_eq!(back, d);
            let _ = d.drv_path();
            if d.is_resolved() {
                let _ = d.trace_key("full");
            }
            let _ = d.input_drvs();
        },
    );
}

#[test]
fn path_metadata() {
    fuzz::run(
        "path metadata (json -> PathInfo)",
        json("path-info-"),
        |bytes| {
            if let Ok(info) = serde_json::from_slice::<PathInfo>(bytes) {
                let again = serde_json::to_vec(&info).expect("serialises");
                assert_eq!(
                    serde_json::from_slice::<PathInfo>(&again).expect("re-parses"),
                    info
                );
            }
        },
    );
}

#[test]
fn cache_descriptions() {
    fuzz::run(
        "cache info (cmod-cache-info)",
        json("cache-info"),
        versioned::<CacheInfo>,
    );
}

#[test]
fn transfer_metadata() {
    fuzz::run(
        "transfer metadata (info/<hash>.json)",
        json("nar-info-"),
        versioned::<NarInfo>,
    );
}

#[test]
fn scan_entries() {
    fuzz::run("scan entry (scan/<key>.json)", json("scan-"), |bytes| {
        versioned::<ScanEntry>(bytes);
        if let Ok(e) = parse_versioned::<ScanEntry>(bytes) {
            let _ = e.fingerprint();
        }
    });
}
