//! The fixed newstyle handshake: option haggling until `NBD_OPT_GO` or `NBD_OPT_EXPORT_NAME`.
//!
//! Served: EXPORT_NAME, ABORT, LIST, INFO, GO, STRUCTURED_REPLY, LIST_META_CONTEXT and
//! SET_META_CONTEXT (`base:allocation`). STARTTLS and anything else get `NBD_REP_ERR_UNSUP`
//! (cofre serves on loopback only). The one export answers to its id and to the empty
//! (default) name. A client that breaks a rule the server cannot answer with an error reply (bad
//! magic, unknown client flags, an option over [`MAX_OPTION_LEN`], more than [`MAX_OPTIONS`]
//! options, an unknown name with EXPORT_NAME) is disconnected.

use super::proto::*;
use super::Export;
use std::io::{self, Read, Write};

/// What the client chose, for the transmission phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// `NBD_OPT_STRUCTURED_REPLY` was acknowledged.
    pub structured: bool,
    /// `base:allocation` was selected for this export.
    pub allocation: bool,
}

/// A reason to drop the connection.
pub fn violation(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// The transmission flags of `export`.
pub fn transmission_flags(export: &dyn Export, structured: bool) -> u16 {
    let mut f = FLAG_HAS_FLAGS | FLAG_SEND_FLUSH | FLAG_SEND_FUA | FLAG_CAN_MULTI_CONN;
    if export.read_only() {
        f |= FLAG_READ_ONLY;
    } else {
        f |= FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES;
    }
    if structured {
        f |= FLAG_SEND_DF;
    }
    f
}

/// The minimum block size advertised: 512, unless the export's size is not a multiple of it.
pub fn min_block(export: &dyn Export) -> u32 {
    if export.size().is_multiple_of(512) {
        512
    } else {
        1
    }
}

/// Runs the handshake. `Ok(None)`: the client aborted (or went away between options).
pub fn handshake(
    r: &mut impl Read,
    w: &mut impl Write,
    export: &dyn Export,
) -> io::Result<Option<Negotiated>> {
    let mut hello = Vec::with_capacity(18);
    hello
        .u64(NBDMAGIC)
        .u64(IHAVEOPT)
        .u16(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    send(w, &hello)?;
    let client = read_u32(r)?;
    if client & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0 {
        return Err(violation(format!("unknown client flags {client:#x}")));
    }
    let fixed = client & FLAG_C_FIXED_NEWSTYLE != 0;
    let no_zeroes = client & FLAG_C_NO_ZEROES != 0;
    let mut h = Haggle {
        export,
        structured: false,
        allocation: false,
    };
    for _ in 0..MAX_OPTIONS {
        let magic = match read_u64(r) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        };
        if magic != IHAVEOPT {
            return Err(violation(format!("bad option magic {magic:#x}")));
        }
        let opt = read_u32(r)?;
        let len = read_u32(r)?;
        if len > MAX_OPTION_LEN {
            return Err(violation(format!("option {opt} of {len} bytes")));
        }
        let mut data = vec![0u8; len as usize];
        r.read_exact(&mut data)?;
        if !fixed && opt != OPT_EXPORT_NAME {
            return Err(violation(
                "option other than EXPORT_NAME without fixed newstyle",
            ));
        }
        match opt {
            OPT_EXPORT_NAME => {
                let name = std::str::from_utf8(&data).unwrap_or("\u{fffd}");
                if !h.names(name) {
                    return Err(violation(format!("EXPORT_NAME of unknown export {name:?}")));
                }
                let mut m = Vec::with_capacity(10 + 124);
                m.u64(export.size())
                    .u16(transmission_flags(export, h.structured));
                if !no_zeroes {
                    m.bytes(&[0u8; 124]);
                }
                send(w, &m)?;
                return Ok(Some(h.negotiated()));
            }
            OPT_ABORT => {
                // The client may already have closed; nothing more to say either way.
                let _ = reply(w, opt, REP_ACK, &[]);
                return Ok(None);
            }
            OPT_INFO | OPT_GO => {
                if h.info(w, opt, &data)? && opt == OPT_GO {
                    return Ok(Some(h.negotiated()));
                }
            }
            _ => h.option(w, opt, &data)?,
        }
    }
    Err(violation(format!("more than {MAX_OPTIONS} options")))
}

struct Haggle<'e> {
    export: &'e dyn Export,
    structured: bool,
    allocation: bool,
}

