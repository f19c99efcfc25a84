//! `multus-operator`: the cluster controller, the node agent and CRD output
//! in one binary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "multus-operator",
    version,
    about = "Operator of the Rust Multus"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Print the CRDs of multus.dev (MultusConfig, MultusNodeState) as YAML.
    Crd {
        /// Write one file per CRD (`<plural>.<group>.yaml`) into this
        /// directory instead of printing a multi-document stream.
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
    },
    /// Run the cluster controller (reconciles MultusConfigs and NADs).
    Controller,
    /// Run the node agent (writes 00-multus.conf, kubeconfig, plugin binary).
    NodeAgent,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Commands::Crd { output_dir } => multus_operator::crd::run(output_dir.as_deref()),
        Commands::Controller => Err(anyhow::anyhow!(
            "the controller is not part of this build yet (see issue \"Cluster controller\")"
        )),
        Commands::NodeAgent => Err(anyhow::anyhow!(
            "the node agent is not part of this build yet (see issue \"Node agent\")"
        )),
    }
    .context("multus-operator failed");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
