//! GC roots. An out-link (`result`) is a symlink in the user's directory to a store
//! path; the store remembers it under `gcroots/auto/` together with the list of paths
//! its build used (the *keep list*), so collecting garbage never forces a rebuild of a
//! rooted target. Symlinks placed directly in `gcroots/` are roots too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cmod_schema::StorePath;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::StoreError;
use crate::layout::Store;
use crate::registry::write_atomic;

/// A live root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The symlink that roots it.
    pub link: PathBuf,
    /// The store path the link points at.
    pub target: StorePath,
    /// Paths kept alive alongside (the build closure of the target).
    pub keep: Vec<StorePath>,
}

/// A keep list file, `{"link":...,"keep":[...]}`, as GC reads it.
#[derive(Deserialize)]
struct KeepFile {
    keep: Vec<StorePath>,
}

/// The paths an out-link keeps alive, serialised once as a sorted JSON array of store
/// paths. A no-op realisation compares it with the registered keep list byte for byte
/// instead of serialising a thousand paths per out-link again (which showed in no-op
/// profiles); it is parsed only when a keep list has to be written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeepList(Box<RawValue>);

impl KeepList {
    /// The keep list of `paths`.
    pub fn new(paths: &BTreeSet<StorePath>) -> Result<KeepList, StoreError> {
        serde_json::value::to_raw_value(paths)
            .map(KeepList)
            .map_err(|e| StoreError::CorruptMetadata {
                path: "keep list".into(),
                reason: e.to_string(),
            })
    }

    /// The paths, checked to be a JSON array of store paths.
    pub fn paths(&self) -> Result<Vec<StorePath>, StoreError> {
        serde_json::from_str(self.0.get()).map_err(|e| StoreError::CorruptMetadata {
            path: "keep list".into(),
            reason: e.to_string(),
        })
    }
}

impl PartialEq for KeepList {
    fn eq(&self, other: &KeepList) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for KeepList {}

/// Check that the directory an out-link `link` goes in exists (the link itself is
/// created or replaced; its directory never is). `link` is named in the error as given.
pub fn check_out_link_dir(link: &Path) -> Result<(), StoreError> {
    let dir = match link.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let problem = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => "is not a directory",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist",
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => "does not exist",
        Err(e) => {
            return Err(StoreError::io(
                "checking the out-link directory",
                dir.to_path_buf(),
                e,
            ))
        }
    };
    Err(StoreError::OutLinkDir {
        link: link.to_path_buf(),
        dir: dir.to_path_buf(),
        problem,
    })
}

impl Store {
    /// Create or replace the symlink `link` → `target` and register it as a root that
    /// also keeps `keep` alive.
    pub fn add_out_link(
        &self,
        link: &Path,
        target: &StorePath,
        keep: &KeepList,
    ) -> Result<(), StoreError> {
        let link = if link.is_absolute() {
            link.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| StoreError::io("reading the working directory", ".", e))?
                .join(link)
        };
        match std::fs::symlink_metadata(&link) {
            Ok(meta) if !meta.file_type().is_symlink() => {
                return Err(StoreError::OutLinkInTheWay { link });
            }
            Ok(_) => {}
            Err(_) => check_out_link_dir(&link)?,
        }
        let id = blake3::hash(link.as_os_str().as_encoded_bytes()).to_hex()[..32].to_string();
        let auto = self.dir("gcroots/auto");
        let root_link = auto.join(&id);
        let keep_file = auto.join(format!("{id}.keep.json"));
        // Exactly what serde_json writes for a `KeepFile`.
        let mut bytes = b"{\"link\":".to_vec();
        serde_json::to_writer(&mut bytes, &link).map_err(|e| {
            StoreError::io("writing the keep list", &auto, std::io::Error::other(e))
        })?;
        bytes.extend_from_slice(b",\"keep\":");
        bytes.extend_from_slice(keep.0.get().as_bytes());
        bytes.push(b'}');
        let target_path = self.path_of(target);
        // Nothing to do when the link, its root and its keep list are already as wanted
        // (the common case of a no-op build): no file is rewritten.
        let unchanged = std::fs::read_link(&link).is_ok_and(|t| t == target_path)
            && std::fs::read_link(&root_link).is_ok_and(|t| t == link)
            && std::fs::read(&keep_file).is_ok_and(|old| old == bytes);
        if unchanged {
            return Ok(());
        }
        // Only well-formed keep lists are registered (GC reads them back).
        keep.paths()?;
        let tmp = link.with_file_name(format!(
            ".{}.cmod-tmp-{}",
            link.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target_path, &tmp)
            .map_err(|e| StoreError::io("creating the out-link", &tmp, e))?;
        std::fs::rename(&tmp, &link)
            .map_err(|e| StoreError::io("creating the out-link", &link, e))?;
        let _ = std::fs::remove_file(&root_link);
        std::os::unix::fs::symlink(&link, &root_link)
            .map_err(|e| StoreError::io("registering the root", &root_link, e))?;
        write_atomic(&keep_file, &bytes, self.durable())
    }

