//! Running `clang-scan-deps`: one `-format=p1689` call over a compilation database
//! for a batch of units, each also writing a depfile (`-MMD`, which clang-scan-deps
//! treats as `-MD`: system headers are listed too); and the early run
//! ([`Prescan`]) that overlaps toolchain identification.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cmod_schema::content::ContentHash;
use cmod_schema::diag::Location;
use cmod_schema::toolchain::ToolchainInfo;

use crate::error::{ErrorKind, EvalError};

/// One unit to scan.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScanItem {
    /// Package-relative path.
    pub rel: String,
    /// The unit's content hash.
    pub hash: ContentHash,
    /// `-x <language>` and the preprocessor-relevant flags, with package paths as a build
    /// step sees them (`src/<package>/...`): what the scan key covers.
    pub args: Vec<String>,
    /// The same flags with package paths on the host, for running the scanner.
    pub host_args: Vec<String>,
    /// Where the unit's bytes are when not at `rel` in the package (a generated unit).
    pub source: Option<PathBuf>,
}

impl ScanItem {
    /// The unit's file on this machine, for a package rooted at `root`.
    pub fn host_file(&self, root: &Path) -> PathBuf {
        self.source.clone().unwrap_or_else(|| root.join(&self.rel))
    }
}

/// What the scanner reported for one unit, before its dependencies are sorted into
/// package headers and toolchain files (which needs the toolchain's closure).
#[derive(Debug, Clone)]
pub struct RawRule {
    pub(crate) provides: Option<(String, bool)>,
    pub(crate) requires: Vec<String>,
    /// The depfile's prerequisites, as written.
    pub(crate) deps: Vec<String>,
}

/// A scan of every item of a package run *while* the toolchain is being identified (its
/// identity, which keys the scan cache, takes a few hundred milliseconds to hash on an
/// empty cache). The scanner itself needs only the driver and the scanner binary, so
/// the two overlap; the results are used only if identification finds the same tools.
#[derive(Debug, Clone)]
pub struct Prescan {
    cxx: PathBuf,
    scan_deps: PathBuf,
    items: Vec<(String, ContentHash)>,
    pub(crate) rules: Vec<RawRule>,
}

impl Prescan {
    /// Scan `items` with the given tools; `None` if anything goes wrong (the regular
    /// scan then runs and reports it properly).
    pub fn run(cxx: &Path, scan_deps: &Path, root: &Path, items: &[ScanItem]) -> Option<Prescan> {
        if items.is_empty() {
            return None;
        }
        let batch: Vec<&ScanItem> = items.iter().collect();
        let rules = run_scanner(cxx, scan_deps, root, &batch, &[]).ok()?;
        Some(Prescan {
            cxx: cxx.to_path_buf(),
            scan_deps: scan_deps.to_path_buf(),
            items: items.iter().map(|i| (i.rel.clone(), i.hash)).collect(),
            rules,
        })
    }

    pub(crate) fn applies_to(&self, toolchain: &ToolchainInfo, items: &[ScanItem]) -> bool {
        self.cxx == toolchain.cxx
            && self.scan_deps == toolchain.scan_deps
            && self.items.len() == items.len()
            && self
                .items
                .iter()
                .zip(items)
                .all(|((rel, hash), i)| *rel == i.rel && *hash == i.hash)
    }
}

/// Run the scanner over `batch`. `rewrites[n]`, where present, is the text the scanner
/// reads for item `n` instead of its file (a unit with header-unit imports, see
/// `scan::header_imports`); what the scanner says about the copy is said of the unit.
pub(crate) fn run_scanner(
    cxx: &Path,
    scan_deps: &Path,
    root: &Path,
    batch: &[&ScanItem],
    rewrites: &[Option<Vec<u8>>],
) -> Result<Vec<RawRule>, EvalError> {
    let work = tempdir_for_scan()?;
    let db_path = work.path.join("compile_commands.json");
    let copies = write_rewrites(&work.path, batch, rewrites)?;
    let db = scan_database(cxx, root, &work.path, batch, &copies);
    std::fs::write(&db_path, serde_json::to_vec(&db).unwrap_or_default())
        .map_err(|e| EvalError::io(&db_path, "write", e))?;
    let out = Command::new(scan_deps)
        .arg("-format=p1689")
        .arg("-compilation-database")
        .arg(&db_path)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| {
            EvalError::new(
                ErrorKind::Toolchain,
                format!("cannot run `{}`: {e}", scan_deps.display()),
            )
        })?;
    let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for (copy, item) in copies.iter().zip(batch) {
        if let Some(copy) = copy {
            stderr = stderr.replace(&copy.to_string_lossy().into_owned(), &item.rel);
        }
    }
    if !out.status.success() {
        return Err(scan_failure(root, &stderr));
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        EvalError::new(
            ErrorKind::Internal,
            format!("clang-scan-deps printed invalid JSON: {e}"),
        )
    })?;
    let mut by_output: BTreeMap<String, &serde_json::Value> = BTreeMap::new();
    for rule in json["rules"].as_array().into_iter().flatten() {
        if let Some(o) = rule["primary-output"].as_str() {
            by_output.insert(o.to_string(), rule);
        }
    }
    let mut results = Vec::with_capacity(batch.len());
    for (n, item) in batch.iter().enumerate() {
        let rule = by_output.get(&format!("{n}.o")).ok_or_else(|| {
            EvalError::new(
                ErrorKind::Internal,
                format!("clang-scan-deps reported nothing for `{}`", item.rel),
            )
        })?;
        let depfile = work.path.join(format!("{n}.d"));
        let mut deps = read_depfile(scan_deps, root, &item.rel, &depfile)?;
        if let Some(Some(copy)) = copies.get(n) {
            let copy = copy.to_string_lossy();
            for d in deps.iter_mut().filter(|d| **d == copy) {
                d.clone_from(&item.rel);
            }
        }
        results.push(raw_rule(rule, deps));
    }
    Ok(results)
}

