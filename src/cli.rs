//! Command-line definitions (clap). Names follow Cargo; semantics follow Nix.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A content-addressed store and hermetic builder for C++20 modules.
#[derive(Debug, Parser)]
#[command(name = "cmod", version, about, propagate_version = true)]
pub struct Cli {
    /// Store root (default: $CMOD_STORE, else $XDG_DATA_HOME/cmod, else
    /// $HOME/.local/share/cmod).
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Path to cmod.toml (default: search upwards from the current directory).
    #[arg(long, global = true, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Colour on stderr: `auto` (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE
    /// forces it), `always` or `never`.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "WHEN",
        default_value = "auto"
    )]
    pub color: crate::colour::ColorChoice,
    /// No progress or status lines on stderr (`Compiling`, `Finished`, `Running`...):
    /// only errors and warnings, compilers' warnings included (as Cargo's `-q`).
    #[arg(short = 'q', long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say more: each step's command line (`Running `c++ ...``), each built step's time
    /// (`Built <step> in 1.23s`) and the steps that were fresh (`Fresh <step>`).
    #[arg(short = 'v', long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
    /// Where this command substitutes from and what it signs with: made once from the
    /// flags and configuration files, before the command runs (see
    /// `commands::share::sharing_for`); `None` for commands that share nothing.
    #[arg(skip)]
    pub sharing: Option<std::sync::Arc<cmod_store::substitute::Sharing>>,
    /// How other stores and caches are reached: read from the environment once, before
    /// the command runs.
    #[arg(skip)]
    pub connect: cmod_store::connect::Connect,
    /// Where git dependencies are fetched from (`$CMOD_GIT_REWRITE`, read once).
    #[arg(skip)]
    pub git_rewrites: cmod_evaluator::git::Rewrites,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new package in a new directory.
    New {
        /// Directory (and package name).
        path: PathBuf,
        /// Package name (default: the directory's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Create a new package in the current directory.
    Init {
        /// Package name (default: the directory's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Build targets into the store.
    #[command(alias = "build")]
    Realise(RealiseArgs),
    /// Build a binary and run it.
    Run(RunArgs),
    /// Build the [[test]] binaries and run each in the sandbox; exit 1 if any fails.
    Test(TestArgs),
    /// Write cmod.lock (toolchain identity, dependency trees; with --outputs, pinned
    /// output hashes that `realise --locked` verifies).
    Lock(LockArgs),
    /// Print the derivations of targets.
    Eval(EvalArgs),
    /// Print one derivation (given a target, a .drv path or an output path).
    ShowDerivation {
        /// A target name, a `.drv` store path or an output path.
        what: String,
        #[command(flatten)]
        build: BuildOpts,
    },
    /// Print the module graph.
    Graph {
        /// Output format: Graphviz `dot`, or `json`.
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
        #[command(flatten)]
        build: BuildOpts,
    },
    /// Show metadata of store paths (or of targets' outputs).
    PathInfo(PathInfoArgs),
    /// Print the build log of a derivation, an output path or a target.
    Log {
        /// A target name, a `.drv` store path or an output path.
        what: String,
        #[command(flatten)]
        build: BuildOpts,
    },
    /// Delete store paths that no root keeps alive.
    Gc {
        /// Only print what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Stop after freeing this much (bytes, or with a K, M, G or T suffix).
        #[arg(long, value_name = "SIZE")]
        max_freed: Option<String>,
        /// Print the roots and exit.
        #[arg(long)]
        print_roots: bool,
        /// Print the live paths and exit.
        #[arg(long)]
        print_live: bool,
        /// Print the dead paths (what GC would delete) and exit.
        #[arg(long)]
        print_dead: bool,
    },
    /// Copy store paths (or the package's targets, with their signed build trace) to or
    /// from a binary cache or another machine.
    Copy(CopyArgs),
    /// Manage signing keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Show why store path A depends on store path B (the chain of references).
    WhyDepends {
        /// The path (or target) that depends.
        a: String,
        /// The path it depends on.
        b: String,
        #[command(flatten)]
        build: BuildOpts,
    },
    /// Operations on the store itself.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Run a command inside the sandbox that build steps get, to see what they see.
    SandboxExec {
        /// Isolation mode.
        #[arg(long, value_name = "MODE", default_value = "full")]
        sandbox: String,
        #[command(flatten)]
        build: BuildOpts,
        /// The program and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Re-resolve dependencies (all, or the named ones) and update cmod.lock.
    Update(UpdateArgs),
    /// Add a dependency to cmod.toml (keeping its formatting and comments).
    #[command(disable_version_flag = true)]
    Add(AddArgs),
    /// Remove a dependency from cmod.toml.
    Remove(RemoveArgs),
    /// Print the package dependency tree.
    Tree(TreeArgs),
    /// Resolve every dependency and put its sources in the store, for offline builds.
    Fetch {
        #[command(flatten)]
        build: BuildOpts,
    },
    /// Write the compile database (compile_commands.json) for clangd and editors: every
    /// unit of the whole workspace wherever it runs (or of the -p members) and of its
    /// dependencies, tests included, with host paths and the build's flags.
    CompileCommands(CompileCommandsArgs),
    /// Print the toolchain and its identity.
    Toolchain {
        /// Print the identity as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        build: BuildOpts,
    },
    /// Serve a REAPI server's build steps (Bots API, e.g. BuildGrid): run each leased
    /// action in cmod's sandbox with this machine's toolchains, until killed.
    Worker(WorkerArgs),
    /// Print a shell completion script (e.g. `cmod completions bash >
    /// ~/.local/share/bash-completion/completions/cmod`).
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a man page in roff (e.g. `cmod man | man -l -`, or `cmod man realise`).
    Man {
        /// The command whose page to print (`store verify` as `store verify`); default:
        /// cmod's own page.
        command: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Check that every valid path is intact (re-hashing its contents); any corrupt or
    /// under-signed path is listed and exits 3.
    Verify {
        /// Only check that contents exist, without re-hashing.
        #[arg(long)]
        no_contents: bool,
        /// Re-hash contents (as Nix's `--check-contents`).
        #[arg(long)]
        check_contents: bool,
        /// Require this many valid signatures by trusted keys on every path.
        #[arg(long, value_name = "N")]
        sigs_needed: Option<usize>,
        /// Repair what is damaged (as `cmod store repair` of the whole store).
        #[arg(long)]
        repair: bool,
        /// Build and sharing options of the repair (`--trusted-public-keys` also names
        /// the keys `--sigs-needed` counts).
        #[command(flatten)]
        run: Box<RunOpts>,
    },
    /// Rebuild or re-substitute damaged paths (unreadable metadata, missing or corrupt
    /// contents): the named store paths or targets, the paths the package's targets use,
    /// or (outside a package) every path of the store.
    Repair(RepairArgs),
    /// Sign store paths (or targets' outputs and build trace) with a secret key.
    Sign(SignArgs),
    /// Serve this store over stdin/stdout (what `cmod copy ssh://` runs remotely).
    Serve(ServeArgs),
    /// Add a file or directory to the store as a source path and print it.
    Add {
        /// The file or directory to add.
        path: PathBuf,
        /// Store path name (default: the file name).
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum GraphFormat {
    Dot,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum MessageFormat {
    #[default]
    Human,
    Json,
}

/// Options shared by every command that evaluates the manifest.
#[derive(Debug, Clone, Args, Default)]
pub struct BuildOpts {
    /// Use the release profile.
    #[arg(long, global = true)]
    pub release: bool,
    /// Only this workspace member (repeatable; default: all members at the workspace
    /// root, else the current package).
    #[arg(short = 'p', long = "package", value_name = "MEMBER", global = true)]
    pub package: Vec<String>,
    /// Fail (exit 2) if cmod.lock would change; fail (exit 3) if an output differs from
    /// the one it pins.
    #[arg(long, global = true)]
    pub locked: bool,
    /// Use only the store and the git cache: fetch nothing, ask no substituter.
    #[arg(long, global = true)]
    pub offline: bool,
    /// `--locked` and `--offline`.
    #[arg(long, global = true)]
    pub frozen: bool,
}

impl Cli {
    /// The verbosity `-q`/`-v` ask for.
    pub fn verbosity(&self) -> crate::output::Verbosity {
        match (self.quiet, self.verbose) {
            (true, _) => crate::output::Verbosity::Quiet,
            (_, true) => crate::output::Verbosity::Verbose,
            _ => crate::output::Verbosity::Normal,
        }
    }
}

impl BuildOpts {
    pub fn locked(&self) -> bool {
        self.locked || self.frozen
    }

    pub fn offline(&self) -> bool {
        self.offline || self.frozen
    }
}

/// Options of commands that build.
#[derive(Debug, Clone, Args)]
pub struct RunOpts {
    /// Parallel build jobs (default: number of cores).
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Isolation of build steps: `full` (default), `landlock`, or `off`.
    #[arg(long, value_name = "MODE", default_value = "full")]
    pub sandbox: String,
    /// Keep the build directory of a failed step.
    #[arg(long)]
    pub keep_failed: bool,
    /// Also reuse outputs built under this sandbox mode (repeatable). By default outputs
    /// of different modes are never shared.
    #[arg(long, value_name = "MODE")]
    pub accept_outputs_from: Vec<String>,
    /// Wall-clock limit per build step.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub action_timeout: u64,
    /// Limit on the bytes a build step may write.
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 30)]
    pub max_output_size: u64,
    /// Output format of progress messages.
    #[arg(long, value_enum, default_value = "human")]
    pub message_format: MessageFormat,
    /// Write an HTML report of the build's timings (a timeline of the steps on each
    /// worker, the critical path, the slowest steps, evaluation time) to
    /// `.cmod/timings/cmod-timing-<UTC time>.html` at the workspace root (a time like
    /// `20261205T144015.123Z`), and to `cmod-timing.html` beside it (the latest). Written
    /// when steps were realised in a package (`store repair` outside one has none).
    #[arg(long)]
    pub timings: bool,
    #[command(flatten)]
    pub sharing: SharingOpts,
}

impl RunOpts {
    /// The typed build settings these options ask for.
    pub fn settings(&self) -> cmod_ops::build::BuildSettings {
        cmod_ops::build::BuildSettings {
            jobs: self.jobs,
            sandbox: self.sandbox.clone(),
            keep_failed: self.keep_failed,
            accept_outputs_from: self.accept_outputs_from.clone(),
            action_timeout: std::time::Duration::from_secs(self.action_timeout),
            max_output_size: self.max_output_size,
        }
    }
}

/// Where to substitute from and whom to trust (override user configuration and
/// `[cache]` in cmod.toml).
#[derive(Debug, Clone, Args, Default)]
pub struct SharingOpts {
    /// Substituter URLs (repeat or separate by spaces; replaces the configured list).
    #[arg(long, value_name = "URL")]
    pub substituters: Vec<String>,
    /// Trusted public keys `name:base64` (repeat or separate by spaces; replaces the
    /// configured list).
    #[arg(long, value_name = "KEY")]
    pub trusted_public_keys: Vec<String>,
    /// Do not substitute.
    #[arg(long)]
    pub no_substitute: bool,
    /// Accept unsigned paths and trace entries from remote sources (NOT recommended).
    #[arg(long)]
    pub no_require_sigs: bool,
    /// A REAPI server (`grpc://host:port`, `grpcs://host[:port]`) whose action cache is
    /// asked before each step is built and told about each step built here (replaces the
    /// configured `remote-cache`; headers from $CMOD_REMOTE_HEADERS).
    #[arg(long, value_name = "URL")]
    pub remote_cache: Option<String>,
    /// The REAPI instance name on the remote cache's and executor's server.
    #[arg(long, value_name = "NAME")]
    pub remote_instance_name: Option<String>,
    /// A REAPI server (`grpc://host:port`) that executes every build step on its workers
    /// (`cmod worker`); outputs are checked and registered here as if built here.
    #[arg(long, value_name = "URL")]
    pub remote_executor: Option<String>,
    /// Build locally, with a warning, when the remote executor is unreachable (default:
    /// the step fails with a remedy).
    #[arg(long, requires = "remote_executor")]
    pub remote_fallback: bool,
    /// Do not use a remote cache, even a configured one.
    #[arg(long, conflicts_with = "remote_cache")]
    pub no_remote_cache: bool,
}

#[derive(Debug, Args)]
pub struct RealiseArgs {
    /// Targets (binary or library names of the package); default: all.
    pub targets: Vec<String>,
    #[command(flatten)]
    pub build: BuildOpts,
    #[command(flatten)]
    pub run: RunOpts,
    /// Name of the out-link (`result`); others get `<name>-<target>`.
    #[arg(long, short = 'o', value_name = "NAME", default_value = "result")]
    pub out_link: PathBuf,
    /// Do not create out-links.
    #[arg(long)]
    pub no_link: bool,
    /// Print the targets' output paths on stdout.
    #[arg(long)]
    pub print_out_paths: bool,
    /// Only show what would be built.
    #[arg(long)]
    pub dry_run: bool,
    /// Rebuild every derivation of the targets, even those in the store, and compare the
    /// results bit for bit (exit 3 on any difference).
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Store paths, or targets of the package here (default: everything they use, or the
    /// whole store outside a package).
    pub what: Vec<String>,
    /// Only check that contents exist, without re-hashing them.
    #[arg(long)]
    pub no_contents: bool,
    #[command(flatten)]
    pub build: BuildOpts,
    #[command(flatten)]
    pub run: RunOpts,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// Also realise every target and pin the content hash of its output.
    #[arg(long)]
    pub outputs: bool,
    #[command(flatten)]
    pub build: BuildOpts,
    #[command(flatten)]
    pub run: RunOpts,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Which binary to run (default: the only one).
    #[arg(long)]
    pub bin: Option<String>,
    #[command(flatten)]
    pub build: BuildOpts,
    #[command(flatten)]
    pub run: RunOpts,
    /// Name of the out-link to the binary (a GC root).
    #[arg(long, short = 'o', value_name = "NAME", default_value = "result")]
    pub out_link: PathBuf,
    /// Do not create the out-link.
    #[arg(long)]
    pub no_link: bool,
    /// Arguments for the program.
    #[arg(last = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Tests to run (`name` or `member/name`); default: every test of the selected members.
    pub tests: Vec<String>,
    /// Build the tests but do not run them.
    #[arg(long)]
    pub no_run: bool,
    /// Print the output of passing tests too (failing tests' output is always printed).
    #[arg(long)]
    pub show_output: bool,
    #[command(flatten)]
    pub build: BuildOpts,
    #[command(flatten)]
    pub run: RunOpts,
    /// Arguments for every test binary.
    #[arg(last = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Targets (default: all).
    pub targets: Vec<String>,
    /// Print derivations as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub build: BuildOpts,
}

#[derive(Debug, Args)]
pub struct CompileCommandsArgs {
    /// Where to write it (`-` for stdout; default: `[build] compile-commands` of the
    /// workspace manifest, else compile_commands.json at the workspace root).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub build: BuildOpts,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Packages to update (default: all).
    pub packages: Vec<String>,
    /// Pin the one named package to this version (semver dependencies) or revision.
    #[arg(long, value_name = "VERSION|REV")]
    pub precise: Option<String>,
    #[command(flatten)]
    pub build: BuildOpts,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The dependency's package name.
    pub name: String,
    /// Git repository URL (`https://`, `file://` or a path).
    #[arg(long, value_name = "URL")]
    pub git: Option<String>,
    /// With --git: the tag to pin (e.g. `v1.2.0`).
    #[arg(long)]
    pub tag: Option<String>,
    /// With --git: the commit to pin (a full or abbreviated hash).
    #[arg(long)]
    pub rev: Option<String>,
    /// With --git: the branch to follow (its head is locked in cmod.lock).
    #[arg(long)]
    pub branch: Option<String>,
    /// A semver requirement, e.g. `^1.2`: with --git, on the repository's tags; with
    /// --path, on the version of the package found there.
    #[arg(long)]
    pub version: Option<String>,
    /// A local package directory (relative to the manifest).
    #[arg(long, value_name = "DIR")]
    pub path: Option<String>,
    /// Add to [dev-dependencies].
    #[arg(long)]
    pub dev: bool,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The dependency to remove.
    pub name: String,
    /// Remove from [dev-dependencies].
    #[arg(long)]
    pub dev: bool,
}

#[derive(Debug, Args)]
pub struct TreeArgs {
    /// Show what depends on this package instead.
    #[arg(short = 'i', long = "invert", value_name = "PACKAGE")]
    pub invert: Option<String>,
    /// Show this many levels.
    #[arg(long)]
    pub depth: Option<usize>,
    /// Show packages required by more than one package, with their requirers.
    #[arg(short = 'd', long)]
    pub duplicates: bool,
    #[command(flatten)]
    pub build: BuildOpts,
}

#[derive(Debug, Args)]
pub struct PathInfoArgs {
    /// Store paths or targets (default: the package's targets).
    pub paths: Vec<String>,
    /// Include the closure (references, recursively).
    #[arg(short, long)]
    pub recursive: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Print sizes.
    #[arg(short = 's', long)]
    pub size: bool,
    /// Print closure sizes.
    #[arg(short = 'S', long)]
    pub closure_size: bool,
    /// Print sizes in binary units (`1.5 MiB`) instead of bytes.
    #[arg(long)]
    pub human_readable: bool,
    #[command(flatten)]
    pub build: BuildOpts,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Copy to this store URL (file:///dir, ssh://[user@]host[:port], http(s)://...).
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "from",
        required_unless_present = "from"
    )]
    pub to: Option<String>,
    /// Copy from this store URL into the local store.
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,
    /// Store paths, or targets of the current package (default: all its targets, with
    /// every output of their builds and the signed build-trace entries).
    pub what: Vec<String>,
    /// Parallel transfers (default: 4).
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
    /// With --to: where to substitute what is missing locally from (repeat or separate
    /// by spaces; replaces the configured substituters).
    #[arg(long, value_name = "URL", conflicts_with = "from")]
    pub substituters: Vec<String>,
    /// With --to: push only what is already in the local store.
    #[arg(long, conflicts_with_all = ["from", "substituters"])]
    pub no_substitute: bool,
    /// Trusted public keys for what is received, from --from or the substituters
    /// (replaces the configured list).
    #[arg(long, value_name = "KEY")]
    pub trusted_public_keys: Vec<String>,
    /// Accept unsigned paths from --from or the substituters (NOT recommended).
    #[arg(long)]
    pub no_require_sigs: bool,
    /// With targets: the sandbox mode whose build trace to fetch (`full`, the default,
    /// `landlock` or `off`), as `realise --sandbox` would look it up.
    #[arg(long, value_name = "MODE")]
    pub sandbox: Option<String>,
    #[command(flatten)]
    pub build: BuildOpts,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate an ed25519 key pair in the `name:base64` form.
    Generate {
        /// The key's name (e.g. `cache.example.org-1`).
        name: String,
        /// Where to write the secret key (created with mode 0600).
        #[arg(long, value_name = "FILE")]
        secret_key: PathBuf,
        /// Where to write the public key.
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The secret key file.
    #[arg(long, value_name = "FILE")]
    pub key_file: PathBuf,
    /// Sign the closure of the given paths too.
    #[arg(short, long)]
    pub recursive: bool,
    /// Store paths, or targets (default: all targets, their build's outputs and trace).
    pub what: Vec<String>,
    #[command(flatten)]
    pub build: BuildOpts,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Speak the protocol on stdin/stdout (the only mode).
    #[arg(long, required = true)]
    pub stdio: bool,
    /// Require a trusted signature on everything added.
    #[arg(long)]
    pub require_sigs: bool,
    /// Keys trusted with --require-sigs (default: the configured ones).
    #[arg(long, value_name = "KEY")]
    pub trusted_public_keys: Vec<String>,
}

/// `cmod worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The REAPI server (`grpc://host:port` or `grpcs://host[:port]`); headers from
    /// $CMOD_REMOTE_HEADERS.
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// The REAPI instance name.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub instance_name: String,
    /// This worker's bot id (default: `cmod-<hostname>-<pid>`).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// The sandbox mode it runs builders in: `full` (default), `landlock` or `off`.
    #[arg(long, value_name = "MODE", default_value = "full")]
    pub sandbox: String,
    /// Where it lays out each action (default: a directory under the system's temp dir).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Wall-clock limit per build step.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub action_timeout: u64,
    /// How much of the store paths actions ship to keep between actions, so the next
    /// action fetches only what it lacks (0 keeps none).
    #[arg(long, value_name = "MIB", default_value_t = 4096)]
    pub keep_store_mib: u64,
}
