//! `vrfwd ctl route get`: where the fast path sends a packet of a given flow at
//! this moment, read from the published table as the lcores read it (and
//! through the lcores' own choice of a route's path, `lcore::multipath`): the
//! matching prefix, the next hop (a multipath route's path for that flow, and
//! the next one whose neighbour resolves when the flow's own does not), the
//! egress interface and the neighbour's MAC; or why the packet goes to the
//! guest instead (docs/operating.md, "Where does an address go").
//!
//! The flow hash is the one the lcores compute from the headers; a port whose
//! NIC delivers an RSS hash picks paths by that hash instead, which this cannot
//! know.
use crate::dataplane::{neighbor6_key, neighbor_key, Flow, NextHop, Vr};
use crate::lcore::multipath::{self, Path, Route};
use crate::lpm::DualPair;
use crate::stats::PuntReason;
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;
use vrfwd_wire::MacAddr;

/// The packet asked about: its addresses, and for the choice of a multipath
/// route's path its protocol and ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub dst: IpAddr,
    pub src: IpAddr,
    pub protocol: u8,
    /// Source and destination ports (taken only for protocols that carry them).
    pub ports: (u16, u16),
}

impl Probe {
    /// The flow the lcores hash for this packet (as `lcore::multipath::hash4`
    /// and `hash6` read it from the headers).
    fn flow(&self) -> Flow {
        let widen = |a: IpAddr| match a {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        Flow {
            src: widen(self.src),
            dst: widen(self.dst),
            protocol: self.protocol,
            ports: Flow::has_ports(self.protocol).then_some(self.ports),
        }
    }
}

/// Where the packet goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouteGet {
    /// The matching prefix; None: no route.
    pub prefix: Option<String>,
    /// A multipath route's path the flow takes (its index among the paths
    /// `routes` lists) and how many paths the route has.
    pub path: Option<(usize, usize)>,
    /// The next hop as `routes` shows it (`via ADDR dev IFACE`, `dev IFACE`).
    pub next_hop: Option<String>,
    /// The neighbour's MAC, when it is resolved.
    pub mac: Option<String>,
    /// Why the fast path does not forward the packet itself (the punt reason
    /// `stats` counts it under): it goes to the guest.
    pub to_guest: Option<String>,
}

impl fmt::Display for RouteGet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "prefix {}", self.prefix.as_deref().unwrap_or("none"))?;
        if let Some((path, paths)) = self.path {
            write!(f, " path {} of {paths}", path + 1)?;
        }
        if let Some(next_hop) = &self.next_hop {
            write!(f, " {next_hop}")?;
        }
        if let Some(mac) = &self.mac {
            write!(f, " lladdr {mac}")?;
        }
        match &self.to_guest {
            Some(reason) => writeln!(f, " to guest ({reason})"),
            None => writeln!(f, " forwarded"),
        }
    }
}

/// Where VR `vr`'s fast path, whose published tables are `tables`, sends
/// `probe` at `now` (the neighbour caches' clock).
pub fn answer(vr: &Vr, tables: &DualPair, probe: &Probe, now: u32) -> RouteGet {
    let (len, slot) = match probe.dst {
        IpAddr::V4(a) => {
            let a = u32::from(a);
            let len = tables.v4.rib().longest_match(a).map(|(len, _)| len);
            (len, tables.v4.fib().lookup(a))
        }
        IpAddr::V6(a) => {
            let a = u128::from(a);
            let len = tables.v6.rib().longest_match(a).map(|(len, _)| len);
            (len, tables.v6.fib().lookup(a))
        }
    };
    RouteGet {
        prefix: len
            .and_then(|len| IpNet::new(probe.dst, len).ok())
            .map(|p| p.trunc().to_string()),
        ..of_route(vr, slot, probe, now)
    }
}

/// Where route `slot` of `vr` (what its table gave for `probe.dst`; None: no
/// route) sends `probe` at `now`; no prefix.
pub fn of_route(vr: &Vr, slot: Option<u32>, probe: &Probe, now: u32) -> RouteGet {
    let mut get = RouteGet::default();
    if let Err(reason) = resolve(vr, slot, probe, now, &mut get) {
        get.to_guest = Some(reason.label().to_owned());
    }
    get
}

