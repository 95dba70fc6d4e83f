//! Finding the workspace a package directory belongs to, and its members.
//!
//! A workspace is a directory whose `cmod.toml` has a `[workspace]` table (and optionally a
//! `[package]` of its own). Members are the directories matched by `members` globs that
//! hold a `cmod.toml`, minus those matched by `exclude` globs and everything below them.
//! `*` stays within one path component and `**` spans any number, as in Cargo. Like Cargo, a package directory belongs to the
//! nearest enclosing workspace that lists it; otherwise it stands alone.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use crate::error::{ErrorKind, EvalError};
use crate::manifest_file::{ManifestFile, MANIFEST_NAME};

/// A workspace root and its member directories (canonical, sorted).
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The directory holding the workspace manifest.
    pub root: PathBuf,
    /// The workspace manifest.
    pub file: ManifestFile,
    /// Member directories, canonical and sorted.
    pub members: Vec<PathBuf>,
}

/// A member or exclude glob, matched against paths relative to the workspace root. As
/// in Cargo, `*`, `?` and `[...]` never match `/` (so `libs/*` is the directories directly
/// in `libs`), while `**` matches any number of directories (`libs/**` is every
/// directory below `libs`).
fn compile(
    file: &ManifestFile,
    pattern: &toml::Spanned<String>,
    what: &str,
) -> Result<GlobMatcher, EvalError> {
    GlobBuilder::new(pattern_text(pattern))
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| {
            EvalError::new(
                ErrorKind::ManifestInvalid,
                format!("`{}` is not a valid {what} glob: {e}", pattern.get_ref()),
            )
            .at(file.location_or_file(pattern.span()))
        })
}

/// A glob as written, without a leading `./` or trailing `/`.
fn pattern_text(pattern: &toml::Spanned<String>) -> &str {
    let text = pattern.get_ref().trim_end_matches('/');
    text.strip_prefix("./").unwrap_or(text)
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
    let excluded = ws
        .get_ref()
        .exclude
        .iter()
        .map(|e| compile(file, e, "exclude"))
        .collect::<Result<Vec<_>, _>>()?;
    for pattern in &ws.get_ref().members {
        let glob = compile(file, pattern, "member")?;
        // Without `**` a match is exactly as deep as the pattern: walk no deeper.
        let text = pattern_text(pattern);
        let depth = if text.contains("**") {
            usize::MAX
        } else {
            text.split('/').filter(|c| !c.is_empty()).count()
        };
        let before = out.len();
        // Every directory the walk lists is stamped (after its listing: a change during
        // the evaluation makes the stamp racy, and the journal is not written).
        let _ = crate::hashing::Stamp::read(&root);
        for entry in walkdir::WalkDir::new(&root)
            .min_depth(1)
            .max_depth(depth)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                // An excluded directory takes everything below it along (Cargo's rule).
                e.file_type().is_dir()
                    && !e.file_name().to_string_lossy().starts_with('.')
                    && !e
                        .path()
                        .strip_prefix(&root)
                        .is_ok_and(|rel| excluded.iter().any(|x| x.is_match(rel)))
            })
            .flatten()
        {
            let _ = crate::hashing::Stamp::read(entry.path());
            let Ok(rel) = entry.path().strip_prefix(&root) else {
                continue;
            };
            if glob.is_match(rel) && crate::journal::is_file(&entry.path().join(MANIFEST_NAME)) {
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
                "each member is a directory (relative to the workspace root) holding a cmod.toml; \
                 `*` does not cross `/` (use `**` for any depth), and `exclude` removes directories",
            ));
        }
    }
    let mut canon = Vec::new();
    for d in out {
        canon.push(crate::journal::canonicalize(&d).map_err(|e| EvalError::io(&d, "open", e))?);
    }
    canon.sort();
    canon.dedup();
    Ok(canon)
}

/// The directory holding the lockfile for `dir`: its workspace root, else `dir` itself.
pub fn root_of(dir: &Path) -> Result<PathBuf, EvalError> {
    let dir = crate::journal::canonicalize(dir)
        .map_err(|e| EvalError::io(dir, "open the directory", e))?;
    Ok(find(&dir)?.map(|w| w.root).unwrap_or(dir))
}

/// The workspace `dir` belongs to, if any.
pub fn find(dir: &Path) -> Result<Option<Workspace>, EvalError> {
    Ok(enclosing(dir)?.and_then(|(ws, listed)| listed.then_some(ws)))
}

