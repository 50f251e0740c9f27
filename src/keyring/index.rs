//! A region's indexes: what finds the keys that need upkeep, and the key that holds a public
//! key, without reading every key record. A request costs the same with one key in the region
//! or 100,000.
//!
//! ```text
//! <region>/index/
//!   version            "1" once built; a region from before the index is indexed by one scan
//!   next-due           Unix seconds of the earliest entry in due/ ("-" when there is none)
//!   due/<key-id>       Unix seconds when the key next needs upkeep (rotation, deletion, expiry)
//!   linked/<key-id>    a multi-Region key whose relation is checked on every upkeep
//!   pubkey/<sha256>    the id of the key whose public key has that SHA-256 fingerprint
//! ```
//!
//! Every change happens under the region lock, with the key record it describes. A due time is
//! written before the record and made exact after it, so a crash between the two leaves an
//! entry that is early, never late: an early entry costs one look at the key, a late one would
//! miss a rotation. Upkeep makes every entry it looks at exact again, and lowers or raises
//! `next-due` to the earliest entry left.

use super::KeyRecord;
use crate::error::{Error, Result};
use crate::store;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const VERSION: &[u8] = b"1";
/// `next-due` when nothing is scheduled.
const NONE: &[u8] = b"-";

/// The index folder of one region.
pub(super) struct Index {
    dir: PathBuf,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn time(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Reads a file holding Unix seconds; `None` if it does not exist.
fn read_secs(path: &Path) -> Result<Option<Option<u64>>> {
    match std::fs::read(path) {
        Ok(b) if b == NONE => Ok(Some(None)),
        Ok(b) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(|s| Some(Some(s)))
            .ok_or_else(|| Error::Damaged(format!("{} (not a time)", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", path, e)),
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    store::write_atomic(path, bytes, 0o600)
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", path, e)),
    }
}

/// The keys upkeep must look at now.
#[derive(Debug, Default)]
pub struct Upkeep {
    /// Keys whose due time has come.
    pub due: Vec<String>,
    /// Multi-Region keys, checked against their primary or replicas every time.
    pub linked: Vec<String>,
    /// `next-due` was missing: upkeep writes it again.
    pub stale: bool,
}

impl Upkeep {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty() && self.linked.is_empty() && !self.stale
    }
}

impl Index {
    pub(super) fn new(region_dir: &Path) -> Index {
        Index {
            dir: region_dir.join("index"),
        }
    }

    fn due_path(&self, key_id: &str) -> PathBuf {
        self.dir.join("due").join(key_id)
    }

    fn linked_path(&self, key_id: &str) -> PathBuf {
        self.dir.join("linked").join(key_id)
    }

    fn pubkey_path(&self, fingerprint: &[u8; 32]) -> PathBuf {
        self.dir.join("pubkey").join(hex::encode(fingerprint))
    }

    /// Whether the index has been built for this region.
    pub(super) fn is_built(&self) -> Result<bool> {
        let path = self.dir.join("version");
        match std::fs::read(&path) {
            Ok(v) if v == VERSION => Ok(true),
            Ok(_) => Err(Error::Damaged(format!(
                "{} (an index version this cofre does not know)",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("reading", &path, e)),
        }
    }

    /// Builds the index from every record (the region lock held): once per region, for a
    /// region written before the index existed.
    pub(super) fn build(&self, records: &[KeyRecord]) -> Result<()> {
        for d in ["due", "linked", "pubkey"] {
            store::create_dir(&self.dir.join(d))?;
        }
        for r in records {
            self.after_save(r)?;
        }
        self.reset_next_due()?;
        write(&self.dir.join("version"), VERSION)
    }

    /// Before a record is saved: its due time, if earlier than the one listed, is listed
    /// already (see the module doc).
    pub(super) fn before_save(&self, record: &KeyRecord) -> Result<()> {
        let Some(due) = record.upkeep_due().map(secs) else {
            return Ok(());
        };
        let path = self.due_path(&record.key_metadata.key_id);
        if read_secs(&path)?
            .flatten()
            .is_some_and(|listed| listed <= due)
        {
            return Ok(());
        }
        store::create_dir(&self.dir.join("due"))?;
        write(&path, due.to_string().as_bytes())?;
        self.lower_next_due(due)
    }

    /// After a record is saved: its entries say exactly what the record says.
    pub(super) fn after_save(&self, record: &KeyRecord) -> Result<()> {
        let id = &record.key_metadata.key_id;
        let path = self.due_path(id);
        match record.upkeep_due().map(secs) {
            Some(due) => {
                if read_secs(&path)?.flatten() != Some(due) {
                    store::create_dir(&self.dir.join("due"))?;
                    write(&path, due.to_string().as_bytes())?;
                    self.lower_next_due(due)?;
                }
            }
            None => remove(&path)?,
        }
        let linked = self.linked_path(id);
        if record.is_linked() {
            if !linked.exists() {
                store::create_dir(&self.dir.join("linked"))?;
                write(&linked, b"")?;
            }
        } else {
            remove(&linked)?;
        }
        if let Some(fp) = record.public_key_fingerprint() {
            let path = self.pubkey_path(&fp);
            if !path.exists() {
                store::create_dir(&self.dir.join("pubkey"))?;
                write(&path, id.as_bytes())?;
            }
        }
        Ok(())
    }

    /// After a record is removed: no entry names it.
    pub(super) fn forget(&self, record: &KeyRecord) -> Result<()> {
        let id = &record.key_metadata.key_id;
        remove(&self.due_path(id))?;
        remove(&self.linked_path(id))?;
        if let Some(fp) = record.public_key_fingerprint() {
            remove(&self.pubkey_path(&fp))?;
        }
        Ok(())
    }

    fn lower_next_due(&self, due: u64) -> Result<()> {
        let path = self.dir.join("next-due");
        match read_secs(&path)? {
            Some(Some(next)) if next <= due => Ok(()),
            _ => write(&path, due.to_string().as_bytes()),
        }
    }

    /// Sets `next-due` to the earliest entry of due/ (the region lock held).
    pub(super) fn reset_next_due(&self) -> Result<()> {
        let mut earliest: Option<u64> = None;
        for (_, due) in self.entries()? {
            earliest = Some(earliest.map_or(due, |e| e.min(due)));
        }
        let path = self.dir.join("next-due");
        match earliest {
            Some(t) => write(&path, t.to_string().as_bytes()),
            None => write(&path, NONE),
        }
    }

    fn entries(&self) -> Result<Vec<(String, u64)>> {
        let dir = self.dir.join("due");
        let mut out = Vec::new();
        for id in list(&dir)? {
            if let Some(Some(t)) = read_secs(&dir.join(&id))? {
                out.push((id, t));
            }
        }
        Ok(out)
    }

    /// The keys upkeep must look at `now`: one small read when nothing is due and no key is
    /// multi-Region.
    pub(super) fn upkeep(&self, now: SystemTime) -> Result<Upkeep> {
        let linked = list(&self.dir.join("linked"))?;
        // A missing `next-due` (lost, or removed by hand) is unknown, not "never": the entries
        // are read, and upkeep writes it again.
        let next = read_secs(&self.dir.join("next-due"))?;
        let stale = next.is_none();
        let due = if stale || next.flatten().is_some_and(|t| time(t) <= now) {
            self.entries()?
                .into_iter()
                .filter(|(_, t)| time(*t) <= now)
                .map(|(id, _)| id)
                .collect()
        } else {
            Vec::new()
        };
        Ok(Upkeep { due, linked, stale })
    }

    /// The id of the key whose public key has SHA-256 `fingerprint`, if one in this region has.
    pub(super) fn key_with_fingerprint(&self, fingerprint: &[u8; 32]) -> Result<Option<String>> {
        let path = self.pubkey_path(fingerprint);
        match std::fs::read(&path) {
            Ok(id) => String::from_utf8(id)
                .map(Some)
                .map_err(|_| Error::Damaged(path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", &path, e)),
        }
    }
}

/// The names in a folder (none if it does not exist), skipping cofre's temporaries.
fn list(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing", dir, e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(|e| Error::io("listing", dir, e))?;
        if let Some(name) = e.file_name().to_str() {
            if !name.starts_with('.') {
                out.push(name.to_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CreateKeyRequest, Home, KeyRef, Kms, Region, RequestContext};

    const DAY: Duration = Duration::from_secs(86_400);

    fn kms(dir: &Path) -> Kms {
        let home = Home::open(&dir.join("home"), Some("111122223333")).unwrap();
        let ctx = RequestContext::account_root(home.account_id());
        Kms::new(home, Region::new("us-east-1").unwrap(), ctx)
    }

    fn new_key(kms: &Kms) -> KeyRef {
        kms.create_key(&CreateKeyRequest::default())
            .unwrap()
            .key_id
            .parse()
            .unwrap()
    }

    fn ids(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    #[test]
    fn due_keys_are_found_without_a_scan_and_an_old_region_is_indexed_once() {
        let dir = tempfile::tempdir().unwrap();
        let kms = kms(dir.path());
        let keys: Vec<KeyRef> = (0..5).map(|_| new_key(&kms)).collect();
        kms.enable_key_rotation(&keys[1], Some(90)).unwrap();
        kms.enable_key_rotation(&keys[3], Some(180)).unwrap();
        let store = kms.home().region(kms.region()).unwrap();
        let now = SystemTime::now();
        assert!(store.upkeep(now).unwrap().is_empty());
        let id = |k: &KeyRef| k.to_string();
        assert_eq!(
            ids(&store.upkeep(now + 91 * DAY).unwrap().due),
            [id(&keys[1])]
        );
        let mut both = vec![id(&keys[1]), id(&keys[3])];
        both.sort();
        assert_eq!(store.upkeep(now + 181 * DAY).unwrap().due, both);
        // A region from before the index (no index folder) is indexed from its records once.
        let index_dir = dir.path().join("home/regions/us-east-1/index");
        std::fs::remove_dir_all(&index_dir).unwrap();
        assert!(store.upkeep(now).unwrap().is_empty());
        assert_eq!(store.upkeep(now + 181 * DAY).unwrap().due, both);
        assert!(index_dir.join("version").exists());
        // A lost `next-due` is unknown, not "never": the entries are read and it is written
        // again by the next upkeep.
        std::fs::remove_file(index_dir.join("next-due")).unwrap();
        let u = store.upkeep(now + 181 * DAY).unwrap();
        assert!(u.stale && !u.is_empty());
        assert_eq!(u.due, both);
        // The next endpoint's first request writes it again (nothing is due yet).
        self::kms(dir.path()).describe_key(&keys[0]).unwrap();
        assert!(index_dir.join("next-due").exists());
        assert!(!store.upkeep(now).unwrap().stale);
        // Turning rotation off takes the key out.
        kms.disable_key_rotation(&keys[1]).unwrap();
        assert_eq!(
            ids(&store.upkeep(now + 181 * DAY).unwrap().due),
            [id(&keys[3])]
        );
    }

    #[test]
    fn an_entry_left_early_by_a_crash_costs_one_look_and_is_made_exact() {
        let dir = tempfile::tempdir().unwrap();
        let kms = kms(dir.path());
        let key = new_key(&kms);
        let store = kms.home().region(kms.region()).unwrap();
        let mut record = store.load_key(&key.to_string()).unwrap().unwrap();
        // A crash after the index listed a due time but before the record was written: the
        // record has no rotation, the index an entry for tomorrow.
        record.rotation.enabled = true;
        record.rotation.next_rotation_date = Some(store::format_time(SystemTime::now() + DAY));
        let index = Index::new(&dir.path().join("home/regions/us-east-1"));
        index.before_save(&record).unwrap();
        let later = SystemTime::now() + 2 * DAY;
        assert_eq!(ids(&store.upkeep(later).unwrap().due), [key.to_string()]);
        // Upkeep looks at the key, finds nothing to do, and drops the entry.
        let _lock = store.lock().unwrap();
        let saved = store.load_key(&key.to_string()).unwrap().unwrap();
        assert!(saved.upkeep_due().is_none());
        store.reindex(&saved).unwrap();
        store.upkeep_done().unwrap();
        assert!(store.upkeep(later).unwrap().is_empty());
        assert_eq!(std::fs::read(index.dir.join("next-due")).unwrap(), NONE);
    }

    #[test]
    fn a_due_time_written_before_its_record_is_never_late() {
        let dir = tempfile::tempdir().unwrap();
        let kms = kms(dir.path());
        let key = new_key(&kms);
        kms.enable_key_rotation(&key, Some(90)).unwrap();
        let store = kms.home().region(kms.region()).unwrap();
        let mut record = store.load_key(&key.to_string()).unwrap().unwrap();
        let index = Index::new(&dir.path().join("home/regions/us-east-1"));
        let listed = read_secs(&index.due_path(&key.to_string()))
            .unwrap()
            .flatten();
        // Moving the rotation later: before the record is saved, the entry keeps the earlier
        // time (a crash now leaves it early, never late).
        record.rotation.next_rotation_date =
            Some(store::format_time(SystemTime::now() + 200 * DAY));
        index.before_save(&record).unwrap();
        assert_eq!(
            read_secs(&index.due_path(&key.to_string()))
                .unwrap()
                .flatten(),
            listed
        );
        index.after_save(&record).unwrap();
        let exact = record.upkeep_due().map(secs);
        assert_eq!(
            read_secs(&index.due_path(&key.to_string()))
                .unwrap()
                .flatten(),
            exact
        );
    }
}
