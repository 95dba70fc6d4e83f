//! A private BuildGrid 0.4.4 + PostgreSQL 15 on loopback, started from the test harness and torn
//! down on drop (process groups killed, directories removed).
//!
//! Everything lives in one temporary directory whose name has a space in it (so paths with
//! spaces are exercised): the PostgreSQL cluster (owned by the `postgres` user when the tests
//! run as root, as PostgreSQL refuses to run as root), its unix socket, the CAS, the config and
//! the logs. Missing BuildGrid or PostgreSQL fails the test with what to run: never a skip.
//! Servers of a test process that was killed (so never dropped them) are stopped by the next
//! start: each directory records its owner's pid and bgd's process group.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use cmod_reapi::{Client, Endpoint};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// The BuildGrid version scripts/install-deps installs.
const BUILDGRID_VERSION: &str = "0.4.4";
/// The configuration, with placeholders (shared with bench/buildgrid.py).
const CONFIG_TEMPLATE: &str = include_str!("buildgrid.yml");
/// How long BuildGrid may take to answer its first Capabilities call.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A running BuildGrid with its PostgreSQL.
pub struct BuildGrid {
    dir: tempfile::TempDir,
    pg_ctl: PathBuf,
    pg_data: PathBuf,
    postgres_user: Option<(u32, u32)>,
    bgd: PathBuf,
    config: PathBuf,
    server: Option<Child>,
    url: String,
    secured: Secured,
}

/// How a server is secured; the default is plain gRPC, the unnamed instance and no
/// authentication.
#[derive(Debug, Clone, Default)]
pub struct Secured {
    /// Serve TLS with this certificate and key (PEM files) at `grpcs://localhost:PORT`. The
    /// test process must trust the certificate's issuer (`SSL_CERT_FILE`) before starting.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Accept only requests bearing a JWT signed (HS256) with the secret in this file.
    pub jwt_secret: Option<PathBuf>,
    /// The `authorization` header value the harness itself sends (`Bearer <token>`).
    pub authorization: Option<String>,
    /// The instance name (the only one served).
    pub instance: String,
}

impl BuildGrid {
    /// A server shared by the tests of this binary that overlap in time; it stops when the last
    /// of them drops its handle.
    pub fn shared() -> Arc<BuildGrid> {
        static SHARED: Mutex<Weak<BuildGrid>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = slot.upgrade() {
            return server;
        }
        let server = Arc::new(BuildGrid::start());
        *slot = Arc::downgrade(&server);
        server
    }

    /// Starts PostgreSQL and BuildGrid; panics with the logs when they do not come up.
    pub fn start() -> BuildGrid {
        BuildGrid::start_with(Secured::default())
    }

    /// [`BuildGrid::start`], secured as `secured` says.
    pub fn start_with(secured: Secured) -> BuildGrid {
        let bgd = buildgrid_bin();
        let pg_bin = postgres_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("cmod reapi ")
            .tempdir()
            .expect("create the server directory");
        // Traversable by the postgres user, which owns only pg/.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::write(dir.path().join("owner.pid"), std::process::id().to_string()).expect("owner.pid");
        reap_stale_servers(&pg_bin.join("pg_ctl"));
        let mut grid = BuildGrid {
            pg_ctl: pg_bin.join("pg_ctl"),
            pg_data: dir.path().join("pg/data"),
            postgres_user: postgres_user(),
            bgd: bgd.clone(),
            config: PathBuf::new(),
            server: None,
            url: String::new(),
            dir,
            secured,
        };
        let pg_port = free_port();
        grid.start_postgres(&pg_bin, pg_port);
        // psycopg2 explicitly: BuildGrid's LISTEN/NOTIFY loop (which wakes waiting bots and
        // operation streams) is written for it, and SQLAlchemy 2.1 maps a bare `postgresql://`
        // to psycopg 3, where that loop fails and leases are never handed out.
        let db = format!("postgresql+psycopg2://bgd@127.0.0.1:{pg_port}/postgres");
        grid.run_checked(
            Command::new(&bgd).args(["migrate", "apply", &db]),
            "bgd migrate apply",
        );
        let port = free_port();
        grid.config = grid.write_config(port, &db);
        grid.url = match grid.secured.tls {
            Some(_) => format!("grpcs://localhost:{port}"),
            None => format!("grpc://127.0.0.1:{port}"),
        };
        grid.start_server();
        grid
    }

