//! What KMS's asymmetric and HMAC keys do: RSA (OAEP encryption, PSS and PKCS#1 v1.5
//! signatures), ECDSA on P-256, P-384, P-521 and secp256k1, ECDH on the NIST curves, HMAC-SHA2,
//! and the SHA-2 digests they sign.
//!
//! Private keys travel between calls as PKCS#8 DER in [`Zeroizing`] buffers (what the keyring
//! seals), public keys as DER SubjectPublicKeyInfo (what `openssl pkey -pubin` reads). Both
//! backends read and write the same encodings, so a key made by one works in the other.

use super::{AuthError, Backend, OaepHash};
use crate::error::{Error, Result};
use zeroize::Zeroizing;

/// A SHA-2 hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

// A digest length is never zero: no `is_empty` to go with `len`.
#[allow(clippy::len_without_is_empty)]
impl Hash {
    /// Digest length in bytes.
    pub fn len(self) -> usize {
        match self {
            Hash::Sha224 => 28,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }
}

/// An elliptic curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
    Secp256k1,
}

/// The type of an asymmetric key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsymKind {
    /// RSA with a modulus of this many bits.
    Rsa(usize),
    Ec(Curve),
}

/// A signature scheme and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigScheme {
    /// RSASSA-PSS, MGF1 with the same hash, salt as long as the hash.
    RsaPss(Hash),
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1(Hash),
    /// ECDSA, DER-encoded (r, s).
    Ecdsa(Hash),
}

impl SigScheme {
    /// Whether a key of `kind` signs with this scheme, as KMS pairs them: RSA with PSS or
    /// PKCS#1 over SHA-256/384/512; each curve with ECDSA over its own hash.
    pub fn fits(self, kind: AsymKind) -> bool {
        match (kind, self) {
            (AsymKind::Rsa(_), SigScheme::RsaPss(h) | SigScheme::RsaPkcs1(h)) => h != Hash::Sha224,
            (AsymKind::Ec(Curve::P256 | Curve::Secp256k1), SigScheme::Ecdsa(h)) => {
                h == Hash::Sha256
            }
            (AsymKind::Ec(Curve::P384), SigScheme::Ecdsa(h)) => h == Hash::Sha384,
            (AsymKind::Ec(Curve::P521), SigScheme::Ecdsa(h)) => h == Hash::Sha512,
            _ => false,
        }
    }

    /// The hash the message is digested with.
    pub fn hash(self) -> Hash {
        match self {
            SigScheme::RsaPss(h) | SigScheme::RsaPkcs1(h) | SigScheme::Ecdsa(h) => h,
        }
    }
}

fn damaged() -> Error {
    Error::Damaged("a private key in the keyring (it does not parse)".into())
}

fn bad_public(what: &str) -> Error {
    Error::usage(format!(
        "not a valid {what} public key; give a DER or PEM SubjectPublicKeyInfo, as `cofre key public-key` writes"
    ))
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";

/// What kind of key a DER SubjectPublicKeyInfo holds (RSA of 2048–4096 bits, or a curve cofre
/// knows).
pub fn spki_kind(backend: Backend, spki: &[u8]) -> Result<AsymKind> {
    use spki::der::Decode;
    let info =
        spki::SubjectPublicKeyInfoRef::from_der(spki).map_err(|_| bad_public("RSA or EC"))?;
    match info.algorithm.oid.to_string().as_str() {
        OID_RSA => {
            let bits = backend.rsa_public_bits(spki)?;
            if ![2048, 3072, 4096].contains(&bits) {
                return Err(Error::usage(format!(
                    "RSA public keys of {bits} bits are not supported; KMS keys are 2048, 3072 or 4096 bits"
                )));
            }
            Ok(AsymKind::Rsa(bits))
        }
        OID_EC => {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|_| bad_public("EC"))?;
            match curve.to_string().as_str() {
                "1.2.840.10045.3.1.7" => Ok(AsymKind::Ec(Curve::P256)),
                "1.3.132.0.34" => Ok(AsymKind::Ec(Curve::P384)),
                "1.3.132.0.35" => Ok(AsymKind::Ec(Curve::P521)),
                "1.3.132.0.10" => Ok(AsymKind::Ec(Curve::Secp256k1)),
                other => Err(Error::usage(format!(
                    "EC public keys on curve {other} are not supported; use P-256, P-384, P-521 or secp256k1"
                ))),
            }
        }
        other => Err(Error::usage(format!(
            "public keys of algorithm {other} are not supported; use an RSA or EC key"
        ))),
    }
}

