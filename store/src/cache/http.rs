//! A binary cache behind any HTTP server: GET (and HEAD) to read, from any static server;
//! PUT to write (nginx WebDAV, S3 presigned URLs, ...). A bearer token is sent when
//! [`Connect::http_token`] has one (the command line's `$CMOD_CACHE_TOKEN`). Every request is retried with exponential backoff when
//! the connection fails, times out before the answer's headers, or the server answers 429
//! or 5xx; a download whose connection breaks mid-body is retried too.
//!
//! Time limits ([`Connect`]; defaults in `crate::limits`): connecting 10 s;
//! `$CMOD_HTTP_READ_TIMEOUT` (30 s)
//! without a byte, waiting for the headers or within a body; `$CMOD_HTTP_TIMEOUT` (300 s)
//! for a whole metadata response, and for an archive that plus one second per 64 KiB it
//! announces. A body that times out is not retried: the server is slow or hostile, and
//! the substituter is dropped for the run. Sizes are bounded while reading (never by
//! trusting `Content-Length`): metadata by a fixed cap, archives by `Source::fetch`'s
//! caller.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;

use super::{Backend, BackendError};
use crate::connect::Connect;
use crate::limits::{self, read_bounded, BoundedError, Deadline};
use crate::transfer::{parallel, CopyError};

pub use crate::connect::TOKEN_VAR;
const ATTEMPTS: u32 = 4;

/// A binary cache served over HTTP(S), with retries and time limits.
pub struct HttpBackend {
    base: String,
    client: Client,
    token: Option<String>,
    /// The whole-response budget (`$CMOD_HTTP_TIMEOUT`).
    overall: Duration,
}

impl HttpBackend {
    /// A client for the cache at `url`, with the time limits of `connect`.
    pub fn new(url: &str, connect: &Connect) -> Result<HttpBackend, CopyError> {
        let overall = connect.http_timeout;
        // reqwest's blocking timeout applies to each operation: sending, waiting for the
        // headers, and every read of the body. That is the idle timeout.
        let idle = connect.http_read_timeout.min(overall);
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(idle)
            .pool_max_idle_per_host(32)
            .build()
            .map_err(|e| CopyError::Transport {
                url: url.into(),
                reason: e.to_string(),
            })?;
        Ok(HttpBackend {
            base: url.trim_end_matches('/').to_string(),
            client,
            token: connect.http_token.clone(),
            overall,
        })
    }

    /// The deadline of an archive download announcing `size` bytes.
    fn archive_deadline(&self, size: u64) -> Deadline {
        Deadline::after(self.overall + Duration::from_secs(size / limits::ARCHIVE_MIN_RATE))
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
/// the reader's consumer rejecting the bytes), and stops at its deadline.
struct WatchedBody {
    inner: Response,
    deadline: Deadline,
    /// The connection broke (worth another attempt).
    broken: Option<String>,
    /// Nothing arrived for the read timeout, or the deadline passed (not retried).
    timed_out: Option<String>,
}

impl WatchedBody {
    fn new(inner: Response, deadline: Deadline) -> Self {
        WatchedBody {
            inner,
            deadline,
            broken: None,
            timed_out: None,
        }
    }
}

impl Read for WatchedBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.deadline.passed() {
            let why = format!(
                "the answer did not complete within {} s (CMOD_HTTP_TIMEOUT)",
                self.deadline.budget.as_secs()
            );
            self.timed_out = Some(why.clone());
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, why));
        }
        self.inner.read(buf).inspect_err(|e| {
            let timeout = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<reqwest::Error>())
                .is_some_and(reqwest::Error::is_timeout);
            if timeout || e.kind() == std::io::ErrorKind::TimedOut {
                self.timed_out = Some(format!(
                    "the server sent nothing for the read timeout (CMOD_HTTP_READ_TIMEOUT): {}",
                    error_chain(e)
                ));
            } else {
                self.broken = Some(error_chain(e));
            }
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

    fn get(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>, BackendError> {
        let url = self.at(rel);
        let deadline = Deadline::after(self.overall);
        let r = self.send(&|| Ok(self.client.get(&url)))?;
        if r.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !r.status().is_success() {
            return Err(self.status_error("GET", rel, r));
        }
        let expected = r.content_length();
        if expected.is_some_and(|n| n > limit) {
            return Err(BackendError::TooLarge(limit));
        }
        let mut body = WatchedBody::new(r, deadline);
        let bytes = match read_bounded(&mut body, limit, expected) {
            Ok(b) => b,
            Err(BoundedError::TooLarge(n)) => return Err(BackendError::TooLarge(n)),
            Err(BoundedError::Io(e)) => {
                let why = body.timed_out.take().unwrap_or_else(|| error_chain(&e));
                return Err(BackendError::Failed(format!("GET `{rel}`: {why}")));
            }
        };
        if expected.is_some_and(|n| n != bytes.len() as u64) {
            return Err(BackendError::Failed(format!(
                "GET `{rel}`: the response was truncated"
            )));
        }
        Ok(Some(bytes))
    }

    fn read(
        &self,
        rel: &str,
        size: u64,
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
            BackendError::TooLarge(n) => CopyError::Transport {
                url: self.url(),
                reason: format!("GET `{rel}`: more than {n} bytes"),
            },
        };
        // A connection that breaks mid-body is a transport failure, not bad bytes: the
        // download is retried (the consumer discards what it unpacked), and after the
        // last attempt it is reported as a transport error, which a substituting build
        // treats like an unreachable cache. A body that times out is not retried.
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=ATTEMPTS {
            let deadline = self.archive_deadline(size);
            let r = self.send(&|| Ok(self.client.get(&url))).map_err(fail)?;
            if r.status() == StatusCode::NOT_FOUND {
                return Ok(false);
            }
            if !r.status().is_success() {
                return Err(fail(self.status_error("GET", rel, r)));
            }
            let mut body = WatchedBody::new(r, deadline);
            match each(&mut body) {
                Ok(()) => return Ok(true),
                Err(e) => match body.broken {
                    _ if body.timed_out.is_some() => {
                        let why = body.timed_out.take().unwrap_or_default();
                        return Err(fail(BackendError::Failed(format!("GET `{rel}`: {why}"))));
                    }
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
