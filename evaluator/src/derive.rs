//! Emitting derivations from a checked module graph.
//!
//! Inside every build directory, inputs have **stable names**, never hash-named store
//! paths: a unit's source at `src/<package>/<path>`, its package headers beside it (and
//! other packages' headers under their own `src/<package>/`), a BMI at
//! `bmi/<module>.pcm` (`:` becomes `-`), a precompiled header at `pch/<name>.pch`,
//! objects at `obj/<name>.o`, archives at `lib/<package>/lib<name>.a`. Objects record their input's
//! basename and BMIs their source's path, so stable names are what lets an unchanged
//! input produce byte-identical outputs. Headers of the system a step reads are listed
//! with their content hashes in the derivation's `host` files, as are the system
//! libraries a link reads.
//!
//! Steps (two-phase, as DESIGN.md describes):
//! * BMI: `--precompile -x c++-module src/... -o out/<m>.pcm`, reading the BMIs of the
//!   modules the unit imports directly (their closures come with them: see
//!   `cmod_schema::derivation`), in the **consumer's dialect** (a variant per dialect that
//!   needs it);
//! * object of an importable unit: `-c bmi/<m>.pcm`, reading its own BMI (and so its
//!   closure);
//! * object of an implementation or plain unit: `-x c++ -c src/...` (with
//!   `-include-pch` when its target has a `pch`), or `-x c -c src/...` for C;
//! * precompiled header: `-x c++-header src/... -o out/<name>.pch`, per set of flags;
//! * archive: `llvm-ar rcsD` over a library's objects;
//! * link: the driver with lld over a binary's objects, the archives of the libraries of
//!   its package it uses and of all its dependencies' libraries (for a test binary, its
//!   dev-dependencies' too), then its system libraries.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rayon::prelude::*;

pub use cmod_schema::derivation::bmi_file;
use cmod_schema::derivation::{
    Derivation, Input, InputFrom, InputRole, StepKind, Tool, MODULE_MAP_ARG,
};
use cmod_schema::store_path::{sanitize_name, PathKind, StorePath};
use cmod_schema::toolchain::ToolchainInfo;
use cmod_schema::ContentHash;

use crate::error::{ErrorKind, EvalError};
use crate::flags::{PkgPath, UnitFlags};
use crate::graph::{ModuleGraph, Origin, Owner, UnitId};
use crate::package::{PackageGraph, PackageId};
use crate::scan::{HeaderDep, SystemHeader};
use crate::settings::Settings;
use crate::sources::{Lang, PackageSources};
use crate::targets::PackageTargets;

mod body_codec;
mod emission_cache;
mod generator;
mod header_unit;
mod link;
mod pch;
mod recipe;
mod step;

use emission_cache::EmissionCache;
use recipe::Recipes;
use step::{BmiPaths, Made, Step};

pub use generator::{GeneratorRun, PROGRAM_DIR};

pub use crate::targets::TargetKind;

/// Where the toolchain's standard-library module sources appear in a build directory.
pub const STD_MODULE_DIR: &str = "toolchain/std";

/// A file or tree the caller must add to the store before building.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Where it is on the host.
    pub host: std::path::PathBuf,
    /// The source store path it becomes.
    pub path: StorePath,
    /// The content hash of its contents.
    pub hash: ContentHash,
    /// A directory tree rather than one file.
    pub tree: bool,
}

/// A buildable target and the derivation output that is its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The package the target belongs to.
    pub package: String,
    /// The target's name.
    pub name: String,
    /// Library, binary or test.
    pub kind: TargetKind,
    /// The derivation that builds the result (the archive or the link).
    pub drv: StorePath,
    /// The name of that derivation's output.
    pub output: String,
}

/// Everything [`derive`] produces.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    /// Every derivation, by its `.drv` store path.
    pub derivations: BTreeMap<StorePath, Derivation>,
    /// Files and trees to add to the store before any derivation is built.
    pub sources: Vec<SourceFile>,
    /// The buildable targets.
    pub targets: Vec<Target>,
    /// The run derivation of every generator that runs a program.
    pub generators: Vec<GeneratorRun>,
}

/// A precompiled header as scanned for one set of flags: what its step reads.
#[derive(Debug, Clone)]
pub struct PchScan {
    /// The header, in its package.
    pub at: PkgPath,
    /// The flags of the units that use it (without their `pch`).
    pub flags: Arc<UnitFlags>,
    /// The header's content hash.
    pub hash: ContentHash,
    /// Package headers it includes.
    pub headers: Vec<HeaderDep>,
    /// System headers it includes.
    pub system: Vec<SystemHeader>,
}

