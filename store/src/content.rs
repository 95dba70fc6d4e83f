//! File-tree operations on store paths: hashing (with reference scanning) in the v1
//! content encoding, normalisation (read-only, mtime 1), output checks, and copying
//! user files in.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cmod_schema::base32;
use cmod_schema::content::{ContentHash, FileHasher};
use cmod_schema::store_path::HASH_CHARS;
use cmod_schema::StorePath;
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use rayon::prelude::*;

use crate::error::StoreError;

/// The mtime every store file gets.
pub const NORMAL_MTIME: i64 = 1;

/// The result of hashing a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeInfo {
    /// The tree's content hash.
    pub hash: ContentHash,
    /// Total bytes of regular files.
    pub size: u64,
    /// Candidate store paths whose hash part occurs in some file or link target.
    pub references: BTreeSet<StorePath>,
}

/// Candidates for reference scanning, by hash part.
pub type Candidates = HashMap<String, StorePath>;

/// Build the candidate map for `paths`.
pub fn candidates<'a>(paths: impl IntoIterator<Item = &'a StorePath>) -> Candidates {
    paths
        .into_iter()
        .map(|p| (p.hash_part(), p.clone()))
        .collect()
}

fn scan_refs(bytes: &[u8], cands: &Candidates, found: &mut BTreeSet<StorePath>) {
    if cands.is_empty() || bytes.len() < HASH_CHARS {
        return;
    }
    let mut run = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        if base32::is_digit(b) {
            run += 1;
            if run >= HASH_CHARS {
                let start = i + 1 - HASH_CHARS;
                if let Ok(s) = std::str::from_utf8(&bytes[start..=i]) {
                    if let Some(p) = cands.get(s) {
                        found.insert(p.clone());
                    }
                }
            }
        } else {
            run = 0;
        }
    }
}

/// Hash `path` (file, symlink or directory) and find references to `cands`.
pub fn hash_path(path: &Path, cands: &Candidates) -> Result<TreeInfo, StoreError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| StoreError::io("reading", path, e))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target =
            std::fs::read_link(path).map_err(|e| StoreError::io("reading link", path, e))?;
        let bytes = target.as_os_str().as_encoded_bytes();
        let mut references = BTreeSet::new();
        scan_refs(bytes, cands, &mut references);
        Ok(TreeInfo {
            hash: ContentHash::of_symlink(bytes),
            size: 0,
            references,
        })
    } else if ft.is_dir() {
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(path)
            .map_err(|e| StoreError::io("listing", path, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::io("listing", path, e))?;
        names.sort();
        let children: Vec<TreeInfo> = names
            .par_iter()
            .map(|n| hash_path(&path.join(n), cands))
            .collect::<Result<_, _>>()?;
        let mut size = 0;
        let mut references = BTreeSet::new();
        let mut entries = Vec::with_capacity(names.len());
        for (n, c) in names.iter().zip(children) {
            size += c.size;
            references.extend(c.references);
            entries.push((n.as_encoded_bytes(), c.hash));
        }
        Ok(TreeInfo {
            hash: ContentHash::of_dir(entries),
            size,
            references,
        })
    } else if ft.is_file() {
        let exec = meta.permissions().mode() & 0o111 != 0;
        let mut f = std::fs::File::open(path).map_err(|e| StoreError::io("opening", path, e))?;
        let mut hasher = FileHasher::new(exec, meta.len());
        let mut references = BTreeSet::new();
        let mut buf = vec![0u8; (meta.len() as usize).clamp(HASH_CHARS, 1 << 20)];
        // Keep the last HASH_CHARS-1 bytes across reads so hashes spanning chunks are seen.
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| StoreError::io("reading", path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            if !cands.is_empty() {
                carry.extend_from_slice(&buf[..n]);
                scan_refs(&carry, cands, &mut references);
                let keep = carry.len().min(HASH_CHARS - 1);
                carry.drain(..carry.len() - keep);
            }
        }
        if !hasher.complete() {
            return Err(StoreError::io(
                "hashing",
                path,
                std::io::Error::other("file changed size while being read"),
            ));
        }
        Ok(TreeInfo {
            hash: hasher.finish(),
            size: meta.len(),
            references,
        })
    } else {
        Err(StoreError::BadOutput {
            at: path.display().to_string(),
            problem: "is a device, FIFO or socket, which a store path cannot hold".into(),
        })
    }
}

/// Check an output tree before it is registered: only regular files, directories and
/// symlinks that stay inside the tree.
pub fn check_output(root: &Path, display: &str) -> Result<(), StoreError> {
    check_node(root, root, Path::new(""), display)
}

