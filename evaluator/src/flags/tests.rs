use super::*;
use std::path::Path;

/// A package directory with `files` and a manifest of `extra`; the flag source reads
/// `[build] cxxflags`.
fn package(files: &[(&str, &str)], extra: &str) -> (tempfile::TempDir, ManifestFile) {
    let t = tempfile::tempdir().unwrap();
    for (f, text) in files {
        let p = t.path().join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let text = format!("[package]\nname = \"p\"\nversion = \"1.0.0\"\n{extra}");
    std::fs::write(t.path().join("cmod.toml"), &text).unwrap();
    let mf = ManifestFile::load(&t.path().join("cmod.toml")).unwrap();
    (t, mf)
}

fn cxxflags(mf: &ManifestFile) -> Result<Vec<Flag>, EvalError> {
    FlagSource {
        file: mf,
        package: 0,
        table: "[build]",
    }
    .flags(&mf.manifest.build.cxxflags)
}

fn pkg(rel: &str) -> PkgPath {
    PkgPath {
        package: 0,
        rel: rel.into(),
    }
}

#[test]
fn managed_and_escaping_flags_are_rejected_at_their_line() {
    let (_t, mf) = package(
        &[],
        "[build]\ncxxflags = [\n  \"-Wall\",\n  \"-std=c++17\",\n]\n",
    );
    let e = cxxflags(&mf).unwrap_err();
    assert!(
        e.message.contains("`-std=c++17` is not allowed in [build]"),
        "{e}"
    );
    assert_eq!(e.help.as_deref(), Some("remove `-std=c++17`"));
    assert_eq!(e.location.unwrap().line, 7);
    for (flag, want) in [
        ("-I/usr/local/include", "is not inside the package"),
        ("-I../shared", "is not inside the package"),
        ("-L/opt/lib", "reaches outside the package"),
        ("-include-pch", "set `pch` on the target"),
        ("-c", "cmod decides what each step produces"),
    ] {
        let (_t, mf) = package(&[], &format!("[build]\ncxxflags = [\"{flag}\"]\n"));
        let e = cxxflags(&mf).unwrap_err();
        assert!(e.message.contains(want), "{flag}: {e}");
        assert_eq!(e.location.unwrap().line, 5, "{flag}");
    }
}

#[test]
fn include_dirs_in_flags_become_package_paths() {
    let (_t, mf) = package(
        &[],
        "[build]\ncxxflags = [\"-Iinclude\", \"-isystem\", \"third_party/\", \"-Wall\"]\n",
    );
    assert_eq!(
        cxxflags(&mf).unwrap(),
        [
            Flag::Path(PathArg::Dir {
                flag: "-I",
                at: pkg("include")
            }),
            Flag::Path(PathArg::Dir {
                flag: "-isystem",
                at: pkg("third_party")
            }),
            Flag::Text("-Wall".into()),
        ]
    );
    let (_t, mf) = package(&[], "[build]\ncxxflags = [\"-iquote\"]\n");
    assert!(cxxflags(&mf)
        .unwrap_err()
        .message
        .contains("needs a directory after it"));
}

#[test]
fn force_includes_of_package_headers_are_tracked_paths_in_both_forms() {
    let files = [("include/config.h", "#define X 1\n")];
    for flags in [
        "\"-include\", \"include/config.h\"",
        "\"-includeinclude/config.h\"",
    ] {
        let (_t, mf) = package(&files, &format!("[build]\ncxxflags = [{flags}]\n"));
        assert_eq!(
            cxxflags(&mf).unwrap(),
            [Flag::Path(PathArg::File {
                flag: "-include",
                at: pkg("include/config.h")
            })],
            "{flags}"
        );
    }
    // A header found on the include path (by name) stays as written.
    let (_t, mf) = package(&[], "[build]\ncxxflags = [\"-include\", \"vector\"]\n");
    assert_eq!(
        cxxflags(&mf).unwrap(),
        [Flag::Path(PathArg::Host(vec![
            "-include".into(),
            "vector".into()
        ]))]
    );
    let (_t, mf) = package(&[], "[build]\ncxxflags = [\"-imacros\", \"/etc/host.h\"]\n");
    let e = cxxflags(&mf).unwrap_err();
    assert!(
        e.message.contains("names a file outside the package"),
        "{e}"
    );
    let (_t, mf) = package(&[], "[build]\ncxxflags = [\"-include\"]\n");
    assert!(cxxflags(&mf)
        .unwrap_err()
        .message
        .contains("needs a file after it"));
}

#[test]
fn response_files_inside_the_package_are_expanded_and_checked() {
    let files = [
        (
            "flags.rsp",
            "-DNAME=\"two words\" 'quoted arg' @more.rsp\n-Iinclude\n",
        ),
        ("more.rsp", "-Wextra\n"),
        ("bad.rsp", "-Wall\n-std=c++17\n"),
    ];
    let (_t, mf) = package(&files, "[build]\ncxxflags = [\"@flags.rsp\"]\n");
    assert_eq!(
        cxxflags(&mf).unwrap(),
        [
            Flag::Text("-DNAME=two words".into()),
            Flag::Text("quoted arg".into()),
            Flag::Text("-Wextra".into()),
            Flag::Path(PathArg::Dir {
                flag: "-I",
                at: pkg("include")
            }),
        ]
    );
    let (t, mf) = package(&files, "[build]\ncxxflags = [\"@bad.rsp\"]\n");
    let e = cxxflags(&mf).unwrap_err();
    assert!(e.message.contains("`-std=c++17` is not allowed"), "{e}");
    assert_eq!(
        e.location.unwrap().file,
        t.path().join("bad.rsp"),
        "located in the response file"
    );

    let (_t, mf) = package(&files, "[build]\ncxxflags = [\n\"@../outside.rsp\"]\n");
    let e = cxxflags(&mf).unwrap_err();
    assert!(
        e.message
            .contains("response file `@../outside.rsp` in [build] is outside the package"),
        "{e}"
    );
    assert_eq!(e.location.unwrap().line, 6);
    let (_t, mf) = package(&files, "[build]\ncxxflags = [\"@/etc/flags.rsp\"]\n");
    assert!(cxxflags(&mf)
        .unwrap_err()
        .message
        .contains("is outside the package"));
    let (_t, mf) = package(&files, "[build]\ncxxflags = [\"@missing.rsp\"]\n");
    assert!(cxxflags(&mf)
        .unwrap_err()
        .message
        .contains("cannot read response file `@missing.rsp`"));
    let (_t, mf) = package(
        &[("loop.rsp", "@loop.rsp\n")],
        "[build]\ncxxflags = [\"@loop.rsp\"]\n",
    );
    assert!(cxxflags(&mf)
        .unwrap_err()
        .message
        .contains("nests more than"));
}

#[test]
fn a_response_file_linking_outside_the_package_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("host.rsp"), "-DHOST\n").unwrap();
    let (t, mf) = package(&[], "[build]\ncxxflags = [\"@link.rsp\"]\n");
    std::os::unix::fs::symlink(outside.path().join("host.rsp"), t.path().join("link.rsp")).unwrap();
    let e = cxxflags(&mf).unwrap_err();
    assert!(e.message.contains("leads outside the package"), "{e}");
}

