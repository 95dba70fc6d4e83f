use std::collections::BTreeMap;

use cmod_schema::derivation::{Input, Output, DERIVATION_VERSION};
use cmod_schema::store_path::PathKind;

use super::*;

fn source_path(name: &str) -> StorePath {
    StorePath::compute(
        PathKind::Source,
        &ContentHash::of_file(false, name.as_bytes()),
        name,
        [],
    )
    .unwrap()
}

fn input(at: &str, role: InputRole, from: InputFrom) -> Input {
    Input {
        at: at.into(),
        role,
        from,
    }
}

fn source(at: &str) -> Input {
    let name = at.rsplit('/').next().unwrap();
    input(
        at,
        InputRole::Source,
        InputFrom::Path {
            path: source_path(name),
            sub: None,
        },
    )
}

fn bmi_of(at: &str, drv: &StorePath) -> Input {
    input(
        at,
        InputRole::Bmi,
        InputFrom::Drv {
            drv: drv.clone(),
            output: "bmi".into(),
        },
    )
}

fn args(text: &str) -> Vec<String> {
    text.split(' ').map(str::to_string).collect()
}

/// Adds derivations as `derive` emits them, returning each one's path.
#[derive(Default)]
struct Emitted(Derived);

impl Emitted {
    fn add(
        &mut self,
        name: &str,
        kind: StepKind,
        tool: Tool,
        args: Vec<String>,
        mut inputs: Vec<Input>,
    ) -> StorePath {
        inputs.sort();
        let mut args = args;
        if inputs.iter().any(|i| i.role == InputRole::Bmi) {
            args.insert(0, cmod_schema::derivation::MODULE_MAP_ARG.into());
        }
        let drv = Derivation {
            version: DERIVATION_VERSION,
            name: name.into(),
            kind,
            toolchain: ContentHash::of_file(false, b"toolchain"),
            tool,
            args,
            env: BTreeMap::new(),
            host: BTreeMap::new(),
            inputs,
            outputs: BTreeMap::from([(
                "out".to_string(),
                Output {
                    at: format!("out/{name}"),
                    module: None,
                    name: name.into(),
                },
            )]),
        };
        drv.validate().unwrap();
        let path = drv.drv_path().unwrap();
        self.0.derivations.insert(path.clone(), drv);
        path
    }

    fn bmi(&mut self, name: &str, flags: &str, src: &str, mut inputs: Vec<Input>) -> StorePath {
        inputs.push(source(src));
        let args = args(&format!(
            "{flags} -Xclang -fmodules-embed-all-files -x c++-module --precompile {src} -o out/{name}"
        ));
        self.add(name, StepKind::Bmi, Tool::Cxx, args, inputs)
    }

    fn object(&mut self, name: &str, flags: &str, compiled: &str, inputs: Vec<Input>) -> StorePath {
        let args = args(&format!("{flags} -c {compiled} -o out/{name}"));
        self.add(name, StepKind::Object, Tool::Cxx, args, inputs)
    }
}

const COMMON: &str =
    "-std=c++20 -stdlib=libstdc++ -O0 -DX=1 -Isrc/app/include -ffile-prefix-map=@builddir@=/build";

fn roots() -> HostRoots {
    HostRoots::new(
        [
            ("app".to_string(), PathBuf::from("/home/u/app")),
            ("dep".to_string(), PathBuf::from("/store/abc-dep-src")),
        ],
        Some(PathBuf::from("/usr/share/libc++/v1")),
    )
}

