//! `cmod sandbox-exec`: run any command inside exactly the sandbox that build steps get
//! (the toolchain closure, a fresh build directory, no inputs), to see what a build sees.

use std::path::PathBuf;
use std::time::Duration;

use cmod_sandbox::{Action, Limits, Mode};

use crate::cli::{BuildOpts, Cli};
use crate::diagnostic::CliError;
use crate::project::load;

pub fn sandbox_exec(
    cli: &Cli,
    mode: &str,
    command: &[String],
    build: &BuildOpts,
) -> Result<(), CliError> {
    let mode: Mode = mode.parse().map_err(|e: String| CliError::usage(e, None))?;
    let project = load(cli, build)?;
    let (program, args) = command.split_first().ok_or_else(|| {
        CliError::usage(
            "no command given",
            Some("usage: cmod sandbox-exec -- PROGRAM [ARGS...]".into()),
        )
    })?;
    let program = if program.contains('/') {
        PathBuf::from(program)
    } else {
        cmod_evaluator::toolchain::find_program(program)
            .ok_or_else(|| CliError::usage(format!("`{program}` is not on PATH"), None))?
    };
    let dir = project.store.temp_path("sandbox-exec");
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::io("creating the step's directory", &dir, e))?;
    let log = dir.with_extension("log");
    let action = Action {
        program,
        args: args.to_vec(),
        env: vec![],
        build_dir: dir.clone(),
        store_dir: project.store.store_dir(),
        inputs: vec![],
        links: vec![],
        toolchain: project.eval.toolchain.closure.clone(),
        outputs: vec![],
        log_path: log.clone(),
        limits: Limits {
            timeout: Duration::from_secs(60),
            max_output_bytes: 1 << 30,
        },

        view_slot: None,
    };
    let outcome = cmod_sandbox::run(mode, &action).map_err(|e| CliError::Sandbox {
        message: e.to_string(),
        help: e.remedy().map(str::to_string),
    });
    out!("{}", std::fs::read_to_string(&log).unwrap_or_default());
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_dir_all(&dir);
    let outcome = outcome?;
    errln!(
        "[{} sandbox, landlock ABI {:?}: {}]",
        outcome.enforcement.mode,
        outcome.enforcement.landlock_abi,
        outcome.exit
    );
    if outcome.exit.success() {
        Ok(())
    } else {
        Err(CliError::BuildFailed {
            message: format!("the command ended with {}", outcome.exit),
        })
    }
}
