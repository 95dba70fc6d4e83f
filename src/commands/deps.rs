//! Dependency commands: `update`, `add`, `remove`, `tree` and `fetch`. Manifest edits go
//! through toml_edit, so the user's formatting and comments survive.

use std::collections::{BTreeMap, BTreeSet};

use cmod_evaluator::deps::Update;
use cmod_evaluator::lockfile;
use cmod_evaluator::manifest_file::{ManifestFile, MANIFEST_NAME};
use cmod_evaluator::package::{PackageGraph, PackageId, PackageSource};
use cmod_schema::manifest::PackageName;
use toml_edit::{DocumentMut, InlineTable, Item, Table, Value};

use crate::cli::{AddArgs, Cli, RemoveArgs, TreeArgs, UpdateArgs};
use crate::diagnostic::{display_path, CliError};
use crate::project::{load, load_with, package_dir};

/// `cmod update [pkg...] [--precise V]`: release locked versions and resolve again.
pub fn update(cli: &Cli, args: &UpdateArgs) -> Result<(), CliError> {
    if args.build.locked() {
        return Err(CliError::usage(
            "`cmod update` changes cmod.lock, so it cannot run with --locked or --frozen",
            None,
        ));
    }
    let precise = match (&args.precise, args.packages.as_slice()) {
        (None, _) => None,
        (Some(p), [one]) => Some((one.clone(), p.clone())),
        (Some(_), _) => {
            return Err(CliError::usage(
                "--precise needs exactly one package",
                Some("run `cmod update <package> --precise <version|rev>`".into()),
            ))
        }
    };
    let policy = if args.packages.is_empty() {
        Update::All
    } else {
        Update::Only(args.packages.iter().cloned().collect())
    };
    let lock_file =
        cmod_evaluator::workspace::root_of(&package_dir(cli)?)?.join(lockfile::LOCK_NAME);
    let old = lockfile::read(&lock_file)?;
    let project = load_with(cli, &args.build, policy, precise)?;
    let graph = &project.eval.packages;
    for name in &args.packages {
        if !graph
            .packages
            .iter()
            .any(|p| &p.name == name && !graph.is_member(p.id))
        {
            let deps: Vec<&str> = graph
                .packages
                .iter()
                .filter(|p| !graph.is_member(p.id))
                .map(|p| p.name.as_str())
                .collect();
            return Err(CliError::usage(
                format!("`{name}` is not a dependency of this workspace"),
                Some(format!("dependencies: {}", deps.join(", "))),
            ));
        }
    }
    let new = crate::commands::realise::prepare_lock(&project, false)?;
    let changed = report_changes(old.as_ref(), &new);
    if changed == 0 {
        status!("{:>12} everything is up to date", "Locked");
    }
    Ok(())
}

/// Print what changed between the `old` lock and the `new` one (added, updated and
/// removed packages); how many did.
fn report_changes(
    old: Option<&cmod_schema::lock::Lockfile>,
    new: &cmod_schema::lock::Lockfile,
) -> usize {
    let before: BTreeMap<&str, (&str, &str)> = old
        .map(|l| {
            l.packages
                .iter()
                .map(|p| (p.name.as_str(), (p.version.as_str(), p.source.as_str())))
                .collect()
        })
        .unwrap_or_default();
    let mut changed = 0;
    for p in &new.packages {
        match before.get(p.name.as_str()) {
            None => status!("{:>12} {} v{} ({})", "Adding", p.name, p.version, p.source),
            Some((v, s)) if *s != p.source => status!(
                "{:>12} {} v{v} -> v{} ({})",
                "Updating",
                p.name,
                p.version,
                p.source
            ),
            Some(_) => continue,
        }
        changed += 1;
    }
    for (name, (v, _)) in &before {
        if !new.packages.iter().any(|p| p.name == *name) {
            status!("{:>12} {name} v{v}", "Removing");
            changed += 1;
        }
    }
    changed
}

/// `cmod fetch`: resolve every dependency and put its tree in the store (for later
/// `--offline` builds), updating cmod.lock unless `--locked`.
pub fn fetch(cli: &Cli, build: &crate::cli::BuildOpts) -> Result<(), CliError> {
    let project = load(cli, build)?;
    crate::commands::realise::prepare_lock(&project, build.locked())?;
    let git = project
        .eval
        .packages
        .packages
        .iter()
        .filter(|p| matches!(p.source, PackageSource::Git(_)))
        .count();
    let sources = project.derived()?.sources.len();
    project.add_sources()?;
    status!(
        "{:>12} {git} git package(s) and {sources} source file(s) are in the store",
        "Fetched"
    );
    Ok(())
}

