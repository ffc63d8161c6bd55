//! The guest kernel as the agent sees it: interfaces (name, MAC, addresses of
//! both families), the exportable IPv4 and IPv6 routes and the resolved
//! neighbours (ARP and NDP), kept up to date from rtnetlink messages (a dump
//! followed by the multicast events). Plain data and functions: the netlink
//! socket is driven by `agent.rs`.
use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteNextHopFlags, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::net::IpAddr;
use vrfwd_proto::{Interface, NeighborOp, Path, Paths, RouteOp};
use vrfwd_wire::MacAddr;

/// Which routes and interfaces are exported.
#[derive(Debug, Clone)]
pub struct Filter {
    pub tables: Vec<u32>,
    pub protocols: Vec<u8>,
    /// Interface names; empty = all but loopback.
    pub interfaces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    name: String,
    mac: Option<MacAddr>,
    running: bool,
}

/// One path of an exportable route in kernel terms (a gateway of the route's
/// family; an IPv6 one is often link-local, scoped by `oif`), with its weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelPath {
    pub via: Option<IpAddr>,
    pub oif: u32,
    /// 1 to 256 (the kernel's `rtnh_hops` + 1).
    pub weight: u16,
}

/// An exportable route's paths, sorted, the kernel's live ones only (a
/// multipath route's, or the one of any other; almost always one, inline).
pub type KernelRoute = SmallVec<[KernelPath; 1]>;

/// What tells a prefix's routes apart in the kernel, and which it forwards by:
/// its table (ranked by its place in the filter's list) and its metric, lower
/// first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    table: usize,
    metric: u32,
}

/// One of the routes the kernel holds for a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    rank: Rank,
    route: KernelRoute,
}

/// What a netlink message changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    Nothing,
    /// The route for this prefix was added, replaced or removed.
    Route(IpNet),
    /// The neighbour (interface index, address) was learned, changed or lost.
    Neighbor(u32, IpAddr),
    /// An interface or address changed: the interface list must be re-sent.
    Interfaces,
    /// An exported interface went down or came back (after a migration, the
    /// paravirtual NIC reconnects): the session should resync.
    LinkFlap,
}

/// The state.
pub struct KernelState {
    filter: Filter,
    links: HashMap<u32, Link>,
    addresses: HashMap<u32, Vec<IpNet>>,
    /// Every exportable route the kernel holds, by prefix: the one exported is
    /// the best ranked, as the kernel forwards by it.
    /// (Almost always one: kept inline.)
    routes: HashMap<IpNet, SmallVec<[Held; 1]>>,
    neighbors: HashMap<(u32, IpAddr), MacAddr>,
}

impl KernelState {
    pub fn new(filter: Filter) -> Self {
        KernelState {
            filter,
            links: HashMap::new(),
            addresses: HashMap::new(),
            routes: HashMap::new(),
            neighbors: HashMap::new(),
        }
    }

    /// Forgets everything (before a new dump).
    pub fn clear(&mut self) {
        self.links.clear();
        self.addresses.clear();
        self.routes.clear();
        self.neighbors.clear();
    }

    /// Folds one netlink message in.
    pub fn apply(&mut self, msg: &RouteNetlinkMessage) -> Changed {
        match msg {
            RouteNetlinkMessage::NewLink(l) => self.link(l, false),
            RouteNetlinkMessage::DelLink(l) => self.link(l, true),
            RouteNetlinkMessage::NewAddress(a) => self.address(a, false),
            RouteNetlinkMessage::DelAddress(a) => self.address(a, true),
            RouteNetlinkMessage::NewRoute(r) => self.route(r, false),
            RouteNetlinkMessage::DelRoute(r) => self.route(r, true),
            RouteNetlinkMessage::NewNeighbour(n) => self.neighbor(n, false),
            RouteNetlinkMessage::DelNeighbour(n) => self.neighbor(n, true),
            _ => Changed::Nothing,
        }
    }

    fn exported(&self, name: &str) -> bool {
        name != "lo"
            && (self.filter.interfaces.is_empty()
                || self.filter.interfaces.iter().any(|i| i == name))
    }

