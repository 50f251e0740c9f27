//! Grants found without naming their key: ListRetirableGrants.
//!
//! It reads every key record of the region (grants live in their key's record), so their cost
//! grows with the region's keys; docs/SCALE.md says how an index of grants by retiring principal
//! would take that away.

use super::audited::Call;
use super::Kms;
use crate::error::Result;
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
}
