//! The output-size limit.
//!
//! Three mechanisms enforce it together:
//! * `RLIMIT_FSIZE` (set in the child, see `supervise::child_common`) stops any single file
//!   at the limit: the kernel sends `SIGXFSZ`;
//! * while the builder runs, the wait loops poll a [`SizeWatch`], which measures the build
//!   directory and the log on a backing-off schedule and has the builder killed as soon as
//!   they exceed the limit, so many files each under the per-file limit cannot fill the
//!   disk until the time limit;
//! * after the builder exits, [`check_sizes`] measures once more, exactly.
//!
//! What is measured is the space files take: for each regular file the larger of its
//! length and its allocated blocks, so preallocation (`fallocate` with
//! `FALLOC_FL_KEEP_SIZE`, which `RLIMIT_FSIZE` does not stop) counts too. Symlinks are not
//! followed.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Measured, OutputOverrun};
use crate::SandboxError;

/// When the first measurement happens after the builder starts. Most compile steps of a
/// small project finish before it, so they pay nothing for the watch.
const FIRST_CHECK: Duration = Duration::from_millis(20);
/// The longest interval between two measurements. A builder that writes at disk speed
/// (~1 GB/s) overshoots the limit by at most about this long's worth of writing.
const MAX_INTERVAL: Duration = Duration::from_millis(100);
/// The interval after a measurement is at least this many times as long as the
/// measurement took, so a huge build directory cannot make the watch eat the supervisor's
/// time (polling then costs at most ~1/RATIO of one core).
const COST_RATIO: u32 = 20;

/// Bytes of regular files under `dir` (see the module docs for what counts).
///
/// `tolerant` is for measuring while the builder runs: entries that vanish or cannot be
/// read mid-walk are skipped instead of failing the walk (the exact measurement after the
/// builder exits still reports them).
pub(crate) fn tree_size(dir: &Path, tolerant: bool) -> std::io::Result<u64> {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    let skip = |r: std::io::Error| if tolerant { Ok(()) } else { Err(r) };
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) => {
                skip(e)?;
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    skip(e)?;
                    continue;
                }
            };
            let ft = match entry.file_type() {
                Ok(ft) => ft,
                Err(e) => {
                    skip(e)?;
                    continue;
                }
            };
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                match entry.metadata() {
                    Ok(m) => total = total.saturating_add(file_space(&m)),
                    Err(e) => skip(e)?,
                }
            }
        }
    }
    Ok(total)
}

/// The space a regular file takes: its length or its allocation, whichever is larger.
fn file_space(m: &std::fs::Metadata) -> u64 {
    m.len().max(m.blocks().saturating_mul(512))
}

/// The build directory and the log of one action, measured against its limit.
fn measure(
    build_dir: &Path,
    log: &Path,
    limit: u64,
    tolerant: bool,
) -> Result<Option<(Measured, u64)>, SandboxError> {
    let size =
        tree_size(build_dir, tolerant).map_err(|e| SandboxError::io("measuring", build_dir, e))?;
    if size > limit {
        return Ok(Some((Measured::BuildDir, size)));
    }
    let log_size = std::fs::metadata(log).map(|m| file_space(&m)).unwrap_or(0);
    if log_size > limit {
        return Ok(Some((Measured::Log, log_size)));
    }
    Ok(None)
}

/// Fail with [`SandboxError::OutputLimit`] if the build directory or log of a builder that
/// has exited outgrew the limit.
pub(crate) fn check_sizes(build_dir: &Path, log: &Path, limit: u64) -> Result<(), SandboxError> {
    match measure(build_dir, log, limit, false)? {
        None => Ok(()),
        Some((what, bytes)) => Err(SandboxError::OutputLimit {
            limit,
            overrun: OutputOverrun::AfterExit { what, bytes },
        }),
    }
}

