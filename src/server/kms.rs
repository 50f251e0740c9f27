//! The KMS JSON 1.1 protocol (`TrentService`): one operation per `X-Amz-Target`, its body read
//! into the model's request shape ([`crate::api::kms_requests`]), the service called, the result
//! written as the model's response shape.
//!
//! Timestamps go out as epoch seconds, blobs as base64. Responses that carry a plaintext or a
//! private key are written straight into a buffer that is zeroized when it is dropped.

use crate::api::kms_requests::{self as rq, parse, Blob};
use crate::envelope::EncryptionContext;
use crate::error::{Error, KmsCode, Result};
use crate::keyring::{KeySpec, KeyUsage, Origin, Region, Tag};
use crate::kms::{
    base64_encode, specs::value_name, CreateGrantRequest, CreateKeyRequest, DataKeyPairSpec,
    EncryptionAlgorithm, KeyRef, Kms, MacAlgorithm, MessageType, Page, SigningAlgorithm,
    WrappingAlgorithm, WrappingKeySpec,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// A response body; zeroized on drop when it carries a secret.
pub type Body = Zeroizing<Vec<u8>>;

/// The operations answered with `UnsupportedOperationException` (custom key stores and the
/// post-quantum KEM operations, which cofre does not offer).
const UNSUPPORTED: &[&str] = &[
    "ConnectCustomKeyStore",
    "CreateCustomKeyStore",
    "DeleteCustomKeyStore",
    "DescribeCustomKeyStores",
    "DisconnectCustomKeyStore",
    "UpdateCustomKeyStore",
    "Encapsulate",
    "Decapsulate",
    "GetKeyLastUsage",
];

/// The member names of the model's timestamps, sent as epoch seconds.
const TIMESTAMPS: &[&str] = &[
    "CreationDate",
    "DeletionDate",
    "KeyCreationDate",
    "LastUpdatedDate",
    "NextRotationDate",
    "OnDemandRotationStartDate",
    "ParametersValidTo",
    "RotationDate",
    "ValidTo",
];

/// The `GrantTokens` of a request body, if it has them as a list of strings (a body that is
/// not JSON of its shape is refused by [`handle`] anyway). They travel in the request's
/// context, where the service checks them.
pub fn grant_tokens(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Tokens {
        #[serde(default)]
        grant_tokens: Option<Vec<String>>,
    }
    serde_json::from_slice::<Tokens>(body)
        .ok()
        .and_then(|t| t.grant_tokens)
        .unwrap_or_default()
}

/// Runs `operation` with the JSON `body` for the caller of `kms`.
pub fn handle(kms: &Kms, operation: &str, body: &[u8]) -> Result<Body> {
    if UNSUPPORTED.contains(&operation) {
        return Err(Error::kms(
            KmsCode::UnsupportedOperationException,
            format!("cofre does not offer {operation}: it has no custom key stores or KEM keys (see docs/SERVER.md)"),
        ));
    }
    let done = || to_body(json!({}));
    Ok(match operation {
        "CreateKey" => to_body(create_key(kms, parse(body)?)?),
        "DescribeKey" => {
            let r: rq::KeyIdRequest = parse(body)?;
            to_body(json!({ "KeyMetadata": kms.describe_key(&key_ref(&r.key_id)?)? }))
        }
        "ListKeys" => {
            let r: rq::PageRequest = parse(body)?;
            to_body(page("Keys", kms.list_keys(r.limit, r.marker.as_deref())?))
        }
        "EnableKey"
        | "DisableKey"
        | "CancelKeyDeletion"
        | "RotateKeyOnDemand"
        | "DisableKeyRotation"
        | "GetKeyRotationStatus"
        | "GetPublicKey"
        | "DeleteImportedKeyMaterial" => to_body(key_op(kms, operation, parse(body)?)?),
        "CreateAlias" | "UpdateAlias" | "DeleteAlias" => {
            alias_op(kms, operation, parse(body)?)?;
            done()
        }
        "ListAliases" => {
            let r: rq::PageRequest = parse(body)?;
            let key = r.key_id.as_deref().map(key_ref).transpose()?;
            let p = kms.list_aliases(key.as_ref(), r.limit, r.marker.as_deref())?;
            to_body(page("Aliases", p))
        }
        "UpdateKeyDescription" => {
            let r: rq::UpdateKeyDescriptionRequest = parse(body)?;
            kms.update_key_description(&key_ref(&r.key_id)?, &r.description)?;
            done()
        }
        "TagResource" => {
            let r: rq::TagResourceRequest = parse(body)?;
            kms.tag_resource(&key_ref(&r.key_id)?, &r.tags)?;
            done()
        }
        "UntagResource" => {
            let r: rq::UntagResourceRequest = parse(body)?;
            kms.untag_resource(&key_ref(&r.key_id)?, &r.tag_keys)?;
            done()
        }
        "ListResourceTags" | "ListKeyPolicies" => {
            let r: rq::PageRequest = parse(body)?;
            let key = key_ref(&required(r.key_id, "KeyId")?)?;
            let marker = r.marker.as_deref();
            to_body(if operation == "ListResourceTags" {
                page("Tags", kms.list_resource_tags(&key, r.limit, marker)?)
            } else {
                page("PolicyNames", kms.list_key_policies(&key, r.limit, marker)?)
            })
        }
        "GetKeyPolicy" => {
            let r: rq::GetKeyPolicyRequest = parse(body)?;
            policy_name(r.policy_name.as_deref())?;
            to_body(shape(kms.get_key_policy(&key_ref(&r.key_id)?)?))
        }
        "PutKeyPolicy" => {
            let r: rq::PutKeyPolicyRequest = parse(body)?;
            policy_name(r.policy_name.as_deref())?;
            let bypass = r.bypass_policy_lockout_safety_check.unwrap_or(false);
            kms.put_key_policy(&key_ref(&r.key_id)?, &r.policy, bypass)?;
            done()
        }
        "EnableKeyRotation" => {
            let r: rq::EnableKeyRotationRequest = parse(body)?;
            kms.enable_key_rotation(&key_ref(&r.key_id)?, r.rotation_period_in_days)?;
            done()
        }
        "ListKeyRotations" => to_body(list_key_rotations(kms, parse(body)?)?),
        "ScheduleKeyDeletion" => {
            let r: rq::ScheduleKeyDeletionRequest = parse(body)?;
            // AWS has no in-use guard (cofre's CLI adds one).
            let m =
                kms.schedule_key_deletion(&key_ref(&r.key_id)?, r.pending_window_in_days, true)?;
            to_body(shape(crate::api::kms::ScheduleKeyDeletionResponse::from(
                &m,
            )))
        }
        "CreateGrant" => to_body(create_grant(kms, parse(body)?)?),
        "ListGrants" => to_body(list_grants(kms, parse(body)?)?),
        "ListRetirableGrants" => to_body(list_retirable_grants(kms, parse(body)?)?),
        "RetireGrant" | "RevokeGrant" => {
            end_grant(kms, operation, parse(body)?)?;
            done()
        }
        "GetParametersForImport" => {
            let r: rq::GetParametersForImportRequest = parse(body)?;
            let p = kms.get_parameters_for_import(
                &key_ref(&r.key_id)?,
                enum_of::<WrappingAlgorithm>("wrappingAlgorithm", &r.wrapping_algorithm)?,
                enum_of::<WrappingKeySpec>("wrappingKeySpec", &r.wrapping_key_spec)?,
            )?;
            to_body(json!({
                "KeyId": p.key_id,
                "ImportToken": base64_encode(&p.import_token),
                "PublicKey": base64_encode(&p.public_key),
                "ParametersValidTo": p.parameters_valid_to,
            }))
        }
        "ImportKeyMaterial" => to_body(import_key_material(kms, parse(body)?)?),
        "ReplicateKey" => to_body(replicate_key(kms, parse(body)?)?),
        "UpdatePrimaryRegion" => {
            let r: rq::UpdatePrimaryRegionRequest = parse(body)?;
            let to = Region::new(&r.primary_region)?;
            kms.update_primary_region(&key_ref(&r.key_id)?, &to)?;
            done()
        }
        "Encrypt" => to_body(encrypt(kms, parse(body)?)?),
        "Decrypt" => decrypt(kms, parse(body)?)?,
        "ReEncrypt" => to_body(re_encrypt(kms, parse(body)?)?),
        "GenerateDataKey" | "GenerateDataKeyWithoutPlaintext" => {
            generate_data_key(kms, operation == "GenerateDataKey", parse(body)?)?
        }
        "GenerateDataKeyPair" | "GenerateDataKeyPairWithoutPlaintext" => {
            generate_data_key_pair(kms, operation == "GenerateDataKeyPair", parse(body)?)?
        }
        "GenerateRandom" => generate_random(kms, parse(body)?)?,
        "Sign" => to_body(sign(kms, parse(body)?)?),
        "Verify" => to_body(verify(kms, parse(body)?)?),
        "GenerateMac" | "VerifyMac" => to_body(mac(kms, operation, parse(body)?)?),
        "DeriveSharedSecret" => derive_shared_secret(kms, parse(body)?)?,
        _ => {
            return Err(Error::kms(
                KmsCode::UnknownOperationException,
                format!(
                    "KMS has no operation {:?}",
                    crate::cli::printable(operation)
                ),
            ))
        }
    })
}

fn shape(v: impl serde::Serialize) -> Value {
    serde_json::to_value(v).expect("serializable")
}

fn to_body(mut v: Value) -> Body {
    epoch_timestamps(&mut v);
    Zeroizing::new(serde_json::to_vec(&v).expect("serializable"))
}

/// Turns the RFC 3339 timestamps of the shapes into epoch seconds, as the protocol sends them.
fn epoch_timestamps(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if TIMESTAMPS.contains(&k.as_str()) {
                    if let Some(t) = x.as_str().and_then(|s| humantime::parse_rfc3339(s).ok()) {
                        let secs = t
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0.0, |d| d.as_secs_f64());
                        *x = json!(secs);
                        continue;
                    }
                }
                epoch_timestamps(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(epoch_timestamps),
        _ => {}
    }
}

