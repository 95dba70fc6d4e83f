//! Loading one dependency of a package: a path dependency (a member, a path package,
//! or a package inside the requirer's git checkout), or a git dependency resolved the
//! first time it is required and checked against every later requirement.

use std::path::Path;

use cmod_schema::diag::Location;
use cmod_schema::manifest::{DependencySpec, Spanned};

use super::{canonical, check_shape, Loader, PackageId, PackageSource, Requirement, Stop};
use crate::deps::{Fetcher, GitRef};
use crate::error::{ErrorKind, EvalError};
use crate::manifest_file::ManifestFile;

impl Loader<'_> {
    /// Load dependency `dep_name` of package `requirer`, returning its package id.
    pub(super) fn dependency(
        &mut self,
        file: &ManifestFile,
        requirer: &str,
        dep_name: &str,
        spec: &Spanned<DependencySpec>,
        location: &Location,
        from: &PackageSource,
    ) -> Result<PackageId, Stop> {
        let (spec, base, location) = self.inherit(file, dep_name, spec, location)?;
        check_shape(&spec, dep_name, &location)?;
        let edge = Edge {
            requirer,
            name: dep_name,
            location,
        };
        match &spec.path {
            Some(path) => self.path_dependency(&edge, &spec, &base.join(path), from),
            None => self.git_dependency(edge, &spec, &base),
        }
    }

    /// A `path` dependency at `path`: a workspace member, a path package, or a package
    /// inside the git checkout `from` (never outside it).
    fn path_dependency(
        &mut self,
        edge: &Edge<'_>,
        spec: &DependencySpec,
        path: &Path,
        from: &PackageSource,
    ) -> Result<PackageId, Stop> {
        let (requirer, dep_name, location) = (edge.requirer, edge.name, &edge.location);
        let dir = canonical(path, location)?;
        if let PackageSource::Git(g) = from {
            if !dir.starts_with(&g.dir) {
                return Err(EvalError::new(ErrorKind::Dependency, format!("`{requirer}` (from `{}`) has a path dependency `{dep_name}` outside its repository", g.url)).at(location.clone()).into());
            }
        }
        let source = if self.ws.as_ref().is_some_and(|w| w.members.contains(&dir)) {
            PackageSource::Member
        } else if let PackageSource::Git(g) = from {
            PackageSource::Git(g.clone())
        } else {
            PackageSource::Path
        };
        let id = self.visit(&dir, Some(location.clone()), source)?;
        if let (Some(req), Some(written)) = (&spec.version, &spec.path) {
            self.check_path_version(id, dep_name, &req.0, written, location)?;
        }
        Ok(id)
    }

    /// A `git` dependency: resolved and fetched the first time it is required; later
    /// requirements must agree with it (see [`Self::required_again`]).
    fn git_dependency(
        &mut self,
        edge: Edge<'_>,
        spec: &DependencySpec,
        base: &Path,
    ) -> Result<PackageId, Stop> {
        let url = spec.git.clone().unwrap_or_default();
        let reference = GitRef::of(spec).ok_or_else(|| {
            EvalError::new(ErrorKind::ManifestInvalid, format!("git dependency `{}` is not pinned", edge.name))
                .at(edge.location.clone())
                .help("add one of `tag = \"...\"`, `rev = \"...\"`, `branch = \"...\"` or `version = \"^1.2\"`")
        })?;
        let Some(fetcher) = self.opts.fetcher else {
            return Err(
                EvalError::new(ErrorKind::Internal, "git dependencies need a fetcher").into(),
            );
        };
        if self.git.contains_key(edge.name) {
            return self.required_again(edge, &url, reference, fetcher);
        }
        let also: Vec<semver::VersionReq> = self.extra.get(edge.name).cloned().unwrap_or_default();
        let pkg = fetcher
            .resolve(edge.name, &url, &reference, &also, base, &mut self.warnings)
            .map_err(|e| {
                let at = e.location.clone().or(Some(edge.location.clone()));
                e.at_opt(at)
            })?;
        let dir = pkg.dir.clone();
        self.git.insert(
            edge.name.to_string(),
            (
                pkg.clone(),
                vec![Requirement {
                    requirer: edge.requirer.into(),
                    reference,
                    location: edge.location.clone(),
                }],
            ),
        );
        self.visit(&dir, Some(edge.location), PackageSource::Git(pkg))
    }

    /// A git package required again: the package already loaded if it satisfies this
    /// requirement too; a restart with every version requirement when some tag
    /// satisfies them all; else an error naming both requirers.
    fn required_again(
        &mut self,
        edge: Edge<'_>,
        url: &str,
        reference: GitRef,
        fetcher: &Fetcher<'_>,
    ) -> Result<PackageId, Stop> {
        let (requirer, dep_name, location) = (edge.requirer, edge.name, edge.location);
        let refs_of = |url: &str| {
            fetcher
                .git
                .open(url)
                .ok()
                .and_then(|r| crate::git::refs(&r).ok())
        };
        let Some((pkg, reqs)) = self.git.get_mut(dep_name) else {
            return Err(EvalError::new(ErrorKind::Internal, "git package not loaded").into());
        };
        let same_url = pkg.url == url;
        if same_url && pkg.satisfies(&reference, || refs_of(url)) {
            reqs.push(Requirement {
                requirer: requirer.into(),
                reference,
                location,
            });
            let dir = pkg.dir.clone();
            return Ok(self
                .by_dir
                .get(&dir)
                .copied()
                .ok_or_else(|| EvalError::new(ErrorKind::Internal, "git package not loaded"))?);
        }
        let all_versions = same_url
            && matches!(reference, GitRef::Version(_))
            && reqs
                .iter()
                .all(|r| matches!(r.reference, GitRef::Version(_)));
        if all_versions {
            let mut wanted: Vec<semver::VersionReq> = Vec::new();
            for r in reqs.iter().map(|r| &r.reference).chain([&reference]) {
                if let GitRef::Version(v) = r {
                    if !wanted.contains(v) {
                        wanted.push(v.clone());
                    }
                }
            }
            // Restart with every requirement only if some tag satisfies them all.
            let satisfiable = refs_of(url)
                .is_some_and(|refs| crate::deps::select_version(&refs, &wanted).is_some());
            if satisfiable
                && self
                    .extra
                    .get(dep_name)
                    .is_none_or(|e| wanted.iter().any(|w| !e.contains(w)))
            {
                return Err(Stop::Restart(dep_name.to_string(), wanted));
            }
        }
        let first = &reqs[0];
        let describe = |u: &str, r: &GitRef| format!("`{}` from `{u}`", r.query());
        Err(EvalError::new(
            ErrorKind::Dependency,
            format!(
                "package `{dep_name}` is required as {} by `{}` and as {} by `{requirer}`, and no single version satisfies both",
                describe(&pkg.url, &first.reference),
                first.requirer,
                describe(url, &reference)
            ),
        )
        .at(location)
        .note(Some(first.location.clone()), format!("`{}` requires it here", first.requirer))
        .help("one program can hold only one version of a package: make the requirements compatible")
        .into())
    }
}

/// One dependency edge: who requires which package, and where.
struct Edge<'a> {
    requirer: &'a str,
    name: &'a str,
    location: Location,
}
