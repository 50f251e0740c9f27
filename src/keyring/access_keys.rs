//! Access keys: the credentials a client signs its requests to `cofre serve` with (Signature
//! Version 4), each belonging to one principal.
//!
//! ```text
//! HOME/access-keys/<AccessKeyId>.json   {"AccessKeyId","Principal","Status","CreateDate","SealedSecret"}
//! ```
//!
//! Like IAM's, an access key belongs to the account, not to a region. The secret is shown once,
//! when the key is made ([`NewAccessKey`]); at rest it is sealed under the home's domain key,
//! bound to the key's id, exactly as key material is. A server checks a signature by reading the
//! one file its access key id names ([`Home::access_key`]): no listing, so the cost does not grow
//! with the number of keys.

use super::Home;
use crate::audit::Principal;
use crate::error::{Error, Result};
use crate::store;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// What the sealed secrets are bound to besides their id: no key ARN takes this name.
const SEAL_OWNER: &str = "cofre access key";

/// An access key as stored (its secret sealed).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Stored {
    access_key_id: String,
    principal: String,
    status: String,
    create_date: String,
    sealed_secret: String,
}

/// What is known of an access key without its secret (IAM's `AccessKeyMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyInfo {
    pub access_key_id: String,
    pub principal: Principal,
    /// `Active` (cofre has no inactive keys yet: a key is deleted instead).
    pub status: String,
    pub create_date: String,
}

impl AccessKeyInfo {
    /// The IAM `UserName` of the principal: the user or role name, or `root`.
    pub fn user_name(&self) -> &str {
        let arn = self.principal.arn();
        let resource = arn.rsplit_once(':').map_or(arn, |(_, r)| r);
        resource.rsplit('/').next().unwrap_or(resource)
    }
}

/// An access key with its secret, opened to check a signature.
pub struct AccessKey {
    pub info: AccessKeyInfo,
    secret: Zeroizing<Vec<u8>>,
}

impl AccessKey {
    /// The secret access key (SigV4's signing keys are derived from it).
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// A key just made: the only time its secret is handed out.
pub struct NewAccessKey {
    pub info: AccessKeyInfo,
    pub secret_access_key: Zeroizing<String>,
}

impl std::fmt::Debug for NewAccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccessKey")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// True for the shape of an access key id cofre makes: `AKIA` and 16 of `A-Z2-7`.
pub fn is_access_key_id(id: &str) -> bool {
    id.len() == 20
        && id.starts_with("AKIA")
        && id[4..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

impl Home {
    fn access_key_dir(&self) -> PathBuf {
        self.root().join("access-keys")
    }

    /// Makes an access key for `principal` (any account's: a key policy decides what it may
    /// do). Its secret is returned this once.
    pub fn create_access_key(&self, principal: &Principal) -> Result<NewAccessKey> {
        const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let r: [u8; 16] = crate::crypto::random_array();
        let id: String = "AKIA"
            .chars()
            .chain(r.iter().map(|b| B32[usize::from(b % 32)] as char))
            .collect();
        let raw = Zeroizing::new(crate::crypto::random_array::<30>());
        let secret = Zeroizing::new(crate::kms::base64_encode(&*raw));
        let info = AccessKeyInfo {
            access_key_id: id.clone(),
            principal: principal.clone(),
            status: "Active".into(),
            create_date: humantime::format_rfc3339_seconds(self.now()).to_string(),
        };
        let stored = Stored {
            access_key_id: id.clone(),
            principal: principal.arn().to_owned(),
            status: info.status.clone(),
            create_date: info.create_date.clone(),
            sealed_secret: self.seal_secret(SEAL_OWNER, &id, secret.as_bytes()),
        };
        let dir = self.access_key_dir();
        store::create_dir(&dir)?;
        let json = serde_json::to_vec_pretty(&stored).expect("serializable");
        store::create_atomic(&dir.join(format!("{id}.json")), &json, 0o600)?;
        Ok(NewAccessKey {
            info,
            secret_access_key: secret,
        })
    }

    /// The access key `id` with its secret opened, or `None` if there is none. A record that
    /// does not parse or whose secret does not open is damage, not an unknown key.
    pub fn access_key(&self, id: &str) -> Result<Option<AccessKey>> {
        if !is_access_key_id(id) {
            return Ok(None);
        }
        let path = self.access_key_dir().join(format!("{id}.json"));
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading", &path, e)),
        };
        let damaged = || Error::Damaged(format!("the access key record {}", path.display()));
        let s: Stored = serde_json::from_slice(&bytes).map_err(|_| damaged())?;
        if s.access_key_id != id {
            return Err(damaged());
        }
        let secret = self
            .open_secret(SEAL_OWNER, id, &s.sealed_secret)
            .ok_or_else(damaged)?;
        Ok(Some(AccessKey {
            info: info_of(s)?,
            secret,
        }))
    }

    /// Every access key of the home, by id, without secrets.
    pub fn access_keys(&self) -> Result<Vec<AccessKeyInfo>> {
        let dir = self.access_key_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("listing", &dir, e)),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if !is_access_key_id(id) {
                continue;
            }
            let bytes = store::read(&e.path())?;
            let s: Stored = serde_json::from_slice(&bytes).map_err(|_| {
                Error::Damaged(format!("the access key record {}", e.path().display()))
            })?;
            out.push(info_of(s)?);
        }
        out.sort_by(|a, b| a.access_key_id.cmp(&b.access_key_id));
        Ok(out)
    }

