//! The child side of the namespace sandbox: everything that runs between `clone()` and
//! `execve()`.
//!
//! # Why this is sound in a multi-threaded caller
//!
//! The realiser calls [`crate::run`] from many worker threads at once. The child is
//! created with `CLONE_VM | CLONE_VFORK` (like `posix_spawn`): it runs on its own stack
//! in the caller's memory, and the calling thread is suspended until the child executes
//! the builder or exits. Only the calling thread is duplicated, and any lock another
//! thread holds (the allocator's, stdio's, the dynamic loader's) may be held at any time,
//! so the child may only make async-signal-safe calls, and it must not write the caller's
//! memory. We chose to *prepare everything in the parent* rather than re-exec a
//! single-threaded helper binary: a helper would cost an extra `execve` plus dynamic
//! loading (about 1 ms, a third of the budget) and a second binary to ship and locate.
//! Instead, [`ChildSpec`] holds every path as a `CString`, the argument and environment
//! vectors as ready `NULL`-terminated pointer arrays, the uid/gid map contents, the
//! Landlock ruleset fd and the log fd. [`child_main`] only reads those and issues raw
//! `libc` syscalls: no allocation, no formatting, no panics (no indexing that can fail, no
//! `unwrap`), no locks, no writes outside its stack (errno goes to the suspended thread's
//! slot, which that thread does not read). The parent blocks all signals around the
//! clone and the child resets every handled signal to its default before unblocking, so
//! no handler of the caller ever runs in the child. A failure is reported to the parent
//! as a fixed-size record on a close-on-exec pipe; a successful `execve` closes that pipe,
//! which the parent sees as end-of-file.
//!
//! Sharing the memory instead of copying it (`fork`) keeps the cost flat whatever the
//! caller's size: copying the page tables of a 1 GiB process costs about 35 ms.

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};

use super::{lifetime, net};

/// A fixed step of the child, reported to the parent when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Stage {
    SetGroups = 1,
    UidMap,
    GidMap,
    Hostname,
    PrivatePropagation,
    RootTmpfs,
    EnterNewRoot,
    PivotRoot,
    /// A planned step; the record's index says which.
    Plan,
    MountProc,
    Loopback,
    DetachOldRoot,
    RootReadOnly,
    WorkDir,
    Stdio,
    Signals,
    Limits,
    LandlockProc,
    Landlock,
    CloseFds,
    Exec,
    /// Landlock mode only: becoming the subreaper of the builder.
    Subreaper,
    /// Landlock mode only: starting the builder under the subreaper.
    StartBuilder,
    /// Arming the parent-death signal (see lifetime.rs).
    DeathSignal,
}

impl Stage {
    const ALL: [Stage; 24] = [
        Stage::SetGroups,
        Stage::UidMap,
        Stage::GidMap,
        Stage::Hostname,
        Stage::PrivatePropagation,
        Stage::RootTmpfs,
        Stage::EnterNewRoot,
        Stage::PivotRoot,
        Stage::Plan,
        Stage::MountProc,
        Stage::Loopback,
        Stage::DetachOldRoot,
        Stage::RootReadOnly,
        Stage::WorkDir,
        Stage::Stdio,
        Stage::Signals,
        Stage::Limits,
        Stage::LandlockProc,
        Stage::Landlock,
        Stage::CloseFds,
        Stage::Exec,
        Stage::Subreaper,
        Stage::StartBuilder,
        Stage::DeathSignal,
    ];

    pub(crate) fn from_u32(v: u32) -> Option<Stage> {
        Stage::ALL.iter().copied().find(|s| *s as u32 == v)
    }

