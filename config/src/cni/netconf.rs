//! Lossless CNI network configurations: a single plugin config (`.conf`) and
//! a configuration list (`.conflist`).
//!
//! "Lossless" means that parsing a valid config and serialising it again
//! gives back the same JSON: every key (known or not), every value, `null`s
//! inside free-form fields, empty objects, and the original key order.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer, ser::SerializeMap};
use serde_json::{Map, Value};

use super::version::{CniVersion, UnknownVersion};
pub(crate) use crate::text::json_type;

/// The original key order of a parsed JSON object. It is only a hint for
/// serialisation and never affects equality.
#[derive(Debug, Clone, Default)]
pub struct KeyOrder(Vec<String>);

impl KeyOrder {
    /// An order listing `keys` first.
    pub fn new(keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self(keys.into_iter().map(Into::into).collect())
    }

    /// The recorded keys, in order.
    pub fn keys(&self) -> &[String] {
        &self.0
    }
}

impl PartialEq for KeyOrder {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for KeyOrder {}

/// Why a network config was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The bytes are not JSON; the message carries serde's line and column.
    #[error("network config is not valid JSON: {message}")]
    NotJson {
        /// Line of the error (1-based).
        line: usize,
        /// Column of the error (1-based).
        column: usize,
        /// serde's message, including the position.
        message: String,
    },
    /// The JSON is not an object.
    #[error("network config must be a JSON object, found {found}")]
    NotAnObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A single plugin config without `type` (or with an empty one).
    #[error("network config has no plugin \"type\"")]
    MissingType,
    /// A plugin of a list without `type` (or with an empty one).
    #[error("plugins[{index}] of network config list has no plugin \"type\"")]
    MissingPluginType {
        /// Index of the plugin in `plugins` (0-based).
        index: usize,
    },
    /// `plugins` is not an array.
    #[error("\"plugins\" of network config list must be an array, found {found}")]
    PluginsNotAnArray {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A plugin of a list is not an object.
    #[error("plugins[{index}] of network config list must be a JSON object, found {found}")]
    PluginNotAnObject {
        /// Index of the plugin in `plugins` (0-based).
        index: usize,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// `plugins` is an empty array.
    #[error("\"plugins\" of network config list is empty: a list needs at least one plugin")]
    EmptyPlugins,
    /// `cniVersion` is present but not a string.
    #[error("{}: \"cniVersion\" must be a string, found {found}", place(*.plugin))]
    CniVersionNotString {
        /// The plugin of a list it was found in, if not at the top level.
        plugin: Option<usize>,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// Another known field has the wrong type.
    #[error("{}: {field:?} must be {expected}, found {found}", place(*.plugin))]
    InvalidField {
        /// The plugin of a list it was found in, if not at the top level.
        plugin: Option<usize>,
        /// The JSON key (dotted for nested keys, e.g. `capabilities.mac`).
        field: String,
        /// The expected JSON type.
        expected: &'static str,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// The config has no `cniVersion` (libcni would assume 0.1.0).
    #[error("network config has no \"cniVersion\"")]
    MissingCniVersion,
    /// The `cniVersion` is not one we know.
    #[error(transparent)]
    UnknownVersion(#[from] UnknownVersion),
}

fn place(plugin: Option<usize>) -> String {
    match plugin {
        None => "network config".to_owned(),
        Some(i) => format!("plugins[{i}] of network config list"),
    }
}

/// One plugin's config, as a file or as an element of a list's `plugins`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetConf {
    /// `cniVersion`, kept as text so that unknown versions survive.
    pub cni_version: Option<String>,
    /// `name` of the network.
    pub name: Option<String>,
    /// `type`: the plugin binary's name (required, non-empty).
    pub plugin_type: String,
    /// `capabilities` the plugin declares.
    pub capabilities: Option<BTreeMap<String, bool>>,
    /// `ipam`, verbatim.
    pub ipam: Option<Value>,
    /// `dns`, verbatim.
    pub dns: Option<Value>,
    /// `args`, verbatim (conventionally `{"cni": {...}}`).
    pub args: Option<Value>,
    /// `prevResult`, verbatim.
    pub prev_result: Option<Value>,
    /// `runtimeConfig`, verbatim.
    pub runtime_config: Option<Value>,
    /// Every other key, in its original order (plus known scalar keys whose
    /// value was `null`; a typed field that is set wins over them).
    pub extra: Map<String, Value>,
    /// The original key order (serialisation hint; ignored by equality).
    pub key_order: KeyOrder,
}

/// A configuration list (`.conflist`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfList {
    /// `cniVersion`, kept as text so that unknown versions survive.
    pub cni_version: Option<String>,
    /// `name` of the network (libcni requires it for lists; we fill it in).
    pub name: Option<String>,
    /// `disableCheck`.
    pub disable_check: Option<bool>,
    /// `disableGC`.
    pub disable_gc: Option<bool>,
    /// `plugins`, in order; never empty after parsing.
    pub plugins: Vec<NetConf>,
    /// Every other key, in its original order (plus known scalar keys whose
    /// value was `null`; a typed field that is set wins over them).
    pub extra: Map<String, Value>,
    /// The original key order (serialisation hint; ignored by equality).
    pub key_order: KeyOrder,
}

/// A network config as found in a file or a NAD: a single plugin or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "a handful of configs per process; boxing would only complicate matching"
)]
pub enum NetworkConfig {
    /// A single plugin config.
    Conf(NetConf),
    /// A configuration list.
    List(ConfList),
}

// ---------------------------------------------------------------------------
// Ordered serialisation shared by NetConf and ConfList.

/// A borrowed (or computed) value of a known or unknown field.
pub(super) enum Field<'a> {
    Str(&'a str),
    Bool(bool),
    Json(&'a Value),
    Caps(&'a BTreeMap<String, bool>),
    Plugins(&'a [NetConf]),
    Owned(Value),
}

impl Field<'_> {
    fn into_value(self) -> Value {
        match self {
            Field::Str(s) => Value::String(s.to_owned()),
            Field::Bool(b) => Value::Bool(b),
            Field::Json(v) => v.clone(),
            Field::Owned(v) => v,
            Field::Caps(c) => Value::Object(
                c.iter()
                    .map(|(k, v)| (k.clone(), Value::Bool(*v)))
                    .collect(),
            ),
            Field::Plugins(p) => Value::Array(p.iter().map(NetConf::to_value).collect()),
        }
    }
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Str(s) => serializer.serialize_str(s),
            Field::Bool(b) => serializer.serialize_bool(*b),
            Field::Json(v) => v.serialize(serializer),
            Field::Caps(c) => c.serialize(serializer),
            Field::Plugins(p) => p.serialize(serializer),
            Field::Owned(v) => v.serialize(serializer),
        }
    }
}

/// The entries of an object in output order: first the recorded order, then
/// known fields not in it, then unknown fields not in it. A known field that
/// is set wins over an `extra` entry of the same name.
pub(super) fn ordered_entries<'a>(
    order: &'a KeyOrder,
    mut known: Vec<(&'static str, Option<Field<'a>>)>,
    extra: &'a Map<String, Value>,
) -> Vec<(&'a str, Field<'a>)> {
    let mut out: Vec<(&'a str, Field<'a>)> = Vec::with_capacity(known.len() + extra.len());
    let mut done: HashSet<&'a str> = HashSet::new();
    for key in order.keys() {
        let key = key.as_str();
        if done.contains(key) {
            continue;
        }
        let typed = known
            .iter_mut()
            .find(|(k, _)| *k == key)
            .and_then(|(k, field)| Some((*k, field.take()?)));
        if let Some((name, field)) = typed {
            out.push((name, field));
            done.insert(name);
        } else if let Some(v) = extra.get(key) {
            out.push((key, Field::Json(v)));
            done.insert(key);
        }
    }
    for (key, field) in known {
        if let Some(field) = field {
            out.push((key, field));
            done.insert(key);
        }
    }
    for (key, v) in extra {
        if done.insert(key.as_str()) {
            out.push((key.as_str(), Field::Json(v)));
        }
    }
    out
}

