//! The reasons of the Events on a NetworkAttachmentDefinition.

/// Warning: `spec.config` is not a usable CNI config.
pub const REASON_INVALID_CONFIG: &str = "InvalidConfig";
/// Warning: a plugin binary is missing on some nodes.
pub const REASON_PLUGIN_MISSING: &str = "PluginMissing";
/// Warning: `spec.config` is empty and the config file it refers to is
/// missing on some nodes.
pub const REASON_CONFIG_FILE_MISSING: &str = "ConfigFileMissing";
/// Warning: the NAD's `resourceName` is in no node's allocatable resources.
pub const REASON_RESOURCE_NOT_ADVERTISED: &str = "ResourceNotAdvertised";
/// Normal: the NAD is valid again.
pub const REASON_CONFIG_VALID: &str = "ConfigValid";