/// Fills `get` with the next hop of route `slot` (None: no route) for `probe`
/// and its neighbour, or says why the packet is punted.
fn resolve(
    vr: &Vr,
    slot: Option<u32>,
    probe: &Probe,
    now: u32,
    get: &mut RouteGet,
) -> Result<(), PuntReason> {
    let (group, chosen) = match multipath::route(vr, slot, || probe.flow().hash())? {
        Route::Multipath(Path { group, path }) => (group, path),
        Route::One(next_hop) => {
            get.next_hop = next_hop.map(|nh| vr.next_hop_name(nh));
            let mac = neighbor(vr, next_hop, probe.dst, now)?;
            get.mac = Some(MacAddr::from_u64(mac).to_string());
            return Ok(());
        }
    };
    let n = group.slots().len();
    get.path = Some((chosen, n));
    get.next_hop = Some(vr.next_hop_name(group.next_hop(chosen)));
    // The flow's own path, else the next that resolves (lcore::multipath).
    let (path, mac) = group
        .fallbacks(chosen)
        .find_map(|p| {
            Some((
                p,
                neighbor(vr, Some(group.next_hop(p)), probe.dst, now).ok()?,
            ))
        })
        .ok_or(PuntReason::Unresolved)?;
    get.path = Some((path, n));
    get.next_hop = Some(vr.next_hop_name(group.next_hop(path)));
    get.mac = Some(MacAddr::from_u64(mac).to_string());
    Ok(())
}

/// The MAC of the neighbour `next_hop` sends `dst` to, as the lcores resolve it.
fn neighbor(vr: &Vr, next_hop: Option<NextHop>, dst: IpAddr, now: u32) -> Result<u64, PuntReason> {
    let found = match (next_hop, dst) {
        (Some(NextHop::Attached { iface }), IpAddr::V4(a)) => {
            vr.neighbors.get(neighbor_key(iface, a.into()), now)
        }
        (Some(NextHop::Gateway { iface, via }), IpAddr::V4(_)) => {
            vr.neighbors.get(neighbor_key(iface, via), now)
        }
        (Some(NextHop::Attached { iface }), IpAddr::V6(a)) => {
            vr.neighbors6.get(neighbor6_key(iface, a.into()), now)
        }
        (Some(NextHop::Gateway6 { iface, via }), IpAddr::V6(_)) => {
            vr.neighbors6.get(neighbor6_key(iface, via), now)
        }
        // Local, a gateway of the other family, a group as a path: the guest's.
        _ => return Err(PuntReason::ToRouter),
    };
    found.ok_or(PuntReason::Unresolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::STATIC;
    use crate::lcore::testing::dataplane;
    use std::net::Ipv4Addr;

    fn probe(dst: [u8; 4]) -> Probe {
        Probe {
            dst: Ipv4Addr::from(dst).into(),
            src: Ipv4Addr::new(10, 0, 1, 5).into(),
            protocol: 17,
            ports: (4000, 5000),
        }
    }

    #[test]
    fn each_answer_of_a_vrs_table() {
        let t = dataplane();
        let (vr, tables) = (&t.dp.vrs[0], &t.routes[0].tables);
        let get = |dst| answer(vr, tables, &probe(dst), 0);
        let none = get([192, 0, 2, 1]);
        assert_eq!(none.prefix, None);
        assert_eq!(none.to_guest.as_deref(), Some("no_route"));
        assert_eq!(none.to_string(), "prefix none to guest (no_route)\n");

        let routed = get([10, 9, 3, 4]);
        assert_eq!(routed.prefix.as_deref(), Some("10.9.0.0/16"));
        assert_eq!(routed.next_hop.as_deref(), Some("via 10.0.2.2 dev eth1"));
        assert_eq!(routed.to_guest.as_deref(), Some("unresolved"));
        vr.neighbors.learn(
            neighbor_key(1, u32::from(Ipv4Addr::new(10, 0, 2, 2))),
            0x02_00_00_00_bb_02,
            STATIC,
        );
        let routed = get([10, 9, 3, 4]);
        assert_eq!(routed.mac.as_deref(), Some("02:00:00:00:bb:02"));
        assert_eq!(
            routed.to_string(),
            "prefix 10.9.0.0/16 via 10.0.2.2 dev eth1 lladdr 02:00:00:00:bb:02 forwarded\n"
        );

        let own = get([10, 0, 1, 1]);
        assert_eq!(own.next_hop.as_deref(), Some("local"));
        assert_eq!(own.to_guest.as_deref(), Some("to_router"));
        let attached = get([10, 0, 1, 77]);
        assert_eq!(attached.prefix.as_deref(), Some("10.0.1.0/24"));
        assert_eq!(attached.next_hop.as_deref(), Some("dev eth0"));
        assert_eq!(attached.to_guest.as_deref(), Some("unresolved"));
    }
}
