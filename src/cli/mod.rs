//! The command-line front end: parses arguments, turns them into validated library calls, and
//! prints results as text or KMS-shaped JSON. Printing lives here only.
//!
//! Results reach stdout through [`outln!`] and [`out!`] (never `println!`, which panics when the
//! reader has gone): a write that fails is kept, later writes are skipped, and [`run`] reports
//! it once the command is done. A closed pipe (`cofre … | head`) is then no failure: `main`
//! exits 0, quietly, as ripgrep does.

/// `println!` to stdout that never panics; see the module docs.
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::cli::print::write_out(format_args!("{}\n", format_args!($($t)*)))
    };
}

/// `print!` to stdout that never panics; see the module docs.
macro_rules! out {
    ($($t:tt)*) => {
        $crate::cli::print::write_out(format_args!($($t)*))
    };
}

mod args;
mod attach;
mod audit_report;
mod kms_cmd;
mod paging;
mod print;
mod serve_cmd;

pub use args::{parse_size, Cli};
pub use print::printable;

use crate::ebs::{CopySnapshotRequest, CreateVolumeRequest, Ebs, VolumeSource};
use crate::envelope::{chunk_log2, EncryptionContext};
use crate::error::{Error, Result};
use crate::files::{self, Input, Output};
use crate::keyring::{Home, Region, Tag, DEFAULT_REGION};
use crate::kms::{CreateKeyRequest, KeyRef, Kms};
use args::{
    AliasCommand, AuditCommand, Command, DefaultKeyCommand, EbsCommand, Format, GrantCommand,
    KeyCommand, PolicyCommand, PrincipalCommand, PrincipalPolicyCommand, RegionCommand,
    RotationCommand, SnapshotCommand, Toggle, VolumeCommand,
};
use clap::{CommandFactory, Parser};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Parses the process arguments and runs the command.
pub fn run() -> Result<()> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to stdout with success; usage errors exit 2, as one
            // `cofre:` line and the usage hint.
            let code = e.exit_code();
            let help = clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
            if e.use_stderr() && e.kind() != help {
                eprint!("{}", usage_error(&e.render().to_string()));
            } else {
                let _ = e.print();
            }
            std::process::exit(code);
        }
    };
    // The server stops on SIGINT/SIGTERM by itself, finishing the requests in flight.
    if !matches!(cli.command, Command::Serve { .. }) {
        crate::store::install_interrupt_handler();
    }
    let done = dispatch(cli);
    // A failed write of the results (the reader went away) is reported after the command,
    // unless the command failed on its own.
    let printed = print::finish();
    done.and(printed)
}

/// A usage error as clap renders it (`error: …`, indented details, a tip, `Usage: …`, a pointer
/// to `--help`), as cofre reports errors: one `cofre:` line holding the error, its possible
/// values and tip, then the usage line (or the pointer to `--help`).
fn usage_error(rendered: &str) -> String {
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut message = lines
        .next()
        .unwrap_or("bad arguments")
        .trim_start_matches("error: ")
        .to_owned();
    let mut hint = String::new();
    for l in lines {
        if let Some(values) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            message = format!("{message} ({values})");
        } else if let Some(tip) = l.strip_prefix("tip: ") {
            message = format!("{message}; {tip}");
        } else if l.starts_with("Usage: ") || (hint.is_empty() && l.starts_with("For more")) {
            hint = l.to_owned();
        }
    }
    // `--output` is the format; a file name there was meant for `-o`.
    if message.contains("for '--output <OUTPUT>'") {
        message.push_str("; --output chooses text or json: to write to a file, use -o FILE");
    }
    format!("cofre: {message}\n{hint}\n")
}

/// A `--since` / `--until` bound: an RFC 3339 time, or a date (`2026-12-01`, UTC) meaning the
/// start of that day, or for `until` its last second.
fn time_bound(s: &str, until: bool) -> Result<std::time::SystemTime> {
    let is_date = s.len() == 10
        && s.bytes()
            .enumerate()
            .all(|(i, b)| matches!(i, 4 | 7) == (b == b'-') && (b == b'-' || b.is_ascii_digit()));
    if is_date {
        let time = if until { "23:59:59" } else { "00:00:00" };
        return crate::store::parse_time(&format!("{s}T{time}Z"));
    }
    crate::store::parse_time(s).map_err(|_| {
        Error::usage(format!(
            "bad time {s:?}: use a date (2028-01-01, UTC) or an RFC 3339 time \
             (2028-01-01T00:00:00Z)"
        ))
    })
}

