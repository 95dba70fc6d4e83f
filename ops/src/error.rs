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
    /// One or more build steps failed (each already reported with its output).
    #[error("{message}")]
    BuildFailed {
        /// Every failure, one per line.
        message: String,
    },
    /// One or more tests failed (each already reported with its output).
    #[error("{message}")]
    TestsFailed {
        /// How many failed, and which.
        message: String,
    },
    /// An integrity or security violation: outputs that differ from their pins or from
    /// a `--check` rebuild, corrupt stored outputs, a step leaving an unsafe output.
    #[error("{message}")]
    Integrity {
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: Option<String>,
    },
    /// A bug in cmod.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<cmod_evaluator::compdb::CompdbError> for OpsError {
    /// An evaluation error stays one; a bug is internal; anything else (a path that
    /// cannot be written) is the user's to fix.
    fn from(e: cmod_evaluator::compdb::CompdbError) -> Self {
        match e {
            cmod_evaluator::compdb::CompdbError::Eval(e) => OpsError::Eval(e),
            e if e.is_internal() => OpsError::Internal(e.to_string()),
            e => OpsError::usage(e.to_string(), None),
        }
    }
}

impl From<cmod_store::realise::RealiseError> for OpsError {
    fn from(e: cmod_store::realise::RealiseError) -> Self {
        match e {
            cmod_store::realise::RealiseError::Store(s) => OpsError::Store(s),
            cmod_store::realise::RealiseError::Substitution(c) => OpsError::Copy(c),
            other => OpsError::Internal(other.to_string()),
        }
    }
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
            OpsError::BuildFailed { .. } | OpsError::TestsFailed { .. } => ExitClass::Build,
            OpsError::Integrity { .. } => ExitClass::Integrity,
            OpsError::Internal(_) => ExitClass::Internal,
        }
    }

    /// The one-line message (without the `internal error: ` of a bug's rendering), as
    /// the final message of a realisation carries it.
    pub fn summary(&self) -> String {
        match self {
            OpsError::Internal(message) => message.clone(),
            e => e.to_string(),
        }
    }
}
