//! End-to-end: the rendered chart, applied server-side to a real cluster
//! (MULTUS_E2E_KUBECONFIG), brings up the operator, which reports conditions
//! on the default MultusConfig. Set MULTUS_E2E_IMAGE=repo:tag to use an
//! image the cluster can pull (load image/build.sh's archive into the
//! nodes first).

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::discovery::Discovery;
use kube::runtime::wait::{await_condition, conditions};
use multus_config::crd::MultusConfig;
use multus_e2e::{e2e_client, workspace_root};

const NAMESPACE: &str = "multus-e2e";
const MANAGER: &str = "multus-e2e";

fn render() -> Vec<DynamicObject> {
    let chart = workspace_root().join("charts/multus");
    let mut args = vec![
        "template".to_owned(),
        "e2e".to_owned(),
        chart.display().to_string(),
        "--namespace".to_owned(),
        NAMESPACE.to_owned(),
        "--include-crds".to_owned(),
        "--set".to_owned(),
        "multusConfig.keep=false".to_owned(),
    ];
    if let Ok(image) = std::env::var("MULTUS_E2E_IMAGE") {
        let (repo, tag) = image.rsplit_once(':').expect("MULTUS_E2E_IMAGE=repo:tag");
        args.extend([
            "--set".into(),
            format!("image.repository={repo}"),
            "--set".into(),
            format!("image.tag={tag}"),
        ]);
    }
    let out = Command::new("helm")
        .args(&args)
        .output()
        .expect("helm is required for the chart e2e test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split("\n---")
        .filter_map(|d| serde_yaml::from_str::<DynamicObject>(d).ok())
        .filter(|o| o.types.is_some())
        .collect()
}

#[tokio::test]
async fn chart_installs_and_the_multusconfig_reports_conditions() {
    let Some(client) = e2e_client("chart_installs_and_the_multusconfig_reports_conditions").await
    else {
        return;
    };
    let objects = render();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}
    }))
    .unwrap();
    namespaces
        .patch(
            NAMESPACE,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&ns),
        )
        .await
        .unwrap();

    // CRDs first, then everything else (the MultusConfig last).
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for o in objects
        .iter()
        .filter(|o| o.types.as_ref().unwrap().kind == "CustomResourceDefinition")
    {
        let name = o.metadata.name.clone().unwrap();
        if crds.get_opt(&name).await.unwrap().is_none() || !name.ends_with("k8s.cni.cncf.io") {
            crds.patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(o),
            )
            .await
            .unwrap();
        }
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .expect("CRD established")
        .unwrap();
    }
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let mut ordered: Vec<&DynamicObject> = objects
        .iter()
        .filter(|o| o.types.as_ref().unwrap().kind != "CustomResourceDefinition")
        .collect();
    ordered.sort_by_key(|o| o.types.as_ref().unwrap().kind == "MultusConfig");
    let mut applied = Vec::new();
    for o in ordered {
        let types = o.types.as_ref().unwrap();
        let gvk = kube::api::GroupVersionKind::try_from(types).unwrap();
        let (resource, caps) = discovery
            .resolve_gvk(&gvk)
            .unwrap_or_else(|| panic!("{gvk:?} not served"));
        let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
            Api::namespaced_with(client.clone(), NAMESPACE, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        let name = o.metadata.name.clone().unwrap();
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(o),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {} {name}: {e}", types.kind));
        applied.push((api, name));
    }

    // The operator reports Ready, Progressing and Degraded.
    let configs: Api<MultusConfig> = Api::all(client.clone());
    let reported = |mc: Option<&MultusConfig>| {
        mc.and_then(|m| m.status.as_ref()).is_some_and(|s| {
            ["Ready", "Progressing", "Degraded"]
                .iter()
                .all(|t| s.conditions.iter().any(|c| c.type_ == *t))
                && s.observed_generation.is_some()
        })
    };
    let found = tokio::time::timeout(
        Duration::from_secs(300),
        await_condition(configs.clone(), "default", reported),
    )
    .await;
    let current = configs.get_opt("default").await.unwrap();
    let uid = current
        .as_ref()
        .and_then(|m| m.metadata.uid.clone())
        .unwrap_or_default();
    assert!(
        found.is_ok(),
        "no conditions within 5 minutes; status: {:?}",
        current.and_then(|m| m.status)
    );

    // Uninstall in the documented order: the MultusConfig (its finalizer lets
    // the agents clean the nodes), then the release's objects.
    let _ = configs.delete("default", &DeleteParams::default()).await;
    let gone = tokio::time::timeout(
        Duration::from_secs(300),
        await_condition(configs.clone(), "default", conditions::is_deleted(&uid)),
    )
    .await;
    assert!(
        gone.is_ok(),
        "MultusConfig not deleted within 5 minutes (finalizer stuck?)"
    );
    for (api, name) in applied.iter().rev() {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
    let _ = namespaces.delete(NAMESPACE, &DeleteParams::default()).await;
}
