//! Key specs, key usages and their algorithms: which combinations KMS allows, and what each one
//! means to the crypto layer.

use crate::crypto::{AsymKind, Curve, Hash, OaepHash, SigScheme};
use crate::error::{Error, KmsCode, Result};
use crate::keyring::{KeySpec, KeyUsage};

/// KMS `EncryptionAlgorithmSpec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EncryptionAlgorithm {
    #[value(name = "SYMMETRIC_DEFAULT")]
    SymmetricDefault,
    #[value(name = "RSAES_OAEP_SHA_1")]
    RsaesOaepSha1,
    #[value(name = "RSAES_OAEP_SHA_256")]
    RsaesOaepSha256,
}

/// KMS `SigningAlgorithmSpec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SigningAlgorithm {
    #[value(name = "RSASSA_PSS_SHA_256")]
    RsassaPssSha256,
    #[value(name = "RSASSA_PSS_SHA_384")]
    RsassaPssSha384,
    #[value(name = "RSASSA_PSS_SHA_512")]
    RsassaPssSha512,
    #[value(name = "RSASSA_PKCS1_V1_5_SHA_256")]
    RsassaPkcs1V15Sha256,
    #[value(name = "RSASSA_PKCS1_V1_5_SHA_384")]
    RsassaPkcs1V15Sha384,
    #[value(name = "RSASSA_PKCS1_V1_5_SHA_512")]
    RsassaPkcs1V15Sha512,
    #[value(name = "ECDSA_SHA_256")]
    EcdsaSha256,
    #[value(name = "ECDSA_SHA_384")]
    EcdsaSha384,
    #[value(name = "ECDSA_SHA_512")]
    EcdsaSha512,
}

/// KMS `MacAlgorithmSpec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MacAlgorithm {
    #[value(name = "HMAC_SHA_224")]
    HmacSha224,
    #[value(name = "HMAC_SHA_256")]
    HmacSha256,
    #[value(name = "HMAC_SHA_384")]
    HmacSha384,
    #[value(name = "HMAC_SHA_512")]
    HmacSha512,
}

/// KMS `MessageType`: the message itself, or its digest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum MessageType {
    #[default]
    #[value(name = "RAW")]
    Raw,
    #[value(name = "DIGEST")]
    Digest,
}

/// KMS `DataKeySpec`: the length of a GenerateDataKey data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataKeySpec {
    #[value(name = "AES_256")]
    Aes256,
    #[value(name = "AES_128")]
    Aes128,
}

impl DataKeySpec {
    /// The data key's length in bytes.
    pub fn byte_len(self) -> usize {
        match self {
            DataKeySpec::Aes256 => 32,
            DataKeySpec::Aes128 => 16,
        }
    }
}

/// KMS `DataKeyPairSpec` (the specs cofre can make).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataKeyPairSpec {
    #[value(name = "RSA_2048")]
    Rsa2048,
    #[value(name = "RSA_3072")]
    Rsa3072,
    #[value(name = "RSA_4096")]
    Rsa4096,
    #[value(name = "ECC_NIST_P256")]
    EccNistP256,
    #[value(name = "ECC_NIST_P384")]
    EccNistP384,
    #[value(name = "ECC_NIST_P521")]
    EccNistP521,
    #[value(name = "ECC_SECG_P256K1")]
    EccSecgP256k1,
}

/// The name clap (and KMS) knows a value by.
pub fn value_name<T: clap::ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

impl DataKeyPairSpec {
    /// The key type.
    pub fn kind(self) -> AsymKind {
        match self {
            DataKeyPairSpec::Rsa2048 => AsymKind::Rsa(2048),
            DataKeyPairSpec::Rsa3072 => AsymKind::Rsa(3072),
            DataKeyPairSpec::Rsa4096 => AsymKind::Rsa(4096),
            DataKeyPairSpec::EccNistP256 => AsymKind::Ec(Curve::P256),
            DataKeyPairSpec::EccNistP384 => AsymKind::Ec(Curve::P384),
            DataKeyPairSpec::EccNistP521 => AsymKind::Ec(Curve::P521),
            DataKeyPairSpec::EccSecgP256k1 => AsymKind::Ec(Curve::Secp256k1),
        }
    }
}

/// The asymmetric key type of a spec; none for symmetric and HMAC specs.
pub fn asym_kind(spec: KeySpec) -> Option<AsymKind> {
    Some(match spec {
        KeySpec::Rsa2048 => AsymKind::Rsa(2048),
        KeySpec::Rsa3072 => AsymKind::Rsa(3072),
        KeySpec::Rsa4096 => AsymKind::Rsa(4096),
        KeySpec::EccNistP256 => AsymKind::Ec(Curve::P256),
        KeySpec::EccNistP384 => AsymKind::Ec(Curve::P384),
        KeySpec::EccNistP521 => AsymKind::Ec(Curve::P521),
        KeySpec::EccSecgP256k1 => AsymKind::Ec(Curve::Secp256k1),
        _ => return None,
    })
}

