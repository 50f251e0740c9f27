//! The EC2 Query protocol of `cofre serve`: volumes, snapshots, copies between regions, tags and
//! the EBS encryption settings, for the AWS CLI and the SDKs' `ec2` clients.
//!
//! A request is a form-encoded `POST /` with `Action` and `Version=2016-11-15`; lists are
//! flattened with 1-based indexes (`VolumeId.1`, `Filter.1.Name`, `Filter.1.Value.1`,
//! `TagSpecification.1.Tag.1.Key`), read by [`Params`]. Each operation calls the service
//! ([`crate::ebs::Ebs`], so policies, grants and the trail see it as they see the CLI) and
//! answers `<{Action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` with its
//! `requestId` and the members named as the `ec2` model's `locationName`s say (lists as
//! `<volumeSet><item>…</item></volumeSet>`). Errors are EC2's `<Response><Errors>` XML; a KMS
//! key the caller may not use is `UnauthorizedOperation` (403), one EBS cannot use
//! `KMSKeyNotAccessibleFault`.
//!
//! ModifyVolume grows a volume (never shrinks it) and may change its type, at once.
//!
//! CopySnapshot is sent to the destination region, as with AWS: the SigV4 scope's region is
//! the destination, `SourceRegion` the source; the copy is the CLI's (`snapshot copy`): the
//! data key re-wrapped under the destination key, blocks linked, not sealed again.

use super::{respond, respond_err, respond_error, xml_escape, Api, ZeroizingBuf};
use crate::api::ec2::tag_list;
use crate::ebs::{
    CopySnapshotRequest, CreateVolumeRequest, Ebs, Filter, PageRequest, Snapshot, Volume,
    VolumeSource, VolumeType,
};
use crate::error::{Ec2Code, Error, KmsCode, Result};
use crate::keyring::Region;
use crate::kms::{KeyRef, Kms};
use http_body_util::Full;
use hyper::Response;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// The XML namespace of EC2's answers.
pub const NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// The operations served (others are `InvalidAction`).
pub const OPERATIONS: &[&str] = &[
    "CreateVolume",
    "DescribeVolumes",
    "DeleteVolume",
    "ModifyVolume",
    "CreateSnapshot",
    "DescribeSnapshots",
    "DeleteSnapshot",
    "CopySnapshot",
    "EnableEbsEncryptionByDefault",
    "DisableEbsEncryptionByDefault",
    "GetEbsEncryptionByDefault",
    "GetEbsDefaultKmsKeyId",
    "ModifyEbsDefaultKmsKeyId",
    "ResetEbsDefaultKmsKeyId",
    "CreateTags",
    "DeleteTags",
    "DescribeTags",
];

/// Runs EC2 Query request `operation` for the caller of `kms` and answers it.
pub(crate) fn answer(
    kms: &Kms,
    operation: &str,
    body: &[u8],
    request_id: &str,
) -> Response<Full<ZeroizingBuf>> {
    match handle(kms, operation, body) {
        Ok(xml) => {
            let mut out = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{operation}Response xmlns=\"{NAMESPACE}\"><requestId>{}</requestId>",
                xml_escape(request_id)
            );
            out.push_str(&xml);
            let _ = write!(out, "</{operation}Response>");
            respond(
                Api::Ec2,
                200,
                request_id,
                zeroize::Zeroizing::new(out.into_bytes()),
            )
        }
        Err(e) => match kms_as_ec2(&e) {
            Some((name, status)) => {
                respond_error(Api::Ec2, request_id, name, status, &e.wire_message())
            }
            None => respond_err(Api::Ec2, request_id, &e),
        },
    }
}

/// How EC2 names a KMS refusal met while serving a request: a key the caller may not use is
/// `UnauthorizedOperation` (403), a key EBS cannot use (missing, disabled, pending deletion,
/// unavailable) `KMSKeyNotAccessibleFault`, a malformed key id `InvalidParameterValue`.
fn kms_as_ec2(e: &Error) -> Option<(&'static str, u16)> {
    let Error::Kms { code, .. } = e else {
        return None;
    };
    Some(match code {
        KmsCode::AccessDeniedException => ("UnauthorizedOperation", 403),
        KmsCode::NotFoundException
        | KmsCode::DisabledException
        | KmsCode::KMSInvalidStateException => ("KMSKeyNotAccessibleFault", 400),
        _ => ("InvalidParameterValue", 400),
    })
}

