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
//! A slot with no record yet (the step's first kept run) is not laid out before the
//! builder starts: on a host file system each of these symlinks gets a block of its own
//! (their targets are too long to be stored in the inode), which cost 200–300 µs apiece
//! on this machine kind's ext4, over half a second for a deep closure at 3,001 units.
//! That run lays its links out inside the sandbox on a tmpfs, as a step without a kept
//! view does (a few µs each), and the kept directories are made on the host while the
//! builder runs, for the next run.
//!
//! The record is removed before anything changes and written back after, so a run killed
//! halfway leaves no record and the next one lays the directories out from nothing. The
//! record has a section per root, headed by a digest of what that root's layout is made
//! from (its links): a root whose digest is the recorded one is left as it is and its
//! section copied, so after an edit the unit's `src` root is laid out again and its
//! thousands of BMIs under `bmi` are not compared one by one.

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
    let dir = with_suffix(slot, ".links");
    let list = with_suffix(slot, ".links.list");
    let Some(digests) = root_digests(action, roots) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&list).ok();
    let recorded = text.as_deref().and_then(Record::parse);
    let unchanged = |r: &Record<'_>| {
        r.roots.len() == digests.len()
            && digests
                .iter()
                .all(|(root, d)| r.roots.get(root.as_str()).is_some_and(|(rd, _)| rd == d))
    };
    match &recorded {
        Some(r) if unchanged(r) => return Ok(Some(dir)),
        Some(_) => remove_file(&list)?,
        None if dir.exists() => {
            std::fs::remove_dir_all(&dir).map_err(|e| SandboxError::io("removing", &dir, e))?;
        }
        None => {}
    }
    let mut out = format!("{HEADER}\n");
    for (root, digest) in &digests {
        let old = recorded.as_ref().and_then(|r| r.roots.get(root.as_str()));
        out.push_str(&format!("R\t{root}\t{digest}\n"));
        if let Some((_, lines)) = old.filter(|(d, _)| d == digest) {
            lines.iter().for_each(|l| {
                out.push_str(l);
                out.push('\n');
            });
            continue;
        }
        let root_set = BTreeSet::from([PathBuf::from(root)]);
        let before = match old.and_then(|(_, lines)| parse(lines)) {
            Some(before) => before,
            None => {
                let at = dir.join(root);
                if at.exists() {
                    std::fs::remove_dir_all(&at)
                        .map_err(|e| SandboxError::io("removing", &at, e))?;
                }
                Layout::default()
            }
        };
        let Some(wanted) = wanted(action, &root_set) else {
            return Ok(None);
        };
        apply(&dir, &before, &wanted, &root_set)?;
        out.push_str(&render(&wanted));
    }
    std::fs::write(&list, out).map_err(|e| SandboxError::io("writing", &list, e))?;
    Ok(Some(dir))
}

/// Whether the view slot `slot` has a record of kept links (of any layout: [`update`]
/// brings it up to date by difference).
pub(crate) fn recorded(slot: &Path) -> bool {
    let list = with_suffix(slot, ".links.list");
    std::fs::read_to_string(list).is_ok_and(|text| Record::parse(&text).is_some())
}

/// Each root's digest of what its layout is made from (its links), by root; `None` if a
/// root or a link under one cannot be recorded.
fn root_digests(action: &Action, roots: &BTreeSet<PathBuf>) -> Option<BTreeMap<String, String>> {
    let mut digests: BTreeMap<&Path, Digest> = BTreeMap::new();
    for root in roots {
        let mut d = Digest::new(HEADER);
        d.bytes(STORE_DIR.as_bytes());
        d.bytes(recordable(root)?.as_bytes());
        digests.insert(root, d);
    }
    for link in &action.links {
        let Some(d) = root_of(link, roots).and_then(|r| digests.get_mut(r.as_path())) else {
            continue;
        };
        d.bytes(recordable(&link.at)?.as_bytes());
        d.bytes(recordable(Path::new(&link.store_path))?.as_bytes());
        match &link.sub {
            Some(sub) => d.bytes(recordable(sub)?.as_bytes()),
            None => d.count(usize::MAX),
        }
    }
    digests
        .into_iter()
        .map(|(root, d)| Some((recordable(root)?.to_string(), d.hex())))
        .collect()
}