fn check_node(root: &Path, path: &Path, rel: &Path, display: &str) -> Result<(), StoreError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| StoreError::io("reading", path, e))?;
    let ft = meta.file_type();
    let at = if rel.as_os_str().is_empty() {
        display.to_string()
    } else {
        format!("{display}/{}", rel.display())
    };
    if ft.is_symlink() {
        let target =
            std::fs::read_link(path).map_err(|e| StoreError::io("reading link", path, e))?;
        if rel.as_os_str().is_empty() {
            return Err(StoreError::BadOutput { at, problem: format!("is a symlink to `{}`; an output must be a file or directory, not a link out of the store path", target.display()) });
        }
        crate::symlinks::check_link_stays_inside(root, rel).map_err(|p| StoreError::BadOutput {
            at,
            problem: p.to_string(),
        })?;
        Ok(())
    } else if ft.is_dir() {
        for e in std::fs::read_dir(path).map_err(|e| StoreError::io("listing", path, e))? {
            let e = e.map_err(|e| StoreError::io("listing", path, e))?;
            check_node(root, &e.path(), &rel.join(e.file_name()), display)?;
        }
        Ok(())
    } else if ft.is_file() {
        Ok(())
    } else {
        Err(StoreError::BadOutput {
            at,
            problem: "is a device, FIFO or socket".into(),
        })
    }
}

fn set_mtime(path: &Path) -> Result<(), StoreError> {
    let t = TimeSpec::new(NORMAL_MTIME, 0);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| StoreError::io("setting the time of", path, e.into()))
}

/// Make a tree read-only (files 0444 or 0555, directories 0555) with mtime 1. A file with
/// other hard links is first replaced by a private copy, so normalising never changes a
/// file outside the tree.
pub fn normalise(path: &Path) -> Result<(), StoreError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| StoreError::io("reading", path, e))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        entries(path)?
            .par_iter()
            .try_for_each(|e| normalise(&e.path()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o555))
            .map_err(|e| StoreError::io("setting permissions of", path, e))?;
    } else if ft.is_file() {
        if meta.nlink() > 1 {
            let tmp = path.with_extension("cmod-unlink");
            std::fs::copy(path, &tmp).map_err(|e| StoreError::io("copying", path, e))?;
            std::fs::rename(&tmp, path).map_err(|e| StoreError::io("replacing", path, e))?;
        }
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            0o555
        } else {
            0o444
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| StoreError::io("setting permissions of", path, e))?;
    }
    set_mtime(path)
}

/// The entries of directory `path`.
fn entries(path: &Path) -> Result<Vec<std::fs::DirEntry>, StoreError> {
    std::fs::read_dir(path)
        .map_err(|e| StoreError::io("listing", path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| StoreError::io("listing", path, e))
}

/// Prepare a private tree for the store before it is moved in: everything below a
/// directory root normalised (see [`normalise`]) and, if `durable`, flushed; the root
/// itself normalised too unless it is a directory, which must stay writable to be moved
/// to another parent (its `..` changes) and is finished by [`seal`] afterwards. This is
/// the slow, parallel part of registering, done before the path's lock is taken: work on
/// the thread pool must never run under that lock, since a pool thread waiting for its
/// own work may meanwhile run another registration that wants the same lock.
pub fn prepare(path: &Path, durable: bool) -> Result<(), StoreError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| StoreError::io("reading", path, e))?;
    if !meta.file_type().is_dir() {
        normalise(path)?;
        return if durable { sync_tree(path) } else { Ok(()) };
    }
    entries(path)?.par_iter().try_for_each(|e| {
        normalise(&e.path())?;
        if durable {
            sync_tree(&e.path())?;
        }
        Ok(())
    })
}

/// Finish a tree [`prepare`]d and moved into the store: a directory root becomes 0555
/// with mtime 1 (and is flushed, if `durable`). One path, no thread pool: it runs under
/// the path's lock.
pub fn seal(path: &Path, durable: bool) -> Result<(), StoreError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| StoreError::io("reading", path, e))?;
    if !meta.file_type().is_dir() {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o555))
        .map_err(|e| StoreError::io("setting permissions of", path, e))?;
    set_mtime(path)?;
    if durable {
        sync_dir(path)?;
    }
    Ok(())
}

/// Flush a file or tree to stable storage: every file's data and every directory's
/// entries (`fsync`), so that once something refers to it (a path's metadata), a power
/// loss cannot leave it empty or partial.
pub fn sync_tree(path: &Path) -> Result<(), StoreError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| StoreError::io("reading", path, e))?;
    if meta.file_type().is_dir() {
        entries(path)?
            .par_iter()
            .try_for_each(|e| sync_tree(&e.path()))?;
        sync_dir(path)
    } else if meta.file_type().is_file() {
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::io("flushing to disk", path, e))
    } else {
        Ok(())
    }
}

