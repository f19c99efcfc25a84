//! The NetworkAttachmentDefinition custom resource and the resolution of its
//! CNI configuration (inline `spec.config` or a file of the Multus conf dir).

use std::fmt;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cni::CniVersion;
use crate::text::json_type;

/// Spec of a NetworkAttachmentDefinition: an optional CNI config as JSON text.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "k8s.cni.cncf.io",
    version = "v1",
    kind = "NetworkAttachmentDefinition",
    plural = "network-attachment-definitions",
    shortname = "net-attach-def",
    namespaced
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkAttachmentDefinitionSpec {
    /// CNI config or conflist as JSON text; empty means "look in the conf dir".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

pub use crate::conf_file::ConfFile;

/// Where a resolved NAD config came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// The NAD's own `spec.config`.
    Spec,
    /// The named file of the Multus conf dir.
    File(String),
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spec => f.write_str("spec.config"),
            Self::File(name) => write!(f, "conf dir file {name:?}"),
        }
    }
}

/// A NAD's CNI config, validated and with `name` and `cniVersion` filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedConfig {
    /// The config as a JSON object.
    pub value: Value,
    /// Whether it is a conflist (has `plugins`) rather than a single config.
    pub is_list: bool,
    /// Where it came from.
    pub source: ConfigSource,
}

/// Why a NAD's config could not be resolved; every message names the NAD.
#[derive(Debug, thiserror::Error)]
pub enum NadError {
    /// The config text is not JSON.
    #[error("NetworkAttachmentDefinition {nad}: {source_desc} is not valid JSON: {error}")]
    InvalidJson {
        /// `namespace/name` of the NAD.
        nad: String,
        /// Where the text came from.
        source_desc: ConfigSource,
        /// The parser's error, with line and column.
        #[source]
        error: serde_json::Error,
    },
    /// The config is JSON but not an object.
    #[error(
        "NetworkAttachmentDefinition {nad}: {source_desc} must be a JSON object, found {found}"
    )]
    NotAnObject {
        /// `namespace/name` of the NAD.
        nad: String,
        /// Where the text came from.
        source_desc: ConfigSource,
        /// The JSON kind found instead (`array`, `string`, ...).
        found: &'static str,
    },
    /// The config is an object but not a valid CNI config or conflist.
    #[error("NetworkAttachmentDefinition {nad}: {source_desc} is not a CNI config: {problem}")]
    NotACniConfig {
        /// `namespace/name` of the NAD.
        nad: String,
        /// Where the text came from.
        source_desc: ConfigSource,
        /// What is wrong, quoting the offending key.
        problem: String,
    },
    /// `spec.config` is empty and no conf dir file carries the NAD's name.
    #[error(
        "NetworkAttachmentDefinition {nad}: spec.config is empty and no .conf, .conflist or .json \
         file in the Multus conf dir has CNI name {name:?} (looked at: {}; unparsable: {})",
        list_or_none(.looked_at),
        list_or_none(.skipped)
    )]
    NoMatchingFile {
        /// `namespace/name` of the NAD.
        nad: String,
        /// The CNI name that was searched for (the NAD's name).
        name: String,
        /// Candidate files that parsed, as `file (name "x")`.
        looked_at: Vec<String>,
        /// Candidate files that did not parse, as `file: error`.
        skipped: Vec<String>,
    },
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// File name endings that mark a conf dir file as a candidate config.
const CONF_EXTENSIONS: [&str; 3] = [".conf", ".conflist", ".json"];

/// Resolves the CNI config of the NAD `nad_namespace/nad_name`.
///
/// A non-blank `spec_config` is used as is; otherwise the first file of
/// `conf_dir` (byte-wise name order, `.conf`/`.conflist`/`.json` only) whose
/// JSON `name` equals the NAD's name is used. Either way the config must be
/// an object with a string `type` or a non-empty `plugins` array of objects
/// with a `type`; a missing or empty `name` becomes the NAD's name and a
/// missing or empty `cniVersion` becomes `default_cni_version`.
pub fn resolve_nad_config(
    nad_namespace: &str,
    nad_name: &str,
    spec_config: Option<&str>,
    conf_dir: &[ConfFile],
    default_cni_version: CniVersion,
) -> Result<ResolvedConfig, NadError> {
    let nad = format!("{nad_namespace}/{nad_name}");
    let (value, source) = match spec_config.map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => {
            let value =
                serde_json::from_str::<Value>(text).map_err(|error| NadError::InvalidJson {
                    nad: nad.clone(),
                    source_desc: ConfigSource::Spec,
                    error,
                })?;
            (value, ConfigSource::Spec)
        }
        None => find_in_conf_dir(&nad, nad_name, conf_dir)?,
    };
    let found = json_type(&value);
    let Value::Object(mut object) = value else {
        return Err(NadError::NotAnObject {
            nad,
            source_desc: source,
            found,
        });
    };
    let not_cni = |problem: String| NadError::NotACniConfig {
        nad: nad.clone(),
        source_desc: source.clone(),
        problem,
    };
    let is_list = config_shape(&object).map_err(not_cni)?;
    fill_string(&mut object, "name", nad_name).map_err(not_cni)?;
    fill_string(&mut object, "cniVersion", default_cni_version.as_str()).map_err(not_cni)?;
    Ok(ResolvedConfig {
        value: Value::Object(object),
        is_list,
        source,
    })
}

