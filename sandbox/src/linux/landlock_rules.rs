//! The Landlock layer: kernel ABI detection and the per-action ruleset.
//!
//! The ruleset is created and filled in the parent (allocation and `open(O_PATH)` are fine
//! there). Its rules are attached to inodes, not path strings, so rules made from host
//! paths keep working after the child has bind-mounted those same inodes elsewhere and
//! pivoted into a new root. The child only calls `landlock_restrict_self(fd)` (and, in the
//! namespace sandbox, adds one rule for its fresh `/proc`, which has no host inode).
//!
//! Rights granted:
//! * toolchain and input store paths: execute, read file, read directory;
//! * the build directory (and its `.tmp`): everything except creating device nodes;
//! * `/dev/{null,zero,full,random,urandom}`: read, write and device ioctls (writing to
//!   `/dev/null` is how tools discard output);
//! * the fresh `/proc` of the namespace sandbox: read file and directory.
//!
//! Landlock grants what any rule on the way from a file up to `/` grants, walking the
//! mount tree as the builder sees it. So in the namespace sandbox a mount nested in a
//! writable directory inherits its write rights: the sealed link directories under
//! `/build`, and toolchain paths that live under the host's `/tmp`, which are bound inside
//! the private `/tmp` (`.tmp`, which has its own rule because it is mounted at `/tmp`,
//! not reached through `/build`). Their read-only mounts keep them read-only (`EROFS`).
//!
//! Everything else in the file system is denied. With ABI >= 4 all TCP bind/connect is
//! denied (no port rules); with ABI >= 6 abstract unix sockets and signals are scoped to
//! the sandbox; newer ABIs known to the `landlock` crate (pathname unix sockets in v9, UDP
//! in v10) are handled too when the kernel has them.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, Scope, ABI,
};

use crate::SandboxError;

/// The highest Landlock ABI whose access rights the `landlock` crate we build against
/// knows. Kernel ABIs above it are used at this level.
const MAX_KNOWN_ABI: i32 = 10;

/// The Landlock ABI of the running kernel (0 if Landlock is unavailable). Cached.
pub(crate) fn kernel_abi() -> i32 {
    static ABI: OnceLock<i32> = OnceLock::new();
    *ABI.get_or_init(|| {
        const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
        // SAFETY: the documented way to query the ABI: NULL attr, size 0, VERSION flag.
        let v = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                LANDLOCK_CREATE_RULESET_VERSION,
            )
        };
        if v < 0 {
            0
        } else {
            v as i32
        }
    })
}

/// The ABI level our rules are written against here: the kernel's, capped at what we know.
pub(crate) fn effective_abi() -> Option<u8> {
    match kernel_abi().min(MAX_KNOWN_ABI) {
        n if n <= 0 => None,
        n => Some(n as u8),
    }
}

/// Why Landlock cannot be used, for error messages.
pub(crate) fn unavailable_reason() -> String {
    // SAFETY: same query as `kernel_abi`, only to read errno.
    let errno = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1 as libc::c_uint,
        );
        *libc::__errno_location()
    };
    match errno {
        libc::ENOSYS => "the kernel was built without Landlock (needs Linux >= 5.13)".into(),
        libc::EOPNOTSUPP => {
            "Landlock is built into the kernel but not enabled (it is missing from the `lsm=` boot parameter)".into()
        }
        e => format!(
            "Landlock is unavailable: {}",
            std::io::Error::from_raw_os_error(e)
        ),
    }
}

/// The paths of one action's ruleset, as host paths (symlinks are followed).
#[derive(Debug, Default)]
pub(crate) struct Rules {
    pub read_exec: Vec<PathBuf>,
    pub read_write: Vec<PathBuf>,
    pub devices: Vec<PathBuf>,
    /// Also grant read on a fresh `/proc` (added by the child).
    pub fresh_proc: bool,
}

/// A created ruleset, ready for `landlock_restrict_self` in the child.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub fd: OwnedFd,
    pub abi: u8,
    /// Access bits the child grants on its fresh `/proc` (0: none).
    pub proc_access: u64,
}

