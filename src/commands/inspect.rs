//! Read-only commands: `eval`, `show-derivation`, `graph`, `path-info`, `log`,
//! `toolchain`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cmod_evaluator::graph::Origin;
use cmod_evaluator::toolchain::{discover, ToolchainRequest};
use cmod_schema::derivation::Derivation;
use cmod_schema::StorePath;
use cmod_store::realise::needed;
use serde_json::json;

use crate::cli::{BuildOpts, Cli, EvalArgs, GraphFormat, PathInfoArgs};
use crate::commands::realise::outputs_of;
use crate::diagnostic::CliError;
use crate::project::{find_package_dir, load_to_read, open_store_to_read, Project};

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

pub fn eval(cli: &Cli, args: &EvalArgs) -> Result<(), CliError> {
    let project = load_to_read(cli, &args.build)?;
    let targets = project.targets_named(&args.targets)?;
    let mut roots: Vec<StorePath> = targets.iter().map(|t| t.drv.clone()).collect();
    // A generator that has not run is shown with what it needs; its consumers are not.
    roots.extend(
        cmod_ops::project::pending_runs(&project.eval)?
            .into_iter()
            .map(|r| r.drv),
    );
    if let Some(note) = project.pending_note() {
        errln!("note: {note}");
    }
    let derivations = &project.derived()?.derivations;
    let order = needed(derivations, &roots)?;
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> = order
            .iter()
            .map(|d| {
                (
                    project.store.path_of(d).display().to_string(),
                    serde_json::to_value(&derivations[d]).unwrap_or_default(),
                )
            })
            .collect();
        outln!("{}", pretty(&serde_json::Value::Object(map)));
    } else {
        for d in &order {
            let drv = &derivations[d];
            outln!(
                "{:<8} {}",
                format!("{:?}", drv.kind).to_lowercase(),
                project.store.path_of(d).display()
            );
        }
    }
    Ok(())
}

/// Find a derivation by target name, `.drv` path or output path.
fn find_derivation(project: &Project, what: &str) -> Result<(StorePath, Derivation), CliError> {
    if let Ok(targets) = project.targets_named(&[what.to_string()]) {
        let d = targets[0].drv.clone();
        return Ok((d.clone(), project.derived()?.derivations[&d].clone()));
    }
    let path = project.store.parse_path(what).map_err(|_| {
        CliError::usage(
            format!("`{what}` is neither a target nor a store path"),
            Some("pass a target name, a .drv path or an output path".into()),
        )
    })?;
    let drv_path = if path.name().ends_with(".drv") {
        path
    } else {
        project.store.path_info(&path)?.deriver.ok_or_else(|| {
            CliError::usage(
                format!("`{what}` was not built by a derivation (it is a source)"),
                None,
            )
        })?
    };
    if let Some(d) = project.derived()?.derivations.get(&drv_path) {
        return Ok((drv_path, d.clone()));
    }
    let bytes = std::fs::read(project.store.path_of(&drv_path)).map_err(|e| {
        CliError::usage(
            format!("cannot read `{drv_path}`: {e}"),
            Some("run `cmod realise` to write it".into()),
        )
    })?;
    let d: Derivation = serde_json::from_slice(&bytes).map_err(|e| CliError::Integrity {
        message: format!("`{drv_path}` is not a valid derivation: {e}"),
        help: None,
    })?;
    Ok((drv_path, d))
}

pub fn show_derivation(cli: &Cli, what: &str, build: &BuildOpts) -> Result<(), CliError> {
    let project = load_to_read(cli, build)?;
    let (path, drv) = find_derivation(&project, what)?;
    let v = json!({ project.store.path_of(&path).display().to_string(): drv });
    outln!("{}", pretty(&v));
    Ok(())
}

/// How `cmod graph` names units: `package/path`, with the target when two targets
/// compile one file (each with its own settings, so two units).
struct UnitNames<'a> {
    eval: &'a cmod_evaluator::Evaluation,
}

