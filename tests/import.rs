//! Bring your own key material (KMS ImportKeyMaterial) through the CLI, with the material
//! wrapped by the openssl command-line tool as a user would: every wrapping algorithm and key
//! spec, the import token's checks, wrong or wrongly wrapped material, material that expires,
//! is deleted and is imported again, and the state table of keys with origin EXTERNAL.
//!
//! These tests need `openssl` on PATH and fail (never skip) without it.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs cofre at time `now` (RFC 3339) in us-east-1.
    fn run(&self, now: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cofre"))
            .arg("--home")
            .arg(self.path("home"))
            .args(["--region", "us-east-1"])
            .args(args)
            .env("COFRE_NOW", now)
            .env_remove("COFRE_HOME")
            .env_remove("COFRE_REGION")
            .output()
            .unwrap()
    }

    fn ok(&self, now: &str, args: &[&str]) -> String {
        let out = self.run(now, args);
        assert!(
            out.status.success(),
            "cofre {args:?} at {now} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn json(&self, now: &str, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(now, &[args, &["--output", "json"]].concat())).unwrap()
    }

    /// Expects exit `code` with a one-line error naming all of `needles`.
    fn fails(&self, now: &str, args: &[&str], code: i32, needles: &[&str]) {
        let out = self.run(now, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "cofre {args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        for n in needles {
            assert!(err.contains(n), "cofre {args:?}: {err:?} lacks {n:?}");
        }
    }

    /// Expects a command-line usage error (exit 2) from the argument parser, whose message
    /// spans several lines, naming `needle`.
    fn misused(&self, args: &[&str], needle: &str) {
        let out = self.run(T0, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(USAGE), "cofre {args:?}: {err}");
        assert!(
            err.contains(needle),
            "cofre {args:?}: {err:?} lacks {needle:?}"
        );
    }

    fn meta(&self, now: &str, key: &str) -> Value {
        self.json(now, &["key", "describe", key])["KeyMetadata"].clone()
    }

    fn state(&self, now: &str, key: &str) -> String {
        self.meta(now, key)["KeyState"].as_str().unwrap().to_owned()
    }

    fn external_key(&self) -> String {
        self.ok(T0, &["key", "create", "--origin", "EXTERNAL"])
    }

    /// `key import-params` into folder `dir`, naming the spec and algorithm only if given (so
    /// `None` exercises the defaults, RSA_2048 and RSAES_OAEP_SHA_256).
    fn params(
        &self,
        now: &str,
        key: &str,
        dir: &str,
        spec: Option<&str>,
        alg: Option<&'static str>,
    ) -> Params {
        let out = self.path(dir);
        let mut args = vec![
            "key",
            "import-params",
            key,
            "--out-dir",
            out.to_str().unwrap(),
        ];
        if let Some(s) = spec {
            args.extend(["--wrapping-spec", s]);
        }
        if let Some(a) = alg {
            args.extend(["--wrapping-algorithm", a]);
        }
        let v = self.json(now, &args);
        assert_eq!(v["KeyId"], key);
        let p = Params {
            public: out.join("WrappingPublicKey.bin"),
            token: out.join("ImportToken.bin"),
            alg: alg.unwrap_or("RSAES_OAEP_SHA_256"),
            valid_to: v["ParametersValidTo"].as_str().unwrap().to_owned(),
        };
        assert_eq!(v["PublicKeyFile"], p.public.to_str().unwrap());
        assert_eq!(v["ImportTokenFile"], p.token.to_str().unwrap());
        p
    }

    /// `material` wrapped for `p` with openssl, written to `name`.
    fn wrapped(&self, p: &Params, material: &Path, name: &str) -> PathBuf {
        let out = self.path(name);
        wrap(p.alg, &p.public, material, &out);
        out
    }

    /// 32 random bytes (or `len`) from `openssl rand`.
    fn material(&self, name: &str, len: usize) -> PathBuf {
        let path = self.path(name);
        openssl(&["rand", "-out", s(&path), &len.to_string()]);
        assert_eq!(std::fs::read(&path).unwrap().len(), len);
        path
    }

    fn import_args<'a>(
        key: &'a str,
        material: &'a Path,
        token: &'a Path,
        expiry: &[&'a str],
    ) -> Vec<&'a str> {
        [
            &[
                "key",
                "import",
                key,
                "--material",
                s(material),
                "--token",
                s(token),
            ][..],
            expiry,
        ]
        .concat()
    }

    /// Imports and returns the key's metadata.
    fn import(
        &self,
        now: &str,
        key: &str,
        material: &Path,
        token: &Path,
        expiry: &[&str],
    ) -> Value {
        let r = self.json(now, &Self::import_args(key, material, token, expiry));
        self.material_answer(now, key, &r)
    }

    /// Checks an ImportKeyMaterial or DeleteImportedKeyMaterial answer (the key's ARN and the
    /// material's id) and returns the key's metadata after it.
    fn material_answer(&self, now: &str, key: &str, r: &Value) -> Value {
        let m = self.meta(now, key);
        assert_eq!(r["KeyId"], m["Arn"], "{r}");
        assert_eq!(r["KeyMaterialId"], m["CurrentKeyMaterialId"], "{r}");
        assert_eq!(r.as_object().unwrap().len(), 2, "{r}");
        m
    }

    /// `key delete-material`: the key's metadata after it.
    fn delete_material(&self, now: &str, key: &str) -> Value {
        let r = self.json(now, &["key", "delete-material", key]);
        self.material_answer(now, key, &r)
    }

    fn import_fails(
        &self,
        now: &str,
        key: &str,
        material: &Path,
        token: &Path,
        code: i32,
        needles: &[&str],
    ) {
        self.fails(
            now,
            &Self::import_args(key, material, token, &["--no-expiry"]),
            code,
            needles,
        );
    }

    /// The material id a file's data key is wrapped under.
    fn material_of(&self, now: &str, file: &Path) -> String {
        let v = self.json(now, &["inspect", s(file)]);
        v["WrappedKeys"][0]["KeyMaterialId"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// What `key import-params` wrote.
struct Params {
    public: PathBuf,
    token: PathBuf,
    alg: &'static str,
    valid_to: String,
}

const T0: &str = "2026-01-01T00:00:00Z";
const USAGE: i32 = 2;
const ACCESS: i32 = 3;
const INTEGRITY: i32 = 4;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs the openssl command-line tool; fails the test, saying how to get it, if it is missing.
fn openssl(args: &[&str]) -> Vec<u8> {
    let out = match Command::new("openssl").args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "the import tests wrap key material with the openssl command-line tool, which is \
             not on PATH: install it (apt-get install openssl) and run them again"
        ),
        Err(e) => panic!("could not run openssl: {e}"),
    };
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// RSAES-OAEP with `md` for both OAEP and MGF1, under a DER SubjectPublicKeyInfo.
fn oaep(public: &Path, md: &str, input: &Path, out: &Path) {
    openssl(&[
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-keyform",
        "DER",
        "-inkey",
        s(public),
        "-in",
        s(input),
        "-out",
        s(out),
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        &format!("rsa_oaep_md:{md}"),
        "-pkeyopt",
        &format!("rsa_mgf1_md:{md}"),
    ]);
}

/// Wraps `material` for the KMS wrapping algorithm `alg` under `public`, as AWS documents it.
fn wrap(alg: &str, public: &Path, material: &Path, out: &Path) {
    match alg {
        "RSAES_OAEP_SHA_1" => oaep(public, "sha1", material, out),
        "RSAES_OAEP_SHA_256" => oaep(public, "sha256", material, out),
        "RSA_AES_KEY_WRAP_SHA_1" | "RSA_AES_KEY_WRAP_SHA_256" => {
            let md = if alg.ends_with("SHA_1") {
                "sha1"
            } else {
                "sha256"
            };
            // A random AES-256 key wraps the material (RFC 5649); RSA-OAEP wraps the AES key.
            let aes = out.with_extension("aes");
            openssl(&["rand", "-out", s(&aes), "32"]);
            let hex: String = std::fs::read(&aes)
                .unwrap()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let kwp = out.with_extension("kwp");
            openssl(&[
                "enc",
                "-id-aes256-wrap-pad",
                "-K",
                &hex,
                "-iv",
                "A65959A6",
                "-in",
                s(material),
                "-out",
                s(&kwp),
            ]);
            let aes_enc = out.with_extension("aes.enc");
            oaep(public, md, &aes, &aes_enc);
            let mut both = std::fs::read(&aes_enc).unwrap();
            both.extend(std::fs::read(&kwp).unwrap());
            std::fs::write(out, both).unwrap();
        }
        _ => panic!("no such wrapping algorithm {alg}"),
    }
}

/// The size of an RSA public key in DER SubjectPublicKeyInfo form, as openssl reads it.
fn rsa_bits(public: &Path) -> u32 {
    let text = openssl(&[
        "pkey",
        "-pubin",
        "-inform",
        "DER",
        "-in",
        s(public),
        "-noout",
        "-text",
    ]);
    let text = String::from_utf8(text).unwrap();
    let first = text.lines().next().unwrap();
    // "Public-Key: (2048 bit)"
    first
        .trim()
        .strip_prefix("Public-Key: (")
        .and_then(|r| r.strip_suffix(" bit)"))
        .unwrap_or_else(|| panic!("not an RSA public key: {first:?}"))
        .parse()
        .unwrap()
}

fn seal(h: &Home, now: &str, key: &str, name: &str) -> PathBuf {
    let plain = h.path(name);
    std::fs::write(&plain, format!("{name} written at {now}").repeat(200)).unwrap();
    let sealed = h.path(&format!("{name}.cofre"));
    h.ok(now, &["encrypt", "-k", key, "-o", s(&sealed), s(&plain)]);
    sealed
}

fn opens(h: &Home, now: &str, sealed: &Path, name: &str) {
    let out = h.run(now, &["decrypt", s(sealed)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, std::fs::read(h.path(name)).unwrap());
}

/// A new EXTERNAL key takes material wrapped with `alg` under an RSA key of `spec` (flags left
/// out when `None`), and then works like any key, for good.
fn imports_and_works(spec: Option<&str>, alg: Option<&'static str>, bits: u32) {
    let h = Home::new();
    let key = h.external_key();
    let m = h.meta(T0, &key);
    assert_eq!(m["KeyState"], "PendingImport");
    assert_eq!(m["Origin"], "EXTERNAL");
    assert!(m.get("CurrentKeyMaterialId").is_none(), "{m}");
    assert_eq!(m["Enabled"], false);

    let p = h.params(T0, &key, "params", spec, alg);
    assert_eq!(p.valid_to, "2026-01-02T00:00:00Z");
    assert_eq!(rsa_bits(&p.public), bits);
    let mat = h.material("mat", 32);
    let wrapped = h.wrapped(&p, &mat, "mat.wrapped");
    let m = h.import(T0, &key, &wrapped, &p.token, &["--no-expiry"]);
    assert_eq!(m["KeyState"], "Enabled");
    assert_eq!(m["Enabled"], true);
    assert_eq!(m["Origin"], "EXTERNAL");
    assert_eq!(m["ExpirationModel"], "KEY_MATERIAL_DOES_NOT_EXPIRE");
    assert!(m.get("ValidTo").is_none_or(Value::is_null), "{m}");
    let id = m["CurrentKeyMaterialId"].as_str().unwrap().to_owned();
    assert!(!id.is_empty());
    assert_eq!(h.meta(T0, &key), m);

    let f = seal(&h, T0, &key, "f");
    assert_eq!(h.material_of(T0, &f), id);
    opens(&h, T0, &f, "f");
    // Material that does not expire is still there years later.
    let later = "2031-06-01T00:00:00Z";
    assert_eq!(h.state(later, &key), "Enabled");
    opens(&h, later, &f, "f");
}

#[test]
fn rsaes_oaep_sha_256_and_rsa_2048_are_the_defaults() {
    imports_and_works(None, None, 2048);
}

#[test]
fn rsaes_oaep_sha_1_with_rsa_3072() {
    imports_and_works(Some("RSA_3072"), Some("RSAES_OAEP_SHA_1"), 3072);
}

#[test]
fn rsa_aes_key_wrap_sha_256_with_rsa_4096() {
    imports_and_works(Some("RSA_4096"), Some("RSA_AES_KEY_WRAP_SHA_256"), 4096);
}

#[test]
fn rsa_aes_key_wrap_sha_1_with_rsa_2048() {
    imports_and_works(Some("RSA_2048"), Some("RSA_AES_KEY_WRAP_SHA_1"), 2048);
}

#[test]
fn the_same_material_through_every_algorithm_opens_the_same_files() {
    let h = Home::new();
    let key = h.external_key();
    let mat = h.material("mat", 32);
    let p = h.params(T0, &key, "p0", None, Some("RSAES_OAEP_SHA_256"));
    let w = h.wrapped(&p, &mat, "w0");
    let id = h.import(T0, &key, &w, &p.token, &["--no-expiry"])["CurrentKeyMaterialId"].clone();
    let f = seal(&h, T0, &key, "f");

    for (i, (spec, alg)) in [
        ("RSA_3072", "RSAES_OAEP_SHA_1"),
        ("RSA_2048", "RSA_AES_KEY_WRAP_SHA_1"),
        ("RSA_3072", "RSA_AES_KEY_WRAP_SHA_256"),
        ("RSA_2048", "RSAES_OAEP_SHA_256"),
    ]
    .into_iter()
    .enumerate()
    {
        // Deleting the material takes effect at once.
        let m = h.delete_material(T0, &key);
        assert_eq!(m["KeyState"], "PendingImport", "{alg}");
        h.fails(
            T0,
            &["decrypt", s(&f)],
            ACCESS,
            &["KMSInvalidStateException", "pending import"],
        );
        let p = h.params(T0, &key, &format!("p{}", i + 1), Some(spec), Some(alg));
        let w = h.wrapped(&p, &mat, &format!("w{}", i + 1));
        let m = h.import(T0, &key, &w, &p.token, &["--no-expiry"]);
        assert_eq!(m["KeyState"], "Enabled", "{alg}");
        assert_eq!(m["CurrentKeyMaterialId"], id, "{alg}");
        opens(&h, T0, &f, "f");
    }
    // One material version, however often it was imported.
    let all = ["--include-key-material", "ALL_KEY_MATERIAL"];
    let v = h.json(T0, &[&["key", "rotations", &key][..], &all].concat())["Rotations"].clone();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["KeyMaterialId"], id);
    // No rotations at all (ROTATIONS_ONLY, the default).
    let v = h.json(T0, &["key", "rotations", &key])["Rotations"].clone();
    assert_eq!(v.as_array().unwrap().len(), 0, "{v}");
}

#[test]
fn import_params_writes_a_der_public_key_and_a_token_and_keeps_existing_files() {
    let h = Home::new();
    let key = h.external_key();
    let now = "2026-03-04T05:06:07Z";
    let p = h.params(now, &key, "p", None, None);
    assert_eq!(p.valid_to, "2026-03-05T05:06:07Z");
    assert_eq!(rsa_bits(&p.public), 2048);
    let public = std::fs::read(&p.public).unwrap();
    let token = std::fs::read(&p.token).unwrap();
    assert!(!token.is_empty());

    // Existing files are kept without --force, replaced with it.
    let dir = h.path("p");
    let args = ["key", "import-params", &key, "--out-dir", s(&dir)];
    h.fails(
        now,
        &args,
        USAGE,
        &["WrappingPublicKey.bin", "already exists", "--force"],
    );
    assert_eq!(std::fs::read(&p.public).unwrap(), public);
    assert_eq!(std::fs::read(&p.token).unwrap(), token);
    std::fs::remove_file(&p.public).unwrap();
    h.fails(now, &args, USAGE, &["ImportToken.bin", "already exists"]);
    assert_eq!(std::fs::read(&p.token).unwrap(), token);
    h.ok(now, &[&args[..], &["-f"]].concat());
    assert_ne!(std::fs::read(&p.public).unwrap(), public);
    assert_ne!(std::fs::read(&p.token).unwrap(), token);
    // Plain output names the two files and the validity.
    let text = h.ok(now, &[&args[..], &["--force"]].concat());
    assert!(text.contains(s(&p.public)), "{text}");
    assert!(text.contains(s(&p.token)), "{text}");
    assert!(text.contains("2026-03-05T05:06:07Z"), "{text}");

    // The replaced files are the defaults: OAEP with SHA-256 under RSA 2048.
    let mat = h.material("mat", 32);
    let w = h.wrapped(&p, &mat, "w");
    assert_eq!(rsa_bits(&p.public), 2048);
    let m = h.import(now, &key, &w, &p.token, &["--no-expiry"]);
    assert_eq!(m["KeyState"], "Enabled");

    // Bad choices are usage errors.
    h.misused(
        &[
            "key",
            "import-params",
            &key,
            "--out-dir",
            "x",
            "--wrapping-spec",
            "RSA_1024",
        ],
        "RSA_1024",
    );
    h.misused(
        &[
            "key",
            "import-params",
            &key,
            "--out-dir",
            "x",
            "--wrapping-algorithm",
            "RSAES_PKCS1_V1_5",
        ],
        "RSAES_PKCS1_V1_5",
    );
}

#[test]
fn keys_with_kms_made_material_take_no_import() {
    let h = Home::new();
    let aws = h.ok(T0, &["key", "create"]);
    assert_eq!(h.meta(T0, &aws)["Origin"], "AWS_KMS");
    h.fails(
        T0,
        &["key", "import-params", &aws, "--out-dir", s(&h.path("p"))],
        ACCESS,
        &["UnsupportedOperationException"],
    );
    // A good token and material, made for an EXTERNAL key, into the AWS_KMS key.
    let ext = h.external_key();
    let p = h.params(T0, &ext, "p", None, None);
    let mat = h.material("mat", 32);
    let w = h.wrapped(&p, &mat, "w");
    h.import_fails(
        T0,
        &aws,
        &w,
        &p.token,
        ACCESS,
        &["UnsupportedOperationException"],
    );
    h.fails(
        T0,
        &["key", "delete-material", &aws],
        ACCESS,
        &["UnsupportedOperationException"],
    );
    assert_eq!(h.state(T0, &aws), "Enabled");
    let f = seal(&h, T0, &aws, "f");
    opens(&h, T0, &f, "f");
}

#[test]
fn import_tokens_for_another_key_damaged_or_expired_are_refused() {
    let h = Home::new();
    let a = h.external_key();
    let b = h.external_key();
    let mat = h.material("mat", 32);
    let pa = h.params(T0, &a, "pa", None, None);
    let pb = h.params(T0, &b, "pb", None, None);

    // B's token with material wrapped for B's public key, into A.
    let wb = h.wrapped(&pb, &mat, "wb");
    h.import_fails(
        T0,
        &a,
        &wb,
        &pb.token,
        USAGE,
        &["InvalidImportTokenException", &b],
    );

    // Garbage, an empty file, a damaged and a cut token.
    let wa = h.wrapped(&pa, &mat, "wa");
    let token = std::fs::read(&pa.token).unwrap();
    let garbage = h.material("garbage", token.len());
    let empty = h.path("empty");
    std::fs::write(&empty, b"").unwrap();
    let damaged = h.path("damaged");
    let mut bytes = token.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&damaged, bytes).unwrap();
    let cut = h.path("cut");
    std::fs::write(&cut, &token[..token.len() - 1]).unwrap();
    for t in [&garbage, &empty, &damaged, &cut] {
        h.import_fails(T0, &a, &wa, t, USAGE, &["InvalidImportTokenException"]);
    }

    // A token from another home, for a key there.
    let other = Home::new();
    let ok = other.external_key();
    let po = other.params(T0, &ok, "po", None, None);
    let wo = other.wrapped(&po, &mat, "wo");
    h.import_fails(
        T0,
        &a,
        &wo,
        &po.token,
        USAGE,
        &["InvalidImportTokenException"],
    );

    // A's own token, a second after its 24 hours.
    assert_eq!(pa.valid_to, "2026-01-02T00:00:00Z");
    h.import_fails(
        "2026-01-02T00:00:01Z",
        &a,
        &wa,
        &pa.token,
        USAGE,
        &["ExpiredImportTokenException", "2026-01-02T00:00:00Z"],
    );
    h.import_fails(
        "2026-03-01T00:00:00Z",
        &a,
        &wa,
        &pa.token,
        USAGE,
        &["ExpiredImportTokenException"],
    );
    let m = h.meta(T0, &a);
    assert_eq!(m["KeyState"], "PendingImport");
    assert!(m.get("CurrentKeyMaterialId").is_none(), "{m}");

    // A second before, it works; B's token works for B.
    let last = "2026-01-01T23:59:59Z";
    assert_eq!(
        h.import(last, &a, &wa, &pa.token, &["--no-expiry"])["KeyState"],
        "Enabled"
    );
    assert_eq!(
        h.import(T0, &b, &wb, &pb.token, &["--no-expiry"])["KeyState"],
        "Enabled"
    );
    // Same material, two keys: two material ids.
    assert_ne!(
        h.meta(T0, &a)["CurrentKeyMaterialId"],
        h.meta(T0, &b)["CurrentKeyMaterialId"]
    );
}

