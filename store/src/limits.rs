//! Bounds on what is read from other machines, so a hostile or broken cache, remote store
//! or network cannot make a realisation hold unbounded memory or wait forever.
//!
//! Every response is read through a counting reader with a bound known before the first
//! byte: a fixed cap for each kind of metadata (below), and for an archive the size its
//! metadata records. The count is kept while reading; a `Content-Length` or a file's
//! size is used only to refuse early, never trusted to stop the read.
//!
//! | what | bound |
//! | --- | --- |
//! | `cmod-cache-info` | 64 KiB |
//! | `info/<hash>.json` (a path's metadata) | 1 MiB |
//! | `trace/<key>.json` (a build-trace entry) | 1 MiB |
//! | `scan/<key>.json` (a scan entry) | 1 MiB |
//! | `cmod-cache-index` | 32 MiB (over 500,000 entries); a larger index is ignored |
//! | `nar/<hash>.tar.zst` (an archive) | the `archive.file_size` of its metadata |
//! | an ssh message frame | 16 MiB (requests are split into batches of 1,000 keys) |
//! | an ssh archive data frame | 1 MiB |
//!
//! Unpacked contents are bounded separately by the signed `size` (see `archive`), and
//! the zstd window by [`ZSTD_WINDOW_LOG_MAX`].

use std::io::Read;
use std::time::{Duration, Instant};

/// `cmod-cache-info`.
pub const CACHE_INFO_MAX: u64 = 64 << 10;
/// A path's metadata (`info/<hash>.json`).
pub const PATH_INFO_MAX: u64 = 1 << 20;
/// A build-trace entry (`trace/<key>.json`).
pub const TRACE_MAX: u64 = 1 << 20;
/// A scan entry (`scan/<key>.json`).
pub const SCAN_MAX: u64 = 1 << 20;
/// `cmod-cache-index` (a hint: a larger one is ignored, as if the cache had none).
pub const INDEX_MAX: u64 = 32 << 20;
/// One ssh message frame (JSON).
pub const MESSAGE_MAX: usize = 16 << 20;
/// One ssh archive data frame.
pub const DATA_FRAME_MAX: usize = 1 << 20;
/// Keys or paths per ssh request, so that answers stay well under [`MESSAGE_MAX`].
pub const SSH_BATCH: usize = 1000;
/// Largest zstd window an archive may ask the decoder for (2^23 = 8 MiB: every level up
/// to 19; cmod writes level 3, whose window is at most 2 MiB).
pub const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Default of `$CMOD_HTTP_READ_TIMEOUT`: seconds a response may send nothing.
pub const HTTP_READ_TIMEOUT_SECS: u64 = 30;
/// Default of `$CMOD_HTTP_TIMEOUT`: seconds a whole metadata response may take.
pub const HTTP_TIMEOUT_SECS: u64 = 300;
/// Default of `$CMOD_SSH_READ_TIMEOUT`: seconds an `ssh://` peer may send nothing while
/// cmod waits for its answer (long: the peer may be importing a large batch).
pub const SSH_READ_TIMEOUT_SECS: u64 = 120;
/// An archive's deadline grows by one second per this many announced bytes on top of
/// `$CMOD_HTTP_TIMEOUT` (64 KiB/s: far below any working link).
pub const ARCHIVE_MIN_RATE: u64 = 64 << 10;

/// Seconds from the environment variable `var`, else `default`.
pub fn secs_from_env(var: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|&s| s > 0)
            .unwrap_or(default),
    )
}

/// `n` bytes in words: `1 MiB (1048576 bytes)`.
pub fn show_bytes(n: u64) -> String {
    let unit = if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        return format!("{n} bytes");
    };
    format!("{unit} ({n} bytes)")
}

