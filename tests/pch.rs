//! Precompiled headers, force-included headers and response files: each a tracked input.

mod common;

use common::{drv_args, failure, run, Sandbox};

const OUTPUT: &str = "27 words, 3 sentences, mean length 4.52, longest \"precompiled\", 19 letters\n     the 7\n  header 2\n   units 2\n";

#[test]
fn one_pch_is_built_once_used_by_every_unit_and_rebuilt_only_when_it_changes() {
    let s = Sandbox::new();
    let dir = s.copy_example("pch");
    let r = s.realise(&dir, &[]).ok();
    let pchs: Vec<String> = r
        .built()
        .into_iter()
        .filter(|b| b.ends_with(".pch"))
        .collect();
    assert_eq!(
        pchs,
        ["wordstats-0.1.0-src-pch.h-0.pch"],
        "one PCH for the library and the binary"
    );
    assert_eq!(run(&r.target("wordstats"), &[]), OUTPUT);
    // Every unit of both targets is compiled with it.
    let drvs = s.derivations(&dir, &[]);
    let objects: Vec<&serde_json::Value> = drvs.iter().filter(|d| d["kind"] == "object").collect();
    assert_eq!(objects.len(), 7);
    for o in &objects {
        assert!(drv_args(o).contains(&"-include-pch"), "{o}");
    }
    let check = s.realise(&dir, &["--check"]).ok();
    assert_eq!(check.finished()["differing"], 0, "{}", check.finished());
    assert!(s.realise(&dir, &[]).ok().built().is_empty());

    // A unit's edit reuses the PCH.
    let words = std::fs::read_to_string(dir.join("src/words.cpp")).unwrap();
    std::fs::write(
        dir.join("src/words.cpp"),
        words.replace(
            "std::vector<std::string> out;",
            "std::vector<std::string> out;\n    out.reserve(16);",
        ),
    )
    .unwrap();
    let r = s.realise(&dir, &[]).ok();
    assert!(
        !r.built().iter().any(|b| b.ends_with(".pch")),
        "{:?}",
        r.built()
    );
    assert!(
        r.built()
            .contains(&"wordstats-0.1.0-src-words.cpp.o".to_string()),
        "{:?}",
        r.built()
    );
    // The header's edit rebuilds it and every unit that uses it.
    let header = std::fs::read_to_string(dir.join("src/pch.h")).unwrap();
    std::fs::write(dir.join("src/pch.h"), format!("{header}#include <deque>\n")).unwrap();
    let r = s.realise(&dir, &[]).ok();
    let built = r.built();
    assert!(
        built.contains(&"wordstats-0.1.0-src-pch.h-0.pch".to_string()),
        "{built:?}"
    );
    assert_eq!(
        built.iter().filter(|b| b.ends_with(".cpp.o")).count(),
        7,
        "{built:?}"
    );
    assert_eq!(run(&r.target("wordstats"), &[]), OUTPUT);
}

#[test]
fn module_interfaces_are_compiled_without_the_pch() {
    let s = Sandbox::new();
    let dir = s.project(
        "p",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"p\"\nversion = \"0.1.0\"\n[lib]\npch = \"src/pch.h\"\n[[bin]]\nname = \"p\"\nmain = \"main.cpp\"\n",
            ),
            ("src/pch.h", "#pragma once\n#include <string>\n#define FROM_PCH 1\n"),
            ("src/m.cppm", "module;\n#include <string>\nexport module m;\nexport std::string hello() { return \"hi\"; }\n"),
            ("src/m.cpp", "module m;\nint uses_pch() { return FROM_PCH; }\n"),
            ("main.cpp", "#include <cstdio>\n#include <string>\nimport m;\nint main() { std::printf(\"%s\\n\", hello().c_str()); }\n"),
        ],
    );
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(run(&r.target("p"), &[]), "hi\n");
    let eval = s.cmod(&dir, &["eval", "--json"]);
    let drvs: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    for d in drvs.as_object().unwrap().values() {
        let uses = d["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "-include-pch");
        let name = d["name"].as_str().unwrap();
        match name {
            "p-0.1.0-m.pcm" | "p-0.1.0-src-m.cppm.o" => assert!(!uses, "{name}"),
            "p-0.1.0-src-m.cpp.o" => assert!(uses, "{name}"),
            _ => {}
        }
    }
}

