//! MultusNodeState reporting against kube's tower-test mock API: the exact
//! requests (server-side apply, field manager, subresource) and bodies.

mod agent_common;

use std::sync::Arc;
use std::time::Duration;

use agent_common::*;
use http::{Method, StatusCode};
use multus_config::crd::MultusNodeStateStatus;
use multus_config::generate::hex_sha256;
use multus_e2e::mock_api::{Responder, Seen, mock_client, next_request, respond_json, status_body};
use multus_operator::agent;
use multus_operator::agent::metrics::Shared;
use multus_operator::agent::node_state::{FIELD_MANAGER, NodeStateReporter};
use serde_json::{Value, json};

/// Answers an apply with the applied object (as the API server would).
fn echo(send: Responder, applied: &Value) {
    let mut object = applied.clone();
    object["metadata"]["uid"] = json!("0d9c5b4e-0000-4000-8000-000000000001");
    object["metadata"]["resourceVersion"] = json!("1");
    respond_json(send, StatusCode::OK, &object);
}

fn not_found() -> Value {
    status_body(
        404,
        "NotFound",
        "multusnodestates.multus.dev \"node-1\" not found",
    )
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
    let (client, mut handle) = mock_client("default");
    let server = tokio::spawn(async move {
        let (seen, send) = next_request(&mut handle, DEADLINE).await;
        assert_apply(&seen, OBJECT);
        assert_eq!(
            seen.body["spec"],
            json!({"nodeName": "node-1", "multusConfig": "default"})
        );
        assert!(seen.body.get("status").is_none());
        echo(send, &seen.body);

        let (seen, send) = next_request(&mut handle, DEADLINE).await;
        assert_apply(&seen, STATUS);
        assert_eq!(seen.body["status"]["ready"], false);
        assert_eq!(seen.body["status"]["message"], "no primary");
        assert!(seen.body.get("spec").is_none());
        echo(send, &seen.body);

        // the second publish goes straight to the status
        let (seen, send) = next_request(&mut handle, DEADLINE).await;
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
    let (client, mut handle) = mock_client("default");
    let server = tokio::spawn(async move {
        let (seen, send) = next_request(&mut handle, DEADLINE).await;
        assert_apply(&seen, OBJECT);
        echo(send, &seen.body);
        let (seen, send) = next_request(&mut handle, DEADLINE).await;
        assert_apply(&seen, STATUS);
        echo(send, &seen.body);
        // someone deleted the object: the status apply 404s
        let (seen, send) = next_request(&mut handle, DEADLINE).await;
        assert_apply(&seen, STATUS);
        respond_json(send, StatusCode::NOT_FOUND, &not_found());
        let (seen, send) = next_request(&mut handle, DEADLINE).await;
        assert_apply(&seen, OBJECT);
        assert_eq!(seen.body["spec"]["nodeName"], "node-1");
        echo(send, &seen.body);
        let (seen, send) = next_request(&mut handle, DEADLINE).await;
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
    let (client, mut handle) = mock_client("default");
    let shared = Arc::new(Shared::default());
    let (status_tx, status_rx) = tokio::sync::watch::channel(Some(MultusNodeStateStatus {
        ready: false,
        message: Some("starting".into()),
        ..Default::default()
    }));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let reporter = NodeStateReporter::new(client, "node-1", None);
    let task = tokio::spawn(reporter.run(status_rx, stop_rx, Arc::clone(&shared)));

    // the API server fails once
    let (seen, send) = next_request(&mut handle, DEADLINE).await;
    assert_apply(&seen, OBJECT);
    respond_json(
        send,
        StatusCode::INTERNAL_SERVER_ERROR,
        &status_body(500, "InternalError", "etcd unavailable"),
    );
    // meanwhile the agent became ready: the retry sends the latest status
    status_tx.send_replace(Some(MultusNodeStateStatus {
        ready: true,
        primary_config_file: Some("10-calico.conflist".into()),
        ..Default::default()
    }));
    let (seen, send) = next_request(&mut handle, DEADLINE).await;
    assert_apply(&seen, OBJECT);
    echo(send, &seen.body);
    let (seen, send) = next_request(&mut handle, DEADLINE).await;
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
    let (seen, send) = next_request(&mut handle, DEADLINE).await;
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
    // --once keeps giving the plugin a copy of the agent's token.
    let settings = agent_settings(&host, None);
    let (client, mut handle) = mock_client("default");
    let output = host.output();
    let server = tokio::spawn(async move {
        let (seen, send) = next_request(&mut handle, DEADLINE).await;
        assert_apply(&seen, OBJECT);
        assert_eq!(seen.body["spec"]["multusConfig"], "default");
        echo(send, &seen.body);
        let (seen, send) = next_request(&mut handle, DEADLINE).await;
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
