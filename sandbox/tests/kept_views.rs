//! Kept views (`Action::view_slot`) in the real full sandbox: a step run again with a
//! different set of inputs sees exactly what a step with a fresh view sees (the store's
//! entries, the stable-name links with their targets and pinned times), never an input
//! of the earlier run; and what it sees stays read-only.

mod common;

use std::path::{Path, PathBuf};

use cmod_sandbox::{Action, ExitKind, Link, Mode};
use common::{shell_toolchain, Fixture};

/// Lists what the builder sees of the store and of the link directory `bmi`: every entry
/// with its type, link target, mtime and mode; then whether writing into either fails.
const LIST: &str = "find /cmod/store /build/bmi -printf '%p %y %l %T@ %m\\n' | sort > out/result; \
     (touch /cmod/store/new || echo store-read-only) >> out/result 2>/dev/null; \
     (touch /build/bmi/new || echo links-read-only) >> out/result 2>/dev/null";

/// Put a file `name` with `body` into the fixture store; its basename.
fn add(fx: &Fixture, name: &str, body: &str) -> String {
    let path = fx.store().join(name);
    std::fs::write(&path, body).unwrap();
    name.to_string()
}

/// An action listing what it sees, reading `inputs` (each linked at `bmi/<at>`), with a
/// kept view in `slot` or a fresh one; in a build directory of its own.
fn action(fx: &Fixture, run: &str, inputs: &[(&str, &str)], slot: Option<&Path>) -> Action {
    let build = fx.root().join(format!("build-{run}"));
    std::fs::create_dir_all(&build).unwrap();
    let mut a = fx.action(
        Path::new("/bin/sh"),
        &["-c".to_string(), LIST.to_string()],
        shell_toolchain(),
    );
    a.build_dir = build;
    a.log_path = fx.root().join(format!("{run}.log"));
    a.inputs = inputs.iter().map(|(p, _)| p.to_string()).collect();
    a.links = inputs
        .iter()
        .map(|(p, at)| Link {
            at: PathBuf::from("bmi").join(at),
            store_path: p.to_string(),
            sub: None,
        })
        .collect();
    a.view_slot = slot.map(Path::to_path_buf);
    a
}

/// What the step of `action` saw.
fn seen(action: &Action) -> String {
    let outcome = cmod_sandbox::run(Mode::Full, action).unwrap();
    let log = std::fs::read_to_string(&action.log_path).unwrap_or_default();
    assert_eq!(outcome.exit, ExitKind::Code(0), "{log}");
    std::fs::read_to_string(action.build_dir.join("out/result")).unwrap()
}

#[test]
fn a_kept_view_shows_what_a_fresh_one_shows() {
    let fx = Fixture::new();
    let a = add(&fx, "0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a.pcm", "module a");
    let b = add(&fx, "0bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b.pcm", "module b");
    let b2 = add(
        &fx,
        "0ccccccccccccccccccccccccccccccc-b.pcm",
        "module b, edited",
    );
    let c = add(&fx, "0ddddddddddddddddddddddddddddddd-c.pcm", "module c");
    let slot = fx.root().join("views/step");
    let first = [(a.as_str(), "a.pcm"), (b.as_str(), "sub/b.pcm")];
    let second = [
        (b2.as_str(), "b.pcm"),
        (c.as_str(), "c.pcm"),
        (a.as_str(), "a.pcm"),
    ];

    let kept_first = seen(&action(&fx, "k1", &first, Some(&slot)));
    assert_eq!(kept_first, seen(&action(&fx, "f1", &first, None)));
    assert!(
        kept_first.contains(&format!("/cmod/store/{b} f")),
        "{kept_first}"
    );
    assert!(
        kept_first.contains("/build/bmi/sub/b.pcm l /cmod/store/"),
        "{kept_first}"
    );
    // The first run laid its links out inside the sandbox, and kept them on the host
    // beside the builder, for the next run.
    let kept_link = fx.root().join("views/step.links/bmi/sub/b.pcm");
    assert_eq!(
        std::fs::read_link(&kept_link).unwrap(),
        Path::new("/cmod/store").join(&b)
    );
    assert!(fx.root().join("views/step.links.list").exists());

    let kept_second = seen(&action(&fx, "k2", &second, Some(&slot)));
    let fresh_second = seen(&action(&fx, "f2", &second, None));
    assert_eq!(kept_second, fresh_second);
    // The earlier run's input and link directory are gone, the new ones are there.
    assert!(!kept_second.contains(&b), "{kept_second}");
    assert!(!kept_second.contains("/build/bmi/sub"), "{kept_second}");
    assert!(kept_second.contains(&format!("/build/bmi/b.pcm l /cmod/store/{b2}")));
    assert!(kept_second.contains("store-read-only") && kept_second.contains("links-read-only"));
    // Every link and link directory carries the pinned time.
    for line in kept_second.lines().filter(|l| l.starts_with("/build/bmi")) {
        assert!(line.contains(" 1.0000000000 "), "{line}");
    }
    // The slot was kept (and its links beside it), not made anew in the build directory.
    assert!(slot.join(&b2).exists() && !slot.join(&b).exists());
    assert!(!fx.root().join("build-k2.inputs").exists());
}

/// A slot in use by another step is not shared: the second step makes a temporary view
/// and sees exactly its own inputs.
#[test]
fn a_slot_in_use_is_not_shared() {
    let fx = Fixture::new();
    let a = add(&fx, "0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a.pcm", "module a");
    let slot = fx.root().join("views/step");
    std::fs::create_dir_all(&slot).unwrap();
    let lock = std::fs::File::create(fx.root().join("views/step.lock")).unwrap();
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let inputs = [(a.as_str(), "a.pcm")];
    let out = seen(&action(&fx, "k", &inputs, Some(&slot)));
    assert_eq!(out, seen(&action(&fx, "f", &inputs, None)));
    assert!(!slot.join(&a).exists(), "the held slot was used");
    drop(held);
}

/// Retiring the views removes those not in use; one in use is marked and emptied by the
/// step that claims it next, which then sees what a fresh view shows.
#[test]
fn retired_views_are_removed_or_emptied_at_their_next_use() {
    let fx = Fixture::new();
    let a = add(&fx, "0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a.pcm", "module a");
    let views = fx.root().join("views");
    let (idle, busy) = (views.join("idle"), views.join("busy"));
    let inputs = [(a.as_str(), "a.pcm")];
    seen(&action(&fx, "i1", &inputs, Some(&idle)));
    seen(&action(&fx, "b1", &inputs, Some(&busy)));
    assert!(idle.join(&a).exists() && busy.join(&a).exists());

    let lock = std::fs::File::options()
        .write(true)
        .open(views.join("busy.lock"))
        .unwrap();
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    cmod_sandbox::retire_views(&views).unwrap();
    assert!(
        !idle.exists() && !views.join("idle.links").exists(),
        "an idle view goes"
    );
    assert!(busy.join(&a).exists(), "a view in use is left to its step");
    assert!(views.join("busy.stale").exists());
    drop(held);

    // What the retired slot holds under the input's name is no longer the store's file
    // (as after a repair); the next use must not keep it by its name.
    std::fs::remove_file(busy.join(&a)).unwrap();
    std::fs::write(busy.join(&a), "stale module a").unwrap();
    let out = seen(&action(&fx, "b2", &inputs, Some(&busy)));
    assert_eq!(out, seen(&action(&fx, "f", &inputs, None)));
    assert_eq!(std::fs::read_to_string(busy.join(&a)).unwrap(), "module a");
    assert!(!views.join("busy.stale").exists());
}
