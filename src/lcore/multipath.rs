//! Multipath: which path of a multipath route's group a packet takes. The
//! packet's flow (addresses, protocol, ports when it carries them and is not a
//! fragment) is hashed once, when its route turns out to be a group (or the
//! hash the port's RSS delivered with it is taken); the hash picks a bucket and
//! the bucket a path, so a flow keeps its path and its order
//! (docs/architecture.md, "Multipath").
//!
//! A path whose neighbour is unresolved is skipped for the next path in the
//! group that resolves, so its flows keep flowing; about once a second per VR
//! one of them is punted instead, so the guest's kernel resolves the
//! neighbour, as it would on its own path.
use crate::dataplane::{from_rss, Flow, Group, NextHop, Vr};
use crate::dpdk::Mbuf;
use crate::stats::PuntReason;
use vrfwd_wire::ethernet::HEADER_LEN as ETH_LEN;
use vrfwd_wire::ipv4::Ipv4Packet;
use vrfwd_wire::ipv6::{self, Ipv6Packet};

/// The ports at the start of `transport`, if there.
fn ports(transport: Option<&[u8]>) -> Option<(u16, u16)> {
    let p = transport?.get(..4)?;
    Some((
        u16::from_be_bytes([p[0], p[1]]),
        u16::from_be_bytes([p[2], p[3]]),
    ))
}

/// The flow hash of `m`: the one its port's RSS computed when there is one,
/// else `software`'s of its frame ([`hash4`], [`hash6`]).
#[inline(always)]
pub fn hash(m: &Mbuf, software: fn(&[u8]) -> u32) -> u32 {
    match m.rss_hash() {
        Some(rss) => from_rss(rss),
        None => software(m.data()),
    }
}

/// The hash of the flow of the IPv4 packet in `frame` (one [`super::ipv4::input`]
/// took: a whole 20-byte header after Ethernet).
#[inline]
pub fn hash4(frame: &[u8]) -> u32 {
    let Some(ip) = frame
        .get(ETH_LEN..)
        .and_then(|b| Ipv4Packet::new_checked(b).ok())
    else {
        return 0;
    };
    let transport = (Flow::has_ports(ip.protocol()) && !ip.is_fragment())
        .then(|| frame.get(ETH_LEN + ip.header_len()..))
        .flatten();
    Flow {
        src: u128::from(u32::from(ip.src())),
        dst: u128::from(u32::from(ip.dst())),
        protocol: ip.protocol(),
        ports: ports(transport),
    }
    .hash()
}

/// The hash of the flow of the IPv6 packet in `frame` (one
/// [`super::ipv6::input`] took: no extension header).
#[inline]
pub fn hash6(frame: &[u8]) -> u32 {
    let Some(ip) = frame
        .get(ETH_LEN..)
        .and_then(|b| Ipv6Packet::new_checked(b).ok())
    else {
        return 0;
    };
    let transport = Flow::has_ports(ip.next_header())
        .then(|| frame.get(ETH_LEN + ipv6::HEADER_LEN..))
        .flatten();
    Flow {
        src: u128::from(ip.src()),
        dst: u128::from(ip.dst()),
        protocol: ip.next_header(),
        ports: ports(transport),
    }
    .hash()
}

/// When each VR last had a packet punted to resolve a multipath route's
/// neighbour (one lcore's).
pub struct Pacer {
    last: Vec<u64>,
    /// TSC ticks between two such punts for one VR.
    interval: u64,
}

impl Pacer {
    /// For `vrs` VRs, one punt per VR per `interval` TSC ticks.
    pub fn new(vrs: usize, interval: u64) -> Pacer {
        Pacer {
            last: vec![0; vrs],
            interval,
        }
    }

    /// The pacing of lcore `lcore` at TSC `now_tsc`.
    #[inline(always)]
    pub fn at(&mut self, lcore: usize, now_tsc: u64) -> Pacing<'_> {
        Pacing {
            lcore,
            pacer: self,
            now_tsc,
        }
    }

    /// Whether VR `v` may punt one now (and then it is counted as done).
    fn due(&mut self, v: usize, now: u64) -> bool {
        let Some(last) = self.last.get_mut(v) else {
            return false;
        };
        let due = *last == 0 || now.wrapping_sub(*last) >= self.interval;
        if due {
            *last = now;
        }
        due
    }
}

/// The path of a multipath route's group a packet's flow hashes to.
#[derive(Clone, Copy)]
pub struct Path<'a> {
    pub group: &'a Group,
    pub path: usize,
}

/// What route `next_hop` of `vr` (None: no route) is: one next hop, or a
/// group, of which `hash` (the packet's flow hash, computed only then) picks
/// the path.
#[derive(Clone, Copy)]
pub enum Route<'a> {
    /// The slot's next hop (None: an empty slot).
    One(Option<NextHop>),
    Multipath(Path<'a>),
}

