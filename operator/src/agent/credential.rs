//! The plugin's API credential (issue 11, "agent down is not node down").
//!
//! The plugin's kubeconfig names `multus.d/token`. In the managed mode (a
//! long-running agent talking to the API server, with the plugin's
//! ServiceAccount named by the controller) that file holds a token of the
//! plugin's own ServiceAccount `multus-plugin-<mc>`, which the agent
//! requests with the TokenRequest API: no bound object, so the token
//! outlives the agent pod, and the default audience (the API server's).
//! The agent refreshes it at half its life, so when the agent is down pods
//! keep starting on its node until the token expires.
//!
//! Where the API server offers it (Kubernetes 1.33+, earlier behind the
//! `ServiceAccountTokenNodeBinding` gate), the token is bound to the agent's
//! Node instead: it still outlives the agent pod, dies with the Node, and
//! carries the node's name, which the chart's admission policy compares
//! with the pods the plugin writes. The agent asks for a node-bound token
//! and, when the server refuses the binding (400/422, or 404 for a Node it
//! does not know), for an unbound one;
//! it asks for the binding again every [`BINDING_RETRY`] (after a server
//! upgrade), and replaces an unbound token by a bound one as soon as the
//! server allows it.
//!
//! While no valid plugin token exists (first start before the controller's
//! RBAC is in place, an upgrade from a version without it, API errors), the
//! file holds a copy of the agent's own projected token, as before, and the
//! agent keeps requesting with back-off; the node state says so.
//!
//! [`Keeper`] makes every decision as a pure function of its inputs and
//! the time (unit-tested without I/O); [`TokenApi`] makes the two API calls
//! (request a token, check that a token still authenticates); the agent's
//! loop does the file writes, so the token file has a single writer.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use multus_config::crd::{CredentialSource, PluginCredential};
use serde_json::Value;

/// How long one API request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// First delay after a failed request.
pub const RETRY_MIN: Duration = Duration::from_secs(10);
/// Longest delay between failed requests.
pub const RETRY_MAX: Duration = Duration::from_secs(300);
/// How often the agent checks that the plugin's token still authenticates
/// (it stops when its ServiceAccount is deleted, e.g. to revoke tokens).
pub const VERIFY_INTERVAL: Duration = Duration::from_secs(600);
/// A refresh is never scheduled sooner than this after a token arrived
/// (a token that would need it is refused as a clock problem instead).
pub const MIN_REFRESH: Duration = Duration::from_secs(60);
/// After the API server refused to bind a token to the Node, how long the
/// agent asks for unbound tokens before it tries the binding again.
pub const BINDING_RETRY: Duration = Duration::from_secs(6 * 3600);
/// A token that lives longer than the configured lifetime by more than
/// this was requested with an older, longer setting and is not reused.
pub const LIFETIME_SLACK: Duration = Duration::from_secs(60);

/// What the agent needs to manage the plugin's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSettings {
    /// Namespace of the plugin's ServiceAccount (the agent's own).
    pub namespace: String,
    /// The plugin's ServiceAccount, `multus-plugin-<mc>`.
    pub service_account: String,
    /// The lifetime to request (`expirationSeconds`).
    pub lifetime: Duration,
    /// The Node to bind the token to (the agent's), when known.
    pub node: Option<String>,
}

impl CredentialSettings {
    /// The `sub` claim of the plugin's tokens.
    pub fn subject(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        )
    }
}

/// Why a token's claims could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// Not three dot-separated parts.
    #[error("not a JWT (header.payload.signature)")]
    NotJwt,
    /// The payload is not base64url.
    #[error("the JWT payload is not base64url")]
    Base64,
    /// The payload is not a JSON object.
    #[error("the JWT payload is not a JSON object")]
    Json,
}

/// The claims of a service-account token the agent looks at. They are
/// decoded, not verified: the API server verifies tokens, the agent only
/// decides whether one is worth keeping.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claims {
    /// `sub`: `system:serviceaccount:<namespace>:<name>`.
    pub subject: Option<String>,
    /// `iat`.
    pub issued_at: Option<Timestamp>,
    /// `exp`.
    pub expires_at: Option<Timestamp>,
    /// `kubernetes.io.node.name`: the Node the token is bound to, or (for a
    /// pod-bound token) the node of its pod.
    pub node: Option<String>,
    /// `kubernetes.io.pod.name`: set for pod-bound tokens.
    pub pod: Option<String>,
}

impl Claims {
    /// The ServiceAccount name of a `system:serviceaccount:<ns>:<name>`
    /// subject.
    pub fn service_account(&self) -> Option<&str> {
        let rest = self
            .subject
            .as_deref()?
            .strip_prefix("system:serviceaccount:")?;
        rest.split_once(':').map(|(_, name)| name)
    }
}

