//! The Merkle Search Tree (repo format v3): a deterministic, content-addressed sorted map from
//! record paths to record CIDs.
//!
//! Invariants this module keeps (and checks on every node it reads):
//!
//! - **Deterministic shape.** A key's layer is the number of leading zero bits of SHA-256(key),
//!   halved (fanout 4). A node holds the keys of one layer; its subtrees hold the keys between
//!   its entries, one layer down. The tree is therefore a pure function of its key→CID map, no
//!   matter the order of writes.
//! - **Canonical nodes.** A node is `{l: CID|null, e: [{p, k: bytes, v: CID, t: CID|null}]}` in
//!   canonical DAG-CBOR, keys prefix-compressed against the previous entry of the same node.
//!   A node's CID is the CID of that encoding.
//! - **Trimmed edges.** The empty tree is one node with no entries. Otherwise the root has
//!   entries, and no node is empty unless it is an intermediate node pointing down (so links
//!   never skip a layer).
//!
//! Representation: nodes are immutable and shared (`Arc`), with memoized CIDs. A write copies
//! only the nodes on its path, so it re-encodes and re-hashes O(depth) nodes; untouched subtrees
//! stay unread CID pointers until an operation walks into them. Cloning an [`Mst`] is O(1) and
//! gives an independent snapshot.
//!
//! Every operation that may read nodes takes the [`BlockSource`] to read them from.

mod diff;
mod node;
mod proof;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use self::node::{Entry, LoadCtx, NodeCell, NodeRef, set_gap};
use super::{BlockSource, RepoError};
use crate::data::Cid;

pub use diff::{MstDiff, diff};
pub use proof::{RecordOp, invert_ops};

/// Longest key we accept. Repo paths are at most ~830 bytes (317-byte NSID, `/`, 512-byte rkey).
pub const MAX_KEY_LEN: usize = 1024;
/// Most entries a node may hold. A fair tree of millions of keys stays under ~60; the cap bounds
/// the damage from keys mined to pile into one node.
pub const MAX_NODE_ENTRIES: usize = 1024;
/// Largest node block we decode (1024 entries of 1024-byte keys fit).
pub const MAX_NODE_BYTES: usize = 2 * 1024 * 1024;

/// The MST layer of `key`: leading zero bits of SHA-256(key), divided by two.
pub fn key_layer(key: &[u8]) -> u32 {
    let digest = Sha256::digest(key);
    let mut zeros = 0;
    for b in digest {
        if b == 0 {
            zeros += 8;
        } else {
            zeros += b.leading_zeros();
            break;
        }
    }
    zeros / 2
}

/// Number of leading bytes `a` and `b` share (the `p` of prefix compression).
pub fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Whether `key` can be stored in an MST: non-empty and at most [`MAX_KEY_LEN`] bytes.
///
/// Repo-path syntax (`collection/rkey`) is the caller's business; the tree only needs keys that
/// encode and sort.
pub fn validate_key(key: &str) -> Result<(), RepoError> {
    let reason = if key.is_empty() {
        "empty"
    } else if key.len() > MAX_KEY_LEN {
        "longer than 1024 bytes"
    } else {
        return Ok(());
    };
    Err(RepoError::InvalidKey {
        key: key.chars().take(80).collect(),
        reason,
    })
}

/// A Merkle Search Tree snapshot. Cheap to clone; writes replace the root by path copying.
#[derive(Clone)]
pub struct Mst {
    root: NodeRef,
}

impl Default for Mst {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Mst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Mst").field(&self.root()).finish()
    }
}

/// Filters for [`Mst::list`]. All bounds are combined; `None` means unbounded.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListOptions<'a> {
    /// Only keys starting with this (e.g. `"app.bsky.feed.post/"`).
    pub prefix: Option<&'a str>,
    /// Only keys strictly greater (a forward cursor).
    pub after: Option<&'a str>,
    /// Only keys strictly smaller (a reverse cursor).
    pub before: Option<&'a str>,
    /// At most this many results.
    pub limit: Option<usize>,
    /// Descending key order instead of ascending.
    pub reverse: bool,
}

