//! The trail under concurrent requests (group commit): threads of one process making real
//! `Kms` requests, with and without another `cofre` process appending at the same time, each
//! request recorded exactly once in one keyed chain, in fewer synced batches than requests; a
//! batch that cannot be written fails every request in it and leaves the trail as it was; a
//! write the disk takes only part of is cut back. Homes live in the temp dir (a real disk),
//! where a sync takes long enough for requests to meet.

use cofre::kms::EncryptionAlgorithm;
use cofre::{CreateKeyRequest, EncryptionContext, Home, KeyRef, Kms, Region, RequestContext};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

const ACCOUNT: &str = "111122223333";

struct Fx {
    dir: tempfile::TempDir,
    home: Arc<Home>,
    key: KeyRef,
}

impl Fx {
    /// A home with one symmetric key, in the temp dir.
    fn new() -> Self {
        Self::in_dir(tempfile::tempdir().unwrap())
    }

    /// A home with one symmetric key, on tmpfs when there is one (where a sync costs
    /// nothing).
    fn on_tmpfs() -> Self {
        let shm = Path::new("/dev/shm");
        Self::in_dir(if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        })
    }

    fn in_dir(dir: tempfile::TempDir) -> Self {
        let home = Arc::new(Home::open(&dir.path().join("home"), Some(ACCOUNT)).unwrap());
        let fx = Fx {
            dir,
            home,
            key: "alias/none".parse().unwrap(),
        };
        let key = fx
            .kms("setup")
            .create_key(&CreateKeyRequest::default())
            .unwrap();
        Fx {
            key: key.key_id.parse().unwrap(),
            ..fx
        }
    }

    /// The endpoint as a server makes it per request: the shared home, the account root,
    /// the request's own id.
    fn kms(&self, request_id: &str) -> Kms {
        Kms::new(
            self.home.clone(),
            Region::new("us-east-1").unwrap(),
            RequestContext::account_root(ACCOUNT).with_request_id(request_id),
        )
    }

    fn encrypt(&self, request_id: &str) -> cofre::Result<()> {
        self.kms(request_id)
            .encrypt(
                &self.key,
                b"sixteen bytes!!!",
                &EncryptionContext::new(),
                EncryptionAlgorithm::SymmetricDefault,
            )
            .map(drop)
    }

    fn audit(&self) -> PathBuf {
        self.dir.path().join("home/regions/us-east-1/audit")
    }

    fn trail_bytes(&self) -> Vec<u8> {
        std::fs::read(self.audit().join("trail.jsonl")).unwrap()
    }

    /// `cofre` in this home and region.
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cofre"))
            .arg("--home")
            .arg(self.dir.path().join("home"))
            .args(["--region", "us-east-1"])
            .args(args)
            .env_remove("COFRE_NOW")
            .env_remove("COFRE_HOME")
            .env_remove("COFRE_REGION")
            .env_remove("COFRE_PRINCIPAL")
            .output()
            .unwrap()
    }

    fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "cofre {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The trail is whole: numbered 1, 2, … in one keyed chain, marked at its end, with no
    /// problem found by the library or by `cofre audit verify`; returns its records' request
    /// ids, in order.
    fn assert_clean(&self) -> Vec<String> {
        let trail = self.kms("check").audit_trail();
        let report = trail.check().unwrap();
        assert_eq!(report.problems, [], "{report:?}");
        assert!(!report.cut_short);
        assert_eq!(report.marked_through, report.records, "{report:?}");
        let events = trail.events().unwrap();
        assert_eq!(events.len() as u64, report.records);
        let seqs: Vec<u64> = events.iter().map(|e| e.cofre_sequence).collect();
        assert_eq!(seqs, (1..=report.records).collect::<Vec<_>>());
        assert!(events
            .iter()
            .all(|e| e.cofre_chain.as_deref() == Some(cofre::audit::KEYED_CHAIN)));
        let verify = self.cli_ok(&["audit", "verify"]);
        assert!(verify.contains("intact"), "{verify}");
        events.into_iter().map(|e| e.request_id).collect()
    }
}

/// The ids of `threads` × `each` requests, as the workers name them.
fn ids(threads: usize, each: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..threads)
        .flat_map(|t| (0..each).map(move |i| format!("t{t}-r{i}")))
        .collect();
    v.sort();
    v
}

/// `threads` threads each making `each` Encrypt requests named `t<thread>-r<i>`.
fn encrypt_from_threads(fx: &Fx, threads: usize, each: usize) {
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in 0..each {
                    fx.encrypt(&format!("t{t}-r{i}")).unwrap();
                }
            });
        }
    });
}

