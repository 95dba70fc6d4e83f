//! Workspaces: `examples/workspace` has three members, app → text → core, and one lock.

mod common;

use common::{failure, run, Sandbox};

#[test]
fn the_root_builds_every_member_with_one_lock() {
    let s = Sandbox::new();
    let ws = s.copy_example("workspace");
    let r = s.realise(&ws, &[]).ok();
    // Targets from several members are qualified by member.
    let targets = r.finished()["targets"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(
        targets,
        ["app/fractions", "core/libcore.a", "text/libtext.a"]
    );
    // app imports text.fraction, which imports core.math: a BMI closure across members.
    assert_eq!(
        run(&r.target("app/fractions"), &[]),
        "42/56 = 3/4, 12^2 = 144\n"
    );
    assert!(ws.join("cmod.lock").is_file());
    for m in ["app", "text", "core"] {
        assert!(
            !ws.join(m).join("cmod.lock").exists(),
            "one lock, at the root"
        );
    }
    assert!(ws.join("result").exists() && ws.join("result-core-libcore.a").exists());
    // Members are not locked as dependencies.
    let lock = std::fs::read_to_string(ws.join("cmod.lock")).unwrap();
    assert!(!lock.contains("[[package]]"), "{lock}");
}

#[test]
fn dash_p_and_member_directories_select_one_member() {
    let s = Sandbox::new();
    let ws = s.copy_example("workspace");
    let r = s.realise(&ws, &["-p", "text", "--no-link"]).ok();
    assert_eq!(
        r.finished()["targets"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["libtext.a"]
    );
    assert!(
        r.built()
            .iter()
            .all(|n| n.starts_with("text-") || n.starts_with("core-")),
        "{:?}",
        r.built()
    );
    assert!(!r.built().iter().any(|n| n.starts_with("app-")));
    // In a member's directory, that member is the default, and the lock stays at the root.
    let app = ws.join("app");
    let r = s.realise(&app, &[]).ok();
    assert_eq!(
        run(&r.target("fractions"), &[]),
        "42/56 = 3/4, 12^2 = 144\n"
    );
    assert!(!app.join("cmod.lock").exists() && ws.join("cmod.lock").exists());
    let (code, err) = failure(&s.cmod(&ws, &["realise", "-p", "nope"]));
    assert_eq!(code, 2);
    assert!(
        err.contains("`nope` is not a member of this workspace") && err.contains("members: "),
        "{err}"
    );
}

#[test]
fn importing_an_undeclared_member_names_the_package_to_add() {
    let s = Sandbox::new();
    let ws = s.copy_example("workspace");
    // app uses core.math directly without depending on core.
    let main = ws.join("app/src/main.cpp");
    std::fs::write(&main, "#include <cstdio>\nimport text.fraction;\nimport core.math;\nint main() { std::printf(\"%ld\\n\", core::gcd(4, 6)); }\n").unwrap();
    let (code, err) = failure(&s.cmod(&ws, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "module `core.math` is provided by package `core`, which `app` does not depend on"
        ),
        "{err}"
    );
    assert!(err.contains("src/main.cpp:3:1"), "{err}");
    assert!(err.contains("core = { path = \"../core\" }"), "{err}");
}
