//! The CRDs at start: ours (MultusConfig, MultusNodeState) are applied
//! with server-side apply and force, so `helm upgrade` (which never
//! upgrades a chart's `crds/`) still brings new fields; the upstream NAD
//! CRD is created only when absent and never changed or deleted, because
//! other projects share it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use multus_config::crd::{NAD_CRD_YAML, generated_crds};

use super::FIELD_MANAGER;

/// Why the CRDs could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// An API request failed.
    #[error("cannot {verb} CustomResourceDefinition {name}: {error}")]
    Api {
        /// `apply`, `get` or `create`.
        verb: &'static str,
        /// The CRD's name.
        name: String,
        /// The client error (in the message, not a `source`, so that error
        /// chains do not print it twice).
        error: kube::Error,
    },
    /// The compiled-in NAD CRD does not parse (a build defect).
    #[error("the compiled-in NetworkAttachmentDefinition CRD is invalid: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// What [`apply_crds`] did, for the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrdReport {
    /// CRDs applied (ours).
    pub applied: Vec<String>,
    /// Whether the NAD CRD was created (it was absent).
    pub created_nad_crd: bool,
}

/// Applies our CRDs and creates the NAD CRD if it is absent.
pub async fn apply_crds(client: &Client) -> Result<CrdReport, CrdError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut report = CrdReport::default();
    for crd in generated_crds() {
        let name = crd.name_any();
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(|error| CrdError::Api {
                verb: "apply",
                name: name.clone(),
                error,
            })?;
        report.applied.push(name);
    }
    let nad: CustomResourceDefinition = serde_yaml::from_str(NAD_CRD_YAML)?;
    let name = nad.name_any();
    let existing = api.get_opt(&name).await.map_err(|error| CrdError::Api {
        verb: "get",
        name: name.clone(),
        error,
    })?;
    if existing.is_none() {
        match api.create(&PostParams::default(), &nad).await {
            Ok(_) => report.created_nad_crd = true,
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(error) => {
                return Err(CrdError::Api {
                    verb: "create",
                    name,
                    error,
                });
            }
        }
    }
    Ok(report)
}
