//! `cmod copy`: closures, the one batched "which of these do you lack" query, and the
//! transfer in either direction through any transport.

use std::collections::{BTreeMap, BTreeSet};

use cmod_schema::cache::NarInfo;
use cmod_schema::{ContentHash, StorePath};

use crate::cache::BinaryCache;
use crate::error::StoreError;
use crate::layout::Store;
use crate::ssh::SshStore;
use crate::trace::TraceEntry;
use crate::transfer::{receive, CopyError, Dest, Source, Trust};

/// An opened store URL.
pub enum Remote {
    /// A binary cache (`file://`, `http(s)://`).
    Cache(BinaryCache),
    /// Another machine's store, over ssh (`ssh://`).
    Ssh(SshStore),
}

impl Remote {
    /// Open `file://`, `http(s)://` or `ssh://` (connecting, for ssh) with `connect`.
    pub fn open(url: &str, connect: &crate::connect::Connect) -> Result<Remote, CopyError> {
        if url.starts_with("ssh://") {
            Ok(Remote::Ssh(SshStore::connect(url, connect)?))
        } else {
            Ok(Remote::Cache(BinaryCache::open_with(url, connect)?))
        }
    }

    /// The remote as a place to copy paths from.
    pub fn source(&self) -> &dyn Source {
        match self {
            Remote::Cache(c) => c,
            Remote::Ssh(s) => s,
        }
    }

    /// The remote as a place to copy paths to.
    pub fn dest(&self) -> &dyn Dest {
        match self {
            Remote::Cache(c) => c,
            Remote::Ssh(s) => s,
        }
    }
}

/// The closure of `roots` in `store`, topologically ordered (references first).
pub fn closure(store: &Store, roots: &[StorePath]) -> Result<Vec<StorePath>, StoreError> {
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    // Iterative post-order depth-first search.
    for r in roots {
        if seen.contains(r) {
            continue;
        }
        seen.insert(r.clone());
        let mut stack: Vec<(StorePath, Vec<StorePath>)> = vec![(
            r.clone(),
            store.path_info(r)?.references.into_iter().collect(),
        )];
        while let Some((p, mut refs)) = stack.pop() {
            match refs.pop() {
                Some(next) => {
                    stack.push((p, refs));
                    if next != stack[stack.len() - 1].0 && seen.insert(next.clone()) {
                        let nrefs = store.path_info(&next)?.references.into_iter().collect();
                        stack.push((next, nrefs));
                    }
                }
                None => order.push(p),
            }
        }
    }
    Ok(order)
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Paths in the closure that was considered.
    pub closure: usize,
    /// Paths transferred.
    pub copied: usize,
    /// Build-trace entries transferred.
    pub traces: usize,
}

/// Copy the closure of `roots` and of the outputs of `traces`, then `traces`, to `dest`.
pub fn copy_to(
    store: &Store,
    dest: &dyn Dest,
    roots: &[StorePath],
    traces: &[TraceEntry],
    jobs: usize,
) -> Result<CopyReport, CopyError> {
    let mut all: Vec<StorePath> = roots.to_vec();
    for t in traces {
        all.extend(t.outputs.values().cloned());
    }
    let order = closure(store, &all)?;
    let missing = dest.missing(&order)?;
    let todo: Vec<StorePath> = order
        .iter()
        .filter(|p| missing.contains(*p))
        .cloned()
        .collect();
    let copied = dest.send(store, &todo, jobs)?;
    dest.send_traces(traces)?;
    Ok(CopyReport {
        closure: order.len(),
        copied,
        traces: traces.len(),
    })
}

/// The metadata of the closure of `roots` at `source`, skipping what `store` already
/// has (one batched query per level of references).
pub fn remote_closure(
    store: &Store,
    source: &dyn Source,
    roots: &[StorePath],
) -> Result<Vec<NarInfo>, CopyError> {
    let mut seen: BTreeSet<StorePath> = BTreeSet::new();
    let mut frontier: Vec<StorePath> = roots
        .iter()
        .filter(|p| !store.is_valid(p))
        .cloned()
        .collect();
    let mut out = Vec::new();
    while !frontier.is_empty() {
        seen.extend(frontier.iter().cloned());
        let mut infos = source.infos(&frontier)?;
        let mut next = BTreeSet::new();
        for p in &frontier {
            let info = infos.remove(p).ok_or_else(|| CopyError::NotFound {
                url: source.url(),
                path: p.to_string(),
            })?;
            for r in &info.references {
                if !seen.contains(r) && !store.is_valid(r) {
                    next.insert(r.clone());
                }
            }
            out.push(info);
        }
        frontier = next.into_iter().collect();
    }
    Ok(out)
}

/// Copy the closure of `roots` from `source` into `store`.
pub fn copy_from(
    store: &Store,
    source: &dyn Source,
    roots: &[StorePath],
    trust: &Trust,
    jobs: usize,
) -> Result<CopyReport, CopyError> {
    let infos = remote_closure(store, source, roots)?;
    let n = infos.len();
    let copied = receive(store, source, infos, trust, jobs)?;
    Ok(CopyReport {
        closure: n,
        copied: copied.len(),
        traces: 0,
    })
}

/// What a source offered for a batch of trace keys.
#[derive(Debug, Default)]
pub struct FetchedTraces {
    /// Entries with a verified signature by a trusted key (or all, when signatures are
    /// not required).
    pub trusted: BTreeMap<ContentHash, TraceEntry>,
    /// How many entries were ignored for want of a trusted signature, and why (the last).
    pub ignored: usize,
    /// The reason the last ignored entry was refused.
    pub why: String,
}

/// Build-trace entries of `source` for `keys`. Entries without a trusted signature are
/// ignored (counted); a trusted signature that does not verify is an error.
pub fn fetch_traces(
    source: &dyn Source,
    keys: &[ContentHash],
    trust: &Trust,
) -> Result<FetchedTraces, CopyError> {
    let url = source.url();
    let mut out = FetchedTraces::default();
    for (k, t) in source.traces(keys)? {
        match trust.trace_verdict(&url, &t)? {
            None => {
                out.trusted.insert(k, t);
            }
            Some(why) => {
                out.ignored += 1;
                out.why = why.to_string();
            }
        }
    }
    Ok(out)
}
