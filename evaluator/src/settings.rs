//! The compile and link settings of every unit and executable, from `[build]`, the
//! profile, the unit's target, the target's source overrides and **usage requirements**.
//!
//! Usage requirements are what a library gives the units that use it: its
//! `public-defines` and `public-include-dirs` (which apply to the library's own units
//! too), and transitively those of its `public-uses`. A target sees them for the
//! libraries of its package it uses, and for every library of each package it depends
//! on; a dependency declared `public = true` passes its own usage requirements on to the
//! depending package's consumers, as CMake's PUBLIC does. A `system` dependency's
//! pkg-config flags reach the declaring package's units (and its consumers' when public).
//! Private settings never leave their target.
//!
//! Link settings collect, for an executable, the `ldflags` and `links` of every library
//! its link includes and the system libraries of every package it links.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cmod_schema::manifest::{OptLevel, Profile, SourceOverride, Spanned, Stdlib, Target};
use cmod_schema::ContentHash;
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{ErrorKind, EvalError};
use crate::file_cache::FileCache;
use crate::flags::{is_dialect_flag, Flag, FlagSource, PathArg, PkgPath, ProfileName, UnitFlags};
use crate::package::{PackageGraph, PackageId};
use crate::sources::Lang;
use crate::system::{links, resolve_dependency, SystemLib};
use crate::targets::{table, Owner, PackageTargets};
use cmod_schema::toolchain::ToolchainInfo;

/// Defines and path flags one unit inherits from something it uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Usage {
    defines: Vec<String>,
    paths: Vec<PathArg>,
}

impl Usage {
    fn extend(&mut self, other: &Usage) {
        push_unique(&mut self.defines, other.defines.iter().cloned());
        push_unique(&mut self.paths, other.paths.iter().cloned());
    }

    fn of_system(lib: &SystemLib) -> Usage {
        let mut u = Usage::default();
        for f in &lib.cflags {
            if f.starts_with("-D") || f.starts_with("-U") {
                push_unique(&mut u.defines, [f.clone()]);
            } else {
                push_unique(&mut u.paths, [PathArg::Host(vec![f.clone()])]);
            }
        }
        u
    }
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, items: impl IntoIterator<Item = T>) {
    for i in items {
        if !list.contains(&i) {
            list.push(i);
        }
    }
}

/// The checked settings of one table: `[build]` plus the profile, a target, or an override.
#[derive(Debug, Clone, Default)]
struct Layer {
    cxx: Vec<Flag>,
    c: Vec<Flag>,
    defines: Vec<String>,
    dirs: Vec<PkgPath>,
}

/// A target's checked settings.
#[derive(Debug, Clone, Default)]
struct TargetLayer {
    private: Layer,
    public_defines: Vec<String>,
    public_dirs: Vec<PkgPath>,
    ldflags: Vec<String>,
    links: Vec<SystemLib>,
    pch: Option<PkgPath>,
    overrides: Vec<(GlobSet, Layer)>,
}

/// One package's settings.
#[derive(Debug)]
struct PackageSettings {
    base: Layer,
    opt: OptLevel,
    debug: bool,
    ldflags: Vec<String>,
    links: Vec<SystemLib>,
    targets: BTreeMap<Owner, TargetLayer>,
    /// What using each library gives (its public settings and its public uses').
    lib_usage: Vec<Usage>,
    /// What depending on the package gives.
    exported: Usage,
    system: Vec<SystemLib>,
    dev_system: Vec<SystemLib>,
}

/// The settings of a whole package graph. See the module documentation.
#[derive(Debug)]
pub struct Settings {
    packages: Vec<PackageSettings>,
    stdlib: Stdlib,
    memo: HashMap<(PackageId, Owner, Lang, Vec<usize>), Arc<UnitFlags>>,
}

/// Link settings of one executable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkSettings {
    /// Link flags, then system library words, in order.
    pub args: Vec<String>,
    /// Host files the link reads (system library files), with their hashes.
    pub host: BTreeMap<String, ContentHash>,
    /// Every system library the link uses (for the lock and the test's runtime).
    pub system: Vec<SystemLib>,
}

