//! The KMS data operations, with KMS's limits: Encrypt, Decrypt, ReEncrypt,
//! GenerateDataKey(WithoutPlaintext), GenerateDataKeyPair(WithoutPlaintext), GenerateRandom,
//! Sign, Verify, GenerateMac and VerifyMac (`cofre kms …`), GetPublicKey (`cofre key
//! public-key`) and DeriveSharedSecret (used by `cofre decrypt` for ECDH recipients).
//!
//! A symmetric ciphertext blob names its key, so Decrypt needs no key id:
//!
//! ```text
//! 0x01 ‖ u16 len ‖ key ARN ‖ key material id (32) ‖ nonce (12) ‖ ciphertext ‖ tag (16)
//! ```
//!
//! sealed with AES-256-GCM under the key's material version, with AAD = label ‖ ARN ‖ 0 ‖
//! material id ‖ canonical encryption context, so a different context (or key) does not open
//! it. RSA ciphertexts are plain RSAES-OAEP, as KMS returns them.

use super::specs::{self, EncryptionAlgorithm, MacAlgorithm, MessageType, SigningAlgorithm};
use super::{check_usable, Call, KeyRef, Kms};
use crate::crypto::{AsymKind, SigScheme};
use crate::envelope::EncryptionContext;
use crate::error::{Error, KmsCode, Result};
use crate::keyring::{KeyRecord, KeySpec, KeyUsage, RegionStore};
use zeroize::Zeroizing;

const BLOB_VERSION: u8 = 1;
const LABEL_BLOB: &[u8] = b"cofre v1 kms ciphertext\0";
/// Longest message Sign, Verify, GenerateMac and VerifyMac take.
pub const MAX_MESSAGE: usize = 4096;
/// Longest ciphertext blob Decrypt takes.
pub const MAX_CIPHERTEXT: usize = 6144;

/// What Encrypt (and ReEncrypt) return.
#[derive(Debug, Clone)]
pub struct Encrypted {
    pub ciphertext_blob: Vec<u8>,
    /// ARN of the key that encrypted it.
    pub key_id: String,
    pub encryption_algorithm: EncryptionAlgorithm,
    /// For ReEncrypt: the key the ciphertext came from.
    pub source_key_id: Option<String>,
}

/// What Decrypt returns.
pub struct Decrypted {
    pub plaintext: Zeroizing<Vec<u8>>,
    pub key_id: String,
    pub encryption_algorithm: EncryptionAlgorithm,
    /// The material version (symmetric keys).
    pub key_material_id: Option<String>,
}

/// What GenerateDataKey returns (no plaintext for GenerateDataKeyWithoutPlaintext).
pub struct DataKey {
    pub ciphertext_blob: Vec<u8>,
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
    pub key_id: String,
    pub key_material_id: String,
}

/// What GenerateDataKeyPair returns (no private plaintext for …WithoutPlaintext).
pub struct DataKeyPair {
    /// DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    /// PKCS#8 DER.
    pub private_key_plaintext: Option<Zeroizing<Vec<u8>>>,
    /// The private key, encrypted under the KMS key like Encrypt would.
    pub private_key_ciphertext_blob: Vec<u8>,
    pub key_id: String,
    pub key_pair_spec: specs::DataKeyPairSpec,
}

/// What Sign returns.
#[derive(Debug, Clone)]
pub struct Signed {
    /// PKCS#1 for RSA, DER for ECDSA.
    pub signature: Vec<u8>,
    /// ARN of the key that signed.
    pub key_id: String,
    pub signing_algorithm: SigningAlgorithm,
}

/// What GenerateMac returns.
#[derive(Debug, Clone)]
pub struct Mac {
    pub mac: Vec<u8>,
    pub key_id: String,
    pub mac_algorithm: MacAlgorithm,
}

/// What a successful Verify or VerifyMac returns (a failed one is an error).
#[derive(Debug, Clone)]
pub struct Verified {
    /// ARN of the key that checked it.
    pub key_id: String,
}

/// What GetPublicKey returns.
#[derive(Debug, Clone)]
pub struct PublicKeyInfo {
    pub key_id: String,
    /// DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    pub key_spec: KeySpec,
    pub key_usage: KeyUsage,
    pub encryption_algorithms: Vec<String>,
    pub signing_algorithms: Vec<String>,
    pub key_agreement_algorithms: Vec<String>,
}

