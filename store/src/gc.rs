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
use crate::registry::UnreadableMetadata;

/// What GC did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Deleted (or dead) paths with their sizes.
    pub dead: Vec<(StorePath, u64)>,
    /// Bytes deleted (or that would be).
    pub freed: u64,
    /// How many registered paths are reachable from a root and were kept.
    pub alive: usize,
    /// Metadata files that cannot be read: never deleted by GC (`cmod store repair`).
    pub unreadable: Vec<UnreadableMetadata>,
    /// Live paths whose references are unknown (their metadata is unreadable): anything
    /// might be reachable through them, so nothing was deleted.
    pub held_back: Vec<StorePath>,
}

/// The paths reachable from the roots, and those among them whose metadata could not
/// be read (their references are unknown).
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    /// Every path reachable from a root.
    pub live: BTreeSet<StorePath>,
    /// Live paths whose references are unknown because their metadata is unreadable.
    pub unknown_references: Vec<StorePath>,
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

    /// Every registered path reachable from the roots.
    pub fn live_paths(&self) -> Result<BTreeSet<StorePath>, StoreError> {
        Ok(self.liveness()?.live)
    }

    /// [`Store::live_paths`], noting the live paths whose metadata cannot be read instead
    /// of stopping at them.
    pub fn liveness(&self) -> Result<Liveness, StoreError> {
        let mut out = Liveness::default();
        let mut todo: VecDeque<StorePath> = VecDeque::new();
        for r in self.roots()? {
            todo.push_back(r.target);
            todo.extend(r.keep);
        }
        while let Some(p) = todo.pop_front() {
            if !self.is_registered(&p) || !out.live.insert(p.clone()) {
                continue;
            }
            match self.path_info(&p) {
                Ok(info) => todo.extend(
                    info.references
                        .into_iter()
                        .filter(|r| !out.live.contains(r)),
                ),
                Err(StoreError::CorruptMetadata { .. }) => out.unknown_references.push(p),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Delete unreachable paths (at most `max_freed` bytes' worth, if given).
    pub fn collect_garbage(
        &self,
        dry_run: bool,
        max_freed: Option<u64>,
    ) -> Result<GcReport, StoreError> {
        let _lock = Lock::acquire(&self.gc_lock_path())?;
        let liveness = self.liveness()?;
        let live = liveness.live;
        let (registered, unreadable) = self.registered()?;
        let mut report = GcReport {
            alive: live.len(),
            unreadable,
            held_back: liveness.unknown_references,
            ..Default::default()
        };
        if !report.held_back.is_empty() {
            // What a live path with unreadable metadata refers to is unknown: no path
            // can be proven dead until it is repaired.
            return Ok(report);
        }
        for p in registered {
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
            // Kept views hold hard links to store files, collected ones included: they go
            // (no build runs while GC holds its lock), and the space is really freed.
            self.clear_views()?;
        }
        Ok(report)
    }

    /// Remove the entries of `tmp/` (build directories, their logs, partial copies:
    /// `<label>-<pid>-<n>[.ext]`) that belong to processes that are gone, and the fetch
    /// locks nobody holds. Safe beside running realisations: what a live process owns is
    /// kept. Returns how many were removed.
    pub fn clean_temporaries(&self) -> Result<usize, StoreError> {
        let tmp = self.dir("tmp");
        let mut removed = 0;
        for e in std::fs::read_dir(&tmp).map_err(|e| StoreError::io("listing", &tmp, e))? {
            let e = e.map_err(|e| StoreError::io("listing", &tmp, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.split_once('.').map_or(name.as_str(), |(s, _)| s);
            if temporary_owner(stem).is_some_and(|pid| !alive(pid)) {
                content::remove(&e.path())?;
                removed += 1;
            }
        }
        Ok(removed + crate::fetch_lock::sweep(self)?)
    }

    /// Retire the kept views in `views/` (see `cmod_sandbox::retire_views`): the next
    /// build of each step makes its view again, even one building right now.
    pub(crate) fn clear_views(&self) -> Result<(), StoreError> {
        let dir = self.dir("views");
        cmod_sandbox::retire_views(&dir)
            .map_err(|e| StoreError::io("retiring the views in", &dir, e))
    }

    /// Remove contents without metadata (crash leftovers) and stale temporaries.
    fn clean_leftovers(&self) -> Result<(), StoreError> {
        let dir = self.store_dir();
        for e in std::fs::read_dir(&dir).map_err(|e| StoreError::io("listing", &dir, e))? {
            let e = e.map_err(|e| StoreError::io("listing", &dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            match name.parse::<StorePath>() {
                Ok(p) if self.is_registered(&p) => {}
                _ => content::remove(&e.path())?,
            }
        }
        // Build directories and partial copies under `tmp/` (`<label>-<pid>-<n>`), and
        // the `.tmp-<pid>-<n>` files of atomic writes, left by processes that died (a
        // killed copy, a crash). Entries of live processes stay: they are in use.
        self.clean_temporaries()?;
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
}
