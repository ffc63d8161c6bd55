//! IPv4 input and forward. Input decides whether a frame addressed to a VR takes
//! the fast path (an IPv4 header without options, whole, with a good checksum and
//! a TTL to spare, for a VR not in standby) or goes to its guest, and why. Forward
//! resolves a looked-up route to the egress interface and the neighbour's MAC,
//! and rewrites the frame: Ethernet addresses, TTL and checksum. The table lookup
//! itself is pipelined over the burst by the lcore loop.
use super::multipath::{self, Pacing, Route};
use crate::config::Interface;
use crate::dataplane::{neighbor_key, Dataplane, NextHop, Vr, VrState};
use crate::stats::PuntReason;
use vrfwd_wire::ethernet::{ethertype, EthernetFrame};
use vrfwd_wire::ipv4::{Ipv4Packet, HEADER_LEN};
use vrfwd_wire::MacAddr;

/// A frame for a VR that the fast path takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The destination address, host order.
    pub dst: u32,
    /// The VR drains or is quiet: forward with the uplink's MAC, not the VR's.
    pub draining: bool,
}

/// Input: whether a frame of `ethertype` addressed to a VR in `state` takes the
/// fast path. `chained`: the frame spans several mbufs (the fast path rewrites the
/// first only, so the guest gets those).
#[inline(always)]
pub fn input(
    state: VrState,
    ethertype: u16,
    frame: &[u8],
    chained: bool,
) -> Result<Candidate, PuntReason> {
    if state == VrState::Standby {
        return Err(PuntReason::Standby);
    }
    match ethertype {
        ethertype::IPV4 => {}
        ethertype::ARP => return Err(PuntReason::Arp),
        _ => return Err(PuntReason::NotIp),
    }
    let dst = fit(frame)?;
    if chained {
        return Err(PuntReason::Length);
    }
    Ok(Candidate {
        dst,
        draining: state.anonymous(),
    })
}

/// The destination of the IPv4 header after the Ethernet header of `frame`, if the
/// fast path may forward it.
#[inline(always)]
fn fit(frame: &[u8]) -> Result<u32, PuntReason> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| PuntReason::Truncated)?;
    let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|_| PuntReason::Truncated)?;
    if ip.version() != 4 {
        return Err(PuntReason::Version);
    }
    if ip.header_len() != HEADER_LEN {
        return Err(PuntReason::Options);
    }
    if ip.total_len() < HEADER_LEN || ip.total_len() > ip.buffer_len() {
        return Err(PuntReason::Length);
    }
    if !ip.verify_checksum() {
        return Err(PuntReason::Checksum);
    }
    if ip.ttl() <= 1 {
        return Err(PuntReason::TtlExpired);
    }
    Ok(u32::from(ip.dst()))
}

/// Where a forwarded frame goes and how it is addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Out {
    pub port: usize,
    pub dst: MacAddr,
    pub src: MacAddr,
    /// The egress interface's MTU: a larger packet is the guest's, whose
    /// kernel answers it (ICMP fragmentation needed, packet too big) or
    /// fragments it.
    pub mtu: u16,
}

impl Out {
    /// Out of VR interface `ifc`'s uplink to the neighbour with MAC `mac`, from
    /// the interface's MAC or, for a draining VR, its segment's uplink MAC among
    /// `draining_source`.
    #[inline(always)]
    pub fn on(ifc: &Interface, mac: u64, draining_source: Option<&[MacAddr]>) -> Out {
        Out {
            port: ifc.uplink,
            dst: MacAddr::from_u64(mac),
            src: draining_source.map_or(ifc.mac, |macs| macs[ifc.segment]),
            mtu: ifc.mtu,
        }
    }
}

/// The neighbours resolved last in a burst: most of a burst shares one (the
/// last), a multipath route's packets a few (each in its entry of a small
/// table, picked by the neighbour's address bits).
#[derive(Debug, Default)]
pub struct RecentNeighbors {
    /// (VR, key, MAC); key 0: none (neighbour keys are never 0).
    last: (usize, u64, u64),
    entries: [(usize, u64, u64); 8],
}

impl RecentNeighbors {
    /// The MAC of neighbour `key` of VR `vr` if it was the last; with `ANY`
    /// (a multipath route's packet) if it is in its entry.
    #[inline(always)]
    fn get<const ANY: bool>(&self, vr: usize, key: u64) -> Option<u64> {
        let e = if ANY {
            &self.entries[Self::entry(key)]
        } else {
            &self.last
        };
        (e.1 == key && e.0 == vr).then_some(e.2)
    }

