//! `multus-operator node-agent`: logging, the async runtime and the choice
//! between running, `--once` and `--uninstall`. This is the binary's edge,
//! so its errors are `anyhow`.

use anyhow::Context as _;

use multus_config::generate::{OUTPUT_CONF, OUTPUT_CONFLIST};

use super::args::NodeAgentArgs;
use super::attached::{Upkeep, generated_config, host_mount_ns};
use super::removal::{POLL, RemovalReporter, settle_attached_pods};
use super::settings::Settings;
use super::{run, run_once, shutdown_signal, uninstall};

/// Before `--uninstall` removes anything: waits for (or detaches) the
/// pods still attached through Multus ([`super::removal`]). Nothing to do
/// without a generated Multus config (nothing can have been attached
/// through it) or without the plugin binary to ask.
async fn settle(args: &NodeAgentArgs, settings: &Settings) -> anyhow::Result<()> {
    let Some(config) = generated_config(&settings.cni_conf_dir, &[OUTPUT_CONFLIST, OUTPUT_CONF])
    else {
        tracing::info!("no Multus config on the node: no pod can be attached through it");
        return Ok(());
    };
    let binary = settings
        .plugin_source()
        .context("cannot find the multus binary to ask about attached pods")?;
    let upkeep = Upkeep {
        binary,
        mount_ns: host_mount_ns(),
        config,
        cni_path: args.host_cni_bin_dir.clone(),
    };
    let reporter = match (&settings.node_name, settings.kube) {
        (Some(node), true) => match kube::Client::try_default().await {
            Ok(client) => Some(RemovalReporter::new(client, node.clone())),
            Err(error) => {
                tracing::warn!(%error, "no API access: the pods waited for are only logged");
                None
            }
        },
        _ => None,
    };
    let shutdown = shutdown_signal().context("cannot install signal handlers")?;
    settle_attached_pods(&upkeep, args.attached_pods, reporter, POLL, shutdown).await?;
    Ok(())
}

/// Runs `multus-operator node-agent` with `args`.
pub fn main(args: &NodeAgentArgs) -> anyhow::Result<()> {
    crate::logging::init(args.log_format);
    let settings = args.settings();
    if args.uninstall {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        runtime
            .block_on(settle(args, &settings))
            .context("node-agent --uninstall did not finish")?;
        let report = uninstall(&settings).context("node-agent --uninstall failed")?;
        tracing::info!(
            removed = report.removed.len(),
            kept = report.kept.len(),
            "uninstall done"
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        if args.once {
            let status = run_once(settings)
                .await
                .context("node-agent --once failed")?;
            tracing::info!(
                primary = status.primary_config_file.as_deref().unwrap_or_default(),
                file = status.generated_config_file.as_deref().unwrap_or_default(),
                "done"
            );
            return Ok(());
        }
        let shutdown = shutdown_signal().context("cannot install signal handlers")?;
        run(settings, shutdown).await.context("node-agent failed")
    })
}
