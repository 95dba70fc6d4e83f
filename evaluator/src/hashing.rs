//! Hashing files and trees from disk with cmod's content-hash encoding, and the metadata
//! stamps that let caches skip re-hashing unchanged files.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cmod_schema::content::{ContentHash, FileHasher};

use crate::journal;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Hash a regular file (following symlinks) as the content hash of a store file.
/// The executable bit is ignored: sources are always stored non-executable.
pub fn hash_file(path: &Path) -> std::io::Result<(ContentHash, u64)> {
    hash_file_with(path, false)
}

/// Hash a regular file, honouring its executable bit if `keep_exec`.
pub fn hash_file_with(path: &Path, keep_exec: bool) -> std::io::Result<(ContentHash, u64)> {
    let mut f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    let len = meta.len();
    let exec = keep_exec && meta.permissions().mode() & 0o111 != 0;
    let mut hasher = FileHasher::new(exec, len);
    let mut buf = vec![0u8; (len as usize).clamp(1, 1 << 20)];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    if !hasher.complete() {
        return Err(std::io::Error::other(format!(
            "`{}` changed size while it was being hashed",
            path.display()
        )));
    }
    Ok((hasher.finish(), len))
}

/// Hash a directory tree (symlinks are hashed as links, not followed), in parallel.
/// Returns the hash and every directory visited, for stamping.
pub fn hash_tree(root: &Path) -> std::io::Result<(ContentHash, Vec<PathBuf>)> {
    let mut dirs = Vec::new();
    let hash = hash_node(root, &mut dirs)?;
    Ok((hash, dirs))
}

fn hash_node(path: &Path, dirs: &mut Vec<PathBuf>) -> std::io::Result<ContentHash> {
    let meta = std::fs::symlink_metadata(path)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(path)?;
        Ok(ContentHash::of_symlink(
            target.as_os_str().as_encoded_bytes(),
        ))
    } else if ft.is_dir() {
        dirs.push(path.to_path_buf());
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        // Files hash in parallel; subdirectories recurse (and parallelise inside).
        let results: Vec<std::io::Result<(ContentHash, Vec<PathBuf>)>> = names
            .par_iter()
            .map(|n| {
                let mut sub = Vec::new();
                let h = hash_node(&path.join(n), &mut sub)?;
                Ok((h, sub))
            })
            .collect();
        let mut entries = Vec::with_capacity(names.len());
        for (name, r) in names.iter().zip(results) {
            let (h, sub) = r?;
            dirs.extend(sub);
            entries.push((name.as_encoded_bytes(), h));
        }
        Ok(ContentHash::of_dir(entries))
    } else if ft.is_file() {
        Ok(hash_file_with(path, true)?.0)
    } else {
        // Sockets, FIFOs and devices have no content; record their presence by name only.
        Ok(ContentHash::of_symlink(b"\0special"))
    }
}

/// File metadata that changes whenever the contents are replaced or modified.
///
/// Written as the array `[len, mtime_ns, ctime_ns, ino, dev]`: the caches hold about a
/// thousand stamps, and field names made up most of what a no-op parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StampArray", into = "StampArray")]
pub struct Stamp {
    /// Size in bytes.
    pub len: u64,
    /// Modification time, in nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status-change time, in nanoseconds since the epoch.
    pub ctime_ns: i128,
    /// Inode number.
    pub ino: u64,
    /// Device number.
    pub dev: u64,
}

/// Times are written as 64-bit nanoseconds (serde_json parses 128-bit integers slowly);
/// one outside that range (after 2262) is written as `i64::MIN`, so it never matches a
/// fresh stamp and the file is simply re-checked.
type StampArray = (u64, i64, i64, u64, u64);

impl From<StampArray> for Stamp {
    fn from((len, mtime_ns, ctime_ns, ino, dev): StampArray) -> Stamp {
        Stamp {
            len,
            mtime_ns: mtime_ns.into(),
            ctime_ns: ctime_ns.into(),
            ino,
            dev,
        }
    }
}

impl From<Stamp> for StampArray {
    fn from(s: Stamp) -> StampArray {
        let ns = |t: i128| i64::try_from(t).unwrap_or(i64::MIN);
        (s.len, ns(s.mtime_ns), ns(s.ctime_ns), s.ino, s.dev)
    }
}

impl Stamp {
    /// The stamp of a file from its metadata.
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            len: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }

    /// The stamp of `path`, following symlinks (noted in the input journal).
    pub fn read(path: &Path) -> std::io::Result<Stamp> {
        journal::metadata(path, true).map(|m| Stamp::of(&m))
    }

    /// The stamp of `path` itself (a symlink is stamped as a link; noted in the input
    /// journal).
    pub fn read_link(path: &Path) -> std::io::Result<Stamp> {
        journal::metadata(path, false).map(|m| Stamp::of(&m))
    }

    /// Whether the file changed less than `window_ns` before `now_ns`, so a further change
    /// could land in the same timestamp tick ("racy" in git's terms): such stamps are not
    /// trusted.
    pub fn is_racy(&self, now_ns: i128, window_ns: i128) -> bool {
        now_ns - self.mtime_ns.max(self.ctime_ns) < window_ns
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_tree_hashes_match_the_format() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("b.txt"), "hello\n").unwrap();
        std::fs::create_dir(t.path().join("a")).unwrap();
        std::os::unix::fs::symlink("b.txt", t.path().join("link")).unwrap();
        let (h, len) = hash_file(&t.path().join("b.txt")).unwrap();
        assert_eq!(len, 6);
        assert_eq!(h, ContentHash::of_file(false, b"hello\n"));
        let (tree, dirs) = hash_tree(t.path()).unwrap();
        // The same tree as the golden vector in cmod-schema.
        assert_eq!(
            tree.to_text(),
            "blake3:04c12l7h14hys8yqsk63qm62afvwc1rapiapzv9iwbksid69g47p"
        );
        assert_eq!(dirs.len(), 2);
    }

    #[test]
    fn stamps_are_written_as_arrays() {
        let s = Stamp {
            len: 1,
            mtime_ns: 2,
            ctime_ns: 3,
            ino: 4,
            dev: 5,
        };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(text, "[1,2,3,4,5]");
        assert_eq!(serde_json::from_str::<Stamp>(&text).unwrap(), s);
        // A time beyond 64-bit nanoseconds cannot round-trip: it must never match.
        let far = Stamp {
            mtime_ns: i128::from(i64::MAX) + 1,
            ..s
        };
        let back: Stamp = serde_json::from_str(&serde_json::to_string(&far).unwrap()).unwrap();
        assert_ne!(back, far);
    }

    #[test]
    fn stamps_change_on_rewrite() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        std::fs::write(&p, "1").unwrap();
        let a = Stamp::read(&p).unwrap();
        std::fs::write(&p, "22").unwrap();
        let b = Stamp::read(&p).unwrap();
        assert_ne!(a, b);
        assert!(b.is_racy(now_ns(), 2_000_000_000));
        assert!(!b.is_racy(b.mtime_ns.max(b.ctime_ns) + 10_000_000_000, 2_000_000_000));
    }
}
