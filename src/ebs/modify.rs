//! ModifyVolume: a volume grows (never shrinks) and may change type; no data moves, the
//! block map just covers more blocks, all zeros.

use super::volume::{blocks_for, check_size};
use super::{not_found, Ebs, Volume, VolumeType};
use crate::error::{Ec2Code, Error, Result};
use crate::kms::Call;

impl Ebs<'_> {
    /// ModifyVolume of volume `id` to `size` bytes (at least its size) and `volume_type`
    /// (each unchanged if `None`). Refused while a session has the volume attached.
    pub fn modify_volume(
        &self,
        id: &str,
        size: Option<u64>,
        volume_type: Option<VolumeType>,
    ) -> Result<(Volume, Volume)> {
        self.kms.audited(
            Call::ec2("ModifyVolume", false)
                .param("volumeId", id)
                .param("size", size.map(|s| s.div_ceil(1 << 30)))
                .param("volumeType", volume_type),
            |_| {
                super::check_id(id, "vol-", "volume")?;
                if size.is_none() && volume_type.is_none() {
                    return Err(Error::ec2(
                        Ec2Code::MissingParameter,
                        "ModifyVolume needs Size or VolumeType",
                    ));
                }
                let _writing = self.region.writing()?;
                let _lock = self.region.lock()?;
                let _attached = self.region.not_attached(id)?;
                let mut head = self.region.load_head()?;
                let old = head
                    .volumes
                    .get(id)
                    .cloned()
                    .ok_or_else(|| not_found("volume", id, self.kms.region()))?;
                let new_size = size.unwrap_or(old.size_bytes);
                let new_type = volume_type.unwrap_or(old.volume_type);
                if new_size < old.size_bytes {
                    return Err(Error::ec2(
                        Ec2Code::InvalidParameterValue,
                        format!(
                            "New size cannot be smaller than existing size: {id} is {} GiB; volumes only grow",
                            old.size_bytes.div_ceil(1 << 30)
                        ),
                    ));
                }
                check_size(new_size, new_type, true)?;
                let mut map = self.region.load_map(&old.map)?;
                let stored = map.blocks.len() as u64;
                map.block_count = blocks_for(new_size);
                let mut new = old.clone();
                new.size_bytes = new_size;
                new.volume_type = new_type;
                new.map = self.region.save_map(&map)?;
                head.volumes.insert(id.to_owned(), new.clone());
                self.region.save_head(&mut head)?;
                Ok((self.describe(&old, stored), self.describe(&new, stored)))
            },
        )
    }
}
