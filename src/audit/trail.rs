//! The trail file, its chain and its digests.

use super::group::{Group, Registry, MAX_BATCH};
use crate::crypto::SecretKey;
use crate::error::{Error, Result};
use crate::store;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// A digest is written once the trail has run this long since the last one.
const DIGEST_EVERY: Duration = Duration::from_secs(3600);

/// CloudTrail's `userIdentity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// `Root`, `IAMUser`, `AssumedRole`; none for KMS's own service events, which name only the
    /// account and `invokedBy: AWS Internal`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
}

/// One entry of `resources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub account_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "ARN")]
    pub arn: String,
}

/// One event, shaped like a CloudTrail KMS record, plus the chain fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event_version: String,
    pub user_identity: UserIdentity,
    pub event_time: String,
    pub event_source: String,
    pub event_name: String,
    pub aws_region: String,
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: String,
    pub user_agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    pub request_parameters: Value,
    pub response_elements: Value,
    /// What CloudTrail adds beside the request, e.g. `keyMaterialId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_event_data: Option<Value>,
    #[serde(rename = "requestID")]
    pub request_id: String,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub read_only: bool,
    pub resources: Vec<Resource>,
    pub event_type: String,
    pub management_event: bool,
    pub recipient_account_id: String,
    /// For KMS's own service events: the key they acted on (`keyId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_event_details: Option<Value>,
    pub event_category: String,
    /// Position in the trail, from 1.
    #[serde(default)]
    pub cofre_sequence: u64,
    /// The link to the previous line (hex; 64 zeros for the first): its keyed BLAKE3 under the
    /// trail's chain key when `cofre_chain` is [`KEYED_CHAIN`], its plain BLAKE3 in records
    /// written by earlier versions (no `cofreChain`).
    #[serde(default)]
    pub cofre_previous: String,
    /// Which chain `cofre_previous` uses: [`KEYED_CHAIN`], or none (earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cofre_chain: Option<String>,
}

/// The `cofreChain` of records linked by a keyed BLAKE3 under the trail's chain key.
pub const KEYED_CHAIN: &str = "keyed-blake3";

/// The high-water mark: the last record appended, sealed, replaced atomically with each batch
/// of appends, so that cutting the trail back (or emptying it) contradicts it.
/// The size of `mark.json`: its JSON padded with spaces to one sector, so that it is rewritten
/// in place by one write.
const MARK_SIZE: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mark {
    aws_region: String,
    last_sequence: u64,
    /// Keyed BLAKE3 of the last record's line under the chain key.
    last_record_mac: String,
    /// Keyed BLAKE3 of the fields above, under the chain key.
    signature: String,
}

/// A digest: what the trail held at a point, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Digest {
    aws_region: String,
    digest_end_time: String,
    last_sequence: u64,
    last_record_hash: String,
    /// File name of the previous digest, and the BLAKE3 of its bytes.
    previous_digest: Option<String>,
    previous_digest_hash: Option<String>,
    /// Keyed BLAKE3 of the fields above, under the trail's AWS owned key.
    signature: String,
}

/// The last whole line of a trail, and its record.
type LastRecord = (Vec<u8>, Event);

/// What is wrong with the end of a trail.
enum EndProblem {
    /// Its last whole line is not a record.
    NotARecord,
    /// It contradicts the high-water mark; the message says how.
    Mark(String),
}

/// The groups of appends of this process, by trail folder.
static GROUPS: OnceLock<Registry<Event, Tail>> = OnceLock::new();

/// The end of a trail as this process checked it (or wrote it) under the trail's lock.
pub(super) struct Tail {
    trail: FileState,
    /// None: there was no mark.
    mark: Option<FileState>,
    /// The last whole line and its sequence number (none: the trail was empty).
    last: Option<(Vec<u8>, u64)>,
    /// The newest digest, as last read under the lock (none: not read yet).
    digest: Option<NewestDigest>,
}

/// The newest digest as this process last read it, and the state of the digests folder then:
/// while neither changes, the folder need not be listed again.
struct NewestDigest {
    folder: Option<FileState>,
    /// None: there was no digest.
    digest: Option<SeenDigest>,
}

