//! Resolving git dependencies to pinned commits whose trees live in the store.
//!
//! A git dependency is pinned by a tag, a revision, a branch, or a semver requirement (the
//! highest tag that parses as a version, `v` prefix allowed, and matches). The lock is the
//! truth: a locked package keeps its commit — even when its tag has since been moved, which
//! only earns a warning — until `cmod update` releases it. A commit's tree is checked out
//! into the store as a content-addressed source path named after the package; when the
//! lock records the tree's hash, the checkout must match it (a tampered cache or mirror is
//! an integrity error), and when the store already holds that tree no git access happens.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cmod_schema::lock::{LockedPackage, Lockfile};
use cmod_schema::manifest::{DependencySpec, Manifest};
use cmod_schema::{ContentHash, PathKind, StorePath};

use crate::error::{ErrorKind, EvalError};
use crate::git::{self, GitCache};

/// Whether the network may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Fetch git dependencies from their remotes as needed.
    #[default]
    Online,
    /// Use only the store and the git cache.
    Offline,
}

/// Which locked git packages to re-resolve.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Update {
    /// Keep every locked git package as locked.
    #[default]
    Nothing,
    /// Re-resolve every git package (`cmod update`).
    All,
    /// Re-resolve the named packages only (`cmod update <pkg>...`).
    Only(BTreeSet<String>),
}

impl Update {
    fn releases(&self, name: &str) -> bool {
        match self {
            Update::Nothing => false,
            Update::All => true,
            Update::Only(set) => set.contains(name),
        }
    }
}

/// Access to source trees in the store (implemented by the caller over `cmod-store`).
pub trait TreeStore: Sync {
    /// The location of source path `path` if it is valid.
    fn find(&self, path: &StorePath) -> Option<PathBuf>;
    /// Add the directory `dir` (which hashes to `hash`) as source path `path`.
    fn add(&self, dir: &Path, path: &StorePath, hash: &ContentHash) -> Result<PathBuf, String>;
}

/// Everything resolution needs besides the manifests.
pub struct Fetcher<'a> {
    /// The bare repositories git dependencies are fetched into.
    pub git: GitCache,
    /// Where checked-out package trees are kept (the store).
    pub trees: &'a dyn TreeStore,
    /// Whether git dependencies may be fetched.
    pub network: Network,
    /// The lockfile whose pins resolution keeps, if any.
    pub lock: Option<&'a Lockfile>,
    /// Which locked pins to let go of.
    pub update: Update,
    /// `cmod update <pkg> --precise <version|rev>`.
    pub precise: Option<(String, String)>,
}

/// How a git dependency is pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    /// `tag = "..."`.
    Tag(String),
    /// `rev = "..."`: a commit id or a prefix of one.
    Rev(String),
    /// `branch = "..."`: the branch's tip.
    Branch(String),
    /// `version = "..."`: the highest tag that parses as a matching version.
    Version(semver::VersionReq),
}

impl GitRef {
    /// From a spec already checked to have exactly one pin.
    pub fn of(spec: &DependencySpec) -> Option<GitRef> {
        if let Some(t) = &spec.tag {
            return Some(GitRef::Tag(t.clone()));
        }
        if let Some(r) = &spec.rev {
            return Some(GitRef::Rev(r.clone()));
        }
        if let Some(b) = &spec.branch {
            return Some(GitRef::Branch(b.clone()));
        }
        spec.version.as_ref().map(|v| GitRef::Version(v.0.clone()))
    }

    /// The query string used in lock sources: `tag=v1.2.3`, `version=^1.2`, ...
    pub fn query(&self) -> String {
        match self {
            GitRef::Tag(t) => format!("tag={t}"),
            GitRef::Rev(r) => format!("rev={r}"),
            GitRef::Branch(b) => format!("branch={b}"),
            GitRef::Version(v) => format!("version={v}"),
        }
    }
}

