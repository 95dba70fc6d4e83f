//! What a realisation reports as it goes. The CLI turns these into JSON lines or a
//! progress bar.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cmod_schema::derivation::Derivation;
use cmod_schema::StorePath;

/// One step of a realisation.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// The plan: how many derivations are needed.
    Planned { total: usize },
    /// A derivation started building.
    Started { drv: &'a StorePath, name: &'a str },
    /// A derivation was built in this run.
    Built {
        drv: &'a StorePath,
        name: &'a str,
        outputs: &'a BTreeMap<String, StorePath>,
        /// When the step was taken up by a worker, and how long it took from then
        /// (resolution, build, registration).
        started: Instant,
        elapsed: Duration,
    },
    /// A derivation's outputs were found in the store (nothing ran).
    Fresh {
        drv: &'a StorePath,
        name: &'a str,
        outputs: &'a BTreeMap<String, StorePath>,
    },
    /// A derivation failed; `log` is the builder's output (as recorded: paths in it are
    /// the build directory's, e.g. `src/<package>/<file>`, which `derivation`'s inputs
    /// map to the user's files).
    Failed {
        drv: &'a StorePath,
        name: &'a str,
        derivation: &'a Derivation,
        log: &'a str,
        reason: &'a str,
    },
    /// A derivation was rebuilt for `--check` and compared with its stored outputs;
    /// `differences` is empty when they were bit-identical.
    Checked {
        drv: &'a StorePath,
        name: &'a str,
        differences: &'a [super::Difference],
    },
    /// A derivation's outputs were downloaded from a substituter (verified and signed).
    Substituted {
        drv: &'a StorePath,
        name: &'a str,
        outputs: &'a BTreeMap<String, StorePath>,
        from: &'a str,
    },
    /// Something worth telling that does not stop the realisation.
    Warning { message: &'a str },
    /// A derivation was not attempted because an input failed.
    Skipped { drv: &'a StorePath, name: &'a str },
}

/// Receives events; must be callable from worker threads.
pub trait Reporter: Sync {
    fn event(&self, event: &Event<'_>);
}

/// A reporter that ignores everything.
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _: &Event<'_>) {}
}