/// Decodes base64url (with or without padding; the standard alphabet's
/// `+` and `/` are accepted too).
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).unwrap_or_default());
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The claims of a JWT (surrounding whitespace ignored).
pub fn claims(token: &[u8]) -> Result<Claims, ClaimsError> {
    let text = std::str::from_utf8(token).map_err(|_| ClaimsError::NotJwt)?;
    let parts: Vec<&str> = text.trim().split('.').collect();
    if parts.len() != 3 {
        return Err(ClaimsError::NotJwt);
    }
    let payload = base64url_decode(parts[1]).ok_or(ClaimsError::Base64)?;
    let value: Value = serde_json::from_slice(&payload).map_err(|_| ClaimsError::Json)?;
    if !value.is_object() {
        return Err(ClaimsError::Json);
    }
    let time = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_i64)
            .and_then(|s| Timestamp::from_second(s).ok())
    };
    let bound = |kind: &str| {
        value
            .pointer(&format!("/kubernetes.io/{kind}/name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Ok(Claims {
        subject: value.get("sub").and_then(Value::as_str).map(str::to_owned),
        issued_at: time("iat"),
        expires_at: time("exp"),
        node: bound("node"),
        pod: bound("pod"),
    })
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

fn later(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(signed(d)).unwrap_or(Timestamp::MAX)
}

/// A plugin token in use.
#[derive(Clone, PartialEq, Eq)]
pub struct Held {
    /// The token (a secret: never logged, not in `Debug`).
    pub token: Vec<u8>,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
    /// When to request the next one: half its life.
    pub refresh_at: Timestamp,
    /// The Node it is bound to; `None`: bound to no object.
    pub bound_node: Option<String>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .field("refresh_at", &self.refresh_at)
            .field("bound_node", &self.bound_node)
            .finish_non_exhaustive()
    }
}

/// Half-way between `issued_at` and `expires_at`.
pub fn half_life(issued_at: Timestamp, expires_at: Timestamp) -> Timestamp {
    let life = expires_at.duration_since(issued_at);
    issued_at.checked_add(life / 2).unwrap_or(expires_at)
}

/// Whether the token found in the token file at start can be kept: a token
/// of the plugin's ServiceAccount, not past half its life, and not longer
/// lived than the configured lifetime (a shorter one, as the API server
/// may issue, is fine). `Err` says why not.
pub fn reusable(
    token: &[u8],
    settings: &CredentialSettings,
    now: Timestamp,
) -> Result<Held, String> {
    let claims = claims(token).map_err(|e| e.to_string())?;
    let subject = settings.subject();
    if claims.subject.as_deref() != Some(subject.as_str()) {
        return Err(format!(
            "it belongs to {}, not to {subject}",
            claims.subject.as_deref().unwrap_or("no subject")
        ));
    }
    let (Some(issued_at), Some(expires_at)) = (claims.issued_at, claims.expires_at) else {
        return Err("it has no iat or exp claim".to_owned());
    };
    if expires_at <= now {
        return Err(format!("it expired at {expires_at}"));
    }
    let refresh_at = half_life(issued_at, expires_at);
    if refresh_at <= now {
        return Err(format!("it is past half its life ({refresh_at})"));
    }
    if expires_at.duration_since(issued_at) > signed(settings.lifetime + LIFETIME_SLACK) {
        return Err(format!(
            "it lives longer than the configured {}s",
            settings.lifetime.as_secs()
        ));
    }
    if claims.pod.is_some() {
        return Err("it is bound to a pod".to_owned());
    }
    Ok(Held {
        token: token.to_vec(),
        issued_at,
        expires_at,
        refresh_at,
        bound_node: claims.node,
    })
}

/// A token the API server issued.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The token.
    pub token: Vec<u8>,
    /// `status.expirationTimestamp`.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Why an API call about the plugin's token failed.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The API server refused or could not be reached.
    #[error("cannot request a token for ServiceAccount {namespace}/{name}: {source}")]
    Request {
        /// Namespace of the ServiceAccount.
        namespace: String,
        /// Its name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The API server answered without a token.
    #[error("the TokenRequest for ServiceAccount {namespace}/{name} came back without a token")]
    NoToken {
        /// Namespace of the ServiceAccount.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The API server refused to bind a token to the Node (it does not
    /// offer node-bound tokens: before Kubernetes 1.33 without the
    /// `ServiceAccountTokenNodeBinding` gate), or the Node does not exist.
    #[error(
        "the API server does not bind the token of ServiceAccount {namespace}/{name} to Node \
         {node}: {source}"
    )]
    NodeBindingRefused {
        /// Namespace of the ServiceAccount.
        namespace: String,
        /// Its name.
        name: String,
        /// The Node.
        node: String,
        /// The server's answer.
        #[source]
        source: kube::Error,
    },
    /// A token that would expire before it could be refreshed.
    #[error(
        "the API server issued a token that expires at {expires_at}, too soon by this node's \
         clock ({now}); is the node's clock right?"
    )]
    TooShort {
        /// Its expiry.
        expires_at: Timestamp,
        /// This node's time.
        now: Timestamp,
    },
    /// Checking the token failed (not a verdict on the token).
    #[error("cannot check the plugin's token: {0}")]
    Verify(#[source] kube::Error),
    /// The request did not finish in time.
    #[error("{what}: no answer within {REQUEST_TIMEOUT:?}")]
    Timeout {
        /// What was attempted.
        what: &'static str,
    },
}

/// The API calls of the credential keeper.
pub trait TokenApi: Send + Sync {
    /// Requests a new token for the plugin's ServiceAccount, bound to the
    /// Node `node` when given (else to no object).
    fn request(
        &self,
        node: Option<&str>,
    ) -> impl Future<Output = Result<Issued, CredentialError>> + Send;
    /// Whether `token` still authenticates (`Ok(false)`: the API server
    /// answers 401, e.g. because its ServiceAccount was deleted).
    fn authenticates(
        &self,
        token: &[u8],
    ) -> impl Future<Output = Result<bool, CredentialError>> + Send;
}

/// Builds a client that authenticates with a given bearer token.
pub type ClientWithToken = Box<dyn Fn(&str) -> Result<kube::Client, kube::Error> + Send + Sync>;

/// [`TokenApi`] over the API server: the agent's client requests, a client
/// with the plugin's token checks.
pub struct KubeTokenApi {
    client: kube::Client,
    with_token: ClientWithToken,
    settings: CredentialSettings,
}

