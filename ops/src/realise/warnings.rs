//! Compiler warnings of build steps. A built step's warnings are shown as it finishes
//! (by the [`Events`] reporting it); how many each step had is remembered in the realisation memo; and
//! when the step is fresh later, its warnings are shown again from its kept log, as
//! Cargo replays cached warnings, so a warning does not vanish on the second build.

use std::collections::HashMap;
use std::sync::Mutex;

use cmod_schema::derivation::Derivation;
use cmod_schema::StorePath;
use cmod_store::memo::{warning_count, Memo};
use cmod_store::realise::{Event, Reporter};
use cmod_store::Store;

use super::Events;

/// How many warnings each step had: from the previous realisation's memo, and as seen
/// in this one.
#[derive(Debug, Default)]
pub struct Warnings {
    known: HashMap<StorePath, u32>,
    seen: Mutex<HashMap<StorePath, u32>>,
}

impl Warnings {
    /// What `memo` (the previous realisation of the same targets) recorded.
    pub fn from_memo(memo: Option<&Memo>) -> Warnings {
        let known = memo
            .map(|m| {
                // Every entry, zeros included: a step the memo knows costs no log read.
                m.derivations
                    .iter()
                    .map(|d| (d.drv.clone(), d.warnings))
                    .collect()
            })
            .unwrap_or_default();
        Warnings {
            known,
            seen: Mutex::default(),
        }
    }

    /// The warnings `drv` had in this realisation (built or replayed), for its memo.
    pub fn of(&self, drv: &StorePath) -> u32 {
        self.seen
            .lock()
            .map(|s| s.get(drv).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn note(&self, drv: &StorePath, n: u32) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(drv.clone(), n);
        }
    }

    /// Fresh step `drv`'s kept log and how many warnings it holds, if any: the count
    /// the previous memo recorded (no log is read for a step it knows had none), else
    /// the log's own (a step found in the build trace but not in the memo, a cost paid
    /// once: the memo written after this run has it).
    fn fresh_warnings(&self, store: &Store, drv: &StorePath) -> Option<(String, u32)> {
        let known = self.known.get(drv).copied();
        if known == Some(0) {
            return None;
        }
        let log = store.log_for(drv)?;
        let n = known.unwrap_or_else(|| warning_count(&log));
        (n > 0).then_some((log, n))
    }
}

/// A reporter in front of `inner` that records each step's warnings and replays those
/// of fresh steps through `events`.
pub(super) struct Replaying<'a> {
    pub inner: &'a dyn Reporter,
    pub events: &'a dyn Events,
    pub store: &'a Store,
    pub warnings: &'a Warnings,
}

impl Reporter for Replaying<'_> {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::Built { drv, log, .. } => {
                let n = warning_count(log);
                if n > 0 {
                    self.warnings.note(drv, n);
                }
            }
            Event::Fresh { drv, name, .. } => {
                let warned = self.warnings.fresh_warnings(self.store, drv);
                if let Some((log, n)) = warned {
                    if let Some(derivation) = derivation_of(self.store, drv) {
                        self.events
                            .replayed_warnings((drv, name), &derivation, &log, n);
                        self.warnings.note(drv, n);
                    }
                }
            }
            _ => {}
        }
        self.inner.event(event);
    }
}

/// Replay the warnings of every step `memo` records some for (a no-op realisation).
pub(super) fn replay_memo(store: &Store, memo: &Memo, events: &dyn Events) {
    for d in memo.derivations.iter().filter(|d| d.warnings > 0) {
        let log = store.log_for(&d.drv);
        if let Some((log, derivation)) = log.zip(derivation_of(store, &d.drv)) {
            events.replayed_warnings((&d.drv, &d.name), &derivation, &log, d.warnings);
        }
    }
}

/// A step's derivation (whose inputs map its log's paths to the user's files); `None`
/// if it is gone (collected), when nothing is replayed.
fn derivation_of(store: &Store, drv: &StorePath) -> Option<Derivation> {
    let bytes = std::fs::read(store.path_of(drv)).ok()?;
    serde_json::from_slice(&bytes).ok()
}