#[test]
fn material_must_be_wrapped_for_its_token_and_be_32_bytes() {
    let h = Home::new();
    let key = h.external_key();
    let mat = h.material("mat", 32);
    let p1 = h.params(T0, &key, "p1", None, Some("RSAES_OAEP_SHA_256"));
    let p2 = h.params(T0, &key, "p2", None, Some("RSAES_OAEP_SHA_256"));
    let kw = h.params(T0, &key, "kw", None, Some("RSA_AES_KEY_WRAP_SHA_256"));
    let bad = |material: &Path, token: &Path| {
        h.import_fails(
            T0,
            &key,
            material,
            token,
            INTEGRITY,
            &["InvalidCiphertextException"],
        );
    };

    // Wrapped with another public key for the same key: p1's material, p2's token.
    let w1 = h.wrapped(&p1, &mat, "w1");
    bad(&w1, &p2.token);
    // The right public key, the wrong algorithm.
    let sha1 = h.path("sha1");
    wrap("RSAES_OAEP_SHA_1", &p1.public, &mat, &sha1);
    bad(&sha1, &p1.token);
    let kwp = h.path("kwp");
    wrap("RSA_AES_KEY_WRAP_SHA_256", &p1.public, &mat, &kwp);
    bad(&kwp, &p1.token);
    let plain_oaep = h.path("plain-oaep");
    wrap("RSAES_OAEP_SHA_256", &kw.public, &mat, &plain_oaep);
    bad(&plain_oaep, &kw.token);
    let kw_sha1 = h.path("kw-sha1");
    wrap("RSA_AES_KEY_WRAP_SHA_1", &kw.public, &mat, &kw_sha1);
    bad(&kw_sha1, &kw.token);
    // Key-wrapped material damaged in its AES part, or cut after the RSA part.
    let good_kw = h.wrapped(&kw, &mat, "good-kw");
    let bytes = std::fs::read(&good_kw).unwrap();
    let mut damaged = bytes.clone();
    *damaged.last_mut().unwrap() ^= 1;
    let damaged_path = h.path("damaged-kw");
    std::fs::write(&damaged_path, damaged).unwrap();
    bad(&damaged_path, &kw.token);
    let cut = h.path("cut-kw");
    std::fs::write(&cut, &bytes[..256]).unwrap();
    bad(&cut, &kw.token);
    // The raw material, not wrapped at all.
    bad(&mat, &p1.token);

    // Well wrapped, but not 32 bytes.
    let short = h.material("short", 16);
    let w = h.wrapped(&p1, &short, "short.w");
    h.import_fails(
        T0,
        &key,
        &w,
        &p1.token,
        USAGE,
        &["IncorrectKeyMaterialException", "16 bytes"],
    );
    let long = h.material("long", 33);
    let w = h.wrapped(&kw, &long, "long.w");
    h.import_fails(
        T0,
        &key,
        &w,
        &kw.token,
        USAGE,
        &["IncorrectKeyMaterialException", "33 bytes"],
    );
    let m = h.meta(T0, &key);
    assert_eq!(m["KeyState"], "PendingImport");
    assert!(m.get("CurrentKeyMaterialId").is_none(), "{m}");

    // Each token still takes its own material.
    assert_eq!(
        h.import(T0, &key, &good_kw, &kw.token, &["--no-expiry"])["KeyState"],
        "Enabled"
    );
}

