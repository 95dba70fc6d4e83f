//! Module closures (derivation version 2): a compile lists only the BMIs it imports
//! directly, the realiser lays out the rest, and a BMI's store path pins its closure
//! through its references. Real clang-19 in the full sandbox.

mod common;

use common::{derivation, drv_args, run, Sandbox};
use serde_json::Value;

/// `a` ← `b` ← `c` ← `main`: each module imports only its predecessor, and `c`'s
/// exported inline function calls into `a` through `b`'s re-export-free interface.
const CHAIN: &[(&str, &str)] = &[
    (
        "cmod.toml",
        "[package]\nname = \"chain\"\nversion = \"0.1.0\"\n\n[lib]\nsources = [\"src/*.cppm\"]\n\n[[bin]]\nname = \"chain\"\nmain = \"main.cpp\"\n",
    ),
    (
        "src/a.cppm",
        "export module a;\nexport inline int base() { return 40; }\n",
    ),
    (
        "src/b.cppm",
        "export module b;\nimport a;\nexport inline int twice() { return base() + base(); }\n",
    ),
    (
        "src/c.cppm",
        "export module c;\nimport b;\nexport inline int answer() { return twice() / 2 + 2; }\n",
    ),
    (
        "main.cpp",
        "import c;\n#include <cstdio>\nint main() { std::printf(\"%d\\n\", answer()); }\n",
    ),
];

/// The `at` of every BMI input of a derivation.
fn bmi_inputs(drv: &Value) -> Vec<String> {
    drv["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .filter(|i| i["role"] == "bmi")
        .map(|i| i["at"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The references `cmod path-info --json` lists for a store path.
fn references(s: &Sandbox, dir: &std::path::Path, path: &str) -> Vec<String> {
    let out = s.cmod(dir, &["path-info", "--json", path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: Value = serde_json::from_slice(&out.stdout).expect("path-info --json");
    let entry = info
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or(info);
    entry["references"]
        .as_array()
        .unwrap_or_else(|| panic!("no references in {entry}"))
        .iter()
        .map(|r| r.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn compiles_list_direct_bmis_and_see_the_whole_closure() {
    let s = Sandbox::new();
    let dir = s.project("chain", CHAIN);
    let drvs = s.derivations(&dir, &[]);
    let c_bmi = derivation(&drvs, "chain-0.1.0-c.pcm");
    assert_eq!(bmi_inputs(c_bmi), ["bmi/b.pcm"]);
    assert!(drv_args(c_bmi).contains(&"@modules.rsp"));
    assert!(!drv_args(c_bmi)
        .iter()
        .any(|a| a.starts_with("-fmodule-file")));
    assert_eq!(c_bmi["outputs"]["bmi"]["module"], "c");
    let main_obj = derivation(&drvs, "chain-0.1.0-main.cpp.o");
    assert_eq!(bmi_inputs(main_obj), ["bmi/c.pcm"]);
    // The object of an importable unit reads its own BMI only.
    assert_eq!(
        bmi_inputs(derivation(&drvs, "chain-0.1.0-src-c.cppm.o")),
        ["bmi/c.pcm"]
    );

    // main sees a and b through c (clang needs all three): the build works.
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(run(&r.target("chain"), &[]).trim(), "42");

    // Each BMI references the BMIs it was built against, so its store path pins them.
    let built: Vec<&Value> = r
        .messages
        .iter()
        .filter(|m| m["reason"] == "built")
        .collect();
    let bmi_path = |module: &str| -> String {
        let name = format!("chain-0.1.0-{module}.pcm");
        let m = built
            .iter()
            .find(|m| m["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} was not built"));
        m["outputs"]["bmi"]
            .as_str()
            .expect("bmi output")
            .to_string()
    };
    let (a, b, c) = (bmi_path("a"), bmi_path("b"), bmi_path("c"));
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    assert!(references(&s, &dir, &a).is_empty());
    assert_eq!(references(&s, &dir, &b), [base(&a)]);
    assert_eq!(references(&s, &dir, &c), [base(&b)]);
    s.assert_store_verifies(&dir);
}

#[test]
fn an_edit_two_imports_away_reaches_every_consumer() {
    let s = Sandbox::new();
    let dir = s.project("chain", CHAIN);
    s.realise(&dir, &[]).ok();
    // Only `a` changes; `main` imports `c`, which does not import `a` directly.
    let a = dir.join("src/a.cppm");
    let text = std::fs::read_to_string(&a).unwrap().replace("40", "20");
    std::fs::write(&a, text).unwrap();
    let r = s.realise(&dir, &[]).ok();
    let built = r.built();
    for step in [
        "chain-0.1.0-a.pcm",
        "chain-0.1.0-b.pcm",
        "chain-0.1.0-c.pcm",
        "chain-0.1.0-main.cpp.o",
        "chain-0.1.0-chain",
    ] {
        assert!(
            built.contains(&step.to_string()),
            "{step} not rebuilt: {built:?}"
        );
    }
    assert_eq!(run(&r.target("chain"), &[]).trim(), "22");
}
