//! What the API server offers that Multus uses where it exists: the
//! controller looks at start and every [`PROBE_INTERVAL`], and the
//! MultusConfigs' status shows it (see `conditions::features`). Decided by
//! what the server serves (discovery, the objects themselves), never by
//! its version number.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use kube::Client;
use kube::api::Api;

use super::conditions::{AdmissionPolicy, ServerFeatures};
use super::context::Context;

/// How often the controller looks again (a cluster upgrade, the chart
/// installing or removing the policy).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(60);
/// How long one look may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// The group/version of ValidatingAdmissionPolicy (GA in 1.30).
const ADMISSION_V1: &str = "admissionregistration.k8s.io/v1";

/// The name of the chart's admission policy (and of its binding) for the
/// plugin ClusterRole `plugin_cluster_role`.
pub fn admission_policy_name(plugin_cluster_role: &str) -> String {
    format!("{plugin_cluster_role}-node-isolation")
}

/// Whether `group_version` serves `resource`, by discovery (`Ok(false)`
/// when the group/version does not exist).
async fn serves(client: &Client, group_version: &str, resource: &str) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == resource)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// The state of the admission policy `name` and its binding.
async fn admission_policy(client: &Client, name: &str) -> AdmissionPolicy {
    let look = async {
        if !serves(client, ADMISSION_V1, "validatingadmissionpolicies").await? {
            return Ok(AdmissionPolicy::NotServed);
        }
        let policy = Api::<ValidatingAdmissionPolicy>::all(client.clone())
            .get_opt(name)
            .await?;
        let binding = Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
            .get_opt(name)
            .await?;
        let mut missing = Vec::new();
        if policy.is_none() {
            missing.push("ValidatingAdmissionPolicy");
        }
        if binding.is_none() {
            missing.push("ValidatingAdmissionPolicyBinding");
        }
        Ok::<_, kube::Error>(if missing.is_empty() {
            AdmissionPolicy::Present {
                name: name.to_owned(),
            }
        } else {
            AdmissionPolicy::Missing {
                name: name.to_owned(),
                missing,
            }
        })
    };
    match tokio::time::timeout(PROBE_TIMEOUT, look).await {
        Ok(Ok(state)) => state,
        Ok(Err(e)) => AdmissionPolicy::Unknown {
            error: e.to_string(),
        },
        Err(_) => AdmissionPolicy::Unknown {
            error: format!("no answer within {PROBE_TIMEOUT:?}"),
        },
    }
}

/// Looks at what the server offers now; `None` when even its version
/// cannot be read.
pub async fn probe(client: &Client, plugin_cluster_role: &str) -> Option<ServerFeatures> {
    let version = match tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(info)) => info.git_version,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read the API server's version; probing later");
            return None;
        }
        Err(_) => {
            tracing::warn!("no answer to GET /version; probing later");
            return None;
        }
    };
    let name = admission_policy_name(plugin_cluster_role);
    let dra_v1 = match tokio::time::timeout(
        PROBE_TIMEOUT,
        serves(client, "resource.k8s.io/v1", "resourceclaims"),
    )
    .await
    {
        Ok(Ok(served)) => Some(served),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "cannot look for resource.k8s.io/v1");
            None
        }
        Err(_) => None,
    };
    Some(ServerFeatures {
        git_version: version,
        admission_policy: admission_policy(client, &name).await,
        dra_v1,
    })
}

/// Probes now and every [`PROBE_INTERVAL`] into `ctx`, logging changes.
pub async fn keep_probing(ctx: Arc<Context>) {
    let role = ctx.settings.operands.plugin_cluster_role.clone();
    loop {
        if let Some(found) = probe(&ctx.client, &role).await {
            if ctx.server_features().as_ref() != Some(&found) {
                tracing::info!(server = ?found, "what the API server offers");
            }
            ctx.set_server_features(found);
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}
