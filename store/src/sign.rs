//! Keys and signatures: ed25519 key pairs in the Nix-style `name:base64` text form,
//! signing and verifying the fingerprints defined in `cmod_schema::signature` for path
//! metadata and build-trace entries, and the set of trusted public keys.
//!
//! A secret key is `name:base64(seed ‖ public key)` (64 bytes, as Nix writes them); a
//! public key is `name:base64(32 bytes)`; a signature is `name:base64(64 bytes)`.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cmod_schema::signature::{path_fingerprint, trace_fingerprint};
use cmod_schema::PathInfo;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::trace::TraceEntry;

/// Why a key or signature could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key or signature text cannot be parsed.
    #[error("`{text}` is not a valid {what}: {reason}")]
    Malformed {
        /// What it should be (`public key`, `signature`).
        what: &'static str,
        /// The text (shortened).
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key file cannot be read.
    #[error("cannot read key file `{}`: {source}", path.display())]
    Read {
        /// The key file.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The system's random number source failed.
    #[error("cannot generate a key: {0}")]
    Random(std::io::Error),
}

fn split<'a>(what: &'static str, text: &'a str) -> Result<(&'a str, Vec<u8>), KeyError> {
    let bad = |reason: &str| KeyError::Malformed {
        what,
        text: text.chars().take(80).collect(),
        reason: reason.into(),
    };
    let (name, b64) = text
        .trim()
        .split_once(':')
        .ok_or_else(|| bad("expected `name:base64`"))?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(bad("the key name is empty or contains spaces"));
    }
    let bytes = B64
        .decode(b64)
        .map_err(|e| bad(&format!("bad base64: {e}")))?;
    Ok((name, bytes))
}

/// A named ed25519 secret key.
#[derive(Clone)]
pub struct SecretKey {
    /// The key's name, which signatures carry (`name:base64`).
    pub name: String,
    key: SigningKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.name)
    }
}

/// A named ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The key's name, which signatures carry (`name:base64`).
    pub name: String,
    key: VerifyingKey,
}

impl SecretKey {
    /// A new key from the operating system's randomness.
    pub fn generate(name: &str) -> Result<SecretKey, KeyError> {
        let mut seed = [0u8; 32];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .map_err(KeyError::Random)?;
        SecretKey::from_seed(name, seed)
    }

