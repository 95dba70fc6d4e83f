//! A binary cache behind any HTTP server: GET (and HEAD) to read, from any static server;
//! PUT to write (nginx WebDAV, S3 presigned URLs, ...). A bearer token is taken from
//! `$CMOD_CACHE_TOKEN` when set. Every request has a connect timeout and an overall
//! timeout, and is retried with exponential backoff when the connection fails, times
//! out, or the server answers 429 or 5xx; a download whose connection breaks mid-body is
//! retried too.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;

use super::{Backend, BackendError};
use crate::transfer::{parallel, CopyError};

/// The environment variable holding the bearer token.
pub const TOKEN_VAR: &str = "CMOD_CACHE_TOKEN";
const ATTEMPTS: u32 = 4;

pub struct HttpBackend {
    base: String,
    client: Client,
    token: Option<String>,
}

impl HttpBackend {
    pub fn new(url: &str) -> Result<HttpBackend, CopyError> {
        let timeout = std::env::var("CMOD_HTTP_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300);
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(timeout))
            .pool_max_idle_per_host(32)
            .build()
            .map_err(|e| CopyError::Transport {
                url: url.into(),
                reason: e.to_string(),
            })?;
        Ok(HttpBackend {
            base: url.trim_end_matches('/').to_string(),
            client,
            token: std::env::var(TOKEN_VAR).ok().filter(|t| !t.is_empty()),
        })
    }

    fn at(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }

    /// Send the request `make` builds, retrying transient failures with backoff.
    fn send(
        &self,
        make: &dyn Fn() -> Result<RequestBuilder, BackendError>,
    ) -> Result<Response, BackendError> {
        let mut delay = Duration::from_millis(100);
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(delay);
                delay *= 2;
            }
            let mut req = make()?;
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            match req.send() {
                Ok(r)
                    if r.status().is_server_error()
                        || r.status() == StatusCode::TOO_MANY_REQUESTS =>
                {
                    last = format!("HTTP {}", r.status());
                }
                Ok(r) => return Ok(r),
                Err(e) if e.is_connect() || e.is_timeout() => {
                    last = error_chain(&e);
                    // An untrusted certificate will not become trusted by retrying.
                    if last.contains("certificate") {
                        return Err(BackendError::Failed(format!(
                            "{last}; if the server's certificate is from your own CA, \
                             name a PEM bundle with it in SSL_CERT_FILE (or a directory in SSL_CERT_DIR)"
                        )));
                    }
                }
                Err(e) => return Err(BackendError::Failed(error_chain(&e))),
            }
        }
        if last.starts_with("HTTP ") {
            Err(BackendError::Failed(format!(
                "{last} after {ATTEMPTS} attempts"
            )))
        } else {
            Err(BackendError::Unreachable(format!(
                "{last} (after {ATTEMPTS} attempts)"
            )))
        }
    }

    fn status_error(&self, what: &str, rel: &str, r: Response) -> BackendError {
        let status = r.status();
        let hint = if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            format!("; set ${TOKEN_VAR} to a token the server accepts")
        } else if status == StatusCode::METHOD_NOT_ALLOWED {
            "; the server does not accept PUT (enable WebDAV PUT)".into()
        } else {
            String::new()
        };
        BackendError::Failed(format!("{what} `{rel}` answered HTTP {status}{hint}"))
    }
}

/// A response body that remembers whether reading it failed in transport (as opposed to
/// the reader's consumer rejecting the bytes).
struct WatchedBody {
    inner: Response,
    broken: Option<String>,
}

impl Read for WatchedBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            self.broken = Some(error_chain(e));
        })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

impl Backend for HttpBackend {
    fn url(&self) -> String {
        self.base.clone()
    }

