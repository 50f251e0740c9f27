//! Volume sessions: a volume attached as a disk (or a snapshot, read-only), for block front
//! ends such as the NBD server ([`crate::nbd`]).
//!
//! [`Ebs::attach_volume`] is one request: an `AttachVolume` event in the trail, and one Decrypt
//! of the lineage's data key (made through KMS like every other, recorded as EBS's), as EC2
//! decrypts a volume's key when it attaches the volume. The [`VolumeSession`] then serves
//! [`read_at`](VolumeSession::read_at), [`write_at`](VolumeSession::write_at),
//! [`write_zeroes`](VolumeSession::write_zeroes), [`trim`](VolumeSession::trim),
//! [`flush`](VolumeSession::flush) and [`block_status`](VolumeSession::block_status) from memory
//! and the block store, with no further KMS request, until [`close`](VolumeSession::close)
//! (a `DetachVolume` event).
//!
//! Writes behave like a disk with a write-back cache:
//!
//! - A write changes the plaintext of its blocks in a bounded cache of dirty blocks
//!   ([`DIRTY_LIMIT`] blocks). A write of part of a block, aligned to 512-byte sectors, opens
//!   the stored block only when something needs the sectors it did not write (see
//!   [`super::cache`]); an unaligned one opens it at once.
//! - When the cache grows past its limit the dirty blocks are sealed into new blocks
//!   (copy-on-write: a stored block is never changed) and the session's own copy of the block
//!   map names them; the volume record does not, yet.
//! - [`flush`](VolumeSession::flush) (NBD FLUSH, or a write with FUA) seals what is left, stores
//!   the new block map, syncs the filesystem and switches the volume's record to the new map
//!   once, in one atomic replacement of the region's head. A crash or `kill -9` at any moment
//!   leaves the volume at its last flush; what was written since is unreferenced, and `cofre gc`
//!   removes it.
//! - The session may also flush on its own, as a disk writes its cache back when it likes:
//!   [`flush_if_idle`](VolumeSession::flush_if_idle) flushes changes older than a few seconds
//!   (the NBD server calls it), so that an attached volume never holds back `cofre gc` for long.
//! - Writes of zeros, WRITE_ZEROES and TRIM store nothing: an all-zero block is a hole in the
//!   map. WRITE_ZEROES with NO_HOLE stores sealed zero blocks instead.
//!
//! Memory stays bounded whatever the volume size: the dirty cache ([`DIRTY_LIMIT`] blocks of
//! 512 KiB), a small cache of opened blocks ([`CLEAN_LIMIT`]), and the block map (40 bytes per
//! stored block, as every EBS request that touches data reads it).
//!
//! Locks, all advisory (`flock`), all released by the kernel when a process dies:
//!
//! - `ebs/attach/<id>.lock`: exclusive for a read-write session, shared for a read-only one.
//!   Another session, `volume write` and `volume delete` try it and fail with `VolumeInUse`
//!   (`snapshot delete` with `InvalidSnapshot.InUse`) instead of waiting.
//! - `ebs/.gc.lock`, shared, while the session has written blocks that the head does not name
//!   yet (from the first write-back after a flush until the next flush), so `gc` cannot take
//!   them. After a flush, the blocks of an encrypted volume that the session itself wrote and the
//!   flush replaced are removed at once if `.gc.lock` is free and no other record names them
//!   (they carry a random salt, so no other volume can hold the same block); the rest is left to
//!   `cofre gc`, which [`close`](VolumeSession::close) runs.
//! - `snapshot create` of an attached volume takes the head as it is: the last flush.

use super::block::{is_zero, BlockHash};
use super::cache::{aligned, new_buf, plain, plain_mut, Buf, Clean, Dirty, Opened, Pool};
use super::volume::read_block;
use super::{not_found, BlockMap, Ebs, OpenLineage, RegionEbs, BLOCK_SIZE};
use crate::error::{Ec2Code, Error, Result};
use crate::kms::{Call, Kms};
use crate::store::LockGuard;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Dirty blocks kept in memory before they are sealed and written back (32 MiB).
pub const DIRTY_LIMIT: usize = 64;
/// Opened blocks kept for the next read of the same block (8 MiB).
pub const CLEAN_LIMIT: usize = 16;
const BLOCK: u64 = BLOCK_SIZE as u64;

