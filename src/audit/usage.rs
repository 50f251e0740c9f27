//! Usage and cost at KMS prices, computed from the audit trails and the key records alone, so
//! the same home always gives the same bill.
//!
//! - $1 per customer managed key per month, prorated by the hour (each started hour counts):
//!   replicas and imported keys count; AWS managed keys are free; hours a key spends pending
//!   deletion are free — unless the deletion is cancelled: then the key is billed as though
//!   it had never been scheduled for deletion (the KMS pricing page).
//! - $1 per month more for each of a key's first two rotations, from the rotation on.
//! - Requests, by the kinds the KMS pricing page prices ([`RequestKind`]): $0.03 per 10,000
//!   symmetric requests beyond 20,000 free per month, across all regions. Requests to
//!   GenerateDataKeyPair(WithoutPlaintext), and cryptographic requests (Encrypt, Decrypt,
//!   ReEncrypt, Sign, Verify, GetPublicKey, DeriveSharedSecret) that reference an asymmetric
//!   key, are outside the free tier, at their own prices: $0.03 per 10,000 with an RSA_2048
//!   key, $0.15 with any other asymmetric key, $0.10 per 10,000 ECC GenerateDataKeyPair
//!   requests and $12.00 per 10,000 RSA ones.

use super::{Event, Trail};
use crate::error::{Error, Result};
use crate::keyring::{Home, KeyManager, KeySpec, Region};
use crate::store;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::SystemTime;

const FREE_REQUESTS: u64 = 20_000;
const PRICE_KEY_MONTH: f64 = 1.0;

/// How KMS prices a request (each kind its own line on the bill).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RequestKind {
    /// Every request not below: symmetric and HMAC keys, management, requests naming no key.
    /// The only kind the 20,000 free requests apply to.
    Symmetric,
    /// A cryptographic request referencing an RSA_2048 key.
    Rsa2048,
    /// A cryptographic request referencing any other asymmetric key.
    Asymmetric,
    /// GenerateDataKeyPair(WithoutPlaintext) of an ECC key pair.
    EccDataKeyPair,
    /// GenerateDataKeyPair(WithoutPlaintext) of an RSA key pair.
    RsaDataKeyPair,
}

impl RequestKind {
    /// Dollars per 10,000 requests (the KMS pricing page).
    pub fn price_per_10k(self) -> f64 {
        match self {
            RequestKind::Symmetric | RequestKind::Rsa2048 => 0.03,
            RequestKind::Asymmetric => 0.15,
            RequestKind::EccDataKeyPair => 0.10,
            RequestKind::RsaDataKeyPair => 12.00,
        }
    }

    /// Whether the month's 20,000 free requests apply.
    pub fn free_tier(self) -> bool {
        self == RequestKind::Symmetric
    }
}

/// The cryptographic operations whose requests are priced by the key they reference.
const KEY_PRICED: &[&str] = &[
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "Sign",
    "Verify",
    "GetPublicKey",
    "DeriveSharedSecret",
];

