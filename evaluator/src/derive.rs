//! Emitting derivations from a checked module graph.
//!
//! Inside every build directory, inputs have **stable names**, never hash-named store
//! paths: a unit's source at `src/<package>/<path>`, its package headers beside it, a BMI
//! at `bmi/<module>.pcm` (`:` becomes `-`), objects at `obj/<name>.o`, archives at
//! `lib/lib<name>.a`. Objects record their input's basename and BMIs their source's path,
//! so stable names are what lets an unchanged input produce byte-identical outputs.
//!
//! Steps (two-phase, as DESIGN.md describes):
//! * BMI: `--precompile -x c++-module src/... -o out/<m>.pcm` with `-fmodule-file=` for
//!   the unit's whole transitive closure, in the **consumer's dialect** (a variant per
//!   dialect that needs it);
//! * object of an importable unit: `-c bmi/<m>.pcm` with the same closure;
//! * object of an implementation or plain unit: `-c src/...`;
//! * archive: `llvm-ar rcsD` over a library's objects;
//! * link: the driver with lld over a binary's objects and the archives of its package
//!   and all its dependencies (for a test binary, its dev-dependencies' too).

use std::collections::{BTreeMap, HashMap};

use cmod_schema::derivation::{
    Derivation, Input, InputFrom, InputRole, Output, StepKind, Tool, DERIVATION_VERSION,
};
use cmod_schema::store_path::{sanitize_name, PathKind, StorePath};
use cmod_schema::toolchain::ToolchainInfo;
use cmod_schema::ContentHash;

use crate::error::{ErrorKind, EvalError};
use crate::flags::PackageFlags;
use crate::graph::{ModuleGraph, Origin, Owner, UnitId};
use crate::package::{PackageGraph, PackageId};
use crate::sources::PackageSources;

/// Where the toolchain's standard-library module sources appear in a build directory.
pub const STD_MODULE_DIR: &str = "toolchain/std";

/// A file or tree the caller must add to the store before building.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub host: std::path::PathBuf,
    pub path: StorePath,
    pub hash: ContentHash,
    /// A directory tree rather than one file.
    pub tree: bool,
}

/// What a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetKind {
    Lib,
    Bin,
    /// A `[[test]]` binary, built and run by `cmod test` only.
    Test,
}

/// A buildable target and the derivation output that is its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub package: String,
    pub name: String,
    pub kind: TargetKind,
    pub drv: StorePath,
    pub output: String,
}

/// Everything [`derive`] produces.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    pub derivations: BTreeMap<StorePath, Derivation>,
    pub sources: Vec<SourceFile>,
    pub targets: Vec<Target>,
}

/// Inputs of [`derive`].
pub struct DeriveInput<'a> {
    pub packages: &'a PackageGraph,
    pub graph: &'a ModuleGraph,
    pub flags: &'a [PackageFlags],
    pub sources: &'a [PackageSources],
    pub toolchain: &'a ToolchainInfo,
}

/// The archive a package's `[lib]` produces (`lib<name>.a`), which is also the library
/// target's name.
pub fn archive_file(pkg: &crate::package::Package) -> Option<String> {
    let lib = pkg.file.manifest.lib.as_ref()?;
    let name = lib
        .name
        .clone()
        .unwrap_or_else(|| pkg.name.replace('-', "_"));
    Some(format!("lib{}.a", sanitize_name(&name)))
}

/// The stable file name of a module's BMI (`m:p` → `m-p.pcm`).
pub fn bmi_file(module: &str) -> String {
    format!("{}.pcm", sanitize_name(&module.replace(':', "-")))
}

/// The stable object name of a unit: its whole relative path, so `units.cppm` and
/// `units.cpp` of one package never collide (`src/units.cpp` → `src-units.cpp.o`).
fn object_file(rel: &str) -> String {
    format!("{}.o", sanitize_name(&rel.replace('/', "-")))
}

struct Emitter<'a> {
    input: &'a DeriveInput<'a>,
    out: Derived,
    /// (unit, dialect) → BMI derivation path.
    bmis: HashMap<(UnitId, Vec<String>), StorePath>,
    objects: HashMap<UnitId, StorePath>,
    source_paths: HashMap<(Option<PackageId>, String), StorePath>,
}

