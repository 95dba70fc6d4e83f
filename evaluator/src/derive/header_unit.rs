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

use cmod_schema::derivation::{bmi_file, Input, InputFrom, InputRole, StepKind, Tool};
use cmod_schema::store_path::StorePath;

use super::step::Step;
use super::{host_files, Emitter};
use crate::error::EvalError;
use crate::eval::header_units::{HeaderSource, HeaderUnitScan};
use crate::graph::UnitId;

/// The warning every use of a header unit draws in clang 19.
pub(super) const QUIET_HEADER_UNITS: &str = "-Wno-experimental-header-units";

impl Emitter<'_> {
    /// The BMI inputs of the header units unit `u` imports, in `dialect`.
    pub(super) fn header_unit_inputs(
        &mut self,
        u: UnitId,
        dialect: &[String],
    ) -> Result<Vec<Input>, EvalError> {
        let uses = self.input.header_units.of(u).to_vec();
        let mut inputs = Vec::with_capacity(uses.len());
        for use_ in uses {
            let (drv, module) = self.header_unit(use_.index, dialect)?;
            inputs.push(Input {
                at: format!("bmi/{}", bmi_file(&module)),
                role: InputRole::Bmi,
                from: InputFrom::Drv {
                    drv,
                    output: "bmi".into(),
                },
            });
        }
        Ok(inputs)
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
        let header = match &scan.source {
            HeaderSource::System(name) => format!("<{name}>"),
            HeaderSource::Package(at) => format!("\"{}\"", at.rel),
        };
        let module = format!("{header}@{}", &digest[..16]);
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
