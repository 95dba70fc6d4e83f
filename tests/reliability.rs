//! The store never reports what it does not have: missing and corrupt contents and
//! unreadable metadata are noticed, reported in full and repaired; leftovers of killed
//! runs are cleaned; registrations reach stable storage before they become valid.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cmod_env, failure, run, Sandbox};

/// Make a read-only store file writable (and its directory), to damage it.
fn writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    if path.exists() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

/// The metadata file of the store path `p` (an absolute path into the store).
fn meta_of(store: &Path, p: &Path) -> PathBuf {
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    store.join("v1/meta").join(format!("{}.json", &name[..32]))
}

fn realised_hello(s: &Sandbox) -> (PathBuf, PathBuf) {
    let dir = s.copy_example("hello");
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(r.built().len(), 6);
    let out = std::fs::read_link(dir.join("result")).unwrap();
    (dir, out)
}

#[test]
fn a_deleted_output_is_noticed_rebuilt_with_a_warning_and_run_works() {
    let s = Sandbox::new();
    let (dir, out) = realised_hello(&s);
    writable(&out);
    std::fs::remove_file(&out).unwrap();
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(
        r.built(),
        ["hello-0.1.0-hello"],
        "only the missing output is rebuilt"
    );
    let warning = r
        .messages
        .iter()
        .map(|m| m.to_string())
        .chain(std::iter::once(r.stderr()))
        .find(|t| t.contains("is registered but its contents are missing"));
    assert!(
        warning.is_some_and(|w| w.contains(out.to_str().unwrap())),
        "{}",
        r.stderr()
    );
    assert_eq!(run(&dir.join("result"), &[]), "Hello, modules!\n");
    // `cmod run` realises first, so it too finds the output again.
    writable(&out);
    std::fs::remove_file(&out).unwrap();
    let ran = s.cmod(&dir, &["run"]);
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "Hello, modules!\n");
    // Deleted intermediate outputs and sources come back the same way.
    for path in std::fs::read_dir(s.store().join("v1/store")).unwrap() {
        let p = path.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".cppm") || name.ends_with("hello.pcm") {
            writable(&p);
            std::fs::remove_file(&p).unwrap();
        }
    }
    let r = s.realise(&dir, &[]).ok();
    assert!(
        r.built().contains(&"hello-0.1.0-hello.pcm".to_string()),
        "{:?}",
        r.built()
    );
    s.assert_store_verifies(&dir);
}

/// After an edit, unchanged steps are reused from the previous realisation without
/// looking at their `.drv` files first; one deleted by hand is written again beside the
/// build, and the store verifies.
#[test]
fn a_deleted_derivation_of_a_reused_step_is_written_again() {
    let s = Sandbox::new();
    let (dir, _) = realised_hello(&s);
    let store = s.store().join("v1/store");
    let drv = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("hello.pcm.drv"))
        .expect("the BMI's derivation is in the store");
    writable(&drv);
    std::fs::remove_file(&drv).unwrap();
    let main = dir.join("src/main.cpp");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, text.replace("return 0;", "return 0; // edited")).unwrap();
    let r = s.realise(&dir, &[]).ok();
    assert!(
        !r.built().contains(&"hello-0.1.0-hello.pcm".to_string()),
        "the BMI step is reused: {:?}",
        r.built()
    );
    assert!(drv.exists(), "the deleted derivation was written again");
    s.assert_store_verifies(&dir);
    assert_eq!(run(&dir.join("result"), &[]), "Hello, modules!\n");
}