fn handle(kms: &Kms, operation: &str, body: &[u8]) -> Result<String> {
    let p = Params::parse(body)?;
    if !OPERATIONS.contains(&operation) {
        return Err(Error::ec2(
            Ec2Code::InvalidAction,
            format!(
                "The action {} is not valid for this web service (cofre serves {})",
                crate::cli::printable(operation),
                OPERATIONS.join(", ")
            ),
        ));
    }
    if p.bool("DryRun")? == Some(true) {
        return Err(Error::ec2(
            Ec2Code::InvalidParameterValue,
            "cofre does not take DryRun; send the request without it",
        ));
    }
    let ebs = Ebs::new(kms)?;
    let mut x = String::new();
    match operation {
        "CreateVolume" => {
            let size = p.int("Size")?;
            let snapshot = p.get("SnapshotId").map(str::to_owned);
            let source = match (snapshot, size) {
                (Some(id), size) => {
                    crate::ebs::check_id(&id, "snap-", "snapshot")?;
                    VolumeSource::Snapshot {
                        id,
                        size: size.map(gib).transpose()?,
                    }
                }
                (None, Some(s)) => VolumeSource::Empty(gib(s)?),
                (None, None) => return Err(missing("Size (or SnapshotId)")),
            };
            if let Some(az) = p.get("AvailabilityZone") {
                check_zone(az, kms.region())?;
            }
            let v = ebs.create_volume(&CreateVolumeRequest {
                source,
                encrypted: p.bool("Encrypted")?.unwrap_or(false),
                kms_key: p.key("KmsKeyId")?,
                volume_type: p.volume_type()?,
                tags: p.tag_specifications("volume")?,
                quiet: true,
            })?;
            volume(&mut x, &v);
        }
        "DescribeVolumes" => {
            let page = ebs.describe_volumes(&p.list("VolumeId"), &p.filters()?, &p.page()?)?;
            set(&mut x, "volumeSet", &page.items, volume);
            next_token(&mut x, page.next_token);
        }
        "DeleteVolume" => {
            ebs.delete_volume(p.required("VolumeId")?)?;
            x.push_str("<return>true</return>");
        }
        "ModifyVolume" => {
            let id = p.required("VolumeId")?;
            let size = p.int("Size")?.map(gib).transpose()?;
            let volume_type = match p.get("VolumeType") {
                Some(_) => Some(p.volume_type()?),
                None => None,
            };
            let (old, new) = ebs.modify_volume(id, size, volume_type)?;
            let now = crate::store::format_time(kms.home().now());
            x.push_str("<volumeModification>");
            el(&mut x, "volumeId", &new.volume_id);
            el(&mut x, "modificationState", "completed");
            el(&mut x, "targetSize", &new.size.to_string());
            el(&mut x, "targetVolumeType", new.volume_type);
            el(&mut x, "originalSize", &old.size.to_string());
            el(&mut x, "originalVolumeType", old.volume_type);
            el(&mut x, "progress", "100");
            el(&mut x, "startTime", &now);
            el(&mut x, "endTime", &now);
            x.push_str("</volumeModification>");
        }
        "CreateSnapshot" => {
            let s = ebs.create_snapshot_tagged(
                p.required("VolumeId")?,
                p.get("Description").unwrap_or(""),
                &p.tag_specifications("snapshot")?,
            )?;
            snapshot(&mut x, &s);
        }
        "DescribeSnapshots" => {
            let page = ebs.describe_snapshots(
                &p.list("SnapshotId"),
                &p.list("Owner"),
                &p.filters()?,
                &p.page()?,
            )?;
            set(&mut x, "snapshotSet", &page.items, snapshot);
            next_token(&mut x, page.next_token);
        }
        "DeleteSnapshot" => {
            ebs.delete_snapshot(p.required("SnapshotId")?)?;
            x.push_str("<return>true</return>");
        }
        "CopySnapshot" => {
            let source_region = Region::new(p.required("SourceRegion")?).map_err(|_| {
                invalid(format!(
                    "SourceRegion {:?} is not a region name",
                    crate::cli::printable(p.get("SourceRegion").unwrap_or(""))
                ))
            })?;
            let id = p.required("SourceSnapshotId")?.to_owned();
            crate::ebs::check_id(&id, "snap-", "snapshot")?;
            // The SDKs add the destination (the region the request is signed for).
            if let Some(d) = p.get("DestinationRegion") {
                if d != kms.region().as_str() {
                    return Err(invalid(format!(
                        "DestinationRegion {} is not the region this request is signed for ({}); send CopySnapshot to the destination region",
                        crate::cli::printable(d),
                        kms.region()
                    )));
                }
            }
            let r = ebs.copy_snapshot(&CopySnapshotRequest {
                source_region,
                source_snapshot_id: id,
                encrypted: p.bool("Encrypted")?.unwrap_or(false),
                kms_key: p.key("KmsKeyId")?,
                reencrypt: false,
                description: p.get("Description").map(str::to_owned),
                tags: p.tag_specifications("snapshot")?,
                quiet: true,
            })?;
            el(&mut x, "snapshotId", &r.snapshot.snapshot_id);
            tags(&mut x, &r.snapshot.tags);
        }
        "EnableEbsEncryptionByDefault" | "DisableEbsEncryptionByDefault" => {
            let on = ebs.set_encryption_by_default(operation.starts_with("Enable"))?;
            el(&mut x, "ebsEncryptionByDefault", &on.to_string());
        }
        "GetEbsEncryptionByDefault" => {
            let on = ebs.encryption_by_default()?;
            el(&mut x, "ebsEncryptionByDefault", &on.to_string());
        }
        "GetEbsDefaultKmsKeyId" => el(&mut x, "kmsKeyId", &ebs.default_kms_key_id()?),
        "ModifyEbsDefaultKmsKeyId" => {
            let key = p.key("KmsKeyId")?.ok_or_else(|| missing("KmsKeyId"))?;
            el(&mut x, "kmsKeyId", &ebs.set_default_kms_key_id(&key)?);
        }
        "ResetEbsDefaultKmsKeyId" => el(&mut x, "kmsKeyId", &ebs.reset_default_kms_key_id()?),
        "CreateTags" => {
            let mut t = BTreeMap::new();
            for (k, v) in p.tags("Tag")? {
                t.insert(k, v.unwrap_or_default());
            }
            ebs.create_tags(&p.list("ResourceId"), &t)?;
            x.push_str("<return>true</return>");
        }
        "DeleteTags" => {
            ebs.delete_tags(&p.list("ResourceId"), &p.tags("Tag")?)?;
            x.push_str("<return>true</return>");
        }
        "DescribeTags" => {
            let page = ebs.describe_tags(&p.filters()?, &p.page()?)?;
            set(&mut x, "tagSet", &page.items, |x, t| {
                el(x, "resourceId", &t.resource_id);
                el(x, "resourceType", t.resource_type);
                el(x, "key", &t.key);
                el(x, "value", &t.value);
            });
            next_token(&mut x, page.next_token);
        }
        _ => unreachable!("checked against OPERATIONS"),
    }
    Ok(x)
}

