//! The KMS verbs, run against one region of a keyring.
//!
//! A [`Kms`] serves one caller (its [`RequestContext`]) in one region. Every request runs the
//! same path once, in [`Kms::audited`]: refuse another account's principal what KMS does not
//! allow across accounts, check the request's grant tokens, resolve the key reference
//! ([`KeyRef`]), check the key's state as KMS does (errors carry the KMS exception name),
//! authorize the request against the key policy, the caller's identity policy and the grants,
//! act, and record one event.
//!
//! Front ends call one method per operation. Parameters KMS added later come as additive
//! variants, the older method keeping its meaning: [`Kms::generate_data_key_with`] (KeySpec or
//! NumberOfBytes), [`Kms::import_key_material_with`] ([`ImportOptions`]: ImportType,
//! KeyMaterialId, description), [`Kms::delete_imported_key_material_version`],
//! [`Kms::retire_grant_with_token`]. A request's `GrantTokens` travel in its context
//! ([`RequestContext::with_grant_tokens`], or [`Kms::with_grant_tokens`]), so no method takes
//! them. No opened master key leaves this module:
//! files and EBS volumes get their data keys through GenerateDataKey, Encrypt and Decrypt
//! requests ([`Kms::generate_envelope_key`] and its siblings).

mod audited;
mod authorize;
mod aws_managed;
mod data;
mod data_keys;
mod grant_lookup;
mod grants;
mod identity;
mod import;
mod keyref;
mod lifecycle;
mod multi_region;
pub mod policy;
pub mod specs;
mod tags;

pub(crate) use audited::Call;
pub use authorize::CROSS_ACCOUNT_OPERATIONS;
pub use data::{
    DataKey, DataKeyPair, Decrypted, Encrypted, Mac, PublicKeyInfo, Signed, Verified,
    MAX_CIPHERTEXT, MAX_MESSAGE,
};
pub use grants::{CreateGrantRequest, GRANT_OPERATIONS, MAX_GRANT_TOKENS, MAX_GRANT_TOKEN_LEN};
pub use identity::IdentityPolicy;
pub use import::{
    ImportOptions, ImportParameters, ImportType, KeyMaterialResult, WrappingAlgorithm,
    WrappingKeySpec,
};
pub use keyref::{alias_arn, is_key_id, key_arn, KeyRef};
pub use lifecycle::{KeyRotationStatus, KeyVersion};
pub use specs::{
    DataKeyPairSpec, DataKeySpec, EncryptionAlgorithm, MacAlgorithm, MessageType, SigningAlgorithm,
};
pub use tags::{validate_description, MAX_TAGS_PER_KEY};

/// Standard base64, as KMS's JSON carries binary values.
pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

use crate::error::{Error, KmsCode, Result};
use crate::keyring::{
    validate_alias_name, AliasEntry, Home, KeyManager, KeyMetadata, KeyRecord, KeySpec, KeyState,
    KeyUsage, MultiRegionConfiguration, MultiRegionKeyType, Origin, Region, RegionStore,
    RegionalKey, Tag,
};
use crate::store;
use crate::RequestContext;
use std::sync::Arc;

/// Longest key description KMS accepts.
pub const MAX_DESCRIPTION: usize = 8192;
/// Most aliases per key (KMS quota).
pub const MAX_ALIASES_PER_KEY: usize = 50;

/// What `CreateKey` takes.
#[derive(Debug, Clone, Default)]
pub struct CreateKeyRequest {
    pub description: String,
    pub tags: Vec<Tag>,
    /// An alias to create for the new key in the same request.
    pub alias: Option<String>,
    /// A multi-Region primary key (`mrk-` id), replicable to other regions.
    pub multi_region: bool,
    /// AWS_KMS (material made by cofre) or EXTERNAL (imported later; the key starts in
    /// PendingImport).
    pub origin: Origin,
    /// The key policy (JSON); none for the default key policy.
    pub policy: Option<String>,
    /// Skip the check that the caller can still change the policy afterwards.
    pub bypass_policy_lockout_safety_check: bool,
    /// The key spec (SYMMETRIC_DEFAULT unless set).
    pub key_spec: Option<KeySpec>,
    /// The key usage (ENCRYPT_DECRYPT unless set; HMAC keys need GENERATE_VERIFY_MAC).
    pub key_usage: Option<KeyUsage>,
}

