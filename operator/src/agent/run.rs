//! The agent's event loop: start (install the plugin, take over the
//! plugin's credential, watch the directories, first pass, serve
//! `/healthz`, `/readyz`, `/metrics`, report the node state), then turn
//! watch events, timers and credential tasks into [`Dirty`] flags for
//! [`Agent::reconcile`] until shutdown; and `--once`. What a pass does with
//! the flags is decided in [`super::reconcile`].

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use multus_config::crd::MultusNodeStateStatus;
use tokio::sync::watch as channel;
use tokio::time::Instant;

use super::attached::host_process;
use super::credential::{self, Outcome, TokenApi};
use super::delegate_api::Delegator;
use super::dirty::Dirty;
use super::error::AgentError;
use super::hotplug;
use super::http;
use super::local_api;
use super::metrics::Shared;
use super::node_state::NodeStateReporter;
use super::reports;
use super::settings::{HotplugSettings, POLL, RESYNC, Settings};
use super::state::Agent;
use super::watch::{DirWatcher, Signal};

fn watch_dirs(agent: &Agent, watcher: &mut DirWatcher) -> Result<(), AgentError> {
    let settings = &agent.settings;
    let mut dirs: Vec<(PathBuf, Dirty, bool)> = vec![
        (settings.cni_conf_dir.clone(), Dirty::CONF, true),
        (settings.service_account_dir.clone(), Dirty::TOKEN, false),
        (settings.multus_conf_dir.clone(), Dirty::MULTUS_CONF, false),
    ];
    if let Some(dir) = settings.config_file.as_ref().and_then(|f| f.parent()) {
        dirs.push((dir.to_path_buf(), Dirty::CONFIG, true));
    }
    if let Some(indicator) = &agent.options.readiness_indicator_file
        && let Some(dir) = settings.container_path(indicator).parent()
    {
        dirs.push((dir.to_path_buf(), Dirty::CONF, false));
    }
    for (dir, flags, required) in dirs {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        match watcher.add(&dir, flags) {
            Ok(true) => tracing::debug!(dir = %dir.display(), "watching"),
            Ok(false) if required => {
                return Err(AgentError::Watch {
                    path: dir,
                    source: notify::Error::path_not_found(),
                });
            }
            Ok(false) => {
                tracing::info!(dir = %dir.display(), "not there yet; will watch it once it exists")
            }
            Err(source) => return Err(AgentError::Watch { path: dir, source }),
        }
    }
    Ok(())
}

/// A future that completes on SIGTERM or SIGINT. Create it early: the
/// handlers are installed when this function returns.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("received SIGTERM"),
            _ = int.recv() => tracing::info!("received SIGINT"),
        }
    })
}

async fn kube_client() -> Result<kube::Client, AgentError> {
    kube::Client::try_default().await.map_err(AgentError::Kube)
}

/// Access to the API server: the agent's client (node state, token
/// requests) and, when the agent manages the plugin's token, the API it
/// uses for that.
pub struct KubeAccess<A> {
    /// The agent's client.
    pub client: kube::Client,
    /// Requests and checks the plugin's tokens.
    pub token_api: Option<Arc<A>>,
}

impl<A> std::fmt::Debug for KubeAccess<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeAccess")
            .field("token_api", &self.token_api.is_some())
            .finish_non_exhaustive()
    }
}

/// Runs the agent until `shutdown` completes: install, generate, then watch
/// and regenerate. The generated config is left in place on return.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    if !settings.kube {
        return run_with::<credential::KubeTokenApi>(settings, shutdown, None).await;
    }
    if settings.node_name.as_deref().is_none_or(str::is_empty) {
        return Err(AgentError::NoNodeName);
    }
    let config = kube::Config::infer()
        .await
        .map_err(AgentError::KubeConfig)?;
    let client = kube::Client::try_from(config.clone()).map_err(AgentError::Kube)?;
    let token_api = settings.plugin_credential.clone().map(|s| {
        Arc::new(credential::KubeTokenApi::new(
            client.clone(),
            credential::KubeTokenApi::token_clients(config),
            s,
        ))
    });
    run_with(settings, shutdown, Some(KubeAccess { client, token_api })).await
}

