//! DescribeVolumes and DescribeSnapshots with EC2's selection: ids, filters (`encrypted`,
//! `status`, `volume-id`, `tag:KEY`, … with `*` and `?` wildcards) and pages (MaxResults,
//! NextToken). [`Page`] and [`PageRequest`] serve DescribeTags too.

use super::{not_found, Ebs, Snapshot, Volume};
use crate::error::{Ec2Code, Error, Result};
use crate::kms::Call;
use serde::Serialize;
use std::collections::BTreeMap;

/// One of EC2's `Filter.N`: a name and the values any of which may match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

/// MaxResults and NextToken of a request.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub max_results: Option<u32>,
    pub next_token: Option<String>,
}

/// One page of results, and the token of the next if there is one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// The values a resource has for a filter name (one of its names, checked first).
type Lookup<'a, T> = &'a dyn Fn(&T, &str) -> Vec<String>;

/// DescribeVolumes' filters, besides `tag:KEY`, `tag-key` and `tag-value`.
const VOLUME_FILTERS: &[&str] = &[
    "volume-id",
    "status",
    "encrypted",
    "size",
    "snapshot-id",
    "volume-type",
    "availability-zone",
    "create-time",
];

/// DescribeSnapshots' filters, besides the tag filters.
const SNAPSHOT_FILTERS: &[&str] = &[
    "snapshot-id",
    "volume-id",
    "status",
    "encrypted",
    "volume-size",
    "owner-id",
    "description",
    "progress",
    "start-time",
    "kms-key-id",
];

fn invalid(message: String) -> Error {
    Error::ec2(Ec2Code::InvalidParameterValue, message)
}

/// Whether `value` matches `pattern`, with EC2's wildcards: `*` any run, `?` one character.
pub(crate) fn wildcard(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether `item` passes every filter (each: any of its values).
fn passes<T>(item: &T, filters: &[Filter], lookup: Lookup<T>) -> bool {
    filters.iter().all(|f| {
        let have = lookup(item, &f.name);
        f.values
            .iter()
            .any(|want| have.iter().any(|h| wildcard(want, h)))
    })
}

/// Checks every filter name before any resource is looked at (an empty result set must not
/// hide a misspelt filter).
fn check_filters(filters: &[Filter], names: &[&str]) -> Result<()> {
    for f in filters {
        let tag = f.name.strip_prefix("tag:").is_some_and(|k| !k.is_empty())
            || f.name == "tag-key"
            || f.name == "tag-value";
        if !tag && !names.contains(&f.name.as_str()) {
            return Err(invalid(format!(
                "The filter '{}' is invalid; this operation takes {} and tag:KEY, tag-key, tag-value",
                f.name,
                names.join(", ")
            )));
        }
        if f.values.is_empty() {
            return Err(invalid(format!("The filter '{}' has no values", f.name)));
        }
    }
    Ok(())
}

/// The filter values of a tag map: `tag:KEY`, `tag-key` and `tag-value`.
fn tag_values(tags: &BTreeMap<String, String>, name: &str) -> Vec<String> {
    if let Some(key) = name.strip_prefix("tag:") {
        return tags.get(key).cloned().into_iter().collect();
    }
    match name {
        "tag-key" => tags.keys().cloned().collect(),
        "tag-value" => tags.values().cloned().collect(),
        _ => Vec::new(),
    }
}

fn volume_values(v: &Volume, name: &str) -> Vec<String> {
    let one = |s: String| vec![s];
    match name {
        "volume-id" => one(v.volume_id.clone()),
        "status" => one(v.state.to_owned()),
        "encrypted" => one(v.encrypted.to_string()),
        "size" => one(v.size.to_string()),
        "snapshot-id" => one(v.snapshot_id.clone()),
        "volume-type" => one(v.volume_type.to_owned()),
        "availability-zone" => one(v.availability_zone.clone()),
        "create-time" => one(v.create_time.clone()),
        _ => tag_values(&v.tags, name),
    }
}

fn snapshot_values(s: &Snapshot, name: &str) -> Vec<String> {
    let one = |x: String| vec![x];
    match name {
        "snapshot-id" => one(s.snapshot_id.clone()),
        "volume-id" => one(s.volume_id.clone()),
        "status" => one(s.state.to_owned()),
        "encrypted" => one(s.encrypted.to_string()),
        "volume-size" => one(s.volume_size.to_string()),
        "owner-id" => one(s.owner_id.clone()),
        "description" => one(s.description.clone()),
        "progress" => one(s.progress.to_owned()),
        "start-time" => one(s.start_time.clone()),
        "kms-key-id" => s.kms_key_id.clone().into_iter().collect(),
        _ => tag_values(&s.tags, name),
    }
}

/// The page of `items` (sorted by their key, unique) after `req.next_token`, at most
/// `req.max_results` long (`limits`: the least and most MaxResults the operation takes). The
/// token is the hex of the last key returned.
pub(crate) fn paginate<T>(
    items: Vec<(String, T)>,
    req: &PageRequest,
    limits: (u32, u32),
) -> Result<Page<T>> {
    if let Some(m) = req.max_results {
        if m < limits.0 || m > limits.1 {
            return Err(invalid(format!(
                "MaxResults {m} is outside {}–{}",
                limits.0, limits.1
            )));
        }
    }
    let after = match &req.next_token {
        None => None,
        Some(t) => Some(
            hex::decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| invalid(format!("the NextToken {t:?} is not one cofre gave")))?,
        ),
    };
    let mut rest: Vec<(String, T)> = items
        .into_iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
        .collect();
    let limit = req.max_results.map_or(usize::MAX, |m| m as usize);
    let next_token = if rest.len() > limit {
        rest.truncate(limit);
        rest.last().map(|(k, _)| hex::encode(k))
    } else {
        None
    };
    Ok(Page {
        items: rest.into_iter().map(|(_, t)| t).collect(),
        next_token,
    })
}

