//! Round trips through the library: `files::encrypt` / `files::decrypt` over regular files (the
//! memory-map driver) and FIFOs (the pipe driver), the two engine drivers against each other,
//! random access to single chunks, and the two crypto backends against each other.

use cofre::crypto::{Backend, SecretKey};
use cofre::envelope::{
    engine, ChunkCipher, Header, HeaderKeys, Layout, Progress, Recipient, DEFAULT_CHUNK_LOG2,
    MAX_ALIGN,
};
use cofre::files::{self, Input, Options, Output};
use cofre::{CreateKeyRequest, EncryptionContext, Home, KeyRef, Kms, Region};
use proptest::prelude::*;
use std::fs::{File, OpenOptions};
use std::io::Cursor;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// Whether AWS-LC is built in. RustCrypto's AES-GCM is generic code, compiled into cofre
/// itself, so in a debug test build it runs unoptimised (a few MB/s, against GB/s for AWS-LC);
/// with only RustCrypto built in, the large-data tests shrink to keep the suite fast.
const FAST_CRYPTO: bool = cfg!(feature = "aws-lc");

/// The chunk size of the large-chunk tests: the default (1 MiB), or 64 KiB when slow.
const LARGE_LOG2: u8 = if FAST_CRYPTO { DEFAULT_CHUNK_LOG2 } else { 16 };

/// Property-test cases per property.
const CASES: u32 = if FAST_CRYPTO { 24 } else { 12 };

// ── Helpers ────────────────────────────────────────────────────────────────────────────────

/// A throwaway home with one key in us-east-1, and a scratch folder beside it.
struct Fixture {
    dir: tempfile::TempDir,
    kms: Kms,
    key: KeyRef,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::open(&dir.path().join("home"), None).unwrap();
        let kms = {
            let ctx = cofre::RequestContext::account_root(home.account_id());
            Kms::new(home, Region::new("us-east-1").unwrap(), ctx)
        };
        let key = kms.create_key(&CreateKeyRequest::default()).unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        Fixture {
            key: key.key_id.parse().unwrap(),
            kms,
            dir,
        }
    }

    /// A path in the scratch folder.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("work").join(name)
    }

    fn encrypt(&self, log2: u8, ctx: &EncryptionContext, input: &Input, out: &Path, b: Backend) {
        files::encrypt(
            &self.kms,
            std::slice::from_ref(&self.key),
            ctx,
            log2,
            input,
            &to_path(out),
            opts(b),
        )
        .unwrap();
    }

    fn decrypt(&self, input: &Input, out: &Path, b: Backend) -> files::Summary {
        files::decrypt(
            &self.kms,
            &EncryptionContext::new(),
            input,
            &to_path(out),
            opts(b),
        )
        .unwrap()
    }

    /// The payload cipher of a sealed file, for random access (`files::open_payload`).
    fn payload_cipher(&self, sealed: &[u8], backend: Backend) -> (ChunkCipher, Layout) {
        files::open_payload(&self.kms, sealed, backend).unwrap()
    }
}

fn opts(backend: Backend) -> Options {
    Options {
        backend,
        quiet: true,
    }
}

fn to_path(p: &Path) -> Output {
    Output::Path {
        path: p.to_path_buf(),
        force: false,
    }
}

/// Deterministic bytes: the BLAKE3 XOF of a seed.
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut h = blake3::Hasher::new();
    h.update(b"cofre roundtrip test data");
    h.update(&seed.to_le_bytes());
    let mut out = vec![0u8; len];
    h.finalize_xof().fill(&mut out);
    out
}

/// Creates a FIFO at `path` and writes `bytes` into it from a thread. The thread is detached
/// on purpose: if the test fails before opening the FIFO, the thread stays blocked instead of
/// hanging the test.
fn feed_fifo(path: &Path, bytes: Vec<u8>) -> JoinHandle<()> {
    let st = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("running mkfifo");
    assert!(st.success(), "mkfifo {} failed", path.display());
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        // The reader may stop early (an error): a broken pipe is expected then.
        if let Ok(mut f) = OpenOptions::new().write(true).open(&p) {
            let _ = f.write_all(&bytes);
        }
    })
}

