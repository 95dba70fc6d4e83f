//! What an operation tells the one who asked for it while it runs: the events of a
//! realisation, which the command line renders as progress, JSON lines and the final
//! line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cmod_evaluator::{EvalError, Evaluation};
use cmod_sandbox::Enforcement;
use cmod_schema::derivation::Derivation;
use cmod_schema::StorePath;
use cmod_store::realise::{self, Reporter};

/// What a realisation tells the one who asked for it, besides each step's events (the
/// [`Reporter`] it extends): the command line renders these as progress, JSON lines and
/// the final line.
pub trait Events: Reporter {
    /// Evaluation ended (or was skipped, with a zero `scan_time`): the workspace root and
    /// the part of the evaluation spent scanning units.
    fn evaluated(&self, workspace_root: &Path, scan_time: Duration);
    /// The evaluation was skipped: no input changed since the journaled one.
    fn evaluation_skipped(&self);
    /// Warnings about the manifests (as evaluation warnings are).
    fn evaluation_warnings(&self, warnings: &[&EvalError]);
    /// The evaluation whose sources the steps compile (to map their diagnostics' paths).
    fn sources(&self, eval: &Evaluation);
    /// A fresh step's compiler warnings, from its kept log, shown again as Cargo replays
    /// cached warnings: `count` of them in `log`.
    fn replayed_warnings(
        &self,
        step: (&StorePath, &str),
        derivation: &Derivation,
        log: &str,
        count: u32,
    );
    /// Hold back what the step events ([`Reporter::event`]) reported from now on show,
    /// until [`Events::release_lines`]; the other events are shown as they come. A no-op
    /// reports thousands of `fresh` steps: holding them lets them be prepared while the
    /// memo they come from is still being checked.
    fn hold_lines(&self);
    /// Stop holding lines; write those held, or drop them when they proved untrue.
    fn release_lines(&self, write: bool);
    /// A note that only matters to someone looking closely (`-v`).
    fn note(&self, message: &str);
    /// The realisation ended (successfully or not): its totals.
    fn finished(&self, summary: &Summary);
}

/// Report a warning (without its `warning: ` prefix) through `events`.
pub(crate) fn warn(events: &dyn Events, message: &str) {
    events.event(&realise::Event::Warning { message });
}

/// The totals of a realisation, reported last.
#[derive(Debug, Default)]
pub struct Summary {
    /// Whether everything asked for was done.
    pub success: bool,
    /// Steps built.
    pub built: usize,
    /// Steps already realised.
    pub fresh: usize,
    /// Steps rebuilt by `--check`.
    pub checked: usize,
    /// Derivations whose `--check` rebuild differed.
    pub differing: usize,
    /// Steps that failed.
    pub failed: usize,
    /// Each target's name and output path, in the order they were named.
    pub targets: Vec<(String, PathBuf)>,
    /// Why a realisation that built everything still failed (e.g. an out-link could not
    /// be written).
    pub error: Option<String>,
    /// The isolation the sandbox enforced, when build steps could run (not on the
    /// no-op path, which runs nothing).
    pub sandbox: Option<Enforcement>,
    /// Units this run's evaluation scanned with `clang-scan-deps`.
    pub scanned: usize,
    /// Units whose scan came from a substituter's scan entries.
    pub scans_substituted: usize,
}
