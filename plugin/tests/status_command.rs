//! STATUS of the `multus` binary: readiness file, and delegates' own STATUS
//! answers (CNI 1.1.0) passed through. Needs no root.

mod common;

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

/// A CNI 1.1.0 plugin whose STATUS answers with `status_code` (0 = ready).
fn fake_plugin(dir: &std::path::Path, name: &str, status_code: u32) {
    let script = format!(
        r#"#!/bin/sh
cat >/dev/null
if [ "$CNI_COMMAND" = STATUS ] && [ {status_code} -ne 0 ]; then
  printf '{{"cniVersion":"1.1.0","code":{status_code},"msg":"backend down"}}'
  exit 1
fi
"#
    );
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn conf(
    dir: &std::path::Path,
    plugin: &str,
    readiness: Option<&std::path::Path>,
) -> serde_json::Value {
    let mut c = json!({
        "cniVersion": "1.1.0", "name": "multus-cni-network", "type": "multus",
        "binDir": dir, "cniDir": dir.join("cache"),
        "delegates": [{"cniVersion": "1.1.0", "name": "cluster", "type": plugin}]
    });
    if let Some(r) = readiness {
        c["readinessindicatorfile"] = json!(r);
    }
    c
}

#[test]
fn status_reports_ready_when_delegates_are() {
    let dir = tempfile::tempdir().unwrap();
    fake_plugin(dir.path(), "ok-plugin", 0);
    let out = common::multus("STATUS", "", None, &conf(dir.path(), "ok-plugin", None));
    assert!(out.success, "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn status_passes_a_delegates_code_through() {
    let dir = tempfile::tempdir().unwrap();
    fake_plugin(dir.path(), "sick-plugin", 51);
    let out = common::multus("STATUS", "", None, &conf(dir.path(), "sick-plugin", None));
    assert!(!out.success);
    let err = out.json();
    assert_eq!(err["code"], 51, "{err}");
    assert!(
        err["msg"].as_str().unwrap().contains("cluster"),
        "names the network: {err}"
    );
    assert!(
        err["msg"].as_str().unwrap().contains("backend down"),
        "{err}"
    );
}

#[test]
fn status_is_not_ready_without_the_readiness_file() {
    let dir = tempfile::tempdir().unwrap();
    fake_plugin(dir.path(), "ok-plugin", 0);
    let ready = dir.path().join("ready");
    let out = common::multus(
        "STATUS",
        "",
        None,
        &conf(dir.path(), "ok-plugin", Some(&ready)),
    );
    assert!(!out.success);
    let err = out.json();
    assert_eq!(err["code"], 50, "{err}");
    assert!(err["msg"].as_str().unwrap().contains("ready"), "{err}");
    std::fs::write(&ready, "").unwrap();
    let out = common::multus(
        "STATUS",
        "",
        None,
        &conf(dir.path(), "ok-plugin", Some(&ready)),
    );
    assert!(out.success, "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn malformed_config_is_a_decoding_error_naming_the_problem() {
    let out = common::multus("ADD", "x", None, &json!("not an object"));
    assert!(!out.success);
    let err = out.json();
    assert_eq!(err["code"], 7, "{err}");
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("invalid Multus config"),
        "{err}"
    );
}
