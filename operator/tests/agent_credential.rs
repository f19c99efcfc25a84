//! The plugin's own credential (issue 11): the agent, in-process on a
//! temporary host layout, requests tokens for the plugin's ServiceAccount
//! from a mock API server (tower-test), writes them for the plugin's
//! kubeconfig, falls back to a copy of its own token while it has none,
//! and reports all of it in MultusNodeState.

mod agent_common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_common::*;
use http::{Method, StatusCode};
use multus_e2e::mock_api::{
    ApiHandle, Responder, Seen, mock_client, next_request, respond_json, status_body,
};
use multus_operator::agent::credential::{CredentialSettings, KubeTokenApi};
use multus_operator::agent::{self, KubeAccess, Settings};
use serde_json::{Value, json};

const NS: &str = "multus-system";
const PLUGIN_SA: &str = "multus-plugin-default";
const TOKEN_PATH: &str =
    "/api/v1/namespaces/multus-system/serviceaccounts/multus-plugin-default/token";

fn credential_settings() -> CredentialSettings {
    CredentialSettings {
        namespace: NS.into(),
        service_account: PLUGIN_SA.into(),
        lifetime: Duration::from_secs(86_400),
        node: None,
    }
}

/// The agent of node `node-a`, which asks for node-bound tokens.
fn node_credential_settings() -> CredentialSettings {
    CredentialSettings {
        node: Some("node-a".into()),
        ..credential_settings()
    }
}

fn settings(host: &Host) -> Settings {
    agent_settings(host, Some(credential_settings()))
}

fn agent_jwt(iat: i64) -> String {
    service_account_jwt(NS, "multus-agent-default", iat, iat + 3600)
}

fn plugin_jwt(iat: i64, exp: i64) -> String {
    service_account_jwt(NS, PLUGIN_SA, iat, exp)
}

/// Answers a TokenRequest with `token`, expiring at `exp`.
fn issue(send: Responder, request: &Value, token: &str, exp: i64) {
    let mut answer = request.clone();
    answer["status"] = json!({
        "token": token,
        "expirationTimestamp": k8s_openapi::jiff::Timestamp::from_second(exp).unwrap().to_string(),
    });
    respond_json(send, StatusCode::CREATED, &answer);
}

/// Plays the API server for the MultusNodeState reporter: echoes every
/// apply and records the statuses.
fn node_state_server(handle: ApiHandle) -> Arc<Mutex<Vec<Value>>> {
    let statuses: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = Arc::clone(&statuses);
    tokio::spawn(async move {
        let mut handle = handle;
        while let Some((request, send)) = handle.next_request().await {
            let mut body = Seen::read(request).await.body;
            if let Some(status) = body.get("status") {
                seen.lock().unwrap().push(status.clone());
            }
            body["metadata"]["uid"] = json!("uid-node-1");
            body["metadata"]["resourceVersion"] = json!("1");
            respond_json(send, StatusCode::OK, &body);
        }
    });
    statuses
}