impl std::fmt::Debug for KubeTokenApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeTokenApi")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl KubeTokenApi {
    /// Requests with `client` (the agent's identity), checks tokens with
    /// clients from `with_token`.
    pub fn new(
        client: kube::Client,
        with_token: ClientWithToken,
        settings: CredentialSettings,
    ) -> Self {
        Self {
            client,
            with_token,
            settings,
        }
    }

    /// `with_token` for an in-cluster `config`: the same server and CA,
    /// the given token.
    pub fn token_clients(config: kube::Config) -> ClientWithToken {
        Box::new(move |token: &str| {
            let mut config = config.clone();
            config.auth_info = serde_json::from_value(serde_json::json!({ "token": token }))
                .map_err(kube::Error::SerdeError)?;
            kube::Client::try_from(config)
        })
    }

    /// The TokenRequest the agent sends: the configured lifetime, the
    /// default audience (the API server's), bound to the Node `node` when
    /// given (the server fills in its UID), else to no object.
    pub fn token_request(settings: &CredentialSettings, node: Option<&str>) -> TokenRequest {
        TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(),
                bound_object_ref: node.map(|name| BoundObjectReference {
                    api_version: Some("v1".to_owned()),
                    kind: Some("Node".to_owned()),
                    name: Some(name.to_owned()),
                    uid: None,
                }),
                expiration_seconds: Some(
                    i64::try_from(settings.lifetime.as_secs()).unwrap_or(i64::MAX),
                ),
            },
            ..TokenRequest::default()
        }
    }
}

async fn bounded<T>(
    what: &'static str,
    call: impl Future<Output = Result<T, CredentialError>>,
) -> Result<T, CredentialError> {
    tokio::time::timeout(REQUEST_TIMEOUT, call)
        .await
        .unwrap_or(Err(CredentialError::Timeout { what }))
}

impl TokenApi for KubeTokenApi {
    async fn request(&self, node: Option<&str>) -> Result<Issued, CredentialError> {
        let s = &self.settings;
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &s.namespace);
        let body = Self::token_request(s, node);
        bounded("request the plugin's token", async {
            let answer = api
                .create_token_request(&s.service_account, &PostParams::default(), &body)
                .await
                .map_err(|source| match (node, &source) {
                    // The server's verdict on the binding itself: it does
                    // not offer node-bound tokens (400), finds the
                    // reference invalid (422) or the Node missing (404).
                    (Some(node), kube::Error::Api(status))
                        if matches!(status.code, 400 | 404 | 422) =>
                    {
                        CredentialError::NodeBindingRefused {
                            namespace: s.namespace.clone(),
                            name: s.service_account.clone(),
                            node: node.to_owned(),
                            source,
                        }
                    }
                    _ => CredentialError::Request {
                        namespace: s.namespace.clone(),
                        name: s.service_account.clone(),
                        source,
                    },
                })?;
            let status = answer
                .status
                .filter(|st| !st.token.is_empty())
                .ok_or_else(|| CredentialError::NoToken {
                    namespace: s.namespace.clone(),
                    name: s.service_account.clone(),
                })?;
            Ok(Issued {
                token: status.token.into_bytes(),
                expires_at: status.expiration_timestamp.0,
            })
        })
        .await
    }

    async fn authenticates(&self, token: &[u8]) -> Result<bool, CredentialError> {
        let token = String::from_utf8_lossy(token).trim().to_owned();
        let client = (self.with_token)(&token).map_err(CredentialError::Verify)?;
        bounded("check the plugin's token", async {
            // Any authenticated user may read the version; an invalid token
            // gets 401 even here.
            match client.apiserver_version().await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 401 => Ok(false),
                Err(e) => Err(CredentialError::Verify(e)),
            }
        })
        .await
    }
}

/// What the keeper wants done now.
#[derive(Clone, PartialEq, Eq)]
pub enum Task {
    /// Request a new token, bound to this Node when given.
    Request {
        /// The Node to bind it to; `None`: no bound object.
        node: Option<String>,
    },
    /// Check that the held token still authenticates.
    Verify(Vec<u8>),
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Request { node: Some(_) } => "Request(node-bound)",
            Self::Request { node: None } => "Request(unbound)",
            Self::Verify(_) => "Verify",
        })
    }
}

/// What came of a [`Task`].
#[derive(Debug)]
pub enum Outcome {
    /// The answer to [`Task::Request`].
    Requested(Result<Issued, CredentialError>),
    /// The answer to [`Task::Verify`].
    Verified(Result<bool, CredentialError>),
}

impl Task {
    /// Runs the task against `api`.
    pub async fn run(self, api: &impl TokenApi) -> Outcome {
        match self {
            Self::Request { node } => Outcome::Requested(api.request(node.as_deref()).await),
            Self::Verify(token) => Outcome::Verified(api.authenticates(&token).await),
        }
    }
}

/// The delay after `failures` failed requests in a row: 10 s doubling to
/// 5 min.
pub fn retry_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    RETRY_MIN.saturating_mul(1u32 << exponent).min(RETRY_MAX)
}

/// What a keeper event changed, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing the token file depends on.
    None,
    /// A new plugin token is held (write it).
    NewToken,
    /// The held token was dropped (it no longer authenticates); the
    /// fallback applies until a new one arrives.
    Dropped,
}