#[test]
fn unreadable_metadata_blocks_nothing_verify_reports_every_problem_and_repair_fixes_them() {
    let s = Sandbox::new();
    let (dir, out) = realised_hello(&s);
    let store = s.store();
    // Truncated metadata of the binary, deleted contents of another output, a flipped
    // byte in a third.
    std::fs::write(meta_of(&store, &out), "").unwrap();
    let outputs: Vec<PathBuf> = std::fs::read_dir(store.join("v1/store"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let object = outputs
        .iter()
        .find(|p| p.to_string_lossy().ends_with("main.cpp.o"))
        .unwrap();
    writable(object);
    std::fs::remove_file(object).unwrap();
    let archive = outputs
        .iter()
        .find(|p| p.to_string_lossy().ends_with("libhello.a"))
        .unwrap();
    writable(archive);
    let mut bytes = std::fs::read(archive).unwrap();
    bytes[20] ^= 0xff;
    std::fs::write(archive, bytes).unwrap();

    // gc does not fail on the unreadable file: it holds back (a live path's references
    // are unknown) and says what to do; nothing is deleted.
    let before = std::fs::read_dir(store.join("v1/store")).unwrap().count();
    let (code, err) = failure(&s.cmod(&dir, &["gc"]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("nothing was collected") && err.contains("cmod store repair"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(store.join("v1/store")).unwrap().count(),
        before
    );

    // verify lists every problem; damage is an integrity failure (exit 3).
    let v = s.cmod(&dir, &["store", "verify", "--check-contents"]);
    assert_eq!(v.status.code(), Some(3));
    let err = String::from_utf8_lossy(&v.stderr);
    assert!(err.contains("metadata cannot be read"), "{err}");
    assert!(err.contains("contents are missing"), "{err}");
    assert!(err.contains("was recorded"), "{err}");
    assert_eq!(err.matches("corrupt: ").count(), 3, "{err}");

    let repair = s.cmod(&dir, &["store", "repair"]);
    let err = String::from_utf8_lossy(&repair.stderr);
    assert!(repair.status.success(), "{err}");
    assert!(err.contains("Repaired 3 of 3 damaged path(s)"), "{err}");
    let v = s.cmod(&dir, &["store", "verify", "--check-contents"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    assert!(s.cmod(&dir, &["gc"]).status.success());
    assert_eq!(run(&dir.join("result"), &[]), "Hello, modules!\n");
}

#[test]
fn a_corrupt_stored_output_is_told_apart_from_a_non_reproducible_build() {
    let s = Sandbox::new();
    let (dir, out) = realised_hello(&s);
    writable(&out);
    let mut bytes = std::fs::read(&out).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&out, bytes).unwrap();
    let (code, err) = failure(&s.cmod(&dir, &["realise", "--check"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("1 stored output(s) are corrupt"), "{err}");
    assert!(!err.contains("differ from the stored copies"), "{err}");
    assert!(err.contains("cmod store repair"), "{err}");
    let name = out.file_name().unwrap().to_string_lossy().into_owned();
    let repair = s.cmod(&dir, &["store", "repair", &name]);
    assert!(
        repair.status.success(),
        "{}",
        String::from_utf8_lossy(&repair.stderr)
    );
    let check = s.realise(&dir, &["--check"]).ok();
    assert_eq!(check.finished()["differing"], 0);
}

#[test]
fn damage_nothing_produces_is_forgotten_and_reported() {
    let s = Sandbox::new();
    let (dir, _) = realised_hello(&s);
    let added = s.cmod(&dir, &["store", "add", "cmod.toml", "--name", "extra.toml"]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&added.stdout).trim().to_string());
    writable(&path);
    std::fs::remove_file(&path).unwrap();
    let (code, err) = failure(&s.cmod(&dir, &["store", "verify", "--repair"]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("could not be repaired and are now forgotten"),
        "{err}"
    );
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    let v = s.cmod(&dir, &["store", "verify"]);
    assert!(
        v.status.success(),
        "forgotten: {}",
        String::from_utf8_lossy(&v.stderr)
    );
}

/// Outside any package only substituters can restore a path: `store repair PATH` with a
/// signed cache fetches the damaged output again (signature checked) and the program runs.
#[test]
fn repair_outside_a_package_re_substitutes_from_a_signed_cache() {
    let s = Sandbox::new();
    let (dir, out) = realised_hello(&s);
    let ok = |o: std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o
    };
    let (sk, pk) = (s.dir.path().join("k.sec"), s.dir.path().join("k.pub"));
    let (sk, pk_file) = (sk.to_str().unwrap(), pk.to_str().unwrap());
    ok(s.cmod(
        &dir,
        &[
            "key",
            "generate",
            "repair-1",
            "--secret-key",
            sk,
            "--public-key",
            pk_file,
        ],
    ));
    let pk = std::fs::read_to_string(&pk).unwrap().trim().to_string();
    ok(s.cmod(&dir, &["store", "sign", "--key-file", sk]));
    let cache = format!("file://{}", s.dir.path().join("cache").display());
    ok(s.cmod(&dir, &["copy", "--to", &cache]));
    writable(&out);
    std::fs::remove_file(&out).unwrap();
    // From a directory holding no package.
    let elsewhere = s.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let path = out.to_str().unwrap();
    let args = ["store", "repair", path, "--substituters", &cache];
    // Without trusting the cache's key nothing is fetched, and the path is forgotten.
    let (code, err) = failure(&s.cmod(&elsewhere, &args));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("is not trusted") && err.contains("not fetched"),
        "{err}"
    );
    assert!(err.contains("only substituters can restore paths"), "{err}");
    // The path is forgotten now; realising again would rebuild it. Damage it again the
    // way a registration would leave it, by substituting with the key trusted.
    let mut trusted = args.to_vec();
    trusted.extend(["--trusted-public-keys", &pk]);
    let (code, err) = failure(&s.cmod(&elsewhere, &trusted));
    assert_eq!(code, 2, "a forgotten path is no longer registered: {err}");
    ok(s.cmod(
        &dir,
        &["copy", "--from", &cache, path, "--trusted-public-keys", &pk],
    ));
    writable(&out);
    std::fs::remove_file(&out).unwrap();
    let repaired = ok(s.cmod(&elsewhere, &trusted));
    let err = String::from_utf8_lossy(&repaired.stderr);
    assert!(
        err.contains(&format!("Fetched {path} from {cache}")),
        "{err}"
    );
    assert!(err.contains("Repaired 1 of 1 damaged path(s)"), "{err}");
    assert_eq!(run(&dir.join("result"), &[]), "Hello, modules!\n");
}

#[test]
fn leftovers_of_killed_runs_are_cleaned_and_those_of_live_ones_kept() {
    let s = Sandbox::new();
    let (dir, _) = realised_hello(&s);
    let tmp = s.store().join("v1/tmp");
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let dead_dir = tmp.join(format!("build-{dead}-7"));
    std::fs::create_dir_all(dead_dir.join("src")).unwrap();
    std::fs::write(dead_dir.join("src/x.o"), vec![0u8; 1 << 20]).unwrap();
    let dead_log = tmp.join(format!("build-{dead}-7.log"));
    std::fs::write(&dead_log, "log of a killed build").unwrap();
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let live = tmp.join(format!("build-{}-1", sleeper.id()));
    std::fs::create_dir_all(&live).unwrap();
    let live_log = tmp.join(format!("build-{}-1.log", sleeper.id()));
    std::fs::write(&live_log, "").unwrap();
    s.realise(&dir, &[]).ok();
    assert!(
        !dead_dir.exists() && !dead_log.exists(),
        "a realise cleans what dead runs left"
    );
    assert!(
        live.exists() && live_log.exists(),
        "what a live process owns is kept"
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(s.cmod(&dir, &["gc"]).status.success());
    assert!(
        !live.exists() && !live_log.exists(),
        "gc cleans them once the owner is gone"
    );
}

/// The system calls of `cmod realise` in a fresh store, traced with strace.
fn traced_realise(s: &Sandbox, dir: &Path, env: &[(&str, String)]) -> String {
    let trace = s.dir.path().join(format!("strace-{}.log", env.len()));
    let out = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=openat,fsync,fdatasync,rename,renameat,renameat2",
            "-o",
        ])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_cmod"))
        .arg("--store")
        .arg(s.dir.path().join(format!("store-{}", env.len())))
        .args(["realise", "--no-link", "--sandbox", "off"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(dir)
        .output()
        .expect("strace (scripts/install-deps installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(trace).unwrap()
}

#[test]
fn contents_reach_stable_storage_before_their_metadata_makes_them_valid() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let log = traced_realise(&s, &dir, &[]);
    // Per thread: fd → the path it was opened on (an `openat` may be split by strace
    // into `<unfinished ...>` and `<... openat resumed> = fd`); every metadata rename
    // must come after an fsync of its contents (made while they were still under `tmp/`
    // and followed by their move into `v1/store/`).
    let mut fds: std::collections::HashMap<(String, String), String> = Default::default();
    let mut pending: std::collections::HashMap<String, String> = Default::default();
    let mut synced: std::collections::HashSet<String> = Default::default();
    let mut registered = 0;
    let fd_of = |text: &str| {
        text.rsplit("= ")
            .next()
            .and_then(|f| f.trim().parse::<i64>().ok())
    };
    for line in log.lines() {
        let pid = line.split_whitespace().next().unwrap_or("").to_string();
        if let Some(rest) = line.split_once("openat(").map(|(_, r)| r) {
            let path = rest.split('"').nth(1).unwrap_or("").to_string();
            match fd_of(rest).filter(|_| !rest.contains("<unfinished")) {
                Some(fd) => {
                    fds.insert((pid, fd.to_string()), path);
                }
                None => {
                    pending.insert(pid, path);
                }
            }
        } else if line.contains("<... openat resumed>") {
            if let (Some(path), Some(fd)) = (pending.remove(&pid), fd_of(line)) {
                fds.insert((pid, fd.to_string()), path);
            }
        } else if let Some(rest) = line.split_once("fsync(").map(|(_, r)| r) {
            let fd = rest.split([')', ' ']).next().unwrap_or("").to_string();
            if let Some(p) = fds.get(&(pid, fd)) {
                synced.insert(p.clone());
            }
        } else if line.contains("rename(") && line.contains("/v1/store/") && !line.contains("= -1")
        {
            // Contents are flushed while private (under `tmp/`), then moved in.
            let (from, to) = (
                line.split('"').nth(1).unwrap_or(""),
                line.split('"').nth(3).unwrap_or(""),
            );
            let was_synced = synced
                .iter()
                .any(|p| p == from || p.starts_with(&format!("{from}/")));
            if was_synced {
                synced.insert(to.to_string());
            }
        } else if line.contains("rename(") && line.contains("/v1/meta/") && !line.contains("= -1") {
            let target = line.split('"').nth(3).unwrap_or("");
            let hash = Path::new(target)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let contents = synced
                .iter()
                .any(|p| p.contains("/v1/store/") && p.contains(&format!("/{hash}-")));
            assert!(
                contents,
                "metadata {target} was committed before its contents were synced"
            );
            registered += 1;
        }
    }
    assert!(registered >= 6, "{registered} registrations seen");
    // With CMOD_FSYNC=0 (throwaway stores) nothing is flushed.
    let log = traced_realise(&s, &dir, &[("CMOD_FSYNC", "0".into())]);
    assert!(
        !log.contains("fsync("),
        "{}",
        log.lines()
            .filter(|l| l.contains("fsync"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let _ = cmod_env;
}

/// Sandbox views are kept only by small realisations (an edit), never by a build of many
/// steps: keeping every step's view would store steps × inputs entries.
#[test]
fn only_small_realisations_keep_their_sandbox_views() {
    let s = Sandbox::new();
    let mut files: Vec<(String, String)> = vec![
        (
            "cmod.toml".into(),
            "[package]\nname = \"p\"\nversion = \"0.1.0\"\n[lib]\nsources = [\"src/*.cpp\"]\n[[bin]]\nname = \"p\"\nmain = \"main.cpp\"\n".into(),
        ),
        ("main.cpp".into(), "int f0();\nint main() { return f0(); }\n".into()),
    ];
    for i in 0..20 {
        files.push((
            format!("src/f{i}.cpp"),
            format!("int f{i}() {{ return 0; }}\n"),
        ));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = s.project("many", &refs);
    let views = s.store().join("v1/views");
    let slots = || {
        std::fs::read_dir(&views)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".lock")
                })
                .count()
            })
            .unwrap_or(0)
    };
    let r = s.realise(&dir, &[]).ok();
    assert!(r.built().len() > 16, "{:?}", r.built());
    assert_eq!(slots(), 0, "a cold build of many steps keeps no view");
    std::fs::write(dir.join("src/f3.cpp"), "int f3() { return 3 - 3; }\n").unwrap();
    let r = s.realise(&dir, &[]).ok();
    assert!(r.built().len() <= 16, "{:?}", r.built());
    assert_eq!(
        slots(),
        r.built().len(),
        "each step of an edit keeps its view"
    );
}
