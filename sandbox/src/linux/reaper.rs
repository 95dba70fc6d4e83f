//! Process-tree control for the Landlock-only sandbox, which has no pid namespace.
//!
//! Without a pid namespace a builder can escape a process-group kill with `setsid()` and
//! outlive its time limit (still confined by Landlock, but running). So in Landlock mode
//! the parent clones a small *subreaper* first, and the subreaper starts the builder:
//!
//! * the subreaper sets `PR_SET_CHILD_SUBREAPER`, so every orphaned descendant of the
//!   builder is re-parented to it, whatever session or group it moved to;
//! * when the builder exits, the subreaper kills and reaps all remaining descendants
//!   (read from `/proc/thread-self/children`, repeated until none is left) and then exits
//!   with exactly the builder's status (same code, or the same signal), so the caller
//!   sees the builder's result;
//! * on the time limit the caller sends the subreaper `SIGTERM`; it kills the builder's
//!   group and sweeps all descendants the same way before exiting. (Landlock's signal
//!   scoping, ABI >= 6, stops the builder from sending that signal itself.)
//!
//! Both processes are cloned from the multi-threaded caller, so they follow the rules of
//! child.rs: prepared data only, raw syscalls, no allocation. The builder is started with
//! `CLONE_VM | CLONE_VFORK` (as `posix_spawn` does): it borrows the subreaper's memory,
//! on its own prepared stack, until it executes the program, and the subreaper waits.

use std::ffi::CString;
use std::os::raw::{c_int, c_void};

use super::child::{self, CVec, Stage};

/// Everything the subreaper and the builder need, prepared by the parent.
pub(crate) struct ReaperSpec {
    pub program: CString,
    pub argv: CVec,
    pub envp: CVec,
    pub cwd: CString,
    pub stdin_fd: c_int,
    pub log_fd: c_int,
    pub ruleset_fd: c_int,
    pub max_file_bytes: u64,
    pub err_fd: c_int,
    /// Top of a stack reserved for the builder (allocated by the parent, inherited by the
    /// subreaper's copy of its memory).
    pub builder_stack_top: *mut c_void,
}

static CHILDREN: &[u8] = b"/proc/thread-self/children\0";

/// Exit status the subreaper uses after a time-limit `SIGTERM`.
pub(crate) const TIMED_OUT_EXIT: c_int = 125;

/// The builder: set up its process state and execute the program.
extern "C" fn builder_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the subreaper's ReaperSpec; only raw syscalls follow.
    unsafe {
        let spec = &*(arg as *const ReaperSpec);
        let fail = |stage: Stage| {
            child::fail_to(spec.err_fd, stage, 0);
        };
        if !child::redirect(spec.stdin_fd, 0)
            || !child::redirect(spec.log_fd, 1)
            || !child::redirect(spec.log_fd, 2)
        {
            fail(Stage::Stdio);
        }
        if libc::chdir(spec.cwd.as_ptr()) != 0 {
            fail(Stage::WorkDir);
        }
        if !child::reset_signals() {
            fail(Stage::Signals);
        }
        if crate::supervise::child_common(spec.max_file_bytes).is_err() {
            fail(Stage::Limits);
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, spec.ruleset_fd, 0) != 0 {
            fail(Stage::Landlock);
        }
        if !child::cloexec_from_3() {
            fail(Stage::CloseFds);
        }
        libc::execve(
            spec.program.as_ptr(),
            spec.argv.as_ptr(),
            spec.envp.as_ptr(),
        );
        fail(Stage::Exec);
        127
    }
}

/// Kill every child of this process (orphans re-parented to us included), reap them, and
/// repeat until none is left.
unsafe fn sweep() {
    loop {
        let mut found = false;
        let fd = libc::open(cptr(CHILDREN), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            let mut buf = [0u8; 4096];
            let mut pid: i32 = 0;
            loop {
                let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                if n <= 0 {
                    break;
                }
                for &b in buf.iter().take(n as usize) {
                    if b.is_ascii_digit() {
                        pid = pid.saturating_mul(10).saturating_add(i32::from(b - b'0'));
                    } else if pid > 0 {
                        libc::kill(pid, libc::SIGKILL);
                        found = true;
                        pid = 0;
                    }
                }
            }
            if pid > 0 {
                libc::kill(pid, libc::SIGKILL);
                found = true;
            }
            libc::close(fd);
        }
        let mut status = 0;
        let flags = if found { 0 } else { libc::WNOHANG };
        let r = libc::waitpid(-1, &mut status, flags);
        if r < 0 && *libc::__errno_location() == libc::ECHILD {
            return;
        }
        if r == 0 {
            // Children exist but were not listed (the list is racy by nature): try again.
            libc::usleep(1000);
        }
    }
}

fn cptr(s: &'static [u8]) -> *const libc::c_char {
    s.as_ptr().cast()
}

/// Exit the way the builder did.
unsafe fn mirror(status: c_int) -> ! {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), sig);
        libc::_exit(128 + sig);
    }
    libc::_exit(libc::WEXITSTATUS(status))
}

/// The subreaper: start the builder, wait for it or for the caller's `SIGTERM`, clean up
/// every descendant, and exit like the builder.
pub(crate) extern "C" fn reaper_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's ReaperSpec (our own copy); only raw syscalls follow.
    unsafe {
        let spec = &*(arg as *const ReaperSpec);
        // Our own process group, like every builder's: terminal signals to the caller's
        // group do not reach us, and the caller decides when we stop.
        if libc::setpgid(0, 0) != 0
            || libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0
            || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0
        {
            child::fail_to(spec.err_fd, Stage::Subreaper, 0);
        }
        // No core dump of this copy of the caller if we mirror a crash.
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        // Wait for SIGCHLD and SIGTERM synchronously; the builder resets its mask.
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            child::fail_to(spec.err_fd, Stage::Subreaper, 0);
        }
        let builder = libc::clone(
            builder_main,
            spec.builder_stack_top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            arg,
        );
        if builder < 0 {
            child::fail_to(spec.err_fd, Stage::StartBuilder, 0);
        }
        // The builder has executed (or failed and reported); the caller must see the
        // pipe close, so drop our copy of its write end.
        libc::close(spec.err_fd);
        loop {
            let sig = libc::sigwaitinfo(&set, std::ptr::null_mut());
            if sig == libc::SIGTERM {
                libc::kill(-builder, libc::SIGKILL);
                libc::kill(builder, libc::SIGKILL);
                sweep();
                libc::_exit(TIMED_OUT_EXIT);
            }
            if sig != libc::SIGCHLD {
                continue;
            }
            let mut status = 0;
            loop {
                let r = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if r == builder {
                    // Whatever the builder left behind dies now.
                    libc::kill(-builder, libc::SIGKILL);
                    sweep();
                    mirror(status);
                }
                if r <= 0 {
                    break;
                }
            }
        }
    }
}
