//! `cmod-sandbox` runs **one builder process** (a compiler, archiver or linker invocation)
//! hermetically, and nothing else.
//!
//! It knows nothing about derivations, manifests or store metadata: the realiser in
//! `cmod-store` turns a resolved derivation into an [`Action`] and hands it to [`run`]. The
//! action names everything the builder may see:
//!
//! * the build directory (host side), which the builder sees at [`BUILD_DIR`] in the
//!   namespace sandbox and which is its working directory;
//! * the input store paths, visible read-only at [`STORE_DIR`]`/<hash>-<name>`;
//! * stable-name links inside the build directory (`src/hello/main.cpp`,
//!   `bmi/hello.pcm`, ...) that point at those store paths, so compilers record stable
//!   names instead of hash-named paths;
//! * the toolchain closure, visible read-only at its host paths;
//! * the relative paths of the outputs the builder must write.
//!
//! Three [`Mode`]s exist. [`Mode::Full`] (Linux user/mount/pid/net/ipc/uts namespaces,
//! pivot_root and Landlock) is the default; [`Mode::Landlock`] is Landlock only, for
//! containers without user namespaces; [`Mode::Off`] only clears the environment and runs
//! in the build directory. Weaker modes are only used on explicit request: [`probe`] tells
//! the caller whether a mode can be set up on this machine, and [`run`] never falls back
//! silently.
//!
//! Arguments may contain the placeholder [`BUILD_DIR_PLACEHOLDER`]; it is replaced by the
//! build directory *as the builder sees it* (`/build` in the namespace sandbox, the host
//! path otherwise). Derivations use it for `-ffile-prefix-map=@builddir@=/build`, which is
//! a no-op inside the sandbox and makes objects location-independent outside it.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod action;
mod env;
mod error;
#[cfg(target_os = "linux")]
mod linux;
mod log_file;
#[cfg(target_os = "macos")]
mod macos;
pub mod macos_profile;
// The macOS backend cannot be built for macOS on the Linux CI machines; compiling it into
// Linux test builds at least type-checks it against the same std/libc/nix APIs.
#[cfg(all(test, target_os = "linux"))]
#[path = "macos.rs"]
#[allow(dead_code)]
mod macos_typecheck;
mod materialise;
mod off;
mod output_size;
mod outputs;
mod supervise;

pub use action::{Action, Enforcement, ExitKind, Limits, Link, Mode, Outcome};
pub use error::{Measured, OutputOverrun, SandboxError};
pub use outputs::check_outputs;

/// The working directory of every builder inside the namespace sandbox.
pub const BUILD_DIR: &str = "/build";
/// Where input store paths appear inside the namespace sandbox.
pub const STORE_DIR: &str = "/cmod/store";
/// Placeholder in arguments that is replaced by the builder-visible build directory.
pub const BUILD_DIR_PLACEHOLDER: &str = "@builddir@";

/// Check that `mode` can be set up here, without running anything expensive.
///
/// Callers use this once per `realise` so that a missing capability is reported before any
/// work starts, with the remedy in the error.
pub fn probe(mode: Mode) -> Result<Enforcement, SandboxError> {
    match mode {
        Mode::Off => Ok(Enforcement {
            mode,
            landlock_abi: None,
        }),
        #[cfg(target_os = "linux")]
        Mode::Full | Mode::Landlock => linux::probe(mode),
        #[cfg(target_os = "macos")]
        Mode::Full | Mode::Landlock => macos::probe(mode),
        #[cfg(not(any(target_os = "linux", target_os = "macos")))]
        Mode::Full | Mode::Landlock => Err(SandboxError::Unsupported {
            mode,
            reason: "this operating system has no supported sandbox".into(),
            remedy: "pass --sandbox=off to build without isolation".into(),
        }),
    }
}

/// Retire the kept views in `views`, the directory of [`Action::view_slot`]s: one not in
/// use is removed, one in use is marked stale and emptied when next claimed. Whoever
/// deletes or replaces store paths calls this, so no kept link outlives its file.
pub fn retire_views(views: &std::path::Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        linux::retire_views(views)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = views;
        Ok(())
    }
}

/// Run one action to completion under `mode`.
///
/// On return the builder's combined stdout/stderr is in `action.log_path`. A non-zero exit
/// of the builder is *not* an error of this function: it is reported in
/// [`Outcome::exit`]. Errors are failures to set up or supervise the sandbox, and the
/// time and output-size limits.
///
/// After a successful builder, the declared outputs are checked with [`check_outputs`]:
/// escaping symlinks, hard links, device nodes and setuid files are rejected with
/// [`SandboxError::UnsafeOutput`] in every mode.
pub fn run(mode: Mode, action: &Action) -> Result<Outcome, SandboxError> {
    action.validate()?;
    let outcome = match mode {
        Mode::Off => off::run(action),
        #[cfg(target_os = "linux")]
        Mode::Full | Mode::Landlock => linux::run(mode, action),
        #[cfg(target_os = "macos")]
        Mode::Full | Mode::Landlock => macos::run(mode, action),
        #[cfg(not(any(target_os = "linux", target_os = "macos")))]
        Mode::Full | Mode::Landlock => Err(SandboxError::Unsupported {
            mode,
            reason: "this operating system has no supported sandbox".into(),
            remedy: "pass --sandbox=off to build without isolation".into(),
        }),
    }?;
    if outcome.exit.success() {
        check_outputs(action)?;
    }
    Ok(outcome)
}
