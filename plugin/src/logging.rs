//! Plugin logging: stderr and, if configured, a log file. Never stdout.

use std::fs::OpenOptions;
use std::sync::Mutex;

use multus_config::multus_conf::{LogLevel, MultusNetConf};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

fn filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Panic | LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Verbose => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
    }
}

/// Installs the global subscriber for this process according to `conf`
/// (errors only to stderr when there is no usable config). Calling it twice
/// keeps the first setup.
pub fn init(conf: Option<&MultusNetConf>) {
    let level = conf.map_or(LevelFilter::ERROR, |c| filter(c.log_level));
    let to_stderr = conf.is_none_or(|c| c.log_to_stderr);
    let file = conf
        .and_then(|c| c.log_file.as_deref())
        .and_then(|path| OpenOptions::new().create(true).append(true).open(path).ok());
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false);
    let result = match (file, to_stderr) {
        (Some(file), true) => builder
            .with_writer(Mutex::new(file).and(std::io::stderr))
            .try_init(),
        (Some(file), false) => builder.with_writer(Mutex::new(file)).try_init(),
        (None, true) => builder.with_writer(std::io::stderr).try_init(),
        (None, false) => builder.with_writer(std::io::sink).try_init(),
    };
    // Already installed (tests run several invocations in one process).
    let _ = result;
}
