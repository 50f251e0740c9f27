//! Key lifecycle: rotation (automatic and on demand, every version kept) and scheduled
//! deletion, with the KMS rules of ../shared/reference/kms-ebs.md §4–5.
//!
//! Automatic rotation needs no daemon: the first request a [`Kms`] serves in a region carries
//! out, under the region lock, every rotation and deletion that has come due by
//! [`store::now`] (which `COFRE_NOW` sets). A rotation missed for several periods is carried out
//! once per period, each dated when it was due, as a KMS that had been running would have.

use super::Call;
use super::{check_usable, invalid_state, KeyRef, Kms};
use crate::crypto::SecretKey;
use crate::error::{Error, KmsCode, Result};
use crate::keyring::{
    DeletedKey, KeyManager, KeyMetadata, KeyRecord, KeySpec, KeyState, MaterialVersion,
    MultiRegionKeyType, Origin, RegionStore, RotationType,
};
use crate::store;
use std::time::{Duration, SystemTime};

/// Most on-demand rotations per key (a KMS quota that cannot be raised).
pub const MAX_ON_DEMAND_ROTATIONS: u32 = 25;
/// Automatic rotation period bounds and default, in days.
pub const ROTATION_PERIOD_DAYS: (u32, u32, u32) = (90, 2560, 365);
/// Deletion waiting period bounds and default, in days.
pub const DELETION_WINDOW_DAYS: (u32, u32, u32) = (7, 30, 30);

/// What `GetKeyRotationStatus` returns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyRotationStatus {
    pub key_id: String,
    pub key_rotation_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_period_in_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation_date: Option<String>,
    pub on_demand_rotations: u32,
}

/// One material version as ListKeyRotations lists it (KMS `RotationsListEntry`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyVersion {
    pub key_id: String,
    pub key_material_id: String,
    /// When a rotation made it current; none for the original material and for imported
    /// material pending rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_date: Option<String>,
    /// AUTOMATIC or ON_DEMAND; none for the original material.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_type: Option<RotationType>,
    /// CURRENT, NON_CURRENT or (imported material) PENDING_ROTATION.
    pub key_material_state: &'static str,
    /// Imported material (origin EXTERNAL): IMPORTED, or PENDING_IMPORT while deleted or
    /// expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import_state: Option<&'static str>,
    /// Imported material: the description given at import.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_material_description: Option<String>,
    /// Imported material: KEY_MATERIAL_EXPIRES or KEY_MATERIAL_DOES_NOT_EXPIRE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_model: Option<String>,
    /// Imported material: when it expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
}

fn days(n: u32) -> Duration {
    Duration::from_secs(u64::from(n) * 86_400)
}

fn parse(date: &Option<String>) -> Option<SystemTime> {
    date.as_deref().and_then(|d| store::parse_time(d).ok())
}

/// `given` days (or the default) checked against `(low, high, default)`.
fn days_within((lo, hi, default): (u32, u32, u32), given: Option<u32>, what: &str) -> Result<u32> {
    let n = given.unwrap_or(default);
    if !(lo..=hi).contains(&n) {
        return Err(Error::kms(
            KmsCode::ValidationException,
            format!("{what} {n} days is out of range; give {lo} to {hi} days"),
        ));
    }
    Ok(n)
}

/// Only symmetric customer managed keys rotate, and a multi-Region key only through its
/// primary; automatically only with KMS-made material, on demand also with imported material
/// (`imported_ok`).
fn check_rotatable(m: &KeyMetadata, imported_ok: bool) -> Result<()> {
    if let Some(c) = &m.multi_region_configuration {
        if c.multi_region_key_type == MultiRegionKeyType::Replica {
            return Err(Error::kms(
                KmsCode::UnsupportedOperationException,
                format!(
                    "{} is a multi-Region replica; rotate it in its primary region, {}",
                    m.arn, c.primary_key.region
                ),
            ));
        }
    }
    if m.key_manager != KeyManager::Customer || m.key_spec != KeySpec::SymmetricDefault {
        return Err(Error::kms(
            KmsCode::UnsupportedOperationException,
            format!(
                "{} cannot be rotated: only symmetric customer managed keys rotate",
                m.arn
            ),
        ));
    }
    if m.origin != Origin::AwsKms && !imported_ok {
        return Err(Error::kms(
            KmsCode::UnsupportedOperationException,
            format!("{} has imported key material, which does not rotate automatically; import new material (`cofre key import --import-type NEW_KEY_MATERIAL`) and rotate on demand (`cofre key rotate`)", m.arn),
        ));
    }
    Ok(())
}

