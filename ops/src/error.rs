//! The one error type of the operations.

use cmod_evaluator::EvalError;
use cmod_schema::diag::ExitClass;
use cmod_store::StoreError;

/// Why an operation could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Evaluating the package failed (manifest, lockfile, sources, graph, ...).
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Fetching from, or sending to, another store or cache failed.
    #[error(transparent)]
    Copy(#[from] cmod_store::transfer::CopyError),
    /// The request cannot be carried out as given: a target that does not exist, no
    /// package where one was looked for. `help` says what to do instead.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: Option<String>,
    },
    /// The sandbox cannot be set up as asked.
    #[error("{message}")]
    Sandbox {
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: Option<String>,
    },
    /// A bug in cmod.
    #[error("internal error: {0}")]
    Internal(String),
}

impl OpsError {
    /// A usage error with its remedy.
    pub fn usage(message: impl Into<String>, help: Option<String>) -> OpsError {
        OpsError::Usage {
            message: message.into(),
            help,
        }
    }

    /// The exit-code class of this error.
    pub fn exit_class(&self) -> ExitClass {
        match self {
            OpsError::Eval(e) => e.exit_class(),
            OpsError::Store(e) => e.exit_class(),
            OpsError::Copy(e) => e.exit_class(),
            OpsError::Usage { .. } | OpsError::Sandbox { .. } => ExitClass::Usage,
            OpsError::Internal(_) => ExitClass::Internal,
        }
    }
}
