//! The only module that touches cryptographic primitives.
//!
//! Everything above it asks for three things: AES-256-GCM sealing and opening with an explicit
//! nonce and AAD ([`AeadKey`]), HKDF-SHA256 ([`Backend::hkdf_sha256`]) and random bytes
//! ([`fill_random`]). Two backends implement them: AWS-LC (`aws-lc` feature, the default) and the
//! pure-Rust RustCrypto stack (`rustcrypto` feature). Both produce identical bytes, so a file
//! written with one opens with the other. Nonces are never chosen here: callers compute them.
//!
//! Secrets live in [`SecretKey`]: zeroized on drop, redacted in `Debug`.

mod asym;
#[cfg(feature = "aws-lc")]
mod aws_lc;
mod rsa;
#[cfg(feature = "rustcrypto")]
mod rust_crypto;

pub use self::asym::{curve_name, kind_name, spki_kind, AsymKind, Curve, Hash, Hasher, SigScheme};
pub use self::rsa::{OaepHash, RsaPrivateKey};

#[cfg(not(any(feature = "aws-lc", feature = "rustcrypto")))]
compile_error!("cofre needs a crypto backend: enable feature `aws-lc` (default) or `rustcrypto`");

use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// AES-256 key length in bytes.
pub const KEY_LEN: usize = 32;
/// AES-GCM nonce length in bytes.
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag length in bytes.
pub const TAG_LEN: usize = 16;

/// A 256-bit secret: a data key, a master key version, a derived key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// Wraps raw bytes. The caller should zeroize its own copy.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SecretKey(bytes)
    }

    /// A fresh random key from the operating system's generator.
    pub fn random() -> Self {
        let mut k = [0u8; KEY_LEN];
        fill_random(&mut k);
        SecretKey(k)
    }

    /// The key bytes, for sealing it or handing it to a primitive.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Fills `buf` from the operating system's random number generator.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// `N` random bytes.
pub fn random_array<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    fill_random(&mut b);
    b
}

/// An AEAD tag or the key did not authenticate the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("authentication failed")]
pub struct AuthError;

/// Which implementation of the primitives to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// AWS-LC through `aws-lc-rs`.
    #[cfg(feature = "aws-lc")]
    AwsLc,
    /// RustCrypto's `aes-gcm`, `hkdf` and `sha2`.
    #[cfg(feature = "rustcrypto")]
    RustCrypto,
}

impl Default for Backend {
    /// AWS-LC when it is built in, else RustCrypto.
    fn default() -> Self {
        #[cfg(feature = "aws-lc")]
        return Backend::AwsLc;
        #[cfg(not(feature = "aws-lc"))]
        return Backend::RustCrypto;
    }
}

impl Backend {
    /// Every backend built into this binary.
    pub const ALL: &'static [Backend] = &[
        #[cfg(feature = "aws-lc")]
        Backend::AwsLc,
        #[cfg(feature = "rustcrypto")]
        Backend::RustCrypto,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => "aws-lc",
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => "rustcrypto",
        }
    }

    /// Prepares an AES-256-GCM key (expands the key schedule once).
    pub fn aead(self, key: &SecretKey) -> AeadKey {
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => AeadKey::AwsLc(aws_lc::aead_key(key)),
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => AeadKey::RustCrypto(rust_crypto::aead_key(key)),
        }
    }

    /// HKDF-SHA256 (RFC 5869): extract with `salt`, expand with `info` into `out`.
    ///
    /// Panics if `out` is longer than 255 × 32 bytes, which no caller asks for.
    pub fn hkdf_sha256(self, salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) {
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => aws_lc::hkdf_sha256(salt, ikm, info, out),
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => rust_crypto::hkdf_sha256(salt, ikm, info, out),
        }
    }

    /// HKDF-SHA256 into a new 256-bit key.
    pub fn derive_key(self, salt: &[u8], ikm: &SecretKey, info: &[u8]) -> SecretKey {
        let mut out = [0u8; KEY_LEN];
        self.hkdf_sha256(salt, ikm.expose(), info, &mut out);
        let key = SecretKey::from_bytes(out);
        out.zeroize();
        key
    }
}