/// Searches the conf dir for the config named `name`.
fn find_in_conf_dir(
    nad: &str,
    name: &str,
    conf_dir: &[ConfFile],
) -> Result<(Value, ConfigSource), NadError> {
    let mut candidates: Vec<&ConfFile> = conf_dir
        .iter()
        .filter(|f| CONF_EXTENSIONS.iter().any(|ext| f.name.ends_with(ext)))
        .collect();
    candidates.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut looked_at = Vec::new();
    let mut skipped = Vec::new();
    for file in candidates {
        let value = match serde_json::from_slice::<Value>(&file.bytes) {
            Ok(value) => value,
            Err(err) => {
                skipped.push(format!("{:?}: {err}", file.name));
                continue;
            }
        };
        match value.get("name") {
            Some(Value::String(found)) if found == name => {
                return Ok((value, ConfigSource::File(file.name.clone())));
            }
            Some(Value::String(found)) => {
                looked_at.push(format!("{:?} (name {found:?})", file.name))
            }
            Some(other) => looked_at.push(format!(
                "{:?} (name is {} rather than a string)",
                file.name,
                json_type(other)
            )),
            None if value.is_object() => looked_at.push(format!("{:?} (no name)", file.name)),
            None => skipped.push(format!(
                "{:?}: {} rather than a JSON object",
                file.name,
                json_type(&value)
            )),
        }
    }
    Err(NadError::NoMatchingFile {
        nad: nad.to_owned(),
        name: name.to_owned(),
        looked_at,
        skipped,
    })
}

/// Checks that `object` is a CNI config or conflist; returns whether it is a
/// conflist. A non-empty string `type` makes it a single config (as libcni
/// and upstream decide); otherwise it must have a valid `plugins` array.
fn config_shape(object: &Map<String, Value>) -> Result<bool, String> {
    match (object.get("type"), object.get("plugins")) {
        (Some(Value::String(t)), _) if !t.is_empty() => Ok(false),
        (_, Some(Value::Array(plugins))) => {
            if plugins.is_empty() {
                return Err("`plugins` is an empty array".to_owned());
            }
            for (i, plugin) in plugins.iter().enumerate() {
                match plugin.get("type") {
                    Some(Value::String(t)) if !t.is_empty() => {}
                    Some(Value::String(_)) => {
                        return Err(format!("`plugins[{i}]` has an empty `type`"));
                    }
                    Some(other) if plugin.is_object() => {
                        return Err(format!(
                            "`type` of `plugins[{i}]` is {} rather than a string",
                            json_type(other)
                        ));
                    }
                    None if plugin.is_object() => {
                        return Err(format!("`plugins[{i}]` has no `type`"));
                    }
                    _ => {
                        return Err(format!(
                            "`plugins[{i}]` is {} rather than an object",
                            json_type(plugin)
                        ));
                    }
                }
            }
            Ok(true)
        }
        (_, Some(other)) => Err(format!(
            "`plugins` is {} rather than an array",
            json_type(other)
        )),
        (Some(Value::String(_)), None) => Err("`type` is empty".to_owned()),
        (Some(other), None) => Err(format!(
            "`type` is {} rather than a string",
            json_type(other)
        )),
        (None, None) => Err("it has neither a `type` nor a `plugins` list".to_owned()),
    }
}

