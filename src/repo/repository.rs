//! A repository at one commit, and the function from (repo, writes) to the next commit.
//!
//! [`Repo::format_commit`] is pure: it reads blocks through a [`BlockSource`] and returns the new
//! repo plus a [`CommitData`] describing every block and record to persist. Nothing changes
//! until the caller stores that `CommitData` (in one transaction) and swaps in the new `Repo`,
//! so a failed write leaves both the store and the in-memory repo exactly as they were.
//!
//! Invariants: every commit's `rev` is strictly greater than the previous one; `prev_data` is the
//! previous commit's `data` (the sync 1.1 `prevData`); `relevant_blocks` hold what a relay needs
//! to verify the commit and invert its ops.

use super::commit::{Commit, CommitError};
use super::mst::{self, Mst, RecordOp};
use super::{BlockSource, RepoError};
use crate::crypto::Keypair;
use crate::data::{Cid, Ipld, cbor, cbor_cid};
use crate::syntax::{Did, Nsid, RecordKey, Tid};
use std::collections::BTreeMap;

/// The reference PDS's cap on a commit's firehose payload (commit + proofs + new records).
pub const MAX_COMMIT_EVENT_BYTES: usize = 2_000_000;

/// One record write requested by a client.
#[derive(Debug, Clone)]
pub enum RecordWrite {
    Create {
        collection: Nsid,
        rkey: RecordKey,
        record: Ipld,
    },
    Update {
        collection: Nsid,
        rkey: RecordKey,
        record: Ipld,
    },
    Delete {
        collection: Nsid,
        rkey: RecordKey,
    },
}

impl RecordWrite {
    /// The MST key `<collection>/<rkey>`.
    pub fn key(&self) -> String {
        let (c, r) = match self {
            RecordWrite::Create {
                collection, rkey, ..
            }
            | RecordWrite::Update {
                collection, rkey, ..
            }
            | RecordWrite::Delete { collection, rkey } => (collection, rkey),
        };
        format!("{c}/{r}")
    }
}

/// Why a write could not become a commit.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error("record {0} already exists")]
    RecordExists(String),
    #[error("record {0} does not exist")]
    RecordNotFound(String),
    #[error("record {key} is not valid data: {reason}")]
    InvalidRecord { key: String, reason: String },
    #[error("commit event would be {0} bytes, over the {MAX_COMMIT_EVENT_BYTES}-byte limit")]
    TooLarge(usize),
}

/// Everything one commit changes: what the store persists and what the firehose sends.
#[derive(Debug, Clone)]
pub struct CommitData {
    pub cid: Cid,
    pub rev: Tid,
    /// The previous commit's rev (`None` for the genesis commit).
    pub since: Option<Tid>,
    /// The previous commit's MST root (`None` for the genesis commit).
    pub prev_data: Option<Cid>,
    /// Blocks new in this commit: the commit, new MST nodes, new record blocks.
    pub new_blocks: BTreeMap<Cid, Vec<u8>>,
    /// Proof nodes for the written keys (sync 1.1), the commit and written records.
    pub relevant_blocks: BTreeMap<Cid, Vec<u8>>,
    /// Blocks no longer referenced: replaced MST nodes, the previous commit, replaced records.
    pub removed_cids: Vec<Cid>,
    /// The MST nodes among `new_blocks`. Nodes can be derived from the records, so a store may
    /// persist them lazily; commits and records it must persist with the commit.
    pub new_nodes: Vec<Cid>,
    /// The MST nodes among `removed_cids`.
    pub removed_nodes: Vec<Cid>,
    /// Record operations in request order.
    pub ops: Vec<RecordOp>,
}

impl CommitData {
    /// The blocks a `#commit` event carries: new blocks plus proof blocks.
    pub fn event_blocks(&self) -> impl Iterator<Item = (&Cid, &Vec<u8>)> {
        let extra = self
            .relevant_blocks
            .iter()
            .filter(|(cid, _)| !self.new_blocks.contains_key(cid));
        self.new_blocks.iter().chain(extra)
    }
}

/// A repository at one commit.
#[derive(Debug, Clone)]
pub struct Repo {
    commit_cid: Cid,
    commit: Commit,
    mst: Mst,
}

impl Repo {
    /// A new, empty repository: one empty MST node and a signed genesis commit.
    pub fn create(did: Did, key: &Keypair) -> Result<(Repo, CommitData), RepoError> {
        let mst = Mst::new();
        let root = mst.root();
        let rev = Tid::now();
        let commit = Commit::sign(did, root, rev, key);
        let (cid, commit_bytes) = commit.to_block();
        // A fresh empty tree is fully in memory, so walking it reads no blocks.
        let mut new_blocks: BTreeMap<Cid, Vec<u8>> =
            mst.node_blocks(&super::NoBlocks)?.into_iter().collect();
        let new_nodes = new_blocks.keys().copied().collect();
        new_blocks.insert(cid, commit_bytes);
        let data = CommitData {
            cid,
            rev,
            since: None,
            prev_data: None,
            relevant_blocks: new_blocks.clone(),
            new_blocks,
            removed_cids: Vec::new(),
            new_nodes,
            removed_nodes: Vec::new(),
            ops: Vec::new(),
        };
        Ok((
            Repo {
                commit_cid: cid,
                commit,
                mst,
            },
            data,
        ))
    }

