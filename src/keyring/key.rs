//! Key records: KMS-shaped metadata, tags, and the key's material versions sealed under the
//! domain key.

use serde::{Deserialize, Serialize};

/// KMS `KeyState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    Creating,
    Enabled,
    Disabled,
    PendingDeletion,
    PendingImport,
    PendingReplicaDeletion,
    Unavailable,
    Updating,
}

/// KMS `KeyManager`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum KeyManager {
    Aws,
    Customer,
}

/// KMS `KeySpec`: the specs cofre makes keys of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum KeySpec {
    #[serde(rename = "SYMMETRIC_DEFAULT")]
    #[value(name = "SYMMETRIC_DEFAULT")]
    SymmetricDefault,
    #[serde(rename = "RSA_2048")]
    #[value(name = "RSA_2048")]
    Rsa2048,
    #[serde(rename = "RSA_3072")]
    #[value(name = "RSA_3072")]
    Rsa3072,
    #[serde(rename = "RSA_4096")]
    #[value(name = "RSA_4096")]
    Rsa4096,
    #[serde(rename = "ECC_NIST_P256")]
    #[value(name = "ECC_NIST_P256")]
    EccNistP256,
    #[serde(rename = "ECC_NIST_P384")]
    #[value(name = "ECC_NIST_P384")]
    EccNistP384,
    #[serde(rename = "ECC_NIST_P521")]
    #[value(name = "ECC_NIST_P521")]
    EccNistP521,
    #[serde(rename = "ECC_SECG_P256K1")]
    #[value(name = "ECC_SECG_P256K1")]
    EccSecgP256k1,
    #[serde(rename = "HMAC_224")]
    #[value(name = "HMAC_224")]
    Hmac224,
    #[serde(rename = "HMAC_256")]
    #[value(name = "HMAC_256")]
    Hmac256,
    #[serde(rename = "HMAC_384")]
    #[value(name = "HMAC_384")]
    Hmac384,
    #[serde(rename = "HMAC_512")]
    #[value(name = "HMAC_512")]
    Hmac512,
}

/// KMS `KeyUsage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[clap(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyUsage {
    EncryptDecrypt,
    SignVerify,
    GenerateVerifyMac,
    KeyAgreement,
}

impl KeySpec {
    /// The KMS name, e.g. `ECC_NIST_P256`.
    pub fn name(self) -> &'static str {
        match self {
            KeySpec::SymmetricDefault => "SYMMETRIC_DEFAULT",
            KeySpec::Rsa2048 => "RSA_2048",
            KeySpec::Rsa3072 => "RSA_3072",
            KeySpec::Rsa4096 => "RSA_4096",
            KeySpec::EccNistP256 => "ECC_NIST_P256",
            KeySpec::EccNistP384 => "ECC_NIST_P384",
            KeySpec::EccNistP521 => "ECC_NIST_P521",
            KeySpec::EccSecgP256k1 => "ECC_SECG_P256K1",
            KeySpec::Hmac224 => "HMAC_224",
            KeySpec::Hmac256 => "HMAC_256",
            KeySpec::Hmac384 => "HMAC_384",
            KeySpec::Hmac512 => "HMAC_512",
        }
    }
}

impl KeyUsage {
    /// The KMS name, e.g. `SIGN_VERIFY`.
    pub fn name(self) -> &'static str {
        match self {
            KeyUsage::EncryptDecrypt => "ENCRYPT_DECRYPT",
            KeyUsage::SignVerify => "SIGN_VERIFY",
            KeyUsage::GenerateVerifyMac => "GENERATE_VERIFY_MAC",
            KeyUsage::KeyAgreement => "KEY_AGREEMENT",
        }
    }
}

impl std::fmt::Display for KeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl std::fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// KMS `Origin`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[clap(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Origin {
    #[default]
    AwsKms,
    External,
}

