//! Printing results: text for people, KMS-shaped JSON for scripts.

use crate::api::ec2::{Ec2Snapshot, Ec2Volume};
use crate::ebs::{ChangedBlocks, CopyReport, GcReport, Snapshot, VerifyReport, Volume};
use crate::files::Inspection;
use crate::keyring::{AliasEntry, Home, KeyMetadata};
use crate::kms::{KeyRotationStatus, KeyVersion};
use serde_json::json;

/// The first failed write to stdout, if one failed: later writes are skipped.
static STDOUT_FAILURE: std::sync::Mutex<Option<std::io::Error>> = std::sync::Mutex::new(None);

/// Writes to stdout without ever panicking (what [`outln!`] and [`out!`] expand to). The first
/// failure is kept for [`finish`]; nothing is written after it.
pub(super) fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut failed = STDOUT_FAILURE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if failed.is_none() {
        if let Err(e) = std::io::stdout().lock().write_fmt(args) {
            *failed = Some(e);
        }
    }
}

/// Flushes stdout and returns the first write to it that failed, as an error on `stdout`
/// (a broken pipe among them, which `main` treats as success).
pub(super) fn finish() -> crate::Result<()> {
    use std::io::Write;
    let mut failed = STDOUT_FAILURE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if failed.is_none() {
        if let Err(e) = std::io::stdout().lock().flush() {
            *failed = Some(e);
        }
    }
    match failed.take() {
        Some(e) => Err(crate::Error::io(
            "writing",
            std::path::Path::new("stdout"),
            e,
        )),
        None => Ok(()),
    }
}

pub(super) fn print_json(v: &serde_json::Value) {
    outln!("{}", serde_json::to_string_pretty(v).expect("serializable"));
}

/// `s` with its control characters escaped (`\u{1b}`…), so bytes from a file or a request
/// never drive the terminal (ESC sequences, BEL). JSON output escapes them already.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// An API response (`crate::api`) as JSON.
pub fn response(r: &impl serde::Serialize) {
    print_json(&serde_json::to_value(r).expect("serializable"));
}

pub fn init(home: &Home, existed: bool, json: bool) {
    if json {
        print_json(
            &json!({"AccountId": home.account_id(), "Home": home.root(), "Created": !existed}),
        );
    } else {
        let verb = if existed { "uses" } else { "created" };
        outln!(
            "{} {verb} account {}",
            home.root().display(),
            home.account_id()
        );
    }
}

pub fn key_created(m: &KeyMetadata, json: bool) {
    if json {
        print_json(&json!({ "KeyMetadata": m }));
    } else {
        outln!("{}", m.key_id);
    }
}

pub fn import_parameters(
    p: &crate::kms::ImportParameters,
    public: &std::path::Path,
    token: &std::path::Path,
    json: bool,
) {
    if json {
        print_json(&json!({
            "KeyId": p.key_id,
            "ParametersValidTo": p.parameters_valid_to,
            "PublicKeyFile": public,
            "ImportTokenFile": token,
        }));
    } else {
        outln!("{}", public.display());
        outln!("{}", token.display());
        outln!("valid to {}", p.parameters_valid_to);
    }
}

pub fn key_metadata(m: &KeyMetadata, json: bool) {
    if json {
        print_json(&json!({ "KeyMetadata": m }));
        return;
    }
    let v = serde_json::to_value(m).expect("serializable");
    for (k, v) in v.as_object().expect("an object") {
        let v = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        outln!("{k:<24} {v}");
    }
}

/// The key's new state, for an operation that answers nothing (printed as text only).
pub fn key_state(m: &KeyMetadata, json: bool) {
    if !json {
        outln!("{} {:?}", m.key_id, m.key_state);
    }
}

/// ImportKeyMaterial and DeleteImportedKeyMaterial: the key and the material imported or
/// deleted.
pub fn key_material(r: &crate::kms::KeyMaterialResult, json: bool) {
    let m = &r.key_metadata;
    if json {
        response(&crate::api::kms::KeyMaterialResponse {
            key_id: m.arn.clone(),
            key_material_id: r.key_material_id.clone(),
        });
    } else {
        outln!("{} {:?} {}", m.key_id, m.key_state, r.key_material_id);
    }
}

/// For people reading a key policy at a terminal (on stderr, so the policy on stdout stays
/// JSON): what a statement naming the account root means in cofre.
pub fn account_root_note(policy: &str, account: &str) {
    let root = format!("arn:aws:iam::{account}:root");
    if policy.contains(&root) || policy.contains(&format!("\"{account}\"")) {
        eprintln!(
            "note: a statement naming {root} (or the account id) lets the account's IAM policies decide in AWS; cofre has no IAM, so it lets in every principal of the account that has no identity policy, and one that has (`cofre principal policy put`) only if that policy allows the request"
        );
    }
}

