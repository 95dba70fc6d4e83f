//! Host-side planning of the namespace sandbox's file system.
//!
//! Everything that needs allocation, `stat`, `readlink` or error handling happens here, in
//! the (multi-threaded) caller, before any process is cloned. The result is a flat list of
//! [`Step`]s (create a directory, create a mount-point file, create a symlink, bind-mount a
//! host path) that the child replays with raw syscalls; see `child.rs`.
//!
//! Toolchain paths keep their host path inside the sandbox. A path that goes through
//! symlinks on the host (Debian is merged-usr: `/lib -> usr/lib`, `/lib64 -> usr/lib64`,
//! `/bin -> usr/bin`) gets every symlink it passes recreated inside and only its real
//! target bind-mounted, so the ELF interpreter `/lib64/ld-linux-x86-64.so.2` and absolute
//! tool paths such as `/usr/bin/clang++-19` resolve exactly as on the host.
//!
//! `/tmp` inside is always private: the build directory's `.tmp`, bound read-write. A
//! toolchain path that lives under the host's `/tmp` (a package or test helper in a
//! temporary directory) is laid out in a second layer *inside* that private `/tmp`, after
//! it is mounted: its mount points and symlinks are created in `.tmp` and the read-only
//! binds go on top. So those paths stay visible at their host paths while everything else
//! in `/tmp` is the step's own and writable.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::view::InputView;
use crate::{Action, SandboxError, BUILD_DIR, STORE_DIR};

/// Device nodes bind-mounted from the host into the sandbox's `/dev`.
pub(crate) const DEVICES: [&str; 5] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// Top-level directories the sandbox owns; toolchain paths may not live under them.
const RESERVED: [&str; 3] = ["/proc", BUILD_DIR, "/cmod"];

/// The private temporary directory every action gets (its build directory's `.tmp`).
/// Toolchain paths may live under it, but may not be it.
const TMP: &str = "/tmp";

/// Symlink hops allowed while resolving one toolchain path (as `MAXSYMLINKS`).
const MAX_HOPS: usize = 40;

/// How a bind mount is restricted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read-only, nosuid, nodev (toolchain, inputs).
    ReadOnly,
    /// Writable, nosuid, nodev (the build directory and its temp dir).
    ReadWrite,
    /// A device node: read-only mount (device I/O still works), nosuid, noexec.
    Device,
}

/// One file-system operation inside the new root. All paths are absolute as the builder
/// sees them, except `Bind::src`, which is the (canonical) host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Mkdir(PathBuf),
    /// An empty regular file, used as the mount point of a non-directory bind.
    Touch(PathBuf),
    Symlink {
        at: PathBuf,
        target: PathBuf,
    },
    Bind {
        src: PathBuf,
        dst: PathBuf,
        access: Access,
    },
    /// A fresh, empty tmpfs (for a directory of stable-name links).
    Tmpfs(PathBuf),
    /// Set the mtime and atime of the path itself (not following a symlink) to
    /// [`LINK_MTIME`](crate::materialise::LINK_MTIME).
    PinTime(PathBuf),
    /// Make the mount at this path read-only (nosuid, nodev).
    Seal(PathBuf),
}

/// The complete layout of one sandbox.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub steps: Vec<Step>,
    /// Real host paths of the toolchain that are bind-mounted (after de-duplication).
    pub toolchain_binds: Vec<PathBuf>,
    /// Canonical host paths of the inputs.
    pub inputs: Vec<PathBuf>,
    /// Canonical host build directory, if any (the probe has none). Its `.tmp` is the
    /// sandbox's `/tmp`.
    pub build_dir: Option<PathBuf>,
}

/// The toolchain part of a plan: symlinks to recreate and real paths to bind (with
/// whether each is a directory).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ToolchainLayout {
    pub symlinks: BTreeMap<PathBuf, PathBuf>,
    pub binds: BTreeMap<PathBuf, bool>,
}

/// Toolchain layouts already resolved in this process, by toolchain list.
///
/// Resolving a clang closure (about 40 paths) costs a few hundred `lstat`s, about 0.6 ms,
/// and every compile of a realise uses the same closure. A toolchain is immutable while
/// cmod runs (its identity is hashed into every derivation), so the cache is never
/// invalidated, only bounded.
fn cached_layout(toolchain: &[PathBuf]) -> Result<Arc<ToolchainLayout>, SandboxError> {
    const MAX_ENTRIES: usize = 64;
    static CACHE: OnceLock<Mutex<HashMap<Vec<PathBuf>, Arc<ToolchainLayout>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(hit) = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(toolchain)
    {
        return Ok(Arc::clone(hit));
    }
    let layout = Arc::new(toolchain_layout(toolchain)?);
    let mut map = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(toolchain.to_vec(), Arc::clone(&layout));
    Ok(layout)
}

