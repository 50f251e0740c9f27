//! Hardening (issue 13), end to end: a damaged store or home is reported as damage and never
//! taken for an empty one, every file of the home is private, one damaged key record stops only
//! the requests that need it, and interrupted writers leave nothing behind for long.
//!
//! Every test runs the built binary against its own temporary home, with `--quiet`.

mod common;

use assert_cmd::Command;
use common::ENV;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use tempfile::TempDir;

// ── Helpers ───────────────────────────────────────────────────────────────────────────────

const ACCOUNT: &str = "111122223333";
const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";
/// The EBS block size.
const BLOCK: usize = 512 * 1024;

const INTEGRITY: i32 = 4;
const USAGE: i32 = 2;

/// `n` pseudo-random bytes from `seed` (xorshift): no two blocks alike, none all zeros.
fn random(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Every file under `dir` (not folders), sorted.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p);
            }
        }
    }
    out
}

/// A temporary folder holding the home (`home`) and the test's files. Commands run inside it.
struct Fx {
    dir: TempDir,
}

impl Fx {
    /// A folder whose home has account [`ACCOUNT`].
    fn new() -> Fx {
        let fx = Fx {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = fx.run(EAST, &["init", "--account", ACCOUNT]);
        assert!(out.status.success(), "{out:?}");
        fx
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// A region's folder kept under the home.
    fn region(&self, region: &str) -> PathBuf {
        self.home().join("regions").join(region)
    }

    /// The ebs folder of a region kept under the home.
    fn ebs(&self, region: &str) -> PathBuf {
        self.region(region).join("ebs")
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        fs::write(self.path(name), bytes).unwrap();
    }

    /// `cofre --home HOME --region REGION --quiet ARGS…`, run in the folder.
    fn cmd(&self, region: &str, args: &[&str]) -> Command {
        Command::from_std(self.std_cmd(region, args))
    }

    /// [`Fx::cmd`] as a std command, to spawn.
    fn std_cmd(&self, region: &str, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("cofre"));
        for v in ENV {
            c.env_remove(v);
        }
        c.current_dir(self.dir.path())
            .arg("--home")
            .arg(self.home())
            .args(["--region", region, "--quiet"])
            .args(args);
        c
    }

    fn run(&self, region: &str, args: &[&str]) -> Output {
        self.cmd(region, args).output().unwrap()
    }

    /// Stdout of a successful run with a silent stderr, without its final newline.
    fn ok_in(&self, region: &str, args: &[&str]) -> String {
        let out = self.run(region, args);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "cofre --region {region} {args:?}: {:?}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        let s = String::from_utf8(out.stdout).unwrap();
        s.strip_suffix('\n').unwrap_or(&s).to_owned()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_in(EAST, args)
    }

    fn json_in(&self, region: &str, args: &[&str]) -> Value {
        let args = [args, &["--output", "json"]].concat();
        serde_json::from_str(&self.ok_in(region, &args)).unwrap()
    }

    /// Checks `out` exited with `code` and one `cofre: ` error line naming every needle.
    fn check_fail(out: &Output, code: i32, needles: &[&str], what: &str) {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{what}: {err}");
        assert!(
            err.starts_with("cofre: ") && err.lines().count() == 1,
            "{what}: stderr is not one `cofre: ` line: {err:?}"
        );
        for n in needles {
            assert!(err.contains(n), "{what}: {err:?} does not mention {n:?}");
        }
    }

    /// Expects exit `code`, nothing on stdout and one error line naming every needle.
    fn fail_in(&self, region: &str, args: &[&str], code: i32, needles: &[&str]) {
        let out = self.run(region, args);
        Self::check_fail(&out, code, needles, &format!("{region} {args:?}"));
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
    }

    fn fail(&self, args: &[&str], code: i32, needles: &[&str]) {
        self.fail_in(EAST, args, code, needles)
    }

    /// Writes `bytes` to `name` and makes an encrypted volume of it; returns its id.
    fn volume_from(&self, region: &str, name: &str, bytes: &[u8]) -> String {
        self.write(name, bytes);
        let v = self.json_in(
            region,
            &["volume", "create", "--from-image", name, "--encrypted"],
        );
        v["VolumeId"].as_str().unwrap().to_owned()
    }
}

// ── Defect 1: a missing EBS head beside blocks is damage ────────────────────────────────────

#[test]
fn missing_head_beside_blocks_is_damage_and_nothing_is_collected() {
    let fx = Fx::new();
    let vol = fx.volume_from(EAST, "disk.img", &random(1, 3 * BLOCK));
    let snap = fx.ok(&["snapshot", "create", &vol]);
    assert!(snap.starts_with("snap-"), "{snap}");
    let ebs = fx.ebs(EAST);
    let before = files_under(&ebs);
    fs::remove_file(ebs.join("head")).unwrap();
    let stored: BTreeSet<PathBuf> = before
        .into_iter()
        .filter(|p| !p.ends_with("head"))
        .collect();

    let head = ebs.join("head").display().to_string();
    let needles = [head.as_str(), "is missing"];
    for args in [
        &["gc"][..],
        &["volume", "delete", &vol],
        &["snapshot", "delete", &snap],
        &["volume", "list"],
        &["volume", "create", "--size", "1GiB"],
    ] {
        fx.fail(args, INTEGRITY, &needles);
        assert_eq!(files_under(&ebs), stored, "{args:?} changed the store");
    }
    // verify reports it as a problem of the store, not as orphans.
    let out = fx.run(EAST, &["verify"]);
    assert_eq!(out.status.code(), Some(INTEGRITY), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("is missing"),
        "{out:?}"
    );
    assert_eq!(files_under(&ebs), stored, "verify changed the store");
}

#[test]
fn a_fresh_region_is_an_empty_store() {
    let fx = Fx::new();
    assert_eq!(fx.ok_in(WEST, &["volume", "list"]), "");
    fx.ok_in(WEST, &["gc"]);
    fx.ok_in(WEST, &["verify"]);
    let vol = fx.volume_from(WEST, "disk.img", &random(2, BLOCK + 7));
    assert!(fx.ebs(WEST).join("head").is_file());
    fx.ok_in(WEST, &["volume", "delete", &vol]);
    fx.ok_in(WEST, &["gc"]);
}

// ── Defect 4: a home that lost cofre.json or domain.key is refused, never made again ────────

#[test]
fn a_brand_new_home_is_still_made_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fx { dir };
    assert_eq!(fx.ok(&["key", "list"]), "");
    assert!(fx.home().join("cofre.json").is_file());
    assert!(fx.home().join("domain.key").is_file());
    fx.ok(&["key", "create"]);
}

