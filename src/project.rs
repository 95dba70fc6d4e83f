//! What most commands share: finding the package, opening the store, evaluating, adding
//! sources, and choosing targets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cmod_evaluator::deps::{Fetcher, Network, TreeStore, Update};
use cmod_evaluator::derive::{Target, TargetKind};
use cmod_evaluator::flags::ProfileName;
use cmod_evaluator::git::{GitCache, Rewrites};
use cmod_evaluator::lockfile::{self, LOCK_NAME};
use cmod_evaluator::{evaluate, EvalOptions, Evaluation};
use cmod_schema::{ContentHash, StorePath};
use cmod_store::substitute::Sharing;
use cmod_store::Store;

use crate::cli::{BuildOpts, Cli};
use crate::diagnostic::{render_diagnostic, CliError};

/// An evaluated package and its store.
pub struct Project {
    pub store: Store,
    pub eval: Evaluation,
    pub profile: ProfileName,
    /// Where this command substitutes from and what it signs with (see `Cli::sharing`).
    pub sharing: Option<Arc<Sharing>>,
    /// Where git dependencies are fetched from (see `Cli::git_rewrites`).
    pub git_rewrites: Rewrites,
}

/// The directory of the package: `--manifest-path`'s, or the nearest one upwards that
/// has a `cmod.toml`.
pub fn package_dir(cli: &Cli) -> Result<PathBuf, CliError> {
    find_package_dir(cli)?.ok_or_else(|| {
        let cwd = std::env::current_dir().unwrap_or_default();
        CliError::usage(
            format!(
                "could not find `cmod.toml` in `{}` or any parent directory",
                cwd.display()
            ),
            Some("run `cmod init` to create a package here, or pass --manifest-path".into()),
        )
    })
}

/// [`package_dir`], or `None` outside any package (and without --manifest-path).
pub fn find_package_dir(cli: &Cli) -> Result<Option<PathBuf>, CliError> {
    if let Some(p) = &cli.manifest_path {
        let dir = if p.file_name().is_some_and(|n| n == "cmod.toml") {
            p.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            p.clone()
        };
        return Ok(Some(if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        }));
    }
    let cwd = std::env::current_dir()
        .map_err(|e| {
            CliError::usage(
                format!("cannot read the current directory: {e}"),
                Some("it may have been deleted or made unreadable: change to an existing directory, or pass --manifest-path".into()),
            )
        })?;
    Ok(cwd
        .ancestors()
        .find(|d| d.join("cmod.toml").is_file())
        .map(Path::to_path_buf))
}

/// Whether a command writes the store or only reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Write,
    /// Read only: the store may be read-only or another user's (caches are then not
    /// updated).
    Read,
}

fn store_root(cli: &Cli) -> Result<PathBuf, CliError> {
    Ok(match &cli.store {
        Some(dir) => dir.clone(),
        None => Store::default_root()?,
    })
}

/// `CMOD_FSYNC=0` (or `off`, `false`, `no`): no flushing to stable storage, for throwaway
/// stores (CI caches rebuilt anyway); a power loss may then damage registered paths.
fn apply_fsync_setting(mut store: Store) -> Store {
    if std::env::var("CMOD_FSYNC").is_ok_and(|v| matches!(v.as_str(), "0" | "off" | "false" | "no"))
    {
        store.set_durable(false);
    }
    store
}

/// Open the store for a command that writes to it: one that cannot be written here is
/// an error (exit 2) naming the directory and the remedy.
pub fn open_store(cli: &Cli) -> Result<Store, CliError> {
    Ok(apply_fsync_setting(Store::open(&store_root(cli)?)?))
}

/// Open the store for a command that only reads it (read-only stores are fine).
pub fn open_store_to_read(cli: &Cli) -> Result<Store, CliError> {
    Ok(apply_fsync_setting(Store::open_for_queries(&store_root(
        cli,
    )?)?))
}

/// The store as the evaluator sees it: where source trees are found and added.
struct StoreTrees<'a>(&'a Store);

impl TreeStore for StoreTrees<'_> {
    fn find(&self, path: &StorePath) -> Option<PathBuf> {
        self.0.is_valid(path).then(|| self.0.path_of(path))
    }

    fn add(&self, dir: &Path, path: &StorePath, hash: &ContentHash) -> Result<PathBuf, String> {
        self.0
            .add_source(dir, path, hash)
            .map_err(|e| e.to_string())?;
        Ok(self.0.path_of(path))
    }
}

/// Evaluate the package, printing warnings to stderr.
pub fn load(cli: &Cli, build: &BuildOpts) -> Result<Project, CliError> {
    load_with(cli, build, Update::Nothing, None)
}

/// [`load`] with `sharing` instead of the command line's (`copy` substitutes from the
/// cache it names).
pub fn load_sharing(
    cli: &Cli,
    build: &BuildOpts,
    sharing: Arc<Sharing>,
) -> Result<Project, CliError> {
    let how = Load {
        sharing: Some(sharing),
        ..Load::new(cli)
    };
    evaluate_project(cli, build, how)
}