/// The compilation database the scanner reads for `batch`: unit `n` compiles to `n.o`
/// and writes its prerequisites to `<work>/n.d`.
fn scan_database(
    cxx: &Path,
    root: &Path,
    work: &Path,
    batch: &[&ScanItem],
    copies: &[Option<PathBuf>],
) -> Vec<serde_json::Value> {
    let mut db = Vec::with_capacity(batch.len());
    for (n, item) in batch.iter().enumerate() {
        // The item's flags start with `-x <language>`.
        let mut args = vec![cxx.to_string_lossy().into_owned()];
        let copy = copies.get(n).and_then(Option::as_ref);
        if let Some(dir) = copy.and(root.join(&item.rel).parent().map(Path::to_path_buf)) {
            // Quoted includes of the copy are searched for beside the original first.
            args.push(format!("-iquote{}", dir.display()));
        }
        args.extend(item.host_args.iter().cloned());
        let dep = work.join(format!("{n}.d"));
        let file = copy.map_or_else(|| item.rel.clone(), |c| c.to_string_lossy().into_owned());
        args.extend([
            "-c".into(),
            file.clone(),
            "-o".into(),
            format!("{n}.o"),
            "-MMD".into(),
            "-MF".into(),
            dep.to_string_lossy().into_owned(),
            "-MT".into(),
            format!("{n}.o"),
        ]);
        db.push(serde_json::json!({
            "directory": root,
            "file": file,
            "output": format!("{n}.o"),
            "arguments": args,
        }));
    }
    db
}

/// Write each rewritten text into its own directory of `work` under the unit's file
/// name; the copies' paths, by item.
fn write_rewrites(
    work: &Path,
    batch: &[&ScanItem],
    rewrites: &[Option<Vec<u8>>],
) -> Result<Vec<Option<PathBuf>>, EvalError> {
    let mut copies = Vec::with_capacity(batch.len());
    for (n, item) in batch.iter().enumerate() {
        let Some(Some(text)) = rewrites.get(n) else {
            // A generated unit is read where it was written.
            copies.push(item.source.clone());
            continue;
        };
        let dir = work.join(format!("unit-{n}"));
        let name = Path::new(&item.rel).file_name().unwrap_or_default();
        let copy = dir.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| EvalError::io(&dir, "create", e))?;
        std::fs::write(&copy, text).map_err(|e| EvalError::io(&copy, "write", e))?;
        copies.push(Some(copy));
    }
    Ok(copies)
}

/// One unit's P1689 rule as a [`RawRule`], with its header prerequisites `deps`.
fn raw_rule(rule: &serde_json::Value, deps: Vec<String>) -> RawRule {
    let provides = rule["provides"]
        .as_array()
        .and_then(|p| p.first())
        .and_then(|p| {
            Some((
                p["logical-name"].as_str()?.to_string(),
                p["is-interface"].as_bool().unwrap_or(true),
            ))
        });
    let requires = rule["requires"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["logical-name"].as_str().map(str::to_string))
        .collect();
    RawRule {
        provides,
        requires,
        deps,
    }
}

