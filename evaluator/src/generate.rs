//! Generated files (`[[generate]]`): template substitution, done while a package is
//! loaded, before its sources are listed; and the generators that run a program, checked
//! here and listed with their outputs once they have run (see [`program`]).
//!
//! A template generator is a pure function of the template's text and the values it is
//! given, so cmod computes it itself instead of starting a program (there is nothing to
//! sandbox): `@NAME@` and `${NAME}` become the value of `NAME` from the generator's
//! `vars`, or the built-in `PACKAGE_NAME` and `PACKAGE_VERSION`; a name without a value is
//! an error at the template's line. The result is written under the store's cache
//! directory (`cache/generated/<package>/<output>`), only when it differs from what is
//! there, so an unchanged output keeps its file and its stamp; from there it is hashed,
//! scanned and added to the store like any unit (at `src/<package>/<output>` in the
//! build: the path the manifest declares), so a template edit that leaves the output as
//! it was rebuilds nothing (early cutoff by content). The template is read through the
//! input journal, so editing it makes the next no-op evaluate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cmod_schema::diag::Location;
use cmod_schema::manifest::{Generate, Spanned};
use cmod_schema::ContentHash;

use crate::error::{ErrorKind, EvalError};
use crate::manifest_file::ManifestFile;

pub mod program;

/// One generated file: which generator writes it and where its bytes are on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// The generator's name.
    pub generator: String,
    /// Where the file was written.
    pub host: PathBuf,
}

/// The package's generated files by their declared (package-relative) paths.
pub type Generated = BTreeMap<String, GeneratedFile>;

/// Where the outputs of generators that run a program are, once they have run: by
/// (package root, generator name), each declared path's file on this machine (in the
/// store). A generator missing here has not run: its outputs are pending.
pub type ProgramOutputs = BTreeMap<(PathBuf, String), BTreeMap<String, PathBuf>>;

/// A generator that runs a `[[bin]]` of its package (`run`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramGenerator {
    /// The generator's name.
    pub name: String,
    /// The dependency (its key in `[dependencies]`) whose `[[bin]]` it runs; `None`: a
    /// `[[bin]]` of its own package.
    pub dependency: Option<String>,
    /// The `[[bin]]` it runs.
    pub bin: String,
    /// The program's arguments.
    pub args: Vec<String>,
    /// The `inputs` patterns as written, with where each is in the manifest.
    pub patterns: Vec<(String, Location)>,
    /// The package files it reads (the patterns expanded, sorted).
    pub inputs: Vec<String>,
    /// Their content hashes, in the same order (once the package's files are hashed).
    pub input_hashes: Vec<ContentHash>,
    /// The files it writes, package-relative, in manifest order.
    pub outputs: Vec<String>,
    /// Whether it has run (its outputs are listed with the package's files).
    pub ran: bool,
    /// Where its `run` is in the manifest.
    pub location: Location,
}

/// What a package's generators write: the files known now, and the generators that run
/// a program.
#[derive(Debug, Clone, Default)]
pub struct Generators {
    /// Every generated file that exists (templates', and programs' that have run).
    pub files: Generated,
    /// The generators that run a program.
    pub programs: Vec<ProgramGenerator>,
}

/// Whether generator `name` of the package in `file` has run (its outputs are in `ran`).
pub fn has_run(file: &ManifestFile, name: &str, ran: &ProgramOutputs) -> bool {
    ran.contains_key(&(file.dir().to_path_buf(), name.to_string()))
}

/// Whether the package in `file` has a generator that runs a program and has not run
/// (its outputs are not in `ran`).
pub fn has_pending_programs(file: &ManifestFile, ran: &ProgramOutputs) -> bool {
    file.manifest
        .generate
        .iter()
        .any(|g| g.get_ref().run.is_some() && !has_run(file, g.get_ref().name.get_ref(), ran))
}

/// The names of the package's own `[[bin]]`s its generators run (not a dependency's:
/// `run = "<dependency>/<bin>"`).
pub fn generator_bins(file: &ManifestFile) -> BTreeSet<String> {
    file.manifest
        .generate
        .iter()
        .filter_map(|g| g.get_ref().run.as_ref().map(|r| r.get_ref().clone()))
        .filter(|run| !run.contains('/'))
        .collect()
}

