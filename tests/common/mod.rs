//! What the tests that drive real clients share: Python venvs with the clients installed (made
//! once under the target folder), and a `cofre serve` started on a free loopback port.
#![allow(dead_code)] // each test binary uses its own part

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Variables that choose cofre's home, region, clock, caller, threads or panic output: every
/// test removes them from the cofre it runs, so the environment it runs in can't leak in.
pub const ENV: [&str; 10] = [
    "RAYON_NUM_THREADS",
    "RUST_BACKTRACE",
    "COFRE_HOME",
    "XDG_DATA_HOME",
    "HOME",
    "COFRE_REGION",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "COFRE_NOW",
    "COFRE_PRINCIPAL",
];

/// The target folder (CARGO_TARGET_TMPDIR is TARGET/tmp).
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
        .to_owned()
}

/// The python of the clients venv the server tests share: boto3, the AWS CLI and the AWS
/// Encryption SDK (or `COFRE_CLIENTS_PYTHON`).
pub fn clients_python() -> PathBuf {
    venv_python(
        "clients-venv",
        &[
            "boto3>=1.40,<2",
            "awscli>=1.40,<2",
            "aws-encryption-sdk>=4,<5",
        ],
        "import boto3, awscli, aws_encryption_sdk",
        "COFRE_CLIENTS_PYTHON",
    )
}

/// A python of a venv `TARGET/<name>` in which `probe` imports, made the first time with
/// `pip install` of `packages` (needs python3 and PyPI once). `env_override` names a variable
/// that may point at a ready python instead. Two test processes making it at once don't
/// collide: each builds `<name>.tmp-PID` and renames it into place; the loser drops its copy.
pub fn venv_python(name: &str, packages: &[&str], probe: &str, env_override: &str) -> PathBuf {
    let can = |python: &Path| {
        Command::new(python)
            .args(["-c", probe])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if let Some(p) = std::env::var_os(env_override).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            can(&p),
            "{env_override}={} cannot run {probe:?}: point it at a python that can, or unset it \
             to have the test make a venv under the target folder",
            p.display()
        );
        return p;
    }
    // The tests of one binary run on threads of one process: one of them makes the venv.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _making = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let target = target_dir();
    let venv = target.join(name);
    let python = venv.join("bin").join("python");
    if can(&python) {
        return python;
    }
    // Made in a folder of our own and renamed into place, so a test process running at the same
    // time never sees half a venv; a venv's python finds its packages through its own path, so
    // the rename keeps it working.
    let pid = std::process::id();
    let tmp = target.join(format!("{name}.tmp-{pid}"));
    let _ = fs::remove_dir_all(&tmp);
    let must = |c: &mut Command, what: &str| {
        let out = c.output().unwrap_or_else(|e| {
            panic!(
                "{what}: {e}. This test needs python3 (with venv and pip) and PyPI once, to make \
                 a venv with {packages:?}; or set {env_override} to a python that has them"
            )
        });
        assert!(
            out.status.success(),
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    must(
        Command::new("python3").args(["-m", "venv"]).arg(&tmp),
        "python3 -m venv",
    );
    must(
        Command::new(tmp.join("bin").join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(packages),
        "pip install",
    );
    if fs::rename(&tmp, &venv).is_err() {
        if can(&python) {
            // Another test process finished first: use its venv.
            let _ = fs::remove_dir_all(&tmp);
        } else {
            // A broken venv is in the way (its base python gone, say): set it aside.
            let stale = target.join(format!("{name}.stale-{pid}"));
            let _ = fs::rename(&venv, &stale);
            let _ = fs::remove_dir_all(&stale);
            if fs::rename(&tmp, &venv).is_err() && !can(&python) {
                panic!("could not move {} to {}", tmp.display(), venv.display());
            }
            let _ = fs::remove_dir_all(&tmp);
        }
    }
    assert!(can(&python), "{} cannot run {probe:?}", python.display());
    python
}

/// A `cofre serve` on a free loopback port of a new home, stopped (SIGTERM) when dropped.
pub struct Server {
    child: Option<Child>,
    pub home: tempfile::TempDir,
    pub endpoint: String,
    pub account: String,
    /// The account root's access key, made at first start.
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// [`Server::start`] with more arguments for `serve`.
    pub fn start_with(args: &[&str]) -> Server {
        let home = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cofre"))
            .arg("--home")
            .arg(home.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("COFRE_PRINCIPAL")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cofre serve starts");
        let out = child.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        let (mut endpoint, mut akid, mut secret, mut account) = (None, None, None, None);
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("export ") {
                for kv in rest.split_whitespace() {
                    match kv.split_once('=') {
                        Some(("AWS_ACCESS_KEY_ID", v)) => akid = Some(v.to_owned()),
                        Some(("AWS_SECRET_ACCESS_KEY", v)) => secret = Some(v.to_owned()),
                        _ => {}
                    }
                }
            }
            if let Some(a) = line.split("(account ").nth(1) {
                account = Some(a[..12].to_owned());
            }
            if let Some(e) = line.strip_prefix("listening on ") {
                endpoint = Some(e.to_owned());
                break;
            }
        }
        // The server prints nothing more; keep its stdout drained anyway.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child: Some(child),
            home,
            endpoint: endpoint.expect("cofre serve says where it listens"),
            account: account.expect("cofre serve names the account"),
            access_key_id: akid.expect("the first start makes an access key"),
            secret_access_key: secret.expect("the first start prints the secret"),
        }
    }

    /// `cofre` on the server's home.
    pub fn cofre(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cofre"));
        c.arg("--home")
            .arg(self.home.path())
            .env_remove("COFRE_PRINCIPAL");
        c
    }

    /// `cofre ARGS` on the server's home, which must succeed: its stdout.
    pub fn cofre_ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.cofre().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "cofre {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The events of the server's trail in `region`.
    pub fn trail(&self, region: &str) -> Vec<serde_json::Value> {
        String::from_utf8(self.cofre_ok(&["--region", region, "--output", "json", "audit", "log"]))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("one event per line"))
            .collect()
    }

    /// Runs scenario `name` of the Python script `script` (a path under the crate) with
    /// `python`, signing as the account root, with extra environment; it must print
    /// `ok NAME`. Returns its output.
    pub fn scenario(
        &self,
        python: &Path,
        script: &str,
        name: &str,
        env: &[(&str, &str)],
    ) -> String {
        let mut c = Command::new(python);
        c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(script))
            .arg(name)
            .env("ACCOUNT", &self.account);
        self.client_env(&mut c);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("python runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && stdout.contains(&format!("ok {name}")),
            "scenario {name} of {script} failed:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// A new access key for `principal`: (id, secret).
    pub fn access_key(&self, principal: &str) -> (String, String) {
        let out = self.cofre_ok(&[
            "--principal",
            principal,
            "--output",
            "json",
            "access-key",
            "create",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        (
            v["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned(),
            v["AccessKey"]["SecretAccessKey"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }

    /// Environment for an AWS client signing as the account root.
    pub fn client_env(&self, c: &mut Command) {
        c.env("AWS_ACCESS_KEY_ID", &self.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_access_key)
            .env("AWS_ENDPOINT_URL_KMS", &self.endpoint)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE");
    }

    /// Kills the server with SIGKILL (a crash at whatever it was doing); the home stays.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops the server with SIGTERM and returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
