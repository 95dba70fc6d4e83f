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
    Planned {
        /// The number of derivations.
        total: usize,
    },
    /// A derivation started building.
    Started {
        /// The derivation's `.drv` path.
        drv: &'a StorePath,
        /// The derivation's name.
        name: &'a str,
        /// The derivation itself (`cmod -v` shows its command line).
        derivation: &'a Derivation,
    },
    /// A derivation was built in this run.
    Built {
        /// The derivation's `.drv` path.
        drv: &'a StorePath,
        /// The derivation's name.
        name: &'a str,
        /// The derivation itself (its inputs map the log's paths to the user's files).
        derivation: &'a Derivation,
        /// Its outputs: output name → store path.
        outputs: &'a BTreeMap<String, StorePath>,
        /// What the builder printed (a compiler's warnings), as recorded: paths are
        /// the build directory's, as in [`Event::Failed`].
        log: &'a str,
        /// When the step was taken up by a worker, and how long it took from then
        /// (resolution, build, registration).
        started: Instant,
        /// How long it took since `started`.
        elapsed: Duration,
        /// Its builder was started ahead of the evaluation, when the edit was seen (see
        /// [`super::Speculation`]); `started` is when the realiser took it.
        speculative: bool,
    },
    /// A derivation's outputs were found in the store (nothing ran).
    Fresh {
        /// The derivation's `.drv` path.
        drv: &'a StorePath,
        /// The derivation's name.
        name: &'a str,
        /// Its outputs: output name → store path.
        outputs: &'a BTreeMap<String, StorePath>,
    },
    /// A derivation failed; `log` is the builder's output (as recorded: paths in it are
    /// the build directory's, e.g. `src/<package>/<file>`, which `derivation`'s inputs
    /// map to the user's files).
    Failed {
        /// The derivation's `.drv` path.
        drv: &'a StorePath,
        /// The derivation's name.
        name: &'a str,
        /// The derivation itself.
        derivation: &'a Derivation,
        /// The builder's output.
        log: &'a str,
        /// Why it failed, as one line.
        reason: &'a str,
    },
    /// A derivation was rebuilt for `--check` and compared with its stored outputs;
    /// `differences` is empty when they were bit-identical.
    Checked {
        /// The derivation's `.drv` path.
        drv: &'a StorePath,
        /// The derivation's name.
        name: &'a str,
        /// How the rebuilt outputs differ from the stored ones.
        differences: &'a [super::Difference],
    },
    /// A derivation's outputs were downloaded from a substituter (verified and signed).
    Substituted {
        /// The derivation's `.drv` path.
        drv: &'a StorePath,
        /// The derivation's name.
        name: &'a str,
        /// Its outputs: output name → store path.
        outputs: &'a BTreeMap<String, StorePath>,
        /// The substituter's URL.
        from: &'a str,
    },
    /// Something worth telling that does not stop the realisation.
    Warning {
        /// The warning's text.
        message: &'a str,
    },
    /// A derivation was not attempted because an input failed.
    Skipped {
        /// The derivation's `.drv` path.
        drv: &'a StorePath,
        /// The derivation's name.
        name: &'a str,
    },
}

/// Receives events; must be callable from worker threads.
pub trait Reporter: Sync {
    /// Handle one event.
    fn event(&self, event: &Event<'_>);
}

/// A reporter that ignores everything.
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _: &Event<'_>) {}
}