/// The fields of KMS `KeyMetadata` that cofre models, named and shaped as KMS returns them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadata {
    #[serde(rename = "AWSAccountId", alias = "AwsAccountId")]
    pub aws_account_id: String,
    pub key_id: String,
    pub arn: String,
    pub creation_date: String,
    /// True exactly when `key_state` is `Enabled`.
    pub enabled: bool,
    pub description: String,
    pub key_usage: KeyUsage,
    pub key_state: KeyState,
    pub key_manager: KeyManager,
    pub key_spec: KeySpec,
    /// Deprecated KMS twin of `KeySpec`, still returned by KMS.
    pub customer_master_key_spec: KeySpec,
    pub origin: Origin,
    pub multi_region: bool,
    /// The algorithms the key allows, one list per usage; only its usage's list is present.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encryption_algorithms: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_algorithms: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mac_algorithms: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_agreement_algorithms: Vec<String>,
    /// Empty (and left out) while an imported key waits for its first material.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current_key_material_id: String,
    /// When a key pending deletion is destroyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_date: Option<String>,
    /// The waiting period chosen for a pending deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_deletion_window_in_days: Option<u32>,
    /// For imported material: KEY_MATERIAL_EXPIRES or KEY_MATERIAL_DOES_NOT_EXPIRE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_model: Option<String>,
    /// When imported material expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
    /// For multi-Region keys: this key's role and its related keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_region_configuration: Option<MultiRegionConfiguration>,
}

/// KMS `MultiRegionKeyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MultiRegionKeyType {
    Primary,
    Replica,
}

/// A related multi-Region key: its ARN and region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegionalKey {
    pub arn: String,
    pub region: String,
}

/// KMS `MultiRegionConfiguration`. The primary lists every replica; a replica names its
/// primary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MultiRegionConfiguration {
    pub multi_region_key_type: MultiRegionKeyType,
    pub primary_key: RegionalKey,
    pub replica_keys: Vec<RegionalKey>,
}

/// How a material version came to be (KMS `RotationType`); none for the original material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RotationType {
    Automatic,
    OnDemand,
}

/// A key's rotation settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Rotation {
    /// Automatic rotation is on.
    pub enabled: bool,
    /// Days between automatic rotations (90–2560).
    pub rotation_period_in_days: Option<u32>,
    /// When the next automatic rotation is due.
    pub next_rotation_date: Option<String>,
    /// On-demand rotations so far (at most 25 per key).
    pub on_demand_rotations: u32,
}

/// A KMS tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub tag_key: String,
    pub tag_value: String,
}

/// One version of a key's material, sealed under the domain key.
///
/// Imported material (origin EXTERNAL) can be deleted or expire while its version stays
/// associated with the key: then `sealed` is empty (KMS ImportState `PENDING_IMPORT`) until the
/// same material is imported again.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MaterialVersion {
    /// KMS `KeyMaterialId`: 64 lowercase hex characters.
    pub key_material_id: String,
    /// When this version was made (imported material: when it was first imported; on a
    /// rotation, when it became current).
    pub creation_date: String,
    /// Automatic or on-demand rotation; none for the key's original material and for imported
    /// material still pending rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_type: Option<RotationType>,
    /// Hex of nonce ‖ sealed material ‖ tag; see [`super::Home::seal_material`]. Empty while
    /// imported material is deleted or expired.
    pub sealed: String,
    /// Imported material: KEY_MATERIAL_EXPIRES or KEY_MATERIAL_DOES_NOT_EXPIRE (none in
    /// records of earlier versions, whose key metadata says it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_model: Option<String>,
    /// Imported material: when it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
    /// Imported material: the caller's description of it (KMS `KeyMaterialDescription`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Imported with ImportType NEW_KEY_MATERIAL and not yet made current by
    /// RotateKeyOnDemand (KMS `PENDING_ROTATION`): not associated with the key for good.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending_rotation: bool,
}

impl MaterialVersion {
    /// Whether the material itself is held (imported material may be deleted or expired).
    pub fn is_imported(&self) -> bool {
        !self.sealed.is_empty()
    }
}

impl std::fmt::Debug for MaterialVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaterialVersion")
            .field("key_material_id", &self.key_material_id)
            .field("creation_date", &self.creation_date)
            .finish_non_exhaustive()
    }
}

/// A key as stored in `regions/<region>/keys/<key-id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyRecord {
    pub key_metadata: KeyMetadata,
    pub tags: Vec<Tag>,
    /// Every material version, oldest first; the current one is named in the metadata.
    pub materials: Vec<MaterialVersion>,
    /// Automatic and on-demand rotation.
    #[serde(default)]
    pub rotation: Rotation,
    /// For multi-Region keys: how many times the primary has moved. Every key of the set
    /// written by one UpdatePrimaryRegion gets the same new value, so after a crash midway the
    /// higher value tells which roles are current.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub primary_epoch: u64,
    /// The key policy (policy name `default`) as its JSON text; none means the default key
    /// policy (the account root gets `kms:*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Grants on this key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    /// For asymmetric keys: the public key, base64 of DER SubjectPublicKeyInfo (not secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

