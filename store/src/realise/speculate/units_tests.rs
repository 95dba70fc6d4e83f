//! The module table gives the realiser's closure, and the stamp index finds the files
//! that changed.

use std::collections::BTreeMap;

use cmod_schema::derivation::Derivation;
use cmod_schema::toolchain::ToolchainInfo;
use cmod_schema::{ContentHash, PathKind, StorePath};

use super::*;
use crate::realise::module_closure;
use crate::realise::modules::tests::{bmi, out_path};
use crate::realise::tests_support::{absent_toolchain, compile_of};

type Outputs = BTreeMap<StorePath, BTreeMap<String, StorePath>>;

/// The realiser's diamond (see `modules`), every BMI realised at a path of its own:
/// the derivations, their outputs, and a consumer reading d.
fn diamond() -> (BTreeMap<StorePath, Derivation>, Outputs, Derivation) {
    let (drvs, consumer) = crate::realise::modules::tests::diamond();
    let outputs = realised(&drvs);
    (drvs, outputs, consumer)
}

fn realised(drvs: &BTreeMap<StorePath, Derivation>) -> Outputs {
    drvs.iter()
        .map(|(p, d)| {
            let module = d.outputs["bmi"].module.clone().unwrap();
            (
                p.clone(),
                BTreeMap::from([("bmi".into(), out_path(&module))]),
            )
        })
        .collect()
}

fn resolve(drv: &Derivation, outputs: &Outputs) -> Derivation {
    drv.resolve(|d, o| outputs.get(d)?.get(o).cloned()).unwrap()
}

#[test]
fn the_module_table_gives_the_closure_the_realiser_walks() {
    let t = tempfile::tempdir().unwrap();
    let (drvs, outputs, consumer) = diamond();
    write_table(t.path(), &drvs, &outputs).unwrap();
    let table = ModuleTable::load(t.path()).unwrap();
    let want = module_closure(&drvs, &consumer, |d, o| outputs.get(d)?.get(o).cloned()).unwrap();
    assert_eq!(want.len(), 5);
    assert_eq!(table.closure(&resolve(&consumer, &outputs)), Some(want));
    // A step without imports sees no BMI.
    let plain = resolve(&bmi("z", &[]), &outputs);
    assert_eq!(table.closure(&plain), Some(Vec::new()));
}

#[test]
fn a_bmi_the_table_does_not_know_gives_no_closure() {
    let t = tempfile::tempdir().unwrap();
    let (drvs, mut outputs, consumer) = diamond();
    let resolved = resolve(&consumer, &outputs);
    // The consumer's direct BMI is not in the table.
    let d = consumer.bmi_inputs().next().unwrap().from.clone();
    let cmod_schema::derivation::InputFrom::Drv { drv: d, .. } = d else {
        panic!("{d:?}")
    };
    let d_out = outputs.remove(&d).unwrap();
    write_table(t.path(), &drvs, &outputs).unwrap();
    assert_eq!(
        ModuleTable::load(t.path()).unwrap().closure(&resolved),
        None
    );
    // The consumer's direct BMI is, but not a BMI it was built against.
    outputs.insert(d, d_out);
    let a = drvs
        .iter()
        .find(|(_, v)| v.outputs["bmi"].module.as_deref() == Some("a"));
    outputs.remove(a.unwrap().0);
    write_table(t.path(), &drvs, &outputs).unwrap();
    assert_eq!(
        ModuleTable::load(t.path()).unwrap().closure(&resolved),
        None
    );
}

