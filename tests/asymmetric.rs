//! Asymmetric (RSA, ECC) and HMAC keys through the CLI, end to end and against the openssl
//! command-line tool: OAEP ciphertexts made by openssl open with `kms decrypt`; signatures made
//! by cofre verify with `openssl dgst` and openssl's verify with `cofre verify --pubkey`; every
//! key spec takes only its usages and every operation only its algorithms; the plaintext and
//! message limits at their exact boundaries; encryption contexts; files encrypted offline to
//! public keys (alone or mixed with symmetric keys); HMACs; data keys and data key pairs; and
//! the audit trail, which records the calls and never their plaintext.
//!
//! These tests need `openssl` on PATH and fail (never skip) without it.

mod common;

use assert_cmd::prelude::*;
use base64::Engine as _;
use common::ENV;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use tempfile::TempDir;

// ── Helpers ───────────────────────────────────────────────────────────────────────────────

const USAGE: i32 = 2;
const ACCESS: i32 = 3;
const INTEGRITY: i32 = 4;

/// The folder `COFRE_HOME` names for offline commands; it must never come to exist.
const NOWHERE: &str = "nowhere";

const SPECS: [&str; 12] = [
    "SYMMETRIC_DEFAULT",
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
];

const USAGES: [&str; 4] = [
    "ENCRYPT_DECRYPT",
    "SIGN_VERIFY",
    "GENERATE_VERIFY_MAC",
    "KEY_AGREEMENT",
];

/// The `key describe` fields that list a key's algorithms: a key shows only the one for its
/// usage.
const ALGORITHM_LISTS: [&str; 4] = [
    "EncryptionAlgorithms",
    "SigningAlgorithms",
    "MacAlgorithms",
    "KeyAgreementAlgorithms",
];

const RSA_SIGNING: [&str; 6] = [
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
];

/// Every (key spec, signing algorithm) pair KMS allows.
const SIGNING: [(&str, &str); 10] = [
    ("RSA_2048", "RSASSA_PSS_SHA_256"),
    ("RSA_2048", "RSASSA_PSS_SHA_384"),
    ("RSA_2048", "RSASSA_PSS_SHA_512"),
    ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256"),
    ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_384"),
    ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_512"),
    ("ECC_NIST_P256", "ECDSA_SHA_256"),
    ("ECC_NIST_P384", "ECDSA_SHA_384"),
    ("ECC_NIST_P521", "ECDSA_SHA_512"),
    ("ECC_SECG_P256K1", "ECDSA_SHA_256"),
];

/// The scheme `inspect` names for a data key wrapped to an ECC KEY_AGREEMENT public key.
const ECDH_SCHEME: &str = "ECDH/HKDF-SHA256/AES-256-GCM";

/// The usages a key spec takes.
fn usages_of(spec: &str) -> &'static [&'static str] {
    match spec {
        "SYMMETRIC_DEFAULT" => &["ENCRYPT_DECRYPT"],
        "RSA_2048" | "RSA_3072" | "RSA_4096" => &["ENCRYPT_DECRYPT", "SIGN_VERIFY"],
        "ECC_NIST_P256" | "ECC_NIST_P384" | "ECC_NIST_P521" => &["SIGN_VERIFY", "KEY_AGREEMENT"],
        "ECC_SECG_P256K1" => &["SIGN_VERIFY"],
        s if s.starts_with("HMAC_") => &["GENERATE_VERIFY_MAC"],
        _ => panic!("no such spec {spec}"),
    }
}

/// The `key describe` field listing the algorithms of a key of `spec` and `usage`, and the list.
fn algorithms_of(spec: &str, usage: &str) -> (&'static str, Vec<String>) {
    let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    match (spec, usage) {
        ("SYMMETRIC_DEFAULT", _) => ("EncryptionAlgorithms", list(&["SYMMETRIC_DEFAULT"])),
        (_, "ENCRYPT_DECRYPT") => (
            "EncryptionAlgorithms",
            list(&["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]),
        ),
        (_, "KEY_AGREEMENT") => ("KeyAgreementAlgorithms", list(&["ECDH"])),
        (_, "GENERATE_VERIFY_MAC") => (
            "MacAlgorithms",
            vec![format!("HMAC_SHA_{}", &spec["HMAC_".len()..])],
        ),
        (s, "SIGN_VERIFY") if s.starts_with("RSA_") => ("SigningAlgorithms", list(&RSA_SIGNING)),
        (s, "SIGN_VERIFY") => ("SigningAlgorithms", vec![default_signing(s).to_owned()]),
        _ => panic!("no algorithms for {spec} {usage}"),
    }
}

/// The algorithm `cofre sign` and `cofre verify` use when given none.
fn default_signing(spec: &str) -> &'static str {
    match spec {
        "RSA_2048" | "RSA_3072" | "RSA_4096" => "RSASSA_PSS_SHA_256",
        "ECC_NIST_P256" | "ECC_SECG_P256K1" => "ECDSA_SHA_256",
        "ECC_NIST_P384" => "ECDSA_SHA_384",
        "ECC_NIST_P521" => "ECDSA_SHA_512",
        _ => panic!("{spec} does not sign"),
    }
}

/// The openssl name of an ECC spec's curve.
fn curve(spec: &str) -> &'static str {
    match spec {
        "ECC_NIST_P256" => "P-256",
        "ECC_NIST_P384" => "P-384",
        "ECC_NIST_P521" => "P-521",
        "ECC_SECG_P256K1" => "secp256k1",
        _ => panic!("{spec} is not an ECC spec"),
    }
}

/// The openssl digest of a signing or MAC algorithm (`sha256` for `…_SHA_256`).
fn md(algorithm: &str) -> String {
    format!("sha{}", algorithm.rsplit('_').next().unwrap())
}

/// The digest length in bytes of a signing or MAC algorithm.
fn digest_len(algorithm: &str) -> usize {
    algorithm
        .rsplit('_')
        .next()
        .unwrap()
        .parse::<usize>()
        .unwrap()
        / 8
}

/// The `openssl dgst` options for an algorithm's padding: PSS with the salt as long as the
/// digest (as KMS signs), or nothing (PKCS #1 v1.5, ECDSA).
fn sigopts(algorithm: &str) -> &'static [&'static str] {
    if algorithm.starts_with("RSASSA_PSS") {
        &[
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:digest",
        ]
    } else {
        &[]
    }
}

/// The built binary with a clean environment, no home chosen and stdin empty.
fn cofre() -> Command {
    let mut c = Command::cargo_bin("cofre").unwrap();
    for v in ENV {
        c.env_remove(v);
    }
    c.stdin(Stdio::null());
    c
}

/// Runs `cmd`, expects success, and returns stdout.
fn ok(mut cmd: Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `cmd`, expects exit `code`, nothing on stdout and one `cofre: …` line on stderr
/// naming every needle; returns that line.
fn fail(mut cmd: Command, code: i32, needles: &[&str]) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{cmd:?}: {err}");
    assert!(
        out.stdout.is_empty(),
        "{cmd:?} printed {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.starts_with("cofre: ") && err.ends_with('\n') && err.lines().count() == 1,
        "{cmd:?}: stderr is not one `cofre: ` line: {err:?}"
    );
    for n in needles {
        assert!(err.contains(n), "{cmd:?}: {err:?} lacks {n:?}");
    }
    err
}

/// Runs the openssl command-line tool in `dir`; fails the test, saying how to get it, if it is
/// missing.
fn openssl_in(dir: &Path, args: &[&str]) -> Output {
    match Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "the asymmetric tests check cofre against the openssl command-line tool, which is \
             not on PATH: install it (apt-get install openssl) and run them again"
        ),
        Err(e) => panic!("could not run openssl: {e}"),
    }
}

fn b64(v: &Value) -> Vec<u8> {
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a string"));
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("{s:?} is not base64: {e}"))
}

fn b64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `n` pseudo-random bytes from `seed`, the same on every call.
fn data(n: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Flips one bit of byte `at`.
fn flipped(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] ^= 1;
    b
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The order n of an ECC spec's curve, big-endian.
fn order(spec: &str) -> Vec<u8> {
    hex::decode(match spec {
        "ECC_NIST_P256" => "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
        "ECC_NIST_P384" => concat!(
            "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf",
            "581a0db248b0a77aecec196accc52973"
        ),
        "ECC_NIST_P521" => concat!(
            "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "fffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e9138",
            "6409"
        ),
        "ECC_SECG_P256K1" => "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        _ => panic!("{spec} is not an ECC spec"),
    })
    .unwrap()
}

/// One DER element at the start of `b`: its tag, its content, and what follows.
fn der_element(b: &[u8]) -> (u8, &[u8], &[u8]) {
    let (len, at) = match b[1] {
        n if n < 0x80 => (n as usize, 2),
        0x81 => (b[2] as usize, 3),
        n => panic!("DER length form {n:#x} in an ECDSA signature"),
    };
    (b[0], &b[at..at + len], &b[at + len..])
}

/// A DER element of `tag` around `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend([0x81, n as u8]),
        n => panic!("DER content of {n} bytes in an ECDSA signature"),
    }
    out.extend(content);
    out
}

/// The DER INTEGER of the unsigned big-endian `magnitude`.
fn der_uint(magnitude: &[u8]) -> Vec<u8> {
    let first = magnitude.iter().position(|b| *b != 0);
    let mut content = first.map_or(vec![0], |i| magnitude[i..].to_vec());
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    der(0x02, &content)
}

/// The other valid form of a DER ECDSA signature (r, s) on `spec`'s curve: (r, n − s). Of the
/// two, one has a low S (s ≤ n/2) and one a high S; ECDSA, openssl and KMS accept both. Returns
/// it and whether the *given* signature's S was high.
fn ecdsa_twin(sig: &[u8], spec: &str) -> (Vec<u8>, bool) {
    let n = order(spec);
    let (tag, seq, rest) = der_element(sig);
    assert!(tag == 0x30 && rest.is_empty(), "not a DER ECDSA signature");
    let (tag, r, rest) = der_element(seq);
    assert_eq!(tag, 0x02);
    let (tag, s, rest) = der_element(rest);
    assert!(tag == 0x02 && rest.is_empty());
    // s, left-padded to n's length; then n − s, byte by byte.
    let s: Vec<u8> = s.iter().skip_while(|b| **b == 0).copied().collect();
    assert!(s.len() <= n.len());
    let s = [vec![0; n.len() - s.len()], s].concat();
    let mut t = vec![0u8; n.len()];
    let mut borrow = 0i16;
    for i in (0..n.len()).rev() {
        let d = n[i] as i16 - s[i] as i16 - borrow;
        borrow = i16::from(d < 0);
        t[i] = d.rem_euclid(256) as u8;
    }
    assert_eq!(borrow, 0, "s is not below the order");
    let high = s > t;
    let seq = [der(0x02, r), der_uint(&t)].concat();
    (der(0x30, &seq), high)
}

/// A temporary folder holding the home (`home`) and the test's files. Commands (cofre and
/// openssl) run inside the folder, so files are named relative to it.
struct Fx {
    dir: TempDir,
}

