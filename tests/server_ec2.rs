//! The EC2 Query API of `cofre serve` (issue 15) driven by the AWS CLI and boto3
//! (tests/server_ec2.py): volumes, snapshots, a copy to another region under a key made there
//! through the KMS API, filters, pages, tags, the encryption settings, and refusals. The bytes
//! are checked with the cofre CLI on the server's home, and the trail with `audit log`.
//!
//! The Python clients: `COFRE_CLIENTS_PYTHON`, else the venv `target/clients-venv` (made once).

mod common;

use common::{clients_python, Server};
use std::path::{Path, PathBuf};

/// Runs scenario `name` of tests/server_ec2.py; returns its output.
fn scenario(server: &Server, name: &str, env: &[(&str, &str)]) -> String {
    server.scenario(&clients_python(), "tests/server_ec2.py", name, env)
}

/// `cofre ARGS` on the server's home, which must succeed; its stdout.
fn cofre(server: &Server, args: &[&str]) -> String {
    String::from_utf8(server.cofre_ok(args)).unwrap()
}

fn trail(server: &Server, region: &str) -> Vec<serde_json::Value> {
    server.trail(region)
}

/// A 3 MiB image with something different in every block, and a hole of zeros.
fn image(dir: &Path) -> PathBuf {
    let mut data = vec![0u8; 3 << 20];
    for (i, b) in data.iter_mut().enumerate() {
        if !(1 << 20..2 << 20).contains(&i) {
            *b = (i.wrapping_mul(31) ^ (i >> 9)) as u8;
        }
    }
    let path = dir.join("disk.img");
    std::fs::write(&path, &data).unwrap();
    path
}

/// A new encrypted us-east-1 volume of `img`, made with the CLI.
fn volume_of(server: &Server, img: &Path) -> String {
    let v: serde_json::Value = serde_json::from_str(&cofre(
        server,
        &[
            "-q",
            "--output",
            "json",
            "volume",
            "create",
            "--from-image",
            img.to_str().unwrap(),
            "--encrypted",
        ],
    ))
    .unwrap();
    v["VolumeId"].as_str().unwrap().to_owned()
}

#[test]
fn the_aws_cli_creates_snapshots_and_copies_one_encrypted_to_another_region() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let img = image(work.path());
    let vol = volume_of(&server, &img);
    let out = scenario(&server, "awscli", &[("VOLUME", &vol)]);
    let ids: Vec<&str> = out
        .lines()
        .find_map(|l| l.strip_prefix("ids "))
        .expect("the scenario prints the ids")
        .split(' ')
        .collect();
    let [snap, copy, restored] = ids[..] else {
        panic!("three ids: {ids:?}")
    };
    // The volume the AWS CLI made from the copy holds the image's bytes.
    let exported = work.path().join("restored.img");
    cofre(
        &server,
        &[
            "-q",
            "--region",
            "eu-west-1",
            "volume",
            "export",
            restored,
            "--out",
            exported.to_str().unwrap(),
        ],
    );
    assert!(
        std::fs::read(&exported).unwrap() == std::fs::read(&img).unwrap(),
        "the copy's bytes differ from the original's"
    );
    // The volume ModifyVolume grew keeps its bytes, and reads zeros past its old end.
    let read = server.cofre_ok(&[
        "volume", "read", &vol, "--offset", "0", "--length", "4194304",
    ]);
    let original = std::fs::read(&img).unwrap();
    assert!(read[..original.len()] == original[..]);
    assert!(read[original.len()..].iter().all(|b| *b == 0));
    assert_eq!(read.len(), 4 << 20);
    let v: serde_json::Value = serde_json::from_str(&cofre(
        &server,
        &["--output", "json", "volume", "describe", &vol],
    ))
    .unwrap();
    assert_eq!(v["Volumes"][0]["Size"], 2);
    // The CLI sees what the server made: the copy names its source.
    let d: serde_json::Value = serde_json::from_str(&cofre(
        &server,
        &[
            "--region",
            "eu-west-1",
            "--output",
            "json",
            "snapshot",
            "describe",
            copy,
        ],
    ))
    .unwrap();
    assert_eq!(d["Snapshots"][0]["SnapshotId"], copy);
    // The trail records the EC2 calls, under ec2.amazonaws.com, with the AWS CLI's agent.
    let east = trail(&server, "us-east-1");
    let ec2 = |events: &[serde_json::Value], name: &str| {
        events
            .iter()
            .find(|e| e["eventName"] == name && e["eventSource"] == "ec2.amazonaws.com")
            .cloned()
            .unwrap_or_else(|| panic!("no {name} event from ec2.amazonaws.com"))
    };
    let created = ec2(&east, "CreateSnapshot");
    assert_eq!(created["requestParameters"]["volumeId"], vol.as_str());
    assert!(created["userAgent"].as_str().unwrap().contains("aws-cli"));
    assert!(created["errorCode"].is_null());
    ec2(&east, "CreateVolume");
    ec2(&east, "DescribeSnapshots");
    ec2(&east, "GetEbsEncryptionByDefault");
    let west = trail(&server, "eu-west-1");
    let copied = ec2(&west, "CopySnapshot");
    assert_eq!(copied["requestParameters"]["sourceSnapshotId"], snap);
    assert_eq!(copied["requestParameters"]["kmsKeyId"], "alias/dr");
    // The data key was re-wrapped under the destination key, through EBS.
    assert!(west.iter().any(|e| e["eventSource"] == "kms.amazonaws.com"
        && e["userIdentity"]["invokedBy"] == "ec2.amazonaws.com"));
    let out = server.cofre().args(["audit", "verify"]).output().unwrap();
    assert!(out.status.success());
}

