//! IPv6 input and forward, as [`super::ipv4`] does for IPv4. Input decides
//! whether a frame addressed to a VR takes the fast path (a whole IPv6 header
//! with no extension header, a hop limit to spare, a unicast destination beyond
//! the link, for a VR not in standby) or goes to its guest, and why. Forward
//! resolves a looked-up route to the egress interface and the neighbour's MAC
//! (from the VR's IPv6 neighbours), and rewrites the frame: Ethernet addresses
//! and the hop limit (IPv6 has no header checksum). What the guest must see
//! itself: packets to its own addresses (a local route), link-local and
//! multicast ones (neighbour discovery, OSPFv3, MLD), and every extension header,
//! whose processing (hop-by-hop options above all) is a router's slow path.
use super::ipv4::Out;
use super::multipath::{self, Pacing, Route};
use crate::dataplane::{neighbor6_key, Dataplane, NextHop, Vr, VrState};
use crate::stats::PuntReason;
use std::net::Ipv6Addr;
use vrfwd_wire::ethernet::EthernetFrame;
use vrfwd_wire::ipv6::{is_extension_header, Ipv6Packet, HEADER_LEN};
use vrfwd_wire::MacAddr;

/// A frame for a VR that the fast path takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The destination address (bytes, not a `u128`: classification's result
    /// stays small and unaligned beside IPv4's).
    pub dst: Ipv6Addr,
    /// The VR drains or is quiet: forward with the uplink's MAC, not the VR's.
    pub draining: bool,
}

/// Input: whether an IPv6 `frame` addressed to a VR in `state` takes the fast
/// path. `chained`: the frame spans several mbufs (the fast path rewrites the
/// first only, so the guest gets those).
#[inline(always)]
pub fn input(state: VrState, frame: &[u8], chained: bool) -> Result<Candidate, PuntReason> {
    if state == VrState::Standby {
        return Err(PuntReason::Standby);
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

/// The destination of the IPv6 header after the Ethernet header of `frame`, if
/// the fast path may forward it.
#[inline(always)]
fn fit(frame: &[u8]) -> Result<Ipv6Addr, PuntReason> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| PuntReason::Truncated)?;
    let ip = Ipv6Packet::new_checked(eth.payload()).map_err(|_| PuntReason::Truncated)?;
    if ip.version() != 6 {
        return Err(PuntReason::Version);
    }
    if HEADER_LEN + ip.payload_len() > ip.buffer_len() {
        return Err(PuntReason::Length);
    }
    if is_extension_header(ip.next_header()) {
        return Err(PuntReason::ExtensionHeader);
    }
    let (src, dst) = (ip.src(), ip.dst());
    if dst.is_multicast() {
        return Err(PuntReason::Multicast);
    }
    // A router forwards nothing to or from a link-local address off its link.
    if dst.is_unicast_link_local() || src.is_unicast_link_local() {
        return Err(PuntReason::LinkLocal);
    }
    if ip.hop_limit() <= 1 {
        return Err(PuntReason::TtlExpired);
    }
    Ok(dst)
}

/// Forward: resolves `route` (what VR `v`'s IPv6 table gave for `dst`,
/// [`multipath::route`]) to the egress port and the frame's new addresses; a
/// multipath route's path counted and paced by `pacing`. A draining VR's frames leave from `draining_source`'s MAC
/// for the egress segment.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn forward(
    dp: &Dataplane,
    v: usize,
    route: Route<'_>,
    dst: u128,
    now: u32,
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
            |next_hop| neighbor(vr, next_hop, dst, now),
        )?,
        Route::One(next_hop) => neighbor(vr, next_hop, dst, now)?,
    };
    Ok(Out::on(&vr.interfaces[iface], mac, draining_source))
}

/// The egress interface and neighbour MAC of `next_hop` of `vr` for `dst`.
#[inline(always)]
fn neighbor(
    vr: &Vr,
    next_hop: Option<NextHop>,
    dst: u128,
    now: u32,
) -> Result<(usize, u64), PuntReason> {
    let (iface, neighbor) = egress(next_hop, dst)?;
    let mac = vr
        .neighbors6
        .get(neighbor6_key(iface, neighbor), now)
        .ok_or(PuntReason::Unresolved)?;
    Ok((iface, mac))
}