/// The nearest workspace at or above `dir`, and whether it lists `dir` (its root does);
/// a package below a workspace that does not list it stands alone.
pub fn enclosing(dir: &Path) -> Result<Option<(Workspace, bool)>, EvalError> {
    for ancestor in dir.ancestors() {
        let manifest = ancestor.join(MANIFEST_NAME);
        if !crate::journal::is_file(&manifest) {
            continue;
        }
        let file = ManifestFile::load(&manifest)?;
        if file.manifest.workspace.is_none() {
            continue;
        }
        let members = member_dirs(&file)?;
        let listed = ancestor == dir || members.iter().any(|m| m == dir);
        let ws = Workspace {
            root: ancestor.to_path_buf(),
            file,
            members,
        };
        return Ok(Some((ws, listed)));
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

    fn package(root: &Path, rel: &str) {
        let name = rel.rsplit('/').next().unwrap();
        write(
            root,
            &format!("{rel}/cmod.toml"),
            &format!("[package]\nname = \"{name}\"\nversion = \"1.0.0\"\n"),
        );
    }

    /// Members of a workspace whose root manifest says `workspace`, relative to the root.
    fn members(workspace: &str, packages: &[&str]) -> Result<Vec<String>, EvalError> {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        write(&root, "cmod.toml", &format!("[workspace]\n{workspace}"));
        for p in packages {
            package(&root, p);
        }
        let ws = find(&root)?.expect("a workspace");
        Ok(ws
            .members
            .iter()
            .map(|m| {
                m.strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect())
    }

    const TREE: &[&str] = &[
        "libs/a",
        "libs/a/nested",
        "libs/b",
        "libs/b/deep/er",
        "libs/old",
        "libs/old/inner",
        "libs/a-old",
        "tools/x",
    ];

    #[test]
    fn a_star_does_not_cross_a_slash() {
        let m = members("members = [\"libs/*\"]\n", TREE).unwrap();
        assert_eq!(m, ["libs/a", "libs/a-old", "libs/b", "libs/old"]);
        let m = members("members = [\"*/a\", \"libs/?\"]\n", TREE).unwrap();
        assert_eq!(m, ["libs/a", "libs/b"]);
        let m = members("members = [\"libs/*/*\"]\n", TREE).unwrap();
        assert_eq!(m, ["libs/a/nested", "libs/old/inner"]);
    }

    #[test]
    fn a_double_star_spans_directories() {
        let m = members("members = [\"libs/**\"]\n", TREE).unwrap();
        assert_eq!(
            m,
            [
                "libs/a",
                "libs/a/nested",
                "libs/a-old",
                "libs/b",
                "libs/b/deep/er",
                "libs/old",
                "libs/old/inner"
            ]
        );
        let m = members("members = [\"**/inner\", \"./tools/x/\"]\n", TREE).unwrap();
        assert_eq!(m, ["libs/old/inner", "tools/x"]);
    }

    #[test]
    fn exclude_takes_globs_and_everything_below_a_match() {
        let m = members(
            "members = [\"libs/**\"]\nexclude = [\"libs/*old\", \"libs/b/deep\"]\n",
            TREE,
        )
        .unwrap();
        assert_eq!(m, ["libs/a", "libs/a/nested", "libs/b"]);
        let m = members("members = [\"libs/*\"]\nexclude = [\"**/a\"]\n", TREE).unwrap();
        assert_eq!(m, ["libs/a-old", "libs/b", "libs/old"]);
        // A pattern whose every match is excluded matches nothing.
        let e = members("members = [\"tools/*\"]\nexclude = [\"tools\"]\n", TREE).unwrap_err();
        assert!(e.message.contains("matches no package directory"), "{e}");
    }

    #[test]
    fn an_invalid_glob_is_an_error_at_its_line() {
        let e = members(
            "members = [\"libs/*\"]\nexclude = [\n  \"libs/[\",\n]\n",
            TREE,
        )
        .unwrap_err();
        assert!(e.message.contains("not a valid exclude glob"), "{e}");
        assert_eq!(e.location.unwrap().line, 4);
        let e = members("members = [\"libs/{a\"]\n", TREE).unwrap_err();
        assert!(e.message.contains("not a valid member glob"), "{e}");
        assert_eq!(e.location.unwrap().line, 2);
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
