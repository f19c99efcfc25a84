//! Turns the files of a CNI conf dir into `00-multus.conf[list]`.
//!
//! Pure: the caller lists the directory (regular files and symlinks only) and
//! writes the result. Rules (docs/architecture.md, "Node agent rules"):
//! - candidates are `*.conf` and `*.conflist`, in byte-wise name order;
//! - our own output and any config of type `multus`/`multus-shim` are skipped
//!   (a Multus config elected as primary would nest Multus in itself);
//! - the first candidate that parses and has a known `cniVersion` wins, unless
//!   a file name is pinned;
//! - the output is `00-multus.conflist` for cniVersion >= 1.0.0, else
//!   `00-multus.conf`, with the primary embedded whole as the first delegate
//!   and `capabilities` = the union of the primary's.

pub mod kubeconfig;
pub mod options;

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::cni::CniVersion;
use crate::cni::netconf::NetworkConfig;
use crate::conf_file::ConfFile;
use crate::multus_conf::{MULTUS_NETWORK_NAME, MULTUS_PLUGIN_TYPE, MULTUS_SHIM_TYPE};

pub use kubeconfig::{KubeconfigParams, render_kubeconfig, server_url};
pub use options::GeneratorOptions;

/// Output file name for configs older than CNI 1.0.0.
pub const OUTPUT_CONF: &str = "00-multus.conf";
/// Output file name for CNI 1.0.0 and newer.
pub const OUTPUT_CONFLIST: &str = "00-multus.conflist";

/// A candidate file that was not elected, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFile {
    /// File name in the conf dir.
    pub name: String,
    /// Human-readable reason.
    pub reason: String,
}

/// The elected primary config.
#[derive(Debug, Clone, PartialEq)]
pub struct Election {
    /// File name of the primary.
    pub file_name: String,
    /// Its parsed config.
    pub config: NetworkConfig,
    /// Its CNI version.
    pub cni_version: CniVersion,
    /// Candidates before it that were skipped, in order.
    pub skipped: Vec<SkippedFile>,
}

/// A generated Multus config.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The elected primary.
    pub election: Election,
    /// File name to write (`00-multus.conf` or `00-multus.conflist`).
    pub file_name: &'static str,
    /// The other output name, which must not be left behind if we wrote it.
    pub stale_file_name: &'static str,
    /// The file's contents.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`, lowercase hex.
    pub hash: String,
}

/// Why no Multus config could be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    /// No candidate qualified.
    #[error("no primary CNI config in the conf dir: {}", describe_skipped(.skipped))]
    NoPrimary {
        /// Every candidate and why it was skipped.
        skipped: Vec<SkippedFile>,
    },
    /// The pinned primary file is not in the directory.
    #[error("the pinned primary config file {0:?} is not in the conf dir")]
    PinnedMissing(String),
    /// The pinned primary file cannot be used.
    #[error("the pinned primary config file {name:?} cannot be used: {reason}")]
    PinnedInvalid {
        /// File name.
        name: String,
        /// Why.
        reason: String,
    },
}

