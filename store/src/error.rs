//! Store errors.

use std::path::PathBuf;

use cmod_schema::diag::ExitClass;
use cmod_schema::StorePath;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{context} `{}`: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store path `{0}` is not valid (not in the store, or only partially registered)")]
    NotValid(StorePath),
    #[error("`{0}` is not a store path: {1}")]
    BadPath(String, String),
    #[error("metadata of `{path}` is corrupt: {reason}")]
    CorruptMetadata { path: String, reason: String },
    #[error("source `{}` changed while it was being copied into the store (expected {expected}, found {found}); run the command again", host.display())]
    SourceChanged {
        host: PathBuf,
        expected: String,
        found: String,
    },
    #[error("output `{at}` {problem}")]
    BadOutput { at: String, problem: String },
    #[error("the store at `{}` uses format `{found}`, which this cmod does not understand", root.display())]
    Format { root: PathBuf, found: String },
    #[error("no store location: none of $CMOD_STORE, $XDG_DATA_HOME and $HOME is set; pass --store DIR, or set CMOD_STORE or XDG_DATA_HOME")]
    NoStoreLocation,
    #[error("cannot create the out-link `{}`: a file that is not a symlink is there; remove it, or pass --out-link with another name", link.display())]
    OutLinkInTheWay { link: PathBuf },
    #[error("cannot create the out-link `{}`: the directory `{}` {problem}; create it first (`mkdir -p {}`), or pass --out-link with a path in an existing directory", link.display(), dir.display(), dir.display())]
    OutLinkDir {
        link: PathBuf,
        dir: PathBuf,
        /// `does not exist` or `is not a directory`.
        problem: &'static str,
    },
}

impl StoreError {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> StoreError {
        StoreError::Io {
            context,
            path: path.into(),
            source,
        }
    }

    /// The exit-code class of this error.
    pub fn exit_class(&self) -> ExitClass {
        match self {
            StoreError::CorruptMetadata { .. } | StoreError::BadOutput { .. } => {
                ExitClass::Integrity
            }
            StoreError::SourceChanged { .. }
            | StoreError::NotValid(_)
            | StoreError::BadPath(..)
            | StoreError::Format { .. }
            | StoreError::NoStoreLocation
            | StoreError::OutLinkInTheWay { .. }
            | StoreError::OutLinkDir { .. } => ExitClass::Usage,
            StoreError::Io { .. } => ExitClass::Internal,
        }
    }
}
