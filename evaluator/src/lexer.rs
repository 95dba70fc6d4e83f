//! A small lexer for the declarations that shape the module graph: `module;`,
//! `[export] module name[:part];` and `[export] import name|:part|<hdr>|"hdr";`.
//!
//! clang-scan-deps is the authority on *which* modules a unit provides and requires
//! (it runs the preprocessor). This lexer adds what P1689 output lacks: the line of every
//! declaration for error messages, whether an import is re-exported, whether the unit is
//! an implementation unit (`module m;`) rather than a plain importer, and header-unit
//! imports, which are reported before the scanner sees them.
//!
//! It skips comments, string and character literals (raw strings included) and
//! preprocessor lines, and only looks at declarations at brace depth 0.

/// A module declaration: `[export] module name[:partition];`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleDecl {
    /// Fully qualified: `m` or `m:part`.
    pub name: String,
    /// `export module`: an interface or exported partition.
    pub exported: bool,
    /// 1-based line of the declaration.
    pub line: u32,
}

/// What an import names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportTarget {
    /// `import m;`
    Module(String),
    /// `import :part;` (the partition name without the colon).
    Partition(String),
    /// `import <h>;` or `import "h";`, spelled as written.
    Header(String),
}

/// An import declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportDecl {
    /// The module, partition or header imported.
    pub target: ImportTarget,
    /// `export import`.
    pub exported: bool,
    /// 1-based line of the declaration.
    pub line: u32,
}

/// Everything the lexer found in one unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declarations {
    /// Whether the unit opens with `module;` (a global module fragment).
    pub global_fragment: bool,
    /// The module declaration, if any.
    pub module: Option<ModuleDecl>,
    /// The import declarations, in source order.
    pub imports: Vec<ImportDecl>,
}

impl Declarations {
    /// The fully qualified name an import refers to, given this unit's module.
    pub fn qualified(&self, target: &ImportTarget) -> Option<String> {
        match target {
            ImportTarget::Module(m) => Some(m.clone()),
            ImportTarget::Partition(p) => {
                let module = self.module.as_ref()?.name.split(':').next()?.to_string();
                Some(format!("{module}:{p}"))
            }
            ImportTarget::Header(_) => None,
        }
    }

    /// Whether `target` refers to the fully qualified module `name` (what
    /// [`Declarations::qualified`] would say, without building the name).
    pub fn refers_to(&self, target: &ImportTarget, name: &str) -> bool {
        match target {
            ImportTarget::Module(m) => m == name,
            ImportTarget::Partition(p) => {
                let Some(module) = self.module.as_ref().and_then(|m| m.name.split(':').next())
                else {
                    return false;
                };
                name.strip_prefix(module)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .is_some_and(|rest| rest == p)
            }
            ImportTarget::Header(_) => false,
        }
    }

    /// The line of the import of qualified module `name`, if the lexer saw one.
    pub fn import_line(&self, name: &str) -> Option<u32> {
        self.imports
            .iter()
            .find(|i| self.refers_to(&i.target, name))
            .map(|i| i.line)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Punct(u8),
    /// A header name `<...>` or a string literal, as written.
    Str(String),
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
    line: u32,
    at_line_start: bool,
}

impl<'a> Lexer<'a> {
    fn peek(&self, k: usize) -> u8 {
        self.s.get(self.i + k).copied().unwrap_or(0)
    }

    fn bump(&mut self) -> u8 {
        let c = self.peek(0);
        self.i += 1;
        if c == b'\n' {
            self.line += 1;
            self.at_line_start = true;
        }
        c
    }

