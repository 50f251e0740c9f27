//! The payload: fixed-size chunks, each sealed with AES-256-GCM under the payload key, with a
//! nonce that encodes the chunk's index and whether it is the last.
//!
//! All nonce and last-chunk logic lives here. A payload of `n` plaintext bytes with chunk size
//! `C` has `n / C + 1` chunks: every chunk but the last holds exactly `C` bytes, the last holds
//! `n % C` (possibly zero). So a full chunk is never the last, and a reader that meets the end of
//! the data right after a full chunk knows the file was truncated.

use crate::crypto::{AeadKey, Backend, SecretKey, TAG_LEN};
use crate::error::{Error, Result};

/// Smallest chunk size: 4 KiB (2^12).
pub const MIN_CHUNK_LOG2: u8 = 12;
/// Largest chunk size: 64 MiB (2^26).
pub const MAX_CHUNK_LOG2: u8 = 26;
/// Default chunk size: 1 MiB.
pub const DEFAULT_CHUNK_LOG2: u8 = 20;
/// Most chunks in one file (2^32): with 1 MiB chunks, 4 PiB.
pub const MAX_CHUNKS: u64 = 1 << 32;

/// The chunk nonce: the index as 8 big-endian bytes, three zero bytes, then 1 for the last
/// chunk and 0 otherwise. Unique for every (index, last) pair, and the payload key is unique per
/// file, so a nonce never repeats under a key.
pub(crate) fn chunk_nonce(index: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&index.to_be_bytes());
    n[11] = last as u8;
    n
}

/// Validates a chunk size and returns its base-2 logarithm.
pub fn chunk_log2(size: u64) -> Result<u8> {
    let ok = size.is_power_of_two()
        && (MIN_CHUNK_LOG2..=MAX_CHUNK_LOG2).contains(&(size.trailing_zeros() as u8));
    if !ok {
        return Err(Error::usage(format!(
            "chunk size {size} is not allowed; use a power of two from 4KiB to 64MiB (e.g. 1MiB)"
        )));
    }
    Ok(size.trailing_zeros() as u8)
}

/// Where each chunk of a sealed file sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Bytes of header before the first chunk.
    pub header_len: u64,
    /// Plaintext bytes in every chunk but the last.
    pub chunk_size: u64,
}

impl Layout {
    /// Sealed bytes of one full chunk (plaintext + tag).
    pub fn sealed_chunk(&self) -> u64 {
        self.chunk_size + TAG_LEN as u64
    }

    /// Number of chunks for `plain_len` bytes of plaintext.
    pub fn chunk_count(&self, plain_len: u64) -> u64 {
        plain_len / self.chunk_size + 1
    }

    /// Total sealed file size for `plain_len` bytes of plaintext.
    pub fn sealed_len(&self, plain_len: u64) -> u64 {
        self.header_len + plain_len + self.chunk_count(plain_len) * TAG_LEN as u64
    }

    /// Checks a plaintext length against the per-file limit.
    pub fn check_plain_len(&self, plain_len: u64) -> Result<()> {
        if self.chunk_count(plain_len) > MAX_CHUNKS {
            return Err(Error::usage(format!(
                "input of {plain_len} bytes needs more than 2^32 chunks; use a larger --chunk-size"
            )));
        }
        Ok(())
    }

    /// The plaintext length of a sealed file of `sealed_len` bytes; refuses impossible lengths.
    pub fn plain_len(&self, sealed_len: u64) -> Result<u64> {
        let payload = sealed_len
            .checked_sub(self.header_len)
            .ok_or_else(|| Error::Truncated("the header is incomplete".into()))?;
        let full = payload / self.sealed_chunk();
        let rest = payload % self.sealed_chunk();
        if rest < TAG_LEN as u64 {
            return Err(Error::Truncated(format!(
                "the final chunk (chunk {full}) is missing or cut short"
            )));
        }
        if full + 1 > MAX_CHUNKS {
            return Err(Error::HeaderCorrupt(
                "more chunks than the format allows".into(),
            ));
        }
        Ok(full * self.chunk_size + rest - TAG_LEN as u64)
    }

    /// Byte offset of chunk `index` in the sealed file.
    pub fn chunk_offset(&self, index: u64) -> u64 {
        self.header_len + index * self.sealed_chunk()
    }
}

/// Seals and opens chunks by index; stateless, so any thread can take any chunk.
pub struct ChunkCipher {
    aead: AeadKey,
}

impl ChunkCipher {
    /// A cipher over the payload key.
    pub fn new(backend: Backend, payload_key: &SecretKey) -> Self {
        ChunkCipher {
            aead: backend.aead(payload_key),
        }
    }

