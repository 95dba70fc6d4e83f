//! Git dependencies without a git subprocess.
//!
//! A [`GitCache`] keeps one bare repository per URL. [`GitCache::fetch`] brings it up to
//! date with every tag and branch of the remote: a local repository (`file://` URL or a
//! path) is read in-process with gix and its objects are copied over
//! ([`local_fetch`]); `https://` goes through gix's HTTP transport. Refs are mirrored
//! with force, so a force-moved tag is seen as moved. [`checkout`] writes a commit's tree
//! to a directory, computing cmod's content hash of it on the way.

mod checkout;
mod local_fetch;

use cmod_schema::diag::IoError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use checkout::{checkout, read_file};
use gix::ObjectId;

/// What can go wrong with git.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The dependency's URL has an unsupported form.
    #[error("`{url}` is not a supported git URL: {reason}")]
    Url {
        /// The URL as written.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A repository of the git cache could not be opened.
    #[error("cannot read the git repository at `{}`: {message}", path.display())]
    Open {
        /// The repository's directory.
        path: PathBuf,
        /// gix's error.
        message: String,
    },
    /// Fetching from the remote failed.
    #[error("fetching `{url}` failed: {message}")]
    Fetch {
        /// The URL fetched.
        url: String,
        /// The transport's error.
        message: String,
    },
    /// The server's TLS certificate is not trusted (HTTPS goes through reqwest + rustls,
    /// whose roots are the system's, or `SSL_CERT_FILE` / `SSL_CERT_DIR` instead).
    #[error("fetching `{url}` failed: the server's TLS certificate is not trusted: {message}")]
    Certificate {
        /// The URL fetched.
        url: String,
        /// The TLS error.
        message: String,
    },
    /// Offline, and the URL has never been fetched.
    #[error("`{url}` is not in the git cache; fetch it while online (`cmod fetch`)")]
    NotCached {
        /// The URL as written.
        url: String,
    },
    /// An object the checkout needs is missing or corrupt.
    #[error("git object {id} is missing or unreadable: {message}")]
    Object {
        /// The object id (hex).
        id: String,
        /// gix's error.
        message: String,
    },
    /// A `rev` names no commit of the repository.
    #[error("`{0}` is not a commit of the repository")]
    UnknownRev(String),
    /// The tree has a submodule, at this path.
    #[error("the repository contains a submodule at `{0}`, which cmod does not support")]
    Submodule(String),
    /// The tree has an entry (at this path) whose name could escape the checkout: `..`,
    /// `.git`, a `/` or a NUL.
    #[error("the repository has an unsafe entry name `{0}`")]
    UnsafeName(String),
    /// A file-system operation on the cache or the checkout failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl GitError {
    fn io(context: &'static str, path: &Path, source: std::io::Error) -> GitError {
        GitError::Io(IoError::new(context, path, source))
    }
}

/// Where a git URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A repository on this machine.
    Local(PathBuf),
    /// A repository behind an `https://` (or `http://`) URL.
    Remote(String),
}

/// URL rewrites for fetching (like git's `insteadOf`): lockfiles and manifests keep the
/// original URL; only fetching uses the rewritten one. The first matching prefix wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrites(Vec<(String, String)>);

impl Rewrites {
    /// The environment variable the command line reads the rules from.
    pub const VAR: &'static str = "CMOD_GIT_REWRITE";

    /// Rules written `prefix=replacement;...` (empty rules and ones without `=` are
    /// skipped).
    pub fn parse(rules: &str) -> Rewrites {
        Rewrites(
            rules
                .split(';')
                .filter_map(|r| r.split_once('='))
                .map(|(p, r)| (p.to_string(), r.to_string()))
                .collect(),
        )
    }

    /// The rules in `$CMOD_GIT_REWRITE` (none when it is unset).
    pub fn from_env() -> Rewrites {
        std::env::var(Self::VAR)
            .map(|r| Rewrites::parse(&r))
            .unwrap_or_default()
    }

    /// `url` with the first matching prefix replaced.
    pub fn apply(&self, url: &str) -> String {
        self.0
            .iter()
            .find_map(|(prefix, replacement)| {
                url.strip_prefix(prefix.as_str())
                    .map(|rest| format!("{replacement}{rest}"))
            })
            .unwrap_or_else(|| url.to_string())
    }
}

/// Classify a (rewritten) URL. Relative paths are taken relative to `base`.
pub fn locate(url: &str, base: &Path) -> Result<Location, GitError> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(Location::Local(PathBuf::from(path)));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Location::Remote(url.to_string()));
    }
    if url.starts_with('/') || url.starts_with("./") || url.starts_with("../") {
        return Ok(Location::Local(base.join(url)));
    }
    Err(GitError::Url {
        url: url.to_string(),
        reason: "use `https://`, `file://` or a local path (ssh and git:// URLs are not supported)"
            .into(),
    })
}

/// A directory of bare repositories, one per URL.
#[derive(Debug, Clone)]
pub struct GitCache {
    root: PathBuf,
    rewrites: Rewrites,
}

/// The tags and branches of a repository, peeled to commits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refs {
    /// Tag name (without `refs/tags/`) → the commit it points at.
    pub tags: BTreeMap<String, ObjectId>,
    /// Branch name (without `refs/heads/`) → its tip commit.
    pub branches: BTreeMap<String, ObjectId>,
}

impl GitCache {
    /// A cache under `root`, fetching every URL as written.
    pub fn new(root: PathBuf) -> GitCache {
        GitCache {
            root,
            rewrites: Rewrites::default(),
        }
    }

    /// This cache, fetching through `rewrites`.
    pub fn with_rewrites(self, rewrites: Rewrites) -> GitCache {
        GitCache { rewrites, ..self }
    }

