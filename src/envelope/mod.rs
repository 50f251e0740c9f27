//! The envelope format (docs/FORMAT.md) and the engine that seals and opens payloads.
//!
//! - [`Header`]: magic, version, chunk size, message id, [`EncryptionContext`], wrapped data
//!   keys ([`WrappedKey`]), key commitment, authentication tag.
//! - [`ChunkCipher`] and [`Layout`]: one chunk sealed or opened by index; where chunk i sits.
//! - [`engine`]: parallel drivers over memory maps, and a bounded pipeline for pipes.

mod context;
pub mod engine;
mod header;
mod stream;

pub use context::EncryptionContext;
pub use engine::Progress;
pub use header::{
    check_prefix, read_full, Header, HeaderKeys, PublicKeyRecipient, PublicKeyScheme, Recipient,
    WrappedKey, MAGIC, MAX_ALIGN, PREFIX_LEN, VERSION,
};
pub use stream::{
    chunk_log2, ChunkCipher, Layout, DEFAULT_CHUNK_LOG2, MAX_CHUNKS, MAX_CHUNK_LOG2, MIN_CHUNK_LOG2,
};
