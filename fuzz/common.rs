//! Helpers shared by the fuzz targets: turning fuzz input into repository blocks, and the
//! fixed identity the structure-aware targets sign with.

use berth::crypto::{Curve, Keypair};
use berth::data::Cid;
use berth::repo::Commit;
use berth::syntax::{Did, Tid};
use std::sync::OnceLock;

/// The DID every structure-aware target builds its repos for.
pub const DID: &str = "did:plc:fuzzfuzzfuzzfuzzfuzzfuzz";

/// A fixed signing key (fuzz runs must be reproducible).
pub fn key() -> &'static Keypair {
    static KEY: OnceLock<Keypair> = OnceLock::new();
    KEY.get_or_init(|| {
        Keypair::from_private_bytes(Curve::K256, &[0x42; 32]).expect("a valid fixed key")
    })
}

pub fn did() -> Did {
    DID.parse().expect("a valid fixed DID")
}

/// Splits `data` into blocks, each a little-endian u16 length then that many bytes (the last
/// may be short). At most `max` blocks.
pub fn split_blocks(mut data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut blocks = Vec::new();
    while data.len() >= 2 && blocks.len() < max {
        let len = u16::from_le_bytes([data[0], data[1]]) as usize;
        let rest = &data[2..];
        let len = len.min(rest.len());
        blocks.push(&rest[..len]);
        data = &rest[len..];
    }
    blocks
}

/// The inverse of [`split_blocks`], for writing seeds.
pub fn join_blocks<'a>(blocks: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for b in blocks {
        let len = u16::try_from(b.len()).expect("seed blocks fit a u16 length");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(b);
    }
    out
}

/// A commit by [`key`] over the tree rooted at `data`.
pub fn commit_over(data: Cid) -> (Cid, Vec<u8>) {
    let rev: Tid = "3kfuzzfuzz222".parse().expect("a valid fixed TID");
    Commit::sign(did(), data, rev, key()).to_block()
}
