//! EBS through the CLI, end to end: volumes from images, snapshots and copies between regions
//! round-trip byte for byte; unaligned writes; incremental snapshots and copies move only
//! changed blocks; deletion frees exactly the blocks nothing uses; relocated regions; every
//! kind of tampering with the store is caught on read and by `verify`; copies refused without
//! a usable key; encryption by default; `gc` after a crash.
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
/// Stored bytes of an encrypted block: salt, ciphertext, tag.
const SEALED: usize = 16 + BLOCK + 16;
/// Ids no home has.
const NO_VOL: &str = "vol-0123456789abcdef0";
const NO_SNAP: &str = "snap-0123456789abcdef0";

const USAGE: i32 = 2;
const ACCESS: i32 = 3;
const INTEGRITY: i32 = 4;

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

/// A disk image of 6 blocks and 12 345 bytes (not a multiple of the block size) with zero
/// runs: block 1 all zeros, a run across the 2|3 boundary, one inside block 4, and the last
/// (partial) block all zeros. Five blocks hold data: 0, 2, 3, 4, 5.
fn image(seed: u64) -> Vec<u8> {
    let mut v = random(seed, 6 * BLOCK + 12_345);
    v[BLOCK..2 * BLOCK].fill(0);
    v[3 * BLOCK - 1000..3 * BLOCK + 777].fill(0);
    v[4 * BLOCK + 100..4 * BLOCK + 5000].fill(0);
    v[6 * BLOCK..].fill(0);
    v
}

/// Blocks of `data` that are not all zeros (what a volume holding it stores).
fn nonzero_blocks(data: &[u8]) -> usize {
    data.chunks(BLOCK)
        .filter(|c| c.iter().any(|&b| b != 0))
        .count()
}

/// Block indexes where `a` and `b` differ.
fn differing_blocks(a: &[u8], b: &[u8]) -> Vec<usize> {
    assert_eq!(a.len(), b.len());
    a.chunks(BLOCK)
        .zip(b.chunks(BLOCK))
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, _)| i)
        .collect()
}

fn key_arn(region: &str, id: &str) -> String {
    format!("arn:aws:kms:{region}:{ACCOUNT}:key/{id}")
}

