//! Running a package's `[[test]]` binaries, as `cmod test` does once they are realised:
//! which tests a list of names selects, and each test run in the sandbox.
//!
//! A test runs in the sandbox mode of the build: a fresh, private, writable working
//! directory; the fixed sandbox environment (nothing inherited) plus `CMOD_PACKAGE_DIR`
//! (the package's directory, visible read-only, for fixture files) and `CMOD_TEST_NAME`;
//! in the full sandbox no network, a private writable `/tmp`, and no view of the host
//! beyond the toolchain, its runtime libraries and those of the system libraries the tests
//! link. A test passes when it exits with status 0; its combined stdout and stderr are
//! captured.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cmod_evaluator::derive::Target;
use cmod_sandbox::{Action, ExitKind, Limits, Mode, SandboxError};

use crate::{OpsError, Project};

/// How one test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It exited with status 0.
    Passed,
    /// How it failed (`exit code 1`, `killed by signal 6`, a limit it hit).
    Failed(String),
}

/// One test that ran.
#[derive(Debug, Clone)]
pub struct TestRun {
    /// The test's name as shown.
    pub name: String,
    /// How it ended.
    pub verdict: Verdict,
    /// Its combined stdout and stderr.
    pub output: String,
    /// How long it ran.
    pub elapsed: Duration,
}

/// A test to run: its name as shown, its realised binary and its package's directory.
#[derive(Debug, Clone)]
pub struct TestBinary {
    /// The name as shown.
    pub name: String,
    /// The test binary in the store.
    pub exe: PathBuf,
    /// The directory of the package that declares it.
    pub package_dir: PathBuf,
}

/// How tests run: the sandbox mode, the limits of each, and the arguments each gets.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// The sandbox mode (probed already).
    pub mode: Mode,
    /// Each test's time and output limits.
    pub limits: Limits,
    /// Arguments passed to every test binary.
    pub args: Vec<String>,
}

/// The tests `names` select as (package, test), or every test of the selected members
/// when there are none. A name is a test's name or `member/name`.
pub fn select(project: &Project, names: &[String]) -> Result<Vec<(String, String)>, OpsError> {
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
                return Err(OpsError::usage(
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
                return Err(OpsError::usage(
                    format!("`{n}` names several tests"),
                    Some(format!("say which: {}", options.join(", "))),
                ));
            }
        }
    }
    Ok(out)
}

/// The binaries to run for the `selected` tests (package, test) whose realised outputs
/// are `exes`, in that order.
pub fn binaries(
    project: &Project,
    selected: &[(String, String)],
    exes: &[PathBuf],
) -> Result<Vec<TestBinary>, OpsError> {
    if exes.len() != selected.len() {
        return Err(OpsError::Internal(
            "a test binary has no realised output".into(),
        ));
    }
    let names = Project::display_names(selected);
    let mut out = Vec::with_capacity(exes.len());
    for ((name, exe), (package, _)) in names.into_iter().zip(exes).zip(selected) {
        out.push(TestBinary {
            name,
            exe: exe.clone(),
            package_dir: package_dir(project, package)?,
        });
    }
    Ok(out)
}

/// Run `tests` one after the other, telling `ran` about each as it ends.
pub fn run_tests(
    project: &Project,
    targets: &[Target],
    tests: &[TestBinary],
    opts: &TestOptions,
    ran: &mut dyn FnMut(&TestRun),
) -> Result<Vec<TestRun>, OpsError> {
    let system_runtime = system_runtime(project, targets)?;
    let mut runs = Vec::with_capacity(tests.len());
    for test in tests {
        let run = run_one(project, opts, test, &system_runtime)?;
        ran(&run);
        runs.push(run);
    }
    Ok(runs)
}

/// The verdict on `runs`: an error naming every test that failed, if any did.
pub fn verdict(runs: &[TestRun]) -> Result<(), OpsError> {
    let failed: Vec<&str> = failed(runs).map(|r| r.name.as_str()).collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(OpsError::TestsFailed {
        message: format!(
            "{} of {} test{} failed: {}",
            failed.len(),
            runs.len(),
            if runs.len() == 1 { "" } else { "s" },
            failed.join(", ")
        ),
    })
}

