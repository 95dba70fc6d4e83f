//! The scheduler: `jobs` workers take ready derivations, longest remaining chain first,
//! realise each (see `realise_one`) and release its dependents. After the first failure
//! no new step starts; running ones finish, and dependents are reported as skipped.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use cmod_schema::{ContentHash, StorePath};

use super::build::Realised;
use super::graph::{Needed, Positions};
use super::modules::module_closure;
use super::{realise_one, BuildEnv, BuildError, Event, Known, RealiseError, RealiseOptions};
use super::{Realisation, Reporter, Step};
use crate::error::StoreError;
use crate::layout::Store;

/// One step of the run: its derivation, its inputs (positions, borrowed from the
/// [`Needed`] graph), its dependents and its priority.
struct Node<'n> {
    drv: StorePath,
    deps: &'n [usize],
    dependents: Vec<usize>,
    priority: usize,
}

#[derive(Default)]
struct State {
    ready: BinaryHeap<(usize, usize)>,
    waiting_on: Vec<usize>,
    running: usize,
    finished: usize,
    stop: bool,
    out: Realisation,
}

/// Outputs of the derivations an input of a step names, by derivation.
type Inputs = HashMap<StorePath, BTreeMap<String, StorePath>>;

/// Workers when a step cache is asked (each waits on a round trip most of the time).
const STEP_CACHE_WORKERS: usize = 8;

/// What the workers share.
pub(super) struct Scheduler<'a> {
    pub store: &'a Store,
    pub drvs: &'a super::Index<'a>,
    pub env: &'a BuildEnv<'a>,
    pub opts: &'a RealiseOptions<'a>,
    pub reporter: &'a dyn Reporter,
    /// Whether the steps keep their sandbox views (see `KEEP_VIEWS_UP_TO`).
    pub keep_views: bool,
    /// Whether the sources are in the store yet.
    pub sources: &'a super::SourcesAdded,
}

/// The nodes of `needed`: each one's inputs and dependents, and its priority (the
/// longest chain of dependents: what the most work waits on starts first).
fn nodes_of<'n>(needed: &'n Needed<'_>) -> Vec<Node<'n>> {
    let mut nodes: Vec<Node> = needed
        .order
        .iter()
        .zip(&needed.deps)
        .map(|(d, deps)| Node {
            drv: d.clone(),
            deps,
            dependents: Vec::new(),
            priority: 1,
        })
        .collect();
    for i in 0..nodes.len() {
        for &j in nodes[i].deps {
            nodes[j].dependents.push(i);
        }
    }
    for i in (0..nodes.len()).rev() {
        let p = 1 + nodes[i]
            .dependents
            .iter()
            .map(|&j| nodes[j].priority)
            .max()
            .unwrap_or(0);
        nodes[i].priority = p;
    }
    nodes
}