/// [`run`] over the given API access (`None`: no API server, as with
/// `--no-kube`).
pub async fn run_with<A: TokenApi + 'static>(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    kube: Option<KubeAccess<A>>,
) -> Result<(), AgentError> {
    let shared = Arc::new(Shared::default());
    let mut agent = Agent::new(settings, Arc::clone(&shared))?;
    agent.remove_stale_temp_files();
    agent.install_plugin().await?;

    let (client, token_api) = match kube {
        Some(KubeAccess { client, token_api }) => (Some(client), token_api),
        None => (None, None),
    };
    match (&token_api, agent.settings.plugin_credential.clone()) {
        (Some(api), Some(credential_settings)) => {
            tracing::info!(
                service_account = %credential_settings.service_account,
                namespace = %credential_settings.namespace,
                lifetime = ?credential_settings.lifetime,
                "the plugin gets tokens of its own ServiceAccount"
            );
            agent.manage_credential(credential_settings);
            agent.start_credential(api.as_ref()).await;
        }
        _ => tracing::info!(
            "the plugin gets a copy of the agent's token (no plugin ServiceAccount configured)"
        ),
    }

    // Bind first so a taken address fails at once; serve once the first
    // pass is done, so /readyz never reports a state before it.
    let listener = http::bind(agent.settings.metrics_address).await?;
    let address = listener.local_addr().map_err(AgentError::Http)?;

    // Watch before the first pass so no change in between is missed.
    let signal = Arc::new(Signal::default());
    let mut watcher = DirWatcher::new(Arc::clone(&signal)).map_err(|source| AgentError::Watch {
        path: agent.settings.cni_conf_dir.clone(),
        source,
    })?;
    watch_dirs(&agent, &mut watcher)?;
    agent.reconcile(Dirty::ALL);

    let (stop_tx, stop_rx) = channel::channel(false);
    let reports = agent
        .options
        .node_agent_report_socket
        .clone()
        .map(|socket| {
            let cache_dir = agent
                .options
                .cache_dir
                .clone()
                .unwrap_or_else(|| multus_config::multus_conf::DEFAULT_CNI_DIR.to_owned());
            tokio::spawn(reports::socket::run(
                agent.settings.container_path(&socket),
                agent.settings.container_path(&cache_dir),
                Arc::clone(&shared),
                stop_rx.clone(),
            ))
        });
    let mut http_stop = stop_rx.clone();
    let server = tokio::spawn(http::serve(listener, Arc::clone(&shared), async move {
        let _ = http_stop.changed().await;
    }));
    tracing::info!(address = %address, "serving /healthz, /readyz and /metrics");

    let _local_api = match (&client, &agent.options.node_agent_socket) {
        (Some(client), Some(socket)) if agent.settings.kube => {
            start_local_api(&agent, client.clone(), socket)
        }
        _ => None,
    };
    if let Some(api) = &_local_api {
        // pod_network_name_info from the pods' network-status annotations
        // (the report-fed entries while the cache is not synced).
        let metrics = &shared.metrics.reports;
        metrics.set_pod_networks(Arc::new(reports::cached::CachedPodNetworks::new(
            Arc::clone(&api.caches.pods),
            Arc::clone(metrics.reported()),
        )));
    }

    let hotplug = match (&agent.settings.network_hotplug, &_local_api) {
        (Some(settings), Some(api)) => start_hotplug(
            &agent,
            settings,
            Arc::clone(&api.caches.pods),
            Arc::clone(&shared),
            stop_rx.clone(),
        ),
        (Some(_), None) => {
            tracing::error!(
                "network hot-plug needs the node-local pod cache (API access and nodeAgentSocket in the Multus config): annotation changes are not followed"
            );
            None
        }
        _ => None,
    };

    let reporter = match client {
        Some(client) if agent.settings.kube => {
            let node = agent.settings.node_name.clone().unwrap_or_default();
            let reporter =
                NodeStateReporter::new(client, node, agent.settings.multus_config_name.clone());
            Some(tokio::spawn(reporter.run(
                agent.status_tx.subscribe(),
                stop_rx.clone(),
                Arc::clone(&shared),
            )))
        }
        _ => None,
    };

    // At most one credential task (token request or check) at a time.
    let mut credential_task: Option<tokio::task::JoinHandle<Outcome>> = None;
    tokio::pin!(shutdown);
    let mut resync = tokio::time::interval_at(Instant::now() + RESYNC, RESYNC);
    let mut watch_retry_at: Option<Instant> = None;
    loop {
        if watcher.has_missing() {
            watch_retry_at.get_or_insert_with(|| Instant::now() + POLL);
        }
        let retry_at = match (agent.retry_at, watch_retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let credential_at = if credential_task.is_none() {
            agent.credential_wake()
        } else {
            None
        };
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep_until(credential_at.unwrap_or_else(Instant::now)), if credential_at.is_some() => {
                match (agent.credential_task(), &token_api) {
                    (Some(task), Some(api)) => {
                        let api = Arc::clone(api);
                        credential_task = Some(tokio::spawn(async move { task.run(api.as_ref()).await }));
                    }
                    // The plugin's token expired: switch to the fallback.
                    _ => agent.reconcile(Dirty::TOKEN),
                }
            }
            joined = async { credential_task.as_mut().expect("guarded by the precondition").await }, if credential_task.is_some() => {
                credential_task = None;
                match joined {
                    Ok(outcome) => agent.credential_outcome(outcome),
                    Err(err) => {
                        shared.metrics.errors.inc();
                        tracing::warn!(error = %err, "the plugin token task failed");
                    }
                }
                agent.reconcile(Dirty::TOKEN);
            }
            () = signal.notified() => {
                tokio::select! {
                    () = signal.debounce() => {}
                    () = &mut shutdown => break,
                }
                let flags = signal.take();
                if !flags.is_empty() {
                    agent.reconcile(flags);
                }
            }
            _ = resync.tick() => {
                watcher.retry();
                agent.check_plugin();
                agent.reconcile(Dirty::ALL);
            }
            () = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                // Only a due agent retry regenerates; a due watch retry
                // reconciles what the newly watched directories affect (a
                // missing optional directory costs a `stat` per poll).
                let now = Instant::now();
                let mut flags = Dirty::NONE;
                if agent.retry_at.is_some_and(|at| at <= now) {
                    agent.retry_at = None;
                    flags |= Dirty::CONF;
                }
                if watch_retry_at.is_some_and(|at| at <= now) {
                    watch_retry_at = None;
                    flags |= watcher.retry();
                }
                if !flags.is_empty() {
                    agent.reconcile(flags);
                }
            }
        }
    }

    if let Some(task) = credential_task {
        task.abort();
    }
    tracing::info!("stopping; the generated Multus config stays in place");
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(2);
    if let Ok(Ok(Err(err))) = tokio::time::timeout(grace, server).await {
        tracing::warn!(error = %err, "the health/metrics server failed");
    }
    if let Some(reporter) = reporter {
        let _ = tokio::time::timeout(grace, reporter).await;
    }
    if let Some(hotplug) = hotplug {
        let _ = tokio::time::timeout(grace, hotplug).await;
    }
    if let Some(reports) = reports {
        let _ = tokio::time::timeout(grace, reports).await;
    }
    Ok(())
}

