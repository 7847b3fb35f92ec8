//! The atproto data model: values, their DAG-CBOR (DRISL) and JSON encodings, and CIDs.
//!
//! Invariants:
//! - Every CID this crate makes is CIDv1 with a sha2-256 multihash, codec dag-cbor (0x71) or raw (0x55).
//! - An [`Ipld`] value that passed [`validate`] holds no floats and well-formed `$type`/blob objects;
//!   both [`cbor::decode`] and [`json::from_json`] validate, so values built from the wire always do.
//! - [`cbor::encode`] is canonical: the same value always gives the same bytes, hence the same CID.

pub mod cbor;
pub mod json;

pub use cid::Cid;
pub use ipld_core::ipld::Ipld;

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Multicodec code for DAG-CBOR (DRISL) data.
pub const DAG_CBOR: u64 = 0x71;
/// Multicodec code for raw bytes (blobs).
pub const RAW: u64 = 0x55;
/// Multihash code for sha2-256.
pub const SHA2_256: u64 = 0x12;

/// Why a value is not valid atproto data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DataError {
    #[error("invalid DAG-CBOR: {0}")]
    Cbor(String),
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("at {path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("invalid CID: {0}")]
    Cid(String),
}

impl DataError {
    pub(crate) fn invalid(path: &Path<'_>, reason: impl Into<String>) -> Self {
        DataError::Invalid {
            path: path.to_string(),
            reason: reason.into(),
        }
    }
}

/// CIDv1 of `bytes` with the given codec, hashed with sha2-256.
pub fn cid_for(codec: u64, bytes: &[u8]) -> Cid {
    let digest = Sha256::digest(bytes);
    Cid::new_v1(codec, sha256_multihash(digest.into()))
}

/// CIDv1 dag-cbor of already-encoded DAG-CBOR bytes.
pub fn cbor_cid(bytes: &[u8]) -> Cid {
    cid_for(DAG_CBOR, bytes)
}

/// CIDv1 raw of blob bytes.
pub fn raw_cid(bytes: &[u8]) -> Cid {
    cid_for(RAW, bytes)
}

fn sha256_multihash(digest: [u8; 32]) -> multihash::Multihash<64> {
    // `wrap` fails only when the digest exceeds the 64-byte capacity; 32 bytes always fit.
    match multihash::Multihash::<64>::wrap(SHA2_256, &digest) {
        Ok(mh) => mh,
        Err(_) => unreachable!("a 32-byte digest fits a 64-byte multihash"),
    }
}

/// Parses a CID string and requires it to be one of the blessed atproto formats
/// (CIDv1, sha2-256, dag-cbor or raw).
pub fn parse_blessed_cid(s: &str) -> Result<Cid, DataError> {
    let cid = Cid::try_from(s).map_err(|e| DataError::Cid(format!("{s:.64}: {e}")))?;
    check_blessed(&cid)?;
    Ok(cid)
}

/// Checks that a CID is one atproto creates: v1, sha2-256 with a 32-byte digest, dag-cbor or raw.
pub fn check_blessed(cid: &Cid) -> Result<(), DataError> {
    if cid.version() != cid::Version::V1 {
        return Err(DataError::Cid(format!("{cid}: CIDv0 is not allowed")));
    }
    if cid.codec() != DAG_CBOR && cid.codec() != RAW {
        return Err(DataError::Cid(format!(
            "{cid}: codec 0x{:x} is not dag-cbor (0x71) or raw (0x55)",
            cid.codec()
        )));
    }
    let mh = cid.hash();
    if mh.code() != SHA2_256 || mh.size() != 32 {
        return Err(DataError::Cid(format!(
            "{cid}: hash 0x{:x} of {} bytes is not sha2-256",
            mh.code(),
            mh.size()
        )));
    }
    Ok(())
}

/// Checks that the CID is the hash of `bytes` under the CID's own codec and hash function.
/// Only sha2-256 can be checked; any other hash is rejected.
pub fn verify_cid(cid: &Cid, bytes: &[u8]) -> Result<(), DataError> {
    let mh = cid.hash();
    if mh.code() != SHA2_256 || mh.size() != 32 {
        return Err(DataError::Cid(format!(
            "{cid}: unsupported hash 0x{:x}",
            mh.code()
        )));
    }
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    if mh.digest() != digest {
        return Err(DataError::Cid(format!(
            "block does not hash to its CID {cid}"
        )));
    }
    Ok(())
}

/// Maximum nesting of arrays and objects accepted in a value (the decoder's own limit is similar).
pub const MAX_DEPTH: usize = 128;

