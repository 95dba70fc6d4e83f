//! Listing a package's files: sorted, depth first, skipping hidden entries, nested
//! packages (directories with their own `cmod.toml`) and cache directories (holding a
//! `CACHEDIR.TAG`: a cmod store kept inside the package, Cargo's `target/`). Symlinked files are followed when
//! their target is a file inside the package, and remembered as escaping when it is not;
//! symlinked directories (such as `result*` out-links) are never entered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cmod_schema::diag::Location;

use crate::error::{ErrorKind, EvalError};
use crate::manifest_file::MANIFEST_NAME;

/// The file that marks a cache directory (see the module documentation).
const CACHEDIR_TAG: &str = "CACHEDIR.TAG";

use super::listing_cache::{Kind, ListingCache};

/// What the walk found.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// Package-relative paths of regular files (and links to files inside the package).
    pub files: Vec<String>,
    /// Symlinks to files outside the package (or dangling), with their resolved target.
    pub escaping: BTreeMap<String, PathBuf>,
}

impl Walk {
    /// Check that `rel`, named explicitly in the manifest at `at`, is a file the walk
    /// found; explain why not otherwise.
    pub(crate) fn check_named(
        &self,
        root: &Path,
        rel: &str,
        at: &Location,
    ) -> Result<(), EvalError> {
        if let Some(target) = self.escaping.get(rel) {
            return Err(super::escaping_link(rel, target, at.clone()));
        }
        if self.files.iter().any(|f| f == rel) {
            return Ok(());
        }
        let (message, help) = if root.join(rel).is_file() {
            (
                format!("`{rel}` is inside a hidden directory or a nested package, which cmod never searches"),
                "move it into the package's own directories".to_string(),
            )
        } else {
            (
                format!("`{rel}` does not exist"),
                "fix the path (it is relative to the package root) or create the file".to_string(),
            )
        };
        Err(EvalError::new(ErrorKind::ManifestInvalid, message)
            .at(at.clone())
            .help(help))
    }
}

/// Every file under `root`; see the module documentation. Listings come from `listings`
/// while the directories are unchanged.
pub(crate) fn package_files(root: &Path, listings: &ListingCache) -> Result<Walk, EvalError> {
    let canonical_root = crate::journal::canonicalize(root)
        .map_err(|e| EvalError::io(root, "open the package directory", e))?;
    let mut walk = Walk::default();
    let at = Place {
        root: &canonical_root,
        listings,
    };
    visit(root, &at, "", false, &mut walk)?;
    Ok(walk)
}

/// Where a walk is: the package's canonical root, and the listings it reads.
struct Place<'a> {
    root: &'a Path,
    listings: &'a ListingCache,
}

/// Add the files under `dir` (package-relative `rel`) to `walk`; with `skip_package`,
/// nothing when `dir` holds a `cmod.toml`. The nested-package check reads the listing
/// the walk needs anyway, instead of a `stat` per directory.
fn visit(
    dir: &Path,
    at: &Place<'_>,
    rel: &str,
    skip_package: bool,
    walk: &mut Walk,
) -> Result<(), EvalError> {
    let entries = at.listings.list(dir).map_err(|e| {
        EvalError::new(
            ErrorKind::Io,
            format!("cannot list `{}`: {e}", dir.display()),
        )
    })?;
    if skip_package
        && entries.iter().any(|(n, _)| n == MANIFEST_NAME)
        && crate::hashing::Stamp::read(&dir.join(MANIFEST_NAME)).is_ok()
    {
        return Ok(());
    }
    if skip_package && entries.iter().any(|(n, _)| n == CACHEDIR_TAG) {
        return Ok(());
    }
    for (name, kind) in entries {
        let name_text = name.to_string_lossy();
        if name_text.starts_with('.') {
            continue;
        }
        let child_rel = if rel.is_empty() {
            name_text.replace('\\', "/")
        } else {
            format!("{rel}/{}", name_text.replace('\\', "/"))
        };
        match kind {
            Kind::File => walk.files.push(child_rel),
            Kind::Dir => visit(&dir.join(&name), at, &child_rel, true, walk)?,
            Kind::Symlink => follow_link(&dir.join(&name), at.root, child_rel, walk),
            Kind::Other => {}
        }
    }
    Ok(())
}

/// A symlinked file inside the package is one of its files; one that leaves the package
/// (or dangles) is remembered as escaping; a link to a directory is not entered.
fn follow_link(link: &Path, root: &Path, rel: String, walk: &mut Walk) {
    match crate::journal::canonicalize(link) {
        Ok(target) if crate::journal::is_dir(&target) => {}
        Ok(target) if target.starts_with(root) && crate::journal::is_file(&target) => {
            walk.files.push(rel)
        }
        Ok(target) => {
            walk.escaping.insert(rel, target);
        }
        Err(_) => {
            let target = std::fs::read_link(link).unwrap_or_default();
            walk.escaping.insert(rel, target);
        }
    }
}
