//! The memory of a volume session ([`super::VolumeSession`]): block buffers, dirty blocks (a
//! write-back cache) and recently opened blocks (a read cache), all bounded.
//!
//! Every buffer has the layout of a stored encrypted block, so a dirty block is sealed where it
//! is: [`SALT_LEN`] bytes of room, the block's plaintext, and capacity for the tag. Buffers are
//! reused through a [`Pool`] (a buffer that held plaintext is zeroed when it is finally freed).
//!
//! A dirty block need not be read before it is written: a write aligned to 512-byte sectors
//! marks the sectors it wrote ([`Sectors`]), and the rest comes from the stored block only when
//! something needs it (a read of those sectors, an unaligned write, the write-back). A stream of
//! writes that covers whole blocks in several requests never opens the blocks it replaces.

use super::block::{BlockHash, SALT_LEN, SEALED_BLOCK_LEN};
use super::BLOCK_SIZE;
use std::collections::VecDeque;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Bytes of a sector: the smallest write tracked without opening the stored block.
pub const SECTOR: usize = 512;
const SECTORS: usize = BLOCK_SIZE / SECTOR;

/// A block buffer: `SALT_LEN` bytes of room, then `BLOCK_SIZE` bytes of plaintext; capacity for
/// a sealed block, so sealing in place never reallocates (and so never leaves an unzeroed copy).
pub type Buf = Zeroizing<Vec<u8>>;

/// An opened block in the read cache, shared with the reads copying from it.
pub type Opened = Arc<Buf>;

/// The plaintext part of a block buffer.
pub fn plain(b: &[u8]) -> &[u8] {
    &b[SALT_LEN..SALT_LEN + BLOCK_SIZE]
}

/// The plaintext part of a block buffer, to change.
pub fn plain_mut(b: &mut [u8]) -> &mut [u8] {
    &mut b[SALT_LEN..SALT_LEN + BLOCK_SIZE]
}

/// True if `len` bytes at `start` are whole sectors.
pub fn aligned(start: usize, len: usize) -> bool {
    start.is_multiple_of(SECTOR) && len.is_multiple_of(SECTOR)
}

/// Which sectors of a block a dirty block holds.
#[derive(Clone, Default)]
pub struct Sectors([u64; SECTORS / 64]);

impl Sectors {
    /// Marks the sectors of `len` bytes at `start` (both multiples of [`SECTOR`]).
    pub fn mark(&mut self, start: usize, len: usize) {
        for s in start / SECTOR..(start + len) / SECTOR {
            self.0[s / 64] |= 1 << (s % 64);
        }
    }

    pub fn has(&self, s: usize) -> bool {
        self.0[s / 64] & (1 << (s % 64)) != 0
    }

    pub fn all(&self) -> bool {
        self.0.iter().all(|w| *w == u64::MAX)
    }

    /// True if every sector `len` bytes at `start` touch is held.
    pub fn covers(&self, start: usize, len: usize) -> bool {
        (start / SECTOR..(start + len).div_ceil(SECTOR)).all(|s| self.has(s))
    }
}

/// A block being changed, in the clear.
pub struct Dirty {
    pub buf: Buf,
    /// Store it even if it is all zeros (WRITE_ZEROES with NO_HOLE).
    pub keep: bool,
    /// The sectors it does not hold are still those of the stored block the map names (it
    /// was written in part, aligned, and not read).
    pub partial: bool,
    /// Sectors written by aligned changes since it became dirty: once all are, the whole
    /// block has been written anew (and can be sealed at once).
    pub covered: Sectors,
    /// Which change made it as it is (the session counts changes).
    pub version: u64,
}

impl Dirty {
    /// A dirty block of `buf`'s plaintext; `partial`: the rest is the stored block's.
    pub fn new(buf: Buf, keep: bool, partial: bool) -> Dirty {
        Dirty {
            buf,
            keep,
            partial,
            covered: Sectors::default(),
            version: 0,
        }
    }

    /// Applies `f` to `len` bytes at `start`, as change number `version`. The caller has made
    /// sure an unaligned change does not land on a partial block.
    pub fn change(&mut self, start: usize, len: usize, version: u64, f: impl FnOnce(&mut [u8])) {
        f(&mut plain_mut(&mut self.buf)[start..start + len]);
        self.version = version;
        if aligned(start, len) {
            self.covered.mark(start, len);
            if self.covered.all() {
                self.partial = false;
            }
        }
    }

    /// True if every sector was written anew since the block became dirty.
    pub fn rewritten(&self) -> bool {
        self.covered.all()
    }

    /// True if `len` bytes at `start` can be read from this block alone.
    pub fn holds(&self, start: usize, len: usize) -> bool {
        !self.partial || self.covered.covers(start, len)
    }