#[test]
fn valid_to_must_be_ahead_and_within_365_days() {
    let h = Home::new();
    let key = h.external_key();
    let p = h.params(T0, &key, "p", None, None);
    let mat = h.material("mat", 32);
    let w = h.wrapped(&p, &mat, "w");
    let base = Home::import_args(&key, &w, &p.token, &[]);

    // Exactly one of --valid-to and --no-expiry.
    h.misused(&base, "--no-expiry");
    h.misused(
        &[
            &base[..],
            &["--no-expiry", "--valid-to", "2026-06-01T00:00:00Z"],
        ]
        .concat(),
        "cannot be used with",
    );
    for bad in [
        T0,
        "2025-12-31T23:59:59Z",
        "2027-01-01T00:00:01Z",
        "2030-01-01T00:00:00Z",
    ] {
        h.fails(
            T0,
            &[&base[..], &["--valid-to", bad]].concat(),
            USAGE,
            &["ValidationException", "365 days"],
        );
    }
    h.fails(
        T0,
        &[&base[..], &["--valid-to", "next tuesday"]].concat(),
        USAGE,
        &["RFC 3339"],
    );
    assert_eq!(h.state(T0, &key), "PendingImport");

    // 365 days ahead to the second is allowed.
    let m = h.import(
        T0,
        &key,
        &w,
        &p.token,
        &["--valid-to", "2027-01-01T00:00:00Z"],
    );
    assert_eq!(m["KeyState"], "Enabled");
    assert_eq!(m["ExpirationModel"], "KEY_MATERIAL_EXPIRES");
    assert_eq!(m["ValidTo"], "2027-01-01T00:00:00Z");
}

