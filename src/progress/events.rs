//! How a realisation's events ([`cmod_ops::realise::Events`]) are shown.

use std::path::Path;
use std::time::Duration;

use cmod_evaluator::{EvalError, Evaluation};
use cmod_ops::realise::{Events, Summary};
use cmod_schema::derivation::Derivation;
use cmod_schema::StorePath;

use super::Progress;

impl Events for Progress {
    fn evaluated(&self, workspace_root: &Path, scan_time: Duration) {
        Progress::evaluated(self, workspace_root, scan_time);
    }

    fn evaluation_skipped(&self) {
        Progress::evaluation_skipped(self);
    }

    fn evaluation_warnings(&self, warnings: &[&EvalError]) {
        crate::project::print_warnings(warnings.iter().copied());
    }

    fn sources(&self, eval: &Evaluation) {
        self.set_source_roots(crate::source_paths::of_evaluation(eval));
    }

    fn replayed_warnings(
        &self,
        step: (&StorePath, &str),
        derivation: &Derivation,
        log: &str,
        count: u32,
    ) {
        self.show_warnings(step, derivation, log, count, true);
    }

    fn hold_lines(&self) {
        Progress::hold_lines(self);
    }

    fn release_lines(&self, write: bool) {
        Progress::release_lines(self, write);
    }

    fn note(&self, message: &str) {
        if crate::output::verbose() {
            status!("{:>12} {message}", "Note");
        }
    }

    fn finished(&self, summary: &Summary) {
        self.finish(summary);
    }
}
