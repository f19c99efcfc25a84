//! ADD/CHECK/DEL/GC of the `multus` binary with real plugins (bridge,
//! host-local) in a real network namespace. Root only.

mod common;

use common::*;
use serde_json::{Value, json};

/// A Multus config with an inline bridge cluster network and a file-based
/// default network (a second bridge in the Multus conf dir).
fn setup(sb: &mut Sandbox) -> (Value, std::path::PathBuf) {
    let data = sb.path("ipam");
    let conf_dir = sb.path("multus.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let (br0, br1) = (sb.bridge(), sb.bridge());
    std::fs::write(
        conf_dir.join("20-extra.conf"),
        bridge_conf("extra", &br1, "10.99.2.0/24", &data).to_string(),
    )
    .unwrap();
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "multus-cni-network",
        "type": "multus",
        "confDir": conf_dir,
        "cniDir": sb.path("cache"),
        "binDir": "/nonexistent/bin",
        "defaultNetworks": ["extra"],
        "delegates": [bridge_conf("cluster", &br0, "10.99.1.0/24", &data)]
    });
    (conf, data)
}

#[test]
fn add_check_del_with_real_plugins() {
    if !multus_e2e::root_or_skip("add_check_del_with_real_plugins") {
        return;
    }
    let mut sb = Sandbox::new();
    let (conf, data) = setup(&mut sb);
    let netns = sb.netns_path();

    let add = multus("ADD", "ctr1", Some(&netns), &conf);
    assert!(add.success, "ADD failed: {:?}\n{}", add.json(), add.stderr);
    let result = add.json();
    assert_eq!(result["cniVersion"], "1.0.0");
    // The result is the cluster network's: eth0 with a 10.99.1.x address.
    let ip = result["ips"][0]["address"].as_str().unwrap();
    assert!(ip.starts_with("10.99.1."), "{result}");

    // What the kernel shows: eth0 and net1 with addresses from each subnet.
    let eth0 = sb.addresses("eth0").expect("eth0 exists");
    assert_eq!(eth0, [ip.to_owned()]);
    let net1 = sb.addresses("net1").expect("net1 exists");
    assert_eq!(net1.len(), 1);
    assert!(net1[0].starts_with("10.99.2."), "{net1:?}");
    assert_eq!(allocations(&data).len(), 2);
    assert!(sb.path("cache/ctr1").is_file(), "cache written");

    let check = multus("CHECK", "ctr1", Some(&netns), &conf);
    assert!(
        check.success,
        "CHECK failed: {}\n{}",
        String::from_utf8_lossy(&check.stdout),
        check.stderr
    );

    let del = multus("DEL", "ctr1", Some(&netns), &conf);
    assert!(
        del.success,
        "DEL failed: {}",
        String::from_utf8_lossy(&del.stdout)
    );
    assert!(del.stdout.is_empty(), "DEL prints nothing on success");
    assert_eq!(sb.links(), ["lo"], "both interfaces removed");
    assert!(allocations(&data).is_empty(), "IPs released");
    assert!(!sb.path("cache/ctr1").exists(), "cache removed");

    // DEL is idempotent.
    let again = multus("DEL", "ctr1", Some(&netns), &conf);
    assert!(
        again.success,
        "second DEL: {}",
        String::from_utf8_lossy(&again.stdout)
    );
}

#[test]
fn failed_add_rolls_back_everything_and_names_the_attachment() {
    if !multus_e2e::root_or_skip("failed_add_rolls_back_everything_and_names_the_attachment") {
        return;
    }
    let mut sb = Sandbox::new();
    let (conf, data) = setup(&mut sb);
    std::fs::write(
        sb.path("multus.d/20-extra.conf"),
        json!({"cniVersion":"1.0.0","name":"extra","type":"no-such-plugin"}).to_string(),
    )
    .unwrap();
    let netns = sb.netns_path();
    let add = multus("ADD", "ctr2", Some(&netns), &conf);
    assert!(!add.success);
    let err = add.json();
    assert_eq!(err["code"], 50, "{err}");
    let msg = err["msg"].as_str().unwrap();
    assert!(msg.contains("extra"), "names the attachment: {msg}");
    assert!(msg.contains("no-such-plugin"), "names the plugin: {msg}");
    assert_eq!(sb.links(), ["lo"], "eth0 rolled back");
    assert!(allocations(&data).is_empty(), "cluster IP released");
    assert!(!sb.path("cache/ctr2").exists(), "no cache left");
}

