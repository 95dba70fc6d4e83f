//! The derivation that runs a generator's program (`[[generate]]` with `run`): kind
//! `generate`, tool `program`. Its program is the link output of the generator's
//! `[[bin]]`, at `.cmod/bin/<bin>` in the build directory (a hidden path, which no
//! package file can take); its inputs are the declared package files at their package
//! paths; its outputs are the declared files, written at their package paths too, each
//! registered as a store path of its own (so a consumer's unit is content-addressed
//! like any source). The realiser fails the step when the program writes a file it did
//! not declare.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cmod_schema::derivation::{
    Derivation, Input, InputFrom, InputRole, Output, StepKind, Tool, DERIVATION_VERSION,
};
use cmod_schema::store_path::{sanitize_name, StorePath};

use super::Emitter;
use crate::error::{ErrorKind, EvalError};
use crate::generate::ProgramGenerator;
use crate::graph::Owner;
use crate::package::PackageId;

/// Where a generator's program is in its build directory.
pub const PROGRAM_DIR: &str = ".cmod/bin";

/// A generator's run derivation and the outputs it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorRun {
    /// The package it belongs to.
    pub package: String,
    /// That package's root.
    pub root: PathBuf,
    /// The generator's name.
    pub name: String,
    /// The derivation that runs it.
    pub drv: StorePath,
    /// Each declared file (package-relative) and the name of its derivation output.
    pub outputs: BTreeMap<String, String>,
    /// Whether this evaluation had its outputs (else what reads them was left out).
    pub ran: bool,
}

impl Emitter<'_> {
    /// Emit the run derivation of every generator of package `p` that runs a program
    /// (and the link of that program), given the package's library archives.
    pub(super) fn generators(
        &mut self,
        p: PackageId,
        archives: &BTreeMap<(PackageId, usize), (StorePath, String)>,
    ) -> Result<(), EvalError> {
        let programs = self.input.sources[p].programs.clone();
        for program in &programs {
            let (q, bin) = self.program_of(p, program)?;
            let exe = self.link(q, Owner::Bin(bin), archives)?;
            let run = self.generator_run(p, program, exe)?;
            self.out.generators.push(run);
        }
        Ok(())
    }

    /// The package and `[[bin]]` index of the program `program` (of package `p`) runs.
    fn program_of(
        &self,
        p: PackageId,
        program: &ProgramGenerator,
    ) -> Result<(PackageId, usize), EvalError> {
        let pkg = &self.input.packages.packages[p];
        let q = match &program.dependency {
            None => p,
            Some(key) => pkg
                .deps
                .iter()
                .find(|d| &d.name == key)
                .map(|d| d.package)
                .ok_or_else(|| {
                    EvalError::new(
                        ErrorKind::Internal,
                        format!(
                            "generator `{}` runs a binary of unknown `{key}`",
                            program.name
                        ),
                    )
                })?,
        };
        let bins = &self.input.sources[q].bins;
        match bins.iter().position(|b| b.name == program.bin) {
            Some(b) => Ok((q, b)),
            None => {
                let names: Vec<&str> = bins.iter().map(|b| b.name.as_str()).collect();
                let dep = &self.input.packages.packages[q].name;
                Err(EvalError::new(
                    ErrorKind::ManifestInvalid,
                    format!(
                        "generator `{}` runs `{}`, but package `{dep}` has no [[bin]] `{}`",
                        program.name,
                        program.dependency.clone().unwrap_or_default() + "/" + &program.bin,
                        program.bin
                    ),
                )
                .at(program.location.clone())
                .help(match names.is_empty() {
                    true => format!("package `{dep}` has no binaries"),
                    false => format!("the binaries of `{dep}` are: {}", names.join(", ")),
                }))
            }
        }
    }

    fn generator_run(
        &mut self,
        p: PackageId,
        program: &ProgramGenerator,
        exe: StorePath,
    ) -> Result<GeneratorRun, EvalError> {
        let pkg = &self.input.packages.packages[p];
        let (ident, root, package) = (pkg.ident(), pkg.root.clone(), pkg.name.clone());
        let mut inputs = vec![Input {
            at: format!("{PROGRAM_DIR}/{}", program.bin),
            role: InputRole::Program,
            from: InputFrom::Drv {
                drv: exe,
                output: "exe".into(),
            },
        }];
        for (rel, hash) in program.inputs.iter().zip(&program.input_hashes) {
            let path = self.add_source(Some(p), rel, root.join(rel), *hash, false)?;
            inputs.push(Input {
                at: rel.clone(),
                role: InputRole::Source,
                from: InputFrom::Path { path, sub: None },
            });
        }
        inputs.sort();
        let outputs: BTreeMap<String, Output> = program
            .outputs
            .iter()
            .map(|rel| {
                let output = Output {
                    at: rel.clone(),
                    module: None,
                    name: format!("{ident}-{}", sanitize_name(&rel.replace('/', "-"))),
                };
                (rel.clone(), output)
            })
            .collect();
        let drv = Derivation {
            version: DERIVATION_VERSION,
            name: format!("{ident}-run-{}", sanitize_name(&program.name)),
            kind: StepKind::Generate,
            toolchain: self.input.toolchain.identity,
            tool: Tool::Program,
            args: program.args.clone(),
            env: BTreeMap::new(),
            host: BTreeMap::new(),
            inputs,
            outputs,
        };
        let internal = |e: cmod_schema::derivation::DerivationError| {
            EvalError::new(ErrorKind::Internal, e.to_string())
        };
        drv.validate().map_err(internal)?;
        let path = drv.drv_path().map_err(internal)?;
        let outputs = program
            .outputs
            .iter()
            .map(|r| (r.clone(), r.clone()))
            .collect();
        self.out.derivations.insert(path.clone(), drv);
        Ok(GeneratorRun {
            package,
            root,
            name: program.name.clone(),
            drv: path,
            outputs,
            ran: program.ran,
        })
    }
}