// Debug shows what a result is, never its plaintext or private key.
impl std::fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypted")
            .field("key_id", &self.key_id)
            .field("encryption_algorithm", &self.encryption_algorithm)
            .field(
                "plaintext",
                &format_args!("<{} bytes redacted>", self.plaintext.len()),
            )
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("key_id", &self.key_id)
            .field("key_material_id", &self.key_material_id)
            .field("plaintext", &self.plaintext.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for DataKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyPair")
            .field("key_id", &self.key_id)
            .field("key_pair_spec", &self.key_pair_spec)
            .field(
                "private_key_plaintext",
                &self.private_key_plaintext.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

impl super::audited::Audited for Encrypted {
    fn key_arn(&self) -> Option<String> {
        Some(self.key_id.clone())
    }

    fn key_arns(&self) -> Vec<String> {
        self.source_key_id
            .iter()
            .chain(std::iter::once(&self.key_id))
            .cloned()
            .collect()
    }
}
impl super::audited::Audited for Decrypted {
    fn key_arn(&self) -> Option<String> {
        Some(self.key_id.clone())
    }
}
impl super::audited::Audited for DataKey {
    fn key_arn(&self) -> Option<String> {
        Some(self.key_id.clone())
    }
}
impl super::audited::Audited for DataKeyPair {
    fn key_arn(&self) -> Option<String> {
        Some(self.key_id.clone())
    }
}
impl super::audited::Audited for Signed {
    fn key_arn(&self) -> Option<String> {
        Some(self.key_id.clone())
    }
}
impl super::audited::Audited for Verified {
    fn key_arn(&self) -> Option<String> {
        Some(self.key_id.clone())
    }
}
impl super::audited::Audited for Mac {
    fn key_arn(&self) -> Option<String> {
        Some(self.key_id.clone())
    }
}
impl super::audited::Audited for PublicKeyInfo {
    fn key_arn(&self) -> Option<String> {
        Some(self.key_id.clone())
    }
}
impl super::audited::Audited for Zeroizing<Vec<u8>> {}

fn blob_aad(arn: &str, material_id: &[u8; 32], context: &EncryptionContext) -> Vec<u8> {
    let mut a = LABEL_BLOB.to_vec();
    a.extend_from_slice(arn.as_bytes());
    a.push(0);
    a.extend_from_slice(material_id);
    context.encode(&mut a);
    a
}

/// A symmetric ciphertext blob of `plaintext` under the key's current material version.
fn seal_blob(
    store: &RegionStore<'_>,
    record: &KeyRecord,
    context: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let arn = &record.key_metadata.arn;
    let master = store.master_key(record, &record.key_metadata.current_key_material_id)?;
    let mut blob = vec![BLOB_VERSION];
    blob.extend_from_slice(&(arn.len() as u16).to_be_bytes());
    blob.extend_from_slice(arn.as_bytes());
    blob.extend_from_slice(master.material_id());
    blob.extend_from_slice(&master.seal(&blob_aad(arn, master.material_id(), context), plaintext));
    Ok(blob)
}

/// The parts of a symmetric ciphertext blob.
struct Blob<'a> {
    arn: &'a str,
    material_id: [u8; 32],
    sealed: &'a [u8],
}

fn parse_blob(blob: &[u8]) -> Result<Blob<'_>> {
    let bad = || {
        Error::kms(
            KmsCode::InvalidCiphertextException,
            "the ciphertext is not a cofre KMS ciphertext blob (damaged, truncated, or made by another tool); an RSA ciphertext needs --key and --algorithm",
        )
    };
    if blob.len() < 3 || blob[0] != BLOB_VERSION {
        return Err(bad());
    }
    let n = u16::from_be_bytes([blob[1], blob[2]]) as usize;
    let rest = blob.get(3..).ok_or_else(bad)?;
    if rest.len() < n + 32 {
        return Err(bad());
    }
    let arn = std::str::from_utf8(&rest[..n]).map_err(|_| bad())?;
    let material_id = rest[n..n + 32].try_into().expect("32 bytes");
    Ok(Blob {
        arn,
        material_id,
        sealed: &rest[n + 32..],
    })
}

fn usage_error(record: &KeyRecord, op: &str) -> Error {
    let m = &record.key_metadata;
    Error::kms(
        KmsCode::InvalidKeyUsageException,
        format!(
            "{} is a {} key for {}; {op} needs a key whose usage is {}",
            m.arn,
            m.key_spec,
            m.key_usage,
            match op {
                "Sign" | "Verify" => "SIGN_VERIFY",
                "GenerateMac" | "VerifyMac" => "GENERATE_VERIFY_MAC",
                "DeriveSharedSecret" => "KEY_AGREEMENT",
                "GetPublicKey" =>
                    "ENCRYPT_DECRYPT, SIGN_VERIFY or KEY_AGREEMENT with an asymmetric spec",
                _ => "ENCRYPT_DECRYPT",
            }
        ),
    )
}

