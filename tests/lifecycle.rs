//! Key lifecycle through the CLI, with the clock moved by `COFRE_NOW`: automatic rotation over
//! simulated years, on-demand rotation and its limit, disabled keys skipping rotation, and
//! scheduled deletion with its window, cancel, and what remains after the date.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs cofre at time `now` (RFC 3339), in us-east-1 unless `args` name a region first.
    fn run(&self, now: &str, args: &[&str]) -> Output {
        let (region, args) = match args {
            ["--region", r, rest @ ..] => (*r, rest),
            _ => ("us-east-1", args),
        };
        Command::new(env!("CARGO_BIN_EXE_cofre"))
            .arg("--home")
            .arg(self.path("home"))
            .args(["--region", region])
            .args(args)
            .env("COFRE_NOW", now)
            .env_remove("COFRE_HOME")
            .env_remove("COFRE_REGION")
            .output()
            .unwrap()
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

    fn json(&self, now: &str, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(now, &[args, &["--output", "json"]].concat())).unwrap()
    }

    /// Expects exit `code` with a one-line error naming all of `needles`.
    fn fails(&self, now: &str, args: &[&str], code: i32, needles: &[&str]) {
        let out = self.run(now, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "cofre {args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        for n in needles {
            assert!(err.contains(n), "cofre {args:?}: {err:?} lacks {n:?}");
        }
    }

    /// The material id a file's data key is wrapped under.
    fn material_of(&self, file: &Path) -> String {
        let v = self.json(T0, &["inspect", file.to_str().unwrap()]);
        v["WrappedKeys"][0]["KeyMaterialId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn versions(&self, now: &str, key: &str) -> Vec<Value> {
        self.versions_with(now, &[], key)
    }

    /// Every material version of `key`, the original too, with `pre` (a region) before the
    /// command.
    fn versions_with(&self, now: &str, pre: &[&str], key: &str) -> Vec<Value> {
        let all = [
            "key",
            "rotations",
            key,
            "--include-key-material",
            "ALL_KEY_MATERIAL",
        ];
        self.json(now, &[pre, &all[..]].concat())["Rotations"]
            .as_array()
            .unwrap()
            .clone()
    }
}

const T0: &str = "2026-01-01T00:00:00Z";
const ACCESS: i32 = 3;
const USAGE: i32 = 2;