#[test]
fn a_missing_home_file_beside_data_is_refused_and_not_made_again() {
    // Keys in the home's own region folder.
    let fx = Fx::new();
    let key = fx.ok(&["key", "create"]);
    let config = fx.home().join("cofre.json");
    let saved = fs::read(&config).unwrap();
    fs::remove_file(&config).unwrap();
    let name = config.display().to_string();
    for args in [
        &["key", "list"][..],
        &["key", "describe", &key],
        &["key", "create"],
    ] {
        fx.fail(
            args,
            INTEGRITY,
            &[&name, "is missing", "account id", "cannot be opened"],
        );
        assert!(!config.exists(), "{args:?} made cofre.json again");
    }
    fs::write(&config, &saved).unwrap();

    let domain = fx.home().join("domain.key");
    let saved = fs::read(&domain).unwrap();
    fs::remove_file(&domain).unwrap();
    let name = domain.display().to_string();
    fx.fail(
        &["key", "describe", &key],
        INTEGRITY,
        &[&name, "is missing", "cannot be opened"],
    );
    assert!(!domain.exists(), "a domain key was made again");
    fs::write(&domain, &saved).unwrap();
    fx.ok(&["key", "describe", &key]);

    // Volumes only, in a region folder set elsewhere with region set-path.
    let fx = Fx::new();
    let away = fx.path("away");
    fx.ok(&["region", "set-path", WEST, away.to_str().unwrap()]);
    fx.write("disk.img", &random(4, BLOCK));
    fx.ok_in(WEST, &["volume", "create", "--from-image", "disk.img"]);
    let domain = fx.home().join("domain.key");
    fs::remove_file(&domain).unwrap();
    let name = domain.display().to_string();
    fx.fail_in(WEST, &["volume", "list"], INTEGRITY, &[&name, "is missing"]);
    assert!(!domain.exists(), "a domain key was made again");

    // Volumes only, under the home: losing cofre.json is refused too.
    let fx = Fx::new();
    fx.write("disk.img", &random(5, BLOCK));
    fx.ok(&["volume", "create", "--from-image", "disk.img"]);
    let config = fx.home().join("cofre.json");
    fs::remove_file(&config).unwrap();
    let name = config.display().to_string();
    fx.fail(&["volume", "list"], INTEGRITY, &[&name, "is missing"]);
    assert!(!config.exists(), "cofre.json was made again");
}

