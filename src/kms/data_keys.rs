//! Data keys of cofre's own envelopes (files and EBS volumes), as KMS operations: a data key is
//! made with GenerateDataKey(WithoutPlaintext), wrapped for another key with Encrypt, and
//! recovered with Decrypt. Each is one request: resolved, checked against the key's state,
//! policy and grants, carried out, and recorded, like any other.
//!
//! Unlike the ciphertext blobs of [`Kms::encrypt`], an envelope's wrapped key ([`WrappedKey`])
//! is sealed with AAD that the envelope chooses (the file's message id, the volume's lineage),
//! given as a function of the key ARN and material version the service picks. No opened master
//! key leaves this module.

use super::{aws_managed, check_symmetric, check_usable, Call, KeyRef, Kms};
use crate::crypto::{self, SecretKey, NONCE_LEN};
use crate::envelope::{EncryptionContext, WrappedKey};
use crate::error::{Error, KmsCode, Result};
use crate::keyring::{KeyRecord, MasterKey, RegionStore};
use zeroize::Zeroize;

/// The AAD an envelope seals a data key with, given the key ARN and material id.
pub type DataKeyAad<'a> = &'a dyn Fn(&str, &[u8; 32]) -> Vec<u8>;

/// The cofre service (`"ebs"`) making a request for its caller, if one is.
pub type Via = Option<&'static str>;

impl Kms {
    /// GenerateDataKey (or, for a service, GenerateDataKeyWithoutPlaintext): a new 256-bit data
    /// key sealed under the current material of `key`. Returns the wrapped key, and the
    /// plaintext only when `with_plaintext`.
    pub fn generate_envelope_key(
        &self,
        key: &KeyRef,
        context: &EncryptionContext,
        via: Via,
        with_plaintext: bool,
        aad: DataKeyAad<'_>,
    ) -> Result<(WrappedKey, Option<SecretKey>)> {
        let name = if with_plaintext {
            "GenerateDataKey"
        } else {
            "GenerateDataKeyWithoutPlaintext"
        };
        let call = Call::new(name, true)
            .key(key)
            .param("keySpec", "AES_256")
            .context(context);
        self.audited(with_via(call, via), |call| {
            let master = self.wrapping_key(key, via, call)?;
            let data_key = SecretKey::random();
            let wrapped = seal(&master, &data_key, aad);
            Ok((wrapped, with_plaintext.then_some(data_key)))
        })
    }

    /// Encrypt of a data key the caller already has, under the current material of `key`.
    pub fn encrypt_envelope_key(
        &self,
        key: &KeyRef,
        context: &EncryptionContext,
        via: Via,
        data_key: &SecretKey,
        aad: DataKeyAad<'_>,
    ) -> Result<WrappedKey> {
        let call = Call::new("Encrypt", true)
            .key(key)
            .param("encryptionAlgorithm", "SYMMETRIC_DEFAULT")
            .context(context);
        self.audited(with_via(call, via), |call| {
            Ok(seal(&self.wrapping_key(key, via, call)?, data_key, aad))
        })
    }

    /// Decrypt of a wrapped data key: the key and material version it names, in this region
    /// (a multi-Region key's replica opens its primary's ciphertexts).
    pub fn decrypt_envelope_key(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
        via: Via,
        aad: &[u8],
    ) -> Result<SecretKey> {
        let call = Call::new("Decrypt", true)
            .param("keyId", &wrapped.key_arn)
            .param("encryptionAlgorithm", "SYMMETRIC_DEFAULT")
            .context(context);
        self.audited(with_via(call, via), |call| {
            let store = self.store()?;
            let record = self.key_named_in_ciphertext(&store, &wrapped.key_arn, call)?;
            let master = usable_master(&store, &record, via, &hex::encode(wrapped.material_id))?;
            unwrap(&master, wrapped, aad)
        })
    }

