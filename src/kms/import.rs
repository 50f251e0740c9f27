//! Imported key material (origin EXTERNAL): GetParametersForImport, ImportKeyMaterial,
//! DeleteImportedKeyMaterial, and expiry.
//!
//! The wrapping key pair is made for each GetParametersForImport. Its private half travels
//! inside the import token, sealed under an AWS owned key (with the key ARN, algorithm and
//! validity), so cofre keeps no state between the two calls and a token opens only in its home.
//! Token: `"CFIMPORT1" ‖ nonce (12) ‖ AES-256-GCM(token key, nonce, JSON, AAD = "CFIMPORT1")`.
//!
//! Imported material gets a deterministic KeyMaterialId — a keyed BLAKE3 of the key ARN and
//! the material under an AWS owned key — so the same material imported again after it expired
//! gets the same id and files wrapped under it open again, and different material is refused.
//!
//! Rotation of imported keys, as KMS does it: ImportKeyMaterial with ImportType
//! `NEW_KEY_MATERIAL` (the default for a key's first material) adds material; on a key that
//! already has material it waits, `PENDING_ROTATION`, until RotateKeyOnDemand makes it current
//! (see `lifecycle.rs`). `EXISTING_KEY_MATERIAL` (the default after the first import) imports
//! again material the key had — after it expired or was deleted, or to change its expiry.
//! Every material version keeps decrypting what it encrypted; each has its own expiry, and the
//! key is usable only while every version associated with it is imported (else PendingImport).

use super::Call;
use super::{aws_managed, invalid_state, KeyRef, Kms};
use crate::crypto::{self, OaepHash, SecretKey, NONCE_LEN};
use crate::error::{Error, KmsCode, Result};
use crate::keyring::{KeyMetadata, KeyRecord, KeyState, MaterialVersion, Origin};
use crate::store;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

const TOKEN_MAGIC: &[u8] = b"CFIMPORT1";
/// Import parameters stay valid for 24 hours.
const PARAMETERS_VALID: Duration = Duration::from_secs(24 * 3600);
/// Expiring material may be valid at most 365 days ahead.
const MAX_VALID_TO: Duration = Duration::from_secs(365 * 86_400);

/// KMS `AlgorithmSpec` for wrapping imported material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum WrappingAlgorithm {
    #[serde(rename = "RSAES_OAEP_SHA_1")]
    #[value(name = "RSAES_OAEP_SHA_1")]
    RsaesOaepSha1,
    #[serde(rename = "RSAES_OAEP_SHA_256")]
    #[value(name = "RSAES_OAEP_SHA_256")]
    RsaesOaepSha256,
    #[serde(rename = "RSA_AES_KEY_WRAP_SHA_1")]
    #[value(name = "RSA_AES_KEY_WRAP_SHA_1")]
    RsaAesKeyWrapSha1,
    #[serde(rename = "RSA_AES_KEY_WRAP_SHA_256")]
    #[value(name = "RSA_AES_KEY_WRAP_SHA_256")]
    RsaAesKeyWrapSha256,
}

/// KMS `WrappingKeySpec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum WrappingKeySpec {
    #[serde(rename = "RSA_2048")]
    #[value(name = "RSA_2048")]
    Rsa2048,
    #[serde(rename = "RSA_3072")]
    #[value(name = "RSA_3072")]
    Rsa3072,
    #[serde(rename = "RSA_4096")]
    #[value(name = "RSA_4096")]
    Rsa4096,
}

impl WrappingKeySpec {
    fn bits(self) -> usize {
        match self {
            WrappingKeySpec::Rsa2048 => 2048,
            WrappingKeySpec::Rsa3072 => 3072,
            WrappingKeySpec::Rsa4096 => 4096,
        }
    }
}

/// KMS `ImportType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum ImportType {
    /// Material the key never had: its first, or the next to rotate to.
    #[serde(rename = "NEW_KEY_MATERIAL")]
    #[value(name = "NEW_KEY_MATERIAL")]
    NewKeyMaterial,
    /// Material the key had before (expired, deleted, or to change its expiry).
    #[serde(rename = "EXISTING_KEY_MATERIAL")]
    #[value(name = "EXISTING_KEY_MATERIAL")]
    ExistingKeyMaterial,
}