fn required<T>(v: Option<T>, member: &str) -> Result<T> {
    v.ok_or_else(|| {
        Error::kms(
            KmsCode::ValidationException,
            format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                rq::lower_first(member)
            ),
        )
    })
}

fn key_ref(s: &str) -> Result<KeyRef> {
    if s.is_empty() || s.len() > 2048 {
        return Err(Error::kms(
            KmsCode::ValidationException,
            "1 validation error detected: Value at 'keyId' failed to satisfy constraint: Member must have length between 1 and 2048",
        ));
    }
    s.parse()
}

/// An enum member, as the model's string.
fn enum_of<T: clap::ValueEnum>(member: &str, v: &str) -> Result<T> {
    T::value_variants()
        .iter()
        .find(|x| x.to_possible_value().is_some_and(|p| p.get_name() == v))
        .cloned()
        .ok_or_else(|| {
            let names: Vec<String> = T::value_variants()
                .iter()
                .filter_map(|x| x.to_possible_value().map(|p| p.get_name().to_owned()))
                .collect();
            Error::kms(
                KmsCode::ValidationException,
                format!(
                    "1 validation error detected: Value '{}' at '{member}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                    crate::cli::printable(v),
                    names.join(", ")
                ),
            )
        })
}

fn opt_enum<T: clap::ValueEnum>(member: &str, v: Option<&str>) -> Result<Option<T>> {
    v.map(|v| enum_of(member, v)).transpose()
}

