//! How a request names a key: key id, key ARN, alias name or alias ARN.

use crate::error::{Error, KmsCode, Result};
use std::fmt;
use std::str::FromStr;

/// A reference to a KMS key as a user writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// `1234abcd-12ab-34cd-56ef-1234567890ab`
    Id(String),
    /// `arn:aws:kms:<region>:<account>:key/<id>`
    Arn {
        region: String,
        account: String,
        id: String,
    },
    /// `alias/<name>`
    Alias(String),
    /// `arn:aws:kms:<region>:<account>:alias/<name>`
    AliasArn {
        region: String,
        account: String,
        name: String,
    },
}

/// True for a lowercase UUID or a multi-region key id (`mrk-` + 32 hex).
pub fn is_key_id(s: &str) -> bool {
    if let Some(h) = s.strip_prefix("mrk-") {
        return h.len() == 32 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    }
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// The key ARN for a key id.
pub fn key_arn(region: &str, account: &str, id: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:key/{id}")
}

/// The alias ARN for an alias name (`alias/x`).
pub fn alias_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:{name}")
}

impl FromStr for KeyRef {
    type Err = Error;

    fn from_str(s: &str) -> Result<KeyRef> {
        if let Some(rest) = s.strip_prefix("arn:") {
            let bad = || {
                Error::kms(
                    KmsCode::InvalidArnException,
                    format!("{s:?} is not a KMS key or alias ARN; write arn:aws:kms:REGION:ACCOUNT:key/ID or …:alias/NAME"),
                )
            };
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            let [partition, service, region, account, resource] = parts[..] else {
                return Err(bad());
            };
            if partition != "aws" || service != "kms" || region.is_empty() || account.is_empty() {
                return Err(bad());
            }
            let (region, account) = (region.to_owned(), account.to_owned());
            if let Some(id) = resource.strip_prefix("key/") {
                if !is_key_id(id) {
                    return Err(bad());
                }
                return Ok(KeyRef::Arn {
                    region,
                    account,
                    id: id.to_owned(),
                });
            }
            if resource.starts_with("alias/") {
                return Ok(KeyRef::AliasArn {
                    region,
                    account,
                    name: resource.to_owned(),
                });
            }
            return Err(bad());
        }
        if s.starts_with("alias/") {
            return Ok(KeyRef::Alias(s.to_owned()));
        }
        if is_key_id(s) {
            return Ok(KeyRef::Id(s.to_owned()));
        }
        Err(Error::kms(
            KmsCode::NotFoundException,
            format!("{s:?} is not a key id, key ARN, alias name (alias/…) or alias ARN; `cofre key list` shows your keys"),
        ))
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::Id(id) => f.write_str(id),
            KeyRef::Arn {
                region,
                account,
                id,
            } => f.write_str(&key_arn(region, account, id)),
            KeyRef::Alias(name) => f.write_str(name),
            KeyRef::AliasArn {
                region,
                account,
                name,
            } => f.write_str(&alias_arn(region, account, name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(id.parse::<KeyRef>().unwrap(), KeyRef::Id(id.into()));
        let arn = format!("arn:aws:kms:us-east-1:111122223333:key/{id}");
        assert!(matches!(arn.parse::<KeyRef>().unwrap(), KeyRef::Arn { .. }));
        assert_eq!(arn.parse::<KeyRef>().unwrap().to_string(), arn);
        assert_eq!(
            "alias/x".parse::<KeyRef>().unwrap(),
            KeyRef::Alias("alias/x".into())
        );
        let aarn = "arn:aws:kms:eu-west-1:111122223333:alias/x";
        assert!(matches!(
            aarn.parse::<KeyRef>().unwrap(),
            KeyRef::AliasArn { .. }
        ));
        assert_eq!(aarn.parse::<KeyRef>().unwrap().to_string(), aarn);
        assert!("mrk-1234abcd12ab34cd56ef1234567890ab"
            .parse::<KeyRef>()
            .is_ok());
        for bad in [
            "",
            "nope",
            "1234ABCD-12ab-34cd-56ef-1234567890ab",
            "arn:aws:s3:::x",
            "arn:aws:kms:us-east-1:1:key/zz",
        ] {
            assert!(bad.parse::<KeyRef>().is_err(), "{bad}");
        }
    }
}
