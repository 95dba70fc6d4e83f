//! Where the store is ($CMOD_STORE, XDG, HOME, none), `cmod toolchain` inside and
//! outside a package, and `show-derivation` by every kind of name.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{failure, Sandbox};
use serde_json::Value;

/// `cmod <args>` in `cwd` with exactly `env` (plus PATH): no `--store` flag.
fn cmod_with_env(cwd: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cmod"));
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run cmod")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{}", failure(out).1);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn store_names(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.join("v1/store"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn the_store_location_comes_from_flag_env_xdg_or_home() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let root = s.dir.path();
    let (env_store, xdg, home, flag) = (
        root.join("env-store"),
        root.join("xdg"),
        root.join("home"),
        root.join("flag-store"),
    );
    let all = [
        ("CMOD_STORE", env_store.as_path()),
        ("XDG_DATA_HOME", xdg.as_path()),
        ("HOME", home.as_path()),
    ];
    let args = ["realise", "--no-link"];
    // $CMOD_STORE wins over XDG and HOME.
    stdout(&cmod_with_env(&dir, &args, &all));
    let built = store_names(&env_store);
    assert_eq!(built.len(), 15, "6 drvs, 6 outputs, 3 sources: {built:?}");
    assert!(!xdg.exists() && !home.exists());
    // --store wins over $CMOD_STORE.
    let mut with_flag = vec!["--store", flag.to_str().unwrap()];
    with_flag.extend(args);
    stdout(&cmod_with_env(&dir, &with_flag, &all));
    assert_eq!(store_names(&flag), built);
    // Then $XDG_DATA_HOME/cmod, then $HOME/.local/share/cmod.
    stdout(&cmod_with_env(&dir, &args, &all[1..]));
    assert_eq!(store_names(&xdg.join("cmod")), built);
    stdout(&cmod_with_env(&dir, &args, &all[2..]));
    assert_eq!(store_names(&home.join(".local/share/cmod")), built);
}

#[test]
fn without_any_store_location_cmod_says_what_to_set() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let out = cmod_with_env(&dir, &["realise"], &[]);
    let (code, err) = failure(&out);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no store location: none of $CMOD_STORE, $XDG_DATA_HOME and $HOME is set"),
        "{err}"
    );
    assert!(
        err.contains("pass --store DIR, or set CMOD_STORE or XDG_DATA_HOME"),
        "{err}"
    );
    assert!(!dir.join("result").exists(), "nothing was built");
}

#[test]
fn toolchain_works_outside_a_package_with_the_default_compiler() {
    let s = Sandbox::new();
    let empty = s.dir.path().join("nowhere");
    std::fs::create_dir(&empty).unwrap();
    let text = stdout(&s.cmod(&empty, &["toolchain"]));
    assert!(text.starts_with("identity:  blake3:"), "{text}");
    assert!(
        text.contains("clang++-19 (") && text.contains("clang version 19."),
        "{text}"
    );
    assert!(text.contains("stdlib:    libstdc++"), "{text}");
    let outside: Value =
        serde_json::from_str(&stdout(&s.cmod(&empty, &["toolchain", "--json"]))).unwrap();
    // Inside a package that asks for the same compiler, the identity is the same.
    let dir = s.copy_example("hello");
    let inside: Value =
        serde_json::from_str(&stdout(&s.cmod(&dir, &["toolchain", "--json"]))).unwrap();
    assert_eq!(outside["identity"], inside["identity"]);
    assert!(outside["identity"].as_str().unwrap().starts_with("blake3:"));
    // A package's own toolchain request is honoured.
    let libcxx = s.project(
        "libcxx",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"x\"\nversion = \"0.1.0\"\n[toolchain]\nstdlib = \"libc++\"\n[[bin]]\nname = \"x\"\nmain = \"m.cpp\"\n",
            ),
            ("m.cpp", "int main() {}\n"),
        ],
    );
    let other: Value =
        serde_json::from_str(&stdout(&s.cmod(&libcxx, &["toolchain", "--json"]))).unwrap();
    assert_eq!(other["stdlib"], "libc++");
    assert_ne!(other["identity"], inside["identity"]);
    // Its runtime (what its programs load) names libc++abi where the loader finds it.
    let runtime = other["runtime"].as_array().expect("a runtime list");
    assert!(
        runtime
            .iter()
            .any(|p| p.as_str() == Some("/lib/x86_64-linux-gnu/libc++abi.so.1")),
        "{runtime:?}"
    );
    // A broken manifest is reported, not skipped for the default toolchain.
    std::fs::write(libcxx.join("cmod.toml"), "[package\n").unwrap();
    let (code, err) = failure(&s.cmod(&libcxx, &["toolchain"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cmod.toml:1:"), "{err}");
}

#[test]
fn show_derivation_by_target_drv_path_basename_and_output_path() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let by_target: Value =
        serde_json::from_str(&stdout(&s.cmod(&dir, &["show-derivation", "hello"]))).unwrap();
    let (drv_path, drv) = by_target.as_object().unwrap().iter().next().unwrap();
    assert_eq!(drv["kind"], "link");
    let by_drv: Value =
        serde_json::from_str(&stdout(&s.cmod(&dir, &["show-derivation", drv_path]))).unwrap();
    assert_eq!(by_drv, by_target);
    let basename = Path::new(drv_path).file_name().unwrap().to_str().unwrap();
    let by_name: Value =
        serde_json::from_str(&stdout(&s.cmod(&dir, &["show-derivation", basename]))).unwrap();
    assert_eq!(by_name, by_target);
    // An intermediate derivation (not a target) by its path, and an output by its path.
    let all: Value = serde_json::from_str(&stdout(&s.cmod(&dir, &["eval", "--json"]))).unwrap();
    let (bmi_path, bmi) = all
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, d)| d["kind"] == "bmi")
        .unwrap();
    let shown: Value =
        serde_json::from_str(&stdout(&s.cmod(&dir, &["show-derivation", bmi_path]))).unwrap();
    assert_eq!(shown[bmi_path], *bmi);
    let r = s.realise(&dir, &["--no-link"]).ok();
    let exe = r.target("hello");
    let by_output: Value = serde_json::from_str(&stdout(
        &s.cmod(&dir, &["show-derivation", exe.to_str().unwrap()]),
    ))
    .unwrap();
    assert_eq!(by_output, by_target);
    // A source path has no derivation; a name that is neither is a usage error.
    let src = all.as_object().unwrap()[bmi_path]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|i| i["from"]["path"].as_str())
        .unwrap()
        .to_string();
    let (code, err) = failure(&s.cmod(&dir, &["show-derivation", &src]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("was not built by a derivation"), "{err}");
    let (code, err) = failure(&s.cmod(&dir, &["show-derivation", "no-such-thing"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is neither a target nor a store path"),
        "{err}"
    );
}
