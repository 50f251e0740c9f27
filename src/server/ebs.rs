//! The EBS direct APIs over HTTP (REST-JSON, the `ebs` 2019-11-02 model): the operation comes
//! from method and path ([`super::ebs_operation`]), its parameters from the path, the query,
//! the `x-amz-…` headers and the JSON body; the service ([`crate::ebs::Ebs`]) does the rest.
//!
//! Answers carry the model's status codes (201 for StartSnapshot and PutSnapshotBlock, 202 for
//! CompleteSnapshot); timestamps are epoch seconds; GetSnapshotBlock's data goes out as
//! `application/octet-stream` from a buffer zeroized once sent. Errors are the model's
//! exceptions: `x-amzn-ErrorType` and `{"message": …, "Reason": …}` with the exception's status.

use super::{respond, Api, ZeroizingBuf};
use crate::ebs::{Ebs, PutBlock, SnapshotRecord, StartSnapshotRequest, BLOCK_SIZE};
use crate::error::{EbsCode, Error, Result};
use crate::kms::{Call, Kms};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderValue;
use hyper::Response;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::SystemTime;
use zeroize::Zeroizing;

type Answer = Response<Full<ZeroizingBuf>>;

/// Runs EBS direct API `operation` for the caller of `kms`, and answers it.
pub fn handle(
    kms: &Kms,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    request_id: &str,
) -> Answer {
    let op = super::ebs_operation(&parts.method, parts.uri.path()).unwrap_or("UnknownOperation");
    let req = Req { parts, body };
    match Ebs::new(kms).and_then(|ebs| run(&ebs, op, &req, request_id)) {
        Ok(r) => r,
        Err(e) => error(request_id, &crate::ebs::as_ebs(e)),
    }
}

struct Req<'a> {
    parts: &'a hyper::http::request::Parts,
    body: &'a Bytes,
}

impl Req<'_> {
    fn segment(&self, i: usize) -> &str {
        self.parts
            .uri
            .path()
            .trim_start_matches('/')
            .split('/')
            .nth(i)
            .unwrap_or("")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn query(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.parts.uri.query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

fn bad(message: impl Into<String>) -> Error {
    Error::ebs(
        EbsCode::ValidationException,
        "INVALID_PARAMETER_VALUE",
        message,
    )
}

fn number(what: &str, v: Option<&str>) -> Result<Option<u64>> {
    v.map(|s| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| bad(format!("{what} must be a non-negative integer")))
    })
    .transpose()
}

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as f64)
        .unwrap_or(0.0)
}

fn json_answer(status: u16, request_id: &str, v: Value) -> Answer {
    let body = serde_json::to_vec(&v).expect("serializable");
    respond(Api::Ebs, status, request_id, Zeroizing::new(body))
}