impl Kms {
    /// Removes a key CreateKey has just made and whose record could not be written: its
    /// aliases and its record go, and no tombstone is left (the key never took effect).
    pub(super) fn forget_new_key(&self, arn: &str) -> Result<()> {
        let Some((_, key_id)) = arn.rsplit_once(":key/") else {
            return Ok(());
        };
        let store = self.home.region(&self.region)?;
        let _lock = store.lock()?;
        remove_key_and_aliases(&store, key_id)
    }

    /// A new material version for the key `arn`, sealed under the domain key.
    pub(super) fn new_material(
        &self,
        arn: &str,
        date: &str,
        rotation_type: Option<RotationType>,
    ) -> MaterialVersion {
        let id = hex::encode(crate::crypto::random_array::<32>());
        MaterialVersion {
            sealed: self.home.seal_material(arn, &id, &SecretKey::random()),
            key_material_id: id,
            creation_date: date.to_owned(),
            rotation_type,
            ..Default::default()
        }
    }

    /// Adds a version and makes it current.
    fn add_version(&self, record: &mut KeyRecord, date: SystemTime, kind: RotationType) {
        let v = self.new_material(
            &record.key_metadata.arn,
            &store::format_time(date),
            Some(kind),
        );
        record.key_metadata.current_key_material_id = v.key_material_id.clone();
        record.materials.push(v);
    }

    /// Carries out the automatic rotations due by `now` on an Enabled key; returns whether any
    /// happened. With `at_once`, an overdue key rotates once, now (a key just enabled again);
    /// otherwise once per elapsed period, each dated when it was due.
    pub(super) fn rotate_overdue(
        &self,
        record: &mut KeyRecord,
        now: SystemTime,
        at_once: bool,
    ) -> bool {
        let r = &record.rotation;
        let (Some(period), Some(mut next)) =
            (r.rotation_period_in_days, parse(&r.next_rotation_date))
        else {
            return false;
        };
        if !r.enabled || record.key_metadata.key_state != KeyState::Enabled || next > now {
            return false;
        }
        // A replica's versions come from its primary only.
        if record.is_replica() {
            return false;
        }
        if at_once {
            self.add_version(record, now, RotationType::Automatic);
            next = now + days(period);
        } else {
            while next <= now {
                self.add_version(record, next, RotationType::Automatic);
                next += days(period);
            }
        }
        record.rotation.next_rotation_date = Some(store::format_time(next));
        true
    }