/// A running SHA-2 digest.
pub enum Hasher {
    #[cfg(feature = "aws-lc")]
    #[doc(hidden)]
    AwsLc(aws_lc_rs::digest::Context),
    #[cfg(feature = "rustcrypto")]
    #[doc(hidden)]
    RustCrypto(RcHasher),
}

#[cfg(feature = "rustcrypto")]
#[doc(hidden)]
pub enum RcHasher {
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            #[cfg(feature = "aws-lc")]
            Hasher::AwsLc(c) => c.update(data),
            #[cfg(feature = "rustcrypto")]
            Hasher::RustCrypto(h) => {
                use sha2::Digest;
                match h {
                    RcHasher::Sha224(h) => h.update(data),
                    RcHasher::Sha256(h) => h.update(data),
                    RcHasher::Sha384(h) => h.update(data),
                    RcHasher::Sha512(h) => h.update(data),
                }
            }
        }
    }

    /// The digest.
    pub fn finish(self) -> Vec<u8> {
        match self {
            #[cfg(feature = "aws-lc")]
            Hasher::AwsLc(c) => c.finish().as_ref().to_vec(),
            #[cfg(feature = "rustcrypto")]
            Hasher::RustCrypto(h) => {
                use sha2::Digest;
                match h {
                    RcHasher::Sha224(h) => h.finalize().to_vec(),
                    RcHasher::Sha256(h) => h.finalize().to_vec(),
                    RcHasher::Sha384(h) => h.finalize().to_vec(),
                    RcHasher::Sha512(h) => h.finalize().to_vec(),
                }
            }
        }
    }
}

#[cfg(feature = "aws-lc")]
mod lc {
    use super::{Curve, Hash, SigScheme};
    use aws_lc_rs::{agreement, digest, signature as sig};

    pub fn digest_alg(h: Hash) -> &'static digest::Algorithm {
        match h {
            Hash::Sha224 => &digest::SHA224,
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        }
    }

    pub fn ecdsa_signing(c: Curve) -> &'static sig::EcdsaSigningAlgorithm {
        match c {
            Curve::P256 => &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
            Curve::P384 => &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
            Curve::P521 => &sig::ECDSA_P521_SHA512_ASN1_SIGNING,
            Curve::Secp256k1 => &sig::ECDSA_P256K1_SHA256_ASN1_SIGNING,
        }
    }

    pub fn ecdh(c: Curve) -> Option<&'static agreement::Algorithm> {
        match c {
            Curve::P256 => Some(&agreement::ECDH_P256),
            Curve::P384 => Some(&agreement::ECDH_P384),
            Curve::P521 => Some(&agreement::ECDH_P521),
            Curve::Secp256k1 => None,
        }
    }

    pub fn rsa_signing(s: SigScheme) -> &'static dyn sig::RsaEncoding {
        match s {
            SigScheme::RsaPss(Hash::Sha384) => &sig::RSA_PSS_SHA384,
            SigScheme::RsaPss(Hash::Sha512) => &sig::RSA_PSS_SHA512,
            SigScheme::RsaPss(_) => &sig::RSA_PSS_SHA256,
            SigScheme::RsaPkcs1(Hash::Sha384) => &sig::RSA_PKCS1_SHA384,
            SigScheme::RsaPkcs1(Hash::Sha512) => &sig::RSA_PKCS1_SHA512,
            _ => &sig::RSA_PKCS1_SHA256,
        }
    }

    pub fn verification(s: SigScheme, c: Option<Curve>) -> &'static dyn sig::VerificationAlgorithm {
        match (s, c) {
            (SigScheme::RsaPss(Hash::Sha384), _) => &sig::RSA_PSS_2048_8192_SHA384,
            (SigScheme::RsaPss(Hash::Sha512), _) => &sig::RSA_PSS_2048_8192_SHA512,
            (SigScheme::RsaPss(_), _) => &sig::RSA_PSS_2048_8192_SHA256,
            (SigScheme::RsaPkcs1(Hash::Sha384), _) => &sig::RSA_PKCS1_2048_8192_SHA384,
            (SigScheme::RsaPkcs1(Hash::Sha512), _) => &sig::RSA_PKCS1_2048_8192_SHA512,
            (SigScheme::RsaPkcs1(_), _) => &sig::RSA_PKCS1_2048_8192_SHA256,
            (SigScheme::Ecdsa(_), Some(Curve::P384)) => &sig::ECDSA_P384_SHA384_ASN1,
            (SigScheme::Ecdsa(_), Some(Curve::P521)) => &sig::ECDSA_P521_SHA512_ASN1,
            (SigScheme::Ecdsa(_), Some(Curve::Secp256k1)) => &sig::ECDSA_P256K1_SHA256_ASN1,
            (SigScheme::Ecdsa(_), _) => &sig::ECDSA_P256_SHA256_ASN1,
        }
    }
}