struct SeenDigest {
    name: String,
    file: Option<FileState>,
    /// Its `digestEndTime`.
    end: SystemTime,
    /// The BLAKE3 of its bytes, which the next digest names.
    hash: String,
}

impl Tail {
    /// True if the open trail `f` and the mark of `trail` are as they were checked.
    fn unchanged(&self, f: &File, trail: &Trail) -> Result<bool> {
        Ok(self.trail == FileState::of(f, &trail.file())?
            && self.mark == FileState::at(&trail.mark_file())?)
    }
}

/// What tells a file changed without reading it: its inode, size, and modification and
/// change times (the change time moves with every write, and no one can set it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileState {
    dev: u64,
    ino: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileState {
    fn from(m: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileState {
            dev: m.dev(),
            ino: m.ino(),
            len: m.size(),
            modified: (m.mtime(), m.mtime_nsec()),
            changed: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// The state of the open file `f` (at `path`).
    fn of(f: &File, path: &Path) -> Result<Self> {
        f.metadata()
            .map(|m| Self::from(&m))
            .map_err(|e| Error::io("reading", path, e))
    }

    /// The state of the file at `path`; none if there is none.
    fn at(path: &Path) -> Result<Option<Self>> {
        match fs::metadata(path) {
            Ok(m) => Ok(Some(Self::from(&m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", path, e)),
        }
    }
}

/// One region's trail.
pub struct Trail {
    dir: PathBuf,
    region: String,
    /// Seals the digests.
    key: SecretKey,
    /// Links each record to the one before and seals the high-water mark.
    chain_key: SecretKey,
    /// When digests come due.
    clock: store::Clock,
}

impl std::fmt::Debug for Trail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trail")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn hash_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl Trail {
    /// The trail of `region` in its folder `region_dir`: its digests sealed with `key` and its
    /// records chained with `chain_key` (two AWS owned keys, each derived for its purpose).
    pub fn new(region_dir: &Path, region: &str, key: SecretKey, chain_key: SecretKey) -> Self {
        Trail {
            dir: region_dir.join("audit"),
            region: region.to_owned(),
            key,
            chain_key,
            clock: store::Clock::System,
        }
    }

    /// The same trail, telling the time by `clock` (its home's).
    pub fn with_clock(mut self, clock: store::Clock) -> Self {
        self.clock = clock;
        self
    }

    fn mark_file(&self) -> PathBuf {
        self.dir.join("mark.json")
    }

    /// The keyed link to `line`, as the next record names it.
    fn link(&self, line: &[u8]) -> String {
        blake3::keyed_hash(self.chain_key.expose(), line)
            .to_hex()
            .to_string()
    }

    fn sign_mark(&self, m: &Mark) -> String {
        let mut unsigned = m.clone();
        unsigned.signature = String::new();
        let mut h = blake3::Hasher::new_keyed(self.chain_key.expose());
        h.update(b"cofre audit mark\0");
        h.update(&serde_json::to_vec(&unsigned).expect("serializable"));
        h.finalize().to_hex().to_string()
    }

    /// The high-water mark, if there is one; `Err` says why it cannot be trusted.
    fn read_mark(&self) -> Result<Option<std::result::Result<Mark, String>>> {
        let path = self.mark_file();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading", &path, e)),
        };
        Ok(Some(match serde_json::from_slice::<Mark>(&bytes) {
            Ok(m) if m.aws_region == self.region && self.sign_mark(&m) == m.signature => Ok(m),
            Ok(_) => Err(format!(
                "its high-water mark {} does not match its signature (edited, or not made by this home)",
                path.display()
            )),
            Err(_) => Err(format!(
                "its high-water mark {} is damaged or truncated",
                path.display()
            )),
        }))
    }

    /// Reads the end of a trail through `last_lines(n)` (its last `n` whole lines, oldest
    /// first; fewer if it has fewer) and checks it against the high-water mark `mark`: the
    /// mark names the last record or, when a crash came between a batch's lines and its mark,
    /// a record at most [`MAX_BATCH`] before it, to which the records after it are chained.
    /// Returns the last record, or what is wrong.
    fn check_end(
        &self,
        last_lines: &mut dyn FnMut(usize) -> Result<Vec<Vec<u8>>>,
        mark: Option<std::result::Result<Mark, String>>,
    ) -> Result<std::result::Result<Option<LastRecord>, EndProblem>> {
        let bad = |why: String| Ok(Err(EndProblem::Mark(why)));
        let last = match last_lines(1)?.pop() {
            None => None,
            Some(line) => match serde_json::from_slice::<Event>(&line) {
                Ok(e) => Some((line, e)),
                Err(_) => return Ok(Err(EndProblem::NotARecord)),
            },
        };
        let mark = match mark {
            None => {
                return match &last {
                    Some((_, e)) if e.cofre_chain.is_some() => bad(format!(
                        "its high-water mark {} is missing (deleted, or the audit folder was replaced)",
                        self.mark_file().display()
                    )),
                    // Empty, or written by a version before the mark: nothing to check.
                    _ => Ok(Ok(last)),
                };
            }
            Some(m) => match m {
                Ok(m) => m,
                Err(why) => return bad(why),
            },
        };
        let m = mark.last_sequence;
        let Some((line, e)) = &last else {
            // A mark of record 0 is written before a trail's first batch.
            return if m == 0 {
                Ok(Ok(None))
            } else {
                bad(format!(
                    "it is empty, but its high-water mark names record {m}: every record was removed"
                ))
            };
        };
        let end = e.cofre_sequence;
        if end == m {
            return if self.link(line) == mark.last_record_mac {
                Ok(Ok(last))
            } else {
                bad(format!(
                    "record {m} no longer matches the high-water mark: it was edited, or the trail was rewritten"
                ))
            };
        }
        if end < m {
            return bad(format!(
                "it ends at record {end}, but its high-water mark names record {m}: {} removed",
                if end + 1 == m {
                    format!("record {m} was")
                } else {
                    format!("records {}–{m} were", end + 1)
                }
            ));
        }
        let past = format!(
            "it ends at record {end}, past its high-water mark at record {m}: the mark was replaced by an older one, or an older cofre wrote to the trail"
        );
        let ahead = end - m;
        if ahead > MAX_BATCH as u64 {
            return bad(past);
        }
        // The records of a batch whose mark was lost: each chained to the one before, the
        // first to the record the mark names.
        let after = if ahead == 1 {
            vec![line.clone()]
        } else {
            last_lines(ahead as usize)?
        };
        if after.len() as u64 != ahead {
            return bad(past);
        }
        let mut link = mark.last_record_mac;
        for (seq, l) in (m + 1..).zip(&after) {
            let chained = serde_json::from_slice::<Event>(l).is_ok_and(|r| {
                r.cofre_sequence == seq
                    && r.cofre_chain.as_deref() == Some(KEYED_CHAIN)
                    && r.cofre_previous == link
            });
            if !chained {
                return bad(past);
            }
            link = self.link(l);
        }
        Ok(Ok(last))
    }

    /// Opens the trail for appending (the lock held).
    fn open(&self) -> Result<File> {
        let path = self.file();
        OpenOptions::new()
            .mode(0o600)
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("opening", &path, e))
    }

    /// Reads the end of the open trail `f` (the lock held): its last whole record (a line cut
    /// short by a kill or a full disk is dropped), checked against the mark; and what the two
    /// files look like now, so that an unchanged end need not be read again.
    fn read_tail(&self, f: &mut File) -> Result<Tail> {
        let path = self.file();
        let damaged = |why: &str| {
            Error::Damaged(format!(
                "the audit trail {} ({why}; `cofre audit verify` tells more, and moving its audit folder aside starts a new trail)",
                path.display()
            ))
        };
        let mark = self.read_mark()?;
        let last = match self.check_end(&mut |n| last_lines(f, &path, n), mark)? {
            Ok(last) => last,
            Err(EndProblem::NotARecord) => {
                return Err(damaged(
                    "its last record is a whole line that is not a valid record",
                ))
            }
            Err(EndProblem::Mark(why)) => return Err(damaged(&why)),
        };
        Ok(Tail {
            trail: FileState::of(f, &path)?,
            mark: FileState::at(&self.mark_file())?,
            last: last.map(|(line, e)| (line, e.cofre_sequence)),
            digest: None,
        })
    }

    /// The end of the open trail `f` (the lock held): `checked` if neither the trail nor the
    /// mark changed since, else read again.
    fn tail(&self, f: &mut File, checked: Option<Tail>) -> Result<Tail> {
        match checked {
            Some(t) if t.unchanged(f, self)? => Ok(t),
            // The newest digest is checked apart, when it is needed.
            Some(t) => Ok(Tail {
                digest: t.digest,
                ..self.read_tail(f)?
            }),
            None => self.read_tail(f),
        }
    }

    /// This trail's group of appends in this process.
    fn group(&self) -> Arc<Group<Event, Tail>> {
        Group::of(&GROUPS, &self.dir)
    }

    /// Checks, before a request changes anything, that its record can be appended: the trail
    /// opens for appending, its last record parses and agrees with the high-water mark. When
    /// neither file changed since this process last checked them or wrote to them (their
    /// size, inode and change times), that check stands and nothing is read again.
    pub fn reserve(&self) -> Result<()> {
        self.group().exclusive(|checked| {
            if let Some(t) = checked {
                if Some(t.trail) == FileState::at(&self.file())?
                    && t.mark == FileState::at(&self.mark_file())?
                {
                    return Ok(());
                }
            }
            let seen = checked.take();
            store::create_dir(&self.dir.join("digests"))?;
            let _lock = store::lock(&self.dir.join(".lock"))?;
            let mut f = self.open()?;
            *checked = Some(self.tail(&mut f, seen)?);
            Ok(())
        })
    }

    fn file(&self) -> PathBuf {
        self.dir.join("trail.jsonl")
    }

    /// Appends `event`, chaining it to the last record with the keyed chain, moves the
    /// high-water mark to it, and writes a digest when one is due. Returns once the record is
    /// synced and marked. If the line or the mark cannot be written, the trail is cut back to
    /// where it was and the error returned.
    ///
    /// Appends that meet in this process share a batch (group commit): one write of all their
    /// lines, one sync, one mark, one look for a digest; each returns that batch's outcome.
    pub fn append(&self, event: Event) -> Result<()> {
        self.group()
            .append(event, |checked, events| self.commit(checked, events))
    }

    /// Batches this process has written to this trail (each one write, one sync and one mark,
    /// for one or more appends).
    pub fn batches_committed(&self) -> u64 {
        self.group().batches()
    }

    /// Writes one batch: `events` chained after the last record, one write, one sync, then
    /// the mark. `checked` is the end as this process last saw it, and holds the new end
    /// after (none after a failure).
    fn commit(&self, checked: &mut Option<Tail>, events: Vec<Event>) -> Result<()> {
        let seen = checked.take();
        store::create_dir(&self.dir.join("digests"))?;
        let _lock = store::lock(&self.dir.join(".lock"))?;
        let path = self.file();
        let mut f = self.open()?;
        let tail = self.tail(&mut f, seen)?;
        let (mut seq, mut link) = match &tail.last {
            Some((line, seq)) => (*seq, self.link(line)),
            None => (0, GENESIS.to_owned()),
        };
        if tail.mark.is_none() {
            // The first batch of a trail (or the first after records of a version without
            // the mark): mark where it starts, so that a crash before its own mark leaves
            // the batch chained to a mark.
            self.write_mark(seq, &link)?;
        }
        let mut lines = Vec::new();
        let mut last_start = 0;
        for mut event in events {
            seq += 1;
            event.cofre_sequence = seq;
            event.cofre_previous = link;
            event.cofre_chain = Some(KEYED_CHAIN.to_owned());
            last_start = lines.len();
            serde_json::to_writer(&mut lines, &event).expect("serializable");
            link = self.link(&lines[last_start..]);
            lines.push(b'\n');
        }
        let before = tail.trail.len;
        let written = (&f)
            .write_all(&lines)
            .and_then(|()| f.sync_data())
            .map_err(|e| Error::io("appending to", &path, e))
            .and_then(|()| self.write_mark(seq, &link));
        if let Err(e) = written {
            // Nothing half done is left: the records go with their mark, or none is there
            // (a mark renamed into place before a later step failed keeps its records).
            let marked = matches!(self.read_mark(), Ok(Some(Ok(m))) if m.last_sequence == seq && m.last_record_mac == link);
            if !marked {
                let _ = f.set_len(before);
            }
            return Err(e);
        }
        let last_line = &lines[last_start..lines.len() - 1];
        *checked = Some(Tail {
            trail: FileState::of(&f, &path)?,
            mark: FileState::at(&self.mark_file())?,
            last: Some((last_line.to_vec(), seq)),
            digest: None,
        });
        let newest = self.digest_if_due(last_line, seq, tail.digest)?;
        if let Some(t) = checked {
            t.digest = Some(newest);
        }
        Ok(())
    }

    /// Replaces the high-water mark with one naming record `seq`, whose link is `link`: one
    /// write of [`MARK_SIZE`] bytes in place and one data sync (a sector-sized write is all or
    /// nothing, as PostgreSQL's pg_control also takes it), or, the first time (or over a mark
    /// of another size, from an older version), a new file renamed into place.
    fn write_mark(&self, seq: u64, link: &str) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let mut mark = Mark {
            aws_region: self.region.clone(),
            last_sequence: seq,
            last_record_mac: link.to_owned(),
            signature: String::new(),
        };
        mark.signature = self.sign_mark(&mark);
        let mut bytes = serde_json::to_vec(&mark).expect("serializable");
        assert!(bytes.len() < MARK_SIZE, "a mark fits its sector");
        bytes.resize(MARK_SIZE - 1, b' ');
        bytes.push(b'\n');
        let path = self.mark_file();
        let in_place = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| {
                if f.metadata()?.len() != MARK_SIZE as u64 {
                    return Ok(false);
                }
                f.write_all_at(&bytes, 0)?;
                f.sync_data()?;
                Ok(true)
            });
        match in_place {
            Ok(true) => Ok(()),
            Ok(false) => store::write_atomic(&path, &bytes, 0o600),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                store::write_atomic(&path, &bytes, 0o600)
            }
            Err(e) => Err(Error::io("writing", &path, e)),
        }
    }

    fn latest_digest(&self) -> Result<Option<(String, Vec<u8>)>> {
        let dir = self.dir.join("digests");
        let mut names: Vec<String> = match fs::read_dir(&dir) {
            Ok(e) => e
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".json"))
                .collect(),
            Err(_) => return Ok(None),
        };
        names.sort();
        match names.pop() {
            Some(n) => {
                let bytes = store::read(&dir.join(&n))?;
                Ok(Some((n, bytes)))
            }
            None => Ok(None),
        }
    }

    fn sign(&self, d: &Digest) -> String {
        let mut h = blake3::Hasher::new_keyed(self.key.expose());
        let mut unsigned = d.clone();
        unsigned.signature = String::new();
        h.update(&serde_json::to_vec(&unsigned).expect("serializable"));
        h.finalize().to_hex().to_string()
    }

    /// The newest digest: `seen` if neither the digests folder nor its file changed since,
    /// else read again (a listing of the folder).
    fn newest_digest(&self, seen: Option<NewestDigest>) -> Result<NewestDigest> {
        let dir = self.dir.join("digests");
        let folder = FileState::at(&dir)?;
        if let Some(seen) = seen {
            if seen.folder == folder
                && match &seen.digest {
                    None => true,
                    Some(d) => d.file == FileState::at(&dir.join(&d.name))?,
                }
            {
                return Ok(seen);
            }
        }
        let digest = match self.latest_digest()? {
            None => None,
            Some((name, bytes)) => {
                let d: Digest = serde_json::from_slice(&bytes).map_err(|_| {
                    Error::Damaged(format!("the latest audit digest in {}", self.dir.display()))
                })?;
                Some(SeenDigest {
                    file: FileState::at(&dir.join(&name))?,
                    end: store::parse_time(&d.digest_end_time)?,
                    hash: hash_hex(&bytes),
                    name,
                })
            }
        };
        Ok(NewestDigest { folder, digest })
    }

    /// Writes a digest after record `last_seq` (whose line is `last_line`) if the newest is
    /// [`DIGEST_EVERY`] old; returns the newest digest then. `seen`: the newest digest as last
    /// read, if any.
    fn digest_if_due(
        &self,
        last_line: &[u8],
        last_seq: u64,
        seen: Option<NewestDigest>,
    ) -> Result<NewestDigest> {
        let now = self.clock.now();
        let newest = self.newest_digest(seen)?;
        if let Some(previous) = &newest.digest {
            if now.duration_since(previous.end).unwrap_or_default() < DIGEST_EVERY {
                return Ok(newest);
            }
        }
        let mut d = Digest {
            aws_region: self.region.clone(),
            digest_end_time: store::format_time(now),
            last_sequence: last_seq,
            last_record_hash: hash_hex(last_line),
            previous_digest: newest.digest.as_ref().map(|p| p.name.clone()),
            previous_digest_hash: newest.digest.as_ref().map(|p| p.hash.clone()),
            signature: String::new(),
        };
        d.signature = self.sign(&d);
        let dir = self.dir.join("digests");
        let name = format!("{last_seq:020}.json");
        let json = serde_json::to_vec_pretty(&d).expect("serializable");
        store::write_atomic(&dir.join(&name), &json, 0o600)?;
        Ok(NewestDigest {
            folder: FileState::at(&dir)?,
            digest: Some(SeenDigest {
                file: FileState::at(&dir.join(&name))?,
                end: store::parse_time(&d.digest_end_time)?,
                hash: hash_hex(&json),
                name,
            }),
        })
    }

    /// Every record, in order (lines that do not parse are skipped; [`verify`] reports them).
    pub fn events(&self) -> Result<Vec<Event>> {
        let path = self.file();
        let raw = match fs::read(&path) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("reading", &path, e)),
        };
        Ok(raw
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect())
    }

    /// Checks the chain, the high-water mark and the digests; returns the problems, first
    /// break first.
    pub fn verify(&self) -> Result<Vec<TrailProblem>> {
        Ok(self.check()?.problems)
    }

    /// Checks the chain, the high-water mark and the digests, and says how far the trail is
    /// sealed.
    pub fn check(&self) -> Result<TrailReport> {
        let raw = match fs::read(self.file()) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io("reading", &self.file(), e)),
        };
        // A last line without its newline is an append cut short (a kill, a full disk): the
        // next append drops it. It was never marked nor sealed, so it is no edit.
        let whole = raw.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let cut_short = whole < raw.len();
        let raw = &raw[..whole];
        let lines: Vec<&[u8]> = raw
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let chain = check_chain(&lines, Some(self));
        let mut report = TrailReport {
            records: lines.len() as u64,
            cut_short,
            unkeyed_through: chain.unkeyed_through,
            ..TrailReport::default()
        };
        let mut problems = chain.problems;
        // The high-water mark: only the end of the trail is checked against it.
        let mark = self.read_mark()?;
        if let Some(Ok(m)) = &mark {
            report.marked_through = m.last_sequence;
        }
        let mut last_lines = |n: usize| {
            Ok(lines[lines.len().saturating_sub(n)..]
                .iter()
                .map(|l| l.to_vec())
                .collect())
        };
        // A last line that is no record is the chain's problem, reported above.
        if let Err(EndProblem::Mark(why)) = self.check_end(&mut last_lines, mark)? {
            problems.push(TrailProblem {
                record: None,
                message: format!("the end of the trail: {why}"),
            });
        }
        // Digests: each signed, each chained to the one before, each matching the line it names.
        let dir = self.dir.join("digests");
        let mut names: Vec<String> = fs::read_dir(&dir)
            .map(|e| {
                e.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".json"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let mut prev: Option<(String, Vec<u8>)> = None;
        for n in names {
            let bytes = store::read(&dir.join(&n))?;
            let bad = |why: String| TrailProblem {
                record: None,
                message: format!("digest {n}: {why}"),
            };
            let d: Digest = match serde_json::from_slice(&bytes) {
                Ok(d) => d,
                Err(_) => {
                    problems.push(bad("damaged or truncated".into()));
                    prev = Some((n.clone(), bytes));
                    continue;
                }
            };
            let mut good = true;
            if self.sign(&d) != d.signature || d.aws_region != self.region {
                good = false;
                problems.push(bad(
                    "signature does not match (edited, or not made by this home)".into(),
                ));
            }
            let want_prev = prev.as_ref().map(|(pn, pb)| (pn.clone(), hash_hex(pb)));
            let got_prev = d
                .previous_digest
                .clone()
                .zip(d.previous_digest_hash.clone());
            if want_prev != got_prev {
                good = false;
                problems.push(bad("the digest before it is missing or was changed".into()));
            }
            match lines.get((d.last_sequence as usize).wrapping_sub(1)) {
                Some(l) if hash_hex(l) == d.last_record_hash => {}
                _ => {
                    good = false;
                    problems.push(TrailProblem {
                        record: Some(d.last_sequence),
                        message: format!(
                            "record {} no longer matches digest {n}: the trail was rewritten or cut up to it",
                            d.last_sequence
                        ),
                    })
                }
            }
            if good {
                report.sealed_through = report.sealed_through.max(d.last_sequence);
            }
            prev = Some((n, bytes));
        }
        report.problems = problems;
        Ok(report)
    }
}