#[test]
fn expired_material_waits_for_the_same_material_and_old_files_open_again() {
    let h = Home::new();
    let key = h.external_key();
    let mat = h.material("mat", 32);
    let p = h.params(T0, &key, "p0", None, Some("RSA_AES_KEY_WRAP_SHA_256"));
    let w = h.wrapped(&p, &mat, "w0");
    let m = h.import(
        T0,
        &key,
        &w,
        &p.token,
        &["--valid-to", "2026-01-31T00:00:00Z"],
    );
    assert_eq!(m["KeyState"], "Enabled");
    assert_eq!(m["ExpirationModel"], "KEY_MATERIAL_EXPIRES");
    assert_eq!(m["ValidTo"], "2026-01-31T00:00:00Z");
    let id = m["CurrentKeyMaterialId"].clone();
    let f = seal(&h, T0, &key, "f");

    // Up to ValidTo, all is well.
    let before = "2026-01-30T23:59:59Z";
    assert_eq!(h.state(before, &key), "Enabled");
    opens(&h, before, &f, "f");

    // After it, the key waits for its material: no crypto, no enable or disable.
    let after = "2026-02-01T00:00:00Z";
    assert_eq!(h.state(after, &key), "PendingImport");
    h.fails(
        after,
        &["decrypt", s(&f)],
        ACCESS,
        &["KMSInvalidStateException", "pending import"],
    );
    h.fails(
        after,
        &["encrypt", "-k", &key, "-o", s(&h.path("g.cofre")), s(&mat)],
        ACCESS,
        &["KMSInvalidStateException"],
    );
    for verb in ["enable", "disable"] {
        h.fails(
            after,
            &["key", verb, &key],
            ACCESS,
            &["KMSInvalidStateException"],
        );
    }
    assert_eq!(h.state(after, &key), "PendingImport");

    // Other material is refused, with a fresh token.
    let p = h.params(
        after,
        &key,
        "p1",
        Some("RSA_3072"),
        Some("RSAES_OAEP_SHA_1"),
    );
    let other = h.material("other", 32);
    let wo = h.wrapped(&p, &other, "wo");
    h.import_fails(
        after,
        &key,
        &wo,
        &p.token,
        USAGE,
        &["IncorrectKeyMaterialException"],
    );
    assert_eq!(h.state(after, &key), "PendingImport");

    // The same material, now without expiry: the old file opens, new files use it too.
    let w = h.wrapped(&p, &mat, "w1");
    let m = h.import(after, &key, &w, &p.token, &["--no-expiry"]);
    assert_eq!(m["KeyState"], "Enabled");
    assert_eq!(m["ExpirationModel"], "KEY_MATERIAL_DOES_NOT_EXPIRE");
    assert!(m.get("ValidTo").is_none_or(Value::is_null), "{m}");
    assert_eq!(m["CurrentKeyMaterialId"], id);
    opens(&h, after, &f, "f");
    let g = seal(&h, after, &key, "g");
    assert_eq!(h.material_of(after, &g), h.material_of(after, &f));
    let much_later = "2029-01-01T00:00:00Z";
    assert_eq!(h.state(much_later, &key), "Enabled");
    opens(&h, much_later, &g, "g");
}

