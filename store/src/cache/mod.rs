//! Binary caches: the same layout whether a directory (`file://`) or any HTTP server
//! (`http(s)://`, GET to read, PUT to write) holds it.
//!
//! ```text
//! cmod-cache-info                 {"version":1,"store_format":"v1","priority":50}
//! cmod-cache-index                "cmod-cache-index v1", then `info/<hash part>` and
//!                                 `trace/<key>` lines: what the cache holds (a hint)
//! nar/<file hash>.tar.zst         a path's transfer archive (see `archive`)
//! info/<hash part>.json           its metadata with signatures (schema: nar-info)
//! trace/<key>.json                signed build-trace entries (schema: trace-entry)
//! scan/<key>.json                 signed scan entries (schema: scan-entry)
//! ```
//!
//! Writers upload every archive first, then the metadata in topological order
//! (references before referrers), then trace entries, each file atomically (rename or a
//! single PUT). A reader that finds metadata therefore finds its archive and the
//! metadata of its whole closure; a killed upload leaves at worst unreferenced
//! archives, which the next upload overwrites.
//!
//! Every read is bounded (see `crate::limits`): a response larger than its bound is
//! refused as an integrity error naming the URL and the bound (the cache is broken or
//! hostile), except `cmod-cache-index`, a hint, which is then ignored.

mod file;
mod http;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use cmod_schema::cache::{parse_versioned, CacheInfo, NarInfo, CACHE_INFO_FILE};
use cmod_schema::scan_entry::ScanEntry;
use cmod_schema::{base32, ContentHash, StorePath};

use crate::connect::Connect;
use crate::layout::Store;
use crate::limits::{self, show_bytes};
use crate::trace::{TraceEntry, TRACE_VERSION};
use crate::transfer::{parallel, CopyError, Dest, OnArchive, Source};

pub use file::FileBackend;
pub use http::HttpBackend;

/// A transport failure, before the caller adds which URL it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// Could not connect, or timed out after every retry.
    Unreachable(String),
    /// The server answered with an error, or a local I/O error.
    Failed(String),
    /// The answer is larger than the bound for what was asked (in bytes).
    TooLarge(u64),
}

/// A place that stores files by relative name.
pub trait Backend: Send + Sync {
    /// The cache's URL, for messages.
    fn url(&self) -> String;
    /// A whole (small) file of at most `limit` bytes, or `None` if absent.
    fn get(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>, BackendError>;
    /// Stream a file announced to hold `size` bytes into `each` (which bounds what it
    /// reads); `false` if absent.
    fn read(
        &self,
        rel: &str,
        size: u64,
        each: &mut dyn FnMut(&mut dyn Read) -> Result<(), CopyError>,
    ) -> Result<bool, CopyError>;
    /// Store bytes under `rel`, atomically.
    fn put_bytes(&self, rel: &str, bytes: &[u8]) -> Result<(), BackendError>;
    /// Store the local temporary file `src` under `rel`, atomically (`src` may be
    /// moved away; the caller deletes it if it is still there).
    fn put_file(&self, rel: &str, src: &Path) -> Result<(), BackendError>;
    /// Whether `exist` is one listing (true) rather than a request per name.
    fn listable(&self) -> bool;
    /// Which of `names` exist in directory `dir` (the batched query).
    fn exist(&self, dir: &str, names: &[String], jobs: usize) -> Result<Vec<bool>, BackendError>;
}

/// A binary cache at a URL.
pub struct BinaryCache {
    backend: Box<dyn Backend>,
    /// zstd level for archives written here.
    pub level: i32,
    /// The index as read once for this session's queries (`None`: not read yet).
    index: std::sync::Mutex<Option<Option<BTreeSet<String>>>>,
    /// Whether `cmod-cache-info` allows reading here: checked once, before the first read
    /// (`Err`: why not).
    readable: std::sync::OnceLock<Result<(), String>>,
}

/// The index of the paths a cache holds (a hint that saves a request per path).
const INDEX_FILE: &str = "cmod-cache-index";
const INDEX_HEADER: &str = "cmod-cache-index v1";

fn info_rel(p: &StorePath) -> String {
    format!("info/{}.json", p.hash_part())
}

/// The relative location of a scan entry, in a cache or in a store's `scans/`.
pub fn scan_rel(key: &ContentHash) -> String {
    format!("scan/{}.json", cmod_schema::base32::encode(&key.0))
}

fn trace_rel(key: &ContentHash) -> String {
    format!("trace/{}.json", base32::encode(&key.0))
}

/// What the file at `rel` is, in words.
fn kind_of(rel: &str) -> &'static str {
    match rel.split('/').next() {
        Some("info") => "path's metadata",
        Some("trace") => "build-trace entry",
        Some("scan") => "scan entry",
        Some(INDEX_FILE) => "cache index",
        Some(CACHE_INFO_FILE) => "cache description",
        _ => "file",
    }
}

