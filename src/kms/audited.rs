//! Every KMS request goes through [`Kms::audited`]: the request runs, then one event is
//! appended to the region's trail whatever the outcome — allowed, refused or failed. The trail
//! fails closed: a request whose record cannot be written fails (see [`Kms::audited`]).

use super::{ImportParameters, KeyRef, KeyRotationStatus, KeyVersion, Kms, Page};
use crate::audit::{Event, Resource, Trail, UserIdentity};
use crate::error::Error;
use crate::keyring::{AliasEntry, KeyMetadata};
use crate::Result;
use serde_json::{Map, Value};

/// One request, as the trail will record it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    name: &'static str,
    read_only: bool,
    params: Map<String, Value>,
    source: &'static str,
    invoked_by: Option<&'static str>,
    service_event: bool,
    /// The permission a part of the request needs when it differs from the API name
    /// (ReEncrypt needs `ReEncryptFrom` on its source key and `ReEncryptTo` on its
    /// destination).
    operation: Option<&'static str>,
}

impl Call {
    /// A KMS API call by the caller.
    pub(crate) fn new(name: &'static str, read_only: bool) -> Self {
        Call {
            name,
            read_only,
            params: Map::new(),
            source: "kms.amazonaws.com",
            invoked_by: None,
            service_event: false,
            operation: None,
        }
    }

    /// An EC2 (EBS) API call by the caller.
    pub(crate) fn ec2(name: &'static str, read_only: bool) -> Self {
        Call {
            source: "ec2.amazonaws.com",
            ..Call::new(name, read_only)
        }
    }

    /// An EBS direct API call by the caller (ListChangedBlocks, …): CloudTrail's
    /// `ebs.amazonaws.com`.
    pub(crate) fn ebs(name: &'static str, read_only: bool) -> Self {
        Call {
            source: "ebs.amazonaws.com",
            ..Call::new(name, read_only)
        }
    }

    /// An IAM API call by the caller (identity policies): CloudTrail's `iam.amazonaws.com`.
    pub(crate) fn iam(name: &'static str, read_only: bool) -> Self {
        Call {
            source: "iam.amazonaws.com",
            ..Call::new(name, read_only)
        }
    }

    /// An event cofre's KMS carries out on its own (rotation, deletion, expiry).
    pub(crate) fn service(name: &'static str) -> Self {
        Call {
            service_event: true,
            ..Call::new(name, false)
        }
    }

    /// `keyId` as the caller supplied it.
    pub(crate) fn key(self, key: &KeyRef) -> Self {
        self.param("keyId", key.to_string())
    }

    /// Another request parameter (never plaintext or key material).
    /// An absent value (None) is left out, as CloudTrail logs no nulls.
    pub(crate) fn param(mut self, name: &str, value: impl serde::Serialize) -> Self {
        match serde_json::to_value(value).expect("serializable") {
            Value::Null => {}
            v => {
                self.params.insert(name.to_owned(), v);
            }
        }
        self
    }

    /// The encryption context of the request (recorded, and seen by policy conditions).
    pub(crate) fn context(self, context: &crate::envelope::EncryptionContext) -> Self {
        let map: Map<String, Value> = context
            .iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect();
        self.param("encryptionContext", Value::Object(map))
    }