impl Scheduler<'_> {
    /// The state before any step runs, and each step's outputs where `known` has them
    /// (moved, not copied: on a large graph that is thousands of maps): reused ones
    /// counted fresh, substituted ones listed; the steps whose inputs are all known are
    /// ready. Also the positions of the reused steps.
    fn initial_state(&self, nodes: &[Node<'_>], known: Known) -> (State, Outcomes, Vec<usize>) {
        let Known {
            mut reused,
            mut substituted,
        } = known;
        let mut state = State {
            waiting_on: vec![0; nodes.len()],
            ..Default::default()
        };
        let mut done: Outcomes = Vec::with_capacity(nodes.len());
        let mut fresh = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let outputs = if let Some(outputs) = reused.remove(&n.drv) {
                state.out.fresh += 1;
                fresh.push(i);
                Some(outputs)
            } else if let Some(outputs) = substituted.remove(&n.drv) {
                state.out.substituted.push(n.drv.clone());
                Some(outputs)
            } else {
                None
            };
            state.finished += usize::from(outputs.is_some());
            done.push(outputs.map(OnceLock::from).unwrap_or_default());
        }
        for (i, n) in nodes.iter().enumerate() {
            let pending = n.deps.iter().filter(|&&j| done[j].get().is_none()).count();
            state.waiting_on[i] = pending;
            if pending == 0 && done[i].get().is_none() {
                state.ready.push((n.priority, i));
            }
        }
        (state, done, fresh)
    }

    /// Realise every derivation of `needed` that `known` does not cover.
    pub fn run(&self, needed: &Needed<'_>, known: Known) -> Result<Realisation, RealiseError> {
        let index = &needed.positions;
        let nodes = nodes_of(needed);
        let (state, done, fresh) = self.initial_state(&nodes, known);
        let run = Run {
            index,
            done,
            shared: (Mutex::new(state), Condvar::new()),
            nodes,
            sched: self,
        };
        // A step cache is mostly waiting on the network: more workers ask it at once (the
        // environment's executor then holds builds to `jobs`, see `Throttled`).
        let workers = match self.env.step_cache {
            Some(_) => self.opts.jobs.max(STEP_CACHE_WORKERS),
            None => self.opts.jobs,
        };
        let jobs = workers.max(1).min(run.nodes.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(|| run.worker());
            }
            // Reused steps are reported fresh once the workers are going, beside them: on
            // a large graph that is thousands of messages, which the first step need not
            // wait for.
            s.spawn(|| {
                super::background::lower_this_threads_priority();
                for &i in &fresh {
                    let n = &run.nodes[i];
                    if let Some(outputs) = run.done[i].get() {
                        self.reporter.event(&Event::Fresh {
                            drv: &n.drv,
                            name: &self.drvs[&n.drv].name,
                            outputs,
                        });
                    }
                }
            });
        });
        run.finish()
    }
}

/// Each step's outputs once known (reused, substituted or realised), set once and
/// readable without the lock (for laying out module closures).
type Outcomes = Vec<OnceLock<BTreeMap<String, StorePath>>>;

/// One scheduling run.
struct Run<'a, 's> {
    sched: &'s Scheduler<'a>,
    nodes: Vec<Node<'s>>,
    index: &'s Positions<'s>,
    done: Outcomes,
    shared: (Mutex<State>, Condvar),
}

impl Run<'_, '_> {
    fn worker(&self) {
        while let Some((i, inputs)) = self.next() {
            let started = Instant::now();
            let result = self.realise(i, &inputs);
            let Ok(mut st) = self.shared.0.lock() else {
                return;
            };
            st.running -= 1;
            st.finished += 1;
            match result {
                Ok((realised, key)) => self.succeeded(&mut st, i, realised, &key, started),
                Err(e) => self.failed(&mut st, i, e),
            }
            self.shared.1.notify_all();
        }
    }

    /// The next ready step and its inputs' outputs; `None` when there is nothing left
    /// to start (all finished, or stopped after a failure).
    fn next(&self) -> Option<(usize, Inputs)> {
        let mut st = self.shared.0.lock().ok()?;
        loop {
            // After a failure nothing new starts: done once the running steps are.
            let stopped = st.stop && st.running == 0;
            if st.finished == self.nodes.len() || stopped {
                self.shared.1.notify_all();
                return None;
            }
            if !st.stop {
                if let Some((_, i)) = st.ready.pop() {
                    st.running += 1;
                    let inputs = self.nodes[i]
                        .deps
                        .iter()
                        .filter_map(|&j| {
                            Some((self.nodes[j].drv.clone(), self.done[j].get()?.clone()))
                        })
                        .collect();
                    return Some((i, inputs));
                }
            }
            st = self.shared.1.wait(st).ok()?;
        }
    }