impl Fx {
    fn new() -> Fx {
        Fx {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        fs::write(self.path(name), bytes).unwrap();
    }

    fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.path(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
    }

    fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    fn assert_gone(&self, name: &str) {
        assert!(!self.exists(name), "{name} was left behind");
        let tmp: Vec<String> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".cofre-tmp-"))
            .collect();
        assert!(tmp.is_empty(), "{tmp:?} left behind");
    }

    /// `cofre --home HOME ARGS…` in the folder, with home `home` (a folder name).
    fn cmd_in(&self, home: &str, args: &[&str]) -> Command {
        let mut c = cofre();
        c.current_dir(self.dir.path())
            .arg("--home")
            .arg(self.path(home))
            .args(args);
        c
    }

    /// `cofre --home HOME ARGS…` in the folder.
    fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_in("home", args)
    }

    /// `cofre ARGS…` with `COFRE_HOME` naming a folder that does not exist (and, checked by
    /// [`Fx::assert_offline`], still does not afterwards).
    fn offline(&self, args: &[&str]) -> Command {
        let mut c = cofre();
        c.current_dir(self.dir.path())
            .env("COFRE_HOME", self.path(NOWHERE))
            .args(args);
        c
    }

    /// `cofre ARGS…` with nothing at all choosing a home (not even HOME).
    fn homeless(&self, args: &[&str]) -> Command {
        let mut c = cofre();
        c.current_dir(self.dir.path()).args(args);
        c
    }

    fn assert_offline(&self) {
        assert!(
            !self.exists(NOWHERE),
            "an offline command created the home COFRE_HOME named"
        );
    }

    fn ok(&self, args: &[&str]) -> Vec<u8> {
        ok(self.cmd(args))
    }

    fn text(&self, args: &[&str]) -> String {
        String::from_utf8(self.ok(args)).unwrap().trim().to_owned()
    }

    /// Runs with `--output json` and parses stdout.
    fn json(&self, args: &[&str]) -> Value {
        let args = [args, &["--output", "json"]].concat();
        serde_json::from_slice(&self.ok(&args)).unwrap()
    }

    fn fail(&self, args: &[&str], code: i32, needles: &[&str]) -> String {
        fail(self.cmd(args), code, needles)
    }

    /// `key create --spec SPEC --usage USAGE`: checks stdout is a key id and returns it.
    fn key(&self, spec: &str, usage: &str) -> String {
        let id = self.text(&["key", "create", "--spec", spec, "--usage", usage]);
        assert_eq!(id.len(), 36, "{id:?} is not a key id");
        id
    }

    fn symmetric_key(&self) -> String {
        self.text(&["key", "create"])
    }

    fn meta(&self, key: &str) -> Value {
        self.json(&["key", "describe", key])["KeyMetadata"].clone()
    }

    fn arn(&self, key: &str) -> String {
        self.meta(key)["Arn"].as_str().unwrap().to_owned()
    }

    /// Writes `key`'s public key to `name` (PEM, or DER if `name` ends in `.der`).
    fn public_key(&self, key: &str, name: &str) {
        let format = if name.ends_with(".der") { "der" } else { "pem" };
        self.ok(&["key", "public-key", key, "-o", name, "--format", format]);
    }

    fn openssl(&self, args: &[&str]) -> Vec<u8> {
        let out = openssl_in(self.dir.path(), args);
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Whether `openssl dgst` accepts `sig` over `msg` under the PEM public key `public`.
    fn openssl_verifies(&self, algorithm: &str, public: &str, sig: &str, msg: &str) -> bool {
        let md = format!("-{}", md(algorithm));
        let mut args = vec!["dgst", md.as_str()];
        args.extend(sigopts(algorithm));
        args.extend(["-verify", public, "-signature", sig, msg]);
        let out = openssl_in(self.dir.path(), &args);
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Verified OK");
        }
        out.status.success()
    }

    /// Signs `msg` with openssl and the private key `private` into `sig`.
    fn openssl_sign(&self, algorithm: &str, private: &str, msg: &str, sig: &str) {
        let md = format!("-{}", md(algorithm));
        let mut args = vec!["dgst", md.as_str()];
        args.extend(sigopts(algorithm));
        args.extend(["-sign", private, "-out", sig, msg]);
        self.openssl(&args);
    }

    /// A key pair made by openssl: `NAME.key` (private, PEM), `NAME.pem` and `NAME.der`.
    fn openssl_pair(&self, spec: &str, name: &str) {
        let key = format!("{name}.key");
        if let Some(size) = spec.strip_prefix("RSA_") {
            let bits = format!("rsa_keygen_bits:{size}");
            self.openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                &bits,
                "-out",
                &key,
            ]);
        } else {
            let c = format!("ec_paramgen_curve:{}", curve(spec));
            self.openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", &c, "-out", &key]);
        }
        let pem = format!("{name}.pem");
        let der = format!("{name}.der");
        self.openssl(&["pkey", "-in", &key, "-pubout", "-out", &pem]);
        self.openssl(&[
            "pkey", "-in", &key, "-pubout", "-outform", "DER", "-out", &der,
        ]);
    }

    /// RSAES-OAEP with `md` for both OAEP and MGF1, by openssl, under the PEM public key.
    fn openssl_oaep(&self, public: &str, md: &str, input: &str, out: &str) {
        let oaep_md = format!("rsa_oaep_md:{md}");
        let mgf1_md = format!("rsa_mgf1_md:{md}");
        self.openssl(&[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            public,
            "-in",
            input,
            "-out",
            out,
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            &oaep_md,
            "-pkeyopt",
            &mgf1_md,
        ]);
    }

    /// The hex SHA-256 of a public key's DER SubjectPublicKeyInfo (PEM file), as cofre names
    /// public-key recipients.
    fn spki_sha256(&self, pem: &str) -> String {
        let der = self.openssl(&["pkey", "-pubin", "-in", pem, "-outform", "DER"]);
        let name = format!("{pem}.spki");
        self.write(&name, &der);
        hex::encode(self.openssl(&["dgst", "-sha256", "-binary", &name]))
    }

    /// The first line of `openssl pkey -text` for a public key file ("Public-Key: (2048 bit)";
    /// openssl 1.1 starts it with "RSA ").
    fn openssl_describes(&self, public: &str, form: &str) -> String {
        let text = self.openssl(&[
            "pkey", "-pubin", "-inform", form, "-in", public, "-noout", "-text",
        ]);
        String::from_utf8(text)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim()
            .trim_start_matches("RSA ")
            .to_owned()
    }
}

/// A key's algorithm lists: the one for its usage holds exactly `algs`; the others are absent.
fn assert_algorithms(m: &Value, field: &str, algs: &[String]) {
    for f in ALGORITHM_LISTS {
        if f == field {
            let got: BTreeSet<&str> = m[f]
                .as_array()
                .unwrap_or_else(|| panic!("{m} has no {f}"))
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            let want: BTreeSet<&str> = algs.iter().map(String::as_str).collect();
            assert_eq!(got, want, "{f} of {m}");
            assert_eq!(m[f].as_array().unwrap().len(), algs.len(), "{m}");
        } else {
            assert!(m.get(f).is_none_or(Value::is_null), "{m} shows {f}");
        }
    }
}

// ── openssl ⇄ cofre ───────────────────────────────────────────────────────────────────────

#[test]
fn openssl_oaep_ciphertexts_open_with_kms_decrypt() {
    let fx = Fx::new();
    let key = fx.key("RSA_2048", "ENCRYPT_DECRYPT");
    fx.ok(&["alias", "create", "alias/oaep", &key]);
    let arn = fx.arn(&key);
    let m = fx.meta(&key);
    assert_eq!(m["KeySpec"], "RSA_2048", "{m}");
    assert_eq!(m["KeyUsage"], "ENCRYPT_DECRYPT", "{m}");
    let (field, algs) = algorithms_of("RSA_2048", "ENCRYPT_DECRYPT");
    assert_algorithms(&m, field, &algs);

    // The public key, PEM and DER, is the SubjectPublicKeyInfo openssl reads.
    fx.public_key(&key, "pub.pem");
    fx.public_key(&key, "pub.der");
    // Which key and what for, then the PEM block (RFC 7468 allows text before it).
    let pem = String::from_utf8(fx.read("pub.pem")).unwrap();
    let head = format!("KeyId: {arn}\nKeySpec: RSA_2048\nKeyUsage: ENCRYPT_DECRYPT\n");
    assert!(pem.starts_with(&head), "{pem}");
    assert!(
        pem[head.len()..].starts_with("-----BEGIN PUBLIC KEY-----\n"),
        "{pem}"
    );
    assert_eq!(fx.ok(&["key", "public-key", &key]), fx.read("pub.pem"));
    assert_eq!(
        fx.openssl_describes("pub.pem", "PEM"),
        "Public-Key: (2048 bit)"
    );
    assert_eq!(
        fx.openssl_describes("pub.der", "DER"),
        "Public-Key: (2048 bit)"
    );
    let der = fx.openssl(&["pkey", "-pubin", "-in", "pub.pem", "-outform", "DER"]);
    assert_eq!(der, fx.read("pub.der"));
    let v = fx.json(&["key", "public-key", "alias/oaep"]);
    assert_eq!(b64(&v["PublicKey"]), der, "{v}");
    assert_eq!(v["KeyId"], arn.as_str(), "{v}");
    assert_eq!(v["KeySpec"], "RSA_2048", "{v}");
    assert_eq!(v["KeyUsage"], "ENCRYPT_DECRYPT", "{v}");

    for (alg, other, md, max) in [
        ("RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1", "sha256", 190),
        ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "sha1", 214),
    ] {
        for n in [1, 100, max] {
            let plain = data(n, n as u64);
            fx.write("p", &plain);
            fx.openssl_oaep("pub.pem", md, "p", "c");
            assert_eq!(fx.read("c").len(), 256);
            let _ = fs::remove_file(fx.path("out"));
            let dec = [
                "kms",
                "decrypt",
                "--ciphertext-file",
                "c",
                "--key",
                &key,
                "--algorithm",
                alg,
            ];
            fx.ok(&[&dec[..], &["-o", "out"]].concat());
            assert_eq!(fx.read("out"), plain, "{alg}, {n} bytes");
            // To stdout, naming the key by alias and by ARN.
            for k in ["alias/oaep", arn.as_str()] {
                let by = [
                    "kms",
                    "decrypt",
                    "--ciphertext-file",
                    "c",
                    "--key",
                    k,
                    "--algorithm",
                    alg,
                ];
                assert_eq!(fx.ok(&by), plain, "{alg} via {k}");
            }
        }
        // The JSON result names the key and algorithm, and keeps the plaintext out.
        let v = fx.json(&[
            "kms",
            "decrypt",
            "--ciphertext-file",
            "c",
            "--key",
            &key,
            "--algorithm",
            alg,
            "-o",
            "out.json",
        ]);
        assert_eq!(v["EncryptionAlgorithm"], alg, "{v}");
        assert_eq!(v["KeyId"], arn.as_str(), "{v}");
        assert!(v.get("Plaintext").is_none(), "{v}");
        assert_eq!(fx.read("out.json").len(), max);
        fs::remove_file(fx.path("out.json")).unwrap();

        // The other OAEP hash, a damaged ciphertext, or no algorithm at all do not open it.
        let wrong = |a: &str, file: &str| {
            fx.fail(
                &[
                    "kms",
                    "decrypt",
                    "--ciphertext-file",
                    file,
                    "--key",
                    &key,
                    "--algorithm",
                    a,
                ],
                INTEGRITY,
                &["InvalidCiphertextException"],
            );
        };
        wrong(other, "c");
        fx.write("bad", &flipped(&fx.read("c"), 100));
        wrong(alg, "bad");
        fx.fail(
            &["kms", "decrypt", "--ciphertext-file", "c", "--key", &key],
            INTEGRITY,
            &["InvalidCiphertextException"],
        );

        // cofre's own ciphertexts: 256 bytes, randomized, and they open too.
        fx.write("p", b"sixteen byte key");
        let enc = |out: &str| {
            fx.ok(&[
                "kms",
                "encrypt",
                "alias/oaep",
                "--plaintext-file",
                "p",
                "--algorithm",
                alg,
                "-o",
                out,
                "-f",
            ]);
            fx.read(out)
        };
        let (c1, c2) = (enc("c1"), enc("c2"));
        assert_eq!(c1.len(), 256);
        assert_ne!(c1, c2, "OAEP is randomized");
        for c in ["c1", "c2"] {
            let d = [
                "kms",
                "decrypt",
                "--ciphertext-file",
                c,
                "--key",
                &key,
                "--algorithm",
                alg,
            ];
            assert_eq!(fx.ok(&d), b"sixteen byte key");
        }
        let v = fx.json(&[
            "kms",
            "encrypt",
            &key,
            "--plaintext-file",
            "p",
            "--algorithm",
            alg,
        ]);
        assert_eq!(v["EncryptionAlgorithm"], alg, "{v}");
        assert_eq!(v["KeyId"], arn.as_str(), "{v}");
        fx.write("c3", &b64(&v["CiphertextBlob"]));
        let d = [
            "kms",
            "decrypt",
            "--ciphertext-file",
            "c3",
            "--key",
            &key,
            "--algorithm",
            alg,
        ];
        assert_eq!(fx.ok(&d), b"sixteen byte key");
    }
    // An RSA ciphertext does not name its key.
    fx.fail(
        &[
            "kms",
            "decrypt",
            "--ciphertext-file",
            "c",
            "--algorithm",
            "RSAES_OAEP_SHA_256",
        ],
        USAGE,
        &["ValidationException", "--key"],
    );
}