/// A list in JSON, as the AWS CLI prints a paginated one: the items under `name`, and a
/// `NextToken` when `--max-items` stopped before the end.
pub fn listing(name: &str, items: &impl serde::Serialize, next: Option<&str>) {
    let mut v = json!({ name: items });
    if let Some(t) = next {
        v["NextToken"] = json!(t);
    }
    print_json(&v);
}

/// The key table: id, state, spec, usage, aliases, description.
pub fn key_table(keys: &[KeyMetadata], aliases: &[AliasEntry], next: Option<&str>) {
    for m in keys {
        let names: Vec<&str> = aliases
            .iter()
            .filter(|a| a.target_key_id == m.key_id)
            .map(|a| a.alias_name.as_str())
            .collect();
        outln!(
            "{}  {:<9} {:<17} {:<19} {:<24} {}",
            m.key_id,
            format!("{:?}", m.key_state),
            m.key_spec,
            m.key_usage,
            names.join(","),
            m.description
        );
    }
    more(next);
}

/// Where a `--max-items` listing stopped.
fn more(next: Option<&str>) {
    if let Some(t) = next {
        outln!("(more: --starting-token {t})");
    }
}

/// GetKeyRotationStatus (`answers`), or what Enable/DisableKeyRotation did (text only).
pub fn rotation_status(s: &KeyRotationStatus, answers: bool, json: bool) {
    if json {
        if answers {
            response(&crate::api::kms::GetKeyRotationStatusResponse::from(s));
        }
        return;
    }
    match (&s.rotation_period_in_days, &s.next_rotation_date) {
        (Some(p), Some(next)) if s.key_rotation_enabled => outln!(
            "{} rotation enabled, every {p} days, next {next}; {} on-demand rotation(s)",
            s.key_id,
            s.on_demand_rotations
        ),
        _ => outln!(
            "{} rotation disabled; {} on-demand rotation(s)",
            s.key_id,
            s.on_demand_rotations
        ),
    }
}

pub fn key_versions(versions: &[KeyVersion], json: bool) {
    if json {
        print_json(&json!({ "Rotations": versions }));
        return;
    }
    for v in versions {
        let how = match v.rotation_type {
            Some(t) => serde_json::to_value(t)
                .expect("serializable")
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            None if v.key_material_state == "PENDING_ROTATION" => "-".to_owned(),
            None => "ORIGINAL".to_owned(),
        };
        // Imported material: whether it is held, and until when.
        let imported = match (v.import_state, &v.valid_to) {
            (Some(s), Some(t)) => format!("  {s} until {t}"),
            (Some(s), None) => format!("  {s}"),
            _ => String::new(),
        };
        outln!(
            "{}  {:<20}  {how:<9}  {}{imported}",
            v.key_material_id,
            v.rotation_date.as_deref().unwrap_or("-"),
            v.key_material_state
        );
    }
}

/// Per material version of the key `arn`, the volumes, snapshots and files it protects.
pub fn usage_report(
    arn: &str,
    versions: &[KeyVersion],
    resources: &[(String, String)],
    files: &[(std::path::PathBuf, crate::envelope::Header)],
    json: bool,
) {
    struct Uses<'a> {
        version: &'a KeyVersion,
        volumes: Vec<&'a str>,
        snapshots: Vec<&'a str>,
        files: Vec<&'a std::path::Path>,
    }
    let per_version: Vec<Uses> = versions
        .iter()
        .map(|v| {
            let of = |prefix: &str| {
                resources
                    .iter()
                    .filter(|(m, id)| *m == v.key_material_id && id.starts_with(prefix))
                    .map(|(_, id)| id.as_str())
                    .collect()
            };
            Uses {
                version: v,
                volumes: of("vol-"),
                snapshots: of("snap-"),
                files: files
                    .iter()
                    .filter(|(_, h)| {
                        h.wrapped_keys().any(|w| {
                            w.key_arn == arn && hex::encode(w.material_id) == v.key_material_id
                        })
                    })
                    .map(|(p, _)| p.as_path())
                    .collect(),
            }
        })
        .collect();
    if json {
        let vs: Vec<_> = per_version
            .iter()
            .map(|u| {
                json!({
                    "KeyMaterialId": u.version.key_material_id,
                    "KeyMaterialState": u.version.key_material_state,
                    "Volumes": u.volumes,
                    "Snapshots": u.snapshots,
                    "Files": u.files,
                })
            })
            .collect();
        print_json(&json!({"KeyArn": arn, "Versions": vs}));
        return;
    }
    for u in per_version {
        outln!(
            "{}  {:<11}  {} volume(s)  {} snapshot(s)  {} file(s)",
            u.version.key_material_id,
            u.version.key_material_state,
            u.volumes.len(),
            u.snapshots.len(),
            u.files.len()
        );
        for id in u.volumes.iter().chain(&u.snapshots) {
            outln!("    {id}");
        }
        for p in u.files {
            outln!("    {}", p.display());
        }
    }
}

