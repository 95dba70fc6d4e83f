//! Preparing the build directory: stable-name links, the private temp dir, argument
//! placeholders. Shared by every mode so that all modes present the same tree.

use std::path::Path;

use crate::{Action, SandboxError, BUILD_DIR_PLACEHOLDER};

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
    }
    Ok(())
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
        let target = std::fs::read_link(dir.path().join("src/pkg/a.cpp")).unwrap();
        assert_eq!(target, Path::new("/cmod/store/h-src/a.cpp"));
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