fn no_context_for_asymmetric(record: &KeyRecord, context: &EncryptionContext) -> Result<()> {
    if context.is_empty() || record.key_metadata.key_spec == KeySpec::SymmetricDefault {
        return Ok(());
    }
    Err(Error::kms(
        KmsCode::ValidationException,
        format!(
            "{} is an asymmetric key; an encryption context is accepted only with symmetric keys: drop the -c pairs",
            record.key_metadata.arn
        ),
    ))
}

fn check_message(message: &[u8]) -> Result<()> {
    if message.is_empty() || message.len() > MAX_MESSAGE {
        return Err(Error::kms(
            KmsCode::ValidationException,
            format!(
                "the message is {} bytes; KMS takes 1 to {MAX_MESSAGE} bytes (sign the digest of larger data: `cofre sign` does that for files)",
                message.len()
            ),
        ));
    }
    Ok(())
}

impl Kms {
    /// Resolves `key` (aliases allowed), checks that it is usable and has `usage`.
    fn key_for(
        &self,
        store: &RegionStore<'_>,
        key: &KeyRef,
        usage: KeyUsage,
        op: &str,
        call: &Call,
    ) -> Result<KeyRecord> {
        let record = self.resolve(store, key, true, call)?;
        check_usable(&record.key_metadata)?;
        if record.key_metadata.key_usage != usage {
            return Err(usage_error(&record, op));
        }
        Ok(record)
    }

    /// The current material of a key (an HMAC key or a PKCS#8 private key).
    fn material_of(&self, record: &KeyRecord) -> Result<Zeroizing<Vec<u8>>> {
        let m = &record.key_metadata;
        let version = record.material(&m.current_key_material_id).ok_or_else(|| {
            Error::kms(
                KmsCode::KMSInvalidStateException,
                format!("{} has no current key material", m.arn),
            )
        })?;
        self.home.open_material_bytes(&m.arn, version)
    }

    fn asym_kind_of(record: &KeyRecord) -> Result<AsymKind> {
        specs::asym_kind(record.key_metadata.key_spec).ok_or_else(|| {
            Error::kms(
                KmsCode::InvalidKeyUsageException,
                format!(
                    "{} is a {} key, not an asymmetric one",
                    record.key_metadata.arn, record.key_metadata.key_spec
                ),
            )
        })
    }

