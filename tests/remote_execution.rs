//! `--remote-executor` with `cmod worker`s as BuildGrid's bots: a real BuildGrid (with
//! PostgreSQL) and two workers on loopback, each with its own directories. Remote outputs
//! are bit-identical to local ones; a step failing remotely shows its diagnostics; an
//! unreachable server is a clear error, or a local build with `--remote-fallback`.

mod common;
mod servers;

#[allow(dead_code)]
#[path = "../reapi/tests/support/buildgrid.rs"]
mod buildgrid;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use buildgrid::BuildGrid;
use common::{run, Realised, Sandbox};
use servers::cmod_env;

/// A `cmod worker` process, killed on drop; its stderr goes to `log`.
struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    fn start(url: &str, dir: &Path, id: &str) -> Worker {
        let log = dir.join(format!("{id}.log"));
        let work = dir.join(format!("{id} work"));
        let child = Command::new(env!("CARGO_BIN_EXE_cmod"))
            .args(["worker", "--server", url, "--id", id, "--work-dir"])
            .arg(&work)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let w = Worker { child, log };
        // Ready once its session is open.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !w.text().contains("serving") {
            assert!(
                Instant::now() < deadline,
                "worker did not start:\n{}",
                w.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        w
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn built(&self) -> usize {
        self.text()
            .lines()
            .filter(|l| l.trim_start().starts_with("Built "))
            .count()
    }

    /// Over every step it built: the store paths the actions shipped, and those it had
    /// kept from earlier actions (`(K of N input paths kept)`).
    fn inputs(&self) -> (usize, usize) {
        let mut total = (0, 0);
        for line in self.text().lines() {
            let Some(at) = line.rfind(" input paths kept)") else {
                continue;
            };
            let counts = &line[..at];
            let counts = &counts[counts.rfind('(').map_or(0, |i| i + 1)..];
            if let Some((kept, shipped)) = counts.split_once(" of ") {
                total.0 += shipped.parse::<usize>().unwrap();
                total.1 += kept.parse::<usize>().unwrap();
            }
        }
        total
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// BuildGrid with two workers.
struct Grid {
    grid: BuildGrid,
    workers: Vec<Worker>,
}

impl Grid {
    fn start() -> Grid {
        let grid = BuildGrid::start();
        let workers = ["worker-a", "worker-b"]
            .iter()
            .map(|id| Worker::start(grid.url(), grid.dir(), id))
            .collect();
        Grid { grid, workers }
    }

    fn built(&self) -> usize {
        self.workers.iter().map(Worker::built).sum()
    }
}

fn realise(dir: &Path, store: &Path, extra: &[&str]) -> Realised {
    let mut args = vec!["realise", "--message-format", "json", "--no-link"];
    args.extend_from_slice(extra);
    Realised::parse(cmod_env(dir, store, &args, &[]))
}

#[test]
fn every_step_runs_on_the_workers_and_the_outputs_are_bit_identical_to_local_ones() {
    let g = Grid::start();
    let s = Sandbox::new();
    let dir = s.copy_example("library");
    let store = s.store();
    let r = realise(&dir, &store, &["--remote-executor", g.grid.url()]).ok();
    let steps = r.built().len();
    assert!(steps >= 10, "{:?}", r.built());
    // Every step ran on a worker, and both workers took some.
    assert_eq!(
        g.built(),
        steps,
        "{}\n{}",
        g.workers[0].text(),
        g.workers[1].text()
    );
    assert!(
        g.workers.iter().all(|w| w.built() > 0),
        "{}\n{}",
        g.workers[0].text(),
        g.workers[1].text()
    );
    // Later steps on a worker find most of their inputs kept from earlier ones.
    let (shipped, kept): (usize, usize) = g
        .workers
        .iter()
        .map(Worker::inputs)
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert!(
        kept > 0 && kept < shipped,
        "{kept} of {shipped}\n{}\n{}",
        g.workers[0].text(),
        g.workers[1].text()
    );
    let program = r.target("shapes");
    let shown = run(&program, &[]);
    assert!(!shown.is_empty());
    // Rebuilt here, in the local sandbox: bit for bit the same.
    let check = realise(&dir, &store, &["--check"]).ok();
    assert_eq!(check.finished()["checked"], steps, "{}", check.stderr());
    assert_eq!(check.finished()["differing"], 0, "{}", check.stderr());
    // The metadata says how the remote worker confined the builder.
    let info = cmod_env(
        &dir,
        &store,
        &["path-info", "--json", program.to_str().unwrap()],
        &[],
    );
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("\"sandbox\": \"full\""), "{text}");
}

/// Every example (but `with-deps`, whose git dependencies another test sets up) built on
/// the workers, then rebuilt here bit for bit the same.
#[test]
fn every_example_builds_remotely_bit_identically() {
    let g = Grid::start();
    let s = Sandbox::new();
    let packages = [
        "hello",
        "library",
        "multi-lib",
        "path-deps/app",
        "workspace",
        "visibility/game",
        "pch",
        "threads",
        "c-mix",
        "zlib",
    ];
    let mut steps = 0;
    for package in packages {
        let example = package.split('/').next().unwrap();
        s.copy_example(example);
        let dir = s.dir.path().join(package);
        let store = s.dir.path().join(format!("store-{example}"));
        let r = realise(&dir, &store, &["--remote-executor", g.grid.url()]).ok();
        assert!(!r.built().is_empty(), "{package}");
        steps += r.built().len();
        let check = realise(&dir, &store, &["--check"]).ok();
        assert_eq!(
            check.finished()["checked"],
            r.built().len(),
            "{package}: {}",
            check.stderr()
        );
        assert_eq!(
            check.finished()["differing"],
            0,
            "{package}: {}",
            check.stderr()
        );
    }
    assert_eq!(
        g.built(),
        steps,
        "{}\n{}",
        g.workers[0].text(),
        g.workers[1].text()
    );
}

#[test]
fn a_step_failing_remotely_shows_its_diagnostics_like_a_local_one() {
    let g = Grid::start();
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let main = dir.join("src/main.cpp");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(
        &main,
        text.replace("int main", "int main_oops_undeclared_type x;\nint main"),
    )
    .unwrap();
    let out = cmod_env(
        &dir,
        &s.store(),
        &["realise", "--no-link", "--remote-executor", g.grid.url()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error:"), "{err}");
    assert!(err.contains("main_oops_undeclared_type"), "{err}");
    assert!(err.contains("src/main.cpp"), "{err}");
    assert!(err.contains("on a remote worker"), "{err}");
}

/// A step that takes a few seconds to compile (constant evaluation), beside a quick one.
const SLOW: &[(&str, &str)] = &[
    (
        "cmod.toml",
        "[package]\nname = \"slowpoke\"\nversion = \"0.1.0\"\n[toolchain]\ncompiler = \"clang++-19\"\n\
         [build]\ncxxflags = [\"-fconstexpr-steps=2147483647\"]\n\
         [[bin]]\nname = \"slowpoke\"\nmain = \"main.cpp\"\nsources = [\"slow.cpp\"]\n",
    ),
    (
        "slow.cpp",
        "constexpr long spin(long n) { long s = 0; for (long i = 0; i < n; ++i) s += i % 7; return s; }\n\
         static_assert(spin(2500000) > 0);\nint slow() { return 41; }\n",
    ),
    (
        "main.cpp",
        "#include <cstdio>\nint slow();\nint main() { std::printf(\"%d\\n\", slow() + 1); }\n",
    ),
];

/// Which worker lays out the slow step now (its work directory holds `slow.cpp`).
fn busy_with_slow_step(g: &Grid) -> Option<usize> {
    g.workers.iter().position(|w| {
        let work = w.log.with_file_name(format!(
            "{} work",
            w.log.file_stem().unwrap().to_string_lossy()
        ));
        walk_has(&work, "slow.cpp")
    })
}

fn walk_has(dir: &Path, suffix: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        p.to_string_lossy().ends_with(suffix)
            || (p.is_dir() && !p.is_symlink() && walk_has(&p, suffix))
    })
}

#[test]
fn a_worker_killed_mid_lease_is_replaced_by_another_and_the_build_succeeds() {
    let mut g = Grid::start();
    let s = Sandbox::new();
    let dir = s.project("slowpoke", SLOW);
    let build = Command::new(env!("CARGO_BIN_EXE_cmod"))
        .arg("--store")
        .arg(s.store())
        .args([
            "realise",
            "--message-format",
            "json",
            "--no-link",
            "--remote-executor",
            g.grid.url(),
        ])
        .current_dir(&dir)
        .env("CMOD_CONFIG", dir.join("no-user-config.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the worker that took the slow step, while it runs it.
    let deadline = Instant::now() + Duration::from_secs(120);
    let victim = loop {
        if let Some(i) = busy_with_slow_step(&g) {
            break i;
        }
        assert!(Instant::now() < deadline, "no worker took the slow step");
        std::thread::sleep(Duration::from_millis(20));
    };
    let killed = g.workers.remove(victim);
    drop(killed);
    let r = Realised::parse(build.wait_with_output().unwrap()).ok();
    assert_eq!(run(&r.target("slowpoke"), &[]).trim(), "42");
    // The survivor built the slow step after the server gave the killed worker up.
    let survivor = &g.workers[0];
    assert!(
        survivor
            .text()
            .lines()
            .any(|l| l.contains("Built") && l.contains("slow.cpp.o")),
        "{}",
        survivor.text()
    );
}

/// A step whose host file differs from the worker's copy is refused by the worker (the
/// execution ends with FAILED_PRECONDITION and the reason), never built.
#[test]
fn a_worker_refuses_a_step_it_cannot_run_identically() {
    use cmod_reapi::proto::build::bazel::remote::execution::v2 as re;
    use cmod_reapi::{Blob, Digest, RootBuilder};
    use prost::Message;

    let g = Grid::start();
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let out = cmod_env(&dir, &s.store(), &["toolchain", "--json"], &[]);
    let toolchain: cmod_schema::toolchain::ToolchainInfo =
        serde_json::from_slice(&out.stdout).expect("toolchain --json");
    let mut drv: cmod_schema::derivation::Derivation = serde_json::from_value(serde_json::json!({
        "args": ["-c", "/dev/null", "-o", "out/x.o"], "env": {}, "inputs": [], "kind": "object",
        "name": "refused.o", "outputs": {"obj": {"at": "out/x.o", "name": "x.o"}},
        "tool": "c++", "toolchain": toolchain.identity, "version": 2,
    }))
    .unwrap();
    drv.host.insert(
        "/etc/hostname".into(),
        cmod_schema::ContentHash::of_file(false, b"not this machine's hostname\n"),
    );
    let mut root = RootBuilder::new();
    root.add_bytes(
        ".cmod/derivation.json",
        drv.canonical_bytes().unwrap(),
        false,
    )
    .unwrap();
    root.add_bytes(".cmod/modules.json", b"[]".to_vec(), false)
        .unwrap();
    let root = root.finish();
    let command = cmod_remote::action::command_of(&drv, &toolchain, "full").encode_to_vec();
    let action = re::Action {
        command_digest: Some(Digest::of_bytes(&command).to_proto()),
        input_root_digest: Some(root.root_digest().to_proto()),
        platform: Some(cmod_remote::action::platform(&toolchain.identity, "full")),
        ..Default::default()
    }
    .encode_to_vec();
    let client = g.grid.client();
    let mut blobs = root.blobs();
    blobs.push(Blob::from_bytes(command));
    blobs.push(Blob::from_bytes(action.clone()));
    client.upload(&blobs).unwrap();
    let response = client.execute(&Digest::of_bytes(&action), true).unwrap();
    let status = response.status.unwrap_or_default();
    assert_eq!(
        status.code,
        cmod_reapi::Code::FailedPrecondition as i32,
        "{status:?}"
    );
    assert!(
        status
            .message
            .contains("`/etc/hostname` is not the client's"),
        "{status:?}"
    );
    assert_eq!(g.built(), 0);
}

#[test]
fn an_unreachable_executor_is_a_clear_error_or_a_local_build_with_fallback() {
    let s = Sandbox::new();
    let dir = s.copy_example("hello");
    let url = common::unreachable_grpc_url();
    let out = cmod_env(
        &dir,
        &s.store(),
        &["realise", "--no-link", "--remote-executor", &url],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("remote executor `{url}` is unavailable")),
        "{err}"
    );
    assert!(err.contains("--remote-fallback"), "{err}");

    let r = realise(
        &dir,
        &s.store(),
        &["--remote-executor", &url, "--remote-fallback"],
    )
    .ok();
    assert_eq!(r.built().len(), 6);
    let err = r.stderr();
    assert_eq!(err.matches("building locally instead").count(), 1, "{err}");
}
