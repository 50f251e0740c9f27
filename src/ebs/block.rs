//! Data blocks: 512 KiB each (the EBS direct-API block size), written once, never changed, and
//! named by the BLAKE3 hash of their stored bytes, under `ebs/blocks/<first two hex>/<hash>`.
//!
//! A plaintext block is stored as is (so equal blocks are stored once). An encrypted block is
//! stored as `salt (16) ‖ ciphertext (512 KiB) ‖ tag (16)`, sealed by [`LineageCipher`]:
//!
//! - block key = HKDF-SHA256(salt, lineage data key, "cofre v1 ebs block key\0" ‖ lineage id)
//! - nonce = block index (8 bytes, big-endian) ‖ 0u32
//! - AAD = "cofre v1 ebs block\0" ‖ lineage id ‖ block index
//!
//! Every write draws a fresh random salt, so every sealing uses its own key: a nonce can repeat
//! under a key only if two 128-bit salts collide (about 2^-64 after 2^32 writes of a lineage),
//! however often the same block index is rewritten. The index and lineage in the AAD stop a
//! block from being moved to another index or volume.

use crate::crypto::{self, AeadKey, Backend, SecretKey, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Bytes of one block of volume data.
pub const BLOCK_SIZE: usize = 512 * 1024;
/// Bytes of the per-block salt of an encrypted block.
pub const SALT_LEN: usize = 16;
/// Stored bytes of an encrypted block.
pub const SEALED_BLOCK_LEN: usize = SALT_LEN + BLOCK_SIZE + TAG_LEN;

const LABEL_BLOCK_KEY: &[u8] = b"cofre v1 ebs block key\0";
const LABEL_BLOCK_AAD: &[u8] = b"cofre v1 ebs block\0";
/// Names of files being written, removed by `cofre gc` if a crash leaves them.
pub const TMP_PREFIX: &str = ".tmp-";

/// The BLAKE3 hash naming a stored block.
pub type BlockHash = [u8; 32];

/// True if `buf` is all zeros (such blocks are not stored).
pub fn is_zero(buf: &[u8]) -> bool {
    // OR whole pages (vectorized), and stop at the first page that is not zero.
    buf.chunks(4096).all(|page| {
        let words = page.chunks_exact(8);
        let tail = words.remainder();
        tail.iter().all(|&b| b == 0)
            && words
                .map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")))
                .fold(0, |acc, w| acc | w)
                == 0
    })
}

/// The folder of one region's blocks.
#[derive(Debug, Clone)]
pub struct BlockStore {
    dir: PathBuf,
}

/// How a block reached a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// It was there already.
    Present,
    /// Written (or copied) as new bytes.
    Written,
    /// Hard-linked from another store on the same filesystem.
    Linked,
}

impl BlockStore {
    /// The block store in `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        BlockStore { dir }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the block named `hash` lives.
    pub fn path(&self, hash: &BlockHash) -> PathBuf {
        let name = hex::encode(hash);
        self.dir.join(&name[..2]).join(name)
    }

