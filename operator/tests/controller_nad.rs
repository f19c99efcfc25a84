//! NAD validation against a mock API server: Warning events on the NAD
//! for problems, a Normal event when it is fixed, nothing when nothing
//! changed.

// In a module named `controller` so that `cargo test -p multus-operator controller`
// selects these tests too.
mod controller {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    use http::{Method, Request, Response};
    use kube::Client;
    use kube::client::Body;
    use kube::runtime::events::{Recorder, Reporter};
    use multus_config::npwg::nad::{NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec};
    use multus_operator::controller::metrics::Metrics;
    use multus_operator::controller::nad::{Inventory, NadRegistry, Verdict, check};
    use serde_json::Value;
    use tower_test::mock::{self, Handle};

    type ApiHandle = Handle<Request<Body>, Response<Body>>;

    fn nad(config: &str) -> NetworkAttachmentDefinition {
        let mut nad = NetworkAttachmentDefinition::new(
            "macvlan",
            NetworkAttachmentDefinitionSpec {
                config: Some(config.to_owned()),
            },
        );
        nad.metadata.namespace = Some("ns1".to_owned());
        nad.metadata.uid = Some("uid-nad".to_owned());
        nad
    }

    async fn next_event(handle: &mut ApiHandle) -> Value {
        let (request, send) = tokio::time::timeout(Duration::from_secs(2), handle.next_request())
            .await
            .expect("an event")
            .unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(
            request.uri().path(),
            "/apis/events.k8s.io/v1/namespaces/ns1/events"
        );
        let body: Value =
            serde_json::from_slice(&request.into_body().collect_bytes().await.unwrap()).unwrap();
        send.send_response(Response::new(Body::from(
            serde_json::to_vec(&body).unwrap(),
        )));
        body
    }

    async fn silent(handle: &mut ApiHandle) {
        if let Ok(Some((request, _))) =
            tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
        {
            panic!("unexpected request {}", request.uri());
        }
    }