    /// The repository whose head commit is `commit_cid`. Reads only the commit block; tree
    /// nodes load as operations reach them.
    pub fn load(src: &dyn BlockSource, commit_cid: Cid) -> Result<Repo, RepoError> {
        let bytes = src
            .get_block(&commit_cid)?
            .ok_or_else(|| RepoError::MissingBlock(Box::new(commit_cid)))?;
        let commit = Commit::from_cbor(&bytes).map_err(|e| RepoError::Storage(Box::new(e)))?;
        Ok(Repo {
            commit_cid,
            mst: Mst::load(commit.data),
            commit,
        })
    }

    pub fn did(&self) -> &Did {
        &self.commit.did
    }

    pub fn commit_cid(&self) -> Cid {
        self.commit_cid
    }

    pub fn commit(&self) -> &Commit {
        &self.commit
    }

    pub fn rev(&self) -> Tid {
        self.commit.rev
    }

    pub fn mst(&self) -> &Mst {
        &self.mst
    }

    /// A record's CID, by path.
    pub fn record_cid(
        &self,
        src: &dyn BlockSource,
        collection: &str,
        rkey: &str,
    ) -> Result<Option<Cid>, RepoError> {
        self.mst.get(src, &format!("{collection}/{rkey}"))
    }

    /// Applies `writes` as one signed commit. Pure: see the module docs.
    pub fn format_commit(
        &self,
        src: &dyn BlockSource,
        writes: &[RecordWrite],
        key: &Keypair,
    ) -> Result<(Repo, CommitData), WriteError> {
        let mut mst = self.mst.clone();
        let mut ops = Vec::with_capacity(writes.len());
        let mut record_blocks = BTreeMap::new();
        let mut removed_records = Vec::new();
        for write in writes {
            let key_str = write.key();
            match write {
                RecordWrite::Create { record, .. } => {
                    let (cid, bytes) = encode_record(&key_str, record)?;
                    if mst.get(src, &key_str)?.is_some() {
                        return Err(WriteError::RecordExists(key_str));
                    }
                    mst.add(src, &key_str, cid)?;
                    record_blocks.insert(cid, bytes);
                    ops.push(RecordOp::Create { key: key_str, cid });
                }
                RecordWrite::Update { record, .. } => {
                    let (cid, bytes) = encode_record(&key_str, record)?;
                    let Some(prev) = mst.get(src, &key_str)? else {
                        return Err(WriteError::RecordNotFound(key_str));
                    };
                    mst.update(src, &key_str, cid)?;
                    record_blocks.insert(cid, bytes);
                    if prev != cid {
                        removed_records.push(prev);
                    }
                    ops.push(RecordOp::Update {
                        key: key_str,
                        prev,
                        cid,
                    });
                }
                RecordWrite::Delete { .. } => {
                    let Some(prev) = mst.get(src, &key_str)? else {
                        return Err(WriteError::RecordNotFound(key_str));
                    };
                    mst.delete(src, &key_str)?;
                    removed_records.push(prev);
                    ops.push(RecordOp::Delete { key: key_str, prev });
                }
            }
        }

        let diff = mst::diff(src, &self.mst, &mst)?;
        let rev = next_rev(&self.commit.rev);
        let commit = Commit::sign(self.commit.did.clone(), mst.root(), rev, key);
        let (cid, commit_bytes) = commit.to_block();

        let new_nodes: Vec<Cid> = diff.new_blocks.iter().map(|(c, _)| *c).collect();
        let removed_nodes = diff.removed_cids.clone();
        let mut new_blocks: BTreeMap<Cid, Vec<u8>> = diff.new_blocks.into_iter().collect();
        new_blocks.extend(record_blocks.iter().map(|(c, b)| (*c, b.clone())));
        new_blocks.insert(cid, commit_bytes.clone());

        let mut relevant_blocks = mst.covering_proof(src, ops.iter().map(RecordOp::key))?;
        relevant_blocks.extend(record_blocks);
        relevant_blocks.insert(cid, commit_bytes);
        let size: usize = relevant_blocks.values().map(Vec::len).sum();
        if size > MAX_COMMIT_EVENT_BYTES {
            return Err(WriteError::TooLarge(size));
        }

        let mut removed_cids = diff.removed_cids;
        removed_cids.push(self.commit_cid);
        removed_cids.extend(removed_records);

        let data = CommitData {
            cid,
            rev,
            since: Some(self.commit.rev),
            prev_data: Some(self.commit.data),
            new_blocks,
            relevant_blocks,
            removed_cids,
            new_nodes,
            removed_nodes,
            ops,
        };
        Ok((
            Repo {
                commit_cid: cid,
                commit,
                mst,
            },
            data,
        ))
    }
}

fn encode_record(key: &str, record: &Ipld) -> Result<(Cid, Vec<u8>), WriteError> {
    let bytes = cbor::encode(record).map_err(|e| WriteError::InvalidRecord {
        key: key.to_string(),
        reason: e.to_string(),
    })?;
    Ok((cbor_cid(&bytes), bytes))
}

/// The next commit rev: now, unless the clock is at or behind the previous rev (clock skew, an
/// imported repo from a host with a fast clock), in which case one past it.
fn next_rev(prev: &Tid) -> Tid {
    let now = Tid::now();
    if now > *prev {
        now
    } else {
        Tid::from_u64(prev.as_u64().saturating_add(1))
    }
}
