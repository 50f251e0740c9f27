"""The EC2 Query API of a running `cofre serve`, driven by the AWS CLI and boto3 (from
tests/server_ec2.rs).

Usage: server_ec2.py SCENARIO, with the AWS_* variables of the account root's access key,
AWS_ENDPOINT_URL (the server), ACCOUNT, and per scenario:
- awscli: VOLUME (a us-east-1 volume the test filled with an image). Prints
  `ids SNAPSHOT COPY RESTORED` (the snapshot, its eu-west-1 copy, a volume made from the copy).
- boto3: nothing more.
- refusals: ALICE_KEY/ALICE_SECRET (a user of the account whom key alias/locked in eu-west-1
  denies), SNAPSHOT (an encrypted us-east-1 snapshot).
Each scenario asserts what it checks and prints `ok SCENARIO` last; any failure is a traceback
and a non-zero exit.
"""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from datetime import datetime

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from server_clients import raises

ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
ACCOUNT = os.environ["ACCOUNT"]
NS = "{http://ec2.amazonaws.com/doc/2016-11-15/}"


def aws(*args, region="us-east-1"):
    """The AWS CLI's JSON output of `aws ARGS`."""
    out = subprocess.run(
        [sys.executable, "-m", "awscli", *args, "--endpoint-url", ENDPOINT, "--region", region,
         "--output", "json"],
        capture_output=True, text=True)
    assert out.returncode == 0, f"aws {' '.join(args)} failed: {out.stderr}"
    return json.loads(out.stdout) if out.stdout.strip() else {}


def aws_fails(code, *args, region="us-east-1"):
    out = subprocess.run(
        [sys.executable, "-m", "awscli", *args, "--endpoint-url", ENDPOINT, "--region", region],
        capture_output=True, text=True)
    assert out.returncode != 0 and f"({code})" in out.stderr, f"expected {code}: {out.stderr}"


def client(service, region="us-east-1", key=None, secret=None):
    c = boto3.client(
        service, region_name=region, endpoint_url=ENDPOINT,
        aws_access_key_id=key or os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or os.environ["AWS_SECRET_ACCESS_KEY"])
    if service == "ec2":
        c.meta.events.register("before-parse.ec2", check_against_model)
    return c


# Every answer an ec2 client of these scenarios gets is checked against botocore's ec2 model
# before boto3 parses it: boto3 itself skips elements it does not know and keeps any text, so
# a misnamed element or a malformed value would otherwise go unseen.
CHECKED = {"answers": 0, "problems": []}


def check_against_model(operation_model, response_dict, **_):
    if response_dict["status_code"] != 200 or operation_model.output_shape is None:
        return
    root = ET.fromstring(response_dict["body"])
    name = operation_model.name
    problems = CHECKED["problems"]
    if root.tag != f"{NS}{name}Response":
        problems.append(f"{name}: root element {root.tag}, not {name}Response in EC2's namespace")
    if root.find(f"{NS}requestId") is None:
        problems.append(f"{name}: no requestId")
    check_element(operation_model.output_shape, root, name, problems, top=True)
    CHECKED["answers"] += 1


def check_element(shape, elem, path, problems, top=False):
    """Appends to `problems` what in `elem` the model's `shape` does not allow."""
    kind = shape.type_name
    if kind == "structure":
        members = {m.serialization.get("name", n): m for n, m in shape.members.items()}
        for child in elem:
            tag = child.tag.replace(NS, "")
            if top and tag == "requestId":
                continue
            if tag not in members:
                problems.append(f"{path}/{tag}: not a member of {shape.name}")
            else:
                check_element(members[tag], child, f"{path}/{tag}", problems)
    elif kind == "list":
        item = shape.member.serialization.get("name", "item")
        for i, child in enumerate(elem):
            if child.tag.replace(NS, "") != item:
                problems.append(f"{path}[{i}]: <{child.tag}>, not <{item}>")
            check_element(shape.member, child, f"{path}[{i}]", problems)
    else:
        text = elem.text or ""
        ok = {
            "boolean": lambda t: t in ("true", "false"),
            "integer": lambda t: t.lstrip("-").isdigit(),
            "long": lambda t: t.lstrip("-").isdigit(),
            "timestamp": lambda t: bool(datetime.fromisoformat(t.replace("Z", "+00:00"))),
        }.get(kind, lambda t: True)
        try:
            good = ok(text)
        except ValueError:
            good = False
        if not good:
            problems.append(f"{path}: {text!r} is not a {kind}")
        if kind == "string" and shape.enum and text not in shape.enum:
            problems.append(f"{path}: {text!r} is not one of {shape.name}'s values")