fn set(r: &mut Answer, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// Parses the request and calls the service, which records it; a request refused here for a
/// malformed parameter is recorded too.
fn run(ebs: &Ebs, op: &str, req: &Req, request_id: &str) -> Result<Answer> {
    let refuse = |e: Error| -> Error {
        let name = super::EBS_OPERATIONS
            .iter()
            .find(|o| **o == op)
            .copied()
            .unwrap_or("UnknownOperation");
        match ebs.kms().record_refusal(Call::ebs(name, false), &e) {
            Ok(()) => e,
            Err(trail) => trail,
        }
    };
    match op {
        "StartSnapshot" => {
            let r = start_request(req.body).map_err(refuse)?;
            let rec = ebs.start_snapshot(&r)?;
            Ok(json_answer(201, request_id, started(ebs, &rec)))
        }
        "PutSnapshotBlock" => {
            let id = req.segment(1);
            let parse = || -> Result<(u64, u64, Option<u64>)> {
                let index = number("the block index", Some(req.segment(3)))?.expect("given");
                let len = number("x-amz-Data-Length", req.header("x-amz-data-length"))?
                    .ok_or_else(|| bad("x-amz-Data-Length is required"))?;
                let progress = number("x-amz-Progress", req.header("x-amz-progress"))?;
                Ok((index, len, progress))
            };
            let (index, data_length, progress) = parse().map_err(refuse)?;
            let checksum = req
                .header("x-amz-checksum")
                .ok_or_else(|| refuse(bad("x-amz-Checksum is required")))?;
            let algorithm = req
                .header("x-amz-checksum-algorithm")
                .ok_or_else(|| refuse(bad("x-amz-Checksum-Algorithm is required")))?;
            let sum = ebs.put_snapshot_block(&PutBlock {
                snapshot_id: id,
                index,
                data: req.body,
                data_length,
                checksum,
                checksum_algorithm: algorithm,
                progress,
            })?;
            let mut r = respond(Api::Ebs, 201, request_id, Zeroizing::new(Vec::new()));
            set(&mut r, "x-amz-Checksum", &sum);
            set(&mut r, "x-amz-Checksum-Algorithm", "SHA256");
            Ok(r)
        }
        "CompleteSnapshot" => {
            let id = req.segment(2);
            let count = number(
                "x-amz-ChangedBlocksCount",
                req.header("x-amz-changedblockscount"),
            )
            .and_then(|c| c.ok_or_else(|| bad("x-amz-ChangedBlocksCount is required")))
            .map_err(refuse)?;
            let checksum = req.header("x-amz-checksum").map(|c| {
                (
                    c,
                    req.header("x-amz-checksum-algorithm").unwrap_or("SHA256"),
                    req.header("x-amz-checksum-aggregation-method")
                        .unwrap_or("LINEAR"),
                )
            });
            ebs.complete_snapshot(id, count, checksum)?;
            Ok(json_answer(
                202,
                request_id,
                json!({ "Status": "completed" }),
            ))
        }
        "ListSnapshotBlocks" => {
            let id = req.segment(1);
            let (max, start) = paging(req).map_err(refuse)?;
            let token = req.query("pageToken");
            let page = ebs.list_snapshot_blocks(id, max, token.as_deref(), start)?;
            let blocks: Vec<Value> = page
                .blocks
                .iter()
                .map(|(i, t)| json!({ "BlockIndex": i, "BlockToken": t }))
                .collect();
            let v = listing(
                ("Blocks", blocks),
                page.expiry_time,
                page.volume_size,
                page.next_token,
            );
            Ok(json_answer(200, request_id, v))
        }
        "ListChangedBlocks" => {
            let second = req.segment(1);
            let (max, start) = paging(req).map_err(refuse)?;
            let first = req.query("firstSnapshotId");
            let token = req.query("pageToken");
            let page =
                ebs.list_changed_blocks(first.as_deref(), second, max, token.as_deref(), start)?;
            let changed: Vec<Value> = page
                .changed
                .iter()
                .map(|(i, a, b)| {
                    let mut c = json!({ "BlockIndex": i });
                    if let Some(a) = a {
                        c["FirstBlockToken"] = json!(a);
                    }
                    if let Some(b) = b {
                        c["SecondBlockToken"] = json!(b);
                    }
                    c
                })
                .collect();
            let v = listing(
                ("ChangedBlocks", changed),
                page.expiry_time,
                page.volume_size,
                page.next_token,
            );
            Ok(json_answer(200, request_id, v))
        }
        "GetSnapshotBlock" => {
            let id = req.segment(1);
            let index = number("the block index", Some(req.segment(3)))
                .map(|i| i.expect("given"))
                .map_err(refuse)?;
            let token = req.query("blockToken").ok_or_else(|| {
                refuse(Error::ebs(
                    EbsCode::ValidationException,
                    "INVALID_BLOCK_TOKEN",
                    "blockToken is required",
                ))
            })?;
            let block = ebs.get_snapshot_block(id, index, &token)?;
            let len = block.data.len().to_string();
            let mut r = respond(Api::Ebs, 200, request_id, block.data);
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            set(&mut r, "x-amz-Data-Length", &len);
            set(&mut r, "x-amz-Checksum", &block.checksum);
            set(&mut r, "x-amz-Checksum-Algorithm", "SHA256");
            Ok(r)
        }
        _ => Err(refuse(bad(
            "no EBS direct API operation has this method and path",
        ))),
    }
}

/// A page of ListSnapshotBlocks or ListChangedBlocks.
fn listing(
    (name, items): (&str, Vec<Value>),
    expiry: SystemTime,
    volume_size: u64,
    next: Option<String>,
) -> Value {
    let mut v = json!({
        name: items,
        "ExpiryTime": epoch(expiry),
        "VolumeSize": volume_size,
        "BlockSize": BLOCK_SIZE,
    });
    if let Some(n) = next {
        v["NextToken"] = json!(n);
    }
    v
}

fn paging(req: &Req) -> Result<(Option<u64>, Option<u64>)> {
    Ok((
        number("maxResults", req.query("maxResults").as_deref())?,
        number(
            "startingBlockIndex",
            req.query("startingBlockIndex").as_deref(),
        )?,
    ))
}

/// StartSnapshot's JSON body.
fn start_request(body: &[u8]) -> Result<StartSnapshotRequest> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Tag {
        key: String,
        #[serde(default)]
        value: String,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields)]
    struct Body {
        volume_size: Option<u64>,
        parent_snapshot_id: Option<String>,
        #[serde(default)]
        tags: Vec<Tag>,
        description: Option<String>,
        client_token: Option<String>,
        encrypted: Option<bool>,
        kms_key_arn: Option<String>,
        timeout: Option<u64>,
    }
    let b: Body = serde_json::from_slice(if body.is_empty() { b"{}" } else { body })
        .map_err(|e| bad(format!("the body is not StartSnapshot's JSON: {e}")))?;
    let mut tags = BTreeMap::new();
    for t in b.tags {
        if tags.insert(t.key, t.value).is_some() {
            return Err(Error::ebs(
                EbsCode::ValidationException,
                "INVALID_TAG",
                "a tag key is given twice",
            ));
        }
    }
    Ok(StartSnapshotRequest {
        volume_size: b.volume_size.ok_or_else(|| {
            Error::ebs(
                EbsCode::ValidationException,
                "INVALID_VOLUME_SIZE",
                "VolumeSize is required",
            )
        })?,
        parent_snapshot_id: b.parent_snapshot_id,
        encrypted: b.encrypted,
        kms_key_arn: b.kms_key_arn,
        timeout: b.timeout,
        tags,
        client_token: b.client_token,
        description: b.description,
    })
}