/// A kind of entry filed by key in a cache: where one lives, its size cap, its name in
/// messages, how it parses and which key it says it has.
struct Keyed<'a, T> {
    rel: fn(&ContentHash) -> String,
    limit: u64,
    what: &'static str,
    parse: &'a (dyn Fn(&[u8]) -> Result<T, String> + Sync),
    key_of: &'a (dyn Fn(&T) -> ContentHash + Sync),
}

impl BinaryCache {
    /// Open `file:///dir` or `http(s)://...` with the default [`Connect`] settings.
    pub fn open(url: &str) -> Result<BinaryCache, CopyError> {
        BinaryCache::open_with(url, &Connect::default())
    }

    /// Open `file:///dir` or `http(s)://...`, reaching an HTTP cache with `connect`.
    pub fn open_with(url: &str, connect: &Connect) -> Result<BinaryCache, CopyError> {
        let backend: Box<dyn Backend> = if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(CopyError::BadUrl(url.into()));
            }
            Box::new(FileBackend::new(Path::new(dir)))
        } else if url.starts_with("http://") || url.starts_with("https://") {
            Box::new(HttpBackend::new(url, connect)?)
        } else {
            return Err(CopyError::BadUrl(url.into()));
        };
        Ok(BinaryCache {
            backend,
            level: 3,
            index: std::sync::Mutex::new(None),
            readable: std::sync::OnceLock::new(),
        })
    }

    fn err(&self, e: BackendError) -> CopyError {
        self.err_at("", e)
    }

    /// `e`, which happened while reading `rel`.
    fn err_at(&self, rel: &str, e: BackendError) -> CopyError {
        match e {
            BackendError::Unreachable(reason) => CopyError::Unreachable {
                url: self.backend.url(),
                reason,
            },
            BackendError::Failed(reason) => CopyError::Transport {
                url: self.backend.url(),
                reason,
            },
            BackendError::TooLarge(limit) => CopyError::Integrity {
                url: self.backend.url(),
                path: rel.into(),
                reason: format!(
                    "`{}/{rel}` is larger than {}, the bound for a {}; the cache is broken or hostile",
                    self.backend.url(),
                    show_bytes(limit),
                    kind_of(rel),
                ),
            },
        }
    }

    /// Read `rel` (at most `limit` bytes), or `None` if absent.
    fn get(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>, CopyError> {
        self.backend
            .get(rel, limit)
            .map_err(|e| self.err_at(rel, e))
    }

    /// The cache's `cmod-cache-info`, if it has one; refused if it is from a newer cmod.
    pub fn cache_info(&self) -> Result<Option<CacheInfo>, CopyError> {
        let Some(bytes) = self.get(CACHE_INFO_FILE, limits::CACHE_INFO_MAX)? else {
            return Ok(None);
        };
        parse_versioned::<CacheInfo>(&bytes)
            .map(Some)
            .map_err(|e| CopyError::Integrity {
                url: self.backend.url(),
                path: CACHE_INFO_FILE.into(),
                reason: e.to_string(),
            })
    }

    /// Refuse to read a cache made by a newer cmod or holding another store format
    /// (checked once; a cache without `cmod-cache-info` is an empty or plain directory).
    fn check_readable(&self) -> Result<(), CopyError> {
        let verdict = match self.readable.get() {
            Some(v) => v.clone(),
            None => {
                let v = match self.cache_info() {
                    Ok(Some(info)) if info.store_format != "v1" => Err(format!(
                        "the cache holds store format `{}`, and this cmod reads only `v1`; \
                         use the cmod that wrote it, or another cache",
                        info.store_format
                    )),
                    Ok(_) => Ok(()),
                    Err(CopyError::Integrity { reason, .. }) => Err(reason),
                    // Transient (unreachable, a broken connection): not remembered, and
                    // reported now rather than by the read that would follow.
                    Err(e) => return Err(e),
                };
                self.readable.get_or_init(|| v).clone()
            }
        };
        verdict.map_err(|reason| CopyError::Integrity {
            url: self.backend.url(),
            path: CACHE_INFO_FILE.into(),
            reason,
        })
    }

    fn ensure_cache_info(&self) -> Result<(), CopyError> {
        // A cache that does not exist yet is created by its first upload.
        let existing = match self.cache_info() {
            Err(CopyError::Unreachable { .. }) => None,
            other => other?,
        };
        if existing.is_none() {
            let bytes = serde_json::to_vec_pretty(&CacheInfo::default())
                .map_err(|e| self.err(BackendError::Failed(e.to_string())))?;
            self.backend
                .put_bytes(CACHE_INFO_FILE, &bytes)
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn get_many<T: Send>(
        &self,
        rels: Vec<String>,
        limit: u64,
        jobs: usize,
        parse: impl Fn(&str, &[u8]) -> Result<T, CopyError> + Sync,
    ) -> Result<Vec<Option<T>>, CopyError> {
        let slots: Vec<std::sync::Mutex<Option<T>>> =
            rels.iter().map(|_| std::sync::Mutex::new(None)).collect();
        let idx: Vec<usize> = (0..rels.len()).collect();
        parallel(&idx, jobs, |&i| {
            if let Some(bytes) = self.get(&rels[i], limit)? {
                let v = parse(&rels[i], &bytes)?;
                if let Ok(mut s) = slots[i].lock() {
                    *s = Some(v);
                }
            }
            Ok::<(), CopyError>(())
        })?;
        Ok(slots
            .into_iter()
            .map(|s| s.into_inner().ok().flatten())
            .collect())
    }

    /// The entries filed under `keys` (those present), fetched in parallel and each
    /// checked to be filed under its own key; anything else is an integrity failure.
    fn keyed<T: Send>(
        &self,
        keys: &[&ContentHash],
        kind: Keyed<'_, T>,
    ) -> Result<BTreeMap<ContentHash, T>, CopyError> {
        let url = self.backend.url();
        let what = kind.what;
        let got = self.get_many(
            keys.iter().map(|k| (kind.rel)(k)).collect(),
            kind.limit,
            16,
            |rel, bytes| {
                (kind.parse)(bytes).map_err(|reason| CopyError::Integrity {
                    url: url.clone(),
                    path: rel.into(),
                    reason: format!("the {what} {reason}"),
                })
            },
        )?;
        let mut out = BTreeMap::new();
        for (k, entry) in keys.iter().zip(got) {
            let Some(entry) = entry else { continue };
            if (kind.key_of)(&entry) != **k {
                return Err(CopyError::Integrity {
                    url: url.clone(),
                    path: (kind.rel)(k),
                    reason: format!("the {what} is filed under another key"),
                });
            }
            out.insert(**k, entry);
        }
        Ok(out)
    }

    /// The entries of `cmod-cache-index`, if the cache has one (read once per session).
    fn index(&self) -> Result<Option<BTreeSet<String>>, CopyError> {
        if let Some(ix) = self.index.lock().ok().and_then(|g| g.clone()) {
            return Ok(ix);
        }
        let ix = self.read_index()?;
        if let Ok(mut g) = self.index.lock() {
            *g = Some(ix.clone());
        }
        Ok(ix)
    }

    /// The index, or `None` when the cache has none, it is in another format, or it is
    /// larger than its bound (a hint is not worth unbounded memory: the cache is then
    /// asked per name, and writers leave the oversized index alone).
    fn read_index(&self) -> Result<Option<BTreeSet<String>>, CopyError> {
        let bytes = match self.backend.get(INDEX_FILE, limits::INDEX_MAX) {
            Ok(Some(b)) => b,
            Ok(None) | Err(BackendError::TooLarge(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.lines();
        if lines.next() != Some(INDEX_HEADER) {
            // Another format: ignore it and ask per path.
            return Ok(None);
        }
        Ok(Some(lines.map(str::to_string).collect()))
    }

    /// Add entries (`info/<hash part>`, `trace/<key>`) to the index, after their files
    /// are uploaded. Concurrent writers may lose each other's additions; that only makes
    /// a later copy send them again.
    fn add_to_index(&self, entries: impl IntoIterator<Item = String>) -> Result<(), CopyError> {
        let mut all = match self.backend.get(INDEX_FILE, limits::INDEX_MAX) {
            Err(BackendError::TooLarge(_)) => return Ok(()),
            _ => self.read_index()?.unwrap_or_default(),
        };
        let before = all.len();
        all.extend(entries);
        if let Ok(mut g) = self.index.lock() {
            *g = Some(Some(all.clone()));
        }
        if all.len() == before {
            return Ok(());
        }
        let mut text = String::with_capacity(33 * all.len() + 32);
        text.push_str(INDEX_HEADER);
        text.push('\n');
        for h in &all {
            text.push_str(h);
            text.push('\n');
        }
        self.backend
            .put_bytes(INDEX_FILE, text.as_bytes())
            .map_err(|e| self.err(e))
    }

    fn pack_and_upload(&self, store: &Store, p: &StorePath) -> Result<NarInfo, CopyError> {
        let (tmp, mut archive) = crate::serve::pack_to_temp(store, p)?;
        archive.file = format!("nar/{}.tar.zst", base32::encode(&archive.file_hash.0));
        let up = self.backend.put_file(&archive.file, &tmp);
        let _ = std::fs::remove_file(&tmp);
        up.map_err(|e| self.err(e))?;
        let mut info = crate::serve::nar_info(store, p)?;
        info.archive = archive;
        Ok(info)
    }
}

impl Source for BinaryCache {
    fn url(&self) -> String {
        self.backend.url()
    }

    fn infos(&self, paths: &[StorePath]) -> Result<BTreeMap<StorePath, NarInfo>, CopyError> {
        self.check_readable()?;
        let url = self.backend.url();
        let rels = paths.iter().map(info_rel).collect();
        let got = self.get_many(rels, limits::PATH_INFO_MAX, 16, |rel, bytes| {
            parse_versioned::<NarInfo>(bytes).map_err(|e| CopyError::Integrity {
                url: url.clone(),
                path: rel.into(),
                reason: format!("its metadata cannot be used: {e}"),
            })
        })?;
        let mut out = BTreeMap::new();
        for (p, info) in paths.iter().zip(got) {
            let Some(info) = info else { continue };
            if info.path != *p {
                return Err(CopyError::Integrity {
                    url: url.clone(),
                    path: p.to_string(),
                    reason: format!("its metadata describes `{}`", info.path),
                });
            }
            out.insert(p.clone(), info);
        }
        Ok(out)
    }

    fn traces(&self, keys: &[ContentHash]) -> Result<BTreeMap<ContentHash, TraceEntry>, CopyError> {
        self.check_readable()?;
        let wanted: Vec<&ContentHash> = keys.iter().collect();
        let parse = |bytes: &[u8]| {
            parse_versioned::<TraceEntry>(bytes)
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    (t.version == TRACE_VERSION)
                        .then_some(t)
                        .ok_or_else(|| "unsupported version".to_string())
                })
        };
        self.keyed(
            &wanted,
            Keyed {
                rel: trace_rel,
                limit: limits::TRACE_MAX,
                what: "build-trace entry",
                parse: &parse,
                key_of: &|t: &TraceEntry| t.key,
            },
        )
    }

    /// Scan entries for `keys`: one request each, except for keys the index (when the
    /// cache has one) says are absent.
    fn scans(&self, keys: &[ContentHash]) -> Result<BTreeMap<ContentHash, ScanEntry>, CopyError> {
        self.check_readable()?;
        let index = if self.backend.listable() {
            None
        } else {
            self.index()?
        };
        let wanted: Vec<&ContentHash> = keys
            .iter()
            .filter(|k| {
                index
                    .as_ref()
                    .is_none_or(|ix| ix.contains(scan_rel(k).trim_end_matches(".json")))
            })
            .collect();
        let parse = |bytes: &[u8]| parse_versioned::<ScanEntry>(bytes).map_err(|e| e.to_string());
        self.keyed(
            &wanted,
            Keyed {
                rel: scan_rel,
                limit: limits::SCAN_MAX,
                what: "scan entry",
                parse: &parse,
                key_of: &|e: &ScanEntry| e.key,
            },
        )
    }

    fn fetch(&self, infos: &[NarInfo], jobs: usize, each: &OnArchive<'_>) -> Result<(), CopyError> {
        self.check_readable()?;
        parallel(infos, jobs, |info| {
            let rel = &info.archive.file;
            if !rel.starts_with("nar/")
                || rel.contains("..")
                || info.archive.compression != "tar+zstd"
            {
                return Err(CopyError::Integrity {
                    url: Source::url(self),
                    path: info.path.to_string(),
                    reason: format!(
                        "its archive `{rel}` ({}) is not a v1 archive location",
                        info.archive.compression
                    ),
                });
            }
            let found = self
                .backend
                .read(rel, info.archive.file_size, &mut |r| each(info, r))?;
            if !found {
                return Err(CopyError::NotFound {
                    url: Source::url(self),
                    path: format!("{rel} (the archive of {})", info.path),
                });
            }
            Ok(())
        })
    }
}

impl Dest for BinaryCache {
    fn url(&self) -> String {
        self.backend.url()
    }

    /// The batched query. A cache with an index answers from it in one request (a path
    /// the index misses is sent again, which is harmless); one without (written by an
    /// older cmod, or emptied by hand) is asked per path. `file://` always lists `info/`.
    fn missing(&self, paths: &[StorePath]) -> Result<BTreeSet<StorePath>, CopyError> {
        if !self.backend.listable() {
            if let Some(index) = self.index()? {
                return Ok(paths
                    .iter()
                    .filter(|p| !index.contains(&format!("info/{}", p.hash_part())))
                    .cloned()
                    .collect());
            }
        }
        let names: Vec<String> = paths
            .iter()
            .map(|p| format!("{}.json", p.hash_part()))
            .collect();
        let have = self
            .backend
            .exist("info", &names, 16)
            .map_err(|e| self.err(e))?;
        Ok(paths
            .iter()
            .zip(have)
            .filter(|(_, h)| !h)
            .map(|(p, _)| p.clone())
            .collect())
    }

    fn send(&self, store: &Store, paths: &[StorePath], jobs: usize) -> Result<usize, CopyError> {
        if paths.is_empty() {
            return Ok(0);
        }
        self.ensure_cache_info()?;
        // Archives first, in parallel.
        let infos: Vec<std::sync::Mutex<Option<NarInfo>>> =
            paths.iter().map(|_| std::sync::Mutex::new(None)).collect();
        let idx: Vec<usize> = (0..paths.len()).collect();
        parallel(&idx, jobs, |&i| {
            let info = self.pack_and_upload(store, &paths[i])?;
            if let Ok(mut s) = infos[i].lock() {
                *s = Some(info);
            }
            Ok::<(), CopyError>(())
        })?;
        let infos: Vec<NarInfo> = infos
            .into_iter()
            .filter_map(|s| s.into_inner().ok().flatten())
            .collect();
        // Then metadata, level by level (references first).
        let n = infos.len();
        for level in crate::transfer::levels(infos) {
            parallel(&level, jobs.max(4), |info| {
                let bytes = serde_json::to_vec_pretty(info)
                    .map_err(|e| self.err(BackendError::Failed(e.to_string())))?;
                self.backend
                    .put_bytes(&info_rel(&info.path), &bytes)
                    .map_err(|e| self.err(e))
            })?;
        }
        self.add_to_index(paths.iter().map(|p| format!("info/{}", p.hash_part())))?;
        Ok(n)
    }

    fn send_traces(&self, entries: &[TraceEntry]) -> Result<(), CopyError> {
        if entries.is_empty() {
            return Ok(());
        }
        // Only the entries the cache lacks, found like the paths (one listing, the
        // index, or a request per entry).
        let keys: Vec<String> = entries.iter().map(|t| base32::encode(&t.key.0)).collect();
        let index = if self.backend.listable() {
            None
        } else {
            self.index()?
        };
        let have: Vec<bool> = match index {
            Some(ix) => keys
                .iter()
                .map(|k| ix.contains(&format!("trace/{k}")))
                .collect(),
            None => {
                let names: Vec<String> = keys.iter().map(|k| format!("{k}.json")).collect();
                self.backend
                    .exist("trace", &names, 16)
                    .map_err(|e| self.err(e))?
            }
        };
        let todo: Vec<&TraceEntry> = entries
            .iter()
            .zip(&have)
            .filter(|(_, h)| !**h)
            .map(|(t, _)| t)
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        self.ensure_cache_info()?;
        parallel(&todo, 8, |t| {
            let bytes = serde_json::to_vec_pretty(t)
                .map_err(|e| self.err(BackendError::Failed(e.to_string())))?;
            self.backend
                .put_bytes(&trace_rel(&t.key), &bytes)
                .map_err(|e| self.err(e))
        })?;
        self.add_to_index(
            todo.iter()
                .map(|t| format!("trace/{}", base32::encode(&t.key.0))),
        )
    }

    /// Upload the scan entries the cache lacks (by the index, a listing or a request
    /// each); returns how many were sent.
    fn send_scans(&self, entries: &[ScanEntry]) -> Result<usize, CopyError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let index = if self.backend.listable() {
            None
        } else {
            self.index()?
        };
        let have: Vec<bool> = match index {
            Some(ix) => entries
                .iter()
                .map(|e| ix.contains(scan_rel(&e.key).trim_end_matches(".json")))
                .collect(),
            None => {
                let names: Vec<String> = entries
                    .iter()
                    .map(|e| format!("{}.json", base32::encode(&e.key.0)))
                    .collect();
                self.backend
                    .exist("scan", &names, 16)
                    .map_err(|e| self.err(e))?
            }
        };
        let todo: Vec<&ScanEntry> = entries
            .iter()
            .zip(&have)
            .filter(|(_, h)| !**h)
            .map(|(e, _)| e)
            .collect();
        if todo.is_empty() {
            return Ok(0);
        }
        self.ensure_cache_info()?;
        parallel(&todo, 8, |e| {
            let bytes = serde_json::to_vec(e)
                .map_err(|er| self.err(BackendError::Failed(er.to_string())))?;
            self.backend
                .put_bytes(&scan_rel(&e.key), &bytes)
                .map_err(|er| self.err(er))
        })?;
        self.add_to_index(
            todo.iter()
                .map(|e| scan_rel(&e.key).trim_end_matches(".json").to_string()),
        )?;
        Ok(todo.len())
    }
}