    /// Neighbour `key` of VR `vr` is the last; with `ANY` (a multipath
    /// route's) it takes its entry.
    #[inline(always)]
    fn put<const ANY: bool>(&mut self, vr: usize, key: u64, mac: u64) {
        self.last = (vr, key, mac);
        if ANY {
            self.entries[Self::entry(key)] = self.last;
        }
    }

    /// The entry of neighbour `key`: one lookup whose branch the predictor
    /// learns, where a search of several entries would branch on which one
    /// holds a multipath packet's neighbour, which the predictor cannot learn.
    /// The bits of the address's last two bytes keep a route's gateways apart
    /// (10.0.1.2 to 10.0.4.2 as well as .1 to .4); two that share an entry take
    /// turns in it.
    #[inline(always)]
    fn entry(key: u64) -> usize {
        ((key ^ (key >> 8)) & 7) as usize
    }
}

/// Forward: resolves `route` (what VR `v`'s table gave for `dst`,
/// [`multipath::route`]) to the egress port and the frame's new addresses; a
/// multipath route's path counted and paced by `pacing`. A draining VR's frames leave from `draining_source`'s MAC
/// for the egress segment.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn forward(
    dp: &Dataplane,
    v: usize,
    route: Route<'_>,
    dst: u32,
    now: u32,
    recent: &mut RecentNeighbors,
    draining_source: Option<&[MacAddr]>,
    pacing: Pacing<'_>,
) -> Result<Out, PuntReason> {
    let vr = &dp.vrs[v];
    let (iface, mac) = match route {
        Route::Multipath(path) => multipath::resolve(
            path,
            v,
            pacing,
            #[inline(always)]
            |next_hop| neighbor::<true>(vr, v, next_hop, dst, now, recent),
        )?,
        Route::One(next_hop) => neighbor::<false>(vr, v, next_hop, dst, now, recent)?,
    };
    Ok(Out::on(&vr.interfaces[iface], mac, draining_source))
}

/// The egress interface and neighbour MAC of `next_hop` of VR `vr` (index
/// `v`) for `dst`; `MULTIPATH`: for a multipath route's packet.
#[inline(always)]
fn neighbor<const MULTIPATH: bool>(
    vr: &Vr,
    v: usize,
    next_hop: Option<NextHop>,
    dst: u32,
    now: u32,
    recent: &mut RecentNeighbors,
) -> Result<(usize, u64), PuntReason> {
    let (iface, neighbor) = egress(next_hop, dst)?;
    let key = neighbor_key(iface, neighbor);
    if let Some(mac) = recent.get::<MULTIPATH>(v, key) {
        return Ok((iface, mac));
    }
    let mac = vr.neighbors.get(key, now).ok_or(PuntReason::Unresolved)?;
    recent.put::<MULTIPATH>(v, key, mac);
    Ok((iface, mac))
}

/// The egress interface and the neighbour to send to for `next_hop`.
#[inline(always)]
fn egress(next_hop: Option<NextHop>, dst: u32) -> Result<(usize, u32), PuntReason> {
    match next_hop {
        Some(NextHop::Attached { iface }) => Ok((iface, dst)),
        Some(NextHop::Gateway { iface, via }) => Ok((iface, via)),
        // An IPv4 route through an IPv6 gateway (RFC 5549) is the guest's to forward.
        Some(NextHop::Local | NextHop::Gateway6 { .. } | NextHop::Group { .. }) | None => {
            Err(PuntReason::ToRouter)
        }
    }
}