/// The spec of an asymmetric key type.
pub fn spec_of(kind: AsymKind) -> KeySpec {
    match kind {
        AsymKind::Rsa(2048) => KeySpec::Rsa2048,
        AsymKind::Rsa(3072) => KeySpec::Rsa3072,
        AsymKind::Rsa(_) => KeySpec::Rsa4096,
        AsymKind::Ec(Curve::P256) => KeySpec::EccNistP256,
        AsymKind::Ec(Curve::P384) => KeySpec::EccNistP384,
        AsymKind::Ec(Curve::P521) => KeySpec::EccNistP521,
        AsymKind::Ec(Curve::Secp256k1) => KeySpec::EccSecgP256k1,
    }
}

/// The hash of an HMAC spec; none for other specs.
pub fn hmac_hash(spec: KeySpec) -> Option<Hash> {
    Some(match spec {
        KeySpec::Hmac224 => Hash::Sha224,
        KeySpec::Hmac256 => Hash::Sha256,
        KeySpec::Hmac384 => Hash::Sha384,
        KeySpec::Hmac512 => Hash::Sha512,
        _ => return None,
    })
}

/// The usages a spec allows.
pub fn usages(spec: KeySpec) -> &'static [KeyUsage] {
    use KeyUsage::*;
    match spec {
        KeySpec::SymmetricDefault => &[EncryptDecrypt],
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => &[EncryptDecrypt, SignVerify],
        KeySpec::EccNistP256 | KeySpec::EccNistP384 | KeySpec::EccNistP521 => {
            &[SignVerify, KeyAgreement]
        }
        KeySpec::EccSecgP256k1 => &[SignVerify],
        KeySpec::Hmac224 | KeySpec::Hmac256 | KeySpec::Hmac384 | KeySpec::Hmac512 => {
            &[GenerateVerifyMac]
        }
    }
}

/// Refuses a spec and usage KMS does not combine, saying which usages the spec takes.
pub fn check_usage(spec: KeySpec, usage: KeyUsage) -> Result<()> {
    let allowed = usages(spec);
    if allowed.contains(&usage) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(|u| u.name()).collect();
    Err(Error::kms(
        KmsCode::ValidationException,
        format!(
            "key usage {usage} is not valid for key spec {spec}; {spec} keys take --usage {}",
            names.join(" or ")
        ),
    ))
}

