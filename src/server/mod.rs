//! `cofre serve`: the AWS KMS API over HTTP, for the SDKs, the AWS CLI and the Encryption SDK.
//!
//! A thin front end over the service: each request is read (body size limited, read timeout),
//! its SigV4 signature checked against the access key it names ([`sigv4`], access keys in the
//! home), and the operation run for the key's principal by [`kms::handle`] on a blocking
//! thread (the service reads and fsyncs files). The credential scope's region picks the
//! keyring region. Answers and errors are KMS's: `{"__type": NAME, "message": …}` with KMS's
//! status. A refused signature changes nothing and is recorded in the region's trail.
//!
//! The server is tokio + hyper (HTTP/1.1, keep-alive), optionally behind rustls. It listens on
//! loopback unless told otherwise; a non-loopback address without TLS needs
//! `--allow-remote-http`. SIGINT or SIGTERM stops accepting, lets the requests in flight
//! finish (their audit records are written before they are answered), and exits.

pub mod client;
pub mod ebs;
pub mod ec2;
pub mod kms;
pub mod sigv4;

use crate::audit::Principal;
use crate::error::{AwsService, Ec2Code, Error, KmsCode, Result};
use crate::keyring::{AccessKey, FileStamp, Home, Region};
use crate::kms::Call;
use crate::{Kms, RequestContext};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where `cofre serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7770";

/// The largest request body taken (KMS's largest, a key policy, is 32 KiB).
pub const MAX_BODY: usize = 1 << 20;

/// How long a client may take to send a request's headers, or its body.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How `cofre serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// PEM certificate chain and private key, for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Plain HTTP on an address other machines can reach.
    pub allow_remote_http: bool,
    /// Worker threads for the async runtime (default: one per core).
    pub threads: Option<usize>,
}

/// Access keys as last read, with what their file looked like then: a request costs one
/// `stat` unless the key changed (another process may delete or make keys at any time).
#[derive(Default)]
struct KeyCache(Mutex<HashMap<String, (FileStamp, Arc<AccessKey>)>>);

impl KeyCache {
    fn get(&self, home: &Home, id: &str) -> Result<Option<Arc<AccessKey>>> {
        if !crate::keyring::is_access_key_id(id) {
            return Ok(None);
        }
        let path = home.root().join("access-keys").join(format!("{id}.json"));
        let Some(stamp) = FileStamp::of(&path).map_err(|e| Error::io("reading", &path, e))? else {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
            return Ok(None);
        };
        if let Some((s, k)) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            if *s == stamp {
                return Ok(Some(k.clone()));
            }
        }
        let Some(k) = home.access_key(id)? else {
            return Ok(None);
        };
        let k = Arc::new(k);
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), (stamp, k.clone()));
        Ok(Some(k))
    }
}

/// What every connection shares.
struct Shared {
    home: Arc<Home>,
    keys: KeyCache,
}

/// Makes an access key for the account root if the home has none, and says how to use it.
/// Returns the lines to print (the secret is in them, shown this once).
pub fn first_start_key(home: &Home, endpoint: &str) -> Result<Option<String>> {
    if !home.access_keys()?.is_empty() {
        return Ok(None);
    }
    let k = home.create_access_key(&Principal::root(home.account_id()))?;
    Ok(Some(format!(
        "cofre serve: no access key yet, so one was made for {} (its secret is shown this once):\n\
         export AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_ENDPOINT_URL_KMS={endpoint} AWS_REGION={region} AWS_DEFAULT_REGION={region}",
        k.info.principal.arn(),
        k.info.access_key_id,
        k.secret_access_key.as_str(),
        region = crate::keyring::DEFAULT_REGION,
    )))
}

/// Stops a running server from another thread, as SIGTERM does (the demo, in-process use).
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<tokio::sync::Notify>);

impl Shutdown {
    /// Asks the server to stop: it stops accepting, finishes what is in flight, and returns.
    pub fn trigger(&self) {
        self.0.notify_one();
    }
}

