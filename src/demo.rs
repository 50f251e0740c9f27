//! `cofre demo`: the main job on a throwaway home, start to finish.
//!
//! Creates a key in us-east-1 and one in eu-west-1, generates a disk image (random-looking data
//! with runs of zeros, like a real one), copies it as a baseline, encrypts it, decrypts and
//! compares, re-wraps it into eu-west-1 without touching the payload, shows that keys are
//! regional, and decrypts the re-wrapped copy there. Then the EBS half: the image imported as an
//! encrypted volume, snapshotted, the snapshot copied to eu-west-1 by re-wrapping its data key,
//! restored there and compared, and both regions verified. Everything lives in a temporary
//! folder removed at the end.

use crate::envelope::{EncryptionContext, DEFAULT_CHUNK_LOG2};
use crate::error::{Error, Result};
use crate::files::{self, Input, Options, Output};
use crate::keyring::{Home, Region};
use crate::kms::{CreateKeyRequest, Kms};
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the demo puts its throwaway folder when none is given: tmpfs if it has room for the
/// image and its three copies, else the temporary folder.
fn default_dir(size: u64) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let room = rustix::fs::statvfs(shm)
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
        .unwrap_or(0);
    if room > 4 * size + (64 << 20) {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Fills `path` with `size` bytes that look like a disk image: BLAKE3-generated data, with
/// every fourth MiB left zero.
fn make_image(path: &Path, size: u64) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(path).map_err(|e| Error::io("creating", path, e))?;
    f.set_len(size).map_err(|e| Error::io("sizing", path, e))?;
    let block = 1u64 << 20;
    (0..size.div_ceil(block)).into_par_iter().try_for_each(|i| {
        if i % 4 == 3 {
            return Ok(());
        }
        let len = block.min(size - i * block) as usize;
        let mut buf = vec![0u8; len];
        blake3::Hasher::new()
            .update(&i.to_le_bytes())
            .finalize_xof()
            .fill(&mut buf);
        f.write_all_at(&buf, i * block)
            .map_err(|e| Error::io("writing", path, e))
    })
}

fn hash_file(path: &Path) -> Result<blake3::Hash> {
    let mut h = blake3::Hasher::new();
    h.update_mmap_rayon(path)
        .map_err(|e| Error::io("hashing", path, e))?;
    Ok(h.finalize())
}

fn gbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e9
}

/// Runs the demo with an image of `size` bytes in a temporary folder under `dir`.
pub fn run(size: u64, dir: Option<&Path>, out: &mut dyn Write) -> Result<()> {
    let base = dir.map_or_else(|| default_dir(size), Path::to_path_buf);
    let tmp = tempfile::Builder::new()
        .prefix("cofre-demo-")
        .tempdir_in(&base)
        .map_err(|e| Error::io("creating a temporary folder in", &base, e))?;
    crate::store::remove_on_interrupt(tmp.path());
    let result = steps(size, tmp.path(), out);
    crate::store::forget_on_interrupt(tmp.path());
    result
}