    /// Skip whitespace, comments and preprocessor lines.
    fn skip_trivia(&mut self) {
        loop {
            let c = self.peek(0);
            if c == b'\n' {
                self.bump();
            } else if c == b' ' || c == b'\t' || c == b'\r' || c == 0x0c || c == 0x0b {
                self.i += 1;
            } else if c == b'/' && self.peek(1) == b'/' {
                while self.i < self.s.len() && self.peek(0) != b'\n' {
                    self.i += 1;
                }
            } else if c == b'/' && self.peek(1) == b'*' {
                self.i += 2;
                while self.i < self.s.len() && !(self.peek(0) == b'*' && self.peek(1) == b'/') {
                    self.bump();
                }
                self.i = (self.i + 2).min(self.s.len());
            } else if c == b'#' && self.at_line_start {
                // A directive runs to the end of the line, with backslash continuations.
                while self.i < self.s.len() && self.peek(0) != b'\n' {
                    if self.peek(0) == b'\\' && self.peek(1) == b'\n' {
                        self.bump();
                    }
                    self.bump();
                }
            } else if c == b'\\' && self.peek(1) == b'\n' {
                self.bump();
                self.bump();
            } else {
                return;
            }
        }
    }

    fn quoted(&mut self, close: u8) -> String {
        let start = self.i;
        self.i += 1;
        while self.i < self.s.len() {
            let c = self.peek(0);
            if c == b'\\' {
                self.i += 2;
                continue;
            }
            if c == b'\n' {
                break;
            }
            self.i += 1;
            if c == close {
                break;
            }
        }
        String::from_utf8_lossy(&self.s[start..self.i.min(self.s.len())]).into_owned()
    }

    fn raw_string(&mut self) -> String {
        // At `"` after R / u8R / LR ...: R"delim( ... )delim"
        let start = self.i;
        self.i += 1;
        let dstart = self.i;
        while self.i < self.s.len() && self.peek(0) != b'(' && self.peek(0) != b'\n' {
            self.i += 1;
        }
        let delim = self.s[dstart..self.i.min(self.s.len())].to_vec();
        let mut end = Vec::with_capacity(delim.len() + 2);
        end.push(b')');
        end.extend_from_slice(&delim);
        end.push(b'"');
        while self.i < self.s.len() {
            if self.s[self.i..].starts_with(&end) {
                self.i += end.len();
                break;
            }
            self.bump();
        }
        String::from_utf8_lossy(&self.s[start..self.i.min(self.s.len())]).into_owned()
    }

    fn next(&mut self) -> Option<(Tok, u32)> {
        self.skip_trivia();
        if self.i >= self.s.len() {
            return None;
        }
        self.at_line_start = false;
        let line = self.line;
        let c = self.peek(0);
        if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let start = self.i;
            while self.i < self.s.len() {
                let c = self.peek(0);
                if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
                    self.i += 1;
                } else {
                    break;
                }
            }
            let word = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
            // String-literal prefixes: R"..", u8R"..", L'x' ...
            if self.peek(0) == b'"'
                && word.ends_with('R')
                && matches!(word.as_str(), "R" | "u8R" | "uR" | "UR" | "LR")
            {
                return Some((Tok::Str(self.raw_string()), line));
            }
            if matches!(self.peek(0), b'"' | b'\'')
                && matches!(word.as_str(), "u8" | "u" | "U" | "L")
            {
                let q = self.peek(0);
                return Some((Tok::Str(self.quoted(q)), line));
            }
            return Some((Tok::Ident(word), line));
        }
        if c == b'"' || c == b'\'' {
            return Some((Tok::Str(self.quoted(c)), line));
        }
        if c.is_ascii_digit() {
            while self.i < self.s.len()
                && (self.peek(0).is_ascii_alphanumeric() || matches!(self.peek(0), b'.' | b'\''))
            {
                self.i += 1;
            }
            return Some((Tok::Punct(b'0'), line));
        }
        self.i += 1;
        Some((Tok::Punct(c), line))
    }

    /// After `import`, a `<...>` header name is one token.
    fn header_name(&mut self) -> Option<String> {
        self.skip_trivia();
        if self.peek(0) == b'<' {
            return Some(self.quoted(b'>'));
        }
        None
    }
}

