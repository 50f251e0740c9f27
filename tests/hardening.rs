//! Hardening (issue 13), end to end: a damaged store or home is reported as damage and never
//! taken for an empty one, every file of the home is private, one damaged key record stops only
//! the requests that need it, and interrupted writers leave nothing behind for long.
//!
//! Every test runs the built binary against its own temporary home, with `--quiet`.

use assert_cmd::Command;
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

/// Variables that choose cofre's home, region, clock or threads: removed so the environment the
/// tests run in can't leak in.
const ENV: [&str; 9] = [
    "RAYON_NUM_THREADS",
    "RUST_BACKTRACE",
    "COFRE_HOME",
    "XDG_DATA_HOME",
    "HOME",
    "COFRE_REGION",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "COFRE_NOW",
];

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