/// A header for engine-level tests, sealed under `data_key` with a fixed message id.
fn test_header(
    backend: Backend,
    data_key: &SecretKey,
    log2: u8,
    align: usize,
) -> (Vec<u8>, HeaderKeys) {
    let mut h = Header::new(
        log2,
        EncryptionContext::from_pairs(["purpose=test"]).unwrap(),
    );
    h.message_id = [7u8; 32];
    // Engine tests need no keyring; an unknown recipient type keeps the header well formed.
    h.recipients.push(Recipient::Unknown {
        kind: 0xee,
        body: b"engine test".to_vec(),
    });
    let keys = HeaderKeys::derive(backend, data_key, &h.message_id);
    (h.seal(&keys, align).unwrap(), keys)
}

/// Seals `pt` with both engine drivers, checks they agree byte for byte, and returns the bytes.
fn seal_both_drivers(cipher: &ChunkCipher, layout: Layout, header: &[u8], pt: &[u8]) -> Vec<u8> {
    let mut f = tempfile::tempfile().unwrap();
    engine::seal_slice(cipher, layout, header, pt, None, &f, &Progress::hidden()).unwrap();
    let mut from_slice = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut from_slice).unwrap();

    let mut from_stream = Vec::new();
    engine::seal_stream(
        cipher,
        layout,
        header,
        Cursor::new(pt.to_vec()),
        &mut from_stream,
        &Progress::hidden(),
    )
    .unwrap();

    assert_eq!(from_slice.len() as u64, layout.sealed_len(pt.len() as u64));
    assert!(
        from_slice == from_stream,
        "seal_slice and seal_stream differ for {} bytes, chunk {}",
        pt.len(),
        layout.chunk_size
    );
    from_slice
}

/// Opens `sealed` with both engine drivers and checks both give `pt`.
fn open_both_drivers(cipher: &ChunkCipher, layout: Layout, sealed: &[u8], pt: &[u8]) {
    let mut f = tempfile::tempfile().unwrap();
    let n = engine::open_slice(cipher, layout, sealed, None, &f, &Progress::hidden()).unwrap();
    assert_eq!(n, pt.len() as u64);
    let mut from_slice = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut from_slice).unwrap();
    assert!(from_slice == pt, "open_slice gave other bytes");

    let mut from_stream = Vec::new();
    let payload = &sealed[layout.header_len as usize..];
    engine::open_stream(
        cipher,
        layout,
        Cursor::new(payload.to_vec()),
        &mut from_stream,
        &Progress::hidden(),
    )
    .unwrap();
    assert!(from_stream == pt, "open_stream gave other bytes");
}

/// Opens every chunk of `sealed` on its own, by offset, and compares with `pt`.
fn check_random_access(cipher: &ChunkCipher, layout: Layout, sealed: &File, pt: &[u8]) {
    let c = layout.chunk_size as usize;
    let count = layout.chunk_count(pt.len() as u64);
    // Back to front, so no chunk is read after the one before it.
    for i in (0..count).rev() {
        let start = i as usize * c;
        let want = &pt[start..(start + c).min(pt.len())];
        let mut buf = vec![0u8; want.len() + 16];
        sealed
            .read_exact_at(&mut buf, layout.chunk_offset(i))
            .unwrap();
        let mut out = vec![0u8; want.len()];
        cipher.open(i, i + 1 == count, &buf, &mut out).unwrap();
        assert!(out == want, "chunk {i} opened alone differs");
    }
}

/// The interesting sizes for a chunk size `c`.
fn sizes(c: usize) -> Vec<usize> {
    vec![0, 1, c - 1, c, c + 1, 2 * c, 7 * c + 123]
}

// ── Files and pipes ────────────────────────────────────────────────────────────────────────

