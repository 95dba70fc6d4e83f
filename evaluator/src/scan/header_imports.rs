//! Header-unit imports (`import <vector>;`, `export import "cfg.h";`) as the scanner can
//! see them.
//!
//! clang-scan-deps 19 stops at a header-unit import ("cannot be imported because it is
//! not known to be a header unit"): P1689 scanning knows no header units. cmod's lexer
//! sees those lines, so the scanner is given a copy of the unit in which each one is a
//! `#include` of the same header, followed by a `#line` directive that keeps every later
//! line at its number. For what a scan reports that is what the import means: the
//! header's macros are visible after it (a later `#if` that tests one is decided as the
//! compile will decide it), and the header's own includes become the unit's header
//! dependencies, so the unit is rebuilt when one changes. The copy lives in the scanner's
//! scratch directory; the original's directory is searched first for quoted includes (as
//! it would be for the original), and every path the scanner reports for the copy is
//! mapped back to the unit.

use cmod_schema::diag::Location;

use crate::error::{ErrorKind, EvalError};
use crate::lexer::{Declarations, ImportTarget};
use crate::scan::ScanItem;

/// Whether a scan item is a system header unit's (`vector`: no file of the package).
pub fn is_system_header_item(item: &ScanItem) -> bool {
    item.args
        .first()
        .is_some_and(|a| a == "-fmodule-header=system")
}

/// A scanner failure at a header-unit import of one of `units` (path and declarations)
/// because the header does not exist, said as such; any other error as it is.
pub fn missing_header_unit(
    error: EvalError,
    units: &[(std::path::PathBuf, &Declarations)],
) -> EvalError {
    let Some(at) = error.location.clone() else {
        return error;
    };
    if !error.message.contains("not found") {
        return error;
    }
    let Some(import) = units
        .iter()
        .filter(|(path, _)| *path == at.file)
        .flat_map(|(_, d)| header_imports(d))
        .find(|i| i.line == at.line)
    else {
        return error;
    };
    EvalError::new(
        ErrorKind::UnknownImport,
        format!("header unit `{}` does not exist: no such header on the include path", import.spelling),
    )
    .at(Location { column: 1, ..at })
    .note(None, format!("the compiler said: {}", error.message))
    .help("check the header's name; a package header is found beside the unit or in an include directory (`include-dirs`, a dependency's `public-include-dirs`), a system header on the compiler's include path (`import <h>;`)")
}

/// A header-unit import of a unit: the header as spelled (`<vector>`, `"cfg.h"`), the
/// line of the import and whether it is re-exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderImport {
    /// `<name>` or `"name"`, as written.
    pub spelling: String,
    /// 1-based line of the import declaration.
    pub line: u32,
    /// `export import`.
    pub exported: bool,
}

impl HeaderImport {
    /// The header's name without its delimiters.
    pub fn name(&self) -> &str {
        &self.spelling[1..self.spelling.len().saturating_sub(1).max(1)]
    }

    /// Whether it is spelled `<name>` (searched on the include path only).
    pub fn is_angled(&self) -> bool {
        self.spelling.starts_with('<')
    }
}

/// The header-unit imports among `decls`, in source order.
pub fn header_imports(decls: &Declarations) -> Vec<HeaderImport> {
    decls
        .imports
        .iter()
        .filter_map(|i| match &i.target {
            ImportTarget::Header(h) if h.len() >= 2 => Some(HeaderImport {
                spelling: h.clone(),
                line: i.line,
                exported: i.exported,
            }),
            _ => None,
        })
        .collect()
}

/// The text the scanner is given for a unit with header-unit imports (`None` without
/// any): each such import becomes `#include <h>` on a line of its own before the line
/// that held it, the declaration itself is blanked on that line, and a `#line` directive
/// restores the numbering, so the scanner's diagnostics name the original lines.
pub fn rewrite_for_scanner(text: &[u8], decls: &Declarations) -> Option<Vec<u8>> {
    let imports = header_imports(decls);
    if imports.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() + 64 * imports.len());
    for (n, line) in text.split_inclusive(|&b| b == b'\n').enumerate() {
        let number = n as u32 + 1;
        let here: Vec<&HeaderImport> = imports.iter().filter(|i| i.line == number).collect();
        if here.is_empty() {
            out.extend_from_slice(line);
            continue;
        }
        let mut kept = line.to_vec();
        for import in &here {
            out.extend_from_slice(format!("#include {}\n", import.spelling).as_bytes());
            blank_declaration(&mut kept, &import.spelling);
        }
        out.extend_from_slice(format!("#line {number}\n").as_bytes());
        out.extend_from_slice(&kept);
    }
    Some(out)
}

/// Blank (with spaces) the declaration `[export] import <spelling> ;` on `line`; if it is
/// not all on this line, blank the line from the spelling on (the rest of a declaration
/// split over lines is only `;`, which the scanner ignores as an empty declaration).
fn blank_declaration(line: &mut [u8], spelling: &str) {
    let Some(at) = find(line, spelling.as_bytes()) else {
        return;
    };
    let before = &line[..at];
    let start = rfind(before, b"import").map_or(at, |i| {
        let lead = &before[..i];
        let trimmed = lead.trim_ascii_end();
        if trimmed.ends_with(b"export") {
            trimmed.len() - "export".len()
        } else {
            i
        }
    });
    let after = at + spelling.len();
    let end = line[after..]
        .iter()
        .position(|&b| b == b';')
        .map_or(line.len(), |p| after + p + 1);
    for b in &mut line[start..end] {
        if *b != b'\n' {
            *b = b' ';
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::scan_declarations;

    fn rewrite(text: &str) -> String {
        let decls = scan_declarations(text.as_bytes());
        String::from_utf8(rewrite_for_scanner(text.as_bytes(), &decls).unwrap()).unwrap()
    }

    #[test]
    fn imports_become_includes_and_lines_keep_their_numbers() {
        let text = "export module m;\nimport <vector>;\nexport import \"cfg.h\"; import n;\n#if CFG\nimport o;\n#endif\n";
        assert_eq!(
            rewrite(text),
            "export module m;\n#include <vector>\n#line 2\n                \n#include \"cfg.h\"\n#line 3\n                       import n;\n#if CFG\nimport o;\n#endif\n"
        );
    }

    #[test]
    fn units_without_header_units_are_scanned_as_they_are() {
        let text = "export module m;\nimport n;\n#include <vector>\n";
        let decls = scan_declarations(text.as_bytes());
        assert_eq!(rewrite_for_scanner(text.as_bytes(), &decls), None);
    }

    #[test]
    fn header_imports_say_how_they_are_spelled() {
        let decls = scan_declarations(
            b"module;\nexport module m;\nexport import <string>;\nimport \"a/b.h\";\nimport x;\n",
        );
        let found = header_imports(&decls);
        assert_eq!(found.len(), 2);
        assert_eq!(
            (
                found[0].name(),
                found[0].is_angled(),
                found[0].exported,
                found[0].line
            ),
            ("string", true, true, 3)
        );
        assert_eq!(
            (
                found[1].name(),
                found[1].is_angled(),
                found[1].exported,
                found[1].line
            ),
            ("a/b.h", false, false, 4)
        );
    }
}
