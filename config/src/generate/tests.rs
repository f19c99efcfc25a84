use serde_json::{Value, json};

use super::*;
use crate::multus_conf::{LogLevel, MultusNetConf};

const CALICO: &str = include_str!("../../../tests/fixtures/net.d-calico/10-calico.conflist");
const CALICO_EXPECTED: &str =
    include_str!("../../../tests/fixtures/net.d-calico/expected-00-multus.conf");

const FLANNEL: &str = r#"{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    { "type": "flannel", "delegate": { "hairpinMode": true, "isDefaultGateway": true } },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}"#;

fn file(name: &str, text: &str) -> ConfFile {
    ConfFile {
        name: name.to_owned(),
        bytes: text.as_bytes().to_vec(),
    }
}

fn with_kubeconfig() -> GeneratorOptions {
    GeneratorOptions {
        kubeconfig: Some(options::DEFAULT_KUBECONFIG_PATH.to_owned()),
        ..GeneratorOptions::default()
    }
}

fn json_of(generated: &Generated) -> Value {
    serde_json::from_slice(&generated.bytes).unwrap()
}

#[test]
fn reproduces_the_published_calico_output() {
    let files = [
        file("10-calico.conflist", CALICO),
        file("calico-kubeconfig", "apiVersion: v1\nkind: Config\n"),
    ];
    let generated = generate(&files, &with_kubeconfig()).unwrap();
    assert_eq!(generated.file_name, "00-multus.conf");
    assert_eq!(generated.stale_file_name, "00-multus.conflist");
    assert_eq!(generated.election.file_name, "10-calico.conflist");
    assert_eq!(generated.election.config.name(), Some("k8s-pod-network"));
    let expected: Value = serde_json::from_str(CALICO_EXPECTED).unwrap();
    assert_eq!(json_of(&generated), expected);
    // and the plugin can read what we wrote
    let conf = MultusNetConf::parse(&generated.bytes).unwrap();
    assert_eq!(conf.log_level, LogLevel::Verbose);
}

#[test]
fn the_primary_is_embedded_exactly_as_found() {
    let generated = generate(&[file("10-calico.conflist", CALICO)], &with_kubeconfig()).unwrap();
    let on_disk: Value = serde_json::from_str(CALICO).unwrap();
    assert_eq!(json_of(&generated)["delegates"][0], on_disk);
}

#[test]
fn output_is_deterministic_whatever_the_listing_order() {
    let a = [
        file("10-calico.conflist", CALICO),
        file("20-flannel.conflist", FLANNEL),
        file("05-broken.conf", "{"),
    ];
    let b = [a[2].clone(), a[1].clone(), a[0].clone()];
    let first = generate(&a, &with_kubeconfig()).unwrap();
    let second = generate(&b, &with_kubeconfig()).unwrap();
    assert_eq!(first.bytes, second.bytes);
    assert_eq!(first.hash, second.hash);
    assert_eq!(first.hash.len(), 64);
    assert_eq!(first.hash, hex_sha256(&first.bytes));
}

#[test]
fn lexically_first_valid_config_wins_bytewise() {
    let files = [
        file("10-flannel.conflist", FLANNEL),
        file("10-Calico.conflist", CALICO), // 'C' sorts before 'f' byte-wise
    ];
    let generated = generate(&files, &with_kubeconfig()).unwrap();
    assert_eq!(generated.election.file_name, "10-Calico.conflist");
    let files = [
        file("20-calico.conflist", CALICO),
        file("10-flannel.conflist", FLANNEL),
    ];
    let generated = generate(&files, &with_kubeconfig()).unwrap();
    assert_eq!(generated.election.file_name, "10-flannel.conflist");
    assert_eq!(json_of(&generated)["delegates"][0]["name"], "cbr0");
    assert_eq!(
        json_of(&generated)["capabilities"],
        json!({"portMappings": true})
    );
}

#[test]
fn json_files_and_other_names_are_not_candidates() {
    let files = [
        file("00-early.json", CALICO),
        file("05-notes.txt", CALICO),
        file(".conf", CALICO),
        file("30-flannel.conflist", FLANNEL),
    ];
    let generated = generate(&files, &with_kubeconfig()).unwrap();
    assert_eq!(generated.election.file_name, "30-flannel.conflist");
    assert!(generated.election.skipped.is_empty());
    assert!(!is_candidate_name("x.conf.bak"));
    assert!(is_candidate_name("x.conf"));
}