/// A dependency module `dep`, an application module `m` importing it (with a BMI variant
/// in another dialect), an implementation unit and a plain `main.cpp`, an archive.
fn sample() -> Derived {
    let mut e = Emitted::default();
    let dep_flags = "-std=c++20 -stdlib=libstdc++ -O0 -ffile-prefix-map=@builddir@=/build";
    let dep = e.bmi("dep.pcm", dep_flags, "src/dep/src/dep.cppm", vec![]);
    let dep_obj = e.object(
        "dep.o",
        dep_flags,
        "bmi/dep.pcm",
        vec![bmi_of("bmi/dep.pcm", &dep)],
    );
    let imports_dep = format!("{COMMON} -fmodule-file=dep=bmi/dep.pcm");
    let m = e.bmi(
        "m.pcm",
        &imports_dep,
        "src/app/src/m.cppm",
        vec![bmi_of("bmi/dep.pcm", &dep)],
    );
    e.bmi(
        "m-23.pcm",
        "-std=c++23 -stdlib=libstdc++ -O0",
        "src/app/src/m.cppm",
        vec![],
    );
    e.object(
        "m.o",
        &imports_dep,
        "bmi/m.pcm",
        vec![bmi_of("bmi/dep.pcm", &dep), bmi_of("bmi/m.pcm", &m)],
    );
    let imports_m = format!("{imports_dep} -fmodule-file=m=bmi/m.pcm -x c++");
    for unit in ["src/app/src/m.cpp", "src/app/main.cpp"] {
        e.object(
            &unit.replace('/', "-"),
            &imports_m,
            unit,
            vec![
                bmi_of("bmi/dep.pcm", &dep),
                bmi_of("bmi/m.pcm", &m),
                source(unit),
            ],
        );
    }
    e.add(
        "libdep.a",
        StepKind::Archive,
        Tool::Ar,
        args("rcsD out/libdep.a obj/dep.o"),
        vec![input(
            "obj/dep.o",
            InputRole::Object,
            InputFrom::Drv {
                drv: dep_obj,
                output: "obj".into(),
            },
        )],
    );
    e.0
}

#[test]
fn one_entry_per_unit_with_host_paths_and_the_builds_flags() {
    let db = compile_commands(&sample(), &roots(), Path::new("/usr/bin/clang++-19")).unwrap();
    let files: Vec<&str> = db.iter().map(|c| c.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "/home/u/app/main.cpp",
            "/home/u/app/src/m.cpp",
            "/home/u/app/src/m.cppm",
            "/store/abc-dep-src/src/dep.cppm",
        ]
    );
    let by_file = |f: &str| db.iter().find(|c| c.file == f).unwrap();
    // The interface: its own dialect (not the C++23 variant), compiled with -c, no BMIs.
    let interface = by_file("/home/u/app/src/m.cppm");
    assert_eq!(interface.directory, "/home/u/app");
    assert_eq!(
        interface.arguments,
        args("/usr/bin/clang++-19 -std=c++20 -stdlib=libstdc++ -O0 -DX=1 -I/home/u/app/include -x c++-module -c /home/u/app/src/m.cppm")
    );
    assert_eq!(
        by_file("/home/u/app/main.cpp").arguments,
        args("/usr/bin/clang++-19 -std=c++20 -stdlib=libstdc++ -O0 -DX=1 -I/home/u/app/include -x c++ -c /home/u/app/main.cpp")
    );
    // A dependency's unit sits in its own directory (a git checkout in the store).
    let dep = by_file("/store/abc-dep-src/src/dep.cppm");
    assert_eq!(dep.directory, "/store/abc-dep-src");
    assert_eq!(
        dep.arguments,
        args("/usr/bin/clang++-19 -std=c++20 -stdlib=libstdc++ -O0 -x c++-module -c /store/abc-dep-src/src/dep.cppm")
    );
    // Nothing of the build directory is left.
    for arg in db.iter().flat_map(|c| &c.arguments) {
        assert!(
            ![
                "src/",
                "bmi/",
                "out/",
                "obj/",
                "-fmodule-file",
                "@builddir@",
                "-o"
            ]
            .iter()
            .any(|bad| arg.starts_with(bad) || arg.contains("@builddir@")),
            "{arg}"
        );
    }
    let json = String::from_utf8(to_json(&db).unwrap()).unwrap();
    let back: Vec<CompileCommand> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, db);
    assert!(json.ends_with("]\n"), "{json}");
}