fn context(m: Option<BTreeMap<String, String>>) -> Result<EncryptionContext> {
    let mut ctx = EncryptionContext::new();
    for (k, v) in m.unwrap_or_default() {
        ctx.insert(&k, &v)?;
    }
    Ok(ctx)
}

fn algorithm(member: &str, v: Option<&str>) -> Result<EncryptionAlgorithm> {
    Ok(opt_enum(member, v)?.unwrap_or(EncryptionAlgorithm::SymmetricDefault))
}

/// Refuses what cofre does not do rather than ignore it: `DryRun` and `Recipient` (Nitro
/// enclaves). (A request's grant tokens travel in its context: [`grant_tokens`].)
fn refuse_unsupported(dry_run: Option<bool>, recipient: Option<&Value>) -> Result<()> {
    if dry_run == Some(true) {
        return Err(Error::kms(
            KmsCode::UnsupportedOperationException,
            "cofre does not run requests with DryRun yet; send it without DryRun",
        ));
    }
    if recipient.is_some_and(|r| !r.is_null()) {
        return Err(Error::kms(
            KmsCode::UnsupportedOperationException,
            "cofre has no Nitro Enclaves attestation; send the request without Recipient",
        ));
    }
    Ok(())
}

fn page<T: serde::Serialize>(member: &str, p: Page<T>) -> Value {
    let mut v = Map::new();
    v.insert(member.into(), shape(&p.items));
    v.insert("Truncated".into(), Value::Bool(p.next_marker.is_some()));
    if let Some(m) = p.next_marker {
        v.insert("NextMarker".into(), Value::String(m));
    }
    Value::Object(v)
}

