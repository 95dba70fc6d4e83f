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
    // The workspace declares `core` in [workspace.dependencies]: the member inherits it.
    assert!(
        err.contains("add `core = { workspace = true }` to [dependencies] in `"),
        "{err}"
    );
    // Without a workspace entry, the help is the path from the member.
    let root = ws.join("cmod.toml");
    let text = std::fs::read_to_string(&root).unwrap();
    std::fs::write(&root, text.replace("core = { path = \"core\" }\n", "")).unwrap();
    std::fs::write(
        ws.join("text/cmod.toml"),
        "[package]\nname = \"text\"\nversion = \"0.2.0\"\n\n[lib]\nsources = [\"src/*.cppm\"]\n\n[dependencies]\ncore = { path = \"../core\" }\n",
    )
    .unwrap();
    let (code, err) = failure(&s.cmod(&ws, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("add `core = { path = \"../core\" }` to [dependencies]")
            && err.contains("cmod add core --path ../core"),
        "{err}"
    );
}

#[test]
fn each_package_keeps_its_dialect_and_consumers_get_bmi_variants() {
    let s = Sandbox::new();
    s.project(
        "dialects/old",
        &[
            ("cmod.toml", "[package]\nname = \"old\"\nversion = \"1.0.0\"\n[toolchain]\ncxx-standard = 20\n[lib]\nsources = [\"*.cppm\"]\n[build]\ndefines = [\"OLD_ONLY=1\"]\n"),
            ("old.cppm", "export module old;\nexport inline int answer() { return OLD_ONLY * 42; }\n"),
        ],
    );
    let app = s.project(
        "dialects/new",
        &[
            ("cmod.toml", "[package]\nname = \"new\"\nversion = \"1.0.0\"\n[toolchain]\ncxx-standard = 23\n[[bin]]\nname = \"new\"\nmain = \"main.cpp\"\n[dependencies]\nold = { path = \"../old\" }\n"),
            ("main.cpp", "#include <cstdio>\nimport old;\nint main() { std::printf(\"%d %ld\\n\", answer(), __cplusplus); }\n"),
        ],
    );
    let r = s.realise(&app, &[]).ok();
    // C++23's __cplusplus, and old's own define still applied to old's unit.
    assert_eq!(run(&r.target("new"), &[]), "42 202302\n");
    let drvs: serde_json::Value =
        serde_json::from_slice(&s.cmod(&app, &["eval", "--json"]).stdout).unwrap();
    let bmis: Vec<&serde_json::Value> = drvs
        .as_object()
        .unwrap()
        .values()
        .filter(|d| d["kind"] == "bmi")
        .collect();
    assert_eq!(
        bmis.len(),
        2,
        "old.pcm in its own dialect and a C++23 variant for `new`"
    );
    let stds: Vec<bool> = bmis
        .iter()
        .map(|d| {
            d["args"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "-std=c++23")
        })
        .collect();
    assert!(stds.contains(&true) && stds.contains(&false), "{stds:?}");
    for b in &bmis {
        assert!(
            b["args"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "-DOLD_ONLY=1"),
            "old's defines stay with old's units"
        );
    }
    let main_obj = drvs
        .as_object()
        .unwrap()
        .values()
        .find(|d| d["name"] == "new-1.0.0-main.cpp.o")
        .unwrap();
    assert!(
        !main_obj["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "-DOLD_ONLY=1"),
        "and never leak into new's"
    );
}

#[test]
fn tree_inverts_limits_depth_and_lists_shared_packages() {
    let s = Sandbox::new();
    let ws = s.copy_example("workspace");
    let text = |args: &[&str]| {
        let out = s.cmod(&ws, args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let full = text(&["tree", "-p", "app"]);
    assert!(
        full.starts_with("app v1.0.0")
            && full.contains("└── text v0.2.0")
            && full.contains("    └── core v0.4.0"),
        "{full}"
    );
    let shallow = text(&["tree", "-p", "app", "--depth", "1"]);
    assert!(
        shallow.contains("text v0.2.0") && !shallow.contains("core"),
        "{shallow}"
    );
    let inverted = text(&["tree", "-i", "core"]);
    assert!(
        inverted.starts_with("core v0.4.0")
            && inverted.contains("└── text v0.2.0")
            && inverted.contains("    └── app v1.0.0"),
        "{inverted}"
    );
    // In the whole workspace, core is required only by text; the tree says so.
    let dups = s.cmod(&ws, &["tree", "--duplicates"]);
    assert!(String::from_utf8_lossy(&dups.stderr)
        .contains("no package is required by more than one package"));
}

/// A member's own `[toolchain] compiler` cannot take effect (one toolchain builds the
/// workspace): the build goes on with the root's, and a warning points at the member's
/// line; the same setting as the root's is not worth a word.
#[test]
fn a_members_own_compiler_is_reported_as_ignored() {
    let s = Sandbox::new();
    let ws = s.copy_example("workspace");
    let manifest = ws.join("text/cmod.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "version = \"0.2.0\"\n",
            "version = \"0.2.0\"\n\n[toolchain]\ncompiler = \"clang++-18\"\n",
        ),
    )
    .unwrap();
    let r = s.realise(&ws, &["--no-link"]).ok();
    let err = r.stderr();
    assert!(
        err.contains("member `text` sets [toolchain] compiler = `clang++-18`, which is ignored"),
        "{err}"
    );
    assert!(
        err.contains("text/cmod.toml:6:"),
        "the member's line: {err}"
    );
    assert!(
        err.contains("`clang++-19` from"),
        "what is used instead: {err}"
    );
    assert_eq!(
        run(&r.target("app/fractions"), &[]),
        "42/56 = 3/4, 12^2 = 144\n"
    );
    // The root's own compiler, repeated in a member, is no surprise.
    std::fs::write(
        &manifest,
        text.replace(
            "version = \"0.2.0\"\n",
            "version = \"0.2.0\"\n\n[toolchain]\ncompiler = \"clang++-19\"\n",
        ),
    )
    .unwrap();
    let again = s.realise(&ws, &["--no-link"]).ok();
    assert!(
        !again.stderr().contains("which is ignored"),
        "{}",
        again.stderr()
    );
}

/// `cmod add NAME` in a member, without --git or --path, inherits NAME from
/// [workspace.dependencies]; a member missing there, or an unknown name, gets the exact
/// lines to write. `cmod new` below the workspace root warns that the workspace does not
/// list the new package.
#[test]
fn add_inherits_workspace_dependencies_and_new_names_unlisted_members() {
    let s = Sandbox::new();
    let ws = s.copy_example("workspace");
    let app = ws.join("app");
    let added = s.cmod(&app, &["add", "core"]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let manifest = std::fs::read_to_string(app.join("cmod.toml")).unwrap();
    assert!(
        manifest.contains("core = { workspace = true }"),
        "{manifest}"
    );
    let r = s.realise(&ws, &["--no-link"]).ok();
    assert_eq!(
        run(&r.target("app/fractions"), &[]),
        "42/56 = 3/4, 12^2 = 144\n"
    );

    let (code, err) = failure(&s.cmod(&app, &["add", "core", "--version", "^2"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("comes from [workspace.dependencies]"), "{err}");
    let (code, err) = failure(&s.cmod(&ws.join("text"), &["add", "app"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`app` is a member of the workspace, but not in [workspace.dependencies]"),
        "{err}"
    );
    assert!(
        err.contains("app = { path = \"app\" }"),
        "the line to write: {err}"
    );
    let (code, err) = failure(&s.cmod(&app, &["add", "nowhere"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("give exactly one of --git URL and --path DIR"),
        "{err}"
    );
    assert!(err.contains("[workspace.dependencies]"), "{err}");
    assert_eq!(
        std::fs::read_to_string(app.join("cmod.toml")).unwrap(),
        manifest,
        "failed adds change nothing"
    );

    let created = s.cmod(&ws, &["new", "tools"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let err = String::from_utf8_lossy(&created.stderr);
    assert!(
        err.contains("warning: ") && err.contains("which does not list it"),
        "{err}"
    );
    assert!(err.contains("add \"tools\" to `members`"), "{err}");
    // A listed one is quiet.
    let root = std::fs::read_to_string(ws.join("cmod.toml")).unwrap();
    std::fs::write(
        ws.join("cmod.toml"),
        root.replace(
            "members = [\"app\", \"text\", \"core\"]",
            "members = [\"app\", \"text\", \"core\", \"more\"]",
        ),
    )
    .unwrap();
    std::fs::create_dir(ws.join("more")).unwrap();
    let listed = s.cmod(&ws.join("more"), &["init"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&listed.stderr).contains("warning"),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
}