/// Request parameters as the trail records them.
fn call(
    name: &'static str,
    ids_name: &str,
    ids: &[String],
    filters: &[Filter],
    page: &PageRequest,
) -> Call {
    Call::ec2(name, true)
        .param(ids_name, (!ids.is_empty()).then_some(ids))
        .param("filterSet", (!filters.is_empty()).then_some(filters))
        .param("maxResults", page.max_results)
        .param("nextToken", page.next_token.as_deref())
}

/// MaxResults with ids is refused, as EC2 refuses it.
fn check_combination(ids: &[String], page: &PageRequest, what: &str) -> Result<()> {
    if !ids.is_empty() && (page.max_results.is_some() || page.next_token.is_some()) {
        return Err(Error::ec2(
            Ec2Code::InvalidParameterCombination,
            format!("The parameter {what}Ids cannot be used with the parameter maxResults"),
        ));
    }
    Ok(())
}

/// The records of `all` that `ids` name (each well formed and present), or all if none.
fn chosen<'h, R>(
    all: &'h BTreeMap<String, R>,
    ids: &[String],
    kind: &str,
    region: &crate::keyring::Region,
) -> Result<Vec<&'h R>> {
    if ids.is_empty() {
        return Ok(all.values().collect());
    }
    let prefix = if kind == "volume" { "vol-" } else { "snap-" };
    for id in ids {
        super::check_id(id, prefix, kind)?;
    }
    if let Some(missing) = ids.iter().find(|id| !all.contains_key(*id)) {
        return Err(not_found(kind, missing, region));
    }
    Ok(all
        .iter()
        .filter(|(id, _)| ids.contains(id))
        .map(|(_, r)| r)
        .collect())
}

impl Ebs<'_> {
    /// DescribeVolumes: the volumes named (each must exist), else all, that pass `filters`.
    pub fn describe_volumes(
        &self,
        ids: &[String],
        filters: &[Filter],
        page: &PageRequest,
    ) -> Result<Page<Volume>> {
        self.kms.audited(
            call("DescribeVolumes", "volumeIds", ids, filters, page),
            |_| {
                check_combination(ids, page, "Volume")?;
                check_filters(filters, VOLUME_FILTERS)?;
                let head = self.region.load_head()?;
                let mut out = Vec::new();
                for r in chosen(&head.volumes, ids, "volume", self.kms.region())? {
                    let v = self.describe(r, self.region.load_map(&r.map)?.blocks.len() as u64);
                    if passes(&v, filters, &volume_values) {
                        out.push((v.volume_id.clone(), v));
                    }
                }
                paginate(out, page, (5, 1000))
            },
        )
    }

    /// DescribeSnapshots: the snapshots named (each must exist), else all, of the owners
    /// named (`self` or this account: every snapshot here), that pass `filters`.
    pub fn describe_snapshots(
        &self,
        ids: &[String],
        owners: &[String],
        filters: &[Filter],
        page: &PageRequest,
    ) -> Result<Page<Snapshot>> {
        self.kms.audited(
            call("DescribeSnapshots", "snapshotIds", ids, filters, page)
                .param("ownersSet", (!owners.is_empty()).then_some(owners)),
            |_| {
                check_combination(ids, page, "Snapshot")?;
                check_filters(filters, SNAPSHOT_FILTERS)?;
                let account = self.kms.home().account_id();
                let mine = owners.is_empty() || owners.iter().any(|o| o == "self" || o == account);
                let head = self.region.load_head()?;
                let mut out = Vec::new();
                for r in chosen(&head.snapshots, ids, "snapshot", self.kms.region())? {
                    let s = self.describe_snapshot_record(r)?;
                    if mine && passes(&s, filters, &snapshot_values) {
                        out.push((s.snapshot_id.clone(), s));
                    }
                }
                paginate(out, page, (5, 1000))
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_ec2_does() {
        assert!(wildcard("vol-*", "vol-0123"));
        assert!(wildcard("*", ""));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "ac"));
        assert!(wildcard("*b*", "abc"));
        assert!(!wildcard("true", "false"));
        assert!(wildcard("a*c*e", "abcde"));
        assert!(!wildcard("a*c*e", "abcdf"));
    }

    #[test]
    fn pages_follow_their_tokens_and_bad_ones_are_refused() {
        let items: Vec<(String, u32)> = (0..12).map(|i| (format!("k{i:02}"), i)).collect();
        let req = |max, tok: Option<String>| PageRequest {
            max_results: max,
            next_token: tok,
        };
        let p1 = paginate(items.clone(), &req(Some(5), None), (5, 500)).unwrap();
        assert_eq!(p1.items, vec![0, 1, 2, 3, 4]);
        let p2 = paginate(items.clone(), &req(Some(5), p1.next_token), (5, 500)).unwrap();
        assert_eq!(p2.items, vec![5, 6, 7, 8, 9]);
        let p3 = paginate(items.clone(), &req(Some(5), p2.next_token), (5, 500)).unwrap();
        assert_eq!((p3.items, p3.next_token), (vec![10, 11], None));
        assert!(paginate(items.clone(), &req(Some(4), None), (5, 500)).is_err());
        assert!(paginate(items, &req(None, Some("zz".into())), (5, 500)).is_err());
    }
}
