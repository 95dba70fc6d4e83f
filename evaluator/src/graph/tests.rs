//! Module-graph checks on hand-made scan results.

use super::*;
use crate::error::ErrorKind;
use crate::flags::UnitFlags;
use crate::lexer::scan_declarations;
use crate::package::PackageGraph;
use crate::scan::Scanned;
use crate::sources::Lang;
use crate::targets::{TargetInfo, TargetKind};

struct Fixture {
    _dir: tempfile::TempDir,
    packages: PackageGraph,
    targets: Vec<PackageTargets>,
}

fn flags() -> Arc<UnitFlags> {
    Arc::new(UnitFlags {
        lang: Lang::Cxx,
        dialect: vec!["-std=c++20".into()],
        codegen: vec![],
        defines: vec![],
        paths: vec![],
        pch: None,
    })
}

/// One library per package and one test, as a manifest with `[lib]` and a `[[test]]`
/// would have them.
fn one_lib_each(packages: &PackageGraph) -> Vec<PackageTargets> {
    packages
        .packages
        .iter()
        .map(|p| {
            let lib = TargetInfo {
                kind: TargetKind::Lib,
                name: p.name.clone(),
                visible_libs: vec![0],
                linked_libs: vec![0],
                public_libs: vec![],
                public_modules: None,
            };
            let test = TargetInfo {
                kind: TargetKind::Test,
                name: "t".into(),
                visible_libs: vec![0],
                linked_libs: vec![0],
                public_libs: vec![],
                public_modules: None,
            };
            PackageTargets {
                libs: vec![lib],
                bins: vec![],
                tests: vec![test],
            }
        })
        .collect()
}

/// Packages `a` (root) → `b` → `c`: `a` may reach `c` only through `b`. `d` is a
/// dev-dependency of `a`, for `a`'s tests only.
fn fixture() -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = t.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "a/cmod.toml",
        "[package]\nname = \"a\"\nversion = \"1.0.0\"\n[dependencies]\nb = { path = \"../b\" }\n[dev-dependencies]\nd = { path = \"../d\" }\n",
    );
    write(
        "d/cmod.toml",
        "[package]\nname = \"d\"\nversion = \"1.0.0\"\n",
    );
    write(
        "b/cmod.toml",
        "[package]\nname = \"b\"\nversion = \"1.0.0\"\n[dependencies]\nc = { path = \"../c\" }\n",
    );
    write(
        "c/cmod.toml",
        "[package]\nname = \"c\"\nversion = \"1.0.0\"\n",
    );
    let packages =
        PackageGraph::load(&t.path().join("a"), &crate::package::LoadOptions::default()).unwrap();
    let targets = one_lib_each(&packages);
    Fixture {
        _dir: t,
        packages,
        targets,
    }
}

fn pkg(f: &Fixture, name: &str) -> PackageId {
    f.packages
        .packages
        .iter()
        .position(|p| p.name == name)
        .unwrap()
}

/// A unit whose scan result is derived from its text the way clang-scan-deps would.
fn unit(f: &Fixture, package: &str, rel: &str, text: &str) -> RawUnit {
    let decls = scan_declarations(text.as_bytes());
    let provides = decls.module.as_ref().and_then(|m| {
        let is_partition = m.name.contains(':');
        (m.exported || is_partition).then(|| (m.name.clone(), m.exported))
    });
    let mut requires: Vec<String> = decls
        .imports
        .iter()
        .filter_map(|i| decls.qualified(&i.target))
        .collect();
    if let Some(m) = &decls.module {
        if !m.exported && !m.name.contains(':') {
            requires.insert(0, m.name.clone());
        }
    }
    let p = pkg(f, package);
    RawUnit {
        origin: Origin::Package(p, Owner::Lib(0)),
        rel: rel.into(),
        abs: f.packages.packages[p].root.join(rel),
        hash: ContentHash::of_file(false, text.as_bytes()),
        scanned: Scanned {
            provides,
            requires,
            headers: vec![],
            system: vec![],
            decls,
        },
        flags: flags(),
    }
}

/// A unit of the first `[[test]]` of `package`.
fn test_unit(f: &Fixture, package: &str, rel: &str, text: &str) -> RawUnit {
    let mut u = unit(f, package, rel, text);
    u.origin = Origin::Package(pkg(f, package), Owner::Test(0));
    u
}

fn build(f: &Fixture, units: Vec<RawUnit>) -> Result<ModuleGraph, EvalError> {
    ModuleGraph::build(
        &GraphInput {
            packages: &f.packages,
            targets: &f.targets,
        },
        units,
    )
}

