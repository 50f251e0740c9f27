//! KMS responses (`TrentService`), as the `kms` 2014-11-01 model shapes them.

use crate::keyring::{KeyMetadata, KeyState, Tag};
use crate::kms::KeyRotationStatus;
use serde::Serialize;

/// CreateKey and DescribeKey.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadataResponse {
    pub key_metadata: KeyMetadata,
}

/// ScheduleKeyDeletion. `DeletionDate` is absent for a primary key waiting for its replicas
/// to be deleted (PendingReplicaDeletion).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleKeyDeletionResponse {
    pub key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_date: Option<String>,
    pub key_state: KeyState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_window_in_days: Option<u32>,
}

impl From<&KeyMetadata> for ScheduleKeyDeletionResponse {
    fn from(m: &KeyMetadata) -> Self {
        ScheduleKeyDeletionResponse {
            key_id: m.arn.clone(),
            deletion_date: m.deletion_date.clone(),
            key_state: m.key_state,
            pending_window_in_days: m.pending_deletion_window_in_days,
        }
    }
}

/// CancelKeyDeletion and RotateKeyOnDemand: the key's ARN.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyIdResponse {
    pub key_id: String,
}

/// GetKeyPolicy.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyPolicyResponse {
    pub policy: String,
    pub policy_name: String,
}

/// GetKeyRotationStatus.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyRotationStatusResponse {
    pub key_rotation_enabled: bool,
    pub key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_period_in_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation_date: Option<String>,
}

impl From<&KeyRotationStatus> for GetKeyRotationStatusResponse {
    fn from(s: &KeyRotationStatus) -> Self {
        GetKeyRotationStatusResponse {
            key_rotation_enabled: s.key_rotation_enabled,
            key_id: s.key_id.clone(),
            rotation_period_in_days: s.rotation_period_in_days,
            next_rotation_date: s.next_rotation_date.clone(),
        }
    }
}

/// CreateGrant.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateGrantResponse {
    pub grant_token: String,
    pub grant_id: String,
}

impl std::fmt::Debug for CreateGrantResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateGrantResponse")
            .field("grant_id", &self.grant_id)
            .finish_non_exhaustive()
    }
}

/// ReplicateKey.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicateKeyResponse {
    pub replica_key_metadata: KeyMetadata,
    pub replica_policy: String,
    pub replica_tags: Vec<Tag>,
}

/// ImportKeyMaterial and DeleteImportedKeyMaterial: the key's ARN and the material version.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMaterialResponse {
    pub key_id: String,
    pub key_material_id: String,
}

impl From<&KeyMetadata> for KeyMaterialResponse {
    fn from(m: &KeyMetadata) -> Self {
        KeyMaterialResponse {
            key_id: m.arn.clone(),
            key_material_id: m.current_key_material_id.clone(),
        }
    }
}