/// A resolved git package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitPackage {
    /// The URL as written in the manifest (before any rewrite).
    pub url: String,
    /// The pin as written in the manifest.
    pub reference: GitRef,
    /// The commit it resolved to (hex).
    pub commit: String,
    /// The content hash of the checked-out tree.
    pub tree: ContentHash,
    /// The checked-out tree in the store.
    pub dir: PathBuf,
    /// The package name from its manifest.
    pub name: String,
    /// The package version from its manifest.
    pub version: semver::Version,
}

impl GitPackage {
    /// `git+<url>?<query>#<commit>`.
    pub fn source(&self) -> String {
        format!(
            "git+{}?{}#{}",
            self.url,
            self.reference.query(),
            self.commit
        )
    }

    /// Whether this package satisfies another requirement `r` on the same URL.
    pub fn satisfies(&self, r: &GitRef, refs: impl FnOnce() -> Option<git::Refs>) -> bool {
        match r {
            GitRef::Version(req) => req.matches(&self.version),
            GitRef::Rev(rev) => self.commit.starts_with(rev.as_str()),
            GitRef::Tag(t) => {
                self.reference == GitRef::Tag(t.clone())
                    || refs()
                        .and_then(|r| {
                            r.tags
                                .get(t)
                                .map(|id| git::parse_id(&self.commit) == Some(*id))
                        })
                        .unwrap_or(false)
            }
            GitRef::Branch(b) => {
                self.reference == GitRef::Branch(b.clone())
                    || refs()
                        .and_then(|r| {
                            r.branches
                                .get(b)
                                .map(|id| git::parse_id(&self.commit) == Some(*id))
                        })
                        .unwrap_or(false)
            }
        }
    }
}

/// Parse a lock source `git+<url>?<query>#<commit>`.
fn parse_git_source(source: &str) -> Option<(&str, &str, &str)> {
    let rest = source.strip_prefix("git+")?;
    let (left, commit) = rest.rsplit_once('#')?;
    let (url, query) = left.rsplit_once('?')?;
    Some((url, query, commit))
}

/// The store name of a git package's source tree.
pub fn tree_name(name: &str, version: &semver::Version) -> String {
    cmod_schema::store_path::sanitize_name(&format!("{name}-{version}-src"))
}

/// The highest tag of `refs` whose version (after an optional `v`) matches every requirement.
pub fn select_version<'r>(
    refs: &'r git::Refs,
    reqs: &[semver::VersionReq],
) -> Option<(&'r String, semver::Version)> {
    refs.tags
        .keys()
        .filter_map(|t| {
            t.strip_prefix('v')
                .unwrap_or(t)
                .parse::<semver::Version>()
                .ok()
                .map(|v| (t, v))
        })
        .filter(|(_, v)| reqs.iter().all(|r| r.matches(v)))
        .max_by(|a, b| a.1.cmp(&b.1))
}

/// How to trust a server whose certificate comes from the user's own CA. gix's HTTP
/// transport is reqwest + rustls with the platform verifier, which on Linux reads the
/// system's roots through rustls-native-certs: `SSL_CERT_FILE` / `SSL_CERT_DIR` replace
/// them, and git's own `http.sslCAInfo` is not consulted.
const TRUST_HELP: &str = "if the server's certificate is from your own CA, name a PEM bundle \
     with it in SSL_CERT_FILE (or a directory in SSL_CERT_DIR); these replace the system's \
     roots, so include them too for other servers (git's http.sslCAInfo is not read)";