/// Lex `source` and collect its module and import declarations.
pub fn scan_declarations(source: &[u8]) -> Declarations {
    let mut lx = Lexer {
        s: source,
        i: 0,
        line: 1,
        at_line_start: true,
    };
    let mut out = Declarations::default();
    let mut depth: i32 = 0;
    let mut at_statement_start = true;
    while let Some((tok, line)) = lx.next() {
        match &tok {
            Tok::Punct(b'{') => {
                depth += 1;
                at_statement_start = true;
                continue;
            }
            Tok::Punct(b'}') => {
                depth -= 1;
                at_statement_start = true;
                continue;
            }
            Tok::Punct(b';') => {
                at_statement_start = true;
                continue;
            }
            _ => {}
        }
        if depth != 0 || !at_statement_start {
            continue;
        }
        at_statement_start = false;
        let Tok::Ident(word) = tok else { continue };
        let (exported, keyword, kw_line) = if word == "export" {
            match lx.next() {
                Some((Tok::Ident(w), _)) if w == "module" || w == "import" => (true, w, line),
                Some((Tok::Punct(b'{'), _)) => {
                    depth += 1;
                    at_statement_start = true;
                    continue;
                }
                _ => continue,
            }
        } else if word == "module" || word == "import" {
            (false, word, line)
        } else {
            continue;
        };
        if keyword == "module" {
            module_declaration(&mut lx, &mut out, exported, kw_line);
            at_statement_start = true;
        } else {
            at_statement_start = import_declaration(&mut lx, &mut out, exported, kw_line);
        }
    }
    out
}

/// After `module` (`exported` with `export`, at `line`): the global module fragment,
/// or the unit's module name (the first one; `module :private;` is not a name).
fn module_declaration(lx: &mut Lexer<'_>, out: &mut Declarations, exported: bool, line: u32) {
    match parse_module_name(lx, true) {
        ParsedName::Empty => out.global_fragment = true,
        ParsedName::Name(name) => {
            if !name.starts_with(':') && out.module.is_none() {
                out.module = Some(ModuleDecl {
                    name,
                    exported,
                    line,
                });
            }
        }
        ParsedName::Invalid => {}
    }
}

/// After `import`: a header unit (`<h>` or `"h"`), a partition or a module. Returns
/// whether a new statement starts after it (not after a header name).
fn import_declaration(
    lx: &mut Lexer<'_>,
    out: &mut Declarations,
    exported: bool,
    line: u32,
) -> bool {
    let mut import = |target| {
        out.imports.push(ImportDecl {
            target,
            exported,
            line,
        })
    };
    if let Some(h) = lx.header_name() {
        import(ImportTarget::Header(h));
        return false;
    }
    let save = (lx.i, lx.line, lx.at_line_start);
    if let Some((Tok::Str(s), _)) = lx.next() {
        import(ImportTarget::Header(s));
        return false;
    }
    (lx.i, lx.line, lx.at_line_start) = save;
    if let ParsedName::Name(name) = parse_module_name(lx, false) {
        import(match name.strip_prefix(':') {
            Some(p) => ImportTarget::Partition(p.to_string()),
            None => ImportTarget::Module(name),
        });
    }
    true
}

enum ParsedName {
    /// `module;`
    Empty,
    Name(String),
    Invalid,
}