    /// True if the block is present.
    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.path(hash).exists()
    }

    /// Stores `bytes` and returns their name. A block already present is not rewritten; a new
    /// one is written to a temporary name and renamed, so no partial block ever has a name.
    /// Not fsynced: the caller syncs the filesystem once before it publishes a record.
    pub fn put(&self, bytes: &[u8]) -> Result<(BlockHash, Placed)> {
        let hash = *blake3::hash(bytes).as_bytes();
        let path = self.path(&hash);
        if path.exists() {
            return Ok((hash, Placed::Present));
        }
        let sub = path.parent().expect("in a subfolder");
        let tmp = sub.join(format!(
            "{TMP_PREFIX}{}",
            hex::encode(crypto::random_array::<8>())
        ));
        let write = |tmp: &Path| -> std::io::Result<()> {
            let mut f = match create_private(tmp) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    crate::store::create_dir(sub).map_err(std::io::Error::other)?;
                    create_private(tmp)?
                }
                other => other?,
            };
            f.write_all(bytes)?;
            fs::rename(tmp, &path)
        };
        if let Err(e) = write(&tmp) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("writing block", &path, e));
        }
        Ok((hash, Placed::Written))
    }

    /// Reads the block named `hash` into `buf` and checks that its bytes still hash to its
    /// name.
    pub fn get(&self, hash: &BlockHash, buf: &mut Vec<u8>) -> Result<()> {
        let path = self.path(hash);
        buf.clear();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(buf))
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::StoreCorrupt(format!("block {} is missing", path.display()))
                } else {
                    Error::io("reading block", &path, e)
                }
            })?;
        if blake3::hash(buf).as_bytes() != hash {
            return Err(Error::StoreCorrupt(format!(
                "block {} does not match its hash",
                path.display()
            )));
        }
        Ok(())
    }

    /// Brings the block named `hash` over from `src`: nothing if present, a hard link when
    /// both stores share a filesystem, else a copy (to a temporary name, then renamed).
    pub fn transfer_from(&self, src: &BlockStore, hash: &BlockHash) -> Result<Placed> {
        let to = self.path(hash);
        let from = src.path(hash);
        let sub = to.parent().expect("in a subfolder");
        // One system call per block in the common case: link, and learn from its error
        // whether the block is there already or the subfolder is missing.
        let mut linked = fs::hard_link(&from, &to);
        if matches!(&linked, Err(e) if e.kind() == std::io::ErrorKind::NotFound) && !sub.exists() {
            crate::store::create_dir(sub)?;
            linked = fs::hard_link(&from, &to);
        }
        match linked {
            Ok(()) => return Ok(Placed::Linked),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(Placed::Present),
            Err(e) if e.raw_os_error() == Some(libc_exdev()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::StoreCorrupt(format!(
                    "block {} is missing",
                    from.display()
                )))
            }
            Err(e) => return Err(Error::io("linking block", &to, e)),
        }
        if to.exists() {
            return Ok(Placed::Present);
        }
        let tmp = sub.join(format!(
            "{TMP_PREFIX}{}",
            hex::encode(crypto::random_array::<8>())
        ));
        // Copied into a private file (fs::copy would take the source's mode).
        let copied = File::open(&from)
            .and_then(|mut src| std::io::copy(&mut src, &mut create_private(&tmp)?))
            .and_then(|_| fs::rename(&tmp, &to));
        if let Err(e) = copied {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("copying block", &to, e));
        }
        Ok(Placed::Written)
    }

    /// Opens the 256 subfolders of this store and of `src` once, for
    /// [`BlockStore::transfer_at`]: linking by name within an open folder skips resolving
    /// the whole path twice per block, which is most of a link's cost.
    pub fn open_pair(&self, src: &BlockStore) -> Result<FolderPair> {
        use rustix::fs::{open, Mode, OFlags};
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
        let mut pairs = Vec::with_capacity(256);
        for b in 0..=255u8 {
            let name = hex::encode([b]);
            let (s, d) = (src.dir.join(&name), self.dir.join(&name));
            let src_fd = match open(&s, flags, Mode::empty()) {
                Ok(fd) => Some(fd),
                Err(rustix::io::Errno::NOENT) => None,
                Err(e) => return Err(Error::io("opening", &s, e.into())),
            };
            // Only folders the source has can receive blocks.
            let dst_fd = match src_fd {
                Some(_) => {
                    crate::store::create_dir(&d)?;
                    Some(
                        open(&d, flags, Mode::empty())
                            .map_err(|e| Error::io("opening", &d, e.into()))?,
                    )
                }
                None => None,
            };
            pairs.push((src_fd, dst_fd));
        }
        Ok(FolderPair(pairs))
    }

    /// [`BlockStore::transfer_from`] with the folders opened by [`BlockStore::open_pair`]:
    /// one `linkat` per block on one filesystem.
    pub fn transfer_at(
        &self,
        src: &BlockStore,
        dirs: &FolderPair,
        hash: &BlockHash,
    ) -> Result<Placed> {
        use rustix::fs::{linkat, AtFlags};
        use rustix::io::Errno;
        let (Some(s), Some(d)) = &dirs.0[usize::from(hash[0])] else {
            return Err(Error::StoreCorrupt(format!(
                "block {} is missing",
                src.path(hash).display()
            )));
        };
        let name = hex::encode(hash);
        match linkat(s, &name, d, &name, AtFlags::empty()) {
            Ok(()) => Ok(Placed::Linked),
            Err(Errno::EXIST) => Ok(Placed::Present),
            Err(Errno::NOENT) => Err(Error::StoreCorrupt(format!(
                "block {} is missing",
                src.path(hash).display()
            ))),
            // Another filesystem (or anything unusual): the general path copies.
            Err(_) => self.transfer_from(src, hash),
        }
    }

    /// Removes a block (gone already is fine).
    pub fn remove(&self, hash: &BlockHash) -> Result<()> {
        let path = self.path(hash);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("removing block", &path, e))
            }
            _ => Ok(()),
        }
    }

    /// How many blocks (files named by a hash) the store holds; temporary files not counted.
    pub fn count(&self) -> Result<u64> {
        Ok(self.scan()?.iter().filter(|e| e.is_ok()).count() as u64)
    }

    /// Every file in the store: `Ok(hash)` for a block name, `Err(path)` for anything else
    /// (temporary files a crash left behind).
    pub fn scan(&self) -> Result<Vec<std::result::Result<BlockHash, PathBuf>>> {
        let mut out = Vec::new();
        let subs = match fs::read_dir(&self.dir) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("listing", &self.dir, e)),
        };
        for sub in subs {
            let sub = sub.map_err(|e| Error::io("listing", &self.dir, e))?.path();
            let files = fs::read_dir(&sub).map_err(|e| Error::io("listing", &sub, e))?;
            for f in files {
                let f = f.map_err(|e| Error::io("listing", &sub, e))?;
                let mut hash = [0u8; 32];
                let name = f.file_name();
                match name.to_str().map(|n| hex::decode_to_slice(n, &mut hash)) {
                    Some(Ok(())) => out.push(Ok(hash)),
                    _ => out.push(Err(f.path())),
                }
            }
        }
        Ok(out)
    }
}

