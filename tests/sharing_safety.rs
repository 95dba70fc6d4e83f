//! Sharing safely: untrusted or unsigned trace entries are ignored with a warning and
//! built locally; forged signatures and broken downloads are integrity errors (exit 3)
//! that name the source and the path and register nothing; a copy killed with SIGKILL
//! leaves no valid partial path and completes when retried; GC running during a
//! realise deletes nothing the build needs; and the health commands.

mod common;
mod servers;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{run, Realised, Sandbox};
use servers::{cmod_env, keypair, leftovers, ok, valid_paths, Nginx, TOKEN};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// hello realised in the sandbox's store, signed, and pushed to `url`.
fn pushed(s: &Sandbox, url: &str, env: &[(&str, &str)]) -> (PathBuf, String) {
    let dir = s.copy_example("hello");
    s.realise(&dir, &["--no-link"]).ok();
    let (sk, pk) = keypair(s.dir.path(), "good-1");
    ok(s.cmod(&dir, &["store", "sign", "--key-file", sk.to_str().unwrap()]));
    ok(cmod_env(&dir, &s.store(), &["copy", "--to", url], env));
    (dir, pk)
}

/// `cmod realise` (JSON messages, no link) of `dir` into `store`, substituting from `url`
/// and trusting `key`.
fn substituting(dir: &Path, store: &Path, url: &str, key: &str) -> Output {
    cmod_env(
        dir,
        store,
        &[
            "realise",
            "--message-format",
            "json",
            "--no-link",
            "--substituters",
            url,
            "--trusted-public-keys",
            key,
        ],
        &[],
    )
}

#[test]
fn untrusted_and_unsigned_traces_are_built_locally_with_a_warning() {
    let s = Sandbox::new();
    let cache = s.dir.path().join("cache");
    let url = format!("file://{}", cache.display());
    let (dir, good) = pushed(&s, &url, &[]);
    let (_, other) = keypair(s.dir.path(), "other-1");
    let realise = |store: &str, key: &str| substituting(&dir, &s.dir.path().join(store), &url, key);
    // Signed only by a key not trusted here: ignored with a warning (as Nix ignores
    // unsigned substitutes), and everything is built locally.
    let r = Realised::parse(realise("untrusted", &other)).ok();
    let err = r.stderr();
    assert_eq!(r.finished()["substituted"], 0, "{err}");
    assert_eq!(r.built().len(), 6, "{:?}", r.built());
    assert!(
        err.contains(&format!("1 build-trace entry from `{url}` was not used"))
            && err.contains("no signature by a trusted key (signed by: good-1)")
            && err.contains("that step is built here"),
        "{err}"
    );

    // Unsigned trace entries: the same.
    let traces: Vec<PathBuf> = std::fs::read_dir(cache.join("trace"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for p in &traces {
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        v["signatures"] = serde_json::json!([]);
        std::fs::write(p, serde_json::to_vec(&v).unwrap()).unwrap();
    }
    let r = Realised::parse(realise("unsigned", &good)).ok();
    assert_eq!(r.finished()["substituted"], 0, "{}", r.stderr());
    assert_eq!(r.built().len(), 6, "{:?}", r.built());
    assert!(r.stderr().contains("it is not signed"), "{}", r.stderr());
}

#[test]
fn forged_signatures_on_traces_and_paths_are_integrity_errors() {
    let s = Sandbox::new();
    let cache = s.dir.path().join("cache");
    let url = format!("file://{}", cache.display());
    let (dir, good) = pushed(&s, &url, &[]);
    let realise = |store: &str, key: &str| substituting(&dir, &s.dir.path().join(store), &url, key);
    let traces: Vec<PathBuf> = std::fs::read_dir(cache.join("trace"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let originals: Vec<Vec<u8>> = traces.iter().map(|p| std::fs::read(p).unwrap()).collect();
    // Forged: a trusted key's signature over outputs that were changed after signing.
    let some_output = std::fs::read_dir(cache.join("info"))
        .unwrap()
        .map(|e| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
            v["path"].as_str().unwrap().to_string()
        })
        .next()
        .unwrap();
    for p in &traces {
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        let outs = v["outputs"].as_object_mut().unwrap();
        let first = outs.keys().next().unwrap().clone();
        outs.insert(first, serde_json::json!(some_output));
        std::fs::write(p, serde_json::to_vec(&v).unwrap()).unwrap();
    }
    let out = realise("forged-trace", &good);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("from `{url}` is not trusted"))
            && err.contains("build-trace entry of")
            && err.contains("the signature by `good-1` does not verify"),
        "{err}"
    );
    let r = Realised::parse(out);
    assert!(r.built().is_empty());
    assert_eq!(r.finished()["success"], false);
    let fresh = s.dir.path().join("forged-trace");
    assert!(valid_paths(&fresh).iter().all(|p| {
        // Only derivations and sources written by the realise itself.
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fresh.join("v1/meta").join(p)).unwrap()).unwrap();
        meta["kind"] != "output"
    }));
    for (p, o) in traces.iter().zip(&originals) {
        std::fs::write(p, o).unwrap();
    }

    // Only on explicit request are unsigned (here: untrusted) substitutes accepted.
    let lax = s.dir.path().join("lax");
    let out = cmod_env(
        &dir,
        &lax,
        &[
            "realise",
            "--message-format",
            "json",
            "--no-link",
            "--substituters",
            &url,
            "--no-require-sigs",
        ],
        &[],
    );
    let r = Realised::parse(out).ok();
    assert!(r.built().is_empty(), "{:?}", r.built());
    assert_eq!(r.finished()["substituted"], 6);

    // Forge: change an output path's metadata after signing (its size).
    let info_dir = cache.join("info");
    let mut forged = false;
    for e in std::fs::read_dir(&info_dir).unwrap() {
        let p = e.unwrap().path();
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        if v["path"].as_str().unwrap().ends_with("-hello-0.1.0-hello") {
            v["size"] = serde_json::json!(v["size"].as_u64().unwrap() + 1);
            std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
            forged = true;
        }
    }
    assert!(forged);
    let out = realise("forged-path", &good);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("-hello-0.1.0-hello` from `file://"), "{err}");
    assert!(
        err.contains("the signature by `good-1` does not verify"),
        "{err}"
    );
}

