//! STATUS: whether the cluster network and the default networks are ready.

use multus_config::multus_conf::MultusNetConf;

use crate::delegate::{self, ExecEnv};
use crate::env::CniEnv;
use crate::error::{PluginError, Result};
use crate::plan::{ConfDir, NoNads, PlanInput, plan};
use crate::readiness::wait_for_readiness;

/// Runs STATUS of every delegate the config names that supports it.
pub async fn status(env: &CniEnv, conf: &MultusNetConf) -> Result<Vec<u8>> {
    wait_for_readiness(conf, std::time::Duration::from_secs(1))
        .await
        .map_err(|e| PluginError::Delegate {
            attachment: "readiness".into(),
            error: multus_config::cni::error::CniError::new(
                multus_config::cni::error::ErrorCode::PluginNotAvailable,
                e.to_string(),
                "",
            ),
        })?;
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
            .map_err(|error| PluginError::Delegate {
                attachment: attachment.name.clone(),
                error,
            })?;
    }
    Ok(Vec::new())
}
