//! MultusNodeState reporting against a real cluster. Runs when
//! `MULTUS_E2E_KUBECONFIG` names a kubeconfig of a cluster with our CRDs
//! installed (`kubectl apply -f crds/`); skipped with a message otherwise.

use kube::Api;
use kube::api::DeleteParams;
use multus_config::crd::{MultusNodeState, MultusNodeStateStatus};
use multus_operator::agent::node_state::{FIELD_MANAGER, NodeStateReporter};

#[tokio::test]
async fn node_state_is_applied_and_updated_on_a_real_cluster() {
    let test = "node_state_is_applied_and_updated_on_a_real_cluster";
    let Some(client) = multus_e2e::e2e_client(test).await else {
        return;
    };
    let node = format!("multus-e2e-agent-{}", std::process::id());
    let api: Api<MultusNodeState> = Api::all(client.clone());
    let mut reporter = NodeStateReporter::new(client, node.clone(), Some("e2e".into()));

    let result = reporter
        .publish(&MultusNodeStateStatus {
            ready: false,
            message: Some("no primary CNI config in the conf dir".into()),
            cni_plugins: vec!["bridge".into(), "multus".into()],
            ..Default::default()
        })
        .await;
    if let Err(err) = result {
        panic!("{err} (are the CRDs installed? kubectl apply -f crds/)");
    }
    let got = api.get(&node).await.unwrap();
    assert_eq!(got.spec.node_name, node);
    assert_eq!(got.spec.multus_config.as_deref(), Some("e2e"));
    let status = got.status.clone().unwrap();
    assert!(!status.ready);
    assert_eq!(status.cni_plugins, ["bridge", "multus"]);
    let managers: Vec<_> = got
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.iter().any(|m| m == FIELD_MANAGER), "{managers:?}");

    // ready: the message this manager owned is removed by the apply
    reporter
        .publish(&MultusNodeStateStatus {
            ready: true,
            primary_config_file: Some("10-calico.conflist".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let status = api.get(&node).await.unwrap().status.unwrap();
    assert!(status.ready);
    assert_eq!(status.message, None);
    assert_eq!(
        status.primary_config_file.as_deref(),
        Some("10-calico.conflist")
    );

    api.delete(&node, &DeleteParams::default()).await.unwrap();
}