/// The runs that failed.
pub fn failed(runs: &[TestRun]) -> impl Iterator<Item = &TestRun> {
    runs.iter()
        .filter(|r| matches!(r.verdict, Verdict::Failed(_)))
}

/// What the dynamic loader opens for the system libraries the tests link (their soname
/// links, canonical files and what they need in turn), beyond the toolchain's own
/// runtime: a trivial program is linked with the same link words (the libraries whose
/// files the tests' links read) and the loader asked (see `runtime_closure`).
fn system_runtime(project: &Project, targets: &[Target]) -> Result<Vec<PathBuf>, OpsError> {
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

fn package_dir(project: &Project, name: &str) -> Result<PathBuf, OpsError> {
    project
        .eval
        .packages
        .packages
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.root.clone())
        .ok_or_else(|| OpsError::Internal(format!("package `{name}` is not in the graph")))
}

/// Run one test binary in the sandbox, in a fresh working directory.
fn run_one(
    project: &Project,
    opts: &TestOptions,
    test: &TestBinary,
    system_runtime: &[PathBuf],
) -> Result<TestRun, OpsError> {
    let dir = project.store.temp_path("test");
    std::fs::create_dir_all(&dir).map_err(|e| {
        let error = cmod_schema::diag::IoError::new("creating the test's directory", &dir, e);
        OpsError::Store(cmod_store::StoreError::Io(error))
    })?;
    let log = dir.with_extension("log");
    let started = Instant::now();
    let outcome = cmod_sandbox::run(
        opts.mode,
        &test_action(project, opts, test, system_runtime, &dir, &log),
    );
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
            return Err(OpsError::Sandbox {
                message: format!("cannot run test `{}`: {e}", test.name),
                help: e.remedy().map(str::to_string),
            })
        }
    };
    Ok(TestRun {
        name: test.name.clone(),
        verdict,
        output,
        elapsed: started.elapsed(),
    })
}

/// The sandboxed process of `test`: its binary with the options' arguments, in `dir`,
/// seeing the build closure plus what the dynamic loader opens to start it (libc++'s
/// soname links, for one, are not in the build closure), the binary and its package.
fn test_action(
    project: &Project,
    opts: &TestOptions,
    test: &TestBinary,
    system_runtime: &[PathBuf],
    dir: &Path,
    log: &Path,
) -> Action {
    let toolchain = &project.eval.toolchain;
    let mut visible = toolchain.closure.clone();
    visible.extend(toolchain.runtime.iter().cloned());
    visible.extend(system_runtime.iter().cloned());
    visible.push(test.exe.clone());
    visible.push(test.package_dir.clone());
    Action {
        program: test.exe.clone(),
        args: opts.args.clone(),
        env: vec![
            (
                "CMOD_PACKAGE_DIR".into(),
                test.package_dir.to_string_lossy().into_owned(),
            ),
            ("CMOD_TEST_NAME".into(), test.name.clone()),
        ],
        build_dir: dir.to_path_buf(),
        store_dir: project.store.store_dir(),
        inputs: vec![],
        links: vec![],
        toolchain: visible,
        outputs: vec![],
        log_path: log.to_path_buf(),
        limits: opts.limits,
        view_slot: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmod_schema::diag::ExitClass;

    fn run(name: &str, verdict: Verdict) -> TestRun {
        TestRun {
            name: name.into(),
            verdict,
            output: String::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// Passing runs are a success; any failure is a test failure (exit 1) naming every
    /// failed test, with the count.
    #[test]
    fn the_verdict_names_every_failed_test() {
        let passed = [run("a", Verdict::Passed), run("b", Verdict::Passed)];
        assert!(verdict(&passed).is_ok());
        let mixed = [
            run("a", Verdict::Passed),
            run("b", Verdict::Failed("exit code 1".into())),
            run("c", Verdict::Failed("killed by signal 6".into())),
        ];
        let names: Vec<&str> = failed(&mixed).map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        let err = verdict(&mixed).unwrap_err();
        assert_eq!(err.exit_class(), ExitClass::Build);
        assert_eq!(err.to_string(), "2 of 3 tests failed: b, c");
        let one = [run("only", Verdict::Failed("exit code 2".into()))];
        assert_eq!(
            verdict(&one).unwrap_err().to_string(),
            "1 of 1 test failed: only"
        );
    }
}
