//! Building targets' steps: the sandbox probe, the realiser's options and environment
//! (the local sandbox or a remote executor, a remote step cache), pinned outputs checked,
//! and the totals reported.

use cmod_evaluator::derive::Target;
use cmod_sandbox::Enforcement;
use cmod_schema::lock::Lockfile;
use cmod_schema::StorePath;
use cmod_store::realise::{self, BuildEnv, RealiseOptions, Reporter};

use super::warnings::{Replaying, Warnings};
use super::{verdict, Events, Summary};
use crate::build::BuildSettings;
use crate::compdb::Gate;
use crate::{OpsError, Project};

/// Parse and probe the sandbox mode `settings` ask for: what it will enforce, or the
/// error with its remedy; a full sandbox without Landlock is worth a warning.
pub fn probe_sandbox(
    settings: &BuildSettings,
    events: &dyn Events,
) -> Result<Enforcement, OpsError> {
    let enforced = settings.probe_sandbox()?;
    if let Some(warning) = crate::build::missing_landlock_warning(&enforced) {
        super::warn(events, &warning);
    }
    Ok(enforced)
}

/// Realise `targets` plainly (no `--check`, no pins, nothing to do after): each
/// target's output path.
pub fn build_outputs(
    project: &Project,
    targets: &[Target],
    settings: &BuildSettings,
    events: &dyn Events,
) -> Result<Vec<StorePath>, OpsError> {
    let request = BuildRequest::default();
    build_targets(project, targets, settings, &request, events, |_, _| Ok(())).map(|(o, _)| o)
}

/// Build and run the generators `runs` of `project` (their programs first), as a
/// realisation does (`check`: rebuilt and compared, so a generator whose
/// output depends on something it does not declare shows as a difference). Their
/// outputs are then recorded in the store, where the next evaluation finds them. A
/// failing program fails like any step: its log is shown and nothing is registered.
pub fn run_generators(
    project: &Project,
    runs: &[cmod_evaluator::derive::GeneratorRun],
    settings: &BuildSettings,
    check: bool,
    events: &dyn Events,
) -> Result<usize, OpsError> {
    let targets: Vec<Target> = runs
        .iter()
        .flat_map(|run| {
            run.outputs.iter().map(|(rel, output)| Target {
                package: run.package.clone(),
                name: format!("{}:{rel}", run.name),
                kind: cmod_evaluator::derive::TargetKind::Bin,
                drv: run.drv.clone(),
                output: output.clone(),
            })
        })
        .collect();
    if targets.is_empty() {
        return Ok(0);
    }
    events.sources(&project.eval);
    let request = BuildRequest {
        check,
        ..BuildRequest::default()
    };
    let (r, _) = realise_targets(project, &targets, settings, &request, events)?;
    if !r.success() {
        return Err(generator_failure(project, runs, &r));
    }
    let differing: std::collections::BTreeSet<&StorePath> =
        r.differences.iter().map(|(d, _)| d).collect();
    verdict::check_differences(&project.store, &r, &differing).map_err(|e| {
        let names: Vec<String> = runs
            .iter()
            .filter(|run| differing.contains(&run.drv))
            .map(|run| format!("`{}` of `{}`", run.name, run.package))
            .collect();
        match (e, names.is_empty()) {
            (OpsError::Integrity { message, help }, false) => OpsError::Integrity {
                message: format!(
                    "{message}\n  generator {} wrote different files when run again: what it writes depends on something it does not declare (the time, randomness, the environment)",
                    names.join(", ")
                ),
                help,
            },
            (e, _) => e,
        }
    })?;
    Ok(runs.len())
}

/// The error for generators that failed: as any step's, and for a program that wrote a
/// file it does not declare or missed one it does, which generator and how to fix it.
fn generator_failure(
    project: &Project,
    runs: &[cmod_evaluator::derive::GeneratorRun],
    r: &realise::Realisation,
) -> OpsError {
    let mut error = verdict::failure_error(project, r);
    if let OpsError::BuildFailed { message } = &mut error {
        for (drv, e) in &r.failures {
            let Some(run) = runs.iter().find(|run| &run.drv == drv) else {
                continue;
            };
            let what = match e {
                realise::BuildError::UndeclaredOutput { at, .. } => {
                    format!("wrote `{at}`, which its `outputs` do not list")
                }
                realise::BuildError::MissingOutput { at, .. } => {
                    format!("did not write `{at}`, which its `outputs` list")
                }
                _ => continue,
            };
            message.push_str(&format!(
                "\n  generator `{}` of `{}` {what}\n  help: list exactly the files the program writes in `outputs` of [[generate]] `{}` ({})",
                run.name,
                run.package,
                run.name,
                run.root.join("cmod.toml").display()
            ));
        }
    }
    error
}

