//! The audit trail through the CLI: the shape of each CloudTrail-style record, service events
//! (automatic rotation, deletion), EBS calls and the KMS calls EBS makes, concurrent appends,
//! `audit verify` against edited, deleted, inserted, reordered and rewritten records and
//! damaged digests, a line cut short by a crash, and the `audit log` filters.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ACCOUNT: &str = "111122223333";
const ROOT: &str = "arn:aws:iam::111122223333:root";
const BOB: &str = "arn:aws:iam::111122223333:user/bob";
const OPS: &str = "arn:aws:iam::111122223333:role/ops";
const T0: &str = "2026-01-01T00:00:00Z";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The `cofreChain` of records on the keyed chain.
const KEYED: &str = "keyed-blake3";
/// A well-formed key id no key has.
const MISSING: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";
const USAGE: i32 = 2;
const ACCESS: i32 = 3;
const INTEGRITY: i32 = 4;

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    /// A fresh home of account [`ACCOUNT`].
    fn new() -> Self {
        let h = Home {
            dir: tempfile::tempdir().unwrap(),
        };
        h.ok(T0, &["init", "--account", ACCOUNT]);
        h
    }

    /// A copy of this home folder in a new temporary directory.
    fn copy(&self) -> Self {
        let h = Home {
            dir: tempfile::tempdir().unwrap(),
        };
        copy_dir(&self.home(), &h.home());
        h
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn home(&self) -> PathBuf {
        self.path("home")
    }

    fn trail(&self) -> PathBuf {
        self.path("home/regions/us-east-1/audit/trail.jsonl")
    }

    /// The high-water mark: the last record appended, sealed.
    fn mark(&self) -> PathBuf {
        self.path("home/regions/us-east-1/audit/mark.json")
    }

    fn digest(&self, seq: u64) -> PathBuf {
        self.path(&format!(
            "home/regions/us-east-1/audit/digests/{seq:020}.json"
        ))
    }

    /// cofre at time `now` (RFC 3339) in us-east-1, with `env` set (COFRE_PRINCIPAL, say).
    fn run_env(&self, now: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cofre"))
            .arg("--home")
            .arg(self.home())
            .args(["--region", "us-east-1"])
            .args(args)
            .env("COFRE_NOW", now)
            .env_remove("COFRE_HOME")
            .env_remove("COFRE_REGION")
            .env_remove("COFRE_PRINCIPAL")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    fn run(&self, now: &str, args: &[&str]) -> Output {
        self.run_env(now, &[], args)
    }

    fn ok(&self, now: &str, args: &[&str]) -> String {
        let out = self.run(now, args);
        assert!(
            out.status.success(),
            "cofre {args:?} at {now} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Expects exit `code` with a one-line error naming all of `needles`; returns the error.
    fn fails(&self, now: &str, args: &[&str], code: i32, needles: &[&str]) -> String {
        check_fails(&self.run(now, args), args, code, needles)
    }

    /// `audit log --output json` with `filters`: one record per line.
    fn log(&self, filters: &[&str]) -> Vec<Value> {
        let args = [&["audit", "log"][..], filters, &["--output", "json"]].concat();
        self.ok(T0, &args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// The trail's lines, without their newlines.
    fn lines(&self) -> Vec<Vec<u8>> {
        split_lines(&std::fs::read(self.trail()).unwrap())
    }

    /// The trail's records, parsed straight from the file.
    fn records(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    fn write_lines(&self, lines: &[Vec<u8>]) {
        let mut raw = Vec::new();
        for l in lines {
            raw.extend_from_slice(l);
            raw.push(b'\n');
        }
        std::fs::write(self.trail(), raw).unwrap();
    }

    /// `audit verify` fails with exit 4 naming all of `needles`.
    fn verify_fails(&self, needles: &[&str]) -> String {
        self.fails(T0, &["audit", "verify"], INTEGRITY, needles)
    }

    fn verify_ok(&self) {
        let out = self.ok(T0, &["audit", "verify"]);
        assert!(out.contains("intact"), "{out}");
    }
}

fn check_fails(out: &Output, args: &[&str], code: i32, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "cofre {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    for n in needles {
        assert!(err.contains(n), "cofre {args:?}: {err:?} lacks {n:?}");
    }
    err
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            found.extend(files_containing(&e.path(), needle));
        } else if std::fs::read(e.path())
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            found.push(e.path());
        }
    }
    found
}

fn split_lines(raw: &[u8]) -> Vec<Vec<u8>> {
    raw.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn hash(line: &[u8]) -> String {
    blake3::hash(line).to_hex().to_string()
}

/// Sequence 1, 2, … and each line on the keyed chain, naming a 64-digit link to the one before
/// that is not its plain BLAKE3 (the links themselves need the trail's key: `audit verify`
/// checks them).
fn assert_chain(lines: &[Vec<u8>]) {
    let mut prev: Option<&[u8]> = None;
    for (i, l) in lines.iter().enumerate() {
        let r: Value = serde_json::from_slice(l).unwrap();
        assert_eq!(r["cofreSequence"], i as u64 + 1, "line {}", i + 1);
        assert_eq!(r["cofreChain"], KEYED, "line {}", i + 1);
        let link = r["cofrePrevious"].as_str().unwrap();
        assert_eq!(link.len(), 64, "line {}", i + 1);
        match prev {
            None => assert_eq!(link, GENESIS, "line 1"),
            Some(p) => assert_ne!(link, hash(p), "line {}: an unkeyed link", i + 1),
        }
        prev = Some(l);
    }
}

fn key_arn(id: &str) -> String {
    format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{id}")
}

fn names(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["eventName"].as_str().unwrap())
        .collect()
}

fn seqs(records: &[Value]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r["cofreSequence"].as_u64().unwrap())
        .collect()
}

/// The one record matching `pred`.
fn only<'a>(records: &'a [Value], what: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    let found: Vec<&Value> = records.iter().filter(|r| pred(r)).collect();
    assert_eq!(found.len(), 1, "{what}: {found:#?}");
    found[0]
}

fn resource_arns(r: &Value) -> Vec<&str> {
    r["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            assert_eq!(x["type"], "AWS::KMS::Key", "{r}");
            assert_eq!(x["accountId"], ACCOUNT, "{r}");
            x["ARN"].as_str().unwrap()
        })
        .collect()
}

/// Writes a file of `text` outside the home and encrypts it under `key`.
fn seal(h: &Home, now: &str, key: &str, name: &str, text: &str) -> PathBuf {
    let plain = h.path(name);
    std::fs::write(&plain, text).unwrap();
    let sealed = h.path(&format!("{name}.cofre"));
    h.ok(
        now,
        &[
            "encrypt",
            "-k",
            key,
            "-o",
            sealed.to_str().unwrap(),
            plain.to_str().unwrap(),
        ],
    );
    sealed
}

