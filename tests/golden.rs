//! Golden files: a fixture home with a fixed, test-only domain key, and files sealed by cofre
//! 0.1 (format v1). Every later version must keep decrypting them to the same bytes.
//! testdata/golden/README.md says what each file is.
//!
//! The tests copy the fixture home to a temporary folder first: they never write into testdata.
//! `generate_golden_files` (ignored) made the fixture; it refuses to overwrite it.

use cofre::files::{self, Input, Options, Output};
use cofre::{Backend, EncryptionContext, Error, Home, KeyRef, Kms, KmsCode, Region};
use std::path::{Path, PathBuf};

/// The fixture's domain key: 32 ASCII bytes that say what they are. Never use it for real data.
const TEST_DOMAIN_KEY: &[u8; 32] = b"COFRE-TEST-ONLY-DOMAIN-KEY-v1!!!";
const ACCOUNT: &str = "111122223333";

const KEY_GOLDEN: &str =
    "arn:aws:kms:us-east-1:111122223333:key/98be94d8-4fe1-43b8-8206-bd13e9981246";
const KEY_GOLDEN_2: &str =
    "arn:aws:kms:us-east-1:111122223333:key/7fc49757-587b-4410-ae5f-6499dac0f9fc";
const KEY_GOLDEN_EU: &str =
    "arn:aws:kms:eu-west-1:111122223333:key/9271ee47-5f85-4fb6-8fa1-c26fe87608ac";

/// One golden file: `sealed/<name>.cofre` decrypts to `plain/<name>.bin`.
struct Golden {
    name: &'static str,
    len: usize,
    chunk_log2: u8,
    context: &'static [(&'static str, &'static str)],
    /// Aliases (at generation time) of the wrapping keys, in header order.
    aliases: &'static [&'static str],
    /// ARNs of the wrapping keys, in header order.
    arns: &'static [&'static str],
    region: &'static str,
    /// Sealed from a pipe: the header is padded to 4 KiB.
    from_pipe: bool,
    /// The header's length in bytes, as this version wrote it.
    header_len: u64,
}

const GOLDEN: &[Golden] = &[
    Golden {
        name: "empty",
        len: 0,
        chunk_log2: 20,
        context: &[],
        aliases: &["alias/golden"],
        arns: &[KEY_GOLDEN],
        region: "us-east-1",
        from_pipe: false,
        header_len: 288,
    },
    Golden {
        name: "one-byte",
        len: 1,
        chunk_log2: 20,
        context: &[],
        aliases: &["alias/golden"],
        arns: &[KEY_GOLDEN],
        region: "us-east-1",
        from_pipe: false,
        header_len: 288,
    },
    Golden {
        name: "ten-thousand",
        len: 10_000,
        chunk_log2: 12,
        context: &[],
        aliases: &["alias/golden"],
        arns: &[KEY_GOLDEN],
        region: "us-east-1",
        from_pipe: false,
        header_len: 288,
    },
    Golden {
        name: "exact-chunks",
        len: 8192,
        chunk_log2: 12,
        context: &[],
        aliases: &["alias/golden"],
        arns: &[KEY_GOLDEN],
        region: "us-east-1",
        from_pipe: false,
        header_len: 288,
    },
    Golden {
        name: "two-keys",
        len: 6000,
        chunk_log2: 12,
        context: &[],
        aliases: &["alias/golden", "alias/golden-2"],
        arns: &[KEY_GOLDEN, KEY_GOLDEN_2],
        region: "us-east-1",
        from_pipe: false,
        header_len: 460,
    },
    Golden {
        name: "context",
        len: 5000,
        chunk_log2: 12,
        context: &[
            ("department", "golden-files"),
            ("purpose", "format regression"),
        ],
        aliases: &["alias/golden"],
        arns: &[KEY_GOLDEN],
        region: "us-east-1",
        from_pipe: false,
        header_len: 342,
    },
    Golden {
        name: "pipe",
        len: 3000,
        chunk_log2: 12,
        context: &[("source", "pipe")],
        aliases: &["alias/golden"],
        arns: &[KEY_GOLDEN],
        region: "us-east-1",
        from_pipe: true,
        header_len: 4096,
    },
    Golden {
        name: "eu-west-1",
        len: 100,
        chunk_log2: 12,
        context: &[],
        aliases: &["alias/golden-eu"],
        arns: &[KEY_GOLDEN_EU],
        region: "eu-west-1",
        from_pipe: false,
        header_len: 288,
    },
];

