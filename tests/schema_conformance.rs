//! What `cmod eval --json` really prints conforms to the published derivation schema
//! (`schema/schemas/derivation.schema.json`), for every kind of step.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{failure, Sandbox};
use serde_json::{json, Value};

fn derivation_schema() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/schemas/derivation.schema.json");
    let value: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&value).unwrap()
}

#[test]
fn every_derivation_of_the_library_example_validates() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let out = s.cmod(&dir, &["eval", "--json"]);
    assert!(out.status.success(), "{}", failure(&out).1);
    let drvs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let drvs = drvs.as_object().unwrap();
    let schema = derivation_schema();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for (path, drv) in drvs {
        let errors: Vec<String> = schema.iter_errors(drv).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{path} does not validate: {errors:?}");
        *kinds
            .entry(drv["kind"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("archive".to_string(), 1),
            ("bmi".into(), 4),
            ("link".into(), 1),
            ("object".into(), 8),
        ])
    );
    // The schema is strict about real derivations too: an unknown field, a path that
    // leaves the build directory, or an unknown role is rejected.
    let (_, link) = drvs.iter().find(|(_, d)| d["kind"] == "link").unwrap();
    let mut extra = link.clone();
    extra["host_path"] = json!("/usr/bin/clang++-19");
    assert!(!schema.is_valid(&extra));
    let mut escaping = link.clone();
    escaping["inputs"][0]["at"] = json!("../../etc/passwd");
    assert!(!schema.is_valid(&escaping));
    let mut role = link.clone();
    role["inputs"][0]["role"] = json!("anything");
    assert!(!schema.is_valid(&role));
}
