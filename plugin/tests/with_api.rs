//! ADD/DEL of the `multus` binary against a fake Kubernetes API server (a
//! real HTTP server in this test process) and real plugins in a real network
//! namespace: annotation → NAD → delegates → default route → network-status.
//! Root only.

mod common;

use std::path::Path;
use std::time::Duration;

use common::fake_api::*;
use common::*;
use serde_json::{Value, json};

fn default_routes(sb: &Sandbox) -> Vec<(String, String)> {
    let out = sh(&[
        "ip", "-n", &sb.netns, "-4", "-j", "route", "show", "default",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["dev"].as_str().unwrap().to_owned(),
                r["gateway"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Stops the API server and runs DEL, which must work from the cache.
fn del_with_the_api_gone(
    stop: tokio::sync::oneshot::Sender<()>,
    container_id: &str,
    netns: &Path,
    conf: &Value,
) {
    stop.send(()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    multus("DEL", container_id, Some(netns), conf).assert_success("DEL");
}

#[test]
fn annotated_pod_gets_its_networks_default_route_and_status() {
    if !multus_e2e::root_or_skip("annotated_pod_gets_its_networks_default_route_and_status") {
        return;
    }
    let mut sb = Sandbox::new();
    let data = sb.path("ipam");
    let (br0, br1) = (sb.bridge(), sb.bridge());
    let mut cluster = bridge_conf("cluster", &br0, "10.98.1.0/24", &data);
    cluster["isDefaultGateway"] = json!(true);
    let extra = bridge_conf("extra", &br1, "10.98.2.0/24", &data);
    let api = api_with(
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "pod-c1", "namespace": "default", "uid": "uid-c1",
                "annotations": {"k8s.v1.cni.cncf.io/networks":
                    r#"[{"name":"extra","default-route":["10.98.2.1"]},{"name":"extra","interface":"data0"}]"#}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]}
        }),
        &[("default", "extra", &extra)],
    );
    let (addr, stop) = serve(api.clone());
    let kubeconfig = write_kubeconfig(&sb, addr);
    let conf = json!({
        "cniVersion": "0.3.1", "name": "multus-cni-network", "type": "multus",
        "kubeconfig": kubeconfig, "cniDir": sb.path("cache"), "confDir": sb.path("none"),
        "delegates": [cluster]
    });
    let netns = sb.netns_path();

    let add = multus("ADD", "c1", Some(&netns), &conf);
    add.assert_success("ADD");
    let result = add.json();
    assert_eq!(
        result["cniVersion"], "0.3.1",
        "converted to the Multus config's version"
    );
    assert_eq!(result["ips"][0]["version"], "4");

    // The kernel: three interfaces, the only IPv4 default route via net1.
    assert!(sb.addresses("eth0").unwrap()[0].starts_with("10.98.1."));
    assert!(sb.addresses("net1").unwrap()[0].starts_with("10.98.2."));
    assert!(sb.addresses("data0").unwrap()[0].starts_with("10.98.2."));
    assert_eq!(
        default_routes(&sb),
        [("net1".to_owned(), "10.98.2.1".to_owned())]
    );

    let requests = api.lock().unwrap().requests.clone();
    let count = |m: &str, suffix: &str| {
        requests
            .iter()
            .filter(|(method, path, _)| method == m && path.ends_with(suffix))
            .count()
    };
    assert_eq!(
        count("GET", "/pods/pod-c1"),
        1,
        "one pod GET: {requests:#?}"
    );
    assert_eq!(
        count("GET", "/network-attachment-definitions/extra"),
        1,
        "one GET per distinct NAD"
    );
    assert_eq!(
        count("PATCH", "/pods/pod-c1/status"),
        1,
        "one status update"
    );
    assert_eq!(
        count("POST", "/events"),
        2,
        "an AddedInterface event per attachment"
    );

    let (body, status) = network_status_patch(&api);
    assert_eq!(body["metadata"]["uid"], "uid-c1");
    assert_eq!(
        status_summary(&status),
        [
            ("cluster", "eth0", true),
            ("default/extra", "net1", false),
            ("default/extra", "data0", false)
        ]
    );
    assert_eq!(status[1]["default-route"], json!(["10.98.2.1"]));
    assert!(
        status[0].get("default-route").is_none(),
        "eth0 lost its default route"
    );

    // DEL works from the cache with the API server gone.
    del_with_the_api_gone(stop, "c1", &netns, &conf);
    assert_eq!(sb.links(), ["lo"]);
    assert!(allocations(&data).is_empty(), "every IP released");
}

#[test]
fn missing_nad_fails_add_with_a_warning_event_and_leaves_nothing() {
    if !multus_e2e::root_or_skip("missing_nad_fails_add_with_a_warning_event_and_leaves_nothing") {
        return;
    }
    let mut sb = Sandbox::new();
    let data = sb.path("ipam");
    let br0 = sb.bridge();
    let api = api_with(
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "pod-c2", "namespace": "default", "uid": "uid-c2",
                "annotations": {"k8s.v1.cni.cncf.io/networks": "ghost"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}
        }),
        &[],
    );
    let (addr, _stop) = serve(api.clone());
    let conf = json!({
        "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
        "kubeconfig": write_kubeconfig(&sb, addr), "cniDir": sb.path("cache"),
        "delegates": [bridge_conf("cluster", &br0, "10.98.3.0/24", &data)]
    });
    let add = multus("ADD", "c2", Some(&sb.netns_path()), &conf);
    assert!(!add.success);
    let err = add.json();
    assert!(
        err["msg"].as_str().unwrap().contains("default/ghost"),
        "{err}"
    );
    let events = request_bodies(&api, "POST", "/events");
    let event: Value = serde_json::from_str(events.first().expect("a Warning event")).unwrap();
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "NoNetworkFound");
    assert_eq!(sb.links(), ["lo"], "no delegate ran");
    assert!(allocations(&data).is_empty());
    assert!(!sb.path("cache/c2").exists());
}

#[test]
fn rejected_token_fails_add_naming_the_token_file_and_del_still_works() {
    if !multus_e2e::root_or_skip(
        "rejected_token_fails_add_naming_the_token_file_and_del_still_works",
    ) {
        return;
    }
    let mut sb = Sandbox::new();
    let data = sb.path("ipam");
    let (br0, br1) = (sb.bridge(), sb.bridge());
    let extra = bridge_conf("extra", &br1, "10.98.6.0/24", &data);
    let api = api_with(
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "pod-c5", "namespace": "default", "uid": "uid-c5",
                "annotations": {"k8s.v1.cni.cncf.io/networks": "extra"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}
        }),
        &[("default", "extra", &extra)],
    );
    let (addr, _stop) = serve(api.clone());
    let conf = json!({
        "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
        "kubeconfig": write_kubeconfig(&sb, addr), "cniDir": sb.path("cache"),
        "delegates": [bridge_conf("cluster", &br0, "10.98.5.0/24", &data)]
    });
    // Set up while the token is good.
    let add = multus("ADD", "c5", Some(&sb.netns_path()), &conf);
    add.assert_success("ADD");
    assert_eq!(sb.links(), ["lo", "eth0", "net1"]);
    assert_eq!(allocations(&data).len(), 2);

    // The token is rejected from now on (expired, ServiceAccount deleted).
    api.lock().unwrap().unauthorized = true;
    let add = multus("ADD", "c6", Some(&sb.netns_path()), &conf);
    assert!(!add.success);
    let err = add.json();
    let msg = err["msg"].as_str().unwrap();
    let token = sb.path("token");
    assert!(
        msg.contains(&token.display().to_string()),
        "names the token file: {err}"
    );
    assert!(msg.contains("401"), "{err}");
    assert!(msg.contains("expired"), "says the likely cause: {err}");
    assert!(msg.contains("node agent"), "says who renews it: {err}");
    assert!(!sb.path("cache/c6").exists(), "nothing was set up for c6");
    assert_eq!(allocations(&data).len(), 2, "no address taken for c6");

    // DEL of the pod set up before still tears everything down from the
    // cache, with the API rejecting every request.
    let del = multus("DEL", "c5", Some(&sb.netns_path()), &conf);
    del.assert_success("DEL");
    assert_eq!(sb.links(), ["lo"]);
    assert!(allocations(&data).is_empty());
    assert!(!sb.path("cache/c5").exists());
}