    fn link(&mut self, l: &LinkMessage, deleted: bool) -> Changed {
        let index = l.header.index;
        if deleted {
            return match self.links.remove(&index) {
                Some(old) if self.exported(&old.name) => Changed::Interfaces,
                _ => Changed::Nothing,
            };
        }
        let mut link = Link {
            name: String::new(),
            mac: None,
            running: l.header.flags.contains(LinkFlags::Running),
        };
        for a in &l.attributes {
            match a {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(b) if b.len() == 6 => {
                    link.mac = Some(MacAddr::from_slice(b))
                }
                _ => {}
            }
        }
        let exported = self.exported(&link.name);
        match self.links.insert(index, link.clone()) {
            Some(old) if old == link || !exported => Changed::Nothing,
            Some(old) if old.name == link.name && old.mac == link.mac => {
                if old.running != link.running {
                    Changed::LinkFlap
                } else {
                    Changed::Nothing
                }
            }
            _ if exported => Changed::Interfaces,
            _ => Changed::Nothing,
        }
    }

    fn address(&mut self, a: &AddressMessage, deleted: bool) -> Changed {
        // IPv4's local address is the interface's own (`address` is the peer's on
        // a point-to-point link); IPv6 gives only `address` outside such links.
        let ip = a
            .attributes
            .iter()
            .find_map(|x| match x {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            })
            .or_else(|| {
                a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
        let Some(net) = ip.and_then(|ip| IpNet::new(ip, a.header.prefix_len).ok()) else {
            return Changed::Nothing;
        };
        let list = self.addresses.entry(a.header.index).or_default();
        let before = list.len();
        list.retain(|n| *n != net);
        if !deleted {
            list.push(net);
        }
        if before == list.len() && deleted {
            Changed::Nothing
        } else {
            Changed::Interfaces
        }
    }

    /// A route of a prefix added, replaced (same table and metric) or deleted
    /// (the paths the message names, of the route of its rank: an IPv6
    /// multipath route loses its paths one message at a time): a change when
    /// the route the kernel forwards by changes (a worse route coming or going
    /// is none).
    fn route(&mut self, r: &RouteMessage, deleted: bool) -> Changed {
        let Some((prefix, new)) = self.exportable(r) else {
            return Changed::Nothing;
        };
        let held = self.routes.entry(prefix).or_default();
        let before = best(held).cloned();
        match deleted {
            true => {
                for h in held.iter_mut().filter(|h| h.rank == new.rank) {
                    h.route.retain(|p| !new.route.contains(p));
                }
                held.retain(|h| !h.route.is_empty());
            }
            false => {
                held.retain(|h| h.rank != new.rank);
                held.push(new);
            }
        }
        let after = best(held).cloned();
        if held.is_empty() {
            self.routes.remove(&prefix);
        }
        match after == before {
            true => Changed::Nothing,
            false => Changed::Route(prefix),
        }
    }

    fn neighbor(&mut self, n: &NeighbourMessage, deleted: bool) -> Changed {
        // Entries for multicast or broadcast addresses (OSPF's 224.0.0.5, MLD's
        // groups) are no stations: the host refuses them as neighbours.
        let ip = n
            .attributes
            .iter()
            .find_map(|a| match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => {
                    Some(IpAddr::V4(*ip))
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => {
                    Some(IpAddr::V6(*ip))
                }
                _ => None,
            })
            .filter(is_station);
        let mac = n.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::LinkLayerAddress(b) if b.len() == 6 => Some(MacAddr::from_slice(b)),
            _ => None,
        });
        let Some(ip) = ip else {
            return Changed::Nothing;
        };
        let key = (n.header.ifindex, ip);
        // Only resolved entries are neighbours; a failed or incomplete one is gone.
        let usable = matches!(
            n.header.state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
                | NeighbourState::Noarp
        );
        let changed = match (deleted || !usable, mac) {
            (false, Some(mac)) => self.neighbors.insert(key, mac) != Some(mac),
            _ => self.neighbors.remove(&key).is_some(),
        };
        if changed {
            Changed::Neighbor(key.0, key.1)
        } else {
            Changed::Nothing
        }
    }

    /// The operation that brings the host to the kernel's state for a neighbour.
    pub fn neighbor_op(&self, ifindex: u32, address: IpAddr) -> Option<NeighborOp> {
        let link = self
            .links
            .get(&ifindex)
            .filter(|l| self.exported(&l.name))?;
        let interface = link.name.clone();
        Some(match self.neighbors.get(&(ifindex, address)) {
            Some(&mac) => NeighborOp::Add {
                address,
                mac,
                interface,
            },
            None => NeighborOp::Delete { address, interface },
        })
    }