#[test]
fn force_included_headers_and_response_files_are_tracked_inputs() {
    let s = Sandbox::new();
    let dir = s.project(
        "p",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"p\"\nversion = \"0.1.0\"\n[[bin]]\nname = \"p\"\nmain = \"main.cpp\"\ncxxflags = [\"-include\", \"config/defaults.h\", \"@flags.rsp\"]\n",
            ),
            ("config/defaults.h", "#define GREETING \"hello\"\n"),
            ("flags.rsp", "-DTIMES=2 -includeconfig/extra.h\n"),
            ("config/extra.h", "#define PUNCT \"!\"\n"),
            ("main.cpp", "#include <cstdio>\nint main() { for (int i = 0; i < TIMES; ++i) std::printf(\"%s%s\\n\", GREETING, PUNCT); }\n"),
        ],
    );
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(run(&r.target("p"), &[]), "hello!\nhello!\n");
    // Each is an input: an edit to any of them rebuilds the unit.
    for (file, text, want) in [
        (
            "config/defaults.h",
            "#define GREETING \"bye\"\n",
            "bye!\nbye!\n",
        ),
        ("config/extra.h", "#define PUNCT \"?\"\n", "bye?\nbye?\n"),
        ("flags.rsp", "-DTIMES=1 -includeconfig/extra.h\n", "bye?\n"),
    ] {
        std::fs::write(dir.join(file), text).unwrap();
        let r = s.realise(&dir, &[]).ok();
        assert!(
            r.built().contains(&"p-0.1.0-main.cpp.o".to_string()),
            "{file}: {:?}",
            r.built()
        );
        assert_eq!(run(&r.target("p"), &[]), want, "{file}");
    }
    assert!(s.realise(&dir, &[]).ok().built().is_empty());
}

#[test]
fn a_response_file_or_force_include_outside_the_package_is_an_error_at_its_line() {
    let s = Sandbox::new();
    let outside = s.project("host", &[("host.rsp", "-DHOST=1\n")]);
    for (flags, want) in [
        (
            format!("\"@{}\"", outside.join("host.rsp").display()),
            "is outside the package",
        ),
        (
            "\"@../host/host.rsp\"".to_string(),
            "is outside the package",
        ),
        (
            "\"-include\", \"/etc/hostname\"".to_string(),
            "names a file outside the package",
        ),
    ] {
        let dir = s.project(
            "p",
            &[
                (
                    "cmod.toml",
                    &format!("[package]\nname = \"p\"\nversion = \"0.1.0\"\n[[bin]]\nname = \"p\"\nmain = \"main.cpp\"\ncxxflags = [{flags}]\n"),
                ),
                ("main.cpp", "int main() {}\n"),
            ],
        );
        let (code, err) = failure(&s.cmod(&dir, &["realise"]));
        assert_eq!(code, 2, "{flags}: {err}");
        assert!(err.contains(want), "{flags}: {err}");
        assert!(err.contains("cmod.toml:7:"), "{flags}: {err}");
    }
}

#[test]
fn a_pch_that_is_not_a_header_of_the_package_is_an_error_at_its_line() {
    let s = Sandbox::new();
    let dir = s.project(
        "p",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"p\"\nversion = \"0.1.0\"\n[lib]\npch = \"src/missing.h\"\n",
            ),
            ("src/a.cpp", "int a() { return 1; }\n"),
        ],
    );
    let (code, err) = failure(&s.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("precompiled header `src/missing.h` is not a file of the package"),
        "{err}"
    );
    assert!(err.contains("cmod.toml:5:7"), "{err}");
}
