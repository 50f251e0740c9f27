//! Key policies, evaluated as AWS does: an explicit Deny wins, an Allow needs a statement whose
//! Principal, Action, Resource and every Condition match, and anything else is an implicit deny.
//!
//! Principals: `"*"`, `{"AWS": …}` with a user or role ARN (exact), or an account — its id or
//! `arn:aws:iam::ACCOUNT:root` — which matches every principal of that account. In AWS such a
//! statement delegates to the account's IAM policies; cofre has no IAM, so it lets in every
//! principal of the account — except one with an identity policy attached
//! (`cofre principal policy put`, see `identity.rs`), which is then let in only if its
//! identity policy allows the request ([`Outcome::by_account_only`]).
//!
//! Identity policies are the same documents without `Principal` (the principal is the one
//! they are attached to), checked by [`validate_identity`] and evaluated by
//! [`evaluate_identity`]. Actions and
//! resources take `*` and `?` wildcards, actions case-insensitively. Conditions: StringEquals,
//! StringNotEquals, StringEqualsIgnoreCase, StringLike, StringNotLike, Null and Bool, with the
//! `ForAnyValue:` / `ForAllValues:` set operators and the `IfExists` suffix; keys
//! `kms:EncryptionContext:<key>`, `kms:EncryptionContextKeys`, `kms:CallerAccount`,
//! `kms:ViaService`, `kms:KeySpec`, `kms:KeyOrigin`, `kms:KeyUsage`, the algorithm keys
//! (`kms:EncryptionAlgorithm`, `kms:SigningAlgorithm`, `kms:MacAlgorithm`, `kms:MessageType`,
//! `kms:KeyAgreementAlgorithm`), `aws:PrincipalArn` and
//! `aws:ViaAWSService` (a Bool: true for the calls a cofre service makes).

use crate::audit::Principal;
use crate::error::{Error, KmsCode, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The largest key policy KMS accepts.
pub const MAX_POLICY_BYTES: usize = 32 * 1024;

/// What a request asks, for policy evaluation.
#[derive(Debug, Clone)]
pub struct PolicyRequest<'a> {
    pub principal: &'a Principal,
    /// `kms:Decrypt`, …
    pub action: String,
    /// The key ARN.
    pub resource: &'a str,
    /// Condition keys and their values (several for multivalued keys).
    pub keys: BTreeMap<String, Vec<String>>,
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    ExplicitDeny,
    ImplicitDeny,
}

/// A key policy's decision, and how an Allow came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    /// The Allow came only from statements naming the caller's account (its id or root),
    /// which in AWS delegate to the account's IAM policies; none named the caller itself (or
    /// `*`).
    pub by_account_only: bool,
}

/// The largest identity policy (IAM's limit for a role's inline policies).
pub const MAX_IDENTITY_POLICY_BYTES: usize = 10_240;

/// The default key policy KMS gives a key created without one: the account root gets `kms:*`.
pub fn default_policy(account: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
}

/// The policy of an AWS managed key: its service may use it for the account's principals.
pub fn aws_managed_policy(account: &str, service: &str, region: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Id": format!("auto-{service}-1"),
        "Statement": [
            {
                "Sid": format!("Allow access through {} for all principals in the account that are authorized to use it", service.to_uppercase()),
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {
                    "kms:CallerAccount": account,
                    "kms:ViaService": format!("{}.{region}.amazonaws.com", if service == "ebs" { "ec2" } else { service })
                }}
            },
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*"],
                "Resource": "*"
            }
        ]
    })
}

fn malformed(why: impl std::fmt::Display) -> Error {
    Error::kms(
        KmsCode::MalformedPolicyDocumentException,
        format!("the policy is malformed: {why}"),
    )
}

/// Strings of a field that may be one string or a list of them.
fn strings(v: &Value, field: &str) -> Result<Vec<String>> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                _ => Err(malformed(format!("{field} holds a non-string"))),
            })
            .collect(),
        _ => Err(malformed(format!(
            "{field} must be a string or a list of strings"
        ))),
    }
}

const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "Null",
    "Bool",
];

/// Checks a key policy's shape and size (at most 32 KiB); the error names the field.
pub fn validate(text: &str) -> Result<Value> {
    validate_document(text, false)
}

/// Checks an identity policy: a policy document without `Principal`, at most 10,240 bytes.
pub fn validate_identity(text: &str) -> Result<Value> {
    validate_document(text, true)
}

