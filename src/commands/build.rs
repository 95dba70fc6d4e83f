//! Building targets: the realisation behind `realise`, `run`, `test`, `lock --outputs`
//! and `store repair` — the sandbox probe, the realiser's options, pinned-output checks,
//! and turning failures into one error with the right exit class.

use cmod_evaluator::derive::Target;
use cmod_sandbox::Enforcement;
use cmod_schema::lock::Lockfile;
use cmod_schema::StorePath;
use cmod_store::realise::{self, BuildEnv, RealiseOptions};
use serde_json::json;

use crate::cli::RunOpts;
use crate::commands::compile_commands::Gate;
use crate::diagnostic::CliError;
use crate::progress::{Progress, Summary};
use crate::project::Project;

/// Parse and probe the requested sandbox mode: what it will enforce, or exit 2 with the
/// remedy; a full sandbox without Landlock is worth a warning.
pub(crate) fn sandbox_mode(run: &RunOpts) -> Result<Enforcement, CliError> {
    let enforced = run.settings().probe_sandbox()?;
    if let Some(warning) = cmod_ops::build::missing_landlock_warning(&enforced) {
        errln!("{warning}");
    }
    Ok(enforced)
}

/// Realise `targets` plainly (no `--check`, no pins, nothing to do after): each
/// target's output path.
pub(crate) fn build_outputs(
    project: &Project,
    targets: &[Target],
    run: &RunOpts,
    progress: &Progress,
) -> Result<Vec<StorePath>, CliError> {
    let request = BuildRequest::default();
    build_targets(project, targets, run, &request, progress, |_, _| Ok(())).map(|(o, _)| o)
}

/// How [`build_targets`] realises: `--check`, the outputs `--locked` pins, and the
/// previous realisation of the same targets (whose unchanged steps are reused).
#[derive(Default)]
pub(crate) struct BuildRequest<'a> {
    pub check: bool,
    pub pinned: Option<&'a Lockfile>,
    pub previous: Option<&'a realise::Previous>,
    /// The sandbox, already probed (else [`build_targets`] probes it).
    pub enforced: Option<Enforcement>,
    /// Opened when the first step starts (or the realisation ends without one).
    pub first_step: Option<&'a Gate>,
    /// Where each step's warnings are recorded (and what the previous realisation
    /// recorded, to replay them for fresh steps); a fresh tracker if unset.
    pub warnings: Option<&'a crate::warnings::Warnings>,
}

/// Reports through `inner`, opening `gate` at the first step's start.
struct OpensAtFirstStep<'a> {
    inner: &'a Progress,
    gate: &'a Gate,
}

impl realise::Reporter for OpensAtFirstStep<'_> {
    fn event(&self, event: &realise::Event<'_>) {
        self.inner.event(event);
        if let realise::Event::Started { .. } = event {
            self.gate.open();
        }
    }
}

/// Realise `targets`, reporting through `progress`. Returns each target's output path.
/// On success `after` runs (with the outputs) before the final message, so a failure
/// there (writing out-links, say) is reported by that message too.
pub(crate) fn build_targets(
    project: &Project,
    targets: &[Target],
    run: &RunOpts,
    request: &BuildRequest<'_>,
    progress: &Progress,
    after: impl FnOnce(&[StorePath], &realise::Realisation) -> Result<(), CliError>,
) -> Result<(Vec<StorePath>, realise::Realisation), CliError> {
    progress.set_source_roots(crate::source_paths::of_evaluation(&project.eval));
    // Until the realisation reports its own summary, errors still owe the JSON stream
    // its `finished` line.
    let (r, enforced) = with_json_finish(
        progress,
        realise_targets(project, targets, run, request, progress),
    )?;
    let outputs: Vec<StorePath> = targets
        .iter()
        .filter_map(|t| {
            r.outputs
                .get(&t.drv)
                .and_then(|o| o.get(&t.output))
                .cloned()
        })
        .collect();
    let shown = Project::shown(targets);
    let target_json: serde_json::Map<String, serde_json::Value> = shown
        .iter()
        .zip(outputs.iter())
        .map(|(n, p)| (n.clone(), json!(project.store.path_of(p))))
        .collect();
    // Pinned outputs are verified before the final message, so it tells the whole truth.
    let pin_check = match (request.pinned, r.success()) {
        (Some(lock), true) => {
            let named: Vec<(String, StorePath)> =
                shown.iter().cloned().zip(outputs.iter().cloned()).collect();
            crate::commands::lock::verify_outputs(project, lock, &named)
        }
        _ => Ok(()),
    };
    let differing: std::collections::BTreeSet<&StorePath> =
        r.differences.iter().map(|(d, _)| d).collect();
    let built_ok = r.success() && differing.is_empty() && pin_check.is_ok();
    let after_result = if built_ok {
        after(&outputs, &r)
    } else {
        Ok(())
    };
    progress.finish(&Summary {
        success: built_ok && after_result.is_ok(),
        built: r.built.len(),
        fresh: r.fresh,
        checked: r.checked,
        differing: differing.len(),
        failed: r.failures.len(),
        targets: serde_json::Value::Object(target_json),
        out_paths: outputs.iter().map(|p| project.store.path_of(p)).collect(),
        error: after_result.as_ref().err().map(CliError::summary),
        sandbox: Some(enforced),
        scanned: project.eval.stats.scanned.len(),
        scans_substituted: project.eval.stats.scans_substituted.len(),
    });
    after_result?;
    if !r.success() {
        return Err(failure_error(project, &r));
    }
    pin_check?;
    check_differences(&r, &differing, progress)?;
    Ok((outputs, r))
}

