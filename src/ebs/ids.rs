//! EBS resource ids: `vol-`, `snap-` and (cofre's own) `dek-` followed by 17 lowercase hex digits.

use crate::crypto;
use crate::error::{Ec2Code, Error, Result};

/// Digits after the prefix, as EC2 has used since 2018.
const ID_DIGITS: usize = 17;

/// A new random id with `prefix` (`"vol-"`, `"snap-"`, `"dek-"`).
pub fn new_id(prefix: &str) -> String {
    let r: [u8; 9] = crypto::random_array();
    let mut hex = hex::encode(r);
    hex.truncate(ID_DIGITS);
    format!("{prefix}{hex}")
}

/// Checks that `s` is a well-formed id with `prefix`; `what` names it in the error.
pub fn check_id(s: &str, prefix: &str, what: &str) -> Result<()> {
    let ok = s.strip_prefix(prefix).is_some_and(|d| {
        d.len() == ID_DIGITS
            && d.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        return Ok(());
    }
    let message = format!(
        "invalid {what} id {s:?}; it looks like {prefix}0123456789abcdef0 ({prefix} and 17 lowercase hex digits)"
    );
    Err(match prefix {
        "vol-" => Error::ec2(Ec2Code::InvalidVolumeIdMalformed, message),
        "snap-" => Error::ec2(Ec2Code::InvalidSnapshotIdMalformed, message),
        _ => Error::usage(message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_17_hex_digits_and_are_checked() {
        let v = new_id("vol-");
        assert_eq!(v.len(), 4 + 17);
        check_id(&v, "vol-", "volume").unwrap();
        assert_ne!(v, new_id("vol-"));
        for bad in [
            "vol-123",
            "snap-0123456789abcdef0",
            "vol-0123456789ABCDEF0",
            "vol-0123456789abcdef0x",
        ] {
            let e = check_id(bad, "vol-", "volume").unwrap_err();
            assert!(
                e.to_string().starts_with("InvalidVolumeID.Malformed: "),
                "{e}"
            );
            assert_eq!(e.exit_code() as i32, 2);
        }
    }
}
