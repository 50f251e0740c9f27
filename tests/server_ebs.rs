//! The EBS direct APIs on `cofre serve` (issue 15), driven by boto3's `ebs` client
//! (tests/server_ebs.py): a disk image uploaded block by block, a child snapshot, changed
//! blocks read back, bad requests refused, the CLI restoring what was uploaded.

mod common;

use common::{clients_python, Server};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs a scenario of tests/server_ebs.py against `server`.
fn scenario(server: &Server, name: &str, env: &[(&str, &str)]) {
    let work = tempfile::tempdir().unwrap();
    let home = server.home.path().to_str().unwrap();
    let more = [
        ("COFRE", env!("CARGO_BIN_EXE_cofre")),
        ("COFRE_HOME", home),
        ("WORK", work.path().to_str().unwrap()),
    ];
    let env: Vec<(&str, &str)> = more.iter().chain(env).copied().collect();
    server.scenario(&clients_python(), SCRIPT, name, &env);
}

const SCRIPT: &str = "tests/server_ebs.py";

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

/// Files under `dir` (recursively), temporaries included.
fn files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn kill_9_while_blocks_are_written_leaves_a_pending_snapshot_and_a_sound_store() {
    let mut server = Server::start();
    let mut c = Command::new(clients_python());
    c.arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SCRIPT))
        .arg("crash")
        .env("WORK", server.home.path())
        .stdout(Stdio::piped());
    server.client_env(&mut c);
    let mut py = c.spawn().unwrap();
    let mut lines = std::io::BufReader::new(py.stdout.take().unwrap()).lines();
    let line = lines
        .next()
        .expect("the scenario says which snapshot")
        .unwrap();
    let snap = line
        .strip_prefix("pending ")
        .expect("pending SNAP")
        .to_owned();
    std::thread::sleep(std::time::Duration::from_millis(300));
    server.kill();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the writer stops when the server dies"
    );

    let cofre = |args: &[&str]| {
        let out = server
            .cofre()
            .args(["--output", "json"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let (ok, stdout, stderr) = cofre(args);
        assert!(ok, "{args:?}: {stderr}");
        serde_json::from_slice(&stdout).unwrap()
    };
    let v = json(&["verify"]);
    assert_eq!(v["Problems"], serde_json::json!([]), "{v}");
    let d = json(&["snapshot", "describe", &snap]);
    assert_eq!(d["Snapshots"][0]["State"], "pending", "{d}");
    let (ok, _, stderr) = cofre(&["volume", "create", "--snapshot", &snap]);
    assert!(!ok && stderr.contains("pending"), "{stderr}");
    // gc keeps the blocks of the pending snapshot's journal.
    json(&["gc"]);
    let v = json(&["verify"]);
    assert_eq!(v["Problems"], serde_json::json!([]), "{v}");
    assert_eq!(v["Orphans"], 0, "{v}");
    let ebs = server.home.path().join("regions/us-east-1/ebs");
    assert!(
        files(&ebs.join("blocks")) >= 4,
        "the written blocks are kept"
    );
    assert!(
        files(&ebs.join("pending").join(&snap)) >= 4,
        "and their journal"
    );
    // Deleting the pending snapshot takes its blocks and journal with it.
    let (ok, _, stderr) = cofre(&["snapshot", "delete", &snap]);
    assert!(ok, "{stderr}");
    assert_eq!(files(&ebs.join("blocks")), 0);
    assert!(!ebs.join("pending").join(&snap).exists());
    let v = json(&["verify"]);
    assert_eq!(v["Problems"], serde_json::json!([]), "{v}");
}