#[test]
fn records_have_the_cloudtrail_shape_name_the_caller_and_hold_no_plaintext() {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create"]);
    let arn = key_arn(&key);
    // Bob by flag, a role by the environment, the root by default.
    h.ok(T0, &["--principal", BOB, "key", "describe", &key]);
    let out = h.run_env(
        T0,
        &[("COFRE_PRINCIPAL", BOB)],
        &["key", "describe", MISSING],
    );
    check_fails(
        &out,
        &["key", "describe", MISSING],
        ACCESS,
        &["NotFoundException"],
    );
    let out = h.run_env(T0, &[("COFRE_PRINCIPAL", OPS)], &["key", "disable", &key]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Refused while disabled.
    let marker = "cofre-audit-marker-7f3a91c2-PLAINTEXT";
    let text = format!("{marker}\n").repeat(100);
    std::fs::write(h.path("p"), &text).unwrap();
    h.fails(
        T0,
        &[
            "encrypt",
            "-k",
            &key,
            "-o",
            h.path("refused.cofre").to_str().unwrap(),
            h.path("p").to_str().unwrap(),
        ],
        ACCESS,
        &["DisabledException"],
    );
    h.ok(T0, &["key", "enable", &key]);
    let sealed = seal(&h, T0, &key, "p", &text);
    let opened = h.path("opened");
    h.ok(
        T0,
        &[
            "decrypt",
            sealed.to_str().unwrap(),
            "-o",
            opened.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&opened).unwrap(), text);

    // A malformed principal is refused before anything runs, and nothing is recorded.
    let before = h.lines().len();
    h.fails(
        T0,
        &["--principal", "arn:aws:iam::1234:user/bob", "key", "list"],
        USAGE,
        &["invalid principal"],
    );
    h.fails(
        T0,
        &["--principal", "bob", "key", "describe", &key],
        USAGE,
        &["invalid principal"],
    );
    assert_eq!(h.lines().len(), before);

    let lines = h.lines();
    assert_chain(&lines);
    let records = h.records();
    let mut ids = std::collections::HashSet::new();
    for r in &records {
        assert!(
            r["eventVersion"].as_str().is_some_and(|v| !v.is_empty()),
            "{r}"
        );
        assert_eq!(r["eventTime"], T0, "{r}");
        assert_eq!(r["awsRegion"], "us-east-1", "{r}");
        assert_eq!(r["eventSource"], "kms.amazonaws.com", "{r}");
        assert_eq!(r["eventType"], "AwsApiCall", "{r}");
        assert_eq!(r["managementEvent"], true, "{r}");
        assert_eq!(r["eventCategory"], "Management", "{r}");
        assert_eq!(r["recipientAccountId"], ACCOUNT, "{r}");
        assert_eq!(r["eventVersion"], "1.11", "{r}");
        // As KMS logs: the new key's metadata for CreateKey, nothing for the others here.
        if r["eventName"] == "CreateKey" && r.get("errorCode").is_none() {
            let m = &r["responseElements"]["keyMetadata"];
            assert_eq!(
                m["keyId"],
                r["resources"][0]["ARN"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap(),
                "{r}"
            );
            assert_eq!(m["keyState"], "Enabled", "{r}");
        } else {
            assert_eq!(r["responseElements"], Value::Null, "{r}");
        }
        // CloudTrail logs no nulls among the parameters.
        if let Some(p) = r["requestParameters"].as_object() {
            assert!(p.values().all(|v| !v.is_null()), "{r}");
        }
        assert!(
            r["sourceIPAddress"].as_str().is_some_and(|v| !v.is_empty()),
            "{r}"
        );
        assert!(
            r["userAgent"].as_str().unwrap().starts_with("cofre/"),
            "{r}"
        );
        assert!(r["readOnly"].is_boolean(), "{r}");
        for id in ["requestID", "eventID"] {
            let v = r[id].as_str().unwrap();
            assert_eq!(v.len(), 36, "{r}");
            assert!(ids.insert(v.to_owned()), "{id} repeated: {r}");
        }
        assert_eq!(r["userIdentity"]["accountId"], ACCOUNT, "{r}");
        assert!(r["userIdentity"].get("invokedBy").is_none(), "{r}");
        // Failed and refused requests carry the exception name and a message; others neither.
        assert_eq!(
            r.get("errorCode").is_some(),
            r.get("errorMessage").is_some(),
            "{r}"
        );
    }
    let by_root = |r: &Value| r["userIdentity"]["arn"] == ROOT;

    let create = &records[0];
    assert_eq!(create["eventName"], "CreateKey");
    assert_eq!(create["readOnly"], false);
    assert_eq!(create["userIdentity"]["type"], "Root");
    assert_eq!(create["userIdentity"]["arn"], ROOT);
    assert!(create["userIdentity"].get("userName").is_none(), "{create}");
    assert_eq!(resource_arns(create), [arn.as_str()]);
    assert!(create.get("errorCode").is_none());

    let bob = only(&records, "bob's DescribeKey", |r| {
        r["eventName"] == "DescribeKey"
            && r["userIdentity"]["arn"] == BOB
            && r["requestParameters"]["keyId"] == key.as_str()
    });
    assert_eq!(bob["userIdentity"]["type"], "IAMUser");
    assert_eq!(bob["userIdentity"]["userName"], "bob");
    assert_eq!(bob["readOnly"], true);
    assert_eq!(bob["requestParameters"]["keyId"], key.as_str());
    assert_eq!(resource_arns(bob), [arn.as_str()]);

    let missing = only(&records, "the failed DescribeKey", |r| {
        r["requestParameters"]["keyId"] == MISSING
    });
    assert_eq!(missing["eventName"], "DescribeKey");
    assert_eq!(missing["errorCode"], "NotFoundException");
    assert!(missing["errorMessage"].as_str().unwrap().contains(MISSING));
    assert_eq!(missing["userIdentity"]["type"], "IAMUser");
    assert_eq!(
        missing["userIdentity"]["arn"], BOB,
        "COFRE_PRINCIPAL ignored"
    );
    assert_eq!(missing["userIdentity"]["userName"], "bob");
    // As in CloudTrail, a failed request names the key as supplied.
    assert_eq!(resource_arns(missing), [key_arn(MISSING)]);

    let disable = only(&records, "DisableKey", |r| r["eventName"] == "DisableKey");
    assert_eq!(disable["userIdentity"]["type"], "AssumedRole");
    assert_eq!(
        disable["userIdentity"]["arn"], OPS,
        "COFRE_PRINCIPAL ignored"
    );
    assert_eq!(disable["userIdentity"]["userName"], "ops");
    assert_eq!(disable["readOnly"], false);
    assert_eq!(resource_arns(disable), [arn.as_str()]);
    let enable = only(&records, "EnableKey", |r| r["eventName"] == "EnableKey");
    assert!(by_root(enable));

    let gdk: Vec<&Value> = records
        .iter()
        .filter(|r| r["eventName"] == "GenerateDataKey")
        .collect();
    assert_eq!(gdk.len(), 2, "{gdk:#?}");
    assert_eq!(gdk[0]["errorCode"], "DisabledException");
    assert!(gdk[1].get("errorCode").is_none(), "{}", gdk[1]);
    for g in &gdk {
        assert_eq!(g["readOnly"], true);
        assert_eq!(g["requestParameters"]["keyId"], key.as_str());
        assert!(by_root(g));
    }
    assert_eq!(resource_arns(gdk[0]), [arn.as_str()]);
    assert_eq!(resource_arns(gdk[1]), [arn.as_str()]);
    let dec = only(&records, "Decrypt", |r| r["eventName"] == "Decrypt");
    assert_eq!(dec["readOnly"], true);
    assert!(dec.get("errorCode").is_none(), "{dec}");
    assert_eq!(resource_arns(dec), [arn.as_str()]);

    // The plaintext is nowhere in the home: not in the trail, digests, keys or anything else.
    // (The scan does find it outside the home, where the test wrote it.)
    assert!(!files_containing(h.dir.path(), marker.as_bytes()).is_empty());
    let leaked = files_containing(&h.home(), marker.as_bytes());
    assert!(leaked.is_empty(), "plaintext in {leaked:?}");
    let trail = std::fs::read_to_string(h.trail()).unwrap();
    assert!(!trail.contains("cofre-audit-marker"));
    // A digest was written with the first record.
    assert!(h.digest(1).exists());
    h.verify_ok();
}

#[test]
fn an_alias_made_by_key_create_is_recorded() {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create", "--alias", "alias/recorded"]);
    let records = h.records();
    assert!(h.ok(T0, &["alias", "list"]).contains("alias/recorded"));
    // The alias exists, so the trail says who made it: CreateKey, then its own CreateAlias
    // record (CloudTrail's CreateKey has no alias parameter).
    let n = records.len();
    assert_eq!(names(&records[n - 2..]), ["CreateKey", "CreateAlias"]);
    assert!(records[n - 2]["requestParameters"]
        .get("aliasName")
        .is_none());
    let a = &records[n - 1];
    assert_eq!(a["requestParameters"]["aliasName"], "alias/recorded");
    assert_eq!(a["requestParameters"]["targetKeyId"], key.as_str());
    assert_eq!(resource_arns(a), [key_arn(&key)]);
    // The explicit call is recorded as CreateAlias.
    h.ok(T0, &["alias", "create", "alias/explicit", &key]);
    let r = h.records().pop().unwrap();
    assert_eq!(r["eventName"], "CreateAlias");
    assert_eq!(r["requestParameters"]["aliasName"], "alias/explicit");
    assert_eq!(r["requestParameters"]["targetKeyId"], key.as_str());
}

#[test]
fn automatic_rotation_and_deletion_are_recorded_as_service_events() {
    let h = Home::new();
    let rotating = h.ok(T0, &["key", "create"]);
    h.ok(
        T0,
        &[
            "key",
            "rotation",
            "enable",
            &rotating,
            "--period-days",
            "90",
        ],
    );
    let doomed = h.ok(T0, &["key", "create"]);
    h.ok(T0, &["key", "schedule-deletion", &doomed, "--days", "7"]);
    let service = |records: &[Value]| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r["eventType"] == "AwsServiceEvent")
            .cloned()
            .collect()
    };
    assert!(service(&h.records()).is_empty());

    // Simulated days go by; each request carries out what has come due.
    let day = |d: u32| {
        let t = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(1_767_225_600 + u64::from(d) * 86_400);
        humantime::format_rfc3339_seconds(t).to_string()
    };
    assert_eq!(day(0), T0);
    let mut seen = Vec::new();
    for d in [1, 6, 8, 9, 30, 60, 89, 91, 100] {
        let now = day(d);
        h.ok(&now, &["key", "list"]);
        for r in service(&h.records()) {
            if !seen.contains(&r) {
                seen.push(r.clone());
                assert_eq!(r["eventTime"], now.as_str(), "{r}");
            }
        }
    }
    assert_eq!(names(&seen), ["DeleteKey", "RotateKey"], "{seen:#?}");
    let (delete, rotate) = (&seen[0], &seen[1]);
    assert_eq!(delete["eventTime"], day(8).as_str());
    assert_eq!(resource_arns(delete), [key_arn(&doomed)]);
    assert_eq!(rotate["eventTime"], day(91).as_str());
    assert_eq!(resource_arns(rotate), [key_arn(&rotating)]);
    for r in &seen {
        assert_eq!(r["eventSource"], "kms.amazonaws.com");
        assert_eq!(r["readOnly"], false);
        // As CloudTrail logs KMS's own events: the account, "AWS Internal", the key in
        // serviceEventDetails, no request parameters.
        assert!(r["userIdentity"].get("type").is_none(), "{r}");
        assert_eq!(r["userIdentity"]["accountId"], ACCOUNT);
        assert_eq!(r["userIdentity"]["invokedBy"], "AWS Internal");
        assert!(r["userIdentity"].get("arn").is_none(), "{r}");
        assert_eq!(r["userAgent"], "AWS Internal");
        assert_eq!(r["sourceIPAddress"], "AWS Internal");
        assert_eq!(r["requestParameters"], Value::Null);
        assert_eq!(
            r["serviceEventDetails"]["keyId"], r["resources"][0]["ARN"],
            "{r}"
        );
        assert!(r.get("errorCode").is_none(), "{r}");
        assert_eq!(r["recipientAccountId"], ACCOUNT);
    }
    // Each event comes just before the request that set it off.
    let records = h.records();
    for r in &seen {
        let i = r["cofreSequence"].as_u64().unwrap() as usize;
        assert_eq!(records[i]["eventName"], "ListKeys", "{}", records[i]);
        assert_eq!(records[i]["eventTime"], r["eventTime"]);
    }
    // The rotation happened (one new version: ListKeyRotations lists rotations only), and
    // the deleted key is gone.
    let v = h.ok(
        &day(100),
        &["key", "rotations", &rotating, "--output", "json"],
    );
    let v: Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["Rotations"].as_array().unwrap().len(), 1);
    assert_eq!(v["Rotations"][0]["RotationType"], "AUTOMATIC");
    h.fails(
        &day(100),
        &["key", "describe", &doomed],
        ACCESS,
        &["NotFoundException"],
    );
    assert_chain(&h.lines());
    h.verify_ok();
}