#[test]
fn the_standard_library_modules_map_to_the_toolchains_sources() {
    let mut e = Emitted::default();
    let flags = "-std=c++20 -stdlib=libc++ -isystemtoolchain/std -Wno-reserved-module-identifier -ffile-prefix-map=@builddir@=/build";
    let std_bmi = e.bmi("std.pcm", flags, "toolchain/std/std.cppm", vec![]);
    // The source input is the whole directory, as derive emits it.
    let drv = e.0.derivations.get_mut(&std_bmi).unwrap();
    drv.inputs = vec![source("toolchain/std")];
    let db = compile_commands(&e.0, &roots(), Path::new("/usr/bin/clang++-19")).unwrap();
    assert_eq!(db.len(), 1);
    assert_eq!(db[0].file, "/usr/share/libc++/v1/std.cppm");
    assert_eq!(db[0].directory, "/usr/share/libc++/v1");
    assert_eq!(
        db[0].arguments,
        args("/usr/bin/clang++-19 -std=c++20 -stdlib=libc++ -isystem/usr/share/libc++/v1 -Wno-reserved-module-identifier -x c++-module -c /usr/share/libc++/v1/std.cppm")
    );
}

#[test]
fn steps_it_cannot_place_are_errors_naming_the_derivation() {
    let clang = Path::new("/usr/bin/clang++-19");
    // A source of a package the roots do not know.
    let mut e = Emitted::default();
    e.object(
        "x.o",
        "-x c++",
        "src/elsewhere/x.cpp",
        vec![source("src/elsewhere/x.cpp")],
    );
    let err = compile_commands(&e.0, &roots(), clang).unwrap_err();
    assert!(
        matches!(&err, CompdbError::UnknownSource { name, at } if name == "x.o" && at == "src/elsewhere/x.cpp"),
        "{err}"
    );
    assert!(err.is_internal());
    // An object step without a source or a BMI of its own.
    let mut e = Emitted::default();
    e.object("y.o", "-x c++", "y.cpp", vec![]);
    let err = compile_commands(&e.0, &roots(), clang).unwrap_err();
    assert!(
        matches!(&err, CompdbError::NoCompiledInput { name } if name == "y.o"),
        "{err}"
    );
    // An object step compiling a BMI whose derivation is missing.
    let mut e = Emitted::default();
    let m = e.bmi("m.pcm", "-std=c++20", "src/app/src/m.cppm", vec![]);
    e.object(
        "m.o",
        "-std=c++20",
        "bmi/m.pcm",
        vec![bmi_of("bmi/m.pcm", &m)],
    );
    e.0.derivations.remove(&m);
    let err = compile_commands(&e.0, &roots(), clang).unwrap_err();
    assert!(
        matches!(&err, CompdbError::MissingDerivation { name, drv, .. } if name == "m.o" && *drv == m),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn a_path_json_cannot_hold_is_a_users_error() {
    use std::os::unix::ffi::OsStrExt;
    let bad = PathBuf::from(std::ffi::OsStr::from_bytes(b"/home/\xff/app"));
    let roots = HostRoots::new(
        [
            ("app".to_string(), bad.clone()),
            ("dep".to_string(), bad.clone()),
        ],
        None,
    );
    let err = compile_commands(&sample(), &roots, Path::new("/usr/bin/clang++-19")).unwrap_err();
    assert!(
        matches!(&err, CompdbError::NotUtf8(p) if p.starts_with(&bad)),
        "{err}"
    );
    assert!(!err.is_internal());
}

#[test]
fn a_stamp_holds_for_the_same_evaluation_and_unchanged_file_only() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let out = t.path().join(FILE_NAME);
    let fingerprint = ContentHash::of_file(false, b"evaluation");
    assert!(!is_current(&cache, &out, &fingerprint));
    std::fs::write(&out, b"[]\n").unwrap();
    remember(&cache, &out, &fingerprint, b"[]\n");
    assert!(is_current(&cache, &out, &fingerprint));
    let other = ContentHash::of_file(false, b"another evaluation");
    assert!(!is_current(&cache, &out, &other));
    assert!(!is_current(
        &cache,
        &t.path().join("elsewhere.json"),
        &fingerprint
    ));
    std::fs::write(&out, b"[ ]\n").unwrap();
    assert!(!is_current(&cache, &out, &fingerprint), "an edited file");
    std::fs::remove_file(&out).unwrap();
    assert!(!is_current(&cache, &out, &fingerprint), "a deleted file");
}