/// StartSnapshot's answer.
fn started(ebs: &Ebs, r: &SnapshotRecord) -> Value {
    let start = crate::store::parse_time(&r.start_time)
        .map(epoch)
        .unwrap_or(0.0);
    let tags: Vec<Value> = r
        .tags
        .iter()
        .map(|(k, v)| json!({ "Key": k, "Value": v }))
        .collect();
    let mut v = json!({
        "SnapshotId": r.snapshot_id,
        "OwnerId": ebs.kms().home().account_id(),
        "Status": r.state(ebs.kms().home().now()),
        "StartTime": start,
        "VolumeSize": r.volume_size_bytes.div_ceil(1 << 30),
        "BlockSize": BLOCK_SIZE,
        "Description": r.description,
        "Tags": tags,
    });
    if let Some(p) = r
        .pending
        .as_ref()
        .and_then(|p| p.parent_snapshot_id.as_ref())
    {
        v["ParentSnapshotId"] = json!(p);
    }
    if let Some(dk) = &r.lineage.data_key {
        v["KmsKeyArn"] = json!(dk.kms_key_id);
    }
    v
}

/// An error as the EBS direct APIs answer one.
fn error(request_id: &str, e: &Error) -> Answer {
    let (name, reason) = match e {
        Error::Ebs { code, reason, .. } => (code.to_string(), *reason),
        e => (e.aws_name(crate::error::AwsService::Ec2), ""),
    };
    let mut body = json!({ "message": e.wire_message() });
    if !reason.is_empty() {
        body["Reason"] = json!(reason);
    }
    let mut r = json_answer(e.http_status(), request_id, body);
    set(&mut r, "x-amzn-ErrorType", &name);
    r
}
