//! Key policies through the CLI: a matrix of principals, actions and conditions against
//! hand-computed decisions; the lockout check; cross-account use by ARN. A statement naming
//! the account root applies to every principal of the account (cofre has no IAM), so the
//! matrix gives user and role statements principals of their own.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Output};

const ACCOUNT: &str = "111122223333";
const ROOT: &str = "arn:aws:iam::111122223333:root";
const BOB: &str = "arn:aws:iam::111122223333:user/bob";
const EVE: &str = "arn:aws:iam::999988887777:user/eve";
const OPS: &str = "arn:aws:iam::111122223333:role/ops";

struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Self {
        let h = Home(tempfile::tempdir().unwrap());
        h.ok(ROOT, &["init", "--account", ACCOUNT]);
        h
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    fn run(&self, who: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cofre"))
            .arg("--home")
            .arg(self.path("home"))
            .args(["--principal", who, "--quiet"])
            .args(args)
            .current_dir(self.0.path())
            .env_remove("COFRE_HOME")
            .env_remove("COFRE_REGION")
            .env_remove("COFRE_PRINCIPAL")
            .output()
            .unwrap()
    }

    fn ok(&self, who: &str, args: &[&str]) -> String {
        let out = self.run(who, args);
        assert!(
            out.status.success(),
            "{who} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn fails(&self, who: &str, args: &[&str], code: i32, needles: &[&str]) {
        let out = self.run(who, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{who} {args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        for n in needles {
            assert!(err.contains(n), "{who} {args:?}: {err:?} lacks {n:?}");
        }
    }

    fn put_policy(&self, who: &str, key: &str, policy: &Value, extra: &[&str]) -> Output {
        let f = self.path("policy.json");
        std::fs::write(&f, policy.to_string()).unwrap();
        self.run(
            who,
            &[&["key", "policy", "put", key, f.to_str().unwrap()], extra].concat(),
        )
    }

    /// `key grant create` by the root: the grant of `ops` on `key` to `grantee`.
    fn grant(&self, key: &str, grantee: &str, ops: &str, extra: &[&str]) -> String {
        let args = [
            "key",
            "grant",
            "create",
            key,
            "--grantee",
            grantee,
            "--operations",
            ops,
        ];
        self.ok(ROOT, &[&args[..], extra].concat())
    }

    fn arn(&self, key: &str) -> String {
        let v: Value =
            serde_json::from_str(&self.ok(ROOT, &["key", "describe", key, "--output", "json"]))
                .unwrap();
        v["KeyMetadata"]["Arn"].as_str().unwrap().to_owned()
    }

    /// Encrypts a small file under `key` with context `ctx` as `who`; returns its path.
    fn seal(&self, who: &str, key: &str, ctx: &[&str], name: &str) -> Output {
        std::fs::write(self.path("plain"), b"policy test").unwrap();
        let mut args = vec!["encrypt", "-k", key, "-f", "-o", name];
        for c in ctx {
            args.extend(["-c", c]);
        }
        args.push("plain");
        self.run(who, &args)
    }
}

fn root_admin(extra: Vec<Value>) -> Value {
    let mut stmts = vec![json!({
        "Sid": "root administers", "Effect": "Allow", "Principal": {"AWS": ROOT},
        "Action": ["kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:DescribeKey"], "Resource": "*"
    })];
    stmts.extend(extra);
    json!({"Version": "2012-10-17", "Statement": stmts})
}

#[test]
fn the_default_policy_lets_the_account_in_and_keeps_other_accounts_out() {
    let h = Home::new();
    let key = h.ok(ROOT, &["key", "create"]);
    let arn = h.arn(&key);
    assert!(h.seal(ROOT, &key, &[], "a").status.success());
    // Any principal of the account (the default policy names the account root).
    assert!(h.seal(BOB, &key, &[], "b").status.success());
    h.ok(BOB, &["decrypt", "a"]);
    // Another account: by id the key is not even found; by ARN, refused.
    h.fails(
        EVE,
        &["encrypt", "-k", &key, "-o", "e", "plain"],
        3,
        &["NotFoundException"],
    );
    h.fails(
        EVE,
        &["key", "describe", &arn],
        3,
        &["AccessDeniedException", EVE, "kms:DescribeKey"],
    );
    h.fails(
        EVE,
        &["decrypt", "a"],
        3,
        &["AccessDeniedException", "kms:Decrypt"],
    );
    h.fails(
        EVE,
        &["key", "create"],
        3,
        &["AccessDeniedException", ACCOUNT],
    );
    h.fails(
        EVE,
        &["volume", "create", "--size", "1"],
        3,
        &["AccessDeniedException"],
    );
    // The default policy is what `key policy get` shows.
    let p: Value = serde_json::from_str(&h.ok(ROOT, &["key", "policy", "get", &key])).unwrap();
    assert_eq!(p["Statement"][0]["Principal"]["AWS"], ROOT);
    assert_eq!(p["Statement"][0]["Action"], "kms:*");
}

#[test]
fn a_policy_matrix_decides_as_computed_by_hand() {
    let h = Home::new();
    let key = h.ok(ROOT, &["key", "create"]);
    let arn = h.arn(&key);
    assert!(h.seal(ROOT, &key, &["team=red"], "red").status.success());
    assert!(h.seal(ROOT, &key, &["team=blue"], "blue").status.success());
    assert!(h
        .seal(ROOT, &key, &["team=red", "secret-x=1"], "secret")
        .status
        .success());
    let policy = root_admin(vec![
        // bob may decrypt what the red team encrypted; eve's account may encrypt with any
        // context that has a team; nobody may touch a context with a secret-* key.
        json!({"Effect": "Allow", "Principal": {"AWS": BOB}, "Action": "kms:Decrypt", "Resource": "*",
               "Condition": {"StringEquals": {"kms:EncryptionContext:team": "red"}}}),
        json!({"Effect": "Allow", "Principal": {"AWS": "999988887777"}, "Action": "kms:GenerateDataKey*", "Resource": "*",
               "Condition": {"Null": {"kms:EncryptionContext:team": "false"}, "StringLike": {"kms:CallerAccount": "9999*"}}}),
        json!({"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
               "Condition": {"ForAnyValue:StringLike": {"kms:EncryptionContextKeys": "secret-*"}}}),
        json!({"Effect": "Allow", "Principal": {"AWS": OPS}, "Action": "kms:Decrypt", "Resource": "*",
               "Condition": {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["team"]}}}),
    ]);
    assert!(h.put_policy(ROOT, &key, &policy, &[]).status.success());
    // (who, file, allowed?) by hand.
    for (who, file, allowed) in [
        (BOB, "red", true),     // statement 2
        (BOB, "blue", false),   // context differs: implicit deny
        (BOB, "secret", false), // explicit deny wins over the allow
        (OPS, "red", true),     // every context key is "team"
        (OPS, "blue", true),
        (OPS, "secret", false), // explicit deny (and secret-x is not "team")
        (ROOT, "red", false),   // the account root statement grants no Decrypt
        (EVE, "red", false),    // eve may only encrypt
    ] {
        let out = h.run(who, &["decrypt", file]);
        assert_eq!(
            out.status.success(),
            allowed,
            "{who} decrypt {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if !allowed {
            assert_eq!(out.status.code(), Some(3));
        }
    }
    h.fails(BOB, &["decrypt", "secret"], 3, &["explicit deny"]);
    // eve encrypts by ARN with a team, not without one, and not by key id.
    assert!(h.seal(EVE, &arn, &["team=green"], "eve").status.success());
    assert_eq!(h.seal(EVE, &arn, &[], "eve2").status.code(), Some(3));
    assert_eq!(
        h.seal(EVE, &key, &["team=green"], "eve3").status.code(),
        Some(3)
    );
    // bob may not encrypt at all now: nothing allows him GenerateDataKey.
    assert_eq!(
        h.seal(BOB, &key, &["team=red"], "bob").status.code(),
        Some(3)
    );
    // Every decision is in the trail, refusals with their error code.
    let trail =
        std::fs::read_to_string(h.path("home/regions/us-east-1/audit/trail.jsonl")).unwrap();
    let denied = trail
        .lines()
        .filter(|l| l.contains("\"errorCode\":\"AccessDeniedException\""))
        .count();
    assert!(denied >= 8, "{denied} refusals recorded");
}

#[test]
fn the_lockout_check_and_malformed_policies() {
    let h = Home::new();
    let key = h.ok(ROOT, &["key", "create"]);
    // A policy that would leave root unable to change it is refused...
    let locked = json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": {"AWS": BOB}, "Action": "kms:*", "Resource": "*"}});
    let out = h.put_policy(ROOT, &key, &locked, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bypass-lockout-check"));
    // ...unless asked; then root is locked out and bob is in charge.
    assert!(h
        .put_policy(ROOT, &key, &locked, &["--bypass-lockout-check"])
        .status
        .success());
    h.fails(
        ROOT,
        &["key", "policy", "get", &key],
        3,
        &["AccessDeniedException", "kms:GetKeyPolicy"],
    );
    h.fails(
        ROOT,
        &["key", "disable", &key],
        3,
        &["AccessDeniedException"],
    );
    assert!(h
        .put_policy(BOB, &key, &root_admin(vec![]), &[])
        .status
        .success());
    h.ok(ROOT, &["key", "policy", "get", &key]);
    // key create --policy goes through the same checks.
    std::fs::write(h.path("locked.json"), locked.to_string()).unwrap();
    h.fails(
        ROOT,
        &["key", "create", "--policy", "locked.json"],
        2,
        &["MalformedPolicyDocumentException"],
    );
    h.ok(
        ROOT,
        &[
            "key",
            "create",
            "--policy",
            "locked.json",
            "--bypass-lockout-check",
        ],
    );
    // Malformed documents name the field; 32 KiB is the limit.
    for (doc, needle) in [
        (
            json!({"Version": "2012-10-17", "Statement": {"Effect": "Permit", "Principal": "*", "Action": "kms:*", "Resource": "*"}}),
            "Statement[0].Effect",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Resource": "*"}]}),
            "Action",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*", "Condition": {"DateEquals": {"x": "y"}}}]}),
            "DateEquals",
        ),
        (json!({"Statement": []}), "Version"),
    ] {
        let out = h.put_policy(BOB, &key, &doc, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("MalformedPolicyDocumentException") && err.contains(needle),
            "{err}"
        );
    }
    let big = root_admin(vec![
        json!({"Sid": "x".repeat(33 * 1024), "Effect": "Allow", "Principal": "*", "Action": "kms:Describe*", "Resource": "*"}),
    ]);
    let out = h.put_policy(BOB, &key, &big, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("32 KiB"));
}

#[test]
fn aws_managed_keys_carry_a_via_service_policy() {
    let h = Home::new();
    // EBS uses alias/aws/ebs through its own service: allowed for the account.
    h.ok(BOB, &["volume", "create", "--size", "1", "--encrypted"]);
    let v: Value = serde_json::from_str(&h.ok(
        ROOT,
        &["key", "describe", "alias/aws/ebs", "--output", "json"],
    ))
    .unwrap();
    let id = v["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    let p: Value = serde_json::from_str(&h.ok(ROOT, &["key", "policy", "get", &id])).unwrap();
    assert_eq!(
        p["Statement"][0]["Condition"]["StringEquals"]["kms:ViaService"],
        "ec2.us-east-1.amazonaws.com"
    );
    // Directly, it is refused by that policy; and its policy cannot be changed.
    h.fails(
        ROOT,
        &["encrypt", "-k", "alias/aws/ebs", "-o", "x", "plain"],
        3,
        &["AccessDeniedException"],
    );
    std::fs::write(h.path("p.json"), root_admin(vec![]).to_string()).unwrap();
    h.fails(
        ROOT,
        &["key", "policy", "put", &id, "p.json"],
        3,
        &["UnsupportedOperationException"],
    );
}

#[test]
fn grants_allow_exactly_what_they_name_under_their_constraints() {
    let h = Home::new();
    // A key only root itself administers (aws:PrincipalArn: the account root statement alone
    // would cover every principal of the account): nobody may use it without a grant.
    let admin = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": ROOT},
        "Action": ["kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:DescribeKey", "kms:CreateGrant", "kms:ListGrants"],
        "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalArn": ROOT}}
    }]});
    std::fs::write(h.path("admin.json"), admin.to_string()).unwrap();
    let key = h.ok(ROOT, &["key", "create", "--policy", "admin.json"]);
    let arn = h.arn(&key);
    assert_eq!(h.seal(BOB, &key, &["app=web"], "x").status.code(), Some(3));
    // Root grants bob Encrypt-side and Decrypt, for contexts that include app=web.
    let id = h.grant(
        &key,
        BOB,
        "GenerateDataKey,Decrypt",
        &[
            "--context-subset",
            "app=web",
            "--retiring-principal",
            OPS,
            "--name",
            "web",
        ],
    );
    assert_eq!(id.len(), 64);
    assert!(h
        .seal(BOB, &key, &["app=web", "env=prod"], "web")
        .status
        .success());
    h.ok(BOB, &["decrypt", "web"]);
    // Outside the constraint, or another operation, or another principal: refused.
    assert_eq!(h.seal(BOB, &key, &["app=db"], "db").status.code(), Some(3));
    h.fails(
        BOB,
        &["key", "describe", &key],
        3,
        &["AccessDeniedException"],
    );
    assert_eq!(
        h.seal(OPS, &key, &["app=web"], "ops").status.code(),
        Some(3)
    );
    // context-equals means exactly.
    let eq = h.ok(
        ROOT,
        &[
            "key",
            "grant",
            "create",
            &arn,
            "--grantee",
            OPS,
            "--operations",
            "GenerateDataKey",
            "--context-equals",
            "app=web",
        ],
    );
    assert!(h.seal(OPS, &key, &["app=web"], "o1").status.success());
    assert_eq!(
        h.seal(OPS, &key, &["app=web", "env=prod"], "o2")
            .status
            .code(),
        Some(3)
    );
    let list: Value =
        serde_json::from_str(&h.ok(ROOT, &["key", "grant", "list", &key, "--output", "json"]))
            .unwrap();
    assert_eq!(list["Grants"].as_array().unwrap().len(), 2);
    assert_eq!(
        list["Grants"][0]["Constraints"]["EncryptionContextSubset"]["app"],
        "web"
    );
    // Bad requests.
    h.fails(
        ROOT,
        &[
            "key",
            "grant",
            "create",
            &key,
            "--grantee",
            BOB,
            "--operations",
            "Sign",
        ],
        2,
        &["ValidationException", "Sign"],
    );
    h.fails(
        ROOT,
        &[
            "key",
            "grant",
            "create",
            &key,
            "--grantee",
            "bob",
            "--operations",
            "Decrypt",
        ],
        2,
        &["invalid principal"],
    );
    // Retire: only the retiring principal (or a grantee granted RetireGrant).
    h.fails(
        BOB,
        &["key", "grant", "retire", &key, &id],
        3,
        &["AccessDeniedException"],
    );
    h.ok(OPS, &["key", "grant", "retire", &key, &id]);
    assert_eq!(h.run(BOB, &["decrypt", "web"]).status.code(), Some(3));
    // Revoke: needs kms:RevokeGrant in the policy, which root lacks here.
    h.fails(
        ROOT,
        &["key", "grant", "revoke", &key, &eq],
        3,
        &["AccessDeniedException", "kms:RevokeGrant"],
    );
    let mut admin = admin.clone();
    admin["Statement"][0]["Action"]
        .as_array_mut()
        .unwrap()
        .push(json!("kms:RevokeGrant"));
    assert!(h.put_policy(ROOT, &key, &admin, &[]).status.success());
    h.ok(ROOT, &["key", "grant", "revoke", &key, &eq]);
    assert_eq!(h.seal(OPS, &key, &["app=web"], "o3").status.code(), Some(3));
    h.fails(
        ROOT,
        &["key", "grant", "revoke", &key, &eq],
        3,
        &["NotFoundException"],
    );
    // An explicit Deny in the policy beats a grant.
    let gid = h.ok(
        ROOT,
        &[
            "key",
            "grant",
            "create",
            &key,
            "--grantee",
            BOB,
            "--operations",
            "GenerateDataKey",
        ],
    );
    assert_eq!(gid.len(), 64);
    let mut deny = admin.clone();
    deny["Statement"].as_array_mut().unwrap().push(
        json!({"Effect": "Deny", "Principal": {"AWS": BOB}, "Action": "kms:*", "Resource": "*"}),
    );
    assert!(h.put_policy(ROOT, &key, &deny, &[]).status.success());
    assert_eq!(h.seal(BOB, &key, &[], "denied").status.code(), Some(3));
}

