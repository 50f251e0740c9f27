//! EBS on the local disk: encrypted volumes and snapshots as blocks and records under each
//! region folder, and snapshot copies between regions by re-wrapping the data key.
//!
//! ```text
//! <region folder>/ebs/
//!   head              the region's records, authenticated: "cofre-ebs-head v1 <mac>\n" + JSON
//!   .lock             guards read-modify-write of the head
//!   .gc.lock          shared by anyone writing blocks, exclusive for anyone removing them
//!   attach/<id>.lock  held by a volume session: exclusive read-write, shared read-only
//!   blocks/ab/<hash>  512 KiB data blocks, named by the BLAKE3 hash of their stored bytes
//!   maps/ab/<hash>    block maps (index → block hash), named the same way
//! ```
//!
//! - [`Head`] holds the region's settings (encryption by default, the default key), every
//!   [`VolumeRecord`] and [`SnapshotRecord`]. Its MAC is a keyed BLAKE3 under an AWS owned key
//!   ([`crate::keyring::Home::aws_owned_key`]) bound to the region, so records cannot be
//!   forged, edited or moved between regions. Records name their [`BlockMap`] by hash, and maps
//!   name blocks by hash: the MAC covers everything below it. Encrypted blocks also carry their
//!   index and lineage in their AAD ([`LineageCipher`]).
//! - Write new, then switch: blocks and maps are written first, then the head is replaced
//!   atomically after one `syncfs`. A crash leaves the old head or the new one; what it wrote
//!   before the switch is unreferenced and `cofre gc` removes it. The first head of a region
//!   is written before its first block, so a head missing beside blocks or maps is damage
//!   (never an empty region), and nothing collects a region in that state.
//! - One data key per lineage ([`Lineage`]): made when a volume is created
//!   (GenerateDataKeyWithoutPlaintext, context `{"aws:ebs:id": "vol-…"}`), shared by its
//!   snapshots and the volumes restored from them, re-wrapped (never re-sealed) when a snapshot
//!   is copied to another region.
//! - What cannot be caught: replacing the whole head with an older authentic one (restoring a
//!   backup of the region) — there is no state outside the folder to compare it with.

mod block;
mod cache;
mod copy;
mod describe;
mod direct;
mod ids;
mod map;
mod modify;
mod scrub;
mod session;
mod snapshot;
mod tags;
mod volume;

pub use block::{is_zero, BlockHash, BlockStore, LineageCipher, Placed, BLOCK_SIZE};
pub use copy::{CopyReport, CopySnapshotRequest};
pub use describe::{Filter, Page, PageRequest};
pub(crate) use direct::as_ebs;
pub use direct::{
    BlockData, BlockPage, ChangedBlockPage, PendingSnapshot, PutBlock, StartSnapshotRequest,
};
pub use ids::{check_id, new_id};
pub use map::BlockMap;
pub use scrub::{GcReport, VerifyReport};
pub use session::{Extent, SessionMode, VolumeSession, CLEAN_LIMIT, DIRTY_LIMIT};
pub use snapshot::{ChangedBlocks, Snapshot};
pub use tags::{check_tags, TagDescription};
pub use volume::{CreateVolumeRequest, Volume, VolumeSource, VolumeType};

use crate::crypto::SecretKey;
use crate::envelope::{EncryptionContext, WrappedKey};
use crate::error::{Ec2Code, Error, Result};
use crate::keyring::Region;
use crate::kms::Call;
use crate::kms::{KeyRef, Kms};
use crate::store::{self, LockGuard};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const HEAD_TAG: &str = "cofre-ebs-head v1 ";
const LABEL_DATA_KEY_AAD: &[u8] = b"cofre v1 ebs data key\0";
/// The alias of the AWS managed key EBS uses by default.
pub const DEFAULT_KEY_ALIAS: &str = "alias/aws/ebs";
/// The encryption context key EBS binds a data key to.
pub const CONTEXT_KEY: &str = "aws:ebs:id";

/// A lineage's data key, wrapped under a KMS key (absent for unencrypted lineages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataKey {
    /// ARN of the KMS key that wraps it.
    pub kms_key_id: String,
    /// The volume id in its encryption context (`aws:ebs:id`).
    pub context_volume_id: String,
    /// Key material version, hex.
    pub key_material_id: String,
    /// Nonce ‖ sealed key ‖ tag, hex.
    pub sealed: String,
}