/// Encrypts and decrypts regular files (memory-map driver) at the edge sizes.
fn file_round_trip(log2: u8, backend: Backend) {
    let fx = Fixture::new();
    let c = 1usize << log2;
    for (k, n) in sizes(c).into_iter().enumerate() {
        let pt = data(k as u64, n);
        let plain = fx.path(&format!("plain-{n}"));
        let sealed = fx.path(&format!("sealed-{n}"));
        let back = fx.path(&format!("back-{n}"));
        std::fs::write(&plain, &pt).unwrap();
        let ctx = EncryptionContext::new();
        fx.encrypt(log2, &ctx, &Input::Path(plain.clone()), &sealed, backend);

        let layout_len = std::fs::metadata(&sealed).unwrap().len();
        let info = files::inspect(&Input::Path(sealed.clone())).unwrap();
        let layout = Layout {
            header_len: info.header_len,
            chunk_size: c as u64,
        };
        assert_eq!(
            layout_len,
            layout.sealed_len(n as u64),
            "size of sealed {n}"
        );
        assert_eq!(info.header.chunk_log2, log2);
        assert_eq!(info.payload_len, Some(n as u64));
        assert_eq!(info.chunk_count, Some(n as u64 / c as u64 + 1));
        assert_eq!(info.file_len, Some(layout_len));

        let summary = fx.decrypt(&Input::Path(sealed.clone()), &back, backend);
        assert_eq!(summary.bytes_out, n as u64);
        assert!(
            std::fs::read(&back).unwrap() == pt,
            "file round trip of {n} bytes"
        );
    }
}

#[test]
fn files_round_trip_4k_chunks() {
    for &b in Backend::ALL {
        file_round_trip(12, b);
    }
}

#[test]
fn files_round_trip_default_chunks() {
    file_round_trip(LARGE_LOG2, Backend::default());
}

/// Encrypts from a FIFO and decrypts from a FIFO (the pipe driver), and crosses with the
/// memory-map driver both ways.
fn pipe_round_trip(log2: u8, backend: Backend) {
    let fx = Fixture::new();
    let c = 1usize << log2;
    let ctx = EncryptionContext::from_pairs(["pipe=yes"]).unwrap();
    for (k, n) in sizes(c).into_iter().enumerate() {
        let pt = data(100 + k as u64, n);

        // Pipe in, file out.
        let fifo = fx.path(&format!("in-{n}.fifo"));
        let feeder = feed_fifo(&fifo, pt.clone());
        let sealed = fx.path(&format!("sealed-{n}"));
        fx.encrypt(log2, &ctx, &Input::Path(fifo), &sealed, backend);
        feeder.join().unwrap();
        let info = files::inspect(&Input::Path(sealed.clone())).unwrap();
        assert_eq!(
            info.payload_len,
            Some(n as u64),
            "pipe-sealed payload length"
        );
        assert_eq!(info.header.context, ctx);

        // Decrypt it through the memory-map driver.
        let back = fx.path(&format!("back-map-{n}"));
        fx.decrypt(&Input::Path(sealed.clone()), &back, backend);
        assert!(
            std::fs::read(&back).unwrap() == pt,
            "pipe→file→map, {n} bytes"
        );

        // And through the pipe driver.
        let fifo = fx.path(&format!("sealed-{n}.fifo"));
        let feeder = feed_fifo(&fifo, std::fs::read(&sealed).unwrap());
        let back = fx.path(&format!("back-pipe-{n}"));
        let summary = fx.decrypt(&Input::Path(fifo), &back, backend);
        feeder.join().unwrap();
        assert_eq!(summary.bytes_out, n as u64);
        assert!(
            std::fs::read(&back).unwrap() == pt,
            "pipe→file→pipe, {n} bytes"
        );

        // A file sealed by the memory-map driver opens through the pipe driver.
        let plain = fx.path(&format!("plain-{n}"));
        std::fs::write(&plain, &pt).unwrap();
        let sealed = fx.path(&format!("sealed-map-{n}"));
        fx.encrypt(log2, &ctx, &Input::Path(plain), &sealed, backend);
        let fifo = fx.path(&format!("sealed-map-{n}.fifo"));
        let feeder = feed_fifo(&fifo, std::fs::read(&sealed).unwrap());
        let back = fx.path(&format!("back-map-pipe-{n}"));
        fx.decrypt(&Input::Path(fifo), &back, backend);
        feeder.join().unwrap();
        assert!(
            std::fs::read(&back).unwrap() == pt,
            "map→file→pipe, {n} bytes"
        );
    }
}