#[test]
fn truncated_http_downloads_and_corrupt_archives_register_nothing() {
    let s = Sandbox::new();
    let nginx = Nginx::start(&s.dir.path().join("nginx"));
    let url = nginx.url("c");
    let (dir, pk) = pushed(&s, &url, &[("CMOD_CACHE_TOKEN", TOKEN)]);
    // Truncate the biggest archive on the server.
    let nar_dir = nginx.root.join("c/nar");
    let biggest = std::fs::read_dir(&nar_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let bytes = std::fs::read(&biggest).unwrap();
    std::fs::write(&biggest, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let fresh = s.dir.path().join("fresh");
    let out = cmod_env(
        &dir,
        &fresh,
        &["copy", "--from", &url, "--trusted-public-keys", &pk],
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains(&format!("from `{url}` was refused")), "{err}");
    assert!(
        err.contains("corrupt or truncated") || err.contains("the archive has"),
        "{err}"
    );
    ok(cmod_env(&dir, &fresh, &["store", "verify"], &[]));
    // The truncated path is not valid, nor anything that refers to it, and no partial
    // contents or temporaries are left.
    let archive = format!("nar/{}", biggest.file_name().unwrap().to_string_lossy());
    let truncated: String = std::fs::read_dir(nginx.root.join("c/info"))
        .unwrap()
        .filter_map(|e| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).ok()?;
            (v["archive"]["file"] == archive.as_str())
                .then(|| v["path"].as_str().unwrap().to_string())
        })
        .next()
        .expect("the truncated archive's metadata");
    let hash = truncated.split('-').next().unwrap();
    let valid = valid_paths(&fresh);
    assert!(
        !valid.contains(&format!("{hash}.json")),
        "{truncated} became valid: {valid:?}"
    );
    let leftover_tmp: Vec<String> = leftovers(&fresh)
        .into_iter()
        .filter(|l| l.starts_with("v1/tmp"))
        .collect();
    assert!(leftover_tmp.is_empty(), "{leftover_tmp:?}");

    // A corrupted (not truncated) archive through file://.
    let cache = s.dir.path().join("fc");
    let furl = format!("file://{}", cache.display());
    ok(cmod_env(&dir, &s.store(), &["copy", "--to", &furl], &[]));
    for e in std::fs::read_dir(cache.join("nar")).unwrap() {
        let p = e.unwrap().path();
        let mut b = std::fs::read(&p).unwrap();
        let n = b.len();
        b[n / 2] ^= 0xaa;
        std::fs::write(&p, b).unwrap();
    }
    let fresh2 = s.dir.path().join("fresh2");
    let out = cmod_env(
        &dir,
        &fresh2,
        &["copy", "--from", &furl, "--trusted-public-keys", &pk],
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("was refused"), "{}", stderr(&out));
    // The same corrupt cache as a substituter: exit 3 naming the substituter and a path.
    let out = cmod_env(
        &dir,
        &s.dir.path().join("fresh3"),
        &[
            "realise",
            "--no-link",
            "--substituters",
            &furl,
            "--trusted-public-keys",
            &pk,
        ],
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("-hello-0.1.0-") && err.contains(&format!("` from `{furl}` was refused")),
        "{err}"
    );
    // Every archive is corrupt, so no output may have been registered (evaluating the
    // package stores its sources and derivations, which are not received).
    let outputs: Vec<String> = valid_paths(&fresh2)
        .into_iter()
        .filter(|m| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(fresh2.join("v1/meta").join(m)).unwrap())
                    .unwrap();
            v["kind"] == "output"
        })
        .collect();
    assert!(outputs.is_empty(), "{outputs:?}");
    assert!(leftovers(&fresh2).iter().all(|l| !l.starts_with("v1/tmp")));
}

