//! Creating and deleting the tests' objects.

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use multus_config::npwg::nad::NetworkAttachmentDefinition;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::wait::wait_until;

/// Waits until `name` no longer exists.
pub async fn wait_gone<K>(api: &Api<K>, name: &str, timeout: Duration)
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    wait_until(
        &format!("{} {name} to be deleted", K::kind(&())),
        timeout,
        async || match api.get_opt(name).await {
            Ok(None) => Ok(()),
            Ok(Some(o)) => Err(format!(
                "still there (deletionTimestamp {:?}, finalizers {:?})",
                o.meta()
                    .deletion_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string()),
                o.meta().finalizers
            )),
            Err(e) => Err(format!("GET failed: {e}")),
        },
    )
    .await;
}

/// Creates the namespace `name` unless it exists.
pub async fn create_namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(name).await.unwrap().is_none() {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
}

/// A NetworkAttachmentDefinition `namespace/name` with the CNI `config`.
pub fn nad_object(namespace: &str, name: &str, config: &str) -> NetworkAttachmentDefinition {
    serde_json::from_value(json!({
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"config": config},
    }))
    .unwrap()
}

/// Creates the NAD (an existing one of the same name is fine), retrying for
/// a minute while a new NAD CRD is not served yet.
pub async fn create_nad(client: &kube::Client, nad: &NetworkAttachmentDefinition) {
    let namespace = nad.namespace().unwrap_or_default();
    let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(client.clone(), &namespace);
    wait_until(
        &format!("NAD {namespace}/{} created", nad.name_any()),
        Duration::from_secs(60),
        async || match nads.create(&PostParams::default(), nad).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e.to_string()),
        },
    )
    .await;
}

/// The object `name`, for a poll: `Err` says that the GET failed or, with
/// `missing`, that the object does not exist.
pub async fn get_for_poll<K>(api: &Api<K>, name: &str, missing: &str) -> Result<K, String>
where
    K: Clone + DeserializeOwned + Debug,
{
    api.get_opt(name)
        .await
        .map_err(|e| format!("GET failed: {e}"))?
        .ok_or_else(|| missing.to_owned())
}
