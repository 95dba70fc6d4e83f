//! Binary-cache formats (v1): the `cmod-cache-info` file at a cache's root, the per-path
//! metadata (`info/<hash>.json`, the narinfo of cmod), and the sharing settings read from
//! user configuration and from `[cache]` in `cmod.toml`.
//!
//! Everything here arrives from other machines, so parsing is strict: a document must
//! carry a `version`; a newer version than this crate knows is refused before any other
//! field is looked at, and unknown fields in a known version are refused too.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::content::ContentHash;
use crate::path_info::PathInfo;
use crate::store_path::{PathKind, StorePath};

/// The version of every document in this module.
pub const CACHE_FORMAT_VERSION: u32 = 1;
/// The name of the file at the root of every binary cache.
pub const CACHE_INFO_FILE: &str = "cmod-cache-info";

/// `cmod-cache-info`: what a cache is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheInfo {
    /// Format version of the document ([`CACHE_FORMAT_VERSION`]).
    pub version: u32,
    /// The store format of the paths it holds (`v1`).
    pub store_format: String,
    /// Lower is preferred when several substituters have a path.
    #[serde(default)]
    pub priority: u32,
}

impl Default for CacheInfo {
    fn default() -> Self {
        CacheInfo {
            version: CACHE_FORMAT_VERSION,
            store_format: "v1".into(),
            priority: 50,
        }
    }
}

/// The transfer archive of one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveRef {
    /// Relative location in the cache: `nar/<file hash>.tar.zst`.
    pub file: String,
    /// BLAKE3 of the compressed bytes (`blake3:` + base32).
    pub file_hash: ContentHash,
    /// Length of the compressed bytes.
    pub file_size: u64,
    /// Always `tar+zstd` in v1.
    pub compression: String,
}

/// Per-path metadata in a cache or on the wire (the narinfo of cmod).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NarInfo {
    /// Format version of the document ([`CACHE_FORMAT_VERSION`]).
    pub version: u32,
    /// The store path described.
    pub path: StorePath,
    /// What the path holds (a source, an output or a derivation).
    pub kind: PathKind,
    /// Content hash of the unpacked tree, checked after unpacking.
    pub content_hash: ContentHash,
    /// Bytes of regular-file contents once unpacked.
    pub size: u64,
    /// Other store paths whose hashes occur in the contents (runtime references).
    pub references: BTreeSet<StorePath>,
    /// The derivation that produced it, for outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deriver: Option<StorePath>,
    /// The sandbox mode that built it (`full`, `landlock`, `off`), for outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// The Landlock ABI level enforced while building it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock_abi: Option<u8>,
    /// `keyname:base64` signatures over the path fingerprint.
    #[serde(default)]
    pub signatures: BTreeSet<String>,
    /// Where the compressed archive of the contents is, and its hash and size.
    pub archive: ArchiveRef,
}

/// The one place where [`NarInfo`]'s fields meet [`PathInfo`]'s. (The two documents
/// cannot share a flattened struct: `serde(flatten)` does not work with
/// `deny_unknown_fields`, which documents from other machines need.)
impl NarInfo {
    /// The wire form of a store path's metadata, with where its `archive` is.
    pub fn of(info: PathInfo, archive: ArchiveRef) -> NarInfo {
        NarInfo {
            version: CACHE_FORMAT_VERSION,
            path: info.path,
            kind: info.kind,
            content_hash: info.content_hash,
            size: info.size,
            references: info.references,
            deriver: info.deriver,
            sandbox: info.sandbox,
            landlock_abi: info.landlock_abi,
            signatures: info.signatures,
            archive,
        }
    }

    /// The store's metadata of the path this describes, registered at `registered`
    /// (seconds since the Unix epoch).
    pub fn path_info(&self, registered: u64) -> PathInfo {
        PathInfo {
            version: crate::path_info::PATH_INFO_VERSION,
            path: self.path.clone(),
            kind: self.kind,
            content_hash: self.content_hash,
            size: self.size,
            references: self.references.clone(),
            deriver: self.deriver.clone(),
            registered,
            sandbox: self.sandbox.clone(),
            landlock_abi: self.landlock_abi,
            signatures: self.signatures.clone(),
        }
    }
}

/// Why a document from elsewhere was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The bytes do not parse as JSON (the parser's message).
    #[error("it is not valid JSON: {0}")]
    Json(String),
    /// The document has no integer `version` field.
    #[error("it has no numeric `version` field")]
    NoVersion,
    /// The document's version is newer than this build of cmod knows.
    #[error(
        "it has format version {found}, newer than this cmod understands ({known}); upgrade cmod"
    )]
    Newer {
        /// The document's version.
        found: u64,
        /// The newest version this cmod reads.
        known: u32,
    },
    /// The document claims a known version but does not match its schema.
    #[error("it does not match format version {version}: {reason}")]
    Invalid {
        /// The version the document claims.
        version: u32,
        /// What does not match, from the parser.
        reason: String,
    },
}

