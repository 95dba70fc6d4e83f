//! `cmod test`: realise the selected members' `[[test]]` binaries, run each one in the
//! sandbox (`cmod_ops::test`, which says how), report pass or fail per test with a
//! summary, and exit 1 if any failed.

use std::path::PathBuf;
use std::time::Instant;

use cmod_evaluator::derive::TargetKind;
use cmod_ops::test::{TestOptions, TestRun, Verdict};
use serde_json::json;

use crate::cli::{Cli, TestArgs};
use crate::commands::build::{build_outputs, sandbox_mode};
use crate::diagnostic::CliError;
use crate::progress::Progress;
use crate::project::load_with_tests;

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
    let store = crate::project::open_store(cli)?;
    let progress = Progress::for_run(&args.run, store.store_dir());
    // Generators that run a program run first: the tests may import what they write.
    let settings = args.run.settings();
    let load = || load_with_tests(cli, &args.build);
    let project = cmod_ops::realise::load_with_generators(&settings, false, &progress, load)?;
    let selected = cmod_ops::test::select(&project, &args.tests)?;
    if selected.is_empty() {
        report_no_tests(args.run.message_format);
        return Ok(());
    }
    // Keep the test binaries alive (against a concurrent GC) until they have run.
    let _gc = project.store.gc_guard()?;
    crate::commands::realise::prepare_lock(&project, args.build.locked())?;
    let targets = project.targets_where(&selected, |t| t.kind == TargetKind::Test)?;
    progress.evaluated(
        &project.eval.packages.workspace_root,
        project.eval.stats.scan_time,
    );
    let outputs = build_outputs(&project, &targets, &args.run, &progress)?;
    let exes: Vec<PathBuf> = outputs.iter().map(|p| project.store.path_of(p)).collect();
    let tests = cmod_ops::test::binaries(&project, &selected, &exes)?;
    if args.no_run {
        for t in &tests {
            status!("{:>12} test `{}` ({})", "Built", t.name, t.exe.display());
        }
        return Ok(());
    }
    let opts = TestOptions {
        mode: sandbox_mode(&args.run, &progress)?.mode,
        limits: args.run.settings().limits(),
        args: args.args.clone(),
    };
    let json = progress.is_json();
    if !json {
        outln!(
            "\nrunning {} test{}",
            tests.len(),
            if tests.len() == 1 { "" } else { "s" }
        );
    }
    let started = Instant::now();
    let runs = cmod_ops::test::run_tests(&project, &targets, &tests, &opts, &mut |run| {
        report(&progress, run, args.show_output)
    })?;
    let failed: Vec<&str> = cmod_ops::test::failed(&runs)
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
    Ok(cmod_ops::test::verdict(&runs)?)
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
    let failed: Vec<&TestRun> = cmod_ops::test::failed(runs).collect();
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
