//! Sharing the store: `cmod key generate`, `cmod store sign|serve|add`, what a target
//! list publishes (for `sign` and `copy`), and the sharing configuration (substituters
//! and trusted keys) that `realise` and `copy` use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cmod_schema::cache::{manifest_cache_section, CacheSettings, UserConfig};
use cmod_schema::scan_entry::ScanEntry;
use cmod_schema::{PathKind, StorePath};
use cmod_store::sign::{SecretKey, TrustedKeys};
use cmod_store::substitute::{RemoteSetting, Sharing};
use cmod_store::trace::TraceEntry;
use cmod_store::transfer::{CopyError, Trust};
use cmod_store::Store;

use crate::cli::{
    BuildOpts, Cli, Command, KeyCommand, ServeArgs, SharingOpts, SignArgs, StoreCommand,
};
use crate::diagnostic::CliError;
use crate::project::{load, open_store, package_dir, Project};

impl From<CopyError> for CliError {
    fn from(e: CopyError) -> Self {
        CliError::Copy(e)
    }
}

pub(crate) fn split_words(v: &[String]) -> Vec<String> {
    v.iter()
        .flat_map(|s| s.split_whitespace().map(str::to_string))
        .collect()
}

/// The user configuration file: `$CMOD_CONFIG`, else `$XDG_CONFIG_HOME/cmod/config.toml`,
/// else `~/.config/cmod/config.toml`.
pub fn user_config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CMOD_CONFIG").filter(|s| !s.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("cmod/config.toml"))
}

/// The settings from `[cache]` of the package's cmod.toml, then the user configuration.
pub fn settings(cli: &Cli) -> Result<CacheSettings, CliError> {
    let mut s = CacheSettings::default();
    if let Ok(dir) = package_dir(cli) {
        let manifest = dir.join("cmod.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            if let Some(m) = manifest_cache_section(&text)
                .map_err(|e| CliError::usage(format!("{}:{e}", manifest.display()), None))?
            {
                s.merge(&m);
            }
        }
    }
    if let Some(path) = user_config_path() {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let cfg = UserConfig::parse(&text).map_err(|e| {
                CliError::usage(
                    format!(
                        "the configuration file `{}` is invalid: {e}",
                        path.display()
                    ),
                    None,
                )
            })?;
            s.merge(&cfg.cache);
        }
    }
    Ok(s)
}

fn trust_from(keys: &[String], require_sigs: bool) -> Result<Trust, CliError> {
    let keys = TrustedKeys::parse(keys.iter().map(String::as_str))?;
    Ok(Trust { keys, require_sigs })
}

/// The trust policy from settings, overridden by flags.
pub fn trust(cli: &Cli, flag_keys: &[String], no_require_sigs: bool) -> Result<Trust, CliError> {
    let s = settings(cli)?;
    let flag_keys = split_words(flag_keys);
    let keys = if flag_keys.is_empty() {
        s.trusted_public_keys.clone()
    } else {
        flag_keys
    };
    trust_from(&keys, !no_require_sigs && s.require_sigs.unwrap_or(true))
}

/// Parallel downloads while realising, whatever `-j` says (it counts build steps).
const MIN_DOWNLOADS: usize = 4;

/// The substituters a command asks: none with `none` (`--no-substitute`, or
/// `--offline`, which promises no fetching, as Nix's does), else those given as flags
/// (repeated or space-separated), else the configured ones.
pub(crate) fn chosen_substituters(
    flags: &[String],
    none: bool,
    settings: &CacheSettings,
) -> Vec<String> {
    match split_words(flags) {
        _ if none => Vec::new(),
        flags if flags.is_empty() => settings.substituters.clone(),
        flags => flags,
    }
}

/// The sharing configuration of a command that realises (`None` for the others): the
/// configuration files are read here, once, and the value is passed down.
pub fn sharing_for(cli: &Cli) -> Result<Option<Arc<Sharing>>, CliError> {
    let (opts, jobs, offline): (&SharingOpts, Option<usize>, bool) = match &cli.command {
        Command::Realise(a) => (&a.run.sharing, a.run.jobs, a.build.offline()),
        Command::Run(a) => (&a.run.sharing, a.run.jobs, a.build.offline()),
        Command::Test(a) => (&a.run.sharing, a.run.jobs, a.build.offline()),
        Command::Lock(a) => (&a.run.sharing, a.run.jobs, a.build.offline()),
        Command::Store {
            command: StoreCommand::Repair(a),
        } => (&a.run.sharing, a.run.jobs, a.build.offline()),
        Command::Store {
            command: StoreCommand::Verify {
                run, repair: true, ..
            },
        } => (&run.sharing, run.jobs, false),
        _ => return Ok(None),
    };
    let s = settings(cli)?;
    let substituters = chosen_substituters(&opts.substituters, opts.no_substitute || offline, &s);
    let trust = trust(cli, &opts.trusted_public_keys, opts.no_require_sigs)?;
    let signing = s
        .secret_key_files
        .iter()
        .map(|f| SecretKey::read(Path::new(f)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Arc::new(Sharing {
        substituters,
        trust,
        // `-j` counts build steps; downloads wait on the network, not the CPU.
        jobs: jobs.unwrap_or(MIN_DOWNLOADS).max(MIN_DOWNLOADS),
        signing,
        connect: cli.connect.clone(),
        unavailable: Default::default(),
        remote_cache: chosen_remote_cache(opts, offline, &s),
        remote_executor: chosen_remote_executor(opts, offline, &s),
        remote_fallback: opts.remote_fallback,
    })))
}

