//! The repository: a Merkle Search Tree (MST) of record paths to record CIDs, over a block source.
//!
//! Protocol core only: no HTTP, no SQL, no filesystem. Blocks come from a [`BlockSource`]
//! (in-memory here; a SQLite store implements the same trait elsewhere).
//!
//! - [`mst`]: the tree itself (lookups, writes, listing, bulk build, diff, covering proofs,
//!   sync 1.1 operation inversion).
//! - [`block_store`]: the block-source trait and an in-memory store.

pub mod block_store;
pub mod commit;
pub mod mst;
pub mod repository;

pub use block_store::{BlockSource, MemoryBlockStore, NoBlocks};
pub use commit::{Commit, CommitError};
pub use mst::{
    ListOptions, MAX_KEY_LEN, MAX_NODE_BYTES, MAX_NODE_ENTRIES, Mst, MstDiff, RecordOp, WalkItem,
    common_prefix_len, diff, invert_ops, key_layer, validate_key,
};
pub use repository::{CommitData, RecordWrite, Repo, WriteError};

use crate::data::Cid;

/// Everything that can go wrong reading or changing a repository tree.
///
/// Messages name the offending block by CID so a bad import or firehose event can be traced.
/// CIDs are boxed to keep `Result`s small on the hot paths.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A block the operation needed is not in the block source.
    #[error("block {0} missing")]
    MissingBlock(Box<Cid>),
    /// The block source itself failed (I/O, database).
    #[error("block storage failed: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A block is larger than any MST node may be.
    #[error("MST node {cid} is {len} bytes (max {max})")]
    NodeTooLarge {
        cid: Box<Cid>,
        len: usize,
        max: usize,
    },
    /// The block is not DAG-CBOR of the MST node shape.
    #[error("MST node {cid} is not a valid node: {reason}")]
    Decode { cid: Box<Cid>, reason: String },
    /// The node decodes but breaks an MST invariant.
    #[error("MST node {cid} {problem}")]
    InvalidNode { cid: Box<Cid>, problem: String },
    /// The block's bytes are not the canonical encoding hashing to the CID it was fetched under.
    #[error("MST node {0} does not match its CID (corrupt block or non-canonical encoding)")]
    CidMismatch(Box<Cid>),
    /// A write would create a node with more entries than [`MAX_NODE_ENTRIES`].
    #[error("MST node would have {0} entries (max {MAX_NODE_ENTRIES})")]
    TooManyEntries(usize),
    /// A key that can never be in an MST (empty, too long).
    #[error("invalid MST key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// Bulk-build input was not strictly ascending.
    #[error("MST keys not strictly ascending: {prev:?} then {key:?}")]
    Unsorted { prev: String, key: String },
    /// Update or delete of a key that is not in the tree.
    #[error("key {0:?} not found in MST")]
    KeyNotFound(String),
    /// Add of a key that is already in the tree.
    #[error("key {0:?} already exists in MST")]
    KeyExists(String),
    /// An operation being inverted does not match the tree it claims to have produced.
    #[error("cannot invert {action} of {key:?}: {reason}")]
    Inversion {
        action: &'static str,
        key: String,
        reason: String,
    },
}