fn policy_name(name: Option<&str>) -> Result<()> {
    match name {
        None | Some("default") => Ok(()),
        Some(n) => Err(Error::kms(
            KmsCode::NotFoundException,
            format!(
                "a key has one policy, named \"default\", not {:?}",
                crate::cli::printable(n)
            ),
        )),
    }
}

fn create_key(kms: &Kms, r: rq::CreateKeyRequest) -> Result<Value> {
    if r.custom_key_store_id.is_some() || r.xks_key_id.is_some() {
        return Err(Error::kms(
            KmsCode::UnsupportedOperationException,
            "cofre has no custom key stores; create the key without CustomKeyStoreId",
        ));
    }
    let spec = match (&r.key_spec, &r.customer_master_key_spec) {
        (Some(_), Some(_)) => {
            return Err(Error::kms(
                KmsCode::ValidationException,
                "give KeySpec or CustomerMasterKeySpec, not both",
            ))
        }
        (Some(s), None) => Some(enum_of::<KeySpec>("keySpec", s)?),
        (None, Some(s)) => Some(enum_of::<KeySpec>("customerMasterKeySpec", s)?),
        (None, None) => None,
    };
    let req = CreateKeyRequest {
        description: r.description.unwrap_or_default(),
        tags: r.tags.unwrap_or_default(),
        alias: None,
        multi_region: r.multi_region.unwrap_or(false),
        origin: opt_enum::<Origin>("origin", r.origin.as_deref())?.unwrap_or_default(),
        policy: r.policy,
        bypass_policy_lockout_safety_check: r.bypass_policy_lockout_safety_check.unwrap_or(false),
        key_spec: spec,
        key_usage: opt_enum::<KeyUsage>("keyUsage", r.key_usage.as_deref())?,
    };
    Ok(json!({ "KeyMetadata": kms.create_key(&req)? }))
}

fn key_op(kms: &Kms, op: &str, r: rq::KeyIdRequest) -> Result<Value> {
    let key = key_ref(&r.key_id)?;
    Ok(match op {
        "EnableKey" => {
            kms.enable_key(&key)?;
            json!({})
        }
        // AWS's DisableKey has no in-use guard (cofre's CLI adds one).
        "DisableKey" => {
            kms.disable_key(&key, true)?;
            json!({})
        }
        "CancelKeyDeletion" => json!({ "KeyId": kms.cancel_key_deletion(&key)?.arn }),
        "RotateKeyOnDemand" => json!({ "KeyId": kms.rotate_key_on_demand(&key)?.key_id }),
        "DisableKeyRotation" => {
            kms.disable_key_rotation(&key)?;
            json!({})
        }
        "GetKeyRotationStatus" => serde_json::to_value(
            crate::api::kms::GetKeyRotationStatusResponse::from(&kms.key_rotation_status(&key)?),
        )
        .expect("serializable"),
        "GetPublicKey" => {
            let p = kms.get_public_key(&key)?;
            let mut v = json!({
                "KeyId": p.key_id,
                "PublicKey": base64_encode(&p.public_key),
                "CustomerMasterKeySpec": p.key_spec,
                "KeySpec": p.key_spec,
                "KeyUsage": p.key_usage,
            });
            for (member, list) in [
                ("EncryptionAlgorithms", &p.encryption_algorithms),
                ("SigningAlgorithms", &p.signing_algorithms),
                ("KeyAgreementAlgorithms", &p.key_agreement_algorithms),
            ] {
                if !list.is_empty() {
                    v[member] = json!(list);
                }
            }
            v
        }
        "DeleteImportedKeyMaterial" => serde_json::to_value(
            crate::api::kms::KeyMaterialResponse::from(&kms.delete_imported_key_material(&key)?),
        )
        .expect("serializable"),
        _ => unreachable!("key_op is called for its operations"),
    })
}

fn alias_op(kms: &Kms, op: &str, r: rq::AliasRequest) -> Result<Value> {
    match op {
        "DeleteAlias" => kms.delete_alias(&r.alias_name)?,
        _ => {
            let target = key_ref(&required(r.target_key_id, "TargetKeyId")?)?;
            if op == "CreateAlias" {
                kms.create_alias(&r.alias_name, &target)?;
            } else {
                kms.update_alias(&r.alias_name, &target)?;
            }
        }
    }
    Ok(json!({}))
}

