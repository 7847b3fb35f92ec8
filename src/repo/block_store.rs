//! Where MST nodes (and records) are read from.
//!
//! [`BlockSource`] is deliberately tiny and object-safe: the tree code takes `&dyn BlockSource`,
//! so an in-memory map, a SQLite table or a CAR slice can all back the same tree.

use std::collections::HashMap;

use super::RepoError;
use crate::data::Cid;

/// Read access to content-addressed blocks.
pub trait BlockSource {
    /// The bytes stored under `cid`, or `None` if this source does not have the block.
    ///
    /// Callers verify the bytes against the CID; sources need not.
    fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, RepoError>;
}

impl<T: BlockSource + ?Sized> BlockSource for &T {
    fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, RepoError> {
        (**self).get_block(cid)
    }
}

/// A source with no blocks: for trees built entirely in memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBlocks;

impl BlockSource for NoBlocks {
    fn get_block(&self, _cid: &Cid) -> Result<Option<Vec<u8>>, RepoError> {
        Ok(None)
    }
}

/// Blocks in a hash map. Does not check that bytes match their CID.
#[derive(Debug, Clone, Default)]
pub struct MemoryBlockStore {
    blocks: HashMap<Cid, Vec<u8>>,
}

impl MemoryBlockStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Store `bytes` under `cid`, replacing any previous block.
    pub fn put(&mut self, cid: Cid, bytes: Vec<u8>) {
        self.blocks.insert(cid, bytes);
    }

    /// Store every `(cid, bytes)` pair.
    pub fn put_many(&mut self, blocks: impl IntoIterator<Item = (Cid, Vec<u8>)>) {
        self.blocks.extend(blocks);
    }

    /// The block under `cid`, if present.
    pub fn get(&self, cid: &Cid) -> Option<&[u8]> {
        self.blocks.get(cid).map(Vec::as_slice)
    }

    /// Whether a block is stored under `cid`.
    pub fn has(&self, cid: &Cid) -> bool {
        self.blocks.contains_key(cid)
    }

    /// Remove and return the block under `cid`.
    pub fn remove(&mut self, cid: &Cid) -> Option<Vec<u8>> {
        self.blocks.remove(cid)
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether the store holds no blocks.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// All blocks, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Cid, &[u8])> {
        self.blocks.iter().map(|(c, b)| (c, b.as_slice()))
    }
}

impl FromIterator<(Cid, Vec<u8>)> for MemoryBlockStore {
    fn from_iter<I: IntoIterator<Item = (Cid, Vec<u8>)>>(iter: I) -> Self {
        Self {
            blocks: iter.into_iter().collect(),
        }
    }
}

impl Extend<(Cid, Vec<u8>)> for MemoryBlockStore {
    fn extend<I: IntoIterator<Item = (Cid, Vec<u8>)>>(&mut self, iter: I) {
        self.blocks.extend(iter);
    }
}

impl BlockSource for MemoryBlockStore {
    fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, RepoError> {
        Ok(self.blocks.get(cid).cloned())
    }
}