impl ListOptions<'_> {
    fn matches(&self, key: &str) -> bool {
        self.after.is_none_or(|a| key > a)
            && self.before.is_none_or(|b| key < b)
            && self.prefix.is_none_or(|p| key.starts_with(p))
    }

    /// Ascending walk: nothing at or after `key` can match.
    fn past_end(&self, key: &str) -> bool {
        self.before.is_some_and(|b| key >= b)
            || self.prefix.is_some_and(|p| key > p && !key.starts_with(p))
    }

    /// Descending walk: nothing at or before `key` can match.
    fn before_start(&self, key: &str) -> bool {
        self.after.is_some_and(|a| key <= a) || self.prefix.is_some_and(|p| key < p)
    }

    /// Whether a subtree spanning the open range `(ctx.lo, ctx.hi)` can hold a match.
    fn may_contain(&self, ctx: &LoadCtx<'_>) -> bool {
        let below = ctx.hi.is_some_and(|h| {
            self.after.is_some_and(|a| h <= a) || self.prefix.is_some_and(|p| h <= p)
        });
        let above = ctx.lo.is_some_and(|l| {
            self.before.is_some_and(|b| l >= b)
                || self.prefix.is_some_and(|p| l > p && !l.starts_with(p))
        });
        !below && !above
    }
}

/// One step of [`Mst::walk`]: a node block, or a leaf (record pointer).
#[derive(Debug)]
pub enum WalkItem<'a> {
    Node { cid: Cid, bytes: Vec<u8> },
    Leaf { key: &'a str, value: Cid },
}

impl Mst {
    /// The empty tree: one node with no entries.
    pub fn new() -> Self {
        Mst {
            root: NodeCell::empty_root(),
        }
    }

    /// The tree rooted at `root`. Reads nothing: nodes are fetched when an operation reaches them.
    pub fn load(root: Cid) -> Self {
        Mst {
            root: NodeCell::stub(root),
        }
    }

    /// Build a tree from `(key, value)` pairs in strictly ascending key order, in O(n · depth).
    pub fn from_sorted<K: AsRef<str>>(
        entries: impl IntoIterator<Item = (K, Cid)>,
    ) -> Result<Self, RepoError> {
        let mut items: Vec<(Arc<str>, Cid, u32)> = Vec::new();
        for (k, v) in entries {
            let k = k.as_ref();
            validate_key(k)?;
            if let Some((prev, _, _)) = items.last()
                && **prev >= *k
            {
                return Err(RepoError::Unsorted {
                    prev: prev.to_string(),
                    key: k.to_string(),
                });
            }
            items.push((Arc::from(k), v, key_layer(k.as_bytes())));
        }
        let Some(top) = items.iter().map(|i| i.2).max() else {
            return Ok(Self::new());
        };
        Ok(Mst {
            root: build(&items, top)?,
        })
    }

    /// The root CID (the commit's `data`). Hashes only nodes built since they were last hashed.
    pub fn root(&self) -> Cid {
        self.root.cid()
    }

    /// Whether the tree has no keys.
    pub fn is_empty(&self, src: &dyn BlockSource) -> Result<bool, RepoError> {
        let d = self.root.load(src, &LoadCtx::ROOT)?;
        Ok(d.entries.is_empty() && d.left.is_none())
    }

    /// The value stored under `key`.
    pub fn get(&self, src: &dyn BlockSource, key: &str) -> Result<Option<Cid>, RepoError> {
        let mut node = &self.root;
        let mut ctx = LoadCtx::ROOT;
        loop {
            let d = node.load(src, &ctx)?;
            match d.search(key) {
                Ok(i) => return Ok(d.entries.get(i).map(|e| e.value)),
                Err(i) => match d.gap(i) {
                    None => return Ok(None),
                    Some(c) => {
                        ctx = d.gap_ctx(i, &ctx);
                        node = c;
                    }
                },
            }
        }
    }