/// Run the package's template generators (see the module documentation), writing their
/// outputs under `cache_dir` (a temporary directory without one), and check those that
/// run a program, whose outputs are listed when `ran` has them.
pub fn generate(
    file: &ManifestFile,
    cache_dir: Option<&Path>,
    ran: &ProgramOutputs,
) -> Result<Generators, EvalError> {
    let mut out = Generators::default();
    if file.manifest.generate.is_empty() {
        return Ok(out);
    }
    let root = file.dir();
    let base = cache_dir
        .map_or_else(|| std::env::temp_dir().join("cmod"), Path::to_path_buf)
        .join("generated")
        .join(&blake3::hash(root.as_os_str().as_encoded_bytes()).to_hex()[..16]);
    let mut names: BTreeSet<String> = BTreeSet::new();
    for spanned in &file.manifest.generate {
        let g = spanned.get_ref();
        let name = g.name.get_ref().clone();
        if !names.insert(name.clone()) {
            return Err(manifest_error(
                file,
                g.name.span(),
                format!("two generators are named `{name}`"),
                "give each [[generate]] its own `name`",
            ));
        }
        let mut claim = |rel: String, span: std::ops::Range<usize>, host: Option<PathBuf>| {
            if out.files.contains_key(&rel) || out.programs.iter().any(|p| p.outputs.contains(&rel))
            {
                return Err(manifest_error(
                    file,
                    span,
                    format!("`{rel}` is written by two generators"),
                    "give each generator its own outputs",
                ));
            }
            if let Some(host) = host {
                let generator = name.clone();
                out.files.insert(rel, GeneratedFile { generator, host });
            }
            Ok(())
        };
        match (&g.template, &g.run) {
            (Some(template), None) => {
                let output = template_output(file, g, template)?;
                let rel = checked_output(file, g, output)?;
                let text = substitute(file, g, template)?;
                let host = base.join(&rel);
                write_if_changed(&host, text.as_bytes())?;
                claim(rel, output.span(), Some(host))?;
            }
            (None, Some(run)) => {
                let program = crate::generate::program::check(file, g, run, ran)?;
                for (rel, span) in program
                    .outputs
                    .iter()
                    .zip(g.outputs.iter().map(|o| o.span()))
                {
                    let host = ran
                        .get(&(root.to_path_buf(), name.clone()))
                        .and_then(|files| files.get(rel).cloned());
                    claim(rel.clone(), span, host)?;
                }
                out.programs.push(program);
            }
            (Some(_), Some(run)) => {
                return Err(manifest_error(
                    file,
                    run.span(),
                    format!("generator `{name}` has both `template` and `run`"),
                    "a generator either fills a `template` or runs a program: split it in two",
                ))
            }
            (None, None) => return Err(manifest_error(
                file,
                spanned.span(),
                format!("generator `{name}` has neither `template` nor `run`"),
                "add `template = \"<file>\"` with `output`, or `run = \"<bin>\"` with `outputs`",
            )),
        }
    }
    Ok(out)
}

/// A template generator's `output`, which it must have (and no `run` fields).
fn template_output<'g>(
    file: &ManifestFile,
    g: &'g Generate,
    template: &Spanned<String>,
) -> Result<&'g Spanned<String>, EvalError> {
    let stray = [
        (!g.args.is_empty(), "args"),
        (!g.inputs.is_empty(), "inputs"),
        (!g.outputs.is_empty(), "outputs"),
    ];
    if let Some((_, field)) = stray.iter().find(|(set, _)| *set) {
        return Err(manifest_error(
            file,
            template.span(),
            format!(
                "generator `{}` fills a template but has `{field}`, which only a generator that runs a program has",
                g.name.get_ref()
            ),
            "a template generator has `template`, `output` and `vars`",
        ));
    }
    g.output.as_ref().ok_or_else(|| {
        manifest_error(
            file,
            template.span(),
            format!("generator `{}` has no `output`", g.name.get_ref()),
            "add `output = \"gen/<file>\"`: where the filled template is written",
        )
    })
}

pub(crate) fn manifest_error(
    file: &ManifestFile,
    span: std::ops::Range<usize>,
    message: String,
    help: &str,
) -> EvalError {
    EvalError::new(ErrorKind::ManifestInvalid, message)
        .at(file.location_or_file(span))
        .help(help)
}

/// The generator's output path, normalised: inside the package, a translation unit, and
/// not a file the package already has.
pub(crate) fn checked_output(
    file: &ManifestFile,
    g: &Generate,
    output: &Spanned<String>,
) -> Result<String, EvalError> {
    let written = output.get_ref();
    let rel = crate::paths::normalize_relative(written).ok_or_else(|| {
        manifest_error(
            file,
            output.span(),
            format!("output `{written}` is outside the package"),
            "write the output at a path inside the package, e.g. `gen/version.cppm`",
        )
    })?;
    if rel.is_empty() || written.starts_with('/') {
        return Err(manifest_error(
            file,
            output.span(),
            format!("output `{written}` is not a path inside the package"),
            "write the output at a path inside the package, e.g. `gen/version.cppm`",
        ));
    }
    if !crate::sources::is_unit(&rel) {
        return Err(manifest_error(file, output.span(), format!("generator `{}` writes `{rel}`, which is not a translation unit", g.name.get_ref()), "a generator writes a unit (`.cppm`, `.cpp`, `.c` and the like) that a target's `sources` names; generated headers are not supported yet"));
    }
    if crate::journal::is_file(&file.dir().join(&rel)) {
        return Err(manifest_error(
            file,
            output.span(),
            format!(
                "`{rel}` is both a file of the package and generator `{}`'s output",
                g.name.get_ref()
            ),
            "rename the output (e.g. `gen/...`) or remove the file",
        ));
    }
    Ok(rel)
}

