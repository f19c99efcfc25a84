//! A Multus config without kubeconfig whose `delegates` list names several
//! real plugins (upstream's original usage): every delegate is attached,
//! the cluster network (`masterplugin`, else the first) on `CNI_IFNAME`, the
//! others on `net1`, `net2`, ...; CHECK, DEL, GC, a killed ADD and a failed
//! ADD cover all of them. Real `multus` binary, real plugins (bridge, ptp,
//! macvlan, host-local) in a real network namespace. Root only.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// A ptp network config with host-local IPAM keeping its state in `dir`.
fn ptp_conf(name: &str, subnet: &str, data_dir: &Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": name,
        "type": "ptp",
        "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data_dir}
    })
}

/// A Multus config with these inline delegates and no kubeconfig.
fn multus_conf(sb: &Sandbox, bin_dir: &Path, delegates: Vec<Value>) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "multus-cni-network",
        "type": "multus",
        "confDir": sb.path("multus.d"),
        "cniDir": sb.path("cache"),
        "binDir": bin_dir,
        "delegates": delegates
    })
}

/// The one address of `ifname` in the sandbox, as the kernel shows it.
fn address(sb: &Sandbox, ifname: &str) -> String {
    let addresses = sb
        .addresses(ifname)
        .unwrap_or_else(|| panic!("{ifname} missing; links: {:?}", sb.links()));
    assert_eq!(addresses.len(), 1, "{ifname}: {addresses:?}");
    addresses[0].clone()
}

/// Routes of the root namespace's main table inside `subnet` (ptp adds a
/// host route per pod address).
fn host_routes_in(subnet: &str) -> usize {
    let out = sh(&["ip", "-j", "route", "show", "root", subnet]);
    serde_json::from_str::<Value>(&out)
        .unwrap_or_else(|_| json!([]))
        .as_array()
        .map_or(0, Vec::len)
}

/// The `(ifname, cluster network)` pairs a cache file lists, in order.
fn cached_interfaces(path: &Path) -> Vec<(String, bool)> {
    let entries: Vec<Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    entries
        .iter()
        .map(|e| {
            (
                e["multusRs"]["ifname"].as_str().unwrap().to_owned(),
                e["multusRs"]["clusterNetwork"] == true,
            )
        })
        .collect()
}

fn stdout(o: &Outcome) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Waits (bounded) until `path` exists.
fn wait_for(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes an executable shell script.
fn script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn three_inline_delegates_are_all_attached_checked_and_deleted() {
    if !multus_e2e::root_or_skip("three_inline_delegates_are_all_attached_checked_and_deleted") {
        return;
    }
    let mut sb = Sandbox::new();
    let data = sb.path("ipam");
    let (br0, br2) = (sb.bridge(), sb.bridge());
    let conf = multus_conf(
        &sb,
        Path::new("/nonexistent/bin"),
        vec![
            bridge_conf("first", &br0, "10.97.1.0/24", &data),
            ptp_conf("second", "10.97.2.0/24", &data),
            bridge_conf("third", &br2, "10.97.3.0/24", &data),
        ],
    );
    let netns = sb.netns_path();

    let add = multus("ADD", "inl1", Some(&netns), &conf);
    assert!(add.success, "ADD failed: {}\n{}", stdout(&add), add.stderr);
    let result = add.json();

    // The kernel: one interface per delegate, each with its subnet's address.
    let eth0 = address(&sb, "eth0");
    let net1 = address(&sb, "net1");
    let net2 = address(&sb, "net2");
    assert!(eth0.starts_with("10.97.1."), "{eth0}");
    assert!(net1.starts_with("10.97.2."), "{net1}");
    assert!(net2.starts_with("10.97.3."), "{net2}");
    let mut links = sb.links();
    links.sort();
    assert_eq!(links, ["eth0", "lo", "net1", "net2"]);
    assert_eq!(allocations(&data).len(), 3);
    assert_eq!(host_routes_in("10.97.2.0/24"), 1, "ptp's host route");

    // The result returned is the first delegate's (eth0's) only.
    assert_eq!(result["ips"].as_array().unwrap().len(), 1, "{result}");
    assert_eq!(result["ips"][0]["address"], eth0.as_str(), "{result}");
    let sandbox_ifaces: Vec<&str> = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i.get("sandbox").is_some())
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(sandbox_ifaces, ["eth0"], "{result}");

    let cache = sb.path("cache/inl1");
    assert_eq!(
        cached_interfaces(&cache),
        [
            ("eth0".to_owned(), true),
            ("net1".to_owned(), false),
            ("net2".to_owned(), false)
        ]
    );

    let check = multus("CHECK", "inl1", Some(&netns), &conf);
    assert!(
        check.success,
        "CHECK failed: {}\n{}",
        stdout(&check),
        check.stderr
    );
    // CHECK really checks every delegate: without net2, it fails naming it.
    let ip_netns = |args: &[&str]| {
        let mut all = vec!["ip", "-n", sb.netns.as_str()];
        all.extend_from_slice(args);
        sh(&all);
    };
    ip_netns(&["link", "set", "net2", "down"]);
    ip_netns(&["link", "set", "net2", "name", "moved2"]);
    let check = multus("CHECK", "inl1", Some(&netns), &conf);
    assert!(!check.success, "CHECK passed with net2 gone");
    let msg = check.json()["msg"].as_str().unwrap().to_owned();
    assert!(msg.starts_with("third: "), "names the delegate: {msg}");
    ip_netns(&["link", "set", "moved2", "name", "net2"]);
    ip_netns(&["link", "set", "net2", "up"]);

    let del = multus("DEL", "inl1", Some(&netns), &conf);
    assert!(del.success, "DEL failed: {}\n{}", stdout(&del), del.stderr);
    assert_eq!(sb.links(), ["lo"], "every interface removed");
    assert!(allocations(&data).is_empty(), "every IP released");
    assert_eq!(
        host_routes_in("10.97.2.0/24"),
        0,
        "ptp's host route removed"
    );
    assert!(!cache.exists(), "cache removed");
}

