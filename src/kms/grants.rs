//! Grants: CreateGrant, ListGrants, RetireGrant, RevokeGrant. A grant lets its grantee make
//! exactly the operations it names on one key, under its encryption-context constraints
//! (context keys compared case-insensitively, values exactly, as KMS does); it adds to the key
//! policy, and an explicit Deny there still wins.
//!
//! Grant tokens: CreateGrant returns one per grant. A token is base64 of
//! `grant id ‖ "\n" ‖ key ARN ‖ "\n" ‖ hex(keyed BLAKE3(grant id ‖ 0 ‖ key ARN))` under an AWS owned
//! key, so it names one grant of one key of this home and cannot be made up. Requests take
//! them through [`crate::RequestContext::with_grant_tokens`] (KMS's `GrantTokens`, at most 10,
//! each 1–8192 characters): the operations whose model lists `InvalidGrantTokenException`
//! refuse a token that does not verify; DescribeKey checks their shape only. RetireGrant takes
//! one token in place of the key and grant id ([`Kms::retire_grant_with_token`]).

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

/// Most grant tokens one request takes (KMS `GrantTokenList`).
pub const MAX_GRANT_TOKENS: usize = 10;
/// Longest grant token (KMS `GrantTokenType`).
pub const MAX_GRANT_TOKEN_LEN: usize = 8192;

/// The cross-account operations whose requests take `GrantTokens` but whose model lists no
/// InvalidGrantTokenException (DescribeKey: tokens checked for shape only) or that take none.
/// Every other cross-account operation takes them and refuses a token that does not verify;
/// no other operation takes them.
const NO_GRANT_TOKEN_CHECK: &[&str] = &[
    "DescribeKey",
    "GetKeyRotationStatus",
    "ListGrants",
    "RetireGrant",
    "RevokeGrant",
];

/// Whether `api`'s requests take `GrantTokens` and refuse one that does not verify.
fn verifies_grant_tokens(api: &str) -> bool {
    super::CROSS_ACCOUNT_OPERATIONS.contains(&api) && !NO_GRANT_TOKEN_CHECK.contains(&api)
}

