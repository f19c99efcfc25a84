//! The `k8s.v1.cni.cncf.io/network-status` entries of a pod, built from the
//! attachments' results: one entry per interface in the sandbox.

use multus_config::cni::result::{CniResult, Result100};
use multus_config::npwg::NetworkStatus;

use crate::attachment::Attachment;

/// A result as 1.x, if it can be read.
pub fn result100(attachment: &Attachment) -> Option<Result100> {
    let value = attachment.result.clone()?;
    CniResult::from_value(value, None)
        .ok()?
        .into_result100()
        .ok()
}

/// The network-status entries of all attachments, in order.
pub fn network_statuses(attachments: &[Attachment]) -> Vec<NetworkStatus> {
    let mut out = Vec::new();
    let mut default_marked = false;
    for attachment in attachments {
        let Some(result) = result100(attachment) else {
            continue;
        };
        let gateways: Vec<String> = result
            .default_routes()
            .iter()
            .filter_map(|r| r.gw.map(|g| g.to_string()))
            .collect();
        let dns = result.dns.clone().unwrap_or_default();
        let sandbox = result.interfaces_in_sandbox();
        let mut push = |interface: Option<String>, ips: Vec<String>, mac, mtu| {
            let default = attachment.is_cluster_network && !default_marked;
            default_marked |= default;
            out.push(NetworkStatus {
                name: attachment.name.clone(),
                interface,
                ips,
                mac,
                mtu,
                default,
                dns: dns.clone(),
                default_route: gateways.clone(),
                device_info: attachment.device.info.clone(),
            });
        };
        if sandbox.is_empty() {
            // Plugins that report no interface (old versions): one entry
            // for the interface we asked for.
            let ips = result
                .ips
                .iter()
                .map(|ip| ip.address.addr.to_string())
                .collect();
            push(Some(attachment.ifname.clone()), ips, None, None);
        } else {
            for (index, iface) in sandbox {
                let ips = result
                    .ips_of_interface(index)
                    .iter()
                    .map(|ip| ip.address.addr.to_string())
                    .collect();
                push(Some(iface.name.clone()), ips, iface.mac.clone(), iface.mtu);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use multus_config::cni::netconf::NetworkConfig;
    use serde_json::{Map, json};

    fn attachment(name: &str, cluster: bool, result: serde_json::Value) -> Attachment {
        Attachment {
            name: name.into(),
            config: NetworkConfig::from_value(
                json!({"cniVersion":"1.0.0","name":"n","type":"bridge"}),
            )
            .unwrap(),
            ifname: if cluster {
                "eth0".into()
            } else {
                "net1".into()
            },
            capability_args: Map::new(),
            cni_args: String::new(),
            is_cluster_network: cluster,
            default_route: None,
            result: Some(result),
            device: Default::default(),
            origin: Default::default(),
        }
    }

    #[test]
    fn one_entry_per_sandbox_interface_with_the_cluster_network_default() {
        let cluster = attachment(
            "cbr0",
            true,
            json!({"cniVersion":"1.0.0",
                "interfaces":[{"name":"cni0","mac":"aa:aa:aa:aa:aa:aa"},{"name":"eth0","mac":"0a:58:0a:f4:01:49","sandbox":"/var/run/netns/x"}],
                "ips":[{"interface":1,"address":"10.244.1.73/24","gateway":"10.244.1.1"}],
                "routes":[{"dst":"0.0.0.0/0","gw":"10.244.1.1"}]}),
        );
        let macvlan = attachment(
            "default/macvlan-conf",
            false,
            json!({"cniVersion":"0.3.1",
                "interfaces":[{"name":"net1","mac":"86:1d:96:ff:55:0d","sandbox":"/var/run/netns/x"}],
                "ips":[{"version":"4","interface":0,"address":"192.168.1.205/24"}],
                "dns":{}}),
        );
        let statuses = network_statuses(&[cluster, macvlan]);
        assert_eq!(statuses.len(), 2);
        assert_eq!(statuses[0].name, "cbr0");
        assert_eq!(statuses[0].interface.as_deref(), Some("eth0"));
        assert_eq!(statuses[0].ips, ["10.244.1.73"]);
        assert!(statuses[0].default);
        assert_eq!(statuses[0].default_route, ["10.244.1.1"]);
        assert_eq!(statuses[1].name, "default/macvlan-conf");
        assert_eq!(statuses[1].interface.as_deref(), Some("net1"));
        assert_eq!(statuses[1].mac.as_deref(), Some("86:1d:96:ff:55:0d"));
        assert_eq!(statuses[1].ips, ["192.168.1.205"]);
        assert!(!statuses[1].default);
    }

    #[test]
    fn results_without_interfaces_get_the_requested_interface() {
        let a = attachment(
            "ns/old",
            false,
            json!({"cniVersion":"0.2.0","ip4":{"ip":"10.1.1.5/24"}}),
        );
        let statuses = network_statuses(&[a]);
        assert_eq!(statuses[0].interface.as_deref(), Some("net1"));
        assert_eq!(statuses[0].ips, ["10.1.1.5"]);
    }
}
