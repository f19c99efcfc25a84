//! Default-route handling inside the pod's network namespace.
//!
//! A selection element's `default-route` list becomes one
//! [`DefaultRouteRequest`] for the interface of that attachment. After all
//! delegates ran, [`apply_default_routes`] reads the pod's default routes
//! (prefix length 0, IPv4 and IPv6, main table, on every interface), plans
//! with the pure [`plan`] and carries the plan out; [`update_result`] then
//! makes each attachment's cached CNI result agree with the kernel.
//!
//! Rules (per address family F):
//! - at most one gateway of F may be requested over all requests (no ECMP);
//! - a requested gateway `gw` on interface X: every default route of F on
//!   every interface is deleted, except one that already is exactly
//!   `default via gw dev X`, and `default via gw dev X` is added if missing;
//! - an empty request on X ("keep what X's plugin set"): if X has a default
//!   route of F, the default routes of F on the interfaces without such a
//!   request are deleted. Several interfaces with empty requests all keep
//!   theirs. A requested gateway of F wins over empty requests for F.
//!
//! Families without a requested gateway and without an empty request on an
//! interface that has a default route of that family are left alone.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use multus_config::cni::ip::{Cidr, IpFamily};
use multus_config::cni::result::Result100;
use nix::errno::Errno;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHop,
    RouteProtocol, RouteScope, RouteType, RouteVia,
};
use tracing::{debug, info};

use crate::netns::{Link, Netlink, NetnsError, run_in_netns};

/// The kernel's main routing table.
pub const MAIN_TABLE: u32 = 254;

/// What one attachment's `default-route` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRouteRequest {
    /// The attachment's interface in the pod.
    pub ifname: String,
    /// The requested gateways, at most one per family over all requests.
    /// Empty: keep the default routes this interface got from its plugin and
    /// remove the other interfaces' default routes of the same families.
    pub gateways: Vec<IpAddr>,
}

/// A route of the pod as the kernel has it; a multipath route is one
/// `KernelRoute` per next hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KernelRoute {
    /// The output interface.
    pub ifname: String,
    /// The destination; prefix length 0 for default routes.
    pub dst: Cidr,
    /// The next hop, if any.
    pub gateway: Option<IpAddr>,
    /// The routing table.
    pub table: u32,
}

impl KernelRoute {
    /// The address family (of the destination).
    pub fn family(&self) -> IpFamily {
        self.dst.family()
    }

    /// Whether this is a default route (prefix length 0) of the main table.
    pub fn is_main_default(&self) -> bool {
        self.table == MAIN_TABLE && self.dst.is_default_route_dst()
    }
}

impl fmt::Display for KernelRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dst.is_default_route_dst() {
            write!(f, "{} default", self.family())?;
        } else {
            write!(f, "{}", self.dst)?;
        }
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        write!(f, " dev {}", self.ifname)?;
        if self.table != MAIN_TABLE {
            write!(f, " table {}", self.table)?;
        }
        Ok(())
    }
}

/// A default route to add (or already present): `default via gateway dev ifname`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlannedRoute {
    /// The interface.
    pub ifname: String,
    /// The gateway; its family is the route's.
    pub gateway: IpAddr,
}

impl PlannedRoute {
    /// The address family of the route.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.gateway)
    }
}

impl fmt::Display for PlannedRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "default via {} dev {}", self.gateway, self.ifname)
    }
}

/// What [`plan`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePlan {
    /// Default routes to delete (main table, prefix length 0).
    pub delete: Vec<KernelRoute>,
    /// Requested default routes to add.
    pub add: Vec<PlannedRoute>,
    /// Requested default routes that are already there exactly.
    pub keep: Vec<PlannedRoute>,
}

impl RoutePlan {
    /// Whether carrying out the plan changes nothing.
    pub fn changes_nothing(&self) -> bool {
        self.delete.is_empty() && self.add.is_empty()
    }
}

/// What [`apply_default_routes`] did, for making the CNI results agree
/// (see [`update_result`]); also what had happened when an error stopped it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedRoutes {
    /// Interfaces and families whose default routes were deleted.
    pub removed: Vec<(String, IpFamily)>,
    /// Default routes added: interface and gateway.
    pub added: Vec<(String, IpAddr)>,
    /// Requested default routes that were already there: interface and
    /// gateway. A result that loses routes of this family keeps this one.
    pub kept: Vec<(String, IpAddr)>,
}

impl AppliedRoutes {
    /// Whether the kernel was left unchanged.
    pub fn changed_nothing(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }

    fn note_removed(&mut self, ifname: &str, family: IpFamily) {
        if !self
            .removed
            .iter()
            .any(|(n, f)| n == ifname && *f == family)
        {
            self.removed.push((ifname.to_owned(), family));
        }
    }
}

impl fmt::Display for AppliedRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changed_nothing() {
            return f.write_str("no route was changed");
        }
        let mut parts: Vec<String> = self
            .removed
            .iter()
            .map(|(ifname, family)| format!("deleted the {family} default route of {ifname}"))
            .collect();
        parts.extend(
            self.added
                .iter()
                .map(|(ifname, gw)| format!("added default via {gw} dev {ifname}")),
        );
        f.write_str(&parts.join(", "))
    }
}

