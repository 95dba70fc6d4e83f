//! The JSON Schemas in `schemas/` agree with the serde types: every example manifest and
//! every value the types produce validates, and inputs the types reject are rejected by
//! the schemas too.

use std::path::{Path, PathBuf};

use cmod_schema::manifest::Manifest;
use serde_json::{json, Value};

fn schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&value).unwrap()
}

fn toml_to_json(text: &str) -> Value {
    let v: toml::Value = toml::from_str(text).unwrap();
    serde_json::to_value(v).unwrap()
}

fn example_manifests() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "cmod.toml") {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_example_manifest_validates() {
    let v = schema("manifest.schema.json");
    let manifests = example_manifests();
    assert!(
        manifests.len() >= 3,
        "expected the shipped examples, found {manifests:?}"
    );
    for path in manifests {
        let text = std::fs::read_to_string(&path).unwrap();
        toml::from_str::<Manifest>(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let errors: Vec<String> = v
            .iter_errors(&toml_to_json(&text))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    }
}

/// Manifests that serde and the schema must both accept (true) or both reject (false).
const CASES: &[(&str, bool)] = &[
    ("[package]\nname = \"a\"\nversion = \"1.0.0\"\n", true),
    ("[package]\nname = \"a\"\nversion = \"1.0\"\n", false),
    ("[package]\nname = \"A\"\nversion = \"1.0.0\"\n", false),
    (
        "[package]\nname = \"a\"\nversion = \"1.0.0\"\nauthor = \"x\"\n",
        false,
    ),
    (
        "[toolchain]\ncxx-standard = 23\nstdlib = \"libc++\"\n",
        true,
    ),
    ("[toolchain]\ncxx-standard = 17\n", false),
    ("[toolchain]\nstdlib = \"msvc\"\n", false),
    (
        "[lib]\nkind = \"static\"\nsources = [\"src/*.cppm\"]\n",
        true,
    ),
    ("[lib]\nkind = \"shared\"\n", false),
    ("[[bin]]\nname = \"x\"\nmain = \"m.cpp\"\n", true),
    (
        "[[test]]\nname = \"t\"\nmain = \"tests/t.cpp\"\nsources = [\"tests/util/*.cpp\"]\n",
        true,
    ),
    ("[[test]]\nname = \"t\"\nmain = \"t.cpp\"\nargs = []\n", false),
    (
        "[dev-dependencies]\nu = { git = \"file:///r\", rev = \"abc1234\" }\n",
        true,
    ),
    ("[profile.dev]\nopt-level = \"s\"\ndebug = true\n", true),
    ("[profile.dev]\nopt-level = 4\n", false),
    ("[profile.test]\n", false),
    (
        "[build]\ninclude-dirs = [\"include\"]\ndefines = [\"X=1\"]\n",
        true,
    ),
    ("[build]\nincludes = []\n", false),
    ("[build]\ncompile-commands = false\n", true),
    ("[build]\ncompile-commands = true\n", true),
    (
        "[build]\ncompile-commands = \"build/compile_commands.json\"\n",
        true,
    ),
    ("[build]\ncompile-commands = \"\"\n", false),
    (
        "[build]\ncompile-commands = \"/tmp/compile_commands.json\"\n",
        false,
    ),
    ("[build]\ncompile-commands = 1\n", false),
    ("[dependencies]\nu = { path = \"../u\" }\n", true),
    (
        "[dependencies]\nu = { path = \"../u\", version = \"^1.2\" }\n",
        true,
    ),
    (
        "[dependencies]\nu = { git = \"file:///r\", tag = \"v1\" }\n",
        true,
    ),
    (
        "[dependencies]\nu = { path = \"../u\", branch = \"x\", extra = 1 }\n",
        false,
    ),
    (
        "[cache]\nsubstituters = [\"file:///c\"]\ntrusted-public-keys = [\"k-1:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=\"]\nrequire-sigs = true\n",
        true,
    ),
    ("[cache]\nsecret-key-files = [\"sk\"]\n", false),
    (
        "[[lib]]\nname = \"a\"\nsources = [\"a/*\"]\npublic-include-dirs = [\"a/include\"]\npublic-defines = [\"A=1\"]\npublic-modules = [\"a\"]\n[[lib]]\nname = \"b\"\nuses = [\"a\"]\npublic-uses = [\"a\"]\nlinks = [\"m\"]\npch = \"b/pch.h\"\n[[lib.overrides]]\nfiles = [\"b/legacy/*.c\"]\ncflags = [\"-w\"]\n",
        true,
    ),
    ("[[lib]]\nname = \"a\"\nsurprise = 1\n", false),
    ("[lib]\noverrides = [{ files = [\"x.c\"], extra = 1 }]\n", false),
    ("[lib]\noverrides = [{ defines = [\"X\"] }]\n", false),
    ("[toolchain]\nc-standard = 11\n", true),
    ("[toolchain]\nc-standard = \"gnu17\"\n", true),
    ("[toolchain]\nc-standard = 14\n", false),
    (
        "[build]\ncflags = [\"-Wall\"]\nlinks = [\"pthread\"]\n[profile.release]\ncflags = [\"-O2\"]\n",
        true,
    ),
    (
        "[dependencies]\nz = { system = \"zlib\", version = \">=1.2\", public = true }\n",
        true,
    ),
    ("[dependencies]\nu = { path = \"../u\", public = true }\n", true),
    (
        "[[bin]]\nname = \"x\"\nmain = \"m.c\"\ndefines = [\"X\"]\ncflags = [\"-w\"]\nuses = [\"core\"]\n",
        true,
    ),
    ("[cache]\nsubstituter = [\"file:///c\"]\n", false),
];

#[test]
fn schema_and_serde_agree() {
    let v = schema("manifest.schema.json");
    for (text, ok) in CASES {
        let serde_ok = toml::from_str::<Manifest>(text).is_ok();
        let schema_ok = v.is_valid(&toml_to_json(text));
        assert_eq!(serde_ok, *ok, "serde on {text:?}");
        assert_eq!(schema_ok, *ok, "schema on {text:?}");
    }
}

#[test]
fn schema_rejects_mixed_dependency_sources() {
    // serde accepts these shapes (the evaluator rejects them with a pointed error); the
    // schema states the rule directly.
    let v = schema("manifest.schema.json");
    for bad in [
        "[dependencies]\nu = { path = \"../u\", git = \"file:///r\" }\n",
        "[dependencies]\nu = { path = \"../u\", tag = \"v1\" }\n",
        "[dependencies]\nu = { git = \"file:///r\", tag = \"v1\", rev = \"abc\" }\n",
        "[dependencies]\nu = { tag = \"v1\" }\n",
        // Refused with the line by `manifest_cache_section` (a manifest is shared).
        "[cache]\nrequire-sigs = false\n",
        "[dependencies]\nu = { path = \"../u\", workspace = true }\n",
        "[dependencies]\nu = { git = \"file:///r\", workspace = true }\n",
        "[dependencies]\nz = { system = \"zlib\", path = \"../z\" }\n",
        "[dependencies]\nz = { system = \"zlib\", tag = \"v1\" }\n",
        // serde reads every target table with one type; the evaluator points at a missing
        // `main` (or a library's `main`) with its line.
        "[[bin]]\nname = \"x\"\n",
        "[[test]]\nname = \"t\"\n",
        "[lib]\nmain = \"m.cpp\"\n",
        "[[bin]]\nname = \"x\"\nmain = \"m.cpp\"\npublic-defines = [\"X\"]\n",
    ] {
        assert!(!v.is_valid(&toml_to_json(bad)), "{bad}");
    }
}

fn sample_derivation() -> Value {
    json!({
        "version": 2,
        "name": "hello-0.1.0-hello.pcm",
        "kind": "bmi",
        "toolchain": "blake3:0zz0gjzw4d47cdxrm0hn6valk4h0v40p0dl584zb9l37whpc74dm",
        "tool": "c++",
        "args": ["@modules.rsp", "--precompile", "src/hello/hello.cppm", "-o", "out/hello.pcm"],
        "env": {},
        "inputs": [
            {"at": "bmi/dep.pcm", "role": "bmi",
             "from": {"drv": "jgqbjrb75zxsn2v8gvwr0qjz4zg75anr-dep-0.1.0-dep.pcm.drv", "output": "bmi"}},
            {"at": "src/hello/hello.cppm", "role": "source",
             "from": {"path": "m8707v8dpq06mp8bf6n2hvadj9vp4ifi-hello.cppm"}}
        ],
        "outputs": {"bmi": {"at": "out/hello.pcm", "module": "hello", "name": "hello-0.1.0-hello.pcm"}}
    })
}

#[test]
fn derivation_schema_matches_the_type() {
    let v = schema("derivation.schema.json");
    let good = sample_derivation();
    let d: cmod_schema::Derivation = serde_json::from_value(good.clone()).unwrap();
    d.validate().unwrap();
    assert!(v.is_valid(&good));
    assert!(v.is_valid(&serde_json::to_value(&d).unwrap()));

    let mut with_host = good.clone();
    with_host["kind"] = json!("pch");
    with_host["host"] = json!({"/usr/include/zlib.h": "blake3:0zz0gjzw4d47cdxrm0hn6valk4h0v40p0dl584zb9l37whpc74dm"});
    let h: cmod_schema::Derivation = serde_json::from_value(with_host.clone()).unwrap();
    h.validate().unwrap();
    assert!(v.is_valid(&with_host));
    for bad_path in ["usr/include/zlib.h", "/usr/../etc/passwd", "/usr/include/"] {
        let mut bad = with_host.clone();
        bad["host"] =
            json!({ bad_path: "blake3:0zz0gjzw4d47cdxrm0hn6valk4h0v40p0dl584zb9l37whpc74dm" });
        assert!(!v.is_valid(&bad), "{bad_path}");
        let d: cmod_schema::Derivation = serde_json::from_value(bad).unwrap();
        assert!(d.validate().is_err(), "{bad_path}");
    }

    let mut extra = good.clone();
    extra["surprise"] = json!(1);
    assert!(!v.is_valid(&extra));
    let mut escaping = good.clone();
    escaping["inputs"][0]["at"] = json!("../x");
    assert!(!v.is_valid(&escaping));
    let mut absolute = good.clone();
    absolute["outputs"]["bmi"]["at"] = json!("/tmp/x");
    assert!(!v.is_valid(&absolute));
    let mut empty_module = good.clone();
    empty_module["outputs"]["bmi"]["module"] = json!("");
    assert!(!v.is_valid(&empty_module));
    let mut version = good;
    version["version"] = json!(1);
    assert!(!v.is_valid(&version));
}

#[test]
fn path_info_schema_matches_the_type() {
    let v = schema("path-info.schema.json");
    let good = json!({
        "version": 1,
        "path": "1f91dpxvahvcpp61w11cagmc3pgmaynw-hello-0.1.0-main.o",
        "kind": "output",
        "content_hash": "blake3:0yjb5l6px9g3994lzgq9mncq00p9v70piw0fng2dq6k5hywcgrc6",
        "size": 6,
        "references": [],
        "deriver": "jgqbjrb75zxsn2v8gvwr0qjz4zg75anr-hello-0.1.0-hello.pcm.drv",
        "registered": 1700000000,
        "sandbox": "full"
    });
    let info: cmod_schema::PathInfo = serde_json::from_value(good.clone()).unwrap();
    assert!(v.is_valid(&good));
    assert!(v.is_valid(&serde_json::to_value(&info).unwrap()));
    let mut bad = good;
    bad["sandbox"] = json!("partial");
    assert!(!v.is_valid(&bad));
}

#[test]
fn lock_schema_matches_the_type() {
    use cmod_schema::lock::*;
    let v = schema("lock.schema.json");
    let h = cmod_schema::ContentHash::of_file(false, b"x");
    let lock = Lockfile {
        version: LOCK_VERSION,
        toolchain: LockedToolchain {
            identity: h,
            compiler: "clang++-19".into(),
            version: "19.1.7".into(),
            stdlib: "libc++".into(),
        },
        packages: vec![LockedPackage {
            name: "units".into(),
            version: "0.3.1".into(),
            source: "path+../units".into(),
            tree: h,
            dependencies: vec!["x".into()],
        }],
        system: vec![LockedSystem {
            name: "zlib".into(),
            pkg_config: Some("zlib".into()),
            version: Some("1.2.13".into()),
            files: std::collections::BTreeMap::from([(
                "/usr/lib/x86_64-linux-gnu/libz.so".to_string(),
                h,
            )]),
        }],
        outputs: std::collections::BTreeMap::from([(
            "release".to_string(),
            std::collections::BTreeMap::from([(
                "app".to_string(),
                LockedOutput {
                    path: cmod_schema::StorePath::compute(
                        cmod_schema::PathKind::Output,
                        &h,
                        "app",
                        [],
                    )
                    .unwrap(),
                    content_hash: h,
                },
            )]),
        )]),
    };
    let as_json = toml_to_json(&lock.render());
    let errors: Vec<String> = v.iter_errors(&as_json).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let mut bad = as_json.clone();
    bad["toolchain"]["stdlib"] = json!("msvc");
    assert!(!v.is_valid(&bad));
    let mut bad = as_json.clone();
    bad["package"][0]["source"] = json!("ftp://x");
    assert!(!v.is_valid(&bad));
    let mut bad = as_json;
    bad["system"][0]["files"]["usr/lib/relative.so"] = json!(h.to_text());
    assert!(!v.is_valid(&bad), "system library files are absolute paths");
}

/// Every key of a manifest has hover text in editors: each property and definition of the
/// manifest schema (through `oneOf` branches, array items and `$defs`) has a description.
#[test]
fn every_manifest_key_is_described() {
    fn walk(node: &Value, at: &str, missing: &mut Vec<String>) {
        let Some(obj) = node.as_object() else {
            return;
        };
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (key, prop) in props {
                let described = prop
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| d.len() >= 10);
                if !described {
                    missing.push(format!("{at}.{key}"));
                }
                walk(prop, &format!("{at}.{key}"), missing);
            }
        }
        for key in ["$defs"] {
            if let Some(defs) = obj.get(key).and_then(Value::as_object) {
                for (name, def) in defs {
                    if def.get("description").is_none() {
                        missing.push(format!("#{name}"));
                    }
                    walk(def, &format!("#{name}"), missing);
                }
            }
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            for branch in obj.get(key).and_then(Value::as_array).into_iter().flatten() {
                walk(branch, at, missing);
            }
        }
        if let Some(items) = obj.get("items") {
            walk(items, &format!("{at}[]"), missing);
        }
    }
    let text = cmod_schema::MANIFEST_SCHEMA;
    let value: Value = serde_json::from_str(text).unwrap();
    let mut missing = Vec::new();
    walk(&value, "", &mut missing);
    assert!(
        missing.is_empty(),
        "keys without a description: {missing:?}"
    );
    // The embedded copy is the file in schemas/ (what `cmod new` installs for editors).
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/manifest.schema.json");
    assert_eq!(std::fs::read_to_string(path).unwrap(), text);
}