fn manifest_document(cli: &Cli) -> Result<(std::path::PathBuf, String, DocumentMut), CliError> {
    let path = package_dir(cli)?.join(MANIFEST_NAME);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::usage(format!("cannot read `{}`: {e}", path.display()), None))?;
    // Parse with cmod first, so a broken manifest gets its located error.
    let parsed = ManifestFile::parse(&path, text.clone())?;
    if parsed.manifest.package.is_none() {
        return Err(CliError::usage(
            format!(
                "`{}` is a workspace without a [package]",
                display_path(&path)
            ),
            Some("run the command in a member's directory (or give --manifest-path)".into()),
        ));
    }
    let doc = text
        .parse::<DocumentMut>()
        .map_err(|e| CliError::usage(format!("cannot edit `{}`: {e}", path.display()), None))?;
    Ok((path, text, doc))
}

fn save(path: &std::path::Path, original: &str, doc: &DocumentMut) -> Result<(), CliError> {
    let mut text = doc.to_string();
    if original.ends_with('\n') && !text.ends_with('\n') {
        text.push('\n');
    }
    // Never write a manifest cmod itself would reject.
    if let Err(e) = ManifestFile::parse(path, text.clone()) {
        return Err(CliError::Internal(format!(
            "the edited manifest would not parse ({e}); `{}` is unchanged",
            path.display()
        )));
    }
    if text != original {
        cmod_evaluator::cache_io::replace_file(path, text.as_bytes()).map_err(|e| {
            CliError::usage(format!("cannot write `{}`: {e}", path.display()), None)
        })?;
    }
    Ok(())
}

fn dependency_table(doc: &mut DocumentMut, dev: bool) -> Result<&mut Table, CliError> {
    let key = if dev {
        "dev-dependencies"
    } else {
        "dependencies"
    };
    if !doc.contains_key(key) {
        doc.insert(key, Item::Table(Table::new()));
    }
    // An inline `dependencies = { ... }` becomes a table; its entries are kept.
    if let Some(inline) = doc[key].as_inline_table().cloned() {
        doc.insert(key, Item::Table(inline.into_table()));
    }
    doc[key]
        .as_table_mut()
        .ok_or_else(|| CliError::usage(format!("[{key}] in cmod.toml is not a table"), None))
}

