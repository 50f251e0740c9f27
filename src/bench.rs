//! `cofre bench`: throughput measured on the machine it runs on, in one run.
//!
//! For each backend × chunk size × thread count: sealing and opening in memory, and
//! `cofre encrypt` / `cofre decrypt` of a file (through the same library calls the CLI makes)
//! into a folder on tmpfs when there is one. The floor is the same file copied by a plain
//! read/write loop, measured in the same run; every file figure is also given as a ratio to it.
//! Every figure is the median of [`ROUNDS`] measurements; none is estimated. Peak memory is what
//! the process's RSS rose by during the file measurements (Linux resets the peak through
//! `/proc/self/clear_refs`); pages of the memory-mapped files count in it.

use crate::crypto::{Backend, SecretKey, TAG_LEN};
use crate::envelope::{chunk_log2, ChunkCipher, EncryptionContext, Layout};
use crate::error::{Error, Result};
use crate::files::{self, Input, Options, Output};
use crate::keyring::{Home, Region};
use crate::kms::{CreateKeyRequest, Kms};
use rayon::prelude::*;
use serde::Serialize;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Measurements per figure; the median is reported.
pub const ROUNDS: usize = 3;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub size: u64,
    pub threads: Vec<usize>,
    pub chunk_sizes: Vec<u64>,
    pub backends: Vec<Backend>,
    pub dir: Option<PathBuf>,
}

/// One row of results.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub backend: &'static str,
    pub chunk_size: u64,
    pub threads: usize,
    /// In-memory sealing and opening, GB/s (10^9 bytes per second).
    pub seal_gbps: f64,
    pub open_gbps: f64,
    /// File encrypt and decrypt, GB/s of plaintext.
    pub encrypt_gbps: f64,
    pub decrypt_gbps: f64,
    /// Time relative to the copy floor (below 1 is faster than the copy).
    pub encrypt_vs_copy: f64,
    pub decrypt_vs_copy: f64,
    /// Peak RSS added during the file measurements (above what the bench already held), MiB;
    /// memory-mapped pages of the files count.
    pub peak_rss_mib: f64,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub size: u64,
    pub dir: PathBuf,
    pub cpu_features: Vec<&'static str>,
    pub cores: usize,
    pub copy_gbps: f64,
    pub rows: Vec<BenchRow>,
}

/// The AES-relevant CPU features found.
pub fn cpu_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut found = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        let checks: [(&str, bool); 6] = [
            ("AES-NI", std::arch::is_x86_feature_detected!("aes")),
            (
                "PCLMULQDQ",
                std::arch::is_x86_feature_detected!("pclmulqdq"),
            ),
            ("AVX2", std::arch::is_x86_feature_detected!("avx2")),
            ("VAES", std::arch::is_x86_feature_detected!("vaes")),
            (
                "VPCLMULQDQ",
                std::arch::is_x86_feature_detected!("vpclmulqdq"),
            ),
            ("AVX-512", std::arch::is_x86_feature_detected!("avx512f")),
        ];
        found.extend(checks.iter().filter(|(_, on)| *on).map(|(n, _)| *n));
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("aes") {
            found.push("ARMv8-AES");
        }
        if std::arch::is_aarch64_feature_detected!("pmull") {
            found.push("PMULL");
        }
    }
    found
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `ROUNDS` runs of `f`; `setup` runs untimed before each.
fn time(mut setup: impl FnMut() -> Result<()>, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut secs = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        setup()?;
        let t = Instant::now();
        f()?;
        secs.push(t.elapsed().as_secs_f64());
    }
    Ok(median(secs))
}

/// A field of /proc/self/status in MiB (0 where there is no /proc).
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the peak RSS to the current RSS and returns the current RSS, MiB.
fn reset_peak_rss() -> f64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_mib("VmRSS:")
}

fn default_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Copies `from` to `to` with a plain read/write loop (1 MiB buffer): the floor.
fn plain_copy(from: &Path, to: &Path) -> Result<()> {
    let mut r = std::fs::File::open(from).map_err(|e| Error::io("opening", from, e))?;
    let mut w = std::fs::File::create(to).map_err(|e| Error::io("creating", to, e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| Error::io("reading", from, e))?;
        if n == 0 {
            return Ok(());
        }
        w.write_all(&buf[..n])
            .map_err(|e| Error::io("writing", to, e))?;
    }
}

fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::usage(format!("cannot start {threads} threads: {e}")))
}

fn gbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e9
}

