//! The escape suite, part two: hostile builders that try to outlast or outgrow their
//! limits (the harness is `escape/harness.rs`, shared with `escape.rs`). Run in both Linux
//! modes, `full` and `landlock`.
//!
//! * Time limit: in `full` killing pid 1 kills the whole pid namespace; in `landlock` a
//!   subreaper kills every descendant, including ones that left the process group.
//! * Output size: one big file is stopped by `RLIMIT_FSIZE` (`SIGXFSZ`); many files each
//!   under it are stopped by the size watch while the builder runs, long before the time
//!   limit; files left behind by a builder that exits are caught by the final measurement.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use cmod_sandbox::{Limits, Measured, Mode, OutputOverrun, SandboxError};
use common::Fixture;

#[path = "escape/harness.rs"]
#[macro_use]
mod harness;
use harness::*;

#[path = "escape/limit_programs.rs"]
mod limit_programs;
use limit_programs::*;

escape_suite!(
    exceed_the_time_limit,
    exceed_the_size_limit_with_one_file,
    exceed_the_size_limit_with_files_left_behind,
    exceed_the_size_limit_with_many_small_files_forever,
);

fn exceed_the_time_limit(mode: Mode) {
    let fx = Fixture::new();
    let hb = fx.seen_build(mode).join("heartbeat");
    let a = attempt(&fx, mode, "spin", SPIN, &[s(&hb)], |a| {
        a.limits = Limits {
            timeout: Duration::from_millis(1500),
            ..Limits::default()
        };
    });
    assert!(
        matches!(a.result, Err(SandboxError::TimeLimit { .. })),
        "{:?}",
        a.result
    );
    // The heartbeat process left the process group; it must be dead all the same (full:
    // the pid namespace dies with its pid 1; landlock: the subreaper sweeps it).
    let read = || {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(fx.build().join("heartbeat")) {
            f.read_to_string(&mut s).unwrap();
        }
        s
    };
    let before = read();
    assert!(
        !before.is_empty(),
        "the heartbeat never started:\n{}",
        a.log
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        before,
        read(),
        "a sandboxed process outlived the time limit"
    );
}

fn exceed_the_size_limit_with_one_file(mode: Mode) {
    let fx = Fixture::new();
    // One big file: cut off by RLIMIT_FSIZE one byte past the limit. In `landlock` the
    // kernel's SIGXFSZ kills the builder. In `full` the builder is pid 1 of its pid
    // namespace, which ignores default-action signals (init protection), so the write
    // fails with EFBIG instead, the builder exits, and the final measurement catches the
    // file.
    let a = attempt(
        &fx,
        mode,
        "fill",
        FILL,
        &["out/result".into(), (4 << 20).to_string(), "0".into()],
        |a| a.limits.max_output_bytes = 256 << 10,
    );
    let Err(e @ SandboxError::OutputLimit { limit, overrun }) = &a.result else {
        panic!("{:?}\nlog:\n{}", a.result, a.log);
    };
    assert_eq!(*limit, 256 << 10);
    let text = e.to_string();
    assert!(text.contains("more than 262144 bytes"), "{text}");
    match mode {
        Mode::Full => {
            a.expect("write", "EFBIG");
            assert!(
                matches!(
                    overrun,
                    OutputOverrun::AfterExit { what: Measured::BuildDir, bytes } if *bytes > 256 << 10
                ),
                "{overrun:?}"
            );
            assert!(!text.contains("killed"), "{text}");
        }
        _ => {
            assert_eq!(*overrun, OutputOverrun::FileTooLarge, "log:\n{}", a.log);
            assert!(text.contains("killed by SIGXFSZ"), "{text}");
        }
    }
    let size = std::fs::metadata(fx.build().join("out/result"))
        .unwrap()
        .len();
    assert!(
        size <= (256 << 10) + 1,
        "the file grew past RLIMIT_FSIZE: {size}"
    );
}

fn exceed_the_size_limit_with_files_left_behind(mode: Mode) {
    // Ten files of 60 000 bytes, each under the 256 KiB limit, then a normal exit: caught
    // by the total. Usually the builder is done before the first measurement while it
    // runs, so the final one reports it; either way the text must match what happened.
    let fx = Fixture::new();
    let a = attempt(
        &fx,
        mode,
        "fill",
        FILL,
        &["out/result".into(), "0".into(), "10".into()],
        |a| a.limits.max_output_bytes = 256 << 10,
    );
    let Err(e @ SandboxError::OutputLimit { limit, overrun }) = &a.result else {
        panic!("{:?}\nlog:\n{}", a.result, a.log);
    };
    assert_eq!(*limit, 256 << 10);
    let text = e.to_string();
    match overrun {
        OutputOverrun::AfterExit {
            what: Measured::BuildDir,
            bytes,
        } => {
            assert!(*bytes >= 600_000, "{bytes}");
            assert!(!text.contains("killed"), "it exited on its own: {text}");
            assert!(text.contains("after it exited"), "{text}");
        }
        OutputOverrun::WhileRunning {
            what: Measured::BuildDir,
            bytes,
        } => {
            assert!(*bytes > 256 << 10, "{bytes}");
            assert!(text.contains("and was killed"), "{text}");
        }
        other => panic!("{other:?}: {text}"),
    }
}

fn exceed_the_size_limit_with_many_small_files_forever(mode: Mode) {
    // A daemon writes 16 KiB files forever (about one per millisecond). RLIMIT_FSIZE never
    // triggers; the size watch must kill the whole sandbox soon after the total passes
    // 1 MiB, far before the 30 s time limit.
    let fx = Fixture::new();
    let limit = 1u64 << 20;
    let start = Instant::now();
    let a = attempt(
        &fx,
        mode,
        "fill_forever",
        FILL_FOREVER,
        &["16384".into(), "1000".into()],
        |a| {
            a.limits = Limits {
                timeout: Duration::from_secs(30),
                max_output_bytes: limit,
            }
        },
    );
    let took = start.elapsed();
    match &a.result {
        Err(
            e @ SandboxError::OutputLimit {
                limit: l,
                overrun:
                    OutputOverrun::WhileRunning {
                        what: Measured::BuildDir,
                        bytes,
                    },
            },
        ) => {
            assert_eq!(*l, limit);
            assert!(*bytes > limit, "{bytes}");
            let text = e.to_string();
            assert!(
                text.contains("more than 1048576 bytes")
                    && text.contains("its build directory measured")
                    && text.contains("while it ran) and was killed"),
                "{text}"
            );
        }
        other => panic!("{other:?}\nlog:\n{}", a.log),
    }
    assert!(
        took < Duration::from_secs(10),
        "killed for size only after {took:?} (time limit 30 s)"
    );
    // The writer left the process group; it must be dead all the same.
    let count = || {
        std::fs::read_dir(fx.build())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("many-"))
            })
            .count()
    };
    let before = count();
    assert!(before > 64, "only {before} files were written:\n{}", a.log);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        before,
        count(),
        "a sandboxed writer outlived the size limit"
    );
}
