//! Substitution: before building, `realise` asks the configured substituters for the
//! build-trace entries of the derivations it needs — one batched query per level of the
//! derivation graph — and downloads, verifies and registers the outputs they name
//! instead of building them.
//!
//! Keys are the *resolved* derivations' trace keys, so a level can only be asked once
//! the outputs of every input are known (found locally, or named by a verified trace
//! entry one level down). A trace entry is used only with a valid signature by a
//! trusted key (when signatures are required, the default), and so is every output path
//! it names. An entry without one (unsigned, or signed only by unknown keys) is ignored
//! with a warning and the step built here, as Nix ignores unsigned substitutes. An
//! unreachable or too slow substituter is skipped with a warning; a trusted signature
//! that does not verify, a bad hash or an oversized answer is an error naming the
//! substituter and the path.
//!
//! The configuration ([`Sharing`]) is a value the caller passes down: the CLI makes it
//! once per command (from flags, `cmod.toml` and user configuration) and hands it to
//! `realise` ([`crate::realise::RealiseOptions::sharing`]), to scan substitution and to
//! repair. Its `signing` keys sign every path and trace entry the realisation builds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use cmod_schema::derivation::Derivation;
use cmod_schema::{ContentHash, StorePath};
use rayon::prelude::*;

use crate::copy::{fetch_traces, remote_closure, Remote};
use crate::layout::Store;
use crate::sign::SecretKey;
use crate::trace::TraceEntry;
use crate::transfer::{receive, CopyError, Trust};

/// What substitution and signing use.
#[derive(Debug, Clone, Default)]
pub struct Sharing {
    /// Substituter URLs, in order of preference.
    pub substituters: Vec<String>,
    /// The keys whose signatures are trusted, and whether signatures are required.
    pub trust: Trust,
    /// Parallel downloads.
    pub jobs: usize,
    /// Keys that sign everything built here.
    pub signing: Vec<SecretKey>,
    /// How the substituters are reached.
    pub connect: crate::connect::Connect,
    /// Substituters found unavailable so far by any user of this configuration.
    pub unavailable: Unavailable,
    /// A REAPI server whose action cache is asked before, and told after, each step.
    pub remote_cache: Option<RemoteSetting>,
    /// A REAPI server that executes every step (`--remote-executor`).
    pub remote_executor: Option<RemoteSetting>,
    /// Build locally when the remote executor is unreachable (`--remote-fallback`).
    pub remote_fallback: bool,
}

/// Where a REAPI service is (see the `cmod-remote` crate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSetting {
    /// `grpc://host:port` or `grpcs://host[:port]`.
    pub url: String,
    /// The REAPI instance name (empty by default).
    pub instance_name: String,
    /// Headers sent with every call, as `name=value` (the configured ones; the
    /// environment's are added where the connection is made).
    pub headers: Vec<String>,
}

/// Substituters found unavailable (url → why), shared by the clones of one [`Sharing`]:
/// asking for scan entries happens before the substitution walk, and a cache that timed
/// out there is not asked again.
#[derive(Debug, Clone, Default)]
pub struct Unavailable(Arc<Mutex<BTreeMap<String, String>>>);

impl Unavailable {
    /// Remember that the substituter `url` is unavailable.
    pub(crate) fn mark(&self, url: &str, why: &CopyError) {
        if let Ok(mut u) = self.0.lock() {
            u.entry(url.to_string()).or_insert_with(|| why.to_string());
        }
    }

    /// Why `url` was found unavailable, if it was.
    fn why(&self, url: &str) -> Option<String> {
        self.0.lock().ok().and_then(|u| u.get(url).cloned())
    }
}

/// What [`refetch`] did.
#[derive(Debug, Default)]
pub struct Refetched {
    /// Each fetched path with the URL it came from.
    pub fetched: Vec<(StorePath, String)>,
    /// Copies passed over because no trusted key signed them (the message says which).
    pub untrusted: Vec<String>,
}