fn validate_document(text: &str, identity: bool) -> Result<Value> {
    let (what, limit) = if identity {
        ("identity", MAX_IDENTITY_POLICY_BYTES)
    } else {
        ("key", MAX_POLICY_BYTES)
    };
    if text.len() > limit {
        return Err(Error::kms(
            KmsCode::LimitExceededException,
            format!(
                "the {what} policy is {} bytes; the limit is {} KiB",
                text.len(),
                limit as f64 / 1024.0
            ),
        ));
    }
    let doc: Value =
        serde_json::from_str(text).map_err(|e| malformed(format!("not JSON ({e})")))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| malformed("the document must be an object"))?;
    for k in obj.keys() {
        if !["Version", "Id", "Statement"].contains(&k.as_str()) {
            return Err(malformed(format!("unknown top-level field {k:?}")));
        }
    }
    match obj.get("Version").and_then(Value::as_str) {
        Some("2012-10-17") | Some("2008-10-17") => {}
        _ => return Err(malformed("Version must be \"2012-10-17\"")),
    }
    let stmts = match obj.get("Statement") {
        Some(Value::Array(a)) if !a.is_empty() => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => {
            return Err(malformed(
                "Statement must be a statement or a non-empty list of them",
            ))
        }
    };
    for (i, s) in stmts.iter().enumerate() {
        let at = |f: &str| format!("Statement[{i}].{f}");
        let s = s
            .as_object()
            .ok_or_else(|| malformed(format!("Statement[{i}] must be an object")))?;
        for k in s.keys() {
            if ![
                "Sid",
                "Effect",
                "Principal",
                "Action",
                "NotAction",
                "Resource",
                "Condition",
            ]
            .contains(&k.as_str())
            {
                return Err(malformed(format!("{} is not supported", at(k))));
            }
        }
        match s.get("Effect").and_then(Value::as_str) {
            Some("Allow") | Some("Deny") => {}
            _ => {
                return Err(malformed(format!(
                    "{} must be \"Allow\" or \"Deny\"",
                    at("Effect")
                )))
            }
        }
        match s.get("Principal") {
            Some(_) if identity => {
                return Err(malformed(format!(
                    "{}: an identity policy names no principal (it is the one it is attached to)",
                    at("Principal")
                )))
            }
            None if identity => {}
            Some(Value::String(p)) if p == "*" => {}
            Some(Value::Object(p)) if !p.is_empty() => {
                for (k, v) in p {
                    if k != "AWS" && k != "Service" {
                        return Err(malformed(format!(
                            "{} has unknown type {k:?}",
                            at("Principal")
                        )));
                    }
                    strings(v, &at("Principal"))?;
                }
            }
            _ => {
                return Err(malformed(format!(
                    "{} must be \"*\" or {{\"AWS\": …}}",
                    at("Principal")
                )))
            }
        }
        match (s.get("Action"), s.get("NotAction")) {
            (Some(a), None) => drop(strings(a, &at("Action"))?),
            (None, Some(a)) => drop(strings(a, &at("NotAction"))?),
            _ => {
                return Err(malformed(format!(
                    "{} needs exactly one of Action and NotAction",
                    at("")
                )))
            }
        }
        strings(
            s.get("Resource")
                .ok_or_else(|| malformed(format!("{} is missing", at("Resource"))))?,
            &at("Resource"),
        )?;
        if let Some(c) = s.get("Condition") {
            let c = c
                .as_object()
                .ok_or_else(|| malformed(format!("{} must be an object", at("Condition"))))?;
            for (op, block) in c {
                let base = op
                    .trim_start_matches("ForAnyValue:")
                    .trim_start_matches("ForAllValues:")
                    .trim_end_matches("IfExists");
                if !OPERATORS.contains(&base) {
                    return Err(malformed(format!(
                        "{} uses unsupported operator {op:?}",
                        at("Condition")
                    )));
                }
                let block = block.as_object().ok_or_else(|| {
                    malformed(format!(
                        "{} must map keys to values",
                        at(&format!("Condition.{op}"))
                    ))
                })?;
                for (k, v) in block {
                    strings(v, &at(&format!("Condition.{op}.{k}")))?;
                }
            }
        }
    }
    Ok(doc)
}

/// `*` and `?` wildcard match.
fn like(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// How a statement's Principal names the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Named {
    /// Through its account (id or root ARN), the caller not being the root itself.
    ByAccount,
    /// By its own ARN, or `*`.
    Directly,
}

