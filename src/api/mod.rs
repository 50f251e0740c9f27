//! The shapes of the AWS APIs cofre answers, named and typed exactly as AWS's service models
//! name them (botocore's `kms` 2014-11-01, `ec2` 2016-11-15 and `ebs` 2019-11-02): PascalCase
//! members, the models' enums, absent members left out rather than null.
//!
//! The service returns these where an operation's result is the response itself, and front
//! ends build the others from the service's domain values with the `From` impls here. The
//! CLI's `--output json` prints them, the HTTP front end sends them; `tests/botocore.rs` checks
//! every one the CLI prints against the models.
//!
//! Timestamps are RFC 3339 strings, as the AWS CLI prints them; the KMS JSON wire protocol
//! sends epoch seconds, which the HTTP front end converts.

pub mod ec2;
pub mod kms;
pub mod kms_requests;
