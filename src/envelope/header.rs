//! The header of a cofre file: encode, decode, authenticate. docs/FORMAT.md is the byte-level
//! specification; this file implements it.

use super::context::{EncryptionContext, MAX_PAIRS, MAX_STRING};
use super::stream::{MAX_CHUNK_LOG2, MIN_CHUNK_LOG2};
use crate::crypto::{Backend, SecretKey, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use std::io::Read;

/// The first eight bytes of every cofre file.
pub const MAGIC: [u8; 8] = *b"COFRE\0\r\n";
/// The format version this build writes.
pub const VERSION: u8 = 1;
/// Suite 1: AES-256-GCM chunks, HKDF-SHA256 derivation, key commitment, BLAKE3 header MAC.
pub const SUITE: u8 = 1;
/// Bytes before the rest of the header: magic, version, suite, header length.
pub const PREFIX_LEN: usize = 14;
/// Largest header accepted.
pub const MAX_HEADER_LEN: usize = 1 << 20;
/// Most recipients (wrapped copies of the data key) in one header.
pub const MAX_RECIPIENTS: usize = 32;
/// Recipient type 1: a data key wrapped by a symmetric master key in a keyring.
pub const RECIPIENT_KMS: u8 = 1;
/// Recipient type 2: a data key encrypted to an RSA public key with RSAES-OAEP-SHA-256.
pub const RECIPIENT_RSA_OAEP: u8 = 2;
/// Recipient type 3: a data key sealed under a key agreed by ECDH between a fresh ephemeral key
/// and a recipient's EC public key.
pub const RECIPIENT_ECDH: u8 = 3;
/// Largest header alignment: headers are padded to at most a 4 KiB boundary.
pub const MAX_ALIGN: usize = 4096;
/// Length of a sealed data key: 32 bytes of key and a 16-byte tag.
pub const SEALED_KEY_LEN: usize = 32 + TAG_LEN;

const LABEL_PAYLOAD: &[u8] = b"cofre v1 payload key";
const LABEL_MAC: &[u8] = b"cofre v1 header mac key";
const LABEL_COMMIT: &[u8] = b"cofre v1 key commitment";
const LABEL_WRAP: &[u8] = b"cofre v1 wrapped data key\0";

/// One copy of the data key, sealed under a master key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// ARN of the master key that sealed it.
    pub key_arn: String,
    /// Which version of that key's material (KMS `KeyMaterialId`, 32 bytes).
    pub material_id: [u8; 32],
    /// The random nonce it was sealed with.
    pub nonce: [u8; NONCE_LEN],
    /// The sealed data key and tag.
    pub sealed: [u8; SEALED_KEY_LEN],
}

impl WrappedKey {
    /// The AAD a data key is sealed with: a label, the key ARN, the material id, the file's
    /// message id and its canonical encryption context.
    pub fn aad(
        key_arn: &str,
        material_id: &[u8; 32],
        message_id: &[u8; 32],
        context: &EncryptionContext,
    ) -> Vec<u8> {
        let mut a = Vec::with_capacity(128 + key_arn.len());
        a.extend_from_slice(LABEL_WRAP);
        put_str(&mut a, key_arn);
        a.extend_from_slice(material_id);
        a.extend_from_slice(message_id);
        context.encode(&mut a);
        a
    }
}

/// How a data key was wrapped to a public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKeyScheme {
    /// RSAES-OAEP with SHA-256 (type 2).
    RsaOaepSha256,
    /// ECDH, HKDF-SHA256, AES-256-GCM (type 3).
    Ecdh,
}

/// A data key wrapped to a public key (types 2 and 3); the private key lives in a keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyRecipient {
    pub scheme: PublicKeyScheme,
    /// SHA-256 of the recipient's DER SubjectPublicKeyInfo: which key can open it.
    pub fingerprint: [u8; 32],
    /// ECDH: the ephemeral public key (DER SubjectPublicKeyInfo); empty for RSA.
    pub ephemeral: Vec<u8>,
    /// The RSA ciphertext, or the sealed data key and tag (ECDH).
    pub wrapped: Vec<u8>,
}

/// Someone who can recover the data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A keyring master key (type 1).
    Kms(WrappedKey),
    /// The holder of a private key (types 2 and 3).
    PublicKey(PublicKeyRecipient),
    /// A type this build does not know; kept so headers stay intact, skipped when opening.
    Unknown { kind: u8, body: Vec<u8> },
}

