//! The atproto data model: DAG-CBOR (DRISL) encoding and CIDs.
//!
//! Invariant: every CID this crate makes is CIDv1, sha2-256, with codec dag-cbor (0x71) or raw (0x55).

pub use cid::Cid;
pub use ipld_core::ipld::Ipld;

use sha2::{Digest, Sha256};

/// Multicodec code for DAG-CBOR (DRISL) data.
pub const DAG_CBOR: u64 = 0x71;
/// Multicodec code for raw bytes (blobs).
pub const RAW: u64 = 0x55;
/// Multihash code for sha2-256.
pub const SHA2_256: u64 = 0x12;

/// CIDv1 of `bytes` with the given codec, hashed with sha2-256.
pub fn cid_for(codec: u64, bytes: &[u8]) -> Cid {
    let digest = Sha256::digest(bytes);
    // A 32-byte digest always fits the 64-byte multihash.
    let mh = multihash::Multihash::<64>::wrap(SHA2_256, &digest).expect("32-byte digest fits");
    Cid::new_v1(codec, mh)
}

/// CIDv1 dag-cbor of already-encoded DAG-CBOR bytes.
pub fn cbor_cid(bytes: &[u8]) -> Cid {
    cid_for(DAG_CBOR, bytes)
}

/// CIDv1 raw of blob bytes.
pub fn raw_cid(bytes: &[u8]) -> Cid {
    cid_for(RAW, bytes)
}
