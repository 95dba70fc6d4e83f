//! The stable-name links of a step with a kept view (see `view.rs`), kept beside it.
//!
//! A compile's module closure is laid out as links at stable names (`bmi/<module>.pcm`
//! pointing into `/cmod/store`). Made afresh inside the sandbox, that is a symlink and a
//! pinned time per BMI on every run: thousands of system calls before the compiler starts
//! on a deep graph. A step with a kept view keeps its link directories on the host
//! instead (`<slot>.links/<root>`), brings them up to date by the difference from what
//! the last run laid out (recorded in `<slot>.links.list`), and binds each read-only at
//! `/build/<root>`. What the builder sees is what a fresh layout shows: the same links
//! with the same targets, the same directories, every time pinned to
//! [`LINK_MTIME`](crate::materialise::LINK_MTIME), read-only.
//!
//! The record is removed before anything changes and written back after, so a run killed
//! halfway leaves no record and the next one lays the directories out from nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::materialise::{link_target, pin_mtime};
use crate::{Action, SandboxError, STORE_DIR};

/// What the link directories hold: each link (relative to the build directory) with its
/// target, and each directory below a root. (Text, not paths: thousands of entries are
/// compared as bytes, where paths would compare component by component.)
#[derive(Default, PartialEq, Eq, Debug)]
struct Layout {
    links: BTreeMap<String, String>,
    dirs: BTreeSet<String>,
}

/// Bring the kept link directories of the view slot `slot` up to date with `action`'s
/// links under `roots`; the directory holding them (one subdirectory per root). `None`
/// when a link cannot be recorded (a path with a tab or a newline): such a step lays its
/// links out inside the sandbox as usual.
pub(crate) fn update(
    slot: &Path,
    action: &Action,
    roots: &BTreeSet<PathBuf>,
) -> Result<Option<PathBuf>, SandboxError> {
    let Some(wanted) = wanted(action, roots) else {
        return Ok(None);
    };
    let dir = with_suffix(slot, ".links");
    let list = with_suffix(slot, ".links.list");
    let recorded = match std::fs::read_to_string(&list).ok().and_then(|t| parse(&t)) {
        Some(recorded) => {
            remove_file(&list)?;
            recorded
        }
        None => {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| SandboxError::io("removing", &dir, e))?;
            }
            Layout::default()
        }
    };
    apply(&dir, &recorded, &wanted, roots)?;
    std::fs::write(&list, render(&wanted)).map_err(|e| SandboxError::io("writing", &list, e))?;
    Ok(Some(dir))
}

/// The layout `action` asks for under `roots`, or `None` if a path cannot be recorded.
fn wanted(action: &Action, roots: &BTreeSet<PathBuf>) -> Option<Layout> {
    let mut layout = Layout::default();
    for link in &action.links {
        let Some(root) = roots.iter().find(|r| link.at.starts_with(r)) else {
            continue;
        };
        let target = link_target(link, Path::new(STORE_DIR));
        let (Some(at), Some(target)) = (recordable(&link.at), recordable(&target)) else {
            return None;
        };
        let mut d = link.at.parent();
        while let Some(p) = d.filter(|p| p.starts_with(root) && *p != root.as_path()) {
            layout.dirs.insert(recordable(p)?);
            d = p.parent();
        }
        layout.links.insert(at, target);
    }
    Some(layout)
}

/// Change the directories under `dir` from `recorded` to `wanted`: stale links and
/// directories go, new ones come, and every time is pinned again.
fn apply(
    dir: &Path,
    recorded: &Layout,
    wanted: &Layout,
    roots: &BTreeSet<PathBuf>,
) -> Result<(), SandboxError> {
    for (at, target) in &recorded.links {
        if wanted.links.get(at) != Some(target) {
            remove_file(&dir.join(at))?;
        }
    }
    for d in recorded
        .dirs
        .iter()
        .rev()
        .filter(|d| !wanted.dirs.contains(*d))
    {
        let path = dir.join(d);
        std::fs::remove_dir_all(&path).map_err(|e| SandboxError::io("removing", &path, e))?;
    }
    // Sorted order: parents before children.
    for d in roots
        .iter()
        .cloned()
        .chain(wanted.dirs.iter().map(PathBuf::from))
    {
        let path = dir.join(d);
        if !path.is_dir() {
            std::fs::create_dir_all(&path).map_err(|e| SandboxError::io("creating", &path, e))?;
        }
    }
    for (at, target) in &wanted.links {
        if recorded.links.get(at) != Some(target) {
            let path = dir.join(at);
            std::os::unix::fs::symlink(target, &path)
                .map_err(|e| SandboxError::io("linking", &path, e))?;
            pin_mtime(&path)?;
        }
    }
    let mut deepest_first: Vec<PathBuf> = wanted
        .dirs
        .iter()
        .map(PathBuf::from)
        .chain(roots.iter().cloned())
        .collect();
    deepest_first.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in deepest_first {
        pin_mtime(&dir.join(d))?;
    }
    Ok(())
}

fn remove_file(path: &Path) -> Result<(), SandboxError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(SandboxError::io("removing", path, e))
        }
        _ => Ok(()),
    }
}