fn seal(h: &Home, now: &str, key: &str, name: &str) -> PathBuf {
    let plain = h.path(name);
    std::fs::write(&plain, format!("{name} written at {now}").repeat(500)).unwrap();
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

fn opens(h: &Home, now: &str, sealed: &Path, name: &str) {
    let out = h.run(now, &["decrypt", sealed.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, std::fs::read(h.path(name)).unwrap());
}

#[test]
fn automatic_rotation_over_simulated_years_keeps_every_version() {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create"]);
    // EnableKeyRotation answers nothing; GetKeyRotationStatus tells.
    let quiet = h.ok(
        T0,
        &[
            "key",
            "rotation",
            "enable",
            &key,
            "--period-days",
            "365",
            "--output",
            "json",
        ],
    );
    assert_eq!(quiet, "");
    let status = h.json(T0, &["key", "rotation", "status", &key]);
    assert_eq!(status["KeyRotationEnabled"], true);
    assert_eq!(status["NextRotationDate"], "2027-01-01T00:00:00Z");
    let y0 = seal(&h, T0, &key, "y0");

    // Not due yet: one version.
    assert_eq!(h.versions("2026-12-31T00:00:00Z", &key).len(), 1);
    // A year on, the first request rotates (no daemon).
    let y1 = seal(&h, "2027-01-02T00:00:00Z", &key, "y1");
    let v = h.versions("2027-01-02T00:00:00Z", &key);
    assert_eq!(v.len(), 2);
    assert_eq!(v[1]["RotationType"], "AUTOMATIC");
    assert_eq!(v[1]["RotationDate"], "2027-01-01T00:00:00Z");
    assert_eq!(v[1]["KeyMaterialState"], "CURRENT");
    assert_eq!(v[0]["KeyMaterialState"], "NON_CURRENT");
    assert_ne!(h.material_of(&y0), h.material_of(&y1));
    assert_eq!(h.material_of(&y1), v[1]["KeyMaterialId"]);

    // Two more years pass unseen: both rotations are carried out, each dated when due.
    let t3 = "2029-06-01T00:00:00Z";
    let v = h.versions(t3, &key);
    assert_eq!(v.len(), 4);
    assert_eq!(v[2]["RotationDate"], "2028-01-01T00:00:00Z");
    assert_eq!(v[3]["RotationDate"], "2028-12-31T00:00:00Z");
    let s = h.json(t3, &["key", "rotation", "status", &key]);
    assert_eq!(s["NextRotationDate"], "2029-12-31T00:00:00Z");

    // Files from every version still decrypt; rewrap moves an old one onto the current version.
    opens(&h, t3, &y0, "y0");
    opens(&h, t3, &y1, "y1");
    h.ok(t3, &["rewrap", y0.to_str().unwrap(), "-k", &key]);
    assert_eq!(h.material_of(&y0), v[3]["KeyMaterialId"]);
    opens(&h, t3, &y0, "y0");

    // Period limits.
    for bad in ["89", "2561"] {
        h.fails(
            t3,
            &["key", "rotation", "enable", &key, "--period-days", bad],
            USAGE,
            &["ValidationException", "90 to 2560"],
        );
    }
    h.ok(t3, &["key", "rotation", "disable", &key]);
    assert_eq!(
        h.versions("2031-01-01T00:00:00Z", &key).len(),
        4,
        "rotated while disabled"
    );
}

#[test]
fn on_demand_rotation_stops_at_25() {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create"]);
    for i in 0..25 {
        let r = h.json(T0, &["key", "rotate", &key]);
        assert_eq!(r["KeyId"], key.as_str());
        let v = h.versions(T0, &key);
        assert_eq!(v.len(), i + 2);
        assert_eq!(v[i + 1]["RotationType"], "ON_DEMAND");
    }
    h.fails(
        T0,
        &["key", "rotate", &key],
        USAGE,
        &["LimitExceededException", "25"],
    );
    assert_eq!(h.versions(T0, &key).len(), 26);
    let s = h.json(T0, &["key", "rotation", "status", &key]);
    assert_eq!(s["KeyRotationEnabled"], false);
    // The count is cofre's own: in the text, not in GetKeyRotationStatus's answer.
    assert!(h
        .ok(T0, &["key", "rotation", "status", &key])
        .contains("25 on-demand rotation(s)"));
}

#[test]
fn a_disabled_key_skips_rotation_and_rotates_when_enabled_again() {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create"]);
    h.ok(
        T0,
        &["key", "rotation", "enable", &key, "--period-days", "90"],
    );
    h.ok(T0, &["key", "disable", &key]);
    h.fails(T0, &["key", "rotate", &key], ACCESS, &["DisabledException"]);
    let late = "2026-12-01T00:00:00Z";
    assert_eq!(h.versions(late, &key).len(), 1, "a disabled key rotated");
    h.ok(late, &["key", "enable", &key]);
    let v = h.versions(late, &key);
    assert_eq!(v.len(), 2, "an overdue key did not rotate on enable");
    assert_eq!(v[1]["RotationDate"], late);
    let s = h.json(late, &["key", "rotation", "status", &key]);
    assert_eq!(s["NextRotationDate"], "2027-03-01T00:00:00Z");
}

#[test]
fn scheduled_deletion_windows_cancel_and_destruction() {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create", "--alias", "alias/doomed"]);
    let file = seal(&h, T0, &key, "f");
    for bad in ["6", "31"] {
        h.fails(
            T0,
            &["key", "schedule-deletion", &key, "--days", bad],
            USAGE,
            &["ValidationException", "7 to 30"],
        );
    }
    let d = h.json(T0, &["key", "schedule-deletion", &key, "--days", "7"]);
    assert_eq!(d["KeyState"], "PendingDeletion");
    assert_eq!(d["PendingWindowInDays"], 7);
    assert_eq!(d["DeletionDate"], "2026-01-08T00:00:00Z");
    // Pending: no crypto, no enable, no second schedule, no new alias; describe still works.
    let f = file.to_str().unwrap();
    h.fails(
        T0,
        &["decrypt", f],
        ACCESS,
        &["KMSInvalidStateException", "pending deletion"],
    );
    h.fails(
        T0,
        &["encrypt", "-k", &key, "-o", "x", f],
        ACCESS,
        &["KMSInvalidStateException"],
    );
    h.fails(
        T0,
        &["key", "enable", &key],
        ACCESS,
        &["KMSInvalidStateException"],
    );
    h.fails(
        T0,
        &["key", "schedule-deletion", &key],
        ACCESS,
        &["KMSInvalidStateException"],
    );
    h.fails(
        T0,
        &["alias", "create", "alias/late", &key],
        ACCESS,
        &["KMSInvalidStateException"],
    );
    assert_eq!(
        h.json(T0, &["key", "describe", &key])["KeyMetadata"]["KeyState"],
        "PendingDeletion"
    );
    // Cancel: back Disabled, then usable once enabled.
    let c = h.json(T0, &["key", "cancel-deletion", &key]);
    let m = h.json(T0, &["key", "describe", &key])["KeyMetadata"].clone();
    assert_eq!(c["KeyId"], m["Arn"]);
    assert_eq!(m["KeyState"], "Disabled");
    h.fails(
        T0,
        &["key", "cancel-deletion", &key],
        ACCESS,
        &["KMSInvalidStateException", "not pending deletion"],
    );
    h.ok(T0, &["key", "enable", &key]);
    opens(&h, T0, &file, "f");

    // The default window is 30 days; a day before the date the key still exists.
    let d = h.json(T0, &["key", "schedule-deletion", &key]);
    assert_eq!(d["DeletionDate"], "2026-01-31T00:00:00Z");
    let before = "2026-01-30T00:00:00Z";
    assert_eq!(
        h.json(before, &["key", "describe", &key])["KeyMetadata"]["KeyState"],
        "PendingDeletion"
    );
    // After the date: destroyed for good, alias gone, files unreadable, describe says so.
    let after = "2026-02-01T00:00:00Z";
    h.fails(
        after,
        &["key", "describe", &key],
        ACCESS,
        &["NotFoundException", "was deleted on 2026-01-31"],
    );
    h.fails(
        after,
        &["decrypt", f],
        ACCESS,
        &["NotFoundException", "was deleted"],
    );
    assert!(!h.ok(after, &["alias", "list"]).contains("alias/doomed"));
    assert!(!h.ok(after, &["key", "list"]).contains(&key));
    let keys = h.path("home/regions/us-east-1/keys");
    assert_eq!(
        std::fs::read_dir(keys).unwrap().count(),
        0,
        "key material left on disk"
    );
}

#[test]
fn usage_report_shows_which_files_each_version_protects() {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create"]);
    let other = h.ok(T0, &["key", "create"]);
    let a = seal(&h, T0, &key, "a");
    h.ok(T0, &["key", "rotate", &key]);
    let b = seal(&h, T0, &key, "b");
    std::fs::create_dir(h.path("sub")).unwrap();
    let c = seal(&h, T0, &key, "sub/c");
    seal(&h, T0, &other, "elsewhere");
    let scan = h.path("").to_str().unwrap().to_owned();
    let report = |now| {
        let r = h.json(now, &["key", "usage-report", &key, "--scan", &scan]);
        r["Versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let files: Vec<String> = v["Files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap().to_owned())
                    .collect();
                (v["KeyMaterialState"].as_str().unwrap().to_owned(), files)
            })
            .collect::<Vec<_>>()
    };
    let s = |p: &PathBuf| p.to_str().unwrap().to_owned();
    assert_eq!(
        report(T0),
        vec![
            ("NON_CURRENT".to_owned(), vec![s(&a)]),
            ("CURRENT".to_owned(), vec![s(&b), s(&c)]),
        ]
    );
    // Re-wrapping the old file empties the old version.
    h.ok(T0, &["rewrap", a.to_str().unwrap(), "-k", &key]);
    assert_eq!(report(T0)[0].1, Vec::<String>::new());
    assert_eq!(report(T0)[1].1.len(), 3);
}