/// Signatures made by cofre for each of `cases` (spec, algorithm) — `kms sign` of a message
/// and of its digest, `cofre sign` of a file — verify with `openssl dgst`, and with cofre.
fn cofre_signs_and_openssl_verifies(cases: &[(&str, &str)]) {
    let fx = Fx::new();
    // The largest RAW message, another one, and a file `cofre sign` streams.
    fx.write("msg", &data(4096, 1));
    fx.write("other", &data(4096, 2));
    fx.write("big", &data((2 << 20) + 5, 3));
    fx.write("big.bad", &flipped(&fx.read("big"), 1 << 20));
    let mut keys: BTreeMap<&str, (String, String)> = BTreeMap::new();
    for &(spec, alg) in cases {
        let (key, pem) = keys
            .entry(spec)
            .or_insert_with(|| {
                let key = fx.key(spec, "SIGN_VERIFY");
                let pem = format!("{spec}.pem");
                fx.public_key(&key, &pem);
                let der = format!("{spec}.der");
                fx.public_key(&key, &der);
                fx.openssl_describes(&der, "DER");
                (key, pem)
            })
            .clone();
        let name = |what: &str| format!("{spec}-{alg}.{what}");

        // kms sign, RAW.
        let raw = name("raw");
        fx.ok(&[
            "kms",
            "sign",
            &key,
            "--message-file",
            "msg",
            "--algorithm",
            alg,
            "-o",
            &raw,
        ]);
        assert!(fx.openssl_verifies(alg, &pem, &raw, "msg"), "{spec} {alg}");
        assert!(
            !fx.openssl_verifies(alg, &pem, &raw, "other"),
            "{spec} {alg}"
        );
        if spec.starts_with("RSA_") {
            assert_eq!(fx.read(&raw).len(), 256, "{alg}");
        }
        let verify = |file: &str, sig: &str, kind: &str| {
            let mut c = fx.cmd(&[
                "kms",
                "verify",
                &key,
                "--message-file",
                file,
                "--message-type",
                kind,
                "--algorithm",
                alg,
                "--signature-file",
                sig,
            ]);
            c.arg("--output").arg("json");
            c
        };
        let v: Value = serde_json::from_slice(&ok(verify("msg", &raw, "RAW"))).unwrap();
        assert_eq!(v["SignatureValid"], true, "{v}");
        assert_eq!(v["SigningAlgorithm"], alg, "{v}");
        fail(
            verify("other", &raw, "RAW"),
            INTEGRITY,
            &["KMSInvalidSignatureException"],
        );

        // kms sign with JSON output: the signature is base64.
        let v = fx.json(&[
            "kms",
            "sign",
            &key,
            "--message-file",
            "msg",
            "--algorithm",
            alg,
        ]);
        assert_eq!(v["SigningAlgorithm"], alg, "{v}");
        let json_sig = name("json");
        fx.write(&json_sig, &b64(&v["Signature"]));
        assert!(fx.openssl_verifies(alg, &pem, &json_sig, "msg"), "{alg}");

        // kms sign, DIGEST: openssl's digest of the message.
        let digest = fx.openssl(&["dgst", &format!("-{}", md(alg)), "-binary", "msg"]);
        assert_eq!(digest.len(), digest_len(alg));
        fx.write("digest", &digest);
        let dig = name("dig");
        fx.ok(&[
            "kms",
            "sign",
            &key,
            "--message-file",
            "digest",
            "--message-type",
            "DIGEST",
            "--algorithm",
            alg,
            "-o",
            &dig,
        ]);
        assert!(fx.openssl_verifies(alg, &pem, &dig, "msg"), "{alg} DIGEST");
        // A signature of the message is one of its digest.
        ok(verify("digest", &raw, "DIGEST"));
        // ECDSA: the twin (r, n − s) of cofre's signature is as valid, high S or low.
        if spec.starts_with("ECC_") {
            let (twin, high) = ecdsa_twin(&fx.read(&raw), spec);
            let name = name("twin");
            fx.write(&name, &twin);
            assert!(fx.openssl_verifies(alg, &pem, &name, "msg"), "{spec}");
            let out = verify("msg", &name, "RAW").output().unwrap();
            assert!(
                out.status.success(),
                "{spec}: kms verify refuses a valid signature with a {} S: {}",
                if high { "low" } else { "high" },
                String::from_utf8_lossy(&out.stderr)
            );
            ok(fx.offline(&["verify", "--pubkey", &pem, "msg", &name, "--algorithm", alg]));
        }

        // cofre sign: the whole file, streamed.
        let file = name("file");
        fx.ok(&["sign", &key, "big", "-o", &file, "--algorithm", alg]);
        assert!(fx.openssl_verifies(alg, &pem, &file, "big"), "{alg} file");
        let out = fx.ok(&["verify", &key, "big", &file, "--algorithm", alg]);
        assert_eq!(String::from_utf8_lossy(&out), "signature valid\n");
        ok(fx.offline(&["verify", "--pubkey", &pem, "big", &file, "--algorithm", alg]));
        fx.fail(
            &["verify", &key, "big.bad", &file, "--algorithm", alg],
            INTEGRITY,
            &["KMSInvalidSignatureException"],
        );

        // PKCS #1 v1.5 is deterministic: every way of signing the same message agrees.
        if alg.starts_with("RSASSA_PKCS1") {
            fx.ok(&["sign", &key, "msg", "-o", &name("msg"), "--algorithm", alg]);
            assert_eq!(fx.read(&raw), fx.read(&json_sig), "{alg}");
            assert_eq!(fx.read(&raw), fx.read(&dig), "{alg}");
            assert_eq!(fx.read(&raw), fx.read(&name("msg")), "{alg}");
        }
    }

    // Without --algorithm: PSS with SHA-256 for RSA, the curve's ECDSA for ECC; from stdin too.
    for (spec, (key, pem)) in &keys {
        let alg = default_signing(spec);
        let sig = format!("{spec}.default");
        fx.ok(&["sign", key, "big", "-o", &sig]);
        assert!(fx.openssl_verifies(alg, pem, &sig, "big"), "{spec} {alg}");
        fx.ok(&["verify", key, "big", &sig]);
        ok(fx.offline(&["verify", "--pubkey", pem, "big", &sig]));
        let stdin = format!("{spec}.stdin");
        let mut c = fx.cmd(&["sign", key, "-", "-o", &stdin]);
        c.stdin(fs::File::open(fx.path("big")).unwrap());
        ok(c);
        assert!(fx.openssl_verifies(alg, pem, &stdin, "big"), "{spec} stdin");
        let mut c = fx.cmd(&["verify", key, "-", &sig]);
        c.stdin(fs::File::open(fx.path("big")).unwrap());
        ok(c);
    }
    // `cofre sign` keeps an existing signature unless told.
    let (spec, (key, _)) = keys.iter().next().unwrap();
    let sig = format!("{spec}.default");
    fx.fail(&["sign", key, "big", "-o", &sig], USAGE, &["--force"]);
    fx.ok(&["sign", key, "big", "-o", &sig, "--force"]);
    fx.assert_offline();
}

#[test]
fn rsa_signatures_made_by_cofre_verify_with_openssl() {
    let rsa: Vec<_> = SIGNING
        .into_iter()
        .filter(|(s, _)| s.starts_with("RSA_"))
        .collect();
    assert_eq!(rsa.len(), 6);
    cofre_signs_and_openssl_verifies(&rsa);
}

#[test]
fn ecdsa_signatures_made_by_cofre_verify_with_openssl() {
    let ecc: Vec<_> = SIGNING
        .into_iter()
        .filter(|(s, _)| s.starts_with("ECC_"))
        .collect();
    assert_eq!(ecc.len(), 4);
    cofre_signs_and_openssl_verifies(&ecc);
}

