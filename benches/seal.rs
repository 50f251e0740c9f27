//! Criterion benchmarks of the envelope engine, for every backend built in (`Backend::ALL`).
//!
//! - `chunk_seal/<backend>/<size>`, `chunk_open/<backend>/<size>`: one chunk of 64 KiB, 256 KiB,
//!   1 MiB or 4 MiB sealed or opened by `ChunkCipher` (one core).
//! - `seal_64MiB/<backend>/in_memory/<threads>`: a 64 MiB buffer sealed into a `Vec` with
//!   `ChunkCipher` in a rayon `par_iter`, on a pool of 1 or 2 threads.
//! - `seal_64MiB/<backend>/file/<threads>`: the same buffer through `engine::seal_slice` into a
//!   fresh file under /dev/shm (the temp dir if there is no /dev/shm), as `cofre encrypt` does.
//! - `header/decode`, `header/seal`, `header/derive_keys/<backend>`: the header's costs.
//! - `rewrap/64MiB`: `files::rewrap` of a 64 MiB file to another key, as `cofre rewrap` does it
//!   (unwrap, re-wrap, new header, payload copied with copy_file_range).
//!
//! - `block/seal|open|seal_and_put/<backend>`: one 512 KiB EBS block sealed or opened by
//!   `LineageCipher`, and sealed then written to a `BlockStore` on /dev/shm.
//!
//! - `asym/<op>/<backend>`: one operation of the asymmetric and HMAC keys, as KMS runs it:
//!   ECDSA sign and verify of a SHA-256 digest on P-256, RSA-2048 PSS sign and verify, RSA-2048
//!   OAEP-SHA-256 encrypt (what `encrypt --recipient-pubkey` does per RSA recipient) and decrypt
//!   (what `decrypt` does), ECDH on P-384 with a fresh ephemeral key (per ECDH recipient), and
//!   HMAC-SHA-256 of 4 KiB.
//!
//! Run both backends with `cargo bench --bench seal --features rustcrypto`; the default build
//! has aws-lc only. Measurement times are short so the whole run takes a few minutes.

use cofre::crypto::SecretKey;
use cofre::envelope::{
    engine, ChunkCipher, EncryptionContext, Header, HeaderKeys, Layout, Progress, Recipient,
    WrappedKey, DEFAULT_CHUNK_LOG2, MAX_ALIGN,
};
use cofre::Backend;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rayon::prelude::*;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TAG: usize = 16;
const CHUNK_SIZES: [(usize, &str); 4] = [
    (64 << 10, "64KiB"),
    (256 << 10, "256KiB"),
    (1 << 20, "1MiB"),
    (4 << 20, "4MiB"),
];
const BUFFER: usize = 64 << 20;
const THREADS: [usize; 2] = [1, 2];

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
        .collect()
}

fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

/// One chunk sealed and opened, by chunk size.
fn chunks(c: &mut Criterion) {
    for &backend in Backend::ALL {
        let cipher = ChunkCipher::new(backend, &SecretKey::random());
        let mut seal = c.benchmark_group(format!("chunk_seal/{}", backend.name()));
        configure(&mut seal);
        for (size, name) in CHUNK_SIZES {
            let pt = pattern(size);
            let mut out = vec![0u8; size + TAG];
            seal.throughput(Throughput::Bytes(size as u64));
            seal.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| cipher.seal(black_box(7), false, black_box(&pt), &mut out))
            });
        }
        seal.finish();

        let mut open = c.benchmark_group(format!("chunk_open/{}", backend.name()));
        configure(&mut open);
        for (size, name) in CHUNK_SIZES {
            let pt = pattern(size);
            let mut sealed = vec![0u8; size + TAG];
            cipher.seal(7, false, &pt, &mut sealed);
            let mut out = vec![0u8; size];
            open.throughput(Throughput::Bytes(size as u64));
            open.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    cipher
                        .open(black_box(7), false, black_box(&sealed), &mut out)
                        .expect("authentic")
                })
            });
        }
        open.finish();
    }
}

/// Seals `input` into `out` (laid out as the payload of a file with no header) in parallel.
fn seal_in_memory(cipher: &ChunkCipher, chunk: usize, input: &[u8], out: &mut [u8]) {
    let count = input.len() / chunk + 1;
    out.par_chunks_mut(chunk + TAG)
        .enumerate()
        .for_each(|(i, sealed)| {
            let start = i * chunk;
            let end = (start + chunk).min(input.len());
            cipher.seal(i as u64, i + 1 == count, &input[start..end], sealed);
        });
}

fn scratch_dir() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