/// What ImportKeyMaterial takes besides the key, the import token and the wrapped material.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// When the material expires (KEY_MATERIAL_EXPIRES, at most 365 days ahead); none: it does
    /// not expire (KEY_MATERIAL_DOES_NOT_EXPIRE).
    pub valid_to: Option<SystemTime>,
    /// None: NEW_KEY_MATERIAL for the key's first material, EXISTING_KEY_MATERIAL after.
    pub import_type: Option<ImportType>,
    /// With EXISTING_KEY_MATERIAL: the id the material must have (KMS `KeyMaterialId`).
    pub key_material_id: Option<String>,
    /// KMS `KeyMaterialDescription` (1–256 of letters, digits, spaces and `:/_.-`); none keeps
    /// what the material had.
    pub description: Option<String>,
}

/// What ImportKeyMaterial and DeleteImportedKeyMaterial return: the key after the request, and
/// the material imported or deleted.
#[derive(Debug, Clone)]
pub struct KeyMaterialResult {
    pub key_metadata: KeyMetadata,
    pub key_material_id: String,
}

impl super::audited::Audited for KeyMaterialResult {
    fn key_arn(&self) -> Option<String> {
        Some(self.key_metadata.arn.clone())
    }
}

const EXPIRES: &str = "KEY_MATERIAL_EXPIRES";
const DOES_NOT_EXPIRE: &str = "KEY_MATERIAL_DOES_NOT_EXPIRE";

/// Checks a KeyMaterialDescription (`^[a-zA-Z0-9:/_\s.-]+$`, at most 256 characters).
fn check_description(d: &str) -> Result<()> {
    let ok = (1..=256).contains(&d.chars().count())
        && d.chars()
            .all(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || ":/_.-".contains(c));
    if !ok {
        return Err(Error::kms(
            KmsCode::ValidationException,
            "a key material description is 1 to 256 letters, digits, spaces and : / _ . -",
        ));
    }
    Ok(())
}

/// What GetParametersForImport returns.
#[derive(Debug, Clone)]
pub struct ImportParameters {
    pub key_id: String,
    /// DER SubjectPublicKeyInfo of the wrapping key.
    pub public_key: Vec<u8>,
    /// The opaque import token.
    pub import_token: Vec<u8>,
    pub parameters_valid_to: String,
}

/// The sealed contents of an import token.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Token {
    key_arn: String,
    wrapping_algorithm: WrappingAlgorithm,
    wrapping_key_spec: WrappingKeySpec,
    valid_to: String,
    /// PKCS#8 DER of the wrapping private key, hex.
    private_key: String,
}

impl Drop for Token {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.private_key);
    }
}

impl Kms {
    /// Checks a key is an imported-material key this request may work on.
    fn external(&self, record: &KeyRecord) -> Result<()> {
        aws_managed::customer_managed_only(record)?;
        if record.key_metadata.origin != Origin::External {
            return Err(Error::kms(
                KmsCode::UnsupportedOperationException,
                format!(
                    "{} was created with origin AWS_KMS; only keys created with `--origin EXTERNAL` take imported material",
                    record.key_metadata.arn
                ),
            ));
        }
        Ok(())
    }

    /// The imported-material key `key` names, authorized for `call`, its record brought up
    /// to date ([`upgrade_record`]).
    fn imported_key(
        &self,
        store: &crate::keyring::RegionStore<'_>,
        key: &KeyRef,
        call: &Call,
    ) -> Result<KeyRecord> {
        let mut record = self.resolve(store, key, false, call)?;
        self.external(&record)?;
        upgrade_record(&mut record);
        Ok(record)
    }

