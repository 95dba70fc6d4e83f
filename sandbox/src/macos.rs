//! The macOS fallback: the builder runs under `/usr/bin/sandbox-exec -p <profile>` with a
//! profile generated from the action (see `macos_profile.rs`), a cleared environment and
//! the build directory as cwd.
//!
//! What it guarantees is weaker than the Linux sandbox: there is no mount namespace, so
//! the builder sees the build directory and inputs at their host paths. Derivations pass
//! `-ffile-prefix-map=@builddir@=/build`, which makes objects and binaries identical
//! across machines and store roots, but BMIs are not (clang records absolute source paths
//! in them). See docs/SANDBOX.md. The mode is reported as [`Mode::Full`] (the strongest
//! isolation this OS offers); [`Mode::Landlock`] does not exist here.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::materialise::prepare_build_dir;
use crate::{macos_profile, supervise, Action, Enforcement, Mode, Outcome, SandboxError};

const SANDBOX_EXEC: &str = "/usr/bin/sandbox-exec";

fn unsupported(mode: Mode, reason: impl Into<String>) -> SandboxError {
    SandboxError::Unsupported {
        mode,
        reason: reason.into(),
        remedy: "run the default `--sandbox=full` (sandbox-exec) on macOS, or pass \
                 `--sandbox=off` explicitly"
            .into(),
    }
}

pub(crate) fn probe(mode: Mode) -> Result<Enforcement, SandboxError> {
    if mode != Mode::Full {
        return Err(unsupported(mode, "Landlock exists only on Linux"));
    }
    let status = Command::new(SANDBOX_EXEC)
        .args(["-p", "(version 1)(allow default)", "/usr/bin/true"])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| unsupported(mode, format!("cannot run {SANDBOX_EXEC}: {e}")))?;
    if !status.success() {
        return Err(unsupported(
            mode,
            format!("{SANDBOX_EXEC} refused a trivial profile ({status})"),
        ));
    }
    Ok(Enforcement {
        mode,
        landlock_abi: None,
    })
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The action with canonical paths (SBPL matches resolved paths: `/tmp` is
/// `/private/tmp`). Toolchain entries keep their original spelling too, so symlinked tool
/// paths stay readable as links.
fn canonical_action(action: &Action) -> Result<Action, SandboxError> {
    let mut a = action.clone();
    a.build_dir = std::fs::canonicalize(&action.build_dir)
        .map_err(|e| SandboxError::io("finding build directory", &action.build_dir, e))?;
    a.store_dir = canonical(&action.store_dir);
    a.program = canonical(&action.program_seen(&a.build_dir));
    let mut tools: Vec<PathBuf> = action.toolchain.clone();
    tools.extend(action.toolchain.iter().map(|p| canonical(p)));
    tools.push(a.program.clone());
    tools.sort();
    tools.dedup();
    a.toolchain = tools;
    Ok(a)
}

pub(crate) fn run(mode: Mode, action: &Action) -> Result<Outcome, SandboxError> {
    if mode != Mode::Full {
        return Err(unsupported(mode, "Landlock exists only on Linux"));
    }
    let start = Instant::now();
    let canon = canonical_action(action)?;
    prepare_build_dir(&canon, &canon.store_dir, &Default::default())?;
    let profile = macos_profile::generate(&canon)?;
    let mut cmd = Command::new(SANDBOX_EXEC);
    cmd.arg("-p").arg(&profile).arg(&canon.program);
    supervise::run_unshared(
        cmd,
        action,
        &canon.build_dir,
        format!(
            "spawning `{}` under {SANDBOX_EXEC}",
            action.program.display()
        ),
        start,
        Enforcement {
            mode: Mode::Full,
            landlock_abi: None,
        },
    )
}