/// Resolve `path` component by component, recording every symlink met on the way in
/// `links` (link path -> link text). Returns the real path, or `None` if it does not exist.
pub(crate) fn resolve(
    path: &Path,
    links: &mut BTreeMap<PathBuf, PathBuf>,
) -> io::Result<Option<PathBuf>> {
    if !path.is_absolute() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "toolchain paths must be absolute",
        ));
    }
    let mut queue: VecDeque<OsString> = VecDeque::new();
    push_components(&mut queue, path, false);
    let mut cur = PathBuf::from("/");
    let mut hops = 0;
    while let Some(name) = queue.pop_front() {
        if name == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&name);
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_HOPS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = std::fs::read_link(&next)?;
            links.insert(next, target.clone());
            if target.is_absolute() {
                cur = PathBuf::from("/");
            }
            push_components(&mut queue, &target, true);
        } else {
            cur = next;
        }
    }
    Ok(Some(cur))
}

/// Push the normal and `..` components of `p` onto the queue (at the front if `front`).
fn push_components(queue: &mut VecDeque<OsString>, p: &Path, front: bool) {
    let parts: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    if front {
        for part in parts.into_iter().rev() {
            queue.push_front(part);
        }
    } else {
        queue.extend(parts);
    }
}

/// Resolve every toolchain path and drop binds and symlinks already covered by a bind of
/// one of their ancestors. Paths that do not exist on the host are skipped: the builder
/// would not find them there either.
pub(crate) fn toolchain_layout(toolchain: &[PathBuf]) -> Result<ToolchainLayout, SandboxError> {
    let mut symlinks = BTreeMap::new();
    let mut reals = BTreeSet::new();
    for path in toolchain {
        check_reserved(path)?;
        let real = resolve(path, &mut symlinks)
            .map_err(|e| SandboxError::io("resolving toolchain path", path, e))?;
        if let Some(real) = real {
            reals.insert(real);
        }
    }
    let all: Vec<PathBuf> = reals.iter().cloned().collect();
    reals.retain(|b| !all.iter().any(|o| o != b && b.starts_with(o)));
    symlinks.retain(|at, _| !reals.iter().any(|b| at.starts_with(b)));
    for p in reals.iter().chain(symlinks.keys()) {
        check_reserved(p)?;
    }
    // The sandbox provides its own /dev; toolchain entries there are redundant.
    reals.retain(|b| !b.starts_with("/dev"));
    symlinks.retain(|at, _| !at.starts_with("/dev"));
    let mut binds = BTreeMap::new();
    for real in reals {
        let meta =
            std::fs::metadata(&real).map_err(|e| SandboxError::io("inspecting", &real, e))?;
        binds.insert(real, meta.is_dir());
    }
    Ok(ToolchainLayout { symlinks, binds })
}

/// Refuse toolchain paths that would cover or collide with the sandbox's own layout.
fn check_reserved(p: &Path) -> Result<(), SandboxError> {
    if p.components()
        .all(|c| matches!(c, Component::RootDir | Component::CurDir))
    {
        return Err(SandboxError::InvalidAction(
            "the toolchain cannot include the whole root file system `/`".into(),
        ));
    }
    if p == Path::new(TMP) {
        return Err(SandboxError::InvalidAction(format!(
            "the toolchain cannot include `{TMP}` itself, nor reach its paths through a \
             symlinked `{TMP}`: the sandbox gives every step a private `{TMP}`; list the \
             paths under it that the step needs"
        )));
    }
    if let Some(r) = RESERVED.iter().find(|r| p.starts_with(r)) {
        return Err(SandboxError::InvalidAction(format!(
            "toolchain path `{}` lies under `{r}`, which the sandbox provides itself",
            p.display()
        )));
    }
    Ok(())
}

fn canonical(what: &'static str, p: &Path) -> Result<PathBuf, SandboxError> {
    std::fs::canonicalize(p).map_err(|e| SandboxError::io(what, p, e))
}

/// Add `dir` and all its ancestors (except `/`) to `dirs`.
fn add_dirs(dirs: &mut BTreeSet<PathBuf>, dir: &Path) {
    for a in dir.ancestors() {
        if a != Path::new("/") && !a.as_os_str().is_empty() {
            dirs.insert(a.to_path_buf());
        }
    }
}