/// What `audit verify` found wrong, at which record (sequence number) if one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrailProblem {
    pub record: Option<u64>,
    pub message: String,
}

/// What `audit verify` reports: the problems, and how far the trail is sealed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrailReport {
    /// Whole records in the trail.
    pub records: u64,
    /// Records 1 to this one are sealed by a digest (0: none is). Later records are sealed by
    /// the keyed chain and the high-water mark only, until the next digest.
    pub sealed_through: u64,
    /// The record the high-water mark names (0: no mark).
    pub marked_through: u64,
    /// Records 1 to this one were written by a version with the unkeyed chain (0: none).
    pub unkeyed_through: u64,
    /// The last line is an append cut short (a kill or a full disk), dropped by the next
    /// request; it is not counted in `records`.
    pub cut_short: bool,
    pub problems: Vec<TrailProblem>,
}

/// The chain of a trail's lines, checked.
struct Chain {
    problems: Vec<TrailProblem>,
    unkeyed_through: u64,
}

/// Checks a trail's chain: sequence numbers 1, 2, … and each line naming the link to the one
/// before (keyed with `trail`'s chain key; without a trail, keyed links are not checked).
/// Names the first record edited, deleted, inserted or reordered.
fn check_chain(lines: &[&[u8]], trail: Option<&Trail>) -> Chain {
    let parsed: Vec<Option<Event>> = lines
        .iter()
        .map(|l| serde_json::from_slice(l).ok())
        .collect();
    let seqs: Vec<Option<u64>> = parsed
        .iter()
        .map(|e| e.as_ref().map(|e| e.cofre_sequence))
        .collect();
    let mut unkeyed_through = 0;
    let mut keyed = false;
    let broken = |problem: TrailProblem, unkeyed_through| Chain {
        problems: vec![problem],
        unkeyed_through,
    };
    for (i, e) in parsed.iter().enumerate() {
        let want = i as u64 + 1;
        let Some(e) = e else {
            return broken(
                TrailProblem {
                    record: Some(want),
                    message: format!("record {want} (line {want}) is not a valid record: edited"),
                },
                unkeyed_through,
            );
        };
        if e.cofre_sequence != want {
            let message = if seqs[i + 1..].contains(&Some(want)) || e.cofre_sequence < want {
                format!(
                    "record {want} is out of place (line {want} holds record {}): records were reordered or one was inserted",
                    e.cofre_sequence
                )
            } else {
                format!(
                    "record {want} was deleted (line {want} holds record {})",
                    e.cofre_sequence
                )
            };
            return broken(
                TrailProblem {
                    record: Some(want),
                    message,
                },
                unkeyed_through,
            );
        }
        let prev = match e.cofre_chain.as_deref() {
            Some(KEYED_CHAIN) => {
                keyed = true;
                match (i, trail) {
                    (0, _) => Some(GENESIS.to_owned()),
                    (_, Some(t)) => Some(t.link(lines[i - 1])),
                    (_, None) => None,
                }
            }
            None if keyed => {
                return broken(
                    TrailProblem {
                        record: Some(want),
                        message: format!(
                            "record {want} has the unkeyed chain of earlier versions after keyed records: edited, or the trail was rewritten"
                        ),
                    },
                    unkeyed_through,
                )
            }
            None => {
                unkeyed_through = want;
                Some(if i == 0 {
                    GENESIS.to_owned()
                } else {
                    hash_hex(lines[i - 1])
                })
            }
            Some(other) => {
                return broken(
                    TrailProblem {
                        record: Some(want),
                        message: format!(
                            "record {want} uses chain {other:?}, which this cofre does not know: edited, or written by a newer cofre (upgrade it)"
                        ),
                    },
                    unkeyed_through,
                )
            }
        };
        if prev.is_some_and(|p| p != e.cofre_previous) {
            let earlier = want - 1;
            return broken(
                TrailProblem {
                    record: Some(earlier),
                    message: format!(
                        "record {earlier} was edited (record {want} names another hash for it), or a record was inserted before {want}"
                    ),
                },
                unkeyed_through,
            );
        }
    }
    Chain {
        problems: Vec::new(),
        unkeyed_through,
    }
}

