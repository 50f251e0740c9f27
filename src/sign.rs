//! Signatures of files of any size, and public keys in files.
//!
//! `cofre sign` hashes the file as a stream with the algorithm's hash and has KMS sign the
//! digest (message type DIGEST), so the file never has to fit KMS's 4096-byte limit. `cofre
//! verify` does the same with a key in the keyring, or entirely offline with a public key file.

use crate::crypto::{spki_kind, AsymKind, Backend, Hash};
use crate::error::{Error, KmsCode, Result};
use crate::files::Input;
use crate::keyring::KeyUsage;
use crate::kms::{specs, KeyRef, Kms, MessageType, SigningAlgorithm};
use std::io::Read;
use std::path::Path;

/// Reads a public key file, PEM (`-----BEGIN PUBLIC KEY-----`) or DER, and returns its DER
/// SubjectPublicKeyInfo after checking it holds a key cofre can use.
pub fn read_public_key(path: &Path) -> Result<Vec<u8>> {
    Ok(read_public_key_file(path)?.0)
}

/// [`read_public_key`], with the key's usage when the file says it: the `KeyUsage:` line that
/// `cofre key public-key` writes before the PEM block (RFC 7468 lets text stand there; openssl
/// skips it).
pub fn read_public_key_file(path: &Path) -> Result<(Vec<u8>, Option<KeyUsage>)> {
    let bytes = crate::store::read(path)?;
    let (der, usage) = match find(&bytes, b"-----BEGIN") {
        Some(start) => {
            let (label, der) = pem_rfc7468::decode_vec(&bytes[start..]).map_err(|_| {
                Error::usage(format!(
                    "{} is not a valid PEM file; give the public key from `cofre key public-key` or `openssl pkey -pubout`",
                    path.display()
                ))
            })?;
            if label != "PUBLIC KEY" {
                return Err(Error::usage(format!(
                    "{} holds a {label:?}, not a PUBLIC KEY; extract it with `openssl pkey -pubout`",
                    path.display()
                )));
            }
            let usage = String::from_utf8_lossy(&bytes[..start])
                .lines()
                .find_map(|l| l.strip_prefix("KeyUsage:"))
                .and_then(|u| <KeyUsage as clap::ValueEnum>::from_str(u.trim(), false).ok());
            (der, usage)
        }
        None => (bytes, None),
    };
    spki_kind(Backend::default(), &der)
        .map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
    Ok((der, usage))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A DER SubjectPublicKeyInfo as PEM.
pub fn public_key_pem(der: &[u8]) -> String {
    pem_rfc7468::encode_string("PUBLIC KEY", pem_rfc7468::LineEnding::LF, der)
        .expect("PEM encoding of a small DER document")
}

/// A KMS key's public key as PEM, after lines that say which key it is and what it is for
/// (read back by [`read_public_key_file`]).
pub fn labelled_public_key_pem(info: &crate::kms::PublicKeyInfo) -> String {
    format!(
        "KeyId: {}\nKeySpec: {}\nKeyUsage: {}\n{}",
        info.key_id,
        info.key_spec,
        info.key_usage,
        public_key_pem(&info.public_key)
    )
}

/// SHA-256 of a DER SubjectPublicKeyInfo: how file headers name a public-key recipient.
pub fn fingerprint(spki: &[u8]) -> [u8; 32] {
    Backend::default()
        .digest(Hash::Sha256, spki)
        .try_into()
        .expect("32 bytes")
}

/// The digest of a whole input: a regular file is memory-mapped and hashed in place (no copy
/// through a buffer); anything else is read as a stream.
pub fn digest_input(backend: Backend, hash: Hash, input: &Input) -> Result<Vec<u8>> {
    let mut h = backend.hasher(hash);
    let (mut reader, name): (Box<dyn Read>, &Path) = match input {
        Input::Stdin => (Box::new(std::io::stdin().lock()), Path::new("stdin")),
        Input::Path(p) => {
            // Opened once: a FIFO cannot be opened twice.
            let file = std::fs::File::open(p).map_err(|e| Error::io("opening", p, e))?;
            let meta = file.metadata().map_err(|e| Error::io("reading", p, e))?;
            if meta.is_file() {
                if meta.len() > 0 {
                    // SAFETY: a read-only map, dropped before returning. If another process
                    // truncates the file meanwhile, reading past its new end raises SIGBUS and
                    // cofre dies without a signature; if it rewrites the file in place, the
                    // digest mixes old and new bytes and the signature matches neither: sign
                    // files nobody is writing.
                    let map = unsafe { memmap2::Mmap::map(&file) }
                        .map_err(|e| Error::io("mapping", p, e))?;
                    let _ = map.advise(memmap2::Advice::Sequential);
                    for part in map.chunks(1 << 20) {
                        h.update(part);
                    }
                }
                return Ok(h.finish());
            }
            (Box::new(file), p.as_path())
        }
    };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading", name, e)),
        }
    }
    Ok(h.finish())
}