pub fn deletion(m: &KeyMetadata, json: bool) {
    if json {
        response(&crate::api::kms::ScheduleKeyDeletionResponse::from(m));
    } else {
        outln!(
            "{} PendingDeletion; destroyed on {}",
            m.key_id,
            m.deletion_date.as_deref().unwrap_or("?")
        );
    }
}

/// CreateAlias and UpdateAlias answer nothing; the text says where the alias points.
pub fn alias(a: &AliasEntry, json: bool) {
    if !json {
        outln!("{} -> {}", a.alias_name, a.target_key_id);
    }
}

pub fn alias_list(aliases: &[AliasEntry], next: Option<&str>, json: bool) {
    if json {
        listing("Aliases", &aliases, next);
        return;
    }
    for a in aliases {
        outln!("{:<32} {}", a.alias_name, a.target_key_id);
    }
    more(next);
}

/// GetPublicKey's result: the public key (base64 DER) and what the key is for.
pub fn public_key(info: &crate::kms::PublicKeyInfo, json: bool) {
    if json {
        let mut v = json!({
            "KeyId": info.key_id,
            "PublicKey": crate::kms::base64_encode(&info.public_key),
            "KeySpec": info.key_spec,
            "CustomerMasterKeySpec": info.key_spec,
            "KeyUsage": info.key_usage,
        });
        for (name, list) in [
            ("EncryptionAlgorithms", &info.encryption_algorithms),
            ("SigningAlgorithms", &info.signing_algorithms),
            ("KeyAgreementAlgorithms", &info.key_agreement_algorithms),
        ] {
            if !list.is_empty() {
                v[name] = json!(list);
            }
        }
        print_json(&v);
    } else {
        outln!(
            "public key of {} ({} {}), sha256:{}",
            info.key_id,
            info.key_spec,
            info.key_usage,
            hex::encode(crate::sign::fingerprint(&info.public_key))
        );
    }
}

fn public_scheme(s: crate::envelope::PublicKeyScheme) -> &'static str {
    match s {
        crate::envelope::PublicKeyScheme::RsaOaepSha256 => "RSAES_OAEP_SHA_256",
        crate::envelope::PublicKeyScheme::Ecdh => "ECDH/HKDF-SHA256/AES-256-GCM",
    }
}

pub fn inspection(i: &Inspection, json: bool) {
    let h = &i.header;
    let wrapped: Vec<_> = h
        .wrapped_keys()
        .map(|w| json!({"KeyArn": w.key_arn, "KeyMaterialId": hex::encode(w.material_id)}))
        .collect();
    let public: Vec<_> = h
        .public_key_recipients()
        .map(|p| {
            json!({
                "Scheme": public_scheme(p.scheme),
                "PublicKeySha256": hex::encode(p.fingerprint),
            })
        })
        .collect();
    let unknown = h.recipients.len() - wrapped.len() - public.len();
    if json {
        print_json(&json!({
            "FormatVersion": crate::envelope::VERSION,
            "Suite": "AES-256-GCM/HKDF-SHA256/committed",
            "ChunkSize": h.chunk_size(),
            "MessageId": hex::encode(h.message_id),
            "EncryptionContext": h.context,
            "WrappedKeys": wrapped,
            "PublicKeyRecipients": public,
            "UnknownRecipients": unknown,
            "HeaderLength": i.header_len,
            "FileLength": i.file_len,
            "PayloadLength": i.payload_len,
            "ChunkCount": i.chunk_count,
        }));
        return;
    }
    outln!(
        "format        cofre v{} (AES-256-GCM chunks, HKDF-SHA256, committed key)",
        crate::envelope::VERSION
    );
    outln!("chunk size    {} bytes", h.chunk_size());
    outln!("message id    {}", hex::encode(h.message_id));
    let ctx: Vec<String> = h
        .context
        .iter()
        .map(|(k, v)| format!("{}={}", printable(k), printable(v)))
        .collect();
    outln!(
        "context       {}",
        if ctx.is_empty() {
            "(none)".into()
        } else {
            ctx.join(", ")
        }
    );
    for w in h.wrapped_keys() {
        outln!(
            "wrapped key   {} (material {})",
            printable(&w.key_arn),
            hex::encode(w.material_id)
        );
    }
    for p in h.public_key_recipients() {
        outln!(
            "public key    sha256:{} ({})",
            hex::encode(p.fingerprint),
            public_scheme(p.scheme)
        );
    }
    if unknown > 0 {
        outln!("other         {unknown} recipient(s) of types this build does not know");
    }
    outln!("header        {} bytes", i.header_len);
    match (i.payload_len, i.chunk_count) {
        (Some(p), Some(c)) => outln!("payload       {p} bytes in {c} chunk(s)"),
        _ => outln!("payload       unknown (input is a stream)"),
    }
}