/// Sets `key` to `value` when it is missing, null or an empty string; fails
/// when it holds something other than a string.
fn fill_string(object: &mut Map<String, Value>, key: &str, value: &str) -> Result<(), String> {
    match object.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(()),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            object.insert(key.to_owned(), Value::String(value.to_owned()));
            Ok(())
        }
        Some(other) => Err(format!(
            "`{key}` is {} rather than a string",
            json_type(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;
    use serde_json::json;

    const MACVLAN_CONF: &str = include_str!("../../../tests/fixtures/nads/macvlan-conf.yaml");
    const MACVLAN_NO_VERSION: &str =
        include_str!("../../../tests/fixtures/nads/macvlan-no-version.yaml");

    fn file(name: &str, text: &str) -> ConfFile {
        ConfFile {
            name: name.to_owned(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    fn resolve(spec: Option<&str>, dir: &[ConfFile]) -> Result<ResolvedConfig, NadError> {
        resolve_nad_config("ns1", "mynad", spec, dir, CniVersion::V0_3_1)
    }

    #[test]
    fn crd_identity_matches_upstream() {
        assert_eq!(NetworkAttachmentDefinition::group(&()), "k8s.cni.cncf.io");
        assert_eq!(NetworkAttachmentDefinition::version(&()), "v1");
        assert_eq!(
            NetworkAttachmentDefinition::kind(&()),
            "NetworkAttachmentDefinition"
        );
        assert_eq!(
            NetworkAttachmentDefinition::plural(&()),
            "network-attachment-definitions"
        );
        assert_eq!(
            NetworkAttachmentDefinition::api_version(&()),
            "k8s.cni.cncf.io/v1"
        );
        let crd = <NetworkAttachmentDefinition as kube::CustomResourceExt>::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("network-attachment-definitions.k8s.cni.cncf.io")
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(
            crd.spec.names.short_names,
            Some(vec!["net-attach-def".to_owned()])
        );
    }

    #[test]
    fn spec_serialises_camel_case_and_skips_absent_config() {
        let empty = NetworkAttachmentDefinitionSpec::default();
        assert_eq!(serde_json::to_value(&empty).unwrap(), json!({}));
        let spec = NetworkAttachmentDefinitionSpec {
            config: Some("{}".to_owned()),
        };
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            json!({"config": "{}"})
        );
        let back: NetworkAttachmentDefinitionSpec = serde_json::from_value(json!({})).unwrap();
        assert_eq!(back.config, None);
    }

    #[test]
    fn deserialises_the_macvlan_fixture() {
        let nad: NetworkAttachmentDefinition = serde_yaml::from_str(MACVLAN_CONF).unwrap();
        assert_eq!(nad.metadata.name.as_deref(), Some("macvlan-conf"));
        let config = nad.spec.config.as_deref().unwrap();
        let resolved = resolve_nad_config(
            "default",
            "macvlan-conf",
            Some(config),
            &[],
            CniVersion::V0_3_1,
        )
        .unwrap();
        assert_eq!(resolved.source, ConfigSource::Spec);
        assert!(!resolved.is_list);
        assert_eq!(resolved.value["type"], "macvlan");
        assert_eq!(resolved.value["cniVersion"], "0.3.0");
        assert_eq!(resolved.value["name"], "macvlan-conf");
        assert_eq!(resolved.value["ipam"]["gateway"], "192.168.1.1");
        assert_eq!(resolved.value["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
    }

    #[test]
    fn deserialises_the_no_version_fixture_and_fills_a_default_version() {
        let nad: NetworkAttachmentDefinition = serde_yaml::from_str(MACVLAN_NO_VERSION).unwrap();
        assert_eq!(nad.metadata.name.as_deref(), Some("macvlan"));
        let resolved = resolve_nad_config(
            "default",
            "macvlan",
            nad.spec.config.as_deref(),
            &[],
            crate::cni::version::DEFAULT_NAD_VERSION,
        )
        .unwrap();
        assert_eq!(resolved.value["cniVersion"], "0.3.1");
        // The config carries its own name, which wins over the NAD's name.
        assert_eq!(resolved.value["name"], "mynet");
        assert_eq!(resolved.value["master"], "virbr0");
    }

    #[test]
    fn nad_round_trips_through_json() {
        let nad: NetworkAttachmentDefinition = serde_yaml::from_str(MACVLAN_CONF).unwrap();
        let json = serde_json::to_value(&nad).unwrap();
        assert_eq!(json["apiVersion"], "k8s.cni.cncf.io/v1");
        assert_eq!(json["kind"], "NetworkAttachmentDefinition");
        let back: NetworkAttachmentDefinition = serde_json::from_value(json).unwrap();
        assert_eq!(back.spec, nad.spec);
    }

    #[test]
    fn missing_name_is_filled_with_the_nad_name() {
        let r = resolve(Some(r#"{"cniVersion":"1.0.0","type":"bridge"}"#), &[]).unwrap();
        assert_eq!(r.value["name"], "mynad");
        assert_eq!(r.value["cniVersion"], "1.0.0");
        let r = resolve(Some(r#"{"name":"","type":"bridge"}"#), &[]).unwrap();
        assert_eq!(r.value["name"], "mynad");
        let r = resolve(Some(r#"{"name":null,"type":"bridge"}"#), &[]).unwrap();
        assert_eq!(r.value["name"], "mynad");
    }

    #[test]
    fn missing_version_is_filled_with_the_given_default() {
        let r = resolve_nad_config(
            "ns1",
            "mynad",
            Some(r#"{"type":"bridge"}"#),
            &[],
            CniVersion::V1_0_0,
        )
        .unwrap();
        assert_eq!(r.value["cniVersion"], "1.0.0");
        assert_eq!(
            serde_json::to_string(&r.value).unwrap(),
            r#"{"type":"bridge","name":"mynad","cniVersion":"1.0.0"}"#
        );
    }

    #[test]
    fn conflist_in_spec_is_recognised() {
        let r = resolve(
            Some(r#"{"cniVersion":"1.0.0","plugins":[{"type":"macvlan"},{"type":"tuning"}]}"#),
            &[],
        )
        .unwrap();
        assert!(r.is_list);
        assert_eq!(r.value["name"], "mynad");
        assert_eq!(r.value["plugins"][1]["type"], "tuning");
    }

    #[test]
    fn type_wins_over_plugins_like_upstream() {
        let r = resolve(Some(r#"{"type":"bridge","plugins":[]}"#), &[]).unwrap();
        assert!(!r.is_list);
    }

    #[test]
    fn invalid_json_names_the_nad_and_position() {
        let err = resolve(Some("{\"type\": \"bridge\",\n}"), &[]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, NadError::InvalidJson { .. }), "{msg}");
        assert!(msg.contains("ns1/mynad"), "{msg}");
        assert!(msg.contains("spec.config"), "{msg}");
        assert!(msg.contains("line 2 column 1"), "{msg}");
    }

    #[test]
    fn non_object_config_is_rejected() {
        let err = resolve(Some(r#"[{"type":"bridge"}]"#), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "NetworkAttachmentDefinition ns1/mynad: spec.config must be a JSON object, found an array"
        );
    }

    #[test]
    fn config_without_type_or_plugins_is_rejected() {
        let err = resolve(Some(r#"{"name":"x"}"#), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "NetworkAttachmentDefinition ns1/mynad: spec.config is not a CNI config: \
             it has neither a `type` nor a `plugins` list"
        );
    }

    #[test]
    fn bad_type_and_plugins_are_rejected_with_the_key() {
        let cases = [
            (r#"{"type":""}"#, "`type` is empty"),
            (r#"{"type":3}"#, "`type` is a number rather than a string"),
            (r#"{"plugins":[]}"#, "`plugins` is an empty array"),
            (
                r#"{"plugins":{}}"#,
                "`plugins` is an object rather than an array",
            ),
            (
                r#"{"plugins":[{"type":"a"},{}]}"#,
                "`plugins[1]` has no `type`",
            ),
            (
                r#"{"plugins":[{"type":""}]}"#,
                "`plugins[0]` has an empty `type`",
            ),
            (
                r#"{"plugins":[{"type":true}]}"#,
                "`type` of `plugins[0]` is a boolean rather than a string",
            ),
            (
                r#"{"plugins":["x"]}"#,
                "`plugins[0]` is a string rather than an object",
            ),
            (
                r#"{"type":"a","name":5}"#,
                "`name` is a number rather than a string",
            ),
            (
                r#"{"type":"a","cniVersion":[]}"#,
                "`cniVersion` is an array rather than a string",
            ),
        ];
        for (text, problem) in cases {
            let err = resolve(Some(text), &[]).unwrap_err();
            assert!(
                matches!(err, NadError::NotACniConfig { .. }),
                "{text}: {err}"
            );
            assert!(err.to_string().ends_with(problem), "{text}: {err}");
            assert!(err.to_string().contains("ns1/mynad"), "{err}");
        }
    }

    #[test]
    fn blank_spec_config_falls_back_to_the_conf_dir() {
        let dir = [
            file("20-mynad.conf", r#"{"name":"mynad","type":"second"}"#),
            file("10-mynad.conf", r#"{"name":"mynad","type":"first"}"#),
            file("05-other.conf", r#"{"name":"other","type":"x"}"#),
        ];
        for spec in [None, Some(""), Some("  \n\t ")] {
            let r = resolve(spec, &dir).unwrap();
            assert_eq!(r.source, ConfigSource::File("10-mynad.conf".to_owned()));
            assert_eq!(r.value["type"], "first");
            assert_eq!(r.value["cniVersion"], "0.3.1");
        }
    }

    #[test]
    fn conf_dir_order_is_bytewise() {
        // Uppercase sorts before lowercase byte-wise.
        let dir = [
            file("a.conf", r#"{"name":"mynad","type":"lower"}"#),
            file("B.conf", r#"{"name":"mynad","type":"upper"}"#),
        ];
        let r = resolve(None, &dir).unwrap();
        assert_eq!(r.source, ConfigSource::File("B.conf".to_owned()));
        assert_eq!(r.value["type"], "upper");
    }

    #[test]
    fn conf_dir_lookup_honours_extensions_and_conflists() {
        let dir = [
            file("00-mynad.txt", r#"{"name":"mynad","type":"ignored"}"#),
            file("00-mynad.conf.bak", r#"{"name":"mynad","type":"ignored"}"#),
            file(
                "10-mynad.conflist",
                r#"{"cniVersion":"1.0.0","name":"mynad","plugins":[{"type":"bridge"}]}"#,
            ),
        ];
        let r = resolve(None, &dir).unwrap();
        assert!(r.is_list);
        assert_eq!(r.source, ConfigSource::File("10-mynad.conflist".to_owned()));
        assert_eq!(r.value["cniVersion"], "1.0.0");

        let dir = [file("x.json", r#"{"name":"mynad","type":"json"}"#)];
        let r = resolve(None, &dir).unwrap();
        assert_eq!(r.source, ConfigSource::File("x.json".to_owned()));
    }

    #[test]
    fn unparsable_files_are_skipped() {
        let dir = [
            file("01-broken.conf", "{not json"),
            file("02-good.conf", r#"{"name":"mynad","type":"ok"}"#),
        ];
        let r = resolve(None, &dir).unwrap();
        assert_eq!(r.value["type"], "ok");
    }

    #[test]
    fn no_matching_file_lists_what_was_looked_at() {
        let dir = [
            file("01-broken.conf", "{not json"),
            file(
                "02-other.conflist",
                r#"{"name":"other","plugins":[{"type":"a"}]}"#,
            ),
            file("03-array.json", "[]"),
            file("04-noname.conf", r#"{"type":"a"}"#),
            file("99-ignored.txt", r#"{"name":"mynad","type":"a"}"#),
        ];
        let err = resolve(None, &dir).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ns1/mynad"), "{msg}");
        assert!(msg.contains(r#"CNI name "mynad""#), "{msg}");
        assert!(
            msg.contains(r#""02-other.conflist" (name "other")"#),
            "{msg}"
        );
        assert!(msg.contains(r#""04-noname.conf" (no name)"#), "{msg}");
        assert!(
            msg.contains(r#""01-broken.conf": key must be a string at line 1 column 2"#),
            "{msg}"
        );
        assert!(
            msg.contains(r#""03-array.json": an array rather than a JSON object"#),
            "{msg}"
        );
        assert!(!msg.contains("99-ignored.txt"), "{msg}");
        match err {
            NadError::NoMatchingFile {
                looked_at, skipped, ..
            } => {
                assert_eq!(looked_at.len(), 2);
                assert_eq!(skipped.len(), 2);
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn empty_conf_dir_says_none() {
        let err = resolve(None, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "NetworkAttachmentDefinition ns1/mynad: spec.config is empty and no .conf, .conflist \
             or .json file in the Multus conf dir has CNI name \"mynad\" (looked at: none; \
             unparsable: none)"
        );
    }

    #[test]
    fn matching_file_that_is_not_a_cni_config_names_the_file() {
        let dir = [file("10-mynad.conf", r#"{"name":"mynad"}"#)];
        let err = resolve(None, &dir).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(r#"conf dir file "10-mynad.conf""#), "{msg}");
        assert!(msg.contains("neither a `type`"), "{msg}");
    }
}