    /// Carries out the rotations, deletions and expiries due in the region, found from its
    /// index (no scan of the keys), and checks multi-Region keys against their relatives
    /// (that repairs a sync cut short). Called once per [`Kms`].
    pub(super) fn carry_out_due(&self, store: &RegionStore<'_>) -> Result<()> {
        let now = self.home.now();
        if store.upkept_recently(now) || store.upkeep(now)?.is_empty() {
            return Ok(());
        }
        let mut rotated = Vec::new();
        // Service events, recorded once the lock is released.
        let mut events: Vec<(&'static str, String)> = Vec::new();
        {
            let _lock = store.lock()?;
            // Read again under the lock: another process may have done the work.
            let upkeep = store.upkeep(now)?;
            let mut ids: Vec<String> = upkeep.due.into_iter().chain(upkeep.linked).collect();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                let Some(mut record) = store.load_key(&id)? else {
                    continue;
                };
                let m = &record.key_metadata;
                let deletion_due = m.key_state == KeyState::PendingDeletion
                    && parse(&m.deletion_date).is_some_and(|d| d <= now);
                if deletion_due {
                    destroy(store, &record)?;
                    events.push(("DeleteKey", record.key_metadata.arn.clone()));
                } else if record.key_metadata.key_state == KeyState::PendingReplicaDeletion {
                    // The last replica gone: the primary's own waiting period starts when it
                    // went (its deletion date), however much later cofre runs.
                    let gone = self.prune_replicas(&mut record, now)?;
                    if let (Some(gone), false) = (gone, record.has_replicas()) {
                        let window = record.key_metadata.pending_deletion_window_in_days;
                        let date = gone + days(window.unwrap_or(DELETION_WINDOW_DAYS.2));
                        record.key_metadata.deletion_date = Some(store::format_time(date));
                        record.set_state(KeyState::PendingDeletion);
                        if date <= now {
                            destroy(store, &record)?;
                            events.push(("DeleteKey", record.key_metadata.arn.clone()));
                            continue;
                        }
                    }
                    store.save_key(&record)?;
                } else if super::import::expire_material(&mut record, now) {
                    super::import::refresh_key_expiry(&mut record);
                    events.push(("DeleteExpiredKeyMaterial", record.key_metadata.arn.clone()));
                    store.save_key(&record)?;
                } else {
                    let repaired = self.repair_roles(&mut record)?;
                    if self.pull_from_primary(&mut record)? || repaired {
                        store.save_key(&record)?;
                    } else if self.rotate_overdue(&mut record, now, false) {
                        store.save_key(&record)?;
                        events.push(("RotateKey", record.key_metadata.arn.clone()));
                        rotated.push(record);
                    } else {
                        // Nothing to do (an early entry): its entries become exact.
                        store.reindex(&record)?;
                    }
                }
            }
            store.upkeep_done()?;
        }
        // Pushed once this region's lock is released: never two region locks at once.
        for (name, arn) in events {
            self.record(
                &Call::service(name).param("keyId", &arn),
                vec![arn],
                serde_json::Value::Null,
                None,
            )?;
        }
        for record in &rotated {
            self.sync_replicas(record)?;
        }
        Ok(())
    }

    /// EnableKeyRotation, with a period of 90–2560 days (default 365).
    pub fn enable_key_rotation(
        &self,
        key: &KeyRef,
        period_days: Option<u32>,
    ) -> Result<KeyRotationStatus> {
        self.audited(
            Call::new("EnableKeyRotation", false)
                .key(key)
                .param("rotationPeriodInDays", period_days),
            |call| {
                let period = days_within(ROTATION_PERIOD_DAYS, period_days, "rotation period")?;
                self.change_rotation(
                    key,
                    |record, now| {
                        let r = &mut record.rotation;
                        // Re-enabling with the same period keeps the schedule; otherwise it starts now.
                        if !(r.enabled && r.rotation_period_in_days == Some(period)) {
                            r.next_rotation_date = Some(store::format_time(now + days(period)));
                        }
                        r.enabled = true;
                        r.rotation_period_in_days = Some(period);
                    },
                    call,
                )
            },
        )
    }

    /// DisableKeyRotation.
    pub fn disable_key_rotation(&self, key: &KeyRef) -> Result<KeyRotationStatus> {
        self.audited(Call::new("DisableKeyRotation", false).key(key), |call| {
            self.change_rotation(
                key,
                |record, _| {
                    record.rotation.enabled = false;
                    record.rotation.next_rotation_date = None;
                },
                call,
            )
        })
    }

    fn change_rotation(
        &self,
        key: &KeyRef,
        change: impl FnOnce(&mut KeyRecord, SystemTime),
        call: &Call,
    ) -> Result<KeyRotationStatus> {
        let store = self.store()?;
        let record = {
            let _lock = store.lock()?;
            let mut record = self.resolve(&store, key, false, call)?;
            check_rotatable(&record.key_metadata, false)?;
            check_usable(&record.key_metadata)?;
            change(&mut record, self.home.now());
            store.save_key(&record)?;
            record
        };
        self.sync_replicas(&record)?;
        Ok(status(&record))
    }

    /// GetKeyRotationStatus (reported off while the key is pending deletion).
    pub fn key_rotation_status(&self, key: &KeyRef) -> Result<KeyRotationStatus> {
        self.audited(Call::new("GetKeyRotationStatus", true).key(key), |call| {
            let store = self.store()?;
            Ok(status(&self.resolve(&store, key, false, call)?))
        })
    }