    /// What the step does, for error messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Stage::SetGroups => "writing /proc/self/setgroups",
            Stage::UidMap => "writing /proc/self/uid_map",
            Stage::GidMap => "writing /proc/self/gid_map",
            Stage::Hostname => "setting the hostname",
            Stage::PrivatePropagation => "making mount propagation private",
            Stage::RootTmpfs => "mounting the tmpfs for the new root",
            Stage::EnterNewRoot => "entering the new root",
            Stage::PivotRoot => "pivot_root",
            Stage::Plan => "laying out the new root",
            Stage::MountProc => "mounting a fresh /proc",
            Stage::Loopback => "bringing up the loopback interface",
            Stage::DetachOldRoot => "detaching the old root",
            Stage::RootReadOnly => "making the new root read-only",
            Stage::WorkDir => "changing to the build directory",
            Stage::Stdio => "redirecting stdin/stdout/stderr",
            Stage::Signals => "resetting the signal mask",
            Stage::Limits => "applying umask, process group, RLIMIT_FSIZE and no_new_privs",
            Stage::LandlockProc => "adding the Landlock rule for /proc",
            Stage::Landlock => "applying the Landlock ruleset",
            Stage::CloseFds => "closing inherited file descriptors",
            Stage::Exec => "executing the builder",
            Stage::Subreaper => "becoming the builder's subreaper",
            Stage::StartBuilder => "starting the builder under its subreaper",
            Stage::DeathSignal => "arming the parent-death signal (PR_SET_PDEATHSIG)",
        }
    }
}

/// One prepared file-system operation (see `plan::Step`), with C strings ready.
pub(crate) enum Op {
    Mkdir(CString),
    Touch(CString),
    Symlink {
        target: CString,
        at: CString,
    },
    Bind {
        src: CString,
        dst: CString,
        attr: u64,
    },
    Tmpfs(CString),
    PinTime(CString),
    Seal(CString),
}

/// A `NULL`-terminated array of C strings that owns its strings.
pub(crate) struct CVec {
    _owned: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CVec {
    pub(crate) fn new(items: Vec<CString>) -> CVec {
        let mut ptrs: Vec<*const c_char> = items.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        CVec {
            _owned: items,
            ptrs,
        }
    }

    pub(crate) fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr()
    }
}

/// Everything the child needs, prepared by the parent.
pub(crate) struct ChildSpec {
    pub uid_map: Vec<u8>,
    pub gid_map: Vec<u8>,
    pub hostname: &'static [u8],
    /// A host directory the root tmpfs is mounted on before `pivot_root` moves it.
    pub tmpfs_at: CString,
    pub tmpfs_options: CString,
    pub ops: Vec<Op>,
    pub cwd: CString,
    pub program: CString,
    pub argv: CVec,
    pub envp: CVec,
    /// `None` for the probe, which exits 0 instead of executing anything.
    pub stdio: Option<(c_int, c_int)>,
    pub max_file_bytes: u64,
    /// Landlock ruleset to enforce (-1: none) and the access to grant on the fresh /proc.
    pub ruleset_fd: c_int,
    pub proc_access: u64,
    /// Write end of the close-on-exec error pipe.
    pub err_fd: c_int,
    /// A pidfd of the caller process, or -1 (see lifetime.rs).
    pub caller_pidfd: c_int,
}

/// The record the child writes on failure: stage, plan index, errno.
pub(crate) const RECORD_LEN: usize = 12;

/// `struct landlock_path_beneath_attr` (packed in the UAPI).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}
const LANDLOCK_RULE_PATH_BENEATH: c_int = 1;

static PROC: &[u8] = b"proc\0";
static PROC_DIR: &[u8] = b"/proc\0";
static TMPFS: &[u8] = b"tmpfs\0";
/// A link directory's tmpfs: symlinks only (short targets live in the inode), sealed
/// read-only once laid out; the size bounds the long targets that take a page each.
static LINK_TMPFS_OPTIONS: &[u8] = b"mode=0755,size=64m\0";
static ROOT: &[u8] = b"/\0";
static DOT: &[u8] = b".\0";
static OLD_ROOT: &[u8] = b"oldroot\0";
static OLD_ROOT_ABS: &[u8] = b"/oldroot\0";
static SETGROUPS: &[u8] = b"/proc/self/setgroups\0";
static UID_MAP: &[u8] = b"/proc/self/uid_map\0";
static GID_MAP: &[u8] = b"/proc/self/gid_map\0";
static DENY: &[u8] = b"deny";

fn cptr(s: &'static [u8]) -> *const c_char {
    s.as_ptr().cast()
}

/// Report `stage`/`index` with the current errno to the parent and exit.
///
/// # Safety
/// As for [`fail_to`].
unsafe fn fail(spec: &ChildSpec, stage: Stage, index: u32) -> ! {
    // SAFETY: the caller upholds fail_to's contract.
    unsafe { fail_to(spec.err_fd, stage, index) }
}