    /// The operation a key policy or grant is checked for: the API name, or the part of the
    /// request being served (see [`Kms::acting_as`]).
    pub(crate) fn name(&self) -> &'static str {
        self.operation.unwrap_or(self.name)
    }

    /// The API operation the request is (ReEncrypt for both of its parts).
    pub(crate) fn api_name(&self) -> &'static str {
        self.name
    }

    /// An event cofre's KMS carries out on its own, for no caller.
    pub(crate) fn is_service_event(&self) -> bool {
        self.service_event
    }

    /// The service that made the call for the caller, if one did.
    pub(crate) fn invoked_by(&self) -> Option<&'static str> {
        self.invoked_by
    }

    /// The IAM action this request needs (`kms:Decrypt`, `ec2:CreateVolume`…).
    pub(crate) fn action(&self) -> String {
        let service = match self.source {
            "ec2.amazonaws.com" => "ec2",
            "ebs.amazonaws.com" => "ebs",
            "iam.amazonaws.com" => "iam",
            _ => "kms",
        };
        format!("{service}:{}", self.name())
    }

    /// A string parameter of the request.
    pub(crate) fn param_str(&self, name: &str) -> Option<&str> {
        self.params.get(name).and_then(Value::as_str)
    }

    /// The request's encryption context, if any.
    pub(crate) fn encryption_context(&self) -> Vec<(String, String)> {
        self.params
            .get("encryptionContext")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The service a request came through, as `kms:ViaService` names it.
    pub(crate) fn via_service(&self, region: &str) -> Option<String> {
        self.invoked_by
            .filter(|s| s.ends_with(".amazonaws.com"))
            .map(|s| {
                format!(
                    "{}.{region}.amazonaws.com",
                    s.trim_end_matches(".amazonaws.com")
                )
            })
    }

    /// Made by a cofre service on the caller's behalf (`ec2.amazonaws.com` for EBS).
    pub(crate) fn via(mut self, service: &str) -> Self {
        self.invoked_by = Some(match service {
            "ebs" => "ec2.amazonaws.com",
            _ => "AWS Internal",
        });
        self
    }
}

/// What a result says about the key it acted on.
pub trait Audited {
    /// The key the request acted on, for `resources` (else the key the request named).
    fn key_arn(&self) -> Option<String> {
        None
    }

    /// Every key the request acted on (ReEncrypt: its source and its destination).
    fn key_arns(&self) -> Vec<String> {
        self.key_arn().into_iter().collect()
    }

    /// CloudTrail's `responseElements` of operation `op` with this result (null for most, as
    /// KMS logs: never for a cryptographic operation).
    fn response_elements(&self, _op: &str) -> Value {
        Value::Null
    }
}

impl Audited for KeyMetadata {
    fn key_arn(&self) -> Option<String> {
        Some(self.arn.clone())
    }

    fn response_elements(&self, op: &str) -> Value {
        match op {
            "CreateKey" => {
                serde_json::json!({ "keyMetadata": camel_case(serde_json::to_value(self).expect("serializable")) })
            }
            "ScheduleKeyDeletion" => {
                let mut v = serde_json::json!({ "keyId": self.arn, "keyState": self.key_state });
                if let Some(d) = &self.deletion_date {
                    v["deletionDate"] = d.clone().into();
                }
                if let Some(w) = self.pending_deletion_window_in_days {
                    v["pendingWindowInDays"] = w.into();
                }
                v
            }
            _ => Value::Null,
        }
    }
}
impl Audited for crate::envelope::WrappedKey {
    fn key_arn(&self) -> Option<String> {
        Some(self.key_arn.clone())
    }
}
impl<T> Audited for (crate::envelope::WrappedKey, T) {
    fn key_arn(&self) -> Option<String> {
        self.0.key_arn()
    }
}
impl Audited for crate::crypto::SecretKey {}
impl Audited for crate::api::kms::CreateGrantResponse {
    // The grant id, never the token.
    fn response_elements(&self, _op: &str) -> Value {
        serde_json::json!({ "grantId": self.grant_id })
    }
}
impl Audited for crate::api::kms::GetKeyPolicyResponse {}
impl Audited for crate::api::kms::ReplicateKeyResponse {}
impl Audited for () {}
impl Audited for AliasEntry {}
impl Audited for KeyRotationStatus {}
impl Audited for KeyVersion {}
impl Audited for ImportParameters {}
impl<T> Audited for Vec<T> {}
impl<T> Audited for Page<T> {}
impl Audited for bool {}
impl Audited for String {}
impl Audited for u64 {}
impl Audited for crate::ebs::Volume {}
impl Audited for crate::ebs::Snapshot {}
impl Audited for crate::ebs::ChangedBlocks {}
impl Audited for crate::ebs::CopyReport {}
impl Audited for crate::ebs::VerifyReport {}
impl Audited for crate::ebs::GcReport {}
impl<T> Audited for crate::ebs::Page<T> {}
impl Audited for (crate::ebs::Volume, crate::ebs::Volume) {}
impl Audited for crate::ebs::SnapshotRecord {
    fn key_arn(&self) -> Option<String> {
        self.lineage.data_key.as_ref().map(|d| d.kms_key_id.clone())
    }
}
impl Audited for crate::ebs::BlockPage {}
impl Audited for crate::ebs::ChangedBlockPage {}
impl Audited for crate::ebs::BlockData {}

