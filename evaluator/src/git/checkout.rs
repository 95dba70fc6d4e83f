//! Writing a commit's tree to a directory (and reading single files of it), with cmod's
//! content hash computed from the git objects as they are written.

use std::path::Path;

use cmod_schema::ContentHash;
use gix::ObjectId;

use super::GitError;

fn obj_err(id: &ObjectId, e: impl std::fmt::Display) -> GitError {
    GitError::Object {
        id: id.to_string(),
        message: e.to_string(),
    }
}

/// Write the tree of `commit` into `dest` (created; must not exist) and return the
/// content hash of what was written.
pub fn checkout(
    repo: &gix::Repository,
    commit: &ObjectId,
    dest: &Path,
) -> Result<ContentHash, GitError> {
    let c = repo.find_commit(*commit).map_err(|e| obj_err(commit, e))?;
    let tree = c.tree_id().map_err(|e| obj_err(commit, e))?.detach();
    write_tree(repo, &tree, dest, "")
}

fn write_tree(
    repo: &gix::Repository,
    id: &ObjectId,
    dir: &Path,
    rel: &str,
) -> Result<ContentHash, GitError> {
    std::fs::create_dir(dir).map_err(|e| GitError::io("creating", dir, e))?;
    let tree = repo.find_tree(*id).map_err(|e| obj_err(id, e))?;
    let mut entries = Vec::new();
    for entry in tree.iter() {
        let entry = entry.map_err(|e| obj_err(id, e))?;
        entries.push((
            entry.filename().to_owned(),
            entry.mode(),
            entry.oid().to_owned(),
        ));
    }
    let mut hashes: Vec<(Vec<u8>, ContentHash)> = Vec::with_capacity(entries.len());
    for (name, mode, oid) in entries {
        let name_str = name.to_string();
        let child_rel = if rel.is_empty() {
            name_str.clone()
        } else {
            format!("{rel}/{name_str}")
        };
        if name_str.is_empty()
            || name_str == "."
            || name_str == ".."
            || name_str.contains('/')
            || name_str.contains('\0')
            || name_str.eq_ignore_ascii_case(".git")
        {
            return Err(GitError::UnsafeName(child_rel));
        }
        let path = dir.join(&name_str);
        let hash = if mode.is_tree() {
            write_tree(repo, &oid, &path, &child_rel)?
        } else if mode.is_commit() {
            return Err(GitError::Submodule(child_rel));
        } else {
            let blob = repo.find_object(oid).map_err(|e| obj_err(&oid, e))?;
            if mode.is_link() {
                let target =
                    std::path::PathBuf::from(String::from_utf8_lossy(&blob.data).into_owned());
                std::os::unix::fs::symlink(&target, &path)
                    .map_err(|e| GitError::io("linking", &path, e))?;
                ContentHash::of_symlink(&blob.data)
            } else {
                std::fs::write(&path, &blob.data).map_err(|e| GitError::io("writing", &path, e))?;
                let exec = mode.is_executable();
                if exec {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                        .map_err(|e| GitError::io("setting permissions of", &path, e))?;
                }
                ContentHash::of_file(exec, &blob.data)
            }
        };
        hashes.push((name_str.into_bytes(), hash));
    }
    Ok(ContentHash::of_dir(
        hashes.iter().map(|(n, h)| (n.as_slice(), *h)),
    ))
}

/// The contents of file `path` (`/`-separated) in `commit`, if it exists.
pub fn read_file(
    repo: &gix::Repository,
    commit: &ObjectId,
    path: &str,
) -> Result<Option<Vec<u8>>, GitError> {
    let c = repo.find_commit(*commit).map_err(|e| obj_err(commit, e))?;
    let mut tree = c.tree().map_err(|e| obj_err(commit, e))?;
    let Some(entry) = tree
        .peel_to_entry_by_path(path)
        .map_err(|e| obj_err(commit, e))?
    else {
        return Ok(None);
    };
    let blob = repo
        .find_object(entry.oid())
        .map_err(|e| obj_err(commit, e))?;
    Ok(Some(blob.data.clone()))
}
