//! `cmod why-depends A B` (the chain of references from A to B, with where each
//! reference occurs) and `cmod path-info -S` (closure sizes).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::Read;
use std::path::Path;

use cmod_schema::StorePath;
use cmod_store::Store;
use serde_json::json;

use crate::cli::{BuildOpts, Cli, PathInfoArgs};
use crate::commands::realise::outputs_of;
use crate::diagnostic::CliError;
use crate::project::{find_package_dir, load_to_read, open_store_to_read};

/// Store path arguments (a store path, a path into the store, an out-link such as
/// `result`) or target names (resolved as `realise` resolves them: `hello` is the binary
/// `hello` before the library of package `hello`) to store paths: the targets' realised
/// outputs. The package is evaluated once, and only if a name needs it.
pub(crate) fn resolve_all(
    cli: &Cli,
    store: &Store,
    whats: &[String],
    build: &BuildOpts,
) -> Result<Vec<StorePath>, CliError> {
    let in_package = find_package_dir(cli)?.is_some();
    let mut project = None;
    let mut out = Vec::with_capacity(whats.len());
    for what in whats {
        let on_disk = Path::new(what).symlink_metadata().is_ok();
        // `member/target` is a name; `/...`, `./...` and `../...` are paths.
        let path_like = what.starts_with(['/', '.']) || StorePath::from_path_str(what).is_ok();
        if path_like || !in_package {
            out.push(store.parse_path(what)?);
            continue;
        }
        if project.is_none() {
            project = Some(load_to_read(cli, build)?);
        }
        let Some(project) = project.as_ref() else {
            continue;
        };
        let selected = match project.select(std::slice::from_ref(what)) {
            Ok(s) => s,
            // Not a target, but a file here (an out-link): follow it.
            Err(_) if on_disk => {
                out.push(store.parse_path(what)?);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let targets = project.targets(&selected)?;
        out.extend(outputs_of(project, &targets)?.into_values());
    }
    Ok(out)
}

/// Where (file and offset) the hash part of `needle` occurs inside the tree at `root`.
fn find_reference(root: &Path, rel: &str, needle: &[u8]) -> Option<String> {
    let meta = std::fs::symlink_metadata(root).ok()?;
    if meta.file_type().is_symlink() {
        let t = std::fs::read_link(root).ok()?;
        return t
            .as_os_str()
            .as_encoded_bytes()
            .windows(needle.len())
            .any(|w| w == needle)
            .then(|| format!("{rel} (symlink to {})", t.display()));
    }
    if meta.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(root)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        names.sort();
        return names.iter().find_map(|n| {
            let child = if rel.is_empty() {
                n.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", n.to_string_lossy())
            };
            find_reference(&root.join(n), &child, needle)
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(root)
        .ok()?
        .read_to_end(&mut bytes)
        .ok()?;
    let at = bytes.windows(needle.len()).position(|w| w == needle)?;
    Some(format!(
        "{} at byte {at}",
        if rel.is_empty() { "(the file)" } else { rel }
    ))
}

pub fn why_depends(cli: &Cli, a: &str, b: &str, build: &BuildOpts) -> Result<(), CliError> {
    let store = open_store_to_read(cli)?;
    let resolved = resolve_all(cli, &store, &[a.to_string(), b.to_string()], build)?;
    let [from, to] = <[StorePath; 2]>::try_from(resolved)
        .map_err(|_| CliError::Internal("two arguments resolved to other than two paths".into()))?;
    let mut parent: HashMap<StorePath, StorePath> = HashMap::new();
    let mut seen = BTreeSet::from([from.clone()]);
    let mut todo = VecDeque::from([from.clone()]);
    while let Some(p) = todo.pop_front() {
        if p == to {
            break;
        }
        for r in store.path_info(&p)?.references {
            if seen.insert(r.clone()) {
                parent.insert(r.clone(), p.clone());
                todo.push_back(r);
            }
        }
    }
    if !seen.contains(&to) {
        outln!(
            "{} does not depend on {}",
            store.path_of(&from).display(),
            store.path_of(&to).display()
        );
        return Ok(());
    }
    let mut chain = vec![to.clone()];
    while let Some(p) = parent.get(&chain[chain.len() - 1]) {
        chain.push(p.clone());
    }
    chain.reverse();
    outln!("{}", store.path_of(&chain[0]).display());
    for (i, w) in chain.windows(2).enumerate() {
        let indent = "  ".repeat(i + 1);
        let place = find_reference(&store.path_of(&w[0]), "", w[1].hash_part().as_bytes())
            .map(|s| format!("  [{s}]"))
            .unwrap_or_default();
        outln!("{indent}└── {}{place}", store.path_of(&w[1]).display());
    }
    Ok(())
}

/// `path-info` with closure sizes (`-S`).
pub fn path_info(cli: &Cli, args: &PathInfoArgs) -> Result<(), CliError> {
    let store = open_store_to_read(cli)?;
    let mut paths = if args.paths.is_empty() {
        let project = load_to_read(cli, &args.build)?;
        let derived = project.derived()?;
        derived
            .targets
            .iter()
            .filter_map(|t| {
                project
                    .store
                    .drv_outputs(&t.drv)
                    .and_then(|r| r.outputs.get(&t.output).cloned())
            })
            .filter(|p| store.is_valid(p))
            .collect()
    } else {
        resolve_all(cli, &store, &args.paths, &args.build)?
    };
    if args.recursive {
        paths = cmod_store::copy::closure(&store, &paths)?;
    }
    let mut rows = Vec::new();
    for p in &paths {
        let info = store.path_info(p)?;
        let mut closure_size = 0;
        for q in cmod_store::copy::closure(&store, std::slice::from_ref(p))? {
            closure_size += store.path_info(&q)?.size;
        }
        rows.push((info, closure_size));
    }
    if args.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(i, c)| {
                let mut v = serde_json::to_value(i).unwrap_or_default();
                v["location"] = json!(store.path_of(&i.path));
                v["closure_size"] = json!(c);
                v
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        let size = |n| crate::output::size_for(n, args.human_readable);
        for (i, c) in rows {
            let loc = store.path_of(&i.path);
            if args.size {
                outln!("{}\t{}\t{}", loc.display(), size(i.size), size(c));
            } else {
                outln!("{}\t{}", loc.display(), size(c));
            }
        }
    }
    Ok(())
}
