//! `multus-operator node-agent`: logging, the async runtime and the choice
//! between running, `--once` and `--uninstall`. This is the binary's edge,
//! so its errors are `anyhow`.

use anyhow::Context as _;

use multus_config::generate::{OUTPUT_CONF, OUTPUT_CONFLIST};

use super::args::NodeAgentArgs;
use super::attached::{Upkeep, generated_config, host_mount_ns, host_process};
use super::delegate_api::{self, DELEGATE_TIMEOUT, DelegateApi, Delegator, PodCheck};
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

/// Starts upstream's delegate API on `--delegate-socket`, when set; its
/// stop sender and task (which removes the socket when it ends).
async fn start_delegate_api(
    args: &NodeAgentArgs,
    settings: &Settings,
) -> anyhow::Result<
    Option<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )>,
> {
    let Some(socket) = args.delegate_socket.clone() else {
        return Ok(None);
    };
    let binary = settings
        .plugin_source()
        .context("cannot find the multus binary for the delegate API")?;
    let host = host_process();
    match &host {
        Some((pid, ns)) => {
            tracing::info!(shim = pid, mount_ns = %ns.display(), "delegate requests run in the host's mount namespace and the runtime's cgroup")
        }
        None => tracing::warn!(
            "no host process above the agent (not in the host's PID namespace, or run on the host): delegate requests run in the agent's own namespaces and cgroup"
        ),
    }
    let pods = match (&settings.node_name, settings.kube) {
        (Some(node), true) => PodCheck::Api {
            client: kube::Client::try_default()
                .await
                .context("no API access for the delegate API")?,
            node: node.clone(),
        },
        _ => {
            tracing::warn!(
                "no API access: the delegate API does not check the node of a request's pod"
            );
            PodCheck::Off
        }
    };
    let delegator = Delegator {
        binary,
        mount_ns: host.as_ref().map(|(_, ns)| ns.clone()),
        cgroup_of: host.as_ref().map(|(pid, _)| *pid),
        cni_path: args.host_cni_bin_dir.clone(),
        conf_dir: settings.cni_conf_dir.clone(),
        timeout: DELEGATE_TIMEOUT,
    };
    let listener = delegate_api::bind(&socket)
        .await
        .with_context(|| format!("cannot serve the delegate API on {}", socket.display()))?;
    tracing::info!(socket = %socket.display(), "serving upstream's delegate API (POST /delegate, /healthz)");
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let api = std::sync::Arc::new(DelegateApi::new(delegator, pods));
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.changed().await;
        };
        if let Err(error) = delegate_api::serve(listener, socket, api, shutdown).await {
            tracing::error!(%error, "the delegate API failed");
        }
    });
    Ok(Some((stop, task)))
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
        let delegate = start_delegate_api(args, &settings).await?;
        let outcome = run(settings, shutdown).await.context("node-agent failed");
        if let Some((stop, task)) = delegate {
            let _ = stop.send(true);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), task).await;
        }
        outcome
    })
}
