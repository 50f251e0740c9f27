"""Copies snapshot SNAP from us-east-1 to eu-west-1 through the EC2 Query API (CopySnapshot
sent to the destination region's endpoint, Encrypted under the destination's EBS default key),
and prints the milliseconds the request took and the copy's id as `ms T snapshot ID`.
Used by benches/ec2_copy.sh.

Usage: ec2_copy.py ENDPOINT SNAP, with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set.
"""

import sys
import time

import boto3

endpoint, snap = sys.argv[1], sys.argv[2]
ec2 = boto3.client("ec2", region_name="eu-west-1", endpoint_url=endpoint)
start = time.monotonic()
copy = ec2.copy_snapshot(SourceRegion="us-east-1", SourceSnapshotId=snap, Encrypted=True)
ms = (time.monotonic() - start) * 1000
print(f"ms {ms:.1f} snapshot {copy['SnapshotId']}")
