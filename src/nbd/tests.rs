//! The protocol against an in-memory export, over a socket pair: a well-behaved client's
//! negotiation and commands, each error a request can earn, and hostile input that must end
//! the connection (and only the connection). The real clients (qemu-io, qemu-img, nbdcopy,
//! nbdinfo) run against a real volume in tests/nbd.rs.

use super::proto::*;
use super::server::{connection, Stream};
use super::Export;
use crate::ebs::Extent;
use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

const BLOCK: u64 = crate::ebs::BLOCK_SIZE as u64;

/// A disk in memory: bytes, and which 512 KiB blocks are allocated.
struct Memory {
    data: Mutex<(Vec<u8>, Vec<bool>)>,
    read_only: bool,
    flushes: Mutex<u32>,
}

impl Memory {
    fn new(size: usize, read_only: bool) -> Memory {
        let blocks = (size as u64).div_ceil(BLOCK) as usize;
        Memory {
            data: Mutex::new((vec![0; size], vec![false; blocks])),
            read_only,
            flushes: Mutex::new(0),
        }
    }
}

impl Export for Memory {
    fn name(&self) -> &str {
        "vol-0123456789abcdef0"
    }
    fn description(&self) -> String {
        "a disk in memory".into()
    }
    fn size(&self) -> u64 {
        self.data.lock().unwrap().0.len() as u64
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if offset == 3 * BLOCK {
            return Err(Error::StoreCorrupt("block 3 failed authentication".into()));
        }
        let d = self.data.lock().unwrap();
        buf.copy_from_slice(&d.0[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
    fn write_at(&self, offset: u64, data: &[u8], _fua: bool) -> Result<()> {
        let mut d = self.data.lock().unwrap();
        d.0[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        for b in offset / BLOCK..(offset + data.len() as u64).div_ceil(BLOCK) {
            d.1[b as usize] = true;
        }
        Ok(())
    }
    fn write_zeroes(&self, offset: u64, len: u64, _no_hole: bool, _fua: bool) -> Result<()> {
        let mut d = self.data.lock().unwrap();
        d.0[offset as usize..(offset + len) as usize].fill(0);
        Ok(())
    }
    fn trim(&self, offset: u64, len: u64, fua: bool) -> Result<()> {
        self.write_zeroes(offset, len, false, fua)
    }
    fn flush(&self) -> Result<()> {
        *self.flushes.lock().unwrap() += 1;
        Ok(())
    }
    fn block_status(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        let d = self.data.lock().unwrap();
        Ok(Extent::runs(offset, len, |i| d.1[i as usize]))
    }
}

/// Runs one server connection on `export` in a thread; the test drives the other end.
fn with_server<T>(
    export: &Memory,
    client: impl FnOnce(&mut UnixStream) -> T,
) -> (T, std::io::Result<()>) {
    let (mut c, s) = UnixStream::pair().unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    std::thread::scope(|scope| {
        let server = scope.spawn(move || {
            let s = Stream::Unix(s);
            connection(export, &s)
        });
        let out = client(&mut c);
        drop(c);
        (out, server.join().unwrap())
    })
}

fn u16_of(c: &mut impl Read) -> u16 {
    read_u16(c).unwrap()
}
fn u32_of(c: &mut impl Read) -> u32 {
    read_u32(c).unwrap()
}
fn u64_of(c: &mut impl Read) -> u64 {
    read_u64(c).unwrap()
}

/// Reads the greeting and sends the client flags.
fn greet(c: &mut UnixStream, flags: u32) {
    assert_eq!(u64_of(c), NBDMAGIC);
    assert_eq!(u64_of(c), IHAVEOPT);
    assert_eq!(u16_of(c), FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    c.write_all(&flags.to_be_bytes()).unwrap();
}

fn option(c: &mut UnixStream, opt: u32, data: &[u8]) {
    let mut m = Vec::new();
    m.u64(IHAVEOPT).u32(opt).u32(data.len() as u32).bytes(data);
    c.write_all(&m).unwrap();
}

/// One option reply: (type, data).
fn option_reply(c: &mut UnixStream, opt: u32) -> (u32, Vec<u8>) {
    assert_eq!(u64_of(c), REPLY_MAGIC);
    assert_eq!(u32_of(c), opt);
    let kind = u32_of(c);
    let mut data = vec![0; u32_of(c) as usize];
    c.read_exact(&mut data).unwrap();
    (kind, data)
}

fn name_query(name: &str, queries: &[&str]) -> Vec<u8> {
    let mut m = Vec::new();
    m.u32(name.len() as u32)
        .bytes(name.as_bytes())
        .u32(queries.len() as u32);
    for q in queries {
        m.u32(q.len() as u32).bytes(q.as_bytes());
    }
    m
}

fn go_data(name: &str, infos: &[u16]) -> Vec<u8> {
    let mut m = Vec::new();
    m.u32(name.len() as u32)
        .bytes(name.as_bytes())
        .u16(infos.len() as u16);
    for i in infos {
        m.u16(*i);
    }
    m
}

/// Negotiates structured replies and base:allocation, then GO; returns the export's flags.
fn negotiate(c: &mut UnixStream) -> u16 {
    greet(c, FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES);
    option(c, OPT_STRUCTURED_REPLY, &[]);
    assert_eq!(option_reply(c, OPT_STRUCTURED_REPLY).0, REP_ACK);
    option(c, OPT_SET_META_CONTEXT, &name_query("", &[BASE_ALLOCATION]));
    let (kind, data) = option_reply(c, OPT_SET_META_CONTEXT);
    assert_eq!(kind, REP_META_CONTEXT);
    assert_eq!(&data[4..], BASE_ALLOCATION.as_bytes());
    assert_eq!(option_reply(c, OPT_SET_META_CONTEXT).0, REP_ACK);
    option(
        c,
        OPT_GO,
        &go_data("vol-0123456789abcdef0", &[INFO_BLOCK_SIZE]),
    );
    let mut flags = 0;
    loop {
        let (kind, data) = option_reply(c, OPT_GO);
        if kind == REP_ACK {
            return flags;
        }
        assert_eq!(kind, REP_INFO);
        match u16::from_be_bytes([data[0], data[1]]) {
            INFO_EXPORT => flags = u16::from_be_bytes([data[10], data[11]]),
            INFO_BLOCK_SIZE => assert_eq!(
                &data[2..],
                &[0, 0, 2, 0, 0, 8, 0, 0, 2, 0, 0, 0],
                "min 512, preferred 512 KiB, max 32 MiB"
            ),
            _ => {}
        }
    }
}

fn request(
    c: &mut UnixStream,
    kind: u16,
    flags: u16,
    cookie: u64,
    offset: u64,
    len: u32,
    data: &[u8],
) {
    let mut m = Vec::new();
    m.u32(REQUEST_MAGIC)
        .u16(flags)
        .u16(kind)
        .u64(cookie)
        .u64(offset)
        .u32(len)
        .bytes(data);
    c.write_all(&m).unwrap();
}

/// A structured reply chunk: (flags, type, payload).
fn chunk(c: &mut UnixStream, cookie: u64) -> (u16, u16, Vec<u8>) {
    let magic = u32_of(c);
    assert_eq!(magic, STRUCTURED_REPLY_MAGIC);
    let flags = u16_of(c);
    let kind = u16_of(c);
    assert_eq!(u64_of(c), cookie);
    let mut data = vec![0; u32_of(c) as usize];
    c.read_exact(&mut data).unwrap();
    (flags, kind, data)
}

/// A simple reply's error field.
fn simple(c: &mut UnixStream, cookie: u64) -> u32 {
    assert_eq!(u32_of(c), SIMPLE_REPLY_MAGIC);
    let e = u32_of(c);
    assert_eq!(u64_of(c), cookie);
    e
}

/// The errno of a structured error chunk (or 0 for success of a simple reply).
fn errno_of(c: &mut UnixStream, cookie: u64) -> u32 {
    let magic = u32_of(c);
    let mut rest = [0u8; 12];
    c.read_exact(&mut rest[..]).ok();
    if magic == SIMPLE_REPLY_MAGIC {
        assert_eq!(u64::from_be_bytes(rest[4..12].try_into().unwrap()), cookie);
        return u32::from_be_bytes(rest[..4].try_into().unwrap());
    }
    assert_eq!(magic, STRUCTURED_REPLY_MAGIC);
    let kind = u16::from_be_bytes(rest[2..4].try_into().unwrap());
    assert_eq!(u64::from_be_bytes(rest[4..12].try_into().unwrap()), cookie);
    let mut data = vec![0; u32_of(c) as usize];
    c.read_exact(&mut data).unwrap();
    assert_eq!(kind, REPLY_TYPE_ERROR, "an error chunk");
    let msg_len = u16::from_be_bytes([data[4], data[5]]) as usize;
    assert_eq!(data.len(), 6 + msg_len);
    u32::from_be_bytes(data[..4].try_into().unwrap())
}

#[test]
fn a_client_negotiates_reads_writes_and_sees_holes() {
    let disk = Memory::new(4 * BLOCK as usize, false);
    let (flags, result) = with_server(&disk, |c| {
        let flags = negotiate(c);
        let pattern: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
        request(c, CMD_WRITE, CMD_FLAG_FUA, 1, BLOCK + 512, 8192, &pattern);
        assert_eq!(simple(c, 1), 0);
        request(c, CMD_READ, 0, 2, BLOCK + 512, 8192, &[]);
        let (f, kind, data) = chunk(c, 2);
        assert_eq!((f, kind), (REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA));
        assert_eq!(
            u64::from_be_bytes(data[..8].try_into().unwrap()),
            BLOCK + 512
        );
        assert_eq!(&data[8..], &pattern[..]);
        request(c, CMD_FLUSH, 0, 3, 0, 0, &[]);
        assert_eq!(simple(c, 3), 0);
        request(c, CMD_BLOCK_STATUS, 0, 4, 0, 4 * BLOCK as u32, &[]);
        let (f, kind, data) = chunk(c, 4);
        assert_eq!((f, kind), (REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS));
        let words: Vec<u32> = data
            .chunks(4)
            .map(|w| u32::from_be_bytes(w.try_into().unwrap()))
            .collect();
        let b = BLOCK as u32;
        assert_eq!(words, vec![BASE_ALLOCATION_ID, b, 3, b, 0, 2 * b, 3]);
        request(c, CMD_BLOCK_STATUS, CMD_FLAG_REQ_ONE, 5, 0, 4 * b, &[]);
        let (_, _, data) = chunk(c, 5);
        assert_eq!(data.len(), 12, "one extent");
        request(c, CMD_DISC, 0, 6, 0, 0, &[]);
        flags
    });
    result.unwrap();
    assert_eq!(
        flags,
        FLAG_HAS_FLAGS
            | FLAG_SEND_FLUSH
            | FLAG_SEND_FUA
            | FLAG_SEND_TRIM
            | FLAG_SEND_WRITE_ZEROES
            | FLAG_SEND_DF
            | FLAG_CAN_MULTI_CONN
    );
    assert_eq!(*disk.flushes.lock().unwrap(), 1);
}

#[test]
fn bad_requests_get_errnos_and_the_connection_goes_on() {
    let disk = Memory::new(4 * BLOCK as usize, false);
    let (_, result) = with_server(&disk, |c| {
        negotiate(c);
        let size = 4 * BLOCK;
        request(c, CMD_READ, 0, 1, size - 512, 1024, &[]);
        assert_eq!(errno_of(c, 1), EINVAL, "read past the end");
        request(c, CMD_WRITE, 0, 2, size - 512, 1024, &[7; 1024]);
        assert_eq!(errno_of(c, 2), ENOSPC, "write past the end");
        request(c, CMD_WRITE_ZEROES, 0, 3, u64::MAX - 10, 512, &[]);
        assert_eq!(errno_of(c, 3), ENOSPC, "offset + length overflows");
        request(c, CMD_TRIM, 0, 4, size, 512, &[]);
        assert_eq!(errno_of(c, 4), EINVAL, "trim past the end");
        request(c, CMD_READ, 0, 5, 3 * BLOCK, 4096, &[]);
        assert_eq!(errno_of(c, 5), EIO, "a block failing authentication");
        request(c, CMD_READ, 1 << 9, 6, 0, 512, &[]);
        assert_eq!(errno_of(c, 6), EINVAL, "an unknown flag");
        request(c, CMD_WRITE_ZEROES, CMD_FLAG_REQ_ONE, 7, 0, 512, &[]);
        assert_eq!(errno_of(c, 7), EINVAL, "a flag of another command");
        request(c, 5, 0, 8, 0, 512, &[]);
        assert_eq!(errno_of(c, 8), EINVAL, "NBD_CMD_CACHE is not served");
        request(c, 99, 0, 9, 0, 0, &[]);
        assert_eq!(errno_of(c, 9), EINVAL, "an unknown command");
        request(c, CMD_READ, 0, 10, 0, MAX_PAYLOAD + 1, &[]);
        assert_eq!(errno_of(c, 10), EINVAL, "a read over 32 MiB");
        request(c, CMD_BLOCK_STATUS, 0, 11, 0, 0, &[]);
        assert_eq!(errno_of(c, 11), EINVAL, "status of nothing");
        // Still in step after all that.
        request(c, CMD_READ, 0, 12, 0, 512, &[]);
        let (_, kind, data) = chunk(c, 12);
        assert_eq!((kind, data.len()), (REPLY_TYPE_OFFSET_DATA, 8 + 512));
    });
    result.unwrap();
}

#[test]
fn a_read_only_export_refuses_writes_with_eperm() {
    let disk = Memory::new(BLOCK as usize, true);
    let (_, result) = with_server(&disk, |c| {
        let flags = negotiate(c);
        assert_ne!(flags & FLAG_READ_ONLY, 0);
        assert_eq!(flags & (FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES), 0);
        request(c, CMD_WRITE, 0, 1, 0, 512, &[1; 512]);
        assert_eq!(errno_of(c, 1), EPERM);
        request(c, CMD_WRITE_ZEROES, 0, 2, 0, 512, &[]);
        assert_eq!(errno_of(c, 2), EPERM);
        request(c, CMD_TRIM, 0, 3, 0, 512, &[]);
        assert_eq!(errno_of(c, 3), EPERM);
    });
    result.unwrap();
    assert!(disk.data.lock().unwrap().0.iter().all(|&b| b == 0));
}

#[test]
fn options_without_structured_replies_and_unknown_names_are_refused() {
    let disk = Memory::new(BLOCK as usize, false);
    let (_, result) = with_server(&disk, |c| {
        greet(c, FLAG_C_FIXED_NEWSTYLE);
        option(c, OPT_SET_META_CONTEXT, &name_query("", &[BASE_ALLOCATION]));
        assert_eq!(option_reply(c, OPT_SET_META_CONTEXT).0, REP_ERR_INVALID);
        option(c, OPT_LIST, &[1]);
        assert_eq!(option_reply(c, OPT_LIST).0, REP_ERR_INVALID);
        option(c, OPT_LIST, &[]);
        let (kind, data) = option_reply(c, OPT_LIST);
        assert_eq!(kind, REP_SERVER);
        assert_eq!(&data[4..4 + 21], b"vol-0123456789abcdef0");
        assert_eq!(option_reply(c, OPT_LIST).0, REP_ACK);
        option(c, OPT_STARTTLS, &[]);
        assert_eq!(option_reply(c, OPT_STARTTLS).0, REP_ERR_UNSUP);
        option(c, 4242, &[1, 2, 3]);
        assert_eq!(option_reply(c, 4242).0, REP_ERR_UNSUP);
        option(c, OPT_INFO, &go_data("vol-ffffffffffffffff0", &[]));
        assert_eq!(option_reply(c, OPT_INFO).0, REP_ERR_UNKNOWN);
        // A name length past the option's end.
        let mut bad = go_data("", &[]);
        bad[3] = 200;
        option(c, OPT_GO, &bad);
        assert_eq!(option_reply(c, OPT_GO).0, REP_ERR_INVALID);
        // Without structured replies a read is a simple reply with the data.
        option(c, OPT_GO, &go_data("", &[]));
        while option_reply(c, OPT_GO).0 != REP_ACK {}
        request(c, CMD_READ, 0, 1, 0, 16, &[]);
        assert_eq!(simple(c, 1), 0);
        let mut data = [1u8; 16];
        c.read_exact(&mut data).unwrap();
        assert_eq!(data, [0; 16]);
        request(c, CMD_BLOCK_STATUS, 0, 2, 0, 512, &[]);
        assert_eq!(simple(c, 2), EINVAL, "no context selected");
        request(c, CMD_DISC, 0, 3, 0, 0, &[]);
    });
    result.unwrap();
}

#[test]
fn export_name_enters_transmission_and_abort_ends_politely() {
    let disk = Memory::new(BLOCK as usize, false);
    let (_, result) = with_server(&disk, |c| {
        greet(c, FLAG_C_FIXED_NEWSTYLE);
        option(c, OPT_EXPORT_NAME, b"");
        assert_eq!(u64_of(c), BLOCK);
        let _flags = u16_of(c);
        let mut zeros = [1u8; 124];
        c.read_exact(&mut zeros).unwrap();
        assert_eq!(zeros, [0; 124], "124 zeros without NO_ZEROES");
        request(c, CMD_FLUSH, 0, 1, 0, 0, &[]);
        assert_eq!(simple(c, 1), 0);
    });
    result.unwrap();
    let (_, result) = with_server(&disk, |c| {
        greet(c, FLAG_C_FIXED_NEWSTYLE);
        option(c, OPT_ABORT, &[]);
        assert_eq!(option_reply(c, OPT_ABORT).0, REP_ACK);
    });
    result.unwrap();
}

/// Each hostile opening must end its connection with an error, leave the disk untouched, and
/// not panic the server.
#[test]
fn hostile_clients_are_disconnected() {
    let disk = Memory::new(BLOCK as usize, false);
    type Attack = fn(&mut UnixStream);
    let attacks: [(&str, Attack); 7] = [
        ("unknown client flags", |c| greet(c, 0x80)),
        ("garbage for an option", |c| {
            greet(c, FLAG_C_FIXED_NEWSTYLE);
            c.write_all(b"GET / HTTP/1.1\r\n\r\nxxxxxxxxxxxxxx")
                .unwrap();
        }),
        ("an option of 4 GiB", |c| {
            greet(c, FLAG_C_FIXED_NEWSTYLE);
            let mut m = Vec::new();
            m.u64(IHAVEOPT).u32(OPT_GO).u32(u32::MAX);
            c.write_all(&m).unwrap();
        }),
        ("EXPORT_NAME of an unknown export", |c| {
            greet(c, FLAG_C_FIXED_NEWSTYLE);
            option(c, OPT_EXPORT_NAME, b"vol-nope");
        }),
        ("options without fixed newstyle", |c| {
            greet(c, 0);
            option(c, OPT_LIST, &[]);
        }),
        ("a write of 4 GiB", |c| {
            negotiate(c);
            request(c, CMD_WRITE, 0, 1, 0, u32::MAX, &[0xee; 4096]);
        }),
        ("a bad request magic", |c| {
            negotiate(c);
            c.write_all(&[0xff; REQUEST_LEN]).unwrap();
        }),
    ];
    for (what, attack) in attacks {
        let (_, result) = with_server(&disk, |c| {
            attack(c);
            // The server hangs up: reading reaches the end without a reply.
            let mut rest = Vec::new();
            let _ = c.read_to_end(&mut rest);
        });
        let e = result.expect_err(what);
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{what}: {e}");
    }
    assert!(disk.data.lock().unwrap().0.iter().all(|&b| b == 0));
}
