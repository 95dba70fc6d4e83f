//! Precompiled headers: the step that builds one per set of flags, and what a unit that
//! uses one adds to its compile.

use cmod_schema::derivation::{Input, InputFrom, InputRole, StepKind, Tool};
use cmod_schema::store_path::{sanitize_name, StorePath};
use cmod_schema::ContentHash;

use super::step::Step;
use super::{host_files, Emitter, PchScan, PchUse};
use crate::error::{ErrorKind, EvalError};
use crate::flags::{PkgPath, UnitFlags};
use crate::graph::{UnitId, UnitKind};
use crate::scan::HeaderDep;
use crate::sources::Lang;

impl Emitter<'_> {
    /// The precompiled header for unit `u`, if it uses one: its input and flags.
    pub(super) fn pch_for(&mut self, u: UnitId) -> Result<Option<PchUse>, EvalError> {
        let unit = &self.input.graph.units[u];
        let uses = unit.flags.lang == Lang::Cxx
            && matches!(unit.kind, UnitKind::Implementation | UnitKind::Plain);
        let Some(at) = unit.flags.pch.clone().filter(|_| uses) else {
            return Ok(None);
        };
        let without = UnitFlags {
            pch: None,
            ..(*unit.flags).clone()
        };
        let Some(index) = self
            .input
            .pchs
            .iter()
            .position(|s| s.at == at && *s.flags == without)
        else {
            return Err(EvalError::new(
                ErrorKind::Internal,
                format!("precompiled header `{}` was not scanned", at.rel),
            ));
        };
        let drv = match self.pch_drvs.get(&index) {
            Some(d) => d.clone(),
            None => {
                let d = self.pch(index)?;
                self.pch_drvs.insert(index, d.clone());
                d
            }
        };
        let scan = self.input.pchs[index].clone();
        let file = self.pch_file(index);
        let mut inputs = vec![Input {
            at: format!("pch/{file}"),
            role: InputRole::Pch,
            from: InputFrom::Drv {
                drv,
                output: "pch".into(),
            },
        }];
        // clang checks that the header and everything it includes still exist.
        inputs.extend(self.pch_sources(&scan, InputRole::Headers)?);
        Ok(Some((
            inputs,
            vec!["-include-pch".into(), format!("pch/{file}")],
        )))
    }

    /// A precompiled header's header (as `role`) and every package header it includes.
    fn pch_sources(&mut self, scan: &PchScan, role: InputRole) -> Result<Vec<Input>, EvalError> {
        self.header_with_includes(&scan.at, scan.hash, &scan.headers, role)
    }

    /// The header at `at` (with content hash `hash`, as `role`) and the package headers it
    /// includes (`headers`, relative to its package).
    pub(super) fn header_with_includes(
        &mut self,
        at: &PkgPath,
        hash: ContentHash,
        headers: &[HeaderDep],
        role: InputRole,
    ) -> Result<Vec<Input>, EvalError> {
        let mut inputs = self.header_inputs(at.package, headers)?;
        let own = HeaderDep {
            package: None,
            rel: at.rel.clone(),
            hash,
        };
        let mut header = self.header_inputs(at.package, &[own])?;
        for i in &mut header {
            i.role = role;
        }
        inputs.extend(header);
        Ok(inputs)
    }

    fn pch_file(&self, index: usize) -> String {
        let at = &self.input.pchs[index].at;
        format!("{}-{index}.pch", sanitize_name(&at.rel.replace('/', "-")))
    }

    /// The derivation of precompiled header `index`.
    fn pch(&mut self, index: usize) -> Result<StorePath, EvalError> {
        let scan = self.input.pchs[index].clone();
        let pkg = &self.input.packages.packages[scan.at.package];
        let ident = pkg.ident();
        let file = self.pch_file(index);
        let mut args = scan.flags.render(&self.place());
        args.push(format!("-ffile-prefix-map={}=/build", "@builddir@"));
        args.extend([
            "-Xclang".into(),
            "-fno-pch-timestamp".into(),
            "-x".into(),
            "c++-header".into(),
            (self.place())(&scan.at),
            "-o".into(),
            format!("out/{file}"),
        ]);
        let inputs = self.pch_sources(&scan, InputRole::Source)?;
        self.emit(Step {
            name: format!("{ident}-{file}"),
            kind: StepKind::Pch,
            tool: Tool::Cxx,
            args,
            inputs,
            host: host_files(&scan.system),
            output: ("pch", format!("out/{file}")),
            module: None,
        })
    }
}