/// The blocks of one volume and everything made from it share a lineage: its id relates
/// snapshots for `snapshot diff`, and its data key seals the blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Lineage {
    /// `dek-…`: shown as DataEncryptionKeyId for encrypted lineages.
    pub id: String,
    /// The wrapped data key, if encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_key: Option<DataKey>,
}

/// A volume, as the head stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeRecord {
    pub volume_id: String,
    /// Bytes (a volume made from an image keeps the image's exact size).
    pub size_bytes: u64,
    pub volume_type: VolumeType,
    pub create_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    pub lineage: Lineage,
    /// Hash of its current [`BlockMap`], hex.
    pub map: String,
    /// Tags (EC2's TagSpecifications, CreateTags; the EBS direct APIs' StartSnapshot Tags).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A snapshot, as the head stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnapshotRecord {
    pub snapshot_id: String,
    pub volume_id: String,
    pub volume_size_bytes: u64,
    pub start_time: String,
    #[serde(default)]
    pub description: String,
    pub lineage: Lineage,
    /// Hash of its [`BlockMap`], hex.
    pub map: String,
    /// For a copy: the region and snapshot it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_snapshot_id: Option<String>,
    /// Tags (EC2's TagSpecifications, CreateTags; the EBS direct APIs' StartSnapshot Tags).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// StartSnapshot's ClientToken: a retry with it answers this snapshot again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// Set while the snapshot is written block by block (StartSnapshot until
    /// CompleteSnapshot): its blocks so far are in its journal ([`direct`]), `map` is where it
    /// started (its parent's map, or an empty one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingSnapshot>,
}

impl SnapshotRecord {
    /// `completed`, `pending`, or `error` (pending past its timeout).
    pub fn state(&self, now: std::time::SystemTime) -> &'static str {
        match &self.pending {
            None => "completed",
            Some(p) if p.expired(now) => "error",
            Some(_) => "pending",
        }
    }

    /// Refuses a snapshot that is not completed: only completed snapshots are restored,
    /// copied, attached or compared.
    pub fn check_completed(&self) -> Result<()> {
        if self.pending.is_some() {
            return Err(Error::ec2(
                Ec2Code::IncorrectState,
                format!(
                    "snapshot {} is pending; complete it first (CompleteSnapshot)",
                    self.snapshot_id
                ),
            ));
        }
        Ok(())
    }
}

/// Everything EBS keeps about one region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Head {
    /// Incremented by every change.
    pub generation: u64,
    /// EbsEncryptionByDefault.
    pub encryption_by_default: bool,
    /// The default key's ARN, if set (`None`: alias/aws/ebs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_kms_key_id: Option<String>,
    pub volumes: BTreeMap<String, VolumeRecord>,
    pub snapshots: BTreeMap<String, SnapshotRecord>,
}

impl Head {
    /// Every map hash a record names.
    pub fn referenced_maps(&self) -> std::collections::BTreeSet<String> {
        self.volumes
            .values()
            .map(|v| v.map.clone())
            .chain(self.snapshots.values().map(|s| s.map.clone()))
            .collect()
    }
}

/// One region's EBS store on disk.
pub struct RegionEbs {
    region: Region,
    dir: PathBuf,
    mac_key: SecretKey,
    blocks: BlockStore,
    maps: BlockStore,
}