/// The route `next_hop` of `vr` (None: no route) names; a group's path is the
/// one `hash` (the packet's flow hash, computed only then) picks.
#[inline(always)]
pub fn route(
    vr: &Vr,
    next_hop: Option<u32>,
    hash: impl FnOnce() -> u32,
) -> Result<Route<'_>, PuntReason> {
    match vr.next_hops.get(next_hop.ok_or(PuntReason::NoRoute)?) {
        Some(NextHop::Group { group }) => {
            let group = vr.groups.get(group).ok_or(PuntReason::ToRouter)?;
            let path = group.choose(hash());
            Ok(Route::Multipath(Path { group, path }))
        }
        one => Ok(Route::One(one)),
    }
}

/// What resolving a path needs besides the path: the lcore (for the per-path
/// counters) and its pacer of resolving punts.
pub struct Pacing<'a> {
    pub lcore: usize,
    pub pacer: &'a mut Pacer,
    pub now_tsc: u64,
}

/// Resolves `chosen` (a path of VR `v`'s group) with `resolve` (a next hop's
/// egress and neighbour), counted; when its neighbour is unresolved, the next
/// path of the group that resolves (but for one packet per VR and interval,
/// punted so the guest resolves it).
#[inline(always)]
pub fn resolve<T>(
    chosen: Path<'_>,
    v: usize,
    pacing: Pacing<'_>,
    mut resolve: impl FnMut(Option<NextHop>) -> Result<T, PuntReason>,
) -> Result<T, PuntReason> {
    let Path { group, path } = chosen;
    match resolve(Some(group.next_hop(path))) {
        Ok(out) => {
            group.count(pacing.lcore, path);
            Ok(out)
        }
        Err(PuntReason::Unresolved) if !pacing.pacer.due(v, pacing.now_tsc) => {
            other_path(group, path, pacing.lcore, resolve)
        }
        Err(e) => Err(e),
    }
}