/// `cmod add <name> (--git URL [--tag|--rev|--branch|--version] | --path P [--version])`.
pub fn add(cli: &Cli, args: &AddArgs) -> Result<(), CliError> {
    PackageName::new(&args.name).map_err(|e| CliError::usage(e, None))?;
    let pins: Vec<(&str, &String)> = [
        ("tag", &args.tag),
        ("rev", &args.rev),
        ("branch", &args.branch),
        ("version", &args.version),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    .collect();
    if let Some(v) = &args.version {
        v.parse::<semver::VersionReq>().map_err(|e| {
            CliError::usage(
                format!("`{v}` is not a version requirement: {e}"),
                Some("e.g. `^1.2`".into()),
            )
        })?;
    }
    let mut spec = InlineTable::new();
    match (&args.git, &args.path) {
        (Some(url), None) => {
            spec.insert("git", Value::from(url.as_str()));
            match pins.as_slice() {
                [(k, v)] => {
                    spec.insert(*k, Value::from(v.as_str()));
                }
                [] => {
                    return Err(CliError::usage(
                        "a git dependency needs a pin",
                        Some("add one of --tag, --rev, --branch or --version".into()),
                    ))
                }
                _ => {
                    return Err(CliError::usage(
                        "give only one of --tag, --rev, --branch and --version",
                        None,
                    ))
                }
            }
        }
        // Like Cargo, a path dependency may state a version requirement, which the
        // package found there must satisfy.
        (None, Some(path)) if pins.iter().all(|(k, _)| *k == "version") => {
            spec.insert("path", Value::from(path.as_str()));
            if let Some(v) = &args.version {
                spec.insert("version", Value::from(v.as_str()));
            }
        }
        (None, Some(_)) => {
            return Err(CliError::usage(
                "--tag, --rev and --branch only apply to --git",
                None,
            ))
        }
        (None, None) => inherit_from_workspace(cli, args, &pins, &mut spec)?,
        _ => {
            return Err(CliError::usage(
                "give exactly one of --git URL and --path DIR",
                None,
            ))
        }
    }
    let (path, original, mut doc) = manifest_document(cli)?;
    let table = dependency_table(&mut doc, args.dev)?;
    let verb = if table.contains_key(&args.name) {
        "Replacing"
    } else {
        "Adding"
    };
    table.insert(&args.name, Item::Value(Value::InlineTable(spec)));
    save(&path, &original, &doc)?;
    errln!("{verb:>12} `{}` in {}", args.name, display_path(&path));
    Ok(())
}

/// `cmod add NAME` without --git or --path in a workspace member: `{ workspace = true }`
/// when the workspace root's [workspace.dependencies] has NAME; otherwise an error that
/// says exactly what to write (and where).
fn inherit_from_workspace(
    cli: &Cli,
    args: &AddArgs,
    pins: &[(&str, &String)],
    spec: &mut InlineTable,
) -> Result<(), CliError> {
    let usage =
        |help: String| CliError::usage("give exactly one of --git URL and --path DIR", Some(help));
    let dir = package_dir(cli)?;
    let dir = dir
        .canonicalize()
        .map_err(|e| CliError::io("open the package directory", &dir, e))?;
    let Some(ws) = cmod_evaluator::workspace::find(&dir)? else {
        return Err(usage(
            "e.g. `--git https://host/repo.git --tag v1.0.0` or `--path ../lib`".into(),
        ));
    };
    let root_manifest = display_path(&ws.file.path);
    let inherited = ws
        .file
        .manifest
        .workspace
        .as_ref()
        .is_some_and(|w| w.get_ref().dependencies.contains_key(&args.name));
    if inherited {
        if let Some((flag, _)) = pins.first() {
            return Err(CliError::usage(
                format!(
                    "`{}` comes from [workspace.dependencies] of {root_manifest}",
                    args.name
                ),
                Some(format!("change its --{flag} there, not in the member")),
            ));
        }
        spec.insert("workspace", Value::from(true));
        return Ok(());
    }
    let member = ws.members.iter().find(|m| {
        ManifestFile::load(&m.join("cmod.toml"))
            .ok()
            .and_then(|f| f.manifest.package.map(|p| p.name.get_ref().to_string()))
            .is_some_and(|n| n == args.name)
    });
    Err(match member {
        Some(m) => {
            let from_root = m.strip_prefix(&ws.root).unwrap_or(m).display().to_string();
            CliError::usage(
                format!(
                    "`{}` is a member of the workspace, but not in [workspace.dependencies] of {root_manifest}",
                    args.name
                ),
                Some(format!(
                    "add `{} = {{ path = \"{from_root}\" }}` under [workspace.dependencies] there and run `cmod add {}` again (it writes `{{ workspace = true }}`), or give --path",
                    args.name, args.name
                )),
            )
        }
        None => usage(format!(
            "or list `{}` under [workspace.dependencies] of {root_manifest} to inherit it with `{{ workspace = true }}`",
            args.name
        )),
    })
}

/// `cmod remove <name>`.
pub fn remove(cli: &Cli, args: &RemoveArgs) -> Result<(), CliError> {
    let (path, original, mut doc) = manifest_document(cli)?;
    let key = if args.dev {
        "dev-dependencies"
    } else {
        "dependencies"
    };
    let removed = doc
        .get_mut(key)
        .and_then(|t| t.as_table_like_mut())
        .and_then(|t| t.remove(&args.name));
    if removed.is_none() {
        let existing: Vec<String> = doc
            .get(key)
            .and_then(|t| t.as_table_like())
            .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
            .unwrap_or_default();
        return Err(CliError::usage(
            format!(
                "`{}` is not in [{key}] of {}",
                args.name,
                display_path(&path)
            ),
            Some(if existing.is_empty() {
                format!("[{key}] is empty")
            } else {
                format!("it has: {}", existing.join(", "))
            }),
        ));
    }
    // The last dependency takes its (now empty) table along, unless the table carries a
    // comment of the user's (`# Dependencies go here.` above its header).
    let commented = |raw: Option<&toml_edit::RawString>| {
        raw.and_then(toml_edit::RawString::as_str)
            .is_some_and(|text| text.contains('#'))
    };
    if doc.get(key).and_then(Item::as_table).is_some_and(|t| {
        t.is_empty() && !commented(t.decor().prefix()) && !commented(t.decor().suffix())
    }) {
        doc.remove(key);
    }
    save(&path, &original, &doc)?;
    status!(
        "{:>12} `{}` from {}",
        "Removing",
        args.name,
        display_path(&path)
    );
    Ok(())
}

fn label(graph: &PackageGraph, id: PackageId) -> String {
    let p = &graph.packages[id];
    let origin = match &p.source {
        PackageSource::Member => format!("({})", display_path(&p.root)),
        PackageSource::Path => format!("(path {})", display_path(&p.root)),
        PackageSource::Git(g) => format!(
            "({} {} @ {})",
            g.url,
            g.reference.query(),
            &g.commit[..g.commit.len().min(10)]
        ),
    };
    format!("{} v{} {origin}", p.name, p.version)
}

/// `cmod tree [-i PKG] [--depth N] [--duplicates]`.
pub fn tree(cli: &Cli, args: &TreeArgs) -> Result<(), CliError> {
    let project = crate::project::load_to_read(cli, &args.build)?;
    let graph = &project.eval.packages;
    let dependents = dependents_of(graph);
    if args.duplicates {
        print_duplicates(graph, &dependents);
        return Ok(());
    }
    let roots: Vec<PackageId> = match &args.invert {
        Some(name) => vec![graph
            .packages
            .iter()
            .find(|p| &p.name == name)
            .map(|p| p.id)
            .ok_or_else(|| {
                CliError::usage(format!("no package named `{name}` in the graph"), None)
            })?],
        None => graph.selected.clone(),
    };
    let children = |id: PackageId| -> Vec<PackageId> {
        if args.invert.is_some() {
            dependents.get(&id).cloned().unwrap_or_default()
        } else {
            graph.packages[id].deps.iter().map(|d| d.package).collect()
        }
    };
    let mut printed = BTreeSet::new();
    for r in roots {
        outln!("{}", label(graph, r));
        printed.insert(r);
        let mut tree = Tree {
            max: args.depth,
            children: &children,
            graph,
            printed: &mut printed,
        };
        tree.walk(r, "", 0);
        // A member's dev-dependencies, under their own heading (as `cargo tree` shows them).
        let dev = &graph.packages[r].dev_deps;
        if args.invert.is_none() && !dev.is_empty() && args.depth.is_none_or(|d| d > 0) {
            outln!("[dev-dependencies]");
            let dev_ids: Vec<PackageId> = dev.iter().map(|d| d.package).collect();
            let only_dev = |id: PackageId| {
                if id == r {
                    dev_ids.clone()
                } else {
                    children(id)
                }
            };
            tree.children = &only_dev;
            tree.walk(r, "", 0);
        }
    }
    Ok(())
}

/// Who depends on each package (normal and dev dependencies), each dependent once.
fn dependents_of(graph: &PackageGraph) -> BTreeMap<PackageId, Vec<PackageId>> {
    let mut dependents: BTreeMap<PackageId, Vec<PackageId>> = BTreeMap::new();
    for p in &graph.packages {
        for d in p.deps.iter().chain(&p.dev_deps) {
            let by = dependents.entry(d.package).or_default();
            if !by.contains(&p.id) {
                by.push(p.id);
            }
        }
    }
    dependents
}

/// `tree --duplicates`: every package required by more than one package, with them.
fn print_duplicates(graph: &PackageGraph, dependents: &BTreeMap<PackageId, Vec<PackageId>>) {
    let mut any = false;
    for (id, by) in dependents {
        if by.len() > 1 {
            any = true;
            let names: Vec<&str> = by
                .iter()
                .map(|&b| graph.packages[b].name.as_str())
                .collect();
            outln!("{}\n  required by {}", label(graph, *id), names.join(", "));
        }
    }
    if !any {
        errln!("no package is required by more than one package");
    }
}

/// Printing a package tree: each package's children once, later mentions marked `(*)`.
struct Tree<'a, 'p> {
    max: Option<usize>,
    children: &'a dyn Fn(PackageId) -> Vec<PackageId>,
    graph: &'a PackageGraph,
    printed: &'p mut BTreeSet<PackageId>,
}

impl Tree<'_, '_> {
    /// Print the children of `id` at `depth`, each line after `prefix`.
    fn walk(&mut self, id: PackageId, prefix: &str, depth: usize) {
        let kids = (self.children)(id);
        if self.max.is_some_and(|m| depth >= m) {
            return;
        }
        for (i, k) in kids.iter().enumerate() {
            let last = i + 1 == kids.len();
            let seen = !self.printed.insert(*k);
            outln!(
                "{prefix}{}{}{}",
                if last { "└── " } else { "├── " },
                label(self.graph, *k),
                if seen && !(self.children)(*k).is_empty() {
                    " (*)"
                } else {
                    ""
                }
            );
            if !seen {
                let next = format!("{prefix}{}", if last { "    " } else { "│   " });
                self.walk(*k, &next, depth + 1);
            }
        }
    }
}