def model_checked(scenario):
    """Runs `scenario`, then asserts that every ec2 answer it got matched the model."""
    def run():
        scenario()
        assert CHECKED["answers"] > 0, "no answer was checked against the model"
        assert not CHECKED["problems"], "answers that differ from the ec2 model:\n" + "\n".join(
            CHECKED["problems"])
        print(f"model-checked {CHECKED['answers']} answers")
    return run


def query(params, region="us-east-1", key=None, secret=None):
    """A raw EC2 Query request signed by botocore's SigV4 signer: (status, XML root)."""
    body = urllib.parse.urlencode({"Version": "2016-11-15", **params}).encode()
    req = AWSRequest(method="POST", url=ENDPOINT + "/", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(key or os.environ["AWS_ACCESS_KEY_ID"],
                          secret or os.environ["AWS_SECRET_ACCESS_KEY"]), "ec2", region).add_auth(req)
    r = urllib.request.Request(ENDPOINT + "/", data=body, headers=dict(req.headers.items()),
                               method="POST")
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, ET.fromstring(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, ET.fromstring(e.read())


def error_code(root):
    assert root.tag == "Response", root.tag
    assert root.find("RequestID").text, "errors carry a RequestID"
    return root.find("Errors/Error/Code").text


def awscli_scenario():
    vol = os.environ["VOLUME"]
    # create-volume, with a tag and a zone.
    v = aws("ec2", "create-volume", "--size", "1", "--encrypted", "--availability-zone",
            "us-east-1a", "--tag-specifications",
            "ResourceType=volume,Tags=[{Key=team,Value=storage}]")
    assert v["VolumeId"].startswith("vol-") and v["Encrypted"] and v["Size"] == 1, v
    assert v["Tags"] == [{"Key": "team", "Value": "storage"}], v
    assert v["AvailabilityZone"] == "us-east-1a" and v["State"] == "available", v
    # create-snapshot of the volume the test filled, then describe-snapshots.
    s = aws("ec2", "create-snapshot", "--volume-id", vol, "--description", "from the cli")
    snap = s["SnapshotId"]
    assert s["VolumeId"] == vol and s["State"] == "completed" and s["OwnerId"] == ACCOUNT, s
    d = aws("ec2", "describe-snapshots", "--owner-ids", "self", "--snapshot-ids", snap)
    assert [x["SnapshotId"] for x in d["Snapshots"]] == [snap], d
    assert d["Snapshots"][0]["Description"] == "from the cli" and d["Snapshots"][0]["Encrypted"]
    # The destination key: made in eu-west-1 through the KMS API.
    key = aws("kms", "create-key", "--description", "dr", region="eu-west-1")["KeyMetadata"]
    aws("kms", "create-alias", "--alias-name", "alias/dr", "--target-key-id", key["KeyId"],
        region="eu-west-1")
    c = aws("ec2", "copy-snapshot", "--source-region", "us-east-1", "--source-snapshot-id", snap,
            "--encrypted", "--kms-key-id", "alias/dr", "--description", "dr copy",
            region="eu-west-1")
    copy = c["SnapshotId"]
    assert copy.startswith("snap-") and copy != snap, c
    d = aws("ec2", "describe-snapshots", "--snapshot-ids", copy, region="eu-west-1")["Snapshots"][0]
    assert d["KmsKeyId"] == key["Arn"] and d["Encrypted"] and d["Description"] == "dr copy", d
    # The copy is in eu-west-1 only.
    aws_fails("InvalidSnapshot.NotFound", "ec2", "describe-snapshots", "--snapshot-ids", copy)
    r = aws("ec2", "create-volume", "--snapshot-id", copy, "--availability-zone", "eu-west-1a",
            region="eu-west-1")
    assert r["KmsKeyId"] == key["Arn"] and r["SnapshotId"] == copy, r
    assert aws("ec2", "get-ebs-encryption-by-default") == {"EbsEncryptionByDefault": False}
    # The filled volume grows to 2 GiB (the test reads it back).
    m = aws("ec2", "modify-volume", "--volume-id", vol, "--size", "2")["VolumeModification"]
    assert m["TargetSize"] == 2 and m["ModificationState"] == "completed", m
    print("ids", snap, copy, r["VolumeId"])


def boto3_scenario():
    ec2 = client("ec2")
    made = []
    for i in range(7):
        v = ec2.create_volume(
            Size=1 + i % 2, Encrypted=i % 2 == 0, AvailabilityZone="us-east-1b",
            TagSpecifications=[{"ResourceType": "volume",
                                "Tags": [{"Key": "n", "Value": str(i)},
                                         {"Key": "parity", "Value": "even" if i % 2 == 0 else "odd"}]}])
        made.append(v["VolumeId"])
    # Filters: encrypted, status, volume-id (wildcards), tag:KEY, tag-key; several ANDed.
    def ids(**kw):
        return sorted(v["VolumeId"] for v in ec2.describe_volumes(**kw)["Volumes"])
    f = lambda name, *vals: {"Name": name, "Values": list(vals)}
    assert ids(Filters=[f("encrypted", "true")]) == sorted(made[0::2])
    assert ids(Filters=[f("tag:parity", "odd")]) == sorted(made[1::2])
    assert ids(Filters=[f("tag:n", "1", "3"), f("encrypted", "false")]) == sorted([made[1], made[3]])
    assert ids(Filters=[f("tag:n", "1"), f("encrypted", "true")]) == []
    assert ids(Filters=[f("status", "available"), f("tag-key", "parity")]) == sorted(made)
    assert ids(Filters=[f("volume-id", made[4][:8] + "*")]) == [made[4]]
    assert ids(VolumeIds=[made[2], made[5]]) == sorted([made[2], made[5]])
    raises("InvalidParameterValue", ec2.describe_volumes, Filters=[f("colour", "red")])
    raises("InvalidVolume.NotFound", ec2.describe_volumes, VolumeIds=["vol-0123456789abcdef0"])
    raises("InvalidParameterCombination", ec2.describe_volumes, VolumeIds=[made[0]], MaxResults=5)
    # Pagination: pages of 5, each token leading to the next, every volume once.
    pages = list(ec2.get_paginator("describe_volumes").paginate(PaginationConfig={"PageSize": 5}))
    assert [len(p["Volumes"]) for p in pages] == [5, 2], [len(p["Volumes"]) for p in pages]
    assert "NextToken" in pages[0] and "NextToken" not in pages[1]
    assert sorted(v["VolumeId"] for p in pages for v in p["Volumes"]) == sorted(made)
    raises("InvalidParameterValue", ec2.describe_volumes, MaxResults=5, NextToken="not a token")
    # Snapshots: tags from TagSpecifications, OwnerIds=self, filters, pages.
    snaps = [ec2.create_snapshot(VolumeId=v, Description=f"s{i}", TagSpecifications=[
        {"ResourceType": "snapshot", "Tags": [{"Key": "backup", "Value": "nightly" if i < 4 else "weekly"}]}])
        for i, v in enumerate(made)]
    assert snaps[0]["Tags"] == [{"Key": "backup", "Value": "nightly"}]
    sids = lambda **kw: sorted(s["SnapshotId"] for s in ec2.describe_snapshots(**kw)["Snapshots"])
    every = sorted(s["SnapshotId"] for s in snaps)
    assert sids(OwnerIds=["self"]) == every
    assert sids(OwnerIds=[ACCOUNT]) == every
    assert sids(OwnerIds=["111122223333"]) == []
    assert sids(Filters=[f("tag:backup", "weekly")]) == sorted(s["SnapshotId"] for s in snaps[4:])
    assert sids(Filters=[f("volume-id", made[3])]) == [snaps[3]["SnapshotId"]]
    assert sids(Filters=[f("encrypted", "false"), f("description", "s?")]) == sorted(
        snaps[i]["SnapshotId"] for i in (1, 3, 5))
    pages = list(ec2.get_paginator("describe_snapshots").paginate(
        OwnerIds=["self"], PaginationConfig={"PageSize": 5}))
    assert [len(p["Snapshots"]) for p in pages] == [5, 2]
    assert sorted(s["SnapshotId"] for p in pages for s in p["Snapshots"]) == every
    # Tags: create, describe, delete (by key, by key and value).
    ec2.create_tags(Resources=[made[0], snaps[0]["SnapshotId"]], Tags=[{"Key": "owner", "Value": "ops"}])
    t = ec2.describe_tags(Filters=[f("key", "owner")])["Tags"]
    assert sorted((x["ResourceId"], x["ResourceType"], x["Value"]) for x in t) == sorted(
        [(made[0], "volume", "ops"), (snaps[0]["SnapshotId"], "snapshot", "ops")]), t
    ec2.delete_tags(Resources=[made[0]], Tags=[{"Key": "owner", "Value": "someone else"}])
    assert len(ec2.describe_tags(Filters=[f("key", "owner")])["Tags"]) == 2
    ec2.delete_tags(Resources=[made[0]], Tags=[{"Key": "owner"}])
    t = ec2.describe_tags(Filters=[f("key", "owner")])["Tags"]
    assert [x["ResourceId"] for x in t] == [snaps[0]["SnapshotId"]], t
    raises("InvalidParameterValue", ec2.create_tags, Resources=[made[0]], Tags=[{"Key": "aws:x", "Value": "y"}])
    raises("InvalidVolume.NotFound", ec2.create_tags, Resources=["vol-0123456789abcdef0"],
           Tags=[{"Key": "k", "Value": "v"}])
    tagged = ec2.describe_volumes(VolumeIds=[made[1]])["Volumes"][0]["Tags"]
    assert sorted((x["Key"], x["Value"]) for x in tagged) == [("n", "1"), ("parity", "odd")]
    # Encryption by default and the default key.
    assert ec2.enable_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
    assert ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["Encrypted"] is True
    assert ec2.disable_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    assert ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["Encrypted"] is False
    kms = client("kms")
    key = kms.create_key()["KeyMetadata"]
    assert ec2.get_ebs_default_kms_key_id()["KmsKeyId"].endswith(":alias/aws/ebs")
    assert ec2.modify_ebs_default_kms_key_id(KmsKeyId=key["KeyId"])["KmsKeyId"] == key["Arn"]
    v = ec2.create_volume(Size=1, Encrypted=True, AvailabilityZone="us-east-1a")
    assert v["KmsKeyId"] == key["Arn"], v
    assert ec2.reset_ebs_default_kms_key_id()["KmsKeyId"].endswith(":alias/aws/ebs")
    # ModifyVolume grows a volume (never shrinks it); its data stays.
    m = ec2.modify_volume(VolumeId=made[0], Size=3, VolumeType="gp3")["VolumeModification"]
    assert (m["OriginalSize"], m["TargetSize"], m["TargetVolumeType"]) == (1, 3, "gp3"), m
    grown = ec2.describe_volumes(VolumeIds=[made[0]])["Volumes"][0]
    assert (grown["Size"], grown["VolumeType"]) == (3, "gp3"), grown
    raises("InvalidParameterValue", ec2.modify_volume, VolumeId=made[0], Size=2)
    raises("InvalidVolume.NotFound", ec2.modify_volume, VolumeId="vol-0123456789abcdef0", Size=9)
    assert ec2.describe_volumes(VolumeIds=[made[0]])["Volumes"][0]["Size"] == 3
    # Deletes.
    ec2.delete_snapshot(SnapshotId=snaps[6]["SnapshotId"])
    raises("InvalidSnapshot.NotFound", ec2.describe_snapshots, SnapshotIds=[snaps[6]["SnapshotId"]])
    ec2.delete_volume(VolumeId=made[6])
    raises("InvalidVolume.NotFound", ec2.delete_volume, VolumeId=made[6])
    print("ok boto3")


def refusals_scenario():
    snap = os.environ["SNAPSHOT"]
    alice = (os.environ["ALICE_KEY"], os.environ["ALICE_SECRET"])
    ec2w = client("ec2", "eu-west-1")
    before_w = ec2w.describe_snapshots()["Snapshots"]
    before = client("ec2").describe_volumes()["Volumes"]
    # A good raw request works: the XML is EC2's, in its namespace, with a requestId.
    status, root = query({"Action": "DescribeSnapshots", "SnapshotId.1": snap})
    assert status == 200 and root.tag == f"{NS}DescribeSnapshotsResponse", root.tag
    assert root.find(f"{NS}requestId").text
    assert root.find(f"{NS}snapshotSet/{NS}item/{NS}snapshotId").text == snap
    # Missing parameters.
    status, root = query({"Action": "CreateSnapshot"})
    assert (status, error_code(root)) == (400, "MissingParameter")
    status, root = query({"Action": "CreateVolume", "Encrypted": "true"})
    assert (status, error_code(root)) == (400, "MissingParameter")
    status, root = query({"Action": "CopySnapshot", "SourceRegion": "us-east-1"}, region="eu-west-1")
    assert (status, error_code(root)) == (400, "MissingParameter")
    # Bad values, unknown things.
    status, root = query({"Action": "CreateVolume", "Size": "1", "Encrypted": "maybe"})
    assert (status, error_code(root)) == (400, "InvalidParameterValue")
    status, root = query({"Action": "CreateVolume", "Size": "1", "AvailabilityZone": "eu-west-1a"})
    assert (status, error_code(root)) == (400, "InvalidParameterValue")
    status, root = query({"Action": "RunInstances"})
    assert (status, error_code(root)) == (400, "InvalidAction")
    status, root = query({"Action": "DeleteSnapshot", "SnapshotId": "snap-0123456789abcdef0"})
    assert (status, error_code(root)) == (400, "InvalidSnapshot.NotFound")
    status, root = query({"Action": "DeleteVolume", "VolumeId": "volume-1"})
    assert (status, error_code(root)) == (400, "InvalidVolumeID.Malformed")
    raises("InvalidSnapshot.NotFound", ec2w.copy_snapshot, SourceRegion="us-east-1",
           SourceSnapshotId="snap-0123456789abcdef0")
    raises("KMSKeyNotAccessibleFault", ec2w.copy_snapshot, SourceRegion="us-east-1",
           SourceSnapshotId=snap, Encrypted=True, KmsKeyId="alias/no-such-key")
    # An encrypted copy to a key the caller may not use: refused, as EC2 refuses it.
    alice_w = client("ec2", "eu-west-1", *alice)
    e = raises("UnauthorizedOperation", alice_w.copy_snapshot, SourceRegion="us-east-1",
               SourceSnapshotId=snap, Encrypted=True, KmsKeyId="alias/locked")
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # The same caller may copy to a key it may use (so the refusal was the key's doing).
    ok = alice_w.copy_snapshot(SourceRegion="us-east-1", SourceSnapshotId=snap, Encrypted=True,
                               KmsKeyId="alias/open")["SnapshotId"]
    # Nothing else changed.
    after_w = ec2w.describe_snapshots()["Snapshots"]
    assert sorted(s["SnapshotId"] for s in after_w) == sorted(
        [s["SnapshotId"] for s in before_w] + [ok]), after_w
    assert len(client("ec2").describe_volumes()["Volumes"]) == len(before)
    print("ok refusals")


if __name__ == "__main__":
    {"awscli": lambda: (awscli_scenario(), print("ok awscli")),
     "boto3": model_checked(boto3_scenario),
     "refusals": model_checked(refusals_scenario)}[sys.argv[1]]()
