//! Reading one `cmod.toml`: TOML and format errors become [`EvalError`]s with the file,
//! line and column, and a help line (a "did you mean" for misspelt fields).

use std::ops::Range;
use std::path::{Path, PathBuf};

use cmod_schema::diag::Location;
use cmod_schema::manifest::{known_fields, Manifest};

use crate::error::{did_you_mean, ErrorKind, EvalError};

/// The name of the manifest file.
pub const MANIFEST_NAME: &str = "cmod.toml";

/// A parsed manifest together with its text, for locating spans.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    /// The file's path.
    pub path: PathBuf,
    /// The file's text, which spans in `manifest` index.
    pub text: String,
    /// The parsed manifest.
    pub manifest: Manifest,
}

impl ManifestFile {
    /// Read and parse `path`.
    pub fn load(path: &Path) -> Result<ManifestFile, EvalError> {
        let text = crate::journal::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                EvalError::new(
                    ErrorKind::ManifestMissing,
                    format!("no `{MANIFEST_NAME}` at `{}`", path.display()),
                )
                .help("run `cmod init` to create one, or pass `--manifest-path`")
            } else {
                EvalError::io(path, "read", e)
            }
        })?;
        Self::parse(path, text)
    }

    /// Parse `text` as the contents of `path`.
    pub fn parse(path: &Path, text: String) -> Result<ManifestFile, EvalError> {
        match toml::from_str::<Manifest>(&text) {
            Ok(manifest) => Ok(ManifestFile {
                path: path.to_path_buf(),
                text,
                manifest,
            }),
            Err(err) => Err(syntax_error(path, &text, &err)),
        }
    }

    /// The location of byte range `span` (1-based line and column of its start).
    pub fn location(&self, span: Range<usize>) -> Location {
        Location::at_offset(&self.path, &self.text, span.start)
    }

    /// A location for a value that may have come from a default (empty span): the start
    /// of the file in that case.
    pub fn location_or_file(&self, span: Range<usize>) -> Location {
        if span.is_empty() {
            Location::at_offset(&self.path, &self.text, 0)
        } else {
            self.location(span)
        }
    }

    /// The directory holding the manifest.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

fn syntax_error(path: &Path, text: &str, err: &toml::de::Error) -> EvalError {
    let message = err.message().trim().to_string();
    let location = err
        .span()
        .map(|span| Location::at_offset(path, text, span.start))
        .unwrap_or_else(|| Location::at_offset(path, text, 0));
    let help = help_for(&message, err.span().map(|s| table_at(text, s.start)));
    let mut e = EvalError::new(ErrorKind::ManifestSyntax, message).at(location);
    if let Some(help) = help {
        e = e.help(help);
    }
    e
}

/// The dotted name of the table that contains byte `offset` (`""` for the root,
/// `profile.dev`, `bin`, `dependency` for entries of a dependency table).
fn table_at(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let header = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
        .unwrap_or_default();
    if header == "dependencies" || header == "dev-dependencies" {
        "dependency".into()
    } else {
        header
    }
}

fn between<'a>(s: &'a str, open: &str, close: char) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let end = s[start..].find(close)? + start;
    Some(&s[start..end])
}

fn help_for(message: &str, table: Option<String>) -> Option<String> {
    if let Some(field) = between(message, "unknown field `", '`') {
        let table = table.unwrap_or_default();
        let candidates = known_fields(&table);
        return Some(match did_you_mean(field, candidates.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if candidates.is_empty() => format!("remove `{field}`"),
            None => format!(
                "remove `{field}`; this table accepts {}",
                candidates
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    if let Some(field) = between(message, "missing field `", '`') {
        let example = match field {
            "name" => "name = \"my-package\"",
            "version" => "version = \"0.1.0\"",
            "main" => "main = \"src/main.cpp\"",
            _ => return Some(format!("add `{field} = ...` to this table")),
        };
        return Some(format!("add `{example}`"));
    }
    if message.starts_with("invalid type") {
        return Some("check the value's type against docs/MANIFEST.md".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> EvalError {
        ManifestFile::parse(Path::new("cmod.toml"), text.to_string()).unwrap_err()
    }

    #[test]
    fn unknown_field_gets_location_and_suggestion() {
        let e = err("[package]\nname = \"a\"\nversion = \"0.1.0\"\n\n[lib]\nsoruces = [\"x\"]\n");
        assert_eq!(e.kind, ErrorKind::ManifestSyntax);
        let loc = e.location.clone().unwrap();
        assert_eq!((loc.line, loc.column), (6, 1));
        assert!(e.message.contains("unknown field `soruces`"), "{e}");
        assert_eq!(e.help.as_deref(), Some("did you mean `sources`?"));
    }

    #[test]
    fn unknown_dependency_key_suggests_dependency_fields() {
        let e = err("[dependencies]\nu = { pth = \"../u\" }\n");
        assert_eq!(e.help.as_deref(), Some("did you mean `path`?"), "{e}");
    }

    #[test]
    fn missing_field_suggests_an_example() {
        let e = err("[package]\nname = \"a\"\n");
        assert!(e.message.contains("missing field `version`"), "{e}");
        assert_eq!(e.help.as_deref(), Some("add `version = \"0.1.0\"`"));
    }

    #[test]
    fn bad_semver_points_at_the_value() {
        let e = err("[package]\nname = \"a\"\nversion = \"one\"\n");
        let loc = e.location.clone().unwrap();
        assert_eq!((loc.line, loc.column), (3, 11));
        assert!(e.message.contains("not a semantic version"), "{e}");
    }

    #[test]
    fn malformed_toml() {
        let e = err("[package\nname = 1\n");
        assert_eq!(e.kind, ErrorKind::ManifestSyntax);
        assert_eq!(e.location.unwrap().line, 1);
    }

    #[test]
    fn missing_file() {
        let e = ManifestFile::load(Path::new("/nonexistent/cmod.toml")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ManifestMissing);
        assert!(e.help.unwrap().contains("cmod init"));
    }
}