fn list_key_rotations(kms: &Kms, r: rq::ListKeyRotationsRequest) -> Result<Value> {
    let all = match r.include_key_material.as_deref() {
        None | Some("ROTATIONS_ONLY") => false,
        Some("ALL_KEY_MATERIAL") => true,
        Some(v) => {
            return Err(Error::kms(
                KmsCode::ValidationException,
                format!("1 validation error detected: Value '{}' at 'includeKeyMaterial' failed to satisfy constraint: Member must satisfy enum value set: [ALL_KEY_MATERIAL, ROTATIONS_ONLY]", crate::cli::printable(v)),
            ))
        }
    };
    let versions = kms.list_key_rotations(&key_ref(&r.key_id)?, all)?;
    // Paged in the order KMS lists them (oldest first), by position.
    let numbered: Vec<(String, _)> = versions
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("{i:08}"), v))
        .collect();
    let p = Page::of_limited(
        numbered,
        r.limit,
        1000,
        100,
        r.marker.as_deref(),
        |(n, _)| n,
    )?;
    Ok(page("Rotations", p.map(|(_, v)| v)))
}

fn create_grant(kms: &Kms, r: rq::CreateGrantRequest) -> Result<Value> {
    refuse_unsupported(r.dry_run, None)?;
    if r.grantee_service_principal.is_some() || r.retiring_service_principal.is_some() {
        return Err(Error::kms(
            KmsCode::UnsupportedOperationException,
            "cofre has no service principals; name an IAM principal as GranteePrincipal",
        ));
    }
    let c = r.constraints.unwrap_or_default();
    let req = CreateGrantRequest {
        grantee: required(r.grantee_principal, "GranteePrincipal")?,
        operations: r.operations,
        retiring_principal: r.retiring_principal,
        name: r.name,
        constraints: crate::keyring::GrantConstraints {
            encryption_context_subset: c.encryption_context_subset,
            encryption_context_equals: c.encryption_context_equals,
        },
    };
    let g = kms.create_grant(&key_ref(&r.key_id)?, &req)?;
    Ok(serde_json::to_value(&g).expect("serializable"))
}

fn list_grants(kms: &Kms, r: rq::ListGrantsRequest) -> Result<Value> {
    let mut grants = kms.list_grants(&key_ref(&r.key_id)?)?;
    grants.retain(|g| {
        r.grant_id.as_ref().is_none_or(|id| &g.grant_id == id)
            && r.grantee_principal
                .as_ref()
                .is_none_or(|p| &g.grantee_principal == p)
    });
    let p = Page::of_limited(grants, r.limit, 100, 50, r.marker.as_deref(), |g| {
        g.grant_id.as_str()
    })?;
    Ok(page("Grants", p))
}

fn list_retirable_grants(kms: &Kms, r: rq::ListRetirableGrantsRequest) -> Result<Value> {
    let principal = required(r.retiring_principal, "RetiringPrincipal")?;
    let grants = kms.list_retirable_grants(&principal)?;
    let p = Page::of_limited(grants, r.limit, 100, 50, r.marker.as_deref(), |g| {
        g.grant_id.as_str()
    })?;
    Ok(page("Grants", p))
}

fn end_grant(kms: &Kms, op: &str, r: rq::GrantIdRequest) -> Result<Value> {
    refuse_unsupported(r.dry_run, None)?;
    if op == "RetireGrant" {
        if let Some(token) = &r.grant_token {
            kms.retire_grant_with_token(token)?;
            return Ok(json!({}));
        }
    }
    let key = key_ref(&required(r.key_id, "KeyId")?)?;
    let id = required(r.grant_id, "GrantId")?;
    if op == "RetireGrant" {
        kms.retire_grant(&key, &id)?;
    } else {
        kms.revoke_grant(&key, &id)?;
    }
    Ok(json!({}))
}

