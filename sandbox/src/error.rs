//! Errors of setting up or supervising a sandboxed action.

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
        mode: Mode,
        reason: String,
        /// What the user can do about it (shown as help).
        remedy: String,
    },
    /// Setting up the sandbox failed part-way (a mount, a namespace, a Landlock rule).
    #[error("sandbox setup failed at `{step}`: {source}")]
    Setup {
        step: String,
        #[source]
        source: std::io::Error,
    },
    /// The action exceeded its wall-clock limit and was killed.
    #[error("the builder exceeded its time limit of {}s and was killed", limit.as_secs_f64())]
    TimeLimit { limit: Duration },
    /// The action wrote more than its output-size limit and was killed.
    #[error("the builder wrote more than {limit} bytes (its output-size limit) and was killed")]
    OutputLimit { limit: u64 },
    /// The builder left an output the store must not accept: a symlink or ancestor that
    /// escapes the output, a hard link, a device node, fifo or socket, or a setuid/setgid
    /// file. This is a security violation, not a build failure.
    #[error("unsafe output `{}`: {reason}", path.display())]
    UnsafeOutput { path: PathBuf, reason: String },
    /// The action description itself is malformed (a bug in the caller).
    #[error("invalid sandbox action: {0}")]
    InvalidAction(String),
    #[error("{context} `{}`: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
