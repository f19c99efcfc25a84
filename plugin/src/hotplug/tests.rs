use super::*;
use crate::upkeep::survey::tests::attachment;
use serde_json::json;

fn conf(cache_dir: &Path) -> MultusNetConf {
    MultusNetConf::parse(
        json!({
            "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
            "cniDir": cache_dir,
            "delegates": [{"cniVersion":"1.0.0","name":"kindnet","type":"ptp"}]
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

fn request(
    command: DelegateCommand,
    container: &str,
    netns: &Path,
    ifname: &str,
) -> DelegateRequest {
    DelegateRequest {
        command,
        container_id: container.into(),
        netns: netns.display().to_string(),
        ifname: ifname.into(),
        // the pod of survey::tests::attachment
        cni_args: "K8S_POD_NAMESPACE=leak;K8S_POD_NAME=p1".into(),
        pod_namespace: "leak".into(),
        pod_name: "p1".into(),
        pod_uid: None,
        config: json!({"cniVersion":"1.0.0","name":"br","type":"bridge"}),
        network: "leak/br".into(),
        ips: vec![],
        mac: None,
        cni_args_map: None,
    }
}

#[test]
fn the_command_line_takes_the_namespace_and_the_cgroup() {
    let args = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let parsed =
        HotplugArgs::parse(&args(&["--mount-ns=/proc/9/ns/mnt", "--cgroup-of", "9"])).unwrap();
    assert_eq!(parsed.mount_ns, Some(PathBuf::from("/proc/9/ns/mnt")));
    assert_eq!(parsed.cgroup_of, Some(9));
    assert_eq!(HotplugArgs::parse(&[]).unwrap(), HotplugArgs::default());
    for bad in [&["--cgroup-of", "x"][..], &["--mount-ns"], &["add"]] {
        assert!(
            matches!(HotplugArgs::parse(&args(bad)), Err(HotplugError::Usage(_))),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn a_sandbox_not_set_up_through_multus_or_of_another_pod_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conf = conf(&dir.path().join("multus"));
    let cache = Cache::for_conf(&conf);
    let netns = dir.path().join("cni-1");
    std::fs::write(&netns, "").unwrap();
    let cluster = [attachment("kube-system/kindnet", "eth0", true)];
    cache.save("c1", Some(&netns), &cluster).unwrap();

    let err = add(
        &conf,
        &[],
        &request(DelegateCommand::Add, "none", &netns, "net1"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HotplugError::NoSandbox(_)), "{err}");
    assert_eq!(err.to_cni_error().code, 3);

    let mut other = request(DelegateCommand::Add, "c1", &netns, "net1");
    other.pod_name = "p2".into();
    other.cni_args = "K8S_POD_NAMESPACE=leak;K8S_POD_NAME=p2".into();
    let err = add(&conf, &[], &other).await.unwrap_err();
    assert!(err.to_string().contains("sandbox of pod leak/p1"), "{err}");

    let elsewhere = dir.path().join("cni-2");
    std::fs::write(&elsewhere, "").unwrap();
    let err = add(
        &conf,
        &[],
        &request(DelegateCommand::Add, "c1", &elsewhere, "net1"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HotplugError::OtherNetns { .. }), "{err}");

    let err = add(
        &conf,
        &[],
        &request(DelegateCommand::Add, "c1", &netns, "eth0"),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains(
            "interface eth0 of pod leak/p1 is already in use (attached to kube-system/kindnet)"
        ),
        "{err}"
    );

    let err = del(
        &conf,
        &[],
        &request(DelegateCommand::Del, "c1", &netns, "eth0"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HotplugError::ClusterInterface(_)), "{err}");
    // nothing changed
    assert_eq!(
        cache
            .load("c1", "eth0", "")
            .unwrap()
            .unwrap()
            .attachments
            .len(),
        1
    );
}

#[tokio::test]
async fn a_failed_del_keeps_the_attachment_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let conf = conf(&dir.path().join("multus"));
    let cache = Cache::for_conf(&conf);
    let netns = dir.path().join("cni-1");
    std::fs::write(&netns, "").unwrap();
    let mut added = attachment("leak/br", "net1", false);
    added.result = Some(json!({"cniVersion":"1.0.0"}));
    let both = [attachment("kube-system/kindnet", "eth0", true), added];
    cache.save("c1", Some(&netns), &both).unwrap();
    // the delegate's binary is missing from the (empty) CNI path
    let err = del(
        &conf,
        &[dir.path().to_path_buf()],
        &request(DelegateCommand::Del, "c1", &netns, "net1"),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("leak/br"), "{err}");
    assert_eq!(
        cache
            .load("c1", "eth0", "")
            .unwrap()
            .unwrap()
            .attachments
            .len(),
        2
    );
}
