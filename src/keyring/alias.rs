//! Alias names and the per-region alias table.

use crate::error::{Error, KmsCode, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Checks an alias name against the KMS rules: `alias/` prefix, 1–256 characters of
/// `[a-zA-Z0-9:/_-]`, a name after the prefix, and not under the reserved `alias/aws/`.
pub fn validate_alias_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::kms(
            KmsCode::InvalidAliasNameException,
            format!("invalid alias name {name:?}: {why}"),
        ))
    };
    if !name.starts_with("alias/") {
        return bad("it must start with alias/, e.g. alias/backups");
    }
    if name.len() > 256 {
        return bad("it must be at most 256 characters");
    }
    if name.len() == "alias/".len() {
        return bad("it needs a name after alias/");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '_' | '-')))
    {
        return bad(&format!(
            "character {c:?} is not allowed; use letters, digits, /, _, - and :"
        ));
    }
    if name.starts_with("alias/aws/") {
        return bad("the alias/aws/ prefix is reserved for AWS managed keys");
    }
    Ok(())
}

/// One alias as KMS `ListAliases` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AliasEntry {
    pub alias_name: String,
    pub alias_arn: String,
    pub target_key_id: String,
    pub creation_date: String,
    pub last_updated_date: String,
}

/// The aliases of one region, by name; stored as `regions/<region>/aliases.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasTable(pub BTreeMap<String, AliasEntry>);

impl AliasTable {
    /// The aliases pointing at `key_id`.
    pub fn for_key<'a>(&'a self, key_id: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .values()
            .filter(move |a| a.target_key_id == key_id)
            .map(|a| a.alias_name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_rules() {
        for ok in ["alias/a", "alias/backups-2026", "alias/team/x_y:z"] {
            validate_alias_name(ok).unwrap();
        }
        let long = format!("alias/{}", "a".repeat(251));
        for bad in [
            "backups",
            "alias/",
            "alias/aws/ebs",
            "alias/sp ace",
            "alias/é",
            long.as_str(),
        ] {
            let e = validate_alias_name(bad).unwrap_err();
            assert!(
                e.to_string().starts_with("InvalidAliasNameException"),
                "{bad}: {e}"
            );
        }
        validate_alias_name(&format!("alias/{}", "a".repeat(250))).unwrap();
    }
}
