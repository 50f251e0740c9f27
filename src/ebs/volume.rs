//! Volumes: create (empty, from a raw image, from a snapshot), describe, read, write, export,
//! delete.

use super::block::{is_zero, BlockHash, SALT_LEN};
use super::{new_id, not_found, BlockMap, Ebs, Head, OpenLineage, VolumeRecord, BLOCK_SIZE};
use crate::envelope::Progress;
use crate::error::{Ec2Code, Error, Result};
use crate::kms::Call;
use crate::kms::KeyRef;
use crate::store::{self, OutputFile};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

const GIB: u64 = 1 << 30;
/// Blocks a `volume write` seals in parallel at a time (32 MiB).
const WRITE_BATCH: usize = 64;

/// EBS volume types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    Standard,
    Io1,
    Io2,
    Gp2,
    Sc1,
    St1,
    Gp3,
}

impl VolumeType {
    /// Sizes EC2 accepts, in GiB.
    pub fn size_range_gib(self) -> (u64, u64) {
        match self {
            VolumeType::Gp2 => (1, 16_384),
            VolumeType::Gp3 => (1, 65_536),
            VolumeType::Io1 => (4, 16_384),
            VolumeType::Io2 => (4, 65_536),
            VolumeType::St1 | VolumeType::Sc1 => (125, 16_384),
            VolumeType::Standard => (1, 1_024),
        }
    }

    fn name(self) -> &'static str {
        match self {
            VolumeType::Standard => "standard",
            VolumeType::Io1 => "io1",
            VolumeType::Io2 => "io2",
            VolumeType::Gp2 => "gp2",
            VolumeType::Sc1 => "sc1",
            VolumeType::St1 => "st1",
            VolumeType::Gp3 => "gp3",
        }
    }
}

/// Where a new volume's data comes from.
#[derive(Debug, Clone)]
pub enum VolumeSource {
    /// All zeros, of this many bytes.
    Empty(u64),
    /// A raw disk image (regular file or block device); the volume takes its exact size.
    Image(PathBuf),
    /// A snapshot of this region, optionally grown to this many bytes.
    Snapshot { id: String, size: Option<u64> },
}

/// What CreateVolume takes.
#[derive(Debug, Clone)]
pub struct CreateVolumeRequest {
    pub source: VolumeSource,
    /// Encrypted=true.
    pub encrypted: bool,
    /// KmsKeyId (needs `encrypted`).
    pub kms_key: Option<KeyRef>,
    pub volume_type: VolumeType,
    /// TagSpecifications (checked with [`super::check_tags`]).
    pub tags: BTreeMap<String, String>,
    /// No progress bar.
    pub quiet: bool,
}

/// Blocks needed for `bytes`.
pub fn blocks_for(bytes: u64) -> u64 {
    bytes.div_ceil(BLOCK_SIZE as u64)
}

