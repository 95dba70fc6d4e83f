//! The Linux sandboxes: [`Mode::Full`] (user, mount, pid, net, ipc and uts namespaces, a
//! fresh root via `pivot_root`, and Landlock as a second layer) and [`Mode::Landlock`]
//! (Landlock rules only, for containers without user namespaces).
//!
//! Layout of the full sandbox, as the builder sees it:
//!
//! ```text
//! /                      tmpfs, read-only once set up
//! /usr, /lib -> usr/lib  toolchain paths at their host paths (read-only binds,
//!  ...                   host symlinks recreated), see plan.rs
//! /cmod/store/<input>    each input store path (read-only bind)
//! /build                 the host build directory (read-write bind), the cwd
//! /tmp                   the build directory's .tmp (read-write bind); toolchain
//!                        paths under the host's /tmp are bound read-only inside it
//! /dev/{null,zero,full,random,urandom}  host device nodes (binds)
//! /proc                  fresh, for the sandbox's own pid namespace
//! ```
//!
//! Files: `plan.rs` (host-side layout), `landlock_rules.rs` (ruleset), `namespaces.rs`
//! (clone and error mapping), `child.rs` (the async-signal-safe child), `net.rs`
//! (loopback), `reaper.rs` (the Landlock-mode subreaper that keeps the process tree
//! under control without a pid namespace), `lifetime.rs` (every sandbox dies with its
//! caller).

mod child;
mod kept_links;
mod landlock_rules;
mod lifetime;
mod namespaces;
mod net;
mod plan;
mod reaper;
mod view;

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::raw::c_void;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::materialise::{link_roots, prepare_build_dir, substitute_args};
use crate::{
    env, supervise, Action, Enforcement, Mode, Outcome, SandboxError, BUILD_DIR, STORE_DIR,
};
use child::{CVec, ChildSpec};
use landlock_rules::Rules;
use namespaces::{cpath, cstr};
use reaper::ReaperSpec;
use supervise::OnTimeout;

/// Stack of the Landlock-mode builder between its clone and its exec.
const BUILDER_STACK: usize = 256 * 1024;

pub(crate) fn probe(mode: Mode) -> Result<Enforcement, SandboxError> {
    match mode {
        Mode::Full => probe_full(),
        Mode::Landlock => probe_landlock(),
        Mode::Off => Ok(Enforcement {
            mode,
            landlock_abi: None,
        }),
    }
}

/// See [`crate::retire_views`].
pub(crate) fn retire_views(views: &Path) -> std::io::Result<()> {
    view::retire_all(views)
}

pub(crate) fn run(mode: Mode, action: &Action) -> Result<Outcome, SandboxError> {
    match mode {
        Mode::Full => run_full(action),
        Mode::Landlock => run_landlock(action),
        Mode::Off => crate::off::run(action),
    }
}

/// Options of the tmpfs that becomes the sandbox root (it holds only directories, empty
/// mount-point files and symlinks).
const ROOT_TMPFS_OPTIONS: &str = "mode=0755,size=1m,nr_inodes=16k";

fn spec_base(plan: &plan::Plan, tmpfs_at: &Path) -> Result<(ChildSpec, Vec<String>), SandboxError> {
    let (ops, what) = namespaces::ops(plan)?;
    let (uid_map, gid_map) = namespaces::id_maps();
    let spec = ChildSpec {
        uid_map,
        gid_map,
        hostname: namespaces::HOSTNAME,
        tmpfs_at: cpath(tmpfs_at)?,
        tmpfs_options: cstr(ROOT_TMPFS_OPTIONS, "tmpfs options")?,
        ops,
        cwd: cstr("/", "cwd")?,
        program: cstr("/", "program")?,
        argv: CVec::new(Vec::new()),
        envp: CVec::new(Vec::new()),
        stdio: None,
        max_file_bytes: u64::MAX / 2,
        ruleset_fd: -1,
        proc_access: 0,
        err_fd: -1,
        caller_pidfd: lifetime::caller_pidfd(),
    };
    Ok((spec, what))
}