    /// Decrypt of a data key a service keeps open for its caller: the first call is a Decrypt
    /// like [`Kms::decrypt_envelope_key`] (authorized and recorded); the same caller's calls for
    /// the same ciphertext within [`OPENED_KEY_TTL`](crate::keyring::cache::OPENED_KEY_TTL) reuse the key this process opened, after
    /// checking that the KMS key is still enabled. The EBS direct APIs open a snapshot's data
    /// key this way once a minute, not once per block, as EBS keeps an attached volume's key.
    pub fn decrypt_envelope_key_kept(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
        via: Via,
        aad: &[u8],
    ) -> Result<SecretKey> {
        let id = self.opened_key_id(wrapped, context, via, aad);
        if let Some(key) = self.home.opened_data_key(&id) {
            if self.still_enabled(&wrapped.key_arn)? {
                return Ok(key);
            }
        }
        let key = self.decrypt_envelope_key(wrapped, context, via, aad)?;
        self.home.keep_opened_data_key(id, &key);
        Ok(key)
    }

    /// Whether the key a kept data key was opened with is still enabled (else the caller goes
    /// through Decrypt again and gets its error).
    fn still_enabled(&self, arn: &str) -> Result<bool> {
        let Ok(KeyRef::Arn { id, .. }) = arn.parse::<KeyRef>() else {
            return Ok(false);
        };
        let store = self.store()?;
        Ok(store
            .load_key(&id)?
            .is_some_and(|r| check_usable(&r.key_metadata).is_ok()))
    }

    /// Who opened which ciphertext, how: the name of a kept data key.
    fn opened_key_id(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
        via: Via,
        aad: &[u8],
    ) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("cofre 2026 opened data key");
        let mut field = |bytes: &[u8]| {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(self.ctx.principal().arn().as_bytes());
        for token in self.ctx.grant_tokens() {
            field(token.as_bytes());
        }
        field(b"");
        field(self.region.as_str().as_bytes());
        field(via.unwrap_or("").as_bytes());
        field(wrapped.key_arn.as_bytes());
        field(&wrapped.material_id);
        field(&wrapped.nonce);
        field(&wrapped.sealed);
        field(&context.encoded());
        field(aad);
        *h.finalize().as_bytes()
    }

    /// The current material of `key` for sealing a data key; a service may use (and first
    /// create) its own AWS managed key, `alias/aws/<service>`.
    fn wrapping_key(&self, key: &KeyRef, via: Via, call: &Call) -> Result<MasterKey> {
        let store = self.store()?;
        if let (Some(s), KeyRef::Alias(name) | KeyRef::AliasArn { name, .. }) = (via, key) {
            if name.strip_prefix("alias/aws/") == Some(s) {
                self.ensure_aws_managed_key(&store, name)?;
            }
        }
        let record = self.resolve(&store, key, true, call)?;
        let current = record.key_metadata.current_key_material_id.clone();
        usable_master(&store, &record, via, &current)
    }
}

fn with_via(call: Call, via: Via) -> Call {
    match via {
        Some(service) => call.via(service),
        None => call,
    }
}

/// One material version of an Enabled symmetric key, refused to other callers than its own
/// service if it is an AWS managed key.
fn usable_master(
    store: &RegionStore<'_>,
    record: &KeyRecord,
    via: Via,
    material_id: &str,
) -> Result<MasterKey> {
    check_usable(&record.key_metadata)?;
    check_symmetric(&record.key_metadata)?;
    aws_managed::through_service(store, record, via)?;
    store.master_key(record, material_id)
}

fn seal(master: &MasterKey, data_key: &SecretKey, aad: DataKeyAad<'_>) -> WrappedKey {
    let nonce: [u8; NONCE_LEN] = crypto::random_array();
    let sealed = master.seal_with_nonce(
        &nonce,
        &aad(master.arn(), master.material_id()),
        data_key.expose(),
    );
    WrappedKey {
        key_arn: master.arn().to_owned(),
        material_id: *master.material_id(),
        nonce,
        sealed: sealed.try_into().expect("a 32-byte key and its tag"),
    }
}

fn unwrap(master: &MasterKey, wrapped: &WrappedKey, aad: &[u8]) -> Result<SecretKey> {
    let mut key = [0u8; 32];
    master
        .open_with_nonce(&wrapped.nonce, aad, &wrapped.sealed, &mut key)
        .map_err(|_| {
            Error::kms(
                KmsCode::InvalidCiphertextException,
                format!("the data key wrapped under {} does not open: the header was damaged or tampered with, or the encryption context differs", master.arn()),
            )
        })?;
    let k = SecretKey::from_bytes(key);
    key.zeroize();
    Ok(k)
}
