//! The cmod record stored beside an action result: the step's build-trace entry and its
//! outputs' metadata, each with the builder's signatures. REAPI action results carry no
//! signature, so the record is what a reader trusts (or refuses); the result only says where
//! the bytes are.
//!
//! The record (JSON, `{"version":1,"entry":…,"paths":[…]}`, a few kilobytes) travels inside
//! the action result, in `execution_metadata.auxiliary_metadata`, as an `Any` whose type URL
//! is [`RECORD_TYPE_URL`]: one `GetActionResult` brings the result and what vouches for it
//! (a separate CAS blob cost a round trip per step, a third of a cache hit's time).

use cmod_reapi::proto::build::bazel::remote::execution::v2 as re;
use cmod_schema::PathInfo;
use cmod_store::trace::TraceEntry;
use serde::{Deserialize, Serialize};

/// The format version of records.
pub const RECORD_VERSION: u32 = 1;

/// The type URL of the `Any` that holds a record.
pub const RECORD_TYPE_URL: &str = "type.cmod.dev/cmod.TraceRecord.v1";

/// The most bytes a record may have (a trace entry and a few outputs' metadata are a few
/// kilobytes; this bounds what a hostile cache can make a reader parse).
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

/// The `Any` that carries `record` in an action result.
pub fn packed(record: &TraceRecord) -> prost_types::Any {
    prost_types::Any {
        type_url: RECORD_TYPE_URL.to_string(),
        value: record.to_bytes(),
    }
}

/// The record `result` carries, if it carries one.
pub fn unpacked(result: &re::ActionResult) -> Result<Option<TraceRecord>, String> {
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
    if any.value.len() as u64 > MAX_RECORD_BYTES {
        return Err(format!(
            "its cmod record has {} bytes, more than the {MAX_RECORD_BYTES} a record may have",
            any.value.len()
        ));
    }
    TraceRecord::parse(&any.value).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TraceRecord {
        use cmod_schema::{ContentHash, PathKind, StorePath};
        let drv = StorePath::compute(PathKind::Drv, &ContentHash([7; 32]), "x.drv", []).unwrap();
        TraceRecord {
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
        }
    }

    #[test]
    fn a_record_travels_in_the_result_and_oversized_or_foreign_ones_are_not_taken() {
        let mut result = re::ActionResult {
            execution_metadata: Some(re::ExecutedActionMetadata {
                auxiliary_metadata: vec![
                    prost_types::Any {
                        type_url: "type.example/other".into(),
                        value: vec![1, 2, 3],
                    },
                    packed(&sample()),
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(unpacked(&result), Ok(Some(sample())));
        let big = prost_types::Any {
            type_url: RECORD_TYPE_URL.into(),
            value: vec![b' '; MAX_RECORD_BYTES as usize + 1],
        };
        result
            .execution_metadata
            .as_mut()
            .unwrap()
            .auxiliary_metadata = vec![big];
        let err = unpacked(&result).unwrap_err();
        assert!(err.contains("more than"), "{err}");
        assert_eq!(unpacked(&re::ActionResult::default()), Ok(None));
    }

    #[test]
    fn records_of_another_version_or_shape_are_refused() {
        let record = sample();
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