/// Where each of a thread's requests landed in the trail: each one after the one before it,
/// as each returned only once recorded.
fn assert_in_order_per_thread(recorded: &[String], threads: usize, each: usize) {
    for t in 0..threads {
        let at: Vec<usize> = (0..each)
            .map(|i| {
                let id = format!("t{t}-r{i}");
                recorded.iter().position(|r| *r == id).unwrap()
            })
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "thread {t}: {at:?}");
    }
}

#[test]
fn requests_from_eight_threads_are_each_recorded_once_in_one_chain_in_fewer_batches() {
    const THREADS: usize = 8;
    const EACH: usize = 50;
    let fx = Fx::new();
    let trail = fx.kms("count").audit_trail();
    let batches_before = trail.batches_committed();
    encrypt_from_threads(&fx, THREADS, EACH);
    let batches = trail.batches_committed() - batches_before;

    let recorded = fx.assert_clean();
    assert_eq!(recorded.len(), 1 + THREADS * EACH);
    assert_eq!(recorded[0], "setup");
    let mut requests = recorded[1..].to_vec();
    requests.sort();
    assert_eq!(
        requests,
        ids(THREADS, EACH),
        "a request is missing or twice"
    );
    assert_in_order_per_thread(&recorded, THREADS, EACH);
    // Requests that met shared a write, a sync and a mark.
    assert!(
        (1..(THREADS * EACH) as u64).contains(&batches),
        "{batches} batches for {} requests",
        THREADS * EACH
    );
}

#[test]
fn another_process_appending_meanwhile_leaves_one_clean_chain() {
    const THREADS: usize = 4;
    const EACH: usize = 30;
    const CLI_KEYS: usize = 8;
    let fx = Fx::new();
    let cli_done = std::sync::atomic::AtomicBool::new(false);
    let (cli_keys, changes) = std::thread::scope(|s| {
        let cli = s.spawn(|| {
            let keys: Vec<String> = (0..CLI_KEYS)
                .map(|_| fx.cli_ok(&["key", "create"]))
                .collect();
            cli_done.store(true, std::sync::atomic::Ordering::SeqCst);
            keys
        });
        // Requests that change state check the trail first (reserve): those must see the
        // other process's records too.
        let changer = s.spawn(|| {
            let mut n = 0;
            while !cli_done.load(std::sync::atomic::Ordering::SeqCst) || n == 0 {
                fx.kms(&format!("enable-{n}")).enable_key(&fx.key).unwrap();
                n += 1;
            }
            n
        });
        encrypt_from_threads(&fx, THREADS, EACH);
        (cli.join().unwrap(), changer.join().unwrap())
    });

    let recorded = fx.assert_clean();
    assert_eq!(recorded.len(), 1 + THREADS * EACH + CLI_KEYS + changes);
    let mut mine: Vec<String> = recorded
        .iter()
        .filter(|r| r.starts_with('t'))
        .cloned()
        .collect();
    mine.sort();
    assert_eq!(mine, ids(THREADS, EACH));
    assert_in_order_per_thread(&recorded, THREADS, EACH);
    let events = fx.kms("check").audit_trail().events().unwrap();
    for key in &cli_keys {
        let created: Vec<_> = events
            .iter()
            .filter(|e| {
                e.event_name == "CreateKey"
                    && e.resources.iter().any(|r| r.arn.ends_with(key.as_str()))
            })
            .collect();
        assert_eq!(created.len(), 1, "{key}");
    }
    let enables = events
        .iter()
        .filter(|e| e.event_name == "EnableKey")
        .count();
    assert_eq!(enables, changes);
}

#[test]
fn a_batch_that_cannot_be_written_fails_every_request_and_leaves_the_trail_as_it_was() {
    const THREADS: usize = 8;
    const EACH: usize = 3;
    let fx = Fx::new();
    encrypt_from_threads(&fx, 2, 2);
    let before = fx.trail_bytes();
    let mark = fx.audit().join("mark.json");
    let saved = fx.audit().join("mark.saved");
    let mark_before = std::fs::read(&mark).unwrap();

    // The mark's path taken by a folder: no batch can be checked or marked.
    std::fs::rename(&mark, &saved).unwrap();
    std::fs::create_dir(&mark).unwrap();
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let fx = &fx;
                s.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            fx.encrypt(&format!("failed-{t}-{i}"))
                                .expect_err("a request went on without its record")
                                .to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(failures.len(), THREADS * EACH);
    for f in &failures {
        assert!(f.contains("mark.json"), "{f}");
        assert!(!f.contains('\n'), "{f}");
    }
    assert!(fx.trail_bytes() == before, "a failed batch left records");

    // Put back, the trail goes on from where it was.
    std::fs::remove_dir(&mark).unwrap();
    std::fs::rename(&saved, &mark).unwrap();
    assert!(std::fs::read(&mark).unwrap() == mark_before);
    encrypt_from_threads(&fx, THREADS, EACH);
    let recorded = fx.assert_clean();
    assert_eq!(recorded.len(), 1 + 4 + THREADS * EACH);
    assert!(!recorded.iter().any(|r| r.starts_with("failed-")));
    assert!(
        fx.trail_bytes().starts_with(&before),
        "an earlier record changed"
    );
}