/// Runs the benchmark. `status` receives one line per step (the progress line).
pub fn run(cfg: &BenchConfig, status: &mut dyn FnMut(&str)) -> Result<BenchReport> {
    if cfg.size == 0 || cfg.threads.is_empty() || cfg.chunk_sizes.is_empty() {
        return Err(Error::usage(
            "bench needs a size above 0, and at least one thread count and chunk size",
        ));
    }
    if let Some(&t) = cfg.threads.iter().find(|&&t| t == 0 || t > 1024) {
        return Err(Error::usage(format!(
            "{t} threads: give counts from 1 to 1024"
        )));
    }
    let logs = cfg
        .chunk_sizes
        .iter()
        .map(|&c| chunk_log2(c))
        .collect::<Result<Vec<_>>>()?;
    let base = cfg.dir.clone().unwrap_or_else(default_dir);
    let tmp = tempfile::Builder::new()
        .prefix("cofre-bench-")
        .tempdir_in(&base)
        .map_err(|e| Error::io("creating a temporary folder in", &base, e))?;
    crate::store::remove_on_interrupt(tmp.path());
    let result = measure(cfg, &logs, tmp.path(), &base, status);
    crate::store::forget_on_interrupt(tmp.path());
    result
}

fn measure(
    cfg: &BenchConfig,
    logs: &[u8],
    root: &Path,
    base: &Path,
    status: &mut dyn FnMut(&str),
) -> Result<BenchReport> {
    let size = cfg.size;
    let home = Home::open(&root.join("home"), None)?;
    let ctx = crate::RequestContext::account_root(home.account_id());
    let kms = Kms::new(home, Region::new("us-east-1")?, ctx);
    let key = kms
        .create_key(&CreateKeyRequest::default())?
        .key_id
        .parse()?;
    status("generating test data");
    let mut data = vec![0u8; size as usize];
    blake3::Hasher::new()
        .update(b"cofre bench")
        .finalize_xof()
        .fill(&mut data);
    let plain = root.join("plain");
    std::fs::write(&plain, &data).map_err(|e| Error::io("writing", &plain, e))?;
    let copy = root.join("copy");
    let sealed = root.join("sealed");
    let opened = root.join("opened");
    let remove = |p: &Path| {
        let _ = std::fs::remove_file(p);
        Ok(())
    };

    status("copy floor");
    let copy_secs = time(|| remove(&copy), || plain_copy(&plain, &copy))?;
    remove(&copy)?;

    let mut rows = Vec::new();
    for &backend in &cfg.backends {
        for (&log2, &chunk) in logs.iter().zip(&cfg.chunk_sizes) {
            for &threads in &cfg.threads {
                let label = format!(
                    "{} chunk {} threads {threads}",
                    backend.name(),
                    human(chunk)
                );
                let pool = pool(threads)?;
                status(&format!("{label}: in memory"));
                let cipher = ChunkCipher::new(backend, &SecretKey::random());
                let layout = Layout {
                    header_len: 0,
                    chunk_size: chunk,
                };
                let mut out = vec![0u8; layout.sealed_len(size) as usize];
                let seal = time(
                    || Ok(()),
                    || {
                        pool.install(|| seal_in_memory(&cipher, layout, &data, &mut out));
                        Ok(())
                    },
                )?;
                let mut back = vec![0u8; size as usize];
                let open = time(
                    || Ok(()),
                    || pool.install(|| open_in_memory(&cipher, layout, &out, &mut back)),
                )?;
                if back != data {
                    return Err(Error::Mismatch(
                        "bench: in-memory round trip differs".into(),
                    ));
                }
                drop((out, back));

                status(&format!("{label}: files"));
                let opts = Options {
                    backend,
                    quiet: true,
                };
                let baseline = reset_peak_rss();
                let encrypt = time(
                    || remove(&sealed),
                    || {
                        pool.install(|| {
                            files::encrypt(
                                &kms,
                                std::slice::from_ref(&key),
                                &EncryptionContext::new(),
                                log2,
                                &Input::Path(plain.clone()),
                                &Output::Path {
                                    path: sealed.clone(),
                                    force: false,
                                },
                                opts,
                            )
                        })
                        .map(drop)
                    },
                )?;
                let decrypt = time(
                    || remove(&opened),
                    || {
                        pool.install(|| {
                            files::decrypt(
                                &kms,
                                &EncryptionContext::new(),
                                &Input::Path(sealed.clone()),
                                &Output::Path {
                                    path: opened.clone(),
                                    force: false,
                                },
                                opts,
                            )
                        })
                        .map(drop)
                    },
                )?;
                let peak = (status_mib("VmHWM:") - baseline).max(0.0);
                remove(&sealed)?;
                remove(&opened)?;
                rows.push(BenchRow {
                    backend: backend.name(),
                    chunk_size: chunk,
                    threads,
                    seal_gbps: gbps(size, seal),
                    open_gbps: gbps(size, open),
                    encrypt_gbps: gbps(size, encrypt),
                    decrypt_gbps: gbps(size, decrypt),
                    encrypt_vs_copy: encrypt / copy_secs,
                    decrypt_vs_copy: decrypt / copy_secs,
                    peak_rss_mib: peak,
                });
            }
        }
    }
    Ok(BenchReport {
        size,
        dir: base.to_path_buf(),
        cpu_features: cpu_features(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        copy_gbps: gbps(size, copy_secs),
        rows,
    })
}

fn seal_in_memory(cipher: &ChunkCipher, layout: Layout, data: &[u8], out: &mut [u8]) {
    let c = layout.chunk_size as usize;
    let count = layout.chunk_count(data.len() as u64);
    out.par_chunks_mut(c + TAG_LEN)
        .enumerate()
        .for_each(|(i, sealed)| {
            let start = i * c;
            let pt = &data[start..(start + c).min(data.len())];
            cipher.seal(i as u64, i as u64 + 1 == count, pt, sealed);
        });
}

fn open_in_memory(
    cipher: &ChunkCipher,
    layout: Layout,
    sealed: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let c = layout.chunk_size as usize;
    let count = layout.chunk_count(out.len() as u64);
    // The last output chunk may be empty: pad the chunk list so every sealed chunk has a slot.
    let mut slots: Vec<&mut [u8]> = out.chunks_mut(c).collect();
    if slots.len() < count as usize {
        slots.push(&mut []);
    }
    slots
        .into_par_iter()
        .zip(sealed.par_chunks(c + TAG_LEN))
        .enumerate()
        .try_for_each(|(i, (pt, ct))| cipher.open(i as u64, i as u64 + 1 == count, ct, pt))
}

/// `1048576` → `1MiB`.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{}GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}KiB", b >> 10),
        b => format!("{b}B"),
    }
}