/// Fetch those of `paths` that are not valid from `cfg`'s substituters, one path
/// at a time in their order (signatures checked as for any substitution), for
/// repairing damaged paths. A substituter that is unavailable, lacks a path or offers
/// only an untrusted copy is passed over; a forged or mismatching copy is an error.
pub fn refetch(store: &Store, cfg: &Sharing, paths: &[StorePath]) -> Result<Refetched, CopyError> {
    let mut out = Refetched::default();
    for url in &cfg.substituters {
        let missing: Vec<&StorePath> = paths.iter().filter(|p| !store.is_valid(p)).collect();
        if missing.is_empty() {
            break;
        }
        let Ok(remote) = Remote::open(url, &cfg.connect) else {
            continue;
        };
        for p in missing {
            let one = std::slice::from_ref(p);
            match crate::copy::copy_from(store, remote.source(), one, &cfg.trust, cfg.jobs) {
                Ok(_) => out.fetched.push((p.clone(), url.clone())),
                Err(e) if e.is_unavailable_source() => {}
                Err(e @ CopyError::Untrusted { .. }) => out.untrusted.push(e.to_string()),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(out)
}

/// Sign a freshly built trace entry and its outputs' metadata with `keys`.
pub(crate) fn sign_built(
    store: &Store,
    keys: &[SecretKey],
    entry: &mut TraceEntry,
) -> Result<(), crate::StoreError> {
    for key in keys {
        for out in entry.outputs.values() {
            let mut info = store.path_info(out)?;
            key.sign_path(&mut info);
            store.write_path_info(&info)?;
        }
        key.sign_trace(entry);
    }
    Ok(())
}

/// A substituted derivation.
pub struct Substituted<'a> {
    /// The derivation's `.drv` path.
    pub drv: &'a StorePath,
    /// The derivation's name.
    pub name: &'a str,
    /// Its outputs: output name → store path.
    pub outputs: &'a BTreeMap<String, StorePath>,
    /// The substituter's URL.
    pub from: &'a str,
}

/// Callbacks of a walk.
pub trait Observer {
    /// Report something worth telling that does not stop the walk.
    fn warn(&self, message: &str);
    /// Report a derivation whose outputs were substituted.
    fn substituted(&self, s: &Substituted<'_>);
}

struct Remotes<'a> {
    urls: &'a [String],
    unavailable: &'a Unavailable,
    connect: &'a crate::connect::Connect,
    open: Vec<Option<Remote>>,
    disabled: Vec<bool>,
}

impl Remotes<'_> {
    fn get(&mut self, i: usize, obs: &dyn Observer) -> Option<&Remote> {
        if self.disabled[i] {
            return None;
        }
        if let Some(why) = self.unavailable.why(&self.urls[i]) {
            obs.warn(&format!(
                "substituter `{}` is unavailable ({why}); building locally instead",
                self.urls[i]
            ));
            self.disabled[i] = true;
            return None;
        }
        if self.open[i].is_none() {
            match Remote::open(&self.urls[i], self.connect) {
                Ok(r) => self.open[i] = Some(r),
                Err(e) => {
                    self.fail(i, &e, obs);
                    return None;
                }
            }
        }
        self.open[i].as_ref()
    }

    fn fail(&mut self, i: usize, e: &CopyError, obs: &dyn Observer) {
        obs.warn(&format!(
            "substituter `{}` is unavailable ({e}); building locally instead",
            self.urls[i]
        ));
        self.disabled[i] = true;
        self.open[i] = None;
    }
}

/// A trace hit waiting for its outputs to be downloaded.
struct Hit {
    drv: StorePath,
    key: ContentHash,
    entry: TraceEntry,
    from: usize,
}

/// The derivations of `order` whose input derivations are all known, level by level:
/// the first level is what `known` already allows, each next one what the derivations
/// newly known in the previous level release. Linear in the graph (a scan of the whole
/// order per level was quadratic on deep graphs).
struct Frontier {
    /// Per derivation of the order: its input derivations not known yet.
    pending: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    next: Vec<usize>,
}

impl Frontier {
    fn new(
        drvs: &BTreeMap<StorePath, Derivation>,
        order: &[StorePath],
        known: &Outputs,
    ) -> Frontier {
        let index: HashMap<&StorePath, usize> =
            order.iter().enumerate().map(|(i, d)| (d, i)).collect();
        let mut pending = vec![0; order.len()];
        let mut dependents = vec![Vec::new(); order.len()];
        for (i, d) in order.iter().enumerate() {
            for input in drvs[d].input_drvs() {
                if known.contains_key(input) {
                    continue;
                }
                pending[i] += 1;
                if let Some(&j) = index.get(input) {
                    dependents[j].push(i);
                }
            }
        }
        let next = (0..order.len())
            .filter(|&i| pending[i] == 0 && !known.contains_key(&order[i]))
            .collect();
        Frontier {
            pending,
            dependents,
            next,
        }
    }

    /// The next level (indices into the order), in the order's topological order.
    fn take(&mut self) -> Vec<usize> {
        let mut level = std::mem::take(&mut self.next);
        level.sort_unstable();
        level
    }

    /// Release the dependents of the derivations of `level` that became known.
    fn release(&mut self, level: &[usize], order: &[StorePath], known: &Outputs) {
        for &i in level.iter().filter(|&&i| known.contains_key(&order[i])) {
            for &j in &self.dependents[i] {
                self.pending[j] -= 1;
                if self.pending[j] == 0 {
                    self.next.push(j);
                }
            }
        }
    }
}

/// Outputs of derivations, by derivation.
type Outputs = HashMap<StorePath, BTreeMap<String, StorePath>>;

/// Walk `order` (topologically sorted derivations) and substitute what the configured
/// substituters have. First the trace walk: level by level, one batched trace query per
/// level and substituter (a hit names its outputs, which is all the next level needs to
/// resolve). Then the downloads: every hit's outputs from each substituter in one
/// parallel, verified transfer. Returns the substituted derivations' outputs.
/// Derivations in `known` are taken as realised with those outputs.
pub fn walk(
    store: &Store,
    drvs: &BTreeMap<StorePath, Derivation>,
    order: &[StorePath],
    known: Outputs,
    sandbox: &str,
    cfg: &Sharing,
    obs: &dyn Observer,
) -> Result<Outputs, CopyError> {
    if cfg.substituters.is_empty() {
        return Ok(HashMap::new());
    }
    let mut walk = Walk {
        store,
        drvs,
        cfg,
        obs,
        remotes: Remotes {
            urls: &cfg.substituters,
            unavailable: &cfg.unavailable,
            connect: &cfg.connect,
            open: cfg.substituters.iter().map(|_| None).collect(),
            disabled: vec![false; cfg.substituters.len()],
        },
        known,
        hits: Vec::new(),
    };
    let mut frontier = Frontier::new(drvs, order, &walk.known);
    loop {
        let level = frontier.take();
        if level.is_empty() {
            break;
        }
        let level_drvs: Vec<&StorePath> = level.iter().map(|&i| &order[i]).collect();
        walk.trace_level(&level_drvs, sandbox)?;
        frontier.release(&level, order, &walk.known);
    }
    let failed = walk.download()?;
    walk.record(&failed)
}

/// One substitution walk's state: what is known realised, and the trace hits so far.
struct Walk<'a> {
    store: &'a Store,
    drvs: &'a BTreeMap<StorePath, Derivation>,
    cfg: &'a Sharing,
    obs: &'a dyn Observer,
    remotes: Remotes<'a>,
    /// Outputs of the derivations realised (here, or by a trace hit).
    known: Outputs,
    hits: Vec<Hit>,
}

