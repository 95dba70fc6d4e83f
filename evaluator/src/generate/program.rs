//! Generators that run a program (`[[generate]]` with `run`): checking the table while
//! the package loads, and expanding its `inputs` against the package's files.
//!
//! Such a generator cannot run during evaluation: its program is a `[[bin]]` of the
//! package, which must be built first. Until it has run, its outputs are *pending*: they
//! are not listed with the package's files, and the targets that could use them are left
//! out of the evaluation (see `eval/staged.rs`); the caller builds and runs the program
//! (a derivation of kind `generate`), then evaluates again with the outputs' files.

use std::collections::BTreeSet;

use cmod_schema::manifest::{Generate, Spanned};

use super::{checked_output, manifest_error, ProgramGenerator, ProgramOutputs};
use crate::error::{ErrorKind, EvalError};
use crate::manifest_file::ManifestFile;

/// Check generator `g`, which runs `run`: the program is a `[[bin]]` of the package, it
/// declares the files it writes (translation units inside the package, not files of
/// it), and it has no template fields. Its inputs are expanded later ([`expand_inputs`]).
pub(crate) fn check(
    file: &ManifestFile,
    g: &Generate,
    run: &Spanned<String>,
    ran: &ProgramOutputs,
) -> Result<ProgramGenerator, EvalError> {
    let name = g.name.get_ref();
    if let Some(field) = [(g.output.is_some(), "output"), (!g.vars.is_empty(), "vars")]
        .iter()
        .find_map(|(set, field)| set.then_some(*field))
    {
        return Err(manifest_error(
            file,
            run.span(),
            format!("generator `{name}` runs a program but has `{field}`, which only a template generator has"),
            "a generator that runs a program has `run`, `args`, `inputs` and `outputs` (a list)",
        ));
    }
    check_run(file, g, run)?;
    if g.outputs.is_empty() {
        return Err(manifest_error(
            file,
            run.span(),
            format!("generator `{name}` declares no `outputs`"),
            "list the files the program writes: `outputs = [\"gen/<file>.cppm\"]`",
        ));
    }
    let mut outputs = Vec::with_capacity(g.outputs.len());
    let mut seen = BTreeSet::new();
    for output in &g.outputs {
        let rel = checked_output(file, g, output)?;
        if !seen.insert(rel.clone()) {
            return Err(manifest_error(
                file,
                output.span(),
                format!("generator `{name}` lists `{rel}` twice"),
                "list each output once",
            ));
        }
        outputs.push(rel);
    }
    let (dependency, bin) = match run.get_ref().split_once('/') {
        Some((d, b)) => (Some(d.to_string()), b.to_string()),
        None => (None, run.get_ref().clone()),
    };
    Ok(ProgramGenerator {
        name: name.clone(),
        dependency,
        bin,
        args: g.args.iter().map(|a| a.get_ref().clone()).collect(),
        patterns: g
            .inputs
            .iter()
            .map(|i| (i.get_ref().clone(), file.location_or_file(i.span())))
            .collect(),
        inputs: Vec::new(),
        input_hashes: Vec::new(),
        outputs,
        ran: super::has_run(file, name, ran),
        location: file.location_or_file(run.span()),
    })
}

/// Every generator of the package that runs a program names one of its `[[bin]]`s (checked
/// before staged evaluation cuts the manifest down; see `eval/staged.rs`).
pub(crate) fn check_runs(file: &ManifestFile) -> Result<(), EvalError> {
    for g in &file.manifest.generate {
        let g = g.get_ref();
        if let Some(run) = &g.run {
            check_run(file, g, run)?;
        }
    }
    Ok(())
}

/// `run` names a `[[bin]]` of the package, or is `<dependency>/<bin>` with a dependency
/// of the package (whose binaries are checked when its generator is emitted).
fn check_run(file: &ManifestFile, g: &Generate, run: &Spanned<String>) -> Result<(), EvalError> {
    if let Some((dependency, _)) = run.get_ref().split_once('/') {
        if file.manifest.dependencies.contains_key(dependency) {
            return Ok(());
        }
        return Err(manifest_error(
            file,
            run.span(),
            format!(
                "generator `{}` runs `{}`, but `{dependency}` is not a dependency of this package",
                g.name.get_ref(),
                run.get_ref()
            ),
            &format!("add `{dependency}` to [dependencies], or run a [[bin]] of this package"),
        ));
    }
    let bins: Vec<&str> = file
        .manifest
        .bin
        .iter()
        .filter_map(|b| b.get_ref().name.as_ref().map(|n| n.get_ref().as_str()))
        .collect();
    if bins.contains(&run.get_ref().as_str()) {
        return Ok(());
    }
    let help = match bins.is_empty() {
        true => "add a [[bin]] with this `name` whose program writes the outputs".to_string(),
        false => format!("the package's binaries are: {}", bins.join(", ")),
    };
    Err(manifest_error(
        file,
        run.span(),
        format!(
            "generator `{}` runs `{}`, which is not a [[bin]] of this package",
            g.name.get_ref(),
            run.get_ref()
        ),
        &help,
    ))
}

/// The package files `program`'s input patterns name (`files`: every file of the
/// package, package-relative), sorted; a pattern that names none is an error at its line.
pub(crate) fn expand_inputs(
    program: &ProgramGenerator,
    files: &[String],
) -> Result<Vec<String>, EvalError> {
    let mut out = BTreeSet::new();
    for (pattern, location) in &program.patterns {
        let invalid = |why: String| {
            EvalError::new(ErrorKind::ManifestInvalid, why)
                .at(location.clone())
                .help("`inputs` are package files or globs, relative to the directory of cmod.toml (`data/*.txt`)")
        };
        let normal = crate::paths::normalize_relative(pattern)
            .filter(|p| !p.is_empty() && !pattern.starts_with('/'))
            .ok_or_else(|| {
                invalid(format!(
                    "input `{pattern}` of generator `{}` is outside the package",
                    program.name
                ))
            })?;
        let matcher = globset::Glob::new(&normal)
            .map_err(|e| {
                invalid(format!(
                    "input `{pattern}` of generator `{}` is not a valid glob: {e}",
                    program.name
                ))
            })?
            .compile_matcher();
        let before = out.len();
        out.extend(
            files
                .iter()
                .filter(|f| matcher.is_match(f.as_str()))
                .cloned(),
        );
        if out.len() == before && !files.iter().any(|f| matcher.is_match(f.as_str())) {
            return Err(invalid(format!(
                "input `{pattern}` of generator `{}` names no file of the package",
                program.name
            )));
        }
    }
    Ok(out.into_iter().collect())
}

/// Hash every program generator's inputs (through the file-hash cache, which journals
/// the reads).
pub(crate) fn hash_inputs(
    root: &std::path::Path,
    programs: &mut [ProgramGenerator],
    files: &crate::file_cache::FileCache,
) -> Result<(), EvalError> {
    for program in programs {
        program.input_hashes = program
            .inputs
            .iter()
            .map(|rel| {
                let abs = root.join(rel);
                files.hash(&abs).map_err(|e| EvalError::io(&abs, "read", e))
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}