/// Run the realiser for `targets` in the probed (or given) sandbox.
fn realise_targets(
    project: &Project,
    targets: &[Target],
    run: &RunOpts,
    request: &BuildRequest<'_>,
    progress: &Progress,
) -> Result<(realise::Realisation, Enforcement), CliError> {
    let enforced = match request.enforced {
        Some(e) => e,
        None => sandbox_mode(run)?,
    };
    cmod_ops::scan_entries::sign_as_built(project)?;
    let sources = project.sources()?;
    let settings = run.settings();
    let remote = cmod_ops::remote::remote_cache(project.sharing.as_deref(), &project.store)?;
    let remote_executor = cmod_ops::remote::remote_executor(project.sharing.as_deref())?;
    let env = BuildEnv {
        toolchain: &project.eval.toolchain,
        sandbox: enforced.mode,
        limits: settings.limits(),
        keep_failed: settings.keep_failed,
        accept_from: settings.accepted_modes()?,
        signing: project.sharing.as_deref().map_or(&[], |s| &s.signing),
        executor: match &remote_executor {
            Some(e) => e,
            None => &realise::LocalSandbox,
        },
        step_cache: remote
            .as_ref()
            .map(cmod_ops::remote::RemoteCache::step_cache),
    };
    let drvs: Vec<StorePath> = targets.iter().map(|t| t.drv.clone()).collect();
    let options = RealiseOptions {
        jobs: settings.jobs(),
        check: request.check,
        sources: &sources,
        previous: request.previous,
        sharing: project.sharing.as_deref(),
    };
    let derivations = &project.derived()?.derivations;
    let untracked = crate::warnings::Warnings::default();
    let gated;
    let inner: &dyn realise::Reporter = match request.first_step {
        // Without a first step, the refresh's `finish` (or drop) opens the gate.
        Some(gate) => {
            gated = OpensAtFirstStep {
                inner: progress,
                gate,
            };
            &gated
        }
        None => progress,
    };
    let reporter = crate::warnings::Replaying {
        inner,
        progress,
        store: &project.store,
        warnings: request.warnings.unwrap_or(&untracked),
    };
    if let Some(note) = remote
        .as_ref()
        .and_then(cmod_ops::remote::RemoteCache::unshared_note)
    {
        realise::Reporter::event(&reporter, &realise::Event::Warning { message: &note });
    }
    let r = realise::realise(
        &project.store,
        derivations,
        &drvs,
        &env,
        &options,
        &reporter,
    )?;
    Ok((r, enforced))
}

