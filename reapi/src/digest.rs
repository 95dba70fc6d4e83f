//! Content digests in REAPI's SHA-256 digest function: the lowercase hex hash of a blob and its
//! size in bytes.

use std::fmt;
use std::io::Read;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::proto::build::bazel::remote::execution::v2 as re;

/// A blob's SHA-256 hash and size: REAPI's `Digest` in the SHA256 digest function.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hash: [u8; 32],
    size: u64,
}

impl Digest {
    /// The digest of the empty blob, which REAPI clients never need to upload or download.
    pub const EMPTY: Digest = Digest {
        hash: [
            0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f,
            0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b,
            0x78, 0x52, 0xb8, 0x55,
        ],
        size: 0,
    };

    /// The digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        let mut h = DigestBuilder::new();
        h.update(bytes);
        h.finish()
    }

    /// The digest of everything `reader` yields, read in chunks.
    pub fn of_reader(mut reader: impl Read) -> std::io::Result<Digest> {
        let mut h = DigestBuilder::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(h.finish()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            h.update(&buf[..n]);
        }
    }

    /// The digest of the file at `path`, streamed (never held in memory whole).
    pub fn of_file(path: &Path) -> Result<Digest> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Digest::of_reader(file).map_err(|e| Error::io(path, e))
    }

    /// A digest from its hex hash and size, as REAPI writes them; the hash must be 64
    /// lowercase hex digits.
    pub fn from_hex(hash: &str, size: u64) -> Result<Digest> {
        let invalid = |reason: &str| Error::InvalidDigest {
            digest: format!("{hash}/{size}"),
            reason: reason.to_string(),
        };
        let bytes = hash.as_bytes();
        if bytes.len() != 64 {
            return Err(invalid("a SHA-256 hash has 64 hex digits"));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or_else(|| invalid("not lowercase hex"))?;
            let lo = hex_value(pair[1]).ok_or_else(|| invalid("not lowercase hex"))?;
            out[i] = (hi << 4) | lo;
        }
        Ok(Digest { hash: out, size })
    }

    /// The digest a REAPI message carries.
    pub fn from_proto(d: &re::Digest) -> Result<Digest> {
        let size = u64::try_from(d.size_bytes).map_err(|_| Error::InvalidDigest {
            digest: format!("{}/{}", d.hash, d.size_bytes),
            reason: "negative size".to_string(),
        })?;
        Digest::from_hex(&d.hash, size)
    }

    /// This digest as a REAPI message.
    pub fn to_proto(&self) -> re::Digest {
        re::Digest {
            hash: self.hash_hex(),
            // Sizes above i64::MAX cannot exist on disk; saturate rather than wrap.
            size_bytes: i64::try_from(self.size).unwrap_or(i64::MAX),
        }
    }

    /// The hash as 64 lowercase hex digits.
    pub fn hash_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.hash {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s
    }

    /// The raw 32 hash bytes.
    pub fn hash_bytes(&self) -> &[u8; 32] {
        &self.hash
    }

    /// The blob's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for Digest {
    /// `hash/size`, the form REAPI resource names use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.hash_hex(), self.size)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// Computes a [`Digest`] incrementally, for content that arrives in pieces.
#[derive(Clone, Default)]
pub struct DigestBuilder {
    sha: Sha256,
    size: u64,
}

impl DigestBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes` to the content.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// The size so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        Digest {
            hash: self.sha.finalize().into(),
            size: self.size,
        }
    }
}

/// Checks that `bytes` have digest `expected`; `what` names them in the error.
pub(crate) fn verify(what: &str, expected: &Digest, bytes: &[u8]) -> Result<()> {
    let actual = Digest::of_bytes(bytes);
    if actual == *expected {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            what: what.to_string(),
            expected: *expected,
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_known_vectors() {
        // FIPS 180-2 test vectors.
        assert_eq!(Digest::of_bytes(b""), Digest::EMPTY);
        assert_eq!(
            Digest::of_bytes(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad/3"
        );
        let million_a = vec![b'a'; 1_000_000];
        assert_eq!(
            Digest::of_reader(&million_a[..]).unwrap().hash_hex(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn digest_of_file_streams_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        // Larger than the read buffer, not a multiple of it.
        let content: Vec<u8> = (0..200_003u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let d = Digest::of_file(&path).unwrap();
        assert_eq!(d, Digest::of_bytes(&content));
        assert_eq!(d.size(), 200_003);
        let missing = Digest::of_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
    }

    #[test]
    fn digest_hex_round_trip_and_validation() {
        let d = Digest::of_bytes(b"hello");
        let back = Digest::from_proto(&d.to_proto()).unwrap();
        assert_eq!(back, d);
        assert!(Digest::from_hex(&d.hash_hex().to_uppercase(), 5).is_err());
        assert!(Digest::from_hex("abc", 5).is_err());
        let negative = re::Digest {
            hash: d.hash_hex(),
            size_bytes: -1,
        };
        assert!(Digest::from_proto(&negative).is_err());
    }

    #[test]
    fn verify_reports_both_digests() {
        let expected = Digest::of_bytes(b"right");
        let err = verify("blob", &expected, b"wrong").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&expected.to_string()), "{msg}");
        assert!(
            msg.contains(&Digest::of_bytes(b"wrong").to_string()),
            "{msg}"
        );
        assert!(verify("blob", &expected, b"right").is_ok());
    }
}