/// The remote executor a building command uses: none with `--offline`, else the flag's,
/// else the configured one.
fn chosen_remote_executor(
    opts: &SharingOpts,
    offline: bool,
    settings: &CacheSettings,
) -> Option<RemoteSetting> {
    if offline {
        return None;
    }
    let url = opts
        .remote_executor
        .clone()
        .or_else(|| settings.remote_executor.clone())?;
    Some(RemoteSetting {
        url,
        instance_name: instance_name(opts, settings),
        headers: settings.remote_headers.clone(),
    })
}

fn instance_name(opts: &SharingOpts, settings: &CacheSettings) -> String {
    opts.remote_instance_name
        .clone()
        .or_else(|| settings.remote_instance_name.clone())
        .unwrap_or_default()
}

/// The remote cache a building command uses: none with `--no-remote-cache` or
/// `--offline`, else the flag's, else the configured one.
fn chosen_remote_cache(
    opts: &SharingOpts,
    offline: bool,
    settings: &CacheSettings,
) -> Option<RemoteSetting> {
    if opts.no_remote_cache || offline {
        return None;
    }
    let url = opts
        .remote_cache
        .clone()
        .or_else(|| settings.remote_cache.clone())?;
    Some(RemoteSetting {
        url,
        instance_name: instance_name(opts, settings),
        headers: settings.remote_headers.clone(),
    })
}

/// Whether a `what` argument names a store path rather than a target.
pub(crate) fn looks_like_path(s: &str) -> bool {
    s.contains('/') || StorePath::from_path_str(s).is_ok()
}

/// What the targets' builds can publish: every output of the builds and the
/// build-trace entries that produced them.
pub(crate) struct Built {
    pub store: Store,
    /// Every output of the builds.
    pub paths: Vec<StorePath>,
    /// The build-trace entries that produced them.
    pub traces: Vec<TraceEntry>,
    /// The evaluation's scan results.
    pub scans: Vec<ScanEntry>,
}

impl Built {
    /// Named store paths alone (nothing built to publish with them).
    pub fn paths(cli: &Cli, what: &[String]) -> Result<Built, CliError> {
        let store = open_store(cli)?;
        let paths = parse_paths(&store, what)?;
        Ok(Built {
            store,
            paths,
            traces: Vec::new(),
            scans: Vec::new(),
        })
    }
}

/// The derivations of the targets `names` picks, named as `realise` names them
/// ([`Project::select`]; all targets when empty).
pub(crate) fn selected_targets(
    project: &Project,
    names: &[String],
) -> Result<Vec<StorePath>, CliError> {
    Ok(project
        .targets_named(names)?
        .into_iter()
        .map(|t| t.drv)
        .collect())
}

/// The build-trace entry of `drv`'s latest realisation, if every output it names is
/// still in the store.
pub(crate) fn realisation(store: &Store, drv: &StorePath) -> Option<TraceEntry> {
    store
        .drv_outputs(drv)
        .and_then(|r| store.trace_lookup(&r.key))
        .filter(|e| e.outputs.values().all(|p| store.is_valid(p)))
}

/// What the realised builds of the targets `names` publish.
pub(crate) fn realised(cli: &Cli, names: &[String], build: &BuildOpts) -> Result<Built, CliError> {
    built(load(cli, build)?, names, "run `cmod realise` first")
}

