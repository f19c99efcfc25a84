//! `node-agent --once`: the files it writes, their contents and modes.

mod agent_common;

use agent_common::*;
use multus_config::generate::{KubeconfigParams, render_kubeconfig};

#[test]
fn calico_fixture_produces_the_expected_file_kubeconfig_token_and_binary() {
    let host = Host::new();
    // the whole fixture directory: 10-calico.conflist, a README and the
    // published expected-00-multus.conf (a Multus config, never a primary)
    host.copy_calico_fixture();
    let (ok, stderr) = run({
        let mut c = host.command();
        c.arg("--once");
        c
    });
    assert!(ok, "{stderr}");

    // 00-multus.conf equals the published file (as JSON values)
    assert_eq!(read_json(&host.output()), calico_expected());
    assert_eq!(mode_of(&host.output()), 0o600);
    assert!(!host.conf.join("00-multus.conflist").exists());

    // the kubeconfig names the host paths and the CA; the token is a copy
    let kubeconfig = host.multus_d().join("multus.kubeconfig");
    let token = host.multus_d().join("token");
    assert_eq!(mode_of(&kubeconfig), 0o600);
    assert_eq!(mode_of(&token), 0o600);
    assert_eq!(std::fs::read_to_string(&token).unwrap(), "token-1");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&kubeconfig).unwrap()).unwrap();
    assert_eq!(
        doc["clusters"][0]["cluster"]["server"],
        "https://10.96.0.1:443"
    );
    assert_eq!(
        doc["users"][0]["user"]["tokenFile"],
        "/etc/cni/net.d/multus.d/token"
    );
    assert!(doc["users"][0]["user"].get("token").is_none());
    let expected = render_kubeconfig(&KubeconfigParams {
        server: "https://10.96.0.1:443".into(),
        ca_pem: Some(std::fs::read(host.sa.join("ca.crt")).unwrap()),
        token_file: "/etc/cni/net.d/multus.d/token".into(),
    });
    assert_eq!(std::fs::read_to_string(&kubeconfig).unwrap(), expected);

    // the plugin binary, 0755
    let binary = host.bin.join("multus");
    assert_eq!(std::fs::read_to_string(&binary).unwrap(), FAKE_PLUGIN);
    assert_eq!(mode_of(&binary), 0o755);

    // no temporary file is left anywhere
    for (path, _) in snapshot(host.root.path()) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.starts_with(".multus-agent."), "{}", path.display());
    }

    // a second run changes nothing
    let before = snapshot(host.root.path());
    let mtime = std::fs::metadata(host.output())
        .unwrap()
        .modified()
        .unwrap();
    let (ok, stderr) = run({
        let mut c = host.command();
        c.arg("--once");
        c
    });
    assert!(ok, "{stderr}");
    assert_eq!(snapshot(host.root.path()), before);
    assert_eq!(
        std::fs::metadata(host.output())
            .unwrap()
            .modified()
            .unwrap(),
        mtime,
        "identical output is not rewritten"
    );
}

#[test]
fn once_without_a_primary_fails_and_says_why() {
    let host = Host::new();
    std::fs::write(
        host.conf.join("05-multus.conf"),
        r#"{"cniVersion":"0.3.1","name":"nested","type":"multus"}"#,
    )
    .unwrap();
    std::fs::write(host.conf.join("10-broken.conf"), "{ not json").unwrap();
    std::fs::create_dir(host.conf.join("20-dir.conf")).unwrap();
    let (ok, stderr) = run({
        let mut c = host.command();
        c.arg("--once");
        c
    });
    assert!(!ok);
    assert!(stderr.contains("no primary CNI config"), "{stderr}");
    assert!(stderr.contains("05-multus.conf"), "{stderr}");
    assert!(stderr.contains("10-broken.conf"), "{stderr}");
    assert!(!host.output().exists());
}

