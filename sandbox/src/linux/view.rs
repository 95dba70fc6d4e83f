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
//! The view is `<build dir>.inputs`, removed when the step ends; one left by a killed
//! process is swept with the build directory's other leftovers.

use std::path::{Path, PathBuf};

use crate::{Action, SandboxError};

/// A step's view of the store (see the module documentation).
pub(crate) struct InputView {
    pub dir: PathBuf,
    /// Inputs (store path basenames) that need their own bind mount, with their
    /// canonical host paths and whether each is a directory.
    pub binds: Vec<(String, PathBuf, bool)>,
}

impl InputView {
    /// Make the view of `action`'s inputs.
    pub fn create(action: &Action) -> Result<InputView, SandboxError> {
        let dir = view_dir(&action.build_dir);
        if dir.exists() {
            remove(&dir);
        }
        std::fs::create_dir(&dir).map_err(|e| SandboxError::io("creating", &dir, e))?;
        let mut view = InputView {
            dir,
            binds: Vec::new(),
        };
        for input in &action.inputs {
            let src = action.store_dir.join(input);
            let at = view.dir.join(input);
            let meta =
                std::fs::metadata(&src).map_err(|e| SandboxError::io("finding input", &src, e))?;
            if meta.is_file() && std::fs::hard_link(&src, &at).is_ok() {
                continue;
            }
            let canonical = std::fs::canonicalize(&src)
                .map_err(|e| SandboxError::io("finding input", &src, e))?;
            let made = if meta.is_dir() {
                std::fs::create_dir(&at)
            } else {
                std::fs::File::create(&at).map(drop)
            };
            made.map_err(|e| SandboxError::io("creating a mount point in", &at, e))?;
            view.binds.push((input.clone(), canonical, meta.is_dir()));
        }
        Ok(view)
    }
}

impl Drop for InputView {
    fn drop(&mut self) {
        remove(&self.dir);
    }
}

/// Where the view of the step building in `build_dir` lives.
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
