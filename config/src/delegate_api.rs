//! Upstream Multus's thick-plugin delegate API (`POST /delegate`), as
//! multus-dynamic-networks-controller speaks it: the request on the wire
//! ([`WireRequest`]), validated into a [`DelegateRequest`] that the node
//! agent hands to `multus delegate`, and the answer ([`DelegateResponse`]).
//!
//! Wire format (a JSON object, unknown keys ignored as Go's decoder does):
//! - `env`: the CNI variables, `CNI_COMMAND` (`ADD` or `DEL`),
//!   `CNI_CONTAINERID` (the pod's sandbox), `CNI_NETNS` (its network
//!   namespace), `CNI_IFNAME` (default `eth0`, as upstream), `CNI_ARGS`
//!   (`K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;K8S_POD_UID=..`);
//! - `config`: the network's CNI config (a NAD's `spec.config` with its
//!   defaults), base64 as Go encodes `[]byte`; a JSON object is accepted too;
//! - `interfaceAttributes`: optional `ips`, `mac` and `cni-args`;
//! - `network` (ours, optional): `namespace/name` of the NAD, the name of
//!   the network-status entry; default `<pod namespace>/<config name>`.
//!
//! Answer: `{"Result": <CNI 1.0.0 result>}` after ADD (Go's field name; Go
//! clients decode it case-insensitively), plus `networkStatus`, the entry
//! written to the pod's network-status (ours); an empty body after DEL.
//! Errors are CNI error objects (`code`, `msg`, `details`).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cni::CniVersion;
use crate::cni::args::{CniArgs, K8S_POD_NAME, K8S_POD_NAMESPACE, K8S_POD_UID};
use crate::npwg::NetworkStatus;
use crate::npwg::selection::{interface_name_problem, parse_hardware_addr};

/// Path of the delegate endpoint.
pub const DELEGATE_PATH: &str = "/delegate";
/// Path of the health endpoint.
pub const HEALTH_PATH: &str = "/healthz";
/// Upstream's socket (`/run/multus/multus.sock` of its thick daemon).
pub const DEFAULT_SOCKET_PATH: &str = "/run/multus/multus.sock";
/// Largest request body accepted (a NAD config is at most a few KiB; the
/// API server caps objects at about 1.5 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The request as upstream's `api.Request` encodes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireRequest {
    /// CNI variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The network's CNI config: base64 (Go `[]byte`) or a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// Requested IPs, MAC and CNI args.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_attributes: Option<InterfaceAttributes>,
    /// Ours: `namespace/name` of the NAD (the network-status entry's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// Upstream's `DelegateInterfaceAttributes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InterfaceAttributes {
    /// Requested IPs (address or address/prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ips: Option<Vec<String>>,
    /// Requested MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Keys merged into the config's `args.cni`.
    #[serde(default, rename = "cni-args", skip_serializing_if = "Option::is_none")]
    pub cni_args: Option<Map<String, Value>>,
}

/// What a delegate request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DelegateCommand {
    /// Attach the network on the interface.
    Add,
    /// Detach it again.
    Del,
}

/// A validated delegate request: what the agent checks and what
/// `multus delegate` gets on stdin (inside [`DelegateInput`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelegateRequest {
    /// ADD or DEL.
    pub command: DelegateCommand,
    /// The sandbox's container ID (validated: letters, digits, `_.-`).
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The sandbox's network namespace (absolute path).
    pub netns: String,
    /// The interface inside the pod.
    pub ifname: String,
    /// `CNI_ARGS` as sent.
    pub cni_args: String,
    /// The pod's namespace.
    pub pod_namespace: String,
    /// The pod's name.
    pub pod_name: String,
    /// The pod's UID when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The network's CNI config (a conf or a conflist).
    pub config: Value,
    /// `namespace/name` of the network for the network-status.
    pub network: String,
    /// Requested IPs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// Requested MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Keys for `args.cni`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_args_map: Option<Map<String, Value>>,
}

impl DelegateRequest {
    /// `namespace/name` of the pod.
    pub fn pod(&self) -> String {
        format!("{}/{}", self.pod_namespace, self.pod_name)
    }
}

/// What the agent writes to `multus delegate`'s stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelegateInput {
    /// The node's Multus config as generated (`.conf` or `.conflist`).
    pub multus_config: Value,
    /// The request.
    pub request: DelegateRequest,
}

