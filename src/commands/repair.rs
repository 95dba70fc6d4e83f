//! `cmod store repair [paths|targets]` and `cmod store verify --repair`: find damaged
//! registrations (unreadable metadata, missing or corrupt contents), forget them, and
//! rebuild (in a package, by realising its targets) or re-substitute (from the
//! configured substituters) them; report what was repaired and what could not be.

use cmod_schema::StorePath;
use cmod_store::realise::needed;
use cmod_store::substitute::Sharing;
use cmod_store::verify::Damage;
use cmod_store::Store;

use crate::cli::{Cli, RepairArgs};
use crate::commands::build::build_outputs;
use crate::commands::share::looks_like_path;
use crate::diagnostic::CliError;
use crate::progress::Progress;
use crate::project::{find_package_dir, load, open_store, Project};

pub fn repair(cli: &Cli, args: &RepairArgs) -> Result<(), CliError> {
    let paths_only = !args.what.is_empty() && args.what.iter().all(|w| looks_like_path(w));
    // In a package its targets rebuild what they produce, even when store paths are
    // named (a package that no longer evaluates can still have paths re-substituted).
    let project = match find_package_dir(cli)? {
        Some(_) => match load(cli, &args.build) {
            Ok(p) => Some(p),
            Err(e) if paths_only => {
                err!("{}", e.render());
                errln!("warning: the package here does not evaluate: only substituters can restore the paths");
                None
            }
            Err(e) => return Err(e),
        },
        None => None,
    };
    let store = match &project {
        Some(p) => p.store.clone(),
        None => open_store(cli)?,
    };
    let contents = !args.no_contents;
    let (checked, damaged) = match (&project, paths_only) {
        (_, true) => paths_damage(&store, &args.what, contents)?,
        (Some(p), false) => {
            let paths = project_paths(p, &args.what)?;
            let damaged = paths
                .iter()
                .filter_map(|x| store.damage_of(x, contents))
                .collect();
            (paths.len(), damaged)
        }
        (None, false) => {
            let r = store.verify(contents)?;
            (r.checked, r.damaged)
        }
    };
    let sharing = cli.sharing.as_deref();
    repair_damage(&store, sharing, project.as_ref(), args, (checked, &damaged))
}

/// Forget `damaged` (of `checked` paths), then rebuild what `project` produces and
/// re-substitute the rest from `sharing`'s substituters; an error listing what could
/// not be repaired.
pub fn repair_damage(
    store: &Store,
    sharing: Option<&Sharing>,
    project: Option<&Project>,
    args: &RepairArgs,
    (checked, damaged): (usize, &[Damage]),
) -> Result<(), CliError> {
    if damaged.is_empty() {
        status!("{:>12} {checked} path(s): nothing to repair", "Checked");
        return Ok(());
    }
    for d in damaged {
        // What is damaged is news even under -q.
        errln!("{:>12} {}: {}", "Damaged", d.describe(store), d.problem);
    }
    store.invalidate_damaged(damaged)?;
    if let Some(project) = project {
        let names: Vec<String> = args
            .what
            .iter()
            .filter(|w| !looks_like_path(w))
            .cloned()
            .collect();
        let targets = project.targets_named(&names)?;
        let progress = Progress::for_run(&args.run, store.store_dir());
        progress.evaluated(
            &project.eval.packages.workspace_root,
            project.eval.stats.scan_time,
        );
        build_outputs(project, &targets, &args.run, &progress)?;
    }
    if let Some(sharing) = sharing {
        resubstitute(store, sharing, damaged)?;
    }
    let left: Vec<&Damage> = damaged
        .iter()
        .filter(|d| !d.path.as_ref().is_some_and(|p| store.is_valid(p)))
        .collect();
    let repaired = damaged.len() - left.len();
    status!(
        "{:>12} {repaired} of {} damaged path(s)",
        "Repaired",
        damaged.len()
    );
    if left.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = left.iter().map(|d| d.describe(store)).collect();
    Err(CliError::Integrity {
        message: format!(
            "{} damaged path(s) could not be repaired and are now forgotten:\n  {}",
            left.len(),
            list.join("\n  ")
        ),
        help: Some(if project.is_some() {
            "no target of this package produces them and no substituter has them; a build that needs them rebuilds them, or run `cmod store repair` in the package that does".into()
        } else {
            "outside a package only substituters can restore paths; run `cmod store repair` in the package that builds them, or configure a substituter that has them".into()
        }),
    })
}

/// The damage of the store paths named in `what`.
fn paths_damage(
    store: &Store,
    what: &[String],
    contents: bool,
) -> Result<(usize, Vec<Damage>), CliError> {
    let mut damaged = Vec::new();
    for w in what {
        let p = store.parse_path(w)?;
        if !store.is_registered(&p) {
            return Err(CliError::usage(
                format!(
                    "`{w}` is not registered in the store at `{}`",
                    store.root().display()
                ),
                Some("name a path the store holds (`cmod path-info` lists them)".into()),
            ));
        }
        damaged.extend(store.damage_of(&p, contents));
    }
    Ok((what.len(), damaged))
}

/// Every store path realising `names` (all targets when empty) uses: each needed
/// derivation, its source inputs and its latest realised outputs.
fn project_paths(project: &Project, names: &[String]) -> Result<Vec<StorePath>, CliError> {
    let targets = project.targets_named(names)?;
    let derived = project.derived()?;
    let drvs: Vec<StorePath> = targets.iter().map(|t| t.drv.clone()).collect();
    let order = needed(&derived.derivations, &drvs)?;
    let mut paths = std::collections::BTreeSet::new();
    for d in order {
        if let Some(drv) = derived.derivations.get(&d) {
            paths.extend(drv.input_paths().into_iter().cloned());
        }
        if let Some(rec) = project.store.drv_outputs(&d) {
            paths.extend(rec.outputs.into_values());
        }
        paths.insert(d);
    }
    Ok(paths
        .into_iter()
        .filter(|p| project.store.is_registered(p))
        .collect())
}

/// Fetch what is still missing of `damaged` from `sharing`'s substituters.
fn resubstitute(store: &Store, sharing: &Sharing, damaged: &[Damage]) -> Result<(), CliError> {
    let paths: Vec<StorePath> = damaged.iter().filter_map(|d| d.path.clone()).collect();
    let r = cmod_store::substitute::refetch(store, sharing, &paths)?;
    for (p, url) in r.fetched {
        status!(
            "{:>12} {} from {url}",
            "Fetched",
            store.path_of(&p).display()
        );
    }
    for reason in r.untrusted {
        errln!("warning: {reason}; not fetched");
    }
    Ok(())
}

/// `cmod store verify --repair`: verify the whole store (re-hashing contents unless
/// `no_contents`) and repair what is damaged.
pub fn verify_and_repair(
    cli: &Cli,
    no_contents: bool,
    run: &crate::cli::RunOpts,
) -> Result<(), CliError> {
    let args = RepairArgs {
        what: Vec::new(),
        no_contents,
        build: Default::default(),
        run: run.clone(),
    };
    // In a package its targets rebuild what they produce.
    let project = match find_package_dir(cli)? {
        Some(_) => Some(load(cli, &args.build)?),
        None => None,
    };
    let store = match &project {
        Some(p) => p.store.clone(),
        None => open_store(cli)?,
    };
    let report = store.verify(!no_contents)?;
    let sharing = cli.sharing.as_deref();
    repair_damage(
        &store,
        sharing,
        project.as_ref(),
        &args,
        (report.checked, &report.damaged),
    )
}
