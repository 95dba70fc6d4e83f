//! The builder's log file, with room kept for its last words.
//!
//! A builder that fills the disk usually fails *because* of that, and its error message
//! ("IO failure on output stream: No space left on device") is then the one write that
//! cannot land: the log is on the same full file system, so the user saw "the builder
//! failed with exit code 1" and an empty log. So the log is created with
//! [`LOG_RESERVE`] bytes of blocks already allocated (`fallocate` with
//! `FALLOC_FL_KEEP_SIZE`: the file stays empty, but writes into the reserved range need
//! no new blocks), and [`release`] gives back what was not used once the builder has
//! exited, before the output sizes are measured. On file systems without `fallocate`
//! the reservation is silently skipped.

use std::fs::File;
use std::path::Path;

use crate::SandboxError;

/// Bytes reserved for the log: room for a compiler's fatal error and stack dump.
pub(crate) const LOG_RESERVE: u64 = 16 * 1024;

/// Create (truncating) the log at `path`, with [`LOG_RESERVE`] bytes reserved.
pub(crate) fn create(path: &Path) -> Result<File, SandboxError> {
    let log = File::create(path).map_err(|e| SandboxError::io("creating log", path, e))?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a file we own; a failure only means no reservation.
        unsafe {
            libc::fallocate(
                log.as_raw_fd(),
                libc::FALLOC_FL_KEEP_SIZE,
                0,
                LOG_RESERVE as libc::off_t,
            );
        }
    }
    Ok(log)
}

/// Free the reserved blocks of `log` (from [`create`]) the builder did not write into,
/// once it has exited. Best effort.
pub(crate) fn release(log: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        let Ok(len) = log.metadata().map(|m| m.len()) else {
            return;
        };
        if len >= LOG_RESERVE {
            return;
        }
        // Truncating to the same length drops the blocks past the end on ext4 and tmpfs.
        let _ = log.set_len(len);
        // Some file systems (XFS) keep them: punch them out there.
        let kept = log.metadata().map_or(0, |m| m.blocks() * 512);
        if kept > len.next_multiple_of(4096) {
            // SAFETY: a plain syscall on a file we own.
            unsafe {
                libc::fallocate(
                    log.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    len as libc::off_t,
                    (LOG_RESERVE - len) as libc::off_t,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = log;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn the_reservation_is_allocated_then_given_back() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("log");
        let mut log = create(&p).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.len(), 0);
        assert!(
            m.blocks() * 512 >= LOG_RESERVE,
            "{} blocks reserved",
            m.blocks()
        );
        log.write_all(b"error: no space\n").unwrap();
        release(&log);
        drop(log);
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.len(), 16);
        assert!(m.blocks() * 512 < LOG_RESERVE, "{} blocks kept", m.blocks());
        assert_eq!(std::fs::read(&p).unwrap(), b"error: no space\n");
    }
}
