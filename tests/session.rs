//! Volume sessions through the library, against a model: random reads, writes (sector-aligned
//! and not), zero writes with and without NO_HOLE, trims, flushes and block status on an
//! encrypted volume must read exactly as a plain byte array would; every flush must make the
//! volume (read by another request) equal the model; the write-back of a full dirty cache,
//! partial blocks included, must lose nothing; blocks a session replaced are reclaimed as it goes
//! unless a snapshot names them; and a snapshot taken mid-session restores to the model of its
//! last flush.

use cofre::ebs::{CreateVolumeRequest, Ebs, SessionMode, VolumeSource, VolumeType, DIRTY_LIMIT};
use cofre::{Home, Kms, Region, RequestContext};
use std::path::Path;

const BLOCK: usize = 512 * 1024;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn kms(dir: &Path) -> Kms {
    let home = Home::open(&dir.join("home"), Some("111122223333")).unwrap();
    let ctx = RequestContext::account_root(home.account_id());
    Kms::new(home, Region::new("us-east-1").unwrap(), ctx)
}

fn volume(ebs: &Ebs, size: u64) -> String {
    ebs.create_volume(&CreateVolumeRequest {
        source: VolumeSource::Empty(size),
        encrypted: true,
        kms_key: None,
        volume_type: VolumeType::Gp3,
        tags: Default::default(),
        quiet: true,
    })
    .unwrap()
    .volume_id
}

/// The whole volume as another request reads it (the last flush).
fn stored(ebs: &Ebs, vol: &str, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    ebs.read_volume(vol, 0, size as u64, &mut out).unwrap();
    out
}

/// Block files in the region's store.
fn block_files(dir: &Path) -> usize {
    let blocks = dir.join("home/regions/us-east-1/ebs/blocks");
    std::fs::read_dir(blocks)
        .map(|subs| {
            subs.flatten()
                .map(|s| std::fs::read_dir(s.path()).unwrap().count())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_session_reads_as_its_model_and_flushes_exactly_it() {
    let dir = tempfile::tempdir().unwrap();
    let kms = kms(dir.path());
    let ebs = Ebs::new(&kms).unwrap();
    // Not a whole number of blocks.
    let size = 5 * BLOCK + 3 * 512 + 100;
    let vol = volume(&ebs, size as u64);
    let s = ebs.attach_volume(&vol, SessionMode::ReadWrite).unwrap();
    let mut model = vec![0u8; size];
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let mut snapshot = None;
    for step in 0..600 {
        let aligned = rng.below(2) == 0;
        let (mut off, mut len) = (rng.below(size), 1 + rng.below(BLOCK + BLOCK / 2));
        if aligned {
            off -= off % 512;
            len = len.div_ceil(512) * 512;
        }
        len = len.min(size - off);
        match rng.below(12) {
            0..=4 => {
                let data = rng.bytes(len);
                s.write_at(off as u64, &data, rng.below(20) == 0).unwrap();
                model[off..off + len].copy_from_slice(&data);
            }
            5 => {
                let no_hole = rng.below(2) == 0;
                s.write_zeroes(off as u64, len as u64, no_hole, false)
                    .unwrap();
                model[off..off + len].fill(0);
            }
            6 => {
                s.trim(off as u64, len as u64, false).unwrap();
                model[off..off + len].fill(0);
            }
            7..=9 => {
                let mut buf = vec![0xa5; len];
                s.read_at(off as u64, &mut buf).unwrap();
                assert!(
                    buf == model[off..off + len],
                    "step {step}: read {off}+{len}"
                );
            }
            10 => {
                let extents = s.block_status(off as u64, len as u64).unwrap();
                assert_eq!(extents.first().unwrap().offset, off as u64);
                assert_eq!(extents.iter().map(|e| e.length).sum::<u64>(), len as u64);
                for e in extents.iter().filter(|e| !e.allocated) {
                    let (a, b) = (e.offset as usize, (e.offset + e.length) as usize);
                    assert!(
                        model[a..b].iter().all(|&x| x == 0),
                        "step {step}: a hole holds data"
                    );
                }
            }
            _ => {
                s.flush().unwrap();
                assert!(
                    stored(&ebs, &vol, size) == model,
                    "step {step}: flushed volume"
                );
                if snapshot.is_none() && step > 200 {
                    let snap = ebs.create_snapshot(&vol, "").unwrap().snapshot_id;
                    snapshot = Some((snap, model.clone()));
                }
            }
        }
    }
    // Bad requests change nothing.
    assert!(s.write_at(size as u64 - 10, &[1; 20], false).is_err());
    assert!(s.read_at(u64::MAX - 5, &mut [0; 10]).is_err());
    s.close().unwrap();
    assert!(stored(&ebs, &vol, size) == model);
    let (snap, then) = snapshot.expect("a snapshot was taken");
    let restored = ebs
        .create_volume(&CreateVolumeRequest {
            source: VolumeSource::Snapshot {
                id: snap,
                size: None,
            },
            encrypted: true,
            kms_key: None,
            volume_type: VolumeType::Gp3,
            tags: Default::default(),
            quiet: true,
        })
        .unwrap()
        .volume_id;
    assert!(stored(&ebs, &restored, size) == then);
    let report = ebs.verify(true).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.orphans, 0);
}

#[test]
fn a_full_dirty_cache_of_partial_blocks_is_written_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let kms = kms(dir.path());
    let ebs = Ebs::new(&kms).unwrap();
    let blocks = DIRTY_LIMIT + 10;
    let size = blocks * BLOCK;
    let vol = volume(&ebs, size as u64);
    let mut rng = Rng(42);
    let mut model = rng.bytes(size);
    let s = ebs.attach_volume(&vol, SessionMode::ReadWrite).unwrap();
    s.write_at(0, &model, false).unwrap();
    s.flush().unwrap();
    // One sector in each block: every block partial, the cache overflows and is written back.
    for b in 0..blocks {
        let off = b * BLOCK + 512 * (b % 1024);
        let data = rng.bytes(512);
        s.write_at(off as u64, &data, false).unwrap();
        model[off..off + 512].copy_from_slice(&data);
    }
    let mut all = vec![0; size];
    s.read_at(0, &mut all).unwrap();
    assert!(all == model);
    s.flush().unwrap();
    assert!(stored(&ebs, &vol, size) == model);
    // Each block was sealed at most twice more; what the flushes replaced is gone already.
    assert!(
        block_files(dir.path()) <= blocks + 1,
        "{}",
        block_files(dir.path())
    );
    s.close().unwrap();
    assert_eq!(block_files(dir.path()), blocks);
}

#[test]
fn replaced_blocks_are_reclaimed_unless_a_snapshot_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let kms = kms(dir.path());
    let ebs = Ebs::new(&kms).unwrap();
    let size = 4 * BLOCK;
    let vol = volume(&ebs, size as u64);
    let s = ebs.attach_volume(&vol, SessionMode::ReadWrite).unwrap();
    for round in 0..30u8 {
        s.write_at(0, &vec![round + 1; size], false).unwrap();
        s.flush().unwrap();
        assert_eq!(block_files(dir.path()), 4, "round {round}");
    }
    let snap = ebs.create_snapshot(&vol, "").unwrap().snapshot_id;
    s.write_at(0, &vec![0xee; size], false).unwrap();
    s.flush().unwrap();
    assert_eq!(block_files(dir.path()), 8, "the snapshot keeps its 4");
    s.write_at(0, &vec![0xef; size], false).unwrap();
    s.flush().unwrap();
    assert_eq!(block_files(dir.path()), 8);
    s.close().unwrap();
    ebs.delete_snapshot(&snap).unwrap();
    assert_eq!(block_files(dir.path()), 4);
    assert_eq!(stored(&ebs, &vol, 4), [0xef; 4]);
    // A session dropped without close still flushes and detaches.
    let s = ebs.attach_volume(&vol, SessionMode::ReadWrite).unwrap();
    s.write_at(0, &[7; 4], false).unwrap();
    drop(s);
    assert_eq!(stored(&ebs, &vol, 4), [7; 4]);
    ebs.attach_volume(&vol, SessionMode::ReadWrite)
        .unwrap()
        .close()
        .unwrap();
}