/// Fill `dir` with `files` incompressible files of `size` bytes.
fn big_tree(dir: &Path, files: usize, size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for i in 0..files {
        let mut buf = Vec::with_capacity(size);
        while buf.len() < size {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.extend_from_slice(&x.to_le_bytes());
        }
        std::fs::write(dir.join(format!("f{i:03}")), &buf).unwrap();
    }
}

/// Spawn `cmod` and SIGKILL it as soon as `ready` holds (polled every millisecond).
fn kill_when(store: &Path, args: &[&str], ready: impl Fn() -> bool) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cmod"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env("CMOD_CONFIG", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if ready() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the copy neither finished nor got going in 60 s");
}

fn has_entry(dir: &Path, prefix: &str) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
        .unwrap_or(false)
}

#[test]
fn a_copy_killed_part_way_leaves_nothing_partial_and_completes_when_retried() {
    let s = Sandbox::new();
    let a = s.store();
    let tree = s.dir.path().join("big");
    big_tree(&tree, 12, 8 << 20);
    let added = ok(cmod_env(
        s.dir.path(),
        &a,
        &["store", "add", tree.to_str().unwrap()],
        &[],
    ));
    let path = added.trim().to_string();
    let (sk, pk) = keypair(s.dir.path(), "k-1");
    ok(cmod_env(
        s.dir.path(),
        &a,
        &["store", "sign", "--key-file", sk.to_str().unwrap(), &path],
        &[],
    ));

    // Killed while uploading: the cache never holds metadata without its archive.
    let cache = s.dir.path().join("cache");
    let url = format!("file://{}", cache.display());
    let packing = a.join("v1/tmp");
    let killed = kill_when(&a, &["copy", "--to", &url, &path], || {
        has_entry(&packing, "nar-")
    });
    assert!(killed, "the upload finished before it could be killed");
    assert!(
        !has_entry(&cache.join("info"), ""),
        "metadata was written before its archive"
    );
    ok(cmod_env(
        s.dir.path(),
        &a,
        &["copy", "--to", &url, &path],
        &[],
    ));

    // Killed while downloading: no valid partial path; the retry completes.
    let b = s.dir.path().join("b");
    let tmp = b.join("v1/tmp");
    let killed = kill_when(
        &b,
        &["copy", "--from", &url, "--trusted-public-keys", &pk, &path],
        || has_entry(&tmp, "recv-"),
    );
    assert!(killed, "the download finished before it could be killed");
    assert!(valid_paths(&b).is_empty(), "a partial path became valid");
    ok(cmod_env(s.dir.path(), &b, &["store", "verify"], &[]));
    let err = stderr(&cmod_env(
        s.dir.path(),
        &b,
        &["copy", "--from", &url, "--trusted-public-keys", &pk, &path],
        &[],
    ));
    assert!(err.contains("Copied 1 of 1 path(s)"), "{err}");
    ok(cmod_env(
        s.dir.path(),
        &b,
        &["store", "verify", "--check-contents"],
        &[],
    ));
    let name = Path::new(&path).file_name().unwrap().to_str().unwrap();
    let copied = b.join("v1/store").join(name);
    assert_eq!(
        std::fs::read(copied.join("f011")).unwrap(),
        std::fs::read(tree.join("f011")).unwrap()
    );
    // GC afterwards removes what the killed download left in tmp/.
    assert!(has_entry(&tmp, "recv-"), "the killed download left nothing");
    ok(cmod_env(s.dir.path(), &b, &["gc"], &[]));
    assert!(
        !has_entry(&tmp, "recv-"),
        "gc left the killed download's tree"
    );
    // And what the killed upload was packing.
    ok(cmod_env(s.dir.path(), &a, &["gc"], &[]));
    assert!(
        !has_entry(&packing, "nar-"),
        "gc left the killed upload's archive"
    );
}

