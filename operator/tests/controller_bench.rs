//! Scale benchmark of the controller: 10,000 NADs validated against the
//! plugin inventory of 1,000 nodes (and held in a cache, as the NAD watch
//! does), then reconciles of a MultusConfig over 1,000 nodes with those
//! verdicts, against a mock API server that answers everything. Prints
//! latencies and the process's resident memory. Timing is not checked
//! (it depends on the machine); memory must stay under 50 MiB. Run it with
//! `cargo test -p multus-operator --release --test controller_bench -- --ignored --nocapture`.

// In a module named `controller` so that `cargo test -p multus-operator controller`
// selects these tests too.
mod controller {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use http::{Method, Request, Response};
    use k8s_openapi::api::core::v1::Node;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;
    use kube::Client;
    use kube::client::Body;
    use kube::core::PartialObjectMetaExt;
    use kube::runtime::reflector::store::Writer;
    use multus_config::crd::{
        MultusConfig, MultusConfigSpec, MultusNodeState, MultusNodeStateSpec, MultusNodeStateStatus,
    };
    use multus_config::npwg::nad::{NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec};
    use multus_operator::controller::FINALIZER;
    use multus_operator::controller::context::{Context, Settings, Stores, put};
    use multus_operator::controller::metrics::Metrics;
    use multus_operator::controller::nad::{self, Inventory, NadRegistry};
    use multus_operator::controller::reconcile::reconcile;
    use multus_operator::controller::render::{ImageRef, OperandSettings};
    use serde_json::{Value, json};
    use tokio::sync::Mutex;
    use tower_test::mock;

    const NADS: usize = 10_000;
    const NODES: usize = 1_000;

