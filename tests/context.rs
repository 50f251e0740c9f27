//! The request context is explicit: a request is authorized against the caller it was made for,
//! on whatever thread runs it, and recorded with that caller's address, agent and access key.
//! (The context once lived in a thread-local, and a check made on a thread serving no recorded
//! request let everything through.)

use cofre::audit::Principal;
use cofre::files::{self, Input, Options, Output};
use cofre::kms::EncryptionAlgorithm;
use cofre::{
    CreateKeyRequest, EncryptionContext, Error, Home, KeyRef, Kms, Region, RequestContext,
};
use std::sync::Arc;

const ACCOUNT: &str = "111122223333";

/// A home with a key whose policy lets `admin` do everything and `alice` only Encrypt; `bob`
/// is in the account but named by no statement (and the account root is not named either, so
/// the policy does not defer to IAM).
fn fixture() -> (tempfile::TempDir, Arc<Home>, KeyRef) {
    let dir = tempfile::tempdir().unwrap();
    let home = Arc::new(Home::open(&dir.path().join("home"), Some(ACCOUNT)).unwrap());
    let admin = as_user(&home, "admin");
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/admin")},
             "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/alice")},
             "Action": ["kms:Encrypt", "kms:GenerateDataKey"], "Resource": "*"}
        ]
    });
    let key = admin
        .create_key(&CreateKeyRequest {
            policy: Some(policy.to_string()),
            ..Default::default()
        })
        .unwrap();
    (dir, home, key.key_id.parse().unwrap())
}

fn as_user(home: &Arc<Home>, name: &str) -> Kms {
    let p = Principal::parse(&format!("arn:aws:iam::{ACCOUNT}:user/{name}")).unwrap();
    Kms::new(
        home.clone(),
        Region::new("us-east-1").unwrap(),
        RequestContext::new(p)
            .with_source_ip("192.0.2.7")
            .with_user_agent("aws-cli/2.0 test")
            .with_access_key_id(format!("AKIA{}", name.to_uppercase())),
    )
}

fn denied<T: std::fmt::Debug>(r: cofre::Result<T>) -> bool {
    matches!(
        r,
        Err(Error::Kms {
            code: cofre::KmsCode::AccessDeniedException,
            ..
        })
    )
}

#[test]
fn callers_are_checked_on_any_thread_and_never_see_each_other() {
    let (_dir, home, key) = fixture();
    let blob = as_user(&home, "alice")
        .encrypt(
            &key,
            b"hello",
            &EncryptionContext::new(),
            EncryptionAlgorithm::SymmetricDefault,
        )
        .unwrap()
        .ciphertext_blob;
    // Alice may encrypt but not decrypt, bob may do neither; admin may do both.
    // Many threads at once, each endpoint serving its own caller, sharing one home.
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (home, key, blob) = (home.clone(), key.clone(), blob.clone());
            std::thread::spawn(move || {
                let ctx = EncryptionContext::new();
                let alg = EncryptionAlgorithm::SymmetricDefault;
                for _ in 0..5 {
                    let (alice, bob) = (as_user(&home, "alice"), as_user(&home, "bob"));
                    let admin = as_user(&home, "admin");
                    assert!(denied(alice.decrypt(&blob, &ctx, None, alg)), "thread {i}");
                    assert!(denied(bob.encrypt(&key, b"x", &ctx, alg)), "thread {i}");
                    assert!(alice.encrypt(&key, b"x", &ctx, alg).is_ok(), "thread {i}");
                    let plain = admin.decrypt(&blob, &ctx, None, alg).unwrap();
                    assert_eq!(&plain.plaintext[..], b"hello");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn a_file_decrypted_on_worker_threads_is_still_checked_for_its_caller() {
    let (dir, home, key) = fixture();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, vec![7u8; 3 << 20]).unwrap();
    let sealed = dir.path().join("sealed");
    files::encrypt(
        &as_user(&home, "alice"),
        std::slice::from_ref(&key),
        &EncryptionContext::new(),
        16,
        &Input::Path(plain.clone()),
        &Output::Path {
            path: sealed.clone(),
            force: false,
        },
        Options::default(),
    )
    .unwrap();
    let out = dir.path().join("out");
    let decrypt = |kms: &Kms| {
        files::decrypt(
            kms,
            &EncryptionContext::new(),
            &Input::Path(sealed.clone()),
            &Output::Path {
                path: out.clone(),
                force: true,
            },
            Options::default(),
        )
    };
    // Run from a rayon worker: the caller travels with the endpoint, not with the thread.
    let r = rayon::scope(|_| decrypt(&as_user(&home, "alice")));
    assert!(denied(r), "alice may not decrypt");
    assert!(!out.exists(), "a refused decrypt writes nothing");
    let admin = as_user(&home, "admin");
    decrypt(&admin).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&plain).unwrap());
}

#[test]
fn the_trail_records_the_context_of_each_request() {
    let (_dir, home, key) = fixture();
    let bob = as_user(&home, "bob");
    let ctx = EncryptionContext::new();
    assert!(denied(bob.encrypt(
        &key,
        b"x",
        &ctx,
        EncryptionAlgorithm::SymmetricDefault
    )));
    let events = bob.audit_trail().events().unwrap();
    let e = events.last().unwrap();
    assert_eq!(e.event_name, "Encrypt");
    assert_eq!(e.error_code.as_deref(), Some("AccessDeniedException"));
    assert_eq!(
        e.user_identity.arn.as_deref(),
        Some("arn:aws:iam::111122223333:user/bob")
    );
    assert_eq!(e.user_identity.access_key_id.as_deref(), Some("AKIABOB"));
    assert_eq!(e.source_ip_address, "192.0.2.7");
    assert_eq!(e.user_agent, "aws-cli/2.0 test");
    // A front end's request id names the event of that request.
    let admin = Principal::parse(&format!("arn:aws:iam::{ACCOUNT}:user/admin")).unwrap();
    let tagged = Kms::new(
        home.clone(),
        Region::new("us-east-1").unwrap(),
        RequestContext::new(admin).with_request_id("req-1234"),
    );
    tagged.describe_key(&key).unwrap();
    let events = tagged.audit_trail().events().unwrap();
    assert_eq!(events.last().unwrap().request_id, "req-1234");
}
