//! One step of emission: what a derivation is made from ([`Step`]), making it (with the
//! emission cache), and the BMI paths made so far.

use std::collections::{BTreeMap, HashMap};

use cmod_schema::derivation::{Derivation, Input, Output, StepKind, Tool, DERIVATION_VERSION};
use cmod_schema::store_path::StorePath;
use cmod_schema::ContentHash;

use super::emission_cache::{EmissionCache, StepKey};
use crate::error::{ErrorKind, EvalError};
use crate::graph::{ModuleGraph, UnitId};

/// One step to emit.
pub(super) struct Step {
    pub(super) name: String,
    pub(super) kind: StepKind,
    pub(super) tool: Tool,
    pub(super) args: Vec<String>,
    pub(super) inputs: Vec<Input>,
    pub(super) host: BTreeMap<String, ContentHash>,
    /// (output key, path in the build directory).
    pub(super) output: (&'static str, String),
    /// The module a BMI output provides.
    pub(super) module: Option<String>,
}

/// A step made into its derivation.
pub(super) struct Made {
    pub(super) path: StorePath,
    pub(super) drv: Derivation,
    pub(super) key: StepKey,
    /// The path was computed, not taken from the emission cache.
    pub(super) computed: bool,
}

impl Step {
    /// The derivation of this step with `toolchain`, and its path: taken from `cache`
    /// when it holds the step's key (the derivation, made from the same step, is the one
    /// that was checked and hashed then), else checked and hashed now.
    pub(super) fn made(
        mut self,
        toolchain: ContentHash,
        cache: &EmissionCache,
    ) -> Result<Made, EvalError> {
        self.inputs.sort();
        self.inputs.dedup();
        let key = self.key(&toolchain);
        let known = cache.get(&key).cloned();
        let (out_key, at) = self.output;
        let drv = Derivation {
            version: DERIVATION_VERSION,
            name: self.name.clone(),
            kind: self.kind,
            toolchain,
            tool: self.tool,
            args: self.args,
            env: BTreeMap::new(),
            host: self.host,
            inputs: self.inputs,
            outputs: BTreeMap::from([(
                out_key.to_string(),
                Output {
                    at,
                    module: self.module,
                    name: self.name,
                },
            )]),
        };
        if let Some(path) = known {
            return Ok(Made {
                path,
                drv,
                key,
                computed: false,
            });
        }
        let internal = |e: cmod_schema::derivation::DerivationError| {
            EvalError::new(ErrorKind::Internal, e.to_string())
        };
        drv.validate().map_err(internal)?;
        let path = drv.drv_path().map_err(internal)?;
        Ok(Made {
            path,
            drv,
            key,
            computed: true,
        })
    }
}

/// BMI derivation paths by unit and dialect: in the unit's own dialect (nearly all of
/// them) by index, the variants other dialects need in a map.
pub(super) struct BmiPaths {
    own: Vec<Option<StorePath>>,
    variants: HashMap<(UnitId, Vec<String>), StorePath>,
}

impl BmiPaths {
    pub(super) fn new(units: usize) -> BmiPaths {
        BmiPaths {
            own: vec![None; units],
            variants: HashMap::new(),
        }
    }

    pub(super) fn get(
        &self,
        graph: &ModuleGraph,
        u: UnitId,
        dialect: &[String],
    ) -> Option<&StorePath> {
        if graph.units[u].flags.dialect == dialect {
            self.own[u].as_ref()
        } else {
            self.variants.get(&(u, dialect.to_vec()))
        }
    }

    pub(super) fn insert(
        &mut self,
        graph: &ModuleGraph,
        u: UnitId,
        dialect: &[String],
        path: StorePath,
    ) {
        if graph.units[u].flags.dialect == dialect {
            self.own[u] = Some(path);
        } else {
            self.variants.insert((u, dialect.to_vec()), path);
        }
    }
}