#[test]
fn openssl_signatures_verify_offline_with_pubkey() {
    let fx = Fx::new();
    fx.write("msg", &data((1 << 20) + 3, 4));
    fx.write("tampered", &flipped(&fx.read("msg"), 1 << 19));
    for spec in [
        "RSA_2048",
        "ECC_NIST_P256",
        "ECC_NIST_P384",
        "ECC_NIST_P521",
        "ECC_SECG_P256K1",
    ] {
        fx.openssl_pair(spec, spec);
    }
    for (spec, alg) in SIGNING {
        let (key, pem, der) = (
            format!("{spec}.key"),
            format!("{spec}.pem"),
            format!("{spec}.der"),
        );
        let sig = format!("{spec}-{alg}.sig");
        fx.openssl_sign(alg, &key, "msg", &sig);
        assert!(fx.openssl_verifies(alg, &pem, &sig, "msg"));
        // ECDSA: the signature's twin (r, n − s) is as valid, whichever of the two has the
        // high S: openssl accepts both, and so must cofre (as KMS does).
        if spec.starts_with("ECC_") {
            let (twin, _) = ecdsa_twin(&fx.read(&sig), spec);
            fx.write("twin.sig", &twin);
            assert!(fx.openssl_verifies(alg, &pem, "twin.sig", "msg"), "{spec}");
            for s in [sig.as_str(), "twin.sig"] {
                let (_, high) = ecdsa_twin(&fx.read(s), spec);
                let out = fx
                    .offline(&["verify", "--pubkey", &pem, "msg", s, "--algorithm", alg])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{spec}: a valid signature with a {} S is refused: {}",
                    if high { "high" } else { "low" },
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        for public in [&pem, &der] {
            let out = ok(fx.offline(&[
                "verify",
                "--pubkey",
                public,
                "msg",
                &sig,
                "--algorithm",
                alg,
            ]));
            assert_eq!(String::from_utf8_lossy(&out), "signature valid\n");
            fail(
                fx.offline(&[
                    "verify",
                    "--pubkey",
                    public,
                    "tampered",
                    &sig,
                    "--algorithm",
                    alg,
                ]),
                INTEGRITY,
                &["KMSInvalidSignatureException"],
            );
        }
        // A damaged or cut signature is not valid either.
        let bytes = fx.read(&sig);
        fx.write("sig.bad", &flipped(&bytes, bytes.len() / 2));
        fx.write("sig.short", &bytes[..bytes.len() - 1]);
        for bad in ["sig.bad", "sig.short"] {
            fail(
                fx.offline(&["verify", "--pubkey", &pem, "msg", bad, "--algorithm", alg]),
                INTEGRITY,
                &["KMSInvalidSignatureException"],
            );
        }
        // The default algorithm fits ECDSA on every curve, and RSA signed with PSS SHA-256.
        if spec != "RSA_2048" || alg == "RSASSA_PSS_SHA_256" {
            ok(fx.offline(&["verify", "--pubkey", &pem, "msg", &sig]));
        } else {
            fail(
                fx.offline(&["verify", "--pubkey", &pem, "msg", &sig]),
                INTEGRITY,
                &["KMSInvalidSignatureException"],
            );
        }
        // RSA: the padding or the hash must be the one signed with.
        if spec == "RSA_2048" {
            for wrong in RSA_SIGNING.iter().filter(|a| **a != alg) {
                fail(
                    fx.offline(&[
                        "verify",
                        "--pubkey",
                        &pem,
                        "msg",
                        &sig,
                        "--algorithm",
                        wrong,
                    ]),
                    INTEGRITY,
                    &["KMSInvalidSignatureException"],
                );
            }
        }
    }
    // The file from stdin; the signature under another key of the same curve is refused.
    let mut c = fx.offline(&[
        "verify",
        "--pubkey",
        "ECC_NIST_P384.pem",
        "-",
        "ECC_NIST_P384-ECDSA_SHA_384.sig",
    ]);
    c.stdin(fs::File::open(fx.path("msg")).unwrap());
    ok(c);
    fx.openssl_pair("ECC_NIST_P384", "another");
    fail(
        fx.offline(&[
            "verify",
            "--pubkey",
            "another.pem",
            "msg",
            "ECC_NIST_P384-ECDSA_SHA_384.sig",
        ]),
        INTEGRITY,
        &["KMSInvalidSignatureException"],
    );
    // With no home variable at all, too.
    ok(fx.homeless(&[
        "verify",
        "--pubkey",
        "ECC_NIST_P521.der",
        "msg",
        "ECC_NIST_P521-ECDSA_SHA_512.sig",
    ]));
    fx.assert_offline();
}

// ── Specs, usages and algorithms ──────────────────────────────────────────────────────────

#[test]
fn every_spec_takes_only_its_usages() {
    let fx = Fx::new();
    let mut made = 0;
    for spec in SPECS {
        for usage in USAGES {
            let args = ["key", "create", "--spec", spec, "--usage", usage];
            if !usages_of(spec).contains(&usage) {
                fx.fail(&args, USAGE, &["ValidationException", spec, usage]);
                continue;
            }
            // The RSA_3072 and RSA_4096 keys are made (once) by the OAEP limit tests.
            if spec == "RSA_3072" || spec == "RSA_4096" {
                continue;
            }
            let key = fx.key(spec, usage);
            made += 1;
            let m = fx.meta(&key);
            assert_eq!(m["KeySpec"], spec, "{m}");
            assert_eq!(m["CustomerMasterKeySpec"], spec, "{m}");
            assert_eq!(m["KeyUsage"], usage, "{m}");
            assert_eq!(m["KeyState"], "Enabled", "{m}");
            assert_eq!(m["Origin"], "AWS_KMS", "{m}");
            let (field, algs) = algorithms_of(spec, usage);
            assert_algorithms(&m, field, &algs);
            if spec != "SYMMETRIC_DEFAULT" {
                for rotate in [
                    &["key", "rotation", "enable", &key][..],
                    &["key", "rotate", &key],
                ] {
                    fx.fail(rotate, ACCESS, &["UnsupportedOperationException"]);
                }
            }
        }
    }
    // Only the allowed pairs made keys.
    let count = || fx.json(&["key", "list"])["Keys"].as_array().unwrap().len();
    assert_eq!(count(), made);

    // The usage defaults to ENCRYPT_DECRYPT, which HMAC and ECC keys do not take.
    let rsa = fx.text(&["key", "create", "--spec", "RSA_2048"]);
    assert_eq!(fx.meta(&rsa)["KeyUsage"], "ENCRYPT_DECRYPT");
    for spec in ["HMAC_256", "ECC_NIST_P256", "ECC_SECG_P256K1"] {
        fx.fail(
            &["key", "create", "--spec", spec],
            USAGE,
            &["ValidationException", spec],
        );
    }
    // cofre imports only symmetric key material.
    for (spec, usage) in [
        ("RSA_2048", "ENCRYPT_DECRYPT"),
        ("ECC_NIST_P256", "SIGN_VERIFY"),
        ("HMAC_256", "GENERATE_VERIFY_MAC"),
    ] {
        fx.fail(
            &[
                "key", "create", "--spec", spec, "--usage", usage, "--origin", "EXTERNAL",
            ],
            ACCESS,
            &["UnsupportedOperationException"],
        );
    }
    assert_eq!(count(), made + 1);
}

#[test]
fn algorithms_and_operations_that_do_not_fit_the_key_are_refused() {
    let fx = Fx::new();
    let sym = fx.symmetric_key();
    let rsa_enc = fx.key("RSA_2048", "ENCRYPT_DECRYPT");
    let rsa_sign = fx.key("RSA_2048", "SIGN_VERIFY");
    let p256 = fx.key("ECC_NIST_P256", "SIGN_VERIFY");
    let p256_ka = fx.key("ECC_NIST_P256", "KEY_AGREEMENT");
    let hmac = fx.key("HMAC_256", "GENERATE_VERIFY_MAC");
    fx.public_key(&p256, "p256.pem");
    fx.public_key(&rsa_sign, "rsa.pem");
    fx.write("msg", b"a message that fits every operation");
    fx.write("sig", &[0x30; 72]);
    fx.write("mac", &[0; 32]);
    fx.write("blob", &[1; 256]);

    let sign = |key: &str, alg: &str| -> Vec<String> {
        [
            "kms",
            "sign",
            key,
            "--message-file",
            "msg",
            "--algorithm",
            alg,
            "-o",
            "out",
        ]
        .map(String::from)
        .to_vec()
    };
    let verify = |key: &str, alg: &str| -> Vec<String> {
        [
            "kms",
            "verify",
            key,
            "--message-file",
            "msg",
            "--algorithm",
            alg,
            "--signature-file",
            "sig",
        ]
        .map(String::from)
        .to_vec()
    };
    let encrypt = |key: &str, alg: &str| -> Vec<String> {
        [
            "kms",
            "encrypt",
            key,
            "--plaintext-file",
            "msg",
            "--algorithm",
            alg,
            "-o",
            "out",
        ]
        .map(String::from)
        .to_vec()
    };
    let mac = |key: &str, alg: &str| -> Vec<String> {
        [
            "kms",
            "generate-mac",
            key,
            "--message-file",
            "msg",
            "--algorithm",
            alg,
            "-o",
            "out",
        ]
        .map(String::from)
        .to_vec()
    };
    let verify_mac = |key: &str, alg: &str| -> Vec<String> {
        [
            "kms",
            "verify-mac",
            key,
            "--message-file",
            "msg",
            "--algorithm",
            alg,
            "--mac-file",
            "mac",
        ]
        .map(String::from)
        .to_vec()
    };
    let argv = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };

    let refused: Vec<Vec<String>> = vec![
        // Signing algorithms of another curve, another key type, or another usage.
        sign(&p256, "ECDSA_SHA_384"),
        sign(&p256, "ECDSA_SHA_512"),
        sign(&p256, "RSASSA_PSS_SHA_256"),
        sign(&p256, "RSASSA_PKCS1_V1_5_SHA_256"),
        sign(&rsa_sign, "ECDSA_SHA_256"),
        verify(&p256, "ECDSA_SHA_384"),
        verify(&rsa_sign, "ECDSA_SHA_256"),
        argv(&[
            "sign",
            &p256,
            "msg",
            "-o",
            "out",
            "--algorithm",
            "ECDSA_SHA_384",
        ]),
        argv(&[
            "sign",
            &p256,
            "msg",
            "-o",
            "out",
            "--algorithm",
            "RSASSA_PSS_SHA_256",
        ]),
        argv(&[
            "sign",
            &rsa_sign,
            "msg",
            "-o",
            "out",
            "--algorithm",
            "ECDSA_SHA_256",
        ]),
        argv(&[
            "verify",
            &p256,
            "msg",
            "sig",
            "--algorithm",
            "RSASSA_PSS_SHA_256",
        ]),
        // Keys whose usage is not SIGN_VERIFY.
        sign(&rsa_enc, "RSASSA_PSS_SHA_256"),
        sign(&sym, "RSASSA_PSS_SHA_256"),
        sign(&p256_ka, "ECDSA_SHA_256"),
        sign(&hmac, "ECDSA_SHA_256"),
        verify(&rsa_enc, "RSASSA_PSS_SHA_256"),
        argv(&["sign", &rsa_enc, "msg", "-o", "out"]),
        argv(&["sign", &sym, "msg", "-o", "out"]),
        argv(&["verify", &rsa_enc, "msg", "sig"]),
        // MAC algorithms of another size, and keys that are not HMAC keys.
        mac(&hmac, "HMAC_SHA_512"),
        mac(&hmac, "HMAC_SHA_224"),
        verify_mac(&hmac, "HMAC_SHA_384"),
        mac(&sym, "HMAC_SHA_256"),
        mac(&rsa_sign, "HMAC_SHA_256"),
        verify_mac(&p256, "HMAC_SHA_256"),
        // Encryption algorithms of another key type, and keys that do not encrypt.
        encrypt(&rsa_enc, "SYMMETRIC_DEFAULT"),
        encrypt(&sym, "RSAES_OAEP_SHA_256"),
        encrypt(&sym, "RSAES_OAEP_SHA_1"),
        encrypt(&rsa_sign, "RSAES_OAEP_SHA_256"),
        encrypt(&p256_ka, "SYMMETRIC_DEFAULT"),
        encrypt(&p256, "SYMMETRIC_DEFAULT"),
        encrypt(&hmac, "SYMMETRIC_DEFAULT"),
        argv(&[
            "kms",
            "decrypt",
            "--ciphertext-file",
            "blob",
            "--key",
            &sym,
            "--algorithm",
            "RSAES_OAEP_SHA_256",
            "-o",
            "out",
        ]),
        argv(&[
            "kms",
            "decrypt",
            "--ciphertext-file",
            "blob",
            "--key",
            &rsa_sign,
            "--algorithm",
            "RSAES_OAEP_SHA_256",
            "-o",
            "out",
        ]),
        // Data keys and files need a symmetric key to wrap under.
        argv(&[
            "kms",
            "generate-data-key",
            &rsa_enc,
            "--plaintext-out",
            "out",
        ]),
        argv(&[
            "kms",
            "generate-data-key-pair",
            &p256_ka,
            "--pair-spec",
            "ECC_NIST_P256",
            "--private-key-out",
            "out",
        ]),
        argv(&["encrypt", "-k", &rsa_enc, "msg", "-o", "out"]),
        argv(&["encrypt", "-k", &hmac, "msg", "-o", "out"]),
        // Symmetric and HMAC keys have no public key.
        argv(&["key", "public-key", &sym, "-o", "out"]),
        argv(&["key", "public-key", &hmac, "-o", "out"]),
    ];
    for args in &refused {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fx.fail(&args, USAGE, &["InvalidKeyUsageException"]);
        fx.assert_gone("out");
    }
    // Offline, the public key's type decides.
    for (pem, alg) in [
        ("p256.pem", "ECDSA_SHA_384"),
        ("p256.pem", "RSASSA_PSS_SHA_256"),
        ("rsa.pem", "ECDSA_SHA_256"),
    ] {
        fail(
            fx.offline(&["verify", "--pubkey", pem, "msg", "sig", "--algorithm", alg]),
            USAGE,
            &["InvalidKeyUsageException"],
        );
    }
    fx.assert_offline();
}

// ── Limits ────────────────────────────────────────────────────────────────────────────────

/// An RSA ENCRYPT_DECRYPT key of `spec` encrypts exactly up to the OAEP limit of each hash,
/// both ways (cofre and openssl), and refuses one byte more and nothing at all.
fn rsa_oaep_limits(spec: &str, sha256_max: usize, sha1_max: usize) {
    let fx = Fx::new();
    let key = fx.key(spec, "ENCRYPT_DECRYPT");
    let m = fx.meta(&key);
    assert_eq!(m["KeySpec"], spec, "{m}");
    let (field, algs) = algorithms_of(spec, "ENCRYPT_DECRYPT");
    assert_algorithms(&m, field, &algs);
    fx.public_key(&key, "pub.pem");
    let bits = &spec["RSA_".len()..];
    assert_eq!(
        fx.openssl_describes("pub.pem", "PEM"),
        format!("Public-Key: ({bits} bit)")
    );
    let modulus: usize = bits.parse::<usize>().unwrap() / 8;
    for (alg, md, max) in [
        ("RSAES_OAEP_SHA_256", "sha256", sha256_max),
        ("RSAES_OAEP_SHA_1", "sha1", sha1_max),
    ] {
        let enc = [
            "kms",
            "encrypt",
            &key,
            "--plaintext-file",
            "p",
            "--algorithm",
            alg,
            "-o",
            "c",
            "-f",
        ];
        let dec = [
            "kms",
            "decrypt",
            "--ciphertext-file",
            "c",
            "--key",
            &key,
            "--algorithm",
            alg,
        ];
        let plain = data(max, max as u64);
        fx.write("p", &plain);
        fx.ok(&enc);
        assert_eq!(fx.read("c").len(), modulus);
        assert_eq!(fx.ok(&dec), plain, "{spec} {alg} {max}");
        // openssl's ciphertext of the largest plaintext opens too.
        fx.openssl_oaep("pub.pem", md, "p", "c");
        assert_eq!(fx.ok(&dec), plain, "{spec} {alg} {max} from openssl");

        fs::remove_file(fx.path("c")).unwrap();
        for n in [max + 1, 0] {
            fx.write("p", &data(n, 7));
            let too = format!("{n} bytes");
            let limit = format!("1 to {max} bytes");
            fx.fail(&enc, USAGE, &["ValidationException", &too, &limit]);
            fx.assert_gone("c");
        }
    }
}

#[test]
fn rsa_3072_oaep_limits_are_exact() {
    rsa_oaep_limits("RSA_3072", 318, 342);
}

#[test]
fn rsa_4096_oaep_limits_are_exact() {
    rsa_oaep_limits("RSA_4096", 446, 470);
}

#[test]
fn plaintext_and_message_limits_are_exact() {
    rsa_oaep_limits("RSA_2048", 190, 214);

    let fx = Fx::new();
    // Symmetric: 1 to 4096 bytes.
    let sym = fx.symmetric_key();
    for n in [1, 4096] {
        let plain = data(n, 9);
        fx.write("p", &plain);
        fx.ok(&[
            "kms",
            "encrypt",
            &sym,
            "--plaintext-file",
            "p",
            "-o",
            "c",
            "-f",
        ]);
        assert_eq!(fx.ok(&["kms", "decrypt", "--ciphertext-file", "c"]), plain);
    }
    fs::remove_file(fx.path("c")).unwrap();
    for n in [4097, 0] {
        fx.write("p", &data(n, 9));
        fx.fail(
            &["kms", "encrypt", &sym, "--plaintext-file", "p", "-o", "c"],
            USAGE,
            &[
                "ValidationException",
                &format!("{n} bytes"),
                "1 to 4096 bytes",
            ],
        );
        fx.assert_gone("c");
    }

    // Signing: RAW messages of 1 to 4096 bytes; DIGEST messages of the hash's length.
    let p256 = fx.key("ECC_NIST_P256", "SIGN_VERIFY");
    let p384 = fx.key("ECC_NIST_P384", "SIGN_VERIFY");
    let rsa = fx.key("RSA_2048", "SIGN_VERIFY");
    let sign = |key: &str, kind: &str, alg: &str, n: usize| {
        fx.write("m", &data(n, n as u64));
        let _ = fs::remove_file(fx.path("s"));
        fx.cmd(&[
            "kms",
            "sign",
            key,
            "--message-file",
            "m",
            "--message-type",
            kind,
            "--algorithm",
            alg,
            "-o",
            "s",
        ])
    };
    let verify = |key: &str, kind: &str, alg: &str| {
        fx.cmd(&[
            "kms",
            "verify",
            key,
            "--message-file",
            "m",
            "--message-type",
            kind,
            "--algorithm",
            alg,
            "--signature-file",
            "s",
        ])
    };
    for (key, alg) in [(&p256, "ECDSA_SHA_256"), (&rsa, "RSASSA_PSS_SHA_512")] {
        for n in [1, 4096] {
            ok(sign(key, "RAW", alg, n));
            ok(verify(key, "RAW", alg));
        }
        for n in [4097, 0] {
            fail(
                sign(key, "RAW", alg, n),
                USAGE,
                &["ValidationException", &format!("{n} bytes")],
            );
            fx.assert_gone("s");
        }
        // A signature is not checked against a message too long to sign.
        fx.write("s", &[0x30; 64]);
        fx.write("m", &data(4097, 1));
        fail(verify(key, "RAW", alg), USAGE, &["ValidationException"]);
    }
    for (key, alg) in [
        (&p256, "ECDSA_SHA_256"),
        (&p384, "ECDSA_SHA_384"),
        (&rsa, "RSASSA_PSS_SHA_384"),
        (&rsa, "RSASSA_PKCS1_V1_5_SHA_512"),
    ] {
        let len = digest_len(alg);
        ok(sign(key, "DIGEST", alg, len));
        ok(verify(key, "DIGEST", alg));
        for n in [len - 1, len + 1, 32, 48, 64, 0] {
            if n == len {
                continue;
            }
            fail(
                sign(key, "DIGEST", alg, n),
                USAGE,
                &["ValidationException", &len.to_string()],
            );
            fx.assert_gone("s");
            fx.write("s", &[0x30; 64]);
            fail(verify(key, "DIGEST", alg), USAGE, &["ValidationException"]);
        }
    }

    // MACs: messages of 1 to 4096 bytes.
    let hmac = fx.key("HMAC_384", "GENERATE_VERIFY_MAC");
    let mac = |n: usize| {
        fx.write("m", &data(n, 3));
        fx.cmd(&[
            "kms",
            "generate-mac",
            &hmac,
            "--message-file",
            "m",
            "--algorithm",
            "HMAC_SHA_384",
        ])
    };
    for n in [1, 4096] {
        assert_eq!(ok(mac(n)).len(), 48);
    }
    for n in [4097, 0] {
        fail(
            mac(n),
            USAGE,
            &["ValidationException", &format!("{n} bytes")],
        );
    }

    // Random bytes: 1 to 1024.
    for n in [1, 1024] {
        let out = fx.ok(&["kms", "generate-random", &n.to_string()]);
        assert_eq!(out.len(), n);
    }
    for n in ["0", "1025"] {
        fx.fail(
            &["kms", "generate-random", n],
            USAGE,
            &["ValidationException", n],
        );
    }
}

// ── Encryption context ────────────────────────────────────────────────────────────────────

#[test]
fn the_encryption_context_binds_symmetric_ciphertexts() {
    let fx = Fx::new();
    let a = fx.symmetric_key();
    let b = fx.symmetric_key();
    let rsa = fx.key("RSA_2048", "ENCRYPT_DECRYPT");
    let (arn_a, arn_b) = (fx.arn(&a), fx.arn(&b));
    let plain = b"a secret bound to its context".to_vec();
    fx.write("p", &plain);
    fx.ok(&[
        "kms",
        "encrypt",
        &a,
        "--plaintext-file",
        "p",
        "-c",
        "a=b",
        "-o",
        "c",
    ]);

    let dec = |file: &str, extra: &[&str]| {
        let mut c = fx.cmd(&["kms", "decrypt", "--ciphertext-file", file]);
        c.args(extra);
        c
    };
    // Only the same context opens it: not another value, another set, or none.
    for ctx in [
        &["-c", "a=c"][..],
        &[],
        &["-c", "a=b", "-c", "x=y"],
        &["-c", "b=b"],
        &["-c", "A=b"],
    ] {
        fail(dec("c", ctx), INTEGRITY, &["InvalidCiphertextException"]);
    }
    assert_eq!(ok(dec("c", &["-c", "a=b"])), plain);
    assert_eq!(ok(dec("c", &["-c", "a=b", "--key", &arn_a])), plain);
    // The blob names its key: --key must agree.
    fail(
        dec("c", &["-c", "a=b", "--key", &b]),
        INTEGRITY,
        &["IncorrectKeyException", &arn_a, &arn_b],
    );
    // A damaged blob.
    let blob = fx.read("c");
    fx.write("c.bad", &flipped(&blob, blob.len() - 3));
    fail(
        dec("c.bad", &["-c", "a=b"]),
        INTEGRITY,
        &["InvalidCiphertextException"],
    );

    // RSA keys take no context.
    fx.fail(
        &[
            "kms",
            "encrypt",
            &rsa,
            "--plaintext-file",
            "p",
            "--algorithm",
            "RSAES_OAEP_SHA_256",
            "-c",
            "a=b",
            "-o",
            "r",
        ],
        USAGE,
        &["ValidationException"],
    );
    fx.assert_gone("r");

    // Re-encrypt from a (context a=b) to b (context x=y).
    let reenc = |args: &[&str]| {
        let mut c = fx.cmd(&["kms", "re-encrypt"]);
        c.args(args);
        c
    };
    ok(reenc(&[
        "--ciphertext-file",
        "c",
        "--source-context",
        "a=b",
        "--destination-key",
        &b,
        "--destination-context",
        "x=y",
        "-o",
        "c2",
    ]));
    assert_eq!(ok(dec("c2", &["-c", "x=y"])), plain);
    fail(
        dec("c2", &["-c", "a=b"]),
        INTEGRITY,
        &["InvalidCiphertextException"],
    );
    fail(dec("c2", &[]), INTEGRITY, &["InvalidCiphertextException"]);
    fail(
        dec("c2", &["-c", "x=y", "--key", &a]),
        INTEGRITY,
        &["IncorrectKeyException"],
    );
    // The source context must be the one the blob was made with; the source key its own.
    fail(
        reenc(&[
            "--ciphertext-file",
            "c",
            "--source-context",
            "a=c",
            "--destination-key",
            &b,
            "-o",
            "c3",
        ]),
        INTEGRITY,
        &["InvalidCiphertextException"],
    );
    fx.assert_gone("c3");
    fail(
        reenc(&[
            "--ciphertext-file",
            "c",
            "--source-context",
            "a=b",
            "--source-key",
            &b,
            "--destination-key",
            &b,
            "-o",
            "c3",
        ]),
        INTEGRITY,
        &["IncorrectKeyException"],
    );
    fx.assert_gone("c3");
    // JSON: both keys by ARN and the blob in base64.
    let mut c = reenc(&[
        "--ciphertext-file",
        "c",
        "--source-context",
        "a=b",
        "--destination-key",
        &b,
        "--destination-context",
        "k=v",
    ]);
    c.args(["--output", "json"]);
    let v: Value = serde_json::from_slice(&ok(c)).unwrap();
    assert_eq!(v["SourceKeyId"], arn_a.as_str(), "{v}");
    assert_eq!(v["KeyId"], arn_b.as_str(), "{v}");
    assert_eq!(v["SourceEncryptionAlgorithm"], "SYMMETRIC_DEFAULT", "{v}");
    assert_eq!(
        v["DestinationEncryptionAlgorithm"], "SYMMETRIC_DEFAULT",
        "{v}"
    );
    fx.write("c4", &b64(&v["CiphertextBlob"]));
    assert_eq!(ok(dec("c4", &["-c", "k=v"])), plain);

    // Into an RSA key (no context there) and back into a with a new context.
    fail(
        reenc(&[
            "--ciphertext-file",
            "c2",
            "--source-context",
            "x=y",
            "--destination-key",
            &rsa,
            "--destination-algorithm",
            "RSAES_OAEP_SHA_256",
            "--destination-context",
            "a=b",
            "-o",
            "r",
        ]),
        USAGE,
        &["ValidationException"],
    );
    fx.assert_gone("r");
    ok(reenc(&[
        "--ciphertext-file",
        "c2",
        "--source-context",
        "x=y",
        "--destination-key",
        &rsa,
        "--destination-algorithm",
        "RSAES_OAEP_SHA_256",
        "-o",
        "r",
    ]));
    assert_eq!(fx.read("r").len(), 256);
    let rsa_dec = ["--key", rsa.as_str(), "--algorithm", "RSAES_OAEP_SHA_256"];
    assert_eq!(ok(dec("r", &rsa_dec)), plain);
    fx.fail(
        &[
            "kms",
            "decrypt",
            "--ciphertext-file",
            "r",
            "--key",
            &rsa,
            "--algorithm",
            "RSAES_OAEP_SHA_256",
            "-c",
            "a=b",
        ],
        USAGE,
        &["ValidationException"],
    );
    ok(reenc(&[
        "--ciphertext-file",
        "r",
        "--source-key",
        &rsa,
        "--source-algorithm",
        "RSAES_OAEP_SHA_256",
        "--destination-key",
        &a,
        "--destination-context",
        "back=again",
        "-o",
        "c5",
    ]));
    assert_eq!(ok(dec("c5", &["-c", "back=again"])), plain);
    fail(dec("c5", &[]), INTEGRITY, &["InvalidCiphertextException"]);
}

// ── Files encrypted to public keys ────────────────────────────────────────────────────────

#[test]
fn files_encrypted_offline_to_public_keys_open_in_the_keyring() {
    let fx = Fx::new();
    let plain = data((2 << 20) + 77, 5);
    fx.write("plain", &plain);
    let mut pems = Vec::new();
    let mut keys = Vec::new();
    for (i, (spec, usage, scheme)) in [
        ("RSA_2048", "ENCRYPT_DECRYPT", "RSAES_OAEP_SHA_256"),
        ("ECC_NIST_P256", "KEY_AGREEMENT", ECDH_SCHEME),
        ("ECC_NIST_P384", "KEY_AGREEMENT", ECDH_SCHEME),
        ("ECC_NIST_P521", "KEY_AGREEMENT", ECDH_SCHEME),
    ]
    .into_iter()
    .enumerate()
    {
        let key = fx.key(spec, usage);
        let (pem, der) = (format!("{spec}.pem"), format!("{spec}.der"));
        fx.public_key(&key, &pem);
        fx.public_key(&key, &der);
        let sha = fx.spki_sha256(&pem);

        // Encrypt with no home: alternately none chosen at all, and COFRE_HOME naming nothing;
        // and alternately the PEM and the DER form.
        let sealed = format!("{spec}.cofre");
        let public = if i % 2 == 0 { &pem } else { &der };
        let args = [
            "encrypt",
            "--recipient-pubkey",
            public,
            "plain",
            "-o",
            &sealed,
        ];
        let stdout = ok(if i < 2 {
            fx.homeless(&args)
        } else {
            fx.offline(&args)
        });
        assert!(stdout.is_empty());
        fx.assert_offline();

        // `inspect` names the recipient by its key's SHA-256, offline too.
        let v: Value =
            serde_json::from_slice(&ok(fx.offline(&["inspect", &sealed, "--output", "json"])))
                .unwrap();
        assert_eq!(
            v["PublicKeyRecipients"],
            serde_json::json!([{"PublicKeySha256": sha, "Scheme": scheme}]),
            "{spec}: {v}"
        );
        assert_eq!(v["WrappedKeys"], serde_json::json!([]), "{v}");
        assert_eq!(v["PayloadLength"], plain.len(), "{v}");
        let text = String::from_utf8(fx.ok(&["inspect", &sealed])).unwrap();
        assert!(text.contains(&format!("sha256:{sha}")), "{text}");
        assert!(!contains(&fx.read(&sealed), &plain[..64]));

        // The keyring holding the private key opens it.
        let out = format!("{spec}.out");
        assert!(fx.ok(&["decrypt", &sealed, "-o", &out]).is_empty());
        assert!(fx.read(&out) == plain, "{spec}");
        pems.push(pem);
        keys.push(key);
    }

    // All four recipients in one file, from stdin, with a context.
    let mut args = vec!["encrypt", "-c", "purpose=test", "-o", "all.cofre"];
    for p in &pems {
        args.extend(["--recipient-pubkey", p.as_str()]);
    }
    let mut c = fx.offline(&args);
    c.stdin(fs::File::open(fx.path("plain")).unwrap());
    ok(c);
    fx.assert_offline();
    let v = fx.json(&["inspect", "all.cofre"]);
    assert_eq!(v["PublicKeyRecipients"].as_array().unwrap().len(), 4, "{v}");
    assert_eq!(v["EncryptionContext"]["purpose"], "test", "{v}");
    let open = || fx.cmd(&["decrypt", "all.cofre", "-c", "purpose=test"]);
    assert!(ok(open()) == plain);
    fail(
        fx.cmd(&["decrypt", "all.cofre", "-c", "purpose=prod"]),
        ACCESS,
        &["purpose"],
    );
    // Any one recipient's key opens it; with all of them disabled, nothing does.
    for (i, key) in keys.iter().enumerate() {
        if i + 1 < keys.len() {
            fx.ok(&["key", "disable", key]);
            assert!(ok(open()) == plain, "after disabling {i} keys");
        }
    }
    fx.ok(&["key", "disable", &keys[3]]);
    fail(
        fx.cmd(&["decrypt", "all.cofre", "-c", "purpose=test", "-o", "none"]),
        ACCESS,
        &["DisabledException"],
    );
    fx.assert_gone("none");
}

#[test]
fn symmetric_and_public_key_recipients_mix_and_any_one_opens() {
    let fx = Fx::new();
    let sym = fx.symmetric_key();
    let rsa = fx.key("RSA_2048", "ENCRYPT_DECRYPT");
    let ka = fx.key("ECC_NIST_P384", "KEY_AGREEMENT");
    fx.public_key(&rsa, "rsa.pem");
    fx.public_key(&ka, "ka.der");
    fx.openssl(&[
        "pkey", "-pubin", "-inform", "DER", "-in", "ka.der", "-out", "ka.pem",
    ]);
    let plain = data((1 << 20) + 11, 6);
    fx.write("plain", &plain);
    fx.ok(&[
        "encrypt",
        "-k",
        &sym,
        "--recipient-pubkey",
        "rsa.pem",
        "--recipient-pubkey",
        "ka.der",
        "plain",
        "-o",
        "mixed.cofre",
    ]);
    let v = fx.json(&["inspect", "mixed.cofre"]);
    let wrapped = v["WrappedKeys"].as_array().unwrap();
    assert_eq!(wrapped.len(), 1, "{v}");
    assert_eq!(wrapped[0]["KeyArn"], fx.arn(&sym).as_str(), "{v}");
    assert_eq!(
        v["PublicKeyRecipients"],
        serde_json::json!([
            {"PublicKeySha256": fx.spki_sha256("rsa.pem"), "Scheme": "RSAES_OAEP_SHA_256"},
            {"PublicKeySha256": fx.spki_sha256("ka.pem"), "Scheme": ECDH_SCHEME},
        ]),
        "{v}"
    );
    let opens = |why: &str| {
        let _ = fs::remove_file(fx.path("out"));
        fx.ok(&["decrypt", "mixed.cofre", "-o", "out"]);
        assert!(fx.read("out") == plain, "{why}");
    };
    opens("every key enabled");
    // The symmetric key disabled: the public-key recipients open it.
    fx.ok(&["key", "disable", &sym]);
    opens("through RSA or ECDH");
    fx.ok(&["key", "disable", &rsa]);
    opens("through ECDH");
    fx.ok(&["key", "enable", &rsa]);
    fx.ok(&["key", "disable", &ka]);
    opens("through RSA");
    // Only the symmetric key enabled.
    fx.ok(&["key", "enable", &sym]);
    fx.ok(&["key", "disable", &rsa]);
    opens("through the symmetric key");
    // None enabled.
    fx.ok(&["key", "disable", &sym]);
    fx.fail(
        &["decrypt", "mixed.cofre", "-o", "out2"],
        ACCESS,
        &["DisabledException"],
    );
    fx.assert_gone("out2");
}

#[test]
fn a_file_for_a_key_the_keyring_lacks_is_refused_clearly_and_leaves_no_output() {
    let fx = Fx::new();
    let rsa = fx.key("RSA_2048", "ENCRYPT_DECRYPT");
    fx.public_key(&rsa, "rsa.pem");
    let rsa_sha = fx.spki_sha256("rsa.pem");
    // A P-256 key pair only openssl has.
    fx.openssl_pair("ECC_NIST_P256", "stranger");
    let stranger_sha = fx.spki_sha256("stranger.pem");
    fx.write("plain", &data(300_000, 8));
    ok(fx.offline(&[
        "encrypt",
        "--recipient-pubkey",
        "rsa.pem",
        "plain",
        "-o",
        "rsa.cofre",
    ]));
    ok(fx.offline(&[
        "encrypt",
        "--recipient-pubkey",
        "stranger.pem",
        "plain",
        "-o",
        "stranger.cofre",
    ]));
    fx.assert_offline();

    // The keyring with keys, but not that one.
    let sha = format!("sha256:{stranger_sha}");
    fx.fail(
        &["decrypt", "stranger.cofre", "-o", "out"],
        ACCESS,
        &["NotFoundException", &sha],
    );
    fx.assert_gone("out");
    fx.fail(
        &["decrypt", "stranger.cofre"],
        ACCESS,
        &["NotFoundException", &sha],
    );
    // Another home, without the RSA key.
    let sha = format!("sha256:{rsa_sha}");
    fail(
        fx.cmd_in("other", &["decrypt", "rsa.cofre", "-o", "out"]),
        ACCESS,
        &["NotFoundException", &sha],
    );
    fx.assert_gone("out");
    // The home with the key opens it.
    fx.ok(&["decrypt", "rsa.cofre", "-o", "out"]);
    assert!(fx.read("out") == fx.read("plain"));
}

#[test]
fn only_rsa_and_nist_curve_public_keys_take_files() {
    let fx = Fx::new();
    let k1 = fx.key("ECC_SECG_P256K1", "SIGN_VERIFY");
    let rsa = fx.key("RSA_2048", "ENCRYPT_DECRYPT");
    fx.public_key(&k1, "k1.pem");
    fx.public_key(&rsa, "rsa.pem");
    fx.openssl_pair("ECC_SECG_P256K1", "k1-openssl");
    fx.write("plain", b"for a secp256k1 key");
    fx.write(
        "garbage.pem",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    );
    for recipients in [&["k1.pem"][..], &["k1-openssl.der"], &["rsa.pem", "k1.pem"]] {
        let mut args = vec!["encrypt", "plain", "-o", "out"];
        for r in recipients {
            args.extend(["--recipient-pubkey", r]);
        }
        fail(fx.offline(&args), USAGE, &["secp256k1"]);
        fx.assert_gone("out");
    }
    fail(
        fx.offline(&[
            "encrypt",
            "--recipient-pubkey",
            "garbage.pem",
            "plain",
            "-o",
            "out",
        ]),
        USAGE,
        &["garbage.pem"],
    );
    fx.assert_gone("out");
    fx.assert_offline();
}

// ── HMAC ──────────────────────────────────────────────────────────────────────────────────

#[test]
fn macs_have_the_hash_length_and_catch_any_change() {
    let fx = Fx::new();
    fx.write("msg", &data(1000, 10));
    fx.write("other", &flipped(&fx.read("msg"), 999));
    for (spec, alg, len) in [
        ("HMAC_224", "HMAC_SHA_224", 28),
        ("HMAC_256", "HMAC_SHA_256", 32),
        ("HMAC_384", "HMAC_SHA_384", 48),
        ("HMAC_512", "HMAC_SHA_512", 64),
    ] {
        let key = fx.key(spec, "GENERATE_VERIFY_MAC");
        let other_key = fx.key(spec, "GENERATE_VERIFY_MAC");
        let gen = |key: &str, msg: &str, out: &str| {
            fx.ok(&[
                "kms",
                "generate-mac",
                key,
                "--message-file",
                msg,
                "--algorithm",
                alg,
                "-o",
                out,
                "-f",
            ]);
            fx.read(out)
        };
        let mac = gen(&key, "msg", "mac");
        assert_eq!(mac.len(), len, "{spec}");
        assert_eq!(gen(&key, "msg", "again"), mac, "HMAC is deterministic");
        assert_ne!(gen(&key, "other", "m2"), mac);
        assert_ne!(gen(&other_key, "msg", "m3"), mac);
        let v = fx.json(&[
            "kms",
            "generate-mac",
            &key,
            "--message-file",
            "msg",
            "--algorithm",
            alg,
        ]);
        assert_eq!(b64(&v["Mac"]), mac, "{v}");
        assert_eq!(v["MacAlgorithm"], alg, "{v}");

        let verify = |key: &str, msg: &str, mac: &str| {
            fx.cmd(&[
                "kms",
                "verify-mac",
                key,
                "--message-file",
                msg,
                "--algorithm",
                alg,
                "--mac-file",
                mac,
            ])
        };
        assert_eq!(ok(verify(&key, "msg", "mac")), b"MAC valid\n");
        let mut c = verify(&key, "msg", "mac");
        c.args(["--output", "json"]);
        let v: Value = serde_json::from_slice(&ok(c)).unwrap();
        assert_eq!(v["MacValid"], true, "{v}");
        assert_eq!(v["MacAlgorithm"], alg, "{v}");

        // Any flipped bit, a cut or longer MAC, another message or another key: no match.
        let mut bad = vec![
            flipped(&mac, 0),
            flipped(&mac, len / 2),
            flipped(&mac, len - 1),
            mac[..len - 1].to_vec(),
            [&mac[..], &[0u8][..]].concat(),
        ];
        if len > 28 {
            bad.push(mac[..28].to_vec());
        }
        for b in bad {
            fx.write("bad", &b);
            fail(
                verify(&key, "msg", "bad"),
                INTEGRITY,
                &["KMSInvalidMacException"],
            );
        }
        fail(
            verify(&key, "other", "mac"),
            INTEGRITY,
            &["KMSInvalidMacException"],
        );
        fail(
            verify(&other_key, "msg", "mac"),
            INTEGRITY,
            &["KMSInvalidMacException"],
        );
    }
}

// ── Data keys and data key pairs ──────────────────────────────────────────────────────────

#[test]
fn data_keys_take_1_to_1024_bytes_and_decrypt_to_the_same_bytes() {
    let fx = Fx::new();
    let key = fx.symmetric_key();
    let arn = fx.arn(&key);
    let gen = |extra: &[&str]| {
        let mut c = fx.cmd(&["kms", "generate-data-key", &key]);
        c.args(extra);
        c
    };
    let mode = |name: &str| fs::metadata(fx.path(name)).unwrap().permissions().mode() & 0o777;
    for (args, len) in [
        (&["--bytes", "1"][..], 1),
        (&["--bytes", "1024"][..], 1024),
        (&["--key-spec", "AES_128"][..], 16),
        (&["--key-spec", "AES_256"][..], 32),
        (&[][..], 32),
    ] {
        let name = format!("dk{len}-{}", args.len());
        let ct = format!("{name}.ct");
        let mut all = args.to_vec();
        all.extend(["--plaintext-out", &name, "--ciphertext-out", &ct]);
        ok(gen(&all));
        let dk = fx.read(&name);
        assert_eq!(dk.len(), len, "{args:?}");
        assert_eq!(mode(&name), 0o600, "{name}");
        let back = format!("{name}.back");
        fx.ok(&["kms", "decrypt", "--ciphertext-file", &ct, "-o", &back]);
        assert_eq!(fx.read(&back), dk, "{args:?}");
    }
    assert_ne!(fx.read("dk32-0"), fx.read("dk32-2"));
    for n in ["0", "1025"] {
        fail(
            gen(&[
                "--bytes",
                n,
                "--plaintext-out",
                "no",
                "--ciphertext-out",
                "no.ct",
            ]),
            USAGE,
            &["ValidationException", n],
        );
        fx.assert_gone("no");
        fx.assert_gone("no.ct");
    }

    // JSON: the encrypted copy in base64, never the plaintext.
    let mut c = gen(&["--bytes", "64", "--plaintext-out", "j", "-c", "use=json"]);
    c.args(["--output", "json"]);
    let v: Value = serde_json::from_slice(&ok(c)).unwrap();
    assert_eq!(v["KeyId"], arn.as_str(), "{v}");
    assert!(v.get("Plaintext").is_none(), "{v}");
    assert!(!v.to_string().contains(&b64_encode(&fx.read("j"))));
    fx.write("j.ct", &b64(&v["CiphertextBlob"]));
    fail(
        fx.cmd(&["kms", "decrypt", "--ciphertext-file", "j.ct"]),
        INTEGRITY,
        &["InvalidCiphertextException"],
    );
    assert_eq!(
        fx.ok(&[
            "kms",
            "decrypt",
            "--ciphertext-file",
            "j.ct",
            "-c",
            "use=json"
        ]),
        fx.read("j")
    );

    // Without the plaintext: only the encrypted copy.
    ok(gen(&["--without-plaintext", "--ciphertext-out", "w.ct"]));
    let w = fx.ok(&["kms", "decrypt", "--ciphertext-file", "w.ct"]);
    assert_eq!(w.len(), 32);
}

#[test]
fn data_key_pairs_are_pkcs8_that_openssl_reads() {
    let fx = Fx::new();
    let key = fx.symmetric_key();
    fx.write("msg", &data(5000, 11));
    for (pair, marker, alg) in [
        ("ECC_NIST_P256", "NIST CURVE: P-256", "ECDSA_SHA_256"),
        ("ECC_SECG_P256K1", "ASN1 OID: secp256k1", "ECDSA_SHA_256"),
        ("RSA_2048", "Private-Key: (2048 bit", "RSASSA_PSS_SHA_256"),
    ] {
        let n = |what: &str| format!("{pair}.{what}");
        let (private, public, ct) = (n("key.der"), n("pub.der"), n("key.ct"));
        fx.ok(&[
            "kms",
            "generate-data-key-pair",
            &key,
            "--pair-spec",
            pair,
            "--private-key-out",
            &private,
            "--public-key-out",
            &public,
            "--ciphertext-out",
            &ct,
        ]);
        let mode = fs::metadata(fx.path(&private))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{private}");

        // PKCS #8 DER that openssl reads, whose public key is the PublicKey file.
        let text = fx.openssl(&["pkey", "-inform", "DER", "-in", &private, "-noout", "-text"]);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains(marker), "{pair}: {text}");
        let pem = n("key.pem");
        fx.openssl(&[
            "pkcs8", "-inform", "DER", "-nocrypt", "-in", &private, "-out", &pem,
        ]);
        assert!(fx.read(&pem).starts_with(b"-----BEGIN PRIVATE KEY-----\n"));
        let derived = fx.openssl(&[
            "pkey", "-inform", "DER", "-in", &private, "-pubout", "-outform", "DER",
        ]);
        assert_eq!(derived, fx.read(&public), "{pair}");
        fx.openssl_describes(&public, "DER");

        // The encrypted copy decrypts to the same bytes.
        let back = n("back");
        fx.ok(&["kms", "decrypt", "--ciphertext-file", &ct, "-o", &back]);
        assert_eq!(fx.read(&back), fx.read(&private), "{pair}");

        // What openssl signs with the private key, cofre verifies with the public key (for
        // ECDSA, with a low S and with a high S).
        let sig = n("sig");
        fx.openssl_sign(alg, &pem, "msg", &sig);
        let mut sigs = vec![sig.clone()];
        if pair.starts_with("ECC_") {
            let twin = n("twin");
            fx.write(&twin, &ecdsa_twin(&fx.read(&sig), pair).0);
            sigs.push(twin);
        }
        for sig in &sigs {
            ok(fx.offline(&[
                "verify",
                "--pubkey",
                &public,
                "msg",
                sig,
                "--algorithm",
                alg,
            ]));
        }
    }
    fx.assert_offline();

    // JSON: the public key and the encrypted private key in base64, never the private key.
    let mut c = fx.cmd(&[
        "kms",
        "generate-data-key-pair",
        &key,
        "--pair-spec",
        "ECC_NIST_P384",
        "--private-key-out",
        "p384.key",
        "-c",
        "pair=json",
    ]);
    c.args(["--output", "json"]);
    let v: Value = serde_json::from_slice(&ok(c)).unwrap();
    assert_eq!(v["KeyPairSpec"], "ECC_NIST_P384", "{v}");
    assert_eq!(v["KeyId"], fx.arn(&key).as_str(), "{v}");
    assert!(v.get("PrivateKeyPlaintext").is_none(), "{v}");
    let private = fx.read("p384.key");
    assert!(!v.to_string().contains(&b64_encode(&private)));
    let derived = fx.openssl(&[
        "pkey", "-inform", "DER", "-in", "p384.key", "-pubout", "-outform", "DER",
    ]);
    assert_eq!(b64(&v["PublicKey"]), derived, "{v}");
    fx.write("p384.ct", &b64(&v["PrivateKeyCiphertextBlob"]));
    let dec = [
        "kms",
        "decrypt",
        "--ciphertext-file",
        "p384.ct",
        "-c",
        "pair=json",
    ];
    assert_eq!(fx.ok(&dec), private);

    // Without the plaintext: the encrypted private key decrypts to the pair's PKCS #8.
    fx.ok(&[
        "kms",
        "generate-data-key-pair",
        &key,
        "--pair-spec",
        "ECC_NIST_P521",
        "--without-plaintext",
        "--public-key-out",
        "p521.pub",
        "--ciphertext-out",
        "p521.ct",
    ]);
    fx.ok(&[
        "kms",
        "decrypt",
        "--ciphertext-file",
        "p521.ct",
        "-o",
        "p521.key",
    ]);
    let derived = fx.openssl(&[
        "pkey", "-inform", "DER", "-in", "p521.key", "-pubout", "-outform", "DER",
    ]);
    assert_eq!(derived, fx.read("p521.pub"));
}

