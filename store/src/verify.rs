//! Verification: every problem of the store's registrations, without stopping at the
//! first — unreadable metadata, missing contents and (on request) contents that no
//! longer hash to what was recorded — and invalidating damaged paths so that the next
//! realisation rebuilds or re-substitutes them (`cmod store repair`).

use cmod_schema::{ContentHash, StorePath};

use crate::content;
use crate::error::StoreError;
use crate::layout::Store;

/// What is wrong with one registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The metadata file cannot be read as the path's metadata.
    UnreadableMetadata {
        /// Why it cannot be read.
        reason: String,
    },
    /// Registered, but the contents are gone.
    MissingContents,
    /// The contents no longer hash to the recorded content hash (or size).
    CorruptContents {
        /// What the contents hash to now.
        found: ContentHash,
        /// Their size now.
        size: u64,
        /// The hash recorded at registration.
        recorded: ContentHash,
        /// The size recorded at registration.
        recorded_size: u64,
    },
    /// The contents could not be read to check them.
    Unreadable {
        /// The read error.
        reason: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::UnreadableMetadata { reason } => {
                write!(f, "its metadata cannot be read: {reason}")
            }
            Problem::MissingContents => f.write_str("its contents are missing"),
            Problem::CorruptContents {
                found,
                size,
                recorded,
                recorded_size,
            } => write!(
                f,
                "contents hash to {found} ({size} bytes), but {recorded} ({recorded_size} bytes) was recorded"
            ),
            Problem::Unreadable { reason } => write!(f, "its contents cannot be read: {reason}"),
        }
    }
}

/// One damaged registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The hash part of the path (all that is known when its metadata is unreadable and
    /// its contents are gone).
    pub hash: String,
    /// The path, when known.
    pub path: Option<StorePath>,
    /// What is wrong.
    pub problem: Problem,
}

impl Damage {
    /// How the damaged path is called in messages.
    pub fn describe(&self, store: &Store) -> String {
        match &self.path {
            Some(p) => store.path_of(p).display().to_string(),
            None => format!(
                "{} (metadata {}/{}.json)",
                self.hash,
                store.dir("meta").display(),
                self.hash
            ),
        }
    }
}

/// What verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many registrations were checked.
    pub checked: usize,
    /// The damaged ones.
    pub damaged: Vec<Damage>,
}

impl Store {
    /// Check every registration: readable metadata, contents present, and with
    /// `contents`, contents that still hash to the recorded content hash. Every problem is
    /// reported; none stops the check.
    pub fn verify(&self, contents: bool) -> Result<VerifyReport, StoreError> {
        let (registered, unreadable) = self.registered()?;
        let mut report = VerifyReport {
            checked: registered.len() + unreadable.len(),
            damaged: unreadable
                .into_iter()
                .map(|u| Damage {
                    hash: u.hash,
                    path: u.path,
                    problem: Problem::UnreadableMetadata { reason: u.reason },
                })
                .collect(),
        };
        let found: Vec<Option<Damage>> = {
            use rayon::prelude::*;
            registered
                .par_iter()
                .map(|p| self.damage_of(p, contents))
                .collect()
        };
        report.damaged.extend(found.into_iter().flatten());
        report.damaged.sort_by(|a, b| a.hash.cmp(&b.hash));
        Ok(report)
    }

    /// What is wrong with registered path `path`, if anything.
    pub fn damage_of(&self, path: &StorePath, contents: bool) -> Option<Damage> {
        let damage = |problem| {
            Some(Damage {
                hash: path.hash_part().to_string(),
                path: Some(path.clone()),
                problem,
            })
        };
        let info = match self.path_info(path) {
            Ok(info) => info,
            Err(StoreError::NotValid(_)) => return None,
            Err(e) => {
                return damage(Problem::UnreadableMetadata {
                    reason: e.to_string(),
                })
            }
        };
        let on_disk = self.path_of(path);
        if std::fs::symlink_metadata(&on_disk).is_err() {
            return damage(Problem::MissingContents);
        }
        if !contents {
            return None;
        }
        match content::hash_path(&on_disk, &Default::default()) {
            Ok(t) if t.hash == info.content_hash && t.size == info.size => None,
            Ok(t) => damage(Problem::CorruptContents {
                found: t.hash,
                size: t.size,
                recorded: info.content_hash,
                recorded_size: info.size,
            }),
            Err(e) => damage(Problem::Unreadable {
                reason: e.to_string(),
            }),
        }
    }

