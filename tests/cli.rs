//! The inspection and maintenance commands, on real builds.

mod common;

use common::{cmod_in, failure, run, Sandbox};
use serde_json::Value;

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn new_and_init_create_buildable_packages() {
    let s = Sandbox::new();
    let out = s.cmod(s.dir.path(), &["new", "my-app"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = s.dir.path().join("my-app");
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(run(&r.target("my-app"), &[]), "Hello from my-app!\n");
    // What realise writes beside the sources is ignored by git.
    let ignored = std::fs::read_to_string(dir.join(".gitignore")).unwrap();
    for generated in ["result", "compile_commands.json"] {
        assert!(dir.join(generated).exists(), "{generated}");
        assert!(ignored.lines().any(|l| l == generated), "{ignored}");
    }
    // `new` refuses to overwrite.
    let again = s.cmod(s.dir.path(), &["new", "my-app"]);
    let (code, err) = failure(&again);
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");

    let empty = s.dir.path().join("other");
    std::fs::create_dir(&empty).unwrap();
    let out = s.cmod(&empty, &["init", "--name", "second"]);
    assert!(out.status.success());
    assert!(std::fs::read_to_string(empty.join("cmod.toml"))
        .unwrap()
        .contains("name = \"second\""));
    let (code, err) = failure(&s.cmod(s.dir.path(), &["new", "Bad Name"]));
    assert_eq!(code, 2);
    assert!(err.contains("not a valid package name"), "{err}");
}

#[test]
fn eval_show_derivation_and_graph() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let drvs: Value =
        serde_json::from_str(&stdout(&s.cmod(&dir, &["eval", "--json", "hello"]))).unwrap();
    let map = drvs.as_object().unwrap();
    assert_eq!(map.len(), 6);
    let link = map.iter().find(|(_, d)| d["kind"] == "link").unwrap();
    assert!(link.0.ends_with("-hello-0.1.0-hello.drv"));
    assert_eq!(link.1["version"], 2);
    assert!(link.1["args"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "-fuse-ld=lld"));

    let shown: Value =
        serde_json::from_str(&stdout(&s.cmod(&dir, &["show-derivation", "hello"]))).unwrap();
    assert_eq!(shown.as_object().unwrap().keys().next(), Some(link.0));
    // After realising, an output path leads back to its derivation.
    let r = s.realise(&dir, &["--no-link"]).ok();
    let out_path = r.target("hello");
    let by_output: Value = serde_json::from_str(&stdout(
        &s.cmod(&dir, &["show-derivation", out_path.to_str().unwrap()]),
    ))
    .unwrap();
    assert_eq!(by_output, shown);

    let dot = stdout(&s.cmod(&dir, &["graph", "--format", "dot"]));
    assert!(dot.starts_with("digraph modules {"), "{dot}");
    assert!(
        dot.contains("\"hello/src/main.cpp\" -> \"hello/src/hello.cppm\""),
        "{dot}"
    );
    let json: Value =
        serde_json::from_str(&stdout(&s.cmod(&dir, &["graph", "--format", "json"]))).unwrap();
    let units = json["units"].as_array().unwrap();
    assert_eq!(units.len(), 3);
    assert!(units
        .iter()
        .any(|u| u["kind"] == "Implementation" && u["module"] == "hello"));
}

#[test]
fn dry_run_print_out_paths_no_link_path_info_and_log() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let dry = s.cmod(&dir, &["realise", "--dry-run"]);
    let planned = stdout(&dry);
    assert_eq!(planned.lines().count(), 6, "{planned}");
    assert!(
        !dir.join("result").exists(),
        "a dry run builds and links nothing"
    );

    let out = s.cmod(
        &dir,
        &["realise", "--no-link", "--print-out-paths", "hello"],
    );
    let printed = stdout(&out);
    let exe = printed.trim();
    assert!(exe.ends_with("-hello-0.1.0-hello"), "{printed}");
    assert!(!dir.join("result").exists());
    assert_eq!(run(std::path::Path::new(exe), &[]), "Hello, modules!\n");

    let info: Value =
        serde_json::from_str(&stdout(&s.cmod(&dir, &["path-info", "--json", "hello"]))).unwrap();
    let i = &info[0];
    assert_eq!(i["kind"], "output");
    assert_eq!(i["sandbox"], "full");
    assert!(i["deriver"]
        .as_str()
        .unwrap()
        .ends_with("-hello-0.1.0-hello.drv"));
    assert_eq!(i["location"], exe);
    assert!(i["content_hash"].as_str().unwrap().starts_with("blake3:"));
    let recursive = stdout(&s.cmod(&dir, &["path-info", "-r", exe]));
    assert_eq!(recursive.trim(), exe, "a static binary references nothing");

    // `cmod log` shows the builder's output for a target, a derivation and an output.
    std::fs::write(
        dir.join("src/main.cpp"),
        std::fs::read_to_string(dir.join("src/main.cpp")).unwrap()
            + "\n#warning \"visible in the log\"\n",
    )
    .unwrap();
    s.realise(&dir, &["--no-link"]).ok();
    let log = stdout(&s.cmod(&dir, &["log", "hello"]));
    assert!(log.is_empty(), "the link step printed nothing: {log}");
    let drvs: Value = serde_json::from_str(&stdout(&s.cmod(&dir, &["eval", "--json"]))).unwrap();
    let main_drv = drvs
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.ends_with("src-main.cpp.o.drv"))
        .unwrap()
        .clone();
    let log = stdout(&s.cmod(&dir, &["log", &main_drv]));
    assert!(log.contains("warning: \"visible in the log\""), "{log}");
    let (code, err) = failure(&s.cmod(&dir, &["log", "nonexistent-target"]));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn gc_keeps_what_out_links_root_and_verify_catches_tampering() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    s.realise(&dir, &[]).ok();
    // An unrooted build of another package becomes garbage.
    let other = s.copy_example("path-deps");
    let app = other.join("app");
    s.realise(&app, &["--no-link"]).ok();
    let dry = stdout(&s.cmod(&dir, &["gc", "--dry-run"]));
    assert!(dry.lines().any(|l| l.ends_with("-app-1.0.0-app")), "{dry}");
    assert!(!dry.lines().any(|l| l.contains("hello")), "{dry}");
    let roots = stdout(&s.cmod(&dir, &["gc", "--print-roots"]));
    assert!(roots.contains("result ->"), "{roots}");
    stdout(&s.cmod(&dir, &["gc"]));
    // The rooted build is intact and still fresh: nothing to rebuild after GC.
    let again = s.realise(&dir, &[]).ok();
    assert!(again.built().is_empty(), "{:?}", again.built());
    assert_eq!(run(&dir.join("result"), &[]), "Hello, modules!\n");
    // The unrooted one was collected and must be rebuilt.
    let rebuilt = s.realise(&app, &["--no-link"]).ok();
    assert!(!rebuilt.built().is_empty());

    // Tamper with a store file: `store verify` reports it with the integrity exit code.
    let exe = std::fs::read_link(dir.join("result")).unwrap();
    let mut perms = std::fs::metadata(&exe).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&exe, perms).unwrap();
    std::fs::write(&exe, b"not a program any more").unwrap();
    let (code, err) = failure(&s.cmod(&dir, &["store", "verify"]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("corrupt: {}", exe.display())),
        "{err}"
    );
    assert!(err.contains("store path(s) are damaged"), "{err}");
}