fn principal_matches(spec: &Value, who: &Principal) -> Option<Named> {
    let root = format!("arn:aws:iam::{}:root", who.account());
    let named = |p: &str| {
        if p == "*" || p == who.arn() {
            Some(Named::Directly)
        } else if p == who.account() || p == root {
            Some(Named::ByAccount)
        } else {
            None
        }
    };
    match spec {
        Value::String(s) if s == "*" => Some(Named::Directly),
        Value::Object(o) => o.get("AWS").and_then(|v| {
            strings(v, "Principal")
                .unwrap_or_default()
                .iter()
                .filter_map(|p| named(p))
                .max()
        }),
        _ => None,
    }
}

fn condition_holds(op: &str, key: &str, want: &[String], ctx: &PolicyRequest) -> bool {
    let (set, rest) = if let Some(r) = op.strip_prefix("ForAnyValue:") {
        (Some(true), r)
    } else if let Some(r) = op.strip_prefix("ForAllValues:") {
        (Some(false), r)
    } else {
        (None, op)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(b) => (b, true),
        None => (rest, false),
    };
    let got = ctx.keys.get(key).filter(|v| !v.is_empty());
    if base == "Null" {
        let absent = got.is_none();
        return want.iter().any(|w| (w == "true") == absent);
    }
    let one = |v: &str| -> bool {
        match base {
            "StringEquals" | "Bool" => want.iter().any(|w| w == v),
            "StringEqualsIgnoreCase" => want.iter().any(|w| w.eq_ignore_ascii_case(v)),
            "StringLike" => want.iter().any(|w| like(w, v)),
            "StringNotEquals" => !want.iter().any(|w| w == v),
            "StringNotLike" => !want.iter().any(|w| like(w, v)),
            _ => false,
        }
    };
    let negated = base.starts_with("StringNot");
    match (set, got) {
        (Some(true), None) => false,
        (Some(false), None) => true,
        (Some(true), Some(vs)) => vs.iter().any(|v| one(v)),
        (Some(false), Some(vs)) => vs.iter().all(|v| one(v)),
        (None, None) => if_exists || negated,
        (None, Some(vs)) => vs.iter().all(|v| one(v)),
    }
}

/// Evaluates the key policy `policy` for `ctx`.
pub fn evaluate(policy: &Value, ctx: &PolicyRequest) -> Decision {
    evaluate_key_policy(policy, ctx).decision
}

/// Evaluates the key policy `policy` for `ctx`, saying how an Allow came about.
pub fn evaluate_key_policy(policy: &Value, ctx: &PolicyRequest) -> Outcome {
    evaluate_document(policy, ctx, false)
}

/// Evaluates an identity policy (attached to `ctx.principal`) for `ctx`.
pub fn evaluate_identity(policy: &Value, ctx: &PolicyRequest) -> Decision {
    evaluate_document(policy, ctx, true).decision
}