/// KMS `GrantConstraints`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GrantConstraints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_context_subset: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_context_equals: Option<std::collections::BTreeMap<String, String>>,
}

/// KMS `GrantListEntry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Grant {
    pub grant_id: String,
    pub key_id: String,
    pub grantee_principal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_principal: Option<String>,
    pub operations: Vec<String>,
    #[serde(default)]
    pub constraints: GrantConstraints,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub creation_date: String,
    pub issuing_account: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What stays of a key after its deletion: `regions/<region>/deleted/<key-id>.json`, so that
/// requests naming it can say what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeletedKey {
    pub key_id: String,
    pub arn: String,
    pub deletion_date: String,
    /// When the key was created, and who managed it (for usage reports after deletion).
    #[serde(default)]
    pub creation_date: String,
    #[serde(default = "customer")]
    pub key_manager: KeyManager,
    /// The key's spec (for pricing its requests after deletion); none in tombstones of
    /// earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_spec: Option<KeySpec>,
}

fn customer() -> KeyManager {
    KeyManager::Customer
}

impl KeyRecord {
    /// The material version with this id.
    pub fn material(&self, id: &str) -> Option<&MaterialVersion> {
        self.materials.iter().find(|m| m.key_material_id == id)
    }

    /// When the key next needs upkeep, if ever: its deletion date (pending deletion), its
    /// next automatic rotation (an Enabled key with rotation on, not a replica: replicas rotate
    /// with their primary), when its imported material expires, or at once (a primary waiting
    /// for its replicas to go).
    pub fn upkeep_due(&self) -> Option<std::time::SystemTime> {
        let m = &self.key_metadata;
        let parse =
            |d: &Option<String>| d.as_deref().and_then(|d| crate::store::parse_time(d).ok());
        let deletion = (m.key_state == KeyState::PendingDeletion)
            .then(|| parse(&m.deletion_date))
            .flatten();
        let waiting =
            (m.key_state == KeyState::PendingReplicaDeletion).then_some(std::time::UNIX_EPOCH);
        let rotation =
            (self.rotation.enabled && m.key_state == KeyState::Enabled && !self.is_replica())
                .then(|| parse(&self.rotation.next_rotation_date))
                .flatten();
        let expiry = self
            .materials
            .iter()
            .filter_map(|v| self.material_valid_to(v))
            .min();
        [deletion, waiting, rotation, expiry]
            .into_iter()
            .flatten()
            .min()
    }

    /// When the imported material of version `v` expires, if it is held and expires. Records
    /// of earlier versions keep the expiry of their one version in the key metadata.
    pub fn material_valid_to(&self, v: &MaterialVersion) -> Option<std::time::SystemTime> {
        let m = &self.key_metadata;
        if m.origin != Origin::External || !v.is_imported() {
            return None;
        }
        let own = if v.expiration_model.is_some() {
            v.valid_to.as_deref()
        } else {
            m.valid_to.as_deref()
        };
        own.and_then(|t| crate::store::parse_time(t).ok())
    }

    /// A replica of a multi-Region key.
    pub fn is_replica(&self) -> bool {
        self.key_metadata
            .multi_region_configuration
            .as_ref()
            .is_some_and(|c| c.multi_region_key_type == MultiRegionKeyType::Replica)
    }

    /// A multi-Region primary key with replicas.
    pub fn has_replicas(&self) -> bool {
        self.key_metadata
            .multi_region_configuration
            .as_ref()
            .is_some_and(|c| {
                c.multi_region_key_type == MultiRegionKeyType::Primary && !c.replica_keys.is_empty()
            })
    }

    /// A multi-Region key related to keys of other regions (checked on every upkeep).
    pub fn is_linked(&self) -> bool {
        self.is_replica() || self.has_replicas()
    }

    /// The SHA-256 of the public key (DER SubjectPublicKeyInfo) of an asymmetric key.
    pub fn public_key_fingerprint(&self) -> Option<[u8; 32]> {
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(self.public_key.as_deref()?)
            .ok()?;
        Some(crate::sign::fingerprint(&der))
    }

    /// Sets the state and keeps `Enabled` in step with it.
    pub fn set_state(&mut self, state: KeyState) {
        self.key_metadata.key_state = state;
        self.key_metadata.enabled = state == KeyState::Enabled;
    }
}
