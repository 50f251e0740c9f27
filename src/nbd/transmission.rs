//! The transmission phase: requests in, replies out, one at a time per connection.
//!
//! Every request is checked before it touches the export: its flags (an unknown or
//! inapplicable flag is `EINVAL`), its range (`EINVAL` past the end, `ENOSPC` for writes),
//! writes to a read-only export (`EPERM`). A failure of the export becomes an errno: `EIO` for a
//! block that fails authentication or cannot be read, `ENOSPC` for a full disk. With structured
//! replies the error carries the message. A bad request magic or a WRITE whose payload is over
//! [`MAX_PAYLOAD`] cannot be answered in step with the stream and ends the connection.

use super::handshake::{violation, Negotiated};
use super::proto::*;
use super::Export;
use crate::error::Error;
use std::io::{self, Read, Write};

/// One request.
#[derive(Debug, Clone, Copy)]
struct Request {
    flags: u16,
    kind: u16,
    cookie: u64,
    offset: u64,
    len: u32,
}

/// An error reply: errno and message.
type Failure = (u32, String);

/// Serves requests until the client disconnects (NBD_CMD_DISC or end of stream).
pub fn serve(
    r: &mut impl Read,
    w: &mut impl Write,
    export: &dyn Export,
    neg: Negotiated,
) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    loop {
        let mut head = [0u8; REQUEST_LEN];
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let field = |a: usize, b: usize| &head[a..b];
        let magic = u32::from_be_bytes(field(0, 4).try_into().expect("4"));
        if magic != REQUEST_MAGIC {
            return Err(violation(format!("bad request magic {magic:#x}")));
        }
        let req = Request {
            flags: u16::from_be_bytes(field(4, 6).try_into().expect("2")),
            kind: u16::from_be_bytes(field(6, 8).try_into().expect("2")),
            cookie: u64::from_be_bytes(field(8, 16).try_into().expect("8")),
            offset: u64::from_be_bytes(field(16, 24).try_into().expect("8")),
            len: u32::from_be_bytes(field(24, 28).try_into().expect("4")),
        };
        if req.kind == CMD_WRITE {
            if req.len > MAX_PAYLOAD {
                return Err(violation(format!("WRITE of {} bytes", req.len)));
            }
            buf.resize(req.len as usize, 0);
            r.read_exact(&mut buf)?;
        }
        out.clear();
        let mut payload = false;
        match req.kind {
            CMD_DISC => return Ok(()),
            CMD_READ => payload = read(export, neg, &req, &mut buf, &mut out),
            CMD_BLOCK_STATUS => {
                let result = block_status(export, neg, &req, &mut out);
                if let Err(f) = result {
                    error_reply(neg, &req, f, &mut out);
                }
            }
            _ => {
                let result = command(export, &req, &buf);
                match result {
                    Ok(()) => simple_header(&req, 0, &mut out),
                    Err(f) => error_reply(neg, &req, f, &mut out),
                }
            }
        }
        w.write_all(&out)?;
        if payload {
            w.write_all(&buf)?;
        }
        w.flush()?;
        // A connection keeps at most 4 MiB of buffer between requests.
        if buf.capacity() > KEEP_BUFFER {
            buf = Vec::new();
        }
    }
}

/// Buffer capacity a connection keeps after a large request.
const KEEP_BUFFER: usize = 4 << 20;

/// Fails with `EINVAL` unless every flag set is in `allowed`.
fn flags_in(req: &Request, allowed: u16) -> Result<(), Failure> {
    if req.flags & !allowed != 0 {
        return Err((EINVAL, format!("flags {:#x} not valid here", req.flags)));
    }
    Ok(())
}

/// Fails with `errno` unless the request lies within the export.
fn in_range(export: &dyn Export, req: &Request, errno: u32) -> Result<(), Failure> {
    let end = req.offset.checked_add(u64::from(req.len));
    if end.is_none_or(|e| e > export.size()) {
        return Err((
            errno,
            format!(
                "bytes {}..+{} are past the end of the export ({} bytes)",
                req.offset,
                req.len,
                export.size()
            ),
        ));
    }
    Ok(())
}

fn writable(export: &dyn Export) -> Result<(), Failure> {
    if export.read_only() {
        return Err((EPERM, "the export is read-only".into()));
    }
    Ok(())
}

/// The errno a failure of the export is answered with.
fn errno(e: &Error) -> Failure {
    let n = match e {
        Error::Io { source, .. }
            if matches!(
                source.kind(),
                io::ErrorKind::StorageFull
                    | io::ErrorKind::QuotaExceeded
                    | io::ErrorKind::FileTooLarge
            ) =>
        {
            ENOSPC
        }
        Error::Usage(_) => EINVAL,
        _ => EIO,
    };
    (n, e.to_string())
}

