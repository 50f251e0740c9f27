//! Multi-Region keys (../shared/reference/kms-ebs.md §7): one `mrk-` key id in several regions,
//! sharing every material version; description, tags, aliases and enabled state stay
//! independent per region. Rotation runs on the primary and reaches every replica. A file
//! wrapped under the key in one region opens in any region holding a replica.
//!
//! Locks: replication and role changes take one region lock at a time. Rotation of a primary
//! holds the primary's lock while it takes each replica's; replicas never rotate on their own,
//! so no two processes wait on each other's regions.

use super::{key_arn, KeyRef, Kms};
use crate::error::{Error, KmsCode, Result};
use crate::keyring::{
    KeyMetadata, KeyRecord, KeyState, MaterialVersion, MultiRegionConfiguration,
    MultiRegionKeyType, Region, RegionalKey,
};

fn config(record: &KeyRecord) -> Result<&MultiRegionConfiguration> {
    record
        .key_metadata
        .multi_region_configuration
        .as_ref()
        .ok_or_else(|| {
            Error::kms(
                KmsCode::UnsupportedOperationException,
                format!(
                    "{} is a single-Region key and can't be replicated; create a multi-Region key with `cofre key create --multi-region`",
                    record.key_metadata.arn
                ),
            )
        })
}

fn require_primary(record: &KeyRecord) -> Result<&MultiRegionConfiguration> {
    let c = config(record)?;
    if c.multi_region_key_type != MultiRegionKeyType::Primary {
        return Err(Error::kms(
            KmsCode::UnsupportedOperationException,
            format!(
                "{} is a replica; run this in the primary key's region, {}",
                record.key_metadata.arn, c.primary_key.region
            ),
        ));
    }
    Ok(c)
}

impl Kms {
    /// `version` of the key `from_arn`, re-sealed for the same key in another region (sealed
    /// material binds the key ARN).
    fn reseal(
        &self,
        from_arn: &str,
        to_arn: &str,
        version: &MaterialVersion,
    ) -> Result<MaterialVersion> {
        let material = self.home.open_material(from_arn, version)?;
        Ok(MaterialVersion {
            sealed: self
                .home
                .seal_material(to_arn, &version.key_material_id, &material),
            ..version.clone()
        })
    }

    /// ReplicateKey: a replica of this region's multi-Region primary key in `to`, with the same
    /// id and every material version.
    pub fn replicate_key(&self, key: &KeyRef, to: &Region) -> Result<KeyMetadata> {
        let store = self.store()?;
        let primary = self.resolve(&store, key, false)?;
        require_primary(&primary)?;
        if to == &self.region {
            return Err(Error::kms(
                KmsCode::ValidationException,
                format!(
                    "{} is already in {to}; replicate it to another region",
                    primary.key_metadata.arn
                ),
            ));
        }
        let id = primary.key_metadata.key_id.clone();
        let replica_arn = key_arn(to.as_str(), self.home.account_id(), &id);
        let target = self.home.region(to)?;
        {
            let _lock = target.lock()?;
            if target.load_key(&id)?.is_some() {
                return Err(Error::kms(
                    KmsCode::AlreadyExistsException,
                    format!("{id} already has a replica in {to}"),
                ));
            }
            let m = &primary.key_metadata;
            let materials = primary
                .materials
                .iter()
                .map(|v| self.reseal(&m.arn, &replica_arn, v))
                .collect::<Result<Vec<_>>>()?;
            let mut replica = KeyRecord {
                key_metadata: KeyMetadata {
                    arn: replica_arn.clone(),
                    creation_date: crate::store::format_time(crate::store::now()),
                    description: String::new(),
                    deletion_date: None,
                    pending_deletion_window_in_days: None,
                    multi_region_configuration: Some(MultiRegionConfiguration {
                        multi_region_key_type: MultiRegionKeyType::Replica,
                        primary_key: RegionalKey {
                            arn: m.arn.clone(),
                            region: self.region.to_string(),
                        },
                        replica_keys: Vec::new(),
                    }),
                    ..m.clone()
                },
                tags: Vec::new(),
                materials,
                rotation: primary.rotation.clone(),
            };
            replica.set_state(KeyState::Enabled);
            target.save_key(&replica)?;
        }
        let _lock = store.lock()?;
        let mut primary = self.resolve(&store, key, false)?;
        if let Some(c) = primary.key_metadata.multi_region_configuration.as_mut() {
            c.replica_keys.push(RegionalKey {
                arn: replica_arn,
                region: to.to_string(),
            });
        }
        store.save_key(&primary)?;
        Ok(target.load_key(&id)?.expect("just saved").key_metadata)
    }

    /// Copies the newest material version (and the rotation schedule) of a primary to every
    /// replica. Called with the primary's region lock held.
    pub(super) fn sync_replicas(&self, primary: &KeyRecord) -> Result<()> {
        let Some(c) = &primary.key_metadata.multi_region_configuration else {
            return Ok(());
        };
        if c.multi_region_key_type != MultiRegionKeyType::Primary {
            return Ok(());
        }
        for r in &c.replica_keys {
            let target = self.home.region(&Region::new(&r.region)?)?;
            let _lock = target.lock()?;
            let Some(mut replica) = target.load_key(&primary.key_metadata.key_id)? else {
                continue;
            };
            for v in &primary.materials {
                if replica.material(&v.key_material_id).is_none() {
                    let v = self.reseal(&primary.key_metadata.arn, &r.arn, v)?;
                    replica.materials.push(v);
                }
            }
            replica.key_metadata.current_key_material_id =
                primary.key_metadata.current_key_material_id.clone();
            replica.rotation = primary.rotation.clone();
            target.save_key(&replica)?;
        }
        Ok(())
    }

    /// UpdatePrimaryRegion: the replica in `to` becomes the primary, and this key a replica.
    pub fn update_primary_region(&self, key: &KeyRef, to: &Region) -> Result<KeyMetadata> {
        let store = self.store()?;
        let old = self.resolve(&store, key, false)?;
        let c = require_primary(&old)?.clone();
        let Some(new_primary) = c
            .replica_keys
            .iter()
            .find(|r| r.region == to.as_str())
            .cloned()
        else {
            return Err(Error::kms(
                KmsCode::NotFoundException,
                format!(
                    "{} has no replica in {to}; replicate it there first",
                    old.key_metadata.arn
                ),
            ));
        };
        let old_primary = c.primary_key.clone();
        let replicas: Vec<RegionalKey> = c
            .replica_keys
            .iter()
            .filter(|r| r.region != to.as_str())
            .cloned()
            .chain(std::iter::once(old_primary))
            .collect();
        // Every key of the set learns its new role, one region lock at a time; the new primary
        // first, so that a crash midway leaves a primary in charge.
        let id = old.key_metadata.key_id.clone();
        let mut order = vec![new_primary.clone()];
        order.extend(replicas.iter().cloned());
        for k in &order {
            let s = self.home.region(&Region::new(&k.region)?)?;
            let _lock = s.lock()?;
            let Some(mut rec) = s.load_key(&id)? else {
                continue;
            };
            let is_primary = k.region == new_primary.region;
            rec.key_metadata.multi_region_configuration = Some(MultiRegionConfiguration {
                multi_region_key_type: if is_primary {
                    MultiRegionKeyType::Primary
                } else {
                    MultiRegionKeyType::Replica
                },
                primary_key: new_primary.clone(),
                replica_keys: if is_primary {
                    replicas.clone()
                } else {
                    Vec::new()
                },
            });
            s.save_key(&rec)?;
        }
        Ok(self.resolve(&store, key, false)?.key_metadata)
    }
}
