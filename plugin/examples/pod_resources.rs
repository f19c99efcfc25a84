//! Asks the kubelet's PodResources API which devices a pod holds, with the
//! plugin's own client, and prints them as JSON: per container as the
//! kubelet reports them, and per resource in the order `multus` hands them
//! to networks. For checking a node by hand:
//!
//! ```text
//! cargo run -p multus-plugin --example pod_resources -- NAMESPACE NAME [SOCKET]
//! ```
//!
//! `raw` is the kubelet's answer re-encoded as protobuf (base64), for
//! recording it in a test.

#![allow(clippy::print_stdout)] // a command-line tool reports on stdout

use std::path::PathBuf;

use base64::Engine;
use multus_config::multus_conf::DEFAULT_POD_RESOURCES_SOCKET;
use multus_plugin::devices::PodDevices;
use multus_plugin::podresources::{KUBELET_TIMEOUT, pod_resources};
use prost::Message;
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [namespace, name, rest @ ..] = args.as_slice() else {
        return Err("usage: pod_resources NAMESPACE NAME [SOCKET]".into());
    };
    let socket = PathBuf::from(
        rest.first()
            .map_or(DEFAULT_POD_RESOURCES_SOCKET, String::as_str),
    );
    let pod = pod_resources(&socket, namespace, name, KUBELET_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the kubelet does not list pod {namespace}/{name}"))?;
    let containers: Vec<Value> = pod
        .containers
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "devices": c.devices.iter().map(|d| json!({
                    "resource": d.resource_name, "ids": d.device_ids
                })).collect::<Vec<_>>(),
                "dynamicResources": c.dynamic_resources.len(),
            })
        })
        .collect();
    let held = PodDevices::from_pod_resources(&pod);
    let order: serde_json::Map<String, Value> = held
        .resources()
        .map(|(resource, ids)| (resource.to_owned(), json!(ids)))
        .collect();
    let report = json!({
        "pod": format!("{namespace}/{name}"),
        "containers": containers,
        "assignmentOrder": order,
        "raw": base64::engine::general_purpose::STANDARD.encode(pod.encode_to_vec()),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    Ok(())
}