impl Fetcher<'_> {
    fn locked(&self, name: &str, url: &str, reference: &GitRef) -> Option<&LockedPackage> {
        if self.update.releases(name) || self.precise.as_ref().is_some_and(|(p, _)| p == name) {
            return None;
        }
        let p = self.lock?.packages.iter().find(|p| p.name == name)?;
        let (lurl, query, _) = parse_git_source(&p.source)?;
        (lurl == url && query == reference.query()).then_some(p)
    }

    /// The cache of `url`, fetched first unless offline.
    fn repo(&self, url: &str, base: &Path) -> Result<gix::Repository, EvalError> {
        let r = match self.network {
            Network::Online => self.git.fetch(url, base),
            Network::Offline => self.git.open(url),
        };
        r.map_err(|e| {
            let err = EvalError::new(ErrorKind::Dependency, e.to_string());
            match e {
                git::GitError::NotCached { .. } => {
                    err.help("run `cmod fetch` while online to fill the store and the git cache")
                }
                git::GitError::Certificate { .. } => err.help(TRUST_HELP),
                _ => err,
            }
        })
    }

    /// Resolve git dependency `name` (`url`, `reference`) required from `base`'s manifest,
    /// with extra version requirements `also` from other requirers.
    pub fn resolve(
        &self,
        name: &str,
        url: &str,
        reference: &GitRef,
        also: &[semver::VersionReq],
        base: &Path,
        warnings: &mut Vec<EvalError>,
    ) -> Result<GitPackage, EvalError> {
        if let Some(lock) = self
            .locked(name, url, reference)
            .filter(|_| also.is_empty())
        {
            let pkg = self.resolve_locked(lock, url, reference, base)?;
            self.warn_if_moved(&pkg, base, warnings);
            return Ok(pkg);
        }
        untracked("a git dependency was resolved without the lockfile");
        let repo = self.repo(url, base)?;
        let refs =
            git::refs(&repo).map_err(|e| EvalError::new(ErrorKind::Dependency, e.to_string()))?;
        let precise = self
            .precise
            .as_ref()
            .filter(|(p, _)| p == name)
            .map(|(_, v)| v.as_str());
        let wanted = Wanted {
            name,
            url,
            reference,
            also,
        };
        let commit = match precise {
            Some(precise) => wanted.precise_commit(&repo, &refs, precise)?,
            None => wanted.commit(&repo, &refs)?,
        };
        self.materialise(name, url, reference, &commit, None, base)
    }

    /// The package as `cmod.lock` pins it (its commit and tree).
    fn resolve_locked(
        &self,
        lock: &LockedPackage,
        url: &str,
        reference: &GitRef,
        base: &Path,
    ) -> Result<GitPackage, EvalError> {
        let name = &lock.name;
        let version: semver::Version = lock.version.parse().map_err(|e| {
            EvalError::new(
                ErrorKind::Lock,
                format!(
                    "cmod.lock: package `{name}` has version `{}`: {e}",
                    lock.version
                ),
            )
        })?;
        let commit = parse_git_source(&lock.source)
            .map(|(_, _, c)| c.to_string())
            .unwrap_or_default();
        self.materialise(
            name,
            url,
            reference,
            &commit,
            Some((&lock.tree, &version)),
            base,
        )
    }

    /// Get the tree of `commit` into the store (or find it there) and describe the package.
    fn materialise(
        &self,
        name: &str,
        url: &str,
        reference: &GitRef,
        commit: &str,
        locked: Option<(&ContentHash, &semver::Version)>,
        base: &Path,
    ) -> Result<GitPackage, EvalError> {
        let package = |tree: ContentHash, dir: PathBuf, version: semver::Version| GitPackage {
            url: url.into(),
            reference: reference.clone(),
            commit: commit.into(),
            tree,
            dir,
            name: name.into(),
            version,
        };
        if let Some((tree, version)) = locked {
            let path = StorePath::compute(PathKind::Source, tree, &tree_name(name, version), [])
                .map_err(|e| EvalError::new(ErrorKind::Internal, e.to_string()))?;
            if let Some(dir) = self.trees.find(&path) {
                return Ok(package(*tree, dir, version.clone()));
            }
        }
        untracked("a git dependency was checked out");
        let id = git::parse_id(commit).ok_or_else(|| {
            EvalError::new(
                ErrorKind::Lock,
                format!("cmod.lock: `{commit}` is not a commit id"),
            )
        })?;
        let repo = self.repo_with(name, url, commit, &id, base)?;
        let version = manifest_version(&repo, &id, url, commit)?;
        let tmp = self.git.dir(url).with_extension(format!(
            "checkout-{}-{}",
            std::process::id(),
            &commit[..12]
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        let stored = self.check_out(
            &repo,
            &id,
            &tmp,
            (name, commit, &version),
            locked.map(|l| l.0),
        );
        let _ = make_writable_and_remove(&tmp);
        let (tree, dir) = stored?;
        Ok(package(tree, dir, version))
    }

    /// The cached repository of `url` once it has `commit` (fetched if need be, and
    /// allowed); an error saying why it cannot have it.
    fn repo_with(
        &self,
        name: &str,
        url: &str,
        commit: &str,
        id: &gix::ObjectId,
        base: &Path,
    ) -> Result<gix::Repository, EvalError> {
        if let Some(r) = self.repo_if_cached(url).filter(|r| git::has_commit(r, id)) {
            return Ok(r);
        }
        let r = self.repo(url, base)?;
        if git::has_commit(&r, id) {
            return Ok(r);
        }
        // Offline, only the local cache was looked at: the commit may well exist
        // upstream, it just was never fetched here.
        if self.network == Network::Offline {
            return Err(EvalError::new(
                ErrorKind::Dependency,
                format!("package `{name}` is pinned to commit {commit}, which is not in the local git cache of `{url}` (and its tree is not in the store)"),
            )
            .help("run `cmod fetch` without --offline (or --frozen) to fetch it into the cache and the store, then build offline"));
        }
        Err(EvalError::new(
            ErrorKind::Dependency,
            format!("package `{name}` is pinned to commit {commit}, which `{url}` no longer has (was its history rewritten?)"),
        )
        .help(format!("run `cmod update {name}` to pin a commit that exists")))
    }

    /// Check `id` out at `tmp`, check its tree against the lock's `expected` hash, and
    /// add it to the store (unless there already). Returns the tree hash and store dir.
    fn check_out(
        &self,
        repo: &gix::Repository,
        id: &gix::ObjectId,
        tmp: &Path,
        (name, commit, version): (&str, &str, &semver::Version),
        expected: Option<&ContentHash>,
    ) -> Result<(ContentHash, PathBuf), EvalError> {
        let hash = git::checkout(repo, id, tmp).map_err(|e| {
            EvalError::new(ErrorKind::Dependency, format!("checking out `{name}`: {e}"))
        })?;
        if let Some(expected) = expected.filter(|e| **e != hash) {
            return Err(EvalError::new(
                ErrorKind::Integrity,
                format!("package `{name}`: commit {commit} checks out to tree {hash}, but cmod.lock pins tree {expected}"),
            )
            .help("the git cache or the remote was tampered with; delete the cache entry and fetch from a trusted remote, or re-lock deliberately with `cmod update`"));
        }
        let path = StorePath::compute(PathKind::Source, &hash, &tree_name(name, version), [])
            .map_err(|e| EvalError::new(ErrorKind::Internal, e.to_string()))?;
        let dir = match self.trees.find(&path) {
            Some(d) => d,
            None => self.trees.add(tmp, &path, &hash).map_err(|e| {
                EvalError::new(
                    ErrorKind::Internal,
                    format!("adding `{name}` to the store: {e}"),
                )
            })?,
        };
        Ok((hash, dir))
    }

    fn repo_if_cached(&self, url: &str) -> Option<gix::Repository> {
        self.git.open(url).ok()
    }

    /// A locked package keeps its commit; say so when its tag or branch now points
    /// elsewhere (checked only when the remote is on this machine, which costs no network).
    fn warn_if_moved(&self, pkg: &GitPackage, base: &Path, warnings: &mut Vec<EvalError>) {
        if self.network == Network::Offline {
            return;
        }
        let Ok(git::Location::Local(path)) = git::locate(&self.git.rewrite(&pkg.url), base) else {
            return;
        };
        let Ok(refs) = git::local_refs(&path) else {
            return;
        };
        untracked("a local git repository's branches and tags were read");
        let (kind, now) = match &pkg.reference {
            GitRef::Tag(t) => ("tag", refs.tags.get(t)),
            GitRef::Branch(b) => ("branch", refs.branches.get(b)),
            _ => return,
        };
        if let Some(now) = now.map(|id| id.to_string()).filter(|id| *id != pkg.commit) {
            let what = match &pkg.reference {
                GitRef::Tag(t) | GitRef::Branch(t) => t.clone(),
                _ => String::new(),
            };
            warnings.push(
                EvalError::new(
                    ErrorKind::Lock,
                    format!("{kind} `{what}` of `{}` now points to {now}; building the locked commit {}", pkg.name, pkg.commit),
                )
                .help(format!("run `cmod update {}` to move to the new commit", pkg.name)),
            );
        }
    }
}

fn make_writable_and_remove(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}

/// What a git dependency asks for: its name and URL (for messages), its reference,
/// and other requirers' version requirements.
struct Wanted<'a> {
    name: &'a str,
    url: &'a str,
    reference: &'a GitRef,
    also: &'a [semver::VersionReq],
}

