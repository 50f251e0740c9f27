//! `cofre kms …` (the KMS data operations for scripts) and signature checks of files.
//!
//! Binary results go to a file, or to stdout as raw bytes; with `--output json` they are
//! base64 in the JSON, as the AWS CLI prints them. Plaintext data keys and private keys are
//! never put in JSON or on stdout: they go only to the files named for them (mode 0600). What
//! `kms decrypt` recovers goes to -o FILE or to a redirected stdout, never to a terminal.

use super::args::{BinaryOut, KmsCommand};
use super::{key_ref, open_kms, print};
use crate::envelope::EncryptionContext;
use crate::error::{Error, Result};
use crate::files::Input;
use crate::kms::{base64_encode, specs::value_name, Kms};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to a new file (or replaces one with `force`), atomically, with `mode`. A
/// device or FIFO (`/dev/null`, `/dev/stdout`) is written in place, never replaced by a file; a
/// block device needs `force` like a file.
pub(super) fn write_new(path: &Path, bytes: &[u8], force: bool, mode: u32) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() && !m.is_dir() => {
            if m.file_type().is_block_device() && !force {
                return Err(Error::OutputExists(path.to_path_buf()));
            }
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|mut f| f.write_all(bytes))
                .map_err(|e| Error::io("writing", path, e))
        }
        Ok(_) if !force => Err(Error::OutputExists(path.to_path_buf())),
        // Without --force, never replace what appears meanwhile (or a dangling symlink).
        _ if force => crate::store::write_atomic(path, bytes, mode),
        _ => crate::store::create_atomic(path, bytes, mode),
    }
}

/// Refuses, before any request is made, outputs that exist and may not be replaced: so a
/// command never writes one result (a plaintext key, say) and then fails on another.
pub(super) fn check_outputs<'a>(
    paths: impl IntoIterator<Item = &'a Option<PathBuf>>,
    force: bool,
) -> Result<()> {
    let mut seen: Vec<(PathBuf, Option<(u64, u64)>)> = Vec::new();
    for p in paths.into_iter().flatten() {
        if p == Path::new("-") {
            continue;
        }
        // Two outputs at one path (by name, or one file by two names): one would overwrite
        // the other, a plaintext key over its ciphertext, say.
        use std::os::unix::fs::MetadataExt;
        let abs = std::path::absolute(p).map_err(|e| Error::io("resolving", p, e))?;
        let id = std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
        if seen
            .iter()
            .any(|(a, i)| *a == abs || (id.is_some() && *i == id))
        {
            return Err(Error::usage(format!(
                "{} is given for two outputs; give each output its own path",
                p.display()
            )));
        }
        seen.push((abs, id));
        if let Ok(m) = std::fs::symlink_metadata(p) {
            if !force && (m.is_file() || m.is_symlink()) {
                return Err(Error::OutputExists(p.clone()));
            }
            if m.is_dir() {
                return Err(Error::usage(format!(
                    "{} is a folder; give a file path",
                    p.display()
                )));
            }
        }
    }
    Ok(())
}

/// Writes raw bytes to stdout.
pub(super) fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("writing", Path::new("stdout"), e))
}

/// The most any KMS data operation takes in one input: a ciphertext blob (plaintexts and
/// messages are at most 4096 bytes). An input is read up to this and one byte more, so the
/// operation refuses one that is too long without cofre reading it whole.
const MAX_INPUT: usize = crate::kms::MAX_CIPHERTEXT;

/// Reads an input file (`-` for stdin), at most [`MAX_INPUT`] bytes and one more.
fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        return crate::store::read_at_most(std::io::stdin(), MAX_INPUT, Path::new("stdin"));
    }
    crate::store::read_file_at_most(path, MAX_INPUT)
}

/// Sends a binary result where the user asked, and returns what JSON should carry for it:
/// base64 when it went nowhere else.
fn emit(out: &BinaryOut, bytes: &[u8], json: bool, mode: u32) -> Result<Option<String>> {
    match &out.out {
        Some(p) if p != Path::new("-") => {
            write_new(p, bytes, out.force, mode)?;
            Ok(None)
        }
        _ if json => Ok(Some(base64_encode(bytes))),
        _ => write_stdout(bytes).map(|()| None),
    }
}

/// Prints a JSON result with the binary field `field` set if `value` is some.
fn print_with(mut v: Value, field: &str, value: Option<String>, json: bool) {
    if !json {
        return;
    }
    if let Some(b) = value {
        v[field] = Value::String(b);
    }
    print::print_json(&v);
}

/// A file for a secret (mode 0600), which must be named.
fn write_secret(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    write_new(path, bytes, force, 0o600)
}

