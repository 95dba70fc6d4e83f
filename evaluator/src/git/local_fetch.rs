//! Fetching from a repository on this machine, in-process: every object reachable from
//! the source's tags and branches that the cache lacks is copied over (dependencies
//! before what needs them, so the cache never holds a commit without its history), then
//! the cache's refs are made to mirror the source's exactly.

use std::collections::HashSet;
use std::path::Path;

use gix::objs::Write as _;
use gix::ObjectId;

use super::{refs, GitError, Refs};

pub(super) fn fetch(source: &Path, cache: &Path, url: &str) -> Result<(), GitError> {
    let fail = |e: &dyn std::fmt::Display| GitError::Fetch {
        url: url.to_string(),
        message: e.to_string(),
    };
    let src = gix::open(source).map_err(|e| fail(&e))?;
    let dst = if cache.join("HEAD").exists() {
        gix::open(cache).map_err(|e| fail(&e))?
    } else {
        gix::init_bare(cache).map_err(|e| fail(&e))?
    };
    let wanted = refs(&src)?;
    let mut copier = Copier {
        src: &src,
        dst: &dst,
        done: HashSet::new(),
    };
    for id in wanted.tags.values().chain(wanted.branches.values()) {
        copier.commit_closure(*id)?;
    }
    mirror_refs(&dst, &wanted).map_err(|e| fail(&e))
}

struct Copier<'a> {
    src: &'a gix::Repository,
    dst: &'a gix::Repository,
    done: HashSet<ObjectId>,
}

impl Copier<'_> {
    fn copy_raw(&self, id: ObjectId) -> Result<gix::objs::Kind, GitError> {
        let obj = self.src.find_object(id).map_err(|e| GitError::Object {
            id: id.to_string(),
            message: e.to_string(),
        })?;
        let kind = obj.kind;
        self.dst
            .objects
            .write_buf(kind, &obj.data)
            .map_err(|e| GitError::Object {
                id: id.to_string(),
                message: e.to_string(),
            })?;
        Ok(kind)
    }

    /// Copy commit `tip` and, first, everything it needs that the cache lacks.
    fn commit_closure(&mut self, tip: ObjectId) -> Result<(), GitError> {
        // Iterative post-order over the commit graph: parents are written before children.
        let mut stack: Vec<(ObjectId, bool)> = vec![(tip, false)];
        while let Some((id, expanded)) = stack.pop() {
            if self.done.contains(&id) || self.dst.has_object(id) {
                self.done.insert(id);
                continue;
            }
            let commit = self.src.find_commit(id).map_err(|e| GitError::Object {
                id: id.to_string(),
                message: e.to_string(),
            })?;
            if expanded {
                let tree = commit
                    .tree_id()
                    .map_err(|e| GitError::Object {
                        id: id.to_string(),
                        message: e.to_string(),
                    })?
                    .detach();
                self.tree(tree)?;
                self.copy_raw(id)?;
                self.done.insert(id);
            } else {
                stack.push((id, true));
                for parent in commit.parent_ids() {
                    stack.push((parent.detach(), false));
                }
            }
        }
        Ok(())
    }

    fn tree(&mut self, id: ObjectId) -> Result<(), GitError> {
        if self.done.contains(&id) || self.dst.has_object(id) {
            return Ok(());
        }
        let tree = self.src.find_tree(id).map_err(|e| GitError::Object {
            id: id.to_string(),
            message: e.to_string(),
        })?;
        let mut children = Vec::new();
        for entry in tree.iter() {
            let entry = entry.map_err(|e| GitError::Object {
                id: id.to_string(),
                message: e.to_string(),
            })?;
            children.push((entry.mode(), entry.oid().to_owned()));
        }
        for (mode, child) in children {
            if mode.is_tree() {
                self.tree(child)?;
            } else if mode.is_commit() {
                // A submodule's commit lives in another repository; checkout rejects it.
            } else if !self.done.contains(&child) && !self.dst.has_object(child) {
                self.copy_raw(child)?;
                self.done.insert(child);
            }
        }
        self.copy_raw(id)?;
        self.done.insert(id);
        Ok(())
    }
}

/// Make the cache's tags and branches exactly the source's (moved tags move, deleted ones
/// go away).
fn mirror_refs(dst: &gix::Repository, wanted: &Refs) -> Result<(), Box<dyn std::error::Error>> {
    use gix::refs::transaction::PreviousValue;
    let have = refs(dst)?;
    for (name, id) in &wanted.tags {
        if have.tags.get(name) != Some(id) {
            dst.reference(
                format!("refs/tags/{name}"),
                *id,
                PreviousValue::Any,
                "cmod fetch",
            )?;
        }
    }
    for (name, id) in &wanted.branches {
        if have.branches.get(name) != Some(id) {
            dst.reference(
                format!("refs/heads/{name}"),
                *id,
                PreviousValue::Any,
                "cmod fetch",
            )?;
        }
    }
    let stale: Vec<String> = have
        .tags
        .keys()
        .filter(|t| !wanted.tags.contains_key(*t))
        .map(|t| format!("refs/tags/{t}"))
        .chain(
            have.branches
                .keys()
                .filter(|b| !wanted.branches.contains_key(*b))
                .map(|b| format!("refs/heads/{b}")),
        )
        .collect();
    for name in stale {
        dst.find_reference(name.as_str())?.delete()?;
    }
    Ok(())
}