/// How a session attaches its volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    /// Reads and writes; no other session, `volume write` or `volume delete` meanwhile.
    ReadWrite,
    /// Reads only; other read-only sessions may attach too, writers may not.
    ReadOnly,
}

/// A run of bytes of the same allocation status ([`VolumeSession::block_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub length: u64,
    /// Stored data (or a dirty block); false: a hole, which reads as zeros.
    pub allocated: bool,
}

impl Extent {
    /// `len` bytes at `offset` in runs of one status, `allocated(i)` giving block `i`'s.
    pub fn runs(offset: u64, len: u64, allocated: impl Fn(u64) -> bool) -> Vec<Extent> {
        let end = offset + len;
        let mut out: Vec<Extent> = Vec::new();
        let mut pos = offset;
        while pos < end {
            let i = pos / BLOCK;
            let next = ((i + 1) * BLOCK).min(end);
            let allocated = allocated(i);
            match out.last_mut() {
                Some(e) if e.allocated == allocated => e.length += next - pos,
                _ => out.push(Extent {
                    offset: pos,
                    length: next - pos,
                    allocated,
                }),
            }
            pos = next;
        }
        out
    }
}

/// A volume or snapshot attached as a disk. `Sync`: many threads may serve one session.
pub struct VolumeSession<'k> {
    kms: &'k Kms,
    store: RegionEbs,
    id: String,
    size: u64,
    mode: SessionMode,
    open: OpenLineage,
    state: Mutex<State>,
    closed: AtomicBool,
    _attached: LockGuard,
}

impl std::fmt::Debug for VolumeSession<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeSession")
            .field("id", &self.id)
            .field("size", &self.size)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// The block map as the session sees it: the last flush, and the blocks written back since.
    map: BlockMap,
    /// The hash of the map the volume record names (the last flush).
    published: String,
    /// For each index changed since the last flush, its entry in the published map.
    changed: BTreeMap<u64, Option<BlockHash>>,
    dirty: BTreeMap<u64, Dirty>,
    clean: Clean,
    pool: Pool,
    /// Encrypted blocks written since the last flush: no record names them yet.
    unpublished: HashSet<BlockHash>,
    /// Encrypted blocks this session wrote and published, that no other record is known to name.
    owned: HashSet<BlockHash>,
    /// Owned blocks a flush replaced, to remove once it is known nothing else names them.
    garbage: Vec<BlockHash>,
    /// Maps of other records already searched for owned blocks (maps never change).
    seen_maps: HashSet<String>,
    /// Shared `.gc.lock`, held while unpublished blocks exist (or are being written).
    writing: Option<LockGuard>,
    /// Blocks being sealed outside the lock ([`VolumeSession::seal_if_rewritten`]).
    in_flight: usize,
    /// Changes made so far (each dirty block notes the last one that touched it).
    changes: u64,
    /// When the oldest change not yet flushed was made.
    since: Option<Instant>,
}