/// Runs the server until SIGINT or SIGTERM. `ready` is called with the bound address once
/// connections are accepted (port 0 picks a free one).
pub fn serve(home: Arc<Home>, opts: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    serve_until(home, opts, Shutdown::default(), ready)
}

/// [`serve`] that also stops when `shutdown` is triggered.
pub fn serve_until(
    home: Arc<Home>,
    opts: ServeOptions,
    shutdown: Shutdown,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    if !opts.listen.ip().is_loopback() && opts.tls.is_none() && !opts.allow_remote_http {
        return Err(Error::usage(format!(
            "{} can be reached from other machines: serve it with --tls-cert and --tls-key, or pass --allow-remote-http to send keys and plaintexts unencrypted over the network",
            opts.listen
        )));
    }
    let tls = opts
        .tls
        .as_ref()
        .map(|(c, k)| tls_acceptor(c, k))
        .transpose()?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = opts.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting", std::path::Path::new("the async runtime"), e))?;
    let shared = Arc::new(Shared {
        home,
        keys: KeyCache::default(),
    });
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| {
                Error::io(
                    "listening on",
                    std::path::Path::new(&opts.listen.to_string()),
                    e,
                )
            })?;
        let addr = listener.local_addr().map_err(|e| {
            Error::io(
                "listening on",
                std::path::Path::new(&opts.listen.to_string()),
                e,
            )
        })?;
        ready(addr);
        accept_loop(listener, tls, shared, shutdown).await;
        Ok(())
    })
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    shutdown: Shutdown,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async move {
        match sigterm.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(terminated);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors and the like: wait a moment rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = &mut terminated => break,
            _ = shutdown.0.notified() => break,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let service = hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, std::convert::Infallible>(answer(shared, peer, req).await) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(READ_TIMEOUT)
            .keep_alive(true);
        match &tls {
            None => {
                let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(conn);
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(READ_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let conn =
                        builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, p: &std::path::Path, e: String| {
        Error::usage(format!("{what} {}: {e}", p.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("cannot read the certificate", cert, e.to_string()))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad("cannot read the certificate", cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in", cert, "give a PEM file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad("cannot read the private key", key, e.to_string()))?;
    #[cfg(feature = "aws-lc")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "aws-lc"))]
    let provider = rustls::crypto::ring::default_provider();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::usage(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::usage(format!(
                "TLS: the certificate and key do not make a server identity: {e}"
            ))
        })?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// An answer of `api`: its content type, and the request id where its clients look for it.
pub(crate) fn respond(
    api: Api,
    status: u16,
    request_id: &str,
    body: kms::Body,
) -> Response<Full<ZeroizingBuf>> {
    let mut r = Response::new(Full::new(ZeroizingBuf::new(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    let content_type = match api {
        Api::Kms => "application/x-amz-json-1.1",
        Api::Ec2 => "text/xml;charset=UTF-8",
        Api::Ebs => "application/json",
    };
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    r
}

/// An error answer, as `api` writes one: KMS's `{"__type", "message"}`, the EBS direct APIs'
/// `{"message"}` with `x-amzn-ErrorType`, EC2's `<Response><Errors>` XML.
pub(crate) fn respond_error(
    api: Api,
    request_id: &str,
    name: &str,
    status: u16,
    message: &str,
) -> Response<Full<ZeroizingBuf>> {
    let body = match api {
        Api::Kms => serde_json::to_vec(&serde_json::json!({ "__type": name, "message": message })),
        Api::Ebs => serde_json::to_vec(&serde_json::json!({ "message": message })),
        Api::Ec2 => Ok(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code>\
             <Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
            xml_escape(name),
            xml_escape(message),
            xml_escape(request_id)
        )
        .into_bytes()),
    }
    .expect("serializable");
    let mut r = respond(api, status, request_id, zeroize::Zeroizing::new(body));
    if api != Api::Ec2 {
        if let Ok(v) = hyper::header::HeaderValue::from_str(name) {
            r.headers_mut().insert("x-amzn-errortype", v);
        }
    }
    r
}

pub(crate) fn respond_err(api: Api, request_id: &str, e: &Error) -> Response<Full<ZeroizingBuf>> {
    respond_error(
        api,
        request_id,
        &e.aws_name(api.errors()),
        e.http_status(),
        &e.wire_message(),
    )
}

/// `s` as XML character data or an attribute value.
pub(crate) fn xml_escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['<', '>', '&', '"', '\'']) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out.into()
}

async fn answer(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<ZeroizingBuf>> {
    let request_id = uuid::Builder::from_random_bytes(crate::crypto::random_array())
        .into_uuid()
        .to_string();
    let (parts, body) = req.into_parts();
    let api = Api::of(&parts);
    let refuse = |kms_name: &str, ec2_name: &str, status: u16, message: &str| {
        let name = if api == Api::Ec2 { ec2_name } else { kms_name };
        respond_error(api, &request_id, name, status, message)
    };
    let body =
        match tokio::time::timeout(READ_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e))
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return refuse(
                    "ValidationException",
                    "InvalidParameterValue",
                    413,
                    &format!("the request body is over {MAX_BODY} bytes"),
                )
            }
            Ok(Err(_)) => {
                return refuse(
                    "ValidationException",
                    "InvalidParameterValue",
                    400,
                    "the request body could not be read",
                )
            }
            Err(_) => {
                return refuse(
                    "RequestTimeoutException",
                    "RequestExpired",
                    408,
                    "the request body took too long to arrive",
                )
            }
        };
    let rid = request_id.clone();
    // The service reads and writes files: run it off the async threads.
    let done =
        tokio::task::spawn_blocking(move || handle(&shared, peer, api, &parts, &body, &rid)).await;
    match done {
        Ok(r) => r,
        Err(_) => refuse(
            "KMSInternalException",
            "InternalError",
            500,
            "the request failed inside cofre",
        ),
    }
}

/// The API a request speaks, told by its shape: KMS (JSON 1.1 with `X-Amz-Target:
/// TrentService.<Operation>`), the EBS direct APIs (REST-JSON under `/snapshots`), or EC2
/// (Query: a form-encoded `POST /` with `Action=<Operation>`). Each answers, errors included, in
/// its own format, and each takes requests signed for its own SigV4 service name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Kms,
    Ec2,
    Ebs,
}

impl Api {
    fn of(parts: &hyper::http::request::Parts) -> Api {
        let form = parts
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if parts.headers.contains_key("x-amz-target") {
            Api::Kms
        } else if parts.uri.path().starts_with("/snapshots") {
            Api::Ebs
        } else if form && parts.method == hyper::Method::POST {
            Api::Ec2
        } else {
            Api::Kms
        }
    }

    /// The service name its requests are signed for.
    pub fn signing_name(self) -> &'static str {
        match self {
            Api::Kms => "kms",
            Api::Ec2 => "ec2",
            Api::Ebs => "ebs",
        }
    }

    /// Whose error names it answers with.
    fn errors(self) -> AwsService {
        match self {
            Api::Kms => AwsService::Kms,
            Api::Ec2 | Api::Ebs => AwsService::Ec2,
        }
    }

    /// The operation a request names, as sent (read before it is authenticated, so that a
    /// refusal can say what was refused).
    fn operation(self, parts: &hyper::http::request::Parts, body: &[u8]) -> String {
        match self {
            Api::Kms => parts
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .and_then(|t| t.strip_prefix("TrentService."))
                .unwrap_or("")
                .to_owned(),
            Api::Ec2 => form_urlencoded::parse(body)
                .find(|(k, _)| k == "Action")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default(),
            Api::Ebs => ebs_operation(&parts.method, parts.uri.path())
                .unwrap_or("")
                .to_owned(),
        }
    }

    /// The audit record of a refused request for `operation` (named as the API names it, else
    /// `UnknownOperation`: a client's string never goes into the trail as an event name).
    fn refusal(self, operation: &str) -> Call {
        let known = |names: &[&'static str]| {
            names
                .iter()
                .find(|o| **o == operation)
                .copied()
                .unwrap_or("UnknownOperation")
        };
        match self {
            Api::Kms => Call::new(known(crate::api::kms_requests::OPERATIONS), false),
            Api::Ec2 => Call::ec2(known(ec2::OPERATIONS), false),
            Api::Ebs => Call::ebs(known(EBS_OPERATIONS), false),
        }
    }
}

/// The EBS direct APIs' operations.
pub(crate) const EBS_OPERATIONS: &[&str] = &[
    "StartSnapshot",
    "PutSnapshotBlock",
    "CompleteSnapshot",
    "ListSnapshotBlocks",
    "ListChangedBlocks",
    "GetSnapshotBlock",
];

/// The EBS direct API operation a method and path name (the paths of the `ebs` 2019-11-02
/// model).
pub fn ebs_operation(method: &hyper::Method, path: &str) -> Option<&'static str> {
    use hyper::Method;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    Some(match (method, parts.as_slice()) {
        (&Method::POST, ["snapshots"]) => "StartSnapshot",
        (&Method::POST, ["snapshots", "completion", _]) => "CompleteSnapshot",
        (&Method::PUT, ["snapshots", _, "blocks", _]) => "PutSnapshotBlock",
        (&Method::GET, ["snapshots", _, "blocks", _]) => "GetSnapshotBlock",
        (&Method::GET, ["snapshots", _, "blocks"]) => "ListSnapshotBlocks",
        (&Method::GET, ["snapshots", _, "changedblocks"]) => "ListChangedBlocks",
        _ => return None,
    })
}