    /// Seals chunk `index` from `plaintext` into `out` (`plaintext.len() + 16` bytes).
    pub fn seal(&self, index: u64, last: bool, plaintext: &[u8], out: &mut [u8]) {
        let (ct, tag) = out.split_at_mut(plaintext.len());
        let t = self
            .aead
            .seal(&chunk_nonce(index, last), &[], plaintext, ct);
        tag.copy_from_slice(&t);
    }

    /// Seals chunk `index` in place: `buf` holds the plaintext followed by 16 spare bytes.
    pub fn seal_in_place(&self, index: u64, last: bool, buf: &mut [u8]) {
        let (pt, tag) = buf.split_at_mut(buf.len() - TAG_LEN);
        let t = self.aead.seal_in_place(&chunk_nonce(index, last), &[], pt);
        tag.copy_from_slice(&t);
    }

    /// Opens sealed chunk `index` (ciphertext + tag) into `out` (16 bytes shorter).
    pub fn open(&self, index: u64, last: bool, sealed: &[u8], out: &mut [u8]) -> Result<()> {
        let (ct, tag) = split_tag(sealed, index)?;
        self.aead
            .open(&chunk_nonce(index, last), &[], ct, tag, out)
            .map_err(|_| Error::Corrupted { chunk: index })
    }

    /// Opens sealed chunk `index` in place; the plaintext is `buf[..buf.len() - 16]`.
    pub fn open_in_place(&self, index: u64, last: bool, buf: &mut [u8]) -> Result<()> {
        if buf.len() < TAG_LEN {
            return Err(Error::Truncated(format!(
                "chunk {index} is shorter than its tag"
            )));
        }
        let (ct, tag) = buf.split_at_mut(buf.len() - TAG_LEN);
        let tag: [u8; TAG_LEN] = (&*tag).try_into().expect("16 bytes");
        self.aead
            .open_in_place(&chunk_nonce(index, last), &[], ct, &tag)
            .map_err(|_| Error::Corrupted { chunk: index })
    }
}

fn split_tag(sealed: &[u8], index: u64) -> Result<(&[u8], &[u8; TAG_LEN])> {
    if sealed.len() < TAG_LEN {
        return Err(Error::Truncated(format!(
            "chunk {index} is shorter than its tag"
        )));
    }
    let (ct, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    Ok((ct, tag.try_into().expect("16 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_distinct_for_index_and_last() {
        let mut seen = std::collections::HashSet::new();
        for i in [0u64, 1, 2, 255, 256, u32::MAX as u64, u64::MAX] {
            for last in [false, true] {
                assert!(seen.insert(chunk_nonce(i, last)));
            }
        }
        assert_eq!(chunk_nonce(1, true)[7], 1);
        assert_eq!(chunk_nonce(1, true)[11], 1);
        assert_eq!(chunk_nonce(0, false), [0u8; 12]);
    }

    #[test]
    fn layout_round_trips_lengths() {
        let l = Layout {
            header_len: 100,
            chunk_size: 4096,
        };
        for n in [0u64, 1, 4095, 4096, 4097, 3 * 4096, 3 * 4096 + 7] {
            assert_eq!(l.plain_len(l.sealed_len(n)).unwrap(), n, "n={n}");
        }
        // A full chunk never ends the payload.
        assert!(l.plain_len(100 + 4096 + 16).is_err());
        assert!(l.plain_len(100 + 15).is_err());
        assert!(l.plain_len(99).is_err());
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_log2(4096).unwrap(), 12);
        assert_eq!(chunk_log2(1 << 26).unwrap(), 26);
        assert!(chunk_log2(2048).is_err());
        assert!(chunk_log2(1 << 27).is_err());
        assert!(chunk_log2(5000).is_err());
    }

    #[test]
    fn chunk_cipher_binds_index_and_last() {
        let c = ChunkCipher::new(Backend::default(), &SecretKey::random());
        let pt = b"hello chunk".to_vec();
        let mut sealed = vec![0u8; pt.len() + 16];
        c.seal(3, false, &pt, &mut sealed);
        let mut out = vec![0u8; pt.len()];
        c.open(3, false, &sealed, &mut out).unwrap();
        assert_eq!(out, pt);
        assert!(c.open(4, false, &sealed, &mut out).is_err());
        assert!(c.open(3, true, &sealed, &mut out).is_err());
        let mut buf = pt.clone();
        buf.extend_from_slice(&[0; 16]);
        c.seal_in_place(3, false, &mut buf);
        assert_eq!(buf, sealed);
        c.open_in_place(3, false, &mut buf).unwrap();
        assert_eq!(&buf[..pt.len()], pt);
    }
}
