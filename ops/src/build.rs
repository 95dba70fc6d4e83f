//! How a command builds: the typed form of the build options (`-j`, `--sandbox`,
//! `--keep-failed`, `--accept-outputs-from`, the limits), the sandbox probe, and the keys
//! a realisation's memo is found under.

use std::time::Duration;

use cmod_evaluator::Evaluation;
use cmod_sandbox::{Enforcement, Limits, Mode};
use cmod_schema::ContentHash;

use crate::error::OpsError;

/// How build steps run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSettings {
    /// Parallel build jobs; `None`: one per core.
    pub jobs: Option<usize>,
    /// The sandbox mode, as given (`full`, `landlock`, `off`).
    pub sandbox: String,
    /// Keep the build directory of a failed step.
    pub keep_failed: bool,
    /// Other sandbox modes whose outputs may be reused, as given.
    pub accept_outputs_from: Vec<String>,
    /// How long one step may run.
    pub action_timeout: Duration,
    /// How many bytes one step may write.
    pub max_output_size: u64,
}

impl BuildSettings {
    /// The jobs asked for, else one per core.
    pub fn jobs(&self) -> usize {
        self.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }

    /// The limits of every step.
    pub fn limits(&self) -> Limits {
        Limits {
            timeout: self.action_timeout,
            max_output_bytes: self.max_output_size,
        }
    }

    /// The requested sandbox mode, parsed and probed: what it will enforce, or an error
    /// with the remedy.
    pub fn probe_sandbox(&self) -> Result<Enforcement, OpsError> {
        let mode: Mode = self
            .sandbox
            .parse()
            .map_err(|e: String| OpsError::usage(e, None))?;
        cmod_sandbox::probe(mode).map_err(|e| OpsError::Sandbox {
            message: e.to_string(),
            help: e.remedy().map(str::to_string),
        })
    }

    /// The modes whose outputs may be reused besides the current one.
    pub fn accepted_modes(&self) -> Result<Vec<Mode>, OpsError> {
        self.accept_outputs_from
            .iter()
            .map(|m| m.parse::<Mode>().map_err(|e| OpsError::usage(e, None)))
            .collect()
    }
}

/// The warning for a full sandbox that runs without Landlock (a kernel without it still
/// isolates with its namespaces, but loses the second layer), if that is the case (without
/// the `warning: ` prefix).
pub fn missing_landlock_warning(enforced: &Enforcement) -> Option<String> {
    (enforced.mode == Mode::Full && enforced.landlock_abi.is_none()).then(|| {
        "this kernel has no Landlock, so the full sandbox runs with its namespaces only \
         (no second layer restricting files and TCP); enable Landlock (CONFIG_SECURITY_LANDLOCK, \
         `lsm=landlock,...` on the kernel command line) to restore it"
            .to_string()
    })
}

/// The key of a realisation memo: the evaluation's fingerprint (everything the
/// derivations are computed from), the sandbox mode, the modes whose outputs were
/// accepted too, and the selected targets (as shown).
pub fn memo_key(
    eval: &Evaluation,
    mode: Mode,
    accepted: &[String],
    names: &[String],
) -> ContentHash {
    let mut accepted: Vec<&str> = accepted.iter().map(String::as_str).collect();
    accepted.sort();
    accepted.dedup();
    let accepted = format!("accept:{}", accepted.join(","));
    let mut parts = vec![mode.as_str(), accepted.as_str()];
    parts.extend(names.iter().map(String::as_str));
    cmod_store::memo::memo_key(&eval.fingerprint(), &parts)
}

/// The slot of the memos of `names` realised in `mode` from this package: the memo
/// last written in it holds the derivations an edit can reuse (see
/// `cmod_store::realise::RealiseOptions::previous`).
pub fn memo_slot(
    eval: &Evaluation,
    mode: Mode,
    accepted: &[String],
    names: &[String],
) -> ContentHash {
    let root = eval.packages.root().root.to_string_lossy().into_owned();
    let anchor = ContentHash::of_file(false, root.as_bytes());
    let mut parts = vec!["latest", mode.as_str()];
    parts.extend(accepted.iter().map(String::as_str));
    parts.extend(names.iter().map(String::as_str));
    cmod_store::memo::memo_key(&anchor, &parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(sandbox: &str, accepted: &[&str]) -> BuildSettings {
        BuildSettings {
            jobs: Some(3),
            sandbox: sandbox.into(),
            keep_failed: false,
            accept_outputs_from: accepted.iter().map(|m| m.to_string()).collect(),
            action_timeout: Duration::from_secs(7),
            max_output_size: 1 << 20,
        }
    }

    /// The typed settings carry what was asked: jobs, limits, accepted modes; `off`
    /// needs no probe of the machine and enforces nothing.
    #[test]
    fn settings_carry_the_request() {
        let s = settings("off", &["landlock", "off"]);
        assert_eq!(s.jobs(), 3);
        assert_eq!(
            s.limits(),
            Limits {
                timeout: Duration::from_secs(7),
                max_output_bytes: 1 << 20
            }
        );
        assert_eq!(s.accepted_modes().unwrap(), [Mode::Landlock, Mode::Off]);
        let enforced = s.probe_sandbox().unwrap();
        assert_eq!(enforced.mode, Mode::Off);
        assert_eq!(missing_landlock_warning(&enforced), None);
        let default_jobs = BuildSettings { jobs: None, ..s };
        assert!(default_jobs.jobs() >= 1);
    }

    /// An unknown mode, asked for or accepted, is a usage error that names it and lists
    /// the modes there are.
    #[test]
    fn unknown_modes_are_usage_errors_naming_them() {
        for err in [
            settings("fulll", &[]).probe_sandbox().unwrap_err(),
            settings("off", &["nix"]).accepted_modes().unwrap_err(),
        ] {
            assert!(matches!(err, OpsError::Usage { .. }), "{err:?}");
            assert_eq!(err.exit_class(), cmod_schema::diag::ExitClass::Usage);
            let text = err.to_string();
            assert!(text.contains("unknown sandbox mode"), "{text}");
            assert!(text.contains("`full`, `landlock` or `off`"), "{text}");
        }
    }

    /// A full sandbox without Landlock warns; with it, or in another mode, it does not.
    #[test]
    fn only_a_full_sandbox_without_landlock_warns() {
        let e = |mode, landlock_abi| Enforcement { mode, landlock_abi };
        assert!(missing_landlock_warning(&e(Mode::Full, None))
            .is_some_and(|w| w.contains("CONFIG_SECURITY_LANDLOCK")));
        assert_eq!(missing_landlock_warning(&e(Mode::Full, Some(7))), None);
        assert_eq!(missing_landlock_warning(&e(Mode::Landlock, None)), None);
    }
}