/// Checks the request's signature and runs it.
fn handle(
    shared: &Shared,
    peer: SocketAddr,
    api: Api,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    request_id: &str,
) -> Response<Full<ZeroizingBuf>> {
    let operation = api.operation(parts, body);
    if let Err(e) = well_formed(api, parts, &operation) {
        return respond_err(api, request_id, &e);
    }
    let user_agent = parts
        .headers
        .get(hyper::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let headers: Vec<(&str, &[u8])> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    let signed = sigv4::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        body,
    };
    let home = &shared.home;
    let authenticated = authenticate(shared, api, &signed);
    let (key, region) = match authenticated {
        Ok(ok) => ok,
        Err((e, scope)) => {
            // The refusal is recorded (in the region the request named, if the home has it:
            // an unauthenticated client makes no new region folders), and nothing else is done.
            let region = scope
                .as_ref()
                .and_then(|a| Region::new(&a.region).ok())
                .filter(|r| home.region_dir(r).exists())
                .unwrap_or_else(|| Region::new(crate::keyring::DEFAULT_REGION).expect("valid"));
            let mut ctx = RequestContext::unauthenticated(home.account_id())
                .with_source_ip(peer.ip().to_string())
                .with_user_agent(user_agent)
                .with_request_id(request_id);
            if let Some(a) = &scope {
                ctx = ctx.with_access_key_id(&a.access_key_id);
            }
            let kms = Kms::new(home.clone(), region, ctx);
            let e = auth_error(api, e);
            if let Err(trail) = kms.record_refusal(api.refusal(&operation), &e) {
                return respond_err(api, request_id, &trail);
            }
            return respond_err(api, request_id, &e);
        }
    };
    let mut ctx = RequestContext::new(key.info.principal.clone())
        .with_source_ip(peer.ip().to_string())
        .with_user_agent(user_agent)
        .with_access_key_id(&key.info.access_key_id)
        .with_request_id(request_id);
    if api == Api::Kms {
        ctx = ctx.with_grant_tokens(kms::grant_tokens(body));
    }
    let kms = Kms::new(home.clone(), region, ctx);
    match api {
        Api::Kms => match kms::handle(&kms, &operation, body) {
            Ok(b) => respond(api, 200, request_id, b),
            Err(e) => respond_err(api, request_id, &e),
        },
        Api::Ec2 => ec2::answer(&kms, &operation, body, request_id),
        Api::Ebs => ebs::handle(&kms, parts, body, request_id),
    }
}