/// Rewrites a frame that passed [`input`] for `out`: addresses, TTL, checksum;
/// nothing when the packet is larger than the egress MTU.
#[inline(always)]
pub fn rewrite(frame: &mut [u8], out: &Out) -> Result<(), PuntReason> {
    let mut eth = EthernetFrame::new_checked(frame).map_err(|_| PuntReason::Truncated)?;
    let mut ip = Ipv4Packet::new_checked(eth.payload_mut()).map_err(|_| PuntReason::Truncated)?;
    if ip.total_len() > usize::from(out.mtu) {
        return Err(PuntReason::Mtu);
    }
    if !ip.decrement_ttl() {
        return Err(PuntReason::TtlExpired);
    }
    eth.set_dst(out.dst);
    eth.set_src(out.src);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::STATIC;
    use crate::lcore::testing::{dataplane, VR1_LAN1_MAC, VR1_LAN2_MAC};
    use std::net::Ipv4Addr;
    use vrfwd_wire::ethernet::{header as eth_header, HEADER_LEN as ETH_LEN};
    use vrfwd_wire::ipv4::header as ip_header;

    const STATION: MacAddr = MacAddr([2, 0, 0, 0, 0xaa, 1]);

    /// [`forward`] for a flow hashing to 0 on lcore 0.
    fn forward_one(
        dp: &Dataplane,
        v: usize,
        next_hop: Option<u32>,
        dst: u32,
        now: u32,
        recent: &mut RecentNeighbors,
        draining_source: Option<&[MacAddr]>,
    ) -> Result<Out, PuntReason> {
        let mut pacer = multipath::Pacer::new(dp.vrs.len(), u64::MAX);
        let route = multipath::route(&dp.vrs[v], next_hop, || 0)?;
        let pacing = pacer.at(0, 1);
        forward(dp, v, route, dst, now, recent, draining_source, pacing)
    }

    fn frame(ip: [u8; HEADER_LEN], payload: usize) -> Vec<u8> {
        let mut f = eth_header(VR1_LAN1_MAC, STATION, ethertype::IPV4).to_vec();
        f.extend_from_slice(&ip);
        f.resize(ETH_LEN + HEADER_LEN + payload, 0xab);
        f
    }

    fn header(ttl: u8) -> [u8; HEADER_LEN] {
        ip_header(
            Ipv4Addr::new(10, 0, 1, 2),
            Ipv4Addr::new(10, 9, 2, 3),
            ttl,
            17,
            8,
        )
    }

    fn take(f: &[u8]) -> Result<Candidate, PuntReason> {
        input(VrState::Active, ethertype::IPV4, f, false)
    }

    /// `h` with byte `at` changed by `edit` and its checksum made good again.
    fn edited(at: usize, edit: impl Fn(u8) -> u8) -> [u8; HEADER_LEN] {
        let mut h = header(64);
        h[at] = edit(h[at]);
        Ipv4Packet::new_checked(&mut h[..]).unwrap().fill_checksum();
        h
    }

    #[test]
    fn a_good_header_takes_the_fast_path() {
        let f = frame(header(64), 8);
        let dst = u32::from(Ipv4Addr::new(10, 9, 2, 3));
        assert_eq!(
            take(&f),
            Ok(Candidate {
                dst,
                draining: false
            })
        );
        assert_eq!(
            input(VrState::Draining, ethertype::IPV4, &f, false),
            Ok(Candidate {
                dst,
                draining: true
            })
        );
    }

    #[test]
    fn each_punt_reason() {
        let f = frame(header(64), 8);
        assert_eq!(
            input(VrState::Standby, ethertype::IPV4, &f, false),
            Err(PuntReason::Standby)
        );
        assert_eq!(
            input(VrState::Active, ethertype::ARP, &f, false),
            Err(PuntReason::Arp)
        );
        assert_eq!(
            input(VrState::Active, 0x88cc, &f, false),
            Err(PuntReason::NotIp)
        );
        assert_eq!(
            input(VrState::Active, ethertype::IPV4, &f, true),
            Err(PuntReason::Length)
        );
        assert_eq!(
            take(&frame(edited(0, |b| b & 0x0f | 0x60), 8)),
            Err(PuntReason::Version)
        );
        assert_eq!(
            take(&frame(edited(0, |_| 0x46), 8)),
            Err(PuntReason::Options)
        );
        assert_eq!(take(&frame(edited(3, |_| 19), 8)), Err(PuntReason::Length));
        let mut bad = header(64);
        bad[15] ^= 1;
        assert_eq!(take(&frame(bad, 8)), Err(PuntReason::Checksum));
        for ttl in [0, 1] {
            assert_eq!(take(&frame(header(ttl), 8)), Err(PuntReason::TtlExpired));
        }
        assert!(take(&frame(header(2), 8)).is_ok());
    }

    #[test]
    fn every_truncation_is_punted() {
        let f = frame(header(64), 8);
        for len in 0..ETH_LEN + HEADER_LEN {
            assert_eq!(take(&f[..len]), Err(PuntReason::Truncated), "len {len}");
        }
        // The total length says 28 but only 27 bytes of IP arrived.
        assert_eq!(
            take(&f[..ETH_LEN + HEADER_LEN + 7]),
            Err(PuntReason::Length)
        );
    }

    #[test]
    fn forward_resolves_routes_to_the_uplink_and_the_neighbours_mac() {
        let t = dataplane();
        let dp = &t.dp;
        let vr = &dp.vrs[0];
        let gateway = (Ipv4Addr::new(10, 0, 2, 2), MacAddr([2, 0, 0, 0, 0xbb, 2]));
        let dst = u32::from(Ipv4Addr::new(10, 9, 2, 3));
        let fib = &t.routes[0].tables.v4;
        let route = fib.fib().lookup(dst);
        let mut last = RecentNeighbors::default();
        assert_eq!(
            forward_one(dp, 0, route, dst, 0, &mut last, None),
            Err(PuntReason::Unresolved)
        );
        vr.neighbors.learn(
            neighbor_key(1, gateway.0.into()),
            gateway.1.to_u64(),
            STATIC,
        );
        let out = Out {
            port: dp.segments[1].uplink,
            dst: gateway.1,
            src: VR1_LAN2_MAC,
            mtu: 1500,
        };
        assert_eq!(forward_one(dp, 0, route, dst, 0, &mut last, None), Ok(out));
        let uplink_macs = [
            MacAddr([2, 0, 0, 0, 0xee, 1]),
            MacAddr([2, 0, 0, 0, 0xee, 2]),
        ];
        assert_eq!(
            forward_one(dp, 0, route, dst, 0, &mut last, Some(&uplink_macs)),
            Ok(Out {
                src: uplink_macs[1],
                ..out
            })
        );
        assert_eq!(
            forward_one(dp, 0, None, dst, 0, &mut last, None),
            Err(PuntReason::NoRoute)
        );
        let own = u32::from(Ipv4Addr::new(10, 0, 1, 1));
        let local = fib.fib().lookup(own);
        assert_eq!(
            forward_one(dp, 0, local, own, 0, &mut last, None),
            Err(PuntReason::ToRouter)
        );
        // An attached destination is its own neighbour.
        let attached = u32::from(Ipv4Addr::new(10, 0, 1, 77));
        assert_eq!(
            forward_one(
                dp,
                0,
                fib.fib().lookup(attached),
                attached,
                0,
                &mut last,
                None
            ),
            Err(PuntReason::Unresolved)
        );
    }

    #[test]
    fn rewrite_sets_addresses_and_decrements_the_ttl() {
        let mut f = frame(header(64), 8);
        let out = Out {
            port: 0,
            dst: MacAddr([2, 0, 0, 0, 0xbb, 2]),
            src: VR1_LAN2_MAC,
            mtu: 28,
        };
        // One byte over the egress MTU: untouched, the guest's.
        let before = f.clone();
        let small = Out { mtu: 27, ..out };
        assert_eq!(rewrite(&mut f, &small), Err(PuntReason::Mtu));
        assert_eq!(f, before);
        assert_eq!(rewrite(&mut f, &out), Ok(()), "up to the MTU");
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((eth.dst(), eth.src()), (out.dst, out.src));
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(ip.ttl(), 63);
        assert!(ip.verify_checksum());
        assert_eq!(
            rewrite(&mut f[..ETH_LEN + 10], &out),
            Err(PuntReason::Truncated)
        );
    }

    #[test]
    fn recent_neighbors_keep_a_routes_gateways_apart_and_never_answer_wrong() {
        let key = |iface: usize, a: [u8; 4]| neighbor_key(iface, u32::from(Ipv4Addr::from(a)));
        let one_segment = [1, 2, 3, 4].map(|h| key(0, [10, 0, 1, h]));
        let segments = [1, 2, 3, 4].map(|s| key(usize::from(s - 1), [10, 0, s, 2]));
        for apart in [one_segment, segments] {
            let mut recent = RecentNeighbors::default();
            for (mac, &k) in apart.iter().enumerate() {
                assert_eq!(recent.get::<true>(0, k), None);
                recent.put::<true>(0, k, mac as u64 + 1);
            }
            for (mac, &k) in apart.iter().enumerate() {
                assert_eq!(recent.get::<true>(0, k), Some(mac as u64 + 1), "{k:x}");
                assert_eq!(recent.get::<true>(1, k), None, "another VR's");
            }
            assert_eq!(recent.get::<false>(0, apart[3]), Some(4), "the last");
            assert_eq!(recent.get::<false>(0, apart[2]), None, "not the last");
        }
        let mut recent = RecentNeighbors::default();
        // Two that share an entry take turns in it.
        let (a, b) = (key(0, [10, 0, 1, 1]), key(0, [10, 0, 9, 9]));
        assert_eq!(RecentNeighbors::entry(a), RecentNeighbors::entry(b));
        recent.put::<true>(0, a, 98);
        recent.put::<true>(0, b, 99);
        assert_eq!(recent.get::<true>(0, a), None);
        assert_eq!(recent.get::<true>(0, b), Some(99));
    }
}