/// A KMS endpoint for one region of a home, serving one caller ([`RequestContext`]).
///
/// Cheap to make: the home is shared, so a front end makes one per request (or per caller) and
/// a server shares one [`Home`] between all of them.
#[derive(Debug)]
pub struct Kms {
    home: Arc<Home>,
    region: Region,
    /// Who is calling (authorized and recorded on every request).
    ctx: RequestContext,
    /// Set once the rotations and deletions due in the region have been carried out.
    maintained: std::sync::atomic::AtomicBool,
}

/// One entry of ListKeys.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyListEntry {
    pub key_id: String,
    pub key_arn: String,
}

/// One page of a list request: its items, and the marker to ask for the next page with when
/// there are more (KMS `NextMarker`, with `Truncated` true).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_marker: Option<String>,
}

impl<T> Page<T> {
    /// The page of `items` (sorted by `name`) after `marker`, `limit` long (1–1000, default
    /// 100, as ListKeys takes).
    pub fn of(
        items: Vec<T>,
        limit: Option<u32>,
        marker: Option<&str>,
        name: impl Fn(&T) -> &str,
    ) -> Result<Page<T>> {
        Self::of_limited(items, limit, 1000, 100, marker, name)
    }

    /// [`Page::of`] with the operation's own largest and default `limit`. A marker is the name
    /// of the last item of the page before: any string is taken, and the page starts after it.
    pub fn of_limited(
        mut items: Vec<T>,
        limit: Option<u32>,
        max: u32,
        default: u32,
        marker: Option<&str>,
        name: impl Fn(&T) -> &str,
    ) -> Result<Page<T>> {
        let limit = limit.unwrap_or(default);
        if !(1..=max).contains(&limit) {
            return Err(Error::kms(
                KmsCode::ValidationException,
                format!("Limit {limit} is out of range; give 1 to {max}"),
            ));
        }
        if marker.is_some_and(str::is_empty) {
            return Err(Error::kms(
                KmsCode::InvalidMarkerException,
                "the marker is empty; pass the NextMarker of the previous page",
            ));
        }
        items.sort_by(|a, b| name(a).cmp(name(b)));
        let start = marker.map_or(0, |m| items.partition_point(|i| name(i) <= m));
        let mut rest = items.split_off(start.min(items.len()));
        let more = rest.len() > limit as usize;
        rest.truncate(limit as usize);
        let next_marker = more
            .then(|| rest.last().map(|i| name(i).to_owned()))
            .flatten();
        Ok(Page {
            items: rest,
            next_marker,
        })
    }

    /// The same page with each item changed by `f`.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_marker: self.next_marker,
        }
    }
}

impl Kms {
    /// A KMS for `region` of `home`, serving the caller `ctx`.
    ///
    /// There is no endpoint without a caller, and so no request without one: every check
    /// runs against `ctx`, on whatever thread the request runs.
    ///
    /// ```compile_fail
    /// # use cofre::{Home, Kms, Region};
    /// # let home = Home::open("/tmp/cofre-doc".as_ref(), None).unwrap();
    /// let anonymous = Kms::new(home, Region::new("us-east-1").unwrap()); // no RequestContext
    /// ```
    pub fn new(home: impl Into<Arc<Home>>, region: Region, ctx: RequestContext) -> Self {
        Kms {
            home: home.into(),
            region,
            ctx,
            maintained: Default::default(),
        }
    }

    /// Who is calling.
    pub fn principal(&self) -> &crate::audit::Principal {
        self.ctx.principal()
    }

    /// The caller's request context.
    pub fn context(&self) -> &RequestContext {
        &self.ctx
    }

    /// The home.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The region requests go to.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The same endpoint, its requests carrying `tokens` as their `GrantTokens` (see
    /// [`RequestContext::with_grant_tokens`]).
    pub fn with_grant_tokens(mut self, tokens: Vec<String>) -> Self {
        self.ctx = self.ctx.with_grant_tokens(tokens);
        self
    }

    /// The same home and caller, another region.
    pub fn in_region(&self, region: Region) -> Result<Kms> {
        Ok(Kms::new(self.home.clone(), region, self.ctx.clone()))
    }

