//! Waiting for a builder under its limits: the wall-clock timeout and the output-size
//! limit kill the builder and its process group (in the full sandbox the builder is pid 1
//! of its pid namespace, so that kills every process in it). The output-size limit is
//! enforced per file by `RLIMIT_FSIZE` (set in the child), and in total by a
//! [`SizeWatch`] polled while the builder runs and by measuring once more after it exits
//! (see `output_size.rs`).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::error::OutputOverrun;
use crate::materialise::substitute_args;
use crate::output_size::{check_sizes, SizeWatch};
use crate::{env, Action, Enforcement, ExitKind, Outcome, SandboxError};

/// Run a builder without namespaces (`off`, and the macOS `sandbox-exec` wrapper): `cmd`
/// arrives with its program (and any wrapper arguments) set; this appends the action's
/// arguments with the build directory spelled as `build_dir`, clears the environment,
/// sends both output streams to the log, applies [`child_common`], then waits under the
/// limits and checks the output sizes. `what` names the spawn in errors.
pub(crate) fn run_unshared(
    mut cmd: Command,
    action: &Action,
    build_dir: &Path,
    what: String,
    start: Instant,
    enforcement: Enforcement,
) -> Result<Outcome, SandboxError> {
    let log = crate::log_file::create(&action.log_path)?;
    let dup = || {
        log.try_clone()
            .map_err(|e| SandboxError::io("duplicating log", &action.log_path, e))
    };
    let (log_err, log_out) = (dup()?, dup()?);
    let seen = build_dir.to_string_lossy().into_owned();
    cmd.args(substitute_args(&action.args, &seen))
        .env_clear()
        .envs(env::for_action(&seen, &action.env))
        .current_dir(build_dir)
        .stdin(Stdio::null())
        .stdout(log_out)
        .stderr(log_err);
    let max = action.limits.max_output_bytes;
    let caller = std::process::id() as libc::pid_t;
    // SAFETY: child_common and getppid only make async-signal-safe calls.
    unsafe {
        cmd.pre_exec(move || {
            child_common(max)?;
            // The parent-death signal child_common armed comes too late for a caller
            // that died since the fork: our parent is someone else then.
            if libc::getppid() != caller {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| SandboxError::Setup {
        step: what,
        source: e,
    })?;
    let pid = Pid::from_raw(child.id() as i32);
    let exit = wait(pid, pid, action)?;
    conclude(action, log, exit, start, enforcement)
}

/// After the builder exited (`exit`): close its log and check the outputs' and the
/// log's sizes against the limit; the step's outcome.
pub(crate) fn conclude(
    action: &Action,
    log: std::fs::File,
    exit: ExitKind,
    start: Instant,
    enforcement: Enforcement,
) -> Result<Outcome, SandboxError> {
    crate::log_file::release(&log);
    drop(log);
    check_sizes(
        &action.build_dir,
        &action.log_path,
        action.limits.max_output_bytes,
    )?;
    Ok(Outcome {
        exit,
        elapsed: start.elapsed(),
        enforcement,
    })
}

/// How waiting for the builder ended.
enum Waited {
    Done(nix::Result<WaitStatus>),
    /// The time limit expired; the builder was killed.
    TimedOut,
    /// The size watch found the output-size limit exceeded; the builder was killed.
    OverSize(OutputOverrun),
}

/// `waitpid(pid)`, retried on `EINTR`.
fn reap(pid: Pid) -> nix::Result<WaitStatus> {
    loop {
        match waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// What to do when the supervisor stops a builder (time or size limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnTimeout {
    /// SIGKILL the process and its group at once.
    Kill,
    /// Send SIGTERM and give the process this long to clean up (the Landlock-mode
    /// subreaper kills its descendants), then SIGKILL.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    AskFirst(Duration),
}

/// Whether the builder must be stopped now: the size watch is asked first (when its
/// measurement is due), then the deadline.
fn must_stop(deadline: Option<Instant>, watch: &mut SizeWatch<'_>) -> Option<Waited> {
    if let Some(overrun) = watch.poll() {
        return Some(Waited::OverSize(overrun));
    }
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return Some(Waited::TimedOut);
    }
    None
}

/// How long to sleep before something is due: the deadline or the size watch.
fn next_wake(deadline: Option<Instant>, watch: &SizeWatch<'_>) -> Duration {
    let left = deadline.map_or(Duration::MAX, |d| {
        d.saturating_duration_since(Instant::now())
    });
    left.min(watch.due_in())
}

/// Portable waiting: a helper thread blocks in `waitpid` while we wait on a channel,
/// waking for the deadline and the size watch.
fn wait_with_thread(
    pid: Pid,
    pgid: Pid,
    deadline: Option<Instant>,
    on_timeout: OnTimeout,
    watch: &mut SizeWatch<'_>,
) -> Waited {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(reap(pid));
    });
    loop {
        match rx.recv_timeout(next_wake(deadline, watch)) {
            Ok(status) => return Waited::Done(status),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Waited::Done(Err(nix::errno::Errno::ECHILD))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let Some(why) = must_stop(deadline, watch) else {
                    continue;
                };
                if let OnTimeout::AskFirst(grace) = on_timeout {
                    let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
                    if rx.recv_timeout(grace).is_ok() {
                        let _ = killpg(pgid, Signal::SIGKILL);
                        return why;
                    }
                }
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                let _ = killpg(pgid, Signal::SIGKILL);
                // Reap, so no zombie outlives the action.
                let _ = rx.recv_timeout(Duration::from_secs(10));
                return why;
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn wait_status(
    pid: Pid,
    pgid: Pid,
    deadline: Option<Instant>,
    on_timeout: OnTimeout,
    watch: &mut SizeWatch<'_>,
) -> Waited {
    // A pidfd lets the calling thread poll for the exit with a timeout (no helper thread,
    // which matters when many actions run at once), and names this very process even if
    // its pid were reused, so the kill can never hit an unrelated process.
    match pidfd::open(pid) {
        Some(fd) => pidfd::wait(&fd, pid, pgid, deadline, on_timeout, watch),
        None => wait_with_thread(pid, pgid, deadline, on_timeout, watch),
    }
}

#[cfg(not(target_os = "linux"))]
fn wait_status(
    pid: Pid,
    pgid: Pid,
    deadline: Option<Instant>,
    on_timeout: OnTimeout,
    watch: &mut SizeWatch<'_>,
) -> Waited {
    wait_with_thread(pid, pgid, deadline, on_timeout, watch)
}

/// Block until `pid` exits, under `action`'s limits. If the time limit expires, or the
/// build directory or log grows past the output-size limit while it runs, `pid` and the
/// process group `pgid` are killed and [`SandboxError::TimeLimit`] or
/// [`SandboxError::OutputLimit`] is returned. A death by `SIGXFSZ` (the per-file size
/// limit) is reported as [`SandboxError::OutputLimit`] too.
pub(crate) fn wait(pid: Pid, pgid: Pid, action: &Action) -> Result<ExitKind, SandboxError> {
    wait_with(pid, pgid, action, OnTimeout::Kill)
}

/// [`wait`] with a choice of how the builder is stopped on a limit.
pub(crate) fn wait_with(
    pid: Pid,
    pgid: Pid,
    action: &Action,
    on_timeout: OnTimeout,
) -> Result<ExitKind, SandboxError> {
    let limits = &action.limits;
    let mut watch = SizeWatch::new(&action.build_dir, &action.log_path, limits.max_output_bytes);
    let deadline = Instant::now().checked_add(limits.timeout);
    let status = match wait_status(pid, pgid, deadline, on_timeout, &mut watch) {
        Waited::Done(status) => status,
        Waited::TimedOut => {
            return Err(SandboxError::TimeLimit {
                limit: limits.timeout,
            })
        }
        Waited::OverSize(overrun) => {
            return Err(SandboxError::OutputLimit {
                limit: limits.max_output_bytes,
                overrun,
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
            overrun: OutputOverrun::FileTooLarge,
        });
    }
    Ok(exit)
}

#[cfg(target_os = "linux")]
mod pidfd {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;

    use super::{must_stop, next_wake, reap, OnTimeout, SizeWatch, Waited};

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

    /// Poll `fd` for the process's exit, at most `wait` (rounded up to whole
    /// milliseconds, so we never spin on a sub-millisecond remainder). `Ok(true)`: it
    /// exited.
    fn poll_exit(fd: &OwnedFd, wait: Duration) -> std::io::Result<bool> {
        let ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(r > 0)
    }

    /// Wait for the process behind `fd` to exit, waking for the deadline and the size
    /// watch; stop it when either says so.
    pub(super) fn wait(
        fd: &OwnedFd,
        pid: Pid,
        pgid: Pid,
        deadline: Option<Instant>,
        on_timeout: OnTimeout,
        watch: &mut SizeWatch<'_>,
    ) -> Waited {
        loop {
            match poll_exit(fd, next_wake(deadline, watch)) {
                Ok(true) => return Waited::Done(reap(pid)),
                Ok(false) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return super::wait_with_thread(pid, pgid, deadline, on_timeout, watch),
            }
            let Some(why) = must_stop(deadline, watch) else {
                continue;
            };
            if let OnTimeout::AskFirst(grace) = on_timeout {
                signal(fd, libc::SIGTERM);
                // An error here (EINTR) just escalates early.
                let _ = poll_exit(fd, grace);
            }
            signal(fd, libc::SIGKILL);
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = reap(pid);
            return why;
        }
    }

    /// Send `sig` through the pidfd.
    fn signal(fd: &OwnedFd, sig: libc::c_int) {
        // SAFETY: plain syscall on a valid pidfd.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
}

/// Child-side setup shared by every mode: own process group, umask 022, the per-file
/// size limit, a fixed address-space layout, no new privileges, and (Linux) death by
/// `SIGKILL` when the thread that started it exits, so a builder never outlives cmod
/// (`linux/lifetime.rs` explains the thread rule and the race after the fork).
///
/// The per-file limit is one byte above `max_file_bytes`: a write past it is cut off there,
/// so a file that hit the limit is still measurably over it in `check_sizes` even when a
/// shell between us and the writer swallows the `SIGXFSZ`.
///
/// # Safety
/// Must only be called in a freshly forked or cloned child before exec: it changes the
/// calling process's group, umask, limits and personality. It makes only
/// async-signal-safe calls and does not allocate, so it is fit for such a child.
pub(crate) unsafe fn child_common(max_file_bytes: u64) -> std::io::Result<()> {
    // SAFETY: plain integer arguments and a `rlimit` on this stack; the process changed is
    // the child the caller guarantees we are. (`io::Error::last_os_error` only reads errno;
    // it does not allocate.)
    unsafe {
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
        // clang 19 folds heap addresses into the signature of a BMI that imports other
        // modules, so its output varies with address-space randomisation. Builders run with
        // a fixed layout; the sandbox, not ASLR, is what contains them.
        #[cfg(target_os = "linux")]
        {
            let current = libc::personality(0xffff_ffff);
            if current == -1
                || libc::personality(
                    (current as libc::c_ulong) | libc::ADDR_NO_RANDOMIZE as libc::c_ulong,
                ) == -1
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        #[cfg(target_os = "linux")]
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}
