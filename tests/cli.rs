//! The command line, end to end: runs the built `cofre` binary against temporary homes and
//! checks every command and every error of the core issue, with its exit code (0 ok, 1 failure,
//! 2 usage, 3 access / not found / disabled / region / context, 4 integrity) and its one-line
//! `cofre: …` message on stderr.

mod common;

use assert_cmd::prelude::*;
use assert_cmd::Command;
use common::ENV;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

// ── Helpers ───────────────────────────────────────────────────────────────────────────────

const ACCOUNT: &str = "111122223333";
const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";
/// The chunk size every data test uses (`--chunk-size 4KiB`), and the GCM tag after each chunk.
const CHUNK: usize = 4096;
const TAG: usize = 16;
/// A well-formed key id no home has.
const MISSING: &str = "00000000-0000-4000-8000-000000000000";

const FAILURE: i32 = 1;
const USAGE: i32 = 2;
const ACCESS: i32 = 3;
const INTEGRITY: i32 = 4;

/// The built binary with a clean environment and no home chosen.
fn std_cofre() -> std::process::Command {
    let mut c = std::process::Command::cargo_bin("cofre").unwrap();
    for v in ENV {
        c.env_remove(v);
    }
    c.stdin(Stdio::null());
    c
}

fn bare() -> Command {
    Command::from_std(std_cofre())
}

/// A cofre run: an assert_cmd [`Command`], or a std one when stdin must be a file (assert_cmd
/// always gives the child a pipe).
trait Run: std::fmt::Debug {
    fn output(&mut self) -> Output;
}

impl Run for Command {
    fn output(&mut self) -> Output {
        Command::output(self).unwrap()
    }
}

impl Run for std::process::Command {
    fn output(&mut self) -> Output {
        std::process::Command::output(self).unwrap()
    }
}