    fn get(&self, rel: &str) -> Result<Option<Vec<u8>>, BackendError> {
        let url = self.at(rel);
        let r = self.send(&|| Ok(self.client.get(&url)))?;
        if r.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !r.status().is_success() {
            return Err(self.status_error("GET", rel, r));
        }
        let expected = r.content_length();
        let bytes = r
            .bytes()
            .map_err(|e| BackendError::Failed(format!("GET `{rel}`: {}", error_chain(&e))))?;
        if expected.is_some_and(|n| n != bytes.len() as u64) {
            return Err(BackendError::Failed(format!(
                "GET `{rel}`: the response was truncated"
            )));
        }
        Ok(Some(bytes.to_vec()))
    }

    fn read(
        &self,
        rel: &str,
        each: &mut dyn FnMut(&mut dyn Read) -> Result<(), CopyError>,
    ) -> Result<bool, CopyError> {
        let url = self.at(rel);
        let fail = |e: BackendError| match e {
            BackendError::Unreachable(reason) => CopyError::Unreachable {
                url: self.url(),
                reason,
            },
            BackendError::Failed(reason) => CopyError::Transport {
                url: self.url(),
                reason,
            },
        };
        // A connection that breaks mid-body is a transport failure, not bad bytes: the
        // download is retried (the consumer discards what it unpacked), and after the
        // last attempt it is reported as a transport error, which a substituting build
        // treats like an unreachable cache.
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=ATTEMPTS {
            let r = self.send(&|| Ok(self.client.get(&url))).map_err(fail)?;
            if r.status() == StatusCode::NOT_FOUND {
                return Ok(false);
            }
            if !r.status().is_success() {
                return Err(fail(self.status_error("GET", rel, r)));
            }
            let mut body = WatchedBody {
                inner: r,
                broken: None,
            };
            match each(&mut body) {
                Ok(()) => return Ok(true),
                Err(e) => match body.broken {
                    Some(broken) if attempt == ATTEMPTS => {
                        return Err(fail(BackendError::Failed(format!(
                            "GET `{rel}`: the connection broke during the download ({broken}) \
                             {ATTEMPTS} times"
                        ))))
                    }
                    Some(_) => {
                        std::thread::sleep(delay);
                        delay *= 2;
                    }
                    None => return Err(e),
                },
            }
        }
        Ok(false)
    }

    fn put_bytes(&self, rel: &str, bytes: &[u8]) -> Result<(), BackendError> {
        let url = self.at(rel);
        let r = self.send(&|| Ok(self.client.put(&url).body(bytes.to_vec())))?;
        if !r.status().is_success() {
            return Err(self.status_error("PUT", rel, r));
        }
        Ok(())
    }

    fn put_file(&self, rel: &str, src: &Path) -> Result<(), BackendError> {
        let url = self.at(rel);
        let r = self.send(&|| {
            let f = std::fs::File::open(src)
                .map_err(|e| BackendError::Failed(format!("opening `{}`: {e}", src.display())))?;
            let len = f
                .metadata()
                .map_err(|e| BackendError::Failed(e.to_string()))?
                .len();
            Ok(self
                .client
                .put(&url)
                .body(reqwest::blocking::Body::sized(f, len)))
        })?;
        if !r.status().is_success() {
            return Err(self.status_error("PUT", rel, r));
        }
        Ok(())
    }

    fn listable(&self) -> bool {
        false
    }

    /// A static server has no query endpoint: without an index, the batch is answered
    /// by concurrent HEAD requests over kept-alive connections.
    fn exist(&self, dir: &str, names: &[String], jobs: usize) -> Result<Vec<bool>, BackendError> {
        let found: Vec<std::sync::atomic::AtomicBool> =
            names.iter().map(|_| Default::default()).collect();
        let idx: Vec<usize> = (0..names.len()).collect();
        parallel(&idx, jobs, |&i| {
            let url = self.at(&format!("{dir}/{}", names[i]));
            let r = self.send(&|| Ok(self.client.head(&url)))?;
            match r.status() {
                s if s.is_success() => {
                    found[i].store(true, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                }
                StatusCode::NOT_FOUND => Ok(()),
                _ => Err(self.status_error("HEAD", &names[i], r)),
            }
        })?;
        Ok(found
            .iter()
            .map(|f| f.load(std::sync::atomic::Ordering::Relaxed))
            .collect())
    }
}