impl Wanted<'_> {
    /// The commit `--precise` pins: the tag of that version (which must satisfy every
    /// requirement) for a version requirement, else a revision.
    fn precise_commit(
        &self,
        repo: &gix::Repository,
        refs: &git::Refs,
        precise: &str,
    ) -> Result<String, EvalError> {
        let (name, url) = (self.name, self.url);
        let GitRef::Version(req) = self.reference else {
            return git::resolve_rev(repo, precise)
                .map(|id| id.to_string())
                .map_err(|e| {
                    EvalError::new(
                        ErrorKind::Dependency,
                        format!("--precise for `{name}`: {e}"),
                    )
                });
        };
        let want: semver::Version = precise.trim_start_matches('v').parse().map_err(|e| {
            EvalError::new(
                ErrorKind::Dependency,
                format!("--precise `{precise}` is not a version: {e}"),
            )
        })?;
        if !req.matches(&want) || self.also.iter().any(|r| !r.matches(&want)) {
            return Err(EvalError::new(
                ErrorKind::Dependency,
                format!("--precise {want} does not satisfy the requirement `{req}` of `{name}`"),
            ));
        }
        let tag = refs
            .tags
            .keys()
            .find(|t| t.strip_prefix('v').unwrap_or(t) == want.to_string())
            .ok_or_else(|| {
                EvalError::new(
                    ErrorKind::Dependency,
                    format!("`{url}` has no tag for version {want}"),
                )
            })?;
        Ok(refs.tags[tag].to_string())
    }

    /// The commit the reference names: the highest tag matching every version
    /// requirement, the tag, the branch's tip, or the revision.
    fn commit(&self, repo: &gix::Repository, refs: &git::Refs) -> Result<String, EvalError> {
        let url = self.url;
        let dependency = |message: String| EvalError::new(ErrorKind::Dependency, message);
        let tags_help = || {
            let tags: Vec<&str> = refs.tags.keys().map(String::as_str).collect();
            format!(
                "its tags are: {}",
                if tags.is_empty() {
                    "(none)".to_string()
                } else {
                    tags.join(", ")
                }
            )
        };
        match self.reference {
            GitRef::Version(req) => {
                let mut reqs = vec![req.clone()];
                reqs.extend(self.also.iter().cloned());
                match select_version(refs, &reqs) {
                    Some((tag, _)) => Ok(refs.tags[tag].to_string()),
                    None => {
                        let all: Vec<String> = reqs.iter().map(|r| format!("`{r}`")).collect();
                        Err(
                            dependency(format!("no tag of `{url}` matches {}", all.join(" and ")))
                                .help(tags_help()),
                        )
                    }
                }
            }
            GitRef::Tag(t) => {
                refs.tags.get(t).map(|id| id.to_string()).ok_or_else(|| {
                    dependency(format!("`{url}` has no tag `{t}`")).help(tags_help())
                })
            }
            GitRef::Branch(b) => refs
                .branches
                .get(b)
                .map(|id| id.to_string())
                .ok_or_else(|| dependency(format!("`{url}` has no branch `{b}`"))),
            GitRef::Rev(r) => git::resolve_rev(repo, r)
                .map(|id| id.to_string())
                .map_err(|e| dependency(format!("`{url}`: {e}"))),
        }
    }
}