    /// Where `url` is fetched from (after the rewrites).
    pub fn rewrite(&self, url: &str) -> String {
        self.rewrites.apply(url)
    }

    /// The cache directory of `url` (the URL as written, before rewriting).
    pub fn dir(&self, url: &str) -> PathBuf {
        let hash = blake3::hash(url.as_bytes()).to_hex();
        let tail: String = url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("repo")
            .trim_end_matches(".git")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        self.root.join(format!("{}-{tail}", &hash[..16]))
    }

    /// Open the cached repository of `url`, without any network access.
    pub fn open(&self, url: &str) -> Result<gix::Repository, GitError> {
        let dir = self.dir(url);
        if !dir.join("HEAD").exists() {
            return Err(GitError::NotCached {
                url: url.to_string(),
            });
        }
        gix::open(&dir).map_err(|e| GitError::Open {
            path: dir,
            message: e.to_string(),
        })
    }

    /// Bring the cache of `url` up to date with the remote (`base` resolves relative
    /// paths), and return it.
    pub fn fetch(&self, url: &str, base: &Path) -> Result<gix::Repository, GitError> {
        let dir = self.dir(url);
        std::fs::create_dir_all(&self.root).map_err(|e| GitError::io("creating", &self.root, e))?;
        match locate(&self.rewrite(url), base)? {
            Location::Local(path) => local_fetch::fetch(&path, &dir, url)?,
            Location::Remote(remote) => remote_fetch(&remote, &dir)?,
        }
        self.open(url)
    }
}

/// Tags and branches of `repo`, peeled to commits.
pub fn refs(repo: &gix::Repository) -> Result<Refs, GitError> {
    let err = |e: &dyn std::fmt::Display| GitError::Open {
        path: repo.path().to_path_buf(),
        message: e.to_string(),
    };
    let mut out = Refs::default();
    let platform = repo.references().map_err(|e| err(&e))?;
    for r in platform.all().map_err(|e| err(&e))? {
        let mut r = r.map_err(|e| err(&e))?;
        let name = r.name().as_bstr().to_string();
        let Ok(id) = r.peel_to_id() else { continue };
        let id = id.detach();
        if let Some(tag) = name.strip_prefix("refs/tags/") {
            out.tags.insert(tag.to_string(), id);
        } else if let Some(branch) = name.strip_prefix("refs/heads/") {
            out.branches.insert(branch.to_string(), id);
        }
    }
    Ok(out)
}

/// The refs of the repository at a local location, read directly (cheap; no copy).
pub fn local_refs(path: &Path) -> Result<Refs, GitError> {
    let repo = gix::open(path).map_err(|e| GitError::Open {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    refs(&repo)
}

/// Resolve a full or abbreviated (≥ 7 hex digits) commit id.
pub fn resolve_rev(repo: &gix::Repository, rev: &str) -> Result<ObjectId, GitError> {
    let unknown = || GitError::UnknownRev(rev.to_string());
    if rev.len() < 7 || !rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unknown());
    }
    let prefix = gix::hash::Prefix::from_hex(rev).map_err(|_| unknown())?;
    let id = match repo.objects.lookup_prefix(prefix, None) {
        Ok(Some(Ok(id))) => id,
        _ => return Err(unknown()),
    };
    match repo.find_object(id) {
        Ok(o) if o.kind == gix::object::Kind::Commit => Ok(id),
        _ => Err(unknown()),
    }
}

/// Whether `repo` holds commit `id`.
pub fn has_commit(repo: &gix::Repository, id: &ObjectId) -> bool {
    repo.find_object(*id)
        .is_ok_and(|o| o.kind == gix::object::Kind::Commit)
}

/// Parse a hex commit id.
pub fn parse_id(hex: &str) -> Option<ObjectId> {
    ObjectId::from_hex(hex.as_bytes()).ok()
}

/// An error and its sources, joined with `: ` (gix's transport errors say only
/// "Transport handshake failed" at the top; the cause is further down).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

/// A failed fetch of `url`; an untrusted server certificate gets its own variant, which
/// says how to trust it.
fn fetch_error(url: &str, e: &dyn std::error::Error) -> GitError {
    let message = error_chain(e);
    let lower = message.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        return GitError::Certificate {
            url: url.to_string(),
            message,
        };
    }
    GitError::Fetch {
        url: url.to_string(),
        message,
    }
}

fn remote_fetch(url: &str, dir: &Path) -> Result<(), GitError> {
    use gix::remote::Direction;
    let fail = |e: &dyn std::error::Error| fetch_error(url, e);
    let interrupt = std::sync::atomic::AtomicBool::new(false);
    let refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];
    if !dir.join("HEAD").exists() {
        let prepare = gix::prepare_clone_bare(url, dir).map_err(|e| fail(&e))?;
        let mut prepare =
            prepare.configure_remote(move |r| r.with_refspecs(refspecs, Direction::Fetch));
        prepare
            .fetch_only(gix::progress::Discard, &interrupt)
            .map_err(|e| fail(&e))?;
        return Ok(());
    }
    let repo = gix::open(dir).map_err(|e| fail(&e))?;
    let remote = repo
        .remote_at(url)
        .map_err(|e| fail(&e))?
        .with_refspecs(refspecs, Direction::Fetch)
        .map_err(|e| fail(&e))?;
    remote
        .connect(Direction::Fetch)
        .map_err(|e| fail(&e))?
        .prepare_fetch(gix::progress::Discard, Default::default())
        .map_err(|e| fail(&e))?
        .receive(gix::progress::Discard, &interrupt)
        .map_err(|e| fail(&e))?;
    Ok(())
}