/// Refuses, before its signature is checked, a request no operation of its API could take.
fn well_formed(api: Api, parts: &hyper::http::request::Parts, operation: &str) -> Result<()> {
    match api {
        Api::Kms if operation.is_empty() => Err(Error::kms(
            KmsCode::UnknownOperationException,
            "send KMS requests as POST / with X-Amz-Target: TrentService.<Operation>",
        )),
        Api::Kms if parts.method != hyper::Method::POST || parts.uri.path() != "/" => Err(
            Error::kms(KmsCode::UnknownOperationException, "KMS takes POST / only"),
        ),
        Api::Ec2 if parts.uri.path() != "/" => Err(Error::ec2(
            Ec2Code::InvalidAction,
            "EC2 takes POST / with a form-encoded Action",
        )),
        Api::Ec2 if operation.is_empty() => Err(Error::ec2(
            Ec2Code::MissingAction,
            "the request names no Action",
        )),
        Api::Ebs if operation.is_empty() => Err(Error::kms(
            KmsCode::UnknownOperationException,
            "no EBS direct API operation has this method and path",
        )),
        _ => Ok(()),
    }
}

/// Why a request's signature was refused, and the scope it claimed if it could be read.
type Refused = (sigv4::AuthError, Option<Box<sigv4::Authorization>>);

