//! A compact binary form of a derivation and the source files it reads, for the recipe
//! record (`derive/recipe.rs`): decoding one costs a few allocations per string, a small
//! fraction of making it again from the module graph.
//!
//! Strings are length-prefixed, store paths are their digest and name, enums are tags;
//! a record another build of cmod wrote is never read (the record's header carries the
//! binary's identity), so the form needs no version of its own.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use cmod_schema::derivation::{Derivation, Input, InputFrom, InputRole, Output, StepKind, Tool};
use cmod_schema::store_path::{StorePath, HASH_BYTES};
use cmod_schema::ContentHash;

use super::SourceFile;
use crate::cache_io::Fields;

const KINDS: [StepKind; 7] = [
    StepKind::Bmi,
    StepKind::Pch,
    StepKind::Object,
    StepKind::Archive,
    StepKind::Link,
    StepKind::HeaderUnit,
    StepKind::Generate,
];
const TOOLS: [Tool; 3] = [Tool::Cxx, Tool::Ar, Tool::Program];
const ROLES: [InputRole; 7] = [
    InputRole::Source,
    InputRole::Headers,
    InputRole::Bmi,
    InputRole::Object,
    InputRole::Archive,
    InputRole::Pch,
    InputRole::Program,
];

fn tag_of<T: PartialEq>(all: &[T], value: &T) -> u8 {
    all.iter().position(|v| v == value).unwrap_or(usize::MAX) as u8
}

