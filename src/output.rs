//! Writing to stdout and stderr, and what happens when they go away.
//!
//! Rust ignores `SIGPIPE`, so a write to a closed pipe returns `EPIPE` instead of ending
//! the process, and `println!`/`eprintln!` then panic. In `cmod realise 2>&1 | head -1`
//! that panic happened on a worker thread in the middle of a step, which left the
//! scheduler waiting for that step forever. cmod keeps `SIGPIPE` ignored (a dead `ssh`
//! peer must be an error, not a silent death), and every write to stdout or stderr goes
//! through this module instead: on `EPIPE` the process ends at once and quietly, **by
//! `SIGPIPE`**, exactly as `cat`, `git log` or `yes` do (a shell reports status 141). Its
//! sandboxes die with it (the sandbox's parent-death signal), its locks are released by
//! the kernel, and the store is left as after any crash: complete paths or none.
//!
//! Any other error on stdout (a full disk under `cmod eval > file`) is reported on stderr
//! and ends cmod with exit 2; errors on stderr itself are ignored (there is nowhere left
//! to report them).
//!
//! [`install_panic_hook`] makes any panic end the process after printing it (exit 101),
//! so a bug on one thread can never leave the others waiting.

use std::fmt;
use std::io::{self, Write};

/// `print!` that ends the process quietly when stdout is a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::stdout_fmt(format_args!($($arg)*))
    };
}

/// `println!` that ends the process quietly when stdout is a closed pipe.
macro_rules! outln {
    () => {
        $crate::output::stdout_bytes(b"\n")
    };
    ($($arg:tt)*) => {
        $crate::output::stdout_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that ends the process quietly when stderr is a closed pipe.
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::output::stderr_fmt(format_args!($($arg)*))
    };
}

/// `eprintln!` that ends the process quietly when stderr is a closed pipe.
macro_rules! errln {
    () => {
        $crate::output::stderr_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::stderr_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// A status line on stderr (`Compiling`, `Finished`, `Running`...): `eprintln!` that
/// `-q/--quiet` silences. Errors and warnings use `errln!`, which it never silences.
macro_rules! status {
    ($($arg:tt)*) => {
        if !$crate::output::quiet() {
            $crate::output::stderr_fmt(format_args!("{}\n", format_args!($($arg)*)))
        }
    };
}

/// How much cmod says on stderr (`-q`, default, `-v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Verbosity {
    /// `-q`: errors and warnings only, no progress or status lines.
    Quiet,
    #[default]
    Normal,
    /// `-v`: also the steps that were fresh, and how long each built step took.
    Verbose,
}

static VERBOSITY: std::sync::OnceLock<Verbosity> = std::sync::OnceLock::new();
static PROCESS_START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Set the verbosity (once, from the command line) and note when the process started.
pub fn init(verbosity: Verbosity) {
    let _ = VERBOSITY.set(verbosity);
    process_start();
}

/// The verbosity the command line asked for.
pub fn verbosity() -> Verbosity {
    VERBOSITY.get().copied().unwrap_or_default()
}

/// Whether `-q` silences status lines and progress.
pub fn quiet() -> bool {
    verbosity() == Verbosity::Quiet
}

/// Whether `-v` asks for more.
pub fn verbose() -> bool {
    verbosity() == Verbosity::Verbose
}

/// When the process started (the first call; `main` makes it early): the origin of a
/// `--timings` report.
pub fn process_start() -> std::time::Instant {
    *PROCESS_START.get_or_init(std::time::Instant::now)
}

/// Write formatted text to stdout (flushed).
pub fn stdout_fmt(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let r = out.write_fmt(args).and_then(|()| out.flush());
    drop(out);
    stdout_result(r);
}

/// Write bytes to stdout (flushed).
pub fn stdout_bytes(bytes: &[u8]) {
    let mut out = io::stdout().lock();
    let r = out.write_all(bytes).and_then(|()| out.flush());
    drop(out);
    stdout_result(r);
}

/// Write formatted text to stderr (unbuffered).
pub fn stderr_fmt(args: fmt::Arguments<'_>) {
    let r = if crate::colour::enabled() {
        let text = crate::colour::paint(&args.to_string());
        io::stderr().lock().write_all(text.as_bytes())
    } else {
        io::stderr().lock().write_fmt(args)
    };
    if let Err(e) = r {
        if e.kind() == io::ErrorKind::BrokenPipe {
            closed_pipe();
        }
    }
}

/// Handle the result of a write to stdout.
pub fn stdout_result(r: io::Result<()>) {
    let Err(e) = r else { return };
    if e.kind() == io::ErrorKind::BrokenPipe {
        closed_pipe();
    }
    stderr_fmt(format_args!(
        "error: cannot write to standard output: {e}\n"
    ));
    std::process::exit(cmod_schema::diag::ExitClass::Usage.code());
}

/// End the process the way a closed pipe ends a program that does not ignore `SIGPIPE`:
/// killed by that signal, without a word.
pub fn closed_pipe() -> ! {
    // SAFETY: restoring a signal's default action, unblocking it in this thread and
    // raising it touch no Rust state; the default action of SIGPIPE ends every thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(libc::SIGPIPE);
    }
    // Not reached unless the signal could not be delivered: the same status by hand.
    // SAFETY: _exit ends the process without running anything else.
    unsafe { libc::_exit(128 + libc::SIGPIPE) }
}

/// After the default report (message, location, backtrace hint), end the whole process
/// with exit 101: a panic is a bug, and unwinding one thread while others wait for it
/// (the realiser's workers wait for each other's steps) could otherwise hang cmod.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let _ = writeln!(
            io::stderr(),
            "error: internal error: cmod panicked\n  = help: this is a bug in cmod; please report it with the command you ran"
        );
        std::process::exit(cmod_schema::diag::ExitClass::Internal.code());
    }));
}

/// A size for people: `512 B`, `1.5 KiB`, `12.3 MiB`, `2.0 GiB` (binary units, one
/// decimal).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A size as bytes, or for people with `human`.
pub fn size_for(bytes: u64, human: bool) -> String {
    if human {
        human_size(bytes)
    } else {
        bytes.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 * 1024 * 1024 + 300 * 1024), "5.3 MiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
        assert_eq!(human_size(u64::MAX), "16384.0 PiB");
    }
}
