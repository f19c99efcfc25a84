//! GC: release attachments the runtime no longer knows, then let every
//! delegate network collect its own garbage.

use std::collections::BTreeMap;

use multus_config::cni::netconf::NetworkConfig;
use multus_config::multus_conf::MultusNetConf;
use serde::Deserialize;
use serde_json::{Value, json};

use super::del::del_all;
use crate::cache::Cache;
use crate::delegate::{self, ExecEnv};
use crate::dra;
use crate::env::CniEnv;
use crate::error::{MultusConfigError, PluginError, Result};

/// The config key carrying the runtime's valid attachments.
pub const VALID_ATTACHMENTS_KEY: &str = "cni.dev/valid-attachments";

#[derive(Debug, Deserialize)]
struct ValidAttachment {
    #[serde(rename = "containerID")]
    container_id: String,
    #[serde(default)]
    ifname: String,
}

/// Runs GC honouring `cni.dev/valid-attachments`.
pub async fn gc(env: &CniEnv, conf: &MultusNetConf) -> Result<Vec<u8>> {
    let valid: Vec<ValidAttachment> = match conf.extra.get(VALID_ATTACHMENTS_KEY) {
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(MultusConfigError::ValidAttachments)?
        }
        None => Vec::new(),
    };
    let cache = Cache::for_conf(conf);
    let mut errors = Vec::new();
    // network name -> (config, valid attachments of that network)
    let mut networks: BTreeMap<String, (NetworkConfig, Vec<Value>)> = BTreeMap::new();
    for container_id in cache.container_ids()? {
        let is_valid = valid.iter().any(|v| v.container_id == container_id);
        let runtime_ifname = valid
            .iter()
            .find(|v| v.container_id == container_id)
            .map(|v| v.ifname.clone())
            .unwrap_or_else(|| "eth0".into());
        let cached = match cache.load(&container_id, &runtime_ifname, "") {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                errors.push(e.into());
                continue;
            }
        };
        if is_valid {
            for a in &cached.attachments {
                let entry = networks
                    .entry(a.network_name().to_owned())
                    .or_insert_with(|| (a.config.clone(), Vec::new()));
                entry
                    .1
                    .push(json!({"containerID": container_id, "ifname": a.ifname}));
            }
            continue;
        }
        tracing::info!(container = %container_id, "GC: releasing attachments of a container the runtime no longer has");
        let stale_env = CniEnv {
            container_id: container_id.clone(),
            netns: None,
            ..env.clone()
        };
        let failures = del_all(&stale_env, conf, &cached.attachments).await;
        if failures.is_empty() {
            dra::withdraw_with_conf(conf, &container_id, &cached.attachments).await;
            if let Err(e) = cache.remove(&container_id) {
                errors.push(e.into());
            }
        } else {
            errors.extend(failures);
        }
        for a in &cached.attachments {
            networks
                .entry(a.network_name().to_owned())
                .or_insert_with(|| (a.config.clone(), Vec::new()));
        }
    }
    for (name, (config, valid_attachments)) in &networks {
        let exec = ExecEnv::for_network(env, conf);
        if let Err(error) = delegate::gc_network(config, valid_attachments, &exec).await {
            errors.push(PluginError::delegate(name, error));
        }
    }
    if errors.is_empty() {
        Ok(Vec::new())
    } else {
        Err(PluginError::Many(errors))
    }
}