/// A KMS response shape (PascalCase members) as CloudTrail logs it: camelCase members.
fn camel_case(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let k = match k.as_str() {
                        "AWSAccountId" => "aWSAccountId".to_owned(),
                        _ => {
                            let mut c = k.chars();
                            c.next()
                                .map(|f| f.to_lowercase().chain(c).collect())
                                .unwrap_or_default()
                        }
                    };
                    (k, camel_case(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(camel_case).collect()),
        other => other,
    }
}

/// The exception name a failed request is recorded with.
fn error_code(e: &Error, source: &str) -> String {
    e.aws_name(if source != "kms.amazonaws.com" {
        crate::error::AwsService::Ec2
    } else {
        crate::error::AwsService::Kms
    })
}

impl Kms {
    /// The `operation` part of `call`, with that part's encryption context and algorithm:
    /// keys resolved for it are checked for that permission, and policy conditions and grant
    /// constraints see that context (no extra event is recorded).
    pub(crate) fn acting_as(
        call: &Call,
        operation: &'static str,
        context: &crate::envelope::EncryptionContext,
        algorithm: &str,
    ) -> Call {
        let mut part = call
            .clone()
            .context(context)
            .param("encryptionAlgorithm", algorithm);
        part.operation = Some(operation);
        part
    }

    /// The audit trail of this region.
    pub fn audit_trail(&self) -> Trail {
        self.trail()
    }

    /// The ARN of a key as a request supplied it: an ARN, or a key id in this region (an
    /// alias names no key ARN here).
    fn arn_of(&self, k: &str) -> Option<String> {
        if k.starts_with("arn:") && k.contains(":key/") {
            Some(k.to_owned())
        } else if super::is_key_id(k) {
            Some(super::key_arn(
                self.region.as_str(),
                self.home.account_id(),
                k,
            ))
        } else {
            None
        }
    }

    /// The trail of this region.
    pub(crate) fn trail(&self) -> Trail {
        let key = self
            .home
            .aws_owned_key(&format!("audit digests\0{}", self.region));
        let chain_key = self
            .home
            .aws_owned_key(&format!("audit chain\0{}", self.region));
        Trail::new(
            &self.home.region_dir(&self.region),
            self.region.as_str(),
            key,
            chain_key,
        )
        .with_clock(self.home.clock())
    }

    /// Runs a request and records it. `f` gets the request, which every key it resolves is
    /// authorized against ([`Kms::authorize`] takes it explicitly: nothing is checked against
    /// ambient state).
    ///
    /// The trail fails closed: a request whose record cannot be written fails with the
    /// trail's error. A read-only request's result is held back until its record is written.
    /// A request that changes state first checks that the trail can take its record
    /// ([`Trail::reserve`]); if the record still fails (a disk filling between the check and
    /// the append), a new key from CreateKey is removed again; any other change stays made,
    /// unrecorded, and the request reports the trail's error.
    pub(crate) fn audited<T: Audited>(
        &self,
        call: Call,
        f: impl FnOnce(&Call) -> Result<T>,
    ) -> Result<T> {
        if !call.read_only {
            self.trail().reserve()?;
        }
        let result = self
            .own_account_only(&call)
            .and_then(|()| self.check_grant_tokens(&call))
            .and_then(|()| f(&call));
        let acted_on = match &result {
            Ok(t) => t.key_arns(),
            Err(_) => Vec::new(),
        };
        let arn = acted_on.first().cloned().or_else(|| {
            let k = call
                .params
                .get("keyId")
                .or_else(|| call.params.get("sourceKeyId"))
                .and_then(Value::as_str)?;
            self.arn_of(k)
        });
        let created = match &result {
            Ok(_) if call.name == "CreateKey" => arn.clone(),
            _ => None,
        };
        let response = match &result {
            Ok(t) => t.response_elements(call.name),
            Err(_) => Value::Null,
        };
        let arns = if acted_on.is_empty() {
            arn.into_iter().collect()
        } else {
            acted_on
        };
        if let Err(e) = self.record(&call, arns, response, result.as_ref().err()) {
            if let Some(arn) = created {
                // Best effort: the key never took effect for the caller.
                let _ = self.forget_new_key(&arn);
            }
            return Err(e);
        }
        result
    }