#[test]
fn bool_and_key_spec_conditions() {
    let h = Home::new();
    let key = h.ok(ROOT, &["key", "create"]);
    // Only through a service (EBS), and only for symmetric keys.
    let policy = root_admin(vec![json!({
        "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*",
        "Condition": {"Bool": {"aws:ViaAWSService": "true"}, "StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT"}}
    })]);
    assert!(h.put_policy(ROOT, &key, &policy, &[]).status.success());
    assert_eq!(h.seal(ROOT, &key, &[], "direct").status.code(), Some(3));
    h.ok(
        ROOT,
        &[
            "volume",
            "create",
            "--size",
            "1",
            "--encrypted",
            "--kms-key",
            &key,
        ],
    );
    // The same with another key spec named: nothing allows it, even through EBS.
    let other = h.ok(ROOT, &["key", "create"]);
    let wrong = root_admin(vec![json!({
        "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*",
        "Condition": {"Bool": {"aws:ViaAWSService": "true"}, "StringEquals": {"kms:KeySpec": "RSA_2048"}}
    })]);
    assert!(h.put_policy(ROOT, &other, &wrong, &[]).status.success());
    h.fails(
        ROOT,
        &[
            "volume",
            "create",
            "--size",
            "1",
            "--encrypted",
            "--kms-key",
            &other,
        ],
        3,
        &[
            "AccessDeniedException",
            "kms:GenerateDataKeyWithoutPlaintext",
        ],
    );
}

