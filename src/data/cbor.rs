//! DAG-CBOR (DRISL) encoding.
//!
//! Encoding is canonical (map keys sorted length-first then bytewise, minimal integer and length
//! heads, definite lengths), so equal values give equal bytes. Decoding rejects floats, undefined,
//! non-string map keys, tags other than 42, trailing bytes and nesting deeper than the decoder's
//! limit; [`decode_canonical`] also rejects any input that is not in canonical form.

use super::{Cid, DataError, Ipld, cbor_cid, validate};
use serde::{Serialize, de::DeserializeOwned};

/// Encodes a data-model value. Fails on floats, which atproto forbids.
pub fn encode(value: &Ipld) -> Result<Vec<u8>, DataError> {
    validate(value)?;
    ipld_to_vec(value)
}

/// Encodes any `Ipld` value (floats included) canonically, without the data-model checks.
///
/// Written straight into one buffer: `serde_ipld_dagcbor` encodes every map entry into a
/// buffer of its own to sort the keys, which copied each nested value once per level and was
/// a third of the allocations of a write. Values it alone handles (floats, integers beyond
/// 64 bits) go through it, so both paths give the same bytes and the same errors.
pub fn ipld_to_vec(value: &Ipld) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::with_capacity(256);
    match write_ipld(&mut out, value, 0) {
        Ok(()) => Ok(out),
        Err(Unsupported) => to_vec(value),
    }
}

/// A value [`write_ipld`] leaves to `serde_ipld_dagcbor`.
struct Unsupported;

/// Deeper than this, [`write_ipld`] hands over rather than recurse further.
const MAX_WRITE_DEPTH: usize = 128;

fn write_ipld(out: &mut Vec<u8>, value: &Ipld, depth: usize) -> Result<(), Unsupported> {
    if depth > MAX_WRITE_DEPTH {
        return Err(Unsupported);
    }
    match value {
        Ipld::Null => out.push(0xf6),
        Ipld::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Ipld::Integer(i) => {
            if let Ok(n) = u64::try_from(*i) {
                write_head(out, 0, n);
            } else if let Ok(n) = u64::try_from(-1 - *i) {
                write_head(out, 1, n);
            } else {
                return Err(Unsupported);
            }
        }
        Ipld::Float(_) => return Err(Unsupported),
        Ipld::String(s) => {
            write_head(out, 3, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Ipld::Bytes(b) => {
            write_head(out, 2, b.len() as u64);
            out.extend_from_slice(b);
        }
        Ipld::List(items) => {
            write_head(out, 4, items.len() as u64);
            for item in items {
                write_ipld(out, item, depth + 1)?;
            }
        }
        Ipld::Map(map) => {
            write_head(out, 5, map.len() as u64);
            // The map iterates bytewise; DAG-CBOR orders keys by length first.
            let mut entries: Vec<(&String, &Ipld)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(b.0)));
            for (k, v) in entries {
                write_head(out, 3, k.len() as u64);
                out.extend_from_slice(k.as_bytes());
                write_ipld(out, v, depth + 1)?;
            }
        }
        Ipld::Link(cid) => write_link(out, cid),
    }
    Ok(())
}

/// A CBOR head: major type and argument, in the shortest form.
pub(crate) fn write_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= u8::MAX as u64 {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= u16::MAX as u64 {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u32::MAX as u64 {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// A CID link: tag 42 over the binary CID with its multibase identity prefix.
pub(crate) fn write_link(out: &mut Vec<u8>, cid: &Cid) {
    out.extend_from_slice(&[0xd8, 42]);
    write_head(out, 2, 1 + cid.encoded_len() as u64);
    out.push(0);
    // Writing to a Vec cannot fail.
    let _ = cid.write_bytes(&mut *out);
}

/// Encodes a value and returns its dag-cbor CID alongside the bytes.
pub fn encode_with_cid(value: &Ipld) -> Result<(Cid, Vec<u8>), DataError> {
    let bytes = encode(value)?;
    Ok((cbor_cid(&bytes), bytes))
}

/// Decodes and validates a data-model value.
pub fn decode(bytes: &[u8]) -> Result<Ipld, DataError> {
    let value: Ipld = from_slice(bytes)?;
    validate(&value)?;
    Ok(value)
}

/// Like [`decode`], and also requires the input to be exactly the canonical encoding of the
/// value, so its CID is the one every other implementation computes for that value.
pub fn decode_canonical(bytes: &[u8]) -> Result<Ipld, DataError> {
    let value = decode(bytes)?;
    if ipld_to_vec(&value)? != bytes {
        return Err(DataError::Cbor("not in canonical DAG-CBOR form".into()));
    }
    Ok(value)
}

/// Serializes any serde type (structs with `Cid` and `serde_bytes` fields included).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, DataError> {
    serde_ipld_dagcbor::to_vec(value).map_err(|e| DataError::Cbor(e.to_string()))
}

/// Deserializes any serde type; rejects trailing bytes.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DataError> {
    serde_ipld_dagcbor::from_slice(bytes).map_err(|e| DataError::Cbor(e.to_string()))
}