/// The line `cmod` prints on stderr once a lock acquisition has blocked for a second.
const BLOCKING: &str = "Blocking waiting for file lock on";

/// Send `sig` to the child process `child`.
fn signal(child: &std::process::Child, sig: libc::c_int) {
    // SAFETY: `kill` on the pid of a child this test spawned and has not reaped yet.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

/// Spawn `cmod gc` on the sandbox's store and wait until it says it is blocked on a lock
/// (`Ok` with that line; gc is then still waiting) or its stderr ends without saying so
/// (`Err` with what it printed: it ran to the end without waiting).
fn gc_until_blocked(s: &Sandbox, dir: &Path) -> (std::process::Child, Result<String, String>) {
    let mut gc = Command::new(env!("CARGO_BIN_EXE_cmod"))
        .arg("--store")
        .arg(s.store())
        .arg("gc")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(gc.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    // Drains gc's stderr to the end, so gc never blocks on a full pipe.
    std::thread::spawn(move || {
        for l in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(l) if l.contains(BLOCKING) => return (gc, Ok(l)),
            Ok(l) => seen.push(l),
            Err(_) => return (gc, Err(seen.join("\n"))),
        }
    }
}

#[test]
fn gc_during_a_concurrent_realise_deletes_nothing_the_build_needs() {
    let s = Sandbox::new();
    // Garbage: an unrooted build.
    let hello = s.copy_example("hello");
    let garbage = s.realise(&hello, &["--no-link"]).ok().target("hello");
    let dir = s.copy_example("library");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cmod"))
        .arg("--store")
        .arg(s.store())
        .args(["realise", "--message-format", "json", "-j", "1"])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // Hold the realise at a known point: stopped right after its first built step, with
    // the GC lock held (shared) and the rest of the build still to do.
    let mut seen = Vec::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        let built = l.contains("\"reason\":\"built\"");
        seen.push(l);
        if built {
            break;
        }
    }
    signal(&child, libc::SIGSTOP);
    // gc cannot get the GC lock while the realise holds it: it blocks, says so naming
    // the realise as the holder, and is still running when the realise goes on.
    let (mut gc, blocked) = gc_until_blocked(&s, &dir);
    let gc_exited = gc.try_wait().unwrap();
    signal(&child, libc::SIGCONT);
    let gc_out = gc.wait_with_output().unwrap();
    let blocked = blocked.unwrap_or_else(|printed| {
        panic!("gc ran to the end while the stopped realise held the GC lock:\n{printed}")
    });
    assert_eq!(
        gc_exited, None,
        "gc finished while the realise held the GC lock"
    );
    assert!(blocked.contains("the store's GC lock"), "{blocked}");
    assert!(
        blocked.contains(&format!("held by process {} (", child.id())),
        "gc waits for the realise: {blocked}"
    );
    seen.extend(lines.map(|l| l.unwrap()));
    let status = child.wait().unwrap();
    assert!(status.success(), "{seen:?}");
    let finished: serde_json::Value = serde_json::from_str(seen.last().unwrap()).unwrap();
    assert_eq!(finished["success"], true);
    assert_eq!(finished["built"], 14, "{finished}");
    // GC ran once the realise was done (it deleted the unrooted build) without touching
    // what the realise built or used.
    let gc_out = ok(gc_out);
    assert!(gc_out.contains(&garbage.display().to_string()), "{gc_out}");
    assert!(!garbage.exists());
    let again = s.realise(&dir, &[]).ok();
    assert!(again.built().is_empty(), "{:?}", again.built());
    let out = run(&dir.join("result"), &[]);
    assert!(!out.is_empty());
    ok(s.cmod(&dir, &["store", "verify"]));
}

#[test]
fn health_commands_why_depends_path_info_closure_sizes_and_gc_flags() {
    let s = Sandbox::new();
    let a = s.store();
    let t = s.dir.path();
    // Two source trees, the second referring to the first by its store path.
    std::fs::create_dir_all(t.join("dep")).unwrap();
    std::fs::write(t.join("dep/data"), vec![b'x'; 1000]).unwrap();
    let dep = ok(cmod_env(
        t,
        &a,
        &["store", "add", t.join("dep").to_str().unwrap()],
        &[],
    ));
    let dep = dep.trim();
    let dep_name = Path::new(dep).file_name().unwrap().to_str().unwrap();
    // Sources have no references; build a chain with a realise instead: the hello
    // binary is static, so use why-depends on the derivation files, which refer to
    // their inputs.
    let dir = s.copy_example("hello");
    s.realise(&dir, &["--no-link"]).ok();
    let drvs: serde_json::Value =
        serde_json::from_str(&ok(s.cmod(&dir, &["eval", "--json"]))).unwrap();
    let link_drv = drvs
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.ends_with("-hello-0.1.0-hello.drv"))
        .unwrap()
        .clone();
    let main_src = drvs.as_object().unwrap().values().find_map(|d| {
        d["inputs"].as_array()?.iter().find_map(|i| {
            let p = i["from"]["path"].as_str()?;
            p.ends_with("-main.cpp").then(|| p.to_string())
        })
    });
    let main_src = main_src.expect("a main.cpp source input");
    let why = ok(s.cmod(&dir, &["why-depends", &link_drv, &main_src]));
    let lines: Vec<&str> = why.lines().collect();
    assert!(lines[0].ends_with("-hello-0.1.0-hello.drv"), "{why}");
    assert!(
        lines.last().unwrap().contains(&main_src[..32])
            || lines.last().unwrap().contains("-main.cpp"),
        "{why}"
    );
    assert!(why.contains("at byte"), "where the reference occurs: {why}");
    assert!(lines.len() >= 3, "link → object derivation → source: {why}");
    let not = ok(s.cmod(&dir, &["why-depends", dep_name, &link_drv]));
    assert!(not.contains("does not depend on"), "{not}");

    // -S: closure sizes; the link derivation's closure includes every input.
    let sizes = ok(s.cmod(&dir, &["path-info", "-s", "-S", &link_drv]));
    let cols: Vec<&str> = sizes.trim().split('\t').collect();
    assert_eq!(cols.len(), 3, "{sizes}");
    let (own, closure): (u64, u64) = (cols[1].parse().unwrap(), cols[2].parse().unwrap());
    assert!(closure > own, "{sizes}");
    let json: serde_json::Value = serde_json::from_str(&ok(
        s.cmod(&dir, &["path-info", "-S", "--json", "-r", &link_drv])
    ))
    .unwrap();
    assert!(json.as_array().unwrap().len() > 5);
    assert!(json[0]["closure_size"].as_u64().is_some());

    // gc --print-dead lists without deleting; --max-freed stops early.
    let dead = ok(s.cmod(&dir, &["gc", "--print-dead"]));
    assert!(dead.lines().any(|l| l.ends_with(dep_name)), "{dead}");
    assert!(Path::new(dep).exists());
    let (code, err) = common::failure(&s.cmod(&dir, &["gc", "--max-freed", "12Q"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`12Q` is not a size"), "{err}");
    let out = s.cmod(&dir, &["gc", "--max-freed", "1K"]);
    let freed_some = ok(out);
    assert!(!freed_some.is_empty());
    let remaining = ok(s.cmod(&dir, &["gc", "--print-dead"]));
    assert!(
        !remaining.is_empty(),
        "--max-freed 1K stops after about 1 KiB"
    );
    // A symlink placed in gcroots/ by hand is a root too.
    let manual_root = a.join("v1/gcroots/kept-by-hand");
    std::os::unix::fs::symlink(dep, &manual_root).unwrap();
    let roots = ok(s.cmod(&dir, &["gc", "--print-roots"]));
    assert!(
        roots.contains("kept-by-hand") && roots.contains(dep_name),
        "{roots}"
    );
    ok(s.cmod(&dir, &["gc"]));
    assert!(ok(s.cmod(&dir, &["gc", "--print-dead"])).is_empty());
    assert!(
        Path::new(dep).exists(),
        "gc deleted a path rooted in gcroots/"
    );
    std::fs::remove_file(&manual_root).unwrap();
    let dead = ok(s.cmod(&dir, &["gc", "--print-dead"]));
    assert!(dead.lines().any(|l| l.ends_with(dep_name)), "{dead}");

    // store verify --check-contents reports a modified file: an integrity failure.
    let r = s.realise(&dir, &[]).ok();
    let exe = r.target("hello");
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(&exe, b"modified").unwrap();
    let out = s.cmod(&dir, &["store", "verify", "--check-contents"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("corrupt: {}", exe.display())),
        "{}",
        stderr(&out)
    );
}

/// Scan entries are an optimisation: unsigned ones are ignored with a warning (the units
/// are scanned here and the build still substitutes), forged ones are an integrity error.
#[test]
fn unsigned_scan_entries_are_ignored_and_forged_ones_refused() {
    let s = Sandbox::new();
    let cache = s.dir.path().join("cache");
    let url = format!("file://{}", cache.display());
    let (dir, pk) = pushed(&s, &url, &[]);
    let scans: Vec<PathBuf> = std::fs::read_dir(cache.join("scan"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(scans.len(), 3, "one scan entry per unit of hello");
    // What cmod publishes conforms to the published schema.
    let schema_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/schemas/scan-entry.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for p in &scans {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", p.display());
        assert_eq!(v["signatures"].as_array().map(Vec::len), Some(1), "{v}");
    }
    let realise = |store: &str| {
        cmod_env(
            &dir,
            &s.dir.path().join(store),
            &[
                "realise",
                "--message-format",
                "json",
                "--no-link",
                "--substituters",
                &url,
                "--trusted-public-keys",
                &pk,
            ],
            &[],
        )
    };
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        for p in &scans {
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            f(&mut v);
            std::fs::write(p, serde_json::to_vec(&v).unwrap()).unwrap();
        }
    };
    // Forged: a signed result changed after signing (it claims another import).
    let originals: Vec<Vec<u8>> = scans.iter().map(|p| std::fs::read(p).unwrap()).collect();
    edit(&|v| {
        v["result"]["requires"] = serde_json::json!(["evil"]);
    });
    let out = realise("forged");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("scan/") && err.contains("the scan entry's signature is invalid"),
        "{err}"
    );
    assert!(err.contains("does not verify"), "{err}");
    // Unsigned: not used; the units are scanned locally and the outputs substituted.
    for (p, o) in scans.iter().zip(&originals) {
        std::fs::write(p, o).unwrap();
    }
    edit(&|v| {
        v.as_object_mut().unwrap().remove("signatures");
    });
    let r = common::Realised::parse(realise("unsigned")).ok();
    assert!(r.built().is_empty(), "{:?}", r.built());
    assert_eq!(r.finished()["substituted"], 6);
    assert_eq!(r.finished()["scanned"], 3);
    assert_eq!(r.finished()["scans_substituted"], 0);
    assert!(
        r.stderr().contains("3 scan result(s)") && r.stderr().contains("it is not signed"),
        "{}",
        r.stderr()
    );
}

/// Metadata from a newer cmod is refused with a sentence that says so (and what to do),
/// and nothing from it is registered.
#[test]
fn metadata_of_a_newer_format_is_refused_in_plain_words() {
    let s = Sandbox::new();
    let cache = s.dir.path().join("cache");
    let url = format!("file://{}", cache.display());
    let (dir, good) = pushed(&s, &url, &[]);
    for e in std::fs::read_dir(cache.join("info")).unwrap() {
        let p = e.unwrap().path();
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        v["version"] = serde_json::json!(99);
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    }
    let store = s.dir.path().join("newer");
    let out = substituting(&dir, &store, &url, &good);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("its metadata cannot be used: it has format version 99, newer than this cmod understands"),
        "{err}"
    );
    assert!(err.contains("upgrade cmod"), "{err}");
    let r = Realised::parse(out);
    assert_eq!(r.finished()["substituted"], 0, "{}", r.stderr());
}
