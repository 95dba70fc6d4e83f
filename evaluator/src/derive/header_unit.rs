//! Header-unit derivations, and the inputs that make a unit see the header units it
//! imports (see `eval/header_units.rs` for how imports are resolved and scanned).
//!
//! A header unit is precompiled once per header, set of flags and dialect with
//! `-fmodule-header=system|user` and embeds what it read (`-fmodules-embed-all-files`),
//! so its consumers need no header files. Its BMI output names the header as spelled,
//! followed by `@` and a digest of the step's arguments (`<vector>@1f…`), so that two
//! builds of one header with different flags never meet under one name in a closure; the
//! module map names it by path (`-fmodule-file=bmi/<file>`), and importers of a unit that
//! re-exports it (`export import <string>;`) find it through that unit's closure.
//!
//! Both the header unit and its importers are compiled with
//! `-Wno-experimental-header-units` (clang 19 warns on every use that the feature is
//! experimental; cmod's tests are what make it not so here), and a system header unit
//! with `-Wno-pragma-system-header-outside-header` (libstdc++'s headers say
//! `#pragma GCC system_header`, which clang flags when the header is the main file).

use std::collections::BTreeMap;

use cmod_schema::derivation::{bmi_file, Input, InputFrom, InputRole, StepKind, Tool};
use cmod_schema::diag::Location;
use cmod_schema::store_path::StorePath;

use super::step::Step;
use super::{host_files, Emitter};
use crate::error::{ErrorKind, EvalError};
use crate::eval::header_units::{HeaderSource, HeaderUnitScan};
use crate::graph::UnitId;

/// The header units a BMI was built against, transitively, by header: clang accepts one
/// BMI per header in a translation unit, so an importer uses the one its imports bring
/// (see [`Emitter::header_unit_inputs`]).
pub(super) type HeaderUnitClosure = BTreeMap<HeaderSource, (StorePath, String)>;

/// The warning every use of a header unit draws in clang 19.
pub(super) const QUIET_HEADER_UNITS: &str = "-Wno-experimental-header-units";