/// Checks an [`Ipld`] value against the atproto data model: no floats, `$type` a non-empty
/// string where present, and `$type: blob` objects shaped as blob references.
pub fn validate(value: &Ipld) -> Result<(), DataError> {
    validate_at(value, &Path::Root, 0)
}

fn validate_at(value: &Ipld, path: &Path<'_>, depth: usize) -> Result<(), DataError> {
    if depth > MAX_DEPTH {
        return Err(DataError::invalid(path, "nested too deeply"));
    }
    match value {
        Ipld::Float(_) => Err(DataError::invalid(
            path,
            "floats are not allowed in atproto data",
        )),
        Ipld::List(items) => {
            for (i, item) in items.iter().enumerate() {
                validate_at(item, &Path::Index(path, i), depth + 1)?;
            }
            Ok(())
        }
        Ipld::Map(map) => {
            validate_object(map, path)?;
            for (k, v) in map {
                validate_at(v, &Path::Key(path, k), depth + 1)?;
            }
            Ok(())
        }
        Ipld::Integer(i) if i64::try_from(*i).is_err() => Err(DataError::invalid(
            path,
            "integer exceeds the 64-bit signed range",
        )),
        Ipld::Null
        | Ipld::Bool(_)
        | Ipld::Integer(_)
        | Ipld::String(_)
        | Ipld::Bytes(_)
        | Ipld::Link(_) => Ok(()),
    }
}

/// Object-level rules: `$type` and blob shape.
fn validate_object(map: &BTreeMap<String, Ipld>, path: &Path<'_>) -> Result<(), DataError> {
    match map.get("$type") {
        None => Ok(()),
        Some(Ipld::String(t)) if t.is_empty() => {
            Err(DataError::invalid(path, "$type must not be empty"))
        }
        Some(Ipld::String(t)) if t == "blob" => validate_blob(map, path),
        Some(Ipld::String(_)) => Ok(()),
        Some(_) => Err(DataError::invalid(path, "$type must be a string")),
    }
}

fn validate_blob(map: &BTreeMap<String, Ipld>, path: &Path<'_>) -> Result<(), DataError> {
    match map.get("ref") {
        Some(Ipld::Link(_)) => {}
        Some(_) => return Err(DataError::invalid(path, "blob ref must be a CID link")),
        None => return Err(DataError::invalid(path, "blob is missing ref")),
    }
    match map.get("mimeType") {
        Some(Ipld::String(m)) if !m.is_empty() => {}
        Some(_) => {
            return Err(DataError::invalid(
                path,
                "blob mimeType must be a non-empty string",
            ));
        }
        None => return Err(DataError::invalid(path, "blob is missing mimeType")),
    }
    match map.get("size") {
        Some(Ipld::Integer(n)) if *n >= 0 => Ok(()),
        Some(Ipld::Integer(_)) => Err(DataError::invalid(path, "blob size must not be negative")),
        Some(_) => Err(DataError::invalid(path, "blob size must be an integer")),
        None => Err(DataError::invalid(path, "blob is missing size")),
    }
}

/// A blob reference found inside a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    pub cid: Cid,
    pub mime_type: String,
    pub size: u64,
}

/// Every blob reference (`$type: blob`) in a value, in document order.
pub fn blob_refs(value: &Ipld) -> Vec<BlobRef> {
    let mut out = Vec::new();
    collect_blobs(value, &mut out);
    out
}

fn collect_blobs(value: &Ipld, out: &mut Vec<BlobRef>) {
    match value {
        Ipld::Map(map) => {
            if let (
                Some(Ipld::String(t)),
                Some(Ipld::Link(cid)),
                Some(Ipld::String(mime)),
                Some(Ipld::Integer(size)),
            ) = (
                map.get("$type"),
                map.get("ref"),
                map.get("mimeType"),
                map.get("size"),
            ) && t == "blob"
                && let Ok(size) = u64::try_from(*size)
            {
                out.push(BlobRef {
                    cid: *cid,
                    mime_type: mime.clone(),
                    size,
                });
                return;
            }
            for v in map.values() {
                collect_blobs(v, out);
            }
        }
        Ipld::List(items) => items.iter().for_each(|v| collect_blobs(v, out)),
        _ => {}
    }
}

/// Where in a value an error is, for messages like `at $.embed.images[0]: ...`; built on the
/// stack so a valid value allocates nothing for it.
pub(crate) enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root => f.write_str("$"),
            Path::Key(parent, k) => write!(f, "{parent}.{k}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}