#[test]
fn corrupt_cache_makes_del_fail_instead_of_leaking() {
    if !multus_e2e::root_or_skip("corrupt_cache_makes_del_fail_instead_of_leaking") {
        return;
    }
    let mut sb = Sandbox::new();
    let (conf, _) = setup(&mut sb);
    std::fs::create_dir_all(sb.path("cache")).unwrap();
    std::fs::write(sb.path("cache/ctr3"), b"[{\"Bytes\": 42").unwrap();
    let del = multus("DEL", "ctr3", Some(&sb.netns_path()), &conf);
    assert!(!del.success, "a corrupt cache must not be a silent success");
    let err = del.json();
    assert_eq!(err["code"], 102);
    assert!(err["msg"].as_str().unwrap().contains("ctr3"), "{err}");
    assert!(sb.path("cache/ctr3").exists(), "the evidence is kept");
}

#[test]
fn del_cleans_up_a_pod_set_up_by_upstream_multus() {
    if !multus_e2e::root_or_skip("del_cleans_up_a_pod_set_up_by_upstream_multus") {
        return;
    }
    let mut sb = Sandbox::new();
    let (conf, data) = setup(&mut sb);
    let netns = sb.netns_path();
    let add = multus("ADD", "ctr4", Some(&netns), &conf);
    assert!(add.success, "{}", add.stderr);
    // Rewrite the cache as upstream Multus writes it (no multusRs data).
    let path = sb.path("cache/ctr4");
    let mut entries: Vec<Value> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for e in &mut entries {
        e.as_object_mut().unwrap().remove("multusRs");
    }
    std::fs::write(&path, serde_json::to_vec(&entries).unwrap()).unwrap();
    let del = multus("DEL", "ctr4", Some(&netns), &conf);
    assert!(del.success, "{}", String::from_utf8_lossy(&del.stdout));
    assert_eq!(sb.links(), ["lo"]);
    assert!(allocations(&data).is_empty());
}

#[test]
fn gc_releases_attachments_the_runtime_no_longer_has() {
    if !multus_e2e::root_or_skip("gc_releases_attachments_the_runtime_no_longer_has") {
        return;
    }
    let mut sb = Sandbox::new();
    let (conf, data) = setup(&mut sb);
    let netns = sb.netns_path();
    let other = Sandbox::new();
    assert!(multus("ADD", "keep", Some(&netns), &conf).success);
    assert!(multus("ADD", "stale", Some(&other.netns_path()), &conf).success);
    assert_eq!(allocations(&data).len(), 4);
    let mut gc_conf = conf.clone();
    gc_conf["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    let gc = multus("GC", "", None, &gc_conf);
    assert!(gc.success, "{}", String::from_utf8_lossy(&gc.stdout));
    assert_eq!(
        allocations(&data).len(),
        2,
        "the stale container's IPs are released"
    );
    assert!(sb.path("cache/keep").exists());
    assert!(!sb.path("cache/stale").exists());
    assert!(sb.addresses("net1").is_some(), "the valid pod is untouched");
    assert!(multus("DEL", "keep", Some(&netns), &conf).success);
}

#[test]
fn existing_interface_name_is_refused_before_any_delegate_runs() {
    if !multus_e2e::root_or_skip("existing_interface_name_is_refused_before_any_delegate_runs") {
        return;
    }
    let mut sb = Sandbox::new();
    let (conf, data) = setup(&mut sb);
    let peer = format!("mtp{}", unique());
    sh(&[
        "ip", "link", "add", "net1", "netns", &sb.netns, "type", "veth", "peer", "name", &peer,
    ]);
    let add = multus("ADD", "ctr5", Some(&sb.netns_path()), &conf);
    assert!(!add.success);
    assert!(
        add.json()["msg"].as_str().unwrap().contains("net1"),
        "{:?}",
        add.json()
    );
    assert!(allocations(&data).is_empty());
    assert!(sb.addresses("eth0").is_none());
}
