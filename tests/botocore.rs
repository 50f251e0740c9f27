//! Every JSON output of the CLI, checked against AWS's own service models (issue 12).
//!
//! [`cli_json_matches_botocore_models`] runs the built `cofre` in a temporary home through every
//! command that prints a KMS, EC2 or EBS response with `--output json`, writes each output to a
//! case file `<service>.<Operation>.<n>.json`, and has `tests/botocore_check.py` validate them
//! all against the output shapes of botocore's models (`kms/2014-11-01`, `ec2/2016-11-15`,
//! `ebs/2019-11-02`): unknown members, missing required members, types, enums, lengths and
//! ranges, timestamps and base64 blobs; and the members AWS returns in every response though
//! the model doesn't mark them required ([`ALWAYS`]). It fails with the checker's list of problems, one line
//! each. A command that prints nothing is a case too: right for an operation whose model has no
//! output (PutKeyPolicy, DeleteAlias, …), and checked as `{}` otherwise.
//!
//! Python with botocore: `COFRE_BOTOCORE_PYTHON` if set (a python that can `import botocore`),
//! else a venv made once under the target folder, `target/botocore-venv`, with
//! `python3 -m venv` and `pip install` of [`BOTOCORE`] (needs python3 and PyPI the first time),
//! and reused by every later run. Two test processes making it at once don't collide: each
//! builds its own `botocore-venv.tmp-PID` and renames it into place; the loser drops its copy.
//!
//! Deliberate differences from AWS's shapes are listed here, each with its reason:
//! [`EXEMPT`] (commands whose output is not an AWS response at all) and [`SUBSTITUTES`] (a file
//! path printed in place of a blob). Blobs the user sent to a file with `-o` (or
//! `--ciphertext-out`, …) are left out of the JSON, and plaintexts and private keys are never
//! printed: the models make none of those members required, so those outputs are checked as
//! they are. The test also walks `cofre --help`, so that a new command, or one dropped from the
//! scenario, is noticed, and asserts that the cases cover exactly the operations in [`CHECKED`].

mod common;
use common::ENV;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

// ── What is checked, and what is not ──────────────────────────────────────────────────────

/// The botocore the venv installs: a model recent enough to name KeyMaterialId and
/// ListKeyRotations, never a new major version unseen.
const BOTOCORE: &str = "botocore>=1.40,<2";

/// Every operation the cases cover, as `<service>.<Operation>` (botocore's names).
const CHECKED: &[&str] = &[
    // iam: the access keys `cofre serve` checks signatures with
    "iam.CreateAccessKey",
    "iam.ListAccessKeys",
    "iam.DeleteAccessKey",
    // kms: keys
    "kms.CreateKey",
    "kms.DescribeKey",
    "kms.ListKeys",
    "kms.EnableKey",
    "kms.DisableKey",
    "kms.ScheduleKeyDeletion",
    "kms.CancelKeyDeletion",
    "kms.GetPublicKey",
    // kms: rotation
    "kms.EnableKeyRotation",
    "kms.DisableKeyRotation",
    "kms.GetKeyRotationStatus",
    "kms.RotateKeyOnDemand",
    "kms.ListKeyRotations",
    // kms: policy and grants
    "kms.GetKeyPolicy",
    "kms.PutKeyPolicy",
    "kms.CreateGrant",
    "kms.ListGrants",
    "kms.RetireGrant",
    "kms.RevokeGrant",
    // kms: aliases
    "kms.CreateAlias",
    "kms.UpdateAlias",
    "kms.ListAliases",
    "kms.DeleteAlias",
    // kms: imported material, multi-Region keys
    "kms.GetParametersForImport",
    "kms.ImportKeyMaterial",
    "kms.DeleteImportedKeyMaterial",
    "kms.ReplicateKey",
    "kms.UpdatePrimaryRegion",
    // kms: data
    "kms.Encrypt",
    "kms.Decrypt",
    "kms.ReEncrypt",
    "kms.GenerateDataKey",
    "kms.GenerateDataKeyWithoutPlaintext",
    "kms.GenerateDataKeyPair",
    "kms.GenerateDataKeyPairWithoutPlaintext",
    "kms.GenerateRandom",
    "kms.Sign",
    "kms.Verify",
    "kms.GenerateMac",
    "kms.VerifyMac",
    // ec2: volumes, snapshots, EBS settings
    "ec2.CreateVolume",
    "ec2.DescribeVolumes",
    "ec2.DeleteVolume",
    "ec2.CreateSnapshot",
    "ec2.DescribeSnapshots",
    "ec2.CopySnapshot",
    "ec2.DeleteSnapshot",
    "ec2.GetEbsEncryptionByDefault",
    "ec2.EnableEbsEncryptionByDefault",
    "ec2.DisableEbsEncryptionByDefault",
    "ec2.GetEbsDefaultKmsKeyId",
    "ec2.ModifyEbsDefaultKmsKeyId",
    "ec2.ResetEbsDefaultKmsKeyId",
    // ebs: direct APIs
    "ebs.ListChangedBlocks",
];