    /// GetParametersForImport: a fresh wrapping key pair and an import token valid 24 hours.
    pub fn get_parameters_for_import(
        &self,
        key: &KeyRef,
        algorithm: WrappingAlgorithm,
        spec: WrappingKeySpec,
    ) -> Result<ImportParameters> {
        self.audited(
            Call::new("GetParametersForImport", false)
                .key(key)
                .param("wrappingAlgorithm", algorithm)
                .param("wrappingKeySpec", spec),
            |call| {
                let store = self.store()?;
                let record = self.resolve(&store, key, false, call)?;
                self.external(&record)?;
                let m = &record.key_metadata;
                if m.key_state == KeyState::PendingDeletion {
                    return Err(invalid_state(&m.arn, m.key_state));
                }
                let backend = self.home.backend();
                let private = backend.rsa_generate(spec.bits())?;
                let valid_to = store::format_time(self.home.now() + PARAMETERS_VALID);
                let token = Token {
                    key_arn: m.arn.clone(),
                    wrapping_algorithm: algorithm,
                    wrapping_key_spec: spec,
                    valid_to: valid_to.clone(),
                    private_key: hex::encode(private.pkcs8_der()?.as_slice()),
                };
                let json = Zeroizing::new(serde_json::to_vec(&token).expect("serializable"));
                drop(token);
                let nonce: [u8; NONCE_LEN] = crypto::random_array();
                let mut sealed = TOKEN_MAGIC.to_vec();
                sealed.extend_from_slice(&nonce);
                sealed.extend_from_slice(&self.token_key().seal_to_vec(&nonce, TOKEN_MAGIC, &json));
                Ok(ImportParameters {
                    key_id: m.key_id.clone(),
                    public_key: private.public_key_der()?,
                    import_token: sealed,
                    parameters_valid_to: valid_to,
                })
            },
        )
    }

    fn token_key(&self) -> crypto::AeadKey {
        self.home
            .backend()
            .aead(&self.home.aws_owned_key("kms import tokens"))
    }

    fn open_token(&self, raw: &[u8], arn: &str) -> Result<Token> {
        let invalid = |why: &str| {
            Error::kms(
                KmsCode::InvalidImportTokenException,
                format!("the import token {why}; get a new one with `cofre key import-params`"),
            )
        };
        let rest = raw
            .strip_prefix(TOKEN_MAGIC)
            .filter(|r| r.len() > NONCE_LEN)
            .ok_or_else(|| invalid("is not a cofre import token"))?;
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let mut json = Zeroizing::new(vec![0u8; sealed.len().saturating_sub(16)]);
        self.token_key()
            .open_from_slice(
                nonce.try_into().expect("12 bytes"),
                TOKEN_MAGIC,
                sealed,
                &mut json,
            )
            .map_err(|_| {
                invalid("does not open in this home (damaged, or made by another home)")
            })?;
        let token: Token = serde_json::from_slice(&json).map_err(|_| invalid("is malformed"))?;
        if token.key_arn != arn {
            return Err(invalid(&format!(
                "was made for {}, not {arn}",
                token.key_arn
            )));
        }
        let valid_to = store::parse_time(&token.valid_to).map_err(|_| invalid("is malformed"))?;
        if self.home.now() >= valid_to {
            return Err(Error::kms(
                KmsCode::ExpiredImportTokenException,
                format!(
                    "the import token expired at {}; get a new one with `cofre key import-params`",
                    token.valid_to
                ),
            ));
        }
        Ok(token)
    }

    /// ImportKeyMaterial: unwraps the material with the token's private key, inside cofre,
    /// and enables the key. `valid_to` None means the material does not expire. The import
    /// type is the default: NEW_KEY_MATERIAL for the key's first material, else
    /// EXISTING_KEY_MATERIAL ([`Kms::import_key_material_with`] takes the rest).
    pub fn import_key_material(
        &self,
        key: &KeyRef,
        import_token: &[u8],
        encrypted_material: &[u8],
        valid_to: Option<SystemTime>,
    ) -> Result<KeyMetadata> {
        let options = ImportOptions {
            valid_to,
            ..Default::default()
        };
        self.import_key_material_with(key, import_token, encrypted_material, &options)
            .map(|r| r.key_metadata)
    }