/// Keys derived from the data key and the message id.
pub struct HeaderKeys {
    /// Seals the payload chunks.
    pub payload: SecretKey,
    mac: SecretKey,
    commitment: [u8; 32],
}

impl HeaderKeys {
    /// Derives the payload key, the header MAC key and the key commitment with HKDF-SHA256
    /// (salt = message id, one `info` label each).
    pub fn derive(backend: Backend, data_key: &SecretKey, message_id: &[u8; 32]) -> Self {
        let mut commitment = [0u8; 32];
        backend.hkdf_sha256(message_id, data_key.expose(), LABEL_COMMIT, &mut commitment);
        HeaderKeys {
            payload: backend.derive_key(message_id, data_key, LABEL_PAYLOAD),
            mac: backend.derive_key(message_id, data_key, LABEL_MAC),
            commitment,
        }
    }
}

/// A decoded or to-be-encoded header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// log2 of the chunk size.
    pub chunk_log2: u8,
    /// Random per file; salts every derived key.
    pub message_id: [u8; 32],
    /// The encryption context.
    pub context: EncryptionContext,
    /// Wrapped copies of the data key.
    pub recipients: Vec<Recipient>,
    /// The key commitment (set by [`Header::seal`] or read from a file).
    pub commitment: [u8; 32],
}

impl Header {
    /// A header for a new file with a fresh message id and no recipients yet. Panics if
    /// `chunk_log2` is outside 12..=26 (see [`super::chunk_log2`], which validates sizes).
    pub fn new(chunk_log2: u8, context: EncryptionContext) -> Self {
        assert!(
            (MIN_CHUNK_LOG2..=MAX_CHUNK_LOG2).contains(&chunk_log2),
            "chunk size 2^{chunk_log2} out of range"
        );
        Header {
            chunk_log2,
            message_id: crate::crypto::random_array(),
            context,
            recipients: Vec::new(),
            commitment: [0; 32],
        }
    }

    /// The chunk size in bytes.
    pub fn chunk_size(&self) -> u64 {
        1u64 << self.chunk_log2
    }

    /// The wrapped keys of keyring recipients.
    pub fn wrapped_keys(&self) -> impl Iterator<Item = &WrappedKey> {
        self.recipients.iter().filter_map(|r| match r {
            Recipient::Kms(w) => Some(w),
            _ => None,
        })
    }

    /// The recipients that are public keys.
    pub fn public_key_recipients(&self) -> impl Iterator<Item = &PublicKeyRecipient> {
        self.recipients.iter().filter_map(|r| match r {
            Recipient::PublicKey(p) => Some(p),
            _ => None,
        })
    }

    /// Encodes the header with its commitment and authentication tag, padded with zeros so its
    /// length is a multiple of `align` (1 for no padding, at most 4096). A 4 KiB-aligned payload
    /// lets `rewrap` copy it with reflinks or page-aligned in-kernel copies.
    pub fn seal(&mut self, keys: &HeaderKeys, align: usize) -> Result<Vec<u8>> {
        assert!(
            (1..=MAX_ALIGN).contains(&align),
            "header alignment out of range"
        );
        if self.recipients.is_empty() || self.recipients.len() > MAX_RECIPIENTS {
            return Err(Error::usage(format!(
                "a file needs 1 to {MAX_RECIPIENTS} wrapping keys; give -k once per key"
            )));
        }
        self.commitment = keys.commitment;
        let mut b = Vec::with_capacity(256);
        b.extend_from_slice(&MAGIC);
        b.push(VERSION);
        b.push(SUITE);
        b.extend_from_slice(&[0; 4]); // header length, filled in below
        b.push(self.chunk_log2);
        b.extend_from_slice(&self.message_id);
        self.context.encode(&mut b);
        b.push(self.recipients.len() as u8);
        for r in &self.recipients {
            let (kind, body) = match r {
                Recipient::Kms(w) => {
                    let mut body = Vec::with_capacity(100 + w.key_arn.len());
                    put_str(&mut body, &w.key_arn);
                    body.extend_from_slice(&w.material_id);
                    body.extend_from_slice(&w.nonce);
                    body.extend_from_slice(&w.sealed);
                    (RECIPIENT_KMS, body)
                }
                Recipient::PublicKey(p) => {
                    let mut body = Vec::with_capacity(64 + p.ephemeral.len() + p.wrapped.len());
                    body.extend_from_slice(&p.fingerprint);
                    let kind = match p.scheme {
                        PublicKeyScheme::RsaOaepSha256 => RECIPIENT_RSA_OAEP,
                        PublicKeyScheme::Ecdh => {
                            put_bytes(&mut body, &p.ephemeral);
                            RECIPIENT_ECDH
                        }
                    };
                    put_bytes(&mut body, &p.wrapped);
                    (kind, body)
                }
                Recipient::Unknown { kind, body } => (*kind, body.clone()),
            };
            b.push(kind);
            b.extend_from_slice(&(body.len() as u16).to_be_bytes());
            b.extend_from_slice(&body);
        }
        let unpadded = b.len() + 2 + 32 + 32;
        let pad = (align - unpadded % align) % align;
        b.extend_from_slice(&(pad as u16).to_be_bytes());
        b.resize(b.len() + pad, 0);
        b.extend_from_slice(&self.commitment);
        let len = b.len() + 32;
        if len > MAX_HEADER_LEN {
            return Err(Error::usage(
                "header too large: shorten the encryption context",
            ));
        }
        b[10..14].copy_from_slice(&(len as u32).to_be_bytes());
        let tag = blake3::keyed_hash(keys.mac.expose(), &b);
        b.extend_from_slice(tag.as_bytes());
        Ok(b)
    }