    /// The key with this 32-byte seed (deterministic; used by tests and golden vectors).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<SecretKey, KeyError> {
        if name.is_empty() || name.contains(':') || name.contains(char::is_whitespace) {
            return Err(KeyError::Malformed {
                what: "key name",
                text: name.into(),
                reason: "it must be non-empty, without `:` or spaces".into(),
            });
        }
        Ok(SecretKey {
            name: name.into(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Parse `name:base64(seed ‖ public)` (or a bare 32-byte seed).
    pub fn parse(text: &str) -> Result<SecretKey, KeyError> {
        let (name, bytes) = split("secret key", text)?;
        let bad = |reason: &str| KeyError::Malformed {
            what: "secret key",
            text: format!("{name}:…"),
            reason: reason.into(),
        };
        let seed: [u8; 32] = bytes
            .get(..32)
            .and_then(|s| s.try_into().ok())
            .filter(|_| bytes.len() == 32 || bytes.len() == 64)
            .ok_or_else(|| bad("expected 64 bytes (seed and public key)"))?;
        let key = SecretKey::from_seed(name, seed)?;
        if bytes.len() == 64 && bytes[32..] != key.key.verifying_key().to_bytes() {
            return Err(bad("its public half does not match its seed"));
        }
        Ok(key)
    }

    /// Read a secret key file.
    pub fn read(path: &Path) -> Result<SecretKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        SecretKey::parse(&text)
    }

    /// The key as `name:base64` (the secret seed, then the public key).
    pub fn to_text(&self) -> String {
        let mut bytes = self.key.to_bytes().to_vec();
        bytes.extend_from_slice(&self.key.verifying_key().to_bytes());
        format!("{}:{}", self.name, B64.encode(bytes))
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Sign `fingerprint`, giving `name:base64(signature)`.
    pub fn sign(&self, fingerprint: &str) -> String {
        let sig = self.key.sign(fingerprint.as_bytes());
        format!("{}:{}", self.name, B64.encode(sig.to_bytes()))
    }

    /// Add this key's signature to path metadata (replacing an older one by this key).
    pub fn sign_path(&self, info: &mut PathInfo) {
        let sig = self.sign(&path_info_fingerprint(info));
        let prefix = format!("{}:", self.name);
        info.signatures.retain(|s| !s.starts_with(&prefix));
        info.signatures.insert(sig);
    }

    /// Add this key's signature to a scan entry (nothing if its result has no canonical
    /// encoding, which an evaluator never writes).
    pub fn sign_scan(&self, entry: &mut cmod_schema::scan_entry::ScanEntry) {
        let Some(fingerprint) = entry.fingerprint() else {
            return;
        };
        let sig = self.sign(&fingerprint);
        let prefix = format!("{}:", self.name);
        entry.signatures.retain(|s| !s.starts_with(&prefix));
        entry.signatures.insert(sig);
    }

    /// Add this key's signature to a build-trace entry.
    pub fn sign_trace(&self, entry: &mut TraceEntry) {
        let sig = self.sign(&trace_entry_fingerprint(entry));
        let prefix = format!("{}:", self.name);
        entry.signatures.retain(|s| !s.starts_with(&prefix));
        entry.signatures.insert(sig);
    }
}

impl PublicKey {
    /// Parse `name:base64` (32 bytes of ed25519 public key).
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let (name, bytes) = split("public key", text)?;
        let bad = |reason: String| KeyError::Malformed {
            what: "public key",
            text: text.trim().into(),
            reason,
        };
        let raw: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| bad(format!("expected 32 bytes, found {}", bytes.len())))?;
        let key = VerifyingKey::from_bytes(&raw).map_err(|e| bad(e.to_string()))?;
        Ok(PublicKey {
            name: name.into(),
            key,
        })
    }

    /// The key as `name:base64`.
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.name, B64.encode(self.key.to_bytes()))
    }

    /// Whether `signature` (`name:base64`) is this key's valid signature of `fingerprint`.
    pub fn verify(&self, fingerprint: &str, signature: &str) -> Result<(), String> {
        let (name, bytes) = split("signature", signature).map_err(|e| e.to_string())?;
        if name != self.name {
            return Err(format!("it is by `{name}`, not `{}`", self.name));
        }
        let raw: [u8; 64] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| format!("expected 64 bytes, found {}", bytes.len()))?;
        self.key
            .verify_strict(fingerprint.as_bytes(), &Signature::from_bytes(&raw))
            .map_err(|_| format!("the signature by `{name}` does not verify"))
    }
}

/// The fingerprint of path metadata.
pub fn path_info_fingerprint(info: &PathInfo) -> String {
    path_fingerprint(&info.path, &info.content_hash, info.size, &info.references)
}

/// The fingerprint of transfer metadata (the same text as for the store's metadata).
pub fn path_fingerprint_of(info: &cmod_schema::cache::NarInfo) -> String {
    path_fingerprint(&info.path, &info.content_hash, info.size, &info.references)
}

/// The fingerprint of a build-trace entry.
pub fn trace_entry_fingerprint(entry: &TraceEntry) -> String {
    trace_fingerprint(&entry.key, &entry.sandbox, &entry.drv, &entry.outputs)
}

/// The public keys whose signatures are trusted.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
}

/// Why signatures were not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// No signatures at all.
    #[error("it is not signed")]
    Unsigned,
    /// Signatures, but none by a trusted key (their key names).
    #[error("it has no signature by a trusted key (signed by: {0})")]
    Untrusted(String),
    /// A trusted key's signature is malformed or does not verify.
    #[error("{0}")]
    Invalid(String),
}

impl TrustedKeys {
    /// Trust exactly `keys`.
    pub fn new(keys: Vec<PublicKey>) -> TrustedKeys {
        TrustedKeys { keys }
    }