/// Two writers share every block (one writes the first half of each, the other the second),
/// while a third thread flushes: blocks finished by one writer are sealed while the other
/// changes them, and the later change must win. The volume ends as the writers' last passes.
#[test]
fn concurrent_writers_to_one_block_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let kms = kms(dir.path());
    let ebs = Ebs::new(&kms).unwrap();
    let blocks = 6;
    let size = blocks * BLOCK;
    let vol = volume(&ebs, size as u64);
    let s = ebs.attach_volume(&vol, SessionMode::ReadWrite).unwrap();
    let passes = 12u8;
    let half = BLOCK / 2;
    std::thread::scope(|scope| {
        for side in 0..2usize {
            let s = &s;
            scope.spawn(move || {
                for pass in 1..=passes {
                    for b in 0..blocks {
                        let byte = pass * 2 + side as u8;
                        let off = b * BLOCK + side * half;
                        // In two requests, so the block is whole only after both.
                        for q in 0..2 {
                            let at = off + q * half / 2;
                            s.write_at(at as u64, &vec![byte; half / 2], false).unwrap();
                        }
                    }
                }
            });
        }
        let s = &s;
        scope.spawn(move || {
            for _ in 0..20 {
                s.flush().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
    });
    let mut expected = vec![0u8; size];
    for b in 0..blocks {
        expected[b * BLOCK..b * BLOCK + half].fill(passes * 2);
        expected[b * BLOCK + half..(b + 1) * BLOCK].fill(passes * 2 + 1);
    }
    let mut all = vec![0; size];
    s.read_at(0, &mut all).unwrap();
    assert!(all == expected);
    s.flush().unwrap();
    assert!(stored(&ebs, &vol, size) == expected);
    s.close().unwrap();
    assert_eq!(block_files(dir.path()), blocks, "no block left behind");
    let report = ebs.verify(true).unwrap();
    assert!(report.problems.is_empty() && report.orphans == 0);
}
