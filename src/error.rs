//! One error type for the library, and the exit codes the CLI maps it to.
//!
//! Every message is one line that names what was wrong and says what to do next. KMS-shaped
//! errors carry the exception name KMS uses (`NotFoundException`, `DisabledException`, …).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Process exit codes, documented in README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// An operating-system or other failure (I/O, disk full…).
    Failure = 1,
    /// Bad usage: arguments, names, an output that exists without `--force`.
    Usage = 2,
    /// A key or alias was not found, is disabled, lives in another region, or the caller may
    /// not use it; or the encryption context does not match.
    Access = 3,
    /// The data failed its integrity checks: not a cofre file, unsupported version, corrupted,
    /// truncated or extended; or a file of the home or a store is damaged or missing.
    Integrity = 4,
    /// Interrupted by a signal (Ctrl-C); partial output was removed.
    Interrupted = 130,
}

/// The KMS exception names cofre reports, as AWS KMS spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsCode {
    NotFoundException,
    DisabledException,
    KMSInvalidStateException,
    InvalidAliasNameException,
    AlreadyExistsException,
    InvalidArnException,
    ValidationException,
    InvalidCiphertextException,
    LimitExceededException,
    TagException,
    UnsupportedOperationException,
    AccessDeniedException,
    InvalidImportTokenException,
    ExpiredImportTokenException,
    IncorrectKeyMaterialException,
    MalformedPolicyDocumentException,
    InvalidKeyUsageException,
    IncorrectKeyException,
    KMSInvalidSignatureException,
    KMSInvalidMacException,
    InvalidMarkerException,
    /// A grant token that no grant of this home issued (forged, damaged, or another home's).
    InvalidGrantTokenException,
    /// A request body that is not JSON of the operation's shape (the wire front end).
    SerializationException,
    /// A request with `DryRun` that would have succeeded.
    DryRunOperationException,
    /// An `X-Amz-Target` naming no KMS operation (the wire front end).
    UnknownOperationException,
    /// A request with no `Authorization` header (HTTP 403).
    MissingAuthenticationTokenException,
    /// An `Authorization` header that is not a whole SigV4 signature.
    IncompleteSignatureException,
    /// An access key id this keyring does not have, or a session token.
    UnrecognizedClientException,
    /// A signature that does not match, is out of its time, or is scoped to another service.
    InvalidSignatureException,
}

impl fmt::Display for KmsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The EC2 / EBS error codes cofre reports, as EC2 spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ec2Code {
    InvalidVolumeNotFound,
    InvalidSnapshotNotFound,
    /// A volume id that is not `vol-` and 17 hex digits.
    InvalidVolumeIdMalformed,
    /// A snapshot id that is not `snap-` and 17 hex digits.
    InvalidSnapshotIdMalformed,
    InvalidParameterValue,
    InvalidParameterDependency,
    InvalidParameterCombination,
    IncorrectState,
    /// A volume attached read-write (or read-only, to a writer) by a volume session: another
    /// attach, a write or a delete must wait for the detach.
    VolumeInUse,
    /// A snapshot attached by a volume session cannot be deleted until it is detached.
    InvalidSnapshotInUse,
    /// `snapshot diff` of snapshots of different lineages (EBS direct APIs).
    UnrelatedSnapshots,
    /// An EC2 Query request whose Action EC2 does not have (or cofre does not serve).
    InvalidAction,
    /// An EC2 Query request with no Action.
    MissingAction,
    /// An EC2 request without a parameter its operation needs.
    MissingParameter,
    /// An EC2 request not signed at all.
    MissingAuthenticationToken,
    /// An EC2 request whose Authorization header is not a whole SigV4 signature.
    IncompleteSignature,
    /// An EC2 request whose access key is unknown or whose signature does not match.
    AuthFailure,
}

impl fmt::Display for Ec2Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ec2Code::InvalidVolumeNotFound => "InvalidVolume.NotFound",
            Ec2Code::InvalidSnapshotNotFound => "InvalidSnapshot.NotFound",
            Ec2Code::InvalidVolumeIdMalformed => "InvalidVolumeID.Malformed",
            Ec2Code::InvalidSnapshotIdMalformed => "InvalidSnapshotID.Malformed",
            Ec2Code::InvalidParameterValue => "InvalidParameterValue",
            Ec2Code::InvalidParameterDependency => "InvalidParameterDependency",
            Ec2Code::InvalidParameterCombination => "InvalidParameterCombination",
            Ec2Code::IncorrectState => "IncorrectState",
            Ec2Code::VolumeInUse => "VolumeInUse",
            Ec2Code::InvalidSnapshotInUse => "InvalidSnapshot.InUse",
            Ec2Code::UnrelatedSnapshots => "ValidationException (UNRELATED_SNAPSHOTS)",
            Ec2Code::InvalidAction => "InvalidAction",
            Ec2Code::MissingAction => "MissingAction",
            Ec2Code::MissingParameter => "MissingParameter",
            Ec2Code::MissingAuthenticationToken => "MissingAuthenticationToken",
            Ec2Code::IncompleteSignature => "IncompleteSignature",
            Ec2Code::AuthFailure => "AuthFailure",
        })
    }
}