/// Serves the pod and NAD caches on the lookup socket the Multus config
/// announces (`nodeAgentSocket`); without it the plugin reads from the API
/// server as before, so a failure here is a warning.
fn start_local_api(
    agent: &Agent,
    client: kube::Client,
    socket: &str,
) -> Option<local_api::LocalApi> {
    let node = agent.settings.node_name.clone().unwrap_or_default();
    let path = agent.settings.container_path(socket);
    match local_api::bind(&path) {
        Ok(listener) => Some(local_api::LocalApi::start(client, &node, listener, path)),
        Err(e) => {
            tracing::warn!(error = %e, "the plugin reads pods and NADs from the API server");
            None
        }
    }
}

/// Follows the networks annotation of the node's running pods
/// ([`hotplug`]); `None` (logged) without the plugin binary.
fn start_hotplug(
    agent: &Agent,
    settings: &HotplugSettings,
    pods: Arc<local_api::Store>,
    shared: Arc<Shared>,
    stop: channel::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let binary = match agent.settings.plugin_source() {
        Ok(binary) => binary,
        Err(error) => {
            tracing::error!(%error, "network hot-plug needs the multus binary: annotation changes are not followed");
            return None;
        }
    };
    let host = host_process();
    if host.is_none() {
        tracing::warn!(
            "no host process above the agent (not in the host's PID namespace): network hot-plug runs the plugin in the agent's own namespaces"
        );
    }
    let runner = Delegator {
        binary,
        mount_ns: host.as_ref().map(|(_, ns)| ns.clone()),
        cgroup_of: host.as_ref().map(|(pid, _)| *pid),
        cni_path: settings.host_cni_bin_dir.clone(),
        conf_dir: agent.settings.cni_conf_dir.clone(),
        timeout: hotplug::SYNC_TIMEOUT,
    };
    let hotplug = hotplug::NetworkHotplug {
        runner,
        cri_socket: settings.cri_socket.clone(),
        shared,
    };
    Some(tokio::spawn(hotplug.run(pods, stop)))
}

/// `--once`: install the plugin, write the kubeconfig and the Multus config,
/// report the node state (unless `--no-kube`) and return. Fails when no
/// current config could be generated (no primary, readiness indicator file
/// missing, invalid config, I/O error).
pub async fn run_once(settings: Settings) -> Result<MultusNodeStateStatus, AgentError> {
    run_once_with_client(settings, None).await
}

/// [`run_once`] reporting through `client` (the in-cluster client when
/// `None`). A failed report is logged, not fatal: the files on the node are
/// what pods need.
pub async fn run_once_with_client(
    settings: Settings,
    client: Option<kube::Client>,
) -> Result<MultusNodeStateStatus, AgentError> {
    let shared = Arc::new(Shared::default());
    let mut agent = Agent::new(settings, shared)?;
    agent.remove_stale_temp_files();
    agent.install_plugin().await?;
    agent.reconcile(Dirty::ALL);
    let status = agent.node_status();
    if agent.settings.kube {
        let client = match client {
            Some(client) => client,
            None => kube_client().await?,
        };
        let node = agent.settings.node_name.clone().unwrap_or_default();
        let mut reporter =
            NodeStateReporter::new(client, node, agent.settings.multus_config_name.clone());
        if let Err(err) = reporter.publish(&status).await {
            tracing::warn!(error = %err, "cannot report the node state");
        }
    }
    if !status.ready {
        return Err(AgentError::NotReady(
            status.message.clone().unwrap_or_default(),
        ));
    }
    Ok(status)
}
