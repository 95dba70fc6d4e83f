//! Small helpers for the files the evaluator writes: atomic JSON writes and reads for its
//! caches (any damage is a cache miss), and crash-safe replacement of the user's own
//! files (`cmod.toml`, `cmod.lock`).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Write `value` as JSON to `path` atomically (temporary file + rename). Errors are
/// ignored: losing a cache entry only costs time.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) {
    let Ok(bytes) = serde_json::to_vec(value) else {
        return;
    };
    let _ = write_atomic(path, &bytes);
}

/// Cache writes still in progress on their own threads (see [`write_json_later`]).
static PENDING: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// [`write_json_atomic`] on a thread of its own, so that serialising a large cache does
/// not hold up the evaluation (on an edit of a 3,001-unit graph the scan cache alone
/// takes ~4 ms). [`finish_writes`] waits for it. If no thread can be started the value
/// is not written: it is a cache.
pub fn write_json_later<T: Serialize + Send + 'static>(path: PathBuf, value: T) {
    write_later(path, move || serde_json::to_vec(&value).unwrap_or_default());
}

/// Write the bytes `make` returns to `path` atomically, on a thread of its own (making
/// them there too); an empty result writes nothing. [`finish_writes`] waits for it.
pub fn write_later(path: PathBuf, make: impl FnOnce() -> Vec<u8> + Send + 'static) {
    let (count, _) = &PENDING;
    if let Ok(mut n) = count.lock() {
        *n += 1;
    }
    let done = || {
        let (count, all_done) = &PENDING;
        if let Ok(mut n) = count.lock() {
            *n = n.saturating_sub(1);
        }
        all_done.notify_all();
    };
    let write = move || {
        let bytes = make();
        if !bytes.is_empty() {
            let _ = write_atomic(&path, &bytes);
        }
        done();
    };
    if std::thread::Builder::new()
        .name("cache-write".into())
        .spawn(write)
        .is_err()
    {
        done();
    }
}

/// Wait until every [`write_json_later`] started so far (by any thread) has finished.
pub fn finish_writes() {
    let (count, all_done) = &PENDING;
    let Ok(mut n) = count.lock() else { return };
    while *n > 0 {
        match all_done.wait(n) {
            Ok(next) => n = next,
            Err(_) => return,
        }
    }
}

/// Write `bytes` to `path` atomically: to a temporary file beside it (its directory
/// created if missing), renamed over it, so a reader sees the old contents or the new,
/// never a part. Not flushed to stable storage: for caches and other files that can be
/// made again (see [`replace_file`] for the user's own).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Replace the user's file at `path` with `bytes` so that a crash, a kill or a full disk
/// leaves either the old file or the new one, never a truncated mix: the bytes go to a
/// temporary file beside it (keeping the old file's permissions), reach stable storage,
/// and are renamed over it; then the directory is flushed. A symbolic link is followed,
/// so the file it names is replaced and the link kept.
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let target = resolve_link(path);
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let written = write_synced(&tmp, bytes, &target).and_then(|()| std::fs::rename(&tmp, &target));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename is durable once the directory is; failing to flush it loses nothing.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The file a symbolic link at `path` finally names (or `path` itself).
fn resolve_link(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).unwrap_or(path.into()),
        _ => path.to_path_buf(),
    }
}

/// Write `bytes` to a new file `tmp` with `like`'s permissions (if it exists) and flush it.
fn write_synced(tmp: &Path, bytes: &[u8], like: &Path) -> std::io::Result<()> {
    let mut f = std::fs::File::create(tmp)?;
    if let Ok(m) = std::fs::metadata(like) {
        f.set_permissions(m.permissions())?;
    }
    f.write_all(bytes)?;
    f.sync_all()
}

/// Read JSON from `path`; a missing or malformed file is `None`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The header of a binary cache record: `magic`, this binary's identity, and the number
/// of entries that follow.
pub(crate) fn record_header(magic: &[u8], entries: usize, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(magic.len() + 36 + capacity);
    out.extend_from_slice(magic);
    out.extend_from_slice(&binary_identity());
    out.extend_from_slice(&(entries as u32).to_le_bytes());
    out
}

/// The number of entries of a record [`record_header`] began, and the bytes after the
/// header; `None` if `bytes` is no such record of this binary (damaged, or another
/// build's: the mapping a record holds is the binary's).
pub(crate) fn record_entries<'a>(bytes: &'a [u8], magic: &[u8]) -> Option<(usize, &'a [u8])> {
    let rest = bytes.strip_prefix(magic)?;
    let (identity, rest) = rest.split_at_checked(32)?;
    if identity != binary_identity() {
        return None;
    }
    let (count, rest) = rest.split_at_checked(4)?;
    Some((u32::from_le_bytes(count.try_into().ok()?) as usize, rest))
}

/// Append `b` to `out` as a length-prefixed field (a little-endian `u32` length, then
/// the bytes): the field of the binary cache records ([`Fields`] reads it back).
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Reads the fields of a binary cache record from the front; every read past the end is
/// `None` (a damaged record).
pub(crate) struct Fields<'a>(pub(crate) &'a [u8]);

impl<'a> Fields<'a> {
    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    /// The next byte.
    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    /// A length written as a little-endian `u32`.
    pub(crate) fn len(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }

    /// A field [`put_bytes`] wrote.
    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }

    /// Whether everything was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What identifies this binary: its version and its executable's size, time and inode,
/// so a rebuilt cmod never reads a cache record another build wrote.
pub fn binary_identity() -> [u8; 32] {
    static IDENTITY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    *IDENTITY.get_or_init(identify_binary)
}

fn identify_binary() -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    if let Some(meta) = std::env::current_exe()
        .ok()
        .and_then(|exe| std::fs::metadata(exe).ok())
    {
        use std::os::unix::fs::MetadataExt;
        h.update(&meta.len().to_le_bytes());
        h.update(&meta.mtime().to_le_bytes());
        h.update(&meta.mtime_nsec().to_le_bytes());
        h.update(&meta.ino().to_le_bytes());
    }
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replacing_a_file_keeps_its_permissions_and_leaves_no_temporary() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("cmod.toml");
        std::fs::write(&p, "old\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        replace_file(&p, b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let names: Vec<_> = std::fs::read_dir(t.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "a temporary was left: {names:?}");
    }

    #[test]
    fn replacing_through_a_symbolic_link_keeps_the_link() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real.lock");
        let link = t.path().join("cmod.lock");
        std::fs::write(&real, "old\n").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        replace_file(&link, b"new\n").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new\n");
    }

    #[test]
    fn a_failed_replacement_leaves_the_old_file_and_no_temporary() {
        let t = tempfile::tempdir().unwrap();
        // The target is a directory: the rename fails after the temporary was written.
        let p = t.path().join("taken");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("inside"), "kept").unwrap();
        assert!(replace_file(&p, b"new\n").is_err());
        assert_eq!(std::fs::read_to_string(p.join("inside")).unwrap(), "kept");
        let names: Vec<_> = std::fs::read_dir(t.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "a temporary was left: {names:?}");
    }
}