    /// ImportKeyMaterial with every option KMS takes ([`ImportOptions`]).
    pub fn import_key_material_with(
        &self,
        key: &KeyRef,
        import_token: &[u8],
        encrypted_material: &[u8],
        options: &ImportOptions,
    ) -> Result<KeyMaterialResult> {
        let valid_to = options.valid_to;
        let call = Call::new("ImportKeyMaterial", false)
            .key(key)
            .param(
                "expirationModel",
                if valid_to.is_some() {
                    EXPIRES
                } else {
                    DOES_NOT_EXPIRE
                },
            )
            .param("validTo", valid_to.map(store::format_time))
            .param("importType", options.import_type)
            .param("keyMaterialId", &options.key_material_id)
            .param("keyMaterialDescription", &options.description);
        self.audited(call, |call| {
            let now = self.home.now();
            if let Some(t) = valid_to {
                if t <= now || t > now + MAX_VALID_TO {
                    return Err(Error::kms(
                        KmsCode::ValidationException,
                        "--valid-to must be in the future and at most 365 days ahead; or use --no-expiry",
                    ));
                }
            }
            if let Some(d) = &options.description {
                check_description(d)?;
            }
            let store = self.store()?;
            let _lock = store.lock()?;
            let mut record = self.imported_key(&store, key, call)?;
            let arn = record.key_metadata.arn.clone();
            if record.key_metadata.key_state == KeyState::PendingDeletion {
                return Err(invalid_state(&arn, KeyState::PendingDeletion));
            }
            let first = record.materials.is_empty();
            let import_type = options.import_type.unwrap_or(if first {
                ImportType::NewKeyMaterial
            } else {
                ImportType::ExistingKeyMaterial
            });
            if options.key_material_id.is_some() && import_type == ImportType::NewKeyMaterial {
                return Err(Error::kms(
                    KmsCode::ValidationException,
                    "a key material id names material the key had: give it only with --import-type EXISTING_KEY_MATERIAL",
                ));
            }
            let token = self.open_token(import_token, &arn)?;
            let material = self.unwrap_material(&token, encrypted_material)?;
            let id = self.imported_material_id(&arn, &material);
            let incorrect = |why: String| Error::kms(KmsCode::IncorrectKeyMaterialException, why);
            let sealed = self.home.seal_material(&arn, &id, &material);
            let expiration_model = Some(if valid_to.is_some() { EXPIRES } else { DOES_NOT_EXPIRE }.to_owned());
            let valid_to = valid_to.map(store::format_time);
            match import_type {
                ImportType::NewKeyMaterial => {
                    if record.material(&id).is_some() {
                        return Err(incorrect(format!(
                            "this material is already key material {id} of {arn}; import it again with --import-type EXISTING_KEY_MATERIAL"
                        )));
                    }
                    if let Some(p) = record.materials.iter().find(|v| v.pending_rotation) {
                        return Err(invalid_state_msg(&arn, format!(
                            "already has key material {} pending rotation; rotate to it (`cofre key rotate`) or delete it (`cofre key delete-material --key-material-id`) first",
                            p.key_material_id
                        )));
                    }
                    record.materials.push(MaterialVersion {
                        key_material_id: id.clone(),
                        creation_date: store::format_time(now),
                        rotation_type: None,
                        sealed,
                        expiration_model,
                        valid_to,
                        description: options.description.clone(),
                        // Later material waits for RotateKeyOnDemand; the first is current.
                        pending_rotation: !first,
                    });
                    if first {
                        record.key_metadata.current_key_material_id = id.clone();
                    }
                }
                ImportType::ExistingKeyMaterial => {
                    if first {
                        return Err(incorrect(format!(
                            "{arn} has no key material yet; import its first material with --import-type NEW_KEY_MATERIAL (the default for a first import)"
                        )));
                    }
                    if let Some(want) = options.key_material_id.as_deref().filter(|w| *w != id) {
                        return Err(incorrect(format!(
                            "this material is key material {id}, not {want}; import the material {want} names"
                        )));
                    }
                    let Some(v) = record.materials.iter_mut().find(|v| v.key_material_id == id)
                    else {
                        return Err(incorrect(format!(
                            "this is not key material {arn} had; import the same material it had (`cofre key rotations {arn} --include-key-material ALL_KEY_MATERIAL` lists them), or new material with --import-type NEW_KEY_MATERIAL and then `cofre key rotate`"
                        )));
                    };
                    v.sealed = sealed;
                    v.expiration_model = expiration_model;
                    v.valid_to = valid_to;
                    if options.description.is_some() {
                        v.description = options.description.clone();
                    }
                }
            }
            refresh_key_expiry(&mut record);
            if record.key_metadata.key_state == KeyState::PendingImport && all_imported(&record) {
                record.set_state(KeyState::Enabled);
            }
            store.save_key(&record)?;
            Ok(KeyMaterialResult {
                key_metadata: record.key_metadata,
                key_material_id: id,
            })
        })
    }

