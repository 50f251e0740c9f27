//! Block maps: which stored block holds each block index of a volume or snapshot.
//!
//! A map is sparse (all-zero blocks have no entry) and immutable: it is stored as its own
//! content-addressed object under `ebs/maps/<blake3>`, and records name it by that hash. A
//! snapshot therefore copies no data and no map — it names the volume's current map — and a
//! record authenticated by the head MAC authenticates its map and, through the map, every block.
//!
//! Encoding: `"COFREMAP"`, version `1` (u8), block count (u64 BE), entry count (u64 BE), then
//! per entry the block index (u64 BE, strictly increasing, below the block count) and the
//! block's 32-byte hash.

use super::block::BlockHash;
use crate::error::{Error, Result};
use std::collections::BTreeMap;

const MAGIC: &[u8; 8] = b"COFREMAP";
const VERSION: u8 = 1;
const PREFIX_LEN: usize = 8 + 1 + 8 + 8;
const ENTRY_LEN: usize = 8 + 32;

/// The blocks of one volume or snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockMap {
    /// How many blocks the volume has (its size in blocks, rounded up).
    pub block_count: u64,
    /// Stored blocks by index; an index with no entry reads as zeros.
    pub blocks: BTreeMap<u64, BlockHash>,
}

impl BlockMap {
    /// An empty (all-zero) map of `block_count` blocks.
    pub fn new(block_count: u64) -> Self {
        BlockMap {
            block_count,
            blocks: BTreeMap::new(),
        }
    }

    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PREFIX_LEN + self.blocks.len() * ENTRY_LEN);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.block_count.to_be_bytes());
        out.extend_from_slice(&(self.blocks.len() as u64).to_be_bytes());
        for (i, h) in &self.blocks {
            out.extend_from_slice(&i.to_be_bytes());
            out.extend_from_slice(h);
        }
        out
    }

    /// Parses canonical bytes; anything else is an error.
    pub fn decode(raw: &[u8]) -> Result<Self> {
        let bad = |why: &str| Error::StoreCorrupt(format!("block map is malformed ({why})"));
        if raw.len() < PREFIX_LEN || &raw[..8] != MAGIC || raw[8] != VERSION {
            return Err(bad("bad prefix"));
        }
        let u64_at = |o: usize| u64::from_be_bytes(raw[o..o + 8].try_into().expect("8 bytes"));
        let block_count = u64_at(9);
        let n = u64_at(17);
        if (raw.len() - PREFIX_LEN) as u64 != n.saturating_mul(ENTRY_LEN as u64) {
            return Err(bad("length"));
        }
        let mut blocks = BTreeMap::new();
        let mut last = None;
        for e in raw[PREFIX_LEN..].chunks_exact(ENTRY_LEN) {
            let i = u64::from_be_bytes(e[..8].try_into().expect("8 bytes"));
            if i >= block_count || last.is_some_and(|l| l >= i) {
                return Err(bad("index order"));
            }
            last = Some(i);
            blocks.insert(i, e[8..].try_into().expect("32 bytes"));
        }
        Ok(BlockMap {
            block_count,
            blocks,
        })
    }

    /// Indexes whose block differs between `self` and `other` (either side may be zeros).
    pub fn changed(&self, other: &BlockMap) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .blocks
            .iter()
            .filter(|(i, h)| other.blocks.get(i) != Some(h))
            .map(|(i, _)| *i)
            .chain(
                other
                    .blocks
                    .keys()
                    .filter(|i| !self.blocks.contains_key(i))
                    .copied(),
            )
            .collect();
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let mut m = BlockMap::new(10);
        m.blocks.insert(2, [1; 32]);
        m.blocks.insert(9, [2; 32]);
        let raw = m.encode();
        assert_eq!(BlockMap::decode(&raw).unwrap(), m);
        assert!(BlockMap::decode(&raw[..raw.len() - 1]).is_err());
        let mut swapped = raw.clone();
        swapped[PREFIX_LEN + 7] = 9; // first entry's index = 9: out of order
        assert!(BlockMap::decode(&swapped).is_err());
        let mut over = m.clone();
        over.block_count = 9;
        assert!(
            BlockMap::decode(&over.encode()).is_err(),
            "index past the end"
        );
    }

    #[test]
    fn changed_lists_both_sides() {
        let mut a = BlockMap::new(8);
        let mut b = BlockMap::new(8);
        a.blocks.insert(1, [1; 32]);
        b.blocks.insert(1, [1; 32]);
        a.blocks.insert(2, [2; 32]);
        b.blocks.insert(2, [3; 32]);
        a.blocks.insert(4, [4; 32]);
        b.blocks.insert(6, [6; 32]);
        assert_eq!(a.changed(&b), vec![2, 4, 6]);
        assert_eq!(b.changed(&a), vec![2, 4, 6]);
    }
}
