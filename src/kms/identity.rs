//! Identity policies: what IAM would give, for a home with no IAM of its own.
//!
//! In AWS a key policy statement naming the account root (`arn:aws:iam::ACCOUNT:root`, as the
//! default key policy's does) lets the account's IAM policies grant access to the key; cofre
//! has no IAM, so such a statement lets in every principal of the account. An identity policy
//! attached to a principal of the home's account (`cofre principal policy put ARN FILE`, one
//! per principal, the root excepted) makes that principal be judged as AWS would judge it
//! ([`Kms::authorize`]):
//!
//! - an explicit Deny in the key policy or in the identity policy wins;
//! - else a key policy statement naming the principal itself (or `*`) allows;
//! - else a statement naming only its account allows if the identity policy allows too;
//! - grants add to that, as before; anything else is denied.
//!
//! A principal without an identity policy keeps the account's full trust, as before.
//! Principals of other accounts have no identity policies here: their own account's IAM is
//! not this home's.
//!
//! The policies live in `HOME/iam/policies.json` (principal ARN → policy text), replaced
//! atomically under `HOME/iam/.lock`. IAM is global, not regional: every region of the home
//! sees the same policies. Only the account root attaches, reads, lists or removes them; each
//! request is recorded in the trail of the region it is made in, as CloudTrail records IAM's
//! PutUserPolicy / PutRolePolicy, GetUserPolicy / GetRolePolicy, DeleteUserPolicy /
//! DeleteRolePolicy and GetAccountAuthorizationDetails (`iam.amazonaws.com`).

use super::policy::{self, Decision};
use super::{Call, Kms};
use crate::audit::Principal;
use crate::error::{Error, KmsCode, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The policy name the trail records (an identity policy of cofre is one inline policy).
const POLICY_NAME: &str = "cofre";

/// One principal's identity policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IdentityPolicy {
    pub principal_arn: String,
    /// The policy document (JSON text).
    pub policy_document: String,
}

impl super::audited::Audited for IdentityPolicy {}

impl Kms {
    fn iam_dir(&self) -> PathBuf {
        self.home.root().join("iam")
    }

    /// Every identity policy of the home, by principal ARN.
    fn identity_policies(&self) -> Result<BTreeMap<String, String>> {
        let path = self.iam_dir().join("policies.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Damaged(format!("{} ({e})", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io("reading", &path, e)),
        }
    }

    /// The identity policy's decision for a request, if the caller has one (principals of the
    /// home's account other than the root).
    pub(crate) fn identity_decision(
        &self,
        ctx: &policy::PolicyRequest<'_>,
    ) -> Result<Option<Decision>> {
        let p = ctx.principal;
        if p.account() != self.home.account_id() || p.name().is_none() {
            return Ok(None);
        }
        let Some(text) = self.identity_policies()?.remove(p.arn()) else {
            return Ok(None);
        };
        let doc = policy::validate_identity(&text)
            .map_err(|e| Error::Damaged(format!("the identity policy of {} ({e})", p.arn())))?;
        Ok(Some(policy::evaluate_identity(&doc, ctx)))
    }

    /// The principal an identity policy request names: a user or role of this account.
    fn policy_holder(&self, arn: &str) -> Result<Principal> {
        let p = Principal::parse(arn)?;
        if p.account() != self.home.account_id() || p.name().is_none() {
            return Err(Error::usage(format!(
                "{arn}: identity policies attach to users and roles of this home's account ({}); the root needs none, and other accounts' IAM is not this home's",
                self.home.account_id()
            )));
        }
        Ok(p)
    }

    /// Only the account root manages identity policies (cofre's stand-in for IAM's admins).
    fn root_only(&self, call: &Call) -> Result<()> {
        let me = self.principal();
        if me.name().is_some() {
            return Err(Error::kms(
                KmsCode::AccessDeniedException,
                format!(
                    "User: {} is not authorized to perform: {}: only the account root manages identity policies",
                    me.arn(),
                    call.action()
                ),
            ));
        }
        Ok(())
    }

    /// The call recorded for a request on `holder`'s policy: the user or role form of `op`.
    fn iam_call(op: &str, holder: &Principal, read_only: bool) -> Call {
        let user = holder.arn().contains(":user/");
        let name: &'static str = match (op, user) {
            ("Put", true) => "PutUserPolicy",
            ("Put", false) => "PutRolePolicy",
            ("Get", true) => "GetUserPolicy",
            ("Get", false) => "GetRolePolicy",
            (_, true) => "DeleteUserPolicy",
            (_, false) => "DeleteRolePolicy",
        };
        Call::iam(name, read_only)
            .param(
                if user { "userName" } else { "roleName" },
                holder.name().unwrap_or_default(),
            )
            .param("policyName", POLICY_NAME)
    }

    /// Attaches `text` as the identity policy of `principal_arn` (a user or role of this
    /// account), replacing the one it had.
    pub fn put_principal_policy(&self, principal_arn: &str, text: &str) -> Result<()> {
        let holder = self.policy_holder(principal_arn)?;
        self.audited(Self::iam_call("Put", &holder, false), |call| {
            self.root_only(call)?;
            policy::validate_identity(text)?;
            self.change_policies(|all| {
                all.insert(holder.arn().to_owned(), text.to_owned());
                Ok(())
            })
        })
    }

    /// The identity policy of `principal_arn`.
    pub fn get_principal_policy(&self, principal_arn: &str) -> Result<IdentityPolicy> {
        let holder = self.policy_holder(principal_arn)?;
        self.audited(Self::iam_call("Get", &holder, true), |call| {
            self.root_only(call)?;
            let text = self
                .identity_policies()?
                .remove(holder.arn())
                .ok_or_else(|| no_policy(holder.arn()))?;
            Ok(IdentityPolicy {
                principal_arn: holder.arn().to_owned(),
                policy_document: text,
            })
        })
    }

    /// Removes the identity policy of `principal_arn`: it has the account's full trust again.
    pub fn delete_principal_policy(&self, principal_arn: &str) -> Result<()> {
        let holder = self.policy_holder(principal_arn)?;
        self.audited(Self::iam_call("Delete", &holder, false), |call| {
            self.root_only(call)?;
            self.change_policies(|all| {
                all.remove(holder.arn())
                    .map(drop)
                    .ok_or_else(|| no_policy(holder.arn()))
            })
        })
    }

    /// Every identity policy of the home, in principal ARN order.
    pub fn list_principal_policies(&self) -> Result<Vec<IdentityPolicy>> {
        self.audited(Call::iam("GetAccountAuthorizationDetails", true), |call| {
            self.root_only(call)?;
            Ok(self
                .identity_policies()?
                .into_iter()
                .map(|(principal_arn, policy_document)| IdentityPolicy {
                    principal_arn,
                    policy_document,
                })
                .collect())
        })
    }

    /// Changes the policies under the lock and replaces the file atomically.
    fn change_policies(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<()>,
    ) -> Result<()> {
        let dir = self.iam_dir();
        crate::store::create_dir(&dir)?;
        let _lock = crate::store::lock(&dir.join(".lock"))?;
        let mut all = self.identity_policies()?;
        change(&mut all)?;
        let json = serde_json::to_vec_pretty(&all).expect("serializable");
        crate::store::write_atomic(&dir.join("policies.json"), &json, 0o600)
    }
}

fn no_policy(arn: &str) -> Error {
    Error::kms(
        KmsCode::NotFoundException,
        format!("{arn} has no identity policy; `cofre principal policy list` lists them"),
    )
}
