//! DRA devices against a scripted API server (tower-test mock service):
//! which requests reading a pod's claims costs, what the claim status
//! writes send, and what a refused write does.

/// Module named for the `cargo test -p multus-plugin dra` filter.
mod dra {

    use std::time::Duration;

    use http::{Method, StatusCode};
    use k8s_openapi::api::core::v1::Pod;
    use multus_config::cni::netconf::NetworkConfig;
    use multus_e2e::mock_api::{
        ApiHandle, Responder, Seen, assert_silent, expect_request, mock_client, respond_json,
        status_body,
    };
    use multus_plugin::attachment::{Attachment, DeviceAttachment};
    use multus_plugin::dra::{
        ClaimProblem, DraDevice, publish_network_data, read_claim_devices, withdraw_network_data,
    };
    use multus_plugin::k8s::{K8sClient, K8sSettings};
    use serde_json::{Map, Value, json};

    const NIC: &str = "example.com/nic";
    const DRIVER: &str = "nic.example.com";
    const CLAIMS: &str = "/apis/resource.k8s.io/v1/namespaces/default/resourceclaims";
    const SLICES: &str = "/apis/resource.k8s.io/v1/resourceslices";
    const EVENTS: &str = "/api/v1/namespaces/default/events";
    const WAIT: Duration = Duration::from_secs(2);

    fn settings() -> K8sSettings {
        K8sSettings {
            request_timeout: Duration::from_millis(500),
            pod_wait: Duration::from_secs(2),
            retry_interval: Duration::from_millis(10),
        }
    }

    fn client() -> (K8sClient, ApiHandle) {
        let (client, handle) = mock_client("default");
        (K8sClient::from_client(client, settings()), handle)
    }

