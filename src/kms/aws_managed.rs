//! AWS managed keys: `alias/aws/<service>`, one per service and region, made the first time
//! something needs it (describing the alias, as in KMS, or the service itself). They are listed
//! and described with KeyManager AWS, rotate every year on their own, and are used only through
//! their service: cofre refuses them for `encrypt`, `decrypt` and every management change.
//!
//! AWS owned keys — keys a service uses internally and never lists — are derived from each
//! home's domain key ([`crate::keyring::Home::aws_owned_key`]): the keyring seal that protects
//! all key material at rest, and the EBS record key that authenticates each region's volume and
//! snapshot records (`ebs` module docs).

use super::{Kms, KmsCode};
use crate::error::{Error, Result};
use crate::keyring::{KeyManager, KeyRecord, RegionStore};

/// The services whose AWS managed keys cofre knows, with the description KMS gives them.
pub const SERVICES: &[(&str, &str)] = &[
    (
        "ebs",
        "Default key that protects my EBS volumes when no other key is defined",
    ),
    (
        "s3",
        "Default key that protects my S3 objects when no other key is defined",
    ),
    (
        "rds",
        "Default key that protects my RDS database volumes when no other key is defined",
    ),
    (
        "backup",
        "Default key that protects my backups when no other key is defined",
    ),
    (
        "secretsmanager",
        "Default key that protects my Secrets Manager data when no other key is defined",
    ),
];

/// AWS managed keys rotate every 365 days.
const ROTATION_DAYS: u32 = 365;

/// Refuses direct use of an AWS managed key.
pub(super) fn not_through_service(record: &KeyRecord) -> Result<()> {
    if record.key_metadata.key_manager == KeyManager::Aws {
        return Err(Error::kms(
            KmsCode::AccessDeniedException,
            format!(
                "{} is an AWS managed key, usable only through its own service; use a customer managed key (`cofre key create`)",
                record.key_metadata.arn
            ),
        ));
    }
    Ok(())
}

/// Lets an AWS managed key be used only by its own service (`service`, e.g. `"ebs"`); with no
/// service (a direct request), refuses it.
pub(super) fn through_service(
    store: &RegionStore<'_>,
    record: &KeyRecord,
    service: Option<&str>,
) -> Result<()> {
    let Some(service) = service else {
        return not_through_service(record);
    };
    if record.key_metadata.key_manager != KeyManager::Aws {
        return Ok(());
    }
    let own = format!("alias/aws/{service}");
    if store
        .aliases()?
        .for_key(&record.key_metadata.key_id)
        .any(|a| a == own)
    {
        return Ok(());
    }
    Err(Error::kms(
        KmsCode::AccessDeniedException,
        format!(
            "{} is the AWS managed key of another service; {service} can use only {own} or a customer managed key",
            record.key_metadata.arn
        ),
    ))
}

/// Refuses changes to an AWS managed key's state, aliases, rotation or deletion.
pub(super) fn customer_managed_only(record: &KeyRecord) -> Result<()> {
    if record.key_metadata.key_manager == KeyManager::Aws {
        return Err(Error::kms(
            KmsCode::UnsupportedOperationException,
            format!(
                "{} is an AWS managed key: its state, aliases, rotation and deletion are managed by its service",
                record.key_metadata.arn
            ),
        ));
    }
    Ok(())
}

impl Kms {
    /// Makes sure the AWS managed key behind `alias` (`alias/aws/<service>`) exists, creating it
    /// if the service is known. Other names are left alone.
    pub(super) fn ensure_aws_managed_key(
        &self,
        store: &RegionStore<'_>,
        alias: &str,
    ) -> Result<()> {
        let Some(service) = alias.strip_prefix("alias/aws/") else {
            return Ok(());
        };
        let Some((_, description)) = SERVICES.iter().find(|(s, _)| *s == service) else {
            return Ok(());
        };
        if store.aliases()?.0.contains_key(alias) {
            return Ok(());
        }
        let mut record = self.new_record(description, &[], KeyManager::Aws, false);
        let policy = super::policy::aws_managed_policy(
            self.home.account_id(),
            service,
            self.region.as_str(),
        );
        record.policy = Some(serde_json::to_string_pretty(&policy).expect("serializable"));
        let now = self.home.now();
        record.rotation.enabled = true;
        record.rotation.rotation_period_in_days = Some(ROTATION_DAYS);
        record.rotation.next_rotation_date = Some(crate::store::format_time(
            now + std::time::Duration::from_secs(u64::from(ROTATION_DAYS) * 86_400),
        ));
        match self.insert_key(store, record, Some(alias)) {
            // Another process made it first: theirs stands.
            Err(Error::Kms {
                code: KmsCode::AlreadyExistsException,
                ..
            }) => Ok(()),
            other => other.map(drop),
        }
    }
}
