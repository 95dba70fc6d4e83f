use super::*;
use crate::package::LoadOptions;
use crate::sources::find_sources;
use crate::targets::package_targets;

struct Graph {
    _dir: tempfile::TempDir,
    packages: PackageGraph,
    targets: Vec<PackageTargets>,
    settings: Settings,
}

/// Packages under a temp dir, `root` first; each is (dir, manifest body, files).
fn graph(packages: &[(&str, &str, &[&str])], profile: ProfileName) -> Graph {
    let t = tempfile::tempdir().unwrap();
    for (dir, body, files) in packages {
        let root = t.path().join(dir);
        for f in *files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let text = format!("[package]\nname = \"{dir}\"\nversion = \"1.0.0\"\n{body}");
        std::fs::write(root.join("cmod.toml"), text).unwrap();
    }
    let packages =
        PackageGraph::load(&t.path().join(packages[0].0), &LoadOptions::default()).unwrap();
    let targets: Vec<PackageTargets> = packages
        .packages
        .iter()
        .map(|p| package_targets(&p.file, &find_sources(&p.file, true).unwrap()).unwrap())
        .collect();
    let files = FileCache::in_memory();
    let settings = Settings::new(&packages, &targets, profile, Stdlib::Libstdcxx, &files).unwrap();
    Graph {
        _dir: t,
        packages,
        targets,
        settings,
    }
}

impl Graph {
    fn id(&self, name: &str) -> PackageId {
        self.packages
            .packages
            .iter()
            .position(|p| p.name == name)
            .unwrap()
    }

    /// The flags of `rel` in `owner` of package `name`, rendered as a build step sees them.
    fn flags(&mut self, name: &str, owner: Owner, rel: &str, lang: Lang) -> Vec<String> {
        let p = self.id(name);
        let f = self
            .settings
            .unit_flags(&self.packages, &self.targets, p, owner, rel, lang);
        let names: Vec<String> = self
            .packages
            .packages
            .iter()
            .map(|p| p.name.clone())
            .collect();
        f.render(&|at: &PkgPath| format!("src/{}/{}", names[at.package], at.rel))
    }
}

fn has(flags: &[String], f: &str) -> bool {
    flags.iter().any(|x| x == f)
}

#[test]
fn usage_requirements_reach_users_and_private_settings_do_not() {
    let app = "[[bin]]\nname = \"app\"\nmain = \"main.cpp\"\n[dependencies]\nmid = { path = \"../mid\" }\n";
    let mid = "[lib]\npublic-defines = [\"MID\"]\n[dependencies]\nbase = { path = \"../base\", public = true }\nhidden = { path = \"../hidden\" }\n";
    let base = "[lib]\npublic-include-dirs = [\"include\"]\npublic-defines = [\"BASE=1\"]\ndefines = [\"BASE_PRIVATE\"]\n";
    let hidden = "[lib]\npublic-defines = [\"HIDDEN\"]\n";
    let mut g = graph(
        &[
            ("app", app, &["main.cpp"]),
            ("mid", mid, &["src/m.cppm"]),
            ("base", base, &["src/b.cppm", "include/base.h"]),
            ("hidden", hidden, &["src/h.cppm"]),
        ],
        ProfileName::Dev,
    );
    let base_own = g.flags("base", Owner::Lib(0), "src/b.cppm", Lang::Cxx);
    assert!(
        has(&base_own, "-DBASE_PRIVATE") && has(&base_own, "-DBASE=1"),
        "{base_own:?}"
    );
    assert!(
        has(&base_own, "-Isrc/base/include"),
        "own public dirs apply to the library itself"
    );
    let mid_own = g.flags("mid", Owner::Lib(0), "src/m.cppm", Lang::Cxx);
    for f in ["-DMID", "-DBASE=1", "-Isrc/base/include", "-DHIDDEN"] {
        assert!(has(&mid_own, f), "{f} in {mid_own:?}");
    }
    assert!(
        !has(&mid_own, "-DBASE_PRIVATE"),
        "private defines stay in their target"
    );
    // app depends on mid: it gets mid's, and base's through mid's public dependency, but
    // not hidden's (a private dependency of mid).
    let app_main = g.flags("app", Owner::Bin(0), "main.cpp", Lang::Cxx);
    for f in ["-DMID", "-DBASE=1", "-Isrc/base/include"] {
        assert!(has(&app_main, f), "{f} in {app_main:?}");
    }
    assert!(
        !has(&app_main, "-DHIDDEN") && !has(&app_main, "-DBASE_PRIVATE"),
        "{app_main:?}"
    );
}

