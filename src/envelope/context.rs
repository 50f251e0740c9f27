//! The encryption context: string pairs bound to every wrapped key and to the header.

use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// Most pairs an encryption context may hold.
pub const MAX_PAIRS: usize = 64;
/// Longest key or value, in bytes.
pub const MAX_STRING: usize = 1024;

/// Key/value pairs that must match for a decrypt to succeed, as in KMS. Ordered by key bytes,
/// so the encoding is canonical: no two contexts encode alike and equal contexts encode equally.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a context from `K=V` arguments, refusing duplicates and bad sizes.
    pub fn from_pairs<I, S>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut ctx = Self::new();
        for p in pairs {
            let p = p.as_ref();
            let (k, v) = p.split_once('=').ok_or_else(|| {
                Error::usage(format!(
                    "bad encryption context pair {p:?}: write it as KEY=VALUE"
                ))
            })?;
            ctx.insert(k, v)?;
        }
        Ok(ctx)
    }

    /// Adds one pair.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<()> {
        if key.is_empty() {
            return Err(Error::usage("encryption context keys must not be empty"));
        }
        if key.len() > MAX_STRING || value.len() > MAX_STRING {
            return Err(Error::usage(format!(
                "encryption context key or value over {MAX_STRING} bytes: {key:?}"
            )));
        }
        if self.0.len() >= MAX_PAIRS {
            return Err(Error::usage(format!(
                "encryption context has more than {MAX_PAIRS} pairs"
            )));
        }
        if self.0.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(Error::usage(format!(
                "encryption context key {key:?} given twice; give each key once"
            )));
        }
        Ok(())
    }

    /// The pairs, ordered by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks that every pair of `required` is in `self`; the error names the first that isn't.
    pub fn require(&self, required: &EncryptionContext) -> Result<()> {
        for (k, v) in required.iter() {
            match self.get(k) {
                Some(have) if have == v => {}
                Some(_) => {
                    return Err(Error::ContextMismatch(format!(
                        "the file's value for {k:?} differs from the one given"
                    )))
                }
                None => {
                    return Err(Error::ContextMismatch(format!(
                        "the file's context has no key {k:?}"
                    )))
                }
            }
        }
        Ok(())
    }

    /// The canonical encoding: u16 count, then for each pair in key order u16 length + key bytes,
    /// u16 length + value bytes (all big-endian).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.0.len() as u16).to_be_bytes());
        for (k, v) in self.iter() {
            out.extend_from_slice(&(k.len() as u16).to_be_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as u16).to_be_bytes());
            out.extend_from_slice(v.as_bytes());
        }
    }

    /// The canonical encoding as a new buffer.
    pub fn encoded(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }
}