/// Flush a directory's entries (a rename into it, a new file) to stable storage.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io("flushing to disk", dir, e))
}

/// Make a tree writable again so it can be deleted.
pub fn make_writable(path: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.file_type().is_dir() {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
        if let Ok(rd) = std::fs::read_dir(path) {
            for e in rd.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

/// Delete a file or tree, read-only or not.
pub fn remove(path: &Path) -> Result<(), StoreError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if meta.file_type().is_dir() {
        make_writable(path);
        std::fs::remove_dir_all(path).map_err(|e| StoreError::io("deleting", path, e))
    } else {
        std::fs::remove_file(path).map_err(|e| StoreError::io("deleting", path, e))
    }
}

/// Copy a user file or tree to `dst`. Files lose their executable bit when `strip_exec`;
/// symlinks inside trees are copied as links.
pub fn copy_in(src: &Path, dst: &Path, strip_exec: bool) -> Result<(), StoreError> {
    let meta = std::fs::metadata(src).map_err(|e| StoreError::io("reading", src, e))?;
    if meta.is_dir() {
        copy_tree(src, dst)
    } else {
        copy_file(src, dst)?;
        let mode = if !strip_exec && meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode))
            .map_err(|e| StoreError::io("setting permissions of", dst, e))
    }
}

/// Copy the file `src` to a new file `dst`, blaming each failure on the right one: a
/// full disk or a read-only store is about `dst`, not the user's file.
fn copy_file(src: &Path, dst: &Path) -> Result<(), StoreError> {
    let mut from = std::fs::File::open(src).map_err(|e| StoreError::io("reading", src, e))?;
    let mut to = std::fs::File::create(dst).map_err(|e| StoreError::io("creating", dst, e))?;
    std::io::copy(&mut from, &mut to).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG | libc::EROFS) => {
            StoreError::io("writing", dst, e)
        }
        _ => StoreError::io("copying", src, e),
    })?;
    Ok(())
}

fn copy_tree(src: &Path, dst: &Path) -> Result<(), StoreError> {
    std::fs::create_dir(dst).map_err(|e| StoreError::io("creating", dst, e))?;
    for e in std::fs::read_dir(src).map_err(|e| StoreError::io("listing", src, e))? {
        let e = e.map_err(|e| StoreError::io("listing", src, e))?;
        let (s, d) = (e.path(), dst.join(e.file_name()));
        let ft = e
            .file_type()
            .map_err(|e| StoreError::io("reading", &s, e))?;
        if ft.is_symlink() {
            let t = std::fs::read_link(&s).map_err(|e| StoreError::io("reading link", &s, e))?;
            std::os::unix::fs::symlink(&t, &d).map_err(|e| StoreError::io("linking", &d, e))?;
        } else if ft.is_dir() {
            copy_tree(&s, &d)?;
        } else if ft.is_file() {
            copy_in(&s, &d, false)?;
        }
    }
    Ok(())
}

/// One entry that differs between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDiff {
    /// Path relative to the tree roots (empty for single-file trees).
    pub file: String,
    /// Size on the left (`None` if absent or not a regular file there).
    pub left_size: Option<u64>,
    /// Size on the right (`None` if absent or not a regular file there).
    pub right_size: Option<u64>,
    /// First differing byte when both sides are regular files.
    pub first_difference: Option<u64>,
}

#[derive(PartialEq)]
enum Node {
    File(u64),
    Dir(Vec<std::ffi::OsString>),
    Link(std::path::PathBuf),
    Missing,
}

fn node(p: &Path) -> Result<Node, StoreError> {
    let meta = match std::fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Node::Missing),
        Err(e) => return Err(StoreError::io("reading", p, e)),
    };
    let ft = meta.file_type();
    Ok(if ft.is_symlink() {
        Node::Link(std::fs::read_link(p).map_err(|e| StoreError::io("reading link", p, e))?)
    } else if ft.is_dir() {
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(p)
            .map_err(|e| StoreError::io("listing", p, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::io("listing", p, e))?;
        names.sort();
        Node::Dir(names)
    } else {
        Node::File(meta.len())
    })
}