/// The open subfolders of a source and a destination store, by first hash byte.
pub struct FolderPair(Vec<(Option<rustix::fd::OwnedFd>, Option<rustix::fd::OwnedFd>)>);

impl std::fmt::Debug for FolderPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FolderPair(..)")
    }
}

/// Creates a new file, readable and writable by its owner only (an unencrypted volume's
/// blocks are plaintext).
fn create_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// EXDEV: a hard link across filesystems.
fn libc_exdev() -> i32 {
    rustix::io::Errno::XDEV.raw_os_error()
}

/// Seals and opens the blocks of one lineage (one data key).
pub struct LineageCipher {
    data_key: SecretKey,
    lineage: String,
    backend: Backend,
}

impl std::fmt::Debug for LineageCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineageCipher")
            .field("lineage", &self.lineage)
            .finish_non_exhaustive()
    }
}

impl LineageCipher {
    /// A cipher for `lineage` under its data key.
    pub fn new(backend: Backend, data_key: SecretKey, lineage: &str) -> Self {
        LineageCipher {
            data_key,
            lineage: lineage.to_owned(),
            backend,
        }
    }

    fn block_key(&self, salt: &[u8]) -> AeadKey {
        let mut info = LABEL_BLOCK_KEY.to_vec();
        info.extend_from_slice(self.lineage.as_bytes());
        self.backend
            .aead(&self.backend.derive_key(salt, &self.data_key, &info))
    }

    /// The one place block nonces are made.
    fn nonce(index: u64) -> [u8; NONCE_LEN] {
        let mut n = [0u8; NONCE_LEN];
        n[..8].copy_from_slice(&index.to_be_bytes());
        n
    }

