//! STATUS: whether the cluster network and the default networks are ready.

use std::time::Duration;

use multus_config::multus_conf::MultusNetConf;

use crate::delegate::{self, ExecEnv};
use crate::env::CniEnv;
use crate::error::{PluginError, Result};
use crate::plan::{ConfDir, NoNads, PlanInput, plan};
use crate::readiness::wait_for_readiness;

/// Runs STATUS of every delegate the config names that supports it.
pub async fn status(env: &CniEnv, conf: &MultusNetConf) -> Result<Vec<u8>> {
    wait_for_readiness(conf, Duration::from_secs(1))
        .await
        .map_err(PluginError::NotReady)?;
    let conf_dir = ConfDir::new(&conf.conf_dir);
    let input = PlanInput {
        conf,
        env,
        pod: None,
        conf_dir: &conf_dir,
    };
    let attachments = plan(&input, &NoNads).await.map_err(|(e, _)| e)?.attachments;
    for attachment in &attachments {
        let exec = ExecEnv::for_network(env, conf);
        delegate::status_network(&attachment.config, &exec)
            .await
            .map_err(|error| PluginError::delegate(&attachment.name, error))?;
    }
    Ok(Vec::new())
}
