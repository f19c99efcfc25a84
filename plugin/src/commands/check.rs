//! CHECK: every attachment, from the cache.

use multus_config::multus_conf::MultusNetConf;

use crate::cache::{Cache, CacheError};
use crate::delegate::{self, ExecEnv};
use crate::env::CniEnv;
use crate::error::{PluginError, Result};

/// Runs CHECK of every attachment ADD made, with its cached result.
pub async fn check(env: &CniEnv, conf: &MultusNetConf) -> Result<Vec<u8>> {
    let cache = Cache::for_conf(conf);
    let cached = cache
        .load(&env.container_id, &env.ifname, &env.args.to_string())?
        .ok_or_else(|| CacheError::NothingToCheck {
            container_id: env.container_id.clone(),
        })?;
    for attachment in &cached.attachments {
        let Some(result) = &attachment.result else {
            return Err(CacheError::NoCachedResult {
                attachment: attachment.name.clone(),
            }
            .into());
        };
        let exec = ExecEnv::for_attachment(env, conf, attachment);
        delegate::check_network(
            &attachment.config,
            &attachment.capability_args,
            result,
            &exec,
        )
        .await
        .map_err(|error| PluginError::delegate(&attachment.name, error))?;
    }
    Ok(Vec::new())
}