/// One RustCrypto curve crate's operations, written once for all four.
#[cfg(feature = "rustcrypto")]
macro_rules! rc_curve {
    ($krate:ident, $signing:expr, $verifying:expr) => {
        pub mod $krate {
            use crate::crypto::AuthError;
            use zeroize::Zeroizing;
            use $krate::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
            use $krate::ecdsa::{Signature, SigningKey, VerifyingKey};
            use $krate::pkcs8::{
                DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey,
            };
            use $krate::{PublicKey, SecretKey};

            pub fn generate() -> Option<Zeroizing<Vec<u8>>> {
                let k = SecretKey::random(&mut rand_core::OsRng);
                Some(Zeroizing::new(k.to_pkcs8_der().ok()?.as_bytes().to_vec()))
            }

            #[cfg(test)]
            pub fn from_scalar(scalar: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
                let k = SecretKey::from_slice(scalar).ok()?;
                Some(Zeroizing::new(k.to_pkcs8_der().ok()?.as_bytes().to_vec()))
            }

            pub fn public(pkcs8: &[u8]) -> Option<Vec<u8>> {
                let k = SecretKey::from_pkcs8_der(pkcs8).ok()?;
                Some(k.public_key().to_public_key_der().ok()?.as_bytes().to_vec())
            }

            pub fn sign(pkcs8: &[u8], digest: &[u8]) -> Option<Vec<u8>> {
                let k = SecretKey::from_pkcs8_der(pkcs8).ok()?;
                let signer: SigningKey = $signing(&k)?;
                let s: Signature = signer.sign_prehash(digest).ok()?;
                Some(s.to_der().as_bytes().to_vec())
            }

            pub fn verify(spki: &[u8], digest: &[u8], sig: &[u8]) -> Result<(), AuthError> {
                let pk = PublicKey::from_public_key_der(spki).map_err(|_| AuthError)?;
                let vk: VerifyingKey = $verifying(&pk).ok_or(AuthError)?;
                let s = Signature::from_der(sig).map_err(|_| AuthError)?;
                // k256 refuses high s (a Bitcoin rule); ECDSA accepts both.
                let s = s.normalize_s().unwrap_or(s);
                vk.verify_prehash(digest, &s).map_err(|_| AuthError)
            }
        }
    };
}

#[cfg(feature = "rustcrypto")]
mod rc {
    rc_curve!(
        p256,
        |k: &SecretKey| Some(SigningKey::from(k)),
        |k: &PublicKey| Some(VerifyingKey::from(k))
    );
    rc_curve!(
        p384,
        |k: &SecretKey| Some(SigningKey::from(k)),
        |k: &PublicKey| Some(VerifyingKey::from(k))
    );
    rc_curve!(
        k256,
        |k: &SecretKey| Some(SigningKey::from(k)),
        |k: &PublicKey| Some(VerifyingKey::from(k))
    );
    rc_curve!(
        p521,
        |k: &SecretKey| {
            let mut b = k.to_bytes();
            let key = SigningKey::from_bytes(&b).ok();
            zeroize::Zeroize::zeroize(b.as_mut_slice());
            key
        },
        |k: &PublicKey| VerifyingKey::from_affine(*k.as_affine()).ok()
    );

