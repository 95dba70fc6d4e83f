//! The scan cache, observed through `Evaluation::stats`: which units went through the
//! real clang-scan-deps in each evaluation.

use std::path::{Path, PathBuf};

use cmod_evaluator::{evaluate, EvalOptions};

const MANIFEST: &str = "[package]\nname = \"p\"\nversion = \"0.1.0\"\n\n[lib]\nsources = [\"src/*.cppm\", \"src/*.cpp\"]\n\n[build]\ndefines = [\"LEVEL=1\"]\ninclude-dirs = [\"inc\"]\n";

struct Project {
    dir: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let p = Project {
            dir: tempfile::tempdir().unwrap(),
            cache: tempfile::tempdir().unwrap(),
        };
        p.write("cmod.toml", MANIFEST);
        p.write("src/m.cppm", "export module m;\nexport int f();\n");
        p.write(
            "src/a.cpp",
            "module;\n#include \"x.h\"\nmodule m;\nint f() { return X; }\n",
        );
        p.write("src/b.cpp", "import m;\nint g() { return f(); }\n");
        p.write("inc/x.h", "#define X 1\n");
        p
    }

    fn root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// The units the scanner ran on in a fresh evaluation with the shared cache.
    fn scanned(&self) -> Vec<String> {
        let opts = EvalOptions {
            cache_dir: Some(self.cache.path().to_path_buf()),
            ..Default::default()
        };
        let e = evaluate(&self.root(), &opts, None).unwrap();
        e.stats.scanned.clone()
    }
}

fn touch(path: &Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
}

#[test]
fn unchanged_units_are_not_rescanned_and_what_changes_is() {
    let p = Project::new();
    assert_eq!(p.scanned(), ["p/src/a.cpp", "p/src/b.cpp", "p/src/m.cppm"]);
    assert!(p.scanned().is_empty(), "a warm evaluation runs no scanner");

    // New metadata, same bytes: re-hashed, not re-scanned.
    touch(&p.root().join("src/a.cpp"));
    touch(&p.root().join("inc/x.h"));
    assert!(p.scanned().is_empty());

    // An edit of code alone (no directive, import or module line moves or changes)
    // keeps the unit's shape: its earlier result is reused without the scanner.
    p.write("src/b.cpp", "import m;\nint g() { return f() + 1; }\n");
    assert!(p.scanned().is_empty());
    // An edit of an import line is re-scanned, alone.
    p.write(
        "src/b.cpp",
        "import m; // imports m\nint g() { return f() + 1; }\n",
    );
    assert_eq!(p.scanned(), ["p/src/b.cpp"]);
    // So is one that moves the lines after it.
    p.write(
        "src/b.cpp",
        "import m; // imports m\n\nint g() { return f() + 1; }\n",
    );
    assert_eq!(p.scanned(), ["p/src/b.cpp"]);

    // An edited header re-scans only the unit that includes it.
    p.write("inc/x.h", "#define X 2\n");
    assert_eq!(p.scanned(), ["p/src/a.cpp"]);
    assert!(p.scanned().is_empty());

    // Changed flags re-scan every unit of the package.
    p.write("cmod.toml", &MANIFEST.replace("LEVEL=1", "LEVEL=2"));
    assert_eq!(p.scanned(), ["p/src/a.cpp", "p/src/b.cpp", "p/src/m.cppm"]);
    assert!(p.scanned().is_empty());
}

/// A unit whose code changed but not its shape keeps its scan result, yet the
/// evaluation sees its new text: its derivations change with it.
#[test]
fn a_body_edit_reuses_the_scan_but_not_the_source() {
    let p = Project::new();
    let opts = EvalOptions {
        cache_dir: Some(p.cache.path().to_path_buf()),
        ..Default::default()
    };
    let before = evaluate(&p.root(), &opts, None).unwrap();
    p.write(
        "src/a.cpp",
        "module;\n#include \"x.h\"\nmodule m;\nint f() { return X + 41; }\n",
    );
    let after = evaluate(&p.root(), &opts, None).unwrap();
    assert!(after.stats.scanned.is_empty());
    let unit = |e: &cmod_evaluator::Evaluation| {
        let u = e.graph.units.iter().find(|u| u.rel == "src/a.cpp").unwrap();
        (u.hash, u.headers.clone(), u.kind, u.module.clone())
    };
    let (old_hash, old_headers, old_kind, old_module) = unit(&before);
    let (new_hash, new_headers, new_kind, new_module) = unit(&after);
    assert_ne!(old_hash, new_hash);
    assert_eq!(
        (old_headers, old_kind, old_module),
        (new_headers, new_kind, new_module)
    );
    let obj = |e: &cmod_evaluator::Evaluation| {
        e.derived()
            .unwrap()
            .derivations
            .iter()
            .find(|(_, d)| d.name == "p-0.1.0-src-a.cpp.o")
            .map(|(path, _)| path.clone())
            .unwrap()
    };
    assert_ne!(obj(&before), obj(&after));
    // Including a header is a directive: the unit is scanned again.
    p.write(
        "src/a.cpp",
        "module;\n#include \"x.h\"\n#include \"y.h\"\nmodule m;\nint f() { return X + Y; }\n",
    );
    p.write("inc/y.h", "#define Y 2\n");
    let third = evaluate(&p.root(), &opts, None).unwrap();
    assert_eq!(third.stats.scanned, ["p/src/a.cpp"]);
    assert_eq!(unit(&third).1.len(), 2, "{:?}", unit(&third).1);
}

