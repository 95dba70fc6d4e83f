//! Evaluating the shipped examples with the real clang-19 and clang-scan-deps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cmod_evaluator::graph::UnitKind;
use cmod_evaluator::{evaluate, EvalOptions};
use cmod_schema::derivation::StepKind;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn kinds(e: &cmod_evaluator::Evaluation) -> BTreeMap<StepKind, usize> {
    let mut m = BTreeMap::new();
    for d in e.derived().unwrap().derivations.values() {
        *m.entry(d.kind).or_default() += 1;
    }
    m
}

#[test]
fn library_example_has_every_unit_kind_and_two_phase_steps() {
    let cache = tempfile::tempdir().unwrap();
    let opts = EvalOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    let e = evaluate(&example("library"), &opts, None).unwrap();
    let mut unit_kinds: Vec<(String, UnitKind)> = e
        .graph
        .units
        .iter()
        .map(|u| (u.rel.clone(), u.kind))
        .collect();
    unit_kinds.sort();
    assert_eq!(
        unit_kinds,
        [
            ("app/main.cpp".to_string(), UnitKind::Plain),
            ("app/table.cpp".into(), UnitKind::Plain),
            ("src/area.cpp".into(), UnitKind::Implementation),
            ("src/describe.cpp".into(), UnitKind::Implementation),
            ("src/detail.cppm".into(), UnitKind::InternalPartition),
            ("src/format.cppm".into(), UnitKind::ExportedPartition),
            ("src/geometry.cppm".into(), UnitKind::PrimaryInterface),
            ("src/shapes.cppm".into(), UnitKind::ExportedPartition),
        ]
    );
    let k = kinds(&e);
    assert_eq!(k[&StepKind::Bmi], 4);
    assert_eq!(k[&StepKind::Object], 8);
    assert_eq!(k[&StepKind::Archive], 1);
    assert_eq!(k[&StepKind::Link], 1);
    assert!(e.warnings.is_empty());

    // The object of main.cpp reads the BMI of `geometry` only, through the module map;
    // the BMI of `geometry` reads its partitions (the realiser lays out the closure).
    let derived = e.derived().unwrap();
    let bmis_of = |name: &str| -> Vec<String> {
        let d = derived
            .derivations
            .values()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("no derivation {name}"));
        assert!(d.args.iter().any(|a| a == "@modules.rsp"), "{name}");
        assert!(!d.args.iter().any(|a| a.starts_with("-fmodule-file=")));
        d.bmi_inputs().map(|i| i.at.clone()).collect()
    };
    assert_eq!(
        bmis_of("geometry-1.2.0-app-main.cpp.o"),
        ["bmi/geometry.pcm"]
    );
    assert_eq!(
        bmis_of("geometry-1.2.0-geometry.pcm"),
        [
            "bmi/geometry-detail.pcm",
            "bmi/geometry-format.pcm",
            "bmi/geometry-shapes.pcm",
        ]
    );
    // The cold evaluation scanned every unit; a second one (warm caches) scans none and
    // gives the same derivations as the cold one and as one without any cache.
    assert_eq!(e.stats.scanned.len(), 8, "{:?}", e.stats.scanned);
    let again = evaluate(&example("library"), &opts, None).unwrap();
    assert!(again.stats.scanned.is_empty(), "{:?}", again.stats.scanned);
    assert_eq!(
        again.derived().unwrap().derivations,
        e.derived().unwrap().derivations
    );
    let uncached = evaluate(&example("library"), &EvalOptions::default(), None).unwrap();
    assert_eq!(uncached.stats.scanned.len(), 8);
    assert_eq!(
        uncached.derived().unwrap().derivations,
        e.derived().unwrap().derivations
    );
}

#[test]
fn path_deps_link_both_archives_in_dependency_order() {
    let e = evaluate(&example("path-deps/app"), &EvalOptions::default(), None).unwrap();
    let names: Vec<&str> = e
        .packages
        .packages
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["units", "report", "app"]);
    let link = e
        .derived()
        .unwrap()
        .derivations
        .values()
        .find(|d| d.kind == StepKind::Link)
        .unwrap();
    let libs: Vec<&String> = link.args.iter().filter(|a| a.starts_with("lib/")).collect();
    assert_eq!(libs, ["lib/report/libreport.a", "lib/units/libunits.a"]);
    assert_eq!(
        e.derived()
            .unwrap()
            .targets
            .iter()
            .filter(|t| t.package == "app")
            .count(),
        1
    );
}