/// `--check`'s verdict: stored outputs found corrupt, or rebuilt outputs that differ.
fn check_differences(
    r: &realise::Realisation,
    differing: &std::collections::BTreeSet<&StorePath>,
    progress: &Progress,
) -> Result<(), CliError> {
    let corrupt: Vec<&cmod_store::realise::Difference> = r
        .differences
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d.stored_corrupt)
        .collect();
    if !corrupt.is_empty() {
        let mut message = format!(
            "{} stored output(s) are corrupt: their contents no longer hash to what was recorded when they were registered (damage on disk, not a sign that the build is not reproducible)",
            corrupt.len()
        );
        let mut paths = Vec::new();
        for d in &corrupt {
            message.push_str("\n  ");
            message.push_str(&progress.describe_difference(d));
            paths.push(d.stored.to_string());
        }
        paths.dedup();
        return Err(CliError::Integrity {
            message,
            help: Some(format!(
                "repair them: `cmod store repair {}`",
                paths.join(" ")
            )),
        });
    }
    if !r.differences.is_empty() {
        let mut message = format!(
            "{} output file(s) of {} derivation(s) differ from the stored copies: the build is not reproducible",
            r.differences.len(),
            differing.len()
        );
        for (_, d) in &r.differences {
            message.push_str("\n  ");
            message.push_str(&progress.describe_difference(d));
        }
        let kept = r.differences.iter().any(|(_, d)| d.kept.is_some());
        return Err(CliError::Integrity {
            message,
            help: (!kept).then(|| {
                "pass --keep-failed to keep each rebuilt copy beside the original (`<path>.check`) for diffing".into()
            }),
        });
    }
    Ok(())
}

/// The error for a realisation whose steps failed: every failure with its log hint; a
/// security violation (exit 3) if a step left an unsafe output; an environment problem
/// (exit 2: a full disk, an unwritable store) if that is what stopped a step; else a
/// build failure (exit 1).
fn failure_error(project: &Project, r: &realise::Realisation) -> CliError {
    let mut message = String::new();
    for (drv, e) in &r.failures {
        match e {
            // Its output was shown when it failed: the summary names it, as Cargo's
            // "could not compile", rather than repeating the line above the output.
            realise::BuildError::Failed {
                name,
                exit,
                no_space: None,
                ..
            } => message.push_str(&format!(
                "could not build `{name}` (the builder ended with {exit}; its output is above)"
            )),
            e => message.push_str(&e.to_string()),
        }
        if let realise::BuildError::Failed { kept, .. } = e {
            if let Some(dir) = kept {
                message.push_str(&format!(" (build directory kept at {})", dir.display()));
            }
            message.push_str(&format!(
                "\n  the log is kept: `cmod log {}`",
                project.store.path_of(drv).display()
            ));
        }
        message.push('\n');
    }
    if !r.skipped.is_empty() {
        message.push_str(&format!(
            "{} dependent step(s) were not attempted",
            r.skipped.len()
        ));
    }
    let message = message.trim_end().to_string();
    // A builder that tried to leave an escaping link, a hard link, a device or a
    // setuid file behind is a security violation, not an ordinary build failure.
    let violation = r.failures.iter().any(|(_, e)| {
        matches!(
            e,
            realise::BuildError::Sandbox {
                source: cmod_sandbox::SandboxError::UnsafeOutput { .. },
                ..
            } | realise::BuildError::Store {
                source: cmod_store::StoreError::BadOutput { .. },
                ..
            }
        )
    });
    if violation {
        return CliError::Integrity {
            message,
            help: Some(
                "a build step left an output that could escape the store; nothing was registered"
                    .into(),
            ),
        };
    }
    if r.failures
        .iter()
        .any(|(_, e)| matches!(e, realise::BuildError::Panicked { .. }))
    {
        return CliError::Internal(message);
    }
    if let Some(help) = r.failures.iter().find_map(|(_, e)| environment_remedy(e)) {
        return CliError::usage(message, Some(help));
    }
    CliError::BuildFailed { message }
}

/// The remedy when a step failed because of the machine rather than the code: it ran out
/// of space, or the store could not be written.
fn environment_remedy(e: &realise::BuildError) -> Option<String> {
    match e {
        realise::BuildError::Failed {
            no_space: Some(dir),
            ..
        } => Some(cmod_store::error::no_space_remedy(dir)),
        realise::BuildError::Store { source, .. }
            if source.exit_class() == cmod_schema::diag::ExitClass::Usage =>
        {
            source.remedy()
        }
        realise::BuildError::Remote { help, .. } => help.clone(),
        _ => None,
    }
}

/// Report an error that happened before building in the JSON contract too.
pub(crate) fn with_json_finish<T>(
    progress: &Progress,
    r: Result<T, CliError>,
) -> Result<T, CliError> {
    if let Err(e) = &r {
        if progress.is_json() {
            progress.json_line(e.json());
            progress.finish(&Summary {
                targets: json!({}),
                error: Some(e.summary()),
                ..Summary::default()
            });
        }
    }
    r
}
