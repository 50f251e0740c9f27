//! The keyring: a home folder with an account id and a domain key, and one folder per region
//! holding that region's keys and aliases.
//!
//! ```text
//! HOME/
//!   cofre.json            {"Version":1,"AccountId":"123456789012","CreationDate":…}
//!   domain.key            32 random bytes, mode 0600: seals all key material at rest
//!                         (both made on first use, never again: a home missing either one
//!                         while its regions hold data is refused as damaged)
//!   .lock                 guards creating the home
//!   regions/<region>/
//!     .lock               guards this region's keys and aliases
//!     keys/<key-id>.json  a KeyRecord: metadata, tags, sealed material versions
//!     aliases.json        the region's AliasTable
//! ```
//!
//! Key material is sealed with AES-256-GCM under a key derived from the domain key, with the
//! key ARN and material id bound as AAD, so sealed material cannot be moved between keys.
//! [`MasterKey`] is an opened material version; only the KMS layer hands them out.

mod access_keys;
mod alias;
mod index;
mod key;
mod region;

pub(crate) mod cache;
pub use access_keys::{is_access_key_id, AccessKey, AccessKeyInfo, NewAccessKey};
pub use alias::{validate_alias_name, AliasEntry, AliasTable};
pub use cache::{FileStamp, UPKEEP_INTERVAL};
pub use index::Upkeep;
pub use key::{
    DeletedKey, Grant, GrantConstraints, KeyManager, KeyMetadata, KeyRecord, KeySpec, KeyState,
    KeyUsage, MaterialVersion, MultiRegionConfiguration, MultiRegionKeyType, Origin, RegionalKey,
    Rotation, RotationType, Tag,
};
pub use region::{Region, DEFAULT_REGION};

use crate::crypto::{self, AeadKey, Backend, SecretKey, NONCE_LEN};
use crate::error::{Error, KmsCode, Result};
use crate::store;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use zeroize::Zeroize;

const LABEL_SEAL: &[u8] = b"cofre v1 keyring seal";
const LABEL_AWS_OWNED: &[u8] = b"cofre v1 aws owned key\0";
const LABEL_MATERIAL_AAD: &[u8] = b"cofre v1 key material\0";

/// `cofre.json`: what identifies a home.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HomeConfig {
    version: u32,
    account_id: String,
    creation_date: String,
    /// Regions whose folder lives elsewhere (`cofre region set-path`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    region_paths: BTreeMap<String, PathBuf>,
}

/// An opened home folder.
pub struct Home {
    root: PathBuf,
    account_id: String,
    seal_key: AeadKey,
    /// Root of the AWS owned keys (derived per purpose; never listed).
    owned_root: SecretKey,
    backend: Backend,
    region_paths: BTreeMap<String, PathBuf>,
    /// Where every time-based rule gets the time.
    clock: store::Clock,
    /// What a long-lived process keeps between requests.
    caches: cache::Caches,
}

impl std::fmt::Debug for Home {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Home")
            .field("root", &self.root)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

/// Checks a 12-digit account id.
pub fn validate_account_id(id: &str) -> Result<()> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "invalid account id {id:?}; use 12 digits, e.g. 111122223333"
        )))
    }
}

fn random_account_id() -> String {
    let r: [u8; 8] = crypto::random_array();
    // First digit 1–9 so the id reads as a 12-digit number.
    format!(
        "{}",
        100_000_000_000 + u64::from_le_bytes(r) % 900_000_000_000
    )
}