#[test]
fn unreachable_api_server_fails_add_as_retryable_and_del_still_works() {
    if !multus_e2e::root_or_skip(
        "unreachable_api_server_fails_add_as_retryable_and_del_still_works",
    ) {
        return;
    }
    let mut sb = Sandbox::new();
    let data = sb.path("ipam");
    let br0 = sb.bridge();
    // Nothing listens on port 1.
    let kubeconfig = write_kubeconfig(&sb, "127.0.0.1:1".parse().unwrap());
    let conf = json!({
        "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
        "kubeconfig": kubeconfig, "cniDir": sb.path("cache"),
        "delegates": [bridge_conf("cluster", &br0, "10.98.4.0/24", &data)]
    });
    let add = multus("ADD", "c3", Some(&sb.netns_path()), &conf);
    assert!(!add.success);
    let err = add.json();
    assert_eq!(err["code"], 11, "try again later: {err}");
    assert!(
        err["msg"].as_str().unwrap().contains("pod-c3"),
        "names the pod: {err}"
    );
    assert_eq!(sb.links(), ["lo"]);
    // Without a cache and without the API, DEL releases the cluster network.
    let del = multus("DEL", "c3", Some(&sb.netns_path()), &conf);
    assert!(del.success, "{}", String::from_utf8_lossy(&del.stdout));
}

