//! Asking the compiler driver about itself: version, resource dir, header search path,
//! the link line it would run, and the shared libraries its binaries load. Only used when
//! the cached toolchain description is stale.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cmod_schema::manifest::Stdlib;

use crate::error::{ErrorKind, EvalError};

/// What the driver told us.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Full `--version` output.
    pub version_output: String,
    /// First line of it.
    pub version_text: String,
    pub version: semver::Version,
    /// `InstalledDir:` of the driver.
    pub installed_dir: PathBuf,
    pub resource_dir: PathBuf,
    /// `#include <...>` search directories, in order.
    pub include_dirs: Vec<PathBuf>,
    /// The GCC installation the driver selected (its libstdc++, crt files, libgcc).
    pub gcc_install: Option<PathBuf>,
    /// The linker the driver runs.
    pub linker: PathBuf,
    /// `-dynamic-linker` of the link line.
    pub dynamic_linker: Option<PathBuf>,
    /// Absolute object files on the link line (crt files).
    pub link_objects: Vec<PathBuf>,
    /// `-L` directories, in order.
    pub lib_dirs: Vec<PathBuf>,
    /// `-l` names, deduplicated, in order.
    pub libs: Vec<String>,
}

fn run(cxx: &Path, args: &[&str]) -> Result<std::process::Output, EvalError> {
    Command::new(cxx)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| {
            EvalError::new(
                ErrorKind::Toolchain,
                format!("cannot run the compiler `{}`: {e}", cxx.display()),
            )
        })
}

/// Run the driver a few times (concurrently: each run is mostly process start-up) and
/// parse what it prints.
pub fn probe(cxx: &Path, stdlib: Stdlib) -> Result<Probe, EvalError> {
    let runs = ProbeRuns::run(cxx, stdlib)?;
    let (version_output, version_text, version) = clang_version(cxx, runs.version?)?;
    let installed_dir = version_output
        .lines()
        .find_map(|l| l.strip_prefix("InstalledDir:"))
        .map(|s| PathBuf::from(s.trim()))
        .or_else(|| cxx.canonicalize().ok()?.parent().map(Path::to_path_buf))
        .unwrap_or_default();

    let out = runs.resource?;
    let resource_dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());

    let out = runs.verbose?;
    let verbose = String::from_utf8_lossy(&out.stderr);
    let include_dirs = parse_include_dirs(&verbose);
    let gcc_install = verbose
        .lines()
        .find_map(|l| l.strip_prefix("Selected GCC installation:"))
        .map(|d| PathBuf::from(d.trim()));

    let out = runs.link?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let link_line = stderr
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('"'))
        .unwrap_or("");
    let words = split_quoted(link_line);
    let mut p = Probe {
        version_output,
        version_text,
        version,
        installed_dir,
        resource_dir,
        include_dirs,
        gcc_install,
        linker: PathBuf::new(),
        dynamic_linker: None,
        link_objects: Vec::new(),
        lib_dirs: Vec::new(),
        libs: Vec::new(),
    };
    parse_link_line(&words, &runs.object, &mut p);
    if p.linker.as_os_str().is_empty() {
        return Err(EvalError::new(
            ErrorKind::Toolchain,
            format!("`{} -fuse-ld=lld -###` printed no link line", cxx.display()),
        )
        .help("install lld: `apt-get install lld-19`"));
    }
    Ok(p)
}

/// What the driver printed for each probe.
struct ProbeRuns {
    /// `--version`.
    version: Result<Output, EvalError>,
    /// `-print-resource-dir`.
    resource: Result<Output, EvalError>,
    /// `-E -v` of an empty C++ file: the include search list.
    verbose: Result<Output, EvalError>,
    /// `-###` of a link with lld: the link line.
    link: Result<Output, EvalError>,
    /// The (deleted) object file the link line names.
    object: String,
}

