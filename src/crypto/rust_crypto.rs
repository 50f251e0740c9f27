//! The pure-Rust backend: RustCrypto's `aes-gcm`, `hkdf` and `sha2`.

use super::{AuthError, SecretKey, NONCE_LEN, TAG_LEN};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

pub(super) fn aead_key(key: &SecretKey) -> Box<Aes256Gcm> {
    Box::new(Aes256Gcm::new(key.expose().into()))
}

pub(super) fn seal(
    key: &Aes256Gcm,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
    ciphertext: &mut [u8],
) -> [u8; TAG_LEN] {
    ciphertext.copy_from_slice(plaintext);
    seal_in_place(key, nonce, aad, ciphertext)
}

pub(super) fn seal_in_place(
    key: &Aes256Gcm,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> [u8; TAG_LEN] {
    key.encrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf)
        .expect("AES-GCM sealing within its length limits")
        .into()
}

pub(super) fn open(
    key: &Aes256Gcm,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8; TAG_LEN],
    plaintext: &mut [u8],
) -> Result<(), AuthError> {
    plaintext.copy_from_slice(ciphertext);
    open_in_place(key, nonce, aad, plaintext, tag)
}

pub(super) fn open_in_place(
    key: &Aes256Gcm,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), AuthError> {
    key.decrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf, Tag::from_slice(tag))
        .map_err(|_| AuthError)
}

pub(super) fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) {
    hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), ikm)
        .expand(info, out)
        .expect("HKDF-SHA256 output of at most 255 blocks");
}
