//! `multus-operator node-agent`: logging, the async runtime and the choice
//! between running, `--once` and `--uninstall`. This is the binary's edge,
//! so its errors are `anyhow`.

use anyhow::Context as _;

use super::args::NodeAgentArgs;
use super::{run, run_once, shutdown_signal, uninstall};

/// Runs `multus-operator node-agent` with `args`.
pub fn main(args: &NodeAgentArgs) -> anyhow::Result<()> {
    crate::logging::init(args.log_format);
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