/// Inputs of [`derive`].
pub struct DeriveInput<'a> {
    /// The loaded packages.
    pub packages: &'a PackageGraph,
    /// Each package's checked targets (same order as `packages`).
    pub targets: &'a [PackageTargets],
    /// The checked module graph.
    pub graph: &'a ModuleGraph,
    /// Each package's units, per target.
    pub sources: &'a [PackageSources],
    /// Compile and link settings of every package and target.
    pub settings: &'a Settings,
    /// The precompiled headers, as scanned.
    pub pchs: &'a [PchScan],
    /// The header units, as scanned, and which units import which.
    pub header_units: &'a crate::eval::header_units::HeaderUnits,
    /// The toolchain every step runs with.
    pub toolchain: &'a ToolchainInfo,
    /// Where the previous emission recorded its derivations' paths, and this one records
    /// them (see `derive/emission_cache.rs`); none: every path is computed.
    pub emission_record: Option<std::path::PathBuf>,
}

/// The archives a package's libraries produce (`lib<name>.a`), which are also the
/// library targets' names.
pub fn archive_files(sources: &PackageSources) -> Vec<String> {
    sources.libs.iter().map(|l| archive_file(&l.name)).collect()
}

fn archive_file(lib_name: &str) -> String {
    format!("lib{}.a", sanitize_name(lib_name))
}

/// The stable object name of a unit: its whole relative path, so `units.cppm` and
/// `units.cpp` of one package never collide (`src/units.cpp` → `src-units.cpp.o`).
fn object_file(rel: &str) -> String {
    format!("{}.o", sanitize_name(&rel.replace('/', "-")))
}

/// Whether `arg` names an include directory (`-Idir`, `-isystemdir`, ...).
fn is_include_dir(arg: &str) -> bool {
    ["-I", "-isystem", "-iquote", "-idirafter"]
        .iter()
        .any(|f| arg.starts_with(f))
}

/// The host files of `system` headers.
fn host_files(system: &[SystemHeader]) -> BTreeMap<String, ContentHash> {
    system.iter().map(|h| (h.path.clone(), h.hash)).collect()
}

/// What a unit's compile adds to use a precompiled header: inputs and arguments.
type PchUse = (Vec<Input>, Vec<String>);

pub(crate) struct Emitter<'a> {
    input: &'a DeriveInput<'a>,
    out: Derived,
    /// (unit, dialect) → BMI derivation path.
    bmis: BmiPaths,
    /// Unit → object derivation path.
    objects: Vec<Option<StorePath>>,
    /// PCH index → its derivation.
    pch_drvs: HashMap<usize, StorePath>,
    /// (header unit, dialect) → its derivation and the module its BMI names.
    header_unit_drvs: HashMap<(usize, Vec<String>), (StorePath, String)>,
    /// BMI derivation → the header units it was built against, transitively.
    header_unit_closures: HashMap<StorePath, std::sync::Arc<header_unit::HeaderUnitClosure>>,
    /// Package (none: the toolchain) → relative path → source store path.
    source_paths: HashMap<Option<PackageId>, HashMap<String, StorePath>>,
    /// Source store path → its place in `out.sources`.
    source_index: HashMap<StorePath, usize>,
    cache: EmissionCache,
    recipes: Recipes,
}

impl<'a> Emitter<'a> {
    fn package_named(&self, name: &str) -> Option<PackageId> {
        self.input
            .packages
            .packages
            .iter()
            .position(|p| p.name == name)
    }

    fn ident(&self, u: UnitId) -> String {
        match self.input.graph.units[u].origin {
            Origin::Package(p, _) => self.input.packages.packages[p].ident(),
            Origin::Toolchain => format!("std-{}", self.input.toolchain.version),
        }
    }