#[test]
fn the_same_material_sets_a_new_expiry_on_an_enabled_key_and_other_material_never_fits() {
    let h = Home::new();
    let key = h.external_key();
    let mat = h.material("mat", 32);
    let other = h.material("other", 32);
    let p = h.params(T0, &key, "p", None, Some("RSAES_OAEP_SHA_1"));
    let w = h.wrapped(&p, &mat, "w");
    let wo = h.wrapped(&p, &other, "wo");
    h.import(T0, &key, &w, &p.token, &["--no-expiry"]);
    let f = seal(&h, T0, &key, "f");

    // Enabled: other material is refused; the same material changes the expiry.
    h.import_fails(
        T0,
        &key,
        &wo,
        &p.token,
        USAGE,
        &["IncorrectKeyMaterialException"],
    );
    let m = h.import(
        T0,
        &key,
        &w,
        &p.token,
        &["--valid-to", "2026-01-10T00:00:00Z"],
    );
    assert_eq!(m["KeyState"], "Enabled");
    assert_eq!(m["ExpirationModel"], "KEY_MATERIAL_EXPIRES");
    assert_eq!(m["ValidTo"], "2026-01-10T00:00:00Z");

    // Deleted: other material is still refused, the same comes back.
    let m = h.delete_material(T0, &key);
    assert_eq!(m["KeyState"], "PendingImport");
    assert_eq!(h.state(T0, &key), "PendingImport");
    h.fails(
        T0,
        &["decrypt", s(&f)],
        ACCESS,
        &["KMSInvalidStateException"],
    );
    h.import_fails(
        T0,
        &key,
        &wo,
        &p.token,
        USAGE,
        &["IncorrectKeyMaterialException"],
    );
    assert_eq!(h.state(T0, &key), "PendingImport");
    h.import(T0, &key, &w, &p.token, &["--no-expiry"]);
    opens(&h, T0, &f, "f");
}