/// The egress interface and the neighbour to send to for `next_hop`.
#[inline(always)]
fn egress(next_hop: Option<NextHop>, dst: u128) -> Result<(usize, u128), PuntReason> {
    match next_hop {
        Some(NextHop::Attached { iface }) => Ok((iface, dst)),
        Some(NextHop::Gateway6 { iface, via }) => Ok((iface, via)),
        Some(NextHop::Local | NextHop::Gateway { .. } | NextHop::Group { .. }) | None => {
            Err(PuntReason::ToRouter)
        }
    }
}

/// Rewrites a frame that passed [`input`] for `out`: addresses and hop limit;
/// nothing when the packet is larger than the egress MTU.
#[inline(always)]
pub fn rewrite(frame: &mut [u8], out: &Out) -> Result<(), PuntReason> {
    let mut eth = EthernetFrame::new_checked(frame).map_err(|_| PuntReason::Truncated)?;
    let mut ip = Ipv6Packet::new_checked(eth.payload_mut()).map_err(|_| PuntReason::Truncated)?;
    if HEADER_LEN + ip.payload_len() > usize::from(out.mtu) {
        return Err(PuntReason::Mtu);
    }
    if !ip.decrement_hop_limit() {
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
    use vrfwd_wire::ethernet::{ethertype, header as eth_header, HEADER_LEN as ETH_LEN};
    use vrfwd_wire::ipv6::{header as ip_header, next_header};

    const STATION: MacAddr = MacAddr([2, 0, 0, 0, 0xaa, 1]);

    /// [`forward`] for a flow hashing to 0 on lcore 0.
    fn forward_one(
        dp: &Dataplane,
        v: usize,
        next_hop: Option<u32>,
        dst: u128,
        now: u32,
        draining_source: Option<&[MacAddr]>,
    ) -> Result<Out, PuntReason> {
        let mut pacer = multipath::Pacer::new(dp.vrs.len(), u64::MAX);
        let route = multipath::route(&dp.vrs[v], next_hop, || 0)?;
        let pacing = pacer.at(0, 1);
        forward(dp, v, route, dst, now, draining_source, pacing)
    }

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn frame_of(ip: [u8; HEADER_LEN], payload: usize) -> Vec<u8> {
        let mut f = eth_header(VR1_LAN1_MAC, STATION, ethertype::IPV6).to_vec();
        f.extend_from_slice(&ip);
        f.resize(ETH_LEN + HEADER_LEN + payload, 0xab);
        f
    }

    fn packet(src: &str, dst: &str, hop_limit: u8, next: u8) -> Vec<u8> {
        frame_of(ip_header(v6(src), v6(dst), hop_limit, next, 8), 8)
    }

    fn take(f: &[u8]) -> Result<Candidate, PuntReason> {
        input(VrState::Active, f, false)
    }

    const SRC: &str = "2001:db8:1::2";
    const DST: &str = "2001:db8:9::3";

    #[test]
    fn a_good_header_takes_the_fast_path() {
        let f = packet(SRC, DST, 64, next_header::UDP);
        let dst = v6(DST);
        let want = |draining| Ok(Candidate { dst, draining });
        assert_eq!(take(&f), want(false));
        assert_eq!(input(VrState::Draining, &f, false), want(true));
        assert_eq!(input(VrState::Quiet, &f, false), want(true));
    }

    #[test]
    fn each_punt_reason() {
        let f = packet(SRC, DST, 64, next_header::UDP);
        assert_eq!(input(VrState::Standby, &f, false), Err(PuntReason::Standby));
        assert_eq!(input(VrState::Active, &f, true), Err(PuntReason::Length));
        let mut v4 = f.clone();
        v4[ETH_LEN] = 0x45;
        assert_eq!(take(&v4), Err(PuntReason::Version));
        for hop_limit in [0, 1] {
            let f = packet(SRC, DST, hop_limit, next_header::UDP);
            assert_eq!(take(&f), Err(PuntReason::TtlExpired), "{hop_limit}");
        }
        assert!(take(&packet(SRC, DST, 2, next_header::UDP)).is_ok());
        for dst in ["ff02::1", "ff05::2", "ff02::1:ff00:1"] {
            let f = packet(SRC, dst, 255, next_header::ICMPV6);
            assert_eq!(take(&f), Err(PuntReason::Multicast), "{dst}");
        }
        for (src, dst) in [("fe80::2", DST), (SRC, "fe80::1"), ("fe80::2", "fe80::1")] {
            let f = packet(src, dst, 64, next_header::UDP);
            assert_eq!(take(&f), Err(PuntReason::LinkLocal), "{src} -> {dst}");
        }
    }

    #[test]
    fn every_extension_header_goes_to_the_guest() {
        for next in 0..=255u8 {
            let f = packet(SRC, DST, 64, next);
            let want = if is_extension_header(next) {
                Err(PuntReason::ExtensionHeader)
            } else {
                Ok(Candidate {
                    dst: v6(DST),
                    draining: false,
                })
            };
            assert_eq!(take(&f), want, "next header {next}");
        }
    }

    #[test]
    fn every_truncation_is_punted() {
        let f = packet(SRC, DST, 64, next_header::UDP);
        for len in 0..ETH_LEN + HEADER_LEN {
            assert_eq!(take(&f[..len]), Err(PuntReason::Truncated), "len {len}");
        }
        // The payload length says 8 but only 7 bytes arrived.
        assert_eq!(
            take(&f[..ETH_LEN + HEADER_LEN + 7]),
            Err(PuntReason::Length)
        );
        // Ethernet padding after the payload is fine.
        let mut padded = f.clone();
        padded.extend_from_slice(&[0; 6]);
        assert!(take(&padded).is_ok());
    }

    #[test]
    fn forward_resolves_routes_to_the_uplink_and_the_neighbours_mac() {
        let t = dataplane();
        let dp = &t.dp;
        let vr = &dp.vrs[0];
        let gateway = (v6("fe80::2"), MacAddr([2, 0, 0, 0, 0xbb, 2]));
        let fib = t.routes[0].tables.v6.fib();
        let lookup = |a: &str| fib.lookup(u128::from(v6(a)));
        let dst = u128::from(v6(DST));
        let route = lookup(DST);
        assert!(route.is_some(), "the static route through fe80::2 on lan2");
        assert_eq!(
            forward_one(dp, 0, route, dst, 0, None),
            Err(PuntReason::Unresolved)
        );
        vr.neighbors6.learn(
            neighbor6_key(1, gateway.0.into()),
            gateway.1.to_u64(),
            STATIC,
        );
        let out = Out {
            port: dp.segments[1].uplink,
            dst: gateway.1,
            src: VR1_LAN2_MAC,
            mtu: 1500,
        };
        assert_eq!(forward_one(dp, 0, route, dst, 0, None), Ok(out));
        // The same address on the other interface is another neighbour.
        vr.neighbors6.forget(neighbor6_key(1, gateway.0.into()));
        vr.neighbors6.learn(
            neighbor6_key(0, gateway.0.into()),
            gateway.1.to_u64(),
            STATIC,
        );
        assert_eq!(
            forward_one(dp, 0, route, dst, 0, None),
            Err(PuntReason::Unresolved)
        );
        assert_eq!(
            forward_one(dp, 0, None, dst, 0, None),
            Err(PuntReason::NoRoute)
        );
        let own = "2001:db8:1::1";
        assert_eq!(
            forward_one(dp, 0, lookup(own), u128::from(v6(own)), 0, None),
            Err(PuntReason::ToRouter)
        );
        // An attached destination is its own neighbour.
        let attached = "2001:db8:1::77";
        let mac = MacAddr([2, 0, 0, 0, 0xcc, 7]);
        vr.neighbors6
            .learn(neighbor6_key(0, v6(attached).into()), mac.to_u64(), STATIC);
        let to_attached = forward_one(dp, 0, lookup(attached), v6(attached).into(), 0, None);
        assert_eq!(to_attached.map(|o| o.dst), Ok(mac));
    }

    #[test]
    fn rewrite_sets_addresses_and_decrements_the_hop_limit() {
        let mut f = packet(SRC, DST, 64, next_header::UDP);
        let out = Out {
            port: 0,
            dst: MacAddr([2, 0, 0, 0, 0xbb, 2]),
            src: VR1_LAN2_MAC,
            mtu: 48,
        };
        // One byte over the egress MTU: untouched, the guest's.
        let before = f.clone();
        let small = Out { mtu: 47, ..out };
        assert_eq!(rewrite(&mut f, &small), Err(PuntReason::Mtu));
        assert_eq!(f, before);
        assert_eq!(rewrite(&mut f, &out), Ok(()), "up to the MTU");
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((eth.dst(), eth.src()), (out.dst, out.src));
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(ip.hop_limit(), 63);
        assert_eq!(ip.payload().unwrap(), &[0xab; 8]);
        assert_eq!(
            rewrite(&mut f[..ETH_LEN + 10], &out),
            Err(PuntReason::Truncated)
        );
    }
}