    fn aad(&self, index: u64) -> Vec<u8> {
        let mut a = LABEL_BLOCK_AAD.to_vec();
        a.extend_from_slice(self.lineage.as_bytes());
        a.push(0);
        a.extend_from_slice(&index.to_be_bytes());
        a
    }

    /// Seals one block of plaintext (exactly [`BLOCK_SIZE`] bytes) for index `index` into
    /// `out`, which becomes the stored bytes.
    pub fn seal(&self, index: u64, plain: &[u8], out: &mut Vec<u8>) {
        assert_eq!(plain.len(), BLOCK_SIZE, "a whole block");
        out.clear();
        out.resize(SALT_LEN, 0);
        out.extend_from_slice(plain);
        self.seal_stored(index, out);
    }

    /// Seals in place: `stored` holds [`SALT_LEN`] bytes of room, then the block's plaintext;
    /// on return it holds the stored bytes (salt, ciphertext, tag).
    pub fn seal_stored(&self, index: u64, stored: &mut Vec<u8>) {
        assert_eq!(
            stored.len(),
            SALT_LEN + BLOCK_SIZE,
            "room for the salt, then a block"
        );
        let salt: [u8; SALT_LEN] = crypto::random_array();
        stored[..SALT_LEN].copy_from_slice(&salt);
        let tag = self.block_key(&salt).seal_in_place(
            &Self::nonce(index),
            &self.aad(index),
            &mut stored[SALT_LEN..],
        );
        stored.extend_from_slice(&tag);
    }

    /// Opens stored bytes of block `index` into `out` ([`BLOCK_SIZE`] bytes).
    pub fn open(&self, index: u64, stored: &[u8], out: &mut [u8]) -> Result<()> {
        let bad = || {
            Error::StoreCorrupt(format!(
                "block {index} of lineage {} failed authentication",
                self.lineage
            ))
        };
        if stored.len() != SEALED_BLOCK_LEN || out.len() != BLOCK_SIZE {
            return Err(bad());
        }
        let (salt, rest) = stored.split_at(SALT_LEN);
        let (ct, tag) = rest.split_at(BLOCK_SIZE);
        self.block_key(salt)
            .open(
                &Self::nonce(index),
                &self.aad(index),
                ct,
                tag.try_into().expect("16 bytes"),
                out,
            )
            .map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_blocks_open_only_at_their_index_and_lineage() {
        let key = SecretKey::random();
        let b = Backend::default();
        let c = LineageCipher::new(b, SecretKey::from_bytes(*key.expose()), "dek-0");
        let plain = vec![7u8; BLOCK_SIZE];
        let (mut s1, mut s2) = (Vec::new(), Vec::new());
        c.seal(3, &plain, &mut s1);
        c.seal(3, &plain, &mut s2);
        assert_eq!(s1.len(), SEALED_BLOCK_LEN);
        assert_ne!(s1, s2, "a fresh salt each time");
        let mut out = vec![0u8; BLOCK_SIZE];
        c.open(3, &s1, &mut out).unwrap();
        assert_eq!(out, plain);
        assert!(c.open(4, &s1, &mut out).is_err(), "moved to another index");
        let other = LineageCipher::new(b, key, "dek-1");
        assert!(other.open(3, &s1, &mut out).is_err(), "another lineage");
        s1[100] ^= 1;
        assert!(c.open(3, &s1, &mut out).is_err(), "flipped byte");
    }

    #[test]
    fn store_names_blocks_by_hash_and_catches_damage() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlockStore::new(dir.path().join("blocks"));
        let (h, placed) = s.put(b"hello").unwrap();
        assert_eq!(placed, Placed::Written);
        assert_eq!(s.put(b"hello").unwrap(), (h, Placed::Present));
        let mut buf = Vec::new();
        s.get(&h, &mut buf).unwrap();
        assert_eq!(buf, b"hello");
        fs::write(s.path(&h), b"hellp").unwrap();
        assert!(matches!(s.get(&h, &mut buf), Err(Error::StoreCorrupt(_))));
        assert!(is_zero(&[0u8; 1000]) && !is_zero(&[0, 0, 1]));
    }
}
