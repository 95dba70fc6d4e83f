//! `--sandbox=off`: a cleared environment and a private build directory, nothing more.
//! Outputs built this way are marked `off` in their metadata.

use std::process::Command;
use std::time::Instant;

use crate::materialise::prepare_build_dir;
use crate::{supervise, Action, Enforcement, Mode, Outcome, SandboxError};

pub(crate) fn run(action: &Action) -> Result<Outcome, SandboxError> {
    let start = Instant::now();
    prepare_build_dir(action, &action.store_dir, &Default::default())?;
    supervise::run_unshared(
        Command::new(action.program_seen(&action.build_dir)),
        action,
        &action.build_dir,
        format!("spawning `{}`", action.program.display()),
        start,
        Enforcement {
            mode: Mode::Off,
            landlock_abi: None,
        },
    )
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
            view_slot: None,
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
            matches!(err, SandboxError::OutputLimit { limit: 4096, .. }),
            "{err}"
        );
    }

    #[test]
    fn many_small_files_are_stopped_while_the_builder_runs() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            timeout: Duration::from_secs(30),
            max_output_bytes: 1 << 20,
        };
        // 16 KiB files forever: no single file is near the limit.
        let a = sh(
            dir.path(),
            "i=0; while :; do head -c 16384 /dev/zero > f$i; i=$((i+1)); done",
            limits,
        );
        let start = Instant::now();
        let err = crate::run(Mode::Off, &a).unwrap_err();
        assert!(
            matches!(
                err,
                SandboxError::OutputLimit {
                    limit: 1048576,
                    overrun: crate::OutputOverrun::WhileRunning { bytes, .. }
                } if bytes > 1 << 20
            ),
            "{err}"
        );
        assert!(err.to_string().contains("and was killed"), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }
}
