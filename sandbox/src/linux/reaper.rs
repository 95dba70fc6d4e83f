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
//! * if the caller dies (killed, crashed), its parent-death signal is that same `SIGTERM`,
//!   so nothing the builder started outlives cmod (lifetime.rs).
//!
//! Both processes descend from the multi-threaded caller without an `execve`, so they
//! follow the rules of child.rs: prepared data only, raw syscalls, no allocation. The
//! subreaper is cloned without `CLONE_VM`: it has its own copy of the caller's memory, in
//! which a lock another thread of the caller held stays held for good. The builder is
//! started from it with `CLONE_VM | CLONE_VFORK` (as `posix_spawn` does): it shares the
//! subreaper's memory, on its own prepared stack, until it executes the program, and the
//! subreaper is suspended meanwhile.

use std::ffi::CString;
use std::os::raw::{c_int, c_void};

use super::child::{self, CVec, Stage};
use super::lifetime;

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
    /// A pidfd of the caller process, or -1 (see lifetime.rs).
    pub caller_pidfd: c_int,
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

/// Parse ASCII decimal digits (stopping at the first non-digit).
fn parse_pid(bytes: &[u8]) -> i32 {
    let mut pid: i32 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            break;
        }
        pid = pid.saturating_mul(10).saturating_add(i32::from(b - b'0'));
    }
    pid
}

