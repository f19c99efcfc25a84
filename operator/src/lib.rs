//! Library of the `multus-operator` binary: the cluster controller, the node
//! agent and CRD output.

pub mod agent;
pub mod controller;
pub mod crd;
pub mod health;
pub mod logging;