    use super::Hash;

    /// ECDH on a NIST curve: the x-coordinate of the shared point.
    pub fn ecdh(curve: super::Curve, pkcs8: &[u8], peer: &[u8]) -> Option<Vec<u8>> {
        macro_rules! dh {
            ($k:ident) => {{
                use ::$k::pkcs8::{DecodePrivateKey, DecodePublicKey};
                let sk = ::$k::SecretKey::from_pkcs8_der(pkcs8).ok()?;
                let pk = ::$k::PublicKey::from_public_key_der(peer).ok()?;
                let s = ::$k::ecdh::diffie_hellman(sk.to_nonzero_scalar(), pk.as_affine());
                Some(s.raw_secret_bytes().to_vec())
            }};
        }
        match curve {
            super::Curve::P256 => dh!(p256),
            super::Curve::P384 => dh!(p384),
            super::Curve::P521 => dh!(p521),
            super::Curve::Secp256k1 => None,
        }
    }

    pub fn hmac(hash: Hash, key: &[u8], msg: &[u8]) -> Vec<u8> {
        use hmac::{Mac, SimpleHmac};
        macro_rules! mac {
            ($d:ty) => {{
                let mut m =
                    <SimpleHmac<$d> as Mac>::new_from_slice(key).expect("HMAC takes any key");
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }};
        }
        match hash {
            Hash::Sha224 => mac!(sha2::Sha224),
            Hash::Sha256 => mac!(sha2::Sha256),
            Hash::Sha384 => mac!(sha2::Sha384),
            Hash::Sha512 => mac!(sha2::Sha512),
        }
    }
}