/// The demo's steps, in the throwaway folder `root`.
fn steps(size: u64, root: &Path, out: &mut dyn Write) -> Result<()> {
    let w = |out: &mut dyn Write, s: String| {
        let _ = writeln!(out, "{s}");
    };
    w(
        out,
        format!("cofre demo in {} (removed at the end)", root.display()),
    );

    let east = Region::new("us-east-1")?;
    let west = Region::new("eu-west-1")?;
    let home = std::sync::Arc::new(Home::open(&root.join("home"), None)?);
    let ctx = crate::RequestContext::account_root(home.account_id());
    let kms = Kms::new(home.clone(), east.clone(), ctx);
    let kms_west = kms.in_region(west.clone())?;
    let k1 = kms.create_key(&CreateKeyRequest {
        description: "demo disks".into(),
        alias: Some("alias/demo-disks".into()),
        ..Default::default()
    })?;
    let k2 = kms_west.create_key(&CreateKeyRequest {
        description: "demo disaster recovery".into(),
        alias: Some("alias/demo-dr".into()),
        ..Default::default()
    })?;
    w(
        out,
        format!("1. created key {} (alias/demo-disks) in {east}", k1.key_id),
    );
    w(
        out,
        format!("   created key {} (alias/demo-dr) in {west}", k2.key_id),
    );

    let image = root.join("disk.img");
    make_image(&image, size)?;
    let mib = size as f64 / (1 << 20) as f64;
    w(out, format!("2. generated a {mib:.0} MiB disk image"));

    let t = Instant::now();
    std::fs::copy(&image, root.join("disk.copy")).map_err(|e| Error::io("copying", &image, e))?;
    let cp = t.elapsed().as_secs_f64();
    std::fs::remove_file(root.join("disk.copy")).map_err(|e| Error::io("removing", &image, e))?;

    let opts = Options::default();
    let mut ctx = EncryptionContext::new();
    ctx.insert("purpose", "demo")?;
    let sealed = root.join("disk.img.cofre");
    let t = Instant::now();
    files::encrypt(
        &kms,
        &["alias/demo-disks".parse()?],
        &ctx,
        DEFAULT_CHUNK_LOG2,
        &Input::Path(image.clone()),
        &Output::Path {
            path: sealed.clone(),
            force: false,
        },
        opts,
    )?;
    let enc = t.elapsed().as_secs_f64();
    w(out, format!(
        "3. encrypted it under alias/demo-disks: {:.2} GB/s ({:.2} x the time of a plain copy at {:.2} GB/s)",
        gbps(size, enc), enc / cp, gbps(size, cp)
    ));

    let plain = root.join("disk.out");
    let t = Instant::now();
    files::decrypt(
        &kms,
        &ctx,
        &Input::Path(sealed.clone()),
        &Output::Path {
            path: plain.clone(),
            force: false,
        },
        opts,
    )?;
    let dec = t.elapsed().as_secs_f64();
    let same = hash_file(&image)? == hash_file(&plain)?;
    w(
        out,
        format!(
            "4. decrypted it: {:.2} GB/s ({:.2} x copy); identical to the original: {}",
            gbps(size, dec),
            dec / cp,
            if same { "yes" } else { "NO" }
        ),
    );
    if !same {
        return Err(Error::Mismatch(
            "the demo's decrypted image differs from the original".into(),
        ));
    }

    let moved = root.join("disk.img.eu-west-1.cofre");
    let t = Instant::now();
    files::rewrap(
        &kms,
        &kms_west,
        &["alias/demo-dr".parse()?],
        &sealed,
        Some(&moved),
        false,
    )?;
    let rw = t.elapsed().as_secs_f64();
    w(out, format!(
        "5. re-wrapped its data key under alias/demo-dr in {west} in {:.0} ms; the payload was copied, not re-encrypted",
        rw * 1e3
    ));

    let refused = files::decrypt(
        &kms,
        &ctx,
        &Input::Path(moved.clone()),
        &Output::Path {
            path: root.join("nope"),
            force: false,
        },
        opts,
    );
    match refused {
        Err(e) => w(
            out,
            format!("6. decrypting the re-wrapped copy from {east} is refused: {e}"),
        ),
        Ok(_) => {
            return Err(Error::Mismatch(
                "the demo expected a regional refusal".into(),
            ))
        }
    }

    std::fs::remove_file(&plain).map_err(|e| Error::io("removing", &plain, e))?;
    files::decrypt(
        &kms_west,
        &ctx,
        &Input::Path(moved),
        &Output::Path {
            path: plain.clone(),
            force: false,
        },
        opts,
    )?;
    let same = hash_file(&image)? == hash_file(&plain)?;
    w(
        out,
        format!(
            "7. decrypted it in {west}; identical to the original: {}",
            if same { "yes" } else { "NO" }
        ),
    );
    if !same {
        return Err(Error::Mismatch(
            "the demo's re-wrapped image differs from the original".into(),
        ));
    }
    for f in [&plain, &sealed, &root.join("disk.img.eu-west-1.cofre")] {
        std::fs::remove_file(f).map_err(|e| Error::io("removing", f, e))?;
    }
    ebs_steps(&kms, &kms_west, &image, size, cp, root, out)?;
    public_key_steps(&kms, &image, root, out)?;
    server_step(home, out)?;
    w(out, "done; the throwaway home and files are removed".into());
    Ok(())
}

