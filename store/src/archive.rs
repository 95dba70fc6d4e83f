//! Transfer archives: a store path as a deterministic tar stream compressed with zstd
//! (multi-threaded), and the strict unpacker for archives that arrive from elsewhere.
//!
//! **Packing.** The path's tree is written under the single top-level member `p`
//! (`p`, `p/lib`, `p/lib/x.o`, ...), entries sorted by name bytes, with zeroed metadata:
//! mtime 0, uid/gid 0, no user or group names, mode 0644/0755 for files (only the
//! executable bit survives) and 0755 for directories. Long names use GNU extensions.
//! The same tree always gives the same bytes.
//!
//! **Unpacking** writes only below a fresh directory the caller owns and refuses, before
//! writing the member in question: names that are absolute, contain `..`, `.` or empty
//! components, or lie outside `p`; duplicates; members whose parent is not a directory
//! of the archive (so nothing is ever written through a symlink); symlinks that are
//! absolute or escape the path; hard links, device nodes, FIFOs and every other member
//! type; more file bytes than the metadata announces; and truncated or corrupt streams.
//! The caller deletes the directory on any error and checks the content hash after.

use cmod_schema::diag::IoError;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The top-level member every archive holds.
pub const ROOT: &str = "p";

/// Why an archive was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A member that would land outside the tree, or a kind of entry a store path cannot hold.
    #[error("archive member `{member}` {problem}")]
    Hostile {
        /// The member's path in the archive.
        member: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The archive cannot be decoded (the decoder's message).
    #[error("the archive is corrupt or truncated: {0}")]
    Corrupt(String),
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

fn io(context: &'static str, path: &Path, source: std::io::Error) -> ArchiveError {
    ArchiveError::Io(IoError::new(context, path, source))
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append<W: Write>(b: &mut tar::Builder<W>, src: &Path, name: &str) -> Result<(), ArchiveError> {
    let meta = std::fs::symlink_metadata(src).map_err(|e| io("reading", src, e))?;
    let ft = meta.file_type();
    let w = |e| io("archiving", src, e);
    if ft.is_symlink() {
        let target = std::fs::read_link(src).map_err(|e| io("reading link", src, e))?;
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, name, &target).map_err(w)?;
    } else if ft.is_dir() {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, name, std::io::empty()).map_err(w)?;
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(src)
            .map_err(|e| io("listing", src, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| io("listing", src, e))?;
        names.sort();
        for n in names {
            let child = format!("{name}/{}", n.to_string_lossy());
            append(b, &src.join(&n), &child)?;
        }
    } else if ft.is_file() {
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        let mut h = header(tar::EntryType::Regular, mode, meta.len());
        let f = std::fs::File::open(src).map_err(|e| io("opening", src, e))?;
        b.append_data(&mut h, name, f.take(meta.len())).map_err(w)?;
    } else {
        return Err(ArchiveError::Hostile {
            member: name.into(),
            problem: "is a device, FIFO or socket".into(),
        });
    }
    Ok(())
}

/// Write the archive of the tree at `src` to `out`, compressed with zstd `level` on
/// `threads` worker threads (at least one, so the output does not depend on the count).
pub fn pack<W: Write>(src: &Path, out: W, level: i32, threads: u32) -> Result<W, ArchiveError> {
    let z = |e| io("compressing", src, e);
    let mut enc = zstd::stream::write::Encoder::new(out, level).map_err(z)?;
    enc.multithread(threads.max(1)).map_err(z)?;
    let mut b = tar::Builder::new(enc);
    b.mode(tar::HeaderMode::Deterministic);
    append(&mut b, src, ROOT)?;
    let enc = b.into_inner().map_err(z)?;
    enc.finish().map_err(z)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Made {
    Dir,
    Other,
}

fn hostile(member: &str, problem: impl Into<String>) -> ArchiveError {
    ArchiveError::Hostile {
        member: member.into(),
        problem: problem.into(),
    }
}

/// Check a member name; returns its path relative to `p`'s parent.
fn member_path(name: &[u8]) -> Result<PathBuf, ArchiveError> {
    let text = String::from_utf8_lossy(name).into_owned();
    if name.is_empty() || name.contains(&0) {
        return Err(hostile(&text, "has an empty or NUL-containing name"));
    }
    if name[0] == b'/' {
        return Err(hostile(&text, "is an absolute path"));
    }
    let trimmed = text.strip_suffix('/').unwrap_or(&text);
    let mut parts = trimmed.split('/');
    if parts.next() != Some(ROOT) {
        return Err(hostile(
            &text,
            format!("is outside the archive's root `{ROOT}`"),
        ));
    }
    for part in parts {
        match part {
            "" => return Err(hostile(&text, "has an empty path component")),
            "." => return Err(hostile(&text, "has a `.` path component")),
            ".." => return Err(hostile(&text, "has a `..` path component")),
            _ => {}
        }
    }
    Ok(PathBuf::from(trimmed))
}

/// Check that a symlink at `rel` (relative to `p`'s parent) with `target` stays inside.
fn check_link(member: &str, rel: &Path, target: &[u8]) -> Result<(), ArchiveError> {
    let shown = String::from_utf8_lossy(target);
    if target.is_empty() || target.contains(&0) {
        return Err(hostile(
            member,
            "is a symlink with an empty or NUL-containing target",
        ));
    }
    let t = Path::new(std::ffi::OsStr::from_bytes(target));
    if t.is_absolute() {
        return Err(hostile(
            member,
            format!("is a symlink to the absolute path `{shown}`"),
        ));
    }
    // Depth of the link's directory below the root `p` itself.
    let mut depth = rel.components().count() as i64 - 2;
    if depth < 0 {
        return Err(hostile(
            member,
            "is a symlink at the root; a path must not be a link out of the store",
        ));
    }
    for c in t.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Err(hostile(
                member,
                format!("is a symlink to `{shown}`, which escapes the store path"),
            ));
        }
    }
    Ok(())
}

/// What an unpacked archive held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The unpacked tree (`dest`).
    pub root: PathBuf,
    /// Bytes of regular files.
    pub size: u64,
}

