//! Multi-Region keys (../shared/reference/kms-ebs.md §7): one `mrk-` key id in several regions,
//! sharing every material version; description, tags, aliases and enabled state stay
//! independent per region. Rotation runs on the primary and reaches every replica. A file
//! wrapped under the key in one region opens in any region holding a replica.
//!
//! Locks: nothing here holds two region locks at once. A replica is brought up to date by
//! pulling from its primary under the replica's own lock — after every change on the primary
//! (once the primary's lock is released), and whenever the replica's region is opened, which
//! also repairs a sync cut short by a crash. Replicas never rotate on their own.

use super::Call;
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
        let material = self.home.open_material_bytes(from_arn, version)?;
        Ok(MaterialVersion {
            sealed: self
                .home
                .seal_material_bytes(to_arn, &version.key_material_id, &material),
            ..version.clone()
        })
    }

    /// ReplicateKey: a replica of this region's multi-Region primary key in `to`, with the same
    /// id and every material version.
    pub fn replicate_key(
        &self,
        key: &KeyRef,
        to: &Region,
    ) -> Result<crate::api::kms::ReplicateKeyResponse> {
        self.audited(
            Call::new("ReplicateKey", false)
                .key(key)
                .param("replicaRegion", to.as_str()),
            |call| {
                let store = self.store()?;
                let primary = self.resolve(&store, key, false, call)?;
                require_primary(&primary)?;
                if primary.key_metadata.key_state == KeyState::PendingDeletion {
                    return Err(super::invalid_state(
                        &primary.key_metadata.arn,
                        KeyState::PendingDeletion,
                    ));
                }
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
                            creation_date: crate::store::format_time(self.home.now()),
                            description: String::new(),
                            deletion_date: None,
                            pending_deletion_window_in_days: None,
                            multi_region_configuration: Some(MultiRegionConfiguration {
                                multi_region_key_type: MultiRegionKeyType::Replica,
                                primary_key: RegionalKey {
                                    arn: m.arn.clone(),
                                    region: self.region.to_string(),
                                },
                                // Every replica of the set, this one included.
                                replica_keys: m
                                    .multi_region_configuration
                                    .iter()
                                    .flat_map(|c| c.replica_keys.iter().cloned())
                                    .chain(std::iter::once(RegionalKey {
                                        arn: replica_arn.clone(),
                                        region: to.to_string(),
                                    }))
                                    .collect(),
                            }),
                            ..m.clone()
                        },
                        tags: Vec::new(),
                        materials,
                        rotation: primary.rotation.clone(),
                        primary_epoch: primary.primary_epoch,
                        // Replicas share id and material, not policy.
                        policy: None,
                        grants: Vec::new(),
                        public_key: primary.public_key.clone(),
                    };
                    replica.set_state(KeyState::Enabled);
                    target.save_key(&replica)?;
                }
                let primary = {
                    let _lock = store.lock()?;
                    let mut primary = self.resolve(&store, key, false, call)?;
                    if let Some(c) = primary.key_metadata.multi_region_configuration.as_mut() {
                        c.replica_keys.push(RegionalKey {
                            arn: replica_arn,
                            region: to.to_string(),
                        });
                    }
                    store.save_key(&primary)?;
                    primary
                };
                // A rotation between the copy above and the registration reaches the replica here.
                self.sync_replicas(&primary)?;
                let replica = target.load_key(&id)?.expect("just saved");
                Ok(crate::api::kms::ReplicateKeyResponse {
                    replica_policy: self.policy_text(&replica),
                    replica_tags: replica.tags,
                    replica_key_metadata: replica.key_metadata,
                })
            },
        )
    }

    /// Brings a replica up to date with its primary: every material version it lacks, the
    /// current version and the rotation settings. Reads the primary without its lock (key
    /// files are replaced atomically) and writes the replica, whose region lock the caller
    /// holds. Idempotent. Returns whether the replica changed.
    pub(super) fn pull_from_primary(&self, replica: &mut KeyRecord) -> Result<bool> {
        let Some(c) = &replica.key_metadata.multi_region_configuration else {
            return Ok(false);
        };
        if c.multi_region_key_type != MultiRegionKeyType::Replica {
            return Ok(false);
        }
        let primary_store = self.home.region(&Region::new(&c.primary_key.region)?)?;
        let Some(primary) = primary_store.load_key(&replica.key_metadata.key_id)? else {
            return Ok(false);
        };
        let mut changed = false;
        for v in &primary.materials {
            if replica.material(&v.key_material_id).is_none() {
                let v = self.reseal(&primary.key_metadata.arn, &replica.key_metadata.arn, v)?;
                replica.materials.push(v);
                changed = true;
            }
        }
        let current = &primary.key_metadata.current_key_material_id;
        if &replica.key_metadata.current_key_material_id != current {
            replica.key_metadata.current_key_material_id = current.clone();
            changed = true;
        }
        if replica.rotation != primary.rotation {
            replica.rotation = primary.rotation.clone();
            changed = true;
        }
        // As in KMS, a replica lists every replica of its key set, itself included.
        let siblings = primary
            .key_metadata
            .multi_region_configuration
            .as_ref()
            .map(|p| p.replica_keys.clone())
            .unwrap_or_default();
        if let Some(c) = replica.key_metadata.multi_region_configuration.as_mut() {
            if c.replica_keys != siblings {
                c.replica_keys = siblings;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Finishes an UpdatePrimaryRegion a crash cut short, from this key's side. It walks the
    /// key set (every region any record of it names) and finds the key that claims to be
    /// primary at the latest epoch; if that is newer than what this record knows, this record
    /// becomes its replica. Returns whether the record changed.
    pub(super) fn repair_roles(&self, record: &mut KeyRecord) -> Result<bool> {
        let id = record.key_metadata.key_id.clone();
        if record.key_metadata.multi_region_configuration.is_none() {
            return Ok(false);
        }
        let named = |r: &KeyRecord| -> Vec<String> {
            r.key_metadata
                .multi_region_configuration
                .iter()
                .flat_map(|c| {
                    std::iter::once(c.primary_key.region.clone())
                        .chain(c.replica_keys.iter().map(|k| k.region.clone()))
                })
                .collect()
        };
        let mut todo = named(record);
        let mut seen = std::collections::BTreeSet::new();
        let mut best: Option<KeyRecord> = None;
        while let Some(region) = todo.pop() {
            if region == self.region.as_str() || !seen.insert(region.clone()) {
                continue;
            }
            let Some(other) = self.home.region(&Region::new(&region)?)?.load_key(&id)? else {
                continue;
            };
            todo.extend(named(&other));
            let primary = other
                .key_metadata
                .multi_region_configuration
                .as_ref()
                .is_some_and(|c| c.multi_region_key_type == MultiRegionKeyType::Primary);
            if primary
                && best
                    .as_ref()
                    .is_none_or(|b| other.primary_epoch > b.primary_epoch)
            {
                best = Some(other);
            }
        }
        let Some(primary) = best.filter(|b| b.primary_epoch > record.primary_epoch) else {
            return Ok(false);
        };
        let pc = primary
            .key_metadata
            .multi_region_configuration
            .as_ref()
            .expect("a primary has a configuration");
        record.key_metadata.multi_region_configuration = Some(MultiRegionConfiguration {
            multi_region_key_type: MultiRegionKeyType::Replica,
            primary_key: pc.primary_key.clone(),
            replica_keys: pc.replica_keys.clone(),
        });
        record.primary_epoch = primary.primary_epoch;
        Ok(true)
    }

    /// Drops from a primary's replica list the replicas that have been deleted: their region
    /// no longer holds the key, or holds it pending deletion with its deletion date passed (it
    /// is destroyed when its region is next opened; it was deleted, as KMS counts, then).
    /// Returns when the last of the dropped replicas was deleted (its tombstone's or record's
    /// deletion date; `now` if neither says), or None if none was dropped. Reads other regions
    /// without their locks: a replica's existence and deletion date are all it looks at.
    pub(super) fn prune_replicas(
        &self,
        primary: &mut KeyRecord,
        now: std::time::SystemTime,
    ) -> Result<Option<std::time::SystemTime>> {
        let id = primary.key_metadata.key_id.clone();
        let Some(c) = primary
            .key_metadata
            .multi_region_configuration
            .as_mut()
            .filter(|c| c.multi_region_key_type == MultiRegionKeyType::Primary)
        else {
            return Ok(None);
        };
        let date = |d: Option<&str>| d.and_then(|d| crate::store::parse_time(d).ok());
        let mut kept = Vec::new();
        let mut last_gone: Option<std::time::SystemTime> = None;
        for r in c.replica_keys.drain(..) {
            let s = self.home.region(&Region::new(&r.region)?)?;
            let gone_at = match s.load_key(&id)? {
                Some(rec) if rec.key_metadata.key_state == KeyState::PendingDeletion => {
                    date(rec.key_metadata.deletion_date.as_deref()).filter(|d| *d <= now)
                }
                Some(_) => None,
                None => Some(
                    date(s.tombstone(&id).as_ref().map(|t| t.deletion_date.as_str()))
                        .unwrap_or(now),
                ),
            };
            match gone_at {
                Some(t) => last_gone = Some(last_gone.map_or(t, |l| l.max(t))),
                None => kept.push(r),
            }
        }
        c.replica_keys = kept;
        Ok(last_gone)
    }

    /// Pushes a primary's versions and rotation settings to every replica, one region lock at
    /// a time. Callers must not hold any region lock.
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
            if let Some(mut replica) = target.load_key(&primary.key_metadata.key_id)? {
                if self.pull_from_primary(&mut replica)? {
                    target.save_key(&replica)?;
                }
            }
        }
        Ok(())
    }

    /// UpdatePrimaryRegion: the replica in `to` becomes the primary, and this key a replica.
    pub fn update_primary_region(&self, key: &KeyRef, to: &Region) -> Result<KeyMetadata> {
        self.audited(
            Call::new("UpdatePrimaryRegion", false)
                .key(key)
                .param("primaryRegion", to.as_str()),
            |call| {
                let store = self.store()?;
                let old = self.resolve(&store, key, false, call)?;
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
                // first, so that a crash midway leaves a primary in charge. Each gets the next epoch:
                // a key a crash left with the old epoch is repaired by `repair_roles`.
                let epoch = old.primary_epoch + 1;
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
                        // A replica lists every replica of the set, itself included, as
                        // the primary does.
                        replica_keys: replicas.clone(),
                    });
                    rec.primary_epoch = epoch;
                    s.save_key(&rec)?;
                }
                Ok(self.resolve(&store, key, false, call)?.key_metadata)
            },
        )
    }
}
