//! `cofre serve` and `cofre access-key …`.

use super::args::AccessKeyCommand;
use super::{home_dir, principal_arn, print};
use crate::audit::Principal;
use crate::error::Result;
use crate::keyring::{AccessKeyInfo, Home};
use crate::server::{self, ServeOptions};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

fn open_home(flag: Option<PathBuf>) -> Result<Home> {
    Ok(Home::open(&home_dir(flag)?, None)?.with_clock(crate::store::Clock::from_env()?))
}

/// IAM's `AccessKeyMetadata` of a key.
fn metadata(k: &AccessKeyInfo) -> Value {
    json!({
        "UserName": k.user_name(),
        "AccessKeyId": k.access_key_id,
        "Status": k.status,
        "CreateDate": k.create_date,
    })
}

pub(super) fn access_key(home: Option<PathBuf>, cmd: AccessKeyCommand, json: bool) -> Result<()> {
    let home = open_home(home)?;
    match cmd {
        AccessKeyCommand::Create => {
            let principal = match principal_arn(None) {
                Some(arn) => Principal::parse(&arn)?,
                None => Principal::root(home.account_id()),
            };
            let k = home.create_access_key(&principal)?;
            if json {
                let mut v = metadata(&k.info);
                v["SecretAccessKey"] = Value::String(k.secret_access_key.to_string());
                print::print_json(&json!({ "AccessKey": v }));
            } else {
                outln!(
                    "access key for {} (the secret is shown this once):\nexport AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={}",
                    k.info.principal.arn(),
                    k.info.access_key_id,
                    k.secret_access_key.as_str()
                );
            }
        }
        AccessKeyCommand::List => {
            let keys = home.access_keys()?;
            if json {
                let list: Vec<Value> = keys.iter().map(metadata).collect();
                print::print_json(&json!({ "AccessKeyMetadata": list, "IsTruncated": false }));
            } else {
                for k in &keys {
                    outln!(
                        "{}  {}  {}  {}",
                        k.access_key_id,
                        k.status,
                        k.create_date,
                        k.principal.arn()
                    );
                }
            }
        }
        AccessKeyCommand::Delete { access_key_id } => {
            let k = home.delete_access_key(&access_key_id)?;
            if !json {
                outln!(
                    "deleted access key {} of {}",
                    k.access_key_id,
                    k.principal.arn()
                );
            }
        }
    }
    Ok(())
}

pub(super) fn serve(home: Option<PathBuf>, opts: ServeOptions) -> Result<()> {
    let home = Arc::new(open_home(home)?);
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    server::serve(home.clone(), opts, |addr| {
        let endpoint = format!("{scheme}://{addr}");
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "cofre serve: KMS on {endpoint} for the home {} (account {}); the region is each request's signing region",
            home.root().display(),
            home.account_id()
        );
        match server::first_start_key(&home, &endpoint) {
            Ok(Some(lines)) => {
                let _ = writeln!(out, "{lines}");
            }
            Ok(None) => {
                let _ = writeln!(
                    out,
                    "sign requests with an access key of `cofre access-key list`, endpoint {endpoint}"
                );
            }
            Err(e) => eprintln!("cofre serve: {e}"),
        }
        let _ = writeln!(out, "listening on {endpoint}");
        let _ = out.flush();
    })
}