/// The algorithm to use with a key of `kind`: the one asked for if the key takes it, else the
/// default for its type.
fn algorithm_for(kind: AsymKind, asked: Option<SigningAlgorithm>) -> Result<SigningAlgorithm> {
    let alg = asked.unwrap_or_else(|| SigningAlgorithm::default_for(kind));
    if !alg.fits(kind) {
        return Err(Error::kms(
            KmsCode::InvalidKeyUsageException,
            format!(
                "a {} key does not sign with {}; it takes {}",
                specs::spec_of(kind),
                specs::value_name(&alg),
                specs::algorithms(specs::spec_of(kind), crate::keyring::KeyUsage::SignVerify)[1]
                    .join(", ")
            ),
        ));
    }
    Ok(alg)
}

/// The signing algorithm for `key` in the keyring: the one asked for, else the default for
/// the key's type, which a DescribeKey request finds out (as a user would; a caller who may
/// not describe the key names the algorithm with `--algorithm`).
fn keyring_algorithm(
    kms: &Kms,
    key: &KeyRef,
    asked: Option<SigningAlgorithm>,
) -> Result<SigningAlgorithm> {
    if let Some(a) = asked {
        return Ok(a);
    }
    let m = kms.describe_key(key).map_err(|e| match e {
        Error::Kms {
            code: KmsCode::AccessDeniedException,
            message,
        } => Error::kms(
            KmsCode::AccessDeniedException,
            format!("{message}; cofre asks DescribeKey only to pick a default, so name the signing algorithm with --algorithm"),
        ),
        e => e,
    })?;
    Ok(specs::asym_kind(m.key_spec).map_or(
        SigningAlgorithm::RsassaPssSha256,
        SigningAlgorithm::default_for,
    ))
}

/// `cofre sign`: the signature of a whole file by a SIGN_VERIFY key.
pub fn sign_file(
    kms: &Kms,
    key: &KeyRef,
    algorithm: Option<SigningAlgorithm>,
    input: &Input,
) -> Result<crate::kms::Signed> {
    let alg = keyring_algorithm(kms, key, algorithm)?;
    let digest = digest_input(Backend::default(), alg.scheme().hash(), input)?;
    kms.sign(key, &digest, MessageType::Digest, alg)
}

/// `cofre verify KEY FILE SIG`: if `signature` is KEY's signature of the file, the key's ARN
/// and the algorithm checked.
pub fn verify_file(
    kms: &Kms,
    key: &KeyRef,
    algorithm: Option<SigningAlgorithm>,
    input: &Input,
    signature: &[u8],
) -> Result<(String, SigningAlgorithm)> {
    let alg = keyring_algorithm(kms, key, algorithm)?;
    let digest = digest_input(Backend::default(), alg.scheme().hash(), input)?;
    let v = kms.verify(key, &digest, MessageType::Digest, alg, signature)?;
    Ok((v.key_id, alg))
}

/// `cofre verify --pubkey PEM FILE SIG`: the same check with only the public key, no keyring;
/// returns the algorithm checked.
pub fn verify_file_offline(
    spki: &[u8],
    algorithm: Option<SigningAlgorithm>,
    input: &Input,
    signature: &[u8],
) -> Result<SigningAlgorithm> {
    let backend = Backend::default();
    let kind = spki_kind(backend, spki)?;
    let alg = algorithm_for(kind, algorithm)?;
    let digest = digest_input(backend, alg.scheme().hash(), input)?;
    backend
        .verify_digest(kind, alg.scheme(), spki, &digest, signature)
        .map_err(|_| {
            Error::kms(
                KmsCode::KMSInvalidSignatureException,
                format!(
                    "the signature is not valid for this file under the public key sha256:{} with {}",
                    hex::encode(fingerprint(spki)),
                    specs::value_name(&alg)
                ),
            )
        })?;
    Ok(alg)
}
