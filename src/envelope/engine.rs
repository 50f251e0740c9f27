//! The drivers that move a payload through the [`ChunkCipher`]: in parallel over memory maps
//! for regular files, and through a bounded pipeline for pipes. Both write the same bytes.
//!
//! - [`seal_slice`] / [`open_slice`]: the input is a memory map (or any slice); rayon seals or
//!   opens chunks in any order, straight from the map into a per-thread buffer, and writes each
//!   at its final offset with `pwrite`. (A writable map of the output was measured too: page
//!   zeroing and page-table work made it slower on tmpfs, and a full disk turns into SIGBUS.)
//! - [`seal_stream`] / [`open_stream`]: a reader thread fills batches of chunk buffers, rayon
//!   seals or opens a batch in parallel, a writer thread writes batches in order and hands the
//!   buffers back. At most five batches of about 4 MiB exist, so memory stays flat whatever the
//!   input size. The reader thread is detached: if the output fails while the input blocks
//!   (a pipe that never ends), the error is reported at once instead of waiting for input.

use super::header::read_full;
use super::stream::{ChunkCipher, Layout};
use crate::crypto::TAG_LEN;
use crate::error::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

/// Target bytes of one pipe batch. At most five batches exist at once (one being read, one
/// queued, one being sealed or opened, one queued, one being written).
const PIPE_BATCH_BYTES: u64 = 4 << 20;

