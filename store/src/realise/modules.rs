//! The module closure of a step: every BMI its compile sees.
//!
//! A derivation (version 2) lists only the BMIs its unit imports directly; each brings
//! along the BMIs its own derivation read, transitively. Before a step runs, the
//! realiser walks that closure through the derivations in memory, lays every BMI out at
//! its stable name and writes the module map (`modules.rsp`) that names them to the
//! compiler. The walk costs the size of one closure, and only for steps that run: the
//! step's key needs none of it, because its direct BMIs' store paths already pin their
//! closures (a BMI is registered with references to the BMIs it was built against).

use std::collections::HashMap;

use cmod_schema::derivation::{Derivation, InputFrom};
use cmod_schema::store_path::PathSet;
use cmod_schema::StorePath;

/// One BMI a step sees: the module it provides, where it is laid out in the build
/// directory, and the store path it comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModuleFile {
    /// The module it provides (`m` or `m:part`).
    pub module: String,
    /// Where it is laid out, relative to the build directory.
    pub at: String,
    /// The store path of the BMI.
    pub path: StorePath,
}

/// Why a step's module closure cannot be laid out (derivations that do not fit
/// together: a cmod bug or a hand-made derivation, never a user's source).
#[derive(Debug, thiserror::Error)]
pub enum ClosureError {
    /// A BMI input comes from a derivation that is not being realised.
    #[error("it reads a BMI from `{drv}`, which is not among the derivations being realised")]
    Missing {
        /// The producing derivation.
        drv: StorePath,
    },
    /// An input laid out as a BMI comes from an output that names no module.
    #[error("it reads `{at}` from output `{output}` of `{drv}`, which provides no module")]
    NotAModule {
        /// Where the step reads it.
        at: String,
        /// The producing derivation.
        drv: StorePath,
        /// The output's name.
        output: String,
    },
    /// A BMI input's producer has not been realised yet.
    #[error("it reads output `{output}` of `{drv}`, which has not been realised")]
    Unrealised {
        /// The producing derivation.
        drv: StorePath,
        /// The output's name.
        output: String,
    },
    /// Two different BMIs of the closure have the same stable name.
    #[error("its closure has two BMIs at `{at}`: `{first}` and `{second}`")]
    Clash {
        /// The stable name.
        at: String,
        /// One BMI at it.
        first: StorePath,
        /// The other.
        second: StorePath,
    },
}

/// A BMI still to visit: (producer, output, at).
type Pending<'a> = (&'a StorePath, &'a str, &'a str);

fn push_inputs<'a>(todo: &mut Vec<Pending<'a>>, d: &'a Derivation) {
    for input in d.bmi_inputs() {
        if let InputFrom::Drv { drv, output } = &input.from {
            todo.push((drv, output.as_str(), input.at.as_str()));
        }
    }
}

/// Every BMI `drv` sees, sorted by module: its BMI inputs and, transitively, theirs.
/// `realised` gives the store path of a realised output.
pub fn module_closure(
    drvs: &impl super::DrvLookup,
    drv: &Derivation,
    realised: impl Fn(&StorePath, &str) -> Option<StorePath>,
) -> Result<Vec<ModuleFile>, ClosureError> {
    let mut todo: Vec<Pending<'_>> = Vec::new();
    push_inputs(&mut todo, drv);
    // A closure can hold most of the derivations (a chain of modules): sized for that up
    // front (untouched capacity costs no pages), not grown by copies.
    let most = drvs.count();
    let mut seen: PathSet<(&StorePath, &str)> =
        PathSet::with_capacity_and_hasher(most, Default::default());
    let mut by_at: HashMap<&str, usize> = HashMap::with_capacity(most);
    let mut out: Vec<ModuleFile> = Vec::with_capacity(most);
    while let Some((d, output, at)) = todo.pop() {
        if !seen.insert((d, output)) {
            continue;
        }
        let producer = drvs
            .drv(d)
            .ok_or_else(|| ClosureError::Missing { drv: d.clone() })?;
        let module = producer
            .outputs
            .get(output)
            .and_then(|o| o.module.clone())
            .ok_or_else(|| ClosureError::NotAModule {
                at: at.into(),
                drv: d.clone(),
                output: output.into(),
            })?;
        let path = realised(d, output).ok_or_else(|| ClosureError::Unrealised {
            drv: d.clone(),
            output: output.into(),
        })?;
        if let Some(&i) = by_at.get(at) {
            if out[i].path != path {
                return Err(ClosureError::Clash {
                    at: at.into(),
                    first: out[i].path.clone(),
                    second: path,
                });
            }
        } else {
            by_at.insert(at, out.len());
            out.push(ModuleFile {
                module,
                at: at.into(),
                path,
            });
        }
        push_inputs(&mut todo, producer);
    }
    out.sort_by(|a, b| a.module.cmp(&b.module).then_with(|| a.at.cmp(&b.at)));
    Ok(out)
}

