//! Evaluation errors: one struct with a typed kind, a message, an optional location in a
//! user file, notes pointing at related places, and a help line saying how to fix it.

use std::fmt;
use std::path::PathBuf;

use cmod_schema::diag::{ExitClass, Location};

/// What went wrong, for matching and for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `cmod.toml` is not valid TOML or does not fit the format.
    ManifestSyntax,
    /// `cmod.toml` parses but breaks a rule (a missing `main`, conflicting sources, ...).
    ManifestInvalid,
    /// No `cmod.toml` was found.
    ManifestMissing,
    /// A dependency cannot be loaded or forms a cycle.
    Dependency,
    /// The compiler or one of its tools is missing or has the wrong version.
    Toolchain,
    /// Scanning a translation unit failed (the preprocessor reported an error).
    Scan,
    /// A feature the user asked for is not supported yet (header units).
    Unsupported,
    /// Two units provide the same module or partition.
    DuplicateModule,
    /// An import names a module nobody provides.
    UnknownImport,
    /// An import names a module of a package the importer does not depend on.
    UndeclaredDependency,
    /// An import names a module its library keeps private.
    PrivateModule,
    /// A system library (pkg-config package or `links` name) cannot be found.
    SystemLibrary,
    /// Modules import each other in a cycle.
    ImportCycle,
    /// A partition's module has no primary interface.
    PartitionWithoutPrimary,
    /// An implementation unit's module has no interface.
    ImplementationWithoutInterface,
    /// `cmod.lock` is malformed, or a `--locked` build would change it.
    Lock,
    /// Fetched bytes do not match what the lock pins (a tampered cache or mirror).
    Integrity,
    /// Reading a user file failed.
    Io,
    /// A bug in cmod.
    Internal,
}

impl ErrorKind {
    /// The exit class of errors of this kind.
    pub fn exit_class(self) -> ExitClass {
        match self {
            ErrorKind::Scan => ExitClass::Build,
            ErrorKind::Integrity => ExitClass::Integrity,
            ErrorKind::Internal => ExitClass::Internal,
            _ => ExitClass::Usage,
        }
    }
}

/// A note attached to an error, optionally pointing at another place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The place the note points at, if any.
    pub location: Option<Location>,
    /// The note's text.
    pub message: String,
}

/// An evaluation error. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    /// The class of error, which decides the exit code.
    pub kind: ErrorKind,
    /// What went wrong, as one sentence.
    pub message: String,
    /// Where in the user's files, if known.
    pub location: Option<Location>,
    /// Further context, e.g. the other place involved in a conflict.
    pub notes: Vec<Note>,
    /// What the user can do about it.
    pub help: Option<String>,
}

impl EvalError {
    /// An error of `kind` with no location, notes or help.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> EvalError {
        EvalError {
            kind,
            message: message.into(),
            location: None,
            notes: Vec::new(),
            help: None,
        }
    }

    /// Point the error at `location`.
    pub fn at(mut self, location: Location) -> EvalError {
        self.location = Some(location);
        self
    }

    /// Point the error at `location`, or at nothing.
    pub fn at_opt(mut self, location: Option<Location>) -> EvalError {
        self.location = location;
        self
    }

    /// Add what the user can do about it.
    pub fn help(mut self, help: impl Into<String>) -> EvalError {
        self.help = Some(help.into());
        self
    }

    /// Add a note, optionally pointing at another place.
    pub fn note(mut self, location: Option<Location>, message: impl Into<String>) -> EvalError {
        self.notes.push(Note {
            location,
            message: message.into(),
        });
        self
    }

    /// An [`ErrorKind::Io`] error: `cannot <what> <path>: <err>`.
    pub fn io(path: impl Into<PathBuf>, what: &str, err: std::io::Error) -> EvalError {
        let path = path.into();
        EvalError::new(
            ErrorKind::Io,
            format!("cannot {what} `{}`: {err}", path.display()),
        )
    }

    /// The exit class of this error.
    pub fn exit_class(&self) -> ExitClass {
        self.kind.exit_class()
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{loc}: ")?;
        }
        f.write_str(&self.message)?;
        for note in &self.notes {
            match &note.location {
                Some(loc) => write!(f, "\n  note: {loc}: {}", note.message)?,
                None => write!(f, "\n  note: {}", note.message)?,
            }
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for EvalError {}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            did_you_mean("soruces", ["name", "sources", "kind"]),
            Some("sources")
        );
        assert_eq!(did_you_mean("zzz", ["name", "sources"]), None);
    }

    #[test]
    fn display_includes_location_notes_and_help() {
        let e = EvalError::new(ErrorKind::DuplicateModule, "module `m` is provided twice")
            .at(Location {
                file: "a.cppm".into(),
                line: 1,
                column: 1,
            })
            .note(None, "first here")
            .help("rename one");
        let text = e.to_string();
        assert!(text.starts_with("a.cppm:1:1: module `m`"), "{text}");
        assert!(text.contains("note: first here") && text.contains("help: rename one"));
        assert_eq!(e.exit_class().code(), 2);
    }
}
