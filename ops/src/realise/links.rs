//! What a realisation leaves behind besides the store paths: out-links to its targets.

use std::path::{Path, PathBuf};

use cmod_schema::StorePath;
use cmod_store::roots::KeepList;
use cmod_store::Store;

use crate::OpsError;

/// Where a realisation's out-links go: none (`--no-link`), or `base` for the first target
/// and `base-<target>` for the others (`/` in a target's name becomes `-`).
#[derive(Debug, Clone, Copy)]
pub enum OutLinks<'a> {
    /// No out-link.
    None,
    /// Links named from this base (`result` by default).
    At(&'a Path),
}

impl OutLinks<'_> {
    /// The link for the `i`-th target, named `name`.
    pub fn link(&self, i: usize, name: &str) -> Option<PathBuf> {
        let OutLinks::At(base) = self else {
            return None;
        };
        Some(match i {
            0 => base.to_path_buf(),
            _ => PathBuf::from(format!("{}-{}", base.display(), name.replace('/', "-"))),
        })
    }
}

/// Point the out-links at the targets' outputs (each a GC root keeping `keep` alive).
pub fn link_outputs(
    store: &Store,
    links: OutLinks<'_>,
    targets: &[(String, StorePath)],
    keep: &KeepList,
) -> Result<(), OpsError> {
    for (i, (name, p)) in targets.iter().enumerate() {
        if let Some(link) = links.link(i, name) {
            store.add_out_link(&link, p, keep)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_links_are_named_after_the_first_and_the_targets() {
        let base = Path::new("out/result");
        let links = OutLinks::At(base);
        assert_eq!(links.link(0, "app"), Some(PathBuf::from("out/result")));
        assert_eq!(
            links.link(1, "tools/gen"),
            Some(PathBuf::from("out/result-tools-gen"))
        );
        assert_eq!(OutLinks::None.link(0, "app"), None);
    }
}
