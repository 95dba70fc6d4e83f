//! Shared vocabulary for reporting problems: where in a file, and which class of failure
//! (each class has its own process exit code).

use std::fmt;
use std::path::PathBuf;

/// A position in a user's file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The file the position is in.
    pub file: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

impl Location {
    /// The 1-based line and column of byte `offset` in `text`.
    pub fn at_offset(file: impl Into<PathBuf>, text: &str, offset: usize) -> Location {
        let offset = offset.min(text.len());
        let before = &text[..offset];
        let line = before.bytes().filter(|&b| b == b'\n').count() as u32 + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = text[line_start..offset].chars().count() as u32 + 1;
        Location {
            file: file.into(),
            line,
            column,
        }
    }
}

/// The class of a failure, which decides the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    /// A build step failed (exit 1).
    Build,
    /// Bad usage, manifest or lockfile, or the machine's state: the sandbox cannot be set
    /// up, the store cannot be written, the disk is full (exit 2).
    Usage,
    /// An integrity or security violation (exit 3).
    Integrity,
    /// A bug in cmod (exit 101).
    Internal,
}

impl ExitClass {
    /// The process exit code for this class.
    pub fn code(self) -> i32 {
        match self {
            ExitClass::Build => 1,
            ExitClass::Usage => 2,
            ExitClass::Integrity => 3,
            ExitClass::Internal => 101,
        }
    }
}

/// A failed file operation: what was being done, on which path, and the system's error
/// (kept, so the caller can tell the machine's state, a full disk or a read-only
/// mount, from a fault). The one shape of I/O error the store and the evaluator share.
#[derive(Debug, thiserror::Error)]
#[error("{context} `{}`: {source}", path.display())]
pub struct IoError {
    /// What was being done (`writing`, `unpacking`, ...).
    pub context: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The system's error.
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    /// `source` while doing `context` on `path`.
    pub fn new(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> IoError {
        IoError {
            context,
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_to_lines_and_columns() {
        let text = "ab\ncdé\nf";
        assert_eq!(Location::at_offset("x", text, 0).to_string(), "x:1:1");
        assert_eq!(Location::at_offset("x", text, 4).to_string(), "x:2:2");
        // The column counts characters, not bytes.
        assert_eq!(Location::at_offset("x", text, 7).to_string(), "x:2:4");
        assert_eq!(Location::at_offset("x", text, 8).to_string(), "x:3:1");
        assert_eq!(Location::at_offset("x", text, 99).to_string(), "x:3:2");
    }
}