// ── Audit ─────────────────────────────────────────────────────────────────────────────────

#[test]
fn the_audit_trail_records_each_operation_and_no_plaintext() {
    let fx = Fx::new();
    let secret = b"PLAINTEXT-THAT-MUST-NEVER-REACH-THE-AUDIT-TRAIL-0123456789";
    fx.write("secret", secret);
    let sym = fx.symmetric_key();
    let rsa = fx.key("RSA_2048", "ENCRYPT_DECRYPT");
    let signer = fx.key("ECC_NIST_P256", "SIGN_VERIFY");
    let hmac = fx.key("HMAC_256", "GENERATE_VERIFY_MAC");
    let ka = fx.key("ECC_NIST_P384", "KEY_AGREEMENT");
    fx.public_key(&rsa, "rsa.pem");
    fx.public_key(&ka, "ka.pem");

    fx.ok(&[
        "kms",
        "encrypt",
        &sym,
        "--plaintext-file",
        "secret",
        "-c",
        "k=v",
        "-o",
        "c",
    ]);
    fx.ok(&[
        "kms",
        "decrypt",
        "--ciphertext-file",
        "c",
        "-c",
        "k=v",
        "-o",
        "c.out",
    ]);
    let rsa_alg = ["--algorithm", "RSAES_OAEP_SHA_256"];
    fx.ok(&[
        &[
            "kms",
            "encrypt",
            &rsa,
            "--plaintext-file",
            "secret",
            "-o",
            "r",
        ][..],
        &rsa_alg,
    ]
    .concat());
    fx.ok(&[
        &[
            "kms",
            "decrypt",
            "--ciphertext-file",
            "r",
            "--key",
            &rsa,
            "-o",
            "r.out",
        ][..],
        &rsa_alg,
    ]
    .concat());
    let sig_args = ["--algorithm", "ECDSA_SHA_256"];
    fx.ok(&[
        &[
            "kms",
            "sign",
            &signer,
            "--message-file",
            "secret",
            "-o",
            "s",
        ][..],
        &sig_args,
    ]
    .concat());
    fx.ok(&[
        &[
            "kms",
            "verify",
            &signer,
            "--message-file",
            "secret",
            "--signature-file",
            "s",
        ][..],
        &sig_args,
    ]
    .concat());
    fx.fail(
        &[
            &[
                "kms",
                "verify",
                &signer,
                "--message-file",
                "c",
                "--signature-file",
                "s",
            ][..],
            &sig_args,
        ]
        .concat(),
        INTEGRITY,
        &["KMSInvalidSignatureException"],
    );
    fx.ok(&["sign", &signer, "secret", "-o", "fs"]);
    fx.ok(&["verify", &signer, "secret", "fs"]);
    let mac_args = ["--algorithm", "HMAC_SHA_256"];
    fx.ok(&[
        &[
            "kms",
            "generate-mac",
            &hmac,
            "--message-file",
            "secret",
            "-o",
            "m",
        ][..],
        &mac_args,
    ]
    .concat());
    fx.ok(&[
        &[
            "kms",
            "verify-mac",
            &hmac,
            "--message-file",
            "secret",
            "--mac-file",
            "m",
        ][..],
        &mac_args,
    ]
    .concat());
    fx.ok(&[
        "kms",
        "generate-data-key",
        &sym,
        "--plaintext-out",
        "dk",
        "--ciphertext-out",
        "dk.ct",
    ]);
    fx.ok(&[
        "kms",
        "generate-data-key-pair",
        &sym,
        "--pair-spec",
        "ECC_NIST_P256",
        "--private-key-out",
        "pair.key",
        "--ciphertext-out",
        "pair.ct",
    ]);
    ok(fx.offline(&[
        "encrypt",
        "--recipient-pubkey",
        "ka.pem",
        "secret",
        "-o",
        "ka.cofre",
    ]));
    fx.ok(&["decrypt", "ka.cofre", "-o", "ka.out"]);
    assert_eq!(fx.read("ka.out"), secret);

    let log = fx.ok(&["audit", "log", "--output", "json"]);
    let events: Vec<Value> = log
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let named =
        |name: &str| -> Vec<&Value> { events.iter().filter(|e| e["eventName"] == name).collect() };
    let arn = |k: &str| fx.arn(k);
    let names: BTreeSet<&str> = events
        .iter()
        .map(|e| e["eventName"].as_str().unwrap())
        .collect();
    for name in [
        "Encrypt",
        "Decrypt",
        "Sign",
        "Verify",
        "GenerateMac",
        "VerifyMac",
        "GenerateDataKey",
        "GenerateDataKeyPair",
        "GetPublicKey",
        "DeriveSharedSecret",
    ] {
        assert!(names.contains(name), "no {name} event in {names:?}");
    }
    // Sign: kms sign and cofre sign; Verify: kms verify (twice, once refused) and cofre verify.
    let signs = named("Sign");
    assert_eq!(signs.len(), 2, "{signs:?}");
    for e in &signs {
        assert_eq!(e["requestParameters"]["keyId"], signer.as_str(), "{e}");
        assert_eq!(
            e["requestParameters"]["signingAlgorithm"], "ECDSA_SHA_256",
            "{e}"
        );
        assert_eq!(e["resources"][0]["ARN"], arn(&signer).as_str(), "{e}");
    }
    assert_eq!(signs[0]["requestParameters"]["messageType"], "RAW");
    let verifies = named("Verify");
    assert_eq!(verifies.len(), 3, "{verifies:?}");
    let refused: Vec<_> = verifies
        .iter()
        .filter(|e| !e.get("errorCode").is_none_or(Value::is_null))
        .collect();
    assert_eq!(refused.len(), 1, "{verifies:?}");
    assert_eq!(refused[0]["errorCode"], "KMSInvalidSignatureException");
    for name in ["GenerateMac", "VerifyMac"] {
        let e = named(name);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            e[0]["requestParameters"]["macAlgorithm"], "HMAC_SHA_256",
            "{e:?}"
        );
        assert_eq!(e[0]["requestParameters"]["keyId"], hmac.as_str(), "{e:?}");
    }
    let encrypts = named("Encrypt");
    assert!(
        encrypts
            .iter()
            .any(
                |e| e["requestParameters"]["encryptionAlgorithm"] == "RSAES_OAEP_SHA_256"
                    && e["requestParameters"]["keyId"] == rsa.as_str()
            ),
        "{encrypts:?}"
    );
    assert!(
        encrypts
            .iter()
            .any(|e| e["requestParameters"]["encryptionContext"]["k"] == "v"),
        "{encrypts:?}"
    );
    let decrypts = named("Decrypt");
    assert!(
        decrypts
            .iter()
            .any(|e| e["requestParameters"]["encryptionAlgorithm"] == "RSAES_OAEP_SHA_256"),
        "{decrypts:?}"
    );
    // `cofre decrypt` finds the key holding the recipient's public key and names it by ARN.
    assert_eq!(
        named("DeriveSharedSecret")[0]["requestParameters"]["keyId"],
        arn(&ka).as_str()
    );
    // The --event filter.
    let only = fx.ok(&["audit", "log", "--output", "json", "--event", "GenerateMac"]);
    assert_eq!(
        only.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        1
    );

    // No plaintext anywhere: not the secret (raw, hex or base64), not the data key, not the
    // private key, neither in the log nor in any file of the home.
    let dk = fx.read("dk");
    let private = fx.read("pair.key");
    let forbidden: Vec<Vec<u8>> = vec![
        secret.to_vec(),
        hex::encode(secret).into_bytes(),
        hex::encode_upper(secret).into_bytes(),
        b64_encode(secret).into_bytes(),
        b64_encode(&dk).into_bytes(),
        hex::encode(&dk).into_bytes(),
        b64_encode(&private).into_bytes(),
        hex::encode(&private).into_bytes(),
    ];
    for f in &forbidden {
        assert!(
            !contains(&log, f),
            "the audit log holds {:?}",
            String::from_utf8_lossy(f)
        );
    }
    let mut dirs = vec![fx.path("home")];
    let mut files = 0;
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            files += 1;
            let bytes = fs::read(&p).unwrap();
            for f in &forbidden {
                assert!(
                    !contains(&bytes, f),
                    "{} holds {:?}",
                    p.display(),
                    String::from_utf8_lossy(f)
                );
            }
        }
    }
    assert!(files > 0);
}