    /// Copies `out.len()` bytes at `start` into `out`, taking the sectors it does not hold from
    /// `base` (the stored block, opened).
    pub fn read_with(&self, start: usize, base: &[u8], out: &mut [u8]) {
        let mine = plain(&self.buf);
        let mut pos = start;
        let end = start + out.len();
        while pos < end {
            let next = ((pos / SECTOR + 1) * SECTOR).min(end);
            let from = if self.partial && !self.covered.has(pos / SECTOR) {
                base
            } else {
                mine
            };
            out[pos - start..next - start].copy_from_slice(&from[pos..next]);
            pos = next;
        }
    }

    /// Fills the sectors it does not hold from `base`: the block is whole again.
    pub fn complete(&mut self, base: &[u8]) {
        if !self.partial {
            return;
        }
        self.partial = false;
        let mine = plain_mut(&mut self.buf);
        for s in (0..SECTORS).filter(|&s| !self.covered.has(s)) {
            mine[s * SECTOR..(s + 1) * SECTOR].copy_from_slice(&base[s * SECTOR..(s + 1) * SECTOR]);
        }
    }
}

/// Block buffers kept for reuse.
#[derive(Default)]
pub struct Pool(Vec<Buf>);

/// Buffers a pool keeps: enough for a full dirty cache and the read cache.
const POOL_LIMIT: usize = super::DIRTY_LIMIT + super::CLEAN_LIMIT + 8;

impl Pool {
    /// A buffer of `SALT_LEN + BLOCK_SIZE` bytes; its contents are whatever it held last.
    pub fn take(&mut self) -> Buf {
        match self.0.pop() {
            Some(mut b) => {
                b.resize(SALT_LEN + BLOCK_SIZE, 0);
                b
            }
            None => new_buf(),
        }
    }

    pub fn give(&mut self, b: Buf) {
        if self.0.len() < POOL_LIMIT {
            self.0.push(b);
        }
    }
}

/// A new block buffer, zeroed.
pub fn new_buf() -> Buf {
    let mut v = Vec::with_capacity(SEALED_BLOCK_LEN);
    v.resize(SALT_LEN + BLOCK_SIZE, 0);
    Zeroizing::new(v)
}

/// Recently opened blocks, most recent last.
#[derive(Default)]
pub struct Clean(VecDeque<(u64, BlockHash, Opened)>);

impl Clean {
    /// Block `i` as stored under `h`, if cached.
    pub fn get(&mut self, i: u64, h: &BlockHash) -> Option<Opened> {
        let at = self.0.iter().position(|(j, k, _)| *j == i && k == h)?;
        let e = self.0.remove(at).expect("present");
        let p = e.2.clone();
        self.0.push_back(e);
        Some(p)
    }

    /// Caches block `i` stored under `h`; an evicted buffer no read still uses goes to `pool`.
    pub fn put(&mut self, i: u64, h: BlockHash, opened: Opened, pool: &mut Pool) {
        self.forget(i, pool);
        if self.0.len() >= super::CLEAN_LIMIT {
            if let Some((_, _, old)) = self.0.pop_front() {
                recycle(old, pool);
            }
        }
        self.0.push_back((i, h, opened));
    }

    /// Drops block `i` from the cache.
    pub fn forget(&mut self, i: u64, pool: &mut Pool) {
        if let Some(at) = self.0.iter().position(|(j, _, _)| *j == i) {
            let (_, _, old) = self.0.remove(at).expect("present");
            recycle(old, pool);
        }
    }
}

fn recycle(opened: Opened, pool: &mut Pool) {
    if let Ok(b) = Arc::try_unwrap(opened) {
        pool.give(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_blocks_read_and_complete_from_their_base() {
        let base: Vec<u8> = (0..BLOCK_SIZE).map(|i| (i % 251) as u8).collect();
        let mut d = Dirty::new(new_buf(), false, true);
        d.change(1024, 1024, 1, |b| b.fill(0xee));
        assert!(d.holds(1024, 1024) && d.holds(1500, 10));
        assert!(!d.holds(1000, 100) && !d.holds(2000, 100));
        let mut out = vec![0u8; 3000];
        d.read_with(100, &base, &mut out);
        assert_eq!(&out[..924], &base[100..1024]);
        assert!(out[924..1948].iter().all(|&b| b == 0xee));
        assert_eq!(&out[1948..], &base[2048..3100]);
        d.complete(&base);
        assert!(!d.partial && !d.rewritten());
        let p = plain(&d.buf);
        assert_eq!(&p[..1024], &base[..1024]);
        assert!(p[1024..2048].iter().all(|&b| b == 0xee));
        assert_eq!(&p[2048..], &base[2048..]);
        // Every sector written: whole without the base.
        let mut d = Dirty::new(new_buf(), false, true);
        d.change(0, BLOCK_SIZE / 2, 1, |b| b.fill(1));
        assert!(!d.rewritten());
        d.change(BLOCK_SIZE / 2, BLOCK_SIZE / 2, 2, |b| b.fill(2));
        assert!(!d.partial && d.rewritten());
    }
}