    fn place(&self) -> impl Fn(&PkgPath) -> String + '_ {
        |at: &PkgPath| {
            format!(
                "src/{}/{}",
                self.input.packages.packages[at.package].name, at.rel
            )
        }
    }

    /// The flags a unit is compiled with in `dialect`, apart from module files and the
    /// step itself.
    fn unit_flags(&self, u: UnitId, dialect: &[String]) -> Vec<String> {
        let unit = &self.input.graph.units[u];
        let mut args: Vec<String> = dialect.to_vec();
        args.extend(unit.flags.render_after_dialect(&self.place()));
        if unit.origin == Origin::Toolchain {
            args.extend([
                format!("-isystem{STD_MODULE_DIR}"),
                "-Wno-reserved-module-identifier".into(),
                "-Wno-reserved-user-defined-literal".into(),
            ]);
        }
        args.push(format!("-ffile-prefix-map={}=/build", "@builddir@"));
        args
    }

    fn source_at(&self, u: UnitId) -> String {
        let unit = &self.input.graph.units[u];
        match unit.origin {
            Origin::Package(p, _) => {
                format!("src/{}/{}", self.input.packages.packages[p].name, unit.rel)
            }
            Origin::Toolchain => format!("{STD_MODULE_DIR}/{}", unit.rel),
        }
    }

    fn add_source(
        &mut self,
        package: Option<PackageId>,
        rel: &str,
        host: std::path::PathBuf,
        hash: ContentHash,
        tree: bool,
    ) -> Result<StorePath, EvalError> {
        if let Some(p) = self.source_paths.get(&package).and_then(|m| m.get(rel)) {
            return Ok(p.clone());
        }
        let base = rel.rsplit('/').next().unwrap_or(rel);
        let name = if tree {
            "libcxx-modules".to_string()
        } else {
            sanitize_name(base)
        };
        let path = StorePath::compute(PathKind::Source, &hash, &name, [])
            .map_err(|e| EvalError::new(ErrorKind::Internal, e.to_string()))?;
        self.register_source(SourceFile {
            host,
            path: path.clone(),
            hash,
            tree,
        });
        self.source_paths
            .entry(package)
            .or_default()
            .insert(rel.to_string(), path.clone());
        Ok(path)
    }

    /// Header inputs: each package header at `src/<package>/<rel>`.
    fn header_inputs(
        &mut self,
        own: PackageId,
        headers: &[HeaderDep],
    ) -> Result<Vec<Input>, EvalError> {
        let mut inputs = Vec::new();
        for h in headers {
            let p = match &h.package {
                None => own,
                Some(name) => self.package_named(name).ok_or_else(|| {
                    EvalError::new(
                        ErrorKind::Internal,
                        format!("header of unknown package `{name}`"),
                    )
                })?,
            };
            let pkg = &self.input.packages.packages[p];
            let (name, host) = (pkg.name.clone(), pkg.root.join(&h.rel));
            let path = self.add_source(Some(p), &h.rel, host, h.hash, false)?;
            inputs.push(Input {
                at: format!("src/{name}/{}", h.rel),
                role: InputRole::Headers,
                from: InputFrom::Path { path, sub: None },
            });
        }
        Ok(inputs)
    }

    /// Source and header inputs of unit `u`.
    fn source_inputs(&mut self, u: UnitId) -> Result<Vec<Input>, EvalError> {
        let input = self.input;
        let unit = &input.graph.units[u];
        let mut inputs = Vec::new();
        match unit.origin {
            Origin::Package(p, _) => {
                let name = self.input.packages.packages[p].name.clone();
                let path =
                    self.add_source(Some(p), &unit.rel, unit.abs.clone(), unit.hash, false)?;
                inputs.push(Input {
                    at: format!("src/{name}/{}", unit.rel),
                    role: InputRole::Source,
                    from: InputFrom::Path { path, sub: None },
                });
                inputs.extend(self.header_inputs(p, &unit.headers)?);
            }
            Origin::Toolchain => {
                let tc = self.input.toolchain;
                let (Some(dir), Some(hash)) = (tc.std_module_dir.clone(), tc.std_module_hash)
                else {
                    return Err(EvalError::new(
                        ErrorKind::Internal,
                        "std module requested without its sources",
                    ));
                };
                let path = self.add_source(None, "", dir, hash, true)?;
                inputs.push(Input {
                    at: STD_MODULE_DIR.into(),
                    role: InputRole::Source,
                    from: InputFrom::Path { path, sub: None },
                });
            }
        }
        Ok(inputs)
    }

    /// The BMI inputs of the units `u` imports directly, in `dialect`, and the argument
    /// that reads their module map (none without imports). Each input's own BMI inputs
    /// come with it, so this is linear in the graph, not in its transitive closures.
    fn module_inputs(
        &mut self,
        u: UnitId,
        dialect: &[String],
    ) -> Result<(Vec<Input>, Vec<String>, header_unit::HeaderUnitClosure), EvalError> {
        let graph = self.input.graph;
        let mut inputs = Vec::with_capacity(graph.edges[u].len());
        for &v in &graph.edges[u] {
            inputs.push(self.bmi_input(v, dialect)?);
        }
        let (header_units, closure) = self.header_unit_inputs(u, dialect)?;
        let mut args = Vec::new();
        if !header_units.is_empty() {
            args.push(header_unit::QUIET_HEADER_UNITS.to_string());
        }
        inputs.extend(header_units);
        if !inputs.is_empty() {
            args.push(MODULE_MAP_ARG.to_string());
        }
        Ok((inputs, args, closure))
    }

    /// The input of importable unit `v`'s BMI (built in `dialect`) at its stable name.
    fn bmi_input(&mut self, v: UnitId, dialect: &[String]) -> Result<Input, EvalError> {
        let drv = self.bmi(v, dialect)?;
        let module = self.input.graph.units[v].module.clone().unwrap_or_default();
        Ok(Input {
            at: format!("bmi/{}", bmi_file(&module)),
            role: InputRole::Bmi,
            from: InputFrom::Drv {
                drv,
                output: "bmi".into(),
            },
        })
    }

    fn emit(&mut self, step: Step) -> Result<StorePath, EvalError> {
        let made = step.made(self.input.toolchain.identity, &self.cache)?;
        Ok(self.insert(made))
    }

    fn insert(&mut self, made: Made) -> StorePath {
        self.cache.note(made.key, &made.path, made.computed);
        self.out.derivations.insert(made.path.clone(), made.drv);
        made.path
    }

    /// Emit the objects of `units` not emitted yet. Their steps are made in order (which
    /// may emit BMIs); their derivations, which nothing but archives and links reads, are
    /// then built and hashed in parallel, each on its own.
    fn objects(&mut self, units: &[UnitId]) -> Result<(), EvalError> {
        let mut steps = Vec::new();
        for &u in units {
            if self.objects[u].is_some() {
                continue;
            }
            let input = self.input;
            let dialect = &input.graph.units[u].flags.dialect;
            let recipe = self.recipe_key(StepKind::Object, u, dialect)?;
            match self.reuse_recipe(recipe) {
                Some(path) => self.objects[u] = Some(path),
                None => steps.push((u, recipe, self.object_step(u)?)),
            }
        }
        let toolchain = self.input.toolchain.identity;
        let cache = &self.cache;
        let made: Vec<(UnitId, _, Made)> = steps
            .into_par_iter()
            .map(|(u, recipe, step)| step.made(toolchain, cache).map(|m| (u, recipe, m)))
            .collect::<Result<_, _>>()?;
        for (u, recipe, made) in made {
            let path = self.insert(made);
            self.remember_recipe(recipe, &path);
            self.objects[u] = Some(path);
        }
        Ok(())
    }

    /// Emit the BMIs `u` imports, transitively, in `dialect`, dependencies first, with an
    /// explicit stack: emitting each then finds its imports' BMIs made, so no chain of
    /// imports, however long, deepens the call stack.
    fn bmis_below(&mut self, u: UnitId, dialect: &[String]) -> Result<(), EvalError> {
        let graph = self.input.graph;
        let mut seen = std::collections::HashSet::from([u]);
        let mut stack: Vec<(UnitId, usize)> = vec![(u, 0)];
        while let Some(top) = stack.last_mut() {
            let (v, next) = *top;
            top.1 += 1;
            match graph.edges[v].get(next) {
                Some(&w) => {
                    let made = self.bmis.get(graph, w, dialect).is_some();
                    if !made && seen.insert(w) {
                        stack.push((w, 0));
                    }
                }
                None => {
                    stack.pop();
                    if v != u {
                        self.bmi(v, dialect)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The BMI derivation of importable unit `u` in `dialect`.
    fn bmi(&mut self, u: UnitId, dialect: &[String]) -> Result<StorePath, EvalError> {
        if let Some(p) = self.bmis.get(self.input.graph, u, dialect) {
            return Ok(p.clone());
        }
        self.bmis_below(u, dialect)?;
        let recipe = self.recipe_key(StepKind::Bmi, u, dialect)?;
        if let Some(path) = self.reuse_recipe(recipe) {
            self.bmis.insert(self.input.graph, u, dialect, path.clone());
            return Ok(path);
        }
        let input = self.input;
        let unit = &input.graph.units[u];
        let module = unit.module.clone().unwrap_or_default();
        let file = bmi_file(&module);
        let mut name = format!("{}-{file}", self.ident(u));
        if dialect != unit.flags.dialect.as_slice() {
            let h = blake3::hash(dialect.join("\0").as_bytes()).to_hex();
            name = format!("{}-{}-{file}", self.ident(u), &h[..8]);
        }
        let mut inputs = self.source_inputs(u)?;
        let (bmi_inputs, module_flags, header_units) = self.module_inputs(u, dialect)?;
        inputs.extend(bmi_inputs);
        let mut args = self.unit_flags(u, dialect);
        args.extend(module_flags);
        args.extend([
            "-Xclang".into(),
            "-fmodules-embed-all-files".into(),
            "-x".into(),
            "c++-module".into(),
            "--precompile".into(),
            self.source_at(u),
            "-o".into(),
            format!("out/{file}"),
        ]);
        let path = self.emit(Step {
            name,
            kind: StepKind::Bmi,
            tool: Tool::Cxx,
            args,
            inputs,
            host: host_files(&unit.system),
            output: ("bmi", format!("out/{file}")),
            module: Some(module),
        })?;
        self.remember_recipe(recipe, &path);
        if !header_units.is_empty() {
            self.header_unit_closures
                .insert(path.clone(), std::sync::Arc::new(header_units));
        }
        self.bmis.insert(self.input.graph, u, dialect, path.clone());
        Ok(path)
    }

    /// The object derivation of unit `u` (own dialect).
    fn object(&mut self, u: UnitId) -> Result<StorePath, EvalError> {
        if let Some(p) = &self.objects[u] {
            return Ok(p.clone());
        }
        let input = self.input;
        let dialect = &input.graph.units[u].flags.dialect;
        let recipe = self.recipe_key(StepKind::Object, u, dialect)?;
        if let Some(path) = self.reuse_recipe(recipe) {
            self.objects[u] = Some(path.clone());
            return Ok(path);
        }
        let step = self.object_step(u)?;
        let path = self.emit(step)?;
        self.remember_recipe(recipe, &path);
        self.objects[u] = Some(path.clone());
        Ok(path)
    }

    /// The step compiling unit `u` to an object (emitting the BMIs it reads).
    fn object_step(&mut self, u: UnitId) -> Result<Step, EvalError> {
        let input = self.input;
        let unit = &input.graph.units[u];
        let dialect = &unit.flags.dialect;
        let mut args = self.unit_flags(u, dialect);
        let obj = object_file(&unit.rel);
        let mut host = BTreeMap::new();
        let mut inputs;
        if unit.kind.is_importable() {
            // Compiling a BMI to an object reads no headers or libraries: clang warns
            // that `-stdlib` and include directories are unused, so they are left out.
            args.retain(|a| !a.starts_with("-stdlib=") && !is_include_dir(a));
            // Its own BMI brings everything it was built against.
            let own = self.bmi_input(u, dialect)?;
            args.extend([MODULE_MAP_ARG.into(), "-c".into(), own.at.clone()]);
            inputs = vec![own];
        } else {
            let module_args;
            (inputs, module_args, _) = self.module_inputs(u, dialect)?;
            args.extend(module_args);
            inputs.extend(self.source_inputs(u)?);
            if let Some((pch_inputs, pch_args)) = self.pch_for(u)? {
                inputs.extend(pch_inputs);
                args.extend(pch_args);
            }
            host = host_files(&unit.system);
            let lang = match unit.flags.lang {
                Lang::Cxx => "c++",
                Lang::C => "c",
            };
            args.extend(["-x".into(), lang.into(), "-c".into(), self.source_at(u)]);
        }
        args.extend(["-o".into(), format!("out/{obj}")]);
        Ok(Step {
            name: format!("{}-{obj}", self.ident(u)),
            kind: StepKind::Object,
            tool: Tool::Cxx,
            args,
            inputs,
            host,
            output: ("obj", format!("out/{obj}")),
            module: None,
        })
    }

    fn object_input(&mut self, u: UnitId) -> Result<Input, EvalError> {
        let drv = self.object(u)?;
        Ok(Input {
            at: format!("obj/{}", object_file(&self.input.graph.units[u].rel)),
            role: InputRole::Object,
            from: InputFrom::Drv {
                drv,
                output: "obj".into(),
            },
        })
    }

    fn units_of(&self, p: PackageId, owner: Owner) -> Vec<UnitId> {
        (0..self.input.graph.units.len())
            .filter(|&u| self.input.graph.units[u].origin == Origin::Package(p, owner))
            .collect()
    }

    /// The archive derivation of library `l` of package `p`.
    fn archive(&mut self, p: PackageId, l: usize) -> Result<(StorePath, String), EvalError> {
        let pkg = &self.input.packages.packages[p];
        let file = archive_file(&self.input.sources[p].libs[l].name);
        let ident = pkg.ident();
        let units = self.units_of(p, Owner::Lib(l));
        self.objects(&units)?;
        let mut inputs = Vec::new();
        for u in units {
            inputs.push(self.object_input(u)?);
        }
        inputs.sort();
        let mut args = vec!["rcsD".to_string(), format!("out/{file}")];
        args.extend(inputs.iter().map(|i| i.at.clone()));
        let drv = self.emit(Step {
            name: format!("{ident}-{file}"),
            kind: StepKind::Archive,
            tool: Tool::Ar,
            args,
            inputs,
            host: BTreeMap::new(),
            output: ("lib", format!("out/{file}")),
            module: None,
        })?;
        Ok((drv, file))
    }
}

/// Emit every derivation of every package's libraries and of the selected members'
/// executables.
pub fn derive(input: &DeriveInput<'_>) -> Result<Derived, EvalError> {
    match derive_with(input, true)? {
        Some(derived) => Ok(derived),
        // A recipe record damaged past its index: made again without reading it.
        None => Ok(derive_with(input, false)?.unwrap_or_default()),
    }
}

/// [`derive`], reading the recipe record if `read_recipes`; `None` if it read a damaged one.
fn derive_with(input: &DeriveInput<'_>, read_recipes: bool) -> Result<Option<Derived>, EvalError> {
    let mut e = Emitter {
        input,
        out: Derived::default(),
        bmis: BmiPaths::new(input.graph.units.len()),
        objects: vec![None; input.graph.units.len()],
        pch_drvs: HashMap::new(),
        header_unit_drvs: HashMap::new(),
        header_unit_closures: HashMap::new(),
        source_paths: HashMap::new(),
        source_index: HashMap::new(),
        cache: EmissionCache::load(input.emission_record.clone()),
        recipes: Recipes::default(),
    };
    e.recipes = Recipes::load(
        input
            .emission_record
            .as_ref()
            .map(|r| r.with_extension("recipes")),
        read_recipes,
        recipe::context(&e),
    );
    // Every importable unit gets its own-dialect BMI even if nothing imports it yet, so a
    // library's interface is checked when the library is built.
    let mut archives: BTreeMap<(PackageId, usize), (StorePath, String)> = BTreeMap::new();
    for p in 0..input.packages.packages.len() {
        for l in 0..input.sources[p].libs.len() {
            for u in e.units_of(p, Owner::Lib(l)) {
                let unit = &input.graph.units[u];
                if unit.kind.is_importable() {
                    let d = unit.flags.dialect.clone();
                    e.bmi(u, &d)?;
                }
            }
            let a = e.archive(p, l)?;
            let pkg = &input.packages.packages[p];
            e.out.targets.push(Target {
                package: pkg.name.clone(),
                name: a.1.clone(),
                kind: TargetKind::Lib,
                drv: a.0.clone(),
                output: "lib".into(),
            });
            archives.insert((p, l), a);
        }
    }
    for p in 0..input.packages.packages.len() {
        e.generators(p, &archives)?;
    }
    // Binaries (and tests, when evaluated with them) of the selected members only;
    // dependencies contribute their libraries.
    for &p in &input.packages.selected {
        let s = &input.sources[p];
        let executables = (0..s.bins.len())
            .map(|b| (Owner::Bin(b), s.bins[b].name.clone(), TargetKind::Bin))
            .chain(
                (0..s.tests.len())
                    .map(|t| (Owner::Test(t), s.tests[t].name.clone(), TargetKind::Test)),
            );
        for (owner, name, kind) in executables.collect::<Vec<_>>() {
            let drv = e.link(p, owner, &archives)?;
            e.out.targets.push(Target {
                package: input.packages.packages[p].name.clone(),
                name,
                kind,
                drv,
                output: "exe".into(),
            });
        }
    }
    if !e.add_reused_bodies() {
        return Ok(None);
    }
    e.cache.save();
    e.recipes.save();
    Ok(Some(e.out))
}