#[test]
fn masterplugin_delegate_gets_cni_ifname_and_returns_its_result() {
    if !multus_e2e::root_or_skip("masterplugin_delegate_gets_cni_ifname_and_returns_its_result") {
        return;
    }
    let mut sb = Sandbox::new();
    let data = sb.path("ipam");
    let (br0, br2) = (sb.bridge(), sb.bridge());
    let mut master = ptp_conf("master", "10.97.5.0/24", &data);
    master["masterplugin"] = json!(true);
    let conf = multus_conf(
        &sb,
        Path::new("/nonexistent/bin"),
        vec![
            bridge_conf("before", &br0, "10.97.4.0/24", &data),
            master,
            bridge_conf("after", &br2, "10.97.6.0/24", &data),
        ],
    );
    let netns = sb.netns_path();

    let add = multus("ADD", "inl2", Some(&netns), &conf);
    assert!(add.success, "ADD failed: {}\n{}", stdout(&add), add.stderr);
    let result = add.json();
    let eth0 = address(&sb, "eth0");
    let net1 = address(&sb, "net1");
    let net2 = address(&sb, "net2");
    assert!(eth0.starts_with("10.97.5."), "the master is eth0: {eth0}");
    assert!(net1.starts_with("10.97.4."), "the first is net1: {net1}");
    assert!(net2.starts_with("10.97.6."), "the third is net2: {net2}");
    assert_eq!(result["ips"].as_array().unwrap().len(), 1, "{result}");
    assert_eq!(result["ips"][0]["address"], eth0.as_str(), "{result}");
    // In list order, the master second.
    assert_eq!(
        cached_interfaces(&sb.path("cache/inl2")),
        [
            ("net1".to_owned(), false),
            ("eth0".to_owned(), true),
            ("net2".to_owned(), false)
        ]
    );

    let check = multus("CHECK", "inl2", Some(&netns), &conf);
    assert!(check.success, "CHECK: {}\n{}", stdout(&check), check.stderr);
    let del = multus("DEL", "inl2", Some(&netns), &conf);
    assert!(del.success, "DEL failed: {}\n{}", stdout(&del), del.stderr);
    assert_eq!(sb.links(), ["lo"]);
    assert!(allocations(&data).is_empty());
    assert_eq!(
        host_routes_in("10.97.5.0/24"),
        0,
        "ptp's host route removed"
    );
    assert!(!sb.path("cache/inl2").exists());
}

