//! Waiting for a builder under its limits: the wall-clock timeout kills the whole process
//! group; the output-size limit is enforced per file by `RLIMIT_FSIZE` (set in the child)
//! and in total by measuring the build directory afterwards.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::{ExitKind, Limits, SandboxError};

/// Block until `pid` exits or `limits.timeout` expires. On expiry the process group `pgid`
/// is killed and [`SandboxError::TimeLimit`] is returned. A death by `SIGXFSZ` (the
/// per-file size limit) is reported as [`SandboxError::OutputLimit`].
pub(crate) fn wait(pid: Pid, pgid: Pid, limits: &Limits) -> Result<ExitKind, SandboxError> {
    // A pidfd names this very process even if its pid is reaped and reused before the
    // timeout fires, so the kill below can never hit an unrelated process.
    #[cfg(target_os = "linux")]
    let pidfd = pidfd::open(pid);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let status = loop {
            match waitpid(pid, None) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other,
            }
        };
        let _ = tx.send(status);
    });
    let status = match rx.recv_timeout(limits.timeout) {
        Ok(status) => status,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            #[cfg(target_os = "linux")]
            if let Some(fd) = &pidfd {
                pidfd::kill(fd);
            }
            let _ = killpg(pgid, Signal::SIGKILL);
            // Reap, so no zombie outlives the action.
            let _ = rx.recv_timeout(Duration::from_secs(10));
            return Err(SandboxError::TimeLimit {
                limit: limits.timeout,
            });
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            return Err(SandboxError::Setup {
                step: "waiting for the builder".into(),
                source: std::io::Error::other("waiter thread vanished"),
            })
        }
    };
    // Whatever the builder left running in its group dies with it.
    let _ = killpg(pgid, Signal::SIGKILL);
    let exit = match status {
        Ok(WaitStatus::Exited(_, code)) => ExitKind::Code(code),
        Ok(WaitStatus::Signaled(_, sig, _)) => ExitKind::Signal(sig as i32),
        Ok(other) => {
            return Err(SandboxError::Setup {
                step: "waiting for the builder".into(),
                source: std::io::Error::other(format!("unexpected wait status {other:?}")),
            })
        }
        Err(e) => {
            return Err(SandboxError::Setup {
                step: "waiting for the builder".into(),
                source: e.into(),
            })
        }
    };
    if exit == ExitKind::Signal(libc::SIGXFSZ) {
        return Err(SandboxError::OutputLimit {
            limit: limits.max_output_bytes,
        });
    }
    Ok(exit)
}

#[cfg(target_os = "linux")]
mod pidfd {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use nix::unistd::Pid;

    /// `pidfd_open(pid)`, or `None` on kernels without it (< 5.3).
    pub(super) fn open(pid: Pid) -> Option<OwnedFd> {
        // SAFETY: plain syscall; the returned fd is owned by us.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        if fd < 0 {
            None
        } else {
            // SAFETY: a fresh fd from the kernel.
            Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
        }
    }

    /// Send SIGKILL through the pidfd.
    pub(super) fn kill(fd: &OwnedFd) {
        // SAFETY: plain syscall on a valid pidfd.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
}

/// Total bytes of regular files under `dir` (symlinks are not followed).
pub(crate) fn tree_size(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                total += entry.metadata()?.len();
            }
        }
    }
    Ok(total)
}

/// Fail with [`SandboxError::OutputLimit`] if the build directory or log outgrew the limit.
pub(crate) fn check_sizes(
    build_dir: &Path,
    log: &Path,
    limits: &Limits,
) -> Result<(), SandboxError> {
    let size = tree_size(build_dir).map_err(|e| SandboxError::io("measuring", build_dir, e))?;
    let log_size = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    if size > limits.max_output_bytes || log_size > limits.max_output_bytes {
        return Err(SandboxError::OutputLimit {
            limit: limits.max_output_bytes,
        });
    }
    Ok(())
}

/// Child-side setup shared by the modes that spawn with `pre_exec`: own process group,
/// umask 022, the per-file size limit, and no new privileges.
///
/// The per-file limit is one byte above `max_file_bytes`: a write past it is cut off there,
/// so a file that hit the limit is still measurably over it in [`check_sizes`] even when a
/// shell between us and the writer swallows the `SIGXFSZ`.
///
/// # Safety
/// Must only be called in a freshly forked child before exec; it uses only
/// async-signal-safe calls.
pub(crate) unsafe fn child_common(max_file_bytes: u64) -> std::io::Result<()> {
    if libc::setpgid(0, 0) != 0 {
        return Err(std::io::Error::last_os_error());
    }
    libc::umask(0o022);
    let cap = max_file_bytes.saturating_add(1) as libc::rlim_t;
    let lim = libc::rlimit {
        rlim_cur: cap,
        rlim_max: cap,
    };
    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[cfg(target_os = "linux")]
    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
