//! The description of one sandboxed process: what it runs, what it sees, what it writes.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::SandboxError;

/// How strongly a builder is isolated. Recorded in every output's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Namespaces (user, mount, pid, net, ipc, uts), a fresh root, and Landlock.
    Full,
    /// Landlock rules only (no namespaces), for containers without user namespaces.
    Landlock,
    /// No isolation: a cleared environment and a private build directory.
    Off,
}

impl Mode {
    /// The stable spelling used on the command line and in metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Landlock => "landlock",
            Mode::Off => "off",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Mode::Full),
            "landlock" => Ok(Mode::Landlock),
            "off" => Ok(Mode::Off),
            other => Err(format!(
                "unknown sandbox mode `{other}`; expected `full`, `landlock` or `off`"
            )),
        }
    }
}

/// Resource limits for one action. Exceeding either is a [`SandboxError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock limit; the whole process tree is killed when it expires.
    pub timeout: Duration,
    /// Upper bound on the total size of the build directory (outputs and temporaries)
    /// and on the log.
    pub max_output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(600),
            max_output_bytes: 4 << 30,
        }
    }
}

/// A stable-name symlink created in the build directory before the builder starts.
///
/// `at` is relative to the build directory (e.g. `bmi/hello.pcm`); the link points at
/// store path `store_path` (a `<hash>-<name>` basename), optionally at `sub` inside it,
/// as the builder sees the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Where the link is, relative to the build directory.
    pub at: PathBuf,
    /// The `<hash>-<name>` basename of the store path it points into; must be an input.
    pub store_path: String,
    /// A relative path inside that store path to point at, if not its root.
    pub sub: Option<PathBuf>,
}

/// One builder invocation.
#[derive(Debug, Clone)]
pub struct Action {
    /// Absolute host path of the program (part of the toolchain closure), or
    /// [`crate::BUILD_DIR_PLACEHOLDER`]`/<path>` for a program among the inputs (a
    /// generator built by an earlier step), run where the builder sees its build
    /// directory.
    pub program: PathBuf,
    /// Arguments after argv[0]; [`crate::BUILD_DIR_PLACEHOLDER`] is substituted.
    pub args: Vec<String>,
    /// Variables set on top of the fixed sandbox environment.
    pub env: Vec<(String, String)>,
    /// Host directory that exists and is empty; the builder's working directory.
    pub build_dir: PathBuf,
    /// Host store directory (`<root>/v1/store`).
    pub store_dir: PathBuf,
    /// Basenames (`<hash>-<name>`) of the store paths the builder may read.
    pub inputs: Vec<String>,
    /// Stable-name links to create in the build directory.
    pub links: Vec<Link>,
    /// Host files and directories of the toolchain, readable and executable.
    pub toolchain: Vec<PathBuf>,
    /// Paths relative to the build directory that the builder must produce.
    pub outputs: Vec<PathBuf>,
    /// Host file that receives the builder's combined stdout and stderr.
    pub log_path: PathBuf,
    /// The wall-clock and output-size limits the builder runs under.
    pub limits: Limits,
    /// Where the full sandbox may keep this step's view of the store between runs (a
    /// directory per step identity, chosen by the caller), so the next run updates it
    /// instead of making it anew; `None` for a temporary view. See `linux/view.rs`.
    pub view_slot: Option<PathBuf>,
}

impl Action {
    /// The program as the builder's process sees it, the build directory being at
    /// `build_dir_seen` (see [`Action::program`]).
    pub(crate) fn program_seen(&self, build_dir_seen: &Path) -> PathBuf {
        match self.program.strip_prefix(crate::BUILD_DIR_PLACEHOLDER) {
            Ok(rest) => build_dir_seen.join(rest),
            Err(_) => self.program.clone(),
        }
    }