const EU: [&str; 2] = ["--region", "eu-west-1"];

fn eu<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&EU[..], args].concat()
}

#[test]
fn multi_region_keys_replicate_rotate_and_decrypt_anywhere() {
    let h = Home::new();
    let single = h.ok(T0, &["key", "create"]);
    h.fails(
        T0,
        &["key", "replicate", &single, "--to", "eu-west-1"],
        ACCESS,
        &["UnsupportedOperationException", "single-Region"],
    );

    let key = h.ok(
        T0,
        &["key", "create", "--multi-region", "--alias", "alias/global"],
    );
    assert!(key.starts_with("mrk-") && key.len() == 36, "{key}");
    let m = h.json(T0, &["key", "describe", &key])["KeyMetadata"].clone();
    assert_eq!(m["MultiRegion"], true);
    assert_eq!(
        m["MultiRegionConfiguration"]["MultiRegionKeyType"],
        "PRIMARY"
    );
    let east = seal(&h, T0, &key, "east");

    // Before replication, eu-west-1 has no such key and says where it is.
    let f = east.to_str().unwrap();
    h.fails(
        T0,
        &eu(&["decrypt", f]),
        ACCESS,
        &["NotFoundException", "us-east-1"],
    );
    let answer = h.json(T0, &["key", "replicate", &key, "--to", "eu-west-1"]);
    // The replica's own (default) policy and tags come with it, as ReplicateKey answers.
    assert!(answer["ReplicaPolicy"].as_str().unwrap().contains("kms:*"));
    assert_eq!(answer["ReplicaTags"], serde_json::json!([]));
    let r = answer["ReplicaKeyMetadata"].clone();
    assert_eq!(r["KeyId"], key.as_str());
    assert_eq!(
        r["Arn"],
        format!(
            "arn:aws:kms:eu-west-1:{}:key/{key}",
            m["AWSAccountId"].as_str().unwrap()
        )
    );
    assert_eq!(
        r["MultiRegionConfiguration"]["MultiRegionKeyType"],
        "REPLICA"
    );
    h.fails(
        T0,
        &["key", "replicate", &key, "--to", "eu-west-1"],
        USAGE,
        &["AlreadyExistsException"],
    );
    let p = h.json(T0, &["key", "describe", &key])["KeyMetadata"].clone();
    assert_eq!(
        p["MultiRegionConfiguration"]["ReplicaKeys"][0]["Region"],
        "eu-west-1"
    );
    // As in KMS, the replica lists the key set's replicas too, itself included.
    let r = h.json(T0, &eu(&["key", "describe", &key]))["KeyMetadata"].clone();
    assert_eq!(
        r["MultiRegionConfiguration"]["ReplicaKeys"],
        p["MultiRegionConfiguration"]["ReplicaKeys"]
    );
    assert_eq!(
        r["MultiRegionConfiguration"]["ReplicaKeys"][0]["Arn"],
        r["Arn"]
    );

    // The us-east-1 file opens in eu-west-1 with no rewrap.
    opens(&h, T0, &east, "east");
    let out = h.run(T0, &eu(&["decrypt", f]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, std::fs::read(h.path("east")).unwrap());

    // Rotation runs on the primary and reaches the replica; a replica can't rotate itself.
    h.fails(
        T0,
        &eu(&["key", "rotate", &key]),
        ACCESS,
        &["UnsupportedOperationException", "primary region"],
    );
    h.ok(T0, &["key", "rotate", &key]);
    let here = h.versions(T0, &key);
    let there = h.versions_with(T0, &EU, &key);
    assert_eq!(there.len(), 2);
    assert_eq!(there[1]["KeyMaterialId"], here[1]["KeyMaterialId"]);
    assert_eq!(there[1]["KeyMaterialState"], "CURRENT");
    let west = h.path("west.cofre");
    std::fs::write(h.path("west"), b"written in eu-west-1").unwrap();
    h.ok(
        T0,
        &eu(&[
            "encrypt",
            "-k",
            &key,
            "-o",
            west.to_str().unwrap(),
            h.path("west").to_str().unwrap(),
        ]),
    );
    opens(&h, T0, &west, "west");

    // State, aliases and description are per region.
    h.ok(T0, &eu(&["key", "disable", &key]));
    h.fails(T0, &eu(&["decrypt", f]), ACCESS, &["DisabledException"]);
    opens(&h, T0, &east, "east");
    assert!(!h.ok(T0, &eu(&["alias", "list"])).contains("alias/global"));
    h.ok(T0, &eu(&["key", "enable", &key]));

    // The replica becomes the primary; rotation now runs from eu-west-1.
    h.ok(
        T0,
        &["key", "update-primary-region", &key, "--to", "eu-west-1"],
    );
    let d = |args: &[&str]| h.json(T0, args)["KeyMetadata"]["MultiRegionConfiguration"].clone();
    assert_eq!(
        d(&eu(&["key", "describe", &key]))["MultiRegionKeyType"],
        "PRIMARY"
    );
    assert_eq!(
        d(&["key", "describe", &key])["MultiRegionKeyType"],
        "REPLICA"
    );
    h.fails(
        T0,
        &["key", "rotate", &key],
        ACCESS,
        &["UnsupportedOperationException"],
    );
    h.ok(T0, &eu(&["key", "rotate", &key]));
    assert_eq!(
        h.versions(T0, &key).len(),
        3,
        "rotation did not reach us-east-1"
    );
    opens(&h, T0, &east, "east");
}

#[test]
fn aws_managed_keys_are_made_on_first_describe_and_used_only_by_their_service() {
    let h = Home::new();
    h.fails(
        T0,
        &["key", "describe", "alias/aws/nosuchservice"],
        ACCESS,
        &["NotFoundException"],
    );
    let m = h.json(T0, &["key", "describe", "alias/aws/ebs"])["KeyMetadata"].clone();
    assert_eq!(m["KeyManager"], "AWS");
    let id = m["KeyId"].as_str().unwrap().to_owned();
    assert_eq!(
        h.json(T0, &["key", "describe", "alias/aws/ebs"])["KeyMetadata"]["KeyId"],
        id.as_str()
    );
    assert!(h.ok(T0, &["key", "list"]).contains(&id));
    let s = h.json(T0, &["key", "rotation", "status", &id]);
    assert_eq!(s["KeyRotationEnabled"], true);
    assert_eq!(s["RotationPeriodInDays"], 365);

    // Not for direct use, and not for users to manage.
    std::fs::write(h.path("p"), b"x").unwrap();
    let p = h.path("p");
    let p = p.to_str().unwrap();
    h.fails(
        T0,
        &["encrypt", "-k", "alias/aws/ebs", "-o", "o", p],
        ACCESS,
        &["AccessDeniedException", "AWS managed"],
    );
    for args in [
        &["key", "disable", &id][..],
        &["key", "schedule-deletion", &id],
        &["key", "rotate", &id],
        &["key", "rotation", "disable", &id],
        &["alias", "create", "alias/mine", &id],
    ] {
        h.fails(T0, args, ACCESS, &["UnsupportedOperationException"]);
    }
    h.fails(
        T0,
        &["alias", "create", "alias/aws/mine", &id],
        USAGE,
        &["InvalidAliasNameException", "reserved"],
    );
    // They rotate yearly on their own.
    assert_eq!(h.versions("2027-01-02T00:00:00Z", &id).len(), 2);
}

#[test]
fn replicas_follow_the_primary_and_repair_after_a_crash() {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create", "--multi-region"]);
    h.ok(T0, &["key", "replicate", &key, "--to", "eu-west-1"]);
    // The rotation setting reaches the replica; automatic rotation too.
    h.ok(
        T0,
        &["key", "rotation", "enable", &key, "--period-days", "90"],
    );
    let s = h.json(T0, &eu(&["key", "rotation", "status", &key]));
    assert_eq!(s["KeyRotationEnabled"], true);
    assert_eq!(s["RotationPeriodInDays"], 90);
    let t1 = "2026-04-02T00:00:00Z";
    // Opening the replica's region first: it does not rotate on its own...
    assert_eq!(h.versions_with(t1, &EU, &key).len(), 1);
    // ...the primary does, and the replica gets the version.
    assert_eq!(h.versions(t1, &key).len(), 2);
    assert_eq!(h.versions_with(t1, &EU, &key).len(), 2);

    // An overdue replica enabled again makes no version of its own.
    h.ok(t1, &eu(&["key", "disable", &key]));
    h.ok(t1, &["key", "disable", &key]);
    let t2 = "2026-09-01T00:00:00Z";
    h.ok(t2, &eu(&["key", "enable", &key]));
    assert_eq!(h.versions_with(t2, &EU, &key).len(), 2);
    h.ok(t2, &["key", "enable", &key]);
    let v = h.versions(t2, &key);
    assert_eq!(v.len(), 3);
    let there = h.versions_with(t2, &EU, &key);
    assert_eq!(there[2]["KeyMaterialId"], v[2]["KeyMaterialId"]);

    // A sync cut short (the replica's record as it was before a rotation, as after a crash):
    // the next request in the replica's region pulls what is missing.
    let replica_file = h.path(&format!("home/regions/eu-west-1/keys/{key}.json"));
    let before = std::fs::read(&replica_file).unwrap();
    h.ok(t2, &["key", "rotate", &key]);
    std::fs::write(&replica_file, before).unwrap();
    let sealed = seal(&h, t2, &key, "newest");
    opens(&h, t2, &sealed, "newest");
    let out = h.run(t2, &eu(&["decrypt", sealed.to_str().unwrap()]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A primary pending deletion is not replicated.
    let lone = h.ok(t2, &["key", "create", "--multi-region"]);
    h.ok(t2, &["key", "schedule-deletion", &lone]);
    h.fails(
        t2,
        &["key", "replicate", &lone, "--to", "eu-west-1"],
        ACCESS,
        &["KMSInvalidStateException"],
    );
}

#[test]
fn operations_on_a_key_pending_deletion_follow_the_state_table() {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create", "--alias", "alias/old"]);
    let other = h.ok(T0, &["key", "create", "--alias", "alias/other"]);
    h.ok(T0, &["key", "rotation", "enable", &key]);
    let before = h.json(T0, &["key", "rotation", "status", &key]);
    h.ok(T0, &["key", "schedule-deletion", &key]);
    // Refused while pending, with the KMS error name.
    for args in [
        &["key", "disable", &key][..],
        &["key", "rotate", &key],
        &["key", "rotation", "enable", &key],
        &["key", "rotation", "disable", &key],
        &["alias", "update", "alias/other", &key],
    ] {
        h.fails(T0, args, ACCESS, &["KMSInvalidStateException"]);
    }
    // Allowed while pending: describe, listing, moving an alias away, deleting an alias.
    let s = h.json(T0, &["key", "rotation", "status", &key]);
    assert_eq!(
        s["KeyRotationEnabled"], false,
        "rotation reported on while pending"
    );
    h.ok(T0, &["alias", "update", "alias/old", &other]);
    h.ok(T0, &["alias", "delete", "alias/old"]);
    assert!(h.ok(T0, &["key", "list"]).contains(&key));
    // Cancelled: the rotation setting is back as it was.
    h.ok(T0, &["key", "cancel-deletion", &key]);
    assert_eq!(h.json(T0, &["key", "rotation", "status", &key]), before);
}

#[test]
fn on_demand_rotation_leaves_the_automatic_schedule_alone() {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create"]);
    h.ok(T0, &["key", "rotation", "enable", &key]);
    let s = h.json(T0, &["key", "rotation", "status", &key]);
    h.ok("2026-06-01T00:00:00Z", &["key", "rotate", &key]);
    let after = h.json("2026-06-01T00:00:00Z", &["key", "rotation", "status", &key]);
    assert_eq!(after["NextRotationDate"], s["NextRotationDate"]);
    let r = h.json("2026-06-01T00:00:00Z", &["key", "rotations", &key]);
    assert_eq!(r["Rotations"].as_array().unwrap().len(), 1);
    assert_eq!(r["Rotations"][0]["RotationType"], "ON_DEMAND");
    assert!(h
        .ok("2026-06-01T00:00:00Z", &["key", "rotation", "status", &key])
        .contains("1 on-demand rotation(s)"));
}

#[test]
fn an_aws_managed_key_is_refused_for_decrypt_too() {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create"]);
    let sealed = seal(&h, T0, &key, "f");
    let aws = h.json(T0, &["key", "describe", "alias/aws/s3"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    // A file whose only recipient names the AWS managed key: its ARN put in place of the
    // customer key's (same length), so the header fails if it gets that far — but the key is
    // refused before any unwrapping.
    let mut bytes = std::fs::read(&sealed).unwrap();
    let pos = bytes
        .windows(key.len())
        .position(|w| w == key.as_bytes())
        .unwrap();
    bytes[pos..pos + key.len()].copy_from_slice(aws.as_bytes());
    let forged = h.path("forged.cofre");
    std::fs::write(&forged, bytes).unwrap();
    h.fails(
        T0,
        &["decrypt", forged.to_str().unwrap()],
        ACCESS,
        &["AccessDeniedException"],
    );
}

#[test]
fn usage_report_lists_volumes_and_snapshots_and_disable_needs_force_while_they_depend() {
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
    let snap = h.ok(T0, &["snapshot", "create", &vol]);
    h.ok(T0, &["key", "rotate", &key]);
    let vol2 = h.ok(
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
    let r = h.json(T0, &["key", "usage-report", &key]);
    let v = r["Versions"].as_array().unwrap();
    assert_eq!(v[0]["KeyMaterialState"], "NON_CURRENT");
    assert_eq!(v[0]["Volumes"], serde_json::json!([vol]));
    assert_eq!(v[0]["Snapshots"], serde_json::json!([snap]));
    assert_eq!(v[1]["Volumes"], serde_json::json!([vol2]));
    assert_eq!(v[1]["Snapshots"], serde_json::json!([]));

    // Something depends on the key: disabling or deleting it needs --force.
    h.fails(
        T0,
        &["key", "disable", &key],
        2,
        &["3 volume(s)", "--force"],
    );
    h.fails(
        T0,
        &["key", "schedule-deletion", &key, "--days", "7"],
        2,
        &["usage-report", "--force"],
    );
    assert_eq!(
        h.json(T0, &["key", "describe", &key])["KeyMetadata"]["KeyState"],
        "Enabled"
    );
    // The guard is part of DisableKey, after authorization: a caller who may not disable the
    // key learns nothing of what it protects.
    let arn = h.json(T0, &["key", "describe", &key])["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = h.run(
        T0,
        &[
            "--principal",
            "arn:aws:iam::999988887777:user/eve",
            "key",
            "disable",
            &arn,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("AccessDeniedException") && err.contains("kms:DisableKey"),
        "{err}"
    );
    assert!(!err.contains(&vol) && !err.contains("volume(s)"), "{err}");
    h.ok(T0, &["key", "disable", &key, "--force"]);
    // The volume can no longer be read while its key is disabled.
    h.fails(
        T0,
        &["volume", "read", &vol, "--offset", "0", "--length", "1"],
        3,
        &["DisabledException"],
    );
    h.ok(T0, &["key", "enable", &key]);
    h.ok(
        T0,
        &["volume", "read", &vol, "--offset", "0", "--length", "1"],
    );
    // A key nothing depends on needs no --force.
    let free = h.ok(T0, &["key", "create"]);
    h.ok(T0, &["key", "disable", &free]);
}

#[test]
fn a_primary_with_replicas_waits_in_pending_replica_deletion() {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create", "--multi-region"]);
    h.ok(T0, &["key", "replicate", &key, "--to", "eu-west-1"]);
    let sealed = seal(&h, T0, &key, "f");
    let m = h.json(T0, &["key", "schedule-deletion", &key, "--days", "7"]);
    let state = |now: &str, args: &[&str]| {
        h.json(now, &[args, &["key", "describe", &key]].concat())["KeyMetadata"].clone()
    };
    let primary = state(T0, &[]);
    assert_eq!(primary["KeyState"], "PendingReplicaDeletion", "{m}");
    assert!(primary.get("DeletionDate").is_none(), "{primary}");
    // Unusable while it waits, with the KMS error name; the replica still works.
    h.fails(
        T0,
        &["decrypt", sealed.to_str().unwrap()],
        ACCESS,
        &["KMSInvalidStateException"],
    );
    h.fails(
        T0,
        &["key", "enable", &key],
        ACCESS,
        &["KMSInvalidStateException"],
    );
    h.ok(T0, &eu(&["decrypt", sealed.to_str().unwrap()]));
    // A year later it still waits: its window starts only when the replica is gone.
    let later = "2027-01-01T00:00:00Z";
    assert_eq!(state(later, &[])["KeyState"], "PendingReplicaDeletion");
    h.ok(
        later,
        &eu(&["key", "schedule-deletion", &key, "--days", "7"]),
    );
    let replica_gone = "2027-01-09T00:00:00Z";
    h.fails(
        replica_gone,
        &eu(&["key", "describe", &key]),
        ACCESS,
        &["NotFoundException", "deleted"],
    );
    // Its own 7 days run from when the replica was deleted (the 8th), not from when cofre
    // next ran (the 9th), as in KMS.
    let primary = state(replica_gone, &[]);
    assert_eq!(primary["KeyState"], "PendingDeletion");
    assert_eq!(primary["DeletionDate"], "2027-01-15T00:00:00Z");
    assert!(primary["MultiRegionConfiguration"]["ReplicaKeys"]
        .as_array()
        .unwrap()
        .is_empty());
    h.fails(
        "2027-01-17T00:00:00Z",
        &["key", "describe", &key],
        ACCESS,
        &["NotFoundException", "deleted"],
    );

    // Cancelling while it waits brings it back Disabled.
    let other = h.ok(T0, &["key", "create", "--multi-region"]);
    h.ok(T0, &["key", "replicate", &other, "--to", "eu-west-1"]);
    h.ok(T0, &["key", "schedule-deletion", &other]);
    h.ok(T0, &["key", "cancel-deletion", &other]);
    assert_eq!(
        h.json(T0, &["key", "describe", &other])["KeyMetadata"]["KeyState"],
        "Disabled"
    );
}

#[test]
fn an_update_primary_region_cut_short_is_finished_by_the_next_request() {
    let h = Home::new();
    let key = h.ok(T0, &["key", "create", "--multi-region"]);
    h.ok(T0, &["key", "replicate", &key, "--to", "eu-west-1"]);
    h.ok(T0, &["key", "replicate", &key, "--to", "ap-south-1"]);
    let file = |r: &str| h.path(&format!("home/regions/{r}/keys/{key}.json"));
    let (us_before, ap_before) = (
        std::fs::read(file("us-east-1")).unwrap(),
        std::fs::read(file("ap-south-1")).unwrap(),
    );
    h.ok(
        T0,
        &["key", "update-primary-region", &key, "--to", "eu-west-1"],
    );
    // A crash right after the new primary was written: the old primary and the other replica
    // never learnt of the move.
    std::fs::write(file("us-east-1"), us_before).unwrap();
    std::fs::write(file("ap-south-1"), ap_before).unwrap();
    let role = |args: &[&str]| {
        h.json(T0, &[args, &["key", "describe", &key]].concat())["KeyMetadata"]
            ["MultiRegionConfiguration"]
            .clone()
    };
    // Whichever region is opened next, the roles come out as the move left them.
    let ap = role(&["--region", "ap-south-1"]);
    assert_eq!(ap["MultiRegionKeyType"], "REPLICA", "{ap}");
    assert_eq!(ap["PrimaryKey"]["Region"], "eu-west-1", "{ap}");
    let us = role(&[]);
    assert_eq!(us["MultiRegionKeyType"], "REPLICA", "{us}");
    assert_eq!(us["PrimaryKey"]["Region"], "eu-west-1", "{us}");
    let eu_ = role(&EU);
    assert_eq!(eu_["MultiRegionKeyType"], "PRIMARY", "{eu_}");
    // And the key set works as one: rotation on the new primary reaches both replicas.
    h.ok(T0, &eu(&["key", "rotate", &key]));
    let n = |args: &[&str]| h.versions_with(T0, args, &key).len();
    assert_eq!(n(&[]), 2);
    assert_eq!(n(&["--region", "ap-south-1"]), 2);
    h.fails(
        T0,
        &["key", "rotate", &key],
        ACCESS,
        &["UnsupportedOperationException", "eu-west-1"],
    );
}
