"""Real AWS clients against a running `cofre serve` (driven by tests/server.rs).

Usage: server_clients.py SCENARIO, with the AWS_* variables of the account root's access key,
AWS_ENDPOINT_URL_KMS, and for `boto3` ALICE_KEY/ALICE_SECRET and BOB_KEY/BOB_SECRET (access keys
of two users of the account), COFRE (the binary) and COFRE_HOME. Each scenario asserts what it
checks and prints `ok SCENARIO` at the end; any failure is a traceback and a non-zero exit.
"""

import base64
import datetime
import json
import os
import subprocess
import sys
import tempfile

import boto3
import botocore
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ENDPOINT = os.environ["AWS_ENDPOINT_URL_KMS"]
REGION = "us-east-1"


def client(key=None, secret=None, region=REGION):
    return boto3.client(
        "kms",
        verify=os.environ.get("CA_BUNDLE", True),
        region_name=region,
        endpoint_url=ENDPOINT,
        aws_access_key_id=key or os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or os.environ["AWS_SECRET_ACCESS_KEY"],
    )


def raises(exc_name, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == exc_name, f"expected {exc_name}, got {got}: {e}"
        return e
    raise AssertionError(f"expected {exc_name}, but the call succeeded")


def boto3_scenario():
    kms = client()
    account = os.environ["ACCOUNT"]
    # Keys, descriptions, tags, aliases.
    meta = kms.create_key(Description="boto3 key", Tags=[{"TagKey": "team", "TagValue": "a"}])["KeyMetadata"]
    kid, arn = meta["KeyId"], meta["Arn"]
    assert isinstance(meta["CreationDate"], datetime.datetime)
    assert meta["KeyState"] == "Enabled" and meta["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert kms.describe_key(KeyId=arn)["KeyMetadata"]["Description"] == "boto3 key"
    kms.update_key_description(KeyId=kid, Description="changed")
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["Description"] == "changed"
    kms.tag_resource(KeyId=kid, Tags=[{"TagKey": "env", "TagValue": "test"}])
    kms.untag_resource(KeyId=kid, TagKeys=["team"])
    assert kms.list_resource_tags(KeyId=kid)["Tags"] == [{"TagKey": "env", "TagValue": "test"}]
    kms.create_alias(AliasName="alias/app", TargetKeyId=kid)
    aliases = kms.list_aliases(KeyId=kid)["Aliases"]
    assert [a["AliasName"] for a in aliases] == ["alias/app"], aliases
    assert isinstance(aliases[0]["CreationDate"], datetime.datetime)

    # Data: encrypt/decrypt with context, re-encrypt, data keys, random.
    ctx = {"purpose": "test", "Tenant": "42"}
    enc = kms.encrypt(KeyId="alias/app", Plaintext=b"attack at dawn", EncryptionContext=ctx)
    assert enc["KeyId"] == arn and enc["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    dec = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=ctx)
    assert dec["Plaintext"] == b"attack at dawn" and dec["KeyId"] == arn
    raises("InvalidCiphertextException", kms.decrypt, CiphertextBlob=enc["CiphertextBlob"], EncryptionContext={"purpose": "other"})
    raises("InvalidCiphertextException", kms.decrypt, CiphertextBlob=b"\x01" * 60)
    other = kms.create_key()["KeyMetadata"]
    re = kms.re_encrypt(CiphertextBlob=enc["CiphertextBlob"], SourceEncryptionContext=ctx,
                        DestinationKeyId=other["KeyId"], DestinationEncryptionContext={"k": "v"})
    assert re["SourceKeyId"] == arn and re["KeyId"] == other["Arn"]
    assert kms.decrypt(CiphertextBlob=re["CiphertextBlob"], EncryptionContext={"k": "v"})["Plaintext"] == b"attack at dawn"
    dk = kms.generate_data_key(KeyId=kid, KeySpec="AES_256", EncryptionContext=ctx)
    assert len(dk["Plaintext"]) == 32
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]
    dk16 = kms.generate_data_key_without_plaintext(KeyId=kid, NumberOfBytes=16)
    assert "Plaintext" not in dk16
    assert len(kms.decrypt(CiphertextBlob=dk16["CiphertextBlob"])["Plaintext"]) == 16
    raises("ValidationException", kms.generate_data_key, KeyId=kid)
    pair = kms.generate_data_key_pair(KeyId=kid, KeyPairSpec="ECC_NIST_P256")
    assert pair["KeyPairSpec"] == "ECC_NIST_P256" and len(pair["PrivateKeyPlaintext"]) > 60
    assert len(kms.generate_random(NumberOfBytes=64)["Plaintext"]) == 64

    # Rotation.
    kms.enable_key_rotation(KeyId=kid, RotationPeriodInDays=90)
    st = kms.get_key_rotation_status(KeyId=kid)
    assert st["KeyRotationEnabled"] and st["RotationPeriodInDays"] == 90
    assert isinstance(st["NextRotationDate"], datetime.datetime)
    kms.rotate_key_on_demand(KeyId=kid)
    rot = kms.list_key_rotations(KeyId=kid)["Rotations"]
    assert len(rot) == 1 and rot[0]["RotationType"] == "ON_DEMAND", rot
    # The old material still decrypts.
    assert kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == b"attack at dawn"
    kms.disable_key_rotation(KeyId=kid)
    assert not kms.get_key_rotation_status(KeyId=kid)["KeyRotationEnabled"]

    # Policies that refuse one principal and allow another. (The root statement lets every
    # principal of the account in, as IAM policies would in AWS; explicit Denies refuse.)
    alice = f"arn:aws:iam::{account}:user/alice"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "alice-may-not-decrypt", "Effect": "Deny", "Principal": {"AWS": alice},
             "Action": "kms:Decrypt", "Resource": "*"},
            {"Sid": "no-bob", "Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{account}:user/bob"},
             "Action": "kms:*", "Resource": "*"},
        ],
    }
    guarded_meta = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]
    guarded, guarded_arn = guarded_meta["KeyId"], guarded_meta["Arn"]
    assert json.loads(kms.get_key_policy(KeyId=guarded)["Policy"]) == policy
    assert kms.list_key_policies(KeyId=guarded)["PolicyNames"] == ["default"]
    as_alice = client(os.environ["ALICE_KEY"], os.environ["ALICE_SECRET"])
    as_bob = client(os.environ["BOB_KEY"], os.environ["BOB_SECRET"])
    as_carol = client(os.environ["CAROL_KEY"], os.environ["CAROL_SECRET"])
    blob = as_alice.encrypt(KeyId=guarded, Plaintext=b"from alice")["CiphertextBlob"]
    raises("AccessDeniedException", as_alice.decrypt, CiphertextBlob=blob)
    raises("AccessDeniedException", as_bob.encrypt, KeyId=guarded, Plaintext=b"x")
    raises("AccessDeniedException", as_bob.describe_key, KeyId=guarded)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"from alice"
    # Errors map to the SDK's exception classes.
    try:
        kms.describe_key(KeyId="alias/none")
        raise AssertionError("found alias/none")
    except kms.exceptions.NotFoundException:
        pass

    # Grants with tokens: carol, of another account, may decrypt with a grant; retired, not.
    carol = "arn:aws:iam::444455556666:user/carol"
    raises("AccessDeniedException", as_carol.decrypt, CiphertextBlob=blob, KeyId=guarded_arn)
    grant = kms.create_grant(KeyId=guarded, GranteePrincipal=carol, Operations=["Decrypt"],
                             RetiringPrincipal=f"arn:aws:iam::{account}:root")
    assert grant["GrantToken"] and len(grant["GrantId"]) == 64
    got = as_carol.decrypt(CiphertextBlob=blob, KeyId=guarded_arn, GrantTokens=[grant["GrantToken"]])
    assert got["Plaintext"] == b"from alice"
    grants = kms.list_grants(KeyId=guarded)["Grants"]
    assert [g["GrantId"] for g in grants] == [grant["GrantId"]]
    assert isinstance(grants[0]["CreationDate"], datetime.datetime)
    retirable = kms.list_retirable_grants(RetiringPrincipal=f"arn:aws:iam::{account}:root")["Grants"]
    assert grant["GrantId"] in [g["GrantId"] for g in retirable]
    kms.retire_grant(GrantToken=grant["GrantToken"])
    assert kms.list_grants(KeyId=guarded)["Grants"] == []
    raises("AccessDeniedException", as_carol.decrypt, CiphertextBlob=blob, KeyId=guarded_arn)
    g2 = kms.create_grant(KeyId=guarded, GranteePrincipal=carol, Operations=["Decrypt"])
    kms.revoke_grant(KeyId=guarded, GrantId=g2["GrantId"])
    raises("NotFoundException", kms.revoke_grant, KeyId=guarded, GrantId=g2["GrantId"])

    # Asymmetric: sign/verify, and GetPublicKey for openssl.
    signer = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    message = b"a message to sign"
    sig = kms.sign(KeyId=signer, Message=message, SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    assert kms.verify(KeyId=signer, Message=message, Signature=sig, SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
    raises("KMSInvalidSignatureException", kms.verify, KeyId=signer, Message=b"other", Signature=sig, SigningAlgorithm="ECDSA_SHA_256")
    pub = kms.get_public_key(KeyId=signer)
    assert pub["KeySpec"] == "ECC_NIST_P256" and pub["SigningAlgorithms"] == ["ECDSA_SHA_256"]
    with tempfile.TemporaryDirectory() as d:
        open(f"{d}/pub.der", "wb").write(pub["PublicKey"])
        open(f"{d}/msg", "wb").write(message)
        open(f"{d}/sig", "wb").write(sig)
        out = subprocess.run(["openssl", "dgst", "-sha256", "-verify", f"{d}/pub.der", "-keyform", "DER",
                              "-signature", f"{d}/sig", f"{d}/msg"], capture_output=True, text=True)
        assert out.returncode == 0 and "Verified OK" in out.stdout, out.stdout + out.stderr
    mac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    mac = kms.generate_mac(KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert kms.verify_mac(KeyId=mac_key, Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256")["MacValid"]

    # Pagination, with Limit/Marker/NextMarker/Truncated and with the SDK's paginator.
    ids = set()
    marker = None
    while True:
        page = kms.list_keys(Limit=2, **({"Marker": marker} if marker else {}))
        ids.update(k["KeyId"] for k in page["Keys"])
        assert len(page["Keys"]) <= 2
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        marker = page["NextMarker"]
    every = {k["KeyId"] for p in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 3}) for k in p["Keys"]}
    assert ids == every and kid in ids and len(ids) >= 5, (ids, every)

    # Deletion.
    d = kms.schedule_key_deletion(KeyId=other["KeyId"], PendingWindowInDays=7)
    assert d["KeyState"] == "PendingDeletion" and isinstance(d["DeletionDate"], datetime.datetime)
    raises("KMSInvalidStateException", kms.encrypt, KeyId=other["KeyId"], Plaintext=b"x")
    kms.cancel_key_deletion(KeyId=other["KeyId"])
    kms.enable_key(KeyId=other["KeyId"])
    kms.disable_key(KeyId=other["KeyId"])
    raises("DisabledException", kms.encrypt, KeyId=other["KeyId"], Plaintext=b"x")

    # Multi-Region keys across two regions of the same server.
    mrk = kms.create_key(MultiRegion=True)["KeyMetadata"]
    rep = kms.replicate_key(KeyId=mrk["KeyId"], ReplicaRegion="eu-west-1", Description="replica")
    assert rep["ReplicaKeyMetadata"]["Arn"].startswith("arn:aws:kms:eu-west-1:")
    west = client(region="eu-west-1")
    blob = kms.encrypt(KeyId=mrk["KeyId"], Plaintext=b"everywhere")["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=blob, KeyId=rep["ReplicaKeyMetadata"]["Arn"])["Plaintext"] == b"everywhere"
    assert west.describe_key(KeyId=mrk["KeyId"])["KeyMetadata"]["Description"] == "replica"

    # What cofre does not offer is said so, not ignored.
    raises("UnsupportedOperationException", kms.describe_custom_key_stores)
    raises("UnsupportedOperationException", kms.encrypt, KeyId=kid, Plaintext=b"x", DryRun=True)
    raises("ValidationException", kms.create_key, KeySpec="NOT_A_SPEC")


def awscli_scenario():
    # `python -m awscli`: the venv's `aws` script names the folder the venv was built in.
    aws = [sys.executable, "-m", "awscli", "--endpoint-url", ENDPOINT, "--output", "json"]

    def run(*args, ok=True):
        out = subprocess.run(aws + list(args), capture_output=True, text=True)
        if ok:
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout) if out.stdout.strip() else None
        assert out.returncode != 0, out.stdout
        return out.stderr

    meta = run("kms", "create-key", "--description", "from the aws cli")["KeyMetadata"]
    run("kms", "create-alias", "--alias-name", "alias/cli", "--target-key-id", meta["KeyId"])
    with tempfile.TemporaryDirectory() as d:
        open(f"{d}/plain", "wb").write(b"cli secret")
        enc = run("kms", "encrypt", "--key-id", "alias/cli", "--plaintext", f"fileb://{d}/plain",
                  "--encryption-context", "app=cli")
        open(f"{d}/blob", "wb").write(base64.b64decode(enc["CiphertextBlob"]))
        dec = run("kms", "decrypt", "--ciphertext-blob", f"fileb://{d}/blob", "--encryption-context", "app=cli")
        assert base64.b64decode(dec["Plaintext"]) == b"cli secret"
        err = run("kms", "decrypt", "--ciphertext-blob", f"fileb://{d}/blob", ok=False)
        assert "InvalidCiphertextException" in err, err
    for _ in range(3):
        run("kms", "create-key")
    # The CLI pages through all keys itself, a page of 2 at a time.
    keys = run("kms", "list-keys", "--page-size", "2")["Keys"]
    assert meta["KeyId"] in [k["KeyId"] for k in keys] and len(keys) >= 4, keys
    err = run("kms", "describe-key", "--key-id", "alias/missing", ok=False)
    assert "NotFoundException" in err, err


def esdk_scenario():
    import aws_encryption_sdk
    from aws_encryption_sdk import CommitmentPolicy

    kms = client()
    arn = kms.create_key(Description="encryption sdk")["KeyMetadata"]["Arn"]
    session = botocore.session.Session()
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[arn], botocore_session=session)
    sdk = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    data = os.urandom(300_000)
    with tempfile.TemporaryDirectory() as d:
        open(f"{d}/in", "wb").write(data)
        with open(f"{d}/in", "rb") as src, open(f"{d}/in.enc", "wb") as dst:
            with sdk.stream(mode="e", source=src, key_provider=provider, encryption_context={"file": "in"}) as s:
                for chunk in s:
                    dst.write(chunk)
        with open(f"{d}/in.enc", "rb") as src:
            with sdk.stream(mode="d", source=src, key_provider=provider) as s:
                out = b"".join(s)
                assert s.header.encryption_context["file"] == "in"
        assert out == data


def signed(body, target, key, secret, region=REGION, service="kms", when=None):
    """A request signed by botocore's own SigV4 signer, as (url, headers, body)."""
    req = AWSRequest(method="POST", url=ENDPOINT + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"TrentService.{target}"})
    auth = SigV4Auth(Credentials(key, secret), service, region)
    if when is not None:
        import unittest.mock
        with unittest.mock.patch("botocore.auth.get_current_datetime", return_value=when):
            auth.add_auth(req)
    else:
        auth.add_auth(req)
    return dict(req.headers.items()), body


