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
use std::io::{Read, Seek, SeekFrom, Write};
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

/// An opened input: a memory map of a regular file, or a stream.
enum Source {
    Mapped(Option<memmap2::Mmap>),
    Stream(File),
}

impl Source {
    fn open(input: &Input) -> Result<Source> {
        let mut file = match input {
            Input::Stdin => {
                let fd = std::io::stdin()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| Error::io("opening", Path::new("stdin"), e))?;
                File::from(fd)
            }
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
            // fault (SIGBUS) rather than return wrong data, which the user caused and will see.
            let m = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::Io {
                what: "mapping input".into(),
                source: e,
            })?;
            let _ = m.advise(memmap2::Advice::Sequential);
            Some(m)
        };
        Ok(Source::Mapped(map))
    }

    fn mapped(&self) -> Option<&[u8]> {
        match self {
            Source::Mapped(map) => Some(map.as_deref().unwrap_or(&[])),
            Source::Stream(_) => None,
        }
    }

    fn len(&self) -> Option<u64> {
        self.mapped().map(|m| m.len() as u64)
    }
}

/// Refuses an output path that is the input file (named or redirected to stdin), even with
/// `--force`.
fn check_not_same(input: &Input, output: &Output) -> Result<()> {
    let Output::Path { path: o, .. } = output else {
        return Ok(());
    };
    let input_meta = match input {
        Input::Path(i) => std::fs::metadata(i).ok(),
        Input::Stdin => std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .and_then(|fd| File::from(fd).metadata().ok()),
    };
    if let (Some(a), Ok(b)) = (input_meta, std::fs::metadata(o)) {
        if a.dev() == b.dev() && a.ino() == b.ino() {
            return Err(Error::SameFile(o.clone()));
        }
    }
    Ok(())
}

fn stdout_file() -> Result<File> {
    let fd = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::io("opening", Path::new("stdout"), e))?;
    Ok(File::from(fd))
}

/// A destination opened for writing: a temporary file to commit, or stdout.
enum Sink {
    File(OutputFile),
    Stdout(File),
}

impl Sink {
    fn open(output: &Output) -> Result<Sink> {
        match output {
            Output::Stdout => Ok(Sink::Stdout(stdout_file()?)),
            Output::Path { path, force } => Ok(Sink::File(OutputFile::create(path, *force)?)),
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::File(f) => f.commit(),
            Sink::Stdout(_) => Ok(()),
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
    match (&source, sink) {
        (Source::Mapped(map), Sink::File(out)) => {
            let input = source.mapped().expect("mapped");
            let map = map.as_ref();
            if seal {
                engine::seal_slice(cipher, layout, header, input, map, out.file(), progress)?;
                Ok(layout.sealed_len(input.len() as u64))
            } else {
                engine::open_slice(cipher, layout, input, map, out.file(), progress)
            }
        }
        _ => {
            let mut writer: Box<dyn Write + Send> = match sink {
                Sink::File(out) => Box::new(std::io::BufWriter::with_capacity(
                    1 << 20,
                    out.file().try_clone().map_err(|e| Error::Io {
                        what: "opening output".into(),
                        source: e,
                    })?,
                )),
                Sink::Stdout(f) => Box::new(f.try_clone().map_err(|e| Error::Io {
                    what: "opening stdout".into(),
                    source: e,
                })?),
            };
            let mut counter = CountingWriter {
                inner: &mut writer,
                count: 0,
            };
            let reader: Box<dyn Read + Send + '_> = match &source {
                Source::Mapped(_) => {
                    let data = source.mapped().expect("mapped");
                    Box::new(if seal { data } else { &data[header.len()..] })
                }
                Source::Stream(file) => Box::new(file),
            };
            if seal {
                engine::seal_stream(cipher, layout, header, reader, &mut counter, progress)?;
            } else {
                engine::open_stream(cipher, layout, reader, &mut counter, progress)?;
            }
            Ok(counter.count)
        }
    }
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

/// Wraps `data_key` under the current version of each of `keys` and adds them to `header`.
fn wrap_for(kms: &Kms, keys: &[KeyRef], data_key: &SecretKey, header: &mut Header) -> Result<()> {
    if keys.is_empty() {
        return Err(Error::usage("give at least one key with -k KEY"));
    }
    for k in keys {
        let master = kms.encryption_key(k)?;
        let aad = WrappedKey::aad(
            master.arn(),
            master.material_id(),
            &header.message_id,
            &header.context,
        );
        header
            .recipients
            .push(Recipient::Kms(master.wrap(data_key, &aad)));
    }
    Ok(())
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
    check_not_same(input, output)?;
    let data_key = SecretKey::random();
    let mut header = Header::new(chunk_log2, context.clone());
    wrap_for(kms, keys, &data_key, &mut header)?;
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
        Source::Mapped(_) => {
            let data = source.mapped().expect("mapped");
            let len = crate::envelope::check_prefix(data)?;
            if data.len() < len {
                return Err(Error::Truncated("the header is incomplete".into()));
            }
            Ok((Header::decode(data)?, data[..len].to_vec()))
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
        let region = w.key_arn.split(':').nth(3).unwrap_or("");
        if region != here {
            regions.push(region.to_owned());
            continue;
        }
        let aad = WrappedKey::aad(
            &w.key_arn,
            &w.material_id,
            &header.message_id,
            &header.context,
        );
        match kms.decryption_key(w).and_then(|m| m.unwrap(w, &aad)) {
            Ok(dk) => {
                let keys = HeaderKeys::derive(backend, &dk, &header.message_id);
                header.verify(raw, &keys)?;
                return Ok((dk, keys));
            }
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
    let (header, raw) = read_header(&mut source)?;
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
        None => (input.to_path_buf(), true),
    };
    let mut file = File::open(input).map_err(|e| Error::io("opening", input, e))?;
    let (old, raw) = Header::read_from(&mut file)?;
    let backend = Backend::default();
    let (data_key, hkeys) = open_header(from, &old, &raw, backend)?;
    let mut header = Header {
        recipients: Vec::new(),
        ..old.clone()
    };
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