#[test]
fn our_own_output_is_skipped() {
    let previous = generate(&[file("10-calico.conflist", CALICO)], &with_kubeconfig()).unwrap();
    let text = String::from_utf8(previous.bytes.clone()).unwrap();
    let files = [
        file("00-multus.conf", &text),
        file("00-multus.conflist", &text),
        file("10-calico.conflist", CALICO),
    ];
    let generated = generate(&files, &with_kubeconfig()).unwrap();
    assert_eq!(generated.election.file_name, "10-calico.conflist");
    assert_eq!(generated.bytes, previous.bytes, "regeneration is stable");
    let reasons: Vec<_> = generated
        .election
        .skipped
        .iter()
        .map(|s| s.reason.as_str())
        .collect();
    assert_eq!(reasons, ["our own output", "our own output"]);
}

#[test]
fn multus_typed_configs_are_never_elected() {
    let upstream_thick = r#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus-shim","clusterNetwork":"/x"}"#;
    let upstream_conflist = r#"{"cniVersion":"1.0.0","name":"multus-cni-network","plugins":[{"type":"multus","delegates":[]}]}"#;
    let files = [
        file("00-multus-old.conf", upstream_thick),
        file("01-multus.conflist", upstream_conflist),
        file("10-calico.conflist", CALICO),
    ];
    let generated = generate(&files, &with_kubeconfig()).unwrap();
    assert_eq!(generated.election.file_name, "10-calico.conflist");
    let skipped = &generated.election.skipped;
    assert_eq!(skipped.len(), 2);
    assert!(skipped[0].reason.contains("multus-shim"), "{skipped:?}");
    assert!(skipped[1].reason.contains("\"multus\""), "{skipped:?}");
}

#[test]
fn unparsable_and_versionless_files_are_skipped_and_reported() {
    let files = [
        file("01-empty.conf", ""),
        file("02-truncated.conflist", "{\"name\": \"x\", \"plugins\": ["),
        file("03-array.conf", "[1,2]"),
        file("04-noversion.conf", r#"{"name":"n","type":"bridge"}"#),
        file(
            "05-badversion.conf",
            r#"{"name":"n","type":"bridge","cniVersion":"7.0.0"}"#,
        ),
        file("06-notype.conf", r#"{"name":"n","cniVersion":"0.3.1"}"#),
        file("10-calico.conflist", CALICO),
    ];
    let generated = generate(&files, &with_kubeconfig()).unwrap();
    assert_eq!(generated.election.file_name, "10-calico.conflist");
    let skipped = &generated.election.skipped;
    let names: Vec<_> = skipped.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "01-empty.conf",
            "02-truncated.conflist",
            "03-array.conf",
            "04-noversion.conf",
            "05-badversion.conf",
            "06-notype.conf"
        ]
    );
    assert!(
        skipped[0].reason.starts_with("not a valid CNI config"),
        "{skipped:?}"
    );
    assert!(skipped[3].reason.contains("no cniVersion"), "{skipped:?}");
    assert!(skipped[4].reason.contains("7.0.0"), "{skipped:?}");
    assert!(skipped[5].reason.contains("type"), "{skipped:?}");
}

#[test]
fn a_directory_with_nothing_valid_is_an_error_that_says_why() {
    let files = [
        file("00-multus.conf", CALICO_EXPECTED),
        file("10-broken.conf", "{not json"),
        file("readme.json", CALICO),
    ];
    let err = generate(&files, &with_kubeconfig()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("00-multus.conf (our own output)"), "{text}");
    assert!(
        text.contains("10-broken.conf (not a valid CNI config"),
        "{text}"
    );
    assert!(!text.contains("readme.json"), "{text}");
    let err = generate(&[], &with_kubeconfig()).unwrap_err();
    assert!(
        err.to_string()
            .contains("no *.conf or *.conflist file found"),
        "{err}"
    );
}

