//! The `ssh://[user@]host[:port]` transport: runs `cmod store serve --stdio` on the remote
//! machine through the OpenSSH client and speaks the framed protocol of `serve` over
//! its stdin/stdout.
//!
//! Query parameters: `?remote-store=DIR` (the remote's `--store`) and
//! `?remote-program=PATH` (default `cmod`). Extra `ssh` options come from
//! [`Connect::ssh_options`] (the command line's `$CMOD_SSHOPTS`, split on whitespace),
//! e.g. `-F ./ssh_config -i key`. `BatchMode` is
//! always on, so ssh fails instead of prompting.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use cmod_schema::cache::NarInfo;
use cmod_schema::{ContentHash, StorePath};
use serde_json::{json, Value};

use crate::connect::Connect;
use crate::layout::Store;
use crate::limits::SSH_BATCH;
use crate::serve::{
    nar_info, pack_to_temp, read_msg, write_archive, write_msg, FrameReader, PROTOCOL,
};
use crate::trace::TraceEntry;
use crate::transfer::{parallel, CopyError, Dest, OnArchive, Source};

struct Pipe {
    w: BufWriter<ChildStdin>,
    r: BufReader<IdleReader>,
}

/// The ssh client's stdout, given up on when the peer sends nothing for `idle` while
/// cmod waits for it (a hung or hostile peer that keeps its connection open).
struct IdleReader {
    inner: ChildStdout,
    idle: Duration,
}

impl Read for IdleReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let timeout = PollTimeout::try_from(self.idle).unwrap_or(PollTimeout::MAX);
        loop {
            let mut fds = [PollFd::new(self.inner.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "the remote sent nothing for {} s ($CMOD_SSH_READ_TIMEOUT)",
                            self.idle.as_secs()
                        ),
                    ))
                }
                Ok(_) => return self.inner.read(buf),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A connection to a remote store.
pub struct SshStore {
    url: String,
    child: Mutex<Child>,
    pipe: Mutex<Option<Pipe>>,
    stderr: Arc<Mutex<String>>,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The parts of an ssh URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshUrl {
    /// The host, with an optional `user@`.
    pub host: String,
    /// The port, if not ssh's default.
    pub port: Option<u16>,
    /// `?remote-store=`: the remote's store directory, if not its default.
    pub remote_store: Option<String>,
    /// `?remote-program=`: the cmod executable on the remote (default `cmod`).
    pub remote_program: String,
}

impl SshUrl {
    /// Parse `ssh://[user@]host[:port][?remote-store=DIR&remote-program=CMD]`.
    pub fn parse(url: &str) -> Result<SshUrl, CopyError> {
        let bad = || CopyError::BadUrl(url.into());
        let rest = url.strip_prefix("ssh://").ok_or_else(bad)?;
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.trim_end_matches('/');
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| bad())?)),
            None => (authority, None),
        };
        if host.is_empty() || host.contains('/') || host.starts_with('-') {
            return Err(bad());
        }
        let mut u = SshUrl {
            host: host.into(),
            port,
            remote_store: None,
            remote_program: "cmod".into(),
        };
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            // Values are percent-decoded: a path with a space is written `%20` (a
            // substituter list is split on whitespace).
            let decoded = |v: &str| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .map(|v| v.into_owned())
                    .map_err(|_| bad())
            };
            match kv.split_once('=') {
                Some(("remote-store", v)) => u.remote_store = Some(decoded(v)?),
                Some(("remote-program", v)) => u.remote_program = decoded(v)?,
                _ => return Err(bad()),
            }
        }
        Ok(u)
    }
}

