//! Garbage collection and verification.
//!
//! GC deletes every valid path not reachable from a root (through references and keep
//! lists). It holds the store's GC lock exclusively; every realisation holds it shared
//! for its whole run, so GC never deletes what a running build uses — it waits.

use std::collections::{BTreeSet, VecDeque};

use cmod_schema::StorePath;

use crate::content;
use crate::error::StoreError;
use crate::layout::Store;
use crate::lock::Lock;

/// What GC did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Deleted (or dead) paths with their sizes.
    pub dead: Vec<(StorePath, u64)>,
    pub freed: u64,
    pub alive: usize,
}

/// A path whose contents do not match its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    pub path: StorePath,
    pub problem: String,
}

/// What verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub checked: usize,
    pub corrupt: Vec<Corruption>,
}

/// A shared hold on the GC lock, kept by a realisation for its whole run.
#[derive(Debug)]
pub struct GcGuard {
    _flock: nix::fcntl::Flock<std::fs::File>,
}

/// The process that made a temporary named `<label>-<pid>-<n>`.
fn temporary_owner(name: &str) -> Option<i32> {
    let mut parts = name.rsplitn(3, '-');
    let _n: u64 = parts.next()?.parse().ok()?;
    let pid: i32 = parts.next()?.parse().ok()?;
    parts.next().filter(|label| !label.is_empty())?;
    Some(pid)
}

/// Whether a process with this pid exists (a reused pid counts as alive: kept, not lost).
fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    if pid as u32 == std::process::id() {
        return true;
    }
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

impl Store {
    fn gc_lock_path(&self) -> std::path::PathBuf {
        self.dir("locks").join("gc.lock")
    }

    /// Hold the GC lock shared (many realisations at once; GC waits for them).
    pub fn gc_guard(&self) -> Result<GcGuard, StoreError> {
        let flock = crate::lock::shared(&self.gc_lock_path(), "the store's GC lock")?;
        Ok(GcGuard { _flock: flock })
    }

    /// Every path reachable from the roots.
    pub fn live_paths(&self) -> Result<BTreeSet<StorePath>, StoreError> {
        let mut live = BTreeSet::new();
        let mut todo: VecDeque<StorePath> = VecDeque::new();
        for r in self.roots()? {
            todo.push_back(r.target);
            todo.extend(r.keep);
        }
        while let Some(p) = todo.pop_front() {
            if !self.is_valid(&p) || !live.insert(p.clone()) {
                continue;
            }
            let info = self.path_info(&p)?;
            todo.extend(info.references.into_iter().filter(|r| !live.contains(r)));
        }
        Ok(live)
    }

    /// Delete unreachable paths (at most `max_freed` bytes' worth, if given).
    pub fn collect_garbage(
        &self,
        dry_run: bool,
        max_freed: Option<u64>,
    ) -> Result<GcReport, StoreError> {
        let _lock = Lock::acquire(&self.gc_lock_path())?;
        let live = self.live_paths()?;
        let mut report = GcReport {
            alive: live.len(),
            ..Default::default()
        };
        for p in self.valid_paths()? {
            if live.contains(&p) {
                continue;
            }
            if max_freed.is_some_and(|m| report.freed >= m) {
                break;
            }
            let size = self.path_info(&p).map(|i| i.size).unwrap_or(0);
            if !dry_run {
                self.delete_path(&p)?;
            }
            report.freed += size;
            report.dead.push((p, size));
        }
        if !dry_run {
            self.clean_leftovers()?;
        }
        Ok(report)
    }