    /// Deletes the access key `id`: requests signed with it are refused from now on.
    pub fn delete_access_key(&self, id: &str) -> Result<AccessKeyInfo> {
        let info = self
            .access_key(id)?
            .ok_or_else(|| {
                Error::usage(format!(
                    "there is no access key {}; `cofre access-key list` shows them",
                    crate::cli::printable(id)
                ))
            })?
            .info;
        let dir = self.access_key_dir();
        let path = dir.join(format!("{id}.json"));
        std::fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e))?;
        store::sync_dir(&dir)?;
        Ok(info)
    }
}

fn info_of(s: Stored) -> Result<AccessKeyInfo> {
    Ok(AccessKeyInfo {
        principal: Principal::parse(&s.principal).map_err(|_| {
            Error::Damaged(format!(
                "the access key {} names no principal",
                s.access_key_id
            ))
        })?,
        access_key_id: s.access_key_id,
        status: s.status,
        create_date: s.create_date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_found_listed_and_deleted_and_its_secret_is_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::open(dir.path(), Some("111122223333")).unwrap();
        let p = Principal::parse("arn:aws:iam::111122223333:user/alice").unwrap();
        let k = home.create_access_key(&p).unwrap();
        assert!(is_access_key_id(&k.info.access_key_id));
        assert_eq!(k.secret_access_key.len(), 40);
        assert_eq!(k.info.user_name(), "alice");
        assert!(!format!("{k:?}").contains(k.secret_access_key.as_str()));
        let stored = std::fs::read_to_string(
            home.access_key_dir()
                .join(format!("{}.json", k.info.access_key_id)),
        )
        .unwrap();
        assert!(!stored.contains(k.secret_access_key.as_str()));

        let found = home.access_key(&k.info.access_key_id).unwrap().unwrap();
        assert_eq!(found.secret(), k.secret_access_key.as_bytes());
        assert_eq!(found.info, k.info);
        assert_eq!(home.access_keys().unwrap(), vec![k.info.clone()]);
        assert!(home.access_key("AKIAAAAAAAAAAAAAAAAA").unwrap().is_none());
        assert!(home.access_key("../cofre").unwrap().is_none());

        home.delete_access_key(&k.info.access_key_id).unwrap();
        assert!(home.access_key(&k.info.access_key_id).unwrap().is_none());
        assert!(home.delete_access_key(&k.info.access_key_id).is_err());
    }

    #[test]
    fn a_secret_moved_to_another_key_id_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::open(dir.path(), Some("111122223333")).unwrap();
        let p = Principal::root("111122223333");
        let a = home.create_access_key(&p).unwrap();
        let b = home.create_access_key(&p).unwrap();
        let path = |id: &str| home.access_key_dir().join(format!("{id}.json"));
        let ja = std::fs::read_to_string(path(&a.info.access_key_id)).unwrap();
        let mut vb: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path(&b.info.access_key_id)).unwrap())
                .unwrap();
        let va: serde_json::Value = serde_json::from_str(&ja).unwrap();
        vb["SealedSecret"] = va["SealedSecret"].clone();
        std::fs::write(path(&b.info.access_key_id), vb.to_string()).unwrap();
        assert!(matches!(
            home.access_key(&b.info.access_key_id),
            Err(Error::Damaged(_))
        ));
    }
}