// ── Defect 10: every file of the home is 0600, every folder 0700 ────────────────────────────

/// Every path under `dir` (itself included) whose mode is not 0600 for a file or 0700 for a
/// folder, with its mode.
fn not_private(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut bad = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let mode = m.permissions().mode() & 0o7777;
        let want = if m.is_dir() { 0o700 } else { 0o600 };
        if mode != want {
            bad.push(format!("{} {mode:o}", p.display()));
        }
        if m.is_dir() {
            todo.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    bad.sort();
    bad
}

#[test]
fn every_file_of_the_home_is_private() {
    let fx = Fx::new();
    // A region kept on another filesystem when there is one, so copies there write blocks.
    let shm = tempfile::Builder::new()
        .prefix("cofre-hardening")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let away = shm.path().join("ap");
    const AP: &str = "ap-southeast-2";
    fx.ok(&["region", "set-path", AP, away.to_str().unwrap()]);

    let key = fx.ok(&["key", "create", "--alias", "alias/disks"]);
    fx.ok(&["key", "rotate", &key]);
    fx.ok_in(WEST, &["key", "create", "--alias", "alias/dr"]);
    fx.ok_in(AP, &["key", "create", "--alias", "alias/ap"]);
    fx.write("plain", &random(6, 10_000));
    fx.ok(&["encrypt", "-k", "alias/disks", "-o", "plain.cofre", "plain"]);
    fx.ok(&["decrypt", "-o", "plain.out", "plain.cofre"]);
    let doomed = fx.ok(&["key", "create"]);
    fx.ok(&["key", "schedule-deletion", &doomed, "--days", "7"]);

    // Volumes: one plaintext (its blocks are the data itself), one encrypted; snapshots of
    // both, copied to the other regions; a write and a delete that collect.
    fx.write("plain.img", &random(7, 2 * BLOCK + 5));
    let v = fx.json_in(EAST, &["volume", "create", "--from-image", "plain.img"]);
    let plain_vol = v["VolumeId"].as_str().unwrap().to_owned();
    let enc_vol = fx.volume_from(EAST, "enc.img", &random(8, 2 * BLOCK));
    for vol in [&plain_vol, &enc_vol] {
        let snap = fx.ok(&["snapshot", "create", vol]);
        for (region, key) in [(WEST, "alias/dr"), (AP, "alias/ap")] {
            fx.ok_in(
                region,
                &[
                    "snapshot",
                    "copy",
                    &snap,
                    "--source-region",
                    EAST,
                    "--encrypted",
                    "--kms-key",
                    key,
                ],
            );
        }
    }
    fx.write("patch", &random(9, 4096));
    fx.ok(&["volume", "write", &plain_vol, "--offset", "0", "patch"]);
    fx.ok(&["volume", "delete", &enc_vol]);
    fx.ok(&["gc"]);
    fx.ok(&["verify"]);
    fx.ok(&["audit", "verify"]);
    // The deletion date passes: the key is destroyed and leaves a tombstone.
    let out = fx
        .cmd(EAST, &["key", "list"])
        .env("COFRE_NOW", "2099-01-01T00:00:00Z")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        files_under(&fx.region(EAST).join("deleted")).len() == 1,
        "no tombstone"
    );

    let mut bad = not_private(&fx.home());
    bad.extend(not_private(&away));
    assert!(bad.is_empty(), "not private:\n{}", bad.join("\n"));
    // The walk saw every kind of file.
    let all: Vec<String> = [files_under(&fx.home()), files_under(&away)]
        .into_iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect();
    for kind in [
        "/trail.jsonl",
        "/.lock",
        "/ebs/blocks/",
        "/ebs/maps/",
        "/ebs/head",
        "/digests/",
        "/deleted/",
        "/keys/",
        "/aliases.json",
        "/domain.key",
    ] {
        assert!(
            all.iter().any(|p| p.contains(kind)),
            "no {kind} file: {all:?}"
        );
    }
}

// ── Defect 11: a damaged key record stops only the requests that need it ────────────────────