    /// Remove contents without metadata (crash leftovers) and stale temporaries.
    fn clean_leftovers(&self) -> Result<(), StoreError> {
        let dir = self.store_dir();
        for e in std::fs::read_dir(&dir).map_err(|e| StoreError::io("listing", &dir, e))? {
            let e = e.map_err(|e| StoreError::io("listing", &dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            match name.parse::<StorePath>() {
                Ok(p) if self.is_valid(&p) => {}
                _ => content::remove(&e.path())?,
            }
        }
        // Build directories and partial copies under `tmp/` (`<label>-<pid>-<n>`), and
        // the `.tmp-<pid>-<n>` files of atomic writes, left by processes that died (a
        // killed copy, a crash). Entries of live processes stay: they are in use.
        let tmp = self.dir("tmp");
        for e in std::fs::read_dir(&tmp).map_err(|e| StoreError::io("listing", &tmp, e))? {
            let e = e.map_err(|e| StoreError::io("listing", &tmp, e))?;
            if temporary_owner(&e.file_name().to_string_lossy()).is_some_and(|pid| !alive(pid)) {
                content::remove(&e.path())?;
            }
        }
        for sub in [
            "meta",
            "trace",
            "drv-outputs",
            "memo",
            "log",
            "gcroots/auto",
        ] {
            let d = self.dir(sub);
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(rest) = name.strip_prefix(".tmp-") else {
                    continue;
                };
                if temporary_owner(&format!("t-{rest}")).is_some_and(|pid| !alive(pid)) {
                    content::remove(&e.path())?;
                }
            }
        }
        Ok(())
    }

    /// Check every valid path exists, and with `contents`, that it still hashes to its
    /// recorded content hash.
    pub fn verify(&self, contents: bool) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        for p in self.valid_paths()? {
            report.checked += 1;
            let info = self.path_info(&p)?;
            let on_disk = self.path_of(&p);
            if std::fs::symlink_metadata(&on_disk).is_err() {
                report.corrupt.push(Corruption {
                    path: p,
                    problem: "its contents are missing".into(),
                });
                continue;
            }
            if contents {
                match content::hash_path(&on_disk, &Default::default()) {
                    Ok(t) if t.hash == info.content_hash && t.size == info.size => {}
                    Ok(t) => report.corrupt.push(Corruption {
                        path: p,
                        problem: format!(
                            "contents hash to {} ({} bytes), but {} ({} bytes) was recorded",
                            t.hash, t.size, info.content_hash, info.size
                        ),
                    }),
                    Err(e) => report.corrupt.push(Corruption {
                        path: p,
                        problem: e.to_string(),
                    }),
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmod_schema::PathKind;

    #[test]
    fn gc_keeps_rooted_closures_and_deletes_the_rest() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(&t.path().join("s")).unwrap();
        let none = BTreeSet::new();
        let dep = s.add_bytes(PathKind::Output, "dep", b"dep", &none).unwrap();
        let top = s
            .add_bytes(
                PathKind::Output,
                "top",
                b"top",
                &BTreeSet::from([dep.clone()]),
            )
            .unwrap();
        let kept = s
            .add_bytes(PathKind::Output, "kept.o", b"obj", &none)
            .unwrap();
        let junk = s
            .add_bytes(PathKind::Output, "junk", b"junk", &none)
            .unwrap();
        let link = t.path().join("result");
        let keep = crate::roots::KeepList::new(&BTreeSet::from([kept.clone()])).unwrap();
        s.add_out_link(&link, &top, &keep).unwrap();

        let dry = s.collect_garbage(true, None).unwrap();
        assert_eq!(dry.dead, vec![(junk.clone(), 4)]);
        assert!(s.is_valid(&junk), "dry run deletes nothing");
        let r = s.collect_garbage(false, None).unwrap();
        assert_eq!(r.freed, 4);
        assert!(!s.is_valid(&junk) && !s.path_of(&junk).exists());
        assert!(s.is_valid(&top) && s.is_valid(&dep) && s.is_valid(&kept));

        // Removing the out-link makes everything garbage.
        std::fs::remove_file(&link).unwrap();
        let r = s.collect_garbage(false, None).unwrap();
        assert_eq!(r.dead.len(), 3);
        assert!(s.valid_paths().unwrap().is_empty());
        assert!(s.roots().unwrap().is_empty());
    }

    #[test]
    fn gc_removes_temporaries_of_dead_processes_only() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        // A killed copy's partial tree (read-only, as unpacked paths are normalised).
        let recv = s.dir("tmp").join(format!("recv-{dead}-3"));
        std::fs::create_dir_all(recv.join("p")).unwrap();
        std::fs::write(recv.join("p/f"), "x").unwrap();
        content::normalise(&recv).unwrap();
        let meta_tmp = s.dir("meta").join(format!(".tmp-{dead}-0"));
        std::fs::write(&meta_tmp, "{").unwrap();
        let trace_tmp = s.dir("trace").join(format!(".tmp-{dead}-9"));
        std::fs::write(&trace_tmp, "{").unwrap();
        // This process's own build directory and temporary are in use.
        let mine = s.dir("tmp").join(format!("build-{me}-1"));
        std::fs::create_dir_all(&mine).unwrap();
        let my_meta = s.dir("meta").join(format!(".tmp-{me}-1"));
        std::fs::write(&my_meta, "{").unwrap();
        // Names that are not temporaries are not touched.
        let other = s.dir("tmp").join("notes");
        std::fs::write(&other, "").unwrap();

        s.collect_garbage(true, None).unwrap();
        assert!(recv.exists(), "a dry run deletes nothing");
        s.collect_garbage(false, None).unwrap();
        assert!(!recv.exists() && !meta_tmp.exists() && !trace_tmp.exists());
        assert!(mine.exists() && my_meta.exists() && other.exists());
        assert_eq!(temporary_owner("build-12-3"), Some(12));
        assert_eq!(temporary_owner("t-12-x"), None);
        assert_eq!(temporary_owner("-12-3"), None);
    }

    #[test]
    fn verify_detects_modified_and_missing_contents() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let none = BTreeSet::new();
        let a = s.add_bytes(PathKind::Output, "a", b"aaa", &none).unwrap();
        let b = s.add_bytes(PathKind::Output, "b", b"bbb", &none).unwrap();
        assert!(s.verify(true).unwrap().corrupt.is_empty());
        let pa = s.path_of(&a);
        std::fs::set_permissions(&pa, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        std::fs::write(&pa, "tampered").unwrap();
        std::fs::remove_file(s.path_of(&b)).unwrap();
        let r = s.verify(true).unwrap();
        assert_eq!(r.checked, 2);
        let bad: Vec<&StorePath> = r.corrupt.iter().map(|c| &c.path).collect();
        assert_eq!(bad, vec![&a, &b]);
        assert!(r.corrupt[0].problem.contains("was recorded"));
        assert!(r.corrupt[1].problem.contains("missing"));
    }
}
