//! The lockfile side of building: keep `cmod.lock` current, refuse to change it under
//! `--locked`, write pins, and verify pinned outputs.

use cmod_evaluator::lockfile::{self, lock_path};
use cmod_evaluator::{ErrorKind, EvalError};
use cmod_schema::lock::Lockfile;
use cmod_schema::StorePath;
use cmod_store::content;

use crate::{OpsError, Project};

/// The name of the profile the project was evaluated for (`dev`, `release`): the table of
/// `cmod.lock`'s pinned outputs that applies.
pub fn profile(project: &Project) -> &'static str {
    project.profile.as_str()
}

/// Write `lock` unless the file already says exactly that; whether it was written.
pub fn write(project: &Project, lock: &Lockfile) -> Result<bool, OpsError> {
    let path = lock_path(&project.eval);
    let text = lock.render();
    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    cmod_evaluator::cache_io::replace_file(&path, text.as_bytes())
        .map_err(|e| OpsError::Eval(EvalError::io(&path, "write", e)))?;
    Ok(true)
}

/// The lock a build works under ([`Prepared`]). With `locked`, the existing lock must
/// exist and match the current state (exit 2 otherwise). Without it, the lock is brought
/// up to date; pinned outputs survive only while nothing they depend on changed.
pub fn prepare(project: &Project, locked: bool) -> Result<Prepared, OpsError> {
    let path = lock_path(&project.eval);
    let old = lockfile::read(&path)?;
    let mut now = lockfile::current(&project.eval);
    match (old, locked) {
        (None, true) => Err(EvalError::new(
            ErrorKind::Lock,
            format!("--locked was given but `{}` does not exist", path.display()),
        )
        .help("run `cmod lock` (or `cmod lock --outputs`) and commit cmod.lock")
        .into()),
        (Some(old), true) => {
            let changes = lockfile::changes(&old, &now);
            if changes.is_empty() {
                Ok(Prepared {
                    lock: old,
                    warning: None,
                })
            } else {
                Err(EvalError::new(
                    ErrorKind::Lock,
                    format!(
                        "--locked was given but `{}` would change:\n  - {}",
                        path.display(),
                        changes.join("\n  - ")
                    ),
                )
                .help("run `cmod lock` to update it if these changes are intended")
                .into())
            }
        }
        (old, false) => {
            let mut warning = None;
            if let Some(old) = old {
                let changes = lockfile::changes(&old, &now);
                if changes.is_empty() {
                    now.outputs = old.outputs;
                } else if !old.outputs.is_empty() {
                    warning = Some(format!("cmod.lock: pinned outputs dropped because {}; run `cmod lock --outputs` to pin new ones", changes[0]));
                }
            }
            write(project, &now)?;
            Ok(Prepared { lock: now, warning })
        }
    }
}

/// The lock a build works under, and what the user should be warned of (pinned outputs
/// dropped because what they depend on changed).
#[derive(Debug)]
pub struct Prepared {
    /// The lock as it is now on disk.
    pub lock: Lockfile,
    /// A warning (without the `warning: ` prefix) to show.
    pub warning: Option<String>,
}

/// Check realised target outputs (name, path) against the outputs pinned in `lock` for
/// the current profile (exit 3 on any difference). The bytes on disk are re-hashed, not
/// the metadata's recorded hash trusted, so a pinned output corrupted in a long-lived (CI)
/// store is caught even when nothing was rebuilt; only the final target outputs are
/// pinned, so this is a few files (about 1 ms for the examples' binaries and archives).
/// A realised target without a pin for the profile cannot be verified: that is a warning,
/// given to `warn` (without the `warning: ` prefix).
pub fn verify_outputs(
    project: &Project,
    lock: &Lockfile,
    outputs: &[(String, StorePath)],
    warn: &dyn Fn(&str),
) -> Result<(), OpsError> {
    let profile = profile(project);
    let pinned = lock.outputs.get(profile);
    let mut wrong = Vec::new();
    let mut unpinned = Vec::new();
    for (name, p) in outputs {
        let Some(pin) = pinned.and_then(|pins| pins.get(name)) else {
            unpinned.push(format!("`{name}`"));
            continue;
        };
        let on_disk = project.store.path_of(p);
        match content::hash_path(&on_disk, &Default::default()) {
            Ok(tree) if tree.hash == pin.content_hash => {}
            Ok(tree) => wrong.push(format!(
                "`{name}`: {} hashes to {} on disk, but cmod.lock pins {} ({})",
                on_disk.display(),
                tree.hash,
                pin.content_hash,
                pin.path
            )),
            Err(e) => wrong.push(format!(
                "`{name}`: {} cannot be verified against its pin {}: {e}",
                on_disk.display(),
                pin.content_hash
            )),
        }
    }
    if !unpinned.is_empty() {
        warn(&format!(
            "cmod.lock pins no output of {} for the `{profile}` profile, so --locked cannot verify {}; run `cmod lock --outputs{}` to pin {}",
            unpinned.join(", "),
            if unpinned.len() == 1 { "it" } else { "them" },
            if profile == "release" { " --release" } else { "" },
            if unpinned.len() == 1 { "it" } else { "them" },
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(OpsError::Integrity {
            message: format!("realised outputs differ from those pinned in cmod.lock:\n  - {}", wrong.join("\n  - ")),
            help: Some("if the change is intended, re-pin with `cmod lock --outputs`; otherwise the build or the store is not trustworthy (`cmod store verify` checks the whole store)".into()),
        })
    }
}