/// A 64 MiB buffer sealed whole, by thread count: in memory, and into a file.
fn whole_buffer(c: &mut Criterion) {
    let chunk = 1usize << DEFAULT_CHUNK_LOG2;
    let input = pattern(BUFFER);
    // The in-memory payload has no header; the file one has a page-sized stand-in for the
    // header, as files of 1 MiB and more get a 4 KiB-aligned payload.
    let bare = Layout {
        header_len: 0,
        chunk_size: chunk as u64,
    };
    let sealed_len = bare.sealed_len(BUFFER as u64) as usize;
    let header = vec![0u8; MAX_ALIGN];
    let layout = Layout {
        header_len: header.len() as u64,
        ..bare
    };
    let dir = scratch_dir();
    for &backend in Backend::ALL {
        let cipher = ChunkCipher::new(backend, &SecretKey::random());
        let mut group = c.benchmark_group(format!("seal_64MiB/{}", backend.name()));
        configure(&mut group);
        group.throughput(Throughput::Bytes(BUFFER as u64));
        for threads in THREADS {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a rayon pool");

            let mut out = vec![0u8; sealed_len];
            group.bench_function(BenchmarkId::new("in_memory", threads), |b| {
                b.iter(|| pool.install(|| seal_in_memory(&cipher, chunk, &input, &mut out)))
            });

            let file = tempfile::Builder::new()
                .prefix("cofre-bench-")
                .tempfile_in(&dir)
                .expect("a scratch file");
            group.bench_function(BenchmarkId::new("file", threads), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        // A fresh, empty file each time, as `cofre encrypt` writes; the
                        // truncation is not timed.
                        file.as_file().set_len(0).expect("truncate scratch file");
                        let start = Instant::now();
                        pool.install(|| {
                            engine::seal_slice(
                                &cipher,
                                layout,
                                &header,
                                &input,
                                None,
                                file.as_file(),
                                &Progress::hidden(),
                            )
                        })
                        .expect("seal_slice");
                        total += start.elapsed();
                    }
                    total
                })
            });
        }
        group.finish();
    }
}

fn sample_header(backend: Backend) -> (Header, HeaderKeys) {
    let mut context = EncryptionContext::new();
    context.insert("purpose", "backup").expect("valid pair");
    context.insert("host", "db-01").expect("valid pair");
    let mut header = Header::new(DEFAULT_CHUNK_LOG2, context);
    let data_key = SecretKey::random();
    for i in 0..2u8 {
        header.recipients.push(Recipient::Kms(WrappedKey {
            key_arn: format!(
                "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-00000000000{i}"
            ),
            material_id: [i; 32],
            nonce: [i; 12],
            sealed: [i; 48],
        }));
    }
    let keys = HeaderKeys::derive(backend, &data_key, &header.message_id);
    (header, keys)
}

/// Header decode, seal and key derivation.
fn header(c: &mut Criterion) {
    let mut group = c.benchmark_group("header");
    configure(&mut group);
    let (mut h, keys) = sample_header(Backend::default());
    let raw = h.seal(&keys, MAX_ALIGN).expect("a valid header");
    group.bench_function("decode", |b| {
        b.iter(|| Header::decode(black_box(&raw)).expect("decodes"))
    });
    group.bench_function("seal", |b| {
        b.iter(|| h.seal(black_box(&keys), MAX_ALIGN).expect("seals"))
    });
    group.bench_function("verify", |b| {
        b.iter(|| h.verify(black_box(&raw), &keys).expect("authentic"))
    });
    for &backend in Backend::ALL {
        let data_key = SecretKey::random();
        group.bench_function(BenchmarkId::new("derive_keys", backend.name()), |b| {
            b.iter(|| HeaderKeys::derive(backend, black_box(&data_key), &h.message_id))
        });
    }
    group.finish();
}

/// Rewrapping a 64 MiB file under another key: the cost is the payload copy.
fn rewrap(c: &mut Criterion) {
    use cofre::files::{self, Input, Options, Output};
    let dir = tempfile::tempdir_in(scratch_dir()).expect("a scratch folder");
    let kms = {
        let home = cofre::Home::open(&dir.path().join("home"), None).expect("a home");
        let ctx = cofre::RequestContext::account_root(home.account_id());
        cofre::Kms::new(
            home,
            cofre::Region::new("us-east-1").expect("a region"),
            ctx,
        )
    };
    let new_key = || {
        kms.create_key(&Default::default())
            .expect("a key")
            .key_id
            .parse::<cofre::KeyRef>()
            .expect("a key id")
    };
    let (k1, k2) = (new_key(), new_key());
    let plain = dir.path().join("plain");
    let sealed = dir.path().join("sealed");
    let out = dir.path().join("out");
    std::fs::write(&plain, pattern(BUFFER)).expect("writing");
    files::encrypt(
        &kms,
        &[k1],
        &EncryptionContext::new(),
        DEFAULT_CHUNK_LOG2,
        &Input::Path(plain),
        &Output::Path {
            path: sealed.clone(),
            force: false,
        },
        Options::default(),
    )
    .expect("encrypting");
    let mut group = c.benchmark_group("rewrap");
    configure(&mut group);
    group.throughput(Throughput::Bytes(BUFFER as u64));
    group.bench_function("64MiB", |b| {
        b.iter(|| {
            files::rewrap(
                &kms,
                &kms,
                std::slice::from_ref(&k2),
                &sealed,
                Some(&out),
                true,
            )
            .expect("rewrapping")
        })
    });
    group.finish();
}