    fn unwrap_material(&self, token: &Token, wrapped: &[u8]) -> Result<SecretKey> {
        let bad = || {
            Error::kms(
                KmsCode::InvalidCiphertextException,
                format!(
                    "the key material does not unwrap with this token's wrapping key and {}; wrap it with the public key that came with this token",
                    serde_json::to_value(token.wrapping_algorithm).expect("serializable")
                ),
            )
        };
        let backend = self.home.backend();
        let der = Zeroizing::new(hex::decode(&token.private_key).map_err(|_| bad())?);
        let private = backend.rsa_from_pkcs8(&der)?;
        let plain = match token.wrapping_algorithm {
            WrappingAlgorithm::RsaesOaepSha1 => private.decrypt_oaep(OaepHash::Sha1, wrapped),
            WrappingAlgorithm::RsaesOaepSha256 => private.decrypt_oaep(OaepHash::Sha256, wrapped),
            WrappingAlgorithm::RsaAesKeyWrapSha1 | WrappingAlgorithm::RsaAesKeyWrapSha256 => {
                // RSA-OAEP-wrapped AES-256 key, then the material under AES key wrap with
                // padding (RFC 5649).
                let hash = if token.wrapping_algorithm == WrappingAlgorithm::RsaAesKeyWrapSha1 {
                    OaepHash::Sha1
                } else {
                    OaepHash::Sha256
                };
                let n = private.modulus_len();
                if wrapped.len() <= n {
                    return Err(bad());
                }
                let kek = private
                    .decrypt_oaep(hash, &wrapped[..n])
                    .map_err(|_| bad())?;
                let kek: &[u8; 32] = kek.as_slice().try_into().map_err(|_| bad())?;
                backend.aes_kwp_unwrap(kek, &wrapped[n..])
            }
        }
        .map_err(|_| bad())?;
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| {
            Error::kms(
                KmsCode::IncorrectKeyMaterialException,
                format!(
                    "the key material is {} bytes; a symmetric key takes exactly 32 (256 bits)",
                    plain.len()
                ),
            )
        })?;
        Ok(SecretKey::from_bytes(bytes))
    }

    fn imported_material_id(&self, arn: &str, material: &SecretKey) -> String {
        let key = self.home.aws_owned_key("kms imported material id");
        let mut h = blake3::Hasher::new_keyed(key.expose());
        h.update(arn.as_bytes());
        h.update(&[0]);
        h.update(material.expose());
        h.finalize().to_hex().to_string()
    }

    /// DeleteImportedKeyMaterial of the key's current material: the material is gone at once;
    /// the key waits in PendingImport (a key pending deletion keeps its state) until the same
    /// material is imported again.
    pub fn delete_imported_key_material(&self, key: &KeyRef) -> Result<KeyMetadata> {
        self.delete_imported_key_material_version(key, None)
            .map(|r| r.key_metadata)
    }

    /// DeleteImportedKeyMaterial of the material `key_material_id` (the current material if
    /// none). Material pending rotation is not yet associated with the key: it goes entirely
    /// and the key's state stays; any other material leaves the key in PendingImport until it
    /// is imported again.
    pub fn delete_imported_key_material_version(
        &self,
        key: &KeyRef,
        key_material_id: Option<&str>,
    ) -> Result<KeyMaterialResult> {
        self.audited(
            Call::new("DeleteImportedKeyMaterial", false)
                .key(key)
                .param("keyMaterialId", key_material_id),
            |call| {
                let store = self.store()?;
                let _lock = store.lock()?;
                let mut record = self.imported_key(&store, key, call)?;
                let arn = record.key_metadata.arn.clone();
                let id = key_material_id
                    .unwrap_or(&record.key_metadata.current_key_material_id)
                    .to_owned();
                let Some(at) = record.materials.iter().position(|v| v.key_material_id == id)
                else {
                    return Err(Error::kms(
                        KmsCode::NotFoundException,
                        format!("{arn} has no key material {id:?}; `cofre key rotations {arn} --include-key-material ALL_KEY_MATERIAL` lists its material"),
                    ));
                };
                if !record.materials[at].is_imported() {
                    return Err(invalid_state_msg(
                        &arn,
                        format!("has key material {id} deleted already (PENDING_IMPORT); import it again with `cofre key import`"),
                    ));
                }
                if record.materials[at].pending_rotation {
                    record.materials.remove(at);
                } else {
                    record.materials[at].sealed.clear();
                    if record.key_metadata.key_state != KeyState::PendingDeletion {
                        record.set_state(KeyState::PendingImport);
                    }
                }
                store.save_key(&record)?;
                Ok(KeyMaterialResult {
                    key_metadata: record.key_metadata,
                    key_material_id: id,
                })
            },
        )
    }
}