/// Runs `cofre` in `fx`'s home with files limited to `limit` bytes (util-linux `prlimit`;
/// SIGXFSZ ignored, so that a write past the limit fails with EFBIG instead of killing).
fn cli_with_file_limit(fx: &Fx, limit: u64, args: &[&str]) -> Output {
    let home = fx.dir.path().join("home");
    Command::new("sh")
        .args([
            "-c",
            r#"trap '' XFSZ; exec prlimit --fsize="$0" -- "$@""#,
            &limit.to_string(),
            env!("CARGO_BIN_EXE_cofre"),
            "--home",
            Path::new(&home).to_str().unwrap(),
            "--region",
            "us-east-1",
        ])
        .args(args)
        .env_remove("COFRE_NOW")
        .env_remove("COFRE_PRINCIPAL")
        .output()
        .unwrap()
}

#[test]
fn a_record_the_disk_takes_only_part_of_is_cut_back() {
    let fx = Fx::new();
    encrypt_from_threads(&fx, 2, 2);
    let before = fx.trail_bytes();
    let mark_before = std::fs::read(fx.audit().join("mark.json")).unwrap();
    // Room for 100 more bytes of the trail: the record's line is written in part, and fails.
    let key = fx.key.to_string();
    let out = cli_with_file_limit(&fx, before.len() as u64 + 100, &["key", "describe", &key]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("trail.jsonl") && err.contains("too large"),
        "{err}"
    );
    assert!(fx.trail_bytes() == before, "the part written was left");
    assert!(std::fs::read(fx.audit().join("mark.json")).unwrap() == mark_before);
    // This process had checked the end before; it sees the other's write and cut, and goes
    // on.
    fx.encrypt("after").unwrap();
    let recorded = fx.assert_clean();
    assert_eq!(recorded.last().map(String::as_str), Some("after"));
    assert_eq!(recorded.len(), 1 + 4 + 1);
}

#[test]
fn a_mark_further_behind_than_one_batch_is_refused() {
    // A crash between a batch's lines and its mark leaves the mark at most one batch (256
    // records) behind; further is a mark put back.
    let fx = Fx::on_tmpfs();
    let mark = fx.audit().join("mark.json");
    let mark1 = std::fs::read(&mark).unwrap();
    fx.encrypt("r2").unwrap();
    let mark2 = std::fs::read(&mark).unwrap();
    for i in 3..=258 {
        fx.encrypt(&format!("r{i}")).unwrap();
    }
    let trail = fx.kms("check").audit_trail();
    std::fs::write(&mark, &mark2).unwrap();
    let report = trail.check().unwrap();
    assert_eq!(report.problems, [], "{report:?}");
    assert_eq!((report.marked_through, report.records), (2, 258));

    std::fs::write(&mark, &mark1).unwrap();
    let report = trail.check().unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(
        report.problems[0]
            .message
            .contains("it ends at record 258, past its high-water mark at record 1"),
        "{report:?}"
    );
    let before = fx.trail_bytes();
    let err = fx.encrypt("refused").unwrap_err().to_string();
    assert!(err.contains("past its high-water mark"), "{err}");
    assert!(fx.trail_bytes() == before);
}

#[test]
fn the_mark_is_one_sector_rewritten_in_place_and_an_older_mark_is_taken_over() {
    use std::os::unix::fs::MetadataExt;
    let fx = Fx::new();
    fx.encrypt("a").unwrap();
    let mark = fx.audit().join("mark.json");
    let first = std::fs::metadata(&mark).unwrap();
    assert_eq!(first.len(), 512);
    fx.encrypt("b").unwrap();
    let second = std::fs::metadata(&mark).unwrap();
    assert_eq!(
        second.ino(),
        first.ino(),
        "the mark was not rewritten in place"
    );
    // A mark as an older cofre wrote it (its JSON alone) is read, and replaced by a sector.
    let text = std::fs::read_to_string(&mark).unwrap();
    assert!(
        text.starts_with("{\"awsRegion\"") && text.ends_with(" \n"),
        "{text}"
    );
    std::fs::write(&mark, text.trim_end()).unwrap();
    let report = fx.kms("check").audit_trail().check().unwrap();
    assert_eq!(report.problems, [], "{report:?}");
    fx.encrypt("c").unwrap();
    assert_eq!(std::fs::metadata(&mark).unwrap().len(), 512);
    fx.assert_clean();
}
