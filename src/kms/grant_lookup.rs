//! Grants found without naming their key: ListRetirableGrants, and RetireGrant by grant token.
//!
//! Both read every key record of the region (grants live in their key's record), so their cost
//! grows with the region's keys; docs/SCALE.md says how an index of grants by retiring principal
//! would take that away.

use super::audited::Call;
use super::{KeyRef, Kms};
use crate::error::{Error, KmsCode, Result};
use crate::keyring::Grant;

impl Kms {
    /// ListRetirableGrants: the region's grants whose retiring principal is `principal`.
    pub fn list_retirable_grants(&self, principal: &str) -> Result<Vec<Grant>> {
        self.audited(
            Call::new("ListRetirableGrants", true).param("retiringPrincipal", principal),
            |_| {
                let store = self.store()?;
                let mut out = Vec::new();
                for record in store.list_keys()? {
                    out.extend(
                        record
                            .grants
                            .into_iter()
                            .filter(|g| g.retiring_principal.as_deref() == Some(principal)),
                    );
                }
                Ok(out)
            },
        )
    }

    /// The grant id a grant token names, if the token is one this home made.
    pub fn grant_id_of_token(&self, token: &str) -> Result<String> {
        use base64::Engine;
        let invalid = || {
            Error::kms(
                KmsCode::InvalidGrantTokenException,
                "the grant token is not one this keyring issued",
            )
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token.as_bytes())
            .map_err(|_| invalid())?;
        let text = String::from_utf8(raw).map_err(|_| invalid())?;
        let (id, _) = text.split_once('.').ok_or_else(invalid)?;
        let expected = self.grant_token(id);
        let same = expected.len() == token.len()
            && expected
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                == 0;
        if same {
            Ok(id.to_owned())
        } else {
            Err(invalid())
        }
    }

    /// RetireGrant with only a grant token: finds the key holding the grant, then retires it
    /// as [`Kms::retire_grant`] does.
    pub fn retire_grant_by_token(&self, token: &str) -> Result<()> {
        let id = self.grant_id_of_token(token)?;
        let store = self.home().region(self.region())?;
        let holder = store
            .list_keys()?
            .into_iter()
            .find(|r| r.grants.iter().any(|g| g.grant_id == id))
            .ok_or_else(|| {
                Error::kms(
                    KmsCode::NotFoundException,
                    format!("no key in {} has grant {id}", self.region()),
                )
            })?;
        self.retire_grant(&KeyRef::Id(holder.key_metadata.key_id), &id)
    }
}