/// Report `stage`/`index` with the current errno on `err_fd` and exit 127.
///
/// # Safety
/// Only for a child cloned by this crate, before it executes its program: it ends the
/// calling process with `_exit` (no unwinding, no destructors), which anywhere else would
/// end cmod itself.
pub(crate) unsafe fn fail_to(err_fd: c_int, stage: Stage, index: u32) -> ! {
    // SAFETY: `__errno_location` returns this thread's errno slot, valid to read.
    let errno = unsafe { *libc::__errno_location() };
    let mut rec = [0u8; RECORD_LEN];
    let (a, rest) = rec.split_at_mut(4);
    let (b, c) = rest.split_at_mut(4);
    a.copy_from_slice(&(stage as u32).to_ne_bytes());
    b.copy_from_slice(&index.to_ne_bytes());
    c.copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: `rec` is a live stack buffer of RECORD_LEN bytes; the caller guarantees that
    // this process is a sandbox child, so `_exit` ends only the child.
    unsafe {
        libc::write(err_fd, rec.as_ptr().cast(), RECORD_LEN);
        libc::_exit(127)
    }
}

/// Write all of `data` to the file at `path` (a /proc file).
///
/// # Safety
/// `path` must point at a NUL-terminated string that stays valid during the call.
unsafe fn write_file(path: *const c_char, data: &[u8]) -> bool {
    // SAFETY: `path` is NUL-terminated (caller's contract); `data` is a live slice and `fd`
    // is the descriptor just opened here.
    unsafe {
        let fd = libc::open(path, libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let ok = n == data.len() as isize;
        libc::close(fd);
        ok
    }
}

/// Set the mount attributes `attr_set` on the mount at `path` (and, if `recursive`, on
/// every mount below it).
///
/// # Safety
/// `path` must point at a NUL-terminated string that stays valid during the call, and
/// the calling process must be a sandbox child in its own mount namespace.
unsafe fn mount_setattr(path: *const c_char, attr_set: u64, recursive: bool) -> bool {
    let attr = libc::mount_attr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: `path` is NUL-terminated (caller's contract) and `attr` is a live
    // `mount_attr` whose size is passed along with it.
    unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path,
            flags as libc::c_uint,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        ) == 0
    }
}

/// Reset every signal that has a handler to the default action. A child that shares the
/// caller's memory (`CLONE_VM`) must do this before unblocking signals: a handler of the
/// caller running in the child would act on the caller's data. (The child has its own
/// copy of the handler table: no `CLONE_SIGHAND`.)
///
/// # Safety
/// Only for a child cloned by this crate, before it executes its program, with all
/// signals blocked: in cmod itself it would remove the process's own handlers.
pub(crate) unsafe fn default_signal_handlers() {
    // Linux has 64 signals; the wrapper refuses SIGKILL, SIGSTOP and glibc's internal ones.
    for sig in 1..=64 {
        // SAFETY: an all-zero `sigaction` is a valid value (no handler, empty mask); both
        // structs live on this stack for the calls that read and write them.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction != libc::SIG_DFL
                && old.sa_sigaction != libc::SIG_IGN
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
}

/// Signal dispositions set to "ignore" survive execve (Rust ignores SIGPIPE), and so does
/// the signal mask: give the builder the defaults.
///
/// # Safety
/// Only for a child cloned by this crate, after [`default_signal_handlers`] and before
/// it executes its program: it unblocks every signal of the calling thread.
pub(crate) unsafe fn reset_signals() -> bool {
    // SAFETY: an all-zero `sigset_t` is valid storage that `sigemptyset` then initialises;
    // it lives on this stack for the calls. No handler of the caller is left to run once
    // signals are unblocked (the caller's contract).
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty) == 0
            && libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) == 0
            && libc::signal(libc::SIGPIPE, libc::SIG_DFL) != libc::SIG_ERR
    }
}

/// Mark every fd from 3 up close-on-exec, so nothing but stdio crosses into the builder.
///
/// # Safety
/// Only for a child cloned by this crate, before it executes its program: in cmod itself
/// it would close every descriptor above stdio at the next spawn of anything.
pub(crate) unsafe fn cloexec_from_3() -> bool {
    // SAFETY: `close_range` takes plain integers; it only sets flags on descriptors.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) == 0
    }
}