    /// The public key stored in the record (for finding a key by fingerprint).
    fn public_key_der(record: &KeyRecord) -> Result<Vec<u8>> {
        use base64::Engine;
        let b64 = record.public_key.as_deref().ok_or_else(|| {
            Error::Damaged(format!(
                "the record of {} (no public key)",
                record.key_metadata.arn
            ))
        })?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| Error::Damaged(format!("the public key of {}", record.key_metadata.arn)))
    }

    /// The public key, derived again from the sealed private key and checked against the one
    /// stored in the clear: a record whose public key was swapped is refused, so Verify,
    /// Encrypt and GetPublicKey only ever use the key pair's own public key.
    fn checked_public_key(&self, record: &KeyRecord) -> Result<Vec<u8>> {
        let kind = Self::asym_kind_of(record)?;
        let derived = self
            .home
            .backend()
            .public_key_of(kind, &self.material_of(record)?)?;
        if Self::public_key_der(record)? != derived {
            return Err(Error::Damaged(format!(
                "the record of {} (its public key is not its private key's)",
                record.key_metadata.arn
            )));
        }
        Ok(derived)
    }

    /// Encrypt's work on a resolved key.
    fn encrypt_with(
        &self,
        store: &RegionStore<'_>,
        record: &KeyRecord,
        plaintext: &[u8],
        context: &EncryptionContext,
        algorithm: EncryptionAlgorithm,
    ) -> Result<Encrypted> {
        let m = &record.key_metadata;
        if m.key_usage != KeyUsage::EncryptDecrypt {
            return Err(usage_error(record, "Encrypt"));
        }
        no_context_for_asymmetric(record, context)?;
        let symmetric = m.key_spec == KeySpec::SymmetricDefault;
        if symmetric != (algorithm == EncryptionAlgorithm::SymmetricDefault) {
            return Err(Error::kms(
                KmsCode::InvalidKeyUsageException,
                format!(
                    "{} does not encrypt with {}; it takes {}",
                    m.arn,
                    specs::value_name(&algorithm),
                    m.encryption_algorithms.join(" or ")
                ),
            ));
        }
        let max = specs::max_plaintext(m.key_spec, algorithm);
        if plaintext.is_empty() || plaintext.len() > max {
            return Err(Error::kms(
                KmsCode::ValidationException,
                format!(
                    "the plaintext is {} bytes; {} takes 1 to {max} bytes (encrypt larger data with `cofre encrypt`)",
                    plaintext.len(),
                    if symmetric {
                        "a symmetric key".to_owned()
                    } else {
                        format!("{} with {}", m.key_spec, specs::value_name(&algorithm))
                    }
                ),
            ));
        }
        let blob = if symmetric {
            seal_blob(store, record, context, plaintext)?
        } else {
            let hash = algorithm.oaep().expect("an RSA algorithm");
            self.home.backend().rsa_oaep_encrypt(
                &self.checked_public_key(record)?,
                hash,
                plaintext,
            )?
        };
        Ok(Encrypted {
            ciphertext_blob: blob,
            key_id: m.arn.clone(),
            encryption_algorithm: algorithm,
            source_key_id: None,
        })
    }

    /// Encrypt: at most 4096 bytes under a symmetric key (the blob names the key and binds
    /// `context`), or RSA-OAEP under an RSA encryption key (up to its limit, e.g. 190 bytes
    /// for RSA_2048 with RSAES_OAEP_SHA_256).
    pub fn encrypt(
        &self,
        key: &KeyRef,
        plaintext: &[u8],
        context: &EncryptionContext,
        algorithm: EncryptionAlgorithm,
    ) -> Result<Encrypted> {
        self.audited(
            Call::new("Encrypt", true)
                .key(key)
                .param("encryptionAlgorithm", specs::value_name(&algorithm))
                .context(context),
            |call| {
                let store = self.store()?;
                let record = self.resolve(&store, key, true, call)?;
                check_usable(&record.key_metadata)?;
                self.encrypt_with(&store, &record, plaintext, context, algorithm)
            },
        )
    }

    /// Decrypt's work: finds the key (named in a symmetric blob, or `key` for RSA), checks it
    /// against `key` if both are given, and opens the ciphertext.
    fn decrypt_inner(
        &self,
        store: &RegionStore<'_>,
        ciphertext: &[u8],
        context: &EncryptionContext,
        key: Option<&KeyRef>,
        algorithm: EncryptionAlgorithm,
        call: &Call,
    ) -> Result<(KeyRecord, Decrypted)> {
        if ciphertext.is_empty() || ciphertext.len() > MAX_CIPHERTEXT {
            return Err(Error::kms(
                KmsCode::ValidationException,
                format!(
                    "the ciphertext is {} bytes; KMS ciphertexts are 1 to {MAX_CIPHERTEXT} bytes",
                    ciphertext.len()
                ),
            ));
        }
        if algorithm == EncryptionAlgorithm::SymmetricDefault {
            let blob = parse_blob(ciphertext)?;
            let record = self
                .key_named_in_ciphertext(store, blob.arn, call)
                .map_err(|e| match e {
                    Error::HeaderCorrupt(_) => Error::kms(
                        KmsCode::InvalidCiphertextException,
                        "the ciphertext blob names no valid key ARN: it was damaged or altered",
                    ),
                    e => e,
                })?;
            if let Some(k) = key {
                let named = self.resolve(store, k, true, call)?;
                if named.key_metadata.key_id != record.key_metadata.key_id {
                    return Err(Error::kms(
                        KmsCode::IncorrectKeyException,
                        format!(
                            "the ciphertext was encrypted under {}, not {}; drop --key or name that key",
                            blob.arn, named.key_metadata.arn
                        ),
                    ));
                }
            }
            check_usable(&record.key_metadata)?;
            if record.key_metadata.key_spec != KeySpec::SymmetricDefault {
                return Err(usage_error(&record, "Decrypt"));
            }
            let material_id = hex::encode(blob.material_id);
            let master = store.master_key(&record, &material_id)?;
            let plaintext =
                master.open(&blob_aad(blob.arn, &blob.material_id, context), blob.sealed)?;
            let key_id = record.key_metadata.arn.clone();
            return Ok((
                record,
                Decrypted {
                    plaintext,
                    key_id,
                    encryption_algorithm: algorithm,
                    key_material_id: Some(material_id),
                },
            ));
        }
        let key = key.ok_or_else(|| {
            Error::kms(
                KmsCode::ValidationException,
                "an RSA ciphertext does not name its key: give --key KEY",
            )
        })?;
        let record = self.resolve(store, key, true, call)?;
        check_usable(&record.key_metadata)?;
        let m = &record.key_metadata;
        if m.key_usage != KeyUsage::EncryptDecrypt || m.key_spec == KeySpec::SymmetricDefault {
            return Err(Error::kms(
                KmsCode::InvalidKeyUsageException,
                format!(
                    "{} does not decrypt with {}; it takes {}",
                    m.arn,
                    specs::value_name(&algorithm),
                    if m.encryption_algorithms.is_empty() {
                        "no encryption algorithm".to_owned()
                    } else {
                        m.encryption_algorithms.join(" or ")
                    }
                ),
            ));
        }
        no_context_for_asymmetric(&record, context)?;
        let pkcs8 = self.material_of(&record)?;
        let plaintext = self
            .home
            .backend()
            .rsa_from_pkcs8(&pkcs8)?
            .decrypt_oaep(algorithm.oaep().expect("an RSA algorithm"), ciphertext)
            .map_err(|_| {
                Error::kms(
                    KmsCode::InvalidCiphertextException,
                    format!(
                        "the ciphertext does not decrypt under {} with {}: it was damaged, or made for another key or algorithm",
                        m.arn,
                        specs::value_name(&algorithm)
                    ),
                )
            })?;
        let key_id = m.arn.clone();
        Ok((
            record,
            Decrypted {
                plaintext,
                key_id,
                encryption_algorithm: algorithm,
                key_material_id: None,
            },
        ))
    }

    /// Decrypt: a symmetric blob (its key comes from the blob; `key`, if given, must match),
    /// or an RSA ciphertext (`key` and `algorithm` required).
    pub fn decrypt(
        &self,
        ciphertext: &[u8],
        context: &EncryptionContext,
        key: Option<&KeyRef>,
        algorithm: EncryptionAlgorithm,
    ) -> Result<Decrypted> {
        let named = key
            .map(|k| k.to_string())
            .or_else(|| parse_blob(ciphertext).ok().map(|b| b.arn.to_owned()));
        self.audited(
            Call::new("Decrypt", true)
                .param("keyId", named)
                .param("encryptionAlgorithm", specs::value_name(&algorithm))
                .context(context),
            |call| {
                let store = self.store()?;
                Ok(self
                    .decrypt_inner(&store, ciphertext, context, key, algorithm, call)?
                    .1)
            },
        )
    }

    /// ReEncrypt: decrypts under the source key (`kms:ReEncryptFrom`) and encrypts under the
    /// destination key (`kms:ReEncryptTo`) without the plaintext leaving cofre.
    #[allow(clippy::too_many_arguments)]
    pub fn re_encrypt(
        &self,
        ciphertext: &[u8],
        source_context: &EncryptionContext,
        source_key: Option<&KeyRef>,
        source_algorithm: EncryptionAlgorithm,
        destination_key: &KeyRef,
        destination_context: &EncryptionContext,
        destination_algorithm: EncryptionAlgorithm,
    ) -> Result<Encrypted> {
        let ctx_json = |c: &EncryptionContext| {
            c.iter()
                .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
                .collect::<serde_json::Map<_, _>>()
        };
        self.audited(
            Call::new("ReEncrypt", true)
                .param("sourceKeyId", source_key.map(|k| k.to_string()))
                .param("destinationKeyId", destination_key.to_string())
                .param(
                    "sourceEncryptionAlgorithm",
                    specs::value_name(&source_algorithm),
                )
                .param(
                    "destinationEncryptionAlgorithm",
                    specs::value_name(&destination_algorithm),
                )
                .param("sourceEncryptionContext", ctx_json(source_context))
                .param(
                    "destinationEncryptionContext",
                    ctx_json(destination_context),
                ),
            |call| {
                let store = self.store()?;
                let from = specs::value_name(&source_algorithm);
                let from_call = Self::acting_as(call, "ReEncryptFrom", source_context, &from);
                let (_, opened) = self.decrypt_inner(
                    &store,
                    ciphertext,
                    source_context,
                    source_key,
                    source_algorithm,
                    &from_call,
                )?;
                let to = specs::value_name(&destination_algorithm);
                let to_call = Self::acting_as(call, "ReEncryptTo", destination_context, &to);
                let dest = self.resolve(&store, destination_key, true, &to_call)?;
                check_usable(&dest.key_metadata)?;
                let mut out = self.encrypt_with(
                    &store,
                    &dest,
                    &opened.plaintext,
                    destination_context,
                    destination_algorithm,
                )?;
                out.source_key_id = Some(opened.key_id);
                Ok(out)
            },
        )
    }

    /// GenerateDataKey(WithoutPlaintext) of `bytes` random bytes (1–1024; KMS's
    /// `NumberOfBytes`), encrypted under a symmetric key with `context`. The same as
    /// [`Kms::generate_data_key_with`] with only `NumberOfBytes` given.
    pub fn generate_data_key(
        &self,
        key: &KeyRef,
        bytes: usize,
        context: &EncryptionContext,
        with_plaintext: bool,
    ) -> Result<DataKey> {
        self.generate_data_key_with(key, None, Some(bytes), context, with_plaintext)
    }

    /// GenerateDataKey(WithoutPlaintext) as KMS takes it: the length as exactly one of
    /// `key_spec` (AES_256, AES_128) and `number_of_bytes` (1–1024); neither or both is a
    /// ValidationException. (KMS has no default: a front end that wants one supplies it, as
    /// the CLI supplies AES_256.)
    pub fn generate_data_key_with(
        &self,
        key: &KeyRef,
        key_spec: Option<specs::DataKeySpec>,
        number_of_bytes: Option<usize>,
        context: &EncryptionContext,
        with_plaintext: bool,
    ) -> Result<DataKey> {
        let name = if with_plaintext {
            "GenerateDataKey"
        } else {
            "GenerateDataKeyWithoutPlaintext"
        };
        self.audited(
            Call::new(name, true)
                .key(key)
                .param("keySpec", key_spec.map(|s| specs::value_name(&s)))
                .param("numberOfBytes", number_of_bytes)
                .context(context),
            |call| {
                let bytes = match (key_spec, number_of_bytes) {
                    (Some(s), None) => s.byte_len(),
                    (None, Some(n)) => n,
                    (given, _) => {
                        return Err(Error::kms(
                            KmsCode::ValidationException,
                            format!(
                                "{name} takes exactly one of KeySpec (AES_256, AES_128) and NumberOfBytes (1 to 1024); {} given",
                                if given.is_some() { "both were" } else { "neither was" }
                            ),
                        ))
                    }
                };
                if !(1..=1024).contains(&bytes) {
                    return Err(Error::kms(
                        KmsCode::ValidationException,
                        format!("NumberOfBytes {bytes} is out of range; give 1 to 1024"),
                    ));
                }
                let store = self.store()?;
                let record = self.key_for(&store, key, KeyUsage::EncryptDecrypt, name, call)?;
                super::check_symmetric(&record.key_metadata)?;
                let mut plaintext = Zeroizing::new(vec![0u8; bytes]);
                crate::crypto::fill_random(&mut plaintext);
                let e = self.encrypt_with(
                    &store,
                    &record,
                    &plaintext,
                    context,
                    EncryptionAlgorithm::SymmetricDefault,
                )?;
                Ok(DataKey {
                    ciphertext_blob: e.ciphertext_blob,
                    plaintext: with_plaintext.then_some(plaintext),
                    key_id: e.key_id,
                    key_material_id: record.key_metadata.current_key_material_id.clone(),
                })
            },
        )
    }

    /// GenerateDataKeyPair(WithoutPlaintext): a new key pair of `spec`, its private key
    /// encrypted under a symmetric key with `context`.
    pub fn generate_data_key_pair(
        &self,
        key: &KeyRef,
        spec: specs::DataKeyPairSpec,
        context: &EncryptionContext,
        with_plaintext: bool,
    ) -> Result<DataKeyPair> {
        let name = if with_plaintext {
            "GenerateDataKeyPair"
        } else {
            "GenerateDataKeyPairWithoutPlaintext"
        };
        self.audited(
            Call::new(name, true)
                .key(key)
                .param("keyPairSpec", specs::value_name(&spec))
                .context(context),
            |call| {
                let store = self.store()?;
                let record = self.key_for(&store, key, KeyUsage::EncryptDecrypt, name, call)?;
                super::check_symmetric(&record.key_metadata)?;
                let backend = self.home.backend();
                let private = backend.generate_private_key(spec.kind())?;
                let public_key = backend.public_key_of(spec.kind(), &private)?;
                let blob = seal_blob(&store, &record, context, &private)?;
                Ok(DataKeyPair {
                    public_key,
                    private_key_plaintext: with_plaintext.then_some(private),
                    private_key_ciphertext_blob: blob,
                    key_id: record.key_metadata.arn.clone(),
                    key_pair_spec: spec,
                })
            },
        )
    }

    /// GenerateRandom: 1 to 1024 random bytes.
    pub fn generate_random(&self, bytes: usize) -> Result<Zeroizing<Vec<u8>>> {
        self.audited(
            Call::new("GenerateRandom", true).param("numberOfBytes", bytes),
            |_| {
                if !(1..=1024).contains(&bytes) {
                    return Err(Error::kms(
                        KmsCode::ValidationException,
                        format!("NumberOfBytes {bytes} is out of range; give 1 to 1024"),
                    ));
                }
                let mut out = Zeroizing::new(vec![0u8; bytes]);
                crate::crypto::fill_random(&mut out);
                Ok(out)
            },
        )
    }

    /// The digest Sign and Verify work on: the message hashed (RAW), or the message itself
    /// (DIGEST, whose length must be the algorithm's hash length).
    fn digest_for(
        &self,
        message: &[u8],
        message_type: MessageType,
        scheme: SigScheme,
    ) -> Result<Vec<u8>> {
        match message_type {
            MessageType::Raw => {
                check_message(message)?;
                Ok(self.home.backend().digest(scheme.hash(), message))
            }
            MessageType::Digest => {
                if message.len() != scheme.hash().len() {
                    return Err(Error::kms(
                        KmsCode::ValidationException,
                        format!(
                            "a DIGEST message for this algorithm is {} bytes, not {}",
                            scheme.hash().len(),
                            message.len()
                        ),
                    ));
                }
                Ok(message.to_vec())
            }
        }
    }

    /// A SIGN_VERIFY key and a signing algorithm it takes.
    fn signing_key(
        &self,
        store: &RegionStore<'_>,
        key: &KeyRef,
        algorithm: SigningAlgorithm,
        op: &str,
        call: &Call,
    ) -> Result<(KeyRecord, AsymKind)> {
        let record = self.key_for(store, key, KeyUsage::SignVerify, op, call)?;
        let kind = Self::asym_kind_of(&record)?;
        if !algorithm.fits(kind) {
            return Err(Error::kms(
                KmsCode::InvalidKeyUsageException,
                format!(
                    "{} does not sign with {}; it takes {}",
                    record.key_metadata.arn,
                    specs::value_name(&algorithm),
                    record.key_metadata.signing_algorithms.join(", ")
                ),
            ));
        }
        Ok((record, kind))
    }

    /// Sign: a signature (PKCS#1 for RSA, DER for ECDSA) of `message` (RAW, 1–4096 bytes) or
    /// of its digest (DIGEST).
    pub fn sign(
        &self,
        key: &KeyRef,
        message: &[u8],
        message_type: MessageType,
        algorithm: SigningAlgorithm,
    ) -> Result<Signed> {
        self.audited(
            Call::new("Sign", true)
                .key(key)
                .param("messageType", specs::value_name(&message_type))
                .param("signingAlgorithm", specs::value_name(&algorithm)),
            |call| {
                let store = self.store()?;
                let (record, kind) = self.signing_key(&store, key, algorithm, "Sign", call)?;
                let digest = self.digest_for(message, message_type, algorithm.scheme())?;
                let pkcs8 = self.material_of(&record)?;
                Ok(Signed {
                    signature: self.home.backend().sign_digest(
                        kind,
                        algorithm.scheme(),
                        &pkcs8,
                        &digest,
                    )?,
                    key_id: record.key_metadata.arn.clone(),
                    signing_algorithm: algorithm,
                })
            },
        )
    }

    /// Verify: the key's ARN if `signature` is valid, else KMSInvalidSignatureException.
    pub fn verify(
        &self,
        key: &KeyRef,
        message: &[u8],
        message_type: MessageType,
        algorithm: SigningAlgorithm,
        signature: &[u8],
    ) -> Result<Verified> {
        self.audited(
            Call::new("Verify", true)
                .key(key)
                .param("messageType", specs::value_name(&message_type))
                .param("signingAlgorithm", specs::value_name(&algorithm)),
            |call| {
                let store = self.store()?;
                let (record, kind) = self.signing_key(&store, key, algorithm, "Verify", call)?;
                let digest = self.digest_for(message, message_type, algorithm.scheme())?;
                self.home
                    .backend()
                    .verify_digest(
                        kind,
                        algorithm.scheme(),
                        &self.checked_public_key(&record)?,
                        &digest,
                        signature,
                    )
                    .map_err(|_| invalid_signature(&record.key_metadata.arn))?;
                Ok(Verified {
                    key_id: record.key_metadata.arn,
                })
            },
        )
    }

    /// An HMAC key and the MAC algorithm it takes.
    fn mac_key(
        &self,
        store: &RegionStore<'_>,
        key: &KeyRef,
        algorithm: MacAlgorithm,
        op: &str,
        call: &Call,
    ) -> Result<KeyRecord> {
        let record = self.key_for(store, key, KeyUsage::GenerateVerifyMac, op, call)?;
        if specs::hmac_hash(record.key_metadata.key_spec) != Some(algorithm.hash()) {
            return Err(Error::kms(
                KmsCode::InvalidKeyUsageException,
                format!(
                    "{} does not compute {}; it takes {}",
                    record.key_metadata.arn,
                    specs::value_name(&algorithm),
                    record.key_metadata.mac_algorithms.join(", ")
                ),
            ));
        }
        Ok(record)
    }

    /// GenerateMac: the HMAC (RFC 2104) of a 1–4096-byte message.
    pub fn generate_mac(
        &self,
        key: &KeyRef,
        message: &[u8],
        algorithm: MacAlgorithm,
    ) -> Result<Mac> {
        self.audited(
            Call::new("GenerateMac", true)
                .key(key)
                .param("macAlgorithm", specs::value_name(&algorithm)),
            |call| {
                check_message(message)?;
                let store = self.store()?;
                let record = self.mac_key(&store, key, algorithm, "GenerateMac", call)?;
                let k = self.material_of(&record)?;
                Ok(Mac {
                    mac: self.home.backend().hmac(algorithm.hash(), &k, message),
                    key_id: record.key_metadata.arn.clone(),
                    mac_algorithm: algorithm,
                })
            },
        )
    }

    /// VerifyMac: the key's ARN if `mac` is the message's HMAC, else KMSInvalidMacException.
    pub fn verify_mac(
        &self,
        key: &KeyRef,
        message: &[u8],
        algorithm: MacAlgorithm,
        mac: &[u8],
    ) -> Result<Verified> {
        self.audited(
            Call::new("VerifyMac", true)
                .key(key)
                .param("macAlgorithm", specs::value_name(&algorithm)),
            |call| {
                check_message(message)?;
                let store = self.store()?;
                let record = self.mac_key(&store, key, algorithm, "VerifyMac", call)?;
                let k = self.material_of(&record)?;
                self.home
                    .backend()
                    .hmac_verify(algorithm.hash(), &k, message, mac)
                    .map_err(|_| {
                        Error::kms(
                            KmsCode::KMSInvalidMacException,
                            format!(
                                "the MAC does not match the message under {}",
                                record.key_metadata.arn
                            ),
                        )
                    })?;
                Ok(Verified {
                    key_id: record.key_metadata.arn,
                })
            },
        )
    }

    /// GetPublicKey: an asymmetric key's public key (DER SubjectPublicKeyInfo) and what it is
    /// for.
    pub fn get_public_key(&self, key: &KeyRef) -> Result<PublicKeyInfo> {
        self.audited(Call::new("GetPublicKey", true).key(key), |call| {
            let store = self.store()?;
            let record = self.resolve(&store, key, true, call)?;
            check_usable(&record.key_metadata)?;
            let m = &record.key_metadata;
            if specs::asym_kind(m.key_spec).is_none() {
                return Err(usage_error(&record, "GetPublicKey"));
            }
            Ok(PublicKeyInfo {
                key_id: m.arn.clone(),
                public_key: self.checked_public_key(&record)?,
                key_spec: m.key_spec,
                key_usage: m.key_usage,
                encryption_algorithms: m.encryption_algorithms.clone(),
                signing_algorithms: m.signing_algorithms.clone(),
                key_agreement_algorithms: m.key_agreement_algorithms.clone(),
            })
        })
    }

    /// DeriveSharedSecret (ECDH): the raw shared secret between a KEY_AGREEMENT key and a
    /// peer's public key (DER SubjectPublicKeyInfo) on the same curve.
    pub fn derive_shared_secret(
        &self,
        key: &KeyRef,
        peer_public_key: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.audited(
            Call::new("DeriveSharedSecret", true)
                .key(key)
                .param("keyAgreementAlgorithm", "ECDH"),
            |call| {
                let store = self.store()?;
                let record = self.key_for(
                    &store,
                    key,
                    KeyUsage::KeyAgreement,
                    "DeriveSharedSecret",
                    call,
                )?;
                let AsymKind::Ec(curve) = Self::asym_kind_of(&record)? else {
                    return Err(usage_error(&record, "DeriveSharedSecret"));
                };
                let pkcs8 = self.material_of(&record)?;
                self.home.backend().ecdh(curve, &pkcs8, peer_public_key)
            },
        )
    }

    /// The ARN of the key of this region whose public key has SHA-256 `fingerprint`, from the
    /// region's index. Not a request of its own: whoever asks holds that public key already,
    /// and what it is used for (Decrypt, DeriveSharedSecret) is checked and recorded.
    pub(crate) fn key_with_fingerprint(&self, fingerprint: &[u8; 32]) -> Result<Option<String>> {
        Ok(self
            .store()?
            .key_with_fingerprint(fingerprint)?
            .map(|r| r.key_metadata.arn))
    }
}

fn invalid_signature(arn: &str) -> Error {
    Error::kms(
        KmsCode::KMSInvalidSignatureException,
        format!("the signature is not valid for the message under {arn}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_plaintext() {
        let d = Decrypted {
            plaintext: Zeroizing::new(b"top secret".to_vec()),
            key_id: "k".into(),
            encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
            key_material_id: None,
        };
        let text = format!("{d:?}");
        assert!(
            !text.contains("116") && !text.contains("top secret"),
            "{text}"
        );
        let k = DataKey {
            ciphertext_blob: vec![],
            plaintext: Some(Zeroizing::new(vec![42; 32])),
            key_id: "k".into(),
            key_material_id: "m".into(),
        };
        assert!(!format!("{k:?}").contains("42"));
    }
}
