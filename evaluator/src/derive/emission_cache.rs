//! Reusing the derivation paths of the previous emission.
//!
//! A derivation is a pure function of the step it is made from (its name, kind, tool,
//! arguments, inputs, host files and output) and of the toolchain, so a cheap hash of the
//! step, the **step key**, names it as well as its path does. Computing that path means
//! encoding the derivation canonically and hashing the encoding, about four fifths of the
//! cost of emitting it; after an edit, all but a handful of thousands of steps are the
//! ones emitted last time. So each emission records `step key → .drv path` in the cache
//! directory, and the next one takes the path of every step whose key it finds there,
//! building the derivation's body from the step without encoding or hashing it again.
//!
//! The record is a cache: a missing, damaged or foreign one only costs the hashing, and
//! one written by another build of cmod is not read (the binary's identity is in its
//! header), since the mapping from steps to derivations is the binary's.

use std::collections::HashMap;
use std::path::PathBuf;

use cmod_schema::derivation::{Input, InputFrom, InputRole, StepKind, Tool, DERIVATION_VERSION};
use cmod_schema::store_path::{StorePath, HASH_BYTES};
use cmod_schema::ContentHash;

use super::step::Step;

/// The hash naming a step's derivation (see the module documentation).
pub(crate) type StepKey = [u8; 32];

const MAGIC: &[u8] = b"cmod-emission-v1\n";

/// The previous emission's `step key → path` pairs, and this one's.
#[derive(Debug, Default)]
pub(crate) struct EmissionCache {
    file: Option<PathBuf>,
    known: HashMap<StepKey, StorePath>,
    /// This emission's pairs, in emission order.
    current: Vec<(StepKey, StorePath)>,
    /// Whether a step's path had to be computed (so the record changes).
    missed: bool,
}

impl EmissionCache {
    /// The record in `file` (none: an empty cache that is not saved).
    pub(crate) fn load(file: Option<PathBuf>) -> EmissionCache {
        let known = file
            .as_deref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|bytes| decode(&bytes))
            .unwrap_or_default();
        EmissionCache {
            file,
            known,
            ..EmissionCache::default()
        }
    }

    /// The path recorded for `key`.
    pub(crate) fn get(&self, key: &StepKey) -> Option<&StorePath> {
        self.known.get(key)
    }

    /// Note that this emission made step `key` with derivation `path`; `computed` if the
    /// path was not taken from the record.
    pub(crate) fn note(&mut self, key: StepKey, path: &StorePath, computed: bool) {
        self.missed |= computed;
        self.current.push((key, path.clone()));
    }

    /// Replace the record with this emission's pairs, unless they are the ones it holds.
    /// Written to a temporary file and renamed; a failure leaves the old record (or none)
    /// and costs only speed, so it is not an error.
    pub(crate) fn save(self) {
        let Some(file) = self.file else {
            return;
        };
        if !self.missed && self.current.len() == self.known.len() {
            return;
        }
        let _ = crate::cache_io::write_atomic(&file, &encode(&self.current));
    }
}

fn encode(pairs: &[(StepKey, StorePath)]) -> Vec<u8> {
    let mut out = crate::cache_io::record_header(MAGIC, pairs.len(), pairs.len() * 96);
    for (key, path) in pairs {
        out.extend_from_slice(key);
        out.extend_from_slice(path.hash_bytes());
        out.push(path.name().len() as u8);
        out.extend_from_slice(path.name().as_bytes());
    }
    out
}

/// The pairs of a record, or `None` if it is damaged or another binary's.
fn decode(bytes: &[u8]) -> Option<HashMap<StepKey, StorePath>> {
    let (count, mut rest) = crate::cache_io::record_entries(bytes, MAGIC)?;
    let mut out = HashMap::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let (key, after) = rest.split_at_checked(32)?;
        let (hash, after) = after.split_at_checked(HASH_BYTES)?;
        let (&len, after) = after.split_first()?;
        let (name, after) = after.split_at_checked(usize::from(len))?;
        let path =
            StorePath::from_parts(hash.try_into().ok()?, std::str::from_utf8(name).ok()?).ok()?;
        out.insert(key.try_into().ok()?, path);
        rest = after;
    }
    rest.is_empty().then_some(out)
}

/// A hasher fed with length-prefixed fields, so that no two different steps feed the
/// same bytes.
pub(super) struct Feed(pub(super) blake3::Hasher);

impl Feed {
    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.0.update(&(b.len() as u64).to_le_bytes());
        self.0.update(b);
    }
    pub(super) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    pub(super) fn tag(&mut self, t: u8) {
        self.0.update(&[t]);
    }
    pub(super) fn path(&mut self, p: &StorePath) {
        self.0.update(p.hash_bytes());
        self.str(p.name());
    }
    pub(super) fn hash(&mut self, h: &ContentHash) {
        self.0.update(&h.0);
    }
}

pub(super) fn kind_tag(kind: StepKind) -> u8 {
    match kind {
        StepKind::Bmi => 1,
        StepKind::Pch => 2,
        StepKind::Object => 3,
        StepKind::Archive => 4,
        StepKind::Link => 5,
        StepKind::HeaderUnit => 6,
        StepKind::Generate => 7,
    }
}

fn tool_tag(tool: Tool) -> u8 {
    match tool {
        Tool::Cxx => 1,
        Tool::Ar => 2,
        Tool::Program => 3,
    }
}

