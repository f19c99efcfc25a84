//! `multus-operator controller`: the binary's edge. [`run`] connects to
//! the API server, checks its version and the CRDs, starts the
//! health/metrics server and the watches that fill the caches
//! ([`super::watch`]), waits for the leader Lease ([`super::leader`]),
//! then runs the MultusConfig controller and the NAD validator until
//! SIGTERM/SIGINT (or the Lease is lost), and shuts down gracefully. Its
//! errors are `anyhow`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, controller, watcher};
use multus_config::crd::MultusConfig;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::context::{Context, Settings, Stores};
use super::http::{self, Health};
use super::leader::{self, Election, Release};
use super::metrics::Metrics;
use super::nad::{self, NadRegistry};
use super::rbac::{AGENT_CLUSTER_ROLE, PLUGIN_CLUSTER_ROLE};
use super::reconcile::{error_policy, reconcile};
use super::render::{ImageRef, OperandSettings};
use super::{REPORTER, crds, probe, server_version};

pub use crate::logging::LogFormat;

/// Options of `multus-operator controller`.
#[derive(Debug, Clone, clap::Args)]
pub struct ControllerArgs {
    /// Namespace of the operands (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "multus-system")]
    pub namespace: String,
    /// Node-agent image for MultusConfigs that set none
    /// [default: ghcr.io/multus-rs/multus:v<operator version>].
    #[arg(long, env = "MULTUS_AGENT_IMAGE", value_name = "IMAGE")]
    pub agent_image: Option<String>,
    /// The chart's ClusterRole bound to each MultusConfig's agents.
    #[arg(long, value_name = "NAME", default_value = AGENT_CLUSTER_ROLE)]
    pub agent_cluster_role: String,
    /// The chart's ClusterRole bound to each MultusConfig's plugin
    /// ServiceAccount.
    #[arg(long, value_name = "NAME", default_value = PLUGIN_CLUSTER_ROLE)]
    pub plugin_cluster_role: String,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_address: SocketAddr,
    /// Do not apply the compiled-in CRDs at start (when something else
    /// manages them).
    #[arg(long)]
    pub skip_crd_apply: bool,
    /// MultusConfigs reconciled at the same time.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub concurrency: u16,
    /// This replica's name (reportingInstance of Events).
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub pod_name: Option<String>,
    /// Log format (stderr); the level comes from RUST_LOG (default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Reconcile without holding the leader Lease (only safe with a single
    /// replica and no overlap during a rollout of the operator).
    #[arg(long)]
    pub no_leader_election: bool,
    /// Name of the leader-election Lease in --namespace.
    #[arg(long, value_name = "NAME", default_value = "multus-operator")]
    pub lease_name: String,
}

impl ControllerArgs {
    /// The operator settings these options give.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let default_image = match &self.agent_image {
            Some(text) => ImageRef::parse(text)
                .with_context(|| format!("--agent-image {text:?} is not an image reference"))?,
            None => ImageRef::builtin(),
        };
        Ok(Settings {
            operands: OperandSettings {
                namespace: self.namespace.clone(),
                default_image,
                agent_cluster_role: self.agent_cluster_role.clone(),
                plugin_cluster_role: self.plugin_cluster_role.clone(),
            },
            role_check_interval: Duration::from_secs(300),
        })
    }

    /// How this replica leads (the Lease lives in `--namespace`).
    pub fn election(&self) -> Election {
        if self.no_leader_election {
            return Election::Disabled;
        }
        Election::Lease {
            namespace: self.namespace.clone(),
            lease: self.lease_name.clone(),
            identity: self
                .pod_name
                .clone()
                .unwrap_or_else(|| format!("multus-operator-{}", std::process::id())),
        }
    }
}

