//! `multus-operator`: the cluster controller, the node agent and CRD output
//! in one binary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use multus_operator::{agent, controller, crd};

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
    Controller(Box<controller::ControllerArgs>),
    /// Run the node agent (writes 00-multus.conf, kubeconfig, plugin binary).
    NodeAgent(Box<agent::NodeAgentArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Commands::Crd { output_dir } => crd::run(output_dir.as_deref()),
        Commands::Controller(args) => controller::cli::main(*args),
        Commands::NodeAgent(args) => agent::cli::main(&args),
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