#[test]
fn defines_are_names_not_flags() {
    let (_t, mf) = package(&[], "[build]\ndefines = [\"A=1\", \"-DB\"]\n");
    let src = FlagSource {
        file: &mf,
        package: 0,
        table: "[build]",
    };
    let e = src.defines(&mf.manifest.build.defines).unwrap_err();
    assert!(
        e.message.contains("`-DB` in [build] is not a define"),
        "{e}"
    );
    assert!(e.help.unwrap().contains("e.g. `B`"));
    let (_t, mf) = package(&[], "[build]\ndefines = [\"A=1\", \"B\"]\n");
    let src = FlagSource {
        file: &mf,
        package: 0,
        table: "[build]",
    };
    assert_eq!(
        src.defines(&mf.manifest.build.defines).unwrap(),
        ["-DA=1", "-DB"]
    );
}

#[test]
fn ldflags_refuse_library_paths_and_names() {
    for flag in ["-L/usr/lib", "-lz", "@link.rsp"] {
        let (_t, mf) = package(&[], &format!("[build]\nldflags = [\"{flag}\"]\n"));
        let src = FlagSource {
            file: &mf,
            package: 0,
            table: "[build] ldflags",
        };
        let e = src.ldflags(&mf.manifest.build.ldflags).unwrap_err();
        assert!(e.help.unwrap().contains("links = [\"pthread\"]"), "{flag}");
    }
    let (_t, mf) = package(&[], "[build]\nldflags = [\"-Wl,--gc-sections\"]\n");
    let src = FlagSource {
        file: &mf,
        package: 0,
        table: "[build] ldflags",
    };
    assert_eq!(
        src.ldflags(&mf.manifest.build.ldflags).unwrap(),
        ["-Wl,--gc-sections"]
    );
}

#[test]
fn rendering_places_package_paths() {
    let flags = UnitFlags {
        lang: crate::sources::Lang::Cxx,
        dialect: vec!["-std=c++20".into()],
        codegen: vec!["-O0".into()],
        defines: vec!["-DX".into()],
        paths: vec![
            PathArg::Dir {
                flag: "-I",
                at: pkg("include"),
            },
            PathArg::File {
                flag: "-include",
                at: pkg("cfg.h"),
            },
            PathArg::Host(vec!["-I/usr/include/libpng16".into()]),
        ],
        pch: None,
    };
    let sandbox = |p: &PkgPath| format!("src/p/{}", p.rel);
    assert_eq!(
        flags.render(&sandbox),
        [
            "-std=c++20",
            "-O0",
            "-DX",
            "-Isrc/p/include",
            "-include",
            "src/p/cfg.h",
            "-I/usr/include/libpng16"
        ]
    );
    let host = |p: &PkgPath| Path::new("/home/u/p").join(&p.rel).display().to_string();
    assert_eq!(flags.render_after_dialect(&host)[2], "-I/home/u/p/include");
}

#[test]
fn response_file_words() {
    assert_eq!(
        split_response_file("a  'b c'\t\"d\\\"e\" f\\ g\n\n"),
        ["a", "b c", "d\"e", "f g"]
    );
    assert_eq!(split_response_file("''"), [""]);
    assert!(split_response_file("  \n").is_empty());
}