/// The EBS direct APIs' exceptions (the `ebs` 2019-11-02 model), with their HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EbsCode {
    /// 400, with a `ValidationExceptionReason`.
    ValidationException,
    /// 404, with a `ResourceNotFoundExceptionReason`.
    ResourceNotFoundException,
    /// 409: a client token reused for a different request.
    ConflictException,
    /// 403, with an `AccessDeniedExceptionReason`.
    AccessDeniedException,
    /// 500.
    InternalServerException,
}

impl EbsCode {
    /// The HTTP status the model gives it.
    pub fn http_status(self) -> u16 {
        match self {
            EbsCode::ValidationException => 400,
            EbsCode::ResourceNotFoundException => 404,
            EbsCode::ConflictException => 409,
            EbsCode::AccessDeniedException => 403,
            EbsCode::InternalServerException => 500,
        }
    }
}

impl fmt::Display for EbsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Everything that can go wrong in cofre.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input from the caller; the message says which and how to fix it.
    #[error("{0}")]
    Usage(String),
    /// A KMS request failed with the named KMS exception.
    #[error("{code}: {message}")]
    Kms { code: KmsCode, message: String },
    /// An EBS request failed with the named EC2 error code.
    #[error("{code}: {message}")]
    Ec2 { code: Ec2Code, message: String },
    /// An EBS direct API request failed with the named exception and its reason (one of the
    /// model's `…ExceptionReason` values).
    #[error("{code} ({reason}): {message}")]
    Ebs {
        code: EbsCode,
        reason: &'static str,
        message: String,
    },
    /// A block, block map or record of the EBS store failed its integrity check.
    #[error("{0}; the store was damaged or tampered with (`cofre verify` scrubs the region)")]
    StoreCorrupt(String),
    /// The output path exists and `--force` was not given.
    #[error("{} already exists; pass --force to overwrite it", .0.display())]
    OutputExists(PathBuf),
    /// Input and output are the same file.
    #[error("{} is both the input and the output; write to another path", .0.display())]
    SameFile(PathBuf),
    /// The encryption context given does not match the file's.
    #[error("encryption context mismatch: {0}; check the -c pairs (cofre inspect shows the file's context)")]
    ContextMismatch(String),
    /// The input does not start with the cofre magic.
    #[error("not a cofre file (bad magic); check that this is the encrypted file")]
    NotCofre,
    /// The input is a cofre file of a version or suite this build does not read.
    #[error("unsupported cofre format {0}; upgrade cofre to read it")]
    Unsupported(String),
    /// The header is malformed or failed authentication.
    #[error("header corrupted: {0}; the file was damaged or tampered with")]
    HeaderCorrupt(String),
    /// A payload chunk failed authentication.
    #[error(
        "corrupted at chunk {chunk}: authentication failed; the file was damaged or tampered with"
    )]
    Corrupted { chunk: u64 },
    /// The payload ends before its final chunk.
    #[error("truncated: {0}; the file is incomplete")]
    Truncated(String),
    /// Data that should be identical is not (the demo's own check).
    #[error("{0}")]
    Mismatch(String),
    /// DisableKey or ScheduleKeyDeletion without `force` of a key that volumes or snapshots of
    /// its region depend on (cofre's guard; AWS name ValidationException).
    #[error("{0}")]
    KeyInUse(String),
    /// A keyring file is damaged; the message names it.
    #[error("{0} is damaged; restore the home folder from a backup")]
    Damaged(String),
    /// A file the home cannot work without is missing while the home holds data.
    #[error("{} is missing: {meaning}; restore it from a backup of the home (cofre never makes it again)", .path.display())]
    HomeIncomplete { path: PathBuf, meaning: String },
    #[error("{0}; this is a bug or a broken crypto library: please report it")]
    Crypto(String),
    /// An I/O operation failed; `what` names it and the path.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