/// The first path of `g` after `p` whose neighbour resolves (counted), or
/// `Unresolved`.
#[cold]
#[inline(never)]
fn other_path<T>(
    g: &Group,
    p: usize,
    lcore: usize,
    mut resolve: impl FnMut(Option<NextHop>) -> Result<T, PuntReason>,
) -> Result<T, PuntReason> {
    g.fallbacks(p)
        .skip(1)
        .find_map(|q| {
            let out = resolve(Some(g.next_hop(q))).ok()?;
            g.count(lcore, q);
            Some(out)
        })
        .ok_or(PuntReason::Unresolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrfwd_wire::ethernet::{ethertype, header as eth_header};
    use vrfwd_wire::ipv4::header as ip_header;
    use vrfwd_wire::MacAddr;

    fn udp4(src: u32, sport: u16, fragment: [u8; 2]) -> Vec<u8> {
        let m = MacAddr([2, 0, 0, 0, 0, 1]);
        let mut f = eth_header(m, m, ethertype::IPV4).to_vec();
        let mut ip = ip_header(src.into(), [10, 9, 0, 1].into(), 64, 17, 8);
        ip[6..8].copy_from_slice(&fragment);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&[0, 53, 0, 8, 0, 0]);
        f
    }

    #[test]
    fn a_flows_hash_takes_its_ports_unless_fragmented() {
        let whole = [0x40, 0];
        let a = hash4(&udp4(0x0a00_0001, 1000, whole));
        assert_eq!(a, hash4(&udp4(0x0a00_0001, 1000, whole)), "stable");
        assert_ne!(a, hash4(&udp4(0x0a00_0001, 1001, whole)), "ports count");
        assert_ne!(a, hash4(&udp4(0x0a00_0002, 1000, whole)), "addresses count");
        // Fragments: no ports, so every fragment of a packet hashes alike.
        let first = hash4(&udp4(0x0a00_0001, 1000, [0x20, 0]));
        let later = hash4(&udp4(0x0a00_0001, 9, [0, 1]));
        assert_eq!(first, later);
        assert_ne!(first, a);
        // Cut short: what is there is hashed, never read past.
        let f = udp4(0x0a00_0001, 1000, whole);
        for len in 0..f.len() {
            hash4(&f[..len]);
            hash6(&f[..len]);
        }
    }

    /// VR 1's route through 10.0.2.2 and 10.0.2.3 on eth1 (lan2), equal
    /// weights, both resolved: its next-hop slot, the gateways and their MACs.
    fn two_paths(vr: &Vr) -> (u32, [u32; 2], [MacAddr; 2]) {
        use crate::dataplane::{neighbor_key, Buckets, Group, STATIC};
        let gateways = [0x0a00_0202u32, 0x0a00_0203];
        let slots: Vec<u32> = gateways
            .iter()
            .map(|&via| {
                vr.next_hops
                    .insert(NextHop::Gateway { iface: 1, via })
                    .unwrap()
            })
            .collect();
        let buckets = Buckets::new(&[1, 1]).unwrap();
        let next_hops = gateways
            .map(|via| NextHop::Gateway { iface: 1, via })
            .to_vec();
        let group = Group::new(slots, next_hops, vec![1, 1], buckets, 1);
        let group = vr.groups.install(group).unwrap();
        let index = vr.next_hops.insert(NextHop::Group { group }).unwrap();
        let macs = [[2, 0, 0, 0, 0xbb, 2], [2, 0, 0, 0, 0xbb, 3]].map(MacAddr);
        let learn = |k: usize| {
            vr.neighbors
                .learn(neighbor_key(1, gateways[k]), macs[k].to_u64(), STATIC)
        };
        learn(0);
        learn(1);
        (index, gateways, macs)
    }

    #[test]
    fn flows_spread_over_the_group_and_skip_an_unresolved_path() {
        use crate::dataplane::neighbor_key;
        use crate::lcore::ipv4::{forward, RecentNeighbors};
        use crate::lcore::testing::dataplane;
        let t = dataplane();
        let (dp, vr) = (&t.dp, &t.dp.vrs[0]);
        let (index, gateways, macs) = two_paths(vr);
        let group = match vr.next_hops.get(index) {
            Some(NextHop::Group { group }) => group,
            other => panic!("not a group: {other:?}"),
        };
        let mut pacer = Pacer::new(dp.vrs.len(), 1000);
        let mut send = |hash: u32, now_tsc: u64| {
            let route = route(vr, Some(index), || hash)?;
            assert!(matches!(route, Route::Multipath(_)), "a group's path");
            let pacing = pacer.at(0, now_tsc);
            let mut last = RecentNeighbors::default();
            forward(dp, 0, route, 0x0a09_0001, 0, &mut last, None, pacing).map(|o| o.dst)
        };
        let flows: Vec<u32> = (0..1000u32).map(|i| i.wrapping_mul(0x9e37_79b9)).collect();
        let firsts: Vec<MacAddr> = flows.iter().map(|&h| send(h, 1).unwrap()).collect();
        let to_second = firsts.iter().filter(|&&m| m == macs[1]).count();
        assert!((400..600).contains(&to_second), "{to_second} of 1000 flows");
        let g = vr.groups.get(group).unwrap();
        assert_eq!(g.packets(0) + g.packets(1), 1000, "counted per path");
        assert_eq!(g.packets(1), to_second as u64);
        // The second path's neighbour is lost: its flows take the first path,
        // but for one punted (per VR and interval) so the guest resolves it.
        vr.neighbors.forget(neighbor_key(1, gateways[1]));
        let second: Vec<u32> = flows
            .iter()
            .zip(&firsts)
            .filter(|(_, m)| **m == macs[1])
            .map(|(&h, _)| h)
            .collect();
        assert_eq!(send(second[0], 5000), Err(PuntReason::Unresolved));
        for &h in &second[1..] {
            assert_eq!(send(h, 5001), Ok(macs[0]));
        }
        assert_eq!(
            send(second[1], 7000),
            Err(PuntReason::Unresolved),
            "the next interval"
        );
        // The first path's flows never moved; with no neighbour at all, punted.
        for (&h, &m) in flows.iter().zip(&firsts).filter(|(_, m)| **m == macs[0]) {
            assert_eq!(send(h, 7001), Ok(m));
        }
        vr.neighbors.forget(neighbor_key(1, gateways[0]));
        assert_eq!(send(flows[0], 7002), Err(PuntReason::Unresolved));
    }

    #[test]
    fn route_get_names_the_path_the_fast_path_takes() {
        use crate::control::route_get::{of_route, Probe};
        use crate::lcore::ipv4::{forward, RecentNeighbors};
        use crate::lcore::testing::dataplane;
        let t = dataplane();
        let (dp, vr) = (&t.dp, &t.dp.vrs[0]);
        let (index, _, macs) = two_paths(vr);
        let mut pacer = Pacer::new(dp.vrs.len(), 1000);
        let mut taken = [0; 2];
        for i in 0..1000u32 {
            let (src, sport) = (0x0a00_0100 | (i & 0xff), 1024 + i as u16);
            let frame = udp4(src, sport, [0x40, 0]);
            let route = route(vr, Some(index), || hash4(&frame)).unwrap();
            let mut last = RecentNeighbors::default();
            let out = forward(
                dp,
                0,
                route,
                0x0a09_0001,
                0,
                &mut last,
                None,
                pacer.at(0, 1),
            );
            let sent = out.unwrap().dst;
            let probe = Probe {
                dst: std::net::Ipv4Addr::new(10, 9, 0, 1).into(),
                src: std::net::Ipv4Addr::from(src).into(),
                protocol: 17,
                ports: (sport, 53),
            };
            let get = of_route(vr, Some(index), &probe, 0);
            assert_eq!(get.mac, Some(sent.to_string()), "flow {i}: {get:?}");
            let (path, paths) = get.path.expect("a path");
            assert_eq!((macs[path], paths), (sent, 2));
            taken[path] += 1;
        }
        assert!(taken.iter().all(|&n| n > 400), "both paths: {taken:?}");
    }

    #[test]
    fn the_pacer_lets_one_punt_through_per_interval_per_vr() {
        let mut p = Pacer::new(2, 100);
        assert!(p.due(0, 5));
        assert!(!p.due(0, 50));
        assert!(p.due(1, 50), "another VR has its own");
        assert!(p.due(0, 105));
        assert!(!p.due(2, 500), "no such VR");
    }
}
