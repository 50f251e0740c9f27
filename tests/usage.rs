//! The bill of a scripted month, against a hand computation. Time moves by the home's injected
//! clock alone (no COFRE_NOW): requests, their trail records and the bill all ask it.

use cofre::{audit::usage, CreateKeyRequest, Home, KeyRef, Kms, Region};

fn at(now: &str, dir: &std::path::Path) -> Kms {
    {
        let clock = cofre::store::Clock::Fixed(cofre::store::parse_time(now).unwrap());
        let home = Home::open(&dir.join("home"), Some("111122223333"))
            .unwrap()
            .with_clock(clock);
        let ctx = cofre::RequestContext::account_root(home.account_id());
        Kms::new(home, Region::new("us-east-1").unwrap(), ctx)
    }
}

#[test]
fn a_scripted_month_bills_as_computed_by_hand() {
    // 50,000 requests, each with its trail record synced to disk: on tmpfs when there is one,
    // where a sync costs nothing, so the test measures the bill and not the disk.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    // March 2027: 31 days, 744 hours.
    let kms = at("2027-03-01T00:00:00Z", dir.path());
    let a: KeyRef = kms
        .create_key(&CreateKeyRequest::default())
        .unwrap()
        .key_id
        .parse()
        .unwrap();
    // Three on-demand rotations of A; only the first two are billed.
    for day in ["05", "06", "07"] {
        at(&format!("2027-03-{day}T00:00:00Z"), dir.path())
            .rotate_key_on_demand(&a)
            .unwrap();
    }
    // B lives from 06:30 on the 10th; pending deletion (free) from the 20th; gone on the 27th.
    let kms = at("2027-03-10T06:30:00Z", dir.path());
    let b: KeyRef = kms
        .create_key(&CreateKeyRequest::default())
        .unwrap()
        .key_id
        .parse()
        .unwrap();
    at("2027-03-20T00:00:00Z", dir.path())
        .schedule_key_deletion(&b, Some(7), false)
        .unwrap();
    // The AWS managed key for EBS: its requests count, the key is free.
    let kms = at("2027-03-21T00:00:00Z", dir.path());
    kms.describe_key(&"alias/aws/ebs".parse().unwrap()).unwrap();
    // 50,000 requests, the last ones after B's deletion date (the first of them destroys B).
    for _ in 0..25_000 {
        kms.describe_key(&a).unwrap();
    }
    let kms = at("2027-03-28T00:00:00Z", dir.path());
    for _ in 0..25_000 {
        kms.describe_key(&a).unwrap();
    }
    assert!(kms.describe_key(&b).is_err(), "B was destroyed on the 27th");
    // That refused request counts too.
    let kms = at("2027-04-02T00:00:00Z", dir.path());
    let trails = [(kms.region().clone(), kms.audit_trail())];
    let r = usage::report(kms.home(), &trails, "2027-03").unwrap();

    // By hand:
    // requests: 2 CreateKey + 3 RotateKeyOnDemand + 1 ScheduleKeyDeletion + 1 DescribeKey
    //           (alias/aws/ebs) + 50,000 DescribeKey + 1 refused DescribeKey = 50,008;
    //           20,000 free, 30,008 × $0.03 / 10,000 = $0.090024
    // A: 744 h = $1; rotations from the 5th (648 h) and the 6th (624 h): 1272/744 = $1.709677
    // B: 06:30 on the 10th to the 20th = 233.5 h, 234 started hours: 234/744 = $0.314516
    assert_eq!(r.hours_in_month, 744);
    assert_eq!(r.total_requests, 50_008);
    assert_eq!(r.billable_requests, 30_008);
    assert!(
        (r.request_cost - 0.090024).abs() < 1e-9,
        "{}",
        r.request_cost
    );
    let key = |k: &KeyRef| {
        r.keys
            .iter()
            .find(|u| k.to_string() == u.key_id)
            .unwrap_or_else(|| panic!("{k} not in {:?}", r.keys))
            .clone()
    };
    let (ua, ub) = (key(&a), key(&b));
    assert_eq!((ua.hours, ua.rotation_hours), (744, 648 + 624));
    assert!((ua.key_cost - 1.0).abs() < 1e-9 && (ua.rotation_cost - 1.709677).abs() < 1e-6);
    assert_eq!((ub.hours, ub.rotation_hours), (234, 0));
    assert!((ub.key_cost - 0.314516).abs() < 1e-6, "{}", ub.key_cost);
    // The AWS managed key costs nothing.
    assert!(r
        .keys
        .iter()
        .filter(|k| k.key_manager == cofre::keyring::KeyManager::Aws)
        .all(|k| k.hours == 0 && k.key_cost == 0.0));
    assert!(
        (r.total - (0.090024 + 1.0 + 1.709677 + 0.314516)).abs() < 1e-5,
        "{}",
        r.total
    );
    // The same home gives the same bill.
    let again = usage::report(kms.home(), &trails, "2027-03").unwrap();
    assert_eq!(again.total, r.total);
    std::env::remove_var("COFRE_NOW");
}