/// Entry point of the subcommand.
pub fn main(args: ControllerArgs) -> anyhow::Result<()> {
    crate::logging::init(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(run(args));
    // Do not wait long for blocked watch connections at exit.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

/// Resolves when SIGTERM or SIGINT arrives (or the sender is dropped).
fn shutdown_future(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + Sync + 'static {
    leader::watch_for(rx, true)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the controller");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves when either future does.
async fn either(
    a: impl Future<Output = ()> + Send + Sync + 'static,
    b: impl Future<Output = ()> + Send + Sync + 'static,
) {
    tokio::select! {
        () = a => {}
        () = b => {}
    }
}

/// Refuses a server older than [`server_version::MIN_KUBERNETES`], after
/// saying so on every MultusConfig. An unreadable version is logged and
/// accepted (some distributions rewrite it).
async fn require_supported_server(client: &Client) -> anyhow::Result<()> {
    let info = client
        .apiserver_version()
        .await
        .context("cannot read the API server's version (GET /version)")?;
    match server_version::check(&info) {
        Ok((major, minor)) => {
            tracing::info!(version = %info.git_version, "Kubernetes {major}.{minor} is supported");
            Ok(())
        }
        Err(error @ server_version::VersionError::TooOld { .. }) => {
            tracing::error!(%error, "refusing to start");
            server_version::report_unsupported(client, &error).await;
            Err(error.into())
        }
        Err(error) => {
            tracing::warn!(%error, "going on; unsupported releases may fail later");
            Ok(())
        }
    }
}

/// Runs the controller until a shutdown signal (or the loss of the
/// leader Lease, which is an error so that a restart rejoins as a
/// follower).
pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let client = connect().await?;
    require_supported_server(&client).await?;
    ensure_crds(&client, args.skip_crd_apply).await?;

    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::new(metrics.clone()));
    let listener = listen(args.metrics_address).await?;
    let stop = stop_on_signal();
    let server = tokio::spawn(http::serve(
        listener,
        health.clone(),
        shutdown_future(&stop),
    ));

    let watches = super::watch::start(&client, &settings.operands.namespace);
    let controller = build_controller(&client, args.concurrency);
    let stores = Stores {
        configs: controller.store(),
        ..watches.stores
    };
    if !caches_filled(&stores, &stop).await? {
        return Ok(());
    }
    health.set_ready(true);
    tracing::info!(namespace = %settings.operands.namespace, "caches filled");

    let leading = leader::acquire(&client, &args.election(), shutdown_future(&stop)).await?;
    let Some(leadership) = leading else {
        return Ok(());
    };
    metrics.leader.set(1);
    tracing::info!("leading; reconciling MultusConfigs");
    let stop_or_lost = || either(shutdown_future(&stop), leadership.lost());

    let registry = Arc::new(NadRegistry::default());
    let nad_task = tokio::spawn(nad::run(
        client.clone(),
        recorder(&client, &args),
        registry.clone(),
        metrics.clone(),
        watches.inventory,
        watches.trigger.clone(),
        stop_or_lost(),
    ));
    let ctx = Arc::new(Context::new(
        client,
        settings,
        stores,
        metrics.clone(),
        registry,
        args.pod_name.clone(),
    ));
    // What the server offers, before the first reconcile writes a status.
    if let Some(found) = probe::probe(&ctx.client, &ctx.settings.operands.plugin_cluster_role).await
    {
        tracing::info!(server = ?found, "what the API server offers");
        ctx.set_server_features(found);
    }
    let probe_task = tokio::spawn(probe::keep_probing(ctx.clone()));
    reconcile_until(controller, ctx, watches.triggers, stop_or_lost()).await;
    probe_task.abort();
    health.set_ready(false);
    metrics.leader.set(0);
    // Without a stop signal, the controller only stops when the Lease is lost.
    let lost_leadership = !*stop.borrow();
    shut_down(nad_task, leadership.release(), server, lost_leadership).await;
    if lost_leadership {
        anyhow::bail!(
            "lost the leader Lease (or the election stopped); exiting so that a restart rejoins \
             as a follower"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// A client from the in-cluster config or KUBECONFIG.
async fn connect() -> anyhow::Result<Client> {
    Client::try_default()
        .await
        .context("cannot build a Kubernetes client (in-cluster config or KUBECONFIG)")
}

/// Applies the compiled-in CRDs, unless `skip` (`--skip-crd-apply`).
async fn ensure_crds(client: &Client, skip: bool) -> anyhow::Result<()> {
    if skip {
        tracing::info!("not applying CRDs (--skip-crd-apply)");
        return Ok(());
    }
    let report = crds::apply_crds(client)
        .await
        .context("cannot apply the CRDs (pass --skip-crd-apply when the chart manages them)")?;
    tracing::info!(
        applied = ?report.applied,
        created_nad_crd = report.created_nad_crd,
        "CRDs in place"
    );
    Ok(())
}

/// The listener of /healthz, /readyz and /metrics.
async fn listen(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))
}

/// A receiver that turns true when SIGTERM or SIGINT arrives.
fn stop_on_signal() -> watch::Receiver<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    stop_rx
}

/// The MultusConfig controller (its own watch of every MultusConfig),
/// debounced, reconciling `concurrency` MultusConfigs at a time.
fn build_controller(client: &Client, concurrency: u16) -> Controller<MultusConfig> {
    Controller::new(
        Api::<MultusConfig>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(
        controller::Config::default()
            .debounce(Duration::from_secs(1))
            .concurrency(concurrency),
    )
}

/// Waits until the caches are filled; `false` when stopped first.
async fn caches_filled(stores: &Stores, stop: &watch::Receiver<bool>) -> anyhow::Result<bool> {
    tokio::select! {
        result = super::watch::filled(stores) => result.map(|()| true).map_err(Into::into),
        () = shutdown_future(stop) => Ok(false),
    }
}

/// The Event recorder of NAD validation.
fn recorder(client: &Client, args: &ControllerArgs) -> Recorder {
    Recorder::new(
        client.clone(),
        Reporter {
            controller: REPORTER.to_owned(),
            instance: args.pod_name.clone(),
        },
    )
}

/// Reconciles each MultusConfig on its own changes and all of them on
/// `triggers` (the watches and NAD validation), until `stop`.
async fn reconcile_until(
    controller: Controller<MultusConfig>,
    ctx: Arc<Context>,
    triggers: mpsc::Receiver<()>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let triggers = futures::stream::unfold(triggers, |mut rx| async move {
        rx.recv().await.map(|()| ((), rx))
    });
    controller
        .reconcile_all_on(triggers)
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(multusconfig = %object.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile did not finish"),
            }
        })
        .await;
}

