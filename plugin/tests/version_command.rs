//! The `multus` binary answers VERSION exactly as a runtime calls it.

use std::io::Write;
use std::process::{Command, Stdio};

fn run_cni(command: Option<&str>, stdin: &[u8]) -> (bool, serde_json::Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_multus"));
    cmd.env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(command) = command {
        cmd.env("CNI_COMMAND", command);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.success(), value)
}

#[test]
fn version_lists_every_cni_version() {
    let (ok, value) = run_cni(Some("VERSION"), br#"{"cniVersion":"0.3.1"}"#);
    assert!(ok);
    assert_eq!(value["cniVersion"], "0.3.1");
    assert_eq!(
        value["supportedVersions"],
        serde_json::json!([
            "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"
        ])
    );
}

#[test]
fn version_without_stdin_config_still_answers() {
    let (ok, value) = run_cni(Some("VERSION"), b"");
    assert!(ok);
    assert_eq!(value["cniVersion"], "1.1.0");
}

#[test]
fn missing_cni_command_is_a_cni_error_on_stdout() {
    let (ok, value) = run_cni(None, b"{}");
    assert!(!ok, "must exit non-zero");
    assert_eq!(value["code"], 4);
    assert!(value["msg"].as_str().unwrap().contains("CNI_COMMAND"));
}

#[test]
fn dash_dash_version_prints_the_release() {
    let out = Command::new(env!("CARGO_BIN_EXE_multus"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(concat!("multus ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
}