/// Parse a versioned document strictly (see the module docs).
pub fn parse_versioned<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FormatError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| FormatError::Json(e.to_string()))?;
    let version = value
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .ok_or(FormatError::NoVersion)?;
    if version > CACHE_FORMAT_VERSION as u64 {
        return Err(FormatError::Newer {
            found: version,
            known: CACHE_FORMAT_VERSION,
        });
    }
    if version != CACHE_FORMAT_VERSION as u64 {
        return Err(FormatError::Invalid {
            version: CACHE_FORMAT_VERSION,
            reason: format!("version {version} is not supported"),
        });
    }
    serde_json::from_value(value).map_err(|e| FormatError::Invalid {
        version: CACHE_FORMAT_VERSION,
        reason: e.to_string(),
    })
}

/// Sharing settings: `[cache]` in `cmod.toml`, or the user configuration file
/// (`$XDG_CONFIG_HOME/cmod/config.toml`, top level or under `[cache]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CacheSettings {
    /// Binary caches or remote stores to substitute from (`file://`, `http(s)://`, `ssh://`).
    #[serde(default)]
    pub substituters: Vec<String>,
    /// `name:base64` ed25519 public keys whose signatures are trusted.
    #[serde(default)]
    pub trusted_public_keys: Vec<String>,
    /// Require a trusted signature on everything received (default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_sigs: Option<bool>,
    /// Secret keys to sign every path this machine builds with.
    #[serde(default)]
    pub secret_key_files: Vec<String>,
    /// A REAPI server whose action cache is asked before each step is built and told about
    /// each step built (`grpc://host:port` or `grpcs://host[:port]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_cache: Option<String>,
    /// The REAPI instance name on that server (empty by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_instance_name: Option<String>,
    /// A REAPI server that executes every build step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_executor: Option<String>,
    /// Headers sent with every call to those servers, as `name=value` (e.g.
    /// `authorization=Bearer TOKEN`); `$CMOD_REMOTE_HEADERS` adds to them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_headers: Vec<String>,
}

impl CacheSettings {
    /// Add `other`'s entries after this one's (keeping the first of duplicates);
    /// `require_sigs` is taken from `other` only where this one leaves it unset.
    pub fn merge(&mut self, other: &CacheSettings) {
        for s in &other.substituters {
            if !self.substituters.contains(s) {
                self.substituters.push(s.clone());
            }
        }
        for k in &other.trusted_public_keys {
            if !self.trusted_public_keys.contains(k) {
                self.trusted_public_keys.push(k.clone());
            }
        }
        for k in &other.secret_key_files {
            if !self.secret_key_files.contains(k) {
                self.secret_key_files.push(k.clone());
            }
        }
        if self.require_sigs.is_none() {
            self.require_sigs = other.require_sigs;
        }
        if self.remote_cache.is_none() && self.remote_executor.is_none() {
            self.remote_instance_name
                .clone_from(&other.remote_instance_name);
            self.remote_headers.clone_from(&other.remote_headers);
        }
        if self.remote_cache.is_none() {
            self.remote_cache.clone_from(&other.remote_cache);
        }
        if self.remote_executor.is_none() {
            self.remote_executor.clone_from(&other.remote_executor);
        }
    }
}

/// The user configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UserConfig {
    /// `[cache]`: substituters, trusted keys, signing keys and whether signatures are required.
    #[serde(default)]
    pub cache: CacheSettings,
}