pub(super) fn serialize_entries<S: Serializer>(
    serializer: S,
    entries: Vec<(&str, Field<'_>)>,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(entries.len()))?;
    for (k, v) in &entries {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

pub(super) fn entries_to_value(entries: Vec<(&str, Field<'_>)>) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_value()))
            .collect(),
    )
}

// ---------------------------------------------------------------------------
// Field extraction.

fn take_version(value: Value, plugin: Option<usize>) -> Result<String, ConfigError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(ConfigError::CniVersionNotString {
            plugin,
            found: json_type(&other),
        }),
    }
}

fn take_string(value: Value, field: &str, plugin: Option<usize>) -> Result<String, ConfigError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(ConfigError::InvalidField {
            plugin,
            field: field.to_owned(),
            expected: "a string",
            found: json_type(&other),
        }),
    }
}

fn take_bool(value: Value, field: &str, plugin: Option<usize>) -> Result<bool, ConfigError> {
    match value {
        Value::Bool(b) => Ok(b),
        other => Err(ConfigError::InvalidField {
            plugin,
            field: field.to_owned(),
            expected: "a boolean",
            found: json_type(&other),
        }),
    }
}

fn take_capabilities(
    value: Value,
    plugin: Option<usize>,
) -> Result<BTreeMap<String, bool>, ConfigError> {
    let Value::Object(map) = value else {
        return Err(ConfigError::InvalidField {
            plugin,
            field: "capabilities".to_owned(),
            expected: "an object",
            found: json_type(&value),
        });
    };
    map.into_iter()
        .map(|(k, v)| {
            let b = take_bool(v, &format!("capabilities.{k}"), plugin)?;
            Ok((k, b))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// NetConf.

impl NetConf {
    /// A config for plugin `plugin_type` with nothing else set.
    pub fn new(plugin_type: impl Into<String>) -> Self {
        Self {
            plugin_type: plugin_type.into(),
            ..Self::default()
        }
    }

    /// Builds a config from a JSON object; `plugin` is the index within a
    /// list, used in error messages.
    pub fn from_map(map: Map<String, Value>, plugin: Option<usize>) -> Result<Self, ConfigError> {
        let mut conf = Self {
            key_order: KeyOrder(map.keys().cloned().collect()),
            ..Self::default()
        };
        let mut plugin_type = None;
        for (key, value) in map {
            match key.as_str() {
                // A null scalar reads as absent (as in Go) but is kept so that
                // it is written back.
                "cniVersion" | "name" | "capabilities" if value.is_null() => {
                    conf.extra.insert(key, value);
                }
                "cniVersion" => conf.cni_version = Some(take_version(value, plugin)?),
                "name" => conf.name = Some(take_string(value, "name", plugin)?),
                "type" => plugin_type = Some(take_string(value, "type", plugin)?),
                "capabilities" => conf.capabilities = Some(take_capabilities(value, plugin)?),
                "ipam" => conf.ipam = Some(value),
                "dns" => conf.dns = Some(value),
                "args" => conf.args = Some(value),
                "prevResult" => conf.prev_result = Some(value),
                "runtimeConfig" => conf.runtime_config = Some(value),
                _ => {
                    conf.extra.insert(key, value);
                }
            }
        }
        match plugin_type {
            Some(t) if !t.is_empty() => conf.plugin_type = t,
            _ => {
                return Err(match plugin {
                    None => ConfigError::MissingType,
                    Some(index) => ConfigError::MissingPluginType { index },
                });
            }
        }
        Ok(conf)
    }

    /// Builds a top-level config from JSON.
    pub fn from_value(value: Value) -> Result<Self, ConfigError> {
        match value {
            Value::Object(map) => Self::from_map(map, None),
            other => Err(ConfigError::NotAnObject {
                found: json_type(&other),
            }),
        }
    }

    fn entries(&self) -> Vec<(&str, Field<'_>)> {
        let known = vec![
            ("cniVersion", self.cni_version.as_deref().map(Field::Str)),
            ("name", self.name.as_deref().map(Field::Str)),
            ("type", Some(Field::Str(&self.plugin_type))),
            ("capabilities", self.capabilities.as_ref().map(Field::Caps)),
            ("ipam", self.ipam.as_ref().map(Field::Json)),
            ("dns", self.dns.as_ref().map(Field::Json)),
            ("args", self.args.as_ref().map(Field::Json)),
            ("prevResult", self.prev_result.as_ref().map(Field::Json)),
            (
                "runtimeConfig",
                self.runtime_config.as_ref().map(Field::Json),
            ),
        ];
        ordered_entries(&self.key_order, known, &self.extra)
    }

    /// The config as JSON.
    pub fn to_value(&self) -> Value {
        entries_to_value(self.entries())
    }

    /// The config as JSON bytes (what a delegate reads on stdin).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_value().to_string().into_bytes()
    }

    /// The capabilities declared `true`.
    pub fn enabled_capabilities(&self) -> impl Iterator<Item = &str> {
        self.capabilities
            .iter()
            .flatten()
            .filter(|(_, on)| **on)
            .map(|(k, _)| k.as_str())
    }

    /// Whether capability `name` is declared `true`.
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities
            .as_ref()
            .and_then(|c| c.get(name))
            .copied()
            .unwrap_or(false)
    }

    /// The `type` of the `ipam` block, if there is one.
    pub fn ipam_type(&self) -> Option<&str> {
        self.ipam.as_ref()?.get("type")?.as_str()
    }
}

impl Serialize for NetConf {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_entries(serializer, self.entries())
    }
}

