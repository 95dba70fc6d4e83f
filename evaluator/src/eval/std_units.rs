//! The standard library modules `std` and `std.compat`, added as units when a unit imports
//! them and the toolchain ships them (libc++). They are scanned like any unit (cached
//! by content), because the headers of the system they include (`/usr/include/...`) are
//! not covered by the toolchain's identity and must be tracked one by one.

use std::path::Path;
use std::sync::Arc;

use cmod_schema::manifest::Stdlib;
use cmod_schema::toolchain::ToolchainInfo;
use cmod_schema::ContentHash;

use crate::derive::STD_MODULE_DIR;
use crate::error::{ErrorKind, EvalError};
use crate::file_cache::FileCache;
use crate::graph::{Origin, RawUnit};
use crate::package::PackageGraph;
use crate::scan::{scan_package, HeaderScope, ScanCache, ScanItem};
use crate::settings::Settings;

/// Add `std` (and `std.compat`) to `raw` when a unit imports them and the toolchain ships
/// them; returns the module sources that went through the scanner. A module source the
/// toolchain lists but that cannot be read is an error naming it.
pub(super) fn add(
    toolchain: &ToolchainInfo,
    settings: &Settings,
    packages: &PackageGraph,
    files: &FileCache,
    cache_dir: Option<&Path>,
    raw: &mut Vec<RawUnit>,
) -> Result<Vec<String>, EvalError> {
    let (Some(dir), Some(_)) = (&toolchain.std_module_dir, toolchain.std_module_hash) else {
        return Ok(Vec::new());
    };
    if toolchain.stdlib != Stdlib::Libcxx {
        return Ok(Vec::new());
    }
    let wants = |name: &str| {
        raw.iter()
            .any(|u| u.scanned.requires.iter().any(|r| r == name))
    };
    let compat = wants("std.compat");
    if !(compat || wants("std")) {
        return Ok(Vec::new());
    }
    let mut wanted = vec!["std.cppm"];
    if compat {
        wanted.push("std.compat.cppm");
    }
    let flags = Arc::new(settings.std_flags(packages));
    let mut items = Vec::new();
    for file in &wanted {
        let hash = std_module_hash(&dir.join(file))?;
        let tail = |isystem: String| {
            vec![
                isystem,
                "-Wno-reserved-module-identifier".to_string(),
                "-Wno-reserved-user-defined-literal".to_string(),
            ]
        };
        let mut args = vec!["-x".to_string(), "c++-module".to_string()];
        args.extend(flags.render(&|_| String::new()));
        let mut host_args = args.clone();
        args.extend(tail(format!("-isystem{STD_MODULE_DIR}")));
        host_args.extend(tail(format!("-isystem{}", dir.display())));
        items.push(ScanItem {
            rel: file.to_string(),
            hash,
            args,
            host_args,
            source: None,
        });
    }
    let scope = HeaderScope {
        root: dir.clone(),
        packages: Vec::new(),
        system_dirs: Vec::new(),
    };
    let cache = ScanCache::load(dir, cache_dir);
    let scan = scan_package(toolchain, &scope, &items, files, cache, None, None)?;
    for (item, mut scanned) in items.into_iter().zip(scan.results) {
        // The whole module directory is the step's source tree.
        scanned.headers.clear();
        raw.push(RawUnit {
            origin: Origin::Toolchain,
            abs: dir.join(&item.rel),
            rel: item.rel,
            hash: item.hash,
            scanned,
            flags: Arc::clone(&flags),
        });
    }
    Ok(scan.rescanned.iter().map(|r| format!("std/{r}")).collect())
}

/// The content hash of one of the toolchain's standard library module sources.
fn std_module_hash(path: &Path) -> Result<ContentHash, EvalError> {
    crate::hashing::hash_file(path)
        .map(|(h, _)| h)
        .map_err(|e| {
            EvalError::new(
                ErrorKind::Toolchain,
                format!(
                    "cannot read the standard library module source `{}`: {e}",
                    path.display()
                ),
            )
            .help("`import std;` needs libc++'s module sources; reinstall them with `apt-get install --reinstall libc++-19-dev`, or use stdlib = \"libstdc++\" without `import std;`")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_std_module_source_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let missing = t.path().join("std.cppm");
        let e = std_module_hash(&missing).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Toolchain);
        assert!(
            e.message.contains(&format!(
                "cannot read the standard library module source `{}`",
                missing.display()
            )),
            "{e}"
        );
        assert!(e.help.unwrap().contains("libc++-19-dev"));
        std::fs::write(&missing, "export module std;\n").unwrap();
        assert_eq!(
            std_module_hash(&missing).unwrap(),
            crate::hashing::hash_file(&missing).unwrap().0
        );
    }
}