#[test]
fn pipes_round_trip_4k_chunks() {
    for &b in Backend::ALL {
        pipe_round_trip(12, b);
    }
}

#[test]
fn pipes_round_trip_default_chunks() {
    pipe_round_trip(LARGE_LOG2, Backend::default());
}

/// A pipe longer than one pipeline batch (4 MiB), so buffers are recycled between batches.
#[test]
fn pipe_round_trip_over_several_batches() {
    let fx = Fixture::new();
    // A batch is 4 MiB: this spans three (two when slow).
    let n = if FAST_CRYPTO { 9 << 20 } else { 9 << 19 } + 4321;
    let pt = data(9, n);
    let fifo = fx.path("big.fifo");
    let feeder = feed_fifo(&fifo, pt.clone());
    let sealed = fx.path("big.cofre");
    fx.encrypt(
        14,
        &EncryptionContext::new(),
        &Input::Path(fifo),
        &sealed,
        Backend::default(),
    );
    feeder.join().unwrap();
    let fifo = fx.path("big-sealed.fifo");
    let feeder = feed_fifo(&fifo, std::fs::read(&sealed).unwrap());
    let back = fx.path("big.out");
    fx.decrypt(&Input::Path(fifo), &back, Backend::default());
    feeder.join().unwrap();
    assert!(std::fs::read(&back).unwrap() == pt);
}

/// `Summary` reports plaintext bytes in and sealed bytes out for encrypt, and the reverse for
/// decrypt, whichever driver ran.
#[test]
fn summaries_count_bytes() {
    let fx = Fixture::new();
    let n = 3 * 4096 + 5;
    let pt = data(3, n);
    let plain = fx.path("plain");
    std::fs::write(&plain, &pt).unwrap();
    let ctx = EncryptionContext::new();
    let key = std::slice::from_ref(&fx.key);
    let o = opts(Backend::default());
    let mut wrong = Vec::new();
    let mut check = |what: &str, got: &files::Summary, want: (u64, u64)| {
        if (got.bytes_in, got.bytes_out) != want {
            wrong.push(format!(
                "{what}: (bytes_in, bytes_out) = ({}, {}), want {want:?}",
                got.bytes_in, got.bytes_out
            ));
        }
    };

    let sealed = fx.path("sealed-map");
    let s = files::encrypt(
        &fx.kms,
        key,
        &ctx,
        12,
        &Input::Path(plain),
        &to_path(&sealed),
        o,
    );
    let sealed_len = std::fs::metadata(&sealed).unwrap().len();
    check("map encrypt", &s.unwrap(), (n as u64, sealed_len));
    let s = fx.decrypt(
        &Input::Path(sealed),
        &fx.path("back-map"),
        Backend::default(),
    );
    check("map decrypt", &s, (sealed_len, n as u64));

    let fifo = fx.path("plain.fifo");
    let feeder = feed_fifo(&fifo, pt.clone());
    let sealed = fx.path("sealed-pipe");
    let s = files::encrypt(
        &fx.kms,
        key,
        &ctx,
        12,
        &Input::Path(fifo),
        &to_path(&sealed),
        o,
    );
    feeder.join().unwrap();
    let sealed_len = std::fs::metadata(&sealed).unwrap().len();
    check("pipe encrypt", &s.unwrap(), (n as u64, sealed_len));

    let fifo = fx.path("sealed.fifo");
    let feeder = feed_fifo(&fifo, std::fs::read(&sealed).unwrap());
    let s = fx.decrypt(
        &Input::Path(fifo),
        &fx.path("back-pipe"),
        Backend::default(),
    );
    feeder.join().unwrap();
    check("pipe decrypt", &s, (sealed_len, n as u64));

    assert!(wrong.is_empty(), "wrong summaries:\n{}", wrong.join("\n"));
}

// ── Random access ──────────────────────────────────────────────────────────────────────────