fn import_key_material(kms: &Kms, r: rq::ImportKeyMaterialRequest) -> Result<Value> {
    let valid_to = match (r.expiration_model.as_deref(), r.valid_to) {
        (None | Some("KEY_MATERIAL_EXPIRES"), Some(t)) if t.is_finite() && t >= 0.0 => {
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t))
        }
        (Some("KEY_MATERIAL_DOES_NOT_EXPIRE") | None, None) => None,
        (Some("KEY_MATERIAL_EXPIRES"), None) => {
            return Err(Error::kms(
                KmsCode::ValidationException,
                "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES",
            ))
        }
        _ => {
            return Err(Error::kms(
                KmsCode::ValidationException,
                "give ValidTo with ExpirationModel KEY_MATERIAL_EXPIRES (or neither), or KEY_MATERIAL_DOES_NOT_EXPIRE without ValidTo",
            ))
        }
    };
    let options = crate::kms::ImportOptions {
        valid_to,
        import_type: opt_enum::<crate::kms::ImportType>("importType", r.import_type.as_deref())?,
        key_material_id: r.key_material_id,
        description: r.key_material_description,
    };
    let m = kms.import_key_material_with(
        &key_ref(&r.key_id)?,
        &r.import_token,
        &r.encrypted_key_material,
        &options,
    )?;
    Ok(json!({ "KeyId": m.key_metadata.arn, "KeyMaterialId": m.key_material_id }))
}

fn replicate_key(kms: &Kms, r: rq::ReplicateKeyRequest) -> Result<Value> {
    let to = Region::new(&r.replica_region)?;
    if let Some(d) = &r.description {
        crate::kms::validate_description(d)?;
    }
    let mut out = kms.replicate_key(&key_ref(&r.key_id)?, &to)?;
    // The replica's own description, tags and policy, as ReplicateKey sets them.
    let there = kms.in_region(to)?;
    let replica = key_ref(&out.replica_key_metadata.arn)?;
    if let Some(d) = &r.description {
        there.update_key_description(&replica, d)?;
        out.replica_key_metadata.description = d.clone();
    }
    if let Some(tags) = r.tags.filter(|t| !t.is_empty()) {
        there.tag_resource(&replica, &tags)?;
        out.replica_tags = merge_tags(out.replica_tags, tags);
    }
    if let Some(p) = &r.policy {
        there.put_key_policy(
            &replica,
            p,
            r.bypass_policy_lockout_safety_check.unwrap_or(false),
        )?;
        out.replica_policy = p.clone();
    }
    Ok(serde_json::to_value(&out).expect("serializable"))
}

fn merge_tags(mut old: Vec<Tag>, new: Vec<Tag>) -> Vec<Tag> {
    for t in new {
        match old.iter_mut().find(|o| o.tag_key == t.tag_key) {
            Some(o) => o.tag_value = t.tag_value,
            None => old.push(t),
        }
    }
    old
}

fn encrypt(kms: &Kms, r: rq::EncryptRequest) -> Result<Value> {
    refuse_unsupported(r.dry_run, None)?;
    let e = kms.encrypt(
        &key_ref(&r.key_id)?,
        &r.plaintext,
        &context(r.encryption_context)?,
        algorithm("encryptionAlgorithm", r.encryption_algorithm.as_deref())?,
    )?;
    Ok(json!({
        "CiphertextBlob": base64_encode(&e.ciphertext_blob),
        "KeyId": e.key_id,
        "EncryptionAlgorithm": value_name(&e.encryption_algorithm),
    }))
}

/// Writes a response that carries secrets: `fields` in order, each a JSON value; secret
/// bytes as base64 into a buffer sized up front (no reallocation leaves a copy behind).
fn secret_body(fields: &[(&str, Field)]) -> Body {
    let size: usize = fields
        .iter()
        .map(|(k, f)| {
            k.len()
                + 8
                + match f {
                    Field::Secret(b) => b.len() * 4 / 3 + 8,
                    Field::Json(v) => v.to_string().len(),
                }
        })
        .sum::<usize>()
        + 8;
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    out.push(b'{');
    for (i, (k, f)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(serde_json::to_string(k).expect("a string").as_bytes());
        out.push(b':');
        match f {
            Field::Secret(b) => {
                use base64::Engine;
                out.push(b'"');
                let start = out.len();
                out.resize(
                    start + base64::encoded_len(b.len(), true).expect("small"),
                    0,
                );
                base64::engine::general_purpose::STANDARD
                    .encode_slice(b, &mut out[start..])
                    .expect("sized");
                out.push(b'"');
            }
            Field::Json(v) => out.extend_from_slice(v.to_string().as_bytes()),
        }
    }
    out.push(b'}');
    out
}

enum Field<'a> {
    Secret(&'a [u8]),
    Json(Value),
}