#[test]
fn inline_delegates_come_before_the_annotation_networks() {
    if !multus_e2e::root_or_skip("inline_delegates_come_before_the_annotation_networks") {
        return;
    }
    let mut sb = Sandbox::new();
    let data = sb.path("ipam");
    let (br0, br1, br2) = (sb.bridge(), sb.bridge(), sb.bridge());
    let extra = bridge_conf("extra", &br2, "10.96.3.0/24", &data);
    let api = api_with(
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "pod-c5", "namespace": "default", "uid": "uid-c5",
                "annotations": {"k8s.v1.cni.cncf.io/networks": "extra,extra@data0"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}
        }),
        &[("default", "extra", &extra)],
    );
    let (addr, stop) = serve(api.clone());
    let conf = json!({
        "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
        "kubeconfig": write_kubeconfig(&sb, addr), "cniDir": sb.path("cache"),
        "confDir": sb.path("none"),
        "delegates": [
            bridge_conf("cluster", &br0, "10.96.1.0/24", &data),
            bridge_conf("static", &br1, "10.96.2.0/24", &data)
        ]
    });
    let netns = sb.netns_path();
    let add = multus("ADD", "c5", Some(&netns), &conf);
    add.assert_success("ADD");
    let result = add.json();
    let eth0 = sb.addresses("eth0").unwrap();
    assert!(eth0[0].starts_with("10.96.1."), "{eth0:?}");
    assert_eq!(result["ips"][0]["address"], eth0[0].as_str(), "{result}");
    let net1 = sb.addresses("net1").expect("the static delegate on net1");
    assert!(net1[0].starts_with("10.96.2."), "{net1:?}");
    let net2 = sb
        .addresses("net2")
        .expect("the annotation network on net2");
    assert!(net2[0].starts_with("10.96.3."), "{net2:?}");
    assert!(sb.addresses("data0").unwrap()[0].starts_with("10.96.3."));

    let (_, status) = network_status_patch(&api);
    assert_eq!(
        status_summary(&status),
        [
            ("cluster", "eth0", true),
            ("static", "net1", false),
            ("default/extra", "net2", false),
            ("default/extra", "data0", false)
        ]
    );
    assert_eq!(
        request_bodies(&api, "POST", "/events").len(),
        3,
        "an AddedInterface event per attachment but the cluster network"
    );

    // DEL from the cache, API gone: every interface and IP released.
    del_with_the_api_gone(stop, "c5", &netns, &conf);
    assert_eq!(sb.links(), ["lo"]);
    assert!(allocations(&data).is_empty(), "every IP released");
    assert!(!sb.path("cache/c5").exists());
}
