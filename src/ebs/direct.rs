//! The EBS direct APIs: snapshots written block by block (StartSnapshot, PutSnapshotBlock,
//! CompleteSnapshot) and read block by block (ListSnapshotBlocks, ListChangedBlocks,
//! GetSnapshotBlock) through block tokens.
//!
//! ```text
//! <region folder>/ebs/pending/<snap-id>/<block index, 16 hex>   one journal entry per block
//! ```
//!
//! - StartSnapshot records a [`SnapshotRecord`] with [`PendingSnapshot`] set: DescribeSnapshots
//!   and `cofre snapshot list` show it `pending`, and nothing restores, copies, attaches or
//!   compares it. A snapshot with a parent shares the parent's lineage (its data key, re-wrapped
//!   if another key is asked for) and starts from the parent's map: copy on write.
//! - PutSnapshotBlock checks the data against its SHA-256, seals it as every block is sealed,
//!   stores it, and writes the block's journal entry (new, then renamed into place): a flag
//!   (stored or zeros), the block's hash, the data's SHA-256 and a MAC under the region's
//!   record key binding snapshot and index. `cofre gc` keeps the blocks of pending journals.
//! - CompleteSnapshot checks the count (and the aggregated checksum), applies the journal to
//!   the start map, and publishes the new map and the completed record in one head switch
//!   (after a `syncfs`). A crash before leaves the snapshot pending; after, the journal is
//!   stale and gc removes it.
//! - Block tokens are `expiry ‖ MAC(region, snapshot, index, block hash, expiry)` under a key
//!   derived for them alone: opaque, unforgeable, good for one block of one snapshot. Page
//!   tokens are the next index with a MAC.

use super::block::{is_zero, BlockHash, SALT_LEN};
use super::volume::read_block;
use super::{new_id, BlockMap, Ebs, Head, Lineage, SnapshotRecord, BLOCK_SIZE};
use crate::crypto::{Hash, SecretKey};
use crate::error::{EbsCode, Ec2Code, Error, KmsCode, Result};
use crate::kms::{Call, KeyRef};
use crate::store;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

/// The volume id of snapshots the EBS direct APIs make (they come from no EC2 volume).
pub const NO_VOLUME: &str = "vol-ffffffff";
/// Largest VolumeSize, GiB.
pub const MAX_VOLUME_GIB: u64 = 65_536;
/// How long block tokens stay good.
const TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
const LABEL_JOURNAL: &[u8] = b"cofre v1 ebs journal entry\0";
const LABEL_BLOCK_TOKEN: &[u8] = b"cofre v1 ebs block token\0";
const LABEL_PAGE_TOKEN: &[u8] = b"cofre v1 ebs page token\0";
const ENTRY_LEN: usize = 1 + 32 + 32 + 32;
const GIB_BLOCKS: u64 = (1 << 30) / BLOCK_SIZE as u64;

/// What a pending snapshot's record holds beside the common fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PendingSnapshot {
    /// When it turns to `error` if not completed (RFC 3339).
    pub deadline: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_snapshot_id: Option<String>,
}

impl PendingSnapshot {
    /// True once its timeout has passed.
    pub fn expired(&self, now: SystemTime) -> bool {
        store::parse_time(&self.deadline).is_ok_and(|d| now > d)
    }
}

/// What StartSnapshot takes.
#[derive(Debug, Clone, Default)]
pub struct StartSnapshotRequest {
    /// GiB.
    pub volume_size: u64,
    pub parent_snapshot_id: Option<String>,
    pub encrypted: Option<bool>,
    pub kms_key_arn: Option<String>,
    /// Minutes (10–4320, default 60).
    pub timeout: Option<u64>,
    pub tags: BTreeMap<String, String>,
    pub client_token: Option<String>,
    pub description: Option<String>,
}

/// What PutSnapshotBlock takes.
#[derive(Debug, Clone, Copy)]
pub struct PutBlock<'a> {
    pub snapshot_id: &'a str,
    pub index: u64,
    pub data: &'a [u8],
    /// `x-amz-Data-Length`.
    pub data_length: u64,
    /// `x-amz-Checksum`: base64 SHA-256 of `data`.
    pub checksum: &'a str,
    /// `x-amz-Checksum-Algorithm`.
    pub checksum_algorithm: &'a str,
    /// `x-amz-Progress`.
    pub progress: Option<u64>,
}