pub(super) fn run(kms: &Kms, cmd: KmsCommand, json: bool) -> Result<()> {
    // Every command with -o: refuse an existing output before making the request.
    if let KmsCommand::Encrypt { out, .. }
    | KmsCommand::Decrypt { out, .. }
    | KmsCommand::ReEncrypt { out, .. }
    | KmsCommand::GenerateRandom { out, .. }
    | KmsCommand::Sign { out, .. }
    | KmsCommand::GenerateMac { out, .. } = &cmd
    {
        check_outputs([&out.out], out.force)?;
    }
    match cmd {
        KmsCommand::Encrypt {
            key,
            plaintext_file,
            context,
            algorithm,
            out,
            ..
        } => {
            let plaintext = zeroize::Zeroizing::new(read_input(&plaintext_file)?);
            let ctx = EncryptionContext::from_pairs(&context)?;
            let e = kms.encrypt(&key_ref(&key)?, &plaintext, &ctx, algorithm)?;
            let blob = emit(&out, &e.ciphertext_blob, json, 0o644)?;
            print_with(
                json!({"KeyId": e.key_id, "EncryptionAlgorithm": value_name(&e.encryption_algorithm)}),
                "CiphertextBlob",
                blob,
                json,
            );
        }
        KmsCommand::Decrypt {
            ciphertext_file,
            key,
            context,
            algorithm,
            out,
            ..
        } => {
            if json && out.out.as_deref().is_none_or(|p| p == Path::new("-")) {
                return Err(Error::usage(
                    "with --output json, give -o FILE for the plaintext: cofre does not print plaintext in JSON",
                ));
            }
            if out.out.as_deref().is_none_or(|p| p == Path::new("-"))
                && std::io::IsTerminal::is_terminal(&std::io::stdout())
            {
                return Err(Error::usage(
                    "refusing to print plaintext to a terminal; use -o FILE or redirect stdout",
                ));
            }
            let ctx = EncryptionContext::from_pairs(&context)?;
            let key = key.as_deref().map(key_ref).transpose()?;
            let d = kms.decrypt(
                &read_input(&ciphertext_file)?,
                &ctx,
                key.as_ref(),
                algorithm,
            )?;
            emit(&out, &d.plaintext, false, 0o600)?;
            if json {
                let mut v = json!({"KeyId": d.key_id, "EncryptionAlgorithm": value_name(&d.encryption_algorithm)});
                if let Some(m) = d.key_material_id {
                    v["KeyMaterialId"] = Value::String(m);
                }
                print::print_json(&v);
            }
        }
        KmsCommand::ReEncrypt {
            ciphertext_file,
            destination_key,
            source_key,
            source_context,
            destination_context,
            source_algorithm,
            destination_algorithm,
            out,
            ..
        } => {
            let source_key = source_key.as_deref().map(key_ref).transpose()?;
            let e = kms.re_encrypt(
                &read_input(&ciphertext_file)?,
                &EncryptionContext::from_pairs(&source_context)?,
                source_key.as_ref(),
                source_algorithm,
                &key_ref(&destination_key)?,
                &EncryptionContext::from_pairs(&destination_context)?,
                destination_algorithm,
            )?;
            let blob = emit(&out, &e.ciphertext_blob, json, 0o644)?;
            print_with(
                json!({
                    "KeyId": e.key_id,
                    "SourceKeyId": e.source_key_id,
                    "SourceEncryptionAlgorithm": value_name(&source_algorithm),
                    "DestinationEncryptionAlgorithm": value_name(&e.encryption_algorithm),
                }),
                "CiphertextBlob",
                blob,
                json,
            );
        }
        KmsCommand::GenerateDataKey {
            key,
            bytes,
            key_spec,
            context,
            without_plaintext,
            ciphertext_out,
            plaintext_out,
            force,
            ..
        } => {
            // KMS requires one of them; the CLI's default is AES_256 (said in --help).
            let key_spec = match (bytes, key_spec) {
                (None, None) => Some(crate::kms::DataKeySpec::Aes256),
                (_, spec) => spec,
            };
            let ctx = EncryptionContext::from_pairs(&context)?;
            check_outputs([&plaintext_out, &ciphertext_out], force)?;
            let dk = kms.generate_data_key_with(
                &key_ref(&key)?,
                key_spec,
                bytes,
                &ctx,
                !without_plaintext,
            )?;
            // The secret last: if anything before it fails, no lone plaintext key is left.
            let blob = emit(
                &BinaryOut {
                    out: ciphertext_out,
                    force,
                },
                &dk.ciphertext_blob,
                json,
                0o644,
            )?;
            if let (Some(p), Some(pt)) = (&plaintext_out, &dk.plaintext) {
                write_secret(p, pt, force)?;
            }
            print_with(
                json!({"KeyId": dk.key_id, "KeyMaterialId": dk.key_material_id}),
                "CiphertextBlob",
                blob,
                json,
            );
        }
        KmsCommand::GenerateDataKeyPair {
            key,
            pair_spec,
            context,
            without_plaintext,
            public_key_out,
            ciphertext_out,
            private_key_out,
            force,
            ..
        } => {
            let ctx = EncryptionContext::from_pairs(&context)?;
            check_outputs([&private_key_out, &public_key_out, &ciphertext_out], force)?;
            let pair =
                kms.generate_data_key_pair(&key_ref(&key)?, pair_spec, &ctx, !without_plaintext)?;
            let to_file_or_b64 = |path: Option<PathBuf>, bytes: &[u8]| -> Result<Option<String>> {
                match path {
                    Some(p) => write_new(&p, bytes, force, 0o644).map(|()| None),
                    None => Ok(Some(base64_encode(bytes))),
                }
            };
            let public = to_file_or_b64(public_key_out, &pair.public_key)?;
            let blob = to_file_or_b64(ciphertext_out, &pair.private_key_ciphertext_blob)?;
            // The secret last: if anything before it fails, no lone private key is left.
            if let (Some(p), Some(pk)) = (&private_key_out, &pair.private_key_plaintext) {
                write_secret(p, pk, force)?;
            }
            let mut v =
                json!({"KeyId": pair.key_id, "KeyPairSpec": value_name(&pair.key_pair_spec)});
            if let Some(p) = public {
                v["PublicKey"] = Value::String(p);
            }
            if let Some(b) = blob {
                v["PrivateKeyCiphertextBlob"] = Value::String(b);
            }
            print::print_json(&v);
        }
        KmsCommand::GenerateRandom { bytes, out } => {
            let r = kms.generate_random(bytes)?;
            let b = emit(&out, &r, json, 0o600)?;
            print_with(json!({}), "Plaintext", b, json);
        }
        KmsCommand::Sign {
            key,
            message_file,
            message_type,
            algorithm,
            out,
            ..
        } => {
            let s = kms.sign(
                &key_ref(&key)?,
                &read_input(&message_file)?,
                message_type,
                algorithm,
            )?;
            let b = emit(&out, &s.signature, json, 0o644)?;
            print_with(
                json!({"KeyId": s.key_id, "SigningAlgorithm": value_name(&algorithm)}),
                "Signature",
                b,
                json,
            );
        }
        KmsCommand::Verify {
            key,
            message_file,
            message_type,
            algorithm,
            signature_file,
            ..
        } => {
            let arn = kms.verify(
                &key_ref(&key)?,
                &read_input(&message_file)?,
                message_type,
                algorithm,
                &crate::store::read(&signature_file)?,
            )?;
            signature_valid(json, &arn.key_id, &value_name(&algorithm));
        }
        KmsCommand::GenerateMac {
            key,
            message_file,
            algorithm,
            out,
            ..
        } => {
            let m = kms.generate_mac(&key_ref(&key)?, &read_input(&message_file)?, algorithm)?;
            let b = emit(&out, &m.mac, json, 0o644)?;
            print_with(
                json!({"KeyId": m.key_id, "MacAlgorithm": value_name(&algorithm)}),
                "Mac",
                b,
                json,
            );
        }
        KmsCommand::VerifyMac {
            key,
            message_file,
            algorithm,
            mac_file,
            ..
        } => {
            let arn = kms.verify_mac(
                &key_ref(&key)?,
                &read_input(&message_file)?,
                algorithm,
                &crate::store::read(&mac_file)?,
            )?;
            if json {
                print::print_json(
                    &json!({"KeyId": arn.key_id, "MacValid": true, "MacAlgorithm": value_name(&algorithm)}),
                );
            } else {
                outln!("MAC valid");
            }
        }
    }
    Ok(())
}