/// Waits (at most 10 s) for NAD validation to stop, the Lease to be
/// released and, unless the Lease was lost, the health server to finish.
async fn shut_down(
    nad_task: JoinHandle<()>,
    release: Release,
    server: JoinHandle<std::io::Result<()>>,
    lost_leadership: bool,
) {
    let drain = async {
        let _ = nad_task.await;
        release.finish().await;
        if lost_leadership {
            server.abort();
            return;
        }
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the health server failed"),
            Err(e) => tracing::warn!(error = %e, "the health server task failed"),
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        tracing::warn!("background tasks did not stop within 10s");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ControllerArgs,
    }

    #[test]
    fn options_give_the_settings() {
        let w = Wrapper::try_parse_from([
            "x",
            "--namespace",
            "ops",
            "--agent-image",
            "registry.local/multus@sha256:0123",
            "--no-leader-election",
        ])
        .unwrap();
        let s = w.args.settings().unwrap();
        assert_eq!(s.operands.namespace, "ops");
        assert_eq!(
            s.operands.default_image.to_string(),
            "registry.local/multus@sha256:0123"
        );
        assert_eq!(s.operands.agent_cluster_role, "multus-node-agent");
        assert_eq!(s.operands.plugin_cluster_role, "multus-plugin");
        assert!(w.args.no_leader_election);
        assert_eq!(w.args.lease_name, "multus-operator");
        let bad = Wrapper::try_parse_from(["x", "--agent-image", " "]).unwrap();
        assert!(bad.args.settings().is_err());
    }
}
