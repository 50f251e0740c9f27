//! CopySnapshot between regions: the lineage's data key is unwrapped in the source region and
//! wrapped again under the destination's key; blocks are not sealed again. Only the blocks the
//! destination lacks move, by hard link when both region folders share a filesystem.

use super::block::Placed;
use super::snapshot::{check_description, Snapshot};
use super::{new_id, Ebs, SnapshotRecord, BLOCK_SIZE};
use crate::envelope::Progress;
use crate::error::{Ec2Code, Error, Result};
use crate::keyring::Region;
use crate::kms::Call;
use crate::kms::KeyRef;
use crate::store;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What CopySnapshot takes (sent to the destination region).
#[derive(Debug, Clone)]
pub struct CopySnapshotRequest {
    pub source_region: Region,
    pub source_snapshot_id: String,
    /// Encrypted=true (needed with `kms_key`; encrypts a copy of an unencrypted snapshot).
    pub encrypted: bool,
    /// KmsKeyId in the destination region (default: its EBS default key).
    pub kms_key: Option<KeyRef>,
    /// Seal every block again under a new data key instead of re-wrapping the old one.
    pub reencrypt: bool,
    pub description: Option<String>,
    /// TagSpecifications of the copy.
    pub tags: std::collections::BTreeMap<String, String>,
    pub quiet: bool,
}

/// The new snapshot, and how its blocks arrived.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CopyReport {
    pub snapshot: Snapshot,
    /// Blocks of the snapshot (not all zeros).
    pub blocks: u64,
    /// Already in the destination.
    pub present: u64,
    /// Hard-linked from the source.
    pub linked: u64,
    /// Written as new bytes (copied, or sealed again).
    pub written: u64,
    /// True if the data was sealed again under a new data key.
    pub resealed: bool,
}

impl Ebs<'_> {
    /// CopySnapshot into this region.
    pub fn copy_snapshot(&self, req: &CopySnapshotRequest) -> Result<CopyReport> {
        self.kms.audited(
            Call::ec2("CopySnapshot", false)
                .param("sourceRegion", req.source_region.as_str())
                .param("sourceSnapshotId", &req.source_snapshot_id)
                .param("encrypted", req.encrypted)
                .param("reencrypt", req.reencrypt)
                .param("kmsKeyId", req.kms_key.as_ref().map(|k| k.to_string())),
            |_| {
                if req.kms_key.is_some() && !req.encrypted {
                    return Err(Error::ec2(
                        Ec2Code::InvalidParameterDependency,
                        "--kms-key needs --encrypted (as KmsKeyId needs Encrypted=true)",
                    ));
                }
                if let Some(d) = &req.description {
                    check_description(d)?;
                }
                super::check_tags(&req.tags)?;
                let src_kms = self.kms.in_region(req.source_region.clone())?;
                let src = Ebs::new(&src_kms)?;
                // Hold off removals in both regions, from before the snapshot is read until
                // the copy names its blocks.
                let _src_writing = src.region.writing()?;
                let _dst_writing = self.region.writing()?;
                let snap = src.snapshot_record(&req.source_snapshot_id)?;
                snap.check_completed()?;
                let map = src.region.load_map(&snap.map)?;
                let head = self.region.load_head()?;
                let src_encrypted = snap.lineage.data_key.is_some();
                let key = if src_encrypted || req.encrypted || head.encryption_by_default {
                    Some(self.key_for_new_lineage(&head, req.kms_key.as_ref())?)
                } else {
                    None
                };
                let bytes = map.blocks.len() as u64 * BLOCK_SIZE as u64;
                let progress = Progress::new("copy", Some(bytes), req.quiet);
                let (present, linked, written) =
                    (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
                self.region.ensure_head()?;
                let resealed = req.reencrypt || (!src_encrypted && key.is_some());
                let (lineage, new_map) = if resealed {
                    let from = src.open_lineage(&snap.lineage)?;
                    let to =
                        self.open_lineage(&self.new_lineage(&snap.volume_id, key.as_ref())?)?;
                    let m = self.reseal_from(&src.region.blocks, &map, &from, &to, &progress)?;
                    written.store(m.blocks.len() as u64, Relaxed);
                    (to.lineage, m)
                } else {
                    let lineage = match &key {
                        Some(k) => {
                            let data_key = src.unwrap_data_key(&snap.lineage, false)?;
                            self.rewrap_lineage(&snap.lineage, k, &data_key)?
                        }
                        None => snap.lineage.clone(),
                    };
                    let dirs = self.region.blocks.open_pair(&src.region.blocks)?;
                    map.blocks.par_iter().try_for_each(|(_, h)| -> Result<()> {
                        let counter =
                            match self
                                .region
                                .blocks
                                .transfer_at(&src.region.blocks, &dirs, h)?
                            {
                                Placed::Present => &present,
                                Placed::Linked => &linked,
                                Placed::Written => &written,
                            };
                        counter.fetch_add(1, Relaxed);
                        progress.inc(BLOCK_SIZE as u64);
                        Ok(())
                    })?;
                    (lineage, map)
                };
                drop(progress);
                let map_hash = self.region.save_map(&new_map)?;
                let id = new_id("snap-");
                let record = SnapshotRecord {
                    snapshot_id: id.clone(),
                    volume_id: snap.volume_id.clone(),
                    volume_size_bytes: snap.volume_size_bytes,
                    start_time: store::format_time(self.kms.home().now()),
                    description: req.description.clone().unwrap_or_else(|| {
                        format!(
                            "[Copied {} from {}]",
                            req.source_snapshot_id, req.source_region
                        )
                    }),
                    lineage,
                    map: map_hash,
                    source_region: Some(req.source_region.to_string()),
                    source_snapshot_id: Some(req.source_snapshot_id.clone()),
                    tags: req.tags.clone(),
                    client_token: None,
                    pending: None,
                };
                self.region.update(|h| {
                    h.snapshots.insert(id.clone(), record.clone());
                    Ok(())
                })?;
                Ok(CopyReport {
                    snapshot: self.describe_snapshot_record(&record)?,
                    blocks: new_map.blocks.len() as u64,
                    present: present.into_inner(),
                    linked: linked.into_inner(),
                    written: written.into_inner(),
                    resealed,
                })
            },
        )
    }
}
