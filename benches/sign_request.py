"""The signed request that benches/server.sh replays with wrk, and the key it names.

Usage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment, never
arguments, so they stay out of `ps`):

  sign_request.py create-key ENDPOINT REGION
      Creates a symmetric encryption key with boto3 and prints its ARN.

  sign_request.py wrk-script ENDPOINT REGION KEY_ARN PLAINTEXT_BYTES OUT.lua
      Signs ONE Encrypt request of PLAINTEXT_BYTES random bytes under KEY_ARN with botocore's
      SigV4Auth (service kms, REGION, X-Amz-Date now: SigV4 accepts it for 15 minutes), sends it
      once and checks the answer (HTTP 200 with a CiphertextBlob that boto3's Decrypt turns back
      into the plaintext), then writes a wrk Lua script that replays exactly those bytes: method,
      path, body and every signed header. Prints the answer's status.

The plaintext is random benchmark data, not a secret; the Lua file holds a signature, not the
secret access key. Any failure is a one-line error on stderr and exit status 1.
"""

import base64
import http.client
import json
import os
import sys
import urllib.parse

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def die(msg):
    print(f"sign_request.py: {msg}", file=sys.stderr)
    sys.exit(1)


def credentials():
    try:
        return os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    except KeyError as e:
        die(f"{e.args[0]} is not set")


def client(endpoint, region):
    key, secret = credentials()
    return boto3.client(
        "kms",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )


def create_key(endpoint, region):
    meta = client(endpoint, region).create_key(
        Description="benches/server.sh", KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT"
    )["KeyMetadata"]
    print(meta["Arn"])


def lua_string(s):
    """A Lua string literal of s (ASCII: headers, base64 and JSON)."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.append("\\%d" % ord(ch))
    return '"' + "".join(out) + '"'


def wrk_script(endpoint, region, key_arn, size, out_path):
    url = urllib.parse.urlsplit(endpoint)
    if url.scheme != "http" or not url.hostname:
        die(f"{endpoint}: give an http:// endpoint (wrk replays plain HTTP here)")
    plaintext = os.urandom(size)
    body = json.dumps(
        {"KeyId": key_arn, "Plaintext": base64.b64encode(plaintext).decode()},
        separators=(",", ":"),
    )
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "TrentService.Encrypt",
        "Host": url.netloc,
    }
    request = AWSRequest(method="POST", url=endpoint.rstrip("/") + "/", data=body, headers=headers)
    key, secret = credentials()
    SigV4Auth(Credentials(key, secret), "kms", region).add_auth(request)
    signed = dict(request.headers.items())

    # Send it once, as wrk will, and check the answer is a real ciphertext of the plaintext.
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=30)
    conn.request("POST", "/", body=body.encode(), headers=signed)
    resp = conn.getresponse()
    answer = resp.read()
    conn.close()
    if resp.status != 200:
        die(f"the signed Encrypt was answered {resp.status}: {answer[:300]!r}")
    try:
        blob = base64.b64decode(json.loads(answer)["CiphertextBlob"])
    except (ValueError, KeyError) as e:
        die(f"the signed Encrypt's answer has no CiphertextBlob ({e}): {answer[:300]!r}")
    back = client(endpoint, region).decrypt(CiphertextBlob=blob)["Plaintext"]
    if back != plaintext:
        die("Decrypt of the replayed request's ciphertext did not give the plaintext back")

    lines = [
        "-- Written by benches/sign_request.py: one signed KMS Encrypt, replayed as is.",
        'wrk.method = "POST"',
        'wrk.path = "/"',
        f"wrk.body = {lua_string(body)}",
    ]
    for name, value in signed.items():
        lines.append(f"wrk.headers[{lua_string(name)}] = {lua_string(value)}")
    with open(out_path, "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")
    print(resp.status)


def main(argv):
    if len(argv) == 3 and argv[0] == "create-key":
        create_key(argv[1], argv[2])
    elif len(argv) == 6 and argv[0] == "wrk-script":
        try:
            size = int(argv[4])
        except ValueError:
            die(f"bad plaintext size {argv[4]}: give a number of bytes (1 to 4096)")
        if not 1 <= size <= 4096:
            die(f"bad plaintext size {size}: KMS Encrypt takes 1 to 4096 bytes")
        wrk_script(argv[1], argv[2], argv[3], size, argv[5])
    else:
        die("usage: sign_request.py create-key ENDPOINT REGION | "
            "wrk-script ENDPOINT REGION KEY_ARN PLAINTEXT_BYTES OUT.lua")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Exception as e:  # one line, not a traceback: the bench says which step failed
        die(f"{type(e).__name__}: {e}")
