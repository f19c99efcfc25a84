//! The plugin's Kubernetes client against a scripted API server
//! (tower-test mock service): request shapes, retries, budgets, errors.

/// Module named for the `cargo test -p multus-plugin k8s` filter.
mod k8s {

    use std::time::Duration;

    use http::{Method, StatusCode};
    use k8s_openapi::api::core::v1::Pod;
    use multus_config::npwg::{NETWORK_STATUS_ANNOTATION, NetworkStatus};
    use multus_e2e::mock_api::{Reply, Responder, Step, mock_client, serve, status_body};
    use multus_plugin::k8s::{
        EventType, K8sClient, K8sError, K8sSettings, PodRef, REASON_ADDED_INTERFACE,
        REASON_NO_NETWORK_FOUND, added_interface_message,
    };
    use serde_json::{Value, json};
    use tokio::task::JoinHandle;

    const POD_PATH: &str = "/api/v1/namespaces/default/pods/web-1";
    const STATUS_PATH: &str = "/api/v1/namespaces/default/pods/web-1/status";
    const NAD_PATH: &str =
        "/apis/k8s.cni.cncf.io/v1/namespaces/ns/network-attachment-definitions/nad";
    const EVENTS_PATH: &str = "/api/v1/namespaces/default/events";

    fn settings() -> K8sSettings {
        K8sSettings {
            request_timeout: Duration::from_millis(500),
            pod_wait: Duration::from_secs(2),
            retry_interval: Duration::from_millis(10),
        }
    }

    fn client_with(steps: Vec<Step>, settings: K8sSettings) -> (K8sClient, ScenarioEnd) {
        let (client, handle) = mock_client("default");
        let client = K8sClient::from_client(client, settings);
        (client, ScenarioEnd(serve(handle, steps)))
    }

    fn client(steps: Vec<Step>) -> (K8sClient, ScenarioEnd) {
        client_with(steps, settings())
    }

    /// The script's task; `done` checks that every scripted request arrived.
    struct ScenarioEnd(JoinHandle<Vec<Responder>>);

    impl ScenarioEnd {
        async fn done(self) {
            tokio::time::timeout(Duration::from_secs(2), self.0)
                .await
                .expect("not every scripted request was made")
                .expect("the scripted server failed");
        }
    }

