//! Covering proofs and sync 1.1 operation inversion.
//!
//! A commit ships, besides its new blocks, the nodes a consumer needs to undo its operations on
//! a partial tree and arrive at the previous root (`prevData`). For each written key we include,
//! from the new tree:
//!
//! - the search path from the root to the node holding the key (or to where it would be);
//! - where the key is present, the right spine of the subtree just before it and the left spine
//!   of the subtree just after it: deleting the key (undoing a create) merges those two.
//!
//! This is a superset of the reference implementation's `getCoveringProof` (key path plus left
//! and right sibling paths), so anything a reference consumer expects is there.

use std::collections::BTreeMap;

use super::Mst;
use super::node::{LoadCtx, NodeData, NodeRef};
use crate::data::Cid;
use crate::repo::{BlockSource, RepoError};

/// One record-level operation of a commit, as carried in a firehose `#commit` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOp {
    Create { key: String, cid: Cid },
    Update { key: String, prev: Cid, cid: Cid },
    Delete { key: String, prev: Cid },
}

impl RecordOp {
    /// The MST key (repo path) the operation writes.
    pub fn key(&self) -> &str {
        match self {
            RecordOp::Create { key, .. }
            | RecordOp::Update { key, .. }
            | RecordOp::Delete { key, .. } => key,
        }
    }

    fn action(&self) -> &'static str {
        match self {
            RecordOp::Create { .. } => "create",
            RecordOp::Update { .. } => "update",
            RecordOp::Delete { .. } => "delete",
        }
    }
}

impl Mst {
    /// The node blocks proving the presence or absence of each of `keys`, plus the neighbouring
    /// spines needed to invert writes to them (see the module docs). Deduplicated by CID.
    pub fn covering_proof<'k>(
        &self,
        src: &dyn BlockSource,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Result<BTreeMap<Cid, Vec<u8>>, RepoError> {
        let mut out = BTreeMap::new();
        for key in keys {
            key_path(src, &self.root, &LoadCtx::ROOT, key, &mut out)?;
        }
        Ok(out)
    }

    /// Apply `op` forwards, checking that `prev` values match the tree.
    pub fn apply(&mut self, src: &dyn BlockSource, op: &RecordOp) -> Result<(), RepoError> {
        let mismatch = |reason: String| RepoError::Inversion {
            action: op.action(),
            key: op.key().to_string(),
            reason,
        };
        match op {
            RecordOp::Create { key, cid } => self.add(src, key, *cid),
            RecordOp::Update { key, prev, cid } => match self.get(src, key)? {
                Some(cur) if cur == *prev => self.update(src, key, *cid).map(drop),
                cur => Err(mismatch(format!(
                    "tree holds {cur:?}, op expects prev {prev}"
                ))),
            },
            RecordOp::Delete { key, prev } => match self.get(src, key)? {
                Some(cur) if cur == *prev => self.delete(src, key).map(drop),
                cur => Err(mismatch(format!(
                    "tree holds {cur:?}, op expects prev {prev}"
                ))),
            },
        }
    }

    /// Undo `op` on a tree that reflects it: a create becomes a delete, an update restores
    /// `prev`, a delete re-adds `prev`. Errors if the tree does not show the op's result, or if
    /// a block needed is missing from `src`.
    pub fn invert(&mut self, src: &dyn BlockSource, op: &RecordOp) -> Result<(), RepoError> {
        let mismatch = |reason: String| RepoError::Inversion {
            action: op.action(),
            key: op.key().to_string(),
            reason,
        };
        let cur = self.get(src, op.key())?;
        match op {
            RecordOp::Create { key, cid } => {
                if cur != Some(*cid) {
                    return Err(mismatch(format!("tree holds {cur:?}, op created {cid}")));
                }
                self.delete(src, key).map(drop)
            }
            RecordOp::Update { key, prev, cid } => {
                if cur != Some(*cid) {
                    return Err(mismatch(format!("tree holds {cur:?}, op wrote {cid}")));
                }
                self.update(src, key, *prev).map(drop)
            }
            RecordOp::Delete { key, prev } => {
                if let Some(c) = cur {
                    return Err(mismatch(format!("key still present with {c}")));
                }
                self.add(src, key, *prev)
            }
        }
    }
}

/// Undo a commit: starting from its tree `root_after`, invert `ops` (last first, which is right
/// even if a key repeats) and return the previous root. `src` may be a partial tree, such as a
/// firehose event's blocks; a missing node is an error, never a wrong answer.
pub fn invert_ops(
    src: &dyn BlockSource,
    root_after: Cid,
    ops: &[RecordOp],
) -> Result<Cid, RepoError> {
    let mut tree = Mst::load(root_after);
    for op in ops.iter().rev() {
        tree.invert(src, op)?;
    }
    Ok(tree.root())
}

fn include(node: &NodeRef, d: &NodeData, out: &mut BTreeMap<Cid, Vec<u8>>) {
    out.entry(node.cid()).or_insert_with(|| d.encode());
}

fn key_path(
    src: &dyn BlockSource,
    node: &NodeRef,
    ctx: &LoadCtx<'_>,
    key: &str,
    out: &mut BTreeMap<Cid, Vec<u8>>,
) -> Result<(), RepoError> {
    let d = node.load(src, ctx)?;
    include(node, d, out);
    match d.search(key) {
        Ok(i) => {
            if let Some(c) = d.gap(i) {
                spine(src, c, &d.gap_ctx(i, ctx), true, out)?;
            }
            if let Some(c) = d.gap(i + 1) {
                spine(src, c, &d.gap_ctx(i + 1, ctx), false, out)?;
            }
            Ok(())
        }
        Err(i) => match d.gap(i) {
            Some(c) => key_path(src, c, &d.gap_ctx(i, ctx), key, out),
            None => Ok(()),
        },
    }
}

/// The right spine (`rightmost`) or left spine of a subtree, down to where it ends in a leaf.
fn spine(
    src: &dyn BlockSource,
    node: &NodeRef,
    ctx: &LoadCtx<'_>,
    rightmost: bool,
    out: &mut BTreeMap<Cid, Vec<u8>>,
) -> Result<(), RepoError> {
    let d = node.load(src, ctx)?;
    include(node, d, out);
    let g = if rightmost { d.entries.len() } else { 0 };
    match d.gap(g) {
        Some(c) => spine(src, c, &d.gap_ctx(g, ctx), rightmost, out),
        None => Ok(()),
    }
}
