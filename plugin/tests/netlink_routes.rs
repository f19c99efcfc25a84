//! Default-route handling against a real kernel: each test builds a pod-like
//! network namespace with veth interfaces, runs `apply_default_routes` and
//! checks what `ip route` shows. Needs root (skipped otherwise, failing under
//! CI=true). Every test removes what it created, also when it fails.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use multus_config::cni::ip::IpFamily;
use multus_plugin::netns::{NetnsError, link_exists, link_names, run_in_netns};
use multus_plugin::route::{AppliedRoutes, DefaultRouteRequest, RouteError, apply_default_routes};

/// A default route (or next hop) as the kernel shows it: (dev, gateway).
type DefaultRoute = (String, Option<IpAddr>);

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Runs a command, panicking with its output when it fails.
fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace standing in for a pod, with veth interfaces whose
/// host ends stay in the test's namespace. Dropping it deletes everything.
struct Pod {
    name: String,
    host_ends: Vec<String>,
}

impl Pod {
    /// An empty namespace with `lo` up.
    fn new() -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pod = Self {
            name: format!("multus-test-{}-{n}", std::process::id()),
            host_ends: Vec::new(),
        };
        run(&["ip", "netns", "add", &pod.name]);
        pod.ip(&["link", "set", "lo", "up"]);
        pod
    }

    /// `eth0` (10.10.1.2/24, fd00:1::2/64) and `net1` (10.10.2.2/24,
    /// fd00:2::2/64), no routes of their own.
    fn eth0_and_net1() -> Self {
        let mut pod = Self::new();
        pod.add_interface("eth0", 1);
        pod.add_interface("net1", 2);
        pod
    }

    /// The usual test pod: [`Pod::eth0_and_net1`] with IPv4 and IPv6
    /// default routes via `eth0`.
    fn two_interfaces() -> Self {
        let pod = Self::eth0_and_net1();
        pod.ip_words("route add default via 10.10.1.1 dev eth0");
        pod.ip_words("-6 route add default via fd00:1::1 dev eth0");
        pod
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    /// `ip -n <pod> args...`
    fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "-n", self.name.as_str()];
        full.extend_from_slice(args);
        run(&full)
    }

    /// `ip -n <pod> <words>`, the words separated by white space.
    fn ip_words(&self, words: &str) -> String {
        self.ip(&words.split_whitespace().collect::<Vec<_>>())
    }

    /// Adds `ifname` as the pod end of a veth pair, up, with 10.10.<subnet>.2/24
    /// and fd00:<subnet>::2/64.
    fn add_interface(&mut self, ifname: &str, subnet: u8) {
        let host = format!(
            "mh{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        assert!(host.len() <= 15, "{host} is too long for an interface name");
        run(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", ifname, "netns", &self.name,
        ]);
        self.host_ends.push(host.clone());
        run(&["ip", "link", "set", &host, "up"]);
        self.ip(&["link", "set", ifname, "up"]);
        self.ip(&[
            "addr",
            "add",
            &format!("10.10.{subnet}.2/24"),
            "dev",
            ifname,
        ]);
        self.ip(&[
            "-6",
            "addr",
            "add",
            &format!("fd00:{subnet}::2/64"),
            "dev",
            ifname,
            "nodad",
        ]);
    }

    /// The main table's IPv4 and IPv6 default routes ([`Pod::default_routes`]).
    fn default_routes_v4_v6(&self) -> (Vec<DefaultRoute>, Vec<DefaultRoute>) {
        (
            self.default_routes(IpFamily::V4),
            self.default_routes(IpFamily::V6),
        )
    }

    /// The main table's default routes of `family` as the kernel shows them:
    /// (dev, gateway) per route, or per next hop of a multipath route.
    fn default_routes(&self, family: IpFamily) -> Vec<DefaultRoute> {
        let flag = match family {
            IpFamily::V4 => "-4",
            IpFamily::V6 => "-6",
        };
        let text = self.ip(&[flag, "-j", "route", "show", "default"]);
        let routes: Vec<serde_json::Value> = if text.trim().is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip -j output {text:?}: {e}"))
        };
        let hop = |v: &serde_json::Value| {
            (
                v["dev"].as_str().unwrap_or_default().to_owned(),
                v["gateway"].as_str().map(|g| g.parse().unwrap()),
            )
        };
        let mut out = Vec::new();
        for route in &routes {
            assert_eq!(route["dst"], "default", "{route}");
            match route["nexthops"].as_array() {
                Some(hops) => out.extend(hops.iter().map(hop)),
                None => out.push(hop(route)),
            }
        }
        out
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        // Best effort, never panicking while a test unwinds.
        for host in &self.host_ends {
            let _ = Command::new("ip").args(["link", "del", host]).output();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn request(ifname: &str, gateways: &[&str]) -> DefaultRouteRequest {
    DefaultRouteRequest {
        ifname: ifname.to_owned(),
        gateways: gateways.iter().map(|g| ip(g)).collect(),
    }
}

fn via(dev: &str, gw: &str) -> DefaultRoute {
    (dev.to_owned(), Some(ip(gw)))
}

/// Applies `requests` again and checks that nothing changes.
fn assert_idempotent(pod: &Pod, requests: &[DefaultRouteRequest]) {
    let before = pod.default_routes_v4_v6();
    let again = apply_default_routes(&pod.path(), requests).unwrap();
    assert!(again.changed_nothing(), "second apply changed {again:?}");
    let after = pod.default_routes_v4_v6();
    assert_eq!(before, after);
}

#[test]
fn ipv4_gateway_moves_the_ipv4_default_route() {
    if !multus_e2e::root_or_skip("ipv4_gateway_moves_the_ipv4_default_route") {
        return;
    }
    let pod = Pod::two_interfaces();
    let requests = [request("net1", &["10.10.2.1"])];
    let applied = apply_default_routes(&pod.path(), &requests).unwrap();

    assert_eq!(
        pod.default_routes_v4_v6(),
        (
            vec![via("net1", "10.10.2.1")],
            vec![via("eth0", "fd00:1::1")]
        )
    );
    assert_eq!(
        applied,
        AppliedRoutes {
            removed: vec![("eth0".into(), IpFamily::V4)],
            added: vec![("net1".into(), ip("10.10.2.1"))],
            kept: vec![],
        }
    );
    assert_idempotent(&pod, &requests);
    let again = apply_default_routes(&pod.path(), &requests).unwrap();
    assert_eq!(again.kept, vec![("net1".to_owned(), ip("10.10.2.1"))]);
}

#[test]
fn ipv6_gateway_moves_the_ipv6_default_route() {
    if !multus_e2e::root_or_skip("ipv6_gateway_moves_the_ipv6_default_route") {
        return;
    }
    let pod = Pod::two_interfaces();
    let requests = [request("net1", &["fd00:2::1"])];
    let applied = apply_default_routes(&pod.path(), &requests).unwrap();

    assert_eq!(
        pod.default_routes_v4_v6(),
        (
            vec![via("eth0", "10.10.1.1")],
            vec![via("net1", "fd00:2::1")]
        )
    );
    assert_eq!(applied.removed, vec![("eth0".to_owned(), IpFamily::V6)]);
    assert_eq!(applied.added, vec![("net1".to_owned(), ip("fd00:2::1"))]);
    assert_idempotent(&pod, &requests);
}

#[test]
fn dual_stack_on_one_interface() {
    if !multus_e2e::root_or_skip("dual_stack_on_one_interface") {
        return;
    }
    let pod = Pod::two_interfaces();
    // net1 also has a default route of its own plugin, via another gateway.
    pod.ip_words("route add default via 10.10.2.254 dev net1 metric 50");
    let requests = [request("net1", &["10.10.2.1", "fd00:2::1"])];
    let applied = apply_default_routes(&pod.path(), &requests).unwrap();

    assert_eq!(
        pod.default_routes_v4_v6(),
        (
            vec![via("net1", "10.10.2.1")],
            vec![via("net1", "fd00:2::1")]
        )
    );
    let mut removed = applied.removed.clone();
    removed.sort();
    assert_eq!(
        removed,
        vec![
            ("eth0".to_owned(), IpFamily::V4),
            ("eth0".to_owned(), IpFamily::V6),
            ("net1".to_owned(), IpFamily::V4),
        ]
    );
    assert_idempotent(&pod, &requests);
}

#[test]
fn dual_stack_over_two_interfaces() {
    if !multus_e2e::root_or_skip("dual_stack_over_two_interfaces") {
        return;
    }
    let mut pod = Pod::two_interfaces();
    pod.add_interface("net2", 3);
    let requests = [
        request("net1", &["10.10.2.1"]),
        request("net2", &["fd00:3::1"]),
    ];
    apply_default_routes(&pod.path(), &requests).unwrap();

    assert_eq!(
        pod.default_routes_v4_v6(),
        (
            vec![via("net1", "10.10.2.1")],
            vec![via("net2", "fd00:3::1")]
        )
    );
    assert_idempotent(&pod, &requests);
}

#[test]
fn empty_request_keeps_its_default_route_and_removes_the_others() {
    if !multus_e2e::root_or_skip("empty_request_keeps_its_default_route_and_removes_the_others") {
        return;
    }
    let pod = Pod::eth0_and_net1();
    pod.ip_words("route add default via 10.10.1.1 dev eth0 metric 100");
    pod.ip_words("-6 route add default via fd00:1::1 dev eth0");
    pod.ip_words("route add default via 10.10.2.1 dev net1 metric 200");

    let requests = [request("net1", &[])];
    let applied = apply_default_routes(&pod.path(), &requests).unwrap();

    // net1 has an IPv4 default route: it stays, eth0's goes. net1 has no
    // IPv6 default route: eth0's stays.
    assert_eq!(
        pod.default_routes_v4_v6(),
        (
            vec![via("net1", "10.10.2.1")],
            vec![via("eth0", "fd00:1::1")]
        )
    );
    assert_eq!(applied.removed, vec![("eth0".to_owned(), IpFamily::V4)]);
    assert!(applied.added.is_empty() && applied.kept.is_empty());
    assert_idempotent(&pod, &requests);
}

#[test]
fn multipath_default_route_keeps_the_requested_next_hop() {
    if !multus_e2e::root_or_skip("multipath_default_route_keeps_the_requested_next_hop") {
        return;
    }
    let pod = Pod::eth0_and_net1();
    pod.ip_words("route add default nexthop via 10.10.1.1 dev eth0 nexthop via 10.10.2.1 dev net1");
    pod.ip_words(
        "-6 route add default nexthop via fd00:1::1 dev eth0 nexthop via fd00:2::1 dev net1",
    );
    assert_eq!(pod.default_routes(IpFamily::V4).len(), 2);

    // IPv4: the requested hop is there. IPv6: keep net1's hop (empty request).
    let requests = [request("net1", &["10.10.2.1"]), request("net1", &[])];
    let applied = apply_default_routes(&pod.path(), &requests).unwrap();

    assert_eq!(
        pod.default_routes_v4_v6(),
        (
            vec![via("net1", "10.10.2.1")],
            vec![via("net1", "fd00:2::1")]
        )
    );
    let mut removed = applied.removed.clone();
    removed.sort();
    assert_eq!(
        removed,
        vec![
            ("eth0".to_owned(), IpFamily::V4),
            ("eth0".to_owned(), IpFamily::V6)
        ]
    );
    assert!(applied.added.is_empty(), "{applied:?}");
    assert_eq!(applied.kept, vec![("net1".to_owned(), ip("10.10.2.1"))]);
    assert_idempotent(&pod, &requests);
}

#[test]
fn unreachable_gateway_is_reported_with_what_was_done() {
    if !multus_e2e::root_or_skip("unreachable_gateway_is_reported_with_what_was_done") {
        return;
    }
    let pod = Pod::two_interfaces();
    let err = apply_default_routes(&pod.path(), &[request("net1", &["192.168.77.1"])]).unwrap_err();
    let msg = err.to_string();
    let RouteError::Add {
        ifname,
        gateway,
        done,
        ..
    } = &err
    else {
        panic!("expected an Add error, got {err:?}");
    };
    assert_eq!((ifname.as_str(), *gateway), ("net1", ip("192.168.77.1")));
    assert!(msg.contains("default via 192.168.77.1 dev net1"), "{msg}");
    assert!(msg.contains(&pod.name), "{msg} should name the namespace");
    assert!(
        msg.contains("already done before this error: deleted the IPv4 default route of eth0"),
        "{msg}"
    );
    // Deletions come first: eth0's IPv4 default route is gone, as reported.
    assert_eq!(done.removed, vec![("eth0".to_owned(), IpFamily::V4)]);
    assert!(pod.default_routes(IpFamily::V4).is_empty());
    assert_eq!(
        pod.default_routes(IpFamily::V6),
        vec![via("eth0", "fd00:1::1")]
    );
}

#[test]
fn unknown_interface_changes_nothing() {
    if !multus_e2e::root_or_skip("unknown_interface_changes_nothing") {
        return;
    }
    let pod = Pod::two_interfaces();
    let err = apply_default_routes(&pod.path(), &[request("net7", &["10.10.2.1"])]).unwrap_err();
    assert!(
        matches!(&err, RouteError::UnknownInterface { ifname, .. } if ifname == "net7"),
        "{err:?}"
    );
    assert!(err.to_string().contains("no route was changed"), "{err}");
    assert_eq!(
        pod.default_routes_v4_v6(),
        (
            vec![via("eth0", "10.10.1.1")],
            vec![via("eth0", "fd00:1::1")]
        )
    );
}

#[test]
fn missing_netns_is_named_in_the_error() {
    if !multus_e2e::root_or_skip("missing_netns_is_named_in_the_error") {
        return;
    }
    let path = PathBuf::from(format!(
        "/var/run/netns/multus-test-{}-missing",
        std::process::id()
    ));
    let err = apply_default_routes(&path, &[request("net1", &["10.10.2.1"])]).unwrap_err();
    assert!(
        matches!(err, RouteError::Netns(NetnsError::NotFound { .. })),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    let err = link_exists(&path, "eth0").unwrap_err();
    assert!(matches!(err, NetnsError::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn link_exists_and_link_names_see_the_pod_interfaces() {
    if !multus_e2e::root_or_skip("link_exists_and_link_names_see_the_pod_interfaces") {
        return;
    }
    let pod = Pod::two_interfaces();
    let path = pod.path();
    assert!(link_exists(&path, "eth0").unwrap());
    assert!(link_exists(&path, "net1").unwrap());
    assert!(link_exists(&path, "lo").unwrap());
    assert!(!link_exists(&path, "net9").unwrap());
    // Host-side names are not in the pod.
    assert!(!link_exists(&path, &pod.host_ends[0]).unwrap());
    let mut names = link_names(&path).unwrap();
    names.sort();
    assert_eq!(names, vec!["eth0", "lo", "net1"]);

    // /proc/<pid>/ns/net works too: a process of the pod sees the same links.
    let mut sleeper = Command::new("ip")
        .args(["netns", "exec", &pod.name, "sleep", "30"])
        .spawn()
        .unwrap();
    let proc_path = PathBuf::from(format!("/proc/{}/ns/net", sleeper.id()));
    // `ip netns exec` enters the namespace before exec'ing sleep; wait for it.
    let target = std::fs::metadata(&path).unwrap().ino();
    for _ in 0..200 {
        if std::fs::metadata(&proc_path).map(|m| m.ino()).ok() == Some(target) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let via_proc = link_exists(&proc_path, "net1");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(via_proc.unwrap());
}

/// The inode of the current thread's network namespace.
fn current_thread_netns() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
}

#[test]
fn run_in_netns_never_moves_the_caller() {
    if !multus_e2e::root_or_skip("run_in_netns_never_moves_the_caller") {
        return;
    }
    let pod = Pod::new();
    let path = pod.path();
    let target = std::fs::metadata(&path).unwrap().ino();
    let before = current_thread_netns();
    assert_ne!(before, target);

    let inside = run_in_netns(&path, || Ok(current_thread_netns())).unwrap();
    assert_eq!(inside, target);
    assert_eq!(current_thread_netns(), before);

    // Errors and panics of the closure come back; the caller stays put.
    let err = run_in_netns(&path, || -> Result<(), NetnsError> {
        Err(NetnsError::NotANetns {
            netns: "x".into(),
            reason: "test".into(),
        })
    })
    .unwrap_err();
    assert!(matches!(err, NetnsError::NotANetns { .. }));
    let err = run_in_netns(&path, || -> Result<(), NetnsError> { panic!("boom") }).unwrap_err();
    assert!(
        matches!(&err, NetnsError::Panicked { message, .. } if message == "boom"),
        "{err:?}"
    );
    assert!(err.to_string().contains(&pod.name));
    assert_eq!(current_thread_netns(), before);
}

#[test]
fn no_requests_touch_nothing() {
    if !multus_e2e::root_or_skip("no_requests_touch_nothing") {
        return;
    }
    let pod = Pod::two_interfaces();
    let applied = apply_default_routes(&pod.path(), &[]).unwrap();
    assert_eq!(applied, AppliedRoutes::default());
    assert_eq!(
        pod.default_routes(IpFamily::V4),
        vec![via("eth0", "10.10.1.1")]
    );
    // With no requests there is nothing to do, not even opening the namespace.
    assert!(apply_default_routes(Path::new("/nonexistent"), &[]).is_ok());
}
