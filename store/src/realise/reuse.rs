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

use std::collections::{BTreeMap, HashMap, HashSet};

use cmod_schema::derivation::Derivation;
use cmod_schema::StorePath;
use rayon::prelude::*;

use crate::layout::Store;

/// Outputs of derivations, by derivation.
pub type Outputs = HashMap<StorePath, BTreeMap<String, StorePath>>;

/// The derivations of `order` (topologically sorted) that `previous` realised, whose
/// `.drv` and outputs are all still valid (so are their references: sources and input
/// derivations), and whose input derivations are all reusable too.
pub fn reusable(
    store: &Store,
    drvs: &BTreeMap<StorePath, Derivation>,
    order: &[StorePath],
    previous: &Outputs,
) -> Outputs {
    let check = store.validity_check();
    let valid: HashSet<&StorePath> = order
        .par_iter()
        .filter(|d| {
            previous.get(*d).is_some_and(|outputs| {
                check.is_valid(d) && outputs.values().all(|o| check.is_valid(o))
            })
        })
        .collect();
    let mut reused = Outputs::new();
    for d in order {
        let inputs_reused = drvs[d]
            .input_drvs()
            .into_iter()
            .all(|i| reused.contains_key(i));
        if inputs_reused && valid.contains(d) {
            if let Some(outputs) = previous.get(d) {
                reused.insert(d.clone(), outputs.clone());
            }
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
    /// from it) are not reused either; `d` is. Unwritten `.drv`s are not reused.
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
        // Not yet written: nothing is reused.
        let previous_of = |outs: &[StorePath]| -> Outputs {
            order
                .iter()
                .zip(outs)
                .map(|(d, o)| (d.clone(), BTreeMap::from([("obj".to_string(), o.clone())])))
                .collect()
        };
        assert!(reusable(&store, &drvs, &order, &previous_of(&outs)).is_empty());
        super::super::write_derivations(&store, &drvs, &order).unwrap();
        let previous = previous_of(&outs);
        let all = reusable(&store, &drvs, &order, &previous);
        assert_eq!(all.len(), 4);
        crate::content::remove(&store.path_of(&outs[0])).unwrap();
        let some = reusable(&store, &drvs, &order, &previous);
        let kept: BTreeSet<&StorePath> = some.keys().collect();
        assert_eq!(kept, BTreeSet::from([&pd]));
        // Derivations the previous realisation did not have are never reused.
        let partial: Outputs = previous.into_iter().filter(|(d, _)| *d != pd).collect();
        assert!(!reusable(&store, &drvs, &order, &partial).contains_key(&pd));
    }
}
