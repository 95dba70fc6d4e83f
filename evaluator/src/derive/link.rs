//! The link step of an executable: its objects, the archives of the libraries its link
//! includes, the standard library modules' objects when anything linked uses them, and
//! its system libraries (whose files are the step's host files).

use std::collections::BTreeMap;

use cmod_schema::derivation::{Input, InputFrom, InputRole, StepKind, Tool};
use cmod_schema::store_path::{sanitize_name, StorePath};

use crate::error::{ErrorKind, EvalError};
use crate::graph::{Origin, Owner, UnitId};
use crate::package::PackageId;

use super::{Emitter, Step};

impl Emitter<'_> {
    /// The libraries the link of `owner` (of package `p`) includes, as (package, library):
    /// those of its own package it uses, then every library of each package it depends
    /// on, dependents before what they depend on.
    fn linked_libraries(
        &self,
        p: PackageId,
        owner: Owner,
        deps: &[PackageId],
    ) -> Vec<(PackageId, usize)> {
        let targets = self.input.targets;
        let mut out: Vec<(PackageId, usize)> = targets[p]
            .get(owner)
            .map(|t| t.linked_libs.iter().map(|&l| (p, l)).collect())
            .unwrap_or_default();
        for &q in deps.iter().rev() {
            for lib in &targets[q].libs {
                for &l in &lib.linked_libs {
                    if !out.contains(&(q, l)) {
                        out.push((q, l));
                    }
                }
            }
        }
        out
    }

    /// The standard library module units, when a unit linked into this executable uses
    /// them.
    fn std_objects(&self, linked_units: &[UnitId]) -> Vec<UnitId> {
        let g = self.input.graph;
        let std_units: Vec<UnitId> = (0..g.units.len())
            .filter(|&u| g.units[u].origin == Origin::Toolchain)
            .collect();
        let uses_std = !std_units.is_empty()
            && linked_units
                .iter()
                .any(|&u| g.closure(u).iter().any(|v| std_units.contains(v)));
        if uses_std {
            std_units
        } else {
            Vec::new()
        }
    }

    /// The link derivation of executable `owner` (a binary or a test) of package `p`.
    pub(super) fn link(
        &mut self,
        p: PackageId,
        owner: Owner,
        archives: &BTreeMap<(PackageId, usize), (StorePath, String)>,
    ) -> Result<StorePath, EvalError> {
        let pkg = &self.input.packages.packages[p];
        let sources = &self.input.sources[p];
        let (bin_name, name, deps) = match owner {
            Owner::Bin(b) => {
                let n = sources.bins[b].name.clone();
                let drv_name = format!("{}-{}", pkg.ident(), sanitize_name(&n));
                (n, drv_name, self.input.packages.transitive_deps(p))
            }
            Owner::Test(t) => {
                let n = sources.tests[t].name.clone();
                let drv_name = format!("{}-test-{}", pkg.ident(), sanitize_name(&n));
                (n, drv_name, self.input.packages.test_deps(p))
            }
            Owner::Lib(_) => {
                return Err(EvalError::new(
                    ErrorKind::Internal,
                    "a library is archived, not linked",
                ))
            }
        };
        let libraries = self.linked_libraries(p, owner, &deps);
        let mut inputs = Vec::new();
        let mut objects = Vec::new();
        let own_units = self.units_of(p, owner);
        let mut linked_units = own_units.clone();
        for &(q, l) in &libraries {
            linked_units.extend(self.units_of(q, Owner::Lib(l)));
        }
        let units: Vec<UnitId> = own_units
            .into_iter()
            .chain(self.std_objects(&linked_units))
            .collect();
        self.objects(&units)?;
        for u in units {
            let i = self.object_input(u)?;
            objects.push(i.at.clone());
            inputs.push(i);
        }
        let (archive_inputs, libs) =
            archive_inputs(&libraries, archives, self.input.packages, &bin_name)?;
        inputs.extend(archive_inputs);
        let mut packages = vec![p];
        packages.extend(deps.iter().copied());
        let settings = self.input.settings.link(p, owner, &libraries, &packages);
        let mut args: Vec<String> = self.input.settings.package_dialect(self.input.packages, p);
        args.extend([
            "-fuse-ld=lld".into(),
            "-o".into(),
            format!("out/{bin_name}"),
        ]);
        args.extend(objects);
        args.extend(libs);
        args.extend(settings.args);
        self.emit(Step {
            name: name.clone(),
            kind: StepKind::Link,
            tool: Tool::Cxx,
            args,
            inputs,
            host: settings.host,
            output: ("exe", format!("out/{bin_name}")),
            module: None,
        })
    }
}

/// The archives of `libraries` as link inputs, and their paths in the build directory
/// (`lib/<package>/lib<name>.a`: two packages may each have a library `core`).
fn archive_inputs(
    libraries: &[(PackageId, usize)],
    archives: &BTreeMap<(PackageId, usize), (StorePath, String)>,
    packages: &crate::package::PackageGraph,
    bin_name: &str,
) -> Result<(Vec<Input>, Vec<String>), EvalError> {
    let mut inputs = Vec::new();
    let mut libs: Vec<String> = Vec::new();
    for key in libraries {
        let Some((drv, file)) = archives.get(key) else {
            continue;
        };
        let at = format!("lib/{}/{file}", packages.packages[key.0].name);
        if libs.contains(&at) {
            return Err(EvalError::new(
                ErrorKind::ManifestInvalid,
                format!("two libraries linked into `{bin_name}` are both named `{file}`"),
            )
            .help("give the libraries distinct names"));
        }
        libs.push(at.clone());
        inputs.push(Input {
            at,
            role: InputRole::Archive,
            from: InputFrom::Drv {
                drv: drv.clone(),
                output: "lib".into(),
            },
        });
    }
    Ok((inputs, libs))
}
