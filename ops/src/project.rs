//! A package evaluated against a store: finding the package, opening the store,
//! evaluating (with the store's caches, git checkouts and scan substituters), adding
//! sources, and choosing targets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cmod_evaluator::deps::{Fetcher, Network, TreeStore, Update};
use cmod_evaluator::derive::{GeneratorRun, Target, TargetKind};
use cmod_evaluator::flags::ProfileName;
use cmod_evaluator::generate::ProgramOutputs;
use cmod_evaluator::git::{GitCache, Rewrites};
use cmod_evaluator::lockfile::{self, LOCK_NAME};
use cmod_evaluator::{evaluate, EvalOptions, Evaluation};
use cmod_schema::{ContentHash, StorePath};
use cmod_store::substitute::Sharing;
use cmod_store::Store;

use crate::error::OpsError;

/// An evaluated package and its store.
pub struct Project {
    /// The store it is built in.
    pub store: Store,
    /// The evaluation.
    pub eval: Evaluation,
    /// The profile it was evaluated for.
    pub profile: ProfileName,
    /// Where this command substitutes from and what it signs with.
    pub sharing: Option<Arc<Sharing>>,
    /// Where git dependencies are fetched from.
    pub git_rewrites: Rewrites,
}

/// The directory of the package: `manifest_path`'s (a `cmod.toml` or its directory),
/// or the nearest one upwards from the current directory that has a `cmod.toml`.
pub fn package_dir(manifest_path: Option<&Path>) -> Result<PathBuf, OpsError> {
    find_package_dir(manifest_path)?.ok_or_else(|| {
        let cwd = std::env::current_dir().unwrap_or_default();
        OpsError::usage(
            format!(
                "could not find `cmod.toml` in `{}` or any parent directory",
                cwd.display()
            ),
            Some("run `cmod init` to create a package here, or pass --manifest-path".into()),
        )
    })
}