impl Settings {
    /// Check and collect the settings of every package, resolving system dependencies
    /// through pkg-config. Nothing here needs the toolchain but the standard library's
    /// name, so unit flags are known while the toolchain is still being identified; the
    /// system libraries' files are found afterwards ([`Settings::find_library_files`]).
    pub fn new(
        packages: &PackageGraph,
        targets: &[PackageTargets],
        profile: ProfileName,
        stdlib: Stdlib,
        files: &FileCache,
    ) -> Result<Settings, EvalError> {
        let mut out: Vec<PackageSettings> = Vec::with_capacity(packages.packages.len());
        for pkg in &packages.packages {
            let s = package_settings(packages, pkg.id, &targets[pkg.id], profile, files, &out)?;
            out.push(s);
        }
        Ok(Settings {
            packages: out,
            stdlib,
            memo: HashMap::new(),
        })
    }

    /// Find the files of every system library (`links` and system dependencies) on the
    /// toolchain's library path, with their hashes.
    pub fn find_library_files(
        &mut self,
        toolchain: &ToolchainInfo,
        files: &FileCache,
    ) -> Result<(), EvalError> {
        for s in &mut self.packages {
            let targets = s.targets.values_mut().flat_map(|t| t.links.iter_mut());
            for lib in s
                .links
                .iter_mut()
                .chain(targets)
                .chain(s.system.iter_mut())
                .chain(s.dev_system.iter_mut())
            {
                lib.find_files(toolchain, files)?;
            }
        }
        Ok(())
    }

    /// Every system library of every package, for fingerprints and the lock.
    pub fn all_system_libs(&self) -> Vec<&SystemLib> {
        let mut out: Vec<&SystemLib> = Vec::new();
        for s in &self.packages {
            let targets = s.targets.values().flat_map(|t| t.links.iter());
            for lib in s
                .links
                .iter()
                .chain(targets)
                .chain(&s.system)
                .chain(&s.dev_system)
            {
                if !out.iter().any(|o| o.name == lib.name && o.libs == lib.libs) {
                    out.push(lib);
                }
            }
        }
        out
    }

    /// The system libraries package `p` declares (`dev`: its `[dev-dependencies]` ones).
    pub fn system(&self, p: PackageId, dev: bool) -> &[SystemLib] {
        let s = &self.packages[p];
        if dev {
            &s.dev_system
        } else {
            &s.system
        }
    }

    /// The `links` of package `p`'s `[build]` and of its target `owner`.
    pub fn links(&self, p: PackageId, owner: Owner) -> Vec<&SystemLib> {
        let s = &self.packages[p];
        s.links
            .iter()
            .chain(
                s.targets
                    .get(&owner)
                    .map(|t| t.links.as_slice())
                    .unwrap_or(&[]),
            )
            .collect()
    }

    /// The flags of unit `rel` (in `lang`) of target `owner` of package `p`.
    pub fn unit_flags(
        &mut self,
        graph: &PackageGraph,
        targets: &[PackageTargets],
        p: PackageId,
        owner: Owner,
        rel: &str,
        lang: Lang,
    ) -> Arc<UnitFlags> {
        let matched: Vec<usize> = self.packages[p]
            .targets
            .get(&owner)
            .map(|t| {
                t.overrides
                    .iter()
                    .enumerate()
                    .filter(|(_, (set, _))| set.is_match(rel))
                    .map(|(i, _)| i)
                    .collect()
            })
            .unwrap_or_default();
        let key = (p, owner, lang, matched);
        if let Some(f) = self.memo.get(&key) {
            return Arc::clone(f);
        }
        let flags = Arc::new(self.compute(graph, targets, p, owner, lang, &key.3));
        self.memo.insert(key, Arc::clone(&flags));
        flags
    }

