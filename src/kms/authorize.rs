//! Authorization: every request that names a key is checked against that key's policy, the
//! caller's identity policy if it has one (`identity.rs`) and the key's grants before it
//! touches the key ([`Kms::authorize`], called when a key is resolved); before any of that,
//! a principal of another account is refused every operation KMS does not allow across
//! accounts ([`CROSS_ACCOUNT_OPERATIONS`], [`Kms::own_account_only`]). GetKeyPolicy and
//! PutKeyPolicy with the lockout safety check.

use super::audited::Call;
use super::policy::{self, Decision, PolicyRequest};
use super::{aws_managed, KeyRef, Kms};
use crate::error::{Error, KmsCode, Result};
use crate::keyring::{KeyManager, KeyRecord};
use std::collections::BTreeMap;

/// The KMS operations a principal of another account may make on a key of this account
/// ("Cross-account use: Yes" in each operation's documentation in AWS's service model, and in
/// the AWS KMS permissions reference), given the key's ARN and a key policy (or grant) that
/// lets it. Every other operation — key management, aliases, policies, rotation, imported
/// material, multi-Region keys, and the requests that name no key (CreateKey, ListKeys,
/// ListAliases) — is refused to another account's principal whatever the key policy says, with
/// AccessDeniedException. GenerateRandom names no key and no account ("Not applicable"): any
/// caller may make it.
pub const CROSS_ACCOUNT_OPERATIONS: &[&str] = &[
    "CreateGrant",
    "Decrypt",
    "DeriveSharedSecret",
    "DescribeKey",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "GetKeyRotationStatus",
    "GetPublicKey",
    "ListGrants",
    "ReEncrypt",
    "RetireGrant",
    "RevokeGrant",
    "Sign",
    "Verify",
    "VerifyMac",
];

/// Operations that involve no account's resources at all.
const ANY_ACCOUNT: &[&str] = &["GenerateRandom"];

impl Kms {
    /// The policy in force on a key, as its text (the default key policy if none was set).
    pub(crate) fn policy_text(&self, record: &KeyRecord) -> String {
        match &record.policy {
            Some(t) => t.clone(),
            None => serde_json::to_string_pretty(&policy::default_policy(self.home.account_id()))
                .expect("serializable"),
        }
    }

    /// The policy in force on a key, as JSON.
    fn policy_of(&self, record: &KeyRecord) -> serde_json::Value {
        match &record.policy {
            Some(text) => serde_json::from_str(text).unwrap_or(serde_json::Value::Null),
            None => policy::default_policy(self.home.account_id()),
        }
    }