/// The price kind of a KMS request, from its record and the specs of the keys it names.
fn request_kind(e: &Event, spec_of: &BTreeMap<String, KeySpec>) -> RequestKind {
    let param = |name: &str| e.request_parameters.get(name).and_then(|v| v.as_str());
    let name = e.event_name.as_str();
    if name.starts_with("GenerateDataKeyPair") {
        return if param("keyPairSpec").is_some_and(|s| s.starts_with("RSA")) {
            RequestKind::RsaDataKeyPair
        } else {
            RequestKind::EccDataKeyPair
        };
    }
    if !KEY_PRICED.contains(&name) {
        return RequestKind::Symmetric;
    }
    let mut kind = RequestKind::Symmetric;
    for r in &e.resources {
        let k = match spec_of.get(&r.arn) {
            Some(KeySpec::Rsa2048) => RequestKind::Rsa2048,
            Some(s) if crate::kms::specs::asym_kind(*s).is_some() => RequestKind::Asymmetric,
            Some(_) => RequestKind::Symmetric,
            None => continue,
        };
        kind = kind.max(k);
    }
    // A key whose spec is no longer known (a tombstone of an earlier version): its algorithm
    // still says whether it was asymmetric.
    let asymmetric_algorithm = [
        "encryptionAlgorithm",
        "sourceEncryptionAlgorithm",
        "destinationEncryptionAlgorithm",
    ]
    .iter()
    .any(|p| param(p).is_some_and(|a| a != "SYMMETRIC_DEFAULT"))
        || param("signingAlgorithm").is_some()
        || param("keyAgreementAlgorithm").is_some();
    if kind == RequestKind::Symmetric
        && asymmetric_algorithm
        && e.resources.iter().any(|r| !spec_of.contains_key(&r.arn))
    {
        kind = RequestKind::Asymmetric;
    }
    kind
}

/// One kind of request on the month's bill.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestLine {
    pub kind: RequestKind,
    pub requests: u64,
    /// Of them, covered by the free tier.
    pub free: u64,
    pub billable: u64,
    pub price_per_10k: f64,
    pub cost: f64,
}

/// One key's month.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyUsage {
    pub region: String,
    pub key_id: String,
    pub key_manager: KeyManager,
    /// Billable hours (not pending deletion, not deleted) in the month.
    pub hours: u64,
    pub key_cost: f64,
    /// Billable hours of its first and second rotations' material.
    pub rotation_hours: u64,
    pub rotation_cost: f64,
    /// KMS requests naming the key, by API.
    pub requests: BTreeMap<String, u64>,
}

/// The month's bill.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UsageReport {
    pub month: String,
    pub hours_in_month: u64,
    pub keys: Vec<KeyUsage>,
    /// KMS requests by region and API (those naming no key included).
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    pub total_requests: u64,
    /// Requests by price kind, each with its cost (only the kinds the month had).
    pub request_lines: Vec<RequestLine>,
    /// Symmetric requests the free tier covered.
    pub free_requests: u64,
    /// Every request not covered by the free tier, of any kind.
    pub billable_requests: u64,
    pub request_cost: f64,
    pub key_cost: f64,
    pub rotation_cost: f64,
    pub total: f64,
}

