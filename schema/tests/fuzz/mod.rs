//! Structured-but-hostile inputs for the parser property tests (shared by `cmod-schema`'s
//! and `cmod-store`'s `fuzz_parsers` tests; stable Rust, `proptest`).
//!
//! An input is one of: random bytes; a valid encoding (a seed) with a few mutations
//! (byte flips, insertions of random bytes or of format tokens — huge and negative
//! numbers, odd escapes, brackets — deletions, duplications, truncation, splices of two
//! seeds); or deep nesting of the format's brackets (up to 100,000 levels).
//!
//! `CMOD_FUZZ_CASES` sets the inputs per parser (default 2,000: seconds in the normal
//! test suite); `scripts/fuzz-parsers` runs 1,000,000 per parser in release mode.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// The seed documents (real encodings from a build) whose file names satisfy `keep`,
/// sorted. Every crate that uses this module sits beside `schema/`.
fn seed_files(keep: impl Fn(&str) -> bool) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/tests/fuzz/seeds");
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("the seed directory")
        .map(|e| e.expect("a seed").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
        .map(|p| std::fs::read(p).expect("a seed"))
        .collect();
    assert!(!out.is_empty(), "no seeds match");
    out.sort();
    out
}

/// The seeds whose file names start with `prefix`.
pub fn seeds(prefix: &str) -> Vec<Vec<u8>> {
    seed_files(|n| n.starts_with(prefix))
}

/// The seeds whose file names end with `suffix`.
pub fn seeds_ending(suffix: &str) -> Vec<Vec<u8>> {
    seed_files(|n| n.ends_with(suffix))
}

/// Inputs per parser.
pub fn cases() -> u32 {
    std::env::var("CMOD_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000)
}

/// Tokens that stress JSON readers.
pub const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "-1",
    "1e999",
    "-1e999",
    "1.5",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "4294967296",
    "255",
    "256",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\\"",
    "\"version\"",
    "\"path\"",
    "\"key\"",
    "\"outputs\"",
    "\"signatures\"",
    "\"references\"",
    "\"blake3:\"",
    "\"\"",
    "\"a:b\"",
    "\"k:AAAA\"",
    "\"/\"",
    "\"..\"",
    "\u{feff}",
    "\u{0}",
    " ",
    "\n",
];

/// Tokens that stress TOML readers.
pub const TOML_TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "#",
    "\n",
    "\r\n",
    ",",
    ".",
    "inf",
    "-inf",
    "nan",
    "1979-05-27T07:32:00Z",
    "1979-05-27",
    "07:32:00",
    "0x7f",
    "0o777",
    "0b1",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "1e400",
    "true",
    "\\u0000",
    "\\U0010FFFF",
    "\"\\ud800\"",
    "package",
    "name",
    "version",
    "dependencies",
    "git",
    "path",
    "lib",
    "bin",
    "test",
    "sources",
    "workspace",
    "members",
    "toolchain",
    "build",
    "profile",
    "cache",
    "packages",
    "system",
    "rev",
    "hash",
    "\u{0}",
    " ",
    "a.b.c",
];

