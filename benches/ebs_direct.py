"""Uploads SIZE bytes of random data as a snapshot through the EBS direct APIs with boto3 and
THREADS threads (StartSnapshot, PutSnapshotBlock per 512 KiB block, CompleteSnapshot), and
prints the seconds it took and the CPU seconds the client itself spent as
`seconds S client_cpu C`. Used by benches/ebs_direct.sh.

Usage: ebs_direct.py ENDPOINT SIZE THREADS ENCRYPTED(0|1), with AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY set.
"""

import base64
import concurrent.futures
import hashlib
import os
import sys
import threading
import time

import boto3
import botocore

BLOCK = 512 * 1024
endpoint, size, threads, encrypted = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
blocks = size // BLOCK
data = os.urandom(blocks * BLOCK)
sums = [base64.b64encode(hashlib.sha256(data[i * BLOCK:(i + 1) * BLOCK]).digest()).decode()
        for i in range(blocks)]
local = threading.local()
config = botocore.config.Config(max_pool_connections=threads, retries={"max_attempts": 1})


def client():
    if not hasattr(local, "c"):
        local.c = boto3.client("ebs", region_name="us-east-1", endpoint_url=endpoint, config=config)
    return local.c


def put(snap, i):
    client().put_snapshot_block(SnapshotId=snap, BlockIndex=i, DataLength=BLOCK,
                                BlockData=data[i * BLOCK:(i + 1) * BLOCK], Checksum=sums[i],
                                ChecksumAlgorithm="SHA256")


start = time.monotonic()
args = {"VolumeSize": max(1, -(-size // (1 << 30)))}
if encrypted:
    args["Encrypted"] = True
snap = client().start_snapshot(**args)["SnapshotId"]
with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    list(pool.map(lambda i: put(snap, i), range(blocks)))
status = client().complete_snapshot(SnapshotId=snap, ChangedBlocksCount=blocks)["Status"]
elapsed = time.monotonic() - start
assert status in ("completed", "pending"), status
print(f"seconds {elapsed:.3f} client_cpu {time.process_time():.3f} snapshot {snap}")
