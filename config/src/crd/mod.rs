//! The operator's custom resources and their CRD manifests.

pub mod multus_config;
pub mod node_state;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use multus_config::{
    AttachedPodsPolicy, ClusterFeature, FeatureState, MultusConfig, MultusConfigSpec,
    MultusConfigStatus,
};
pub use node_state::{
    CredentialSource, MultusNodeState, MultusNodeStateSpec, MultusNodeStateStatus, NodeRemoval,
    PluginCredential,
};

/// The NetworkAttachmentDefinition CRD exactly as upstream Multus ships it
/// (it is shared with other projects, so it is never generated or changed;
/// the controller creates it only when absent).
pub const NAD_CRD_YAML: &str =
    include_str!("../../../crds/network-attachment-definitions.k8s.cni.cncf.io.yaml");

/// The CRDs generated from our types (MultusConfig, MultusNodeState).
pub fn generated_crds() -> Vec<CustomResourceDefinition> {
    vec![MultusConfig::crd(), MultusNodeState::crd()]
}

/// The file name a CRD is stored under in `crds/`: `<plural>.<group>.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// One CRD as a YAML document (no leading `---`).
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(crd)
}

/// All generated CRDs as one multi-document YAML stream.
pub fn generated_crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in generated_crds() {
        out.push_str("---\n");
        out.push_str(&crd_yaml(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Collects every place of a schema that an API server would reject as
    /// non-structural: a node without `type` (unless int-or-string or
    /// preserve-unknown-fields), `$ref`, and `anyOf`/`oneOf`/`allOf` that
    /// carry types of their own.
    fn non_structural(path: &str, schema: &Value, problems: &mut Vec<String>) {
        let Some(obj) = schema.as_object() else {
            problems.push(format!("{path}: not an object"));
            return;
        };
        if obj.contains_key("$ref") {
            problems.push(format!("{path}: $ref"));
        }
        let typed = obj.get("type").and_then(Value::as_str).is_some();
        let exempt = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
            || obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        if !typed && !exempt {
            problems.push(format!("{path}: no type"));
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(branches) = obj.get(key).and_then(Value::as_array) {
                for (i, branch) in branches.iter().enumerate() {
                    if branch.get("type").is_some() || branch.get("properties").is_some() {
                        problems.push(format!("{path}.{key}[{i}]: typed branch"));
                    }
                }
            }
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                non_structural(&format!("{path}.{name}"), sub, problems);
            }
        }
        if let Some(items) = obj.get("items") {
            non_structural(&format!("{path}[]"), items, problems);
        }
        if let Some(extra) = obj.get("additionalProperties").filter(|v| v.is_object()) {
            non_structural(&format!("{path}{{}}"), extra, problems);
        }
    }

    fn schema_of(crd: &CustomResourceDefinition) -> Value {
        let version = &crd.spec.versions[0];
        serde_json::to_value(
            version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("schema"),
        )
        .unwrap()
    }

    #[test]
    fn generated_crds_are_structural() {
        for crd in generated_crds() {
            let mut problems = Vec::new();
            non_structural("", &schema_of(&crd), &mut problems);
            assert!(
                problems.is_empty(),
                "{:?} is not structural: {problems:#?}",
                crd.metadata.name
            );
        }
    }

    #[test]
    fn crds_are_cluster_scoped_in_our_group_with_status() {
        for crd in generated_crds() {
            assert_eq!(crd.spec.group, "multus.dev");
            assert_eq!(crd.spec.scope, "Cluster");
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, "v1alpha1");
            assert!(version.served && version.storage);
            assert!(version.subresources.as_ref().unwrap().status.is_some());
        }
        let names: Vec<_> = generated_crds()
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            ["multusconfigs.multus.dev", "multusnodestates.multus.dev"]
        );
    }

    fn columns(crd: &CustomResourceDefinition) -> Vec<(String, String)> {
        crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.name, c.json_path))
            .collect()
    }

    #[test]
    fn printer_columns_make_kubectl_get_useful() {
        let mc = columns(&MultusConfig::crd());
        assert!(mc.contains(&(
            "Ready".into(),
            ".status.conditions[?(@.type==\"Ready\")].status".into()
        )));
        assert!(mc.contains(&("Nodes-Ready".into(), ".status.readyNodes".into())));
        assert!(mc.contains(&("Nodes-Desired".into(), ".status.desiredNodes".into())));
        assert!(mc.contains(&("Age".into(), ".metadata.creationTimestamp".into())));
        let ns = columns(&MultusNodeState::crd());
        assert!(ns.contains(&("Primary".into(), ".status.primaryConfigFile".into())));
        assert!(ns.contains(&("Ready".into(), ".status.ready".into())));
        assert!(ns.contains(&("Version".into(), ".status.pluginVersion".into())));
        assert!(ns.contains(&(
            "Token-Expires".into(),
            ".status.pluginCredential.expiresAt".into()
        )));
    }

    #[test]
    fn schema_validates_enums_and_ranges() {
        let schema = schema_of(&MultusConfig::crd());
        let spec = &schema["properties"]["spec"]["properties"];
        let levels: Vec<_> = spec["logLevel"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(levels, ["panic", "error", "verbose", "debug"]);
        let versions: Vec<_> = spec["cniVersion"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(versions, ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
        let policies: Vec<_> = spec["image"]["properties"]["pullPolicy"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(policies, ["Always", "IfNotPresent", "Never"]);
        let removal: Vec<_> = spec["attachedPodsOnRemoval"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(removal, ["Wait", "Detach"]);
        assert_eq!(spec["progressDeadlineSeconds"]["type"], "integer");
        assert_eq!(
            spec["progressDeadlineSeconds"]["minimum"].as_f64(),
            Some(30.0)
        );
        assert_eq!(
            spec["progressDeadlineSeconds"]["maximum"].as_f64(),
            Some(86400.0)
        );
        assert_eq!(
            spec["pluginTokenExpirationSeconds"]["minimum"].as_f64(),
            Some(600.0),
            "the API server issues no shorter token"
        );
        assert_eq!(
            spec["pluginTokenExpirationSeconds"]["maximum"].as_f64(),
            Some(2_592_000.0)
        );
        assert_eq!(spec["cniConfDir"]["pattern"], "^/.*");
        assert_eq!(
            spec["updateStrategy"]["properties"]["maxUnavailable"]["x-kubernetes-int-or-string"],
            true
        );
        // camelCase everywhere
        for key in [
            "priorityClassName",
            "multusConfDir",
            "readinessIndicatorFile",
            "additionalBinDir",
        ] {
            assert!(spec.get(key).is_some(), "spec.{key} missing");
        }
        let status = &schema["properties"]["status"]["properties"];
        for key in [
            "observedGeneration",
            "conditions",
            "desiredNodes",
            "readyNodes",
            "updatedNodes",
            "primaryNetworks",
            "invalidNetworkAttachmentDefinitions",
        ] {
            assert!(status.get(key).is_some(), "status.{key} missing");
        }
    }

    #[test]
    fn node_state_reports_the_plugin_credential() {
        let schema = schema_of(&MultusNodeState::crd());
        let credential = &schema["properties"]["status"]["properties"]["pluginCredential"];
        let sources: Vec<_> = credential["properties"]["source"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(sources, ["TokenRequest", "AgentToken"]);
        for key in [
            "serviceAccount",
            "issuedAt",
            "expiresAt",
            "since",
            "message",
        ] {
            assert!(
                credential["properties"].get(key).is_some(),
                "pluginCredential.{key} missing"
            );
        }
        let status: MultusNodeStateStatus = serde_json::from_value(serde_json::json!({
            "ready": true,
            "pluginCredential": {
                "serviceAccount": "multus-plugin-default",
                "source": "TokenRequest",
                "expiresAt": "2026-01-02T00:00:00Z"
            }
        }))
        .unwrap();
        let credential = status.plugin_credential.unwrap();
        assert_eq!(credential.source, CredentialSource::TokenRequest);
        assert_eq!(credential.source.as_str(), "TokenRequest");
        assert!(credential.since.is_none());
        assert_eq!(
            MultusConfigSpec::default().plugin_token_expiration_seconds(),
            86_400
        );
    }

    #[test]
    fn nad_crd_is_upstream_compatible() {
        let crd: CustomResourceDefinition = serde_yaml::from_str(NAD_CRD_YAML).unwrap();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("network-attachment-definitions.k8s.cni.cncf.io")
        );
        assert_eq!(crd.spec.group, "k8s.cni.cncf.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, "NetworkAttachmentDefinition");
        assert_eq!(crd.spec.names.plural, "network-attachment-definitions");
        assert_eq!(
            crd.spec.names.short_names,
            Some(vec!["nad".to_owned(), "net-attach-def".to_owned()])
        );
        let schema = schema_of(&crd);
        assert_eq!(
            schema["properties"]["spec"]["properties"]["config"]["type"],
            "string"
        );
        let mut problems = Vec::new();
        non_structural("", &schema, &mut problems);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn multi_document_yaml_holds_every_crd() {
        let yaml = generated_crds_yaml().unwrap();
        assert_eq!(yaml.matches("---\n").count(), 2);
        assert!(yaml.contains("name: multusconfigs.multus.dev"));
        assert!(yaml.contains("name: multusnodestates.multus.dev"));
        assert_eq!(
            crd_file_name(&MultusConfig::crd()),
            "multusconfigs.multus.dev.yaml"
        );
    }
}