/// What the realised builds of the targets `names` of `project` publish; an error names
/// the first derivation that has not been realised with the current sources, with `help`.
pub(crate) fn built(project: Project, names: &[String], help: &str) -> Result<Built, CliError> {
    let roots = selected_targets(&project, names)?;
    let derived = project.derived()?;
    let order = cmod_store::realise::needed(&derived.derivations, &roots)?;
    let mut paths = Vec::new();
    let mut traces = Vec::new();
    for d in order {
        let entry = realisation(&project.store, &d).ok_or_else(|| {
            CliError::usage(
                format!(
                    "`{}` has not been realised with the current sources",
                    derived.derivations[&d].name
                ),
                Some(help.into()),
            )
        })?;
        paths.extend(entry.outputs.values().cloned());
        traces.push(entry);
    }
    let scans = cmod_ops::scan_entries::entries(&project);
    Ok(Built {
        store: project.store,
        paths,
        traces,
        scans,
    })
}

fn parse_paths(store: &Store, what: &[String]) -> Result<Vec<StorePath>, CliError> {
    what.iter()
        .map(|p| store.parse_path(p).map_err(CliError::from))
        .collect()
}

pub fn key(command: &KeyCommand) -> Result<(), CliError> {
    let KeyCommand::Generate {
        name,
        secret_key,
        public_key,
    } = command;
    let sk = SecretKey::generate(name)?;
    for f in [secret_key, public_key] {
        if f.exists() {
            return Err(CliError::usage(
                format!("`{}` already exists", f.display()),
                Some("remove it first or pick another file".into()),
            ));
        }
    }
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let write = |path: &Path, text: &str, mode: u32| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| CliError::usage(format!("cannot write `{}`: {e}", path.display()), None))
    };
    write(secret_key, &sk.to_text(), 0o600)?;
    write(public_key, &sk.public().to_text(), 0o644)?;
    status!("{:>12} key pair `{name}`", "Generated");
    outln!("{}", sk.public().to_text());
    Ok(())
}

pub fn sign(cli: &Cli, args: &SignArgs) -> Result<(), CliError> {
    let key = SecretKey::read(&args.key_file)?;
    let paths_given = !args.what.is_empty() && args.what.iter().all(|w| looks_like_path(w));
    let Built {
        store,
        mut paths,
        traces,
        scans,
    } = if paths_given {
        Built::paths(cli, &args.what)?
    } else {
        realised(cli, &args.what, &args.build)?
    };
    for mut e in scans {
        key.sign_scan(&mut e);
        store.scan_record(&e)?;
    }
    if args.recursive || !traces.is_empty() {
        paths = cmod_store::copy::closure(&store, &paths)?;
    }
    for p in &paths {
        let mut info = store.path_info(p)?;
        key.sign_path(&mut info);
        store.write_path_info(&info)?;
    }
    for mut t in traces {
        key.sign_trace(&mut t);
        store.trace_record(&t)?;
    }
    status!(
        "{:>12} {} path(s) with `{}`",
        "Signed",
        paths.len(),
        key.name
    );
    Ok(())
}

pub fn serve(cli: &Cli, args: &ServeArgs) -> Result<(), CliError> {
    let store = open_store(cli)?;
    let trust = if args.require_sigs {
        Some(trust(cli, &args.trusted_public_keys, false)?)
    } else {
        None
    };
    let mut input = std::io::BufReader::with_capacity(1 << 20, std::io::stdin().lock());
    let mut output = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    cmod_store::serve::serve(&store, &mut input, &mut output, trust.as_ref()).map_err(serve_error)
}

/// A client that went away or spoke something else is not a bug in cmod (exit 2); the
/// machine's state (a full disk) is exit 2 too; anything else is internal.
fn serve_error(e: std::io::Error) -> CliError {
    use std::io::ErrorKind::*;
    let message = match e.kind() {
        UnexpectedEof | BrokenPipe | ConnectionReset | ConnectionAborted => {
            format!("serving the store: the client went away in the middle of a request ({e})")
        }
        InvalidData | InvalidInput => {
            format!("serving the store: the client sent something that is not the protocol ({e})")
        }
        StorageFull | QuotaExceeded | ReadOnlyFilesystem | PermissionDenied => {
            format!("serving the store: {e}")
        }
        _ => return CliError::Internal(format!("serving the store: {e}")),
    };
    CliError::usage(message, None)
}

pub fn add(cli: &Cli, path: &Path, name: Option<&str>) -> Result<(), CliError> {
    let store = open_store(cli)?;
    let name = match name {
        Some(n) => n.to_string(),
        None => cmod_schema::store_path::sanitize_name(
            &path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
    };
    let tmp = store.temp_path("add");
    cmod_store::content::copy_in(path, &tmp, false)?;
    let none = BTreeMap::new();
    let info = store.register(
        &tmp,
        &cmod_store::registry::Registration {
            kind: PathKind::Source,
            name: &name,
            deriver: None,
            sandbox: None,
            landlock_abi: None,
            candidates: &none.into_iter().collect(),
        },
    )?;
    outln!("{}", store.path_of(&info.path).display());
    Ok(())
}