impl UnitNames<'_> {
    fn package(&self, u: usize) -> String {
        match self.eval.graph.units[u].origin {
            Origin::Package(p, _) => self.eval.packages.packages[p].name.clone(),
            Origin::Toolchain => "toolchain".into(),
        }
    }

    /// The generator that writes unit `u`, if a generator does.
    fn generator(&self, u: usize) -> Option<String> {
        let unit = &self.eval.graph.units[u];
        let p = unit.package()?;
        let g = self.eval.sources[p].generated.get(&unit.rel)?;
        Some(g.generator.clone())
    }

    fn target(&self, u: usize) -> String {
        use cmod_evaluator::graph::Owner;
        match self.eval.graph.units[u].origin {
            Origin::Package(p, owner) => {
                let kind = match owner {
                    Owner::Lib(_) => "lib",
                    Owner::Bin(_) => "bin",
                    Owner::Test(_) => "test",
                };
                let name = self.eval.targets[p]
                    .get(owner)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                format!("{kind} {name}")
            }
            Origin::Toolchain => "toolchain".into(),
        }
    }

    fn label(&self, u: usize) -> String {
        let units = &self.eval.graph.units;
        let base = format!("{}/{}", self.package(u), units[u].rel);
        let shared = units
            .iter()
            .filter(|x| x.rel == units[u].rel && x.package() == units[u].package())
            .count()
            > 1;
        if shared {
            format!("{base} ({})", self.target(u))
        } else {
            base
        }
    }
}