    /// Records a request a front end refused before it reached the service (a bad signature,
    /// say): the operation named, the error, nothing else done.
    pub(crate) fn record_refusal(&self, call: Call, error: &Error) -> Result<()> {
        self.record(&call, Vec::new(), Value::Null, Some(error))
    }

    /// Appends one event; the error says why the trail could not take it.
    pub(crate) fn record(
        &self,
        call: &Call,
        key_arns: Vec<String>,
        response_elements: Value,
        error: Option<&Error>,
    ) -> Result<()> {
        let account = self.home.account_id().to_owned();
        let p = self.ctx.principal();
        // KMS's own events (rotation, deletion, expiry) name the account and "AWS Internal",
        // as CloudTrail logs them.
        let identity = if call.service_event {
            UserIdentity {
                kind: None,
                principal_id: None,
                arn: None,
                account_id: Some(account.clone()),
                access_key_id: None,
                user_name: None,
                invoked_by: Some("AWS Internal".into()),
            }
        } else if !self.ctx.is_authenticated() {
            UserIdentity {
                kind: Some("Unknown".into()),
                principal_id: None,
                arn: None,
                account_id: None,
                access_key_id: self.ctx.access_key_id().map(str::to_owned),
                user_name: None,
                invoked_by: None,
            }
        } else {
            UserIdentity {
                kind: Some(p.identity_type().into()),
                principal_id: Some(p.principal_id()),
                arn: Some(p.arn().to_owned()),
                account_id: Some(p.account().to_owned()),
                access_key_id: self.ctx.access_key_id().map(str::to_owned),
                user_name: p.name().map(str::to_owned),
                invoked_by: call.invoked_by.map(str::to_owned),
            }
        };
        let uuid = || {
            uuid::Builder::from_random_bytes(crate::crypto::random_array())
                .into_uuid()
                .to_string()
        };
        let event = Event {
            event_version: "1.11".into(),
            user_identity: identity,
            event_time: crate::store::format_time(self.home.now()),
            event_source: call.source.into(),
            event_name: call.name.into(),
            aws_region: self.region.to_string(),
            source_ip_address: if call.service_event || call.invoked_by.is_some() {
                "AWS Internal".into()
            } else {
                self.ctx.source_ip().to_owned()
            },
            user_agent: if call.service_event {
                "AWS Internal".into()
            } else {
                self.ctx.user_agent().to_owned()
            },
            error_code: error.map(|e| error_code(e, call.source)),
            error_message: error.map(|e| e.to_string()),
            request_parameters: if call.params.is_empty() || call.service_event {
                Value::Null
            } else {
                Value::Object(call.params.clone())
            },
            response_elements,
            additional_event_data: None,
            // The front end's id names the caller's own request; the events a service makes
            // for it (EBS's KMS calls) and upkeep get their own.
            request_id: match self.ctx.request_id() {
                Some(id) if call.invoked_by.is_none() && !call.service_event => id.to_owned(),
                _ => uuid(),
            },
            event_id: uuid(),
            read_only: call.read_only,
            resources: key_arns
                .into_iter()
                .map(|arn| Resource {
                    account_id: account.clone(),
                    kind: "AWS::KMS::Key".into(),
                    arn,
                })
                .collect(),
            event_type: if call.service_event {
                "AwsServiceEvent"
            } else {
                "AwsApiCall"
            }
            .into(),
            management_event: true,
            service_event_details: call
                .service_event
                .then(|| serde_json::json!({ "keyId": call.param_str("keyId") })),
            recipient_account_id: account,
            event_category: "Management".into(),
            cofre_sequence: 0,
            cofre_previous: String::new(),
            cofre_chain: None,
        };
        self.trail().append(event)
    }
}
