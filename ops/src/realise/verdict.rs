//! What a realisation's failures amount to: one error with the right exit class (a build
//! failure, an environment problem, a security violation, a bug), and `--check`'s verdict
//! on rebuilt outputs that differ or stored outputs found corrupt.

use std::collections::BTreeSet;

use cmod_schema::StorePath;
use cmod_store::realise::{self, Difference};
use cmod_store::Store;

use crate::{OpsError, Project};

/// One line for a differing file of a `--check` (`path` is the stored output as shown).
pub fn describe_difference(d: &Difference, mut path: String) -> String {
    if !d.file.is_empty() {
        path = format!("{path}/{}", d.file);
    }
    let size = |s: Option<u64>| s.map_or("absent".to_string(), |s| format!("{s} bytes"));
    let mut line = format!(
        "{path}: stored {}, rebuilt {}",
        size(d.stored_size),
        size(d.rebuilt_size)
    );
    if let Some(off) = d.first_difference {
        line.push_str(&format!(", first difference at byte {off}"));
    }
    if let Some(k) = &d.kept {
        line.push_str(&format!(" (rebuilt copy kept at {})", k.display()));
    }
    line
}

/// `d` as [`describe_difference`] words it, its stored path in `store`.
fn described(store: &Store, d: &Difference) -> String {
    describe_difference(d, store.path_of(&d.stored).display().to_string())
}

/// `--check`'s verdict: stored outputs found corrupt, or rebuilt outputs that differ.
pub(super) fn check_differences(
    store: &Store,
    r: &realise::Realisation,
    differing: &BTreeSet<&StorePath>,
) -> Result<(), OpsError> {
    let corrupt: Vec<&Difference> = r
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
            message.push_str(&described(store, d));
            paths.push(d.stored.to_string());
        }
        paths.dedup();
        return Err(OpsError::Integrity {
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
            message.push_str(&described(store, d));
        }
        let kept = r.differences.iter().any(|(_, d)| d.kept.is_some());
        return Err(OpsError::Integrity {
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
pub(super) fn failure_error(project: &Project, r: &realise::Realisation) -> OpsError {
    let message = failure_message(project, r);
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
        return OpsError::Integrity {
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
        return OpsError::Internal(message);
    }
    if let Some(help) = r.failures.iter().find_map(|(_, e)| environment_remedy(e)) {
        return OpsError::usage(message, Some(help));
    }
    OpsError::BuildFailed { message }
}

/// Every failure of `r`, one per line, with where its log is kept, and how many
/// dependent steps were not attempted.
fn failure_message(project: &Project, r: &realise::Realisation) -> String {
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
    message.trim_end().to_string()
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
