//! Every place the evaluator reads the file system or the environment is accounted for by
//! the input journal: it goes through `cmod_evaluator::journal` (or `Stamp::read`), or is
//! listed here with why a journaled evaluation never depends on it. A new direct read
//! fails this test until it is routed through the journal or listed, because a read the
//! journal misses is a no-op that skips an evaluation it needed (a stale build).

use std::collections::BTreeMap;
use std::path::Path;

/// What reads (or runs something that reads): `(pattern, label)`.
const READS: &[(&str, &str)] = &[
    ("std::fs::read(", "fs::read"),
    ("fs::read_to_string", "read_to_string"),
    ("std::fs::metadata", "metadata"),
    ("symlink_metadata", "symlink_metadata"),
    (".canonicalize()", "canonicalize"),
    (".is_file()", "is_file"),
    (".is_dir()", "is_dir"),
    (".exists()", "exists"),
    ("read_dir", "read_dir"),
    ("read_link", "read_link"),
    ("env::var", "env::var"),
    ("WalkDir::new", "WalkDir"),
    ("Command::new", "Command"),
    ("File::open", "File::open"),
];

/// `(file, label, at most how many, why it is safe)`.
#[rustfmt::skip]
const ACCOUNTED: &[(&str, &str, usize, &str)] = &[
    ("cache_io.rs", "fs::read", 1, "the evaluator's own caches, not inputs"),
    ("cache_io.rs", "metadata", 2, "the evaluator's own caches"),
    ("cache_io.rs", "symlink_metadata", 1, "the evaluator's own caches"),
    ("cache_io.rs", "File::open", 1, "the evaluator's own caches"),
    ("derive/emission_cache.rs", "fs::read", 1, "a cache of derivation paths"),
    ("derive/recipe.rs", "fs::read", 1, "a cache of derivations keyed by what they are made from"),
    ("generate.rs", "fs::read", 1, "a generated file compared with its replacement, a function of the template and the manifest (both journaled by content); the file itself is then hashed by stamp"),
    ("compdb.rs", "fs::read", 1, "the compile database, an output (journaled by content by the caller)"),
    ("hashing.rs", "symlink_metadata", 1, "tree hashing during toolchain identification (untracked)"),
    ("hashing.rs", "read_link", 2, "tree hashing during toolchain identification (untracked)"),
    ("hashing.rs", "read_dir", 1, "tree hashing during toolchain identification (untracked)"),
    ("hashing.rs", "is_dir", 1, "tree hashing during toolchain identification (untracked)"),
    ("hashing.rs", "is_file", 1, "tree hashing during toolchain identification (untracked)"),
    ("hashing.rs", "File::open", 1, "file hashing after the file's stamp was noted (FileCache)"),
    ("sources/listing_cache.rs", "read_dir", 1, "a listing after its directory's stamp was noted"),
    ("sources/listing_cache.rs", "is_dir", 1, "the kind of a listed entry (its directory's stamp is noted)"),
    ("sources/listing_cache.rs", "is_file", 1, "the kind of a listed entry (its directory's stamp is noted)"),
    ("sources/walk.rs", "is_file", 1, "only in an error's message"),
    ("sources/walk.rs", "read_link", 1, "after a failed canonicalize, which is noted untracked"),
    ("scan.rs", "fs::read", 2, "units read on scan misses, which are noted untracked"),
    ("scanner.rs", "Command", 1, "the scanner runs only on misses (untracked)"),
    ("scanner.rs", "read_to_string", 1, "the scanner's output (untracked)"),
    ("system.rs", "Command", 1, "pkg-config, noted untracked"),
    ("system.rs", "is_dir", 1, "pkg-config's output, after it was noted untracked"),
    ("system.rs", "is_file", 1, "pkg-config's output, after it was noted untracked"),
    ("toolchain/mod.rs", "Command", 1, "toolchain identification (untracked)"),
    ("toolchain/mod.rs", "canonicalize", 11, "toolchain identification (untracked)"),
    ("toolchain/mod.rs", "exists", 1, "toolchain identification (untracked)"),
    ("toolchain/mod.rs", "is_dir", 4, "toolchain identification (untracked)"),
    ("toolchain/mod.rs", "is_file", 1, "toolchain identification (untracked)"),
    ("toolchain/mod.rs", "read_link", 2, "toolchain identification (untracked)"),
    ("toolchain/mod.rs", "fs::read", 1, "toolchain identification (untracked)"),
    ("toolchain/mod.rs", "symlink_metadata", 1, "toolchain identification (untracked)"),
    ("toolchain/probe.rs", "Command", 2, "toolchain identification (untracked)"),
    ("toolchain/probe.rs", "canonicalize", 1, "toolchain identification (untracked)"),
    ("toolchain/probe.rs", "is_file", 3, "toolchain identification (untracked)"),
    ("toolchain/probe.rs", "fs::read", 1, "toolchain identification (untracked)"),
    ("toolchain/runtime.rs", "Command", 2, "toolchain identification (untracked)"),
    ("toolchain/runtime.rs", "canonicalize", 1, "toolchain identification (untracked)"),
    ("toolchain/runtime.rs", "exists", 1, "toolchain identification (untracked)"),
    ("git/mod.rs", "exists", 2, "fetching, after a checkout or resolution noted untracked"),
    ("git/mod.rs", "env::var", 1, "the URL rewrites, used only when fetching (untracked)"),
    ("git/local_fetch.rs", "exists", 1, "fetching (untracked)"),
    ("deps.rs", "exists", 1, "a checkout's scratch directory (untracked)"),
    ("workspace.rs", "WalkDir", 1, "member globs: every directory the walk lists is stamped"),
    ("workspace.rs", "is_dir", 1, "the walk's filter (every directory it lists is stamped)"),
];

/// The non-test code of a source file (everything before its first `#[cfg(test)]`).
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn sources(dir: &Path, rel: &str, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if path.is_dir() {
            sources(&path, &rel, out);
        } else if name.ends_with(".rs") && name != "tests.rs" {
            out.push((rel, code_of(&path)));
        }
    }
}

#[test]
fn every_read_of_the_evaluator_is_journaled_or_accounted_for() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, "", &mut files);
    assert!(
        files.len() > 40,
        "the sources were not found: {}",
        files.len()
    );
    let mut found: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for (rel, code) in &files {
        if rel == "journal.rs" || rel.starts_with("journal/") {
            continue;
        }
        for (pattern, label) in READS {
            let n = code.matches(pattern).count();
            if n > 0 {
                *found.entry((rel.clone(), label)).or_default() += n;
            }
        }
    }
    let mut unaccounted = Vec::new();
    for ((file, label), n) in &found {
        let allowed = ACCOUNTED
            .iter()
            .find(|(f, l, _, _)| f == file && l == label)
            .map_or(0, |a| a.2);
        if *n > allowed {
            unaccounted.push(format!("{file}: {n} × {label} (accounted for: {allowed})"));
        }
    }
    assert!(
        unaccounted.is_empty(),
        "reads the input journal does not see:\n  {}\nroute them through \
         `cmod_evaluator::journal` (read_to_string, is_file, is_dir, canonicalize, var_os) or \
         `Stamp::read`, note `Input::Untracked` where they cannot be journaled, or list them \
         in ACCOUNTED with why a journaled evaluation never depends on them",
        unaccounted.join("\n  ")
    );
    // The list stays honest: every entry still matches something.
    for (file, label, _, why) in ACCOUNTED {
        assert!(
            found.contains_key(&(file.to_string(), *label)),
            "ACCOUNTED lists {file}: {label} ({why}), which no longer occurs"
        );
    }
}
