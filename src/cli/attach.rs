//! `volume attach` and `snapshot attach`: a volume session served over NBD until Ctrl-C,
//! SIGTERM or SIGHUP; then the session is flushed and detached, and cofre exits 0.
//!
//! Once the server listens, stdout gets one line: the export's NBD URI (with `--output json`,
//! `{"ExportName", "Uri", "ReadOnly", "Size"}`), so a script can wait for it; stderr says what
//! is served and, at the end, that it was detached.

use crate::ebs::VolumeSession;
use crate::error::Result;
use crate::nbd::{Listen, Listener};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Binds `at`, attaches with `attach`, serves until a signal, then closes the session.
pub(super) fn serve<'k>(
    at: &Listen,
    attach: impl FnOnce() -> Result<VolumeSession<'k>>,
    json: bool,
) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    crate::store::on_interrupt(move || flag.store(true, Ordering::SeqCst));
    let listener = Listener::bind(at)?;
    let session = attach()?;
    let uri = listener.uri(session.id());
    let line = if json {
        serde_json::json!({
            "ExportName": session.id(),
            "Uri": uri,
            "ReadOnly": session.read_only(),
            "Size": session.size(),
        })
        .to_string()
    } else {
        uri.clone()
    };
    // A closed stdout is no reason to stop serving.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    drop(out);
    eprintln!(
        "cofre: serving {} ({} bytes, {}{}) at {uri}; Ctrl-C or SIGTERM detaches it",
        session.id(),
        session.size(),
        if session.encrypted() {
            "encrypted, "
        } else {
            ""
        },
        if session.read_only() {
            "read-only"
        } else {
            "read-write"
        },
    );
    let served = crate::nbd::serve(&session, &listener, &stop);
    drop(listener);
    let id = session.id().to_owned();
    let closed = session.close();
    let report = served?;
    closed?;
    eprintln!(
        "cofre: detached {id} after {} connection{}{}",
        report.connections,
        if report.connections == 1 { "" } else { "s" },
        if report.dropped > 0 {
            format!(" ({} dropped for breaking the protocol)", report.dropped)
        } else {
            String::new()
        }
    );
    Ok(())
}
