"""boto3's `ebs` client (the EBS direct APIs) against a running `cofre serve` (driven by
tests/server_ebs.rs).

Usage: server_ebs.py SCENARIO, with the AWS_* variables of the account root's access key,
AWS_ENDPOINT_URL, COFRE (the binary), COFRE_HOME and WORK (a scratch folder). Each scenario
asserts what it checks and prints `ok SCENARIO` at the end.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys

import boto3
import botocore

ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
REGION = "us-east-1"
BLOCK = 512 * 1024
WORK = os.environ["WORK"]


def client(kind="ebs", key=None, secret=None):
    return boto3.client(
        kind,
        region_name=REGION,
        endpoint_url=ENDPOINT,
        aws_access_key_id=key or os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or os.environ["AWS_SECRET_ACCESS_KEY"],
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def cofre(*args, ok=True):
    out = subprocess.run(
        [os.environ["COFRE"], "--home", os.environ["COFRE_HOME"], "--region", REGION, *args],
        capture_output=True,
        text=True,
    )
    if ok:
        assert out.returncode == 0, f"cofre {args}: {out.stderr}"
    return out


def cofre_json(*args):
    return json.loads(cofre("--output", "json", *args).stdout)


def raises(name, reason, fn, **kwargs):
    try:
        fn(**kwargs)
    except botocore.exceptions.ClientError as e:
        err = e.response["Error"]
        assert err["Code"] == name, f"expected {name}, got {err}"
        if reason is not None:
            got = e.response.get("Reason")
            assert got == reason, f"expected Reason {reason}, got {got}: {e.response}"
        return e
    raise AssertionError(f"expected {name}, but the call succeeded")


def sha(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def put(ebs, snap, index, data, checksum=None):
    return ebs.put_snapshot_block(
        SnapshotId=snap,
        BlockIndex=index,
        BlockData=data,
        DataLength=len(data),
        Checksum=checksum or sha(data),
        ChecksumAlgorithm="SHA256",
        Progress=50,
    )


def state(snap):
    return cofre_json("snapshot", "describe", snap)["Snapshots"][0]["State"]


def upload_scenario():
    ebs = client()
    blocks = 8
    image = bytearray(os.urandom(blocks * BLOCK))
    image[5 * BLOCK : 6 * BLOCK] = bytes(BLOCK)  # a zero block: stored as none
    image = bytes(image)

    # StartSnapshot: pending, encrypted under the default EBS key, idempotent by ClientToken.
    args = dict(VolumeSize=1, Encrypted=True, ClientToken="upload-1", Description="image",
                Tags=[{"Key": "team", "Value": "a"}], Timeout=60)
    s = ebs.start_snapshot(**args)
    snap = s["SnapshotId"]
    assert s["Status"] == "pending" and s["VolumeSize"] == 1 and s["BlockSize"] == BLOCK, s
    assert s["KmsKeyArn"].startswith("arn:aws:kms:us-east-1:"), s
    assert s["Tags"] == [{"Key": "team", "Value": "a"}], s
    assert ebs.start_snapshot(**args)["SnapshotId"] == snap, "a retry answers the same snapshot"
    raises("ConflictException", None, ebs.start_snapshot, **{**args, "VolumeSize": 2})
    assert state(snap) == "pending"
    listed = [x for x in cofre_json("snapshot", "list")["Snapshots"] if x["SnapshotId"] == snap]
    assert listed and listed[0]["State"] == "pending", listed
    out = cofre("volume", "create", "--snapshot", snap, ok=False)
    assert out.returncode != 0 and "pending" in out.stderr, out.stderr
    raises("ValidationException", "INVALID_SNAPSHOT_ID", ebs.list_snapshot_blocks, SnapshotId=snap)

    # PutSnapshotBlock, block by block; bad blocks are refused and change nothing.
    for i in range(blocks):
        r = put(ebs, snap, i, image[i * BLOCK : (i + 1) * BLOCK])
        assert r["Checksum"] == sha(image[i * BLOCK : (i + 1) * BLOCK]), r
        assert r["ChecksumAlgorithm"] == "SHA256", r
    raises("ValidationException", "INVALID_BLOCK", put, ebs=ebs, snap=snap, index=1,
           data=os.urandom(BLOCK), checksum=sha(b"other"))
    raises("ValidationException", "INVALID_BLOCK", put, ebs=ebs, snap=snap, index=2048,
           data=image[:BLOCK])
    raises("ValidationException", "INVALID_BLOCK", put, ebs=ebs, snap=snap, index=0,
           data=image[: BLOCK // 2])
    raises("ResourceNotFoundException", "SNAPSHOT_NOT_FOUND", put, ebs=ebs,
           snap="snap-0123456789abcdef0", index=0, data=image[:BLOCK])
    raises("ValidationException", "INVALID_PARAMETER_VALUE", ebs.complete_snapshot,
           SnapshotId=snap, ChangedBlocksCount=blocks + 1)
    raises("ValidationException", "INVALID_PARAMETER_VALUE", ebs.complete_snapshot,
           SnapshotId=snap, ChangedBlocksCount=blocks, Checksum=sha(b"wrong"),
           ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")
    assert state(snap) == "pending"

    # CompleteSnapshot with the aggregated checksum.
    sums = b"".join(hashlib.sha256(image[i * BLOCK : (i + 1) * BLOCK]).digest() for i in range(blocks))
    done = ebs.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=blocks,
                                 Checksum=base64.b64encode(hashlib.sha256(sums).digest()).decode(),
                                 ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")
    assert done["Status"] == "completed", done
    assert state(snap) == "completed"
    raises("ValidationException", "INVALID_SNAPSHOT_ID", put, ebs=ebs, snap=snap, index=0,
           data=image[:BLOCK])

    listed = ebs.list_snapshot_blocks(SnapshotId=snap)
    assert [b["BlockIndex"] for b in listed["Blocks"]] == [0, 1, 2, 3, 4, 6, 7], listed
    assert listed["VolumeSize"] == 1 and listed["BlockSize"] == BLOCK and "NextToken" not in listed
    later = ebs.list_snapshot_blocks(SnapshotId=snap, StartingBlockIndex=3, MaxResults=100)
    assert [b["BlockIndex"] for b in later["Blocks"]] == [3, 4, 6, 7], later
    parent_tokens = {b["BlockIndex"]: b["BlockToken"] for b in listed["Blocks"]}

    # A child with a few blocks changed (one rewritten, the zero block filled): copy on write.
    child = ebs.start_snapshot(VolumeSize=1, ParentSnapshotId=snap, Description="child")
    cid = child["SnapshotId"]
    assert child["ParentSnapshotId"] == snap and child["KmsKeyArn"] == s["KmsKeyArn"], child
    changed = {2: os.urandom(BLOCK), 5: os.urandom(BLOCK)}
    for i, d in changed.items():
        put(ebs, cid, i, d)
    ebs.complete_snapshot(SnapshotId=cid, ChangedBlocksCount=len(changed))
    new_image = bytearray(image)
    for i, d in changed.items():
        new_image[i * BLOCK : (i + 1) * BLOCK] = d
    new_image = bytes(new_image)

    diff = ebs.list_changed_blocks(FirstSnapshotId=snap, SecondSnapshotId=cid)
    got = [c["BlockIndex"] for c in diff["ChangedBlocks"]]
    assert got == sorted(changed), diff
    for c in diff["ChangedBlocks"]:
        i = c["BlockIndex"]
        b = ebs.get_snapshot_block(SnapshotId=cid, BlockIndex=i, BlockToken=c["SecondBlockToken"])
        data = b["BlockData"].read()
        assert data == changed[i] and b["DataLength"] == BLOCK, i
        assert b["Checksum"] == sha(data) and b["ChecksumAlgorithm"] == "SHA256"
    assert "FirstBlockToken" not in diff["ChangedBlocks"][1], "block 5 was zeros in the parent"
    old = ebs.get_snapshot_block(SnapshotId=snap, BlockIndex=2,
                                 BlockToken=diff["ChangedBlocks"][0]["FirstBlockToken"])
    assert old["BlockData"].read() == image[2 * BLOCK : 3 * BLOCK]

    # Tokens: forged, of another snapshot, of another index are refused.
    t = parent_tokens[2]
    forged = ("A" if t[0] != "A" else "B") + t[1:]
    raises("ValidationException", "INVALID_BLOCK_TOKEN", ebs.get_snapshot_block,
           SnapshotId=snap, BlockIndex=2, BlockToken=forged)
    raises("ValidationException", "INVALID_BLOCK_TOKEN", ebs.get_snapshot_block,
           SnapshotId=cid, BlockIndex=2, BlockToken=t)
    raises("ValidationException", "INVALID_BLOCK_TOKEN", ebs.get_snapshot_block,
           SnapshotId=snap, BlockIndex=3, BlockToken=t)
    raises("ValidationException", "INVALID_PAGE_TOKEN", ebs.list_snapshot_blocks,
           SnapshotId=snap, NextToken="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")

    # Unrelated lineages are not compared.
    other = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    ebs.complete_snapshot(SnapshotId=other, ChangedBlocksCount=0)
    raises("ValidationException", "UNRELATED_SNAPSHOTS", ebs.list_changed_blocks,
           FirstSnapshotId=snap, SecondSnapshotId=other)

    # The CLI restores the completed child; its export is the changed image, then zeros.
    vol = cofre_json("volume", "create", "--snapshot", cid)["VolumeId"]
    out = os.path.join(WORK, "export.img")
    cofre("volume", "export", vol, "-o", out, "--sparse")
    with open(out, "rb") as f:
        assert f.read(len(new_image)) == new_image, "the export is the uploaded image"
        while True:
            chunk = f.read(1 << 24)
            if not chunk:
                break
            assert chunk.count(0) == len(chunk), "the rest of the volume is zeros"
    assert os.path.getsize(out) == 1 << 30
    verify = cofre_json("verify")
    assert verify["Problems"] == [] and verify["Orphans"] == 0, verify

    # The trail has the EBS direct API events.
    events = [json.loads(l) for l in cofre("--output", "json", "audit", "log").stdout.splitlines()]
    ebs_events = {e["eventName"] for e in events if e["eventSource"] == "ebs.amazonaws.com"}
    want = {"StartSnapshot", "PutSnapshotBlock", "CompleteSnapshot", "ListSnapshotBlocks",
            "ListChangedBlocks", "GetSnapshotBlock"}
    assert want <= ebs_events, ebs_events
    refused = [e for e in events if e["eventSource"] == "ebs.amazonaws.com"
               and e.get("errorCode") == "ValidationException"]
    assert refused, "refusals are recorded"
    # The lineage's data key was opened for this caller by the first block written, and kept
    # for the 12 other blocks read or written within the minute a kept key lasts; the only
    # other Decrypt is StartSnapshot's check that the caller may use the parent's key.
    served = [e["eventTime"] for e in events
              if e["eventName"] == "Decrypt" and e["userAgent"].startswith("Boto3")]
    assert len(served) == 2, served

    # A kept data key is not a way around a disabled key: the next block is refused.
    key = cofre_json("key", "create")["KeyMetadata"]["Arn"]
    third = ebs.start_snapshot(VolumeSize=1, Encrypted=True, KmsKeyArn=key)["SnapshotId"]
    put(ebs, third, 0, image[:BLOCK])
    cofre("key", "disable", key, "--force")
    raises("ValidationException", "INVALID_CUSTOMER_KEY", put, ebs=ebs, snap=third, index=1,
           data=image[:BLOCK])
    cofre("key", "enable", key)
    put(ebs, third, 1, image[:BLOCK])
    print(json.dumps({"snapshot": snap, "child": cid}))


def denied_scenario():
    """A user no policy lets use a customer key cannot make snapshots under it, nor read the
    root's snapshots under it: AccessDeniedException (403), and nothing is made."""
    account = os.environ["ACCOUNT"]
    alice_arn = f"arn:aws:iam::{account}:user/alice"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "alice-not-through-ebs", "Effect": "Deny", "Principal": {"AWS": alice_arn},
             "Action": "kms:*", "Resource": "*",
             "Condition": {"StringEquals": {"kms:ViaService": f"ec2.{REGION}.amazonaws.com"}}},
        ],
    }
    kms = client("kms")
    arn = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["Arn"]
    # Alice may use the key directly: the Deny is for requests EBS makes for her.
    alice_kms = client("kms", key=os.environ["ALICE_KEY"], secret=os.environ["ALICE_SECRET"])
    alice_kms.encrypt(KeyId=arn, Plaintext=b"direct")
    root = client()
    snap = root.start_snapshot(VolumeSize=1, Encrypted=True, KmsKeyArn=arn)["SnapshotId"]
    data = os.urandom(BLOCK)
    put(root, snap, 0, data)
    root.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=1)
    token = root.list_snapshot_blocks(SnapshotId=snap)["Blocks"][0]["BlockToken"]
    alice = client(key=os.environ["ALICE_KEY"], secret=os.environ["ALICE_SECRET"])
    e = raises("AccessDeniedException", "DEPENDENCY_ACCESS_DENIED", alice.start_snapshot,
               VolumeSize=1, Encrypted=True, KmsKeyArn=arn)
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    raises("AccessDeniedException", "DEPENDENCY_ACCESS_DENIED", alice.get_snapshot_block,
           SnapshotId=snap, BlockIndex=0, BlockToken=token)
    raises("AccessDeniedException", "DEPENDENCY_ACCESS_DENIED", alice.start_snapshot,
           VolumeSize=1, ParentSnapshotId=snap)
    assert [x["SnapshotId"] for x in cofre_json("snapshot", "list")["Snapshots"]] == [snap]
    got = root.get_snapshot_block(SnapshotId=snap, BlockIndex=0, BlockToken=token)
    assert got["BlockData"].read() == data


def crash_scenario():
    """Starts a snapshot, writes blocks, says so, and keeps writing until the server dies."""
    ebs = client()
    snap = ebs.start_snapshot(VolumeSize=1, Encrypted=True)["SnapshotId"]
    for i in range(4):
        put(ebs, snap, i, os.urandom(BLOCK))
    print(f"pending {snap}", flush=True)
    try:
        for i in range(4, 2048):
            put(ebs, snap, i, os.urandom(BLOCK))
    except (botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectionClosedError):
        return
    raise AssertionError("the server was not killed")


if __name__ == "__main__":
    name = sys.argv[1]
    globals()[f"{name}_scenario"]()
    print(f"ok {name}")