/// The mount point for a bind at `dst`: a directory or an empty file.
fn mount_point(dst: &Path, is_dir: bool, dirs: &mut BTreeSet<PathBuf>, files: &mut Vec<PathBuf>) {
    if let Some(parent) = dst.parent() {
        add_dirs(dirs, parent);
    }
    if is_dir {
        add_dirs(dirs, dst);
    } else {
        files.push(dst.to_path_buf());
    }
}

fn is_dir(p: &Path) -> Result<bool, SandboxError> {
    Ok(std::fs::metadata(p)
        .map_err(|e| SandboxError::io("inspecting", p, e))?
        .is_dir())
}

/// The mount points, symlinks and binds of one layer of the layout, turned into steps in
/// that order (see [`Layer::into_steps`]).
#[derive(Default)]
struct Layer {
    dirs: BTreeSet<PathBuf>,
    files: Vec<PathBuf>,
    symlinks: Vec<Step>,
    binds: Vec<(PathBuf, PathBuf, Access)>,
}

impl Layer {
    fn bind(&mut self, src: PathBuf, dst: PathBuf, is_dir: bool, access: Access) {
        mount_point(&dst, is_dir, &mut self.dirs, &mut self.files);
        self.binds.push((src, dst, access));
    }

    fn symlink(&mut self, at: &Path, target: &Path) {
        if let Some(parent) = at.parent() {
            add_dirs(&mut self.dirs, parent);
        }
        self.symlinks.push(Step::Symlink {
            at: at.to_path_buf(),
            target: target.to_path_buf(),
        });
    }

    /// Append the layer's steps: the directories strictly below `base` (parents first;
    /// `base` and its ancestors exist already), the mount-point files, the symlinks, then
    /// the binds, parents first so a later bind is never hidden by an earlier one.
    fn into_steps(mut self, base: &Path, steps: &mut Vec<Step>) {
        steps.extend(
            self.dirs
                .into_iter()
                .filter(|d| d.starts_with(base) && d != base)
                .map(Step::Mkdir),
        );
        steps.extend(self.files.into_iter().map(Step::Touch));
        steps.append(&mut self.symlinks);
        self.binds.sort_by(|a, b| a.1.cmp(&b.1));
        steps.extend(self.binds.into_iter().map(|(src, dst, access)| Step::Bind {
            src,
            dst,
            access,
        }));
    }
}

/// Plan the sandbox for `action`, or a bare one (devices only) for the probe. The links
/// under `link_roots` (see [`link_roots`](crate::materialise::link_roots)) are laid out
/// on a read-only tmpfs per root, over the build directory's (empty) directory.
///
/// The steps come in three groups: the root layer (everything outside `/tmp`, with the
/// private `/tmp` bind among its binds), then the toolchain paths under `/tmp` laid out
/// inside that private `/tmp`, then the link directories inside `/build`.
pub(crate) fn plan(
    action: Option<&Action>,
    view: Option<&InputView>,
    link_roots: &BTreeSet<PathBuf>,
) -> Result<Plan, SandboxError> {
    let layout = match action {
        Some(a) => cached_layout(&a.toolchain)?,
        None => Arc::new(ToolchainLayout::default()),
    };
    let tmp = Path::new(TMP);
    let mut root = Layer::default();
    let mut in_tmp = Layer::default();
    for (real, dir) in &layout.binds {
        let layer = if real.starts_with(tmp) {
            &mut in_tmp
        } else {
            &mut root
        };
        layer.bind(real.clone(), real.clone(), *dir, Access::ReadOnly);
    }
    for (at, target) in &layout.symlinks {
        let layer = if at.starts_with(tmp) {
            &mut in_tmp
        } else {
            &mut root
        };
        layer.symlink(at, target);
    }
    for dev in DEVICES {
        root.bind(dev.into(), dev.into(), false, Access::Device);
    }
    for dir in ["/proc", TMP, STORE_DIR] {
        add_dirs(&mut root.dirs, Path::new(dir));
    }

    let mut plan = Plan {
        toolchain_binds: layout.binds.keys().cloned().collect(),
        ..Plan::default()
    };
    if let Some(action) = action {
        match view {
            // The view is the store; inputs it could not link are bound into it.
            Some(view) => {
                root.bind(view.dir.clone(), STORE_DIR.into(), true, Access::ReadOnly);
                plan.inputs.push(view.dir.clone());
                for (input, src, dir) in &view.binds {
                    let dst = Path::new(STORE_DIR).join(input);
                    root.bind(src.clone(), dst, *dir, Access::ReadOnly);
                    plan.inputs.push(src.clone());
                }
            }
            None => {
                for input in &action.inputs {
                    let src = canonical("finding input", &action.store_dir.join(input))?;
                    let dst = Path::new(STORE_DIR).join(input);
                    root.bind(src.clone(), dst, is_dir(&src)?, Access::ReadOnly);
                    plan.inputs.push(src);
                }
            }
        }
        let build = canonical("finding build directory", &action.build_dir)?;
        root.bind(build.clone(), BUILD_DIR.into(), true, Access::ReadWrite);
        root.bind(build.join(".tmp"), tmp.into(), true, Access::ReadWrite);
        plan.build_dir = Some(build);
    }
    root.into_steps(Path::new("/"), &mut plan.steps);
    in_tmp.into_steps(tmp, &mut plan.steps);
    if let Some(action) = action {
        match view.and_then(|v| v.links.as_ref()) {
            // Kept on the host, up to date: bound read-only over the (empty) directories.
            Some(kept) => plan.steps.extend(link_roots.iter().map(|r| Step::Bind {
                src: kept.join(r),
                dst: Path::new(BUILD_DIR).join(r),
                access: Access::ReadOnly,
            })),
            None => plan.steps.extend(link_steps(action, link_roots)),
        }
    }
    Ok(plan)
}

