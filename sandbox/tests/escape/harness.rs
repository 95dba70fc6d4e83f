//! The harness of the escape suites (`escape.rs`, `escape_limits.rs`): compile a hostile C
//! program with the real clang-19, run it as the builder through `cmod_sandbox::run` with
//! the toolchain closure cmod uses for clang plus the program itself, and parse its
//! `label: ok` / `label: <ERRNO>` lines.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use cmod_sandbox::{Action, ExitKind, Mode, Outcome, SandboxError};

use crate::common::{self, Fixture};

/// Included before every program: headers and `say`.
pub const PRELUDE: &str = r#"
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

/* Print `label: ok` or `label: <ERRNO>` for a syscall result. */
static long say(const char *label, long rc) {
    if (rc < 0) printf("%s: %s\n", label, strerrorname_np(errno));
    else printf("%s: ok\n", label);
    fflush(stdout);
    return rc;
}
"#;

/// The result of one attempt.
pub struct Attempt {
    pub result: Result<Outcome, SandboxError>,
    pub log: String,
    pub lines: BTreeMap<String, String>,
}

impl Attempt {
    /// Assert that operation `label` ended with `want` (`ok` or an errno name).
    #[track_caller]
    pub fn expect(&self, label: &str, want: &str) {
        let got = self
            .lines
            .get(label)
            .map(|s| s.split(' ').next().unwrap_or(""));
        assert_eq!(got, Some(want), "`{label}`: log:\n{}", self.log);
    }

    #[track_caller]
    pub fn line(&self, label: &str) -> &str {
        self.lines
            .get(label)
            .unwrap_or_else(|| panic!("no `{label}` in log:\n{}", self.log))
    }

    #[track_caller]
    pub fn succeeded(&self) {
        match &self.result {
            Ok(o) => assert_eq!(o.exit, ExitKind::Code(0), "log:\n{}", self.log),
            Err(e) => panic!("run failed: {e}\nlog:\n{}", self.log),
        }
    }
}

/// Compile `source` and run it as the builder with `args` under `mode`; `tweak` may
/// adjust the action (limits, outputs) first.
pub fn attempt(
    fx: &Fixture,
    mode: Mode,
    name: &str,
    source: &str,
    args: &[String],
    tweak: impl FnOnce(&mut Action),
) -> Attempt {
    let bin = common::compile_c(name, &format!("{PRELUDE}{source}"));
    let mut toolchain = common::clang_closure();
    toolchain.push(bin.clone());
    let mut action = fx.action(&bin, args, toolchain);
    tweak(&mut action);
    let (result, log) = fx.run(mode, &action);
    let lines = log
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Attempt { result, log, lines }
}

pub fn s(p: impl AsRef<Path>) -> String {
    p.as_ref().to_string_lossy().into_owned()
}

/// `full` or `landlock` value.
pub fn pick<'a>(mode: Mode, full: &'a str, landlock: &'a str) -> &'a str {
    match mode {
        Mode::Full => full,
        _ => landlock,
    }
}

pub fn landlock_abi() -> u8 {
    cmod_sandbox::probe(Mode::Landlock)
        .expect("Landlock is available on this machine")
        .landlock_abi
        .expect("an ABI")
}

pub fn my_pid() -> String {
    std::process::id().to_string()
}

macro_rules! escape_suite {
    ($($name:ident),* $(,)?) => {
        mod full {
            $( #[test] fn $name() { super::$name(cmod_sandbox::Mode::Full) } )*
        }
        mod landlock {
            $( #[test] fn $name() { super::$name(cmod_sandbox::Mode::Landlock) } )*
        }
    };
}

/// A cheap per-call unique number for names.
pub fn fastrand() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    t ^ (N.fetch_add(1, Ordering::Relaxed) << 32)
}
