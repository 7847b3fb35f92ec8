//! One MST node: its in-memory form, canonical encoding, and validated decoding.
//!
//! Invariant: a node's CID is the CID of [`NodeData::encode`] of its content. Nodes read from a
//! block source are checked against it on load (re-encode and re-hash), so we never need to keep
//! the original bytes: re-encoding any node reproduces them exactly.

use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use super::{MAX_KEY_LEN, MAX_NODE_BYTES, MAX_NODE_ENTRIES, common_prefix_len, key_layer};
use crate::data::cbor::{write_head, write_link};
use crate::data::{Cid, DAG_CBOR, SHA2_256, cbor_cid};
use crate::repo::{BlockSource, RepoError};

pub(crate) type NodeRef = Arc<NodeCell>;

/// A node either known only by CID (loaded on first touch) or built in memory (CID computed on
/// first request). Both memoize, so an unchanged subtree is never re-read nor re-hashed.
pub(crate) enum NodeCell {
    Stub { cid: Cid, data: OnceLock<NodeData> },
    Fresh { data: NodeData, cid: OnceLock<Cid> },
}

pub(crate) struct NodeData {
    /// The layer of every key in this node; children sit at `layer - 1`.
    pub layer: u32,
    /// Subtree of keys before the first entry.
    pub left: Option<NodeRef>,
    pub entries: Vec<Entry>,
}

#[derive(Clone)]
pub(crate) struct Entry {
    pub key: Arc<str>,
    pub value: Cid,
    /// Subtree of keys between this entry and the next.
    pub right: Option<NodeRef>,
}

/// What a node must satisfy given where it hangs in the tree: its layer (unknown for the root,
/// which takes the layer of its keys) and the exclusive key range of its parent slot.
#[derive(Clone, Copy)]
pub(crate) struct LoadCtx<'a> {
    pub layer: Option<u32>,
    pub lo: Option<&'a str>,
    pub hi: Option<&'a str>,
}

impl LoadCtx<'_> {
    pub const ROOT: LoadCtx<'static> = LoadCtx {
        layer: None,
        lo: None,
        hi: None,
    };
}

impl NodeCell {
    pub fn stub(cid: Cid) -> NodeRef {
        Arc::new(NodeCell::Stub {
            cid,
            data: OnceLock::new(),
        })
    }

    /// A new in-memory node; refuses oversized nodes so we never write what we would not load.
    pub fn fresh(
        layer: u32,
        left: Option<NodeRef>,
        entries: Vec<Entry>,
    ) -> Result<NodeRef, RepoError> {
        if entries.len() > MAX_NODE_ENTRIES {
            return Err(RepoError::TooManyEntries(entries.len()));
        }
        Ok(Arc::new(NodeCell::Fresh {
            data: NodeData {
                layer,
                left,
                entries,
            },
            cid: OnceLock::new(),
        }))
    }

    pub fn empty_root() -> NodeRef {
        Arc::new(NodeCell::Fresh {
            data: NodeData {
                layer: 0,
                left: None,
                entries: Vec::new(),
            },
            cid: OnceLock::new(),
        })
    }

    /// The node's CID, hashing (once) if it was built in memory.
    pub fn cid(&self) -> Cid {
        match self {
            NodeCell::Stub { cid, .. } => *cid,
            NodeCell::Fresh { data, cid } => *cid.get_or_init(|| cbor_cid(&data.encode())),
        }
    }

    /// For a stub not yet loaded: reads and validates the block without caching it, so a
    /// one-pass walk over a huge tree holds only the current path. `None` when the content is
    /// already in memory (use [`NodeCell::load`]).
    pub fn load_transient(
        &self,
        src: &dyn BlockSource,
        ctx: &LoadCtx<'_>,
    ) -> Result<Option<(NodeData, Vec<u8>)>, RepoError> {
        match self {
            NodeCell::Stub { cid, data } if data.get().is_none() => {
                let bytes = src
                    .get_block(cid)?
                    .ok_or(RepoError::MissingBlock(Box::new(*cid)))?;
                let decoded = decode(cid, &bytes, ctx)?;
                Ok(Some((decoded, bytes)))
            }
            _ => Ok(None),
        }
    }