/// Commands whose `--output json` is deliberately not an AWS response, with the reason. A
/// command in parentheses-qualified form (`verify (…)`) is exempt in that mode only; its other
/// modes are checked.
const EXEMPT: &[(&str, &str)] = &[
    (
        "completions",
        "cofre-only: prints a shell completion script (tests/cli.rs checks it)",
    ),
    (
        "man",
        "cofre-only: prints the man page in roff (tests/cli.rs checks it)",
    ),
    (
        "serve",
        "a server: it answers the KMS API over HTTP (tests/server.rs drives it with the SDKs)",
    ),
    (
        "init",
        "cofre-only: creates the home and chooses the account id; no AWS operation",
    ),
    (
        "encrypt",
        "cofre's file format, written to a file or stdout, not JSON; its data key comes from a \
         GenerateDataKey request inside cofre",
    ),
    (
        "decrypt",
        "cofre's file format; prints the plaintext, not JSON",
    ),
    (
        "rewrap",
        "cofre's file format; prints nothing, the file is the result",
    ),
    (
        "inspect",
        "cofre-only: a file header, read with no key and no request",
    ),
    (
        "verify (no arguments)",
        "cofre-only: a check of the region's EBS store (blocks, maps, records)",
    ),
    (
        "verify (--pubkey)",
        "offline: checks a signature with a public key file and no KMS request, so it prints \
         the key's PublicKeySha256 where Verify has a KeyId",
    ),
    ("volume read", "data plane: the volume's raw bytes"),
    (
        "volume write",
        "data plane: prints BytesWritten; EBS's PutSnapshotBlock writes one block of a \
         snapshot, not a volume",
    ),
    (
        "volume export",
        "data plane: writes a raw image file, prints nothing",
    ),
    (
        "volume attach",
        "data plane: serves the volume over NBD until a signal; prints its NBD URI",
    ),
    (
        "snapshot attach",
        "data plane: serves the snapshot read-only over NBD until a signal; prints its NBD URI",
    ),
    (
        "key usage-report",
        "cofre-only: which volumes, snapshots and files use each key version",
    ),
    (
        "region set-path",
        "cofre-only: where a region's folder lives",
    ),
    ("region list", "cofre-only: where region folders live"),
    (
        "usage",
        "cofre-only: usage and cost at KMS prices, from the audit trail",
    ),
    (
        "audit log",
        "CloudTrail-style event records (JSON lines), not the response of a KMS, EC2 or EBS \
         operation",
    ),
    (
        "audit verify",
        "cofre-only: a check of the audit trail's chain",
    ),
    ("gc", "cofre-only: removes unused EBS blocks and maps"),
    (
        "principal policy put",
        "IAM, not KMS, EC2 or EBS: cofre's stand-in for an inline user or role policy; prints \
         nothing, as IAM's PutUserPolicy answers nothing",
    ),
    (
        "principal policy get",
        "IAM, not KMS, EC2 or EBS: a principal's identity policy",
    ),
    (
        "principal policy delete",
        "IAM, not KMS, EC2 or EBS: prints nothing",
    ),
    (
        "principal policy list",
        "IAM, not KMS, EC2 or EBS: the principals with an identity policy",
    ),
    ("bench", "cofre-only: throughput measurements"),
    (
        "demo",
        "cofre-only: a walk-through in a throwaway home, text",
    ),
];

/// Where the CLI deliberately prints a file path instead of a blob:
/// (operation, member printed, the blob member it stands for). The checker takes the path as
/// that blob being present.
const SUBSTITUTES: &[(&str, &str, &str)] = &[
    // `key import-params --out-dir DIR` writes the two blobs as files for openssl to use.
    ("kms.GetParametersForImport", "PublicKeyFile", "PublicKey"),
    (
        "kms.GetParametersForImport",
        "ImportTokenFile",
        "ImportToken",
    ),
    // `cofre sign KEY FILE -o SIG` signs a file of any size; the signature goes to SIG.
    ("kms.Sign", "SignatureFile", "Signature"),
];