/// The first offset at which two files differ, or `None` if they are identical.
fn first_difference(a: &Path, b: &Path) -> Result<Option<u64>, StoreError> {
    let mut fa = std::fs::File::open(a).map_err(|e| StoreError::io("opening", a, e))?;
    let mut fb = std::fs::File::open(b).map_err(|e| StoreError::io("opening", b, e))?;
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    let mut offset = 0u64;
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(|e| StoreError::io("reading", a, e))?;
        let nb = read_full(&mut fb, &mut bb).map_err(|e| StoreError::io("reading", b, e))?;
        let n = na.min(nb);
        if let Some(i) = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y) {
            return Ok(Some(offset + i as u64));
        }
        if na != nb {
            return Ok(Some(offset + n as u64));
        }
        if na == 0 {
            return Ok(None);
        }
        offset += n as u64;
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Every difference between the trees at `left` and `right` (contents, executable bits
/// aside), sorted by path.
pub fn diff_trees(left: &Path, right: &Path) -> Result<Vec<FileDiff>, StoreError> {
    let mut out = Vec::new();
    diff_into(left, right, "", &mut out)?;
    Ok(out)
}

fn diff_into(l: &Path, r: &Path, rel: &str, out: &mut Vec<FileDiff>) -> Result<(), StoreError> {
    let (nl, nr) = (node(l)?, node(r)?);
    let size = |n: &Node| {
        if let Node::File(s) = n {
            Some(*s)
        } else {
            None
        }
    };
    match (&nl, &nr) {
        (Node::File(a), Node::File(b)) => {
            if let Some(off) = first_difference(l, r)? {
                out.push(FileDiff {
                    file: rel.into(),
                    left_size: Some(*a),
                    right_size: Some(*b),
                    first_difference: Some(off),
                });
            }
        }
        (Node::Dir(a), Node::Dir(b)) => {
            let names: BTreeSet<&std::ffi::OsString> = a.iter().chain(b).collect();
            for n in names {
                let child = if rel.is_empty() {
                    n.to_string_lossy().into_owned()
                } else {
                    format!("{rel}/{}", n.to_string_lossy())
                };
                diff_into(&l.join(n), &r.join(n), &child, out)?;
            }
        }
        (a, b) if a == b => {}
        _ => out.push(FileDiff {
            file: rel.into(),
            left_size: size(&nl),
            right_size: size(&nr),
            first_difference: None,
        }),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmod_schema::PathKind;

    /// A tree prepared privately, moved to another parent, then sealed ends read-only
    /// everywhere with mtime 1 — and its root stayed writable until the move (moving a
    /// directory to another parent rewrites its `..`, which needs write permission).
    #[test]
    fn a_prepared_tree_moves_and_seals_read_only() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let tmp = t.path().join("tmp/out");
        std::fs::create_dir_all(tmp.join("sub")).unwrap();
        std::fs::write(tmp.join("sub/f"), "x").unwrap();
        prepare(&tmp, true).unwrap();
        let root = std::fs::metadata(&tmp).unwrap();
        assert_ne!(
            root.mode() & 0o200,
            0,
            "the root stays writable until sealed"
        );
        assert_eq!(
            std::fs::metadata(tmp.join("sub/f")).unwrap().mode() & 0o777,
            0o444
        );
        assert_eq!(
            std::fs::metadata(tmp.join("sub")).unwrap().mode() & 0o777,
            0o555
        );
        let dest = t.path().join("store/h-out");
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::rename(&tmp, &dest).unwrap();
        seal(&dest, true).unwrap();
        let sealed = std::fs::metadata(&dest).unwrap();
        assert_eq!(sealed.mode() & 0o777, 0o555);
        assert_eq!(sealed.mtime(), NORMAL_MTIME);
        // A single file is finished by `prepare` alone.
        let file = t.path().join("tmp/f");
        std::fs::write(&file, "y").unwrap();
        prepare(&file, false).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o444);
        make_writable(&dest);
    }

    #[test]
    fn hash_matches_the_schema_encoding() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("x");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("b.txt"), "hello\n").unwrap();
        std::os::unix::fs::symlink("b.txt", root.join("link")).unwrap();
        let info = hash_path(&root, &Candidates::new()).unwrap();
        assert_eq!(
            info.hash.to_text(),
            "blake3:04c12l7h14hys8yqsk63qm62afvwc1rapiapzv9iwbksid69g47p"
        );
        assert_eq!(info.size, 6);
    }

    #[test]
    fn references_are_found_even_across_read_chunks() {
        let t = tempfile::tempdir().unwrap();
        let p = StorePath::compute(
            PathKind::Output,
            &ContentHash::of_file(false, b"dep"),
            "dep",
            [],
        )
        .unwrap();
        let q = StorePath::compute(
            PathKind::Output,
            &ContentHash::of_file(false, b"other"),
            "other",
            [],
        )
        .unwrap();
        let mut data = vec![b'x'; (1 << 20) - 10];
        data.extend_from_slice(format!("/cmod/store/{p}/lib").as_bytes());
        std::fs::write(t.path().join("f"), &data).unwrap();
        let info = hash_path(&t.path().join("f"), &candidates([&p, &q])).unwrap();
        assert_eq!(info.references, BTreeSet::from([p]));
    }

    #[test]
    fn normalise_sets_modes_times_and_breaks_hard_links() {
        let t = tempfile::tempdir().unwrap();
        let host = t.path().join("host-file");
        std::fs::write(&host, "secret").unwrap();
        let out = t.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::fs::hard_link(&host, out.join("linked")).unwrap();
        std::fs::write(out.join("tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(out.join("tool"), std::fs::Permissions::from_mode(0o750)).unwrap();
        normalise(&out).unwrap();
        let m = |p: &Path| std::fs::symlink_metadata(p).unwrap();
        assert_eq!(m(&out.join("linked")).permissions().mode() & 0o777, 0o444);
        assert_eq!(m(&out.join("tool")).permissions().mode() & 0o777, 0o555);
        assert_eq!(m(&out).permissions().mode() & 0o777, 0o555);
        assert_eq!(m(&out.join("tool")).mtime(), NORMAL_MTIME);
        assert_eq!(
            m(&host).permissions().mode() & 0o222,
            0o200,
            "host file untouched"
        );
        assert_eq!(m(&out.join("linked")).nlink(), 1);
        remove(&out).unwrap();
        assert!(!out.exists());
    }

    #[test]
    fn diffs_name_files_sizes_and_offsets() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        for (root, data, extra) in [(&a, "hello world", false), (&b, "hello there!", true)] {
            std::fs::create_dir_all(root.join("d")).unwrap();
            std::fs::write(root.join("d/f"), data).unwrap();
            std::fs::write(root.join("same"), "x").unwrap();
            if extra {
                std::fs::write(root.join("new"), "n").unwrap();
            }
        }
        let d = diff_trees(&a, &b).unwrap();
        assert_eq!(
            d,
            vec![
                FileDiff {
                    file: "d/f".into(),
                    left_size: Some(11),
                    right_size: Some(12),
                    first_difference: Some(6)
                },
                FileDiff {
                    file: "new".into(),
                    left_size: None,
                    right_size: Some(1),
                    first_difference: None
                },
            ]
        );
        assert!(diff_trees(&a, &a).unwrap().is_empty());
        // A prefix differs at the end of the shorter file.
        std::fs::write(t.path().join("p1"), "abc").unwrap();
        std::fs::write(t.path().join("p2"), "abcd").unwrap();
        let d = diff_trees(&t.path().join("p1"), &t.path().join("p2")).unwrap();
        assert_eq!(d[0].first_difference, Some(3));
        assert_eq!(d[0].file, "");
    }

    #[test]
    fn escaping_outputs_are_rejected() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        std::fs::create_dir_all(out.join("d")).unwrap();
        std::os::unix::fs::symlink("../x", out.join("d/ok")).unwrap();
        check_output(&out, "out").unwrap();
        std::os::unix::fs::symlink("../../x", out.join("d/bad")).unwrap();
        let e = check_output(&out, "out").unwrap_err().to_string();
        assert!(e.contains("escapes the store path"), "{e}");
        let single = t.path().join("single");
        std::os::unix::fs::symlink("/etc/passwd", &single).unwrap();
        let e = check_output(&single, "out/x").unwrap_err().to_string();
        assert!(e.contains("not a link out of the store path"), "{e}");
        let nested = t.path().join("nested");
        std::fs::create_dir(&nested).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", nested.join("p")).unwrap();
        let e = check_output(&nested, "out").unwrap_err().to_string();
        assert!(e.contains("absolute path `/etc/passwd`"), "{e}");
        // Links that each look inside but escape together (resolved through each other).
        let chain = t.path().join("chain");
        std::fs::create_dir_all(chain.join("a")).unwrap();
        std::os::unix::fs::symlink("..", chain.join("a/s")).unwrap();
        check_output(&chain, "out").unwrap();
        std::os::unix::fs::symlink("a/s/../x", chain.join("t")).unwrap();
        let e = check_output(&chain, "out").unwrap_err().to_string();
        assert!(
            e.contains("out/t") && e.contains("through the link `a/s`"),
            "{e}"
        );
        let fifo = t.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        assert!(check_output(&fifo, "out/f").is_err());
    }
}