impl Walk<'_> {
    /// Resolve the derivations of one level and look their trace keys up: in the store,
    /// then in one batched query per substituter, in order.
    fn trace_level(&mut self, level: &[&StorePath], sandbox: &str) -> Result<(), CopyError> {
        let mut want: Vec<(&StorePath, ContentHash)> = Vec::new();
        for &d in level {
            let known = &self.known;
            let resolved =
                self.drvs[d].resolve(|i, o| known.get(i).and_then(|m| m.get(o)).cloned());
            let Some(key) = resolved.ok().and_then(|r| r.trace_key(sandbox).ok()) else {
                continue;
            };
            match self.store.trace_lookup(&key) {
                Some(e) => {
                    self.known.insert(d.clone(), e.outputs);
                }
                None => want.push((d, key)),
            }
        }
        for i in 0..self.cfg.substituters.len() {
            if want.is_empty() {
                break;
            }
            self.ask(i, &mut want)?;
        }
        Ok(())
    }

    /// Ask substituter `i` for the trace entries of `want`; what it has (trusted) leaves
    /// `want` and becomes a hit.
    fn ask(
        &mut self,
        i: usize,
        want: &mut Vec<(&StorePath, ContentHash)>,
    ) -> Result<(), CopyError> {
        let Some(remote) = self.remotes.get(i, self.obs) else {
            return Ok(());
        };
        let keys: Vec<ContentHash> = want.iter().map(|(_, k)| *k).collect();
        let fetched = match fetch_traces(remote.source(), &keys, &self.cfg.trust) {
            Ok(e) => e,
            Err(e @ (CopyError::Unreachable { .. } | CopyError::Transport { .. })) => {
                self.remotes.fail(i, &e, self.obs);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if fetched.ignored > 0 {
            self.obs.warn(&ignored_warning(
                fetched.ignored,
                &self.cfg.substituters[i],
                &fetched.why,
            ));
        }
        let entries = fetched.trusted;
        want.retain(|(d, key)| match entries.get(key) {
            Some(entry) => {
                self.known.insert((*d).clone(), entry.outputs.clone());
                self.hits.push(Hit {
                    drv: (*d).clone(),
                    key: *key,
                    entry: entry.clone(),
                    from: i,
                });
                false
            }
            None => true,
        });
        Ok(())
    }

    /// Download every hit's outputs, one verified transfer per substituter. Returns the
    /// substituters that failed (skipped like unreachable ones).
    fn download(&mut self) -> Result<BTreeSet<usize>, CopyError> {
        let mut failed: BTreeSet<usize> = BTreeSet::new();
        for i in 0..self.cfg.substituters.len() {
            let outs: Vec<StorePath> = self
                .hits
                .iter()
                .filter(|h| h.from == i)
                .flat_map(|h| h.entry.outputs.values().cloned())
                .collect();
            if outs.is_empty() {
                continue;
            }
            let Some(remote) = self.remotes.get(i, self.obs) else {
                failed.insert(i);
                continue;
            };
            let source = remote.source();
            let got = remote_closure(self.store, source, &outs).and_then(|infos| {
                receive(
                    self.store,
                    source,
                    infos,
                    &self.cfg.trust,
                    self.cfg.jobs.max(1),
                )
            });
            match got {
                Ok(_) => {}
                // A cache whose trace names outputs it does not hold is broken, not
                // hostile: skip it like an unreachable one.
                Err(e) if e.is_unavailable_source() => {
                    self.remotes.fail(i, &e, self.obs);
                    failed.insert(i);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(failed)
    }

    /// Record the hits whose outputs arrived (in parallel: every entry is a file of its
    /// own), then report them in topological order; their outputs by derivation.
    fn record(self, failed: &BTreeSet<usize>) -> Result<Outputs, CopyError> {
        let store = self.store;
        let mut hits = self.hits;
        hits.retain(|h| {
            !failed.contains(&h.from) && h.entry.outputs.values().all(|p| store.is_valid(p))
        });
        hits.par_iter().try_for_each(|h| {
            store.trace_record(&h.entry)?;
            store.record_drv_outputs(&h.drv, &h.key, &h.entry.outputs)
        })?;
        let mut substituted = HashMap::new();
        for h in hits {
            self.obs.substituted(&Substituted {
                drv: &h.drv,
                name: &self.drvs[&h.drv].name,
                outputs: &h.entry.outputs,
                from: &self.cfg.substituters[h.from],
            });
            substituted.insert(h.drv, h.entry.outputs);
        }
        Ok(substituted)
    }
}

/// The warning for `n` trace entries from `url` not used (`why`: untrusted).
fn ignored_warning(n: usize, url: &str, why: &str) -> String {
    let one = n == 1;
    format!(
        "{n} build-trace entr{} from `{url}` {} not used ({why}; add the signer's key to \
         `trusted-public-keys`, or pass --no-require-sigs); {} built here unless \
         another substituter has {}",
        if one { "y" } else { "ies" },
        if one { "was" } else { "were" },
        if one {
            "that step is"
        } else {
            "those steps are"
        },
        if one { "it" } else { "them" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realise::tests_support::step;

    /// `a` ← `b` ← `c`, and `d` alone: a level holds what the known derivations allow;
    /// a derivation whose input stays unknown (to be built) never comes up.
    #[test]
    fn levels_follow_what_became_known() {
        let mut drvs = BTreeMap::new();
        let mut add = |d: Derivation| {
            let p = d.drv_path().unwrap();
            drvs.insert(p.clone(), d);
            p
        };
        let a = add(step("a", &[]));
        let b = add(step("b", &[&a]));
        let c = add(step("c", &[&b]));
        let d = add(step("d", &[]));
        let order = vec![a.clone(), b.clone(), c.clone(), d.clone()];
        let out = |p: &StorePath| BTreeMap::from([("obj".to_string(), p.clone())]);
        let mut known = Outputs::new();
        let mut f = Frontier::new(&drvs, &order, &known);
        assert_eq!(f.take(), [0, 3]);
        known.insert(a.clone(), out(&a));
        f.release(&[0, 3], &order, &known);
        assert_eq!(f.take(), [1]);
        // `b` is not found: `c` waits for its build.
        f.release(&[1], &order, &known);
        assert!(f.take().is_empty());
        // Starting with `a` and `b` known (reused), `c` and `d` come first.
        let known = Outputs::from([(a.clone(), out(&a)), (b.clone(), out(&b))]);
        assert_eq!(Frontier::new(&drvs, &order, &known).take(), [2, 3]);
    }
}