/// A record as `Key: value` lines (text) or as JSON under `wrapper` (EC2 shapes it so).
fn fields(v: &impl serde::Serialize, wrapper: Option<&str>, json: bool) {
    let value = serde_json::to_value(v).expect("serializable");
    if json {
        match wrapper {
            Some(w) => print_json(&json!({ w: value })),
            None => print_json(&value),
        }
        return;
    }
    if let serde_json::Value::Object(map) = value {
        let width = map.keys().map(String::len).max().unwrap_or(0);
        for (k, v) in map {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            outln!("{k:width$}  {v}");
        }
    }
}

pub fn volume_created(v: &Volume, json: bool) {
    if json {
        response(&Ec2Volume::from(v));
    } else {
        outln!("{}", v.volume_id);
    }
}

/// DescribeVolumes of one volume: `{"Volumes": [...]}` as EC2 answers; as text, every field
/// (cofre's exact size and stored blocks too).
pub fn volume(v: &Volume, json: bool) {
    if json {
        volume_list(std::slice::from_ref(v), true);
    } else {
        fields(v, None, false);
    }
}

pub fn volume_list(vs: &[Volume], json: bool) {
    if json {
        let vs: Vec<Ec2Volume> = vs.iter().map(Ec2Volume::from).collect();
        print_json(&json!({ "Volumes": vs }));
        return;
    }
    for v in vs {
        outln!(
            "{}  {:>6} GiB  {:<9}  {}  {}",
            v.volume_id,
            v.size,
            v.state,
            if v.encrypted {
                "encrypted  "
            } else {
                "unencrypted"
            },
            v.kms_key_id.as_deref().unwrap_or("-")
        );
    }
}

pub fn snapshot_created(s: &Snapshot, json: bool) {
    if json {
        response(&Ec2Snapshot::from(s));
    } else {
        outln!("{}", s.snapshot_id);
    }
}

/// DescribeSnapshots of one snapshot: `{"Snapshots": [...]}`; as text, every field.
pub fn snapshot(s: &Snapshot, json: bool) {
    if json {
        snapshot_list(std::slice::from_ref(s), true);
    } else {
        fields(s, None, false);
    }
}

pub fn snapshot_list(ss: &[Snapshot], json: bool) {
    if json {
        let ss: Vec<Ec2Snapshot> = ss.iter().map(Ec2Snapshot::from).collect();
        print_json(&json!({ "Snapshots": ss }));
        return;
    }
    for s in ss {
        outln!(
            "{}  {}  {:>6} GiB  {}  {}  {}",
            s.snapshot_id,
            s.volume_id,
            s.volume_size,
            s.start_time,
            if s.encrypted {
                "encrypted  "
            } else {
                "unencrypted"
            },
            s.description
        );
    }
}

pub fn changed_blocks(c: &ChangedBlocks, json: bool) {
    if json {
        let blocks: Vec<_> = c
            .changed_blocks
            .iter()
            .map(|i| json!({ "BlockIndex": i }))
            .collect();
        print_json(&json!({
            "ChangedBlocks": blocks,
            "BlockSize": c.block_size,
            "VolumeSize": c.volume_size,
        }));
    } else {
        for i in &c.changed_blocks {
            outln!("{i}");
        }
    }
}

pub fn copy(r: &CopyReport, json: bool, quiet: bool) {
    if json {
        response(&crate::api::ec2::CopySnapshotResult {
            snapshot_id: r.snapshot.snapshot_id.clone(),
        });
    } else {
        outln!("{}", r.snapshot.snapshot_id);
    }
    // How the blocks arrived: what EC2 does not say, on stderr.
    if !quiet {
        eprintln!(
            "cofre: {} blocks: {} already present, {} hard-linked, {} written{}",
            r.blocks,
            r.present,
            r.linked,
            r.written,
            if r.resealed {
                " (sealed again under a new data key)"
            } else {
                ""
            }
        );
    }
}

