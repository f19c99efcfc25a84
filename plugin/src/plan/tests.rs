use std::collections::{BTreeMap, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use multus_config::npwg::NetworkAttachmentDefinitionSpec;
use serde_json::json;

use super::*;
use crate::commands::Command;

#[derive(Default)]
struct Nads(
    HashMap<(String, String), NetworkAttachmentDefinition>,
    std::cell::Cell<usize>,
);

impl Nads {
    fn with(mut self, ns: &str, name: &str, config: Option<&str>) -> Self {
        let mut nad = NetworkAttachmentDefinition::new(
            name,
            NetworkAttachmentDefinitionSpec {
                config: config.map(str::to_owned),
            },
        );
        nad.metadata.namespace = Some(ns.into());
        self.0.insert((ns.into(), name.into()), nad);
        self
    }
}

impl Nads {
    fn with_resource(mut self, ns: &str, name: &str, config: &str, resource: &str) -> Self {
        self = self.with(ns, name, Some(config));
        let nad = self.0.get_mut(&(ns.into(), name.into())).unwrap();
        nad.metadata.annotations = Some(BTreeMap::from([(
            multus_config::npwg::RESOURCE_NAME_ANNOTATION.to_owned(),
            resource.to_owned(),
        )]));
        self
    }
}

impl NadSource for Nads {
    async fn get_nad(&self, ns: &str, name: &str) -> Result<Option<NetworkAttachmentDefinition>> {
        self.1.set(self.1.get() + 1);
        Ok(self.0.get(&(ns.to_owned(), name.to_owned())).cloned())
    }
}

const MACVLAN: &str = r#"{"cniVersion":"0.3.1","type":"macvlan","master":"eth0","ipam":{"type":"host-local","subnet":"10.1.1.0/24"}}"#;
const STATIC: &str = r#"{"cniVersion":"1.0.0","type":"macvlan","capabilities":{"ips":true,"mac":true},"ipam":{"type":"static"}}"#;

fn conf(extra: serde_json::Value) -> MultusNetConf {
    let mut base = json!({
        "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
        "confDir": "/nonexistent/multus/net.d",
        "delegates": [{"cniVersion":"1.0.0","name":"cluster","type":"bridge"}]
    });
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    MultusNetConf::parse(base.to_string().as_bytes()).unwrap()
}

fn env(namespace: &str) -> CniEnv {
    let args = format!("K8S_POD_NAMESPACE={namespace};K8S_POD_NAME=web;K8S_POD_UID=u1;FOO=bar");
    CniEnv::from_lookup(Command::Add, |k| match k {
        "CNI_CONTAINERID" => Some("c1".into()),
        "CNI_NETNS" => Some("/var/run/netns/x".into()),
        "CNI_IFNAME" => Some("eth0".into()),
        "CNI_ARGS" => Some(args.clone()),
        _ => None,
    })
    .unwrap()
}

fn pod(namespace: &str, annotations: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some(namespace.into()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..ObjectMeta::default()
        },
        ..Pod::default()
    }
}

async fn run_plan(
    conf: &MultusNetConf,
    pod: Option<&Pod>,
    nads: &Nads,
) -> std::result::Result<Plan, (PluginError, Option<MissingNad>)> {
    let env = env(pod
        .and_then(|p| p.metadata.namespace.as_deref())
        .unwrap_or("default"));
    let dir = ConfDir::new(&conf.conf_dir);
    let input = PlanInput {
        conf,
        env: &env,
        pod,
        conf_dir: &dir,
    };
    plan(&input, nads).await
}

#[tokio::test]
async fn cluster_network_then_annotation_in_order_with_names() {
    let c = conf(json!({}));
    let nads = Nads::default().with("default", "macvlan", Some(MACVLAN));
    let p = pod(
        "default",
        &[(NETWORKS_ANNOTATION, "macvlan,macvlan@data0,macvlan")],
    );
    let plan = run_plan(&c, Some(&p), &nads).await.unwrap();
    let names: Vec<_> = plan
        .attachments
        .iter()
        .map(|a| (a.name.as_str(), a.ifname.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("cluster", "eth0"),
            ("default/macvlan", "net1"),
            ("default/macvlan", "data0"),
            ("default/macvlan", "net3")
        ]
    );
    assert!(plan.attachments[0].is_cluster_network);
    assert_eq!(nads.1.get(), 1, "one GET per distinct NAD");
    let a = &plan.attachments[1];
    assert_eq!(a.config.name(), Some("macvlan"), "NAD name filled in");
    assert_eq!(
        a.cni_args,
        "IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=u1;FOO=bar"
    );
}

