//! Who is calling: an IAM principal ARN (`--principal`, `COFRE_PRINCIPAL`, else the account
//! root).

use crate::error::{Error, Result};
use serde::Serialize;

/// A caller, as an IAM ARN: `arn:aws:iam::<account>:root`, `…:user/<name>` or `…:role/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    arn: String,
    account: String,
}

impl Principal {
    /// The root of `account`.
    pub fn root(account: &str) -> Self {
        Principal {
            arn: format!("arn:aws:iam::{account}:root"),
            account: account.to_owned(),
        }
    }

    /// Parses and checks a principal ARN.
    pub fn parse(arn: &str) -> Result<Self> {
        let bad = || {
            Error::usage(format!(
                "invalid principal {arn:?}; use arn:aws:iam::ACCOUNT:root, arn:aws:iam::ACCOUNT:user/NAME or arn:aws:iam::ACCOUNT:role/NAME"
            ))
        };
        let rest = arn.strip_prefix("arn:aws:iam::").ok_or_else(bad)?;
        let (account, resource) = rest.split_once(':').ok_or_else(bad)?;
        crate::keyring::validate_account_id(account).map_err(|_| bad())?;
        let ok_name = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
        };
        let valid = resource == "root"
            || resource.strip_prefix("user/").is_some_and(ok_name)
            || resource.strip_prefix("role/").is_some_and(ok_name);
        if !valid {
            return Err(bad());
        }
        Ok(Principal {
            arn: arn.to_owned(),
            account: account.to_owned(),
        })
    }

    /// The ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The account it belongs to.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// CloudTrail's `userIdentity.type`.
    pub fn identity_type(&self) -> &'static str {
        if self.arn.ends_with(":root") {
            "Root"
        } else if self.arn.contains(":user/") {
            "IAMUser"
        } else {
            "AssumedRole"
        }
    }

    /// CloudTrail's `principalId`: the account id for the root; for a user or role a stable
    /// unique id in IAM's form (`AIDA…`, `AROA…`), derived from the ARN since cofre keeps no
    /// IAM directory.
    pub fn principal_id(&self) -> String {
        let prefix = match self.identity_type() {
            "Root" => return self.account.clone(),
            "IAMUser" => "AIDA",
            _ => "AROA",
        };
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let hash = blake3::hash(self.arn.as_bytes());
        let id: String = hash.as_bytes()[..17]
            .iter()
            .map(|b| ALPHABET[usize::from(b % 32)] as char)
            .collect();
        format!("{prefix}{id}")
    }

    /// The user or role name, if any.
    pub fn name(&self) -> Option<&str> {
        self.arn
            .rsplit_once(":user/")
            .or_else(|| self.arn.rsplit_once(":role/"))
            .map(|(_, n)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse_and_describe_themselves() {
        let r = Principal::root("111122223333");
        assert_eq!(r.arn(), "arn:aws:iam::111122223333:root");
        assert_eq!(r.identity_type(), "Root");
        let u = Principal::parse("arn:aws:iam::222233334444:user/bob").unwrap();
        assert_eq!(
            (u.account(), u.identity_type(), u.name()),
            ("222233334444", "IAMUser", Some("bob"))
        );
        let role = Principal::parse("arn:aws:iam::222233334444:role/ops").unwrap();
        assert_eq!(role.identity_type(), "AssumedRole");
        for bad in [
            "bob",
            "arn:aws:iam::1234:root",
            "arn:aws:iam::222233334444:group/x",
            "arn:aws:iam::222233334444:user/",
            "arn:aws:kms::222233334444:root",
        ] {
            assert!(Principal::parse(bad).is_err(), "{bad}");
        }
    }
}
