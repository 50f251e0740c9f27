//! Who is asking, from where: the [`RequestContext`] every front end builds for its caller and
//! hands to the service with each request.
//!
//! The service never guesses a caller. A [`crate::Kms`] or [`crate::ebs::Ebs`] is made for one
//! context and every request it serves is authorized against that context's principal and
//! recorded with its source address, user agent and access key. Nothing about a request lives
//! in thread-local or global state, so a request runs the same on a rayon worker, a tokio task
//! or the thread that parsed it.

use crate::audit::Principal;

/// The caller of a request and how it reached cofre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    principal: Principal,
    source_ip: String,
    user_agent: String,
    access_key_id: Option<String>,
    request_id: Option<String>,
    /// False for a request whose signature was refused: its principal is unknown, and
    /// `principal` is only the account it was sent to.
    authenticated: bool,
    grant_tokens: Vec<String>,
}

impl RequestContext {
    /// A request by `principal` from this machine (the command line).
    pub fn new(principal: Principal) -> Self {
        RequestContext {
            principal,
            source_ip: "127.0.0.1".into(),
            user_agent: concat!("cofre/", env!("CARGO_PKG_VERSION")).into(),
            access_key_id: None,
            request_id: None,
            authenticated: true,
            grant_tokens: Vec::new(),
        }
    }

    /// A request to `account` whose caller could not be established (a refused signature):
    /// it is recorded, with the access key id it claimed, and never authorized.
    pub fn unauthenticated(account: &str) -> Self {
        RequestContext {
            authenticated: false,
            ..Self::account_root(account)
        }
    }

    /// False for [`RequestContext::unauthenticated`].
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// A request by the root of `account` from this machine (cofre's own demo and tools).
    pub fn account_root(account: &str) -> Self {
        Self::new(Principal::root(account))
    }

    /// The address the request came from (CloudTrail's `sourceIPAddress`).
    pub fn with_source_ip(mut self, ip: impl Into<String>) -> Self {
        self.source_ip = ip.into();
        self
    }

    /// The client's `User-Agent`.
    pub fn with_user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }

    /// The access key id the request was signed with.
    pub fn with_access_key_id(mut self, id: impl Into<String>) -> Self {
        self.access_key_id = Some(id.into());
        self
    }

    /// The front end's id for this request (the `x-amzn-RequestId` it answers with); the
    /// first event the request records carries it.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// The request's grant tokens (KMS's `GrantTokens` parameter, at most 10). The operations
    /// that take them (the cryptographic operations, DescribeKey, GetPublicKey, CreateGrant)
    /// check each: a token no grant of this home issued is refused with
    /// InvalidGrantTokenException. In KMS a token makes a new grant effective before the grant
    /// is visible everywhere; cofre's grants take effect at once, so a valid token grants
    /// nothing its grant does not.
    pub fn with_grant_tokens(mut self, tokens: Vec<String>) -> Self {
        self.grant_tokens = tokens;
        self
    }

    /// Who is calling.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Where from.
    pub fn source_ip(&self) -> &str {
        &self.source_ip
    }

    /// With what client.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }

    /// The access key id, when the request was signed with one.
    pub fn access_key_id(&self) -> Option<&str> {
        self.access_key_id.as_deref()
    }

    /// The request's grant tokens (none unless [`RequestContext::with_grant_tokens`]).
    pub fn grant_tokens(&self) -> &[String] {
        &self.grant_tokens
    }

    /// The front end's request id, if it set one.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
}