impl<'de> Deserialize<'de> for NetConf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::deserialize(deserializer)?;
        Self::from_map(map, None).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// ConfList.

impl ConfList {
    /// Builds a list from a JSON object that has a `plugins` key.
    pub fn from_map(map: Map<String, Value>) -> Result<Self, ConfigError> {
        let mut list = Self {
            key_order: KeyOrder(map.keys().cloned().collect()),
            ..Self::default()
        };
        let mut plugins = None;
        for (key, value) in map {
            match key.as_str() {
                "cniVersion" | "name" | "disableCheck" | "disableGC" if value.is_null() => {
                    list.extra.insert(key, value);
                }
                "cniVersion" => list.cni_version = Some(take_version(value, None)?),
                "name" => list.name = Some(take_string(value, "name", None)?),
                "disableCheck" => {
                    list.disable_check = Some(take_bool(value, "disableCheck", None)?)
                }
                "disableGC" => list.disable_gc = Some(take_bool(value, "disableGC", None)?),
                "plugins" => plugins = Some(value),
                _ => {
                    list.extra.insert(key, value);
                }
            }
        }
        let items = match plugins {
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(ConfigError::PluginsNotAnArray {
                    found: json_type(&other),
                });
            }
            None => {
                return Err(ConfigError::PluginsNotAnArray { found: "nothing" });
            }
        };
        if items.is_empty() {
            return Err(ConfigError::EmptyPlugins);
        }
        list.plugins = items
            .into_iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::Object(map) => NetConf::from_map(map, Some(index)),
                other => Err(ConfigError::PluginNotAnObject {
                    index,
                    found: json_type(&other),
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(list)
    }

    fn entries(&self) -> Vec<(&str, Field<'_>)> {
        let known = vec![
            ("cniVersion", self.cni_version.as_deref().map(Field::Str)),
            ("name", self.name.as_deref().map(Field::Str)),
            ("disableCheck", self.disable_check.map(Field::Bool)),
            ("disableGC", self.disable_gc.map(Field::Bool)),
            ("plugins", Some(Field::Plugins(&self.plugins))),
        ];
        ordered_entries(&self.key_order, known, &self.extra)
    }

    /// The list as JSON.
    pub fn to_value(&self) -> Value {
        entries_to_value(self.entries())
    }

    /// The config of plugin `index` as the runtime hands it to that plugin:
    /// `name` and `cniVersion` taken from the list (overriding the plugin's).
    pub fn plugin_for_exec(&self, index: usize) -> Option<NetConf> {
        let mut conf = self.plugins.get(index)?.clone();
        if let Some(name) = &self.name {
            conf.name = Some(name.clone());
        }
        if let Some(version) = &self.cni_version {
            conf.cni_version = Some(version.clone());
        }
        Some(conf)
    }
}

impl Serialize for ConfList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_entries(serializer, self.entries())
    }
}

impl<'de> Deserialize<'de> for ConfList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::deserialize(deserializer)?;
        Self::from_map(map).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// NetworkConfig.

