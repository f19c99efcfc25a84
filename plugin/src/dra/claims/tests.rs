use super::*;
use crate::dra::fixtures::{DRIVER, NODE, claim, pod, slice};

const NIC: &str = "example.com/nic";

fn index() -> SliceIndex {
    SliceIndex::from_slices(&[slice(&[
        ("nic-0", Some(NIC), Some("0000:00:01.0")),
        ("nic-1", Some(NIC), Some("0000:00:01.1")),
        ("gpu-0", None, None),
        ("half", Some(NIC), None),
        ("other-0", Some("example.com/other"), Some("o-0")),
    ])])
}

fn found(name: &str, devices: &[&str]) -> (String, Option<ResourceClaim>) {
    (name.to_owned(), Some(claim(name, devices)))
}

#[test]
fn claim_names_follow_the_pod_status_then_the_extended_claim_each_once() {
    let p = pod(
        &[("a", "web-a-x1"), ("b", "shared"), ("c", "web-a-x1")],
        Some("web-extended-x2"),
    );
    assert_eq!(
        pod_claim_names(&p),
        ["web-a-x1", "shared", "web-extended-x2"]
    );
    // A status entry without resourceClaimName needs no claim.
    let mut p = pod(&[("a", "x")], None);
    p.status
        .as_mut()
        .unwrap()
        .resource_claim_statuses
        .as_mut()
        .unwrap()[0]
        .resource_claim_name = None;
    assert!(pod_claim_names(&p).is_empty());
    let mut p = pod(&[], None);
    p.status = None;
    assert!(pod_claim_names(&p).is_empty());
}

#[test]
fn claims_named_directly_in_the_spec_count_in_spec_order_with_the_generated_ones() {
    // spec: a template entry "nic" and a direct claim "shared"; only the
    // template's claim appears in status.resourceClaimStatuses
    let mut p = pod(&[("nic", "dra-nic-nic-x1")], None);
    let spec: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(serde_json::json!({
        "containers": [],
        "resourceClaims": [
            {"name": "shared", "resourceClaimName": "shared-claim"},
            {"name": "nic", "resourceClaimTemplateName": "nic-template"},
            {"name": "later", "resourceClaimTemplateName": "not-generated-yet"},
        ],
    }))
    .unwrap();
    p.spec = Some(spec);
    assert_eq!(pod_claim_names(&p), ["shared-claim", "dra-nic-nic-x1"]);
}

#[test]
fn devices_with_both_attributes_serve_their_resource_in_claim_then_result_order() {
    let claims = [
        found("second-in-spec", &["nic-1", "other-0"]),
        found("first", &["nic-0"]),
    ];
    let matched = match_claims("ns", NODE, &claims, &index());
    assert_eq!(matched.count(NIC), 2);
    let first = matched.get(NIC, 0).unwrap();
    assert_eq!(first.id, "0000:00:01.1", "the pod's claim order, not names");
    assert_eq!(
        first.device,
        DraDevice {
            claim_namespace: "ns".into(),
            claim_name: "second-in-spec".into(),
            claim_uid: "uid-second-in-spec".into(),
            driver: DRIVER.into(),
            pool: NODE.into(),
            device: "nic-1".into(),
            share_id: None,
        }
    );
    assert_eq!(matched.get(NIC, 1).unwrap().id, "0000:00:01.0");
    assert_eq!(matched.get("example.com/other", 0).unwrap().id, "o-0");
    assert_eq!(
        matched.resources().collect::<Vec<_>>(),
        ["example.com/nic", "example.com/other"]
    );
    assert!(matched.problems().is_empty());
}

#[test]
fn devices_without_the_attributes_are_named_with_their_claim() {
    let claims = [
        found("mixed", &["gpu-0", "half", "nic-0", "ghost"]),
        ("deleted".to_owned(), None),
        found("pending", &[]),
    ];
    let matched = match_claims("ns", NODE, &claims, &index());
    assert_eq!(matched.count(NIC), 1, "nic-0 still serves");
    let problems: Vec<String> = matched.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        problems,
        [
            "ResourceClaim ns/mixed: device nic.example.com/node-a/gpu-0 lacks the attributes k8s.cni.cncf.io/resourceName and k8s.cni.cncf.io/deviceID",
            "ResourceClaim ns/mixed: device nic.example.com/node-a/half lacks the attribute k8s.cni.cncf.io/deviceID",
            "ResourceClaim ns/mixed: device nic.example.com/node-a/ghost is in no ResourceSlice of node node-a",
            "ResourceClaim ns/deleted does not exist",
            "ResourceClaim ns/pending has no allocated device",
        ]
    );
}

#[test]
fn unreadable_claims_explain_why() {
    let not_served = ClaimDevices::unreadable(ClaimProblem::ApiNotServed {
        claims: vec!["ns/a".into(), "ns/b".into()],
    });
    assert_eq!(not_served.count(NIC), 0);
    assert_eq!(
        not_served.problems()[0].to_string(),
        "its ResourceClaims ns/a, ns/b were not read: the API server does not serve resource.k8s.io/v1 (Kubernetes 1.34 and later)"
    );
}