#[tokio::test]
async fn missing_nad_is_reported_for_the_warning_event() {
    let c = conf(json!({}));
    let p = pod("default", &[(NETWORKS_ANNOTATION, "ghost")]);
    let (err, missing) = run_plan(&c, Some(&p), &Nads::default()).await.unwrap_err();
    assert!(err.to_string().contains("default/ghost"), "{err}");
    assert_eq!(
        missing,
        Some(MissingNad {
            namespace: "default".into(),
            name: "ghost".into()
        })
    );
}

#[tokio::test]
async fn bad_annotations_quote_the_item() {
    let c = conf(json!({}));
    let p = pod("default", &[(NETWORKS_ANNOTATION, "a/b/c")]);
    let (err, _) = run_plan(&c, Some(&p), &Nads::default()).await.unwrap_err();
    assert!(err.to_string().contains("a/b/c"), "{err}");
    assert_eq!(err.to_cni_error().code, 103);
}

#[tokio::test]
async fn namespace_isolation_is_enforced() {
    let c = conf(json!({"namespaceIsolation": true}));
    let nads = Nads::default()
        .with("other", "macvlan", Some(MACVLAN))
        .with("default", "shared", Some(MACVLAN));
    let p = pod("tenant", &[(NETWORKS_ANNOTATION, "other/macvlan")]);
    let (err, _) = run_plan(&c, Some(&p), &nads).await.unwrap_err();
    assert!(err.to_string().contains("namespace isolation"), "{err}");
    let p = pod("tenant", &[(NETWORKS_ANNOTATION, "default/shared")]);
    assert!(
        run_plan(&c, Some(&p), &nads).await.is_ok(),
        "default is global"
    );
}

#[tokio::test]
async fn requested_capabilities_must_be_declared() {
    let c = conf(json!({}));
    let nads = Nads::default()
        .with("default", "plain", Some(MACVLAN))
        .with("default", "static", Some(STATIC));
    let p = pod(
        "default",
        &[(
            NETWORKS_ANNOTATION,
            r#"[{"name":"plain","ips":["10.1.1.9/24"]}]"#,
        )],
    );
    let (err, _) = run_plan(&c, Some(&p), &nads).await.unwrap_err();
    assert!(err.to_string().contains("ips"), "{err}");
    assert!(err.to_string().contains("default/plain"), "{err}");
    let p = pod(
        "default",
        &[(
            NETWORKS_ANNOTATION,
            r#"[{"name":"static","ips":["10.1.1.9/24"],"mac":"02:00:00:00:00:01","cni-args":{"x":"y"}}]"#,
        )],
    );
    let plan = run_plan(&c, Some(&p), &nads).await.unwrap();
    let a = &plan.attachments[1];
    assert_eq!(a.capability_args["ips"], json!(["10.1.1.9/24"]));
    assert_eq!(a.capability_args["mac"], "02:00:00:00:00:01");
    assert!(
        a.cni_args
            .ends_with(";IP=10.1.1.9/24;MAC=02:00:00:00:00:01"),
        "{}",
        a.cni_args
    );
    assert_eq!(a.config.to_value()["args"]["cni"]["x"], "y");
}