fn decrypt(kms: &Kms, r: rq::DecryptRequest) -> Result<Body> {
    refuse_unsupported(r.dry_run, r.recipient.as_ref())?;
    let key = r.key_id.as_deref().map(key_ref).transpose()?;
    let d = kms.decrypt(
        &r.ciphertext_blob,
        &context(r.encryption_context)?,
        key.as_ref(),
        algorithm("encryptionAlgorithm", r.encryption_algorithm.as_deref())?,
    )?;
    let mut fields = vec![
        ("KeyId", Field::Json(json!(d.key_id))),
        ("Plaintext", Field::Secret(&d.plaintext)),
        (
            "EncryptionAlgorithm",
            Field::Json(json!(value_name(&d.encryption_algorithm))),
        ),
    ];
    if let Some(m) = &d.key_material_id {
        fields.push(("KeyMaterialId", Field::Json(json!(m))));
    }
    Ok(secret_body(&fields))
}

fn re_encrypt(kms: &Kms, r: rq::ReEncryptRequest) -> Result<Value> {
    refuse_unsupported(r.dry_run, None)?;
    let source_key = r.source_key_id.as_deref().map(key_ref).transpose()?;
    let source_algorithm = algorithm(
        "sourceEncryptionAlgorithm",
        r.source_encryption_algorithm.as_deref(),
    )?;
    let e = kms.re_encrypt(
        &r.ciphertext_blob,
        &context(r.source_encryption_context)?,
        source_key.as_ref(),
        source_algorithm,
        &key_ref(&r.destination_key_id)?,
        &context(r.destination_encryption_context)?,
        algorithm(
            "destinationEncryptionAlgorithm",
            r.destination_encryption_algorithm.as_deref(),
        )?,
    )?;
    Ok(json!({
        "CiphertextBlob": base64_encode(&e.ciphertext_blob),
        "SourceKeyId": e.source_key_id,
        "KeyId": e.key_id,
        "SourceEncryptionAlgorithm": value_name(&source_algorithm),
        "DestinationEncryptionAlgorithm": value_name(&e.encryption_algorithm),
    }))
}

fn generate_data_key(
    kms: &Kms,
    with_plaintext: bool,
    r: rq::GenerateDataKeyRequest,
) -> Result<Body> {
    refuse_unsupported(r.dry_run, r.recipient.as_ref())?;
    let bytes = match (r.number_of_bytes, r.key_spec.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(Error::kms(
                KmsCode::ValidationException,
                "give KeySpec or NumberOfBytes, not both",
            ))
        }
        (Some(n), None) if (1..=1024).contains(&n) => n as usize,
        (Some(_), None) => {
            return Err(Error::kms(
                KmsCode::ValidationException,
                "1 validation error detected: Value at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and 1024",
            ))
        }
        (None, Some("AES_256")) => 32,
        (None, Some("AES_128")) => 16,
        (None, Some(v)) => {
            return Err(Error::kms(
                KmsCode::ValidationException,
                format!("1 validation error detected: Value '{}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]", crate::cli::printable(v)),
            ))
        }
        (None, None) => {
            return Err(Error::kms(
                KmsCode::ValidationException,
                "give KeySpec or NumberOfBytes",
            ))
        }
    };
    let dk = kms.generate_data_key(
        &key_ref(&r.key_id)?,
        bytes,
        &context(r.encryption_context)?,
        with_plaintext,
    )?;
    let blob = base64_encode(&dk.ciphertext_blob);
    let mut fields = vec![("CiphertextBlob", Field::Json(json!(blob)))];
    if let Some(p) = &dk.plaintext {
        fields.push(("Plaintext", Field::Secret(p)));
    }
    fields.push(("KeyId", Field::Json(json!(dk.key_id))));
    if !dk.key_material_id.is_empty() {
        fields.push(("KeyMaterialId", Field::Json(json!(dk.key_material_id))));
    }
    Ok(secret_body(&fields))
}

fn generate_data_key_pair(
    kms: &Kms,
    with_plaintext: bool,
    r: rq::GenerateDataKeyPairRequest,
) -> Result<Body> {
    refuse_unsupported(r.dry_run, r.recipient.as_ref())?;
    let spec = enum_of::<DataKeyPairSpec>("keyPairSpec", &r.key_pair_spec)?;
    let pair = kms.generate_data_key_pair(
        &key_ref(&r.key_id)?,
        spec,
        &context(r.encryption_context)?,
        with_plaintext,
    )?;
    let mut fields = vec![(
        "PrivateKeyCiphertextBlob",
        Field::Json(json!(base64_encode(&pair.private_key_ciphertext_blob))),
    )];
    if let Some(p) = &pair.private_key_plaintext {
        fields.push(("PrivateKeyPlaintext", Field::Secret(p)));
    }
    fields.push((
        "PublicKey",
        Field::Json(json!(base64_encode(&pair.public_key))),
    ));
    fields.push(("KeyId", Field::Json(json!(pair.key_id))));
    fields.push((
        "KeyPairSpec",
        Field::Json(json!(value_name(&pair.key_pair_spec))),
    ));
    Ok(secret_body(&fields))
}