#[test]
fn cni_1_0_primaries_produce_a_conflist() {
    let bridge = r#"{"cniVersion":"1.0.0","name":"podnet","type":"bridge","bridge":"cni0",
        "capabilities":{"ips":true,"mac":false},"ipam":{"type":"host-local","subnet":"10.1.0.0/16"}}"#;
    let generated = generate(&[file("10-bridge.conf", bridge)], &with_kubeconfig()).unwrap();
    assert_eq!(generated.file_name, "00-multus.conflist");
    assert_eq!(generated.stale_file_name, "00-multus.conf");
    let doc = json_of(&generated);
    assert_eq!(doc["cniVersion"], "1.0.0");
    assert_eq!(doc["name"], "multus-cni-network");
    assert!(doc.get("type").is_none());
    let plugin = &doc["plugins"][0];
    assert_eq!(plugin["type"], "multus");
    assert_eq!(
        plugin["capabilities"],
        json!({"ips": true}),
        "only true capabilities"
    );
    assert_eq!(plugin["delegates"][0]["bridge"], "cni0");
    assert_eq!(plugin["kubeconfig"], options::DEFAULT_KUBECONFIG_PATH);
}

#[test]
fn cni_version_override_decides_the_format() {
    let options = GeneratorOptions {
        cni_version: Some(CniVersion::V1_1_0),
        ..with_kubeconfig()
    };
    let generated = generate(&[file("10-calico.conflist", CALICO)], &options).unwrap();
    assert_eq!(generated.file_name, "00-multus.conflist");
    let doc = json_of(&generated);
    assert_eq!(doc["cniVersion"], "1.1.0");
    assert_eq!(
        doc["plugins"][0]["delegates"][0]["cniVersion"], "0.3.1",
        "delegate untouched"
    );
}

#[test]
fn every_option_reaches_the_file() {
    let options = GeneratorOptions {
        kubeconfig: Some("/k".into()),
        log_level: LogLevel::Debug,
        log_file: Some("/var/log/multus.log".into()),
        log_to_stderr: false,
        namespace_isolation: true,
        global_namespaces: vec!["default".into(), "shared".into()],
        system_namespaces: Some(vec!["kube-system".into(), "infra".into()]),
        multus_namespace: Some("multus".into()),
        cluster_network: Some("k8s-pod-network".into()),
        default_networks: vec!["monitoring".into()],
        readiness_indicator_file: Some("/run/ready".into()),
        additional_bin_dir: Some("/opt/extra/bin".into()),
        pod_resources_socket: Some("/var/lib/k0s/kubelet/pod-resources/kubelet.sock".into()),
        node_agent_socket: Some("/run/m/agent.sock".into()),
        node_agent_report_socket: Some("/run/m/reports.sock".into()),
        multus_conf_dir: Some("/etc/cni/multus/net.d".into()),
        cache_dir: Some("/var/lib/cni/multus".into()),
        cni_version: None,
        primary_config_file: None,
    };
    let generated = generate(&[file("10-calico.conflist", CALICO)], &options).unwrap();
    let conf = MultusNetConf::parse(&generated.bytes).unwrap();
    assert_eq!(conf.kubeconfig.as_deref(), Some("/k"));
    assert_eq!(conf.log_level, LogLevel::Debug);
    assert_eq!(conf.log_file.as_deref(), Some("/var/log/multus.log"));
    assert!(!conf.log_to_stderr);
    assert!(conf.namespace_isolation);
    assert_eq!(conf.global_namespaces, ["default", "shared"]);
    assert_eq!(conf.system_namespaces, ["kube-system", "infra"]);
    assert_eq!(conf.multus_namespace, "multus");
    assert_eq!(conf.cluster_network.as_deref(), Some("k8s-pod-network"));
    assert_eq!(conf.default_networks, ["monitoring"]);
    assert_eq!(conf.readiness_indicator_file.as_deref(), Some("/run/ready"));
    assert_eq!(conf.bin_dir, "/opt/extra/bin");
    assert_eq!(conf.conf_dir, "/etc/cni/multus/net.d");
    assert_eq!(conf.cni_dir, "/var/lib/cni/multus");
    assert_eq!(
        conf.pod_resources_socket(),
        "/var/lib/k0s/kubelet/pod-resources/kubelet.sock"
    );
    assert_eq!(conf.node_agent_socket.as_deref(), Some("/run/m/agent.sock"));
    assert_eq!(
        conf.node_agent_report_socket.as_deref(),
        Some("/run/m/reports.sock")
    );
    assert!(
        conf.extra.is_empty(),
        "no unexpected keys: {:?}",
        conf.extra
    );
}