/// The template's text with every `@NAME@` and `${NAME}` replaced.
fn substitute(
    file: &ManifestFile,
    g: &Generate,
    template: &Spanned<String>,
) -> Result<String, EvalError> {
    let path = file.dir().join(template.get_ref());
    let text = crate::journal::read_to_string(&path).map_err(|e| {
        EvalError::new(
            ErrorKind::ManifestInvalid,
            format!(
                "generator `{}` cannot read its template `{}`: {e}",
                g.name.get_ref(),
                template.get_ref()
            ),
        )
        .at(file.location_or_file(template.span()))
        .help("`template` is a file of the package, relative to the directory of cmod.toml")
    })?;
    let mut vars: BTreeMap<&str, &str> = g
        .vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.get_ref().as_str()))
        .collect();
    let package = file.manifest.package.as_ref();
    let (pname, pversion) = package.map_or((String::new(), String::new()), |p| {
        (
            p.name.get_ref().to_string(),
            p.version.get_ref().0.to_string(),
        )
    });
    vars.entry("PACKAGE_NAME").or_insert(&pname);
    vars.entry("PACKAGE_VERSION").or_insert(&pversion);
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        out.push_str(&substitute_line(line, &vars).map_err(|(column, name)| {
            EvalError::new(
                ErrorKind::ManifestInvalid,
                format!(
                    "template `{}` uses `{name}`, which generator `{}` gives no value",
                    template.get_ref(),
                    g.name.get_ref()
                ),
            )
            .at(Location {
                file: path.clone(),
                line: n as u32 + 1,
                column: column as u32 + 1,
            })
            .help(format!(
                "add `{name} = \"...\"` to the `vars` of [[generate]] `{}` in cmod.toml",
                g.name.get_ref()
            ))
        })?);
    }
    Ok(out)
}

/// One line with its placeholders replaced, or the column and name of one without a value.
fn substitute_line(line: &str, vars: &BTreeMap<&str, &str>) -> Result<String, (usize, String)> {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < bytes.len() {
        let found = match bytes[i] {
            b'@' => placeholder(line, i + 1, b'@').map(|(name, end)| (name, end + 1)),
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                placeholder(line, i + 2, b'}').map(|(name, end)| (name, end + 1))
            }
            _ => None,
        };
        match found {
            Some((name, next)) => {
                let value = vars.get(name).ok_or_else(|| (i, name.to_string()))?;
                out.push_str(value);
                i = next;
            }
            None => {
                let c = line[i..].chars().next().unwrap_or(' ');
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    Ok(out)
}

/// An identifier starting at `start` and ending right before `close`: (it, close's index).
fn placeholder(line: &str, start: usize, close: u8) -> Option<(&str, usize)> {
    let bytes = line.as_bytes();
    let first = *bytes.get(start)?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let len = bytes[start..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    (bytes.get(start + len) == Some(&close)).then(|| (&line[start..start + len], start + len))
}

/// `error` with a note for each generated file it points at, naming the generator that
/// wrote it and the path the manifest declares (the location itself is where the file
/// was written, which is where its lines can be read).
pub fn name_generators(
    mut error: EvalError,
    sources: &[crate::sources::PackageSources],
) -> EvalError {
    let mut places: Vec<PathBuf> = error.location.iter().map(|l| l.file.clone()).collect();
    places.extend(
        error
            .notes
            .iter()
            .filter_map(|n| n.location.as_ref())
            .map(|l| l.file.clone()),
    );
    places.sort();
    places.dedup();
    for place in places {
        let written = sources
            .iter()
            .flat_map(|s| s.generated.iter())
            .find(|(_, g)| g.host == place);
        if let Some((rel, g)) = written {
            error = error.note(
                None,
                format!(
                    "`{}` is `{rel}`, written by [[generate]] `{}`",
                    place.display(),
                    g.generator
                ),
            );
        }
    }
    error
}

/// Write `bytes` at `path` unless it holds them already (its stamp then stays as it was).
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), EvalError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, "create", e))?;
    }
    crate::cache_io::write_atomic(path, bytes).map_err(|e| EvalError::io(path, "write", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_placeholder_forms_are_replaced_and_others_left_alone() {
        let vars = BTreeMap::from([("V", "1.2"), ("N", "demo")]);
        assert_eq!(
            substitute_line("@N@ ${V} a@b.c $x ${ 1} @@ @N\n", &vars).unwrap(),
            "demo 1.2 a@b.c $x ${ 1} @@ @N\n"
        );
    }

    #[test]
    fn a_placeholder_without_a_value_names_its_column() {
        let vars = BTreeMap::from([("V", "1")]);
        assert_eq!(
            substitute_line("x = ${MISSING};", &vars),
            Err((4, "MISSING".into()))
        );
        assert_eq!(substitute_line("@V@@W@", &vars), Err((3, "W".into())));
    }
}