/// A progress bar on stderr, shown only when stderr is a terminal, the caller did not ask for
/// quiet, and the job is big enough to take more than a moment.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// No progress display.
    pub fn hidden() -> Self {
        Progress(None)
    }

    /// A bar for `total` bytes (unknown for pipes), labelled `what`.
    pub fn new(what: &str, total: Option<u64>, quiet: bool) -> Self {
        let big = total.is_none_or(|t| t >= 64 << 20);
        if quiet || !big || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = match total {
            Some(t) => ProgressBar::new(t).with_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{msg} {bytes} {binary_bytes_per_sec}")
                    .expect("a valid template"),
            ),
        };
        bar.set_message(what.to_owned());
        Progress(Some(bar))
    }

    /// Counts `n` more bytes done.
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    /// A handle for another thread to count progress with (it does not clear the bar).
    fn counter(&self) -> Option<ProgressBar> {
        self.0.clone()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// Maps `[offset, offset + len)` of an input map in one call (MADV_POPULATE_READ) instead of a
/// page fault per 4 KiB; a hint, so failures are ignored.
fn prefetch(map: Option<&memmap2::Mmap>, offset: usize, len: usize) {
    if let Some(m) = map {
        let _ = m.advise_range(memmap2::Advice::PopulateRead, offset, len);
    }
}

fn write_at(out: &File, buf: &[u8], offset: u64) -> Result<()> {
    out.write_all_at(buf, offset).map_err(|e| Error::Io {
        what: "writing output".into(),
        source: e,
    })
}

/// Seals `input` as the payload after `header` into `out`, in parallel. `out` is written at
/// absolute offsets and ends up exactly `layout.sealed_len(input.len())` bytes long.
pub fn seal_slice(
    cipher: &ChunkCipher,
    layout: Layout,
    header: &[u8],
    input: &[u8],
    input_map: Option<&memmap2::Mmap>,
    out: &File,
    progress: &Progress,
) -> Result<()> {
    let plain_len = input.len() as u64;
    layout.check_plain_len(plain_len)?;
    write_at(out, header, 0)?;
    out.set_len(layout.sealed_len(plain_len))
        .map_err(|e| Error::Io {
            what: "sizing output".into(),
            source: e,
        })?;
    let c = layout.chunk_size as usize;
    let count = layout.chunk_count(plain_len);
    (0..count).into_par_iter().try_for_each_init(
        || vec![0u8; c + TAG_LEN],
        |buf, i| {
            let start = i as usize * c;
            let end = (start + c).min(input.len());
            prefetch(input_map, start, end - start);
            let pt = &input[start..end];
            let sealed = &mut buf[..pt.len() + TAG_LEN];
            cipher.seal(i, i + 1 == count, pt, sealed);
            write_at(out, sealed, layout.chunk_offset(i))?;
            progress.inc(pt.len() as u64);
            Ok(())
        },
    )
}

/// Opens the payload `sealed` (the whole file, header included, as laid out by `layout`) into
/// `out`, in parallel. Returns the plaintext length. On error `out` holds garbage and must be
/// discarded; the error names a failing chunk (not necessarily the first, when several fail).
pub fn open_slice(
    cipher: &ChunkCipher,
    layout: Layout,
    sealed: &[u8],
    sealed_map: Option<&memmap2::Mmap>,
    out: &File,
    progress: &Progress,
) -> Result<u64> {
    let plain_len = layout.plain_len(sealed.len() as u64)?;
    out.set_len(plain_len).map_err(|e| Error::Io {
        what: "sizing output".into(),
        source: e,
    })?;
    let c = layout.chunk_size as usize;
    let count = layout.chunk_count(plain_len);
    let result = (0..count).into_par_iter().try_for_each_init(
        || vec![0u8; c + TAG_LEN],
        |buf, i| {
            let start = layout.chunk_offset(i) as usize;
            let end = (start + c + TAG_LEN).min(sealed.len());
            prefetch(sealed_map, start, end - start);
            // Copy first: the map could change under us if another process writes the file,
            // and the bytes authenticated must be the bytes decrypted.
            let chunk = &mut buf[..end - start];
            chunk.copy_from_slice(&sealed[start..end]);
            cipher.open_in_place(i, i + 1 == count, chunk)?;
            write_at(out, &chunk[..chunk.len() - TAG_LEN], i * c as u64)?;
            progress.inc(chunk.len() as u64);
            Ok(())
        },
    );
    result.map(|()| plain_len)
}

/// One chunk in a pipe batch: its index, the bytes in use, whether it is the last.
struct Slot {
    index: u64,
    len: usize,
    last: bool,
    buf: Vec<u8>,
}

type Batch = Vec<Slot>;

/// Chunks per batch: about 4 MiB, at least one.
fn batch_len(chunk: usize) -> usize {
    ((PIPE_BATCH_BYTES as usize) / chunk).max(1)
}

/// Reads chunks of `read_size` bytes and sends them one by one; a short read marks the last.
fn read_chunks(
    mut reader: impl Read,
    read_size: usize,
    buf_size: usize,
    tx: SyncSender<Result<Slot>>,
    free: Receiver<Vec<u8>>,
    progress: Option<ProgressBar>,
) {
    for index in 0u64.. {
        let mut buf = free.try_recv().unwrap_or_else(|_| vec![0u8; buf_size]);
        let n = match read_full(&mut reader, &mut buf[..read_size]) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        if let Some(p) = &progress {
            p.inc(n as u64);
        }
        let last = n < read_size;
        let slot = Slot {
            index,
            len: n,
            last,
            buf,
        };
        if tx.send(Ok(slot)).is_err() || last {
            return;
        }
    }
}

/// The next batch: one chunk (waiting for it), then whatever else has arrived, up to `max`.
/// None when the input is done. A read error behind some good chunks is kept in `pending`
/// and returned by the next call, so the good chunks are handled first.
fn next_batch(
    rx: &Receiver<Result<Slot>>,
    max: usize,
    pending: &mut Option<Error>,
) -> Option<Result<Batch>> {
    if let Some(e) = pending.take() {
        return Some(Err(e));
    }
    let first = match rx.recv().ok()? {
        Ok(slot) => slot,
        Err(e) => return Some(Err(e)),
    };
    let mut last = first.last;
    let mut batch = vec![first];
    while batch.len() < max && !last {
        match rx.try_recv() {
            Ok(Ok(slot)) => {
                last = slot.last;
                batch.push(slot);
            }
            Ok(Err(e)) => {
                *pending = Some(e);
                break;
            }
            Err(_) => break,
        }
    }
    Some(Ok(batch))
}

/// Writes batches in order, returning buffers to the pool. Stops at the first error.
fn write_batches(
    writer: &mut (impl Write + ?Sized),
    rx: Receiver<Batch>,
    free: Sender<Vec<u8>>,
) -> Result<()> {
    for batch in rx {
        for slot in batch {
            writer
                .write_all(&slot.buf[..slot.len])
                .map_err(|e| Error::Io {
                    what: "writing output".into(),
                    source: e,
                })?;
            let _ = free.send(slot.buf);
        }
    }
    writer.flush().map_err(|e| Error::Io {
        what: "writing output".into(),
        source: e,
    })
}

/// Runs the three-stage pipeline; `work` transforms one batch in place (in parallel) and may
/// return an error, after which the slots before the failing one are still written.
fn pipeline<R, W>(
    reader: R,
    writer: &mut W,
    read_size: usize,
    buf_size: usize,
    progress: &Progress,
    work: impl Fn(&mut Slot) -> Result<()> + Sync,
) -> Result<()>
where
    R: Read + Send + 'static,
    W: Write + Send + ?Sized,
{
    let per_batch = batch_len(read_size);
    let (read_tx, read_rx) = sync_channel::<Result<Slot>>(per_batch);
    let (write_tx, write_rx) = sync_channel::<Batch>(1);
    let (free_tx, free_rx) = channel::<Vec<u8>>();
    let counter = progress.counter();
    // Detached: it ends at end of input, or when it next finds the pipeline gone. So a failure
    // is reported at once even if the input never ends.
    std::thread::spawn(move || read_chunks(reader, read_size, buf_size, read_tx, free_rx, counter));
    std::thread::scope(|s| {
        let writer_thread = s.spawn(move || write_batches(writer, write_rx, free_tx));
        let (mut failure, mut pending, mut finished) = (None, None, false);
        while let Some(batch) = next_batch(&read_rx, per_batch, &mut pending) {
            let mut batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            finished = batch.last().is_some_and(|s| s.last);
            let results: Vec<Result<()>> = batch.par_iter_mut().map(&work).collect();
            if let Some(bad) = results.iter().position(Result::is_err) {
                batch.truncate(bad);
                let _ = write_tx.send(batch);
                failure = results.into_iter().nth(bad).and_then(Result::err);
                break;
            }
            if write_tx.send(batch).is_err() {
                break;
            }
        }
        drop(write_tx);
        let written = writer_thread.join().expect("writer thread panicked");
        match failure {
            Some(e) => Err(e),
            None if !finished && written.is_ok() => Err(Error::Io {
                what: "reading input".into(),
                source: std::io::Error::other("the reader stopped before the end of the input"),
            }),
            None => written,
        }
    })
}

/// Seals everything `reader` yields, writing `header` then the chunks to `writer` in order.
pub fn seal_stream<R, W>(
    cipher: &ChunkCipher,
    layout: Layout,
    header: &[u8],
    reader: R,
    writer: &mut W,
    progress: &Progress,
) -> Result<()>
where
    R: Read + Send + 'static,
    W: Write + Send + ?Sized,
{
    writer.write_all(header).map_err(|e| Error::Io {
        what: "writing output".into(),
        source: e,
    })?;
    let c = layout.chunk_size as usize;
    pipeline(reader, writer, c, c + TAG_LEN, progress, |slot| {
        if slot.index >= super::stream::MAX_CHUNKS {
            return Err(Error::usage(
                "input needs more than 2^32 chunks; use a larger --chunk-size",
            ));
        }
        let n = slot.len;
        cipher.seal_in_place(slot.index, slot.last, &mut slot.buf[..n + TAG_LEN]);
        slot.len = n + TAG_LEN;
        Ok(())
    })
}

/// Opens the chunks `reader` yields (positioned just after the header) and writes the
/// plaintext to `writer` in order. Stops at the first chunk that fails, after writing every
/// chunk before it.
pub fn open_stream<R, W>(
    cipher: &ChunkCipher,
    layout: Layout,
    reader: R,
    writer: &mut W,
    progress: &Progress,
) -> Result<()>
where
    R: Read + Send + 'static,
    W: Write + Send + ?Sized,
{
    let sealed = layout.sealed_chunk() as usize;
    pipeline(reader, writer, sealed, sealed, progress, |slot| {
        if slot.len < TAG_LEN {
            return Err(Error::Truncated(if slot.len == 0 && slot.index > 0 {
                format!("the final chunk (chunk {}) is missing", slot.index)
            } else {
                format!("chunk {} is cut short", slot.index)
            }));
        }
        if slot.index >= super::stream::MAX_CHUNKS {
            return Err(Error::HeaderCorrupt(
                "more chunks than the format allows".into(),
            ));
        }
        cipher.open_in_place(slot.index, slot.last, &mut slot.buf[..slot.len])?;
        slot.len -= TAG_LEN;
        Ok(())
    })
}