// ── Helpers ────────────────────────────────────────────────────────────────────────────────

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/golden")
}

fn sealed_path(g: &Golden) -> PathBuf {
    golden_dir()
        .join("sealed")
        .join(format!("{}.cofre", g.name))
}

fn plain_path(g: &Golden) -> PathBuf {
    golden_dir().join("plain").join(format!("{}.bin", g.name))
}

/// The plaintext of golden file `name`: the BLAKE3 XOF of a label and the name.
fn golden_plaintext(name: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(b"cofre golden plaintext v1: ")
        .update(name.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn context_of(g: &Golden) -> EncryptionContext {
    let mut c = EncryptionContext::new();
    for (k, v) in g.context {
        c.insert(k, v).unwrap();
    }
    c
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A writable copy of the fixture home in a temporary folder, with a scratch folder beside it.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&golden_dir().join("home"), &dir.path().join("home"));
        std::fs::create_dir(dir.path().join("out")).unwrap();
        Fixture { dir }
    }

    fn kms(&self, region: &str) -> Kms {
        let home = Home::open(&self.dir.path().join("home"), Some(ACCOUNT)).unwrap();
        {
            let ctx = cofre::RequestContext::account_root(home.account_id());
            Kms::new(home, Region::new(region).unwrap(), ctx)
        }
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }
}

fn to(path: &Path) -> Output {
    Output::Path {
        path: path.to_path_buf(),
        force: false,
    }
}

fn decrypt(
    kms: &Kms,
    required: &EncryptionContext,
    input: &Path,
    out: &Path,
    b: Backend,
) -> cofre::Result<Vec<u8>> {
    files::decrypt(
        kms,
        required,
        &Input::Path(input.to_path_buf()),
        &to(out),
        Options {
            backend: b,
            quiet: true,
        },
    )?;
    Ok(std::fs::read(out).unwrap())
}

/// Feeds `bytes` into a new FIFO at `path` from a detached thread.
fn feed_fifo(path: &Path, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
    let st = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "mkfifo failed");
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&p) {
            let _ = f.write_all(&bytes);
        }
    })
}

// ── The tests ──────────────────────────────────────────────────────────────────────────────

/// The fixture home is the documented test-only one.
#[test]
fn fixture_home_is_the_test_only_home() {
    let home = golden_dir().join("home");
    assert_eq!(
        &std::fs::read(home.join("domain.key")).unwrap(),
        TEST_DOMAIN_KEY
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("cofre.json")).unwrap()).unwrap();
    assert_eq!(config["AccountId"], ACCOUNT);
    assert_eq!(config["Version"], 1);
    let fx = Fixture::new();
    let kms = fx.kms("us-east-1");
    for (alias, arn) in [
        ("alias/golden", KEY_GOLDEN),
        ("alias/golden-2", KEY_GOLDEN_2),
    ] {
        let m = kms.describe_key(&alias.parse().unwrap()).unwrap();
        assert_eq!(m.arn, arn, "{alias}");
    }
    let m = fx
        .kms("eu-west-1")
        .describe_key(&"alias/golden-eu".parse().unwrap())
        .unwrap();
    assert_eq!(m.arn, KEY_GOLDEN_EU);
}

/// The committed plaintexts are the generated ones.
#[test]
fn golden_plaintexts_are_intact() {
    for g in GOLDEN {
        let have = std::fs::read(plain_path(g)).unwrap();
        assert!(
            have == golden_plaintext(g.name, g.len),
            "plain/{}.bin was changed",
            g.name
        );
    }
}

/// Every golden file decrypts to its plaintext, with every backend built in, through both the
/// memory-map driver and the pipe driver.
#[test]
fn golden_files_decrypt() {
    let fx = Fixture::new();
    for &b in Backend::ALL {
        for g in GOLDEN {
            let kms = fx.kms(g.region);
            let want = std::fs::read(plain_path(g)).unwrap();
            let none = EncryptionContext::new();

            let out = fx.out(&format!("{}-{}-map", g.name, b.name()));
            let got = decrypt(&kms, &none, &sealed_path(g), &out, b)
                .unwrap_or_else(|e| panic!("{} ({b:?}): {e}", g.name));
            assert!(
                got == want,
                "{} ({b:?}, map) decrypts to other bytes",
                g.name
            );

            // The full context is accepted as well.
            let out = fx.out(&format!("{}-{}-ctx", g.name, b.name()));
            let got = decrypt(&kms, &context_of(g), &sealed_path(g), &out, b).unwrap();
            assert!(got == want);

            let fifo = fx.out(&format!("{}-{}.fifo", g.name, b.name()));
            let feeder = feed_fifo(&fifo, std::fs::read(sealed_path(g)).unwrap());
            let out = fx.out(&format!("{}-{}-pipe", g.name, b.name()));
            let got = decrypt(&kms, &none, &fifo, &out, b)
                .unwrap_or_else(|e| panic!("{} ({b:?}, pipe): {e}", g.name));
            feeder.join().unwrap();
            assert!(
                got == want,
                "{} ({b:?}, pipe) decrypts to other bytes",
                g.name
            );
        }
    }
}