impl Home {
    /// Opens the home at `root`, creating it (with `account` or a random account id) if it
    /// does not exist yet. Safe against concurrent first use by several processes.
    pub fn open(root: &Path, account: Option<&str>) -> Result<Home> {
        let config_path = root.join("cofre.json");
        if !config_path.exists() {
            Self::create(root, account)?;
        }
        let key_path = root.join("domain.key");
        if !key_path.exists() {
            // Never made again: a new domain key would not open anything sealed before.
            return Err(Error::HomeIncomplete {
                path: key_path,
                meaning: "it seals the material of every key of this home, which cannot be \
                          opened without it"
                    .into(),
            });
        }
        let config: HomeConfig = serde_json::from_slice(&store::read(&config_path)?)
            .map_err(|e| Error::Damaged(format!("{} ({e})", config_path.display())))?;
        if let Some(want) = account {
            if want != config.account_id {
                return Err(Error::usage(format!(
                    "home {} belongs to account {}, not {want}; use another --home",
                    root.display(),
                    config.account_id
                )));
            }
        }
        let mut raw = store::read(&key_path)?;
        let mut domain_bytes: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| Error::Damaged(format!("{} (not 32 bytes)", key_path.display())))?;
        raw.zeroize();
        let domain = SecretKey::from_bytes(domain_bytes);
        domain_bytes.zeroize();
        let backend = Backend::default();
        let seal = backend.derive_key(config.account_id.as_bytes(), &domain, LABEL_SEAL);
        let owned_root = backend.derive_key(config.account_id.as_bytes(), &domain, LABEL_AWS_OWNED);
        Ok(Home {
            root: root.to_path_buf(),
            account_id: config.account_id,
            seal_key: backend.aead(&seal),
            owned_root,
            backend,
            region_paths: config.region_paths,
            clock: store::Clock::System,
            caches: Default::default(),
        })
    }

    /// Creates the home under its lock, unless another process already has.
    fn create(root: &Path, account: Option<&str>) -> Result<()> {
        if let Some(a) = account {
            validate_account_id(a)?;
        }
        store::create_dir(root)?;
        let _guard = store::lock(&root.join(".lock"))?;
        let config_path = root.join("cofre.json");
        if config_path.exists() {
            return Ok(());
        }
        // A home that lost its cofre.json is not new: its account id seals every key.
        if let Some(region) = region_with_data(&root.join("regions"))? {
            return Err(Error::HomeIncomplete {
                path: config_path,
                meaning: format!(
                    "it holds the account id that every key of this home is sealed with, and \
                     {} still holds data whose keys cannot be opened without it",
                    region.display()
                ),
            });
        }
        let key_path = root.join("domain.key");
        if !key_path.exists() {
            let key = SecretKey::random();
            store::create_atomic(&key_path, key.expose(), 0o600)?;
        }
        store::create_dir(&root.join("regions"))?;
        let config = HomeConfig {
            version: 1,
            account_id: account.map_or_else(random_account_id, str::to_owned),
            creation_date: store::format_time(store::now()),
            region_paths: BTreeMap::new(),
        };
        let json = serde_json::to_vec_pretty(&config).expect("serializable");
        store::create_atomic(&config_path, &json, 0o600)
    }

    /// The same home, telling the time by `clock` (the CLI sets it once from `COFRE_NOW`).
    pub fn with_clock(mut self, clock: store::Clock) -> Home {
        self.clock = clock;
        self
    }

    /// The home's clock.
    pub fn clock(&self) -> store::Clock {
        self.clock
    }

    /// The time now, by the home's clock.
    pub fn now(&self) -> std::time::SystemTime {
        self.clock.now()
    }

    /// A data key this process opened as `id` (a digest of caller, key and ciphertext) within
    /// the last [`cache::OPENED_KEY_TTL`].
    pub(crate) fn opened_data_key(&self, id: &[u8; 32]) -> Option<SecretKey> {
        self.caches.opened_key(id)
    }

    /// Remembers a data key opened as `id`.
    pub(crate) fn keep_opened_data_key(&self, id: [u8; 32], key: &SecretKey) {
        self.caches.keep_opened_key(id, key)
    }

    /// The home folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The 12-digit account id.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The crypto backend used for key material.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The folder of `region` (not created): `regions/<region>`, or the path set with
    /// [`Home::set_region_path`].
    pub fn region_dir(&self, region: &Region) -> PathBuf {
        match self.region_paths.get(region.as_str()) {
            Some(p) => p.clone(),
            None => self.root.join("regions").join(region.as_str()),
        }
    }

    /// Regions whose folder lives outside the home, with their paths.
    pub fn region_paths(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.region_paths
            .iter()
            .map(|(r, p)| (r.as_str(), p.as_path()))
    }

    /// Moves where `region`'s folder lives to `dir` (created if missing; `None` puts it back
    /// under the home). The current folder must be empty or absent, or `dir` must already hold
    /// the region (moved there by the user): cofre never copies a region's data on its own.
    pub fn set_region_path(&mut self, region: &Region, dir: Option<&Path>) -> Result<()> {
        let target = match dir {
            Some(d) => std::path::absolute(d).map_err(|e| Error::io("resolving", d, e))?,
            None => self.root.join("regions").join(region.as_str()),
        };
        let _guard = store::lock(&self.root.join(".lock"))?;
        let current = self.region_dir(region);
        if current != target && holds_data(&current) && !holds_data(&target) {
            return Err(Error::usage(format!(
                "region {region} already has data in {}; move that folder to {} first (mv), then run this again",
                current.display(),
                target.display()
            )));
        }
        store::create_dir(&target)?;
        let config_path = self.root.join("cofre.json");
        let mut config: HomeConfig = serde_json::from_slice(&store::read(&config_path)?)
            .map_err(|e| Error::Damaged(format!("{} ({e})", config_path.display())))?;
        match dir {
            Some(_) => config
                .region_paths
                .insert(region.as_str().to_owned(), target.clone()),
            None => config.region_paths.remove(region.as_str()),
        };
        let json = serde_json::to_vec_pretty(&config).expect("serializable");
        store::write_atomic(&config_path, &json, 0o600)?;
        self.region_paths = config.region_paths;
        Ok(())
    }

    /// An AWS owned key: a key a cofre service uses internally, derived from the domain key
    /// for one `purpose`, never listed and never leaving the process.
    pub fn aws_owned_key(&self, purpose: &str) -> SecretKey {
        self.backend
            .derive_key(&[], &self.owned_root, purpose.as_bytes())
    }

    /// Regions that have a folder in this home.
    pub fn regions(&self) -> Result<Vec<Region>> {
        let dir = self.root.join("regions");
        let mut out: Vec<Region> = self
            .region_paths
            .keys()
            .filter_map(|r| Region::new(r).ok())
            .collect();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("listing", &dir, e)),
        };
        for e in entries.flatten() {
            if let Some(r) = e.file_name().to_str().and_then(|n| Region::new(n).ok()) {
                out.push(r);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Opens (creating if needed) the store of one region.
    pub fn region(&self, region: &Region) -> Result<RegionStore<'_>> {
        let dir = self.region_dir(region);
        if !self.caches.region_made(&dir) {
            store::create_dir(&dir.join("keys"))?;
            self.caches.made_region(&dir);
        }
        Ok(RegionStore {
            home: self,
            region: region.clone(),
            dir,
        })
    }

    /// Seals one material version for storage: hex of nonce ‖ ciphertext ‖ tag.
    pub fn seal_material(&self, arn: &str, material_id: &str, material: &SecretKey) -> String {
        self.seal_material_bytes(arn, material_id, material.expose())
    }

    /// [`Home::seal_material`] for material of any length: an HMAC key, or an asymmetric private
    /// key as PKCS#8 DER.
    pub fn seal_material_bytes(&self, arn: &str, material_id: &str, material: &[u8]) -> String {
        let nonce: [u8; NONCE_LEN] = crypto::random_array();
        let sealed = self
            .seal_key
            .seal_to_vec(&nonce, &material_aad(arn, material_id), material);
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        hex::encode(out)
    }

    /// Opens a sealed 256-bit material version (a symmetric key's).
    pub fn open_material(&self, arn: &str, version: &MaterialVersion) -> Result<SecretKey> {
        let bytes = self.open_material_bytes(arn, version)?;
        let mut key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            Error::kms(
                KmsCode::KMSInvalidStateException,
                format!("the material of {arn} is not a 256-bit key; the keyring is damaged"),
            )
        })?;
        let k = SecretKey::from_bytes(key);
        key.zeroize();
        Ok(k)
    }

    /// Opens a sealed material version of any length.
    pub fn open_material_bytes(
        &self,
        arn: &str,
        version: &MaterialVersion,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        self.open_sealed(arn, &version.key_material_id, &version.sealed)
            .ok_or_else(|| {
                Error::kms(
                    KmsCode::KMSInvalidStateException,
                    format!(
                        "the material of {arn} (version {}) does not open under this home's domain key; the keyring is damaged",
                        version.key_material_id
                    ),
                )
            })
    }

    /// Seals a secret that is not key material (an access key's secret, say) the same way,
    /// bound to what it belongs to: `owner` (a name no key ARN can take) and `id`.
    pub fn seal_secret(&self, owner: &str, id: &str, secret: &[u8]) -> String {
        self.seal_material_bytes(owner, id, secret)
    }

    /// Opens what [`Home::seal_secret`] sealed for `owner` and `id`; `None` if it does not open
    /// (damaged, or sealed for something else).
    pub fn open_secret(
        &self,
        owner: &str,
        id: &str,
        sealed: &str,
    ) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        self.open_sealed(owner, id, sealed)
    }

    fn open_sealed(
        &self,
        arn: &str,
        id: &str,
        sealed_hex: &str,
    ) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        let raw = hex::decode(sealed_hex).ok()?;
        if raw.len() < NONCE_LEN + crypto::TAG_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let mut out = zeroize::Zeroizing::new(vec![0u8; sealed.len() - crypto::TAG_LEN]);
        self.seal_key
            .open_from_slice(
                nonce.try_into().expect("12 bytes"),
                &material_aad(arn, id),
                sealed,
                &mut out,
            )
            .ok()?;
        Some(out)
    }
}