#[test]
fn alias_deletion_and_replica_policies_follow_their_keys() {
    let h = Home::new();
    let key = h.ok(
        ROOT,
        &["key", "create", "--multi-region", "--alias", "alias/k"],
    );
    h.ok(ROOT, &["key", "replicate", &key, "--to", "eu-west-1"]);
    // Bob may do everything but delete aliases of this key.
    let policy = root_admin(vec![
        json!({"Effect": "Allow", "Principal": {"AWS": BOB}, "Action": "kms:*", "Resource": "*"}),
        json!({"Effect": "Deny", "Principal": {"AWS": BOB}, "Action": "kms:DeleteAlias", "Resource": "*"}),
    ]);
    assert!(h.put_policy(ROOT, &key, &policy, &[]).status.success());
    h.fails(
        BOB,
        &["alias", "delete", "alias/k"],
        3,
        &["AccessDeniedException", "kms:DeleteAlias"],
    );
    h.ok(ROOT, &["alias", "list"])
        .contains("alias/k")
        .then_some(())
        .unwrap();
    // The replica keeps its own (default) policy: replicas share material, not policy.
    let eu: Value = serde_json::from_str(&h.ok(
        ROOT,
        &["--region", "eu-west-1", "key", "policy", "get", &key],
    ))
    .unwrap();
    assert_eq!(eu["Statement"][0]["Action"], "kms:*");
    let us: Value = serde_json::from_str(&h.ok(ROOT, &["key", "policy", "get", &key])).unwrap();
    assert_eq!(us["Statement"].as_array().unwrap().len(), 3);
}