#[test]
fn libraries_of_one_package_pass_requirements_through_public_uses() {
    let body = "[[lib]]\nname = \"core\"\nsources = [\"core/*\"]\npublic-defines = [\"CORE\"]\npublic-include-dirs = [\"core/include\"]\n\
                [[lib]]\nname = \"text\"\nsources = [\"text/*\"]\npublic-uses = [\"core\"]\ndefines = [\"TEXT_PRIVATE\"]\n\
                [[lib]]\nname = \"io\"\nsources = [\"io/*\"]\nuses = [\"core\"]\npublic-defines = [\"IO\"]\n\
                [[bin]]\nname = \"a\"\nmain = \"a.cpp\"\nuses = [\"text\"]\n\
                [[bin]]\nname = \"b\"\nmain = \"b.cpp\"\nuses = [\"io\"]\n";
    let mut g = graph(
        &[(
            "pkg",
            body,
            &["core/c.cppm", "text/t.cppm", "io/i.cppm", "a.cpp", "b.cpp"],
        )],
        ProfileName::Dev,
    );
    let a = g.flags("pkg", Owner::Bin(0), "a.cpp", Lang::Cxx);
    assert!(
        has(&a, "-DCORE") && has(&a, "-Isrc/pkg/core/include"),
        "text passes core on: {a:?}"
    );
    assert!(!has(&a, "-DTEXT_PRIVATE"), "{a:?}");
    let b = g.flags("pkg", Owner::Bin(1), "b.cpp", Lang::Cxx);
    assert!(has(&b, "-DIO"), "{b:?}");
    assert!(!has(&b, "-DCORE"), "io uses core privately: {b:?}");
    let io = g.flags("pkg", Owner::Lib(2), "io/i.cppm", Lang::Cxx);
    assert!(has(&io, "-DCORE") && has(&io, "-DIO"), "{io:?}");
}

#[test]
fn overrides_apply_to_matching_sources_only_and_languages_get_their_flags() {
    let body = "[toolchain]\nc-standard = 11\n[lib]\ncxxflags = [\"-fno-exceptions\", \"-Wall\"]\ncflags = [\"-Wpedantic\"]\n\
                [[lib.overrides]]\nfiles = [\"src/legacy/*\"]\ndefines = [\"LEGACY\"]\ncflags = [\"-w\"]\ninclude-dirs = [\"compat\"]\n";
    let mut g = graph(
        &[("pkg", body, &["src/a.cpp", "src/legacy/old.c", "src/new.c"])],
        ProfileName::Dev,
    );
    let cxx = g.flags("pkg", Owner::Lib(0), "src/a.cpp", Lang::Cxx);
    assert_eq!(
        &cxx[..3],
        ["-std=c++20", "-stdlib=libstdc++", "-fno-exceptions"],
        "dialect first: {cxx:?}"
    );
    assert!(
        has(&cxx, "-Wall") && !has(&cxx, "-Wpedantic") && !has(&cxx, "-DLEGACY"),
        "{cxx:?}"
    );
    let old = g.flags("pkg", Owner::Lib(0), "src/legacy/old.c", Lang::C);
    assert_eq!(old[0], "-std=c11");
    for f in ["-Wpedantic", "-w", "-DLEGACY", "-Isrc/pkg/compat"] {
        assert!(has(&old, f), "{f} in {old:?}");
    }
    assert!(
        !has(&old, "-fno-exceptions") && !has(&old, "-stdlib=libstdc++"),
        "{old:?}"
    );
    let new = g.flags("pkg", Owner::Lib(0), "src/new.c", Lang::C);
    assert!(!has(&new, "-DLEGACY") && !has(&new, "-w"), "{new:?}");
}

#[test]
fn profiles_give_optimisation_debug_and_defines() {
    let mut dev = graph(&[("pkg", "[lib]\n", &["src/a.cpp"])], ProfileName::Dev);
    let f = dev.flags("pkg", Owner::Lib(0), "src/a.cpp", Lang::Cxx);
    assert!(
        has(&f, "-O0") && has(&f, "-g") && !has(&f, "-DNDEBUG"),
        "{f:?}"
    );
    let mut release = graph(&[("pkg", "[lib]\n", &["src/a.cpp"])], ProfileName::Release);
    let f = release.flags("pkg", Owner::Lib(0), "src/a.cpp", Lang::Cxx);
    assert!(
        has(&f, "-O3") && !has(&f, "-g") && has(&f, "-DNDEBUG"),
        "{f:?}"
    );
    let body = "[lib]\n[profile.release]\nopt-level = \"s\"\ndefines = [\"FAST\"]\ncflags = [\"-fno-plt\"]\n";
    let mut custom = graph(&[("pkg", body, &["src/a.c"])], ProfileName::Release);
    let f = custom.flags("pkg", Owner::Lib(0), "src/a.c", Lang::C);
    assert!(
        has(&f, "-Os") && has(&f, "-DFAST") && !has(&f, "-DNDEBUG") && has(&f, "-fno-plt"),
        "{f:?}"
    );
}

#[test]
fn links_and_ldflags_of_linked_libraries_reach_the_link() {
    let app = "[[bin]]\nname = \"app\"\nmain = \"main.cpp\"\nldflags = [\"-Wl,--as-needed\"]\n[dependencies]\nworker = { path = \"../worker\" }\n";
    let worker =
        "[lib]\nlinks = [\"pthread\"]\nldflags = [\"-Wl,-z,now\"]\n[build]\nlinks = [\"m\"]\n";
    let g = graph(
        &[
            ("app", app, &["main.cpp"]),
            ("worker", worker, &["src/w.cpp"]),
        ],
        ProfileName::Dev,
    );
    let (app_id, worker_id) = (g.id("app"), g.id("worker"));
    let link = g.settings.link(
        app_id,
        Owner::Bin(0),
        &[(worker_id, 0)],
        &[app_id, worker_id],
    );
    for w in ["-Wl,--as-needed", "-Wl,-z,now", "-lpthread", "-lm"] {
        assert!(link.args.iter().any(|a| a == w), "{w} in {:?}", link.args);
    }
    let names: Vec<&str> = link.system.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["pthread", "m"]);
}