    /// Derives the keys of this (decoded) header from its recovered data key and checks them:
    /// the key commitment, then the authentication tag over `raw`, the header's bytes. The way
    /// a reader should get a payload key.
    pub fn open_keys(
        &self,
        raw: &[u8],
        backend: Backend,
        data_key: &SecretKey,
    ) -> Result<HeaderKeys> {
        let keys = HeaderKeys::derive(backend, data_key, &self.message_id);
        self.verify(raw, &keys)?;
        Ok(keys)
    }

    /// Checks the key commitment and the authentication tag of `raw` (the header's bytes).
    pub fn verify(&self, raw: &[u8], keys: &HeaderKeys) -> Result<()> {
        // Compared as blake3 hashes: constant time.
        if blake3::Hash::from(keys.commitment) != blake3::Hash::from(self.commitment) {
            return Err(Error::HeaderCorrupt(
                "key commitment mismatch (the data key does not belong to this file)".into(),
            ));
        }
        let (body, tag) = raw.split_at(raw.len() - 32);
        let want = blake3::keyed_hash(keys.mac.expose(), body);
        let tag: [u8; 32] = tag.try_into().expect("32 bytes");
        if want != blake3::Hash::from(tag) {
            return Err(Error::HeaderCorrupt("authentication tag mismatch".into()));
        }
        Ok(())
    }

    /// Reads and decodes a header from the start of `r`; returns it with its raw bytes.
    pub fn read_from(r: &mut impl Read) -> Result<(Header, Vec<u8>)> {
        let mut raw = vec![0u8; PREFIX_LEN];
        let n = read_full(r, &mut raw)?;
        let len = check_prefix(&raw[..n])?;
        raw.resize(len, 0);
        if read_full(r, &mut raw[PREFIX_LEN..])? != len - PREFIX_LEN {
            return Err(Error::Truncated("the header is incomplete".into()));
        }
        let h = Header::decode(&raw)?;
        Ok((h, raw))
    }