impl std::fmt::Debug for RegionEbs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionEbs")
            .field("region", &self.region)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl RegionEbs {
    fn open(kms: &Kms) -> Result<Self> {
        let region = kms.region().clone();
        let dir = kms.home().region_dir(&region).join("ebs");
        store::create_dir(&dir)?;
        let mac_key = kms.home().aws_owned_key(&format!("ebs records\0{region}"));
        Ok(RegionEbs {
            blocks: BlockStore::new(dir.join("blocks")),
            maps: BlockStore::new(dir.join("maps")),
            region,
            dir,
            mac_key,
        })
    }

    /// The blocks.
    pub fn blocks(&self) -> &BlockStore {
        &self.blocks
    }

    /// Serializes changes to the head.
    fn lock(&self) -> Result<LockGuard> {
        store::lock(&self.dir.join(".lock"))
    }

    /// Held (shared) while writing blocks that the head does not name yet.
    fn writing(&self) -> Result<LockGuard> {
        store::lock_shared(&self.dir.join(".gc.lock"))
    }

    /// Held (exclusive) while removing blocks.
    fn removing(&self) -> Result<LockGuard> {
        store::lock(&self.dir.join(".gc.lock"))
    }

    /// The attach lock of volume or snapshot `id`, if free: exclusive for a writer (a
    /// read-write session, `volume write`, `volume delete`, `snapshot delete`), shared for a
    /// read-only session. Never waits.
    fn try_attach(&self, id: &str, exclusive: bool) -> Result<Option<LockGuard>> {
        let dir = self.dir.join("attach");
        store::create_dir(&dir)?;
        let path = dir.join(format!("{id}.lock"));
        if exclusive {
            store::try_lock(&path)
        } else {
            store::try_lock_shared(&path)
        }
    }

    /// Removes the attach lock file of `id` (deleted; its lock held by the caller).
    fn forget_attach(&self, id: &str) {
        let _ = std::fs::remove_file(self.dir.join("attach").join(format!("{id}.lock")));
    }

    /// Removes the attach locks of volumes and snapshots `head` no longer has (and that no one
    /// holds). Call with the exclusive `.gc.lock` held.
    fn remove_stale_attach_locks(&self, head: &Head) -> Result<()> {
        let dir = self.dir.join("attach");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("listing", &dir, e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
                continue;
            };
            if head.volumes.contains_key(id) || head.snapshots.contains_key(id) {
                continue;
            }
            if let Some(_held) = store::try_lock(&entry.path())? {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// [`Self::try_attach`] for a writer that is not a session: `VolumeInUse` (or
    /// `InvalidSnapshot.InUse`) while a session has `id` attached.
    fn not_attached(&self, id: &str) -> Result<LockGuard> {
        self.try_attach(id, true)?.ok_or_else(|| {
            if id.starts_with("snap-") {
                Error::ec2(
                    Ec2Code::InvalidSnapshotInUse,
                    format!("{id} is attached; detach it first (stop the `cofre snapshot attach` serving it)"),
                )
            } else {
                Error::ec2(
                    Ec2Code::VolumeInUse,
                    format!("{id} is attached; detach it first (stop the `cofre volume attach` serving it)"),
                )
            }
        })
    }

    fn head_path(&self) -> PathBuf {
        self.dir.join("head")
    }

    fn mac(&self, body: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(self.mac_key.expose());
        h.update(self.region.as_str().as_bytes());
        h.update(&[0]);
        h.update(body);
        *h.finalize().as_bytes()
    }

    /// Temporary files a killed head replacement left in the EBS folder.
    fn stale_head_temporaries(&self) -> Result<Vec<PathBuf>> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| Error::io("listing", &self.dir, e))?;
        Ok(entries
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(store::TMP_PREFIX))
            })
            .map(|e| e.path())
            .collect())
    }

    /// Reads and authenticates the head. An absent head is an empty region only while the
    /// region holds no block and no map: a head missing beside them is damage, never an
    /// empty store (collecting then would remove every block).
    pub fn load_head(&self) -> Result<Head> {
        let path = self.head_path();
        let raw = match std::fs::read(&path) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (blocks, maps) = (self.blocks.count()?, self.maps.count()?);
                if blocks == 0 && maps == 0 {
                    return Ok(Head::default());
                }
                return Err(Error::StoreCorrupt(format!(
                    "{} is missing while the region holds {blocks} blocks and {maps} maps; \
                     restore it from a backup (nothing was collected)",
                    path.display()
                )));
            }
            Err(e) => return Err(Error::io("reading", &path, e)),
        };
        let bad = |why: &str| Error::StoreCorrupt(format!("{} {why}", path.display()));
        let nl = raw
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("is malformed"))?;
        let (line, body) = (&raw[..nl], &raw[nl + 1..]);
        let mac_hex = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.strip_prefix(HEAD_TAG))
            .ok_or_else(|| bad("is malformed"))?;
        let mut mac = [0u8; 32];
        hex::decode_to_slice(mac_hex, &mut mac).map_err(|_| bad("is malformed"))?;
        if !constant_time_eq(&mac, &self.mac(body)) {
            return Err(bad(
                "failed authentication (edited, or from another region or home)",
            ));
        }
        serde_json::from_slice(body).map_err(|e| bad(&format!("is malformed ({e})")))
    }

    /// Publishes `head` as the next generation: syncs the filesystem (so every block and map
    /// it names is durable), then replaces the head atomically. Call with [`Self::lock`] held.
    fn save_head(&self, head: &mut Head) -> Result<()> {
        head.generation += 1;
        sync_fs(&self.dir)?;
        let body = serde_json::to_vec_pretty(head).expect("serializable");
        let mut raw = format!("{HEAD_TAG}{}\n", hex::encode(self.mac(&body))).into_bytes();
        raw.extend_from_slice(&body);
        store::write_atomic(&self.head_path(), &raw, 0o600)
    }

    /// Writes an empty head if the region has none, so that a crash after the first blocks
    /// or maps of a region are written leaves a head beside them (else the region would read
    /// as damaged). Called just before writing them, after every check that can refuse.
    fn ensure_head(&self) -> Result<()> {
        if self.head_path().exists() {
            return Ok(());
        }
        self.update(|_| Ok(()))
    }

    /// Loads the block map named `hash` (hex), checking it against its name.
    pub fn load_map(&self, hash: &str) -> Result<BlockMap> {
        let mut h = [0u8; 32];
        hex::decode_to_slice(hash, &mut h)
            .map_err(|_| Error::StoreCorrupt(format!("bad block map name {hash:?}")))?;
        let mut raw = Vec::new();
        self.maps.get(&h, &mut raw)?;
        BlockMap::decode(&raw)
    }

    /// Stores a block map and returns its name (hex).
    fn save_map(&self, map: &BlockMap) -> Result<String> {
        self.ensure_head()?;
        let (h, _) = self.maps.put(&map.encode())?;
        Ok(hex::encode(h))
    }

    /// Runs `change` on the current head under the lock and publishes the result.
    fn update<T>(&self, change: impl FnOnce(&mut Head) -> Result<T>) -> Result<T> {
        let _guard = self.lock()?;
        let mut head = self.load_head()?;
        let out = change(&mut head)?;
        self.save_head(&mut head)?;
        Ok(out)
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Flushes the filesystem holding `dir` (one call for every block written before it).
fn sync_fs(dir: &Path) -> Result<()> {
    let f = std::fs::File::open(dir).map_err(|e| Error::io("opening", dir, e))?;
    rustix::fs::syncfs(&f).map_err(|e| Error::io("syncing the filesystem of", dir, e.into()))
}

/// The EBS service of one region: volumes, snapshots, copies, settings.
#[derive(Debug)]
pub struct Ebs<'k> {
    kms: &'k Kms,
    region: RegionEbs,
}

