//! The output contract between a builder and the realiser, checked after the builder exits
//! successfully (in every mode, by [`crate::run`]).
//!
//! A builder controls everything under its build directory, so a hostile or buggy one can
//! leave outputs that would hurt the realiser when it moves them into the store and
//! normalises their modes:
//! * a symlink (the output itself, an ancestor directory, or an entry inside an output
//!   directory) that is absolute or climbs out with `..` would make the store path point
//!   at host files, and an ancestor symlink would make the realiser read host files;
//! * a hard link to a host file would let the realiser's `chmod 0444` change that file
//!   (and store a copy of it);
//! * device nodes, fifos and sockets have no place in a store path;
//! * setuid/setgid bits must never reach the store.
//!
//! [`check_outputs`] rejects all of these with [`SandboxError::UnsafeOutput`]. Missing
//! outputs are not its business: the realiser reports those as a build failure.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::{Action, SandboxError};

fn unsafe_output(path: &Path, reason: impl Into<String>) -> SandboxError {
    SandboxError::UnsafeOutput {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Whether the relative symlink text `target`, found at `link` (relative to the output
/// root), stays inside the output root.
fn stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = link.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

fn check_entry(root: &Path, rel: &Path, path: &Path) -> Result<(), SandboxError> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| SandboxError::io("inspecting output", path, e))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        if rel.as_os_str().is_empty() {
            return Err(unsafe_output(path, "the output itself is a symlink"));
        }
        let target =
            std::fs::read_link(path).map_err(|e| SandboxError::io("reading link", path, e))?;
        if !stays_inside(rel, &target) {
            return Err(unsafe_output(
                path,
                format!(
                    "symlink to `{}` points outside the output `{}`",
                    target.display(),
                    root.display()
                ),
            ));
        }
        return Ok(());
    }
    if ft.is_dir() {
        if meta.permissions().mode() & 0o6000 != 0 {
            return Err(unsafe_output(path, "directory has the setuid/setgid bit"));
        }
        let entries =
            std::fs::read_dir(path).map_err(|e| SandboxError::io("listing output", path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| SandboxError::io("listing output", path, e))?;
            check_entry(root, &rel.join(entry.file_name()), &entry.path())?;
        }
        return Ok(());
    }
    if !ft.is_file() {
        return Err(unsafe_output(
            path,
            "not a regular file, directory or symlink (device, fifo or socket)",
        ));
    }
    if meta.nlink() > 1 {
        return Err(unsafe_output(
            path,
            format!(
                "has {} hard links; outputs must not share inodes with other files",
                meta.nlink()
            ),
        ));
    }
    if meta.permissions().mode() & 0o6000 != 0 {
        return Err(unsafe_output(path, "file has the setuid/setgid bit"));
    }
    Ok(())
}

/// Reject declared outputs that could make the store reach outside itself.
///
/// Every ancestor of an output inside the build directory must be a real directory, and
/// every output must pass the rules in the module documentation.
pub fn check_outputs(action: &Action) -> Result<(), SandboxError> {
    for out in &action.outputs {
        let mut cur = PathBuf::new();
        let comps: Vec<_> = out.components().collect();
        for (i, c) in comps.iter().enumerate() {
            let Component::Normal(name) = c else {
                return Err(SandboxError::InvalidAction(format!(
                    "output `{}` must be a relative path without `..`",
                    out.display()
                )));
            };
            cur.push(name);
            let host = action.build_dir.join(&cur);
            let last = i + 1 == comps.len();
            match std::fs::symlink_metadata(&host) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(SandboxError::io("inspecting output", &host, e)),
                Ok(m) if !last && !m.file_type().is_dir() => {
                    return Err(unsafe_output(
                        &host,
                        format!(
                            "is an ancestor of output `{}` but not a directory (a symlink?)",
                            out.display()
                        ),
                    ));
                }
                Ok(_) if last => check_entry(&host, Path::new(""), &host)?,
                Ok(_) => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use std::os::unix::fs::symlink;

    fn action(build: &Path, outputs: &[&str]) -> Action {
        Action {
            program: "/bin/true".into(),
            args: vec![],
            env: vec![],
            build_dir: build.to_path_buf(),
            store_dir: "/nonexistent".into(),
            inputs: vec![],
            links: vec![],
            toolchain: vec![],
            outputs: outputs.iter().map(PathBuf::from).collect(),
            log_path: build.join("log"),
            limits: Limits::default(),
            view_slot: None,
        }
    }

    #[test]
    fn plain_outputs_and_inner_relative_links_pass() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("out/lib/sub")).unwrap();
        std::fs::write(d.path().join("out/a.o"), b"x").unwrap();
        std::fs::write(d.path().join("out/lib/b"), b"x").unwrap();
        symlink("../b", d.path().join("out/lib/sub/a")).unwrap();
        symlink("b", d.path().join("out/lib/c")).unwrap();
        check_outputs(&action(d.path(), &["out/a.o", "out/lib", "out/missing"])).unwrap();
    }

    #[test]
    fn escaping_symlinks_are_rejected() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("out/dir")).unwrap();
        symlink("/etc/passwd", d.path().join("out/abs")).unwrap();
        symlink("../../x", d.path().join("out/dir/up")).unwrap();
        for out in ["out/abs", "out/dir"] {
            let err = check_outputs(&action(d.path(), &[out])).unwrap_err();
            assert!(
                matches!(err, SandboxError::UnsafeOutput { .. }),
                "{out}: {err}"
            );
        }
    }

    #[test]
    fn symlinked_ancestor_is_rejected() {
        let d = tempfile::tempdir().unwrap();
        symlink("/etc", d.path().join("out")).unwrap();
        let err = check_outputs(&action(d.path(), &["out/passwd"])).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn hard_links_and_setuid_are_rejected() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), b"x").unwrap();
        std::fs::hard_link(d.path().join("a"), d.path().join("b")).unwrap();
        let err = check_outputs(&action(d.path(), &["b"])).unwrap_err();
        assert!(err.to_string().contains("hard links"), "{err}");
        std::fs::write(d.path().join("s"), b"x").unwrap();
        std::fs::set_permissions(d.path().join("s"), std::fs::Permissions::from_mode(0o4755))
            .unwrap();
        let err = check_outputs(&action(d.path(), &["s"])).unwrap_err();
        assert!(err.to_string().contains("setuid"), "{err}");
    }

    #[test]
    fn fifo_is_rejected() {
        let d = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(
            &d.path().join("f"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let err = check_outputs(&action(d.path(), &["f"])).unwrap_err();
        assert!(err.to_string().contains("fifo"), "{err}");
    }

    #[test]
    fn link_depth_is_computed_from_the_link_location() {
        assert!(stays_inside(Path::new("a/b/l"), Path::new("../c")));
        assert!(stays_inside(Path::new("a/l"), Path::new("b/../c")));
        assert!(!stays_inside(Path::new("l"), Path::new("../c")));
        assert!(!stays_inside(Path::new("a/l"), Path::new("/a")));
        assert!(!stays_inside(Path::new("a/l"), Path::new("x/../../..")));
    }
}