/// The EBS half: the image as an encrypted volume, a snapshot, its copy to the other region by
/// re-wrapping, and a restore there.
fn ebs_steps(
    kms: &Kms,
    kms_west: &Kms,
    image: &Path,
    size: u64,
    cp: f64,
    root: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    use crate::ebs::{CopySnapshotRequest, CreateVolumeRequest, Ebs, VolumeSource, VolumeType};
    let w = |out: &mut dyn Write, s: String| {
        let _ = writeln!(out, "{s}");
    };
    let (east, west) = (Ebs::new(kms)?, Ebs::new(kms_west)?);
    let t = Instant::now();
    let vol = east.create_volume(&CreateVolumeRequest {
        source: VolumeSource::Image(image.to_path_buf()),
        encrypted: true,
        kms_key: None,
        volume_type: VolumeType::Gp3,
        tags: Default::default(),
        quiet: true,
    })?;
    let imp = t.elapsed().as_secs_f64();
    w(out, format!(
        "8. imported the image as encrypted volume {} under alias/aws/ebs: {:.2} GB/s ({:.2} x copy); {} blocks of 512 KiB stored, zero blocks skipped",
        vol.volume_id, gbps(size, imp), imp / cp, vol.stored_blocks
    ));
    let t = Instant::now();
    let snap = east.create_snapshot(&vol.volume_id, "demo")?;
    w(
        out,
        format!(
            "9. snapshot {} in {:.1} ms (it names the volume's block map: no data copied)",
            snap.snapshot_id,
            t.elapsed().as_secs_f64() * 1e3
        ),
    );
    let t = Instant::now();
    let copy = west.copy_snapshot(&CopySnapshotRequest {
        source_region: kms.region().clone(),
        source_snapshot_id: snap.snapshot_id.clone(),
        encrypted: true,
        kms_key: Some("alias/demo-dr".parse()?),
        reencrypt: false,
        description: None,
        tags: Default::default(),
        quiet: true,
    })?;
    w(out, format!(
        "10. copied it to {} as {} under alias/demo-dr in {:.0} ms: data key re-wrapped, {} blocks hard-linked, {} copied, none re-encrypted",
        kms_west.region(), copy.snapshot.snapshot_id, t.elapsed().as_secs_f64() * 1e3, copy.linked, copy.written
    ));
    let restored = west.create_volume(&CreateVolumeRequest {
        source: VolumeSource::Snapshot {
            id: copy.snapshot.snapshot_id.clone(),
            size: None,
        },
        encrypted: false,
        kms_key: None,
        volume_type: VolumeType::Gp3,
        tags: Default::default(),
        quiet: true,
    })?;
    let exported = root.join("restored.img");
    west.export_volume(&restored.volume_id, &exported, true, false, true)?;
    let same = hash_file(image)? == hash_file(&exported)?;
    w(
        out,
        format!(
            "11. restored volume {} in {} and exported it; identical to the original: {}",
            restored.volume_id,
            kms_west.region(),
            if same { "yes" } else { "NO" }
        ),
    );
    if !same {
        return Err(Error::Mismatch(
            "the demo's restored volume differs from the original image".into(),
        ));
    }
    for (step, ebs, region) in [(12, &east, kms.region()), (13, &west, kms_west.region())] {
        let r = ebs.verify(true)?;
        if !r.problems.is_empty() {
            return Err(Error::StoreCorrupt(r.problems.join("; ")));
        }
        w(
            out,
            format!(
                "{step}. verified {region}: {} blocks checked, every one authentic",
                r.blocks_checked
            ),
        );
    }
    Ok(())
}

