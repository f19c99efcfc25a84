//! Entry point of the `multus` CNI plugin binary.

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args()
        .skip(1)
        .any(|a| a == "--version" || a == "-v")
    {
        return write_stdout(
            multus_plugin::version::version_text().as_bytes(),
            ExitCode::SUCCESS,
        );
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(multus_plugin::upkeep::SUBCOMMAND) {
        return upkeep(&args[1..]);
    }
    if args.first().map(String::as_str) == Some(multus_plugin::hotplug::SUBCOMMAND) {
        return hotplug(&args[1..]);
    }
    if args.first().map(String::as_str) == Some(multus_config::hotplug::SUBCOMMAND) {
        return sync_networks(&args[1..]);
    }
    let command = std::env::var("CNI_COMMAND").ok();
    let mut stdin = Vec::new();
    // An unreadable stdin leaves the config empty; the command then reports
    // the missing config as a decoding error.
    let _ = std::io::stdin().read_to_end(&mut stdin);
    match multus_plugin::run(command.as_deref(), &stdin, |k| std::env::var(k).ok()) {
        Ok(bytes) => write_stdout(&bytes, ExitCode::SUCCESS),
        Err(err) => {
            let bytes = serde_json::to_vec(&err).unwrap_or_else(|_| err.msg.clone().into_bytes());
            write_stdout(&bytes, ExitCode::FAILURE)
        }
    }
}

/// `multus upkeep ...` (asked by the node agent, never by the runtime):
/// the JSON answer on stdout, an error on stderr and exit 1.
fn upkeep(args: &[String]) -> ExitCode {
    let outcome = multus_plugin::upkeep::UpkeepArgs::parse(args).and_then(|parsed| {
        let mut stdin = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut stdin);
        let cni_path = std::env::var("CNI_PATH").ok();
        multus_plugin::upkeep::run(&parsed, &stdin, cni_path.as_deref())
    });
    match outcome {
        Ok(bytes) => write_stdout(&bytes, ExitCode::SUCCESS),
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "multus upkeep: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `multus delegate ...` (asked by the node agent for upstream's delegate
/// API, never by the runtime): the answer on stdout, or the CNI error
/// object on stdout and exit 1.
fn hotplug(args: &[String]) -> ExitCode {
    let outcome = multus_plugin::hotplug::HotplugArgs::parse(args).and_then(|parsed| {
        let mut stdin = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut stdin);
        let cni_path = std::env::var("CNI_PATH").ok();
        multus_plugin::hotplug::run(&parsed, &stdin, cni_path.as_deref())
    });
    match outcome {
        Ok(bytes) => write_stdout(&bytes, ExitCode::SUCCESS),
        Err(err) => {
            let cni = err.to_cni_error();
            let _ = writeln!(std::io::stderr(), "multus delegate: {err}");
            let bytes = serde_json::to_vec(&cni).unwrap_or_else(|_| cni.msg.clone().into_bytes());
            write_stdout(&bytes, ExitCode::FAILURE)
        }
    }
}

/// `multus sync-networks ...` (asked by the node agent when a running
/// pod's networks annotation changed, never by the runtime): the outcome
/// on stdout; exit 1 only when the input could not be used.
fn sync_networks(args: &[String]) -> ExitCode {
    let outcome = multus_plugin::hotplug::HotplugArgs::parse(args).and_then(|parsed| {
        let mut stdin = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut stdin);
        let cni_path = std::env::var("CNI_PATH").ok();
        multus_plugin::hotplug::sync::run(&parsed, &stdin, cni_path.as_deref())
    });
    match outcome {
        Ok(bytes) => write_stdout(&bytes, ExitCode::SUCCESS),
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "multus sync-networks: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the one thing a CNI plugin may print: its result or error.
fn write_stdout(bytes: &[u8], code: ExitCode) -> ExitCode {
    let mut out = std::io::stdout().lock();
    if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    code
}