    /// RotateKeyOnDemand: a new current version now, at most 25 times per key. The automatic
    /// schedule is unchanged. A key with imported material rotates to the material imported
    /// with NEW_KEY_MATERIAL (PENDING_ROTATION), which must be there.
    pub fn rotate_key_on_demand(&self, key: &KeyRef) -> Result<KeyVersion> {
        self.audited(Call::new("RotateKeyOnDemand", false).key(key), |call| {
        let store = self.store()?;
        let record = {
            let _lock = store.lock()?;
            let mut record = self.resolve(&store, key, false, call)?;
            check_rotatable(&record.key_metadata, true)?;
            check_usable(&record.key_metadata)?;
            if record.rotation.on_demand_rotations >= MAX_ON_DEMAND_ROTATIONS {
                return Err(Error::kms(
                    KmsCode::LimitExceededException,
                    format!(
                        "{} has had its {MAX_ON_DEMAND_ROTATIONS} on-demand rotations; enable automatic rotation, or move data to a new key with `cofre rewrap`",
                        record.key_metadata.arn
                    ),
                ));
            }
            let now = self.home.now();
            if record.key_metadata.origin == Origin::External {
                let arn = record.key_metadata.arn.clone();
                let Some(v) = record.materials.iter_mut().find(|v| v.pending_rotation) else {
                    return Err(Error::kms(
                        KmsCode::KMSInvalidStateException,
                        format!("{arn} has no imported key material pending rotation; import new material first (`cofre key import {arn} --import-type NEW_KEY_MATERIAL …`)"),
                    ));
                };
                v.pending_rotation = false;
                v.rotation_type = Some(RotationType::OnDemand);
                v.creation_date = store::format_time(now);
                record.key_metadata.current_key_material_id = v.key_material_id.clone();
                super::import::refresh_key_expiry(&mut record);
            } else {
                self.add_version(&mut record, now, RotationType::OnDemand);
            }
            record.rotation.on_demand_rotations += 1;
            store.save_key(&record)?;
            record
        };
        self.sync_replicas(&record)?;
        let current = record.key_metadata.current_key_material_id.clone();
        Ok(versions(&record)
            .into_iter()
            .find(|v| v.key_material_id == current)
            .expect("the current version is listed"))
            })
    }

    /// ListKeyRotations: the material versions a key rotated to, oldest first, and with
    /// `all_key_material` (IncludeKeyMaterial ALL_KEY_MATERIAL) its original material too.
    pub fn list_key_rotations(
        &self,
        key: &KeyRef,
        all_key_material: bool,
    ) -> Result<Vec<KeyVersion>> {
        let include = if all_key_material {
            "ALL_KEY_MATERIAL"
        } else {
            "ROTATIONS_ONLY"
        };
        self.audited(
            Call::new("ListKeyRotations", true)
                .key(key)
                .param("includeKeyMaterial", include),
            |call| {
                let store = self.store()?;
                let mut record = self.resolve(&store, key, false, call)?;
                super::import::upgrade_record(&mut record);
                let mut all = versions(&record);
                if !all_key_material {
                    all.retain(|v| v.rotation_type.is_some());
                }
                Ok(all)
            },
        )
    }

    /// ScheduleKeyDeletion: the key becomes unusable at once and is destroyed, with all its
    /// material and aliases, after 7–30 days (default 30).
    /// Unless `force`, refuses a key that volumes or snapshots depend on, as
    /// [`Kms::disable_key`] does.
    pub fn schedule_key_deletion(
        &self,
        key: &KeyRef,
        window_days: Option<u32>,
        force: bool,
    ) -> Result<KeyMetadata> {
        self.audited(
            Call::new("ScheduleKeyDeletion", false)
                .key(key)
                .param("pendingWindowInDays", window_days),
            |call| {
                let window =
                    days_within(DELETION_WINDOW_DAYS, window_days, "deletion waiting period")?;
                let store = self.store()?;
                let _lock = store.lock()?;
                let mut record = self.resolve(&store, key, false, call)?;
                super::aws_managed::customer_managed_only(&record)?;
                if !force {
                    self.refuse_if_protecting(&record, "scheduling the deletion of")?;
                }
                let m = &mut record.key_metadata;
                if matches!(
                    m.key_state,
                    KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
                ) {
                    return Err(invalid_state(&m.arn, m.key_state));
                }
                m.pending_deletion_window_in_days = Some(window);
                self.prune_replicas(&mut record, self.home.now())?;
                if record.has_replicas() {
                    // A primary waits, with no date, until its last replica is deleted; then its own
                    // waiting period starts.
                    record.key_metadata.deletion_date = None;
                    record.set_state(KeyState::PendingReplicaDeletion);
                } else {
                    record.key_metadata.deletion_date =
                        Some(store::format_time(self.home.now() + days(window)));
                    record.set_state(KeyState::PendingDeletion);
                }
                store.save_key(&record)?;
                Ok(record.key_metadata)
            },
        )
    }