/// Appends fields to a buffer.
struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn len(&mut self, n: usize) {
        self.0.extend_from_slice(&(n as u32).to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        crate::cache_io::put_bytes(self.0, b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn path(&mut self, p: &StorePath) {
        self.0.extend_from_slice(p.hash_bytes());
        self.str(p.name());
    }
    fn hash(&mut self, h: &ContentHash) {
        self.0.extend_from_slice(&h.0);
    }
}

/// Reads fields back (the records' [`Fields`], and this form's own); every read fails
/// (`None`) past the end.
struct Reader<'a>(Fields<'a>);

impl<'a> Reader<'a> {
    fn str(&mut self) -> Option<String> {
        Some(std::str::from_utf8(self.0.bytes()?).ok()?.to_string())
    }
    fn path(&mut self) -> Option<StorePath> {
        let hash: [u8; HASH_BYTES] = self.0.take(HASH_BYTES)?.try_into().ok()?;
        let name = std::str::from_utf8(self.0.bytes()?).ok()?;
        StorePath::from_parts(hash, name).ok()
    }
    fn hash(&mut self) -> Option<ContentHash> {
        Some(ContentHash(self.0.take(32)?.try_into().ok()?))
    }
    fn tagged<T: Copy>(&mut self, all: &[T]) -> Option<T> {
        all.get(usize::from(self.0.u8()?)).copied()
    }
}

/// Append `path`, `drv` and `sources` to `out`.
pub(super) fn encode(
    path: &StorePath,
    drv: &Derivation,
    sources: &[SourceFile],
    out: &mut Vec<u8>,
) {
    let mut w = Writer(out);
    w.path(path);
    w.0.extend_from_slice(&drv.version.to_le_bytes());
    w.str(&drv.name);
    w.0.push(tag_of(&KINDS, &drv.kind));
    w.hash(&drv.toolchain);
    w.0.push(tag_of(&TOOLS, &drv.tool));
    w.len(drv.args.len());
    drv.args.iter().for_each(|a| w.str(a));
    w.len(drv.env.len());
    for (k, v) in &drv.env {
        w.str(k);
        w.str(v);
    }
    w.len(drv.host.len());
    for (k, h) in &drv.host {
        w.str(k);
        w.hash(h);
    }
    w.len(drv.inputs.len());
    for i in &drv.inputs {
        w.str(&i.at);
        w.0.push(tag_of(&ROLES, &i.role));
        match &i.from {
            InputFrom::Drv { drv, output } => {
                w.0.push(0);
                w.path(drv);
                w.str(output);
            }
            InputFrom::Path { path, sub } => {
                w.0.push(1 + u8::from(sub.is_some()));
                w.path(path);
                if let Some(sub) = sub {
                    w.str(sub);
                }
            }
        }
    }
    w.len(drv.outputs.len());
    for (k, o) in &drv.outputs {
        w.str(k);
        w.str(&o.at);
        w.str(&o.name);
        match &o.module {
            Some(m) => {
                w.0.push(1);
                w.str(m);
            }
            None => w.0.push(0),
        }
    }
    w.len(sources.len());
    for s in sources {
        w.bytes(s.host.as_os_str().as_bytes());
        w.path(&s.path);
        w.hash(&s.hash);
        w.0.push(u8::from(s.tree));
    }
}

/// The store path at the start of what [`encode`] wrote.
pub(super) fn decode_path(bytes: &[u8]) -> Option<StorePath> {
    Reader(Fields(bytes)).path()
}

/// What [`encode`] wrote (all of `bytes`), or `None` if it is damaged.
pub(super) fn decode(bytes: &[u8]) -> Option<(StorePath, Derivation, Vec<SourceFile>)> {
    let mut r = Reader(Fields(bytes));
    let path = r.path()?;
    let version = u32::from_le_bytes(r.0.take(4)?.try_into().ok()?);
    let name = r.str()?;
    let kind = r.tagged(&KINDS)?;
    let toolchain = r.hash()?;
    let tool = r.tagged(&TOOLS)?;
    let args = (0..r.0.len()?)
        .map(|_| r.str())
        .collect::<Option<Vec<_>>>()?;
    let env = (0..r.0.len()?)
        .map(|_| Some((r.str()?, r.str()?)))
        .collect::<Option<BTreeMap<_, _>>>()?;
    let host = (0..r.0.len()?)
        .map(|_| Some((r.str()?, r.hash()?)))
        .collect::<Option<BTreeMap<_, _>>>()?;
    let inputs = (0..r.0.len()?)
        .map(|_| decode_input(&mut r))
        .collect::<Option<Vec<_>>>()?;
    let outputs = (0..r.0.len()?)
        .map(|_| {
            let key = r.str()?;
            let at = r.str()?;
            let name = r.str()?;
            let module = match r.0.u8()? {
                0 => None,
                _ => Some(r.str()?),
            };
            Some((key, Output { at, module, name }))
        })
        .collect::<Option<BTreeMap<_, _>>>()?;
    let sources = (0..r.0.len()?)
        .map(|_| {
            Some(SourceFile {
                host: PathBuf::from(std::ffi::OsStr::from_bytes(r.0.bytes()?)),
                path: r.path()?,
                hash: r.hash()?,
                tree: r.0.u8()? != 0,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let drv = Derivation {
        args,
        env,
        host,
        inputs,
        kind,
        name,
        outputs,
        tool,
        toolchain,
        version,
    };
    r.0.is_empty().then_some((path, drv, sources))
}

fn decode_input(r: &mut Reader<'_>) -> Option<Input> {
    let at = r.str()?;
    let role = r.tagged(&ROLES)?;
    let from = match r.0.u8()? {
        0 => InputFrom::Drv {
            drv: r.path()?,
            output: r.str()?,
        },
        1 => InputFrom::Path {
            path: r.path()?,
            sub: None,
        },
        2 => InputFrom::Path {
            path: r.path()?,
            sub: Some(r.str()?),
        },
        _ => return None,
    };
    Some(Input { at, from, role })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmod_schema::PathKind;

    fn path(kind: PathKind, name: &str) -> StorePath {
        StorePath::compute(
            kind,
            &ContentHash::of_file(false, name.as_bytes()),
            name,
            [],
        )
        .unwrap()
    }

    /// Every field survives the round trip, each enum's every variant included; a
    /// truncated or extended encoding is refused.
    #[test]
    fn a_derivation_round_trips() {
        for (i, kind) in KINDS.iter().enumerate() {
            let drv = Derivation {
                args: vec!["-c".into(), String::new(), "é".into()],
                env: BTreeMap::from([("A".into(), "b".into())]),
                host: BTreeMap::from([(
                    "/usr/include/x.h".into(),
                    ContentHash::of_file(false, b"x"),
                )]),
                inputs: ROLES
                    .iter()
                    .enumerate()
                    .map(|(j, role)| Input {
                        at: format!("in/{j}"),
                        role: *role,
                        from: match j % 3 {
                            0 => InputFrom::Drv {
                                drv: path(PathKind::Drv, "d.drv"),
                                output: "bmi".into(),
                            },
                            1 => InputFrom::Path {
                                path: path(PathKind::Source, "s.cpp"),
                                sub: None,
                            },
                            _ => InputFrom::Path {
                                path: path(PathKind::Source, "t"),
                                sub: Some("x/y".into()),
                            },
                        },
                    })
                    .collect(),
                kind: *kind,
                name: format!("n{i}"),
                outputs: BTreeMap::from([
                    (
                        "bmi".into(),
                        Output {
                            at: "out/m.pcm".into(),
                            module: Some("m".into()),
                            name: "m.pcm".into(),
                        },
                    ),
                    (
                        "obj".into(),
                        Output {
                            at: "out/m.o".into(),
                            module: None,
                            name: "m.o".into(),
                        },
                    ),
                ]),
                tool: TOOLS[i % TOOLS.len()],
                toolchain: ContentHash::of_file(false, b"tc"),
                version: 2,
            };
            let sources = vec![SourceFile {
                host: PathBuf::from("/p/src/a b.cpp"),
                path: path(PathKind::Source, "a.cpp"),
                hash: ContentHash::of_file(false, b"a"),
                tree: i % 2 == 0,
            }];
            let at = path(PathKind::Drv, "x.drv");
            let mut bytes = Vec::new();
            encode(&at, &drv, &sources, &mut bytes);
            assert_eq!(
                decode(&bytes),
                Some((at.clone(), drv.clone(), sources.clone()))
            );
            assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
            bytes.push(0);
            assert_eq!(decode(&bytes), None);
        }
    }
}