impl Prepared {
    pub(crate) fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

fn ll_err(step: &str, e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Setup {
        step: format!("Landlock: {step}"),
        source: std::io::Error::other(e.to_string()),
    }
}

fn add(
    ruleset: RulesetCreated,
    path: &Path,
    access: BitFlags<AccessFs>,
    abi: ABI,
) -> Result<RulesetCreated, SandboxError> {
    let fd = PathFd::new(path).map_err(|e| ll_err(&format!("opening `{}`", path.display()), e))?;
    let is_dir = std::fs::metadata(path)
        .map_err(|e| SandboxError::io("inspecting", path, e))?
        .is_dir();
    let access = if is_dir {
        access
    } else {
        access & AccessFs::from_file(abi)
    };
    ruleset
        .add_rule(PathBeneath::new(fd, access))
        .map_err(|e| ll_err(&format!("adding a rule for `{}`", path.display()), e))
}

/// Build the ruleset for `rules`, or `None` when the kernel has no Landlock.
pub(crate) fn prepare(rules: &Rules) -> Result<Option<Prepared>, SandboxError> {
    let Some(level) = effective_abi() else {
        return Ok(None);
    };
    let abi = ABI::from(i32::from(level));
    // Everything below is requested at exactly the detected level, so any mismatch is a
    // bug to report, not something to degrade silently.
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))
        .map_err(|e| ll_err("handling file-system access", e))?;
    if !AccessNet::from_all(abi).is_empty() {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(abi))
            .map_err(|e| ll_err("handling network access", e))?;
    }
    if !Scope::from_all(abi).is_empty() {
        ruleset = ruleset
            .scope(Scope::from_all(abi))
            .map_err(|e| ll_err("scoping signals and abstract unix sockets", e))?;
    }
    let mut created = ruleset
        .create()
        .map_err(|e| ll_err("creating the ruleset", e))?;
    let read = AccessFs::from_read(abi);
    let write = AccessFs::from_all(abi) & !(AccessFs::MakeChar | AccessFs::MakeBlock);
    let device =
        (AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev) & AccessFs::from_all(abi);
    for p in &rules.read_exec {
        created = add(created, p, read, abi)?;
    }
    for p in &rules.read_write {
        created = add(created, p, write, abi)?;
    }
    for p in &rules.devices {
        created = add(created, p, device, abi)?;
    }
    let fd: Option<OwnedFd> = created.into();
    let fd = fd.ok_or_else(|| ll_err("creating the ruleset", "the kernel returned no ruleset"))?;
    let proc_access = if rules.fresh_proc {
        (AccessFs::ReadFile | AccessFs::ReadDir).bits()
    } else {
        0
    };
    Ok(Some(Prepared {
        fd,
        abi: level,
        proc_access,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_abi_is_capped_and_consistent() {
        let k = kernel_abi();
        match effective_abi() {
            None => assert!(k <= 0),
            Some(a) => {
                assert!(a >= 1 && i32::from(a) <= MAX_KNOWN_ABI);
                assert_eq!(i32::from(a), k.min(MAX_KNOWN_ABI));
            }
        }
    }

    #[test]
    fn ruleset_is_created_for_existing_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let rules = Rules {
            read_exec: vec![dir.path().join("f")],
            read_write: vec![dir.path().to_path_buf()],
            devices: vec!["/dev/null".into()],
            fresh_proc: true,
        };
        match prepare(&rules).unwrap() {
            None => assert_eq!(effective_abi(), None),
            Some(p) => {
                assert!(p.raw_fd() >= 0);
                assert_eq!(Some(p.abi), effective_abi());
                assert_ne!(p.proc_access, 0);
            }
        }
    }

    #[test]
    fn missing_rule_path_is_an_error() {
        if effective_abi().is_none() {
            return;
        }
        let rules = Rules {
            read_exec: vec!["/nonexistent/cmod-landlock".into()],
            ..Rules::default()
        };
        assert!(prepare(&rules).is_err());
    }
}