/// Runs `cmd` and checks its exit code.
fn run(cmd: &mut dyn Run, code: i32) -> Output {
    let out = cmd.output();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{cmd:?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd`, expects success and a silent stderr, and returns stdout.
fn ok(cmd: &mut dyn Run) -> Vec<u8> {
    let out = run(cmd, 0);
    assert!(
        out.stderr.is_empty(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Checks stderr is one line, `cofre: …`, containing every needle.
fn assert_error(out: &Output, needles: &[&str]) {
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.starts_with("cofre: ") && e.ends_with('\n') && e.lines().count() == 1,
        "stderr is not one `cofre: ` line: {e:?}"
    );
    for n in needles {
        assert!(e.contains(n), "stderr {e:?} does not mention {n:?}");
    }
}

/// Checks `s` is a lowercase random (version 4) UUID.
fn assert_uuid(s: &str) {
    let lens: Vec<usize> = s.split('-').map(str::len).collect();
    assert!(
        lens == [8, 4, 4, 4, 12]
            && s.bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-'))
            && s.as_bytes()[14] == b'4',
        "{s:?} is not a key id"
    );
}

fn key_arn(region: &str, id: &str) -> String {
    format!("arn:aws:kms:{region}:{ACCOUNT}:key/{id}")
}

/// Checks a KMS-shaped `KeyMetadata` object.
fn assert_metadata(m: &Value, region: &str, id: &str, description: &str, enabled: bool) {
    assert_eq!(m["KeyId"], id, "{m}");
    assert_eq!(m["Arn"], key_arn(region, id), "{m}");
    assert!(
        m["CreationDate"].as_str().is_some_and(|d| d.ends_with('Z')),
        "{m}"
    );
    assert_eq!(m["Enabled"], enabled, "{m}");
    assert_eq!(
        m["KeyState"],
        if enabled { "Enabled" } else { "Disabled" },
        "{m}"
    );
    assert_eq!(m["KeyManager"], "CUSTOMER", "{m}");
    assert_eq!(m["KeySpec"], "SYMMETRIC_DEFAULT", "{m}");
    assert_eq!(m["KeyUsage"], "ENCRYPT_DECRYPT", "{m}");
    assert_eq!(m["Origin"], "AWS_KMS", "{m}");
    assert_eq!(m["MultiRegion"], false, "{m}");
    assert_eq!(m["Description"], description, "{m}");
}

/// `n` pseudo-random bytes, the same on every call: no two chunks alike.
fn data(n: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// How a data command gets its input and gives its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// The file `in` as an argument, or `-o out`.
    File,
    /// A pipe on stdin, or stdout.
    Pipe,
    /// Input only: stdin redirected from the file `in` (`cofre … < in`).
    Redirect,
}

/// The (input, output) combinations; the engine takes a different path for each.
const VIAS: [(Via, Via); 6] = [
    (Via::File, Via::File),
    (Via::Pipe, Via::Pipe),
    (Via::File, Via::Pipe),
    (Via::Pipe, Via::File),
    (Via::Redirect, Via::File),
    (Via::Redirect, Via::Pipe),
];

/// A temporary folder holding the home (`home`, made by cofre on first use) and the test's
/// files. Commands run inside the folder, so files are named relative to it.
struct Fx {
    dir: TempDir,
}

impl Fx {
    /// A folder with no home yet.
    fn new() -> Fx {
        Fx {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A folder whose home has account [`ACCOUNT`].
    fn init() -> Fx {
        let fx = Fx::new();
        fx.ok(&["init", "--account", ACCOUNT]);
        fx
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn home(&self) -> PathBuf {
        self.path("home")
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        fs::write(self.path(name), bytes).unwrap();
    }

    fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.path(name)).unwrap()
    }

    /// `cofre --home HOME ARGS…`, run in the folder.
    fn std_cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = std_cofre();
        c.current_dir(self.dir.path())
            .arg("--home")
            .arg(self.home())
            .args(args);
        c
    }

    fn cmd(&self, args: &[&str]) -> Command {
        Command::from_std(self.std_cmd(args))
    }

    fn bytes(&self, args: &[&str]) -> Vec<u8> {
        ok(&mut self.cmd(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        String::from_utf8(self.bytes(args)).unwrap()
    }

    /// Runs with `--output json` and parses stdout.
    fn json(&self, args: &[&str]) -> Value {
        let args = [args, &["--output", "json"]].concat();
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// Expects exit `code`, nothing on stdout and one error line mentioning every needle.
    fn fail(&self, args: &[&str], code: i32, needles: &[&str]) {
        let out = run(&mut self.cmd(args), code);
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
        assert_error(&out, needles);
    }

    /// `cofre key create ARGS…`: checks stdout is the key id alone and returns it.
    fn key(&self, args: &[&str]) -> String {
        let out = self.ok(&[&["key", "create"], args].concat());
        let id = out.strip_suffix('\n').expect("a line");
        assert_uuid(id);
        id.to_owned()
    }

    /// Writes `plain` to `name` and encrypts it with 4 KiB chunks into `name.cofre`.
    fn seal(&self, name: &str, plain: &[u8], args: &[&str]) -> String {
        self.write(name, plain);
        let sealed = format!("{name}.cofre");
        let args = [
            &["encrypt", "--chunk-size", "4KiB", "-o", &sealed, name],
            args,
        ]
        .concat();
        assert!(self.bytes(&args).is_empty());
        sealed
    }

    /// `cofre inspect --output json NAME`.
    fn inspect(&self, name: &str) -> Value {
        self.json(&["inspect", name])
    }

    fn header_len(&self, name: &str) -> usize {
        self.inspect(name)["HeaderLength"].as_u64().unwrap() as usize
    }

    fn wrapped_arns(&self, name: &str) -> Vec<String> {
        let info = self.inspect(name);
        let keys = info["WrappedKeys"].as_array().unwrap();
        keys.iter()
            .map(|w| w["KeyArn"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `cofre ARGS…` reading `input` through `from` and writing through `to`.
    fn data_cmd(&self, args: &[&str], input: &[u8], from: Via, to: Via) -> Box<dyn Run> {
        let mut c = self.std_cmd(args);
        if to == Via::File {
            let _ = fs::remove_file(self.path("out"));
            c.args(["-o", "out"]);
        }
        if from == Via::Pipe {
            let mut c = Command::from_std(c);
            c.write_stdin(input);
            return Box::new(c);
        }
        self.write("in", input);
        match from {
            Via::Redirect => c.stdin(fs::File::open(self.path("in")).unwrap()),
            _ => c.arg("in"),
        };
        Box::new(c)
    }

    /// Like [`Fx::data_cmd`], expecting success; returns what was written.
    fn through(&self, args: &[&str], input: &[u8], from: Via, to: Via) -> Vec<u8> {
        let stdout = ok(&mut *self.data_cmd(args, input, from, to));
        if to == Via::File {
            assert!(stdout.is_empty());
            return self.read("out");
        }
        stdout
    }

    /// Checks nothing is at `name` and no temporary file was left in the folder.
    fn assert_gone(&self, name: &str) {
        assert!(!self.path(name).exists(), "{name} was left behind");
        self.assert_no_tmp();
    }

    /// cofre's temporary files (`.cofre-tmp-*`) in the folder.
    fn tmp_files(&self) -> Vec<String> {
        fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".cofre-tmp-"))
            .collect()
    }

    fn assert_no_tmp(&self) {
        let left = self.tmp_files();
        assert!(left.is_empty(), "{left:?} left behind");
    }

    /// The key ids `key list --output json` shows.
    fn key_ids(&self) -> BTreeSet<String> {
        let list = self.json(&["key", "list"]);
        let keys = list["Keys"].as_array().unwrap();
        keys.iter()
            .map(|k| k["KeyId"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Flips one bit of byte `at`.
fn flipped(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] ^= 1;
    b
}

// ── Home, account, region ─────────────────────────────────────────────────────────────────

#[test]
fn init_chooses_the_account_and_refuses_bad_ids() {
    let fx = Fx::new();
    fx.fail(
        &["init", "--account", "12345"],
        USAGE,
        &["invalid account id", "12 digits"],
    );
    fx.fail(
        &["init", "--account", "12345678901a"],
        USAGE,
        &["invalid account id"],
    );
    assert!(!fx.home().exists(), "a refused init created the home");

    let out = fx.ok(&["init", "--account", ACCOUNT]);
    assert!(out.contains("created account 111122223333"), "{out}");
    let out = fx.ok(&["init"]);
    assert!(out.contains("uses account 111122223333"), "{out}");
    let j = fx.json(&["init", "--account", ACCOUNT]);
    assert_eq!(j["AccountId"], ACCOUNT);
    assert_eq!(j["Created"], false);
    fx.fail(
        &["init", "--account", "999988887777"],
        USAGE,
        &["belongs to account 111122223333"],
    );

    let id = fx.key(&[]);
    assert_eq!(
        fx.json(&["key", "describe", &id])["KeyMetadata"]["Arn"],
        key_arn(EAST, &id)
    );
}

#[test]
fn home_is_created_on_first_use_with_a_private_domain_key() {
    let fx = Fx::new();
    assert!(!fx.home().exists());
    assert_eq!(fx.ok(&["key", "list"]), "");
    let key = fs::metadata(fx.home().join("domain.key")).unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    let config: Value =
        serde_json::from_slice(&fs::read(fx.home().join("cofre.json")).unwrap()).unwrap();
    let account = config["AccountId"].as_str().unwrap();
    assert!(
        account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()),
        "{account}"
    );

    let id = fx.key(&[]);
    let arn = format!("arn:aws:kms:{EAST}:{account}:key/{id}");
    assert_eq!(
        fx.json(&["key", "describe", &id])["KeyMetadata"]["Arn"],
        arn
    );
}

#[test]
fn home_comes_from_the_flag_then_cofre_home_then_xdg_then_home() {
    let fx = Fx::new();
    let (flag, env, xdg, user) = (
        fx.path("flag"),
        fx.path("env"),
        fx.path("xdg"),
        fx.path("user"),
    );
    let list = |home: &Path| -> String {
        String::from_utf8(ok(bare().arg("--home").arg(home).args(["key", "list"]))).unwrap()
    };
    let create = |cmd: &mut Command| -> String {
        let id = String::from_utf8(ok(cmd.args(["key", "create"]))).unwrap();
        id.trim_end().to_owned()
    };

    let id = create(bare().env("COFRE_HOME", &env).arg("--home").arg(&flag));
    assert!(list(&flag).contains(&id));
    assert!(
        !env.exists(),
        "COFRE_HOME was used although --home was given"
    );

    let id = create(bare().env("COFRE_HOME", &env).env("XDG_DATA_HOME", &xdg));
    assert!(list(&env).contains(&id));
    assert!(!xdg.exists());

    let id = create(bare().env("XDG_DATA_HOME", &xdg).env("HOME", &user));
    assert!(list(&xdg.join("cofre")).contains(&id));
    assert!(!user.exists());

    let id = create(bare().env("HOME", &user));
    assert!(list(&user.join(".local/share/cofre")).contains(&id));

    let out = run(bare().args(["key", "list"]), USAGE);
    assert_error(&out, &["no home folder", "--home", "COFRE_HOME"]);
}

#[test]
fn region_comes_from_the_flag_then_the_environment_then_us_east_1() {
    let fx = Fx::init();
    let vars = [
        ("COFRE_REGION", "eu-west-1"),
        ("AWS_REGION", "ap-southeast-2"),
        ("AWS_DEFAULT_REGION", "eu-central-1"),
    ];
    let region_of = |extra: &[&str], vars: &[(&str, &str)]| -> String {
        let mut cmd = fx.cmd(&[&["key", "create", "--output", "json"], extra].concat());
        cmd.envs(vars.iter().copied());
        let j: Value = serde_json::from_slice(&ok(&mut cmd)).unwrap();
        let arn = j["KeyMetadata"]["Arn"].as_str().unwrap().to_owned();
        arn.split(':').nth(3).unwrap().to_owned()
    };
    assert_eq!(region_of(&["--region", "sa-east-1"], &vars), "sa-east-1");
    for i in 0..vars.len() {
        assert_eq!(
            region_of(&[], &vars[i..]),
            vars[i].1,
            "with {:?}",
            &vars[i..]
        );
    }
    assert_eq!(region_of(&[], &[]), EAST);

    for bad in ["US-East-1", "mars", "us-east", "../x-y-1"] {
        fx.fail(
            &["--region", bad, "key", "list"],
            USAGE,
            &["invalid region", bad],
        );
    }
    let out = run(
        fx.cmd(&["key", "list"]).env("COFRE_REGION", "nowhere"),
        USAGE,
    );
    assert_error(&out, &["invalid region", "nowhere"]);
}

// ── Keys ──────────────────────────────────────────────────────────────────────────────────

#[test]
fn key_create_prints_the_id_and_json_is_kms_shaped() {
    let fx = Fx::init();
    let id = fx.key(&[
        "--description",
        "backups",
        "--tag",
        "team=storage",
        "--tag",
        "env=prod",
    ]);
    let record: Value = serde_json::from_slice(
        &fs::read(fx.home().join(format!("regions/{EAST}/keys/{id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        record["Tags"],
        serde_json::json!([
            {"TagKey": "team", "TagValue": "storage"},
            {"TagKey": "env", "TagValue": "prod"}
        ])
    );

    let created = fx.json(&["key", "create", "--description", "json one"]);
    let m = &created["KeyMetadata"];
    let id2 = m["KeyId"].as_str().unwrap().to_owned();
    assert_uuid(&id2);
    assert_metadata(m, EAST, &id2, "json one", true);

    let mut cmd = fx.cmd(&["key", "create", "--output", "json"]);
    cmd.env("COFRE_NOW", "2028-01-01T00:00:00Z");
    let j: Value = serde_json::from_slice(&ok(&mut cmd)).unwrap();
    assert_eq!(j["KeyMetadata"]["CreationDate"], "2028-01-01T00:00:00Z");
    let id3 = j["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();

    let list = fx.json(&["key", "list"]);
    let keys = list["Keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    for k in keys {
        let kid = k["KeyId"].as_str().unwrap();
        let desc = if kid == id {
            "backups"
        } else if kid == id2 {
            "json one"
        } else {
            ""
        };
        // ListKeys gives ids and ARNs; DescribeKey the rest.
        assert_eq!(k["KeyArn"], key_arn(EAST, kid).as_str());
        let m = &fx.json(&["key", "describe", kid])["KeyMetadata"];
        assert_metadata(m, EAST, kid, desc, true);
    }
    assert_eq!(fx.key_ids(), BTreeSet::from([id.clone(), id2, id3]));
    let text = fx.ok(&["key", "list"]);
    assert_eq!(text.lines().count(), 3);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&id) && l.contains("Enabled") && l.ends_with("backups")),
        "{text}"
    );

    fx.fail(
        &["key", "create", "--tag", "novalue"],
        USAGE,
        &["bad tag", "KEY=VALUE"],
    );
    fx.fail(
        &["key", "create", "--tag", "aws:owner=me"],
        USAGE,
        &["TagException", "aws:"],
    );
    assert_eq!(fx.key_ids().len(), 3, "a refused create made a key");
}

#[test]
fn key_metadata_names_the_account_as_kms_does() {
    let fx = Fx::init();
    let m = &fx.json(&["key", "create"])["KeyMetadata"];
    assert_eq!(m["AWSAccountId"], ACCOUNT, "{m}");
}

#[test]
fn key_describe_takes_an_id_arn_alias_or_alias_arn() {
    let fx = Fx::init();
    let id = fx.key(&["--alias", "alias/backups", "--description", "nightly"]);
    let alias_arn = format!("arn:aws:kms:{EAST}:{ACCOUNT}:alias/backups");
    for r in [
        id.clone(),
        key_arn(EAST, &id),
        "alias/backups".into(),
        alias_arn,
    ] {
        assert_metadata(
            &fx.json(&["key", "describe", &r])["KeyMetadata"],
            EAST,
            &id,
            "nightly",
            true,
        );
    }
    let text = fx.ok(&["key", "describe", "alias/backups"]);
    for (field, value) in [
        ("KeyId", id.as_str()),
        ("Description", "nightly"),
        ("KeyState", "Enabled"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(field) && l.trim_end().ends_with(value)),
            "{field} {value} missing from:\n{text}"
        );
    }

    fx.fail(
        &["key", "describe", MISSING],
        ACCESS,
        &["NotFoundException", MISSING, "does not exist in us-east-1"],
    );
    fx.fail(
        &["key", "describe", "nope"],
        ACCESS,
        &["NotFoundException", "nope"],
    );
    fx.fail(
        &["key", "describe", "alias/none"],
        ACCESS,
        &["NotFoundException", "alias/none"],
    );
    fx.fail(
        &["key", "describe", "arn:aws:s3:::bucket"],
        USAGE,
        &["InvalidArnException"],
    );
    fx.fail(
        &["--region", WEST, "key", "describe", &id],
        ACCESS,
        &[
            "NotFoundException",
            "region us-east-1",
            "--region us-east-1",
        ],
    );
}

#[test]
fn a_disabled_key_refuses_to_encrypt_and_decrypt_until_enabled() {
    let fx = Fx::init();
    let id = fx.key(&["--alias", "alias/k"]);
    let plain = data(3 * CHUNK);
    let sealed = fx.seal("p", &plain, &["-k", &id]);

    assert_eq!(fx.ok(&["key", "disable", &id]), format!("{id} Disabled\n"));
    assert_metadata(
        &fx.json(&["key", "describe", &id])["KeyMetadata"],
        EAST,
        &id,
        "",
        false,
    );
    fx.fail(
        &["encrypt", "-k", "alias/k", "-o", "out", "p"],
        ACCESS,
        &["DisabledException", &id, "cofre key enable"],
    );
    fx.assert_gone("out");
    fx.fail(
        &["decrypt", "-o", "out", &sealed],
        ACCESS,
        &["DisabledException", &id, "cofre key enable"],
    );
    fx.assert_gone("out");
    let out = run(fx.cmd(&["decrypt"]).write_stdin(fx.read(&sealed)), ACCESS);
    assert!(out.stdout.is_empty());
    assert_error(&out, &["DisabledException"]);

    // EnableKey answers nothing (the AWS CLI prints nothing); the key is enabled.
    let out = fx.bytes(&["key", "enable", &key_arn(EAST, &id), "--output", "json"]);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    let j = fx.json(&["key", "describe", &id]);
    assert_metadata(&j["KeyMetadata"], EAST, &id, "", true);
    assert_eq!(fx.ok(&["key", "enable", &id]), format!("{id} Enabled\n"));
    assert_eq!(fx.bytes(&["decrypt", &sealed]), plain);
    fx.seal("p", &plain, &["-k", "alias/k", "--force"]);
    assert_eq!(fx.bytes(&["decrypt", &sealed]), plain);

    // KMS's DisableKey takes a key id or ARN only: the CLI looks the alias up first.
    fx.ok(&["key", "disable", "alias/k"]);
    assert_eq!(
        fx.json(&["key", "describe", &id])["KeyMetadata"]["KeyState"],
        "Disabled"
    );
    fx.fail(&["key", "enable", MISSING], ACCESS, &["NotFoundException"]);
}

// ── Aliases ───────────────────────────────────────────────────────────────────────────────

#[test]
fn aliases_are_created_updated_listed_and_deleted() {
    let fx = Fx::init();
    let (k1, k2) = (fx.key(&[]), fx.key(&[]));
    assert_eq!(
        fx.ok(&["alias", "create", "alias/app", &k1]),
        format!("alias/app -> {k1}\n")
    );
    let list = fx.json(&["alias", "list"]);
    let a = &list["Aliases"][0];
    assert_eq!(a["AliasName"], "alias/app");
    assert_eq!(
        a["AliasArn"],
        format!("arn:aws:kms:{EAST}:{ACCOUNT}:alias/app")
    );
    assert_eq!(a["TargetKeyId"], k1.as_str());
    assert!(fx
        .ok(&["key", "list"])
        .lines()
        .any(|l| l.starts_with(&k1) && l.contains("alias/app")));

    let sealed = fx.seal("p", b"hello", &["-k", "alias/app"]);
    assert_eq!(fx.wrapped_arns(&sealed), [key_arn(EAST, &k1)]);

    // UpdateAlias answers nothing; the alias points at the new key.
    let out = fx.bytes(&[
        "alias",
        "update",
        "alias/app",
        &key_arn(EAST, &k2),
        "--output",
        "json",
    ]);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    let j = fx.json(&["alias", "list"]);
    assert_eq!(j["Aliases"][0]["TargetKeyId"], k2.as_str());
    let text = fx.ok(&["alias", "list"]);
    assert!(
        text.starts_with("alias/app") && text.trim_end().ends_with(&k2),
        "{text}"
    );
    let sealed = fx.seal("q", b"hello", &["-k", "alias/app"]);
    assert_eq!(fx.wrapped_arns(&sealed), [key_arn(EAST, &k2)]);

    assert_eq!(fx.ok(&["alias", "delete", "alias/app"]), "");
    assert_eq!(fx.ok(&["alias", "list"]), "");
    assert_eq!(
        fx.key_ids(),
        BTreeSet::from([k1.clone(), k2]),
        "deleting an alias removed a key"
    );
    fx.fail(
        &["alias", "delete", "alias/app"],
        ACCESS,
        &["NotFoundException", "alias/app"],
    );
    fx.fail(
        &["alias", "update", "alias/app", &k1],
        ACCESS,
        &["NotFoundException", "alias/app"],
    );
    fx.fail(
        &["alias", "create", "alias/x", MISSING],
        ACCESS,
        &["NotFoundException"],
    );
    fx.fail(
        &["encrypt", "-k", "alias/app", "-o", "out", "p"],
        ACCESS,
        &["NotFoundException", "alias/app"],
    );
    fx.assert_gone("out");
}

#[test]
fn alias_names_follow_the_kms_rules_and_are_unique_per_region() {
    let fx = Fx::init();
    let k = fx.key(&[]);
    let too_long = format!("alias/{}", "a".repeat(251));
    for bad in [
        "backups",
        "alias/",
        "alias/aws/ebs",
        "alias/sp ace",
        "alias/é",
        "alias/a*b",
        &too_long,
    ] {
        fx.fail(
            &["alias", "create", bad, &k],
            USAGE,
            &["InvalidAliasNameException"],
        );
        fx.fail(
            &["key", "create", "--alias", bad],
            USAGE,
            &["InvalidAliasNameException"],
        );
    }
    fx.fail(&["alias", "create", "backups", &k], USAGE, &["alias/"]);
    fx.fail(
        &["alias", "create", "alias/aws/ebs", &k],
        USAGE,
        &["reserved"],
    );
    fx.fail(&["alias", "create", &too_long, &k], USAGE, &["256"]);
    let longest = format!("alias/{}", "a".repeat(250));
    fx.ok(&["alias", "create", &longest, &k]);
    fx.ok(&["alias", "create", "alias/team/x_y:z-1", &k]);

    fx.ok(&["alias", "create", "alias/dup", &k]);
    fx.fail(
        &["alias", "create", "alias/dup", &k],
        USAGE,
        &["AlreadyExistsException", "alias/dup"],
    );
    fx.fail(
        &["key", "create", "--alias", "alias/dup"],
        USAGE,
        &["AlreadyExistsException", "alias/dup"],
    );
    assert_eq!(
        fx.key_ids(),
        BTreeSet::from([k.clone()]),
        "a refused create made a key"
    );

    let w = fx.key(&["--region", WEST, "--alias", "alias/dup"]);
    let in_region = |region: &str| fx.json(&["--region", region, "key", "describe", "alias/dup"]);
    assert_eq!(in_region(WEST)["KeyMetadata"]["KeyId"], w.as_str());
    assert_eq!(in_region(EAST)["KeyMetadata"]["KeyId"], k.as_str());
    // An alias targets keys of its own region only.
    fx.fail(
        &["--region", WEST, "alias", "update", "alias/dup", &k],
        ACCESS,
        &["NotFoundException", "us-east-1"],
    );
}

// ── Encrypt and decrypt ───────────────────────────────────────────────────────────────────

#[test]
fn round_trips_through_files_and_pipes_at_chunk_boundaries() {
    let fx = Fx::init();
    let k = fx.key(&[]);
    let encrypt = ["encrypt", "-k", k.as_str(), "--chunk-size", "4KiB"];
    for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7] {
        let plain = data(n);
        for (i, &(from, to)) in VIAS.iter().enumerate() {
            let sealed = fx.through(&encrypt, &plain, from, to);
            fx.write("sealed", &sealed);
            let info = fx.inspect("sealed");
            let chunks = n / CHUNK + 1;
            assert_eq!(info["PayloadLength"], n, "{info}");
            assert_eq!(info["ChunkCount"], chunks, "{info}");
            assert_eq!(info["ChunkSize"], CHUNK, "{info}");
            let header = info["HeaderLength"].as_u64().unwrap() as usize;
            assert_eq!(
                sealed.len(),
                header + n + chunks * TAG,
                "size {n} {from:?} -> {to:?}"
            );
            // Decrypt through another combination than the one that encrypted.
            let (dfrom, dto) = VIAS[(i + 1) % VIAS.len()];
            let opened = fx.through(&["decrypt"], &sealed, dfrom, dto);
            assert!(
                opened == plain,
                "size {n}: encrypted {from:?} -> {to:?}, decrypted {dfrom:?} -> {dto:?}"
            );
        }
    }
}

#[test]
fn chunk_size_must_be_a_power_of_two_from_4kib_to_64mib() {
    let fx = Fx::init();
    let k = fx.key(&[]);
    fx.write("p", b"x");
    for bad in ["5000", "2KiB", "128MiB"] {
        fx.fail(
            &["encrypt", "-k", &k, "--chunk-size", bad, "-o", "out", "p"],
            USAGE,
            &["chunk size"],
        );
    }
    fx.assert_gone("out");
    fx.ok(&[
        "encrypt",
        "-k",
        &k,
        "--chunk-size",
        "64MiB",
        "-o",
        "out",
        "p",
    ]);
    assert_eq!(fx.inspect("out")["ChunkSize"], 64 << 20);
}

#[test]
fn any_one_of_several_keys_decrypts() {
    let fx = Fx::init();
    let (k1, k2) = (fx.key(&[]), fx.key(&["--alias", "alias/second"]));
    let plain = data(2 * CHUNK + 5);
    let sealed = fx.seal("p", &plain, &["-k", &k1, "-k", "alias/second"]);
    assert_eq!(
        fx.wrapped_arns(&sealed),
        [key_arn(EAST, &k1), key_arn(EAST, &k2)]
    );

    fx.ok(&["key", "disable", &k1]);
    assert_eq!(fx.bytes(&["decrypt", &sealed]), plain);
    fx.ok(&["key", "enable", &k1]);
    fx.ok(&["key", "disable", &k2]);
    assert_eq!(fx.bytes(&["decrypt", &sealed]), plain);
    fx.ok(&["key", "disable", &k1]);
    fx.fail(
        &["decrypt", "-o", "out", &sealed],
        ACCESS,
        &["DisabledException"],
    );
    fx.assert_gone("out");
}

#[test]
fn decrypt_requires_every_context_pair_given() {
    let fx = Fx::init();
    let k = fx.key(&[]);
    let plain = data(CHUNK + 1);
    let sealed = fx.seal(
        "p",
        &plain,
        &["-k", &k, "-c", "purpose=backup", "-c", "host=db1"],
    );
    assert_eq!(
        fx.inspect(&sealed)["EncryptionContext"],
        serde_json::json!({"host": "db1", "purpose": "backup"})
    );
    let input = fx.read(&sealed);
    for good in [
        &[][..],
        &["-c", "purpose=backup"],
        &["-c", "host=db1", "-c", "purpose=backup"],
    ] {
        let args = [&["decrypt"], good].concat();
        assert_eq!(
            fx.through(&args, &input, Via::File, Via::File),
            plain,
            "{good:?}"
        );
        assert_eq!(
            fx.through(&args, &input, Via::Pipe, Via::Pipe),
            plain,
            "{good:?}"
        );
    }
    for (bad, needle) in [
        (&["-c", "purpose=restore"][..], "purpose"),
        (&["-c", "owner=me"], "owner"),
        (&["-c", "purpose=backup", "-c", "owner=me"], "owner"),
        (&["-c", "purpose="], "purpose"),
    ] {
        for (from, to) in VIAS {
            let out = run(
                &mut *fx.data_cmd(&[&["decrypt"], bad].concat(), &input, from, to),
                ACCESS,
            );
            assert!(out.stdout.is_empty(), "{bad:?}");
            assert_error(&out, &["encryption context mismatch", needle]);
            fx.assert_gone("out");
        }
    }
    fx.fail(
        &["decrypt", "-c", "novalue", &sealed],
        USAGE,
        &["KEY=VALUE"],
    );
    fx.fail(
        &["decrypt", "-c", "a=1", "-c", "a=2", &sealed],
        USAGE,
        &["given twice"],
    );
    fx.fail(
        &["encrypt", "-k", &k, "-c", "=v", "-o", "out", "p"],
        USAGE,
        &["must not be empty"],
    );
    fx.assert_gone("out");
}

#[test]
fn keys_are_regional() {
    let fx = Fx::init();
    let east = fx.key(&["--alias", "alias/east-only"]);
    fx.key(&["--region", WEST]);
    fx.write("p", b"regional");
    for k in [key_arn(EAST, &east), east.clone()] {
        fx.fail(
            &["--region", WEST, "encrypt", "-k", &k, "-o", "out", "p"],
            ACCESS,
            &[
                "NotFoundException",
                "region us-east-1",
                "eu-west-1",
                "--region us-east-1",
            ],
        );
        fx.assert_gone("out");
    }
    fx.fail(
        &[
            "--region",
            WEST,
            "encrypt",
            "-k",
            "alias/east-only",
            "-o",
            "out",
            "p",
        ],
        ACCESS,
        &["alias/east-only", "eu-west-1"],
    );

    let sealed = fx.seal("p", b"regional", &["-k", &east]);
    let input = fx.read(&sealed);
    for (from, to) in VIAS {
        let out = run(
            &mut *fx.data_cmd(&["--region", WEST, "decrypt"], &input, from, to),
            ACCESS,
        );
        assert!(out.stdout.is_empty());
        assert_error(&out, &["us-east-1", "--region us-east-1"]);
        fx.assert_gone("out");
    }
    assert_eq!(
        fx.bytes(&["--region", EAST, "decrypt", &sealed]),
        b"regional"
    );
}

#[test]
fn an_unknown_key_is_not_found() {
    let fx = Fx::init();
    fx.write("p", b"x");
    fx.fail(
        &["encrypt", "-k", MISSING, "-o", "out", "p"],
        ACCESS,
        &["NotFoundException", MISSING],
    );
    fx.fail(
        &["encrypt", "-k", "not-a-key", "-o", "out", "p"],
        ACCESS,
        &["NotFoundException", "not-a-key"],
    );
    fx.assert_gone("out");

    // A file whose key this home never had.
    let other = Fx::init();
    let k = other.key(&[]);
    let sealed = other.seal("p", b"x", &["-k", &k]);
    fs::copy(other.path(&sealed), fx.path("foreign.cofre")).unwrap();
    fx.fail(
        &["decrypt", "-o", "out", "foreign.cofre"],
        ACCESS,
        &["NotFoundException", &k],
    );
    fx.assert_gone("out");
}

#[test]
fn io_failures_exit_1() {
    let fx = Fx::init();
    let k = fx.key(&[]);
    fx.fail(
        &["encrypt", "-k", &k, "-o", "out", "missing"],
        FAILURE,
        &["missing"],
    );
    fx.assert_gone("out");
    fx.write("p", b"x");
    fx.fail(
        &["encrypt", "-k", &k, "-o", "no/such/dir/out", "p"],
        FAILURE,
        &["no/such/dir"],
    );
    fx.fail(&["inspect", "missing"], FAILURE, &["missing"]);
}

// ── Rewrap ────────────────────────────────────────────────────────────────────────────────

#[test]
fn rewrap_moves_a_file_to_another_key_in_the_same_region() {
    let fx = Fx::init();
    let (old, new) = (fx.key(&[]), fx.key(&["--alias", "alias/new"]));
    let plain = data(3 * CHUNK + 9);
    let sealed = fx.seal("p", &plain, &["-k", &old, "-c", "app=db"]);
    let original = fx.read(&sealed);
    fx.write("inplace.cofre", &original);

    assert_eq!(
        fx.ok(&["rewrap", &sealed, "-k", "alias/new", "-o", "moved.cofre"]),
        ""
    );
    assert_eq!(fx.ok(&["rewrap", "inplace.cofre", "-k", &new]), "");
    assert_eq!(fx.read(&sealed), original, "rewrap -o changed its input");
    fx.assert_no_tmp();

    let before = fx.inspect(&sealed);
    for f in ["moved.cofre", "inplace.cofre"] {
        assert_eq!(fx.wrapped_arns(f), [key_arn(EAST, &new)]);
        let info = fx.inspect(f);
        for field in [
            "EncryptionContext",
            "MessageId",
            "ChunkSize",
            "PayloadLength",
        ] {
            assert_eq!(info[field], before[field], "{f}: {field}");
        }
    }

    fx.ok(&["key", "disable", &old]);
    fx.fail(
        &["decrypt", "-o", "out", &sealed],
        ACCESS,
        &["DisabledException"],
    );
    for f in ["moved.cofre", "inplace.cofre"] {
        assert_eq!(fx.bytes(&["decrypt", "-c", "app=db", f]), plain, "{f}");
    }
    // Unwrapping needs the old key: with it disabled, nothing is rewritten.
    fx.fail(
        &["rewrap", &sealed, "-k", &new, "-o", "out"],
        ACCESS,
        &["DisabledException"],
    );
    fx.assert_gone("out");
}

#[test]
fn rewrap_into_another_region_copies_the_payload_unchanged() {
    let fx = Fx::init();
    let east = fx.key(&[]);
    let west = fx.key(&["--region", WEST, "--alias", "alias/dr"]);
    let plain = data(4 * CHUNK + 100);
    let sealed = fx.seal("p", &plain, &["-k", &east]);
    for (k, out) in [(west.as_str(), "a.cofre"), ("alias/dr", "b.cofre")] {
        fx.ok(&["rewrap", &sealed, "-k", k, "--to-region", WEST, "-o", out]);
        assert_eq!(fx.wrapped_arns(out), [key_arn(WEST, &west)]);
        let (o, r) = (fx.read(&sealed), fx.read(out));
        let (ho, hr) = (fx.header_len(&sealed), fx.header_len(out));
        assert!(o[ho..] == r[hr..], "the payload changed");
        assert_eq!(fx.bytes(&["--region", WEST, "decrypt", out]), plain);
        fx.fail(
            &["decrypt", "-o", "plain.out", out],
            ACCESS,
            &["--region eu-west-1"],
        );
        fx.assert_gone("plain.out");
    }
    // The target key must live in the target region.
    fx.fail(
        &[
            "rewrap",
            &sealed,
            "-k",
            &east,
            "--to-region",
            WEST,
            "-o",
            "c.cofre",
        ],
        ACCESS,
        &["NotFoundException", "us-east-1"],
    );
    fx.fail(
        &[
            "rewrap",
            &sealed,
            "-k",
            &west,
            "--to-region",
            "Mars",
            "-o",
            "c.cofre",
        ],
        USAGE,
        &["invalid region"],
    );
    fx.assert_gone("c.cofre");
}

// ── Inspect ───────────────────────────────────────────────────────────────────────────────

#[test]
fn inspect_needs_no_keyring() {
    let fx = Fx::init();
    let (k1, k2) = (fx.key(&[]), fx.key(&[]));
    let n = 2 * CHUNK + 3;
    let sealed = fx.seal(
        "p",
        &data(n),
        &["-k", &k1, "-k", &k2, "-c", "a=1", "-c", "b=2"],
    );

    let empty = Fx::new();
    fs::create_dir(empty.home()).unwrap();
    fs::copy(fx.path(&sealed), empty.path("f.cofre")).unwrap();
    let info = empty.inspect("f.cofre");
    assert_eq!(info["ChunkSize"], CHUNK);
    assert_eq!(
        info["EncryptionContext"],
        serde_json::json!({"a": "1", "b": "2"})
    );
    assert_eq!(info["PayloadLength"], n);
    assert_eq!(info["ChunkCount"], 3);
    assert_eq!(info["FileLength"], fx.read(&sealed).len());
    assert_eq!(
        empty.wrapped_arns("f.cofre"),
        [key_arn(EAST, &k1), key_arn(EAST, &k2)]
    );
    let text = empty.ok(&["inspect", "f.cofre"]);
    for s in [
        "4096 bytes",
        "a=1, b=2",
        &key_arn(EAST, &k1),
        &key_arn(EAST, &k2),
        &format!("{n} bytes in 3 chunk(s)"),
    ] {
        assert!(text.contains(s), "{s:?} missing from:\n{text}");
    }
    let piped = ok(empty
        .cmd(&["inspect", "-", "--output", "json"])
        .write_stdin(fx.read(&sealed)));
    let piped: Value = serde_json::from_slice(&piped).unwrap();
    assert_eq!(piped["WrappedKeys"], info["WrappedKeys"]);
    assert_eq!(piped["PayloadLength"], Value::Null);
    assert_eq!(
        fs::read_dir(empty.home()).unwrap().count(),
        0,
        "inspect wrote to the home"
    );
}

// ── Nothing lost ──────────────────────────────────────────────────────────────────────────

#[test]
fn an_existing_output_is_kept_unless_forced() {
    let fx = Fx::init();
    let (k, k2) = (fx.key(&[]), fx.key(&[]));
    let plain = data(CHUNK + 1);
    let sealed = fx.seal("p", &plain, &["-k", &k]);
    let keep = b"keep me".to_vec();
    for args in [
        &["encrypt", "-k", &k, "-o", "out", "p"][..],
        &["decrypt", "-o", "out", &sealed],
        &["rewrap", &sealed, "-k", &k2, "-o", "out"],
    ] {
        fx.write("out", &keep);
        fx.fail(args, USAGE, &["out already exists", "--force"]);
        assert_eq!(fx.read("out"), keep, "{args:?} touched the output");
        fx.ok(&[args, &["--force"]].concat());
        assert_ne!(fx.read("out"), keep, "{args:?} --force kept the output");
    }
    assert_eq!(fx.bytes(&["decrypt", "out"]), plain);
    fx.assert_no_tmp();
}

#[test]
fn the_same_file_as_input_and_output_is_refused_even_with_force() {
    let fx = Fx::init();
    let (k, k2) = (fx.key(&[]), fx.key(&[]));
    let plain = data(100);
    let sealed = fx.seal("p", &plain, &["-k", &k]);
    let original = fx.read(&sealed);
    fs::hard_link(fx.path(&sealed), fx.path("link.cofre")).unwrap();
    for args in [
        &["encrypt", "-k", &k, "-o", "./p", "p"][..],
        &["encrypt", "-k", &k, "-f", "-o", "p", "p"],
        &["decrypt", "-f", "-o", &sealed, &sealed],
        &["decrypt", "--force", "-o", "link.cofre", &sealed],
        &[
            "rewrap",
            &sealed,
            "-k",
            &k2,
            "-f",
            "-o",
            &format!("./{sealed}"),
        ],
    ] {
        fx.fail(args, USAGE, &["both the input and the output"]);
    }
    // The input redirected to stdin is recognised too.
    let mut c = fx.std_cmd(&["encrypt", "-k", &k, "-f", "-o", "p"]);
    c.stdin(fs::File::open(fx.path("p")).unwrap());
    assert_error(&run(&mut c, USAGE), &["both the input and the output"]);
    assert_eq!(fx.read("p"), plain);
    assert_eq!(fx.read(&sealed), original);
}

/// A 5-chunk file (4 KiB chunks) and its plaintext.
fn five_chunks(fx: &Fx) -> (Vec<u8>, Vec<u8>) {
    let k = fx.key(&[]);
    let plain = data(4 * CHUNK + 100);
    let sealed = fx.seal("p", &plain, &["-k", &k]);
    assert_eq!(fx.inspect(&sealed)["ChunkCount"], 5);
    (plain, fx.read(&sealed))
}

/// Decrypts `bad` through every input/output combination, expecting an integrity failure that
/// mentions `needles`: no file output at all, and on stdout only plaintext chunks that
/// authenticated — the first `good_chunks` of them when given.
fn assert_refused(fx: &Fx, bad: &[u8], plain: &[u8], good_chunks: Option<usize>, needles: &[&str]) {
    assert_refused_via(fx, bad, plain, |_| good_chunks, needles);
}

/// Like [`assert_refused`], with the number of good chunks depending on the input's route.
fn assert_refused_via(
    fx: &Fx,
    bad: &[u8],
    plain: &[u8],
    good: impl Fn(Via) -> Option<usize>,
    needles: &[&str],
) {
    for (from, to) in VIAS {
        let good_chunks = good(from);
        let out = run(&mut *fx.data_cmd(&["decrypt"], bad, from, to), INTEGRITY);
        assert_error(&out, needles);
        fx.assert_gone("out");
        let shown = &out.stdout;
        match good_chunks {
            Some(c) if to == Via::Pipe => assert!(
                *shown == plain[..c * CHUNK],
                "{from:?}: {} bytes on stdout, want {}",
                shown.len(),
                c * CHUNK
            ),
            _ => assert!(
                shown.len().is_multiple_of(CHUNK)
                    && shown.len() < plain.len()
                    && plain.starts_with(shown),
                "{from:?} -> {to:?}: {} bytes on stdout",
                shown.len()
            ),
        }
    }
}

#[test]
fn a_corrupted_chunk_is_named_and_stdout_stops_before_it() {
    let fx = Fx::init();
    let (plain, sealed) = five_chunks(&fx);
    fx.write("sealed", &sealed);
    let header = fx.header_len("sealed");
    for chunk in [0, 2, 4] {
        let bad = flipped(&sealed, header + chunk * (CHUNK + TAG) + 50);
        let msg = format!("corrupted at chunk {chunk}");
        assert_refused(&fx, &bad, &plain, Some(chunk), &[&msg]);
    }
    // A flipped tag byte, too.
    let bad = flipped(&sealed, header + 3 * (CHUNK + TAG) - 1);
    assert_refused(&fx, &bad, &plain, Some(2), &["corrupted at chunk 2"]);
}

#[test]
fn a_truncated_file_is_refused() {
    let fx = Fx::init();
    let (plain, sealed) = five_chunks(&fx);
    fx.write("sealed", &sealed);
    let header = fx.header_len("sealed");
    // The last chunk dropped whole: the file ends on a chunk boundary. A regular file's length
    // gives it away before any plaintext is written; a pipe shows it only at the end.
    let last = sealed.len() - (100 + TAG);
    let good = |from| Some(if from == Via::Pipe { 4 } else { 0 });
    assert_refused_via(&fx, &sealed[..last], &plain, good, &["truncated"]);
    // Cut inside the last chunk (fewer bytes left than a tag), and inside the header.
    assert_refused(
        &fx,
        &sealed[..sealed.len() - 110],
        &plain,
        None,
        &["truncated"],
    );
    assert_refused(&fx, &sealed[..header - 1], &plain, Some(0), &["truncated"]);
    assert_refused(&fx, &sealed[..20], &plain, Some(0), &["truncated"]);
    // Cut in the middle of a full chunk, or extended: refused all the same.
    assert_refused(
        &fx,
        &sealed[..header + 2 * (CHUNK + TAG) + 1000],
        &plain,
        None,
        &[],
    );
    assert_refused(&fx, &[&sealed[..], b"x"].concat(), &plain, None, &[]);
    assert_eq!(fx.bytes(&["decrypt", "sealed"]), plain);
}

#[test]
fn not_a_cofre_file_and_unsupported_versions_are_refused() {
    let fx = Fx::init();
    let (plain, sealed) = five_chunks(&fx);
    for junk in [data(5000), Vec::new(), b"COFRE".to_vec()] {
        assert_refused(&fx, &junk, &plain, Some(0), &["not a cofre file"]);
    }
    let mut v2 = sealed.clone();
    v2[8] = 2;
    assert_refused(
        &fx,
        &v2,
        &plain,
        Some(0),
        &["unsupported cofre format", "version 2"],
    );
    fx.write("v2.cofre", &v2);
    fx.fail(
        &["inspect", "v2.cofre"],
        INTEGRITY,
        &["unsupported cofre format"],
    );
    fx.write("junk", &data(5000));
    fx.fail(&["inspect", "junk"], INTEGRITY, &["not a cofre file"]);
    fx.fail(
        &["rewrap", "junk", "-k", "alias/x", "-o", "out"],
        INTEGRITY,
        &["not a cofre file"],
    );
    fx.assert_gone("out");
}

#[test]
fn ctrl_c_and_sigterm_remove_the_partial_output() {
    for signal in ["-INT", "-TERM"] {
        interrupt_removes_the_partial_output(signal);
    }
}

fn interrupt_removes_the_partial_output(signal: &str) {
    let fx = Fx::init();
    let k = fx.key(&[]);
    let mut child = fx
        .std_cmd(&["encrypt", "-k", &k, "-o", "out", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Some data, and the pipe stays open: cofre is mid-way through writing `out`.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&data(3 * CHUNK)).unwrap();
    let start = Instant::now();
    while fx.tmp_files().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no temporary output appeared"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args([signal, &pid])
        .status();
    assert!(kill.unwrap().success());
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(130));
    assert_error(&out, &["interrupted", "partial output removed"]);
    fx.assert_gone("out");
}

#[test]
fn a_failure_is_reported_at_once_while_the_input_pipe_stays_open() {
    let fx = Fx::init();
    let (_, sealed) = five_chunks(&fx);
    let header = fx.header_len("p.cofre");
    let bad = flipped(&sealed, header + 10);
    let mut child = fx
        .std_cmd(&["decrypt"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The bad file, then silence: the producer never closes the pipe (like `tail -f`).
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bad).unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "cofre hung waiting for input after a corrupted chunk"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    assert_eq!(status.code(), Some(INTEGRITY));
}

#[test]
fn devices_are_written_in_place_and_stdout_onto_the_input_is_refused() {
    let fx = Fx::init();
    let k = fx.key(&[]);
    let sealed = fx.seal("p", &data(3 * CHUNK), &["-k", &k]);
    // /dev/null is written, not replaced by a file, and needs no --force.
    fx.ok(&["decrypt", "-o", "/dev/null", &sealed]);
    // Binary KMS results are written into a device too, with or without --force; a command
    // that writes only files refuses one rather than replacing it.
    fx.ok(&["kms", "generate-random", "16", "-o", "/dev/null"]);
    fx.ok(&["kms", "generate-random", "16", "-o", "/dev/null", "--force"]);
    let vol = fx.ok(&["volume", "create", "--size", "1MiB"]);
    let mut c = fx.std_cmd(&[
        "volume",
        "read",
        vol.trim(),
        "--offset",
        "0",
        "--length",
        "4096",
        "-o",
        "/dev/null",
        "-f",
    ]);
    assert_error(&run(&mut c, USAGE), &["/dev/null is a device or FIFO"]);
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    // `cofre encrypt p >> p`: stdout is the input file.
    let before = fx.read("p");
    let mut c = fx.std_cmd(&["encrypt", "-k", &k, "p"]);
    c.stdout(
        fs::OpenOptions::new()
            .append(true)
            .open(fx.path("p"))
            .unwrap(),
    );
    assert_error(&run(&mut c, USAGE), &["both the input and the output"]);
    assert_eq!(fx.read("p"), before);
}

// ── Concurrency and the demo ──────────────────────────────────────────────────────────────

#[test]
fn eight_concurrent_key_creates_on_a_new_home_leave_eight_keys() {
    let fx = Fx::new();
    let children: Vec<_> = (0..8)
        .map(|_| {
            fx.std_cmd(&["key", "create"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let ids: BTreeSet<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let id = String::from_utf8(out.stdout).unwrap().trim_end().to_owned();
            assert_uuid(&id);
            id
        })
        .collect();
    assert_eq!(ids.len(), 8);
    assert_eq!(fx.key_ids(), ids);
    assert_eq!(fx.ok(&["key", "list"]).lines().count(), 8);
}

#[test]
fn demo_runs_and_cleans_up() {
    let fx = Fx::new();
    let out = ok(bare()
        .args(["demo", "--size", "8MiB", "--dir"])
        .arg(fx.dir.path()));
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out.matches("identical to the original: yes").count(),
        3,
        "{out}"
    );
    assert!(out.contains("refused"), "{out}");
    // The EBS half: the snapshot copy links its blocks, and both regions verify.
    assert!(out.contains("12 blocks hard-linked, 0 copied"), "{out}");
    assert_eq!(out.matches("every one authentic").count(), 2, "{out}");
    // The KMS API over HTTP answered a signed Encrypt and Decrypt.
    assert!(
        out.contains("answered 200 with the same plaintext back"),
        "{out}"
    );
    assert_eq!(
        fs::read_dir(fx.dir.path()).unwrap().count(),
        0,
        "the demo left files behind"
    );
}

#[test]
fn bench_measures_every_combination_and_draws_a_plot() {
    let fx = Fx::new();
    let data = tempfile::tempdir().unwrap();
    let plot = fx.dir.path().join("bench.svg");
    let out = ok(bare()
        .args(["bench", "--size", "256KiB", "--threads", "1,2"])
        .args(["--chunk-sizes", "4KiB,64KiB", "--json", "--plot"])
        .arg(&plot)
        .arg("--dir")
        .arg(data.path()));
    let report: Value = serde_json::from_slice(&out).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let backends = if cfg!(all(feature = "aws-lc", feature = "rustcrypto")) {
        2
    } else {
        1
    };
    assert_eq!(rows.len(), backends * 2 * 2, "{report}");
    for row in rows {
        for field in [
            "seal_gbps",
            "open_gbps",
            "encrypt_gbps",
            "decrypt_gbps",
            "encrypt_vs_copy",
        ] {
            let v = row[field].as_f64().unwrap();
            assert!(v.is_finite() && v > 0.0, "{field} = {v} in {row}");
        }
    }
    assert!(report["copy_gbps"].as_f64().unwrap() > 0.0);
    assert_eq!(report["size"], 256 * 1024);
    let svg = fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("copy floor"),
        "{svg}"
    );
    assert_eq!(
        fs::read_dir(data.path()).unwrap().count(),
        0,
        "bench left files behind"
    );
    // The plot is not overwritten without --force; unknown backends and bad sizes are refused.
    let again = bare()
        .args(["bench", "--size", "64KiB", "--plot"])
        .arg(&plot)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(USAGE));
    assert_eq!(fs::read_to_string(&plot).unwrap(), svg);
    for bad in [
        &["--backend", "openssl"][..],
        &["--chunk-sizes", "3000"],
        &["--threads", "0"],
    ] {
        let o = bare()
            .args(["bench", "--size", "64KiB"])
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(USAGE), "{bad:?}");
    }
}

#[test]
fn rewrap_in_place_keeps_the_file_mode_and_follows_a_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fx::init();
    let (k, k2) = (fx.key(&[]), fx.key(&[]));
    let plain = data(3 * CHUNK);
    let sealed = fx.seal("p", &plain, &["-k", &k]);
    fs::set_permissions(fx.path(&sealed), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink(fx.path(&sealed), fx.path("link")).unwrap();
    fx.ok(&["rewrap", "link", "-k", &k2]);
    assert!(fs::symlink_metadata(fx.path("link"))
        .unwrap()
        .file_type()
        .is_symlink());
    let mode = fs::metadata(fx.path(&sealed)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    fx.ok(&["key", "disable", &k]);
    assert_eq!(fx.bytes(&["decrypt", &sealed]), plain);
}

#[test]
fn lists_page_with_max_items_and_starting_token_as_the_aws_cli_does() {
    let fx = Fx::init();
    let mut ids: Vec<String> = (0..5).map(|_| fx.key(&[])).collect();
    ids.sort();
    let key_ids = |v: &Value| -> Vec<String> {
        v["Keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                assert_eq!(
                    k.as_object().unwrap().keys().collect::<Vec<_>>(),
                    ["KeyArn", "KeyId"],
                    "ListKeys entries are KeyId and KeyArn only"
                );
                assert_eq!(
                    k["KeyArn"],
                    key_arn(EAST, k["KeyId"].as_str().unwrap()).as_str()
                );
                k["KeyId"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    // Everything, with no token.
    let all = fx.json(&["key", "list"]);
    assert_eq!(key_ids(&all), ids);
    assert!(all.get("NextToken").is_none());
    // Two at a time, one request per item: every key once, in order.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for round in 0.. {
        let mut args = vec!["key", "list", "--max-items", "2", "--page-size", "1"];
        if let Some(t) = &token {
            args.extend(["--starting-token", t]);
        }
        let page = fx.json(&args);
        let got = key_ids(&page);
        assert!(got.len() <= 2, "round {round}: {got:?}");
        seen.extend(got);
        match page.get("NextToken") {
            Some(t) => token = Some(t.as_str().unwrap().to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    // The table pages too, and says how to go on.
    let text = fx.ok(&["key", "list", "--max-items", "3"]);
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(
        text.lines().last().unwrap().contains("--starting-token"),
        "{text}"
    );
    // Aliases of one key only.
    fx.ok(&["alias", "create", "alias/one", &ids[0]]);
    fx.ok(&["alias", "create", "alias/two", &ids[1]]);
    let a = fx.json(&["alias", "list", "--key-id", &ids[1]]);
    let names: Vec<&str> = a["Aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["AliasName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alias/two"]);
    // A zero --max-items is a usage error; an empty token is KMS's InvalidMarkerException.
    let out = run(&mut fx.cmd(&["key", "list", "--max-items", "0"]), USAGE);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-items"));
    fx.fail(
        &["key", "list", "--starting-token", ""],
        USAGE,
        &["InvalidMarkerException"],
    );
}

/// Where KMS takes only a key id or ARN, the CLI looks an alias up first (a DescribeKey in the
/// trail), so every key command takes an alias.
#[test]
fn key_commands_take_an_alias_where_kms_needs_an_id() {
    let fx = Fx::init();
    let id = fx.key(&["--alias", "alias/disks"]);
    let alias_arn = format!("arn:aws:kms:{EAST}:{ACCOUNT}:alias/disks");
    for a in ["alias/disks", alias_arn.as_str()] {
        fx.ok(&["key", "rotation", "enable", a]);
        let status = fx.json(&["key", "rotation", "status", a]);
        assert_eq!(status["KeyRotationEnabled"], true, "{status}");
        fx.ok(&["key", "rotate", a]);
        let rotations = fx.json(&["key", "rotations", a]);
        assert!(
            rotations["Rotations"]
                .as_array()
                .is_some_and(|r| !r.is_empty()),
            "{rotations}"
        );
        let policy = fx.ok(&["key", "policy", "get", a]);
        assert!(policy.contains("kms:*"), "{policy}");
        fx.ok(&["key", "disable", a]);
        assert_eq!(
            fx.json(&["key", "describe", &id])["KeyMetadata"]["KeyState"],
            "Disabled"
        );
        fx.ok(&["key", "enable", a]);
        fx.ok(&["key", "usage-report", a]);
        fx.ok(&[
            "key",
            "grant",
            "create",
            a,
            "--grantee",
            &format!("arn:aws:iam::{ACCOUNT}:user/bob"),
            "--operations",
            "Decrypt",
        ]);
        let grants = fx.json(&["key", "grant", "list", a]);
        assert!(
            grants["Grants"].as_array().is_some_and(|g| g
                .iter()
                .all(|g| g["KeyId"].as_str().is_some_and(|k| k.ends_with(&id)))),
            "{grants}"
        );
    }
    fx.fail(
        &["key", "disable", "alias/none"],
        ACCESS,
        &["NotFoundException", "alias/none"],
    );
    // The lookups are DescribeKey requests, as in KMS.
    let log = fx.ok(&["audit", "log", "--event", "DescribeKey"]);
    assert!(log.lines().count() >= 16, "{log}");
}

/// Argument errors are one `cofre:` line (with the possible values and clap's tip) and the usage
/// hint; `--output FILE` by mistake points at `-o`.
#[test]
fn usage_errors_are_one_line_and_a_hint() {
    let fx = Fx::init();
    fx.write("p", b"x");
    for (args, needles) in [
        (
            &["encrypt", "--bogus", "p"][..],
            &["unexpected argument '--bogus'", "Usage: cofre encrypt"][..],
        ),
        (
            &["encrypt", "-k", "alias/x", "--output", "out.cofre", "p"],
            &["possible values: text, json", "use -o FILE"],
        ),
        (
            &["key", "create", "--spec", "NOPE"],
            &["invalid value 'NOPE'", "RSA_2048", "HMAC_512"],
        ),
    ] {
        let out = run(&mut fx.cmd(args), USAGE);
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{err}");
        assert!(lines[0].starts_with("cofre: "), "{err}");
        assert!(
            lines[1].starts_with("Usage: ") || lines[1].starts_with("For more information"),
            "{err}"
        );
        for n in needles {
            assert!(err.contains(n), "{n:?} not in {err}");
        }
    }
}

/// `cofre completions SHELL` prints a script the shell takes; `cofre man` a roff page naming
/// every command.
#[test]
fn completions_and_the_man_page() {
    let fx = Fx::init();
    let bash = fx.ok(&["completions", "bash"]);
    for sub in ["encrypt", "volume", "snapshot", "serve", "access-key"] {
        assert!(
            bash.contains(sub),
            "{sub} missing from the bash completions"
        );
    }
    fx.write("cofre.bash", bash.as_bytes());
    let checked = std::process::Command::new("bash")
        .arg("-n")
        .arg(fx.path("cofre.bash"))
        .output()
        .unwrap();
    assert!(checked.status.success(), "{checked:?}");
    assert!(fx.ok(&["completions", "zsh"]).starts_with("#compdef cofre"));
    assert!(fx
        .ok(&["completions", "fish"])
        .contains("complete -c cofre"));
    let man = fx.ok(&["man"]);
    assert!(man.contains(".TH cofre 1"), "{man}");
    for sub in ["encrypt", "decrypt", "volume", "snapshot", "serve", "audit"] {
        assert!(man.contains(sub), "{sub} missing from the man page");
    }
    let out = run(&mut fx.cmd(&["completions", "tcsh"]), USAGE);
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: bash"));
}