/// Make `to` refer to `from`, clearing close-on-exec when they are already the same fd.
///
/// # Safety
/// Only for a child cloned by this crate, before it executes its program: `dup2` closes
/// whatever `to` referred to, which in cmod itself may be a descriptor another part of
/// the process owns.
pub(crate) unsafe fn redirect(from: c_int, to: c_int) -> bool {
    // SAFETY: plain integer arguments; replacing `to` is what the caller asked for.
    unsafe {
        if from == to {
            return libc::fcntl(to, libc::F_SETFD, 0) == 0;
        }
        libc::dup2(from, to) == to
    }
}

/// Carry out one planned file-system operation inside the new root.
///
/// # Safety
/// Only for the namespace sandbox's child, in its own mount namespace, after
/// `pivot_root` (the bind sources are under `/oldroot`).
unsafe fn run_op(op: &Op) -> bool {
    // SAFETY: every pointer is from a `CString` in `op` or a static NUL-terminated byte
    // string, valid for the call; `times` lives on this stack. The mounts only change the
    // child's own mount namespace (the caller's contract).
    unsafe {
        match op {
            Op::Mkdir(p) => {
                libc::mkdir(p.as_ptr(), 0o755) == 0 || *libc::__errno_location() == libc::EEXIST
            }
            Op::Touch(p) => {
                let fd = libc::open(
                    p.as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
                    0o644 as libc::c_uint,
                );
                fd >= 0 && libc::close(fd) == 0
            }
            Op::Symlink { target, at } => libc::symlink(target.as_ptr(), at.as_ptr()) == 0,
            Op::Tmpfs(at) => {
                libc::mount(
                    cptr(TMPFS),
                    at.as_ptr(),
                    cptr(TMPFS),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    cptr(LINK_TMPFS_OPTIONS).cast(),
                ) == 0
            }
            Op::PinTime(p) => {
                let t = libc::timespec {
                    tv_sec: crate::materialise::LINK_MTIME,
                    tv_nsec: 0,
                };
                let times = [t, t];
                libc::utimensat(
                    libc::AT_FDCWD,
                    p.as_ptr(),
                    times.as_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                ) == 0
            }
            Op::Seal(p) => mount_setattr(
                p.as_ptr(),
                libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
                false,
            ),
            Op::Bind { src, dst, attr } => {
                libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ) == 0
                    && mount_setattr(dst.as_ptr(), *attr, true)
            }
        }
    }
}

/// The entry point passed to `clone()`. Never returns: it executes the builder or exits.
///
/// # Safety
/// Only [`super::namespaces::spawn`] may use this, as the entry of a child it clones with
/// `CLONE_VM | CLONE_VFORK`, with `arg` pointing at the [`ChildSpec`] it prepared. (The
/// function is not `unsafe` only because `libc::clone` takes a safe function pointer.)
///
/// With `CLONE_VM` the child has no copy of anything: it runs on its own stack but in the
/// caller's memory, and `spec` is the caller's own `ChildSpec`. `CLONE_VFORK` suspends the
/// calling thread until the child executes the builder or exits, so `spec` stays alive and
/// unchanged for as long as the child reads it. The caller's *other* threads keep running
/// in that same memory and may hold any lock (the allocator's, stdio's), so the child
/// must not allocate, take a lock, panic or unwind, and writes nothing of the caller's
/// but its own stack and errno (the suspended thread's slot). Hence raw syscalls only.
pub(crate) extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the suspended caller's `ChildSpec`, alive and unchanged until we
    // execute or exit (see above); we are the freshly cloned child `setup_and_exec`
    // requires.
    unsafe {
        let spec = &*(arg as *const ChildSpec);
        setup_and_exec(spec)
    }
}

