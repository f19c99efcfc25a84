//! `Ready`, `Progressing` and `Degraded` of a MultusConfig, computed from
//! what the controller observed (the spec's problems, the DaemonSet's
//! rollout, the agents' MultusNodeStates, node-pool conflicts and NAD
//! validation), and the Events a change of them deserves.
//!
//! Every message says what is wrong, names the nodes or objects, and the
//! next step, so `kubectl describe multusconfig` is enough to act on.
//!
//! Where things are:
//! - `inputs`: what a reconcile observed ([`Observation`] and its parts);
//! - `assess`: [`assess()`] as named steps, and what it computes
//!   ([`Assessment`], [`Verdict`]);
//! - `rollout`: `Ready` and `Progressing` from the DaemonSet's rollout and
//!   the agents' reports (and a rollout stuck past the deadline);
//! - `issues`: the other reasons for `Degraded`, and how they combine;
//! - `credential`: the nodes whose plugin token is not being refreshed;
//! - `features`: which protections of newer Kubernetes versions are in
//!   use (node-bound plugin tokens, the plugin's admission policy);
//! - `progress`: when the rollout last moved ([`ProgressMark`]);
//! - `status`: the MultusConfig's status for an assessment;
//! - `events`: the Events of a state change;
//! - `reasons`: the conditions' reasons; `wording`: name lists and
//!   shortened text in messages.

mod assess;
mod credential;
mod events;
mod features;
mod inputs;
mod issues;
mod progress;
mod reasons;
mod rollout;
mod status;
mod wording;

#[cfg(test)]
mod fixtures;

pub use assess::{Assessment, Verdict, assess};
pub use credential::credential_problem;
pub use events::{Severity, StateEvent, transition_events};
pub use features::{
    AdmissionPolicy, FEATURE_ADMISSION_POLICY, FEATURE_DRA, FEATURE_NODE_BOUND_TOKENS,
    ServerFeatures, cluster_features,
};
pub use inputs::{
    CredentialReport, InvalidNad, NodeReport, Observation, Phase, Rollout, WaitingNode,
    waiting_for_pods,
};
pub use progress::{ProgressMark, advance, progress_signature};
pub use reasons::*;
pub use status::status;
pub use wording::{NAMES_SHOWN, name_list};