/// A record read back: each root's digest and lines (see [`render`]).
struct Record<'a> {
    roots: BTreeMap<&'a str, (&'a str, Vec<&'a str>)>,
}

impl<'a> Record<'a> {
    /// The sections of `text`, or `None` if it is not a record of this format.
    fn parse(text: &'a str) -> Option<Record<'a>> {
        let mut lines = text.lines();
        if lines.next()? != HEADER {
            return None;
        }
        let mut roots: BTreeMap<&str, (&str, Vec<&str>)> = BTreeMap::new();
        let mut current = None;
        for line in lines {
            if let Some(section) = line.strip_prefix("R\t") {
                let (root, digest) = section.split_once('\t')?;
                roots.insert(root, (digest, Vec::new()));
                current = Some(root);
            } else {
                roots.get_mut(current?)?.1.push(line);
            }
        }
        Some(Record { roots })
    }
}

/// A digest of length-prefixed fields.
struct Digest(blake3::Hasher);

impl Digest {
    /// A digest of a record of kind `kind`.
    fn new(kind: &str) -> Digest {
        let mut d = Digest(blake3::Hasher::new());
        d.bytes(kind.as_bytes());
        d
    }

    /// Add a number (a count of the fields that follow).
    fn count(&mut self, n: usize) {
        self.0.update(&(n as u64).to_le_bytes());
    }

    /// Add a field.
    fn bytes(&mut self, b: &[u8]) {
        self.count(b.len());
        self.0.update(b);
    }