/// Unpack a compressed archive from `input` so that its root `p` becomes `dest` (which
/// must not exist; its parent must), refusing anything hostile (see the module docs) and
/// more than `max_size` bytes of file contents. On error, `dest` may hold a partial tree
/// that the caller deletes.
pub fn unpack<R: Read>(input: R, dest: &Path, max_size: u64) -> Result<Unpacked, ArchiveError> {
    let mut dec = zstd::stream::read::Decoder::new(input)
        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    // A frame may not make the decoder allocate a huge window.
    dec.window_log_max(crate::limits::ZSTD_WINDOW_LOG_MAX)
        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    let mut ar = tar::Archive::new(dec);
    let mut tree = Unpacking {
        dest,
        max_size,
        made: HashMap::new(),
        links: Vec::new(),
        size: 0,
    };
    for entry in ar.entries().map_err(corrupt)? {
        tree.member(&mut entry.map_err(corrupt)?)?;
    }
    if !tree.made.contains_key(Path::new(ROOT)) {
        return Err(ArchiveError::Corrupt(format!("it has no `{ROOT}` member")));
    }
    // Each link's own target stayed inside; now that the whole tree exists, resolve every
    // link through the others too (a chain of inside-looking links can still escape).
    for rel in &tree.links {
        let inside = rel.strip_prefix(ROOT).unwrap_or(rel);
        crate::symlinks::check_link_stays_inside(dest, inside)
            .map_err(|p| hostile(&rel.display().to_string(), p.to_string()))?;
    }
    // The tar end marker was read; the compressed stream must end cleanly too.
    only_zeros_left(ar.into_inner())?;
    Ok(Unpacked {
        root: dest.to_path_buf(),
        size: tree.size,
    })
}

