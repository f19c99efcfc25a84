//! Kubernetes helpers of the end-to-end tests: the chart, the node, the
//! agents, pods, NADs, events, MultusConfig status and the test DRA
//! driver, each wait bounded and saying what it saw last.

mod agents;
mod chart;
mod dra;
mod events;
mod multus_config;
mod node;
mod objects;
mod pods;

pub use agents::{
    agent_daemon_set, agent_pods, metric_sample, pod_uids, scrape_agent_metrics,
    wait_agents_replaced,
};
pub use chart::{helm_chart, install_privileged, remove_release, wait_operator_available};
pub use dra::{DRA_DEVICE_ID_ATTRIBUTE, DRA_RESOURCE_NAME_ATTRIBUTE, TestDraDriver};
pub use events::{
    event_count, event_summary, events, events_with_reason, wait_event, wait_event_saying,
};
pub use multus_config::{
    assert_no_multus_configs, condition, has_condition, mc_summary, status_current, wait_mc,
    wait_mc_ready,
};
pub use node::{single_node_without_multus, wait_single_node_here};
pub use objects::{create_nad, create_namespace, get_for_poll, nad_object, wait_gone};
pub use pods::{
    NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, POD_IMAGE_ENV, TestPod, delete_pod,
    hopeless_reason, ipv4_in_pod, links_in_pod, network_status_of, pod_image, pod_ready,
    pod_summary, pods_summary, restart_count, set_networks, wait_pod_ready,
};