/// The access key and region of a correctly signed request; else why not, with the scope the
/// request claimed if it could be read.
fn authenticate(
    shared: &Shared,
    api: Api,
    req: &sigv4::Request,
) -> std::result::Result<(Arc<AccessKey>, Region), Refused> {
    use sigv4::AuthError;
    let auth = sigv4::parse(req).map_err(|e| (e, None))?;
    let fail = |e: AuthError| (e, Some(Box::new(auth.clone())));
    if auth.service != api.signing_name() {
        return Err(fail(AuthError::Invalid(format!(
            "Credential should be scoped to correct service: '{}', not '{}'",
            api.signing_name(),
            crate::cli::printable(&auth.service)
        ))));
    }
    let region = Region::new(&auth.region).map_err(|_| {
        fail(AuthError::Invalid(
            "Credential should be scoped to a valid region".into(),
        ))
    })?;
    let key = match shared.keys.get(&shared.home, &auth.access_key_id) {
        Ok(Some(k)) => k,
        Ok(None) => return Err(fail(AuthError::UnknownKey)),
        Err(e) => return Err(fail(AuthError::Invalid(e.to_string()))),
    };
    sigv4::verify(
        shared.home.backend(),
        req,
        &auth,
        key.secret(),
        shared.home.now(),
    )
    .map_err(fail)?;
    Ok((key, region))
}

/// A refused signature as `api` names it: KMS's and the EBS direct APIs' exceptions, EC2's
/// codes.
fn auth_error(api: Api, e: sigv4::AuthError) -> Error {
    use sigv4::AuthError;
    if api == Api::Ec2 {
        let code = match e {
            AuthError::Missing => Ec2Code::MissingAuthenticationToken,
            AuthError::Incomplete(_) => Ec2Code::IncompleteSignature,
            AuthError::UnknownKey | AuthError::SessionToken | AuthError::Invalid(_) => {
                Ec2Code::AuthFailure
            }
        };
        return Error::ec2(code, e.message());
    }
    let code = match e {
        AuthError::Missing => KmsCode::MissingAuthenticationTokenException,
        AuthError::Incomplete(_) => KmsCode::IncompleteSignatureException,
        AuthError::UnknownKey | AuthError::SessionToken => KmsCode::UnrecognizedClientException,
        AuthError::Invalid(_) => KmsCode::InvalidSignatureException,
    };
    Error::kms(code, e.message())
}

/// A response body that is zeroized when hyper is done with it.
pub struct ZeroizingBuf {
    bytes: kms::Body,
    at: usize,
}

impl ZeroizingBuf {
    fn new(bytes: kms::Body) -> Self {
        ZeroizingBuf { bytes, at: 0 }
    }
}

impl bytes::Buf for ZeroizingBuf {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn chunk(&self) -> &[u8] {
        &self.bytes[self.at..]
    }

    fn advance(&mut self, n: usize) {
        assert!(n <= self.remaining(), "advanced past the end of the body");
        self.at += n;
    }
}
