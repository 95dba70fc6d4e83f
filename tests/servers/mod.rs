//! Real servers on loopback: OpenSSH `sshd` with keys made here, nginx with WebDAV PUT
//! behind a bearer token (the sharing tests), and `git http-backend` behind nginx through
//! fcgiwrap ([`git_http`], the git dependency tests). A server that cannot start fails the
//! test with its log; nothing is skipped.

#![allow(dead_code)]

pub mod git_http;
pub mod hostile;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_for_port(port: u16, what: &str, log: &Path, child: &mut Child) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before listening on 127.0.0.1:{port}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{what} did not listen on 127.0.0.1:{port} within 15 s:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e} (run scripts/install-deps)"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An OpenSSH server on a loopback port that accepts one key made for the test.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Sshd {
    pub fn start(dir: &Path) -> Sshd {
        std::fs::create_dir_all(dir).unwrap();
        // sshd needs its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        for key in ["host_key", "client_key"] {
            run_ok(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(dir.join(key)),
                "ssh-keygen",
            );
        }
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        let port = free_port();
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "root".into());
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {d}/sshd.pid\nLogLevel ERROR\n",
            d = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        std::fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_pub}"),
        )
        .unwrap();
        std::fs::write(
            dir.join("ssh_config"),
            format!(
                "Host cmodtest\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d}/client_key\n  \
                 IdentitiesOnly yes\n  StrictHostKeyChecking yes\n  UserKnownHostsFile {d}/known_hosts\n  LogLevel ERROR\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let log = dir.join("sshd.log");
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("OpenSSH sshd is not installed: run scripts/install-deps (openssh-server)");
        let mut child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start sshd");
        wait_for_port(port, "sshd", &log, &mut child);
        Sshd {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// `CMOD_SSHOPTS` for reaching this server as host `cmodtest`.
    pub fn ssh_opts(&self) -> String {
        format!("-F {}", self.dir.join("ssh_config").display())
    }

    /// The URL of a store at `remote_store` on this server (paths percent-encoded, so a
    /// checkout whose path has spaces works).
    pub fn url(&self, remote_store: &Path) -> String {
        let enc = |s: &str| s.replace('%', "%25").replace(' ', "%20");
        format!(
            "ssh://cmodtest?remote-store={}&remote-program={}",
            enc(&remote_store.display().to_string()),
            enc(env!("CARGO_BIN_EXE_cmod"))
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx serving `root` with GET for everyone and WebDAV PUT for bearer `token`, over
/// plain HTTP or over TLS with a certificate from a CA made for the test.
pub struct Nginx {
    child: Child,
    pub port: u16,
    pub root: PathBuf,
    /// With TLS: the test CA's certificate (PEM), which clients must be told to trust.
    pub ca: Option<PathBuf>,
    /// Log-barrier requests sent so far (see `requests`).
    barriers: std::cell::Cell<u32>,
}

pub const TOKEN: &str = "s3cret-token";

/// A CA and a server certificate for `127.0.0.1` and `localhost` signed by it (ECDSA
/// P-256, two days), made with the `openssl` command. Returns (ca.crt, server.crt,
/// server.key).
pub fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    let (crt, key, csr) = (
        dir.join("server.crt"),
        dir.join("server.key"),
        dir.join("server.csr"),
    );
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-days", "2", "-subj", "/CN=cmod test CA"])
            .args(ec)
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca),
        "openssl req (CA)",
    );
    run_ok(
        Command::new("openssl")
            .args(["req", "-subj", "/CN=127.0.0.1"])
            .args(ec)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
        "openssl req (server)",
    );
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-set_serial", "2"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&crt),
        "openssl x509 (sign server certificate)",
    );
    (ca, crt, key)
}

impl Nginx {
    pub fn start(dir: &Path) -> Nginx {
        Nginx::start_with(dir, false)
    }

    /// The same server over HTTPS only.
    pub fn start_tls(dir: &Path) -> Nginx {
        Nginx::start_with(dir, true)
    }

    fn start_with(dir: &Path, tls: bool) -> Nginx {
        Nginx::start_with_locations(dir, tls, "")
    }

    /// The server with extra `location` blocks (nginx syntax) ahead of the WebDAV root.
    pub fn start_with_locations(dir: &Path, tls: bool, locations: &str) -> Nginx {
        let root = dir.join("www");
        std::fs::create_dir_all(&root).unwrap();
        for t in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.join(t)).unwrap();
        }
        let port = free_port();
        let d = dir.display();
        let (ca, listen) = if tls {
            let (ca, crt, key) = make_certificates(dir);
            let listen = format!(
                "listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};",
                crt.display(),
                key.display()
            );
            (Some(ca), listen)
        } else {
            (None, format!("listen 127.0.0.1:{port};"))
        };
        let conf = format!(
            "daemon off;\nmaster_process off;\nuser root;\nworker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             client_max_body_size 0;\n  keepalive_requests 100000;\n\
             map $http_authorization $auth_ok {{ default 0; \"Bearer {TOKEN}\" 1; }}\n\
             map \"$request_method$auth_ok\" $deny {{ default 0; PUT0 1; }}\n\
             server {{\n    {listen}\n    root {root};\n    {locations}\n    location / {{\n      \
             if ($deny) {{ return 401; }}\n      dav_methods PUT;\n      create_full_put_path on;\n      \
             dav_access user:rw group:r all:r;\n    }}\n  }}\n}}\n",
            root = root.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let log = dir.join("error.log");
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is not installed: run scripts/install-deps (nginx)");
        let mut child = Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        wait_for_port(port, "nginx", &log, &mut child);
        Nginx {
            child,
            port,
            root,
            ca,
            barriers: std::cell::Cell::new(0),
        }
    }

    pub fn url(&self, sub: &str) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/{sub}", self.port)
    }

    /// The request lines served so far (`METHOD /path`), from the access log, once every
    /// request answered before this call has been logged.
    ///
    /// nginx writes a request's log line after it has sent the response, so a client can
    /// finish before its last request is in the log. This server is a single process
    /// handling connections in order, so a marker request sent now is logged after all
    /// earlier ones: wait for the marker, then read the log without the markers.
    pub fn requests(&self) -> Vec<String> {
        assert!(
            self.ca.is_none(),
            "requests() sends a plain-HTTP marker; not available over TLS"
        );
        let marker = format!("/__log-barrier-{}", self.barriers.get());
        self.barriers.set(self.barriers.get() + 1);
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port))
            .expect("connect to nginx for the log barrier");
        use std::io::{Read, Write};
        write!(conn, "GET {marker} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("send the log barrier");
        let mut sink = Vec::new();
        let _ = conn.read_to_end(&mut sink);
        let wanted = format!("GET {marker}");
        let start = Instant::now();
        loop {
            let lines = self.logged_requests();
            if lines.contains(&wanted) {
                return lines
                    .into_iter()
                    .filter(|l| !l.contains("/__log-barrier-"))
                    .collect();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx did not log the barrier request {marker} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn logged_requests(&self) -> Vec<String> {
        let log = self
            .root
            .parent()
            .map(|d| d.join("access.log"))
            .unwrap_or_default();
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let req = l.split('"').nth(1)?;
                let mut parts = req.split(' ');
                Some(format!("{} {}", parts.next()?, parts.next()?))
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `cmod --store <store> <args>` in `cwd` with extra environment.
pub fn cmod_env(cwd: &Path, store: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cmod"));
    c.arg("--store")
        .arg(store)
        .args(args)
        .current_dir(cwd)
        .env_remove("CMOD_STORE");
    c.env("CMOD_CONFIG", cwd.join("no-user-config.toml"));
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run cmod")
}

/// Panic with stderr unless the command succeeded; return stdout.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A key pair made with `cmod key generate`: (secret key file, public key text).
pub fn keypair(dir: &Path, name: &str) -> (PathBuf, String) {
    let sk = dir.join(format!("{name}.sec"));
    let pk = dir.join(format!("{name}.pub"));
    let out = Command::new(env!("CARGO_BIN_EXE_cmod"))
        .args(["key", "generate", name, "--secret-key"])
        .arg(&sk)
        .arg("--public-key")
        .arg(&pk)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&pk).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), text.trim());
    // The secret key is readable by its owner only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sk).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "secret key mode {mode:o}");
    (sk, text.trim().to_string())
}

/// Store path names (valid ones) in a store root.
pub fn valid_paths(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.join("v1/meta"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Entries left in a store's `tmp/` and unregistered entries in `store/`.
pub fn leftovers(store: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for d in ["v1/tmp", "v1/store"] {
        if let Ok(rd) = std::fs::read_dir(store.join(d)) {
            for e in rd.flatten() {
                v.push(format!("{d}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    v
}

/// An HTTP/1.1 proxy on loopback in front of a real server (nginx) that breaks the
/// connection half-way through the body of the first `cut` responses whose path contains
/// `/nar/` (after sending the full headers, Content-Length included), as a network
/// failure mid-download would. Each request goes to the server on a fresh connection;
/// the client's connection is kept alive otherwise.
pub struct FlakyProxy {
    pub port: u16,
    pub cuts_left: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl FlakyProxy {
    pub fn start(upstream: u16, cut: i64) -> FlakyProxy {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let cuts_left = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(cut));
        let left = cuts_left.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let left = left.clone();
                std::thread::spawn(move || {
                    let _ = proxy_connection(conn, upstream, |path| {
                        path.contains("/nar/") && left.fetch_sub(1, Ordering::SeqCst) > 0
                    });
                });
            }
        });
        FlakyProxy { port, cuts_left }
    }

    pub fn url(&self, sub: &str) -> String {
        format!("http://127.0.0.1:{}/{sub}", self.port)
    }
}

fn proxy_connection(
    client: std::net::TcpStream,
    upstream: u16,
    cut: impl Fn(&str) -> bool,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    loop {
        // One request: its head, then a body of Content-Length bytes (PUT).
        let mut head = Vec::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("connection:") {
                continue;
            }
            if line == "\r\n" {
                head.extend_from_slice(b"Connection: close\r\n\r\n");
                break;
            }
            head.extend_from_slice(line.as_bytes());
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let path = String::from_utf8_lossy(&head)
            .split(' ')
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut up = std::net::TcpStream::connect(("127.0.0.1", upstream))?;
        up.write_all(&head)?;
        up.write_all(&body)?;
        let mut response = Vec::new();
        up.read_to_end(&mut response)?;
        // nginx closed after the response (Connection: close): tell the client the
        // connection stays open, as the client asked.
        let text = String::from_utf8_lossy(&response);
        let split = text
            .find("\r\n\r\n")
            .map(|i| i + 4)
            .unwrap_or(response.len());
        let head_out = text[..split].replace("Connection: close\r\n", "Connection: keep-alive\r\n");
        if cut(&path) {
            let half = split + (response.len() - split) / 2;
            client.write_all(head_out.as_bytes())?;
            client.write_all(&response[split..half])?;
            client.flush()?;
            return client.shutdown(std::net::Shutdown::Both);
        }
        client.write_all(head_out.as_bytes())?;
        client.write_all(&response[split..])?;
        client.flush()?;
    }
}