impl ProbeRuns {
    /// Run the four probes at once.
    fn run(cxx: &Path, stdlib: Stdlib) -> Result<ProbeRuns, EvalError> {
        static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = std::env::temp_dir().join(format!("cmod-probe-{}-{n}.o", std::process::id()));
        std::fs::write(&tmp, b"").map_err(|e| EvalError::io(&tmp, "write", e))?;
        let object = tmp.to_string_lossy().into_owned();
        let stdlib_flag = format!("-stdlib={}", stdlib.as_str());
        let verbose_args = [
            stdlib_flag.as_str(),
            "-E",
            "-x",
            "c++",
            "-v",
            "/dev/null",
            "-o",
            "/dev/null",
        ];
        let link_args = [
            stdlib_flag.as_str(),
            "-fuse-ld=lld",
            "-###",
            &object,
            "-o",
            "/dev/null",
        ];
        let runs = std::thread::scope(|s| {
            let version = s.spawn(|| run(cxx, &["--version"]));
            let resource = s.spawn(|| run(cxx, &["-print-resource-dir"]));
            let verbose = s.spawn(|| run(cxx, &verbose_args));
            let link = run(cxx, &link_args);
            let join = |h: std::thread::ScopedJoinHandle<'_, _>| {
                h.join().unwrap_or_else(|_| {
                    Err(EvalError::new(
                        ErrorKind::Internal,
                        "a compiler probe thread panicked",
                    ))
                })
            };
            ProbeRuns {
                version: join(version),
                resource: join(resource),
                verbose: join(verbose),
                link,
                object: object.clone(),
            }
        });
        let _ = std::fs::remove_file(&tmp);
        Ok(runs)
    }
}

/// The driver's `--version` output, its first line, and the clang version in it; an
/// error when the driver is not clang.
fn clang_version(cxx: &Path, out: Output) -> Result<(String, String, semver::Version), EvalError> {
    let version_output = String::from_utf8_lossy(&out.stdout).into_owned();
    let version_text = version_output
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if !out.status.success() || !version_text.contains("clang version") {
        return Err(EvalError::new(
            ErrorKind::Toolchain,
            format!(
                "`{}` is not clang (its --version says `{version_text}`)",
                cxx.display()
            ),
        )
        .help("cmod builds C++20 modules with clang; set [toolchain] compiler = \"clang++-19\""));
    }
    let version = parse_clang_version(&version_text).ok_or_else(|| {
        EvalError::new(
            ErrorKind::Toolchain,
            format!("cannot read a version from `{version_text}`"),
        )
    })?;
    Ok((version_output, version_text, version))
}

/// `Debian clang version 19.1.7 (3~deb12u1)` → 19.1.7.
pub fn parse_clang_version(line: &str) -> Option<semver::Version> {
    let rest = &line[line.find("clang version ")? + "clang version ".len()..];
    let token: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts: Vec<u64> = token.split('.').filter_map(|p| p.parse().ok()).collect();
    parts.resize(3, 0);
    Some(semver::Version::new(parts[0], parts[1], parts[2]))
}

fn parse_include_dirs(stderr: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut inside = false;
    for line in stderr.lines() {
        if line.starts_with("#include <...> search starts here:") {
            inside = true;
        } else if line.starts_with("End of search list.") {
            break;
        } else if inside {
            let d = line.trim().trim_end_matches(" (framework directory)");
            dirs.push(PathBuf::from(d));
        }
    }
    dirs
}

/// Split a `-###` line of double-quoted words.
pub fn split_quoted(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut w = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        w.push(n);
                    }
                }
                '"' => break,
                c => w.push(c),
            }
        }
        words.push(w);
    }
    words
}

fn parse_link_line(words: &[String], own_input: &str, p: &mut Probe) {
    let Some((linker, args)) = words.split_first() else {
        return;
    };
    p.linker = PathBuf::from(linker);
    let mut it = args.iter();
    while let Some(w) = it.next() {
        if w == "-dynamic-linker" {
            p.dynamic_linker = it.next().map(PathBuf::from);
        } else if w == "-o" || w == "-m" {
            it.next();
        } else if let Some(dir) = w.strip_prefix("-L") {
            p.lib_dirs.push(PathBuf::from(dir));
        } else if let Some(lib) = w.strip_prefix("-l") {
            if !p.libs.iter().any(|l| l == lib) {
                p.libs.push(lib.to_string());
            }
        } else if w.starts_with('/') && w != own_input {
            p.link_objects.push(PathBuf::from(w));
        }
    }
}

/// The shared libraries `binary` loads, as absolute paths, via `ldd`.
pub fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let Ok(out) = Command::new("ldd").arg(binary).env("LC_ALL", "C").output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rhs)) => rhs.trim().split(' ').next()?,
                None => l.split(' ').next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Resolve `-l<name>` the way the linker does (shared first, then static), following
/// GNU linker scripts (`GROUP (...)`, `INPUT (...)`) to the files they name.
pub fn resolve_lib(name: &str, lib_dirs: &[PathBuf], out: &mut Vec<PathBuf>) {
    for dir in lib_dirs {
        for candidate in [format!("lib{name}.so"), format!("lib{name}.a")] {
            let p = dir.join(&candidate);
            if p.is_file() {
                add_lib_file(&p, lib_dirs, out);
                return;
            }
        }
    }
}