    /// Reject actions whose relative paths could escape the build directory or whose
    /// inputs are not plain store-path basenames.
    pub(crate) fn validate(&self) -> Result<(), SandboxError> {
        let in_build_dir = self
            .program
            .strip_prefix(crate::BUILD_DIR_PLACEHOLDER)
            .is_ok_and(|rest| {
                !rest.as_os_str().is_empty()
                    && rest
                        .components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)))
            });
        if !self.program.is_absolute() && !in_build_dir {
            return Err(SandboxError::InvalidAction(format!(
                "program `{}` is not an absolute path",
                self.program.display()
            )));
        }
        if !self.build_dir.is_absolute() || !self.store_dir.is_absolute() {
            return Err(SandboxError::InvalidAction(
                "build and store directories must be absolute".into(),
            ));
        }
        for input in &self.inputs {
            if input.is_empty() || input.contains('/') || input.starts_with('.') {
                return Err(SandboxError::InvalidAction(format!(
                    "input `{input}` is not a store path basename"
                )));
            }
        }
        let inputs: std::collections::HashSet<&str> =
            self.inputs.iter().map(String::as_str).collect();
        for link in &self.links {
            check_relative(&link.at)?;
            if let Some(sub) = &link.sub {
                check_relative(sub)?;
            }
            if !inputs.contains(link.store_path.as_str()) {
                return Err(SandboxError::InvalidAction(format!(
                    "link `{}` points at `{}`, which is not an input",
                    link.at.display(),
                    link.store_path
                )));
            }
        }
        for out in &self.outputs {
            check_relative(out)?;
        }
        Ok(())
    }
}

fn check_relative(p: &Path) -> Result<(), SandboxError> {
    let ok = !p.as_os_str().is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(SandboxError::InvalidAction(format!(
            "`{}` must be a relative path without `..`",
            p.display()
        )))
    }
}

/// How the builder process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// It exited with this status code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl ExitKind {
    /// Whether the builder exited with status 0.
    pub fn success(self) -> bool {
        self == ExitKind::Code(0)
    }
}

impl fmt::Display for ExitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitKind::Code(c) => write!(f, "exit code {c}"),
            ExitKind::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// What isolation was actually enforced for an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enforcement {
    /// The sandbox mode the action ran in.
    pub mode: Mode,
    /// The Landlock ABI level whose rules were enforced, if any.
    pub landlock_abi: Option<u8>,
}

/// The result of a completed action.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How the builder ended.
    pub exit: ExitKind,
    /// Wall-clock time the whole action took, sandbox setup included.
    pub elapsed: Duration,
    /// The isolation that was enforced.
    pub enforcement: Enforcement,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action() -> Action {
        Action {
            program: "/bin/true".into(),
            args: vec![],
            env: vec![],
            build_dir: "/tmp/b".into(),
            store_dir: "/tmp/s".into(),
            inputs: vec!["abc-x".into()],
            links: vec![Link {
                at: "src/x".into(),
                store_path: "abc-x".into(),
                sub: None,
            }],
            toolchain: vec![],
            outputs: vec!["out/x.o".into()],
            log_path: "/tmp/log".into(),
            limits: Limits::default(),
            view_slot: None,
        }
    }

    #[test]
    fn valid_action_passes() {
        action().validate().expect("valid");
    }

    #[test]
    fn escaping_link_is_rejected() {
        let mut a = action();
        a.links[0].at = "../x".into();
        let err = a.validate().unwrap_err().to_string();
        assert!(err.contains("without `..`"), "{err}");
    }

    #[test]
    fn link_to_undeclared_input_is_rejected() {
        let mut a = action();
        a.links[0].store_path = "zzz-y".into();
        let err = a.validate().unwrap_err().to_string();
        assert!(err.contains("not an input"), "{err}");
    }

    #[test]
    fn input_with_slash_is_rejected() {
        let mut a = action();
        a.inputs.push("../etc".into());
        assert!(a.validate().is_err());
    }

    #[test]
    fn mode_round_trips() {
        for m in [Mode::Full, Mode::Landlock, Mode::Off] {
            assert_eq!(m.as_str().parse::<Mode>().unwrap(), m);
        }
        assert!("strict".parse::<Mode>().is_err());
    }
}
