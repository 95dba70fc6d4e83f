//! The derivation graph one realisation walks: the derivations its targets need, in
//! topological order, each with its input derivations by position. Found in one pass, so
//! the passes after it (reuse, scheduling) index vectors instead of looking paths up:
//! after a one-line edit of a large graph those passes are most of what is left between
//! the evaluation and the first compile.

use std::collections::hash_map::Entry;

use cmod_schema::derivation::InputFrom;
use cmod_schema::store_path::PathMap;
use cmod_schema::StorePath;

use super::{DrvLookup, RealiseError};

/// Each derivation's position in [`Needed::order`].
pub type Positions<'a> = PathMap<&'a StorePath, usize>;

/// The derivations some targets need.
#[derive(Debug, Default)]
pub struct Needed<'a> {
    /// Inputs before the derivations that read them.
    pub order: Vec<StorePath>,
    /// Each derivation's input derivations, by position in `order` (each once).
    pub deps: Vec<Vec<usize>>,
    /// Each derivation's position in `order`.
    pub positions: Positions<'a>,
}

/// The position of a derivation found but not placed yet (its inputs are being visited).
const VISITING: usize = usize::MAX;

/// A derivation being visited: its inputs, and how many of them have been visited.
struct Frame<'a> {
    drv: &'a StorePath,
    inputs: Vec<&'a StorePath>,
    next: usize,
}

impl<'a> Needed<'a> {
    /// The derivations `targets` need, all found in `drvs`. Depth first, inputs before
    /// the derivation, with an explicit stack: a chain of thousands of derivations must
    /// not exhaust a thread's stack.
    pub fn of(drvs: &'a impl DrvLookup, targets: &'a [StorePath]) -> Result<Self, RealiseError> {
        let frame = |d: &'a StorePath| -> Result<Frame<'a>, RealiseError> {
            let drv = drvs
                .drv(d)
                .ok_or_else(|| RealiseError::MissingDerivation(d.clone()))?;
            // As `Derivation::input_drvs` has them (sorted, each once), without a set.
            let mut inputs: Vec<&StorePath> = drv
                .inputs
                .iter()
                .filter_map(|i| match &i.from {
                    InputFrom::Drv { drv, .. } => Some(drv),
                    InputFrom::Path { .. } => None,
                })
                .collect();
            inputs.sort_unstable();
            inputs.dedup();
            Ok(Frame {
                drv: d,
                inputs,
                next: 0,
            })
        };
        let n = drvs.count();
        let mut out = Needed {
            order: Vec::with_capacity(n),
            deps: Vec::with_capacity(n),
            positions: Positions::with_capacity_and_hasher(n, Default::default()),
        };
        for t in targets {
            match out.positions.entry(t) {
                Entry::Occupied(_) => continue,
                Entry::Vacant(e) => e.insert(VISITING),
            };
            let mut stack = vec![frame(t)?];
            while let Some(top) = stack.last_mut() {
                if let Some(&input) = top.inputs.get(top.next) {
                    top.next += 1;
                    if let Entry::Vacant(e) = out.positions.entry(input) {
                        e.insert(VISITING);
                        stack.push(frame(input)?);
                    }
                } else if let Some(done) = stack.pop() {
                    out.finish(done)?;
                }
            }
        }
        Ok(out)
    }

    /// Place the visited derivation of `frame` after its inputs.
    fn finish(&mut self, frame: Frame<'a>) -> Result<(), RealiseError> {
        // Every input was placed before: one that was not is on the stack, so the
        // derivation reads itself through it (impossible for content-addressed paths,
        // but derivations can be handed in from outside).
        let deps = frame
            .inputs
            .iter()
            .map(|i| self.positions.get(i).copied().filter(|&p| p != VISITING))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| RealiseError::Cycle(frame.drv.clone()))?;
        self.positions.insert(frame.drv, self.order.len());
        self.order.push(frame.drv.clone());
        self.deps.push(deps);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::step;
    use super::*;
    use std::collections::BTreeMap;

    /// `a` ← `b` ← `c` and `a` ← `c`: inputs come first, each derivation once, and
    /// each one's inputs are named by their positions.
    #[test]
    fn inputs_come_first_and_are_named_by_position() {
        let a = step("a", &[]);
        let pa = a.drv_path().unwrap();
        let b = step("b", &[&pa]);
        let pb = b.drv_path().unwrap();
        let c = step("c", &[&pa, &pb]);
        let pc = c.drv_path().unwrap();
        let drvs = BTreeMap::from([(pa.clone(), a), (pb.clone(), b), (pc.clone(), c)]);
        let targets = [pc.clone(), pb.clone()];
        let needed = Needed::of(&drvs, &targets).unwrap();
        assert_eq!(needed.order.len(), 3);
        let at = |p: &StorePath| needed.positions[p];
        assert!(at(&pa) < at(&pb) && at(&pb) < at(&pc));
        for (i, d) in needed.order.iter().enumerate() {
            assert_eq!(at(d), i);
        }
        let mut deps_of_c = needed.deps[at(&pc)].clone();
        deps_of_c.sort();
        assert_eq!(deps_of_c, vec![at(&pa), at(&pb)]);
        assert_eq!(needed.deps[at(&pb)], vec![at(&pa)]);
        assert!(needed.deps[at(&pa)].is_empty());
    }

    /// A derivation missing from the map is named; so is one that reads itself.
    #[test]
    fn a_missing_derivation_and_a_cycle_are_errors() {
        let a = step("a", &[]);
        let pa = a.drv_path().unwrap();
        let b = step("b", &[&pa]);
        let pb = b.drv_path().unwrap();
        let only_b = BTreeMap::from([(pb.clone(), b.clone())]);
        let targets = [pb.clone()];
        match Needed::of(&only_b, &targets) {
            Err(RealiseError::MissingDerivation(p)) => assert_eq!(p, pa),
            other => panic!("expected a missing derivation, got {other:?}"),
        }
        // `b` filed under `a`'s path too: `b` reads `a`, which is `b` again.
        let looped = BTreeMap::from([(pa.clone(), b.clone()), (pb.clone(), b)]);
        match Needed::of(&looped, std::slice::from_ref(&pa)) {
            Err(RealiseError::Cycle(p)) => assert_eq!(p, pa),
            other => panic!("expected a cycle, got {other:?}"),
        }
    }
}