fn describe_skipped(skipped: &[SkippedFile]) -> String {
    if skipped.is_empty() {
        return "no *.conf or *.conflist file found".to_owned();
    }
    skipped
        .iter()
        .map(|s| format!("{} ({})", s.name, s.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether a file name is a CNI config candidate (exact `.conf` or
/// `.conflist` extension; `.json` is not considered, as in libcni).
pub fn is_candidate_name(name: &str) -> bool {
    let stem_ok = |ext: &str| name.len() > ext.len() && name.ends_with(ext);
    stem_ok(".conf") || stem_ok(".conflist")
}

/// Checks one candidate; `Err` carries the reason it cannot be the primary.
fn qualify(file: &ConfFile) -> Result<(NetworkConfig, CniVersion), String> {
    if file.name == OUTPUT_CONF || file.name == OUTPUT_CONFLIST {
        return Err("our own output".to_owned());
    }
    let config =
        NetworkConfig::parse(&file.bytes).map_err(|e| format!("not a valid CNI config: {e}"))?;
    if let Some(kind) = config
        .plugin_types()
        .first()
        .copied()
        .filter(|t| *t == MULTUS_PLUGIN_TYPE || *t == MULTUS_SHIM_TYPE)
    {
        return Err(format!(
            "a Multus config (type {kind:?}); Multus never delegates to itself"
        ));
    }
    let version = match config.cni_version_str() {
        None | Some("") => return Err("has no cniVersion".to_owned()),
        Some(text) => text.parse::<CniVersion>().map_err(|e| e.to_string())?,
    };
    Ok((config, version))
}

/// Elects the primary config among `files` (any order).
pub fn elect_primary(files: &[ConfFile], pinned: Option<&str>) -> Result<Election, GenerateError> {
    if let Some(name) = pinned {
        let file = files
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| GenerateError::PinnedMissing(name.to_owned()))?;
        let (config, cni_version) =
            qualify(file).map_err(|reason| GenerateError::PinnedInvalid {
                name: name.to_owned(),
                reason,
            })?;
        return Ok(Election {
            file_name: name.to_owned(),
            config,
            cni_version,
            skipped: Vec::new(),
        });
    }
    let mut candidates: Vec<&ConfFile> = files
        .iter()
        .filter(|f| is_candidate_name(&f.name))
        .collect();
    candidates.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut skipped = Vec::new();
    for file in candidates {
        match qualify(file) {
            Ok((config, cni_version)) => {
                return Ok(Election {
                    file_name: file.name.clone(),
                    config,
                    cni_version,
                    skipped,
                });
            }
            Err(reason) => skipped.push(SkippedFile {
                name: file.name.clone(),
                reason,
            }),
        }
    }
    Err(GenerateError::NoPrimary { skipped })
}

/// The Multus plugin's settings for `options`, in a fixed key order.
fn multus_settings(
    options: &GeneratorOptions,
    capabilities: &BTreeMap<String, bool>,
) -> Map<String, Value> {
    let mut m = Map::new();
    if !capabilities.is_empty() {
        m.insert("capabilities".into(), json!(capabilities));
    }
    if let Some(path) = &options.kubeconfig {
        m.insert("kubeconfig".into(), json!(path));
    }
    m.insert("logLevel".into(), json!(options.log_level.as_str()));
    m.insert("logToStderr".into(), json!(options.log_to_stderr));
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            m.insert(key.to_owned(), value);
        }
    };
    put("logFile", options.log_file.as_ref().map(|v| json!(v)));
    put(
        "namespaceIsolation",
        options.namespace_isolation.then(|| json!(true)),
    );
    put(
        "globalNamespaces",
        (!options.global_namespaces.is_empty()).then(|| json!(options.global_namespaces.join(","))),
    );
    put(
        "systemNamespaces",
        options.system_namespaces.as_ref().map(|v| json!(v)),
    );
    put(
        "multusNamespace",
        options.multus_namespace.as_ref().map(|v| json!(v)),
    );
    put(
        "clusterNetwork",
        options.cluster_network.as_ref().map(|v| json!(v)),
    );
    put(
        "defaultNetworks",
        (!options.default_networks.is_empty()).then(|| json!(options.default_networks)),
    );
    put(
        "readinessindicatorfile",
        options.readiness_indicator_file.as_ref().map(|v| json!(v)),
    );
    put(
        "binDir",
        options.additional_bin_dir.as_ref().map(|v| json!(v)),
    );
    put(
        "confDir",
        options.multus_conf_dir.as_ref().map(|v| json!(v)),
    );
    put("cniDir", options.cache_dir.as_ref().map(|v| json!(v)));
    put(
        "podResourcesSocket",
        options.pod_resources_socket.as_ref().map(|v| json!(v)),
    );
    put(
        "nodeAgentSocket",
        options.node_agent_socket.as_ref().map(|v| json!(v)),
    );
    put(
        "nodeAgentReportSocket",
        options.node_agent_report_socket.as_ref().map(|v| json!(v)),
    );
    m
}

/// Builds the Multus config for an elected primary.
pub fn build(election: Election, options: &GeneratorOptions) -> Generated {
    let version = options.cni_version.unwrap_or(election.cni_version);
    let capabilities = election.config.capabilities();
    let mut plugin = Map::new();
    plugin.insert("type".into(), json!(MULTUS_PLUGIN_TYPE));
    plugin.extend(multus_settings(options, &capabilities));
    plugin.insert("delegates".into(), json!([election.config.to_value()]));

    let (document, file_name, stale_file_name) = if version.prefers_conflist() {
        let document = json!({
            "cniVersion": version.as_str(),
            "name": MULTUS_NETWORK_NAME,
            "plugins": [plugin],
        });
        (document, OUTPUT_CONFLIST, OUTPUT_CONF)
    } else {
        let mut document = Map::new();
        document.insert("cniVersion".into(), json!(version.as_str()));
        document.insert("name".into(), json!(MULTUS_NETWORK_NAME));
        document.extend(plugin);
        (Value::Object(document), OUTPUT_CONF, OUTPUT_CONFLIST)
    };
    // `{:#}` pretty-prints a JSON value and cannot fail.
    let bytes = format!("{document:#}\n").into_bytes();
    let hash = hex_sha256(&bytes);
    Generated {
        election,
        file_name,
        stale_file_name,
        bytes,
        hash,
    }
}

/// Elects the primary among `files` and builds the Multus config.
pub fn generate(
    files: &[ConfFile],
    options: &GeneratorOptions,
) -> Result<Generated, GenerateError> {
    let election = elect_primary(files, options.primary_config_file.as_deref())?;
    Ok(build(election, options))
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests;
