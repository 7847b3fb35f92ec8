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
    to_vec(value)
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
    if to_vec(&value)? != bytes {
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