    /// Decodes a header from `raw`, which must hold at least the whole header; its length is
    /// what [`check_prefix`] returns.
    pub fn decode(raw: &[u8]) -> Result<Header> {
        let len = check_prefix(raw)?;
        if raw.len() < len {
            return Err(Error::Truncated("the header is incomplete".into()));
        }
        let mut c = Cursor {
            buf: &raw[..len - 32],
            pos: PREFIX_LEN,
        };
        let chunk_log2 = c.u8()?;
        if !(MIN_CHUNK_LOG2..=MAX_CHUNK_LOG2).contains(&chunk_log2) {
            return Err(Error::HeaderCorrupt(format!(
                "chunk size 2^{chunk_log2} out of range"
            )));
        }
        let message_id = c.array::<32>()?;
        let pairs = c.u16()? as usize;
        if pairs > MAX_PAIRS {
            return Err(Error::HeaderCorrupt("too many context pairs".into()));
        }
        let mut context = EncryptionContext::new();
        let mut prev: Option<String> = None;
        for _ in 0..pairs {
            let k = c.string()?;
            let v = c.string()?;
            if prev.as_ref().is_some_and(|p| p.as_bytes() >= k.as_bytes()) {
                return Err(Error::HeaderCorrupt("context keys out of order".into()));
            }
            context
                .insert(&k, &v)
                .map_err(|_| Error::HeaderCorrupt("invalid context pair".into()))?;
            prev = Some(k);
        }
        let count = c.u8()? as usize;
        if count == 0 || count > MAX_RECIPIENTS {
            return Err(Error::HeaderCorrupt(format!("{count} recipients")));
        }
        let mut recipients = Vec::with_capacity(count);
        for _ in 0..count {
            let kind = c.u8()?;
            let body_len = c.u16()? as usize;
            let body = c.take(body_len)?;
            recipients.push(match kind {
                RECIPIENT_KMS => {
                    let mut b = Cursor { buf: body, pos: 0 };
                    let w = WrappedKey {
                        key_arn: b.string()?,
                        material_id: b.array()?,
                        nonce: b.array()?,
                        sealed: b.array()?,
                    };
                    if b.pos != body.len() {
                        return Err(Error::HeaderCorrupt("recipient has extra bytes".into()));
                    }
                    Recipient::Kms(w)
                }
                RECIPIENT_RSA_OAEP | RECIPIENT_ECDH => {
                    let mut b = Cursor { buf: body, pos: 0 };
                    let fingerprint = b.array()?;
                    let (scheme, ephemeral) = if kind == RECIPIENT_ECDH {
                        (PublicKeyScheme::Ecdh, b.bytes()?.to_vec())
                    } else {
                        (PublicKeyScheme::RsaOaepSha256, Vec::new())
                    };
                    let wrapped = b.bytes()?.to_vec();
                    if b.pos != body.len() {
                        return Err(Error::HeaderCorrupt("recipient has extra bytes".into()));
                    }
                    // The lengths docs/FORMAT.md §1.2 allows: an RSA-2048/3072/4096 ciphertext,
                    // or a sealed 32-byte key after a non-empty ephemeral key.
                    let fits = if kind == RECIPIENT_ECDH {
                        wrapped.len() == SEALED_KEY_LEN && !ephemeral.is_empty()
                    } else {
                        [256, 384, 512].contains(&wrapped.len())
                    };
                    if !fits {
                        return Err(Error::HeaderCorrupt(
                            "a public-key recipient has fields of the wrong length".into(),
                        ));
                    }
                    Recipient::PublicKey(PublicKeyRecipient {
                        scheme,
                        fingerprint,
                        ephemeral,
                        wrapped,
                    })
                }
                kind => Recipient::Unknown {
                    kind,
                    body: body.to_vec(),
                },
            });
        }
        let pad = c.u16()? as usize;
        if pad >= MAX_ALIGN || c.take(pad)?.iter().any(|&b| b != 0) {
            return Err(Error::HeaderCorrupt("bad header padding".into()));
        }
        let commitment = c.array::<32>()?;
        if c.pos != c.buf.len() {
            return Err(Error::HeaderCorrupt(
                "header length does not match its fields".into(),
            ));
        }
        Ok(Header {
            chunk_log2,
            message_id,
            context,
            recipients,
            commitment,
        })
    }
}

/// Validates magic, version and suite; returns the header length.
pub fn check_prefix(raw: &[u8]) -> Result<usize> {
    if raw.len() < MAGIC.len() || raw[..MAGIC.len()] != MAGIC {
        return Err(Error::NotCofre);
    }
    if raw.len() < PREFIX_LEN {
        return Err(Error::Truncated("the header is incomplete".into()));
    }
    if raw[8] != VERSION {
        return Err(Error::Unsupported(format!("version {}", raw[8])));
    }
    if raw[9] != SUITE {
        return Err(Error::Unsupported(format!("suite {}", raw[9])));
    }
    let len = u32::from_be_bytes(raw[10..14].try_into().expect("4 bytes")) as usize;
    if !(PREFIX_LEN + 32..=MAX_HEADER_LEN).contains(&len) {
        return Err(Error::HeaderCorrupt(format!(
            "header length {len} out of range"
        )));
    }
    Ok(len)
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Io {
                    what: "reading input".into(),
                    source: e,
                })
            }
        }
    }
    Ok(n)
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| Error::HeaderCorrupt("a field runs past the header's end".into()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u16()? as usize;
        if n > MAX_STRING.max(2048) {
            return Err(Error::HeaderCorrupt("string too long".into()));
        }
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| Error::HeaderCorrupt("string is not UTF-8".into()))
    }
}