/// The AWS service whose protocol an error is answered in: it decides the error's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsService {
    /// KMS (`TrentService`, JSON 1.1).
    Kms,
    /// EC2 (Query/XML) and the EBS direct APIs.
    Ec2,
}

/// `Result` with cofre's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The AWS error name this error is answered with on the wire, and recorded with in the
    /// audit trail: the KMS exception or EC2 code it carries, else the closest name `service`
    /// has (`ValidationException` / `InvalidParameterValue` for bad input, the service's
    /// internal error for a fault of cofre or its store).
    pub fn aws_name(&self, service: AwsService) -> String {
        let ec2 = service == AwsService::Ec2;
        match self {
            Error::Kms { code, .. } => code.to_string(),
            Error::Ec2 { code, .. } => code.to_string(),
            Error::Ebs { code, .. } => code.to_string(),
            Error::Usage(_) | Error::OutputExists(_) | Error::SameFile(_) | Error::KeyInUse(_)
                if ec2 =>
            {
                "InvalidParameterValue".into()
            }
            Error::Usage(_) | Error::OutputExists(_) | Error::SameFile(_) | Error::KeyInUse(_) => {
                "ValidationException".into()
            }
            Error::StoreCorrupt(_) if ec2 => "IncorrectState".into(),
            e if e.is_fault() && ec2 => "InternalError".into(),
            e if e.is_fault() => "KMSInternalException".into(),
            _ if ec2 => "IncorrectState".into(),
            _ => "InvalidCiphertextException".into(),
        }
    }

    /// The message a wire response carries beside the error name: the text without the name
    /// in front of it.
    pub fn wire_message(&self) -> String {
        match self {
            Error::Kms { message, .. }
            | Error::Ec2 { message, .. }
            | Error::Ebs { message, .. } => message.clone(),
            e => e.to_string(),
        }
    }

    /// The HTTP status this error is answered with: 500 for a fault of cofre or its store
    /// (the caller may retry), 400 for everything the request itself got wrong, as KMS and EC2
    /// answer their client errors.
    pub fn http_status(&self) -> u16 {
        if matches!(
            self,
            Error::Kms {
                code: KmsCode::MissingAuthenticationTokenException,
                ..
            }
        ) {
            403
        } else if let Error::Ebs { code, .. } = self {
            code.http_status()
        } else if matches!(
            self,
            Error::Ec2 {
                code: Ec2Code::MissingAuthenticationToken | Ec2Code::AuthFailure,
                ..
            }
        ) {
            401
        } else if self.is_fault() {
            500
        } else {
            400
        }
    }

    /// A fault of cofre or its store, not of the request.
    fn is_fault(&self) -> bool {
        matches!(
            self,
            Error::Io { .. } | Error::Damaged(_) | Error::Crypto(_) | Error::HomeIncomplete { .. }
        )
    }

    /// The exit code a CLI should return for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) | Error::OutputExists(_) | Error::SameFile(_) => ExitCode::Usage,
            Error::Kms { code, .. } => match code {
                KmsCode::InvalidAliasNameException
                | KmsCode::InvalidArnException
                | KmsCode::ValidationException
                | KmsCode::TagException
                | KmsCode::AlreadyExistsException
                | KmsCode::LimitExceededException
                | KmsCode::InvalidImportTokenException
                | KmsCode::ExpiredImportTokenException
                | KmsCode::IncorrectKeyMaterialException
                | KmsCode::MalformedPolicyDocumentException
                | KmsCode::InvalidKeyUsageException
                | KmsCode::InvalidMarkerException
                | KmsCode::SerializationException
                | KmsCode::DryRunOperationException
                | KmsCode::InvalidGrantTokenException
                | KmsCode::UnknownOperationException => ExitCode::Usage,
                KmsCode::InvalidCiphertextException
                | KmsCode::IncorrectKeyException
                | KmsCode::KMSInvalidSignatureException
                | KmsCode::KMSInvalidMacException => ExitCode::Integrity,
                _ => ExitCode::Access,
            },
            Error::Ec2 { code, .. } => match code {
                Ec2Code::InvalidVolumeNotFound
                | Ec2Code::InvalidSnapshotNotFound
                | Ec2Code::IncorrectState
                | Ec2Code::VolumeInUse
                | Ec2Code::InvalidSnapshotInUse => ExitCode::Access,
                _ => ExitCode::Usage,
            },
            Error::Ebs { code, .. } => match code {
                EbsCode::ValidationException => ExitCode::Usage,
                EbsCode::InternalServerException => ExitCode::Failure,
                _ => ExitCode::Access,
            },
            Error::ContextMismatch(_) => ExitCode::Access,
            Error::KeyInUse(_) => ExitCode::Usage,
            Error::NotCofre
            | Error::Unsupported(_)
            | Error::HeaderCorrupt(_)
            | Error::Corrupted { .. }
            | Error::Truncated(_)
            | Error::Mismatch(_)
            | Error::StoreCorrupt(_)
            | Error::HomeIncomplete { .. }
            | Error::Damaged(_) => ExitCode::Integrity,
            Error::Io { .. } | Error::Crypto(_) => ExitCode::Failure,
        }
    }

    /// A KMS-shaped error.
    pub fn kms(code: KmsCode, message: impl Into<String>) -> Self {
        Error::Kms {
            code,
            message: message.into(),
        }
    }

    /// An EC2-shaped error.
    pub fn ec2(code: Ec2Code, message: impl Into<String>) -> Self {
        Error::Ec2 {
            code,
            message: message.into(),
        }
    }

    /// An error of the EBS direct APIs: `code` with `reason`, one of the model's
    /// `…ExceptionReason` values.
    pub fn ebs(code: EbsCode, reason: &'static str, message: impl Into<String>) -> Self {
        Error::Ebs {
            code,
            reason,
            message: message.into(),
        }
    }

    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage(message.into())
    }

    /// An I/O error on `path` while doing `what` ("reading", "creating"…).
    pub fn io(what: &str, path: &Path, source: io::Error) -> Self {
        Error::Io {
            what: format!("{what} {}", path.display()),
            source,
        }
    }

    /// The same error again, for each of several requests that share one failure (the
    /// events of one audit trail batch). An I/O error keeps its kind and its message.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Usage(m) => Error::Usage(m.clone()),
            Error::Kms { code, message } => Error::Kms {
                code: *code,
                message: message.clone(),
            },
            Error::Ec2 { code, message } => Error::Ec2 {
                code: *code,
                message: message.clone(),
            },
            Error::Ebs {
                code,
                reason,
                message,
            } => Error::Ebs {
                code: *code,
                reason,
                message: message.clone(),
            },
            Error::StoreCorrupt(m) => Error::StoreCorrupt(m.clone()),
            Error::OutputExists(p) => Error::OutputExists(p.clone()),
            Error::SameFile(p) => Error::SameFile(p.clone()),
            Error::ContextMismatch(m) => Error::ContextMismatch(m.clone()),
            Error::NotCofre => Error::NotCofre,
            Error::Unsupported(m) => Error::Unsupported(m.clone()),
            Error::HeaderCorrupt(m) => Error::HeaderCorrupt(m.clone()),
            Error::Corrupted { chunk } => Error::Corrupted { chunk: *chunk },
            Error::Truncated(m) => Error::Truncated(m.clone()),
            Error::Mismatch(m) => Error::Mismatch(m.clone()),
            Error::KeyInUse(m) => Error::KeyInUse(m.clone()),
            Error::Damaged(m) => Error::Damaged(m.clone()),
            Error::HomeIncomplete { path, meaning } => Error::HomeIncomplete {
                path: path.clone(),
                meaning: meaning.clone(),
            },
            Error::Crypto(m) => Error::Crypto(m.clone()),
            Error::Io { what, source } => Error::Io {
                what: what.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
        }
    }

    /// True if this is a broken pipe on output (the reader went away: not a failure).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;

    #[test]
    fn errors_have_their_aws_name_and_status_in_each_service() {
        let kms = Error::kms(KmsCode::NotFoundException, "gone");
        assert_eq!(kms.aws_name(AwsService::Kms), "NotFoundException");
        assert_eq!(kms.http_status(), 400);
        let bad = Error::usage("bad");
        assert_eq!(bad.aws_name(AwsService::Kms), "ValidationException");
        assert_eq!(bad.aws_name(AwsService::Ec2), "InvalidParameterValue");
        let io = Error::io("reading", Path::new("x"), io::Error::other("disk"));
        assert_eq!(io.aws_name(AwsService::Kms), "KMSInternalException");
        assert_eq!(io.aws_name(AwsService::Ec2), "InternalError");
        assert_eq!(io.http_status(), 500);
        let ec2 = Error::ec2(Ec2Code::InvalidVolumeIdMalformed, "vol-x");
        assert_eq!(ec2.aws_name(AwsService::Ec2), "InvalidVolumeID.Malformed");
        assert_eq!(ec2.http_status(), 400);
        assert_eq!(
            Error::KeyInUse("used".into()).aws_name(AwsService::Kms),
            "ValidationException"
        );
    }
}