/// Chunk i of a file made by `files::encrypt` opens on its own, located by `Layout`.
#[test]
fn random_access_to_single_chunks() {
    let fx = Fixture::new();
    for n in [0, 1, 4095, 4096, 4097, 11 * 4096 + 999] {
        let pt = data(n as u64, n);
        let plain = fx.path(&format!("plain-{n}"));
        std::fs::write(&plain, &pt).unwrap();
        let sealed = fx.path(&format!("sealed-{n}"));
        fx.encrypt(
            12,
            &EncryptionContext::new(),
            &Input::Path(plain),
            &sealed,
            Backend::default(),
        );
        let bytes = std::fs::read(&sealed).unwrap();
        for &b in Backend::ALL {
            let (cipher, layout) = fx.payload_cipher(&bytes, b);
            assert_eq!(layout.chunk_size, 4096);
            check_random_access(&cipher, layout, &File::open(&sealed).unwrap(), &pt);
            // A chunk opened under another index, or with the wrong last flag, is refused.
            let count = layout.chunk_count(n as u64);
            let len = if count == 1 { n } else { 4096 };
            let mut buf = vec![0u8; len + 16];
            File::open(&sealed)
                .unwrap()
                .read_exact_at(&mut buf, layout.chunk_offset(0))
                .unwrap();
            let mut out = vec![0u8; len];
            assert!(matches!(
                cipher.open(1, count == 2, &buf, &mut out),
                Err(cofre::Error::Corrupted { chunk: 1 })
            ));
            assert!(matches!(
                cipher.open(0, count != 1, &buf, &mut out),
                Err(cofre::Error::Corrupted { chunk: 0 })
            ));
        }
    }
}

// ── The two engine drivers produce one format ──────────────────────────────────────────────

