//! System libraries: pkg-config dependencies and `links`, found and hashed at evaluation
//! time, mounted only into the steps that use them, recorded in cmod.lock; and the
//! system's headers tracked one by one, so unrelated `-dev` packages rebuild nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cmod_env, derivation, failure, run, Realised, Sandbox};
use serde_json::Value;

fn host_files(drv: &Value) -> Vec<String> {
    drv["host"]
        .as_object()
        .map(|h| h.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn zlib_through_pkg_config_builds_runs_tests_and_is_locked() {
    let s = Sandbox::new();
    let dir = s.copy_example("zlib");
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(
        run(&r.target("squeeze"), &[]),
        "1344 bytes -> 42 bytes -> 1344 bytes (round trip ok)\n"
    );
    let test = s.cmod(&dir, &["test"]);
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(String::from_utf8_lossy(&test.stdout).contains("test round-trip ... ok"));
    // The library files are inputs of the link only; zlib.h is an input of the units
    // that include it.
    let drvs = s.derivations(&dir, &[]);
    let link = host_files(derivation(&drvs, "squeeze-0.1.0-squeeze"));
    assert!(link.iter().any(|f| f.ends_with("/libz.so")), "{link:?}");
    assert!(!link.iter().any(|f| f.ends_with(".pc")), "{link:?}");
    let bmi = host_files(derivation(&drvs, "squeeze-0.1.0-squeeze.pcm"));
    assert!(bmi.contains(&"/usr/include/zlib.h".to_string()), "{bmi:?}");
    assert!(!bmi.iter().any(|f| f.contains("libz")), "{bmi:?}");
    let lock = std::fs::read_to_string(dir.join("cmod.lock")).unwrap();
    assert!(
        lock.contains("[[system]]\nname = \"zlib\"\npkg-config = \"zlib\""),
        "{lock}"
    );
    assert!(lock.contains("/libz.so\" = \"blake3:"), "{lock}");
    let check = s.realise(&dir, &["--check"]).ok();
    assert_eq!(check.finished()["differing"], 0, "{}", check.finished());
    assert!(s.realise(&dir, &[]).ok().built().is_empty());
}

#[test]
fn threads_through_links_build_run_and_are_locked() {
    let s = Sandbox::new();
    let dir = s.copy_example("threads");
    let r = s.realise(&dir, &[]).ok();
    assert_eq!(
        run(&r.target("parallel-sum"), &[]),
        "sum of 0..999999 on 4 threads = 499999500000 (4 threads named)\n"
    );
    let drvs = s.derivations(&dir, &[]);
    let link = derivation(&drvs, "threads-0.1.0-parallel-sum");
    assert!(
        host_files(link).iter().any(|f| f.contains("libpthread")),
        "{link}"
    );
    assert!(
        link["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "-lpthread"),
        "{link}"
    );
    let lock = std::fs::read_to_string(dir.join("cmod.lock")).unwrap();
    assert!(lock.contains("name = \"pthread\""), "{lock}");
    let check = s.realise(&dir, &["--check"]).ok();
    assert_eq!(check.finished()["differing"], 0, "{}", check.finished());
    assert!(s.realise(&dir, &[]).ok().built().is_empty());
}

fn manifest(s: &Sandbox, body: &str) -> PathBuf {
    s.project(
        "p",
        &[
            ("cmod.toml", &format!("[package]\nname = \"p\"\nversion = \"0.1.0\"\n[[bin]]\nname = \"p\"\nmain = \"main.cpp\"\n{body}")),
            ("main.cpp", "int main() {}\n"),
        ],
    )
}

#[test]
fn a_missing_pkg_config_package_is_an_error_at_its_line_naming_what_to_install() {
    let s = Sandbox::new();
    let dir = manifest(&s, "[dependencies]\nzlib = { system = \"zlib\" }\nfoo = { system = \"cmod-no-such-package\" }\n");
    let (code, err) = failure(&s.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "system dependency `foo`: pkg-config package `cmod-no-such-package` was not found"
        ),
        "{err}"
    );
    assert!(err.contains("cmod.toml:9:7"), "{err}");
    assert!(err.contains("cmod-no-such-package.pc"), "{err}");
    assert!(!dir.join("cmod.lock").exists());
    // A known name gets its Debian package named.
    let dir = s.project("q", &[("cmod.toml", "[package]\nname = \"q\"\nversion = \"0.1.0\"\n[[bin]]\nname = \"q\"\nmain = \"m.cpp\"\n[dependencies]\nz = { system = \"zlib\", version = \">=99\" }\n"), ("m.cpp", "int main() {}\n")]);
    let (code, err) = failure(&s.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "system dependency `z` requires version `>=99`, but pkg-config reports `zlib` 1."
        ),
        "{err}"
    );
    assert!(err.contains("cmod.toml:8:5"), "{err}");
    assert_eq!(cmod_hint("zlib"), "apt-get install zlib1g-dev",);
}

/// The Debian package a missing zlib names, from the error.
fn cmod_hint(module: &str) -> String {
    let s = Sandbox::new();
    let dir = manifest(
        &s,
        &format!("[dependencies]\nx = {{ system = \"{module}\" }}\n"),
    );
    let out = cmod_env(
        &dir,
        &s.store(),
        &["realise"],
        &[
            ("PKG_CONFIG_LIBDIR", "/nonexistent".into()),
            ("PKG_CONFIG_PATH", String::new()),
        ],
    );
    let (code, err) = failure(&out);
    assert_eq!(code, 2, "{err}");
    let at = err.find("apt-get install ").expect("an install hint");
    err[at..].split('`').next().unwrap().trim().to_string()
}

#[test]
fn a_missing_links_name_is_an_error_at_its_line() {
    let s = Sandbox::new();
    let dir = manifest(&s, "[build]\nlinks = [\"m\", \"cmodnosuchlib\"]\n");
    let (code, err) = failure(&s.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("library `cmodnosuchlib` was not found"),
        "{err}"
    );
    assert!(err.contains("cmod.toml:8:15"), "{err}");
    assert!(
        err.contains("apt-file search /libcmodnosuchlib.so"),
        "{err}"
    );
    let dir = s.project("q", &[("cmod.toml", "[package]\nname = \"q\"\nversion = \"0.1.0\"\n[[bin]]\nname = \"q\"\nmain = \"m.cpp\"\nlinks = [\"-L/x\"]\n"), ("m.cpp", "int main() {}\n")]);
    let (code, err) = failure(&s.cmod(&dir, &["realise"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a library name"), "{err}");
}

/// A system library of the test's own: a static archive, a header and a `.pc` file in a
/// temporary prefix, found through `PKG_CONFIG_PATH` with the real pkg-config.
struct FakeLib {
    prefix: tempfile::TempDir,
    /// A shared library (`libcmodfake.so` → `libcmodfake.so.2`, found at run time through
    /// the rpath its `.pc` file passes), not a static archive.
    shared: bool,
}

impl FakeLib {
    fn new() -> FakeLib {
        FakeLib::build(false)
    }

    fn shared() -> FakeLib {
        FakeLib::build(true)
    }

    fn build(shared: bool) -> FakeLib {
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path();
        std::fs::create_dir_all(p.join("include")).unwrap();
        std::fs::create_dir_all(p.join("lib/pkgconfig")).unwrap();
        std::fs::write(
            p.join("lib/pkgconfig/cmodfake.pc"),
            format!(
                "prefix={}\nincludedir=${{prefix}}/include\nlibdir=${{prefix}}/lib\nName: cmodfake\nDescription: a test library\nVersion: 2.5.1\nCflags: -I${{includedir}} -DCMODFAKE=1\nLibs: -L${{libdir}} {}-lcmodfake\n",
                p.display(),
                if shared { "-Wl,-rpath,${libdir} " } else { "" }
            ),
        )
        .unwrap();
        let lib = FakeLib { prefix, shared };
        lib.set(40, "#define FAKE_BASE 2\n");
        lib
    }

    /// Rebuild the library (`fake_value()` returns `value`) and rewrite the header.
    fn set(&self, value: i32, header_extra: &str) {
        let p = self.prefix.path();
        std::fs::write(
            p.join("include/cmodfake.h"),
            format!("#pragma once\n{header_extra}#ifdef __cplusplus\nextern \"C\"\n#endif\nint fake_value(void);\n"),
        )
        .unwrap();
        std::fs::write(
            p.join("fake.c"),
            format!("int fake_value(void) {{ return {value}; }}\n"),
        )
        .unwrap();
        let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
        if self.shared {
            let so = p.join("lib/libcmodfake.so.2");
            let _ = std::fs::remove_file(&so);
            ok(Command::new("clang-19")
                .args(["-shared", "-fPIC", "-Wl,-soname,libcmodfake.so.2", "-o"])
                .arg(&so)
                .arg(p.join("fake.c")));
            let link = p.join("lib/libcmodfake.so");
            if !link.exists() {
                std::os::unix::fs::symlink("libcmodfake.so.2", link).unwrap();
            }
            return;
        }
        ok(Command::new("clang-19")
            .arg("-c")
            .arg(p.join("fake.c"))
            .arg("-o")
            .arg(p.join("fake.o")));
        let _ = std::fs::remove_file(p.join("lib/libcmodfake.a"));
        ok(Command::new("llvm-ar-19")
            .arg("rcsD")
            .arg(p.join("lib/libcmodfake.a"))
            .arg(p.join("fake.o")));
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![(
            "PKG_CONFIG_PATH",
            self.prefix
                .path()
                .join("lib/pkgconfig")
                .display()
                .to_string(),
        )]
    }
}

fn fake_project(s: &Sandbox) -> PathBuf {
    s.project(
        "app",
        &[
            (
                "cmod.toml",
                "[package]\nname = \"app\"\nversion = \"0.1.0\"\n[[bin]]\nname = \"app\"\nmain = \"main.cpp\"\nsources = [\"other.cpp\"]\n[dependencies]\nfake = { system = \"cmodfake\", version = \"^2.5\" }\n",
            ),
            (
                "main.cpp",
                "#include <cstdio>\n#include <cmodfake.h>\nint other();\nint main() { std::printf(\"%d\\n\", fake_value() + FAKE_BASE + other() + CMODFAKE); }\n",
            ),
            ("other.cpp", "int other() { return 0; }\n"),
        ],
    )
}

fn realise_with(s: &Sandbox, dir: &Path, env: &[(&str, String)], extra: &[&str]) -> Realised {
    let mut args = vec!["realise", "--message-format", "json"];
    args.extend_from_slice(extra);
    Realised::parse(cmod_env(dir, &s.store(), &args, env))
}

#[test]
fn a_system_library_of_its_own_builds_its_headers_rebuild_their_includers_only() {
    let s = Sandbox::new();
    let fake = FakeLib::new();
    let dir = fake_project(&s);
    let r = realise_with(&s, &dir, &fake.env(), &[]).ok();
    assert_eq!(run(&r.target("app"), &[]), "43\n");
    // A header edit rebuilds the unit that includes it (and the link), not the other.
    fake.set(40, "#define FAKE_BASE 3\n");
    let r = realise_with(&s, &dir, &fake.env(), &[]).ok();
    assert_eq!(r.built(), ["app-0.1.0-app", "app-0.1.0-main.cpp.o"]);
    assert_eq!(run(&r.target("app"), &[]), "44\n");
    // A header edit that does not change it rebuilds nothing.
    fake.set(40, "#define FAKE_BASE 3\n");
    assert!(realise_with(&s, &dir, &fake.env(), &[])
        .ok()
        .built()
        .is_empty());
}

#[test]
fn a_changed_system_library_is_a_lock_change() {
    let s = Sandbox::new();
    let fake = FakeLib::new();
    let dir = fake_project(&s);
    let lock = cmod_env(&dir, &s.store(), &["lock"], &fake.env());
    assert!(
        lock.status.success(),
        "{}",
        String::from_utf8_lossy(&lock.stderr)
    );
    let locked = std::fs::read_to_string(dir.join("cmod.lock")).unwrap();
    assert!(
        locked.contains("name = \"fake\"\npkg-config = \"cmodfake\"\nversion = \"2.5.1\""),
        "{locked}"
    );
    assert!(realise_with(&s, &dir, &fake.env(), &["--locked"])
        .ok()
        .success());

    fake.set(41, "#define FAKE_BASE 2\n");
    let out = cmod_env(&dir, &s.store(), &["realise", "--locked"], &fake.env());
    let (code, err) = failure(&out);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("system library `fake` changed after locking"),
        "{err}"
    );
    assert!(err.contains("libcmodfake.a"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("cmod.lock")).unwrap(),
        locked,
        "the lock is untouched"
    );
    // Without --locked the lock follows the system, and the link is rebuilt.
    let r = realise_with(&s, &dir, &fake.env(), &[]).ok();
    assert_eq!(r.built(), ["app-0.1.0-app"]);
    assert_eq!(run(&r.target("app"), &[]), "44\n");
}

#[test]
fn a_test_linking_a_shared_system_library_finds_it_in_the_sandbox() {
    let s = Sandbox::new();
    let fake = FakeLib::shared();
    let dir = fake_project(&s);
    let manifest = std::fs::read_to_string(dir.join("cmod.toml")).unwrap();
    std::fs::write(
        dir.join("cmod.toml"),
        format!("{manifest}[[test]]\nname = \"fake\"\nmain = \"check.cpp\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("check.cpp"),
        "#include <cmodfake.h>\nint main() { return fake_value() == 40 ? 0 : 1; }\n",
    )
    .unwrap();
    let out = cmod_env(&dir, &s.store(), &["test"], &fake.env());
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("test fake ... ok"));
    // Links read the shared library (through its development link).
    let drvs = s.derivations(&dir, &fake.env());
    let link = host_files(derivation(&drvs, "app-0.1.0-app"));
    assert!(
        link.iter().any(|f| f.ends_with("lib/libcmodfake.so")),
        "{link:?}"
    );
}

/// Installing an unrelated `-dev` package (a real one, built here with dpkg-deb and
/// installed with dpkg) changes neither the toolchain's identity nor any derivation.
#[test]
fn installing_an_unrelated_dev_package_rebuilds_nothing() {
    assert!(
        is_root(),
        "this test installs a Debian package with dpkg and must run as root (as CI does)"
    );
    let s = Sandbox::new();
    let dir = s.copy_example("zlib");
    assert!(s.realise(&dir, &[]).ok().success());
    let identity = |s: &Sandbox| {
        let out = s.cmod(&dir, &["toolchain", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["identity"].as_str().unwrap().to_string()
    };
    let before = identity(&s);
    let package = UnrelatedDeb::install(&s);
    let after = s.realise(&dir, &[]).ok();
    assert!(
        after.built().is_empty(),
        "rebuilt after installing an unrelated package: {:?}",
        after.built()
    );
    assert_eq!(identity(&s), before);
    drop(package);
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc_geteuid() == 0 }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// `cmod-unrelated-dev`: a header in /usr/include, a static library and a `.pc` file in
/// the multiarch directories, as a -dev package ships them. Removed again on drop.
struct UnrelatedDeb;

impl UnrelatedDeb {
    fn install(s: &Sandbox) -> UnrelatedDeb {
        let root = s.dir.path().join("deb");
        let files = [
            ("usr/include/cmod-unrelated/unrelated.h", "int unrelated(void);\n"),
            ("usr/lib/x86_64-linux-gnu/libcmodunrelated.a", "!<arch>\n"),
            (
                "usr/lib/x86_64-linux-gnu/pkgconfig/cmodunrelated.pc",
                "Name: cmodunrelated\nDescription: x\nVersion: 1.0\nLibs: -lcmodunrelated\n",
            ),
            (
                "DEBIAN/control",
                "Package: cmod-unrelated-dev\nVersion: 1.0\nArchitecture: all\nMaintainer: cmod tests <tests@cmod.invalid>\nDescription: an unrelated development package for cmod's tests\n",
            ),
        ];
        for (f, text) in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let deb = s.dir.path().join("cmod-unrelated-dev.deb");
        let ok = |c: &mut Command| {
            let out = c.output().unwrap();
            assert!(
                out.status.success(),
                "{c:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ok(Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&root)
            .arg(&deb));
        ok(Command::new("dpkg").arg("-i").arg(&deb));
        assert!(Path::new("/usr/include/cmod-unrelated/unrelated.h").exists());
        UnrelatedDeb
    }
}

impl Drop for UnrelatedDeb {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["-r", "cmod-unrelated-dev"])
            .output();
    }
}