/// Members the models do not mark required (AWS marks almost nothing in an output required)
/// but AWS returns in every response, per the Response Syntax of its API reference: missing
/// ones are problems too. Lists are printed as the AWS CLI prints them, every page gathered:
/// without the service's `NextMarker` and `Truncated`, with `NextToken` when `--max-items`
/// stopped early (the checker allows it for operations botocore has a paginator for). `Keys[].KeyArn` means in every entry. Blobs are left out on purpose:
/// cofre leaves a blob out of the JSON when it went to a file (`-o`).
const ALWAYS: &[(&str, &[&str])] = &[
    ("kms.ListKeys", &["Keys", "Keys[].KeyId", "Keys[].KeyArn"]),
    ("kms.CreateKey", &["KeyMetadata"]),
    ("kms.DescribeKey", &["KeyMetadata"]),
    (
        "kms.ScheduleKeyDeletion",
        &["KeyId", "KeyState", "PendingWindowInDays"],
    ),
    ("kms.CancelKeyDeletion", &["KeyId"]),
    (
        "kms.GetPublicKey",
        &["KeyId", "PublicKey", "KeySpec", "KeyUsage"],
    ),
    ("kms.GetKeyRotationStatus", &["KeyId", "KeyRotationEnabled"]),
    ("kms.RotateKeyOnDemand", &["KeyId"]),
    ("kms.ListKeyRotations", &["Rotations"]),
    ("kms.GetKeyPolicy", &["Policy", "PolicyName"]),
    ("kms.CreateGrant", &["GrantId", "GrantToken"]),
    ("kms.ListGrants", &["Grants"]),
    ("kms.ListAliases", &["Aliases"]),
    (
        "kms.GetParametersForImport",
        &["KeyId", "ParametersValidTo"],
    ),
    ("kms.ImportKeyMaterial", &["KeyId", "KeyMaterialId"]),
    ("kms.DeleteImportedKeyMaterial", &["KeyId", "KeyMaterialId"]),
    (
        "kms.ReplicateKey",
        &["ReplicaKeyMetadata", "ReplicaPolicy", "ReplicaTags"],
    ),
    ("kms.Encrypt", &["KeyId", "EncryptionAlgorithm"]),
    ("kms.Decrypt", &["KeyId", "EncryptionAlgorithm"]),
    (
        "kms.ReEncrypt",
        &[
            "KeyId",
            "SourceKeyId",
            "SourceEncryptionAlgorithm",
            "DestinationEncryptionAlgorithm",
        ],
    ),
    ("kms.GenerateDataKey", &["KeyId"]),
    ("kms.GenerateDataKeyWithoutPlaintext", &["KeyId"]),
    ("kms.GenerateDataKeyPair", &["KeyId", "KeyPairSpec"]),
    (
        "kms.GenerateDataKeyPairWithoutPlaintext",
        &["KeyId", "KeyPairSpec"],
    ),
    ("kms.Sign", &["KeyId", "SigningAlgorithm"]),
    (
        "kms.Verify",
        &["KeyId", "SignatureValid", "SigningAlgorithm"],
    ),
    ("kms.GenerateMac", &["KeyId", "MacAlgorithm"]),
    ("kms.VerifyMac", &["KeyId", "MacValid", "MacAlgorithm"]),
    (
        "ec2.CreateVolume",
        &[
            "VolumeId",
            "Size",
            "AvailabilityZone",
            "State",
            "CreateTime",
            "Encrypted",
            "VolumeType",
        ],
    ),
    (
        "ec2.DescribeVolumes",
        &["Volumes", "Volumes[].VolumeId", "Volumes[].State"],
    ),
    (
        "ec2.CreateSnapshot",
        &[
            "SnapshotId",
            "VolumeId",
            "State",
            "StartTime",
            "VolumeSize",
            "Encrypted",
            "OwnerId",
        ],
    ),
    (
        "ec2.DescribeSnapshots",
        &["Snapshots", "Snapshots[].SnapshotId", "Snapshots[].State"],
    ),
    ("ec2.CopySnapshot", &["SnapshotId"]),
    ("ec2.GetEbsEncryptionByDefault", &["EbsEncryptionByDefault"]),
    (
        "ec2.EnableEbsEncryptionByDefault",
        &["EbsEncryptionByDefault"],
    ),
    (
        "ec2.DisableEbsEncryptionByDefault",
        &["EbsEncryptionByDefault"],
    ),
    ("ec2.GetEbsDefaultKmsKeyId", &["KmsKeyId"]),
    ("ec2.ModifyEbsDefaultKmsKeyId", &["KmsKeyId"]),
    ("ec2.ResetEbsDefaultKmsKeyId", &["KmsKeyId"]),
    (
        "ebs.ListChangedBlocks",
        &["ChangedBlocks", "BlockSize", "VolumeSize"],
    ),
];

const ACCOUNT: &str = "111122223333";
const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";

// ── The tests ─────────────────────────────────────────────────────────────────────────────