    /// Starts `bgd server` (in its own process group) and waits until it serves.
    fn start_server(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("bgd.log"))
            .expect("open bgd.log");
        let mut command = Command::new(&self.bgd);
        command
            .arg("server")
            .arg("start")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0);
        let server = command.spawn().expect("start bgd server");
        // Its process group, for reap_stale_servers should this test process be killed.
        fs::write(self.dir.path().join("bgd.pid"), server.id().to_string()).expect("bgd.pid");
        self.server = Some(server);
        self.wait_until_serving();
    }

    /// Stops `bgd server`: SIGTERM to its process group, SIGKILL after 5 s.
    fn stop_server(&mut self) {
        if let Some(mut server) = self.server.take() {
            let group = Pid::from_raw(server.id() as i32);
            let _ = killpg(group, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(server.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = killpg(group, Signal::SIGKILL);
            let _ = server.wait();
        }
    }

    /// Kills BuildGrid (SIGKILL, as a crash would) and starts it again on the same port and
    /// database: operations and queued jobs survive in PostgreSQL.
    pub fn crash_and_restart_server(&mut self) {
        if let Some(server) = &self.server {
            let _ = killpg(Pid::from_raw(server.id() as i32), Signal::SIGKILL);
        }
        self.stop_server();
        self.start_server();
    }

    /// The server's URL (`grpc://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client of this server (its instance, the harness's authorization).
    pub fn client(&self) -> Client {
        Client::connect(self.endpoint()).expect("connect")
    }

    fn endpoint(&self) -> Endpoint {
        let mut endpoint = Endpoint::parse(&self.url)
            .expect("endpoint")
            .with_instance_name(self.secured.instance.clone());
        if let Some(value) = &self.secured.authorization {
            endpoint = endpoint
                .with_header("authorization", value)
                .expect("authorization header");
        }
        endpoint
    }

    /// The directory holding everything of this server (for scratch files too).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn start_postgres(&self, bin: &Path, port: u16) {
        let pg = self.dir.path().join("pg");
        let sock = pg.join("sock");
        fs::create_dir_all(&sock).expect("create pg/sock");
        if let Some((uid, gid)) = self.postgres_user {
            for p in [&pg, &sock] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown to postgres");
            }
        }
        self.run_checked(
            self.as_postgres(&bin.join("initdb"))
                .arg("-D")
                .arg(&self.pg_data)
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "bgd",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "-N",
                ]),
            "initdb",
        );
        // Settings in postgresql.conf rather than `pg_ctl -o`, which goes through a shell.
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n",
            sock.display()
        );
        let conf_path = self.pg_data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf_path).expect("read postgresql.conf");
        text.push_str(&conf);
        fs::write(&conf_path, text).expect("write postgresql.conf");
        self.run_checked(
            self.as_postgres(&self.pg_ctl)
                .arg("-D")
                .arg(&self.pg_data)
                .arg("-l")
                .arg(pg.join("postgres.log"))
                .args(["-w", "-t", "60", "start"]),
            "pg_ctl start",
        );
    }

    /// A command run as the postgres user when the tests run as root.
    fn as_postgres(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        if let Some((uid, gid)) = self.postgres_user {
            c.uid(uid).gid(gid).env("HOME", self.dir.path().join("pg"));
        }
        c.current_dir(self.dir.path()).stdin(Stdio::null());
        c
    }

    fn write_config(&self, port: u16, db: &str) -> PathBuf {
        let cas = self.dir.path().join("cas");
        fs::create_dir_all(&cas).expect("create cas dir");
        let channel = match &self.secured.tls {
            Some((cert, key)) => format!(
                "    insecure-mode: false\n    credentials:\n      tls-server-key: {}\n      tls-server-cert: {}\n",
                yaml_string(key),
                yaml_string(cert)
            ),
            None => "    insecure-mode: true\n".to_string(),
        };
        let authorization = match &self.secured.jwt_secret {
            Some(secret) => format!(
                "authorization:\n  method: jwt\n  secret: {}\n  algorithm: hs256\n",
                yaml_string(secret)
            ),
            None => String::new(),
        };
        let instance = yaml_string(Path::new(&self.secured.instance));
        let config = CONFIG_TEMPLATE
            .replace("{port}", &port.to_string())
            .replace("{db}", db)
            .replace("{cas}", &yaml_string(&cas))
            .replace("{instance}", &instance)
            .replace("{max_refs}", "1024")
            .replace("{channel}", &channel)
            .replace("{authorization}", &authorization);
        let path = self.dir.path().join("bgd config.yml");
        fs::write(&path, config).expect("write the BuildGrid config");
        path
    }

    /// Runs `command` to completion, panicking with its output when it fails.
    fn run_checked(&self, command: &mut Command, what: &str) {
        let out = command
            .output()
            .unwrap_or_else(|e| panic!("{what}: cannot run it: {e}"));
        if !out.status.success() {
            panic!(
                "{what} failed ({}):\n{}{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
        }
    }

    fn wait_until_serving(&mut self) {
        let started = Instant::now();
        let endpoint = self.endpoint();
        loop {
            if let Ok(client) = Client::connect(endpoint.clone()) {
                if client.capabilities().is_ok() {
                    return;
                }
            }
            let exited = self
                .server
                .as_mut()
                .and_then(|s| s.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "bgd server exited ({status}) before serving:\n{}",
                    self.logs()
                );
            }
            if started.elapsed() > START_TIMEOUT {
                panic!(
                    "bgd server did not answer within {START_TIMEOUT:?}:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The tails of the server's and PostgreSQL's logs.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["bgd.log", "pg/postgres.log"] {
            let text = fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            out.push_str(&format!("--- {name} (last lines) ---\n"));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for BuildGrid {
    fn drop(&mut self) {
        self.stop_server();
        stop_postgres(&self.pg_ctl, &self.pg_data, self.postgres_user);
    }
}

/// Stops the cluster in `data`: `pg_ctl -m immediate stop`, then SIGKILL to the postmaster
/// named in its pid file if it is still there.
fn stop_postgres(pg_ctl: &Path, data: &Path, user: Option<(u32, u32)>) {
    let mut command = Command::new(pg_ctl);
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    if let Some(dir) = data.parent() {
        command.current_dir(dir);
    }
    let _ = command
        .arg("-D")
        .arg(data)
        .args(["-m", "immediate", "-w", "stop"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Some(pid) = first_number(&data.join("postmaster.pid")) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The number on the first line of the file `p`.
fn first_number(p: &Path) -> Option<i32> {
    let text = fs::read_to_string(p).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Whether the process `pid` exists and is not a zombie (a killed test process may linger as
/// one until it is reaped).
fn process_alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// Stops the servers left by test processes that were killed before they could drop them
/// (their directory names the owner's pid), and removes their directories.
fn reap_stale_servers(pg_ctl: &Path) {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let ours = entry
            .file_name()
            .to_string_lossy()
            .starts_with("cmod reapi ");
        let Some(owner) = first_number(&dir.join("owner.pid")).filter(|_| ours) else {
            continue;
        };
        if process_alive(owner) {
            continue;
        }
        if let Some(group) = first_number(&dir.join("bgd.pid")) {
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        }
        stop_postgres(pg_ctl, &dir.join("pg/data"), postgres_user());
        let _ = fs::remove_dir_all(&dir);
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local addr").port()
}

/// `p` as a double-quoted YAML string.
fn yaml_string(p: &Path) -> String {
    let s = p.to_str().expect("UTF-8 temp path");
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A JWT signed (HS256) with `secret`, expiring `seconds` from now (negative: already
/// expired), made by PyJWT from BuildGrid's own environment.
pub fn jwt(secret: &str, seconds: i64) -> String {
    let python = buildgrid_bin().with_file_name("python3");
    let out = Command::new(&python)
        .args([
            "-c",
            "import jwt, sys, time; print(jwt.encode({'sub': 'cmod-test', 'exp': int(time.time()) + int(sys.argv[2])}, sys.argv[1], algorithm='HS256'))",
            secret,
            &seconds.to_string(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const INSTALL_HINT: &str = "run scripts/install-deps (it installs PostgreSQL and BuildGrid)";

/// `bgd` of the venv scripts/install-deps makes (or `$CMOD_BUILDGRID_VENV/bin/bgd`).
fn buildgrid_bin() -> PathBuf {
    let venv = match std::env::var_os("CMOD_BUILDGRID_VENV") {
        Some(v) => PathBuf::from(v),
        None => {
            let data = std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
                .expect("HOME is not set");
            data.join(format!("cmod-deps/buildgrid-{BUILDGRID_VERSION}"))
        }
    };
    let bgd = venv.join("bin/bgd");
    assert!(
        bgd.is_file(),
        "BuildGrid {BUILDGRID_VERSION} is not installed ({} is missing): {INSTALL_HINT}",
        bgd.display()
    );
    bgd
}

/// The directory of PostgreSQL's server programs (Debian keeps them out of PATH).
fn postgres_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    });
    on_path
        .unwrap_or_else(|| panic!("PostgreSQL's initdb and pg_ctl were not found: {INSTALL_HINT}"))
}

/// The postgres user's uid and gid when the tests run as root (PostgreSQL refuses root).
fn postgres_user() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let entry = passwd.lines().find(|l| l.starts_with("postgres:")).unwrap_or_else(|| {
        panic!("the tests run as root and there is no `postgres` user to run PostgreSQL: {INSTALL_HINT}")
    });
    let fields: Vec<&str> = entry.split(':').collect();
    let id = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .expect("postgres uid/gid")
    };
    Some((id(2), id(3)))
}
