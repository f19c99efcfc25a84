//! `multus-operator controller`: wiring of the caches, the MultusConfig
//! controller, the NAD validator and the health/metrics server, with
//! graceful shutdown on SIGTERM/SIGINT. This is the binary's edge, so its
//! errors are `anyhow`.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Client, Resource, ResourceExt};
use multus_config::crd::{MultusConfig, MultusNodeState};
use tokio::sync::{mpsc, watch};

use super::context::{Context, Settings, StoreWriters, Stores};
use super::http::{self, Health};
use super::metrics::Metrics;
use super::nad::{self, Inventory, NadRegistry};
use super::operand::{Kind, KindVisitor, Operand};
use super::rbac::{AGENT_CLUSTER_ROLE, PLUGIN_CLUSTER_ROLE};
use super::reconcile::{error_policy, node_state_digest, reconcile};
use super::render::{ImageRef, LABEL_MANAGED_BY, MANAGED_BY_VALUE, OperandSettings};
use super::{REPORTER, crds, server_version};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

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
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Entry point of the subcommand.
pub fn main(args: ControllerArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
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
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
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

/// Keeps a cache filled from a watch and sends on `trigger` when an
/// object's `digest` changes (or it appears or goes); `on_change` runs
/// first.
async fn mirror<K, S>(
    stream: S,
    writer: Writer<K>,
    digest: impl Fn(&K) -> String,
    trigger: mpsc::Sender<()>,
    on_change: impl Fn(),
    what: impl std::fmt::Display,
) where
    K: Resource + Clone + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let stream = reflector::reflector(writer, stream).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut digests: HashMap<String, String> = HashMap::new();
    let key = |o: &K| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
    while let Some(event) = stream.next().await {
        let changed = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                let d = digest(&o);
                digests.insert(key(&o), d.clone()).as_ref() != Some(&d)
            }
            Ok(watcher::Event::Delete(o)) => {
                digests.remove(&key(&o));
                true
            }
            Ok(watcher::Event::InitDone) => true,
            Ok(watcher::Event::Init) => false,
            Err(e) => {
                tracing::warn!(error = %e, what = %what, "watch failed; retrying");
                false
            }
        };
        if changed {
            on_change();
            // A full channel already holds a pending trigger.
            let _ = trigger.try_send(());
        }
    }
}

fn owned_config() -> watcher::Config {
    watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}"))
}

fn resource_version<K: Resource>(o: &K) -> String {
    o.meta().resource_version.clone().unwrap_or_default()
}

async fn wait_ready<K>(store: &Store<K>, what: &str) -> anyhow::Result<()>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store
        .wait_until_ready()
        .await
        .with_context(|| format!("the {what} cache stopped before it was filled"))
}

/// Starts the watch that fills an operand kind's cache (our objects only,
/// by label; in the operator's namespace for namespaced kinds) and
/// triggers a reconcile of every MultusConfig when one of them changes.
struct MirrorOperand<'a> {
    client: &'a Client,
    namespace: &'a str,
    writers: &'a mut StoreWriters,
    trigger: &'a mpsc::Sender<()>,
}

impl KindVisitor for MirrorOperand<'_> {
    type Output = ();

    fn visit<K: Operand>(self) {
        let writer = std::mem::take(self.writers.operand::<K>());
        tokio::spawn(mirror(
            watcher(K::api(self.client.clone(), self.namespace), owned_config()),
            writer,
            resource_version,
            self.trigger.clone(),
            || {},
            K::KIND.name(),
        ));
    }
}

/// Waits until an operand kind's cache is filled.
struct WaitOperand<'a> {
    stores: &'a Stores,
}

impl<'a> KindVisitor for WaitOperand<'a> {
    type Output = BoxFuture<'a, anyhow::Result<()>>;

    fn visit<K: Operand>(self) -> Self::Output {
        Box::pin(async move { wait_ready(self.stores.operand::<K>(), &K::KIND.name()).await })
    }
}

/// Seconds a leader's lease stays valid without renewal.
pub const LEASE_DURATION_SECONDS: u64 = 15;
/// Seconds before expiry at which the leader renews.
pub const LEASE_GRACE_SECONDS: u64 = 5;

