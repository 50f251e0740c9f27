//! Region names.

use crate::error::{Error, Result};
use std::fmt;

/// An AWS-style region name such as `us-east-1`, `eu-west-1` or `ap-southeast-2`: two or three
/// lowercase words and a number, joined by dashes (`^([a-z]+-){2,3}\d+$`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Region(String);

/// The region used when none is given.
pub const DEFAULT_REGION: &str = "us-east-1";

impl Region {
    /// Validates a region name.
    pub fn new(name: &str) -> Result<Region> {
        let parts: Vec<&str> = name.split('-').collect();
        let words = &parts[..parts.len().saturating_sub(1)];
        let number = parts.last().copied().unwrap_or("");
        let ok = (2..=3).contains(&words.len())
            && words
                .iter()
                .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
            && !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            return Err(Error::usage(format!(
                "invalid region {name:?}; use a region name such as us-east-1, eu-west-1 or ap-southeast-2"
            )));
        }
        Ok(Region(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names() {
        for ok in ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1"] {
            Region::new(ok).unwrap();
        }
        for bad in [
            "",
            "us",
            "us-east",
            "US-east-1",
            "us-east-1a",
            "us--1",
            "a-b-c-d-1",
            "../x-y-1",
        ] {
            assert!(Region::new(bad).is_err(), "{bad}");
        }
    }
}
