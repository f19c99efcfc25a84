//! Reconcile scenarios against a mock API server (tower-test): the test
//! plays the API server, asserting each request's method, path, query and
//! body in order and answering it, then checks the reconcile's result and
//! that no request is left over.

// In a module named `controller` so that `cargo test -p multus-operator controller`
// selects these tests too.
mod controller {
    use std::sync::Arc;
    use std::time::Duration;

    use http::{Method, StatusCode};
    use k8s_openapi::api::apps::v1::DaemonSet;
    use k8s_openapi::api::core::v1::{ConfigMap, Node};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;
    use kube::Resource;
    use kube::core::PartialObjectMetaExt;
    use kube::runtime::controller::Action;
    use multus_config::crd::multus_config::{Placement, UpdateStrategy};
    use multus_config::crd::{
        MultusConfig, MultusConfigSpec, MultusConfigStatus, MultusNodeState, MultusNodeStateSpec,
        MultusNodeStateStatus,
    };
    use multus_e2e::mock_api::{
        ApiHandle, Seen, assert_silent, expect_request, mock_client, next_request, respond_json,
        status_body,
    };
    use multus_operator::controller::context::{Context, Settings, StoreWriters, Stores, put};
    use multus_operator::controller::metrics::Metrics;
    use multus_operator::controller::nad::{NadRegistry, Verdict};
    use multus_operator::controller::reconcile::{error_policy, reconcile};
    use multus_operator::controller::render::{ImageRef, OperandSettings};
    use multus_operator::controller::{Error, FINALIZER};
    use serde_json::{Value, json};

    const NS: &str = "multus-system";
    const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    /// How long the mock API server waits for an expected request.
    const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

    struct ApiServer {
        handle: ApiHandle,
    }

    impl ApiServer {
        /// Takes the next request, checks method and path, answers with
        /// `reply(&call)` = (status code, body).
        async fn expect(
            &mut self,
            method: Method,
            path: &str,
            reply: impl FnOnce(&Seen) -> (u16, Value),
        ) -> Seen {
            let (call, send) =
                expect_request(&mut self.handle, method, path, REQUEST_DEADLINE).await;
            let (code, body) = reply(&call);
            respond_json(send, StatusCode::from_u16(code).unwrap(), &body);
            call
        }

        /// Takes the next request, the apply of a ConfigMap (its name
        /// carries a hash, so any), answers with `reply(&call)`.
        async fn expect_config_map(&mut self, reply: impl FnOnce(&Seen) -> Value) -> Seen {
            let (call, send) = next_request(&mut self.handle, REQUEST_DEADLINE).await;
            assert_eq!(call.method, Method::PATCH, "unexpected request {call:#?}");
            assert!(call.path.starts_with(CM_PREFIX), "{}", call.path);
            respond_json(send, StatusCode::OK, &reply(&call));
            call
        }

        /// The applies of the identities and their rights, in order: the
        /// agents' ServiceAccount and ClusterRoleBinding, the plugin's
        /// ServiceAccount and ClusterRoleBinding, the agents' Role and
        /// RoleBinding. Returns the served objects.
        async fn expect_identities(&mut self) -> Vec<Value> {
            let mut served_objects = Vec::new();
            for path in [
                SA_PATH,
                CRB_PATH,
                PLUGIN_SA_PATH,
                PLUGIN_CRB_PATH,
                AGENT_ROLE_PATH,
                AGENT_RB_PATH,
            ] {
                let call = self.expect(Method::PATCH, path, ok_echo).await;
                assert!(!call.query.contains("dryRun"), "{path}: {}", call.query);
                assert!(call.query.contains("fieldManager=multus-operator"));
                served_objects.push(served(&call, "1"));
            }
            served_objects
        }

        /// The checks of the chart's agent and plugin ClusterRoles, both present.
        async fn expect_roles(&mut self) {
            self.expect(Method::GET, ROLE_PATH, |_| (200, role())).await;
            self.expect(Method::GET, PLUGIN_ROLE_PATH, |_| (200, role()))
                .await;
        }

        /// The patch of the MultusConfig's finalizers, answered with the
        /// object.
        async fn expect_finalizer_patch(&mut self) -> Seen {
            self.expect(Method::PATCH, MC_PATH, |_| {
                (
                    200,
                    json!({"apiVersion": "multus.dev/v1alpha1", "kind": "MultusConfig",
                        "metadata": {"name": "default"}, "spec": {}}),
                )
            })
            .await
        }

