//! Our NetworkAttachmentDefinition CRD is the NPWG CRD exactly as upstream
//! Multus ships it: the same values field for field, so that whoever applied
//! it first (upstream's `kubectl apply`, another operator's server-side
//! apply) and we can share it without a conflict or a rewrite.

use multus_config::crd::NAD_CRD_YAML;
use multus_e2e::workspace_root;

#[test]
fn nad_crd_is_the_npwg_crd() {
    let ours: serde_json::Value = serde_yaml::from_str(NAD_CRD_YAML).unwrap();
    let upstream =
        std::fs::read_to_string(workspace_root().join("tests/fixtures/upstream/nad-crd.yaml"))
            .unwrap();
    let upstream: serde_json::Value = serde_yaml::from_str(&upstream).unwrap();
    assert_eq!(ours, upstream);
    // The values that differed before and made Helm 4's apply conflict.
    let schema = &ours["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    assert!(
        schema["properties"]["apiVersion"]["description"]
            .as_str()
            .unwrap()
            .contains("this represen tation"),
        "upstream's description text, typo included, must be kept"
    );
    assert_eq!(
        ours["spec"]["names"]["shortNames"],
        serde_json::json!(["nad", "net-attach-def"])
    );
    assert!(
        ours["spec"]["versions"][0]
            .get("additionalPrinterColumns")
            .is_none()
    );
}
