//! Finding the workspace a package directory belongs to, and its members.
//!
//! A workspace is a directory whose `cmod.toml` has a `[workspace]` table (and optionally a
//! `[package]` of its own). Members are the directories matched by `members` globs that
//! hold a `cmod.toml`, minus `exclude`. Like Cargo, a package directory belongs to the
//! nearest enclosing workspace that lists it; otherwise it stands alone.

use std::path::{Path, PathBuf};

use globset::Glob;

use crate::error::{ErrorKind, EvalError};
use crate::manifest_file::{ManifestFile, MANIFEST_NAME};

/// A workspace root and its member directories (canonical, sorted).
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub file: ManifestFile,
    pub members: Vec<PathBuf>,
}

/// The member directories of the workspace whose root manifest is `file`.
fn member_dirs(file: &ManifestFile) -> Result<Vec<PathBuf>, EvalError> {
    let root = file.dir().to_path_buf();
    let Some(ws) = &file.manifest.workspace else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if file.manifest.package.is_some() {
        out.push(root.clone());
    }
    let excluded: Vec<PathBuf> = ws
        .get_ref()
        .exclude
        .iter()
        .map(|e| root.join(e.trim_end_matches('/')))
        .collect();
    for pattern in &ws.get_ref().members {
        let glob = Glob::new(pattern.get_ref().trim_end_matches('/'))
            .map_err(|e| {
                EvalError::new(
                    ErrorKind::ManifestInvalid,
                    format!("`{}` is not a valid member glob: {e}", pattern.get_ref()),
                )
                .at(file.location_or_file(pattern.span()))
            })?
            .compile_matcher();
        let before = out.len();
        for entry in walkdir::WalkDir::new(&root)
            .min_depth(1)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                e.file_type().is_dir() && !e.file_name().to_string_lossy().starts_with('.')
            })
            .flatten()
        {
            let Ok(rel) = entry.path().strip_prefix(&root) else {
                continue;
            };
            if glob.is_match(rel)
                && entry.path().join(MANIFEST_NAME).is_file()
                && !excluded.iter().any(|x| x == entry.path())
            {
                out.push(entry.path().to_path_buf());
            }
        }
        if out.len() == before {
            return Err(EvalError::new(
                ErrorKind::ManifestInvalid,
                format!(
                    "workspace member pattern `{}` matches no package directory",
                    pattern.get_ref()
                ),
            )
            .at(file.location_or_file(pattern.span()))
            .help(
                "each member is a directory (relative to the workspace root) holding a cmod.toml",
            ));
        }
    }
    let mut canon = Vec::new();
    for d in out {
        canon.push(d.canonicalize().map_err(|e| EvalError::io(&d, "open", e))?);
    }
    canon.sort();
    canon.dedup();
    Ok(canon)
}

/// The directory holding the lockfile for `dir`: its workspace root, else `dir` itself.
pub fn root_of(dir: &Path) -> Result<PathBuf, EvalError> {
    let dir = dir
        .canonicalize()
        .map_err(|e| EvalError::io(dir, "open the directory", e))?;
    Ok(find(&dir)?.map(|w| w.root).unwrap_or(dir))
}

/// The workspace `dir` belongs to, if any.
pub fn find(dir: &Path) -> Result<Option<Workspace>, EvalError> {
    for ancestor in dir.ancestors() {
        let manifest = ancestor.join(MANIFEST_NAME);
        if !manifest.is_file() {
            continue;
        }
        let file = ManifestFile::load(&manifest)?;
        if file.manifest.workspace.is_none() {
            continue;
        }
        let members = member_dirs(&file)?;
        if ancestor == dir || members.iter().any(|m| m == dir) {
            return Ok(Some(Workspace {
                root: ancestor.to_path_buf(),
                file,
                members,
            }));
        }
        // A workspace that does not list this package: it stands alone.
        return Ok(None);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn members_globs_exclude_and_lookup_from_a_member() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        write(
            &root,
            "cmod.toml",
            "[workspace]\nmembers = [\"crates/*\"]\nexclude = [\"crates/old\"]\n",
        );
        for m in ["a", "b", "old"] {
            write(
                &root,
                &format!("crates/{m}/cmod.toml"),
                &format!("[package]\nname = \"{m}\"\nversion = \"1.0.0\"\n"),
            );
        }
        std::fs::create_dir_all(root.join("crates/empty")).unwrap();
        let ws = find(&root).unwrap().unwrap();
        let names: Vec<String> = ws
            .members
            .iter()
            .map(|m| m.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a", "b"]);
        let from_member = find(&root.join("crates/a")).unwrap().unwrap();
        assert_eq!(from_member.root, root);
        assert!(
            find(&root.join("crates/old")).unwrap().is_none(),
            "excluded packages stand alone"
        );
    }

    #[test]
    fn a_pattern_matching_nothing_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "cmod.toml",
            "[workspace]\nmembers = [\n  \"nothing/*\",\n]\n",
        );
        let e = find(&t.path().canonicalize().unwrap()).unwrap_err();
        assert!(e.message.contains("matches no package directory"), "{e}");
        assert_eq!(e.location.unwrap().line, 3);
    }
}