/// [`load`] for a command that only reads the store ([`open_store_to_read`]).
pub fn load_to_read(cli: &Cli, build: &BuildOpts) -> Result<Project, CliError> {
    let how = Load {
        access: Access::Read,
        ..Load::new(cli)
    };
    evaluate_project(cli, build, how)
}

/// Evaluate the package with its members' `[[test]]` binaries (for `cmod test`).
pub fn load_with_tests(cli: &Cli, build: &BuildOpts) -> Result<Project, CliError> {
    let how = Load {
        with_tests: true,
        ..Load::new(cli)
    };
    evaluate_project(cli, build, how)
}

/// Evaluate, releasing the locked versions of the packages `update` names (for
/// `cmod update`), optionally pinning one to a `precise` version or revision.
pub fn load_with(
    cli: &Cli,
    build: &BuildOpts,
    update: Update,
    precise: Option<(String, String)>,
) -> Result<Project, CliError> {
    let how = Load {
        update,
        precise,
        ..Load::new(cli)
    };
    evaluate_project(cli, build, how)
}

/// How a command evaluates its package.
struct Load {
    update: Update,
    precise: Option<(String, String)>,
    with_tests: bool,
    access: Access,
    sharing: Option<Arc<Sharing>>,
}

impl Load {
    /// Nothing updated, no tests, the store written, the command line's sharing.
    fn new(cli: &Cli) -> Load {
        Load {
            update: Update::Nothing,
            precise: None,
            with_tests: false,
            access: Access::Write,
            sharing: cli.sharing.clone(),
        }
    }
}

fn evaluate_project(cli: &Cli, build: &BuildOpts, how: Load) -> Result<Project, CliError> {
    let Load {
        update,
        precise,
        with_tests,
        access,
        sharing,
    } = how;
    let store = match access {
        Access::Write => open_store(cli)?,
        Access::Read => open_store_to_read(cli)?,
    };
    let dir = package_dir(cli)?;
    let scope = Scope {
        dir: &dir,
        select: build.package.clone(),
        with_tests,
        sharing: sharing.as_ref(),
        git_rewrites: &cli.git_rewrites,
    };
    let eval = evaluate_in(&store, &scope, build, update, precise)?;
    print_warnings(&eval.warnings);
    crate::editor_schema::refresh(&eval.packages);
    Ok(Project {
        store,
        profile: eval.profile,
        eval,
        sharing,
        git_rewrites: cli.git_rewrites.clone(),
    })
}

/// What to evaluate: the package or workspace in `dir`, the members `select`ed (all at
/// the workspace root when empty, else the one in `dir`), with or without their tests.
pub struct Scope<'a> {
    pub dir: &'a Path,
    pub select: Vec<String>,
    pub with_tests: bool,
    /// The substituters the evaluation may take scan results from.
    pub sharing: Option<&'a Arc<Sharing>>,
    /// Where git dependencies are fetched from.
    pub git_rewrites: &'a Rewrites,
}

/// The workspace root of the package in `dir` (the directory holding `cmod.lock`).
pub fn workspace_root(dir: &Path) -> Result<PathBuf, CliError> {
    Ok(cmod_evaluator::workspace::root_of(dir)?)
}

/// Evaluate `scope` with the store's caches and git checkouts, leaving its warnings to
/// the caller.
pub fn evaluate_in(
    store: &Store,
    scope: &Scope<'_>,
    build: &BuildOpts,
    update: Update,
    precise: Option<(String, String)>,
) -> Result<Evaluation, CliError> {
    let opts = EvalOptions {
        profile: if build.release {
            ProfileName::Release
        } else {
            ProfileName::Dev
        },
        cache_dir: Some(store.cache_dir()),
        select: scope.select.clone(),
        with_tests: scope.with_tests,
        scan_source: scope
            .sharing
            .and_then(|s| crate::scan_source::source(build, store, s)),
    };
    let lock_file = workspace_root(scope.dir)?.join(LOCK_NAME);
    let lock = lockfile::read(&lock_file)?;
    let trees = StoreTrees(store);
    let fetcher = Fetcher {
        git: GitCache::new(store.cache_dir().join("git")).with_rewrites(scope.git_rewrites.clone()),
        trees: &trees,
        network: if build.offline() {
            Network::Offline
        } else {
            Network::Online
        },
        lock: lock.as_ref(),
        update,
        precise,
    };
    Ok(evaluate(scope.dir, &opts, Some(&fetcher))?)
}

/// Print evaluation warnings to stderr.
pub fn print_warnings<'a>(warnings: impl IntoIterator<Item = &'a cmod_evaluator::EvalError>) {
    for w in warnings {
        err!(
            "{}",
            render_diagnostic(
                "warning",
                &w.message,
                w.location.as_ref(),
                w.help.as_deref()
            )
        );
    }
}

impl Project {
    /// The derivations (emitted on first use).
    pub fn derived(&self) -> Result<&cmod_evaluator::derive::Derived, CliError> {
        Ok(self.eval.derived()?)
    }