#[test]
fn every_kind_and_many_units_per_module() {
    let f = fixture();
    let g = build(
        &f,
        vec![
            unit(
                &f,
                "a",
                "m.cppm",
                "export module m;\nexport import :p;\nimport :q;\n",
            ),
            unit(&f, "a", "p.cppm", "export module m:p;\n"),
            unit(&f, "a", "q.cppm", "module m:q;\n"),
            unit(&f, "a", "i1.cpp", "module m;\n"),
            unit(&f, "a", "i2.cpp", "module m;\nimport :q;\n"),
            unit(&f, "a", "main.cpp", "import m;\n"),
        ],
    )
    .unwrap();
    let kinds: Vec<UnitKind> = g.units.iter().map(|u| u.kind).collect();
    assert_eq!(
        kinds,
        [
            UnitKind::PrimaryInterface,
            UnitKind::ExportedPartition,
            UnitKind::InternalPartition,
            UnitKind::Implementation,
            UnitKind::Implementation,
            UnitKind::Plain
        ]
    );
    assert!(g.warnings.is_empty(), "{:?}", g.warnings);
    // Both implementation units and main need m and its partitions, sorted by name.
    let names = |u: UnitId| -> Vec<String> {
        g.closure(u)
            .iter()
            .map(|&v| g.units[v].module.clone().unwrap())
            .collect()
    };
    assert_eq!(names(3), ["m", "m:p", "m:q"]);
    assert_eq!(names(4), ["m", "m:p", "m:q"]);
    assert_eq!(names(5), ["m", "m:p", "m:q"]);
    assert_eq!(names(0), ["m:p", "m:q"]);
}

