//! The store as one step of the full sandbox sees it: a directory holding exactly the
//! step's inputs, bind-mounted read-only at `/cmod/store`.
//!
//! A compile reading the BMIs of a deep module closure has hundreds of input files. A
//! bind mount per input costs about 40 µs (mount point, bind, `mount_setattr`), so the
//! view holds a **hard link** per input file instead (a few µs to make and to remove) and
//! costs one bind mount in all. Hermeticity is the same: the view lists only the inputs,
//! and it is mounted read-only, so neither the files nor their metadata (the inodes the
//! store shares) can be changed from inside (`EROFS`); the view itself lives beside the
//! build directory, never under it, so no writable mount reaches it. Inputs that cannot
//! be linked (directories; a store on a file system that refuses the link) get an empty
//! mount point in the view and their own bind mount on top, as before.
//!
//! **Kept views.** A step whose action names a [`view slot`](crate::Action::view_slot)
//! keeps its view there between runs: the next run of the same step (the same unit after
//! an edit, whose thousands of BMI inputs are mostly unchanged) only removes what it no
//! longer reads and links what is new, instead of linking every input again. A store
//! path's name is its content's, so a file kept under that name still has the right
//! bytes; whoever deletes or replaces store paths (GC, repair) empties the slots first
//! (see `views/` in the store), so a repaired path is never read through an old link.
//! The slot is locked while in use; a step that finds it locked makes a temporary view
//! as before.
//!
//! A temporary view is `<build dir>.inputs`, removed when the step ends; one left by a
//! killed process is swept with the build directory's other leftovers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::kept_links::with_suffix;
use crate::{Action, SandboxError};

/// A step's view of the store (see the module documentation).
pub(crate) struct InputView {
    pub dir: PathBuf,
    /// Inputs (store path basenames) that need their own bind mount, with their
    /// canonical host paths and whether each is a directory.
    pub binds: Vec<(String, PathBuf, bool)>,
    /// The lock of a kept view's slot, held while the view is in use; `None` for a
    /// temporary view (removed on drop).
    kept: Option<Flock<std::fs::File>>,
    /// The kept link directories beside a kept view (see `kept_links.rs`), once made.
    pub links: Option<PathBuf>,
}

impl InputView {
    /// Make the view of `action`'s inputs (bringing a kept one up to date).
    pub fn create(action: &Action) -> Result<InputView, SandboxError> {
        let claimed = action.view_slot.as_deref().and_then(claim);
        let mut view = match claimed {
            Some((dir, lock)) => InputView {
                dir,
                binds: Vec::new(),
                kept: Some(lock),
                links: None,
            },
            None => {
                let dir = view_dir(&action.build_dir);
                if dir.exists() {
                    remove(&dir);
                }
                std::fs::create_dir(&dir).map_err(|e| SandboxError::io("creating", &dir, e))?;
                InputView {
                    dir,
                    binds: Vec::new(),
                    kept: None,
                    links: None,
                }
            }
        };
        let present = match view.kept {
            Some(_) => view.prune(action)?,
            None => HashSet::new(),
        };
        // Links are made relative to the two directories (one short lookup each, where
        // absolute paths would walk both trees again for every input); an input the link
        // refuses (a directory, another file system, a missing one) takes the slow path,
        // which says what is wrong.
        let dirs = std::fs::File::open(&action.store_dir)
            .and_then(|store| Ok((store, std::fs::File::open(&view.dir)?)))
            .ok();
        for input in action
            .inputs
            .iter()
            .filter(|i| !present.contains(i.as_str()))
        {
            if let Some((store, inputs)) = &dirs {
                let flags = nix::fcntl::AtFlags::empty();
                if nix::unistd::linkat(store, input.as_str(), inputs, input.as_str(), flags).is_ok()
                {
                    continue;
                }
            }
            view.add_slowly(action, input)?;
        }
        // Its own time too is the same whenever and however it was made.
        crate::materialise::pin_mtime(&view.dir)?;
        Ok(view)
    }

