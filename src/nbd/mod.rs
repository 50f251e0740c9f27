//! The NBD front end: a volume (or snapshot) served as a disk over the Network Block Device
//! protocol, as the NetworkBlockDevice project's `doc/proto.md` specifies it, to qemu, qemu-img,
//! qemu-io, nbdcopy, nbdinfo, nbdfuse or the kernel's nbd driver.
//!
//! - [`handshake`]: fixed newstyle negotiation (EXPORT_NAME, ABORT, LIST, INFO, GO,
//!   STRUCTURED_REPLY, LIST/SET_META_CONTEXT with `base:allocation`); block size constraints
//!   advertised: minimum 512, preferred 512 KiB (one EBS block), maximum 32 MiB.
//! - [`transmission`]: READ, WRITE (FUA), FLUSH, TRIM, WRITE_ZEROES (NO_HOLE), BLOCK_STATUS,
//!   DISC; errors as NBD errnos.
//! - [`server`]: Unix or loopback TCP listeners, a thread per connection, shutdown.
//!
//! The export is an [`Export`]; cofre's is a [`VolumeSession`], shared by every connection:
//! a FLUSH on one connection makes every connection's completed writes durable, so the server
//! offers `NBD_FLAG_CAN_MULTI_CONN`. The front end owns the medium only: every read, write and
//! flush is the session's, which owns the keys and the store.

mod handshake;
pub mod proto;
mod server;
mod transmission;

pub use server::{serve, Listen, Listener, ServeReport, HANDSHAKE_TIMEOUT, MAX_CONNECTIONS};

use crate::ebs::{Extent, VolumeSession};
use crate::error::Result;
use std::time::Duration;

/// A disk the server exports. Shared by every connection's thread.
pub trait Export: Sync {
    /// The export name (a volume or snapshot id).
    fn name(&self) -> &str;
    /// A line for people (`NBD_INFO_DESCRIPTION`, `NBD_OPT_LIST`).
    fn description(&self) -> String;
    /// Bytes.
    fn size(&self) -> u64;
    fn read_only(&self) -> bool;
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
    fn write_at(&self, offset: u64, data: &[u8], fua: bool) -> Result<()>;
    fn write_zeroes(&self, offset: u64, len: u64, no_hole: bool, fua: bool) -> Result<()>;
    fn trim(&self, offset: u64, len: u64, fua: bool) -> Result<()>;
    fn flush(&self) -> Result<()>;
    fn block_status(&self, offset: u64, len: u64) -> Result<Vec<Extent>>;
    /// Called by the server about once a second, for housekeeping (writing back old changes).
    fn idle(&self) -> Result<()> {
        Ok(())
    }
}

/// Changes older than this are flushed by the server on its own, as a disk writes back its
/// cache.
pub const WRITE_BACK_AFTER: Duration = Duration::from_secs(5);

impl Export for VolumeSession<'_> {
    fn name(&self) -> &str {
        self.id()
    }
    fn description(&self) -> String {
        format!(
            "cofre {} {} ({}, {})",
            if self.id().starts_with("snap-") {
                "snapshot"
            } else {
                "volume"
            },
            self.id(),
            if self.encrypted() {
                "encrypted"
            } else {
                "not encrypted"
            },
            if self.read_only() {
                "read-only"
            } else {
                "read-write"
            }
        )
    }
    fn size(&self) -> u64 {
        VolumeSession::size(self)
    }
    fn read_only(&self) -> bool {
        VolumeSession::read_only(self)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        VolumeSession::read_at(self, offset, buf)
    }
    fn write_at(&self, offset: u64, data: &[u8], fua: bool) -> Result<()> {
        VolumeSession::write_at(self, offset, data, fua)
    }
    fn write_zeroes(&self, offset: u64, len: u64, no_hole: bool, fua: bool) -> Result<()> {
        VolumeSession::write_zeroes(self, offset, len, no_hole, fua)
    }
    fn trim(&self, offset: u64, len: u64, fua: bool) -> Result<()> {
        VolumeSession::trim(self, offset, len, fua)
    }
    fn flush(&self) -> Result<()> {
        VolumeSession::flush(self)
    }
    fn block_status(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        VolumeSession::block_status(self, offset, len)
    }
    fn idle(&self) -> Result<()> {
        self.flush_if_idle(WRITE_BACK_AFTER).map(drop)
    }
}

#[cfg(test)]
mod tests;