/// Set up a complete (empty) namespace sandbox with the Landlock layer and exit, to find
/// out before any real work whether this machine allows it.
fn probe_full() -> Result<Enforcement, SandboxError> {
    let plan = plan::plan(None, None, &Default::default())?;
    let tmpfs_at = std::fs::canonicalize(std::env::temp_dir())
        .map_err(|e| SandboxError::io("finding", std::env::temp_dir(), e))?;
    let (mut spec, what) = spec_base(&plan, &tmpfs_at)?;
    let rules = Rules {
        devices: plan::DEVICES.iter().map(PathBuf::from).collect(),
        fresh_proc: true,
        ..Rules::default()
    };
    let ruleset = landlock_rules::prepare(&rules)?;
    if let Some(r) = &ruleset {
        spec.ruleset_fd = r.raw_fd();
        spec.proc_access = r.proc_access;
    }
    let pid = namespaces::spawn(&mut spec, &what).map_err(|f| f.into_error(Mode::Full))?;
    match nix::sys::wait::waitpid(pid, None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(Enforcement {
            mode: Mode::Full,
            landlock_abi: ruleset.map(|r| r.abi),
        }),
        other => Err(SandboxError::Unsupported {
            mode: Mode::Full,
            reason: format!("the probe sandbox ended unexpectedly: {other:?}"),
            remedy: namespaces::NAMESPACE_REMEDY.into(),
        }),
    }
}

fn landlock_unsupported() -> SandboxError {
    SandboxError::Unsupported {
        mode: Mode::Landlock,
        reason: landlock_rules::unavailable_reason(),
        remedy: "use a kernel with Landlock enabled (Linux >= 5.13 with `landlock` in the \
                 `lsm=` boot parameter), or pass `--sandbox=off` explicitly"
            .into(),
    }
}

fn probe_landlock() -> Result<Enforcement, SandboxError> {
    let rules = Rules {
        devices: vec![PathBuf::from("/dev/null")],
        ..Rules::default()
    };
    match landlock_rules::prepare(&rules)? {
        Some(r) => Ok(Enforcement {
            mode: Mode::Landlock,
            landlock_abi: Some(r.abi),
        }),
        None => Err(landlock_unsupported()),
    }
}

fn open_stdio(action: &Action) -> Result<(File, File), SandboxError> {
    let log = crate::log_file::create(&action.log_path)?;
    let null = File::open("/dev/null").map_err(|e| SandboxError::io("opening", "/dev/null", e))?;
    Ok((null, log))
}

fn env_cstrings(build_seen: &str, action: &Action) -> Result<Vec<CString>, SandboxError> {
    env::for_action(build_seen, &action.env)
        .into_iter()
        .map(|(k, v)| {
            if k.contains('=') || k.is_empty() {
                return Err(SandboxError::InvalidAction(format!(
                    "environment variable name `{k}` is empty or contains `=`"
                )));
            }
            cstr(format!("{k}={v}"), &format!("environment variable `{k}`"))
        })
        .collect()
}

/// Name the program in a failure to execute it.
fn exec_error(mut err: SandboxError, action: &Action) -> SandboxError {
    if let SandboxError::Setup { step, .. } = &mut err {
        if step == child::Stage::Exec.describe() {
            *step = format!(
                "executing `{}` (it must exist inside the sandbox: part of the toolchain or an input)",
                action.program.display()
            );
        }
    }
    err
}

fn run_full(action: &Action) -> Result<Outcome, SandboxError> {
    let start = Instant::now();
    let link_roots = link_roots(action);
    prepare_build_dir(action, Path::new(STORE_DIR), &link_roots)?;
    // Removed (by drop) when the step ends, however it ends.
    let mut view = view::InputView::create(action)?;
    let links_later = view.keep_links(action, &link_roots)?;
    let plan = plan::plan(Some(action), Some(&view), &link_roots)?;
    let build = plan
        .build_dir
        .clone()
        .ok_or_else(|| SandboxError::InvalidAction("no build directory".into()))?;
    let rules = Rules {
        read_exec: plan
            .toolchain_binds
            .iter()
            .chain(plan.inputs.iter())
            .cloned()
            .collect(),
        // `.tmp` is mounted at `/tmp`, not reached through `/build`, so it needs its own
        // rule (Landlock walks the mount tree as the builder sees it).
        read_write: vec![build.clone(), build.join(".tmp")],
        devices: plan::DEVICES.iter().map(PathBuf::from).collect(),
        fresh_proc: true,
    };
    let ruleset = landlock_rules::prepare(&rules)?;
    let (stdin, log) = open_stdio(action)?;

    let (mut spec, what) = spec_base(&plan, &build)?;
    let program = action.program_seen(Path::new(BUILD_DIR));
    let mut argv = vec![cpath(&program)?];
    for a in substitute_args(&action.args, BUILD_DIR) {
        argv.push(cstr(a, "an argument")?);
    }
    spec.cwd = cstr(BUILD_DIR, "cwd")?;
    spec.program = cpath(&program)?;
    spec.argv = CVec::new(argv);
    spec.envp = CVec::new(env_cstrings(BUILD_DIR, action)?);
    spec.stdio = Some((stdin.as_raw_fd(), log.as_raw_fd()));
    spec.max_file_bytes = action.limits.max_output_bytes;
    if let Some(r) = &ruleset {
        spec.ruleset_fd = r.raw_fd();
        spec.proc_access = r.proc_access;
    }
    let pid = namespaces::spawn(&mut spec, &what)
        .map_err(|f| exec_error(f.into_error(Mode::Full), action))?;
    drop((stdin, spec));
    // Killing the child (pid 1 of the sandbox's pid namespace) kills every process in it.
    // A first kept run's links are laid out on the host meanwhile, for the next run.
    let exit = std::thread::scope(|s| {
        if links_later {
            s.spawn(|| view.lay_out_kept_links(action, &link_roots));
        }
        supervise::wait(pid, pid, action)
    })?;
    let enforcement = Enforcement {
        mode: Mode::Full,
        landlock_abi: ruleset.map(|r| r.abi),
    };
    supervise::conclude(action, log, exit, start, enforcement)
}

