//! `cmod test`: realise the selected members' `[[test]]` binaries, run each one in the
//! sandbox, report pass or fail per test with a summary, and exit 1 if any failed.
//!
//! A test runs in the sandbox mode of the build (`--sandbox`, default `full`): a fresh,
//! private, writable working directory; the fixed sandbox environment (nothing inherited)
//! plus `CMOD_PACKAGE_DIR` (the package's directory, visible read-only, for fixture files)
//! and `CMOD_TEST_NAME`; in the full sandbox no network, a private writable `/tmp`, and no
//! view of the host beyond the toolchain and its runtime libraries. A test passes when it exits with status 0. Its combined stdout and stderr
//! are captured and printed when it fails (or always, with `--show-output`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cmod_evaluator::derive::{Target, TargetKind};
use cmod_sandbox::{Action, ExitKind, Mode, SandboxError};
use serde_json::json;

use crate::cli::{Cli, TestArgs};
use crate::commands::build::{build_outputs, sandbox_mode};
use crate::diagnostic::CliError;
use crate::progress::Progress;
use crate::project::{load_with_tests, Project};

/// How one test ended.
enum Verdict {
    Passed,
    Failed(String),
}

/// One test that ran.
struct TestRun {
    name: String,
    verdict: Verdict,
    output: String,
    elapsed: Duration,
}

/// Nothing to run is a success (as Cargo's `running 0 tests`), said plainly.
fn report_no_tests(format: crate::cli::MessageFormat) {
    err!(
        "{}",
        crate::diagnostic::render_diagnostic(
            "note",
            "the selected package(s) have no [[test]] targets: nothing to run",
            None,
            Some("add one with a `[[test]]` table holding `name` and `main`"),
        )
    );
    if format == crate::cli::MessageFormat::Json {
        outln!(
            "{}",
            json!({"reason": "test-summary", "success": true, "passed": 0, "failed": []})
        );
    } else {
        outln!("\ntest result: ok. 0 passed; 0 failed\n");
    }
}

pub fn test(cli: &Cli, args: &TestArgs) -> Result<(), CliError> {
    let project = load_with_tests(cli, &args.build)?;
    let selected = select(&project, &args.tests)?;
    if selected.is_empty() {
        report_no_tests(args.run.message_format);
        return Ok(());
    }
    // Keep the test binaries alive (against a concurrent GC) until they have run.
    let _gc = project.store.gc_guard()?;
    crate::commands::realise::prepare_lock(&project, args.build.locked())?;
    let targets = project.targets_where(&selected, |t| t.kind == TargetKind::Test)?;
    let progress = Progress::for_run(&args.run, project.store.store_dir());
    progress.evaluated(
        &project.eval.packages.workspace_root,
        project.eval.stats.scan_time,
    );
    let outputs = build_outputs(&project, &targets, &args.run, &progress)?;
    let names = Project::display_names(&selected);
    let exes: Vec<PathBuf> = outputs.iter().map(|p| project.store.path_of(p)).collect();
    if exes.len() != targets.len() {
        return Err(CliError::Internal(
            "a test binary has no realised output".into(),
        ));
    }
    if args.no_run {
        for (name, exe) in names.iter().zip(&exes) {
            status!("{:>12} test `{name}` ({})", "Built", exe.display());
        }
        return Ok(());
    }
    let mode = sandbox_mode(&args.run, &progress)?.mode;
    let json = progress.is_json();
    if !json {
        outln!(
            "\nrunning {} test{}",
            targets.len(),
            if targets.len() == 1 { "" } else { "s" }
        );
    }
    let started = Instant::now();
    let system_runtime = system_runtime(&project, &targets)?;
    let mut runs = Vec::new();
    for ((name, exe), (package, _)) in names.iter().zip(&exes).zip(&selected) {
        let root = package_root(&project, package)?;
        let run = run_one(&project, mode, args, name, exe, &root, &system_runtime)?;
        report(&progress, &run, args.show_output);
        runs.push(run);
    }
    let failed: Vec<&str> = runs
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Failed(_)))
        .map(|r| r.name.as_str())
        .collect();
    let passed = runs.len() - failed.len();
    if json {
        progress.json_line(json!({
            "reason": "test-summary",
            "success": failed.is_empty(),
            "passed": passed,
            "failed": failed,
        }));
    } else {
        print_failures(&runs);
        outln!(
            "\ntest result: {}. {passed} passed; {} failed; finished in {:.2}s\n",
            if failed.is_empty() { "ok" } else { "FAILED" },
            failed.len(),
            started.elapsed().as_secs_f64()
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::TestsFailed {
            message: format!(
                "{} of {} test{} failed: {}",
                failed.len(),
                runs.len(),
                if runs.len() == 1 { "" } else { "s" },
                failed.join(", ")
            ),
        })
    }
}

/// The tests named on the command line as (package, test), or every test of the selected
/// members. A name is a test's name or `member/name`.
fn select(project: &Project, names: &[String]) -> Result<Vec<(String, String)>, CliError> {
    let all = project.eval.test_names();
    if names.is_empty() {
        return Ok(all);
    }
    let mut out = Vec::new();
    for n in names {
        let found: Vec<&(String, String)> = all
            .iter()
            .filter(|(p, t)| match n.split_once('/') {
                Some((pkg, test)) => p == pkg && t == test,
                None => t == n,
            })
            .collect();
        match found.as_slice() {
            [one] => {
                if !out.contains(*one) {
                    out.push((*one).clone());
                }
            }
            [] => {
                let known: Vec<String> = all.iter().map(|(p, t)| format!("{p}/{t}")).collect();
                return Err(CliError::usage(
                    format!("no test named `{n}`"),
                    Some(if known.is_empty() {
                        "the selected packages have no [[test]] targets".into()
                    } else {
                        format!("the tests are: {}", known.join(", "))
                    }),
                ));
            }
            many => {
                let options: Vec<String> = many.iter().map(|(p, t)| format!("{p}/{t}")).collect();
                return Err(CliError::usage(
                    format!("`{n}` names several tests"),
                    Some(format!("say which: {}", options.join(", "))),
                ));
            }
        }
    }
    Ok(out)
}

