//! What most commands share: finding the package, opening the store, evaluating, adding
//! sources, and choosing targets.

use std::path::{Path, PathBuf};

use cmod_evaluator::derive::{Target, TargetKind};
use cmod_evaluator::flags::ProfileName;
use cmod_evaluator::{evaluate, EvalOptions, Evaluation};
use cmod_store::Store;

use crate::cli::{BuildOpts, Cli};
use crate::diagnostic::{render_diagnostic, CliError};

/// An evaluated package and its store.
pub struct Project {
    pub store: Store,
    pub eval: Evaluation,
    pub profile: ProfileName,
}

/// The directory of the package: `--manifest-path`'s, or the nearest one upwards that
/// has a `cmod.toml`.
pub fn package_dir(cli: &Cli) -> Result<PathBuf, CliError> {
    if let Some(p) = &cli.manifest_path {
        let dir = if p.file_name().is_some_and(|n| n == "cmod.toml") {
            p.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            p.clone()
        };
        return Ok(if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        });
    }
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::Internal(format!("cannot read the current directory: {e}")))?;
    cwd.ancestors()
        .find(|d| d.join("cmod.toml").is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            CliError::usage(
                format!(
                    "could not find `cmod.toml` in `{}` or any parent directory",
                    cwd.display()
                ),
                Some("run `cmod init` to create a package here, or pass --manifest-path".into()),
            )
        })
}

pub fn open_store(cli: &Cli) -> Result<Store, CliError> {
    let root = cli.store.clone().unwrap_or_else(Store::default_root);
    Ok(Store::open(&root)?)
}

/// Evaluate the package, printing warnings to stderr.
pub fn load(cli: &Cli, build: &BuildOpts) -> Result<Project, CliError> {
    let store = open_store(cli)?;
    let dir = package_dir(cli)?;
    let opts = EvalOptions {
        profile: if build.release {
            ProfileName::Release
        } else {
            ProfileName::Dev
        },
        cache_dir: Some(store.cache_dir()),
    };
    let eval = evaluate(&dir, &opts)?;
    for w in &eval.warnings {
        eprint!(
            "{}",
            render_diagnostic(
                "warning",
                &w.message,
                w.location.as_ref(),
                w.help.as_deref()
            )
        );
    }
    Ok(Project {
        store,
        eval,
        profile: opts.profile,
    })
}

impl Project {
    /// The derivations (emitted on first use).
    pub fn derived(&self) -> Result<&cmod_evaluator::derive::Derived, CliError> {
        Ok(self.eval.derived()?)
    }

    /// Copy every source the derivations read into the store.
    pub fn add_sources(&self) -> Result<(), CliError> {
        for s in &self.derived()?.sources {
            self.store.add_source(&s.host, &s.path, &s.hash)?;
        }
        Ok(())
    }

    /// The root package's target names selected by `names` (all of them, binaries first,
    /// when empty), checked without emitting derivations. A name is a binary's name, the
    /// library's archive name, the package name (its library), or `lib`; an exact target
    /// name wins over the library's aliases.
    pub fn select(&self, names: &[String]) -> Result<Vec<String>, CliError> {
        let root = &self.eval.packages.root().name;
        let all = self.eval.target_names();
        if names.is_empty() {
            return Ok(all.into_iter().map(|(n, _)| n).collect());
        }
        names
            .iter()
            .map(|n| {
                all.iter()
                    .find(|(t, _)| t == n)
                    .or_else(|| {
                        all.iter().find(|(t, kind)| {
                            *kind == TargetKind::Lib
                                && (n == root || n == "lib" || *t == format!("lib{n}.a"))
                        })
                    })
                    .map(|(t, _)| t.clone())
                    .ok_or_else(|| {
                        let known: Vec<&str> = all.iter().map(|(t, _)| t.as_str()).collect();
                        CliError::usage(
                            format!("package `{root}` has no target `{n}`"),
                            Some(format!("its targets are: {}", known.join(", "))),
                        )
                    })
            })
            .collect()
    }

    /// The selected targets with their derivations.
    pub fn targets(&self, names: &[String]) -> Result<Vec<Target>, CliError> {
        let root = &self.eval.packages.root().name;
        let derived = self.derived()?;
        self.select(names)?
            .into_iter()
            .map(|n| {
                derived
                    .targets
                    .iter()
                    .find(|t| &t.package == root && t.name == n)
                    .cloned()
                    .ok_or_else(|| CliError::Internal(format!("target `{n}` has no derivation")))
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
