//! `cofre serve` driven by real clients (issue 14): boto3, the AWS CLI, the AWS Encryption SDK
//! for Python and openssl (tests/server_clients.py), the AWS SDK for JavaScript
//! (tests/server_clients.cjs), and raw sockets for what no client sends.
//!
//! The Python clients live in a venv made once under the target folder (`target/clients-venv`,
//! or `COFRE_CLIENTS_PYTHON`); the JavaScript SDK in `target/js-clients` (npm install, once).

mod common;

use common::{clients_python, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Runs a scenario of tests/server_clients.py against `server`, with extra environment.
fn scenario(server: &Server, name: &str, env: &[(&str, &str)]) {
    server.scenario(&clients_python(), "tests/server_clients.py", name, env);
}

/// The events of the server's trail in `region`.
fn trail(server: &Server, region: &str) -> Vec<serde_json::Value> {
    server.trail(region)
}

#[test]
fn boto3_drives_keys_data_rotation_policies_grants_and_pagination() {
    let server = Server::start();
    let alice = server.access_key(&format!("arn:aws:iam::{}:user/alice", server.account));
    let bob = server.access_key(&format!("arn:aws:iam::{}:user/bob", server.account));
    let carol = server.access_key("arn:aws:iam::444455556666:user/carol");
    scenario(
        &server,
        "boto3",
        &[
            ("ALICE_KEY", &alice.0),
            ("ALICE_SECRET", &alice.1),
            ("BOB_KEY", &bob.0),
            ("BOB_SECRET", &bob.1),
            ("CAROL_KEY", &carol.0),
            ("CAROL_SECRET", &carol.1),
        ],
    );
    // Every request is in the trail with the caller's access key, principal and user agent.
    let events = trail(&server, "us-east-1");
    let denied = events
        .iter()
        .find(|e| {
            e["errorCode"] == "AccessDeniedException"
                && e["userIdentity"]["accessKeyId"] == alice.0.as_str()
        })
        .expect("alice's refused Decrypt is recorded");
    assert_eq!(denied["eventName"], "Decrypt");
    assert_eq!(
        denied["userIdentity"]["arn"],
        format!("arn:aws:iam::{}:user/alice", server.account)
    );
    assert!(
        denied["userAgent"].as_str().unwrap().contains("Boto3"),
        "{denied}"
    );
    assert_eq!(denied["sourceIPAddress"], "127.0.0.1");
    // The front end's request id is the event's.
    assert!(events
        .iter()
        .all(|e| e["requestID"].as_str().is_some_and(|s| s.len() == 36)));
    let out = server.cofre().args(["audit", "verify"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_aws_cli_creates_encrypts_decrypts_and_pages() {
    let server = Server::start();
    scenario(&server, "awscli", &[]);
}

#[test]
fn the_encryption_sdk_encrypts_a_file_with_a_kms_keyring_and_decrypts_it() {
    let server = Server::start();
    scenario(&server, "esdk", &[]);
}

#[test]
fn bad_signatures_are_refused_change_nothing_and_are_recorded() {
    let server = Server::start();
    scenario(&server, "refusals", &[]);
    let events = trail(&server, "us-east-1");
    let refused: Vec<&str> = events
        .iter()
        .filter_map(|e| e["errorCode"].as_str())
        .collect();
    for name in [
        "InvalidSignatureException",
        "UnrecognizedClientException",
        "MissingAuthenticationTokenException",
    ] {
        assert!(
            refused.contains(&name),
            "{name} not in the trail: {refused:?}"
        );
    }
    let unknown = events
        .iter()
        .find(|e| e["errorCode"] == "UnrecognizedClientException")
        .unwrap();
    assert_eq!(unknown["userIdentity"]["type"], "Unknown");
    assert_eq!(
        unknown["userIdentity"]["accessKeyId"],
        "AKIAAAAAAAAAAAAAAAAA"
    );
    assert_eq!(unknown["eventName"], "CreateKey");
    assert!(!events
        .iter()
        .any(|e| e["eventName"] == "CreateKey" && e["errorCode"].is_null()));
}

#[test]
fn the_javascript_sdk_encrypts_and_decrypts() {
    let server = Server::start();
    let dir = js_clients();
    let mut c = Command::new("node");
    c.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/server_clients.cjs"
    ))
    .env("NODE_PATH", dir.join("node_modules"))
    .current_dir(&dir);
    server.client_env(&mut c);
    let out = c.output().expect("node runs");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok javascript"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A folder with @aws-sdk/client-kms installed (npm, once).
fn js_clients() -> PathBuf {
    let dir = common::target_dir().join("js-clients");
    let installed = dir.join("node_modules/@aws-sdk/client-kms/package.json");
    if installed.exists() {
        return dir;
    }
    let pid = std::process::id();
    let tmp = common::target_dir().join(format!("js-clients.tmp-{pid}"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(
        tmp.join("package.json"),
        r#"{"name":"cofre-js-clients","private":true}"#,
    )
    .unwrap();
    let out = Command::new("npm")
        .args([
            "install",
            "--silent",
            "--no-audit",
            "--no-fund",
            "@aws-sdk/client-kms@3",
        ])
        .current_dir(&tmp)
        .output()
        .expect("npm runs (this test needs Node.js and the npm registry once)");
    assert!(
        out.status.success(),
        "npm install @aws-sdk/client-kms failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(installed.exists());
    dir
}

#[test]
fn https_with_a_certificate_the_client_trusts() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Server::start_with(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(
        server.endpoint.starts_with("https://"),
        "{}",
        server.endpoint
    );
    scenario(&server, "tls", &[("CA_BUNDLE", cert.to_str().unwrap())]);
}

#[test]
fn a_reachable_address_without_tls_needs_a_flag() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cofre"))
        .arg("--home")
        .arg(home.path())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--allow-remote-http") && err.lines().count() == 1,
        "{err}"
    );
}

/// Sends raw bytes and returns what came back (until the server closes or 5 s pass).
fn raw(server: &Server, bytes: &[u8]) -> String {
    let addr = server.endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn hostile_requests_get_errors_and_the_server_lives_on_then_stops_cleanly() {
    let mut server = Server::start();
    // Not HTTP at all.
    let _ = raw(&server, b"\x00\x01\x02garbage\r\n\r\n");
    // A body over the limit: a clear 413, not a crash.
    let big = vec![b'a'; 2 << 20];
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.Encrypt\r\nContent-Length: {}\r\n\r\n",
        big.len()
    )
    .into_bytes();
    req.extend_from_slice(&big);
    let answer = raw(&server, &req);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.200}");
    // A lying Content-Length, then the connection closed.
    let _ = raw(
        &server,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n{\"a\":",
    );
    // Unsigned: the AWS error and status.
    let answer = raw(
        &server,
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer.contains("MissingAuthenticationTokenException"),
        "{answer}"
    );
    // Still serving signed requests.
    scenario(&server, "refusals", &[]);
    let status = server.stop();
    assert!(
        status.success(),
        "cofre serve exits 0 on SIGTERM: {status:?}"
    );
}