impl NetworkConfig {
    /// Parses a config file or a NAD's `spec.config`: a JSON object with a
    /// `plugins` key is a list, any other object a single plugin config.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ConfigError::NotJson {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        Self::from_value(value)
    }

    /// Builds a config from JSON (same rules as [`NetworkConfig::parse`]).
    pub fn from_value(value: Value) -> Result<Self, ConfigError> {
        match value {
            Value::Object(map) if map.contains_key("plugins") => {
                ConfList::from_map(map).map(Self::List)
            }
            Value::Object(map) => NetConf::from_map(map, None).map(Self::Conf),
            other => Err(ConfigError::NotAnObject {
                found: json_type(&other),
            }),
        }
    }

    /// Whether this is a configuration list.
    pub fn is_list(&self) -> bool {
        matches!(self, Self::List(_))
    }

    /// The network's `name`.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Conf(c) => c.name.as_deref(),
            Self::List(l) => l.name.as_deref(),
        }
    }

    /// The `cniVersion` as written.
    pub fn cni_version_str(&self) -> Option<&str> {
        match self {
            Self::Conf(c) => c.cni_version.as_deref(),
            Self::List(l) => l.cni_version.as_deref(),
        }
    }

    /// The `cniVersion`, which must be present and known.
    pub fn cni_version(&self) -> Result<CniVersion, ConfigError> {
        let text = self
            .cni_version_str()
            .ok_or(ConfigError::MissingCniVersion)?;
        Ok(text.parse()?)
    }

    /// Sets `name` (of the list, for a list) when it is absent or empty.
    /// Returns whether it was set.
    pub fn set_name_if_missing(&mut self, name: &str) -> bool {
        let slot = match self {
            Self::Conf(c) => &mut c.name,
            Self::List(l) => &mut l.name,
        };
        if slot.as_deref().is_none_or(str::is_empty) {
            *slot = Some(name.to_owned());
            true
        } else {
            false
        }
    }

    /// Sets `cniVersion` (of the list, for a list) when it is absent or
    /// empty. Returns whether it was set.
    pub fn set_cni_version_if_missing(&mut self, version: CniVersion) -> bool {
        let slot = match self {
            Self::Conf(c) => &mut c.cni_version,
            Self::List(l) => &mut l.cni_version,
        };
        if slot.as_deref().is_none_or(str::is_empty) {
            *slot = Some(version.to_string());
            true
        } else {
            false
        }
    }

    /// The plugins: the single config, or every plugin of the list.
    pub fn plugins(&self) -> &[NetConf] {
        match self {
            Self::Conf(c) => std::slice::from_ref(c),
            Self::List(l) => &l.plugins,
        }
    }

    /// The plugins, mutably.
    pub fn plugins_mut(&mut self) -> &mut [NetConf] {
        match self {
            Self::Conf(c) => std::slice::from_mut(c),
            Self::List(l) => &mut l.plugins,
        }
    }

    /// The union of the capabilities declared `true` by any plugin, sorted.
    pub fn capabilities(&self) -> BTreeMap<String, bool> {
        self.plugins()
            .iter()
            .flat_map(NetConf::enabled_capabilities)
            .map(|k| (k.to_owned(), true))
            .collect()
    }

    /// The `type` of every plugin, in order.
    pub fn plugin_types(&self) -> Vec<&str> {
        self.plugins()
            .iter()
            .map(|p| p.plugin_type.as_str())
            .collect()
    }

    /// The config as JSON.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Conf(c) => c.to_value(),
            Self::List(l) => l.to_value(),
        }
    }

    /// The config as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_value().to_string().into_bytes()
    }

    /// The config as a list: a single config becomes a one-plugin list
    /// carrying its `name` and `cniVersion` (the plugin keeps its own copy,
    /// as libcni's conversion does).
    pub fn into_conflist(self) -> ConfList {
        match self {
            Self::List(l) => l,
            Self::Conf(c) => ConfList {
                cni_version: c.cni_version.clone(),
                name: c.name.clone(),
                key_order: KeyOrder::new(["cniVersion", "name", "plugins"]),
                plugins: vec![c],
                ..ConfList::default()
            },
        }
    }
}

impl Serialize for NetworkConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Conf(c) => c.serialize(serializer),
            Self::List(l) => l.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for NetworkConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_value(value).map_err(serde::de::Error::custom)
    }
}

impl From<NetConf> for NetworkConfig {
    fn from(c: NetConf) -> Self {
        Self::Conf(c)
    }
}