/// True if a region folder holds keys, aliases, deleted-key records, or an EBS head, blocks or
/// maps (lock files and the audit trail are not data a region move must carry).
fn holds_data(d: &Path) -> bool {
    let nonempty = |p: PathBuf| std::fs::read_dir(p).is_ok_and(|mut i| i.next().is_some());
    nonempty(d.join("keys"))
        || nonempty(d.join("deleted"))
        || d.join("aliases.json").exists()
        || d.join("ebs/head").exists()
        || nonempty(d.join("ebs/blocks"))
        || nonempty(d.join("ebs/maps"))
}

/// The first region folder under `regions` that holds data or an audit trail, if any.
fn region_with_data(regions: &Path) -> Result<Option<PathBuf>> {
    let entries = match std::fs::read_dir(regions) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("listing", regions, e)),
    };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    dirs.sort();
    Ok(dirs
        .into_iter()
        .find(|d| holds_data(d) || d.join("audit/trail.jsonl").exists()))
}

fn material_aad(arn: &str, material_id: &str) -> Vec<u8> {
    let mut a = LABEL_MATERIAL_AAD.to_vec();
    a.extend_from_slice(arn.as_bytes());
    a.push(0);
    a.extend_from_slice(material_id.as_bytes());
    a
}

/// One region's keys and aliases.
pub struct RegionStore<'h> {
    home: &'h Home,
    region: Region,
    dir: PathBuf,
}

