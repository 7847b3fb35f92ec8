//! Differences between two trees: record-level changes plus the node blocks that appeared and
//! disappeared.
//!
//! Both trees are walked in key order side by side; whenever both cursors face subtrees with the
//! same CID, both skip them unread. So the cost is proportional to the changed part, not the
//! tree size.

use std::collections::HashSet;

use super::Mst;
use super::node::{Entry, LoadCtx, NodeData, NodeRef};
use crate::data::Cid;
use crate::repo::{BlockSource, RepoError};

/// What changed from an old tree to a new one. Key lists are in ascending key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MstDiff {
    /// Keys only in the new tree, with their value.
    pub adds: Vec<(String, Cid)>,
    /// Keys in both with different values: `(key, old value, new value)`.
    pub updates: Vec<(String, Cid, Cid)>,
    /// Keys only in the old tree, with their old value.
    pub deletes: Vec<(String, Cid)>,
    /// Node blocks of the new tree that the old tree lacks (what a commit must store and ship).
    pub new_blocks: Vec<(Cid, Vec<u8>)>,
    /// Node CIDs of the old tree that the new tree no longer references.
    pub removed_cids: Vec<Cid>,
}

impl MstDiff {
    /// Whether no key changed.
    pub fn is_empty(&self) -> bool {
        self.adds.is_empty() && self.updates.is_empty() && self.deletes.is_empty()
    }
}

/// Compare `old` to `new`, reading nodes of either from `src` as needed.
pub fn diff(src: &dyn BlockSource, old: &Mst, new: &Mst) -> Result<MstDiff, RepoError> {
    let mut out = MstDiff::default();
    if old.root() == new.root() {
        return Ok(out);
    }
    let mut a = Cursor::start(src, &old.root)?;
    let mut b = Cursor::start(src, &new.root)?;
    loop {
        match (a.current(), b.current()) {
            (None, None) => break,
            (Some(Item::Leaf(ea)), None) => {
                out.deletes.push((ea.key.to_string(), ea.value));
                a.advance();
            }
            (None, Some(Item::Leaf(eb))) => {
                out.adds.push((eb.key.to_string(), eb.value));
                b.advance();
            }
            (Some(Item::Tree(t, ctx)), None) | (Some(Item::Tree(t, ctx)), Some(Item::Leaf(_))) => {
                a.enter(src, t, ctx)?
            }
            (None, Some(Item::Tree(t, ctx))) | (Some(Item::Leaf(_)), Some(Item::Tree(t, ctx))) => {
                b.enter(src, t, ctx)?
            }
            (Some(Item::Leaf(ea)), Some(Item::Leaf(eb))) => match ea.key.cmp(&eb.key) {
                std::cmp::Ordering::Less => {
                    out.deletes.push((ea.key.to_string(), ea.value));
                    a.advance();
                }
                std::cmp::Ordering::Greater => {
                    out.adds.push((eb.key.to_string(), eb.value));
                    b.advance();
                }
                std::cmp::Ordering::Equal => {
                    if ea.value != eb.value {
                        out.updates.push((ea.key.to_string(), ea.value, eb.value));
                    }
                    a.advance();
                    b.advance();
                }
            },
            (Some(Item::Tree(ta, ca)), Some(Item::Tree(tb, cb))) => {
                if ta.cid() == tb.cid() {
                    // Same subtree at the same point of the key order: identical contents.
                    a.advance();
                    b.advance();
                } else {
                    // Descend the taller side first so equal children can line up.
                    let (la, lb) = (ca.layer.unwrap_or(0), cb.layer.unwrap_or(0));
                    if la >= lb {
                        a.enter(src, ta, ca)?;
                    }
                    if lb >= la {
                        b.enter(src, tb, cb)?;
                    }
                }
            }
        }
    }
    // A node read on both sides (reached at different alignments) is neither new nor removed.
    let old_seen: HashSet<Cid> = a.visited.iter().map(|(c, _)| *c).collect();
    let new_seen: HashSet<Cid> = b.visited.iter().map(|(c, _)| *c).collect();
    out.new_blocks = b
        .visited
        .iter()
        .filter(|(c, _)| !old_seen.contains(c))
        .map(|(c, d)| (*c, d.encode()))
        .collect();
    out.removed_cids = a
        .visited
        .iter()
        .filter(|(c, _)| !new_seen.contains(c))
        .map(|(c, _)| *c)
        .collect();
    Ok(out)
}

enum Item<'a> {
    Leaf(&'a Entry),
    Tree(&'a NodeRef, LoadCtx<'a>),
}

struct Frame<'a> {
    data: &'a NodeData,
    ctx: LoadCtx<'a>,
    /// Slot index: even `2g` is gap `g`, odd `2i + 1` is entry `i`.
    pos: usize,
}

/// An in-order cursor over leaves and subtrees that can step over or into a subtree.
struct Cursor<'a> {
    stack: Vec<Frame<'a>>,
    visited: Vec<(Cid, &'a NodeData)>,
}

impl<'a> Cursor<'a> {
    fn start(src: &dyn BlockSource, root: &'a NodeRef) -> Result<Self, RepoError> {
        let d = root.load(src, &LoadCtx::ROOT)?;
        let mut c = Cursor {
            stack: vec![Frame {
                data: d,
                ctx: LoadCtx::ROOT,
                pos: 0,
            }],
            visited: vec![(root.cid(), d)],
        };
        c.settle();
        Ok(c)
    }

    fn current(&self) -> Option<Item<'a>> {
        let f = self.stack.last()?;
        if f.pos % 2 == 0 {
            let g = f.pos / 2;
            f.data
                .gap(g)
                .map(|c| Item::Tree(c, f.data.gap_ctx(g, &f.ctx)))
        } else {
            f.data.entries.get(f.pos / 2).map(Item::Leaf)
        }
    }

    /// Skip empty gaps and pop finished nodes so `current` is a real slot (or the end).
    fn settle(&mut self) {
        while let Some(f) = self.stack.last_mut() {
            if f.pos > 2 * f.data.entries.len() {
                self.stack.pop();
            } else if f.pos % 2 == 0 && f.data.gap(f.pos / 2).is_none() {
                f.pos += 1;
            } else {
                break;
            }
        }
    }

    fn advance(&mut self) {
        if let Some(f) = self.stack.last_mut() {
            f.pos += 1;
        }
        self.settle();
    }

    /// Step into the current subtree `node` (read it, remember it as visited).
    fn enter(
        &mut self,
        src: &dyn BlockSource,
        node: &'a NodeRef,
        ctx: LoadCtx<'a>,
    ) -> Result<(), RepoError> {
        let d = node.load(src, &ctx)?;
        self.advance();
        self.visited.push((node.cid(), d));
        self.stack.push(Frame {
            data: d,
            ctx,
            pos: 0,
        });
        self.settle();
        Ok(())
    }
}