/// Waits until the latest reported status satisfies `f`.
async fn reported(
    statuses: &Arc<Mutex<Vec<Value>>>,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        if let Some(last) = statuses.lock().unwrap().last().cloned()
            && f(&last)
        {
            return last;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {what}; reported: {:#?}",
            statuses.lock().unwrap().last()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn file_is(path: &std::path::Path, what: &str, expected: &str) {
    let start = Instant::now();
    loop {
        if std::fs::read_to_string(path).ok().as_deref() == Some(expected) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {what}: {:?}",
            std::fs::read_to_string(path)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), agent::AgentError>>,
    statuses: Arc<Mutex<Vec<Value>>>,
    verified_with: Arc<Mutex<Vec<String>>>,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the agent stops")
            .unwrap()
            .unwrap();
    }
}

/// Starts the agent in-process with mock API servers for its node state,
/// its token requests and the checks of the plugin's token; returns the
/// handles of the latter two.
fn start(host: &Host) -> (Running, ApiHandle, ApiHandle) {
    start_with(host, credential_settings())
}

/// [`start`] with other credential settings.
fn start_with(host: &Host, credential: CredentialSettings) -> (Running, ApiHandle, ApiHandle) {
    let (state_client, state_handle) = mock_client("default");
    let statuses = node_state_server(state_handle);
    let (token_client, tokens) = mock_client("default");
    let (verify_client, verify) = mock_client("default");
    let verified_with: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = Arc::clone(&verified_with);
    let api = KubeTokenApi::new(
        token_client,
        Box::new(move |token: &str| {
            record.lock().unwrap().push(token.to_owned());
            Ok(verify_client.clone())
        }),
        credential.clone(),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(agent::run_with(
        agent_settings(host, Some(credential)),
        async move {
            let _ = stop_rx.await;
        },
        Some(KubeAccess {
            client: state_client,
            token_api: Some(Arc::new(api)),
        }),
    ));
    (
        Running {
            stop: Some(stop_tx),
            task,
            statuses,
            verified_with,
        },
        tokens,
        verify,
    )
}

/// A host whose agent holds its projected token (issued at `now`) and whose
/// default network is calico.
fn calico_host(now: i64) -> Host {
    let mut host = Host::new();
    host.project_service_account(&agent_jwt(now), "CA-1");
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    host
}

fn kubeconfig_token_file(host: &Host) -> Option<String> {
    let text = std::fs::read_to_string(host.multus_d().join("multus.kubeconfig")).ok()?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
    doc["users"][0]["user"]["tokenFile"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn the_plugin_gets_a_token_of_its_own_that_the_agents_token_never_overwrites() {
    let now = unix_now();
    let mut host = calico_host(now);
    let (running, mut tokens, _verify) = start(&host);
    let token = host.multus_d().join("token");

    let (
        Seen {
            method, path, body, ..
        },
        send,
    ) = next_request(&mut tokens, DEADLINE).await;
    assert_eq!((method, path.as_str()), (Method::POST, TOKEN_PATH));
    assert_eq!(body["kind"], "TokenRequest");
    assert_eq!(
        body["spec"],
        json!({"audiences": [], "expirationSeconds": 86400}),
        "default audience, no bound object, the configured lifetime"
    );
    let plugin = plugin_jwt(now, now + 86_400);
    issue(send, &body, &plugin, now + 86_400);

    file_is(&token, "the plugin's token", &plugin).await;
    assert_eq!(mode_of(&token), 0o600);
    // The kubeconfig names it (host path), and the Multus config the kubeconfig.
    assert_eq!(
        kubeconfig_token_file(&host).as_deref(),
        Some("/etc/cni/net.d/multus.d/token")
    );
    assert_eq!(
        read_json(&host.output())["kubeconfig"],
        "/etc/cni/net.d/multus.d/multus.kubeconfig"
    );
    let status = reported(&running.statuses, "a TokenRequest credential", |s| {
        s["pluginCredential"]["source"] == "TokenRequest"
    })
    .await;
    let credential = &status["pluginCredential"];
    assert_eq!(credential["serviceAccount"], PLUGIN_SA);
    assert_eq!(
        credential["expiresAt"],
        k8s_openapi::jiff::Timestamp::from_second(now + 86_400)
            .unwrap()
            .to_string()
    );
    assert!(credential.get("message").is_none(), "{credential}");
    assert_eq!(status["ready"], true);

    // The kubelet rotates the agent's own token: the plugin's stays.
    host.project_service_account(&agent_jwt(now + 1), "CA-1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(std::fs::read_to_string(&token).unwrap(), plugin);

    // A fresh token is not checked at once, and nothing else is requested.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), tokens.next_request())
            .await
            .is_err()
    );
    running.stop().await;
    // Stopping leaves the files in place for the plugin ...
    assert_eq!(std::fs::read_to_string(&token).unwrap(), plugin);
    // ... and the uninstall removes them, the plugin's token included.
    let report = agent::uninstall(&settings(&host)).unwrap();
    assert!(report.removed.contains(&token), "{report:?}");
    assert!(!token.exists());
    assert!(!host.multus_d().join("multus.kubeconfig").exists());
}

#[test]
fn the_plugin_flags_are_checked_and_ignored_without_the_api_server() {
    let host = Host::new();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    // The API server's minimum lifetime is 600 s.
    let mut command = host.command();
    command.args([
        "--once",
        "--plugin-service-account=multus-plugin-default",
        "--plugin-token-expiration-seconds=599",
    ]);
    let (ok, stderr) = run(command);
    assert!(!ok);
    assert!(stderr.contains("600..=2592000"), "{stderr}");
    // --no-kube --once keeps giving the plugin a copy of the agent's token.
    let mut command = host.command();
    command.args([
        "--once",
        "--plugin-service-account=multus-plugin-default",
        "--plugin-token-expiration-seconds=3600",
        "--namespace=multus-system",
    ]);
    let (ok, stderr) = run(command);
    assert!(ok, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(host.multus_d().join("token")).unwrap(),
        "token-1"
    );
}

#[tokio::test]
async fn without_a_token_of_its_own_the_plugin_uses_the_agents_and_says_so() {
    let now = unix_now();
    let mut host = calico_host(now);
    let agent_token = agent_jwt(now);
    let (running, mut tokens, _verify) = start(&host);
    let token = host.multus_d().join("token");

    // The controller has not created the RBAC yet (or an old one runs).
    let (_, send) = next_request(&mut tokens, DEADLINE).await;
    respond_json(
        send,
        StatusCode::FORBIDDEN,
        &status_body(
            403,
            "Forbidden",
            "serviceaccounts \"multus-plugin-default\" is forbidden: User cannot create \
             resource \"serviceaccounts/token\"",
        ),
    );
    file_is(
        &token,
        "the fallback copy of the agent's token",
        &agent_token,
    )
    .await;
    assert_eq!(
        kubeconfig_token_file(&host).as_deref(),
        Some("/etc/cni/net.d/multus.d/token")
    );
    let status = reported(&running.statuses, "the fallback", |s| {
        s["pluginCredential"]["source"] == "AgentToken"
    })
    .await;
    let credential = &status["pluginCredential"];
    assert_eq!(credential["serviceAccount"], "multus-agent-default");
    assert_eq!(
        credential["expiresAt"],
        k8s_openapi::jiff::Timestamp::from_second(now + 3600)
            .unwrap()
            .to_string()
    );
    assert!(credential["since"].is_string());
    let message = credential["message"].as_str().unwrap();
    assert!(message.contains("is forbidden"), "{message}");
    assert!(
        message.contains("copy of the agent's own token"),
        "{message}"
    );
    // The node works: the fallback is no reason to be not ready.
    assert_eq!(status["ready"], true);

    // The fallback copy follows the kubelet's rotations.
    let rotated = agent_jwt(now + 1);
    host.project_service_account(&rotated, "CA-1");
    file_is(&token, "the rotated agent token", &rotated).await;

    // The next request comes only after the back-off (10 s).
    assert!(
        tokio::time::timeout(Duration::from_millis(500), tokens.next_request())
            .await
            .is_err()
    );
    running.stop().await;
}

#[tokio::test]
async fn a_token_from_the_previous_run_is_kept_until_it_stops_authenticating() {
    let now = unix_now();
    let host = calico_host(now);
    let agent_token = agent_jwt(now);
    // The previous agent left a plugin token, young enough to keep.
    std::fs::create_dir_all(host.multus_d()).unwrap();
    let previous = plugin_jwt(now - 100, now + 86_300);
    std::fs::write(host.multus_d().join("token"), &previous).unwrap();
    let (running, mut tokens, mut verify) = start(&host);
    let token = host.multus_d().join("token");

    // Kept: no request, but a check that it still authenticates.
    let (Seen { method, path, .. }, send) = next_request(&mut verify, DEADLINE).await;
    assert_eq!((method, path.as_str()), (Method::GET, "/version"));
    assert_eq!(
        running.verified_with.lock().unwrap().as_slice(),
        std::slice::from_ref(&previous),
        "checked with the plugin's token"
    );
    assert_eq!(std::fs::read_to_string(&token).unwrap(), previous);
    // Its ServiceAccount was deleted (and created again): 401.
    respond_json(
        send,
        StatusCode::UNAUTHORIZED,
        &status_body(401, "Unauthorized", "Unauthorized"),
    );
    let (
        Seen {
            method, path, body, ..
        },
        send,
    ) = next_request(&mut tokens, DEADLINE).await;
    assert_eq!((method, path.as_str()), (Method::POST, TOKEN_PATH));
    // Meanwhile the plugin uses the agent's token rather than a dead one.
    assert_eq!(std::fs::read_to_string(&token).unwrap(), agent_token);
    let fresh = plugin_jwt(now, now + 86_400);
    issue(send, &body, &fresh, now + 86_400);
    file_is(&token, "the new plugin token", &fresh).await;
    reported(&running.statuses, "the new token", |s| {
        s["pluginCredential"]["source"] == "TokenRequest"
            && s["pluginCredential"].get("message").is_none()
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn the_plugin_token_is_bound_to_the_node_where_the_server_allows_it() {
    let now = unix_now();
    let host = calico_host(now);
    let (running, mut tokens, _verify) = start_with(&host, node_credential_settings());
    let token = host.multus_d().join("token");

    let (Seen { path, body, .. }, send) = next_request(&mut tokens, DEADLINE).await;
    assert_eq!(path, TOKEN_PATH);
    assert_eq!(
        body["spec"],
        json!({
            "audiences": [],
            "expirationSeconds": 86400,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Node", "name": "node-a"},
        }),
        "bound to the agent's Node, not to its pod"
    );
    let plugin = node_bound_jwt(NS, PLUGIN_SA, "node-a", now, now + 86_400);
    issue(send, &body, &plugin, now + 86_400);
    file_is(&token, "the node-bound plugin token", &plugin).await;
    let status = reported(&running.statuses, "a node-bound credential", |s| {
        s["pluginCredential"]["boundNode"] == "node-a"
    })
    .await;
    assert!(
        status["pluginCredential"]
            .get("nodeBindingUnavailable")
            .is_none(),
        "{status}"
    );
    // nothing else is asked for: the token is not replaced
    assert!(
        tokio::time::timeout(Duration::from_millis(300), tokens.next_request())
            .await
            .is_err()
    );
    running.stop().await;
}

#[tokio::test]
async fn a_server_refusing_node_binding_gets_an_unbound_request_at_once_and_says_why() {
    let now = unix_now();
    let host = calico_host(now);
    let (running, mut tokens, _verify) = start_with(&host, node_credential_settings());
    let token = host.multus_d().join("token");

    let (Seen { body, .. }, send) = next_request(&mut tokens, DEADLINE).await;
    assert_eq!(body["spec"]["boundObjectRef"]["kind"], "Node");
    // what a 1.28 API server answers
    const REFUSAL: &str = "cannot bind token to a Node object as the \"ServiceAccountTokenNodeBinding\" feature-gate is disabled";
    respond_json(
        send,
        StatusCode::BAD_REQUEST,
        &status_body(400, "BadRequest", REFUSAL),
    );
    // at once (no back-off), without a bound object
    let started = Instant::now();
    let (Seen { path, body, .. }, send) = next_request(&mut tokens, DEADLINE).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the unbound request waited {:?}",
        started.elapsed()
    );
    assert_eq!(path, TOKEN_PATH);
    assert_eq!(
        body["spec"],
        json!({"audiences": [], "expirationSeconds": 86400}),
        "the fallback request is unbound"
    );
    let plugin = plugin_jwt(now, now + 86_400);
    issue(send, &body, &plugin, now + 86_400);
    file_is(&token, "the unbound plugin token", &plugin).await;
    let status = reported(&running.statuses, "the refusal in the credential", |s| {
        s["pluginCredential"]["source"] == "TokenRequest"
            && s["pluginCredential"]
                .get("nodeBindingUnavailable")
                .is_some()
    })
    .await;
    let why = status["pluginCredential"]["nodeBindingUnavailable"]
        .as_str()
        .unwrap();
    assert!(why.contains("to Node node-a"), "{why}");
    assert!(why.contains("ServiceAccountTokenNodeBinding"), "{why}");
    assert!(status["pluginCredential"].get("boundNode").is_none());
    assert_eq!(status["ready"], true);
    // the binding is not asked for again right away
    assert!(
        tokio::time::timeout(Duration::from_millis(300), tokens.next_request())
            .await
            .is_err()
    );
    running.stop().await;
}
