//! Errors of setting up or supervising a sandboxed action.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::Mode;

/// Why an action could not be run to completion.
///
/// A builder that runs and exits non-zero is not an error; see [`crate::Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The requested mode cannot be set up on this machine.
    #[error("the `{mode}` sandbox cannot be set up: {reason}")]
    Unsupported {
        /// The mode that was asked for.
        mode: Mode,
        /// What is missing, e.g. the failed step and its error.
        reason: String,
        /// What the user can do about it (shown as help).
        remedy: String,
    },
    /// Setting up the sandbox failed part-way (a mount, a namespace, a Landlock rule).
    #[error("sandbox setup failed at `{step}`: {source}")]
    Setup {
        /// The step that failed, as a description.
        step: String,
        /// The error of that step.
        #[source]
        source: std::io::Error,
    },
    /// The action exceeded its wall-clock limit and was killed.
    #[error("the builder exceeded its time limit of {}s and was killed", limit.as_secs_f64())]
    TimeLimit {
        /// The limit that was exceeded.
        limit: Duration,
    },
    /// The action wrote more than its output-size limit; `overrun` says how it was found
    /// and whether the builder was killed for it.
    #[error("{}", output_limit_message(*limit, overrun))]
    OutputLimit {
        /// The limit in bytes.
        limit: u64,
        /// How the excess was detected.
        overrun: OutputOverrun,
    },
    /// The builder left an output the store must not accept: a symlink or ancestor that
    /// escapes the output, a hard link, a device node, fifo or socket, or a setuid/setgid
    /// file. This is a security violation, not a build failure.
    #[error("unsafe output `{}`: {reason}", path.display())]
    UnsafeOutput {
        /// The offending file (host path).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The action description itself is malformed (a bug in the caller).
    #[error("invalid sandbox action: {0}")]
    InvalidAction(String),
    /// A file-system operation of the sandbox itself failed.
    #[error("{context} `{}`: {source}", path.display())]
    Io {
        /// What was being done (`"finding input"`).
        context: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// How an action exceeded its output-size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputOverrun {
    /// One file reached the limit: the kernel stopped the builder with `SIGXFSZ`
    /// (`RLIMIT_FSIZE`).
    FileTooLarge,
    /// While the builder ran, `what` was measured at `bytes`; the builder and everything
    /// it started were killed.
    WhileRunning {
        /// What was measured.
        what: Measured,
        /// Its size in bytes.
        bytes: u64,
    },
    /// The builder exited on its own, leaving `what` at `bytes`.
    AfterExit {
        /// What was measured.
        what: Measured,
        /// Its size in bytes.
        bytes: u64,
    },
}

/// What was measured against the output-size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    /// The build directory (outputs and temporaries).
    BuildDir,
    /// The builder's combined stdout and stderr.
    Log,
}

impl fmt::Display for Measured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Measured::BuildDir => "its build directory",
            Measured::Log => "its log",
        })
    }
}

fn output_limit_message(limit: u64, overrun: &OutputOverrun) -> String {
    match overrun {
        OutputOverrun::FileTooLarge => format!(
            "the builder wrote more than {limit} bytes (its output-size limit) to one file \
             and was killed by SIGXFSZ"
        ),
        OutputOverrun::WhileRunning { what, bytes } => format!(
            "the builder wrote more than {limit} bytes (its output-size limit; {what} \
             measured {bytes} bytes while it ran) and was killed"
        ),
        OutputOverrun::AfterExit { what, bytes } => format!(
            "the builder wrote more than {limit} bytes (its output-size limit; {what} \
             measured {bytes} bytes after it exited)"
        ),
    }
}

impl SandboxError {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        SandboxError::Io {
            context,
            path: path.into(),
            source,
        }
    }

    /// A remedy to show the user, where one is known.
    pub fn remedy(&self) -> Option<&str> {
        match self {
            SandboxError::Unsupported { remedy, .. } => Some(remedy),
            SandboxError::TimeLimit { .. } => {
                Some("raise the limit with `--action-timeout SECS` if the action is legitimately slow")
            }
            SandboxError::OutputLimit { .. } => {
                Some("raise the limit with `--max-output-size BYTES` if the output is legitimately large")
            }
            _ => None,
        }
    }
}