#[test]
fn unset_options_are_left_out() {
    let generated = generate(
        &[file("10-calico.conflist", CALICO)],
        &GeneratorOptions::default(),
    )
    .unwrap();
    let doc = json_of(&generated);
    let keys: Vec<_> = doc.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "cniVersion",
            "name",
            "type",
            "capabilities",
            "logLevel",
            "logToStderr",
            "delegates"
        ]
    );
}

#[test]
fn a_pinned_primary_overrides_the_election() {
    let files = [
        file("10-calico.conflist", CALICO),
        file("20-flannel.conflist", FLANNEL),
    ];
    let options = GeneratorOptions {
        primary_config_file: Some("20-flannel.conflist".into()),
        ..with_kubeconfig()
    };
    let generated = generate(&files, &options).unwrap();
    assert_eq!(generated.election.file_name, "20-flannel.conflist");

    let options = GeneratorOptions {
        primary_config_file: Some("30-gone.conf".into()),
        ..with_kubeconfig()
    };
    let err = generate(&files, &options).unwrap_err();
    assert_eq!(err, GenerateError::PinnedMissing("30-gone.conf".into()));
    assert!(err.to_string().contains("30-gone.conf"));

    let files = [file(
        "05-multus.conf",
        r#"{"cniVersion":"0.3.1","name":"m","type":"multus"}"#,
    )];
    let options = GeneratorOptions {
        primary_config_file: Some("05-multus.conf".into()),
        ..with_kubeconfig()
    };
    let err = generate(&files, &options).unwrap_err();
    assert!(matches!(err, GenerateError::PinnedInvalid { .. }), "{err}");
}

#[test]
fn options_round_trip_as_the_agent_config_file() {
    let yaml = "kubeconfig: /etc/cni/net.d/multus.d/multus.kubeconfig\nlogLevel: debug\n\
                namespaceIsolation: true\nglobalNamespaces: [default, shared]\ncniVersion: 1.0.0\n";
    let options: GeneratorOptions = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(options.log_level, LogLevel::Debug);
    assert_eq!(options.cni_version, Some(CniVersion::V1_0_0));
    assert!(options.log_to_stderr, "defaults apply to unset keys");
    let err = serde_yaml::from_str::<GeneratorOptions>("logLevl: debug\n").unwrap_err();
    assert!(
        err.to_string().contains("logLevl"),
        "typos are rejected: {err}"
    );
}

#[test]
fn options_follow_the_multus_config_spec() {
    use crate::crd::MultusConfigSpec;
    use crate::crd::multus_config::{CniVersionSpec, PluginLogLevel};
    let spec = MultusConfigSpec {
        log_level: Some(PluginLogLevel::Error),
        namespace_isolation: Some(true),
        global_namespaces: Some(vec!["shared".into()]),
        cni_version: Some(CniVersionSpec::V1_0_0),
        primary_config_file: Some("auto".into()),
        default_networks: Some(vec!["mon".into()]),
        ..MultusConfigSpec::default()
    };
    let options = GeneratorOptions::from_spec(&spec, Some("/k".into()));
    assert_eq!(options.log_level, LogLevel::Error);
    assert!(options.namespace_isolation);
    assert_eq!(options.global_namespaces, ["shared"]);
    assert_eq!(options.cni_version, Some(CniVersion::V1_0_0));
    assert_eq!(options.primary_config_file, None, "auto means elect");
    assert_eq!(options.default_networks, ["mon"]);
    let defaults = GeneratorOptions::from_spec(&MultusConfigSpec::default(), None);
    // Every MultusConfig's agents serve the plugin on the node's sockets.
    assert_eq!(
        defaults.node_agent_socket.as_deref(),
        Some("/run/multus/agent.sock")
    );
    assert_eq!(
        defaults.node_agent_report_socket.as_deref(),
        Some("/run/multus/agent-reports.sock")
    );
    assert_eq!(
        GeneratorOptions {
            node_agent_socket: None,
            node_agent_report_socket: None,
            ..defaults
        },
        GeneratorOptions::default()
    );
}
