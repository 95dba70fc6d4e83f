//! Where the evaluator takes the scan results its cache lacks: the substituters of the
//! command's sharing configuration, signature-checked and recorded in the store.

use std::sync::Arc;

use cmod_evaluator::scan::{ScanSource, SubstitutedScans};
use cmod_evaluator::{ErrorKind, EvalError};
use cmod_schema::ContentHash;
use cmod_store::substitute::Sharing;
use cmod_store::Store;

/// Scan entries from the configured substituters (binary caches), signature-checked and
/// recorded in the store.
#[derive(Debug)]
struct FromSubstituters(Store, Arc<Sharing>);

impl ScanSource for FromSubstituters {
    fn fetch(&self, keys: &[ContentHash]) -> Result<SubstitutedScans, EvalError> {
        let got = cmod_store::scans::substitute_scans(&self.0, &self.1, keys)
            .map_err(|e| EvalError::new(kind_of(e.exit_class()), e.to_string()))?;
        Ok(SubstitutedScans {
            found: got.found,
            warnings: got.warnings,
        })
    }
}

/// The evaluation error kind that exits as `class` does: a forged entry is an integrity
/// error, a store that cannot be written the machine's state, anything else a bug.
fn kind_of(class: cmod_schema::diag::ExitClass) -> ErrorKind {
    use cmod_schema::diag::ExitClass;
    match class {
        ExitClass::Integrity => ErrorKind::Integrity,
        ExitClass::Usage => ErrorKind::Io,
        ExitClass::Build => ErrorKind::Scan,
        ExitClass::Internal => ErrorKind::Internal,
    }
}

/// Where the evaluator may take scans from: `cfg`'s substituters, when it has binary
/// caches and the network may be used (not `offline`).
pub fn source(offline: bool, store: &Store, cfg: &Arc<Sharing>) -> Option<Arc<dyn ScanSource>> {
    let any_cache = cfg.substituters.iter().any(|u| !u.starts_with("ssh://"));
    (any_cache && !offline)
        .then(|| Arc::new(FromSubstituters(store.clone(), cfg.clone())) as Arc<dyn ScanSource>)
}