    /// Insert a new key. Fails with [`RepoError::KeyExists`] if it is present.
    pub fn add(&mut self, src: &dyn BlockSource, key: &str, value: Cid) -> Result<(), RepoError> {
        validate_key(key)?;
        let key: Arc<str> = Arc::from(key);
        let klayer = key_layer(key.as_bytes());
        let root = &self.root;
        let d = root.load(src, &LoadCtx::ROOT)?;
        let new_root = if d.entries.is_empty() && d.left.is_none() {
            chain(klayer, &key, klayer, value)?
        } else if klayer > d.layer {
            // The key tops the tree: split everything around it and stack empty nodes so the
            // halves hang exactly one layer below it.
            let (mut l, mut r) = split(src, Some(root), &LoadCtx::ROOT, &key)?;
            for layer in d.layer + 1..klayer {
                l = l
                    .map(|n| NodeCell::fresh(layer, Some(n), Vec::new()))
                    .transpose()?;
                r = r
                    .map(|n| NodeCell::fresh(layer, Some(n), Vec::new()))
                    .transpose()?;
            }
            let top = vec![Entry {
                key,
                value,
                right: r,
            }];
            NodeCell::fresh(klayer, l, top)?
        } else {
            insert(src, root, &LoadCtx::ROOT, &key, klayer, value)?
        };
        self.root = new_root;
        Ok(())
    }

    /// Change the value of an existing key; returns the previous value.
    pub fn update(
        &mut self,
        src: &dyn BlockSource,
        key: &str,
        value: Cid,
    ) -> Result<Cid, RepoError> {
        let (root, old) = update(src, &self.root, &LoadCtx::ROOT, key, value)?;
        self.root = root;
        Ok(old)
    }

    /// Insert or overwrite; returns the previous value if there was one.
    pub fn put(
        &mut self,
        src: &dyn BlockSource,
        key: &str,
        value: Cid,
    ) -> Result<Option<Cid>, RepoError> {
        if self.get(src, key)?.is_some() {
            self.update(src, key, value).map(Some)
        } else {
            self.add(src, key, value).map(|()| None)
        }
    }

    /// Remove a key; returns its value. Fails with [`RepoError::KeyNotFound`] if absent.
    pub fn delete(&mut self, src: &dyn BlockSource, key: &str) -> Result<Cid, RepoError> {
        let klayer = key_layer(key.as_bytes());
        let (top, old) = delete(src, &self.root, &LoadCtx::ROOT, key, klayer)?;
        // Trim: the root must not be an empty node that only points down.
        let mut node = top;
        let mut ctx = LoadCtx::ROOT;
        let root = loop {
            let Some(n) = node else {
                break NodeCell::empty_root();
            };
            let d = n.load(src, &ctx)?;
            if !d.entries.is_empty() || d.left.is_none() {
                break n;
            }
            ctx = LoadCtx {
                layer: Some(d.layer.saturating_sub(1)),
                lo: None,
                hi: None,
            };
            node = d.left.clone();
        };
        self.root = root;
        Ok(old)
    }

    /// Keys and values in key order (or reverse), filtered by `opts`. Reads only the nodes that
    /// can hold matching keys, so a page costs O(depth + limit).
    pub fn list(
        &self,
        src: &dyn BlockSource,
        opts: &ListOptions<'_>,
    ) -> Result<Vec<(String, Cid)>, RepoError> {
        let mut out = Vec::new();
        if opts.limit != Some(0) {
            list(src, &self.root, &LoadCtx::ROOT, opts, &mut out)?;
        }
        Ok(out)
    }

    /// Every key and value, ascending. Reads the whole tree.
    pub fn entries(&self, src: &dyn BlockSource) -> Result<Vec<(String, Cid)>, RepoError> {
        self.list(src, &ListOptions::default())
    }