/// Set up the sandbox from `spec` and execute the builder; on any failure report the
/// step to the parent and exit.
///
/// # Safety
/// Only in the child [`child_main`] runs in, under the conditions stated there: this
/// rewrites the calling process's identity, mounts and signal handling, and exits it.
unsafe fn setup_and_exec(spec: &ChildSpec) -> ! {
    // SAFETY: we are the cloned child (the caller's contract), so each step below changes
    // only this process and its new namespaces; every pointer passed on is from a
    // `CString`/`CVec` in `spec`, which outlives this call.
    unsafe {
        // The parent blocked every signal around the clone; no handler of the caller may
        // run here (we share its memory until exec).
        default_signal_handlers();
        // The whole sandbox dies with the thread that cloned it: we are pid 1 of its pid
        // namespace, and the kernel kills every other process in it when we die.
        if !lifetime::die_with_parent(libc::SIGKILL) {
            fail(spec, Stage::DeathSignal, 0);
        }
        set_identity(spec);
        lay_out_root(spec);
        seal_root(spec);
        prepare_process(spec);
        if spec.stdio.is_none() {
            // The probe: everything could be set up.
            libc::_exit(0);
        }
        // A caller that died before the death signal was armed sent none: do not start a
        // builder nobody waits for.
        if lifetime::caller_gone(spec.caller_pidfd) {
            libc::_exit(127);
        }
        libc::execve(
            spec.program.as_ptr(),
            spec.argv.as_ptr(),
            spec.envp.as_ptr(),
        );
        fail(spec, Stage::Exec, 0)
    }
}

/// Steps 1-2: the caller becomes uid 1000 / gid 100 inside the new user namespace, and
/// the hostname `cmod`.
///
/// # Safety
/// Only in the child [`child_main`] runs in, as its first steps in the new user namespace.
unsafe fn set_identity(spec: &ChildSpec) {
    // SAFETY: we are the sandbox child in fresh user and uts namespaces (the caller's
    // contract), so the maps and hostname written are its own; every path is a static
    // NUL-terminated string and the data slices live in `spec`.
    unsafe {
        if !write_file(cptr(SETGROUPS), DENY) {
            fail(spec, Stage::SetGroups, 0);
        }
        if !write_file(cptr(UID_MAP), &spec.uid_map) {
            fail(spec, Stage::UidMap, 0);
        }
        if !write_file(cptr(GID_MAP), &spec.gid_map) {
            fail(spec, Stage::GidMap, 0);
        }
        if libc::sethostname(spec.hostname.as_ptr().cast(), spec.hostname.len()) != 0 {
            fail(spec, Stage::Hostname, 0);
        }
    }
}

/// Steps 3-5a: private mounts, the root tmpfs, `pivot_root`, and the planned layout.
///
/// # Safety
/// Only in the child [`child_main`] runs in, after [`set_identity`]: it remounts and pivots
/// the root of the calling process's mount namespace.
unsafe fn lay_out_root(spec: &ChildSpec) {
    // SAFETY: we are the sandbox child in its own mount namespace (the caller's contract),
    // so these mounts and the pivot change only the sandbox; every path is a static
    // NUL-terminated string or a `CString` in `spec`.
    unsafe {
        // A fresh root: mount a tmpfs somewhere, pivot into it, keep the old root at /oldroot
        // while the bind mounts are made from it.
        if libc::mount(
            std::ptr::null(),
            cptr(ROOT),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            fail(spec, Stage::PrivatePropagation, 0);
        }
        if libc::mount(
            cptr(TMPFS),
            spec.tmpfs_at.as_ptr(),
            cptr(TMPFS),
            libc::MS_NOSUID | libc::MS_NODEV,
            spec.tmpfs_options.as_ptr().cast(),
        ) != 0
        {
            fail(spec, Stage::RootTmpfs, 0);
        }
        if libc::chdir(spec.tmpfs_at.as_ptr()) != 0 || libc::mkdir(cptr(OLD_ROOT), 0o700) != 0 {
            fail(spec, Stage::EnterNewRoot, 0);
        }
        if libc::syscall(libc::SYS_pivot_root, cptr(DOT), cptr(OLD_ROOT)) != 0
            || libc::chdir(cptr(ROOT)) != 0
        {
            fail(spec, Stage::PivotRoot, 0);
        }
        for (i, op) in spec.ops.iter().enumerate() {
            if !run_op(op) {
                fail(spec, Stage::Plan, i as u32);
            }
        }
    }
}

