//! The journal's file: a magic line, the binary's identity (a journal another build of
//! cmod wrote is not read), the payload, then the inputs, each a tag, a subject and what
//! was found, length-prefixed. Any damage makes it unreadable, which is a miss.

use std::path::PathBuf;

use super::{bytes_of, os, Input};
use crate::cache_io::Fields;
use crate::hashing::Stamp;

const MAGIC: &[u8] = b"cmod-journal-v1\n";

const STAMP: u8 = 1;
const LINK_STAMP: u8 = 2;
const ABSENT: u8 = 3;
const CONTENT: u8 = 4;
const CANONICAL: u8 = 5;
const ENV_SET: u8 = 6;
const ENV_UNSET: u8 = 7;

struct Writer(Vec<u8>);

impl Writer {
    fn bytes(&mut self, b: &[u8]) {
        crate::cache_io::put_bytes(&mut self.0, b);
    }
    fn stamp(&mut self, s: &Stamp) {
        self.0.extend_from_slice(&s.len.to_le_bytes());
        self.0.extend_from_slice(&s.mtime_ns.to_le_bytes());
        self.0.extend_from_slice(&s.ctime_ns.to_le_bytes());
        self.0.extend_from_slice(&s.ino.to_le_bytes());
        self.0.extend_from_slice(&s.dev.to_le_bytes());
    }
}

pub(super) fn encode<'a>(inputs: impl Iterator<Item = &'a Input>, payload: &[u8]) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64 * 1024));
    w.0.extend_from_slice(MAGIC);
    w.0.extend_from_slice(&crate::cache_io::binary_identity());
    w.bytes(payload);
    for input in inputs {
        match input {
            Input::Stamp(p, s) | Input::LinkStamp(p, s) => {
                let tag = if matches!(input, Input::Stamp(..)) {
                    STAMP
                } else {
                    LINK_STAMP
                };
                w.0.push(tag);
                w.bytes(bytes_of(p.as_os_str()));
                w.stamp(s);
            }
            Input::Absent(p) => {
                w.0.push(ABSENT);
                w.bytes(bytes_of(p.as_os_str()));
            }
            Input::Content(p, h) => {
                w.0.push(CONTENT);
                w.bytes(bytes_of(p.as_os_str()));
                w.0.extend_from_slice(h);
            }
            Input::Canonical(p, c) => {
                w.0.push(CANONICAL);
                w.bytes(bytes_of(p.as_os_str()));
                w.bytes(bytes_of(c.as_os_str()));
            }
            Input::Env(name, Some(value)) => {
                w.0.push(ENV_SET);
                w.bytes(bytes_of(name));
                w.bytes(bytes_of(value));
            }
            Input::Env(name, None) => {
                w.0.push(ENV_UNSET);
                w.bytes(bytes_of(name));
            }
            // Never saved: a recording with one is not journaled.
            Input::Untracked(_) => {}
        }
    }
    w.0
}

struct Reader<'a>(Fields<'a>);

impl<'a> Reader<'a> {
    fn path(&mut self) -> Option<PathBuf> {
        Some(PathBuf::from(os(self.0.bytes()?)))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.0.take(8)?.try_into().ok()?))
    }
    fn i128(&mut self) -> Option<i128> {
        Some(i128::from_le_bytes(self.0.take(16)?.try_into().ok()?))
    }
    fn stamp(&mut self) -> Option<Stamp> {
        Some(Stamp {
            len: self.u64()?,
            mtime_ns: self.i128()?,
            ctime_ns: self.i128()?,
            ino: self.u64()?,
            dev: self.u64()?,
        })
    }
    fn input(&mut self) -> Option<Input> {
        Some(match self.0.u8()? {
            STAMP => Input::Stamp(self.path()?, self.stamp()?),
            LINK_STAMP => Input::LinkStamp(self.path()?, self.stamp()?),
            ABSENT => Input::Absent(self.path()?),
            CONTENT => Input::Content(self.path()?, self.0.take(32)?.try_into().ok()?),
            CANONICAL => Input::Canonical(self.path()?, self.path()?),
            ENV_SET => Input::Env(os(self.0.bytes()?), Some(os(self.0.bytes()?))),
            ENV_UNSET => Input::Env(os(self.0.bytes()?), None),
            _ => return None,
        })
    }
}

/// The inputs and payload of a journal, or `None` if it is damaged or another binary's.
pub(super) fn decode(bytes: &[u8]) -> Option<(Vec<Input>, &[u8])> {
    let mut r = Reader(Fields(bytes.strip_prefix(MAGIC)?));
    if r.0.take(32)? != crate::cache_io::binary_identity() {
        return None;
    }
    let payload = r.0.bytes()?;
    let mut inputs = Vec::new();
    while !r.0.is_empty() {
        inputs.push(r.input()?);
    }
    Some((inputs, payload))
}