#[test]
fn boto3_filters_pages_tags_and_the_encryption_settings() {
    let server = Server::start();
    scenario(&server, "boto3", &[]);
    let events = trail(&server, "us-east-1");
    let tags = events
        .iter()
        .find(|e| e["eventName"] == "CreateTags")
        .expect("CreateTags is recorded");
    assert_eq!(tags["eventSource"], "ec2.amazonaws.com");
    assert_eq!(tags["requestParameters"]["tagSet"]["owner"], "ops");
    let filtered = events
        .iter()
        .filter(|e| {
            e["eventName"] == "DescribeVolumes" && !e["requestParameters"]["filterSet"].is_null()
        })
        .count();
    assert!(
        filtered >= 5,
        "{filtered} filtered DescribeVolumes recorded"
    );
}

#[test]
fn bad_requests_are_refused_with_ec2_codes_and_change_nothing() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let img = image(work.path());
    let vol = volume_of(&server, &img);
    let snap = cofre(&server, &["snapshot", "create", &vol])
        .trim()
        .to_owned();
    let alice_arn = format!("arn:aws:iam::{}:user/alice", server.account);
    let alice = server.access_key(&alice_arn);
    // Two keys in eu-west-1: one alice may use, one whose policy denies her.
    let key = |alias: &str, policy: Option<&str>| {
        let mut args = vec!["--region", "eu-west-1", "--output", "json", "key", "create"];
        let path = work.path().join(format!("{}.json", &alias[6..]));
        if let Some(p) = policy {
            std::fs::write(&path, p).unwrap();
            args.extend(["--policy", path.to_str().unwrap()]);
        }
        let k: serde_json::Value = serde_json::from_str(&cofre(&server, &args)).unwrap();
        let id = k["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
        cofre(
            &server,
            &["--region", "eu-west-1", "alias", "create", alias, &id],
        );
    };
    key("alias/open", None);
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "root", "Effect": "Allow",
             "Principal": {"AWS": format!("arn:aws:iam::{}:root", server.account)},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "not alice", "Effect": "Deny", "Principal": {"AWS": alice_arn},
             "Action": "kms:*", "Resource": "*"}
        ]
    })
    .to_string();
    key("alias/locked", Some(&policy));
    scenario(
        &server,
        "refusals",
        &[
            ("SNAPSHOT", &snap),
            ("ALICE_KEY", &alice.0),
            ("ALICE_SECRET", &alice.1),
        ],
    );
    // Alice's refused copy is recorded, with her identity, under ec2.amazonaws.com.
    let west = trail(&server, "eu-west-1");
    let refused = west
        .iter()
        .find(|e| {
            e["eventName"] == "CopySnapshot"
                && e["userIdentity"]["arn"] == alice_arn.as_str()
                && !e["errorCode"].is_null()
        })
        .expect("the refused copy is recorded");
    assert_eq!(refused["eventSource"], "ec2.amazonaws.com");
    assert_eq!(refused["requestParameters"]["kmsKeyId"], "alias/locked");
}