#[test]
fn cli_json_matches_botocore_models() {
    let python = botocore_python();
    let mut t = Cases::new();
    t.scenario();

    let mut failures = Vec::new();

    // The operations the cases cover: exactly CHECKED.
    let covered: BTreeSet<&str> = t.counts.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = CHECKED.iter().copied().collect();
    if covered != expected {
        failures.push(format!(
            "the cases cover other operations than CHECKED: missing {:?}, unexpected {:?}",
            expected.difference(&covered).collect::<Vec<_>>(),
            covered.difference(&expected).collect::<Vec<_>>()
        ));
    }
    // And the model agrees: per service, its operations less those without a case are CHECKED's.
    for svc in ["kms", "ec2", "ebs"] {
        let out = checker(&python)
            .args(["uncovered", svc])
            .arg(&t.cases)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "uncovered {svc}: {}",
            text(&out.stderr)
        );
        let uncovered: BTreeSet<String> = text(&out.stdout).lines().map(str::to_owned).collect();
        let ours: BTreeSet<String> = expected
            .iter()
            .filter_map(|op| op.strip_prefix(&format!("{svc}.")))
            .map(str::to_owned)
            .collect();
        let not_in_model: Vec<_> = ours.intersection(&uncovered).collect();
        if !not_in_model.is_empty() {
            failures.push(format!("{svc}: operations with no case: {not_in_model:?}"));
        }
    }

    // Every leaf command of `cofre --help` is run for a case or exempt, and EXEMPT names only
    // commands that exist: a new command, or one dropped from the scenario, is noticed.
    let mut leaves = BTreeSet::new();
    leaf_commands(&mut Vec::new(), &mut leaves);
    let exempt: BTreeSet<String> = EXEMPT
        .iter()
        .map(|(c, _)| c.split(" (").next().unwrap().to_owned())
        .collect();
    let known: BTreeSet<String> = t.commands.union(&exempt).cloned().collect();
    let unlisted: Vec<_> = leaves.difference(&known).collect();
    let stale: Vec<_> = known.difference(&leaves).collect();
    if !unlisted.is_empty() || !stale.is_empty() {
        failures.push(format!(
            "commands neither checked nor exempt: {unlisted:?}; checked or exempt but not in \
             `cofre --help`: {stale:?}"
        ));
    }

    let subs = t.dir.path().join("substitutes.json");
    let mut table: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for (op, printed, blob) in SUBSTITUTES {
        table.entry(op).or_default().insert(printed, blob);
    }
    fs::write(&subs, serde_json::to_string_pretty(&table).unwrap()).unwrap();
    let always = t.dir.path().join("always.json");
    let table: BTreeMap<&str, &[&str]> = ALWAYS.iter().copied().collect();
    fs::write(&always, serde_json::to_string_pretty(&table).unwrap()).unwrap();

    let out = checker(&python)
        .arg("check")
        .arg(&t.cases)
        .arg("--substitutes")
        .arg(&subs)
        .arg("--always")
        .arg(&always)
        .output()
        .unwrap();
    // How each operation printed its timestamps, for whoever reads the test's output.
    eprint!("{}", text(&out.stderr));
    match out.status.code() {
        Some(0) => {}
        Some(1) => failures.push(format!(
            "{} problem(s) against the botocore models:\n{}",
            text(&out.stdout).lines().count(),
            text(&out.stdout)
        )),
        _ => panic!(
            "botocore_check.py failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        ),
    }
    if !failures.is_empty() {
        // Keep the cases for a look, in the target folder (the temporary home goes).
        let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("botocore-cases");
        let _ = fs::remove_dir_all(&kept);
        fs::create_dir_all(&kept).unwrap();
        for e in fs::read_dir(&t.cases).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), kept.join(e.file_name())).unwrap();
        }
        panic!(
            "{}\n(cases kept in {})",
            failures.join("\n"),
            kept.display()
        );
    }
}

// ── The scenario ──────────────────────────────────────────────────────────────────────────

/// A temporary home, a folder of cases, and what has been run.
struct Cases {
    dir: TempDir,
    home: PathBuf,
    cases: PathBuf,
    /// Cases written per operation.
    counts: BTreeMap<String, usize>,
    /// The commands run for cases, as `key grant create`.
    commands: BTreeSet<String>,
}