/// Checks a trail's chain without its key: sequence numbers 1, 2, … and each record of the
/// unkeyed chain (earlier versions) naming the hash of the one before; keyed links are
/// checked by [`Trail::check`]. Names the first record edited, deleted, inserted or reordered.
pub fn verify(raw: &[u8]) -> Vec<TrailProblem> {
    let lines: Vec<&[u8]> = raw
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    check_chain(&lines, None).problems
}

/// The last `n` whole lines of the trail (fewer if it has fewer), oldest first, without their
/// newlines; a last line a crash cut short (no newline) is dropped from the file first.
fn last_lines(f: &mut File, path: &Path, n: usize) -> Result<Vec<Vec<u8>>> {
    let mut len = f
        .seek(SeekFrom::End(0))
        .map_err(|e| Error::io("reading", path, e))?;
    // Read backwards in growing windows until the window holds n whole lines.
    let mut window = 64 * 1024u64;
    loop {
        if len == 0 {
            return Ok(Vec::new());
        }
        let start = len.saturating_sub(window);
        let mut buf = vec![0u8; (len - start) as usize];
        f.seek(SeekFrom::Start(start))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(|e| Error::io("reading", path, e))?;
        let complete = match buf.iter().rposition(|&b| b == b'\n') {
            Some(p) => p + 1,
            None if start == 0 => 0,
            None => {
                window *= 4;
                continue;
            }
        };
        if (start + complete as u64) < len {
            // A line cut short (a kill or a full disk mid-append): drop it, and look again
            // from the new end.
            len = start + complete as u64;
            f.set_len(len)
                .map_err(|e| Error::io("repairing", path, e))?;
            continue;
        }
        let body = &buf[..complete - 1];
        let mut lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
        if start > 0 {
            // The first piece may begin before the window.
            lines.remove(0);
        } else if body.is_empty() {
            return Ok(Vec::new());
        }
        if lines.len() >= n || start == 0 {
            return Ok(lines[lines.len().saturating_sub(n)..]
                .iter()
                .map(|l| l.to_vec())
                .collect());
        }
        window *= 4;
    }
}

/// True if `t` (RFC 3339) is within `[since, until]`.
pub fn within(t: &str, since: Option<SystemTime>, until: Option<SystemTime>) -> bool {
    let Ok(t) = store::parse_time(t) else {
        return false;
    };
    since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
}
