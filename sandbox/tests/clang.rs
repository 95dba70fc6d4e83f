//! Runs the real clang-19 inside the `full` and `landlock` sandboxes with the toolchain
//! closure cmod uses, to prove that closure is sufficient: a module interface is
//! precompiled, compiled and linked with lld, and the binary runs, all sandboxed, and the
//! outputs are identical whichever host directory the build and store live in.

mod common;

use std::path::{Path, PathBuf};

use cmod_sandbox::{Action, ExitKind, Link, Mode};
use common::Fixture;

const MODULE: &str = "export module hello;\nexport int answer() { return 42; }\n";
const MAIN: &str = "import hello;\nint main() { return answer() == 42 ? 0 : 1; }\n";

fn clangxx() -> PathBuf {
    PathBuf::from("/usr/bin/clang++-19")
}

/// One sandboxed step in its own fresh build dir; returns the build dir.
fn step(
    fx: &Fixture,
    mode: Mode,
    name: &str,
    program: &Path,
    args: &[&str],
    inputs: &[(&str, &str)],
    outputs: &[&str],
) -> PathBuf {
    let build = fx.root().join(format!("build-{name}"));
    std::fs::create_dir_all(&build).unwrap();
    let mut toolchain = common::clang_closure();
    if !program.starts_with(cmod_sandbox::STORE_DIR) && !program.starts_with(fx.store()) {
        toolchain.push(program.to_path_buf());
    }
    let action = Action {
        program: program.to_path_buf(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec![],
        build_dir: build.clone(),
        store_dir: fx.store(),
        inputs: inputs.iter().map(|(i, _)| i.to_string()).collect(),
        links: inputs
            .iter()
            .map(|(i, at)| Link {
                at: at.into(),
                store_path: i.to_string(),
                sub: None,
            })
            .collect(),
        toolchain,
        outputs: outputs.iter().map(PathBuf::from).collect(),
        log_path: fx.root().join(format!("{name}.log")),
        limits: Default::default(),
        view_slot: None,
    };
    let outcome = cmod_sandbox::run(mode, &action).unwrap_or_else(|e| panic!("{name}: {e}"));
    let log = std::fs::read_to_string(&action.log_path).unwrap();
    assert_eq!(outcome.exit, ExitKind::Code(0), "{name} failed:\n{log}");
    build
}

/// Put `file` into the fixture store as `<hash>-<name>` (a single file) and return it.
fn add_to_store(fx: &Fixture, hash: &str, name: &str, file: &Path) -> String {
    let base = format!("{hash}-{name}");
    std::fs::copy(file, fx.store().join(&base)).unwrap();
    base
}

fn build_all(mode: Mode) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let fx = Fixture::new();
    let src = fx.root().join("srcs");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("hello.cppm"), MODULE).unwrap();
    std::fs::write(src.join("main.cpp"), MAIN).unwrap();
    let cppm = add_to_store(
        &fx,
        "0000000000000000000000000000000a",
        "hello.cppm",
        &src.join("hello.cppm"),
    );
    let main = add_to_store(
        &fx,
        "0000000000000000000000000000000b",
        "main.cpp",
        &src.join("main.cpp"),
    );
    let flags = ["-std=c++20", "-ffile-prefix-map=@builddir@=/build"];

    let b = step(
        &fx,
        mode,
        "pcm",
        &clangxx(),
        &[
            &flags[..],
            &[
                "--precompile",
                "-x",
                "c++-module",
                "src/hello.cppm",
                "-o",
                "out/hello.pcm",
            ],
        ]
        .concat(),
        &[(&cppm, "src/hello.cppm")],
        &["out/hello.pcm"],
    );
    let pcm = add_to_store(
        &fx,
        "0000000000000000000000000000000c",
        "hello.pcm",
        &b.join("out/hello.pcm"),
    );
    let b = step(
        &fx,
        mode,
        "obj",
        &clangxx(),
        &[&flags[..], &["-c", "bmi/hello.pcm", "-o", "out/hello.o"]].concat(),
        &[(&pcm, "bmi/hello.pcm")],
        &["out/hello.o"],
    );
    let obj = add_to_store(
        &fx,
        "0000000000000000000000000000000d",
        "hello.o",
        &b.join("out/hello.o"),
    );
    let b = step(
        &fx,
        mode,
        "main",
        &clangxx(),
        &[
            &flags[..],
            &[
                "-fmodule-file=hello=bmi/hello.pcm",
                "-c",
                "src/main.cpp",
                "-o",
                "out/main.o",
            ],
        ]
        .concat(),
        &[(&pcm, "bmi/hello.pcm"), (&main, "src/main.cpp")],
        &["out/main.o"],
    );
    let main_o = add_to_store(
        &fx,
        "0000000000000000000000000000000e",
        "main.o",
        &b.join("out/main.o"),
    );
    let b = step(
        &fx,
        mode,
        "link",
        &clangxx(),
        &[
            "-fuse-ld=lld",
            "obj/main.o",
            "obj/hello.o",
            "-o",
            "out/hello",
        ],
        &[(&main_o, "obj/main.o"), (&obj, "obj/hello.o")],
        &["out/hello"],
    );
    let exe = add_to_store(
        &fx,
        "0000000000000000000000000000000f",
        "hello",
        &b.join("out/hello"),
    );
    common::set_mode(&fx.store().join(&exe), 0o555);
    // Run the linked program as a builder too.
    let exe_seen = match mode {
        Mode::Full => Path::new(cmod_sandbox::STORE_DIR).join(&exe),
        _ => fx.store().join(&exe),
    };
    let run = step(&fx, mode, "run", &exe_seen, &[], &[(&exe, "hello")], &[]);
    assert!(run.join("hello").is_symlink());
    (
        std::fs::read(fx.store().join(&pcm)).unwrap(),
        std::fs::read(fx.store().join(&obj)).unwrap(),
        std::fs::read(fx.store().join(&exe)).unwrap(),
    )
}

#[test]
fn clang_builds_a_module_program_in_the_full_sandbox() {
    let (pcm1, obj1, exe1) = build_all(Mode::Full);
    let (pcm2, obj2, exe2) = build_all(Mode::Full);
    // Different temp roots, same bytes: canonical /build and /cmod/store paths.
    assert!(pcm1 == pcm2, "BMIs differ across store roots");
    let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(&pcm1, b"/build/src/hello.cppm"),
        "BMI records the canonical source path"
    );
    assert!(!has(&pcm1, b"/tmp/"), "BMI records a host path");
    assert!(obj1 == obj2 && exe1 == exe2, "objects or binaries differ");
}

#[test]
fn clang_builds_a_module_program_in_the_landlock_sandbox() {
    let (_pcm, obj1, exe1) = build_all(Mode::Landlock);
    let (_pcm2, obj2, exe2) = build_all(Mode::Landlock);
    // Without a mount namespace the prefix map makes objects and binaries identical
    // (BMIs record absolute host paths).
    assert!(obj1 == obj2 && exe1 == exe2, "objects or binaries differ");
}