fn is_hex64(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Files named by a hash under `dir/<2 hex>/` (blocks or maps of an ebs folder).
fn hashed_files(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let Ok(subs) = fs::read_dir(dir) else {
        return out;
    };
    for sub in subs {
        let sub = sub.unwrap().path();
        for f in fs::read_dir(&sub).unwrap() {
            let f = f.unwrap();
            if is_hex64(f.file_name().to_str().unwrap()) {
                out.insert(f.path());
            }
        }
    }
    out
}

/// Data block files of an ebs folder.
fn blocks_in(ebs: &Path) -> BTreeSet<PathBuf> {
    hashed_files(&ebs.join("blocks"))
}

/// Block map files of an ebs folder.
fn maps_in(ebs: &Path) -> BTreeSet<PathBuf> {
    hashed_files(&ebs.join("maps"))
}

/// The path of the object named `hash` in `ebs/<kind>`.
fn object_path(ebs: &Path, kind: &str, hash: &str) -> PathBuf {
    ebs.join(kind).join(&hash[..2]).join(hash)
}

/// The entries of a block map file: (block index, block hash hex).
fn map_entries(path: &Path) -> Vec<(u64, String)> {
    let raw = fs::read(path).unwrap();
    assert_eq!(&raw[..8], b"COFREMAP");
    raw[25..]
        .chunks_exact(40)
        .map(|e| {
            (
                u64::from_be_bytes(e[..8].try_into().unwrap()),
                hex::encode(&e[8..]),
            )
        })
        .collect()
}

/// The JSON of an ebs folder's head (after its MAC line).
fn head_json(ebs: &Path) -> Value {
    let raw = fs::read(ebs.join("head")).unwrap();
    assert!(raw.starts_with(b"cofre-ebs-head v1 "), "head line");
    let nl = raw.iter().position(|&b| b == b'\n').unwrap();
    serde_json::from_slice(&raw[nl + 1..]).unwrap()
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

    /// The ebs folder of a region kept under the home.
    fn ebs(&self, region: &str) -> PathBuf {
        self.home().join("regions").join(region).join("ebs")
    }

    fn blocks(&self, region: &str) -> BTreeSet<PathBuf> {
        blocks_in(&self.ebs(region))
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        fs::write(self.path(name), bytes).unwrap();
    }

    fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.path(name)).unwrap()
    }

    /// A volume's or snapshot's every field, cofre's own too (exact bytes, stored blocks): the
    /// text of `describe`, which `--output json` (EC2's `{"Volumes": [...]}` shape) leaves
    /// out. Numbers and booleans are parsed.
    fn describe_in(&self, region: &str, id: &str) -> Value {
        let kind = if id.starts_with("vol-") {
            "volume"
        } else {
            "snapshot"
        };
        let text = self.ok_in(region, &[kind, "describe", id]);
        let mut m = serde_json::Map::new();
        for line in text.lines() {
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            let v = v.trim();
            let value = if let Ok(n) = v.parse::<u64>() {
                Value::from(n)
            } else if let Ok(b) = v.parse::<bool>() {
                Value::from(b)
            } else {
                Value::from(v)
            };
            m.insert(k.to_owned(), value);
        }
        // The JSON says the same, in EC2's shape.
        let json = self.json_in(region, &[kind, "describe", id]);
        let list = if kind == "volume" {
            "Volumes"
        } else {
            "Snapshots"
        };
        for (k, v) in json[list][0].as_object().unwrap() {
            let shown = m.get(k).map(|t| match t {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            let said = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(shown, Some(said), "{k} of {id}: text {text:?}, json {json}");
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }

    fn describe(&self, id: &str) -> Value {
        self.describe_in(EAST, id)
    }

    /// `snapshot copy ARGS…` in `region`: EC2's answer (`SnapshotId`), how the blocks arrived
    /// (`Blocks`, `Present`, `Linked`, `Written`, `Resealed`, from cofre's summary on stderr),
    /// and the new snapshot ([`Fx::describe_in`]) as `Snapshot`.
    fn copy_in(&self, region: &str, args: &[&str]) -> Value {
        self.copy_with(region, args, &[])
    }

    /// [`Fx::copy_in`] with environment variables set.
    fn copy_with(&self, region: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
        let args = [args, &["--output", "json"]].concat();
        let mut c = self.cmd_loud(region, &args);
        c.envs(env.iter().copied());
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = answer["SnapshotId"].as_str().unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        // cofre: N blocks: P already present, L hard-linked, W written[ (sealed again …)]
        let nums: Vec<u64> = err
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .map(|t| t.parse().unwrap())
            .collect();
        assert_eq!(nums.len(), 4, "{err:?}");
        serde_json::json!({
            "SnapshotId": id,
            "Blocks": nums[0],
            "Present": nums[1],
            "Linked": nums[2],
            "Written": nums[3],
            "Resealed": err.contains("sealed again"),
            "Snapshot": self.describe_in(region, id),
        })
    }

    /// [`Fx::cmd`] without `--quiet`: summaries on stderr (no progress bar: not a terminal).
    fn cmd_loud(&self, region: &str, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("cofre").unwrap();
        for v in ENV {
            c.env_remove(v);
        }
        c.current_dir(self.dir.path())
            .arg("--home")
            .arg(self.home())
            .args(["--region", region])
            .args(args);
        c
    }

    /// `cofre --home HOME --region REGION --quiet ARGS…`, run in the folder.
    fn cmd(&self, region: &str, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("cofre").unwrap();
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

    /// Runs with `input` on stdin.
    fn run_stdin(&self, region: &str, args: &[&str], input: &[u8]) -> Output {
        self.cmd(region, args).write_stdin(input).output().unwrap()
    }

    /// Expects success and a silent stderr; returns stdout.
    fn check_ok(out: Output, region: &str, args: &[&str]) -> Vec<u8> {
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "cofre --region {region} {args:?}: {:?}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn bytes_in(&self, region: &str, args: &[&str]) -> Vec<u8> {
        Self::check_ok(self.run(region, args), region, args)
    }

    /// Stdout of a successful run, without its final newline.
    fn ok_in(&self, region: &str, args: &[&str]) -> String {
        let s = String::from_utf8(self.bytes_in(region, args)).unwrap();
        s.strip_suffix('\n').unwrap_or(&s).to_owned()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_in(EAST, args)
    }

    fn json_in(&self, region: &str, args: &[&str]) -> Value {
        let args = [args, &["--output", "json"]].concat();
        serde_json::from_slice(&self.bytes_in(region, &args)).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        self.json_in(EAST, args)
    }

    /// [`Fx::json_in`] with one worker thread (`RAYON_NUM_THREADS=1`).
    fn json_one_thread(&self, region: &str, args: &[&str]) -> Value {
        let args = [args, &["--output", "json"]].concat();
        let out = self
            .cmd(region, &args)
            .env("RAYON_NUM_THREADS", "1")
            .output()
            .unwrap();
        serde_json::from_slice(&Self::check_ok(out, region, &args)).unwrap()
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

    /// Writes `bytes` to `name` and makes a volume of it; returns the volume's JSON.
    fn volume_from(&self, region: &str, name: &str, bytes: &[u8], extra: &[&str]) -> Value {
        self.write(name, bytes);
        let args = [&["volume", "create", "--from-image", name], extra].concat();
        let v = self.json_in(region, &args);
        self.describe_in(region, v["VolumeId"].as_str().unwrap())
    }

    /// `snapshot create VOL`: checks stdout is the id alone.
    fn snapshot(&self, region: &str, vol: &str) -> String {
        let id = self.ok_in(region, &["snapshot", "create", vol]);
        assert!(id.starts_with("snap-") && id.len() == 22, "{id:?}");
        id
    }

    /// `volume create --snapshot SNAP ARGS…`: the new volume's JSON.
    fn restore(&self, region: &str, snap: &str, extra: &[&str]) -> Value {
        let v = self.json_in(
            region,
            &[&["volume", "create", "--snapshot", snap], extra].concat(),
        );
        assert_eq!(v["SnapshotId"], snap, "{v}");
        self.describe_in(region, v["VolumeId"].as_str().unwrap())
    }

    /// `volume read VOL --offset OFF --length LEN` to stdout.
    fn read_volume(&self, region: &str, vol: &str, off: usize, len: usize) -> Vec<u8> {
        let (off, len) = (off.to_string(), len.to_string());
        self.bytes_in(
            region,
            &["volume", "read", vol, "--offset", &off, "--length", &len],
        )
    }

    /// Checks volume `vol` holds exactly `want`: exported plain and sparse, read whole to
    /// stdout, and read in slices (crossing blocks, inside zero runs, the tail) to stdout and
    /// to a file.
    fn assert_holds(&self, region: &str, vol: &str, want: &[u8]) {
        let d = self.describe_in(region, vol);
        assert_eq!(d["SizeBytes"], want.len() as u64, "{d}");
        for sparse in [false, true] {
            let _ = fs::remove_file(self.path("export.img"));
            let mut args = vec!["volume", "export", vol, "-o", "export.img"];
            if sparse {
                args.push("--sparse");
            }
            assert!(self.bytes_in(region, &args).is_empty());
            let got = self.read("export.img");
            assert_eq!(got.len(), want.len(), "{vol} export (sparse: {sparse})");
            assert!(got == want, "{vol}: export (sparse: {sparse}) differs");
        }
        let whole = self.read_volume(region, vol, 0, want.len());
        assert!(whole == want, "{vol}: volume read of everything differs");
        let n = want.len();
        let slices = [
            (0, 1),
            (BLOCK - 3, 10),
            (BLOCK + 5, 100),
            (2 * BLOCK, BLOCK),
            (3 * BLOCK - 1010, 2000),
            (BLOCK / 2, 3 * BLOCK),
            (n - 7, 7),
            (n - 1, 1),
            (n, 0),
        ];
        for (off, len) in slices.into_iter().filter(|(o, l)| o + l <= n) {
            let got = self.read_volume(region, vol, off, len);
            assert!(
                got == want[off..off + len],
                "{vol}: read at {off} of {len} bytes differs"
            );
        }
        let (off, len) = (BLOCK - 1, 2.min(n - (BLOCK - 1)));
        let _ = fs::remove_file(self.path("slice.bin"));
        self.ok_in(
            region,
            &[
                "volume",
                "read",
                vol,
                "--offset",
                &off.to_string(),
                "--length",
                &len.to_string(),
                "-o",
                "slice.bin",
            ],
        );
        assert_eq!(self.read("slice.bin"), want[off..off + len]);
    }

    /// The ARN of the region's AWS managed key for EBS, checked to be AWS managed.
    fn aws_ebs_key(&self, region: &str) -> String {
        let m = &self.json_in(region, &["key", "describe", "alias/aws/ebs"])["KeyMetadata"];
        assert_eq!(m["KeyManager"], "AWS", "{m}");
        let arn = m["Arn"].as_str().unwrap().to_owned();
        assert!(arn.starts_with(&format!("arn:aws:kms:{region}:{ACCOUNT}:key/")));
        arn
    }

    /// The map file of volume `vol`, from the head.
    fn volume_map(&self, region: &str, vol: &str) -> PathBuf {
        let ebs = self.ebs(region);
        let head = head_json(&ebs);
        object_path(&ebs, "maps", head["Volumes"][vol]["Map"].as_str().unwrap())
    }

    /// The block file holding index `i` of volume `vol`.
    fn block_of(&self, region: &str, vol: &str, i: u64) -> PathBuf {
        let (_, h) = map_entries(&self.volume_map(region, vol))
            .into_iter()
            .find(|(j, _)| *j == i)
            .expect("a stored block");
        object_path(&self.ebs(region), "blocks", &h)
    }

    /// Checks no temporary output file is left in the folder.
    fn assert_no_tmp(&self) {
        for e in fs::read_dir(self.dir.path()).unwrap() {
            let name = e.unwrap().file_name();
            assert!(
                !name.to_string_lossy().starts_with(".tmp"),
                "{name:?} was left behind"
            );
        }
    }

    /// Checks that damage to the store of `region` is caught for volume `vol`: export fails
    /// with exit 4 and leaves no file, reading `range` fails with exit 4 and leaves no file,
    /// and `verify` exits 4 with `PROBLEM` lines.
    fn assert_caught(&self, region: &str, vol: &str, range: (usize, usize)) {
        let out = self.run(region, &["volume", "export", vol, "-o", "tampered.img"]);
        Self::check_fail(&out, INTEGRITY, &["tampered"], "export");
        assert!(!self.path("tampered.img").exists(), "export left a file");
        let (off, len) = (range.0.to_string(), range.1.to_string());
        let out = self.run(
            region,
            &[
                "volume", "read", vol, "--offset", &off, "--length", &len, "-o", "part.bin",
            ],
        );
        Self::check_fail(&out, INTEGRITY, &["tampered"], "read");
        assert!(!self.path("part.bin").exists(), "read left a file");
        self.assert_no_tmp();
        let out = self.run(region, &["verify"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(INTEGRITY), "verify: {stdout}");
        assert!(
            stdout.lines().any(|l| l.starts_with("PROBLEM")),
            "verify named no problem: {stdout}"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("problems in the EBS store"));
    }

    /// `verify --output json`, expected to pass.
    fn verify(&self, region: &str) -> Value {
        let v = self.json_in(region, &["verify"]);
        assert_eq!(v["Problems"], serde_json::json!([]), "{v}");
        v
    }
}

// ── 1. Round trips ────────────────────────────────────────────────────────────────────────

#[test]
fn image_round_trips_plain_and_encrypted() {
    let fx = Fx::new();
    let img = image(1);
    for encrypted in [false, true] {
        let before = fx.blocks(EAST);
        let extra: &[&str] = if encrypted { &["--encrypted"] } else { &[] };
        let v = fx.volume_from(EAST, "disk.img", &img, extra);
        let id = v["VolumeId"].as_str().unwrap();
        assert!(id.starts_with("vol-") && id.len() == 21, "{v}");
        assert_eq!(v["SizeBytes"], img.len() as u64, "{v}");
        assert_eq!(v["Size"], 1, "{v}");
        assert_eq!(v["State"], "available", "{v}");
        assert_eq!(v["VolumeType"], "gp3", "{v}");
        assert_eq!(v["SnapshotId"], "", "{v}");
        assert_eq!(v["Encrypted"], encrypted, "{v}");
        assert_eq!(v["StoredBlocks"], 5, "{v}");
        if encrypted {
            assert_eq!(v["KmsKeyId"], fx.aws_ebs_key(EAST), "{v}");
        } else {
            assert!(v.get("KmsKeyId").is_none(), "{v}");
        }
        let d = fx.describe(id);
        for f in [
            "VolumeId",
            "SizeBytes",
            "Encrypted",
            "KmsKeyId",
            "StoredBlocks",
        ] {
            assert_eq!(d.get(f), v.get(f), "{f}");
        }
        fx.assert_holds(EAST, id, &img);

        // Only the five data blocks were stored: sealed, or as they are.
        let new: Vec<_> = fx.blocks(EAST).difference(&before).cloned().collect();
        assert_eq!(new.len(), 5);
        let plain_blocks: BTreeSet<&[u8]> = img.chunks(BLOCK).collect();
        for f in &new {
            let stored = fs::read(f).unwrap();
            if encrypted {
                assert_eq!(stored.len(), SEALED);
                assert!(
                    !plain_blocks.contains(&stored[16..16 + BLOCK]),
                    "stored in clear"
                );
            } else {
                assert_eq!(stored.len(), BLOCK);
                assert!(plain_blocks.contains(stored.as_slice()));
            }
        }
    }
    // Reads past the end are refused; an export does not replace a file without -f.
    let v = fx.json(&["volume", "list"]);
    let id = v["Volumes"][0]["VolumeId"].as_str().unwrap().to_owned();
    fx.write("taken.img", b"keep me");
    fx.fail(
        &["volume", "export", &id, "-o", "taken.img"],
        USAGE,
        &["already exists"],
    );
    assert_eq!(fx.read("taken.img"), b"keep me");
    fx.ok(&["volume", "export", &id, "-o", "taken.img", "-f"]);
    assert!(fx.read("taken.img") == img);
    let end = img.len().to_string();
    fx.fail(
        &["volume", "read", &id, "--offset", &end, "--length", "1"],
        USAGE,
        &["past the end"],
    );
}

#[test]
fn volumes_restored_from_snapshots_round_trip() {
    let fx = Fx::new();
    let img = image(2);
    let other = fx.ok(&["key", "create"]);
    for encrypted in [false, true] {
        let extra: &[&str] = if encrypted { &["--encrypted"] } else { &[] };
        let v = fx.volume_from(EAST, "disk.img", &img, extra);
        let vol = v["VolumeId"].as_str().unwrap();
        let snap = fx.ok(&["snapshot", "create", vol, "--description", "before"]);
        let s = fx.describe(&snap);
        assert_eq!(s["SnapshotId"], snap.as_str(), "{s}");
        assert_eq!(s["VolumeId"], vol, "{s}");
        assert_eq!(s["State"], "completed", "{s}");
        assert_eq!(s["Progress"], "100%", "{s}");
        assert_eq!(s["VolumeSize"], 1, "{s}");
        assert_eq!(s["VolumeSizeBytes"], img.len() as u64, "{s}");
        assert_eq!(s["Encrypted"], encrypted, "{s}");
        assert_eq!(s.get("KmsKeyId"), v.get("KmsKeyId"), "{s}");
        assert_eq!(s["Description"], "before", "{s}");
        assert_eq!(s["StoredBlocks"], 5, "{s}");
        assert!(s.get("SourceRegion").is_none(), "{s}");
        match s.get("DataEncryptionKeyId") {
            Some(d) => assert!(encrypted && d.as_str().unwrap().starts_with("dek-"), "{s}"),
            None => assert!(!encrypted, "{s}"),
        }

        // Restored under the same key: same blocks, nothing stored.
        let before = fx.blocks(EAST);
        let r = fx.restore(EAST, &snap, &[]);
        assert_eq!(r["Encrypted"], encrypted, "{r}");
        assert_eq!(r.get("KmsKeyId"), v.get("KmsKeyId"), "{r}");
        assert_eq!(r["StoredBlocks"], 5, "{r}");
        assert_eq!(
            fx.blocks(EAST),
            before,
            "a restore under the same key copies nothing"
        );
        fx.assert_holds(EAST, r["VolumeId"].as_str().unwrap(), &img);

        // Grown: the image, then zeros.
        let r = fx.restore(EAST, &snap, &["--size", "8MiB"]);
        assert_eq!(r["SizeBytes"], 8 << 20, "{r}");
        let mut grown = img.clone();
        grown.resize(8 << 20, 0);
        fx.assert_holds(EAST, r["VolumeId"].as_str().unwrap(), &grown);

        // Grown from a volume whose last, partial block holds data: the padding reads as
        // zeros and takes writes.
        let odd = random(20, BLOCK + 777);
        let o = fx.volume_from(EAST, "odd.img", &odd, extra);
        let osnap = fx.snapshot(EAST, o["VolumeId"].as_str().unwrap());
        let r = fx.restore(EAST, &osnap, &["--size", "3MiB"]);
        let rid = r["VolumeId"].as_str().unwrap();
        let mut grown = odd.clone();
        grown.resize(3 << 20, 0);
        fx.assert_holds(EAST, rid, &grown);
        let patch = random(21, 1000);
        let off = BLOCK + 700;
        fx.write("patch", &patch);
        fx.ok(&[
            "volume",
            "write",
            rid,
            "--offset",
            &off.to_string(),
            "patch",
        ]);
        grown[off..off + patch.len()].copy_from_slice(&patch);
        fx.assert_holds(EAST, rid, &grown);

        // Smaller than the snapshot: refused.
        fx.fail(
            &["volume", "create", "--snapshot", &snap, "--size", "1MiB"],
            USAGE,
            &["InvalidParameterValue"],
        );

        // Under another key: sealed again, same bytes.
        let r = fx.restore(EAST, &snap, &["--encrypted", "--kms-key", &other]);
        assert_eq!(r["Encrypted"], true, "{r}");
        assert_eq!(r["KmsKeyId"], key_arn(EAST, &other), "{r}");
        fx.assert_holds(EAST, r["VolumeId"].as_str().unwrap(), &img);
    }
}

#[test]
fn snapshot_copies_round_trip_in_the_destination_region() {
    let fx = Fx::new();
    let img = image(3);
    let v = fx.volume_from(EAST, "disk.img", &img, &["--encrypted"]);
    let vol = v["VolumeId"].as_str().unwrap();
    let snap = fx.snapshot(EAST, vol);
    let src = fx.describe(&snap);
    let dek = src["DataEncryptionKeyId"].as_str().unwrap().to_owned();
    assert_eq!(src["KmsKeyId"], fx.aws_ebs_key(EAST));
    let east_blocks: BTreeSet<_> = fx
        .blocks(EAST)
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();

    // Default: the data key re-wrapped under the destination's alias/aws/ebs, blocks linked.
    let c = fx.copy_in(
        WEST,
        &[
            "snapshot",
            "copy",
            &snap,
            "--source-region",
            EAST,
            "--description",
            "rewrapped",
        ],
    );
    let west_key = fx.aws_ebs_key(WEST);
    assert_eq!(c["Resealed"], false, "{c}");
    assert_eq!(c["Blocks"], 5, "{c}");
    assert_eq!(c["Present"], 0, "{c}");
    assert_eq!(
        c["Linked"].as_u64().unwrap() + c["Written"].as_u64().unwrap(),
        5,
        "{c}"
    );
    let s = &c["Snapshot"];
    let copy1 = s["SnapshotId"].as_str().unwrap().to_owned();
    assert!(copy1.starts_with("snap-") && copy1 != snap, "{s}");
    assert_eq!(s["Encrypted"], true, "{s}");
    assert_eq!(s["KmsKeyId"], west_key, "{s}");
    assert_eq!(s["DataEncryptionKeyId"], dek.as_str(), "same data key: {s}");
    assert_eq!(s["SourceRegion"], EAST, "{s}");
    assert_eq!(s["SourceSnapshotId"], snap.as_str(), "{s}");
    assert_eq!(s["VolumeSizeBytes"], img.len() as u64, "{s}");
    assert_eq!(s["Description"], "rewrapped", "{s}");
    assert_eq!(s["State"], "completed", "{s}");
    assert_eq!(&fx.describe_in(WEST, &copy1), s);
    let west_blocks: BTreeSet<_> = fx
        .blocks(WEST)
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(
        west_blocks, east_blocks,
        "re-wrapped: the same stored blocks"
    );
    let r = fx.restore(WEST, &copy1, &[]);
    assert_eq!(r["Encrypted"], true, "{r}");
    assert_eq!(r["KmsKeyId"], west_key, "{r}");
    fx.assert_holds(WEST, r["VolumeId"].as_str().unwrap(), &img);

    // --reencrypt: a new data key, every block sealed again.
    let c = fx.copy_in(
        WEST,
        &[
            "snapshot",
            "copy",
            &snap,
            "--source-region",
            EAST,
            "--reencrypt",
        ],
    );
    assert_eq!(c["Resealed"], true, "{c}");
    assert_eq!(c["Written"], 5, "{c}");
    assert_eq!(c["Linked"], 0, "{c}");
    let s = &c["Snapshot"];
    let new_dek = s["DataEncryptionKeyId"].as_str().unwrap();
    assert!(new_dek.starts_with("dek-") && new_dek != dek, "{s}");
    assert_eq!(s["KmsKeyId"], west_key, "{s}");
    assert_eq!(s["Encrypted"], true, "{s}");
    assert_eq!(fx.blocks(WEST).len(), 10, "five more, sealed again");
    let r = fx.restore(WEST, s["SnapshotId"].as_str().unwrap(), &[]);
    fx.assert_holds(WEST, r["VolumeId"].as_str().unwrap(), &img);

    // Under a customer key of the destination, text output: the id alone.
    let k = fx.ok_in(WEST, &["key", "create"]);
    let copy3 = fx.ok_in(
        WEST,
        &[
            "snapshot",
            "copy",
            &snap,
            "--source-region",
            EAST,
            "--encrypted",
            "--kms-key",
            &k,
        ],
    );
    assert!(
        copy3.starts_with("snap-") && !copy3.contains('\n'),
        "{copy3:?}"
    );
    let s = fx.describe_in(WEST, &copy3);
    assert_eq!(s["KmsKeyId"], key_arn(WEST, &k), "{s}");
    assert_eq!(s["DataEncryptionKeyId"], dek.as_str(), "{s}");
    assert_eq!(
        s["Description"],
        format!("[Copied {snap} from {EAST}]"),
        "{s}"
    );
    let r = fx.restore(WEST, &copy3, &[]);
    assert_eq!(r["KmsKeyId"], key_arn(WEST, &k), "{r}");
    fx.assert_holds(WEST, r["VolumeId"].as_str().unwrap(), &img);

    // The source is untouched.
    fx.assert_holds(EAST, vol, &img);
}

#[test]
fn unencrypted_snapshot_copied_with_encrypted_is_sealed() {
    let fx = Fx::new();
    let img = image(4);
    let v = fx.volume_from(EAST, "disk.img", &img, &[]);
    let snap = fx.snapshot(EAST, v["VolumeId"].as_str().unwrap());

    // Plain stays plain, by default.
    let c = fx.copy_in(WEST, &["snapshot", "copy", &snap, "--source-region", EAST]);
    assert_eq!(c["Resealed"], false, "{c}");
    assert_eq!(c["Snapshot"]["Encrypted"], false, "{c}");
    assert!(c["Snapshot"].get("KmsKeyId").is_none(), "{c}");
    assert!(c["Snapshot"].get("DataEncryptionKeyId").is_none(), "{c}");
    let r = fx.restore(WEST, c["Snapshot"]["SnapshotId"].as_str().unwrap(), &[]);
    assert_eq!(r["Encrypted"], false, "{r}");
    fx.assert_holds(WEST, r["VolumeId"].as_str().unwrap(), &img);

    // --encrypted: sealed under the destination's default key.
    let before = fx.blocks(WEST);
    let c = fx.copy_in(
        WEST,
        &[
            "snapshot",
            "copy",
            &snap,
            "--source-region",
            EAST,
            "--encrypted",
        ],
    );
    assert_eq!(c["Resealed"], true, "{c}");
    assert_eq!(c["Written"], 5, "{c}");
    let s = &c["Snapshot"];
    assert_eq!(s["Encrypted"], true, "{s}");
    assert_eq!(s["KmsKeyId"], fx.aws_ebs_key(WEST), "{s}");
    assert!(s["DataEncryptionKeyId"]
        .as_str()
        .unwrap()
        .starts_with("dek-"));
    let new: Vec<_> = fx.blocks(WEST).difference(&before).cloned().collect();
    assert_eq!(new.len(), 5);
    for f in &new {
        assert_eq!(fs::metadata(f).unwrap().len(), SEALED as u64);
    }
    let r = fx.restore(WEST, s["SnapshotId"].as_str().unwrap(), &[]);
    assert_eq!(r["Encrypted"], true, "{r}");
    fx.assert_holds(WEST, r["VolumeId"].as_str().unwrap(), &img);

    // Encryption by default in the destination does the same without the flag.
    assert_eq!(
        fx.ok_in(WEST, &["ebs", "default-encryption", "enable"]),
        "true"
    );
    let c = fx.copy_in(WEST, &["snapshot", "copy", &snap, "--source-region", EAST]);
    assert_eq!(c["Resealed"], true, "{c}");
    assert_eq!(c["Snapshot"]["Encrypted"], true, "{c}");
    let r = fx.restore(WEST, c["Snapshot"]["SnapshotId"].as_str().unwrap(), &[]);
    fx.assert_holds(WEST, r["VolumeId"].as_str().unwrap(), &img);
}

/// Sealing every block again (copy --reencrypt, copy --encrypted of a plain snapshot, restore
/// under another key) for a volume of 16 blocks. Parallel work hands each worker thread a run
/// of blocks once a volume has more than about eight blocks per core; one worker thread makes
/// that happen at 8 MiB on any machine.
#[test]
fn resealing_a_volume_of_many_blocks_round_trips() {
    let fx = Fx::new();
    let data = random(25, 16 * BLOCK);
    let enc = fx.volume_from(EAST, "disk.img", &data, &["--encrypted"]);
    let esnap = fx.snapshot(EAST, enc["VolumeId"].as_str().unwrap());
    let plain = fx.volume_from(EAST, "disk.img", &data, &[]);
    let psnap = fx.snapshot(EAST, plain["VolumeId"].as_str().unwrap());
    let k = fx.ok(&["key", "create"]);

    for (snap, flag) in [(&esnap, "--reencrypt"), (&psnap, "--encrypted")] {
        let c = fx.copy_with(
            WEST,
            &["snapshot", "copy", snap, "--source-region", EAST, flag],
            &[("RAYON_NUM_THREADS", "1")],
        );
        assert_eq!(c["Resealed"], true, "{c}");
        assert_eq!(c["Written"], 16, "{c}");
        assert_eq!(c["Snapshot"]["Encrypted"], true, "{c}");
        let r = fx.restore(WEST, c["Snapshot"]["SnapshotId"].as_str().unwrap(), &[]);
        fx.assert_holds(WEST, r["VolumeId"].as_str().unwrap(), &data);
    }
    for snap in [&esnap, &psnap] {
        let v = fx.json_one_thread(
            EAST,
            &[
                "volume",
                "create",
                "--snapshot",
                snap,
                "--encrypted",
                "--kms-key",
                &k,
            ],
        );
        let v = fx.describe(v["VolumeId"].as_str().unwrap());
        assert_eq!(v["KmsKeyId"], key_arn(EAST, &k), "{v}");
        assert_eq!(v["StoredBlocks"], 16, "{v}");
        fx.assert_holds(EAST, v["VolumeId"].as_str().unwrap(), &data);
    }
}

// ── 2. Writes ─────────────────────────────────────────────────────────────────────────────

#[test]
fn unaligned_writes_from_a_file_and_stdin() {
    for encrypted in [false, true] {
        let fx = Fx::new();
        let img = image(5);
        let extra: &[&str] = if encrypted { &["--encrypted"] } else { &[] };
        let v = fx.volume_from(EAST, "disk.img", &img, extra);
        let vol = v["VolumeId"].as_str().unwrap();
        let before = fx.snapshot(EAST, vol);
        let mut model = img.clone();

        // From a file: from 100 bytes before the end of block 0, over the zero block 1,
        // into block 2.
        let a = random(50, BLOCK + 300);
        let off = BLOCK - 100;
        fx.write("patch", &a);
        let out = fx.ok(&[
            "volume",
            "write",
            vol,
            "--offset",
            &off.to_string(),
            "patch",
        ]);
        assert_eq!(out, "");
        model[off..off + a.len()].copy_from_slice(&a);

        // From stdin (`-`): 20 bytes across the 4|5 boundary.
        let b = random(51, 20);
        let off = 5 * BLOCK - 7;
        let args = ["volume", "write", vol, "--offset", &off.to_string(), "-"];
        Fx::check_ok(fx.run_stdin(EAST, &args, &b), EAST, &args);
        model[off..off + b.len()].copy_from_slice(&b);

        // From stdin (no input named), in the middle of block 3, with the JSON report.
        let c = random(52, 333);
        let off = 3 * BLOCK + 4321;
        let args = [
            "volume",
            "write",
            vol,
            "--offset",
            &off.to_string(),
            "--output",
            "json",
        ];
        let out = Fx::check_ok(fx.run_stdin(EAST, &args, &c), EAST, &args);
        let report: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(report["BytesWritten"], 333, "{report}");
        model[off..off + c.len()].copy_from_slice(&c);

        // Up to the very last byte, into the zero tail block.
        let d = random(53, 10);
        let off = img.len() - 10;
        fx.write("tail", &d);
        fx.ok(&["volume", "write", vol, "--offset", &off.to_string(), "tail"]);
        model[off..].copy_from_slice(&d);

        // Zeros over the whole of block 4: it is no longer stored.
        fx.write("zeros", &vec![0u8; BLOCK]);
        let off = 4 * BLOCK;
        fx.ok(&[
            "volume",
            "write",
            vol,
            "--offset",
            &off.to_string(),
            "zeros",
        ]);
        model[off..off + BLOCK].fill(0);

        fx.assert_holds(EAST, vol, &model);
        let d = fx.describe(vol);
        assert_eq!(d["StoredBlocks"], nonzero_blocks(&model) as u64, "{d}");
        assert_eq!(d["Encrypted"], encrypted, "{d}");

        // The snapshot taken before still holds the old bytes.
        let r = fx.restore(EAST, &before, &[]);
        fx.assert_holds(EAST, r["VolumeId"].as_str().unwrap(), &img);

        // And a snapshot after differs from it exactly where the bytes do.
        let after = fx.snapshot(EAST, vol);
        let want: String = differing_blocks(&img, &model)
            .iter()
            .map(|i| format!("{i}\n"))
            .collect();
        assert_eq!(want, "0\n1\n2\n3\n4\n5\n6\n");
        assert_eq!(
            String::from_utf8(fx.bytes_in(EAST, &["snapshot", "diff", &before, &after])).unwrap(),
            want
        );
    }
}

#[test]
fn a_write_past_the_end_fails_and_changes_nothing() {
    let fx = Fx::new();
    let img = image(6);
    let v = fx.volume_from(EAST, "disk.img", &img, &["--encrypted"]);
    let vol = v["VolumeId"].as_str().unwrap();
    let head = fs::read(fx.ebs(EAST).join("head")).unwrap();
    let blocks = fx.blocks(EAST);
    let n = img.len();

    // Runs 10 bytes past the end.
    fx.write("over", &random(60, 20));
    let off = (n - 10).to_string();
    fx.fail(
        &["volume", "write", vol, "--offset", &off, "over"],
        USAGE,
        &["past the end", "nothing was changed"],
    );
    // Starts past the end.
    let off = (n + 1).to_string();
    fx.fail(
        &["volume", "write", vol, "--offset", &off, "over"],
        USAGE,
        &["past the end"],
    );
    // A whole image one byte too long, from stdin: several blocks would fit first.
    let args = ["volume", "write", vol, "--offset", "0", "-"];
    let out = fx.run_stdin(EAST, &args, &random(61, n + 1));
    Fx::check_fail(&out, USAGE, &["past the end"], "long stdin write");

    assert_eq!(
        fs::read(fx.ebs(EAST).join("head")).unwrap(),
        head,
        "the head changed"
    );
    assert_eq!(fx.blocks(EAST), blocks, "blocks were left behind");
    fx.assert_holds(EAST, vol, &img);
}

// ── 3. Incremental accounting ─────────────────────────────────────────────────────────────

#[test]
fn incremental_snapshots_store_and_copy_only_the_changed_block() {
    let fx = Fx::new();
    let data = random(7, 64 * BLOCK);
    let v = fx.volume_from(EAST, "disk.img", &data, &["--encrypted"]);
    assert_eq!(v["StoredBlocks"], 64, "{v}");
    let vol = v["VolumeId"].as_str().unwrap();
    let n0 = fx.blocks(EAST).len();
    assert_eq!(n0, 64);
    let first = fx.snapshot(EAST, vol);
    assert_eq!(fx.blocks(EAST).len(), n0, "a snapshot stores no block");

    // Change 4 KiB inside block 10 (about 1% of the volume).
    let mut model = data.clone();
    let patch = random(70, 4096);
    let off = 10 * BLOCK + 1000;
    model[off..off + patch.len()].copy_from_slice(&patch);
    fx.write("patch", &patch);
    fx.ok(&[
        "volume",
        "write",
        vol,
        "--offset",
        &off.to_string(),
        "patch",
    ]);
    let second = fx.snapshot(EAST, vol);
    let n1 = fx.blocks(EAST).len();
    assert!(
        n1 > n0 && n1 - n0 <= 2,
        "the second snapshot stored {} new blocks",
        n1 - n0
    );

    assert_eq!(fx.ok(&["snapshot", "diff", &first, &second]), "10");
    assert_eq!(fx.ok(&["snapshot", "diff", &second, &first]), "10");
    assert_eq!(fx.ok(&["snapshot", "diff", &first, &first]), "");
    assert_eq!(
        fx.json(&["snapshot", "diff", &first, &second]),
        serde_json::json!({
            "ChangedBlocks": [{"BlockIndex": 10}],
            "BlockSize": 524288,
            "VolumeSize": 1,
        })
    );

    // Copies: the first moves every block, the second only the changed one.
    let c1 = fx.copy_in(WEST, &["snapshot", "copy", &first, "--source-region", EAST]);
    assert_eq!(c1["Blocks"], 64, "{c1}");
    assert_eq!(c1["Present"], 0, "{c1}");
    assert_eq!(
        c1["Linked"].as_u64().unwrap() + c1["Written"].as_u64().unwrap(),
        64,
        "{c1}"
    );
    let c2 = fx.copy_in(
        WEST,
        &["snapshot", "copy", &second, "--source-region", EAST],
    );
    assert_eq!(c2["Blocks"], 64, "{c2}");
    assert!(c2["Present"].as_u64().unwrap() >= 62, "{c2}");
    assert!(
        c2["Linked"].as_u64().unwrap() + c2["Written"].as_u64().unwrap() <= 2,
        "{c2}"
    );
    assert_eq!(fx.blocks(WEST).len(), n1);
    let (w1, w2) = (
        c1["Snapshot"]["SnapshotId"].as_str().unwrap(),
        c2["Snapshot"]["SnapshotId"].as_str().unwrap(),
    );
    assert_eq!(fx.ok_in(WEST, &["snapshot", "diff", w1, w2]), "10");
    let r = fx.restore(WEST, w2, &[]);
    let got = fx.read_volume(WEST, r["VolumeId"].as_str().unwrap(), 9 * BLOCK, 3 * BLOCK);
    assert!(
        got == model[9 * BLOCK..12 * BLOCK],
        "copy of the second snapshot"
    );
    let r = fx.restore(WEST, w1, &[]);
    let got = fx.read_volume(WEST, r["VolumeId"].as_str().unwrap(), 9 * BLOCK, 3 * BLOCK);
    assert!(
        got == data[9 * BLOCK..12 * BLOCK],
        "copy of the first snapshot"
    );

    // Snapshots of another volume are unrelated.
    let other = fx.volume_from(EAST, "small.img", &random(71, BLOCK), &["--encrypted"]);
    let third = fx.snapshot(EAST, other["VolumeId"].as_str().unwrap());
    fx.fail(
        &["snapshot", "diff", &first, &third],
        USAGE,
        &["UNRELATED_SNAPSHOTS"],
    );
}

// ── 4. Deletion ───────────────────────────────────────────────────────────────────────────

#[test]
fn deletion_frees_blocks_only_when_nothing_uses_them() {
    let fx = Fx::new();
    let img = image(8);
    let v = fx.volume_from(EAST, "disk.img", &img, &["--encrypted"]);
    let vol = v["VolumeId"].as_str().unwrap().to_owned();
    assert_eq!(fx.blocks(EAST).len(), 5);
    let snap = fx.snapshot(EAST, &vol);

    // The snapshot holds the old block 0, the volume a new one.
    fx.write("patch", &random(80, 1000));
    fx.ok(&["volume", "write", &vol, "--offset", "100", "patch"]);
    assert_eq!(fx.blocks(EAST).len(), 6);
    let restored = fx.restore(EAST, &snap, &[]);
    let restored = restored["VolumeId"].as_str().unwrap();
    assert_eq!(fx.blocks(EAST).len(), 6, "a restore copies nothing");

    // Deleting the volume frees only its own block; the snapshot still restores.
    assert_eq!(fx.ok(&["volume", "delete", &vol]), "");
    assert_eq!(fx.blocks(EAST).len(), 5);
    assert_eq!(
        maps_in(&fx.ebs(EAST)).len(),
        1,
        "the snapshot's map, shared"
    );
    let again = fx.restore(EAST, &snap, &[]);
    fx.assert_holds(EAST, again["VolumeId"].as_str().unwrap(), &img);
    fx.ok(&["volume", "delete", again["VolumeId"].as_str().unwrap()]);

    // Deleting the snapshot frees nothing the restored volume needs.
    assert_eq!(fx.ok(&["snapshot", "delete", &snap]), "");
    assert_eq!(fx.blocks(EAST).len(), 5);
    fx.assert_holds(EAST, restored, &img);
    assert_eq!(fx.ok(&["snapshot", "list"]), "");

    // Deleting the last record frees everything.
    fx.ok(&["volume", "delete", restored]);
    assert_eq!(fx.blocks(EAST).len(), 0);
    assert_eq!(maps_in(&fx.ebs(EAST)).len(), 0);
    assert_eq!(fx.ok(&["volume", "list"]), "");
    let report = fx.verify(EAST);
    assert_eq!(report["Orphans"], 0, "{report}");

    // A snapshot holding a block its volume has since replaced: deleting it frees that block.
    let w = fx.volume_from(EAST, "disk.img", &img, &["--encrypted"]);
    let wid = w["VolumeId"].as_str().unwrap();
    let wsnap = fx.snapshot(EAST, wid);
    fx.write("patch", &random(81, 1000));
    fx.ok(&["volume", "write", wid, "--offset", "100", "patch"]);
    let mut model = img.clone();
    model[100..1100].copy_from_slice(&random(81, 1000));
    assert_eq!(fx.blocks(EAST).len(), 6);
    fx.ok(&["snapshot", "delete", &wsnap]);
    assert_eq!(
        fx.blocks(EAST).len(),
        5,
        "the replaced block outlived its snapshot"
    );
    fx.assert_holds(EAST, wid, &model);
    fx.ok(&["volume", "delete", wid]);

    // Unencrypted volumes of one image share their blocks; deleting one keeps them.
    let p1 = fx.volume_from(EAST, "disk.img", &img, &[]);
    let p2 = fx.volume_from(EAST, "disk.img", &img, &[]);
    assert_eq!(
        fx.blocks(EAST).len(),
        5,
        "equal plaintext blocks stored once"
    );
    fx.ok(&["volume", "delete", p1["VolumeId"].as_str().unwrap()]);
    assert_eq!(fx.blocks(EAST).len(), 5);
    fx.assert_holds(EAST, p2["VolumeId"].as_str().unwrap(), &img);
    fx.ok(&["volume", "delete", p2["VolumeId"].as_str().unwrap()]);
    assert_eq!(fx.blocks(EAST).len(), 0);
    assert_eq!(maps_in(&fx.ebs(EAST)).len(), 0);

    // Copies in another region keep their blocks when the source goes, and two copies of one
    // snapshot share theirs until both go.
    let v = fx.volume_from(EAST, "disk.img", &img, &["--encrypted"]);
    let vol = v["VolumeId"].as_str().unwrap();
    let snap = fx.snapshot(EAST, vol);
    let copy = ["snapshot", "copy", &snap, "--source-region", EAST];
    let (c1, c2) = (fx.ok_in(WEST, &copy), fx.ok_in(WEST, &copy));
    fx.ok(&["snapshot", "delete", &snap]);
    fx.ok(&["volume", "delete", vol]);
    assert_eq!(fx.blocks(EAST).len(), 0);
    assert_eq!(fx.blocks(WEST).len(), 5);
    fx.ok_in(WEST, &["snapshot", "delete", &c1]);
    assert_eq!(fx.blocks(WEST).len(), 5);
    let r = fx.restore(WEST, &c2, &[]);
    fx.assert_holds(WEST, r["VolumeId"].as_str().unwrap(), &img);
    fx.ok_in(WEST, &["volume", "delete", r["VolumeId"].as_str().unwrap()]);
    fx.ok_in(WEST, &["snapshot", "delete", &c2]);
    assert_eq!(fx.blocks(WEST).len(), 0);
    assert_eq!(maps_in(&fx.ebs(WEST)).len(), 0);
}

#[test]
fn a_write_frees_the_blocks_it_replaces() {
    let fx = Fx::new();
    let img = image(9);
    let v = fx.volume_from(EAST, "disk.img", &img, &["--encrypted"]);
    let vol = v["VolumeId"].as_str().unwrap();
    // No snapshot holds the old block 0 or the old map: once replaced, nothing needs them.
    fx.write("patch", &random(90, 1000));
    fx.ok(&["volume", "write", vol, "--offset", "100", "patch"]);
    let report = fx.verify(EAST);
    assert_eq!(report["Orphans"], 0, "a plain write left orphans: {report}");
    assert_eq!(fx.blocks(EAST).len(), 5);
    assert_eq!(maps_in(&fx.ebs(EAST)).len(), 1);
    fx.ok(&["volume", "delete", vol]);
    assert_eq!(fx.blocks(EAST).len(), 0, "deleting everything left blocks");
    assert_eq!(
        maps_in(&fx.ebs(EAST)).len(),
        0,
        "deleting everything left maps"
    );
}

#[test]
fn missing_volumes_and_snapshots_exit_3() {
    let fx = Fx::new();
    let v = fx.volume_from(EAST, "disk.img", &random(10, 1000), &[]);
    let vol = v["VolumeId"].as_str().unwrap().to_owned();
    let snap = fx.snapshot(EAST, &vol);
    fx.ok(&["volume", "delete", &vol]);
    fx.write("patch", b"x");
    for id in [vol.as_str(), NO_VOL] {
        let nf = ["InvalidVolume.NotFound", id];
        fx.fail(&["volume", "describe", id], ACCESS, &nf);
        fx.fail(&["volume", "delete", id], ACCESS, &nf);
        fx.fail(
            &["volume", "read", id, "--offset", "0", "--length", "1"],
            ACCESS,
            &nf,
        );
        fx.fail(
            &["volume", "write", id, "--offset", "0", "patch"],
            ACCESS,
            &nf,
        );
        fx.fail(&["volume", "export", id, "-o", "out.img"], ACCESS, &nf);
        assert!(!fx.path("out.img").exists());
        fx.fail(&["snapshot", "create", id], ACCESS, &nf);
    }
    // Snapshots belong to their region.
    fx.fail_in(
        WEST,
        &["snapshot", "describe", &snap],
        ACCESS,
        &["InvalidSnapshot.NotFound"],
    );
    fx.ok(&["snapshot", "delete", &snap]);
    for id in [snap.as_str(), NO_SNAP] {
        let nf = ["InvalidSnapshot.NotFound", id];
        fx.fail(&["snapshot", "describe", id], ACCESS, &nf);
        fx.fail(&["snapshot", "delete", id], ACCESS, &nf);
        fx.fail(&["volume", "create", "--snapshot", id], ACCESS, &nf);
        fx.fail_in(
            WEST,
            &["snapshot", "copy", id, "--source-region", EAST],
            ACCESS,
            &nf,
        );
    }
    let s = fx.snapshot(
        EAST,
        fx.volume_from(EAST, "d2.img", b"y", &[])["VolumeId"]
            .as_str()
            .unwrap(),
    );
    fx.fail(
        &["snapshot", "diff", &s, NO_SNAP],
        ACCESS,
        &["InvalidSnapshot.NotFound"],
    );
    // Malformed ids are usage errors, named as EC2 names them.
    fx.fail(
        &["volume", "describe", "vol-nope"],
        USAGE,
        &["InvalidVolumeID.Malformed", "invalid volume id"],
    );
    fx.fail(
        &["snapshot", "delete", "snapshot-1"],
        USAGE,
        &["InvalidSnapshotID.Malformed", "invalid snapshot id"],
    );
}

// ── 5. Relocated regions ──────────────────────────────────────────────────────────────────

#[test]
fn a_relocated_region_keeps_its_data_in_its_folder() {
    let fx = Fx::new();
    let away = fx.path("elsewhere/west");
    let away_s = away.to_str().unwrap();
    assert_eq!(
        fx.ok(&["region", "set-path", WEST, away_s]),
        format!("{WEST}  {away_s}")
    );
    let list = fx.ok(&["region", "list"]);
    assert!(
        list.lines().any(|l| l == format!("{WEST}  {away_s}")),
        "{list}"
    );

    let img = image(11);
    let v = fx.volume_from(WEST, "disk.img", &img, &["--encrypted"]);
    let vol = v["VolumeId"].as_str().unwrap();
    let away_ebs = away.join("ebs");
    assert!(away_ebs.join("head").is_file());
    assert_eq!(blocks_in(&away_ebs).len(), 5);
    assert!(head_json(&away_ebs)["Volumes"].get(vol).is_some());
    assert!(
        !fx.home().join("regions").join(WEST).exists(),
        "the relocated region wrote under the home"
    );
    fx.assert_holds(WEST, vol, &img);

    // Relocated → normal.
    let snap = fx.snapshot(WEST, vol);
    let copy = fx.ok_in(EAST, &["snapshot", "copy", &snap, "--source-region", WEST]);
    assert_eq!(fx.blocks(EAST).len(), 5);
    let r = fx.restore(EAST, &copy, &[]);
    fx.assert_holds(EAST, r["VolumeId"].as_str().unwrap(), &img);

    // Normal → relocated, re-encrypted and plain.
    let img2 = image(12);
    let p = fx.volume_from(EAST, "disk2.img", &img2, &[]);
    let psnap = fx.snapshot(EAST, p["VolumeId"].as_str().unwrap());
    for extra in [&[][..], &["--encrypted"][..]] {
        let args = [
            &["snapshot", "copy", &psnap, "--source-region", EAST],
            extra,
        ]
        .concat();
        let copy = fx.ok_in(WEST, &args);
        assert!(head_json(&away_ebs)["Snapshots"].get(&copy).is_some());
        let r = fx.restore(WEST, &copy, &[]);
        fx.assert_holds(WEST, r["VolumeId"].as_str().unwrap(), &img2);
    }
    assert_eq!(blocks_in(&away_ebs).len(), 15);
    assert!(!fx.home().join("regions").join(WEST).exists());
    fx.verify(WEST);
}

#[test]
fn set_path_refuses_to_strand_a_regions_data() {
    let fx = Fx::new();
    let img = image(13);
    let v = fx.volume_from(EAST, "disk.img", &img, &["--encrypted"]);
    let vol = v["VolumeId"].as_str().unwrap();
    let home_east = fx.home().join("regions").join(EAST);
    let empty = fx.path("empty");
    fs::create_dir(&empty).unwrap();

    fx.fail(
        &["region", "set-path", EAST, empty.to_str().unwrap()],
        USAGE,
        &["already has data"],
    );
    let list = fx.ok(&["region", "list"]);
    assert!(
        list.contains(&format!("{EAST}  {}", home_east.display())),
        "{list}"
    );
    fx.assert_holds(EAST, vol, &img);

    // Moved first, then pointed at: the data follows.
    let moved = fx.path("moved");
    fs::rename(&home_east, &moved).unwrap();
    fx.ok(&["region", "set-path", EAST, moved.to_str().unwrap()]);
    fx.assert_holds(EAST, vol, &img);
    // Back under the home: refused while the home folder holds none of it.
    fx.fail(
        &["region", "set-path", EAST, "--reset"],
        USAGE,
        &["already has data"],
    );
    fs::rename(&moved, &home_east).unwrap();
    fx.ok(&["region", "set-path", EAST, "--reset"]);
    fx.assert_holds(EAST, vol, &img);
}

#[test]
fn set_path_is_allowed_while_a_region_holds_no_data() {
    let fx = Fx::new();
    // Commands that store nothing in the region: a listing, a scrub, a create that fails.
    fx.ok_in(WEST, &["snapshot", "list"]);
    fx.ok_in(WEST, &["verify"]);
    let out = fx.run(WEST, &["volume", "create", "--from-image", "missing.img"]);
    Fx::check_fail(&out, 1, &["missing.img"], "create from a missing image");

    let away = fx.path("away");
    fx.ok(&["region", "set-path", WEST, away.to_str().unwrap()]);
    let img = image(22);
    let v = fx.volume_from(WEST, "disk.img", &img, &[]);
    assert_eq!(blocks_in(&away.join("ebs")).len(), 5);
    fx.assert_holds(WEST, v["VolumeId"].as_str().unwrap(), &img);
}

#[test]
fn copies_across_filesystems_write_the_blocks() {
    use std::os::unix::fs::MetadataExt;
    let fx = Fx::new();
    let shm = match tempfile::Builder::new()
        .prefix("cofre-ebs-test")
        .tempdir_in("/dev/shm")
    {
        Ok(d)
            if fs::metadata(d.path()).unwrap().dev() != fs::metadata(fx.home()).unwrap().dev() =>
        {
            d
        }
        _ => panic!(
            "this test needs /dev/shm on another filesystem than the temporary folder (a tmpfs, as on every machine of this project)"
        ),
    };
    let away = shm.path().join("west");
    fx.ok(&["region", "set-path", WEST, away.to_str().unwrap()]);
    let img = image(23);
    let v = fx.volume_from(EAST, "disk.img", &img, &["--encrypted"]);
    let snap = fx.snapshot(EAST, v["VolumeId"].as_str().unwrap());

    let c = fx.copy_in(WEST, &["snapshot", "copy", &snap, "--source-region", EAST]);
    assert_eq!(c["Resealed"], false, "{c}");
    assert_eq!(c["Present"], 0, "{c}");
    assert_eq!(c["Linked"], 0, "{c}");
    assert_eq!(c["Written"], 5, "{c}");
    let west = blocks_in(&away.join("ebs"));
    assert_eq!(west.len(), 5);
    for f in &west {
        let m = fs::metadata(f).unwrap();
        assert_eq!((m.len(), m.nlink()), (SEALED as u64, 1), "{}", f.display());
    }
    let report = fx.verify(WEST);
    assert_eq!(report["TemporaryFiles"], 0, "{report}");
    let copy = c["Snapshot"]["SnapshotId"].as_str().unwrap();
    let r = fx.restore(WEST, copy, &[]);
    fx.assert_holds(WEST, r["VolumeId"].as_str().unwrap(), &img);

    // Back the other way: the blocks are there already.
    let back = fx.copy_in(EAST, &["snapshot", "copy", copy, "--source-region", WEST]);
    assert_eq!(back["Present"], 5, "{back}");
    let r = fx.restore(EAST, back["Snapshot"]["SnapshotId"].as_str().unwrap(), &[]);
    fx.assert_holds(EAST, r["VolumeId"].as_str().unwrap(), &img);
}

// ── 6. Tampering ──────────────────────────────────────────────────────────────────────────
//
// Out of scope: replacing the whole head with an older authentic copy (a backup of the region
// restored). Its MAC is genuine and cofre keeps no state outside the region folder to compare
// generations with, so nothing can tell it from the real thing.

#[test]
fn a_flipped_byte_or_a_missing_block_is_caught() {
    for encrypted in [false, true] {
        let fx = Fx::new();
        let img = image(14);
        let extra: &[&str] = if encrypted { &["--encrypted"] } else { &[] };
        let v = fx.volume_from(EAST, "disk.img", &img, extra);
        let vol = v["VolumeId"].as_str().unwrap();
        fx.verify(EAST);

        let f = fx.block_of(EAST, vol, 2);
        let mut bytes = fs::read(&f).unwrap();
        bytes[1234] ^= 1;
        fs::write(&f, &bytes).unwrap();
        fx.assert_caught(EAST, vol, (2 * BLOCK + 10, 10));
        // Blocks around it still read.
        assert_eq!(fx.read_volume(EAST, vol, 0, 100), img[..100]);

        bytes[1234] ^= 1;
        fs::write(&f, &bytes).unwrap();
        fx.verify(EAST);
        fx.assert_holds(EAST, vol, &img);

        fs::remove_file(&f).unwrap();
        fx.assert_caught(EAST, vol, (2 * BLOCK, 1));
    }
}

#[test]
fn swapped_blocks_are_caught() {
    for encrypted in [false, true] {
        let fx = Fx::new();
        let img = image(15);
        let extra: &[&str] = if encrypted { &["--encrypted"] } else { &[] };
        let v = fx.volume_from(EAST, "disk.img", &img, extra);
        let vol = v["VolumeId"].as_str().unwrap();
        let (a, b) = (fx.block_of(EAST, vol, 0), fx.block_of(EAST, vol, 3));
        let (ba, bb) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
        fs::write(&a, &bb).unwrap();
        fs::write(&b, &ba).unwrap();
        fx.assert_caught(EAST, vol, (0, 1));
        fx.assert_caught(EAST, vol, (3 * BLOCK + 2000, 1));
    }
}

#[test]
fn a_rolled_back_block_map_is_caught() {
    let fx = Fx::new();
    let img = image(16);
    let v = fx.volume_from(EAST, "disk.img", &img, &["--encrypted"]);
    let vol = v["VolumeId"].as_str().unwrap();
    let old_map = fx.volume_map(EAST, vol);
    let old_bytes = fs::read(&old_map).unwrap();

    fx.write("patch", &random(160, 5000));
    fx.ok(&["volume", "write", vol, "--offset", "0", "patch"]);
    let new_map = fx.volume_map(EAST, vol);
    assert_ne!(new_map, old_map);

    // The older map's bytes put where the current one is: its name no longer matches.
    fs::write(&new_map, &old_bytes).unwrap();
    fx.assert_caught(EAST, vol, (0, 10));
    // gc cannot tell which blocks are in use, so it removes none.
    let blocks = fx.blocks(EAST);
    fx.fail(&["gc"], INTEGRITY, &["tampered"]);
    assert_eq!(
        fx.blocks(EAST),
        blocks,
        "gc removed blocks it could not account for"
    );

    // A map that is gone altogether.
    fs::remove_file(&new_map).unwrap();
    fx.assert_caught(EAST, vol, (0, 10));
}

#[test]
fn an_edited_head_is_caught() {
    let fx = Fx::new();
    let img = image(17);
    let v = fx.volume_from(EAST, "disk.img", &img, &["--encrypted"]);
    let vol = v["VolumeId"].as_str().unwrap();
    let snap = fx.snapshot(EAST, vol);
    let old_map = head_json(&fx.ebs(EAST))["Snapshots"][&snap]["Map"]
        .as_str()
        .unwrap()
        .to_owned();
    fx.write("patch", &random(170, 5000));
    fx.ok(&["volume", "write", vol, "--offset", "0", "patch"]);
    let head_path = fx.ebs(EAST).join("head");
    let good = fs::read_to_string(&head_path).unwrap();
    let new_map = head_json(&fx.ebs(EAST))["Volumes"][vol]["Map"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_map, old_map);

    let size = format!("\"SizeBytes\": {}", img.len());
    let edits = [
        // A size grown by one byte.
        good.replacen(&size, &format!("\"SizeBytes\": {}", img.len() + 1), 1),
        // The volume's record rolled back to the snapshot's (older, still stored) map.
        good.replacen(
            &format!("\"Map\": \"{new_map}\""),
            &format!("\"Map\": \"{old_map}\""),
            1,
        ),
        // A setting flipped.
        good.replacen(
            "\"EncryptionByDefault\": false",
            "\"EncryptionByDefault\": true",
            1,
        ),
    ];
    for edited in &edits {
        assert_ne!(edited, &good, "the edit applies");
        fs::write(&head_path, edited).unwrap();
        fx.assert_caught(EAST, vol, (0, 10));
        fx.fail(&["volume", "list"], INTEGRITY, &["failed authentication"]);
        fx.fail(&["snapshot", "list"], INTEGRITY, &["failed authentication"]);
        fs::write(&head_path, &good).unwrap();
        fx.verify(EAST);
    }

    // An authentic head of another region does not pass in this one.
    let w = fx.volume_from(WEST, "disk.img", &img, &["--encrypted"]);
    fs::copy(fx.ebs(WEST).join("head"), &head_path).unwrap();
    fx.assert_caught(EAST, vol, (0, 10));
    fx.fail(
        &["volume", "describe", w["VolumeId"].as_str().unwrap()],
        INTEGRITY,
        &["failed authentication"],
    );
}

#[test]
fn verify_does_not_call_a_disabled_key_damage() {
    let fx = Fx::new();
    let img = image(24);
    let k = fx.ok(&["key", "create"]);
    let v = fx.volume_from(EAST, "disk.img", &img, &["--encrypted", "--kms-key", &k]);
    let vol = v["VolumeId"].as_str().unwrap();
    let out = fx.run(EAST, &["key", "disable", &k, "--force"]);
    assert!(out.status.success(), "{out:?}");
    // Unreadable for now (an access error, not an integrity one)…
    fx.fail(
        &["volume", "export", vol, "-o", "out.img"],
        ACCESS,
        &["DisabledException"],
    );
    // …but nothing in the store is damaged: verify must not say it was tampered with.
    let out = fx.run(EAST, &["verify"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(INTEGRITY),
        "verify reports a disabled key as damage:\n{}{err}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!err.contains("tampered"), "{err}");
    fx.ok(&["key", "enable", &k]);
    fx.verify(EAST);
    fx.assert_holds(EAST, vol, &img);
}

// ── 7. Copies refused ─────────────────────────────────────────────────────────────────────

#[test]
fn copy_is_refused_without_a_usable_destination_key() {
    let fx = Fx::new();
    let img = image(18);
    let v = fx.volume_from(EAST, "disk.img", &img, &["--encrypted"]);
    let snap = fx.snapshot(EAST, v["VolumeId"].as_str().unwrap());
    let p = fx.volume_from(EAST, "disk.img", &img, &[]);
    let plain = fx.snapshot(EAST, p["VolumeId"].as_str().unwrap());

    let k = fx.ok_in(WEST, &["key", "create"]);
    assert_eq!(
        fx.ok_in(WEST, &["ebs", "default-key", "set", &k]),
        key_arn(WEST, &k)
    );
    fx.ok_in(WEST, &["key", "disable", &k]);
    let west_empty = |fx: &Fx| {
        assert_eq!(fx.ok_in(WEST, &["snapshot", "list"]), "");
        assert_eq!(
            fx.json_in(WEST, &["snapshot", "list"]),
            serde_json::json!({"Snapshots": []})
        );
        assert_eq!(blocks_in(&fx.ebs(WEST)).len(), 0, "blocks left behind");
        assert_eq!(maps_in(&fx.ebs(WEST)).len(), 0, "maps left behind");
    };
    let copy = ["snapshot", "copy", &snap, "--source-region", EAST];
    fx.fail_in(WEST, &copy, ACCESS, &["DisabledException"]);
    west_empty(&fx);
    fx.fail_in(
        WEST,
        &[&copy[..], &["--reencrypt"]].concat(),
        ACCESS,
        &["DisabledException"],
    );
    west_empty(&fx);
    fx.fail_in(
        WEST,
        &[
            "snapshot",
            "copy",
            &plain,
            "--source-region",
            EAST,
            "--encrypted",
        ],
        ACCESS,
        &["DisabledException"],
    );
    west_empty(&fx);

    // A key of another region.
    let east_key = fx.ok(&["key", "create"]);
    let arn = key_arn(EAST, &east_key);
    fx.fail_in(
        WEST,
        &[&copy[..], &["--encrypted", "--kms-key", &arn]].concat(),
        ACCESS,
        &["NotFoundException"],
    );
    west_empty(&fx);
    // --kms-key needs --encrypted.
    fx.fail_in(
        WEST,
        &[&copy[..], &["--kms-key", &k]].concat(),
        USAGE,
        &["InvalidParameterDependency"],
    );
    west_empty(&fx);

    // With the key enabled again the same copy goes through.
    fx.ok_in(WEST, &["key", "enable", &k]);
    let c = fx.copy_in(WEST, &copy);
    assert_eq!(c["Snapshot"]["KmsKeyId"], key_arn(WEST, &k), "{c}");
    let r = fx.restore(WEST, c["Snapshot"]["SnapshotId"].as_str().unwrap(), &[]);
    fx.assert_holds(WEST, r["VolumeId"].as_str().unwrap(), &img);
}

// ── 8. Encryption by default ──────────────────────────────────────────────────────────────

#[test]
fn encryption_by_default_uses_the_regions_default_key() {
    let fx = Fx::new();
    let alias_arn = format!("arn:aws:kms:{EAST}:{ACCOUNT}:alias/aws/ebs");
    assert_eq!(fx.ok(&["ebs", "default-encryption", "status"]), "false");
    let v = fx.json(&["volume", "create", "--size", "1"]);
    let v = fx.describe(v["VolumeId"].as_str().unwrap());
    assert_eq!(v["Encrypted"], false, "{v}");
    assert_eq!(v["SizeBytes"], 1u64 << 30, "{v}");
    assert!(v.get("KmsKeyId").is_none(), "{v}");

    assert_eq!(fx.ok(&["ebs", "default-encryption", "enable"]), "true");
    assert_eq!(
        fx.json(&["ebs", "default-encryption", "status"]),
        serde_json::json!({"EbsEncryptionByDefault": true})
    );
    assert_eq!(fx.ok(&["ebs", "default-key", "get"]), alias_arn);
    let v = fx.json(&["volume", "create", "--size", "1"]);
    assert_eq!(v["Encrypted"], true, "{v}");
    let aws_key = fx.aws_ebs_key(EAST);
    assert_eq!(v["KmsKeyId"], aws_key, "{v}");
    // The AWS managed key works only through EBS.
    fx.write("plain.txt", b"hello");
    let out = fx.run(
        EAST,
        &[
            "encrypt",
            "-k",
            "alias/aws/ebs",
            "-o",
            "x.cofre",
            "plain.txt",
        ],
    );
    assert_eq!(out.status.code(), Some(ACCESS), "{out:?}");
    assert!(!fx.path("x.cofre").exists());

    // A customer key as the default.
    let k = fx.ok(&["key", "create"]);
    assert_eq!(fx.ok(&["ebs", "default-key", "set", &k]), key_arn(EAST, &k));
    assert_eq!(fx.ok(&["ebs", "default-key", "get"]), key_arn(EAST, &k));
    let v = fx.json(&["volume", "create", "--size", "1"]);
    assert_eq!(v["KmsKeyId"], key_arn(EAST, &k), "{v}");
    let img = image(19);
    let iv = fx.volume_from(EAST, "disk.img", &img, &[]);
    let iv_id = iv["VolumeId"].as_str().unwrap();
    assert_eq!(iv["Encrypted"], true, "{iv}");
    assert_eq!(iv["KmsKeyId"], key_arn(EAST, &k), "{iv}");
    fx.assert_holds(EAST, iv_id, &img);
    // An explicit key wins.
    let k2 = fx.ok(&["key", "create"]);
    let v = fx.json(&[
        "volume",
        "create",
        "--size",
        "1",
        "--encrypted",
        "--kms-key",
        &k2,
    ]);
    assert_eq!(v["KmsKeyId"], key_arn(EAST, &k2), "{v}");

    // Rotating the key keeps what it protects readable.
    let out = fx.run(EAST, &["key", "rotate", &k]);
    assert!(out.status.success(), "{out:?}");
    fx.assert_holds(EAST, iv_id, &img);
    let after = fx.volume_from(EAST, "disk.img", &img, &[]);
    assert_eq!(after["KmsKeyId"], key_arn(EAST, &k), "{after}");
    fx.assert_holds(EAST, after["VolumeId"].as_str().unwrap(), &img);

    // Restores: a plain snapshot comes back encrypted under the default key, an encrypted
    // one under its own key.
    fx.ok(&["ebs", "default-encryption", "disable"]);
    let plain = fx.volume_from(EAST, "p.img", &img, &[]);
    let psnap = fx.snapshot(EAST, plain["VolumeId"].as_str().unwrap());
    let esnap = fx.snapshot(EAST, iv_id);
    fx.ok(&["ebs", "default-encryption", "enable"]);
    let k3 = fx.ok(&["key", "create"]);
    fx.ok(&["ebs", "default-key", "set", &k3]);
    let r = fx.restore(EAST, &psnap, &[]);
    assert_eq!(r["Encrypted"], true, "{r}");
    assert_eq!(r["KmsKeyId"], key_arn(EAST, &k3), "{r}");
    fx.assert_holds(EAST, r["VolumeId"].as_str().unwrap(), &img);
    let r = fx.restore(EAST, &esnap, &[]);
    assert_eq!(r["KmsKeyId"], key_arn(EAST, &k), "{r}");
    fx.assert_holds(EAST, r["VolumeId"].as_str().unwrap(), &img);

    // Reset: back to alias/aws/ebs.
    assert_eq!(fx.ok(&["ebs", "default-key", "reset"]), alias_arn);
    assert_eq!(
        fx.json(&["ebs", "default-key", "get"]),
        serde_json::json!({"KmsKeyId": alias_arn})
    );
    let v = fx.json(&["volume", "create", "--size", "1"]);
    assert_eq!(v["KmsKeyId"], aws_key, "{v}");

    // Other regions are not affected.
    assert_eq!(
        fx.ok_in(WEST, &["ebs", "default-encryption", "status"]),
        "false"
    );
    let w = fx.json_in(WEST, &["volume", "create", "--size", "1"]);
    assert_eq!(w["Encrypted"], false, "{w}");

    // Disabled again: plain volumes; --kms-key alone is refused.
    assert_eq!(fx.ok(&["ebs", "default-encryption", "disable"]), "false");
    let v = fx.json(&["volume", "create", "--size", "1"]);
    assert_eq!(v["Encrypted"], false, "{v}");
    fx.fail(
        &["volume", "create", "--size", "1", "--kms-key", &k],
        USAGE,
        &["InvalidParameterDependency"],
    );
}

// ── 9. gc after a crash ───────────────────────────────────────────────────────────────────

#[test]
fn gc_removes_what_a_crash_left_and_nothing_else() {
    let fx = Fx::new();
    let img = image(20);
    let v = fx.volume_from(EAST, "disk.img", &img, &["--encrypted"]);
    let vol = v["VolumeId"].as_str().unwrap();
    let snap = fx.snapshot(EAST, vol);
    let p = fx.volume_from(EAST, "plain.img", &image(21), &[]);
    let ebs = fx.ebs(EAST);
    let live_blocks = blocks_in(&ebs);
    let live_maps = maps_in(&ebs);

    // What an interrupted command leaves: a block and a map no record names, temporary files.
    let sub = ebs.join("blocks").join("ab");
    fs::create_dir_all(&sub).unwrap();
    let orphan = sub.join(format!("ab{}", "0".repeat(62)));
    fs::write(&orphan, random(200, 4096)).unwrap();
    let tmp = sub.join(".tmp-0123456789abcdef");
    fs::write(&tmp, random(201, 100)).unwrap();
    let msub = ebs.join("maps").join("cd");
    fs::create_dir_all(&msub).unwrap();
    let orphan_map = msub.join(format!("cd{}", "1".repeat(62)));
    fs::write(&orphan_map, b"COFREMAP").unwrap();
    let mtmp = msub.join(".tmp-fedcba9876543210");
    fs::write(&mtmp, b"partial").unwrap();

    let report = fx.verify(EAST);
    assert_eq!(report["Orphans"], 2, "{report}");
    assert_eq!(report["TemporaryFiles"], 2, "{report}");
    assert_eq!(report["Volumes"], 2, "{report}");
    assert_eq!(report["Snapshots"], 1, "{report}");
    let text = fx.ok(&["verify"]);
    assert!(
        text.contains("2 orphans, 2 temporary files") && text.contains("cofre gc"),
        "{text}"
    );

    let gc = fx.json(&["gc"]);
    assert_eq!(gc["BlocksRemoved"], 1, "{gc}");
    assert_eq!(gc["MapsRemoved"], 1, "{gc}");
    assert_eq!(gc["TemporaryFilesRemoved"], 2, "{gc}");
    for f in [&orphan, &tmp, &orphan_map, &mtmp] {
        assert!(!f.exists(), "{} survived gc", f.display());
    }
    assert_eq!(blocks_in(&ebs), live_blocks, "gc touched a live block");
    assert_eq!(maps_in(&ebs), live_maps, "gc touched a live map");
    let report = fx.verify(EAST);
    assert_eq!(report["Orphans"], 0, "{report}");
    assert_eq!(report["TemporaryFiles"], 0, "{report}");

    fx.assert_holds(EAST, vol, &img);
    fx.assert_holds(EAST, p["VolumeId"].as_str().unwrap(), &image(21));
    let r = fx.restore(EAST, &snap, &[]);
    fx.assert_holds(EAST, r["VolumeId"].as_str().unwrap(), &img);
    // A second gc finds nothing.
    let gc = fx.json(&["gc"]);
    assert_eq!(
        gc["BlocksRemoved"].as_u64().unwrap()
            + gc["MapsRemoved"].as_u64().unwrap()
            + gc["TemporaryFilesRemoved"].as_u64().unwrap(),
        0,
        "{gc}"
    );
}

/// Eight `volume write`s to one volume at once, each to its own range: the writes are
/// serialized, so every one of them lands and none undoes another.
#[test]
fn concurrent_writes_to_one_volume_are_serialized() {
    let fx = Fx::new();
    let v = fx.volume_from(EAST, "disk.img", &vec![0u8; 8 * BLOCK], &["--encrypted"]);
    let vol = v["VolumeId"].as_str().unwrap().to_owned();
    let mut want = vec![0u8; 8 * BLOCK];
    let mut children = Vec::new();
    for i in 0..8usize {
        // Unaligned ranges inside block i, so each write reads, changes and seals its block.
        let data = vec![i as u8 + 1; 1000];
        let off = i * BLOCK + 77;
        want[off..off + data.len()].copy_from_slice(&data);
        let name = format!("part{i}");
        fx.write(&name, &data);
        let off = off.to_string();
        let file = fx.path(&name);
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cofre"));
        for v in ENV {
            c.env_remove(v);
        }
        c.arg("--home")
            .arg(fx.home())
            .args([
                "--region", EAST, "--quiet", "volume", "write", &vol, "--offset", &off,
            ])
            .arg(&file);
        children.push(c.spawn().unwrap());
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    fx.assert_holds(EAST, &vol, &want);
    let out = fx.run(EAST, &["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