    /// Every source the derivations read: (host file, store path, content hash).
    pub fn sources(&self) -> Result<Vec<(&Path, &StorePath, &ContentHash)>, CliError> {
        Ok(self
            .derived()?
            .sources
            .iter()
            .map(|s| (s.host.as_path(), &s.path, &s.hash))
            .collect())
    }

    /// Copy every source the derivations read into the store.
    pub fn add_sources(&self) -> Result<(), CliError> {
        Ok(self.store.add_sources(&self.sources()?)?)
    }

    /// The targets selected by `names` as (package, target), all of the selected members'
    /// targets when empty — checked without emitting derivations. A name is a target's
    /// name, `member/target`, a member's name (its library), or `lib`; an exact target
    /// name wins over the library aliases.
    pub fn select(&self, names: &[String]) -> Result<Vec<(String, String)>, CliError> {
        let all = self.eval.target_names();
        if names.is_empty() {
            return Ok(all.into_iter().map(|(p, t, _)| (p, t)).collect());
        }
        let known = || {
            all.iter()
                .map(|(p, t, _)| format!("{p}/{t}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = Vec::new();
        for n in names {
            let (pkg, name) = match n.split_once('/') {
                Some((p, t)) => (Some(p), t),
                None => (None, n.as_str()),
            };
            let in_pkg = |p: &str| pkg.is_none_or(|want| want == p);
            let mut found: Vec<&(String, String, TargetKind)> = all
                .iter()
                .filter(|(p, t, _)| in_pkg(p) && t == name)
                .collect();
            if found.is_empty() {
                found = all
                    .iter()
                    .filter(|(p, t, kind)| {
                        in_pkg(p)
                            && *kind == TargetKind::Lib
                            && (name == p || name == "lib" || *t == format!("lib{name}.a"))
                    })
                    .collect();
            }
            match found.as_slice() {
                [(p, t, _)] => out.push((p.clone(), t.clone())),
                [] => {
                    return Err(CliError::usage(
                        format!("no target `{n}`"),
                        Some(format!("the targets are: {}", known())),
                    ))
                }
                many => {
                    let options: Vec<String> =
                        many.iter().map(|(p, t, _)| format!("{p}/{t}")).collect();
                    return Err(CliError::usage(
                        format!("`{n}` names several targets"),
                        Some(format!("say which: {}", options.join(", "))),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// How targets are called in messages and out-link names: `target`, or
    /// `member/target` when the selection spans several members.
    pub fn display_names(selected: &[(String, String)]) -> Vec<String> {
        let qualified = selected
            .iter()
            .map(|(p, _)| p)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1;
        selected
            .iter()
            .map(|(p, t)| {
                if qualified {
                    format!("{p}/{t}")
                } else {
                    t.clone()
                }
            })
            .collect()
    }

    /// [`Project::display_names`] of resolved targets.
    pub fn shown(targets: &[Target]) -> Vec<String> {
        let pairs: Vec<(String, String)> = targets
            .iter()
            .map(|t| (t.package.clone(), t.name.clone()))
            .collect();
        Project::display_names(&pairs)
    }

    /// The store paths of the git checkouts the package graph was loaded from (kept
    /// alive by out-links, so garbage collection never forces a re-fetch).
    pub fn source_trees(&self) -> Vec<StorePath> {
        self.eval
            .packages
            .packages
            .iter()
            .filter_map(|p| match &p.source {
                cmod_evaluator::package::PackageSource::Git(g) => {
                    self.store.parse_path(&g.dir.to_string_lossy()).ok()
                }
                _ => None,
            })
            .collect()
    }

    /// The targets named on the command line, with their derivations.
    pub fn targets_named(&self, names: &[String]) -> Result<Vec<Target>, CliError> {
        self.targets(&self.select(names)?)
    }

    /// The selected targets with their derivations.
    pub fn targets(&self, selected: &[(String, String)]) -> Result<Vec<Target>, CliError> {
        self.targets_where(selected, |_| true)
    }

    /// The selected targets among those `keep` accepts, with their derivations.
    pub fn targets_where(
        &self,
        selected: &[(String, String)],
        keep: impl Fn(&Target) -> bool,
    ) -> Result<Vec<Target>, CliError> {
        let derived = self.derived()?;
        selected
            .iter()
            .map(|(p, n)| {
                derived
                    .targets
                    .iter()
                    .find(|t| keep(t) && &t.package == p && &t.name == n)
                    .cloned()
                    .ok_or_else(|| {
                        CliError::Internal(format!("target `{p}/{n}` has no derivation"))
                    })
            })
            .collect()
    }

    /// The store location of a derivation's realised output, if it was realised.
    pub fn realised_output(&self, t: &Target) -> Option<cmod_schema::StorePath> {
        let rec = self.store.drv_outputs(&t.drv)?;
        rec.outputs
            .get(&t.output)
            .filter(|p| self.store.is_valid(p))
            .cloned()
    }
}
