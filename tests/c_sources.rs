//! C units beside C++ ones, explicit files cmod does not compile, and symlinked sources,
//! with the real clang-19 in the full sandbox.

mod common;

use common::{derivation, drv_args, failure, run, Sandbox};

#[test]
fn c_mix_builds_runs_tests_rebuilds_bit_identically_and_then_does_nothing() {
    let s = Sandbox::new();
    let dir = s.copy_example("c-mix");
    let r = s.realise(&dir, &[]).ok();
    let built = r.built();
    for name in [
        "c-mix-0.1.0-src-crc32.c.o",
        "c-mix-0.1.0-src-adler32.c.o",
        "c-mix-0.1.0-checksum.pcm",
    ] {
        assert!(built.contains(&name.to_string()), "{name} in {built:?}");
    }
    assert_eq!(
        run(&r.target("sums"), &[]),
        "crc32(hello) = 3610a686\nadler32(hello) = 062c0215\nC units compiled as C17\n"
    );
    // The C units are compiled as C: `-x c` with the C standard and the C flags, without
    // C++ flags.
    let drvs = s.derivations(&dir, &[]);
    let args = drv_args(derivation(&drvs, "c-mix-0.1.0-src-crc32.c.o"));
    assert_eq!(args[0], "-std=c17", "{args:?}");
    assert!(args.windows(2).any(|w| w == ["-x", "c"]), "{args:?}");
    assert!(
        args.contains(&"-Wpedantic"),
        "the library's cflags: {args:?}"
    );
    assert!(!args.iter().any(|a| a.starts_with("-stdlib")), "{args:?}");
    let margs = drv_args(derivation(&drvs, "c-mix-0.1.0-checksum.pcm"));
    assert!(
        margs.contains(&"-std=c++20") && !margs.contains(&"-Wpedantic"),
        "cflags are not C++ flags: {margs:?}"
    );
    let test = s.cmod(&dir, &["test"]);
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(String::from_utf8_lossy(&test.stdout).contains("test known-values ... ok"));
    let check = s.realise(&dir, &["--check"]).ok();
    assert_eq!(check.finished()["checked"], 7, "{}", check.finished());
    assert_eq!(check.finished()["differing"], 0, "{}", check.finished());
    let again = s.realise(&dir, &[]).ok();
    assert!(again.built().is_empty(), "{:?}", again.built());
}

#[test]
fn the_c_standard_is_a_toolchain_setting_and_c_units_are_not_cxx() {
    let s = Sandbox::new();
    let dir = s.copy_example("c-mix");
    let manifest = std::fs::read_to_string(dir.join("cmod.toml")).unwrap();
    std::fs::write(
        dir.join("cmod.toml"),
        manifest.replace("c-standard = 17", "c-standard = 11"),
    )
    .unwrap();
    let r = s.realise(&dir, &[]).ok();
    assert!(run(&r.target("sums"), &[]).ends_with("C units compiled as C11\n"));
    // C++ in a .c file is a C compile error, reported at its line.
    std::fs::write(
        dir.join("src/extra.c"),
        "#include <stdint.h>\nnamespace oops { int x; }\n",
    )
    .unwrap();
    let (code, err) = failure(&s.cmod(&dir, &["realise"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("src/extra.c:2:1: error: unknown type name 'namespace'"),
        "{err}"
    );
}

#[test]
fn c_files_were_silently_dropped_before_and_now_link() {
    // A C helper matched by the library's glob defines a symbol main needs: an undefined
    // symbol at link time if the C unit were dropped.
    let s = Sandbox::new();
    let dir = s.project(
        "p",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"p\"\nversion = \"0.1.0\"\n[lib]\nsources = [\"src/*\"]\n[[bin]]\nname = \"p\"\nmain = \"main.cpp\"\n",
            ),
            ("src/helper.c", "int helper_value(void) { return 41 + 1; }\n"),
            ("src/helper.h", "int helper_value(void);\n"),
            ("main.cpp", "#include <cstdio>\nextern \"C\" int helper_value();\nint main() { std::printf(\"%d\\n\", helper_value()); }\n"),
        ],
    );
    let r = s.realise(&dir, &[]).ok();
    assert!(
        r.built().contains(&"p-0.1.0-src-helper.c.o".to_string()),
        "{:?}",
        r.built()
    );
    assert_eq!(run(&r.target("p"), &[]), "42\n");
}

#[test]
fn a_file_named_in_sources_that_cmod_does_not_compile_is_an_error_at_its_line() {
    let s = Sandbox::new();
    let dir = s.project(
        "p",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"p\"\nversion = \"0.1.0\"\n[lib]\nsources = [\n  \"src/a.cpp\",\n  \"src/gen.rs\",\n]\n",
            ),
            ("src/a.cpp", "int a() { return 1; }\n"),
            ("src/gen.rs", "fn main() {}\n"),
        ],
    );
    let (code, err) = failure(&s.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`src/gen.rs` is named in `sources`, but cmod does not compile `.rs` files"),
        "{err}"
    );
    assert!(err.contains("cmod.toml:7:"), "{err}");
    assert!(
        !dir.join("result").exists() && !dir.join("cmod.lock").exists(),
        "nothing written"
    );
}

#[test]
fn symlinked_sources_are_followed_inside_the_package_and_refused_outside() {
    let s = Sandbox::new();
    let dir = s.project(
        "p",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"p\"\nversion = \"0.1.0\"\n[lib]\nsources = [\"src/*.cpp\"]\n[[bin]]\nname = \"p\"\nmain = \"main.cpp\"\n",
            ),
            ("shared/value.cpp", "int value() { return 7; }\n"),
            ("main.cpp", "#include <cstdio>\nint value();\nint main() { std::printf(\"%d\\n\", value()); }\n"),
        ],
    );
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::os::unix::fs::symlink("../shared/value.cpp", dir.join("src/value.cpp")).unwrap();
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(run(&r.target("p"), &[]), "7\n");

    let outside = s.project("elsewhere", &[("far.cpp", "int far() { return 1; }\n")]);
    std::os::unix::fs::symlink(outside.join("far.cpp"), dir.join("src/far.cpp")).unwrap();
    let (code, err) = failure(&s.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("source `src/far.cpp` is a symlink to"),
        "{err}"
    );
    assert!(err.contains("which is outside the package"), "{err}");
    assert!(err.contains("cmod.toml:5:"), "{err}");
}