        /// The list of the uninstall pods, answered with `items`.
        async fn expect_uninstall_pods(&mut self, items: Vec<Value>) -> Seen {
            self.expect(Method::GET, PODS_PATH, |_| {
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}),
                )
            })
            .await
        }

        /// Asserts that no further request comes.
        async fn silent(&mut self) {
            assert_silent(&mut self.handle, Duration::from_millis(200)).await;
        }
    }

    struct Harness {
        ctx: Arc<Context>,
        writers: StoreWriters,
        api: ApiServer,
        metrics: Arc<Metrics>,
    }

    fn harness(now: i64) -> Harness {
        let (client, handle) = mock_client("default");
        let (stores, writers) = Stores::detached();
        let metrics = Arc::new(Metrics::default());
        let settings = Settings {
            operands: OperandSettings {
                namespace: NS.to_owned(),
                default_image: ImageRef::parse("ghcr.io/multus-rs/multus:v0.1.0").unwrap(),
                agent_cluster_role: "multus-node-agent".to_owned(),
                plugin_cluster_role: "multus-plugin".to_owned(),
            },
            role_check_interval: Duration::from_secs(300),
        };
        let ctx = Context::new(
            client,
            settings,
            stores,
            metrics.clone(),
            Arc::new(NadRegistry::default()),
            None,
        )
        .with_clock(Arc::new(move || at(now)));
        Harness {
            ctx: Arc::new(ctx),
            writers,
            api: ApiServer { handle },
            metrics,
        }
    }

    fn config(name: &str, created: i64, spec: MultusConfigSpec) -> MultusConfig {
        let mut mc = MultusConfig::new(name, spec);
        mc.metadata.uid = Some(format!("uid-{name}"));
        mc.metadata.generation = Some(1);
        mc.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
        mc.metadata.creation_timestamp = Some(Time(at(created)));
        mc
    }

    fn node(h: &mut Harness, name: &str, labels: &[(&str, &str)]) {
        let meta = ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        };
        put(&mut h.writers.nodes, meta.into_response_partial::<Node>());
    }

    fn node_state(h: &mut Harness, node: &str, config: &str, ready: bool, primary: Option<&str>) {
        let mut state = MultusNodeState::new(
            node,
            MultusNodeStateSpec {
                node_name: node.to_owned(),
                multus_config: Some(config.to_owned()),
            },
        );
        state.status = Some(MultusNodeStateStatus {
            ready,
            message: (!ready).then(|| "no primary CNI config in /etc/cni/net.d".to_owned()),
            primary_network_name: primary.map(str::to_owned),
            ..MultusNodeStateStatus::default()
        });
        put(&mut h.writers.node_states, state);
    }

    /// The server's answer to an apply: the body with server fields.
    fn served(call: &Seen, resource_version: &str) -> Value {
        let mut body = call.body.clone();
        let name = body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        body["metadata"]["resourceVersion"] = json!(resource_version);
        body["metadata"]["uid"] = json!(format!("uid-{name}"));
        if body["metadata"].get("generation").is_none() {
            body["metadata"]["generation"] = json!(1);
        }
        body
    }

    /// A DaemonSet answer with a rollout status.
    fn served_ds(call: &Seen, generation: i64, desired: i32, updated: i32, ready: i32) -> Value {
        let mut body = served(call, &format!("ds-{generation}-{updated}-{ready}"));
        body["metadata"]["generation"] = json!(generation);
        body["status"] = json!({
            "observedGeneration": generation,
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": desired,
            "updatedNumberScheduled": updated,
            "numberReady": ready,
            "numberAvailable": ready,
            "numberUnavailable": desired - ready,
            "numberMisscheduled": 0,
        });
        body
    }

    fn ok_echo(call: &Seen) -> (u16, Value) {
        (200, served(call, "1"))
    }

    /// The answer to a status apply: a whole MultusConfig.
    fn status_echo(call: &Seen) -> (u16, Value) {
        let mut body = served(call, "2");
        body["spec"] = json!({});
        (200, body)
    }

    fn deleted() -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
    }

    fn role() -> Value {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "multus-node-agent"}, "rules": []
        })
    }

    fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
        status["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == type_)
            .unwrap_or_else(|| panic!("no {type_} condition in {status:#}"))
    }

    fn event_reason(call: &Seen) -> (&str, &str) {
        (
            call.body["type"].as_str().unwrap_or_default(),
            call.body["reason"].as_str().unwrap_or_default(),
        )
    }

    const DS_PATH: &str = "/apis/apps/v1/namespaces/multus-system/daemonsets/multus-agent-default";
    const SA_PATH: &str = "/api/v1/namespaces/multus-system/serviceaccounts/multus-agent-default";
    const CRB_PATH: &str =
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/multus-agent-default";
    const CM_PREFIX: &str = "/api/v1/namespaces/multus-system/configmaps/";
    const ROLE_PATH: &str = "/apis/rbac.authorization.k8s.io/v1/clusterroles/multus-node-agent";
    const PLUGIN_ROLE_PATH: &str = "/apis/rbac.authorization.k8s.io/v1/clusterroles/multus-plugin";
    const PLUGIN_SA_PATH: &str =
        "/api/v1/namespaces/multus-system/serviceaccounts/multus-plugin-default";
    const PLUGIN_CRB_PATH: &str =
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/multus-plugin-default";
    const AGENT_ROLE_PATH: &str =
        "/apis/rbac.authorization.k8s.io/v1/namespaces/multus-system/roles/multus-agent-default";
    const AGENT_RB_PATH: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/multus-system/rolebindings/multus-agent-default";
    const MC_PATH: &str = "/apis/multus.dev/v1alpha1/multusconfigs/default";
    const PODS_PATH: &str = "/api/v1/namespaces/multus-system/pods";
    const MC_STATUS_PATH: &str = "/apis/multus.dev/v1alpha1/multusconfigs/default/status";
    const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

    /// What the first apply of `default` leaves behind, to feed later passes.
    struct Applied {
        identities: Vec<Value>,
        cm: Value,
        ds: Value,
        status: Value,
    }

    /// Plays the first apply: dry run, eight applies, role checks, status
    /// and the RollingOut event.
    async fn first_apply(h: &mut Harness, mc: &MultusConfig) -> Applied {
        let task = tokio::spawn(reconcile(Arc::new(mc.clone()), h.ctx.clone()));
        let api = &mut h.api;
        let dry = api
            .expect(Method::PATCH, DS_PATH, |c| (200, served_ds(c, 1, 2, 0, 0)))
            .await;
        assert!(dry.query.contains("dryRun=All"), "{}", dry.query);
        assert!(dry.query.contains("fieldManager=multus-operator"));
        assert!(dry.query.contains("force=true"));
        let identities = api.expect_identities().await;
        assert_eq!(identities[1]["roleRef"]["name"], "multus-node-agent");
        assert_eq!(identities[3]["roleRef"]["name"], "multus-plugin");
        assert_eq!(
            identities[4]["rules"][0]["resourceNames"],
            json!(["multus-plugin-default"])
        );
        let cm = api.expect_config_map(|c| served(c, "1")).await;
        let cm_call = served(&cm, "1");
        assert_eq!(cm_call["immutable"], true);
        let ds = api
            .expect(Method::PATCH, DS_PATH, |c| (200, served_ds(c, 1, 2, 0, 0)))
            .await;
        api.expect_roles().await;
        let status = api.expect(Method::PATCH, MC_STATUS_PATH, status_echo).await;
        assert!(status.query.contains("fieldManager=multus-operator"));
        assert!(status.query.contains("force=true"));
        let event = api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
        assert_eq!(event_reason(&event), ("Normal", "RollingOut"));
        assert_eq!(event.body["regarding"]["kind"], "MultusConfig");
        assert_eq!(event.body["reportingController"], "multus-operator");
        let action = task.await.unwrap().unwrap();
        assert_eq!(action, Action::requeue(Duration::from_secs(15)));
        api.silent().await;
        Applied {
            identities,
            cm: cm_call,
            ds: served_ds(&ds, 1, 2, 0, 0),
            status: status.body,
        }
    }

    fn feed(h: &mut Harness, applied: &Applied) {
        for object in applied.identities.iter().chain([&applied.cm, &applied.ds]) {
            h.writers.put_operand(object.clone()).unwrap();
        }
    }

    fn with_status(mut mc: MultusConfig, status: &Value) -> MultusConfig {
        mc.status =
            Some(serde_json::from_value::<MultusConfigStatus>(status["status"].clone()).unwrap());
        mc
    }

    #[tokio::test]
    async fn first_apply_creates_every_operand_and_reports_progress() {
        let mut h = harness(T0 + 60);
        node(&mut h, "n1", &[]);
        node(&mut h, "n2", &[]);
        let mc = config("default", T0, MultusConfigSpec::default());
        let applied = first_apply(&mut h, &mc).await;
        let s = &applied.status;
        assert_eq!(s["apiVersion"], "multus.dev/v1alpha1");
        assert_eq!(s["status"]["observedGeneration"], 1);
        assert_eq!(s["status"]["desiredNodes"], 2);
        assert_eq!(condition(s, "Ready")["status"], "False");
        assert_eq!(condition(s, "Ready")["reason"], "RollingOut");
        assert_eq!(condition(s, "Progressing")["status"], "True");
        assert_eq!(condition(s, "Degraded")["reason"], "AsExpected");
        assert_eq!(
            condition(s, "Ready")["lastTransitionTime"],
            "2026-01-01T00:01:00Z"
        );
        assert_eq!(
            h.metrics
                .encode()
                .lines()
                .find(|l| l.starts_with("multus_operator_reconciles_total")),
            Some("multus_operator_reconciles_total 1")
        );
    }

    #[tokio::test]
    async fn second_pass_without_changes_writes_nothing() {
        let mut h = harness(T0 + 60);
        node(&mut h, "n1", &[]);
        node(&mut h, "n2", &[]);
        let mc = config("default", T0, MultusConfigSpec::default());
        let applied = first_apply(&mut h, &mc).await;
        feed(&mut h, &applied);
        let mc = with_status(mc, &applied.status);
        let task = tokio::spawn(reconcile(Arc::new(mc), h.ctx.clone()));
        let action = task.await.unwrap().unwrap();
        assert_eq!(action, Action::requeue(Duration::from_secs(15)));
        h.api.silent().await;
    }

    #[tokio::test]
    async fn nodes_whose_plugin_token_is_not_refreshed_are_degraded() {
        let mut h = harness(T0 + 60);
        node(&mut h, "n1", &[]);
        node(&mut h, "n2", &[]);
        let mc = config("default", T0, MultusConfigSpec::default());
        let applied = first_apply(&mut h, &mc).await;
        feed(&mut h, &applied);
        let rfc3339 = |s: i64| at(s).to_string();
        let mut with_credential = |name: &str, credential: Value| {
            let mut state = MultusNodeState::new(
                name,
                MultusNodeStateSpec {
                    node_name: name.to_owned(),
                    multus_config: Some("default".to_owned()),
                },
            );
            state.status = Some(
                serde_json::from_value(json!({
                    "ready": true,
                    "primaryNetworkName": "k8s",
                    "pluginCredential": credential,
                }))
                .unwrap(),
            );
            put(&mut h.writers.node_states, state);
        };
        // n1 refreshed its token an hour ago; n2's agent has been gone for
        // 20 hours, so its token has 4 hours left.
        with_credential(
            "n1",
            json!({"serviceAccount": "multus-plugin-default", "source": "TokenRequest",
                "issuedAt": rfc3339(T0 - 3600), "expiresAt": rfc3339(T0 + 82_800),
                "since": rfc3339(T0 - 200_000)}),
        );
        with_credential(
            "n2",
            json!({"serviceAccount": "multus-plugin-default", "source": "TokenRequest",
                "issuedAt": rfc3339(T0 - 72_000), "expiresAt": rfc3339(T0 + 14_400),
                "since": rfc3339(T0 - 200_000)}),
        );
        let mc = with_status(mc, &applied.status);
        let task = tokio::spawn(reconcile(Arc::new(mc), h.ctx.clone()));
        let status = h
            .api
            .expect(Method::PATCH, MC_STATUS_PATH, status_echo)
            .await;
        let degraded = condition(&status.body, "Degraded");
        assert_eq!(degraded["reason"], "PluginCredentialExpiring");
        let message = degraded["message"].as_str().unwrap();
        assert!(
            message.contains("on 1 node: n2 (expires at 2026-01-01T04:00:00Z, not refreshed)"),
            "{message}"
        );
        let e = h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
        assert_eq!(event_reason(&e), ("Warning", "PluginCredentialExpiring"));
        // Still rolling out (15 s) is sooner than n2's expiry.
        let action = task.await.unwrap().unwrap();
        assert_eq!(action, Action::requeue(Duration::from_secs(15)));
        h.api.silent().await;
    }

    #[tokio::test]
    async fn invalid_nads_are_counted_in_the_status() {
        let mut h = harness(T0 + 60);
        node(&mut h, "n1", &[]);
        node(&mut h, "n2", &[]);
        let mc = config("default", T0, MultusConfigSpec::default());
        let applied = first_apply(&mut h, &mc).await;
        feed(&mut h, &applied);
        node_state(&mut h, "n1", "default", true, Some("k8s"));
        h.ctx.nads.set(
            "team-a/broken",
            Verdict::InvalidConfig("not JSON".to_owned()),
        );
        // Missing on a node of another pool: not this MultusConfig's problem.
        h.ctx.nads.set(
            "team-b/elsewhere",
            Verdict::PluginMissing([("sriov".to_owned(), Arc::from(vec!["n9".to_owned()]))].into()),
        );
        let mc = with_status(mc, &applied.status);
        let task = tokio::spawn(reconcile(Arc::new(mc), h.ctx.clone()));
        let status = h
            .api
            .expect(Method::PATCH, MC_STATUS_PATH, status_echo)
            .await;
        assert_eq!(
            status.body["status"]["invalidNetworkAttachmentDefinitions"],
            1
        );
        let degraded = condition(&status.body, "Degraded");
        assert_eq!(degraded["reason"], "InvalidNetworkAttachmentDefinitions");
        assert!(
            degraded["message"]
                .as_str()
                .unwrap()
                .contains("team-a/broken (InvalidConfig)")
        );
        let e = h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
        assert_eq!(
            event_reason(&e),
            ("Warning", "InvalidNetworkAttachmentDefinitions")
        );
        task.await.unwrap().unwrap();
        h.api.silent().await;
    }

    #[tokio::test]
    async fn drift_of_the_daemon_set_is_reverted() {
        let mut h = harness(T0 + 60);
        node(&mut h, "n1", &[]);
        let mc = config("default", T0, MultusConfigSpec::default());
        let applied = first_apply(&mut h, &mc).await;
        feed(&mut h, &applied);
        // Someone edits the DaemonSet: its generation moves.
        let mut edited = applied.ds.clone();
        edited["metadata"]["generation"] = json!(2);
        put(
            h.writers.operand::<DaemonSet>(),
            serde_json::from_value::<DaemonSet>(edited).unwrap(),
        );
        let mc = with_status(mc, &applied.status);
        let task = tokio::spawn(reconcile(Arc::new(mc), h.ctx.clone()));
        // Same rendering (no dry run), applied again over the edit.
        h.api.expect_identities().await;
        let cm_path = format!(
            "{CM_PREFIX}{}",
            applied.cm["metadata"]["name"].as_str().unwrap()
        );
        h.api.expect(Method::PATCH, &cm_path, ok_echo).await;
        h.api
            .expect(Method::PATCH, DS_PATH, |c| (200, served_ds(c, 3, 2, 0, 0)))
            .await;
        task.await.unwrap().unwrap();
        h.api.silent().await;
    }

    #[tokio::test]
    async fn spec_change_rolls_a_new_config_map_and_prunes_the_old_one_after_the_rollout() {
        let mut h = harness(T0 + 60);
        node(&mut h, "n1", &[]);
        node(&mut h, "n2", &[]);
        let mc = config("default", T0, MultusConfigSpec::default());
        let applied = first_apply(&mut h, &mc).await;
        feed(&mut h, &applied);
        let old_cm = applied.cm["metadata"]["name"].as_str().unwrap().to_owned();

        // The user turns on namespace isolation: generation 2.
        let mut changed = with_status(mc.clone(), &applied.status);
        changed.spec.namespace_isolation = Some(true);
        changed.metadata.generation = Some(2);
        let task = tokio::spawn(reconcile(Arc::new(changed.clone()), h.ctx.clone()));
        let dry = h
            .api
            .expect(Method::PATCH, DS_PATH, |c| (200, served_ds(c, 2, 2, 0, 0)))
            .await;
        assert!(dry.query.contains("dryRun=All"));
        h.api.expect_identities().await;
        let cm_call = h.api.expect_config_map(|c| served(c, "5")).await;
        let new_cm_path = cm_call.path.clone();
        assert!(new_cm_path.starts_with(CM_PREFIX) && !new_cm_path.ends_with(&old_cm));
        assert!(
            cm_call.body["data"]["agent.yaml"]
                .as_str()
                .unwrap()
                .contains("namespaceIsolation: true")
        );
        let new_cm = served(&cm_call, "5");
        let ds = h
            .api
            .expect(Method::PATCH, DS_PATH, |c| (200, served_ds(c, 2, 2, 0, 1)))
            .await;
        // The pod template carries the new settings hash and mounts the new map.
        let template = &ds.body["spec"]["template"];
        assert_eq!(
            template["metadata"]["annotations"]["multus.dev/config-hash"]
                .as_str()
                .map(|h| &h[..10]),
            new_cm_path.rsplit('-').next()
        );
        // Rollout not complete: the old ConfigMap stays (old pods mount it).
        let status = h
            .api
            .expect(Method::PATCH, MC_STATUS_PATH, status_echo)
            .await;
        assert_eq!(status.body["status"]["observedGeneration"], 2);
        assert_eq!(condition(&status.body, "Progressing")["status"], "True");
        task.await.unwrap().unwrap();
        h.api.silent().await;

        // The rollout completes: the old ConfigMap is pruned.
        let mut ds_done = served_ds(&ds, 2, 2, 2, 2);
        ds_done["metadata"]["resourceVersion"] = json!("ds-done");
        put(
            h.writers.operand::<DaemonSet>(),
            serde_json::from_value::<DaemonSet>(ds_done).unwrap(),
        );
        put(
            h.writers.operand::<ConfigMap>(),
            serde_json::from_value::<ConfigMap>(new_cm).unwrap(),
        );
        node_state(&mut h, "n1", "default", true, Some("k8s-pod-network"));
        node_state(&mut h, "n2", "default", true, Some("k8s-pod-network"));
        let changed = with_status(changed, &status.body);
        let task = tokio::spawn(reconcile(Arc::new(changed), h.ctx.clone()));
        // The DaemonSet generation in the cache is the applied one: no apply.
        let delete = h
            .api
            .expect(Method::DELETE, &format!("{CM_PREFIX}{old_cm}"), |_| {
                (200, deleted())
            })
            .await;
        assert_eq!(
            delete.body["preconditions"]["uid"],
            format!("uid-{old_cm}"),
            "deletes only the object it saw"
        );
        let pruned = h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
        assert_eq!(event_reason(&pruned), ("Normal", "Pruned"));
        assert!(pruned.body["note"].as_str().unwrap().contains(&old_cm));
        let status = h
            .api
            .expect(Method::PATCH, MC_STATUS_PATH, status_echo)
            .await;
        assert_eq!(condition(&status.body, "Ready")["status"], "True");
        assert_eq!(
            status.body["status"]["primaryNetworks"][0]["name"],
            "k8s-pod-network"
        );
        let reasons: Vec<(String, String)> = {
            let mut out = Vec::new();
            for _ in 0..2 {
                let e = h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
                let (t, r) = event_reason(&e);
                out.push((t.to_owned(), r.to_owned()));
            }
            out
        };
        assert_eq!(
            reasons,
            [
                ("Normal".to_owned(), "RolloutComplete".to_owned()),
                ("Normal".to_owned(), "Ready".to_owned())
            ]
        );
        let action = task.await.unwrap().unwrap();
        assert_eq!(action, Action::requeue(Duration::from_secs(300)));
        h.api.silent().await;
    }

    #[tokio::test]
    async fn overlapping_node_pools_degrade_the_newer_config_and_exclude_the_nodes() {
        let mut h = harness(T0 + 600);
        node(&mut h, "n1", &[("pool", "gpu")]);
        node(&mut h, "n2", &[("pool", "cpu")]);
        let older = config(
            "gpu",
            T0,
            MultusConfigSpec {
                placement: Some(Placement {
                    node_selector: Some([("pool".to_owned(), "gpu".to_owned())].into()),
                    ..Placement::default()
                }),
                ..MultusConfigSpec::default()
            },
        );
        put(&mut h.writers.configs, older);
        let newer = config("default", T0 + 100, MultusConfigSpec::default());
        put(&mut h.writers.configs, newer.clone());
        let task = tokio::spawn(reconcile(Arc::new(newer), h.ctx.clone()));
        let dry = h
            .api
            .expect(Method::PATCH, DS_PATH, |c| (200, served_ds(c, 1, 1, 0, 0)))
            .await;
        let terms = &dry.body["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"];
        assert_eq!(
            terms[0]["matchFields"][0],
            json!({"key": "metadata.name", "operator": "NotIn", "values": ["n1"]})
        );
        h.api.expect_identities().await;
        h.api.expect_config_map(|c| c.body.clone()).await;
        h.api
            .expect(Method::PATCH, DS_PATH, |c| (200, served_ds(c, 1, 1, 1, 1)))
            .await;
        h.api.expect_roles().await;
        let status = h
            .api
            .expect(Method::PATCH, MC_STATUS_PATH, status_echo)
            .await;
        let degraded = condition(&status.body, "Degraded");
        assert_eq!(degraded["status"], "True");
        assert_eq!(degraded["reason"], "NodeSelectorConflict");
        let message = degraded["message"].as_str().unwrap();
        assert!(message.contains("older MultusConfig gpu"), "{message}");
        assert!(message.contains(": n1."), "{message}");
        assert!(message.contains("disjoint"), "{message}");
        let warning = h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
        assert_eq!(event_reason(&warning), ("Warning", "NodeSelectorConflict"));
        let ready = h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
        assert_eq!(event_reason(&ready), ("Normal", "RolloutComplete"));
        let ready = h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
        assert_eq!(event_reason(&ready), ("Normal", "Ready"));
        task.await.unwrap().unwrap();
        h.api.silent().await;
    }

    #[tokio::test]
    async fn invalid_spec_applies_nothing_and_says_why() {
        let mut h = harness(T0 + 60);
        let mc = config(
            "default",
            T0,
            MultusConfigSpec {
                update_strategy: Some(UpdateStrategy {
                    max_unavailable: Some(
                        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0),
                    ),
                }),
                ..MultusConfigSpec::default()
            },
        );
        let task = tokio::spawn(reconcile(Arc::new(mc), h.ctx.clone()));
        h.api.expect_roles().await;
        let status = h
            .api
            .expect(Method::PATCH, MC_STATUS_PATH, status_echo)
            .await;
        let degraded = condition(&status.body, "Degraded");
        assert_eq!(degraded["reason"], "InvalidSpec");
        assert!(degraded["message"].as_str().unwrap().contains(
            "spec.updateStrategy.maxUnavailable: 0 would never let the DaemonSet replace a pod"
        ));
        assert_eq!(condition(&status.body, "Ready")["reason"], "InvalidSpec");
        let e = h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
        assert_eq!(event_reason(&e), ("Warning", "InvalidSpec"));
        let action = task.await.unwrap().unwrap();
        assert_eq!(action, Action::requeue(Duration::from_secs(300)));
        h.api.silent().await;
    }

    #[tokio::test]
    async fn a_daemon_set_the_api_server_rejects_is_an_invalid_spec() {
        let mut h = harness(T0 + 60);
        let mc = config("default", T0, MultusConfigSpec::default());
        let task = tokio::spawn(reconcile(Arc::new(mc), h.ctx.clone()));
        let dry = h
            .api
            .expect(Method::PATCH, DS_PATH, |_| {
                (
                    422,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "reason": "Invalid", "code": 422,
                        "message": "DaemonSet.apps \"multus-agent-default\" is invalid: \
                            spec.template.spec.containers[0].resources.requests: Invalid value: \
                            \"2\": must be less than or equal to cpu limit"}),
                )
            })
            .await;
        assert!(dry.query.contains("dryRun=All"));
        // Nothing else is applied.
        h.api.expect_roles().await;
        let status = h
            .api
            .expect(Method::PATCH, MC_STATUS_PATH, status_echo)
            .await;
        let degraded = condition(&status.body, "Degraded");
        assert_eq!(degraded["reason"], "InvalidSpec");
        let message = degraded["message"].as_str().unwrap();
        assert!(
            message.contains("spec: the API server rejects the DaemonSet rendered from it"),
            "{message}"
        );
        assert!(message.contains("must be less than or equal to cpu limit"));
        let e = h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
        assert_eq!(event_reason(&e), ("Warning", "InvalidSpec"));
        let action = task.await.unwrap().unwrap();
        assert_eq!(action, Action::requeue(Duration::from_secs(300)));
        h.api.silent().await;
    }

    #[tokio::test]
    async fn a_missing_agent_role_is_reported() {
        let mut h = harness(T0 + 60);
        node(&mut h, "n1", &[]);
        let mc = config("default", T0, MultusConfigSpec::default());
        let task = tokio::spawn(reconcile(Arc::new(mc), h.ctx.clone()));
        h.api
            .expect(Method::PATCH, DS_PATH, |c| (200, served_ds(c, 1, 1, 1, 1)))
            .await;
        h.api.expect_identities().await;
        h.api.expect_config_map(|c| c.body.clone()).await;
        h.api
            .expect(Method::PATCH, DS_PATH, |c| (200, served_ds(c, 1, 1, 1, 1)))
            .await;
        h.api
            .expect(Method::GET, ROLE_PATH, |_| {
                (404, status_body(404, "NotFound", "not found"))
            })
            .await;
        h.api
            .expect(Method::GET, PLUGIN_ROLE_PATH, |_| (200, role()))
            .await;
        let status = h
            .api
            .expect(Method::PATCH, MC_STATUS_PATH, status_echo)
            .await;
        assert_eq!(
            condition(&status.body, "Ready")["reason"],
            "AgentClusterRoleMissing"
        );
        assert_eq!(
            condition(&status.body, "Degraded")["reason"],
            "AgentClusterRoleMissing"
        );
        let e = h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
        assert_eq!(event_reason(&e), ("Warning", "AgentClusterRoleMissing"));
        h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await; // RolloutComplete
        task.await.unwrap().unwrap();
        h.api.silent().await;
    }

    #[tokio::test]
    async fn api_errors_degrade_and_requeue_with_backoff() {
        let mut h = harness(T0 + 60);
        node(&mut h, "n1", &[]);
        let mc = Arc::new(config("default", T0, MultusConfigSpec::default()));
        let task = tokio::spawn(reconcile(mc.clone(), h.ctx.clone()));
        h.api
            .expect(Method::PATCH, DS_PATH, |c| (200, served_ds(c, 1, 1, 0, 0)))
            .await;
        h.api
            .expect(Method::PATCH, SA_PATH, |_| {
                (
                    403,
                    status_body(
                        403,
                        "Forbidden",
                        "serviceaccounts is forbidden: User cannot patch",
                    ),
                )
            })
            .await;
        h.api.expect_roles().await;
        let status = h
            .api
            .expect(Method::PATCH, MC_STATUS_PATH, status_echo)
            .await;
        let degraded = condition(&status.body, "Degraded");
        assert_eq!(degraded["reason"], "ApplyFailed");
        assert!(
            degraded["message"]
                .as_str()
                .unwrap()
                .contains("ServiceAccount multus-system/multus-agent-default")
        );
        let e = h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
        assert_eq!(event_reason(&e), ("Warning", "ApplyFailed"));
        h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await; // Deploying
        let error = task.await.unwrap().unwrap_err();
        assert_eq!(error.metric_label(), "apply_403");
        assert!(!error.is_uninstall_pending());
        let first = error_policy(mc.clone(), &error, h.ctx.clone());
        let second = error_policy(mc.clone(), &error, h.ctx.clone());
        assert_eq!(first, Action::requeue(Duration::from_secs(5)));
        assert_eq!(second, Action::requeue(Duration::from_secs(10)));
        assert!(
            h.metrics
                .encode()
                .contains("multus_operator_reconcile_errors_total{reason=\"apply_403\"} 2")
        );
        h.api.silent().await;
    }

    #[tokio::test]
    async fn a_new_config_gets_the_finalizer_first() {
        let mut h = harness(T0);
        let mut mc = config("default", T0, MultusConfigSpec::default());
        mc.metadata.finalizers = None;
        let task = tokio::spawn(reconcile(Arc::new(mc), h.ctx.clone()));
        let patch = h
        .api
        .expect(
            Method::PATCH,
            "/apis/multus.dev/v1alpha1/multusconfigs/default",
            |c| (200, json!({"apiVersion": "multus.dev/v1alpha1", "kind": "MultusConfig",
                "metadata": {"name": "default", "finalizers": [FINALIZER]}, "spec": {}, "_q": c.query})),
        )
        .await;
        assert_eq!(
            patch.body,
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}
            ])
        );
        assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
        h.api.silent().await;
    }

    fn uninstall_pod(node: &str, exit: Option<i32>) -> Value {
        let state = match exit {
            Some(code) => json!({"terminated": {"exitCode": code, "message": "done"}}),
            None => json!({"running": {}}),
        };
        json!({
            "metadata": {"name": format!("agent-{node}"), "namespace": NS,
                "labels": {"multus.dev/config": "default", "multus.dev/mode": "uninstall"}},
            "spec": {"nodeName": node, "containers": [{"name": "node-agent"}]},
            "status": {"containerStatuses": [{"name": "node-agent", "image": "x", "imageID": "",
                "ready": false, "restartCount": 0, "state": state}]}
        })
    }

    #[tokio::test]
    async fn deletion_uninstalls_on_the_nodes_before_removing_the_operands() {
        let mut h = harness(T0 + 60);
        node(&mut h, "n1", &[]);
        node(&mut h, "n2", &[]);
        let mc = config("default", T0, MultusConfigSpec::default());
        let applied = first_apply(&mut h, &mc).await;
        feed(&mut h, &applied);
        node_state(&mut h, "n1", "default", true, Some("k8s"));
        node_state(&mut h, "n2", "default", true, Some("k8s"));
        let mut deleting = with_status(mc, &applied.status);
        deleting.metadata.deletion_timestamp = Some(Time(at(T0 + 50)));

        // Pass 1: switch to uninstall, n2 still working.
        let task = tokio::spawn(reconcile(Arc::new(deleting.clone()), h.ctx.clone()));
        let switch = h
            .api
            .expect(Method::PATCH, DS_PATH, |c| (200, served_ds(c, 2, 2, 2, 0)))
            .await;
        let template = &switch.body["spec"]["template"];
        assert_eq!(
            template["metadata"]["labels"]["multus.dev/mode"],
            "uninstall"
        );
        let args = template["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap();
        assert_eq!(args[..2], [json!("node-agent"), json!("--uninstall")]);
        assert!(
            template["spec"]["containers"][0]
                .get("readinessProbe")
                .is_none()
        );
        let e = h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
        assert_eq!(event_reason(&e), ("Normal", "Uninstalling"));
        let pods = h
            .api
            .expect_uninstall_pods(vec![
                uninstall_pod("n1", Some(0)),
                uninstall_pod("n2", None),
            ])
            .await;
        assert!(
            pods.query.contains(
                "labelSelector=multus.dev%2Fconfig%3Ddefault%2Cmultus.dev%2Fmode%3Duninstall"
            ),
            "{}",
            pods.query
        );
        let status = h
            .api
            .expect(Method::PATCH, MC_STATUS_PATH, status_echo)
            .await;
        let ready = condition(&status.body, "Ready");
        assert_eq!(ready["reason"], "Uninstalling");
        assert!(
            ready["message"]
                .as_str()
                .unwrap()
                .contains("waiting for 1 node of 2 (n2)")
        );
        // Ready dropped from RollingOut to Uninstalling: no event for that.
        let error = task.await.unwrap().unwrap_err();
        assert!(error.is_uninstall_pending(), "{error}");
        assert_eq!(
            error_policy(Arc::new(deleting.clone()), &error, h.ctx.clone()),
            Action::requeue(Duration::from_secs(5))
        );
        h.api.silent().await;

        // Pass 2: every node done; the operands go, then the finalizer.
        put(
            h.writers.operand::<DaemonSet>(),
            serde_json::from_value::<DaemonSet>(served_ds(&switch, 2, 2, 2, 0)).unwrap(),
        );
        let deleting = with_status(deleting, &status.body);
        let task = tokio::spawn(reconcile(Arc::new(deleting), h.ctx.clone()));
        h.api
            .expect_uninstall_pods(vec![
                uninstall_pod("n1", Some(0)),
                uninstall_pod("n2", Some(0)),
            ])
            .await;
        h.api
            .expect(Method::DELETE, DS_PATH, |_| (200, deleted()))
            .await;
        let cm_path = format!(
            "{CM_PREFIX}{}",
            applied.cm["metadata"]["name"].as_str().unwrap()
        );
        h.api
            .expect(Method::DELETE, &cm_path, |_| (200, deleted()))
            .await;
        // Then the identities; deleting the plugin's ServiceAccount revokes
        // every token the agents requested for it.
        for (path, code) in [
            (SA_PATH, 200),
            (PLUGIN_SA_PATH, 200),
            (CRB_PATH, 404),
            (PLUGIN_CRB_PATH, 200),
            (AGENT_ROLE_PATH, 200),
            (AGENT_RB_PATH, 200),
        ] {
            h.api
                .expect(Method::DELETE, path, |_| {
                    (
                        code,
                        if code == 200 {
                            deleted()
                        } else {
                            status_body(404, "NotFound", "not found")
                        },
                    )
                })
                .await;
        }
        for n in ["n1", "n2"] {
            h.api
                .expect(
                    Method::DELETE,
                    &format!("/apis/multus.dev/v1alpha1/multusnodestates/{n}"),
                    |_| (200, deleted()),
                )
                .await;
        }
        let e = h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
        assert_eq!(event_reason(&e), ("Normal", "Uninstalled"));
        assert!(e.body["note"].as_str().unwrap().contains("left untouched"));
        let finalizer = h.api.expect_finalizer_patch().await;
        assert_eq!(
            finalizer.body[1],
            json!({"op": "remove", "path": "/metadata/finalizers/0"})
        );
        assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
        h.api.silent().await;
    }

    #[tokio::test]
    async fn deletion_gives_up_on_unreachable_nodes_after_the_deadline() {
        let mut h = harness(T0 + 10_000);
        let mc = config("default", T0, MultusConfigSpec::default());
        // An uninstall DaemonSet already running, one node never finishing.
        let mut ds = json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "multus-agent-default", "namespace": NS, "generation": 2,
                "resourceVersion": "9", "uid": "uid-ds",
                "labels": {"app.kubernetes.io/managed-by": "multus-operator", "multus.dev/config": "default"},
                "ownerReferences": [{"apiVersion": "multus.dev/v1alpha1", "kind": "MultusConfig",
                    "name": "default", "uid": "uid-default", "controller": true}]},
            "spec": {"selector": {"matchLabels": {"x": "y"}},
                "template": {"metadata": {"labels": {"multus.dev/mode": "uninstall"}},
                    "spec": {"containers": [{"name": "node-agent"}]}}},
        });
        ds["status"] = json!({"observedGeneration": 2, "desiredNumberScheduled": 1,
        "currentNumberScheduled": 1, "numberMisscheduled": 0, "numberReady": 0,
        "updatedNumberScheduled": 1});
        put(
            h.writers.operand::<DaemonSet>(),
            serde_json::from_value::<DaemonSet>(ds).unwrap(),
        );
        let mut deleting = mc;
        deleting.metadata.deletion_timestamp = Some(Time(at(T0)));
        let task = tokio::spawn(reconcile(Arc::new(deleting), h.ctx.clone()));
        h.api
            .expect_uninstall_pods(vec![uninstall_pod("n9", Some(1))])
            .await;
        let warning = h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
        assert_eq!(event_reason(&warning), ("Warning", "UninstallIncomplete"));
        let note = warning.body["note"].as_str().unwrap();
        assert!(note.contains("n9 (exit 1: done)"), "{note}");
        h.api
            .expect(Method::DELETE, DS_PATH, |_| (200, deleted()))
            .await;
        h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await; // Uninstalled
        h.api.expect_finalizer_patch().await;
        assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
        h.api.silent().await;
    }

    #[tokio::test]
    async fn deletion_without_operands_just_releases_the_finalizer() {
        let mut h = harness(T0 + 60);
        let mut mc = config("default", T0, MultusConfigSpec::default());
        mc.metadata.deletion_timestamp = Some(Time(at(T0 + 30)));
        let task = tokio::spawn(reconcile(Arc::new(mc), h.ctx.clone()));
        let e = h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
        assert_eq!(event_reason(&e), ("Normal", "Uninstalled"));
        h.api.expect_finalizer_patch().await;
        assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
        h.api.silent().await;
    }

    #[tokio::test]
    async fn stuck_rollout_turns_degraded_after_the_deadline() {
        let mut h = harness(T0 + 60);
        node(&mut h, "n1", &[]);
        node(&mut h, "n2", &[]);
        let mc = config(
            "default",
            T0,
            MultusConfigSpec {
                progress_deadline_seconds: Some(120),
                ..MultusConfigSpec::default()
            },
        );
        let applied = first_apply(&mut h, &mc).await;
        feed(&mut h, &applied);
        node_state(&mut h, "n2", "default", false, None);
        let mc = with_status(mc, &applied.status);
        // Same observation 200 s later: no progress for longer than 120 s.
        let later = Context::new(
            h.ctx.client.clone(),
            h.ctx.settings.clone(),
            h.ctx.stores.clone(),
            h.metrics.clone(),
            h.ctx.nads.clone(),
            None,
        )
        .with_clock(Arc::new(|| at(T0 + 260)));
        let later = Arc::new(later);
        // A new context has no memory: the deadline counts from the
        // Progressing condition's transition (T0 + 60).
        let task = tokio::spawn(reconcile(Arc::new(mc), later));
        // The new context re-applies once (no applied digest in memory) ...
        h.api.expect_identities().await;
        let cm_path = format!(
            "{CM_PREFIX}{}",
            applied.cm["metadata"]["name"].as_str().unwrap()
        );
        h.api.expect(Method::PATCH, &cm_path, ok_echo).await;
        h.api
            .expect(Method::PATCH, DS_PATH, |c| (200, served_ds(c, 1, 2, 0, 0)))
            .await;
        h.api.expect_roles().await;
        let status = h
            .api
            .expect(Method::PATCH, MC_STATUS_PATH, status_echo)
            .await;
        let degraded = condition(&status.body, "Degraded");
        assert_eq!(degraded["reason"], "RolloutStuck");
        let message = degraded["message"].as_str().unwrap();
        assert!(
            message.contains("made no progress for 200s (progressDeadlineSeconds 120)"),
            "{message}"
        );
        assert!(
            message.contains("n2 (no primary CNI config in /etc/cni/net.d)"),
            "{message}"
        );
        let e = h.api.expect(Method::POST, EVENTS_PATH, ok_echo).await;
        assert_eq!(event_reason(&e), ("Warning", "RolloutStuck"));
        task.await.unwrap().unwrap();
        h.api.silent().await;
    }

    #[test]
    fn errors_through_the_finalizer_keep_their_labels() {
        let inner = Error::UninstallPending { pending: 2 };
        let wrapped = Error::Finalizer(Box::new(kube::runtime::finalizer::Error::CleanupFailed(
            inner,
        )));
        assert!(wrapped.is_uninstall_pending());
        assert_eq!(wrapped.metric_label(), "uninstall_pending");
        let _ = MultusConfig::kind(&());
    }
}
