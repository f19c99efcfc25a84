//! `node-agent --uninstall` removes exactly what the agent installed.

mod agent_common;

use agent_common::*;

fn once(host: &Host) {
    let (ok, stderr) = run({
        let mut c = host.command();
        c.arg("--once");
        c
    });
    assert!(ok, "{stderr}");
}

fn uninstall(host: &Host) -> String {
    let (ok, stderr) = run({
        let mut c = host.command();
        c.arg("--uninstall");
        c
    });
    assert!(ok, "{stderr}");
    stderr
}

/// Foreign files in every directory the agent writes to.
fn put_foreign_files(host: &Host) {
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    std::fs::write(
        host.conf.join("99-loopback.conf"),
        bridge_conf("other", 1500),
    )
    .unwrap();
    std::fs::write(host.conf.join("calico-kubeconfig"), "apiVersion: v1\n").unwrap();
    std::fs::write(host.conf.join("00-multus.conf.bak"), "{}").unwrap();
    for plugin in ["bridge", "portmap", "calico"] {
        std::fs::write(host.bin.join(plugin), "#!/bin/sh\n").unwrap();
    }
}

#[test]
fn uninstall_removes_only_what_the_agent_installed() {
    let host = Host::new();
    put_foreign_files(&host);
    let foreign_bin = snapshot(&host.bin);
    let foreign_conf = snapshot(&host.conf);
    let foreign_sa = snapshot(&host.sa);
    once(&host);
    // a foreign file in multus.d (e.g. upstream's daemon-config.json)
    std::fs::write(host.multus_d().join("daemon-config.json"), "{}").unwrap();
    assert!(host.output().exists());
    assert!(host.bin.join("multus").exists());

    uninstall(&host);
    assert!(!host.output().exists());
    assert!(!host.bin.join("multus").exists());
    assert!(!host.multus_d().join("multus.kubeconfig").exists());
    assert!(!host.multus_d().join("token").exists());
    assert!(!host.multus_d().join("node-agent-files.json").exists());
    // multus.d stays: it holds a file that is not ours
    assert!(host.multus_d().join("daemon-config.json").exists());
    let mut conf_now = snapshot(&host.conf);
    conf_now.retain(|(p, _)| !p.starts_with(host.multus_d()));
    assert_eq!(conf_now, foreign_conf, "foreign conf files untouched");
    assert_eq!(
        snapshot(&host.bin),
        foreign_bin,
        "foreign plugins untouched"
    );
    assert_eq!(snapshot(&host.sa), foreign_sa);
}

#[test]
fn uninstall_removes_multus_d_when_it_created_it_and_is_idempotent() {
    let host = Host::new();
    put_foreign_files(&host);
    once(&host);
    uninstall(&host);
    assert!(!host.multus_d().exists());
    assert!(host.conf.join("10-calico.conflist").exists());
    // again: nothing to do, nothing breaks
    uninstall(&host);
    assert!(host.conf.join("10-calico.conflist").exists());
}

#[test]
fn files_changed_since_the_agent_wrote_them_stay() {
    let host = Host::new();
    put_foreign_files(&host);
    once(&host);
    // someone replaced our config with their own Multus config
    let replaced = r#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus","delegates":[{"type":"bridge"}]}"#;
    std::fs::write(host.output(), replaced).unwrap();
    // and the binary with another one
    std::fs::write(host.bin.join("multus"), "#!/bin/sh\necho other\n").unwrap();
    let stderr = uninstall(&host);
    assert_eq!(std::fs::read_to_string(host.output()).unwrap(), replaced);
    assert_eq!(
        std::fs::read_to_string(host.bin.join("multus")).unwrap(),
        "#!/bin/sh\necho other\n"
    );
    assert!(stderr.contains("left in place"), "{stderr}");
}

#[test]
fn the_binary_stays_while_a_multus_config_still_uses_it() {
    let host = Host::new();
    put_foreign_files(&host);
    once(&host);
    let replaced = r#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus","delegates":[{"type":"bridge"}]}"#;
    std::fs::write(host.output(), replaced).unwrap();
    let stderr = uninstall(&host);
    // our binary, but removing it would break every pod on the node
    assert!(host.bin.join("multus").exists(), "{stderr}");
    assert!(stderr.contains("still used"), "{stderr}");
}