#[test]
fn a_header_that_starts_being_included_is_tracked() {
    let p = Project::new();
    p.scanned();
    p.write(
        "src/b.cpp",
        "module;\n#include \"x.h\"\nmodule m;\nint g() { return X; }\n",
    );
    assert_eq!(p.scanned(), ["p/src/b.cpp"]);
    // Now both units include the header: an edit to it re-scans both.
    p.write("inc/x.h", "#define X 3\n");
    assert_eq!(p.scanned(), ["p/src/a.cpp", "p/src/b.cpp"]);
}

/// On an empty toolchain cache the scanner runs while the toolchain is identified; its
/// results are exactly those of a scan run afterwards.
#[test]
fn a_scan_overlapping_toolchain_identification_gives_the_same_results() {
    let p = Project::new();
    let opts = EvalOptions {
        cache_dir: Some(p.cache.path().to_path_buf()),
        ..Default::default()
    };
    let overlapped = evaluate(&p.root(), &opts, None).unwrap();
    assert_eq!(overlapped.stats.prescanned, ["p"]);
    assert_eq!(overlapped.stats.scanned.len(), 3);
    // Forget the scan results only: the toolchain is cached, so the scanner runs after.
    for e in std::fs::read_dir(p.cache.path()).unwrap() {
        let path = e.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("scan-")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    let after = evaluate(&p.root(), &opts, None).unwrap();
    assert!(after.stats.prescanned.is_empty());
    assert_eq!(after.stats.scanned, overlapped.stats.scanned);
    let drvs = |e: &cmod_evaluator::Evaluation| {
        e.derived()
            .unwrap()
            .derivations
            .iter()
            .map(|(p, d)| (p.to_string(), serde_json::to_string(d).unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(drvs(&overlapped), drvs(&after));
    // With both caches warm nothing is scanned at all.
    let warm = evaluate(&p.root(), &opts, None).unwrap();
    assert!(warm.stats.scanned.is_empty() && warm.stats.prescanned.is_empty());
}

/// A scan source that serves fixed results (as a binary cache's scan entries would).
#[derive(Debug)]
struct Served(std::collections::BTreeMap<cmod_schema::ContentHash, serde_json::Value>);

impl cmod_evaluator::scan::ScanSource for Served {
    fn fetch(
        &self,
        keys: &[cmod_schema::ContentHash],
    ) -> Result<cmod_evaluator::scan::SubstitutedScans, cmod_evaluator::EvalError> {
        Ok(cmod_evaluator::scan::SubstitutedScans {
            found: keys
                .iter()
                .filter_map(|k| Some((*k, self.0.get(k)?.clone())))
                .collect(),
            warnings: vec!["one was not trusted".into()],
        })
    }
}

/// Results from a scan source replace the scanner, but only where every header they
/// list is the same here; the rest are scanned. The outcome equals a local scan.
#[test]
fn served_scan_results_are_used_only_where_their_headers_match() {
    let p = Project::new();
    let local = evaluate(
        &p.root(),
        &EvalOptions {
            cache_dir: Some(p.cache.path().to_path_buf()),
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let served: std::collections::BTreeMap<_, _> = local.scan_entries().into_iter().collect();
    assert_eq!(served.len(), 3);
    let with_source = |cache: &Path| {
        evaluate(
            &p.root(),
            &EvalOptions {
                cache_dir: Some(cache.to_path_buf()),
                scan_source: Some(std::sync::Arc::new(Served(served.clone()))),
                ..Default::default()
            },
            None,
        )
        .unwrap()
    };
    let drvs = |e: &cmod_evaluator::Evaluation| {
        e.derived()
            .unwrap()
            .derivations
            .keys()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
    };
    let fresh = tempfile::tempdir().unwrap();
    let e = with_source(fresh.path());
    assert_eq!(
        e.stats.scans_substituted,
        ["p/src/a.cpp", "p/src/b.cpp", "p/src/m.cppm"]
    );
    assert!(e.stats.scanned.is_empty() && e.stats.prescanned.is_empty());
    assert_eq!(drvs(&e), drvs(&local));
    assert!(e
        .warnings
        .iter()
        .any(|w| w.message == "one was not trusted"));
    // The served results were cached: the next evaluation asks for nothing.
    let again = with_source(fresh.path());
    assert!(again.stats.scans_substituted.is_empty() && again.stats.scanned.is_empty());

    // The header a.cpp includes differs here: its served result is not used.
    p.write("inc/x.h", "#define X 3\n");
    let fresh = tempfile::tempdir().unwrap();
    let e = with_source(fresh.path());
    assert_eq!(e.stats.scans_substituted, ["p/src/b.cpp", "p/src/m.cppm"]);
    assert_eq!(e.stats.scanned, ["p/src/a.cpp"]);
    let local = evaluate(&p.root(), &EvalOptions::default(), None).unwrap();
    assert_eq!(drvs(&e), drvs(&local));
}
