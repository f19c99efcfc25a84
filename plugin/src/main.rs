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

/// Writes the one thing a CNI plugin may print: its result or error.
fn write_stdout(bytes: &[u8], code: ExitCode) -> ExitCode {
    let mut out = std::io::stdout().lock();
    if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    code
}