/// The EBS block store's hot path: one 512 KiB block sealed under a lineage key, opened, and
/// written as a new content-addressed file (hash, temporary file, rename).
fn block_store(c: &mut Criterion) {
    use cofre::ebs::{BlockStore, LineageCipher, BLOCK_SIZE};
    let dir = tempfile::tempdir_in(scratch_dir()).expect("a scratch folder");
    let store = BlockStore::new(dir.path().join("blocks"));
    let plain = pattern(BLOCK_SIZE);
    let mut group = c.benchmark_group("block");
    configure(&mut group);
    group.throughput(Throughput::Bytes(BLOCK_SIZE as u64));
    for &backend in Backend::ALL {
        let cipher = LineageCipher::new(backend, SecretKey::random(), "dek-0123456789abcdef0");
        let mut sealed = Vec::new();
        group.bench_function(BenchmarkId::new("seal", backend.name()), |b| {
            b.iter(|| cipher.seal(7, black_box(&plain), &mut sealed))
        });
        let mut out = vec![0u8; BLOCK_SIZE];
        group.bench_function(BenchmarkId::new("open", backend.name()), |b| {
            b.iter(|| cipher.open(7, black_box(&sealed), &mut out).expect("opens"))
        });
        // Every seal draws a new salt, so every put writes a new file.
        group.bench_function(BenchmarkId::new("seal_and_put", backend.name()), |b| {
            b.iter(|| {
                cipher.seal(7, &plain, &mut sealed);
                store.put(&sealed).expect("writing")
            })
        });
    }
    group.finish();
}

/// One operation of each asymmetric key type, per backend.
fn asym(c: &mut Criterion) {
    use cofre::crypto::{AsymKind, Curve, Hash, OaepHash, SigScheme};
    let mut group = c.benchmark_group("asym");
    configure(&mut group);
    let digest = [7u8; 32];
    let message = pattern(4096);
    for &backend in Backend::ALL {
        let name = backend.name();
        for (op, kind, scheme) in [
            (
                "ecdsa_p256",
                AsymKind::Ec(Curve::P256),
                SigScheme::Ecdsa(Hash::Sha256),
            ),
            (
                "rsa2048_pss",
                AsymKind::Rsa(2048),
                SigScheme::RsaPss(Hash::Sha256),
            ),
        ] {
            let private = backend.generate_private_key(kind).expect("a key");
            let public = backend
                .public_key_of(kind, &private)
                .expect("its public key");
            let sig = backend
                .sign_digest(kind, scheme, &private, &digest)
                .expect("a signature");
            group.bench_function(BenchmarkId::new(format!("{op}_sign"), name), |b| {
                b.iter(|| backend.sign_digest(kind, scheme, &private, black_box(&digest)))
            });
            group.bench_function(BenchmarkId::new(format!("{op}_verify"), name), |b| {
                b.iter(|| backend.verify_digest(kind, scheme, &public, black_box(&digest), &sig))
            });
        }
        let rsa = backend
            .generate_private_key(AsymKind::Rsa(2048))
            .expect("a key");
        let rsa_public = backend
            .public_key_of(AsymKind::Rsa(2048), &rsa)
            .expect("its public key");
        let wrapped = backend
            .rsa_oaep_encrypt(&rsa_public, OaepHash::Sha256, &digest)
            .expect("a ciphertext");
        group.bench_function(BenchmarkId::new("rsa2048_oaep_encrypt", name), |b| {
            b.iter(|| backend.rsa_oaep_encrypt(&rsa_public, OaepHash::Sha256, black_box(&digest)))
        });
        group.bench_function(BenchmarkId::new("rsa2048_oaep_decrypt", name), |b| {
            b.iter(|| {
                backend
                    .rsa_from_pkcs8(&rsa)
                    .expect("parses")
                    .decrypt_oaep(OaepHash::Sha256, black_box(&wrapped))
            })
        });
        let kind = AsymKind::Ec(Curve::P384);
        let recipient = backend.generate_private_key(kind).expect("a key");
        let recipient_public = backend
            .public_key_of(kind, &recipient)
            .expect("its public key");
        group.bench_function(BenchmarkId::new("ecdh_p384_ephemeral", name), |b| {
            b.iter(|| {
                let eph = backend.generate_private_key(kind).expect("a key");
                let _ = backend.public_key_of(kind, &eph).expect("its public key");
                backend.ecdh(Curve::P384, &eph, black_box(&recipient_public))
            })
        });
        let key = [9u8; 32];
        group.bench_function(BenchmarkId::new("hmac_sha256_4KiB", name), |b| {
            b.iter(|| backend.hmac(Hash::Sha256, &key, black_box(&message)))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    chunks,
    whole_buffer,
    header,
    rewrap,
    block_store,
    asym
);
criterion_main!(benches);