    /// The region's store. The first time, it carries out the automatic rotations and the
    /// deletions that have come due (no daemon needed).
    fn store(&self) -> Result<RegionStore<'_>> {
        let store = self.home.region(&self.region)?;
        if !self
            .maintained
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            self.carry_out_due(&store)?;
        }
        Ok(store)
    }

    /// CreateKey: a customer managed key of any spec cofre offers (symmetric by default), with
    /// one material version.
    /// With an alias, the alias is made in the same step and recorded as its own CreateAlias
    /// event, as the console's two requests would be.
    pub fn create_key(&self, req: &CreateKeyRequest) -> Result<KeyMetadata> {
        let m = self.create_key_only(req)?;
        if let Some(a) = &req.alias {
            self.record(
                &Call::new("CreateAlias", false)
                    .param("aliasName", a)
                    .param("targetKeyId", &m.key_id),
                vec![m.arn.clone()],
                serde_json::Value::Null,
                None,
            )?;
        }
        Ok(m)
    }

    fn create_key_only(&self, req: &CreateKeyRequest) -> Result<KeyMetadata> {
        self.audited(Call::new("CreateKey", false).param("description", &req.description).param("multiRegion", req.multi_region).param("origin", req.origin).param("keySpec", req.key_spec.unwrap_or(KeySpec::SymmetricDefault)).param("keyUsage", req.key_usage.unwrap_or(KeyUsage::EncryptDecrypt)), |_| {
        tags::validate_description(&req.description)?;
        tags::validate_tags(&req.tags)?;
        if let Some(a) = &req.alias {
            validate_alias_name(a)?;
        }
        let spec = req.key_spec.unwrap_or(KeySpec::SymmetricDefault);
        let usage = req.key_usage.unwrap_or(KeyUsage::EncryptDecrypt);
        specs::check_usage(spec, usage)?;
        if req.origin == Origin::External && spec != KeySpec::SymmetricDefault {
            return Err(Error::kms(
                KmsCode::UnsupportedOperationException,
                format!("cofre imports only symmetric key material; create the {spec} key with --origin AWS_KMS"),
            ));
        }
        if req.origin == Origin::External && req.multi_region {
            return Err(Error::kms(
                KmsCode::UnsupportedOperationException,
                "cofre does not import material into multi-Region keys yet; create a single-Region key with --origin EXTERNAL",
            ));
        }
        let store = self.store()?;
        let mut record = self.new_record(
            &req.description,
            &req.tags,
            KeyManager::Customer,
            req.multi_region,
        );
        if spec != KeySpec::SymmetricDefault {
            self.set_spec(&mut record, spec, usage)?;
        }
        if let Some(text) = &req.policy {
            policy::validate(text)?;
            if !req.bypass_policy_lockout_safety_check {
                self.check_lockout(text, &record.key_metadata.arn)?;
            }
            record.policy = Some(text.clone());
        }
        if req.origin == Origin::External {
            // No material until it is imported.
            record.materials.clear();
            record.key_metadata.current_key_material_id = String::new();
            record.key_metadata.origin = Origin::External;
            record.set_state(KeyState::PendingImport);
        }
        self.insert_key(&store, record, req.alias.as_deref())
            })
    }

    /// A new symmetric key record with one material version.
    fn new_record(
        &self,
        description: &str,
        tags: &[Tag],
        manager: KeyManager,
        multi_region: bool,
    ) -> KeyRecord {
        let id = if multi_region {
            format!("mrk-{}", hex::encode(crate::crypto::random_array::<16>()))
        } else {
            uuid::Builder::from_random_bytes(crate::crypto::random_array())
                .into_uuid()
                .to_string()
        };
        let arn = key_arn(self.region.as_str(), self.home.account_id(), &id);
        let now = store::format_time(self.home.now());
        let version = self.new_material(&arn, &now, None);
        KeyRecord {
            key_metadata: KeyMetadata {
                aws_account_id: self.home.account_id().to_owned(),
                key_id: id,
                arn: arn.clone(),
                creation_date: now,
                enabled: true,
                description: description.to_owned(),
                key_usage: KeyUsage::EncryptDecrypt,
                key_state: KeyState::Enabled,
                key_manager: manager,
                key_spec: KeySpec::SymmetricDefault,
                customer_master_key_spec: KeySpec::SymmetricDefault,
                origin: Origin::AwsKms,
                multi_region,
                encryption_algorithms: vec!["SYMMETRIC_DEFAULT".into()],
                signing_algorithms: Vec::new(),
                mac_algorithms: Vec::new(),
                key_agreement_algorithms: Vec::new(),
                current_key_material_id: version.key_material_id.clone(),
                deletion_date: None,
                pending_deletion_window_in_days: None,
                expiration_model: None,
                valid_to: None,
                multi_region_configuration: multi_region.then(|| MultiRegionConfiguration {
                    multi_region_key_type: MultiRegionKeyType::Primary,
                    primary_key: RegionalKey {
                        arn,
                        region: self.region.to_string(),
                    },
                    replica_keys: Vec::new(),
                }),
            },
            tags: tags.to_vec(),
            materials: vec![version],
            rotation: Default::default(),
            primary_epoch: 0,
            policy: None,
            grants: Vec::new(),
            public_key: None,
        }
    }

    /// Turns a new symmetric record into one of `spec` and `usage`: new material (an HMAC key
    /// or a private key, sealed like symmetric material), the public key, the algorithms.
    fn set_spec(&self, record: &mut KeyRecord, spec: KeySpec, usage: KeyUsage) -> Result<()> {
        let backend = self.home.backend();
        let material = match (specs::asym_kind(spec), specs::hmac_hash(spec)) {
            (Some(kind), _) => {
                let pkcs8 = backend.generate_private_key(kind)?;
                let public = backend.public_key_of(kind, &pkcs8)?;
                record.public_key = Some(base64_encode(&public));
                pkcs8
            }
            (None, Some(hash)) => {
                let mut k = zeroize::Zeroizing::new(vec![0u8; hash.len()]);
                crate::crypto::fill_random(&mut k);
                k
            }
            (None, None) => return Ok(()),
        };
        let m = &mut record.key_metadata;
        let version = &mut record.materials[0];
        version.sealed = self
            .home
            .seal_material_bytes(&m.arn, &version.key_material_id, &material);
        m.key_spec = spec;
        m.customer_master_key_spec = spec;
        m.key_usage = usage;
        [
            m.encryption_algorithms,
            m.signing_algorithms,
            m.mac_algorithms,
            m.key_agreement_algorithms,
        ] = specs::algorithms(spec, usage);
        Ok(())
    }

    /// Saves a new key and its alias, under the region lock; refuses a taken alias.
    fn insert_key(
        &self,
        store: &RegionStore<'_>,
        record: KeyRecord,
        alias: Option<&str>,
    ) -> Result<KeyMetadata> {
        let _lock = store.lock()?;
        let mut aliases = store.aliases()?;
        if let Some(a) = alias {
            if aliases.0.contains_key(a) {
                return Err(already_exists(a, &self.region));
            }
        }
        store.save_key(&record)?;
        if let Some(a) = alias {
            let (id, now) = (
                &record.key_metadata.key_id,
                &record.key_metadata.creation_date,
            );
            aliases
                .0
                .insert(a.to_owned(), self.alias_entry(a, id, now, now));
            if let Err(e) = store.save_aliases(&aliases) {
                // One request, one outcome: no key without the alias it was asked for.
                store.delete_key(id)?;
                return Err(e);
            }
        }
        Ok(record.key_metadata)
    }

    fn alias_entry(&self, name: &str, key_id: &str, created: &str, updated: &str) -> AliasEntry {
        AliasEntry {
            alias_name: name.to_owned(),
            alias_arn: alias_arn(self.region.as_str(), self.home.account_id(), name),
            target_key_id: key_id.to_owned(),
            creation_date: created.to_owned(),
            last_updated_date: updated.to_owned(),
        }
    }

    /// Finds the key a reference names in this region and authorizes `call` on it.
    /// `aliases_ok` is false for the operations KMS lets name a key only by id or ARN.
    fn resolve(
        &self,
        store: &RegionStore<'_>,
        key: &KeyRef,
        aliases_ok: bool,
        call: &Call,
    ) -> Result<KeyRecord> {
        self.find(store, key, aliases_ok, Some(call))
    }

    /// [`Kms::resolve`] without the key policy check, for requests the key's grants decide
    /// (RetireGrant checks the grant itself).
    fn resolve_for_grant(&self, store: &RegionStore<'_>, key: &KeyRef) -> Result<KeyRecord> {
        self.find(store, key, false, None)
    }

    fn find(
        &self,
        store: &RegionStore<'_>,
        key: &KeyRef,
        aliases_ok: bool,
        authorize: Option<&Call>,
    ) -> Result<KeyRecord> {
        let here = self.region.as_str();
        let check_arn = |region: &str, account: &str| -> Result<()> {
            if region != here {
                return Err(Error::kms(
                    KmsCode::NotFoundException,
                    format!("{key} is in region {region}, but this request runs in {here}; keys are regional: run with --region {region} (if this ARN came from a file, its header may have been altered)"),
                ));
            }
            if account != self.home.account_id() {
                return Err(Error::kms(
                    KmsCode::NotFoundException,
                    format!("{key} belongs to account {account}, not this home's account {}; use the --home of account {account} (if this ARN came from a file, its header may have been altered)", self.home.account_id()),
                ));
            }
            Ok(())
        };
        let id = match key {
            KeyRef::Id(id) => id.clone(),
            KeyRef::Arn {
                region,
                account,
                id,
            } => {
                check_arn(region, account)?;
                id.clone()
            }
            KeyRef::Alias(name) | KeyRef::AliasArn { name, .. } => {
                if let KeyRef::AliasArn {
                    region, account, ..
                } = key
                {
                    check_arn(region, account)?;
                }
                if !aliases_ok {
                    return Err(Error::kms(
                        KmsCode::ValidationException,
                        format!("this operation takes a key id or key ARN, not an alias; `cofre key describe {name}` shows the key id"),
                    ));
                }
                let aliases = store.aliases()?;
                let entry = aliases.0.get(name).ok_or_else(|| {
                    Error::kms(
                        KmsCode::NotFoundException,
                        format!("alias {name} does not exist in {here}; `cofre alias list` shows the aliases"),
                    )
                })?;
                entry.target_key_id.clone()
            }
        };
        let named_by_arn = matches!(key, KeyRef::Arn { .. } | KeyRef::AliasArn { .. });
        if self.principal().account() != self.home.account_id() && !named_by_arn {
            // Another account's principal finds keys here only by ARN, as in KMS.
            return Err(self.not_found(&id));
        }
        match store.load_key(&id)? {
            Some(r) => {
                if let Some(call) = authorize {
                    self.authorize(&r, call)?;
                }
                Ok(r)
            }
            None => Err(self.not_found(&id)),
        }
    }

    /// A NotFoundException that says the key was deleted, or points at the region holding the
    /// key if another one does.
    fn not_found(&self, id: &str) -> Error {
        if let Some(t) = self
            .home
            .region(&self.region)
            .ok()
            .and_then(|s| s.tombstone(id))
        {
            return Error::kms(
                KmsCode::NotFoundException,
                format!("key {} was deleted on {} (scheduled deletion); its material is gone and data under it can no longer be decrypted", t.arn, t.deletion_date),
            );
        }
        let elsewhere = self
            .home
            .regions()
            .unwrap_or_default()
            .into_iter()
            .find(|r| {
                r != &self.region
                    && self
                        .home
                        .region_dir(r)
                        .join("keys")
                        .join(format!("{id}.json"))
                        .exists()
            });
        let here = &self.region;
        match elsewhere {
            Some(r) => Error::kms(
                KmsCode::NotFoundException,
                format!("key {id} is in region {r}, not {here}; keys are regional: run with --region {r}"),
            ),
            None => Error::kms(
                KmsCode::NotFoundException,
                format!("key {id} does not exist in {here}; `cofre key list` shows your keys"),
            ),
        }
    }

    /// DescribeKey.
    pub fn describe_key(&self, key: &KeyRef) -> Result<KeyMetadata> {
        self.describe_key_via(key, None)
    }

    /// DescribeKey made by a cofre service (`"ebs"`) for its caller.
    pub fn describe_key_via(&self, key: &KeyRef, via: data_keys::Via) -> Result<KeyMetadata> {
        let call = Call::new("DescribeKey", true).key(key);
        let call = match via {
            Some(service) => call.via(service),
            None => call,
        };
        self.audited(call, |call| {
            let store = self.store()?;
            // As in KMS, describing a predefined alias/aws/<service> creates its AWS managed key.
            if let KeyRef::Alias(name) = key {
                self.ensure_aws_managed_key(&store, name)?;
            }
            Ok(self.resolve(&store, key, true, call)?.key_metadata)
        })
    }

    /// ListKeys: the region's key ids and ARNs, a page at a time (`limit` 1–1000, default
    /// 100), in key id order, from after `marker`.
    pub fn list_keys(
        &self,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> Result<Page<KeyListEntry>> {
        self.audited(
            Call::new("ListKeys", true)
                .param("limit", limit)
                .param("marker", marker),
            |_| {
                // Record files named as a key id (a stray file is damage, reported by the
                // requests that read records).
                let mut ids = self.store()?.key_ids()?;
                ids.retain(|id| is_key_id(id));
                let page = Page::of(ids, limit, marker, |id| id.as_str())?;
                Ok(page.map(|id| KeyListEntry {
                    key_arn: key_arn(self.region.as_str(), self.home.account_id(), &id),
                    key_id: id,
                }))
            },
        )
    }

    fn set_enabled(
        &self,
        key: &KeyRef,
        enable: bool,
        force: bool,
        call: &Call,
    ) -> Result<KeyMetadata> {
        let store = self.store()?;
        let lock = store.lock()?;
        let mut record = self.resolve(&store, key, false, call)?;
        aws_managed::customer_managed_only(&record)?;
        let state = record.key_metadata.key_state;
        match state {
            KeyState::Enabled | KeyState::Disabled => {}
            _ => return Err(invalid_state(&record.key_metadata.arn, state)),
        }
        if !enable && state == KeyState::Enabled && !force {
            self.refuse_if_protecting(&record, "disabling")?;
        }
        record.set_state(if enable {
            KeyState::Enabled
        } else {
            KeyState::Disabled
        });
        if record.key_metadata.key_state != state {
            // A key enabled again rotates at once if its rotation is overdue.
            let rotated = enable && self.rotate_overdue(&mut record, self.home.now(), true);
            store.save_key(&record)?;
            if rotated {
                // Released first: syncing takes the replicas' region locks.
                drop(lock);
                self.sync_replicas(&record)?;
            }
        }
        Ok(record.key_metadata)
    }

    /// EnableKey.
    pub fn enable_key(&self, key: &KeyRef) -> Result<KeyMetadata> {
        self.audited(Call::new("EnableKey", false).key(key), |call| {
            self.set_enabled(key, true, false, call)
        })
    }

    /// DisableKey. Unless `force` (cofre's guard; AWS's DisableKey has none, so the KMS wire
    /// front end passes true), refuses a customer managed key that volumes or snapshots of the
    /// region depend on, after the request is authorized: [`Error::KeyInUse`].
    pub fn disable_key(&self, key: &KeyRef, force: bool) -> Result<KeyMetadata> {
        self.audited(Call::new("DisableKey", false).key(key), |call| {
            self.set_enabled(key, false, force, call)
        })
    }

    /// Refuses to make `record` unusable while EBS volumes or snapshots of this region depend
    /// on it (their data would become unreadable).
    pub(crate) fn refuse_if_protecting(&self, record: &KeyRecord, doing: &str) -> Result<()> {
        let m = &record.key_metadata;
        if m.key_manager != KeyManager::Customer {
            return Ok(());
        }
        let mut ids: Vec<String> = crate::ebs::Ebs::new(self)?
            .protected_by(&m.arn)?
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        ids.sort_unstable();
        let shown = ids.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        let more = if ids.len() > 3 { ", …" } else { "" };
        Err(Error::KeyInUse(format!(
            "{} volume(s) and snapshot(s) in {} depend on {} ({shown}{more}); {doing} it makes them unreadable",
            ids.len(),
            self.region,
            m.arn
        )))
    }

    /// CreateAlias: `name` must be new in this region; the target is a key id or ARN.
    pub fn create_alias(&self, name: &str, target: &KeyRef) -> Result<AliasEntry> {
        self.audited(
            Call::new("CreateAlias", false)
                .param("aliasName", name)
                .param("targetKeyId", target.to_string()),
            |call| {
                validate_alias_name(name)?;
                let store = self.store()?;
                let _lock = store.lock()?;
                let record = self.alias_target(&store, target, call)?;
                let mut aliases = store.aliases()?;
                if aliases.0.contains_key(name) {
                    return Err(already_exists(name, &self.region));
                }
                let id = &record.key_metadata.key_id;
                if aliases.for_key(id).count() >= MAX_ALIASES_PER_KEY {
                    return Err(Error::kms(
                        KmsCode::LimitExceededException,
                        format!(
                            "key {id} already has {MAX_ALIASES_PER_KEY} aliases; delete one first"
                        ),
                    ));
                }
                let now = store::format_time(self.home.now());
                let entry = self.alias_entry(name, id, &now, &now);
                aliases.0.insert(name.to_owned(), entry.clone());
                store.save_aliases(&aliases)?;
                Ok(entry)
            },
        )
    }

    /// The key an alias is to point at: a customer managed key of this region, not pending
    /// deletion.
    fn alias_target(
        &self,
        store: &RegionStore<'_>,
        target: &KeyRef,
        call: &Call,
    ) -> Result<KeyRecord> {
        let record = self.resolve(store, target, false, call)?;
        aws_managed::customer_managed_only(&record)?;
        if record.key_metadata.key_state == KeyState::PendingDeletion {
            return Err(invalid_state(
                &record.key_metadata.arn,
                KeyState::PendingDeletion,
            ));
        }
        Ok(record)
    }

    /// UpdateAlias: points an existing alias at another key of this region.
    pub fn update_alias(&self, name: &str, target: &KeyRef) -> Result<AliasEntry> {
        self.audited(
            Call::new("UpdateAlias", false)
                .param("aliasName", name)
                .param("targetKeyId", target.to_string()),
            |call| {
                validate_alias_name(name)?;
                let store = self.store()?;
                let _lock = store.lock()?;
                let record = self.alias_target(&store, target, call)?;
                let mut aliases = store.aliases()?;
                if let Some(old) = aliases
                    .0
                    .get(name)
                    .and_then(|e| store.load_key(&e.target_key_id).ok().flatten())
                {
                    let (a, b) = (&old.key_metadata, &record.key_metadata);
                    if key_class(a.key_spec) != key_class(b.key_spec) || a.key_usage != b.key_usage {
                        return Err(Error::kms(
                            KmsCode::ValidationException,
                            format!(
                                "alias {name} points at a {} key for {}; its new target must be of the same type and usage, not a {} key for {}",
                                key_class(a.key_spec), a.key_usage, key_class(b.key_spec), b.key_usage
                            ),
                        ));
                    }
                }
                let Some(entry) = aliases.0.get_mut(name) else {
                    return Err(Error::kms(
                        KmsCode::NotFoundException,
                        format!(
                    "alias {name} does not exist in {}; create it with `cofre alias create`",
                    self.region
                ),
                    ));
                };
                entry.target_key_id = record.key_metadata.key_id.clone();
                entry.last_updated_date = store::format_time(self.home.now());
                let entry = entry.clone();
                store.save_aliases(&aliases)?;
                Ok(entry)
            },
        )
    }

    /// DeleteAlias.
    pub fn delete_alias(&self, name: &str) -> Result<()> {
        self.audited(
            Call::new("DeleteAlias", false).param("aliasName", name),
            |call| {
                validate_alias_name(name)?;
                let store = self.store()?;
                let _lock = store.lock()?;
                let mut aliases = store.aliases()?;
                let Some(entry) = aliases.0.remove(name) else {
                    return Err(Error::kms(
                        KmsCode::NotFoundException,
                        format!(
                            "alias {name} does not exist in {}; `cofre alias list` shows the aliases",
                            self.region
                        ),
                    ));
                };
                // kms:DeleteAlias is checked against the key the alias points at (another
                // account's principal was refused before: DeleteAlias is not cross-account).
                if let Some(target) = store.load_key(&entry.target_key_id)? {
                    self.authorize(&target, call)?;
                }
                store.save_aliases(&aliases)
            },
        )
    }

    /// ListAliases: the region's aliases in name order, a page at a time (`limit` 1–100,
    /// default 50), from after `marker`; only those of `key` if given.
    pub fn list_aliases(
        &self,
        key: Option<&KeyRef>,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> Result<Page<AliasEntry>> {
        self.audited(
            Call::new("ListAliases", true)
                .param("keyId", key.map(|k| k.to_string()))
                .param("limit", limit)
                .param("marker", marker),
            |call| {
                let store = self.store()?;
                let target = match key {
                    Some(k) => Some(self.resolve(&store, k, false, call)?.key_metadata.key_id),
                    None => None,
                };
                let aliases: Vec<AliasEntry> = store
                    .aliases()?
                    .0
                    .into_values()
                    .filter(|a| target.as_ref().is_none_or(|t| &a.target_key_id == t))
                    .collect();
                Page::of_limited(aliases, limit, 100, 50, marker, |a| a.alias_name.as_str())
            },
        )
    }

    /// The key a ciphertext names by ARN. A multi-Region key opens in any region that holds a
    /// replica: same id, same material.
    pub(super) fn key_named_in_ciphertext(
        &self,
        store: &RegionStore<'_>,
        arn: &str,
        call: &Call,
    ) -> Result<KeyRecord> {
        let key: KeyRef = arn.parse()?;
        if !matches!(key, KeyRef::Arn { .. }) {
            return Err(Error::HeaderCorrupt(format!(
                "recipient {arn:?} is not a key ARN"
            )));
        }
        let key = match key {
            KeyRef::Arn {
                region,
                account,
                id,
            } if id.starts_with("mrk-") && region != self.region.as_str() => {
                if account != self.home.account_id() {
                    return Err(Error::kms(
                        KmsCode::NotFoundException,
                        format!("{arn} belongs to account {account}, not this home's"),
                    ));
                }
                KeyRef::Id(id)
            }
            other => other,
        };
        self.resolve(store, &key, false, call)
    }
}

/// Refuses a key that is not a symmetric encryption key where one is needed (data keys of
/// files and volumes).
pub(crate) fn check_symmetric(m: &KeyMetadata) -> Result<()> {
    if m.key_spec == KeySpec::SymmetricDefault {
        return Ok(());
    }
    Err(Error::kms(
        KmsCode::InvalidKeyUsageException,
        format!(
            "{} is a {} key for {}; wrapping data keys needs a symmetric encryption key (SYMMETRIC_DEFAULT){}",
            m.arn,
            m.key_spec,
            m.key_usage,
            if m.key_usage == KeyUsage::EncryptDecrypt || m.key_usage == KeyUsage::KeyAgreement {
                "; to encrypt a file to it, use `cofre encrypt --recipient-pubkey` with its public key"
            } else {
                ""
            }
        ),
    ))
}

/// The error KMS gives for an operation on a key in a state that forbids it.
pub(crate) fn invalid_state(arn: &str, state: KeyState) -> Error {
    let what = match state {
        KeyState::PendingDeletion => "is pending deletion; cancel the deletion first".to_owned(),
        KeyState::PendingImport => "is pending import; import its key material first".to_owned(),
        s => format!("is in state {s:?}"),
    };
    Error::kms(KmsCode::KMSInvalidStateException, format!("{arn} {what}"))
}

/// Refuses cryptographic use of a key that is not Enabled.
pub(crate) fn check_usable(m: &KeyMetadata) -> Result<()> {
    match m.key_state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(Error::kms(
            KmsCode::DisabledException,
            format!(
                "{} is disabled; enable it with `cofre key enable {}`",
                m.arn, m.key_id
            ),
        )),
        s => Err(invalid_state(&m.arn, s)),
    }
}

/// The type UpdateAlias compares: symmetric, asymmetric or HMAC.
fn key_class(spec: KeySpec) -> &'static str {
    match (specs::asym_kind(spec), specs::hmac_hash(spec)) {
        (Some(_), _) => "asymmetric",
        (_, Some(_)) => "HMAC",
        _ => "symmetric",
    }
}

fn already_exists(alias: &str, region: &Region) -> Error {
    Error::kms(
        KmsCode::AlreadyExistsException,
        format!("alias {alias} already exists in {region}; pick another name or use `cofre alias update`"),
    )
}
