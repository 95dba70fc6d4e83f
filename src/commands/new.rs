//! `cmod new` and `cmod init`: a package with a module, its implementation and a main.

use std::path::Path;

use cmod_schema::manifest::PackageName;

use crate::diagnostic::CliError;

fn write_new(path: &Path, text: &str) -> Result<(), CliError> {
    if path.exists() {
        return Err(CliError::usage(
            format!("`{}` already exists", path.display()),
            Some("cmod does not overwrite files; remove it or pick another directory".into()),
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            CliError::usage(format!("cannot create `{}`: {e}", dir.display()), None)
        })?;
    }
    std::fs::write(path, text)
        .map_err(|e| CliError::usage(format!("cannot write `{}`: {e}", path.display()), None))
}

/// Create a package named `name` in `dir`.
pub fn create(dir: &Path, name: Option<&str>) -> Result<(), CliError> {
    let default = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "app".into());
    let name = name.map(str::to_string).unwrap_or(default);
    let pkg = PackageName::new(&name)
        .map_err(|e| CliError::usage(e, Some("pass --name with a valid package name".into())))?;
    let module = pkg.as_str().replace('-', "_");
    let placed = write_manifest(dir, &pkg)?;
    write_new(&dir.join(format!("src/{module}.cppm")), &format!(
        "module;\n#include <string>\nexport module {module};\n\nexport namespace {module} {{\nstd::string greeting();\n}}\n"
    ))?;
    write_new(&dir.join(format!("src/{module}.cpp")), &format!(
        "module;\n#include <string>\nmodule {module};\n\nnamespace {module} {{\nstd::string greeting() {{ return \"Hello from {pkg}!\"; }}\n}}\n"
    ))?;
    write_new(&dir.join("src/main.cpp"), &format!("#include <cstdio>\nimport {module};\n\nint main() {{\n    std::puts({module}::greeting().c_str());\n}}\n"))?;
    let gitignore = dir.join(".gitignore");
    if !gitignore.exists() {
        // Out-links, and the compile database `realise` writes (it holds host paths).
        // `.cmod/`: the manifest schema editors read (see `editor_schema`).
        write_new(
            &gitignore,
            "result\nresult-*\ncompile_commands.json\n.cmod/\n",
        )?;
    }
    let schema_root = placed.schema_root();
    if let Err(e) = crate::editor_schema::install(schema_root) {
        err!(
            "{}",
            crate::diagnostic::render_diagnostic(
                "warning",
                &format!(
                    "cannot write the manifest schema for editors under `{}`: {e}",
                    schema_root.display()
                ),
                None,
                Some("`cmod realise` writes it later if the directory becomes writable; only editor hints need it"),
            )
        );
    }
    status!("     Created package `{pkg}` in {}", dir.display());
    if let Some((warning, help)) = outside_enclosing_workspace(&placed) {
        err!(
            "{}",
            crate::diagnostic::render_diagnostic("warning", &warning, None, Some(&help))
        );
    }
    Ok(())
}

/// Write the manifest of new package `pkg` in `dir`, its first line pointing editors at
/// the manifest schema of the workspace that lists it (once the manifest exists, the
/// membership can be told), or of `dir` itself. Returns where the package stands.
fn write_manifest(dir: &Path, pkg: &PackageName) -> Result<Placement, CliError> {
    let body = format!(
        "[package]\nname = \"{pkg}\"\nversion = \"0.1.0\"\n\n[toolchain]\ncompiler = \"clang++-19\"\ncxx-standard = 20\n\n[build]\ncxxflags = [\"-Wall\", \"-Wextra\"]\n\n[lib]\nsources = [\"src/**/*.cppm\", \"src/**/*.cpp\", \"src/**/*.c\"]\n\n[[bin]]\nname = \"{pkg}\"\nmain = \"src/main.cpp\"\n"
    );
    let path = dir.join("cmod.toml");
    let own = crate::editor_schema::directive(dir, dir);
    write_new(&path, &format!("{own}\n{body}"))?;
    let placed = Placement::of(dir);
    let root = placed.schema_root();
    if root != placed.dir {
        let directive = crate::editor_schema::directive(&placed.dir, root);
        std::fs::write(&path, format!("{directive}\n{body}")).map_err(|e| {
            CliError::usage(format!("cannot write `{}`: {e}", path.display()), None)
        })?;
    }
    Ok(placed)
}

/// Where a new package stands: its directory, made canonical, and the nearest
/// workspace at or above it with whether that workspace lists it (one ancestor walk,
/// once the package's manifest exists).
struct Placement {
    dir: std::path::PathBuf,
    workspace: Option<(cmod_evaluator::workspace::Workspace, bool)>,
}

impl Placement {
    fn of(dir: &Path) -> Placement {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let workspace = cmod_evaluator::workspace::enclosing(&dir).ok().flatten();
        Placement { dir, workspace }
    }

    /// Where the package's `#:schema` line points: the root of the workspace that lists
    /// it as a member, else its own directory.
    fn schema_root(&self) -> &Path {
        match &self.workspace {
            Some((ws, true)) => &ws.root,
            _ => &self.dir,
        }
    }
}

/// The warning (and its help) for a package created below a workspace root that does
/// not list it as a member (so it builds alone, with a lockfile of its own), if that is
/// the case.
fn outside_enclosing_workspace(placed: &Placement) -> Option<(String, String)> {
    let dir = &placed.dir;
    let (ws, listed) = placed.workspace.as_ref()?;
    if *listed {
        return None;
    }
    let root = ws.root.as_path();
    let rel = dir.strip_prefix(root).unwrap_or(dir).display().to_string();
    Some((
        format!(
            "`{}` is inside the workspace at `{}`, which does not list it: it builds alone, with its own cmod.lock",
            dir.display(),
            root.display()
        ),
        format!(
            "to make it a member, add \"{rel}\" to `members` under [workspace] in {}",
            root.join("cmod.toml").display()
        ),
    ))
}
