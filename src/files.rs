//! The data commands: encrypt, decrypt, rewrap and inspect files and pipes. Each composes KMS
//! verbs (a data key wrapped under one or more master keys) with the envelope engine.
//!
//! Regular files are memory-mapped and processed in parallel; anything else (stdin, FIFOs,
//! devices) goes through the bounded pipe pipeline. Output to a path is always written to a
//! temporary file beside it and renamed into place only when complete ([`store::OutputFile`]).

use crate::crypto::{Backend, SecretKey};
use crate::envelope::{
    engine, ChunkCipher, EncryptionContext, Header, HeaderKeys, Layout, Progress, Recipient,
    WrappedKey, MAX_ALIGN,
};
use crate::error::{Error, KmsCode, Result};
use crate::kms::{KeyRef, Kms};
use crate::store::OutputFile;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input.
    Stdin,
    /// A file (or device, or FIFO).
    Path(PathBuf),
}

/// Where data goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Standard output.
    Stdout,
    /// A file, replaced only with `force`.
    Path { path: PathBuf, force: bool },
}

/// Inputs of at least this many bytes (and streams) get a 4 KiB-aligned payload.
pub const ALIGN_FROM: u64 = 1 << 20;

/// Options shared by the data commands.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The crypto backend for the payload.
    pub backend: Backend,
    /// No progress bar.
    pub quiet: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backend: Backend::default(),
            quiet: true,
        }
    }
}

/// What a data command did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
}

/// An opened input: a regular file with its memory map (none when empty), or a stream.
enum Source {
    Mapped {
        /// Dropped before the map it watches (fields drop in order).
        watch: Option<crate::truncation::Watch>,
        map: Option<memmap2::Mmap>,
        file: File,
    },
    Stream(File),
}

/// A pipe's buffer, raised from the usual 64 KiB: a tenth of the system calls and context
/// switches per byte.
const PIPE_BUFFER: usize = 1 << 20;

fn dup_stdio(fd: std::os::fd::BorrowedFd<'_>, name: &str) -> Result<File> {
    let file = fd
        .try_clone_to_owned()
        .map(File::from)
        .map_err(|e| Error::io("opening", Path::new(name), e))?;
    if file.metadata().is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_fifo()
    }) {
        // A hint: the limit (/proc/sys/fs/pipe-max-size) may refuse it, which costs only speed.
        let _ = rustix::pipe::fcntl_setpipe_size(&file, PIPE_BUFFER);
    }
    Ok(file)
}

impl Source {
    fn open(input: &Input) -> Result<Source> {
        let mut file = match input {
            Input::Stdin => dup_stdio(std::io::stdin().as_fd(), "stdin")?,
            Input::Path(p) => File::open(p).map_err(|e| Error::io("opening", p, e))?,
        };
        let meta = file.metadata().map_err(|e| Error::Io {
            what: "reading input metadata".into(),
            source: e,
        })?;
        // Map regular files, including one redirected to stdin if it is read from its start.
        if !meta.is_file() || file.stream_position().ok() != Some(0) {
            return Ok(Source::Stream(file));
        }
        let map = if meta.len() == 0 {
            None
        } else {
            // SAFETY: the map is read-only and lives no longer than this Source. cofre does not
            // modify the file; if another process truncates it meanwhile, reads past the new end
            // fault (SIGBUS), which the watch turns into zeros and an error before anything is
            // committed (see crate::truncation), and chunks are copied out of the map before
            // they are authenticated, so a concurrent writer cannot slip bytes past a tag.
            let m = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::Io {
                what: "mapping input".into(),
                source: e,
            })?;
            let _ = m.advise(memmap2::Advice::Sequential);
            Some(m)
        };
        let watch = map.as_deref().map(crate::truncation::watch);
        Ok(Source::Mapped { watch, map, file })
    }

    /// The error to report instead of `result` if a mapped input became shorter while it was
    /// read (another process truncated it): what was read from it is not what the file held.
    fn check_whole<T>(&self, result: Result<T>) -> Result<T> {
        let Source::Mapped { watch, map, file } = self else {
            return result;
        };
        let mapped = map.as_deref().map_or(0, <[u8]>::len) as u64;
        let shorter = file.metadata().is_ok_and(|m| m.len() < mapped);
        if shorter || watch.as_ref().is_some_and(|w| w.truncated()) {
            return Err(Error::Io {
                what: "reading input".into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "another process truncated it while cofre read it; nothing was written, try again once it is left alone",
                ),
            });
        }
        result
    }

    fn mapped(&self) -> Option<&[u8]> {
        match self {
            Source::Mapped { map, .. } => Some(map.as_deref().unwrap_or(&[])),
            Source::Stream(_) => None,
        }
    }

    fn len(&self) -> Option<u64> {
        self.mapped().map(|m| m.len() as u64)
    }

    /// The input as a stream starting at byte `offset` (already consumed for a stream).
    fn into_reader(self, offset: u64) -> Result<File> {
        match self {
            Source::Mapped { mut file, .. } => {
                file.seek(SeekFrom::Start(offset)).map_err(|e| Error::Io {
                    what: "reading input".into(),
                    source: e,
                })?;
                Ok(file)
            }
            Source::Stream(file) => Ok(file),
        }
    }
}