#[test]
fn ebs_key_requests_carry_the_volume_context() {
    let h = Home::new();
    let key = h.ok(ROOT, &["key", "create"]);
    // Only requests bound to a volume (context aws:ebs:id) may use the key.
    let policy = root_admin(vec![json!({
        "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*",
        "Condition": {"StringLike": {"kms:EncryptionContext:aws:ebs:id": "vol-*"}}
    })]);
    assert!(h.put_policy(ROOT, &key, &policy, &[]).status.success());
    let vol = h.ok(
        ROOT,
        &[
            "volume",
            "create",
            "--size",
            "1",
            "--encrypted",
            "--kms-key",
            &key,
        ],
    );
    h.ok(
        ROOT,
        &["volume", "read", &vol, "--offset", "0", "--length", "1"],
    );
    assert_eq!(
        h.seal(ROOT, &key, &["aws:ebs:id=x"], "f").status.code(),
        Some(3)
    );
    let trail =
        std::fs::read_to_string(h.path("home/regions/us-east-1/audit/trail.jsonl")).unwrap();
    assert!(
        trail.contains(&format!("\"aws:ebs:id\":\"{vol}\"")),
        "{trail}"
    );
}

/// The algorithm condition keys: a policy that lets bob sign only with RSASSA_PSS_SHA_256 and
/// only RAW messages; grants suit the key's type; an alias keeps its key type.
#[test]
fn signing_algorithm_conditions_grants_and_alias_types() {
    let h = Home::new();
    let key = h.ok(
        ROOT,
        &[
            "key",
            "create",
            "--spec",
            "RSA_2048",
            "--usage",
            "SIGN_VERIFY",
        ],
    );
    let arn = h.arn(&key);
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            // The account root stands for every principal of the account: management only.
            {"Sid": "admin", "Effect": "Allow", "Principal": {"AWS": ROOT},
             "Action": ["kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:DescribeKey", "kms:CreateGrant",
                        "kms:ListGrants", "kms:CreateAlias", "kms:UpdateAlias"], "Resource": "*"},
            {"Sid": "bob", "Effect": "Allow", "Principal": {"AWS": BOB}, "Action": "kms:Sign", "Resource": "*",
             "Condition": {"StringEquals": {"kms:SigningAlgorithm": "RSASSA_PSS_SHA_256", "kms:MessageType": "RAW"}}}
        ]
    });
    let out = h.put_policy(ROOT, &key, &policy, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(h.path("msg"), b"release 1.0").unwrap();
    let sign = |alg: &str, kind: &str| {
        h.run(
            BOB,
            &[
                "kms",
                "sign",
                &arn,
                "--message-file",
                "msg",
                "--algorithm",
                alg,
                "--message-type",
                kind,
                "-o",
                "-",
            ],
        )
    };
    assert!(sign("RSASSA_PSS_SHA_256", "RAW").status.success());
    h.fails(
        BOB,
        &[
            "kms",
            "sign",
            &arn,
            "--message-file",
            "msg",
            "--algorithm",
            "RSASSA_PKCS1_V1_5_SHA_256",
            "-o",
            "-",
        ],
        3,
        &["AccessDeniedException", "kms:Sign"],
    );
    std::fs::write(h.path("digest"), [7u8; 32]).unwrap();
    h.fails(
        BOB,
        &[
            "kms",
            "sign",
            &arn,
            "--message-file",
            "digest",
            "--message-type",
            "DIGEST",
            "--algorithm",
            "RSASSA_PSS_SHA_256",
            "-o",
            "-",
        ],
        3,
        &["AccessDeniedException"],
    );

    // A grant of Decrypt on a signing key does not fit it; Sign does.
    h.fails(
        ROOT,
        &[
            "key",
            "grant",
            "create",
            &key,
            "--grantee",
            OPS,
            "--operations",
            "Decrypt",
        ],
        2,
        &["ValidationException", "Decrypt does not apply", "Sign"],
    );
    h.ok(
        ROOT,
        &[
            "key",
            "grant",
            "create",
            &key,
            "--grantee",
            OPS,
            "--operations",
            "Sign,Verify",
        ],
    );
    assert!(h
        .run(
            OPS,
            &[
                "kms",
                "sign",
                &arn,
                "--message-file",
                "msg",
                "--algorithm",
                "RSASSA_PKCS1_V1_5_SHA_512",
                "-o",
                "-"
            ]
        )
        .status
        .success());

    // An alias of a signing key cannot be moved onto a symmetric key.
    h.ok(ROOT, &["alias", "create", "alias/release", &key]);
    let sym = h.ok(ROOT, &["key", "create"]);
    h.fails(
        ROOT,
        &["alias", "update", "alias/release", &sym],
        2,
        &["ValidationException", "same type and usage"],
    );
    let other = h.ok(
        ROOT,
        &[
            "key",
            "create",
            "--spec",
            "ECC_NIST_P256",
            "--usage",
            "SIGN_VERIFY",
        ],
    );
    h.ok(ROOT, &["alias", "update", "alias/release", &other]);
}