// ── JSON results ──────────────────────────────────────────────────────────────────────────

#[test]
fn kms_json_results_name_the_key_by_arn() {
    let fx = Fx::new();
    let signer = fx.key("ECC_NIST_P256", "SIGN_VERIFY");
    let hmac = fx.key("HMAC_512", "GENERATE_VERIFY_MAC");
    fx.ok(&["alias", "create", "alias/signer", &signer]);
    fx.ok(&["alias", "create", "alias/mac", &hmac]);
    let (signer_arn, hmac_arn) = (fx.arn(&signer), fx.arn(&hmac));
    fx.write("msg", b"named by alias");

    // As KMS answers (and as cofre's encrypt, decrypt and data key results do): the key ARN,
    // whatever name the key was given by.
    for key in ["alias/signer", signer.as_str()] {
        let v = fx.json(&[
            "kms",
            "sign",
            key,
            "--message-file",
            "msg",
            "--algorithm",
            "ECDSA_SHA_256",
        ]);
        assert_eq!(v["KeyId"], signer_arn.as_str(), "kms sign {key}: {v}");
        fx.write("sig", &b64(&v["Signature"]));
        let v = fx.json(&[
            "kms",
            "verify",
            key,
            "--message-file",
            "msg",
            "--algorithm",
            "ECDSA_SHA_256",
            "--signature-file",
            "sig",
        ]);
        assert_eq!(v["KeyId"], signer_arn.as_str(), "kms verify {key}: {v}");
        assert_eq!(v["SignatureValid"], true, "{v}");
    }
    for key in ["alias/mac", hmac.as_str()] {
        let v = fx.json(&[
            "kms",
            "generate-mac",
            key,
            "--message-file",
            "msg",
            "--algorithm",
            "HMAC_SHA_512",
        ]);
        assert_eq!(v["KeyId"], hmac_arn.as_str(), "kms generate-mac {key}: {v}");
        fx.write("mac", &b64(&v["Mac"]));
        let v = fx.json(&[
            "kms",
            "verify-mac",
            key,
            "--message-file",
            "msg",
            "--algorithm",
            "HMAC_SHA_512",
            "--mac-file",
            "mac",
        ]);
        assert_eq!(v["KeyId"], hmac_arn.as_str(), "kms verify-mac {key}: {v}");
    }
}

