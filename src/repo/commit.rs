//! Signed repository commits (repo format v3).
//!
//! `{did, version: 3, data, rev, prev: null, sig}`: the signature covers the DAG-CBOR encoding of
//! the same map without `sig`, hashed with SHA-256 (done inside `Keypair::sign`). `prev` is always
//! present and null; a commit's CID is the dag-cbor CID of the signed encoding.
//!
//! Invariant: a [`Commit`] decoded by [`Commit::from_cbor`] has version 3 (or 2, read only), a
//! syntactically valid DID and TID rev, and a 64-byte signature field; whether that signature is
//! right is [`Commit::verify`]'s job, since the key lives in the DID document.

use crate::crypto::{Keypair, PublicKey};
use crate::data::{Cid, Ipld, cbor};
use crate::syntax::{Did, Tid};
use std::collections::BTreeMap;

/// Why a commit block is not a valid commit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommitError {
    #[error("commit is not valid DAG-CBOR: {0}")]
    Encoding(String),
    #[error("commit field `{0}` is missing or has the wrong type")]
    Field(&'static str),
    #[error("commit version {0} is not supported (expected 3)")]
    Version(i128),
    #[error("commit {field} is invalid: {reason}")]
    Syntax { field: &'static str, reason: String },
    #[error("commit signature does not verify against {0}")]
    BadSignature(String),
}

/// A signed commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub did: Did,
    pub version: u8,
    /// Root of the record tree (MST).
    pub data: Cid,
    pub rev: Tid,
    /// Always `None` in commits berth writes; kept for v2 repos.
    pub prev: Option<Cid>,
    pub sig: Vec<u8>,
}

impl Commit {
    /// Builds and signs a v3 commit.
    pub fn sign(did: Did, data: Cid, rev: Tid, key: &Keypair) -> Commit {
        let mut commit = Commit {
            did,
            version: 3,
            data,
            rev,
            prev: None,
            sig: Vec::new(),
        };
        let sig = key.sign(&commit.unsigned_bytes());
        commit.sig = sig.as_ref().to_vec();
        commit
    }

    /// The bytes the signature covers.
    pub fn unsigned_bytes(&self) -> Vec<u8> {
        encode(&self.to_map(false))
    }

    /// The signed commit's block bytes.
    pub fn to_cbor(&self) -> Vec<u8> {
        encode(&self.to_map(true))
    }

    /// The signed commit's block and its CID.
    pub fn to_block(&self) -> (Cid, Vec<u8>) {
        let bytes = self.to_cbor();
        (crate::data::cbor_cid(&bytes), bytes)
    }

    /// Checks the signature against the account's current signing key.
    pub fn verify(&self, key: &PublicKey) -> Result<(), CommitError> {
        key.verify(&self.unsigned_bytes(), &self.sig)
            .map_err(|_| CommitError::BadSignature(key.to_did_key()))
    }

    /// Parses a commit block.
    pub fn from_cbor(bytes: &[u8]) -> Result<Commit, CommitError> {
        let value = cbor::decode(bytes).map_err(|e| CommitError::Encoding(e.to_string()))?;
        let Ipld::Map(map) = value else {
            return Err(CommitError::Encoding("commit is not a map".into()));
        };
        let version = match map.get("version") {
            Some(Ipld::Integer(v)) => *v,
            _ => return Err(CommitError::Field("version")),
        };
        if version != 3 && version != 2 {
            return Err(CommitError::Version(version));
        }
        let did = match map.get("did") {
            Some(Ipld::String(s)) => s.parse::<Did>().map_err(|e| CommitError::Syntax {
                field: "did",
                reason: e.to_string(),
            })?,
            _ => return Err(CommitError::Field("did")),
        };
        let data = match map.get("data") {
            Some(Ipld::Link(c)) => *c,
            _ => return Err(CommitError::Field("data")),
        };
        let rev = match map.get("rev") {
            Some(Ipld::String(s)) => s.parse::<Tid>().map_err(|e| CommitError::Syntax {
                field: "rev",
                reason: e.to_string(),
            })?,
            _ => return Err(CommitError::Field("rev")),
        };
        let prev = match map.get("prev") {
            Some(Ipld::Link(c)) => Some(*c),
            Some(Ipld::Null) => None,
            // v3 requires the key; v2 allowed it to be absent.
            None if version == 2 => None,
            _ => return Err(CommitError::Field("prev")),
        };
        let sig = match map.get("sig") {
            Some(Ipld::Bytes(b)) => b.clone(),
            _ => return Err(CommitError::Field("sig")),
        };
        Ok(Commit {
            did,
            version: version as u8,
            data,
            rev,
            prev,
            sig,
        })
    }

    fn to_map(&self, with_sig: bool) -> Ipld {
        let mut m = BTreeMap::new();
        m.insert("did".into(), Ipld::String(self.did.to_string()));
        m.insert("version".into(), Ipld::Integer(self.version.into()));
        m.insert("data".into(), Ipld::Link(self.data));
        m.insert("rev".into(), Ipld::String(self.rev.to_string()));
        m.insert("prev".into(), self.prev.map_or(Ipld::Null, Ipld::Link));
        if with_sig {
            m.insert("sig".into(), Ipld::Bytes(self.sig.clone()));
        }
        Ipld::Map(m)
    }
}

fn encode(value: &Ipld) -> Vec<u8> {
    // A map of strings, a small integer, links and bytes always encodes.
    match cbor::encode(value) {
        Ok(b) => b,
        Err(e) => unreachable!("commit encodes: {e}"),
    }
}
