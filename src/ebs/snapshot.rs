//! Snapshots: a snapshot names its volume's current block map, so making one copies no data
//! and every snapshot is incremental by construction.

use super::{new_id, not_found, Ebs, SnapshotRecord};
use crate::error::{Ec2Code, Error, Result};
use crate::kms::Call;
use crate::store;
use serde::Serialize;
use std::collections::BTreeMap;

/// Longest snapshot description EC2 accepts.
pub const MAX_DESCRIPTION: usize = 255;

/// A snapshot as DescribeSnapshots shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Snapshot {
    pub snapshot_id: String,
    pub volume_id: String,
    pub state: &'static str,
    /// GiB, rounded up.
    pub volume_size: u64,
    /// Exact bytes (cofre's own field).
    pub volume_size_bytes: u64,
    pub encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_encryption_key_id: Option<String>,
    pub start_time: String,
    pub progress: &'static str,
    pub description: String,
    pub owner_id: String,
    /// Blocks stored (not all zeros), cofre's own field.
    pub stored_blocks: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_snapshot_id: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// What ListChangedBlocks reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChangedBlocks {
    pub changed_blocks: Vec<u64>,
    pub block_size: u64,
    /// GiB of the second snapshot.
    pub volume_size: u64,
}

impl Ebs<'_> {
    /// CreateSnapshot of volume `volume_id`: records its current map, in time independent of
    /// its size.
    pub fn create_snapshot(&self, volume_id: &str, description: &str) -> Result<Snapshot> {
        self.create_snapshot_tagged(volume_id, description, &BTreeMap::new())
    }

    /// CreateSnapshot with TagSpecifications.
    pub fn create_snapshot_tagged(
        &self,
        volume_id: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Snapshot> {
        self.kms.audited(
            Call::ec2("CreateSnapshot", false).param("volumeId", volume_id),
            |_| {
                super::check_id(volume_id, "vol-", "volume")?;
                check_description(description)?;
                super::check_tags(tags)?;
                let id = new_id("snap-");
                let record = self.region.update(|h| {
                    let v = h
                        .volumes
                        .get(volume_id)
                        .ok_or_else(|| not_found("volume", volume_id, self.kms.region()))?;
                    let r = SnapshotRecord {
                        snapshot_id: id.clone(),
                        volume_id: volume_id.to_owned(),
                        volume_size_bytes: v.size_bytes,
                        start_time: store::format_time(self.kms.home().now()),
                        description: description.to_owned(),
                        lineage: v.lineage.clone(),
                        map: v.map.clone(),
                        source_region: None,
                        source_snapshot_id: None,
                        tags: tags.clone(),
                        client_token: None,
                        pending: None,
                    };
                    h.snapshots.insert(id.clone(), r.clone());
                    Ok(r)
                })?;
                self.describe_snapshot_record(&record)
            },
        )
    }

    pub(crate) fn describe_snapshot_record(&self, r: &SnapshotRecord) -> Result<Snapshot> {
        let stored = self.region.load_map(&r.map)?.blocks.len() as u64;
        let dk = r.lineage.data_key.as_ref();
        Ok(Snapshot {
            snapshot_id: r.snapshot_id.clone(),
            volume_id: r.volume_id.clone(),
            state: r.state(self.kms.home().now()),
            volume_size: r.volume_size_bytes.div_ceil(1 << 30),
            volume_size_bytes: r.volume_size_bytes,
            encrypted: dk.is_some(),
            kms_key_id: dk.map(|d| d.kms_key_id.clone()),
            data_encryption_key_id: dk.map(|_| r.lineage.id.clone()),
            start_time: r.start_time.clone(),
            progress: if r.pending.is_some() { "0%" } else { "100%" },
            description: r.description.clone(),
            owner_id: self.kms.home().account_id().to_owned(),
            stored_blocks: stored,
            source_region: r.source_region.clone(),
            source_snapshot_id: r.source_snapshot_id.clone(),
            tags: r.tags.clone(),
        })
    }

    /// The record of snapshot `id`.
    pub fn snapshot_record(&self, id: &str) -> Result<SnapshotRecord> {
        super::check_id(id, "snap-", "snapshot")?;
        self.region
            .load_head()?
            .snapshots
            .get(id)
            .cloned()
            .ok_or_else(|| not_found("snapshot", id, self.kms.region()))
    }

    /// DescribeSnapshots for one snapshot.
    pub fn describe_snapshot(&self, id: &str) -> Result<Snapshot> {
        self.kms.audited(
            Call::ec2("DescribeSnapshots", true).param("snapshotId", id),
            |_| self.describe_snapshot_record(&self.snapshot_record(id)?),
        )
    }

    /// DescribeSnapshots for all.
    pub fn list_snapshots(&self) -> Result<Vec<Snapshot>> {
        self.kms.audited(Call::ec2("DescribeSnapshots", true), |_| {
            let head = self.region.load_head()?;
            head.snapshots
                .values()
                .map(|r| self.describe_snapshot_record(r))
                .collect()
        })
    }

    /// DeleteSnapshot: the record goes, then every block nothing uses any more.
    pub fn delete_snapshot(&self, id: &str) -> Result<()> {
        self.kms.audited(
            Call::ec2("DeleteSnapshot", false).param("snapshotId", id),
            |_| {
                super::check_id(id, "snap-", "snapshot")?;
                // Checked before the attach lock is taken, so that deleting what is not
                // there (or a damaged store) leaves no lock file behind.
                if !self.region.load_head()?.snapshots.contains_key(id) {
                    return Err(not_found("snapshot", id, self.kms.region()));
                }
                let _attached = self.region.not_attached(id)?;
                let _removing = self.region.removing()?;
                self.region.update(|h| {
                    h.snapshots
                        .remove(id)
                        .map(drop)
                        .ok_or_else(|| not_found("snapshot", id, self.kms.region()))
                })?;
                // Its attach lock goes with it (held here, so no session has it).
                self.region.forget_attach(id);
                self.collect_garbage().map(drop)
            },
        )
    }

    /// ListChangedBlocks: block indexes whose data differs between two snapshots of one
    /// lineage.
    pub fn diff_snapshots(&self, first: &str, second: &str) -> Result<ChangedBlocks> {
        self.kms.audited(Call::ebs("ListChangedBlocks", true).param("firstSnapshotId", first).param("secondSnapshotId", second), |_| {
        let a = self.snapshot_record(first)?;
        let b = self.snapshot_record(second)?;
        a.check_completed()?;
        b.check_completed()?;
        if a.lineage.id != b.lineage.id {
            return Err(Error::ec2(
                Ec2Code::UnrelatedSnapshots,
                format!("{first} and {second} are not of one volume lineage; diff snapshots of the same volume (or its restores and copies)"),
            ));
        }
        let ma = self.region.load_map(&a.map)?;
        let mb = self.region.load_map(&b.map)?;
        Ok(ChangedBlocks {
            changed_blocks: ma.changed(&mb),
            block_size: super::BLOCK_SIZE as u64,
            volume_size: b.volume_size_bytes.div_ceil(1 << 30),
        })
            })
    }
}

pub(crate) fn check_description(d: &str) -> Result<()> {
    if d.len() > MAX_DESCRIPTION {
        return Err(Error::ec2(
            Ec2Code::InvalidParameterValue,
            format!("the description is over {MAX_DESCRIPTION} characters; shorten it"),
        ));
    }
    Ok(())
}