    fn compute(
        &self,
        graph: &PackageGraph,
        targets: &[PackageTargets],
        p: PackageId,
        owner: Owner,
        lang: Lang,
        overrides: &[usize],
    ) -> UnitFlags {
        let s = &self.packages[p];
        let pkg = &graph.packages[p];
        let target = s.targets.get(&owner).cloned().unwrap_or_default();
        let layers: Vec<&Layer> = std::iter::once(&s.base)
            .chain(std::iter::once(&target.private))
            .chain(
                overrides
                    .iter()
                    .filter_map(|&i| target.overrides.get(i).map(|(_, l)| l)),
            )
            .collect();
        let mut dialect = match lang {
            Lang::Cxx => vec![
                pkg.file.manifest.toolchain.cxx_standard.flag().to_string(),
                format!("-stdlib={}", self.stdlib.as_str()),
            ],
            Lang::C => vec![pkg.file.manifest.toolchain.c_standard.flag()],
        };
        let mut codegen = vec![s.opt.flag().to_string()];
        if s.debug {
            codegen.push("-g".into());
        }
        let mut paths: Vec<PathArg> = Vec::new();
        // Own directories first: overrides, the target's, its public ones, [build]'s.
        for l in layers.iter().skip(2).rev() {
            push_unique(&mut paths, l.dirs.iter().map(dir_arg));
        }
        push_unique(&mut paths, target.private.dirs.iter().map(dir_arg));
        push_unique(&mut paths, target.public_dirs.iter().map(dir_arg));
        push_unique(&mut paths, s.base.dirs.iter().map(dir_arg));
        let mut defines: Vec<String> = Vec::new();
        push_unique(&mut defines, s.base.defines.iter().cloned());
        push_unique(&mut defines, target.private.defines.iter().cloned());
        push_unique(&mut defines, target.public_defines.iter().cloned());
        for l in layers.iter().skip(2) {
            push_unique(&mut defines, l.defines.iter().cloned());
        }
        for l in &layers {
            for f in if lang == Lang::Cxx { &l.cxx } else { &l.c } {
                match f {
                    Flag::Text(t) if lang == Lang::Cxx && is_dialect_flag(t) => {
                        dialect.push(t.clone())
                    }
                    Flag::Text(t) => codegen.push(t.clone()),
                    Flag::Path(a) => push_unique(&mut paths, [a.clone()]),
                }
            }
        }
        let usage = self.inherited(graph, targets, p, owner);
        push_unique(&mut defines, usage.defines);
        push_unique(&mut paths, usage.paths);
        UnitFlags {
            lang,
            dialect,
            codegen,
            defines,
            paths,
            pch: target.pch.filter(|_| lang == Lang::Cxx),
        }
    }

    /// What target `owner` of package `p` inherits from the libraries and packages it uses.
    fn inherited(
        &self,
        graph: &PackageGraph,
        targets: &[PackageTargets],
        p: PackageId,
        owner: Owner,
    ) -> Usage {
        let s = &self.packages[p];
        let mut usage = Usage::default();
        if let Some(info) = targets[p].get(owner) {
            for &l in &info.visible_libs {
                if owner != Owner::Lib(l) {
                    usage.extend(&s.lib_usage[l]);
                }
            }
        }
        let pkg = &graph.packages[p];
        let deps = pkg
            .deps
            .iter()
            .chain(pkg.dev_deps.iter().filter(|_| owner.is_test()));
        for d in deps {
            usage.extend(&self.packages[d.package].exported);
        }
        let system = s
            .system
            .iter()
            .chain(s.dev_system.iter().filter(|_| owner.is_test()));
        for lib in system {
            usage.extend(&Usage::of_system(lib));
        }
        usage
    }

    /// Package `p`'s C++ dialect flags from `[toolchain]`, `[build]` and the profile
    /// (what its links are driven with).
    pub fn package_dialect(&self, graph: &PackageGraph, p: PackageId) -> Vec<String> {
        self.base_cxx(graph, p).0
    }

    /// Package `p`'s C++ dialect and codegen flags, without its targets' settings.
    fn base_cxx(&self, graph: &PackageGraph, p: PackageId) -> (Vec<String>, Vec<String>) {
        let s = &self.packages[p];
        let pkg = &graph.packages[p];
        let mut dialect = vec![
            pkg.file.manifest.toolchain.cxx_standard.flag().to_string(),
            format!("-stdlib={}", self.stdlib.as_str()),
        ];
        let mut codegen = vec![s.opt.flag().to_string()];
        if s.debug {
            codegen.push("-g".into());
        }
        for f in &s.base.cxx {
            if let Flag::Text(t) = f {
                if is_dialect_flag(t) {
                    dialect.push(t.clone());
                } else {
                    codegen.push(t.clone());
                }
            }
        }
        (dialect, codegen)
    }

    /// The flags of the standard library module units: the root package's dialect and
    /// codegen flags, without its targets' settings.
    pub fn std_flags(&self, graph: &PackageGraph) -> UnitFlags {
        let (dialect, codegen) = self.base_cxx(graph, graph.root);
        UnitFlags {
            lang: Lang::Cxx,
            dialect,
            codegen,
            defines: Vec::new(),
            paths: Vec::new(),
            pch: None,
        }
    }

