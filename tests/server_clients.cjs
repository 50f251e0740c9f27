// The AWS SDK for JavaScript (v3) against a running `cofre serve` (driven by tests/server.rs):
// encrypt and decrypt with an encryption context, a data key, and an error mapped to the SDK's
// exception class. Credentials and the endpoint come from the AWS_* environment.
const assert = require("node:assert/strict");
const kmsSdk = require("@aws-sdk/client-kms");

async function main() {
  const kms = new kmsSdk.KMSClient({ endpoint: process.env.AWS_ENDPOINT_URL_KMS, region: "us-east-1" });
  const { KeyMetadata } = await kms.send(new kmsSdk.CreateKeyCommand({ Description: "from javascript" }));
  assert.equal(KeyMetadata.KeyState, "Enabled");
  assert.ok(KeyMetadata.CreationDate instanceof Date);
  const context = { app: "js" };
  const enc = await kms.send(new kmsSdk.EncryptCommand({
    KeyId: KeyMetadata.KeyId, Plaintext: Buffer.from("hello from node"), EncryptionContext: context,
  }));
  assert.equal(enc.KeyId, KeyMetadata.Arn);
  const dec = await kms.send(new kmsSdk.DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: context }));
  assert.equal(Buffer.from(dec.Plaintext).toString(), "hello from node");
  const dk = await kms.send(new kmsSdk.GenerateDataKeyCommand({ KeyId: KeyMetadata.KeyId, KeySpec: "AES_256" }));
  assert.equal(dk.Plaintext.length, 32);
  await assert.rejects(
    kms.send(new kmsSdk.DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: { app: "other" } })),
    (e) => e instanceof kmsSdk.InvalidCiphertextException,
  );
  await assert.rejects(
    kms.send(new kmsSdk.DescribeKeyCommand({ KeyId: "alias/missing" })),
    (e) => e instanceof kmsSdk.NotFoundException,
  );
  console.log("ok javascript");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