impl From<ConfList> for NetworkConfig {
    fn from(l: ConfList) -> Self {
        Self::List(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CALICO: &str = include_str!("../../../tests/fixtures/net.d-calico/10-calico.conflist");
    const EXPECTED_MULTUS: &str =
        include_str!("../../../tests/fixtures/net.d-calico/expected-00-multus.conf");

    /// Parses, re-serialises, and checks value equality, key order (at every
    /// level) and byte equality of the compact form.
    fn assert_lossless(text: &str) -> NetworkConfig {
        let original: Value = serde_json::from_str(text).unwrap();
        let parsed = NetworkConfig::parse(text.as_bytes()).unwrap();
        let back = parsed.to_value();
        assert_eq!(back, original);
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&original).unwrap(),
            "key order must survive"
        );
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            serde_json::to_string(&original).unwrap(),
            "Serialize and to_value agree"
        );
        assert_eq!(parsed.to_bytes(), serde_json::to_vec(&original).unwrap());
        // Through serde_json::from_value / to_value as well.
        let via_serde: NetworkConfig = serde_json::from_value(original.clone()).unwrap();
        assert_eq!(serde_json::to_value(&via_serde).unwrap(), original);
        assert_eq!(via_serde, parsed);
        parsed
    }

    #[test]
    fn calico_conflist_is_lossless() {
        let cfg = assert_lossless(CALICO);
        let NetworkConfig::List(list) = &cfg else {
            panic!("calico is a list");
        };
        assert_eq!(list.name.as_deref(), Some("k8s-pod-network"));
        assert_eq!(list.cni_version.as_deref(), Some("0.3.1"));
        assert_eq!(list.plugins.len(), 3);
        let calico = &list.plugins[0];
        assert_eq!(calico.plugin_type, "calico");
        assert_eq!(calico.ipam_type(), Some("calico-ipam"));
        assert_eq!(calico.extra["mtu"], json!(0));
        assert_eq!(calico.extra["log_level"], json!("info"));
        assert_eq!(
            calico.key_order.keys()[..3],
            [
                "type".to_owned(),
                "log_level".to_owned(),
                "log_file_path".to_owned()
            ]
        );
        assert_eq!(list.plugins[1].extra["snat"], json!(true));
        assert_eq!(cfg.plugin_types(), ["calico", "portmap", "bandwidth"]);
        assert_eq!(cfg.cni_version(), Ok(CniVersion::V0_3_1));
        assert_eq!(cfg.name(), Some("k8s-pod-network"));
        assert!(cfg.is_list());
    }

    #[test]
    fn calico_capabilities_match_the_expected_multus_conf() {
        let cfg = NetworkConfig::parse(CALICO.as_bytes()).unwrap();
        let caps = cfg.capabilities();
        let expected: Value = serde_json::from_str(EXPECTED_MULTUS).unwrap();
        assert_eq!(
            serde_json::to_value(&caps).unwrap(),
            expected["capabilities"]
        );
        assert_eq!(
            caps.keys().collect::<Vec<_>>(),
            ["bandwidth", "portMappings"]
        );
        // The expected multus conf embeds the calico list unchanged.
        assert_eq!(cfg.to_value(), expected["delegates"][0]);
        // And the multus conf itself is a lossless single config.
        let multus = assert_lossless(EXPECTED_MULTUS);
        assert_eq!(multus.plugin_types(), ["multus"]);
        assert_eq!(multus.capabilities(), caps);
    }

    #[test]
    fn macvlan_conf_is_lossless() {
        let text = r#"{
            "cniVersion": "0.3.0",
            "type": "macvlan",
            "master": "eth0",
            "mode": "bridge",
            "ipam": {
                "type": "host-local",
                "subnet": "192.168.1.0/24",
                "rangeStart": "192.168.1.200",
                "rangeEnd": "192.168.1.216",
                "routes": [ { "dst": "0.0.0.0/0" } ],
                "gateway": "192.168.1.1"
            }
        }"#;
        let cfg = assert_lossless(text);
        let NetworkConfig::Conf(conf) = &cfg else {
            panic!("macvlan is a single config");
        };
        assert_eq!(conf.plugin_type, "macvlan");
        assert_eq!(conf.name, None);
        assert_eq!(conf.extra["master"], json!("eth0"));
        assert_eq!(conf.ipam_type(), Some("host-local"));
        assert_eq!(cfg.cni_version(), Ok(CniVersion::V0_3_0));
        assert!(cfg.capabilities().is_empty());
    }

    #[test]
    fn bridge_with_ipam_ranges_and_dns_is_lossless() {
        let text = r#"{
            "cniVersion": "1.0.0",
            "name": "dbnet",
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": true,
            "ipMasq": true,
            "hairpinMode": false,
            "mtu": 1450,
            "vlan": 0,
            "ipam": {
                "type": "host-local",
                "ranges": [
                    [ { "subnet": "10.1.0.0/16", "gateway": "10.1.0.1" } ],
                    [ { "subnet": "fd00:10:1::/64", "rangeStart": "fd00:10:1::10" } ]
                ],
                "routes": [ { "dst": "0.0.0.0/0" }, { "dst": "::/0" } ],
                "dataDir": "/run/my-orchestrator/container-ipam-state"
            },
            "dns": { "nameservers": [ "10.1.0.1" ], "search": [], "options": null },
            "capabilities": { "ips": true, "mac": false }
        }"#;
        let cfg = assert_lossless(text);
        let conf = &cfg.plugins()[0];
        assert_eq!(
            conf.dns,
            Some(json!({ "nameservers": [ "10.1.0.1" ], "search": [], "options": null }))
        );
        assert!(conf.has_capability("ips"));
        assert!(!conf.has_capability("mac"));
        assert!(!conf.has_capability("portMappings"));
        assert_eq!(conf.enabled_capabilities().collect::<Vec<_>>(), ["ips"]);
        assert_eq!(
            cfg.capabilities(),
            BTreeMap::from([("ips".to_owned(), true)])
        );
        assert_eq!(cfg.cni_version(), Ok(CniVersion::V1_0_0));
    }

    #[test]
    fn flannel_with_delegate_is_lossless() {
        let text = r#"{
            "name": "cbr0",
            "cniVersion": "0.3.1",
            "plugins": [
                {
                    "type": "flannel",
                    "delegate": { "hairpinMode": true, "isDefaultGateway": true }
                },
                { "type": "portmap", "capabilities": { "portMappings": true } }
            ]
        }"#;
        let cfg = assert_lossless(text);
        assert_eq!(
            cfg.plugins()[0].extra["delegate"]["isDefaultGateway"],
            json!(true)
        );
        assert_eq!(cfg.plugin_types(), ["flannel", "portmap"]);
    }

    #[test]
    fn sriov_with_device_id_is_lossless() {
        let text = r#"{
            "cniVersion": "0.3.1",
            "name": "sriov-net",
            "type": "sriov",
            "deviceID": "0000:af:06.0",
            "vlan": 100,
            "spoofchk": "off",
            "trust": "on",
            "min_tx_rate": 100,
            "max_tx_rate": 200,
            "link_state": "enable",
            "ipam": {},
            "runtimeConfig": { "mac": "ca:fe:c0:ff:ee:00" },
            "args": { "cni": { "foo": "bar" } }
        }"#;
        let cfg = assert_lossless(text);
        let conf = &cfg.plugins()[0];
        assert_eq!(conf.extra["deviceID"], json!("0000:af:06.0"));
        assert_eq!(conf.ipam, Some(json!({})));
        assert_eq!(conf.ipam_type(), None);
        assert_eq!(
            conf.runtime_config,
            Some(json!({ "mac": "ca:fe:c0:ff:ee:00" }))
        );
        assert_eq!(conf.args, Some(json!({ "cni": { "foo": "bar" } })));
    }

    #[test]
    fn unusual_fields_survive() {
        let text = r#"{
            "cniVersion": "1.1.0",
            "name": "odd",
            "disableCheck": true,
            "disableGC": false,
            "x-vendor": { "nested": [1, 2.5, -3, null, "s", {}] },
            "plugins": [
                {
                    "type": "weird",
                    "ipam": null,
                    "dns": {},
                    "prevResult": { "cniVersion": "1.0.0", "ips": [] },
                    "runtimeConfig": {},
                    "capabilities": {},
                    "empty": {},
                    "nothing": null,
                    "big": 18446744073709551615,
                    "negative": -9223372036854775808,
                    "float": 1.5e300,
                    "unicode": "caf\u00e9 \ud83d\ude00",
                    "cniVersion": "0.4.0",
                    "name": "inner"
                }
            ],
            "zz-last": []
        }"#;
        let cfg = assert_lossless(text);
        let NetworkConfig::List(list) = &cfg else {
            panic!("a list");
        };
        assert_eq!(list.disable_check, Some(true));
        assert_eq!(list.disable_gc, Some(false));
        assert_eq!(
            list.extra.keys().collect::<Vec<_>>(),
            ["x-vendor", "zz-last"]
        );
        let p = &list.plugins[0];
        assert_eq!(p.ipam, Some(Value::Null));
        assert_eq!(p.dns, Some(json!({})));
        assert_eq!(p.capabilities, Some(BTreeMap::new()));
        assert_eq!(p.extra["nothing"], Value::Null);
        assert_eq!(p.extra["big"], json!(u64::MAX));
        assert_eq!(p.cni_version.as_deref(), Some("0.4.0"));
        assert_eq!(cfg.cni_version(), Ok(CniVersion::V1_1_0));
    }

    #[test]
    fn unknown_versions_survive_parsing_but_not_cni_version() {
        let text = r#"{"cniVersion":"9.9.9","type":"bridge"}"#;
        let cfg = assert_lossless(text);
        assert_eq!(cfg.cni_version_str(), Some("9.9.9"));
        let err = cfg.cni_version().unwrap_err();
        assert!(matches!(err, ConfigError::UnknownVersion(_)));
        assert!(err.to_string().contains("\"9.9.9\""), "{err}");
    }

    #[test]
    fn missing_version_is_reported_and_can_be_filled() {
        let mut cfg = NetworkConfig::parse(br#"{"type":"macvlan","master":"eth0"}"#).unwrap();
        assert_eq!(cfg.cni_version(), Err(ConfigError::MissingCniVersion));
        assert_eq!(
            ConfigError::MissingCniVersion.to_string(),
            "network config has no \"cniVersion\""
        );
        assert!(cfg.set_cni_version_if_missing(CniVersion::V0_3_1));
        assert!(!cfg.set_cni_version_if_missing(CniVersion::V1_0_0));
        assert!(cfg.set_name_if_missing("macvlan-conf"));
        assert!(!cfg.set_name_if_missing("other"));
        assert_eq!(cfg.cni_version(), Ok(CniVersion::V0_3_1));
        // New keys go after the original ones, in canonical order.
        assert_eq!(
            String::from_utf8(cfg.to_bytes()).unwrap(),
            r#"{"type":"macvlan","master":"eth0","cniVersion":"0.3.1","name":"macvlan-conf"}"#
        );
    }

    #[test]
    fn empty_name_and_version_count_as_missing() {
        let mut cfg =
            NetworkConfig::parse(br#"{"cniVersion":"","name":"","plugins":[{"type":"a"}]}"#)
                .unwrap();
        assert!(cfg.set_name_if_missing("nad"));
        assert!(cfg.set_cni_version_if_missing(CniVersion::V1_0_0));
        assert_eq!(
            cfg.to_value(),
            json!({"cniVersion":"1.0.0","name":"nad","plugins":[{"type":"a"}]})
        );
        // Only the list level is touched.
        assert_eq!(cfg.plugins()[0].name, None);
    }

    #[test]
    fn the_nad_fixture_without_version_gets_defaults() {
        // The config of fixtures/nads/macvlan-no-version.yaml.
        let mut cfg = NetworkConfig::parse(
            br#"{ "name": "mynet", "type": "macvlan", "master": "virbr0",
                  "ipam": { "type": "host-local", "subnet": "192.168.1.0/24",
                            "rangeStart": "192.168.1.200", "rangeEnd": "192.168.1.216" } }"#,
        )
        .unwrap();
        assert!(!cfg.set_name_if_missing("macvlan"));
        assert_eq!(cfg.name(), Some("mynet"));
        assert!(cfg.set_cni_version_if_missing(crate::cni::version::DEFAULT_NAD_VERSION));
        assert_eq!(cfg.cni_version(), Ok(CniVersion::V0_3_1));
        assert_eq!(cfg.to_value()["cniVersion"], json!("0.3.1"));
    }

    #[test]
    fn capabilities_union_is_sorted_and_only_true() {
        let cfg = NetworkConfig::parse(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[
                {"type":"a","capabilities":{"portMappings":true,"mac":false}},
                {"type":"b","capabilities":{"mac":true,"bandwidth":false}},
                {"type":"c","capabilities":{"ips":true,"portMappings":true}},
                {"type":"d"}]}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&cfg.capabilities()).unwrap(),
            r#"{"ips":true,"mac":true,"portMappings":true}"#
        );
    }

    #[test]
    fn into_conflist_wraps_a_single_config() {
        let text = r#"{"cniVersion":"1.0.0","name":"macnet","type":"macvlan","master":"eth0"}"#;
        let list = NetworkConfig::parse(text.as_bytes())
            .unwrap()
            .into_conflist();
        assert_eq!(list.name.as_deref(), Some("macnet"));
        assert_eq!(list.cni_version.as_deref(), Some("1.0.0"));
        assert_eq!(
            list.to_value(),
            json!({"cniVersion":"1.0.0","name":"macnet","plugins":[
                {"cniVersion":"1.0.0","name":"macnet","type":"macvlan","master":"eth0"}]})
        );
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"{"cniVersion":"1.0.0","name":"macnet","plugins":[{"cniVersion":"1.0.0","name":"macnet","type":"macvlan","master":"eth0"}]}"#
        );
        // Without name/version the list has none either.
        let list = NetworkConfig::parse(br#"{"type":"x"}"#)
            .unwrap()
            .into_conflist();
        assert_eq!(list.to_value(), json!({"plugins":[{"type":"x"}]}));
        // A list stays as it is.
        let list = NetworkConfig::parse(CALICO.as_bytes())
            .unwrap()
            .into_conflist();
        assert_eq!(list.plugins.len(), 3);
    }

    #[test]
    fn plugin_for_exec_takes_name_and_version_from_the_list() {
        let cfg = NetworkConfig::parse(CALICO.as_bytes()).unwrap();
        let list = cfg.into_conflist();
        let portmap = list.plugin_for_exec(1).unwrap();
        assert_eq!(
            portmap.to_value(),
            json!({"type":"portmap","snat":true,"capabilities":{"portMappings":true},
                   "cniVersion":"0.3.1","name":"k8s-pod-network"})
        );
        assert!(list.plugin_for_exec(3).is_none());
    }

    #[test]
    fn built_configs_serialise_in_canonical_order() {
        let mut conf = NetConf::new("bridge");
        conf.name = Some("br".into());
        conf.cni_version = Some("1.0.0".into());
        conf.capabilities = Some(BTreeMap::from([("mac".to_owned(), true)]));
        conf.runtime_config = Some(json!({"mac":"aa:bb:cc:dd:ee:ff"}));
        conf.extra.insert("bridge".into(), json!("cni0"));
        assert_eq!(
            serde_json::to_string(&conf).unwrap(),
            r#"{"cniVersion":"1.0.0","name":"br","type":"bridge","capabilities":{"mac":true},"runtimeConfig":{"mac":"aa:bb:cc:dd:ee:ff"},"bridge":"cni0"}"#
        );
        assert_eq!(serde_json::to_value(&conf).unwrap(), conf.to_value());
        let list = ConfList {
            name: Some("l".into()),
            disable_check: Some(true),
            plugins: vec![NetConf::new("a")],
            ..ConfList::default()
        };
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"{"name":"l","disableCheck":true,"plugins":[{"type":"a"}]}"#
        );
    }

    #[test]
    fn typed_fields_win_over_extra_entries_of_the_same_name() {
        let mut conf = NetConf::new("a");
        conf.extra.insert("type".into(), json!("shadow"));
        conf.extra.insert("name".into(), json!("from-extra"));
        // name is unset, so the extra entry is written; type is set and wins.
        assert_eq!(conf.to_value(), json!({"type":"a","name":"from-extra"}));
        assert_eq!(
            serde_json::to_string(&conf).unwrap(),
            r#"{"type":"a","name":"from-extra"}"#
        );
    }

    #[test]
    fn removed_fields_disappear_and_order_is_kept_for_the_rest() {
        let mut cfg =
            NetworkConfig::parse(br#"{"z":1,"type":"t","ipam":{"type":"x"},"a":2}"#).unwrap();
        cfg.plugins_mut()[0].ipam = None;
        cfg.plugins_mut()[0].extra.remove("z");
        assert_eq!(
            String::from_utf8(cfg.to_bytes()).unwrap(),
            r#"{"type":"t","a":2}"#
        );
    }

    #[test]
    fn key_order_never_affects_equality() {
        let a = NetworkConfig::parse(br#"{"type":"t","name":"n"}"#).unwrap();
        let b = NetworkConfig::parse(br#"{"name":"n","type":"t"}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(KeyOrder::new(["x"]), KeyOrder::default());
        assert_eq!(KeyOrder::new(["x", "y"]).keys(), ["x", "y"]);
    }

    fn parse_err(text: &str) -> ConfigError {
        NetworkConfig::parse(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn errors_say_exactly_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            (
                "{\"type\": \"x\",\n \"name\": }",
                "network config is not valid JSON: expected value at line 2 column 10",
            ),
            (
                "",
                "network config is not valid JSON: EOF while parsing a value at line 1 column 0",
            ),
            (
                "[1]",
                "network config must be a JSON object, found an array",
            ),
            (
                "\"conf\"",
                "network config must be a JSON object, found a string",
            ),
            ("null", "network config must be a JSON object, found null"),
            (r#"{"name":"n"}"#, "network config has no plugin \"type\""),
            (r#"{"type":""}"#, "network config has no plugin \"type\""),
            (
                r#"{"type":5}"#,
                "network config: \"type\" must be a string, found a number",
            ),
            (
                r#"{"name":"n","plugins":[{"type":"a"},{"ipam":{}}]}"#,
                "plugins[1] of network config list has no plugin \"type\"",
            ),
            (
                r#"{"name":"n","plugins":[]}"#,
                "\"plugins\" of network config list is empty: a list needs at least one plugin",
            ),
            (
                r#"{"name":"n","plugins":{"type":"a"}}"#,
                "\"plugins\" of network config list must be an array, found an object",
            ),
            (
                r#"{"name":"n","plugins":[{"type":"a"},"b"]}"#,
                "plugins[1] of network config list must be a JSON object, found a string",
            ),
            (
                r#"{"cniVersion":1.0,"type":"a"}"#,
                "network config: \"cniVersion\" must be a string, found a number",
            ),
            (
                r#"{"cniVersion":"1.0.0","plugins":[{"type":"a","cniVersion":true}]}"#,
                "plugins[0] of network config list: \"cniVersion\" must be a string, found a boolean",
            ),
            (
                r#"{"type":"a","name":["x"]}"#,
                "network config: \"name\" must be a string, found an array",
            ),
            (
                r#"{"type":"a","capabilities":["mac"]}"#,
                "network config: \"capabilities\" must be an object, found an array",
            ),
            (
                r#"{"plugins":[{"type":"a"},{"type":"b","capabilities":{"mac":"yes"}}]}"#,
                "plugins[1] of network config list: \"capabilities.mac\" must be a boolean, found a string",
            ),
            (
                r#"{"plugins":[{"type":"a"}],"disableCheck":"true"}"#,
                "network config: \"disableCheck\" must be a boolean, found a string",
            ),
            (
                r#"{"type":null}"#,
                "network config: \"type\" must be a string, found null",
            ),
        ];
        for (input, message) in cases {
            assert_eq!(parse_err(input).to_string(), *message, "for {input}");
        }
    }

    #[test]
    fn not_json_carries_line_and_column() {
        let err = parse_err("{\n  \"type\": \"x\",\n  oops\n}");
        let ConfigError::NotJson {
            line,
            column,
            message,
        } = err
        else {
            panic!("expected NotJson");
        };
        assert_eq!((line, column), (3, 3));
        assert!(message.contains("line 3 column 3"), "{message}");
    }

    #[test]
    fn error_variants_are_matchable() {
        assert_eq!(
            parse_err(r#"{"plugins":[{"type":"a"},{"type":""}]}"#),
            ConfigError::MissingPluginType { index: 1 }
        );
        assert_eq!(parse_err(r#"{"plugins":[]}"#), ConfigError::EmptyPlugins);
        assert_eq!(
            parse_err(r#"{"plugins":null}"#),
            ConfigError::PluginsNotAnArray { found: "null" }
        );
        assert_eq!(
            parse_err(r#"{"cniVersion":7,"plugins":[{"type":"a"}]}"#),
            ConfigError::CniVersionNotString {
                plugin: None,
                found: "a number"
            }
        );
    }

    #[test]
    fn serde_deserialisation_reports_the_same_errors() {
        let err = serde_json::from_str::<NetConf>(r#"{"name":"x"}"#).unwrap_err();
        assert_eq!(err.to_string(), "network config has no plugin \"type\"");
        let err = serde_json::from_str::<ConfList>(r#"{"plugins":[]}"#).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
        let err = serde_json::from_str::<NetworkConfig>("[]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "network config must be a JSON object, found an array"
        );
        let conf: NetConf = serde_json::from_str(r#"{"type":"t","k":1}"#).unwrap();
        assert_eq!(conf.extra["k"], json!(1));
        let list: ConfList = serde_json::from_str(r#"{"plugins":[{"type":"t"}],"k":1}"#).unwrap();
        assert_eq!(list.extra["k"], json!(1));
        // A ConfList needs a plugins key.
        let err = serde_json::from_str::<ConfList>(r#"{"name":"x"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"plugins\" of network config list must be an array, found nothing"
        );
    }

    #[test]
    fn netconf_from_value_requires_an_object() {
        assert_eq!(
            NetConf::from_value(json!(3)),
            Err(ConfigError::NotAnObject { found: "a number" })
        );
        assert_eq!(
            NetConf::from_value(json!({"type":"x"})).map(|c| c.plugin_type),
            Ok("x".to_owned())
        );
    }

    #[test]
    fn conversions_into_network_config() {
        let cfg: NetworkConfig = NetConf::new("a").into();
        assert!(!cfg.is_list());
        let cfg: NetworkConfig = ConfList {
            plugins: vec![NetConf::new("a")],
            ..ConfList::default()
        }
        .into();
        assert!(cfg.is_list());
        assert_eq!(cfg.plugin_types(), ["a"]);
    }

    #[test]
    fn null_scalars_read_as_absent_and_survive() {
        let text = r#"{"cniVersion":null,"name":null,"type":"t","capabilities":null}"#;
        let mut cfg = assert_lossless(text);
        assert_eq!(cfg.cni_version_str(), None);
        assert_eq!(cfg.name(), None);
        assert_eq!(cfg.plugins()[0].capabilities, None);
        assert_eq!(cfg.cni_version(), Err(ConfigError::MissingCniVersion));
        assert!(cfg.capabilities().is_empty());
        // Filling them in replaces the nulls in place.
        assert!(cfg.set_name_if_missing("nad"));
        assert!(cfg.set_cni_version_if_missing(CniVersion::V1_0_0));
        assert_eq!(
            String::from_utf8(cfg.to_bytes()).unwrap(),
            r#"{"cniVersion":"1.0.0","name":"nad","type":"t","capabilities":null}"#
        );
        let text = r#"{"cniVersion":null,"name":null,"disableCheck":null,"disableGC":null,"plugins":[{"type":"a"}]}"#;
        let cfg = assert_lossless(text);
        let NetworkConfig::List(list) = cfg else {
            panic!("a list");
        };
        assert_eq!(list.disable_check, None);
        assert_eq!(list.disable_gc, None);
    }

    #[test]
    fn capability_order_is_normalised_but_values_survive() {
        let text = r#"{"type":"t","capabilities":{"portMappings":true,"bandwidth":false}}"#;
        let cfg = NetworkConfig::parse(text.as_bytes()).unwrap();
        let original: Value = serde_json::from_str(text).unwrap();
        assert_eq!(cfg.to_value(), original);
        assert_eq!(
            String::from_utf8(cfg.to_bytes()).unwrap(),
            r#"{"type":"t","capabilities":{"bandwidth":false,"portMappings":true}}"#
        );
    }
}