    /// For a kept view, keep the links under `roots` beside it too (the sandbox then
    /// binds them instead of making them). When none are recorded yet (the step's first
    /// kept run), `Ok(true)`: this run lays its links out inside the sandbox, on a tmpfs
    /// (a host file system allocates a block for each long symlink: hundreds of ms for
    /// a deep closure), and [`InputView::lay_out_kept_links`] makes the kept ones beside
    /// the builder, for the next run.
    pub fn keep_links(
        &mut self,
        action: &Action,
        roots: &std::collections::BTreeSet<PathBuf>,
    ) -> Result<bool, SandboxError> {
        if self.kept.is_none() || roots.is_empty() {
            return Ok(false);
        }
        if !super::kept_links::recorded(&self.dir) {
            return Ok(true);
        }
        self.links = super::kept_links::update(&self.dir, action, roots)?;
        Ok(false)
    }

    /// Lay out the kept links of this (kept) view for the next run, as
    /// [`InputView::keep_links`] would have; best effort (the next run lays out what is
    /// not recorded).
    pub fn lay_out_kept_links(&self, action: &Action, roots: &std::collections::BTreeSet<PathBuf>) {
        if self.kept.is_some() {
            let _ = super::kept_links::update(&self.dir, action, roots);
        }
    }

    /// Put `input` into the view without a relative link: a hard link by path if it is a
    /// file, else an empty mount point and a bind.
    fn add_slowly(&mut self, action: &Action, input: &str) -> Result<(), SandboxError> {
        let src = action.store_dir.join(input);
        let at = self.dir.join(input);
        let meta =
            std::fs::metadata(&src).map_err(|e| SandboxError::io("finding input", &src, e))?;
        if meta.is_file() && std::fs::hard_link(&src, &at).is_ok() {
            return Ok(());
        }
        let canonical =
            std::fs::canonicalize(&src).map_err(|e| SandboxError::io("finding input", &src, e))?;
        let made = if meta.is_dir() {
            std::fs::create_dir(&at)
        } else {
            std::fs::File::create(&at).map(drop)
        };
        made.map_err(|e| SandboxError::io("creating a mount point in", &at, e))?;
        self.binds
            .push((input.to_string(), canonical, meta.is_dir()));
        Ok(())
    }

    /// Remove from a kept view everything `action` does not read, and every entry that
    /// is not a linked file (mount points are made again with their binds); the names of
    /// the entries kept.
    fn prune(&self, action: &Action) -> Result<HashSet<String>, SandboxError> {
        let wanted: HashSet<&str> = action.inputs.iter().map(String::as_str).collect();
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| SandboxError::io("listing", &self.dir, e))?;
        let mut kept = HashSet::new();
        for entry in entries {
            let entry = entry.map_err(|e| SandboxError::io("listing", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // A regular file is a link: a view with a file's mount point is not kept.
            if wanted.contains(name.as_str()) && entry.file_type().is_ok_and(|t| t.is_file()) {
                kept.insert(name);
                continue;
            }
            let path = entry.path();
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| SandboxError::io("removing", &path, e))?;
        }
        Ok(kept)
    }
}

impl Drop for InputView {
    /// A temporary view goes; so does a kept one holding a file's mount point (which
    /// [`InputView::prune`] could not tell from a link).
    fn drop(&mut self) {
        if self.kept.is_none() || self.binds.iter().any(|(_, _, dir)| !dir) {
            remove(&self.dir);
        }
    }
}

/// The kept view in `slot` and its lock, if the slot can be made and nobody else is
/// using it. A slot retired while in use (see [`retire_all`]) is emptied first.
fn claim(slot: &Path) -> Option<(PathBuf, Flock<std::fs::File>)> {
    std::fs::create_dir_all(slot.parent()?).ok()?;
    let lock = lock_slot(slot)?;
    if with_suffix(slot, ".stale").exists() {
        remove_slot(slot).ok()?;
    }
    std::fs::create_dir_all(slot).ok()?;
    Some((slot.to_path_buf(), lock))
}

/// The lock of `slot`, if nobody holds it. (Lock files are never removed: a process
/// could otherwise lock a file another has just unlinked.)
fn lock_slot(slot: &Path) -> Option<Flock<std::fs::File>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(with_suffix(slot, ".lock"))
        .ok()?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()
}

/// What [`remove_slot`] removes, in order. The record of the kept links goes first: a
/// removal killed part way may leave some links and not others, and links without their
/// record are laid out anew by the next step (`kept_links::update`), while a record
/// without its links would be believed. The stale mark goes last, so until everything
/// else is gone the next claim removes the slot again.
fn slot_parts(slot: &Path) -> [PathBuf; 4] {
    [
        with_suffix(slot, ".links.list"),
        slot.to_path_buf(),
        with_suffix(slot, ".links"),
        with_suffix(slot, ".stale"),
    ]
}