    /// Visit the whole tree in streamable-CAR order: each node, then its slots left to right
    /// (a subtree recursively, or a leaf).
    pub fn walk(
        &self,
        src: &dyn BlockSource,
        visit: &mut dyn FnMut(WalkItem<'_>) -> Result<(), RepoError>,
    ) -> Result<(), RepoError> {
        walk(src, &self.root, &LoadCtx::ROOT, false, visit)
    }

    /// Like [`Mst::walk`], but nodes not already in memory are decoded for the visit and dropped
    /// after it, so memory stays O(depth) however large the tree (exports, imports).
    pub fn walk_transient(
        &self,
        src: &dyn BlockSource,
        visit: &mut dyn FnMut(WalkItem<'_>) -> Result<(), RepoError>,
    ) -> Result<(), RepoError> {
        walk(src, &self.root, &LoadCtx::ROOT, true, visit)
    }

    /// Every node block of the tree, root first.
    pub fn node_blocks(&self, src: &dyn BlockSource) -> Result<Vec<(Cid, Vec<u8>)>, RepoError> {
        let mut out = Vec::new();
        self.walk(src, &mut |item| {
            if let WalkItem::Node { cid, bytes } = item {
                out.push((cid, bytes));
            }
            Ok(())
        })?;
        Ok(out)
    }
}

fn build(items: &[(Arc<str>, Cid, u32)], layer: u32) -> Result<NodeRef, RepoError> {
    let mut left = None;
    let mut entries: Vec<Entry> = Vec::new();
    let mut start = 0;
    let sub = |seg: &[(Arc<str>, Cid, u32)]| -> Result<Option<NodeRef>, RepoError> {
        if seg.is_empty() {
            Ok(None)
        } else {
            // A non-empty segment holds only lower-layer keys, so `layer >= 1` here.
            build(seg, layer - 1).map(Some)
        }
    };
    for (idx, (key, value, kl)) in items.iter().enumerate() {
        if *kl == layer {
            let child = sub(&items[start..idx])?;
            let gap = entries.len();
            set_gap(&mut left, &mut entries, gap, child);
            entries.push(Entry {
                key: key.clone(),
                value: *value,
                right: None,
            });
            start = idx + 1;
        }
    }
    let child = sub(&items[start..])?;
    let gap = entries.len();
    set_gap(&mut left, &mut entries, gap, child);
    NodeCell::fresh(layer, left, entries)
}

/// A fresh subtree at `layer` holding only `key` (at `klayer <= layer`), padded with empty
/// nodes so no layer is skipped.
fn chain(layer: u32, key: &Arc<str>, klayer: u32, value: Cid) -> Result<NodeRef, RepoError> {
    let mut node = NodeCell::fresh(
        klayer,
        None,
        vec![Entry {
            key: key.clone(),
            value,
            right: None,
        }],
    )?;
    for l in klayer + 1..=layer {
        node = NodeCell::fresh(l, Some(node), Vec::new())?;
    }
    Ok(node)
}

fn same(a: &Option<NodeRef>, b: Option<&NodeRef>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

/// Insert below the root; `klayer <= node layer`.
fn insert(
    src: &dyn BlockSource,
    node: &NodeRef,
    ctx: &LoadCtx<'_>,
    key: &Arc<str>,
    klayer: u32,
    value: Cid,
) -> Result<NodeRef, RepoError> {
    let d = node.load(src, ctx)?;
    let i = match d.search(key) {
        Ok(_) => return Err(RepoError::KeyExists(key.to_string())),
        Err(i) => i,
    };
    let child = d.gap(i);
    let cctx = d.gap_ctx(i, ctx);
    if klayer == d.layer {
        // The key lands here and cuts the subtree in its gap in two.
        let (cl, cr) = split(src, child, &cctx, key)?;
        let (left, mut entries) = d.with_gap(i, cl);
        entries.insert(
            i,
            Entry {
                key: key.clone(),
                value,
                right: cr,
            },
        );
        NodeCell::fresh(d.layer, left, entries)
    } else if klayer < d.layer {
        let new_child = match child {
            None => chain(d.layer - 1, key, klayer, value)?,
            Some(c) => insert(src, c, &cctx, key, klayer, value)?,
        };
        let (left, entries) = d.with_gap(i, Some(new_child));
        NodeCell::fresh(d.layer, left, entries)
    } else {
        Err(RepoError::InvalidNode {
            cid: Box::new(node.cid()),
            problem: format!(
                "sits at layer {} below key {key:?} of layer {klayer}",
                d.layer
            ),
        })
    }
}

/// Split a subtree into the parts before and after `key` (which it must not contain). Parts that
/// lie wholly on one side are returned as-is, so only the nodes on the key's path are rebuilt.
fn split(
    src: &dyn BlockSource,
    node: Option<&NodeRef>,
    ctx: &LoadCtx<'_>,
    key: &str,
) -> Result<(Option<NodeRef>, Option<NodeRef>), RepoError> {
    let Some(n) = node else {
        return Ok((None, None));
    };
    let d = n.load(src, ctx)?;
    let i = match d.search(key) {
        Ok(_) => return Err(RepoError::KeyExists(key.to_string())),
        Err(i) => i,
    };
    let child = d.gap(i);
    let (cl, cr) = split(src, child, &d.gap_ctx(i, ctx), key)?;
    if i == d.entries.len() && cr.is_none() && same(&cl, child) {
        return Ok((Some(n.clone()), None));
    }
    if i == 0 && cl.is_none() && same(&cr, child) {
        return Ok((None, Some(n.clone())));
    }
    let mut lleft = d.left.clone();
    let mut lentries = d.entries[..i].to_vec();
    set_gap(&mut lleft, &mut lentries, i, cl);
    let left = if lentries.is_empty() && lleft.is_none() {
        None
    } else {
        Some(NodeCell::fresh(d.layer, lleft, lentries)?)
    };
    let rentries = d.entries[i..].to_vec();
    let right = if rentries.is_empty() && cr.is_none() {
        None
    } else {
        Some(NodeCell::fresh(d.layer, cr, rentries)?)
    };
    Ok((left, right))
}

/// Join two adjacent same-layer subtrees (every key of `a` below every key of `b`). Only the
/// facing spines are read and rebuilt.
fn merge(
    src: &dyn BlockSource,
    a: Option<&NodeRef>,
    actx: &LoadCtx<'_>,
    b: Option<&NodeRef>,
    bctx: &LoadCtx<'_>,
) -> Result<Option<NodeRef>, RepoError> {
    let (a, b) = match (a, b) {
        (None, None) => return Ok(None),
        (Some(x), None) | (None, Some(x)) => return Ok(Some(x.clone())),
        (Some(a), Some(b)) => (a, b),
    };
    let da = a.load(src, actx)?;
    let db = b.load(src, bctx)?;
    if da.layer != db.layer {
        return Err(RepoError::InvalidNode {
            cid: Box::new(b.cid()),
            problem: format!(
                "is at layer {} next to a sibling at layer {}",
                db.layer, da.layer
            ),
        });
    }
    let n = da.entries.len();
    let joined = merge(
        src,
        da.gap(n),
        &da.gap_ctx(n, actx),
        db.left.as_ref(),
        &db.gap_ctx(0, bctx),
    )?;
    let mut left = da.left.clone();
    let mut entries = Vec::with_capacity(n + db.entries.len());
    entries.extend_from_slice(&da.entries);
    set_gap(&mut left, &mut entries, n, joined);
    entries.extend_from_slice(&db.entries);
    NodeCell::fresh(da.layer, left, entries).map(Some)
}

/// Delete below or at `node`; `None` when the subtree became empty.
fn delete(
    src: &dyn BlockSource,
    node: &NodeRef,
    ctx: &LoadCtx<'_>,
    key: &str,
    klayer: u32,
) -> Result<(Option<NodeRef>, Cid), RepoError> {
    let d = node.load(src, ctx)?;
    let (left, entries, old) = match d.search(key) {
        Ok(i) => {
            let Some(entry) = d.entries.get(i) else {
                return Err(RepoError::KeyNotFound(key.to_string()));
            };
            let joined = merge(
                src,
                d.gap(i),
                &d.gap_ctx(i, ctx),
                entry.right.as_ref(),
                &d.gap_ctx(i + 1, ctx),
            )?;
            let mut entries = d.entries.clone();
            entries.remove(i);
            let mut left = d.left.clone();
            set_gap(&mut left, &mut entries, i, joined);
            (left, entries, entry.value)
        }
        Err(i) => {
            let child = match d.gap(i) {
                Some(c) if klayer < d.layer => c,
                _ => return Err(RepoError::KeyNotFound(key.to_string())),
            };
            let (new_child, old) = delete(src, child, &d.gap_ctx(i, ctx), key, klayer)?;
            let (left, entries) = d.with_gap(i, new_child);
            (left, entries, old)
        }
    };
    let node = if entries.is_empty() && left.is_none() {
        None
    } else {
        Some(NodeCell::fresh(d.layer, left, entries)?)
    };
    Ok((node, old))
}

fn update(
    src: &dyn BlockSource,
    node: &NodeRef,
    ctx: &LoadCtx<'_>,
    key: &str,
    value: Cid,
) -> Result<(NodeRef, Cid), RepoError> {
    let d = node.load(src, ctx)?;
    match d.search(key) {
        Ok(i) => {
            let mut entries = d.entries.clone();
            let Some(e) = entries.get_mut(i) else {
                return Err(RepoError::KeyNotFound(key.to_string()));
            };
            let old = e.value;
            if old == value {
                return Ok((node.clone(), old));
            }
            e.value = value;
            Ok((NodeCell::fresh(d.layer, d.left.clone(), entries)?, old))
        }
        Err(i) => {
            let Some(child) = d.gap(i) else {
                return Err(RepoError::KeyNotFound(key.to_string()));
            };
            let (new_child, old) = update(src, child, &d.gap_ctx(i, ctx), key, value)?;
            if Arc::ptr_eq(&new_child, child) {
                return Ok((node.clone(), old));
            }
            let (left, entries) = d.with_gap(i, Some(new_child));
            Ok((NodeCell::fresh(d.layer, left, entries)?, old))
        }
    }
}

/// In-order listing with pruning; returns `true` once nothing more can match.
fn list(
    src: &dyn BlockSource,
    node: &NodeRef,
    ctx: &LoadCtx<'_>,
    opts: &ListOptions<'_>,
    out: &mut Vec<(String, Cid)>,
) -> Result<bool, RepoError> {
    let d = node.load(src, ctx)?;
    let full = |out: &Vec<(String, Cid)>| opts.limit.is_some_and(|l| out.len() >= l);
    let n = d.entries.len();
    let visit_gap = |i: usize, out: &mut Vec<(String, Cid)>| -> Result<bool, RepoError> {
        if let Some(c) = d.gap(i) {
            let cctx = d.gap_ctx(i, ctx);
            if opts.may_contain(&cctx) {
                return list(src, c, &cctx, opts, out);
            }
        }
        Ok(false)
    };
    if !opts.reverse {
        for i in 0..=n {
            if visit_gap(i, out)? {
                return Ok(true);
            }
            if let Some(e) = d.entries.get(i) {
                if opts.past_end(&e.key) {
                    return Ok(true);
                }
                if opts.matches(&e.key) {
                    out.push((e.key.to_string(), e.value));
                    if full(out) {
                        return Ok(true);
                    }
                }
            }
        }
    } else {
        for i in (0..=n).rev() {
            if visit_gap(i, out)? {
                return Ok(true);
            }
            if let Some(e) = i.checked_sub(1).and_then(|j| d.entries.get(j)) {
                if opts.before_start(&e.key) {
                    return Ok(true);
                }
                if opts.matches(&e.key) {
                    out.push((e.key.to_string(), e.value));
                    if full(out) {
                        return Ok(true);
                    }
                }
            }
        }
    }
    Ok(false)
}

/// Pre-order walk. With `transient`, nodes not already in memory are decoded for the visit and
/// dropped after it instead of being cached in the tree.
fn walk(
    src: &dyn BlockSource,
    node: &NodeRef,
    ctx: &LoadCtx<'_>,
    transient: bool,
    visit: &mut dyn FnMut(WalkItem<'_>) -> Result<(), RepoError>,
) -> Result<(), RepoError> {
    let owned;
    let d = match transient
        .then(|| node.load_transient(src, ctx))
        .transpose()?
        .flatten()
    {
        Some((data, bytes)) => {
            visit(WalkItem::Node {
                cid: node.cid(),
                bytes,
            })?;
            owned = data;
            &owned
        }
        None => {
            let d = node.load(src, ctx)?;
            visit(WalkItem::Node {
                cid: node.cid(),
                bytes: d.encode(),
            })?;
            d
        }
    };
    for i in 0..=d.entries.len() {
        if let Some(c) = d.gap(i) {
            walk(src, c, &d.gap_ctx(i, ctx), transient, visit)?;
        }
        if let Some(e) = d.entries.get(i) {
            visit(WalkItem::Leaf {
                key: &e.key,
                value: e.value,
            })?;
        }
    }
    Ok(())
}