/// The steps that lay out the links under `roots` inside the sandbox (after the build
/// directory is mounted): a tmpfs per root, directories, links, then the same pinned
/// times the host layout gets (links, then directories deepest first), then read-only.
fn link_steps(action: &Action, roots: &BTreeSet<PathBuf>) -> Vec<Step> {
    let build = Path::new(BUILD_DIR);
    let mut steps: Vec<Step> = roots.iter().map(|r| Step::Tmpfs(build.join(r))).collect();
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    let mut links = Vec::new();
    for link in &action.links {
        let Some(root) = roots.iter().find(|r| link.at.starts_with(r)) else {
            continue;
        };
        let mut d = link.at.parent();
        while let Some(p) = d.filter(|p| p.starts_with(root) && *p != root.as_path()) {
            dirs.insert(build.join(p));
            d = p.parent();
        }
        links.push(Step::Symlink {
            at: build.join(&link.at),
            target: crate::materialise::link_target(link, Path::new(STORE_DIR)),
        });
    }
    let pins: Vec<Step> = links
        .iter()
        .filter_map(|l| match l {
            Step::Symlink { at, .. } => Some(Step::PinTime(at.clone())),
            _ => None,
        })
        .collect();
    let mut deepest_first: Vec<PathBuf> = dirs
        .iter()
        .cloned()
        .chain(roots.iter().map(|r| build.join(r)))
        .collect();
    deepest_first.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    // BTreeSet order creates parents before children.
    steps.extend(dirs.into_iter().map(Step::Mkdir));
    steps.extend(links);
    steps.extend(pins);
    steps.extend(deepest_first.into_iter().map(Step::PinTime));
    steps.extend(roots.iter().map(|r| Step::Seal(build.join(r))));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolve_records_every_symlink_hop() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("usr/lib/x")).unwrap();
        std::fs::write(root.join("usr/lib/x/ld.so"), b"").unwrap();
        std::fs::create_dir_all(root.join("usr/lib64")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("usr/lib64", root.join("lib64")).unwrap();
        symlink(root.join("lib/x/ld.so"), root.join("usr/lib64/ld.so")).unwrap();
        let mut links = BTreeMap::new();
        let real = resolve(&root.join("lib64/ld.so"), &mut links)
            .unwrap()
            .unwrap();
        assert_eq!(real, root.join("usr/lib/x/ld.so"));
        assert_eq!(links[&root.join("lib64")], PathBuf::from("usr/lib64"));
        assert_eq!(
            links[&root.join("usr/lib64/ld.so")],
            root.join("lib/x/ld.so")
        );
        assert_eq!(links[&root.join("lib")], PathBuf::from("usr/lib"));
    }

    #[test]
    fn resolve_handles_dotdot_and_missing_paths() {
        let mut links = BTreeMap::new();
        let real = resolve(Path::new("/usr/lib/../bin/../lib"), &mut links)
            .unwrap()
            .unwrap();
        assert_eq!(real, PathBuf::from("/usr/lib"));
        assert_eq!(
            resolve(Path::new("/nonexistent/cmod/x"), &mut links).unwrap(),
            None
        );
        assert!(resolve(Path::new("relative"), &mut links).is_err());
    }

    #[test]
    fn resolve_detects_loops() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        let err = resolve(&dir.path().join("a"), &mut BTreeMap::new()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn covered_binds_and_links_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/a.so"), b"").unwrap();
        symlink("a.so", root.join("usr/lib/b.so")).unwrap();
        let layout = toolchain_layout(&[
            root.join("usr/lib/b.so"),
            root.join("usr"),
            root.join("does-not-exist"),
        ])
        .unwrap();
        assert_eq!(
            layout.binds.into_iter().collect::<Vec<_>>(),
            vec![(root.join("usr"), true)]
        );
        assert!(layout.symlinks.is_empty(), "{:?}", layout.symlinks);
    }

    #[test]
    fn reserved_paths_are_rejected() {
        for p in ["/", "/proc/self", "/build/x", "/cmod"] {
            let err = toolchain_layout(&[PathBuf::from(p)]);
            assert!(
                matches!(err, Err(SandboxError::InvalidAction(_))),
                "{p}: {err:?}"
            );
        }
        let layout = toolchain_layout(&[PathBuf::from("/dev/null")]).unwrap();
        assert!(layout.binds.is_empty());
    }

    #[test]
    fn layouts_are_cached_per_toolchain() {
        let tc = vec![PathBuf::from("/usr/bin"), PathBuf::from("/lib64")];
        let a = cached_layout(&tc).unwrap();
        let b = cached_layout(&tc).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(*a, toolchain_layout(&tc).unwrap());
        let c = cached_layout(&tc[..1]).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn probe_plan_has_devices_and_mount_points() {
        let plan = plan(None, None, &BTreeSet::new()).unwrap();
        assert!(plan.steps.contains(&Step::Mkdir("/proc".into())));
        assert!(plan.steps.contains(&Step::Touch("/dev/null".into())));
        assert!(plan.steps.contains(&Step::Bind {
            src: "/dev/urandom".into(),
            dst: "/dev/urandom".into(),
            access: Access::Device,
        }));
        // Directories are created before the files and binds that need them.
        let first_bind = plan
            .steps
            .iter()
            .position(|s| matches!(s, Step::Bind { .. }))
            .unwrap();
        let last_mkdir = plan
            .steps
            .iter()
            .rposition(|s| matches!(s, Step::Mkdir(_)))
            .unwrap();
        assert!(last_mkdir < first_bind);
    }

    /// An action in `t` (a store with input `h-a`, a build directory) with `toolchain`.
    fn action_in(t: &Path, toolchain: Vec<PathBuf>) -> Action {
        let store = t.join("store");
        std::fs::create_dir_all(store.join("h-a")).unwrap();
        std::fs::create_dir_all(t.join("build")).unwrap();
        Action {
            program: "/bin/true".into(),
            args: vec![],
            env: vec![],
            build_dir: t.join("build"),
            store_dir: store,
            inputs: vec!["h-a".into()],
            links: vec![crate::Link {
                at: "bmi/m/a.pcm".into(),
                store_path: "h-a".into(),
                sub: Some("a.pcm".into()),
            }],
            toolchain,
            outputs: vec!["out/a.o".into()],
            log_path: t.join("log"),
            limits: crate::Limits::default(),
            view_slot: None,
        }
    }

    fn position(steps: &[Step], want: &Step) -> usize {
        steps
            .iter()
            .position(|s| s == want)
            .unwrap_or_else(|| panic!("{want:?} missing from {steps:#?}"))
    }

    /// Link directories become a tmpfs each, laid out after the build directory's bind,
    /// with links and directories pinned (links first, directories deepest first) and the
    /// mount sealed last.
    #[test]
    fn link_roots_are_laid_out_on_tmpfs_after_the_build_bind() {
        let t = tempfile::tempdir().unwrap();
        let action = action_in(t.path(), vec![]);
        let roots = BTreeSet::from([PathBuf::from("bmi")]);
        let steps = plan(Some(&action), None, &roots).unwrap().steps;
        let at = |want: &Step| position(&steps, want);
        let build_bind = steps
            .iter()
            .position(|s| matches!(s, Step::Bind { dst, .. } if dst == Path::new(BUILD_DIR)))
            .unwrap();
        let tmpfs = at(&Step::Tmpfs("/build/bmi".into()));
        let dir = at(&Step::Mkdir("/build/bmi/m".into()));
        let link = at(&Step::Symlink {
            at: "/build/bmi/m/a.pcm".into(),
            target: "/cmod/store/h-a/a.pcm".into(),
        });
        let pin_link = at(&Step::PinTime("/build/bmi/m/a.pcm".into()));
        let pin_dir = at(&Step::PinTime("/build/bmi/m".into()));
        let pin_root = at(&Step::PinTime("/build/bmi".into()));
        let seal = at(&Step::Seal("/build/bmi".into()));
        assert!(
            build_bind < tmpfs && tmpfs < dir && dir < link,
            "{steps:#?}"
        );
        assert!(link < pin_link && pin_link < pin_dir && pin_dir < pin_root);
        assert_eq!(seal, steps.len() - 1);
        // Without roots, nothing of the kind.
        let bare = plan(Some(&action), None, &BTreeSet::new()).unwrap().steps;
        assert!(!bare
            .iter()
            .any(|s| matches!(s, Step::Tmpfs(_) | Step::Seal(_))));
    }

    /// `/tmp` inside is always the build directory's `.tmp`. A toolchain path under the
    /// host's `/tmp` (here a directory with a space in its name, and a symlink to a file
    /// in it) is laid out inside it afterwards: its mount point and symlink are created
    /// after the private `/tmp` is mounted, then bound read-only on top.
    #[test]
    fn toolchain_paths_under_tmp_are_laid_out_inside_the_private_tmp() {
        let host = tempfile::Builder::new()
            .prefix("cmod plan ")
            .tempdir_in("/tmp")
            .unwrap();
        let host_root = std::fs::canonicalize(host.path()).unwrap();
        let tool = host_root.join("tool dir");
        std::fs::create_dir_all(&tool).unwrap();
        std::fs::write(tool.join("data"), b"x").unwrap();
        symlink("tool dir/data", host_root.join("link")).unwrap();
        let t = tempfile::tempdir().unwrap();
        let action = action_in(
            t.path(),
            vec![
                PathBuf::from("/usr/bin"),
                host_root.join("link"),
                tool.clone(),
            ],
        );
        let plan = plan(Some(&action), None, &BTreeSet::new()).unwrap();
        let steps = &plan.steps;
        let build = plan.build_dir.clone().unwrap();
        let tmp_bind = position(
            steps,
            &Step::Bind {
                src: build.join(".tmp"),
                dst: "/tmp".into(),
                access: Access::ReadWrite,
            },
        );
        let usr_bind = position(
            steps,
            &Step::Bind {
                src: "/usr/bin".into(),
                dst: "/usr/bin".into(),
                access: Access::ReadOnly,
            },
        );
        let mkdir = position(steps, &Step::Mkdir(tool.clone()));
        let link = position(
            steps,
            &Step::Symlink {
                at: host_root.join("link"),
                target: "tool dir/data".into(),
            },
        );
        let tool_bind = position(
            steps,
            &Step::Bind {
                src: tool.clone(),
                dst: tool.clone(),
                access: Access::ReadOnly,
            },
        );
        // The layer inside /tmp comes after the whole root layer.
        assert!(usr_bind < mkdir, "{steps:#?}");
        assert!(tmp_bind < mkdir && tmp_bind < link, "{steps:#?}");
        assert!(mkdir < tool_bind && link < tool_bind, "{steps:#?}");
        // Nothing under /tmp is created before the private /tmp hides it, and /tmp itself
        // is not created twice.
        for (i, s) in steps.iter().enumerate() {
            if let Step::Mkdir(p) | Step::Touch(p) = s {
                if p.starts_with("/tmp") && i < tmp_bind {
                    assert_eq!(p, Path::new("/tmp"), "{steps:#?}");
                }
            }
        }
        let tmp_dirs = steps
            .iter()
            .filter(|s| **s == Step::Mkdir("/tmp".into()))
            .count();
        assert_eq!(tmp_dirs, 1, "{steps:#?}");
        assert_eq!(plan.toolchain_binds.len(), 2, "{:?}", plan.toolchain_binds);
    }

    #[test]
    fn tmp_itself_cannot_be_a_toolchain_path() {
        for p in ["/tmp", "/tmp/", "/tmp/."] {
            match toolchain_layout(&[PathBuf::from(p)]) {
                Err(SandboxError::InvalidAction(m)) => {
                    assert!(m.contains("private `/tmp`"), "{p}: {m}")
                }
                other => panic!("{p}: {other:?}"),
            }
        }
    }
}
