//! End-to-end: a real API server accepts our CRDs (structural schemas) and
//! validates MultusConfig objects with them. Runs when MULTUS_E2E_KUBECONFIG
//! is set.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use multus_config::crd::{MultusConfig, NAD_CRD_YAML, generated_crds};
use multus_e2e::{e2e_client, lock_cluster, workspace_root};

const FIELD_MANAGER: &str = "multus-e2e";

async fn apply_and_wait(api: &Api<CustomResourceDefinition>, crd: &CustomResourceDefinition) {
    let name = crd.metadata.name.clone().expect("CRD name");
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(crd),
    )
    .await
    .unwrap_or_else(|e| panic!("the API server rejected CRD {name}: {e}"));
    let established = await_condition(api.clone(), &name, conditions::is_crd_established());
    tokio::time::timeout(Duration::from_secs(30), established)
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established within 30s"))
        .unwrap_or_else(|e| panic!("watching CRD {name}: {e}"));
}

#[tokio::test]
async fn api_server_accepts_our_crds_and_validates_with_them() {
    let test = "api_server_accepts_our_crds_and_validates_with_them";
    let Some(client) = e2e_client(test).await else {
        return;
    };
    let _lock = lock_cluster(test);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in generated_crds() {
        apply_and_wait(&crds, &crd).await;
    }
    // The NAD CRD is shared: create it only when absent, never take it over.
    let nad: CustomResourceDefinition = serde_yaml::from_str(NAD_CRD_YAML).unwrap();
    let nad_name = nad.metadata.name.clone().unwrap();
    if crds.get_opt(&nad_name).await.unwrap().is_none() {
        crds.create(&PostParams::default(), &nad).await.unwrap();
    }

    let configs: Api<MultusConfig> = Api::all(client);
    let dry_run = PostParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    let example =
        std::fs::read_to_string(workspace_root().join("docs/examples/multusconfig.yaml")).unwrap();
    let example: MultusConfig = serde_yaml::from_str(&example).unwrap();
    configs
        .create(&dry_run, &example)
        .await
        .unwrap_or_else(|e| panic!("the documented example is rejected: {e}"));

    // A value outside an enum is refused by the API server itself.
    let resource = ApiResource::erase::<MultusConfig>(&());
    let raw: Api<DynamicObject> = Api::all_with(configs.into_client(), &resource);
    let mut bad = serde_json::to_value(&example).unwrap();
    bad["spec"]["logLevel"] = "loud".into();
    let bad: DynamicObject = serde_json::from_value(bad).unwrap();
    match raw.create(&dry_run, &bad).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(status.message.contains("logLevel"), "{}", status.message);
        }
        other => panic!("logLevel \"loud\" must be rejected, got {other:?}"),
    }
}
