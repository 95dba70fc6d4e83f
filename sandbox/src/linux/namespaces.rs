//! Creating the namespace sandbox: one `clone()` with new user, mount, pid, net, ipc and
//! uts namespaces, whose child (pid 1 of the new pid namespace) sets itself up from a
//! prepared [`ChildSpec`] and executes the builder.
//!
//! A single `clone()` with every namespace flag is the cheapest shape: the child is pid 1
//! of its pid namespace at once (no second fork, as `unshare(CLONE_NEWPID)` would need),
//! it writes its own uid/gid maps (mapping only its own ids needs no help from the
//! parent, so there is no parent/child handshake), and killing it kills the whole
//! sandbox. The parent only waits on a close-on-exec pipe until the child has executed
//! the builder or reported which step failed.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::raw::{c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::unistd::Pid;

use super::child::{self, ChildSpec, Op, Stage, RECORD_LEN};
use super::plan::{Access, Plan, Step};
use crate::{Mode, SandboxError};

/// uid and gid of the builder inside the sandbox.
pub(crate) const SANDBOX_UID: u32 = 1000;
pub(crate) const SANDBOX_GID: u32 = 100;
/// The hostname (and NIS domain) inside the sandbox.
pub(crate) const HOSTNAME: &[u8] = b"cmod";

/// Stack for the cloned child. It runs a few small frames and raw syscalls only.
const CHILD_STACK: usize = 256 * 1024;

/// What to tell users who cannot create namespaces.
pub(crate) const NAMESPACE_REMEDY: &str = "allow unprivileged user namespaces \
(`sysctl -w kernel.unprivileged_userns_clone=1` on Debian, `user.max_user_namespaces` > 0, \
and on Ubuntu `kernel.apparmor_restrict_unprivileged_userns=0`), or run in a container \
that permits them; otherwise pass `--sandbox=landlock` (Landlock only, no namespaces) or \
`--sandbox=off` explicitly";

pub(crate) fn cstr(p: impl AsRef<[u8]>, what: &str) -> Result<CString, SandboxError> {
    CString::new(p.as_ref())
        .map_err(|_| SandboxError::InvalidAction(format!("{what} contains a NUL byte")))
}

pub(crate) fn cpath(p: &Path) -> Result<CString, SandboxError> {
    cstr(p.as_os_str().as_bytes(), &format!("path `{}`", p.display()))
}

/// Turn plan steps into child operations (bind sources relative to the old root, which
/// the child has at `/oldroot` while it lays out the new one) and their descriptions.
pub(crate) fn ops(plan: &Plan) -> Result<(Vec<Op>, Vec<String>), SandboxError> {
    let mut ops = Vec::with_capacity(plan.steps.len());
    let mut what = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        match step {
            Step::Mkdir(p) => {
                ops.push(Op::Mkdir(cpath(p)?));
                what.push(format!("creating directory `{}`", p.display()));
            }
            Step::Touch(p) => {
                ops.push(Op::Touch(cpath(p)?));
                what.push(format!("creating mount point `{}`", p.display()));
            }
            Step::Symlink { at, target } => {
                ops.push(Op::Symlink {
                    target: cpath(target)?,
                    at: cpath(at)?,
                });
                what.push(format!(
                    "creating symlink `{}` -> `{}`",
                    at.display(),
                    target.display()
                ));
            }
            Step::Tmpfs(p) => {
                ops.push(Op::Tmpfs(cpath(p)?));
                what.push(format!("mounting a tmpfs for links at `{}`", p.display()));
            }
            Step::PinTime(p) => {
                ops.push(Op::PinTime(cpath(p)?));
                what.push(format!("setting the time of `{}`", p.display()));
            }
            Step::Seal(p) => {
                ops.push(Op::Seal(cpath(p)?));
                what.push(format!("making `{}` read-only", p.display()));
            }
            Step::Bind { src, dst, access } => {
                let mut old = b"/oldroot".to_vec();
                old.extend_from_slice(src.as_os_str().as_bytes());
                let attr = match access {
                    Access::ReadOnly => {
                        libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV
                    }
                    Access::ReadWrite => libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
                    Access::Device => {
                        libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOEXEC
                    }
                };
                ops.push(Op::Bind {
                    src: cstr(old, &format!("path `{}`", src.display()))?,
                    dst: cpath(dst)?,
                    attr,
                });
                what.push(format!(
                    "bind-mounting `{}` at `{}`",
                    src.display(),
                    dst.display()
                ));
            }
        }
    }
    Ok((ops, what))
}

