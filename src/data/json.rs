//! The atproto JSON encoding of data-model values.
//!
//! `{"$link": "<cid>"}` is a CID link, `{"$bytes": "<base64>"}` is a byte string, integers are
//! i64 (a float with no fractional part is taken as the integer, since JSON cannot tell `1.0`
//! from `1`), and every other float is rejected. Output is the inverse mapping.

use super::{DataError, Ipld, Path, validate};
use cid::Cid;
use data_encoding::BASE64_NOPAD;
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;

/// Converts atproto JSON into a validated data-model value.
pub fn from_json(value: &Value) -> Result<Ipld, DataError> {
    let ipld = convert(value, &Path::Root, 0)?;
    validate(&ipld)?;
    Ok(ipld)
}

/// Converts atproto JSON that must be an object (records, procedure bodies).
pub fn object_from_json(value: &Value) -> Result<Ipld, DataError> {
    if !value.is_object() {
        return Err(DataError::Json("expected a JSON object".into()));
    }
    from_json(value)
}

/// Parses JSON text into a validated data-model value.
pub fn from_json_str(s: &str) -> Result<Ipld, DataError> {
    let v: Value = serde_json::from_str(s).map_err(|e| DataError::Json(e.to_string()))?;
    from_json(&v)
}

fn convert(value: &Value, path: &Path<'_>, depth: usize) -> Result<Ipld, DataError> {
    if depth > super::MAX_DEPTH {
        return Err(DataError::invalid(path, "nested too deeply"));
    }
    Ok(match value {
        Value::Null => Ipld::Null,
        Value::Bool(b) => Ipld::Bool(*b),
        Value::Number(n) => Ipld::Integer(integer(n, path)?),
        Value::String(s) => Ipld::String(s.clone()),
        Value::Array(items) => Ipld::List(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| convert(v, &Path::Index(path, i), depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => object(map, path, depth)?,
    })
}

fn integer(n: &Number, path: &Path<'_>) -> Result<i128, DataError> {
    if let Some(i) = n.as_i64() {
        return Ok(i.into());
    }
    if n.as_u64().is_some() {
        return Err(DataError::invalid(
            path,
            "integer exceeds the 64-bit signed range",
        ));
    }
    match n.as_f64() {
        // 2^63 is exactly representable, so the range check is exact.
        Some(f) if f.fract() == 0.0 && f >= -(2f64.powi(63)) && f < 2f64.powi(63) => {
            Ok(f as i64 as i128)
        }
        _ => Err(DataError::invalid(
            path,
            "floats are not allowed in atproto data",
        )),
    }
}

fn object(map: &Map<String, Value>, path: &Path<'_>, depth: usize) -> Result<Ipld, DataError> {
    if let Some(link) = map.get("$link") {
        if map.len() != 1 {
            return Err(DataError::invalid(
                path,
                "a $link object must have no other keys",
            ));
        }
        let Value::String(s) = link else {
            return Err(DataError::invalid(path, "$link must be a string"));
        };
        let cid = Cid::try_from(s.as_str())
            .map_err(|e| DataError::invalid(path, format!("$link is not a CID: {e}")))?;
        return Ok(Ipld::Link(cid));
    }
    if let Some(bytes) = map.get("$bytes") {
        if map.len() != 1 {
            return Err(DataError::invalid(
                path,
                "a $bytes object must have no other keys",
            ));
        }
        let Value::String(s) = bytes else {
            return Err(DataError::invalid(path, "$bytes must be a base64 string"));
        };
        return Ok(Ipld::Bytes(decode_base64(s).ok_or_else(|| {
            DataError::invalid(path, "$bytes is not valid base64")
        })?));
    }
    let mut out = BTreeMap::new();
    for (k, v) in map {
        out.insert(k.clone(), convert(v, &Path::Key(path, k), depth + 1)?);
    }
    Ok(Ipld::Map(out))
}

/// Standard base64; `=` padding optional (the spec allows both).
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let unpadded = s
        .strip_suffix("==")
        .or_else(|| s.strip_suffix('='))
        .unwrap_or(s);
    BASE64_NOPAD.decode(unpadded.as_bytes()).ok()
}

/// Converts a data-model value into atproto JSON. Bytes are written unpadded, as the reference does.
pub fn to_json(value: &Ipld) -> Value {
    match value {
        Ipld::Null => Value::Null,
        Ipld::Bool(b) => Value::Bool(*b),
        Ipld::Integer(i) => match i64::try_from(*i) {
            Ok(i) => Value::Number(i.into()),
            // Decoded CBOR can carry up to u64/-2^64; atproto integers are i64, so say it as text
            // rather than lose precision silently.
            Err(_) => Value::String(i.to_string()),
        },
        Ipld::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Ipld::String(s) => Value::String(s.clone()),
        Ipld::Bytes(b) => {
            let mut m = Map::with_capacity(1);
            m.insert("$bytes".into(), Value::String(BASE64_NOPAD.encode(b)));
            Value::Object(m)
        }
        Ipld::List(items) => Value::Array(items.iter().map(to_json).collect()),
        Ipld::Map(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Ipld::Link(cid) => {
            let mut m = Map::with_capacity(1);
            m.insert("$link".into(), Value::String(cid.to_string()));
            Value::Object(m)
        }
    }
}