#[tokio::test]
async fn default_networks_skip_system_namespaces_and_default_network_annotation_replaces_cluster() {
    let c = conf(json!({"defaultNetworks": ["mon"], "multusNamespace": "kube-system"}));
    let nads = Nads::default()
        .with("kube-system", "mon", Some(MACVLAN))
        .with(
            "kube-system",
            "alt",
            Some(r#"{"cniVersion":"1.0.0","type":"ptp"}"#),
        );
    let p = pod("default", &[]);
    let plan = run_plan(&c, Some(&p), &nads).await.unwrap();
    assert_eq!(plan.attachments.len(), 2);
    assert_eq!(plan.attachments[1].name, "kube-system/mon");
    assert_eq!(plan.attachments[1].ifname, "net1");
    let p = pod("kube-system", &[]);
    assert_eq!(
        run_plan(&c, Some(&p), &nads)
            .await
            .unwrap()
            .attachments
            .len(),
        1
    );
    let p = pod("default", &[(DEFAULT_NETWORK_ANNOTATION, "alt")]);
    let plan = run_plan(&c, Some(&p), &nads).await.unwrap();
    assert_eq!(plan.attachments[0].name, "kube-system/alt");
    assert_eq!(plan.attachments[0].ifname, "eth0");
}

#[tokio::test]
async fn duplicate_interface_names_are_refused() {
    let c = conf(json!({}));
    let nads = Nads::default().with("default", "macvlan", Some(MACVLAN));
    let p = pod("default", &[(NETWORKS_ANNOTATION, "macvlan@eth0")]);
    let (err, _) = run_plan(&c, Some(&p), &nads).await.unwrap_err();
    assert!(err.to_string().contains("\"eth0\""), "{err}");
}

#[tokio::test]
async fn cluster_network_reference_resolves_files_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("10-pod.conf"),
        r#"{"cniVersion":"0.4.0","name":"podnet","type":"bridge"}"#,
    )
    .unwrap();
    let c = conf(json!({"clusterNetwork": "podnet", "confDir": dir.path()}));
    let plan = run_plan(&c, None, &Nads::default()).await.unwrap();
    assert_eq!(plan.attachments[0].name, "podnet");
    let c = conf(json!({"clusterNetwork": dir.path().join("10-pod.conf")}));
    let plan = run_plan(&c, None, &Nads::default()).await.unwrap();
    assert_eq!(plan.attachments[0].config.cni_version_str(), Some("0.4.0"));
    let c = conf(json!({"clusterNetwork": "nothing"}));
    let (err, _) = run_plan(&c, None, &Nads::default()).await.unwrap_err();
    assert!(err.to_string().contains("\"nothing\""), "{err}");
}

fn bridge(name: &str) -> serde_json::Value {
    json!({"cniVersion": "1.0.0", "name": name, "type": "bridge"})
}

fn summary(plan: &Plan) -> Vec<(&str, &str, bool)> {
    plan.attachments
        .iter()
        .map(|a| (a.name.as_str(), a.ifname.as_str(), a.is_cluster_network))
        .collect()
}

#[tokio::test]
async fn every_inline_delegate_is_attached_in_order() {
    let c = conf(json!({"delegates": [bridge("sriov"), bridge("ptp"), bridge("flannel")]}));
    let plan = run_plan(&c, None, &Nads::default()).await.unwrap();
    assert_eq!(
        summary(&plan),
        [
            ("sriov", "eth0", true),
            ("ptp", "net1", false),
            ("flannel", "net2", false)
        ]
    );
    // Every delegate gets the same CNI_ARGS and runtime capabilities.
    assert!(
        plan.attachments
            .iter()
            .all(|a| a.cni_args == plan.attachments[0].cni_args)
    );
    assert_eq!(plan.attachments[2].config.plugin_types(), ["bridge"]);
}

#[tokio::test]
async fn masterplugin_picks_the_cluster_network_and_keeps_the_list_order() {
    let mut second = bridge("b");
    second["masterplugin"] = json!(true);
    let mut first = bridge("a");
    first["masterplugin"] = json!(false);
    let c = conf(json!({"delegates": [first, second, bridge("c")]}));
    let plan = run_plan(&c, None, &Nads::default()).await.unwrap();
    assert_eq!(
        summary(&plan),
        [
            ("a", "net1", false),
            ("b", "eth0", true),
            ("c", "net2", false)
        ]
    );
}

