//! Staged evaluation: what is evaluated while some generators that run a program have
//! not run.
//!
//! A generator's program is a `[[bin]]` of its package, so its outputs exist only after
//! part of the build has run. Until then the evaluation leaves out what could read them:
//! every target of a package with such a generator except the generators' own binaries,
//! and every target of the packages that depend on it, directly or not (their libraries
//! could import a generated module). What remains builds the programs; the caller runs
//! them and evaluates again with their outputs ([`crate::EvalOptions::programs_ran`]), and
//! then nothing is left out.

use cmod_schema::manifest::Target;

use crate::error::EvalError;
use crate::generate::{generator_bins, has_pending_programs, has_run, ProgramOutputs};
use crate::package::PackageGraph;

/// What an evaluation left out until generators run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// The generators that have not run, as (package, generator).
    pub generators: Vec<(String, String)>,
    /// The targets left out, as (package, target): they wait on those generators.
    pub targets: Vec<(String, String)>,
    /// Per package: whether its manifest was cut down to its generators' binaries (or to
    /// nothing).
    pub(crate) cut: Vec<bool>,
    /// Per package: whether its generators can run in this stage (it waits on none of its
    /// dependencies'), so their programs are built even if no target of it remains.
    pub(crate) runnable: Vec<bool>,
}

impl Pending {
    /// Whether anything waits on a generator.
    pub fn is_empty(&self) -> bool {
        self.generators.is_empty()
    }
}

/// Cut the manifests of the packages that wait on a generator that has not run (see the
/// module documentation) and say what was left out.
pub(crate) fn leave_out_pending(
    packages: &mut PackageGraph,
    ran: &ProgramOutputs,
) -> Result<Pending, EvalError> {
    let n = packages.packages.len();
    let mut pending = Pending {
        cut: vec![false; n],
        runnable: vec![false; n],
        ..Pending::default()
    };
    // Dependencies come before their dependents, so one pass sees every cause first.
    for p in 0..n {
        let pkg = &packages.packages[p];
        let own = has_pending_programs(&pkg.file, ran);
        let inherited = pkg
            .deps
            .iter()
            .chain(&pkg.dev_deps)
            .any(|d| pending.cut[d.package]);
        if !own && !inherited {
            continue;
        }
        pending.cut[p] = true;
        pending.runnable[p] = own && !inherited;
        if own {
            crate::generate::program::check_runs(&pkg.file)?;
            for g in &pkg.file.manifest.generate {
                let g = g.get_ref();
                if g.run.is_some() && !has_run(&pkg.file, g.name.get_ref(), ran) {
                    pending
                        .generators
                        .push((pkg.name.clone(), g.name.get_ref().clone()));
                }
            }
        }
        // A package that also waits on a dependency's generator cannot build its own
        // generators' programs yet (they may use that dependency): a later stage does.
        let keep = if own && !inherited {
            generator_bins(&pkg.file)
        } else {
            Default::default()
        };
        let name = pkg.name.clone();
        let mut left_out: Vec<String> = (0..pkg.file.manifest.lib.tables.len())
            .map(|l| format!("lib{}.a", crate::sources::lib_name(&pkg.file, l)))
            .collect();
        // Binaries are targets of the selected members only (tests are not listed).
        let selected = packages.selected.contains(&p);
        let manifest = &mut packages.packages[p].file.manifest;
        let target_name = |t: &Target| t.name.as_ref().map(|n| n.get_ref().clone());
        left_out.extend(
            manifest
                .bin
                .iter()
                .filter(|_| selected)
                .filter_map(|t| target_name(t.get_ref()))
                .filter(|t| !keep.contains(t)),
        );
        manifest.lib.tables.clear();
        manifest.test.clear();
        manifest
            .bin
            .retain(|b| target_name(b.get_ref()).is_some_and(|n| keep.contains(&n)));
        pending
            .targets
            .extend(left_out.into_iter().map(|t| (name.clone(), t)));
    }
    Ok(pending)
}
