//! Golden vectors of the store's own keys and wire bytes (`schema/golden/vectors.txt`,
//! re-derived independently by `schema/golden/reference.py`): the realisation memo key
//! and the framing of the `store serve` protocol.

use cmod_schema::ContentHash;
use cmod_store::memo::memo_key;
use cmod_store::serve::{read_msg, write_msg};
use serde_json::json;

include!("../../schema/golden/golden.rs");

/// `cmod-realise-memo-v1`: the fingerprint's 32 bytes, then each part length-prefixed.
#[test]
fn golden_memo_key() {
    let fingerprint = ContentHash::of_file(false, b"fingerprint");
    let key = memo_key(&fingerprint, &["full", "accept:", "app", "app-tests"]);
    assert_golden(&[("memo.key", key.to_text())]);
    // Parts are length-prefixed: moving a boundary changes the key.
    let moved = memo_key(&fingerprint, &["full", "accept:", "appapp", "-tests"]);
    assert_ne!(moved, key);
}

/// A protocol message is a little-endian `u32` length and that many bytes of JSON (keys
/// sorted, no whitespace): the client's opening `hello` and the server's answer.
#[test]
fn golden_serve_frames() {
    let frame = |v: serde_json::Value| {
        let mut out = Vec::new();
        write_msg(&mut out, &v).unwrap();
        assert_eq!(read_msg(&mut out.as_slice()).unwrap(), Some(v));
        out.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert_golden(&[
        (
            "serve.frame.hello",
            frame(json!({"op": "hello", "protocol": cmod_store::serve::PROTOCOL})),
        ),
        (
            "serve.frame.hello_answer",
            frame(json!({
                "protocol": cmod_store::serve::PROTOCOL,
                "store_format": cmod_store::layout::FORMAT,
            })),
        ),
    ]);
}
