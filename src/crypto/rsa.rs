//! RSA-OAEP and AES key wrap with padding (RFC 5649): what importing key material needs. The
//! wrapping key pair is made inside cofre; only its public half ever leaves, as a DER
//! SubjectPublicKeyInfo that `openssl pkeyutl` reads.

use super::{AuthError, Backend};
use crate::error::{Error, Result};
use zeroize::Zeroizing;

/// The OAEP hash (and MGF1 hash: KMS uses the same for both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OaepHash {
    Sha1,
    Sha256,
}

/// An RSA private key that unwraps what was encrypted to its public key.
pub enum RsaPrivateKey {
    #[cfg(feature = "aws-lc")]
    AwsLc(aws_lc_rs::rsa::PrivateDecryptingKey),
    #[cfg(feature = "rustcrypto")]
    RustCrypto(Box<rsa::RsaPrivateKey>),
}

impl std::fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaPrivateKey(..)")
    }
}

fn failed(what: &str) -> Error {
    Error::Damaged(format!("RSA {what} failed"))
}

impl Backend {
    /// A new RSA key pair of `bits` (2048, 3072 or 4096).
    pub fn rsa_generate(self, bits: usize) -> Result<RsaPrivateKey> {
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => {
                use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
                let size = match bits {
                    2048 => KeySize::Rsa2048,
                    3072 => KeySize::Rsa3072,
                    4096 => KeySize::Rsa4096,
                    _ => {
                        return Err(Error::usage(format!(
                            "RSA keys are 2048, 3072 or 4096 bits, not {bits}"
                        )))
                    }
                };
                PrivateDecryptingKey::generate(size)
                    .map(RsaPrivateKey::AwsLc)
                    .map_err(|_| failed("key generation"))
            }
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => {
                if ![2048, 3072, 4096].contains(&bits) {
                    return Err(Error::usage(format!(
                        "RSA keys are 2048, 3072 or 4096 bits, not {bits}"
                    )));
                }
                rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits)
                    .map(|k| RsaPrivateKey::RustCrypto(Box::new(k)))
                    .map_err(|_| failed("key generation"))
            }
        }
    }

    /// Loads a PKCS#8 DER private key.
    pub fn rsa_from_pkcs8(self, der: &[u8]) -> Result<RsaPrivateKey> {
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(der)
                .map(RsaPrivateKey::AwsLc)
                .map_err(|_| failed("key parsing")),
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => {
                use rsa::pkcs8::DecodePrivateKey;
                rsa::RsaPrivateKey::from_pkcs8_der(der)
                    .map(|k| RsaPrivateKey::RustCrypto(Box::new(k)))
                    .map_err(|_| failed("key parsing"))
            }
        }
    }

    /// Opens AES key wrap with padding (RFC 5649) under a 256-bit key-encryption key.
    pub fn aes_kwp_unwrap(
        self,
        kek: &[u8; 32],
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, AuthError> {
        // RFC 5649: at least two 64-bit blocks, whole blocks only (checked here: aes-kw 0.2
        // panics on shorter input).
        if wrapped.len() < 16 || !wrapped.len().is_multiple_of(8) {
            return Err(AuthError);
        }
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => {
                use aws_lc_rs::key_wrap::{AesKek, KeyWrapPadded, AES_256};
                let kek = AesKek::new(&AES_256, kek).map_err(|_| AuthError)?;
                let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
                let n = kek
                    .unwrap_with_padding(wrapped, &mut out)
                    .map_err(|_| AuthError)?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => aes_kw::KekAes256::from(*kek)
                .unwrap_with_padding_vec(wrapped)
                .map(Zeroizing::new)
                .map_err(|_| AuthError),
        }
    }
}

impl RsaPrivateKey {
    /// The public key as DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> Result<Vec<u8>> {
        match self {
            #[cfg(feature = "aws-lc")]
            RsaPrivateKey::AwsLc(k) => {
                use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
                AsDer::<PublicKeyX509Der>::as_der(&k.public_key())
                    .map(|d| d.as_ref().to_vec())
                    .map_err(|_| failed("public key encoding"))
            }
            #[cfg(feature = "rustcrypto")]
            RsaPrivateKey::RustCrypto(k) => {
                use rsa::pkcs8::EncodePublicKey;
                k.to_public_key()
                    .to_public_key_der()
                    .map(|d| d.as_bytes().to_vec())
                    .map_err(|_| failed("public key encoding"))
            }
        }
    }

    /// The private key as PKCS#8 DER (to be sealed at once; never written in the clear).
    pub fn pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        match self {
            #[cfg(feature = "aws-lc")]
            RsaPrivateKey::AwsLc(k) => {
                use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
                AsDer::<Pkcs8V1Der>::as_der(k)
                    .map(|d| Zeroizing::new(d.as_ref().to_vec()))
                    .map_err(|_| failed("private key encoding"))
            }
            #[cfg(feature = "rustcrypto")]
            RsaPrivateKey::RustCrypto(k) => {
                use rsa::pkcs8::EncodePrivateKey;
                k.to_pkcs8_der()
                    .map(|d| Zeroizing::new(d.as_bytes().to_vec()))
                    .map_err(|_| failed("private key encoding"))
            }
        }
    }

    /// Bytes of the modulus (the length of every ciphertext).
    pub fn modulus_len(&self) -> usize {
        match self {
            #[cfg(feature = "aws-lc")]
            RsaPrivateKey::AwsLc(k) => k.key_size_bytes(),
            #[cfg(feature = "rustcrypto")]
            RsaPrivateKey::RustCrypto(k) => rsa::traits::PublicKeyParts::size(k.as_ref()),
        }
    }

    /// RSAES-OAEP decryption with `hash` for both the label hash and MGF1.
    pub fn decrypt_oaep(
        &self,
        hash: OaepHash,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, AuthError> {
        match self {
            #[cfg(feature = "aws-lc")]
            RsaPrivateKey::AwsLc(k) => {
                use aws_lc_rs::rsa::{
                    OaepPrivateDecryptingKey, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
                };
                let alg = match hash {
                    OaepHash::Sha1 => &OAEP_SHA1_MGF1SHA1,
                    OaepHash::Sha256 => &OAEP_SHA256_MGF1SHA256,
                };
                let key = OaepPrivateDecryptingKey::new(k.clone()).map_err(|_| AuthError)?;
                let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
                let n = key
                    .decrypt(alg, ciphertext, &mut out, None)
                    .map_err(|_| AuthError)?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            #[cfg(feature = "rustcrypto")]
            RsaPrivateKey::RustCrypto(k) => {
                let padding = match hash {
                    OaepHash::Sha1 => rsa::Oaep::new::<sha1::Sha1>(),
                    OaepHash::Sha256 => rsa::Oaep::new::<sha2::Sha256>(),
                };
                k.decrypt(padding, ciphertext)
                    .map(Zeroizing::new)
                    .map_err(|_| AuthError)
            }
        }
    }
}