#[test]
fn a_damaged_key_record_stops_only_the_requests_that_need_it() {
    let fx = Fx::new();
    let good = fx.ok(&["key", "create", "--alias", "alias/good"]);
    let bad = fx.ok(&["key", "create", "--alias", "alias/bad"]);
    fx.write("plain", b"the data");
    fx.ok(&["encrypt", "-k", "alias/good", "-o", "plain.cofre", "plain"]);
    let keys = fx.region(EAST).join("keys");
    let junk = keys.join("junk.json");
    fs::write(&junk, b"{not a key").unwrap();

    // A stray file alone: every request goes on; the listing reports it.
    fx.ok(&["key", "describe", &good]);
    fx.ok(&["decrypt", "-o", "plain.out", "-f", "plain.cofre"]);
    let out = fx.run(EAST, &["key", "list"]);
    Fx::check_fail(
        &out,
        INTEGRITY,
        &[&junk.display().to_string(), "damaged"],
        "key list",
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains(&good) && listed.contains(&bad), "{listed}");

    // A damaged record: requests for that key fail as damage, naming its file; others go on.
    let record = keys.join(format!("{bad}.json"));
    let bytes = fs::read(&record).unwrap();
    fs::write(&record, &bytes[..bytes.len() / 2]).unwrap();
    let name = record.display().to_string();
    fx.fail(&["key", "describe", &bad], INTEGRITY, &[&name, "damaged"]);
    fx.fail(
        &["encrypt", "-k", "alias/bad", "-o", "other.cofre", "plain"],
        INTEGRITY,
        &[&name, "damaged"],
    );
    fx.ok(&["key", "describe", &good]);
    fx.ok(&["key", "describe", "alias/good"]);
    fx.ok(&["encrypt", "-k", "alias/good", "-o", "again.cofre", "plain"]);
    fx.ok(&["decrypt", "-o", "plain.out", "-f", "plain.cofre"]);
    let other = fx.ok(&["key", "create"]);
    fx.ok(&["key", "rotate", &other]);
    fx.ok(&["volume", "create", "--size", "1", "--encrypted"]);
    fx.ok_in(WEST, &["key", "list"]);
    let out = fx.run(EAST, &["key", "list"]);
    Fx::check_fail(&out, INTEGRITY, &[&name, "damaged"], "key list");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(&good) && listed.contains(&other),
        "{listed}"
    );
    assert!(!listed.contains(&bad), "{listed}");
    // The damaged record was left as it was.
    assert_eq!(fs::read(&record).unwrap(), &bytes[..bytes.len() / 2]);
}

// ── Defect 8: temporaries a kill left are removed by the next run in that folder ────────────

/// The `.cofre-tmp-*` files directly in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".cofre-tmp-"))
        .collect();
    out.sort();
    out
}