#[tokio::test]
async fn masterplugin_must_be_a_single_boolean() {
    let mut a = bridge("a");
    a["masterplugin"] = json!(true);
    let mut b = bridge("b");
    b["masterplugin"] = json!(true);
    let c = conf(json!({"delegates": [a, bridge("x"), b]}));
    let (err, _) = run_plan(&c, None, &Nads::default()).await.unwrap_err();
    assert_eq!(err.to_cni_error().code, 7, "{err}");
    assert!(err.to_string().contains("delegates[0]"), "{err}");
    assert!(err.to_string().contains("delegates[2]"), "{err}");
    let mut d = bridge("d");
    d["masterplugin"] = json!("yes");
    let c = conf(json!({"delegates": [bridge("a"), d]}));
    let (err, _) = run_plan(&c, None, &Nads::default()).await.unwrap_err();
    assert_eq!(err.to_cni_error().code, 7, "{err}");
    assert!(
        err.to_string().contains("delegates[1].masterplugin"),
        "{err}"
    );
}

#[tokio::test]
async fn nameless_delegates_are_named_by_position() {
    let c = conf(json!({"delegates": [
        {"cniVersion": "1.0.0", "type": "bridge"},
        {"type": "ptp"}
    ]}));
    let plan = run_plan(&c, None, &Nads::default()).await.unwrap();
    assert_eq!(
        summary(&plan),
        [
            ("cluster-network", "eth0", true),
            ("delegates[1]", "net1", false)
        ]
    );
    // The Multus config's version is filled in where a delegate has none.
    assert_eq!(plan.attachments[1].config.cni_version_str(), Some("1.0.0"));
    let c = conf(json!({"delegates": [bridge("a"), {"cniVersion": "1.0.0"}]}));
    let (err, _) = run_plan(&c, None, &Nads::default()).await.unwrap_err();
    assert!(err.to_string().contains("delegates[1]"), "{err}");
}

#[tokio::test]
async fn inline_delegates_come_before_default_networks_and_annotation_networks() {
    let mut master = bridge("b");
    master["masterplugin"] = json!(true);
    let c = conf(json!({
        "delegates": [bridge("a"), master, bridge("c")],
        "defaultNetworks": ["mon"]
    }));
    let nads = Nads::default()
        .with("kube-system", "mon", Some(MACVLAN))
        .with("default", "macvlan", Some(MACVLAN));
    let p = pod("default", &[(NETWORKS_ANNOTATION, "macvlan,macvlan@data0")]);
    let plan = run_plan(&c, Some(&p), &nads).await.unwrap();
    assert_eq!(
        summary(&plan),
        [
            ("a", "net1", false),
            ("b", "eth0", true),
            ("c", "net2", false),
            ("kube-system/mon", "net3", false),
            ("default/macvlan", "net4", false),
            ("default/macvlan", "data0", false)
        ]
    );
}

#[tokio::test]
async fn an_annotation_network_cannot_take_an_inline_delegates_interface() {
    let c = conf(json!({"delegates": [bridge("a"), bridge("b")]}));
    let nads = Nads::default().with("default", "macvlan", Some(MACVLAN));
    let p = pod("default", &[(NETWORKS_ANNOTATION, "macvlan@net1")]);
    let (err, _) = run_plan(&c, Some(&p), &nads).await.unwrap_err();
    assert!(err.to_string().contains("\"net1\""), "{err}");
    assert!(err.to_string().contains("b"), "{err}");
}

#[tokio::test]
async fn default_network_annotation_replaces_only_the_cluster_network() {
    let mut master = bridge("b");
    master["masterplugin"] = json!(true);
    let c = conf(json!({"delegates": [bridge("a"), master, bridge("c")]}));
    let nads = Nads::default().with(
        "kube-system",
        "alt",
        Some(r#"{"cniVersion":"1.0.0","type":"ptp"}"#),
    );
    let p = pod("default", &[(DEFAULT_NETWORK_ANNOTATION, "alt")]);
    let plan = run_plan(&c, Some(&p), &nads).await.unwrap();
    assert_eq!(
        summary(&plan),
        [
            ("a", "net1", false),
            ("kube-system/alt", "eth0", true),
            ("c", "net2", false)
        ]
    );
    assert_eq!(plan.attachments[1].config.plugin_types(), ["ptp"]);
}

#[tokio::test]
async fn cluster_network_setting_ignores_inline_delegates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("10-pod.conf"),
        r#"{"cniVersion":"0.4.0","name":"podnet","type":"bridge"}"#,
    )
    .unwrap();
    let c = conf(json!({
        "clusterNetwork": "podnet", "confDir": dir.path(),
        "delegates": [bridge("a"), bridge("b")]
    }));
    let plan = run_plan(&c, None, &Nads::default()).await.unwrap();
    assert_eq!(summary(&plan), [("podnet", "eth0", true)]);
}

