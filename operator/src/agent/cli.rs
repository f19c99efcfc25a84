//! `multus-operator node-agent`: logging, the async runtime and the choice
//! between running, `--once` and `--uninstall`. This is the binary's edge,
//! so its errors are `anyhow`.

use std::io::IsTerminal;

use anyhow::Context as _;

use super::args::{LogFormat, NodeAgentArgs};
use super::{run, run_once, shutdown_signal, uninstall};

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs `multus-operator node-agent` with `args`.
pub fn main(args: &NodeAgentArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let settings = args.settings();
    if args.uninstall {
        let report = uninstall(&settings).context("node-agent --uninstall failed")?;
        tracing::info!(
            removed = report.removed.len(),
            kept = report.kept.len(),
            "uninstall done"
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        if args.once {
            let status = run_once(settings)
                .await
                .context("node-agent --once failed")?;
            tracing::info!(
                primary = status.primary_config_file.as_deref().unwrap_or_default(),
                file = status.generated_config_file.as_deref().unwrap_or_default(),
                "done"
            );
            return Ok(());
        }
        let shutdown = shutdown_signal().context("cannot install signal handlers")?;
        run(settings, shutdown).await.context("node-agent failed")
    })
}