    /// Every neighbour on an exported interface, as adds (for a full sync);
    /// IPv6 ones only with `dual_stack`.
    pub fn all_neighbors(&self, dual_stack: bool) -> Vec<NeighborOp> {
        let mut keys: Vec<(u32, IpAddr)> = self
            .neighbors
            .keys()
            .filter(|(_, a)| dual_stack || a.is_ipv4())
            .copied()
            .collect();
        keys.sort();
        keys.into_iter()
            .filter_map(|(i, a)| self.neighbor_op(i, a))
            .collect()
    }

    /// The prefix, rank and next hop of a route the filter exports.
    fn exportable(&self, r: &RouteMessage) -> Option<(IpNet, Held)> {
        let h = &r.header;
        let unspecified: IpAddr = match h.address_family {
            AddressFamily::Inet => std::net::Ipv4Addr::UNSPECIFIED.into(),
            AddressFamily::Inet6 => std::net::Ipv6Addr::UNSPECIFIED.into(),
            _ => return None,
        };
        if h.kind != RouteType::Unicast {
            return None;
        }
        let table = r
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(h.table));
        let table = self.filter.tables.iter().position(|&t| t == table)?;
        if !self.filter.protocols.contains(&u8::from(h.protocol)) {
            return None;
        }
        let mut dst = unspecified;
        let (mut via, mut oif, mut metric) = (None, None, 0);
        let mut route = KernelRoute::new();
        for a in &r.attributes {
            match a {
                RouteAttribute::Destination(d) => dst = route_address(d)?,
                RouteAttribute::Gateway(g) => via = Some(route_address(g)?),
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Priority(p) => metric = *p,
                // Every live path of a multipath route (also the expanded form
                // of a route using the kernel's nexthop objects, as FRR installs
                // them: docs/agent.md).
                RouteAttribute::MultiPath(paths) => route.extend(
                    paths
                        .iter()
                        .filter(|p| !p.flags.contains(RouteNextHopFlags::Dead))
                        .map(|p| KernelPath {
                            via: p.attributes.iter().find_map(|x| match x {
                                RouteAttribute::Gateway(g) => route_address(g),
                                _ => None,
                            }),
                            oif: p.interface_index,
                            weight: u16::from(p.hops) + 1,
                        }),
                ),
                _ => {}
            }
        }
        if let Some(oif) = oif {
            route.push(KernelPath {
                via,
                oif,
                weight: 1,
            });
        }
        // A gateway of the other family (RFC 5549) is not exported: the host's
        // tables hold a gateway of the route's family.
        if route.is_empty()
            || route
                .iter()
                .any(|p| p.via.is_some_and(|v| v.is_ipv4() != dst.is_ipv4()))
        {
            return None;
        }
        route.sort_unstable();
        route.dedup();
        let prefix = IpNet::new(dst, h.destination_prefix_length).ok()?;
        let held = Held {
            rank: Rank { table, metric },
            route,
        };
        Some((prefix, held))
    }

    /// The exported interfaces, as the protocol declares them: each with its
    /// first IPv4 address, and with `dual_stack` (protocol version 4) its IPv6
    /// addresses after it, link-local included.
    pub fn interfaces(&self, dual_stack: bool) -> Vec<Interface> {
        let mut out: Vec<Interface> = self
            .links
            .iter()
            .filter(|(_, l)| self.exported(&l.name))
            .filter_map(|(index, l)| {
                let mac = l.mac?;
                let list = self.addresses.get(index)?;
                let v4 = *list.iter().find(|a| matches!(a, IpNet::V4(_)))?;
                let v6 = list
                    .iter()
                    .filter(|a| dual_stack && matches!(a, IpNet::V6(_)));
                Some(Interface {
                    name: l.name.clone(),
                    mac,
                    addresses: std::iter::once(v4).chain(v6.copied()).collect(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The operation that brings the host to the kernel's state for `prefix`:
    /// the paths of the route the kernel forwards by that leave by exported
    /// interfaces; the first of them only unless `multipath` (protocol
    /// version 5).
    pub fn op(&self, prefix: IpNet, multipath: bool) -> RouteOp {
        let route = self.routes.get(&prefix).and_then(|h| best(h));
        let mut paths: Paths = route
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let link = self.links.get(&p.oif)?;
                (self.exported(&link.name)
                    && link.mac.is_some()
                    && self.addresses.contains_key(&p.oif))
                .then(|| Path {
                    via: p.via,
                    interface: link.name.clone(),
                    weight: p.weight,
                })
            })
            .collect();
        if !multipath || paths.len() == 1 {
            paths.truncate(1);
            if let Some(p) = paths.first_mut() {
                p.weight = 1;
            }
        }
        match paths.is_empty() {
            false => RouteOp::Add {
                prefix: prefix.trunc(),
                paths,
            },
            true => RouteOp::Delete {
                prefix: prefix.trunc(),
            },
        }
    }

    /// Every exportable route, as adds (for a full sync); IPv6 ones only with
    /// `dual_stack`, every path only with `multipath`.
    pub fn all_adds(&self, dual_stack: bool, multipath: bool) -> Vec<RouteOp> {
        let mut prefixes: Vec<IpNet> = self
            .routes
            .keys()
            .filter(|p| dual_stack || matches!(p, IpNet::V4(_)))
            .copied()
            .collect();
        prefixes.sort();
        prefixes
            .into_iter()
            .map(|p| self.op(p, multipath))
            .filter(|op| matches!(op, RouteOp::Add { .. }))
            .collect()
    }

    /// Number of exportable routes held.
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }
}

/// The route the kernel forwards by, of a prefix's routes.
fn best(held: &[Held]) -> Option<&KernelRoute> {
    held.iter().min_by_key(|h| h.rank).map(|h| &h.route)
}

/// Whether `ip` can be a neighbour: a unicast address.
fn is_station(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified()),
        IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
    }
}