/// (device, inode) of a regular file, to recognise the same file under two names.
fn file_id(meta: Option<std::fs::Metadata>) -> Option<(u64, u64)> {
    meta.filter(|m| m.is_file()).map(|m| (m.dev(), m.ino()))
}

/// Refuses an output that is the input file — named, redirected to stdin, or stdout redirected
/// onto it — even with `--force`.
fn check_not_same(input: &Input, output: &Output) -> Result<()> {
    let input_id = file_id(match input {
        Input::Path(i) => std::fs::metadata(i).ok(),
        Input::Stdin => dup_stdio(std::io::stdin().as_fd(), "stdin")?
            .metadata()
            .ok(),
    });
    let (output_id, name) = match output {
        Output::Path { path, .. } => (file_id(std::fs::metadata(path).ok()), path.clone()),
        Output::Stdout => (
            file_id(
                dup_stdio(std::io::stdout().as_fd(), "stdout")?
                    .metadata()
                    .ok(),
            ),
            PathBuf::from("stdout"),
        ),
    };
    if input_id.is_some() && input_id == output_id {
        return Err(Error::SameFile(name));
    }
    Ok(())
}

/// A destination opened for writing: a temporary file to commit, or a stream (stdout, a device,
/// a FIFO) written in order.
enum Sink {
    File(OutputFile),
    Stream(File),
}

impl Sink {
    fn open(output: &Output) -> Result<Sink> {
        let (path, force) = match output {
            Output::Stdout => {
                return Ok(Sink::Stream(dup_stdio(
                    std::io::stdout().as_fd(),
                    "stdout",
                )?))
            }
            Output::Path { path, force } => (path, *force),
        };
        match std::fs::metadata(path) {
            // Devices and FIFOs are written in place, never replaced by a file. A block device
            // holds data, so overwriting it needs --force like a file.
            Ok(m) if !m.is_file() && !m.is_dir() => {
                use std::os::unix::fs::FileTypeExt;
                if m.file_type().is_block_device() && !force {
                    return Err(Error::OutputExists(path.clone()));
                }
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::io("opening", path, e))?;
                Ok(Sink::Stream(f))
            }
            _ => Ok(Sink::File(OutputFile::create(path, force)?)),
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::File(f) => f.commit(),
            Sink::Stream(f) => f.sync_data().or_else(|e| {
                // Pipes and terminals cannot be synced; that is not a failure.
                if e.raw_os_error() == Some(22) {
                    Ok(())
                } else {
                    Err(Error::Io {
                        what: "syncing output".into(),
                        source: e,
                    })
                }
            }),
        }
    }
}

