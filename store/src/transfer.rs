//! What every transport shares: the errors of copying, the trust policy, the `Source`
//! and `Dest` interfaces that binary caches and remote stores implement, and the
//! receiving pipeline that turns untrusted archives into valid paths.
//!
//! Receiving checks, in this order and before a path becomes valid: the metadata's
//! format (strict, versioned), its signature (by a trusted key, when required: checked
//! for the whole batch before a single byte of an archive is read), the archive's
//! members (see `archive`), the compressed stream's size and hash, and the unpacked
//! tree's content hash, size and store path (see `import`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use cmod_schema::cache::NarInfo;
use cmod_schema::diag::ExitClass;
use cmod_schema::scan_entry::ScanEntry;
use cmod_schema::{ContentHash, StorePath};

use crate::archive::{self, ArchiveError};
use crate::error::StoreError;
use crate::import::ImportError;
use crate::layout::Store;
use crate::sign::{path_fingerprint_of, trace_entry_fingerprint, SigError, TrustedKeys};
use crate::trace::TraceEntry;

/// Everything that can go wrong while copying.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The source or destination could not be reached.
    #[error("cannot reach `{url}`: {reason}")]
    Unreachable {
        /// The remote's URL.
        url: String,
        /// The connection error.
        reason: String,
    },
    /// The transfer failed after connecting (an error answer, a broken connection).
    #[error("`{url}`: {reason}")]
    Transport {
        /// The remote's URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A path or entry lacks a trusted signature.
    #[error("`{path}` from `{url}` is not trusted: {reason}")]
    Untrusted {
        /// The remote's URL.
        url: String,
        /// The store path (or entry) concerned.
        path: String,
        /// What signature is missing or wrong.
        reason: String,
    },
    /// Received bytes or metadata do not match what was announced.
    #[error("`{path}` from `{url}` was refused: {reason}")]
    Integrity {
        /// The remote's URL.
        url: String,
        /// The store path concerned.
        path: String,
        /// What does not match.
        reason: String,
    },
    /// The remote does not have a path asked for.
    #[error("`{url}` does not have `{path}`")]
    NotFound {
        /// The remote's URL.
        url: String,
        /// The store path asked for.
        path: String,
    },
    /// The URL's scheme or form is not supported.
    #[error("`{0}` is not a supported store URL (use file:///dir, ssh://[user@]host[:port] or http(s)://host/path)")]
    BadUrl(String),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CopyError {
    /// Integrity and trust violations exit 3; a missing path or bad URL is a usage error;
    /// transport failures are reported as build-environment failures (exit 1).
    pub fn exit_class(&self) -> ExitClass {
        match self {
            CopyError::Untrusted { .. } | CopyError::Integrity { .. } => ExitClass::Integrity,
            CopyError::NotFound { .. } | CopyError::BadUrl(_) => ExitClass::Usage,
            CopyError::Unreachable { .. } | CopyError::Transport { .. } => ExitClass::Build,
            CopyError::Store(e) => e.exit_class(),
        }
    }
}

impl CopyError {
    /// A source that did not answer (unreachable, failed in transport) or does not hold
    /// what its own metadata names: skipped like a cache that is down, never trusted
    /// less or more. Integrity and trust failures are not among these.
    pub fn is_unavailable_source(&self) -> bool {
        matches!(
            self,
            CopyError::Unreachable { .. }
                | CopyError::Transport { .. }
                | CopyError::NotFound { .. }
        )
    }
}

/// Which signatures received paths and trace entries need.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// The public keys whose signatures are accepted.
    pub keys: TrustedKeys,
    /// Require a valid signature by one of `keys` (on by default for every remote source).
    pub require_sigs: bool,
}

impl Trust {
    /// Check the signatures of path metadata from `url`.
    pub fn check_path(&self, url: &str, info: &NarInfo) -> Result<(), CopyError> {
        if !self.require_sigs {
            return Ok(());
        }
        self.keys
            .check(&path_fingerprint_of(info), &info.signatures)
            .map_err(|e| untrusted(url, &info.path.to_string(), e))
    }