#[test]
fn ebs_requests_and_the_kms_calls_ebs_makes_are_recorded() {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create"]);
    let vol = h.ok(
        T0,
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
    let records = h.records();
    let create = only(&records, "CreateVolume", |r| {
        r["eventName"] == "CreateVolume"
    });
    assert_eq!(create["eventSource"], "ec2.amazonaws.com");
    assert_eq!(create["eventType"], "AwsApiCall");
    assert_eq!(create["readOnly"], false);
    assert_eq!(create["userIdentity"]["arn"], ROOT);
    assert!(
        create["userIdentity"].get("invokedBy").is_none(),
        "{create}"
    );
    assert_eq!(create["requestParameters"]["encrypted"], true);
    assert_eq!(create["requestParameters"]["kmsKeyId"], key.as_str());
    let by_ec2: Vec<&Value> = records
        .iter()
        .filter(|r| r["userIdentity"]["invokedBy"] == "ec2.amazonaws.com")
        .collect();
    assert_eq!(by_ec2.len(), 1, "{by_ec2:#?}");
    let gdk = by_ec2[0];
    assert_eq!(gdk["eventSource"], "kms.amazonaws.com");
    assert_eq!(gdk["eventName"], "GenerateDataKeyWithoutPlaintext");
    assert_eq!(
        gdk["userIdentity"]["arn"], ROOT,
        "the caller stays the caller"
    );
    assert_eq!(gdk["requestParameters"]["keyId"], key.as_str());
    assert_eq!(resource_arns(gdk), [key_arn(&key)]);
    assert!(gdk.get("errorCode").is_none(), "{gdk}");

    // Writing and reading the volume: the KMS Decrypt EBS makes is recorded, the data is not.
    let marker = "cofre-audit-ebs-marker-51c0de";
    std::fs::write(h.path("data"), format!("{marker}\n").repeat(64)).unwrap();
    h.ok(
        T0,
        &[
            "volume",
            "write",
            &vol,
            "--offset",
            "0",
            h.path("data").to_str().unwrap(),
        ],
    );
    let out = h.run(
        T0,
        &["volume", "read", &vol, "--offset", "0", "--length", "64"],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(marker));
    let leaked = files_containing(&h.home(), marker.as_bytes());
    assert!(leaked.is_empty(), "volume data in the clear in {leaked:?}");
    let records = h.records();
    assert!(
        names(&records).contains(&"ReadVolume"),
        "{:?}",
        names(&records)
    );
    let dec: Vec<&Value> = records
        .iter()
        .filter(|r| r["eventName"] == "Decrypt")
        .collect();
    assert!(!dec.is_empty(), "{:?}", names(&records));
    for d in dec {
        assert_eq!(d["userIdentity"]["invokedBy"], "ec2.amazonaws.com", "{d}");
        assert_eq!(d["eventSource"], "kms.amazonaws.com");
        assert_eq!(resource_arns(d), [key_arn(&key)]);
    }

    // With no key named, the AWS managed key alias/aws/ebs is used, and recorded as such.
    h.ok(T0, &["volume", "create", "--size", "1", "--encrypted"]);
    let r = h.records();
    let gdk = &r[r.len() - 2];
    assert_eq!(gdk["eventName"], "GenerateDataKeyWithoutPlaintext");
    assert_eq!(gdk["userIdentity"]["invokedBy"], "ec2.amazonaws.com");
    assert_eq!(gdk["requestParameters"]["keyId"], "alias/aws/ebs");
    let managed = resource_arns(gdk)[0].to_owned();
    assert!(managed.starts_with(&format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/")));
    assert_ne!(managed, key_arn(&key));
    assert_eq!(r[r.len() - 1]["eventName"], "CreateVolume");

    // The EBS direct APIs are ebs.amazonaws.com's, as CloudTrail logs them.
    let s1 = h.ok(T0, &["snapshot", "create", &vol]);
    let s2 = h.ok(T0, &["snapshot", "create", &vol]);
    h.ok(T0, &["snapshot", "diff", &s1, &s2]);
    let r = h.records().pop().unwrap();
    assert_eq!(r["eventName"], "ListChangedBlocks");
    assert_eq!(r["eventSource"], "ebs.amazonaws.com");
    assert_eq!(r["requestParameters"]["secondSnapshotId"], s2.as_str());

    h.ok(T0, &["volume", "delete", &vol]);
    let r = h.records().pop().unwrap();
    assert_eq!(r["eventName"], "DeleteVolume");
    assert_eq!(r["eventSource"], "ec2.amazonaws.com");
    assert_eq!(r["requestParameters"]["volumeId"], vol.as_str());
    assert_chain(&h.lines());
    h.verify_ok();
}

#[test]
fn concurrent_processes_append_every_record_once_in_one_chain() {
    const PROCS: usize = 8;
    const DESCRIBES: usize = 9;
    let h = Home::new();
    let keys: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..PROCS)
            .map(|_| {
                s.spawn(|| {
                    let key = h.ok(T0, &["key", "create"]);
                    for _ in 0..DESCRIBES {
                        h.ok(T0, &["key", "describe", &key]);
                    }
                    key
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let lines = h.lines();
    assert_eq!(lines.len(), PROCS * (1 + DESCRIBES));
    assert_chain(&lines);
    let records = h.records();
    assert_eq!(seqs(&records), (1..=lines.len() as u64).collect::<Vec<_>>());
    for key in &keys {
        let mine: Vec<&Value> = records
            .iter()
            .filter(|r| resource_arns(r) == [key_arn(key)])
            .collect();
        assert_eq!(mine.len(), 1 + DESCRIBES, "{key}");
        assert_eq!(mine[0]["eventName"], "CreateKey");
        assert!(mine[1..].iter().all(|r| r["eventName"] == "DescribeKey"));
    }
    assert!(records.iter().all(|r| r.get("errorCode").is_none()));
    h.verify_ok();
}

/// A good trail of 12 records with digests after records 1, 5 and 9 (two hours apart).
fn good_trail() -> Home {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create"]);
    for (i, now) in [T0, "2026-01-01T02:00:00Z", "2026-01-01T04:00:00Z"]
        .into_iter()
        .enumerate()
    {
        for _ in 0..(if i == 0 { 3 } else { 4 }) {
            h.ok(now, &["key", "describe", &key]);
        }
    }
    assert_eq!(h.lines().len(), 12);
    for seq in [1, 5, 9] {
        assert!(h.digest(seq).exists(), "no digest after record {seq}");
    }
    let digests = std::fs::read_dir(h.path("home/regions/us-east-1/audit/digests"))
        .unwrap()
        .count();
    assert_eq!(digests, 3);
    h.verify_ok();
    h
}

/// `line` with `from` replaced by `to` (once).
fn replace(line: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = String::from_utf8(line.to_vec()).unwrap();
    assert!(s.contains(from), "{s} lacks {from}");
    s.replacen(from, to, 1).into_bytes()
}

#[test]
fn verify_names_an_edited_a_deleted_an_inserted_and_a_reordered_record() {
    let good = good_trail();
    let lines = good.lines();

    // Line 6's source address changed; still valid JSON, still a valid record.
    let h = good.copy();
    let mut l = lines.clone();
    l[5] = replace(&l[5], "127.0.0.1", "10.9.8.7");
    serde_json::from_slice::<Value>(&l[5]).unwrap();
    h.write_lines(&l);
    h.verify_fails(&["record 6 ", "edited"]);

    // Line 3's readOnly flipped.
    let h = good.copy();
    let mut l = lines.clone();
    l[2] = replace(&l[2], "\"readOnly\":true", "\"readOnly\":false");
    h.write_lines(&l);
    h.verify_fails(&["record 3 ", "edited"]);

    // Line 6 deleted.
    let h = good.copy();
    let mut l = lines.clone();
    l.remove(5);
    h.write_lines(&l);
    h.verify_fails(&["record 6 ", "deleted"]);

    // A copy of line 3 inserted after line 7.
    let h = good.copy();
    let mut l = lines.clone();
    l.insert(7, lines[2].clone());
    h.write_lines(&l);
    h.verify_fails(&["record 8 ", "reordered or one was inserted"]);

    // A copy of line 10 inserted after line 2.
    let h = good.copy();
    let mut l = lines.clone();
    l.insert(2, lines[9].clone());
    h.write_lines(&l);
    h.verify_fails(&["record 3 ", "reordered or one was inserted"]);

    // Lines 6 and 7 swapped.
    let h = good.copy();
    let mut l = lines.clone();
    l.swap(5, 6);
    h.write_lines(&l);
    h.verify_fails(&["record 6 ", "reordered or one was inserted"]);

    // The original is untouched by all this.
    good.verify_ok();
}

/// `line` with its `cofrePrevious` set to `link`.
fn with_previous(line: &[u8], link: &str) -> Vec<u8> {
    let s = String::from_utf8(line.to_vec()).unwrap();
    let at = s.find("\"cofrePrevious\":\"").unwrap() + "\"cofrePrevious\":\"".len();
    format!("{}{link}{}", &s[..at], &s[at + 64..]).into_bytes()
}

/// `lines` as a version before the keyed chain wrote them: no `cofreChain`, each line naming
/// the plain BLAKE3 of the one before.
fn unkeyed(lines: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for l in lines {
        let l = String::from_utf8(l.clone())
            .unwrap()
            .replace(&format!(",\"cofreChain\":\"{KEYED}\""), "")
            .into_bytes();
        let prev = out.last().map_or(GENESIS.to_owned(), |p| hash(p));
        out.push(with_previous(&l, &prev));
    }
    out
}

#[test]
fn verify_catches_a_rewritten_chain_and_damaged_digests() {
    let good = good_trail();
    let lines = good.lines();

    // Line 6 edited and every later link recomputed, as a script without the trail's key can
    // (a plain BLAKE3): the keyed chain breaks at once.
    let h = good.copy();
    let mut l = lines.clone();
    l[5] = replace(&l[5], "127.0.0.1", "10.9.8.7");
    for i in 6..l.len() {
        let link = hash(&l[i - 1]);
        l[i] = with_previous(&l[i], &link);
    }
    h.write_lines(&l);
    h.verify_fails(&["record 6 ", "edited"]);

    // The whole trail rewritten as an earlier version's (unkeyed, no cofreChain): the high-water
    // mark and the digests no longer match.
    let h = good.copy();
    h.write_lines(&unkeyed(&lines));
    h.verify_fails(&["record 12 no longer matches the high-water mark"]);
    let json = h.run(T0, &["audit", "verify", "--output", "json"]);
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    let problems = json["Problems"].to_string();
    assert!(
        problems.contains("record 5 no longer matches digest 00000000000000000005.json"),
        "{problems}"
    );

    // The last record edited: nothing after it names it, the high-water mark does.
    let h = good.copy();
    let mut l = lines.clone();
    l[11] = replace(&l[11], "127.0.0.1", "10.9.8.7");
    h.write_lines(&l);
    h.verify_fails(&["record 12 no longer matches the high-water mark"]);

    // `head -n 1`: every later record gone.
    let h = good.copy();
    h.write_lines(&lines[..1]);
    h.verify_fails(&[
        "it ends at record 1, but its high-water mark names record 12",
        "records 2–12 were removed",
    ]);

    // The newest digest deleted and the trail cut back to the record it sealed.
    let h = good.copy();
    std::fs::remove_file(h.digest(9)).unwrap();
    h.write_lines(&lines[..9]);
    h.verify_fails(&["records 10–12 were removed"]);
    // And the mark deleted as well.
    std::fs::remove_file(h.mark()).unwrap();
    h.verify_fails(&["high-water mark", "is missing"]);

    // Emptied.
    let h = good.copy();
    h.write_lines(&[]);
    h.verify_fails(&["every record was removed"]);

    // The mark edited.
    let h = good.copy();
    let m = std::fs::read_to_string(h.mark()).unwrap();
    std::fs::write(h.mark(), m.replace("12", "11")).unwrap();
    h.verify_fails(&["high-water mark", "signature"]);

    // The trail cut back to 8 whole records: digest 9 names a record that is gone too.
    let h = good.copy();
    h.write_lines(&lines[..8]);
    let err = h.verify_fails(&["records 9–12 were removed"]);
    assert!(!err.contains("intact"), "{err}");
    let out = h.run(T0, &["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("record 9 no longer matches digest"), "{text}");

    // Forging a digest's record hash breaks its signature.
    let h = good.copy();
    let d9 = std::fs::read_to_string(h.digest(9)).unwrap();
    std::fs::write(h.digest(9), d9.replace(&hash(&lines[8]), &hash(&lines[7]))).unwrap();
    h.verify_fails(&["digest 00000000000000000009.json", "signature"]);

    // A digest truncated.
    let h = good.copy();
    let d = std::fs::read(h.digest(5)).unwrap();
    std::fs::write(h.digest(5), &d[..d.len() / 2]).unwrap();
    h.verify_fails(&["digest 00000000000000000005.json: damaged or truncated"]);

    // A digest deleted: the next one names a previous digest that is no longer there.
    let h = good.copy();
    std::fs::remove_file(h.digest(5)).unwrap();
    h.verify_fails(&["digest 00000000000000000009.json"]);

    good.verify_ok();
}

#[test]
fn a_cut_trail_stops_requests_instead_of_being_extended_over() {
    let good = good_trail();
    let lines = good.lines();
    let h = good.copy();
    h.write_lines(&lines[..3]);
    let key = h.records()[0]["resources"][0]["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    // The next request would hide the cut behind a new mark: it is refused, unrecorded.
    h.fails(
        T0,
        &["key", "describe", &key],
        INTEGRITY,
        &["trail.jsonl", "records 4–12 were removed"],
    );
    assert_eq!(h.lines(), lines[..3]);
    h.verify_fails(&["records 4–12 were removed"]);
}

#[test]
fn verify_says_which_records_a_digest_seals_and_which_not_yet() {
    let h = good_trail();
    let text = h.ok(T0, &["audit", "verify"]);
    assert!(text.contains("12 records"), "{text}");
    assert!(text.contains("records 1–9 sealed by a digest"), "{text}");
    assert!(
        text.contains("records 10–12 not yet sealed by a digest"),
        "{text}"
    );
    assert!(!text.contains("earlier cofre"), "{text}");
    let json: Value =
        serde_json::from_str(&h.ok(T0, &["audit", "verify", "--output", "json"])).unwrap();
    assert_eq!(json["Region"], "us-east-1");
    assert_eq!(json["Records"], 12);
    assert_eq!(json["SealedThrough"], 9);
    assert_eq!(json["MarkedThrough"], 12);
    assert_eq!(json["UnkeyedThrough"], 0);
    assert_eq!(json["Sealed"], serde_json::json!([1, 9]));
    assert_eq!(json["Unsealed"], serde_json::json!([10, 12]));
    assert_eq!(json["Problems"], serde_json::json!([]));
    assert_eq!(json["CutShort"], false);

    // A new trail: nothing sealed by a digest until the first record.
    let h = Home::new();
    let json: Value =
        serde_json::from_str(&h.ok(T0, &["audit", "verify", "--output", "json"])).unwrap();
    assert_eq!(json["Records"], 0, "{json}");
    assert_eq!(json["Sealed"], Value::Null, "{json}");
    assert_eq!(json["Unsealed"], Value::Null, "{json}");
}

#[test]
fn a_trail_of_an_earlier_version_still_verifies_and_goes_on_keyed() {
    let good = good_trail();
    let key = good.records()[0]["resources"][0]["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    // As a version before the keyed chain left it: unkeyed links, no mark, no digest over
    // these bytes.
    let h = good.copy();
    let old = unkeyed(&good.lines());
    h.write_lines(&old);
    std::fs::remove_file(h.mark()).unwrap();
    std::fs::remove_dir_all(h.path("home/regions/us-east-1/audit/digests")).unwrap();
    let text = h.ok(T0, &["audit", "verify"]);
    assert!(text.contains("intact"), "{text}");
    assert!(
        text.contains("records 1–12 were written by an earlier cofre"),
        "{text}"
    );

    // The next record goes on with the keyed chain, linked to the last unkeyed one.
    h.ok(T0, &["key", "describe", &key]);
    let lines = h.lines();
    assert_eq!(lines[..12], old[..]);
    let r13: Value = serde_json::from_slice(&lines[12]).unwrap();
    assert_eq!(r13["cofreChain"], KEYED);
    assert_eq!(r13["cofreSequence"], 13);
    assert_ne!(r13["cofrePrevious"], hash(&lines[11]).as_str());
    let json: Value =
        serde_json::from_str(&h.ok(T0, &["audit", "verify", "--output", "json"])).unwrap();
    assert_eq!(json["Problems"], serde_json::json!([]), "{json}");
    assert_eq!(json["UnkeyedThrough"], 12, "{json}");
    assert_eq!(json["MarkedThrough"], 13, "{json}");

    // The unkeyed part rewritten (record 3 edited, links recomputed): the keyed record after
    // it catches that.
    let e = h.copy();
    let mut l = lines.clone();
    l[2] = replace(&l[2], "127.0.0.1", "10.9.8.7");
    let mut rewritten = unkeyed(&l[..12]);
    rewritten.push(l[12].clone());
    e.write_lines(&rewritten);
    e.verify_fails(&["record 12 ", "edited"]);

    // An unkeyed record after a keyed one is a rewrite.
    h.ok(T0, &["key", "describe", &key]);
    let mut l = h.lines();
    l[13] = with_previous(
        &replace(&l[13], &format!(",\"cofreChain\":\"{KEYED}\""), ""),
        &hash(&l[12]),
    );
    h.write_lines(&l);
    h.verify_fails(&["record 14 has the unkeyed chain"]);
}

#[test]
fn a_record_cut_short_by_a_crash_is_dropped_by_the_next_append() {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create"]);
    for _ in 0..3 {
        h.ok(T0, &["key", "describe", &key]);
    }
    let mark4 = std::fs::read(h.mark()).unwrap();
    h.ok(T0, &["key", "describe", &key]);
    let before = std::fs::read(h.trail()).unwrap();
    let lines = split_lines(&before);
    assert_eq!(lines.len(), 5);
    // Killed mid-append: half of record 5 reached the file, its mark never did (nor its
    // digest: the only one is after record 1).
    let cut = before.len() - lines[4].len() / 2;
    std::fs::write(h.trail(), &before[..cut]).unwrap();
    std::fs::write(h.mark(), &mark4).unwrap();
    // Not an edit: verify says what it is, and the trail is intact.
    let report = h.ok(T0, &["audit", "verify"]);
    assert!(
        report.contains("intact") && report.contains("cut short"),
        "{report}"
    );
    let json: Value =
        serde_json::from_str(&h.ok(T0, &["audit", "verify", "--output", "json"])).unwrap();
    assert_eq!(json["CutShort"], true, "{json}");
    assert_eq!(json["Records"], 4, "{json}");
    assert_eq!(json["Problems"], serde_json::json!([]), "{json}");
    // The log reads what is whole.
    assert_eq!(seqs(&h.log(&[])), [1, 2, 3, 4]);

    h.fails(
        T0,
        &["key", "describe", MISSING],
        ACCESS,
        &["NotFoundException"],
    );
    let after = std::fs::read(h.trail()).unwrap();
    let now = split_lines(&after);
    assert_eq!(now.len(), 5, "{}", String::from_utf8_lossy(&after));
    assert_eq!(now[..4], lines[..4], "an earlier record changed");
    let last: Value = serde_json::from_slice(&now[4]).unwrap();
    assert_eq!(last["cofreSequence"], 5);
    assert_eq!(last["requestParameters"]["keyId"], MISSING);
    assert!(after.ends_with(b"\n"));
    assert_chain(&now);
    h.verify_ok();
    // And the trail goes on from there.
    h.ok("2026-01-01T03:00:00Z", &["key", "describe", &key]);
    assert_chain(&h.lines());
    h.verify_ok();
}

#[test]
fn a_batch_whose_mark_a_crash_lost_still_verifies_and_the_trail_goes_on() {
    let h = Home::new();
    // A trail's first batch marks record 0 before its lines. That mark, as a crash after the
    // first lines would leave it, from a copy of the home whose trail takes no line.
    let first = h.copy();
    std::fs::create_dir_all(first.trail().parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/dev/full", first.trail()).unwrap();
    first.fails(T0, &["key", "create"], 1, &["trail.jsonl"]);
    let mark0 = std::fs::read(first.mark()).unwrap();

    let key = h.ok(T0, &["key", "create"]);
    for _ in 0..4 {
        h.ok(T0, &["key", "describe", &key]);
    }
    let mark5 = std::fs::read(h.mark()).unwrap();
    for _ in 0..3 {
        h.ok(T0, &["key", "describe", &key]);
    }
    let lines = h.lines();
    assert_eq!(lines.len(), 8);
    let marked = |h: &Home| -> (Value, Value) {
        let json: Value =
            serde_json::from_str(&h.ok(T0, &["audit", "verify", "--output", "json"])).unwrap();
        (json["MarkedThrough"].clone(), json["Records"].clone())
    };

    // Records 6–8 reached the disk, their mark did not: the mark names record 5, to which
    // they are chained.
    let c = h.copy();
    std::fs::write(c.mark(), &mark5).unwrap();
    c.verify_ok();
    assert_eq!(marked(&c), (5.into(), 8.into()));
    // One of them edited: the chain from the mark breaks, and requests stop.
    let e = c.copy();
    let mut l = lines.clone();
    l[6] = replace(&l[6], "127.0.0.1", "10.9.8.7");
    e.write_lines(&l);
    e.verify_fails(&["record 7 ", "edited"]);
    e.fails(
        T0,
        &["key", "describe", &key],
        INTEGRITY,
        &["trail.jsonl", "past its high-water mark"],
    );
    assert_eq!(e.lines(), l);
    // Untouched, the trail goes on from record 8 and the mark moves to the new end.
    c.ok(T0, &["key", "describe", &key]);
    assert_eq!(c.lines()[..8], lines[..]);
    assert_chain(&c.lines());
    c.verify_ok();
    assert_eq!(marked(&c), (9.into(), 9.into()));

    // The crash in the trail's first batch: every record chained to the mark of record 0.
    let z = h.copy();
    std::fs::write(z.mark(), &mark0).unwrap();
    z.verify_ok();
    assert_eq!(marked(&z), (0.into(), 8.into()));
    // Emptied, with that mark and no digest: a trail that never took its first batch.
    z.write_lines(&[]);
    std::fs::remove_dir_all(z.path("home/regions/us-east-1/audit/digests")).unwrap();
    z.verify_ok();
    z.ok(T0, &["key", "describe", &key]);
    z.verify_ok();
    assert_eq!(marked(&z), (1.into(), 1.into()));
}

#[test]
fn audit_log_filters_by_event_key_errors_time_and_caller() {
    let h = Home::new();
    let t1 = "2026-01-02T00:00:00Z";
    let t2 = "2026-01-03T00:00:00Z";
    let a = h.ok(T0, &["key", "create"]); // 1
    let b = h.ok(T0, &["key", "create"]); // 2
    h.ok(T0, &["--principal", BOB, "key", "describe", &a]); // 3
    h.fails(
        T0,
        &["--principal", BOB, "key", "describe", MISSING],
        ACCESS,
        &["NotFoundException"],
    ); // 4
    h.ok(t1, &["key", "describe", &b]); // 5
    h.ok(t2, &["--principal", OPS, "key", "describe", &key_arn(&a)]); // 6
    h.ok(t2, &["key", "list", "--output", "json"]); // 7 (the table also describes each key)
    assert_eq!(h.lines().len(), 7);

    let all = h.log(&[]);
    assert_eq!(seqs(&all), [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(all, h.records(), "the log differs from the trail");
    let s = |f: &[&str]| seqs(&h.log(f));
    assert_eq!(s(&["--event", "CreateKey"]), [1, 2]);
    assert_eq!(s(&["--event", "DescribeKey"]), [3, 4, 5, 6]);
    assert_eq!(s(&["--event", "ListKeys"]), [7]);
    assert!(s(&["--event", "NoSuchEvent"]).is_empty());
    assert_eq!(s(&["--key", &a]), [1, 3, 6]);
    assert_eq!(s(&["--key", &key_arn(&a)]), [1, 3, 6]);
    assert_eq!(s(&["--key", &b]), [2, 5]);
    assert_eq!(s(&["--key", MISSING]), [4]);
    assert_eq!(s(&["--errors"]), [4]);
    assert_eq!(s(&["--since", t1]), [5, 6, 7]);
    assert_eq!(s(&["--until", t1]), [1, 2, 3, 4, 5]);
    assert_eq!(s(&["--since", t1, "--until", t1]), [5]);
    assert_eq!(
        s(&["--since", "2026-01-01T00:00:01Z", "--until", t2]),
        [5, 6, 7]
    );
    // A date is that whole day (UTC).
    assert_eq!(s(&["--since", "2026-01-02"]), [5, 6, 7]);
    assert_eq!(s(&["--since", "2026-01-02", "--until", "2026-01-02"]), [5]);
    assert_eq!(s(&["--until", "2026-01-01"]), [1, 2, 3, 4]);
    assert!(s(&["--since", "2026-01-04"]).is_empty());
    assert_eq!(s(&["--principal", BOB]), [3, 4]);
    assert_eq!(s(&["--principal", OPS]), [6]);
    assert_eq!(s(&["--principal", ROOT]), [1, 2, 5, 7]);
    assert_eq!(s(&["--principal", BOB, "--errors"]), [4]);
    assert_eq!(
        s(&["--event", "DescribeKey", "--key", &a, "--since", t1]),
        [6]
    );
    let bob = h.log(&["--principal", BOB]);
    assert!(bob.iter().all(|r| r["userIdentity"]["userName"] == "bob"));

    // The table: one row per record.
    let table = h.ok(T0, &["audit", "log", "--errors"]);
    assert_eq!(table.lines().count(), 1, "{table}");
    assert!(table.contains("NotFoundException") && table.contains("DescribeKey"));
    assert_eq!(h.ok(T0, &["audit", "log"]).lines().count(), 7);

    // Reading the log records nothing.
    assert_eq!(h.lines().len(), 7);
    h.fails(
        T0,
        &["audit", "log", "--since", "yesterday"],
        USAGE,
        &["RFC 3339"],
    );
}

#[test]
fn processes_meeting_a_due_date_at_once_record_each_service_event_once() {
    let h = Home::new();
    let rotating = h.ok(T0, &["key", "create"]);
    h.ok(
        T0,
        &[
            "key",
            "rotation",
            "enable",
            &rotating,
            "--period-days",
            "90",
        ],
    );
    let doomed = h.ok(T0, &["key", "create"]);
    h.ok(T0, &["key", "schedule-deletion", &doomed, "--days", "7"]);
    let before = h.lines().len();
    let later = "2026-04-11T00:00:00Z";
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| h.ok(later, &["key", "list", "--output", "json"]));
        }
    });
    let records = h.records();
    assert_eq!(records.len(), before + 8 + 2, "{:?}", names(&records));
    let count = |n: &str| records.iter().filter(|r| r["eventName"] == n).count();
    assert_eq!(count("RotateKey"), 1, "{:?}", names(&records));
    assert_eq!(count("DeleteKey"), 1, "{:?}", names(&records));
    assert_eq!(count("ListKeys"), 8);
    assert_chain(&h.lines());
    h.verify_ok();
}

#[test]
fn a_failed_ebs_request_records_its_ec2_error_code() {
    let h = Home::new();
    let missing = "vol-0123456789abcdef0";
    for args in [
        &["volume", "describe", missing][..],
        &["volume", "delete", missing],
    ] {
        h.fails(T0, args, ACCESS, &["InvalidVolume.NotFound"]);
        let r = h.records().pop().unwrap();
        assert_eq!(r["eventSource"], "ec2.amazonaws.com", "{r}");
        assert_eq!(r["requestParameters"]["volumeId"], missing, "{r}");
        assert!(
            r["errorMessage"]
                .as_str()
                .unwrap()
                .contains("InvalidVolume.NotFound"),
            "{r}"
        );
        assert_eq!(r["errorCode"], "InvalidVolume.NotFound", "{r}");
    }
}

#[test]
fn a_record_cut_short_after_a_record_over_64_kib_is_dropped_and_the_next_request_recorded() {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create"]);
    // A refused CreateKey records the description it was given: a line of over 100 KiB.
    let long = "x".repeat(100_000);
    h.fails(
        T0,
        &["key", "create", "--description", &long],
        USAGE,
        &["ValidationException"],
    );
    let mark2 = std::fs::read(h.mark()).unwrap();
    h.ok(T0, &["key", "describe", &key]);
    let before = std::fs::read(h.trail()).unwrap();
    let lines = split_lines(&before);
    assert_eq!(lines.len(), 3);
    assert!(lines[1].len() > 100_000);
    // Record 3 cut in half by a crash, before its mark was written.
    std::fs::write(h.trail(), &before[..before.len() - lines[2].len() / 2]).unwrap();
    std::fs::write(h.mark(), &mark2).unwrap();

    let out = h.run(T0, &["key", "describe", &key]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "the request was not recorded"
    );
    let now = h.lines();
    assert_eq!(now.len(), 3, "the request was not recorded");
    assert_eq!(now[..2], lines[..2]);
    let last: Value = serde_json::from_slice(&now[2]).unwrap();
    assert_eq!(last["cofreSequence"], 3);
    assert_eq!(last["eventName"], "DescribeKey");
    assert_chain(&now);
    h.verify_ok();
}

#[test]
fn encrypt_is_one_generate_data_key_then_one_encrypt_per_other_key_and_each_recipient_tried_one_decrypt(
) {
    let h = Home::new();
    let a = h.ok(T0, &["key", "create"]);
    let b = h.ok(T0, &["key", "create"]);
    std::fs::write(h.path("p"), "two recipients").unwrap();
    let sealed = h.path("p.cofre");
    let s = sealed.to_str().unwrap();
    h.ok(
        T0,
        &[
            "encrypt",
            "-k",
            &a,
            "-k",
            &b,
            "-o",
            s,
            h.path("p").to_str().unwrap(),
        ],
    );
    h.ok(T0, &["key", "disable", &a]);
    let out = h.path("out");
    h.ok(T0, &["decrypt", s, "-o", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out).unwrap(), "two recipients");

    // As the AWS Encryption SDK does: GenerateDataKey under the first key, Encrypt of that
    // data key under each other.
    let gdk = h.log(&["--event", "GenerateDataKey"]);
    let keys: Vec<&Value> = gdk
        .iter()
        .map(|r| &r["requestParameters"]["keyId"])
        .collect();
    assert_eq!(keys, [a.as_str()]);
    let enc = h.log(&["--event", "Encrypt"]);
    let keys: Vec<&Value> = enc
        .iter()
        .map(|r| &r["requestParameters"]["keyId"])
        .collect();
    assert_eq!(keys, [b.as_str()]);
    assert_eq!(resource_arns(&enc[0]), [key_arn(&b)]);
    // Decrypt tried the disabled key first, was refused, then opened with the other.
    let dec = h.log(&["--event", "Decrypt"]);
    assert_eq!(dec.len(), 2, "{dec:#?}");
    assert_eq!(dec[0]["errorCode"], "DisabledException");
    assert_eq!(resource_arns(&dec[0]), [key_arn(&a)]);
    assert!(dec[1].get("errorCode").is_none(), "{}", dec[1]);
    assert_eq!(resource_arns(&dec[1]), [key_arn(&b)]);
    assert_eq!(
        seqs(&h.log(&["--errors"])),
        [dec[0]["cofreSequence"].as_u64().unwrap()]
    );
}

#[test]
fn re_encrypt_names_both_keys_and_create_grant_logs_its_id_not_its_token() {
    let h = Home::new();
    let a = h.ok(T0, &["key", "create"]);
    let b = h.ok(T0, &["key", "create"]);
    std::fs::write(h.path("p"), "secret").unwrap();
    let blob = h.path("blob");
    h.ok(
        T0,
        &[
            "kms",
            "encrypt",
            &a,
            "--plaintext-file",
            h.path("p").to_str().unwrap(),
            "-o",
            blob.to_str().unwrap(),
        ],
    );
    h.ok(
        T0,
        &[
            "kms",
            "re-encrypt",
            "--ciphertext-file",
            blob.to_str().unwrap(),
            "--destination-key",
            &b,
            "-o",
            h.path("blob2").to_str().unwrap(),
        ],
    );
    let r = h.records().pop().unwrap();
    assert_eq!(r["eventName"], "ReEncrypt");
    assert_eq!(resource_arns(&r), [key_arn(&a), key_arn(&b)]);
    let p = &r["requestParameters"];
    assert_eq!(p["sourceEncryptionAlgorithm"], "SYMMETRIC_DEFAULT", "{r}");
    assert_eq!(
        p["destinationEncryptionAlgorithm"], "SYMMETRIC_DEFAULT",
        "{r}"
    );
    assert!(
        p.get("sourceAlgorithm").is_none() && p.get("sourceKeyId").is_none(),
        "{r}"
    );

    let out = h.ok(
        T0,
        &[
            "key",
            "grant",
            "create",
            &a,
            "--grantee",
            "arn:aws:iam::111122223333:user/bob",
            "--operations",
            "Decrypt",
            "--output",
            "json",
        ],
    );
    let answer: Value = serde_json::from_str(&out).unwrap();
    let token = answer["GrantToken"].as_str().unwrap();
    let r = h.records().pop().unwrap();
    assert_eq!(r["eventName"], "CreateGrant");
    assert_eq!(r["responseElements"]["grantId"], answer["GrantId"], "{r}");
    assert!(
        !r.to_string().contains(token),
        "the grant token reached the trail: {r}"
    );
}