impl Emitter<'_> {
    /// The BMI inputs of the header units unit `u` imports, in `dialect`, and the header
    /// units its BMI is built against, transitively. A header that a module `u` imports
    /// already brings as a header unit is taken from there, even if `u`'s own flags
    /// differ (clang accepts one BMI per header in a translation unit, and a header unit
    /// does not depend on its importer's macros); two imports bringing the same header
    /// built two ways cannot be compiled together, which is an error naming both.
    pub(super) fn header_unit_inputs(
        &mut self,
        u: UnitId,
        dialect: &[String],
    ) -> Result<(Vec<Input>, HeaderUnitClosure), EvalError> {
        let mut closure = self.inherited_header_units(u, dialect)?;
        let uses = self.input.header_units.of(u).to_vec();
        let mut inputs = Vec::with_capacity(uses.len());
        for use_ in uses {
            let source = self.input.header_units.scans[use_.index].source.clone();
            let (drv, module) = match closure.get(&source) {
                Some(made) => made.clone(),
                None => self.header_unit(use_.index, dialect)?,
            };
            closure.insert(source, (drv.clone(), module.clone()));
            inputs.push(Input {
                at: format!("bmi/{}", bmi_file(&module)),
                role: InputRole::Bmi,
                from: InputFrom::Drv {
                    drv,
                    output: "bmi".into(),
                },
            });
        }
        Ok((inputs, closure))
    }

    /// The header units the modules `u` imports (already emitted in `dialect`) were
    /// built against.
    fn inherited_header_units(
        &self,
        u: UnitId,
        dialect: &[String],
    ) -> Result<HeaderUnitClosure, EvalError> {
        let graph = self.input.graph;
        let mut closure = HeaderUnitClosure::new();
        let mut from: BTreeMap<HeaderSource, UnitId> = BTreeMap::new();
        for &v in &graph.edges[u] {
            let Some(drv) = self.bmis.get(graph, v, dialect) else {
                continue;
            };
            let Some(theirs) = self.header_unit_closures.get(drv) else {
                continue;
            };
            for (source, made) in theirs.iter() {
                match closure.get(source) {
                    Some(mine) if mine.0 != made.0 => {
                        return Err(self.two_ways(u, source, from[source], v));
                    }
                    Some(_) => {}
                    None => {
                        closure.insert(source.clone(), made.clone());
                        from.insert(source.clone(), v);
                    }
                }
            }
        }
        Ok(closure)
    }

    /// The error for a header that reaches unit `u` as two header units, through the
    /// modules of units `a` and `b`.
    fn two_ways(&self, u: UnitId, source: &HeaderSource, a: UnitId, b: UnitId) -> EvalError {
        let graph = self.input.graph;
        let unit = &graph.units[u];
        let header = source.written();
        let module = |v: UnitId| graph.units[v].module.clone().unwrap_or_default();
        let line = |v: UnitId| {
            unit.imports
                .iter()
                .find(|i| i.provider == Some(v))
                .map_or(1, |i| i.line)
        };
        EvalError::new(
            ErrorKind::ManifestInvalid,
            format!(
                "header unit `{header}` reaches `{}` built two ways, through `{}` and through `{}`: their units import it with different flags, and clang accepts one header unit per header in a translation unit",
                unit.rel,
                module(a),
                module(b)
            ),
        )
        .at(Location {
            file: unit.abs.clone(),
            line: line(b),
            column: 1,
        })
        .help(format!(
            "give the targets whose units import `{header}` the same defines, include directories and flags (e.g. in [build]), or #include it in one of them"
        ))
    }

    /// The derivation of header unit `index` in `dialect`, and the module its BMI names.
    fn header_unit(
        &mut self,
        index: usize,
        dialect: &[String],
    ) -> Result<(StorePath, String), EvalError> {
        let key = (index, dialect.to_vec());
        if let Some(made) = self.header_unit_drvs.get(&key) {
            return Ok(made.clone());
        }
        let scan = self.input.header_units.scans[index].clone();
        let mut args: Vec<String> = dialect.to_vec();
        let (kind, header) = {
            let place = self.place();
            args.extend(scan.flags.render_after_dialect(&place));
            match &scan.source {
                HeaderSource::System(name) => ("system", name.clone()),
                HeaderSource::Package(at) => ("user", place(at)),
            }
        };
        args.push(format!("-ffile-prefix-map={}=/build", "@builddir@"));
        args.extend([
            QUIET_HEADER_UNITS.into(),
            "-Xclang".into(),
            "-fmodules-embed-all-files".into(),
            format!("-fmodule-header={kind}"),
            format!("-xc++-{kind}-header"),
            header,
        ]);
        if kind == "system" {
            args.insert(
                args.len() - 3,
                "-Wno-pragma-system-header-outside-header".into(),
            );
        }
        let digest = blake3::hash(args.join("\0").as_bytes()).to_hex();
        let module = format!("{}@{}", scan.source.written(), &digest[..16]);
        let file = bmi_file(&module);
        args.extend(["-o".into(), format!("out/{file}")]);
        let inputs = self.header_unit_sources(&scan)?;
        let ident = self.input.packages.packages[scan.importer].ident();
        let path = self.emit(Step {
            name: format!("{ident}-{file}"),
            kind: StepKind::HeaderUnit,
            tool: Tool::Cxx,
            args,
            inputs,
            host: host_files(&scan.system),
            output: ("bmi", format!("out/{file}")),
            module: Some(module.clone()),
        })?;
        self.header_unit_drvs
            .insert(key, (path.clone(), module.clone()));
        Ok((path, module))
    }

    /// The package headers a header unit includes and, for a user header unit, its
    /// header (as its source). A system header unit's own header is pinned by the
    /// toolchain identity or its host files.
    fn header_unit_sources(&mut self, scan: &HeaderUnitScan) -> Result<Vec<Input>, EvalError> {
        match &scan.source {
            HeaderSource::System(_) => self.header_inputs(scan.importer, &scan.headers),
            HeaderSource::Package(at) => {
                self.header_with_includes(at, scan.hash, &scan.headers, InputRole::Source)
            }
        }
    }
}