impl<'k> Ebs<'k> {
    /// AttachVolume: opens a session on volume `id` (one Decrypt of its data key). Fails with
    /// `VolumeInUse` if a session has it read-write (or, for `ReadWrite`, read-only).
    pub fn attach_volume(&self, id: &str, mode: SessionMode) -> Result<VolumeSession<'k>> {
        let mut session = None;
        let result = self.kms.audited(
            Call::ec2("AttachVolume", false)
                .param("volumeId", id)
                .param("readOnly", mode == SessionMode::ReadOnly),
            |_| {
                super::check_id(id, "vol-", "volume")?;
                let lock = self.region.try_attach(id, mode == SessionMode::ReadWrite)?;
                let lock = lock.ok_or_else(|| {
                    Error::ec2(
                        Ec2Code::VolumeInUse,
                        format!(
                            "{id} is attached{}; detach it first (stop the `cofre volume attach` \
                             serving it)",
                            if mode == SessionMode::ReadWrite {
                                ""
                            } else {
                                " read-write"
                            }
                        ),
                    )
                })?;
                let r = self.volume_record(id)?;
                session = Some(self.session(id, r.size_bytes, &r.lineage, &r.map, mode, lock)?);
                Ok(())
            },
        );
        attached(result, session)
    }

    /// Attaches snapshot `id`, read-only (cofre's own `AttachSnapshot`); `snapshot delete`
    /// fails with `InvalidSnapshot.InUse` until it is detached.
    pub fn attach_snapshot(&self, id: &str) -> Result<VolumeSession<'k>> {
        let mut session = None;
        let result = self.kms.audited(
            Call::ec2("AttachSnapshot", false).param("snapshotId", id),
            |_| {
                super::check_id(id, "snap-", "snapshot")?;
                let lock = self.region.try_attach(id, false)?.ok_or_else(|| {
                    Error::ec2(
                        Ec2Code::InvalidSnapshotInUse,
                        format!("{id} is being deleted; try again"),
                    )
                })?;
                let r = self.snapshot_record(id)?;
                r.check_completed()?;
                session = Some(self.session(
                    id,
                    r.volume_size_bytes,
                    &r.lineage,
                    &r.map,
                    SessionMode::ReadOnly,
                    lock,
                )?);
                Ok(())
            },
        );
        attached(result, session)
    }

    fn session(
        &self,
        id: &str,
        size: u64,
        lineage: &super::Lineage,
        map_hash: &str,
        mode: SessionMode,
        lock: LockGuard,
    ) -> Result<VolumeSession<'k>> {
        let map = self.region.load_map(map_hash)?;
        let open = self.open_lineage(lineage)?;
        Ok(VolumeSession {
            kms: self.kms,
            store: RegionEbs::open(self.kms)?,
            id: id.to_owned(),
            size,
            mode,
            open,
            state: Mutex::new(State {
                map,
                published: map_hash.to_owned(),
                ..State::default()
            }),
            closed: AtomicBool::new(false),
            _attached: lock,
        })
    }
}

/// The session an attach request made, if the request (and its record) succeeded. A session
/// whose attach could not be recorded is dropped without a detach.
fn attached<'k>(
    result: Result<()>,
    session: Option<VolumeSession<'k>>,
) -> Result<VolumeSession<'k>> {
    match result {
        Ok(()) => Ok(session.expect("made by a successful attach")),
        Err(e) => {
            if let Some(s) = session {
                s.closed.store(true, Ordering::SeqCst);
            }
            Err(e)
        }
    }
}