impl UserConfig {
    /// Parse the user configuration file's text.
    pub fn parse(text: &str) -> Result<UserConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

/// The `[cache]` table of a `cmod.toml`, if it has one (the rest is not looked at).
/// Errors start with `line:column: ` where the offending value is.
pub fn manifest_cache_section(text: &str) -> Result<Option<CacheSettings>, String> {
    #[derive(Deserialize)]
    struct OnlyCache {
        #[serde(default)]
        cache: Option<crate::manifest::ManifestCache>,
    }
    let at = |span: std::ops::Range<usize>| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("{line}:{column}: ")
    };
    let doc: OnlyCache = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(String::new(), at);
        let message = e.message().trim().to_string();
        if message.contains("secret-key-files") {
            format!(
                "{at}[cache] `secret-key-files` is not allowed in cmod.toml (a manifest is \
                 shared); put it under [cache] in the user configuration \
                 ($XDG_CONFIG_HOME/cmod/config.toml)"
            )
        } else {
            format!("{at}{message}")
        }
    })?;
    let Some(table) = doc.cache else {
        return Ok(None);
    };
    if let Some(off) = table.require_sigs.as_ref().filter(|r| !*r.get_ref()) {
        return Err(format!(
            "{}[cache] `require-sigs = false` is not allowed in cmod.toml: a manifest is \
             shared, so it must not turn signature checks off for everyone who builds it; \
             remove the line, and where unsigned substitutes are really wanted set \
             `require-sigs = false` under [cache] in the user configuration \
             ($XDG_CONFIG_HOME/cmod/config.toml) or pass --no-require-sigs",
            at(off.span())
        ));
    }
    Ok(Some(CacheSettings {
        substituters: table.substituters,
        trusted_public_keys: table.trusted_public_keys,
        require_sigs: table.require_sigs.map(|r| *r.get_ref()),
        ..CacheSettings::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NarInfo {
        let h = ContentHash::of_file(false, b"x");
        NarInfo {
            version: 1,
            path: StorePath::compute(PathKind::Output, &h, "x.o", []).unwrap(),
            kind: PathKind::Output,
            content_hash: h,
            size: 1,
            references: BTreeSet::new(),
            deriver: None,
            sandbox: Some("full".into()),
            landlock_abi: None,
            signatures: BTreeSet::from(["k:c2ln".to_string()]),
            archive: ArchiveRef {
                file: "nar/x.tar.zst".into(),
                file_hash: h,
                file_size: 10,
                compression: "tar+zstd".into(),
            },
        }
    }

    #[test]
    fn strict_versioned_parsing() {
        let text = serde_json::to_vec(&sample()).unwrap();
        assert_eq!(parse_versioned::<NarInfo>(&text).unwrap(), sample());
        let mut v = serde_json::to_value(sample()).unwrap();
        v["mirror"] = serde_json::json!("evil");
        let e = parse_versioned::<NarInfo>(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.to_string().contains("unknown field `mirror`"), "{e}");
        v["version"] = serde_json::json!(2);
        let e = parse_versioned::<NarInfo>(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(e, FormatError::Newer { found: 2, known: 1 });
        assert!(e.to_string().contains("newer than this cmod understands"));
        let e = parse_versioned::<NarInfo>(b"{\"path\": 1}").unwrap_err();
        assert_eq!(e, FormatError::NoVersion);
        assert!(matches!(
            parse_versioned::<NarInfo>(b"{ trunc"),
            Err(FormatError::Json(_))
        ));
    }

    #[test]
    fn settings_merge_keeps_order_and_first_choice() {
        let mut a = CacheSettings {
            substituters: vec!["file:///a".into()],
            require_sigs: Some(false),
            ..Default::default()
        };
        let b = CacheSettings {
            substituters: vec!["file:///b".into(), "file:///a".into()],
            trusted_public_keys: vec!["k:x".into()],
            require_sigs: Some(true),
            ..Default::default()
        };
        a.merge(&b);
        assert_eq!(a.substituters, vec!["file:///a", "file:///b"]);
        assert_eq!(a.trusted_public_keys, vec!["k:x"]);
        assert_eq!(a.require_sigs, Some(false));
        let cfg: UserConfig =
            toml::from_str("[cache]\nsubstituters = [\"file:///c\"]\nrequire-sigs = true\n")
                .unwrap();
        assert_eq!(cfg.cache.require_sigs, Some(true));
        assert!(UserConfig::parse("[cache]\nsubstituter = []\n").is_err());
        let m = manifest_cache_section(
            "[package]\nname = \"x\"\n[cache]\ntrusted-public-keys = [\"k:AAAA\"]\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(m.trusted_public_keys, vec!["k:AAAA"]);
        assert_eq!(manifest_cache_section("[package]\n").unwrap(), None);
    }

    #[test]
    fn manifest_cache_section_reads_only_cache_and_locates_errors() {
        let ok = "[package]\nname = \"a\"\n\n[cache]\nsubstituters = [\"file:///c\"]\nrequire-sigs = true\n";
        let s = manifest_cache_section(ok).unwrap().unwrap();
        assert_eq!(s.substituters, vec!["file:///c".to_string()]);
        assert_eq!(s.require_sigs, Some(true));
        // A shared manifest may not switch signature checks off.
        let off = manifest_cache_section(&ok.replace("= true", "= false")).unwrap_err();
        assert!(
            off.starts_with("6:16: ")
                && off.contains("not allowed in cmod.toml")
                && off.contains("--no-require-sigs"),
            "{off}"
        );
        assert!(s.secret_key_files.is_empty());
        assert_eq!(
            manifest_cache_section("[package]\nname = \"a\"\n").unwrap(),
            None
        );

        let typo = manifest_cache_section("[package]\n\n[cache]\nsubstituter = []\n").unwrap_err();
        assert!(
            typo.starts_with("4:1: ") && typo.contains("`substituters`"),
            "{typo}"
        );
        let secret = manifest_cache_section("[cache]\nsecret-key-files = [\"k\"]\n").unwrap_err();
        assert!(
            secret.starts_with("2:1: ") && secret.contains("user configuration"),
            "{secret}"
        );
        let wrong_type = manifest_cache_section("[cache]\nrequire-sigs = \"no\"\n").unwrap_err();
        assert!(wrong_type.starts_with("2:"), "{wrong_type}");
    }
}