/// The version in the `cmod.toml` at the root of `commit` (`id`) of `url`.
fn manifest_version(
    repo: &gix::Repository,
    id: &gix::ObjectId,
    url: &str,
    commit: &str,
) -> Result<semver::Version, EvalError> {
    let manifest_text = git::read_file(repo, id, crate::manifest_file::MANIFEST_NAME)
        .map_err(|e| EvalError::new(ErrorKind::Dependency, e.to_string()))?
        .ok_or_else(|| {
            EvalError::new(
                ErrorKind::Dependency,
                format!("commit {commit} of `{url}` has no cmod.toml at its root"),
            )
        })?;
    let manifest: Manifest =
        toml::from_str(&String::from_utf8_lossy(&manifest_text)).map_err(|e| {
            EvalError::new(
                ErrorKind::Dependency,
                format!(
                    "the cmod.toml of `{url}` at {commit} is invalid: {}",
                    e.message()
                ),
            )
        })?;
    manifest
        .package
        .as_ref()
        .map(|p| p.version.get_ref().0.clone())
        .ok_or_else(|| {
            EvalError::new(
                ErrorKind::Dependency,
                format!("the cmod.toml of `{url}` at {commit} has no [package]"),
            )
        })
}

/// Note, in the input journal, a read that it cannot record (the git repository's state).
fn untracked(why: &str) {
    crate::journal::note(|| crate::journal::Input::Untracked(why.into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(tags: &[&str]) -> git::Refs {
        let mut r = git::Refs::default();
        for (i, t) in tags.iter().enumerate() {
            let hex = format!("{:040x}", i + 1);
            r.tags.insert(t.to_string(), git::parse_id(&hex).unwrap());
        }
        r
    }

    #[test]
    fn semver_selection_takes_the_highest_matching_tag() {
        let r = refs(&[
            "v1.0.0",
            "v1.2.3",
            "v1.10.0",
            "v2.0.0",
            "not-a-version",
            "1.2.4",
        ]);
        let pick = |req: &str| select_version(&r, &[req.parse().unwrap()]).map(|(t, _)| t.clone());
        assert_eq!(pick("^1.2").as_deref(), Some("v1.10.0"));
        assert_eq!(pick("~1.2").as_deref(), Some("1.2.4"));
        assert_eq!(pick("=1.0.0").as_deref(), Some("v1.0.0"));
        assert_eq!(pick("^3"), None);
        let both = select_version(&r, &["^1.2".parse().unwrap(), "<1.5".parse().unwrap()])
            .map(|(t, _)| t.clone());
        assert_eq!(both.as_deref(), Some("1.2.4"));
    }

    #[test]
    fn lock_sources_round_trip() {
        let p = GitPackage {
            url: "https://example.com/u.git".into(),
            reference: GitRef::Version("^1.2".parse().unwrap()),
            commit: "a".repeat(40),
            tree: ContentHash::of_file(false, b"t"),
            dir: "/s".into(),
            name: "u".into(),
            version: "1.2.3".parse().unwrap(),
        };
        let s = p.source();
        assert_eq!(
            s,
            format!(
                "git+https://example.com/u.git?version=^1.2#{}",
                "a".repeat(40)
            )
        );
        assert_eq!(
            parse_git_source(&s),
            Some((
                "https://example.com/u.git",
                "version=^1.2",
                "a".repeat(40).as_str()
            ))
        );
        assert!(p.satisfies(&GitRef::Version("^1".parse().unwrap()), || None));
        assert!(!p.satisfies(&GitRef::Version("^2".parse().unwrap()), || None));
        assert!(p.satisfies(&GitRef::Rev("aaaaaaa".into()), || None));
    }
}