fn corrupt(e: std::io::Error) -> ArchiveError {
    ArchiveError::Corrupt(e.to_string())
}

/// What an archive has written so far under `dest`.
struct Unpacking<'a> {
    dest: &'a Path,
    /// The most the regular files may add up to.
    max_size: u64,
    made: HashMap<PathBuf, Made>,
    links: Vec<PathBuf>,
    /// Bytes of regular files so far.
    size: u64,
}

impl Unpacking<'_> {
    /// Check one member and write it; anything hostile is refused before it is written.
    fn member<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<(), ArchiveError> {
        let name_bytes = e.path_bytes().into_owned();
        let rel = member_path(&name_bytes)?;
        let member = rel.display().to_string();
        let at = self.place(&rel, &member)?;
        let made = match e.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir(&at).map_err(|er| io("creating", &at, er))?;
                Made::Dir
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                self.file(e, &at, &member)?;
                Made::Other
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| hostile(&member, "is a symlink without a target"))?
                    .into_owned();
                check_link(&member, &rel, &target)?;
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &at)
                    .map_err(|er| io("linking", &at, er))?;
                self.links.push(rel.clone());
                Made::Other
            }
            other => return Err(refused_kind(&member, other)),
        };
        self.made.insert(rel, made);
        Ok(())
    }

    /// Where member `rel` goes: new, after its parent directory, inside the root.
    fn place(&self, rel: &Path, member: &str) -> Result<PathBuf, ArchiveError> {
        if self.made.contains_key(rel) {
            return Err(hostile(member, "appears twice"));
        }
        match rel.parent() {
            Some(p) if p.as_os_str().is_empty() => {}
            Some(p) if self.made.get(p) == Some(&Made::Dir) => {}
            _ => return Err(hostile(
                member,
                "comes before (or without) its parent directory, or its parent is not a directory",
            )),
        }
        match rel.strip_prefix(ROOT) {
            Ok(sub) if sub.as_os_str().is_empty() => Ok(self.dest.to_path_buf()),
            Ok(sub) => Ok(self.dest.join(sub)),
            Err(_) => Err(hostile(member, "is outside the archive's root")),
        }
    }

    /// Write a regular file member at `at`, within the size the metadata announced.
    fn file<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        at: &Path,
        member: &str,
    ) -> Result<(), ArchiveError> {
        let len = e.size();
        self.size = self.size.saturating_add(len);
        if self.size > self.max_size {
            return Err(hostile(
                member,
                format!(
                    "makes the contents larger than the {} bytes the metadata announces",
                    self.max_size
                ),
            ));
        }
        let exec = e.header().mode().map_err(corrupt)? & 0o111 != 0;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if exec { 0o755 } else { 0o644 })
            .open(at)
            .map_err(|er| io("creating", at, er))?;
        let n = std::io::copy(&mut e.take(len), &mut f).map_err(corrupt)?;
        if n != len {
            return Err(ArchiveError::Corrupt(format!(
                "member `{member}` ends after {n} of {len} bytes"
            )));
        }
        Ok(())
    }
}

/// Why a member of this type is never unpacked.
fn refused_kind(member: &str, kind: tar::EntryType) -> ArchiveError {
    match kind {
        tar::EntryType::Link => hostile(member, "is a hard link"),
        tar::EntryType::Char | tar::EntryType::Block => hostile(member, "is a device node"),
        tar::EntryType::Fifo => hostile(member, "is a FIFO"),
        other => hostile(member, format!("has the unsupported member type {other:?}")),
    }
}

/// After the tar end marker, only zero padding may follow in the compressed stream.
fn only_zeros_left(mut rest: impl Read) -> Result<(), ArchiveError> {
    let mut buf = [0u8; 8192];
    loop {
        match rest.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) if buf[..n].iter().all(|&b| b == 0) => {}
            Ok(_) => {
                return Err(ArchiveError::Corrupt(
                    "data after the end of the archive".into(),
                ))
            }
            Err(e) => return Err(corrupt(e)),
        }
    }
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