    /// All live roots; stale auto roots (links deleted or pointing elsewhere) are removed.
    pub fn roots(&self) -> Result<Vec<Root>, StoreError> {
        let mut roots = Vec::new();
        let auto = self.dir("gcroots/auto");
        for e in std::fs::read_dir(&auto).map_err(|e| StoreError::io("listing", &auto, e))? {
            let e = e.map_err(|e| StoreError::io("listing", &auto, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".keep.json") || name.starts_with('.') {
                continue;
            }
            let keep_file = auto.join(format!("{name}.keep.json"));
            let live = std::fs::read_link(e.path()).ok().and_then(|link| {
                let target = std::fs::read_link(&link).ok()?;
                let path = self.parse_path(&target.to_string_lossy()).ok()?;
                let keep = std::fs::read(&keep_file)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<KeepFile>(&b).ok())
                    .map(|k| k.keep)
                    .unwrap_or_default();
                Some(Root {
                    link,
                    target: path,
                    keep,
                })
            });
            match live {
                Some(r) => roots.push(r),
                None => {
                    let _ = std::fs::remove_file(e.path());
                    let _ = std::fs::remove_file(&keep_file);
                }
            }
        }
        let manual = self.dir("gcroots");
        for e in std::fs::read_dir(&manual).map_err(|e| StoreError::io("listing", &manual, e))? {
            let e = e.map_err(|e| StoreError::io("listing", &manual, e))?;
            if e.file_name() == "auto" {
                continue;
            }
            if let Ok(target) = std::fs::read_link(e.path()) {
                if let Ok(path) = self.parse_path(&target.to_string_lossy()) {
                    roots.push(Root {
                        link: e.path(),
                        target: path,
                        keep: Vec::new(),
                    });
                }
            }
        }
        roots.sort_by(|a, b| a.link.cmp(&b.link));
        Ok(roots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmod_schema::PathKind;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn keep_lists_are_written_once_and_read_back_by_gc() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(&t.path().join("store")).unwrap();
        let none = BTreeSet::new();
        let top = s.add_bytes(PathKind::Output, "top", b"top", &none).unwrap();
        let kept = s.add_bytes(PathKind::Output, "a.o", b"a", &none).unwrap();
        let keep = KeepList::new(&BTreeSet::from([kept.clone(), top.clone()])).unwrap();
        let link = t.path().join("result");
        s.add_out_link(&link, &top, &keep).unwrap();

        let auto = s.dir("gcroots/auto");
        let keep_file = std::fs::read_dir(&auto)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".keep.json"))
            .unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&keep_file).unwrap()).unwrap();
        // In the set's order, as the keep list was always written.
        let sorted: Vec<String> = BTreeSet::from([kept.clone(), top.clone()])
            .iter()
            .map(StorePath::to_string)
            .collect();
        assert_eq!(
            json,
            serde_json::json!({"link": link.to_string_lossy(), "keep": sorted})
        );
        let roots = s.roots().unwrap();
        assert_eq!(roots.len(), 1);
        assert_eq!(roots[0].target, top);
        assert_eq!(roots[0].keep.len(), 2);

        // The same link again (a no-op) rewrites nothing.
        let before = std::fs::metadata(&keep_file).unwrap().ino();
        let again = KeepList::new(&BTreeSet::from([top.clone(), kept])).unwrap();
        s.add_out_link(&link, &top, &again).unwrap();
        assert_eq!(std::fs::metadata(&keep_file).unwrap().ino(), before);
        // A different keep list replaces it.
        s.add_out_link(
            &link,
            &top,
            &KeepList::new(&BTreeSet::from([top.clone()])).unwrap(),
        )
        .unwrap();
        assert_ne!(std::fs::metadata(&keep_file).unwrap().ino(), before);
        assert_eq!(s.roots().unwrap()[0].keep, vec![top]);
    }

    #[test]
    fn an_out_link_directory_is_never_created() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(&t.path().join("store")).unwrap();
        let top = s
            .add_bytes(PathKind::Output, "top", b"top", &BTreeSet::new())
            .unwrap();
        let keep = KeepList::new(&BTreeSet::new()).unwrap();
        let link = t.path().join("gone/result");
        let e = s.add_out_link(&link, &top, &keep).unwrap_err();
        assert!(
            matches!(&e, StoreError::OutLinkDir { link: l, problem: "does not exist", .. } if *l == link),
            "{e}"
        );
        assert_eq!(e.exit_class(), cmod_schema::diag::ExitClass::Usage);
        assert!(!t.path().join("gone").exists());
    }

    #[test]
    fn a_malformed_keep_list_is_never_registered() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(&t.path().join("store")).unwrap();
        let top = s
            .add_bytes(PathKind::Output, "top", b"top", &BTreeSet::new())
            .unwrap();
        let bad: KeepList = serde_json::from_str(r#"["not a store path"]"#).unwrap();
        let e = s
            .add_out_link(&t.path().join("result"), &top, &bad)
            .unwrap_err();
        assert!(matches!(e, StoreError::CorruptMetadata { .. }), "{e}");
    }
}