#[test]
fn a_multus_typed_or_unreadable_config_is_never_the_primary() {
    let host = Host::new();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    std::fs::write(
        host.conf.join("00-aaa.conf"),
        r#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus","delegates":[]}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink(
        host.conf.join("missing"),
        host.conf.join("01-dangling.conf"),
    )
    .unwrap();
    let (ok, stderr) = run({
        let mut c = host.command();
        c.arg("--once");
        c
    });
    assert!(ok, "{stderr}");
    let out = read_json(&host.output());
    assert_eq!(out["delegates"][0]["name"], "k8s-pod-network");
    assert!(
        stderr.contains("01-dangling.conf"),
        "unreadable file reported: {stderr}"
    );
}

#[test]
fn the_config_file_sets_the_options_and_the_host_paths() {
    let host = Host::new();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    std::fs::write(
        host.conf.join("20-bridge.conf"),
        bridge_conf("bridge-net", 1400).replace("0.3.1", "1.0.0"),
    )
    .unwrap();
    let config = host.root.path().join("agent.yaml");
    std::fs::write(
        &config,
        "logLevel: debug\nnamespaceIsolation: true\nglobalNamespaces: [default, shared]\n\
         multusNamespace: multus\nprimaryConfigFile: 20-bridge.conf\n",
    )
    .unwrap();
    let (ok, stderr) = run({
        let mut c = host.command();
        c.arg("--once")
            .arg("--config")
            .arg(&config)
            .arg("--host-cni-conf-dir=/var/lib/rancher/cni/net.d");
        c
    });
    assert!(ok, "{stderr}");
    // the pinned 1.0.0 primary: a conflist
    assert!(!host.output().exists());
    let out = read_json(&host.conf.join("00-multus.conflist"));
    let plugin = &out["plugins"][0];
    assert_eq!(plugin["type"], "multus");
    assert_eq!(plugin["logLevel"], "debug");
    assert_eq!(plugin["namespaceIsolation"], true);
    assert_eq!(plugin["globalNamespaces"], "default,shared");
    assert_eq!(plugin["multusNamespace"], "multus");
    assert_eq!(plugin["delegates"][0]["name"], "bridge-net");
    assert_eq!(
        plugin["kubeconfig"],
        "/var/lib/rancher/cni/net.d/multus.d/multus.kubeconfig"
    );
    let kubeconfig: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(host.multus_d().join("multus.kubeconfig")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        kubeconfig["users"][0]["user"]["tokenFile"],
        "/var/lib/rancher/cni/net.d/multus.d/token"
    );
}

#[test]
fn invalid_config_and_missing_readiness_file_fail_clearly() {
    let host = Host::new();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    let config = host.root.path().join("agent.yaml");
    std::fs::write(&config, "logLevel: loud\n").unwrap();
    let (ok, stderr) = run({
        let mut c = host.command();
        c.arg("--once").arg("--config").arg(&config);
        c
    });
    assert!(!ok);
    assert!(stderr.contains("agent.yaml"), "{stderr}");

    let indicator = host.root.path().join("run/calico-ready");
    std::fs::write(
        &config,
        format!("readinessIndicatorFile: {}\n", indicator.display()),
    )
    .unwrap();
    let (ok, stderr) = run({
        let mut c = host.command();
        c.arg("--once").arg("--config").arg(&config);
        c
    });
    assert!(!ok);
    assert!(stderr.contains("readiness indicator"), "{stderr}");
    assert!(!host.output().exists());

    std::fs::create_dir_all(indicator.parent().unwrap()).unwrap();
    std::fs::write(&indicator, "").unwrap();
    let (ok, stderr) = run({
        let mut c = host.command();
        c.arg("--once").arg("--config").arg(&config);
        c
    });
    assert!(ok, "{stderr}");
    assert_eq!(
        read_json(&host.output())["readinessindicatorfile"],
        indicator.to_string_lossy().as_ref()
    );
}

#[test]
fn a_missing_plugin_binary_is_an_error() {
    let mut host = Host::new();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    host.plugin = host.root.path().join("nope");
    let (ok, stderr) = run({
        let mut c = host.command();
        c.arg("--once");
        c
    });
    assert!(!ok);
    assert!(stderr.contains("nope"), "{stderr}");
}