/// A data key in the clear, with the lineage it seals.
pub(crate) struct OpenLineage {
    pub lineage: Lineage,
    pub cipher: Option<LineageCipher>,
}

impl<'k> Ebs<'k> {
    /// EBS for the region of `kms`.
    pub fn new(kms: &'k Kms) -> Result<Self> {
        Ok(Ebs {
            region: RegionEbs::open(kms)?,
            kms,
        })
    }

    /// The region's store.
    pub fn store(&self) -> &RegionEbs {
        &self.region
    }

    /// The KMS this service calls.
    pub fn kms(&self) -> &Kms {
        self.kms
    }

    /// The volumes and snapshots of this region whose data key `key_arn` wraps: (key material
    /// id, resource id), for usage reports and for warning before a key is disabled or deleted.
    pub fn protected_by(&self, key_arn: &str) -> Result<Vec<(String, String)>> {
        let head = self.region.load_head()?;
        let under = |l: &Lineage| {
            l.data_key
                .as_ref()
                .filter(|d| d.kms_key_id == key_arn)
                .map(|d| d.key_material_id.clone())
        };
        Ok(head
            .volumes
            .values()
            .filter_map(|v| under(&v.lineage).map(|m| (m, v.volume_id.clone())))
            .chain(
                head.snapshots
                    .values()
                    .filter_map(|s| under(&s.lineage).map(|m| (m, s.snapshot_id.clone()))),
            )
            .collect())
    }

    /// GetEbsEncryptionByDefault.
    pub fn encryption_by_default(&self) -> Result<bool> {
        self.kms
            .audited(Call::ec2("GetEbsEncryptionByDefault", true), |_| {
                Ok(self.region.load_head()?.encryption_by_default)
            })
    }

    /// EnableEbsEncryptionByDefault / DisableEbsEncryptionByDefault.
    pub fn set_encryption_by_default(&self, on: bool) -> Result<bool> {
        self.kms.audited(
            Call::ec2(
                if on {
                    "EnableEbsEncryptionByDefault"
                } else {
                    "DisableEbsEncryptionByDefault"
                },
                false,
            ),
            |_| {
                self.region.update(|h| {
                    h.encryption_by_default = on;
                    Ok(on)
                })
            },
        )
    }