    /// Forget every damaged registration in `damaged` (its metadata and what is left of
    /// its contents), so the next realisation that needs it rebuilds or re-substitutes
    /// it. Holds the GC lock shared, like a realisation.
    pub fn invalidate_damaged(&self, damaged: &[Damage]) -> Result<(), StoreError> {
        let _gc = self.gc_guard()?;
        for d in damaged {
            self.invalidate(&d.hash, d.path.as_ref())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmod_schema::PathKind;
    use std::collections::BTreeSet;

    fn store() -> (tempfile::TempDir, Store) {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        (t, s)
    }

    #[test]
    fn verify_reports_every_problem_and_does_not_stop() {
        let (_t, s) = store();
        let none = BTreeSet::new();
        let a = s.add_bytes(PathKind::Output, "a", b"aaa", &none).unwrap();
        let b = s.add_bytes(PathKind::Output, "b", b"bbb", &none).unwrap();
        let c = s.add_bytes(PathKind::Output, "c", b"ccc", &none).unwrap();
        let d = s.add_bytes(PathKind::Output, "d", b"ddd", &none).unwrap();
        assert!(s.verify(true).unwrap().damaged.is_empty());
        let pa = s.path_of(&a);
        std::fs::set_permissions(&pa, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        std::fs::write(&pa, "tampered").unwrap();
        std::fs::remove_file(s.path_of(&b)).unwrap();
        std::fs::write(s.meta_file(&c), "").unwrap();
        std::fs::write(s.meta_file(&d), "{\"version\": 1, \"pa").unwrap();
        // Without content checks the flipped contents go unnoticed; the rest does not.
        let quick = s.verify(false).unwrap();
        assert_eq!(quick.checked, 4);
        assert_eq!(quick.damaged.len(), 3, "{quick:?}");
        let r = s.verify(true).unwrap();
        let found: BTreeSet<(StorePath, String)> = r
            .damaged
            .iter()
            .map(|d| (d.path.clone().unwrap(), d.problem.to_string()))
            .collect();
        assert_eq!(found.len(), 4, "{found:?}");
        let problem = |p: &StorePath| found.iter().find(|(x, _)| x == p).unwrap().1.clone();
        assert!(problem(&a).contains("was recorded"), "{}", problem(&a));
        assert!(problem(&b).contains("missing"));
        assert!(problem(&c).contains("metadata cannot be read") && problem(&c).contains("empty"));
        assert!(problem(&d).contains("metadata cannot be read"));
        // A damaged path is not valid: it is rebuilt, not used.
        assert!(!s.is_valid(&b) && s.is_damaged(&b));
    }

    #[test]
    fn invalidating_damage_forgets_it_and_a_new_registration_replaces_it() {
        let (_t, s) = store();
        let none = BTreeSet::new();
        let a = s.add_bytes(PathKind::Output, "a", b"aaa", &none).unwrap();
        std::fs::write(s.meta_file(&a), "garbage").unwrap();
        let r = s.verify(true).unwrap();
        assert_eq!(r.damaged.len(), 1);
        assert_eq!(
            r.damaged[0].path.as_ref(),
            Some(&a),
            "found by its hash among contents"
        );
        s.invalidate_damaged(&r.damaged).unwrap();
        assert!(!s.is_registered(&a) && !s.path_of(&a).exists());
        assert!(s.verify(true).unwrap().damaged.is_empty());
        let again = s.add_bytes(PathKind::Output, "a", b"aaa", &none).unwrap();
        assert_eq!(again, a);
        assert!(s.is_valid(&a));
        // Missing contents are replaced by the next registration too.
        std::fs::remove_file(s.path_of(&a)).unwrap();
        assert!(!s.is_valid(&a));
        s.add_bytes(PathKind::Output, "a", b"aaa", &none).unwrap();
        assert!(s.is_valid(&a) && s.verify(true).unwrap().damaged.is_empty());
    }
}