/// What the agent knows of binding tokens to its Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeBinding {
    /// Not asked yet (or no node name is known).
    Untried,
    /// The server issued a node-bound token.
    Offered,
    /// The server refused the binding; unbound tokens until `retry_at`.
    Refused {
        /// The server's answer.
        message: String,
        /// When to ask for the binding again.
        retry_at: Timestamp,
    },
}

/// The plugin's token and every decision about it.
#[derive(Debug, Clone)]
pub struct Keeper {
    settings: CredentialSettings,
    held: Option<Held>,
    binding: NodeBinding,
    failures: u32,
    retry_at: Option<Timestamp>,
    verify_at: Option<Timestamp>,
    last_error: Option<String>,
    source: Option<(CredentialSource, Timestamp)>,
}

impl Keeper {
    /// A keeper holding nothing yet (a request is due at once).
    pub fn new(settings: CredentialSettings) -> Self {
        Self {
            settings,
            held: None,
            binding: NodeBinding::Untried,
            failures: 0,
            retry_at: None,
            verify_at: None,
            last_error: None,
            source: None,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &CredentialSettings {
        &self.settings
    }

    /// Considers the token found in the token file at start; keeps it when
    /// [`reusable`] (then checks at once that it still authenticates), and
    /// returns why not otherwise.
    pub fn adopt(&mut self, existing: Option<&[u8]>, now: Timestamp) -> Result<(), String> {
        let token = existing.ok_or_else(|| "there is no token file".to_owned())?;
        let held = reusable(token, &self.settings, now)?;
        self.held = Some(held);
        self.verify_at = Some(now);
        Ok(())
    }

    /// The plugin token to use at `now`: the held one while it has not
    /// expired. `None` means the fallback.
    pub fn token(&self, now: Timestamp) -> Option<&Held> {
        self.held.as_ref().filter(|h| h.expires_at > now)
    }

    /// Where the plugin's token comes from at `now`.
    pub fn source(&self, now: Timestamp) -> CredentialSource {
        if self.token(now).is_some() {
            CredentialSource::TokenRequest
        } else {
            CredentialSource::AgentToken
        }
    }

    /// Records the source in use at `now` (so `since` can be reported);
    /// returns the previous source when it changed.
    pub fn observe(&mut self, now: Timestamp) -> Option<Option<CredentialSource>> {
        let source = self.source(now);
        match self.source {
            Some((previous, _)) if previous == source => None,
            previous => {
                self.source = Some((source, now));
                Some(previous.map(|(s, _)| s))
            }
        }
    }

    /// A token request as due at `now` (bound to the Node unless the
    /// server refused that lately).
    pub fn request_task(&self, now: Timestamp) -> Task {
        Task::Request {
            node: self.bind_to(now),
        }
    }

    /// What the agent knows of node-bound tokens.
    pub fn binding(&self) -> &NodeBinding {
        &self.binding
    }

    /// The Node the next token should be bound to at `now`: the agent's,
    /// unless the server refused the binding less than
    /// [`BINDING_RETRY`] ago.
    fn bind_to(&self, now: Timestamp) -> Option<String> {
        match &self.binding {
            NodeBinding::Refused { retry_at, .. } if *retry_at > now => None,
            _ => self.settings.node.clone(),
        }
    }

    /// When an unbound held token should be replaced by a node-bound one
    /// (at once, or when the binding may be asked for again).
    fn upgrade_at(&self, held: &Held) -> Option<Timestamp> {
        if held.bound_node.is_some() || self.settings.node.is_none() {
            return None;
        }
        match &self.binding {
            NodeBinding::Refused { retry_at, .. } => Some(*retry_at),
            _ => Some(Timestamp::MIN),
        }
    }

    /// The task due at `now`, if any.
    pub fn due(&self, now: Timestamp) -> Option<Task> {
        let retry_ok = self.retry_at.is_none_or(|at| at <= now);
        let request = || self.request_task(now);
        match self.token(now) {
            Some(held) if held.refresh_at <= now && retry_ok => Some(request()),
            Some(held) if self.upgrade_at(held).is_some_and(|at| at <= now) && retry_ok => {
                Some(request())
            }
            Some(held) if self.verify_at.is_some_and(|at| at <= now) => {
                Some(Task::Verify(held.token.clone()))
            }
            Some(_) => None,
            None if retry_ok => Some(request()),
            None => None,
        }
    }

    /// When the next task falls due, or the held token expires (the
    /// fallback then starts): the time to wake up at.
    pub fn next_due(&self, now: Timestamp) -> Timestamp {
        match self.token(now) {
            Some(held) => {
                let refresh = match self.retry_at {
                    Some(retry) => retry.max(held.refresh_at),
                    None => held.refresh_at,
                };
                let mut next = refresh.min(held.expires_at);
                if let Some(verify) = self.verify_at {
                    next = next.min(verify);
                }
                if let Some(upgrade) = self.upgrade_at(held) {
                    let upgrade = match self.retry_at {
                        Some(retry) => retry.max(upgrade),
                        None => upgrade,
                    };
                    next = next.min(upgrade.max(now));
                }
                next
            }
            None => self.retry_at.unwrap_or(now),
        }
    }

    /// Takes a task's outcome.
    pub fn on_outcome(&mut self, outcome: Outcome, now: Timestamp) -> Change {
        match outcome {
            Outcome::Requested(Ok(issued)) => self.on_issued(issued, now),
            Outcome::Requested(Err(error @ CredentialError::NodeBindingRefused { .. })) => {
                // Not a failure to back off from: ask at once for an
                // unbound token (when none is held), and for the binding
                // again later.
                self.binding = NodeBinding::Refused {
                    message: error.to_string(),
                    retry_at: later(now, BINDING_RETRY),
                };
                Change::None
            }
            Outcome::Requested(Err(error)) => {
                self.on_failure(error.to_string(), now);
                Change::None
            }
            Outcome::Verified(Ok(true)) => {
                self.verify_at = Some(later(now, VERIFY_INTERVAL));
                Change::None
            }
            Outcome::Verified(Ok(false)) => {
                self.held = None;
                self.verify_at = None;
                self.retry_at = None;
                self.last_error = Some(format!(
                    "the plugin's token no longer authenticates (was ServiceAccount {}/{} \
                     deleted?)",
                    self.settings.namespace, self.settings.service_account
                ));
                Change::Dropped
            }
            Outcome::Verified(Err(error)) => {
                tracing::debug!(error = %error, "cannot check the plugin's token; checking later");
                self.verify_at = Some(later(now, VERIFY_INTERVAL));
                Change::None
            }
        }
    }

    fn on_issued(&mut self, issued: Issued, now: Timestamp) -> Change {
        let refresh_at = half_life(now, issued.expires_at);
        if issued.expires_at <= now || refresh_at < later(now, MIN_REFRESH) {
            let error = CredentialError::TooShort {
                expires_at: issued.expires_at,
                now,
            };
            self.on_failure(error.to_string(), now);
            return Change::None;
        }
        let bound_node = claims(&issued.token).ok().and_then(|c| c.node);
        if bound_node.is_some() {
            self.binding = NodeBinding::Offered;
        }
        self.held = Some(Held {
            token: issued.token,
            issued_at: now,
            expires_at: issued.expires_at,
            refresh_at,
            bound_node,
        });
        self.failures = 0;
        self.retry_at = None;
        self.last_error = None;
        self.verify_at = Some(later(now, VERIFY_INTERVAL));
        Change::NewToken
    }

    fn on_failure(&mut self, error: String, now: Timestamp) {
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(later(now, retry_delay(self.failures)));
        self.last_error = Some(error);
    }

    /// Failed requests in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// When the next request may be made after failures.
    pub fn retry_at(&self) -> Option<Timestamp> {
        self.retry_at
    }

    /// The last error, while it matters (cleared by a new token).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Why the held token is not bound to the Node, for the report.
    fn binding_unavailable(&self, held: &Held) -> Option<String> {
        if held.bound_node.is_some() {
            return None;
        }
        match (&self.binding, &self.settings.node) {
            (_, None) => Some("the agent does not know its node's name (NODE_NAME)".to_owned()),
            (NodeBinding::Refused { message, .. }, Some(_)) => Some(message.clone()),
            (_, Some(_)) => None,
        }
    }

    /// The node-state report at `now`; `fallback` is the claims of the
    /// agent's own token, used while there is no plugin token.
    pub fn report(&self, now: Timestamp, fallback: Option<&Claims>) -> PluginCredential {
        let since = self
            .source
            .filter(|(s, _)| *s == self.source(now))
            .map(|(_, t)| Time(t));
        match self.token(now) {
            Some(held) => PluginCredential {
                service_account: self.settings.service_account.clone(),
                source: CredentialSource::TokenRequest,
                issued_at: Some(Time(held.issued_at)),
                expires_at: Some(Time(held.expires_at)),
                bound_node: held.bound_node.clone(),
                node_binding_unavailable: self.binding_unavailable(held),
                since,
                message: self
                    .last_error
                    .as_ref()
                    .map(|e| format!("refreshing the token failed, retrying: {e}")),
            },
            None => PluginCredential {
                service_account: fallback
                    .and_then(Claims::service_account)
                    .unwrap_or("the agent's")
                    .to_owned(),
                source: CredentialSource::AgentToken,
                issued_at: fallback.and_then(|c| c.issued_at).map(Time),
                expires_at: fallback.and_then(|c| c.expires_at).map(Time),
                bound_node: None,
                node_binding_unavailable: None,
                since,
                message: Some(format!(
                    "no token of ServiceAccount {}/{} yet ({}); the plugin uses a copy of the \
                     agent's own token, which stops working when the agent pod goes",
                    self.settings.namespace,
                    self.settings.service_account,
                    self.last_error.as_deref().unwrap_or("requesting one")
                )),
            },
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A JWT with `payload` (unsigned; only the agent's decoding matters).
    pub(crate) fn jwt(payload: &Value) -> String {
        fn encode(bytes: &[u8]) -> String {
            const ALPHABET: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let b = [
                    chunk[0],
                    *chunk.get(1).unwrap_or(&0),
                    *chunk.get(2).unwrap_or(&0),
                ];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                for i in 0..=chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                }
            }
            out
        }
        format!(
            "{}.{}.c2lnbmF0dXJl",
            encode(br#"{"alg":"RS256","kid":"k"}"#),
            encode(payload.to_string().as_bytes())
        )
    }

    const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(T0 + seconds).unwrap()
    }

    fn settings() -> CredentialSettings {
        CredentialSettings {
            namespace: "multus-system".into(),
            service_account: "multus-plugin-default".into(),
            lifetime: Duration::from_secs(86_400),
            node: None,
        }
    }

    fn node_settings() -> CredentialSettings {
        CredentialSettings {
            node: Some("node-a".into()),
            ..settings()
        }
    }

    fn bound_token(iat: i64, exp: i64, node: &str) -> Vec<u8> {
        jwt(&serde_json::json!({
            "sub": "system:serviceaccount:multus-system:multus-plugin-default",
            "iat": T0 + iat, "exp": T0 + exp,
            "kubernetes.io": {"namespace": "multus-system", "node": {"name": node, "uid": "u-1"}},
        }))
        .into_bytes()
    }

    fn issued_bound(iat: i64, exp: i64, node: &str) -> Outcome {
        Outcome::Requested(Ok(Issued {
            token: bound_token(iat, exp, node),
            expires_at: at(exp),
        }))
    }

    fn binding_refused() -> Outcome {
        let status = kube::core::Status {
            code: 400,
            message:
                "cannot bind token to a Node object as the \"ServiceAccountTokenNodeBinding\" \
                      feature-gate is disabled"
                    .into(),
            reason: "BadRequest".into(),
            ..Default::default()
        };
        Outcome::Requested(Err(CredentialError::NodeBindingRefused {
            namespace: "multus-system".into(),
            name: "multus-plugin-default".into(),
            node: "node-a".into(),
            source: kube::Error::Api(Box::new(status)),
        }))
    }

    fn plugin_token(iat: i64, exp: i64) -> Vec<u8> {
        jwt(&serde_json::json!({
            "sub": "system:serviceaccount:multus-system:multus-plugin-default",
            "iat": T0 + iat, "exp": T0 + exp,
        }))
        .into_bytes()
    }

    fn issued(exp: i64) -> Outcome {
        Outcome::Requested(Ok(Issued {
            token: format!("token-{exp}").into_bytes(),
            expires_at: at(exp),
        }))
    }

    fn failed() -> Outcome {
        Outcome::Requested(Err(CredentialError::Timeout { what: "request" }))
    }

    #[test]
    fn base64url_round_trips_and_refuses_garbage() {
        for (text, bytes) in [
            ("", &b""[..]),
            ("Zg", b"f"),
            ("Zm8", b"fo"),
            ("Zm9v", b"foo"),
            ("Zm9vYg==", b"foob"),
            ("_-8", &[0xff, 0xef][..]),
            ("/+8", &[0xff, 0xef][..]),
        ] {
            assert_eq!(base64url_decode(text).as_deref(), Some(bytes), "{text}");
        }
        assert_eq!(base64url_decode("Z"), None);
        assert_eq!(base64url_decode("Zm9v!"), None);
    }

    #[test]
    fn claims_are_read_without_verification() {
        let token = plugin_token(0, 3600);
        let c = claims(&token).unwrap();
        assert_eq!(c.issued_at, Some(at(0)));
        assert_eq!(c.expires_at, Some(at(3600)));
        assert_eq!(c.service_account(), Some("multus-plugin-default"));
        let mut with_newline = token.clone();
        with_newline.push(b'\n');
        assert_eq!(claims(&with_newline).unwrap(), c);
        assert_eq!(claims(b"token-1"), Err(ClaimsError::NotJwt));
        assert_eq!(claims(b"a.!!.c"), Err(ClaimsError::Base64));
        assert_eq!(claims(b"a.Zm9v.c"), Err(ClaimsError::Json));
        assert_eq!(
            claims(b"a.MQ.c"),
            Err(ClaimsError::Json),
            "1 is not an object"
        );
    }

    #[test]
    fn only_a_young_enough_plugin_token_is_reused() {
        let s = settings();
        let ok = reusable(&plugin_token(-100, 86_300), &s, at(0)).unwrap();
        assert_eq!(ok.refresh_at, at(43_100));
        // Past half its life, expired, someone else's, not a JWT.
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (plugin_token(-50_000, 36_400), "past half its life"),
            (plugin_token(-86_400, 0), "expired"),
            (
                jwt(&serde_json::json!({
                    "sub": "system:serviceaccount:multus-system:multus-agent-default",
                    "iat": T0, "exp": T0 + 3600,
                }))
                .into_bytes(),
                "multus-agent-default",
            ),
            (b"token-1".to_vec(), "not a JWT"),
            (
                jwt(&serde_json::json!({
                    "sub": "system:serviceaccount:multus-system:multus-plugin-default",
                }))
                .into_bytes(),
                "no iat or exp",
            ),
            // Requested when the lifetime was longer: the new setting wins.
            (plugin_token(0, 7 * 86_400), "longer than the configured"),
        ];
        for (token, why) in cases {
            let err = reusable(&token, &s, at(0)).unwrap_err();
            assert!(err.contains(why), "{why}: {err}");
        }
        // The API server may issue shorter tokens than asked: fine.
        assert!(reusable(&plugin_token(0, 3600), &s, at(60)).is_ok());
    }

    #[test]
    fn a_fresh_keeper_requests_at_once_and_falls_back_meanwhile() {
        let mut k = Keeper::new(settings());
        assert_eq!(k.due(at(0)), Some(Task::Request { node: None }));
        assert_eq!(k.source(at(0)), CredentialSource::AgentToken);
        assert_eq!(k.observe(at(0)), Some(None));
        assert_eq!(k.observe(at(1)), None);
        let report = k.report(
            at(1),
            Some(&Claims {
                subject: Some("system:serviceaccount:multus-system:multus-agent-default".into()),
                issued_at: Some(at(-10)),
                expires_at: Some(at(3590)),
                node: Some("node-a".into()),
                pod: Some("multus-agent-default-x".into()),
            }),
        );
        assert_eq!(report.source, CredentialSource::AgentToken);
        assert_eq!(report.service_account, "multus-agent-default");
        assert_eq!(report.expires_at, Some(Time(at(3590))));
        assert_eq!(report.since, Some(Time(at(0))));
        assert!(
            report
                .message
                .unwrap()
                .contains("copy of the agent's own token")
        );
    }

    #[test]
    fn a_token_is_refreshed_at_half_its_life_and_checked_every_ten_minutes() {
        let mut k = Keeper::new(settings());
        assert_eq!(k.on_outcome(issued(86_400), at(0)), Change::NewToken);
        assert_eq!(k.observe(at(0)), Some(None));
        assert_eq!(k.source(at(0)), CredentialSource::TokenRequest);
        assert_eq!(k.token(at(0)).unwrap().refresh_at, at(43_200));
        assert_eq!(k.due(at(1)), None);
        assert_eq!(k.next_due(at(1)), at(600), "the first check");
        assert!(matches!(k.due(at(600)), Some(Task::Verify(t)) if t == b"token-86400"));
        k.on_outcome(Outcome::Verified(Ok(true)), at(600));
        assert_eq!(k.next_due(at(601)), at(1200));
        // A check that cannot be made is no verdict.
        k.on_outcome(
            Outcome::Verified(Err(CredentialError::Timeout { what: "check" })),
            at(1200),
        );
        assert!(k.token(at(1200)).is_some());
        assert_eq!(k.next_due(at(1201)), at(1800));
        assert_eq!(k.due(at(43_200)), Some(Task::Request { node: None }));
        // The API server shortened the lifetime: half of what it gave.
        assert_eq!(
            k.on_outcome(issued(43_200 + 3_600), at(43_200)),
            Change::NewToken
        );
        assert_eq!(k.token(at(43_200)).unwrap().refresh_at, at(45_000));
        let report = k.report(at(43_201), None);
        assert_eq!(report.source, CredentialSource::TokenRequest);
        assert_eq!(report.service_account, "multus-plugin-default");
        assert_eq!(report.issued_at, Some(Time(at(43_200))));
        assert_eq!(report.expires_at, Some(Time(at(46_800))));
        assert_eq!(report.since, Some(Time(at(0))), "refreshes keep `since`");
        assert_eq!(report.message, None);
    }

    #[test]
    fn failures_back_off_and_the_fallback_starts_only_at_expiry() {
        let mut k = Keeper::new(settings());
        k.on_outcome(issued(1200), at(0));
        assert_eq!(k.due(at(600)), Some(Task::Request { node: None }));
        k.on_outcome(failed(), at(600));
        assert_eq!(k.retry_at(), Some(at(610)));
        // Still the plugin's token, with the error reported.
        assert_eq!(k.source(at(605)), CredentialSource::TokenRequest);
        assert!(
            k.report(at(605), None)
                .message
                .unwrap()
                .contains("retrying")
        );
        // No request before the retry time (the periodic check is due).
        assert!(matches!(k.due(at(605)), Some(Task::Verify(_))));
        k.on_outcome(Outcome::Verified(Ok(true)), at(605));
        assert_eq!(k.due(at(606)), None);
        assert_eq!(k.next_due(at(606)), at(610));
        let mut now = 610;
        let mut delays = Vec::new();
        for _ in 0..7 {
            assert_eq!(k.due(at(now)), Some(Task::Request { node: None }));
            k.on_outcome(failed(), at(now));
            let next = k.retry_at().unwrap().as_second() - T0;
            delays.push(next - now);
            now = next;
        }
        assert_eq!(delays, [20, 40, 80, 160, 300, 300, 300]);
        // The token expired meanwhile: the fallback, and the wake-up at expiry.
        assert_eq!(k.source(at(1199)), CredentialSource::TokenRequest);
        assert_eq!(k.source(at(1200)), CredentialSource::AgentToken);
        assert!(k.token(at(1200)).is_none());
        assert_eq!(k.observe(at(0)), Some(None));
        assert_eq!(
            k.observe(at(1200)),
            Some(Some(CredentialSource::TokenRequest))
        );
        let report = k.report(at(1201), None);
        assert_eq!(report.since, Some(Time(at(1200))));
        assert!(report.message.unwrap().contains("no answer within"));
        // Success resets the back-off.
        k.on_outcome(issued(now + 86_400), at(now));
        assert_eq!(k.failures(), 0);
        assert_eq!(k.retry_at(), None);
        k.on_outcome(failed(), at(now + 43_200));
        assert_eq!(k.retry_at(), Some(at(now + 43_210)));
    }

    #[test]
    fn a_revoked_token_is_dropped_and_replaced_at_once() {
        let mut k = Keeper::new(settings());
        k.adopt(Some(&plugin_token(-100, 86_300)), at(0)).unwrap();
        // Adopted at start: checked at once.
        assert!(matches!(k.due(at(0)), Some(Task::Verify(_))));
        assert_eq!(
            k.on_outcome(Outcome::Verified(Ok(false)), at(1)),
            Change::Dropped
        );
        assert_eq!(k.source(at(1)), CredentialSource::AgentToken);
        assert_eq!(k.due(at(1)), Some(Task::Request { node: None }));
        assert!(
            k.report(at(1), None)
                .message
                .unwrap()
                .contains("no longer authenticates")
        );
        assert!(k.adopt(None, at(0)).unwrap_err().contains("no token file"));
    }

    #[test]
    fn a_token_that_would_expire_at_once_is_refused() {
        let mut k = Keeper::new(settings());
        assert_eq!(k.on_outcome(issued(100), at(0)), Change::None);
        assert!(k.token(at(0)).is_none());
        assert!(k.last_error().unwrap().contains("clock"));
        assert_eq!(k.retry_at(), Some(at(10)));
    }

    #[test]
    fn the_token_request_has_no_bound_object_and_the_default_audience() {
        let request = KubeTokenApi::token_request(&settings(), None);
        assert!(request.spec.audiences.is_empty());
        assert!(request.spec.bound_object_ref.is_none());
        assert_eq!(request.spec.expiration_seconds, Some(86_400));
        assert_eq!(retry_delay(0), Duration::from_secs(10));
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(300));
    }

    fn bound_request() -> Option<Task> {
        Some(Task::Request {
            node: Some("node-a".into()),
        })
    }

    #[test]
    fn with_a_node_name_the_first_request_binds_the_token_to_the_node() {
        let mut k = Keeper::new(node_settings());
        assert_eq!(k.due(at(0)), bound_request());
        assert_eq!(
            k.on_outcome(issued_bound(0, 86_400, "node-a"), at(0)),
            Change::NewToken
        );
        assert_eq!(k.binding(), &NodeBinding::Offered);
        let held = k.token(at(1)).unwrap();
        assert_eq!(held.bound_node.as_deref(), Some("node-a"));
        assert_eq!(k.due(at(1)), None);
        // the refresh at half its life binds again
        assert_eq!(k.due(at(43_200)), bound_request());
        let report = k.report(at(1), None);
        assert_eq!(report.bound_node.as_deref(), Some("node-a"));
        assert_eq!(report.node_binding_unavailable, None);
    }

    #[test]
    fn a_refused_binding_falls_back_to_an_unbound_token_at_once_and_asks_again_later() {
        let mut k = Keeper::new(node_settings());
        assert_eq!(k.due(at(0)), bound_request());
        assert_eq!(k.on_outcome(binding_refused(), at(0)), Change::None);
        // not a failure: no back-off, an unbound request right away
        assert_eq!(k.failures(), 0);
        assert_eq!(k.due(at(0)), Some(Task::Request { node: None }));
        assert_eq!(k.on_outcome(issued(86_400), at(0)), Change::NewToken);
        let held = k.token(at(1)).unwrap();
        assert_eq!(held.bound_node, None);
        assert_eq!(k.due(at(1)), None);
        let report = k.report(at(1), None);
        assert_eq!(report.bound_node, None);
        let why = report.node_binding_unavailable.unwrap();
        assert!(why.contains("ServiceAccountTokenNodeBinding"), "{why}");
        assert!(why.contains("Node node-a"), "{why}");
        // after BINDING_RETRY the unbound token is replaced by a bound one
        // if the server now allows it (e.g. after an upgrade)
        let retry = i64::try_from(BINDING_RETRY.as_secs()).unwrap();
        assert!(!matches!(k.due(at(retry - 1)), Some(Task::Request { .. })));
        assert_eq!(
            k.on_outcome(Outcome::Verified(Ok(true)), at(retry - 1)),
            Change::None
        );
        assert_eq!(k.next_due(at(retry - 1)), at(retry));
        assert_eq!(k.due(at(retry)), bound_request());
        assert_eq!(
            k.on_outcome(issued_bound(retry, retry + 86_400, "node-a"), at(retry)),
            Change::NewToken
        );
        assert_eq!(
            k.token(at(retry)).unwrap().bound_node.as_deref(),
            Some("node-a")
        );
        assert_eq!(k.report(at(retry), None).node_binding_unavailable, None);
    }

    #[test]
    fn a_refusal_while_holding_a_token_keeps_it() {
        let mut k = Keeper::new(node_settings());
        // an unbound token of a previous run (or an older agent)
        assert_eq!(k.adopt(Some(&plugin_token(0, 86_400)), at(10)), Ok(()));
        // replaced by a node-bound one at once where the server allows it
        assert_eq!(k.due(at(10)), bound_request());
        assert_eq!(k.on_outcome(binding_refused(), at(10)), Change::None);
        // refused: the held token stays, and it is checked as after any
        // adoption
        assert!(k.token(at(11)).is_some());
        assert!(matches!(k.due(at(11)), Some(Task::Verify(_))));
        assert_eq!(
            k.on_outcome(Outcome::Verified(Ok(true)), at(11)),
            Change::None
        );
        assert_eq!(k.due(at(12)), None);
    }

    #[test]
    fn a_node_bound_token_of_a_previous_run_is_kept_and_a_pod_bound_one_is_not() {
        let mut k = Keeper::new(node_settings());
        assert_eq!(
            k.adopt(Some(&bound_token(0, 86_400, "node-a")), at(10)),
            Ok(())
        );
        assert_eq!(
            k.token(at(10)).unwrap().bound_node.as_deref(),
            Some("node-a")
        );
        assert!(matches!(k.due(at(10)), Some(Task::Verify(_))));
        let pod_bound = jwt(&serde_json::json!({
            "sub": "system:serviceaccount:multus-system:multus-plugin-default",
            "iat": T0, "exp": T0 + 86_400,
            "kubernetes.io": {"pod": {"name": "p", "uid": "u"}, "node": {"name": "node-a", "uid": "n"}},
        }));
        let mut k = Keeper::new(node_settings());
        assert_eq!(
            k.adopt(Some(pod_bound.as_bytes()), at(10)),
            Err("it is bound to a pod".to_owned())
        );
    }

    #[test]
    fn the_token_request_binds_to_the_node_when_asked() {
        let request = KubeTokenApi::token_request(&settings(), Some("node-a"));
        let bound = request.spec.bound_object_ref.unwrap();
        assert_eq!(bound.kind.as_deref(), Some("Node"));
        assert_eq!(bound.api_version.as_deref(), Some("v1"));
        assert_eq!(bound.name.as_deref(), Some("node-a"));
        assert_eq!(bound.uid, None);
    }
}