pub fn setting(name: &str, value: serde_json::Value, json: bool) {
    if json {
        print_json(&json!({ name: value }));
    } else {
        match value {
            serde_json::Value::String(s) => outln!("{s}"),
            other => outln!("{other}"),
        }
    }
}

pub fn regions(rows: &[(String, std::path::PathBuf)], json: bool) {
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(r, p)| json!({ "RegionName": r, "Path": p }))
            .collect();
        print_json(&json!({ "Regions": v }));
    } else {
        for (r, p) in rows {
            outln!("{r}  {}", p.display());
        }
    }
}

pub fn verify(r: &VerifyReport, json: bool) {
    if json {
        fields(r, None, true);
        return;
    }
    for p in &r.problems {
        outln!("PROBLEM  {p}");
    }
    for u in &r.unauthenticated {
        outln!("HASH ONLY  {u}");
    }
    outln!(
        "{}: {} volumes, {} snapshots, {} blocks checked, {} problems, {} orphans, {} temporary files{}",
        r.region,
        r.volumes,
        r.snapshots,
        r.blocks_checked,
        r.problems.len(),
        r.orphans,
        r.temporary_files,
        if r.orphans + r.temporary_files > 0 {
            " (`cofre gc` removes orphans and temporary files)"
        } else {
            ""
        }
    );
}

pub fn gc(r: &GcReport, json: bool) {
    if json {
        fields(r, None, true);
    } else {
        outln!(
            "{}: removed {} blocks, {} maps, {} temporary files",
            r.region,
            r.blocks_removed,
            r.maps_removed,
            r.temporary_files_removed
        );
    }
}

pub fn audit_log(events: &[crate::audit::Event], json: bool) {
    if json {
        for e in events {
            outln!("{}", serde_json::to_string(e).expect("serializable"));
        }
        return;
    }
    for e in events {
        let who = e
            .user_identity
            .arn
            .as_deref()
            .or(e.user_identity.invoked_by.as_deref())
            .unwrap_or("-");
        let key = e
            .resources
            .first()
            .map(|r| r.arn.as_str())
            .or(e.request_parameters["keyId"].as_str())
            .unwrap_or("-");
        outln!(
            "{:>6}  {}  {:<32}  {:<40}  {}  {}",
            e.cofre_sequence,
            e.event_time,
            e.event_name,
            who,
            key,
            e.error_code.as_deref().unwrap_or("")
        );
    }
}

pub fn audit_verify(problems: &[crate::audit::TrailProblem], region: &crate::Region, json: bool) {
    if json {
        print_json(&json!({ "Region": region.as_str(), "Problems": problems }));
        return;
    }
    for p in problems {
        outln!("PROBLEM  {}", p.message);
    }
    if problems.is_empty() {
        outln!("{region}: the audit trail is intact");
    }
}

pub fn usage(r: &crate::audit::usage::UsageReport, all_regions: bool, json: bool) {
    if json {
        print_json(&serde_json::to_value(r).expect("serializable"));
        return;
    }
    outln!("{}: {} hours", r.month, r.hours_in_month);
    for k in &r.keys {
        let reqs: u64 = k.requests.values().sum();
        outln!(
            "{:<14} {:<38} {:<8} {:>4} h  ${:>9.6}  rotations {:>4} h  ${:>9.6}  {reqs} requests",
            k.region,
            k.key_id,
            format!("{:?}", k.key_manager).to_uppercase(),
            k.hours,
            k.key_cost,
            k.rotation_hours,
            k.rotation_cost
        );
    }
    for (region, apis) in &r.requests {
        let list: Vec<String> = apis.iter().map(|(a, n)| format!("{a} {n}")).collect();
        outln!("{region} requests: {}", list.join(", "));
    }
    for l in &r.request_lines {
        let kind = serde_json::to_value(l.kind).expect("serializable");
        outln!(
            "{:<17} requests {:>8} ({} free, {} billable at ${:.2} per 10,000): ${:.6}",
            kind.as_str().unwrap_or_default(),
            l.requests,
            l.free,
            l.billable,
            l.price_per_10k,
            l.cost
        );
    }
    outln!(
        "requests {} ({} free, {} billable): ${:.6}",
        r.total_requests,
        r.free_requests,
        r.billable_requests,
        r.request_cost
    );
    outln!(
        "keys ${:.6} + rotations ${:.6} + requests ${:.6} = ${:.2}",
        r.key_cost,
        r.rotation_cost,
        r.request_cost,
        r.total
    );
    if !all_regions {
        outln!("(this region only, its requests against the free 20,000; --all-regions gives the account's bill)");
    }
}
