//! Errors at the command line: one type that every command returns, rendered for humans
//! with the file, line, a snippet and a help line, and mapped to distinct exit codes
//! (1 build failure, 2 usage/manifest/lock or the machine's state, 3 integrity, 101
//! internal).

use std::fmt::Write as _;
use std::path::PathBuf;

use cmod_evaluator::compdb::CompdbError;
use cmod_evaluator::EvalError;
use cmod_schema::diag::{ExitClass, Location};
use cmod_store::sign::KeyError;
use cmod_store::transfer::CopyError;
use cmod_store::StoreError;

/// Anything a command can fail with.
#[derive(Debug)]
pub enum CliError {
    Eval(EvalError),
    Store(StoreError),
    /// Copying from or to another store or cache failed.
    Copy(CopyError),
    /// A signing or trusted key cannot be read, parsed or made.
    Key(KeyError),
    /// A usage error with an optional hint.
    Usage {
        message: String,
        help: Option<String>,
    },
    /// One or more build steps failed (already reported in detail).
    BuildFailed {
        message: String,
    },
    /// One or more tests failed (each already reported with its output).
    TestsFailed {
        message: String,
    },
    /// The sandbox cannot be set up.
    Sandbox {
        message: String,
        help: Option<String>,
    },
    /// An integrity or security violation.
    Integrity {
        message: String,
        help: Option<String>,
    },
    Internal(String),
}

impl From<EvalError> for CliError {
    fn from(e: EvalError) -> Self {
        CliError::Eval(e)
    }
}

impl From<CompdbError> for CliError {
    fn from(e: CompdbError) -> Self {
        match e {
            CompdbError::Eval(e) => CliError::Eval(e),
            e if e.is_internal() => CliError::Internal(e.to_string()),
            e => CliError::usage(e.to_string(), None),
        }
    }
}

impl From<KeyError> for CliError {
    fn from(e: KeyError) -> Self {
        CliError::Key(e)
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        CliError::Store(e)
    }
}

impl From<cmod_ops::OpsError> for CliError {
    fn from(e: cmod_ops::OpsError) -> Self {
        match e {
            cmod_ops::OpsError::Eval(e) => CliError::Eval(e),
            cmod_ops::OpsError::Store(e) => CliError::Store(e),
            cmod_ops::OpsError::Copy(e) => CliError::Copy(e),
            cmod_ops::OpsError::Usage { message, help } => CliError::Usage { message, help },
            cmod_ops::OpsError::Sandbox { message, help } => CliError::Sandbox { message, help },
            cmod_ops::OpsError::BuildFailed { message } => CliError::BuildFailed { message },
            cmod_ops::OpsError::TestsFailed { message } => CliError::TestsFailed { message },
            cmod_ops::OpsError::Integrity { message, help } => {
                CliError::Integrity { message, help }
            }
            cmod_ops::OpsError::Internal(message) => CliError::Internal(message),
        }
    }
}

impl From<cmod_store::realise::RealiseError> for CliError {
    fn from(e: cmod_store::realise::RealiseError) -> Self {
        CliError::from(cmod_ops::OpsError::from(e))
    }
}

impl CliError {
    /// A failed file operation of the command itself: the machine's state (a full disk,
    /// a read-only mount, permissions) exits 2 with a remedy, anything else 101.
    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> CliError {
        CliError::Store(StoreError::Io(cmod_schema::diag::IoError::new(
            context, path, source,
        )))
    }

    pub fn usage(message: impl Into<String>, help: Option<String>) -> CliError {
        CliError::Usage {
            message: message.into(),
            help,
        }
    }

    pub fn exit_class(&self) -> ExitClass {
        match self {
            CliError::Eval(e) => e.exit_class(),
            CliError::Store(e) => e.exit_class(),
            CliError::Copy(e) => e.exit_class(),
            CliError::Key(KeyError::Random(_)) => ExitClass::Internal,
            CliError::Key(_) => ExitClass::Usage,
            CliError::Usage { .. } | CliError::Sandbox { .. } => ExitClass::Usage,
            CliError::BuildFailed { .. } | CliError::TestsFailed { .. } => ExitClass::Build,
            CliError::Integrity { .. } => ExitClass::Integrity,
            CliError::Internal(_) => ExitClass::Internal,
        }
    }

    /// One-line summary (for JSON messages).
    pub fn summary(&self) -> String {
        match self {
            CliError::Eval(e) => e.to_string(),
            CliError::Store(e) => e.to_string(),
            CliError::Copy(e) => e.to_string(),
            CliError::Key(e) => e.to_string(),
            CliError::Usage { message, .. }
            | CliError::BuildFailed { message }
            | CliError::TestsFailed { message }
            | CliError::Sandbox { message, .. }
            | CliError::Integrity { message, .. }
            | CliError::Internal(message) => message.clone(),
        }
    }

    /// How to fix it, when cmod knows (the `help` of the human rendering).
    pub fn help(&self) -> Option<String> {
        match self {
            CliError::Eval(e) => e.help.clone(),
            CliError::Store(e) => e.remedy(),
            CliError::Copy(e) => copy_help(e),
            CliError::Usage { help, .. }
            | CliError::Sandbox { help, .. }
            | CliError::Integrity { help, .. } => help.clone(),
            CliError::Key(_) | CliError::BuildFailed { .. } | CliError::TestsFailed { .. } => None,
            CliError::Internal(_) => {
                Some("this is a bug in cmod; please report it with the command you ran".into())
            }
        }
    }