/// Describes what had already happened when an error stopped the work.
fn progress(done: &AppliedRoutes) -> String {
    if done.changed_nothing() {
        "no route had been changed before this error".to_owned()
    } else {
        format!("already done before this error: {done}")
    }
}

/// Why default routes could not be set.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// More than one gateway of one family was requested.
    #[error(
        "multus does not support ECMP for default-route: {} {family} gateways requested ({})",
        .requested.len(),
        .requested.iter().map(|r| format!("{} on {}", r.gateway, r.ifname)).collect::<Vec<_>>().join(", ")
    )]
    Ecmp {
        /// The family.
        family: IpFamily,
        /// The requested gateways of that family.
        requested: Vec<PlannedRoute>,
    },
    /// A gateway was requested on an interface the pod does not have.
    #[error(
        "default-route gateway {gateway} was requested on interface {ifname:?}, which network namespace {netns:?} does not have; no route was changed"
    )]
    UnknownInterface {
        /// The interface.
        ifname: String,
        /// The gateway.
        gateway: IpAddr,
        /// The namespace.
        netns: PathBuf,
    },
    /// Entering the namespace or reading its links and routes failed; no
    /// route was changed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Deleting a default route failed.
    #[error("cannot delete {route}: {source}; {}", progress(.done))]
    Delete {
        /// The route (all its next hops).
        route: String,
        /// The interface of the (first) next hop.
        ifname: String,
        /// The gateway of the (first) next hop.
        gateway: Option<IpAddr>,
        /// The kernel's refusal.
        #[source]
        source: Box<NetnsError>,
        /// What had already happened.
        done: Box<AppliedRoutes>,
    },
    /// Adding a requested default route failed (e.g. the gateway is not
    /// on-link for the interface).
    #[error("cannot add default via {gateway} dev {ifname}: {source}; {}", progress(.done))]
    Add {
        /// The interface.
        ifname: String,
        /// The gateway.
        gateway: IpAddr,
        /// The kernel's refusal.
        #[source]
        source: Box<NetnsError>,
        /// What had already happened.
        done: Box<AppliedRoutes>,
    },
    /// A multipath default route was deleted to remove some of its next
    /// hops, and re-adding the next hops that should stay failed.
    #[error("deleted multipath {route} but could not re-add the next hops {kept} that should stay: {source}; {}", progress(.done))]
    Restore {
        /// The deleted route (all its next hops).
        route: String,
        /// The next hops that should have stayed.
        kept: String,
        /// The kernel's refusal.
        #[source]
        source: Box<NetnsError>,
        /// What had already happened (including the deletion).
        done: Box<AppliedRoutes>,
    },
}

/// The requested gateways by family, deduplicated; more than one in a
/// family is an error.
fn requested_gateways(
    requests: &[DefaultRouteRequest],
) -> Result<HashMap<IpFamily, PlannedRoute>, RouteError> {
    let mut by_family: HashMap<IpFamily, Vec<PlannedRoute>> = HashMap::new();
    for request in requests {
        for gw in &request.gateways {
            let route = PlannedRoute {
                ifname: request.ifname.clone(),
                gateway: *gw,
            };
            let list = by_family.entry(route.family()).or_default();
            if !list.contains(&route) {
                list.push(route);
            }
        }
    }
    let mut out = HashMap::new();
    for family in [IpFamily::V4, IpFamily::V6] {
        let Some(mut list) = by_family.remove(&family) else {
            continue;
        };
        if list.len() > 1 {
            return Err(RouteError::Ecmp {
                family,
                requested: list,
            });
        }
        if let Some(route) = list.pop() {
            out.insert(family, route);
        }
    }
    Ok(out)
}

/// Checks `requests` without looking at any namespace: more than one
/// gateway of a family over all requests is refused
/// ([`RouteError::Ecmp`]). Call it before running the delegates.
pub fn check_requests(requests: &[DefaultRouteRequest]) -> Result<(), RouteError> {
    requested_gateways(requests).map(drop)
}

/// Plans the default-route changes for `requests` given the pod's `current`
/// routes (routes that are not main-table default routes are ignored). Pure:
/// planning against the state after carrying out a plan yields a plan that
/// [changes nothing](RoutePlan::changes_nothing).
pub fn plan(
    requests: &[DefaultRouteRequest],
    current: &[KernelRoute],
) -> Result<RoutePlan, RouteError> {
    let wanted = requested_gateways(requests)?;
    let mut plan = RoutePlan::default();
    for family in [IpFamily::V4, IpFamily::V6] {
        let defaults: Vec<&KernelRoute> = current
            .iter()
            .filter(|r| r.is_main_default() && r.family() == family)
            .collect();
        if let Some(want) = wanted.get(&family) {
            let mut present = false;
            for route in defaults {
                if route.ifname == want.ifname && route.gateway == Some(want.gateway) {
                    present = true;
                } else {
                    plan.delete.push(route.clone());
                }
            }
            if present {
                plan.keep.push(want.clone());
            } else {
                plan.add.push(want.clone());
            }
        } else {
            let keepers: BTreeSet<&str> = requests
                .iter()
                .filter(|r| r.gateways.is_empty())
                .map(|r| r.ifname.as_str())
                .filter(|ifname| defaults.iter().any(|d| d.ifname == *ifname))
                .collect();
            if keepers.is_empty() {
                continue;
            }
            plan.delete.extend(
                defaults
                    .into_iter()
                    .filter(|d| !keepers.contains(d.ifname.as_str()))
                    .cloned(),
            );
        }
    }
    Ok(plan)
}