/// Measures a running builder's build directory and log on a backing-off schedule: first
/// after [`FIRST_CHECK`], then at doubling intervals up to [`MAX_INTERVAL`] (longer only if
/// a measurement itself was slow).
pub(crate) struct SizeWatch<'a> {
    build_dir: &'a Path,
    log: &'a Path,
    limit: u64,
    next: Instant,
    interval: Duration,
}

impl<'a> SizeWatch<'a> {
    /// A watch whose first measurement is due [`FIRST_CHECK`] from now.
    pub(crate) fn new(build_dir: &'a Path, log: &'a Path, limit: u64) -> SizeWatch<'a> {
        SizeWatch {
            build_dir,
            log,
            limit,
            next: Instant::now() + FIRST_CHECK,
            interval: FIRST_CHECK,
        }
    }

    /// How long until the next measurement is due (zero if it is due now).
    pub(crate) fn due_in(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }

    /// Measure if a measurement is due. Returns what exceeded the limit, if anything; the
    /// caller then kills the builder. Unreadable entries are skipped (see [`tree_size`]).
    pub(crate) fn poll(&mut self) -> Option<OutputOverrun> {
        let start = Instant::now();
        if start < self.next {
            return None;
        }
        let over = measure(self.build_dir, self.log, self.limit, true)
            .ok()
            .flatten();
        let took = start.elapsed();
        self.interval = (self.interval * 2)
            .min(MAX_INTERVAL)
            .max(took.saturating_mul(COST_RATIO));
        self.next = Instant::now() + self.interval;
        over.map(|(what, bytes)| OutputOverrun::WhileRunning { what, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_waits_before_its_first_measurement_and_then_backs_off() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(dir.path().join("big"), vec![0u8; 10_000]).unwrap();
        let mut watch = SizeWatch::new(dir.path(), &log, 100);
        assert!(watch.due_in() > Duration::from_millis(10));
        assert_eq!(watch.poll(), None, "not due yet: nothing is measured");
        std::thread::sleep(watch.due_in());
        match watch.poll() {
            Some(OutputOverrun::WhileRunning {
                what: Measured::BuildDir,
                bytes,
            }) => assert!(bytes >= 10_000, "{bytes}"),
            other => panic!("{other:?}"),
        }
        assert!(watch.due_in() > FIRST_CHECK, "the interval doubled");
        assert!(watch.due_in() <= MAX_INTERVAL);
    }

    #[test]
    fn preallocated_space_counts() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(dir.path().join("pre")).unwrap();
        // Allocate 1 MiB without changing the length (RLIMIT_FSIZE does not stop this).
        // SAFETY: plain syscall on a valid fd.
        let rc = unsafe {
            libc::fallocate(
                std::os::fd::AsRawFd::as_raw_fd(&f),
                libc::FALLOC_FL_KEEP_SIZE,
                0,
                1 << 20,
            )
        };
        if rc != 0 {
            // Not every file system supports it (then there is nothing to count).
            return;
        }
        assert_eq!(f.metadata().unwrap().len(), 0);
        assert!(tree_size(dir.path(), false).unwrap() >= 1 << 20);
    }

    #[test]
    fn the_exact_measurement_reports_what_it_cannot_read_and_the_watch_skips_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone");
        assert!(tree_size(&missing, false).is_err());
        assert_eq!(tree_size(&missing, true).unwrap(), 0);
        let err = check_sizes(&missing, &dir.path().join("log"), 10).unwrap_err();
        assert!(err.to_string().contains("measuring"), "{err}");
    }

    #[test]
    fn a_log_over_the_limit_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let build = dir.path().join("build");
        std::fs::create_dir(&build).unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, vec![b'x'; 5000]).unwrap();
        let err = check_sizes(&build, &log, 4096).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                SandboxError::OutputLimit {
                    limit: 4096,
                    overrun: OutputOverrun::AfterExit {
                        what: Measured::Log,
                        ..
                    }
                }
            ),
            "{text}"
        );
        assert!(text.contains("its log"), "{text}");
        assert!(!text.contains("killed"), "{text}");
    }
}
