//! Canonical JSON: the one byte encoding of a value that cmod hashes and signs.
//!
//! Objects have their keys sorted by UTF-8 bytes, there is no whitespace, strings use
//! serde_json's escaping, and only integers are allowed as numbers. The sorting is done
//! here, explicitly, so it does not depend on serde_json's `preserve_order` feature being
//! off somewhere in the dependency graph.

use serde::Serialize;
use serde_json::Value;

/// Why a value has no canonical encoding.
#[derive(Debug, thiserror::Error)]
pub enum CanonicalError {
    /// serde_json refused to represent the value.
    #[error("value cannot be represented as JSON: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The value contains a floating-point number (shown as text).
    #[error("floating-point numbers have no canonical encoding (found {0})")]
    Float(String),
}

/// Encode `value` canonically.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let v = serde_json::to_value(value)?;
    let mut out = Vec::with_capacity(256);
    write(&v, &mut out)?;
    Ok(out)
}

/// Encode `value` canonically as a `String`.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, CanonicalError> {
    let bytes = to_vec(value)?;
    // serde_json only ever writes UTF-8.
    String::from_utf8(bytes).map_err(|e| CanonicalError::Float(e.to_string()))
}

fn write(v: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            if n.is_f64() {
                return Err(CanonicalError::Float(n.to_string()));
            }
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Value::String(s) => serde_json::to_writer(&mut *out, s)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k)?;
                out.push(b':');
                write(&map[k], out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_sorted_no_whitespace() {
        let v = json!({"b": 1, "a": {"z": [1, "x\n"], "c": null}, "A": true});
        assert_eq!(
            to_string(&v).unwrap(),
            r#"{"A":true,"a":{"c":null,"z":[1,"x\n"]},"b":1}"#
        );
    }

    #[test]
    fn floats_are_rejected() {
        assert!(matches!(
            to_vec(&json!({"x": 1.5})),
            Err(CanonicalError::Float(_))
        ));
    }

    include!("../golden/golden.rs");

    /// What JSON allows raw is written raw, invisible characters included: DEL, U+2028 and
    /// U+2029 (only the hash of their encoding is a vector, to keep the file readable).
    #[test]
    fn golden_unescaped_characters() {
        let v = json!({"del": "\u{7f}", "ls": "\u{2028}", "ps": "\u{2029}"});
        let bytes = to_vec(&v).unwrap();
        assert_eq!(
            bytes,
            "{\"del\":\"\u{7f}\",\"ls\":\"\u{2028}\",\"ps\":\"\u{2029}\"}".as_bytes()
        );
        let hash = crate::ContentHash(*blake3::hash(&bytes).as_bytes());
        assert_golden(&[("canonical.unescaped", hash.to_text())]);
    }

    #[test]
    fn unicode_is_not_escaped_twice() {
        assert_eq!(to_string(&json!("é")).unwrap(), "\"é\"");
    }
}
