//! The **shape** of a unit: everything in its text that can change what scanning finds.
//!
//! The scanner (`clang-scan-deps`) runs the preprocessor over a unit's directives only:
//! its findings (modules provided and required, headers included) depend on the
//! preprocessing directives, the `module`/`import` declarations and the flags, never on
//! the code between them. So a unit whose edit leaves every such line as it was keeps its
//! scan result, and an edit of a function body needs no scanner process: the result
//! cached for the unit's previous text is reused (its headers still checked by hash, and
//! the lexer's view recomputed and compared, since brace depth decides which
//! declarations it sees).
//!
//! The shape is deliberately coarse, a superset of what matters: every line containing
//! `#`, the digraph `%:` or the trigraph `??=` (which can begin a directive), `import` or
//! `module`, every line ending in a backslash and the line after it (continuations), each
//! with its line number (`__LINE__` and diagnostics see positions). Comments and strings
//! are not stripped: a line that only looks relevant costs a scan, never a wrong result.

use crate::scan::ScanItem;

/// The shape key of `item` with source `text` (see [`cmod_schema::keys::scan_shape_key`]).
pub fn shape_key(identity: &str, item: &ScanItem, text: &[u8]) -> String {
    cmod_schema::keys::scan_shape_key(identity, &item.rel, &item.args, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmod_schema::ContentHash;

    fn key(text: &str) -> String {
        let item = ScanItem {
            rel: "src/a.cpp".into(),
            hash: ContentHash::of_file(false, text.as_bytes()),
            args: vec!["-x".into(), "c++".into()],
            host_args: vec![],
            source: None,
        };
        shape_key("tc", &item, text.as_bytes())
    }

    const UNIT: &str = "module;\n#include <vector>\n#define TWICE(x) \\\n  ((x) * 2)\nmodule m;\nimport n;\nint f() { return TWICE(1); }\n";

    include!("../../../schema/golden/golden.rs");

    /// Golden vector (`schema/golden/vectors.txt`, re-derived by `reference.py`): a CRLF
    /// line, a continued macro, a trigraph line and lines that do not count.
    #[test]
    fn golden_shape_key() {
        let text = "module;\r\n#include <vector>\n#define TWICE(x) \\\n  ((x) * 2)\nmodule m;\n\
                    import n;\nint f() { return TWICE(1); }\nint g = 1 ??= 2;\n";
        let item = ScanItem {
            rel: "src/a.cpp".into(),
            hash: ContentHash::of_file(false, text.as_bytes()),
            args: vec!["-x".into(), "c++".into()],
            host_args: vec![],
            source: None,
        };
        let identity = ContentHash::of_file(false, b"toolchain").to_text();
        let key = shape_key(&identity, &item, text.as_bytes());
        assert_golden(&[("scan.shape", key)]);
    }

    #[test]
    fn a_body_edit_keeps_the_shape() {
        assert_eq!(key(UNIT), key(&UNIT.replace("TWICE(1)", "TWICE(2) + 7")));
    }

    #[test]
    fn every_line_that_can_matter_changes_it() {
        for (from, to) in [
            ("<vector>", "<string>"),                // an include
            ("((x) * 2)", "((x) * 3)"),              // a continued macro line
            ("import n;", "import o;"),              // an import
            ("module m;", "module q;"),              // the module declaration
            ("int f()", "%:include <map>\nint f()"), // a digraph directive (and a shift)
            ("int f()", "\nint f()"),                // a line inserted moves what follows
            ("int f() {", "int f() { /* # */"),      // looks relevant: counted, conservatively
        ] {
            assert_ne!(key(UNIT), key(&UNIT.replace(from, to)), "{from} -> {to}");
        }
        assert_ne!(key(UNIT), key(&format!("{UNIT}\n")), "a trailing line");
    }
}