impl SshStore {
    /// Start the remote server and shake hands.
    pub fn connect(url: &str, connect: &Connect) -> Result<SshStore, CopyError> {
        let u = SshUrl::parse(url)?;
        let mut cmd = Command::new("ssh");
        cmd.args(["-x", "-T", "-o", "BatchMode=yes"]);
        if let Some(p) = u.port {
            cmd.arg("-p").arg(p.to_string());
        }
        cmd.args(&connect.ssh_options);
        let mut remote = vec![quote(&u.remote_program)];
        if let Some(s) = &u.remote_store {
            remote.push("--store".into());
            remote.push(quote(s));
        }
        remote.extend(["store", "serve", "--stdio"].map(String::from));
        cmd.arg(&u.host).arg("--").arg(remote.join(" "));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let unreachable = |reason: String| CopyError::Unreachable {
            url: url.into(),
            reason,
        };
        let mut child = cmd
            .spawn()
            .map_err(|e| unreachable(format!("cannot run the OpenSSH client `ssh`: {e}")))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut err) = child.stderr.take() {
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = err.read_to_string(&mut text);
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&text);
                }
            });
        }
        let (Some(w), Some(r)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(unreachable("ssh has no pipes".into()));
        };
        let store = SshStore {
            url: url.into(),
            child: Mutex::new(child),
            pipe: Mutex::new(Some(Pipe {
                w: BufWriter::with_capacity(1 << 20, w),
                r: BufReader::with_capacity(
                    1 << 20,
                    IdleReader {
                        inner: r,
                        idle: connect.ssh_read_timeout,
                    },
                ),
            })),
            stderr,
        };
        match store.request(&json!({"op": "hello", "protocol": PROTOCOL})) {
            Ok(v) if v["protocol"].as_u64() == Some(PROTOCOL) => Ok(store),
            Ok(v) => Err(CopyError::Transport {
                url: url.into(),
                reason: format!("the remote speaks another protocol: {v}"),
            }),
            Err(CopyError::Transport { reason, .. }) => Err(unreachable(reason)),
            Err(e) => Err(e),
        }
    }

    /// What ssh printed, once it has exited (for error messages).
    fn ssh_said(&self) -> String {
        if let Ok(mut c) = self.child.lock() {
            for _ in 0..50 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        self.stderr
            .lock()
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    fn broken(&self, e: std::io::Error) -> CopyError {
        let said = self.ssh_said();
        CopyError::Transport {
            url: self.url.clone(),
            reason: if said.is_empty() {
                format!("the connection failed: {e}")
            } else {
                format!("the connection failed: {e}; ssh said: {said}")
            },
        }
    }

    fn with_pipe<T>(
        &self,
        f: impl FnOnce(&mut Pipe) -> Result<T, CopyError>,
    ) -> Result<T, CopyError> {
        let mut guard = self.pipe.lock().map_err(|_| CopyError::Transport {
            url: self.url.clone(),
            reason: "the connection is poisoned".into(),
        })?;
        let Some(pipe) = guard.as_mut() else {
            return Err(CopyError::Transport {
                url: self.url.clone(),
                reason: "the connection was closed after an earlier error".into(),
            });
        };
        let r = f(pipe);
        if r.is_err() {
            *guard = None;
        }
        r
    }

    fn answer(&self, v: Option<Value>) -> Result<Value, CopyError> {
        match v {
            None => Err(self.broken(std::io::ErrorKind::UnexpectedEof.into())),
            Some(v) => match v.get("error").and_then(Value::as_str) {
                Some(e) => Err(CopyError::Transport {
                    url: self.url.clone(),
                    reason: format!("the remote store said: {e}"),
                }),
                None => Ok(v),
            },
        }
    }

    fn request(&self, msg: &Value) -> Result<Value, CopyError> {
        let v = self.with_pipe(|p| {
            write_msg(&mut p.w, msg)
                .and_then(|_| p.w.flush())
                .and_then(|_| read_msg(&mut p.r))
                .map_err(|e| self.broken(e))
        })?;
        self.answer(v)
    }

    /// A list of versioned records (metadata, trace entries): each is refused if it is
    /// of a newer format or has fields this version does not know, as from a cache.
    fn versioned_list<T: serde::de::DeserializeOwned>(
        &self,
        v: &Value,
        name: &str,
    ) -> Result<Vec<T>, CopyError> {
        let items: Vec<Value> = self.list(v, name)?;
        items
            .iter()
            .map(|item| {
                let bytes = serde_json::to_vec(item).unwrap_or_default();
                cmod_schema::cache::parse_versioned::<T>(&bytes).map_err(|e| CopyError::Integrity {
                    url: self.url.clone(),
                    path: item
                        .get("path")
                        .and_then(Value::as_str)
                        .unwrap_or(name)
                        .to_string(),
                    reason: format!("the remote's {name} entry cannot be used: {e}"),
                })
            })
            .collect()
    }

    fn list<T: serde::de::DeserializeOwned>(&self, v: &Value, name: &str) -> Result<T, CopyError> {
        serde_json::from_value(v[name].clone()).map_err(|e| CopyError::Integrity {
            url: self.url.clone(),
            path: name.into(),
            reason: format!("the remote's answer does not parse: {e}"),
        })
    }
}

impl Drop for SshStore {
    fn drop(&mut self) {
        if let Ok(mut g) = self.pipe.lock() {
            if let Some(mut p) = g.take() {
                let _ = write_msg(&mut p.w, &json!({"op": "bye"}));
                let _ = p.w.flush();
            }
        }
        if let Ok(mut c) = self.child.lock() {
            let _ = c.wait();
        }
    }
}

impl Source for SshStore {
    fn url(&self) -> String {
        self.url.clone()
    }

    fn infos(&self, paths: &[StorePath]) -> Result<BTreeMap<StorePath, NarInfo>, CopyError> {
        let mut out = BTreeMap::new();
        for batch in paths.chunks(SSH_BATCH) {
            let v = self.request(&json!({"op": "infos", "paths": batch}))?;
            let infos: Vec<NarInfo> = self.versioned_list(&v, "infos")?;
            out.extend(infos.into_iter().map(|i| (i.path.clone(), i)));
        }
        Ok(out)
    }

    fn traces(&self, keys: &[ContentHash]) -> Result<BTreeMap<ContentHash, TraceEntry>, CopyError> {
        let mut t: Vec<TraceEntry> = Vec::new();
        for batch in keys.chunks(SSH_BATCH) {
            let v = self.request(&json!({"op": "traces", "keys": batch}))?;
            t.extend(self.versioned_list::<TraceEntry>(&v, "traces")?);
        }
        if let Some(bad) = t.iter().find(|t| t.version != crate::trace::TRACE_VERSION) {
            return Err(CopyError::Integrity {
                url: self.url.clone(),
                path: "traces".into(),
                reason: format!(
                    "the build-trace entry has the unsupported version {}",
                    bad.version
                ),
            });
        }
        Ok(t.into_iter().map(|t| (t.key, t)).collect())
    }

    fn fetch(
        &self,
        infos: &[NarInfo],
        _jobs: usize,
        each: &OnArchive<'_>,
    ) -> Result<(), CopyError> {
        for batch in infos.chunks(SSH_BATCH) {
            self.get_batch(batch, each)?;
        }
        Ok(())
    }
}

impl SshStore {
    fn get_batch(&self, infos: &[NarInfo], each: &OnArchive<'_>) -> Result<(), CopyError> {
        let paths: Vec<&StorePath> = infos.iter().map(|i| &i.path).collect();
        self.with_pipe(|p| {
            write_msg(&mut p.w, &json!({"op": "get", "paths": paths}))
                .and_then(|_| p.w.flush())
                .map_err(|e| self.broken(e))?;
            for info in infos {
                let head = read_msg(&mut p.r).map_err(|e| self.broken(e))?;
                let head = self.answer(head)?;
                let mut info = info.clone();
                info.archive.file_hash = self.list(&head, "file_hash")?;
                info.archive.file_size = self.list(&head, "file_size")?;
                let mut frames = FrameReader::new(&mut p.r);
                each(&info, &mut frames)?;
                frames.drain().map_err(|e| self.broken(e))?;
            }
            Ok(())
        })
    }
}

impl Dest for SshStore {
    fn url(&self) -> String {
        self.url.clone()
    }

    fn missing(&self, paths: &[StorePath]) -> Result<BTreeSet<StorePath>, CopyError> {
        let mut out = BTreeSet::new();
        for batch in paths.chunks(SSH_BATCH) {
            let v = self.request(&json!({"op": "missing", "paths": batch}))?;
            out.extend(self.list::<BTreeSet<StorePath>>(&v, "missing")?);
        }
        Ok(out)
    }

    /// Pack in parallel, then stream every `add` without waiting for answers
    /// (pipelined), reading the answers on this thread as they come.
    fn send(&self, store: &Store, paths: &[StorePath], jobs: usize) -> Result<usize, CopyError> {
        if paths.is_empty() {
            return Ok(0);
        }
        let packed: Vec<Mutex<Option<(std::path::PathBuf, NarInfo)>>> =
            paths.iter().map(|_| Mutex::new(None)).collect();
        let idx: Vec<usize> = (0..paths.len()).collect();
        let cleanup = |packed: &[Mutex<Option<(std::path::PathBuf, NarInfo)>>]| {
            for s in packed {
                if let Ok(Some((tmp, _))) = s.lock().map(|g| g.clone()) {
                    let _ = std::fs::remove_file(tmp);
                }
            }
        };
        let r = parallel(&idx, jobs, |&i| {
            let (tmp, a) = pack_to_temp(store, &paths[i])?;
            let mut info = nar_info(store, &paths[i])?;
            info.archive = a;
            if let Ok(mut s) = packed[i].lock() {
                *s = Some((tmp, info));
            }
            Ok::<(), CopyError>(())
        });
        if let Err(e) = r {
            cleanup(&packed);
            return Err(e);
        }
        let items: Vec<(std::path::PathBuf, NarInfo)> = packed
            .iter()
            .filter_map(|s| s.lock().ok().and_then(|g| g.clone()))
            .collect();
        let r = self.with_pipe(|p| {
            let Pipe { w, r } = p;
            std::thread::scope(|s| {
                let writer = s.spawn(move || -> std::io::Result<()> {
                    for (tmp, info) in &items {
                        write_msg(w, &json!({"op": "add", "info": info}))?;
                        write_archive(w, tmp)?;
                    }
                    w.flush()
                });
                let mut first_err = None;
                for _ in 0..paths.len() {
                    match read_msg(r) {
                        Ok(v) => {
                            if let Err(e) = self.answer(v) {
                                first_err.get_or_insert(e);
                            }
                        }
                        Err(e) => {
                            first_err.get_or_insert(self.broken(e));
                            break;
                        }
                    }
                }
                let wrote = writer.join();
                if let Some(e) = first_err {
                    return Err(e);
                }
                match wrote {
                    Ok(Ok(())) => Ok(paths.len()),
                    Ok(Err(e)) => Err(self.broken(e)),
                    Err(_) => Err(self.broken(std::io::Error::other("the sender panicked"))),
                }
            })
        });
        cleanup(&packed);
        r
    }

    fn send_traces(&self, entries: &[TraceEntry]) -> Result<(), CopyError> {
        if entries.is_empty() {
            return Ok(());
        }
        for batch in entries.chunks(SSH_BATCH) {
            self.request(&json!({"op": "add_traces", "entries": batch}))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_port_user_and_options() {
        let u = SshUrl::parse("ssh://me@127.0.0.1:2222?remote-store=/s&remote-program=/bin/cmod")
            .unwrap();
        assert_eq!(u.host, "me@127.0.0.1");
        assert_eq!(u.port, Some(2222));
        assert_eq!(u.remote_store.as_deref(), Some("/s"));
        assert_eq!(u.remote_program, "/bin/cmod");
        let spaced =
            SshUrl::parse("ssh://h?remote-store=/tmp/a%20b/s&remote-program=/opt/my%20tools/cmod")
                .unwrap();
        assert_eq!(spaced.remote_store.as_deref(), Some("/tmp/a b/s"));
        assert_eq!(spaced.remote_program, "/opt/my tools/cmod");
        assert!(SshUrl::parse("ssh://h?remote-store=%ff").is_err());
        assert_eq!(SshUrl::parse("ssh://h").unwrap().remote_program, "cmod");
        for bad in [
            "ssh://",
            "ssh://h:x",
            "ssh://-oProxyCommand=x",
            "ssh://h?evil=1",
            "http://h",
        ] {
            assert!(SshUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(quote("a'b"), "'a'\\''b'");
    }
}