pub fn graph(cli: &Cli, format: GraphFormat, build: &BuildOpts) -> Result<(), CliError> {
    let project = load_to_read(cli, build)?;
    let g = &project.eval.graph;
    let names = UnitNames {
        eval: &project.eval,
    };
    let (pkg_name, target, label) = (
        |u| names.package(u),
        |u| names.target(u),
        |u| names.label(u),
    );
    match format {
        GraphFormat::Json => {
            let units: Vec<serde_json::Value> = (0..g.units.len())
                .map(|u| {
                    let unit = &g.units[u];
                    json!({
                        "id": label(u),
                        "package": pkg_name(u),
                        "target": target(u),
                        "path": unit.rel,
                        "kind": format!("{:?}", unit.kind),
                        "module": unit.module,
                        "imports": unit.imports.iter().map(|i| json!({"module": i.name, "line": i.line, "exported": i.exported})).collect::<Vec<_>>(),
                        "depends_on": g.edges[u].iter().map(|&v| label(v)).collect::<Vec<_>>(),
                        "generated_by": names.generator(u),
                        "header_units": project.eval.header_units.of(u).iter().map(|h| json!({
                            "id": header_unit_label(&project.eval, h.index),
                            "line": h.line,
                            "exported": h.exported,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let header_units: Vec<serde_json::Value> = (0..project.eval.header_units.scans.len())
                .map(|i| header_unit_json(&project.eval, i))
                .collect();
            outln!(
                "{}",
                pretty(&json!({
                    "units": units,
                    "header_units": header_units,
                    "generators": generators(&project.eval),
                }))
            );
        }
        GraphFormat::Dot => {
            outln!(
                "digraph modules {{\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];"
            );
            let mut by_module: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (u, unit) in g.units.iter().enumerate() {
                let m = unit
                    .module
                    .as_deref()
                    .map(|m| m.split(':').next().unwrap_or(m).to_string())
                    .unwrap_or_default();
                by_module.entry(m).or_default().push(u);
            }
            for (i, (m, units)) in by_module.iter().enumerate() {
                if !m.is_empty() {
                    outln!("  subgraph cluster_{i} {{\n    label=\"module {m}\";");
                }
                for &u in units {
                    let unit = &g.units[u];
                    let mut text = match &unit.module {
                        Some(name) => format!("{}\\n{} ({:?})", label(u), name, unit.kind),
                        None => format!("{}\\n({:?})", label(u), unit.kind),
                    };
                    if let Some(generator) = names.generator(u) {
                        text.push_str(&format!("\\nwritten by [[generate]] {generator}"));
                    }
                    outln!("    \"{}\" [label=\"{text}\"];", label(u));
                }
                if !m.is_empty() {
                    outln!("  }}");
                }
            }
            for (u, edges) in g.edges.iter().enumerate() {
                for &v in edges {
                    outln!("  \"{}\" -> \"{}\";", label(u), label(v));
                }
            }
            let hu = &project.eval.header_units;
            // DOT ids are quoted: a user header's name holds quotes of its own.
            let hu_id = |i| header_unit_label(&project.eval, i).replace('"', "\\\"");
            for i in 0..hu.scans.len() {
                let id = hu_id(i);
                outln!("  \"{id}\" [shape=note, label=\"{id}\"];");
            }
            for u in 0..g.units.len() {
                for h in hu.of(u) {
                    outln!(
                        "  \"{}\" -> \"{}\" [style=dashed];",
                        label(u),
                        hu_id(h.index)
                    );
                }
            }
            for generator in generators(&project.eval) {
                let id = format!(
                    "[[generate]] {}/{}",
                    generator["package"].as_str().unwrap_or(""),
                    generator["name"].as_str().unwrap_or("")
                );
                let how = match generator["run"].as_str() {
                    Some(bin) => format!("runs {bin}"),
                    None => "template".to_string(),
                };
                let pending = if generator["ran"] == json!(false) {
                    "\\n(not run yet)"
                } else {
                    ""
                };
                outln!("  \"{id}\" [shape=component, label=\"{id}\\n{how}{pending}\"];");
                for output in generator["outputs"].as_array().into_iter().flatten() {
                    let unit = format!(
                        "{}/{}",
                        generator["package"].as_str().unwrap_or(""),
                        output.as_str().unwrap_or("")
                    );
                    outln!("  \"{id}\" -> \"{unit}\" [style=dotted];");
                }
            }
            outln!("}}");
        }
    }
    Ok(())
}

/// Every package's generators for `cmod graph`: templates and programs, what they write
/// and, for programs, what they run and read, and whether they have run.
fn generators(eval: &cmod_evaluator::Evaluation) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for (pkg, sources) in eval.packages.packages.iter().zip(&eval.sources) {
        let mut templates: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (rel, file) in &sources.generated {
            if !sources.programs.iter().any(|p| p.name == file.generator) {
                templates.entry(&file.generator).or_default().push(rel);
            }
        }
        for (name, outputs) in templates {
            out.push(json!({
                "package": pkg.name, "name": name, "kind": "template",
                "outputs": outputs, "ran": true,
            }));
        }
        for p in &sources.programs {
            out.push(json!({
                "package": pkg.name, "name": p.name, "kind": "program",
                "run": match &p.dependency {
                    Some(d) => format!("{d}/{}", p.bin),
                    None => p.bin.clone(),
                },
                "args": p.args, "inputs": p.inputs, "outputs": p.outputs, "ran": p.ran,
            }));
        }
    }
    out
}

/// The root of the store holding `path`, if it is written `<root>/v1/store/<name>`.
fn store_root_of(path: &str) -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(path);
    let dir = p.parent().filter(|_| p.is_absolute())?;
    dir.ends_with("v1/store")
        .then(|| dir.parent()?.parent().map(std::path::Path::to_path_buf))
        .flatten()
}

/// A header unit as `cmod graph` names it: `header unit <vector>` (with its package and a
/// number when one header is built with several sets of flags).
fn header_unit_label(eval: &cmod_evaluator::Evaluation, index: usize) -> String {
    use cmod_evaluator::header_units::HeaderSource;
    let scans = &eval.header_units.scans;
    let header = |i: usize| match &scans[i].source {
        HeaderSource::System(name) => format!("<{name}>"),
        HeaderSource::Package(at) => {
            format!("\"{}/{}\"", eval.packages.packages[at.package].name, at.rel)
        }
    };
    let name = header(index);
    let same = (0..scans.len()).filter(|&i| header(i) == name).count();
    if same > 1 {
        format!("header unit {name} #{index}")
    } else {
        format!("header unit {name}")
    }
}

fn header_unit_json(eval: &cmod_evaluator::Evaluation, index: usize) -> serde_json::Value {
    use cmod_evaluator::header_units::HeaderSource;
    let scan = &eval.header_units.scans[index];
    let (kind, path) = match &scan.source {
        HeaderSource::System(name) => ("system", name.clone()),
        HeaderSource::Package(at) => ("user", at.rel.clone()),
    };
    json!({
        "id": header_unit_label(eval, index),
        "kind": kind,
        "header": path,
        "package": eval.packages.packages[match &scan.source {
            HeaderSource::Package(at) => at.package,
            HeaderSource::System(_) => scan.importer,
        }].name,
        "includes": scan.headers.iter().map(|h| h.rel.clone()).collect::<Vec<_>>(),
    })
}

pub fn path_info(cli: &Cli, args: &PathInfoArgs) -> Result<(), CliError> {
    let store = open_store_to_read(cli)?;
    let mut paths = if args.paths.is_empty() {
        let project = load_to_read(cli, &args.build)?;
        let targets = project.targets_named(&[])?;
        outputs_of(&project, &targets)?.into_values().collect()
    } else {
        crate::commands::why::resolve_all(cli, &store, &args.paths, &args.build)?
    };
    if args.recursive {
        let mut seen = BTreeSet::new();
        let mut todo: VecDeque<StorePath> = paths.into_iter().collect();
        while let Some(p) = todo.pop_front() {
            if seen.insert(p.clone()) {
                todo.extend(store.path_info(&p)?.references);
            }
        }
        paths = seen.into_iter().collect();
    }
    let infos = paths
        .iter()
        .map(|p| store.path_info(p))
        .collect::<Result<Vec<_>, _>>()?;
    if args.json {
        let v: Vec<serde_json::Value> = infos
            .iter()
            .map(|i| {
                let mut v = serde_json::to_value(i).unwrap_or_default();
                v["location"] = json!(store.path_of(&i.path));
                v
            })
            .collect();
        outln!("{}", pretty(&serde_json::Value::Array(v)));
    } else {
        for i in infos {
            if args.size {
                let size = crate::output::size_for(i.size, args.human_readable);
                outln!("{}\t{size}", store.path_of(&i.path).display());
            } else {
                outln!("{}", store.path_of(&i.path).display());
            }
        }
    }
    Ok(())
}

pub fn log(cli: &Cli, what: &str, build: &BuildOpts) -> Result<(), CliError> {
    // A failed build names the log by its full path, in whichever store built it: that
    // path opens its own store unless `--store` says which.
    let store = match (cli.store.as_deref(), store_root_of(what)) {
        (None, Some(root)) => {
            cmod_ops::project::open_store(Some(&root), cmod_ops::project::Access::Read)?
        }
        _ => open_store_to_read(cli)?,
    };
    if let Ok(path) = store.parse_path(what) {
        return match store.log_for(&path) {
            Some(text) => {
                print_log(&text);
                Ok(())
            }
            None => Err(no_log(what)),
        };
    }
    let project = load_to_read(cli, build)?;
    let target = project.targets_named(&[what.to_string()])?.remove(0);
    if let Some(text) = project.store.log_for(&target.drv) {
        print_log(&text);
        return Ok(());
    }
    // The target's own step never ran: show the steps of its closure whose latest
    // attempt failed (they have a log but were never realised).
    let derivations = &project.derived()?.derivations;
    let mut shown = 0;
    for d in needed(derivations, std::slice::from_ref(&target.drv))? {
        if project.store.drv_outputs(&d).is_some() {
            continue;
        }
        if let Some(text) = project.store.log_for(&d) {
            errln!(
                "note: `{what}` was not built; this is the log of `{}` ({}), whose build failed",
                derivations[&d].name,
                project.store.path_of(&d).display()
            );
            print_log(&text);
            shown += 1;
        }
    }
    if shown == 0 {
        return Err(no_log(what));
    }
    Ok(())
}

/// A log as recorded, ending in a newline.
fn print_log(text: &str) {
    if text.is_empty() || text.ends_with('\n') {
        out!("{text}");
    } else {
        outln!("{text}");
    }
}

fn no_log(what: &str) -> CliError {
    CliError::usage(
        format!("no build log is recorded for `{what}`"),
        Some("logs exist for derivations built (or attempted) in this store, and their outputs; run `cmod realise` first".into()),
    )
}

/// `cmod toolchain`: the package's toolchain, or outside a package the default one
/// (`clang++-19` with libstdc++).
pub fn toolchain(cli: &Cli, as_json: bool, build: &BuildOpts) -> Result<(), CliError> {
    let t = match find_package_dir(cli)? {
        Some(_) => load_to_read(cli, build)?.eval.toolchain.clone(),
        None => {
            let store = open_store_to_read(cli)?;
            discover(&ToolchainRequest::default(), Some(&store.cache_dir()))?
        }
    };
    let t = &t;
    if as_json {
        outln!("{}", pretty(&serde_json::to_value(t).unwrap_or_default()));
    } else {
        outln!("identity:  {}", t.identity);
        outln!("compiler:  {} ({})", t.cxx.display(), t.version_text);
        outln!("stdlib:    {}", t.stdlib.as_str());
        outln!("scan-deps: {}", t.scan_deps.display());
        outln!("archiver:  {}", t.ar.display());
        outln!("resources: {}", t.resource_dir.display());
        if let Some(d) = &t.std_module_dir {
            outln!("std module: {}", d.display());
        }
        outln!("closure:   {} paths", t.closure.len());
        outln!(
            "runtime:   {} paths (what linked programs load)",
            t.runtime.len()
        );
    }
    Ok(())
}
