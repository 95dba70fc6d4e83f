//! The input journal: everything an evaluation read (file stamps, file contents, files
//! found absent, resolved paths, environment variables), recorded while it ran, so that a
//! later command can tell that nothing it read has changed and reuse what it concluded
//! (a no-op `realise` then skips evaluation altogether).
//!
//! Every read of the evaluator reports itself through this module: [`Stamp::read`] and
//! [`Stamp::read_link`] (which every metadata-keyed cache validates with), and the
//! helpers here for contents ([`read_to_string`]), existence ([`is_file`]), resolved
//! paths ([`canonicalize`]) and the environment ([`var_os`]). A read that cannot be
//! journaled (a process run, such as the scanner or `pkg-config`) reports
//! [`Input::Untracked`], and no journal is written for that evaluation. Recording more
//! than an evaluation read is harmless (a miss costs one evaluation); recording less
//! would be a stale build, so the places that read are few and listed above.
//!
//! A stamp taken within [`RACY_WINDOW_NS`] of the file's last change is not trusted (a
//! second change could land in the same timestamp tick), as in the file-hash cache.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::hashing::{now_ns, Stamp};

mod format;

/// How long after a file's change its stamp is still distrusted (two seconds, as the
/// file-hash cache).
pub const RACY_WINDOW_NS: i128 = 2_000_000_000;

/// One thing an evaluation read, and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file or directory's stamp (symlinks followed).
    Stamp(PathBuf, Stamp),
    /// A path's own stamp (a symlink is stamped as a link).
    LinkStamp(PathBuf, Stamp),
    /// Nothing exists at the path.
    Absent(PathBuf),
    /// The BLAKE3 hash of the bytes read from the file.
    Content(PathBuf, [u8; 32]),
    /// The path resolved (symlinks, `..`) to this one.
    Canonical(PathBuf, PathBuf),
    /// An environment variable's value (`None`: unset).
    Env(OsString, Option<OsString>),
    /// Something was read that cannot be journaled (why).
    Untracked(String),
}

impl Input {
    /// What the input is about: two inputs with the same subject and different findings
    /// mean the thing changed while the evaluation ran.
    fn subject(&self) -> (u8, &OsStr) {
        match self {
            Input::Stamp(p, _) => (0, p.as_os_str()),
            Input::LinkStamp(p, _) => (1, p.as_os_str()),
            Input::Absent(p) => (0, p.as_os_str()),
            Input::Content(p, _) => (2, p.as_os_str()),
            Input::Canonical(p, _) => (3, p.as_os_str()),
            Input::Env(name, _) => (4, name.as_os_str()),
            Input::Untracked(why) => (5, OsStr::new(why.as_str())),
        }
    }

    /// Whether the input still holds.
    fn holds(&self) -> bool {
        match self {
            Input::Stamp(p, s) => std::fs::metadata(p).is_ok_and(|m| Stamp::of(&m) == *s),
            Input::LinkStamp(p, s) => {
                std::fs::symlink_metadata(p).is_ok_and(|m| Stamp::of(&m) == *s)
            }
            Input::Absent(p) => std::fs::symlink_metadata(p)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound),
            Input::Content(p, h) => std::fs::read(p).is_ok_and(|b| blake3::hash(&b) == *h),
            Input::Canonical(p, c) => p.canonicalize().is_ok_and(|now| now == *c),
            Input::Env(name, value) => std::env::var_os(name) == *value,
            Input::Untracked(_) => false,
        }
    }
}

type Sink = Arc<Mutex<Vec<Input>>>;

/// How many recordings are running (a read notes nothing while there are none).
static RECORDING: AtomicUsize = AtomicUsize::new(0);
static SINKS: Mutex<Vec<Sink>> = Mutex::new(Vec::new());