/// The KMSInvalidStateException for `arn` and why.
fn invalid_state_msg(arn: &str, why: String) -> Error {
    Error::kms(KmsCode::KMSInvalidStateException, format!("{arn} {why}"))
}

/// Brings an imported key's record of an earlier version up to date: one whose material was
/// deleted kept only the id of it in the metadata; it becomes a version awaiting import.
pub(super) fn upgrade_record(record: &mut KeyRecord) {
    let m = &record.key_metadata;
    if m.origin == Origin::External
        && record.materials.is_empty()
        && !m.current_key_material_id.is_empty()
    {
        let v = MaterialVersion {
            key_material_id: m.current_key_material_id.clone(),
            creation_date: m.creation_date.clone(),
            expiration_model: m.expiration_model.clone(),
            valid_to: m.valid_to.clone(),
            ..Default::default()
        };
        record.materials.push(v);
    }
}

/// True if every material version associated with the key (not pending rotation) is held:
/// only then can an imported key be used.
pub(super) fn all_imported(record: &KeyRecord) -> bool {
    !record.materials.is_empty()
        && record
            .materials
            .iter()
            .all(|v| v.pending_rotation || v.is_imported())
}

/// Sets the key's ExpirationModel and ValidTo from its associated material that is held: the
/// earliest time any of it expires (KMS `KeyMetadata.ValidTo`). Left as they were while none
/// is held.
pub(super) fn refresh_key_expiry(record: &mut KeyRecord) {
    let held: Vec<&MaterialVersion> = record
        .materials
        .iter()
        .filter(|v| !v.pending_rotation && v.is_imported())
        .collect();
    if held.is_empty() {
        return;
    }
    let earliest = held
        .iter()
        .filter_map(|v| record.material_valid_to(v))
        .min();
    let m = &mut record.key_metadata;
    m.valid_to = earliest.map(store::format_time);
    m.expiration_model = Some(
        if earliest.is_some() {
            EXPIRES
        } else {
            DOES_NOT_EXPIRE
        }
        .to_owned(),
    );
}

/// Deletes the imported material whose ValidTo has passed by `now`: material pending rotation
/// goes entirely; other material leaves the key in PendingImport (unless pending deletion)
/// until it is imported again. Returns whether any expired.
pub(super) fn expire_material(record: &mut KeyRecord, now: SystemTime) -> bool {
    let expired: Vec<String> = record
        .materials
        .iter()
        .filter(|v| record.material_valid_to(v).is_some_and(|t| t <= now))
        .map(|v| v.key_material_id.clone())
        .collect();
    if expired.is_empty() {
        return false;
    }
    record
        .materials
        .retain(|v| !(v.pending_rotation && expired.contains(&v.key_material_id)));
    let mut associated = false;
    for v in &mut record.materials {
        if expired.contains(&v.key_material_id) {
            v.sealed.clear();
            associated = true;
        }
    }
    if associated && record.key_metadata.key_state != KeyState::PendingDeletion {
        record.set_state(KeyState::PendingImport);
    }
    true
}