impl Cases {
    fn new() -> Cases {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let cases = dir.path().join("cases");
        fs::create_dir(&cases).unwrap();
        Cases {
            dir,
            home,
            cases,
            counts: BTreeMap::new(),
            commands: BTreeSet::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `cofre --output json COMMAND ARGS` in `region`, which must succeed.
    fn run(&self, region: &str, command: &str, args: &[&str]) -> String {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cofre"));
        for v in ENV {
            c.env_remove(v);
        }
        c.env("COFRE_HOME", &self.home)
            .arg("--home")
            .arg(&self.home)
            .args(["--region", region, "--output", "json", "-q"])
            .args(command.split(' '))
            .args(args)
            .stdin(Stdio::null());
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "cofre {command} {args:?} (in {region}) failed: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs a command whose output is the response of `op`, keeps it as a case, and returns it
    /// parsed (null when it printed nothing).
    fn case(&mut self, op: &str, region: &str, command: &str, args: &[&str]) -> Value {
        let out = self.run(region, command, args);
        let n = self.counts.entry(op.to_owned()).or_default();
        *n += 1;
        fs::write(self.cases.join(format!("{op}.{n}.json")), &out).unwrap();
        self.commands.insert(command.to_owned());
        if out.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("cofre {command}: {e}: {out}"))
        }
    }

    /// `case` in us-east-1.
    fn east(&mut self, op: &str, command: &str, args: &[&str]) -> Value {
        self.case(op, EAST, command, args)
    }

    /// Every command that prints an AWS response, in an order that makes each possible.
    fn scenario(&mut self) {
        self.run(EAST, "init", &["--account", ACCOUNT]);
        let made = self.east("iam.CreateAccessKey", "access-key create", &[]);
        self.east("iam.ListAccessKeys", "access-key list", &[]);
        let id = made["AccessKey"]["AccessKeyId"]
            .as_str()
            .unwrap()
            .to_owned();
        self.east("iam.DeleteAccessKey", "access-key delete", &[&id]);
        let plain = self.path("plain.bin");
        fs::write(
            &plain,
            b"a message of some bytes, for KMS to encrypt, sign and MAC",
        )
        .unwrap();
        let plain = s(&plain).to_owned();

        // Keys of every kind.
        let key_id = |v: &Value| v["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
        let sym = key_id(&self.east(
            "kms.CreateKey",
            "key create",
            &[
                "--alias",
                "alias/sym",
                "--description",
                "disks",
                "--tag",
                "team=ops",
            ],
        ));
        let mut made = |spec: &str, usage: &str| {
            key_id(&self.east(
                "kms.CreateKey",
                "key create",
                &["--spec", spec, "--usage", usage],
            ))
        };
        let rsa = made("RSA_2048", "ENCRYPT_DECRYPT");
        let ecc = made("ECC_NIST_P256", "SIGN_VERIFY");
        let hmac = made("HMAC_256", "GENERATE_VERIFY_MAC");
        let agree = made("ECC_NIST_P384", "KEY_AGREEMENT");
        let mrk = key_id(&self.east("kms.CreateKey", "key create", &["--multi-region"]));
        let ext = key_id(&self.east("kms.CreateKey", "key create", &["--origin", "EXTERNAL"]));
        for k in [&sym, &rsa, &ecc, &hmac, &agree, &mrk, &ext, "alias/aws/ebs"] {
            self.east("kms.DescribeKey", "key describe", &[k]);
        }
        self.east("kms.ListKeys", "key list", &[]);

        // State, rotation, deletion.
        self.east("kms.DisableKey", "key disable", &[&rsa]);
        self.east("kms.EnableKey", "key enable", &[&rsa]);
        self.east(
            "kms.EnableKeyRotation",
            "key rotation enable",
            &[&sym, "--period-days", "180"],
        );
        self.east("kms.GetKeyRotationStatus", "key rotation status", &[&sym]);
        self.east("kms.DisableKeyRotation", "key rotation disable", &[&sym]);
        self.east("kms.GetKeyRotationStatus", "key rotation status", &[&sym]);
        self.east("kms.RotateKeyOnDemand", "key rotate", &[&sym]);
        self.east("kms.ListKeyRotations", "key rotations", &[&sym]);

        // Policy.
        let policy = self.east("kms.GetKeyPolicy", "key policy get", &[&sym]);
        let policy_file = self.path("policy.json");
        fs::write(&policy_file, policy["Policy"].as_str().unwrap()).unwrap();
        self.east(
            "kms.PutKeyPolicy",
            "key policy put",
            &[&sym, s(&policy_file)],
        );

        // Grants.
        let app = format!("arn:aws:iam::{ACCOUNT}:role/app");
        let ops = format!("arn:aws:iam::{ACCOUNT}:role/ops");
        let grant = |v: &Value| v["GrantId"].as_str().unwrap().to_owned();
        let g1 = grant(&self.east(
            "kms.CreateGrant",
            "key grant create",
            &[
                &sym,
                "--grantee",
                &app,
                "--operations",
                "Encrypt,Decrypt",
                "--retiring-principal",
                &ops,
                "--name",
                "app",
            ],
        ));
        let g2 = grant(&self.east(
            "kms.CreateGrant",
            "key grant create",
            &[
                &sym,
                "--grantee",
                &app,
                "--operations",
                "Decrypt",
                "--context-subset",
                "app=web",
            ],
        ));
        self.east("kms.ListGrants", "key grant list", &[&sym]);
        self.east(
            "kms.RetireGrant",
            "key grant retire",
            &[&sym, &g1, "--principal", &ops],
        );
        self.east("kms.RevokeGrant", "key grant revoke", &[&sym, &g2]);

        // Aliases.
        self.east("kms.CreateAlias", "alias create", &["alias/two", &sym]);
        self.east("kms.UpdateAlias", "alias update", &["alias/two", &mrk]);
        self.east("kms.ListAliases", "alias list", &[]);
        self.east("kms.DeleteAlias", "alias delete", &["alias/two"]);

        // Imported key material: wrapped with openssl, as a user would.
        let params = self.path("params");
        self.east(
            "kms.GetParametersForImport",
            "key import-params",
            &[&ext, "--out-dir", s(&params)],
        );
        let wrap = |name: &str| {
            let material = self.path(&format!("{name}.bin"));
            let wrapped = self.path(&format!("{name}.enc"));
            openssl(&["rand", "-out", s(&material), "32"]);
            openssl(&[
                "pkeyutl",
                "-encrypt",
                "-pubin",
                "-keyform",
                "DER",
                "-inkey",
                s(&params.join("WrappingPublicKey.bin")),
                "-in",
                s(&material),
                "-out",
                s(&wrapped),
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                "rsa_oaep_md:sha256",
                "-pkeyopt",
                "rsa_mgf1_md:sha256",
            ]);
            wrapped
        };
        let wrapped = wrap("material");
        // New material to rotate to, below.
        let next = wrap("next");
        let token = params.join("ImportToken.bin");
        self.east(
            "kms.ImportKeyMaterial",
            "key import",
            &[
                &ext,
                "--material",
                s(&wrapped),
                "--token",
                s(&token),
                "--valid-to",
                &days_ahead(30),
            ],
        );
        self.east("kms.DescribeKey", "key describe", &[&ext]);
        // New material to rotate to: listed pending rotation, then current.
        self.east(
            "kms.ImportKeyMaterial",
            "key import",
            &[
                &ext,
                "--material",
                s(&next),
                "--token",
                s(&token),
                "--no-expiry",
                "--import-type",
                "NEW_KEY_MATERIAL",
                "--description",
                "second material",
            ],
        );
        let all = ["--include-key-material", "ALL_KEY_MATERIAL"];
        self.east(
            "kms.ListKeyRotations",
            "key rotations",
            &[&[ext.as_str()][..], &all].concat(),
        );
        self.east("kms.RotateKeyOnDemand", "key rotate", &[&ext]);
        self.east(
            "kms.ListKeyRotations",
            "key rotations",
            &[&[ext.as_str()][..], &all].concat(),
        );
        self.east(
            "kms.ListKeyRotations",
            "key rotations",
            &[&[sym.as_str()][..], &all].concat(),
        );
        self.east(
            "kms.DeleteImportedKeyMaterial",
            "key delete-material",
            &[&ext],
        );

        // Multi-Region.
        self.east("kms.ReplicateKey", "key replicate", &[&mrk, "--to", WEST]);
        self.case("kms.DescribeKey", WEST, "key describe", &[&mrk]);
        self.east(
            "kms.UpdatePrimaryRegion",
            "key update-primary-region",
            &[&mrk, "--to", WEST],
        );
        self.east("kms.DescribeKey", "key describe", &[&mrk]);

        // Public keys: to stdout (JSON) and to a file.
        self.east("kms.GetPublicKey", "key public-key", &[&rsa]);
        self.east("kms.GetPublicKey", "key public-key", &[&agree]);
        let ecc_pem = self.path("ecc.pem");
        self.east(
            "kms.GetPublicKey",
            "key public-key",
            &[&ecc, "-o", s(&ecc_pem)],
        );

        // Data: blobs in the JSON (base64), and sent to files instead.
        let ct = self.path("ct.bin");
        self.east(
            "kms.Encrypt",
            "kms encrypt",
            &[&sym, "--plaintext-file", &plain, "-c", "app=web"],
        );
        self.east(
            "kms.Encrypt",
            "kms encrypt",
            &[
                &sym,
                "--plaintext-file",
                &plain,
                "-c",
                "app=web",
                "-o",
                s(&ct),
            ],
        );
        self.east(
            "kms.Decrypt",
            "kms decrypt",
            &[
                "--ciphertext-file",
                s(&ct),
                "-c",
                "app=web",
                "-o",
                s(&self.path("pt1.bin")),
            ],
        );
        self.east(
            "kms.ReEncrypt",
            "kms re-encrypt",
            &[
                "--ciphertext-file",
                s(&ct),
                "--source-context",
                "app=web",
                "--destination-key",
                &mrk,
            ],
        );
        let rsa_ct = self.path("rsa-ct.bin");
        self.east(
            "kms.Encrypt",
            "kms encrypt",
            &[
                &rsa,
                "--plaintext-file",
                &plain,
                "--algorithm",
                "RSAES_OAEP_SHA_256",
                "-o",
                s(&rsa_ct),
            ],
        );
        self.east(
            "kms.Decrypt",
            "kms decrypt",
            &[
                "--ciphertext-file",
                s(&rsa_ct),
                "--key",
                &rsa,
                "--algorithm",
                "RSAES_OAEP_SHA_256",
                "-o",
                s(&self.path("pt2.bin")),
            ],
        );
        self.east(
            "kms.GenerateDataKey",
            "kms generate-data-key",
            &[&sym, "--plaintext-out", s(&self.path("dk.bin"))],
        );
        self.east(
            "kms.GenerateDataKeyWithoutPlaintext",
            "kms generate-data-key",
            &[&sym, "--key-spec", "AES_128", "--without-plaintext"],
        );
        self.east(
            "kms.GenerateDataKeyPair",
            "kms generate-data-key-pair",
            &[
                &sym,
                "--pair-spec",
                "RSA_2048",
                "--private-key-out",
                s(&self.path("pk.der")),
            ],
        );
        self.east(
            "kms.GenerateDataKeyPairWithoutPlaintext",
            "kms generate-data-key-pair",
            &[&sym, "--pair-spec", "ECC_NIST_P256", "--without-plaintext"],
        );
        self.east("kms.GenerateRandom", "kms generate-random", &["32"]);

        let sig = self.path("sig.bin");
        let sign = [
            "--message-file",
            plain.as_str(),
            "--algorithm",
            "ECDSA_SHA_256",
        ];
        self.east(
            "kms.Sign",
            "kms sign",
            &[&[ecc.as_str()][..], &sign].concat(),
        );
        self.east(
            "kms.Sign",
            "kms sign",
            &[&[ecc.as_str()][..], &sign, &["-o", s(&sig)]].concat(),
        );
        self.east(
            "kms.Verify",
            "kms verify",
            &[&[ecc.as_str()][..], &sign, &["--signature-file", s(&sig)]].concat(),
        );
        let file_sig = self.path("file.sig");
        self.east("kms.Sign", "sign", &[&ecc, &plain, "-o", s(&file_sig)]);
        self.east("kms.Verify", "verify", &[&ecc, &plain, s(&file_sig)]);

        let mac = self.path("mac.bin");
        let mac_args = [
            "--message-file",
            plain.as_str(),
            "--algorithm",
            "HMAC_SHA_256",
        ];
        self.east(
            "kms.GenerateMac",
            "kms generate-mac",
            &[&[hmac.as_str()][..], &mac_args].concat(),
        );
        self.east(
            "kms.GenerateMac",
            "kms generate-mac",
            &[&[hmac.as_str()][..], &mac_args, &["-o", s(&mac)]].concat(),
        );
        self.east(
            "kms.VerifyMac",
            "kms verify-mac",
            &[&[hmac.as_str()][..], &mac_args, &["--mac-file", s(&mac)]].concat(),
        );

        // Deletion: a plain key, and a multi-Region primary with a replica (PendingReplicaDeletion).
        self.east(
            "kms.ScheduleKeyDeletion",
            "key schedule-deletion",
            &[&hmac, "--days", "7"],
        );
        self.east("kms.CancelKeyDeletion", "key cancel-deletion", &[&hmac]);
        self.case(
            "kms.ScheduleKeyDeletion",
            WEST,
            "key schedule-deletion",
            &[&mrk],
        );
        self.case(
            "kms.CancelKeyDeletion",
            WEST,
            "key cancel-deletion",
            &[&mrk],
        );

        // EBS settings.
        let setting = "ebs default-encryption";
        self.east("ec2.GetEbsEncryptionByDefault", setting, &["status"]);
        self.east("ec2.EnableEbsEncryptionByDefault", setting, &["enable"]);
        self.east("ec2.DisableEbsEncryptionByDefault", setting, &["disable"]);
        self.east("ec2.GetEbsDefaultKmsKeyId", "ebs default-key get", &[]);
        self.east(
            "ec2.ModifyEbsDefaultKmsKeyId",
            "ebs default-key set",
            &[&sym],
        );
        self.east("ec2.ResetEbsDefaultKmsKeyId", "ebs default-key reset", &[]);

        // Volumes and snapshots.
        let image = self.path("disk.img");
        fs::write(
            &image,
            (0..1u32 << 20).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
        )
        .unwrap();
        let vol = self.east(
            "ec2.CreateVolume",
            "volume create",
            &[
                "--from-image",
                s(&image),
                "--encrypted",
                "--kms-key",
                "alias/sym",
            ],
        )["VolumeId"]
            .as_str()
            .unwrap()
            .to_owned();
        let empty = self.east("ec2.CreateVolume", "volume create", &["--size", "1MiB"])["VolumeId"]
            .as_str()
            .unwrap()
            .to_owned();
        self.east("ec2.DescribeVolumes", "volume describe", &[&vol]);
        self.east("ec2.DescribeVolumes", "volume list", &[]);
        let snap = |v: &Value| v["SnapshotId"].as_str().unwrap().to_owned();
        let s1 = snap(&self.east(
            "ec2.CreateSnapshot",
            "snapshot create",
            &[&vol, "--description", "first"],
        ));
        self.run(EAST, "volume write", &[&vol, "--offset", "0", &plain]);
        let s2 = snap(&self.east("ec2.CreateSnapshot", "snapshot create", &[&vol]));
        self.east("ebs.ListChangedBlocks", "snapshot diff", &[&s1, &s2]);
        self.east("ec2.DescribeSnapshots", "snapshot describe", &[&s1]);
        self.east("ec2.DescribeSnapshots", "snapshot list", &[]);
        self.case(
            "ec2.CopySnapshot",
            WEST,
            "snapshot copy",
            &[&s1, "--source-region", EAST],
        );
        self.east("ec2.CreateVolume", "volume create", &["--snapshot", &s2]);
        self.east("ec2.DeleteSnapshot", "snapshot delete", &[&s2]);
        self.east("ec2.DeleteVolume", "volume delete", &[&empty]);
    }
}

/// The operations cofre lets another account's principal make are exactly those AWS's model
/// documents "Cross-account use: Yes" (among the operations cofre serves), and every other
/// operation that names a key is documented "No" (issue 19). tests/kms_semantics.rs makes each
/// operation as such a principal.
#[test]
fn cross_account_operations_are_those_botocore_documents() {
    let python = botocore_python();
    let out = checker(&python)
        .arg("cross-account")
        .output()
        .expect("run botocore_check.py");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let column: BTreeMap<String, String> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(op, v)| (op.to_owned(), v.to_owned()))
        .collect();
    // Operations of the model cofre does not serve (custom key stores, ML-KEM, tags, …).
    const NOT_SERVED: &[&str] = &["Decapsulate", "Encapsulate"];
    for op in cofre::kms::CROSS_ACCOUNT_OPERATIONS {
        assert_eq!(
            column.get(*op).map(String::as_str),
            Some("Yes"),
            "cofre lets another account make {op}"
        );
    }
    let yes: BTreeSet<&str> = column
        .iter()
        .filter(|(_, v)| *v == "Yes")
        .map(|(op, _)| op.as_str())
        .filter(|op| !NOT_SERVED.contains(op))
        .collect();
    let ours: BTreeSet<&str> = cofre::kms::CROSS_ACCOUNT_OPERATIONS
        .iter()
        .copied()
        .collect();
    assert_eq!(yes, ours, "the model's cross-account operations");
    assert!(column.len() > 50, "{column:?}");
}

// ── Python and botocore ───────────────────────────────────────────────────────────────────

/// A python that can import botocore: `COFRE_BOTOCORE_PYTHON`, else the target folder's venv,
/// made here the first time.
fn botocore_python() -> PathBuf {
    common::venv_python(
        "botocore-venv",
        &[BOTOCORE],
        "import botocore.session",
        "COFRE_BOTOCORE_PYTHON",
    )
}

/// The checker, run by `python`.
fn checker(python: &Path) -> Command {
    let mut c = Command::new(python);
    c.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/botocore_check.py"
    ));
    c
}

// ── Helpers ───────────────────────────────────────────────────────────────────────────────

/// The leaf commands under `path`, from `cofre PATH --help`, as `key grant create`.
fn leaf_commands(path: &mut Vec<String>, out: &mut BTreeSet<String>) {
    let help = Command::new(env!("CARGO_BIN_EXE_cofre"))
        .args(path.iter())
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success(), "cofre {path:?} --help failed");
    let help = text(&help.stdout);
    let subs: Vec<String> = help
        .lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect();
    if subs.is_empty() {
        out.insert(path.join(" "));
    }
    for sub in subs {
        path.push(sub);
        leaf_commands(path, out);
        path.pop();
    }
}

/// Runs the openssl command-line tool (installed by .ci/run for tests/import.rs too).
fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the botocore test wraps key material with the openssl command-line tool: install it (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        text(&out.stderr)
    );
}

/// RFC 3339 midnight UTC `days` from now.
fn days_ahead(days: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let z = (now / 86_400 + days) as i64 + 719_468;
    // Howard Hinnant's civil_from_days.
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T00:00:00Z")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