/// The answer to an ADD (DEL answers with an empty body).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DelegateResponse {
    /// The delegate's result in CNI 1.0.0 (upstream's `Response.Result`).
    #[serde(rename = "Result", default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The entry added to the pod's network-status (ours).
    #[serde(
        rename = "networkStatus",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network_status: Option<NetworkStatus>,
}

/// Why a delegate request is refused before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not the expected JSON.
    #[error("the request body is not a delegate request (JSON with env, config): {0}")]
    Json(String),
    /// A required CNI variable is missing.
    #[error("env.{0} is missing")]
    Missing(&'static str),
    /// `CNI_COMMAND` is not ADD or DEL.
    #[error("env.CNI_COMMAND {0:?} is not supported (ADD or DEL)")]
    Command(String),
    /// `CNI_CONTAINERID` cannot be used.
    #[error(
        "env.CNI_CONTAINERID {0:?} is invalid: it must start with a letter or digit and hold only letters, digits, '_', '.' and '-'"
    )]
    ContainerId(String),
    /// `CNI_NETNS` is not an absolute path.
    #[error("env.CNI_NETNS {0:?} is not an absolute path without '..'")]
    Netns(String),
    /// `CNI_IFNAME` is not a valid interface name.
    #[error("env.CNI_IFNAME {ifname:?} is invalid: {problem}")]
    Ifname {
        /// The name.
        ifname: String,
        /// Why.
        problem: String,
    },
    /// `CNI_ARGS` does not parse or lacks the pod.
    #[error("env.CNI_ARGS {args:?}: {problem}")]
    Args {
        /// The value.
        args: String,
        /// Why.
        problem: String,
    },
    /// The config is missing or unusable.
    #[error("config: {0}")]
    Config(String),
    /// An interface attribute is invalid.
    #[error("interfaceAttributes.{field} {value:?} is invalid: {problem}")]
    Attribute {
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
        /// Why.
        problem: String,
    },
    /// `network` is not `namespace/name`.
    #[error("network {0:?} is not namespace/name")]
    Network(String),
}

fn container_id_ok(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && id.len() <= 256
}

fn dns_label_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

fn decode_config(raw: Option<&Value>) -> Result<Value, RequestError> {
    let value = match raw {
        None | Some(Value::Null) => return Err(RequestError::Config("missing".into())),
        Some(Value::String(text)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| RequestError::Config(format!("not base64 ({e})")))?;
            serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| RequestError::Config(format!("not JSON after base64 ({e})")))?
        }
        Some(other) => other.clone(),
    };
    let Some(object) = value.as_object() else {
        return Err(RequestError::Config("not a JSON object".into()));
    };
    match object.get("cniVersion") {
        None => {}
        Some(Value::String(v)) => {
            v.parse::<CniVersion>()
                .map_err(|e| RequestError::Config(e.to_string()))?;
        }
        Some(other) => {
            return Err(RequestError::Config(format!(
                "cniVersion {other} is not a string"
            )));
        }
    }
    let has_type = object.get("type").and_then(Value::as_str).is_some();
    let has_plugins = object
        .get("plugins")
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty());
    if !has_type && !has_plugins {
        return Err(RequestError::Config(
            "neither a `type` (conf) nor non-empty `plugins` (conflist)".into(),
        ));
    }
    Ok(value)
}

