//! Preparing the build directory: stable-name links, the private temp dir, argument
//! placeholders. Shared by every mode so that all modes present the same tree.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use crate::{Action, Link, SandboxError, BUILD_DIR_PLACEHOLDER};

/// The mtime of every stable-name link and prepared directory (the same as every store
/// file's).
pub(crate) const LINK_MTIME: i64 = 1;

/// The top-level directories of the build directory that hold only stable-name links
/// (no output and not `.tmp`), e.g. `bmi`, `obj` and `src`. The namespace sandbox lays
/// them out on a private tmpfs inside the sandbox instead of the host build directory:
/// a compile with a hundred module inputs then creates and deletes no host inodes for
/// them (on ext4 that costs about 0.2 ms a link).
pub(crate) fn link_roots(action: &Action) -> BTreeSet<PathBuf> {
    let top = |p: &Path| match p.components().next() {
        Some(Component::Normal(c)) if p.components().count() > 1 => Some(PathBuf::from(c)),
        _ => None,
    };
    let taken: BTreeSet<PathBuf> = action
        .outputs
        .iter()
        .filter_map(|o| o.components().next())
        .map(|c| PathBuf::from(c.as_os_str()))
        .chain([PathBuf::from(".tmp")])
        .collect();
    action
        .links
        .iter()
        .filter_map(|l| top(&l.at))
        .filter(|t| !taken.contains(t))
        .collect()
}

/// Where a link points, as the builder sees the store (`store_seen`).
pub(crate) fn link_target(link: &Link, store_seen: &Path) -> PathBuf {
    let mut target = store_seen.join(&link.store_path);
    if let Some(sub) = &link.sub {
        target.push(sub);
    }
    target
}

/// Create the stable-name links and `.tmp` in the (host) build directory. Links under
/// `elsewhere` (see [`link_roots`]) are left to the sandbox; only their top directory is
/// created here, as a mount point.
///
/// `store_seen` is the store directory as the builder will see it (`/cmod/store` inside the
/// namespace sandbox, the host store directory otherwise); links may therefore dangle on
/// the host and resolve only inside the sandbox.
pub(crate) fn prepare_build_dir(
    action: &Action,
    store_seen: &Path,
    elsewhere: &BTreeSet<PathBuf>,
) -> Result<(), SandboxError> {
    for root in elsewhere {
        let dir = action.build_dir.join(root);
        std::fs::create_dir_all(&dir).map_err(|e| SandboxError::io("creating", &dir, e))?;
        pin_mtime(&dir)?;
    }
    let on_host = |at: &Path| !elsewhere.iter().any(|r| at.starts_with(r));
    let tmp = action.build_dir.join(".tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| SandboxError::io("creating", &tmp, e))?;
    for out in &action.outputs {
        if let Some(parent) = out.parent() {
            let dir = action.build_dir.join(parent);
            std::fs::create_dir_all(&dir).map_err(|e| SandboxError::io("creating", &dir, e))?;
        }
    }
    let mut made: BTreeSet<&Path> = BTreeSet::new();
    for link in action.links.iter().filter(|l| on_host(&l.at)) {
        let at = action.build_dir.join(&link.at);
        if let Some(parent) = link.at.parent().filter(|p| made.insert(p)) {
            let parent = action.build_dir.join(parent);
            std::fs::create_dir_all(&parent)
                .map_err(|e| SandboxError::io("creating", &parent, e))?;
        }
        std::os::unix::fs::symlink(link_target(link, store_seen), &at)
            .map_err(|e| SandboxError::io("linking", &at, e))?;
        pin_mtime(&at)?;
    }
    // clang folds the mtimes of an imported module file's link *and of the directory
    // holding it* into the importing BMI's signature; pin every directory we prepared
    // (deepest first, since creating entries touches the parent) so identical inputs give
    // identical BMIs.
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    for rel in action
        .links
        .iter()
        .map(|l| &l.at)
        .filter(|at| on_host(at))
        .chain(&action.outputs)
    {
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
pub(crate) fn pin_mtime(path: &Path) -> Result<(), SandboxError> {
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
    fn link_roots_are_top_directories_without_outputs() {
        let link = |at: &str| Link {
            at: at.into(),
            store_path: "h-x".into(),
            sub: None,
        };
        let action = Action {
            program: "/bin/true".into(),
            args: vec![],
            env: vec![],
            build_dir: "/b".into(),
            store_dir: "/s".into(),
            inputs: vec![],
            links: [
                "bmi/a.pcm",
                "src/p/a.cpp",
                "out/x",
                ".tmp/y",
                "top.o",
                "obj/a.o",
            ]
            .into_iter()
            .map(link)
            .collect(),
            toolchain: vec![],
            outputs: vec!["out/a.o".into(), "obj".into()],
            log_path: "/l".into(),
            limits: Limits::default(),
            view_slot: None,
        };
        // `out` and `obj` hold outputs, `.tmp` is the temp dir, `top.o` has no directory.
        let roots: Vec<PathBuf> = link_roots(&action).into_iter().collect();
        assert_eq!(roots, [PathBuf::from("bmi"), PathBuf::from("src")]);
        assert_eq!(
            link_target(&action.links[1], Path::new("/cmod/store")),
            Path::new("/cmod/store/h-x")
        );
    }

    /// Links under a root left to the sandbox are not created on the host; the root is,
    /// as an empty mount point with the pinned time.
    #[test]
    fn links_left_to_the_sandbox_get_only_a_mount_point() {
        let dir = tempfile::tempdir().unwrap();
        let action = Action {
            program: "/bin/true".into(),
            args: vec![],
            env: vec![],
            build_dir: dir.path().to_path_buf(),
            store_dir: "/nonexistent".into(),
            inputs: vec![],
            links: vec![
                Link {
                    at: "bmi/m/a.pcm".into(),
                    store_path: "h-a".into(),
                    sub: None,
                },
                Link {
                    at: "obj/b.o".into(),
                    store_path: "h-b".into(),
                    sub: None,
                },
            ],
            toolchain: vec![],
            outputs: vec!["out/a.o".into()],
            log_path: dir.path().join("log"),
            limits: Limits::default(),
            view_slot: None,
        };
        let roots = BTreeSet::from([PathBuf::from("bmi")]);
        prepare_build_dir(&action, Path::new("/cmod/store"), &roots).unwrap();
        let bmi = dir.path().join("bmi");
        assert_eq!(std::fs::read_dir(&bmi).unwrap().count(), 0);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&bmi).unwrap().mtime(), LINK_MTIME);
        assert_eq!(
            std::fs::read_link(dir.path().join("obj/b.o")).unwrap(),
            Path::new("/cmod/store/h-b")
        );
    }

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
            view_slot: None,
        };
        prepare_build_dir(&action, Path::new("/cmod/store"), &BTreeSet::new()).unwrap();
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