fn add_lib_file(path: &Path, lib_dirs: &[PathBuf], out: &mut Vec<PathBuf>) {
    if out.iter().any(|p| p == path) {
        return;
    }
    out.push(path.to_path_buf());
    let Ok(bytes) = std::fs::read(path) else {
        return;
    };
    if bytes.len() > 64 * 1024 || bytes.starts_with(b"\x7fELF") || bytes.starts_with(b"!<arch>") {
        return;
    }
    let text = String::from_utf8_lossy(&bytes);
    if !(text.contains("GROUP") || text.contains("INPUT")) {
        return;
    }
    let script_dir = path.parent().unwrap_or(Path::new("/"));
    let body: String = strip_c_comments(&text);
    for token in body.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',') {
        if let Some(lib) = token.strip_prefix("-l") {
            resolve_lib(lib, lib_dirs, out);
        } else if token.starts_with('/') {
            add_lib_file(Path::new(token), lib_dirs, out);
        } else if token.contains(".so") || token.ends_with(".a") {
            let local = script_dir.join(token);
            if local.is_file() {
                add_lib_file(&local, lib_dirs, out);
            } else if let Some(found) = lib_dirs.iter().map(|d| d.join(token)).find(|p| p.is_file())
            {
                add_lib_file(&found, lib_dirs, out);
            }
        }
    }
}

fn strip_c_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        rest = match rest[start..].find("*/") {
            Some(end) => &rest[start + end + 2..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_clang_version("Debian clang version 19.1.7 (3~deb12u1)"),
            Some(semver::Version::new(19, 1, 7))
        );
        assert_eq!(
            parse_clang_version("clang version 18.1"),
            Some(semver::Version::new(18, 1, 0))
        );
        assert_eq!(parse_clang_version("g++ (Debian 12.2.0-14) 12.2.0"), None);
    }

    #[test]
    fn link_line_parsing() {
        let line = r#" "/usr/lib/llvm-19/bin/ld.lld" "--build-id" "-m" "elf_x86_64" "-pie" "-dynamic-linker" "/lib64/ld-linux-x86-64.so.2" "-o" "xx" "/lib/x86_64-linux-gnu/Scrt1.o" "-L/usr/lib/gcc/x86_64-linux-gnu/12" "/tmp/in.o" "-lstdc++" "-lm" "-lgcc_s" "-lgcc_s" "/lib/x86_64-linux-gnu/crtn.o""#;
        let words = split_quoted(line);
        let mut p = Probe {
            version_output: String::new(),
            version_text: String::new(),
            version: semver::Version::new(0, 0, 0),
            installed_dir: PathBuf::new(),
            resource_dir: PathBuf::new(),
            include_dirs: vec![],
            gcc_install: None,
            linker: PathBuf::new(),
            dynamic_linker: None,
            link_objects: vec![],
            lib_dirs: vec![],
            libs: vec![],
        };
        parse_link_line(&words, "/tmp/in.o", &mut p);
        assert_eq!(p.linker, Path::new("/usr/lib/llvm-19/bin/ld.lld"));
        assert_eq!(
            p.dynamic_linker.as_deref(),
            Some(Path::new("/lib64/ld-linux-x86-64.so.2"))
        );
        assert_eq!(p.libs, ["stdc++", "m", "gcc_s"]);
        assert_eq!(p.link_objects.len(), 2);
        assert_eq!(
            p.lib_dirs,
            [PathBuf::from("/usr/lib/gcc/x86_64-linux-gnu/12")]
        );
    }

    #[test]
    fn include_dir_parsing() {
        let text = "junk\n#include \"...\" search starts here:\n#include <...> search starts here:\n /a/b\n /c (framework directory)\nEnd of search list.\n /nope\n";
        assert_eq!(
            parse_include_dirs(text),
            [PathBuf::from("/a/b"), PathBuf::from("/c")]
        );
    }

    #[test]
    fn linker_scripts_are_followed() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::write(d.join("libreal.so.1"), b"\x7fELF....").unwrap();
        std::fs::write(d.join("libother.a"), b"!<arch>\n").unwrap();
        std::fs::write(
            d.join("libfoo.so"),
            "/* GNU ld script */\nGROUP ( libreal.so.1 -lother )\n",
        )
        .unwrap();
        let mut out = Vec::new();
        resolve_lib("foo", &[d.to_path_buf()], &mut out);
        let names: Vec<String> = out
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["libfoo.so", "libreal.so.1", "libother.a"]);
    }
}
