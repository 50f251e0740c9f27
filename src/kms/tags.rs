//! A key's description and tags: UpdateKeyDescription, TagResource, UntagResource,
//! ListResourceTags; and ListKeyPolicies (a key has one policy, named `default`).

use super::{aws_managed, Call, Kms, Page, MAX_DESCRIPTION};
use crate::error::{Error, KmsCode, Result};
use crate::keyring::{KeyState, Tag};
use crate::kms::KeyRef;

/// Most tags on one key (KMS quota).
pub const MAX_TAGS_PER_KEY: usize = 50;

/// Checks tags as KMS does: keys 1–128 characters, values up to 256, no `aws:` prefix.
pub(super) fn validate_tags(tags: &[Tag]) -> Result<()> {
    for t in tags {
        if t.tag_key.is_empty()
            || t.tag_key.chars().count() > 128
            || t.tag_value.chars().count() > 256
        {
            return Err(Error::kms(
                KmsCode::TagException,
                format!(
                    "tag {:?}: keys are 1–128 characters, values 0–256",
                    t.tag_key
                ),
            ));
        }
        if t.tag_key.starts_with("aws:") {
            return Err(Error::kms(
                KmsCode::TagException,
                format!("tag key {:?}: the aws: prefix is reserved", t.tag_key),
            ));
        }
    }
    Ok(())
}

/// Checks a key description's length.
pub fn validate_description(description: &str) -> Result<()> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(Error::kms(
            KmsCode::ValidationException,
            format!("description is over {MAX_DESCRIPTION} characters; shorten it"),
        ));
    }
    Ok(())
}

impl Kms {
    /// Changes a customer managed key with the record `change` makes, under the region lock,
    /// in the states KMS allows a management change in (not pending deletion or replica
    /// deletion: KMSInvalidStateException).
    fn change_key(
        &self,
        call: Call,
        key: &KeyRef,
        change: impl FnOnce(&mut crate::keyring::KeyRecord) -> Result<()>,
    ) -> Result<()> {
        self.audited(call, |call| {
            let store = self.store()?;
            let _lock = store.lock()?;
            let mut record = self.resolve(&store, key, false, call)?;
            aws_managed::customer_managed_only(&record)?;
            let state = record.key_metadata.key_state;
            if matches!(
                state,
                KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
            ) {
                return Err(super::invalid_state(&record.key_metadata.arn, state));
            }
            change(&mut record)?;
            store.save_key(&record)
        })
    }

    /// UpdateKeyDescription.
    pub fn update_key_description(&self, key: &KeyRef, description: &str) -> Result<()> {
        validate_description(description)?;
        self.change_key(
            Call::new("UpdateKeyDescription", false)
                .key(key)
                .param("description", description),
            key,
            |r| {
                r.key_metadata.description = description.to_owned();
                Ok(())
            },
        )
    }

    /// TagResource: adds tags, replacing the value of a tag key the key already has.
    pub fn tag_resource(&self, key: &KeyRef, tags: &[Tag]) -> Result<()> {
        let call = Call::new("TagResource", false)
            .key(key)
            .param("tags", serde_json::to_value(tags).expect("serializable"));
        self.change_key(call, key, |r| {
            validate_tags(tags)?;
            for t in tags {
                match r.tags.iter_mut().find(|o| o.tag_key == t.tag_key) {
                    Some(o) => o.tag_value = t.tag_value.clone(),
                    None => r.tags.push(t.clone()),
                }
            }
            if r.tags.len() > MAX_TAGS_PER_KEY {
                return Err(Error::kms(
                    KmsCode::LimitExceededException,
                    format!(
                        "a key has at most {MAX_TAGS_PER_KEY} tags; untag some of {} first",
                        r.key_metadata.arn
                    ),
                ));
            }
            Ok(())
        })
    }

    /// UntagResource: removes the tags with these keys (keys the key lacks are ignored).
    pub fn untag_resource(&self, key: &KeyRef, tag_keys: &[String]) -> Result<()> {
        let call = Call::new("UntagResource", false)
            .key(key)
            .param("tagKeys", tag_keys.to_vec());
        self.change_key(call, key, |r| {
            r.tags.retain(|t| !tag_keys.contains(&t.tag_key));
            Ok(())
        })
    }

    /// ListResourceTags, a page at a time (`limit` 1–50, default 50), by tag key.
    pub fn list_resource_tags(
        &self,
        key: &KeyRef,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> Result<Page<Tag>> {
        self.audited(Call::new("ListResourceTags", true).key(key), |call| {
            let store = self.store()?;
            let record = self.resolve(&store, key, false, call)?;
            Page::of_limited(record.tags, limit, 50, 50, marker, |t| t.tag_key.as_str())
        })
    }

    /// ListKeyPolicies: a key has one policy, `default`.
    pub fn list_key_policies(
        &self,
        key: &KeyRef,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> Result<Page<String>> {
        self.audited(Call::new("ListKeyPolicies", true).key(key), |call| {
            let store = self.store()?;
            self.resolve(&store, key, false, call)?;
            Page::of_limited(vec!["default".to_owned()], limit, 1000, 100, marker, |s| s)
        })
    }
}