/// Runs the payload through the engine: parallel over a map into a file, else the pipeline.
fn run_engine(
    source: Source,
    sink: &Sink,
    seal: bool,
    cipher: &ChunkCipher,
    layout: Layout,
    header: &[u8],
    progress: &Progress,
) -> Result<u64> {
    if let (Source::Mapped { map, .. }, Sink::File(out)) = (&source, sink) {
        let input = source.mapped().expect("mapped");
        let map = map.as_ref();
        let result = if seal {
            engine::seal_slice(cipher, layout, header, input, map, out.file(), progress)
                .map(|()| layout.sealed_len(input.len() as u64))
        } else {
            engine::open_slice(cipher, layout, input, map, out.file(), progress)
        };
        return source.check_whole(result);
    }
    if let (false, Some(len)) = (seal, source.len()) {
        // A truncated file is refused before any plaintext is streamed out.
        layout.plain_len(len)?;
    }
    let reader = source.into_reader(if seal { 0 } else { header.len() as u64 })?;
    let file = match sink {
        Sink::File(out) => out.file(),
        Sink::Stream(f) => f,
    };
    let mut counter = CountingWriter {
        inner: std::io::BufWriter::with_capacity(1 << 20, file),
        count: 0,
    };
    if seal {
        engine::seal_stream(cipher, layout, header, reader, &mut counter, progress)?;
    } else {
        engine::open_stream(cipher, layout, reader, &mut counter, progress)?;
    }
    Ok(counter.count)
}

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The AAD a file's data key is wrapped with, for the key and material version KMS picks.
fn file_aad(header: &Header) -> impl Fn(&str, &[u8; 32]) -> Vec<u8> {
    let (message_id, context) = (header.message_id, header.context.clone());
    move |arn, material| WrappedKey::aad(arn, material, &message_id, &context)
}

/// A new data key for `header` from KMS: GenerateDataKey under the first of `keys`, then
/// Encrypt under each other (as the AWS Encryption SDK does). Adds the wrapped keys to `header`.
fn new_data_key(kms: &Kms, keys: &[KeyRef], header: &mut Header) -> Result<SecretKey> {
    let (first, rest) = keys
        .split_first()
        .ok_or_else(|| Error::usage("give at least one key with -k KEY"))?;
    let (context, aad) = (header.context.clone(), file_aad(header));
    let (wrapped, data_key) = kms.generate_envelope_key(first, &context, None, true, &aad)?;
    let data_key = data_key.expect("GenerateDataKey returns the plaintext key");
    header.recipients.push(Recipient::Kms(wrapped));
    wrap_for(kms, rest, &data_key, header)?;
    Ok(data_key)
}

/// Wraps `data_key` under the current version of each of `keys` (Encrypt) and adds them to
/// `header`.
fn wrap_for(kms: &Kms, keys: &[KeyRef], data_key: &SecretKey, header: &mut Header) -> Result<()> {
    let (context, aad) = (header.context.clone(), file_aad(header));
    for k in keys {
        let wrapped = kms.encrypt_envelope_key(k, &context, None, data_key, &aad)?;
        header.recipients.push(Recipient::Kms(wrapped));
    }
    Ok(())
}

const LABEL_ECDH_WRAP: &[u8] = b"cofre v1 ecdh wrap\0";

/// The key that seals a data key for an ECDH recipient: HKDF-SHA256 of the shared secret,
/// salted with the file's message id, bound to the recipient and the ephemeral key.
fn ecdh_kek(
    backend: Backend,
    shared: &[u8],
    message_id: &[u8; 32],
    fingerprint: &[u8; 32],
    ephemeral: &[u8],
) -> crate::crypto::AeadKey {
    let mut info = LABEL_ECDH_WRAP.to_vec();
    info.extend_from_slice(fingerprint);
    info.extend_from_slice(ephemeral);
    let mut k = [0u8; 32];
    backend.hkdf_sha256(message_id, shared, &info, &mut k);
    let key = SecretKey::from_bytes(k);
    zeroize::Zeroize::zeroize(&mut k);
    backend.aead(&key)
}