/// Remove a slot's view, its kept links and their record, and its stale mark.
fn remove_slot(slot: &Path) -> std::io::Result<()> {
    for path in slot_parts(slot) {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Retire every kept view in `views` (the directory of slots): one not in use is removed
/// with its links; one in use is marked stale, and the step that next claims it starts
/// from an empty slot. For whoever deletes or replaces store paths: a kept link must
/// never outlive the file it was made for.
pub(crate) fn retire_all(views: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(views) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(slot) = path.to_str().and_then(|p| p.strip_suffix(".lock")) else {
            continue;
        };
        let slot = Path::new(slot);
        match lock_slot(slot) {
            Some(_held) => remove_slot(slot)?,
            None => std::fs::write(with_suffix(slot, ".stale"), b"")?,
        }
    }
    Ok(())
}

/// Where the temporary view of the step building in `build_dir` lives.
fn view_dir(build_dir: &Path) -> PathBuf {
    let mut name = build_dir.as_os_str().to_owned();
    name.push(".inputs");
    PathBuf::from(name)
}

/// Remove a view: links and empty mount points only, so nothing it names is touched.
fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A slot's removal killed after any of its parts (GC retiring views, killed): the
    /// next step that claims the slot still lays out every link it asks for. (With the
    /// links removed before their record, a kill between the two left a record of links
    /// that no longer existed, and a compile found `bmi/<module>.pcm` missing.)
    #[test]
    fn a_slot_removal_killed_part_way_leaves_no_false_record() {
        let roots = std::collections::BTreeSet::from([PathBuf::from("bmi")]);
        let t = tempfile::tempdir().unwrap();
        let action = super::super::kept_links::action(&[("bmi/a.pcm", "h1-a.pcm")]);
        for done in 0..=slot_parts(Path::new("s")).len() {
            let slot = t.path().join(format!("slot-{done}"));
            let links = super::super::kept_links::update(&slot, &action, &roots)
                .unwrap()
                .unwrap();
            assert!(links.join("bmi/a.pcm").symlink_metadata().is_ok());
            // As `retire_all` removes a slot nobody holds (no stale mark), killed.
            for part in slot_parts(&slot).iter().take(done) {
                let _ = std::fs::remove_dir_all(part).or_else(|_| std::fs::remove_file(part));
            }
            let links = super::super::kept_links::update(&slot, &action, &roots)
                .unwrap()
                .unwrap();
            assert!(
                links.join("bmi/a.pcm").symlink_metadata().is_ok(),
                "killed after {done} part(s): the link is missing"
            );
        }
    }

    #[test]
    fn files_are_linked_and_directories_get_mount_points() {
        let t = tempfile::tempdir().unwrap();
        let store = t.path().join("store");
        std::fs::create_dir_all(store.join("b-tree")).unwrap();
        std::fs::write(store.join("a-file"), "x").unwrap();
        let build = t.path().join("build-1-1");
        std::fs::create_dir(&build).unwrap();
        let action = Action {
            program: "/bin/true".into(),
            args: vec![],
            env: vec![],
            build_dir: build.clone(),
            store_dir: store.clone(),
            inputs: vec!["a-file".into(), "b-tree".into()],
            links: vec![],
            toolchain: vec![],
            outputs: vec![],
            log_path: t.path().join("log"),
            limits: crate::Limits::default(),
            view_slot: None,
        };
        let view = InputView::create(&action).unwrap();
        assert_eq!(view.dir, t.path().join("build-1-1.inputs"));
        let linked = std::fs::metadata(view.dir.join("a-file")).unwrap();
        assert_eq!(
            linked.ino(),
            std::fs::metadata(store.join("a-file")).unwrap().ino()
        );
        assert!(view.dir.join("b-tree").is_dir());
        assert_eq!(view.binds.len(), 1);
        assert_eq!(view.binds[0].0, "b-tree");
        let dir = view.dir.clone();
        drop(view);
        assert!(!dir.exists());
        assert!(store.join("a-file").exists() && store.join("b-tree").is_dir());
    }
}