fn invalid(message: String) -> Error {
    Error::ec2(Ec2Code::InvalidParameterValue, message)
}

fn missing(name: &str) -> Error {
    Error::ec2(
        Ec2Code::MissingParameter,
        format!("The request must contain the parameter {name}"),
    )
}

/// Bytes of `n` GiB.
fn gib(n: u64) -> Result<u64> {
    n.checked_mul(1 << 30)
        .ok_or_else(|| invalid(format!("Size {n} GiB is too large")))
}

/// An availability zone of `region` (cofre's volumes are all in `<region>a`, but the zones
/// a client may name are those of its region).
fn check_zone(az: &str, region: &Region) -> Result<()> {
    let ok = az
        .strip_prefix(region.as_str())
        .is_some_and(|z| z.len() == 1 && z.chars().all(|c| c.is_ascii_lowercase()));
    if !ok {
        return Err(invalid(format!(
            "Invalid availability zone: [{}]; this request is signed for {region}, whose zones are {region}a, {region}b, …",
            crate::cli::printable(az)
        )));
    }
    Ok(())
}

/// `<name>value</name>`.
fn el(x: &mut String, name: &str, value: &str) {
    let _ = write!(x, "<{name}>{}</{name}>", xml_escape(value));
}

fn next_token(x: &mut String, token: Option<String>) {
    if let Some(t) = token {
        el(x, "nextToken", &t);
    }
}