/// An IPv4 or IPv6 address of a route message.
fn route_address(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(ip) => Some((*ip).into()),
        RouteAddress::Inet6(ip) => Some((*ip).into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::route::RouteProtocol;

    fn filter() -> Filter {
        Filter {
            tables: vec![254],
            protocols: vec![4, 12],
            interfaces: vec![],
        }
    }

    fn link(index: u32, name: &str, mac: [u8; 6], running: bool) -> RouteNetlinkMessage {
        let mut l = LinkMessage::default();
        l.header.index = index;
        if running {
            l.header.flags = LinkFlags::Up | LinkFlags::Running;
        }
        l.attributes = vec![
            LinkAttribute::IfName(name.into()),
            LinkAttribute::Address(mac.to_vec()),
        ];
        RouteNetlinkMessage::NewLink(l)
    }

    fn addr(index: u32, ip: [u8; 4], len: u8) -> RouteNetlinkMessage {
        let mut a = AddressMessage::default();
        a.header.family = AddressFamily::Inet;
        a.header.index = index;
        a.header.prefix_len = len;
        a.attributes = vec![AddressAttribute::Local(IpAddr::V4(ip.into()))];
        RouteNetlinkMessage::NewAddress(a)
    }

    fn route(
        dst: [u8; 4],
        len: u8,
        via: Option<[u8; 4]>,
        oif: u32,
        proto: u8,
        table: u8,
    ) -> RouteMessage {
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet;
        r.header.kind = RouteType::Unicast;
        r.header.destination_prefix_length = len;
        r.header.table = table;
        r.header.protocol = RouteProtocol::from(proto);
        r.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(dst.into())));
        if let Some(v) = via {
            r.attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet(v.into())));
        }
        r.attributes.push(RouteAttribute::Oif(oif));
        r
    }

    #[test]
    fn exports_what_the_filter_says() {
        let mut k = KernelState::new(filter());
        assert_eq!(
            k.apply(&link(2, "eth1", [2, 0, 0, 0, 2, 1], true)),
            Changed::Interfaces
        );
        assert_eq!(k.apply(&addr(2, [10, 0, 2, 1], 24)), Changed::Interfaces);
        k.apply(&link(1, "lo", [0; 6], true));
        assert_eq!(k.interfaces(true).len(), 1);
        assert_eq!(
            k.interfaces(true)[0].addresses[0].to_string(),
            "10.0.2.1/24"
        );

        let bird = route([10, 9, 0, 0], 16, Some([10, 0, 2, 2]), 2, 12, 254);
        let p: IpNet = "10.9.0.0/16".parse().unwrap();
        assert_eq!(
            k.apply(&RouteNetlinkMessage::NewRoute(bird.clone())),
            Changed::Route(p)
        );
        assert_eq!(
            k.op(p, true),
            RouteOp::Add {
                prefix: p,
                paths: [Path::new(Some("10.0.2.2".parse().unwrap()), "eth1")].into(),
            }
        );
        // Another protocol, another table, the local table: not exported.
        for other in [
            route([10, 8, 0, 0], 16, Some([10, 0, 2, 2]), 2, 186, 254),
            route([10, 7, 0, 0], 16, Some([10, 0, 2, 2]), 2, 12, 100),
            route([10, 0, 2, 1], 32, None, 2, 12, 255),
        ] {
            assert_eq!(
                k.apply(&RouteNetlinkMessage::NewRoute(other)),
                Changed::Nothing
            );
        }
        assert_eq!(k.route_count(), 1);
        // Deleting another route for the same prefix keeps ours.
        let other_gw = route([10, 9, 0, 0], 16, Some([10, 0, 2, 3]), 2, 12, 254);
        assert_eq!(
            k.apply(&RouteNetlinkMessage::DelRoute(other_gw)),
            Changed::Nothing
        );
        assert_eq!(
            k.apply(&RouteNetlinkMessage::DelRoute(bird)),
            Changed::Route(p)
        );
        assert_eq!(k.op(p, true), RouteOp::Delete { prefix: p });
    }

    /// `r` with metric `metric`.
    fn with_metric(mut r: RouteMessage, metric: u32) -> RouteMessage {
        r.attributes.push(RouteAttribute::Priority(metric));
        r
    }

    #[test]
    fn the_route_the_kernel_forwards_by_is_exported_and_the_next_takes_over() {
        let p: IpNet = "10.77.0.0/16".parse().unwrap();
        let via = |last: u8| RouteOp::Add {
            prefix: p,
            paths: [Path::new(Some(IpAddr::from([10, 0, 2, last])), "eth1")].into(),
        };
        let better = with_metric(
            route([10, 77, 0, 0], 16, Some([10, 0, 2, 2]), 2, 12, 254),
            10,
        );
        let worse = with_metric(
            route([10, 77, 0, 0], 16, Some([10, 0, 2, 3]), 2, 12, 254),
            20,
        );
        for better_first in [true, false] {
            let mut k = KernelState::new(filter());
            k.apply(&link(2, "eth1", [2, 0, 0, 0, 2, 1], true));
            k.apply(&addr(2, [10, 0, 2, 1], 24));
            let add = |r: &RouteMessage| RouteNetlinkMessage::NewRoute(r.clone());
            let (first, second) = match better_first {
                true => (&better, &worse),
                false => (&worse, &better),
            };
            assert_eq!(k.apply(&add(first)), Changed::Route(p));
            let second_changes = match better_first {
                true => Changed::Nothing,
                false => Changed::Route(p),
            };
            assert_eq!(k.apply(&add(second)), second_changes);
            assert_eq!(k.op(p, true), via(2), "the lower metric");
            assert_eq!(k.route_count(), 1);
            // The better one goes: the other takes over (one add: no gap).
            let del = RouteNetlinkMessage::DelRoute(better.clone());
            assert_eq!(k.apply(&del), Changed::Route(p));
            assert_eq!(k.op(p, true), via(3));
            // It comes back: it wins again; the worse one going changes nothing.
            assert_eq!(k.apply(&add(&better)), Changed::Route(p));
            let del = RouteNetlinkMessage::DelRoute(worse.clone());
            assert_eq!(k.apply(&del), Changed::Nothing);
            assert_eq!(k.op(p, true), via(2));
        }
    }

    #[test]
    fn a_table_earlier_in_the_filter_wins_over_a_lower_metric() {
        let mut f = filter();
        f.tables = vec![254, 100];
        let mut k = KernelState::new(f);
        k.apply(&link(2, "eth1", [2, 0, 0, 0, 2, 1], true));
        k.apply(&addr(2, [10, 0, 2, 1], 24));
        let p: IpNet = "10.77.0.0/16".parse().unwrap();
        let main = with_metric(
            route([10, 77, 0, 0], 16, Some([10, 0, 2, 2]), 2, 12, 254),
            50,
        );
        let other = with_metric(
            route([10, 77, 0, 0], 16, Some([10, 0, 2, 3]), 2, 12, 100),
            1,
        );
        k.apply(&RouteNetlinkMessage::NewRoute(other));
        k.apply(&RouteNetlinkMessage::NewRoute(main));
        assert!(
            matches!(k.op(p, true), RouteOp::Add { paths, .. } if paths[0].via == Some(IpAddr::from([10, 0, 2, 2])))
        );
    }

    /// `r` with its gateway and interface replaced by the paths `paths`
    /// (gateway, interface, flags, hops), as the kernel reports a multipath route.
    fn multipath(
        mut r: RouteMessage,
        paths: &[([u8; 4], u32, RouteNextHopFlags, u8)],
    ) -> RouteMessage {
        r.attributes
            .retain(|a| !matches!(a, RouteAttribute::Gateway(_) | RouteAttribute::Oif(_)));
        let paths = paths.iter().map(|&(via, oif, flags, hops)| {
            let mut p = netlink_packet_route::route::RouteNextHop::default();
            p.flags = flags;
            p.hops = hops;
            p.interface_index = oif;
            p.attributes = vec![RouteAttribute::Gateway(RouteAddress::Inet(via.into()))];
            p
        });
        r.attributes
            .push(RouteAttribute::MultiPath(paths.collect()));
        r
    }

    #[test]
    fn a_multipath_route_is_exported_whole_with_its_weights_and_live_paths() {
        let mut k = KernelState::new(filter());
        k.apply(&link(2, "eth1", [2, 0, 0, 0, 2, 1], true));
        k.apply(&addr(2, [10, 0, 2, 1], 24));
        k.apply(&link(3, "eth2", [2, 0, 0, 0, 2, 2], true));
        k.apply(&addr(3, [10, 0, 3, 1], 24));
        let p: IpNet = "10.77.0.0/16".parse().unwrap();
        let none = RouteNetlinkMessage::NewRoute;
        let base = route([10, 77, 0, 0], 16, None, 2, 12, 254);
        let live = RouteNextHopFlags::empty();
        let both = multipath(
            base.clone(),
            &[([10, 0, 3, 2], 3, live, 2), ([10, 0, 2, 2], 2, live, 0)],
        );
        assert_eq!(k.apply(&none(both.clone())), Changed::Route(p));
        let path = |v: [u8; 4], i: &str, weight| Path {
            weight,
            ..Path::new(Some(IpAddr::from(v)), i)
        };
        assert_eq!(
            k.op(p, true),
            RouteOp::Add {
                prefix: p,
                paths: Paths::from_iter([
                    path([10, 0, 2, 2], "eth1", 1),
                    path([10, 0, 3, 2], "eth2", 3)
                ]),
            },
            "every path, sorted, weight = hops + 1"
        );
        // An older host gets one path.
        assert_eq!(
            k.op(p, false),
            RouteOp::Add {
                prefix: p,
                paths: [path([10, 0, 2, 2], "eth1", 1)].into(),
            }
        );
        // A path the kernel marks dead is not one the host may use.
        let one_dead = multipath(
            base.clone(),
            &[
                ([10, 0, 3, 2], 3, RouteNextHopFlags::Dead, 2),
                ([10, 0, 2, 2], 2, live, 0),
            ],
        );
        assert_eq!(k.apply(&none(one_dead)), Changed::Route(p));
        assert_eq!(
            k.op(p, true),
            RouteOp::Add {
                prefix: p,
                paths: [path([10, 0, 2, 2], "eth1", 1)].into(),
            }
        );
        // A path on an interface that is not exported is left out.
        k.apply(&none(both.clone()));
        k.apply(&link(3, "eth2", [2, 0, 0, 0, 2, 2], true));
        let mut f = filter();
        f.interfaces = vec!["eth1".into()];
        let mut only_eth1 = KernelState::new(f);
        for m in [
            link(2, "eth1", [2, 0, 0, 0, 2, 1], true),
            addr(2, [10, 0, 2, 1], 24),
            link(3, "eth2", [2, 0, 0, 0, 2, 2], true),
            addr(3, [10, 0, 3, 1], 24),
            none(both.clone()),
        ] {
            only_eth1.apply(&m);
        }
        assert!(matches!(only_eth1.op(p, true), RouteOp::Add { paths, .. } if paths.len() == 1));
        // Deleted whole: the prefix goes.
        assert_eq!(
            k.apply(&RouteNetlinkMessage::DelRoute(both)),
            Changed::Route(p)
        );
        assert_eq!(k.op(p, true), RouteOp::Delete { prefix: p });
    }

    fn addr6(index: u32, ip: &str, len: u8) -> RouteNetlinkMessage {
        let mut a = AddressMessage::default();
        a.header.family = AddressFamily::Inet6;
        a.header.index = index;
        a.header.prefix_len = len;
        a.attributes = vec![AddressAttribute::Address(IpAddr::V6(ip.parse().unwrap()))];
        RouteNetlinkMessage::NewAddress(a)
    }

    fn route6(dst: &str, len: u8, via: &str, oif: u32) -> RouteNetlinkMessage {
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet6;
        r.header.kind = RouteType::Unicast;
        r.header.destination_prefix_length = len;
        r.header.table = 254;
        r.header.protocol = RouteProtocol::from(12);
        r.attributes = vec![
            RouteAttribute::Destination(RouteAddress::Inet6(dst.parse().unwrap())),
            RouteAttribute::Gateway(RouteAddress::Inet6(via.parse().unwrap())),
            RouteAttribute::Oif(oif),
        ];
        RouteNetlinkMessage::NewRoute(r)
    }

    fn neighbour(index: u32, ip: IpAddr, mac: [u8; 6]) -> RouteNetlinkMessage {
        let mut n = NeighbourMessage::default();
        n.header.ifindex = index;
        n.header.state = NeighbourState::Reachable;
        let address = match ip {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        };
        n.attributes = vec![
            NeighbourAttribute::Destination(address),
            NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
        ];
        RouteNetlinkMessage::NewNeighbour(n)
    }

    #[test]
    fn ipv6_routes_neighbours_and_addresses_go_to_a_dual_stack_host_only() {
        let mut k = KernelState::new(filter());
        k.apply(&link(2, "eth1", [2, 0, 0, 0, 2, 1], true));
        k.apply(&addr(2, [10, 0, 2, 1], 24));
        assert_eq!(k.apply(&addr6(2, "2001:db8:2::1", 64)), Changed::Interfaces);
        k.apply(&addr6(2, "fe80::ff:fe00:201", 64));
        let declared = |dual| {
            k.interfaces(dual)[0]
                .addresses
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            declared(true),
            ["10.0.2.1/24", "2001:db8:2::1/64", "fe80::ff:fe00:201/64"]
        );
        assert_eq!(declared(false), ["10.0.2.1/24"], "a version-3 host");

        let p: IpNet = "2001:db8:9::/48".parse().unwrap();
        assert_eq!(
            k.apply(&route6("2001:db8:9::", 48, "fe80::2", 2)),
            Changed::Route(p)
        );
        let add = RouteOp::Add {
            prefix: p,
            paths: [Path::new(Some("fe80::2".parse().unwrap()), "eth1")].into(),
        };
        assert_eq!(k.all_adds(true, true), vec![add]);
        assert!(k.all_adds(false, true).is_empty());

        let ll: IpAddr = "fe80::2".parse().unwrap();
        let mac = [2, 0, 0, 0, 0xbb, 2];
        assert_eq!(k.apply(&neighbour(2, ll, mac)), Changed::Neighbor(2, ll));
        for group in ["ff02::1:ff00:2", "224.0.0.5", "255.255.255.255"] {
            assert_eq!(
                k.apply(&neighbour(2, group.parse().unwrap(), mac)),
                Changed::Nothing,
                "{group}: a multicast or broadcast entry is no neighbour"
            );
        }
        assert_eq!(k.all_neighbors(true).len(), 1);
        assert!(k.all_neighbors(false).is_empty());
    }

    #[test]
    fn link_state_changes_are_flaps() {
        let mut k = KernelState::new(filter());
        k.apply(&link(2, "eth1", [2, 0, 0, 0, 2, 1], true));
        assert_eq!(
            k.apply(&link(2, "eth1", [2, 0, 0, 0, 2, 1], false)),
            Changed::LinkFlap
        );
        assert_eq!(
            k.apply(&link(2, "eth1", [2, 0, 0, 0, 2, 1], false)),
            Changed::Nothing
        );
    }
}