fn evaluate_document(policy: &Value, ctx: &PolicyRequest, identity: bool) -> Outcome {
    let stmts: Vec<&Value> = match policy.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o) => vec![o],
        None => Vec::new(),
    };
    let mut allowed: Option<Named> = None;
    for s in stmts {
        let named = if identity {
            Named::Directly
        } else {
            let Some(p) = s.get("Principal") else {
                continue;
            };
            let Some(named) = principal_matches(p, ctx.principal) else {
                continue;
            };
            named
        };
        let action_listed = |f: &str| {
            s.get(f).is_some_and(|a| {
                strings(a, f)
                    .unwrap_or_default()
                    .iter()
                    .any(|pat| like(&pat.to_ascii_lowercase(), &ctx.action.to_ascii_lowercase()))
            })
        };
        let action_ok = if s.get("NotAction").is_some() {
            !action_listed("NotAction")
        } else {
            action_listed("Action")
        };
        if !action_ok {
            continue;
        }
        let resource_ok = s.get("Resource").is_some_and(|r| {
            strings(r, "Resource")
                .unwrap_or_default()
                .iter()
                .any(|pat| like(pat, ctx.resource))
        });
        if !resource_ok {
            continue;
        }
        let conditions_ok = s
            .get("Condition")
            .and_then(Value::as_object)
            .is_none_or(|c| {
                c.iter().all(|(op, block)| {
                    block.as_object().is_some_and(|b| {
                        b.iter().all(|(k, v)| {
                            condition_holds(op, k, &strings(v, k).unwrap_or_default(), ctx)
                        })
                    })
                })
            });
        if !conditions_ok {
            continue;
        }
        match s.get("Effect").and_then(Value::as_str) {
            Some("Deny") => {
                return Outcome {
                    decision: Decision::ExplicitDeny,
                    by_account_only: false,
                }
            }
            Some("Allow") => allowed = allowed.max(Some(named)),
            _ => {}
        }
    }
    Outcome {
        decision: if allowed.is_some() {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        },
        by_account_only: allowed == Some(Named::ByAccount),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(p: &'a Principal, action: &str, keys: &[(&str, &[&str])]) -> PolicyRequest<'a> {
        PolicyRequest {
            principal: p,
            action: action.into(),
            resource: "arn:aws:kms:us-east-1:111122223333:key/k",
            keys: keys
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
        }
    }

    #[test]
    fn wildcards() {
        assert!(like("kms:*", "kms:Decrypt"));
        assert!(like("kms:Generate*", "kms:GenerateDataKeyWithoutPlaintext"));
        assert!(like("kms:?ecrypt", "kms:Decrypt"));
        assert!(!like("kms:Re*", "kms:Decrypt"));
        assert!(like("*", ""));
    }

    #[test]
    fn hand_computed_decisions() {
        let root = Principal::root("111122223333");
        let bob = Principal::parse("arn:aws:iam::111122223333:user/bob").unwrap();
        let eve = Principal::parse("arn:aws:iam::999988887777:user/eve").unwrap();
        let d = default_policy("111122223333");
        assert_eq!(
            evaluate(&d, &ctx(&root, "kms:Decrypt", &[])),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&d, &ctx(&bob, "kms:Decrypt", &[])),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&d, &ctx(&eve, "kms:Decrypt", &[])),
            Decision::ImplicitDeny
        );
        let p = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/bob"}, "Action": "kms:Decrypt", "Resource": "*",
             "Condition": {"StringEquals": {"kms:EncryptionContext:team": "red"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
             "Condition": {"ForAnyValue:StringLike": {"kms:EncryptionContextKeys": "secret*"}}},
            {"Effect": "Allow", "Principal": {"AWS": "999988887777"}, "Action": "kms:Encrypt", "Resource": "*",
             "Condition": {"Null": {"kms:EncryptionContext:team": "false"}}}
        ]});
        let team = |v: &'static str| {
            (
                "kms:EncryptionContext:team",
                std::slice::from_ref(Box::leak(Box::new(v))) as &[&str],
            )
        };
        assert_eq!(
            evaluate(&p, &ctx(&bob, "kms:Decrypt", &[team("red")])),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&p, &ctx(&bob, "kms:Decrypt", &[team("blue")])),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(&p, &ctx(&bob, "kms:Decrypt", &[])),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(
                &p,
                &ctx(
                    &bob,
                    "kms:Decrypt",
                    &[
                        team("red"),
                        ("kms:EncryptionContextKeys", &["team", "secretx"])
                    ]
                )
            ),
            Decision::ExplicitDeny
        );
        assert_eq!(
            evaluate(&p, &ctx(&eve, "kms:Encrypt", &[team("any")])),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&p, &ctx(&eve, "kms:Encrypt", &[])),
            Decision::ImplicitDeny
        );
        let all = json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*",
            "Condition": {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["a", "b"]}, "Bool": {"aws:SecureTransport": "true"}}}});
        assert_eq!(
            evaluate(
                &all,
                &ctx(
                    &eve,
                    "kms:Encrypt",
                    &[
                        ("kms:EncryptionContextKeys", &["a"]),
                        ("aws:SecureTransport", &["true"])
                    ]
                )
            ),
            Decision::Allow
        );
        assert_eq!(
            evaluate(
                &all,
                &ctx(
                    &eve,
                    "kms:Encrypt",
                    &[
                        ("kms:EncryptionContextKeys", &["a", "c"]),
                        ("aws:SecureTransport", &["true"])
                    ]
                )
            ),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn malformed_policies_name_the_field() {
        for (doc, needle) in [
            ("{", "not JSON"),
            (r#"{"Version":"2012-10-17","Statement":[]}"#, "Statement"),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Maybe","Principal":"*","Action":"kms:*","Resource":"*"}}"#,
                "Statement[0].Effect",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*"}}"#,
                "Statement[0].Resource",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"NumericEquals":{"a":"1"}}}}"#,
                "NumericEquals",
            ),
        ] {
            let e = validate(doc).unwrap_err().to_string();
            assert!(
                e.contains(needle) && e.contains("MalformedPolicyDocumentException"),
                "{doc}: {e}"
            );
        }
        let big = format!(
            r#"{{"Version":"2012-10-17","Id":"{}","Statement":{{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}}}}"#,
            "x".repeat(33 * 1024)
        );
        assert!(validate(&big).unwrap_err().to_string().contains("32 KiB"));
    }
}
