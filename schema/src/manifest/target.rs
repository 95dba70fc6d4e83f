//! Targets of a manifest: `[lib]` (or several `[[lib]]`), `[[bin]]` and `[[test]]`, their
//! per-target build settings and per-source overrides, and the C standard.
//!
//! The three tables share one type, [`Target`]: which fields apply to which kind of
//! target (a `main` for executables, `public-*` settings and `kind` for libraries) is
//! checked by the evaluator, which can point at the offending line and say what to
//! write instead.

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use toml::Spanned;

/// One target: a library, a binary or a test. See the module documentation.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Target {
    /// The target's name. A library's archive is `lib<name>.a`; a lone `[lib]` defaults
    /// to the package name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Spanned<String>>,
    /// The unit that defines `main()` (binaries and tests only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<Spanned<String>>,
    /// Globs (or files) relative to the package root. A library defaults to
    /// `src/**/*.cppm`, `src/**/*.cpp` and `src/**/*.c`; an executable to none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<Spanned<String>>>,
    /// Libraries only: only static archives exist in format v1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Spanned<LibKind>>,
    /// Other libraries of this package that this target uses (privately).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uses: Vec<Spanned<String>>,
    /// Libraries of this package whose usage requirements this library passes on to its
    /// own consumers (libraries only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_uses: Vec<Spanned<String>>,
    /// `NAME` or `NAME=VALUE` for this target's units.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defines: Vec<Spanned<String>>,
    /// Defines for this library's units and every unit that uses the library.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_defines: Vec<Spanned<String>>,
    /// Package-relative include directories for this target's units.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_dirs: Vec<Spanned<String>>,
    /// Include directories for this library's units and every unit that uses it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_include_dirs: Vec<Spanned<String>>,
    /// Extra flags for this target's C++ units.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cxxflags: Vec<Spanned<String>>,
    /// Extra flags for this target's C units.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cflags: Vec<Spanned<String>>,
    /// Extra link flags: an executable's own link, or every link that includes a library.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ldflags: Vec<Spanned<String>>,
    /// System libraries by name (`pthread`, `m`, `dl`), found on the toolchain's library
    /// path and hashed; a library passes them on to every link that includes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Spanned<String>>,
    /// The modules other packages may import (libraries only); unset: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_modules: Option<Spanned<Vec<Spanned<String>>>>,
    /// A header precompiled once and used by the target's non-module C++ units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pch: Option<Spanned<String>>,
    /// Extra settings for the sources matching a glob.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<Spanned<SourceOverride>>,
}

/// Extra settings for some of a target's sources (`[[lib.overrides]]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SourceOverride {
    /// Globs relative to the package root, matched against the target's units.
    pub files: Vec<Spanned<String>>,
    /// `NAME` or `NAME=VALUE` for the matching sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defines: Vec<Spanned<String>>,
    /// Package-relative include directories for the matching sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_dirs: Vec<Spanned<String>>,
    /// Extra flags for the matching C++ sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cxxflags: Vec<Spanned<String>>,
    /// Extra flags for the matching C sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cflags: Vec<Spanned<String>>,
}

/// The kind of library. Only static archives exist in format v1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LibKind {
    /// A static archive (`lib<name>.a`).
    #[default]
    Static,
}

/// The `lib` key: written either as one `[lib]` table or as an array of `[[lib]]`
/// tables. Kept as the list of tables, with how it was written.
#[derive(Debug, Clone, Default)]
pub struct Libs {
    /// The `[lib]`/`[[lib]]` tables, in manifest order.
    pub tables: Vec<Spanned<Target>>,
    /// Written as `[[lib]]` (an array), not `[lib]`.
    pub array: bool,
}

impl Libs {
    /// Whether the manifest has no library.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

/// How `lib` was written, before the span of a lone `[lib]` table is known.
struct RawLibs(Libs);

impl<'de> Deserialize<'de> for RawLibs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LibsVisitor;
        impl<'de> Visitor<'de> for LibsVisitor {
            type Value = RawLibs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a [lib] table or an array of [[lib]] tables")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawLibs, A::Error> {
                let t = Target::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawLibs(Libs {
                    tables: vec![Spanned::new(0..0, t)],
                    array: false,
                }))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawLibs, A::Error> {
                let tables = Vec::<Spanned<Target>>::deserialize(
                    de::value::SeqAccessDeserializer::new(seq),
                )?;
                Ok(RawLibs(Libs {
                    tables,
                    array: true,
                }))
            }
        }
        d.deserialize_any(LibsVisitor)
    }
}