    fn rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }

    fn nad_config(i: usize) -> String {
        match i % 4 {
            0 => format!(
                r#"{{"cniVersion":"0.3.1","type":"macvlan","master":"eth0","ipam":{{"type":"host-local","subnet":"10.{}.{}.0/24"}}}}"#,
                i / 256 % 256,
                i % 256
            ),
            1 => r#"{"cniVersion":"1.0.0","plugins":[{"type":"bridge","ipam":{"type":"whereabouts"}},{"type":"tuning"}]}"#.to_owned(),
            2 => r#"{"cniVersion":"0.4.0","type":"sriov","ipam":{"type":"static"}}"#.to_owned(),
            _ => r#"{"type": "macvlan",}"#.to_owned(),
        }
    }

    /// Answers every request like a permissive API server.
    async fn auto_server(
        mut handle: mock::Handle<Request<Body>, Response<Body>>,
        served: Arc<Mutex<Vec<Value>>>,
    ) {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().clone();
            let path = request.uri().path().to_owned();
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let mut body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let reply = if method == Method::GET {
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "multus-node-agent"}})
            } else {
                if body.get("metadata").is_some() {
                    body["metadata"]["resourceVersion"] = json!("1");
                    body["metadata"]["generation"] = json!(1);
                    body["metadata"]["uid"] = json!("uid-x");
                }
                if path.contains("/daemonsets/") {
                    body["status"] = json!({"observedGeneration": 1,
                        "desiredNumberScheduled": NODES, "currentNumberScheduled": NODES,
                        "updatedNumberScheduled": NODES, "numberReady": NODES,
                        "numberAvailable": NODES, "numberUnavailable": 0, "numberMisscheduled": 0});
                }
                if path.ends_with("/status") {
                    body["spec"] = json!({});
                }
                if !path.contains("/events") && !path.ends_with("/status") {
                    served.lock().await.push(body.clone());
                }
                body
            };
            send.send_response(Response::new(Body::from(
                serde_json::to_vec(&reply).unwrap(),
            )));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark; run with --ignored --nocapture"]
    async fn ten_thousand_nads_and_a_thousand_nodes() {
        let rss_start = rss_kib();

        // 1. The NAD cache and validation.
        let plugins: Vec<String> = [
            "macvlan",
            "host-local",
            "bridge",
            "tuning",
            "whereabouts",
            "loopback",
            "portmap",
            "bandwidth",
            "firewall",
            "ipvlan",
            "ptp",
            "vlan",
            "dhcp",
            "static",
            "host-device",
            "sbr",
            "vrf",
            "tap",
            "dummy",
            "multus",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let inventory = Inventory::from(
            (0..NODES)
                .map(|n| {
                    let set: BTreeSet<String> = plugins.iter().cloned().collect();
                    (format!("node-{n:04}"), set)
                })
                .collect::<BTreeMap<_, _>>(),
        );
        let mut nad_cache: Writer<NetworkAttachmentDefinition> = Writer::default();
        let registry = Arc::new(NadRegistry::default());
        let started = Instant::now();
        for i in 0..NADS {
            let mut n = NetworkAttachmentDefinition::new(
                &format!("net-{i}"),
                NetworkAttachmentDefinitionSpec {
                    config: Some(nad_config(i)),
                },
            );
            n.metadata.namespace = Some(format!("team-{}", i % 50));
            let verdict = nad::validate(
                n.metadata.namespace.as_deref().unwrap_or_default(),
                &format!("net-{i}"),
                n.spec.config.as_deref(),
                &inventory,
            );
            registry.set(&nad::key_of(&n), verdict);
            put(&mut nad_cache, n);
        }
        let validation = started.elapsed();
        let rss_nads = rss_kib();

        // 2. Reconciles over 1,000 nodes and node states.
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let served = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(auto_server(handle, served.clone()));
        let (stores, mut writers) = Stores::detached();
        for n in 0..NODES {
            let name = format!("node-{n:04}");
            let meta = ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([(
                    "kubernetes.io/os".into(),
                    "linux".into(),
                )])),
                ..ObjectMeta::default()
            };
            put(&mut writers.nodes, meta.into_response_partial::<Node>());
            let mut state = MultusNodeState::new(
                &name,
                MultusNodeStateSpec {
                    node_name: name.clone(),
                    multus_config: Some("default".into()),
                },
            );
            state.status = Some(MultusNodeStateStatus {
                ready: true,
                primary_network_name: Some("k8s-pod-network".into()),
                cni_plugins: plugins.clone(),
                ..MultusNodeStateStatus::default()
            });
            put(&mut writers.node_states, state);
        }
        let metrics = Arc::new(Metrics::default());
        let ctx = Arc::new(
            Context::new(
                Client::new(service, "default"),
                Settings {
                    operands: OperandSettings {
                        namespace: "multus-system".into(),
                        default_image: ImageRef::builtin(),
                        agent_cluster_role: "multus-node-agent".into(),
                        plugin_cluster_role: "multus-plugin".into(),
                    },
                    role_check_interval: Duration::from_secs(300),
                },
                stores,
                metrics,
                registry.clone(),
                None,
            )
            .with_clock(Arc::new(|| Timestamp::from_second(1_767_225_600).unwrap())),
        );
        let mut mc = MultusConfig::new("default", MultusConfigSpec::default());
        mc.metadata.uid = Some("uid-default".into());
        mc.metadata.generation = Some(1);
        mc.metadata.finalizers = Some(vec![FINALIZER.into()]);
        mc.metadata.creation_timestamp = Some(Time(Timestamp::from_second(1).unwrap()));
        put(&mut writers.configs, mc.clone());

        let started = Instant::now();
        reconcile(Arc::new(mc.clone()), ctx.clone()).await.unwrap();
        let first = started.elapsed();
        for body in served.lock().await.drain(..) {
            // Applied operands go into their caches (status patches do not).
            let _ = writers.put_operand(body);
        }
        let mut latencies = Vec::new();
        for _ in 0..100 {
            let started = Instant::now();
            reconcile(Arc::new(mc.clone()), ctx.clone()).await.unwrap();
            latencies.push(started.elapsed());
        }
        latencies.sort();
        let rss_end = rss_kib();
        let invalid = registry.invalid_count();
        eprintln!(
            "validated {NADS} NADs against {NODES} nodes in {validation:?} ({:?} per NAD), \
             {invalid} invalid",
            validation / u32::try_from(NADS).unwrap()
        );
        eprintln!(
            "reconcile over {NODES} nodes: first (applies) {first:?}; steady state p50 {:?}, \
             p99 {:?}",
            latencies[49], latencies[98]
        );
        eprintln!(
            "RSS: start {} MiB, with {NADS} cached NADs {} MiB, end {} MiB",
            rss_start / 1024,
            rss_nads / 1024,
            rss_end / 1024
        );
        assert_eq!(invalid, NADS / 2, "InvalidConfig and sriov PluginMissing");
        assert!(
            rss_end < 50 * 1024,
            "RSS {rss_end} KiB over the 50 MiB target"
        );
    }
}