#[test]
fn drivers_agree_at_edge_sizes() {
    for &b in Backend::ALL {
        for (log2, align) in [(12u8, 1), (16, 1), (12, MAX_ALIGN)] {
            let dk = SecretKey::from_bytes([log2; 32]);
            let (header, keys) = test_header(b, &dk, log2, align);
            assert_eq!(header.len() % align, 0);
            let layout = Layout {
                header_len: header.len() as u64,
                chunk_size: 1 << log2,
            };
            let cipher = ChunkCipher::new(b, &keys.payload);
            for n in sizes(1 << log2) {
                let pt = data(n as u64, n);
                let sealed = seal_both_drivers(&cipher, layout, &header, &pt);
                assert_eq!(&sealed[..header.len()], &header[..]);
                open_both_drivers(&cipher, layout, &sealed, &pt);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    /// Over sizes and chunk sizes: both drivers write the same bytes, both open them, and any
    /// chunk opens alone.
    #[test]
    fn engine_round_trips(
        len in 0usize..200_000,
        log2 in 12u8..=16,
        seed in any::<u64>(),
        backend in proptest::sample::select(Backend::ALL.to_vec()),
    ) {
        let dk = SecretKey::from_bytes(*blake3::hash(&seed.to_le_bytes()).as_bytes());
        let (header, keys) = test_header(backend, &dk, log2, 1);
        let layout = Layout { header_len: header.len() as u64, chunk_size: 1 << log2 };
        let cipher = ChunkCipher::new(backend, &keys.payload);
        let pt = data(seed, len);
        let sealed = seal_both_drivers(&cipher, layout, &header, &pt);
        open_both_drivers(&cipher, layout, &sealed, &pt);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&sealed).unwrap();
        check_random_access(&cipher, layout, &f, &pt);
    }

    /// Over sizes and chunk sizes, through `files`: a regular file and a FIFO each round-trip.
    #[test]
    fn files_round_trip_any_size(len in 0usize..200_000, log2 in 12u8..=16, seed in any::<u64>()) {
        let fx = Fixture::new();
        let pt = data(seed, len);
        let plain = fx.path("plain");
        std::fs::write(&plain, &pt).unwrap();
        let ctx = EncryptionContext::new();
        let sealed = fx.path("sealed");
        fx.encrypt(log2, &ctx, &Input::Path(plain), &sealed, Backend::default());
        let back = fx.path("back");
        fx.decrypt(&Input::Path(sealed.clone()), &back, Backend::default());
        prop_assert!(std::fs::read(&back).unwrap() == pt);

        let fifo = fx.path("sealed.fifo");
        let feeder = feed_fifo(&fifo, std::fs::read(&sealed).unwrap());
        let back = fx.path("back-pipe");
        fx.decrypt(&Input::Path(fifo), &back, Backend::default());
        feeder.join().unwrap();
        prop_assert!(std::fs::read(&back).unwrap() == pt);
    }
}

// ── The two backends produce one format ────────────────────────────────────────────────────

#[cfg(all(feature = "aws-lc", feature = "rustcrypto"))]
mod cross_backend {
    use super::*;

    /// A file sealed with one backend decrypts with the other, both drivers.
    #[test]
    fn files_cross_backends() {
        let fx = Fixture::new();
        let pairs = [
            (Backend::AwsLc, Backend::RustCrypto),
            (Backend::RustCrypto, Backend::AwsLc),
        ];
        for (k, (seal, open)) in pairs.into_iter().enumerate() {
            for n in [0, 1, 4096, 5 * 4096 + 77] {
                let pt = data(1000 + n as u64, n);
                let plain = fx.path(&format!("plain-{k}-{n}"));
                std::fs::write(&plain, &pt).unwrap();
                let sealed = fx.path(&format!("sealed-{k}-{n}"));
                let ctx = EncryptionContext::from_pairs(["cross=backend"]).unwrap();
                fx.encrypt(12, &ctx, &Input::Path(plain), &sealed, seal);
                let back = fx.path(&format!("back-{k}-{n}"));
                fx.decrypt(&Input::Path(sealed.clone()), &back, open);
                assert!(
                    std::fs::read(&back).unwrap() == pt,
                    "{seal:?}→{open:?} map, {n}"
                );

                let fifo = fx.path(&format!("sealed-{k}-{n}.fifo"));
                let feeder = feed_fifo(&fifo, std::fs::read(&sealed).unwrap());
                let back = fx.path(&format!("back-pipe-{k}-{n}"));
                fx.decrypt(&Input::Path(fifo), &back, open);
                feeder.join().unwrap();
                assert!(
                    std::fs::read(&back).unwrap() == pt,
                    "{seal:?}→{open:?} pipe, {n}"
                );
            }
        }
    }

    /// Given the same data key and message id, both backends derive the same keys, seal the
    /// same header and the same payload, byte for byte.
    #[test]
    fn backends_write_identical_bytes() {
        for log2 in [12u8, 14] {
            for n in [0usize, 1, 4095, 4096, 4097, 9 * 4096 + 1] {
                let dk = SecretKey::from_bytes([n as u8 ^ 0x5a; 32]);
                let align = if n % 2 == 0 { 1 } else { MAX_ALIGN };
                let (h_aws, k_aws) = test_header(Backend::AwsLc, &dk, log2, align);
                let (h_rc, k_rc) = test_header(Backend::RustCrypto, &dk, log2, align);
                assert_eq!(h_aws, h_rc, "headers differ between backends");
                assert_eq!(k_aws.payload.expose(), k_rc.payload.expose());
                let layout = Layout {
                    header_len: h_aws.len() as u64,
                    chunk_size: 1 << log2,
                };
                let pt = data(n as u64, n);
                let c_aws = ChunkCipher::new(Backend::AwsLc, &k_aws.payload);
                let c_rc = ChunkCipher::new(Backend::RustCrypto, &k_rc.payload);
                let s_aws = seal_both_drivers(&c_aws, layout, &h_aws, &pt);
                let s_rc = seal_both_drivers(&c_rc, layout, &h_rc, &pt);
                assert!(
                    s_aws == s_rc,
                    "payloads differ between backends ({n} bytes)"
                );
                open_both_drivers(&c_rc, layout, &s_aws, &pt);
                open_both_drivers(&c_aws, layout, &s_rc, &pt);
            }
        }
    }
}
