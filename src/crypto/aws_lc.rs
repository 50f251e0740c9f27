//! The AWS-LC backend (`aws-lc-rs`): AES-256-GCM out of place, HKDF-SHA256.

use super::{AuthError, SecretKey, NONCE_LEN, TAG_LEN};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::hkdf;

pub(super) fn aead_key(key: &SecretKey) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.expose()).expect("a 32-byte AES key"))
}

pub(super) fn seal(
    key: &LessSafeKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
    ciphertext: &mut [u8],
) -> [u8; TAG_LEN] {
    let mut tag = [0u8; TAG_LEN];
    key.seal_out_of_place_scatter(
        Nonce::assume_unique_for_key(*nonce),
        Aad::from(aad),
        plaintext,
        ciphertext,
        &[],
        &mut tag,
    )
    .expect("AES-GCM sealing within its length limits");
    tag
}

pub(super) fn open(
    key: &LessSafeKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8; TAG_LEN],
    plaintext: &mut [u8],
) -> Result<(), AuthError> {
    key.open_separate_gather(
        Nonce::assume_unique_for_key(*nonce),
        Aad::from(aad),
        ciphertext,
        tag,
        plaintext,
    )
    .map_err(|_| AuthError)
}

/// An output length for `aws-lc-rs`'s typed HKDF expand.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

pub(super) fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let info = [info];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .expect("HKDF-SHA256 output of at most 255 blocks");
}

pub(super) fn seal_in_place(
    key: &LessSafeKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> [u8; TAG_LEN] {
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
        .expect("AES-GCM sealing within its length limits");
    tag.as_ref().try_into().expect("a 16-byte tag")
}

pub(super) fn open_in_place(
    key: &LessSafeKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), AuthError> {
    key.open_in_place_separate_tag(
        Nonce::assume_unique_for_key(*nonce),
        Aad::from(aad),
        tag,
        buf,
    )
    .map(drop)
    .map_err(|_| AuthError)
}