/// A volume as DescribeVolumes shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub volume_id: String,
    /// GiB, rounded up.
    pub size: u64,
    /// Exact bytes (cofre's own field).
    pub size_bytes: u64,
    pub state: &'static str,
    pub encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    pub snapshot_id: String,
    pub create_time: String,
    pub volume_type: &'static str,
    pub availability_zone: String,
    /// Blocks stored (not all zeros), cofre's own field.
    pub stored_blocks: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl Ebs<'_> {
    /// CreateVolume. Returns the new volume.
    pub fn create_volume(&self, req: &CreateVolumeRequest) -> Result<Volume> {
        self.kms.audited(Call::ec2("CreateVolume", false).param("encrypted", req.encrypted).param("kmsKeyId", req.kms_key.as_ref().map(|k| k.to_string())).param("volumeType", req.volume_type), |_| {
        if req.kms_key.is_some() && !req.encrypted {
            return Err(Error::ec2(
                Ec2Code::InvalidParameterDependency,
                "--kms-key needs --encrypted (as KmsKeyId needs Encrypted=true)",
            ));
        }
        super::check_tags(&req.tags)?;
        let volume_id = new_id("vol-");
        // Held from before the head is read: a snapshot this restores cannot lose its blocks
        // to a concurrent delete until the new volume names them.
        let _writing = self.region.writing()?;
        let head = self.region.load_head()?;
        let want_key = |head: &Head| -> Result<Option<KeyRef>> {
            Ok(if req.encrypted || head.encryption_by_default {
                Some(self.key_for_new_lineage(head, req.kms_key.as_ref())?)
            } else {
                None
            })
        };
        let (size, lineage, map, snapshot_id) = match &req.source {
            VolumeSource::Empty(size) => {
                check_size(*size, req.volume_type, false)?;
                let lineage = self.new_lineage(&volume_id, want_key(&head)?.as_ref())?;
                (*size, lineage, BlockMap::new(blocks_for(*size)), None)
            }
            VolumeSource::Image(path) => {
                let file = File::open(path).map_err(|e| Error::io("opening image", path, e))?;
                let size = image_size(&file, path)?;
                if size == 0 {
                    return Err(Error::usage(format!(
                        "image {} is empty; a volume needs at least one byte",
                        path.display()
                    )));
                }
                check_size(size, req.volume_type, true)?;
                let open =
                    self.open_lineage(&self.new_lineage(&volume_id, want_key(&head)?.as_ref())?)?;
                self.region.ensure_head()?;
                let progress = Progress::new("import", Some(size), req.quiet);
                let map = self.import(&file, size, &open, &progress)?;
                (size, open.lineage, map, None)
            }
            VolumeSource::Snapshot { id, size } => {
                let snap = head
                    .snapshots
                    .get(id)
                    .ok_or_else(|| not_found("snapshot", id, self.kms.region()))?;
                snap.check_completed()?;
                let size = size.unwrap_or(snap.volume_size_bytes);
                if size < snap.volume_size_bytes {
                    return Err(Error::ec2(
                        Ec2Code::InvalidParameterValue,
                        format!(
                            "size {} GiB is smaller than snapshot {id} ({} GiB); give at least its size",
                            size.div_ceil(GIB),
                            snap.volume_size_bytes.div_ceil(GIB)
                        ),
                    ));
                }
                check_size(size, req.volume_type, true)?;
                let mut map = self.region.load_map(&snap.map)?;
                let snap_key = snap.lineage.data_key.as_ref().map(|d| d.kms_key_id.clone());
                let key = match (&snap_key, want_key(&head)?) {
                    // Volumes from encrypted snapshots are always encrypted, by default
                    // under the snapshot's key.
                    (Some(k), None) => Some(k.parse()?),
                    (Some(k), Some(_)) if req.kms_key.is_none() => Some(k.parse()?),
                    (_, want) => want,
                };
                let same_key = match (&key, &snap_key) {
                    (None, None) => true,
                    (Some(k), Some(arn)) => &self.encryption_key_arn(k)? == arn,
                    _ => false,
                };
                let lineage = if same_key {
                    // Same key: same lineage, same blocks; nothing is copied.
                    snap.lineage.clone()
                } else {
                    // Another key, or encrypting a plaintext snapshot: a new data key and
                    // every block sealed again.
                    let from = self.open_lineage(&snap.lineage)?;
                    let to = self.open_lineage(&self.new_lineage(&volume_id, key.as_ref())?)?;
                    let progress = Progress::new(
                        "re-encrypt",
                        Some(map.blocks.len() as u64 * BLOCK_SIZE as u64),
                        req.quiet,
                    );
                    map = self.reseal(&map, &from, &to, &progress)?;
                    to.lineage
                };
                map.block_count = blocks_for(size);
                (size, lineage, map, Some(id.clone()))
            }
        };
        let map_hash = self.region.save_map(&map)?;
        let record = VolumeRecord {
            volume_id: volume_id.clone(),
            size_bytes: size,
            volume_type: req.volume_type,
            create_time: store::format_time(self.kms.home().now()),
            snapshot_id,
            lineage,
            map: map_hash,
            tags: req.tags.clone(),
        };
        self.region.update(|h| {
            h.volumes.insert(volume_id.clone(), record.clone());
            Ok(())
        })?;
        Ok(self.describe(&record, map.blocks.len() as u64))
            })
    }

    /// Seals a raw image into blocks, in parallel, and returns its map.
    fn import(
        &self,
        file: &File,
        size: u64,
        open: &OpenLineage,
        progress: &Progress,
    ) -> Result<BlockMap> {
        let n = blocks_for(size);
        let blocks = &self.region.blocks;
        let entries = (0..n)
            .into_par_iter()
            .map_init(
                || vec![0u8; SALT_LEN + BLOCK_SIZE],
                |buf, i| -> Result<Option<(u64, BlockHash)>> {
                    let off = i * BLOCK_SIZE as u64;
                    let len = (size - off).min(BLOCK_SIZE as u64) as usize;
                    buf.truncate(SALT_LEN + BLOCK_SIZE);
                    let plain = &mut buf[SALT_LEN..];
                    plain[len..].fill(0);
                    file.read_exact_at(&mut plain[..len], off)
                        .map_err(|e| Error::Io {
                            what: format!("reading the image at byte {off}"),
                            source: e,
                        })?;
                    progress.inc(len as u64);
                    if is_zero(plain) {
                        return Ok(None);
                    }
                    let (h, _) = match &open.cipher {
                        Some(c) => {
                            c.seal_stored(i, buf);
                            blocks.put(buf)?
                        }
                        None => blocks.put(&buf[SALT_LEN..])?,
                    };
                    Ok(Some((i, h)))
                },
            )
            .filter_map(Result::transpose)
            .collect::<Result<Vec<_>>>()?;
        let mut map = BlockMap::new(n);
        map.blocks.extend(entries);
        Ok(map)
    }

    /// Opens every block of `map` under `from` and seals it under `to` (new stored blocks).
    pub(crate) fn reseal(
        &self,
        map: &BlockMap,
        from: &OpenLineage,
        to: &OpenLineage,
        progress: &Progress,
    ) -> Result<BlockMap> {
        let src_blocks = &self.region.blocks;
        self.reseal_from(src_blocks, map, from, to, progress)
    }

    /// [`Ebs::reseal`] reading blocks from `src` (another region's store, for copies).
    pub(crate) fn reseal_from(
        &self,
        src: &super::BlockStore,
        map: &BlockMap,
        from: &OpenLineage,
        to: &OpenLineage,
        progress: &Progress,
    ) -> Result<BlockMap> {
        let dst = &self.region.blocks;
        let entries = map
            .blocks
            .par_iter()
            .map_init(
                || (Vec::new(), vec![0u8; SALT_LEN + BLOCK_SIZE]),
                |(stored, buf), (&i, h)| -> Result<(u64, BlockHash)> {
                    // The previous block's seal left its tag at the end.
                    buf.truncate(SALT_LEN + BLOCK_SIZE);
                    read_block(src, from, i, Some(h), stored, &mut buf[SALT_LEN..])?;
                    progress.inc(BLOCK_SIZE as u64);
                    let (h, _) = match &to.cipher {
                        Some(c) => {
                            c.seal_stored(i, buf);
                            dst.put(buf)?
                        }
                        None => dst.put(&buf[SALT_LEN..])?,
                    };
                    Ok((i, h))
                },
            )
            .collect::<Result<Vec<_>>>()?;
        let mut out = BlockMap::new(map.block_count);
        out.blocks.extend(entries);
        Ok(out)
    }

    /// The record of volume `id`.
    pub fn volume_record(&self, id: &str) -> Result<VolumeRecord> {
        super::check_id(id, "vol-", "volume")?;
        self.region
            .load_head()?
            .volumes
            .get(id)
            .cloned()
            .ok_or_else(|| not_found("volume", id, self.kms.region()))
    }

    pub(crate) fn describe(&self, r: &VolumeRecord, stored_blocks: u64) -> Volume {
        Volume {
            volume_id: r.volume_id.clone(),
            size: r.size_bytes.div_ceil(GIB),
            size_bytes: r.size_bytes,
            state: "available",
            encrypted: r.lineage.data_key.is_some(),
            kms_key_id: r.lineage.data_key.as_ref().map(|d| d.kms_key_id.clone()),
            snapshot_id: r.snapshot_id.clone().unwrap_or_default(),
            create_time: r.create_time.clone(),
            volume_type: r.volume_type.name(),
            availability_zone: format!("{}a", self.kms.region()),
            stored_blocks,
            tags: r.tags.clone(),
        }
    }

    /// DescribeVolumes for one volume.
    pub fn describe_volume(&self, id: &str) -> Result<Volume> {
        self.kms.audited(
            Call::ec2("DescribeVolumes", true).param("volumeId", id),
            |_| {
                let r = self.volume_record(id)?;
                let map = self.region.load_map(&r.map)?;
                Ok(self.describe(&r, map.blocks.len() as u64))
            },
        )
    }

    /// DescribeVolumes for all.
    pub fn list_volumes(&self) -> Result<Vec<Volume>> {
        self.kms.audited(Call::ec2("DescribeVolumes", true), |_| {
            let head = self.region.load_head()?;
            head.volumes
                .values()
                .map(|r| Ok(self.describe(r, self.region.load_map(&r.map)?.blocks.len() as u64)))
                .collect()
        })
    }

    /// DeleteVolume: the record goes, then every block nothing uses any more (including any
    /// an interrupted command left behind).
    pub fn delete_volume(&self, id: &str) -> Result<()> {
        self.kms.audited(
            Call::ec2("DeleteVolume", false).param("volumeId", id),
            |_| {
                super::check_id(id, "vol-", "volume")?;
                // Checked before the attach lock is taken, so that deleting what is not
                // there (or a damaged store) leaves no lock file behind.
                if !self.region.load_head()?.volumes.contains_key(id) {
                    return Err(not_found("volume", id, self.kms.region()));
                }
                let _attached = self.region.not_attached(id)?;
                let _removing = self.region.removing()?;
                self.region.update(|h| {
                    h.volumes
                        .remove(id)
                        .map(drop)
                        .ok_or_else(|| not_found("volume", id, self.kms.region()))
                })?;
                // Its attach lock goes with it (held here, so no session has it).
                self.region.forget_attach(id);
                self.collect_garbage().map(drop)
            },
        )
    }

    /// Reads `length` bytes at `offset` of volume `id` into `out`.
    pub fn read_volume(
        &self,
        id: &str,
        offset: u64,
        length: u64,
        out: &mut dyn Write,
    ) -> Result<()> {
        self.kms.audited(
            Call::ec2("ReadVolume", true)
                .param("volumeId", id)
                .param("offset", offset)
                .param("length", length),
            |_| {
                let r = self.volume_record(id)?;
                check_range(&r, offset, length)?;
                let open = self.open_lineage(&r.lineage)?;
                let map = self.region.load_map(&r.map)?;
                let (mut stored, mut block) = (Vec::new(), vec![0u8; BLOCK_SIZE]);
                let end = offset + length;
                let mut pos = offset;
                while pos < end {
                    let i = pos / BLOCK_SIZE as u64;
                    let start = (pos % BLOCK_SIZE as u64) as usize;
                    let take = ((end - pos) as usize).min(BLOCK_SIZE - start);
                    read_block(
                        &self.region.blocks,
                        &open,
                        i,
                        map.blocks.get(&i),
                        &mut stored,
                        &mut block,
                    )?;
                    out.write_all(&block[start..start + take])
                        .map_err(|e| Error::Io {
                            what: "writing output".into(),
                            source: e,
                        })?;
                    pos += take as u64;
                }
                out.flush().map_err(|e| Error::Io {
                    what: "writing output".into(),
                    source: e,
                })
            },
        )
    }

    /// Writes what `input` holds at `offset` of volume `id` (any alignment: partial blocks are
    /// read, changed and sealed again). The volume changes all at once when the input ends; a
    /// failure before leaves it as it was. Returns the bytes written.
    pub fn write_volume(&self, id: &str, offset: u64, input: &mut dyn Read) -> Result<u64> {
        self.kms.audited(
            Call::ec2("WriteVolume", false)
                .param("volumeId", id)
                .param("offset", offset),
            |_| {
                let written = self.write_volume_locked(id, offset, input)?;
                // The blocks and map this write replaced, unless a snapshot still names them.
                let _removing = self.region.removing()?;
                self.collect_garbage()?;
                Ok(written)
            },
        )
    }

    fn write_volume_locked(&self, id: &str, offset: u64, input: &mut dyn Read) -> Result<u64> {
        super::check_id(id, "vol-", "volume")?;
        let _writing = self.region.writing()?;
        let _lock = self.region.lock()?;
        // Tried under the region lock, so `volume write`s wait for each other and only an
        // attach makes one fail.
        let _attached = self.region.not_attached(id)?;
        let mut head = self.region.load_head()?;
        let r = head
            .volumes
            .get(id)
            .cloned()
            .ok_or_else(|| not_found("volume", id, self.kms.region()))?;
        if offset > r.size_bytes {
            return Err(Error::usage(format!(
                "offset {offset} is past the end of {id} ({} bytes)",
                r.size_bytes
            )));
        }
        let open = self.open_lineage(&r.lineage)?;
        let mut map = self.region.load_map(&r.map)?;
        let blocks = &self.region.blocks;
        let mut pos = offset;
        let mut done = false;
        while !done {
            // Gather a batch of blocks: each with its index and new plaintext.
            let mut batch: Vec<(u64, Vec<u8>)> = Vec::with_capacity(WRITE_BATCH);
            let mut stored = Vec::new();
            while batch.len() < WRITE_BATCH {
                let i = pos / BLOCK_SIZE as u64;
                let start = (pos % BLOCK_SIZE as u64) as usize;
                let mut block = vec![0u8; SALT_LEN + BLOCK_SIZE];
                let want = BLOCK_SIZE - start;
                let got = read_up_to(input, &mut block[SALT_LEN + start..])?;
                if got == 0 {
                    done = true;
                    break;
                }
                if pos + got as u64 > r.size_bytes {
                    return Err(Error::usage(format!(
                        "the input runs past the end of {id} ({} bytes) when written at offset {offset}; nothing was changed",
                        r.size_bytes
                    )));
                }
                if start != 0 || got < want {
                    // A partial block: keep the bytes around the new ones.
                    let mut old = vec![0u8; BLOCK_SIZE];
                    read_block(blocks, &open, i, map.blocks.get(&i), &mut stored, &mut old)?;
                    let p = &mut block[SALT_LEN..];
                    p[..start].copy_from_slice(&old[..start]);
                    p[start + got..].copy_from_slice(&old[start + got..]);
                }
                pos += got as u64;
                batch.push((i, block));
                if got < want {
                    done = true;
                    break;
                }
            }
            let sealed = batch
                .into_par_iter()
                .map(|(i, mut buf)| -> Result<(u64, Option<BlockHash>)> {
                    if is_zero(&buf[SALT_LEN..]) {
                        return Ok((i, None));
                    }
                    let (h, _) = match &open.cipher {
                        Some(c) => {
                            c.seal_stored(i, &mut buf);
                            blocks.put(&buf)?
                        }
                        None => blocks.put(&buf[SALT_LEN..])?,
                    };
                    Ok((i, Some(h)))
                })
                .collect::<Result<Vec<_>>>()?;
            for (i, h) in sealed {
                match h {
                    Some(h) => map.blocks.insert(i, h),
                    None => map.blocks.remove(&i),
                };
            }
        }
        let written = pos - offset;
        let map_hash = self.region.save_map(&map)?;
        head.volumes.get_mut(id).expect("present").map = map_hash;
        self.region.save_head(&mut head)?;
        Ok(written)
    }

    /// Writes volume `id` as a raw image to `path`. With `sparse`, zero blocks become holes.
    pub fn export_volume(
        &self,
        id: &str,
        path: &std::path::Path,
        sparse: bool,
        force: bool,
        quiet: bool,
    ) -> Result<()> {
        self.kms.audited(
            Call::ec2("ExportVolume", true).param("volumeId", id),
            |_| {
                let r = self.volume_record(id)?;
                let open = self.open_lineage(&r.lineage)?;
                let map = self.region.load_map(&r.map)?;
                let out = OutputFile::create(path, force)?;
                let file = out.file();
                file.set_len(r.size_bytes)
                    .map_err(|e| Error::io("sizing", path, e))?;
                let progress = Progress::new("export", Some(r.size_bytes), quiet);
                let blocks = &self.region.blocks;
                (0..blocks_for(r.size_bytes))
                    .into_par_iter()
                    .try_for_each_init(
                        || (Vec::new(), vec![0u8; BLOCK_SIZE]),
                        |(stored, buf), i| -> Result<()> {
                            let off = i * BLOCK_SIZE as u64;
                            let len = (r.size_bytes - off).min(BLOCK_SIZE as u64) as usize;
                            progress.inc(len as u64);
                            let entry = map.blocks.get(&i);
                            if entry.is_none() && sparse {
                                return Ok(());
                            }
                            read_block(blocks, &open, i, entry, stored, buf)?;
                            file.write_all_at(&buf[..len], off)
                                .map_err(|e| Error::io("writing", path, e))
                        },
                    )?;
                out.commit()
            },
        )
    }
}