#[test]
fn temporaries_of_killed_writers_are_removed_and_live_ones_kept() {
    use std::io::Write;
    use std::process::Stdio;
    let fx = Fx::new();
    fx.ok(&["key", "create", "--alias", "alias/k"]);
    let out_dir = fx.path("out");
    fs::create_dir(&out_dir).unwrap();

    // A writer killed mid-output (stdin still open, so it waits inside the write).
    let mut child = fx
        .std_cmd(
            EAST,
            &["encrypt", "-k", "alias/k", "-o", "out/a.cofre", "-"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(&random(10, 100_000))
        .unwrap();
    let start = std::time::Instant::now();
    while temporaries(&out_dir).is_empty() {
        assert!(start.elapsed().as_secs() < 20, "no temporary file appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    let left = temporaries(&out_dir);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].starts_with(&format!(".cofre-tmp-{pid}-")),
        "{left:?}"
    );

    // Temporaries of a live writer (this test process) and of an older version (no pid), and
    // stale ones of the dead writer in the region's folders.
    let live = format!(".cofre-tmp-{}-live", std::process::id());
    let dead = format!(".cofre-tmp-{pid}-x");
    fs::write(out_dir.join(&live), b"live").unwrap();
    fs::write(out_dir.join(".cofre-tmp-oldstyle"), b"old").unwrap();
    let region = fx.region(EAST);
    for d in [
        region.join("keys"),
        region.clone(),
        region.join("audit"),
        fx.home(),
    ] {
        fs::write(d.join(&dead), b"dead").unwrap();
    }

    // The next run in the folder removes the dead writer's, and only those.
    fx.write("plain", b"data");
    fx.ok(&["encrypt", "-k", "alias/k", "-o", "out/b.cofre", "plain"]);
    assert_eq!(
        temporaries(&out_dir),
        vec![live.clone(), ".cofre-tmp-oldstyle".to_owned()]
    );
    fx.ok(&["key", "create"]);
    assert!(temporaries(&region.join("keys")).is_empty());
    // gc removes them everywhere else in the home and region.
    let gc = fx.json_in(EAST, &["gc"]);
    assert!(gc["TemporaryFilesRemoved"].as_u64().unwrap() >= 2, "{gc}");
    for d in [region.clone(), region.join("audit"), fx.home()] {
        assert!(
            temporaries(&d).is_empty(),
            "{}: {:?}",
            d.display(),
            temporaries(&d)
        );
    }
}

// ── The trail fails closed (defect 3) ────────────────────────────────────────────────────

#[test]
fn a_request_whose_record_cannot_be_written_fails_and_changes_nothing() {
    let fx = Fx::new();
    let key = fx.ok(&["key", "create"]);
    fx.write("plain", b"not for the trail");
    fx.ok(&["encrypt", "-k", &key, "-o", "a.cofre", "plain"]);
    let audit = fx.region(EAST).join("audit");
    let trail = audit.join("trail.jsonl");
    let keys = || files_under(&fx.region(EAST).join("keys"));
    let keys_before = keys();
    let good = fs::read(&trail).unwrap();

    // A whole line that is not a record: no request goes on, none is recorded.
    let mut bad = good.clone();
    bad.extend_from_slice(b"garbage\n");
    fs::write(&trail, &bad).unwrap();
    let encrypt = ["encrypt", "-k", &key, "-o", "b.cofre", "plain"];
    fx.fail_in(EAST, &encrypt, INTEGRITY, &["trail.jsonl", "last record"]);
    assert!(!fx.path("b.cofre").exists());
    assert!(temporaries(fx.dir.path()).is_empty());
    let decrypt = ["decrypt", "-o", "a.out", "a.cofre"];
    fx.fail_in(EAST, &decrypt, INTEGRITY, &["trail.jsonl"]);
    assert!(!fx.path("a.out").exists());
    fx.fail_in(EAST, &["key", "create"], INTEGRITY, &["trail.jsonl"]);
    assert_eq!(keys(), keys_before, "a key was made");
    assert_eq!(fs::read(&trail).unwrap(), bad);

    // A last line cut short (no newline: a kill mid-append) is no garbage: it is dropped.
    let mut cut = good.clone();
    cut.extend_from_slice(b"{\"eventVersion\":\"1.0");
    fs::write(&trail, &cut).unwrap();
    fx.ok(&encrypt);
    fx.ok(&["audit", "verify"]);
    fs::remove_file(fx.path("b.cofre")).unwrap();
    let keys_before = keys();

    // A full disk: the trail opens and its end reads as empty (no mark), but no line fits.
    fs::remove_file(audit.join("mark.json")).unwrap();
    fs::remove_file(&trail).unwrap();
    std::os::unix::fs::symlink("/dev/full", &trail).unwrap();
    fx.fail_in(EAST, &encrypt, 1, &["trail.jsonl"]);
    assert!(!fx.path("b.cofre").exists());
    fx.fail_in(EAST, &decrypt, 1, &["trail.jsonl"]);
    assert!(!fx.path("a.out").exists());
    // CreateKey took effect before its record failed: the new key is removed again.
    fx.fail_in(
        EAST,
        &["key", "create", "--alias", "alias/lost"],
        1,
        &["trail.jsonl"],
    );
    assert_eq!(keys(), keys_before, "the new key was left");
    let aliases = fs::read_to_string(fx.region(EAST).join("aliases.json")).unwrap_or_default();
    assert!(!aliases.contains("alias/lost"), "{aliases}");
}

// ── An input truncated while it is read (defect 9) ───────────────────────────────────────

#[test]
fn an_input_truncated_while_encrypting_fails_with_one_line_and_leaves_nothing() {
    let fx = Fx::new();
    let key = fx.ok(&["key", "create"]);
    // Sparse: 2 GiB of zeros that take no disk, and seconds to encrypt.
    let big = fs::File::create(fx.path("big")).unwrap();
    big.set_len(2 << 30).unwrap();
    let child = fx
        .std_cmd(EAST, &["encrypt", "-k", &key, "-o", "big.cofre", "big"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    big.set_len(1 << 20).unwrap();
    let out = child.wait_with_output().unwrap();
    Fx::check_fail(
        &out,
        1,
        &["truncated", "nothing was written"],
        "encrypt big",
    );
    assert!(!fx.path("big.cofre").exists());
    assert!(temporaries(fx.dir.path()).is_empty());
}

// ── Outputs and inputs of the KMS commands (defects 5 and 6) ──────────────────────────────

#[test]
fn two_outputs_at_one_path_are_refused_before_the_request() {
    let fx = Fx::new();
    let key = fx.ok(&["key", "create"]);
    let trail_before = fs::read(fx.region(EAST).join("audit/trail.jsonl")).unwrap();
    fx.write("g", b"old");
    fs::create_dir(fx.path("sub")).unwrap();
    for args in [
        // One name twice, with and without --force.
        vec!["--plaintext-out", "g", "--ciphertext-out", "g", "-f"],
        vec!["--plaintext-out", "new", "--ciphertext-out", "new"],
        // One file by two names.
        vec!["--plaintext-out", "g", "--ciphertext-out", "sub/../g", "-f"],
    ] {
        let all = [&["kms", "generate-data-key", &key][..], &args].concat();
        fx.fail(&all, USAGE, &["two outputs"]);
        assert_eq!(fs::read(fx.path("g")).unwrap(), b"old", "{args:?}");
        assert!(!fx.path("new").exists(), "{args:?}");
    }
    // Refused before the request: no data key was made, nothing was recorded.
    let trail_after = fs::read(fx.region(EAST).join("audit/trail.jsonl")).unwrap();
    assert_eq!(trail_before, trail_after);
    // Two paths: both written.
    fx.ok(&[
        "kms",
        "generate-data-key",
        &key,
        "--plaintext-out",
        "p",
        "--ciphertext-out",
        "c",
    ]);
    assert_eq!(fs::read(fx.path("p")).unwrap().len(), 32);
    assert!(!fs::read(fx.path("c")).unwrap().is_empty());
}

/// Runs `args` and waits at most `secs` seconds: an input read whole before its limit is
/// checked (`/dev/zero`) never finishes.
fn finishes_within(fx: &Fx, args: &[&str], secs: u64) -> Output {
    let mut child = fx
        .std_cmd(EAST, args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > std::time::Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} still running after {secs} s: it reads its input whole");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn endless_inputs_are_read_only_up_to_their_limit() {
    let fx = Fx::new();
    let key = fx.ok(&["key", "create"]);
    for (args, needle) in [
        (
            vec!["kms", "encrypt", &key, "--plaintext-file", "/dev/zero"],
            "4096",
        ),
        (
            vec!["kms", "decrypt", "--ciphertext-file", "/dev/zero"],
            "6144",
        ),
        (vec!["key", "policy", "put", &key, "/dev/zero"], "32 KiB"),
    ] {
        let out = finishes_within(&fx, &args, 20);
        Fx::check_fail(&out, USAGE, &[needle], &format!("{args:?}"));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

// ── Bytes from files never reach the terminal raw (defect 7) ─────────────────────────────

#[test]
fn control_characters_from_a_file_are_escaped_when_printed() {
    let fx = Fx::new();
    let key = fx.ok(&["key", "create"]);
    fx.write("plain", b"hello");
    // An encryption context holding ESC and BEL, as a hostile file's header could.
    let nasty = "k=\u{1b}]0;owned\u{7}\u{1b}[2J";
    fx.ok(&["encrypt", "-k", &key, "-c", nasty, "-o", "f.cofre", "plain"]);
    let out = fx.run(EAST, &["inspect", "f.cofre"]);
    assert!(out.status.success());
    assert!(
        !out.stdout.contains(&0x1b) && !out.stdout.contains(&0x07),
        "inspect printed raw control characters: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\\u{1b}"));
    // Errors that quote what they were given: a context key, an alias.
    let out = fx.run(
        EAST,
        &["decrypt", "-c", "z\u{1b}[31m=x", "-o", "out", "f.cofre"],
    );
    assert!(!out.status.success());
    assert!(
        !out.stderr.contains(&0x1b),
        "an error printed raw control characters: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("z\\u{1b}[31m"));
    let out = fx.run(EAST, &["encrypt", "-k", "alias/\u{7}x", "-o", "g", "plain"]);
    assert!(!out.status.success());
    assert!(
        !out.stderr.contains(&0x1b) && !out.stderr.contains(&0x07),
        "an error printed raw control characters: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}