    /// CancelKeyDeletion: the key comes back Disabled.
    pub fn cancel_key_deletion(&self, key: &KeyRef) -> Result<KeyMetadata> {
        self.audited(Call::new("CancelKeyDeletion", false).key(key), |call| {
            let store = self.store()?;
            let _lock = store.lock()?;
            let mut record = self.resolve(&store, key, false, call)?;
            let m = &mut record.key_metadata;
            if !matches!(
                m.key_state,
                KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
            ) {
                return Err(Error::kms(
                    KmsCode::KMSInvalidStateException,
                    format!("{} is not pending deletion", m.arn),
                ));
            }
            m.deletion_date = None;
            m.pending_deletion_window_in_days = None;
            // Back to Disabled; an imported key without all its material waits for it again.
            let imported = record.key_metadata.origin == Origin::External;
            record.set_state(if imported && !super::import::all_imported(&record) {
                KeyState::PendingImport
            } else {
                KeyState::Disabled
            });
            store.save_key(&record)?;
            Ok(record.key_metadata)
        })
    }
}

fn status(record: &KeyRecord) -> KeyRotationStatus {
    let r = &record.rotation;
    let on = r.enabled && record.key_metadata.key_state != KeyState::PendingDeletion;
    KeyRotationStatus {
        key_id: record.key_metadata.key_id.clone(),
        key_rotation_enabled: on,
        rotation_period_in_days: r.rotation_period_in_days.filter(|_| on),
        next_rotation_date: r.next_rotation_date.clone().filter(|_| on),
        on_demand_rotations: r.on_demand_rotations,
    }
}

fn versions(record: &KeyRecord) -> Vec<KeyVersion> {
    let m = &record.key_metadata;
    let imported = m.origin == Origin::External;
    record
        .materials
        .iter()
        .map(|v| KeyVersion {
            key_id: m.key_id.clone(),
            key_material_id: v.key_material_id.clone(),
            rotation_date: v.rotation_type.map(|_| v.creation_date.clone()),
            rotation_type: v.rotation_type,
            key_material_state: if v.pending_rotation {
                "PENDING_ROTATION"
            } else if v.key_material_id == m.current_key_material_id {
                "CURRENT"
            } else {
                "NON_CURRENT"
            },
            import_state: imported.then_some(if v.is_imported() {
                "IMPORTED"
            } else {
                "PENDING_IMPORT"
            }),
            key_material_description: v.description.clone().filter(|_| imported),
            expiration_model: v
                .expiration_model
                .clone()
                .or_else(|| m.expiration_model.clone())
                .filter(|_| imported),
            valid_to: record
                .material_valid_to(v)
                .map(store::format_time)
                .or_else(|| v.valid_to.clone().filter(|_| imported)),
        })
        .collect()
}

/// Destroys a key whose deletion date has passed: tombstone first, then its aliases, then the
/// record with all its material. Each step is atomic and the sequence is idempotent, so a crash
/// anywhere leaves a state the next request finishes.
/// Removes the aliases naming `key_id` and its record.
fn remove_key_and_aliases(store: &RegionStore<'_>, key_id: &str) -> Result<()> {
    let mut aliases = store.aliases()?;
    let before = aliases.0.len();
    aliases.0.retain(|_, a| a.target_key_id != key_id);
    if aliases.0.len() != before {
        store.save_aliases(&aliases)?;
    }
    store.delete_key(key_id)
}

fn destroy(store: &RegionStore<'_>, record: &KeyRecord) -> Result<()> {
    let m = &record.key_metadata;
    store.save_tombstone(&DeletedKey {
        key_id: m.key_id.clone(),
        arn: m.arn.clone(),
        deletion_date: m.deletion_date.clone().unwrap_or_default(),
        creation_date: m.creation_date.clone(),
        key_manager: m.key_manager,
        key_spec: Some(m.key_spec),
    })?;
    remove_key_and_aliases(store, &m.key_id)
}