    /// GetEbsDefaultKmsKeyId: the default key's ARN (alias/aws/ebs's alias ARN if not set).
    pub fn default_kms_key_id(&self) -> Result<String> {
        self.kms
            .audited(Call::ec2("GetEbsDefaultKmsKeyId", true), |_| {
                Ok(match self.region.load_head()?.default_kms_key_id {
                    Some(arn) => arn,
                    None => crate::kms::alias_arn(
                        self.kms.region().as_str(),
                        self.kms.home().account_id(),
                        DEFAULT_KEY_ALIAS,
                    ),
                })
            })
    }

    /// ModifyEbsDefaultKmsKeyId: checks the key can encrypt for EBS, stores its ARN.
    pub fn set_default_kms_key_id(&self, key: &KeyRef) -> Result<String> {
        self.kms.audited(
            Call::ec2("ModifyEbsDefaultKmsKeyId", false).param("kmsKeyId", key.to_string()),
            |_| {
                let arn = self.encryption_key_arn(key)?;
                self.region.update(|h| {
                    h.default_kms_key_id = Some(arn.clone());
                    Ok(arn.clone())
                })
            },
        )
    }

    /// ResetEbsDefaultKmsKeyId: back to alias/aws/ebs.
    pub fn reset_default_kms_key_id(&self) -> Result<String> {
        self.kms
            .audited(Call::ec2("ResetEbsDefaultKmsKeyId", false), |_| {
                self.region.update(|h| {
                    h.default_kms_key_id = None;
                    Ok(())
                })?;
                self.default_kms_key_id()
            })
    }

    /// The key a new encrypted lineage uses: `requested`, else the region's default key.
    /// The ARN of `key` if EBS can encrypt with it (an Enabled symmetric key): DescribeKey,
    /// as EC2 checks a key it is given.
    pub(crate) fn encryption_key_arn(&self, key: &KeyRef) -> Result<String> {
        let m = self.kms.describe_key_via(key, EBS)?;
        crate::kms::check_usable(&m)?;
        crate::kms::check_symmetric(&m)?;
        Ok(m.arn)
    }

    fn key_for_new_lineage(&self, head: &Head, requested: Option<&KeyRef>) -> Result<KeyRef> {
        match requested {
            Some(k) => Ok(k.clone()),
            None => head
                .default_kms_key_id
                .as_deref()
                .unwrap_or(DEFAULT_KEY_ALIAS)
                .parse(),
        }
    }

    /// GenerateDataKeyWithoutPlaintext for a new lineage of volume `volume_id` (or none, for an
    /// unencrypted one). Writing blocks to it needs its data key: [`Ebs::open_lineage`]
    /// (Decrypt), as EBS decrypts a volume's key when it attaches the volume.
    fn new_lineage(&self, volume_id: &str, key: Option<&KeyRef>) -> Result<Lineage> {
        let id = new_id("dek-");
        let Some(key) = key else {
            return Ok(Lineage { id, data_key: None });
        };
        let aad = |arn: &str, material: &[u8; 32]| data_key_aad(arn, material, &id, volume_id);
        let (wrapped, _) =
            self.kms
                .generate_envelope_key(key, &ebs_context(volume_id), EBS, false, &aad)?;
        Ok(Lineage {
            data_key: Some(stored_key(&wrapped, volume_id)),
            id,
        })
    }

    /// Decrypt of a lineage's data key (nothing to do for an unencrypted lineage).
    pub(crate) fn open_lineage(&self, lineage: &Lineage) -> Result<OpenLineage> {
        self.open_lineage_as(lineage, false)
    }

    /// [`Ebs::open_lineage`] for a request of the EBS direct APIs: the data key is opened once
    /// a minute per caller and snapshot, not once per block ([`Kms::decrypt_envelope_key_kept`]).
    pub(crate) fn open_lineage_kept(&self, lineage: &Lineage) -> Result<OpenLineage> {
        self.open_lineage_as(lineage, true)
    }

    fn open_lineage_as(&self, lineage: &Lineage, kept: bool) -> Result<OpenLineage> {
        let cipher = match &lineage.data_key {
            None => None,
            Some(_) => Some(LineageCipher::new(
                self.kms.home().backend(),
                self.unwrap_data_key(lineage, kept)?,
                &lineage.id,
            )),
        };
        Ok(OpenLineage {
            lineage: lineage.clone(),
            cipher,
        })
    }

