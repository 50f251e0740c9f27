//! Tags on volumes and snapshots: CreateTags, DeleteTags, DescribeTags (and the
//! TagSpecifications of CreateVolume, CreateSnapshot and CopySnapshot, checked here).

use super::describe::{paginate, wildcard, Filter, Page, PageRequest};
use super::{not_found, Ebs, Head};
use crate::error::{Ec2Code, Error, Result};
use crate::kms::Call;
use std::collections::BTreeMap;

/// Most tags a resource takes.
pub const MAX_TAGS: usize = 50;
/// Longest tag key and value, in characters.
const MAX_KEY: usize = 128;
const MAX_VALUE: usize = 256;

/// One tag of one resource, as DescribeTags lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagDescription {
    pub resource_id: String,
    /// `volume` or `snapshot`.
    pub resource_type: &'static str,
    pub key: String,
    pub value: String,
}

fn invalid(message: String) -> Error {
    Error::ec2(Ec2Code::InvalidParameterValue, message)
}

/// Checks tags as EC2 does: keys of 1–128 characters not starting with `aws:`, values of at
/// most 256.
pub fn check_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > MAX_KEY {
            return Err(invalid(format!(
                "tag key {k:?} must be 1 to {MAX_KEY} characters"
            )));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid(format!(
                "tag key {k:?} starts with aws:, which is reserved for AWS"
            )));
        }
        if v.chars().count() > MAX_VALUE {
            return Err(invalid(format!(
                "the value of tag {k:?} is over {MAX_VALUE} characters"
            )));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(Error::ec2(
            Ec2Code::InvalidParameterValue,
            format!("a resource takes at most {MAX_TAGS} tags"),
        ));
    }
    Ok(())
}

/// The tags of resource `id` in `head` (a volume or a snapshot), to change.
fn tags_of<'h>(
    head: &'h mut Head,
    id: &str,
    region: &crate::keyring::Region,
) -> Result<&'h mut BTreeMap<String, String>> {
    if id.starts_with("snap-") {
        super::check_id(id, "snap-", "snapshot")?;
        head.snapshots
            .get_mut(id)
            .map(|s| &mut s.tags)
            .ok_or_else(|| not_found("snapshot", id, region))
    } else if id.starts_with("vol-") {
        super::check_id(id, "vol-", "volume")?;
        head.volumes
            .get_mut(id)
            .map(|v| &mut v.tags)
            .ok_or_else(|| not_found("volume", id, region))
    } else {
        Err(Error::ec2(
            Ec2Code::InvalidParameterValue,
            format!("cofre tags volumes (vol-…) and snapshots (snap-…); {id:?} is neither"),
        ))
    }
}

/// DescribeTags' filters.
const TAG_FILTERS: &[&str] = &["resource-id", "resource-type", "key", "value"];

impl Ebs<'_> {
    /// CreateTags: adds or replaces `tags` on every resource named, all or none.
    pub fn create_tags(&self, resources: &[String], tags: &BTreeMap<String, String>) -> Result<()> {
        self.kms.audited(
            Call::ec2("CreateTags", false)
                .param("resourcesSet", resources)
                .param("tagSet", tags),
            |_| {
                if resources.is_empty() || tags.is_empty() {
                    return Err(Error::ec2(
                        Ec2Code::MissingParameter,
                        "CreateTags needs at least one ResourceId and one Tag",
                    ));
                }
                check_tags(tags)?;
                let region = self.kms.region();
                self.region.update(|h| {
                    for id in resources {
                        let t = tags_of(h, id, region)?;
                        t.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
                        check_tags(t)?;
                    }
                    Ok(())
                })
            },
        )
    }

    /// DeleteTags: removes the tags named from every resource named (a tag given with a value
    /// only if it has that value; no tags at all: every tag).
    pub fn delete_tags(
        &self,
        resources: &[String],
        tags: &[(String, Option<String>)],
    ) -> Result<()> {
        self.kms.audited(
            Call::ec2("DeleteTags", false)
                .param("resourcesSet", resources)
                .param("tagSet", tags),
            |_| {
                if resources.is_empty() {
                    return Err(Error::ec2(
                        Ec2Code::MissingParameter,
                        "DeleteTags needs at least one ResourceId",
                    ));
                }
                let region = self.kms.region();
                self.region.update(|h| {
                    for id in resources {
                        let t = tags_of(h, id, region)?;
                        if tags.is_empty() {
                            t.clear();
                        }
                        for (k, v) in tags {
                            if v.as_ref().is_none_or(|v| t.get(k) == Some(v)) {
                                t.remove(k);
                            }
                        }
                    }
                    Ok(())
                })
            },
        )
    }

    /// DescribeTags: the tags of this region's volumes and snapshots that pass `filters`.
    pub fn describe_tags(
        &self,
        filters: &[Filter],
        page: &PageRequest,
    ) -> Result<Page<TagDescription>> {
        self.kms.audited(
            Call::ec2("DescribeTags", true)
                .param("filterSet", (!filters.is_empty()).then_some(filters))
                .param("maxResults", page.max_results)
                .param("nextToken", page.next_token.as_deref()),
            |_| {
                for f in filters {
                    if !TAG_FILTERS.contains(&f.name.as_str()) {
                        return Err(invalid(format!(
                            "The filter '{}' is invalid; DescribeTags takes {}",
                            f.name,
                            TAG_FILTERS.join(", ")
                        )));
                    }
                }
                let head = self.region.load_head()?;
                let all = head
                    .volumes
                    .iter()
                    .map(|(id, v)| (id, "volume", &v.tags))
                    .chain(
                        head.snapshots
                            .iter()
                            .map(|(id, s)| (id, "snapshot", &s.tags)),
                    );
                let mut out = Vec::new();
                for (id, kind, tags) in all {
                    for (k, v) in tags {
                        let d = TagDescription {
                            resource_id: id.clone(),
                            resource_type: kind,
                            key: k.clone(),
                            value: v.clone(),
                        };
                        let pass = filters.iter().all(|f| {
                            let have = match f.name.as_str() {
                                "resource-id" => &d.resource_id,
                                "resource-type" => d.resource_type,
                                "key" => &d.key,
                                _ => &d.value,
                            };
                            f.values.iter().any(|w| wildcard(w, have))
                        });
                        if pass {
                            out.push((format!("{id}\0{k}"), d));
                        }
                    }
                }
                out.sort_by(|a, b| a.0.cmp(&b.0));
                paginate(out, page, (5, 1000))
            },
        )
    }
}
