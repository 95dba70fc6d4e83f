//! Module visibility: a library's `public-modules`, the private rest, and what importers
//! may see of them.

mod common;

use common::{derivation, failure, run, Sandbox};

#[test]
fn private_modules_build_but_never_reach_consumers() {
    let s = Sandbox::new();
    s.copy_example("visibility");
    let game = s.dir.path().join("visibility/game");
    let r = s.realise(&game, &[]).ok();
    assert_eq!(run(&r.target("game"), &[]), "after 5 frames: 31\n");
    // The consumer's compile gets `engine.pcm` only, never the private module's BMI.
    let drvs = s.derivations(&game, &[]);
    let main = derivation(&drvs, "game-0.1.0-src-main.cpp.o");
    let inputs: Vec<&str> = main["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["at"].as_str().unwrap())
        .collect();
    assert!(inputs.contains(&"bmi/engine.pcm"), "{inputs:?}");
    assert!(!inputs.iter().any(|i| i.contains("detail")), "{inputs:?}");
    let check = s.realise(&game, &["--check"]).ok();
    assert_eq!(check.finished()["differing"], 0, "{}", check.finished());
    assert!(s.realise(&game, &[]).ok().built().is_empty());
}

#[test]
fn importing_a_private_module_is_an_error_naming_module_package_and_line() {
    let s = Sandbox::new();
    s.copy_example("visibility");
    let game = s.dir.path().join("visibility/game");
    std::fs::write(
        game.join("src/main.cpp"),
        "#include <cstdio>\nimport engine;\nimport engine.detail;\nint main() { std::printf(\"%d\\n\", engine::detail::step(1)); }\n",
    )
    .unwrap();
    let (code, err) = failure(&s.cmod(&game, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("module `engine.detail` is private to package `engine`: its library does not list it in `public-modules`"),
        "{err}"
    );
    assert!(
        err.contains("src/main.cpp:3:1"),
        "the importer's line: {err}"
    );
    assert!(
        err.contains("detail.cppm:2:1"),
        "where it is declared: {err}"
    );
    assert!(!game.join("result").exists());
}

#[test]
fn a_public_interface_that_needs_a_private_module_is_an_error() {
    let s = Sandbox::new();
    s.copy_example("visibility");
    let engine = s.dir.path().join("visibility/engine");
    std::fs::write(
        engine.join("src/engine.cppm"),
        "export module engine;\nexport import engine.detail;\nexport namespace engine {\nint simulate(int frames);\n}\n",
    )
    .unwrap();
    let (code, err) = failure(&s.cmod(&engine, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("public module `engine` needs private module `engine.detail`: every importer of `engine` would need it too"),
        "{err}"
    );
    assert!(err.contains("src/engine.cppm:2:1"), "{err}");
    assert!(err.contains("add it to `public-modules`"), "{err}");
}

#[test]
fn public_modules_must_name_modules_of_the_library() {
    let s = Sandbox::new();
    s.copy_example("visibility");
    let engine = s.dir.path().join("visibility/engine");
    let manifest = std::fs::read_to_string(engine.join("cmod.toml")).unwrap();
    std::fs::write(
        engine.join("cmod.toml"),
        manifest.replace(
            "public-modules = [\"engine\"]",
            "public-modules = [\"engine\", \"engin.detail\"]",
        ),
    )
    .unwrap();
    let (code, err) = failure(&s.cmod(&engine, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`public-modules` of library `engine` lists `engin.detail`, which the library does not provide"),
        "{err}"
    );
    assert!(err.contains("cmod.toml:10:29"), "{err}");
    assert!(
        err.contains("did you mean `engine.detail`? its modules are: engine, engine.detail"),
        "{err}"
    );
}

#[test]
fn without_public_modules_every_module_is_public() {
    let s = Sandbox::new();
    s.copy_example("visibility");
    let engine = s.dir.path().join("visibility/engine");
    let manifest = std::fs::read_to_string(engine.join("cmod.toml")).unwrap();
    std::fs::write(
        engine.join("cmod.toml"),
        manifest.replace("public-modules = [\"engine\"]\n", ""),
    )
    .unwrap();
    let game = s.dir.path().join("visibility/game");
    std::fs::write(
        game.join("src/main.cpp"),
        "#include <cstdio>\nimport engine.detail;\nint main() { std::printf(\"%d\\n\", engine::detail::step(1)); }\n",
    )
    .unwrap();
    let r = s.realise(&game, &[]).ok();
    assert_eq!(run(&r.target("game"), &[]), "3\n");
}