    /// Re-wraps a lineage's data key under `key` (same lineage id, same blocks): Encrypt of the
    /// data key in this region.
    fn rewrap_lineage(
        &self,
        lineage: &Lineage,
        key: &KeyRef,
        data_key: &SecretKey,
    ) -> Result<Lineage> {
        let old = lineage.data_key.as_ref().expect("encrypted lineage");
        let volume_id = &old.context_volume_id;
        let aad =
            |arn: &str, material: &[u8; 32]| data_key_aad(arn, material, &lineage.id, volume_id);
        let wrapped =
            self.kms
                .encrypt_envelope_key(key, &ebs_context(volume_id), EBS, data_key, &aad)?;
        Ok(Lineage {
            id: lineage.id.clone(),
            data_key: Some(stored_key(&wrapped, volume_id)),
        })
    }

    /// The plaintext data key of an encrypted lineage: Decrypt.
    fn unwrap_data_key(&self, lineage: &Lineage, kept: bool) -> Result<SecretKey> {
        let dk = lineage.data_key.as_ref().expect("encrypted lineage");
        let wrapped = wrapped_key(dk)?;
        let aad = data_key_aad(
            &dk.kms_key_id,
            &wrapped.material_id,
            &lineage.id,
            &dk.context_volume_id,
        );
        let context = ebs_context(&dk.context_volume_id);
        if kept {
            self.kms
                .decrypt_envelope_key_kept(&wrapped, &context, EBS, &aad)
        } else {
            self.kms.decrypt_envelope_key(&wrapped, &context, EBS, &aad)
        }
    }
}

/// The service EBS's KMS requests are made through.
const EBS: Option<&str> = Some("ebs");

/// How a lineage stores its wrapped data key.
fn stored_key(wrapped: &WrappedKey, volume_id: &str) -> DataKey {
    DataKey {
        kms_key_id: wrapped.key_arn.clone(),
        context_volume_id: volume_id.to_owned(),
        key_material_id: hex::encode(wrapped.material_id),
        sealed: hex::encode([&wrapped.nonce[..], &wrapped.sealed[..]].concat()),
    }
}

/// The AAD of a lineage's wrapped data key: label, key ARN, material id, lineage id and the
/// canonical encryption context `{"aws:ebs:id": volume}`.
fn data_key_aad(arn: &str, material_id: &[u8; 32], lineage: &str, volume_id: &str) -> Vec<u8> {
    let mut a = LABEL_DATA_KEY_AAD.to_vec();
    a.extend_from_slice(arn.as_bytes());
    a.push(0);
    a.extend_from_slice(material_id);
    a.extend_from_slice(lineage.as_bytes());
    a.push(0);
    ebs_context(volume_id).encode(&mut a);
    a
}

/// `{"aws:ebs:id": volume}`: the encryption context of a lineage's data key.
fn ebs_context(volume_id: &str) -> EncryptionContext {
    let mut ctx = EncryptionContext::new();
    ctx.insert(CONTEXT_KEY, volume_id).expect("a valid context");
    ctx
}

fn wrapped_key(dk: &DataKey) -> Result<WrappedKey> {
    let bad = || {
        Error::StoreCorrupt(format!(
            "the data key wrapped under {} is malformed",
            dk.kms_key_id
        ))
    };
    let mut material_id = [0u8; 32];
    hex::decode_to_slice(&dk.key_material_id, &mut material_id).map_err(|_| bad())?;
    let raw = hex::decode(&dk.sealed).map_err(|_| bad())?;
    if raw.len() != crate::crypto::NONCE_LEN + 48 {
        return Err(bad());
    }
    Ok(WrappedKey {
        key_arn: dk.kms_key_id.clone(),
        material_id,
        nonce: raw[..crate::crypto::NONCE_LEN]
            .try_into()
            .expect("12 bytes"),
        sealed: raw[crate::crypto::NONCE_LEN..]
            .try_into()
            .expect("48 bytes"),
    })
}

/// The error for a volume or snapshot id the region does not have.
fn not_found(kind: &str, id: &str, region: &Region) -> Error {
    let code = if kind == "volume" {
        Ec2Code::InvalidVolumeNotFound
    } else {
        Ec2Code::InvalidSnapshotNotFound
    };
    Error::ec2(
        code,
        format!("{kind} {id} does not exist in {region}; `cofre {kind} list` shows them (or pass --region)"),
    )
}
