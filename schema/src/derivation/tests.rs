//! Derivation tests: encoding, validation, resolution and golden paths.

use super::*;
use crate::canonical;

fn src(text: &[u8], name: &str) -> StorePath {
    StorePath::compute(
        PathKind::Source,
        &ContentHash::of_file(false, text),
        name,
        [],
    )
    .unwrap()
}

pub(crate) fn sample() -> Derivation {
    let toolchain = ContentHash::of_file(false, b"toolchain");
    Derivation {
        version: DERIVATION_VERSION,
        name: "hello-0.1.0-hello.pcm".into(),
        kind: StepKind::Bmi,
        toolchain,
        tool: Tool::Cxx,
        args: vec![
            "-std=c++20".into(),
            "-x".into(),
            "c++-module".into(),
            "--precompile".into(),
            "src/hello/hello.cppm".into(),
            "-o".into(),
            "out/hello.pcm".into(),
        ],
        env: BTreeMap::new(),
        host: BTreeMap::new(),
        inputs: vec![Input {
            at: "src/hello/hello.cppm".into(),
            role: InputRole::Source,
            from: InputFrom::Path {
                path: src(b"export module hello;\n", "hello.cppm"),
                sub: None,
            },
        }],
        outputs: BTreeMap::from([(
            "bmi".to_string(),
            Output {
                at: "out/hello.pcm".into(),
                module: Some("hello".into()),
                name: "hello-0.1.0-hello.pcm".into(),
            },
        )]),
    }
}

fn consumer(bmi_drv: &StorePath) -> Derivation {
    let mut d = sample();
    d.name = "hello-0.1.0-main.o".into();
    d.kind = StepKind::Object;
    d.inputs.push(Input {
        at: "bmi/hello.pcm".into(),
        role: InputRole::Bmi,
        from: InputFrom::Drv {
            drv: bmi_drv.clone(),
            output: "bmi".into(),
        },
    });
    d.inputs.sort();
    d.args = vec![
        MODULE_MAP_ARG.into(),
        "-x".into(),
        "c++".into(),
        "-c".into(),
        "src/hello/hello.cppm".into(),
        "-o".into(),
        "out/main.o".into(),
    ];
    d.outputs = BTreeMap::from([(
        "obj".to_string(),
        Output {
            at: "out/main.o".into(),
            module: None,
            name: "hello-0.1.0-main.o".into(),
        },
    )]);
    d
}

include!("../../golden/golden.rs");

/// The canonical text of `d`, checked against the explicitly sorting encoder too:
/// `canonical_bytes` relies on fields being declared in alphabetical order, and the
/// vectors between them use every optional field (`host`, `module`, `sub`).
fn canonical_text(d: &Derivation) -> String {
    let text = String::from_utf8(d.canonical_bytes().unwrap()).unwrap();
    let sorted = canonical::to_string(d).unwrap();
    assert_eq!(
        text, sorted,
        "`{}`: fields out of alphabetical order",
        d.name
    );
    text
}

/// Golden vectors (`schema/golden/vectors.txt`): the canonical encoding and `.drv`
/// path of a fixed BMI derivation and of its consumer (which names the BMI by
/// derivation, unresolved), the consumer resolved, and its trace keys. Changing them
/// is a format change. `schema/golden/reference.py` re-derives them.
#[test]
fn golden_vectors() {
    let d = sample();
    d.validate().unwrap();
    let drv = d.drv_path().unwrap();
    let c = consumer(&drv);
    c.validate().unwrap();
    let out = StorePath::compute(
        PathKind::Output,
        &ContentHash::of_file(false, b"pcm"),
        "hello-0.1.0-hello.pcm",
        [],
    )
    .unwrap();
    let resolved = c.resolve(|_, _| Some(out.clone())).unwrap();
    assert!(resolved.is_resolved());
    assert_golden(&[
        ("derivation.bmi.canonical", canonical_text(&d)),
        ("derivation.bmi.drv_path", drv.to_string()),
        ("derivation.consumer.canonical", canonical_text(&c)),
        (
            "derivation.consumer.drv_path",
            c.drv_path().unwrap().to_string(),
        ),
        ("derivation.consumer.resolved", canonical_text(&resolved)),
        (
            "derivation.consumer.trace_key.full",
            resolved.trace_key("full").unwrap().to_text(),
        ),
        (
            "derivation.consumer.trace_key.off",
            resolved.trace_key("off").unwrap().to_text(),
        ),
    ]);
    // The vectors are valid derivations as read back from their text.
    for name in [
        "derivation.bmi.canonical",
        "derivation.consumer.canonical",
        "derivation.consumer.resolved",
    ] {
        let back: Derivation = serde_json::from_str(golden(name)).unwrap();
        back.validate().unwrap();
        assert_eq!(canonical_text(&back), golden(name), "{name} round-trips");
    }
}