/// A list: `<name><item>…</item>…</name>`.
fn set<T>(x: &mut String, name: &str, items: &[T], member: impl Fn(&mut String, &T)) {
    let _ = write!(x, "<{name}>");
    for i in items {
        x.push_str("<item>");
        member(x, i);
        x.push_str("</item>");
    }
    let _ = write!(x, "</{name}>");
}

/// A `tagSet`, left out when empty.
fn tags(x: &mut String, t: &BTreeMap<String, String>) {
    if !t.is_empty() {
        set(x, "tagSet", &tag_list(t), |x, tag| {
            el(x, "key", &tag.key);
            el(x, "value", &tag.value);
        });
    }
}

/// A `Volume`'s members.
fn volume(x: &mut String, v: &Volume) {
    el(x, "volumeId", &v.volume_id);
    el(x, "size", &v.size.to_string());
    el(x, "snapshotId", &v.snapshot_id);
    el(x, "availabilityZone", &v.availability_zone);
    el(x, "status", v.state);
    el(x, "createTime", &v.create_time);
    x.push_str("<attachmentSet/>");
    el(x, "volumeType", v.volume_type);
    el(x, "encrypted", &v.encrypted.to_string());
    if let Some(k) = &v.kms_key_id {
        el(x, "kmsKeyId", k);
    }
    tags(x, &v.tags);
    el(x, "multiAttachEnabled", "false");
}

/// A `Snapshot`'s members.
fn snapshot(x: &mut String, s: &Snapshot) {
    el(x, "snapshotId", &s.snapshot_id);
    el(x, "volumeId", &s.volume_id);
    el(x, "status", s.state);
    el(x, "startTime", &s.start_time);
    el(x, "progress", s.progress);
    el(x, "ownerId", &s.owner_id);
    el(x, "volumeSize", &s.volume_size.to_string());
    el(x, "description", &s.description);
    el(x, "encrypted", &s.encrypted.to_string());
    if let Some(k) = &s.kms_key_id {
        el(x, "kmsKeyId", k);
    }
    if let Some(d) = &s.data_encryption_key_id {
        el(x, "dataEncryptionKeyId", d);
    }
    tags(x, &s.tags);
    el(x, "storageTier", "standard");
}

/// The parameters of an EC2 Query request, by their flattened names.
struct Params(HashMap<String, String>);

