//! KMS behaviours checked against AWS's own statements (issue 19), through the service API:
//! which operations another account may make, grant tokens and grant constraints, the length of
//! a data key, when a primary waiting for its replicas starts its own waiting period, what
//! ListKeyRotations lists by default and what a replica's MultiRegionConfiguration names; and,
//! through the binary, that a closed stdout ends a command quietly.

use cofre::audit::Principal;
use cofre::keyring::{GrantConstraints, KeySpec, KeyState, KeyUsage, MultiRegionKeyType};
use cofre::kms::{
    CreateGrantRequest, DataKeyPairSpec, DataKeySpec, EncryptionAlgorithm, MacAlgorithm,
    MessageType, SigningAlgorithm, WrappingAlgorithm, WrappingKeySpec, CROSS_ACCOUNT_OPERATIONS,
};
use cofre::store::{parse_time, Clock};
use cofre::{
    CreateKeyRequest, EncryptionContext, Error, Home, KeyRef, Kms, KmsCode, Region, RequestContext,
};
use std::path::Path;
use std::sync::Arc;

const ACCOUNT: &str = "111122223333";
const OTHER: &str = "444455556666";

fn home_at(dir: &Path, now: &str) -> Arc<Home> {
    Arc::new(
        Home::open(&dir.join("home"), Some(ACCOUNT))
            .unwrap()
            .with_clock(Clock::Fixed(parse_time(now).unwrap())),
    )
}

fn kms_as(home: &Arc<Home>, region: &str, principal: &str) -> Kms {
    Kms::new(
        home.clone(),
        Region::new(region).unwrap(),
        RequestContext::new(Principal::parse(principal).unwrap()),
    )
}

/// A new home at 2027-01-01 and the account root's endpoint in us-east-1.
fn setup() -> (tempfile::TempDir, Arc<Home>, Kms) {
    let dir = tempfile::tempdir().unwrap();
    let home = home_at(dir.path(), "2027-01-01T00:00:00Z");
    let own = kms_as(&home, "us-east-1", &root());
    (dir, home, own)
}

/// A new key made by `kms`, by its ARN.
fn new_key(kms: &Kms, req: &CreateKeyRequest) -> KeyRef {
    kms.create_key(req).unwrap().arn.parse().unwrap()
}

/// A grant of `ops` on `key` to `grantee`, made by `kms`.
fn grant_to(
    kms: &Kms,
    key: &KeyRef,
    grantee: &str,
    ops: &[&str],
) -> cofre::api::kms::CreateGrantResponse {
    let req = CreateGrantRequest {
        grantee: grantee.to_owned(),
        operations: ops.iter().map(|o| o.to_string()).collect(),
        ..Default::default()
    };
    kms.create_grant(key, &req).unwrap()
}

fn root() -> String {
    format!("arn:aws:iam::{ACCOUNT}:root")
}

fn code<T: std::fmt::Debug>(r: cofre::Result<T>) -> (KmsCode, String) {
    match r {
        Err(Error::Kms { code, message }) => (code, message),
        other => panic!("expected a KMS error, got {other:?}"),
    }
}

fn ctx(pairs: &[&str]) -> EncryptionContext {
    EncryptionContext::from_pairs(pairs).unwrap()
}

/// A policy: the account root may do everything (so the account's principals may), and so may
/// every principal of account 444455556666.
fn shared_policy() -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": root()}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{OTHER}:root")},
             "Action": "kms:*", "Resource": "*"}
        ]
    })
    .to_string()
}

fn create(kms: &Kms, spec: KeySpec, usage: KeyUsage, extra: CreateKeyRequest) -> KeyRef {
    kms.create_key(&CreateKeyRequest {
        key_spec: Some(spec),
        key_usage: Some(usage),
        policy: Some(shared_policy()),
        ..extra
    })
    .unwrap()
    .arn
    .parse()
    .unwrap()
}