/// Makes one attachment's CNI result agree with what
/// [`apply_default_routes`] did: drops its default routes of the families
/// deleted on `ifname`, then adds the requested default routes of `ifname`
/// (added or kept).
pub fn update_result(result: &mut Result100, ifname: &str, applied: &AppliedRoutes) {
    for (_, family) in applied.removed.iter().filter(|(n, _)| n == ifname) {
        result.remove_default_routes(*family);
    }
    for (_, gw) in applied
        .added
        .iter()
        .chain(applied.kept.iter())
        .filter(|(n, _)| n == ifname)
    {
        result.add_default_route(*gw);
    }
}

/// Sets the pod's default routes as `requests` ask, in the network namespace
/// `netns`, across all of its interfaces. Deletions happen before additions;
/// an error says what had already been done.
pub fn apply_default_routes(
    netns: &Path,
    requests: &[DefaultRouteRequest],
) -> Result<AppliedRoutes, RouteError> {
    // Refuse ECMP before touching the namespace.
    check_requests(requests)?;
    if requests.is_empty() {
        return Ok(AppliedRoutes::default());
    }
    let path = netns.to_path_buf();
    let requests = requests.to_vec();
    run_in_netns(netns, move || Ok(apply_here(&path, &requests)))?
}

/// A default route as dumped: the message and one [`KernelRoute`] per next
/// hop (`nexthops[i]` belongs to `hops[i]` for a multipath route).
#[derive(Debug)]
struct DumpedRoute {
    message: RouteMessage,
    hops: Vec<KernelRoute>,
    nexthops: Option<Vec<RouteNextHop>>,
}

impl DumpedRoute {
    fn describe(&self) -> String {
        let hops: Vec<String> = self.hops.iter().map(ToString::to_string).collect();
        hops.join(" + ")
    }
}

fn route_address_ip(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn gateway_of(attributes: &[RouteAttribute]) -> Option<IpAddr> {
    attributes.iter().find_map(|attr| match attr {
        RouteAttribute::Gateway(addr) => route_address_ip(addr),
        RouteAttribute::Via(RouteVia::Inet(a)) => Some(IpAddr::V4(*a)),
        RouteAttribute::Via(RouteVia::Inet6(a)) => Some(IpAddr::V6(*a)),
        _ => None,
    })
}

/// The default route in `message`, if it is one with an output interface.
fn parse_default_route(message: RouteMessage, links: &[Link]) -> Option<DumpedRoute> {
    let header = &message.header;
    let unspecified = match header.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    if header.destination_prefix_length != 0 || header.kind != RouteType::Unicast {
        return None;
    }
    let dst = Cidr::new(unspecified, 0).ok()?;
    let table = message
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(header.table));
    let ifname = |index: u32| {
        links
            .iter()
            .find(|l| l.index == index)
            .map_or_else(|| format!("if{index}"), |l| l.name.clone())
    };
    let multipath = message.attributes.iter().find_map(|a| match a {
        RouteAttribute::MultiPath(hops) => Some(hops.clone()),
        _ => None,
    });
    let hops: Vec<KernelRoute> = match &multipath {
        Some(nexthops) => nexthops
            .iter()
            .map(|nh| KernelRoute {
                ifname: ifname(nh.interface_index),
                dst,
                gateway: gateway_of(&nh.attributes),
                table,
            })
            .collect(),
        None => {
            let oif = message.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            })?;
            vec![KernelRoute {
                ifname: ifname(oif),
                dst,
                gateway: gateway_of(&message.attributes),
                table,
            }]
        }
    };
    if hops.is_empty() {
        return None;
    }
    Some(DumpedRoute {
        message,
        hops,
        nexthops: multipath,
    })
}

/// The attributes that identify a route (and that a re-added route keeps).
fn is_identity_attribute(attr: &RouteAttribute) -> bool {
    matches!(
        attr,
        RouteAttribute::Destination(_)
            | RouteAttribute::Source(_)
            | RouteAttribute::Gateway(_)
            | RouteAttribute::Via(_)
            | RouteAttribute::Oif(_)
            | RouteAttribute::Priority(_)
            | RouteAttribute::Table(_)
            | RouteAttribute::MultiPath(_)
            | RouteAttribute::PrefSource(_)
            | RouteAttribute::Metrics(_)
    )
}

