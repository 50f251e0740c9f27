//! Grants: CreateGrant, ListGrants, RetireGrant, RevokeGrant. A grant lets its grantee make
//! exactly the operations it names on one key, under its encryption-context constraints; it
//! adds to the key policy, and an explicit Deny there still wins.

use super::audited::Call;
use super::{invalid_state, KeyRef, Kms};
use crate::error::{Error, KmsCode, Result};
use crate::keyring::{Grant, GrantConstraints, KeyRecord, KeyState};
use crate::store;
use std::collections::BTreeMap;

/// The operations a grant may name (symmetric keys).
pub const GRANT_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "Sign",
    "Verify",
    "GetPublicKey",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
];

/// The grant operations that suit a key's type and usage.
fn operations_for(m: &crate::keyring::KeyMetadata) -> Vec<&'static str> {
    use crate::keyring::{KeySpec, KeyUsage};
    let mut ops = vec!["CreateGrant", "RetireGrant", "DescribeKey"];
    ops.extend_from_slice(match (m.key_usage, m.key_spec) {
        (KeyUsage::EncryptDecrypt, KeySpec::SymmetricDefault) => &[
            "Decrypt",
            "Encrypt",
            "GenerateDataKey",
            "GenerateDataKeyWithoutPlaintext",
            "ReEncryptFrom",
            "ReEncryptTo",
            "GenerateDataKeyPair",
            "GenerateDataKeyPairWithoutPlaintext",
        ][..],
        (KeyUsage::EncryptDecrypt, _) => &[
            "Decrypt",
            "Encrypt",
            "ReEncryptFrom",
            "ReEncryptTo",
            "GetPublicKey",
        ],
        (KeyUsage::SignVerify, _) => &["Sign", "Verify", "GetPublicKey"],
        (KeyUsage::GenerateVerifyMac, _) => &["GenerateMac", "VerifyMac"],
        (KeyUsage::KeyAgreement, _) => &["DeriveSharedSecret", "GetPublicKey"],
    });
    ops
}

/// Most grants per key (KMS quota).
pub const MAX_GRANTS_PER_KEY: usize = 50_000;

/// What CreateGrant takes.
#[derive(Debug, Clone, Default)]
pub struct CreateGrantRequest {
    pub grantee: String,
    pub operations: Vec<String>,
    pub retiring_principal: Option<String>,
    pub name: Option<String>,
    pub constraints: GrantConstraints,
}

/// True if `grant` lets `principal` make `operation` with `context`.
pub(super) fn grant_allows(
    grant: &Grant,
    principal: &crate::audit::Principal,
    operation: &str,
    context: &[(String, String)],
) -> bool {
    let grantee = &grant.grantee_principal;
    let who = grantee == principal.arn()
        || *grantee == format!("arn:aws:iam::{}:root", principal.account());
    if !who || !grant.operations.iter().any(|o| o == operation) {
        return false;
    }
    let ctx: BTreeMap<&str, &str> = context
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let Some(sub) = &grant.constraints.encryption_context_subset {
        if !sub
            .iter()
            .all(|(k, v)| ctx.get(k.as_str()) == Some(&v.as_str()))
        {
            return false;
        }
    }
    if let Some(eq) = &grant.constraints.encryption_context_equals {
        let same = eq.len() == ctx.len()
            && eq
                .iter()
                .all(|(k, v)| ctx.get(k.as_str()) == Some(&v.as_str()));
        if !same {
            return false;
        }
    }
    true
}

impl Kms {
    fn grant_target(
        &self,
        key: &KeyRef,
        call: &Call,
    ) -> Result<(crate::keyring::RegionStore<'_>, KeyRecord)> {
        let store = self.store()?;
        let record = self.resolve(&store, key, false, call)?;
        Ok((store, record))
    }