fn role_tag(role: InputRole) -> u8 {
    match role {
        InputRole::Source => 1,
        InputRole::Headers => 2,
        InputRole::Bmi => 3,
        InputRole::Object => 4,
        InputRole::Archive => 5,
        InputRole::Pch => 6,
        InputRole::Program => 7,
    }
}

fn feed_input(f: &mut Feed, input: &Input) {
    f.str(&input.at);
    f.tag(role_tag(input.role));
    match &input.from {
        InputFrom::Drv { drv, output } => {
            f.tag(1);
            f.path(drv);
            f.str(output);
        }
        InputFrom::Path { path, sub } => {
            f.tag(2);
            f.path(path);
            match sub {
                Some(sub) => {
                    f.tag(1);
                    f.str(sub);
                }
                None => f.tag(0),
            }
        }
    }
}

impl Step {
    /// The step key of this step (inputs already sorted and deduplicated) built with
    /// `toolchain`: every field the derivation is made from, and the encoding version.
    pub(in crate::derive) fn key(&self, toolchain: &ContentHash) -> StepKey {
        let mut f = Feed(blake3::Hasher::new());
        f.0.update(b"cmod-step-key-v1\0");
        f.0.update(&DERIVATION_VERSION.to_le_bytes());
        f.hash(toolchain);
        f.str(&self.name);
        f.tag(kind_tag(self.kind));
        f.tag(tool_tag(self.tool));
        f.0.update(&(self.args.len() as u64).to_le_bytes());
        for a in &self.args {
            f.str(a);
        }
        f.0.update(&(self.inputs.len() as u64).to_le_bytes());
        for i in &self.inputs {
            feed_input(&mut f, i);
        }
        f.0.update(&(self.host.len() as u64).to_le_bytes());
        for (path, hash) in &self.host {
            f.str(path);
            f.hash(hash);
        }
        f.str(self.output.0);
        f.str(&self.output.1);
        match &self.module {
            Some(m) => {
                f.tag(1);
                f.str(m);
            }
            None => f.tag(0),
        }
        *f.0.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn step() -> Step {
        let src = StorePath::compute(
            cmod_schema::PathKind::Source,
            &ContentHash::of_file(false, b"int x;"),
            "a.cpp",
            [],
        )
        .unwrap();
        Step {
            name: "p-0.1.0-a.o".into(),
            kind: StepKind::Object,
            tool: Tool::Cxx,
            args: vec!["-c".into(), "src/p/a.cpp".into()],
            inputs: vec![Input {
                at: "src/p/a.cpp".into(),
                role: InputRole::Source,
                from: InputFrom::Path {
                    path: src,
                    sub: None,
                },
            }],
            host: BTreeMap::new(),
            output: ("obj", "out/a.o".into()),
            module: None,
        }
    }

    /// Every field the derivation is made from changes the key; moving a byte from one
    /// argument to the next does too (fields are length-prefixed).
    #[test]
    fn every_field_changes_the_key() {
        let tc = ContentHash::of_file(false, b"toolchain");
        let base = step().key(&tc);
        assert_eq!(base, step().key(&tc), "the key is deterministic");
        let other_tc = ContentHash::of_file(false, b"other");
        let mut changed: Vec<StepKey> = vec![step().key(&other_tc)];
        type Edit = Box<dyn Fn(&mut Step)>;
        let mut edits: Vec<Edit> = vec![
            Box::new(|s| s.name.push('x')),
            Box::new(|s| s.kind = StepKind::Bmi),
            Box::new(|s| s.tool = Tool::Ar),
            Box::new(|s| s.args = vec!["-".into(), "csrc/p/a.cpp".into()]),
            Box::new(|s| s.args.push(String::new())),
            Box::new(|s| s.inputs[0].at.push('x')),
            Box::new(|s| s.inputs[0].role = InputRole::Headers),
            Box::new(|s| {
                if let InputFrom::Path { sub, .. } = &mut s.inputs[0].from {
                    *sub = Some("x".into());
                }
            }),
            Box::new(|s| {
                s.host
                    .insert("/usr/include/x.h".into(), ContentHash::of_file(false, b""));
            }),
            Box::new(|s| s.output.0 = "bmi"),
            Box::new(|s| s.output.1.push('x')),
            Box::new(|s| s.module = Some("m".into())),
        ];
        for edit in edits.drain(..) {
            let mut s = step();
            edit(&mut s);
            changed.push(s.key(&tc));
        }
        for (i, k) in changed.iter().enumerate() {
            assert_ne!(*k, base, "edit {i} left the key unchanged");
        }
    }

    #[test]
    fn a_record_round_trips_and_a_damaged_one_is_ignored() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("emission/x.bin");
        let tc = ContentHash::of_file(false, b"toolchain");
        let s = step();
        let path = StorePath::compute(
            cmod_schema::PathKind::Drv,
            &ContentHash::of_file(false, b"drv"),
            "p-0.1.0-a.o.drv",
            [],
        )
        .unwrap();
        let mut cache = EmissionCache::load(Some(file.clone()));
        assert!(cache.get(&s.key(&tc)).is_none());
        cache.note(s.key(&tc), &path, true);
        cache.save();
        let cache = EmissionCache::load(Some(file.clone()));
        assert_eq!(cache.get(&s.key(&tc)), Some(&path));
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.pop();
        std::fs::write(&file, &bytes).unwrap();
        assert!(EmissionCache::load(Some(file)).get(&s.key(&tc)).is_none());
    }
}