/// A copy of a dumped route that the kernel accepts in a request: the
/// header (flags reduced to `onlink`) and the identifying attributes.
fn request_message(dumped: &RouteMessage) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header = dumped.header.clone();
    message.header.flags = dumped.header.flags & RouteFlags::Onlink;
    message.attributes = dumped
        .attributes
        .iter()
        .filter(|a| is_identity_attribute(a))
        .cloned()
        .collect();
    message
}

/// The message re-adding the next hops `kept` of a multipath route.
fn readd_message(dumped: &RouteMessage, kept: &[RouteNextHop]) -> RouteMessage {
    let mut message = request_message(dumped);
    message
        .attributes
        .retain(|a| !matches!(a, RouteAttribute::MultiPath(_)));
    match kept {
        [single] => {
            message
                .attributes
                .push(RouteAttribute::Oif(single.interface_index));
            message.attributes.extend(
                single
                    .attributes
                    .iter()
                    .filter(|a| matches!(a, RouteAttribute::Gateway(_) | RouteAttribute::Via(_)))
                    .cloned(),
            );
            if single
                .flags
                .contains(rtnetlink::packet_route::route::RouteNextHopFlags::Onlink)
            {
                message.header.flags |= RouteFlags::Onlink;
            }
        }
        several => message
            .attributes
            .push(RouteAttribute::MultiPath(several.to_vec())),
    }
    message
}

/// The message adding `default via gateway dev <index>` to the main table.
fn add_message(index: u32, gateway: IpAddr) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = match gateway {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    message.header.destination_prefix_length = 0;
    message.header.table = RouteHeader::RT_TABLE_MAIN;
    message.header.protocol = RouteProtocol::Static;
    message.header.scope = RouteScope::Universe;
    message.header.kind = RouteType::Unicast;
    message.attributes.push(RouteAttribute::Oif(index));
    message
        .attributes
        .push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
    message
}

