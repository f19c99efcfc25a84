//! The node agent's local API for the plugin on the same node: where its
//! unix sockets are, and the JSON both sides exchange.
//!
//! - The **lookup socket** ([`DEFAULT_LOOKUP_SOCKET`], HTTP/1.1, root-only)
//!   serves the agent's watch caches: `GET /v1/pods/{namespace}/{name}?uid=`
//!   and `GET /v1/nads/{namespace}/{name}`. The answer is the object as the
//!   API server would return it (only the fields the plugin reads), or an
//!   [`ApiError`] with 404 when the cache cannot vouch for it: the plugin then
//!   asks the API server, exactly as without an agent.
//! - The **report socket** ([`DEFAULT_REPORT_SOCKET`], unix datagrams) takes
//!   the plugin's per-command outcomes, best-effort: the plugin never waits
//!   for it.
//!
//! The paths are written into `00-multus.conf` (`nodeAgentSocket`,
//! `nodeAgentReportSocket`), so a plugin only uses sockets its agent
//! announced.

use serde::{Deserialize, Serialize};

pub mod report;

/// Version prefix of every path of the lookup API.
pub const API_VERSION_PREFIX: &str = "/v1";

/// The lookup socket on the host (under the `/run/multus` the agent mounts).
pub const DEFAULT_LOOKUP_SOCKET: &str = "/run/multus/agent.sock";

/// The report socket on the host.
pub const DEFAULT_REPORT_SOCKET: &str = "/run/multus/agent-reports.sock";

/// Header carrying the API version the agent speaks, on every answer.
pub const VERSION_HEADER: &str = "x-multus-agent-api";

/// Path of a pod lookup.
pub fn pod_path(namespace: &str, name: &str) -> String {
    format!("{API_VERSION_PREFIX}/pods/{namespace}/{name}")
}

/// Path of a NAD lookup.
pub fn nad_path(namespace: &str, name: &str) -> String {
    format!("{API_VERSION_PREFIX}/nads/{namespace}/{name}")
}

/// Why a lookup was not answered from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub enum MissReason {
    /// The object is not in the cache (yet); the API server may have it.
    NotCached,
    /// The cached pod has another UID than the one asked for.
    UidMismatch,
    /// The cache has not finished its first list, or its watch is broken.
    NotSynced,
    /// The request was malformed.
    BadRequest,
    /// The path or version is not served.
    NotServed,
}

/// The body of every answer that is not the object asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Machine-readable reason.
    pub reason: MissReason,
    /// What happened, naming the object.
    pub message: String,
}