/// Parses `YYYY-MM` into the month's start and end.
pub fn month_bounds(month: &str) -> Result<(SystemTime, SystemTime)> {
    let bad = || {
        Error::usage(format!(
            "bad month {month:?}; write it as YYYY-MM, e.g. 2027-03"
        ))
    };
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    let (y, m): (u32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(1..=12).contains(&m) || !(1970..=9999).contains(&y) {
        return Err(bad());
    }
    let start = store::parse_time(&format!("{y:04}-{m:02}-01T00:00:00Z"))?;
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let end = store::parse_time(&format!("{ny:04}-{nm:02}-01T00:00:00Z"))?;
    Ok((start, end))
}

/// The month of `now`, `YYYY-MM`.
pub fn month_of(now: std::time::SystemTime) -> String {
    store::format_time(now)[..7].to_owned()
}

/// Started hours between `a` and `b`.
fn hours(a: SystemTime, b: SystemTime) -> u64 {
    b.duration_since(a)
        .unwrap_or_default()
        .as_secs()
        .div_ceil(3600)
}

fn time(s: &str) -> Option<SystemTime> {
    store::parse_time(s).ok()
}

/// Intervals `[from, to)` minus `holes`, clipped to `[lo, hi)`, in started hours.
fn billable_hours(
    from: SystemTime,
    to: SystemTime,
    holes: &[(SystemTime, SystemTime)],
    lo: SystemTime,
    hi: SystemTime,
) -> u64 {
    let (from, to) = (from.max(lo), to.min(hi));
    if from >= to {
        return 0;
    }
    // Walk the interval, skipping the holes (sorted, possibly overlapping).
    let mut total = 0;
    let mut at = from;
    let mut holes: Vec<_> = holes.to_vec();
    holes.sort();
    for (a, b) in holes {
        if b <= at || a >= to {
            continue;
        }
        if a > at {
            total += hours(at, a.min(to));
        }
        at = at.max(b);
        if at >= to {
            return total;
        }
    }
    total + hours(at, to)
}

/// The bill of `month` for `home`: every region's keys and trail.
pub fn report(home: &Home, trails: &[(Region, Trail)], month: &str) -> Result<UsageReport> {
    let (lo, month_end) = month_bounds(month)?;
    let now = home.now();
    let hi = month_end.min(now.max(lo));
    let hours_in_month = hours(lo, month_end);
    let mut keys = Vec::new();
    let mut requests: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut total_requests: u64 = 0;
    let mut by_kind: BTreeMap<RequestKind, u64> = BTreeMap::new();
    // Every key's spec, from the records and tombstones of the regions priced.
    let mut spec_of: BTreeMap<String, KeySpec> = BTreeMap::new();
    for (region, _) in trails {
        let store = home.region(region)?;
        for r in store.list_keys()? {
            spec_of.insert(r.key_metadata.arn, r.key_metadata.key_spec);
        }
        for t in store.tombstones()? {
            if let Some(spec) = t.key_spec {
                spec_of.insert(t.arn, spec);
            }
        }
    }
    for (region, trail) in trails {
        let events = trail.events()?;
        let by_arn = |arn: &str| -> Vec<&Event> {
            events
                .iter()
                .filter(|e| e.resources.iter().any(|r| r.arn == arn))
                .collect()
        };
        // Requests: KMS API calls (not service events) in the month.
        for e in &events {
            let t = time(&e.event_time).unwrap_or(lo);
            if e.event_source == "kms.amazonaws.com"
                && e.event_type == "AwsApiCall"
                && t >= lo
                && t < month_end
            {
                *requests
                    .entry(region.to_string())
                    .or_default()
                    .entry(e.event_name.clone())
                    .or_default() += 1;
                total_requests += 1;
                *by_kind.entry(request_kind(e, &spec_of)).or_default() += 1;
            }
        }
        let store = home.region(region)?;
        let mut all: Vec<(String, String, KeyManager, SystemTime, Option<SystemTime>)> = store
            .list_keys()?
            .into_iter()
            .map(|r| {
                let m = r.key_metadata;
                (
                    m.key_id,
                    m.arn,
                    m.key_manager,
                    time(&m.creation_date).unwrap_or(lo),
                    None,
                )
            })
            .collect();
        for t in store.tombstones()? {
            let created = time(&t.creation_date)
                .or_else(|| {
                    by_arn(&t.arn)
                        .iter()
                        .find(|e| e.event_name == "CreateKey" || e.event_name == "ReplicateKey")
                        .and_then(|e| time(&e.event_time))
                })
                .unwrap_or(lo);
            all.push((
                t.key_id,
                t.arn,
                t.key_manager,
                created,
                time(&t.deletion_date),
            ));
        }
        for (key_id, arn, manager, created, deleted) in all {
            let evs = by_arn(&arn);
            let ok = |name: &str| {
                evs.iter()
                    .filter(move |e| e.event_name == name && e.error_code.is_none())
                    .filter_map(|e| time(&e.event_time))
                    .collect::<Vec<_>>()
            };
            // Pending deletion is free only if the deletion was not cancelled: a cancelled
            // one is billed as though it had never been scheduled. So a hole runs from a
            // schedule with no cancel after it to the deletion (or on).
            let mut holes = Vec::new();
            let cancels = ok("CancelKeyDeletion");
            for s in ok("ScheduleKeyDeletion") {
                if cancels.iter().any(|c| *c >= s) {
                    continue;
                }
                holes.push((s, deleted.unwrap_or(month_end.max(now))));
            }
            let end = deleted.unwrap_or(month_end.max(now));
            let mut per_api = BTreeMap::new();
            for e in &evs {
                let t = time(&e.event_time).unwrap_or(lo);
                if e.event_source == "kms.amazonaws.com"
                    && e.event_type == "AwsApiCall"
                    && t >= lo
                    && t < month_end
                {
                    *per_api.entry(e.event_name.clone()).or_default() += 1;
                }
            }
            let billable = manager == KeyManager::Customer;
            let h = if billable {
                billable_hours(created, end, &holes, lo, hi)
            } else {
                0
            };
            let mut rotations: Vec<SystemTime> = ok("RotateKeyOnDemand");
            rotations.extend(ok("RotateKey"));
            rotations.sort();
            let rh: u64 = if billable {
                rotations
                    .iter()
                    .take(2)
                    .map(|r| billable_hours(*r, end, &holes, lo, hi))
                    .sum()
            } else {
                0
            };
            if h == 0 && rh == 0 && per_api.is_empty() {
                continue;
            }
            let price = |hrs: u64| PRICE_KEY_MONTH * hrs as f64 / hours_in_month as f64;
            keys.push(KeyUsage {
                region: region.to_string(),
                key_id,
                key_manager: manager,
                hours: h,
                key_cost: round(price(h)),
                rotation_hours: rh,
                rotation_cost: round(price(rh)),
                requests: per_api,
            });
        }
    }
    let request_lines: Vec<RequestLine> = by_kind
        .into_iter()
        .map(|(kind, requests)| {
            let free = if kind.free_tier() {
                requests.min(FREE_REQUESTS)
            } else {
                0
            };
            let billable = requests - free;
            RequestLine {
                kind,
                requests,
                free,
                billable,
                price_per_10k: kind.price_per_10k(),
                cost: round(billable as f64 * kind.price_per_10k() / 10_000.0),
            }
        })
        .collect();
    let free_requests: u64 = request_lines.iter().map(|l| l.free).sum();
    let billable_requests = total_requests - free_requests;
    let request_cost = round(request_lines.iter().map(|l| l.cost).sum());
    let key_cost = round(keys.iter().map(|k| k.key_cost).sum());
    let rotation_cost = round(keys.iter().map(|k| k.rotation_cost).sum());
    Ok(UsageReport {
        month: month.to_owned(),
        hours_in_month,
        keys,
        requests,
        total_requests,
        request_lines,
        free_requests,
        billable_requests,
        request_cost,
        key_cost,
        rotation_cost,
        total: round(request_cost + key_cost + rotation_cost),
    })
}

/// Cents and a bit: six decimals, so sums are exact enough to compare.
fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> SystemTime {
        store::parse_time(s).unwrap()
    }

    #[test]
    fn hours_are_started_hours_minus_holes() {
        let (lo, hi) = month_bounds("2027-02").unwrap();
        assert_eq!(hours(lo, hi), 28 * 24);
        // A key for the whole month.
        assert_eq!(
            billable_hours(t("2026-01-01T00:00:00Z"), hi, &[], lo, hi),
            672
        );
        // Created at 10:30 on the 1st: 14 started hours that day.
        assert_eq!(
            billable_hours(
                t("2027-02-01T10:30:00Z"),
                t("2027-02-02T00:00:00Z"),
                &[],
                lo,
                hi
            ),
            14
        );
        // Pending deletion from the 10th to the 12th is free.
        let hole = (t("2027-02-10T00:00:00Z"), t("2027-02-12T00:00:00Z"));
        assert_eq!(billable_hours(lo, hi, &[hole], lo, hi), 672 - 48);
        assert!(month_bounds("2027-13").is_err() && month_bounds("27-01").is_err());
        assert_eq!(
            month_bounds("2027-12").unwrap().1,
            t("2028-01-01T00:00:00Z")
        );
    }
}
