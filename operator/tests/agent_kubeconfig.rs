//! The plugin's kubeconfig and token: content, permissions, and the token
//! refresh when the projected service-account volume swaps `..data`.

mod agent_common;

use agent_common::*;
use multus_config::generate::{KubeconfigParams, render_kubeconfig};

#[test]
fn the_token_is_refreshed_when_the_projected_volume_changes() {
    let mut host = Host::new();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    let agent = Agent::start({
        let mut c = host.command();
        // an IPv6 API server address is bracketed
        c.env("KUBERNETES_SERVICE_HOST", "fd00:10:96::1")
            .env("KUBERNETES_SERVICE_PORT", "6443")
            .arg("--host-cni-conf-dir=/etc/cni/net.d");
        c
    });
    agent.wait_ready(true);
    let kubeconfig = host.multus_d().join("multus.kubeconfig");
    let token = host.multus_d().join("token");
    let expected = |ca: &[u8]| {
        render_kubeconfig(&KubeconfigParams {
            server: "https://[fd00:10:96::1]:6443".into(),
            ca_pem: Some(ca.to_vec()),
            token_file: "/etc/cni/net.d/multus.d/token".into(),
        })
    };
    let ca1 = std::fs::read(host.sa.join("ca.crt")).unwrap();
    assert_eq!(
        std::fs::read_to_string(&kubeconfig).unwrap(),
        expected(&ca1)
    );
    assert_eq!(std::fs::read_to_string(&token).unwrap(), "token-1");
    assert_eq!(mode_of(&kubeconfig), 0o600);
    assert_eq!(mode_of(&token), 0o600);
    let out = read_json(&host.output());
    assert_eq!(
        out["kubeconfig"],
        "/etc/cni/net.d/multus.d/multus.kubeconfig"
    );
    assert_eq!(agent.metric("multus_node_agent_token_refreshes_total"), 1.0);
    let kubeconfig_mtime = std::fs::metadata(&kubeconfig).unwrap().modified().unwrap();

    // the kubelet rotates the token: new data dir, `..data` swapped
    host.project_service_account("token-2", "CA-1");
    wait_for("the new token", || {
        (std::fs::read_to_string(&token).ok()? == "token-2").then_some(())
    });
    assert_eq!(mode_of(&token), 0o600);
    wait_for("the refresh counted", || {
        (agent.metric("multus_node_agent_token_refreshes_total") == 2.0).then_some(())
    });
    // the kubeconfig references the file, so it did not change
    assert_eq!(
        std::fs::metadata(&kubeconfig).unwrap().modified().unwrap(),
        kubeconfig_mtime
    );

    // a new CA rewrites the kubeconfig
    host.project_service_account("token-2", "CA-2");
    let ca2 = std::fs::read(host.sa.join("ca.crt")).unwrap();
    wait_for("the new CA", || {
        (std::fs::read_to_string(&kubeconfig).ok()? == expected(&ca2)).then_some(())
    });
    agent.wait_ready(true);
    // the Multus config itself never changed
    assert_eq!(agent.regenerations(), 1.0);
}

#[test]
fn without_a_service_account_no_kubeconfig_is_written_or_referenced() {
    let host = Host::new();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    // (built by hand: Host::command names a service-account dir)
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_multus-operator"));
    command
        .args(["node-agent", "--no-kube", "--once", "--cni-conf-dir"])
        .arg(&host.conf)
        .arg("--cni-bin-dir")
        .arg(&host.bin)
        .arg("--plugin-binary")
        .arg(&host.plugin)
        .arg("--service-account-dir")
        .arg(host.root.path().join("no-such-dir"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT");
    let (ok, stderr) = run(command);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("not writing a kubeconfig"), "{stderr}");
    assert!(!host.multus_d().join("multus.kubeconfig").exists());
    assert!(read_json(&host.output()).get("kubeconfig").is_none());
}
