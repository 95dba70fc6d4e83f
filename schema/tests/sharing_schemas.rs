//! The sharing formats' JSON Schemas agree with their serde types: values the types
//! produce validate; documents the strict parser rejects (unknown fields, newer
//! versions) are rejected by the schemas too.

use std::collections::BTreeSet;
use std::path::Path;

use cmod_schema::cache::{parse_versioned, ArchiveRef, CacheInfo, NarInfo, UserConfig};
use cmod_schema::{ContentHash, PathKind, StorePath};
use serde_json::{json, Value};

fn schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name);
    let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&value).unwrap()
}

fn sample() -> NarInfo {
    let h = ContentHash::of_file(false, b"x");
    let dep = StorePath::compute(PathKind::Source, &h, "dep", []).unwrap();
    NarInfo {
        version: 1,
        path: StorePath::compute(PathKind::Output, &h, "x.o", [&dep]).unwrap(),
        kind: PathKind::Output,
        content_hash: h,
        size: 1,
        references: BTreeSet::from([dep]),
        deriver: None,
        sandbox: Some("full".into()),
        landlock_abi: Some(7),
        signatures: BTreeSet::from([format!("k-1:{}==", "A".repeat(86))]),
        archive: ArchiveRef {
            file: "nar/x.tar.zst".into(),
            file_hash: h,
            file_size: 99,
            compression: "tar+zstd".into(),
        },
    }
}

#[test]
fn nar_info_schema_matches_the_type() {
    let v = schema("nar-info.schema.json");
    let good = serde_json::to_value(sample()).unwrap();
    assert!(
        v.is_valid(&good),
        "{:?}",
        v.iter_errors(&good)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    for (field, bad) in [
        ("extra", json!(1)),
        ("version", json!(2)),
        ("kind", json!("nar")),
    ] {
        let mut doc = good.clone();
        doc[field] = bad;
        assert!(!v.is_valid(&doc), "{field}");
        assert!(
            parse_versioned::<NarInfo>(&serde_json::to_vec(&doc).unwrap()).is_err(),
            "{field}"
        );
    }
}

#[test]
fn trace_entry_and_cache_info_schemas() {
    let t = schema("trace-entry.schema.json");
    let s = sample();
    let entry = json!({
        "version": 1,
        "key": s.content_hash,
        "drv": s.path,
        "sandbox": "full",
        "outputs": { "obj": s.path },
        "signatures": [format!("k-1:{}==", "B".repeat(86))],
    });
    assert!(t.is_valid(&entry));
    let mut bad = entry.clone();
    bad["mirror"] = json!("x");
    assert!(!t.is_valid(&bad));
    let c = schema("cache-info.schema.json");
    assert!(c.is_valid(&serde_json::to_value(CacheInfo::default()).unwrap()));
    assert!(!c.is_valid(&json!({"version": 2, "store_format": "v1"})));
}

#[test]
fn scan_entry_schema_matches_the_type() {
    let t = schema("scan-entry.schema.json");
    let s = sample();
    let entry = json!({
        "version": 1,
        "key": s.content_hash,
        "result": {
            "provides": ["m", true],
            "requires": ["m:p"],
            "headers": [{"rel": "inc/x.h", "hash": s.content_hash}],
            "decls": {"module": null},
        },
        "signatures": [format!("k-1:{}==", "B".repeat(86))],
    });
    assert!(t.is_valid(&entry));
    let parsed: cmod_schema::scan_entry::ScanEntry = serde_json::from_value(entry.clone()).unwrap();
    assert_eq!(parsed.signatures.len(), 1);
    for (field, bad) in [
        ("mirror", json!("x")),
        ("version", json!(2)),
        ("key", json!("not-a-hash")),
    ] {
        let mut doc = entry.clone();
        doc[field] = bad;
        assert!(!t.is_valid(&doc), "{field}");
    }
    let mut no_headers = entry.clone();
    no_headers["result"]
        .as_object_mut()
        .unwrap()
        .remove("headers");
    assert!(!t.is_valid(&no_headers));
}

#[test]
fn config_schema_matches_the_type() {
    let c = schema("config.schema.json");
    let text = "[cache]\nsubstituters = [\"https://c.example/x\"]\ntrusted-public-keys = [\"k-1:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=\"]\nrequire-sigs = true\n";
    let cfg = UserConfig::parse(text).unwrap();
    let as_json = serde_json::to_value(toml::from_str::<toml::Value>(text).unwrap()).unwrap();
    assert!(c.is_valid(&as_json));
    assert_eq!(cfg.cache.substituters.len(), 1);
    let remote = "[cache]\nremote-cache = \"grpc://127.0.0.1:8980\"\nremote-instance-name = \"main\"\nremote-headers = [\"authorization=Bearer abc\"]\n";
    let cfg = UserConfig::parse(remote).unwrap();
    assert_eq!(cfg.cache.remote_headers, ["authorization=Bearer abc"]);
    assert_eq!(
        cfg.cache.remote_cache.as_deref(),
        Some("grpc://127.0.0.1:8980")
    );
    assert_eq!(cfg.cache.remote_instance_name.as_deref(), Some("main"));
    assert!(
        c.is_valid(&serde_json::to_value(toml::from_str::<toml::Value>(remote).unwrap()).unwrap())
    );
    let http = remote.replace("grpc://", "http://");
    assert!(
        !c.is_valid(&serde_json::to_value(toml::from_str::<toml::Value>(&http).unwrap()).unwrap())
    );
    let bad = "[cache]\nsubstituter = []\n";
    assert!(UserConfig::parse(bad).is_err());
    assert!(
        !c.is_valid(&serde_json::to_value(toml::from_str::<toml::Value>(bad).unwrap()).unwrap())
    );
}