impl Haggle<'_> {
    /// True if `name` names the export (its id, or the default export).
    fn names(&self, name: &str) -> bool {
        name.is_empty() || name == self.export.name()
    }

    fn negotiated(&self) -> Negotiated {
        Negotiated {
            structured: self.structured,
            allocation: self.structured && self.allocation,
        }
    }

    /// INFO and GO; true if the export was accepted.
    fn info(&mut self, w: &mut impl Write, opt: u32, data: &[u8]) -> io::Result<bool> {
        let mut f = Fields(data);
        let parsed = (|| {
            let n = f.u32()? as usize;
            let name = f.string(n)?;
            let count = f.u16()?;
            let infos = (0..count).map(|_| f.u16()).collect::<Option<Vec<_>>>()?;
            f.is_empty().then_some((name, infos))
        })();
        let Some((name, infos)) = parsed else {
            return error(w, opt, REP_ERR_INVALID, "malformed INFO/GO request").map(|()| false);
        };
        if !self.names(name) {
            return error(
                w,
                opt,
                REP_ERR_UNKNOWN,
                &format!(
                    "no export {name:?}; this server exports {}",
                    self.export.name()
                ),
            )
            .map(|()| false);
        }
        let e = self.export;
        let mut m = Vec::new();
        m.u16(INFO_EXPORT)
            .u64(e.size())
            .u16(transmission_flags(e, self.structured));
        reply(w, opt, REP_INFO, &m)?;
        // Always sent: the server's constraints differ from the defaults.
        m.clear();
        m.u16(INFO_BLOCK_SIZE)
            .u32(min_block(e))
            .u32(crate::ebs::BLOCK_SIZE as u32)
            .u32(MAX_PAYLOAD);
        reply(w, opt, REP_INFO, &m)?;
        if infos.contains(&INFO_NAME) {
            m.clear();
            m.u16(INFO_NAME).bytes(e.name().as_bytes());
            reply(w, opt, REP_INFO, &m)?;
        }
        if infos.contains(&INFO_DESCRIPTION) {
            m.clear();
            m.u16(INFO_DESCRIPTION).bytes(e.description().as_bytes());
            reply(w, opt, REP_INFO, &m)?;
        }
        reply(w, opt, REP_ACK, &[])?;
        Ok(true)
    }

    /// Every other option.
    fn option(&mut self, w: &mut impl Write, opt: u32, data: &[u8]) -> io::Result<()> {
        match opt {
            OPT_LIST if !data.is_empty() => error(w, opt, REP_ERR_INVALID, "LIST takes no data"),
            OPT_LIST => {
                let name = self.export.name().as_bytes();
                let mut m = Vec::new();
                m.u32(name.len() as u32)
                    .bytes(name)
                    .bytes(self.export.description().as_bytes());
                reply(w, opt, REP_SERVER, &m)?;
                reply(w, opt, REP_ACK, &[])
            }
            OPT_STRUCTURED_REPLY if !data.is_empty() => {
                error(w, opt, REP_ERR_INVALID, "STRUCTURED_REPLY takes no data")
            }
            OPT_STRUCTURED_REPLY => {
                self.structured = true;
                reply(w, opt, REP_ACK, &[])
            }
            OPT_LIST_META_CONTEXT | OPT_SET_META_CONTEXT => self.meta_context(w, opt, data),
            OPT_STARTTLS => error(
                w,
                opt,
                REP_ERR_UNSUP,
                "no TLS: cofre serves on loopback only",
            ),
            _ => error(w, opt, REP_ERR_UNSUP, "option not supported"),
        }
    }

    fn meta_context(&mut self, w: &mut impl Write, opt: u32, data: &[u8]) -> io::Result<()> {
        let set = opt == OPT_SET_META_CONTEXT;
        if set {
            // Replaced even when the request fails.
            self.allocation = false;
        }
        if !self.structured {
            return error(
                w,
                opt,
                REP_ERR_INVALID,
                "negotiate STRUCTURED_REPLY before metadata contexts",
            );
        }
        let mut f = Fields(data);
        let parsed = (|| {
            let n = f.u32()? as usize;
            let name = f.string(n)?;
            let count = f.u32()?;
            // Each query takes at least its 4-byte length: a count past that is malformed.
            if count as usize > f.0.len() / 4 {
                return None;
            }
            let mut queries = Vec::new();
            for _ in 0..count {
                let n = f.u32()? as usize;
                queries.push(f.string(n)?);
            }
            f.is_empty().then_some((name, queries))
        })();
        let Some((name, queries)) = parsed else {
            return error(
                w,
                opt,
                REP_ERR_INVALID,
                "malformed metadata context request",
            );
        };
        if !self.names(name) {
            return error(w, opt, REP_ERR_UNKNOWN, &format!("no export {name:?}"));
        }
        let matches = if set {
            queries.contains(&BASE_ALLOCATION)
        } else {
            queries.is_empty()
                || queries
                    .iter()
                    .any(|q| *q == "base:" || *q == BASE_ALLOCATION)
        };
        if matches {
            let mut m = Vec::new();
            m.u32(if set { BASE_ALLOCATION_ID } else { 0 })
                .bytes(BASE_ALLOCATION.as_bytes());
            reply(w, opt, REP_META_CONTEXT, &m)?;
            if set {
                self.allocation = true;
            }
        }
        reply(w, opt, REP_ACK, &[])
    }
}

fn reply(w: &mut impl Write, opt: u32, kind: u32, data: &[u8]) -> io::Result<()> {
    let mut m = Vec::with_capacity(20 + data.len());
    m.u64(REPLY_MAGIC)
        .u32(opt)
        .u32(kind)
        .u32(data.len() as u32)
        .bytes(data);
    send(w, &m)
}

fn error(w: &mut impl Write, opt: u32, kind: u32, message: &str) -> io::Result<()> {
    reply(w, opt, kind, message.as_bytes())
}