    /// The digest, in hexadecimal.
    fn hex(&self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

/// The layout `action` asks for under `roots`, or `None` if a path cannot be recorded.
fn wanted(action: &Action, roots: &BTreeSet<PathBuf>) -> Option<Layout> {
    let mut layout = Layout::default();
    for link in &action.links {
        let Some(root) = root_of(link, roots) else {
            continue;
        };
        let target = link_target(link, Path::new(STORE_DIR));
        let (Some(at), Some(target)) = (recordable(&link.at), recordable(&target)) else {
            return None;
        };
        let mut d = link.at.parent();
        while let Some(p) = d.filter(|p| p.starts_with(root) && *p != root.as_path()) {
            layout.dirs.insert(recordable(p)?.to_string());
            d = p.parent();
        }
        layout.links.insert(at.to_string(), target.to_string());
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
fn recordable(p: &Path) -> Option<&str> {
    p.to_str().filter(|s| !s.contains(['\t', '\n']))
}

/// The root among `roots` that `link` is laid out under, if any.
fn root_of<'a>(link: &crate::Link, roots: &'a BTreeSet<PathBuf>) -> Option<&'a PathBuf> {
    roots.iter().find(|r| link.at.starts_with(r))
}

const HEADER: &str = "cmod-kept-links-v2";

/// A root's lines of the record: `L\t<at>\t<target>` per link and `D\t<dir>` per
/// directory. The record is a header line, then per root an `R\t<root>\t<digest>` line
/// and its lines.
fn render(layout: &Layout) -> String {
    let mut text = String::new();
    for (at, target) in &layout.links {
        text.push_str(&format!("L\t{at}\t{target}\n"));
    }
    for d in &layout.dirs {
        text.push_str(&format!("D\t{d}\n"));
    }
    text
}

/// A root's lines of the record, read back.
fn parse(lines: &[&str]) -> Option<Layout> {
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

    /// Without its record (a run killed halfway), or with one of another format (the
    /// first version's), the directories are laid out anew, so whatever was left in them
    /// is gone.
    #[test]
    fn a_missing_or_foreign_record_starts_from_nothing() {
        let v1 = "cmod-kept-links-v1\nL\tbmi/a.pcm\t/cmod/store/h1-a.pcm\n";
        for foreign in [None, Some(v1)] {
            let roots = BTreeSet::from([PathBuf::from("bmi")]);
            let kept = tempfile::tempdir().unwrap();
            let slot = kept.path().join("step");
            let a = action(&[("bmi/a.pcm", "h1-a.pcm")]);
            let dir = update(&slot, &a, &roots).unwrap().unwrap();
            std::fs::write(dir.join("bmi/stray"), b"left over").unwrap();
            let list = with_suffix(&slot, ".links.list");
            match foreign {
                None => std::fs::remove_file(&list).unwrap(),
                Some(text) => std::fs::write(&list, text).unwrap(),
            }
            update(&slot, &a, &roots).unwrap();
            assert!(!dir.join("bmi/stray").exists(), "{foreign:?}");
            assert!(dir.join("bmi/a.pcm").symlink_metadata().is_ok());
            assert!(std::fs::read_to_string(&list).unwrap().starts_with(HEADER));
        }
    }

    /// After an edit only the root whose links changed is laid out again: the other's
    /// links stay as they were (the same inodes), and the result is a fresh layout.
    #[test]
    fn only_the_roots_whose_links_changed_are_laid_out_again() {
        let roots = BTreeSet::from([PathBuf::from("bmi"), PathBuf::from("src")]);
        let kept = tempfile::tempdir().unwrap();
        let slot = kept.path().join("step");
        let bmis = [("bmi/a.pcm", "h1-a.pcm"), ("bmi/m/b.pcm", "h1-b.pcm")];
        let first = action(&[bmis[0], bmis[1], ("src/p/u.cpp", "h1-u.cpp")]);
        let edited = action(&[bmis[0], bmis[1], ("src/p/u.cpp", "h2-u.cpp")]);
        let dir = update(&slot, &first, &roots).unwrap().unwrap();
        let inode = |p: &str| std::fs::symlink_metadata(dir.join(p)).unwrap().ino();
        let (a, b) = (inode("bmi/a.pcm"), inode("bmi/m/b.pcm"));
        update(&slot, &edited, &roots).unwrap();
        assert_eq!((inode("bmi/a.pcm"), inode("bmi/m/b.pcm")), (a, b));
        assert_eq!(
            std::fs::read_link(dir.join("src/p/u.cpp")).unwrap(),
            Path::new("/cmod/store/h2-u.cpp")
        );
        let fresh = tempfile::tempdir().unwrap();
        let fresh_dir = update(&fresh.path().join("step"), &edited, &roots)
            .unwrap()
            .unwrap();
        assert_eq!(listing(&dir), listing(&fresh_dir));
        // Unchanged again: nothing to do, and still the same layout.
        update(&slot, &edited, &roots).unwrap();
        assert_eq!(listing(&dir), listing(&fresh_dir));
    }

    /// A root that was not in the last record starts from nothing, whatever its
    /// directory held.
    #[test]
    fn a_root_missing_from_the_record_starts_from_nothing() {
        let both = BTreeSet::from([PathBuf::from("bmi"), PathBuf::from("src")]);
        let bmi_only = BTreeSet::from([PathBuf::from("bmi")]);
        let kept = tempfile::tempdir().unwrap();
        let slot = kept.path().join("step");
        let a = action(&[("bmi/a.pcm", "h1-a.pcm"), ("src/u.cpp", "h1-u.cpp")]);
        let dir = update(&slot, &a, &both).unwrap().unwrap();
        update(&slot, &a, &bmi_only).unwrap();
        std::fs::write(dir.join("src/stray"), b"left over").unwrap();
        update(&slot, &a, &both).unwrap();
        assert!(!dir.join("src/stray").exists());
        assert!(dir.join("src/u.cpp").symlink_metadata().is_ok());
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