/// One page of ListSnapshotBlocks.
#[derive(Debug, Clone)]
pub struct BlockPage {
    /// (block index, block token).
    pub blocks: Vec<(u64, String)>,
    pub next_token: Option<String>,
    pub expiry_time: SystemTime,
    /// GiB.
    pub volume_size: u64,
}

/// One page of ListChangedBlocks.
#[derive(Debug, Clone)]
pub struct ChangedBlockPage {
    /// (block index, first snapshot's token, second snapshot's token).
    pub changed: Vec<(u64, Option<String>, Option<String>)>,
    pub next_token: Option<String>,
    pub expiry_time: SystemTime,
    /// GiB of the second snapshot.
    pub volume_size: u64,
}

/// GetSnapshotBlock's answer: the data (zeroized on drop) and its base64 SHA-256.
pub struct BlockData {
    pub data: Zeroizing<Vec<u8>>,
    pub checksum: String,
}

impl std::fmt::Debug for BlockData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockData")
            .field("checksum", &self.checksum)
            .finish_non_exhaustive()
    }
}

/// One journal entry: the block written at an index of a pending snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// `None`: the block was all zeros.
    block: Option<BlockHash>,
    sha256: [u8; 32],
}

fn invalid(reason: &'static str, message: impl Into<String>) -> Error {
    Error::ebs(EbsCode::ValidationException, reason, message)
}

/// An error of the core, as the EBS direct APIs name it.
pub(crate) fn as_ebs(e: Error) -> Error {
    let (code, reason) = match &e {
        Error::Ebs { .. } => return e,
        Error::Ec2 { code, .. } => match code {
            Ec2Code::InvalidSnapshotNotFound | Ec2Code::InvalidVolumeNotFound => {
                (EbsCode::ResourceNotFoundException, "SNAPSHOT_NOT_FOUND")
            }
            Ec2Code::InvalidSnapshotIdMalformed | Ec2Code::IncorrectState => {
                (EbsCode::ValidationException, "INVALID_SNAPSHOT_ID")
            }
            Ec2Code::UnrelatedSnapshots => (EbsCode::ValidationException, "UNRELATED_SNAPSHOTS"),
            _ => (EbsCode::ValidationException, "INVALID_PARAMETER_VALUE"),
        },
        Error::Kms { code, .. } => match code {
            KmsCode::AccessDeniedException => {
                (EbsCode::AccessDeniedException, "DEPENDENCY_ACCESS_DENIED")
            }
            KmsCode::NotFoundException => (
                EbsCode::ResourceNotFoundException,
                "DEPENDENCY_RESOURCE_NOT_FOUND",
            ),
            KmsCode::DisabledException
            | KmsCode::KMSInvalidStateException
            | KmsCode::InvalidKeyUsageException
            | KmsCode::InvalidArnException => {
                (EbsCode::ValidationException, "INVALID_CUSTOMER_KEY")
            }
            _ => (EbsCode::ValidationException, "INVALID_DEPENDENCY_REQUEST"),
        },
        Error::Usage(_) | Error::KeyInUse(_) => {
            (EbsCode::ValidationException, "INVALID_PARAMETER_VALUE")
        }
        _ => (EbsCode::InternalServerException, ""),
    };
    Error::ebs(code, reason, e.wire_message())
}