#[tokio::test]
async fn static_plan_has_the_inline_delegates_only() {
    let c = conf(json!({
        "delegates": [bridge("a"), bridge("b")],
        "defaultNetworks": ["mon"]
    }));
    let env = env("default");
    let dir = ConfDir::new(&c.conf_dir);
    let p = pod("default", &[(NETWORKS_ANNOTATION, "ghost")]);
    let input = PlanInput {
        conf: &c,
        env: &env,
        pod: Some(&p),
        conf_dir: &dir,
    };
    // `mon` and `ghost` cannot be resolved; the static plan does not need them.
    assert!(plan(&input, &Nads::default()).await.is_err());
    let plan = plan_static(&input, &Nads::default()).await.unwrap();
    assert_eq!(summary(&plan), [("a", "eth0", true), ("b", "net1", false)]);
}

#[test]
fn inline_delegates_without_any_is_an_empty_list() {
    let mut c = conf(json!({"clusterNetwork": "x"}));
    c.delegates.clear();
    assert!(inline_delegates(&c, "eth0").unwrap().is_empty());
}

#[tokio::test]
async fn nads_naming_a_resource_are_marked_for_a_device_wherever_they_are_used() {
    const SRIOV: &str = r#"{"cniVersion":"1.0.0","type":"sriov","capabilities":{"deviceID":true,"CNIDeviceInfoFile":true}}"#;
    let c = conf(json!({"defaultNetworks": ["dflt"], "multusNamespace": "kube-system"}));
    let nads = Nads::default()
        .with_resource("kube-system", "dflt", SRIOV, "example.com/nic")
        .with_resource("default", "sriov", SRIOV, "intel.com/sriov")
        .with("default", "macvlan", Some(MACVLAN));
    let p = pod(
        "default",
        &[(
            NETWORKS_ANNOTATION,
            r#"[{"name":"sriov"},{"name":"macvlan"},{"name":"sriov","deviceID":"0000:01:00.1"}]"#,
        )],
    );
    let plan = run_plan(&c, Some(&p), &nads).await.unwrap();
    let resources: Vec<_> = plan
        .attachments
        .iter()
        .map(|a| a.device.resource_name.as_deref())
        .collect();
    assert_eq!(
        resources,
        [
            None,
            Some("example.com/nic"),
            Some("intel.com/sriov"),
            None,
            Some("intel.com/sriov")
        ]
    );
    assert!(crate::devices::needs_kubelet(&plan.attachments));
    // Nothing is assigned by the plan itself...
    assert_eq!(plan.attachments[2].device.id, None);
    assert!(
        plan.attachments[2]
            .capability_args
            .get("deviceID")
            .is_none()
    );
    // ...but the annotation's deviceID is offered, with a device-info file.
    let a = &plan.attachments[4];
    assert_eq!(a.device.id.as_deref(), Some("0000:01:00.1"));
    assert_eq!(a.capability_args["deviceID"], "0000:01:00.1");
    assert_eq!(
        a.capability_args["CNIDeviceInfoFile"],
        "/var/run/k8s.cni.cncf.io/devinfo/cni/default-sriov-c1_net4"
    );
    assert!(a.config.to_value().get("deviceID").is_none());

    let plain = pod("default", &[(NETWORKS_ANNOTATION, "macvlan")]);
    let c = conf(json!({}));
    let plan = run_plan(&c, Some(&plain), &nads).await.unwrap();
    assert!(!crate::devices::needs_kubelet(&plan.attachments));
}
