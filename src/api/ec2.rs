//! EC2 volume and snapshot responses, as the `ec2` 2016-11-15 model shapes them (the EC2 Query
//! protocol sends them as XML; the CLI prints them as the AWS CLI does, in JSON).

use crate::ebs::{Snapshot, Volume};
use serde::Serialize;
use std::collections::BTreeMap;

/// A `Tag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// A `TagList` of a tag map (left out of a response when empty).
pub fn tag_list(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag {
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}

/// A `Volume` of CreateVolume and DescribeVolumes (cofre's own byte and block counts left out).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ec2Volume {
    pub volume_id: String,
    pub size: u64,
    pub state: &'static str,
    pub encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    pub snapshot_id: String,
    pub create_time: String,
    pub volume_type: &'static str,
    pub availability_zone: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl From<&Volume> for Ec2Volume {
    fn from(v: &Volume) -> Self {
        Ec2Volume {
            volume_id: v.volume_id.clone(),
            size: v.size,
            state: v.state,
            encrypted: v.encrypted,
            kms_key_id: v.kms_key_id.clone(),
            snapshot_id: v.snapshot_id.clone(),
            create_time: v.create_time.clone(),
            volume_type: v.volume_type,
            availability_zone: v.availability_zone.clone(),
            tags: tag_list(&v.tags),
        }
    }
}

/// A `Snapshot` of CreateSnapshot and DescribeSnapshots.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ec2Snapshot {
    pub snapshot_id: String,
    pub volume_id: String,
    pub state: &'static str,
    pub volume_size: u64,
    pub encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_encryption_key_id: Option<String>,
    pub start_time: String,
    pub progress: &'static str,
    pub description: String,
    pub owner_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl From<&Snapshot> for Ec2Snapshot {
    fn from(s: &Snapshot) -> Self {
        Ec2Snapshot {
            snapshot_id: s.snapshot_id.clone(),
            volume_id: s.volume_id.clone(),
            state: s.state,
            volume_size: s.volume_size,
            encrypted: s.encrypted,
            kms_key_id: s.kms_key_id.clone(),
            data_encryption_key_id: s.data_encryption_key_id.clone(),
            start_time: s.start_time.clone(),
            progress: s.progress,
            description: s.description.clone(),
            owner_id: s.owner_id.clone(),
            tags: tag_list(&s.tags),
        }
    }
}

/// CopySnapshot.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CopySnapshotResult {
    pub snapshot_id: String,
}