impl VolumeSession<'_> {
    /// The volume (or snapshot) id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// True for a read-only session.
    pub fn read_only(&self) -> bool {
        self.mode == SessionMode::ReadOnly
    }

    /// True if the volume is encrypted.
    pub fn encrypted(&self) -> bool {
        self.open.cipher.is_some()
    }

    fn state(&self) -> Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| Error::Io {
            what: format!("the session of {}", self.id),
            source: std::io::Error::other("a request failed mid-way; detach and attach again"),
        })
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<()> {
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(Error::usage(format!(
                "bytes {offset}..{} are past the end of {} ({} bytes)",
                offset.saturating_add(len),
                self.id,
                self.size
            )));
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only() {
            return Err(Error::ec2(
                Ec2Code::IncorrectState,
                format!("{} is attached read-only", self.id),
            ));
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `offset`.
    /// Reads `buf.len()` bytes at `offset`.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len() as u64)?;
        for (i, start, range) in pieces(offset, buf.len()) {
            self.read_piece(i, start, &mut buf[range])?;
        }
        Ok(())
    }

    fn read_piece(&self, i: u64, start: usize, out: &mut [u8]) -> Result<()> {
        loop {
            let mut st = self.state()?;
            let entry = st.map.blocks.get(&i).copied();
            if let Some(d) = st.dirty.get(&i) {
                if d.holds(start, out.len()) {
                    out.copy_from_slice(&plain(&d.buf)[start..start + out.len()]);
                    return Ok(());
                }
                // A partial block has a stored base.
                let h = entry.expect("a partial block's stored block");
                match st.clean.get(i, &h) {
                    Some(base) => {
                        let d = st.dirty.get(&i).expect("present");
                        d.read_with(start, plain(&base), out);
                        return Ok(());
                    }
                    None => {
                        drop(st);
                        self.warm(i, h)?;
                        continue;
                    }
                }
            }
            let Some(h) = entry else {
                out.fill(0);
                return Ok(());
            };
            if let Some(p) = st.clean.get(i, &h) {
                drop(st);
                out.copy_from_slice(&plain(&p)[start..start + out.len()]);
                return Ok(());
            }
            drop(st);
            if out.len() == BLOCK_SIZE {
                // A whole block, read once: opened straight into the caller's buffer.
                let mut stored = Vec::with_capacity(super::block::SEALED_BLOCK_LEN);
                match read_block(
                    &self.store.blocks,
                    &self.open,
                    i,
                    Some(&h),
                    &mut stored,
                    out,
                ) {
                    Err(_) if self.replaced(i, &h)? => continue,
                    r => return r,
                }
            }
            let Some(p) = self.warm(i, h)? else {
                continue;
            };
            out.copy_from_slice(&plain(&p)[start..start + out.len()]);
            return Ok(());
        }
    }

    /// True if the session's map no longer names `h` at `i`: a write replaced the block while
    /// it was being read (and may have removed it), so the read starts again.
    fn replaced(&self, i: u64, h: &BlockHash) -> Result<bool> {
        Ok(self.state()?.map.blocks.get(&i) != Some(h))
    }

    /// Opens stored block `h` at index `i` into the read cache; `None` if a write replaced it
    /// meanwhile (the caller starts again).
    fn warm(&self, i: u64, h: BlockHash) -> Result<Option<Opened>> {
        let mut buf = self.state()?.pool.take();
        let mut stored = Vec::with_capacity(super::block::SEALED_BLOCK_LEN);
        let opened = read_block(
            &self.store.blocks,
            &self.open,
            i,
            Some(&h),
            &mut stored,
            plain_mut(&mut buf),
        );
        let mut st = self.state()?;
        let current = st.map.blocks.get(&i) == Some(&h);
        if let Err(e) = opened {
            st.pool.give(buf);
            return if current { Err(e) } else { Ok(None) };
        }
        let p = Arc::new(buf);
        // Cached only while the map still names that block.
        if current {
            let State { clean, pool, .. } = &mut *st;
            clean.put(i, h, p.clone(), pool);
        }
        Ok(Some(p))
    }

    /// Writes `data` at `offset`; with `fua`, flushes before returning.
    pub fn write_at(&self, offset: u64, data: &[u8], fua: bool) -> Result<()> {
        self.check_writable()?;
        self.check_range(offset, data.len() as u64)?;
        for (i, start, range) in pieces(offset, data.len()) {
            let len = range.len();
            self.change(i, start, len, false, |b| b.copy_from_slice(&data[range]))?;
        }
        if fua {
            self.flush()?;
        }
        Ok(())
    }

    /// Makes `len` bytes at `offset` read as zeros. Whole blocks become holes, unless
    /// `no_hole`: then they are stored, as sealed zeros.
    pub fn write_zeroes(&self, offset: u64, len: u64, no_hole: bool, fua: bool) -> Result<()> {
        self.check_writable()?;
        self.check_range(offset, len)?;
        let mut pos = offset;
        let end = offset + len;
        while pos < end {
            let i = pos / BLOCK;
            let start = (pos % BLOCK) as usize;
            let take = (end - pos).min(BLOCK - start as u64) as usize;
            if take == BLOCK_SIZE && !no_hole {
                let mut st = self.state()?;
                if let Some(d) = st.dirty.remove(&i) {
                    st.pool.give(d.buf);
                }
                self.set_entry(&mut st, i, None);
            } else if no_hole || self.holds_data(i)? {
                self.change(i, start, take, no_hole, |b| b.fill(0))?;
            }
            pos += take as u64;
        }
        if fua {
            self.flush()?;
        }
        Ok(())
    }

    /// TRIM: the range is no longer needed. Whole blocks become holes and parts of blocks read
    /// as zeros afterwards.
    pub fn trim(&self, offset: u64, len: u64, fua: bool) -> Result<()> {
        self.write_zeroes(offset, len, false, fua)
    }

    fn holds_data(&self, i: u64) -> Result<bool> {
        let st = self.state()?;
        Ok(st.dirty.contains_key(&i) || st.map.blocks.contains_key(&i))
    }

    /// Applies `f` to `len` bytes at `start` of block `i` in the dirty cache. The stored block
    /// is opened first only if the change is not aligned to sectors (see [`super::cache`]). A
    /// block this change finishes writing anew is sealed at once, by this thread.
    fn change(
        &self,
        i: u64,
        start: usize,
        len: usize,
        keep: bool,
        f: impl FnOnce(&mut [u8]),
    ) -> Result<()> {
        let aligned = aligned(start, len);
        loop {
            let mut st = self.state()?;
            let entry = st.map.blocks.get(&i).copied();
            st.changes += 1;
            let version = st.changes;
            if let Some(d) = st.dirty.get_mut(&i) {
                if aligned || !d.partial {
                    d.change(start, len, version, f);
                    d.keep |= keep;
                    return self.seal_if_rewritten(st, i);
                }
                // Unaligned, on a partial block: make it whole first.
                let h = entry.expect("a partial block's stored block");
                match st.clean.get(i, &h) {
                    Some(base) => st
                        .dirty
                        .get_mut(&i)
                        .expect("present")
                        .complete(plain(&base)),
                    None => {
                        drop(st);
                        self.warm(i, h)?;
                    }
                }
                continue;
            }
            let mut buf = st.pool.take();
            let partial = match entry {
                None => {
                    plain_mut(&mut buf).fill(0);
                    false
                }
                Some(_) if start == 0 && len == BLOCK_SIZE => false,
                Some(_) if aligned => true,
                Some(h) => match st.clean.get(i, &h) {
                    Some(base) => {
                        plain_mut(&mut buf).copy_from_slice(plain(&base));
                        false
                    }
                    None => {
                        st.pool.give(buf);
                        drop(st);
                        self.warm(i, h)?;
                        continue;
                    }
                },
            };
            let mut d = Dirty::new(buf, keep, partial);
            d.change(start, len, version, f);
            st.dirty.insert(i, d);
            st.since.get_or_insert_with(Instant::now);
            if st.dirty.len() > DIRTY_LIMIT {
                self.write_back(&mut st)?;
                return Ok(());
            }
            return self.seal_if_rewritten(st, i);
        }
    }

    /// Seals dirty block `i` now, outside the lock, if every sector of it was written anew
    /// (a writer moving on: it is unlikely to change again soon). A change made meanwhile
    /// wins: the sealed copy is dropped and the block stays dirty. Failing here is not the
    /// write's failure: the block stays dirty and the next write-back reports it.
    fn seal_if_rewritten(&self, mut st: MutexGuard<'_, State>, i: u64) -> Result<()> {
        let Some(d) = st.dirty.get(&i).filter(|d| d.rewritten()) else {
            return Ok(());
        };
        let (version, keep) = (d.version, d.keep);
        let mut copy = st.pool.take();
        plain_mut(&mut copy).copy_from_slice(plain(&st.dirty[&i].buf));
        if st.writing.is_none() {
            st.writing = Some(self.store.writing()?);
        }
        st.in_flight += 1;
        drop(st);
        let sealed = self.seal(i, &mut copy, keep);
        let mut st = self.state()?;
        st.in_flight -= 1;
        st.pool.give(copy);
        // A flush that ran meanwhile left `.gc.lock` to the last block in flight.
        if st.in_flight == 0 && st.changed.is_empty() {
            st.writing = None;
        }
        let Ok(h) = sealed else {
            return Ok(());
        };
        if st.dirty.get(&i).is_some_and(|d| d.version == version) {
            let d = st.dirty.remove(&i).expect("present");
            st.pool.give(d.buf);
            self.set_entry(&mut st, i, h);
        } else if let (Some(h), Some(_)) = (h, &self.open.cipher) {
            // Outdated before it was named: nothing names it, nothing else can hold it.
            let _ = self.store.blocks.remove(&h);
        }
        Ok(())
    }

    /// Seals block `i` (the plaintext in `buf`) in place and stores it; `None` for a block of
    /// zeros, which is not stored (unless `keep`).
    fn seal(&self, i: u64, buf: &mut Buf, keep: bool) -> Result<Option<BlockHash>> {
        if !keep && is_zero(plain(buf)) {
            return Ok(None);
        }
        let blocks = &self.store.blocks;
        let (h, _) = match &self.open.cipher {
            Some(c) => {
                c.seal_stored(i, buf);
                blocks.put(buf)?
            }
            None => blocks.put(plain(buf))?,
        };
        Ok(Some(h))
    }

    /// Seals every dirty block, in place, into a new stored block and points the session's map
    /// at it. On an error the dirty blocks are opened again and stay, and nothing changes.
    fn write_back(&self, st: &mut State) -> Result<()> {
        if st.dirty.is_empty() {
            return Ok(());
        }
        if st.writing.is_none() {
            st.writing = Some(self.store.writing()?);
        }
        st.since.get_or_insert_with(Instant::now);
        let blocks = &self.store.blocks;
        let State { dirty, map, .. } = &mut *st;
        let sealed = dirty
            .par_iter_mut()
            .map(|(&i, d)| -> Result<(u64, Option<BlockHash>)> {
                if d.partial {
                    let h = map.blocks.get(&i).expect("a partial block's stored block");
                    let mut base = new_buf();
                    let mut stored = Vec::with_capacity(super::block::SEALED_BLOCK_LEN);
                    read_block(
                        blocks,
                        &self.open,
                        i,
                        Some(h),
                        &mut stored,
                        plain_mut(&mut base),
                    )?;
                    d.complete(plain(&base));
                }
                Ok((i, self.seal(i, &mut d.buf, d.keep)?))
            })
            .collect::<Vec<_>>();
        if let Some(at) = sealed.iter().position(Result::is_err) {
            let e = sealed
                .into_iter()
                .nth(at)
                .expect("present")
                .expect_err("an error");
            if let Some(c) = &self.open.cipher {
                for (&i, d) in dirty.iter_mut() {
                    if d.buf.len() == super::block::SEALED_BLOCK_LEN {
                        let mut back = new_buf();
                        c.open(i, &d.buf, plain_mut(&mut back))
                            .expect("a block sealed here opens");
                        d.buf = back;
                    }
                }
            }
            return Err(e);
        }
        let done = std::mem::take(dirty);
        for r in sealed {
            let (i, h) = r.expect("no error");
            self.set_entry(st, i, h);
        }
        for d in done.into_values() {
            st.pool.give(d.buf);
        }
        Ok(())
    }

    /// Points index `i` of the session's map at `new` (None: a hole).
    fn set_entry(&self, st: &mut State, i: u64, new: Option<BlockHash>) {
        let old = match new {
            Some(h) => st.map.blocks.insert(i, h),
            None => st.map.blocks.remove(&i),
        };
        let State { clean, pool, .. } = &mut *st;
        clean.forget(i, pool);
        if old == new {
            return;
        }
        st.changed.entry(i).or_insert(old);
        st.since.get_or_insert_with(Instant::now);
        if let Some(o) = old {
            // A block written since the last flush and replaced before the next: nothing
            // names it, and (sealed under a random salt) nothing else can hold it.
            if st.unpublished.remove(&o) {
                let _ = self.store.blocks.remove(&o);
            }
        }
        if let (Some(h), Some(_)) = (new, &self.open.cipher) {
            st.unpublished.insert(h);
        }
    }

    /// Makes every completed write durable and switches the volume to it: the dirty blocks
    /// are sealed, the new map stored, the filesystem synced and the volume record switched, in
    /// one replacement of the head. Nothing to do for a read-only session or with no change.
    pub fn flush(&self) -> Result<()> {
        if self.read_only() {
            return Ok(());
        }
        let mut st = self.state()?;
        self.flush_locked(&mut st)
    }

    /// Flushes if the oldest change not yet flushed is older than `after`; true if it did.
    pub fn flush_if_idle(&self, after: Duration) -> Result<bool> {
        if self.read_only() {
            return Ok(false);
        }
        let mut st = self.state()?;
        if st.since.is_none_or(|t| t.elapsed() < after) {
            return Ok(false);
        }
        self.flush_locked(&mut st).map(|()| true)
    }

    fn flush_locked(&self, st: &mut State) -> Result<()> {
        self.write_back(st)?;
        if !st.changed.is_empty() {
            let hash = self.store.save_map(&st.map)?;
            let (id, published) = (&self.id, &st.published);
            self.store.update(|head| {
                let v = head
                    .volumes
                    .get_mut(id)
                    .ok_or_else(|| not_found("volume", id, self.kms.region()))?;
                if &v.map != published {
                    return Err(Error::StoreCorrupt(format!(
                        "{id} was changed by another writer while attached"
                    )));
                }
                v.map = hash.clone();
                Ok(())
            })?;
            st.published = hash;
            let replaced: Vec<BlockHash> = std::mem::take(&mut st.changed)
                .into_iter()
                .filter_map(|(i, old)| old.filter(|o| st.map.blocks.get(&i) != Some(o)))
                .filter(|o| st.owned.contains(o))
                .collect();
            st.garbage.extend(replaced);
            let written = std::mem::take(&mut st.unpublished);
            st.owned.extend(written);
        }
        st.since = None;
        // A block being sealed outside the lock is not named yet: gc must wait for it too.
        if st.in_flight == 0 {
            st.writing = None;
        }
        self.reclaim(st);
        Ok(())
    }

    /// Removes the blocks this session wrote that a flush replaced, when `.gc.lock` is free and
    /// no other record names them. Best effort: what stays is `cofre gc`'s.
    fn reclaim(&self, st: &mut State) {
        if st.garbage.is_empty() {
            return;
        }
        let Ok(Some(_removing)) = crate::store::try_lock(&self.store.dir.join(".gc.lock")) else {
            return;
        };
        let Ok(head) = self.store.load_head() else {
            return;
        };
        let others = head
            .volumes
            .values()
            .filter(|v| v.volume_id != self.id)
            .map(|v| &v.map)
            .chain(head.snapshots.values().map(|s| &s.map));
        for m in others {
            if st.seen_maps.contains(m) {
                continue;
            }
            let Ok(map) = self.store.load_map(m) else {
                return;
            };
            for h in map.blocks.values() {
                // Named by another record: never this session's to remove.
                st.owned.remove(h);
            }
            st.seen_maps.insert(m.clone());
        }
        for g in std::mem::take(&mut st.garbage) {
            if st.owned.remove(&g) {
                let _ = self.store.blocks.remove(&g);
            }
        }
    }

    /// Which parts of `len` bytes at `offset` hold data and which are holes, in runs (at most
    /// the volume's end; consecutive runs differ).
    pub fn block_status(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        self.check_range(offset, len)?;
        let st = self.state()?;
        Ok(Extent::runs(offset, len, |i| {
            st.dirty.contains_key(&i) || st.map.blocks.contains_key(&i)
        }))
    }

    /// Flushes, collects the garbage of a read-write session (`cofre gc`), and records the
    /// detach (`DetachVolume`; cofre's `DetachSnapshot` for a snapshot).
    pub fn close(self) -> Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        self.detach()
    }

    fn detach(&self) -> Result<()> {
        let call = if self.id.starts_with("snap-") {
            Call::ec2("DetachSnapshot", false).param("snapshotId", &self.id)
        } else {
            Call::ec2("DetachVolume", false).param("volumeId", &self.id)
        };
        self.kms.audited(call, |_| {
            if self.read_only() {
                return Ok(());
            }
            self.flush()?;
            let ebs = Ebs::new(self.kms)?;
            let _removing = self.store.removing()?;
            ebs.collect_garbage().map(drop)
        })
    }
}

impl Drop for VolumeSession<'_> {
    /// A session dropped without [`VolumeSession::close`] (an error path) still flushes and
    /// records its detach, as best it can.
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let _ = self.detach();
        }
    }
}

/// The blocks `len` bytes at `offset` touch: (block index, start in the block, range of the
/// caller's buffer).
fn pieces(offset: u64, len: usize) -> impl Iterator<Item = (u64, usize, std::ops::Range<usize>)> {
    let mut done = 0usize;
    std::iter::from_fn(move || {
        if done >= len {
            return None;
        }
        let pos = offset + done as u64;
        let start = (pos % BLOCK) as usize;
        let take = (len - done).min(BLOCK_SIZE - start);
        let item = (pos / BLOCK, start, done..done + take);
        done += take;
        Some(item)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_split_at_block_boundaries() {
        let p: Vec<_> = pieces(BLOCK - 10, 20 + BLOCK_SIZE).collect();
        assert_eq!(
            p,
            vec![
                (0, BLOCK_SIZE - 10, 0..10),
                (1, 0, 10..10 + BLOCK_SIZE),
                (2, 0, 10 + BLOCK_SIZE..20 + BLOCK_SIZE)
            ]
        );
        assert_eq!(pieces(5, 0).count(), 0);
    }
}