/// The uid and gid map lines: the caller's effective ids become 1000/100 inside.
pub(crate) fn id_maps() -> (Vec<u8>, Vec<u8>) {
    // SAFETY: plain getters.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    (
        format!("{SANDBOX_UID} {uid} 1\n").into_bytes(),
        format!("{SANDBOX_GID} {gid} 1\n").into_bytes(),
    )
}

/// A failure reported by the child (or by `clone` itself).
#[derive(Debug)]
pub(crate) struct SpawnFailure {
    pub stage: Option<Stage>,
    pub what: String,
    pub errno: i32,
}

impl SpawnFailure {
    /// Whether this looks like "namespaces are not permitted here" rather than a problem
    /// with this particular action.
    fn is_capability(&self) -> bool {
        let denied = matches!(
            self.errno,
            libc::EPERM | libc::EACCES | libc::ENOSPC | libc::EUSERS | libc::EINVAL | libc::ENOSYS
        );
        denied
            && matches!(
                self.stage,
                None | Some(
                    Stage::SetGroups
                        | Stage::UidMap
                        | Stage::GidMap
                        | Stage::Hostname
                        | Stage::PrivatePropagation
                        | Stage::RootTmpfs
                        | Stage::PivotRoot
                        | Stage::MountProc
                        | Stage::Loopback
                )
            )
    }

    pub(crate) fn into_error(self, mode: Mode) -> SandboxError {
        let source = std::io::Error::from_raw_os_error(self.errno);
        if mode == Mode::Full && self.is_capability() {
            SandboxError::Unsupported {
                mode,
                reason: format!("{} failed: {source}", self.what),
                remedy: NAMESPACE_REMEDY.into(),
            }
        } else {
            SandboxError::Setup {
                step: self.what,
                source,
            }
        }
    }
}

/// The close-on-exec pipe a cloned child reports setup failures on.
pub(crate) struct ErrPipe {
    read: File,
    write: OwnedFd,
}

impl ErrPipe {
    pub(crate) fn new() -> Result<ErrPipe, SpawnFailure> {
        let mut fds = [0 as c_int; 2];
        // SAFETY: pipe2 writes two fds into the array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(SpawnFailure {
                stage: None,
                what: "creating the setup pipe".into(),
                errno: last_errno(),
            });
        }
        // SAFETY: both fds were just created and are owned here.
        let (read, write) = unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(ErrPipe { read, write })
    }

    /// The write end, for the child spec.
    pub(crate) fn write_fd(&self) -> c_int {
        self.write.as_raw_fd()
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Clone a child that runs `entry(arg)` with `flags` on its own stack, then wait until it
/// has executed the builder (the pipe closes) or reported which step failed. `what`
/// describes planned steps, `clone_what` the clone itself, for error messages.
///
/// With `CLONE_VM | CLONE_VFORK` in `flags` (as `posix_spawn` does) the child borrows our
/// memory until it executes or exits, and this thread is suspended meanwhile: no page
/// tables are copied, which is what keeps the cost flat when the caller is a large
/// process (a `fork` of a process with 2 GB resident costs about 60 ms). All signals are
/// blocked in this thread around the clone, so no handler of ours can run in the child
/// before it has reset them (see `child::default_signal_handlers`).
///
/// # Safety
/// `arg` must point at the data `entry` expects, valid for the duration of the call, and
/// `entry` must only make async-signal-safe calls (see child.rs). Without `CLONE_VFORK`,
/// `flags` must not contain `CLONE_VM`.
pub(crate) unsafe fn clone_child(
    entry: extern "C" fn(*mut c_void) -> c_int,
    flags: c_int,
    arg: *mut c_void,
    pipe: ErrPipe,
    what: &[String],
    clone_what: &str,
) -> Result<Pid, SpawnFailure> {
    let ErrPipe { read, write } = pipe;
    let mut stack = vec![0u8; CHILD_STACK];
    // The stack grows down on every architecture Linux namespaces matter on here.
    let top = (stack.as_mut_ptr() as usize + CHILD_STACK) & !0xf;
    // SAFETY: an all-zero `sigset_t` is valid storage, which `sigfillset` and
    // `pthread_sigmask` fill in; both sets live on this stack for the calls.
    let old: libc::sigset_t = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    };
    // Without CLONE_VM the child gets its own copy of `arg`'s target and of `stack`; with
    // CLONE_VM|CLONE_VFORK it uses ours, and we resume only once it has executed or exited.
    // SAFETY: `top` is the 16-byte-aligned end of `stack`, which outlives the child's use
    // of it (with CLONE_VFORK we resume only after its exec or exit; without CLONE_VM it
    // has its own copy); `arg` and `entry` are as the caller guarantees.
    let pid = unsafe { libc::clone(entry, top as *mut c_void, flags, arg) };
    let clone_errno = last_errno();
    // SAFETY: restores the mask saved above, from a live `sigset_t`.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    drop(stack);
    drop(write);
    if pid < 0 {
        return Err(SpawnFailure {
            stage: None,
            what: clone_what.into(),
            errno: clone_errno,
        });
    }
    let pid = Pid::from_raw(pid);
    match read_record(read) {
        None => Ok(pid),
        Some((stage, index, errno)) => {
            // The child has exited (or is about to); reap it.
            let _ = nix::sys::wait::waitpid(pid, None);
            let what = match stage {
                Some(Stage::Plan) => what
                    .get(index as usize)
                    .cloned()
                    .unwrap_or_else(|| Stage::Plan.describe().into()),
                Some(s) => s.describe().into(),
                None => "setting up the sandbox".into(),
            };
            Err(SpawnFailure { stage, what, errno })
        }
    }
}