/// Every operation, made by a principal of another account whose account the key policy
/// allows `kms:*`: those AWS marks "Cross-account use: Yes" succeed, every other one is
/// refused with AccessDeniedException and changes nothing.
#[test]
fn another_account_makes_only_the_cross_account_operations() {
    let (_dir, home, own) = setup();
    let ext = kms_as(
        &home,
        "us-east-1",
        &format!("arn:aws:iam::{OTHER}:user/ext"),
    );
    let symmetric = (KeySpec::SymmetricDefault, KeyUsage::EncryptDecrypt);
    let [sym, sig, mac, agree, ext_key, mrk] = [
        (symmetric, CreateKeyRequest::default()),
        (
            (KeySpec::EccNistP256, KeyUsage::SignVerify),
            Default::default(),
        ),
        (
            (KeySpec::Hmac256, KeyUsage::GenerateVerifyMac),
            Default::default(),
        ),
        (
            (KeySpec::EccNistP256, KeyUsage::KeyAgreement),
            Default::default(),
        ),
        (
            symmetric,
            CreateKeyRequest {
                origin: cofre::keyring::Origin::External,
                ..Default::default()
            },
        ),
        (
            symmetric,
            CreateKeyRequest {
                multi_region: true,
                ..Default::default()
            },
        ),
    ]
    .map(|((spec, usage), extra)| create(&own, spec, usage, extra));
    let sym_arn = sym.to_string();
    own.replicate_key(&mrk, &Region::new("eu-west-1").unwrap())
        .unwrap();
    own.create_alias("alias/shared", &sym).unwrap();
    let tag = cofre::keyring::Tag {
        tag_key: "team".into(),
        tag_value: "red".into(),
    };
    own.tag_resource(&sym, std::slice::from_ref(&tag)).unwrap();
    let params = own
        .get_parameters_for_import(
            &ext_key,
            WrappingAlgorithm::RsaesOaepSha256,
            WrappingKeySpec::Rsa2048,
        )
        .unwrap();
    let peer = own.get_public_key(&agree).unwrap().public_key;

    // Cross-account use: No. Each is refused whatever the policy says.
    let mut refused: Vec<(&str, (KmsCode, String))> = vec![
        (
            "CreateKey",
            code(ext.create_key(&CreateKeyRequest::default())),
        ),
        ("ListKeys", code(ext.list_keys(None, None))),
        ("ListAliases", code(ext.list_aliases(None, None, None))),
        ("CreateAlias", code(ext.create_alias("alias/theirs", &sym))),
        ("UpdateAlias", code(ext.update_alias("alias/shared", &sym))),
        ("DeleteAlias", code(ext.delete_alias("alias/shared"))),
        ("EnableKey", code(ext.enable_key(&sym))),
        ("DisableKey", code(ext.disable_key(&sym, true))),
        (
            "ScheduleKeyDeletion",
            code(ext.schedule_key_deletion(&sym, Some(7), true)),
        ),
        ("CancelKeyDeletion", code(ext.cancel_key_deletion(&sym))),
        ("GetKeyPolicy", code(ext.get_key_policy(&sym))),
        (
            "PutKeyPolicy",
            code(ext.put_key_policy(&sym, &shared_policy(), true)),
        ),
        (
            "EnableKeyRotation",
            code(ext.enable_key_rotation(&sym, None)),
        ),
        ("DisableKeyRotation", code(ext.disable_key_rotation(&sym))),
        ("RotateKeyOnDemand", code(ext.rotate_key_on_demand(&sym))),
        ("ListKeyRotations", code(ext.list_key_rotations(&sym, true))),
        (
            "GetParametersForImport",
            code(ext.get_parameters_for_import(
                &ext_key,
                WrappingAlgorithm::RsaesOaepSha256,
                WrappingKeySpec::Rsa2048,
            )),
        ),
        (
            "ImportKeyMaterial",
            code(ext.import_key_material(&ext_key, &params.import_token, &[0; 256], None)),
        ),
        (
            "DeleteImportedKeyMaterial",
            code(ext.delete_imported_key_material(&ext_key)),
        ),
        (
            "ReplicateKey",
            code(ext.replicate_key(&mrk, &Region::new("ap-southeast-2").unwrap())),
        ),
        (
            "UpdatePrimaryRegion",
            code(ext.update_primary_region(&mrk, &Region::new("eu-west-1").unwrap())),
        ),
        (
            "UpdateKeyDescription",
            code(ext.update_key_description(&sym, "theirs")),
        ),
        (
            "TagResource",
            code(ext.tag_resource(&sym, std::slice::from_ref(&tag))),
        ),
        (
            "UntagResource",
            code(ext.untag_resource(&sym, &["team".into()])),
        ),
        (
            "ListResourceTags",
            code(ext.list_resource_tags(&sym, None, None)),
        ),
        (
            "ListKeyPolicies",
            code(ext.list_key_policies(&sym, None, None)),
        ),
        (
            "ListRetirableGrants",
            code(ext.list_retirable_grants(&format!("arn:aws:iam::{OTHER}:user/ext"))),
        ),
    ];
    for (op, (c, message)) in refused.drain(..) {
        assert!(!CROSS_ACCOUNT_OPERATIONS.contains(&op), "{op}");
        assert_eq!(c, KmsCode::AccessDeniedException, "{op}: {message}");
        assert!(
            message.contains(&format!("kms:{op}")) && message.contains(OTHER),
            "{op}: {message}"
        );
    }
    // Nothing changed.
    let m = own.describe_key(&sym).unwrap();
    assert_eq!(m.key_state, KeyState::Enabled);
    assert_eq!(m.description, "");
    assert_eq!(
        own.list_resource_tags(&sym, None, None).unwrap().items,
        vec![tag]
    );
    assert!(!own.key_rotation_status(&sym).unwrap().key_rotation_enabled);
    assert_eq!(own.list_key_rotations(&sym, true).unwrap().len(), 1);
    assert_eq!(
        own.list_aliases(Some(&sym), None, None)
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(own.get_key_policy(&sym).unwrap().policy, shared_policy());
    let mrk_meta = own.describe_key(&mrk).unwrap();
    assert_eq!(
        mrk_meta
            .multi_region_configuration
            .unwrap()
            .replica_keys
            .len(),
        1
    );
    assert_eq!(
        own.describe_key(&ext_key).unwrap().key_state,
        KeyState::PendingImport
    );

    // Cross-account use: Yes. Each works, given the key's ARN and a policy that allows it.
    let mut allowed: Vec<&str> = Vec::new();
    let sealed = ext
        .encrypt(
            &sym,
            b"secret",
            &ctx(&["a=1"]),
            EncryptionAlgorithm::SymmetricDefault,
        )
        .unwrap();
    allowed.push("Encrypt");
    let opened = ext
        .decrypt(
            &sealed.ciphertext_blob,
            &ctx(&["a=1"]),
            Some(&sym),
            EncryptionAlgorithm::SymmetricDefault,
        )
        .unwrap();
    assert_eq!(&opened.plaintext[..], b"secret");
    allowed.push("Decrypt");
    ext.re_encrypt(
        &sealed.ciphertext_blob,
        &ctx(&["a=1"]),
        None,
        EncryptionAlgorithm::SymmetricDefault,
        &sym,
        &ctx(&["b=2"]),
        EncryptionAlgorithm::SymmetricDefault,
    )
    .unwrap();
    allowed.push("ReEncrypt");
    ext.generate_data_key(&sym, 32, &ctx(&[]), true).unwrap();
    allowed.push("GenerateDataKey");
    ext.generate_data_key(&sym, 32, &ctx(&[]), false).unwrap();
    allowed.push("GenerateDataKeyWithoutPlaintext");
    ext.generate_data_key_pair(&sym, DataKeyPairSpec::EccNistP256, &ctx(&[]), true)
        .unwrap();
    allowed.push("GenerateDataKeyPair");
    ext.generate_data_key_pair(&sym, DataKeyPairSpec::EccNistP256, &ctx(&[]), false)
        .unwrap();
    allowed.push("GenerateDataKeyPairWithoutPlaintext");
    ext.describe_key(&sym).unwrap();
    allowed.push("DescribeKey");
    ext.key_rotation_status(&sym).unwrap();
    allowed.push("GetKeyRotationStatus");
    let s = ext
        .sign(
            &sig,
            b"message",
            MessageType::Raw,
            SigningAlgorithm::EcdsaSha256,
        )
        .unwrap();
    allowed.push("Sign");
    ext.verify(
        &sig,
        b"message",
        MessageType::Raw,
        SigningAlgorithm::EcdsaSha256,
        &s.signature,
    )
    .unwrap();
    allowed.push("Verify");
    ext.get_public_key(&sig).unwrap();
    allowed.push("GetPublicKey");
    let t = ext
        .generate_mac(&mac, b"message", MacAlgorithm::HmacSha256)
        .unwrap();
    allowed.push("GenerateMac");
    ext.verify_mac(&mac, b"message", MacAlgorithm::HmacSha256, &t.mac)
        .unwrap();
    allowed.push("VerifyMac");
    ext.derive_shared_secret(&agree, &peer).unwrap();
    allowed.push("DeriveSharedSecret");
    let grant = |name: &str| CreateGrantRequest {
        grantee: format!("arn:aws:iam::{OTHER}:user/ext"),
        operations: vec!["Decrypt".into(), "RetireGrant".into()],
        name: Some(name.into()),
        ..Default::default()
    };
    let g1 = ext.create_grant(&sym, &grant("one")).unwrap();
    let g2 = ext.create_grant(&sym, &grant("two")).unwrap();
    allowed.push("CreateGrant");
    assert_eq!(ext.list_grants(&sym).unwrap().len(), 2);
    allowed.push("ListGrants");
    ext.retire_grant(&sym, &g1.grant_id).unwrap();
    allowed.push("RetireGrant");
    ext.revoke_grant(&sym, &g2.grant_id).unwrap();
    allowed.push("RevokeGrant");
    allowed.sort_unstable();
    let mut listed = CROSS_ACCOUNT_OPERATIONS.to_vec();
    listed.sort_unstable();
    assert_eq!(
        allowed, listed,
        "every cross-account operation was made once"
    );
    // GenerateRandom names no key and no account.
    ext.generate_random(16).unwrap();
    // Still only by ARN: by key id or alias, the key of another account is not found.
    assert_eq!(
        code(ext.describe_key(&"alias/shared".parse().unwrap())).0,
        KmsCode::NotFoundException
    );
    let id: KeyRef = sym_arn.rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(code(ext.describe_key(&id)).0, KmsCode::NotFoundException);
}

/// Grant tokens: CreateGrant's token is accepted by the operations that take GrantTokens; a
/// made-up or altered one is refused with InvalidGrantTokenException, more than 10 with
/// ValidationException; RetireGrant takes a token in place of the key and grant id.
#[test]
fn grant_tokens_are_checked_and_retire_grants() {
    let (_dir, home, own) = setup();
    let key = new_key(&own, &CreateKeyRequest::default());
    let bob = format!("arn:aws:iam::{ACCOUNT}:user/bob");
    let g = grant_to(&own, &key, &bob, &["Encrypt", "Decrypt"]);
    let with = |tokens: Vec<String>| kms_as(&home, "us-east-1", &root()).with_grant_tokens(tokens);
    let blob = with(vec![g.grant_token.clone()])
        .encrypt(&key, b"x", &ctx(&[]), EncryptionAlgorithm::SymmetricDefault)
        .unwrap()
        .ciphertext_blob;
    with(vec![g.grant_token.clone(); 10])
        .decrypt(
            &blob,
            &ctx(&[]),
            None,
            EncryptionAlgorithm::SymmetricDefault,
        )
        .unwrap();
    with(vec![g.grant_token.clone()])
        .generate_data_key(&key, 16, &ctx(&[]), false)
        .unwrap();

    // Forged: another grant id under the same MAC, a flipped character, plain garbage.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = String::from_utf8(b64.decode(&g.grant_token).unwrap()).unwrap();
    let other_id = raw.replacen(&g.grant_id, &"0".repeat(64), 1);
    let mut flipped = g.grant_token.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    for bad in [
        b64.encode(other_id),
        String::from_utf8(flipped).unwrap(),
        "not-a-token".to_owned(),
    ] {
        let (c, m) = code(with(vec![g.grant_token.clone(), bad]).encrypt(
            &key,
            b"x",
            &ctx(&[]),
            EncryptionAlgorithm::SymmetricDefault,
        ));
        assert_eq!(c, KmsCode::InvalidGrantTokenException, "{m}");
    }
    let (c, _) = code(with(vec![g.grant_token.clone(); 11]).decrypt(
        &blob,
        &ctx(&[]),
        None,
        EncryptionAlgorithm::SymmetricDefault,
    ));
    assert_eq!(c, KmsCode::ValidationException);
    // A token from another home does not verify here.
    let dir2 = tempfile::tempdir().unwrap();
    let home2 = home_at(dir2.path(), "2027-01-01T00:00:00Z");
    let other_home = kms_as(&home2, "us-east-1", &root());
    let k2 = new_key(&other_home, &Default::default());
    let foreign = other_home
        .create_grant(
            &k2,
            &CreateGrantRequest {
                grantee: bob.clone(),
                operations: vec!["Decrypt".into()],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        code(with(vec![foreign.grant_token.clone()]).generate_data_key(&key, 16, &ctx(&[]), true))
            .0,
        KmsCode::InvalidGrantTokenException
    );
    // The refusals were recorded as requests.
    let refused = own
        .audit_trail()
        .events()
        .unwrap()
        .into_iter()
        .filter(|e| e.error_code.as_deref() == Some("InvalidGrantTokenException"))
        .count();
    assert_eq!(refused, 4);

    // RetireGrant by token: a forged one is refused; the grantee without RetireGrant in the
    // grant may not; the real one by the account root (which created it) retires it.
    assert_eq!(
        code(own.retire_grant_with_token("bm90IGEgdG9rZW4=")).0,
        KmsCode::InvalidGrantTokenException
    );
    let as_bob = kms_as(&home, "us-east-1", &bob);
    assert_eq!(
        code(as_bob.retire_grant_with_token(&g.grant_token)).0,
        KmsCode::AccessDeniedException
    );
    assert_eq!(own.list_grants(&key).unwrap().len(), 1);
    own.retire_grant_with_token(&g.grant_token).unwrap();
    assert!(own.list_grants(&key).unwrap().is_empty());
}

/// AWS: the account that created a grant may retire it (its root user), as well as the
/// retiring principal and a grantee granted RetireGrant; anyone else may not.
#[test]
fn the_account_that_created_a_grant_may_retire_it() {
    let (_dir, home, own) = setup();
    let key = new_key(&own, &Default::default());
    let user = |n: &str| format!("arn:aws:iam::{ACCOUNT}:user/{n}");
    let mk = |ops: &[&str], retiring: Option<String>| {
        own.create_grant(
            &key,
            &CreateGrantRequest {
                grantee: user("bob"),
                operations: ops.iter().map(|o| o.to_string()).collect(),
                retiring_principal: retiring,
                ..Default::default()
            },
        )
        .unwrap()
        .grant_id
    };
    let plain = mk(&["Decrypt"], None);
    // Neither the grantee (no RetireGrant in the grant) nor another user may retire it.
    for who in [user("bob"), user("carol")] {
        let (c, m) = code(kms_as(&home, "us-east-1", &who).retire_grant(&key, &plain));
        assert_eq!(c, KmsCode::AccessDeniedException, "{who}: {m}");
    }
    own.retire_grant(&key, &plain).unwrap();
    let by_retiring = mk(&["Decrypt"], Some(user("carol")));
    kms_as(&home, "us-east-1", &user("carol"))
        .retire_grant(&key, &by_retiring)
        .unwrap();
    let by_grantee = mk(&["Decrypt", "RetireGrant"], None);
    kms_as(&home, "us-east-1", &user("bob"))
        .retire_grant(&key, &by_grantee)
        .unwrap();
    assert!(own.list_grants(&key).unwrap().is_empty());
}

/// EncryptionContextSubset and EncryptionContextEquals compare context keys case-insensitively
/// and values exactly.
#[test]
fn grant_constraints_compare_keys_case_insensitively_and_values_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let home = home_at(dir.path(), "2027-01-01T00:00:00Z");
    // A key policy naming only the root user: grants alone let bob in.
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": root()}, "Action": "kms:*", "Resource": "*",
         "Condition": {"StringEquals": {"aws:PrincipalArn": root()}}}]});
    let own = kms_as(&home, "us-east-1", &root());
    let key: KeyRef = own
        .create_key(&CreateKeyRequest {
            policy: Some(policy.to_string()),
            ..Default::default()
        })
        .unwrap()
        .arn
        .parse()
        .unwrap();
    let bob_arn = format!("arn:aws:iam::{ACCOUNT}:user/bob");
    let bob = kms_as(&home, "us-east-1", &bob_arn);
    let pairs = |p: &[(&str, &str)]| {
        Some(
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    };
    let grant = |constraints: GrantConstraints| {
        own.create_grant(
            &key,
            &CreateGrantRequest {
                grantee: bob_arn.clone(),
                operations: vec!["Encrypt".into()],
                constraints,
                ..Default::default()
            },
        )
        .unwrap()
        .grant_id
    };
    let enc = |c: &[&str]| bob.encrypt(&key, b"x", &ctx(c), EncryptionAlgorithm::SymmetricDefault);
    let id = grant(GrantConstraints {
        encryption_context_subset: pairs(&[("a", "1")]),
        ..Default::default()
    });
    enc(&["a=1"]).unwrap();
    enc(&["A=1", "b=2"]).unwrap();
    assert_eq!(code(enc(&["a=X"])).0, KmsCode::AccessDeniedException);
    assert_eq!(code(enc(&["b=1"])).0, KmsCode::AccessDeniedException);
    own.revoke_grant(&key, &id).unwrap();
    grant(GrantConstraints {
        encryption_context_equals: pairs(&[("Team", "Red")]),
        ..Default::default()
    });
    enc(&["team=Red"]).unwrap();
    enc(&["TEAM=Red"]).unwrap();
    assert_eq!(code(enc(&["team=red"])).0, KmsCode::AccessDeniedException);
    assert_eq!(
        code(enc(&["team=Red", "x=1"])).0,
        KmsCode::AccessDeniedException
    );
    assert_eq!(code(enc(&[])).0, KmsCode::AccessDeniedException);
}