fn check_snapshot_id(id: &str) -> Result<()> {
    super::check_id(id, "snap-", "snapshot").map_err(|_| {
        invalid(
            "INVALID_SNAPSHOT_ID",
            format!("{id:?} is not a snapshot id (snap- and hex digits)"),
        )
    })
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

fn b64(bytes: &[u8]) -> String {
    crate::kms::base64_encode(bytes)
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Ebs<'_> {
    fn journal_dir(&self, id: &str) -> PathBuf {
        self.region.dir.join("pending").join(id)
    }

    fn token_key(&self) -> SecretKey {
        self.kms
            .home()
            .aws_owned_key(&format!("ebs block tokens\0{}", self.kms.region()))
    }

    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        self.kms
            .home()
            .backend()
            .digest(Hash::Sha256, data)
            .try_into()
            .expect("32 bytes")
    }

    fn entry_mac(
        &self,
        id: &str,
        index: u64,
        flag: u8,
        hash: &[u8; 32],
        sha: &[u8; 32],
    ) -> [u8; 32] {
        let mut m = LABEL_JOURNAL.to_vec();
        m.extend_from_slice(id.as_bytes());
        m.push(0);
        m.extend_from_slice(&index.to_be_bytes());
        m.push(flag);
        m.extend_from_slice(hash);
        m.extend_from_slice(sha);
        self.region.mac(&m)
    }

    /// Writes the journal entry of block `index` of pending snapshot `id` (new, then renamed
    /// over any earlier one: a reader sees one whole entry or the other).
    fn write_entry(&self, id: &str, index: u64, e: &Entry) -> Result<()> {
        let dir = self.journal_dir(id);
        store::create_dir(&dir)?;
        let (flag, hash) = match &e.block {
            Some(h) => (1u8, *h),
            None => (0u8, [0u8; 32]),
        };
        let mut raw = Vec::with_capacity(ENTRY_LEN);
        raw.push(flag);
        raw.extend_from_slice(&hash);
        raw.extend_from_slice(&e.sha256);
        raw.extend_from_slice(&self.entry_mac(id, index, flag, &hash, &e.sha256));
        let path = dir.join(format!("{index:016x}"));
        let tmp = dir.join(format!(
            "{}{}-{}",
            store::TMP_PREFIX,
            std::process::id(),
            hex::encode(crate::crypto::random_array::<8>())
        ));
        let r = std::fs::write(&tmp, &raw).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(err) = r {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io("writing the journal entry", &path, err));
        }
        Ok(())
    }

    /// The journal of pending snapshot `id`, every entry authenticated.
    fn read_journal(&self, id: &str) -> Result<BTreeMap<u64, Entry>> {
        let dir = self.journal_dir(id);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(Error::io("listing", &dir, e)),
        };
        let mut out = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(store::TMP_PREFIX) {
                continue;
            }
            let bad = || {
                Error::StoreCorrupt(format!(
                    "journal entry {} is damaged",
                    entry.path().display()
                ))
            };
            let index = (name.len() == 16)
                .then(|| u64::from_str_radix(name, 16).ok())
                .flatten()
                .ok_or_else(bad)?;
            let raw = store::read(&entry.path())?;
            if raw.len() != ENTRY_LEN || raw[0] > 1 {
                return Err(bad());
            }
            let hash: [u8; 32] = raw[1..33].try_into().expect("32 bytes");
            let sha: [u8; 32] = raw[33..65].try_into().expect("32 bytes");
            let mac: [u8; 32] = raw[65..].try_into().expect("32 bytes");
            if !super::constant_time_eq(&mac, &self.entry_mac(id, index, raw[0], &hash, &sha)) {
                return Err(bad());
            }
            out.insert(
                index,
                Entry {
                    block: (raw[0] == 1).then_some(hash),
                    sha256: sha,
                },
            );
        }
        Ok(out)
    }

    /// The blocks the journals of `head`'s pending snapshots name (kept by gc).
    pub(crate) fn pending_blocks(&self, head: &Head) -> Result<HashSet<BlockHash>> {
        let mut used = HashSet::new();
        for r in head.snapshots.values().filter(|r| r.pending.is_some()) {
            used.extend(
                self.read_journal(&r.snapshot_id)?
                    .values()
                    .filter_map(|e| e.block),
            );
        }
        Ok(used)
    }

    /// Removes the journals of snapshots that are no longer pending (completed, deleted),
    /// and the temporary entries of dead writers. Call with the exclusive `.gc.lock` held.
    pub(crate) fn remove_stale_journals(&self, head: &Head) -> Result<u64> {
        let dir = self.region.dir.join("pending");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io("listing", &dir, e)),
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pending = name
                .to_str()
                .and_then(|n| head.snapshots.get(n))
                .is_some_and(|r| r.pending.is_some());
            if pending {
                removed += store::remove_stale_temporaries(&entry.path())?;
            } else {
                std::fs::remove_dir_all(entry.path())
                    .map_err(|e| Error::io("removing", &entry.path(), e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// StartSnapshot: a new `pending` snapshot (or, for a ClientToken seen before with the
    /// same request, the snapshot that request made).
    pub fn start_snapshot(&self, req: &StartSnapshotRequest) -> Result<SnapshotRecord> {
        self.kms.audited(
            Call::ebs("StartSnapshot", false)
                .param("volumeSize", req.volume_size)
                .param("parentSnapshotId", &req.parent_snapshot_id)
                .param("encrypted", req.encrypted)
                .param("kmsKeyArn", &req.kms_key_arn)
                .param("timeout", req.timeout)
                .param("clientToken", &req.client_token),
            |_| self.start_snapshot_inner(req).map_err(as_ebs),
        )
    }

    fn start_snapshot_inner(&self, req: &StartSnapshotRequest) -> Result<SnapshotRecord> {
        if req.volume_size == 0 || req.volume_size > MAX_VOLUME_GIB {
            return Err(invalid(
                "INVALID_VOLUME_SIZE",
                format!("VolumeSize must be 1 to {MAX_VOLUME_GIB} GiB"),
            ));
        }
        let timeout = req.timeout.unwrap_or(60);
        if !(10..=4320).contains(&timeout) {
            return Err(invalid(
                "INVALID_PARAMETER_VALUE",
                "Timeout must be 10 to 4320 minutes",
            ));
        }
        let description = req.description.clone().unwrap_or_default();
        super::snapshot::check_description(&description)
            .map_err(|e| invalid("INVALID_PARAMETER_VALUE", e.wire_message()))?;
        if req.tags.len() > 50
            || req.tags.iter().any(|(k, v)| {
                k.is_empty() || k.len() > 128 || v.len() > 256 || k.starts_with("aws:")
            })
        {
            return Err(invalid(
                "INVALID_TAG",
                "give at most 50 tags, keys of 1 to 128 characters not starting with aws:, values of up to 256",
            ));
        }
        if req.parent_snapshot_id.is_some() && req.encrypted.is_some() {
            return Err(invalid(
                "INVALID_PARAMETER_VALUE",
                "give ParentSnapshotId or Encrypted, not both (a child is encrypted as its parent is)",
            ));
        }
        let key = req
            .kms_key_arn
            .as_deref()
            .map(|k| {
                if !k.starts_with("arn:") {
                    return Err(invalid(
                        "INVALID_CUSTOMER_KEY",
                        "KmsKeyArn must be a key ARN",
                    ));
                }
                k.parse::<KeyRef>()
                    .map_err(|_| invalid("INVALID_CUSTOMER_KEY", "KmsKeyArn must be a key ARN"))
            })
            .transpose()?;
        let token = req.client_token.as_deref();
        if let Some(t) = token {
            if t.is_empty() || t.len() > 255 {
                return Err(invalid(
                    "INVALID_PARAMETER_VALUE",
                    "ClientToken must be 1 to 255 characters",
                ));
            }
        }
        let block_count = req.volume_size * GIB_BLOCKS;
        // Held until the record names the parent's map: a concurrent delete of the parent
        // cannot take its blocks.
        let _writing = self.region.writing()?;
        let head = self.region.load_head()?;
        if let Some(r) = token.and_then(|t| same_token(&head, t)) {
            return self.idempotent(r, req);
        }
        let id = new_id("snap-");
        let (lineage, map_hash) = match &req.parent_snapshot_id {
            Some(parent_id) => {
                check_snapshot_id(parent_id)?;
                let parent = self.snapshot_record(parent_id)?;
                parent.check_completed()?;
                if parent.volume_size_bytes > req.volume_size << 30 {
                    return Err(invalid(
                        "INVALID_VOLUME_SIZE",
                        format!(
                            "VolumeSize {} GiB is smaller than parent {parent_id} ({} GiB)",
                            req.volume_size,
                            parent.volume_size_bytes.div_ceil(1 << 30)
                        ),
                    ));
                }
                let lineage = match (&parent.lineage.data_key, &key) {
                    (None, Some(_)) => {
                        return Err(invalid(
                            "INVALID_PARAMETER_VALUE",
                            format!("parent {parent_id} is not encrypted, so its child is not: give no KmsKeyArn"),
                        ))
                    }
                    (None, None) => parent.lineage.clone(),
                    (Some(dk), want) => {
                        // The caller must be able to use the parent's key (Decrypt).
                        let data_key = self.unwrap_data_key(&parent.lineage, false)?;
                        match want {
                            Some(k) if self.encryption_key_arn(k)? != dk.kms_key_id => {
                                self.rewrap_lineage(&parent.lineage, k, &data_key)?
                            }
                            _ => parent.lineage.clone(),
                        }
                    }
                };
                let mut map = self.region.load_map(&parent.map)?;
                let map_hash = if map.block_count == block_count {
                    parent.map.clone()
                } else {
                    map.block_count = block_count;
                    self.region.save_map(&map)?
                };
                (lineage, map_hash)
            }
            None => {
                let encrypted = req.encrypted == Some(true) || head.encryption_by_default;
                if key.is_some() && !encrypted {
                    return Err(invalid(
                        "INVALID_PARAMETER_VALUE",
                        "KmsKeyArn needs Encrypted=true (or encryption by default)",
                    ));
                }
                let lineage: Lineage = if encrypted {
                    let k = self.key_for_new_lineage(&head, key.as_ref())?;
                    self.new_lineage(&id, Some(&k))?
                } else {
                    self.new_lineage(&id, None)?
                };
                (lineage, self.region.save_map(&BlockMap::new(block_count))?)
            }
        };
        let now = self.kms.home().now();
        let record = SnapshotRecord {
            snapshot_id: id.clone(),
            volume_id: NO_VOLUME.to_owned(),
            volume_size_bytes: req.volume_size << 30,
            start_time: store::format_time(now),
            description,
            lineage,
            map: map_hash,
            source_region: None,
            source_snapshot_id: None,
            tags: req.tags.clone(),
            client_token: req.client_token.clone(),
            pending: Some(PendingSnapshot {
                deadline: store::format_time(now + Duration::from_secs(timeout * 60)),
                parent_snapshot_id: req.parent_snapshot_id.clone(),
            }),
        };
        let existing = self.region.update(|h| {
            // A retry with the same token that raced this one.
            if let Some(r) = token.and_then(|t| same_token(h, t)) {
                return Ok(Some(r.clone()));
            }
            h.snapshots.insert(id.clone(), record.clone());
            Ok(None)
        })?;
        match existing {
            Some(r) => self.idempotent(&r, req),
            None => Ok(record),
        }
    }

    /// The snapshot an earlier StartSnapshot with the same ClientToken made, if the request
    /// is the same; else ConflictException.
    fn idempotent(&self, r: &SnapshotRecord, req: &StartSnapshotRequest) -> Result<SnapshotRecord> {
        let same = r.volume_size_bytes == req.volume_size << 30
            && r.description == req.description.clone().unwrap_or_default()
            && r.tags == req.tags
            && r.pending
                .as_ref()
                .map(|p| &p.parent_snapshot_id)
                .is_none_or(|p| *p == req.parent_snapshot_id);
        if !same {
            return Err(Error::ebs(
                EbsCode::ConflictException,
                "",
                format!(
                    "ClientToken was used for {} by a different request; use a new token",
                    r.snapshot_id
                ),
            ));
        }
        Ok(r.clone())
    }

    /// The record of a pending snapshot that takes writes now.
    fn writable(&self, id: &str) -> Result<SnapshotRecord> {
        check_snapshot_id(id)?;
        let r = self.snapshot_record(id)?;
        match &r.pending {
            None => Err(invalid(
                "INVALID_SNAPSHOT_ID",
                format!("{id} is completed; write to a snapshot from StartSnapshot before CompleteSnapshot"),
            )),
            Some(p) if p.expired(self.kms.home().now()) => Err(invalid(
                "WRITE_REQUEST_TIMEOUT",
                format!("{id} timed out before it was completed; start a new snapshot"),
            )),
            Some(_) => Ok(r),
        }
    }

    /// PutSnapshotBlock: checks the data against its checksum, seals and stores it, and
    /// journals it. Returns the checksum (base64 SHA-256 of the data).
    pub fn put_snapshot_block(&self, req: &PutBlock) -> Result<String> {
        self.kms.audited(
            Call::ebs("PutSnapshotBlock", false)
                .param("snapshotId", req.snapshot_id)
                .param("blockIndex", req.index)
                .param("dataLength", req.data_length)
                .param("checksumAlgorithm", req.checksum_algorithm),
            |_| self.put_block_inner(req).map_err(as_ebs),
        )
    }

    fn put_block_inner(&self, req: &PutBlock) -> Result<String> {
        let r = self.writable(req.snapshot_id)?;
        let block_count = r.volume_size_bytes / BLOCK_SIZE as u64;
        if req.index >= block_count {
            return Err(invalid(
                "INVALID_BLOCK",
                format!(
                    "block index {} is past the end of {} ({block_count} blocks)",
                    req.index, req.snapshot_id
                ),
            ));
        }
        if req.data_length != BLOCK_SIZE as u64 || req.data.len() != BLOCK_SIZE {
            return Err(invalid(
                "INVALID_BLOCK",
                format!(
                    "a block is {BLOCK_SIZE} bytes (x-amz-Data-Length {}, {} bytes sent)",
                    req.data_length,
                    req.data.len()
                ),
            ));
        }
        if req.checksum_algorithm != "SHA256" {
            return Err(invalid(
                "INVALID_PARAMETER_VALUE",
                "x-amz-Checksum-Algorithm must be SHA256",
            ));
        }
        if req.progress.is_some_and(|p| p > 100) {
            return Err(invalid(
                "INVALID_PARAMETER_VALUE",
                "x-amz-Progress must be 0 to 100",
            ));
        }
        let sha = self.sha256(req.data);
        if decode_b64(req.checksum).as_deref() != Some(&sha[..]) {
            return Err(invalid(
                "INVALID_BLOCK",
                format!(
                    "the data of block {} does not match its x-amz-Checksum (base64 SHA-256); nothing was written",
                    req.index
                ),
            ));
        }
        let open = self.open_lineage_kept(&r.lineage)?;
        let _writing = self.region.writing()?;
        let block = if is_zero(req.data) {
            None
        } else {
            let (h, _) = match &open.cipher {
                Some(c) => {
                    // Sealed in place: once seal_stored returns the buffer holds only
                    // ciphertext, so it needs no wiping (the request's buffer is wiped).
                    let mut buf = Vec::with_capacity(super::block::SEALED_BLOCK_LEN);
                    buf.resize(SALT_LEN, 0);
                    buf.extend_from_slice(req.data);
                    c.seal_stored(req.index, &mut buf);
                    self.region.blocks.put(&buf)?
                }
                None => self.region.blocks.put(req.data)?,
            };
            Some(h)
        };
        self.write_entry(req.snapshot_id, req.index, &Entry { block, sha256: sha })?;
        Ok(b64(&sha))
    }

    /// CompleteSnapshot: `changed_blocks` must be the number of blocks written; `checksum`
    /// (base64, SHA256, LINEAR) if given must match the blocks' checksums. Publishes the
    /// snapshot as `completed` in one head switch.
    pub fn complete_snapshot(
        &self,
        id: &str,
        changed_blocks: u64,
        checksum: Option<(&str, &str, &str)>,
    ) -> Result<()> {
        self.kms.audited(
            Call::ebs("CompleteSnapshot", false)
                .param("snapshotId", id)
                .param("changedBlocksCount", changed_blocks),
            |_| {
                self.complete_inner(id, changed_blocks, checksum)
                    .map_err(as_ebs)
            },
        )
    }

    fn complete_inner(
        &self,
        id: &str,
        changed_blocks: u64,
        checksum: Option<(&str, &str, &str)>,
    ) -> Result<()> {
        if let Some((_, alg, method)) = checksum {
            if alg != "SHA256" || method != "LINEAR" {
                return Err(invalid(
                    "INVALID_PARAMETER_VALUE",
                    "the aggregated checksum must be SHA256 with aggregation method LINEAR",
                ));
            }
        }
        self.writable(id)?;
        let _writing = self.region.writing()?;
        self.region.update(|h| {
            let r = h
                .snapshots
                .get(id)
                .cloned()
                .ok_or_else(|| super::not_found("snapshot", id, self.kms.region()))?;
            if r.pending.is_none() {
                return Err(invalid("INVALID_SNAPSHOT_ID", format!("{id} is already completed")));
            }
            let journal = self.read_journal(id)?;
            if journal.len() as u64 != changed_blocks {
                return Err(invalid(
                    "INVALID_PARAMETER_VALUE",
                    format!(
                        "ChangedBlocksCount is {changed_blocks} but {} blocks were written to {id}; nothing was completed",
                        journal.len()
                    ),
                ));
            }
            if let Some((sum, _, _)) = checksum {
                // SHA-256 over the blocks' checksums in index order: their bytes, or (as
                // some clients read "concatenate them to form a single string") their base64.
                let raw: Vec<u8> = journal.values().flat_map(|e| e.sha256).collect();
                let text: String = journal.values().map(|e| b64(&e.sha256)).collect();
                let want = decode_b64(sum);
                let ok = [self.sha256(&raw), self.sha256(text.as_bytes())]
                    .iter()
                    .any(|s| want.as_deref() == Some(&s[..]));
                if !ok {
                    return Err(invalid(
                        "INVALID_PARAMETER_VALUE",
                        format!("the aggregated checksum does not match the blocks written to {id}; nothing was completed"),
                    ));
                }
            }
            let mut map = self.region.load_map(&r.map)?;
            for (i, e) in &journal {
                match e.block {
                    Some(b) => {
                        if !self.region.blocks.contains(&b) {
                            return Err(Error::StoreCorrupt(format!(
                                "block {i} of pending snapshot {id} is missing"
                            )));
                        }
                        map.blocks.insert(*i, b);
                    }
                    None => {
                        map.blocks.remove(i);
                    }
                }
            }
            let map_hash = self.region.save_map(&map)?;
            let rec = h.snapshots.get_mut(id).expect("present");
            rec.map = map_hash;
            rec.pending = None;
            Ok(())
        })?;
        // The journal is stale now; gc removes it if this does not.
        let _ = std::fs::remove_dir_all(self.journal_dir(id));
        Ok(())
    }

    fn block_mac(
        &self,
        key: &SecretKey,
        id: &str,
        index: u64,
        hash: &BlockHash,
        expiry: u64,
    ) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(key.expose());
        h.update(LABEL_BLOCK_TOKEN);
        h.update(self.kms.region().as_str().as_bytes());
        h.update(&[0]);
        h.update(id.as_bytes());
        h.update(&[0]);
        h.update(&index.to_be_bytes());
        h.update(hash);
        h.update(&expiry.to_be_bytes());
        *h.finalize().as_bytes()
    }

    fn page_token(&self, key: &SecretKey, scope: &str, next: u64) -> String {
        let mut h = blake3::Hasher::new_keyed(key.expose());
        h.update(LABEL_PAGE_TOKEN);
        h.update(scope.as_bytes());
        h.update(&next.to_be_bytes());
        let mut t = next.to_be_bytes().to_vec();
        t.extend_from_slice(&h.finalize().as_bytes()[..16]);
        b64(&t)
    }

    /// Where a listing starts: the page token's index if given (checked), else
    /// StartingBlockIndex, else 0.
    fn page_start(
        &self,
        key: &SecretKey,
        scope: &str,
        next_token: Option<&str>,
        starting: Option<u64>,
    ) -> Result<u64> {
        match next_token {
            Some(t) => {
                let raw = decode_b64(t).filter(|r| r.len() == 24);
                let next = raw
                    .as_ref()
                    .map(|r| u64::from_be_bytes(r[..8].try_into().expect("8 bytes")));
                match next {
                    Some(n) if self.page_token(key, scope, n) == t => Ok(n),
                    _ => Err(invalid(
                        "INVALID_PAGE_TOKEN",
                        "the NextToken was not issued for this listing",
                    )),
                }
            }
            None => Ok(starting.unwrap_or(0)),
        }
    }

    /// A completed snapshot's record, for reading.
    fn readable(&self, id: &str) -> Result<SnapshotRecord> {
        check_snapshot_id(id)?;
        let r = self.snapshot_record(id)?;
        if r.pending.is_some() {
            return Err(invalid(
                "INVALID_SNAPSHOT_ID",
                format!("{id} is pending; complete it before reading it"),
            ));
        }
        Ok(r)
    }

    /// ListSnapshotBlocks: the stored blocks of a completed snapshot, with their tokens.
    pub fn list_snapshot_blocks(
        &self,
        id: &str,
        max_results: Option<u64>,
        next_token: Option<&str>,
        starting: Option<u64>,
    ) -> Result<BlockPage> {
        self.kms.audited(
            Call::ebs("ListSnapshotBlocks", true).param("snapshotId", id),
            |_| {
                (|| {
                    let max = page_size(max_results)?;
                    let r = self.readable(id)?;
                    let map = self.region.load_map(&r.map)?;
                    let key = self.token_key();
                    let from = self.page_start(&key, id, next_token, starting)?;
                    let expiry = self.kms.home().now() + TOKEN_LIFETIME;
                    let mut blocks = Vec::new();
                    let mut next = None;
                    for (i, h) in map.blocks.range(from..) {
                        if blocks.len() as u64 == max {
                            next = Some(self.page_token(&key, id, *i));
                            break;
                        }
                        blocks.push((
                            *i,
                            block_token(
                                epoch(expiry),
                                &self.block_mac(&key, id, *i, h, epoch(expiry)),
                            ),
                        ));
                    }
                    Ok(BlockPage {
                        blocks,
                        next_token: next,
                        expiry_time: expiry,
                        volume_size: r.volume_size_bytes.div_ceil(1 << 30),
                    })
                })()
                .map_err(as_ebs)
            },
        )
    }

    /// ListChangedBlocks: the blocks that differ between two completed snapshots of one
    /// lineage (or, without `first`, every stored block of `second`).
    pub fn list_changed_blocks(
        &self,
        first: Option<&str>,
        second: &str,
        max_results: Option<u64>,
        next_token: Option<&str>,
        starting: Option<u64>,
    ) -> Result<ChangedBlockPage> {
        self.kms.audited(
            Call::ebs("ListChangedBlocks", true)
                .param("firstSnapshotId", first)
                .param("secondSnapshotId", second),
            |_| {
                (|| {
                    let max = page_size(max_results)?;
                    let b = self.readable(second)?;
                    let a = first.map(|f| self.readable(f)).transpose()?;
                    if let Some(a) = &a {
                        if a.lineage.id != b.lineage.id {
                            return Err(invalid(
                                "UNRELATED_SNAPSHOTS",
                                format!("{} and {second} are not of one lineage", a.snapshot_id),
                            ));
                        }
                    }
                    let mb = self.region.load_map(&b.map)?;
                    let ma = match &a {
                        Some(a) => self.region.load_map(&a.map)?,
                        None => BlockMap::new(mb.block_count),
                    };
                    let key = self.token_key();
                    let scope = format!("{}\0{second}", first.unwrap_or(""));
                    let from = self.page_start(&key, &scope, next_token, starting)?;
                    let expiry = self.kms.home().now() + TOKEN_LIFETIME;
                    let exp = epoch(expiry);
                    let mut changed = Vec::new();
                    let mut next = None;
                    for i in ma.changed(&mb).into_iter().filter(|i| *i >= from) {
                        if changed.len() as u64 == max {
                            next = Some(self.page_token(&key, &scope, i));
                            break;
                        }
                        let t1 = a.as_ref().and_then(|a| {
                            ma.blocks.get(&i).map(|h| {
                                block_token(exp, &self.block_mac(&key, &a.snapshot_id, i, h, exp))
                            })
                        });
                        let t2 = mb
                            .blocks
                            .get(&i)
                            .map(|h| block_token(exp, &self.block_mac(&key, second, i, h, exp)));
                        changed.push((i, t1, t2));
                    }
                    Ok(ChangedBlockPage {
                        changed,
                        next_token: next,
                        expiry_time: expiry,
                        volume_size: b.volume_size_bytes.div_ceil(1 << 30),
                    })
                })()
                .map_err(as_ebs)
            },
        )
    }

    /// GetSnapshotBlock: block `index` of a completed snapshot, given a token issued for it.
    pub fn get_snapshot_block(&self, id: &str, index: u64, token: &str) -> Result<BlockData> {
        self.kms.audited(
            Call::ebs("GetSnapshotBlock", true)
                .param("snapshotId", id)
                .param("blockIndex", index),
            |_| {
                (|| {
                    let r = self.readable(id)?;
                    let map = self.region.load_map(&r.map)?;
                    let bad = || {
                        invalid(
                            "INVALID_BLOCK_TOKEN",
                            format!("the BlockToken is not one issued for block {index} of {id}"),
                        )
                    };
                    let raw = decode_b64(token)
                        .filter(|t| t.len() == 40)
                        .ok_or_else(bad)?;
                    let expiry = u64::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
                    let h = map.blocks.get(&index).ok_or_else(bad)?;
                    let mac: [u8; 32] = raw[8..].try_into().expect("32 bytes");
                    if !super::constant_time_eq(
                        &mac,
                        &self.block_mac(&self.token_key(), id, index, h, expiry),
                    ) {
                        return Err(bad());
                    }
                    if expiry < epoch(self.kms.home().now()) {
                        return Err(invalid(
                            "INVALID_BLOCK_TOKEN",
                            "the BlockToken has expired; list the blocks again",
                        ));
                    }
                    let open = self.open_lineage_kept(&r.lineage)?;
                    let mut data = Zeroizing::new(vec![0u8; BLOCK_SIZE]);
                    let mut stored = Zeroizing::new(Vec::new());
                    read_block(
                        &self.region.blocks,
                        &open,
                        index,
                        Some(h),
                        &mut stored,
                        &mut data,
                    )?;
                    let checksum = b64(&self.sha256(&data));
                    Ok(BlockData { data, checksum })
                })()
                .map_err(as_ebs)
            },
        )
    }
}

/// A block token: its expiry and its MAC, base64.
fn block_token(expiry: u64, mac: &[u8; 32]) -> String {
    let mut t = expiry.to_be_bytes().to_vec();
    t.extend_from_slice(mac);
    b64(&t)
}

fn same_token<'h>(head: &'h Head, token: &str) -> Option<&'h SnapshotRecord> {
    head.snapshots
        .values()
        .find(|r| r.client_token.as_deref() == Some(token))
}

fn page_size(max: Option<u64>) -> Result<u64> {
    match max {
        None => Ok(10_000),
        Some(m) if (100..=10_000).contains(&m) => Ok(m),
        Some(_) => Err(invalid(
            "INVALID_PARAMETER_VALUE",
            "MaxResults must be 100 to 10000",
        )),
    }
}