    /// Parse `name:base64` texts.
    pub fn parse<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<TrustedKeys, KeyError> {
        Ok(TrustedKeys {
            keys: texts
                .into_iter()
                .map(PublicKey::parse)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many distinct trusted keys validly signed `fingerprint`.
    pub fn count_valid<'a>(
        &self,
        fingerprint: &str,
        signatures: impl IntoIterator<Item = &'a String>,
    ) -> usize {
        let sigs: Vec<&String> = signatures.into_iter().collect();
        self.keys
            .iter()
            .filter(|k| sigs.iter().any(|s| k.verify(fingerprint, s).is_ok()))
            .count()
    }

    /// Accept `signatures` only if at least one trusted key validly signed `fingerprint`.
    /// A signature that names a trusted key but does not verify is reported as such.
    pub fn check<'a>(
        &self,
        fingerprint: &str,
        signatures: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), SigError> {
        let sigs: Vec<&String> = signatures.into_iter().collect();
        if sigs.is_empty() {
            return Err(SigError::Unsigned);
        }
        let mut invalid = Vec::new();
        for s in &sigs {
            let name = s.split_once(':').map(|(n, _)| n).unwrap_or("");
            for k in self.keys.iter().filter(|k| k.name == name) {
                match k.verify(fingerprint, s) {
                    Ok(()) => return Ok(()),
                    Err(e) => invalid.push(e),
                }
            }
        }
        if let Some(e) = invalid.into_iter().next() {
            return Err(SigError::Invalid(e));
        }
        let names: Vec<&str> = sigs
            .iter()
            .map(|s| s.split_once(':').map(|(n, _)| n).unwrap_or("?"))
            .collect();
        Err(SigError::Untrusted(names.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    include!("../../schema/golden/golden.rs");

    /// Golden vectors (`schema/golden/vectors.txt`): ed25519 is deterministic, so a fixed
    /// seed and fingerprint give a fixed signature. `schema/golden/reference.py`
    /// re-derives them.
    #[test]
    fn golden_keys_and_signature() {
        let sk = SecretKey::from_seed("cache.example-1", seed()).unwrap();
        // The path fingerprint of `signature.path.source`.
        let fp = golden("signature.path.source");
        assert_golden(&[
            ("key.public", sk.public().to_text()),
            ("key.secret", sk.to_text()),
            ("key.signature", sk.sign(fp)),
        ]);
        assert_eq!(
            SecretKey::parse(golden("key.secret")).unwrap().to_text(),
            sk.to_text()
        );
        let public = PublicKey::parse(golden("key.public")).unwrap();
        public.verify(fp, golden("key.signature")).unwrap();
    }

    #[test]
    fn trust_decisions_name_the_problem() {
        let good = SecretKey::from_seed("good", seed()).unwrap();
        let other = SecretKey::from_seed("other", [7; 32]).unwrap();
        let impostor = SecretKey::from_seed("good", [9; 32]).unwrap();
        let trusted = TrustedKeys::new(vec![good.public()]);
        let fp = "cmod-path-sig-v1;x";
        trusted.check(fp, [&good.sign(fp)]).unwrap();
        assert_eq!(trusted.check(fp, []), Err(SigError::Unsigned));
        let e = trusted.check(fp, [&other.sign(fp)]).unwrap_err();
        assert_eq!(e, SigError::Untrusted("other".into()));
        let e = trusted.check(fp, [&impostor.sign(fp)]).unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
        let e = trusted
            .check("cmod-path-sig-v1;y", [&good.sign(fp)])
            .unwrap_err();
        assert!(matches!(e, SigError::Invalid(_)), "{e}");
        assert_eq!(
            trusted.count_valid(fp, [&good.sign(fp), &other.sign(fp)]),
            1
        );
    }

    #[test]
    fn malformed_keys_are_rejected_with_reasons() {
        let e = PublicKey::parse("nocolon").unwrap_err().to_string();
        assert!(e.contains("expected `name:base64`"), "{e}");
        let e = PublicKey::parse("k:AAAA").unwrap_err().to_string();
        assert!(e.contains("expected 32 bytes, found 3"), "{e}");
        let e = SecretKey::parse("k:!!").unwrap_err().to_string();
        assert!(e.contains("bad base64"), "{e}");
        let sk = SecretKey::from_seed("k", seed()).unwrap();
        let mut bytes = B64.decode(sk.to_text().split_once(':').unwrap().1).unwrap();
        bytes[40] ^= 1;
        let e = SecretKey::parse(&format!("k:{}", B64.encode(bytes)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not match its seed"), "{e}");
    }
}