    /// Whether a build-trace entry from `url` may be used: `Ok(None)` if so;
    /// `Ok(Some(why))` if it has no signature by a trusted key (it is then ignored and the
    /// step built here, as Nix ignores unsigned substitutes); an error if a trusted key's
    /// signature on it does not verify (forged, or altered after signing).
    pub fn trace_verdict(
        &self,
        url: &str,
        entry: &TraceEntry,
    ) -> Result<Option<SigError>, CopyError> {
        if !self.require_sigs {
            return Ok(None);
        }
        match self
            .keys
            .check(&trace_entry_fingerprint(entry), &entry.signatures)
        {
            Ok(()) => Ok(None),
            Err(e @ (SigError::Unsigned | SigError::Untrusted(_))) => Ok(Some(e)),
            Err(e) => Err(untrusted(
                url,
                &format!("build-trace entry of {}", entry.drv),
                e,
            )),
        }
    }

    /// Check the signatures of a build-trace entry from `url`.
    pub fn check_trace(&self, url: &str, entry: &TraceEntry) -> Result<(), CopyError> {
        if !self.require_sigs {
            return Ok(());
        }
        self.keys
            .check(&trace_entry_fingerprint(entry), &entry.signatures)
            .map_err(|e| untrusted(url, &format!("build-trace entry of {}", entry.drv), e))
    }
}

fn untrusted(url: &str, path: &str, e: SigError) -> CopyError {
    let mut reason = e.to_string();
    if matches!(e, SigError::Unsigned | SigError::Untrusted(_)) {
        reason.push_str(
            "; sign it with `cmod store sign`, add the signer's key to `trusted-public-keys`, or pass --no-require-sigs",
        );
    }
    CopyError::Untrusted {
        url: url.into(),
        path: path.into(),
        reason,
    }
}

/// Called once per received archive with its metadata and compressed stream.
pub type OnArchive<'a> = dyn Fn(&NarInfo, &mut dyn Read) -> Result<(), CopyError> + Sync + 'a;