impl<'a> Emitter<'a> {
    fn ident(&self, u: UnitId) -> String {
        match self.input.graph.units[u].origin {
            Origin::Package(p, _) => self.input.packages.packages[p].ident(),
            Origin::Toolchain => format!("std-{}", self.input.toolchain.version),
        }
    }

    fn own_dialect(&self, u: UnitId) -> Vec<String> {
        match self.input.graph.units[u].origin {
            Origin::Package(p, _) => self.input.flags[p].dialect.clone(),
            Origin::Toolchain => self.input.flags[self.input.packages.root].dialect.clone(),
        }
    }

    /// The flags a unit is compiled with, apart from module files and the step itself.
    fn unit_flags(&self, u: UnitId, dialect: &[String]) -> Vec<String> {
        let unit = &self.input.graph.units[u];
        let mut args: Vec<String> = dialect.to_vec();
        match unit.origin {
            Origin::Package(p, _) => {
                let f = &self.input.flags[p];
                let name = &self.input.packages.packages[p].name;
                args.extend(f.codegen.iter().cloned());
                args.extend(f.defines.iter().cloned());
                args.extend(f.include_dirs.iter().map(|d| format!("-Isrc/{name}/{d}")));
            }
            Origin::Toolchain => {
                let root = &self.input.flags[self.input.packages.root];
                args.extend(root.codegen.iter().cloned());
                args.extend([
                    format!("-isystem{STD_MODULE_DIR}"),
                    "-Wno-reserved-module-identifier".into(),
                    "-Wno-reserved-user-defined-literal".into(),
                ]);
            }
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
        if let Some(p) = self.source_paths.get(&(package, rel.to_string())) {
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
        self.out.sources.push(SourceFile {
            host,
            path: path.clone(),
            hash,
            tree,
        });
        self.source_paths
            .insert((package, rel.to_string()), path.clone());
        Ok(path)
    }

    /// Source and header inputs of unit `u`.
    fn source_inputs(&mut self, u: UnitId) -> Result<Vec<Input>, EvalError> {
        let unit = self.input.graph.units[u].clone();
        let mut inputs = Vec::new();
        match unit.origin {
            Origin::Package(p, _) => {
                let pkg = &self.input.packages.packages[p];
                let (name, root) = (pkg.name.clone(), pkg.root.clone());
                let path =
                    self.add_source(Some(p), &unit.rel, unit.abs.clone(), unit.hash, false)?;
                inputs.push(Input {
                    at: format!("src/{name}/{}", unit.rel),
                    role: InputRole::Source,
                    from: InputFrom::Path { path, sub: None },
                });
                for h in &unit.headers {
                    let path =
                        self.add_source(Some(p), &h.rel, root.join(&h.rel), h.hash, false)?;
                    inputs.push(Input {
                        at: format!("src/{name}/{}", h.rel),
                        role: InputRole::Headers,
                        from: InputFrom::Path { path, sub: None },
                    });
                }
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

    /// BMI inputs and `-fmodule-file=` flags for the closure of `u` in `dialect`.
    fn module_inputs(
        &mut self,
        u: UnitId,
        dialect: &[String],
    ) -> Result<(Vec<Input>, Vec<String>), EvalError> {
        let mut inputs = Vec::new();
        let mut flags = Vec::new();
        for v in self.input.graph.closure(u) {
            let drv = self.bmi(v, dialect)?;
            let module = self.input.graph.units[v].module.clone().unwrap_or_default();
            let at = format!("bmi/{}", bmi_file(&module));
            flags.push(format!("-fmodule-file={module}={at}"));
            inputs.push(Input {
                at,
                role: InputRole::Bmi,
                from: InputFrom::Drv {
                    drv,
                    output: "bmi".into(),
                },
            });
        }
        Ok((inputs, flags))
    }

    fn emit(
        &mut self,
        name: String,
        kind: StepKind,
        tool: Tool,
        args: Vec<String>,
        mut inputs: Vec<Input>,
        output: (&str, String, String),
    ) -> Result<StorePath, EvalError> {
        inputs.sort();
        inputs.dedup();
        let (key, at, out_name) = output;
        let drv = Derivation {
            version: DERIVATION_VERSION,
            name,
            kind,
            toolchain: self.input.toolchain.identity,
            tool,
            args,
            env: BTreeMap::new(),
            inputs,
            outputs: BTreeMap::from([(key.to_string(), Output { at, name: out_name })]),
        };
        let internal = |e: cmod_schema::derivation::DerivationError| {
            EvalError::new(ErrorKind::Internal, e.to_string())
        };
        drv.validate().map_err(internal)?;
        let path = drv.drv_path().map_err(internal)?;
        self.out.derivations.insert(path.clone(), drv);
        Ok(path)
    }

    /// The BMI derivation of importable unit `u` in `dialect`.
    fn bmi(&mut self, u: UnitId, dialect: &[String]) -> Result<StorePath, EvalError> {
        if let Some(p) = self.bmis.get(&(u, dialect.to_vec())) {
            return Ok(p.clone());
        }
        let unit = self.input.graph.units[u].clone();
        let module = unit.module.clone().unwrap_or_default();
        let file = bmi_file(&module);
        let mut name = format!("{}-{file}", self.ident(u));
        if dialect != self.own_dialect(u).as_slice() {
            let h = blake3::hash(dialect.join("\0").as_bytes()).to_hex();
            name = format!("{}-{}-{file}", self.ident(u), &h[..8]);
        }
        let mut inputs = self.source_inputs(u)?;
        let (bmi_inputs, module_flags) = self.module_inputs(u, dialect)?;
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
        let path = self.emit(
            name.clone(),
            StepKind::Bmi,
            Tool::Cxx,
            args,
            inputs,
            ("bmi", format!("out/{file}"), name),
        )?;
        self.bmis.insert((u, dialect.to_vec()), path.clone());
        Ok(path)
    }

    /// The object derivation of unit `u` (own dialect).
    fn object(&mut self, u: UnitId) -> Result<StorePath, EvalError> {
        if let Some(p) = self.objects.get(&u) {
            return Ok(p.clone());
        }
        let unit = self.input.graph.units[u].clone();
        let dialect = self.own_dialect(u);
        let (mut inputs, module_flags) = self.module_inputs(u, &dialect)?;
        let mut args = self.unit_flags(u, &dialect);
        args.extend(module_flags);
        let obj = object_file(&unit.rel);
        if unit.kind.is_importable() {
            let module = unit.module.clone().unwrap_or_default();
            let at = format!("bmi/{}", bmi_file(&module));
            let own = self.bmi(u, &dialect)?;
            inputs.push(Input {
                at: at.clone(),
                role: InputRole::Bmi,
                from: InputFrom::Drv {
                    drv: own,
                    output: "bmi".into(),
                },
            });
            args.extend(["-c".into(), at]);
        } else {
            inputs.extend(self.source_inputs(u)?);
            args.extend(["-x".into(), "c++".into(), "-c".into(), self.source_at(u)]);
        }
        args.extend(["-o".into(), format!("out/{obj}")]);
        let name = format!("{}-{obj}", self.ident(u));
        let path = self.emit(
            name.clone(),
            StepKind::Object,
            Tool::Cxx,
            args,
            inputs,
            ("obj", format!("out/{obj}"), name),
        )?;
        self.objects.insert(u, path.clone());
        Ok(path)
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

    /// The archive derivation of package `p`'s library, if it has one.
    fn archive(&mut self, p: PackageId) -> Result<Option<(StorePath, String)>, EvalError> {
        let pkg = &self.input.packages.packages[p];
        let Some(file) = archive_file(pkg) else {
            return Ok(None);
        };
        let ident = pkg.ident();
        let mut inputs = Vec::new();
        for u in self.units_of(p, Owner::Lib) {
            inputs.push(self.object_input(u)?);
        }
        inputs.sort();
        let mut args = vec!["rcsD".to_string(), format!("out/{file}")];
        args.extend(inputs.iter().map(|i| i.at.clone()));
        let name = format!("{ident}-{file}");
        let drv = self.emit(
            name.clone(),
            StepKind::Archive,
            Tool::Ar,
            args,
            inputs,
            ("lib", format!("out/{file}"), name),
        )?;
        Ok(Some((drv, file)))
    }

    /// The link derivation of executable `owner` (a binary or a test) of package `p`.
    fn link(
        &mut self,
        p: PackageId,
        owner: Owner,
        archives: &BTreeMap<PackageId, (StorePath, String)>,
    ) -> Result<StorePath, EvalError> {
        let pkg = &self.input.packages.packages[p];
        let sources = &self.input.sources[p];
        let (bin_name, name, deps) = match owner {
            Owner::Bin(b) => {
                let n = sources.bins[b].name.clone();
                let drv_name = format!("{}-{}", pkg.ident(), sanitize_name(&n));
                (n, drv_name, self.input.packages.transitive_deps(p))
            }
            Owner::Test(t) => {
                let n = sources.tests[t].name.clone();
                let drv_name = format!("{}-test-{}", pkg.ident(), sanitize_name(&n));
                (n, drv_name, self.input.packages.test_deps(p))
            }
            Owner::Lib => {
                return Err(EvalError::new(
                    ErrorKind::Internal,
                    "a library is archived, not linked",
                ))
            }
        };
        let mut inputs = Vec::new();
        let mut objects = Vec::new();
        for u in self.units_of(p, owner) {
            let i = self.object_input(u)?;
            objects.push(i.at.clone());
            inputs.push(i);
        }
        // The standard library modules, when anything linked into this binary uses them.
        let mut linked: Vec<PackageId> = vec![p];
        linked.extend(deps.iter().copied());
        let std_units: Vec<UnitId> = (0..self.input.graph.units.len())
            .filter(|&u| self.input.graph.units[u].origin == Origin::Toolchain)
            .collect();
        if !std_units.is_empty() {
            let uses_std = (0..self.input.graph.units.len()).any(|u| {
                matches!(self.input.graph.units[u].origin, Origin::Package(q, o) if linked.contains(&q) && (q != p || o == Owner::Lib || o == owner))
                    && self.input.graph.closure(u).iter().any(|v| std_units.contains(v))
            });
            if uses_std {
                for u in std_units {
                    let i = self.object_input(u)?;
                    objects.push(i.at.clone());
                    inputs.push(i);
                }
            }
        }
        // Own archive first, then dependencies, dependents before what they depend on.
        let mut order = vec![p];
        order.extend(deps.into_iter().rev());
        let mut libs = Vec::new();
        for q in order {
            if let Some((drv, file)) = archives.get(&q) {
                let at = format!("lib/{file}");
                libs.push(at.clone());
                inputs.push(Input {
                    at,
                    role: InputRole::Archive,
                    from: InputFrom::Drv {
                        drv: drv.clone(),
                        output: "lib".into(),
                    },
                });
            }
        }
        let f = &self.input.flags[p];
        let mut args: Vec<String> = f.dialect.clone();
        args.extend([
            "-fuse-ld=lld".into(),
            "-o".into(),
            format!("out/{bin_name}"),
        ]);
        args.extend(objects);
        args.extend(libs);
        args.extend(f.ldflags.iter().cloned());
        self.emit(
            name.clone(),
            StepKind::Link,
            Tool::Cxx,
            args,
            inputs,
            ("exe", format!("out/{bin_name}"), name),
        )
    }
}

/// Emit every derivation of every package's library and binaries.
pub fn derive(input: &DeriveInput<'_>) -> Result<Derived, EvalError> {
    let mut e = Emitter {
        input,
        out: Derived::default(),
        bmis: HashMap::new(),
        objects: HashMap::new(),
        source_paths: HashMap::new(),
    };
    // Every importable unit gets its own-dialect BMI even if nothing imports it yet, so a
    // library's interface is checked when the library is built.
    let mut archives = BTreeMap::new();
    for p in 0..input.packages.packages.len() {
        for u in e.units_of(p, Owner::Lib) {
            if input.graph.units[u].kind.is_importable() {
                let d = e.own_dialect(u);
                e.bmi(u, &d)?;
            }
        }
        if let Some(a) = e.archive(p)? {
            let pkg = &input.packages.packages[p];
            e.out.targets.push(Target {
                package: pkg.name.clone(),
                name: a.1.clone(),
                kind: TargetKind::Lib,
                drv: a.0.clone(),
                output: "lib".into(),
            });
            archives.insert(p, a);
        }
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
    Ok(e.out)
}