#[test]
fn cofre_verify_json_names_the_key_by_arn_and_the_algorithm_it_chose() {
    let fx = Fx::new();
    let signer = fx.key("ECC_NIST_P256", "SIGN_VERIFY");
    fx.ok(&["alias", "create", "alias/signer", &signer]);
    let signer_arn = fx.arn(&signer);
    fx.public_key(&signer, "signer.pem");
    fx.write("msg", b"named by alias");
    fx.ok(&["sign", "alias/signer", "msg", "-o", "fsig"]);
    // Offline: the algorithm cofre chose for the P-256 key.
    let out = ok(fx.offline(&[
        "verify",
        "--pubkey",
        "signer.pem",
        "msg",
        "fsig",
        "--output",
        "json",
    ]));
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["SignatureValid"], true, "{v}");
    assert_eq!(
        v["SigningAlgorithm"], "ECDSA_SHA_256",
        "cofre verify --pubkey: {v}"
    );
    fx.assert_offline();
    // Through the keyring: that algorithm, and the key by ARN as `kms verify` would name it.
    for args in [&["--algorithm", "ECDSA_SHA_256"][..], &[]] {
        let v = fx.json(&[&["verify", "alias/signer", "msg", "fsig"][..], args].concat());
        assert_eq!(v["SignatureValid"], true, "{v}");
        assert_eq!(
            v["SigningAlgorithm"], "ECDSA_SHA_256",
            "cofre verify {args:?}: {v}"
        );
        assert_eq!(
            v["KeyId"],
            signer_arn.as_str(),
            "cofre verify {args:?}: {v}"
        );
    }
}