/// The link of a program using a system library: host files are encoded as an object
/// of absolute paths to content hashes, between `env` and `inputs`.
fn with_host_files() -> Derivation {
    let mut d = sample();
    d.name = "zip-0.1.0-zip".into();
    d.kind = StepKind::Link;
    d.args = vec![
        "-fuse-ld=lld".into(),
        "-o".into(),
        "out/zip".into(),
        "-lz".into(),
    ];
    d.host = BTreeMap::from([
        (
            "/usr/include/zlib.h".to_string(),
            ContentHash::of_file(false, b"zlib.h"),
        ),
        (
            "/usr/lib/x86_64-linux-gnu/libz.so".to_string(),
            ContentHash::of_file(false, b"libz"),
        ),
    ]);
    d.outputs = BTreeMap::from([(
        "exe".to_string(),
        Output {
            at: "out/zip".into(),
            module: None,
            name: "zip-0.1.0-zip".into(),
        },
    )]);
    d
}

#[test]
fn golden_vector_with_host_files() {
    let d = with_host_files();
    d.validate().unwrap();
    assert_golden(&[
        ("derivation.host.canonical", canonical_text(&d)),
        (
            "derivation.host.drv_path",
            d.drv_path().unwrap().to_string(),
        ),
    ]);
    let mut bad = with_host_files();
    bad.host
        .insert("usr/lib/x".into(), ContentHash::of_file(false, b""));
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("not a clean absolute path"));
    let mut bad = with_host_files();
    bad.host.insert(
        "/usr/../etc/passwd".into(),
        ContentHash::of_file(false, b""),
    );
    assert!(bad.validate().is_err());
}