impl Params {
    fn parse(body: &[u8]) -> Result<Params> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            if map.insert(k.clone().into_owned(), v.into_owned()).is_some() {
                return Err(invalid(format!(
                    "the parameter {} is given twice",
                    crate::cli::printable(&k)
                )));
            }
        }
        Ok(Params(map))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn required(&self, name: &str) -> Result<&str> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing(name))
    }

    fn bool(&self, name: &str) -> Result<Option<bool>> {
        self.get(name)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(invalid(format!(
                    "{name} must be true or false, not {}",
                    crate::cli::printable(v)
                ))),
            })
            .transpose()
    }

    fn int(&self, name: &str) -> Result<Option<u64>> {
        self.get(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    invalid(format!(
                        "{name} must be a whole number, not {}",
                        crate::cli::printable(v)
                    ))
                })
            })
            .transpose()
    }

    fn key(&self, name: &str) -> Result<Option<KeyRef>> {
        self.get(name).map(str::parse).transpose()
    }

    fn volume_type(&self) -> Result<VolumeType> {
        use clap::ValueEnum;
        match self.get("VolumeType") {
            None => Ok(VolumeType::Gp2),
            Some(t) => VolumeType::from_str(t, false).map_err(|_| {
                invalid(format!(
                    "VolumeType {} is not one of standard, io1, io2, gp2, sc1, st1, gp3",
                    crate::cli::printable(t)
                ))
            }),
        }
    }

    /// The members of a flattened list `prefix.N` (or of structures, `prefix.N.…`), by N.
    fn indexes(&self, prefix: &str) -> Vec<u32> {
        let mut n: Vec<u32> = self
            .0
            .keys()
            .filter_map(|k| k.strip_prefix(prefix)?.strip_prefix('.'))
            .filter_map(|rest| rest.split('.').next()?.parse().ok())
            .collect();
        n.sort_unstable();
        n.dedup();
        n
    }

    /// The strings `prefix.1`, `prefix.2`, …
    fn list(&self, prefix: &str) -> Vec<String> {
        self.indexes(prefix)
            .into_iter()
            .filter_map(|i| self.get(&format!("{prefix}.{i}")).map(str::to_owned))
            .collect()
    }

    /// The structures `prefix.N.…`, each as its own parameters.
    fn structs(&self, prefix: &str) -> Vec<Params> {
        self.indexes(prefix)
            .into_iter()
            .map(|i| {
                let p = format!("{prefix}.{i}.");
                Params(
                    self.0
                        .iter()
                        .filter_map(|(k, v)| Some((k.strip_prefix(&p)?.to_owned(), v.clone())))
                        .collect(),
                )
            })
            .collect()
    }

    /// `Filter.N.Name` and `Filter.N.Value.M`.
    fn filters(&self) -> Result<Vec<Filter>> {
        self.structs("Filter")
            .into_iter()
            .map(|f| {
                Ok(Filter {
                    name: f.required("Name")?.to_owned(),
                    values: f.list("Value"),
                })
            })
            .collect()
    }

    /// `prefix.N.Key` and `prefix.N.Value` (absent: `None`).
    fn tags(&self, prefix: &str) -> Result<Vec<(String, Option<String>)>> {
        self.structs(prefix)
            .into_iter()
            .map(|t| {
                Ok((
                    t.get("Key").ok_or_else(|| missing("Tag.N.Key"))?.to_owned(),
                    t.get("Value").map(str::to_owned),
                ))
            })
            .collect()
    }

    /// The tags of `TagSpecification.N` for `resource_type` (a specification for another
    /// resource type is refused, as EC2 refuses it).
    fn tag_specifications(&self, resource_type: &str) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for spec in self.structs("TagSpecification") {
            let t = spec.required("ResourceType")?;
            if t != resource_type {
                return Err(invalid(format!(
                    "'{}' is not a valid taggable resource type for this operation; use {resource_type}",
                    crate::cli::printable(t)
                )));
            }
            for (k, v) in spec.tags("Tag")? {
                out.insert(k, v.unwrap_or_default());
            }
        }
        Ok(out)
    }

    /// MaxResults and NextToken.
    fn page(&self) -> Result<PageRequest> {
        Ok(PageRequest {
            max_results: self
                .int("MaxResults")?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            next_token: self.get("NextToken").map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattened_lists_and_structures_are_read_by_index() {
        let p = Params::parse(
            b"Action=DescribeVolumes&VolumeId.2=vol-b&VolumeId.1=vol-a&Filter.1.Name=tag%3Aenv\
              &Filter.1.Value.1=prod&Filter.1.Value.2=dev&Filter.10.Name=encrypted\
              &Filter.10.Value.1=true&TagSpecification.1.ResourceType=volume\
              &TagSpecification.1.Tag.1.Key=a&TagSpecification.1.Tag.1.Value=1\
              &TagSpecification.1.Tag.2.Key=b",
        )
        .unwrap();
        assert_eq!(p.list("VolumeId"), ["vol-a", "vol-b"]);
        let f = p.filters().unwrap();
        assert_eq!(f[0].name, "tag:env");
        assert_eq!(f[0].values, ["prod", "dev"]);
        assert_eq!(
            (f[1].name.as_str(), f[1].values.as_slice()),
            ("encrypted", &["true".to_owned()][..])
        );
        let t = p.tag_specifications("volume").unwrap();
        assert_eq!(t.get("a").map(String::as_str), Some("1"));
        assert_eq!(t.get("b").map(String::as_str), Some(""));
        assert!(p.tag_specifications("snapshot").is_err());
    }

    #[test]
    fn bad_values_are_refused_with_ec2_codes() {
        let p = Params::parse(b"Encrypted=yes&Size=ten&A=1").unwrap();
        let code = |e: Error| e.aws_name(crate::error::AwsService::Ec2);
        assert_eq!(
            code(p.bool("Encrypted").unwrap_err()),
            "InvalidParameterValue"
        );
        assert_eq!(code(p.int("Size").unwrap_err()), "InvalidParameterValue");
        assert_eq!(
            code(p.required("VolumeId").unwrap_err()),
            "MissingParameter"
        );
        assert!(Params::parse(b"A=1&A=2").is_err());
        assert!(check_zone("us-east-1a", &Region::new("us-east-1").unwrap()).is_ok());
        assert!(check_zone("eu-west-1a", &Region::new("us-east-1").unwrap()).is_err());
    }
}
