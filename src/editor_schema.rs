//! The copy of the manifest's JSON Schema that editors read: `cmod new` starts every
//! manifest with a `#:schema` line pointing at `<workspace root>/.cmod/manifest.schema.json`
//! (relative, so the line is the same in every clone), and every evaluation keeps that
//! file present and current while a manifest of the workspace names it. taplo and Even
//! Better TOML then validate the manifest and show each key's description, offline.

use std::path::{Component, Path};

use cmod_evaluator::package::PackageGraph;
use cmod_schema::{MANIFEST_SCHEMA, MANIFEST_SCHEMA_FILE};

/// The `#:schema` line of a manifest in `package_dir`, for a workspace rooted at
/// `workspace_root` (the package's own directory outside a workspace).
pub fn directive(package_dir: &Path, workspace_root: &Path) -> String {
    let depth = package_dir
        .strip_prefix(workspace_root)
        .map(|below| {
            below
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .count()
        })
        .unwrap_or(0);
    let up = if depth == 0 {
        "./".to_string()
    } else {
        "../".repeat(depth)
    };
    format!("#:schema {up}{MANIFEST_SCHEMA_FILE}")
}

/// Write the schema under `workspace_root` unless the copy there is already current.
/// Returns whether it wrote. The file is replaced atomically, so an editor never reads
/// half of it.
pub fn install(workspace_root: &Path) -> std::io::Result<bool> {
    let path = workspace_root.join(MANIFEST_SCHEMA_FILE);
    if std::fs::read(&path).is_ok_and(|old| old == MANIFEST_SCHEMA.as_bytes()) {
        return Ok(false);
    }
    cmod_evaluator::cache_io::write_atomic(&path, MANIFEST_SCHEMA.as_bytes())?;
    Ok(true)
}

/// Keep the schema current for an evaluated workspace whose manifests (the workspace's
/// and its members') name it in a `#:schema` line; a manifest without one is left alone,
/// and so is a checkout that cannot be written (the copy only serves editors).
pub fn refresh(graph: &PackageGraph) {
    let names_it = |text: &str| {
        text.lines()
            .take_while(|l| l.starts_with('#') || l.trim().is_empty())
            .any(|l| l.starts_with("#:schema") && l.contains(MANIFEST_SCHEMA_FILE))
    };
    let members = graph
        .members
        .iter()
        .map(|&m| graph.packages[m].file.text.as_str());
    if std::iter::once(graph.workspace_file.text.as_str())
        .chain(members)
        .any(names_it)
    {
        let _ = install(&graph.workspace_root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directive_climbs_from_a_member_to_the_workspace_root() {
        let root = Path::new("/w");
        assert_eq!(
            directive(root, root),
            "#:schema ./.cmod/manifest.schema.json"
        );
        assert_eq!(
            directive(Path::new("/w/libs/a"), root),
            "#:schema ../../.cmod/manifest.schema.json"
        );
        // Outside the workspace (not a member): its own directory.
        assert_eq!(
            directive(Path::new("/elsewhere/p"), root),
            "#:schema ./.cmod/manifest.schema.json"
        );
    }

    #[test]
    fn install_writes_once_and_repairs_a_stale_copy() {
        let t = tempfile::tempdir().unwrap();
        assert!(install(t.path()).unwrap());
        assert!(
            !install(t.path()).unwrap(),
            "a current copy is not rewritten"
        );
        let path = t.path().join(MANIFEST_SCHEMA_FILE);
        std::fs::write(&path, "{}").unwrap();
        assert!(install(t.path()).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), MANIFEST_SCHEMA);
    }
}