/// An AES-256-GCM key ready to seal and open. Nonces and AAD are always the caller's.
pub enum AeadKey {
    #[cfg(feature = "aws-lc")]
    #[doc(hidden)]
    AwsLc(aws_lc_rs::aead::LessSafeKey),
    #[cfg(feature = "rustcrypto")]
    #[doc(hidden)]
    RustCrypto(Box<aes_gcm::Aes256Gcm>),
}

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AeadKey(<redacted>)")
    }
}

impl AeadKey {
    /// Seals `plaintext` into `ciphertext` (same length) and returns the tag.
    pub fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
        ciphertext: &mut [u8],
    ) -> [u8; TAG_LEN] {
        assert_eq!(plaintext.len(), ciphertext.len(), "seal: length mismatch");
        match self {
            #[cfg(feature = "aws-lc")]
            AeadKey::AwsLc(k) => aws_lc::seal(k, nonce, aad, plaintext, ciphertext),
            #[cfg(feature = "rustcrypto")]
            AeadKey::RustCrypto(k) => rust_crypto::seal(k, nonce, aad, plaintext, ciphertext),
        }
    }

    /// Opens `ciphertext` with `tag` into `plaintext` (same length). On failure the contents of
    /// `plaintext` are unspecified and must not be used.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; TAG_LEN],
        plaintext: &mut [u8],
    ) -> Result<(), AuthError> {
        assert_eq!(plaintext.len(), ciphertext.len(), "open: length mismatch");
        let r = match self {
            #[cfg(feature = "aws-lc")]
            AeadKey::AwsLc(k) => aws_lc::open(k, nonce, aad, ciphertext, tag, plaintext),
            #[cfg(feature = "rustcrypto")]
            AeadKey::RustCrypto(k) => rust_crypto::open(k, nonce, aad, ciphertext, tag, plaintext),
        };
        if r.is_err() {
            plaintext.zeroize();
        }
        r
    }

    /// Seals `buf` in place and returns the tag.
    pub fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        match self {
            #[cfg(feature = "aws-lc")]
            AeadKey::AwsLc(k) => aws_lc::seal_in_place(k, nonce, aad, buf),
            #[cfg(feature = "rustcrypto")]
            AeadKey::RustCrypto(k) => rust_crypto::seal_in_place(k, nonce, aad, buf),
        }
    }

    /// Opens `buf` in place with `tag`. On failure `buf` is zeroed.
    pub fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AuthError> {
        let r = match self {
            #[cfg(feature = "aws-lc")]
            AeadKey::AwsLc(k) => aws_lc::open_in_place(k, nonce, aad, buf, tag),
            #[cfg(feature = "rustcrypto")]
            AeadKey::RustCrypto(k) => rust_crypto::open_in_place(k, nonce, aad, buf, tag),
        };
        if r.is_err() {
            buf.zeroize();
        }
        r
    }

    /// Seals a short secret: returns `ciphertext || tag`.
    pub fn seal_to_vec(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; plaintext.len() + TAG_LEN];
        let (ct, tag) = out.split_at_mut(plaintext.len());
        tag.copy_from_slice(&self.seal(nonce, aad, plaintext, ct));
        out
    }

    /// Opens `ciphertext || tag` made by [`AeadKey::seal_to_vec`] into `plaintext`.
    pub fn open_from_slice(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        sealed: &[u8],
        plaintext: &mut [u8],
    ) -> Result<(), AuthError> {
        if sealed.len() != plaintext.len() + TAG_LEN {
            return Err(AuthError);
        }
        let (ct, tag) = sealed.split_at(plaintext.len());
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| AuthError)?;
        self.open(nonce, aad, ct, tag, plaintext)
    }
}

#[cfg(test)]
mod tests;