    /// Realise step `i`. A panic must not leave the step running for ever (the other
    /// workers would wait for it): it becomes this step's failure.
    fn realise(&self, i: usize, inputs: &Inputs) -> Result<(Realised, ContentHash), BuildError> {
        let s = self.sched;
        let node = &self.nodes[i];
        let drv = &s.drvs[&node.drv];
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let modules = module_closure(s.drvs, drv, |d, o| {
                self.done[self.index[d]].get()?.get(o).cloned()
            })
            .map_err(|e| BuildError::Store {
                name: drv.name.clone(),
                source: StoreError::CorruptMetadata {
                    path: node.drv.to_string(),
                    reason: e.to_string(),
                },
            })?;
            let step = Step {
                drv_path: &node.drv,
                drv,
                modules: &modules,
                keep_view: s.keep_views,
                sources: s.sources,
            };
            realise_one(s.store, &step, inputs, s.env, s.opts, s.reporter)
        }))
        .unwrap_or_else(|payload| Err(BuildError::from_panic(&drv.name, payload.as_ref())))
    }

    /// Record step `i`'s outputs, report it and release its dependents.
    fn succeeded(
        &self,
        st: &mut MutexGuard<'_, State>,
        i: usize,
        realised: Realised,
        key: &ContentHash,
        started: Instant,
    ) {
        let s = self.sched;
        let node = &self.nodes[i];
        let (drv, name) = (&node.drv, &s.drvs[&node.drv].name);
        let outputs = match realised {
            Realised::Built {
                outputs,
                log,
                speculative,
            } => {
                s.reporter.event(&Event::Built {
                    drv,
                    name,
                    derivation: s.drvs[&node.drv],
                    outputs: &outputs,
                    log: &log,
                    started,
                    elapsed: started.elapsed(),
                    speculative,
                });
                st.out.built.push(drv.clone());
                outputs
            }
            Realised::Fresh(outputs) => {
                s.reporter.event(&Event::Fresh {
                    drv,
                    name,
                    outputs: &outputs,
                });
                st.out.fresh += 1;
                outputs
            }
            Realised::Substituted { outputs, from } => {
                s.reporter.event(&Event::Substituted {
                    drv,
                    name,
                    outputs: &outputs,
                    from: &from,
                });
                st.out.substituted.push(drv.clone());
                outputs
            }
            Realised::Checked {
                outputs,
                differences,
            } => {
                s.reporter.event(&Event::Checked {
                    drv,
                    name,
                    differences: &differences,
                });
                st.out.checked += 1;
                let with_drv = differences.into_iter().map(|d| (drv.clone(), d));
                st.out.differences.extend(with_drv);
                outputs
            }
        };
        if let Err(e) = s.store.record_drv_outputs(drv, key, &outputs) {
            let error = BuildError::Store {
                name: name.clone(),
                source: e,
            };
            st.out.failures.push((drv.clone(), error));
            st.stop = true;
        }
        let _ = self.done[i].set(outputs);
        for &j in &node.dependents {
            st.waiting_on[j] = st.waiting_on[j].saturating_sub(1);
            if st.waiting_on[j] == 0 && self.done[j].get().is_none() {
                st.ready.push((self.nodes[j].priority, j));
            }
        }
    }

    /// Report step `i`'s failure and stop starting new steps.
    fn failed(&self, st: &mut MutexGuard<'_, State>, i: usize, e: BuildError) {
        let node = &self.nodes[i];
        let drv = &self.sched.drvs[&node.drv];
        let (log, reason) = match &e {
            BuildError::Failed { log, .. }
            | BuildError::MissingOutput { log, .. }
            | BuildError::UndeclaredOutput { log, .. } => (log.clone(), e.to_string()),
            other => (String::new(), other.to_string()),
        };
        self.sched.reporter.event(&Event::Failed {
            drv: &node.drv,
            name: &drv.name,
            derivation: drv,
            log: &log,
            reason: &reason,
        });
        st.out.failures.push((node.drv.clone(), e));
        st.stop = true;
    }

    /// The realisation, with every step that never ran reported as skipped.
    fn finish(self) -> Result<Realisation, RealiseError> {
        let s = self.sched;
        let mut st = self.shared.0.into_inner().map_err(|_| {
            StoreError::io(
                "realising",
                s.store.root(),
                std::io::Error::other("a worker panicked"),
            )
        })?;
        for (n, outputs) in self.nodes.into_iter().zip(self.done) {
            match outputs.into_inner() {
                Some(outputs) => {
                    st.out.outputs.insert(n.drv, outputs);
                }
                None if !st.out.failures.iter().any(|(d, _)| *d == n.drv) => {
                    s.reporter.event(&Event::Skipped {
                        drv: &n.drv,
                        name: &s.drvs[&n.drv].name,
                    });
                    st.out.skipped.push(n.drv);
                }
                None => {}
            }
        }
        Ok(st.out)
    }
}
