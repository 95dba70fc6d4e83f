//! Store errors.

use std::path::PathBuf;

use cmod_schema::diag::{ExitClass, IoError};
use cmod_schema::StorePath;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation on the store failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The path is not registered in the store.
    #[error("store path `{0}` is not valid (not in the store, or only partially registered)")]
    NotValid(StorePath),
    /// A text that should name a store path does not (the text, then why).
    #[error("`{0}` is not a store path: {1}")]
    BadPath(String, String),
    /// A metadata file cannot be parsed as what it should hold.
    #[error("metadata of `{path}` is corrupt: {reason}")]
    CorruptMetadata {
        /// The path whose metadata it is.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A source file's contents changed between hashing and copying it.
    #[error("source `{}` changed while it was being copied into the store (expected {expected}, found {found}); run the command again", host.display())]
    SourceChanged {
        /// The file on the host.
        host: PathBuf,
        /// The hash the evaluator saw.
        expected: String,
        /// The hash of what was copied.
        found: String,
    },
    /// A builder's output is something the store must not hold.
    #[error("output `{at}` {problem}")]
    BadOutput {
        /// The output, relative to the build directory.
        at: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The store directory has a format marker this cmod does not know.
    #[error("the store at `{}` uses format `{found}`, which this cmod does not understand", root.display())]
    Format {
        /// The store's root directory.
        root: PathBuf,
        /// The format it names.
        found: String,
    },
    /// No store directory was given and none can be derived from the environment.
    #[error("no store location: none of $CMOD_STORE, $XDG_DATA_HOME and $HOME is set; pass --store DIR, or set CMOD_STORE or XDG_DATA_HOME")]
    NoStoreLocation,
    /// The store cannot be written by this process.
    #[error("the store `{}` cannot be written here: `{}` {why}", root.display(), dir.display())]
    NotWritable {
        /// The store's root directory.
        root: PathBuf,
        /// The directory that could not be written.
        dir: PathBuf,
        /// Why: a read-only mount or missing permission.
        why: NotWritable,
        /// The error of the failed write.
        #[source]
        source: std::io::Error,
    },
    /// The out-link's path holds something other than a symlink.
    #[error("cannot create the out-link `{}`: a file that is not a symlink is there; remove it, or pass --out-link with another name", link.display())]
    OutLinkInTheWay {
        /// The out-link's path.
        link: PathBuf,
    },
    /// The out-link's directory does not exist or is not a directory.
    #[error("cannot create the out-link `{}`: the directory `{}` {problem}; create it first (`mkdir -p {}`), or pass --out-link with a path in an existing directory", link.display(), dir.display(), dir.display())]
    OutLinkDir {
        /// The out-link's path.
        link: PathBuf,
        /// Its parent directory.
        dir: PathBuf,
        /// `does not exist` or `is not a directory`.
        problem: &'static str,
    },
}

/// Why a store directory cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotWritable {
    /// It is on a read-only mount.
    ReadOnly,
    /// This user may not write it (`owner`: its owner's uid, when known).
    Permission {
        /// This process's uid.
        uid: u32,
        /// The directory owner's uid, if known.
        owner: Option<u32>,
    },
}

impl std::fmt::Display for NotWritable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotWritable::ReadOnly => write!(f, "is on a read-only file system"),
            NotWritable::Permission {
                uid,
                owner: Some(owner),
            } if owner != uid => write!(
                f,
                "is not writable by you (uid {uid}); it belongs to uid {owner}"
            ),
            NotWritable::Permission { uid, .. } => write!(f, "is not writable by you (uid {uid})"),
        }
    }
}

impl StoreError {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> StoreError {
        StoreError::Io(IoError::new(context, path, source))
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
            | StoreError::OutLinkDir { .. }
            | StoreError::NotWritable { .. } => ExitClass::Usage,
            // The machine, not cmod: a full disk, a read-only mount, permissions.
            StoreError::Io(e) if environmental(&e.source).is_some() => ExitClass::Usage,
            StoreError::Io(_) => ExitClass::Internal,
        }
    }

    /// What the user can do about this error, when there is something to say.
    pub fn remedy(&self) -> Option<String> {
        const ELSEWHERE: &str = "or build in a store you can write: `--store DIR` or \
            `CMOD_STORE=DIR`. Commands that only read (`path-info`, `log`, `store verify`, \
            `eval`, `show-derivation`) work on this store as it is";
        match self {
            StoreError::NotWritable {
                why: NotWritable::ReadOnly,
                ..
            } => Some(format!("remount it read-write, {ELSEWHERE}")),
            StoreError::NotWritable {
                why: NotWritable::Permission { owner, .. },
                dir,
                ..
            } => Some(format!(
                "run cmod as the store's owner{}, give yourself write access to `{}` and \
                 everything under it, {ELSEWHERE}",
                owner.map(|o| format!(" (uid {o})")).unwrap_or_default(),
                dir.display()
            )),
            StoreError::Io(IoError { path, source, .. }) => match environmental(source)? {
                Environment::NoSpace => Some(no_space_remedy(path.parent().unwrap_or(path))),
                Environment::Unwritable => Some(format!(
                    "check the permissions of `{}` and whether it is on a read-only mount",
                    path.display()
                )),
            },
            StoreError::CorruptMetadata { .. } => {
                Some("run `cmod store verify` and then `cmod gc` to drop damaged paths".into())
            }
            StoreError::NotValid(_) => Some("run `cmod realise` first".into()),
            _ => None,
        }
    }
}

/// What to do when the file system holding `dir` is full.
pub fn no_space_remedy(dir: &std::path::Path) -> String {
    format!(
        "the file system holding `{}` is full (or you are over quota): free some space \
         (`cmod gc` deletes the store paths no root keeps) or use a store on a larger file \
         system (`--store DIR`), then run the command again; nothing partial was registered",
        dir.display()
    )
}

/// Kinds of I/O failure that are the machine's state rather than a fault of cmod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// `ENOSPC`, `EDQUOT`.
    NoSpace,
    /// `EROFS`, `EACCES`, `EPERM`.
    Unwritable,
}

/// Which [`Environment`] failure `e` is, if any.
pub fn environmental(e: &std::io::Error) -> Option<Environment> {
    match e.raw_os_error()? {
        libc::ENOSPC | libc::EDQUOT => Some(Environment::NoSpace),
        libc::EROFS | libc::EACCES | libc::EPERM => Some(Environment::Unwritable),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(errno: i32) -> StoreError {
        StoreError::io(
            "writing",
            "/s/v1/tmp/x",
            std::io::Error::from_raw_os_error(errno),
        )
    }

    #[test]
    fn the_machine_s_state_is_not_an_internal_error() {
        for errno in [
            libc::ENOSPC,
            libc::EDQUOT,
            libc::EROFS,
            libc::EACCES,
            libc::EPERM,
        ] {
            assert_eq!(io(errno).exit_class(), ExitClass::Usage, "{errno}");
            assert!(io(errno).remedy().is_some(), "{errno}");
        }
        assert_eq!(io(libc::EIO).exit_class(), ExitClass::Internal);
        assert_eq!(io(libc::EIO).remedy(), None);
        let full = io(libc::ENOSPC).remedy().unwrap();
        assert!(full.contains("`/s/v1/tmp` is full"), "{full}");
        assert!(full.contains("cmod gc"), "{full}");
    }
}
