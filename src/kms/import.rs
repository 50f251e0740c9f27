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
    /// and enables the key. `valid_to` None means the material does not expire.
    pub fn import_key_material(
        &self,
        key: &KeyRef,
        import_token: &[u8],
        encrypted_material: &[u8],
        valid_to: Option<SystemTime>,
    ) -> Result<KeyMetadata> {
        self.audited(Call::new("ImportKeyMaterial", false).key(key).param("expirationModel", if valid_to.is_some() { "KEY_MATERIAL_EXPIRES" } else { "KEY_MATERIAL_DOES_NOT_EXPIRE" }), |call| {
        let now = self.home.now();
        if let Some(t) = valid_to {
            if t <= now || t > now + MAX_VALID_TO {
                return Err(Error::kms(
                    KmsCode::ValidationException,
                    "--valid-to must be in the future and at most 365 days ahead; or use --no-expiry",
                ));
            }
        }
        let store = self.store()?;
        let _lock = store.lock()?;
        let mut record = self.resolve(&store, key, false, call)?;
        self.external(&record)?;
        let arn = record.key_metadata.arn.clone();
        if record.key_metadata.key_state == KeyState::PendingDeletion {
            return Err(invalid_state(&arn, KeyState::PendingDeletion));
        }
        let token = self.open_token(import_token, &arn)?;
        let material = self.unwrap_material(&token, encrypted_material)?;
        let id = self.imported_material_id(&arn, &material);
        let m = &mut record.key_metadata;
        if !m.current_key_material_id.is_empty() && m.current_key_material_id != id {
            return Err(Error::kms(
                KmsCode::IncorrectKeyMaterialException,
                format!("{arn} already has other key material; import the same material it had (a new key plus `cofre alias update` is how imported keys rotate)"),
            ));
        }
        m.current_key_material_id = id.clone();
        m.expiration_model = Some(
            if valid_to.is_some() {
                "KEY_MATERIAL_EXPIRES"
            } else {
                "KEY_MATERIAL_DOES_NOT_EXPIRE"
            }
            .to_owned(),
        );
        m.valid_to = valid_to.map(store::format_time);
        if record.materials.is_empty() {
            record.materials.push(MaterialVersion {
                sealed: self.home.seal_material(&arn, &id, &material),
                key_material_id: id,
                creation_date: store::format_time(now),
                rotation_type: None,
            });
        }
        if record.key_metadata.key_state == KeyState::PendingImport {
            record.set_state(KeyState::Enabled);
        }
        store.save_key(&record)?;
        Ok(record.key_metadata)
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

    /// DeleteImportedKeyMaterial: the material is gone at once; the key waits in PendingImport
    /// (a key pending deletion keeps its state) until the same material is imported again.
    pub fn delete_imported_key_material(&self, key: &KeyRef) -> Result<KeyMetadata> {
        self.audited(
            Call::new("DeleteImportedKeyMaterial", false).key(key),
            |call| {
                let store = self.store()?;
                let _lock = store.lock()?;
                let mut record = self.resolve(&store, key, false, call)?;
                self.external(&record)?;
                drop_material(&mut record);
                store.save_key(&record)?;
                Ok(record.key_metadata)
            },
        )
    }
}

/// Removes an imported key's material and puts it in PendingImport (unless pending deletion).
pub(super) fn drop_material(record: &mut KeyRecord) {
    record.materials.clear();
    if record.key_metadata.key_state != KeyState::PendingDeletion {
        record.set_state(KeyState::PendingImport);
    }
}

/// True if an imported key's material has passed its ValidTo.
pub(super) fn material_expired(record: &KeyRecord, now: SystemTime) -> bool {
    let m = &record.key_metadata;
    m.origin == Origin::External
        && !record.materials.is_empty()
        && m.valid_to
            .as_deref()
            .and_then(|t| store::parse_time(t).ok())
            .is_some_and(|t| t <= now)
}
