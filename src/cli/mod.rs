//! The command-line front end: parses arguments, turns them into validated library calls, and
//! prints results as text or KMS-shaped JSON. Printing lives here only.

mod args;
mod print;

pub use args::{parse_size, Cli};

use crate::envelope::{chunk_log2, EncryptionContext};
use crate::error::{Error, Result};
use crate::files::{self, Input, Output};
use crate::keyring::{Home, Region, Tag, DEFAULT_REGION};
use crate::kms::{CreateKeyRequest, KeyRef, Kms};
use args::{AliasCommand, Command, Format, KeyCommand, RotationCommand};
use clap::Parser;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Parses the process arguments and runs the command.
pub fn run() -> Result<()> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to stdout with success; usage errors exit 2.
            let code = e.exit_code();
            let _ = e.print();
            std::process::exit(code);
        }
    };
    crate::store::install_interrupt_handler();
    dispatch(cli)
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
    let home = Home::open(&home_dir(cli_home)?, None)?;
    Ok(Kms::new(home, region))
}

fn key_ref(s: &str) -> Result<KeyRef> {
    s.parse()
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
    let opts = files::Options {
        quiet: cli.quiet,
        ..Default::default()
    };
    match cli.command {
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
                } => {
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
                    })?;
                    print::key_created(&m, json);
                }
                KeyCommand::List => print::key_list(&kms.list_keys()?, json),
                KeyCommand::Describe { key } => {
                    print::key_metadata(&kms.describe_key(&key_ref(&key)?)?, json)
                }
                KeyCommand::Enable { key } => {
                    let m = kms.enable_key(&key_ref(&key)?)?;
                    print::key_state(&m, json);
                }
                KeyCommand::Disable { key } => {
                    let m = kms.disable_key(&key_ref(&key)?)?;
                    print::key_state(&m, json);
                }
                KeyCommand::Rotation(cmd) => {
                    let s = match cmd {
                        RotationCommand::Enable { key, period_days } => {
                            kms.enable_key_rotation(&key_ref(&key)?, Some(period_days))?
                        }
                        RotationCommand::Disable { key } => {
                            kms.disable_key_rotation(&key_ref(&key)?)?
                        }
                        RotationCommand::Status { key } => {
                            kms.key_rotation_status(&key_ref(&key)?)?
                        }
                    };
                    print::rotation_status(&s, json);
                }
                KeyCommand::Rotate { key } => {
                    let v = kms.rotate_key_on_demand(&key_ref(&key)?)?;
                    print::key_versions(std::slice::from_ref(&v), json);
                }
                KeyCommand::Rotations { key } => {
                    print::key_versions(&kms.list_key_versions(&key_ref(&key)?)?, json)
                }
                KeyCommand::Replicate { key, to } => {
                    let m = kms.replicate_key(&key_ref(&key)?, &Region::new(&to)?)?;
                    print::key_metadata(&m, json);
                }
                KeyCommand::UpdatePrimaryRegion { key, to } => {
                    let m = kms.update_primary_region(&key_ref(&key)?, &Region::new(&to)?)?;
                    print::key_metadata(&m, json);
                }
                KeyCommand::UsageReport { key, scan } => {
                    let versions = kms.list_key_versions(&key_ref(&key)?)?;
                    let arn = kms.describe_key(&key_ref(&key)?)?.arn;
                    let mut files = Vec::new();
                    for dir in &scan {
                        files.extend(files::find_sealed(dir)?);
                    }
                    print::usage_report(&arn, &versions, &files, json);
                }
                KeyCommand::ScheduleDeletion { key, days } => {
                    let m = kms.schedule_key_deletion(&key_ref(&key)?, Some(days))?;
                    print::deletion(&m, json);
                }
                KeyCommand::CancelDeletion { key } => {
                    let m = kms.cancel_key_deletion(&key_ref(&key)?)?;
                    print::key_state(&m, json);
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
                AliasCommand::List => print::alias_list(&kms.list_aliases()?, json),
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
            let kms = open_kms(cli.home, cli.region)?;
            files::encrypt(
                &kms,
                &keys,
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
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("serializable")
                );
            } else {
                print!("{}", crate::bench::table(&report));
            }
        }
        Command::Demo { size, dir } => {
            crate::demo::run(size, dir.as_deref(), &mut std::io::stdout())?;
        }
    }
    Ok(())
}