    /// Content, reading and validating the block on first touch.
    pub fn load(&self, src: &dyn BlockSource, ctx: &LoadCtx<'_>) -> Result<&NodeData, RepoError> {
        match self {
            NodeCell::Fresh { data, .. } => Ok(data),
            NodeCell::Stub { cid, data } => {
                if let Some(d) = data.get() {
                    return Ok(d);
                }
                let bytes = src
                    .get_block(cid)?
                    .ok_or(RepoError::MissingBlock(Box::new(*cid)))?;
                let decoded = decode(cid, &bytes, ctx)?;
                // A concurrent loader may have won the race; it decoded the same bytes.
                Ok(data.get_or_init(|| decoded))
            }
        }
    }
}

impl NodeData {
    /// The subtree in gap `i`: before entry `i` (`i == entries.len()` is after the last entry).
    pub fn gap(&self, i: usize) -> Option<&NodeRef> {
        if i == 0 {
            self.left.as_ref()
        } else {
            self.entries.get(i - 1).and_then(|e| e.right.as_ref())
        }
    }

    /// Where a child in gap `i` must sit: one layer down, between the neighbouring keys.
    pub fn gap_ctx<'a>(&'a self, i: usize, ctx: &LoadCtx<'a>) -> LoadCtx<'a> {
        LoadCtx {
            // Layer-0 nodes never have children (checked on load), so this does not wrap.
            layer: Some(self.layer.saturating_sub(1)),
            lo: if i == 0 {
                ctx.lo
            } else {
                self.entries.get(i - 1).map(|e| &*e.key)
            },
            hi: self.entries.get(i).map(|e| &*e.key).or(ctx.hi),
        }
    }

    /// Position of `key`: `Ok(i)` if entry `i` holds it, `Err(i)` for the gap it would fall in.
    pub fn search(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| (*e.key).cmp(key))
    }

    /// A copy of `left` and `entries` with gap `i` pointing at `child`.
    pub fn with_gap(&self, i: usize, child: Option<NodeRef>) -> (Option<NodeRef>, Vec<Entry>) {
        let mut entries = self.entries.clone();
        let mut left = self.left.clone();
        set_gap(&mut left, &mut entries, i, child);
        (left, entries)
    }

    /// The canonical DAG-CBOR encoding: `{"e": [{"k","p","t","v"}...], "l"}`, keys in
    /// length-then-bytewise order, `l`/`t` present as null when absent, minimal integer heads.
    /// Hand-written because it is on every write's hot path and the shape is fixed.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.entries.len() * 96);
        out.push(0xa2); // map(2)
        out.extend_from_slice(b"\x61e");
        write_head(&mut out, 4, self.entries.len() as u64);
        let mut prev: &[u8] = &[];
        for e in &self.entries {
            let key = e.key.as_bytes();
            let p = common_prefix_len(prev, key);
            out.push(0xa4); // map(4)
            out.extend_from_slice(b"\x61k");
            write_head(&mut out, 2, (key.len() - p) as u64);
            out.extend_from_slice(&key[p..]);
            out.extend_from_slice(b"\x61p");
            write_head(&mut out, 0, p as u64);
            out.extend_from_slice(b"\x61t");
            opt_link(&mut out, e.right.as_ref());
            out.extend_from_slice(b"\x61v");
            write_link(&mut out, &e.value);
            prev = key;
        }
        out.extend_from_slice(b"\x61l");
        opt_link(&mut out, self.left.as_ref());
        out
    }
}

pub(crate) fn set_gap(
    left: &mut Option<NodeRef>,
    entries: &mut [Entry],
    i: usize,
    child: Option<NodeRef>,
) {
    if i == 0 {
        *left = child;
    } else if let Some(e) = entries.get_mut(i - 1) {
        e.right = child;
    }
}

fn opt_link(out: &mut Vec<u8>, node: Option<&NodeRef>) {
    match node {
        Some(n) => write_link(out, &n.cid()),
        None => out.push(0xf6), // null
    }
}

#[derive(Deserialize)]
struct WireNode {
    e: Vec<WireEntry>,
    l: Option<Cid>,
}

#[derive(Deserialize)]
struct WireEntry {
    p: u64,
    k: WireBytes,
    v: Cid,
    t: Option<Cid>,
}

/// `k` must be a CBOR byte string; serde's default `Vec<u8>` would also take an array of ints.
struct WireBytes(Vec<u8>);