/// One edit of an input.
#[derive(Debug, Clone)]
pub enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Token(usize, usize),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Flip(p, b)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(p, b)| Mutation::Insert(p, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(p, t)| Mutation::Token(p, t)),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Duplicate(p, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// Apply `m` to `bytes`, drawing tokens from `tokens`.
pub fn apply(bytes: &mut Vec<u8>, m: &Mutation, tokens: &[&str]) {
    let at = |p: usize, len: usize| if len == 0 { 0 } else { p % (len + 1) };
    match m {
        Mutation::Flip(p, b) => {
            if !bytes.is_empty() {
                let i = p % bytes.len();
                bytes[i] ^= b | 1;
            }
        }
        Mutation::Insert(p, b) => {
            let i = at(*p, bytes.len());
            bytes.splice(i..i, b.iter().copied());
        }
        Mutation::Token(p, t) => {
            let i = at(*p, bytes.len());
            let tok = tokens[t % tokens.len()].as_bytes();
            bytes.splice(i..i, tok.iter().copied());
        }
        Mutation::Delete(p, n) => {
            let i = at(*p, bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Duplicate(p, n) => {
            let i = at(*p, bytes.len());
            let end = (i + n).min(bytes.len());
            let copy: Vec<u8> = bytes[i..end].to_vec();
            bytes.splice(end..end, copy);
        }
        Mutation::Truncate(p) => {
            let i = at(*p, bytes.len());
            bytes.truncate(i);
        }
    }
}

/// Seeds with up to six mutations each, or two seeds spliced.
pub fn mutated(seeds: Vec<Vec<u8>>, tokens: &'static [&'static str]) -> BoxedStrategy<Vec<u8>> {
    let n = seeds.len();
    let one = seeds.clone();
    let edited = (0..n, proptest::collection::vec(mutation(), 0..6))
        .prop_map(move |(i, ms)| {
            let mut b = one[i].clone();
            for m in &ms {
                apply(&mut b, m, tokens);
            }
            b
        })
        .boxed();
    let spliced = (0..n, 0..n, any::<usize>(), any::<usize>())
        .prop_map(move |(a, b, x, y)| {
            let (a, b) = (&seeds[a], &seeds[b]);
            let i = if a.is_empty() { 0 } else { x % a.len() };
            let j = if b.is_empty() { 0 } else { y % b.len() };
            let mut out = a[..i].to_vec();
            out.extend_from_slice(&b[j..]);
            out
        })
        .boxed();
    prop_oneof![4 => edited, 1 => spliced].boxed()
}

/// `depth` openers (cycling through `open`), an optional middle, and the closers.
pub fn nested(
    open: &'static [&'static str],
    close: &'static [&'static str],
) -> BoxedStrategy<Vec<u8>> {
    let depth = prop_oneof![8 => 1usize..1_000, 1 => 1_000usize..100_000];
    (depth, 0..open.len(), any::<bool>())
        .prop_map(move |(depth, k, closed)| {
            let mut b = Vec::with_capacity(depth * 4);
            for _ in 0..depth {
                b.extend_from_slice(open[k].as_bytes());
            }
            if closed {
                for _ in 0..depth {
                    b.extend_from_slice(close[k].as_bytes());
                }
            }
            b
        })
        .boxed()
}

/// Every kind of input for a format with these seeds, tokens and nesting.
pub fn hostile(
    seeds: Vec<Vec<u8>>,
    tokens: &'static [&'static str],
    open: &'static [&'static str],
    close: &'static [&'static str],
) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        2 => proptest::collection::vec(any::<u8>(), 0..512),
        12 => mutated(seeds, tokens),
        1 => nested(open, close),
    ]
    .boxed()
}

/// Deep JSON nesting: arrays, objects under a field, and a mix.
pub const JSON_OPEN: &[&str] = &["[", "{\"version\":", "{\"a\":[", "{\"outputs\":{\"o\":"];
pub const JSON_CLOSE: &[&str] = &["]", "}", "]}", "}}"];
/// Deep TOML nesting: arrays, inline tables, and arrays of inline tables.
pub const TOML_OPEN: &[&str] = &["a = [", "a = {b = [", "[lib]\nsources = [{a=", "x={y="];
pub const TOML_CLOSE: &[&str] = &["]", "]}", "}]", "}"];

/// Run `check` on `cases()` inputs from `strategy`. A panic (or a failed assertion)
/// fails the test with the (shrunk) input; prints the count and the time taken.
pub fn run(name: &str, strategy: BoxedStrategy<Vec<u8>>, check: impl Fn(&[u8])) {
    let n = cases();
    let count = AtomicU64::new(0);
    let start = Instant::now();
    let mut runner = TestRunner::new(Config {
        cases: n,
        failure_persistence: None,
        max_shrink_iters: 10_000,
        ..Config::default()
    });
    let result = runner.run(&strategy, |input| {
        count.fetch_add(1, Ordering::Relaxed);
        check(&input);
        Ok(())
    });
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
    eprintln!(
        "fuzz {name}: {} inputs, 0 panics, {:.1} s",
        count.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
}