/// Parse `a.b[:c.d]` up to `;` (attributes `[[...]]` before `;` are skipped).
fn parse_module_name(lx: &mut Lexer<'_>, allow_empty: bool) -> ParsedName {
    let mut name = String::new();
    let mut expect_ident = true;
    loop {
        let Some((tok, _)) = lx.next() else {
            return ParsedName::Invalid;
        };
        match tok {
            Tok::Punct(b';') => {
                return if name.is_empty() {
                    if allow_empty {
                        ParsedName::Empty
                    } else {
                        ParsedName::Invalid
                    }
                } else {
                    ParsedName::Name(name)
                };
            }
            Tok::Ident(w) if expect_ident => {
                name.push_str(&w);
                expect_ident = false;
            }
            Tok::Punct(b'.') if !expect_ident => {
                name.push('.');
                expect_ident = true;
            }
            Tok::Punct(b':') if !name.contains(':') => {
                name.push(':');
                expect_ident = true;
            }
            Tok::Punct(b'[') => {
                // Skip an attribute list.
                let mut depth = 1;
                while depth > 0 {
                    match lx.next() {
                        Some((Tok::Punct(b'['), _)) => depth += 1,
                        Some((Tok::Punct(b']'), _)) => depth -= 1,
                        Some(_) => {}
                        None => return ParsedName::Invalid,
                    }
                }
            }
            _ => return ParsedName::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(s: &str) -> Declarations {
        scan_declarations(s.as_bytes())
    }

    #[test]
    fn refers_to_agrees_with_qualified() {
        let names = [
            "geo",
            "geo:detail",
            "geo:det",
            "geo:detailx",
            "geox:detail",
            "std",
            "detail",
            "geo:",
            ":detail",
        ];
        for text in [
            "export module geo:shapes;\nimport :detail;\nimport std;\nimport <x.h>;\n",
            "module geo;\nimport :detail;\n",
            "import :detail;\nimport geo;\n",
        ] {
            let d = lex(text);
            for i in &d.imports {
                for n in names {
                    assert_eq!(
                        d.refers_to(&i.target, n),
                        d.qualified(&i.target).as_deref() == Some(n),
                        "{text:?} {:?} {n}",
                        i.target
                    );
                }
            }
        }
    }

    #[test]
    fn interface_with_partitions() {
        let d = lex("module;\n#include <cstdio>\nexport module geo;\nexport import :shapes;\nimport :detail;\nimport std;\n");
        assert!(d.global_fragment);
        assert_eq!(
            d.module,
            Some(ModuleDecl {
                name: "geo".into(),
                exported: true,
                line: 3
            })
        );
        assert_eq!(d.imports.len(), 3);
        assert_eq!(
            d.imports[0].target,
            ImportTarget::Partition("shapes".into())
        );
        assert!(d.imports[0].exported);
        assert_eq!(d.imports[1].line, 5);
        assert!(!d.imports[1].exported);
        assert_eq!(
            d.qualified(&d.imports[1].target).as_deref(),
            Some("geo:detail")
        );
        assert_eq!(d.import_line("std"), Some(6));
    }

    #[test]
    fn partitions_and_implementation_units() {
        let d = lex("export module a.b:c.d;");
        assert_eq!(d.module.unwrap().name, "a.b:c.d");
        let d = lex("module a.b;\nint f() { return 1; }\n");
        let m = d.module.unwrap();
        assert_eq!((m.name.as_str(), m.exported), ("a.b", false));
        let d = lex("module m:internal;");
        assert_eq!(d.module.unwrap().name, "m:internal");
    }

    #[test]
    fn ignores_comments_strings_and_nested_code() {
        let src = r#"
// import fake1;
/* import fake2;
   export module fake3; */
const char* s = "import fake4;";
const char* r = R"x(
import fake5;
)x";
#define X import fake6;
namespace n { int import = 3; }
void f() { module m; }
import real;
"#;
        let d = lex(src);
        assert_eq!(d.imports.len(), 1, "{d:?}");
        assert_eq!(d.imports[0].target, ImportTarget::Module("real".into()));
        assert_eq!(d.imports[0].line, 12);
        assert!(d.module.is_none());
    }

    #[test]
    fn header_units_are_recognised() {
        let d = lex("import <vector>;\nexport import \"foo.h\";\n");
        assert_eq!(d.imports[0].target, ImportTarget::Header("<vector>".into()));
        assert_eq!(
            d.imports[1].target,
            ImportTarget::Header("\"foo.h\"".into())
        );
        assert!(d.imports[1].exported);
    }

    #[test]
    fn private_fragment_and_attributes() {
        let d = lex("export module m [[deprecated]];\nmodule :private;\n");
        assert_eq!(d.module.unwrap().name, "m");
    }

    #[test]
    fn export_block_is_not_a_declaration() {
        let d = lex("export module m;\nexport { int f(); }\nimport n;\n");
        assert_eq!(d.imports.len(), 1);
        assert_eq!(d.imports[0].line, 3);
    }

    #[test]
    fn multi_line_declarations_report_the_keyword_line() {
        let d = lex("export\nmodule\n  m\n;\nimport\n  x;\n");
        assert_eq!(d.module.unwrap().line, 1);
        assert_eq!(d.imports[0].line, 5);
    }
}
