//! The command line, as clap derive types. Nothing here does I/O.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Local key management and envelope encryption, modelled on AWS KMS and EBS.
#[derive(Debug, Parser)]
#[command(name = "cofre", version, about, max_term_width = 100)]
pub struct Cli {
    /// Home folder of the keyring [env: COFRE_HOME] [default: $XDG_DATA_HOME/cofre]
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Region [env: COFRE_REGION, AWS_REGION, AWS_DEFAULT_REGION] [default: us-east-1]
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// The caller, as an IAM ARN (arn:aws:iam::ACCOUNT:root|user/NAME|role/NAME); with
    /// `audit log`, the caller to show [env: COFRE_PRINCIPAL] [default: the account root]
    #[arg(long, global = true, value_name = "ARN")]
    pub principal: Option<String>,
    /// Output format for results
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// No progress bar
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable text
    Text,
    /// KMS-shaped JSON
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the home (done automatically on first use); choose the account id
    Init {
        /// 12-digit account id [default: random]
        #[arg(long)]
        account: Option<String>,
    },
    /// Manage master keys. KEY is a key id, key ARN, alias (alias/NAME) or alias ARN; where KMS
    /// takes only an id or ARN, an alias is looked up first (a DescribeKey)
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage aliases
    #[command(subcommand)]
    Alias(AliasCommand),
    /// Encrypt a file or stream under one or more keys
    Encrypt(EncryptArgs),
    /// Decrypt a file or stream (the key comes from the header)
    Decrypt(DecryptArgs),
    /// Re-wrap a file's data key under other keys, without re-encrypting the data
    Rewrap(RewrapArgs),
    /// The KMS data operations for scripts: encrypt, decrypt, re-encrypt, data keys, random,
    /// sign, verify, MACs
    #[command(subcommand)]
    Kms(KmsCommand),
    /// Sign a file of any size (its digest) with a SIGN_VERIFY key
    Sign {
        /// Key id, key ARN, alias name or alias ARN
        key: String,
        /// The file to sign (- for stdin)
        file: PathBuf,
        /// The signature file
        #[arg(short = 'o', long = "out", value_name = "SIG")]
        out: PathBuf,
        /// [default: RSASSA_PSS_SHA_256 for RSA keys; the curve's ECDSA for ECC keys]
        #[arg(long, value_enum)]
        algorithm: Option<crate::kms::SigningAlgorithm>,
        /// Overwrite existing output files
        #[arg(short, long)]
        force: bool,
    },
    /// Print a file's header; needs no key
    Inspect {
        /// The encrypted file (- for stdin)
        input: PathBuf,
    },
    /// EBS volumes: create from an image or a snapshot, read, write, export
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// EBS snapshots: create, diff, copy between regions
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// EBS settings of a region: encryption by default and the default key
    #[command(subcommand)]
    Ebs(EbsCommand),
    /// Where region folders live
    #[command(subcommand)]
    Region(RegionCommand),
    /// Identity policies of the account's users and roles (what IAM would give; see
    /// `principal policy put --help`)
    #[command(subcommand)]
    Principal(PrincipalCommand),
    /// Usage and cost at KMS prices for a month, from the audit trails and key records
    Usage {
        /// The month, YYYY-MM [default: this month]
        #[arg(long, value_name = "YYYY-MM")]
        month: Option<String>,
        /// Every region of the home (the account's bill; the free requests are shared)
        #[arg(long)]
        all_regions: bool,
    },
    /// The audit trail: every request, chained and sealed
    #[command(subcommand)]
    Audit(AuditCommand),
    /// With no arguments: check the region's EBS store (every block, map and record). With
    /// `KEY FILE SIG`, or `--pubkey PEM FILE SIG` (offline, no keyring): check a file's
    /// signature. Exits 4 if anything is wrong
    #[command(
        override_usage = "cofre verify\n       cofre verify KEY FILE SIG [--algorithm ALG]\n       cofre verify --pubkey FILE.pem FILE SIG [--algorithm ALG]"
    )]
    Verify {
        /// Nothing (EBS store), KEY FILE SIG, or (with --pubkey) FILE SIG
        #[arg(value_name = "ARGS", num_args = 0..=3)]
        args: Vec<PathBuf>,
        /// A public key file (PEM or DER), e.g. from `cofre key public-key`; needs no keyring
        #[arg(long, value_name = "FILE")]
        pubkey: Option<PathBuf>,
        /// The signing algorithm [default: as `cofre sign`]
        #[arg(long, value_enum)]
        algorithm: Option<crate::kms::SigningAlgorithm>,
    },
    /// Remove EBS blocks and maps that nothing uses (left by interrupted commands)
    Gc,
    /// Measure throughput on this machine: in memory, files, and a plain copy as the floor
    Bench {
        /// Bytes of test data
        #[arg(long, default_value = "256MiB", value_parser = parse_size)]
        size: u64,
        /// Thread counts to try, comma-separated [default: 1 and all cores]
        #[arg(long, value_delimiter = ',')]
        threads: Vec<usize>,
        /// Chunk sizes to try, comma-separated
        #[arg(long, value_delimiter = ',', default_value = "64KiB,1MiB,4MiB", value_parser = parse_size)]
        chunk_sizes: Vec<u64>,
        /// Crypto backend: aws-lc, rustcrypto or all (those built in)
        #[arg(long, default_value = "all")]
        backend: String,
        /// Folder for the test files [default: /dev/shm if present, else temp]
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the results as JSON
        #[arg(long)]
        json: bool,
        /// Also draw the results as an SVG chart in this file
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
        /// Replace the plot file if it exists
        #[arg(short, long)]
        force: bool,
    },
    /// Serve the AWS KMS API over HTTP (SigV4) for the SDKs, the AWS CLI and the Encryption
    /// SDK, until SIGINT or SIGTERM
    Serve {
        /// Address and port to listen on (a non-loopback address needs TLS or
        /// --allow-remote-http)
        #[arg(long, value_name = "ADDR:PORT", default_value = crate::server::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        /// PEM certificate chain for HTTPS (with --tls-key)
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for HTTPS (with --tls-cert)
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Serve plain HTTP on an address other machines can reach (keys and plaintexts cross
        /// the network unencrypted)
        #[arg(long)]
        allow_remote_http: bool,
        /// Worker threads [default: one per core]
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Access keys that sign requests to `cofre serve`, each for one principal
    #[command(subcommand, name = "access-key")]
    AccessKey(AccessKeyCommand),
    /// Run the main job on a throwaway home: keys in two regions, a disk image encrypted,
    /// decrypted, compared and re-wrapped into the second region
    Demo {
        /// Size of the generated disk image
        #[arg(long, default_value = "256MiB", value_parser = parse_size)]
        size: u64,
        /// Folder for the throwaway home and image [default: /dev/shm if present, else temp]
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print a shell completion script: `source <(cofre completions bash)`, or save it where
    /// the shell looks (zsh: a folder of $fpath as _cofre; fish: ~/.config/fish/completions)
    Completions {
        /// The shell to print completions for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print cofre's man page (roff): `cofre man > cofre.1; man ./cofre.1`
    Man,
}

#[derive(Debug, Subcommand)]
pub enum AccessKeyCommand {
    /// Make an access key for --principal (default: the account root); its secret is printed
    /// this once
    Create,
    /// List the access keys (no secrets)
    List,
    /// Delete an access key: requests signed with it are refused from then on
    Delete {
        /// The access key id (AKIA…)
        access_key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a symmetric key; prints its id
    Create {
        /// Also create this alias (alias/NAME) for the key
        #[arg(long)]
        alias: Option<String>,
        /// Description
        #[arg(long, default_value = "")]
        description: String,
        /// Tag (repeatable)
        #[arg(long = "tag", value_name = "K=V")]
        tags: Vec<String>,
        /// A multi-Region primary key (mrk- id) that can be replicated to other regions
        #[arg(long)]
        multi_region: bool,
        /// Where the key material comes from: AWS_KMS (made by cofre) or EXTERNAL (imported
        /// with `key import-params` and `key import`)
        #[arg(long, value_enum, default_value = "AWS_KMS")]
        origin: crate::keyring::Origin,
        /// Key policy document (JSON) [default: the default key policy]
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Accept a policy that would stop you from changing it later
        #[arg(long)]
        bypass_lockout_check: bool,
        /// Key spec: SYMMETRIC_DEFAULT, RSA_2048|3072|4096, ECC_NIST_P256|P384|P521,
        /// ECC_SECG_P256K1, HMAC_224|256|384|512
        #[arg(long, value_enum, value_name = "SPEC", hide_possible_values = true)]
        spec: Option<crate::keyring::KeySpec>,
        /// Key usage: ENCRYPT_DECRYPT (the default), SIGN_VERIFY, GENERATE_VERIFY_MAC (HMAC
        /// keys), KEY_AGREEMENT (ECDH)
        #[arg(long, value_enum, value_name = "USAGE")]
        usage: Option<crate::keyring::KeyUsage>,
    },
    /// Write an asymmetric key's public key (SubjectPublicKeyInfo), for use anywhere offline
    PublicKey {
        /// Key id, key ARN, alias name or alias ARN
        key: String,
        /// Output file [default: stdout]
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
        /// pem (as `openssl pkey -pubin` reads by default) or der
        #[arg(long, value_enum, default_value = "pem")]
        format: KeyFormat,
        /// Overwrite existing output files
        #[arg(short, long)]
        force: bool,
    },
    /// The key policy: get or put
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Grants: create, list, retire, revoke
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Write the wrapping public key (DER) and an import token (valid 24 hours) for a key
    /// created with --origin EXTERNAL
    ImportParams {
        /// Key id, key ARN or alias (looked up first)
        key: String,
        /// The RSA wrapping key to make for the import
        #[arg(long, value_enum, default_value = "RSA_2048")]
        wrapping_spec: crate::kms::WrappingKeySpec,
        /// How the key material will be wrapped (the algorithm `key import` expects)
        #[arg(long, value_enum, default_value = "RSAES_OAEP_SHA_256")]
        wrapping_algorithm: crate::kms::WrappingAlgorithm,
        /// Folder for WrappingPublicKey.bin and ImportToken.bin
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
        /// Overwrite existing output files
        #[arg(short, long)]
        force: bool,
    },
    /// Import key material wrapped with the public key from `key import-params`
    #[command(group(clap::ArgGroup::new("expiry").required(true).args(["valid_to", "no_expiry"])))]
    Import {
        /// Key id, key ARN or alias (looked up first)
        key: String,
        /// The wrapped key material
        #[arg(long, value_name = "FILE")]
        material: PathBuf,
        /// The import token
        #[arg(long, value_name = "FILE")]
        token: PathBuf,
        /// When the material expires (RFC 3339, at most 365 days ahead)
        #[arg(long, value_name = "TIME")]
        valid_to: Option<String>,
        /// The material never expires
        #[arg(long)]
        no_expiry: bool,
        /// NEW_KEY_MATERIAL (the default for the key's first material; later, material to
        /// rotate to with `key rotate`) or EXISTING_KEY_MATERIAL (the default after: material
        /// the key had)
        #[arg(long, value_enum)]
        import_type: Option<crate::kms::ImportType>,
        /// With EXISTING_KEY_MATERIAL: the id the material must have
        #[arg(long, value_name = "ID")]
        key_material_id: Option<String>,
        /// A description of the material (letters, digits, spaces and : / _ . -)
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// Delete imported key material now; the key waits in PendingImport for the same
    /// material (material pending rotation just goes)
    DeleteMaterial {
        /// Key id, key ARN or alias (looked up first)
        key: String,
        /// Which material [default: the current]
        #[arg(long, value_name = "ID")]
        key_material_id: Option<String>,
    },
    /// Copy a multi-Region key into another region: same id, same material, every version
    Replicate {
        /// Key id, key ARN or alias (looked up first) of the primary
        key: String,
        /// The region for the replica
        #[arg(long, value_name = "REGION")]
        to: String,
    },
    /// Make the replica in another region the primary of a multi-Region key
    UpdatePrimaryRegion {
        /// Key id, key ARN or alias (looked up first) of the current primary
        key: String,
        /// The region of the replica to promote
        #[arg(long, value_name = "REGION")]
        to: String,
    },
    /// List the region's keys (one page at a time with --max-items / --starting-token)
    List {
        #[command(flatten)]
        paging: Paging,
    },
    /// Show a key's metadata
    Describe {
        /// Key id, key ARN, alias name or alias ARN
        key: String,
    },
    /// Enable a key
    Enable {
        /// Key id, key ARN or alias (looked up first)
        key: String,
    },
    /// Disable a key: it refuses to encrypt and decrypt until enabled
    Disable {
        /// Key id, key ARN or alias (looked up first)
        key: String,
        /// Disable it even though volumes or snapshots in the region depend on it
        #[arg(short, long)]
        force: bool,
    },
    /// Automatic rotation: enable, disable, status
    #[command(subcommand)]
    Rotation(RotationCommand),
    /// Rotate a key now (on demand; at most 25 times per key)
    Rotate {
        /// Key id, key ARN or alias (looked up first)
        key: String,
    },
    /// List a key's material versions: id, date, how it came, CURRENT or not
    Rotations {
        /// Key id, key ARN or alias (looked up first)
        key: String,
        /// ROTATIONS_ONLY (as KMS by default) or ALL_KEY_MATERIAL (the original material too)
        #[arg(long, value_enum, default_value = "ROTATIONS_ONLY")]
        include_key_material: IncludeKeyMaterial,
    },
    /// Which material versions of a key protect which files (found under --scan folders)
    UsageReport {
        /// Key id, key ARN or alias (looked up first)
        key: String,
        /// A folder to search for cofre files, recursively (repeatable)
        #[arg(long, value_name = "DIR")]
        scan: Vec<PathBuf>,
    },
    /// Schedule a key's deletion: unusable at once, destroyed after the waiting period
    ScheduleDeletion {
        /// Key id, key ARN or alias (looked up first)
        key: String,
        /// Waiting period, 7 to 30 days
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Schedule it even though volumes or snapshots in the region depend on it
        #[arg(short, long)]
        force: bool,
    },
    /// Cancel a scheduled deletion; the key comes back Disabled
    CancelDeletion {
        /// Key id, key ARN or alias (looked up first)
        key: String,
    },
}

/// How a public key is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyFormat {
    Pem,
    Der,
}

/// Where a binary result goes: a file, else stdout (raw bytes; base64 in JSON output).
#[derive(Debug, Args)]
pub struct BinaryOut {
    /// Write the result to FILE [default: stdout; base64 in --output json]
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace the output file if it exists
    #[arg(short, long)]
    pub force: bool,
}

/// The KMS data operations, for scripts (KMS limits apply: messages and plaintexts of at most
/// 4096 bytes)
#[derive(Debug, Subcommand)]
pub enum KmsCommand {
    /// Encrypt up to 4096 bytes under a symmetric key, or up to the OAEP limit under an RSA key
    Encrypt {
        /// Key id, key ARN, alias name or alias ARN
        key: String,
        /// File holding the plaintext
        #[arg(long, value_name = "FILE")]
        plaintext_file: PathBuf,
        /// Encryption context pair (repeatable; symmetric keys only)
        #[arg(short = 'c', long = "context", value_name = "K=V")]
        context: Vec<String>,
        /// Encryption algorithm: SYMMETRIC_DEFAULT, or an RSAES_OAEP_* for an RSA key
        #[arg(long, value_enum, default_value = "SYMMETRIC_DEFAULT")]
        algorithm: crate::kms::EncryptionAlgorithm,
        #[command(flatten)]
        out: BinaryOut,
        #[command(flatten)]
        tokens: GrantTokens,
    },
    /// Decrypt a ciphertext blob (symmetric blobs name their key; RSA needs --key and
    /// --algorithm); the plaintext goes to -o FILE or stdout
    Decrypt {
        /// File holding the ciphertext blob
        #[arg(long, value_name = "FILE")]
        ciphertext_file: PathBuf,
        /// The key (must match the blob's, for symmetric ciphertexts)
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        /// Encryption context the ciphertext was made with (repeatable)
        #[arg(short = 'c', long = "context", value_name = "K=V")]
        context: Vec<String>,
        /// Encryption algorithm the ciphertext was made with
        #[arg(long, value_enum, default_value = "SYMMETRIC_DEFAULT")]
        algorithm: crate::kms::EncryptionAlgorithm,
        #[command(flatten)]
        out: BinaryOut,
        #[command(flatten)]
        tokens: GrantTokens,
    },
    /// Decrypt under one key and encrypt under another, inside cofre
    ReEncrypt {
        /// File holding the ciphertext blob
        #[arg(long, value_name = "FILE")]
        ciphertext_file: PathBuf,
        /// Key to encrypt the plaintext under again
        #[arg(long, value_name = "KEY")]
        destination_key: String,
        /// Key the ciphertext is under (needed for an RSA key)
        #[arg(long, value_name = "KEY")]
        source_key: Option<String>,
        /// Encryption context the ciphertext was made with (repeatable)
        #[arg(long = "source-context", value_name = "K=V")]
        source_context: Vec<String>,
        /// Encryption context of the new ciphertext (repeatable)
        #[arg(long = "destination-context", value_name = "K=V")]
        destination_context: Vec<String>,
        /// Encryption algorithm the ciphertext was made with
        #[arg(long, value_enum, default_value = "SYMMETRIC_DEFAULT")]
        source_algorithm: crate::kms::EncryptionAlgorithm,
        /// Encryption algorithm of the new ciphertext
        #[arg(long, value_enum, default_value = "SYMMETRIC_DEFAULT")]
        destination_algorithm: crate::kms::EncryptionAlgorithm,
        #[command(flatten)]
        out: BinaryOut,
        #[command(flatten)]
        tokens: GrantTokens,
    },
    /// A data key: random bytes, and the same encrypted under KEY
    #[command(group(clap::ArgGroup::new("length").args(["bytes", "key_spec"])))]
    GenerateDataKey {
        /// Symmetric key to wrap the data key under
        key: String,
        /// Length in bytes, 1 to 1024
        #[arg(long)]
        bytes: Option<usize>,
        /// AES_256 (32 bytes) or AES_128 (16 bytes). KMS requires a KeySpec or NumberOfBytes:
        /// with neither --key-spec nor --bytes, the CLI asks for AES_256
        #[arg(long, value_enum)]
        key_spec: Option<crate::kms::DataKeySpec>,
        /// Encryption context bound to the wrapped data key (repeatable)
        #[arg(short = 'c', long = "context", value_name = "K=V")]
        context: Vec<String>,
        /// Only the encrypted copy (GenerateDataKeyWithoutPlaintext)
        #[arg(long)]
        without_plaintext: bool,
        /// File for the encrypted data key [default: stdout; base64 in --output json]
        #[arg(long, value_name = "FILE")]
        ciphertext_out: Option<PathBuf>,
        /// File (mode 0600) for the plaintext data key; never printed
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "without_plaintext"
        )]
        plaintext_out: Option<PathBuf>,
        /// Overwrite existing output files
        #[arg(short, long)]
        force: bool,
        #[command(flatten)]
        tokens: GrantTokens,
    },
    /// A key pair whose private key is encrypted under KEY
    GenerateDataKeyPair {
        /// Symmetric key to wrap the private key under
        key: String,
        /// The kind of key pair (RSA or ECC)
        #[arg(long, value_enum)]
        pair_spec: crate::kms::DataKeyPairSpec,
        /// Encryption context bound to the wrapped private key (repeatable)
        #[arg(short = 'c', long = "context", value_name = "K=V")]
        context: Vec<String>,
        /// Only the encrypted private key (GenerateDataKeyPairWithoutPlaintext)
        #[arg(long)]
        without_plaintext: bool,
        /// File for the public key, DER [default: base64 in the output]
        #[arg(long, value_name = "FILE")]
        public_key_out: Option<PathBuf>,
        /// File for the encrypted private key [default: base64 in the output]
        #[arg(long, value_name = "FILE")]
        ciphertext_out: Option<PathBuf>,
        /// File (mode 0600) for the private key, PKCS#8 DER; never printed
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "without_plaintext"
        )]
        private_key_out: Option<PathBuf>,
        /// Overwrite existing output files
        #[arg(short, long)]
        force: bool,
        #[command(flatten)]
        tokens: GrantTokens,
    },
    /// N random bytes (1 to 1024)
    GenerateRandom {
        /// How many random bytes (1 to 1024)
        bytes: usize,
        #[command(flatten)]
        out: BinaryOut,
    },
    /// Sign a message (RAW, at most 4096 bytes) or a digest (DIGEST) with a SIGN_VERIFY key
    Sign {
        /// Asymmetric SIGN_VERIFY key to sign with
        key: String,
        /// File holding the message, or its digest with --message-type DIGEST
        #[arg(long, value_name = "FILE")]
        message_file: PathBuf,
        /// RAW: the message itself (at most 4,096 bytes); DIGEST: its hash
        #[arg(long, value_enum, default_value = "RAW")]
        message_type: crate::kms::MessageType,
        /// Signing algorithm (one the key supports)
        #[arg(long, value_enum)]
        algorithm: crate::kms::SigningAlgorithm,
        #[command(flatten)]
        out: BinaryOut,
        #[command(flatten)]
        tokens: GrantTokens,
    },
    /// Check a signature; exits 4 (KMSInvalidSignatureException) if it is not valid
    Verify {
        /// Asymmetric SIGN_VERIFY key the signature was made with
        key: String,
        /// File holding the message, or its digest with --message-type DIGEST
        #[arg(long, value_name = "FILE")]
        message_file: PathBuf,
        /// RAW: the message itself (at most 4,096 bytes); DIGEST: its hash
        #[arg(long, value_enum, default_value = "RAW")]
        message_type: crate::kms::MessageType,
        /// Signing algorithm the signature was made with
        #[arg(long, value_enum)]
        algorithm: crate::kms::SigningAlgorithm,
        /// File holding the signature to check
        #[arg(long, value_name = "FILE")]
        signature_file: PathBuf,
        #[command(flatten)]
        tokens: GrantTokens,
    },
    /// The HMAC of a message (at most 4096 bytes) with a GENERATE_VERIFY_MAC key
    GenerateMac {
        /// HMAC key to compute the MAC with
        key: String,
        /// File holding the message (at most 4,096 bytes)
        #[arg(long, value_name = "FILE")]
        message_file: PathBuf,
        /// MAC algorithm (the key's)
        #[arg(long, value_enum)]
        algorithm: crate::kms::MacAlgorithm,
        #[command(flatten)]
        out: BinaryOut,
        #[command(flatten)]
        tokens: GrantTokens,
    },
    /// Check an HMAC; exits 4 (KMSInvalidMacException) if it does not match
    VerifyMac {
        /// HMAC key the MAC was made with
        key: String,
        /// File holding the message (at most 4,096 bytes)
        #[arg(long, value_name = "FILE")]
        message_file: PathBuf,
        /// MAC algorithm the MAC was made with
        #[arg(long, value_enum)]
        algorithm: crate::kms::MacAlgorithm,
        /// File holding the MAC to check
        #[arg(long, value_name = "FILE")]
        mac_file: PathBuf,
        #[command(flatten)]
        tokens: GrantTokens,
    },
}