/// The home folder: `--home`, else `COFRE_HOME`, else `$XDG_DATA_HOME/cofre`, else
/// `~/.local/share/cofre`.
fn home_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(h) = flag {
        return Ok(h);
    }
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(h) = env("COFRE_HOME") {
        return Ok(h.into());
    }
    if let Some(x) = env("XDG_DATA_HOME") {
        return Ok(PathBuf::from(x).join("cofre"));
    }
    if let Some(h) = env("HOME") {
        return Ok(PathBuf::from(h).join(".local/share/cofre"));
    }
    Err(Error::usage(
        "no home folder: pass --home DIR or set COFRE_HOME",
    ))
}

/// The region: `--region`, else `COFRE_REGION`, `AWS_REGION`, `AWS_DEFAULT_REGION`, else
/// us-east-1.
fn region_name(flag: Option<String>) -> Result<Region> {
    let name = flag
        .or_else(|| {
            ["COFRE_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        })
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    Region::new(&name)
}

fn open_kms(cli_home: Option<PathBuf>, region: Option<String>) -> Result<Kms> {
    let region = region_name(region)?;
    // The clock is read once, here: the service asks the home's clock from then on.
    let home = Home::open(&home_dir(cli_home)?, None)?.with_clock(crate::store::Clock::from_env()?);
    let principal = match principal_arn(None) {
        Some(arn) => crate::audit::Principal::parse(&arn)?,
        None => crate::audit::Principal::root(home.account_id()),
    };
    Ok(Kms::new(
        home,
        region,
        crate::RequestContext::new(principal),
    ))
}

/// The caller: `--principal` (passed through `COFRE_PRINCIPAL_FLAG` by [`dispatch`]), else
/// `COFRE_PRINCIPAL`.
fn principal_arn(flag: Option<String>) -> Option<String> {
    flag.or_else(|| PRINCIPAL.get().cloned().flatten())
        .or_else(|| {
            std::env::var("COFRE_PRINCIPAL")
                .ok()
                .filter(|v| !v.is_empty())
        })
}

/// `--principal`, set once per process by [`dispatch`].
static PRINCIPAL: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// The CLI's word on a key the service would not disable or delete without `force`.
fn in_use_hint(key: &str) -> impl FnOnce(Error) -> Error + '_ {
    move |e| match e {
        Error::KeyInUse(m) => Error::KeyInUse(format!(
            "{m}. `cofre key usage-report {key}` lists them; pass --force to go ahead"
        )),
        e => e,
    }
}

/// A key policy file, read up to the KMS limit and one byte more (the service refuses what is
/// over it; nothing reads `/dev/zero` whole).
fn policy_text(path: &Path) -> Result<String> {
    read_policy(path, crate::kms::policy::MAX_POLICY_BYTES)
}

/// A policy file, read up to `limit` and one byte more.
fn read_policy(path: &Path, limit: usize) -> Result<String> {
    let bytes = crate::store::read_file_at_most(path, limit)?;
    String::from_utf8(bytes)
        .map_err(|_| Error::usage(format!("{} is not UTF-8 JSON", path.display())))
}

fn key_ref(s: &str) -> Result<KeyRef> {
    s.parse()
}

/// `s` as a key id or ARN, for the operations KMS takes only those for: an alias (or alias ARN)
/// is looked up first with DescribeKey, as a user of KMS would.
fn key_id_ref(kms: &Kms, s: &str) -> Result<KeyRef> {
    match key_ref(s)? {
        r @ (KeyRef::Alias(_) | KeyRef::AliasArn { .. }) => kms.describe_key(&r)?.arn.parse(),
        r => Ok(r),
    }
}

fn input_of(p: Option<PathBuf>) -> Input {
    match p {
        Some(p) if p != Path::new("-") => Input::Path(p),
        _ => Input::Stdin,
    }
}

fn output_of(p: Option<PathBuf>, force: bool) -> Output {
    match p {
        Some(p) if p != Path::new("-") => Output::Path { path: p, force },
        _ => Output::Stdout,
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    let json = cli.output == Format::Json;
    let _ = PRINCIPAL.set(cli.principal.clone());
    let opts = files::Options {
        quiet: cli.quiet,
        ..Default::default()
    };
    match cli.command {
        Command::Serve {
            listen,
            tls_cert,
            tls_key,
            allow_remote_http,
            threads,
        } => serve_cmd::serve(
            cli.home,
            crate::server::ServeOptions {
                listen,
                tls: tls_cert.zip(tls_key),
                allow_remote_http,
                threads,
            },
        )?,
        Command::AccessKey(cmd) => serve_cmd::access_key(cli.home, cmd, json)?,
        Command::Init { account } => {
            let root = home_dir(cli.home)?;
            let existed = root.join("cofre.json").exists();
            let home = Home::open(&root, account.as_deref())?;
            print::init(&home, existed, json);
        }
        Command::Key(cmd) => {
            let kms = open_kms(cli.home, cli.region)?;
            match cmd {
                KeyCommand::Create {
                    alias,
                    description,
                    tags,
                    multi_region,
                    origin,
                    policy,
                    bypass_lockout_check,
                    spec,
                    usage,
                } => {
                    let policy = match policy {
                        Some(p) => Some(policy_text(&p)?),
                        None => None,
                    };
                    let tags = tags
                        .iter()
                        .map(|t| {
                            t.split_once('=')
                                .map(|(k, v)| Tag {
                                    tag_key: k.to_owned(),
                                    tag_value: v.to_owned(),
                                })
                                .ok_or_else(|| {
                                    Error::usage(format!("bad tag {t:?}: write it as KEY=VALUE"))
                                })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let m = kms.create_key(&CreateKeyRequest {
                        description,
                        tags,
                        alias,
                        multi_region,
                        origin,
                        policy,
                        bypass_policy_lockout_safety_check: bypass_lockout_check,
                        key_spec: spec,
                        key_usage: usage,
                    })?;
                    print::key_created(&m, json);
                }
                KeyCommand::ImportParams {
                    key,
                    wrapping_spec,
                    wrapping_algorithm,
                    out_dir,
                    force,
                } => {
                    let p = kms.get_parameters_for_import(
                        &key_id_ref(&kms, &key)?,
                        wrapping_algorithm,
                        wrapping_spec,
                    )?;
                    crate::store::create_dir(&out_dir)?;
                    let public = out_dir.join("WrappingPublicKey.bin");
                    let token = out_dir.join("ImportToken.bin");
                    for path in [&public, &token] {
                        if !force && path.exists() {
                            return Err(Error::OutputExists(path.clone()));
                        }
                    }
                    crate::store::write_atomic(&public, &p.public_key, 0o644)?;
                    crate::store::write_atomic(&token, &p.import_token, 0o600)?;
                    print::import_parameters(&p, &public, &token, json);
                }
                KeyCommand::Import {
                    key,
                    material,
                    token,
                    valid_to,
                    no_expiry: _,
                    import_type,
                    key_material_id,
                    description,
                } => {
                    let valid_to = valid_to
                        .as_deref()
                        .map(crate::store::parse_time)
                        .transpose()?;
                    let r = kms.import_key_material_with(
                        &key_id_ref(&kms, &key)?,
                        &crate::store::read(&token)?,
                        &crate::store::read(&material)?,
                        &crate::kms::ImportOptions {
                            valid_to,
                            import_type,
                            key_material_id,
                            description,
                        },
                    )?;
                    print::key_material(&r, json);
                }
                KeyCommand::DeleteMaterial {
                    key,
                    key_material_id,
                } => {
                    let r = kms.delete_imported_key_material_version(
                        &key_id_ref(&kms, &key)?,
                        key_material_id.as_deref(),
                    )?;
                    print::key_material(&r, json);
                }
                KeyCommand::Policy(PolicyCommand::Get { key }) => {
                    let r = kms.get_key_policy(&key_id_ref(&kms, &key)?)?;
                    if json {
                        print::response(&r);
                    } else {
                        outln!("{}", r.policy);
                        if !cli.quiet && std::io::stderr().is_terminal() {
                            print::account_root_note(&r.policy, kms.home().account_id());
                        }
                    }
                }
                KeyCommand::Policy(PolicyCommand::Put {
                    key,
                    file,
                    bypass_lockout_check,
                }) => {
                    let text = policy_text(&file)?;
                    kms.put_key_policy(&key_id_ref(&kms, &key)?, &text, bypass_lockout_check)?;
                }
                KeyCommand::Grant(cmd) => match cmd {
                    GrantCommand::Create {
                        key,
                        grantee,
                        operations,
                        context_subset,
                        context_equals,
                        retiring_principal,
                        name,
                    } => {
                        let pairs = |v: &[String]| -> Result<
                            Option<std::collections::BTreeMap<String, String>>,
                        > {
                            if v.is_empty() {
                                return Ok(None);
                            }
                            let ctx = EncryptionContext::from_pairs(v)?;
                            Ok(Some(
                                ctx.iter()
                                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                                    .collect(),
                            ))
                        };
                        let id = kms.create_grant(
                            &key_id_ref(&kms, &key)?,
                            &crate::kms::CreateGrantRequest {
                                grantee,
                                operations,
                                retiring_principal,
                                name,
                                constraints: crate::keyring::GrantConstraints {
                                    encryption_context_subset: pairs(&context_subset)?,
                                    encryption_context_equals: pairs(&context_equals)?,
                                },
                            },
                        )?;
                        if json {
                            print::response(&id);
                        } else {
                            outln!("{}", id.grant_id);
                        }
                    }
                    GrantCommand::List { key } => {
                        let grants = kms.list_grants(&key_id_ref(&kms, &key)?)?;
                        if json {
                            print::setting(
                                "Grants",
                                serde_json::to_value(&grants).expect("serializable"),
                                true,
                            );
                        } else {
                            for g in grants {
                                outln!(
                                    "{}  {}  {}  {}",
                                    g.grant_id,
                                    g.grantee_principal,
                                    g.operations.join(","),
                                    g.name.unwrap_or_default()
                                );
                            }
                        }
                    }
                    GrantCommand::Retire {
                        key,
                        grant_id,
                        grant_token,
                    } => match (key, grant_id, grant_token) {
                        (Some(key), Some(id), None) => {
                            kms.retire_grant(&key_id_ref(&kms, &key)?, &id)?
                        }
                        (None, None, Some(token)) => kms.retire_grant_with_token(&token)?,
                        _ => {
                            return Err(Error::usage(
                                "name the grant by KEY and GRANT_ID, or by --grant-token",
                            ))
                        }
                    },
                    GrantCommand::Revoke { key, grant_id } => {
                        kms.revoke_grant(&key_id_ref(&kms, &key)?, &grant_id)?
                    }
                },
                KeyCommand::PublicKey {
                    key,
                    out,
                    format,
                    force,
                } => {
                    let info = kms.get_public_key(&key_ref(&key)?)?;
                    let bytes = match format {
                        args::KeyFormat::Pem => {
                            crate::sign::labelled_public_key_pem(&info).into_bytes()
                        }
                        args::KeyFormat::Der => info.public_key.clone(),
                    };
                    match out {
                        Some(p) if p != Path::new("-") => {
                            kms_cmd::write_new(&p, &bytes, force, 0o644)?;
                            print::public_key(&info, json);
                        }
                        _ if json => print::public_key(&info, true),
                        _ => kms_cmd::write_stdout(&bytes)?,
                    }
                }
                KeyCommand::List { paging } => {
                    let (keys, next) =
                        paging::collect(&paging, |limit, marker| kms.list_keys(limit, marker))?;
                    if json {
                        print::listing("Keys", &keys, next.as_deref());
                    } else {
                        // The table a person reads: each key described, with its aliases;
                        // the keys that read, then damage (exit 4) if a record does not.
                        let (aliases, _) =
                            paging::collect(&Default::default(), |limit, marker| {
                                kms.list_aliases(None, limit, marker)
                            })?;
                        let mut rows = Vec::new();
                        for k in &keys {
                            match kms.describe_key(&key_ref(&k.key_id)?) {
                                Ok(m) => rows.push(m),
                                Err(Error::Damaged(_)) => {}
                                Err(e) => return Err(e),
                            }
                        }
                        print::key_table(&rows, &aliases, next.as_deref());
                        kms.home().region(kms.region())?.check_keys()?;
                    }
                }
                KeyCommand::Describe { key } => {
                    print::key_metadata(&kms.describe_key(&key_ref(&key)?)?, json)
                }
                // EnableKey, DisableKey, Enable/DisableKeyRotation, CreateAlias, UpdateAlias
                // and UpdatePrimaryRegion answer nothing: with --output json, nothing is
                // printed, as the AWS CLI does; the text says what happened.
                KeyCommand::Enable { key } => {
                    let m = kms.enable_key(&key_id_ref(&kms, &key)?)?;
                    print::key_state(&m, json);
                }
                KeyCommand::Disable { key, force } => {
                    let m = kms
                        .disable_key(&key_id_ref(&kms, &key)?, force)
                        .map_err(in_use_hint(&key))?;
                    print::key_state(&m, json);
                }
                KeyCommand::Rotation(cmd) => {
                    let (s, answers) = match cmd {
                        RotationCommand::Enable { key, period_days } => (
                            kms.enable_key_rotation(&key_id_ref(&kms, &key)?, Some(period_days))?,
                            false,
                        ),
                        RotationCommand::Disable { key } => {
                            (kms.disable_key_rotation(&key_id_ref(&kms, &key)?)?, false)
                        }
                        RotationCommand::Status { key } => {
                            (kms.key_rotation_status(&key_id_ref(&kms, &key)?)?, true)
                        }
                    };
                    print::rotation_status(&s, answers, json);
                }
                KeyCommand::Rotate { key } => {
                    let v = kms.rotate_key_on_demand(&key_id_ref(&kms, &key)?)?;
                    if json {
                        print::response(&crate::api::kms::KeyIdResponse { key_id: v.key_id });
                    } else {
                        print::key_versions(std::slice::from_ref(&v), false);
                    }
                }
                KeyCommand::Rotations {
                    key,
                    include_key_material,
                } => print::key_versions(
                    &kms.list_key_rotations(
                        &key_id_ref(&kms, &key)?,
                        include_key_material == args::IncludeKeyMaterial::AllKeyMaterial,
                    )?,
                    json,
                ),
                KeyCommand::Replicate { key, to } => {
                    let r = kms.replicate_key(&key_id_ref(&kms, &key)?, &Region::new(&to)?)?;
                    if json {
                        print::response(&r);
                    } else {
                        print::key_metadata(&r.replica_key_metadata, false);
                    }
                }
                KeyCommand::UpdatePrimaryRegion { key, to } => {
                    let m =
                        kms.update_primary_region(&key_id_ref(&kms, &key)?, &Region::new(&to)?)?;
                    if !json {
                        print::key_metadata(&m, false);
                    }
                }
                KeyCommand::UsageReport { key, scan } => {
                    let versions = kms.list_key_rotations(&key_id_ref(&kms, &key)?, true)?;
                    let arn = kms.describe_key(&key_id_ref(&kms, &key)?)?.arn;
                    let mut files = Vec::new();
                    for dir in &scan {
                        files.extend(files::find_sealed(dir)?);
                    }
                    let resources = Ebs::new(&kms)?.protected_by(&arn)?;
                    print::usage_report(&arn, &versions, &resources, &files, json);
                }
                KeyCommand::ScheduleDeletion { key, days, force } => {
                    let m = kms
                        .schedule_key_deletion(&key_id_ref(&kms, &key)?, Some(days), force)
                        .map_err(in_use_hint(&key))?;
                    print::deletion(&m, json);
                }
                KeyCommand::CancelDeletion { key } => {
                    let m = kms.cancel_key_deletion(&key_id_ref(&kms, &key)?)?;
                    if json {
                        print::response(&crate::api::kms::KeyIdResponse { key_id: m.arn });
                    } else {
                        print::key_state(&m, false);
                    }
                }
            }
        }
        Command::Alias(cmd) => {
            let kms = open_kms(cli.home, cli.region)?;
            match cmd {
                AliasCommand::Create { name, key } => {
                    print::alias(&kms.create_alias(&name, &key_ref(&key)?)?, json)
                }
                AliasCommand::Update { name, key } => {
                    print::alias(&kms.update_alias(&name, &key_ref(&key)?)?, json)
                }
                AliasCommand::Delete { name } => kms.delete_alias(&name)?,
                AliasCommand::List { key, paging } => {
                    let key = key.as_deref().map(key_ref).transpose()?;
                    let (aliases, next) = paging::collect(&paging, |limit, marker| {
                        kms.list_aliases(key.as_ref(), limit, marker)
                    })?;
                    print::alias_list(&aliases, next.as_deref(), json)
                }
            }
        }
        Command::Encrypt(a) => {
            let keys = a
                .keys
                .iter()
                .map(|k| key_ref(k))
                .collect::<Result<Vec<_>>>()?;
            let context = EncryptionContext::from_pairs(&a.context)?;
            let log2 = chunk_log2(a.chunk_size)?;
            let output = output_of(a.out, a.force);
            if output == Output::Stdout && std::io::stdout().is_terminal() {
                return Err(Error::usage(
                    "refusing to write encrypted data to a terminal; use -o FILE or redirect stdout",
                ));
            }
            let public_keys = a
                .recipient_pubkeys
                .iter()
                .map(|p| {
                    let (der, usage) = crate::sign::read_public_key_file(p)?;
                    use crate::keyring::KeyUsage;
                    match usage {
                        Some(u @ (KeyUsage::SignVerify | KeyUsage::GenerateVerifyMac)) => {
                            let kind = crate::crypto::spki_kind(crate::Backend::default(), &der)?;
                            Err(Error::usage(format!(
                                "{} is the public key of a {} {u} key, which cannot decrypt: a file encrypted to it could never be opened; use the public key of an ENCRYPT_DECRYPT (RSA) or KEY_AGREEMENT (ECC) key",
                                p.display(),
                                crate::crypto::kind_name(kind)
                            )))
                        }
                        _ => Ok(der),
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            // Public keys alone need no keyring.
            let kms = if keys.is_empty() {
                None
            } else {
                Some(open_kms(cli.home, cli.region)?)
            };
            files::encrypt_to(
                kms.as_ref(),
                &keys,
                &public_keys,
                &context,
                log2,
                &input_of(a.input),
                &output,
                opts,
            )?;
        }
        Command::Decrypt(a) => {
            let context = EncryptionContext::from_pairs(&a.context)?;
            let kms = open_kms(cli.home, cli.region)?;
            files::decrypt(
                &kms,
                &context,
                &input_of(a.input),
                &output_of(a.out, a.force),
                opts,
            )?;
        }
        Command::Rewrap(a) => {
            let keys = a
                .keys
                .iter()
                .map(|k| key_ref(k))
                .collect::<Result<Vec<_>>>()?;
            let from = open_kms(cli.home, cli.region)?;
            let other = match a.to_region {
                Some(r) => Some(from.in_region(Region::new(&r)?)?),
                None => None,
            };
            let to = other.as_ref().unwrap_or(&from);
            files::rewrap(&from, to, &keys, &a.input, a.out.as_deref(), a.force)?;
        }
        Command::Volume(cmd) => {
            let kms = open_kms(cli.home, cli.region)?;
            let ebs = Ebs::new(&kms)?;
            match cmd {
                VolumeCommand::Create {
                    size,
                    from_image,
                    snapshot,
                    encrypted,
                    kms_key,
                    volume_type,
                } => {
                    let source = match (from_image, snapshot, size) {
                        (Some(p), _, _) => VolumeSource::Image(p),
                        (None, Some(id), size) => {
                            crate::ebs::check_id(&id, "snap-", "snapshot")?;
                            VolumeSource::Snapshot { id, size }
                        }
                        (None, None, Some(s)) => VolumeSource::Empty(s),
                        (None, None, None) => unreachable!("clap requires a source"),
                    };
                    let v = ebs.create_volume(&CreateVolumeRequest {
                        source,
                        encrypted,
                        kms_key: kms_key.as_deref().map(key_ref).transpose()?,
                        volume_type,
                        tags: Default::default(),
                        quiet: cli.quiet,
                    })?;
                    print::volume_created(&v, json);
                }
                VolumeCommand::List => print::volume_list(&ebs.list_volumes()?, json),
                VolumeCommand::Describe { volume } => {
                    print::volume(&ebs.describe_volume(&volume)?, json)
                }
                VolumeCommand::Delete { volume } => ebs.delete_volume(&volume)?,
                VolumeCommand::Read {
                    volume,
                    offset,
                    length,
                    out,
                    force,
                } => match out.filter(|p| p != Path::new("-")) {
                    Some(path) => {
                        let f = crate::store::OutputFile::create(&path, force)?;
                        let mut w = std::io::BufWriter::new(f.file());
                        ebs.read_volume(&volume, offset, length, &mut w)?;
                        drop(w);
                        f.commit()?;
                    }
                    None => {
                        let stdout = std::io::stdout();
                        let mut lock = stdout.lock();
                        ebs.read_volume(&volume, offset, length, &mut lock)?;
                    }
                },
                VolumeCommand::Write {
                    volume,
                    offset,
                    input,
                } => {
                    let n = match input.filter(|p| p != Path::new("-")) {
                        Some(p) => {
                            let mut f =
                                std::fs::File::open(&p).map_err(|e| Error::io("opening", &p, e))?;
                            ebs.write_volume(&volume, offset, &mut f)?
                        }
                        None => ebs.write_volume(&volume, offset, &mut std::io::stdin().lock())?,
                    };
                    if json {
                        print::setting("BytesWritten", n.into(), true);
                    }
                }
                VolumeCommand::Export {
                    volume,
                    out,
                    sparse,
                    force,
                } => ebs.export_volume(&volume, &out, sparse, force, cli.quiet)?,
                VolumeCommand::Attach {
                    volume,
                    nbd,
                    read_only,
                } => {
                    let mode = if read_only {
                        crate::ebs::SessionMode::ReadOnly
                    } else {
                        crate::ebs::SessionMode::ReadWrite
                    };
                    attach::serve(&nbd.parse()?, || ebs.attach_volume(&volume, mode), json)?
                }
            }
        }
        Command::Snapshot(cmd) => {
            let kms = open_kms(cli.home, cli.region)?;
            let ebs = Ebs::new(&kms)?;
            match cmd {
                SnapshotCommand::Create {
                    volume,
                    description,
                } => print::snapshot_created(&ebs.create_snapshot(&volume, &description)?, json),
                SnapshotCommand::List => print::snapshot_list(&ebs.list_snapshots()?, json),
                SnapshotCommand::Describe { snapshot } => {
                    print::snapshot(&ebs.describe_snapshot(&snapshot)?, json)
                }
                SnapshotCommand::Delete { snapshot } => ebs.delete_snapshot(&snapshot)?,
                SnapshotCommand::Diff { first, second } => {
                    print::changed_blocks(&ebs.diff_snapshots(&first, &second)?, json)
                }
                SnapshotCommand::Attach { snapshot, nbd } => {
                    attach::serve(&nbd.parse()?, || ebs.attach_snapshot(&snapshot), json)?
                }
                SnapshotCommand::Copy {
                    snapshot,
                    source_region,
                    kms_key,
                    encrypted,
                    reencrypt,
                    description,
                } => {
                    crate::ebs::check_id(&snapshot, "snap-", "snapshot")?;
                    let r = ebs.copy_snapshot(&CopySnapshotRequest {
                        source_region: Region::new(&source_region)?,
                        source_snapshot_id: snapshot,
                        encrypted,
                        kms_key: kms_key.as_deref().map(key_ref).transpose()?,
                        reencrypt,
                        description,
                        tags: Default::default(),
                        quiet: cli.quiet,
                    })?;
                    print::copy(&r, json, cli.quiet);
                }
            }
        }
        Command::Ebs(cmd) => {
            let kms = open_kms(cli.home, cli.region)?;
            let ebs = Ebs::new(&kms)?;
            match cmd {
                EbsCommand::DefaultEncryption { action } => {
                    let on = match action {
                        Toggle::Enable => ebs.set_encryption_by_default(true)?,
                        Toggle::Disable => ebs.set_encryption_by_default(false)?,
                        Toggle::Status => ebs.encryption_by_default()?,
                    };
                    print::setting("EbsEncryptionByDefault", on.into(), json);
                }
                EbsCommand::DefaultKey { action } => {
                    let arn = match action {
                        DefaultKeyCommand::Get => ebs.default_kms_key_id()?,
                        DefaultKeyCommand::Set { key } => {
                            ebs.set_default_kms_key_id(&key_ref(&key)?)?
                        }
                        DefaultKeyCommand::Reset => ebs.reset_default_kms_key_id()?,
                    };
                    print::setting("KmsKeyId", arn.into(), json);
                }
            }
        }
        Command::Region(cmd) => {
            let mut home = Home::open(&home_dir(cli.home)?, None)?;
            match cmd {
                RegionCommand::SetPath { region, dir, reset } => {
                    let region = Region::new(&region)?;
                    home.set_region_path(&region, if reset { None } else { dir.as_deref() })?;
                    print::regions(&[(region.to_string(), home.region_dir(&region))], json);
                }
                RegionCommand::List => {
                    let rows: Vec<_> = home
                        .regions()?
                        .into_iter()
                        .map(|r| (r.to_string(), home.region_dir(&r)))
                        .collect();
                    print::regions(&rows, json);
                }
            }
        }
        Command::Principal(PrincipalCommand::Policy(cmd)) => {
            let kms = open_kms(cli.home, cli.region)?;
            match cmd {
                PrincipalPolicyCommand::Put { arn, file } => {
                    let text = read_policy(&file, crate::kms::policy::MAX_IDENTITY_POLICY_BYTES)?;
                    kms.put_principal_policy(&arn, &text)?;
                }
                PrincipalPolicyCommand::Get { arn } => {
                    let p = kms.get_principal_policy(&arn)?;
                    if json {
                        print::response(&p);
                    } else {
                        outln!("{}", p.policy_document);
                    }
                }
                PrincipalPolicyCommand::Delete { arn } => kms.delete_principal_policy(&arn)?,
                PrincipalPolicyCommand::List => {
                    let all = kms.list_principal_policies()?;
                    if json {
                        print::listing("Policies", &all, None);
                    } else {
                        for p in all {
                            outln!("{}", p.principal_arn);
                        }
                    }
                }
            }
        }
        Command::Usage { month, all_regions } => {
            let kms = open_kms(cli.home, cli.region)?;
            let regions = if all_regions {
                kms.home().regions()?
            } else {
                vec![kms.region().clone()]
            };
            let trails = regions
                .into_iter()
                .map(|r| Ok((r.clone(), kms.in_region(r)?.audit_trail())))
                .collect::<Result<Vec<_>>>()?;
            let month = month.unwrap_or_else(|| crate::audit::usage::month_of(kms.home().now()));
            let report = crate::audit::usage::report(kms.home(), &trails, &month)?;
            print::usage(&report, all_regions, json);
        }
        Command::Audit(cmd) => {
            let kms = open_kms(cli.home, cli.region)?;
            let trail = kms.audit_trail();
            match cmd {
                AuditCommand::Log {
                    since,
                    until,
                    event,
                    key,
                    errors,
                } => {
                    let since = since.as_deref().map(|t| time_bound(t, false)).transpose()?;
                    let until = until.as_deref().map(|t| time_bound(t, true)).transpose()?;
                    let who = principal_arn(None);
                    let events: Vec<_> = trail
                        .events()?
                        .into_iter()
                        .filter(|e| crate::audit::within(&e.event_time, since, until))
                        .filter(|e| event.as_ref().is_none_or(|n| &e.event_name == n))
                        .filter(|e| !errors || e.error_code.is_some())
                        .filter(|e| {
                            who.as_ref()
                                .is_none_or(|w| e.user_identity.arn.as_ref() == Some(w))
                        })
                        .filter(|e| {
                            key.as_ref().is_none_or(|k| {
                                e.resources.iter().any(|r| r.arn.ends_with(k.as_str()))
                                    || e.request_parameters["keyId"].as_str() == Some(k)
                            })
                        })
                        .collect();
                    print::audit_log(&events, json);
                }
                AuditCommand::Verify => {
                    let report = trail.check()?;
                    audit_report::audit_verify(&report, kms.region(), json);
                    if let Some(p) = report.problems.first() {
                        return Err(Error::StoreCorrupt(format!(
                            "the audit trail of {} fails its checks: {}",
                            kms.region(),
                            p.message
                        )));
                    }
                }
            }
        }
        Command::Verify {
            args,
            pubkey,
            algorithm,
        } if !args.is_empty() || pubkey.is_some() || algorithm.is_some() => {
            kms_cmd::verify_signature(cli.home, cli.region, args, pubkey, algorithm, json)?
        }
        Command::Sign {
            key,
            file,
            out,
            algorithm,
            force,
        } => {
            kms_cmd::check_outputs([&Some(out.clone())], force)?;
            let kms = open_kms(cli.home, cli.region)?;
            let s =
                crate::sign::sign_file(&kms, &key_ref(&key)?, algorithm, &input_of(Some(file)))?;
            kms_cmd::write_new(&out, &s.signature, force, 0o644)?;
            if json {
                print::print_json(&serde_json::json!({
                    "KeyId": s.key_id,
                    "SigningAlgorithm": crate::kms::specs::value_name(&s.signing_algorithm),
                    "SignatureFile": out.display().to_string(),
                }));
            }
        }
        Command::Kms(cmd) => {
            let kms = open_kms(cli.home, cli.region)?.with_grant_tokens(cmd.grant_tokens());
            kms_cmd::run(&kms, cmd, json)?;
        }
        Command::Verify { .. } => {
            let kms = open_kms(cli.home, cli.region)?;
            let report = Ebs::new(&kms)?.verify(cli.quiet)?;
            print::verify(&report, json);
            if !report.problems.is_empty() {
                return Err(Error::StoreCorrupt(format!(
                    "{} problems in the EBS store of {}",
                    report.problems.len(),
                    report.region
                )));
            }
            if !report.unauthenticated.is_empty() {
                return Err(Error::kms(
                    crate::KmsCode::DisabledException,
                    format!(
                        "{} lineages of {} were checked against their hashes only: their KMS key cannot be used now; enable it and run verify again to authenticate their blocks",
                        report.unauthenticated.len(),
                        report.region
                    ),
                ));
            }
        }
        Command::Gc => {
            let kms = open_kms(cli.home, cli.region)?;
            print::gc(&Ebs::new(&kms)?.gc()?, json);
        }
        Command::Inspect { input } => {
            let i = files::inspect(&input_of(Some(input)))?;
            print::inspection(&i, json);
        }
        Command::Bench {
            size,
            threads,
            chunk_sizes,
            backend,
            dir,
            json,
            plot,
            force,
        } => {
            let backends = match backend.as_str() {
                "all" => crate::Backend::ALL.to_vec(),
                name => match crate::Backend::ALL.iter().find(|b| b.name() == name) {
                    Some(b) => vec![*b],
                    None => {
                        let built: Vec<_> = crate::Backend::ALL.iter().map(|b| b.name()).collect();
                        return Err(Error::usage(format!(
                            "backend {name:?} is not built into this cofre; use one of {} or all",
                            built.join(", ")
                        )));
                    }
                },
            };
            let threads = if threads.is_empty() {
                let n = std::thread::available_parallelism().map_or(1, |n| n.get());
                if n > 1 {
                    vec![1, n]
                } else {
                    vec![1]
                }
            } else {
                threads
            };
            let plot_out = match &plot {
                Some(p) => Some(crate::store::OutputFile::create(p, force)?),
                None => None,
            };
            let cfg = crate::bench::BenchConfig {
                size,
                threads,
                chunk_sizes,
                backends,
                dir,
            };
            let live = !cli.quiet && std::io::stderr().is_terminal();
            let report = crate::bench::run(&cfg, &mut |msg| {
                if live {
                    eprint!("\r\x1b[2Kbench: {msg}");
                }
            })?;
            if live {
                eprint!("\r\x1b[2K");
            }
            if let Some(out) = plot_out {
                use std::io::Write;
                let svg = crate::bench::plot(&report)?;
                out.file()
                    .write_all(svg.as_bytes())
                    .map_err(|e| Error::io("writing", out.path(), e))?;
                out.commit()?;
            }
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("serializable")
                );
            } else {
                out!("{}", crate::bench::table(&report));
            }
        }
        Command::Demo { size, dir } => {
            crate::demo::run(size, dir.as_deref(), &mut std::io::stdout())?;
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "cofre", &mut script);
            out!("{}", String::from_utf8_lossy(&script));
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(|e| Error::io("rendering", Path::new("the man page"), e))?;
            out!("{}", String::from_utf8_lossy(&page));
        }
    }
    Ok(())
}
