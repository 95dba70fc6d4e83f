//! The `store serve --stdio` protocol, driven frame by frame: version negotiation,
//! batched queries, verified adds (with and without required signatures), streamed
//! archives, and errors for what it does not understand.

use std::collections::BTreeSet;
use std::io::Cursor;

use cmod_schema::cache::NarInfo;
use cmod_schema::{PathKind, StorePath};
use cmod_store::serve::{
    nar_info, pack_to_temp, read_frame, read_msg, serve, write_frame, write_msg, FrameReader,
};
use cmod_store::sign::{SecretKey, TrustedKeys};
use cmod_store::transfer::Trust;
use cmod_store::Store;
use serde_json::{json, Value};

/// Run a server on `input`; return its answers (messages; archives as byte vectors).
fn converse(store: &Store, input: Vec<u8>, trust: Option<&Trust>) -> Vec<u8> {
    let mut out = Vec::new();
    serve(store, &mut Cursor::new(input), &mut out, trust).unwrap();
    out
}

fn msgs(bytes: &[u8]) -> Vec<Value> {
    let mut r = Cursor::new(bytes);
    let mut v = Vec::new();
    while let Some(m) = read_msg(&mut r).unwrap() {
        v.push(m);
    }
    v
}

fn hello(buf: &mut Vec<u8>) {
    write_msg(buf, &json!({"op": "hello", "protocol": 1})).unwrap();
}

/// A store with one signed path, and the frames that `add` it elsewhere.
fn source() -> (
    tempfile::TempDir,
    Store,
    StorePath,
    NarInfo,
    Vec<u8>,
    SecretKey,
) {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(&t.path().join("src")).unwrap();
    let p = s
        .add_bytes(
            PathKind::Output,
            "tool",
            b"#!/bin/sh\necho hi\n",
            &BTreeSet::new(),
        )
        .unwrap();
    let key = SecretKey::from_seed("k-1", [1; 32]).unwrap();
    let mut meta = s.path_info(&p).unwrap();
    key.sign_path(&mut meta);
    s.write_path_info(&meta).unwrap();
    let (tmp, archive) = pack_to_temp(&s, &p).unwrap();
    let mut info = nar_info(&s, &p).unwrap();
    info.archive = archive;
    let bytes = std::fs::read(&tmp).unwrap();
    std::fs::remove_file(tmp).unwrap();
    (t, s, p, info, bytes, key)
}

fn add_frames(buf: &mut Vec<u8>, info: &NarInfo, archive: &[u8]) {
    write_msg(buf, &json!({"op": "add", "info": info})).unwrap();
    for chunk in archive.chunks(7) {
        write_frame(buf, chunk).unwrap();
    }
    write_frame(buf, &[]).unwrap();
}

#[test]
fn other_protocol_versions_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let mut input = Vec::new();
    write_msg(&mut input, &json!({"op": "hello", "protocol": 2})).unwrap();
    write_msg(&mut input, &json!({"op": "missing", "paths": []})).unwrap();
    let answers = msgs(&converse(&s, input, None));
    assert_eq!(answers.len(), 1, "the server hangs up: {answers:?}");
    assert!(answers[0]["error"]
        .as_str()
        .unwrap()
        .contains("unsupported protocol"));
}

