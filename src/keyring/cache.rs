//! What a long-lived process (a server) keeps between requests, so that a request costs a
//! `stat` where it would read and parse files: key records as last read, the regions whose
//! folders exist, and when each region's upkeep last ran.
//!
//! Another process (the CLI beside a server) may change any file at any time, so a cached
//! record is used only while its file still looks as it did when read ([`FileStamp`]: inode,
//! size, modification and change times); this process's own writes replace their entries
//! directly. A one-shot CLI process reads each record once anyway: the cache costs it nothing.
//!
//! It also keeps, for a minute, data keys a service opened for a caller (the EBS direct APIs:
//! one Decrypt per caller and snapshot, not one per block), as EBS keeps an attached volume's
//! data key; see [`OPENED_KEY_TTL`].

use super::KeyRecord;
use crate::crypto::SecretKey;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// How long a region's upkeep (due rotations and deletions) is taken as done: requests within
/// it skip the index reads. Rotations and deletions come due in days; a second late is nothing.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The most key records kept; past it the cache starts over (a region may hold 100,000 keys).
const MAX_RECORDS: usize = 16_384;

/// How long a data key opened for a caller is used again by the same caller without another
/// Decrypt (each use still checks that the KMS key is enabled): a policy or grant change reaches
/// such a caller at most this late.
pub const OPENED_KEY_TTL: Duration = Duration::from_secs(60);

/// The most opened data keys kept; past it the expired ones go, then all.
const MAX_OPENED: usize = 1024;

/// What a file looked like: inode, size, modification and change times (seconds, nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp([i64; 6]);

impl FileStamp {
    /// The stamp of `path`; None if it does not exist.
    pub fn of(path: &Path) -> std::io::Result<Option<FileStamp>> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(path) {
            Ok(m) => Ok(Some(FileStamp([
                m.ino() as i64,
                m.len() as i64,
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            ]))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[derive(Default)]
pub(super) struct Caches {
    records: Mutex<HashMap<PathBuf, (FileStamp, Arc<KeyRecord>)>>,
    regions: Mutex<HashSet<PathBuf>>,
    upkept: Mutex<HashMap<String, SystemTime>>,
    /// Opened data keys by the digest of who opened what (zeroized when dropped).
    opened: Mutex<HashMap<[u8; 32], (Instant, SecretKey)>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Caches {
    /// The record read from `path` when it looked like `stamp`, if that is cached.
    pub(super) fn record(&self, path: &Path, stamp: FileStamp) -> Option<KeyRecord> {
        let hit = locked(&self.records)
            .get(path)
            .filter(|(s, _)| *s == stamp)
            .map(|(_, r)| r.clone());
        hit.map(|r| (*r).clone())
    }

    /// Remembers the record of `path` as it was when the file looked like `stamp`.
    pub(super) fn keep_record(&self, path: &Path, stamp: FileStamp, record: &KeyRecord) {
        let mut records = locked(&self.records);
        if records.len() >= MAX_RECORDS && !records.contains_key(path) {
            records.clear();
        }
        records.insert(path.to_owned(), (stamp, Arc::new(record.clone())));
    }

    /// Forgets the record of `path` (this process changed or removed the file).
    pub(super) fn forget_record(&self, path: &Path) {
        locked(&self.records).remove(path);
    }

    /// True once `dir` was made by this process.
    pub(super) fn region_made(&self, dir: &Path) -> bool {
        locked(&self.regions).contains(dir)
    }

    pub(super) fn made_region(&self, dir: &Path) {
        locked(&self.regions).insert(dir.to_owned());
    }

    /// True if `region`'s upkeep ran less than [`UPKEEP_INTERVAL`] before `now`; else notes
    /// `now` as its last upkeep and returns false (the caller runs it).
    pub(super) fn upkept_recently(&self, region: &str, now: SystemTime) -> bool {
        let mut upkept = locked(&self.upkept);
        if let Some(last) = upkept.get(region) {
            if now.duration_since(*last).is_ok_and(|d| d < UPKEEP_INTERVAL) {
                return true;
            }
        }
        upkept.insert(region.to_owned(), now);
        false
    }

    /// The data key opened as `id` less than [`OPENED_KEY_TTL`] ago.
    pub(super) fn opened_key(&self, id: &[u8; 32]) -> Option<SecretKey> {
        locked(&self.opened)
            .get(id)
            .filter(|(at, _)| at.elapsed() < OPENED_KEY_TTL)
            .map(|(_, k)| k.clone())
    }

    /// Keeps the data key opened as `id`.
    pub(super) fn keep_opened_key(&self, id: [u8; 32], key: &SecretKey) {
        let mut opened = locked(&self.opened);
        if opened.len() >= MAX_OPENED {
            opened.retain(|_, (at, _)| at.elapsed() < OPENED_KEY_TTL);
            if opened.len() >= MAX_OPENED {
                opened.clear();
            }
        }
        opened.insert(id, (Instant::now(), key.clone()));
    }
}
