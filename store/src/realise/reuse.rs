//! Reusing the previous realisation of the same targets.
//!
//! A derivation's path hashes its whole recipe, input derivations included, so a
//! derivation whose path the previous realisation also realised would resolve to the
//! same key and find the same outputs: the only thing that can have changed is whether
//! those outputs are still in the store. Taking them directly skips resolving, hashing
//! and looking up the trace of every unchanged step, which is what lets a one-line edit
//! reach its compile in milliseconds on a graph of thousands of steps. A derivation is
//! reused only if every derivation it reads is reused too, so the reused set is always a
//! consistent part of one earlier realisation; the rest is realised as usual.

use std::collections::{BTreeMap, HashMap};

use cmod_schema::StorePath;

use super::Needed;
use crate::layout::Store;

/// Outputs of derivations, by derivation.
pub type Outputs = HashMap<StorePath, BTreeMap<String, StorePath>>;

/// What a previous realisation of the same targets produced, keeping only the
/// derivations whose outputs were all still valid when [`Previous::checked`] looked (so
/// are their references).
///
/// The check is a couple of `stat`s per path and needs nothing of the new evaluation, so
/// a caller runs it beside derivation emission; [`reusable`] is then a walk in memory.
///
/// A `Previous` serves one realisation: [`reusable`] moves the entries it reuses out of
/// it (thousands of output maps on a large graph, which copying would allocate again).
#[derive(Debug, Default)]
pub struct Previous(std::sync::Mutex<Outputs>);

impl Previous {
    /// The entries of `outputs` whose outputs are all valid in `store`. (Their `.drv`
    /// files are not looked at here: the realisation writes any that are missing beside
    /// the build, so a third of the lookups leave the way to the first compile.)
    pub fn checked(store: &Store, outputs: Outputs) -> Previous {
        let check = store.validity_check();
        Previous(std::sync::Mutex::new(
            outputs
                .into_iter()
                .filter(|(_, outputs)| outputs.values().all(|o| check.is_valid(o)))
                .collect(),
        ))
    }
}

/// The derivations of `needed` that `previous` realised (with valid outputs) and whose
/// input derivations are all reusable too, moved out of `previous`.
pub fn reusable(needed: &Needed<'_>, previous: &Previous) -> Outputs {
    let mut left = previous
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Sized for all of them (the common case, an edit, reuses nearly every step): no
    // growth, whose copies fault in fresh pages on a large graph.
    let mut reused = Outputs::with_capacity(left.len().min(needed.order.len()));
    let mut is_reused = vec![false; needed.order.len()];
    for (i, d) in needed.order.iter().enumerate() {
        if !needed.deps[i].iter().all(|&j| is_reused[j]) {
            continue;
        }
        if let Some((d, outputs)) = left.remove_entry(d) {
            is_reused[i] = true;
            reused.insert(d, outputs);
        }
    }
    reused
}

#[cfg(test)]
mod tests {
    use super::super::tests::step;
    use super::*;
    use crate::registry::Registration;
    use cmod_schema::PathKind;
    use std::collections::BTreeSet;

    /// `a` ← `b` ← `c`, and `d` alone: `a`'s output is gone, so `b` and `c` (built
    /// from it) are not reused either; `d` is.
    #[test]
    fn only_valid_outputs_of_wholly_reused_inputs_are_reused() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let none = Default::default();
        let add = |text: &str| {
            let reg = Registration {
                kind: PathKind::Output,
                name: "x.o",
                deriver: None,
                sandbox: None,
                landlock_abi: None,
                candidates: &none,
            };
            let tmp = store.temp_path("t");
            std::fs::write(&tmp, text).unwrap();
            store.register(&tmp, &reg).unwrap().path
        };
        let outs: Vec<StorePath> = ["a", "b", "c", "d"].iter().map(|t| add(t)).collect();
        let a = step("a", &[]);
        let pa = a.drv_path().unwrap();
        let b = step("b", &[&pa]);
        let pb = b.drv_path().unwrap();
        let c = step("c", &[&pb]);
        let pc = c.drv_path().unwrap();
        let d = step("d", &[]);
        let pd = d.drv_path().unwrap();
        let drvs = BTreeMap::from([
            (pa.clone(), a),
            (pb.clone(), b),
            (pc.clone(), c),
            (pd.clone(), d),
        ]);
        let order = [pa.clone(), pb.clone(), pc.clone(), pd.clone()];
        let targets = [pc.clone(), pd.clone()];
        let needed = Needed::of(&drvs, &targets).unwrap();
        assert_eq!(needed.order, order);
        let previous_of = |outs: &[StorePath]| -> Outputs {
            order
                .iter()
                .zip(outs)
                .map(|(d, o)| (d.clone(), BTreeMap::from([("obj".to_string(), o.clone())])))
                .collect()
        };
        let checked = |p: &Outputs| Previous::checked(&store, p.clone());
        let previous = previous_of(&outs);
        let all = reusable(&needed, &checked(&previous));
        assert_eq!(all.len(), 4);
        crate::content::remove(&store.path_of(&outs[0])).unwrap();
        let some = reusable(&needed, &checked(&previous));
        let kept: BTreeSet<&StorePath> = some.keys().collect();
        assert_eq!(kept, BTreeSet::from([&pd]));
        // What is reused is moved out of `previous`; the rest stays (`b` and `c`, whose
        // input `a` is not reused).
        let once = checked(&previous);
        assert_eq!(reusable(&needed, &once).len(), 1);
        assert!(reusable(&needed, &once).is_empty());
        let left: BTreeSet<StorePath> = once.0.lock().unwrap().keys().cloned().collect();
        assert_eq!(left, BTreeSet::from([pb.clone(), pc.clone()]));
        // Derivations the previous realisation did not have are never reused.
        let partial: Outputs = previous.into_iter().filter(|(d, _)| *d != pd).collect();
        assert!(!reusable(&needed, &checked(&partial)).contains_key(&pd));
    }
}