/// ReEncrypt is checked as ReEncryptFrom on its source key with the source context, and as
/// ReEncryptTo on its destination with the destination context: a context-based Deny cannot be
/// bypassed by re-encrypting to another key.
#[test]
fn re_encrypt_is_checked_with_each_side_s_context() {
    let h = Home::new();
    let source = h.ok(ROOT, &["key", "create"]);
    let dest = h.ok(ROOT, &["key", "create"]);
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "all", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "not-tenant-b", "Effect": "Deny", "Principal": {"AWS": BOB},
             "Action": ["kms:Decrypt", "kms:ReEncryptFrom"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "B"}}}
        ]
    });
    let out = h.put_policy(ROOT, &source, &policy, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(h.path("secret"), b"tenant data").unwrap();
    for tenant in ["A", "B"] {
        let ctx = format!("tenant={tenant}");
        let (blob, out) = (format!("blob-{tenant}"), format!("out-{tenant}"));
        h.ok(
            ROOT,
            &[
                "kms",
                "encrypt",
                &source,
                "--plaintext-file",
                "secret",
                "-c",
                &ctx,
                "-o",
                &blob,
            ],
        );
        let args = [
            "kms",
            "re-encrypt",
            "--ciphertext-file",
            &blob,
            "--destination-key",
            &dest,
            "--source-context",
            &ctx,
            "-o",
            &out,
        ];
        if tenant == "A" {
            h.ok(BOB, &args);
        } else {
            h.fails(
                BOB,
                &args,
                3,
                &["AccessDeniedException", "kms:ReEncryptFrom"],
            );
            h.fails(
                BOB,
                &[
                    "kms",
                    "decrypt",
                    "--ciphertext-file",
                    &blob,
                    "-c",
                    &ctx,
                    "-o",
                    "plain",
                ],
                3,
                &["AccessDeniedException", "kms:Decrypt"],
            );
        }
    }
}