/// Asymmetric keys: a file encrypted offline to a public key and opened by the keyring, and the
/// image signed by the keyring and checked offline with the public key alone.
fn public_key_steps(kms: &Kms, image: &Path, root: &Path, out: &mut dyn Write) -> Result<()> {
    use crate::keyring::{KeySpec, KeyUsage};
    use crate::kms::MessageType;
    let w = |out: &mut dyn Write, s: String| {
        let _ = writeln!(out, "{s}");
    };
    let ec = kms.create_key(&CreateKeyRequest {
        description: "demo offline recipients".into(),
        key_spec: Some(KeySpec::EccNistP384),
        key_usage: Some(KeyUsage::KeyAgreement),
        ..Default::default()
    })?;
    let public = kms.get_public_key(&ec.key_id.parse()?)?.public_key;
    let sealed = root.join("disk.img.offline.cofre");
    // No keyring: only the public key.
    files::encrypt_to(
        None,
        &[],
        std::slice::from_ref(&public),
        &EncryptionContext::new(),
        DEFAULT_CHUNK_LOG2,
        &Input::Path(image.to_path_buf()),
        &Output::Path {
            path: sealed.clone(),
            force: false,
        },
        Options::default(),
    )?;
    let plain = root.join("disk.offline.out");
    files::decrypt(
        kms,
        &EncryptionContext::new(),
        &Input::Path(sealed.clone()),
        &Output::Path {
            path: plain.clone(),
            force: false,
        },
        Options::default(),
    )?;
    let same = hash_file(image)? == hash_file(&plain)?;
    w(out, format!(
        "14. encrypted the image with only the public key of ECC_NIST_P384 key {} (ECDH, no keyring), decrypted it with the keyring; identical: {}",
        ec.key_id,
        if same { "yes" } else { "NO" }
    ));
    if !same {
        return Err(Error::Mismatch(
            "the demo's offline-encrypted image differs from the original".into(),
        ));
    }
    let signer = kms.create_key(&CreateKeyRequest {
        description: "demo image signing".into(),
        key_spec: Some(KeySpec::EccNistP256),
        key_usage: Some(KeyUsage::SignVerify),
        ..Default::default()
    })?;
    let key = signer.key_id.parse()?;
    let input = Input::Path(image.to_path_buf());
    let signature = crate::sign::sign_file(kms, &key, None, &input)?.signature;
    let public = kms.get_public_key(&key)?.public_key;
    crate::sign::verify_file_offline(&public, None, &input, &signature)?;
    let mut forged = signature.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let refused = crate::sign::verify_file_offline(&public, None, &input, &forged).is_err()
        && kms
            .verify(
                &key,
                b"not the image",
                MessageType::Raw,
                crate::kms::SigningAlgorithm::EcdsaSha256,
                &signature,
            )
            .is_err();
    w(out, format!(
        "15. signed the image with ECC_NIST_P256 key {} (ECDSA over its SHA-256), verified offline with the public key; a forged signature is refused: {}",
        signer.key_id,
        if refused { "yes" } else { "NO" }
    ));
    if !refused {
        return Err(Error::Mismatch(
            "the demo accepted a forged signature".into(),
        ));
    }
    for f in [&sealed, &plain] {
        std::fs::remove_file(f).map_err(|e| Error::io("removing", f, e))?;
    }
    Ok(())
}

/// The KMS API over HTTP: `cofre serve` on a loopback port, and one SigV4-signed Encrypt and
/// Decrypt sent to it as an SDK sends them.
fn server_step(home: std::sync::Arc<Home>, out: &mut dyn Write) -> Result<()> {
    use crate::server::{client::Client, serve_until, ServeOptions, Shutdown};
    let access = home.create_access_key(&crate::audit::Principal::root(home.account_id()))?;
    let shutdown = Shutdown::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = {
        let (home, shutdown) = (home.clone(), shutdown.clone());
        std::thread::spawn(move || {
            let opts = ServeOptions {
                listen: "127.0.0.1:0".parse().expect("an address"),
                tls: None,
                allow_remote_http: false,
                threads: Some(1),
            };
            serve_until(home, opts, shutdown, |addr| {
                let _ = tx.send(addr);
            })
        })
    };
    let Ok(addr) = rx.recv() else {
        return match server.join() {
            Ok(Err(e)) => Err(e),
            _ => Err(Error::Mismatch("the demo's server did not start".into())),
        };
    };
    let client = Client {
        addr,
        access_key_id: &access.info.access_key_id,
        secret: access.secret_access_key.as_bytes(),
        region: "us-east-1",
        backend: home.backend(),
    };
    let message = b"hello from a SigV4-signed request";
    let asked = (|| -> Result<bool> {
        let body = serde_json::json!({
            "KeyId": "alias/demo-disks",
            "Plaintext": crate::kms::base64_encode(message),
            "EncryptionContext": {"demo": "serve"},
        });
        let (status, enc) = client.call("Encrypt", body.to_string().as_bytes(), home.now())?;
        let enc: serde_json::Value = serde_json::from_slice(&enc).unwrap_or_default();
        let body = serde_json::json!({
            "CiphertextBlob": enc["CiphertextBlob"],
            "EncryptionContext": {"demo": "serve"},
        });
        let (status2, dec) = client.call("Decrypt", body.to_string().as_bytes(), home.now())?;
        let dec: serde_json::Value = serde_json::from_slice(&dec).unwrap_or_default();
        Ok(status == 200
            && status2 == 200
            && dec["Plaintext"] == crate::kms::base64_encode(message).as_str())
    })();
    shutdown.trigger();
    let stopped = server.join();
    let same = asked?;
    if !matches!(stopped, Ok(Ok(()))) || !same {
        return Err(Error::Mismatch(
            "the demo's KMS server did not answer its Encrypt and Decrypt".into(),
        ));
    }
    let _ = writeln!(
        out,
        "16. served the KMS API on http://{addr} (`cofre serve`): a SigV4-signed Encrypt and Decrypt, \
         as boto3 and the AWS CLI send them, answered 200 with the same plaintext back"
    );
    Ok(())
}