impl KmsCommand {
    /// The grant tokens the request carries (none for GenerateRandom).
    pub fn grant_tokens(&self) -> Vec<String> {
        match self {
            KmsCommand::Encrypt { tokens, .. }
            | KmsCommand::Decrypt { tokens, .. }
            | KmsCommand::ReEncrypt { tokens, .. }
            | KmsCommand::GenerateDataKey { tokens, .. }
            | KmsCommand::GenerateDataKeyPair { tokens, .. }
            | KmsCommand::Sign { tokens, .. }
            | KmsCommand::Verify { tokens, .. }
            | KmsCommand::GenerateMac { tokens, .. }
            | KmsCommand::VerifyMac { tokens, .. } => tokens.grant_tokens.clone(),
            KmsCommand::GenerateRandom { .. } => Vec::new(),
        }
    }
}

/// KMS `GrantTokens` of a data request.
#[derive(Debug, Clone, Default, Args)]
pub struct GrantTokens {
    /// Grant tokens (as `key grant create` printed them) of grants the request relies on:
    /// comma-separated or repeated, at most 10. Each must be one this home issued
    #[arg(long = "grant-tokens", value_name = "TOKEN", value_delimiter = ',')]
    pub grant_tokens: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (empty, from a raw image, or from a snapshot); prints its id
    #[command(group(clap::ArgGroup::new("source").required(true).args(["size", "from_image", "snapshot"]).multiple(true)))]
    Create {
        /// Size: a number of GiB, or with a unit (512MiB); with --snapshot, grows the volume
        #[arg(long, value_parser = parse_gib, conflicts_with = "from_image")]
        size: Option<u64>,
        /// A raw disk image (any size; the last block is padded)
        #[arg(long, value_name = "FILE", conflicts_with = "snapshot")]
        from_image: Option<PathBuf>,
        /// Restore this snapshot
        #[arg(long, value_name = "SNAP")]
        snapshot: Option<String>,
        /// Encrypt (also implied by the region's encryption by default)
        #[arg(long)]
        encrypted: bool,
        /// KMS key for an encrypted volume [default: the region's EBS default key]
        #[arg(long, value_name = "KEY")]
        kms_key: Option<String>,
        /// Volume type
        #[arg(long = "type", value_enum, default_value = "gp3")]
        volume_type: crate::ebs::VolumeType,
    },
    /// List the region's volumes
    List,
    /// Describe a volume
    Describe {
        /// Volume id (vol-...)
        volume: String,
    },
    /// Delete a volume (blocks its snapshots use stay)
    Delete {
        /// Volume id (vol-...)
        volume: String,
    },
    /// Read bytes of a volume
    Read {
        /// Volume id (vol-...)
        volume: String,
        /// First byte to read (K, M, G suffixes allowed)
        #[arg(long, value_parser = parse_size)]
        offset: u64,
        /// How many bytes to read (K, M, G suffixes allowed)
        #[arg(long, value_parser = parse_size)]
        length: u64,
        /// Write here instead of stdout
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
        /// Overwrite existing output files
        #[arg(short, long)]
        force: bool,
    },
    /// Write a file (or stdin) into a volume at an offset
    Write {
        /// Volume id (vol-...)
        volume: String,
        /// Where in the volume to write (K, M, G suffixes allowed)
        #[arg(long, value_parser = parse_size)]
        offset: u64,
        /// Data to write (- or nothing for stdin)
        input: Option<PathBuf>,
    },
    /// Serve a volume as a disk over NBD until Ctrl-C or SIGTERM (then flush and exit 0)
    Attach {
        /// Volume id (vol-...); also the NBD export name
        volume: String,
        /// Where to listen: unix:PATH, or ADDR:PORT on a loopback address (:PORT is 127.0.0.1)
        #[arg(long, value_name = "unix:PATH|ADDR:PORT")]
        nbd: String,
        /// Serve it read-only (other read-only attaches may share it)
        #[arg(long)]
        read_only: bool,
    },
    /// Write a volume out as a raw image
    Export {
        /// Volume id (vol-...)
        volume: String,
        /// Raw image file to write
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: PathBuf,
        /// Leave zero blocks as holes
        #[arg(long)]
        sparse: bool,
        /// Overwrite existing output files
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Snapshot a volume (copies no data); prints the snapshot id
    Create {
        /// Volume to snapshot (vol-...)
        volume: String,
        /// Description of the snapshot
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the region's snapshots
    List,
    /// Describe a snapshot
    Describe {
        /// Snapshot id (snap-...)
        snapshot: String,
    },
    /// Delete a snapshot (frees only blocks nothing else uses)
    Delete {
        /// Snapshot id (snap-...)
        snapshot: String,
    },
    /// List the block indexes that differ between two snapshots of one lineage
    Diff {
        /// The earlier snapshot (snap-...)
        first: String,
        /// The later snapshot of the same lineage (snap-...)
        second: String,
    },
    /// Serve a snapshot as a read-only disk over NBD until Ctrl-C or SIGTERM
    Attach {
        /// Snapshot id (snap-...); served read-only
        snapshot: String,
        /// Where to listen: unix:PATH, or ADDR:PORT on a loopback address (:PORT is 127.0.0.1)
        #[arg(long, value_name = "unix:PATH|ADDR:PORT")]
        nbd: String,
    },
    /// Copy a snapshot from another region into --region, re-wrapping its data key
    Copy {
        /// Snapshot id (snap-...) in the source region
        snapshot: String,
        /// Region the snapshot is in
        #[arg(long, value_name = "REGION")]
        source_region: String,
        /// Key in the destination region [default: its EBS default key]
        #[arg(long, value_name = "KEY")]
        kms_key: Option<String>,
        /// Encrypt the copy of an unencrypted snapshot (needed with --kms-key)
        #[arg(long)]
        encrypted: bool,
        /// Seal every block again under a new data key instead of re-wrapping
        #[arg(long)]
        reencrypt: bool,
        /// Description of the copy
        #[arg(long)]
        description: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EbsCommand {
    /// Encryption by default for new volumes and copies in the region
    DefaultEncryption {
        /// enable, disable, or show the setting (status)
        #[arg(value_enum)]
        action: Toggle,
    },
    /// The default KMS key for EBS in the region
    DefaultKey {
        #[command(subcommand)]
        action: DefaultKeyCommand,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Toggle {
    /// Encrypt new volumes and snapshot copies by default
    Enable,
    /// Stop encrypting new volumes by default
    Disable,
    /// Print the setting
    Status,
}

#[derive(Debug, Subcommand)]
pub enum DefaultKeyCommand {
    /// Print the default key's ARN
    Get,
    /// Make KEY the default
    Set {
        /// Symmetric key id, key ARN or alias for new encrypted volumes
        key: String,
    },
    /// Back to alias/aws/ebs
    Reset,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the region's events (a table, or JSON lines with --output json); --principal
    /// filters by caller
    Log {
        /// Events at or after this time (RFC 3339), or from the start of this date (2028-01-01,
        /// UTC)
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Events at or before this time (RFC 3339), or to the end of this date (UTC)
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Only this API (CreateKey, Decrypt, CreateVolume…)
        #[arg(long, value_name = "NAME")]
        event: Option<String>,
        /// Only events naming this key (id or ARN)
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        /// Only failed or refused requests
        #[arg(long)]
        errors: bool,
    },
    /// Check the region's trail: chain and digests; exits 4 naming the first record edited,
    /// deleted, inserted or reordered
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum RegionCommand {
    /// Keep REGION's folder in DIR (another disk, say); --reset puts it back under the home
    SetPath {
        /// Region whose folder to set
        region: String,
        /// Folder to keep the region's data in
        #[arg(required_unless_present = "reset")]
        dir: Option<PathBuf>,
        /// Keep the region in the home again
        #[arg(long, conflicts_with = "dir")]
        reset: bool,
    },
    /// List regions and where their folders are
    List,
}

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Let a principal make the named operations on KEY; prints the grant id
    Create {
        /// Key id, key ARN or alias (looked up first)
        key: String,
        /// Who the grant is for (IAM ARN)
        #[arg(long, value_name = "ARN")]
        grantee: String,
        /// Comma-separated: Decrypt, Encrypt, GenerateDataKey, GenerateDataKeyWithoutPlaintext,
        /// ReEncryptFrom, ReEncryptTo, CreateGrant, RetireGrant, DescribeKey
        #[arg(long, value_delimiter = ',', required = true)]
        operations: Vec<String>,
        /// Only requests whose encryption context includes these pairs
        #[arg(long = "context-subset", value_name = "K=V")]
        context_subset: Vec<String>,
        /// Only requests whose encryption context is exactly these pairs
        #[arg(long = "context-equals", value_name = "K=V")]
        context_equals: Vec<String>,
        /// Who may retire the grant
        #[arg(long, value_name = "ARN")]
        retiring_principal: Option<String>,
        /// Name of the grant: a retry with the same name and fields returns the same grant
        #[arg(long)]
        name: Option<String>,
    },
    /// List KEY's grants
    List {
        /// Key id, key ARN or alias (looked up first)
        key: String,
    },
    /// Retire a grant (its retiring principal, its grantee if it grants RetireGrant, or the
    /// root of the account that created it), named by KEY and GRANT_ID or by its token
    Retire {
        /// Key of the grant (with GRANT_ID), unless --grant-token is given
        #[arg(required_unless_present = "grant_token", requires = "grant_id")]
        key: Option<String>,
        /// Id of the grant
        grant_id: Option<String>,
        /// The grant's token (from `key grant create`) in place of KEY and GRANT_ID
        #[arg(long, value_name = "TOKEN", conflicts_with = "key")]
        grant_token: Option<String>,
    },
    /// Revoke a grant (needs kms:RevokeGrant in the key policy)
    Revoke {
        /// Key of the grant
        key: String,
        /// Id of the grant
        grant_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    /// A principal's identity policy
    #[command(subcommand)]
    Policy(PrincipalPolicyCommand),
}

#[derive(Debug, Subcommand)]
pub enum PrincipalPolicyCommand {
    /// Attach FILE (a policy document without Principal, at most 10,240 bytes) as the identity
    /// policy of ARN, a user or role of the account, replacing the one it had. A key policy
    /// statement naming the account root then lets ARN in only if this policy allows the
    /// request too, as IAM policies do in AWS; an explicit Deny here wins. Without one, a
    /// principal of the account is let in by such a statement (cofre has no IAM). Only the
    /// account root manages identity policies
    Put {
        /// arn:aws:iam::ACCOUNT:user/NAME or arn:aws:iam::ACCOUNT:role/NAME
        arn: String,
        /// The policy document (JSON)
        file: PathBuf,
    },
    /// Print a principal's identity policy
    Get {
        /// The principal's IAM ARN
        arn: String,
    },
    /// Remove a principal's identity policy (it has the account's full trust again)
    Delete {
        /// The principal's IAM ARN
        arn: String,
    },
    /// List the principals with an identity policy
    List,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print a key's policy (JSON)
    Get {
        /// Key id, key ARN or alias (looked up first)
        key: String,
    },
    /// Replace a key's policy with FILE (JSON, at most 32 KiB)
    Put {
        /// Key id, key ARN or alias (looked up first)
        key: String,
        /// JSON key policy document
        file: PathBuf,
        /// Accept a policy that would stop you from changing it later
        #[arg(long)]
        bypass_lockout_check: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RotationCommand {
    /// Rotate the key automatically every period
    Enable {
        /// Key id, key ARN or alias (looked up first)
        key: String,
        /// Days between rotations, 90 to 2560
        #[arg(long, default_value_t = 365)]
        period_days: u32,
    },
    /// Stop automatic rotation
    Disable {
        /// Key id, key ARN or alias (looked up first)
        key: String,
    },
    /// Whether the key rotates automatically, its period and next rotation date
    Status {
        /// Key id, key ARN or alias (looked up first)
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Create an alias for a key
    Create {
        /// alias/NAME
        name: String,
        /// Key id or key ARN
        key: String,
    },
    /// Point an alias at another key
    Update {
        /// alias/NAME
        name: String,
        /// Key id or key ARN
        key: String,
    },
    /// Delete an alias (the key stays)
    Delete {
        /// alias/NAME
        name: String,
    },
    /// List the region's aliases (one page at a time with --max-items / --starting-token)
    List {
        /// Only the aliases of this key (key id or key ARN)
        #[arg(long = "key-id", value_name = "KEY")]
        key: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
}

/// KMS `IncludeKeyMaterial` of ListKeyRotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[clap(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IncludeKeyMaterial {
    RotationsOnly,
    AllKeyMaterial,
}

/// Pagination, as the AWS CLI does it: `--max-items` items in all, then a `NextToken` to pass
/// back as `--starting-token` for the rest.
#[derive(Debug, Clone, Default, Args)]
pub struct Paging {
    /// Print at most N items, and a NextToken if there are more
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_items: Option<u32>,
    /// Continue after the NextToken a previous --max-items printed
    #[arg(long, value_name = "TOKEN")]
    pub starting_token: Option<String>,
    /// Items per request to the service (KMS Limit) [default: the operation's default]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: Option<u32>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("recipients").required(true).multiple(true).args(["keys", "recipient_pubkeys"])))]
pub struct EncryptArgs {
    /// Key to wrap the data key under (repeatable: any one decrypts)
    #[arg(short = 'k', long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
    /// Also (or only) wrap the data key to this public key (PEM or DER): an RSA ENCRYPT_DECRYPT
    /// or ECC KEY_AGREEMENT key's, from `cofre key public-key`. Needs no keyring (repeatable)
    #[arg(long = "recipient-pubkey", value_name = "FILE")]
    pub recipient_pubkeys: Vec<PathBuf>,
    /// Encryption context pair (repeatable)
    #[arg(short = 'c', long = "context", value_name = "K=V")]
    pub context: Vec<String>,
    /// Chunk size: a power of two from 4KiB to 64MiB
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    pub chunk_size: u64,
    /// Output file [default: stdout]
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace the output if it exists
    #[arg(short, long)]
    pub force: bool,
    /// Input file [default: stdin; - for stdin]
    pub input: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// Require this encryption context pair (repeatable)
    #[arg(short = 'c', long = "context", value_name = "K=V")]
    pub context: Vec<String>,
    /// Output file [default: stdout]
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace the output if it exists
    #[arg(short, long)]
    pub force: bool,
    /// Input file [default: stdin; - for stdin]
    pub input: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RewrapArgs {
    /// The encrypted file
    pub input: PathBuf,
    /// Key to wrap the data key under (repeatable)
    #[arg(short = 'k', long = "key", value_name = "KEY", required = true)]
    pub keys: Vec<String>,
    /// Region of the new keys [default: the current region]
    #[arg(long, value_name = "REGION")]
    pub to_region: Option<String>,
    /// Output file [default: replace the input in place, atomically]
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace the output if it exists
    #[arg(short, long)]
    pub force: bool,
}

/// Parses a size such as `4096`, `64KiB`, `1MiB`, `4M`, `2GiB` (K/M/G are binary units).
/// A volume size: a bare number is GiB (as EC2 takes it), else as [`parse_size`].
pub fn parse_gib(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) => n
            .checked_mul(1 << 30)
            .ok_or_else(|| format!("size {s:?} GiB is too big")),
        Err(_) => parse_size(s),
    }
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad size {s:?}: write a number with an optional unit, e.g. 1MiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("bad size unit in {s:?}: use KiB, MiB, GiB or TiB")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Every argument and option of every command says what it is for in `--help` (a
    /// newcomer reads `--help`, not the source). Lists every one that does not.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "cofre", &mut missing);
        assert!(
            missing.is_empty(),
            "without help text:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("4M").unwrap(), 4 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("1.5M").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
    }
}