#[test]
fn del_after_multus_is_killed_during_the_second_delegate_leaves_nothing() {
    if !multus_e2e::root_or_skip(
        "del_after_multus_is_killed_during_the_second_delegate_leaves_nothing",
    ) {
        return;
    }
    let mut sb = Sandbox::new();
    let data = sb.path("ipam");
    let (br0, br2) = (sb.bridge(), sb.bridge());
    let bin = sb.path("bin");
    let signals = sb.path("signals");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&signals).unwrap();
    let cache_file = sb.path("cache/inl3");
    // First delegate: keeps a copy of the cache as it is when it starts.
    script(
        &bin.join("bridge-spy"),
        &format!(
            "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] && cp '{}' '{}'\nexec {CNI_BIN}/bridge\n",
            cache_file.display(),
            signals.join("cache-at-first-add").display()
        ),
    );
    // Second delegate: on ADD tells the test it runs, waits until allowed,
    // then does the real ADD (multus is dead by then) and reports it is done.
    script(
        &bin.join("ptp-slow"),
        &format!(
            "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] || exec {CNI_BIN}/ptp\n: > '{s}/started'\nwhile [ ! -e '{s}/go' ]; do sleep 0.02; done\n{CNI_BIN}/ptp\necho $? > '{s}/done'\n",
            s = signals.display()
        ),
    );
    let mut first = bridge_conf("first", &br0, "10.97.7.0/24", &data);
    first["type"] = json!("bridge-spy");
    let mut second = ptp_conf("second", "10.97.8.0/24", &data);
    second["type"] = json!("ptp-slow");
    let conf = multus_conf(
        &sb,
        &bin,
        vec![
            first,
            second,
            bridge_conf("third", &br2, "10.97.9.0/24", &data),
        ],
    );
    let netns = sb.netns_path();

    let mut child = spawn_multus("ADD", "inl3", Some(&netns), &conf);
    // Make sure the child never outlives the test, whatever happens.
    struct Reap<'a>(&'a mut std::process::Child);
    impl Drop for Reap<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let reap = Reap(&mut child);
    wait_for(&signals.join("started"), "the second delegate to start");

    // The cache listed every planned attachment before the first delegate ran.
    assert_eq!(
        cached_interfaces(&signals.join("cache-at-first-add")),
        [
            ("eth0".to_owned(), true),
            ("net1".to_owned(), false),
            ("net2".to_owned(), false)
        ]
    );
    assert!(sb.addresses("eth0").is_some(), "the first delegate ran");

    // SIGKILL multus while the second delegate runs.
    reap.0.kill().unwrap();
    let status = reap.0.wait().unwrap();
    assert!(!status.success());
    drop(reap);
    // The orphaned delegate finishes its ADD: the worst case to clean up.
    std::fs::write(signals.join("go"), b"").unwrap();
    wait_for(&signals.join("done"), "the second delegate to finish");
    let net1 = address(&sb, "net1");
    assert!(net1.starts_with("10.97.8."), "{net1}");
    assert_eq!(allocations(&data).len(), 2);
    assert!(cache_file.exists(), "the cache survives the kill");

    // The runtime's DEL with the same container ID cleans up everything.
    let del = multus("DEL", "inl3", Some(&netns), &conf);
    assert!(del.success, "DEL failed: {}\n{}", stdout(&del), del.stderr);
    assert_eq!(sb.links(), ["lo"], "no link left");
    assert!(sb.addresses("eth0").is_none() && sb.addresses("net1").is_none());
    assert!(
        allocations(&data).is_empty(),
        "no host-local allocation left"
    );
    assert_eq!(host_routes_in("10.97.8.0/24"), 0, "no ptp host route left");
    assert!(!cache_file.exists(), "no cache entry left");
}

#[test]
fn failing_third_delegate_rolls_back_the_first_two() {
    if !multus_e2e::root_or_skip("failing_third_delegate_rolls_back_the_first_two") {
        return;
    }
    let mut sb = Sandbox::new();
    let data = sb.path("ipam");
    let br0 = sb.bridge();
    let conf = multus_conf(
        &sb,
        Path::new("/nonexistent/bin"),
        vec![
            bridge_conf("first", &br0, "10.97.10.0/24", &data),
            ptp_conf("second", "10.97.11.0/24", &data),
            // ADD fails: "lo" exists and is not a bridge (its DEL succeeds).
            bridge_conf("third", "lo", "10.97.12.0/24", &data),
        ],
    );
    let netns = sb.netns_path();
    let add = multus("ADD", "inl4", Some(&netns), &conf);
    assert!(!add.success, "ADD succeeded with a broken third delegate");
    let err = add.json();
    let msg = err["msg"].as_str().unwrap();
    assert!(msg.starts_with("third: "), "names the attachment: {msg}");
    assert!(
        msg.contains("not a bridge"),
        "keeps the plugin's message: {msg}"
    );
    assert_eq!(sb.links(), ["lo"], "eth0 and net1 rolled back");
    assert!(allocations(&data).is_empty(), "IPs released");
    assert!(!sb.path("cache/inl4").exists(), "no cache left");
    assert_eq!(host_routes_in("10.97.11.0/24"), 0, "no ptp host route");
}

#[test]
fn gc_releases_every_inline_delegate_of_a_stale_container() {
    if !multus_e2e::root_or_skip("gc_releases_every_inline_delegate_of_a_stale_container") {
        return;
    }
    let mut sb = Sandbox::new();
    let data = sb.path("ipam");
    let (br0, br2) = (sb.bridge(), sb.bridge());
    let conf = multus_conf(
        &sb,
        Path::new("/nonexistent/bin"),
        vec![
            bridge_conf("first", &br0, "10.97.13.0/24", &data),
            ptp_conf("second", "10.97.14.0/24", &data),
            bridge_conf("third", &br2, "10.97.15.0/24", &data),
        ],
    );
    let add = multus("ADD", "inl5", Some(&sb.netns_path()), &conf);
    assert!(add.success, "{}\n{}", stdout(&add), add.stderr);
    assert_eq!(allocations(&data).len(), 3);
    let mut gc_conf = conf.clone();
    gc_conf["cni.dev/valid-attachments"] = json!([]);
    let gc = multus("GC", "", None, &gc_conf);
    assert!(gc.success, "{}\n{}", stdout(&gc), gc.stderr);
    assert!(
        allocations(&data).is_empty(),
        "every delegate's IP released: {:?}",
        allocations(&data)
    );
    assert!(!sb.path("cache/inl5").exists());
}