/// Wraps `data_key` to each public key (DER SubjectPublicKeyInfo): RSA-OAEP-SHA-256 for RSA
/// keys, ECDH with a fresh ephemeral key for NIST-curve keys. Needs no keyring.
fn wrap_to_public_keys(
    public_keys: &[Vec<u8>],
    data_key: &SecretKey,
    header: &mut Header,
) -> Result<()> {
    use crate::crypto::{AsymKind, Curve, OaepHash};
    use crate::envelope::{PublicKeyRecipient, PublicKeyScheme};
    let backend = Backend::default();
    for spki in public_keys {
        let fingerprint = crate::sign::fingerprint(spki);
        let recipient = match crate::crypto::spki_kind(backend, spki)? {
            AsymKind::Rsa(_) => PublicKeyRecipient {
                scheme: PublicKeyScheme::RsaOaepSha256,
                fingerprint,
                ephemeral: Vec::new(),
                wrapped: backend.rsa_oaep_encrypt(spki, OaepHash::Sha256, data_key.expose())?,
            },
            AsymKind::Ec(Curve::Secp256k1) => {
                return Err(Error::usage(
                    "a secp256k1 public key only verifies signatures (ECC_SECG_P256K1 keys are SIGN_VERIFY); encrypt to an RSA key or a P-256/P-384/P-521 KEY_AGREEMENT key",
                ))
            }
            AsymKind::Ec(curve) => {
                let eph = backend.generate_private_key(AsymKind::Ec(curve))?;
                let ephemeral = backend.public_key_of(AsymKind::Ec(curve), &eph)?;
                let shared = backend.ecdh(curve, &eph, spki)?;
                let kek = ecdh_kek(backend, &shared, &header.message_id, &fingerprint, &ephemeral);
                PublicKeyRecipient {
                    scheme: PublicKeyScheme::Ecdh,
                    fingerprint,
                    wrapped: kek.seal_to_vec(&[0; 12], LABEL_ECDH_WRAP, data_key.expose()),
                    ephemeral,
                }
            }
        };
        header.recipients.push(Recipient::PublicKey(recipient));
    }
    Ok(())
}

/// Recovers the data key from a public-key recipient with the matching private key in this
/// region of the keyring (KMS Decrypt for RSA, DeriveSharedSecret for ECDH). `Ok(None)` if no
/// key here has that public key.
fn unwrap_public_key_recipient(
    kms: &Kms,
    header: &Header,
    r: &crate::envelope::PublicKeyRecipient,
) -> Result<Option<SecretKey>> {
    use crate::envelope::PublicKeyScheme;
    use crate::kms::EncryptionAlgorithm;
    let Some(arn) = kms.key_with_fingerprint(&r.fingerprint)? else {
        return Ok(None);
    };
    let key: KeyRef = arn.parse()?;
    let bad = || Error::HeaderCorrupt(format!("the data key wrapped to {arn} does not open"));
    let raw: zeroize::Zeroizing<Vec<u8>> = match r.scheme {
        PublicKeyScheme::RsaOaepSha256 => {
            kms.decrypt(
                &r.wrapped,
                &EncryptionContext::new(),
                Some(&key),
                EncryptionAlgorithm::RsaesOaepSha256,
            )?
            .plaintext
        }
        PublicKeyScheme::Ecdh => {
            let shared = kms
                .derive_shared_secret(&key, &r.ephemeral)
                .map_err(|e| match e {
                    Error::Usage(_) => Error::HeaderCorrupt(format!(
                        "the ephemeral public key of the recipient for {arn} is not a valid point of its curve"
                    )),
                    e => e,
                })?;
            let kek = ecdh_kek(
                Backend::default(),
                &shared,
                &header.message_id,
                &r.fingerprint,
                &r.ephemeral,
            );
            let mut k = zeroize::Zeroizing::new(vec![0u8; 32]);
            kek.open_from_slice(&[0; 12], LABEL_ECDH_WRAP, &r.wrapped, &mut k)
                .map_err(|_| bad())?;
            k
        }
    };
    let mut bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| bad())?;
    let key = SecretKey::from_bytes(bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    Ok(Some(key))
}