    /// The JSON `error` message of `--message-format json`: the message, where it is
    /// (for manifest errors) and how to fix it, beside the full human rendering.
    pub fn json(&self) -> serde_json::Value {
        let location = match self {
            CliError::Eval(e) => e
                .location
                .as_ref()
                .map(|l| serde_json::json!({"file": l.file, "line": l.line, "column": l.column})),
            _ => None,
        };
        serde_json::json!({
            "reason": "error",
            "message": self.summary(),
            "help": self.help(),
            "location": location,
            "exit_code": self.exit_class().code(),
            "rendered": self.render(),
        })
    }

    /// The full human rendering.
    pub fn render(&self) -> String {
        match self {
            CliError::Eval(e) => {
                let mut out = render_diagnostic("error", &e.message, e.location.as_ref(), None);
                for n in &e.notes {
                    out.push_str(&render_diagnostic(
                        "note",
                        &n.message,
                        n.location.as_ref(),
                        None,
                    ));
                }
                // Notes first, then how to fix it, as rustc does.
                if let Some(h) = &e.help {
                    out.push_str(&render_help(h));
                }
                out
            }
            CliError::Store(e) => {
                render_diagnostic("error", &e.to_string(), None, e.remedy().as_deref())
            }
            CliError::Copy(e) => {
                render_diagnostic("error", &e.to_string(), None, copy_help(e).as_deref())
            }
            CliError::Key(e) => render_diagnostic("error", &e.to_string(), None, None),
            CliError::Usage { message, help }
            | CliError::Sandbox { message, help }
            | CliError::Integrity { message, help } => {
                render_diagnostic("error", message, None, help.as_deref())
            }
            CliError::BuildFailed { message } | CliError::TestsFailed { message } => {
                render_diagnostic("error", message, None, None)
            }
            CliError::Internal(m) => render_diagnostic(
                "error",
                &format!("internal error: {m}"),
                None,
                Some("this is a bug in cmod; please report it with the command you ran"),
            ),
        }
    }
}

/// What to tell the user about a failed copy: an integrity or trust failure registered
/// nothing; a store failure has the store's remedy.
fn copy_help(e: &CopyError) -> Option<String> {
    match e {
        CopyError::Store(s) => s.remedy(),
        e if e.exit_class() == ExitClass::Integrity => {
            Some("nothing from it was registered; the store is unchanged".into())
        }
        _ => None,
    }
}

pub use cmod_ops::display::display_path;

/// Render `level: message`, a location arrow with the source line, and a help line.
pub fn render_diagnostic(
    level: &str,
    message: &str,
    location: Option<&Location>,
    help: Option<&str>,
) -> String {
    let mut out = format!("{level}: {message}\n");
    if let Some(loc) = location {
        let _ = writeln!(
            out,
            "  --> {}:{}:{}",
            display_path(&loc.file),
            loc.line,
            loc.column
        );
        let line_text = std::fs::read_to_string(&loc.file).ok().and_then(|t| {
            t.lines()
                .nth(loc.line.saturating_sub(1) as usize)
                .map(str::to_string)
        });
        if let Some(text) = line_text {
            let n = loc.line.to_string();
            let pad = " ".repeat(n.len());
            let _ = writeln!(out, " {pad} |");
            let _ = writeln!(out, " {n} | {text}");
            let caret_pad: String = text
                .chars()
                .take(loc.column.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = writeln!(out, " {pad} | {caret_pad}^");
        }
    }
    if let Some(h) = help {
        out.push_str(&render_help(h));
    }
    out
}

/// `  = help: ...`, with continuation lines indented under the text.
fn render_help(help: &str) -> String {
    let mut out = String::new();
    for (i, l) in help.lines().enumerate() {
        let lead = if i == 0 { "  = help: " } else { "          " };
        let _ = writeln!(out, "{lead}{l}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_snippet_and_caret() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("cmod.toml");
        std::fs::write(&f, "[lib]\nsoruces = []\n").unwrap();
        let text = render_diagnostic(
            "error",
            "unknown field `soruces`",
            Some(&Location {
                file: f.clone(),
                line: 2,
                column: 1,
            }),
            Some("did you mean `sources`?"),
        );
        assert!(text.contains(&format!("--> {}:2:1", f.display())), "{text}");
        assert!(text.contains(" 2 | soruces = []"), "{text}");
        assert!(text.contains("   | ^"), "{text}");
        assert!(
            text.ends_with("  = help: did you mean `sources`?\n"),
            "{text}"
        );
    }

    /// Each class from a real failure, not from a restated table: the exit code and
    /// the remedy the user sees.
    #[test]
    fn a_full_disk_is_the_machine_s_state_not_a_bug() {
        let full = std::fs::write("/dev/full", b"x").expect_err("/dev/full is full");
        let e = CliError::io("writing the test's log", "/dev/full", full);
        assert_eq!(e.exit_class().code(), 2);
        let shown = e.render();
        assert!(shown.contains("/dev/full"), "{shown}");
        assert!(shown.contains("= help:"), "a remedy is offered: {shown}");
    }

    #[test]
    fn an_unexpected_file_error_is_internal() {
        let dir = tempfile::tempdir().unwrap();
        let is_dir = std::fs::read(dir.path()).expect_err("a directory is not a file");
        let e = CliError::io("reading the step's log", dir.path(), is_dir);
        assert_eq!(e.exit_class().code(), 101);
    }

    #[test]
    fn copy_failures_keep_their_class() {
        let Err(bad_url) = cmod_store::copy::Remote::open("gopher://x", &Default::default()) else {
            panic!("gopher:// is not a store URL");
        };
        let e = CliError::from(bad_url);
        assert_eq!(e.exit_class().code(), 2);
        assert!(e.render().contains("gopher://x"), "{}", e.render());
    }
}