/// Dumps the default routes of one family (all tables; the planner keeps the
/// main table's). A kernel without IPv6 has no IPv6 routes.
fn read_default_routes(
    netlink: &Netlink,
    family: IpFamily,
    links: &[Link],
) -> Result<Vec<DumpedRoute>, NetnsError> {
    let mut query = RouteMessage::default();
    query.header.address_family = match family {
        IpFamily::V4 => AddressFamily::Inet,
        IpFamily::V6 => AddressFamily::Inet6,
    };
    let what = format!("list {family} routes");
    let messages = match netlink.request(
        &what,
        netlink
            .handle()
            .route()
            .get(query)
            .execute()
            .try_collect::<Vec<_>>(),
    ) {
        Ok(messages) => messages,
        Err(e)
            if family == IpFamily::V6 && e.netlink_errno() == Some(Errno::EAFNOSUPPORT as i32) =>
        {
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    Ok(messages
        .into_iter()
        .filter_map(|m| parse_default_route(m, links))
        .collect())
}

/// The work of [`apply_default_routes`], on the thread inside the namespace.
fn apply_here(netns: &Path, requests: &[DefaultRouteRequest]) -> Result<AppliedRoutes, RouteError> {
    let netlink = Netlink::connect(netns)?;
    let links = netlink.links()?;
    let mut dumped = read_default_routes(&netlink, IpFamily::V4, &links)?;
    dumped.extend(read_default_routes(&netlink, IpFamily::V6, &links)?);
    let current: Vec<KernelRoute> = dumped.iter().flat_map(|d| d.hops.clone()).collect();
    let plan = plan(requests, &current)?;
    debug!(netns = %netns.display(), ?plan, "default-route plan");

    // Resolve every interface to add a route on before changing anything.
    let mut additions = Vec::with_capacity(plan.add.len());
    for add in &plan.add {
        let index = links
            .iter()
            .find(|l| l.name == add.ifname)
            .map(|l| l.index)
            .ok_or_else(|| RouteError::UnknownInterface {
                ifname: add.ifname.clone(),
                gateway: add.gateway,
                netns: netns.to_path_buf(),
            })?;
        additions.push((add, index));
    }

    let mut done = AppliedRoutes::default();
    for route in &dumped {
        let doomed: Vec<&KernelRoute> = route
            .hops
            .iter()
            .filter(|h| plan.delete.contains(h))
            .collect();
        let Some(first) = doomed.first() else {
            continue;
        };
        let description = route.describe();
        let what = format!("delete {description}");
        match netlink.request(
            &what,
            netlink
                .handle()
                .route()
                .del(request_message(&route.message))
                .execute(),
        ) {
            Ok(()) => info!(netns = %netns.display(), "deleted {description}"),
            Err(e) if e.netlink_errno() == Some(Errno::ESRCH as i32) => {
                debug!(netns = %netns.display(), "{description} was already gone");
            }
            Err(source) => {
                return Err(RouteError::Delete {
                    route: description,
                    ifname: first.ifname.clone(),
                    gateway: first.gateway,
                    source: Box::new(source),
                    done: Box::new(done),
                });
            }
        }
        for hop in &doomed {
            done.note_removed(&hop.ifname, hop.family());
        }
        // A multipath route goes as a whole; put back the next hops that stay.
        if let Some(nexthops) = &route.nexthops {
            let (kept_hops, kept): (Vec<&KernelRoute>, Vec<RouteNextHop>) = route
                .hops
                .iter()
                .zip(nexthops)
                .filter(|(hop, _)| !plan.delete.contains(hop))
                .map(|(hop, nh)| (hop, nh.clone()))
                .unzip();
            if kept.is_empty() {
                continue;
            }
            let kept_text = kept_hops
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" + ");
            let what = format!("re-add {kept_text}");
            netlink
                .request(
                    &what,
                    netlink
                        .handle()
                        .route()
                        .add(readd_message(&route.message, &kept))
                        .execute(),
                )
                .map_err(|source| RouteError::Restore {
                    route: description.clone(),
                    kept: kept_text.clone(),
                    source: Box::new(source),
                    done: Box::new(done.clone()),
                })?;
            info!(netns = %netns.display(), "re-added {kept_text} of deleted multipath {description}");
        }
    }

    for (add, index) in additions {
        let what = format!("add {add}");
        netlink
            .request(
                &what,
                netlink
                    .handle()
                    .route()
                    .add(add_message(index, add.gateway))
                    .execute(),
            )
            .map_err(|source| RouteError::Add {
                ifname: add.ifname.clone(),
                gateway: add.gateway,
                source: Box::new(source),
                done: Box::new(done.clone()),
            })?;
        info!(netns = %netns.display(), "added {add}");
        done.added.push((add.ifname.clone(), add.gateway));
    }
    done.kept = plan
        .keep
        .iter()
        .map(|k| (k.ifname.clone(), k.gateway))
        .collect();
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn default_route(ifname: &str, gw: &str) -> KernelRoute {
        let gw = ip(gw);
        KernelRoute {
            ifname: ifname.to_owned(),
            dst: IpFamily::of(&gw).default_route_dst(),
            gateway: Some(gw),
            table: MAIN_TABLE,
        }
    }

    fn other_route(ifname: &str, dst: &str, gw: Option<&str>, table: u32) -> KernelRoute {
        KernelRoute {
            ifname: ifname.to_owned(),
            dst: dst.parse().unwrap(),
            gateway: gw.map(ip),
            table,
        }
    }

    fn request(ifname: &str, gws: &[&str]) -> DefaultRouteRequest {
        DefaultRouteRequest {
            ifname: ifname.to_owned(),
            gateways: gws.iter().map(|g| ip(g)).collect(),
        }
    }

    fn planned(ifname: &str, gw: &str) -> PlannedRoute {
        PlannedRoute {
            ifname: ifname.to_owned(),
            gateway: ip(gw),
        }
    }

    /// The routes after carrying out `plan` on `current`.
    fn carry_out(current: &[KernelRoute], plan: &RoutePlan) -> Vec<KernelRoute> {
        let mut after: Vec<KernelRoute> = current
            .iter()
            .filter(|r| !plan.delete.contains(r))
            .cloned()
            .collect();
        after.extend(
            plan.add
                .iter()
                .map(|a| default_route(&a.ifname, &a.gateway.to_string())),
        );
        after
    }

    /// Plans, checks that re-planning on the result changes nothing, and
    /// returns the plan and the state after it.
    fn plan_idempotent(
        requests: &[DefaultRouteRequest],
        current: &[KernelRoute],
    ) -> (RoutePlan, Vec<KernelRoute>) {
        let first = plan(requests, current).unwrap();
        let after = carry_out(current, &first);
        let second = plan(requests, &after).unwrap();
        assert!(
            second.changes_nothing(),
            "re-planning after {first:?} gives {second:?}"
        );
        let mut expected_keep = first.keep.clone();
        expected_keep.extend(first.add.iter().cloned());
        expected_keep.sort();
        let mut keep = second.keep.clone();
        keep.sort();
        assert_eq!(keep, expected_keep);
        (first, after)
    }

    /// A pod with eth0 (v4 + v6 defaults) and net1 (no defaults), plus
    /// non-default routes that must never be touched.
    fn pod_state() -> Vec<KernelRoute> {
        vec![
            other_route("eth0", "10.10.1.0/24", None, MAIN_TABLE),
            other_route("net1", "10.10.2.0/24", None, MAIN_TABLE),
            default_route("eth0", "10.10.1.1"),
            other_route("eth0", "fd00:1::/64", None, MAIN_TABLE),
            default_route("eth0", "fd00:1::1"),
            // Another table's default route is not the pod's main default.
            other_route("eth0", "0.0.0.0/0", Some("10.10.1.254"), 100),
        ]
    }

    fn defaults_of(state: &[KernelRoute]) -> Vec<KernelRoute> {
        state
            .iter()
            .filter(|r| r.is_main_default())
            .cloned()
            .collect()
    }

    #[test]
    fn ipv4_gateway_moves_the_ipv4_default_only() {
        let current = pod_state();
        let (p, after) = plan_idempotent(&[request("net1", &["10.10.2.1"])], &current);
        assert_eq!(p.delete, vec![default_route("eth0", "10.10.1.1")]);
        assert_eq!(p.add, vec![planned("net1", "10.10.2.1")]);
        assert!(p.keep.is_empty());
        assert_eq!(
            defaults_of(&after),
            vec![
                default_route("eth0", "fd00:1::1"),
                default_route("net1", "10.10.2.1")
            ]
        );
        // The other table's route stays.
        assert!(after.iter().any(|r| r.table == 100));
    }

    #[test]
    fn ipv6_gateway_moves_the_ipv6_default_only() {
        let current = pod_state();
        let (p, after) = plan_idempotent(&[request("net1", &["fd00:2::1"])], &current);
        assert_eq!(p.delete, vec![default_route("eth0", "fd00:1::1")]);
        assert_eq!(p.add, vec![planned("net1", "fd00:2::1")]);
        assert_eq!(
            defaults_of(&after),
            vec![
                default_route("eth0", "10.10.1.1"),
                default_route("net1", "fd00:2::1")
            ]
        );
    }

    #[test]
    fn dual_stack_over_two_interfaces() {
        let mut current = pod_state();
        current.push(default_route("net2", "10.10.3.1"));
        current.push(default_route("net2", "fd00:3::1"));
        let requests = [
            request("net1", &["10.10.2.1"]),
            request("net2", &["fd00:3::1"]),
        ];
        let (p, after) = plan_idempotent(&requests, &current);
        assert_eq!(
            p.delete,
            vec![
                default_route("eth0", "10.10.1.1"),
                default_route("net2", "10.10.3.1"),
                default_route("eth0", "fd00:1::1"),
            ]
        );
        assert_eq!(p.add, vec![planned("net1", "10.10.2.1")]);
        assert_eq!(p.keep, vec![planned("net2", "fd00:3::1")]);
        assert_eq!(
            defaults_of(&after),
            vec![
                default_route("net2", "fd00:3::1"),
                default_route("net1", "10.10.2.1")
            ]
        );
    }

    #[test]
    fn dual_stack_on_one_interface() {
        let current = pod_state();
        let (p, after) = plan_idempotent(&[request("net1", &["10.10.2.1", "fd00:2::1"])], &current);
        assert_eq!(p.delete.len(), 2);
        assert_eq!(
            p.add,
            vec![planned("net1", "10.10.2.1"), planned("net1", "fd00:2::1")]
        );
        assert!(defaults_of(&after).iter().all(|r| r.ifname == "net1"));
    }

    #[test]
    fn requested_interface_loses_its_other_default_routes() {
        let mut current = pod_state();
        current.push(default_route("net1", "10.10.2.254"));
        let (p, after) = plan_idempotent(&[request("net1", &["10.10.2.1"])], &current);
        assert_eq!(
            p.delete,
            vec![
                default_route("eth0", "10.10.1.1"),
                default_route("net1", "10.10.2.254")
            ]
        );
        assert_eq!(p.add, vec![planned("net1", "10.10.2.1")]);
        assert_eq!(
            defaults_of(&after)
                .iter()
                .filter(|r| r.family() == IpFamily::V4)
                .count(),
            1
        );
    }

    #[test]
    fn exact_route_already_present_is_kept() {
        let mut current = pod_state();
        current.push(default_route("net1", "10.10.2.1"));
        let (p, _) = plan_idempotent(&[request("net1", &["10.10.2.1"])], &current);
        assert_eq!(p.delete, vec![default_route("eth0", "10.10.1.1")]);
        assert!(p.add.is_empty());
        assert_eq!(p.keep, vec![planned("net1", "10.10.2.1")]);
    }

    #[test]
    fn same_gateway_on_another_interface_is_not_the_requested_route() {
        let current = vec![default_route("eth0", "10.10.2.1")];
        let (p, _) = plan_idempotent(&[request("net1", &["10.10.2.1"])], &current);
        assert_eq!(p.delete, current);
        assert_eq!(p.add, vec![planned("net1", "10.10.2.1")]);
    }

    #[test]
    fn gateway_less_default_route_is_a_default_route() {
        let current = vec![KernelRoute {
            ifname: "eth0".into(),
            dst: "0.0.0.0/0".parse().unwrap(),
            gateway: None,
            table: MAIN_TABLE,
        }];
        let (p, _) = plan_idempotent(&[request("net1", &["10.10.2.1"])], &current);
        assert_eq!(p.delete, current);
    }

    #[test]
    fn any_prefix_length_zero_destination_is_a_default_route() {
        // Prefix length 0, not the address, makes a default route.
        let odd = other_route("eth0", "10.0.0.0/0", Some("10.10.1.1"), MAIN_TABLE);
        let odd6 = other_route("eth0", "::/0", Some("fd00:1::1"), MAIN_TABLE);
        let current = vec![odd.clone(), odd6.clone()];
        let (p, _) = plan_idempotent(&[request("net1", &["10.10.2.1", "fd00:2::1"])], &current);
        assert_eq!(p.delete, vec![odd, odd6]);
    }

    #[test]
    fn empty_request_keeps_its_defaults_and_removes_the_others() {
        let mut current = pod_state();
        current.push(default_route("net1", "10.10.2.1"));
        let (p, after) = plan_idempotent(&[request("net1", &[])], &current);
        // net1 has an IPv4 default: eth0's IPv4 default goes. net1 has no
        // IPv6 default: eth0's IPv6 default stays.
        assert_eq!(p.delete, vec![default_route("eth0", "10.10.1.1")]);
        assert!(p.add.is_empty() && p.keep.is_empty());
        assert_eq!(
            defaults_of(&after),
            vec![
                default_route("eth0", "fd00:1::1"),
                default_route("net1", "10.10.2.1")
            ]
        );
    }

    #[test]
    fn empty_request_without_default_routes_changes_nothing() {
        let current = pod_state();
        let (p, _) = plan_idempotent(&[request("net1", &[])], &current);
        assert_eq!(p, RoutePlan::default());
    }

    #[test]
    fn several_empty_requests_all_keep_theirs() {
        let mut current = pod_state();
        current.push(default_route("net1", "10.10.2.1"));
        current.push(default_route("net2", "10.10.3.1"));
        let (p, _) = plan_idempotent(&[request("net1", &[]), request("net2", &[])], &current);
        assert_eq!(p.delete, vec![default_route("eth0", "10.10.1.1")]);
    }

    #[test]
    fn requested_gateway_wins_over_empty_request_of_the_same_family() {
        let mut current = pod_state();
        current.push(default_route("net1", "10.10.2.1"));
        current.push(default_route("net1", "fd00:2::1"));
        let requests = [request("net1", &[]), request("net2", &["10.10.3.1"])];
        let (p, after) = plan_idempotent(&requests, &current);
        assert_eq!(
            p.delete,
            vec![
                default_route("eth0", "10.10.1.1"),
                default_route("net1", "10.10.2.1"),
                // IPv6: net1's empty request removes eth0's IPv6 default.
                default_route("eth0", "fd00:1::1"),
            ]
        );
        assert_eq!(p.add, vec![planned("net2", "10.10.3.1")]);
        assert_eq!(
            defaults_of(&after),
            vec![
                default_route("net1", "fd00:2::1"),
                default_route("net2", "10.10.3.1")
            ]
        );
    }

    #[test]
    fn no_requests_change_nothing() {
        assert_eq!(plan(&[], &pod_state()).unwrap(), RoutePlan::default());
    }

    #[test]
    fn ecmp_is_refused_per_family() {
        let err = plan(
            &[
                request("net1", &["10.10.2.1"]),
                request("net2", &["10.10.3.1"]),
            ],
            &pod_state(),
        )
        .unwrap_err();
        assert!(
            matches!(err, RouteError::Ecmp { family: IpFamily::V4, ref requested } if requested.len() == 2),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with("multus does not support ECMP for default-route"),
            "{msg}"
        );
        assert!(
            msg.contains("10.10.2.1 on net1") && msg.contains("10.10.3.1 on net2"),
            "{msg}"
        );

        // Two IPv6 gateways in one request.
        let err = check_requests(&[request("net1", &["fd00:2::1", "fd00:2::2"])]).unwrap_err();
        assert!(
            matches!(
                err,
                RouteError::Ecmp {
                    family: IpFamily::V6,
                    ..
                }
            ),
            "{err:?}"
        );

        // One gateway per family is not ECMP; a repeated identical request is not either.
        assert!(
            plan(
                &[
                    request("net1", &["10.10.2.1", "fd00:2::1"]),
                    request("net1", &["10.10.2.1"]),
                ],
                &[]
            )
            .is_ok()
        );
    }

    #[test]
    fn multipath_hops_are_planned_one_by_one() {
        // A multipath default over eth0 and net1: requesting net1's hop keeps it.
        let current = vec![
            default_route("eth0", "10.10.1.1"),
            default_route("net1", "10.10.2.1"),
        ];
        let (p, _) = plan_idempotent(&[request("net1", &["10.10.2.1"])], &current);
        assert_eq!(p.delete, vec![default_route("eth0", "10.10.1.1")]);
        assert_eq!(p.keep, vec![planned("net1", "10.10.2.1")]);
    }

    fn result_with_routes(routes: &[(&str, Option<&str>)]) -> Result100 {
        let json = serde_json::json!({
            "cniVersion": "1.0.0",
            "routes": routes.iter().map(|(dst, gw)| match gw {
                Some(gw) => serde_json::json!({"dst": dst, "gw": gw}),
                None => serde_json::json!({"dst": dst}),
            }).collect::<Vec<_>>(),
        });
        serde_json::from_value(json).unwrap()
    }

    fn route_texts(result: &Result100) -> Vec<String> {
        result
            .routes
            .iter()
            .map(|r| match r.gw {
                Some(gw) => format!("{} via {gw}", r.dst),
                None => r.dst.to_string(),
            })
            .collect()
    }

    #[test]
    fn update_result_follows_the_kernel() {
        let applied = AppliedRoutes {
            removed: vec![("eth0".into(), IpFamily::V4), ("net1".into(), IpFamily::V4)],
            added: vec![("net1".into(), ip("10.10.2.1"))],
            kept: vec![("net2".into(), ip("fd00:3::1"))],
        };
        let mut eth0 = result_with_routes(&[
            ("0.0.0.0/0", Some("10.10.1.1")),
            ("::/0", Some("fd00:1::1")),
            ("10.96.0.0/12", Some("10.10.1.1")),
        ]);
        update_result(&mut eth0, "eth0", &applied);
        assert_eq!(
            route_texts(&eth0),
            vec!["::/0 via fd00:1::1", "10.96.0.0/12 via 10.10.1.1"]
        );

        let mut net1 = result_with_routes(&[("0.0.0.0/0", Some("10.10.2.254"))]);
        update_result(&mut net1, "net1", &applied);
        assert_eq!(route_texts(&net1), vec!["0.0.0.0/0 via 10.10.2.1"]);

        // A kept route stays (and is not duplicated).
        let mut net2 = result_with_routes(&[("::/0", Some("fd00:3::1"))]);
        update_result(&mut net2, "net2", &applied);
        assert_eq!(route_texts(&net2), vec!["::/0 via fd00:3::1"]);

        // Untouched interfaces keep everything.
        let mut net3 = result_with_routes(&[("0.0.0.0/0", Some("10.10.4.1"))]);
        update_result(&mut net3, "net3", &applied);
        assert_eq!(route_texts(&net3), vec!["0.0.0.0/0 via 10.10.4.1"]);
    }

    #[test]
    fn errors_say_what_was_done_before() {
        let err = RouteError::Add {
            ifname: "net1".into(),
            gateway: ip("192.168.77.1"),
            source: Box::new(NetnsError::Timeout {
                netns: "/var/run/netns/x".into(),
                what: "add default via 192.168.77.1 dev net1".into(),
                timeout: crate::netns::NETLINK_TIMEOUT,
            }),
            done: Box::new(AppliedRoutes {
                removed: vec![("eth0".into(), IpFamily::V4)],
                ..AppliedRoutes::default()
            }),
        };
        let msg = err.to_string();
        assert!(msg.contains("default via 192.168.77.1 dev net1"), "{msg}");
        assert!(msg.contains("timed out"), "{msg}");
        assert!(
            msg.contains("already done before this error: deleted the IPv4 default route of eth0"),
            "{msg}"
        );
    }

    #[test]
    fn apply_refuses_ecmp_before_touching_the_namespace() {
        // The namespace does not exist: the ECMP check comes first.
        let err = apply_default_routes(
            Path::new("/nonexistent/netns"),
            &[request("net1", &["10.10.2.1", "10.10.2.2"])],
        )
        .unwrap_err();
        assert!(matches!(err, RouteError::Ecmp { .. }), "{err:?}");
    }

    #[test]
    fn parse_ignores_non_default_and_interface_less_routes() {
        let links = vec![Link {
            index: 2,
            name: "eth0".into(),
        }];
        let mut blackhole = RouteMessage::default();
        blackhole.header.address_family = AddressFamily::Inet;
        blackhole.header.kind = RouteType::BlackHole;
        assert!(parse_default_route(blackhole, &links).is_none());

        let mut prefix = add_message(2, ip("10.10.1.1"));
        prefix.header.destination_prefix_length = 24;
        assert!(parse_default_route(prefix, &links).is_none());

        let parsed = parse_default_route(add_message(2, ip("fd00:1::1")), &links).unwrap();
        assert_eq!(parsed.hops, vec![default_route("eth0", "fd00:1::1")]);

        let mut multipath = RouteMessage::default();
        multipath.header.address_family = AddressFamily::Inet;
        multipath.header.kind = RouteType::Unicast;
        multipath.header.table = RouteHeader::RT_TABLE_MAIN;
        let mut nh1 = RouteNextHop::default();
        nh1.interface_index = 2;
        nh1.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(
                "10.10.1.1".parse().unwrap(),
            )));
        let mut nh2 = RouteNextHop::default();
        nh2.interface_index = 7;
        nh2.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(
                "10.10.2.1".parse().unwrap(),
            )));
        multipath
            .attributes
            .push(RouteAttribute::MultiPath(vec![nh1.clone(), nh2]));
        let parsed = parse_default_route(multipath.clone(), &links).unwrap();
        assert_eq!(
            parsed.hops,
            vec![
                default_route("eth0", "10.10.1.1"),
                default_route("if7", "10.10.2.1")
            ]
        );
        // Re-adding one kept hop makes a single-path route.
        let readd = readd_message(&multipath, &[nh1]);
        assert!(readd.attributes.contains(&RouteAttribute::Oif(2)));
        assert!(
            !readd
                .attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::MultiPath(_)))
        );
    }
}
