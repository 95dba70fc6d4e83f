//! The cmod record stored beside an action result: the step's build-trace entry and its
//! outputs' metadata, each with the builder's signatures. REAPI action results carry no
//! signature, so the record is what a reader trusts (or refuses); the result only says where
//! the bytes are.
//!
//! The record is a CAS blob (canonical JSON, `{"version":1,"entry":…,"paths":[…]}`); the
//! action result points at it from `execution_metadata.auxiliary_metadata`, as an `Any`
//! whose type URL is [`RECORD_TYPE_URL`] and whose value is the record's encoded `Digest`.

use cmod_reapi::proto::build::bazel::remote::execution::v2 as re;
use cmod_reapi::Digest;
use cmod_schema::PathInfo;
use cmod_store::trace::TraceEntry;
use prost::Message;
use serde::{Deserialize, Serialize};

/// The format version of records.
pub const RECORD_VERSION: u32 = 1;

/// The type URL of the `Any` that points at a record.
pub const RECORD_TYPE_URL: &str = "type.cmod.dev/cmod.TraceRecordDigest.v1";

/// The most bytes a record may have (a trace entry and a few outputs' metadata are a few
/// kilobytes; this bounds what a hostile cache can make a reader download and parse).
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// A step's signed build-trace entry and its outputs' metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceRecord {
    /// [`RECORD_VERSION`].
    pub version: u32,
    /// The build-trace entry, signed where it was built.
    pub entry: TraceEntry,
    /// The metadata (signed) of every output the entry names.
    pub paths: Vec<PathInfo>,
}

impl TraceRecord {
    /// Its bytes in the CAS.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Plain data (strings, numbers, maps with string keys): encoding cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parse a record read from the CAS.
    pub fn parse(bytes: &[u8]) -> Result<TraceRecord, String> {
        let record: TraceRecord = serde_json::from_slice(bytes)
            .map_err(|e| format!("its cmod record is invalid: {e}"))?;
        if record.version != RECORD_VERSION {
            return Err(format!(
                "its cmod record has version {}, this cmod reads version {RECORD_VERSION}",
                record.version
            ));
        }
        Ok(record)
    }
}

/// The `Any` that points at the record with digest `digest`.
pub fn pointer(digest: &Digest) -> prost_types::Any {
    prost_types::Any {
        type_url: RECORD_TYPE_URL.to_string(),
        value: digest.to_proto().encode_to_vec(),
    }
}

/// The digest of the record `result` points at, if it points at one.
pub fn record_digest(result: &re::ActionResult) -> Result<Option<Digest>, String> {
    let Some(meta) = &result.execution_metadata else {
        return Ok(None);
    };
    let Some(any) = meta
        .auxiliary_metadata
        .iter()
        .find(|a| a.type_url == RECORD_TYPE_URL)
    else {
        return Ok(None);
    };
    let proto = re::Digest::decode(any.value.as_slice())
        .map_err(|e| format!("its record pointer does not decode: {e}"))?;
    let digest = Digest::from_proto(&proto).map_err(|e| format!("its record pointer: {e}"))?;
    if digest.size() > MAX_RECORD_BYTES {
        return Err(format!(
            "its record is announced at {} bytes, more than the {MAX_RECORD_BYTES} a record may have",
            digest.size()
        ));
    }
    Ok(Some(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pointer_round_trips_and_oversized_or_foreign_ones_are_not_taken() {
        let digest = Digest::of_bytes(b"{}");
        let mut result = re::ActionResult {
            execution_metadata: Some(re::ExecutedActionMetadata {
                auxiliary_metadata: vec![
                    prost_types::Any {
                        type_url: "type.example/other".into(),
                        value: vec![1, 2, 3],
                    },
                    pointer(&digest),
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(record_digest(&result), Ok(Some(digest)));
        let big = Digest::from_hex(&digest.hash_hex(), MAX_RECORD_BYTES + 1).unwrap();
        result
            .execution_metadata
            .as_mut()
            .unwrap()
            .auxiliary_metadata = vec![pointer(&big)];
        let err = record_digest(&result).unwrap_err();
        assert!(err.contains("more than"), "{err}");
        assert_eq!(record_digest(&re::ActionResult::default()), Ok(None));
    }

    #[test]
    fn records_of_another_version_or_shape_are_refused() {
        use cmod_schema::{ContentHash, PathKind, StorePath};
        let drv = StorePath::compute(PathKind::Drv, &ContentHash([7; 32]), "x.drv", []).unwrap();
        let record = TraceRecord {
            version: RECORD_VERSION,
            entry: TraceEntry {
                version: cmod_store::trace::TRACE_VERSION,
                key: ContentHash([1; 32]),
                drv,
                sandbox: "full".into(),
                outputs: Default::default(),
                signatures: Default::default(),
            },
            paths: Vec::new(),
        };
        assert_eq!(TraceRecord::parse(&record.to_bytes()), Ok(record.clone()));
        let newer = TraceRecord {
            version: RECORD_VERSION + 1,
            ..record.clone()
        };
        let err = TraceRecord::parse(&newer.to_bytes()).unwrap_err();
        assert!(err.contains("reads version 1"), "{err}");
        let mut extra = serde_json::to_value(&record).unwrap();
        extra["surprise"] = 1.into();
        let err = TraceRecord::parse(extra.to_string().as_bytes()).unwrap_err();
        assert!(err.contains("invalid"), "{err}");
        let err = TraceRecord::parse(b"not json").unwrap_err();
        assert!(err.contains("invalid"), "{err}");
    }
}
