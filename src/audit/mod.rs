//! The audit trail: one CloudTrail-shaped record per request, per region, chained with a key,
//! marked and sealed.
//!
//! ```text
//! <region folder>/audit/
//!   trail.jsonl         one event per line, appended under .lock
//!   mark.json           the high-water mark: the last record appended, MAC'd
//!   digests/<seq>.json  a digest every hour of activity (CloudTrail's model), MAC'd
//! ```
//!
//! - Every line carries `cofreSequence` (1, 2, …), `cofreChain: "keyed-blake3"` and
//!   `cofrePrevious`, the keyed BLAKE3 of the previous line's bytes under the trail's chain key
//!   (an AWS owned key, derived from the domain key with its own label): editing, deleting,
//!   inserting or reordering a line breaks the chain at that line, and without the key a
//!   script cannot recompute it. [`Trail::check`] names the first break.
//! - Records written by versions before the keyed chain have no `cofreChain`; their
//!   `cofrePrevious` is the plain BLAKE3 of the previous line, and is still checked as such. The
//!   first keyed record links the last of them with the key, so rewriting them breaks the keyed
//!   chain there; a trail that holds only such records is sealed by its digests alone, as
//!   before, and `audit verify` says so. Once a keyed record is in the trail, an unkeyed one
//!   after it is a rewrite.
//! - The high-water mark (`mark.json`: the last sequence and the keyed BLAKE3 of its line,
//!   MAC'd) is replaced atomically after each batch of appends, the batch's lines made durable
//!   first. A trail cut back, emptied or with its last record edited contradicts it; a deleted
//!   mark beside keyed records is reported. A crash between a batch's lines and its mark leaves
//!   the mark behind by at most one batch (256 records), with those records chained to the one
//!   it names: that is accepted, and anything further past the mark is not. A trail's first
//!   batch marks record 0 before its lines, so that holds for it too. Appends check the end of
//!   the trail against the mark first and refuse to write over a cut (exit 4), so a truncation
//!   is never hidden by the next record. What it cannot catch: the trail, the mark and the
//!   digests all put back to an older copy (or the mark alone, to one up to a batch older).
//! - A digest records the sequence and hash of the last line it covers and the hash of the
//!   previous digest, with a keyed BLAKE3 MAC under another AWS owned key: records up to it are
//!   sealed by a digest; later ones by the keyed chain and the mark until the next digest.
//!   [`TrailReport`] says which is which.
//! - Group commit: the appends of one process to one trail that meet share a batch. The first
//!   to find nobody writing leads: under the trail's lock it writes every queued line in one
//!   `write` on an `O_APPEND` file, syncs once, marks once and looks for a due digest once;
//!   each append returns once its batch is synced and marked, with the batch's outcome (a
//!   failed batch is cut back and every request in it gets the error). Processes sharing a
//!   home still take the lock per batch; a batch reads the trail's end again only when the
//!   trail or the mark changed since this process last checked them (inode, size and change
//!   times), and [`Trail::reserve`] then reads nothing at all. The queue lives in a
//!   process-wide registry keyed by the trail's folder (`group.rs`).
//! - A line cut short by a kill or a full disk (the last line, without its newline) is never
//!   marked: `audit verify` reports it as such, not as an edit, and the next append drops it,
//!   so earlier records are never damaged. A whole last line that is not a record is damage.
//!   Plaintext, data keys and key material never reach the trail: requests record key ids,
//!   encryption contexts and sizes only.

mod group;
mod principal;
mod trail;
pub mod usage;

pub use principal::Principal;
pub use trail::{
    verify, within, Event, Resource, Trail, TrailProblem, TrailReport, UserIdentity, KEYED_CHAIN,
};