/// The prerequisites the scanner wrote for `unit` to `depfile`. Without them the unit's
/// headers would silently go untracked (an edit to one would not rebuild it), so a
/// missing or empty depfile is an error.
fn read_depfile(
    scanner: &Path,
    root: &Path,
    unit: &str,
    depfile: &Path,
) -> Result<Vec<String>, EvalError> {
    let text = std::fs::read_to_string(depfile).unwrap_or_default();
    let deps = parse_depfile(&text);
    if deps.is_empty() {
        return Err(EvalError::new(
            ErrorKind::Scan,
            format!(
                "`{}` wrote no dependency list for `{unit}`, so the headers it includes cannot be tracked",
                scanner.display()
            ),
        )
        .at(Location {
            file: root.join(unit),
            line: 1,
            column: 1,
        })
        .help(format!(
            "cmod needs a clang-scan-deps that honours `-MF` in a compilation database (clang-tools-19); install it with `{}`",
            crate::toolchain::INSTALL_HINT
        )));
    }
    Ok(deps)
}

/// The prerequisites of a Makefile-style depfile.
pub fn parse_depfile(text: &str) -> Vec<String> {
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    let Some((_, rest)) = joined.split_once(": ") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                cur.push(' ');
                chars.next();
            }
            '$' if chars.peek() == Some(&'$') => {
                cur.push('$');
                chars.next();
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Turn clang-scan-deps' stderr into an error at the first diagnostic's location.
fn scan_failure(root: &Path, stderr: &str) -> EvalError {
    let diag = stderr.lines().find_map(|l| {
        let (loc, msg) = l
            .split_once(": fatal error: ")
            .or_else(|| l.split_once(": error: "))?;
        let mut parts = loc.rsplitn(3, ':');
        let column: u32 = parts.next()?.parse().ok()?;
        let line: u32 = parts.next()?.parse().ok()?;
        let file = parts.next()?;
        Some((root.join(file), line, column, msg.to_string()))
    });
    let details: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("Error while scanning dependencies for"))
        .collect();
    match diag {
        Some((file, line, column, msg)) => EvalError::new(ErrorKind::Scan, msg)
            .at(Location { file, line, column })
            .note(
                None,
                format!("clang-scan-deps said:\n{}", details.join("\n")),
            )
            .help("fix the error; every unit is scanned before anything is built"),
        None => EvalError::new(
            ErrorKind::Scan,
            format!("scanning module dependencies failed:\n{}", stderr.trim()),
        ),
    }
}

struct ScanDir {
    path: PathBuf,
}

impl Drop for ScanDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn tempdir_for_scan() -> Result<ScanDir, EvalError> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("cmod-scan-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&path).map_err(|e| EvalError::io(&path, "create", e))?;
    Ok(ScanDir { path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depfile_parsing() {
        let text = "0.o: src/a.cpp include/x.h \\\n  include/with\\ space.h \\\n  inc/$$dollar.h\n";
        assert_eq!(
            parse_depfile(text),
            [
                "src/a.cpp",
                "include/x.h",
                "include/with space.h",
                "inc/$dollar.h"
            ]
        );
        assert!(parse_depfile("").is_empty());
    }

    #[test]
    fn a_missing_or_empty_depfile_is_an_error_at_the_unit() {
        let t = tempfile::tempdir().unwrap();
        let scanner = Path::new("/usr/bin/clang-scan-deps-19");
        let missing = t.path().join("0.d");
        let e = read_depfile(scanner, Path::new("/p"), "src/a.cpp", &missing).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Scan);
        assert!(
            e.message
                .contains("wrote no dependency list for `src/a.cpp`"),
            "{e}"
        );
        let loc = e.location.clone().unwrap();
        assert_eq!(
            (loc.file.as_path(), loc.line),
            (Path::new("/p/src/a.cpp"), 1)
        );
        assert!(e.help.unwrap().contains("clang-tools-19"));
        std::fs::write(&missing, "").unwrap();
        assert!(read_depfile(scanner, Path::new("/p"), "src/a.cpp", &missing).is_err());
        std::fs::write(&missing, "0.o: src/a.cpp inc/x.h\n").unwrap();
        assert_eq!(
            read_depfile(scanner, Path::new("/p"), "src/a.cpp", &missing).unwrap(),
            ["src/a.cpp", "inc/x.h"]
        );
    }

    #[test]
    fn scan_failure_points_at_the_diagnostic() {
        let stderr = "Error while scanning dependencies for src/a.cpp:\nsrc/a.cpp:3:10: fatal error: 'nope.h' file not found\nsrc/b.cpp:7:2: error: unterminated conditional directive\n";
        let e = scan_failure(Path::new("/p"), stderr);
        assert_eq!(e.kind, ErrorKind::Scan);
        let loc = e.location.clone().unwrap();
        assert_eq!(
            (loc.file.as_path(), loc.line, loc.column),
            (Path::new("/p/src/a.cpp"), 3, 10)
        );
        assert_eq!(e.message, "'nope.h' file not found");
        assert!(e.notes[0]
            .message
            .contains("unterminated conditional directive"));
    }
}
