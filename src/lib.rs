//! cofre: local key management and envelope encryption, modelled on AWS KMS and EBS.
//!
//! A home folder holds a keyring of master keys per region, sealed at rest under a domain key.
//! Every file gets its own data key, wrapped by one or more master keys; the data is sealed by
//! a chunked AES-256-GCM engine that runs on every core.
//!
//! ```no_run
//! use cofre::{files, Home, Kms, Region, EncryptionContext, CreateKeyRequest, RequestContext};
//! # fn main() -> cofre::Result<()> {
//! let home = Home::open("/tmp/cofre-home".as_ref(), None)?;
//! // Who is asking: here the account root; a server makes one per signed request.
//! let ctx = RequestContext::account_root(home.account_id());
//! let kms = Kms::new(home, Region::new("us-east-1")?, ctx);
//! let key = kms.create_key(&CreateKeyRequest::default())?;
//! let keys = [key.key_id.parse()?];
//! files::encrypt(
//!     &kms,
//!     &keys,
//!     &EncryptionContext::new(),
//!     cofre::envelope::DEFAULT_CHUNK_LOG2,
//!     &files::Input::Path("disk.img".into()),
//!     &files::Output::Path { path: "disk.img.cofre".into(), force: false },
//!     files::Options::default(),
//! )?;
//! # Ok(()) }
//! ```

// ── Primitives and storage ─────────────────────────────────────────────────────────────────
pub mod crypto;
pub mod store;

// ── The envelope format and engine ────────────────────────────────────────────────────────
pub mod envelope;

// ── Keys: the keyring and the KMS verbs ───────────────────────────────────────────────────
pub mod audit;
pub mod keyring;
pub mod kms;

// ── The AWS API shapes every front end speaks ───────────────────────────────────────────
pub mod api;

// ── EBS: volumes and snapshots as blocks under each region ───────────────────────────────
pub mod ebs;

// ── Front ends over the service: the AWS wire protocols over HTTP (`cofre serve`), NBD ───
pub mod nbd;
pub mod server;

// ── Data commands, the demo and the command line ─────────────────────────────────────────
pub mod bench;
pub mod cli;
pub mod demo;
pub mod files;
pub mod sign;

mod context;
mod error;
mod truncation;

pub use context::RequestContext;
pub use crypto::Backend;
pub use envelope::EncryptionContext;
pub use error::{AwsService, EbsCode, Ec2Code, Error, ExitCode, KmsCode, Result};
pub use keyring::{Home, Region};
pub use kms::{CreateKeyRequest, KeyRef, Kms};
