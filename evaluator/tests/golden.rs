//! Golden vector of the scan key (`schema/golden/vectors.txt`, re-derived independently by
//! `schema/golden/reference.py`): what a scan entry is filed and shared under.

use cmod_evaluator::scan::{scan_key, ScanItem};
use cmod_schema::ContentHash;

include!("../../schema/golden/golden.rs");

fn item(host_args: &[&str]) -> ScanItem {
    ScanItem {
        rel: "src/hello.cppm".into(),
        hash: ContentHash::of_file(false, b"export module hello;\n"),
        args: [
            "-x",
            "c++-module",
            "-std=c++20",
            "-Isrc/hello/include",
            "-DGREETING=\"hi\"",
        ]
        .map(String::from)
        .to_vec(),
        host_args: host_args.iter().map(|a| a.to_string()).collect(),
        source: None,
    }
}

/// `cmod-scan-v1`: toolchain identity text, the unit's package-relative path, its content
/// hash text and its flags as a build step sees them. The host's flags are not part of it
/// (the key is the same on every machine).
#[test]
fn golden_scan_key() {
    let identity = ContentHash::of_file(false, b"toolchain").to_text();
    let key = scan_key(&identity, &item(&["-I/home/me/hello/include"]));
    assert_golden(&[("scan.key", key.to_text())]);
    assert_eq!(key, scan_key(&identity, &item(&["-I/elsewhere/include"])));
}
