//! Tying a sandbox's lifetime to its caller's: when cmod dies (`kill -9`, a crash, a
//! closed pipe), every process of every sandbox it started dies with it.
//!
//! The mechanism is `PR_SET_PDEATHSIG`, set by the cloned child on itself:
//!
//! * in the full sandbox on the child that becomes **pid 1 of the pid namespace**
//!   (`SIGKILL`). The kernel delivers it even to a namespace init, because the sender —
//!   the dying parent — is in an ancestor namespace, and when pid 1 dies the kernel kills
//!   every other process of the namespace;
//! * in the Landlock sandbox on the **subreaper** (`SIGTERM`, which it waits for anyway):
//!   it kills the builder's group and sweeps every descendant, exactly as on the time
//!   limit. (`SIGKILL` would leave the builder and its children running, re-parented to
//!   the host's init.)
//!
//! Two properties of the parent-death signal matter here:
//!
//! * it fires when the **thread** that cloned the child exits, not the process. cmod
//!   clones from its worker threads, and each of them waits for its builder in
//!   `supervise::wait` before it can exit, so the thread lives exactly as long as the
//!   sandbox is wanted. A caller must therefore never hand a running sandbox to another
//!   thread and let the cloning thread finish;
//! * it is only armed once the child has called `prctl`. If the caller dies between the
//!   `clone` and that call, no signal comes. The child closes that window itself: just
//!   before it executes the builder (or starts it, for the subreaper) it polls a pidfd of
//!   the caller process, which is readable once the whole caller has exited, and exits
//!   instead. The setup between the two (mounts, maps: milliseconds) makes sure the
//!   caller's exit, if it raced the `prctl`, is visible by then.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::raw::c_int;
use std::sync::OnceLock;

/// A pidfd of this process (opened once), or -1 on kernels without `pidfd_open` (< 5.3),
/// where the narrow window described in the module documentation stays open.
pub(crate) fn caller_pidfd() -> c_int {
    static FD: OnceLock<Option<OwnedFd>> = OnceLock::new();
    FD.get_or_init(|| {
        // SAFETY: a plain syscall on our own pid; the returned fd (close-on-exec) is
        // owned by the OnceLock for the life of the process.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
        if fd < 0 {
            None
        } else {
            // SAFETY: a fresh fd from the kernel, owned only here.
            Some(unsafe { OwnedFd::from_raw_fd(fd as c_int) })
        }
    })
    .as_ref()
    .map_or(-1, |fd| fd.as_raw_fd())
}

/// Have the kernel send `sig` to this process when the thread that created it exits.
///
/// # Safety
/// Only for a child cloned by this crate, before it executes its program: in cmod itself
/// it would have cmod killed when the thread that started it exits.
pub(crate) unsafe fn die_with_parent(sig: c_int) -> bool {
    // SAFETY: a `prctl` with integer arguments; it changes only the calling process,
    // which the caller guarantees is a sandbox child.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) == 0 }
}

/// Whether the caller behind `pidfd` (from [`caller_pidfd`]) has exited. `false` when
/// there is no pidfd. Only polls, so it is fit for a cloned child (no allocation).
pub(crate) fn caller_gone(pidfd: c_int) -> bool {
    if pidfd < 0 {
        return false;
    }
    let mut p = libc::pollfd {
        fd: pidfd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid `pollfd` on this stack; polling any descriptor number is harmless.
    let ready = unsafe { libc::poll(&mut p, 1, 0) };
    ready > 0 && p.revents & libc::POLLIN != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_pidfd_says_we_are_alive() {
        let fd = caller_pidfd();
        assert!(
            fd >= 0,
            "pidfd_open is available on the kernels cmod supports"
        );
        assert_eq!(caller_pidfd(), fd, "opened once");
        assert!(!caller_gone(fd));
        // -1 means "no pidfd".
        assert!(!caller_gone(-1));
    }

    #[test]
    fn a_dead_process_pidfd_is_readable() {
        let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
        // SAFETY: a plain syscall; the fd is owned below.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as c_int, 0) };
        assert!(fd >= 0);
        // SAFETY: fresh fd.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as c_int) };
        child.wait().unwrap();
        assert!(caller_gone(fd.as_raw_fd()));
    }
}