def post(headers, body):
    import urllib.request
    import urllib.error
    r = urllib.request.Request(ENDPOINT + "/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def refusals_scenario():
    key, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    body = json.dumps({"Description": "must not exist"}).encode()
    # A good request works (so the refusals below are the signature's doing).
    h, b = signed(b"{}", "ListKeys", key, secret)
    status, out = post(h, b)
    assert status == 200 and "Keys" in out, (status, out)
    cases = []
    # The wrong secret.
    cases.append(("InvalidSignatureException", 400, *signed(body, "CreateKey", key, "x" * 40)))
    # An expired date (20 minutes ago).
    old = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
    cases.append(("InvalidSignatureException", 400, *signed(body, "CreateKey", key, secret, when=old)))
    # A tampered body.
    h, _ = signed(body, "CreateKey", key, secret)
    cases.append(("InvalidSignatureException", 400, h, json.dumps({"Description": "tampered"}).encode()))
    # Signed for eu-west-1, sent claiming us-east-1.
    h, b = signed(body, "CreateKey", key, secret, region="eu-west-1")
    h["Authorization"] = h["Authorization"].replace("/eu-west-1/", "/us-east-1/")
    cases.append(("InvalidSignatureException", 400, h, b))
    # Scoped to another service.
    cases.append(("InvalidSignatureException", 400, *signed(body, "CreateKey", key, secret, service="s3")))
    # An access key nobody has; no signature at all.
    cases.append(("UnrecognizedClientException", 400, *signed(body, "CreateKey", "AKIAAAAAAAAAAAAAAAAA", secret)))
    cases.append(("MissingAuthenticationTokenException", 403,
                  {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.CreateKey"}, body))
    for name, status, h, b in cases:
        got_status, out = post(h, b)
        assert (got_status, out.get("__type")) == (status, name), (name, got_status, out)
    # An unknown operation, correctly signed.
    h, b = signed(b"{}", "MakeCoffee", key, secret)
    status, out = post(h, b)
    assert (status, out.get("__type")) == (400, "UnknownOperationException"), (status, out)
    # A body that is not JSON of the shape.
    h, b = signed(b'{"KeyId": 5, "Plaintext": "eA=="}', "Encrypt", key, secret)
    status, out = post(h, b)
    assert (status, out.get("__type")) == (400, "SerializationException"), (status, out)
    h, b = signed(b'{"Limit": 0}', "ListKeys", key, secret)
    status, out = post(h, b)
    assert (status, out.get("__type")) == (400, "ValidationException"), (status, out)
    h, b = signed(b'{"Plaintext": "eA=="}', "Encrypt", key, secret)
    status, out = post(h, b)
    assert (status, out.get("__type")) == (400, "ValidationException"), (status, out)
    # Nothing was created.
    h, b = signed(b"{}", "ListKeys", key, secret)
    status, out = post(h, b)
    assert status == 200 and out["Keys"] == [], out


def tls_scenario():
    kms = client()
    assert ENDPOINT.startswith("https://")
    kid = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=kid, Plaintext=b"over tls")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"over tls"
    # A client that does not trust the certificate does not talk to the server.
    untrusting = boto3.client("kms", region_name=REGION, endpoint_url=ENDPOINT, verify=True,
                              aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"])
    try:
        untrusting.list_keys()
        raise AssertionError("an untrusted certificate was accepted")
    except botocore.exceptions.SSLError:
        pass


SCENARIOS = {
    "tls": tls_scenario,
    "boto3": boto3_scenario,
    "awscli": awscli_scenario,
    "esdk": esdk_scenario,
    "refusals": refusals_scenario,
}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]]()
    print("ok", sys.argv[1])