/// Clone the namespace sandbox's child and wait until it has executed the builder (or,
/// for the probe, finished its setup). `what` describes `spec.ops` for error messages.
pub(crate) fn spawn(spec: &mut ChildSpec, what: &[String]) -> Result<Pid, SpawnFailure> {
    let pipe = ErrPipe::new()?;
    spec.err_fd = pipe.write_fd();
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_VM
        | libc::CLONE_VFORK
        | libc::SIGCHLD;
    // SAFETY: `spec` outlives the call (CLONE_VFORK: we wait for the exec); `child_main`
    // only makes async-signal-safe syscalls and writes nothing but its own stack (see
    // child.rs).
    unsafe {
        clone_child(
            child::child_main,
            flags,
            spec as *mut ChildSpec as *mut c_void,
            pipe,
            what,
            "creating user, mount, pid, net, ipc and uts namespaces (clone)",
        )
    }
}

/// Read the child's failure record; `None` means the pipe closed without one (exec
/// succeeded, or the probe child finished its setup).
fn read_record(mut pipe: File) -> Option<(Option<Stage>, u32, i32)> {
    let mut buf = [0u8; RECORD_LEN];
    let mut got = 0;
    while got < RECORD_LEN {
        match pipe.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Some((None, 0, e.raw_os_error().unwrap_or(0))),
        }
    }
    if got == 0 {
        return None;
    }
    if got < RECORD_LEN {
        return Some((None, 0, libc::EIO));
    }
    let word = |i: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&buf[i..i + 4]);
        w
    };
    Some((
        Stage::from_u32(u32::from_ne_bytes(word(0))),
        u32::from_ne_bytes(word(4)),
        i32::from_ne_bytes(word(8)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_maps_map_the_caller_to_fixed_ids() {
        let (u, g) = id_maps();
        let u = String::from_utf8(u).unwrap();
        let g = String::from_utf8(g).unwrap();
        assert!(u.starts_with("1000 ") && u.ends_with(" 1\n"), "{u}");
        assert!(g.starts_with("100 ") && g.ends_with(" 1\n"), "{g}");
    }

    #[test]
    fn capability_failures_become_unsupported_with_remedy() {
        let f = SpawnFailure {
            stage: None,
            what: "clone".into(),
            errno: libc::EPERM,
        };
        let err = f.into_error(Mode::Full);
        assert!(matches!(err, SandboxError::Unsupported { .. }), "{err}");
        assert!(err.remedy().unwrap().contains("--sandbox=landlock"));
        let f = SpawnFailure {
            stage: Some(Stage::Exec),
            what: "executing".into(),
            errno: libc::ENOENT,
        };
        assert!(matches!(
            f.into_error(Mode::Full),
            SandboxError::Setup { .. }
        ));
    }

    #[test]
    fn bind_sources_are_taken_from_the_old_root() {
        let plan = Plan {
            steps: vec![Step::Bind {
                src: "/usr".into(),
                dst: "/usr".into(),
                access: Access::ReadOnly,
            }],
            ..Plan::default()
        };
        let (ops, what) = ops(&plan).unwrap();
        match &ops[0] {
            Op::Bind { src, dst, attr } => {
                assert_eq!(src.to_bytes(), b"/oldroot/usr");
                assert_eq!(dst.to_bytes(), b"/usr");
                assert_ne!(attr & libc::MOUNT_ATTR_RDONLY, 0);
            }
            _ => panic!("not a bind"),
        }
        assert!(what[0].contains("/usr"));
    }
}