impl Backend {
    /// A running digest with `hash`.
    pub fn hasher(self, hash: Hash) -> Hasher {
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => Hasher::AwsLc(aws_lc_rs::digest::Context::new(lc::digest_alg(hash))),
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => {
                use sha2::Digest;
                Hasher::RustCrypto(match hash {
                    Hash::Sha224 => RcHasher::Sha224(sha2::Sha224::new()),
                    Hash::Sha256 => RcHasher::Sha256(sha2::Sha256::new()),
                    Hash::Sha384 => RcHasher::Sha384(sha2::Sha384::new()),
                    Hash::Sha512 => RcHasher::Sha512(sha2::Sha512::new()),
                })
            }
        }
    }

    /// The digest of `data`.
    pub fn digest(self, hash: Hash, data: &[u8]) -> Vec<u8> {
        let mut h = self.hasher(hash);
        h.update(data);
        h.finish()
    }

    /// A new private key of `kind`, as PKCS#8 DER.
    pub fn generate_private_key(self, kind: AsymKind) -> Result<Zeroizing<Vec<u8>>> {
        let failed = || Error::Crypto("key generation failed in the crypto library".into());
        if let AsymKind::Rsa(bits) = kind {
            if ![2048, 3072, 4096].contains(&bits) {
                return Err(Error::usage(format!(
                    "RSA keys are 2048, 3072 or 4096 bits, not {bits}"
                )));
            }
        }
        match (self, kind) {
            #[cfg(feature = "aws-lc")]
            (Backend::AwsLc, AsymKind::Rsa(bits)) => {
                use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
                use aws_lc_rs::rsa::{KeyPair, KeySize};
                let size = match bits {
                    2048 => KeySize::Rsa2048,
                    3072 => KeySize::Rsa3072,
                    _ => KeySize::Rsa4096,
                };
                let k = KeyPair::generate(size).map_err(|_| failed())?;
                let der: Pkcs8V1Der = k.as_der().map_err(|_| failed())?;
                Ok(Zeroizing::new(der.as_ref().to_vec()))
            }
            #[cfg(feature = "aws-lc")]
            (Backend::AwsLc, AsymKind::Ec(c)) => {
                let k = aws_lc_rs::signature::EcdsaKeyPair::generate(lc::ecdsa_signing(c))
                    .map_err(|_| failed())?;
                let der = k.to_pkcs8v1().map_err(|_| failed())?;
                Ok(Zeroizing::new(der.as_ref().to_vec()))
            }
            #[cfg(feature = "rustcrypto")]
            (Backend::RustCrypto, AsymKind::Rsa(bits)) => {
                use rsa::pkcs8::EncodePrivateKey;
                let k =
                    rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits).map_err(|_| failed())?;
                let der = k.to_pkcs8_der().map_err(|_| failed())?;
                Ok(Zeroizing::new(der.as_bytes().to_vec()))
            }
            #[cfg(feature = "rustcrypto")]
            (Backend::RustCrypto, AsymKind::Ec(c)) => match c {
                Curve::P256 => rc::p256::generate(),
                Curve::P384 => rc::p384::generate(),
                Curve::P521 => rc::p521::generate(),
                Curve::Secp256k1 => rc::k256::generate(),
            }
            .ok_or_else(failed),
        }
    }

    /// A PKCS#8 EC private key from its scalar (big-endian; shorter scalars are zero-padded),
    /// for test vectors that give private keys as scalars.
    #[cfg(test)]
    pub(crate) fn ec_private_key_from_scalar(
        self,
        curve: Curve,
        scalar: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let len = match curve {
            Curve::P256 | Curve::Secp256k1 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        };
        let trimmed: &[u8] = {
            let first = scalar.iter().position(|&b| b != 0).unwrap_or(scalar.len());
            &scalar[first..]
        };
        if trimmed.len() > len {
            return Err(Error::usage("EC private scalar too long for its curve"));
        }
        let mut s = Zeroizing::new(vec![0u8; len]);
        s[len - trimmed.len()..].copy_from_slice(trimmed);
        let bad = || Error::usage("invalid EC private scalar");
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => {
                use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
                let alg = lc::ecdh(curve).ok_or_else(bad)?;
                let k = aws_lc_rs::agreement::PrivateKey::from_private_key(alg, &s)
                    .map_err(|_| bad())?;
                let der: Pkcs8V1Der = k.as_der().map_err(|_| bad())?;
                Ok(Zeroizing::new(der.as_ref().to_vec()))
            }
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => match curve {
                Curve::P256 => rc::p256::from_scalar(&s),
                Curve::P384 => rc::p384::from_scalar(&s),
                Curve::P521 => rc::p521::from_scalar(&s),
                Curve::Secp256k1 => rc::k256::from_scalar(&s),
            }
            .ok_or_else(bad),
        }
    }

    /// The public half of a PKCS#8 private key, as DER SubjectPublicKeyInfo.
    pub fn public_key_of(self, kind: AsymKind, pkcs8: &[u8]) -> Result<Vec<u8>> {
        match (self, kind) {
            #[cfg(feature = "aws-lc")]
            (Backend::AwsLc, AsymKind::Rsa(_)) => {
                use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
                use aws_lc_rs::signature::KeyPair as _;
                let k = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8).map_err(|_| damaged())?;
                let der: PublicKeyX509Der = k.public_key().as_der().map_err(|_| damaged())?;
                Ok(der.as_ref().to_vec())
            }
            #[cfg(feature = "aws-lc")]
            (Backend::AwsLc, AsymKind::Ec(c)) => {
                use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
                use aws_lc_rs::signature::KeyPair as _;
                let k = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(lc::ecdsa_signing(c), pkcs8)
                    .map_err(|_| damaged())?;
                let der: PublicKeyX509Der = k.public_key().as_der().map_err(|_| damaged())?;
                Ok(der.as_ref().to_vec())
            }
            #[cfg(feature = "rustcrypto")]
            (Backend::RustCrypto, AsymKind::Rsa(_)) => {
                use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
                let k = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8).map_err(|_| damaged())?;
                let der = k
                    .to_public_key()
                    .to_public_key_der()
                    .map_err(|_| damaged())?;
                Ok(der.as_bytes().to_vec())
            }
            #[cfg(feature = "rustcrypto")]
            (Backend::RustCrypto, AsymKind::Ec(c)) => match c {
                Curve::P256 => rc::p256::public(pkcs8),
                Curve::P384 => rc::p384::public(pkcs8),
                Curve::P521 => rc::p521::public(pkcs8),
                Curve::Secp256k1 => rc::k256::public(pkcs8),
            }
            .ok_or_else(damaged),
        }
    }

    /// Signs a digest (already computed with `scheme`'s hash) with a PKCS#8 private key.
    /// Signatures are PKCS#1 for RSA and DER for ECDSA, as KMS returns them.
    pub fn sign_digest(
        self,
        kind: AsymKind,
        scheme: SigScheme,
        pkcs8: &[u8],
        digest: &[u8],
    ) -> Result<Vec<u8>> {
        if !scheme.fits(kind) {
            return Err(Error::usage(format!(
                "this algorithm does not fit a {} key; `cofre key describe` lists the key's signing algorithms",
                kind_name(kind)
            )));
        }
        if digest.len() != scheme.hash().len() {
            return Err(Error::usage(format!(
                "a digest of {} bytes does not fit this algorithm, whose digest is {} bytes",
                digest.len(),
                scheme.hash().len()
            )));
        }
        let failed = || Error::Crypto("signing failed in the crypto library".into());
        match (self, kind) {
            #[cfg(feature = "aws-lc")]
            (Backend::AwsLc, AsymKind::Rsa(_)) => {
                let k = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8).map_err(|_| damaged())?;
                let d = aws_lc_rs::digest::Digest::import_less_safe(
                    digest,
                    lc::digest_alg(scheme.hash()),
                )
                .map_err(|_| failed())?;
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign_digest(lc::rsa_signing(scheme), &d, &mut sig)
                    .map_err(|_| failed())?;
                Ok(sig)
            }
            #[cfg(feature = "aws-lc")]
            (Backend::AwsLc, AsymKind::Ec(c)) => {
                let k = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(lc::ecdsa_signing(c), pkcs8)
                    .map_err(|_| damaged())?;
                let d = aws_lc_rs::digest::Digest::import_less_safe(
                    digest,
                    lc::digest_alg(scheme.hash()),
                )
                .map_err(|_| failed())?;
                Ok(k.sign_digest(&d).map_err(|_| failed())?.as_ref().to_vec())
            }
            #[cfg(feature = "rustcrypto")]
            (Backend::RustCrypto, AsymKind::Rsa(_)) => {
                use rsa::pkcs8::DecodePrivateKey;
                use rsa::{Pkcs1v15Sign, Pss};
                let k = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8).map_err(|_| damaged())?;
                let mut rng = rand_core::OsRng;
                let r = match scheme {
                    SigScheme::RsaPss(Hash::Sha384) => {
                        k.sign_with_rng(&mut rng, Pss::new::<sha2::Sha384>(), digest)
                    }
                    SigScheme::RsaPss(Hash::Sha512) => {
                        k.sign_with_rng(&mut rng, Pss::new::<sha2::Sha512>(), digest)
                    }
                    SigScheme::RsaPss(_) => {
                        k.sign_with_rng(&mut rng, Pss::new::<sha2::Sha256>(), digest)
                    }
                    SigScheme::RsaPkcs1(Hash::Sha384) => {
                        k.sign(Pkcs1v15Sign::new::<sha2::Sha384>(), digest)
                    }
                    SigScheme::RsaPkcs1(Hash::Sha512) => {
                        k.sign(Pkcs1v15Sign::new::<sha2::Sha512>(), digest)
                    }
                    _ => k.sign(Pkcs1v15Sign::new::<sha2::Sha256>(), digest),
                };
                r.map_err(|_| failed())
            }
            #[cfg(feature = "rustcrypto")]
            (Backend::RustCrypto, AsymKind::Ec(c)) => match c {
                Curve::P256 => rc::p256::sign(pkcs8, digest),
                Curve::P384 => rc::p384::sign(pkcs8, digest),
                Curve::P521 => rc::p521::sign(pkcs8, digest),
                Curve::Secp256k1 => rc::k256::sign(pkcs8, digest),
            }
            .ok_or_else(failed),
        }
    }

    /// Checks a signature of a digest against a DER SubjectPublicKeyInfo.
    pub fn verify_digest(
        self,
        kind: AsymKind,
        scheme: SigScheme,
        spki: &[u8],
        digest: &[u8],
        signature: &[u8],
    ) -> Result<(), AuthError> {
        // The key must be what the caller says it is, and take the scheme.
        if !scheme.fits(kind)
            || digest.len() != scheme.hash().len()
            || spki_kind(self, spki).ok() != Some(kind)
        {
            return Err(AuthError);
        }
        match (self, kind) {
            #[cfg(feature = "aws-lc")]
            (Backend::AwsLc, _) => {
                let curve = match kind {
                    AsymKind::Ec(c) => Some(c),
                    AsymKind::Rsa(_) => None,
                };
                let d = aws_lc_rs::digest::Digest::import_less_safe(
                    digest,
                    lc::digest_alg(scheme.hash()),
                )
                .map_err(|_| AuthError)?;
                aws_lc_rs::signature::UnparsedPublicKey::new(lc::verification(scheme, curve), spki)
                    .verify_digest(&d, signature)
                    .map_err(|_| AuthError)
            }
            #[cfg(feature = "rustcrypto")]
            (Backend::RustCrypto, AsymKind::Rsa(_)) => {
                use rsa::pkcs8::DecodePublicKey;
                use rsa::{Pkcs1v15Sign, Pss};
                let k = rsa::RsaPublicKey::from_public_key_der(spki).map_err(|_| AuthError)?;
                let r = match scheme {
                    SigScheme::RsaPss(Hash::Sha384) => {
                        k.verify(Pss::new::<sha2::Sha384>(), digest, signature)
                    }
                    SigScheme::RsaPss(Hash::Sha512) => {
                        k.verify(Pss::new::<sha2::Sha512>(), digest, signature)
                    }
                    SigScheme::RsaPss(_) => k.verify(Pss::new::<sha2::Sha256>(), digest, signature),
                    SigScheme::RsaPkcs1(Hash::Sha384) => {
                        k.verify(Pkcs1v15Sign::new::<sha2::Sha384>(), digest, signature)
                    }
                    SigScheme::RsaPkcs1(Hash::Sha512) => {
                        k.verify(Pkcs1v15Sign::new::<sha2::Sha512>(), digest, signature)
                    }
                    _ => k.verify(Pkcs1v15Sign::new::<sha2::Sha256>(), digest, signature),
                };
                r.map_err(|_| AuthError)
            }
            #[cfg(feature = "rustcrypto")]
            (Backend::RustCrypto, AsymKind::Ec(c)) => match c {
                Curve::P256 => rc::p256::verify(spki, digest, signature),
                Curve::P384 => rc::p384::verify(spki, digest, signature),
                Curve::P521 => rc::p521::verify(spki, digest, signature),
                Curve::Secp256k1 => rc::k256::verify(spki, digest, signature),
            },
        }
    }

    /// Bits of an RSA public key's modulus.
    pub fn rsa_public_bits(self, spki: &[u8]) -> Result<usize> {
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => aws_lc_rs::rsa::PublicEncryptingKey::from_der(spki)
                .map(|k| k.key_size_bits())
                .map_err(|_| bad_public("RSA")),
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => {
                use rsa::pkcs8::DecodePublicKey;
                use rsa::traits::PublicKeyParts;
                rsa::RsaPublicKey::from_public_key_der(spki)
                    .map(|k| k.n().bits())
                    .map_err(|_| bad_public("RSA"))
            }
        }
    }

    /// RSAES-OAEP encryption to a DER SubjectPublicKeyInfo (empty label, MGF1 with `hash`).
    pub fn rsa_oaep_encrypt(
        self,
        spki: &[u8],
        hash: OaepHash,
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        let failed = || {
            Error::usage(format!(
                "RSA-OAEP encryption of {} bytes failed: longer than this key and hash take?",
                plaintext.len()
            ))
        };
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => {
                use aws_lc_rs::rsa::{
                    OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1,
                    OAEP_SHA256_MGF1SHA256,
                };
                let k = PublicEncryptingKey::from_der(spki).map_err(|_| bad_public("RSA"))?;
                let k = OaepPublicEncryptingKey::new(k).map_err(|_| bad_public("RSA"))?;
                let alg = match hash {
                    OaepHash::Sha1 => &OAEP_SHA1_MGF1SHA1,
                    OaepHash::Sha256 => &OAEP_SHA256_MGF1SHA256,
                };
                let mut out = vec![0u8; k.ciphertext_size()];
                let n = k
                    .encrypt(alg, plaintext, &mut out, None)
                    .map_err(|_| failed())?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => {
                use rsa::pkcs8::DecodePublicKey;
                let k =
                    rsa::RsaPublicKey::from_public_key_der(spki).map_err(|_| bad_public("RSA"))?;
                let padding = match hash {
                    OaepHash::Sha1 => rsa::Oaep::new::<sha1::Sha1>(),
                    OaepHash::Sha256 => rsa::Oaep::new::<sha2::Sha256>(),
                };
                k.encrypt(&mut rand_core::OsRng, padding, plaintext)
                    .map_err(|_| failed())
            }
        }
    }

    /// ECDH between a PKCS#8 private key and a peer's DER SubjectPublicKeyInfo on the same NIST
    /// curve: the shared point's x-coordinate. Fails if the peer key is not a valid point of
    /// that curve.
    pub fn ecdh(self, curve: Curve, pkcs8: &[u8], peer_spki: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let bad_peer = || bad_public(curve_name(curve));
        if spki_kind(self, peer_spki).ok() != Some(AsymKind::Ec(curve)) {
            return Err(bad_peer());
        }
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => {
                use aws_lc_rs::agreement;
                let alg = lc::ecdh(curve).ok_or_else(bad_peer)?;
                let k = agreement::PrivateKey::from_private_key_der(alg, pkcs8)
                    .map_err(|_| damaged())?;
                agreement::agree(
                    &k,
                    agreement::UnparsedPublicKey::new(alg, peer_spki),
                    (),
                    |s| Ok(Zeroizing::new(s.to_vec())),
                )
                .map_err(|_| bad_peer())
            }
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => rc::ecdh(curve, pkcs8, peer_spki)
                .map(Zeroizing::new)
                .ok_or_else(bad_peer),
        }
    }

    /// HMAC of `message` under `key`.
    pub fn hmac(self, hash: Hash, key: &[u8], message: &[u8]) -> Vec<u8> {
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => {
                use aws_lc_rs::hmac;
                let alg = match hash {
                    Hash::Sha224 => hmac::HMAC_SHA224,
                    Hash::Sha256 => hmac::HMAC_SHA256,
                    Hash::Sha384 => hmac::HMAC_SHA384,
                    Hash::Sha512 => hmac::HMAC_SHA512,
                };
                hmac::sign(&hmac::Key::new(alg, key), message)
                    .as_ref()
                    .to_vec()
            }
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => rc::hmac(hash, key, message),
        }
    }

    /// Checks an HMAC in constant time.
    pub fn hmac_verify(
        self,
        hash: Hash,
        key: &[u8],
        message: &[u8],
        mac: &[u8],
    ) -> Result<(), AuthError> {
        let want = self.hmac(hash, key, message);
        // Compared as BLAKE3 hashes of equal-length inputs: constant time.
        if want.len() == mac.len() && blake3::hash(&want) == blake3::hash(mac) {
            Ok(())
        } else {
            Err(AuthError)
        }
    }
}

/// A key type as people say it: `RSA-2048`, `P-256`.
pub fn kind_name(kind: AsymKind) -> String {
    match kind {
        AsymKind::Rsa(bits) => format!("RSA-{bits}"),
        AsymKind::Ec(c) => curve_name(c).to_owned(),
    }
}

/// The curve's name as OpenSSL and the NIST documents write it.
pub fn curve_name(c: Curve) -> &'static str {
    match c {
        Curve::P256 => "P-256",
        Curve::P384 => "P-384",
        Curve::P521 => "P-521",
        Curve::Secp256k1 => "secp256k1",
    }
}