    /// The link settings of executable `owner` of package `p`, whose link includes the
    /// libraries `linked` (package, library index).
    pub fn link(
        &self,
        p: PackageId,
        owner: Owner,
        linked: &[(PackageId, usize)],
        packages: &[PackageId],
    ) -> LinkSettings {
        let mut args: Vec<String> = self.packages[p].ldflags.clone();
        if let Some(t) = self.packages[p].targets.get(&owner) {
            push_unique(&mut args, t.ldflags.iter().cloned());
        }
        let mut system: Vec<SystemLib> = Vec::new();
        let mut add = |libs: &[SystemLib]| {
            for l in libs {
                if !system.iter().any(|s| s.name == l.name && s.libs == l.libs) {
                    system.push(l.clone());
                }
            }
        };
        if let Some(t) = self.packages[p].targets.get(&owner) {
            add(&t.links);
        }
        for &(q, l) in linked {
            if let Some(t) = self.packages[q].targets.get(&Owner::Lib(l)) {
                push_unique(&mut args, t.ldflags.iter().cloned());
                add(&t.links);
            }
        }
        for &q in packages {
            add(&self.packages[q].links);
            add(&self.packages[q].system);
            if q != p {
                push_unique(&mut args, self.packages[q].ldflags.iter().cloned());
            }
        }
        if owner.is_test() {
            add(&self.packages[p].dev_system);
        }
        let mut host = BTreeMap::new();
        for lib in &system {
            args.extend(lib.libs.iter().cloned());
            host.extend(lib.files.iter().map(|(k, v)| (k.clone(), *v)));
        }
        LinkSettings { args, host, system }
    }

    /// The precompiled header of `owner`, if it has one.
    pub fn pch(&self, p: PackageId, owner: Owner) -> Option<&PkgPath> {
        self.packages[p]
            .targets
            .get(&owner)
            .and_then(|t| t.pch.as_ref())
    }
}

fn dir_arg(d: &PkgPath) -> PathArg {
    PathArg::Dir {
        flag: "-I",
        at: d.clone(),
    }
}

/// Check and collect package `p`'s settings; `done` holds those of the packages before it
/// (its dependencies).
fn package_settings(
    graph: &PackageGraph,
    p: PackageId,
    targets: &PackageTargets,
    profile: ProfileName,
    files: &FileCache,
    done: &[PackageSettings],
) -> Result<PackageSettings, EvalError> {
    let pkg = &graph.packages[p];
    let file = &pkg.file;
    let m = &file.manifest;
    let chosen: Option<&Profile> = match profile {
        ProfileName::Dev => m.profile.dev.as_ref(),
        ProfileName::Release => m.profile.release.as_ref(),
    };
    let (default_opt, default_debug) = match profile {
        ProfileName::Dev => (OptLevel::O0, true),
        ProfileName::Release => (OptLevel::O3, false),
    };
    let build = FlagSource {
        file,
        package: p,
        table: "[build]",
    };
    let base = base_layer(file, p, profile, chosen)?;
    let mut owners: Vec<Owner> = (0..targets.libs.len()).map(Owner::Lib).collect();
    owners.extend((0..m.bin.len()).map(Owner::Bin));
    // Every test's settings are checked (and its `links` locked) whether tests are built
    // or not, so the lock does not depend on the command.
    owners.extend((0..m.test.len()).map(Owner::Test));
    let mut layers = BTreeMap::new();
    for owner in owners {
        if let Some(t) = table(file, owner) {
            layers.insert(owner, target_layer(file, p, t)?);
        }
    }
    let system = pkg
        .system
        .iter()
        .map(|d| resolve_dependency(d, files))
        .collect::<Result<Vec<_>, _>>()?;
    let dev_system = pkg
        .dev_system
        .iter()
        .map(|d| resolve_dependency(d, files))
        .collect::<Result<Vec<_>, _>>()?;
    let lib_usage = library_usage(targets, &layers);
    let exported = exported_usage(graph, p, &lib_usage, &system, done);
    Ok(PackageSettings {
        base,
        opt: chosen.and_then(|pr| pr.opt_level).unwrap_or(default_opt),
        debug: chosen.and_then(|pr| pr.debug).unwrap_or(default_debug),
        ldflags: build.ldflags(&m.build.ldflags)?,
        links: links(&m.build.links, file)?,
        targets: layers,
        lib_usage,
        exported,
        system,
        dev_system,
    })
}

