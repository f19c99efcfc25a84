//! NetworkAttachmentDefinition validation.
//!
//! Each NAD's `spec.config` is checked the way the plugin will read it
//! (the NAD resolver of `multus-config`, then the CNI config parser): JSON,
//! an object, `type` present (or a `plugins` list whose plugins are all
//! typed), a known `cniVersion`. Then every plugin binary it needs (each
//! plugin's `type` and `ipam.type`) is looked up in what the node agents
//! report in `MultusNodeState.status.cniPlugins`. A NAD with an empty
//! `spec.config` refers to the config file in the nodes' Multus conf dir
//! whose CNI `name` is the NAD's name: it is looked up in what the same
//! nodes report in `MultusNodeState.status.multusConfNetworks`. Problems
//! become Warning Events on the NAD (`InvalidConfig`, `PluginMissing` and
//! `ConfigFileMissing` naming the nodes); a NAD that turns valid again gets
//! a Normal `ConfigValid` event. Nodes that have not reported yet (no
//! `cniPlugins`) are not compared against. A NAD otherwise valid whose
//! `k8s.v1.cni.cncf.io/resourceName` no node advertises in
//! `status.allocatable` (quantity above 0) gets `ResourceNotAdvertised`,
//! once the node watch has listed every node.
//!
//! Where things are:
//! - `inventory`: the plugins and Multus conf dir networks the node agents
//!   report ([`Inventory`], [`inventory()`]);
//! - `resources`: the resources the nodes advertise ([`advertised_by`],
//!   [`follow_advertised`], [`unadvertised`]);
//! - `verdict`: the verdict on one NAD ([`Verdict`], [`validate`],
//!   [`validate_nad`]);
//! - `events`: the Event of a verdict change ([`event_for`]);
//! - `reasons`: the Events' reasons;
//! - `registry`: the latest verdict of every NAD ([`NadRegistry`]);
//! - `run`: the NAD watch ([`run()`], [`check`]).

mod events;
mod inventory;
mod reasons;
mod registry;
mod resources;
mod run;
mod verdict;

pub use events::{NadEvent, event_for, truncate_note};
pub use inventory::{Inventory, inventory};
pub use reasons::{
    REASON_CONFIG_FILE_MISSING, REASON_CONFIG_VALID, REASON_INVALID_CONFIG, REASON_PLUGIN_MISSING,
    REASON_RESOURCE_NOT_ADVERTISED,
};
pub use registry::{NadRegistry, key_of};
pub use resources::{advertised_by, follow_advertised, quantity_above_zero, unadvertised};
pub use run::{check, run};
pub use verdict::{Verdict, validate, validate_nad};
