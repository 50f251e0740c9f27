//! The EBS direct APIs on `cofre serve` (issue 15), driven by boto3's `ebs` client
//! (tests/server_ebs.py): a disk image uploaded block by block, a child snapshot, changed
//! blocks read back, bad requests refused, the CLI restoring what was uploaded.

mod common;

use common::{venv_python, Server};
use std::path::PathBuf;
use std::process::Command;

fn clients_python() -> PathBuf {
    venv_python(
        "clients-venv",
        &["boto3>=1.40,<2", "awscli>=1.40,<2", "aws-encryption-sdk>=4,<5"],
        "import boto3, awscli, aws_encryption_sdk",
        "COFRE_CLIENTS_PYTHON",
    )
}

/// Runs a scenario of tests/server_ebs.py against `server`.
fn scenario(server: &Server, name: &str, env: &[(&str, &str)]) {
    let work = tempfile::tempdir().unwrap();
    let mut c = Command::new(clients_python());
    c.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/server_ebs.py"))
        .arg(name)
        .env("COFRE", env!("CARGO_BIN_EXE_cofre"))
        .env("COFRE_HOME", server.home.path())
        .env("WORK", work.path())
        .env("ACCOUNT", &server.account);
    server.client_env(&mut c);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("python runs");
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains(&format!("ok {name}")),
        "scenario {name} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn boto3_uploads_an_image_block_by_block_diffs_a_child_and_the_cli_restores_it() {
    let server = Server::start();
    scenario(&server, "upload", &[]);
}

#[test]
fn a_caller_the_key_refuses_gets_access_denied_and_nothing_is_made() {
    let server = Server::start();
    let alice = server.access_key(&format!("arn:aws:iam::{}:user/alice", server.account));
    scenario(
        &server,
        "denied",
        &[("ALICE_KEY", &alice.0), ("ALICE_SECRET", &alice.1)],
    );
}