/// GenerateDataKey takes exactly one of KeySpec and NumberOfBytes; KMS has no default.
#[test]
fn generate_data_key_needs_exactly_one_length() {
    let (_dir, _home, own) = setup();
    let key = new_key(&own, &Default::default());
    let none = ctx(&[]);
    for (spec, bytes) in [(None, None), (Some(DataKeySpec::Aes256), Some(32))] {
        let (c, m) = code(own.generate_data_key_with(&key, spec, bytes, &none, true));
        assert_eq!(c, KmsCode::ValidationException, "{m}");
        assert!(m.contains("KeySpec") && m.contains("NumberOfBytes"), "{m}");
    }
    let len = |spec, bytes| {
        own.generate_data_key_with(&key, spec, bytes, &none, true)
            .unwrap()
            .plaintext
            .unwrap()
            .len()
    };
    assert_eq!(len(Some(DataKeySpec::Aes128), None), 16);
    assert_eq!(len(Some(DataKeySpec::Aes256), None), 32);
    assert_eq!(len(None, Some(64)), 64);
    // The trail records what was asked for: keySpec or numberOfBytes, never both.
    let events = own.audit_trail().events().unwrap();
    let gdk: Vec<_> = events
        .iter()
        .filter(|e| e.event_name == "GenerateDataKey" && e.error_code.is_none())
        .map(|e| {
            (
                e.request_parameters["keySpec"].as_str().map(str::to_owned),
                e.request_parameters["numberOfBytes"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        gdk,
        [
            (Some("AES_128".to_owned()), None),
            (Some("AES_256".to_owned()), None),
            (None, Some(64))
        ]
    );
}

/// A multi-Region key made at 2027-01-01 in us-east-1 with a replica in eu-west-1, the
/// replica then scheduled for deletion in 7 days and the primary too (so it waits for it).
fn primary_waiting_for_its_replica(dir: &Path) -> KeyRef {
    let home = home_at(dir, "2027-01-01T00:00:00Z");
    let (east, west) = (
        kms_as(&home, "us-east-1", &root()),
        kms_as(&home, "eu-west-1", &root()),
    );
    // By id: the same in both regions.
    let key: KeyRef = east
        .create_key(&CreateKeyRequest {
            multi_region: true,
            ..Default::default()
        })
        .unwrap()
        .key_id
        .parse()
        .unwrap();
    east.replicate_key(&key, west.region()).unwrap();
    west.schedule_key_deletion(&key, Some(7), false).unwrap();
    let p = east.schedule_key_deletion(&key, Some(7), false).unwrap();
    assert_eq!(p.key_state, KeyState::PendingReplicaDeletion);
    assert_eq!(p.deletion_date, None);
    key
}

/// A primary waiting for its replicas (PendingReplicaDeletion) starts its own waiting period
/// when its last replica is deleted — the replica's deletion date — however late cofre next
/// runs, and whichever region is opened first.
#[test]
fn a_primary_waits_from_when_its_last_replica_was_deleted() {
    for replica_region_opened_first in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let key = primary_waiting_for_its_replica(dir.path());
        // cofre next runs on day 8; the replica went on day 7.
        let later = home_at(dir.path(), "2027-01-09T00:00:00Z");
        if replica_region_opened_first {
            let (c, m) = code(kms_as(&later, "eu-west-1", &root()).describe_key(&key));
            assert_eq!(c, KmsCode::NotFoundException, "{m}");
        }
        let p = kms_as(&later, "us-east-1", &root())
            .describe_key(&key)
            .unwrap();
        assert_eq!(p.key_state, KeyState::PendingDeletion);
        assert_eq!(
            p.deletion_date.as_deref(),
            Some("2027-01-15T00:00:00Z"),
            "replica region opened first: {replica_region_opened_first}"
        );
        // Destroyed on that date, not a day later.
        let then = home_at(dir.path(), "2027-01-15T00:00:01Z");
        assert_eq!(
            code(kms_as(&then, "us-east-1", &root()).describe_key(&key)).0,
            KmsCode::NotFoundException
        );
    }
    // cofre not run at all until after the primary's own date: it is destroyed at once.
    let dir = tempfile::tempdir().unwrap();
    let key = primary_waiting_for_its_replica(dir.path());
    let much_later = home_at(dir.path(), "2027-02-01T00:00:00Z");
    let (c, m) = code(kms_as(&much_later, "us-east-1", &root()).describe_key(&key));
    assert_eq!(c, KmsCode::NotFoundException, "{m}");
    assert!(m.contains("was deleted on 2027-01-15T00:00:00Z"), "{m}");
}

/// A replica's MultiRegionConfiguration.ReplicaKeys lists every replica, itself included,
/// from the ReplicateKey answer on and after UpdatePrimaryRegion.
#[test]
fn a_replica_lists_itself_among_the_replicas() {
    let t0 = "2027-01-01T00:00:00Z";
    let dir = tempfile::tempdir().unwrap();
    let home = home_at(dir.path(), t0);
    let east = kms_as(&home, "us-east-1", &root());
    let key: KeyRef = east
        .create_key(&CreateKeyRequest {
            multi_region: true,
            ..Default::default()
        })
        .unwrap()
        .key_id
        .parse()
        .unwrap();
    let r = east
        .replicate_key(&key, &Region::new("eu-west-1").unwrap())
        .unwrap();
    let regions = |c: &cofre::keyring::MultiRegionConfiguration| {
        let mut v: Vec<String> = c.replica_keys.iter().map(|k| k.region.clone()).collect();
        v.sort();
        v
    };
    let c = r.replica_key_metadata.multi_region_configuration.unwrap();
    assert_eq!(c.multi_region_key_type, MultiRegionKeyType::Replica);
    assert_eq!(regions(&c), ["eu-west-1"]);
    let r2 = east
        .replicate_key(&key, &Region::new("ap-southeast-2").unwrap())
        .unwrap();
    assert_eq!(
        regions(&r2.replica_key_metadata.multi_region_configuration.unwrap()),
        ["ap-southeast-2", "eu-west-1"]
    );
    for region in ["eu-west-1", "ap-southeast-2"] {
        let m = kms_as(&home_at(dir.path(), t0), region, &root())
            .describe_key(&key)
            .unwrap();
        assert_eq!(
            regions(&m.multi_region_configuration.unwrap()),
            ["ap-southeast-2", "eu-west-1"],
            "{region}"
        );
    }
    // After the primary moves to eu-west-1, us-east-1 is a replica and lists itself, at once.
    east.update_primary_region(&key, &Region::new("eu-west-1").unwrap())
        .unwrap();
    let home = home_at(dir.path(), t0);
    let m = kms_as(&home, "us-east-1", &root())
        .describe_key(&key)
        .unwrap();
    let c = m.multi_region_configuration.unwrap();
    assert_eq!(c.multi_region_key_type, MultiRegionKeyType::Replica);
    assert_eq!(c.primary_key.region, "eu-west-1");
    assert_eq!(regions(&c), ["ap-southeast-2", "us-east-1"]);
    let p = kms_as(&home, "eu-west-1", &root())
        .describe_key(&key)
        .unwrap();
    assert_eq!(
        regions(&p.multi_region_configuration.unwrap()),
        ["ap-southeast-2", "us-east-1"]
    );
}

/// ListKeyRotations lists only rotations by default (IncludeKeyMaterial ROTATIONS_ONLY);
/// ALL_KEY_MATERIAL adds the original material, which has no RotationDate.
#[test]
fn list_key_rotations_lists_rotations_only_by_default() {
    let (dir, _home, own) = setup();
    let m = own.create_key(&Default::default()).unwrap();
    let key: KeyRef = m.key_id.parse().unwrap();
    assert!(own.list_key_rotations(&key, false).unwrap().is_empty());
    let all = own.list_key_rotations(&key, true).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].key_material_id, m.current_key_material_id);
    assert_eq!(all[0].rotation_date, None);
    assert_eq!(all[0].key_material_state, "CURRENT");
    let later = home_at(dir.path(), "2027-02-01T00:00:00Z");
    let r = kms_as(&later, "us-east-1", &root())
        .rotate_key_on_demand(&key)
        .unwrap();
    assert_eq!(r.rotation_date.as_deref(), Some("2027-02-01T00:00:00Z"));
    let only = own.list_key_rotations(&key, false).unwrap();
    assert_eq!(only, vec![r.clone()]);
    let json = serde_json::to_value(own.list_key_rotations(&key, true).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert!(json[0].get("RotationDate").is_none(), "{json}");
    assert_eq!(json[0]["KeyMaterialState"], "NON_CURRENT");
    assert_eq!(json[1]["RotationType"], "ON_DEMAND");
    assert!(json[1].get("ImportState").is_none(), "{json}");
}

/// A closed stdout (`cofre … | head`) ends every command quietly with exit 0: no panic, no
/// message, whatever the command prints and however.
#[test]
fn a_closed_stdout_ends_commands_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let run = |args: &[&str], closed: bool| {
        let (reader, writer) = std::io::pipe().unwrap();
        if closed {
            // The reader is gone before cofre writes a byte.
            drop(reader);
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cofre"))
            .arg("--home")
            .arg(&home)
            .args(["--quiet"])
            .args(args)
            .env_remove("COFRE_HOME")
            .env_remove("COFRE_REGION")
            .env_remove("COFRE_PRINCIPAL")
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (status, err) = run(&["init", "--account", ACCOUNT], false);
    assert!(status.success(), "{err}");
    let (status, err) = run(&["key", "create"], false);
    assert!(status.success(), "{err}");
    // The key id, written to a file this time.
    let list = std::process::Command::new(env!("CARGO_BIN_EXE_cofre"))
        .arg("--home")
        .arg(&home)
        .args(["key", "list", "--output", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let key = v["Keys"][0]["KeyId"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert!(run(&["key", "rotate", &key], false).0.success());
    }
    for args in [
        vec!["--output", "json", "key", "rotations", &key],
        vec![
            "key",
            "rotations",
            &key,
            "--include-key-material",
            "ALL_KEY_MATERIAL",
        ],
        vec!["key", "describe", &key],
        vec!["--output", "json", "key", "describe", &key],
        vec!["key", "list"],
        vec!["audit", "log"],
        vec!["--output", "json", "audit", "log"],
        vec!["kms", "generate-random", "64"],
        vec!["key", "policy", "get", &key],
        vec!["--help"],
    ] {
        let (status, err) = run(&args, true);
        assert_eq!(status.code(), Some(0), "cofre {args:?}: {err}");
        assert!(err.is_empty(), "cofre {args:?} said: {err}");
    }
}

/// Identity policies, evaluated with the key policy as AWS evaluates IAM policies: a key
/// policy statement naming only the account lets a principal with an identity policy in only
/// if that policy allows the request; one naming the principal itself needs no identity
/// policy; an explicit Deny in either wins (over grants too). A principal without one keeps
/// the account's trust. Only the account root manages them.
#[test]
fn identity_policies_decide_with_the_key_policy_as_iam_does() {
    let (_dir, home, own) = setup();
    let user = |n: &str| format!("arn:aws:iam::{ACCOUNT}:user/{n}");
    let (bob, carol) = (user("bob"), user("carol"));
    // `delegating`: the default key policy (the account root). `direct`: also names bob.
    let delegating = own.create_key(&Default::default()).unwrap();
    let elsewhere = own.create_key(&Default::default()).unwrap();
    let direct_policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": root()}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": bob}, "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*"}]});
    let direct = own
        .create_key(&CreateKeyRequest {
            policy: Some(direct_policy.to_string()),
            ..Default::default()
        })
        .unwrap();
    let (k1, k2, k3): (KeyRef, KeyRef, KeyRef) = (
        delegating.arn.parse().unwrap(),
        elsewhere.arn.parse().unwrap(),
        direct.arn.parse().unwrap(),
    );
    let as_bob = kms_as(&home, "us-east-1", &bob);
    let as_carol = kms_as(&home, "us-east-1", &carol);
    let none = ctx(&[]);
    let sym = EncryptionAlgorithm::SymmetricDefault;
    // No identity policies yet: every principal of the account is let in by the root statement.
    as_bob.encrypt(&k1, b"x", &none, sym).unwrap();
    as_bob.generate_data_key(&k2, 32, &none, true).unwrap();

    let identity = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["kms:Encrypt", "kms:DescribeKey"], "Resource": delegating.arn},
        {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}]})
    .to_string();
    // Only the account root attaches them, to users and roles of the account, without
    // Principal.
    assert_eq!(
        code(as_bob.put_principal_policy(&bob, &identity)).0,
        KmsCode::AccessDeniedException
    );
    let with_principal = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}]});
    assert_eq!(
        code(own.put_principal_policy(&bob, &with_principal.to_string())).0,
        KmsCode::MalformedPolicyDocumentException
    );
    for holder in [root(), format!("arn:aws:iam::{OTHER}:user/ext")] {
        assert!(matches!(
            own.put_principal_policy(&holder, &identity),
            Err(Error::Usage(_))
        ));
    }
    let ext = kms_as(
        &home,
        "us-east-1",
        &format!("arn:aws:iam::{OTHER}:user/ext"),
    );
    assert_eq!(
        code(ext.put_principal_policy(&bob, &identity)).0,
        KmsCode::AccessDeniedException
    );
    assert!(own.list_principal_policies().unwrap().is_empty());
    own.put_principal_policy(&bob, &identity).unwrap();

    // bob: what both allow; not what only the root statement allows.
    let blob = as_bob
        .encrypt(&k1, b"x", &none, sym)
        .unwrap()
        .ciphertext_blob;
    as_bob.describe_key(&k1).unwrap();
    let (c, m) = code(as_bob.generate_data_key(&k1, 32, &none, true));
    assert_eq!(c, KmsCode::AccessDeniedException);
    assert!(m.contains("identity policy does not allow"), "{m}");
    assert_eq!(
        code(as_bob.encrypt(&k2, b"x", &none, sym)).0,
        KmsCode::AccessDeniedException,
        "the identity policy names another key"
    );
    // The key policy naming bob allows without the identity policy; its explicit Deny wins.
    as_bob.generate_data_key(&k3, 32, &none, true).unwrap();
    let blob3 = own.encrypt(&k3, b"y", &none, sym).unwrap().ciphertext_blob;
    let (c, m) = code(as_bob.decrypt(&blob3, &none, None, sym));
    assert_eq!(c, KmsCode::AccessDeniedException);
    assert!(
        m.contains("explicit deny in the caller's identity policy"),
        "{m}"
    );
    // Over a grant too.
    grant_to(&own, &k1, &bob, &["Decrypt", "GenerateDataKey"]);
    assert_eq!(
        code(as_bob.decrypt(&blob, &none, None, sym)).0,
        KmsCode::AccessDeniedException
    );
    // A grant still adds what the policies leave undecided.
    as_bob.generate_data_key(&k1, 32, &none, true).unwrap();
    // carol has no identity policy: the account's trust, as before.
    as_carol.decrypt(&blob, &none, None, sym).unwrap();
    as_carol.generate_data_key(&k2, 32, &none, true).unwrap();

    // Get, list, delete; after it, bob has the account's trust again.
    let got = own.get_principal_policy(&bob).unwrap();
    assert_eq!(got.policy_document, identity);
    let listed = own.list_principal_policies().unwrap();
    assert_eq!(listed, vec![got]);
    assert_eq!(
        code(own.get_principal_policy(&carol)).0,
        KmsCode::NotFoundException
    );
    assert_eq!(
        code(as_bob.list_principal_policies()).0,
        KmsCode::AccessDeniedException
    );
    // Another region sees the same policies (IAM is global).
    let west_bob = kms_as(&home, "eu-west-1", &bob);
    let west_key: KeyRef = kms_as(&home, "eu-west-1", &root())
        .create_key(&Default::default())
        .unwrap()
        .arn
        .parse()
        .unwrap();
    assert_eq!(
        code(west_bob.generate_data_key(&west_key, 32, &none, true)).0,
        KmsCode::AccessDeniedException
    );
    own.delete_principal_policy(&bob).unwrap();
    assert_eq!(
        code(own.delete_principal_policy(&bob)).0,
        KmsCode::NotFoundException
    );
    as_bob.decrypt(&blob, &none, None, sym).unwrap();
    west_bob
        .generate_data_key(&west_key, 32, &none, true)
        .unwrap();
    // Recorded as IAM requests.
    let names: Vec<(String, String)> = own
        .audit_trail()
        .events()
        .unwrap()
        .into_iter()
        .filter(|e| e.event_source == "iam.amazonaws.com" && e.error_code.is_none())
        .map(|e| {
            (
                e.event_name,
                e.request_parameters["userName"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("GetAccountAuthorizationDetails".to_owned(), String::new()),
            ("PutUserPolicy".to_owned(), "bob".to_owned()),
            ("GetUserPolicy".to_owned(), "bob".to_owned()),
            ("GetAccountAuthorizationDetails".to_owned(), String::new()),
            ("DeleteUserPolicy".to_owned(), "bob".to_owned()),
        ]
    );
}
