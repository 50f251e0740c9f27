//! The trail file, its chain and its digests.

use crate::crypto::SecretKey;
use crate::error::{Error, Result};
use crate::store;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A digest is written once the trail has run this long since the last one.
const DIGEST_EVERY: Duration = Duration::from_secs(3600);

/// CloudTrail's `userIdentity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    #[serde(rename = "type")]
    pub kind: String,
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
    #[serde(rename = "requestID")]
    pub request_id: String,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub read_only: bool,
    pub resources: Vec<Resource>,
    pub event_type: String,
    pub management_event: bool,
    pub recipient_account_id: String,
    pub event_category: String,
    /// Position in the trail, from 1.
    #[serde(default)]
    pub cofre_sequence: u64,
    /// BLAKE3 of the previous line (hex; 64 zeros for the first).
    #[serde(default)]
    pub cofre_previous: String,
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

/// One region's trail.
pub struct Trail {
    dir: PathBuf,
    region: String,
    key: SecretKey,
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
    /// The trail of `region` in its folder `region_dir`, sealed with `key` (an AWS owned key).
    pub fn new(region_dir: &Path, region: &str, key: SecretKey) -> Self {
        Trail {
            dir: region_dir.join("audit"),
            region: region.to_owned(),
            key,
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("trail.jsonl")
    }

    /// Appends `event`, chaining it to the last record, and writes a digest when one is due.
    pub fn append(&self, mut event: Event) -> Result<()> {
        store::create_dir(&self.dir.join("digests"))?;
        let _lock = store::lock(&self.dir.join(".lock"))?;
        let path = self.file();
        let mut f = OpenOptions::new()
            .mode(0o600)
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("opening", &path, e))?;
        let (seq, prev) = match last_line(&mut f, &path)? {
            Some(line) => {
                let e: Event = serde_json::from_slice(&line)
                    .map_err(|_| Error::Damaged(format!("{} (its last record)", path.display())))?;
                (e.cofre_sequence, hash_hex(&line))
            }
            None => (0, GENESIS.to_owned()),
        };
        event.cofre_sequence = seq + 1;
        event.cofre_previous = prev;
        let mut line = serde_json::to_vec(&event).expect("serializable");
        line.push(b'\n');
        f.write_all(&line)
            .map_err(|e| Error::io("appending to", &path, e))?;
        self.digest_if_due(&line[..line.len() - 1], event.cofre_sequence)
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

    fn digest_if_due(&self, last_line: &[u8], last_seq: u64) -> Result<()> {
        let now = store::now();
        let previous = self.latest_digest()?;
        if let Some((_, bytes)) = &previous {
            let d: Digest = serde_json::from_slice(bytes).map_err(|_| {
                Error::Damaged(format!("the latest audit digest in {}", self.dir.display()))
            })?;
            let end = store::parse_time(&d.digest_end_time)?;
            if now.duration_since(end).unwrap_or_default() < DIGEST_EVERY {
                return Ok(());
            }
        }
        let mut d = Digest {
            aws_region: self.region.clone(),
            digest_end_time: store::format_time(now),
            last_sequence: last_seq,
            last_record_hash: hash_hex(last_line),
            previous_digest: previous.as_ref().map(|(n, _)| n.clone()),
            previous_digest_hash: previous.as_ref().map(|(_, b)| hash_hex(b)),
            signature: String::new(),
        };
        d.signature = self.sign(&d);
        let name = format!("{last_seq:020}.json");
        let json = serde_json::to_vec_pretty(&d).expect("serializable");
        store::write_atomic(&self.dir.join("digests").join(name), &json, 0o600)
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

    /// Checks the chain and the digests; returns the problems, first break first.
    pub fn verify(&self) -> Result<Vec<TrailProblem>> {
        let raw = match fs::read(self.file()) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io("reading", &self.file(), e)),
        };
        let mut problems = verify(&raw);
        let lines: Vec<&[u8]> = raw
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
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
            if self.sign(&d) != d.signature || d.aws_region != self.region {
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
                problems.push(bad("the digest before it is missing or was changed".into()));
            }
            match lines.get((d.last_sequence as usize).wrapping_sub(1)) {
                Some(l) if hash_hex(l) == d.last_record_hash => {}
                _ => problems.push(TrailProblem {
                    record: Some(d.last_sequence),
                    message: format!(
                        "record {} no longer matches digest {n}: the trail was rewritten or cut up to it",
                        d.last_sequence
                    ),
                }),
            }
            prev = Some((n, bytes));
        }
        Ok(problems)
    }
}

/// What `audit verify` found wrong, at which record (sequence number) if one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrailProblem {
    pub record: Option<u64>,
    pub message: String,
}

/// Checks a trail's chain: sequence numbers 1, 2, … and each line naming the hash of the one
/// before. Names the first record edited, deleted, inserted or reordered.
pub fn verify(raw: &[u8]) -> Vec<TrailProblem> {
    let lines: Vec<&[u8]> = raw
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let parsed: Vec<Option<Event>> = lines
        .iter()
        .map(|l| serde_json::from_slice(l).ok())
        .collect();
    let seqs: Vec<Option<u64>> = parsed
        .iter()
        .map(|e| e.as_ref().map(|e| e.cofre_sequence))
        .collect();
    for (i, e) in parsed.iter().enumerate() {
        let want = i as u64 + 1;
        let Some(e) = e else {
            return vec![TrailProblem {
                record: Some(want),
                message: format!("record {want} (line {want}) is not a valid record: edited"),
            }];
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
            return vec![TrailProblem {
                record: Some(want),
                message,
            }];
        }
        let prev = if i == 0 {
            GENESIS.to_owned()
        } else {
            hash_hex(lines[i - 1])
        };
        if e.cofre_previous != prev {
            let earlier = want - 1;
            return vec![TrailProblem {
                record: Some(earlier),
                message: format!(
                    "record {earlier} was edited (record {want} names another hash for it), or a record was inserted before {want}"
                ),
            }];
        }
    }
    Vec::new()
}

/// The last complete line of the trail, dropping a line a crash cut short.
fn last_line(f: &mut File, path: &Path) -> Result<Option<Vec<u8>>> {
    let mut len = f
        .seek(SeekFrom::End(0))
        .map_err(|e| Error::io("reading", path, e))?;
    if len == 0 {
        return Ok(None);
    }
    // Read backwards in growing windows until the window holds a whole last line.
    let mut window = 64 * 1024u64;
    loop {
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
            if len == 0 {
                return Ok(None);
            }
            continue;
        }
        let body = &buf[..complete.saturating_sub(1)];
        match body.iter().rposition(|&b| b == b'\n') {
            Some(p) => return Ok(Some(body[p + 1..].to_vec())),
            None if start == 0 => {
                return Ok(if body.is_empty() {
                    None
                } else {
                    Some(body.to_vec())
                })
            }
            None => window *= 4,
        }
    }
}

/// True if `t` (RFC 3339) is within `[since, until]`.
pub fn within(t: &str, since: Option<SystemTime>, until: Option<SystemTime>) -> bool {
    let Ok(t) = store::parse_time(t) else {
        return false;
    };
    since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
}
