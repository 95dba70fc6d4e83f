//! A real smart-HTTP git server on loopback, deployed the usual way: nginx (plain HTTP, or
//! TLS with a certificate from a CA made for the test) hands `/git/...` to
//! `git http-backend` through fcgiwrap. Killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Nginx;

pub struct GitHttp {
    pub nginx: Nginx,
    fcgiwrap: Child,
}

/// The directory holding git's helper programs (`git-http-backend`).
fn git_exec_path() -> PathBuf {
    let out = Command::new("git")
        .arg("--exec-path")
        .output()
        .expect("run `git --exec-path` (run scripts/install-deps: git)");
    assert!(out.status.success(), "git --exec-path failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

impl GitHttp {
    /// Serve the repositories under `repos` (as `/git/<name>`) over HTTP.
    pub fn start(dir: &Path, repos: &Path) -> GitHttp {
        GitHttp::start_with(dir, repos, false)
    }

    /// The same over HTTPS only; `ca()` is the certificate clients must trust.
    pub fn start_tls(dir: &Path, repos: &Path) -> GitHttp {
        GitHttp::start_with(dir, repos, true)
    }

    fn start_with(dir: &Path, repos: &Path, tls: bool) -> GitHttp {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("fcgiwrap.sock");
        let log = dir.join("fcgiwrap.log");
        let backend = git_exec_path().join("git-http-backend");
        assert!(
            backend.is_file(),
            "{} is missing (run scripts/install-deps: git)",
            backend.display()
        );
        let fcgiwrap = ["/usr/sbin/fcgiwrap", "/usr/bin/fcgiwrap"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("fcgiwrap is not installed: run scripts/install-deps (fcgiwrap)");
        let mut child = Command::new(fcgiwrap)
            .args(["-c", "4", "-s"])
            .arg(format!("unix:{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start fcgiwrap");
        let start = Instant::now();
        while !socket.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "fcgiwrap exited ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "fcgiwrap did not create {} within 15 s",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // git refuses repositories owned by someone else unless told otherwise; the
        // backend's environment is exactly these parameters (fcgiwrap passes no other).
        let location = format!(
            "location ~ ^/git(/.*)$ {{\n      \
             fastcgi_pass unix:{socket};\n      \
             fastcgi_param SCRIPT_FILENAME {backend};\n      \
             fastcgi_param PATH_INFO $1;\n      \
             fastcgi_param GIT_PROJECT_ROOT {repos};\n      \
             fastcgi_param GIT_HTTP_EXPORT_ALL 1;\n      \
             fastcgi_param GIT_CONFIG_COUNT 1;\n      \
             fastcgi_param GIT_CONFIG_KEY_0 safe.directory;\n      \
             fastcgi_param GIT_CONFIG_VALUE_0 *;\n      \
             fastcgi_param REQUEST_METHOD $request_method;\n      \
             fastcgi_param QUERY_STRING $query_string;\n      \
             fastcgi_param CONTENT_TYPE $content_type;\n      \
             fastcgi_param CONTENT_LENGTH $content_length;\n      \
             fastcgi_param REMOTE_ADDR $remote_addr;\n      \
             fastcgi_param SERVER_PROTOCOL $server_protocol;\n      \
             fastcgi_param GATEWAY_INTERFACE CGI/1.1;\n    }}",
            socket = socket.display(),
            backend = backend.display(),
            repos = repos.display(),
        );
        let nginx = Nginx::start_with_locations(&dir.join("nginx"), tls, &location);
        GitHttp {
            nginx,
            fcgiwrap: child,
        }
    }

    /// The URL of repository `name` (a directory under `repos`).
    pub fn url(&self, name: &str) -> String {
        self.nginx.url(&format!("git/{name}"))
    }

    /// The URL prefix the repositories are served under (ends with `/`).
    pub fn prefix(&self) -> String {
        self.nginx.url("git/")
    }

    /// With TLS: the test CA's certificate.
    pub fn ca(&self) -> Option<&Path> {
        self.nginx.ca.as_deref()
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        let _ = self.fcgiwrap.kill();
        let _ = self.fcgiwrap.wait();
    }
}