/// A multi-Region asymmetric key: its replica holds the same key pair, so a file encrypted
/// offline to the public key opens in the replica's region, and a signature made there verifies
/// with the primary. Neither rotates.
#[test]
fn multi_region_asymmetric_keys_share_their_key_pair() {
    let fx = Fx::new();
    let agree = fx.text(&[
        "key",
        "create",
        "--spec",
        "ECC_NIST_P384",
        "--usage",
        "KEY_AGREEMENT",
        "--multi-region",
    ]);
    let sign = fx.text(&[
        "key",
        "create",
        "--spec",
        "RSA_2048",
        "--usage",
        "SIGN_VERIFY",
        "--multi-region",
    ]);
    for k in [&agree, &sign] {
        assert!(k.starts_with("mrk-"), "{k}");
        fx.ok(&["key", "replicate", k, "--to", "eu-west-1"]);
        let east = fx.ok(&["key", "public-key", k, "--format", "der"]);
        let west = fx.ok(&[
            "--region",
            "eu-west-1",
            "key",
            "public-key",
            k,
            "--format",
            "der",
        ]);
        assert_eq!(east, west, "{k}: the replica has another public key");
        fx.fail(&["key", "rotate", k], 3, &["UnsupportedOperationException"]);
    }
    fx.public_key(&agree, "agree.pem");
    fx.write("plain", &vec![5u8; 100_000]);
    ok(fx.offline(&[
        "encrypt",
        "--recipient-pubkey",
        "agree.pem",
        "-o",
        "sealed",
        "plain",
    ]));
    fx.assert_offline();
    fx.ok(&["--region", "eu-west-1", "decrypt", "-o", "back", "sealed"]);
    assert_eq!(fx.read("back"), fx.read("plain"));
    // Another region without a replica does not have the private key.
    fx.fail(
        &[
            "--region",
            "ap-southeast-2",
            "decrypt",
            "-o",
            "nope",
            "sealed",
        ],
        3,
        &["NotFoundException", "sha256:"],
    );
    fx.assert_gone("nope");

    fx.write("msg", b"signed in eu-west-1");
    fx.ok(&[
        "--region",
        "eu-west-1",
        "kms",
        "sign",
        &sign,
        "--message-file",
        "msg",
        "--algorithm",
        "RSASSA_PSS_SHA_384",
        "-o",
        "sig",
    ]);
    fx.ok(&[
        "kms",
        "verify",
        &sign,
        "--message-file",
        "msg",
        "--algorithm",
        "RSASSA_PSS_SHA_384",
        "--signature-file",
        "sig",
    ]);
}

/// `rewrap` keeps public-key recipients: they depend on no keyring key.
#[test]
fn rewrap_keeps_public_key_recipients() {
    let fx = Fx::new();
    let rsa = fx.key("RSA_2048", "ENCRYPT_DECRYPT");
    let (a, b) = (fx.symmetric_key(), fx.symmetric_key());
    fx.public_key(&rsa, "rsa.pem");
    fx.write("plain", b"kept for the RSA key through a rewrap");
    fx.ok(&[
        "encrypt",
        "-k",
        &a,
        "--recipient-pubkey",
        "rsa.pem",
        "-o",
        "sealed",
        "plain",
    ]);
    fx.ok(&["rewrap", "sealed", "-k", &b]);
    let info = fx.json(&["inspect", "sealed"]);
    assert_eq!(info["WrappedKeys"].as_array().unwrap().len(), 1, "{info}");
    assert_eq!(
        info["PublicKeyRecipients"].as_array().unwrap().len(),
        1,
        "{info}"
    );
    // Only the RSA key is left usable: the file still opens through it.
    fx.ok(&["key", "disable", &b]);
    fx.ok(&["decrypt", "-o", "back", "sealed"]);
    assert_eq!(fx.read("back"), fx.read("plain"));
}

/// Outputs are checked before the request: a data key whose ciphertext file exists (no
/// --force) is never generated, so no plaintext key is left behind and no event recorded.
#[test]
fn an_existing_output_stops_the_request_before_any_secret_is_written() {
    let fx = Fx::new();
    let key = fx.symmetric_key();
    fx.write("blob", b"already here");
    fx.fail(
        &[
            "kms",
            "generate-data-key",
            &key,
            "--plaintext-out",
            "dk",
            "--ciphertext-out",
            "blob",
        ],
        2,
        &["blob already exists"],
    );
    assert!(!fx.exists("dk"), "a plaintext data key was left behind");
    assert_eq!(fx.read("blob"), b"already here");
    fx.write("priv", b"mine");
    fx.fail(
        &[
            "kms",
            "generate-data-key-pair",
            &key,
            "--pair-spec",
            "ECC_NIST_P256",
            "--private-key-out",
            "priv",
        ],
        2,
        &["priv already exists"],
    );
    assert_eq!(fx.read("priv"), b"mine");
    let log = String::from_utf8(fx.ok(&["audit", "log", "--output", "json"])).unwrap();
    assert!(
        !log.contains("GenerateDataKey"),
        "a refused command still made its request: {log}"
    );
}

/// A key record whose public key was swapped for another (by someone who can write the home
/// but has no domain key) is refused: Verify, Encrypt and GetPublicKey derive the public key
/// from the sealed private key.
#[test]
fn a_swapped_public_key_in_a_record_is_refused() {
    let fx = Fx::new();
    let signer = fx.key("ECC_NIST_P256", "SIGN_VERIFY");
    let other = fx.key("ECC_NIST_P256", "SIGN_VERIFY");
    let record = |id: &str| fx.path(&format!("home/regions/us-east-1/keys/{id}.json"));
    let mut v: Value = serde_json::from_slice(&std::fs::read(record(&signer)).unwrap()).unwrap();
    let theirs: Value = serde_json::from_slice(&std::fs::read(record(&other)).unwrap()).unwrap();
    v["PublicKey"] = theirs["PublicKey"].clone();
    std::fs::write(record(&signer), serde_json::to_vec(&v).unwrap()).unwrap();
    fx.write("msg", b"forged");
    // A signature by the other key must not verify as the signer's.
    fx.ok(&[
        "kms",
        "sign",
        &other,
        "--message-file",
        "msg",
        "--algorithm",
        "ECDSA_SHA_256",
        "-o",
        "sig",
    ]);
    fx.fail(
        &[
            "kms",
            "verify",
            &signer,
            "--message-file",
            "msg",
            "--algorithm",
            "ECDSA_SHA_256",
            "--signature-file",
            "sig",
        ],
        4,
        &["its public key is not its private key's"],
    );
    fx.fail(
        &["key", "public-key", &signer, "-o", "pub.pem"],
        4,
        &["its public key is not its private key's"],
    );
    assert!(!fx.exists("pub.pem"));
}

/// The PEM of a signing or MAC key says so, and `encrypt --recipient-pubkey` refuses it: a file
/// encrypted to a key that cannot decrypt could never be opened. Without the label (a bare
/// PEM or DER) cofre cannot know, and the file is written.
#[test]
fn encrypting_to_the_public_key_of_a_signing_key_is_refused() {
    let fx = Fx::new();
    let signer = fx.key("RSA_2048", "SIGN_VERIFY");
    fx.public_key(&signer, "sign.pem");
    fx.write("plain", b"would be lost");
    let err = fail(
        fx.offline(&[
            "encrypt",
            "--recipient-pubkey",
            "sign.pem",
            "-o",
            "sealed",
            "plain",
        ]),
        2,
        &["SIGN_VERIFY", "could never be opened"],
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    fx.assert_gone("sealed");
    fx.assert_offline();
    // openssl still reads the labelled file.
    fx.openssl(&["pkey", "-pubin", "-in", "sign.pem", "-noout"]);
}
