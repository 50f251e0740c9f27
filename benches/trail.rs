//! KMS Encrypt requests per second through `Kms`, in one process, with their trail records
//! made durable: what `cofre serve` gets from the library before any HTTP.
//!
//! Each request is what a server does per call: `Kms::new` around one shared `Arc<Home>`,
//! with the account root's `RequestContext`, then `Encrypt` of 16 bytes under one symmetric
//! key; it returns once its record is in the trail, synced. For each folder (`--dirs`, by
//! default the temp dir and /dev/shm) and thread count (`--threads`, by default 1, 4 and 16):
//! `--rounds` runs of `--seconds` each, each in a fresh home, and their median. After the runs
//! the trail of the last home is checked (every record there, one chain).
//!
//! Run: `cargo bench --bench trail -- [--threads 1,4,16] [--seconds 2] [--rounds 5]
//! [--dirs /tmp,/dev/shm]`. `benches/trail.sh` runs it on this tree and on another git
//! revision (main, by default) and prints the ratio. It uses the public API only, so the same
//! file measures earlier versions.

use cofre::kms::EncryptionAlgorithm;
use cofre::{CreateKeyRequest, EncryptionContext, Home, KeyRef, Kms, Region, RequestContext};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    threads: Vec<usize>,
    seconds: f64,
    rounds: usize,
    dirs: Vec<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        threads: vec![1, 4, 16],
        seconds: 2.0,
        rounds: 5,
        dirs: vec![std::env::temp_dir(), PathBuf::from("/dev/shm")],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` passes --bench to every bench binary.
        if flag == "--bench" {
            continue;
        }
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--threads" => {
                a.threads = value
                    .split(',')
                    .map(|t| t.parse().expect("--threads: numbers, e.g. 1,4,16"))
                    .collect()
            }
            "--seconds" => a.seconds = value.parse().expect("--seconds: a number"),
            "--rounds" => a.rounds = value.parse().expect("--rounds: a number"),
            "--dirs" => a.dirs = value.split(',').map(PathBuf::from).collect(),
            _ => panic!("unknown argument {flag}"),
        }
    }
    a
}

/// A fresh home in `base` with one symmetric key.
fn home_with_key(base: &Path) -> (tempfile::TempDir, Arc<Home>, KeyRef) {
    let dir = tempfile::tempdir_in(base).expect("a temporary folder");
    let home = Arc::new(Home::open(&dir.path().join("home"), Some("111122223333")).unwrap());
    let kms = Kms::new(home.clone(), region(), ctx(&home));
    let key = kms.create_key(&CreateKeyRequest::default()).unwrap();
    (dir, home, key.key_id.parse().unwrap())
}

fn region() -> Region {
    Region::new("us-east-1").unwrap()
}

fn ctx(home: &Home) -> RequestContext {
    RequestContext::account_root(home.account_id())
}

/// Requests per second of `threads` threads encrypting for `seconds`, and their number.
fn run(home: &Arc<Home>, key: &KeyRef, threads: usize, seconds: f64) -> (f64, u64) {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let context = EncryptionContext::new();
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let kms = Kms::new(home.clone(), region(), ctx(home));
                    kms.encrypt(
                        key,
                        b"sixteen bytes!!!",
                        &context,
                        EncryptionAlgorithm::SymmetricDefault,
                    )
                    .expect("encrypt");
                    n += 1;
                }
                done.fetch_add(n, Ordering::Relaxed);
            });
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    let n = done.load(Ordering::Relaxed);
    (n as f64 / start.elapsed().as_secs_f64(), n)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let a = args();
    println!("dir\tthreads\tmedian_req_per_s\truns");
    for base in &a.dirs {
        for &threads in &a.threads {
            let mut runs = Vec::new();
            let mut last = None;
            for _ in 0..a.rounds {
                let (dir, home, key) = home_with_key(base);
                let (rate, n) = run(&home, &key, threads, a.seconds);
                runs.push(rate);
                last = Some((dir, home, n));
            }
            // The trail holds CreateKey and one record per request, in one clean chain.
            let (_dir, home, n) = last.expect("at least one round");
            let kms = Kms::new(home.clone(), region(), ctx(&home));
            let report = kms.audit_trail().check().unwrap();
            assert!(report.problems.is_empty(), "{:?}", report.problems);
            assert_eq!(report.records, n + 1, "a record is missing or extra");
            let runs_text: Vec<String> = runs.iter().map(|r| format!("{r:.0}")).collect();
            println!(
                "{}\t{threads}\t{:.0}\t{}",
                base.display(),
                median(runs),
                runs_text.join(",")
            );
        }
    }
}