/// Reads block `i` (stored as `entry`, or zeros) from `blocks` and opens it into `out`.
pub(crate) fn read_block(
    blocks: &super::BlockStore,
    open: &OpenLineage,
    i: u64,
    entry: Option<&BlockHash>,
    stored: &mut Vec<u8>,
    out: &mut [u8],
) -> Result<()> {
    let Some(h) = entry else {
        out.fill(0);
        return Ok(());
    };
    blocks.get(h, stored)?;
    match &open.cipher {
        Some(c) => c.open(i, stored, out),
        None if stored.len() == BLOCK_SIZE => {
            out.copy_from_slice(stored);
            Ok(())
        }
        None => Err(Error::StoreCorrupt(format!(
            "block {i} of lineage {} has the wrong length",
            open.lineage.id
        ))),
    }
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
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

fn image_size(file: &File, path: &std::path::Path) -> Result<u64> {
    use std::io::Seek;
    let meta = file.metadata().map_err(|e| Error::io("reading", path, e))?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    if std::os::unix::fs::FileTypeExt::is_block_device(&meta.file_type()) {
        let mut f = file;
        return f
            .seek(std::io::SeekFrom::End(0))
            .map_err(|e| Error::io("sizing", path, e));
    }
    Err(Error::usage(format!(
        "{} is not a regular file or block device; give a raw disk image",
        path.display()
    )))
}

pub(crate) fn check_size(bytes: u64, t: VolumeType, any_bytes: bool) -> Result<()> {
    let (min, max) = t.size_range_gib();
    let gib = bytes.div_ceil(GIB);
    if gib > max || (!any_bytes && gib < min) {
        return Err(Error::ec2(
            Ec2Code::InvalidParameterValue,
            format!(
                "a {} volume is {min}–{max} GiB; {gib} GiB is outside that",
                t.name()
            ),
        ));
    }
    Ok(())
}

fn check_range(r: &VolumeRecord, offset: u64, length: u64) -> Result<()> {
    if offset
        .checked_add(length)
        .is_none_or(|end| end > r.size_bytes)
    {
        return Err(Error::usage(format!(
            "bytes {offset}..{} are past the end of {} ({} bytes)",
            offset.saturating_add(length),
            r.volume_id,
            r.size_bytes
        )));
    }
    Ok(())
}