#[test]
fn imported_keys_follow_the_state_table_and_rotate_only_on_demand() {
    let h = Home::new();
    let key = h.external_key();
    let mat = h.material("mat", 32);
    let p = h.params(T0, &key, "p", None, None);
    let w = h.wrapped(&p, &mat, "w");

    // PendingImport: not enabled or disabled; scheduled and cancelled, it is PendingImport again.
    for verb in ["enable", "disable"] {
        h.fails(
            T0,
            &["key", verb, &key],
            ACCESS,
            &["KMSInvalidStateException"],
        );
    }
    let d = h.json(T0, &["key", "schedule-deletion", &key, "--days", "7"]);
    assert_eq!(d["KeyState"], "PendingDeletion");
    h.fails(
        T0,
        &["key", "import-params", &key, "--out-dir", s(&h.path("q"))],
        ACCESS,
        &["KMSInvalidStateException"],
    );
    h.import_fails(
        T0,
        &key,
        &w,
        &p.token,
        ACCESS,
        &["KMSInvalidStateException"],
    );
    let c = h.json(T0, &["key", "cancel-deletion", &key]);
    assert_eq!(c["KeyId"], h.meta(T0, &key)["Arn"]);
    assert_eq!(h.state(T0, &key), "PendingImport");
    assert_eq!(h.state(T0, &key), "PendingImport");

    // With material: no automatic rotation; on demand only to new imported material, which
    // there is none of yet; disable and enable work.
    h.import(T0, &key, &w, &p.token, &["--no-expiry"]);
    h.fails(
        T0,
        &["key", "rotation", "enable", &key],
        ACCESS,
        &["UnsupportedOperationException", "NEW_KEY_MATERIAL"],
    );
    h.fails(
        T0,
        &["key", "rotate", &key],
        ACCESS,
        &["KMSInvalidStateException", "pending rotation"],
    );
    assert_eq!(
        h.json(T0, &["key", "rotation", "status", &key])["KeyRotationEnabled"],
        false
    );
    let f = seal(&h, T0, &key, "f");
    h.ok(T0, &["key", "disable", &key]);
    assert_eq!(h.state(T0, &key), "Disabled");
    h.fails(T0, &["decrypt", s(&f)], ACCESS, &["DisabledException"]);
    h.ok(T0, &["key", "enable", &key]);
    opens(&h, T0, &f, "f");

    // Pending deletion, its material deleted: still PendingDeletion; cancelled, PendingImport.
    h.ok(T0, &["key", "schedule-deletion", &key, "--days", "7"]);
    let m = h.delete_material(T0, &key);
    assert_eq!(m["KeyState"], "PendingDeletion");
    assert_eq!(h.state(T0, &key), "PendingDeletion");
    let c = h.json(T0, &["key", "cancel-deletion", &key]);
    assert_eq!(c["KeyId"], h.meta(T0, &key)["Arn"]);
    assert_eq!(h.state(T0, &key), "PendingImport");
    let p = h.params(T0, &key, "p2", None, None);
    let w = h.wrapped(&p, &mat, "w2");
    assert_eq!(
        h.import(T0, &key, &w, &p.token, &["--no-expiry"])["KeyState"],
        "Enabled"
    );
    opens(&h, T0, &f, "f");
    // A year on, still one version: imported keys do not rotate on their own.
    let v = h.json(
        "2027-06-01T00:00:00Z",
        &[
            "key",
            "rotations",
            &key,
            "--include-key-material",
            "ALL_KEY_MATERIAL",
        ],
    )["Rotations"]
        .clone();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
}