/// How [`build_targets`] realises: `--check`, the outputs `--locked` pins, and the
/// previous realisation of the same targets (whose unchanged steps are reused).
#[derive(Default)]
pub struct BuildRequest<'a> {
    /// Rebuild every step and compare with the stored outputs.
    pub check: bool,
    /// The lock whose pinned outputs are verified.
    pub pinned: Option<&'a Lockfile>,
    /// What the last realisation of the same targets realised.
    pub previous: Option<&'a realise::Previous>,
    /// The sandbox, already probed (else [`build_targets`] probes it).
    pub enforced: Option<Enforcement>,
    /// Opened when the first step starts (or the realisation ends without one).
    pub first_step: Option<&'a Gate>,
    /// Where each step's warnings are recorded (and what the previous realisation
    /// recorded, to replay them for fresh steps); a fresh tracker if unset.
    pub warnings: Option<&'a Warnings>,
    /// Builds started ahead of the evaluation, and where built steps' recipes go (see
    /// [`realise::Speculation`]); never used with a remote executor or cache.
    pub speculation: Option<&'a realise::Speculation>,
}

/// Reports through `inner`, opening `gate` at the first step's start.
struct OpensAtFirstStep<'a> {
    inner: &'a dyn Reporter,
    gate: &'a Gate,
}

impl Reporter for OpensAtFirstStep<'_> {
    fn event(&self, event: &realise::Event<'_>) {
        self.inner.event(event);
        if let realise::Event::Started { .. } = event {
            self.gate.open();
        }
    }
}

/// Realise `targets`, reporting through `events`. Returns each target's output path.
/// On success `after` runs (with the outputs) before the final message, so a failure
/// there (writing out-links, say) is reported by that message too.
pub fn build_targets(
    project: &Project,
    targets: &[Target],
    settings: &BuildSettings,
    request: &BuildRequest<'_>,
    events: &dyn Events,
    after: impl FnOnce(&[StorePath], &realise::Realisation) -> Result<(), OpsError>,
) -> Result<(Vec<StorePath>, realise::Realisation), OpsError> {
    events.sources(&project.eval);
    let (r, enforced) = realise_targets(project, targets, settings, request, events)?;
    let outputs: Vec<StorePath> = targets
        .iter()
        .filter_map(|t| {
            r.outputs
                .get(&t.drv)
                .and_then(|o| o.get(&t.output))
                .cloned()
        })
        .collect();
    let named: Vec<(String, StorePath)> = Project::shown(targets)
        .into_iter()
        .zip(outputs.iter().cloned())
        .collect();
    // Pinned outputs are verified before the final message, so it tells the whole truth.
    let pin_check = match (request.pinned, r.success()) {
        (Some(lock), true) => {
            crate::lock::verify_outputs(project, lock, &named, &|w| super::warn(events, w))
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
    events.finished(&Summary {
        success: built_ok && after_result.is_ok(),
        built: r.built.len(),
        fresh: r.fresh,
        checked: r.checked,
        differing: differing.len(),
        failed: r.failures.len(),
        targets: named
            .iter()
            .map(|(n, p)| (n.clone(), project.store.path_of(p)))
            .collect(),
        error: after_result.as_ref().err().map(OpsError::summary),
        sandbox: Some(enforced),
        scanned: project.eval.stats.scanned.len(),
        scans_substituted: project.eval.stats.scans_substituted.len(),
    });
    after_result?;
    if !r.success() {
        return Err(verdict::failure_error(project, &r));
    }
    pin_check?;
    verdict::check_differences(&project.store, &r, &differing)?;
    Ok((outputs, r))
}

/// Run the realiser for `targets` in the probed (or given) sandbox.
fn realise_targets(
    project: &Project,
    targets: &[Target],
    settings: &BuildSettings,
    request: &BuildRequest<'_>,
    events: &dyn Events,
) -> Result<(realise::Realisation, Enforcement), OpsError> {
    let enforced = match request.enforced {
        Some(e) => e,
        None => probe_sandbox(settings, events)?,
    };
    crate::scan_entries::sign_as_built(project)?;
    let sources = project.sources()?;
    let remote = crate::remote::remote_cache(project.sharing.as_deref(), &project.store)?;
    let remote_executor = crate::remote::remote_executor(project.sharing.as_deref())?;
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
        step_cache: remote.as_ref().map(crate::remote::RemoteCache::step_cache),
        speculation: request
            .speculation
            .filter(|_| remote.is_none() && remote_executor.is_none()),
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
    let untracked = Warnings::default();
    let gated;
    let inner: &dyn Reporter = match request.first_step {
        // Without a first step, the refresh's `finish` (or drop) opens the gate.
        Some(gate) => {
            gated = OpensAtFirstStep {
                inner: events,
                gate,
            };
            &gated
        }
        None => events,
    };
    let reporter = Replaying {
        inner,
        events,
        store: &project.store,
        warnings: request.warnings.unwrap_or(&untracked),
    };
    if let Some(note) = remote
        .as_ref()
        .and_then(crate::remote::RemoteCache::unshared_note)
    {
        reporter.event(&realise::Event::Warning { message: &note });
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