/// Where paths come from.
pub trait Source: Sync {
    /// The source's URL, for messages.
    fn url(&self) -> String;
    /// Metadata of those of `paths` the source has (one batched query).
    fn infos(&self, paths: &[StorePath]) -> Result<BTreeMap<StorePath, NarInfo>, CopyError>;
    /// Build-trace entries the source has for `keys` (one batched query).
    fn traces(&self, keys: &[ContentHash]) -> Result<BTreeMap<ContentHash, TraceEntry>, CopyError>;
    /// Stream the archive of every one of `infos` into `each` (in parallel where the
    /// transport allows, at most `jobs` at once); stop at the first error.
    fn fetch(&self, infos: &[NarInfo], jobs: usize, each: &OnArchive<'_>) -> Result<(), CopyError>;
    /// Scan entries the source has for `keys` (none, for sources that keep none).
    fn scans(&self, keys: &[ContentHash]) -> Result<BTreeMap<ContentHash, ScanEntry>, CopyError> {
        let _ = keys;
        Ok(BTreeMap::new())
    }
}

/// Where paths go.
pub trait Dest: Sync {
    /// The destination's URL, for messages.
    fn url(&self) -> String;
    /// Which of `paths` the destination lacks (one batched query).
    fn missing(&self, paths: &[StorePath]) -> Result<BTreeSet<StorePath>, CopyError>;
    /// Send `paths` (topologically ordered: references first) from `store`.
    fn send(&self, store: &Store, paths: &[StorePath], jobs: usize) -> Result<usize, CopyError>;
    /// Send build-trace entries (after the paths they name).
    fn send_traces(&self, entries: &[TraceEntry]) -> Result<(), CopyError>;
    /// Send scan entries; how many were sent (0 where the destination keeps none).
    fn send_scans(&self, entries: &[ScanEntry]) -> Result<usize, CopyError> {
        let _ = entries;
        Ok(0)
    }
}

/// A reader that hashes and counts what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wrap `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: blake3::Hasher::new(),
            count: 0,
        }
    }

    /// Read to the end, then return the hash and length of everything read.
    pub fn finish(mut self) -> std::io::Result<(ContentHash, u64)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok((ContentHash(*self.hasher.finalize().as_bytes()), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    /// The wrapped writer.
    pub inner: W,
    hasher: blake3::Hasher,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: blake3::Hasher::new(),
            count: 0,
        }
    }

    /// The hash and length of everything written so far.
    pub fn digest(&self) -> (ContentHash, u64) {
        (ContentHash(*self.hasher.finalize().as_bytes()), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Unpack one archive stream from `url` into a private temporary directory, check the
/// stream against `info`'s archive hash and size and the tree against its content, and
/// register it. Nothing is left behind on failure.
pub fn receive_one(
    store: &Store,
    url: &str,
    info: &NarInfo,
    stream: &mut dyn Read,
) -> Result<(), CopyError> {
    let integrity = |reason: String| CopyError::Integrity {
        url: url.into(),
        path: info.path.to_string(),
        reason,
    };
    // Never more bytes than the metadata announces, however the source frames them.
    let limit = info.archive.file_size;
    let mut bounded = crate::limits::Bounded::new(stream, limit);
    let too_large = || {
        integrity(format!(
            "its archive is longer than the {} its metadata announces",
            crate::limits::show_bytes(limit)
        ))
    };
    if store.is_valid(&info.path) {
        return match std::io::copy(&mut bounded, &mut std::io::sink()) {
            Ok(_) => Ok(()),
            Err(_) if bounded.exceeded() => Err(too_large()),
            Err(e) => Err(integrity(e.to_string())),
        };
    }
    let dir = store.temp_path("recv");
    let mut reader = HashingReader::new(&mut bounded);
    let unpacked = archive::unpack(&mut reader, &dir, info.size);
    let checked = unpacked.and_then(|u| {
        let (hash, len) = reader
            .finish()
            .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
        let a = &info.archive;
        if len != a.file_size || hash != a.file_hash {
            return Err(ArchiveError::Corrupt(format!(
                "the archive has {len} bytes hashing to {hash}, but the metadata announces {} bytes hashing to {}",
                a.file_size, a.file_hash
            )));
        }
        Ok(u)
    });
    let u = match checked {
        Ok(u) => u,
        Err(e) => {
            let _ = crate::content::remove(&dir);
            if bounded.exceeded() {
                return Err(too_large());
            }
            return Err(match e {
                // The system's error is kept: a full disk is the machine's state.
                ArchiveError::Io(io) => CopyError::Store(StoreError::Io(io)),
                other => integrity(other.to_string()),
            });
        }
    };
    // `import_tree` consumes the tree: it is moved into the store or deleted.
    match store.import_tree(&u.root, info) {
        Ok(_) => Ok(()),
        Err(ImportError::Mismatch(m)) => Err(integrity(m)),
        Err(ImportError::Store(s)) => Err(CopyError::Store(s)),
    }
}

/// Split `infos` into levels: each path's references inside the set are in earlier
/// levels. Paths outside the set are assumed present.
pub fn levels(infos: Vec<NarInfo>) -> Vec<Vec<NarInfo>> {
    let names: BTreeSet<StorePath> = infos.iter().map(|i| i.path.clone()).collect();
    let mut level: HashMap<StorePath, usize> = HashMap::new();
    let mut pending = infos;
    let mut out: Vec<Vec<NarInfo>> = Vec::new();
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for i in pending {
            let deps: Option<Vec<usize>> = i
                .references
                .iter()
                .filter(|r| names.contains(*r) && **r != i.path)
                .map(|r| level.get(r).copied())
                .collect();
            match deps {
                Some(d) => {
                    let l = d.into_iter().map(|x| x + 1).max().unwrap_or(0);
                    level.insert(i.path.clone(), l);
                    if out.len() <= l {
                        out.resize_with(l + 1, Vec::new);
                    }
                    out[l].push(i);
                }
                None => rest.push(i),
            }
        }
        if rest.len() == before {
            // A reference cycle cannot come from a content-addressed store; put the rest
            // last so the import reports the missing references.
            out.push(rest);
            break;
        }
        pending = rest;
    }
    out
}

/// Check every signature, then fetch, verify and register `infos` from `source`, level
/// by level. Returns the paths registered.
///
/// Processes sharing the store fetch each path once: a path is fetched only under its
/// fetch lock (see `fetch_lock`); paths another process is fetching are waited for and
/// then found valid (or fetched here, if that process failed).
pub fn receive(
    store: &Store,
    source: &dyn Source,
    infos: Vec<NarInfo>,
    trust: &Trust,
    jobs: usize,
) -> Result<Vec<StorePath>, CopyError> {
    let url = source.url();
    for i in &infos {
        trust.check_path(&url, i)?;
    }
    let mut done = Vec::new();
    for level in levels(infos) {
        let mut todo: BTreeMap<StorePath, NarInfo> = level
            .into_iter()
            .filter(|i| !store.is_valid(&i.path))
            .map(|i| (i.path.clone(), i))
            .collect();
        if todo.is_empty() {
            continue;
        }
        let names: Vec<StorePath> = todo.keys().cloned().collect();
        let claim = crate::fetch_lock::claim(store, &names)?;
        fetch_locked(store, source, &url, &mut todo, &claim.mine, jobs)?;
        drop(claim.locks);
        done.extend(claim.mine);
        let (locks, left) = crate::fetch_lock::wait_for_others(store, &claim.theirs)?;
        fetch_locked(store, source, &url, &mut todo, &left, jobs)?;
        drop(locks);
        done.extend(left);
    }
    Ok(done)
}

/// Fetch `paths` (whose fetch locks the caller holds) from `todo`'s metadata.
fn fetch_locked(
    store: &Store,
    source: &dyn Source,
    url: &str,
    todo: &mut BTreeMap<StorePath, NarInfo>,
    paths: &[StorePath],
    jobs: usize,
) -> Result<(), CopyError> {
    let batch: Vec<NarInfo> = paths.iter().filter_map(|p| todo.remove(p)).collect();
    if batch.is_empty() {
        return Ok(());
    }
    source.fetch(&batch, jobs, &|info, stream| {
        receive_one(store, url, info, stream)
    })
}

/// Run `f` over `items` on up to `jobs` threads, stopping at the first error.
pub fn parallel<T: Sync, E: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> Result<(), E> + Sync,
) -> Result<(), E> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first: Mutex<Option<E>> = Mutex::new(None);
    let work = || loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(item) = items.get(i) else { return };
        if let Err(e) = f(item) {
            stop.store(true, Ordering::Relaxed);
            if let Ok(mut slot) = first.lock() {
                slot.get_or_insert(e);
            }
        }
    };
    let n = jobs.max(1).min(items.len().max(1));
    std::thread::scope(|s| {
        for _ in 1..n {
            s.spawn(work);
        }
        work();
    });
    match first.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmod_schema::cache::ArchiveRef;
    use cmod_schema::PathKind;

    fn info(name: &str, refs: &[&NarInfo]) -> NarInfo {
        let h = ContentHash::of_file(false, name.as_bytes());
        let references: BTreeSet<StorePath> = refs.iter().map(|r| r.path.clone()).collect();
        NarInfo {
            version: 1,
            path: StorePath::compute(PathKind::Output, &h, name, &references).unwrap(),
            kind: PathKind::Output,
            content_hash: h,
            size: 0,
            references,
            deriver: None,
            sandbox: None,
            landlock_abi: None,
            signatures: BTreeSet::new(),
            archive: ArchiveRef {
                file: String::new(),
                file_hash: h,
                file_size: 0,
                compression: "tar+zstd".into(),
            },
        }
    }

    #[test]
    fn levels_put_references_first() {
        let a = info("a", &[]);
        let b = info("b", &[&a]);
        let c = info("c", &[&b, &a]);
        let d = info("d", &[]);
        let names = |l: &[NarInfo]| {
            l.iter()
                .map(|i| i.path.name().to_string())
                .collect::<Vec<_>>()
        };
        let out = levels(vec![c.clone(), b.clone(), d.clone(), a.clone()]);
        let shown: Vec<Vec<String>> = out.iter().map(|l| names(l)).collect();
        assert_eq!(shown, vec![vec!["d", "a"], vec!["b"], vec!["c"]]);
        // References outside the set are taken as present.
        let out = levels(vec![c]);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn parallel_stops_at_the_first_error() {
        let items: Vec<u32> = (0..100).collect();
        let done = AtomicUsize::new(0);
        let r = parallel(&items, 4, |&i| {
            done.fetch_add(1, Ordering::Relaxed);
            if i == 10 {
                Err(format!("item {i} failed"))
            } else {
                Ok(())
            }
        });
        assert_eq!(r, Err("item 10 failed".to_string()));
        assert!(
            done.load(Ordering::Relaxed) < 100,
            "work stops after a failure"
        );
        assert_eq!(parallel(&items, 3, |_| Ok::<(), String>(())), Ok(()));
    }
}