#[test]
fn batched_queries_pipelined_adds_and_streamed_gets() {
    let (t, src, p, info, archive, _) = source();
    let dst = Store::open(&t.path().join("dst")).unwrap();
    let mut input = Vec::new();
    hello(&mut input);
    write_msg(&mut input, &json!({"op": "missing", "paths": [p]})).unwrap();
    add_frames(&mut input, &info, &archive);
    add_frames(&mut input, &info, &archive); // again: already valid, still fine
    write_msg(&mut input, &json!({"op": "missing", "paths": [p]})).unwrap();
    write_msg(&mut input, &json!({"op": "infos", "paths": [p]})).unwrap();
    write_msg(&mut input, &json!({"op": "frobnicate"})).unwrap();
    write_msg(&mut input, &json!({"op": "bye"})).unwrap();
    let answers = msgs(&converse(&dst, input, None));
    assert_eq!(answers[0]["protocol"], 1);
    assert_eq!(answers[1]["missing"], json!([p]));
    assert_eq!(answers[2]["ok"], json!(p));
    assert_eq!(answers[3]["ok"], json!(p));
    assert_eq!(answers[4]["missing"], json!([]));
    assert_eq!(answers[5]["infos"][0]["path"], json!(p));
    assert_eq!(
        answers[5]["infos"][0]["signatures"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(answers[6]["error"]
        .as_str()
        .unwrap()
        .contains("unknown request `frobnicate`"));
    assert!(dst.verify(true).unwrap().damaged.is_empty());
    assert_eq!(
        std::fs::read(dst.path_of(&p)).unwrap(),
        std::fs::read(src.path_of(&p)).unwrap()
    );

    // `get` streams the archive back: header, data frames, end frame.
    let mut input = Vec::new();
    hello(&mut input);
    write_msg(&mut input, &json!({"op": "get", "paths": [p]})).unwrap();
    let out = converse(&dst, input, None);
    let mut r = Cursor::new(&out[..]);
    let _hello = read_msg(&mut r).unwrap();
    let head = read_msg(&mut r).unwrap().unwrap();
    assert_eq!(head["path"], json!(p));
    let mut data = Vec::new();
    std::io::copy(&mut FrameReader::new(&mut r), &mut data).unwrap();
    assert_eq!(data.len() as u64, head["file_size"].as_u64().unwrap());
    assert_eq!(data, archive, "deterministic archives");
    assert!(read_frame(&mut r).unwrap().is_none());
}

#[test]
fn adds_are_verified_and_signatures_required_on_request() {
    let (t, _src, p, info, archive, key) = source();
    // A tampered archive: refused, nothing registered, and the session goes on.
    let dst = Store::open(&t.path().join("dst")).unwrap();
    let mut bad = archive.clone();
    let n = bad.len();
    bad[n / 2] ^= 0x40;
    let mut input = Vec::new();
    hello(&mut input);
    add_frames(&mut input, &info, &bad);
    write_msg(&mut input, &json!({"op": "missing", "paths": [p]})).unwrap();
    let answers = msgs(&converse(&dst, input, None));
    assert!(
        answers[1]["error"]
            .as_str()
            .unwrap()
            .contains("was refused"),
        "{answers:?}"
    );
    assert_eq!(answers[2]["missing"], json!([p]));
    assert!(!dst.is_valid(&p));

    // With --require-sigs: unsigned is refused, signed by the trusted key accepted.
    let trust = Trust {
        keys: TrustedKeys::new(vec![key.public()]),
        require_sigs: true,
    };
    let mut unsigned = info.clone();
    unsigned.signatures.clear();
    let mut input = Vec::new();
    hello(&mut input);
    add_frames(&mut input, &unsigned, &archive);
    add_frames(&mut input, &info, &archive);
    let answers = msgs(&converse(&dst, input, Some(&trust)));
    assert!(
        answers[1]["error"]
            .as_str()
            .unwrap()
            .contains("it is not signed"),
        "{answers:?}"
    );
    assert_eq!(answers[2]["ok"], json!(p));
    assert!(dst.is_valid(&p));

    // Trace entries must name outputs the server has.
    let mut input = Vec::new();
    hello(&mut input);
    let entry = json!({"version": 1, "key": info.content_hash, "drv": p, "sandbox": "full", "outputs": {"out": "0000000000000000000000000000000a-x"}});
    write_msg(&mut input, &json!({"op": "add_traces", "entries": [entry]})).unwrap();
    let answers = msgs(&converse(&dst, input, None));
    assert!(
        answers[1]["error"]
            .as_str()
            .unwrap()
            .contains("which is not here"),
        "{answers:?}"
    );
}