/// What the dynamic loader opens for the system libraries the tests link (their soname
/// links, canonical files and what they need in turn), beyond the toolchain's own
/// runtime: a trivial program is linked with the same link words (the libraries whose
/// files the tests' links read) and the loader asked (see `runtime_closure`).
fn system_runtime(project: &Project, targets: &[Target]) -> Result<Vec<PathBuf>, CliError> {
    let derived = project.derived()?;
    let read: Vec<&String> = targets
        .iter()
        .filter_map(|t| derived.derivations.get(&t.drv))
        .flat_map(|d| d.host.keys())
        .collect();
    let mut words: Vec<String> = Vec::new();
    for lib in project.eval.settings.all_system_libs() {
        if lib.files.keys().any(|f| read.contains(&f)) {
            for w in &lib.libs {
                if !words.contains(w) {
                    words.push(w.clone());
                }
            }
        }
    }
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let toolchain = &project.eval.toolchain;
    Ok(cmod_evaluator::toolchain::runtime_closure(
        &toolchain.cxx,
        toolchain.stdlib,
        &words,
    )?)
}

fn package_root(project: &Project, name: &str) -> Result<PathBuf, CliError> {
    project
        .eval
        .packages
        .packages
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.root.clone())
        .ok_or_else(|| CliError::Internal(format!("package `{name}` is not in the graph")))
}

/// Run test binary `exe` in the sandbox, in a fresh working directory.
fn run_one(
    project: &Project,
    mode: Mode,
    args: &TestArgs,
    name: &str,
    exe: &Path,
    package_dir: &Path,
    system_runtime: &[PathBuf],
) -> Result<TestRun, CliError> {
    let dir = project.store.temp_path("test");
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::io("creating the test's directory", &dir, e))?;
    let log = dir.with_extension("log");
    // The build closure, plus what the dynamic loader opens to start the binary (libc++'s
    // soname links, for one, are not in the build closure), the binary and the package.
    let toolchain = &project.eval.toolchain;
    let mut visible = toolchain.closure.clone();
    visible.extend(toolchain.runtime.iter().cloned());
    visible.extend(system_runtime.iter().cloned());
    visible.push(exe.to_path_buf());
    visible.push(package_dir.to_path_buf());
    let action = Action {
        program: exe.to_path_buf(),
        args: args.args.clone(),
        env: vec![
            (
                "CMOD_PACKAGE_DIR".into(),
                package_dir.to_string_lossy().into_owned(),
            ),
            ("CMOD_TEST_NAME".into(), name.to_string()),
        ],
        build_dir: dir.clone(),
        store_dir: project.store.store_dir(),
        inputs: vec![],
        links: vec![],
        toolchain: visible,
        outputs: vec![],
        log_path: log.clone(),
        limits: args.run.settings().limits(),

        view_slot: None,
    };
    let started = Instant::now();
    let outcome = cmod_sandbox::run(mode, &action);
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_dir_all(&dir);
    let verdict = match outcome {
        Ok(o) if o.exit.success() => Verdict::Passed,
        Ok(o) => Verdict::Failed(match o.exit {
            ExitKind::Code(c) => format!("exit code {c}"),
            ExitKind::Signal(s) => format!("killed by signal {s}"),
        }),
        Err(e @ (SandboxError::TimeLimit { .. } | SandboxError::OutputLimit { .. })) => {
            Verdict::Failed(e.to_string().replacen("the builder", "the test", 1))
        }
        Err(e) => {
            return Err(CliError::Sandbox {
                message: format!("cannot run test `{name}`: {e}"),
                help: e.remedy().map(str::to_string),
            })
        }
    };
    Ok(TestRun {
        name: name.to_string(),
        verdict,
        output,
        elapsed: started.elapsed(),
    })
}

fn report(progress: &Progress, run: &TestRun, show_output: bool) {
    let (ok, why) = match &run.verdict {
        Verdict::Passed => (true, None),
        Verdict::Failed(why) => (false, Some(why.as_str())),
    };
    if progress.is_json() {
        progress.json_line(json!({
            "reason": "test",
            "name": run.name,
            "success": ok,
            "failure": why,
            "seconds": run.elapsed.as_secs_f64(),
            "output": run.output,
        }));
        return;
    }
    match why {
        None => outln!("test {} ... ok", run.name),
        Some(why) => outln!("test {} ... FAILED ({why})", run.name),
    }
    if ok && show_output && !run.output.is_empty() {
        outln!("---- {} output ----\n{}", run.name, run.output.trim_end());
    }
}

fn print_failures(runs: &[TestRun]) {
    let failed: Vec<&TestRun> = runs
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Failed(_)))
        .collect();
    if failed.is_empty() {
        return;
    }
    outln!("\nfailures:");
    for r in &failed {
        let output = if r.output.trim().is_empty() {
            "(no output)"
        } else {
            r.output.trim_end()
        };
        outln!("\n---- {} output ----\n{output}", r.name);
    }
    outln!("\nfailures:");
    for r in &failed {
        outln!("    {}", r.name);
    }
}