/// Steps 6-7: a fresh `/proc`, loopback, the old root gone, the root read-only.
///
/// # Safety
/// Only in the child [`child_main`] runs in, after [`lay_out_root`].
unsafe fn seal_root(spec: &ChildSpec) {
    // SAFETY: we are the sandbox child in its own mount, pid and net namespaces (the
    // caller's contract), so the mounts and the loopback change only the sandbox; every
    // path is a static NUL-terminated string.
    unsafe {
        // The pid namespace is ours (we are its pid 1), so this /proc shows only the sandbox.
        if libc::mount(
            cptr(PROC),
            cptr(PROC_DIR),
            cptr(PROC),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        ) != 0
        {
            fail(spec, Stage::MountProc, 0);
        }
        if !net::loopback_up() {
            fail(spec, Stage::Loopback, 0);
        }
        if libc::umount2(cptr(OLD_ROOT_ABS), libc::MNT_DETACH) != 0
            || libc::rmdir(cptr(OLD_ROOT_ABS)) != 0
        {
            fail(spec, Stage::DetachOldRoot, 0);
        }
        if !mount_setattr(
            cptr(ROOT),
            libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
            false,
        ) {
            fail(spec, Stage::RootReadOnly, 0);
        }
    }
}

/// Step 8 up to the exec: working directory, stdio, signals, limits, Landlock, and no
/// inherited file descriptor but stdio.
///
/// # Safety
/// Only in the child [`child_main`] runs in, after [`seal_root`] and with no handler of the
/// caller left: it replaces stdio, unblocks signals and restricts the calling process.
unsafe fn prepare_process(spec: &ChildSpec) {
    // SAFETY: we are the sandbox child with default signal handlers (the caller's
    // contract), so redirecting stdio, unblocking signals and restricting this process
    // affect only the sandbox; every path is a `CString` in `spec`.
    unsafe {
        if libc::chdir(spec.cwd.as_ptr()) != 0 {
            fail(spec, Stage::WorkDir, 0);
        }
        if let Some((stdin_fd, log_fd)) = spec.stdio {
            if !redirect(stdin_fd, 0) || !redirect(log_fd, 1) || !redirect(log_fd, 2) {
                fail(spec, Stage::Stdio, 0);
            }
        }
        if !reset_signals() {
            fail(spec, Stage::Signals, 0);
        }
        if crate::supervise::child_common(spec.max_file_bytes).is_err() {
            fail(spec, Stage::Limits, 0);
        }
        if spec.ruleset_fd >= 0 {
            restrict_self(spec);
        }
        // Nothing but stdio crosses into the builder, whatever other threads of the caller
        // opened without O_CLOEXEC. (The error pipe is already close-on-exec.)
        if !cloexec_from_3() {
            fail(spec, Stage::CloseFds, 0);
        }
    }
}

/// Enforce the Landlock ruleset, with the rule for the fresh `/proc` added first.
///
/// # Safety
/// Only in the child [`child_main`] runs in, with `spec.ruleset_fd` a Landlock ruleset: it
/// restricts the calling process for good.
unsafe fn restrict_self(spec: &ChildSpec) {
    // SAFETY: `/proc` is a static NUL-terminated string, `attr` lives on this stack for the
    // `landlock_add_rule` call, and `fd` is the descriptor opened here; restricting
    // ourselves is what the caller asked for.
    unsafe {
        if spec.proc_access != 0 {
            let fd = libc::open(
                cptr(PROC_DIR),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            let attr = PathBeneathAttr {
                allowed_access: spec.proc_access,
                parent_fd: fd,
            };
            if fd < 0
                || libc::syscall(
                    libc::SYS_landlock_add_rule,
                    spec.ruleset_fd,
                    LANDLOCK_RULE_PATH_BENEATH,
                    &attr as *const PathBeneathAttr,
                    0,
                ) != 0
            {
                fail(spec, Stage::LandlockProc, 0);
            }
            libc::close(fd);
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, spec.ruleset_fd, 0) != 0 {
            fail(spec, Stage::Landlock, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_round_trip() {
        for s in Stage::ALL {
            assert_eq!(Stage::from_u32(s as u32), Some(s));
            assert!(!s.describe().is_empty());
        }
        assert_eq!(Stage::from_u32(0), None);
        assert_eq!(Stage::from_u32(999), None);
    }

    #[test]
    fn cvec_is_null_terminated() {
        let v = CVec::new(vec![CString::new("a").unwrap(), CString::new("b").unwrap()]);
        assert_eq!(v.ptrs.len(), 3);
        assert!(v.ptrs[2].is_null());
    }
}