impl<'de> Deserialize<'de> for WireBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = WireBytes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<WireBytes, E> {
                Ok(WireBytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<WireBytes, E> {
                Ok(WireBytes(v))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Subtree links must use the blessed CID format; record links may be anything.
fn is_node_link(cid: &Cid) -> bool {
    cid.version() == cid::Version::V1
        && cid.codec() == DAG_CBOR
        && cid.hash().code() == SHA2_256
        && cid.hash().size() == 32
}

/// Decode and fully validate one node block fetched under `cid`.
fn decode(cid: &Cid, bytes: &[u8], ctx: &LoadCtx<'_>) -> Result<NodeData, RepoError> {
    let invalid = |problem: String| RepoError::InvalidNode {
        cid: Box::new(*cid),
        problem,
    };
    if bytes.len() > MAX_NODE_BYTES {
        return Err(RepoError::NodeTooLarge {
            cid: Box::new(*cid),
            len: bytes.len(),
            max: MAX_NODE_BYTES,
        });
    }
    let wire: WireNode = serde_ipld_dagcbor::from_slice(bytes).map_err(|e| RepoError::Decode {
        cid: Box::new(*cid),
        reason: e.to_string(),
    })?;
    if wire.e.len() > MAX_NODE_ENTRIES {
        return Err(invalid(format!(
            "has {} entries (max {MAX_NODE_ENTRIES})",
            wire.e.len()
        )));
    }
    let is_root = ctx.layer.is_none();
    let mut layer = ctx.layer;
    let mut entries = Vec::with_capacity(wire.e.len());
    let mut prev: Vec<u8> = Vec::new();
    for (i, we) in wire.e.into_iter().enumerate() {
        let p = usize::try_from(we.p).unwrap_or(usize::MAX);
        if p > prev.len() {
            return Err(invalid(format!(
                "entry {i} has prefix length {p} but the previous key is {} bytes",
                prev.len()
            )));
        }
        let mut full = Vec::with_capacity(p + we.k.0.len());
        full.extend_from_slice(&prev[..p]);
        full.extend_from_slice(&we.k.0);
        if full.is_empty() {
            return Err(invalid(format!("entry {i} has an empty key")));
        }
        if full.len() > MAX_KEY_LEN {
            return Err(invalid(format!(
                "entry {i} key is {} bytes (max {MAX_KEY_LEN})",
                full.len()
            )));
        }
        if i > 0 {
            if full <= prev {
                return Err(invalid(format!("has keys out of order at entry {i}")));
            }
            let shared = common_prefix_len(&prev, &full);
            if p != shared {
                return Err(invalid(format!(
                    "entry {i} has prefix length {p}, but it shares {shared} bytes with the previous key"
                )));
            }
        }
        let Ok(key) = String::from_utf8(full) else {
            return Err(invalid(format!("entry {i} key is not UTF-8")));
        };
        if ctx.lo.is_some_and(|lo| key.as_str() <= lo)
            || ctx.hi.is_some_and(|hi| key.as_str() >= hi)
        {
            return Err(invalid(format!(
                "entry {i} key {key:?} is outside the key range of its parent slot"
            )));
        }
        let kl = key_layer(key.as_bytes());
        match layer {
            None => layer = Some(kl),
            Some(l) if l != kl => {
                return Err(invalid(format!(
                    "entry {i} key {key:?} is at layer {kl}, but the node is at layer {l}"
                )));
            }
            Some(_) => {}
        }
        let right = match we.t {
            Some(t) if !is_node_link(&t) => {
                return Err(invalid(format!(
                    "entry {i} has a subtree link {t} that is not dag-cbor sha2-256"
                )));
            }
            t => t.map(NodeCell::stub),
        };
        prev.clear();
        prev.extend_from_slice(key.as_bytes());
        entries.push(Entry {
            key: Arc::from(key),
            value: we.v,
            right,
        });
    }
    let layer = layer.unwrap_or(0);
    let left = match wire.l {
        Some(l) if !is_node_link(&l) => {
            return Err(invalid(format!(
                "has a left link {l} that is not dag-cbor sha2-256"
            )));
        }
        l => l.map(NodeCell::stub),
    };
    if entries.is_empty() {
        if is_root && left.is_some() {
            return Err(invalid(
                "is a root with no entries that only points to a subtree (must be trimmed)".into(),
            ));
        }
        if !is_root && left.is_none() {
            return Err(invalid("is an empty non-root node (must be pruned)".into()));
        }
    }
    let has_children = left.is_some() || entries.iter().any(|e| e.right.is_some());
    if layer == 0 && has_children {
        return Err(invalid("is at layer 0 but links to a subtree".into()));
    }
    let data = NodeData {
        layer,
        left,
        entries,
    };
    // Catches both a wrong hash and any non-canonical encoding (field order, extra fields,
    // missing nulls, non-minimal integers) in one step.
    if cbor_cid(&data.encode()) != *cid {
        return Err(RepoError::CidMismatch(Box::new(*cid)));
    }
    Ok(data)
}