/// Why a bounded read stopped.
#[derive(Debug, thiserror::Error)]
pub enum BoundedError {
    /// More than this many bytes arrived.
    #[error("more than {} arrived", show_bytes(*.0))]
    TooLarge(u64),
    /// The reader failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Read all of `r` into memory, refusing more than `limit` bytes. `hint` (an announced
/// length) only sizes the buffer, within the limit.
pub fn read_bounded(
    r: &mut dyn Read,
    limit: u64,
    hint: Option<u64>,
) -> Result<Vec<u8>, BoundedError> {
    let cap = limit.saturating_add(1);
    let mut r = r.take(cap);
    let buf = match hint {
        // The announced length (at most the bound, checked by the caller) is the size.
        Some(h) => {
            let mut buf = Vec::with_capacity(h.min(limit).saturating_add(1) as usize);
            r.read_to_end(&mut buf)?;
            buf
        }
        None => read_in_chunks(&mut r, limit)?,
    };
    if buf.len() as u64 > limit {
        return Err(BoundedError::TooLarge(limit));
    }
    Ok(buf)
}

/// Everything `r` gives, read into chunks of one size (which the allocator reuses) and
/// joined once at the end, unless it is more than `limit` bytes: a body of unknown
/// length that turns out too long costs about its bound in memory, not the sum of every
/// buffer a doubling `Vec` went through.
fn read_in_chunks(r: &mut dyn Read, limit: u64) -> Result<Vec<u8>, BoundedError> {
    const CHUNK: usize = 1 << 20;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut chunk = Vec::with_capacity(CHUNK);
    loop {
        let n = r
            .take((CHUNK - chunk.len()) as u64)
            .read_to_end(&mut chunk)?;
        if chunk.len() == CHUNK {
            chunks.push(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)));
        } else if n == 0 {
            break;
        }
    }
    if chunks.is_empty() {
        return Ok(chunk);
    }
    let total = chunks.len() * CHUNK + chunk.len();
    if total as u64 > limit {
        return Err(BoundedError::TooLarge(limit));
    }
    let mut buf = Vec::with_capacity(total);
    for c in chunks.iter().chain([&chunk]) {
        buf.extend_from_slice(c);
    }
    Ok(buf)
}

/// A reader that fails once more than `limit` bytes have passed through it (remembering
/// that it did, so the caller can name the bound rather than a decoder's complaint).
pub struct Bounded<R> {
    inner: R,
    limit: u64,
    count: u64,
    exceeded: bool,
}

impl<R: Read> Bounded<R> {
    /// Wrap `inner`, allowing at most `limit` bytes.
    pub fn new(inner: R, limit: u64) -> Self {
        Bounded {
            inner,
            limit,
            count: 0,
            exceeded: false,
        }
    }

    /// Whether the stream went past the bound.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Allow one byte past the bound, so a stream of exactly `limit` bytes ends
        // cleanly and a longer one is caught.
        let room = self.limit.saturating_add(1).saturating_sub(self.count);
        let want = (buf.len() as u64).min(room.max(1)) as usize;
        let n = self.inner.read(&mut buf[..want])?;
        self.count += n as u64;
        if self.count > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other(format!(
                "more than the {} announced arrived",
                show_bytes(self.limit)
            )));
        }
        Ok(n)
    }
}

/// A point in time after which reading stops.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    /// The time allowed in total, for messages.
    pub budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + budget,
            budget,
        }
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        Instant::now() > self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_reads_stop_at_the_bound() {
        let data = [7u8; 100];
        assert_eq!(
            read_bounded(&mut &data[..], 100, Some(100)).unwrap().len(),
            100
        );
        let e = read_bounded(&mut &data[..], 99, Some(1 << 40)).unwrap_err();
        assert!(matches!(e, BoundedError::TooLarge(99)), "{e}");
        // An endless source is cut off after the bound.
        let e = read_bounded(&mut std::io::repeat(1), 1 << 20, None).unwrap_err();
        assert_eq!(e.to_string(), "more than 1 MiB (1048576 bytes) arrived");
        // Without a hint: read in chunks, joined into a buffer of the exact size.
        let long: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
        let got = read_bounded(&mut &long[..], 3_000_000, None).unwrap();
        assert_eq!(got, long);
        assert_eq!(got.capacity(), long.len());
        let e = read_bounded(&mut &long[..], 2_999_999, None).unwrap_err();
        assert!(matches!(e, BoundedError::TooLarge(2_999_999)), "{e}");
        assert!(read_bounded(&mut &[][..], 10, None).unwrap().is_empty());

        let mut b = Bounded::new(&data[..], 100);
        assert_eq!(std::io::copy(&mut b, &mut std::io::sink()).unwrap(), 100);
        assert!(!b.exceeded());
        let mut b = Bounded::new(std::io::repeat(0), 1000);
        let e = std::io::copy(&mut b, &mut std::io::sink()).unwrap_err();
        assert!(b.exceeded(), "{e}");
        assert!(e.to_string().contains("1000 bytes"), "{e}");
    }

    #[test]
    fn sizes_and_settings_read_well() {
        assert_eq!(show_bytes(64 << 10), "64 KiB (65536 bytes)");
        assert_eq!(show_bytes(1000), "1000 bytes");
        assert_eq!(
            secs_from_env("CMOD_TEST_UNSET_VARIABLE", 7),
            Duration::from_secs(7)
        );
        let d = Deadline::after(Duration::from_secs(60));
        assert!(!d.passed());
        let now = Deadline::after(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2));
        assert!(now.passed());
    }
}