    #[tokio::test]
    async fn nad_validation_publishes_events_on_changes_only() {
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: "multus-operator".into(),
                instance: None,
            },
        );
        let registry = NadRegistry::default();
        let metrics = Metrics::default();
        let mut nodes: BTreeMap<String, BTreeSet<String>> = BTreeMap::from([
            (
                "n1".to_owned(),
                ["macvlan".to_owned(), "host-local".to_owned()].into(),
            ),
            ("n2".to_owned(), ["bridge".to_owned()].into()),
        ]);
        let inventory = Inventory::from(nodes.clone());

        // Broken JSON: Warning InvalidConfig on the NAD.
        let broken = nad(r#"{"type": "macvlan",}"#);
        let task = {
            let (registry, metrics, recorder, inventory) =
                (&registry, &metrics, &recorder, &inventory);
            async move { check(&broken, inventory, registry, recorder, metrics).await }
        };
        let (changed, event) = tokio::join!(task, next_event(&mut handle));
        assert!(changed);
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["reason"], "InvalidConfig");
        assert_eq!(event["regarding"]["kind"], "NetworkAttachmentDefinition");
        assert_eq!(event["regarding"]["namespace"], "ns1");
        assert!(event["note"].as_str().unwrap().contains("ns1/macvlan"));
        assert_eq!(registry.invalid_count(), 1);

        // Same again: no event, no change.
        let again = nad(r#"{"type": "macvlan",}"#);
        assert!(!check(&again, &inventory, &registry, &recorder, &metrics).await);
        silent(&mut handle).await;

        // Valid JSON, but macvlan/host-local are missing on n2.
        let missing =
            nad(r#"{"cniVersion":"0.3.1","type":"macvlan","ipam":{"type":"host-local"}}"#);
        let task = check(&missing, &inventory, &registry, &recorder, &metrics);
        let (changed, event) = tokio::join!(task, next_event(&mut handle));
        assert!(changed);
        assert_eq!(event["reason"], "PluginMissing");
        let note = event["note"].as_str().unwrap();
        assert!(note.contains("\"host-local\" is missing on n2"), "{note}");
        assert!(note.contains("\"macvlan\" is missing on n2"), "{note}");

        // Fixed inventory: Normal ConfigValid.
        nodes.insert(
            "n2".to_owned(),
            ["macvlan".to_owned(), "host-local".to_owned()].into(),
        );
        let fixed = Inventory::from(nodes);
        let task = check(&missing, &fixed, &registry, &recorder, &metrics);
        let (changed, event) = tokio::join!(task, next_event(&mut handle));
        assert!(changed);
        assert_eq!(event["type"], "Normal");
        assert_eq!(event["reason"], "ConfigValid");
        assert_eq!(registry.invalid_count(), 0);
        assert!(matches!(
            registry.remove("ns1/macvlan"),
            Some(Verdict::Valid { .. })
        ));
        assert!(
            metrics
                .encode()
                .contains("multus_operator_nad_validations_total 4")
        );
        silent(&mut handle).await;
    }

    #[tokio::test]
    async fn nad_without_config_is_checked_against_the_multus_conf_dirs() {
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: "multus-operator".into(),
                instance: None,
            },
        );
        let registry = NadRegistry::default();
        let metrics = Metrics::default();
        // n1 and n2 report plugins; n3 has not reported yet (no plugins), so
        // it is never named even though its conf dir lacks the file.
        let plugins: BTreeMap<String, BTreeSet<String>> = ["n1", "n2"]
            .iter()
            .map(|n| ((*n).to_owned(), ["bridge".to_owned()].into()))
            .collect();
        let with_networks = |n2: &[&str]| {
            Inventory::from(plugins.clone()).with_conf_networks(BTreeMap::from([
                ("n1".to_owned(), ["macvlan".to_owned()].into()),
                (
                    "n2".to_owned(),
                    n2.iter().map(|s| (*s).to_owned()).collect(),
                ),
                ("n3".to_owned(), BTreeSet::new()),
            ]))
        };
        let mut file_ref = nad("");
        file_ref.spec.config = None;

        // The file is on every reporting node: valid, no event.
        let present = with_networks(&["macvlan", "other"]);
        assert!(!check(&file_ref, &present, &registry, &recorder, &metrics).await);
        silent(&mut handle).await;
        assert_eq!(registry.invalid_count(), 0);

        // Gone from n2: Warning ConfigFileMissing naming n2 only.
        let missing = with_networks(&["other"]);
        let task = check(&file_ref, &missing, &registry, &recorder, &metrics);
        let (changed, event) = tokio::join!(task, next_event(&mut handle));
        assert!(changed);
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["reason"], "ConfigFileMissing");
        assert_eq!(event["regarding"]["name"], "macvlan");
        let note = event["note"].as_str().unwrap();
        assert!(
            note.contains("no CNI config named \"macvlan\"")
                && note.contains("(multusConfDir) of n2."),
            "{note}"
        );
        assert!(!note.contains("n1") && !note.contains("n3"), "{note}");
        assert_eq!(registry.invalid_count(), 1);
        let pool_n2 = registry.invalid_for(&["n2".to_owned()].into());
        assert_eq!(pool_n2.len(), 1);
        assert_eq!(pool_n2[0].key, "ns1/macvlan");
        assert_eq!(pool_n2[0].reason, "ConfigFileMissing");
        assert!(registry.invalid_for(&["n1".to_owned()].into()).is_empty());
        // Same again: no event, no change.
        assert!(!check(&file_ref, &missing, &registry, &recorder, &metrics).await);
        silent(&mut handle).await;

        // Back on n2: Normal ConfigValid.
        let task = check(&file_ref, &present, &registry, &recorder, &metrics);
        let (changed, event) = tokio::join!(task, next_event(&mut handle));
        assert!(changed);
        assert_eq!(event["type"], "Normal");
        assert_eq!(event["reason"], "ConfigValid");
        assert!(
            event["note"]
                .as_str()
                .unwrap()
                .contains("all 2 reporting nodes")
        );
        assert_eq!(registry.invalid_count(), 0);
        assert!(matches!(
            registry.remove("ns1/macvlan"),
            Some(Verdict::FileReference { nodes: 2, .. })
        ));
        silent(&mut handle).await;
    }
}