/// The algorithms of a key, as DescribeKey lists them: (encryption, signing, MAC, key
/// agreement).
pub fn algorithms(spec: KeySpec, usage: KeyUsage) -> [Vec<String>; 4] {
    let v = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut out: [Vec<String>; 4] = Default::default();
    match (usage, spec) {
        (KeyUsage::EncryptDecrypt, KeySpec::SymmetricDefault) => out[0] = v(&["SYMMETRIC_DEFAULT"]),
        (KeyUsage::EncryptDecrypt, _) => out[0] = v(&["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]),
        (KeyUsage::SignVerify, KeySpec::EccNistP256 | KeySpec::EccSecgP256k1) => {
            out[1] = v(&["ECDSA_SHA_256"])
        }
        (KeyUsage::SignVerify, KeySpec::EccNistP384) => out[1] = v(&["ECDSA_SHA_384"]),
        (KeyUsage::SignVerify, KeySpec::EccNistP521) => out[1] = v(&["ECDSA_SHA_512"]),
        (KeyUsage::SignVerify, _) => {
            out[1] = v(&[
                "RSASSA_PSS_SHA_256",
                "RSASSA_PSS_SHA_384",
                "RSASSA_PSS_SHA_512",
                "RSASSA_PKCS1_V1_5_SHA_256",
                "RSASSA_PKCS1_V1_5_SHA_384",
                "RSASSA_PKCS1_V1_5_SHA_512",
            ])
        }
        (KeyUsage::GenerateVerifyMac, s) => {
            let h = hmac_hash(s).map_or(256, |h| h.len() * 8);
            out[2] = vec![format!("HMAC_SHA_{h}")]
        }
        (KeyUsage::KeyAgreement, _) => out[3] = v(&["ECDH"]),
    }
    out
}

impl SigningAlgorithm {
    /// The crypto scheme.
    pub fn scheme(self) -> SigScheme {
        use SigningAlgorithm::*;
        match self {
            RsassaPssSha256 => SigScheme::RsaPss(Hash::Sha256),
            RsassaPssSha384 => SigScheme::RsaPss(Hash::Sha384),
            RsassaPssSha512 => SigScheme::RsaPss(Hash::Sha512),
            RsassaPkcs1V15Sha256 => SigScheme::RsaPkcs1(Hash::Sha256),
            RsassaPkcs1V15Sha384 => SigScheme::RsaPkcs1(Hash::Sha384),
            RsassaPkcs1V15Sha512 => SigScheme::RsaPkcs1(Hash::Sha512),
            EcdsaSha256 => SigScheme::Ecdsa(Hash::Sha256),
            EcdsaSha384 => SigScheme::Ecdsa(Hash::Sha384),
            EcdsaSha512 => SigScheme::Ecdsa(Hash::Sha512),
        }
    }

    /// What to sign with when the caller names no algorithm: the key's only algorithm for ECC,
    /// RSASSA_PSS_SHA_256 for RSA.
    pub fn default_for(kind: AsymKind) -> SigningAlgorithm {
        match kind {
            AsymKind::Rsa(_) => SigningAlgorithm::RsassaPssSha256,
            AsymKind::Ec(Curve::P384) => SigningAlgorithm::EcdsaSha384,
            AsymKind::Ec(Curve::P521) => SigningAlgorithm::EcdsaSha512,
            AsymKind::Ec(_) => SigningAlgorithm::EcdsaSha256,
        }
    }

    /// Whether a key of `kind` signs with this algorithm (as KMS pairs them).
    pub fn fits(self, kind: AsymKind) -> bool {
        self.scheme().fits(kind)
    }
}

impl MacAlgorithm {
    pub fn hash(self) -> Hash {
        match self {
            MacAlgorithm::HmacSha224 => Hash::Sha224,
            MacAlgorithm::HmacSha256 => Hash::Sha256,
            MacAlgorithm::HmacSha384 => Hash::Sha384,
            MacAlgorithm::HmacSha512 => Hash::Sha512,
        }
    }
}

impl EncryptionAlgorithm {
    /// The OAEP hash of an RSA algorithm.
    pub fn oaep(self) -> Option<OaepHash> {
        match self {
            EncryptionAlgorithm::SymmetricDefault => None,
            EncryptionAlgorithm::RsaesOaepSha1 => Some(OaepHash::Sha1),
            EncryptionAlgorithm::RsaesOaepSha256 => Some(OaepHash::Sha256),
        }
    }
}

/// The longest plaintext Encrypt takes with a key of `spec` and `algorithm`: 4096 bytes for
/// symmetric keys; for RSA, `key_bytes − 2·hash_bytes − 2` (e.g. 190 for RSA_2048 with
/// OAEP-SHA-256).
pub fn max_plaintext(spec: KeySpec, algorithm: EncryptionAlgorithm) -> usize {
    match (asym_kind(spec), algorithm.oaep()) {
        (Some(AsymKind::Rsa(bits)), Some(h)) => {
            let hash = match h {
                OaepHash::Sha1 => 20,
                OaepHash::Sha256 => 32,
            };
            bits / 8 - 2 * hash - 2
        }
        _ => 4096,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_limits_match_kms() {
        use EncryptionAlgorithm::*;
        let cases = [
            (KeySpec::Rsa2048, RsaesOaepSha1, 214),
            (KeySpec::Rsa2048, RsaesOaepSha256, 190),
            (KeySpec::Rsa3072, RsaesOaepSha1, 342),
            (KeySpec::Rsa3072, RsaesOaepSha256, 318),
            (KeySpec::Rsa4096, RsaesOaepSha1, 470),
            (KeySpec::Rsa4096, RsaesOaepSha256, 446),
            (KeySpec::SymmetricDefault, SymmetricDefault, 4096),
        ];
        for (spec, alg, max) in cases {
            assert_eq!(max_plaintext(spec, alg), max, "{spec} {alg:?}");
        }
    }

    #[test]
    fn signing_algorithms_fit_the_keys_describe_lists_them_for() {
        for spec in <KeySpec as clap::ValueEnum>::value_variants() {
            let Some(kind) = asym_kind(*spec) else {
                continue;
            };
            let listed = &algorithms(*spec, KeyUsage::SignVerify)[1];
            for alg in <SigningAlgorithm as clap::ValueEnum>::value_variants() {
                assert_eq!(
                    alg.fits(kind),
                    listed.contains(&value_name(alg)),
                    "{spec} {alg:?}"
                );
            }
        }
    }

    #[test]
    fn every_spec_has_usages_and_algorithms() {
        for spec in <KeySpec as clap::ValueEnum>::value_variants() {
            for usage in <KeyUsage as clap::ValueEnum>::value_variants() {
                let ok = check_usage(*spec, *usage).is_ok();
                assert_eq!(ok, usages(*spec).contains(usage));
                if ok {
                    let algs = algorithms(*spec, *usage);
                    assert_eq!(algs.iter().filter(|l| !l.is_empty()).count(), 1);
                }
            }
        }
        assert!(check_usage(KeySpec::Hmac256, KeyUsage::EncryptDecrypt).is_err());
        assert!(check_usage(KeySpec::EccSecgP256k1, KeyUsage::KeyAgreement).is_err());
        assert!(check_usage(KeySpec::Rsa2048, KeyUsage::KeyAgreement).is_err());
    }
}