/// `[build]` with the profile's flags and defines (the release profile defines `NDEBUG`
/// unless it sets `defines` of its own).
fn base_layer(
    file: &crate::manifest_file::ManifestFile,
    p: PackageId,
    profile: ProfileName,
    chosen: Option<&Profile>,
) -> Result<Layer, EvalError> {
    let m = &file.manifest;
    let build = FlagSource {
        file,
        package: p,
        table: "[build]",
    };
    let prof = FlagSource {
        file,
        package: p,
        table: "the profile",
    };
    let mut base = Layer {
        cxx: build.flags(&m.build.cxxflags)?,
        c: build.flags(&m.build.cflags)?,
        defines: build.defines(&m.build.defines)?,
        dirs: build.dirs(&m.build.include_dirs)?,
    };
    if let Some(pr) = chosen {
        base.cxx.extend(prof.flags(&pr.cxxflags)?);
        base.c.extend(prof.flags(&pr.cflags)?);
    }
    match chosen {
        Some(pr) if !pr.defines.is_empty() => base.defines.extend(prof.defines(&pr.defines)?),
        _ if profile == ProfileName::Release => base.defines.push("-DNDEBUG".into()),
        _ => {}
    }
    Ok(base)
}

/// What depending on package `p` gives: every library's usage requirements, those of its
/// public dependencies (already computed in `done`) and its public system dependencies'.
fn exported_usage(
    graph: &PackageGraph,
    p: PackageId,
    lib_usage: &[Usage],
    system: &[SystemLib],
    done: &[PackageSettings],
) -> Usage {
    let mut exported = Usage::default();
    for u in lib_usage {
        exported.extend(u);
    }
    for d in graph.packages[p].deps.iter().filter(|d| d.public) {
        if let Some(s) = done.get(d.package) {
            exported.extend(&s.exported);
        }
    }
    for lib in system.iter().filter(|l| l.public) {
        exported.extend(&Usage::of_system(lib));
    }
    exported
}

/// What using each library gives: its public settings and, transitively, those of the
/// libraries it uses publicly.
fn library_usage(targets: &PackageTargets, layers: &BTreeMap<Owner, TargetLayer>) -> Vec<Usage> {
    let own = |l: usize| {
        let mut u = Usage::default();
        if let Some(t) = layers.get(&Owner::Lib(l)) {
            u.defines = t.public_defines.clone();
            u.paths = t.public_dirs.iter().map(dir_arg).collect();
        }
        u
    };
    (0..targets.libs.len())
        .map(|l| {
            let mut u = own(l);
            for &v in &targets.libs[l].public_libs {
                u.extend(&own(v));
            }
            u
        })
        .collect()
}

/// Check one target's settings.
fn target_layer(
    file: &crate::manifest_file::ManifestFile,
    p: PackageId,
    t: &Spanned<Target>,
) -> Result<TargetLayer, EvalError> {
    let t = t.get_ref();
    let src = FlagSource {
        file,
        package: p,
        table: "the target",
    };
    let overrides = t
        .overrides
        .iter()
        .map(|o| override_layer(file, p, o))
        .collect::<Result<_, _>>()?;
    Ok(TargetLayer {
        private: Layer {
            cxx: src.flags(&t.cxxflags)?,
            c: src.flags(&t.cflags)?,
            defines: src.defines(&t.defines)?,
            dirs: src.dirs(&t.include_dirs)?,
        },
        public_defines: src.defines(&t.public_defines)?,
        public_dirs: src.dirs(&t.public_include_dirs)?,
        ldflags: src.ldflags(&t.ldflags)?,
        links: links(&t.links, file)?,
        pch: t.pch.as_ref().map(|h| PkgPath {
            package: p,
            rel: h.get_ref().trim_start_matches("./").to_string(),
        }),
        overrides,
    })
}

fn override_layer(
    file: &crate::manifest_file::ManifestFile,
    p: PackageId,
    o: &Spanned<SourceOverride>,
) -> Result<(GlobSet, Layer), EvalError> {
    let src = FlagSource {
        file,
        package: p,
        table: "the override",
    };
    let o = o.get_ref();
    let mut b = GlobSetBuilder::new();
    for g in &o.files {
        let glob = Glob::new(g.get_ref().trim_start_matches("./")).map_err(|e| {
            EvalError::new(
                ErrorKind::ManifestInvalid,
                format!("`{}` is not a valid glob: {e}", g.get_ref()),
            )
            .at(file.location(g.span()))
            .help("use `*` within a directory and `**` across directories")
        })?;
        b.add(glob);
    }
    let set = b
        .build()
        .map_err(|e| EvalError::new(ErrorKind::ManifestInvalid, format!("invalid globs: {e}")))?;
    Ok((
        set,
        Layer {
            cxx: src.flags(&o.cxxflags)?,
            c: src.flags(&o.cflags)?,
            defines: src.defines(&o.defines)?,
            dirs: src.dirs(&o.include_dirs)?,
        },
    ))
}

#[cfg(test)]
mod tests;
