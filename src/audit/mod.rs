//! The audit trail: one CloudTrail-shaped record per request, per region, chained and sealed.
//!
//! ```text
//! <region folder>/audit/
//!   trail.jsonl         one event per line, appended under .lock
//!   digests/<seq>.json  a digest every hour of activity (CloudTrail's model), MAC'd
//! ```
//!
//! - Every line carries `cofreSequence` (1, 2, …) and `cofrePrevious`, the BLAKE3 hash of the
//!   previous line's bytes: editing, deleting, inserting or reordering a line breaks the chain
//!   at that line. [`verify`] names the first break.
//! - A digest records the sequence and hash of the last line it covers and the hash of the
//!   previous digest, with a keyed BLAKE3 MAC under an AWS owned key: rewriting the chain from
//!   some line on (recomputing every hash) still contradicts the digests.
//! - Appends hold the trail's lock and write one line in one `write` on an `O_APPEND` file; a
//!   line cut short by a kill or a full disk is dropped by the next append, so earlier records
//!   are never damaged. Plaintext, data keys and key material never reach the trail: requests
//!   record key ids, encryption contexts and sizes only.

mod principal;
mod trail;
pub mod usage;

pub use principal::Principal;
pub use trail::{verify, within, Event, Resource, Trail, TrailProblem, UserIdentity};
