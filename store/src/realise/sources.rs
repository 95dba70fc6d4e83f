//! The sources a realisation adds to the store (the user's files its derivations read),
//! added beside the scheduling of the first steps: a step's module closure and
//! resolution need only the sources' paths, and only its builder needs their contents.
//! After a one-line edit, adding the edited file (copying, hashing, flushing it to
//! stable storage) then overlaps the preparation of its compile instead of preceding it.

use cmod_schema::StorePath;

/// Whether the sources a realisation adds to the store are there. They are added beside
/// the scheduling of the first steps (their module closures and resolution, which need
/// only their paths), and a step waits for them before its builder runs.
#[derive(Debug, Default)]
pub(crate) struct SourcesAdded {
    added: std::sync::Mutex<Option<bool>>,
    done: std::sync::Condvar,
    /// The sources whose contents were new to the store, when there were at most
    /// [`EDITED_UP_TO`] of them (an edit), else none.
    edited: std::sync::OnceLock<Vec<StorePath>>,
}

/// At most this many sources new to the store make a realisation an edit: the steps
/// that read them record their recipes for a build ahead (see `speculate`), however
/// many steps the edit rebuilds. More (a cold build, a checkout) record none.
pub(crate) const EDITED_UP_TO: usize = 4;

impl SourcesAdded {
    /// Add the sources with `add` (which returns those new to the store), then release
    /// the steps waiting: with its success, or with a failure if it fails or panics
    /// (nobody waits for ever).
    pub(super) fn add<E>(&self, add: impl FnOnce() -> Result<Vec<StorePath>, E>) -> Result<(), E> {
        struct Release<'a>(&'a SourcesAdded, bool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                if let Ok(mut added) = self.0.added.lock() {
                    *added = Some(self.1);
                }
                self.0.done.notify_all();
            }
        }
        let mut release = Release(self, false);
        let new = add()?;
        if new.len() <= EDITED_UP_TO {
            let _ = self.edited.set(new);
        }
        release.1 = true;
        Ok(())
    }

    /// Whether `path` is an edited source: new to the store, in a realisation that
    /// added few (at most [`EDITED_UP_TO`]). Known once the sources are added.
    pub(super) fn is_edited(&self, path: &StorePath) -> bool {
        self.edited.get().is_some_and(|e| e.contains(path))
    }

    /// Wait until the sources are added; whether they were.
    pub(super) fn wait(&self) -> bool {
        self.added
            .lock()
            .and_then(|added| self.done.wait_while(added, |added| added.is_none()))
            .is_ok_and(|added| *added == Some(true))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use cmod_schema::derivation::Derivation;
    use cmod_schema::{ContentHash, PathKind, StorePath};

    use super::super::tests::{absent_toolchain, compile_of, test_env, two_jobs};
    use super::super::{realise, ExecError, Executed, Executor, Job, RealiseError, Silent};
    use super::SourcesAdded;
    use crate::error::StoreError;
    use crate::layout::Store;

    /// Counts the builders it is asked to run (and runs none).
    #[derive(Debug, Default)]
    struct Counting(Mutex<usize>);

    impl Executor for Counting {
        fn execute(&self, job: &Job<'_>) -> Result<Executed, ExecError> {
            *self.0.lock().unwrap() += 1;
            Err(StoreError::NotValid(job.drv_path.clone()).into())
        }
    }

    /// A source that cannot be added (it changed after the evaluator hashed it) fails
    /// the realisation with that error, and no builder runs without its sources.
    #[test]
    fn a_source_that_cannot_be_added_fails_the_realisation_before_any_builder() {
        let (t, user) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = Store::open(t.path()).unwrap();
        let host = user.path().join("a.cpp");
        std::fs::write(&host, "int edited;").unwrap();
        let seen = ContentHash::of_file(false, b"int before;");
        let source = StorePath::compute(PathKind::Source, &seen, "a.cpp", []).unwrap();
        let drv: Derivation = compile_of(&source);
        let toolchain = absent_toolchain(drv.toolchain);
        let counting = Counting::default();
        let env = test_env(&toolchain, &counting);
        let targets = vec![drv.drv_path().unwrap()];
        let drvs = BTreeMap::from([(targets[0].clone(), drv)]);
        let sources = [(host.as_path(), &source, &seen)];
        let opts = super::super::RealiseOptions {
            sources: &sources,
            ..two_jobs()
        };
        match realise(&store, &drvs, &targets, &env, &opts, &Silent) {
            Err(RealiseError::Store(StoreError::SourceChanged { host: h, .. })) => {
                assert_eq!(h, host)
            }
            other => panic!("expected the source's error, got {other:?}"),
        }
        assert_eq!(*counting.0.lock().unwrap(), 0, "a builder ran");
        assert!(!store.is_valid(&source));
    }

    /// A realisation that adds few new sources (an edit) knows them as edited; one that
    /// adds more (a cold build) knows none, and nothing is edited before the adding ends.
    #[test]
    fn few_new_sources_are_edited_and_many_are_not() {
        let paths: Vec<StorePath> = (0..=super::EDITED_UP_TO)
            .map(|i| {
                let hash = ContentHash::of_file(false, format!("int v{i};").as_bytes());
                StorePath::compute(PathKind::Source, &hash, "a.cpp", []).unwrap()
            })
            .collect();
        let (few, last) = paths.split_at(super::EDITED_UP_TO);
        let edit = SourcesAdded::default();
        assert!(!edit.is_edited(&few[0]), "edited before the adding");
        edit.add(|| Ok::<_, ()>(few.to_vec())).unwrap();
        assert!(few.iter().all(|p| edit.is_edited(p)));
        assert!(!edit.is_edited(&last[0]), "not added, yet edited");
        let cold = SourcesAdded::default();
        cold.add(|| Ok::<_, ()>(paths.clone())).unwrap();
        assert!(cold.wait());
        assert!(paths.iter().all(|p| !cold.is_edited(p)));
    }

    /// Waiters learn whether the sources were added; a panic while adding them releases
    /// them too, with a failure (nobody waits for ever).
    #[test]
    fn waiters_are_released_however_adding_ends() {
        let added = SourcesAdded::default();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| added.wait());
            added.add(|| Ok::<_, ()>(Vec::new())).unwrap();
            assert!(waiter.join().unwrap());
        });
        let failed = SourcesAdded::default();
        assert_eq!(failed.add(|| Err::<Vec<_>, _>("no")), Err("no"));
        assert!(!failed.wait());
        let panicked = SourcesAdded::default();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| panicked.wait());
            let adding = s.spawn(|| panicked.add(|| -> Result<Vec<_>, ()> { panic!("adding") }));
            assert!(adding.join().is_err());
            assert!(!waiter.join().unwrap());
        });
    }
}