/// `cofre principal policy` attaches an identity policy that decides, with a key policy that
/// names only the account, what the principal may do; `--grant-tokens` are checked; and the
/// CLI supplies GenerateDataKey's AES_256 when no length is given.
#[test]
fn identity_policies_grant_tokens_and_data_key_lengths_through_the_cli() {
    let h = Home::new();
    let key = h.ok(ROOT, &["key", "create"]);
    let arn = h.arn(&key);
    assert!(h.seal(BOB, &key, &[], "before").status.success());
    let doc = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": arn}]});
    let f = h.path("bob.json");
    std::fs::write(&f, doc.to_string()).unwrap();
    h.fails(
        BOB,
        &["principal", "policy", "put", BOB, f.to_str().unwrap()],
        3,
        &["AccessDeniedException", "account root"],
    );
    h.ok(
        ROOT,
        &["principal", "policy", "put", BOB, f.to_str().unwrap()],
    );
    let got: Value =
        serde_json::from_str(&h.ok(ROOT, &["principal", "policy", "get", BOB])).unwrap();
    assert_eq!(got, doc);
    let listed: Value =
        serde_json::from_str(&h.ok(ROOT, &["principal", "policy", "list", "--output", "json"]))
            .unwrap();
    assert_eq!(listed["Policies"][0]["PrincipalArn"], BOB);
    // bob may decrypt (both allow) but no longer encrypt (only the root statement does).
    h.ok(BOB, &["decrypt", "before"]);
    h.fails(
        BOB,
        &["encrypt", "-k", &key, "-o", "e", "plain"],
        3,
        &["AccessDeniedException", "identity policy"],
    );
    // ops has none: the account's trust.
    assert!(h.seal(OPS, &key, &[], "ops").status.success());
    h.ok(ROOT, &["principal", "policy", "delete", BOB]);
    assert!(h.seal(BOB, &key, &[], "after").status.success());

    // Grant tokens on the data commands.
    std::fs::write(h.path("p.bin"), b"hello").unwrap();
    let enc = |tokens: &str| {
        h.run(
            ROOT,
            &[
                "kms",
                "encrypt",
                &key,
                "--plaintext-file",
                "p.bin",
                "--output",
                "json",
                "--grant-tokens",
                tokens,
            ],
        )
    };
    let out = enc("bm90IGEgdG9rZW4=");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidGrantTokenException"));
    let g: Value =
        serde_json::from_str(&h.grant(&key, BOB, "Encrypt", &["--output", "json"])).unwrap();
    let token = g["GrantToken"].as_str().unwrap();
    assert!(enc(&format!("{token},{token}")).status.success());
    h.ok(ROOT, &["key", "grant", "retire", "--grant-token", token]);
    assert_eq!(h.ok(ROOT, &["key", "grant", "list", &key]), "");

    // GenerateDataKey: neither --bytes nor --key-spec is AES_256 (the CLI's default).
    for (args, len) in [
        (&[][..], 32),
        (&["--key-spec", "AES_128"][..], 16),
        (&["--bytes", "7"][..], 7),
    ] {
        let out = h.path(&format!("dk{len}"));
        let blob = h.path(&format!("dk{len}.blob"));
        h.ok(
            ROOT,
            &[
                &[
                    "kms",
                    "generate-data-key",
                    &key,
                    "--plaintext-out",
                    out.to_str().unwrap(),
                    "--ciphertext-out",
                    blob.to_str().unwrap(),
                ][..],
                args,
            ]
            .concat(),
        );
        assert_eq!(std::fs::read(&out).unwrap().len(), len);
    }
}