/// Note what a read found, in every running recording.
pub fn note(input: impl FnOnce() -> Input) {
    if RECORDING.load(Ordering::Acquire) == 0 {
        return;
    }
    let input = input();
    if let Ok(sinks) = SINKS.lock() {
        for sink in sinks.iter() {
            if let Ok(mut sink) = sink.lock() {
                sink.push(input.clone());
            }
        }
    }
}

/// Note a failed stat of `path`: absent, or something that cannot be journaled.
pub(crate) fn note_stat_error(path: &Path, e: &std::io::Error) {
    note(|| match e.kind() {
        std::io::ErrorKind::NotFound => Input::Absent(path.to_path_buf()),
        _ => Input::Untracked(format!("cannot stat `{}`: {e}", path.display())),
    });
}

/// Read a file as text, noting its contents.
pub fn read_to_string(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            note(|| {
                Input::Content(
                    path.to_path_buf(),
                    *blake3::hash(text.as_bytes()).as_bytes(),
                )
            });
            Ok(text)
        }
        Err(e) => {
            note_stat_error(path, &e);
            Err(e)
        }
    }
}

/// `path`'s metadata (symlinks followed when `follow`, else a symlink's own), noting
/// its stamp, or that nothing is there.
pub fn metadata(path: &Path, follow: bool) -> std::io::Result<std::fs::Metadata> {
    let meta = if follow {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    match &meta {
        Ok(m) if follow => note(|| Input::Stamp(path.to_path_buf(), Stamp::of(m))),
        Ok(m) => note(|| Input::LinkStamp(path.to_path_buf(), Stamp::of(m))),
        Err(e) => note_stat_error(path, e),
    }
    meta
}

/// Whether `path` is a regular file (symlinks followed), noting its stamp.
pub fn is_file(path: &Path) -> bool {
    metadata(path, true).is_ok_and(|m| m.is_file())
}

/// Whether `path` is a directory (symlinks followed), noting its stamp.
pub fn is_dir(path: &Path) -> bool {
    metadata(path, true).is_ok_and(|m| m.is_dir())
}

/// `path` resolved, noting the result.
pub fn canonicalize(path: &Path) -> std::io::Result<PathBuf> {
    match path.canonicalize() {
        Ok(c) => {
            note(|| Input::Canonical(path.to_path_buf(), c.clone()));
            Ok(c)
        }
        Err(e) => {
            note(|| Input::Untracked(format!("cannot resolve `{}`: {e}", path.display())));
            Err(e)
        }
    }
}

/// An environment variable, noting its value.
pub fn var_os(name: &str) -> Option<OsString> {
    let value = std::env::var_os(name);
    note(|| Input::Env(name.into(), value.clone()));
    value
}

/// A running recording of what the evaluator reads; [`Recording::finish`] ends it.
pub struct Recording {
    sink: Sink,
    started_ns: i128,
    racy_window_ns: i128,
}

impl Recording {
    /// Start recording every read (of any thread of this process).
    pub fn start() -> Recording {
        let sink: Sink = Arc::default();
        if let Ok(mut sinks) = SINKS.lock() {
            sinks.push(sink.clone());
        }
        RECORDING.fetch_add(1, Ordering::AcqRel);
        Recording {
            sink,
            started_ns: now_ns(),
            racy_window_ns: RACY_WINDOW_NS,
        }
    }

    /// Trust stamps `window_ns` after their file's change instead of [`RACY_WINDOW_NS`]
    /// (tests whose files were just written use 0).
    pub fn with_racy_window(mut self, window_ns: i128) -> Recording {
        self.racy_window_ns = window_ns;
        self
    }

    /// Stop recording; what was read, deduplicated.
    pub fn finish(self) -> Recorded {
        let mut recorded = Recorded {
            inputs: BTreeMap::new(),
            started_ns: self.started_ns,
            racy_window_ns: self.racy_window_ns,
            problem: None,
        };
        let taken = self.sink.lock().map(|mut s| std::mem::take(&mut *s));
        match taken {
            Ok(inputs) => inputs.into_iter().for_each(|i| recorded.add(i)),
            Err(_) => recorded.problem = Some("the recording was lost".into()),
        }
        recorded
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Ok(mut sinks) = SINKS.lock() {
            sinks.retain(|s| !Arc::ptr_eq(s, &self.sink));
        }
        RECORDING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a recording saw: every input once, or why it cannot be journaled.
#[derive(Debug)]
pub struct Recorded {
    inputs: BTreeMap<(u8, OsString), Input>,
    started_ns: i128,
    racy_window_ns: i128,
    problem: Option<String>,
}

impl Recorded {
    /// Add an input (one the caller read itself, such as the lockfile it wrote).
    pub fn add(&mut self, input: Input) {
        if self.problem.is_some() {
            return;
        }
        match &input {
            Input::Untracked(why) => {
                self.problem = Some(why.clone());
                return;
            }
            Input::Stamp(p, s) | Input::LinkStamp(p, s)
                if s.is_racy(self.started_ns, self.racy_window_ns) =>
            {
                self.problem = Some(format!("`{}` changed too recently", p.display()));
                return;
            }
            _ => {}
        }
        let (tag, subject) = input.subject();
        // Found absent once and read another time: it appeared meanwhile.
        let other = match &input {
            Input::Absent(p) => self.inputs.get(&(2, p.clone().into_os_string())),
            Input::Content(p, _) => self
                .inputs
                .get(&(0, p.clone().into_os_string()))
                .filter(|i| matches!(i, Input::Absent(_))),
            _ => None,
        };
        if other.is_some() {
            self.problem = Some(format!(
                "`{}` appeared while it was read",
                Path::new(subject).display()
            ));
            return;
        }
        let key = (tag, subject.to_os_string());
        match self.inputs.get(&key) {
            Some(seen) if *seen != input => {
                self.problem = Some(format!(
                    "`{}` changed while it was read",
                    std::path::Path::new(subject).display()
                ));
            }
            Some(_) => {}
            None => {
                self.inputs.insert(key, input);
            }
        }
    }

    /// Why these inputs cannot be journaled, if they cannot.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// How many inputs were recorded.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Write the journal to `file` with `payload` (what the caller concluded from these
    /// inputs), unless the inputs cannot be journaled; then any journal there is removed,
    /// so it is never taken for this evaluation's.
    pub fn save(&self, file: &Path, payload: &[u8]) -> Result<(), String> {
        if let Some(problem) = &self.problem {
            let _ = std::fs::remove_file(file);
            return Err(problem.clone());
        }
        let bytes = format::encode(self.inputs.values(), payload);
        crate::cache_io::write_atomic(file, &bytes).map_err(|e| e.to_string())
    }
}

/// What `path` holds now (the hash of its bytes), or that it is absent: for a file the
/// caller read or wrote itself.
pub fn content_of(path: &Path) -> Input {
    match std::fs::read(path) {
        Ok(bytes) => Input::Content(path.to_path_buf(), *blake3::hash(&bytes).as_bytes()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Input::Absent(path.to_path_buf()),
        Err(e) => Input::Untracked(format!("cannot read `{}`: {e}", path.display())),
    }
}

/// The journal file under the cache directory `cache_dir` for an evaluation selected by
/// `parts` (each distinct list of parts gets its own journal).
pub fn file_for(cache_dir: &Path, parts: &[String]) -> PathBuf {
    let mut h = blake3::Hasher::new();
    for part in parts {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let name = format!("{}.bin", &h.finalize().to_hex()[..32]);
    cache_dir.join("journal-v1").join(name)
}

/// The payload of the journal in `file` if every input it records still holds.
pub fn recall(file: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(file).ok()?;
    let (inputs, payload) = format::decode(&bytes)?;
    inputs.iter().all(Input::holds).then(|| payload.to_vec())
}

fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

fn bytes_of(s: &OsStr) -> &[u8] {
    s.as_bytes()
}