/// True if every pair of `constraint` is in `context`: keys compared case-insensitively,
/// values exactly (KMS's EncryptionContextSubset).
fn context_covers(context: &[(String, String)], constraint: &BTreeMap<String, String>) -> bool {
    constraint.iter().all(|(k, v)| {
        context
            .iter()
            .any(|(ck, cv)| cv == v && ck.to_lowercase() == k.to_lowercase())
    })
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
    if let Some(sub) = &grant.constraints.encryption_context_subset {
        if !context_covers(context, sub) {
            return false;
        }
    }
    if let Some(eq) = &grant.constraints.encryption_context_equals {
        // The same pairs both ways: every constraint pair in the context, and every context
        // pair in the constraint.
        let pairs: Vec<(String, String)> = eq.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let asked: BTreeMap<String, String> = context.iter().cloned().collect();
        let same = context_covers(context, eq) && context_covers(&pairs, &asked);
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
                    grant_token: self.grant_token(&record.key_metadata.arn, &id),
                    grant_id: id,
                })
            },
        )
    }

    /// The grant token of grant `grant_id` of the key `key_arn` (see the module docs).
    pub(crate) fn grant_token(&self, key_arn: &str, grant_id: &str) -> String {
        let mac = self.grant_token_mac(key_arn, grant_id);
        super::base64_encode(format!("{grant_id}\n{key_arn}\n{}", mac.to_hex()).as_bytes())
    }

    fn grant_token_mac(&self, key_arn: &str, grant_id: &str) -> blake3::Hash {
        let key = self.home.aws_owned_key("grant tokens");
        let mut h = blake3::Hasher::new_keyed(key.expose());
        h.update(grant_id.as_bytes());
        h.update(&[0]);
        h.update(key_arn.as_bytes());
        h.finalize()
    }

    /// The key ARN and grant id a grant token names, if this home issued it.
    fn open_grant_token(&self, token: &str) -> Result<(String, String)> {
        use base64::Engine;
        let invalid = || {
            Error::kms(
                KmsCode::InvalidGrantTokenException,
                "a grant token is not one this home's CreateGrant issued (damaged, made up, or from another home); use the GrantToken CreateGrant returned",
            )
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token)
            .map_err(|_| invalid())?;
        let text = String::from_utf8(raw).map_err(|_| invalid())?;
        let mut parts = text.split('\n');
        let (Some(id), Some(arn), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let mac = blake3::Hash::from_hex(mac).map_err(|_| invalid())?;
        // blake3::Hash compares in constant time.
        if mac != self.grant_token_mac(arn, id) {
            return Err(invalid());
        }
        Ok((arn.to_owned(), id.to_owned()))
    }

    /// Checks the request's grant tokens: at most 10, each 1–8192 characters, and, for the
    /// operations that refuse bad ones, each issued by this home.
    pub(crate) fn check_grant_tokens(&self, call: &Call) -> Result<()> {
        let tokens = self.ctx.grant_tokens();
        if tokens.is_empty() || call.invoked_by().is_some() {
            return Ok(());
        }
        let api = call.api_name();
        let verified = verifies_grant_tokens(api);
        if !verified && api != "DescribeKey" {
            return Err(Error::kms(
                KmsCode::ValidationException,
                format!("{api} takes no grant tokens; drop --grant-tokens"),
            ));
        }
        if tokens.len() > MAX_GRANT_TOKENS {
            return Err(Error::kms(
                KmsCode::ValidationException,
                format!(
                    "{} grant tokens given; a request takes at most {MAX_GRANT_TOKENS}",
                    tokens.len()
                ),
            ));
        }
        for t in tokens {
            if t.is_empty() || t.len() > MAX_GRANT_TOKEN_LEN {
                return Err(Error::kms(
                    KmsCode::ValidationException,
                    format!(
                        "a grant token is 1 to {MAX_GRANT_TOKEN_LEN} characters, not {}",
                        t.len()
                    ),
                ));
            }
            if verified {
                self.open_grant_token(t)?;
            }
        }
        Ok(())
    }

    /// ListGrants.
    pub fn list_grants(&self, key: &KeyRef) -> Result<Vec<Grant>> {
        self.audited(Call::new("ListGrants", true).key(key), |call| {
            Ok(self.grant_target(key, call)?.1.grants)
        })
    }

    /// RetireGrant: by the grant's retiring principal, its grantee if it grants RetireGrant,
    /// or the account that created it (its root).
    pub fn retire_grant(&self, key: &KeyRef, grant_id: &str) -> Result<()> {
        self.remove_grant(Call::new("RetireGrant", false), key, grant_id, true)
    }

    /// RetireGrant by the grant's token instead of its key and id (KMS's `GrantToken`).
    pub fn retire_grant_with_token(&self, token: &str) -> Result<()> {
        let call = Call::new("RetireGrant", false);
        let (arn, id) = match self.open_grant_token(token) {
            Ok(named) => named,
            // Recorded like any refused request.
            Err(e) => return self.audited(call, |_| Err::<(), _>(e)),
        };
        self.remove_grant(call, &arn.parse()?, &id, true)
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
                    || (g.grantee_principal == me && g.operations.iter().any(|o| o == "RetireGrant"))
                    || g.issuing_account == me;
                if !may {
                    return Err(Error::kms(
                        KmsCode::AccessDeniedException,
                        format!("User: {me} may not retire grant {grant_id}: only its retiring principal, its grantee if the grant includes RetireGrant, or the root of the account that created it, {} ({name})", g.issuing_account),
                    ));
                }
            }
            record.grants.remove(at);
            store.save_key(&record)
        })
    }
}