#[test]
fn store_paths_do_not_depend_on_the_store_location() {
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let a = s.dir.path().join("a");
    let b = s
        .dir
        .path()
        .join("a-much-longer-store-root/with/more/components");
    let names = |store: &std::path::Path| -> Vec<String> {
        let out = cmod_in(&dir, store, &["realise", "--no-link"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut v: Vec<String> = std::fs::read_dir(store.join("v1/store"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let (na, nb) = (names(&a), names(&b));
    // 14 derivations, their 14 outputs and 8 sources.
    assert_eq!(na.len(), 36, "{na:?}");
    assert_eq!(
        na, nb,
        "store paths (drv, sources, outputs) must be named identically in any store"
    );
}

/// What a helper tool (bash, groff) printed; it must succeed and say nothing on stderr.
fn tool_output(command: &mut std::process::Command) -> String {
    let out = command.output().expect("run the tool");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.is_empty(), "{command:?}: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The completion scripts come from the same definitions as `--help`: bash's completes
/// commands and flags when bash runs it; zsh's and fish's are what those shells load.
#[test]
fn completions_complete_commands_and_flags() {
    let s = Sandbox::new();
    let script = stdout(&s.cmod(s.dir.path(), &["completions", "bash"]));
    let file = s.dir.path().join("cmod.bash");
    std::fs::write(&file, &script).unwrap();
    let complete = |words: &str, cword: usize| {
        let program = format!(
            "source '{}'; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{words}'; \
             COMP_POINT=${{#COMP_LINE}}; \
             _cmod cmod \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display()
        );
        tool_output(std::process::Command::new("bash").args(["--norc", "-c", &program]))
    };
    let commands = complete("cmod rea", 1);
    assert_eq!(commands.trim(), "realise", "{commands}");
    let flags = complete("cmod realise --sand", 2);
    assert!(flags.lines().any(|l| l == "--sandbox"), "{flags}");
    let zsh = stdout(&s.cmod(s.dir.path(), &["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef cmod"), "{zsh}");
    assert!(zsh.contains("--print-out-paths"), "{zsh}");
    let fish = stdout(&s.cmod(s.dir.path(), &["completions", "fish"]));
    assert!(fish.contains("complete -c cmod"), "{fish}");
    let (code, err) = failure(&s.cmod(s.dir.path(), &["completions", "tcsh"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bash"), "the error lists the shells: {err}");
}

/// `cmod man` renders as a real man page (groff), one per command, with every flag's
/// description; an unknown command is a usage error.
#[test]
fn man_pages_render_for_cmod_and_its_commands() {
    let s = Sandbox::new();
    let render = |roff: &str| {
        let file = s.dir.path().join("page.1");
        std::fs::write(&file, roff).unwrap();
        // -ww: every warning; tool_output fails on any of them.
        tool_output(
            std::process::Command::new("groff")
                .args(["-man", "-Tutf8", "-P-cbou", "-ww"])
                .arg(&file),
        )
    };
    let main = render(&stdout(&s.cmod(s.dir.path(), &["man"])));
    assert!(main.contains("NAME"), "{main}");
    assert!(main.contains("cmod - A content-addressed store"), "{main}");
    assert!(
        main.contains("cmod-realise(1)"),
        "subcommands are listed: {main}"
    );
    let realise = render(&stdout(&s.cmod(s.dir.path(), &["man", "realise"])));
    assert!(realise.contains("cmod-realise"), "{realise}");
    assert!(realise.contains("--print-out-paths"), "{realise}");
    let add = render(&stdout(&s.cmod(s.dir.path(), &["man", "add"])));
    assert!(
        add.contains("the tag to pin"),
        "every flag is described: {add}"
    );
    let verify = render(&stdout(&s.cmod(s.dir.path(), &["man", "store", "verify"])));
    assert!(verify.contains("cmod-store-verify"), "{verify}");
    let (code, err) = failure(&s.cmod(s.dir.path(), &["man", "store", "nope"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("has no command `nope`") && err.contains("verify"),
        "{err}"
    );
}

/// `path-info` and `why-depends` resolve names as `realise` does (`hello` is the binary
/// of package `hello`, not its library), accept out-links (`result`, `./result`), say
/// plainly when an out-link is missing, and print sizes for people on request.
#[test]
fn path_info_and_why_depends_take_target_names_and_out_links() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let exe = s.realise(&dir, &["--print-out-paths"]).ok().target("hello");
    let exe = exe.display().to_string();
    for what in [
        "hello",
        "result",
        "./result",
        &format!("{}/result", dir.display()),
    ] {
        let shown = stdout(&s.cmod(&dir, &["path-info", what]));
        assert_eq!(shown.trim(), exe, "`path-info {what}`");
        let closure = stdout(&s.cmod(&dir, &["path-info", "-S", what]));
        assert!(
            closure.starts_with(&format!("{exe}\t")),
            "`path-info -S {what}`: {closure}"
        );
    }
    let lib = stdout(&s.cmod(&dir, &["path-info", "hello/libhello.a"]));
    assert!(lib.trim().ends_with("-libhello.a"), "{lib}");
    // The binary is static: it depends on nothing, which why-depends says of the name.
    let why = stdout(&s.cmod(&dir, &["why-depends", "hello", "hello/libhello.a"]));
    assert!(why.contains("does not depend on"), "{why}");
    let human = stdout(&s.cmod(&dir, &["path-info", "-s", "--human-readable", "result"]));
    let size = human.trim().rsplit('\t').next().unwrap_or_default();
    assert!(size.ends_with(" KiB") || size.ends_with(" MiB"), "{human}");
    let bytes = stdout(&s.cmod(&dir, &["path-info", "-s", "result"]));
    let size: u64 = bytes.trim().rsplit('\t').next().unwrap().parse().unwrap();
    assert!(size > 1024, "{bytes}");
    let (code, err) = failure(&s.cmod(&dir, &["path-info", "./no-such-link"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no such file or directory"), "{err}");
}

/// Colour goes to stderr only, and only when asked for or allowed: `--color always`,
/// `CLICOLOR_FORCE`, never with `NO_COLOR` or `--color never`, and never into JSON.
#[test]
fn colour_follows_the_flag_and_the_environment() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let esc = "\x1b[";
    let with = |args: &[&str], env: &[(&str, &str)]| {
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let out = common::cmod_env(&dir, &s.store(), args, &env);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let quiet = [("NO_COLOR", ""), ("CLICOLOR_FORCE", "")];
    let built = with(&["--color", "always", "realise", "--no-link"], &quiet);
    let err = String::from_utf8_lossy(&built.stderr);
    assert!(err.contains("\x1b[1;32mFinished\x1b[0m"), "{err:?}");
    assert!(err.contains("\x1b[1;32mCompiling\x1b[0m"), "{err:?}");
    // Into a pipe, auto is off; CLICOLOR_FORCE turns it on, NO_COLOR wins over it.
    let auto = with(&["realise", "--no-link"], &quiet);
    assert!(!String::from_utf8_lossy(&auto.stderr).contains(esc));
    let forced = with(
        &["realise", "--no-link"],
        &[("NO_COLOR", ""), ("CLICOLOR_FORCE", "1")],
    );
    assert!(String::from_utf8_lossy(&forced.stderr).contains(esc));
    let both = with(
        &["realise", "--no-link"],
        &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")],
    );
    assert!(!String::from_utf8_lossy(&both.stderr).contains(esc));
    let never = with(
        &["--color", "never", "realise", "--no-link"],
        &[("CLICOLOR_FORCE", "1")],
    );
    assert!(!String::from_utf8_lossy(&never.stderr).contains(esc));
    // Errors are coloured too; stdout (JSON) never is.
    let json = with(
        &[
            "--color",
            "always",
            "realise",
            "--no-link",
            "--message-format",
            "json",
        ],
        &quiet,
    );
    assert!(!String::from_utf8_lossy(&json.stdout).contains(esc));
    let bad = common::cmod_env(
        &dir,
        &s.store(),
        &["--color", "always", "realise", "nothing"],
        &[],
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("\x1b[1;31merror\x1b[0m:"), "{err:?}");
    assert_eq!(bad.status.code(), Some(2));
}