/// A compile whose strings need escaping, with a non-empty `env` (keys in byte order:
/// upper case, lower case, then non-ASCII) and an input that is a directory inside a
/// store path (`sub`).
fn with_escapes() -> Derivation {
    let include = ContentHash::of_dir([(
        &b"include"[..],
        ContentHash::of_dir([(&b"q.h"[..], ContentHash::of_file(false, b"#define Q 1\n"))]),
    )]);
    let tree = StorePath::compute(PathKind::Source, &include, "esc-0.1.0-src", []).unwrap();
    let mut d = sample();
    d.name = "esc-0.1.0-quote.o".into();
    d.kind = StepKind::Object;
    d.args = [
        "-DQ=\"q\"",
        "-DB=a\\b",
        "-DC=\t|\n|\r|\u{8}|\u{c}|\u{0}|\u{1}|\u{1f}|/",
        "-DU=é€😀",
        "-c",
        "src/esc/quote.cpp",
        "-o",
        "out/quote.o",
    ]
    .map(String::from)
    .to_vec();
    d.env = [
        ("a", "2"),
        ("é", "x"),
        ("Z", ""),
        ("B", "1"),
        ("LC_ALL", "C"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    d.inputs = vec![
        Input {
            at: "src/esc/include".into(),
            role: InputRole::Headers,
            from: InputFrom::Path {
                path: tree,
                sub: Some("include".into()),
            },
        },
        Input {
            at: "src/esc/quote.cpp".into(),
            role: InputRole::Source,
            from: InputFrom::Path {
                path: src(b"int q;\n", "quote.cpp"),
                sub: None,
            },
        },
    ];
    d.outputs = BTreeMap::from([(
        "obj".to_string(),
        Output {
            at: "out/quote.o".into(),
            module: None,
            name: "esc-0.1.0-quote.o".into(),
        },
    )]);
    d
}

/// String escaping and key order are part of the format: `"` and `\` escaped, the
/// short escapes `\t \n \r \b \f`, `\u00xx` (lower-case hex) for the other control
/// characters, everything else (non-ASCII included) as raw UTF-8.
#[test]
fn golden_vector_with_escapes() {
    let d = with_escapes();
    d.validate().unwrap();
    assert_golden(&[
        ("derivation.escapes.canonical", canonical_text(&d)),
        (
            "derivation.escapes.drv_path",
            d.drv_path().unwrap().to_string(),
        ),
    ]);
    let back: Derivation = serde_json::from_str(golden("derivation.escapes.canonical")).unwrap();
    assert_eq!(back, d);
}

#[test]
fn direct_encoding_is_canonical() {
    let d = sample();
    let c = consumer(&d.drv_path().unwrap());
    for drv in [&d, &c] {
        assert_eq!(
            drv.canonical_bytes().unwrap(),
            canonical::to_vec(drv).unwrap()
        );
    }
}

#[test]
fn json_round_trip() {
    let d = sample();
    let text = serde_json::to_string_pretty(&d).unwrap();
    let back: Derivation = serde_json::from_str(&text).unwrap();
    assert_eq!(back, d);
}

#[test]
fn unknown_fields_and_versions_are_rejected() {
    let mut v = serde_json::to_value(sample()).unwrap();
    v["surprise"] = serde_json::json!(1);
    assert!(serde_json::from_value::<Derivation>(v).is_err());
    // Version 1 listed whole module closures; its derivations are not read.
    for version in [1, 3] {
        let mut d = sample();
        d.version = version;
        assert!(matches!(
            d.validate(),
            Err(DerivationError::Version { found }) if found == version
        ));
    }
}

/// Version 2's module-closure rules, each broken once.
#[test]
fn module_closure_rules() {
    let bmi = sample().drv_path().unwrap();
    let c = consumer(&bmi);
    c.validate().unwrap();
    let problem = |d: &Derivation| match d.validate() {
        Err(DerivationError::Invalid { problem, .. }) => problem,
        other => panic!("expected a structural error, got {other:?}"),
    };
    let mut no_map = c.clone();
    no_map.args.retain(|a| a != MODULE_MAP_ARG);
    assert!(problem(&no_map).contains("do not read `@modules.rsp`"));
    let mut elsewhere = c.clone();
    elsewhere.inputs[0].at = "mods/hello.pcm".into();
    elsewhere.inputs.sort();
    assert!(problem(&elsewhere).contains("is not at `bmi/<file>.pcm`"));
    let mut clash = c.clone();
    clash.inputs[1].at = MODULE_MAP.into();
    clash.inputs.sort();
    assert!(problem(&clash).contains("which the realiser writes"));
    let mut misplaced = sample();
    misplaced.outputs.get_mut("bmi").unwrap().module = Some("hello:part".into());
    assert!(problem(&misplaced).contains("not `out/hello-part.pcm`"));
    assert_eq!(bmi_file("a.b:c_d"), "a.b-c_d.pcm");
}

#[test]
fn structural_errors() {
    let mut d = sample();
    d.inputs[0].at = "../escape".into();
    assert!(d
        .validate()
        .unwrap_err()
        .to_string()
        .contains("not relative"));
    let mut d = sample();
    d.outputs.clear();
    assert!(d.validate().unwrap_err().to_string().contains("no outputs"));
    let mut d = sample();
    let dup = d.inputs[0].clone();
    d.inputs.push(dup);
    assert!(d.validate().unwrap_err().to_string().contains("not sorted"));
}

#[test]
fn resolution_keys_on_output_content_not_recipe() {
    let a = sample();
    let mut b = sample();
    b.args.push("-DX".into());
    let (da, db) = (a.drv_path().unwrap(), b.drv_path().unwrap());
    assert_ne!(da, db, "different recipes are different derivations");
    let out = StorePath::compute(
        PathKind::Output,
        &ContentHash::of_file(false, b"same bytes"),
        "hello-0.1.0-hello.pcm",
        [],
    )
    .unwrap();
    let ka = consumer(&da).resolve(|_, _| Some(out.clone())).unwrap();
    let kb = consumer(&db).resolve(|_, _| Some(out.clone())).unwrap();
    assert_eq!(
        ka.trace_key("full").unwrap(),
        kb.trace_key("full").unwrap(),
        "identical input bytes must give the same key (early cutoff)"
    );
    assert_ne!(
        ka.trace_key("full").unwrap(),
        ka.trace_key("off").unwrap(),
        "sandbox modes never share keys"
    );
}

#[test]
fn unrealised_input_is_an_error() {
    let d = consumer(&sample().drv_path().unwrap());
    let err = d.resolve(|_, _| None).unwrap_err();
    assert!(matches!(err, DerivationError::Unrealised { .. }), "{err}");
}