    fn pod_json(uid: &str, annotations: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web-1",
                "namespace": "default",
                "uid": uid,
                "resourceVersion": "42",
                "annotations": annotations,
            },
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "i"}]},
        })
    }

    fn not_found(what: &str) -> Reply {
        Reply::Json(
            StatusCode::NOT_FOUND,
            status_body(404, "NotFound", &format!("{what} not found")),
        )
    }

    fn web_1() -> PodRef {
        PodRef::new("default", "web-1").with_uid("uid-1")
    }

    #[tokio::test]
    async fn pod_found_with_one_request() {
        let (client, end) = client(vec![Step::get(
            POD_PATH,
            Reply::Json(StatusCode::OK, pod_json("uid-1", json!({}))),
        )]);
        let pod = client.get_pod(&web_1()).await.unwrap().expect("pod");
        assert_eq!(pod.metadata.uid.as_deref(), Some("uid-1"));
        assert_eq!(client.request_count(), 1);
        end.done().await;
    }

    #[tokio::test]
    async fn pod_not_found_is_none_without_retry() {
        let (client, end) = client(vec![Step::get(POD_PATH, not_found("pods \"web-1\""))]);
        assert!(client.get_pod(&web_1()).await.unwrap().is_none());
        assert_eq!(client.request_count(), 1);
        end.done().await;
    }

    #[tokio::test]
    async fn pod_503_then_200_is_retried() {
        let (client, end) = client(vec![
            Step::get(
                POD_PATH,
                Reply::Json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    status_body(503, "ServiceUnavailable", "the server is shutting down"),
                ),
            ),
            Step::get(
                POD_PATH,
                Reply::Json(StatusCode::OK, pod_json("uid-1", json!({}))),
            ),
        ]);
        assert!(client.get_pod(&web_1()).await.unwrap().is_some());
        assert_eq!(client.request_count(), 2);
        end.done().await;
    }

    #[tokio::test]
    async fn pod_plain_text_500_is_transient_and_named() {
        let steps = (0..3)
            .map(|_| {
                Step::get(
                    POD_PATH,
                    Reply::Text(StatusCode::INTERNAL_SERVER_ERROR, "etcd is down"),
                )
            })
            .collect();
        // Budget for exactly three tries: 10 ms pauses within 25 ms.
        let settings = K8sSettings {
            pod_wait: Duration::from_millis(25),
            retry_interval: Duration::from_millis(10),
            ..settings()
        };
        let (client, end) = client_with(steps, settings);
        let err = client.get_pod(&web_1()).await.unwrap_err();
        assert!(err.is_transient());
        assert_eq!(err.status_code(), Some(500));
        let text = err.to_string();
        assert!(text.contains("getting pod default/web-1"), "{text}");
        assert!(text.contains("etcd is down"), "{text}");
        assert!(
            (1..=3).contains(&client.request_count()),
            "{}",
            client.request_count()
        );
        drop(client);
        // Not every scripted try has to be used within the budget.
        let _ = tokio::time::timeout(Duration::from_millis(100), end.0).await;
    }

    #[tokio::test]
    async fn pod_timeout_names_the_pod() {
        let settings = K8sSettings {
            request_timeout: Duration::from_millis(50),
            pod_wait: Duration::from_millis(0),
            retry_interval: Duration::from_millis(10),
        };
        let (client, end) = client_with(vec![Step::get(POD_PATH, Reply::Never)], settings);
        let started = std::time::Instant::now();
        let err = client.get_pod(&web_1()).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(matches!(err, K8sError::Timeout { .. }), "{err:?}");
        assert!(err.is_transient());
        assert_eq!(
            err.to_string(),
            "timed out after 50ms getting pod default/web-1"
        );
        assert_eq!(client.request_count(), 1);
        end.done().await;
    }

    #[tokio::test]
    async fn pod_timeouts_are_retried_within_the_budget() {
        let settings = K8sSettings {
            request_timeout: Duration::from_millis(30),
            pod_wait: Duration::from_millis(200),
            retry_interval: Duration::from_millis(10),
        };
        let steps = (0..20).map(|_| Step::get(POD_PATH, Reply::Never)).collect();
        let (client, end) = client_with(steps, settings);
        let started = std::time::Instant::now();
        let err = client.get_pod(&web_1()).await.unwrap_err();
        // Bounded by the budget plus one request timeout: at most
        // 200 / (30 + 10) + 1 tries, whatever the machine's load.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(err, K8sError::Timeout { .. }), "{err:?}");
        let count = client.request_count();
        assert!((2..=6).contains(&count), "{count}");
        drop(client);
        drop(end);
    }

    #[tokio::test]
    async fn pod_uid_mismatch_is_an_error() {
        let (client, end) = client(vec![Step::get(
            POD_PATH,
            Reply::Json(StatusCode::OK, pod_json("uid-2", json!({}))),
        )]);
        let err = client.get_pod(&web_1()).await.unwrap_err();
        assert!(matches!(err, K8sError::UidMismatch { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "pod default/web-1 has UID uid-2 but the runtime asked for uid-1"
        );
        assert_eq!(client.request_count(), 1);
        end.done().await;
    }

    #[tokio::test]
    async fn static_pod_uid_mismatch_is_tolerated() {
        let (client, end) = client(vec![Step::get(
            POD_PATH,
            Reply::Json(
                StatusCode::OK,
                pod_json("mirror-uid", json!({"kubernetes.io/config.source": "file"})),
            ),
        )]);
        let pod = client.get_pod(&web_1()).await.unwrap().expect("pod");
        assert_eq!(pod.metadata.uid.as_deref(), Some("mirror-uid"));
        end.done().await;
    }

    #[tokio::test]
    async fn pod_without_runtime_uid_skips_the_check() {
        let (client, end) = client(vec![Step::get(
            POD_PATH,
            Reply::Json(StatusCode::OK, pod_json("uid-9", json!({}))),
        )]);
        assert!(
            client
                .get_pod(&PodRef::new("default", "web-1"))
                .await
                .unwrap()
                .is_some()
        );
        end.done().await;
    }

    #[tokio::test]
    async fn forbidden_is_not_retried_and_names_the_nad() {
        let (client, end) = client(vec![Step::get(
            NAD_PATH,
            Reply::Json(
                StatusCode::FORBIDDEN,
                status_body(
                    403,
                    "Forbidden",
                    "network-attachment-definitions.k8s.cni.cncf.io \"nad\" is forbidden",
                ),
            ),
        )]);
        let err = client.get_nad("ns", "nad").await.unwrap_err();
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(
            text.starts_with(
                "API error getting NetworkAttachmentDefinition ns/nad: 403 Forbidden: "
            ),
            "{text}"
        );
        assert_eq!(client.request_count(), 1);
        end.done().await;
    }

    #[tokio::test]
    async fn nad_found() {
        let nad = json!({
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "nad", "namespace": "ns", "uid": "n-1"},
            "spec": {"config": "{\"cniVersion\":\"1.0.0\",\"type\":\"bridge\"}"},
        });
        let (client, end) = client(vec![Step::get(NAD_PATH, Reply::Json(StatusCode::OK, nad))]);
        let nad = client.get_nad("ns", "nad").await.unwrap().expect("nad");
        assert!(nad.spec.config.unwrap().contains("bridge"));
        assert_eq!(client.request_count(), 1);
        end.done().await;
    }

    #[tokio::test]
    async fn nad_missing_is_none() {
        let (client, end) = client(vec![Step::get(
            NAD_PATH,
            not_found("network-attachment-definitions.k8s.cni.cncf.io \"nad\""),
        )]);
        assert!(client.get_nad("ns", "nad").await.unwrap().is_none());
        assert_eq!(client.request_count(), 1);
        end.done().await;
    }

    #[tokio::test]
    async fn nad_crd_not_served_is_an_error() {
        let (client, end) = client(vec![Step::get(
            NAD_PATH,
            Reply::Text(StatusCode::NOT_FOUND, "404 page not found"),
        )]);
        let err = client.get_nad("ns", "nad").await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("NetworkAttachmentDefinition ns/nad"),
            "{text}"
        );
        assert!(text.contains("CRD installed"), "{text}");
        end.done().await;
    }

    fn statuses() -> Vec<NetworkStatus> {
        vec![NetworkStatus {
            name: "ns/nad".into(),
            interface: Some("net1".into()),
            ips: vec!["10.1.1.5".into()],
            ..NetworkStatus::default()
        }]
    }

    fn status_patch_step(reply: Reply) -> Step {
        Step::new(Method::PATCH, STATUS_PATH, reply)
            .content_type("application/merge-patch+json")
            .body(|body| {
                assert_eq!(body["metadata"]["uid"], "uid-1", "{body}");
                let value = body["metadata"]["annotations"][NETWORK_STATUS_ANNOTATION]
                    .as_str()
                    .expect("annotation is a string");
                let parsed: Value = serde_json::from_str(value).unwrap();
                assert_eq!(parsed[0]["name"], "ns/nad");
                assert_eq!(parsed[0]["interface"], "net1");
                // Only the annotation and the UID precondition are sent.
                assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
                assert_eq!(body["metadata"].as_object().unwrap().len(), 2, "{body}");
            })
    }

    #[tokio::test]
    async fn status_patch_shape_and_single_request() {
        let (client, end) = client(vec![status_patch_step(Reply::Json(
            StatusCode::OK,
            pod_json("uid-1", json!({})),
        ))]);
        client
            .set_network_status(&web_1(), &statuses())
            .await
            .unwrap();
        assert_eq!(client.request_count(), 1);
        end.done().await;
    }

    #[tokio::test]
    async fn status_patch_conflict_then_ok_is_retried() {
        let (client, end) = client(vec![
            status_patch_step(Reply::Json(
                StatusCode::CONFLICT,
                status_body(
                    409,
                    "Conflict",
                    "Operation cannot be fulfilled on pods \"web-1\": the object has been modified",
                ),
            )),
            status_patch_step(Reply::Json(StatusCode::OK, pod_json("uid-1", json!({})))),
        ]);
        client
            .set_network_status(&web_1(), &statuses())
            .await
            .unwrap();
        assert_eq!(client.request_count(), 2);
        end.done().await;
    }

    #[tokio::test]
    async fn status_patch_conflicts_give_up_after_five_tries() {
        let conflict = || {
            status_patch_step(Reply::Json(
                StatusCode::CONFLICT,
                status_body(409, "Conflict", "the object has been modified"),
            ))
        };
        let (client, end) = client((0..5).map(|_| conflict()).collect());
        let err = client
            .set_network_status(&web_1(), &statuses())
            .await
            .unwrap_err();
        assert_eq!(err.status_code(), Some(409));
        assert!(
            err.to_string()
                .contains("patching the network-status of pod default/web-1"),
            "{err}"
        );
        assert_eq!(client.request_count(), 5);
        end.done().await;
    }

    #[tokio::test]
    async fn status_patch_pod_gone_is_ok() {
        let (client, end) = client(vec![status_patch_step(not_found("pods \"web-1\""))]);
        client
            .set_network_status(&web_1(), &statuses())
            .await
            .unwrap();
        assert_eq!(client.request_count(), 1);
        end.done().await;
    }

    #[tokio::test]
    async fn status_patch_recreated_pod_is_left_alone() {
        let (client, end) = client(vec![status_patch_step(Reply::Json(
            StatusCode::CONFLICT,
            status_body(
                409,
                "Conflict",
                "Operation cannot be fulfilled on pods \"web-1\": Precondition failed: UID in precondition: uid-1, UID in object meta: uid-2",
            ),
        ))]);
        client
            .set_network_status(&web_1(), &statuses())
            .await
            .unwrap();
        // Not retried: the precondition will never hold again.
        assert_eq!(client.request_count(), 1);
        end.done().await;
    }

    #[tokio::test]
    async fn status_patch_without_uid_sends_no_precondition() {
        let step = Step::new(
            Method::PATCH,
            STATUS_PATH,
            Reply::Json(StatusCode::OK, pod_json("uid-1", json!({}))),
        )
        .body(|body| assert!(body["metadata"].get("uid").is_none(), "{body}"));
        let (client, end) = client(vec![step]);
        client
            .set_network_status(&PodRef::new("default", "web-1"), &statuses())
            .await
            .unwrap();
        end.done().await;
    }

    fn pod_object() -> Pod {
        serde_json::from_value(pod_json("uid-1", json!({}))).unwrap()
    }

    #[tokio::test]
    async fn event_post_shape() {
        let message = added_interface_message("net1", &["10.1.1.5/24".into()], "ns/nad");
        let step = Step::new(
            Method::POST,
            EVENTS_PATH,
            Reply::Json(
                StatusCode::CREATED,
                json!({"metadata": {"name": "web-1.x"}}),
            ),
        )
        .body(|body| {
            assert_eq!(body["apiVersion"], "v1");
            assert_eq!(body["kind"], "Event");
            let name = body["metadata"]["name"].as_str().unwrap();
            let suffix = name.strip_prefix("web-1.").expect("name <pod>.<hex>");
            assert!(
                !suffix.is_empty() && suffix.chars().all(|c| c.is_ascii_hexdigit()),
                "{name}"
            );
            assert_eq!(body["metadata"]["namespace"], "default");
            let involved = &body["involvedObject"];
            assert_eq!(involved["kind"], "Pod");
            assert_eq!(involved["apiVersion"], "v1");
            assert_eq!(involved["name"], "web-1");
            assert_eq!(involved["namespace"], "default");
            assert_eq!(involved["uid"], "uid-1");
            assert_eq!(body["reason"], "AddedInterface");
            assert_eq!(body["message"], "Add net1 [10.1.1.5/24] from ns/nad");
            assert_eq!(body["type"], "Normal");
            assert_eq!(body["source"]["component"], "multus");
            assert_eq!(body["reportingComponent"], "multus");
            assert_eq!(body["reportingInstance"], "node-a");
            assert_eq!(body["count"], 1);
            assert!(body["action"].as_str().is_some_and(|a| !a.is_empty()));
            for key in ["firstTimestamp", "lastTimestamp", "eventTime"] {
                assert!(body[key].as_str().is_some(), "{key}: {body}");
            }
        });
        let (client, end) = client(vec![step]);
        client
            .record_event(
                &pod_object(),
                EventType::Normal,
                REASON_ADDED_INTERFACE,
                &message,
            )
            .await;
        assert_eq!(client.request_count(), 1);
        end.done().await;
    }

    #[tokio::test]
    async fn event_failure_is_swallowed() {
        let (client, end) = client(vec![Step::new(
            Method::POST,
            EVENTS_PATH,
            Reply::Json(
                StatusCode::FORBIDDEN,
                status_body(403, "Forbidden", "events is forbidden"),
            ),
        )]);
        client
            .record_event(
                &pod_object(),
                EventType::Warning,
                REASON_NO_NETWORK_FOUND,
                "m",
            )
            .await;
        assert_eq!(client.request_count(), 1);
        end.done().await;
    }

    #[tokio::test]
    async fn add_budget_pod_nads_status() {
        // The API cost of an ADD with two attachments of one NAD: 1 GET pod,
        // 1 GET NAD, 1 PATCH status.
        let nad = json!({
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "nad", "namespace": "ns"},
            "spec": {"config": "{}"},
        });
        let (client, end) = client(vec![
            Step::get(
                POD_PATH,
                Reply::Json(StatusCode::OK, pod_json("uid-1", json!({}))),
            ),
            Step::get(NAD_PATH, Reply::Json(StatusCode::OK, nad)),
            status_patch_step(Reply::Json(StatusCode::OK, pod_json("uid-1", json!({})))),
        ]);
        client.get_pod(&web_1()).await.unwrap().unwrap();
        client.get_nad("ns", "nad").await.unwrap().unwrap();
        client
            .set_network_status(&web_1(), &statuses())
            .await
            .unwrap();
        assert_eq!(client.request_count(), 3);
        end.done().await;
    }
}