#[test]
fn the_module_table_is_rewritten_only_when_its_bmis_are_others() {
    let t = tempfile::tempdir().unwrap();
    let (drvs, mut outputs, consumer) = diamond();
    write_table(t.path(), &drvs, &outputs).unwrap();
    let resolved = resolve(&consumer, &outputs);
    assert!(ModuleTable::load(t.path())
        .unwrap()
        .closure(&resolved)
        .is_some());
    // The same BMIs: the table is not written again (a marker put in its place stays).
    let table = t.path().join("modules.json");
    std::fs::write(&table, br#"{"version":1,"bmis":[]}"#).unwrap();
    write_table(t.path(), &drvs, &outputs).unwrap();
    assert_eq!(
        ModuleTable::load(t.path()).unwrap().closure(&resolved),
        None
    );
    // Another BMI for `a`: written again, with it.
    let a = drvs
        .iter()
        .find(|(_, v)| v.outputs["bmi"].module.as_deref() == Some("a"));
    outputs.insert(
        a.unwrap().0.clone(),
        BTreeMap::from([("bmi".into(), out_path("a2"))]),
    );
    write_table(t.path(), &drvs, &outputs).unwrap();
    let closure = ModuleTable::load(t.path())
        .unwrap()
        .closure(&resolve(&consumer, &outputs));
    assert!(closure.unwrap().iter().any(|f| f.path == out_path("a2")));
    // A table of another version is not read.
    std::fs::write(&table, br#"{"version":0,"bmis":[]}"#).unwrap();
    assert!(ModuleTable::load(t.path()).is_none());
}

#[test]
fn two_bmis_at_one_stable_name_give_no_closure() {
    let t = tempfile::tempdir().unwrap();
    let (drvs, consumer) = crate::realise::modules::tests::clashing();
    let outputs: Outputs = drvs
        .keys()
        .map(|d| {
            let path = out_path(&d.to_string());
            (d.clone(), BTreeMap::from([("bmi".into(), path)]))
        })
        .collect();
    write_table(t.path(), &drvs, &outputs).unwrap();
    let resolved = resolve(&consumer, &outputs);
    assert_eq!(
        ModuleTable::load(t.path()).unwrap().closure(&resolved),
        None
    );
}

/// A unit recipe of the compile of `host` (holding `text`).
fn unit_recipe(host: &Path, text: &str) -> Recipe {
    std::fs::write(host, text).unwrap();
    let hash = ContentHash::of_file(false, text.as_bytes());
    let name = host.file_name().unwrap().to_str().unwrap();
    let source = StorePath::compute(PathKind::Source, &hash, name, []).unwrap();
    let mut resolved = compile_of(&source);
    resolved.name = format!("{name}.o");
    let toolchain: ToolchainInfo = absent_toolchain(resolved.toolchain);
    Recipe {
        version: RECIPE_VERSION,
        host: host.to_path_buf(),
        source_hash: hash,
        source_at: "src/a.cpp".into(),
        drv_path: resolved.drv_path().unwrap(),
        sandbox: "full".into(),
        resolved,
        modules: Vec::new(),
        toolchain,
    }
}

fn changed_hosts(dir: &Path) -> Vec<(PathBuf, ContentHash)> {
    let mut v: Vec<_> = changed(dir)
        .recipes
        .into_iter()
        .map(|(head, recipe, now)| {
            assert_eq!(std::fs::read_to_string(&head.file).unwrap(), head.text);
            (recipe.host, now)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn the_stamp_index_finds_the_files_whose_content_changed() {
    let t = tempfile::tempdir().unwrap();
    let (dir, user) = (t.path().join("recipes"), t.path().join("user"));
    std::fs::create_dir_all(&user).unwrap();
    let hosts: Vec<PathBuf> = (0..3).map(|i| user.join(format!("u{i}.cpp"))).collect();
    let mut recorded = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let id = write(&dir, &unit_recipe(host, &format!("int u{i};"))).unwrap();
        recorded.push((host.clone(), id));
    }
    index(&dir, &recorded, &[]).unwrap();
    assert_eq!(changed_hosts(&dir), vec![]);
    // u0 edited; u1 written again with the same bytes (its stamp moved, not its hash);
    // u2's recipe lost.
    std::fs::write(&hosts[0], "int u0 = 1;").unwrap();
    std::fs::remove_file(&hosts[1]).unwrap();
    std::fs::write(&hosts[1], "int u1;").unwrap();
    std::fs::write(&hosts[2], "int u2 = 2;").unwrap();
    std::fs::remove_file(dir.join("units").join(format!("{}.json", recorded[2].1))).unwrap();
    let now = ContentHash::of_file(false, b"int u0 = 1;");
    assert_eq!(changed_hosts(&dir), vec![(hosts[0].clone(), now)]);
    // Recorded again after its build: no longer changed.
    let id = write(&dir, &unit_recipe(&hosts[0], "int u0 = 1;")).unwrap();
    index(&dir, &[(hosts[0].clone(), id)], &[]).unwrap();
    assert_eq!(changed_hosts(&dir), vec![]);
    // An index of another version is not read.
    std::fs::write(&hosts[0], "int u0 = 3;").unwrap();
    let text = std::fs::read_to_string(dir.join("units.json")).unwrap();
    std::fs::write(
        dir.join("units.json"),
        text.replace("\"version\":1", "\"version\":9"),
    )
    .unwrap();
    assert_eq!(changed_hosts(&dir), vec![]);
}

/// Recorded files `u0..u<n>` in `user`, indexed in `dir`, with their recipe ids.
fn recorded_units(dir: &Path, user: &Path, n: usize) -> Vec<(PathBuf, String)> {
    std::fs::create_dir_all(user).unwrap();
    let recorded: Vec<(PathBuf, String)> = (0..n)
        .map(|i| {
            let host = user.join(format!("u{i}.cpp"));
            let id = write(dir, &unit_recipe(&host, &format!("int u{i};"))).unwrap();
            (host, id)
        })
        .collect();
    index(dir, &recorded, &[]).unwrap();
    recorded
}

/// More files changed than an edit changes (a checkout): no unit recipe is offered.
#[test]
fn many_changed_files_are_no_edit() {
    let t = tempfile::tempdir().unwrap();
    let (dir, user) = (t.path().join("recipes"), t.path().join("user"));
    let recorded = recorded_units(&dir, &user, EDITED_UP_TO + 1);
    for (i, (host, _)) in recorded.iter().enumerate().skip(1) {
        std::fs::write(host, format!("int u{i} = 1;")).unwrap();
    }
    assert_eq!(changed_hosts(&dir).len(), EDITED_UP_TO);
    std::fs::write(&recorded[0].0, "int u0 = 1;").unwrap();
    assert_eq!(changed_hosts(&dir), vec![]);
}

/// A deleted file is reported gone and dropped from the index at its next writing.
#[test]
fn a_deleted_file_leaves_the_index() {
    let t = tempfile::tempdir().unwrap();
    let (dir, user) = (t.path().join("recipes"), t.path().join("user"));
    let recorded = recorded_units(&dir, &user, 2);
    std::fs::remove_file(&recorded[0].0).unwrap();
    let gone = changed(&dir).gone;
    assert_eq!(gone, vec![recorded[0].0.clone()]);
    index(&dir, &recorded[1..], &gone).unwrap();
    let text = std::fs::read_to_string(dir.join("units.json")).unwrap();
    assert!(
        !text.contains("u0.cpp") && text.contains("u1.cpp"),
        "{text}"
    );
    assert!(changed(&dir).gone.is_empty());
}