/// [`package_dir`], or `None` outside any package (and without a manifest path).
pub fn find_package_dir(manifest_path: Option<&Path>) -> Result<Option<PathBuf>, OpsError> {
    if let Some(p) = manifest_path {
        let dir = if p.file_name().is_some_and(|n| n == "cmod.toml") {
            p.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            p.to_path_buf()
        };
        return Ok(Some(if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        }));
    }
    let cwd = std::env::current_dir().map_err(|e| {
        OpsError::usage(
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
    /// The store is written (it must be writable here).
    Write,
    /// Read only: the store may be read-only or another user's (caches are then not
    /// updated).
    Read,
}

/// Open the store at `root` (the default store when `None`) for `access`. A store that
/// cannot be written is an error naming the directory and the remedy when `access` is
/// [`Access::Write`].
///
/// `CMOD_FSYNC=0` (or `off`, `false`, `no`): no flushing to stable storage, for
/// throwaway stores (CI caches rebuilt anyway); a power loss may then damage registered
/// paths.
pub fn open_store(root: Option<&Path>, access: Access) -> Result<Store, OpsError> {
    let root = match root {
        Some(dir) => dir.to_path_buf(),
        None => Store::default_root()?,
    };
    let mut store = match access {
        Access::Write => Store::open(&root)?,
        Access::Read => Store::open_for_queries(&root)?,
    };
    if std::env::var("CMOD_FSYNC").is_ok_and(|v| matches!(v.as_str(), "0" | "off" | "false" | "no"))
    {
        store.set_durable(false);
    }
    Ok(store)
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

/// How a package is evaluated.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The release profile (else dev).
    pub release: bool,
    /// No network: git dependencies and scan substituters are not asked.
    pub offline: bool,
    /// The workspace members to evaluate (all at the workspace root when empty, else
    /// the one in the package directory).
    pub select: Vec<String>,
    /// With the members' `[[test]]` binaries.
    pub with_tests: bool,
    /// Which locked versions to release (`cmod update`).
    pub update: Update,
    /// A package to pin to a precise version or revision (`cmod update --precise`).
    pub precise: Option<(String, String)>,
    /// Where scan results may be substituted from, and what is signed with.
    pub sharing: Option<Arc<Sharing>>,
    /// Where git dependencies are fetched from.
    pub git_rewrites: Rewrites,
}

impl Project {
    /// Evaluate the package in `dir` against `store`. Its warnings are in
    /// `eval.warnings`, for the caller to show.
    pub fn load(store: Store, dir: &Path, opts: LoadOptions) -> Result<Project, OpsError> {
        let scope = Scope {
            dir,
            select: opts.select.clone(),
            with_tests: opts.with_tests,
            sharing: opts.sharing.as_ref(),
            git_rewrites: &opts.git_rewrites,
        };
        let how = EvalHow {
            release: opts.release,
            offline: opts.offline,
            update: opts.update.clone(),
            precise: opts.precise.clone(),
        };
        let eval = evaluate_in(&store, &scope, how)?;
        Ok(Project {
            store,
            profile: eval.profile,
            eval,
            sharing: opts.sharing,
            git_rewrites: opts.git_rewrites,
        })
    }
}

/// What to evaluate: the package or workspace in `dir`, the members `select`ed (all at
/// the workspace root when empty, else the one in `dir`), with or without their tests.
pub struct Scope<'a> {
    /// The package directory.
    pub dir: &'a Path,
    /// The members selected.
    pub select: Vec<String>,
    /// With the members' `[[test]]` binaries.
    pub with_tests: bool,
    /// The substituters the evaluation may take scan results from.
    pub sharing: Option<&'a Arc<Sharing>>,
    /// Where git dependencies are fetched from.
    pub git_rewrites: &'a Rewrites,
}

/// How [`evaluate_in`] evaluates: the profile, the network, and which locked versions
/// are released.
#[derive(Debug, Clone)]
pub struct EvalHow {
    /// The release profile (else dev).
    pub release: bool,
    /// No network.
    pub offline: bool,
    /// Which locked versions to release.
    pub update: Update,
    /// A package to pin to a precise version or revision.
    pub precise: Option<(String, String)>,
}

/// The workspace root of the package in `dir` (the directory holding `cmod.lock`).
pub fn workspace_root(dir: &Path) -> Result<PathBuf, OpsError> {
    Ok(cmod_evaluator::workspace::root_of(dir)?)
}

/// Evaluate `scope` with the store's caches and git checkouts, leaving its warnings to
/// the caller. Generators that run a program and have been realised (their run
/// derivation's outputs are recorded in the store and valid) count as run: the
/// evaluation is repeated with their outputs until nothing more is found (see
/// `cmod_evaluator::eval::staged`), so what is still pending has never been built.
pub fn evaluate_in(store: &Store, scope: &Scope<'_>, how: EvalHow) -> Result<Evaluation, OpsError> {
    let mut ran = ProgramOutputs::new();
    loop {
        let eval = evaluate_once(store, scope, how.clone(), &ran)?;
        if eval.pending.is_empty() {
            return Ok(eval);
        }
        let found = realised_generators(store, &eval)?;
        // Only what is new can change the next evaluation (this also ends the loop).
        if found.keys().all(|k| ran.contains_key(k)) {
            return Ok(eval);
        }
        ran.extend(found);
    }
}

/// The outputs of the generators `eval` left pending whose run has been realised, with
/// every output valid.
pub fn realised_generators(store: &Store, eval: &Evaluation) -> Result<ProgramOutputs, OpsError> {
    let mut found = ProgramOutputs::new();
    for run in pending_runs(eval)? {
        let Some(record) = store.drv_outputs(&run.drv) else {
            continue;
        };
        let files: Option<BTreeMap<String, PathBuf>> = run
            .outputs
            .iter()
            .map(|(rel, output)| {
                let path = record.outputs.get(output).filter(|p| store.is_valid(p))?;
                Some((rel.clone(), store.path_of(path)))
            })
            .collect();
        if let Some(files) = files {
            found.insert((run.root.clone(), run.name.clone()), files);
        }
    }
    Ok(found)
}

/// The run derivations of the generators `eval` left pending that it can build (those
/// whose program does not itself wait on a generator).
pub fn pending_runs(eval: &Evaluation) -> Result<Vec<GeneratorRun>, OpsError> {
    if eval.pending.is_empty() {
        return Ok(Vec::new());
    }
    Ok(eval
        .derived()?
        .generators
        .iter()
        .filter(|r| !r.ran)
        .cloned()
        .collect())
}

/// One evaluation of `scope`, with the generators of `ran` counted as run.
fn evaluate_once(
    store: &Store,
    scope: &Scope<'_>,
    how: EvalHow,
    ran: &ProgramOutputs,
) -> Result<Evaluation, OpsError> {
    let opts = EvalOptions {
        profile: if how.release {
            ProfileName::Release
        } else {
            ProfileName::Dev
        },
        cache_dir: Some(store.cache_dir()),
        select: scope.select.clone(),
        with_tests: scope.with_tests,
        scan_source: scope
            .sharing
            .and_then(|s| crate::scan_source::source(how.offline, store, s)),
        programs_ran: ran.clone(),
    };
    let lock_file = workspace_root(scope.dir)?.join(LOCK_NAME);
    let lock = lockfile::read(&lock_file)?;
    let trees = StoreTrees(store);
    let fetcher = Fetcher {
        git: GitCache::new(store.cache_dir().join("git")).with_rewrites(scope.git_rewrites.clone()),
        trees: &trees,
        network: if how.offline {
            Network::Offline
        } else {
            Network::Online
        },
        lock: lock.as_ref(),
        update: how.update,
        precise: how.precise,
    };
    Ok(evaluate(scope.dir, &opts, Some(&fetcher))?)
}

impl Project {
    /// What this evaluation could not evaluate yet, for a person: which generators have
    /// not run and which targets wait on them; `None` when nothing is pending.
    pub fn pending_note(&self) -> Option<String> {
        let pending = &self.eval.pending;
        if pending.is_empty() {
            return None;
        }
        let list = |items: &[(String, String)]| {
            items
                .iter()
                .map(|(p, n)| format!("`{p}/{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut note = format!(
            "generator(s) {} have not run: their outputs are not scanned yet",
            list(&pending.generators)
        );
        if !pending.targets.is_empty() {
            note.push_str(&format!(
                ", and target(s) {} are pending until they have (`cmod realise` runs them first)",
                list(&pending.targets)
            ));
        }
        Some(note)
    }

    /// The derivations (emitted on first use).
    pub fn derived(&self) -> Result<&cmod_evaluator::derive::Derived, OpsError> {
        Ok(self.eval.derived()?)
    }

    /// Every source the derivations read: (host file, store path, content hash).
    pub fn sources(&self) -> Result<Vec<(&Path, &StorePath, &ContentHash)>, OpsError> {
        Ok(self
            .derived()?
            .sources
            .iter()
            .map(|s| (s.host.as_path(), &s.path, &s.hash))
            .collect())
    }

    /// Copy every source the derivations read into the store.
    pub fn add_sources(&self) -> Result<(), OpsError> {
        self.store.add_sources(&self.sources()?)?;
        Ok(())
    }

    /// The targets selected by `names` as (package, target), all of the selected members'
    /// targets when empty — checked without emitting derivations. A name is a target's
    /// name, `member/target`, a member's name (its library), or `lib`; an exact target
    /// name wins over the library aliases.
    pub fn select(&self, names: &[String]) -> Result<Vec<(String, String)>, OpsError> {
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
                    let pending = &self.eval.pending.targets;
                    let waiting = pending
                        .iter()
                        .find(|(p, t)| in_pkg(p) && t == name)
                        .or_else(|| {
                            pending.iter().find(|(p, t)| {
                                in_pkg(p) && (*p == name || *t == format!("lib{name}.a"))
                            })
                        });
                    if let Some((p, t)) = waiting {
                        return Err(OpsError::usage(
                            format!("target `{p}/{t}` waits on generators that have not run"),
                            Some(self.pending_note().unwrap_or_default()),
                        ));
                    }
                    return Err(OpsError::usage(
                        format!("no target `{n}`"),
                        Some(format!("the targets are: {}", known())),
                    ));
                }
                many => {
                    let options: Vec<String> =
                        many.iter().map(|(p, t, _)| format!("{p}/{t}")).collect();
                    return Err(OpsError::usage(
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
    pub fn targets_named(&self, names: &[String]) -> Result<Vec<Target>, OpsError> {
        self.targets(&self.select(names)?)
    }

    /// The selected targets with their derivations.
    pub fn targets(&self, selected: &[(String, String)]) -> Result<Vec<Target>, OpsError> {
        self.targets_where(selected, |_| true)
    }

    /// The selected targets among those `keep` accepts, with their derivations.
    pub fn targets_where(
        &self,
        selected: &[(String, String)],
        keep: impl Fn(&Target) -> bool,
    ) -> Result<Vec<Target>, OpsError> {
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
                        OpsError::Internal(format!("target `{p}/{n}` has no derivation"))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest path names the package directory whether it is the manifest or its
    /// directory; a bare `cmod.toml` is the current directory.
    #[test]
    fn a_manifest_path_names_its_package_directory() {
        let dir = |p: &str| find_package_dir(Some(Path::new(p))).unwrap().unwrap();
        assert_eq!(dir("a/b/cmod.toml"), Path::new("a/b"));
        assert_eq!(dir("a/b"), Path::new("a/b"));
        assert_eq!(dir("cmod.toml"), Path::new("."));
    }

    /// A store that cannot be opened for writing is an error naming its directory, with
    /// its exit class; opening it to read is no help when it does not exist.
    #[test]
    fn a_store_that_cannot_be_made_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("a-file");
        std::fs::write(&file, "not a directory").unwrap();
        let root = file.join("store");
        let err = open_store(Some(&root), Access::Write).unwrap_err();
        assert!(matches!(err, OpsError::Store(_)), "{err:?}");
        assert!(err.to_string().contains("a-file"), "{err}");
        let ok = open_store(Some(&t.path().join("s")), Access::Write).unwrap();
        assert!(ok.store_dir().starts_with(t.path()));
    }
}
