//! `--sandbox=off`: a cleared environment and a private build directory, nothing more.
//! Outputs built this way are marked `off` in their metadata.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Instant;

use nix::unistd::Pid;

use crate::materialise::{prepare_build_dir, substitute_args};
use crate::{env, supervise, Action, Enforcement, Mode, Outcome, SandboxError};

pub(crate) fn run(action: &Action) -> Result<Outcome, SandboxError> {
    let start = Instant::now();
    prepare_build_dir(action, &action.store_dir)?;
    let seen = action.build_dir.to_string_lossy().into_owned();
    let log = File::create(&action.log_path)
        .map_err(|e| SandboxError::io("creating log", &action.log_path, e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| SandboxError::io("duplicating log", &action.log_path, e))?;
    let mut cmd = Command::new(&action.program);
    cmd.args(substitute_args(&action.args, &seen))
        .env_clear()
        .envs(env::for_action(&seen, &action.env))
        .current_dir(&action.build_dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    let max = action.limits.max_output_bytes;
    // SAFETY: child_common only makes async-signal-safe calls.
    unsafe {
        cmd.pre_exec(move || supervise::child_common(max));
    }
    let child = cmd.spawn().map_err(|e| SandboxError::Setup {
        step: format!("spawning `{}`", action.program.display()),
        source: e,
    })?;
    let pid = Pid::from_raw(child.id() as i32);
    let exit = supervise::wait(pid, pid, &action.limits)?;
    supervise::check_sizes(&action.build_dir, &action.log_path, &action.limits)?;
    Ok(Outcome {
        exit,
        elapsed: start.elapsed(),
        enforcement: Enforcement {
            mode: Mode::Off,
            landlock_abi: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExitKind, Limits};
    use std::time::Duration;

    fn sh(dir: &std::path::Path, script: &str, limits: Limits) -> Action {
        let build = dir.join("build");
        std::fs::create_dir_all(&build).unwrap();
        Action {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("EXTRA".into(), "1".into())],
            build_dir: build,
            store_dir: dir.join("store"),
            inputs: vec![],
            links: vec![],
            toolchain: vec![],
            outputs: vec!["out/x".into()],
            log_path: dir.join("log"),
            limits,
        }
    }

    #[test]
    fn environment_is_cleared_and_fixed() {
        std::env::set_var("CMOD_TEST_SECRET", "hunter2");
        let dir = tempfile::tempdir().unwrap();
        let a = sh(
            dir.path(),
            "env | sort > out/x; pwd >> out/x",
            Limits::default(),
        );
        let outcome = crate::run(Mode::Off, &a).unwrap();
        assert_eq!(outcome.exit, ExitKind::Code(0));
        let env = std::fs::read_to_string(a.build_dir.join("out/x")).unwrap();
        assert!(!env.contains("hunter2"), "{env}");
        assert!(
            env.contains("TZ=UTC") && env.contains("SOURCE_DATE_EPOCH=1"),
            "{env}"
        );
        assert!(env.contains("EXTRA=1"), "{env}");
        assert!(env.contains(&a.build_dir.display().to_string()), "{env}");
    }

    #[test]
    fn failing_builder_is_an_outcome_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = sh(dir.path(), "echo boom >&2; exit 7", Limits::default());
        let outcome = crate::run(Mode::Off, &a).unwrap();
        assert_eq!(outcome.exit, ExitKind::Code(7));
        assert_eq!(std::fs::read_to_string(&a.log_path).unwrap(), "boom\n");
    }

    #[test]
    fn timeout_kills_the_builder() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let a = sh(dir.path(), "sleep 30 & sleep 30", limits);
        let start = Instant::now();
        let err = crate::run(Mode::Off, &a).unwrap_err();
        assert!(matches!(err, SandboxError::TimeLimit { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn output_limit_is_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_output_bytes: 4096,
            ..Limits::default()
        };
        let a = sh(dir.path(), "head -c 100000 /dev/zero > out/x", limits);
        let err = crate::run(Mode::Off, &a).unwrap_err();
        assert!(
            matches!(err, SandboxError::OutputLimit { limit: 4096 }),
            "{err}"
        );
    }
}