#[test]
fn material_expiring_while_the_key_is_pending_deletion_leaves_it_pending_deletion() {
    let h = Home::new();
    let key = h.external_key();
    let mat = h.material("mat", 32);
    let p = h.params(T0, &key, "p", None, None);
    let w = h.wrapped(&p, &mat, "w");
    h.import(
        T0,
        &key,
        &w,
        &p.token,
        &["--valid-to", "2026-01-03T00:00:00Z"],
    );
    let f = seal(&h, T0, &key, "f");
    h.ok(T0, &["key", "schedule-deletion", &key, "--days", "7"]);

    // Past ValidTo (Jan 3), before the DeletionDate (Jan 8): the key is still there.
    let t = "2026-01-05T00:00:00Z";
    let out = h.run(t, &["key", "describe", &key, "--output", "json"]);
    assert!(
        out.status.success(),
        "the key was destroyed when its material expired, before its DeletionDate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(h.state(t, &key), "PendingDeletion");
    let c = h.json(t, &["key", "cancel-deletion", &key]);
    assert_eq!(c["KeyId"], h.meta(t, &key)["Arn"]);
    assert_eq!(h.state(t, &key), "PendingImport");
    h.fails(
        t,
        &["decrypt", s(&f)],
        ACCESS,
        &["KMSInvalidStateException"],
    );
    let p = h.params(t, &key, "p2", None, None);
    let w = h.wrapped(&p, &mat, "w2");
    h.import(t, &key, &w, &p.token, &["--no-expiry"]);
    opens(&h, t, &f, "f");
}

/// The material versions of `key`, as `key rotations --include-key-material ALL_KEY_MATERIAL`
/// lists them (JSON).
fn all_material(h: &Home, now: &str, key: &str) -> Vec<Value> {
    h.json(
        now,
        &[
            "key",
            "rotations",
            key,
            "--include-key-material",
            "ALL_KEY_MATERIAL",
        ],
    )["Rotations"]
        .as_array()
        .unwrap()
        .clone()
}

/// Rotation of imported material, as KMS does it since 2025: new material imported with
/// ImportType NEW_KEY_MATERIAL waits PENDING_ROTATION until `key rotate` makes it current;
/// every version keeps decrypting what it encrypted, has its own expiry, and the key is usable
/// only while all of them are imported.
#[test]
fn new_key_material_rotates_an_imported_key_and_old_material_keeps_decrypting() {
    let h = Home::new();
    let key = h.external_key();
    let (m1, m2, m3) = (
        h.material("m1", 32),
        h.material("m2", 32),
        h.material("m3", 32),
    );
    let p = h.params(T0, &key, "p", None, None);
    let (w1, w2, w3) = (
        h.wrapped(&p, &m1, "w1"),
        h.wrapped(&p, &m2, "w2"),
        h.wrapped(&p, &m3, "w3"),
    );
    // The first import is NEW_KEY_MATERIAL by default, and current at once.
    let meta = h.import(T0, &key, &w1, &p.token, &["--no-expiry"]);
    let id1 = meta["CurrentKeyMaterialId"].as_str().unwrap().to_owned();
    let f1 = seal(&h, T0, &key, "f1");
    assert_eq!(h.material_of(T0, &f1), id1);

    // After it, the default is EXISTING_KEY_MATERIAL: other material is refused; the first
    // material is refused as new.
    h.import_fails(
        T0,
        &key,
        &w2,
        &p.token,
        USAGE,
        &["IncorrectKeyMaterialException"],
    );
    h.fails(
        T0,
        &[
            &Home::import_args(&key, &w1, &p.token, &["--no-expiry"])[..],
            &["--import-type", "NEW_KEY_MATERIAL"],
        ]
        .concat(),
        USAGE,
        &["IncorrectKeyMaterialException", "EXISTING_KEY_MATERIAL"],
    );

    // New material, expiring in 30 days: pending rotation, not current, the key unchanged.
    let new_args = |w: &Path, extra: &[&str]| -> Vec<String> {
        [
            &Home::import_args(&key, w, &p.token, extra)[..],
            &["--import-type", "NEW_KEY_MATERIAL"],
        ]
        .concat()
        .into_iter()
        .map(str::to_owned)
        .collect()
    };
    let args = new_args(
        &w2,
        &[
            "--valid-to",
            "2026-01-31T00:00:00Z",
            "--description",
            "second/2026 v2",
        ],
    );
    let r = h.json(T0, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let id2 = r["KeyMaterialId"].as_str().unwrap().to_owned();
    assert_ne!(id2, id1);
    let meta = h.meta(T0, &key);
    assert_eq!(meta["CurrentKeyMaterialId"], id1);
    assert_eq!(meta["KeyState"], "Enabled");
    assert_eq!(meta["ExpirationModel"], "KEY_MATERIAL_DOES_NOT_EXPIRE");
    let v = all_material(&h, T0, &key);
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(v[0]["KeyMaterialId"], id1);
    assert_eq!(v[0]["KeyMaterialState"], "CURRENT");
    assert_eq!(v[0]["ImportState"], "IMPORTED");
    assert!(v[0].get("RotationDate").is_none(), "{v:?}");
    assert_eq!(v[1]["KeyMaterialId"], id2);
    assert_eq!(v[1]["KeyMaterialState"], "PENDING_ROTATION");
    assert_eq!(v[1]["ImportState"], "IMPORTED");
    assert_eq!(v[1]["ExpirationModel"], "KEY_MATERIAL_EXPIRES");
    assert_eq!(v[1]["ValidTo"], "2026-01-31T00:00:00Z");
    assert_eq!(v[1]["KeyMaterialDescription"], "second/2026 v2");
    assert!(v[1].get("RotationDate").is_none(), "{v:?}");
    let only = h.json(T0, &["key", "rotations", &key])["Rotations"].clone();
    assert_eq!(only, serde_json::json!([]));
    // One pending material at a time.
    let args = new_args(&w3, &["--no-expiry"]);
    h.fails(
        T0,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        ACCESS,
        &["KMSInvalidStateException", &id2],
    );

    // Rotate: the new material is current; files under the old one still open.
    let t1 = "2026-01-01T12:00:00Z";
    h.ok(t1, &["key", "rotate", &key]);
    let meta = h.meta(t1, &key);
    assert_eq!(meta["CurrentKeyMaterialId"], id2);
    assert_eq!(meta["ExpirationModel"], "KEY_MATERIAL_EXPIRES");
    assert_eq!(meta["ValidTo"], "2026-01-31T00:00:00Z");
    let only = h.json(t1, &["key", "rotations", &key])["Rotations"].clone();
    assert_eq!(only.as_array().unwrap().len(), 1, "{only}");
    assert_eq!(only[0]["KeyMaterialId"], id2);
    assert_eq!(only[0]["KeyMaterialState"], "CURRENT");
    assert_eq!(only[0]["RotationType"], "ON_DEMAND");
    assert_eq!(only[0]["RotationDate"], t1);
    let f2 = seal(&h, t1, &key, "f2");
    assert_eq!(h.material_of(t1, &f2), id2);
    opens(&h, t1, &f1, "f1");
    // Nothing new to rotate to.
    h.fails(
        t1,
        &["key", "rotate", &key],
        ACCESS,
        &["KMSInvalidStateException"],
    );

    // Deleting the old material stops the key; importing it again (by id) brings it back.
    let r = h.json(
        t1,
        &["key", "delete-material", &key, "--key-material-id", &id1],
    );
    assert_eq!(r["KeyMaterialId"], id1);
    assert_eq!(h.state(t1, &key), "PendingImport");
    h.fails(
        t1,
        &["decrypt", s(&f2)],
        ACCESS,
        &["KMSInvalidStateException"],
    );
    assert_eq!(
        all_material(&h, t1, &key)[0]["ImportState"],
        "PENDING_IMPORT"
    );
    h.fails(
        t1,
        &[
            &Home::import_args(&key, &w1, &p.token, &["--no-expiry"])[..],
            &["--key-material-id", &id2],
        ]
        .concat(),
        USAGE,
        &["IncorrectKeyMaterialException", &id2],
    );
    let r = h.json(
        t1,
        &[
            &Home::import_args(&key, &w1, &p.token, &["--no-expiry"])[..],
            &["--key-material-id", &id1],
        ]
        .concat(),
    );
    assert_eq!(r["KeyMaterialId"], id1);
    assert_eq!(h.state(t1, &key), "Enabled");
    opens(&h, t1, &f1, "f1");
    opens(&h, t1, &f2, "f2");

    // The rotated-to material expires on the 31st: the key waits for it, and both files
    // open again once it is imported again (EXISTING_KEY_MATERIAL, now without expiry).
    let t2 = "2026-02-01T00:00:00Z";
    assert_eq!(h.state(t2, &key), "PendingImport");
    let v = all_material(&h, t2, &key);
    assert_eq!(
        (v[0]["ImportState"].as_str(), v[1]["ImportState"].as_str()),
        (Some("IMPORTED"), Some("PENDING_IMPORT"))
    );
    let p2 = h.params(t2, &key, "p2", None, None);
    let w2b = h.wrapped(&p2, &m2, "w2b");
    h.import(t2, &key, &w2b, &p2.token, &["--no-expiry"]);
    assert_eq!(h.state(t2, &key), "Enabled");
    assert_eq!(
        h.meta(t2, &key)["ExpirationModel"],
        "KEY_MATERIAL_DOES_NOT_EXPIRE"
    );
    opens(&h, t2, &f1, "f1");
    opens(&h, t2, &f2, "f2");

    // Material pending rotation that is deleted was never the key's: it just goes.
    let w3b = h.wrapped(&p2, &m3, "w3b");
    let r = h.json(
        t2,
        &[
            &Home::import_args(&key, &w3b, &p2.token, &["--no-expiry"])[..],
            &["--import-type", "NEW_KEY_MATERIAL"],
        ]
        .concat(),
    );
    let id3 = r["KeyMaterialId"].as_str().unwrap().to_owned();
    assert_eq!(all_material(&h, t2, &key).len(), 3);
    h.json(
        t2,
        &["key", "delete-material", &key, "--key-material-id", &id3],
    );
    assert_eq!(h.state(t2, &key), "Enabled");
    let v = all_material(&h, t2, &key);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v.iter().all(|e| e["KeyMaterialId"] != id3.as_str()));
}