impl RegionStore<'_> {
    /// The home this region belongs to.
    pub fn home(&self) -> &Home {
        self.home
    }

    /// The region.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Takes the region's write lock.
    pub fn lock(&self) -> Result<store::LockGuard> {
        store::lock(&self.dir.join(".lock"))
    }

    fn key_path(&self, key_id: &str) -> PathBuf {
        self.dir.join("keys").join(format!("{key_id}.json"))
    }

    /// Loads a key record, if the key exists here; [`Error::Damaged`] (naming the file) if its
    /// record does not read.
    /// A record read before is taken from the home's cache while its file is unchanged.
    pub fn load_key(&self, key_id: &str) -> Result<Option<KeyRecord>> {
        let path = self.key_path(key_id);
        let caches = &self.home.caches;
        let Some(stamp) = FileStamp::of(&path).map_err(|e| Error::io("reading", &path, e))? else {
            caches.forget_record(&path);
            return Ok(None);
        };
        if let Some(r) = caches.record(&path, stamp) {
            return Ok(Some(r));
        }
        match std::fs::read(&path) {
            Ok(bytes) => {
                let record: KeyRecord = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Damaged(format!("{} ({e})", path.display())))?;
                // Kept under the stamp taken before the read: if the file was replaced since,
                // the next read sees another stamp and reads it again.
                caches.keep_record(&path, stamp, &record);
                Ok(Some(record))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", &path, e)),
        }
    }

    /// Writes a key record atomically, and its entries in the region's index. Callers hold
    /// the region lock.
    pub fn save_key(&self, record: &KeyRecord) -> Result<()> {
        let index = index::Index::new(&self.dir);
        index.before_save(record)?;
        let json = serde_json::to_vec_pretty(record).expect("serializable");
        let path = self.key_path(&record.key_metadata.key_id);
        self.home.caches.forget_record(&path);
        store::write_atomic(&path, &json, 0o600)?;
        index.after_save(record)
    }

    /// Removes a key record and its index entries. Callers hold the region lock.
    pub fn delete_key(&self, key_id: &str) -> Result<()> {
        let path = self.key_path(key_id);
        let record = self.load_key(key_id)?;
        self.home.caches.forget_record(&path);
        std::fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e))?;
        store::sync_dir(&self.dir.join("keys"))?;
        match record {
            Some(r) => index::Index::new(&self.dir).forget(&r),
            None => Ok(()),
        }
    }

    /// The keys that need upkeep at `now` (see [`Upkeep`]): a small read when none does.
    /// The first time in a region written before the index existed, builds the index from
    /// every record, under the region lock.
    pub fn upkeep(&self, now: std::time::SystemTime) -> Result<Upkeep> {
        self.index_ready()?;
        index::Index::new(&self.dir).upkeep(now)
    }

    /// Makes a record's index entries exact without saving it (the region lock held).
    pub fn reindex(&self, record: &KeyRecord) -> Result<()> {
        index::Index::new(&self.dir).after_save(record)
    }

    /// True if this process carried out the region's upkeep less than [`UPKEEP_INTERVAL`]
    /// before `now` (by the home's clock); else notes `now` as the time it is carried out.
    pub fn upkept_recently(&self, now: std::time::SystemTime) -> bool {
        self.home.caches.upkept_recently(self.region.as_str(), now)
    }

    /// After upkeep (the region lock held): the earliest due time is the next one again.
    pub fn upkeep_done(&self) -> Result<()> {
        index::Index::new(&self.dir).reset_next_due()
    }

    /// The key of this region whose public key has SHA-256 `fingerprint`, if any (one read:
    /// no record but that key's is opened).
    pub fn key_with_fingerprint(&self, fingerprint: &[u8; 32]) -> Result<Option<KeyRecord>> {
        self.index_ready()?;
        match index::Index::new(&self.dir).key_with_fingerprint(fingerprint)? {
            Some(id) => self.load_key(&id),
            None => Ok(None),
        }
    }

    /// Builds the index of a region written before it existed, once, under the region lock.
    fn index_ready(&self) -> Result<()> {
        let index = index::Index::new(&self.dir);
        if !index.is_built()? {
            let _lock = self.lock()?;
            if !index.is_built()? {
                index.build(&self.list_keys()?)?;
            }
        }
        Ok(())
    }

    /// Records that a key was destroyed (written before the key file is removed).
    pub fn save_tombstone(&self, t: &DeletedKey) -> Result<()> {
        let dir = self.dir.join("deleted");
        store::create_dir(&dir)?;
        let json = serde_json::to_vec_pretty(t).expect("serializable");
        store::write_atomic(&dir.join(format!("{}.json", t.key_id)), &json, 0o600)
    }

    /// The record of a destroyed key, if this region destroyed one with that id.
    pub fn tombstone(&self, key_id: &str) -> Option<DeletedKey> {
        let path = self.dir.join("deleted").join(format!("{key_id}.json"));
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Every destroyed key's record in the region.
    pub fn tombstones(&self) -> Result<Vec<DeletedKey>> {
        let dir = self.dir.join("deleted");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let bytes = store::read(&e.path())?;
            out.push(
                serde_json::from_slice(&bytes)
                    .map_err(|_| Error::Damaged(e.path().display().to_string()))?,
            );
        }
        Ok(out)
    }

    /// Every key record in the region that reads, by key id. A damaged record, or a stray
    /// file in `keys/`, is left out so that requests for other keys go on: a request for that
    /// key fails from [`RegionStore::load_key`], and [`RegionStore::damaged_keys`] names them.
    pub fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        Ok(self.scan_keys()?.0)
    }

    /// The files in `keys/` that are not a readable key record named by its key id.
    pub fn damaged_keys(&self) -> Result<Vec<PathBuf>> {
        Ok(self.scan_keys()?.1)
    }

    /// [`Error::Damaged`] naming the first damaged key record, if there is one.
    pub fn check_keys(&self) -> Result<()> {
        let damaged = self.damaged_keys()?;
        match damaged.as_slice() {
            [] => Ok(()),
            [one] => Err(Error::Damaged(format!("key record {}", one.display()))),
            [first, rest @ ..] => Err(Error::Damaged(format!(
                "key record {} (and {} more in its folder)",
                first.display(),
                rest.len()
            ))),
        }
    }

    /// The readable key records, sorted by key id, and the paths of damaged ones, sorted.
    fn scan_keys(&self) -> Result<(Vec<KeyRecord>, Vec<PathBuf>)> {
        let dir = self.dir.join("keys");
        let (mut out, mut damaged) = (Vec::new(), Vec::new());
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))? {
            let e = e.map_err(|e| Error::io("listing", &dir, e))?;
            let name = e.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            match self.load_key(id) {
                Ok(Some(r)) if r.key_metadata.key_id == id => out.push(r),
                Ok(Some(_)) | Err(Error::Damaged(_)) => damaged.push(e.path()),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.key_metadata.key_id.cmp(&b.key_metadata.key_id));
        damaged.sort();
        Ok((out, damaged))
    }

    /// The ids of the region's keys, from the names of their record files (no record is
    /// read).
    pub fn key_ids(&self) -> Result<Vec<String>> {
        let dir = self.dir.join("keys");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))? {
            let e = e.map_err(|e| Error::io("listing", &dir, e))?;
            let name = e.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
                if !id.starts_with('.') {
                    out.push(id.to_owned());
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The region's aliases.
    pub fn aliases(&self) -> Result<AliasTable> {
        let path = self.dir.join("aliases.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Damaged(format!("{} ({e})", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AliasTable::default()),
            Err(e) => Err(Error::io("reading", &path, e)),
        }
    }

    /// Writes the alias table atomically. Callers hold the region lock.
    pub fn save_aliases(&self, table: &AliasTable) -> Result<()> {
        let json = serde_json::to_vec_pretty(table).expect("serializable");
        store::write_atomic(&self.dir.join("aliases.json"), &json, 0o600)
    }

    /// Opens one material version of a key as a [`MasterKey`].
    pub(crate) fn master_key(&self, record: &KeyRecord, material_id: &str) -> Result<MasterKey> {
        let arn = &record.key_metadata.arn;
        let version = record.material(material_id).ok_or_else(|| {
            Error::kms(
                KmsCode::InvalidCiphertextException,
                format!("{arn} has no key material version {material_id}; the file names a version this key never had"),
            )
        })?;
        let material = self.home.open_material(arn, version)?;
        let mut id = [0u8; 32];
        hex::decode_to_slice(material_id, &mut id).map_err(|_| {
            Error::kms(
                KmsCode::KMSInvalidStateException,
                format!("{arn} has a malformed key material id"),
            )
        })?;
        Ok(MasterKey {
            arn: arn.clone(),
            material_id: id,
            aead: self.home.backend.aead(&material),
        })
    }
}

/// One opened version of a master key. Only the KMS layer opens one, and none leaves it: files
/// and volumes get their data keys through KMS requests.
pub(crate) struct MasterKey {
    arn: String,
    material_id: [u8; 32],
    aead: AeadKey,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("arn", &self.arn)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// The key's ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The material version's id.
    pub fn material_id(&self) -> &[u8; 32] {
        &self.material_id
    }

    /// Seals `plaintext` with `nonce` and `aad`: ciphertext ‖ tag.
    pub fn seal_with_nonce(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Vec<u8> {
        self.aead.seal_to_vec(nonce, aad, plaintext)
    }

    /// Opens what [`MasterKey::seal_with_nonce`] made into `out`.
    pub fn open_with_nonce(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        sealed: &[u8],
        out: &mut [u8],
    ) -> std::result::Result<(), crate::crypto::AuthError> {
        self.aead.open_from_slice(nonce, aad, sealed, out)
    }

    /// Seals any short `plaintext` with a random nonce and `aad`: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = crypto::random_array();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&self.aead.seal_to_vec(&nonce, aad, plaintext));
        out
    }

    /// Opens what [`MasterKey::seal`] made; fails if the key, version or AAD differ.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let bad = || {
            Error::kms(
                KmsCode::InvalidCiphertextException,
                format!("the ciphertext does not open under {}: it was damaged or altered, or the encryption context differs", self.arn),
            )
        };
        if sealed.len() < NONCE_LEN + crypto::TAG_LEN {
            return Err(bad());
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let mut out = zeroize::Zeroizing::new(vec![0u8; body.len() - crypto::TAG_LEN]);
        self.aead
            .open_from_slice(nonce.try_into().expect("12 bytes"), aad, body, &mut out)
            .map_err(|_| bad())?;
        Ok(out)
    }
}