/// `inspect` reads the same header fields from every golden file.
#[test]
fn golden_headers_inspect() {
    let fx = Fixture::new();
    for g in GOLDEN {
        let info = files::inspect(&Input::Path(sealed_path(g))).unwrap();
        let h = &info.header;
        assert_eq!(h.chunk_log2, g.chunk_log2, "{}: chunk size", g.name);
        assert_eq!(h.chunk_size(), 1 << g.chunk_log2);
        assert_eq!(h.context, context_of(g), "{}: context", g.name);
        let arns: Vec<&str> = h.wrapped_keys().map(|w| w.key_arn.as_str()).collect();
        assert_eq!(arns, g.arns, "{}: wrapping keys", g.name);
        assert_eq!(info.header_len, g.header_len, "{}: header length", g.name);
        assert_eq!(
            info.payload_len,
            Some(g.len as u64),
            "{}: payload length",
            g.name
        );
        assert_eq!(info.chunk_count, Some(g.len as u64 / h.chunk_size() + 1));
        let file_len = std::fs::metadata(sealed_path(g)).unwrap().len();
        assert_eq!(info.file_len, Some(file_len));
        assert_eq!(
            g.from_pipe,
            info.header_len.is_multiple_of(4096),
            "{}: padding",
            g.name
        );
        // Each wrapped key names the material version its key had then (its only one).
        let kms = fx.kms(g.region);
        for w in h.wrapped_keys() {
            let m = kms.describe_key(&w.key_arn.parse().unwrap()).unwrap();
            assert_eq!(
                m.current_key_material_id,
                hex::encode(w.material_id),
                "{}",
                g.name
            );
        }
    }
}

