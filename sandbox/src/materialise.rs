//! Preparing the build directory: stable-name links, the private temp dir, argument
//! placeholders. Shared by every mode so that all modes present the same tree.

use std::path::Path;

use crate::{Action, SandboxError, BUILD_DIR_PLACEHOLDER};

/// The mtime of every stable-name link and prepared directory (the same as every store
/// file's).
pub(crate) const LINK_MTIME: i64 = 1;

/// Create the stable-name links and `.tmp` in the (host) build directory.
///
/// `store_seen` is the store directory as the builder will see it (`/cmod/store` inside the
/// namespace sandbox, the host store directory otherwise); links may therefore dangle on
/// the host and resolve only inside the sandbox.
pub(crate) fn prepare_build_dir(action: &Action, store_seen: &Path) -> Result<(), SandboxError> {
    let tmp = action.build_dir.join(".tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| SandboxError::io("creating", &tmp, e))?;
    for out in &action.outputs {
        if let Some(parent) = out.parent() {
            let dir = action.build_dir.join(parent);
            std::fs::create_dir_all(&dir).map_err(|e| SandboxError::io("creating", &dir, e))?;
        }
    }
    for link in &action.links {
        let at = action.build_dir.join(&link.at);
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent).map_err(|e| SandboxError::io("creating", parent, e))?;
        }
        let mut target = store_seen.join(&link.store_path);
        if let Some(sub) = &link.sub {
            target.push(sub);
        }
        std::os::unix::fs::symlink(&target, &at)
            .map_err(|e| SandboxError::io("linking", &at, e))?;
        pin_mtime(&at)?;
    }
    // clang folds the mtimes of an imported module file's link *and of the directory
    // holding it* into the importing BMI's signature; pin every directory we prepared
    // (deepest first, since creating entries touches the parent) so identical inputs give
    // identical BMIs.
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    for rel in action.links.iter().map(|l| &l.at).chain(&action.outputs) {
        let mut p = rel.parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.push(action.build_dir.join(d));
            p = d.parent();
        }
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    for d in dirs.iter().chain([&tmp, &action.build_dir]) {
        pin_mtime(d)?;
    }
    Ok(())
}

/// Set the mtime (and atime) of `path` itself, not following symlinks, to [`LINK_MTIME`].
fn pin_mtime(path: &Path) -> Result<(), SandboxError> {
    let t = nix::sys::time::TimeSpec::new(LINK_MTIME, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| SandboxError::io("setting the time of", path, e.into()))
}

/// Substitute the build-dir placeholder in every argument.
pub(crate) fn substitute_args(args: &[String], build_dir_seen: &str) -> Vec<String> {
    args.iter()
        .map(|a| a.replace(BUILD_DIR_PLACEHOLDER, build_dir_seen))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, Link};

    #[test]
    fn links_point_into_the_seen_store() {
        let dir = tempfile::tempdir().unwrap();
        let action = Action {
            program: "/bin/true".into(),
            args: vec![],
            env: vec![],
            build_dir: dir.path().to_path_buf(),
            store_dir: "/nonexistent".into(),
            inputs: vec!["h-src".into()],
            links: vec![Link {
                at: "src/pkg/a.cpp".into(),
                store_path: "h-src".into(),
                sub: Some("a.cpp".into()),
            }],
            toolchain: vec![],
            outputs: vec!["out/a.o".into()],
            log_path: dir.path().join("log"),
            limits: Limits::default(),
        };
        prepare_build_dir(&action, Path::new("/cmod/store")).unwrap();
        let link = dir.path().join("src/pkg/a.cpp");
        let target = std::fs::read_link(&link).unwrap();
        assert_eq!(target, Path::new("/cmod/store/h-src/a.cpp"));
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::symlink_metadata(&link).unwrap().mtime(),
            LINK_MTIME
        );
        for d in ["src/pkg", "src", "out", ".tmp", ""] {
            let m = std::fs::metadata(dir.path().join(d)).unwrap().mtime();
            assert_eq!(m, LINK_MTIME, "directory `{d}`");
        }
        assert!(dir.path().join("out").is_dir());
        assert!(dir.path().join(".tmp").is_dir());
    }

    #[test]
    fn placeholder_is_substituted_everywhere() {
        let args = vec![
            "-ffile-prefix-map=@builddir@=/build".to_string(),
            "x".into(),
        ];
        assert_eq!(
            substitute_args(&args, "/tmp/b1"),
            vec!["-ffile-prefix-map=/tmp/b1=/build".to_string(), "x".into()]
        );
    }
}
