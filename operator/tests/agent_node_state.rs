//! MultusNodeState reporting against kube's tower-test mock API: the exact
//! requests (server-side apply, field manager, subresource) and bodies.

mod agent_common;

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use agent_common::*;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use multus_config::crd::MultusNodeStateStatus;
use multus_config::generate::hex_sha256;
use multus_operator::agent::metrics::Shared;
use multus_operator::agent::node_state::{FIELD_MANAGER, NodeStateReporter};
use multus_operator::agent::{self, Settings};
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn mock_client() -> (kube::Client, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

struct Seen {
    method: Method,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

async fn next(handle: &mut std::pin::Pin<&mut ApiHandle>) -> (Seen, SendResponse<Response<Body>>) {
    let (request, send) = tokio::time::timeout(DEADLINE, handle.next_request())
        .await
        .expect("no request in time")
        .expect("the client is gone");
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (
        Seen {
            method,
            path,
            query,
            content_type,
            body,
        },
        send,
    )
}

fn respond(send: SendResponse<Response<Body>>, code: StatusCode, body: &Value) {
    let response = Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap();
    send.send_response(response);
}

/// Answers an apply with the applied object (as the API server would).
fn echo(send: SendResponse<Response<Body>>, applied: &Value) {
    let mut object = applied.clone();
    object["metadata"]["uid"] = json!("0d9c5b4e-0000-4000-8000-000000000001");
    object["metadata"]["resourceVersion"] = json!("1");
    respond(send, StatusCode::OK, &object);
}

fn not_found() -> Value {
    json!({"kind":"Status","apiVersion":"v1","status":"Failure","message":"multusnodestates.multus.dev \"node-1\" not found","reason":"NotFound","code":404})
}

fn assert_apply(seen: &Seen, path: &str) {
    assert_eq!(seen.method, Method::PATCH);
    assert_eq!(seen.path, path);
    let pairs: Vec<(String, String)> = seen
        .query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(
        pairs.contains(&("fieldManager".into(), FIELD_MANAGER.into())),
        "{}",
        seen.query
    );
    assert!(
        pairs.contains(&("force".into(), "true".into())),
        "{}",
        seen.query
    );
    assert_eq!(seen.content_type, "application/apply-patch+yaml");
    assert_eq!(seen.body["apiVersion"], "multus.dev/v1alpha1");
    assert_eq!(seen.body["kind"], "MultusNodeState");
    assert_eq!(seen.body["metadata"]["name"], "node-1");
}

const OBJECT: &str = "/apis/multus.dev/v1alpha1/multusnodestates/node-1";
const STATUS: &str = "/apis/multus.dev/v1alpha1/multusnodestates/node-1/status";

#[tokio::test]
async fn publish_applies_the_spec_once_then_the_status() {
    let (client, handle) = mock_client();
    let server = tokio::spawn(async move {
        let mut handle = pin!(handle);
        let (seen, send) = next(&mut handle).await;
        assert_apply(&seen, OBJECT);
        assert_eq!(
            seen.body["spec"],
            json!({"nodeName": "node-1", "multusConfig": "default"})
        );
        assert!(seen.body.get("status").is_none());
        echo(send, &seen.body);

        let (seen, send) = next(&mut handle).await;
        assert_apply(&seen, STATUS);
        assert_eq!(seen.body["status"]["ready"], false);
        assert_eq!(seen.body["status"]["message"], "no primary");
        assert!(seen.body.get("spec").is_none());
        echo(send, &seen.body);

        // the second publish goes straight to the status
        let (seen, send) = next(&mut handle).await;
        assert_apply(&seen, STATUS);
        assert_eq!(seen.body["status"]["ready"], true);
        assert!(
            seen.body["status"].get("message").is_none(),
            "a cleared message is left out, so the apply removes it"
        );
        echo(send, &seen.body);
    });
    let mut reporter = NodeStateReporter::new(client, "node-1", Some("default".into()));
    reporter
        .publish(&MultusNodeStateStatus {
            ready: false,
            message: Some("no primary".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    reporter
        .publish(&MultusNodeStateStatus {
            ready: true,
            ..Default::default()
        })
        .await
        .unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_deleted_object_is_recreated() {
    let (client, handle) = mock_client();
    let server = tokio::spawn(async move {
        let mut handle = pin!(handle);
        let (seen, send) = next(&mut handle).await;
        assert_apply(&seen, OBJECT);
        echo(send, &seen.body);
        let (seen, send) = next(&mut handle).await;
        assert_apply(&seen, STATUS);
        echo(send, &seen.body);
        // someone deleted the object: the status apply 404s
        let (seen, send) = next(&mut handle).await;
        assert_apply(&seen, STATUS);
        respond(send, StatusCode::NOT_FOUND, &not_found());
        let (seen, send) = next(&mut handle).await;
        assert_apply(&seen, OBJECT);
        assert_eq!(seen.body["spec"]["nodeName"], "node-1");
        echo(send, &seen.body);
        let (seen, send) = next(&mut handle).await;
        assert_apply(&seen, STATUS);
        echo(send, &seen.body);
    });
    let mut reporter = NodeStateReporter::new(client, "node-1", None);
    let status = MultusNodeStateStatus::default();
    reporter.publish(&status).await.unwrap();
    reporter.publish(&status).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn the_reporter_loop_retries_and_sends_the_latest_status() {
    let (client, handle) = mock_client();
    let shared = Arc::new(Shared::default());
    let (status_tx, status_rx) = tokio::sync::watch::channel(Some(MultusNodeStateStatus {
        ready: false,
        message: Some("starting".into()),
        ..Default::default()
    }));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let reporter = NodeStateReporter::new(client, "node-1", None);
    let task = tokio::spawn(reporter.run(status_rx, stop_rx, Arc::clone(&shared)));

    let mut handle = pin!(handle);
    // the API server fails once
    let (seen, send) = next(&mut handle).await;
    assert_apply(&seen, OBJECT);
    respond(
        send,
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({"kind":"Status","apiVersion":"v1","status":"Failure","message":"etcd unavailable","reason":"InternalError","code":500}),
    );
    // meanwhile the agent became ready: the retry sends the latest status
    status_tx.send_replace(Some(MultusNodeStateStatus {
        ready: true,
        primary_config_file: Some("10-calico.conflist".into()),
        ..Default::default()
    }));
    let (seen, send) = next(&mut handle).await;
    assert_apply(&seen, OBJECT);
    echo(send, &seen.body);
    let (seen, send) = next(&mut handle).await;
    assert_apply(&seen, STATUS);
    assert_eq!(seen.body["status"]["ready"], true);
    assert_eq!(
        seen.body["status"]["primaryConfigFile"],
        "10-calico.conflist"
    );
    echo(send, &seen.body);
    assert_eq!(shared.metrics.errors.get(), 1);

    // a later change is sent too
    status_tx.send_replace(Some(MultusNodeStateStatus {
        ready: false,
        message: Some("no primary".into()),
        ..Default::default()
    }));
    let (seen, send) = next(&mut handle).await;
    assert_apply(&seen, STATUS);
    assert_eq!(seen.body["status"]["message"], "no primary");
    echo(send, &seen.body);

    stop_tx.send_replace(true);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the reporter stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn once_reports_what_it_did_on_the_node() {
    let host = Host::new();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    std::fs::write(host.conf.join("05-broken.conf"), "{").unwrap();
    std::fs::write(
        host.multus_conf.join("20-macvlan.conf"),
        r#"{"cniVersion":"0.3.1","name":"macvlan-conf","type":"macvlan"}"#,
    )
    .unwrap();
    std::fs::write(host.multus_conf.join("10-broken.conf"), "{").unwrap();
    std::fs::write(
        host.multus_conf.join("05-bridge.json"),
        r#"{"name":"bridge-net","plugins":[{"type":"bridge"}]}"#,
    )
    .unwrap();
    for plugin in ["bridge", "calico", "portmap"] {
        let path = host.bin.join(plugin);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let settings = Settings {
        cni_conf_dir: host.conf.clone(),
        host_cni_conf_dir: "/etc/cni/net.d".into(),
        cni_bin_dir: host.bin.clone(),
        multus_conf_dir: host.multus_conf.clone(),
        plugin_binary: Some(host.plugin.clone()),
        service_account_dir: host.sa.clone(),
        config_file: None,
        api_server: Some("https://10.96.0.1:443".into()),
        node_name: Some("node-1".into()),
        multus_config_name: Some("default".into()),
        kube: true,
        metrics_address: "127.0.0.1:0".parse().unwrap(),
        // --once keeps giving the plugin a copy of the agent's token.
        plugin_credential: None,
    };
    let (client, handle) = mock_client();
    let output = host.output();
    let server = tokio::spawn(async move {
        let mut handle = pin!(handle);
        let (seen, send) = next(&mut handle).await;
        assert_apply(&seen, OBJECT);
        assert_eq!(seen.body["spec"]["multusConfig"], "default");
        echo(send, &seen.body);
        let (seen, send) = next(&mut handle).await;
        assert_apply(&seen, STATUS);
        echo(send, &seen.body);
        let status = seen.body["status"].clone();
        assert_eq!(status["ready"], true);
        assert!(status.get("message").is_none());
        assert_eq!(status["primaryConfigFile"], "10-calico.conflist");
        assert_eq!(status["primaryNetworkName"], "k8s-pod-network");
        assert_eq!(status["generatedConfigFile"], "00-multus.conf");
        assert_eq!(
            status["generatedConfigHash"],
            hex_sha256(&std::fs::read(&output).unwrap())
        );
        assert_eq!(status["pluginVersion"], "0.0.0-test");
        assert_eq!(
            status["cniPlugins"],
            json!(["bridge", "calico", "multus", "portmap"])
        );
        // The parsable configs of the Multus conf dir, by CNI name, sorted.
        assert_eq!(
            status["multusConfNetworks"],
            json!(["bridge-net", "macvlan-conf"])
        );
        assert_eq!(status["skippedConfigs"][0]["file"], "05-broken.conf");
        assert!(
            status["skippedConfigs"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("not a valid CNI config")
        );
        assert!(status["lastGenerated"].as_str().unwrap().ends_with('Z'));
    });
    let status = agent::run_once_with_client(settings, Some(client))
        .await
        .unwrap();
    assert!(status.ready);
    assert_eq!(status.multus_conf_networks, ["bridge-net", "macvlan-conf"]);
    server.await.unwrap();
}