/// The two-key file opens with either key alone.
#[test]
fn golden_two_keys_each_decrypts() {
    let g = GOLDEN.iter().find(|g| g.name == "two-keys").unwrap();
    let want = std::fs::read(plain_path(g)).unwrap();
    let fx = Fixture::new();
    let kms = fx.kms("us-east-1");
    let none = EncryptionContext::new();
    let k1: KeyRef = KEY_GOLDEN.parse().unwrap();
    let k2: KeyRef = KEY_GOLDEN_2.parse().unwrap();

    kms.disable_key(&k1, false).unwrap();
    let got = decrypt(
        &kms,
        &none,
        &sealed_path(g),
        &fx.out("only-2"),
        Backend::default(),
    );
    assert!(got.unwrap() == want, "opens with the second key alone");

    kms.enable_key(&k1).unwrap();
    kms.disable_key(&k2, false).unwrap();
    let got = decrypt(
        &kms,
        &none,
        &sealed_path(g),
        &fx.out("only-1"),
        Backend::default(),
    );
    assert!(got.unwrap() == want, "opens with the first key alone");

    kms.disable_key(&k1, false).unwrap();
    let r = decrypt(
        &kms,
        &none,
        &sealed_path(g),
        &fx.out("none"),
        Backend::default(),
    );
    assert!(
        matches!(
            r,
            Err(Error::Kms {
                code: KmsCode::DisabledException,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(!fx.out("none").exists());
}

/// The context file checks required pairs.
#[test]
fn golden_context_is_enforced() {
    let g = GOLDEN.iter().find(|g| g.name == "context").unwrap();
    let fx = Fixture::new();
    let kms = fx.kms("us-east-1");
    let want = std::fs::read(plain_path(g)).unwrap();
    let subset = EncryptionContext::from_pairs(["purpose=format regression"]).unwrap();
    let got = decrypt(
        &kms,
        &subset,
        &sealed_path(g),
        &fx.out("subset"),
        Backend::default(),
    );
    assert!(got.unwrap() == want);
    for bad in ["purpose=other", "department=golden-files-x", "extra=1"] {
        let req = EncryptionContext::from_pairs([bad]).unwrap();
        let r = decrypt(
            &kms,
            &req,
            &sealed_path(g),
            &fx.out("bad"),
            Backend::default(),
        );
        assert!(matches!(r, Err(Error::ContextMismatch(_))), "{bad}: {r:?}");
        assert!(!fx.out("bad").exists());
    }
}

/// The eu-west-1 file needs its region.
#[test]
fn golden_regional_key() {
    let g = GOLDEN.iter().find(|g| g.name == "eu-west-1").unwrap();
    let fx = Fixture::new();
    let none = EncryptionContext::new();
    let r = decrypt(
        &fx.kms("us-east-1"),
        &none,
        &sealed_path(g),
        &fx.out("us"),
        Backend::default(),
    );
    match r {
        Err(Error::Kms {
            code: KmsCode::NotFoundException,
            message,
        }) => assert!(message.contains("eu-west-1"), "{message}"),
        r => panic!("decrypting an eu-west-1 file from us-east-1: {r:?}"),
    }
}

/// Re-wrapping a golden file changes only the header: the payload bytes are copied unchanged,
/// and the result decrypts under the new key.
#[test]
fn golden_rewrap_keeps_payload() {
    let g = GOLDEN.iter().find(|g| g.name == "ten-thousand").unwrap();
    let fx = Fixture::new();
    let kms = fx.kms("us-east-1");
    let out = fx.out("rewrapped.cofre");
    let to: KeyRef = KEY_GOLDEN_2.parse().unwrap();
    files::rewrap(&kms, &kms, &[to], &sealed_path(g), Some(&out), false).unwrap();
    let old = std::fs::read(sealed_path(g)).unwrap();
    let new = std::fs::read(&out).unwrap();
    let old_h = files::inspect(&Input::Path(sealed_path(g)))
        .unwrap()
        .header_len as usize;
    let info = files::inspect(&Input::Path(out.clone())).unwrap();
    let new_h = info.header_len as usize;
    assert!(old[old_h..] == new[new_h..], "payload changed by rewrap");
    let arns: Vec<&str> = info
        .header
        .wrapped_keys()
        .map(|w| w.key_arn.as_str())
        .collect();
    assert_eq!(arns, [KEY_GOLDEN_2]);
    let got = decrypt(
        &kms,
        &EncryptionContext::new(),
        &out,
        &fx.out("back"),
        Backend::default(),
    );
    assert!(got.unwrap() == std::fs::read(plain_path(g)).unwrap());
}

// ── Making the fixture ─────────────────────────────────────────────────────────────────────

/// Writes testdata/golden from scratch. Run once, by hand, when a new format version needs its
/// own golden files (in a new folder; these must stay):
///
/// ```text
/// COFRE_GOLDEN_WRITE=1 cargo test --test golden -- --ignored generate_golden_files
/// ```
///
/// Then fill the printed key ARNs and header lengths into the table above.
#[test]
#[ignore = "writes testdata/golden; run by hand, see its doc comment"]
fn generate_golden_files() {
    if std::env::var_os("COFRE_GOLDEN_WRITE").is_none() {
        panic!("set COFRE_GOLDEN_WRITE=1 to write testdata/golden");
    }
    let dir = golden_dir();
    assert!(
        !dir.join("home").exists(),
        "testdata/golden/home exists: golden files are never regenerated"
    );
    // Fixed creation dates in the key records.
    std::env::set_var("COFRE_NOW", "2026-01-01T00:00:00Z");

    // The home, by hand: cofre.json and the test-only domain key.
    let home_dir = dir.join("home");
    std::fs::create_dir_all(home_dir.join("regions")).unwrap();
    std::fs::write(
        home_dir.join("cofre.json"),
        format!("{{\n  \"Version\": 1,\n  \"AccountId\": \"{ACCOUNT}\",\n  \"CreationDate\": \"2026-01-01T00:00:00Z\"\n}}"),
    )
    .unwrap();
    std::fs::write(home_dir.join("domain.key"), TEST_DOMAIN_KEY).unwrap();

    let kms_for = |region: &str| {
        let home = Home::open(&home_dir, Some(ACCOUNT)).unwrap();
        let ctx = cofre::RequestContext::account_root(home.account_id());
        Kms::new(home, Region::new(region).unwrap(), ctx)
    };
    let mut arns = std::collections::BTreeMap::new();
    for (region, alias, description) in [
        ("us-east-1", "alias/golden", "golden files: the main key"),
        (
            "us-east-1",
            "alias/golden-2",
            "golden files: the second key of two-keys",
        ),
        (
            "eu-west-1",
            "alias/golden-eu",
            "golden files: the eu-west-1 key",
        ),
    ] {
        let m = kms_for(region)
            .create_key(&cofre::CreateKeyRequest {
                description: description.into(),
                alias: Some(alias.into()),
                ..Default::default()
            })
            .unwrap();
        println!("{alias}: {}", m.arn);
        arns.insert(alias, m.arn);
    }

    std::fs::create_dir_all(dir.join("plain")).unwrap();
    std::fs::create_dir_all(dir.join("sealed")).unwrap();
    for g in GOLDEN {
        let kms = kms_for(g.region);
        let pt = golden_plaintext(g.name, g.len);
        std::fs::write(plain_path(g), &pt).unwrap();
        let keys: Vec<KeyRef> = g.aliases.iter().map(|a| a.parse().unwrap()).collect();
        let input = if g.from_pipe {
            let fifo =
                std::env::temp_dir().join(format!("cofre-golden-{}.fifo", std::process::id()));
            let _ = std::fs::remove_file(&fifo);
            (feed_fifo(&fifo, pt.clone()), fifo)
        } else {
            (std::thread::spawn(|| {}), plain_path(g))
        };
        files::encrypt(
            &kms,
            &keys,
            &context_of(g),
            g.chunk_log2,
            &Input::Path(input.1.clone()),
            &to(&sealed_path(g)),
            Options::default(),
        )
        .unwrap();
        input.0.join().unwrap();
        if g.from_pipe {
            std::fs::remove_file(&input.1).unwrap();
        }
        let info = files::inspect(&Input::Path(sealed_path(g))).unwrap();
        println!("{}: header_len {}", g.name, info.header_len);
    }

    // Lock files are made on demand; keep them out of the fixture.
    for region in ["us-east-1", "eu-west-1"] {
        let _ = std::fs::remove_file(home_dir.join("regions").join(region).join(".lock"));
    }
    let _ = std::fs::remove_file(home_dir.join(".lock"));
}

// ── Public-key recipients (recipient types 2 and 3) ───────────────────────────────────────
//
// testdata/golden/pubkey/: a second fixture home (same test-only domain key and account) with
// an RSA_2048 encryption key and an ECC_NIST_P256 key-agreement key, their public keys, and a
// file encrypted to each and one to both plus a symmetric key. Made by
// `generate_public_key_golden_files`; every later version must keep opening them.

/// The files of the public-key fixture: name, and the recipient types in header order.
const PUBKEY_GOLDEN: &[(&str, &[u8])] = &[("rsa", &[2]), ("ecdh", &[3]), ("mixed", &[1, 2, 3])];

fn pubkey_dir() -> PathBuf {
    golden_dir().join("pubkey")
}

fn pubkey_plaintext() -> Vec<u8> {
    golden_plaintext("pubkey", 70_000)
}

fn public_key_der(name: &str) -> Vec<u8> {
    cofre::sign::read_public_key(&pubkey_dir().join(format!("{name}.pem"))).unwrap()
}

#[test]
fn golden_public_key_recipients_decrypt_and_name_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&pubkey_dir().join("home"), &dir.path().join("home"));
    let kms = {
        let home = Home::open(&dir.path().join("home"), Some(ACCOUNT)).unwrap();
        let ctx = cofre::RequestContext::account_root(home.account_id());
        Kms::new(home, Region::new("us-east-1").unwrap(), ctx)
    };
    let want = pubkey_plaintext();
    let fingerprints = [
        cofre::sign::fingerprint(&public_key_der("rsa")),
        cofre::sign::fingerprint(&public_key_der("ecdh")),
    ];
    for (name, types) in PUBKEY_GOLDEN {
        let sealed = pubkey_dir().join(format!("{name}.cofre"));
        let info = files::inspect(&Input::Path(sealed.clone())).unwrap();
        let kinds: Vec<u8> = info
            .header
            .recipients
            .iter()
            .map(|r| match r {
                cofre::envelope::Recipient::Kms(_) => 1,
                cofre::envelope::Recipient::PublicKey(p) => {
                    let (kind, fp) = match p.scheme {
                        cofre::envelope::PublicKeyScheme::RsaOaepSha256 => (2, fingerprints[0]),
                        cofre::envelope::PublicKeyScheme::Ecdh => (3, fingerprints[1]),
                    };
                    assert_eq!(p.fingerprint, fp, "{name}: recipient names another key");
                    kind
                }
                cofre::envelope::Recipient::Unknown { kind, .. } => *kind,
            })
            .collect();
        assert_eq!(&kinds, types, "{name}");
        for b in Backend::ALL {
            let out = dir.path().join(format!("{name}-{}.out", b.name()));
            let got = decrypt(&kms, &EncryptionContext::new(), &sealed, &out, *b).unwrap();
            assert!(got == want, "{name} with {}: wrong plaintext", b.name());
        }
    }
}

/// Writes testdata/golden/pubkey once, by hand:
///
/// ```text
/// COFRE_GOLDEN_WRITE=1 cargo test --test golden -- --ignored generate_public_key_golden_files
/// ```
#[test]
#[ignore = "writes testdata/golden/pubkey; run by hand, see its doc comment"]
fn generate_public_key_golden_files() {
    if std::env::var_os("COFRE_GOLDEN_WRITE").is_none() {
        panic!("set COFRE_GOLDEN_WRITE=1 to write testdata/golden/pubkey");
    }
    let dir = pubkey_dir();
    assert!(
        !dir.join("home").exists(),
        "testdata/golden/pubkey/home exists: golden files are never regenerated"
    );
    std::env::set_var("COFRE_NOW", "2026-11-29T00:00:00Z");
    let home_dir = dir.join("home");
    std::fs::create_dir_all(home_dir.join("regions")).unwrap();
    std::fs::write(
        home_dir.join("cofre.json"),
        format!("{{\n  \"Version\": 1,\n  \"AccountId\": \"{ACCOUNT}\",\n  \"CreationDate\": \"2026-11-29T00:00:00Z\"\n}}"),
    )
    .unwrap();
    std::fs::write(home_dir.join("domain.key"), TEST_DOMAIN_KEY).unwrap();
    let kms = {
        let home = Home::open(&home_dir, Some(ACCOUNT)).unwrap();
        let ctx = cofre::RequestContext::account_root(home.account_id());
        Kms::new(home, Region::new("us-east-1").unwrap(), ctx)
    };
    use cofre::keyring::{KeySpec, KeyUsage};
    let mut public = Vec::new();
    for (name, spec, usage) in [
        ("rsa", KeySpec::Rsa2048, KeyUsage::EncryptDecrypt),
        ("ecdh", KeySpec::EccNistP256, KeyUsage::KeyAgreement),
    ] {
        let m = kms
            .create_key(&cofre::CreateKeyRequest {
                description: format!("golden files: the {name} recipient"),
                alias: Some(format!("alias/golden-{name}")),
                key_spec: Some(spec),
                key_usage: Some(usage),
                ..Default::default()
            })
            .unwrap();
        let der = kms
            .get_public_key(&m.arn.parse().unwrap())
            .unwrap()
            .public_key;
        std::fs::write(
            dir.join(format!("{name}.pem")),
            cofre::sign::public_key_pem(&der),
        )
        .unwrap();
        public.push(der);
    }
    let sym = kms
        .create_key(&cofre::CreateKeyRequest {
            description: "golden files: the symmetric key of mixed".into(),
            alias: Some("alias/golden-sym".into()),
            ..Default::default()
        })
        .unwrap();
    let plain = dir.join("pubkey.bin");
    std::fs::write(&plain, pubkey_plaintext()).unwrap();
    for (name, keys, pubs) in [
        ("rsa", vec![], &public[..1]),
        ("ecdh", vec![], &public[1..]),
        ("mixed", vec![sym.arn.parse().unwrap()], &public[..]),
    ] {
        files::encrypt_to(
            Some(&kms),
            &keys,
            pubs,
            &EncryptionContext::new(),
            15,
            &Input::Path(plain.clone()),
            &to(&dir.join(format!("{name}.cofre"))),
            Options::default(),
        )
        .unwrap();
    }
    std::fs::remove_file(&plain).unwrap();
    // The trail of the generation requests and the lock files are not part of the fixture.
    let _ = std::fs::remove_dir_all(home_dir.join("regions/us-east-1/audit"));
    let _ = std::fs::remove_file(home_dir.join("regions/us-east-1/.lock"));
    let _ = std::fs::remove_file(home_dir.join(".lock"));
}