/// `p` as a field of the record (tab-separated lines of UTF-8), if it can be one.
fn recordable(p: &Path) -> Option<String> {
    p.to_str()
        .filter(|s| !s.contains(['\t', '\n']))
        .map(str::to_string)
}

const HEADER: &str = "cmod-kept-links-v1";

/// The record: a header line, then `L\t<at>\t<target>` per link and `D\t<dir>` per
/// directory.
fn render(layout: &Layout) -> String {
    let mut text = format!("{HEADER}\n");
    for (at, target) in &layout.links {
        text.push_str(&format!("L\t{at}\t{target}\n"));
    }
    for d in &layout.dirs {
        text.push_str(&format!("D\t{d}\n"));
    }
    text
}

fn parse(text: &str) -> Option<Layout> {
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let mut layout = Layout::default();
    for line in lines {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["L", at, target] => {
                layout.links.insert(at.to_string(), target.to_string());
            }
            ["D", d] => {
                layout.dirs.insert(d.to_string());
            }
            _ => return None,
        }
    }
    Some(layout)
}

/// `path` with `suffix` appended to its last component (`slot` → `slot.links`).
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// An action whose only links are `links` (stable name, store path), each also an input
/// (for tests of kept links and views).
#[cfg(test)]
pub(super) fn action(links: &[(&str, &str)]) -> Action {
    Action {
        program: "/bin/true".into(),
        args: vec![],
        env: vec![],
        build_dir: "/nonexistent/build".into(),
        store_dir: "/nonexistent/store".into(),
        inputs: links.iter().map(|(_, p)| p.to_string()).collect(),
        links: links
            .iter()
            .map(|(at, p)| crate::Link {
                at: at.into(),
                store_path: p.to_string(),
                sub: None,
            })
            .collect(),
        toolchain: vec![],
        outputs: vec!["out/x.o".into()],
        log_path: "/nonexistent/log".into(),
        limits: crate::Limits::default(),
        view_slot: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// Every entry under `dir`: path, link target (if a link), mtime.
    fn listing(dir: &Path) -> Vec<(PathBuf, Option<PathBuf>, i64)> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                let target = std::fs::read_link(&p).ok();
                if meta.is_dir() {
                    todo.push(p.clone());
                }
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    target,
                    meta.mtime(),
                ));
            }
        }
        out.sort();
        out
    }

    /// An update from any earlier layout ends exactly where a fresh layout does.
    #[test]
    fn an_update_ends_as_a_fresh_layout() {
        let roots = BTreeSet::from([PathBuf::from("bmi")]);
        let first = action(&[("bmi/a.pcm", "h1-a.pcm"), ("bmi/sub/b.pcm", "h1-b.pcm")]);
        let second = action(&[("bmi/a.pcm", "h2-a.pcm"), ("bmi/c.pcm", "h1-c.pcm")]);
        let kept = tempfile::tempdir().unwrap();
        let slot = kept.path().join("step");
        let dir = update(&slot, &first, &roots).unwrap().unwrap();
        assert_eq!(
            std::fs::read_link(dir.join("bmi/sub/b.pcm")).unwrap(),
            Path::new("/cmod/store/h1-b.pcm")
        );
        update(&slot, &second, &roots).unwrap();
        let fresh = tempfile::tempdir().unwrap();
        let fresh_dir = update(&fresh.path().join("step"), &second, &roots)
            .unwrap()
            .unwrap();
        assert_eq!(listing(&dir), listing(&fresh_dir));
        assert!(!dir.join("bmi/sub").exists(), "{:?}", listing(&dir));
        for (path, _, mtime) in listing(&dir) {
            assert_eq!(mtime, crate::materialise::LINK_MTIME, "{}", path.display());
        }
    }

    /// Without its record (a run killed halfway), the directories are laid out anew, so
    /// whatever was left in them is gone.
    #[test]
    fn a_missing_record_starts_from_nothing() {
        let roots = BTreeSet::from([PathBuf::from("bmi")]);
        let kept = tempfile::tempdir().unwrap();
        let slot = kept.path().join("step");
        let a = action(&[("bmi/a.pcm", "h1-a.pcm")]);
        let dir = update(&slot, &a, &roots).unwrap().unwrap();
        std::fs::write(dir.join("bmi/stray"), b"left over").unwrap();
        std::fs::remove_file(with_suffix(&slot, ".links.list")).unwrap();
        update(&slot, &a, &roots).unwrap();
        assert!(!dir.join("bmi/stray").exists());
        assert!(dir.join("bmi/a.pcm").symlink_metadata().is_ok());
    }

    /// A path that cannot be recorded keeps nothing.
    #[test]
    fn unrecordable_paths_are_not_kept() {
        let roots = BTreeSet::from([PathBuf::from("bmi")]);
        let kept = tempfile::tempdir().unwrap();
        let odd = action(&[("bmi/a\tb.pcm", "h1-a.pcm")]);
        assert_eq!(update(&kept.path().join("s"), &odd, &roots).unwrap(), None);
    }
}