/// AWS bills a key whose deletion was cancelled as though it had never been scheduled, and
/// prices requests to asymmetric keys and GenerateDataKeyPair on their own lines, outside the
/// 20,000 free requests — also for a key deleted since (its tombstone keeps its spec).
#[test]
fn cancelled_deletions_are_billed_and_asymmetric_requests_priced_apart() {
    use cofre::keyring::{KeySpec, KeyUsage};
    use cofre::kms::{DataKeyPairSpec, EncryptionAlgorithm, MessageType, SigningAlgorithm};
    use usage::RequestKind;
    let dir = tempfile::tempdir().unwrap();
    // February 2027: 28 days, 672 hours.
    let kms = at("2027-02-01T00:00:00Z", dir.path());
    let key = |spec, usage| -> KeyRef {
        kms.create_key(&CreateKeyRequest {
            key_spec: Some(spec),
            key_usage: Some(usage),
            ..Default::default()
        })
        .unwrap()
        .key_id
        .parse()
        .unwrap()
    };
    let a = key(KeySpec::SymmetricDefault, KeyUsage::EncryptDecrypt);
    let sig = key(KeySpec::EccNistP256, KeyUsage::SignVerify);
    let rsa = key(KeySpec::Rsa2048, KeyUsage::EncryptDecrypt);
    let none = cofre::EncryptionContext::default();
    for _ in 0..3 {
        kms.sign(&sig, b"m", MessageType::Raw, SigningAlgorithm::EcdsaSha256)
            .unwrap();
    }
    kms.get_public_key(&sig).unwrap();
    for _ in 0..2 {
        kms.encrypt(&rsa, b"m", &none, EncryptionAlgorithm::RsaesOaepSha256)
            .unwrap();
    }
    kms.generate_data_key_pair(&a, DataKeyPairSpec::EccNistP256, &none, false)
        .unwrap();
    kms.generate_data_key_pair(&a, DataKeyPairSpec::Rsa2048, &none, false)
        .unwrap();
    // A: scheduled for deletion on the 10th, cancelled on the 12th: billed all month.
    at("2027-02-10T00:00:00Z", dir.path())
        .schedule_key_deletion(&a, Some(7), false)
        .unwrap();
    at("2027-02-12T00:00:00Z", dir.path())
        .cancel_key_deletion(&a)
        .unwrap();
    // The RSA key: scheduled on the 20th, destroyed on the 27th (free from the 20th).
    at("2027-02-20T00:00:00Z", dir.path())
        .schedule_key_deletion(&rsa, Some(7), false)
        .unwrap();
    let kms = at("2027-03-01T00:00:00Z", dir.path());
    assert!(kms.describe_key(&rsa).is_err(), "destroyed on the 27th");
    let trails = [(kms.region().clone(), kms.audit_trail())];
    let r = usage::report(kms.home(), &trails, "2027-02").unwrap();

    let hours = |k: &KeyRef| {
        r.keys
            .iter()
            .find(|u| u.key_id == k.to_string())
            .unwrap()
            .hours
    };
    assert_eq!(hours(&a), 672, "a cancelled deletion is billed");
    assert_eq!(hours(&sig), 672);
    assert_eq!(
        hours(&rsa),
        19 * 24,
        "pending deletion before destruction is free"
    );
    // By hand: symmetric = 3 CreateKey + 1 ScheduleKeyDeletion + 1 CancelKeyDeletion + 1
    // ScheduleKeyDeletion = 6, all free; asymmetric (ECC) = 3 Sign + 1 GetPublicKey = 4 at
    // $0.15 per 10,000; RSA_2048 = 2 Encrypt at $0.03; one ECC and one RSA data key pair at
    // $0.10 and $12.00.
    let line = |k: RequestKind| {
        r.request_lines
            .iter()
            .find(|l| l.kind == k)
            .unwrap_or_else(|| panic!("no {k:?} line in {:?}", r.request_lines))
            .clone()
    };
    let sym = line(RequestKind::Symmetric);
    assert_eq!((sym.requests, sym.free, sym.billable), (6, 6, 0));
    for (kind, n, cost) in [
        (RequestKind::Asymmetric, 4, 0.00006),
        (RequestKind::Rsa2048, 2, 0.000006),
        (RequestKind::EccDataKeyPair, 1, 0.00001),
        (RequestKind::RsaDataKeyPair, 1, 0.0012),
    ] {
        let l = line(kind);
        assert_eq!((l.requests, l.free, l.billable), (n, 0, n), "{kind:?}");
        assert!((l.cost - cost).abs() < 1e-9, "{kind:?}: {}", l.cost);
    }
    assert_eq!(r.request_lines.len(), 5);
    assert_eq!(
        (r.total_requests, r.free_requests, r.billable_requests),
        (14, 6, 8)
    );
    assert!(
        (r.request_cost - 0.001276).abs() < 1e-9,
        "{}",
        r.request_cost
    );
}