/// SIGKILL every pid listed in `/proc/thread-self/children` (our direct children,
/// re-parented orphans included). `None` if the kernel has no such file
/// (`CONFIG_PROC_CHILDREN`).
///
/// # Safety
/// Only in the subreaper: it kills every child of the calling thread, which in cmod
/// itself would be other builds' processes.
unsafe fn kill_listed_children() -> Option<bool> {
    // SAFETY: the path is a static NUL-terminated string; `buf` is a live stack buffer of
    // the length passed to `read`; `fd` is the descriptor opened here. The children
    // killed are the subreaper's (the caller's contract).
    unsafe {
        let fd = libc::open(cptr(CHILDREN), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let mut found = false;
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
        Some(found)
    }
}

/// The ppid field of a `/proc/<pid>/stat` line (after the last `)` of the command name).
fn stat_ppid(stat: &[u8]) -> i32 {
    match stat.iter().rposition(|&b| b == b')') {
        // ") S 1234 ..."
        Some(i) => stat.get(i + 4..).map_or(0, parse_pid),
        None => 0,
    }
}

/// Fallback without `/proc/thread-self/children`: find our children by scanning every
/// `/proc/<pid>/stat`. `None` if `/proc` cannot be read.
///
/// # Safety
/// As for [`kill_listed_children`].
unsafe fn kill_children_by_scan() -> Option<bool> {
    let mut found = false;
    // SAFETY: `getpid` has no preconditions.
    let me = unsafe { libc::getpid() };
    let ok = scan_children(me, |pid| {
        // SAFETY: `pid` is a child of the subreaper (the caller's contract).
        unsafe { libc::kill(pid, libc::SIGKILL) };
        found = true;
    });
    ok.then_some(found)
}

/// Call `f` with every pid whose parent is `parent`, from `/proc/<pid>/stat`. Returns
/// false if `/proc` cannot be read. No allocation, so it is fit for a cloned child.
fn scan_children(parent: i32, mut f: impl FnMut(i32)) -> bool {
    let me = parent;
    // SAFETY: the path is a static NUL-terminated string.
    let dir = unsafe {
        libc::open(
            cptr(b"/proc\0"),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return false;
    }
    // u64 elements keep the dirent records 8-byte aligned.
    let mut ents = [0u64; 1024];
    let len = std::mem::size_of_val(&ents);
    loop {
        // SAFETY: `ents` is a live buffer of `len` bytes; `dir` is the descriptor opened
        // above.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir, ents.as_mut_ptr(), len) };
        if n <= 0 {
            break;
        }
        let base = ents.as_ptr() as *const u8;
        let mut off = 0usize;
        while off < n as usize {
            // SAFETY: the kernel filled the first `n` bytes of `ents` with whole, 8-byte
            // aligned `dirent64` records, each `d_reclen` bytes long with its
            // NUL-terminated name inside it; `off` is the start of one of them.
            let (name, reclen) = unsafe {
                let d = base.add(off) as *const libc::dirent64;
                let reclen = usize::from((*d).d_reclen);
                let name_at = std::mem::offset_of!(libc::dirent64, d_name);
                let name = std::slice::from_raw_parts(base.add(off + name_at), reclen - name_at);
                (name, reclen)
            };
            let pid = parse_pid(name);
            if pid > 0 && pid != me && stat_parent_is(dir, name, me) {
                f(pid);
            }
            off += reclen;
        }
    }
    // SAFETY: `dir` is the descriptor opened above, closed once.
    unsafe { libc::close(dir) };
    true
}

/// Whether `/proc/<name>/stat` (relative to the open `/proc` directory `dir`) names
/// `parent` as the process's parent. No allocation.
fn stat_parent_is(dir: c_int, name: &[u8], parent: i32) -> bool {
    // "<pid>/stat\0", relative to the /proc fd.
    let mut path = [0u8; 32];
    let digits = name.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits + 6 > path.len() {
        return false;
    }
    path[..digits].copy_from_slice(&name[..digits]);
    path[digits..digits + 5].copy_from_slice(b"/stat");
    // SAFETY: `path` is NUL-terminated (zero-filled past "/stat"); `stat` is a live stack
    // buffer of the length passed to `read`; `fd` is the descriptor opened here.
    unsafe {
        let fd = libc::openat(dir, path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let mut stat = [0u8; 512];
        let r = libc::read(fd, stat.as_mut_ptr().cast(), stat.len());
        libc::close(fd);
        r > 0 && stat_ppid(&stat[..r as usize]) == parent
    }
}

/// Kill every child of this process (orphans re-parented to us included), reap them, and
/// repeat until none is left. If the children cannot be enumerated at all (no /proc), give
/// up after about 200 ms rather than hang.
///
/// # Safety
/// As for [`kill_listed_children`]; it also reaps every child of the calling process.
unsafe fn sweep() {
    let mut blind = 0;
    loop {
        // SAFETY: the caller's contract is theirs.
        let found = unsafe { kill_listed_children().or_else(|| kill_children_by_scan()) };
        let found = found.unwrap_or(false);
        let mut status = 0;
        let flags = if found { 0 } else { libc::WNOHANG };
        // SAFETY: `status` lives on this stack; the children reaped are the subreaper's.
        let r = unsafe { libc::waitpid(-1, &mut status, flags) };
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
            return;
        }
        if r == 0 {
            // Children exist but were not listed (the list is racy by nature): try again.
            blind += 1;
            if blind > 200 {
                return;
            }
            // SAFETY: `usleep` has no preconditions.
            unsafe { libc::usleep(1000) };
        }
    }
}

fn cptr(s: &'static [u8]) -> *const libc::c_char {
    s.as_ptr().cast()
}

/// Exit the way the builder did.
///
/// # Safety
/// Only in the subreaper: it ends the calling process, by the builder's signal if the
/// builder died of one.
unsafe fn mirror(status: c_int) -> ! {
    // SAFETY: an all-zero `sigset_t` is valid storage that `sigemptyset` initialises, and
    // it lives on this stack; the process signalled and exited is the subreaper (the
    // caller's contract).
    unsafe {
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
}

/// The subreaper: start the builder, wait for it or for the caller's `SIGTERM`, clean up
/// every descendant, and exit like the builder.
pub(crate) extern "C" fn reaper_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's ReaperSpec (our own copy); only raw syscalls follow.
    unsafe {
        let spec = &*(arg as *const ReaperSpec);
        // Our own process group, like every builder's: terminal signals to the caller's
        // group do not reach us, and the caller decides when we stop.
        if libc::setpgid(0, 0) != 0 || libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
            child::fail_to(spec.err_fd, Stage::Subreaper, 0);
        }
        // If the caller dies, we get the time limit's SIGTERM and sweep every descendant
        // (a SIGKILL would orphan the builder instead; see lifetime.rs).
        if !lifetime::die_with_parent(libc::SIGTERM) {
            child::fail_to(spec.err_fd, Stage::DeathSignal, 0);
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
        // A caller that died before the death signal was armed sent none.
        if lifetime::caller_gone(spec.caller_pidfd) {
            libc::_exit(127);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_is_read_after_the_last_paren() {
        assert_eq!(stat_ppid(b"1234 (sh) S 77 1234 1234 0"), 77);
        assert_eq!(stat_ppid(b"1234 (a) b) (c) R 9 1 1"), 9);
        assert_eq!(stat_ppid(b"garbage"), 0);
        assert_eq!(stat_ppid(b"1 (x)"), 0);
        assert_eq!(parse_pid(b"4321\0junk"), 4321);
    }

    #[test]
    fn scanning_proc_finds_our_children() {
        // Only look (other tests of this process have children too).
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut seen = Vec::new();
        let ok = scan_children(std::process::id() as i32, |p| seen.push(p));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(ok);
        assert!(seen.contains(&(child.id() as i32)), "{seen:?}");
        assert!(!seen.contains(&(std::process::id() as i32)));
    }
}