    /// Pod default/web on node-a whose status names `claims`.
    fn pod(claims: &[&str]) -> Pod {
        let statuses: Vec<Value> = claims
            .iter()
            .enumerate()
            .map(|(i, c)| json!({"name": format!("claim-{i}"), "resourceClaimName": c}))
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "uid": "pod-uid"},
            "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "i"}]},
            "status": {"resourceClaimStatuses": statuses}
        }))
        .unwrap()
    }

    fn claim(name: &str, devices: &[&str]) -> Value {
        let results: Vec<Value> = devices
            .iter()
            .map(|d| json!({"request": "nic", "driver": DRIVER, "pool": "node-a", "device": d}))
            .collect();
        json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "spec": {"devices": {"requests": [{"name": "nic", "exactly": {"deviceClassName": "nic"}}]}},
            "status": {"allocation": {"devices": {"results": results}}}
        })
    }

    fn slice_list() -> Value {
        json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSliceList", "metadata": {},
            "items": [{
                "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
                "metadata": {"name": "node-a-nic"},
                "spec": {"driver": DRIVER, "nodeName": "node-a",
                    "pool": {"name": "node-a", "generation": 1, "resourceSliceCount": 1},
                    "devices": [
                        {"name": "nic-0", "attributes": {
                            "k8s.cni.cncf.io/resourceName": {"string": NIC},
                            "k8s.cni.cncf.io/deviceID": {"string": "0000:00:01.0"}}},
                        {"name": "gpu-0"}
                    ]}
            }]
        })
    }

    async fn answer(
        handle: &mut ApiHandle,
        method: Method,
        path: &str,
        status: StatusCode,
        body: Value,
    ) -> Seen {
        let (seen, send) = expect_request(handle, method, path, WAIT).await;
        respond_json(send, status, &body);
        seen
    }

    #[tokio::test]
    async fn one_get_per_claim_and_one_node_scoped_list_per_driver() {
        let (client, mut handle) = client();
        let p = pod(&["web-nic", "web-gpu", "web-nic"]);
        let server = async {
            answer(
                &mut handle,
                Method::GET,
                &format!("{CLAIMS}/web-nic"),
                StatusCode::OK,
                claim("web-nic", &["nic-0"]),
            )
            .await;
            answer(
                &mut handle,
                Method::GET,
                &format!("{CLAIMS}/web-gpu"),
                StatusCode::OK,
                claim("web-gpu", &["gpu-0"]),
            )
            .await;
            let list = answer(
                &mut handle,
                Method::GET,
                SLICES,
                StatusCode::OK,
                slice_list(),
            )
            .await;
            assert_eq!(
                list.query_param("fieldSelector").as_deref(),
                Some("spec.nodeName=node-a,spec.driver=nic.example.com"),
                "{list:?}"
            );
            assert_silent(&mut handle, Duration::from_millis(100)).await;
        };
        let (devices, ()) = tokio::join!(read_claim_devices(&client, &p), server);
        let devices = devices.unwrap();
        assert_eq!(
            client.request_count(),
            3,
            "2 claims (one named twice), 1 driver"
        );
        assert_eq!(devices.count(NIC), 1);
        let nic = devices.get(NIC, 0).unwrap();
        assert_eq!(nic.id, "0000:00:01.0");
        assert_eq!(nic.device.claim(), "default/web-nic");
        assert_eq!(nic.device.claim_uid, "uid-web-nic");
        assert_eq!(
            devices.problems(),
            [ClaimProblem::MissingAttributes {
                claim: "default/web-gpu".into(),
                device: "nic.example.com/node-a/gpu-0".into(),
                missing: vec!["k8s.cni.cncf.io/resourceName", "k8s.cni.cncf.io/deviceID"],
            }]
        );
    }

    #[tokio::test]
    async fn a_pod_without_claims_costs_no_request() {
        let (client, mut handle) = client();
        let devices = read_claim_devices(&client, &pod(&[])).await.unwrap();
        assert_eq!(devices.count(NIC), 0);
        assert!(devices.problems().is_empty());
        assert_silent(&mut handle, Duration::from_millis(50)).await;
        assert_eq!(client.request_count(), 0);
    }

    #[tokio::test]
    async fn a_server_without_resource_k8s_io_v1_is_told_by_its_404() {
        // Kubernetes 1.28: the path itself is unknown (not the claim).
        let (client, mut handle) = client();
        let p = pod(&["web-nic", "web-other"]);
        let path = format!("{CLAIMS}/web-nic");
        let server = answer(
            &mut handle,
            Method::GET,
            &path,
            StatusCode::NOT_FOUND,
            status_body(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        );
        let (devices, _) = tokio::join!(read_claim_devices(&client, &p), server);
        let devices = devices.unwrap();
        assert_eq!(client.request_count(), 1, "nothing more is asked");
        assert_eq!(
            devices.problems(),
            [ClaimProblem::ApiNotServed {
                claims: vec!["default/web-nic".into(), "default/web-other".into()]
            }]
        );
        assert_silent(&mut handle, Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn a_missing_claim_is_named_and_the_others_still_count() {
        let (client, mut handle) = client();
        let p = pod(&["gone", "web-nic"]);
        let server = async {
            answer(
                &mut handle,
                Method::GET,
                &format!("{CLAIMS}/gone"),
                StatusCode::NOT_FOUND,
                status_body(
                    404,
                    "NotFound",
                    "resourceclaims.resource.k8s.io \"gone\" not found",
                ),
            )
            .await;
            answer(
                &mut handle,
                Method::GET,
                &format!("{CLAIMS}/web-nic"),
                StatusCode::OK,
                claim("web-nic", &["nic-0"]),
            )
            .await;
            answer(
                &mut handle,
                Method::GET,
                SLICES,
                StatusCode::OK,
                slice_list(),
            )
            .await;
        };
        let (devices, ()) = tokio::join!(read_claim_devices(&client, &p), server);
        let devices = devices.unwrap();
        assert_eq!(devices.count(NIC), 1);
        assert_eq!(
            devices.problems(),
            [ClaimProblem::NotFound {
                claim: "default/gone".into()
            }]
        );
    }

    #[tokio::test]
    async fn a_forbidden_claim_read_is_an_error_naming_it() {
        let (client, mut handle) = client();
        let p = pod(&["web-nic"]);
        let path = format!("{CLAIMS}/web-nic");
        let server = answer(
            &mut handle,
            Method::GET,
            &path,
            StatusCode::FORBIDDEN,
            status_body(
                403,
                "Forbidden",
                "resourceclaims.resource.k8s.io \"web-nic\" is forbidden",
            ),
        );
        let (devices, _) = tokio::join!(read_claim_devices(&client, &p), server);
        let err = devices.unwrap_err();
        assert!(!err.is_transient());
        assert!(
            err.to_string()
                .starts_with("API error getting ResourceClaim default/web-nic: 403 Forbidden"),
            "{err}"
        );
    }

    fn dra_device(claim: &str, device: &str) -> DraDevice {
        DraDevice {
            claim_namespace: "default".into(),
            claim_name: claim.into(),
            claim_uid: format!("uid-{claim}"),
            driver: DRIVER.into(),
            pool: "node-a".into(),
            device: device.into(),
            share_id: None,
        }
    }

    fn attached(
        network: &str,
        ifname: &str,
        device: Option<DraDevice>,
        ip: &str,
        mac: &str,
    ) -> Attachment {
        Attachment {
            name: network.into(),
            config: NetworkConfig::from_value(
                json!({"cniVersion": "1.0.0", "name": "n", "type": "sriov"}),
            )
            .unwrap(),
            ifname: ifname.into(),
            capability_args: Map::new(),
            cni_args: String::new(),
            is_cluster_network: false,
            default_route: None,
            result: Some(json!({"cniVersion": "1.0.0",
                "interfaces": [{"name": ifname, "mac": mac, "sandbox": "/var/run/netns/x"}],
                "ips": [{"interface": 0, "address": ip}]})),
            device: DeviceAttachment {
                dra: device,
                ..DeviceAttachment::default()
            },
            origin: Default::default(),
        }
    }

    fn attachments() -> Vec<Attachment> {
        vec![
            attached(
                "default/plain",
                "net1",
                None,
                "10.2.0.5/24",
                "02:00:00:00:00:09",
            ),
            attached(
                "default/nic-net",
                "net2",
                Some(dra_device("web-nic", "nic-0")),
                "10.1.1.5/24",
                "02:00:00:00:00:01",
            ),
        ]
    }

    /// Expects the apply of claim `web-nic`'s status by sandbox `c1`.
    async fn expect_apply(handle: &mut ApiHandle) -> (Seen, Responder) {
        let (seen, send) = expect_request(
            handle,
            Method::PATCH,
            &format!("{CLAIMS}/web-nic/status"),
            WAIT,
        )
        .await;
        assert_eq!(seen.content_type, "application/apply-patch+yaml");
        assert_eq!(
            seen.query_param("fieldManager").as_deref(),
            Some("multus-c1")
        );
        assert_eq!(
            seen.query_param("force"),
            None,
            "never takes others' fields"
        );
        assert_eq!(seen.body["apiVersion"], "resource.k8s.io/v1");
        assert_eq!(seen.body["kind"], "ResourceClaim");
        assert_eq!(
            seen.body["metadata"],
            json!({"name": "web-nic", "namespace": "default", "uid": "uid-web-nic"})
        );
        (seen, send)
    }

    #[tokio::test]
    async fn add_applies_the_network_data_of_its_devices_only() {
        let (client, mut handle) = client();
        let p = pod(&["web-nic"]);
        let a = attachments();
        let server = async {
            let (seen, send) = expect_apply(&mut handle).await;
            let devices = seen.body["status"]["devices"].as_array().unwrap().clone();
            assert_eq!(devices.len(), 1, "the plain network has no device");
            let entry = &devices[0];
            assert_eq!(
                (&entry["driver"], &entry["pool"], &entry["device"]),
                (&json!(DRIVER), &json!("node-a"), &json!("nic-0"))
            );
            assert_eq!(
                entry["networkData"],
                json!({"interfaceName": "net2", "ips": ["10.1.1.5/24"], "hardwareAddress": "02:00:00:00:00:01"})
            );
            let ready = &entry["conditions"][0];
            assert_eq!(
                (&ready["type"], &ready["status"]),
                (&json!("Ready"), &json!("True"))
            );
            assert_eq!(ready["reason"], "NetworkAttached");
            assert!(ready["lastTransitionTime"].is_string());
            respond_json(send, StatusCode::OK, &claim("web-nic", &["nic-0"]));
            assert_silent(&mut handle, Duration::from_millis(100)).await;
        };
        let (failures, ()) = tokio::join!(publish_network_data(&client, &p, "c1", &a), server);
        assert!(failures.is_empty());
        assert_eq!(client.request_count(), 1, "one write per claim, no event");
    }

    #[tokio::test]
    async fn a_refused_write_leaves_the_pod_attached_with_one_warning_event() {
        let (client, mut handle) = client();
        let p = pod(&["web-nic"]);
        let a = attachments();
        let server = async {
            let (_, send) = expect_apply(&mut handle).await;
            respond_json(
                send,
                StatusCode::FORBIDDEN,
                &status_body(
                    403,
                    "Forbidden",
                    "resourceclaims.resource.k8s.io \"web-nic\" is forbidden: User \"system:serviceaccount:multus:multus-plugin-default\" cannot patch resource \"resourceclaims/status\"",
                ),
            );
            let event = answer(
                &mut handle,
                Method::POST,
                EVENTS,
                StatusCode::CREATED,
                json!({}),
            )
            .await;
            assert_silent(&mut handle, Duration::from_millis(100)).await;
            event
        };
        let (failures, event) = tokio::join!(publish_network_data(&client, &p, "c1", &a), server);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].0, ["net2"]);
        assert_eq!(client.request_count(), 2, "a 403 is not retried");
        let body = &event.body;
        assert_eq!(body["type"], "Warning");
        assert_eq!(body["reason"], "ClaimStatusNotWritten");
        assert_eq!(body["involvedObject"]["name"], "web");
        let message = body["message"].as_str().unwrap();
        for part in [
            "net2",
            "ResourceClaim default/web-nic",
            "403 Forbidden",
            "resourceclaims/status",
        ] {
            assert!(message.contains(part), "{part:?} missing from {message}");
        }
    }

    #[tokio::test]
    async fn del_applies_an_empty_list_and_a_gone_claim_is_fine() {
        let (client, mut handle) = client();
        let a = attachments();
        let server = async {
            let (seen, send) = expect_apply(&mut handle).await;
            assert_eq!(seen.body["status"], json!({"devices": []}));
            respond_json(
                send,
                StatusCode::NOT_FOUND,
                &status_body(
                    404,
                    "NotFound",
                    "resourceclaims.resource.k8s.io \"web-nic\" not found",
                ),
            );
            assert_silent(&mut handle, Duration::from_millis(100)).await;
        };
        tokio::join!(withdraw_network_data(&client, "c1", &a), server);
        assert_eq!(client.request_count(), 1);
    }

    #[tokio::test]
    async fn nothing_is_written_without_claim_devices() {
        let (client, mut handle) = client();
        let plain = vec![attached(
            "default/plain",
            "net1",
            None,
            "10.2.0.5/24",
            "02:00:00:00:00:09",
        )];
        assert!(
            publish_network_data(&client, &pod(&[]), "c1", &plain)
                .await
                .is_empty()
        );
        withdraw_network_data(&client, "c1", &plain).await;
        assert_silent(&mut handle, Duration::from_millis(50)).await;
        assert_eq!(client.request_count(), 0);
    }
}