/// The module map's text: `-fmodule-file=<module>=<at>`, one line per BMI; a header
/// unit's BMI by its path alone, `-fmodule-file=<at>` (clang has no other form for them).
pub fn module_map(files: &[ModuleFile]) -> String {
    let size: usize = files
        .iter()
        .map(|f| "-fmodule-file==\n".len() + f.module.len() + f.at.len())
        .sum();
    let mut map = String::with_capacity(size);
    for f in files {
        map.push_str("-fmodule-file=");
        if !cmod_schema::derivation::is_header_unit(&f.module) {
            map.push_str(&f.module);
            map.push('=');
        }
        map.push_str(&f.at);
        map.push('\n');
    }
    map
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use cmod_schema::derivation::{
        Input, InputRole, Output, StepKind, Tool, DERIVATION_VERSION, MODULE_MAP_ARG,
    };
    use cmod_schema::{ContentHash, PathKind};
    use std::collections::BTreeMap;

    /// A BMI derivation for `module` importing `deps` (derivation, module).
    pub(crate) fn bmi(module: &str, deps: &[(&StorePath, &str)]) -> Derivation {
        let file = cmod_schema::derivation::bmi_file(module);
        let mut d = Derivation {
            version: DERIVATION_VERSION,
            name: format!("p-{file}"),
            kind: StepKind::Bmi,
            toolchain: ContentHash::of_file(false, b"tc"),
            tool: Tool::Cxx,
            args: vec![MODULE_MAP_ARG.into()],
            env: BTreeMap::new(),
            host: BTreeMap::new(),
            inputs: deps
                .iter()
                .map(|(drv, m)| Input {
                    at: format!("bmi/{}", cmod_schema::derivation::bmi_file(m)),
                    role: InputRole::Bmi,
                    from: InputFrom::Drv {
                        drv: (*drv).clone(),
                        output: "bmi".into(),
                    },
                })
                .collect(),
            outputs: BTreeMap::from([(
                "bmi".to_string(),
                Output {
                    at: format!("out/{file}"),
                    module: Some(module.into()),
                    name: format!("p-{file}"),
                },
            )]),
        };
        d.inputs.sort();
        d.validate().unwrap();
        d
    }

    pub(crate) fn out_path(module: &str) -> StorePath {
        let h = ContentHash::of_file(false, module.as_bytes());
        StorePath::compute(PathKind::Output, &h, "x.pcm", []).unwrap()
    }

    /// A diamond a ← b, a ← c, (b, c) ← d, plus the partition d:p that d imports: the
    /// derivations, and a consumer `e` reading d.
    pub(crate) fn diamond() -> (BTreeMap<StorePath, Derivation>, Derivation) {
        let mut drvs = BTreeMap::new();
        let mut add = |d: Derivation| {
            let p = d.drv_path().unwrap();
            drvs.insert(p.clone(), d);
            p
        };
        let a = add(bmi("a", &[]));
        let b = add(bmi("b", &[(&a, "a")]));
        let c = add(bmi("c", &[(&a, "a")]));
        let dp = add(bmi("d:p", &[(&c, "c")]));
        let d = add(bmi("d", &[(&b, "b"), (&dp, "d:p")]));
        (drvs, bmi("e", &[(&d, "d")]))
    }

    #[test]
    fn a_closure_holds_every_transitive_bmi_once_sorted_by_module() {
        let (drvs, consumer) = diamond();
        let a = drvs.iter().find(|(_, d)| d.name == "p-a.pcm").unwrap().0;
        let realised = |drv: &StorePath, _: &str| {
            let module = drvs[drv].outputs["bmi"].module.clone()?;
            Some(out_path(&module))
        };
        let files = module_closure(&drvs, &consumer, realised).unwrap();
        let modules: Vec<&str> = files.iter().map(|f| f.module.as_str()).collect();
        assert_eq!(modules, ["a", "b", "c", "d", "d:p"]);
        assert_eq!(files[4].at, "bmi/d-p.pcm");
        assert_eq!(files[0].path, out_path("a"));
        assert_eq!(
            module_map(&files[3..]),
            "-fmodule-file=d=bmi/d.pcm\n-fmodule-file=d:p=bmi/d-p.pcm\n"
        );
        // A header unit's BMI is named by its path alone.
        let header_unit = ModuleFile {
            module: "<vector>@1f2e".into(),
            at: "bmi/hu-vector-1f2e.pcm".into(),
            path: out_path("hu"),
        };
        assert_eq!(
            module_map(&[header_unit, files[0].clone()]),
            "-fmodule-file=bmi/hu-vector-1f2e.pcm\n-fmodule-file=a=bmi/a.pcm\n"
        );
        // A step without imports sees no BMI.
        assert!(module_closure(&drvs, &drvs[a], |_, _| None)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn unrealised_and_missing_producers_are_errors() {
        let a_drv = bmi("a", &[]);
        let a = a_drv.drv_path().unwrap();
        let consumer = bmi("b", &[(&a, "a")]);
        let none = BTreeMap::new();
        assert!(matches!(
            module_closure(&none, &consumer, |_, _| None),
            Err(ClosureError::Missing { .. })
        ));
        let drvs = BTreeMap::from([(a.clone(), a_drv)]);
        assert!(matches!(
            module_closure(&drvs, &consumer, |_, _| None),
            Err(ClosureError::Unrealised { .. })
        ));
    }

    /// Two BMIs of module `a` (of two packages) that a consumer `d` reaches at one
    /// stable name, through `b` and `c`: the derivations and the consumer.
    pub(crate) fn clashing() -> (BTreeMap<StorePath, Derivation>, Derivation) {
        let a1 = bmi("a", &[]);
        let mut a2 = bmi("a", &[]);
        a2.name = "q-a.pcm".into();
        let (p1, p2) = (a1.drv_path().unwrap(), a2.drv_path().unwrap());
        let b = bmi("b", &[(&p1, "a")]);
        let c = bmi("c", &[(&p2, "a")]);
        let (pb, pc) = (b.drv_path().unwrap(), c.drv_path().unwrap());
        let consumer = bmi("d", &[(&pb, "b"), (&pc, "c")]);
        let drvs = BTreeMap::from([(p1, a1), (p2, a2), (pb, b), (pc, c)]);
        (drvs, consumer)
    }

    #[test]
    fn two_bmis_at_one_name_are_an_error() {
        let (drvs, consumer) = clashing();
        let err = module_closure(&drvs, &consumer, |d, _| Some(out_path(&d.to_string())));
        assert!(matches!(err, Err(ClosureError::Clash { ref at, .. }) if at == "bmi/a.pcm"));
    }
}