fn generate_random(kms: &Kms, r: rq::GenerateRandomRequest) -> Result<Body> {
    refuse_unsupported(None, r.recipient.as_ref())?;
    if r.custom_key_store_id.is_some() {
        return Err(Error::kms(
            KmsCode::UnsupportedOperationException,
            "cofre has no custom key stores; send GenerateRandom without CustomKeyStoreId",
        ));
    }
    let n = required(r.number_of_bytes, "NumberOfBytes")?;
    let bytes = kms.generate_random(n as usize)?;
    Ok(secret_body(&[("Plaintext", Field::Secret(&bytes))]))
}

fn sign(kms: &Kms, r: rq::SignRequest) -> Result<Value> {
    refuse_unsupported(r.dry_run, None)?;
    let s = kms.sign(
        &key_ref(&r.key_id)?,
        &r.message,
        opt_enum::<MessageType>("messageType", r.message_type.as_deref())?.unwrap_or_default(),
        enum_of::<SigningAlgorithm>("signingAlgorithm", &r.signing_algorithm)?,
    )?;
    Ok(json!({
        "KeyId": s.key_id,
        "Signature": base64_encode(&s.signature),
        "SigningAlgorithm": value_name(&s.signing_algorithm),
    }))
}

fn verify(kms: &Kms, r: rq::SignRequest) -> Result<Value> {
    refuse_unsupported(r.dry_run, None)?;
    let algorithm = enum_of::<SigningAlgorithm>("signingAlgorithm", &r.signing_algorithm)?;
    let signature: Blob = required(r.signature, "Signature")?;
    let v = kms.verify(
        &key_ref(&r.key_id)?,
        &r.message,
        opt_enum::<MessageType>("messageType", r.message_type.as_deref())?.unwrap_or_default(),
        algorithm,
        &signature,
    )?;
    Ok(json!({
        "KeyId": v.key_id,
        "SignatureValid": true,
        "SigningAlgorithm": value_name(&algorithm),
    }))
}

fn mac(kms: &Kms, op: &str, r: rq::MacRequest) -> Result<Value> {
    refuse_unsupported(r.dry_run, None)?;
    let key = key_ref(&r.key_id)?;
    let algorithm = enum_of::<MacAlgorithm>("macAlgorithm", &r.mac_algorithm)?;
    if op == "GenerateMac" {
        let m = kms.generate_mac(&key, &r.message, algorithm)?;
        return Ok(json!({
            "Mac": base64_encode(&m.mac),
            "MacAlgorithm": value_name(&m.mac_algorithm),
            "KeyId": m.key_id,
        }));
    }
    let mac: Blob = required(r.mac, "Mac")?;
    let v = kms.verify_mac(&key, &r.message, algorithm, &mac)?;
    Ok(json!({
        "KeyId": v.key_id,
        "MacValid": true,
        "MacAlgorithm": value_name(&algorithm),
    }))
}

fn derive_shared_secret(kms: &Kms, r: rq::DeriveSharedSecretRequest) -> Result<Body> {
    refuse_unsupported(r.dry_run, r.recipient.as_ref())?;
    if r.key_agreement_algorithm != "ECDH" {
        return Err(Error::kms(
            KmsCode::ValidationException,
            format!("1 validation error detected: Value '{}' at 'keyAgreementAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [ECDH]", crate::cli::printable(&r.key_agreement_algorithm)),
        ));
    }
    let key = key_ref(&r.key_id)?;
    let secret = kms.derive_shared_secret(&key, &r.public_key)?;
    let arn = kms.describe_key(&key)?.arn;
    Ok(secret_body(&[
        ("KeyId", Field::Json(json!(arn))),
        ("SharedSecret", Field::Secret(&secret)),
        ("KeyAgreementAlgorithm", Field::Json(json!("ECDH"))),
        ("KeyOrigin", Field::Json(json!("AWS_KMS"))),
    ]))
}