/// Validates the body of `POST /delegate`.
pub fn parse_request(body: &[u8]) -> Result<DelegateRequest, RequestError> {
    let wire: WireRequest =
        serde_json::from_slice(body).map_err(|e| RequestError::Json(e.to_string()))?;
    let get = |key: &'static str| wire.env.get(key).map(|v| v.trim().to_owned());
    let command = match get("CNI_COMMAND")
        .ok_or(RequestError::Missing("CNI_COMMAND"))?
        .to_ascii_uppercase()
        .as_str()
    {
        "ADD" => DelegateCommand::Add,
        "DEL" => DelegateCommand::Del,
        other => return Err(RequestError::Command(other.to_owned())),
    };
    let container_id = get("CNI_CONTAINERID").ok_or(RequestError::Missing("CNI_CONTAINERID"))?;
    if !container_id_ok(&container_id) {
        return Err(RequestError::ContainerId(container_id));
    }
    let netns = get("CNI_NETNS").ok_or(RequestError::Missing("CNI_NETNS"))?;
    if !netns.starts_with('/') || netns.split('/').any(|part| part == "..") {
        return Err(RequestError::Netns(netns));
    }
    let ifname = get("CNI_IFNAME")
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| "eth0".into());
    if let Some(problem) = interface_name_problem(&ifname) {
        return Err(RequestError::Ifname { ifname, problem });
    }
    let cni_args = get("CNI_ARGS").ok_or(RequestError::Missing("CNI_ARGS"))?;
    let args_error = |problem: String| RequestError::Args {
        args: cni_args.clone(),
        problem,
    };
    let parsed = CniArgs::parse(&cni_args).map_err(|e| args_error(e.to_string()))?;
    let pod_namespace = parsed
        .get(K8S_POD_NAMESPACE)
        .filter(|v| dns_label_ok(v))
        .ok_or_else(|| args_error("no valid K8S_POD_NAMESPACE".into()))?
        .to_owned();
    let pod_name = parsed
        .get(K8S_POD_NAME)
        .filter(|v| dns_label_ok(v))
        .ok_or_else(|| args_error("no valid K8S_POD_NAME".into()))?
        .to_owned();
    let pod_uid = parsed
        .get(K8S_POD_UID)
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let config = decode_config(wire.config.as_ref())?;
    let network = match wire.network.as_deref().map(str::trim) {
        Some(n) => match n.split_once('/') {
            Some((ns, name)) if dns_label_ok(ns) && dns_label_ok(name) => n.to_owned(),
            _ => return Err(RequestError::Network(n.to_owned())),
        },
        None => {
            let name = config
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    RequestError::Config("no `name` (and no `network` in the request)".into())
                })?;
            format!("{pod_namespace}/{name}")
        }
    };
    let attributes = wire.interface_attributes.unwrap_or_default();
    let ips = attributes.ips.unwrap_or_default();
    for ip in &ips {
        if let Some(problem) = crate::npwg::selection::ip_or_cidr_problem(ip) {
            return Err(RequestError::Attribute {
                field: "ips",
                value: ip.clone(),
                problem,
            });
        }
    }
    let mac = attributes.mac.filter(|m| !m.is_empty());
    if let Some(mac) = &mac
        && parse_hardware_addr(mac).is_none()
    {
        return Err(RequestError::Attribute {
            field: "mac",
            value: mac.clone(),
            problem: "not a hardware address".into(),
        });
    }
    Ok(DelegateRequest {
        command,
        container_id,
        netns,
        ifname,
        cni_args,
        pod_namespace,
        pod_name,
        pod_uid,
        config,
        network,
        ips,
        mac,
        cni_args_map: attributes.cni_args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What multus-dynamic-networks-controller sends (Go's encoding of
    /// `api.Request`: `config` is base64, `cni-args` null when unset).
    fn upstream_body(command: &str, attributes: Value) -> Vec<u8> {
        let config = br#"{"cniVersion":"0.3.1","name":"macvlan1","type":"macvlan","master":"eth0","ipam":{"type":"static"}}"#;
        serde_json::to_vec(&json!({
            "env": {
                "CNI_COMMAND": command,
                "CNI_CONTAINERID": "3f5c2a1b9d",
                "CNI_NETNS": "/var/run/netns/cni-1234",
                "CNI_IFNAME": "net1",
                "CNI_ARGS": "K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod-a;K8S_POD_UID=1d2e-3f"
            },
            "config": base64::engine::general_purpose::STANDARD.encode(config),
            "interfaceAttributes": attributes
        }))
        .unwrap()
    }

    #[test]
    fn upstreams_exact_request_parses() {
        let body = upstream_body(
            "ADD",
            json!({"ips":["10.1.1.5/24"],"mac":"02:03:04:05:06:07","cni-args":null}),
        );
        let r = parse_request(&body).unwrap();
        assert_eq!(r.command, DelegateCommand::Add);
        assert_eq!(r.container_id, "3f5c2a1b9d");
        assert_eq!(r.netns, "/var/run/netns/cni-1234");
        assert_eq!(r.ifname, "net1");
        assert_eq!(r.pod(), "ns1/pod-a");
        assert_eq!(r.pod_uid.as_deref(), Some("1d2e-3f"));
        assert_eq!(r.config["type"], "macvlan");
        assert_eq!(r.network, "ns1/macvlan1");
        assert_eq!(r.ips, ["10.1.1.5/24"]);
        assert_eq!(r.mac.as_deref(), Some("02:03:04:05:06:07"));
        assert_eq!(r.cni_args_map, None);
        // no attributes at all (omitempty pointer), DEL, our network name
        let mut wire: Value = serde_json::from_slice(&upstream_body("DEL", Value::Null)).unwrap();
        wire.as_object_mut().unwrap().remove("interfaceAttributes");
        wire["network"] = json!("shared/macvlan-nad");
        let r = parse_request(&serde_json::to_vec(&wire).unwrap()).unwrap();
        assert_eq!(r.command, DelegateCommand::Del);
        assert_eq!(r.network, "shared/macvlan-nad");
        assert!(r.ips.is_empty());
    }

    #[test]
    fn a_config_object_and_a_missing_ifname_are_accepted() {
        let body = json!({
            "env": {"CNI_COMMAND":"add","CNI_CONTAINERID":"c1","CNI_NETNS":"/proc/1/ns/net",
                    "CNI_ARGS":"K8S_POD_NAMESPACE=a;K8S_POD_NAME=b"},
            "config": {"cniVersion":"1.0.0","name":"br","plugins":[{"type":"bridge"}]},
            "unknownKey": 1
        });
        let r = parse_request(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.ifname, "eth0", "upstream's default");
        assert_eq!(r.pod_uid, None);
        assert_eq!(r.network, "a/br");
    }

    #[test]
    fn bad_requests_name_the_culprit() {
        let base: Value = serde_json::from_slice(&upstream_body("ADD", Value::Null)).unwrap();
        let with = |path: &[&str], value: Value| {
            let mut v = base.clone();
            let mut target = &mut v;
            for key in &path[..path.len() - 1] {
                target = &mut target[*key];
            }
            let last = path[path.len() - 1];
            if value.is_null() {
                target.as_object_mut().unwrap().remove(last);
            } else {
                target[last] = value;
            }
            parse_request(&serde_json::to_vec(&v).unwrap()).unwrap_err()
        };
        let b64 = |s: &str| json!(base64::engine::general_purpose::STANDARD.encode(s));
        let cases: Vec<(RequestError, &str)> = vec![
            (
                parse_request(b"garbage").unwrap_err(),
                "not a delegate request",
            ),
            (
                parse_request(b"[1,2]").unwrap_err(),
                "not a delegate request",
            ),
            (
                with(&["env", "CNI_COMMAND"], Value::Null),
                "CNI_COMMAND is missing",
            ),
            (
                with(&["env", "CNI_COMMAND"], json!("CHECK")),
                "\"CHECK\" is not supported",
            ),
            (
                with(&["env", "CNI_CONTAINERID"], json!("../etc")),
                "CNI_CONTAINERID \"../etc\"",
            ),
            (
                with(&["env", "CNI_NETNS"], json!("cni-1")),
                "CNI_NETNS \"cni-1\"",
            ),
            (
                with(&["env", "CNI_NETNS"], json!("/run/../etc")),
                "CNI_NETNS",
            ),
            (with(&["env", "CNI_IFNAME"], json!("a/b")), "contains '/'"),
            (
                with(&["env", "CNI_IFNAME"], json!("sixteen-bytes-xx")),
                "15 bytes",
            ),
            (
                with(&["env", "CNI_ARGS"], json!("K8S_POD_NAME=x")),
                "K8S_POD_NAMESPACE",
            ),
            (with(&["env", "CNI_ARGS"], json!("garbage")), "CNI_ARGS"),
            (with(&["config"], Value::Null), "config: missing"),
            (with(&["config"], json!("***")), "not base64"),
            (with(&["config"], b64("{nope")), "not JSON"),
            (
                with(
                    &["config"],
                    b64(r#"{"cniVersion":"9.9.9","type":"x","name":"n"}"#),
                ),
                "unknown CNI version \"9.9.9\"",
            ),
            (
                with(&["config"], b64(r#"{"name":"n"}"#)),
                "neither a `type`",
            ),
            (with(&["config"], b64(r#"{"type":"bridge"}"#)), "no `name`"),
            (
                with(&["interfaceAttributes"], json!({"ips":["10.0.0.300"]})),
                "interfaceAttributes.ips",
            ),
            (
                with(&["interfaceAttributes"], json!({"mac":"zz"})),
                "interfaceAttributes.mac",
            ),
            (
                with(&["network"], json!("no-slash")),
                "network \"no-slash\"",
            ),
        ];
        for (error, expected) in cases {
            assert!(error.to_string().contains(expected), "{error} / {expected}");
        }
    }

    #[test]
    fn the_response_uses_gos_field_name() {
        let response = DelegateResponse {
            result: Some(json!({"cniVersion":"1.0.0"})),
            network_status: None,
        };
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({"Result":{"cniVersion":"1.0.0"}})
        );
    }
}
