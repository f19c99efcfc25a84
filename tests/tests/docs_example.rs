//! The documented MultusConfig example uses only real fields, every field of
//! the spec, and valid values.

use multus_config::crd::MultusConfig;
use multus_e2e::workspace_root;
use serde_json::Value;

fn example() -> (Value, MultusConfig) {
    let text =
        std::fs::read_to_string(workspace_root().join("docs/examples/multusconfig.yaml")).unwrap();
    let raw: Value = serde_yaml::from_str(&text).unwrap();
    let typed: MultusConfig = serde_yaml::from_str(&text).unwrap();
    (raw, typed)
}

/// Every key path of `raw` must survive a typed round trip.
fn dropped_keys(path: &str, raw: &Value, typed: &Value, out: &mut Vec<String>) {
    if let (Some(raw), Some(typed)) = (raw.as_object(), typed.as_object()) {
        for (key, value) in raw {
            let here = format!("{path}.{key}");
            match typed.get(key) {
                None => out.push(here),
                Some(t) => dropped_keys(&here, value, t, out),
            }
        }
    }
}

#[test]
fn example_has_no_unknown_keys() {
    let (raw, typed) = example();
    let back = serde_json::to_value(&typed).unwrap();
    let mut dropped = Vec::new();
    dropped_keys("", &raw, &back, &mut dropped);
    // `affinity: {}` and empty lists are legitimately elided.
    dropped.retain(|k| k != ".spec.placement.affinity");
    assert!(
        dropped.is_empty(),
        "keys the type does not know: {dropped:?}"
    );
}

#[test]
fn example_sets_every_spec_field() {
    let (raw, _) = example();
    let schema = serde_json::to_value(
        <MultusConfig as kube::CustomResourceExt>::crd()
            .spec
            .versions[0]
            .schema
            .clone()
            .unwrap()
            .open_api_v3_schema
            .unwrap(),
    )
    .unwrap();
    let fields = schema["properties"]["spec"]["properties"]
        .as_object()
        .unwrap();
    let missing: Vec<_> = fields
        .keys()
        .filter(|k| raw["spec"].get(k.as_str()).is_none())
        .collect();
    assert!(missing.is_empty(), "the example does not show: {missing:?}");
}