/// WRITE, FLUSH, TRIM, WRITE_ZEROES and unknown commands.
fn command(export: &dyn Export, req: &Request, data: &[u8]) -> Result<(), Failure> {
    let fua = req.flags & CMD_FLAG_FUA != 0;
    let len = u64::from(req.len);
    match req.kind {
        CMD_WRITE => {
            flags_in(req, CMD_FLAG_FUA)?;
            writable(export)?;
            in_range(export, req, ENOSPC)?;
            export
                .write_at(req.offset, data, fua)
                .map_err(|e| errno(&e))
        }
        CMD_FLUSH => {
            flags_in(req, CMD_FLAG_FUA)?;
            export.flush().map_err(|e| errno(&e))
        }
        CMD_TRIM => {
            flags_in(req, CMD_FLAG_FUA)?;
            writable(export)?;
            in_range(export, req, EINVAL)?;
            export.trim(req.offset, len, fua).map_err(|e| errno(&e))
        }
        CMD_WRITE_ZEROES => {
            flags_in(req, CMD_FLAG_FUA | CMD_FLAG_NO_HOLE)?;
            writable(export)?;
            in_range(export, req, ENOSPC)?;
            let no_hole = req.flags & CMD_FLAG_NO_HOLE != 0;
            export
                .write_zeroes(req.offset, len, no_hole, fua)
                .map_err(|e| errno(&e))
        }
        k => Err((EINVAL, format!("unknown command {k}"))),
    }
}

/// READ: the reply header goes to `out`; true if `buf` (the data read) follows it.
fn read(
    export: &dyn Export,
    neg: Negotiated,
    req: &Request,
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> bool {
    let allowed = if neg.structured {
        CMD_FLAG_FUA | CMD_FLAG_DF
    } else {
        CMD_FLAG_FUA
    };
    let checked = flags_in(req, allowed)
        .and_then(|()| in_range(export, req, EINVAL))
        .and_then(|()| {
            if req.len > MAX_PAYLOAD {
                return Err((EINVAL, format!("READ of {} bytes is over 32 MiB", req.len)));
            }
            buf.resize(req.len as usize, 0);
            export.read_at(req.offset, buf).map_err(|e| errno(&e))
        });
    if let Err(f) = checked {
        error_reply(neg, req, f, out);
        return false;
    }
    if !neg.structured {
        simple_header(req, 0, out);
    } else if buf.is_empty() {
        chunk_header(req, REPLY_FLAG_DONE, REPLY_TYPE_NONE, 0, out);
    } else {
        chunk_header(
            req,
            REPLY_FLAG_DONE,
            REPLY_TYPE_OFFSET_DATA,
            8 + req.len,
            out,
        );
        out.u64(req.offset);
    }
    true
}

fn block_status(
    export: &dyn Export,
    neg: Negotiated,
    req: &Request,
    out: &mut Vec<u8>,
) -> Result<(), Failure> {
    flags_in(req, CMD_FLAG_FUA | CMD_FLAG_REQ_ONE)?;
    if !neg.allocation {
        return Err((EINVAL, "no metadata context was selected".into()));
    }
    if req.len == 0 {
        return Err((EINVAL, "BLOCK_STATUS of 0 bytes".into()));
    }
    in_range(export, req, EINVAL)?;
    let mut extents = export
        .block_status(req.offset, u64::from(req.len))
        .map_err(|e| errno(&e))?;
    if req.flags & CMD_FLAG_REQ_ONE != 0 {
        extents.truncate(1);
    }
    let mut body = Vec::with_capacity(4 + 8 * extents.len());
    body.u32(BASE_ALLOCATION_ID);
    for e in &extents {
        let flags = if e.allocated {
            0
        } else {
            STATE_HOLE | STATE_ZERO
        };
        // Each extent lies within the request, whose length is a u32.
        body.u32(e.length as u32).u32(flags);
    }
    chunk_header(
        req,
        REPLY_FLAG_DONE,
        REPLY_TYPE_BLOCK_STATUS,
        body.len() as u32,
        out,
    );
    out.extend_from_slice(&body);
    Ok(())
}

fn simple_header(req: &Request, error: u32, out: &mut Vec<u8>) {
    out.u32(SIMPLE_REPLY_MAGIC).u32(error).u64(req.cookie);
}

fn chunk_header(req: &Request, flags: u16, kind: u16, len: u32, out: &mut Vec<u8>) {
    out.u32(STRUCTURED_REPLY_MAGIC)
        .u16(flags)
        .u16(kind)
        .u64(req.cookie)
        .u32(len);
}

/// An error as a structured error chunk with its message, or a simple reply.
fn error_reply(neg: Negotiated, req: &Request, (errno, message): Failure, out: &mut Vec<u8>) {
    out.clear();
    if !neg.structured {
        return simple_header(req, errno, out);
    }
    let mut end = message.len().min(MAX_STRING);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let msg = &message.as_bytes()[..end];
    chunk_header(
        req,
        REPLY_FLAG_DONE,
        REPLY_TYPE_ERROR,
        6 + msg.len() as u32,
        out,
    );
    out.u32(errno).u16(msg.len() as u16).bytes(msg);
}
