//! The command line's side of building targets (`realise`, `run`, `test`, `lock
//! --outputs`, `store repair`): the typed settings of its options, and the JSON contract's
//! last message for errors that came before a realisation could report one. What building
//! does is in `cmod_ops::realise`.

use cmod_evaluator::derive::Target;
use cmod_sandbox::Enforcement;
use cmod_schema::StorePath;

use crate::cli::RunOpts;
use crate::diagnostic::CliError;
use crate::progress::{Progress, Summary};
use crate::project::Project;

/// Parse and probe the requested sandbox mode: what it will enforce, or exit 2 with the
/// remedy; a full sandbox without Landlock is worth a warning.
pub(crate) fn sandbox_mode(run: &RunOpts, progress: &Progress) -> Result<Enforcement, CliError> {
    Ok(cmod_ops::realise::probe_sandbox(&run.settings(), progress)?)
}

/// Realise `targets` plainly (no `--check`, no pins, nothing to do after): each
/// target's output path.
pub(crate) fn build_outputs(
    project: &Project,
    targets: &[Target],
    run: &RunOpts,
    progress: &Progress,
) -> Result<Vec<StorePath>, CliError> {
    let built = cmod_ops::realise::build_outputs(project, targets, &run.settings(), progress);
    with_json_finish(progress, built.map_err(CliError::from))
}

/// Report an error that happened before the realisation reported its summary in the JSON
/// contract too: an `error` line and the `finished` line. (An error after the summary is
/// in its `error` field already.)
pub(crate) fn with_json_finish<T>(
    progress: &Progress,
    r: Result<T, CliError>,
) -> Result<T, CliError> {
    if let Err(e) = &r {
        if progress.is_json() && !progress.has_finished() {
            progress.json_line(e.json());
            progress.finish(&Summary {
                error: Some(e.summary()),
                ..Summary::default()
            });
        }
    }
    r
}