    /// CreateGrant: returns the new grant's id and its grant token.
    pub fn create_grant(
        &self,
        key: &KeyRef,
        req: &CreateGrantRequest,
    ) -> Result<crate::api::kms::CreateGrantResponse> {
        self.audited(
            Call::new("CreateGrant", false)
                .key(key)
                .param("granteePrincipal", &req.grantee)
                .param("operations", &req.operations)
                .param("retiringPrincipal", &req.retiring_principal)
                .param("name", &req.name),
            |call| {
                crate::audit::Principal::parse(&req.grantee)?;
                if let Some(r) = &req.retiring_principal {
                    crate::audit::Principal::parse(r)?;
                }
                if req.operations.is_empty() {
                    return Err(Error::kms(
                        KmsCode::ValidationException,
                        "a grant needs at least one operation (--operations Decrypt,Encrypt,…)",
                    ));
                }
                for op in &req.operations {
                    if !GRANT_OPERATIONS.contains(&op.as_str()) {
                        return Err(Error::kms(
                            KmsCode::ValidationException,
                            format!(
                                "{op:?} is not a grant operation for this key; use {}",
                                GRANT_OPERATIONS.join(", ")
                            ),
                        ));
                    }
                }
                let c = &req.constraints;
                if c.encryption_context_subset.is_some() && c.encryption_context_equals.is_some() {
                    return Err(Error::kms(
                        KmsCode::ValidationException,
                        "give --context-subset or --context-equals, not both",
                    ));
                }
                let (store, _) = self.grant_target(key, call)?;
                let _lock = store.lock()?;
                let mut record = self.resolve(&store, key, false, call)?;
                match record.key_metadata.key_state {
                    KeyState::Enabled => {}
                    KeyState::Disabled => {
                        return Err(Error::kms(
                            KmsCode::DisabledException,
                            format!("{} is disabled", record.key_metadata.arn),
                        ))
                    }
                    s => return Err(invalid_state(&record.key_metadata.arn, s)),
                }
                let fits = operations_for(&record.key_metadata);
                if let Some(op) = req
                    .operations
                    .iter()
                    .find(|op| !fits.contains(&op.as_str()))
                {
                    return Err(Error::kms(
                        KmsCode::ValidationException,
                        format!(
                            "{op} does not apply to {}, a {} key for {}; its grants take {}",
                            record.key_metadata.arn,
                            record.key_metadata.key_spec,
                            record.key_metadata.key_usage,
                            fits.join(", ")
                        ),
                    ));
                }
                if record.grants.len() >= MAX_GRANTS_PER_KEY {
                    return Err(Error::kms(
                        KmsCode::LimitExceededException,
                        format!(
                            "{} has {MAX_GRANTS_PER_KEY} grants; retire some first",
                            record.key_metadata.arn
                        ),
                    ));
                }
                let id = hex::encode(crate::crypto::random_array::<32>());
                record.grants.push(Grant {
                    grant_id: id.clone(),
                    key_id: record.key_metadata.arn.clone(),
                    grantee_principal: req.grantee.clone(),
                    retiring_principal: req.retiring_principal.clone(),
                    operations: req.operations.clone(),
                    constraints: req.constraints.clone(),
                    name: req.name.clone(),
                    creation_date: store::format_time(self.home.now()),
                    issuing_account: format!("arn:aws:iam::{}:root", self.principal().account()),
                });
                store.save_key(&record)?;
                Ok(crate::api::kms::CreateGrantResponse {
                    grant_token: self.grant_token(&id),
                    grant_id: id,
                })
            },
        )
    }

    /// The grant token of a grant: its id and a MAC of it under an AWS owned key, so a token
    /// names one grant of this home and cannot be made up. (KMS needs tokens to use a grant
    /// before it is visible everywhere; cofre's grants take effect at once, so requests need
    /// none.)
    pub(crate) fn grant_token(&self, grant_id: &str) -> String {
        let key = self.home.aws_owned_key("grant tokens");
        let mac = blake3::keyed_hash(key.expose(), grant_id.as_bytes());
        super::base64_encode(format!("{grant_id}.{}", mac.to_hex()).as_bytes())
    }

    /// ListGrants.
    pub fn list_grants(&self, key: &KeyRef) -> Result<Vec<Grant>> {
        self.audited(Call::new("ListGrants", true).key(key), |call| {
            Ok(self.grant_target(key, call)?.1.grants)
        })
    }

    /// RetireGrant: by the grant's retiring principal, or its grantee if it grants RetireGrant.
    pub fn retire_grant(&self, key: &KeyRef, grant_id: &str) -> Result<()> {
        self.remove_grant(Call::new("RetireGrant", false), key, grant_id, true)
    }

    /// RevokeGrant: needs kms:RevokeGrant in the key policy.
    pub fn revoke_grant(&self, key: &KeyRef, grant_id: &str) -> Result<()> {
        self.remove_grant(Call::new("RevokeGrant", false), key, grant_id, false)
    }

    fn remove_grant(&self, call: Call, key: &KeyRef, grant_id: &str, retire: bool) -> Result<()> {
        let call = call.key(key).param("grantId", grant_id);
        let name = call.name();
        self.audited(call, |call| {
            let store = self.store()?;
            let _lock = store.lock()?;
            // Retiring is decided by the grant, not the policy: resolve without the check.
            let mut record = if retire {
                self.resolve_for_grant(&store, key)?
            } else {
                self.resolve(&store, key, false, call)?
            };
            let Some(at) = record.grants.iter().position(|g| g.grant_id == grant_id) else {
                return Err(Error::kms(
                    KmsCode::NotFoundException,
                    format!("{} has no grant {grant_id}; `cofre key grant list` shows its grants", record.key_metadata.arn),
                ));
            };
            if retire {
                let g = &record.grants[at];
                let me = self.principal().arn();
                let may = g.retiring_principal.as_deref() == Some(me)
                    || (g.grantee_principal == me && g.operations.iter().any(|o| o == "RetireGrant"));
                if !may {
                    return Err(Error::kms(
                        KmsCode::AccessDeniedException,
                        format!("User: {me} may not retire grant {grant_id}: only its retiring principal, or its grantee if the grant includes RetireGrant ({name})"),
                    ));
                }
            }
            record.grants.remove(at);
            store.save_key(&record)
        })
    }
}