/// Resolves when `rx` holds `value` (or its sender is gone).
fn watch_for(
    rx: &watch::Receiver<bool>,
    value: bool,
) -> impl Future<Output = ()> + Send + Sync + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|v| *v == value).await;
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

/// Runs the controller until a shutdown signal.
pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let client = Client::try_default()
        .await
        .context("cannot build a Kubernetes client (in-cluster config or KUBECONFIG)")?;
    require_supported_server(&client).await?;
    if args.skip_crd_apply {
        tracing::info!("not applying CRDs (--skip-crd-apply)");
    } else {
        let report = crds::apply_crds(&client)
            .await
            .context("cannot apply the CRDs (pass --skip-crd-apply when the chart manages them)")?;
        tracing::info!(
            applied = ?report.applied,
            created_nad_crd = report.created_nad_crd,
            "CRDs in place"
        );
    }

    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::new(metrics.clone()));
    let listener = tokio::net::TcpListener::bind(args.metrics_address)
        .await
        .with_context(|| format!("cannot listen on {}", args.metrics_address))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let server = tokio::spawn(http::serve(
        listener,
        health.clone(),
        shutdown_future(&stop_rx),
    ));

    let ns = settings.operands.namespace.clone();
    let (mut stores, mut writers) = Stores::detached();
    let (trigger_tx, trigger_rx) = mpsc::channel::<()>(1);
    let (inventory_tx, inventory_rx) = watch::channel(Arc::new(Inventory::new()));
    let inventory_tx = Arc::new(inventory_tx);

    let nodes = watcher(
        Api::<PartialObjectMeta<Node>>::all(client.clone()),
        watcher::Config::default(),
    );
    tokio::spawn(mirror(
        nodes,
        std::mem::take(&mut writers.nodes),
        |n| format!("{:?}", n.metadata.labels),
        trigger_tx.clone(),
        || {},
        "nodes",
    ));
    // The resources nodes advertise, for the NADs' resourceName: a second
    // Node watch (full objects, as allocatable is in the status) keeping
    // only each node's resource names.
    let advertised_tx = inventory_tx.clone();
    tokio::spawn(nad::follow_advertised(
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).default_backoff(),
        move |advertised| {
            advertised_tx.send_if_modified(|inv| {
                if inv.advertised() == Some(&advertised) {
                    return false;
                }
                *inv = Arc::new(Inventory::clone(inv).with_advertised(Some(advertised)));
                true
            });
        },
    ));
    let states_store = stores.node_states.clone();
    tokio::spawn(mirror(
        watcher(
            Api::<MultusNodeState>::all(client.clone()),
            watcher::Config::default(),
        ),
        std::mem::take(&mut writers.node_states),
        |s: &MultusNodeState| {
            let (plugins, networks) = s
                .status
                .as_ref()
                .map(|st| (st.cni_plugins.join(","), st.multus_conf_networks.join(",")))
                .unwrap_or_default();
            format!("{}|{plugins}|{networks}", node_state_digest(s))
        },
        trigger_tx.clone(),
        move || {
            let current = nad::inventory(states_store.state().iter().map(AsRef::as_ref));
            inventory_tx.send_if_modified(|inv| {
                let current = current.with_advertised(inv.advertised().cloned());
                let changed = **inv != current;
                if changed {
                    *inv = Arc::new(current.clone());
                }
                changed
            });
        },
        "MultusNodeStates",
    ));
    for kind in Kind::ALL {
        kind.visit(MirrorOperand {
            client: &client,
            namespace: &ns,
            writers: &mut writers,
            trigger: &trigger_tx,
        });
    }

    let controller = Controller::new(
        Api::<MultusConfig>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(
        controller::Config::default()
            .debounce(Duration::from_secs(1))
            .concurrency(args.concurrency),
    );
    stores.configs = controller.store();

    let filled = async {
        wait_ready(&stores.nodes, "node").await?;
        wait_ready(&stores.node_states, "MultusNodeState").await?;
        for kind in Kind::ALL {
            kind.visit(WaitOperand { stores: &stores }).await?;
        }
        Ok::<(), anyhow::Error>(())
    };
    tokio::select! {
        result = filled => result?,
        () = shutdown_future(&stop_rx) => return Ok(()),
    }
    health.set_ready(true);
    tracing::info!(namespace = %ns, "caches filled");

    // Leader election: replicas keep their caches warm, only the holder of
    // the Lease reconciles and validates NADs.
    // Without election the sender lives as long as `run`: always leading.
    let mut _always_leader = None;
    let (leader_rx, lease_task) = if args.no_leader_election {
        let (tx, rx) = watch::channel(true);
        _always_leader = Some(tx);
        (rx, None)
    } else {
        let identity = args
            .pod_name
            .clone()
            .unwrap_or_else(|| format!("multus-operator-{}", std::process::id()));
        let manager =
            kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &args.lease_name)
                .with_namespace(&ns)
                .with_identity(&identity)
                .with_duration(LEASE_DURATION_SECONDS)
                .with_grace(LEASE_GRACE_SECONDS)
                .with_field_manager(super::FIELD_MANAGER)
                .build()
                .await
                .with_context(|| format!("cannot use Lease {ns}/{}", args.lease_name))?;
        let (rx, task) = manager.watch().await;
        tracing::info!(lease = %args.lease_name, %identity, "waiting for the leader Lease");
        tokio::select! {
            () = watch_for(&rx, true) => {}
            () = shutdown_future(&stop_rx) => return Ok(()),
        }
        if !*rx.borrow() {
            anyhow::bail!("leader election stopped before this replica became the leader");
        }
        (rx, Some(task))
    };
    metrics.leader.set(1);
    tracing::info!("leading; reconciling MultusConfigs");
    let stop_or_lost = || either(shutdown_future(&stop_rx), watch_for(&leader_rx, false));

    let registry = Arc::new(NadRegistry::default());
    let nad_task = tokio::spawn(nad::run(
        client.clone(),
        Recorder::new(
            client.clone(),
            Reporter {
                controller: REPORTER.to_owned(),
                instance: args.pod_name.clone(),
            },
        ),
        registry.clone(),
        metrics.clone(),
        inventory_rx,
        trigger_tx.clone(),
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
    let triggers = futures::stream::unfold(trigger_rx, |mut rx| async move {
        rx.recv().await.map(|()| ((), rx))
    });
    controller
        .reconcile_all_on(triggers)
        .graceful_shutdown_on(stop_or_lost())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(multusconfig = %object.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile did not finish"),
            }
        })
        .await;
    health.set_ready(false);
    metrics.leader.set(0);
    // Without a stop signal, the controller only stops when the Lease is lost.
    let lost_leadership = !*stop_rx.borrow();
    // Dropping the last receiver makes the lease task release the Lease.
    drop(leader_rx);
    let drain = async {
        let _ = nad_task.await;
        if let Some(task) = lease_task {
            match task.await {
                Ok(Ok(_)) => tracing::info!("released the leader Lease"),
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot release the leader Lease"),
                Err(e) => tracing::warn!(error = %e, "the lease task failed"),
            }
        }
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
    if lost_leadership {
        anyhow::bail!(
            "lost the leader Lease (or the election stopped); exiting so that a restart rejoins \
             as a follower"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use k8s_openapi::api::core::v1::ConfigMap;

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

    #[tokio::test]
    async fn mirror_fills_the_cache_and_triggers_only_on_digest_changes() {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("a".into());
        cm.metadata.namespace = Some("ns".into());
        cm.metadata.resource_version = Some("1".into());
        let mut changed = cm.clone();
        changed.metadata.resource_version = Some("2".into());
        let events = futures::stream::iter(vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(cm.clone())),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(cm.clone())),
            Ok(watcher::Event::Apply(changed.clone())),
            Ok(watcher::Event::Delete(changed)),
        ]);
        let writer: Writer<ConfigMap> = Writer::default();
        let store = writer.as_reader();
        let (tx, mut rx) = mpsc::channel(16);
        let calls = std::sync::atomic::AtomicUsize::new(0);
        mirror(
            events,
            writer,
            resource_version,
            tx,
            || {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            },
            "test",
        )
        .await;
        let mut triggers = 0;
        while rx.try_recv().is_ok() {
            triggers += 1;
        }
        // new object, list complete, changed, deleted; the unchanged
        // re-apply triggers nothing.
        assert_eq!(triggers, 4);
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 4);
        assert!(store.is_empty());
    }
}