fn signature_valid(json: bool, key: &str, algorithm: &str) {
    if json {
        print::print_json(
            &json!({"KeyId": key, "SignatureValid": true, "SigningAlgorithm": algorithm}),
        );
    } else {
        outln!("signature valid");
    }
}

/// `cofre verify KEY FILE SIG` or `cofre verify --pubkey PEM FILE SIG`.
pub(super) fn verify_signature(
    home: Option<PathBuf>,
    region: Option<String>,
    args: Vec<PathBuf>,
    pubkey: Option<PathBuf>,
    algorithm: Option<crate::kms::SigningAlgorithm>,
    json: bool,
) -> Result<()> {
    let input = |p: &PathBuf| {
        if p == Path::new("-") {
            Input::Stdin
        } else {
            Input::Path(p.clone())
        }
    };
    match (pubkey, args.as_slice()) {
        (Some(pk), [file, sig]) => {
            let spki = crate::sign::read_public_key(&pk)?;
            let alg = crate::sign::verify_file_offline(&spki, algorithm, &input(file), &crate::store::read(sig)?)?;
            if json {
                print::print_json(&json!({
                    "PublicKeySha256": hex::encode(crate::sign::fingerprint(&spki)),
                    "SignatureValid": true,
                    "SigningAlgorithm": value_name(&alg),
                }));
            } else {
                outln!("signature valid");
            }
        }
        (None, [key, file, sig]) => {
            let kms = open_kms(home, region)?;
            let key = key.to_str().ok_or_else(|| Error::usage("the key must be UTF-8"))?;
            let (arn, alg) = crate::sign::verify_file(&kms, &key_ref(key)?, algorithm, &input(file), &crate::store::read(sig)?)?;
            signature_valid(json, &arn, &value_name(&alg));
        }
        _ => {
            return Err(Error::usage(
                "cofre verify takes KEY FILE SIG, or --pubkey PEM FILE SIG (or nothing, to check the EBS store)",
            ))
        }
    }
    Ok(())
}