#[test]
fn duplicate_module_names_both_files() {
    let f = fixture();
    let e = build(
        &f,
        vec![
            unit(&f, "a", "one.cppm", "export module m;\n"),
            unit(&f, "a", "two.cppm", "// a comment\nexport module m;\n"),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::DuplicateModule);
    assert_eq!(
        e.message,
        "module `m` is declared twice in library `a` of package `a`"
    );
    let loc = e.location.clone().unwrap();
    assert!(loc.file.ends_with("two.cppm") && loc.line == 2, "{e}");
    assert!(e.notes[0]
        .location
        .as_ref()
        .unwrap()
        .file
        .ends_with("one.cppm"));

    let e = build(
        &f,
        vec![
            unit(&f, "a", "m.cppm", "export module m;\nimport :p;\n"),
            unit(&f, "a", "p1.cppm", "module m:p;\n"),
            unit(&f, "a", "p2.cppm", "module m:p;\n"),
        ],
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "partition `m:p` is declared twice in library `a` of package `a`"
    );
}

#[test]
fn unknown_import_names_file_line_and_suggests() {
    let f = fixture();
    let e = build(
        &f,
        vec![
            unit(&f, "a", "geo.cppm", "export module geometry;\n"),
            unit(
                &f,
                "a",
                "main.cpp",
                "#include <cstdio>\n\nimport geometri;\n",
            ),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnknownImport);
    assert_eq!(
        e.message,
        "`main.cpp` imports module `geometri`, which no unit provides"
    );
    let loc = e.location.clone().unwrap();
    assert!(loc.file.ends_with("a/main.cpp") && loc.line == 3, "{e}");
    assert_eq!(e.help.as_deref(), Some("did you mean `geometry`?"));
}

#[test]
fn import_std_without_libcxx() {
    let f = fixture();
    let e = build(&f, vec![unit(&f, "a", "main.cpp", "import std;\n")]).unwrap_err();
    assert!(e.help.unwrap().contains("stdlib = \"libc++\""));
}

#[test]
fn transitive_package_is_not_importable() {
    let f = fixture();
    let e = build(
        &f,
        vec![
            unit(&f, "c", "c.cppm", "export module cmod_c;\n"),
            unit(&f, "b", "b.cppm", "export module cmod_b;\nimport cmod_c;\n"),
            unit(&f, "a", "main.cpp", "import cmod_b;\nimport cmod_c;\n"),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::UndeclaredDependency);
    assert_eq!(
        e.message,
        "module `cmod_c` is provided by package `c`, which `a` does not depend on"
    );
    assert_eq!(e.location.clone().unwrap().line, 2);
    assert!(e.help.unwrap().contains("c = { path = \"../c\" }"));
}

#[test]
fn dev_dependencies_are_importable_by_tests_only() {
    let f = fixture();
    let lib_d = || unit(&f, "d", "d.cppm", "export module check_d;\n");
    let lib_a = || unit(&f, "a", "a.cppm", "export module ma;\n");
    let g = build(
        &f,
        vec![
            lib_d(),
            lib_a(),
            test_unit(&f, "a", "tests/t.cpp", "import ma;\nimport check_d;\n"),
        ],
    )
    .unwrap();
    let names: Vec<&str> = g.edges[2]
        .iter()
        .map(|&p| g.units[p].module.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["ma", "check_d"]);

    // The library (or a binary) importing the dev-dependency is the usual undeclared
    // package error, naming the package and saying why.
    for owner in [Owner::Lib(0), Owner::Bin(0)] {
        let mut importer = unit(
            &f,
            "a",
            "src/uses.cpp",
            "module;\nexport module mu;\nimport check_d;\n",
        );
        importer.origin = Origin::Package(pkg(&f, "a"), owner);
        let e = build(&f, vec![lib_d(), importer]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UndeclaredDependency);
        assert_eq!(
            e.message,
            "module `check_d` is provided by package `d`, which is only a dev-dependency of `a`: only its [[test]] targets may import it"
        );
        let at = e.location.clone().unwrap();
        assert!(at.file.ends_with("a/src/uses.cpp"), "{}", at.file.display());
        assert_eq!(at.line, 3);
        assert!(
            e.help
                .as_deref()
                .unwrap()
                .contains("move `d` from [dev-dependencies] to [dependencies]"),
            "{e:?}"
        );
    }

    // A test importing a package nobody declared is told to add it to [dev-dependencies].
    let e = build(
        &f,
        vec![
            unit(&f, "c", "c.cppm", "export module cmod_c;\n"),
            test_unit(&f, "a", "tests/t.cpp", "import cmod_c;\n"),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::UndeclaredDependency);
    let help = e.help.unwrap();
    assert!(
        help.contains("add `c = { path = \"../c\" }` to [dev-dependencies]")
            && help.contains("cmod add c --dev --path ../c"),
        "{help}"
    );
}

#[test]
fn partitions_of_other_packages_are_not_importable() {
    let f = fixture();
    let e = build(
        &f,
        vec![
            unit(&f, "b", "b.cppm", "export module mb;\nexport import :x;\n"),
            unit(&f, "b", "x.cppm", "export module mb:x;\n"),
            unit(&f, "a", "main.cpp", "import mb:x;\n"),
        ],
    );
    // `import mb:x;` is not valid syntax outside module mb; the scanner would report the
    // name, and cmod must still refuse it.
    let e = e.unwrap_err();
    assert!(
        e.message
            .contains("can only be imported by units of module `mb`"),
        "{e}"
    );
}

#[test]
fn cycle_lists_every_member_with_lines() {
    let f = fixture();
    let e = build(
        &f,
        vec![
            unit(&f, "a", "x.cppm", "export module x;\nimport y;\n"),
            unit(&f, "a", "y.cppm", "export module y;\n\nimport z;\n"),
            unit(&f, "a", "z.cppm", "export module z;\nimport x;\n"),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ImportCycle);
    assert_eq!(
        e.message,
        "modules import each other in a cycle: x → y → z → x"
    );
    assert_eq!(e.notes.len(), 3);
    assert_eq!(e.notes[1].location.as_ref().unwrap().line, 3);
    assert!(e.notes[1].message.contains("`y` imports `z`"));
}

#[test]
fn partition_without_primary_interface() {
    let f = fixture();
    let e = build(
        &f,
        vec![unit(&f, "a", "p.cppm", "export module lonely:p;\n")],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PartitionWithoutPrimary);
    assert!(
        e.message.contains("`lonely:p` belongs to module `lonely`"),
        "{e}"
    );
    assert!(e.location.unwrap().file.ends_with("p.cppm"));
}

#[test]
fn implementation_without_interface() {
    let f = fixture();
    let e = build(
        &f,
        vec![unit(&f, "a", "impl.cpp", "// impl\nmodule ghost;\n")],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ImplementationWithoutInterface);
    assert_eq!(
        e.message,
        "implementation unit of module `ghost` has no interface `export module ghost;` in this package"
    );
    assert_eq!(e.location.unwrap().line, 2);
}

#[test]
fn implementation_of_another_packages_module_is_rejected() {
    let f = fixture();
    let e = build(
        &f,
        vec![
            unit(&f, "b", "b.cppm", "export module mb;\n"),
            unit(&f, "a", "impl.cpp", "module mb;\n"),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ImplementationWithoutInterface);
}

#[test]
fn unexported_partition_warns() {
    let f = fixture();
    let g = build(
        &f,
        vec![
            unit(&f, "a", "m.cppm", "export module m;\nimport :p;\n"),
            unit(&f, "a", "p.cppm", "export module m:p;\n"),
            unit(&f, "a", "q.cppm", "export module m:q;\nexport import :r;\n"),
            unit(&f, "a", "r.cppm", "export module m:r;\n"),
        ],
    )
    .unwrap();
    let msgs: Vec<&str> = g.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "exported partition `m:p` is not re-exported by the primary interface of `m`",
            "exported partition `m:q` is not re-exported by the primary interface of `m`",
            "exported partition `m:r` is not re-exported by the primary interface of `m`",
        ]
    );
    assert!(g.warnings[0]
        .help
        .as_deref()
        .unwrap()
        .contains("export import :p;"));
}