/// `cofre encrypt`: a fresh data key, wrapped under every key in `keys`, seals `input`.
pub fn encrypt(
    kms: &Kms,
    keys: &[KeyRef],
    context: &EncryptionContext,
    chunk_log2: u8,
    input: &Input,
    output: &Output,
    opts: Options,
) -> Result<Summary> {
    encrypt_to(
        Some(kms),
        keys,
        &[],
        context,
        chunk_log2,
        input,
        output,
        opts,
    )
}

/// [`encrypt`] to keyring keys in `kms`'s region and to public keys (DER
/// SubjectPublicKeyInfo) alike. With only public keys, `kms` may be `None`: no keyring is
/// needed.
#[allow(clippy::too_many_arguments)]
pub fn encrypt_to(
    kms: Option<&Kms>,
    keys: &[KeyRef],
    public_keys: &[Vec<u8>],
    context: &EncryptionContext,
    chunk_log2: u8,
    input: &Input,
    output: &Output,
    opts: Options,
) -> Result<Summary> {
    check_not_same(input, output)?;
    let mut header = Header::new(chunk_log2, context.clone());
    let data_key = match kms {
        Some(kms) if !keys.is_empty() => new_data_key(kms, keys, &mut header)?,
        None if !keys.is_empty() => return Err(Error::usage("keyring keys (-k) need a keyring")),
        _ if public_keys.is_empty() => {
            return Err(Error::usage(
                "give at least one key with -k KEY or --recipient-pubkey FILE",
            ))
        }
        // Only public-key recipients: offline, no KMS request.
        _ => SecretKey::random(),
    };
    wrap_to_public_keys(public_keys, &data_key, &mut header)?;
    let keys = HeaderKeys::derive(opts.backend, &data_key, &header.message_id);
    let source = Source::open(input)?;
    // Page-align the payload of anything but small files (see Header::seal).
    let align = match source.len() {
        Some(n) if n < ALIGN_FROM => 1,
        _ => MAX_ALIGN,
    };
    let raw = header.seal(&keys, align)?;
    let sink = Sink::open(output)?;
    let layout = Layout {
        header_len: raw.len() as u64,
        chunk_size: header.chunk_size(),
    };
    let bytes_in = source.len();
    let progress = Progress::new("encrypting", bytes_in, opts.quiet);
    let cipher = ChunkCipher::new(opts.backend, &keys.payload);
    let bytes_out = run_engine(source, &sink, true, &cipher, layout, &raw, &progress)?;
    sink.finish()?;
    Ok(Summary {
        // A stream's length is known only once sealed.
        bytes_in: bytes_in.unwrap_or_else(|| layout.plain_len(bytes_out).unwrap_or(0)),
        bytes_out,
    })
}

/// Reads the header of `source`; for a stream, consumes it.
fn read_header(source: &mut Source) -> Result<(Header, Vec<u8>)> {
    match source {
        Source::Mapped { .. } => {
            let data = source.mapped().expect("mapped");
            let header = Header::decode(data)?;
            // decode checked the prefix and that the whole header is present.
            let len = crate::envelope::check_prefix(data)?;
            Ok((header, data[..len].to_vec()))
        }
        Source::Stream(f) => Header::read_from(f),
    }
}