    fn request_context<'a>(
        &'a self,
        call: &Call,
        arn: &'a str,
        record: Option<&KeyRecord>,
    ) -> PolicyRequest<'a> {
        let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
        keys.insert(
            "kms:CallerAccount".into(),
            vec![self.principal().account().to_owned()],
        );
        keys.insert(
            "aws:PrincipalArn".into(),
            vec![self.principal().arn().to_owned()],
        );
        let via = call.via_service(self.region.as_str());
        keys.insert("aws:ViaAWSService".into(), vec![via.is_some().to_string()]);
        if let Some(via) = via {
            keys.insert("kms:ViaService".into(), vec![via]);
        }
        if let Some(r) = record {
            let m = &r.key_metadata;
            let name = |v: &dyn erased::Named| v.name();
            keys.insert("kms:KeySpec".into(), vec![name(&m.key_spec)]);
            keys.insert("kms:KeyOrigin".into(), vec![name(&m.origin)]);
            keys.insert("kms:KeyUsage".into(), vec![name(&m.key_usage)]);
        }
        for (param, key) in [
            ("encryptionAlgorithm", "kms:EncryptionAlgorithm"),
            ("signingAlgorithm", "kms:SigningAlgorithm"),
            ("macAlgorithm", "kms:MacAlgorithm"),
            ("messageType", "kms:MessageType"),
            ("keyAgreementAlgorithm", "kms:KeyAgreementAlgorithm"),
        ] {
            if let Some(v) = call.param_str(param) {
                keys.insert(key.into(), vec![v.to_owned()]);
            }
        }
        let context = call.encryption_context();
        if !context.is_empty() {
            keys.insert(
                "kms:EncryptionContextKeys".into(),
                context.iter().map(|(k, _)| k.clone()).collect(),
            );
            for (k, v) in context {
                keys.insert(format!("kms:EncryptionContext:{k}"), vec![v]);
            }
        }
        PolicyRequest {
            principal: self.principal(),
            action: call.action(),
            resource: arn,
            keys,
        }
    }

    /// Checks `call` against `record`'s key policy and grants. Events cofre's KMS carries out
    /// on its own (rotation, deletion) act for no caller and are not checked.
    pub(crate) fn authorize(&self, record: &KeyRecord, call: &Call) -> Result<()> {
        if call.is_service_event() {
            return Ok(());
        }
        let arn = &record.key_metadata.arn;
        let ctx = self.request_context(call, arn, Some(record));
        let crypto = [
            "kms:Encrypt",
            "kms:Decrypt",
            "kms:ReEncrypt",
            "kms:GenerateDataKey",
        ]
        .iter()
        .any(|a| ctx.action.starts_with(a));
        // The key policy, and the caller's identity policy if it has one (identity.rs): an
        // explicit Deny in either wins; a statement naming only the caller's account allows
        // a caller with an identity policy only if that policy allows too.
        let key_policy = policy::evaluate_key_policy(&self.policy_of(record), &ctx);
        let identity = self.identity_decision(&ctx)?;
        let denied_by = match (key_policy.decision, identity) {
            (Decision::ExplicitDeny, _) => Some("its key policy"),
            (_, Some(Decision::ExplicitDeny)) => Some("the caller's identity policy"),
            _ => None,
        };
        let decision = match (key_policy.decision, identity) {
            _ if denied_by.is_some() => Decision::ExplicitDeny,
            (Decision::Allow, _) if !key_policy.by_account_only => Decision::Allow,
            (Decision::Allow, None | Some(Decision::Allow)) => Decision::Allow,
            _ => Decision::ImplicitDeny,
        };
        let decision = match decision {
            // Grants add to the policies; an explicit Deny still wins.
            Decision::ImplicitDeny
                if record.grants.iter().any(|g| {
                    super::grants::grant_allows(
                        g,
                        self.principal(),
                        call.name(),
                        &call.encryption_context(),
                    )
                }) =>
            {
                Decision::Allow
            }
            d => d,
        };
        match decision {
            Decision::Allow => Ok(()),
            // Management of an AWS managed key is refused by its service rule, with
            // UnsupportedOperationException, as before any policy.
            _ if record.key_metadata.key_manager == KeyManager::Aws && !crypto => Ok(()),
            d => Err(Error::kms(
                KmsCode::AccessDeniedException,
                format!(
                    "User: {} is not authorized to perform: {} on resource: {arn} because {}",
                    self.principal().arn(),
                    ctx.action,
                    if d == Decision::ExplicitDeny {
                        format!(
                            "of an explicit deny in {}",
                            denied_by.unwrap_or("its key policy")
                        )
                    } else if record.key_metadata.key_manager == KeyManager::Aws {
                        "it is an AWS managed key, usable only through its own service; use a customer managed key (`cofre key create`)".to_owned()
                    } else if key_policy.decision == Decision::Allow {
                        "its key policy lets the account's identity policies decide, and the caller's identity policy does not allow it; `cofre principal policy get` shows it".to_owned()
                    } else {
                        "no statement of its key policy allows it; `cofre key policy get` shows the policy".to_owned()
                    }
                ),
            )),
        }
    }

    /// Refuses another account's principal every operation KMS does not allow across accounts
    /// ([`CROSS_ACCOUNT_OPERATIONS`]), whatever the key policy says, and every EBS request (EBS
    /// resources belong to the account). Requests a cofre service makes for its caller (EBS's
    /// KMS calls) are judged by the service's own request.
    pub(crate) fn own_account_only(&self, call: &Call) -> Result<()> {
        let foreign = self.principal().account() != self.home.account_id();
        if !foreign || call.invoked_by().is_some() || call.is_service_event() {
            return Ok(());
        }
        let kms = call.action().starts_with("kms:");
        let api = call.api_name();
        if kms && (CROSS_ACCOUNT_OPERATIONS.contains(&api) || ANY_ACCOUNT.contains(&api)) {
            return Ok(());
        }
        Err(Error::kms(
            KmsCode::AccessDeniedException,
            format!(
                "User: {} is not authorized to perform: {} in account {}: {}",
                self.principal().arn(),
                call.action(),
                self.home.account_id(),
                if kms {
                    "KMS does not allow this operation across accounts, whatever the key policy says; only that account's principals may make it"
                } else {
                    "only that account's principals may"
                }
            ),
        ))
    }

    /// The lockout safety check: refuses a policy that would stop the caller from changing it.
    pub(crate) fn check_lockout(&self, text: &str, arn: &str) -> Result<()> {
        let doc = policy::validate(text)?;
        let call = Call::new("PutKeyPolicy", false);
        let ctx = self.request_context(&call, arn, None);
        if policy::evaluate(&doc, &ctx) != Decision::Allow {
            return Err(Error::kms(
                KmsCode::MalformedPolicyDocumentException,
                format!(
                    "the new key policy will not allow you ({}) to update the key policy in the future; fix it, or pass --bypass-lockout-check",
                    self.principal().arn()
                ),
            ));
        }
        Ok(())
    }

    /// GetKeyPolicy (policy name `default`).
    pub fn get_key_policy(&self, key: &KeyRef) -> Result<crate::api::kms::GetKeyPolicyResponse> {
        self.audited(
            Call::new("GetKeyPolicy", true)
                .key(key)
                .param("policyName", "default"),
            |call| {
                let store = self.store()?;
                let record = self.resolve(&store, key, false, call)?;
                Ok(crate::api::kms::GetKeyPolicyResponse {
                    policy: self.policy_text(&record),
                    policy_name: "default".into(),
                })
            },
        )
    }

    /// PutKeyPolicy: validates the document, checks the caller is not locked out (unless
    /// `bypass`), and replaces the key's policy.
    pub fn put_key_policy(&self, key: &KeyRef, text: &str, bypass: bool) -> Result<()> {
        self.audited(
            Call::new("PutKeyPolicy", false)
                .key(key)
                .param("policyName", "default")
                .param("bypassPolicyLockoutSafetyCheck", bypass),
            |call| {
                policy::validate(text)?;
                let store = self.store()?;
                let _lock = store.lock()?;
                let mut record = self.resolve(&store, key, false, call)?;
                aws_managed::customer_managed_only(&record)?;
                if !bypass {
                    self.check_lockout(text, &record.key_metadata.arn)?;
                }
                record.policy = Some(text.to_owned());
                store.save_key(&record)
            },
        )
    }
}

/// KMS enum values as their JSON names.
mod erased {
    pub trait Named {
        fn name(&self) -> String;
    }
    impl<T: serde::Serialize> Named for T {
        fn name(&self) -> String {
            serde_json::to_value(self)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        }
    }
}