/// What a Landlock-only step may touch: the toolchain and its inputs (read and
/// execute), its build directory (read and write) and the usual devices. A missing
/// input is an error.
fn landlock_rules_for(action: &Action) -> Result<Rules, SandboxError> {
    let mut read_exec: Vec<PathBuf> = action
        .toolchain
        .iter()
        .filter(|p| p.exists())
        .cloned()
        .collect();
    for input in &action.inputs {
        let p = action.store_dir.join(input);
        if !p.exists() {
            return Err(SandboxError::io(
                "finding input",
                p,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        read_exec.push(p);
    }
    Ok(Rules {
        read_exec,
        read_write: vec![action.build_dir.clone()],
        devices: plan::DEVICES.iter().map(PathBuf::from).collect(),
        fresh_proc: false,
    })
}

fn run_landlock(action: &Action) -> Result<Outcome, SandboxError> {
    let start = Instant::now();
    prepare_build_dir(action, &action.store_dir, &Default::default())?;
    let rules = landlock_rules_for(action)?;
    let ruleset = landlock_rules::prepare(&rules)?.ok_or_else(landlock_unsupported)?;
    let (stdin, log) = open_stdio(action)?;
    let seen = action.build_dir.to_string_lossy().into_owned();
    let program = action.program_seen(&action.build_dir);
    let mut argv = vec![cpath(&program)?];
    for a in substitute_args(&action.args, &seen) {
        argv.push(cstr(a, "an argument")?);
    }
    let mut builder_stack = vec![0u8; BUILDER_STACK];
    let top = (builder_stack.as_mut_ptr() as usize + BUILDER_STACK) & !0xf;
    let mut spec = ReaperSpec {
        program: cpath(&program)?,
        argv: CVec::new(argv),
        envp: CVec::new(env_cstrings(&seen, action)?),
        cwd: cpath(&action.build_dir)?,
        stdin_fd: stdin.as_raw_fd(),
        log_fd: log.as_raw_fd(),
        ruleset_fd: ruleset.raw_fd(),
        max_file_bytes: action.limits.max_output_bytes,
        err_fd: -1,
        caller_pidfd: lifetime::caller_pidfd(),
        builder_stack_top: top as *mut c_void,
    };
    let fail = |f: namespaces::SpawnFailure| exec_error(f.into_error(Mode::Landlock), action);
    let pipe = namespaces::ErrPipe::new().map_err(fail)?;
    spec.err_fd = pipe.write_fd();
    // SAFETY: `spec` (and the builder stack it points into) outlive the call; the
    // subreaper and the builder only make async-signal-safe syscalls (reaper.rs).
    let pid = unsafe {
        namespaces::clone_child(
            reaper::reaper_main,
            libc::SIGCHLD,
            &mut spec as *mut ReaperSpec as *mut c_void,
            pipe,
            &[],
            "starting the builder's subreaper (clone)",
        )
    }
    .map_err(fail)?;
    drop((stdin, spec, builder_stack));
    // On the time limit the subreaper is asked to kill every descendant first.
    let exit = supervise::wait_with(
        pid,
        pid,
        action,
        OnTimeout::AskFirst(Duration::from_secs(5)),
    )?;
    let enforcement = Enforcement {
        mode: Mode::Landlock,
        landlock_abi: Some(ruleset.abi),
    };
    supervise::conclude(action, log, exit, start, enforcement)
}