/// Finds a recipient this region can open and recovers the data key, then authenticates the
/// header with it.
fn open_header(
    kms: &Kms,
    header: &Header,
    raw: &[u8],
    backend: Backend,
) -> Result<(SecretKey, HeaderKeys)> {
    let here = kms.region().as_str();
    let mut first_err = None;
    let mut regions = Vec::new();
    for w in header.wrapped_keys() {
        let region = match w.key_arn.parse::<KeyRef>() {
            // A multi-Region key may have a replica here: let the KMS look.
            Ok(KeyRef::Arn { id, .. }) if id.starts_with("mrk-") => here.to_owned(),
            Ok(KeyRef::Arn { region, .. }) => region,
            _ => {
                return Err(Error::HeaderCorrupt(format!(
                    "recipient {:?} is not a key ARN",
                    w.key_arn
                )))
            }
        };
        if region != here {
            regions.push(region);
            continue;
        }
        let aad = WrappedKey::aad(
            &w.key_arn,
            &w.material_id,
            &header.message_id,
            &header.context,
        );
        match kms.decrypt_envelope_key(w, &header.context, None, &aad) {
            Ok(dk) => {
                let keys = header.open_keys(raw, backend, &dk)?;
                return Ok((dk, keys));
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    // Public-key recipients whose private key is in this region.
    let mut missing = Vec::new();
    for r in header.public_key_recipients() {
        match unwrap_public_key_recipient(kms, header, r) {
            Ok(Some(dk)) => {
                let keys = header.open_keys(raw, backend, &dk)?;
                return Ok((dk, keys));
            }
            Ok(None) => missing.push(format!("sha256:{}", hex::encode(r.fingerprint))),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    regions.sort();
    regions.dedup();
    if !missing.is_empty() {
        let also = match regions.as_slice() {
            [] => String::new(),
            rs => format!(
                ", or run with --region {} for its keyring keys",
                rs.join(" or ")
            ),
        };
        return Err(Error::kms(
            KmsCode::NotFoundException,
            format!(
                "the data key is wrapped to public key {}, whose private key is in no key of {here} in this keyring; decrypt where that key lives (--home, --region){also}",
                missing.join(", ")
            ),
        ));
    }
    Err(match regions.as_slice() {
        [] => Error::HeaderCorrupt("no recipient this version of cofre can open".into()),
        [r] => Error::kms(
            KmsCode::NotFoundException,
            format!("the data key is wrapped only under a key in region {r}, not {here}; keys are regional: run with --region {r}"),
        ),
        rs => Error::kms(
            KmsCode::NotFoundException,
            format!("the data key is wrapped only under keys in regions {}, not {here}; run with --region set to one of them", rs.join(", ")),
        ),
    })
}

/// Random access: recovers the data key of `sealed` (a whole file's bytes, or at least its
/// header), authenticates the header, and returns the cipher and layout that open any chunk i
/// alone: `cipher.open(i, last, &sealed[layout.chunk_offset(i)..][..len], out)`.
pub fn open_payload(kms: &Kms, sealed: &[u8], backend: Backend) -> Result<(ChunkCipher, Layout)> {
    let header = Header::decode(sealed)?;
    let len = crate::envelope::check_prefix(sealed)?;
    let (_, keys) = open_header(kms, &header, &sealed[..len], backend)?;
    let layout = Layout {
        header_len: len as u64,
        chunk_size: header.chunk_size(),
    };
    Ok((ChunkCipher::new(backend, &keys.payload), layout))
}

/// `cofre decrypt`: recovers the data key from the header and opens every chunk. Nothing
/// reaches a path output unless every chunk authenticated; stdout stops at the first bad chunk.
pub fn decrypt(
    kms: &Kms,
    required: &EncryptionContext,
    input: &Input,
    output: &Output,
    opts: Options,
) -> Result<Summary> {
    check_not_same(input, output)?;
    let mut source = Source::open(input)?;
    let read = read_header(&mut source);
    let (header, raw) = source.check_whole(read)?;
    header.context.require(required)?;
    let (_, keys) = open_header(kms, &header, &raw, opts.backend)?;
    let layout = Layout {
        header_len: raw.len() as u64,
        chunk_size: header.chunk_size(),
    };
    let bytes_in = source.len();
    let sink = Sink::open(output)?;
    let progress = Progress::new("decrypting", bytes_in, opts.quiet);
    let cipher = ChunkCipher::new(opts.backend, &keys.payload);
    let bytes_out = run_engine(source, &sink, false, &cipher, layout, &raw, &progress)?;
    sink.finish()?;
    Ok(Summary {
        bytes_in: bytes_in.unwrap_or(layout.sealed_len(bytes_out)),
        bytes_out,
    })
}

/// `cofre rewrap`: recovers the data key with `from` and wraps it under `keys` of `to`,
/// copying the payload unchanged. With no `output`, replaces `input` in place, atomically.
pub fn rewrap(
    from: &Kms,
    to: &Kms,
    keys: &[KeyRef],
    input: &Path,
    output: Option<&Path>,
    force: bool,
) -> Result<Summary> {
    let (out_path, force) = match output {
        Some(o) => {
            check_not_same(
                &Input::Path(input.to_path_buf()),
                &Output::Path {
                    path: o.to_path_buf(),
                    force,
                },
            )?;
            (o.to_path_buf(), force)
        }
        // In place: replace the file itself, not a symlink to it.
        None => (
            std::fs::canonicalize(input).map_err(|e| Error::io("opening", input, e))?,
            true,
        ),
    };
    let mut file = File::open(input).map_err(|e| Error::io("opening", input, e))?;
    let (old, raw) = Header::read_from(&mut file)?;
    let backend = Backend::default();
    let (data_key, hkeys) = open_header(from, &old, &raw, backend)?;
    // Public-key recipients stay: they depend on no keyring key, and the message id they are
    // bound to does not change.
    let mut header = Header {
        recipients: old
            .recipients
            .iter()
            .filter(|r| matches!(r, Recipient::PublicKey(_)))
            .cloned()
            .collect(),
        ..old.clone()
    };
    if keys.is_empty() {
        return Err(Error::usage(
            "give at least one key to re-wrap under, with -k KEY",
        ));
    }
    wrap_for(to, keys, &data_key, &mut header)?;
    let align = if raw.len() % MAX_ALIGN == 0 {
        MAX_ALIGN
    } else {
        1
    };
    let new_raw = header.seal(&hkeys, align)?;
    let total = file
        .metadata()
        .map_err(|e| Error::io("reading", input, e))?
        .len();
    // Check the payload's length is plausible before copying it.
    let layout = Layout {
        header_len: raw.len() as u64,
        chunk_size: old.chunk_size(),
    };
    layout.plain_len(total)?;
    let out = OutputFile::create(&out_path, force)?;
    // The new file keeps the input's permissions.
    if let Ok(m) = file.metadata() {
        let _ = out.file().set_permissions(m.permissions());
    }
    let mut w = out
        .file()
        .try_clone()
        .map_err(|e| Error::io("opening", &out_path, e))?;
    w.write_all(&new_raw)
        .map_err(|e| Error::io("writing", &out_path, e))?;
    file.seek(SeekFrom::Start(raw.len() as u64))
        .map_err(|e| Error::io("reading", input, e))?;
    // std::io::copy between files uses copy_file_range: a reflink or in-kernel copy.
    let copied =
        std::io::copy(&mut file, &mut w).map_err(|e| Error::io("copying payload of", input, e))?;
    out.commit()?;
    Ok(Summary {
        bytes_in: total,
        bytes_out: new_raw.len() as u64 + copied,
    })
}

/// What `cofre inspect` reports.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub header: Header,
    pub header_len: u64,
    /// Total file size, when the input is a regular file.
    pub file_len: Option<u64>,
    /// Plaintext size implied by the file size.
    pub payload_len: Option<u64>,
    pub chunk_count: Option<u64>,
}

/// `cofre inspect`: the header, without any key.
pub fn inspect(input: &Input) -> Result<Inspection> {
    let mut source = Source::open(input)?;
    let (header, raw) = read_header(&mut source)?;
    let file_len = source.len();
    let layout = Layout {
        header_len: raw.len() as u64,
        chunk_size: header.chunk_size(),
    };
    let payload_len = file_len.map(|l| layout.plain_len(l)).transpose()?;
    Ok(Inspection {
        header_len: raw.len() as u64,
        chunk_count: payload_len.map(|p| layout.chunk_count(p)),
        header,
        file_len,
        payload_len,
    })
}

/// Every cofre file under `dir` (recursively, not following symbolic links), with its header.
/// Only headers are read. Files that are not cofre files, or whose header does not decode, are
/// skipped; folders that cannot be read are an error.
pub fn find_sealed(dir: &Path) -> Result<Vec<(PathBuf, Header)>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io("listing", &d, e))? {
            let entry = entry.map_err(|e| Error::io("listing", &d, e))?;
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => {
                    if let Ok(mut f) = File::open(&path) {
                        if let Ok((header, _)) = Header::read_from(&mut f) {
                            found.push((path, header));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}