/// The report as a table.
pub fn table(r: &BenchReport) -> String {
    let mut s = format!(
        "cofre bench: {} of data in {}; {} cores; CPU: {}\ncopy floor (read/write loop): {:.2} GB/s\n\n",
        human(r.size),
        r.dir.display(),
        r.cores,
        if r.cpu_features.is_empty() { "no AES acceleration found".into() } else { r.cpu_features.join(" ") },
        r.copy_gbps
    );
    s.push_str("backend     chunk  threads  seal GB/s  open GB/s  encrypt GB/s  decrypt GB/s  enc/copy  dec/copy  peak MiB\n");
    for row in &r.rows {
        s.push_str(&format!(
            "{:<10} {:>6} {:>8} {:>10.2} {:>10.2} {:>13.2} {:>13.2} {:>9.2} {:>9.2} {:>9.0}\n",
            row.backend,
            human(row.chunk_size),
            row.threads,
            row.seal_gbps,
            row.open_gbps,
            row.encrypt_gbps,
            row.decrypt_gbps,
            row.encrypt_vs_copy,
            row.decrypt_vs_copy,
            row.peak_rss_mib
        ));
    }
    s
}

/// Draws throughput against chunk size (in-memory sealing and file encryption, one line per
/// backend and thread count, and the copy floor) as an SVG document.
pub fn plot(r: &BenchReport) -> Result<String> {
    use plotters::prelude::*;
    let fail = |e: &dyn std::fmt::Display| Error::usage(format!("drawing the plot: {e}"));
    let mut svg = String::new();
    let xs: Vec<u64> = {
        let mut v: Vec<u64> = r.rows.iter().map(|row| row.chunk_size).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let x_of = |c: u64| xs.iter().position(|&x| x == c).unwrap_or(0) as f64;
    let top = r
        .rows
        .iter()
        .map(|row| row.seal_gbps.max(row.encrypt_gbps))
        .fold(0.0, f64::max)
        * 1.15
        + 0.1;
    let root = SVGBackend::with_string(&mut svg, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("cofre: throughput by chunk size", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.3f64..(xs.len() as f64 - 0.7), 0f64..top)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_labels(xs.len())
        .x_label_formatter(&|x| {
            xs.get(x.round().max(0.0) as usize)
                .map(|&c| human(c))
                .unwrap_or_default()
        })
        .x_desc("chunk size")
        .y_desc("GB/s")
        .draw()
        .map_err(|e| fail(&e))?;
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut keys: Vec<(&str, usize)> = r
        .rows
        .iter()
        .map(|row| (row.backend, row.threads))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for (backend, threads) in keys {
        for (what, pick) in [
            (
                "seal in memory",
                (|row: &BenchRow| row.seal_gbps) as fn(&BenchRow) -> f64,
            ),
            ("encrypt file", |row: &BenchRow| row.encrypt_gbps),
        ] {
            let pts = r
                .rows
                .iter()
                .filter(|row| row.backend == backend && row.threads == threads)
                .map(|row| (x_of(row.chunk_size), pick(row)))
                .collect();
            series.push((format!("{backend}, {threads} thread(s), {what}"), pts));
        }
    }
    for (i, (label, pts)) in series.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(|e| fail(&e))?;
    }
    let copy = r.copy_gbps;
    chart
        .draw_series(LineSeries::new(
            vec![(-0.3, copy), (xs.len() as f64 - 0.7, copy)],
            BLACK.stroke_width(1),
        ))
        .map_err(|e| fail(&e))?
        .label(format!("copy floor {copy:.2} GB/s"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    drop(chart);
    drop(root);
    Ok(svg)
}