impl<'de> Deserialize<'de> for Libs {
    /// A lone `[lib]` table takes the span of the whole `lib` value (the table header),
    /// which the table itself cannot see when it is read as one of two shapes.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<RawLibs>::deserialize(d)?;
        let span = spanned.span();
        let mut libs = spanned.into_inner().0;
        if !libs.array {
            libs.tables = libs
                .tables
                .into_iter()
                .map(|t| Spanned::new(span.clone(), t.into_inner()))
                .collect();
        }
        Ok(libs)
    }
}

impl Serialize for Libs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.array, self.tables.as_slice()) {
            (false, [one]) => one.get_ref().serialize(s),
            (_, many) => s.collect_seq(many.iter().map(Spanned::get_ref)),
        }
    }
}

/// The C standard for `.c` units (`[toolchain] c-standard`, default 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CStandard {
    /// The year of the standard as two digits: 89, 99, 11, 17 or 23.
    pub year: u32,
    /// GNU dialect (`gnu17`) rather than ISO (`c17`).
    pub gnu: bool,
}

impl Default for CStandard {
    fn default() -> Self {
        CStandard {
            year: 17,
            gnu: false,
        }
    }
}

impl CStandard {
    /// The `-std=` value.
    pub fn flag(self) -> String {
        let year = if self.year == 89 { 89 } else { self.year };
        format!("-std={}{year:02}", if self.gnu { "gnu" } else { "c" })
    }

    /// The value as written in the manifest (`c17`, `gnu11`).
    pub fn name(self) -> String {
        format!("{}{:02}", if self.gnu { "gnu" } else { "c" }, self.year)
    }

    fn parse(s: &str) -> Result<CStandard, String> {
        let (gnu, year) = match (s.strip_prefix("gnu"), s.strip_prefix('c')) {
            (Some(y), _) => (true, y),
            (None, Some(y)) => (false, y),
            (None, None) => (false, s),
        };
        match year {
            "89" | "99" | "11" | "17" | "23" => Ok(CStandard {
                year: year.parse().unwrap_or(17),
                gnu,
            }),
            _ => Err(format!(
                "unsupported C standard `{s}`: use 89, 99, 11, 17 or 23 (or \"gnu17\" and the like for GNU extensions)"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for CStandard {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = super::int_or_text(d)?;
        CStandard::parse(&text).map_err(de::Error::custom)
    }
}

impl Serialize for CStandard {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.gnu {
            s.serialize_str(&self.name())
        } else {
            s.serialize_u32(self.year)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize)]
    struct Doc {
        lib: Libs,
    }

    #[test]
    fn one_lib_or_many_keep_their_spans() {
        let text = "[lib]\nname = \"a\"\nsources = [\"src/*.c\"]\n";
        let d: Doc = toml::from_str(text).unwrap();
        assert!(!d.lib.array);
        let name = d.lib.tables[0].get_ref().name.clone().unwrap();
        assert_eq!(&text[name.span()], "\"a\"");
        assert_eq!(
            &text[d.lib.tables[0].span()],
            "[lib]",
            "a lone table points at its header"
        );
        let text = "[[lib]]\nname = \"a\"\n[[lib]]\nname = \"b\"\ndefines = [\"X\"]\n";
        let d: Doc = toml::from_str(text).unwrap();
        assert!(d.lib.array);
        assert_eq!(d.lib.tables.len(), 2);
        let b = d.lib.tables[1].get_ref();
        assert_eq!(&text[b.defines[0].span()], "\"X\"");
        assert_eq!(
            toml::to_string(&d).unwrap(),
            "[[lib]]\nname = \"a\"\n\n[[lib]]\nname = \"b\"\ndefines = [\"X\"]\n"
        );
        let err = toml::from_str::<Doc>("[lib]\nnmae = \"a\"\n").unwrap_err();
        assert!(err.message().contains("unknown field `nmae`"), "{err}");
        assert!(toml::from_str::<Doc>("lib = 3\n").is_err());
    }

    #[test]
    fn c_standards() {
        assert_eq!(CStandard::parse("17").unwrap().flag(), "-std=c17");
        assert_eq!(CStandard::parse("c11").unwrap().flag(), "-std=c11");
        assert_eq!(CStandard::parse("gnu99").unwrap().flag(), "-std=gnu99");
        assert_eq!(CStandard::parse("89").unwrap().flag(), "-std=c89");
        assert!(CStandard::parse("14")
            .unwrap_err()
            .contains("89, 99, 11, 17 or 23"));
        assert_eq!(CStandard::default().flag(), "-std=c17");
    }
}
